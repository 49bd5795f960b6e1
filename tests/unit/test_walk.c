/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The reading patterns and read-ahead choices of account/walk.h. */
#include "account/walk.h"

#define S (G_USEC_PER_SEC)

/* A listing in UID order: uid i+1 named names[i], sizes[i] bytes. */
static GArray *listing(const char *const *names, const guint64 *sizes, guint n)
{
	GArray *a = listed_array_new();

	for (guint i = 0; i < n; i++) {
		struct listed l = { i + 1, sizes ? sizes[i] : 100, g_strdup(names[i]) };

		g_array_append_val(a, l);
	}
	return a;
}

static GString *uids_of(const GArray *items)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < items->len; i++)
		g_string_append_printf(s, "%s%u", i ? "," : "",
				       g_array_index(items, struct prefetch_item, i).uid);
	return s;
}

static void test_tree_walk(void)
{
	struct walk_state w = { 0 };
	gint64 t = 100 * S;

	/* One folder read: no walk; read again: still none (same folder). */
	g_assert_false(walk_note_dir_read(&w, 5, t));
	g_assert_false(walk_note_dir_read(&w, 5, t + S / 2));
	/* Another folder within the window: a walk. */
	g_assert_true(walk_note_dir_read(&w, 6, t + S));
	g_assert_true(walk_recent(&w, t + 10 * S, 30 * S));
	g_assert_false(walk_recent(&w, t + 40 * S, 30 * S));
	/* Another folder, but after the window: none. */
	g_assert_false(walk_note_dir_read(&w, 7, t + S + WALK_WINDOW_US));
}

static void test_open_pattern(void)
{
	struct open_pattern p = { 0 };
	gint64 t = 100 * S;
	struct open_verdict v;

	/* A file picked alone: nothing ahead. */
	v = open_pattern_note(&p, 10, t);
	g_assert_false(v.ahead);
	/* The same file again: still nothing. */
	v = open_pattern_note(&p, 10, t + S);
	g_assert_false(v.ahead);
	/* The next file soon after: sequential. */
	v = open_pattern_note(&p, 11, t + 2 * S);
	g_assert_true(v.ahead);
	g_assert_false(v.walk);
	/* A long pause breaks the streak. */
	v = open_pattern_note(&p, 12, t + 2 * S + SEQUENTIAL_GAP_US);
	g_assert_false(v.ahead);
	/* A readdir, then a first open right away: a walk from its first file,
	   and the readdir is used up by it. */
	p.readdir_at = t + 30 * S;
	v = open_pattern_note(&p, 40, t + 31 * S);
	g_assert_true(v.ahead);
	g_assert_true(v.walk);
	g_assert_cmpint(p.readdir_at, ==, 0);
}

static void test_orders_pick(void)
{
	/* UID order 1..5; name order: 3 (a), 5 (b), 1 (c), 4 (d), 2 (e). */
	static const char *const names[] = { "c", "e", "a", "d", "b" };
	struct reading_orders o = { 0 };
	g_autoptr(GArray) items = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	guint64 budget = 1000;
	guint pu, pn;
	GString *got;

	reading_orders_set(&o, listing(names, NULL, 5), 7, 1);
	g_assert_cmpuint(o.uidvalidity, ==, 7);
	g_assert_false(reading_orders_not_first(&o, 1)); /* first by UID */
	g_assert_false(reading_orders_not_first(&o, 3)); /* first by name */
	g_assert_true(reading_orders_not_first(&o, 4));

	/* After "a" (uid 3): by name b(5), c(1), d(4), e(2); by UID 4, 5;
	   alternating, each once. */
	reading_orders_after(&o, 3, "a", &pu, &pn);
	g_assert_cmpuint(pu, ==, 3);
	g_assert_cmpuint(pn, ==, 1);
	reading_orders_pick(&o, pu, pn, READ_EITHER, &budget, items);
	got = uids_of(items);
	g_assert_cmpstr(got->str, ==, "5,4,1,2");
	g_string_free(got, TRUE);
	g_assert_cmpuint(budget, ==, 600);

	/* The budget bounds it: once spent, the pair of orders being walked
	   is finished and nothing more is taken (250 bytes: four of 100). */
	g_array_set_size(items, 0);
	budget = 250;
	reading_orders_pick(&o, 0, 0, READ_EITHER, &budget, items);
	got = uids_of(items);
	g_assert_cmpstr(got->str, ==, "3,1,5,2");
	g_string_free(got, TRUE);
	g_assert_cmpuint(budget, ==, 0);
	reading_orders_clear(&o);
}

