/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/log.h"

#include <string.h>

static void test_escape_table(void)
{
	static const struct {
		const char *in;
		size_t len;
		size_t max;
		const char *out;
	} cases[] = {
		{ "plain text", 10, 100, "plain text" },
		{ "a\r\nb", 4, 100, "a\\r\\nb" },
		{ "esc\x1b[31m", 8, 100, "esc\\x1b[31m" },
		{ "back\\slash", 10, 100, "back\\\\slash" },
		{ "nul\0byte", 8, 100, "nul\\x00byte" },
		{ "Entw\xc3\xbcrfe", 9, 100, "Entw\xc3\xbcrfe" },
		{ "bad\xc3(", 5, 100, "bad\\xc3(" },
		{ "cut \xc3\xbc", 6, 5, "cut \\xc3..." },
		{ "0123456789", 10, 4, "0123..." },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = mfs_log_escape(cases[i].in, cases[i].len, cases[i].max);

		g_assert_cmpstr(got, ==, cases[i].out);
	}
}

static void test_categories(void)
{
	unsigned cats = 0;
	GError *err = NULL;

	g_assert_true(mfs_log_parse_categories("imap, cache", &cats, &err));
	g_assert_cmpuint(cats, ==, MFS_LOG_IMAP | MFS_LOG_CACHE);
	g_assert_true(mfs_log_parse_categories("", &cats, &err));
	g_assert_cmpuint(cats, ==, 0);
	g_assert_false(mfs_log_parse_categories("imap,smtp", &cats, &err));
	g_assert_nonnull(strstr(err->message, "smtp"));
	g_clear_error(&err);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/log/escape", test_escape_table);
	g_test_add_func("/log/categories", test_categories);
	return g_test_run();
}
