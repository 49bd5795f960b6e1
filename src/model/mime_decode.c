/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/mime_decode.h"

#include "model/headers.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <string.h>

/* Input is decoded this much at a time, so the scratch buffer stays small. */
#define DECODE_CHUNK (64 * 1024)

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* ---- transfer decoding ---------------------------------------------------- */

static GMimeContentEncoding transfer_encoding(const char *encoding)
{
	if (!encoding)
		return GMIME_CONTENT_ENCODING_DEFAULT;
	if (g_ascii_strcasecmp(encoding, "base64") == 0)
		return GMIME_CONTENT_ENCODING_BASE64;
	if (g_ascii_strcasecmp(encoding, "quoted-printable") == 0)
		return GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
	if (g_ascii_strcasecmp(encoding, "x-uuencode") == 0 ||
	    g_ascii_strcasecmp(encoding, "uuencode") == 0 ||
	    g_ascii_strcasecmp(encoding, "x-uue") == 0)
		return GMIME_CONTENT_ENCODING_UUENCODE;
	return GMIME_CONTENT_ENCODING_DEFAULT;
}

/*
 * uuencoded data starts after its "begin MODE NAME" line. GMime's decoding
 * step does not look for it (its filter does), so it is found here; without
 * one the data is taken to start at once, which is what can be made of a
 * body whose begin line was lost.
 */
static gsize uu_data_start(const guint8 *data, gsize len)
{
	for (gsize pos = 0; pos < len;) {
		const guint8 *nl = memchr(data + pos, '\n', len - pos);
		gsize next = nl ? (gsize)(nl - data) + 1 : len;

		if (len - pos >= 6 && memcmp(data + pos, "begin ", 6) == 0)
			return next;
		pos = next;
	}
	return 0;
}

/*
 * Base64 whose padding is missing ("YWI"): GMime keeps the last 2 or 3
 * characters and never writes them, where readers show them. The padding
 * owed when the text has no '=' at all; "" otherwise.
 */
static const char *base64_missing_pad(const guint8 *data, gsize len)
{
	gsize chars = 0;

	for (gsize i = 0; i < len; i++) {
		guint8 c = data[i];

		if (c == '=')
			return "";
		if (g_ascii_isalnum(c) || c == '+' || c == '/')
			chars++;
	}
	return chars % 4 == 2 ? "==" : chars % 4 == 3 ? "=" : "";
}

GByteArray *mime_decode_transfer(const char *encoding, const guint8 *data, gsize len)
{
	GMimeContentEncoding enc = transfer_encoding(encoding);
	GByteArray *out;
	GMimeEncoding st;
	guint8 *in_chunk = NULL; /* uuencode: the chunk without its CRs */
	guint8 *scratch;
	gsize pos = 0;

	if (enc == GMIME_CONTENT_ENCODING_DEFAULT || len == 0) {
		out = g_byte_array_sized_new((guint)len);
		if (len)
			g_byte_array_append(out, data, (guint)len);
		return out;
	}
	/* These decodings never write more than they read (3 for 4 at most). */
	out = g_byte_array_sized_new((guint)MIN(len, (gsize)DECODE_CHUNK * 16));
	g_mime_encoding_init_decode(&st, enc);
	scratch = g_malloc(g_mime_encoding_outlen(&st, DECODE_CHUNK));
	if (enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		pos = uu_data_start(data, len);
		in_chunk = g_malloc(DECODE_CHUNK);
	}
	while (pos < len) {
		gsize n = MIN(len - pos, (gsize)DECODE_CHUNK);
		const guint8 *in = data + pos;
		gsize written;

		pos += n;
		if (in_chunk) {
			/*
			 * GMime's uudecoder sees a line's CR as the next line's
			 * length byte; lines are LF-ended for it.
			 */
			gsize k = 0;

			for (gsize i = 0; i < n; i++)
				if (in[i] != '\r')
					in_chunk[k++] = in[i];
			in = in_chunk;
			n = k;
		}
		written = pos < len ? g_mime_encoding_step(&st, (const char *)in, n, (char *)scratch)
				    : g_mime_encoding_flush(&st, (const char *)in, n, (char *)scratch);
		g_byte_array_append(out, scratch, (guint)written);
	}
	if (enc == GMIME_CONTENT_ENCODING_BASE64) {
		const char *pad = base64_missing_pad(data, len);

		if (*pad) {
			gsize written = g_mime_encoding_flush(&st, pad, strlen(pad), (char *)scratch);

			g_byte_array_append(out, scratch, (guint)written);
		}
	}
	g_free(in_chunk);
	g_free(scratch);
	return out;
}

