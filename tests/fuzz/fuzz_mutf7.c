/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Properties: decode(encode(x)) == x for valid UTF-8 x; decoding arbitrary
 * bytes never crashes, and what decodes re-encodes to the same wire bytes.
 */
#include "fuzz.h"
#include "protocol/mutf7.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static gboolean printable_ascii(const char *s)
{
	for (; *s; s++) {
		if (*s < 0x20 || *s > 0x7e)
			return FALSE;
	}
	return TRUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *s = g_strndup((const char *)data, size);
	g_autofree char *dec = NULL;
	GError *err = NULL;

	if (g_utf8_validate(s, -1, NULL)) {
		g_autofree char *wire = mutf7_encode(s, NULL);
		g_autofree char *back = NULL;

		CHECK(wire && printable_ascii(wire));
		back = mutf7_decode(wire, NULL);
		CHECK(back && strcmp(back, s) == 0);
	} else {
		CHECK(mutf7_encode(s, &err) == NULL && err);
		g_clear_error(&err);
	}

	dec = mutf7_decode(s, &err);
	if (dec) {
		g_autofree char *again = mutf7_encode(dec, NULL);

		CHECK(g_utf8_validate(dec, -1, NULL));
		CHECK(again && strcmp(again, s) == 0);
	} else {
		CHECK(err != NULL);
		g_clear_error(&err);
	}
	return 0;
}
