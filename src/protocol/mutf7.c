/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/mutf7.h"

#include <string.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static gboolean is_direct(gunichar c)
{
	return c >= 0x20 && c <= 0x7e;
}

static char *fail(GString *out, GError **err, const char *why, size_t offset)
{
	g_set_error(err, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
		    "invalid modified UTF-7 at offset %zu: %s", offset, why);
	g_string_free(out, TRUE);
	return NULL;
}

char *mutf7_decode(const char *wire, GError **err)
{
	const unsigned char *base = (const unsigned char *)wire;
	const unsigned char *p = base;
	GString *out = g_string_new(NULL);
	gboolean after_shift = FALSE;

	while (*p) {
		size_t at = (size_t)(p - base);
		guint32 bits = 0;
		unsigned nbits = 0;
		gunichar high = 0;

		if (*p < 0x20 || *p > 0x7e)
			return fail(out, err, "byte is not printable ASCII", at);
		if (*p != '&') {
			g_string_append_c(out, (char)*p++);
			after_shift = FALSE;
			continue;
		}
		p++;
		if (*p == '-') {
			g_string_append_c(out, '&');
			p++;
			after_shift = FALSE;
			continue;
		}
		/* Two shifts in a row would have been written as one. */
		if (after_shift)
			return fail(out, err, "shift directly follows another shift", at);

		while (*p != '-') {
			int v = b64_value(*p);

			if (v < 0)
				return fail(out, err,
					    *p ? "character outside modified BASE64 in shift"
					       : "shift not closed with '-'",
					    (size_t)(p - base));
			bits = (bits << 6) | (guint32)v;
			nbits += 6;
			if (nbits >= 16) {
				gunichar u;

				nbits -= 16;
				u = (bits >> nbits) & 0xffff;
				bits &= (1u << nbits) - 1;
				if (high) {
					if (u < 0xdc00 || u > 0xdfff)
						return fail(out, err, "high surrogate without low", at);
					g_string_append_unichar(
						out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
					high = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					high = u;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					return fail(out, err, "low surrogate without high", at);
				} else if (u == 0 || is_direct(u)) {
					return fail(out, err, "shift encodes NUL or printable ASCII",
						    at);
				} else {
					g_string_append_unichar(out, u);
				}
			}
			p++;
		}
		/* Leftover bits: fewer than one BASE64 digit, and all zero. */
		if (nbits >= 6 || bits != 0)
			return fail(out, err, "shift does not end on a UTF-16 unit", at);
		if (high)
			return fail(out, err, "high surrogate without low", at);
		p++;
		after_shift = TRUE;
	}
	return g_string_free(out, FALSE);
}

static void flush_shift(GString *out, guint32 bits, unsigned nbits)
{
	if (nbits > 0)
		g_string_append_c(out, b64_alphabet[(bits << (6 - nbits)) & 63]);
	g_string_append_c(out, '-');
}

char *mutf7_encode(const char *utf8, GError **err)
{
	const char *bad = NULL;
	GString *out;
	gboolean shifted = FALSE;
	guint32 bits = 0;
	unsigned nbits = 0;

	if (!g_utf8_validate(utf8, -1, &bad)) {
		g_set_error(err, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
			    "invalid UTF-8 at offset %zu", (size_t)(bad - utf8));
		return NULL;
	}
	out = g_string_sized_new(strlen(utf8) + 1);
	for (const char *p = utf8; *p; p += g_utf8_skip[*(const guchar *)p]) {
		gunichar c = g_utf8_get_char(p);
		gunichar units[2];
		unsigned n = 0;

		if (is_direct(c)) {
			if (shifted) {
				flush_shift(out, bits, nbits);
				shifted = FALSE;
			}
			if (c == '&')
				g_string_append(out, "&-");
			else
				g_string_append_c(out, (char)c);
			continue;
		}
		if (!shifted) {
			g_string_append_c(out, '&');
			shifted = TRUE;
			bits = 0;
			nbits = 0;
		}
		if (c >= 0x10000) {
			units[n++] = 0xd800 + ((c - 0x10000) >> 10);
			units[n++] = 0xdc00 + ((c - 0x10000) & 0x3ff);
		} else {
			units[n++] = c;
		}
		for (unsigned i = 0; i < n; i++) {
			bits = (bits << 16) | units[i];
			nbits += 16;
			while (nbits >= 6) {
				nbits -= 6;
				g_string_append_c(out, b64_alphabet[(bits >> nbits) & 63]);
			}
			bits &= (1u << nbits) - 1;
		}
	}
	if (shifted)
		flush_shift(out, bits, nbits);
	return g_string_free(out, FALSE);
}