/* ---- charsets ---------------------------------------------------------- */

/*
 * windows-1252's 0x80..0x9F; 0 where the code page has no character. The
 * bytes 0xA0..0xFF are Latin-1's, U+00A0..U+00FF.
 */
static const guint16 cp1252_high[32] = {
	0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017d, 0,
	0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
};

static void append_unichar(GByteArray *out, gunichar c)
{
	guint8 buf[6];
	int n = g_unichar_to_utf8(c, (char *)buf);

	g_byte_array_append(out, buf, (guint)n);
}

static void append_cp1252(GByteArray *out, guint8 b)
{
	if (b < 0x80)
		g_byte_array_append(out, &b, 1);
	else if (b >= 0xa0)
		append_unichar(out, b);
	else if (cp1252_high[b - 0x80])
		append_unichar(out, cp1252_high[b - 0x80]);
	else
		g_byte_array_append(out, (const guint8 *)REPLACEMENT, 3);
}

/*
 * UTF-8 input: valid runs copied, each other byte as windows-1252
 * (fallback) or U+FFFD (declared UTF-8).
 */
static void utf8_lenient(GByteArray *out, const guint8 *data, gsize len, gboolean fallback)
{
	gsize pos = 0;

	while (pos < len) {
		const char *end = NULL;

		g_utf8_validate_len((const char *)data + pos, len - pos, &end);
		g_byte_array_append(out, data + pos, (guint)((const guint8 *)end - (data + pos)));
		pos = (gsize)((const guint8 *)end - data);
		if (pos >= len)
			break;
		/* g_utf8_validate_len stops at a NUL too: a valid byte. */
		if (data[pos] == 0)
			g_byte_array_append(out, data + pos, 1);
		else if (fallback)
			append_cp1252(out, data[pos]);
		else
			g_byte_array_append(out, (const guint8 *)REPLACEMENT, 3);
		pos++;
	}
}

static gboolean name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (g_ascii_strcasecmp(name, *list) == 0)
			return TRUE;
	return FALSE;
}

static const char *const utf8_names[] = { "utf-8", "utf8", NULL };
/*
 * Mail labelled ASCII often holds 8-bit text: it gets the unlabelled
 * treatment, which gives the same for real ASCII.
 */
static const char *const ascii_names[] = { "us-ascii", "ascii", "ansi_x3.4-1968", "646", NULL };
/*
 * Latin-1 labels are read as windows-1252, as mail readers and browsers do:
 * 0x80..0x9F in such mail are the code page's quotes and dashes, and as
 * Latin-1 they would be C1 controls a terminal acts on.
 */
static const char *const latin1_names[] = { "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1",
					    "l1", "cp819", "ibm819", "windows-1252", "cp1252",
					    "windows-cp1252", NULL };

/*
 * iconv over all of data into out; bytes iconv cannot take become U+FFFD
 * and are stepped over one at a time, as is an incomplete sequence at the end.
 */
