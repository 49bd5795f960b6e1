/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/search_nodes.h"

#include <errno.h>

static void test_numbers(void)
{
	struct search_nodes *sn = search_nodes_new();
	guint64 root = search_nodes_root(sn, 1);
	guint64 q1 = search_nodes_query(sn, root, "from:alice");
	guint64 q2 = search_nodes_query(sn, root, "from:bob");
	guint64 m = search_nodes_mirror(sn, q1, 7);
	struct search_node_info i;

	g_assert_true(search_is_node(root) && search_is_node(q1) && search_is_node(m));
	/* Not a message number (epoch << 32 | uid), not a new file's (bit 63). */
	g_assert_false(search_is_node(((guint64)5 << 32) | 9));
	g_assert_false(search_is_node(((guint64)1 << 63) | 3));
	/* The same names give the same numbers; others, others. */
	g_assert_cmpuint(search_nodes_root(sn, 1), ==, root);
	g_assert_cmpuint(search_nodes_query(sn, root, "from:alice"), ==, q1);
	g_assert_cmpuint(search_nodes_mirror(sn, q1, 7), ==, m);
	g_assert_cmpuint(q1, !=, q2);
	g_assert_cmpuint(search_nodes_root(sn, 2), !=, root);
	/* The query node mirrors its scope itself. */
	g_assert_cmpuint(search_nodes_mirror(sn, q1, 1), ==, q1);
	/* Only a root holds queries, only a query mirrors. */
	g_assert_cmpuint(search_nodes_query(sn, q1, "x"), ==, 0);
	g_assert_cmpuint(search_nodes_mirror(sn, root, 7), ==, 0);

	g_assert_cmpint(search_nodes_get(sn, m, &i), ==, 0);
	g_assert_cmpint(i.kind, ==, SEARCH_NODE_MIRROR);
	g_assert_cmpuint(i.query, ==, q1);
	g_assert_cmpuint(i.folder, ==, 7);
	g_assert_cmpuint(i.scope, ==, 1);
	g_assert_cmpstr(i.text, ==, "from:alice");
	search_node_info_clear(&i);
	g_assert_cmpint(search_nodes_get(sn, SEARCH_INO_BIT | 999, &i), ==, -ENOENT);

	g_autoptr(GArray) inos = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	search_nodes_queries(sn, root, inos, names);
	g_assert_cmpuint(inos->len, ==, 2);
	g_assert_cmpstr(names->pdata[0], ==, "from:alice");
	g_assert_cmpstr(names->pdata[1], ==, "from:bob");
	search_nodes_free(sn);
}

static void test_results(void)
{
	struct search_nodes *sn = search_nodes_new();
	guint64 root = search_nodes_root(sn, 1);
	guint64 q = search_nodes_query(sn, root, "subject:x");
	guint64 m = search_nodes_mirror(sn, q, 5);
	struct search_hits *h = search_hits_new();
	g_autoptr(GArray) kids = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));

	g_assert_false(search_nodes_contents(sn, q, NULL, NULL));
	g_assert_false(search_nodes_fresh(sn, q, 0, 100, 0));
	/* Hits in folder 5 (child of 3, child of the root 1) and in 3 itself. */
	search_hits_add_uid(h, 5, 30);
	search_hits_add_uid(h, 5, 10);
	search_hits_add_uid(h, 3, 4);
	search_hits_add_kid(h, 3, 5);
	search_hits_add_kid(h, 1, 3);
	search_hits_add_kid(h, 1, 3);
	search_hits_finish(h);
	search_nodes_set_result(sn, q, h, "UID SEARCH SUBJECT \"x\"", 1000, 1700000000, 4);

	g_assert_true(search_nodes_contents(sn, q, kids, uids));
	g_assert_cmpuint(kids->len, ==, 1);
	g_assert_cmpuint(g_array_index(kids, guint64, 0), ==, 3);
	g_assert_cmpuint(uids->len, ==, 0);
	g_array_set_size(kids, 0);
	g_assert_true(search_nodes_contents(sn, m, kids, uids));
	g_assert_cmpuint(kids->len, ==, 0);
	g_assert_cmpuint(uids->len, ==, 2);
	g_assert_cmpuint(g_array_index(uids, guint32, 0), ==, 10);
	g_assert_cmpuint(g_array_index(uids, guint32, 1), ==, 30);

	/* Fresh within max_age and while the change count holds. */
	g_assert_true(search_nodes_fresh(sn, q, 1050, 100, 4));
	g_assert_false(search_nodes_fresh(sn, q, 1100, 100, 4));
	g_assert_false(search_nodes_fresh(sn, q, 1050, 100, 5));
	g_autofree char *d = search_nodes_display(sn, q);
	g_assert_cmpstr(d, ==, "UID SEARCH SUBJECT \"x\"");
	search_nodes_free(sn);
}

static void test_results_bounded(void)
{
	struct search_nodes *sn = search_nodes_new();
	guint64 root = search_nodes_root(sn, 1);
	guint64 first = 0;

	for (int i = 0; i <= SEARCH_RESULTS_MAX; i++) {
		g_autofree char *text = g_strdup_printf("q%d", i);
		guint64 q = search_nodes_query(sn, root, text);

		if (i == 0)
			first = q;
		search_nodes_set_result(sn, q, search_hits_new(), "ALL", i, i, 0);
	}
	/* The result made longest ago went; its node stays. */
	g_assert_false(search_nodes_contents(sn, first, NULL, NULL));
	g_assert_true(search_is_node(search_nodes_query(sn, root, "q0")));
	g_assert_cmpuint(search_nodes_query(sn, root, "q0"), ==, first);
	search_nodes_free(sn);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/search_nodes/numbers", test_numbers);
	g_test_add_func("/search_nodes/results", test_results);
	g_test_add_func("/search_nodes/results_bounded", test_results_bounded);
	return g_test_run();
}
