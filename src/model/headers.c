/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/headers.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <string.h>

enum field { F_SUBJECT, F_FROM, F_TO, F_DATE, F_MESSAGE_ID, F_COUNT };

static const char *const field_names[F_COUNT] = {
	[F_SUBJECT] = "subject",
	[F_FROM] = "from",
	[F_TO] = "to",
	[F_DATE] = "date",
	[F_MESSAGE_ID] = "message-id",
};

/*
 * Raw 8-bit text: UTF-8 where it is valid, else windows-1252, else
 * ISO-8859-1 (which takes any byte). Set here so that the result does not
 * depend on the locale GMime saw at init.
 */
static const char *fallback_charsets[] = { "UTF-8", "windows-1252", "iso-8859-1", NULL };

/* Shared, read-only after creation; lives as long as the process.
   Written once under init_once. */
static GMimeParserOptions *shared_options;

static void init_gmime(void)
{
	g_mime_init();
	shared_options = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(shared_options, fallback_charsets);
}

/*
 * pthread_once rather than g_once: a thread that finds g_once's
 * initialisation under way waits on a futex-based GCond, a hand-off
 * ThreadSanitizer cannot see, so GMime's tables read afterwards looked
 * racy. pthread_once is one TSan understands (see util/lock.h).
 */
static GMimeParserOptions *parser_options(void)
{
	static pthread_once_t init_once = PTHREAD_ONCE_INIT;

	if (pthread_once(&init_once, init_gmime) != 0)
		g_error("pthread_once failed");
	return shared_options;
}

struct _GMimeParserOptions *mail_gmime_options(void)
{
	return parser_options();
}

static gboolean is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The field a header line starts, or F_COUNT; *value is where its value begins. */
static enum field match_field(const char *line, size_t len, size_t *value)
{
	const char *colon = memchr(line, ':', len);
	size_t name_len;

	if (!colon || colon == line)
		return F_COUNT;
	name_len = (size_t)(colon - line);
	*value = name_len + 1;
	/* RFC 5322 §4.5 obsolete syntax: blanks between name and colon. */
	while (name_len > 0 && is_wsp(line[name_len - 1]))
		name_len--;
	for (enum field f = 0; f < F_COUNT; f++) {
		if (strlen(field_names[f]) == name_len &&
		    g_ascii_strncasecmp(line, field_names[f], name_len) == 0)
			return f;
	}
	return F_COUNT;
}

/*
 * Append a piece of raw value, bounded, without the control bytes: a NUL
 * would cut the string short for GMime, CR and LF are the folding already
 * removed, and the rest must not reach a terminal. TAB stays.
 */
static void append_raw_upto(GString *raw, const char *s, size_t len, size_t max)
{
	for (size_t i = 0; i < len && raw->len < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			continue;
		g_string_append_c(raw, (char)c);
	}
}

static void append_raw(GString *raw, const char *s, size_t len)
{
	append_raw_upto(raw, s, len, MAIL_HEADERS_RAW_MAX);
}

static char *trim_dup(const char *s)
{
	return g_strstrip(g_strdup(s));
}

/*
 * Final form of every value: valid UTF-8, no control characters (C1 too: a
 * terminal may act on U+009B), trimmed, at most MAIL_HEADERS_VALUE_MAX bytes
 * cut on a character boundary (max). Takes ownership of s.
 */
static char *finish_value_upto(char *s, size_t max)
{
	g_autofree char *valid = g_utf8_make_valid(s, -1);
	GString *out = g_string_sized_new(strlen(valid));

	g_free(s);
	for (const char *p = valid, *next; *p; p = next) {
		gunichar c = g_utf8_get_char(p);

		next = p + g_utf8_skip[(guchar)*p];

		if ((c < 0x20 && c != '\t') || (c >= 0x7f && c <= 0x9f))
			continue;
		if (out->len + (size_t)(next - p) > max)
			break;
		g_string_append_len(out, p, next - p);
	}
	g_strstrip(out->str);
	out->len = strlen(out->str);
	return g_string_free(out, FALSE);
}

