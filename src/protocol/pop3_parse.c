/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/pop3_parse.h"

#include <string.h>

/* -- status and listing lines ------------------------------------------------- */

void pop3_reply_clear(struct pop3_reply *r)
{
	if (!r)
		return;
	g_clear_pointer(&r->code, g_free);
	g_clear_pointer(&r->text, g_free);
	r->status = POP3_STATUS_OK;
}

/* "[" 1*64(ALPHA / DIGIT / "-" / "/") "]" at p: the code's length, or 0. */
static size_t resp_code_len(const char *p, size_t len)
{
	size_t i;

	if (len < 3 || p[0] != '[')
		return 0;
	for (i = 1; i < len && i <= 65; i++) {
		if (p[i] == ']')
			return i > 1 ? i - 1 : 0;
		if (!g_ascii_isalnum(p[i]) && p[i] != '-' && p[i] != '/')
			return 0;
	}
	return 0;
}

gboolean pop3_parse_reply(const char *line, size_t len, struct pop3_reply *out)
{
	size_t skip;

	memset(out, 0, sizeof(*out));
	if (len >= 3 && g_ascii_strncasecmp(line, "+OK", 3) == 0) {
		out->status = POP3_STATUS_OK;
		skip = 3;
	} else if (len >= 4 && g_ascii_strncasecmp(line, "-ERR", 4) == 0) {
		out->status = POP3_STATUS_ERR;
		skip = 4;
	} else if (len >= 1 && line[0] == '+') {
		out->status = POP3_STATUS_CONT;
		skip = 1;
	} else {
		return FALSE;
	}
	if (skip < len && line[skip] != ' ')
		return FALSE;
	if (skip < len)
		skip++;
	if (out->status != POP3_STATUS_CONT) {
		size_t cl = resp_code_len(line + skip, len - skip);

		if (cl) {
			out->code = g_strndup(line + skip + 1, cl);
			skip += cl + 2;
			if (skip < len && line[skip] == ' ')
				skip++;
		}
	}
	out->text = g_strndup(line + skip, len - skip);
	return TRUE;
}

gboolean pop3_uidl_valid(const char *s, size_t len)
{
	if (len < 1 || len > 70)
		return FALSE;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return FALSE;
	return TRUE;
}

/* Decimal digits at *p (advanced past them), overflow-checked against max. */
static gboolean parse_number(const char **p, const char *end, guint64 max, guint64 *out)
{
	guint64 v = 0;
	const char *q = *p;

	if (q >= end || !g_ascii_isdigit(*q))
		return FALSE;
	while (q < end && g_ascii_isdigit(*q)) {
		guint d = (guint)(*q - '0');

		if (v > (max - d) / 10)
			return FALSE;
		v = v * 10 + d;
		q++;
	}
	*p = q;
	*out = v;
	return TRUE;
}

/* "NUM " at the start of a listing line: the number (1..G_MAXUINT32). */
static gboolean parse_msgnum(const char **p, const char *end, guint32 *num)
{
	guint64 v;

	if (!parse_number(p, end, G_MAXUINT32, &v) || v == 0)
		return FALSE;
	if (*p >= end || **p != ' ')
		return FALSE;
	while (*p < end && **p == ' ')
		(*p)++;
	*num = (guint32)v;
	return TRUE;
}

gboolean pop3_parse_uidl_line(const char *line, size_t len, guint32 *num, char **uidl_out)
{
	const char *p = line, *end = line + len, *u;

	if (!parse_msgnum(&p, end, num))
		return FALSE;
	/* Trailing blanks are tolerated; a UIDL itself holds none. */
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	u = p;
	if (!pop3_uidl_valid(u, (size_t)(end - u)))
		return FALSE;
	*uidl_out = g_strndup(u, (size_t)(end - u));
	return TRUE;
}

gboolean pop3_parse_list_line(const char *line, size_t len, guint32 *num, guint64 *size)
{
	const char *p = line, *end = line + len;

	if (!parse_msgnum(&p, end, num) || !parse_number(&p, end, G_MAXUINT64, size))
		return FALSE;
	/* RFC 1939 §5: more information may follow the size. */
	return p == end || *p == ' ' || *p == '\t';
}

gboolean pop3_parse_stat(const char *text, guint32 *count, guint64 *octets)
{
	const char *p = text, *end = text + strlen(text);
	guint64 n;

	if (!parse_number(&p, end, G_MAXUINT32, &n) || p >= end || *p != ' ')
		return FALSE;
	p++;
	if (!parse_number(&p, end, G_MAXUINT64, octets))
		return FALSE;
	if (p != end && *p != ' ')
		return FALSE;
	*count = (guint32)n;
	return TRUE;
}

