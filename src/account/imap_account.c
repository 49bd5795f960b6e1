/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The account's life cycle, its threads and its status counters. */
#include <stdlib.h>
#include <string.h>

#include "account/imap_account_internal.h"
#include "util/log.h"

/* Listings ahead of a walk: threads. */
#define LISTERS 2

static void headers_free(gpointer p)
{
	mail_headers_clear(p);
	g_free(p);
}

struct imap_account *imap_account_new(const struct mfs_options *opts, struct pool *pool,
				      struct mcache *cache, struct tree *tree)
{
	struct imap_account *a = g_new0(struct imap_account, 1);

	a->opts = opts;
	a->pool = pool;
	a->cache = cache;
	a->tree = tree;
	mfs_mutex_init(&a->census_lock);
	mfs_mutex_init(&a->list_lock);
	mfs_mutex_init(&a->lock);
	mfs_mutex_init(&a->headers_lock);
	a->folders = account_folders_new();
	a->inflight = inflight_new();
	a->walk_ahead_keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	a->unstable = g_ptr_array_new_with_free_func(g_free);
	a->headers = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, headers_free);
	a->search_nodes = search_nodes_new();
	parts_state_init(a);
	return a;
}

void imap_account_free(struct imap_account *a)
{
	if (!a)
		return;
	g_hash_table_destroy(a->folders);
	inflight_free(a->inflight);
	g_hash_table_destroy(a->walk_ahead_keys);
	g_ptr_array_free(a->unstable, TRUE);
	g_free(a->reading_key);
	g_hash_table_destroy(a->headers);
	search_nodes_free(a->search_nodes);
	parts_state_clear(a);
	g_free(a->trash_wire);
	mfs_mutex_clear(&a->census_lock);
	mfs_mutex_clear(&a->list_lock);
	mfs_mutex_clear(&a->lock);
	mfs_mutex_clear(&a->headers_lock);
	g_free(a);
}

struct pool *imap_account_pool(struct imap_account *a)
{
	return a->pool;
}

gboolean account_wants_objids(struct imap_account *a)
{
	return a->opts->hardlinks &&
	       (pool_caps(a->pool) & (IMAP_CAP_OBJECTID | IMAP_CAP_X_GM_EXT_1)) != 0;
}

/* The push watcher's connection timed out (watch.h): the account is down. */
static gboolean account_push_timed_out(void *ud, const GError *err)
{
	struct imap_account *a = ud;

	return pool_report_timeout(a->pool, err);
}

void imap_account_start(struct imap_account *a, const struct account_events *ev)
{
	struct watch *w = NULL;

	a->ev = *ev;
	/* Unstarted jobs are dropped at stop: listing_save_all does them. */
	a->saver = workers_new("mailfs-saver", 1, listing_save_job, a, g_free);
	a->lister = workers_new("mailfs-lister", LISTERS, readahead_list_job, a, g_free);
	pool_warm(a->pool);
	/* Bodies fetched ahead are read with BODY.PEEK: no prefetch when
	   reading is to set \Seen. */
	if (a->opts->prefetch > 0 && !a->opts->mark_seen) {
		a->prefetch = prefetch_start(a->pool, a->cache, a->inflight, a->opts->prefetch);
		a->prefetch_next =
			prefetch_start(a->pool, a->cache, a->inflight, a->opts->prefetch);
	}
	if (a->opts->idle) {
		/* Tests shorten the renewal; servers drop an IDLE after 10-30 min. */
		const char *env = g_getenv("MAILFS_IDLE_RENEW");
		int renew = env ? atoi(env) : 9 * 60;

		w = watch_start(pool_session_opts(a->pool), "INBOX", renew, 5 * 60,
				account_mailbox_changed, account_push_timed_out, a);
	}
	/* The watch thread may call back before this: it reads a->watch
	   under the lock. */
	mfs_mutex_lock(&a->lock);
	a->watch = w;
	mfs_mutex_unlock(&a->lock);
}

void imap_account_stop(struct imap_account *a)
{
	struct watch *w;

	/* First: whatever waits on the server ends at once (a listing ahead,
	   a prefetch, and connects in progress, the watcher's too). */
	pool_shutdown(a->pool);
	mfs_mutex_lock(&a->lock);
	w = g_steal_pointer(&a->watch);
	mfs_mutex_unlock(&a->lock);
	watch_stop(w);
	g_clear_pointer(&a->prefetch, prefetch_stop);
	g_clear_pointer(&a->prefetch_next, prefetch_stop);
	if (a->lister)
		workers_free(g_steal_pointer(&a->lister), FALSE);
	if (a->saver)
		workers_free(g_steal_pointer(&a->saver), FALSE);
	listing_save_all(a);
	a->ev = (struct account_events){ 0 };
}