static char *finish_value(char *s)
{
	return finish_value_upto(s, MAIL_HEADERS_VALUE_MAX);
}

static char *decode_addresses(GMimeParserOptions *opts, const char *raw)
{
	InternetAddressList *list = internet_address_list_parse(opts, raw);
	char *s = NULL;

	if (list) {
		if (internet_address_list_length(list) > 0)
			s = internet_address_list_to_string(list, NULL, FALSE);
		g_object_unref(list);
	}
	if (s && *s && !strstr(s, "=?"))
		return s;
	/*
	 * Nothing GMime calls an address, or an encoded word it took for an
	 * address ("From: =?UTF-8?Q?J=C3=B6rg?=" is a bare local part to it):
	 * this is for display, so show the text decoded.
	 */
	if (s && *s) {
		char *text = g_mime_utils_header_decode_text(opts, s);

		g_free(s);
		return text;
	}
	g_free(s);
	return g_mime_utils_header_decode_text(opts, raw);
}

static char *decode_value(enum field f, const char *raw)
{
	GMimeParserOptions *opts = parser_options();
	g_autofree char *trimmed = trim_dup(raw);
	char *s;

	switch (f) {
	case F_SUBJECT:
		s = g_mime_utils_header_decode_text(opts, trimmed);
		break;
	case F_FROM:
	case F_TO:
		s = decode_addresses(opts, trimmed);
		break;
	default:
		s = g_strdup(trimmed);
		break;
	}
	return finish_value(s ? s : g_strdup(""));
}

void mail_headers_parse(const char *data, size_t len, struct mail_headers *out)
{
	GString *raw[F_COUNT] = { NULL };
	enum field cur = F_COUNT; /* field being collected, F_COUNT: none */
	size_t pos = 0;
	char **slots[F_COUNT] = {
		[F_SUBJECT] = &out->subject,
		[F_FROM] = &out->from,
		[F_TO] = &out->to,
		[F_DATE] = &out->date,
		[F_MESSAGE_ID] = &out->message_id,
	};

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - line) : len - pos;
		size_t value = 0;
		enum field f;

		pos += line_len + (nl ? 1 : 0);
		if (line_len > 0 && line[line_len - 1] == '\r')
			line_len--;
		if (line_len == 0)
			break; /* end of the header block */
		if (is_wsp(line[0])) {
			/* Unfold: the line break goes, the leading blank stays. */
			if (cur != F_COUNT)
				append_raw(raw[cur], line, line_len);
			continue;
		}
		f = match_field(line, line_len, &value);
		cur = F_COUNT;
		if (f == F_COUNT || raw[f])
			continue; /* other field, garbage, or a repeat: first one wins */
		raw[f] = g_string_new(NULL);
		append_raw(raw[f], line + value, line_len - value);
		cur = f;
	}

	for (enum field f = 0; f < F_COUNT; f++) {
		*slots[f] = raw[f] ? decode_value(f, raw[f]->str) : NULL;
		if (raw[f])
			g_string_free(raw[f], TRUE);
	}
}

char *mail_headers_decode_text(const char *raw, size_t len)
{
	GString *clean = g_string_sized_new(len);
	char *s;

	append_raw_upto(clean, raw, len, G_MAXSIZE);
	g_strstrip(clean->str);
	s = g_mime_utils_header_decode_text(parser_options(), clean->str);
	g_string_free(clean, TRUE);
	return finish_value_upto(s ? s : g_strdup(""), G_MAXSIZE);
}

void mail_headers_clear(struct mail_headers *h)
{
	g_clear_pointer(&h->subject, g_free);
	g_clear_pointer(&h->from, g_free);
	g_clear_pointer(&h->to, g_free);
	g_clear_pointer(&h->date, g_free);
	g_clear_pointer(&h->message_id, g_free);
}