guint32 pop3_cap_line(const char *line)
{
	static const struct {
		const char *tag;
		guint32 bit;
	} tags[] = {
		{ "TOP", POP3_CAP_TOP },
		{ "USER", POP3_CAP_USER },
		{ "UIDL", POP3_CAP_UIDL },
		{ "STLS", POP3_CAP_STLS },
		{ "PIPELINING", POP3_CAP_PIPELINING },
		{ "RESP-CODES", POP3_CAP_RESP_CODES },
		{ "AUTH-RESP-CODE", POP3_CAP_AUTH_RESP_CODE },
		{ "LOGIN-DELAY", POP3_CAP_LOGIN_DELAY },
	};
	static const struct {
		const char *mech;
		guint32 bit;
	} mechs[] = {
		{ "PLAIN", POP3_CAP_SASL_PLAIN },
		{ "LOGIN", POP3_CAP_SASL_LOGIN },
		{ "XOAUTH2", POP3_CAP_SASL_XOAUTH2 },
		{ "OAUTHBEARER", POP3_CAP_SASL_OAUTHBEARER },
	};
	g_auto(GStrv) words = g_strsplit_set(line, " \t", -1);
	guint32 bits = 0;

	if (!words[0])
		return 0;
	if (g_ascii_strcasecmp(words[0], "SASL") == 0) {
		for (guint i = 1; words[i]; i++)
			for (size_t k = 0; k < G_N_ELEMENTS(mechs); k++)
				if (g_ascii_strcasecmp(words[i], mechs[k].mech) == 0)
					bits |= mechs[k].bit;
		return bits;
	}
	for (size_t k = 0; k < G_N_ELEMENTS(tags); k++)
		if (g_ascii_strcasecmp(words[0], tags[k].tag) == 0)
			return tags[k].bit;
	return 0;
}

guint pop3_cap_login_delay(const char *line)
{
	static const char tag[] = "LOGIN-DELAY ";
	const char *p = line, *end = line + strlen(line);
	guint64 v;

	if (g_ascii_strncasecmp(line, tag, strlen(tag)) != 0)
		return 0;
	p += strlen(tag);
	if (!parse_number(&p, end, G_MAXUINT32, &v) || (p != end && *p != ' '))
		return 0;
	return (guint)MIN(v, (guint64)POP3_LOGIN_DELAY_MAX);
}

/* -- the multi-line reader --------------------------------------------------- */

enum {
	DOT_BOL,   /* at the beginning of a line */
	DOT_MID,   /* inside a line */
	DOT_DOT,   /* a line began with ".", which was dropped */
	DOT_DOTCR, /* ... followed by CR, held back */
};

void pop3_dot_reader_init(struct pop3_dot_reader *d)
{
	memset(d, 0, sizeof(*d));
	d->state = DOT_BOL;
}

static gboolean dot_emit(struct pop3_dot_reader *d, const char *p, size_t n, pop3_sink_fn sink,
			 void *ud)
{
	int rc;

	if (n == 0)
		return TRUE;
	d->out += n;
	rc = sink ? sink(ud, p, n) : 0;
	if (rc < 0) {
		d->sink_rc = rc;
		return FALSE;
	}
	return TRUE;
}

size_t pop3_dot_reader_feed(struct pop3_dot_reader *d, const void *data, size_t len,
			    pop3_sink_fn sink, void *ud)
{
	const char *p = data;
	size_t i = 0, span = 0; /* p[span..i) is output not yet passed on */

	if (d->done || d->sink_rc)
		return 0;
	while (i < len) {
		char ch = p[i];

		switch (d->state) {
		case DOT_MID: {
			/* The common case: run to the end of the line in one go. */
			const char *nl = memchr(p + i, '\n', len - i);

			if (!nl) {
				i = len;
			} else {
				i = (size_t)(nl - p) + 1;
				d->state = DOT_BOL;
			}
			break;
		}
		case DOT_BOL:
			if (ch != '.') {
				d->state = DOT_MID;
				break;
			}
			/* RFC 1939 §3: the first dot of a line is stripped. */
			if (!dot_emit(d, p + span, i - span, sink, ud))
				return i;
			span = ++i;
			d->state = DOT_DOT;
			break;
		case DOT_DOT:
			if (ch == '\r') {
				span = ++i;
				d->state = DOT_DOTCR;
			} else if (ch == '\n') {
				d->done = TRUE;
				return i + 1;
			} else {
				d->state = DOT_MID;
			}
			break;
		case DOT_DOTCR:
			if (ch == '\n') {
				d->done = TRUE;
				return i + 1;
			}
			/* ".\r" and more: not the end; the CR was data. */
			if (!dot_emit(d, "\r", 1, sink, ud))
				return i;
			d->state = DOT_MID;
			break;
		default:
			g_assert_not_reached();
		}
	}
	dot_emit(d, p + span, i - span, sink, ud);
	return len;
}
