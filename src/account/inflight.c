/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/inflight.h"

#include "util/lock.h"

struct inflight {
	mfs_mutex lock;
	mfs_cond done; /* broadcast whenever a claim is given back */
	GHashTable *claimed; /* guarded by lock: "<folder_key>/<uid>" set */
};

static char *body_key(const char *folder_key, guint32 uid)
{
	return g_strdup_printf("%s/%" G_GUINT32_FORMAT, folder_key, uid);
}

struct inflight *inflight_new(void)
{
	struct inflight *f = g_new0(struct inflight, 1);

	mfs_mutex_init(&f->lock);
	mfs_cond_init(&f->done);
	f->claimed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return f;
}

void inflight_free(struct inflight *f)
{
	if (!f)
		return;
	g_hash_table_destroy(f->claimed);
	mfs_cond_clear(&f->done);
	mfs_mutex_clear(&f->lock);
	g_free(f);
}

gboolean inflight_claim(struct inflight *f, const char *folder_key, guint32 uid)
{
	char *key = body_key(folder_key, uid);
	gboolean claimed;

	mfs_mutex_lock(&f->lock);
	claimed = g_hash_table_add(f->claimed, key);
	mfs_mutex_unlock(&f->lock);
	return claimed;
}

void inflight_done(struct inflight *f, const char *folder_key, guint32 uid)
{
	g_autofree char *key = body_key(folder_key, uid);

	mfs_mutex_lock(&f->lock);
	if (g_hash_table_remove(f->claimed, key))
		mfs_cond_broadcast(&f->done);
	mfs_mutex_unlock(&f->lock);
}

int inflight_wait(struct inflight *f, const char *folder_key, guint32 uid,
		  gboolean (*stop)(void *ud), void *ud)
{
	g_autofree char *key = body_key(folder_key, uid);
	int waited = 0;

	mfs_mutex_lock(&f->lock);
	/* Bounded by the prefetcher's command: it gives every claim back when
	   its FETCH completes or fails (the connection's timeout), and at stop. */
	while (g_hash_table_contains(f->claimed, key)) {
		waited = 1;
		if (!stop) {
			mfs_cond_wait(&f->done, &f->lock);
			continue;
		}
		mfs_cond_wait_until(&f->done, &f->lock,
				    g_get_monotonic_time() + INFLIGHT_POLL_MS * 1000);
		if (!g_hash_table_contains(f->claimed, key))
			break;
		/* stop takes its own lock (a lease's): not with ours held. */
		mfs_mutex_unlock(&f->lock);
		if (stop(ud)) {
			mfs_mutex_lock(&f->lock);
			waited = -1;
			break;
		}
		mfs_mutex_lock(&f->lock);
	}
	mfs_mutex_unlock(&f->lock);
	return waited;
}