static void iconv_all(GByteArray *out, GIConv cd, const guint8 *data, gsize len)
{
	/* iconv takes a non-const input pointer; it does not write through it. */
	gchar *in = (gchar *)(guintptr)data;
	gsize in_left = len;
	gboolean flushing = FALSE;

	for (;;) {
		guint old = out->len;
		gsize room = MAX(in_left * 2, (gsize)64) + 16;
		gchar *o;
		gsize o_left = room;
		gsize r;
		int err;

		room = MIN(room, (gsize)DECODE_CHUNK * 4);
		o_left = room;
		g_byte_array_set_size(out, old + (guint)room);
		o = (gchar *)out->data + old;
		r = flushing ? g_iconv(cd, NULL, NULL, &o, &o_left)
			     : g_iconv(cd, &in, &in_left, &o, &o_left);
		err = errno;
		g_byte_array_set_size(out, old + (guint)(room - o_left));
		if (r != (gsize)-1) {
			if (flushing)
				return;
			flushing = TRUE; /* a stateful charset's closing shift */
			continue;
		}
		if (err == E2BIG)
			continue;
		if (flushing)
			return;
		/* EILSEQ, EINVAL (cut short at the end), or anything else. */
		g_byte_array_append(out, (const guint8 *)REPLACEMENT, 3);
		if (in_left == 0)
			return;
		in++;
		in_left--;
	}
}

/*
 * Line ends to LF, NUL out, in place: the text only gets shorter. After the
 * conversion, so that UTF-16's zero bytes are not mistaken for NULs.
 */
static void normalize_lines(GByteArray *out)
{
	guint8 *p = out->data;
	gsize k = 0;

	for (gsize i = 0; i < out->len; i++) {
		guint8 c = p[i];

		if (c == 0)
			continue;
		if (c == '\r') {
			p[k++] = '\n';
			if (i + 1 < out->len && p[i + 1] == '\n')
				i++;
			continue;
		}
		p[k++] = c;
	}
	g_byte_array_set_size(out, (guint)k);
}

GByteArray *mime_text_to_utf8(const char *charset, const guint8 *data, gsize len)
{
	GByteArray *out = g_byte_array_sized_new((guint)MIN(len + len / 8 + 16, (gsize)G_MAXUINT / 2));
	const char *name = NULL;
	GIConv cd = (GIConv)-1;

	if (charset) {
		(void)mail_gmime_options();
		name = g_mime_charset_iconv_name(charset);
	}
	if (!name || !*name || name_in(charset, ascii_names) || name_in(name, ascii_names)) {
		utf8_lenient(out, data, len, TRUE);
	} else if (name_in(charset, utf8_names) || name_in(name, utf8_names)) {
		utf8_lenient(out, data, len, FALSE);
	} else if (name_in(charset, latin1_names) || name_in(name, latin1_names)) {
		for (gsize i = 0; i < len; i++)
			append_cp1252(out, data[i]);
	} else if ((cd = g_iconv_open("UTF-8", name)) == (GIConv)-1) {
		utf8_lenient(out, data, len, TRUE); /* a charset iconv does not know */
	} else {
		iconv_all(out, cd, data, len);
		g_iconv_close(cd);
	}
	normalize_lines(out);
	return out;
}

/* ---- HTML to text --------------------------------------------------------- */

struct html_out {
	GByteArray *buf;
	guint pending_lf;        /* line ends owed before the next text, at most 2 */
	gboolean pending_space;  /* a blank owed before the next text (outside pre) */
	gboolean at_line_start;
	gboolean no_blank;       /* right after a "* " marker */
	guint pre;               /* depth of <pre> */
};

/* Text (not a blank) goes out: owed line ends first, then an owed blank. */
static void html_text(struct html_out *o, const guint8 *s, gsize n)
{
	if (o->buf->len > 0 && o->pending_lf > 0) {
		static const guint8 lfs[2] = { '\n', '\n' };

		g_byte_array_append(o->buf, lfs, o->pending_lf);
		o->at_line_start = TRUE;
	}
	o->pending_lf = 0;
	if (o->pending_space && !o->at_line_start && !o->no_blank)
		g_byte_array_append(o->buf, (const guint8 *)" ", 1);
	o->pending_space = FALSE;
	o->no_blank = FALSE;
	g_byte_array_append(o->buf, s, (guint)n);
	o->at_line_start = FALSE;
}

static void html_line_end(struct html_out *o)
{
	if (o->pending_lf < 2)
		o->pending_lf++;
	o->pending_space = FALSE;
	o->at_line_start = TRUE;
}

