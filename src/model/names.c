/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/names.h"

#include <string.h>

static const char hex_digits[] = "0123456789ABCDEF";

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629 table 3-7), or 0.
 * Written out rather than taken from GLib so the escape rule is fixed here.
 */
static size_t utf8_seq_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0) {
		n = 2;
	} else if (c < 0xf0) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c < 0xf5) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	}
	return n;
}

static void append_escaped(GString *out, unsigned char c)
{
	g_string_append_c(out, '%');
	g_string_append_c(out, hex_digits[c >> 4]);
	g_string_append_c(out, hex_digits[c & 0xf]);
}

/* ^[0-9]+(-.*)?\.eml$ : what a message file name could be taken for. */
static gboolean looks_like_message(const char *s)
{
	const char *p = s;
	size_t rest;

	while (g_ascii_isdigit(*p))
		p++;
	if (p == s)
		return FALSE;
	rest = strlen(p);
	if (strcmp(p, ".eml") == 0)
		return TRUE;
	return *p == '-' && rest >= 5 && strcmp(p + rest - 4, ".eml") == 0;
}

char *names_escape(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	GString *out;
	size_t i = 0;

	if (len == 0)
		return g_strdup("%");
	out = g_string_sized_new(len + 8);
	while (i < len) {
		unsigned char c = p[i];
		size_t n = utf8_seq_len(p + i, len - i);

		if (n == 2 && c == 0xc2 && p[i + 1] < 0xa0) {
			/* C1 control U+0080..U+009F: a terminal may act on it. */
			append_escaped(out, p[i]);
			append_escaped(out, p[i + 1]);
			i += 2;
			continue;
		}
		if (n == 0 || c < 0x20 || c == 0x7f || c == '%' || c == '/' ||
		    (i == 0 && c == '.')) {
			append_escaped(out, c);
			i++;
			continue;
		}
		g_string_append_len(out, (const char *)p + i, (gssize)n);
		i += n;
	}
	if (looks_like_message(out->str)) {
		char first[4] = { '%', '3', out->str[0], '\0' };

		g_string_erase(out, 0, 1);
		g_string_prepend(out, first);
	}
	return g_string_free(out, FALSE);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lower case too: only one spelling per byte */
}

static char *unescape_fail(GError **err, const char *component, const char *why)
{
	g_set_error(err, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
		    "'%s' is not an escaped name: %s", component, why);
	return NULL;
}

char *names_unescape(const char *component, size_t *out_len, GError **err)
{
	GString *out;
	g_autofree char *again = NULL;
	size_t len;

	if (*component == '\0')
		return unescape_fail(err, component, "empty");
	if (strcmp(component, "%") == 0) {
		if (out_len)
			*out_len = 0;
		return g_strdup("");
	}
	out = g_string_sized_new(strlen(component));
	for (const char *p = component; *p; p++) {
		int hi, lo;

		if (*p != '%') {
			g_string_append_c(out, *p);
			continue;
		}
		hi = hex_value(p[1]);
		lo = hi < 0 ? -1 : hex_value(p[2]);
		if (hi < 0 || lo < 0) {
			g_string_free(out, TRUE);
			return unescape_fail(err, component,
					     "'%' not followed by two upper-case hex digits");
		}
		g_string_append_c(out, (char)(hi << 4 | lo));
		p += 2;
	}
	/* Only the canonical spelling is accepted, so the mapping stays one-to-one. */
	again = names_escape(out->str, out->len);
	if (strcmp(again, component) != 0) {
		g_string_free(out, TRUE);
		return unescape_fail(err, component, "not in canonical form");
	}
	len = out->len;
	if (out_len)
		*out_len = len;
	return g_string_free(out, FALSE);
}

/*
 * RFC 2047 decoding, done here rather than by GMime so the frozen name rule
 * depends on neither the GMime version nor the locale (GMime converts words
 * in an unknown charset with the locale's charset).
 */

/* Append UTF-8 text, NUL as U+FFFD so it is dropped like any other non-letter. */
static void append_utf8(GString *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0')
			g_string_append(out, "\xef\xbf\xbd");
		else
			g_string_append_c(out, s[i]);
	}
}

static gboolean append_converted(GString *out, const char *s, size_t len, const char *charset)
{
	gsize written = 0;
	g_autofree char *conv =
		g_convert(s, (gssize)len, "UTF-8", charset, NULL, &written, NULL);

	if (!conv)
		return FALSE;
	append_utf8(out, conv, written);
	return TRUE;
}

/*
 * Text in no declared charset (raw 8-bit, or a word in an unknown or wrong
 * one): UTF-8 where valid, else windows-1252, else ISO-8859-1, which takes
 * any byte. Never the locale's charset.
 */
