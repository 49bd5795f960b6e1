/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * names_subject_slug() on arbitrary header bytes: never crashes, and the
 * slug is valid UTF-8, at most NAMES_SLUG_MAX bytes, made only of letters,
 * digits and . - _ + , @ = ; the message name built from it parses back.
 */
#include "fuzz.h"
#include "model/names.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *subject = g_strndup((const char *)data, size);
	g_autofree char *slug = names_subject_slug(subject);
	g_autofree char *name = NULL;
	uint32_t uid = 0;

	CHECK(slug != NULL);
	CHECK(strlen(slug) <= NAMES_SLUG_MAX);
	CHECK(g_utf8_validate(slug, -1, NULL));
	for (const char *p = slug; *p; p += g_utf8_skip[*(const guchar *)p]) {
		gunichar c = g_utf8_get_char(p);

		CHECK(g_unichar_isalpha(c) || g_unichar_isdigit(c) ||
		      (c < 0x80 && strchr(".-_+,@=", (int)c)));
	}
	name = names_message_name(4711, slug);
	CHECK(name && strlen(name) <= 255 && name[0] != '.');
	CHECK(names_parse_uid(name, &uid) && uid == 4711);
	return 0;
}