/*
 * The end of a block ends the line it is on; nested blocks ending together
 * ("</td></tr></table>") make no empty lines. <br> always makes a line end.
 */
static void html_block_end(struct html_out *o)
{
	if (!o->at_line_start)
		html_line_end(o);
}

static void html_blank(struct html_out *o, guint8 c)
{
	if (o->pre)
		html_text(o, &c, 1);
	else
		o->pending_space = TRUE;
}

static void html_char(struct html_out *o, gunichar c)
{
	guint8 buf[6];
	int n;

	if (c == '\n') {
		html_line_end(o);
		return;
	}
	if (c == ' ' || c == '\t') {
		html_blank(o, (guint8)c);
		return;
	}
	n = g_unichar_to_utf8(c, (char *)buf);
	html_text(o, buf, (gsize)n);
}

/* The bytes that end a run of plain text. */
static gboolean html_special(guint8 c)
{
	return c == '<' || c == '&' || c == '\r' || c == '\n' || c == ' ' || c == '\t' || c == 0;
}

static gboolean is_ascii_alpha(guint8 c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Whether s[0..n) starts with the ASCII word w, any case. */
static gboolean starts_with_ci(const guint8 *s, gsize n, const char *w)
{
	gsize wl = strlen(w);

	return n >= wl && g_ascii_strncasecmp((const char *)s, w, wl) == 0;
}

/*
 * An entity at s ('&'): its length, and the character in *c, or 0 when it
 * is none of the documented ones (then the '&' is text). Numeric ones that
 * name no character, NUL or a control other than TAB and LF give U+FFFD.
 */
static gsize html_entity(const guint8 *s, gsize n, gunichar *c)
{
	static const struct {
		const char *name;
		gunichar c;
	} named[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
		{ "&apos;", '\'' },
		/* A plain blank: Outlook's "<p>&nbsp;</p>" spacers are blank lines. */
		{ "&nbsp;", ' ' },
	};
	gboolean hex;
	gsize i = 2, digits = 0;
	guint32 v = 0;

	for (gsize k = 0; k < G_N_ELEMENTS(named); k++) {
		gsize l = strlen(named[k].name);

		if (n >= l && memcmp(s, named[k].name, l) == 0) {
			*c = named[k].c;
			return l;
		}
	}
	if (n < 4 || s[1] != '#')
		return 0;
	hex = s[2] == 'x' || s[2] == 'X';
	if (hex)
		i = 3;
	/* At most 8 digits: beyond any character, and no overflow. */
	for (; i < n && digits <= 8; i++, digits++) {
		int d = hex ? g_ascii_xdigit_value((char)s[i]) : g_ascii_digit_value((char)s[i]);

		if (d < 0)
			break;
		v = v * (hex ? 16 : 10) + (guint32)d;
	}
	if (digits == 0 || digits > 8 || i >= n || s[i] != ';')
		return 0;
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || v == 0 ||
	    (v < 0x20 && v != '\t' && v != '\n') || (v >= 0x7f && v <= 0x9f))
		v = 0xfffd;
	*c = v;
	return i + 1;
}

/*
 * The end of the tag at s[0] == '<': the index after its '>', or n. Quoted
 * attribute values may hold '>'; a quote left open runs to the first '>'.
 */
static gsize html_tag_end(const guint8 *s, gsize n)
{
	guint8 quote = 0;
	gsize first_gt = 0;

	for (gsize i = 1; i < n; i++) {
		guint8 c = s[i];

		if (c == '>' && !first_gt)
			first_gt = i + 1;
		if (quote) {
			if (c == quote)
				quote = 0;
		} else if (c == '>') {
			return i + 1;
		} else if ((c == '"' || c == '\'') && s[i - 1] == '=') {
			quote = c;
		}
	}
	return first_gt ? first_gt : n;
}

/*
 * Where raw content (script, style, head) ends: at "</NAME" (any case) or
 * at one of the stop words, or n. The closing tag itself is left to be read
 * as a tag.
 */