static void append_8bit(GString *out, const char *s, size_t len)
{
	if (memchr(s, '\0', len) == NULL && g_utf8_validate_len(s, len, NULL)) {
		g_string_append_len(out, s, (gssize)len);
		return;
	}
	if (append_converted(out, s, len, "WINDOWS-1252"))
		return;
	if (!append_converted(out, s, len, "ISO-8859-1")) {
		g_autofree char *valid = g_utf8_make_valid(s, (gssize)len);

		append_utf8(out, valid, strlen(valid));
	}
}

struct eword {
	char charset[41];
	char encoding; /* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	size_t total_len;
};

/* "=?charset[*lang]?B|Q?text?=" at p; text holds no space and no '?'. */
static gboolean parse_eword(const char *p, struct eword *w)
{
	const char *cs = p + 2, *q = cs, *text;
	size_t cs_len;

	while (*q > ' ' && *q < 0x7f && *q != '?')
		q++;
	if (*q != '?' || q == cs)
		return FALSE;
	if (!strchr("BbQq", q[1]) || q[1] == '\0' || q[2] != '?')
		return FALSE;
	text = q + 3;
	w->encoding = g_ascii_toupper(q[1]);
	cs_len = (size_t)(q - cs);
	q = text;
	while (*q > ' ' && *q < 0x7f && *q != '?')
		q++;
	if (q[0] != '?' || q[1] != '=')
		return FALSE;
	w->text = text;
	w->text_len = (size_t)(q - text);
	w->total_len = (size_t)(q + 2 - p);
	/* RFC 2231 language suffix; a name iconv should not see is "unknown". */
	cs_len = MIN(cs_len, strcspn(cs, "*?"));
	if (cs_len >= sizeof(w->charset) || strspn(cs, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
						   "abcdefghijklmnopqrstuvwxyz"
						   "0123456789._:-") < cs_len)
		cs_len = 0;
	memcpy(w->charset, cs, cs_len);
	w->charset[cs_len] = '\0';
	return TRUE;
}

static void eword_decode(const struct eword *w, GByteArray *bytes)
{
	if (w->encoding == 'B') {
		gint state = 0;
		guint save = 0;
		gsize start = bytes->len;
		gsize n;

		g_byte_array_set_size(bytes, (guint)(start + w->text_len / 4 * 3 + 3));
		n = g_base64_decode_step(w->text, w->text_len, bytes->data + start, &state, &save);
		g_byte_array_set_size(bytes, (guint)(start + n));
		return;
	}
	for (size_t i = 0; i < w->text_len; i++) {
		char c = w->text[i];
		int hi, lo;
		guint8 b = (guint8)c;

		if (c == '_') {
			b = ' ';
		} else if (c == '=' && i + 2 < w->text_len &&
			   (hi = g_ascii_xdigit_value(w->text[i + 1])) >= 0 &&
			   (lo = g_ascii_xdigit_value(w->text[i + 2])) >= 0) {
			b = (guint8)(hi << 4 | lo);
			i += 2;
		}
		g_byte_array_append(bytes, &b, 1);
	}
}

static void flush_words(GString *out, GByteArray *bytes, const char *charset)
{
	const char *data = (const char *)bytes->data;

	if (bytes->len == 0)
		return;
	if (g_ascii_strcasecmp(charset, "UTF-8") == 0 || g_ascii_strcasecmp(charset, "UTF8") == 0) {
		g_autofree char *valid = g_utf8_make_valid(data, bytes->len);

		append_utf8(out, valid, strlen(valid));
	} else if (!charset[0] || !append_converted(out, data, bytes->len, charset)) {
		append_8bit(out, data, bytes->len);
	}
	g_byte_array_set_size(bytes, 0);
}

static gboolean all_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!g_ascii_isspace(s[i]))
			return FALSE;
	}
	return TRUE;
}

/*
 * Encoded words are found anywhere, even inside a word (as GMime's loose
 * mode does); whitespace between two of them is dropped (RFC 2047 §6.2);
 * the bytes of adjacent words in the same charset are joined before
 * conversion, since mailers split multi-byte characters across words.
 */
static char *rfc2047_decode(const char *raw)
{
	GString *out = g_string_sized_new(strlen(raw) + 1);
	g_autoptr(GByteArray) bytes = g_byte_array_new();
	char charset[41] = "";
	const char *p = raw, *lit = raw;
	gboolean after_word = FALSE;

	while (*p) {
		struct eword w;

		if (p[0] != '=' || p[1] != '?' || !parse_eword(p, &w)) {
			p++;
			continue;
		}
		if (p > lit && !(after_word && all_space(lit, (size_t)(p - lit)))) {
			flush_words(out, bytes, charset);
			append_8bit(out, lit, (size_t)(p - lit));
		}
		if (g_ascii_strcasecmp(charset, w.charset) != 0) {
			flush_words(out, bytes, charset);
			memcpy(charset, w.charset, sizeof(charset));
		}
		eword_decode(&w, bytes);
		after_word = TRUE;
		p += w.total_len;
		lit = p;
	}
	flush_words(out, bytes, charset);
	if (p > lit)
		append_8bit(out, lit, (size_t)(p - lit));
	return g_string_free(out, FALSE);
}

