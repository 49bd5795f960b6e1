/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Properties of the one reversible name escape: the output of names_escape()
 * is never "", "." or "..", holds no '/' or NUL, is valid UTF-8, is never
 * taken for a message file, and unescapes to the input bytes exactly; a
 * component that unescapes escapes back to itself.
 */
#include "fuzz.h"
#include "model/names.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *esc = names_escape((const char *)data, size);
	g_autofree char *back = NULL;
	g_autofree char *str = g_strndup((const char *)data, size);
	g_autofree char *raw = NULL;
	size_t len = 0;

	CHECK(esc != NULL);
	CHECK(strcmp(esc, "") != 0 && strcmp(esc, ".") != 0 && strcmp(esc, "..") != 0);
	CHECK(strchr(esc, '/') == NULL);
	CHECK(g_utf8_validate(esc, -1, NULL));
	CHECK(!names_parse_uid(esc, NULL));
	back = names_unescape(esc, &len, NULL);
	CHECK(back != NULL && len == size && memcmp(back, data, size) == 0);

	/* the other direction, on the input taken as a component */
	raw = names_unescape(str, &len, NULL);
	if (raw) {
		g_autofree char *again = names_escape(raw, len);

		CHECK(strcmp(again, str) == 0);
	}
	return 0;
}