/* "name: N" for one of the counters other threads add to. */
static void append_counter(GString *s, const char *name, guint64 *counter)
{
	g_string_append_printf(s, "%s: %" G_GUINT64_FORMAT "\n", name,
			       __atomic_load_n(counter, __ATOMIC_RELAXED));
}

char *imap_account_status(struct imap_account *a)
{
	struct pool_stats ps = { 0 };
	struct mcache_stats cs = { 0 };
	GString *s = g_string_new(NULL);

	pool_get_stats(a->pool, &ps);
	mcache_get_stats(a->cache, &cs);
	if (ps.down) {
		g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(ps.down_since / G_USEC_PER_SEC);
		g_autofree char *since = t ? g_date_time_format_iso8601(t) : g_strdup("?");

		g_string_append_printf(s, "state: down since %s\n", since);
		g_string_append_printf(s, "down_reason: %s\n", ps.down_reason);
	} else {
		g_string_append_printf(s, "state: up\n");
	}
	g_string_append_printf(s, "server: %s\n", a->opts->url);
	g_string_append_printf(s, "connections: %u\n", ps.live);
	g_string_append_printf(s, "connections_busy: %u\n", ps.busy);
	g_string_append_printf(s, "connects: %" G_GUINT64_FORMAT "\n", ps.connects);
	g_string_append_printf(s, "connect_failures: %" G_GUINT64_FORMAT "\n",
			       ps.connect_failures);
	if (ps.last_error)
		g_string_append_printf(s, "last_error: %s\n", ps.last_error);
	g_string_append_printf(s, "commands_sent: %" G_GUINT64_FORMAT "\n", ps.commands);
	append_counter(s, "messages_fetched", &a->messages_fetched);
	append_counter(s, "bytes_fetched", &a->bytes_fetched);
	append_counter(s, "structures_fetched", &a->structures_fetched);
	append_counter(s, "parts_fetched", &a->parts_fetched);
	append_counter(s, "bodies_from_cache", &a->bodies_from_cache);
	append_counter(s, "headers_from_cache", &a->headers_from_cache);
	append_counter(s, "listings_full", &a->listings_full);
	append_counter(s, "listings_resynced", &a->listings_resynced);
	if (a->prefetch) {
		guint64 pm, pb, pu, nm = 0, nb = 0, nu = 0;

		prefetch_counters(a->prefetch, &pm, &pb, &pu);
		if (a->prefetch_next)
			prefetch_counters(a->prefetch_next, &nm, &nb, &nu);
		g_string_append_printf(s, "prefetched_messages: %" G_GUINT64_FORMAT "\n", pm + nm);
		g_string_append_printf(s, "prefetched_bytes: %" G_GUINT64_FORMAT "\n", pb + nb);
		/* Fetched ahead for nothing: not kept, or gone before a reader came. */
		g_string_append_printf(s, "bytes_fetched_ahead_unused: %" G_GUINT64_FORMAT "\n",
				       pu + nu + cs.ahead_unused);
	}
	mfs_mutex_lock(&a->lock);
	if (a->unstable->len) {
		/* Wire names: the server's bytes, escaped. */
		g_string_append(s, "uidvalidity_unstable:");
		for (guint i = 0; i < a->unstable->len; i++) {
			const char *w = a->unstable->pdata[i];
			g_autofree char *esc = mfs_log_escape(w, strlen(w), 100);

			g_string_append_printf(s, "%s %s", i ? "," : "", esc);
		}
		g_string_append(s, " (message UIDs do not last: names and inode numbers change)\n");
	}
	mfs_mutex_unlock(&a->lock);
	g_string_append_printf(s, "cache_bytes: %" G_GUINT64_FORMAT "\n", cs.bytes);
	g_string_append_printf(s, "cache_max_bytes: %" G_GUINT64_FORMAT "\n", cs.max_bytes);
	g_string_append_printf(s, "cache_files: %" G_GUINT64_FORMAT "\n", cs.files);
	g_string_append_printf(s, "cache_hits: %" G_GUINT64_FORMAT "\n", cs.hits);
	g_string_append_printf(s, "cache_misses: %" G_GUINT64_FORMAT "\n", cs.misses);
	g_string_append_printf(s, "cache_evictions: %" G_GUINT64_FORMAT "\n", cs.evictions);
	pool_stats_clear(&ps);
	return g_string_free(s, FALSE);
}