/* The rule's character classes are GLib's Unicode ones; ASCII is answered
   without the tables (the same answers: a unit test compares every byte),
   since a listing names every message and most subjects are ASCII. */
static gboolean slug_space(gunichar c)
{
	if (c < 0x80)
		return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
	return g_unichar_isspace(c);
}

static gboolean slug_allowed(gunichar c)
{
	switch (c) {
	case '.':
	case '-':
	case '_':
	case '+':
	case ',':
	case '@':
	case '=':
		return TRUE;
	default:
		if (c < 0x80)
			return g_ascii_isalnum((char)c);
		return g_unichar_isalpha(c) || g_unichar_isdigit(c);
	}
}

/* c appended to the slug's out[*len]; FALSE when it would pass NAMES_SLUG_MAX. */
static gboolean slug_append(char *out, size_t *len, gunichar c)
{
	char buf[8];
	int n;

	if (c < 0x80) {
		if (*len + 1 > NAMES_SLUG_MAX)
			return FALSE;
		out[(*len)++] = (char)c;
		return TRUE;
	}
	n = g_unichar_to_utf8(c, buf);
	if (*len + (size_t)n > NAMES_SLUG_MAX)
		return FALSE;
	memcpy(out + *len, buf, (size_t)n);
	*len += (size_t)n;
	return TRUE;
}

/* ASCII without an encoded word: decoding and NFC would leave it as it is. */
static gboolean plain_ascii(const char *s)
{
	for (; *s; s++) {
		if ((guchar)*s >= 0x80 || (s[0] == '=' && s[1] == '?'))
			return FALSE;
	}
	return TRUE;
}

char *names_subject_slug(const char *raw_subject)
{
	g_autofree char *decoded = NULL;
	g_autofree char *nfc = NULL;
	const char *text;
	char out[NAMES_SLUG_MAX];
	size_t len = 0;
	gboolean started = FALSE, pending_space = FALSE;

	if (!raw_subject)
		return g_strdup("");
	if (plain_ascii(raw_subject)) {
		text = raw_subject;
	} else {
		decoded = rfc2047_decode(raw_subject);
		nfc = g_utf8_normalize(decoded, -1, G_NORMALIZE_NFC);
		text = nfc ? nfc : "";
	}
	/* Into a buffer of the slug's size: a listing names every message. */
	for (const char *p = text; *p; p += g_utf8_skip[*(const guchar *)p]) {
		gunichar c = (guchar)*p < 0x80 ? (gunichar)*p : g_utf8_get_char(p);

		if (slug_space(c)) {
			pending_space = started;
			continue;
		}
		started = TRUE;
		/* The run becomes '_' even when the character after it is dropped. */
		if (pending_space) {
			pending_space = FALSE;
			if (!slug_append(out, &len, '_'))
				break;
		}
		if (slug_allowed(c) && !slug_append(out, &len, c))
			break;
	}
	return g_strndup(out, len);
}

char *names_message_name(uint32_t uid, const char *slug)
{
	/* Put together by hand: printf costs more than the rest of a name,
	   and a listing names every message. */
	char digits[10];
	size_t nd = 0, ns = slug ? strlen(slug) : 0;
	char *name, *p;

	g_return_val_if_fail(uid != 0, NULL);
	g_return_val_if_fail(ns <= NAMES_SLUG_MAX && (!slug || !strchr(slug, '/')) &&
				     (!slug || g_utf8_validate(slug, (gssize)ns, NULL)),
			     NULL);
	do {
		digits[nd++] = (char)('0' + uid % 10);
		uid /= 10;
	} while (uid);
	p = name = g_malloc(nd + (ns ? 1 + ns : 0) + sizeof(".eml"));
	while (nd)
		*p++ = digits[--nd];
	if (ns) {
		*p++ = '-';
		memcpy(p, slug, ns);
		p += ns;
	}
	memcpy(p, ".eml", sizeof(".eml"));
	return name;
}

gboolean names_parse_uid(const char *name, uint32_t *uid)
{
	const char *p = name;
	uint64_t v = 0;
	size_t rest;

	if (!name || *p < '1' || *p > '9')
		return FALSE;
	while (g_ascii_isdigit(*p)) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return FALSE;
		p++;
	}
	rest = strlen(p);
	if (strcmp(p, ".eml") != 0 &&
	    !(*p == '-' && rest >= 5 && strcmp(p + rest - 4, ".eml") == 0))
		return FALSE;
	if (uid)
		*uid = (uint32_t)v;
	return TRUE;
}
