/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The POP3 multi-line reader with dot-unstuffing. Properties:
 *  - any bytes: no crash; output never longer than what was consumed; fed
 *    in two pieces it gives exactly what it gives fed whole;
 *  - valid input (every line starting with "." stuffed, ended by "." CRLF):
 *    re-stuffing the output and adding the terminator gives the input back;
 *  - the input taken as a message: stuffed, terminated and read back, it is
 *    the message again, byte for byte.
 * The status-line and listing-line parsers get the same bytes too.
 */
#include "fuzz.h"
#include "protocol/pop3.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int collect(void *ud, const void *p, size_t len)
{
	g_byte_array_append(ud, p, (guint)len);
	return 0;
}

static GByteArray *stuff(const guint8 *p, size_t len)
{
	GByteArray *w = g_byte_array_sized_new((guint)(len + len / 2 + 3));

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '.' && (i == 0 || p[i - 1] == '\n'))
			g_byte_array_append(w, (const guint8 *)".", 1);
		g_byte_array_append(w, p + i, 1);
	}
	g_byte_array_append(w, (const guint8 *)".\r\n", 3);
	return w;
}

/* Every dot line of prefix stuffed, and the end is "." CRLF at a line start. */
static gboolean canonical(const uint8_t *p, size_t n)
{
	if (n < 3 || memcmp(p + n - 3, ".\r\n", 3) != 0 || (n > 3 && p[n - 4] != '\n'))
		return FALSE;
	for (size_t i = 0; i < n - 3; i++)
		if (p[i] == '.' && (i == 0 || p[i - 1] == '\n') && (i + 1 >= n - 3 || p[i + 1] != '.'))
			return FALSE;
	return TRUE;
}

static void parsers(const uint8_t *data, size_t size)
{
	struct pop3_reply r;
	guint32 num;
	guint64 n64;
	char *uidl = NULL;

	if (pop3_parse_reply((const char *)data, size, &r)) {
		CHECK(r.text != NULL);
		if (r.code)
			CHECK(strlen(r.code) >= 1 && strlen(r.code) <= 64);
		pop3_reply_clear(&r);
	}
	if (pop3_parse_uidl_line((const char *)data, size, &num, &uidl)) {
		CHECK(num > 0 && pop3_uidl_valid(uidl, strlen(uidl)));
		g_free(uidl);
	}
	if (pop3_parse_list_line((const char *)data, size, &num, &n64))
		CHECK(num > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GByteArray) whole = g_byte_array_new();
	g_autoptr(GByteArray) split = g_byte_array_new();
	struct pop3_dot_reader d, d2;
	size_t used, used2, cut;

	parsers(data, size);

	pop3_dot_reader_init(&d);
	used = pop3_dot_reader_feed(&d, data, size, collect, whole);
	CHECK(used <= size);
	CHECK(whole->len <= used);
	CHECK(d.out == whole->len);
	CHECK(d.done || used == size);

	cut = size ? data[0] % (size + 1) : 0;
	pop3_dot_reader_init(&d2);
	used2 = pop3_dot_reader_feed(&d2, data, cut, collect, split);
	if (used2 == cut)
		used2 += pop3_dot_reader_feed(&d2, data + cut, size - cut, collect, split);
	CHECK(used2 == used && d2.done == d.done);
	CHECK(split->len == whole->len &&
	      (whole->len == 0 || memcmp(split->data, whole->data, whole->len) == 0));

	if (d.done && canonical(data, used)) {
		g_autoptr(GByteArray) again = stuff(whole->data, whole->len);

		CHECK(again->len == used && (used == 0 || memcmp(again->data, data, used) == 0));
	}

	/* The bytes as a message: up to its last line end. */
	{
		size_t mlen = size;
		g_autoptr(GByteArray) wire = NULL;
		g_autoptr(GByteArray) back = g_byte_array_new();
		struct pop3_dot_reader d3;

		while (mlen > 0 && data[mlen - 1] != '\n')
			mlen--;
		wire = stuff(data, mlen);
		pop3_dot_reader_init(&d3);
		CHECK(pop3_dot_reader_feed(&d3, wire->data, wire->len, collect, back) == wire->len);
		CHECK(d3.done);
		CHECK(back->len == mlen && (mlen == 0 || memcmp(back->data, data, mlen) == 0));
	}
	return 0;
}
