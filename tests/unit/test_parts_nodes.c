/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/parts_nodes.h"
#include "model/search_nodes.h"
#include "model/staging.h"

#include <errno.h>

static void test_numbers(void)
{
	struct parts_nodes *pn = parts_nodes_new();
	guint64 root = parts_nodes_mirror(pn, 1);
	guint64 inbox = parts_nodes_mirror(pn, 2);
	guint64 msg = parts_nodes_message(pn, 2, ((guint64)1 << 32) | 42, "");
	guint64 nested = parts_nodes_message(pn, 2, ((guint64)1 << 32) | 42, "3");
	guint64 parts = parts_nodes_parts_dir(pn, msg);
	guint64 text = parts_nodes_file(pn, msg, "text");
	guint64 p1 = parts_nodes_file(pn, parts, "1");
	struct parts_node_info i;

	/* Apart from every other kind of number: search nodes, new files,
	   messages (epoch << 32 | uid) and folders. */
	g_assert_true(parts_is_node(root) && parts_is_node(text));
	g_assert_false(search_is_node(root));
	g_assert_false(parts_is_node(SEARCH_INO_BIT | 5));
	g_assert_false(parts_is_node(STAGED_INO_BIT | 5));
	g_assert_false(staging_is_staged(root));
	g_assert_false(parts_is_node(((guint64)7 << 32) | 9));
	g_assert_false(parts_is_node(3));

	/* The same place, the same number. */
	g_assert_cmpuint(parts_nodes_mirror(pn, 1), ==, root);
	g_assert_cmpuint(parts_nodes_file(pn, msg, "text"), ==, text);
	g_assert_cmpuint(parts_nodes_parts_dir(pn, msg), ==, parts);
	g_assert_cmpuint(root, !=, inbox);
	g_assert_cmpuint(msg, !=, nested);
	/* A file in parts/ is not the one of that name in the message's directory. */
	g_assert_cmpuint(parts_nodes_file(pn, msg, "1"), !=, p1);
	/* Only directories hold files; only a message directory holds parts/. */
	g_assert_cmpuint(parts_nodes_file(pn, text, "x"), ==, 0);
	g_assert_cmpuint(parts_nodes_file(pn, root, "x"), ==, 0);
	g_assert_cmpuint(parts_nodes_parts_dir(pn, parts), ==, 0);

	g_assert_cmpint(parts_nodes_get(pn, p1, &i), ==, 0);
	g_assert_cmpint(i.kind, ==, PARTS_NODE_FILE);
	g_assert_true(i.in_parts);
	g_assert_cmpstr(i.name, ==, "1");
	g_assert_cmpstr(i.section, ==, "");
	g_assert_cmpuint(i.folder, ==, 2);
	g_assert_false(i.size_known);
	parts_node_info_clear(&i);
	parts_nodes_set_size(pn, p1, 1234);
	g_assert_cmpint(parts_nodes_get(pn, p1, &i), ==, 0);
	g_assert_true(i.size_known);
	g_assert_cmpuint(i.size, ==, 1234);
	parts_node_info_clear(&i);

	g_assert_cmpint(parts_nodes_get(pn, nested, &i), ==, 0);
	g_assert_cmpint(i.kind, ==, PARTS_NODE_MESSAGE);
	g_assert_cmpstr(i.section, ==, "3");
	parts_node_info_clear(&i);
	g_assert_cmpint(parts_nodes_get(pn, PARTS_INO_BITS | 999999, &i), ==, -ENOENT);
	parts_nodes_free(pn);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/parts_nodes/numbers", test_numbers);
	return g_test_run();
}
