/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/uidset.h"

static char *show(const GArray *a)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < a->len; i++) {
		const struct uid_range *r = &g_array_index(a, struct uid_range, i);

		g_string_append_printf(s, "%s%u-%u", i ? "," : "", r->lo, r->hi);
	}
	return g_string_free(s, FALSE);
}

static void test_parse(void)
{
	static const struct {
		const char *in;
		const char *want; /* NULL: refused */
	} cases[] = {
	    {"1", "1-1"},
	    {"1:3", "1-3"},
	    {"3:1", "1-3"},
	    {"41,43:116,118,120:211,214:540", "41-41,43-116,118-118,120-211,214-540"},
	    {"5,1:3,4", "1-5"},
	    {"10:20,15:30", "10-30"},
	    {"2:*", "2-100"},
	    {"*", "100-100"},
	    {"1:4294967295", "1-4294967295"},
	    {"4294967295,1", "1-1,4294967295-4294967295"},
	    {"", NULL},
	    {"0", NULL},
	    {"01", NULL},
	    {"1:", NULL},
	    {":1", NULL},
	    {"1,", NULL},
	    {"1,,2", NULL},
	    {"1 2", NULL},
	    {"4294967296", NULL},
	    {"1:2:3", NULL},
	    {"-1", NULL},
	    {"1,2,3,4,5,6,7,8,9", NULL}, /* more than the bound of 8 */
	};
	g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(struct uid_range));

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		gboolean ok = uidset_parse(cases[i].in, 100, 8, a);
		g_autofree char *got = show(a);

		g_test_message("%s -> %s", cases[i].in, ok ? got : "(refused)");
		if (cases[i].want) {
			g_assert_true(ok);
			g_assert_cmpstr(got, ==, cases[i].want);
		} else {
			g_assert_false(ok);
			g_assert_cmpuint(a->len, ==, 0);
		}
	}
}

static void test_contains_count(void)
{
	g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(struct uid_range));

	g_assert_true(uidset_parse("3:5,9,20:4294967295", 0, 100, a));
	g_assert_false(uidset_contains(a, 1));
	g_assert_true(uidset_contains(a, 3));
	g_assert_true(uidset_contains(a, 5));
	g_assert_false(uidset_contains(a, 6));
	g_assert_true(uidset_contains(a, 9));
	g_assert_false(uidset_contains(a, 19));
	g_assert_true(uidset_contains(a, G_MAXUINT32));
	g_assert_cmpuint(uidset_count(a), ==, 3 + 1 + ((guint64)G_MAXUINT32 - 20 + 1));
	/* "*" with no UID known is not a UID. */
	g_assert_false(uidset_parse("*", 0, 100, a));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/uidset/parse", test_parse);
	g_test_add_func("/uidset/contains_count", test_contains_count);
	return g_test_run();
}