static void test_orders_skip_large(void)
{
	static const char *const names[] = { "a", "b", "c" };
	const guint64 sizes[] = { 10, PREFETCH_MAX_BODY + 1, 10 };
	struct reading_orders o = { 0 };
	g_autoptr(GArray) items = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	guint64 budget = G_MAXUINT64;
	GString *got;

	reading_orders_set(&o, listing(names, sizes, 3), 1, 1);
	reading_orders_pick(&o, 0, 0, READ_EITHER, &budget, items);
	got = uids_of(items);
	/* The large one is left to the reader's own ranged reads. */
	g_assert_cmpstr(got->str, ==, "1,3");
	g_string_free(got, TRUE);
	reading_orders_clear(&o);
}

static void test_orders_cap(void)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	struct reading_orders o = { 0 };
	g_autoptr(GArray) items = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	guint64 budget = G_MAXUINT64;

	for (guint i = 0; i < AHEAD_MAX * 2; i++)
		g_ptr_array_add(names, g_strdup_printf("%05u", i));
	reading_orders_set(&o, listing((const char *const *)names->pdata, NULL, names->len), 1, 1);
	reading_orders_pick(&o, 0, 0, READ_EITHER, &budget, items);
	g_assert_cmpuint(items->len, ==, AHEAD_MAX);
	reading_orders_clear(&o);
}

/* Two opens show the order a reader follows; then only that one is
   fetched ahead (the other's next messages it read already, or last). */
static void test_orders_follow(void)
{
	/* UID order 1..5; name order: 3 (a), 5 (b), 1 (c), 4 (d), 2 (e). */
	static const char *const names[] = { "c", "e", "a", "d", "b" };
	struct reading_orders o = { 0 };
	g_autoptr(GArray) items = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	struct open_pattern p = { 0 };
	guint64 budget = 1000;
	guint pu, pn;
	GString *got;

	reading_orders_set(&o, listing(names, NULL, 5), 7, 1);
	g_assert_cmpint(reading_orders_follows(&o, 1, 2), ==, READ_BY_UID);
	g_assert_cmpint(reading_orders_follows(&o, 3, 5), ==, READ_BY_NAME);
	g_assert_cmpint(reading_orders_follows(&o, 1, 3), ==, READ_EITHER); /* skipped */
	g_assert_cmpint(reading_orders_follows(&o, 9, 1), ==, READ_EITHER); /* unknown */

	/* grep after 2 (uid order): 3, 4, 5 only. */
	reading_orders_after(&o, 2, "e", &pu, &pn);
	reading_orders_pick(&o, pu, pn, READ_BY_UID, &budget, items);
	got = uids_of(items);
	g_assert_cmpstr(got->str, ==, "3,4,5");
	g_string_free(got, TRUE);
	/* rsync after "b" (uid 5): c(1), d(4), e(2). */
	g_array_set_size(items, 0);
	reading_orders_after(&o, 5, "b", &pu, &pn);
	reading_orders_pick(&o, pu, pn, READ_BY_NAME, &budget, items);
	got = uids_of(items);
	g_assert_cmpstr(got->str, ==, "1,4,2");
	g_string_free(got, TRUE);

	/* A new streak forgets the order. */
	p.order = READ_BY_NAME;
	(void)open_pattern_note(&p, 1, 1000);
	g_assert_cmpint(p.order, ==, READ_EITHER);
	reading_orders_clear(&o);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/walk/tree-walk", test_tree_walk);
	g_test_add_func("/walk/open-pattern", test_open_pattern);
	g_test_add_func("/walk/orders-pick", test_orders_pick);
	g_test_add_func("/walk/orders-skip-large", test_orders_skip_large);
	g_test_add_func("/walk/orders-cap", test_orders_cap);
	g_test_add_func("/walk/orders-follow", test_orders_follow);
	return g_test_run();
}