static gsize html_skip_raw(const guint8 *s, gsize n, const char *close, const char *also)
{
	for (gsize i = 0; i < n; i++) {
		const guint8 *lt;

		lt = memchr(s + i, '<', n - i);
		if (!lt)
			return n;
		i = (gsize)(lt - s);
		if (starts_with_ci(s + i, n - i, close) || (also && starts_with_ci(s + i, n - i, also)))
			return i;
	}
	return n;
}

enum tag_kind { TAG_OTHER, TAG_BREAK, TAG_BLOCK, TAG_LI, TAG_PRE, TAG_RAW, TAG_CELL };

static enum tag_kind tag_kind(const char *name)
{
	static const char *const blocks[] = { "p", "div", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
					      "table", "blockquote", NULL };

	if (strcmp(name, "br") == 0)
		return TAG_BREAK;
	if (strcmp(name, "li") == 0)
		return TAG_LI;
	if (strcmp(name, "pre") == 0)
		return TAG_PRE;
	if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0)
		return TAG_CELL;
	if (strcmp(name, "script") == 0 || strcmp(name, "style") == 0 || strcmp(name, "head") == 0)
		return TAG_RAW;
	for (const char *const *b = blocks; *b; b++)
		if (strcmp(name, *b) == 0)
			return TAG_BLOCK;
	return TAG_OTHER;
}

/* A tag s[0..n) read and acted on; returns where its raw content ends (script...). */
static gsize html_tag(struct html_out *o, const guint8 *s, gsize n, const guint8 *rest, gsize rest_n)
{
	char name[12];
	gsize i = 1, k = 0;
	gboolean closing = FALSE;
	enum tag_kind kind;

	if (i < n && s[i] == '/') {
		closing = TRUE;
		i++;
	}
	for (; i < n && (g_ascii_isalnum(s[i])); i++) {
		if (k + 1 < sizeof(name))
			name[k++] = g_ascii_tolower((char)s[i]);
		else
			k = sizeof(name); /* too long to be one we know */
	}
	if (k >= sizeof(name))
		return 0;
	name[k] = '\0';
	kind = tag_kind(name);
	switch (kind) {
	case TAG_BREAK:
		html_line_end(o);
		break;
	case TAG_BLOCK:
		if (closing)
			html_block_end(o);
		break;
	case TAG_LI:
		if (closing) {
			html_block_end(o);
		} else {
			/* An item starts on a line of its own. */
			html_block_end(o);
			o->pending_space = FALSE;
			html_text(o, (const guint8 *)"* ", 2);
			o->no_blank = TRUE;
		}
		break;
	case TAG_PRE:
		if (closing) {
			if (o->pre)
				o->pre--;
			html_block_end(o);
		} else {
			o->pre++;
		}
		break;
	case TAG_RAW:
		if (!closing && !(n >= 2 && s[n - 2] == '/' && s[n - 1] == '>')) {
			char close[10];

			g_snprintf(close, sizeof(close), "</%s", name);
			return html_skip_raw(rest, rest_n, close,
					     strcmp(name, "head") == 0 ? "<body" : NULL);
		}
		break;
	case TAG_CELL:
		/* Cells of a row stay apart: "a b", not "ab". */
		if (closing)
			html_blank(o, ' ');
		break;
	case TAG_OTHER:
		break;
	}
	return 0;
}

