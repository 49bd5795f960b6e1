/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/inflight.h"

static gboolean never(void *ud)
{
	(void)ud;
	return FALSE;
}

/* Stops after a number of asks. */
static gboolean after_asks(void *ud)
{
	int *left = ud;

	return --*left <= 0;
}

static void test_not_claimed(void)
{
	struct inflight *f = inflight_new();

	g_assert_cmpint(inflight_wait(f, "k", 1, NULL, NULL), ==, 0);
	g_assert_cmpint(inflight_wait(f, "k", 1, never, NULL), ==, 0);
	g_assert_true(inflight_claim(f, "k", 1));
	g_assert_false(inflight_claim(f, "k", 1));
	/* Another body, another claim. */
	g_assert_cmpint(inflight_wait(f, "k", 2, never, NULL), ==, 0);
	inflight_done(f, "k", 1);
	g_assert_true(inflight_claim(f, "k", 1));
	inflight_free(f);
}

struct giver {
	struct inflight *f;
	gint64 after_us;
};

static gpointer give_back(gpointer data)
{
	struct giver *g = data;

	g_usleep((gulong)g->after_us);
	inflight_done(g->f, "k", 7);
	return NULL;
}

static void test_waits_until_done(void)
{
	struct inflight *f = inflight_new();
	struct giver g = { f, 150 * 1000 };
	GThread *t;

	g_assert_true(inflight_claim(f, "k", 7));
	t = g_thread_new("giver", give_back, &g);
	g_assert_cmpint(inflight_wait(f, "k", 7, never, NULL), ==, 1);
	g_thread_join(t);
	inflight_free(f);
}

static void test_stop_ends_the_wait(void)
{
	struct inflight *f = inflight_new();
	int asks = 3;

	g_assert_true(inflight_claim(f, "k", 9));
	/* Nobody gives the claim back (a prefetcher held up by a hung server):
	   the reader's interrupt ends the wait after a few polls. */
	g_assert_cmpint(inflight_wait(f, "k", 9, after_asks, &asks), ==, -1);
	g_assert_cmpint(asks, ==, 0);
	inflight_done(f, "k", 9);
	inflight_free(f);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/inflight/not_claimed", test_not_claimed);
	g_test_add_func("/inflight/waits_until_done", test_waits_until_done);
	g_test_add_func("/inflight/stop_ends_the_wait", test_stop_ends_the_wait);
	return g_test_run();
}
