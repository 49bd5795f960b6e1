/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_decode on arbitrary bytes; the first byte picks the transfer encoding
 * and the charset. Never crashes, and: transfer decoding writes no more than
 * it reads (and the padding it adds); text comes out valid UTF-8 without NUL
 * or CR; HTML from valid UTF-8 stays valid, without NUL, leading or trailing
 * blank lines or more than one empty line in a row; a header block comes out
 * valid UTF-8, each line a "Name:" field, no control but TAB.
 */
#include "fuzz.h"
#include "model/mime_decode.h"

#include <string.h>

static const char *const encodings[] = { "base64", "quoted-printable", "x-uuencode", "7bit", NULL };
static const char *const charsets[] = {
	"utf-8", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis", "iso-2022-jp",
	"utf-16", "utf-7", "gb18030", "euc-kr", "big5", "us-ascii", "x-unknown", NULL,
};

static void check_utf8_text(const GByteArray *b)
{
	CHECK(g_utf8_validate_len((const char *)b->data, b->len, NULL));
	CHECK(!memchr(b->data, '\r', b->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	guint8 pick = size ? data[0] : 0;
	const guint8 *in = size ? data + 1 : data;
	gsize len = size ? size - 1 : 0;
	GByteArray *b;

	b = mime_decode_transfer(encodings[pick % G_N_ELEMENTS(encodings)], in, len);
	CHECK(b->len <= len + 2);
	g_byte_array_unref(b);

	b = mime_text_to_utf8(charsets[(pick >> 3) % G_N_ELEMENTS(charsets)], in, len);
	check_utf8_text(b);
	CHECK(!memchr(b->data, 0, b->len));
	g_byte_array_unref(b);

	b = mime_html_to_text(in, len);
	CHECK(b->len <= len + 1);
	CHECK(!memchr(b->data, 0, b->len));
	if (g_utf8_validate_len((const char *)in, len, NULL))
		check_utf8_text(b);
	if (b->len) {
		CHECK(b->data[0] != '\n' && b->data[b->len - 1] == '\n');
		CHECK(b->len < 2 || b->data[b->len - 2] != '\n');
		CHECK(!g_strstr_len((const char *)b->data, b->len, "\n\n\n"));
	}
	g_byte_array_unref(b);

	b = mime_headers_text(in, len);
	check_utf8_text(b);
	CHECK(b->len == 0 || b->data[b->len - 1] == '\n');
	for (guint i = 0; i < b->len; i++)
		CHECK(b->data[i] >= 0x20 || b->data[i] == '\t' || b->data[i] == '\n');
	for (gsize pos = 0; pos < b->len;) {
		const guint8 *nl = memchr(b->data + pos, '\n', b->len - pos);
		const guint8 *colon = memchr(b->data + pos, ':', (gsize)(nl - (b->data + pos)));

		CHECK(colon && colon > b->data + pos);
		pos = (gsize)(nl - b->data) + 1;
	}
	g_byte_array_unref(b);
	return 0;
}