GByteArray *mime_html_to_text(const guint8 *data, gsize len)
{
	struct html_out o = { .buf = g_byte_array_sized_new((guint)MIN(len / 2 + 16, (gsize)DECODE_CHUNK * 16)),
			      .at_line_start = TRUE };
	gsize pos = 0;

	while (pos < len) {
		guint8 c = data[pos];
		gsize left = len - pos;

		if (c == '<' && left >= 4 && memcmp(data + pos, "<!--", 4) == 0) {
			const guint8 *end = memmem(data + pos + 4, left - 4, "-->", 3);

			pos = end ? (gsize)(end - data) + 3 : len;
		} else if (c == '<' && left >= 2 &&
			   (is_ascii_alpha(data[pos + 1]) || data[pos + 1] == '/' ||
			    data[pos + 1] == '!' || data[pos + 1] == '?')) {
			gsize tag_len = html_tag_end(data + pos, left);
			gsize raw;

			raw = html_tag(&o, data + pos, tag_len, data + pos + tag_len, left - tag_len);
			pos += tag_len + raw;
		} else if (c == '&') {
			gunichar u = 0;
			gsize n = html_entity(data + pos, MIN(left, (gsize)16), &u);

			if (n) {
				html_char(&o, u);
				pos += n;
			} else {
				html_text(&o, &c, 1);
				pos++;
			}
		} else if (c == '\r' || c == '\n') {
			/* A line end of the source is a space, as a browser shows
			   it, except inside <pre>. */
			if (o.pre)
				html_line_end(&o);
			else
				html_blank(&o, ' ');
			pos += (c == '\r' && left >= 2 && data[pos + 1] == '\n') ? 2 : 1;
		} else if (c == ' ' || c == '\t') {
			html_blank(&o, c);
			pos++;
		} else if (c == 0) {
			pos++; /* as in mime_text_to_utf8 */
		} else {
			/* A run of plain text at once. */
			gsize n = 1;

			while (n < left && !html_special(data[pos + n]))
				n++;
			html_text(&o, data + pos, n);
			pos += n;
		}
	}
	if (o.buf->len > 0)
		g_byte_array_append(o.buf, (const guint8 *)"\n", 1);
	return o.buf;
}

/* ---- header block --------------------------------------------------------- */

/* The length of a field name at the start of line (before blanks and ':'), or 0. */
static gsize field_name_len(const guint8 *line, gsize len, gsize *value)
{
	gsize i = 0, name_len;

	while (i < len && line[i] > 0x20 && line[i] < 0x7f && line[i] != ':')
		i++;
	name_len = i;
	/* RFC 5322 §4.5 obsolete syntax: blanks between name and colon. */
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (name_len == 0 || i >= len || line[i] != ':')
		return 0;
	*value = i + 1;
	return name_len;
}

static void flush_field(GByteArray *out, GString *name, GString *raw)
{
	char *value;

	if (name->len == 0)
		return;
	value = mail_headers_decode_text(raw->str, raw->len);
	g_byte_array_append(out, (const guint8 *)name->str, (guint)name->len);
	g_byte_array_append(out, (const guint8 *)": ", value[0] ? 2 : 1);
	g_byte_array_append(out, (const guint8 *)value, (guint)strlen(value));
	g_byte_array_append(out, (const guint8 *)"\n", 1);
	g_free(value);
	g_string_truncate(name, 0);
	g_string_truncate(raw, 0);
}

GByteArray *mime_headers_text(const guint8 *data, gsize len)
{
	GByteArray *out = g_byte_array_sized_new((guint)MIN(len + 16, (gsize)DECODE_CHUNK * 16));
	GString *name = g_string_new(NULL);
	GString *raw = g_string_new(NULL);
	gsize pos = 0;

	while (pos < len) {
		const guint8 *line = data + pos;
		const guint8 *nl = memchr(line, '\n', len - pos);
		gsize line_len = nl ? (gsize)(nl - line) : len - pos;
		gsize value = 0, name_len;

		pos += line_len + (nl ? 1 : 0);
		if (line_len > 0 && line[line_len - 1] == '\r')
			line_len--;
		if (line_len == 0)
			break; /* end of the header block */
		if (line[0] == ' ' || line[0] == '\t') {
			/* Unfold: the line break goes, the leading blank stays. */
			if (name->len)
				g_string_append_len(raw, (const char *)line, (gssize)line_len);
			continue;
		}
		flush_field(out, name, raw);
		name_len = field_name_len(line, line_len, &value);
		if (name_len == 0)
			continue; /* not a field: skipped */
		g_string_append_len(name, (const char *)line, (gssize)name_len);
		g_string_append_len(raw, (const char *)line + value, (gssize)(line_len - value));
	}
	flush_field(out, name, raw);
	g_string_free(name, TRUE);
	g_string_free(raw, TRUE);
	return out;
}
