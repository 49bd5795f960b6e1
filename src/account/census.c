/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The census (mailfs(1), Links): with object ids, every shown folder is
 * listed once before the first listing of a folder's messages answers, so
 * that st_nlink counts every folder from the first stat, which rsync -H,
 * du and tar need (they look for links only among files with more than
 * one). The folders are listed side by side on up to `connections`
 * sessions: the request's own and helper threads with leases of their own,
 * so at a long round trip the census costs about one listing per session,
 * not one per folder.
 */
#include "account/imap_account_internal.h"
#include "util/log.h"

struct census_run {
	struct imap_account *a;
	GArray *todo; /* guint64 folder inode numbers */
	mfs_mutex lock;
	guint next;	    /* guarded by lock: the next folder of todo to list */
	gboolean stop;	    /* guarded by lock: the request was interrupted */
	GPtrArray *helpers; /* struct lease * of the helper threads, guarded by lock */
};

/* The next folder to list, or 0 when none is left (or the run stopped). */
static guint64 take_folder(struct census_run *r)
{
	guint64 ino = 0;

	mfs_mutex_lock(&r->lock);
	if (!r->stop && r->next < r->todo->len)
		ino = g_array_index(r->todo, guint64, r->next++);
	mfs_mutex_unlock(&r->lock);
	return ino;
}

/* List folders until none is left; -EINTR when l was interrupted. */
static int list_folders(struct census_run *r, struct lease *l)
{
	guint64 ino;

	while ((ino = take_folder(r)) != 0)
		if (imap_account_refresh_folder(r->a, l, ino, FALSE) == -EINTR)
			return -EINTR;
	return 0;
}

static gpointer helper_thread(gpointer data)
{
	struct census_run *r = data;
	struct lease l;

	lease_init(&l, r->a->pool);
	mfs_mutex_lock(&r->lock);
	g_ptr_array_add(r->helpers, &l);
	mfs_mutex_unlock(&r->lock);
	(void)list_folders(r, &l);
	mfs_mutex_lock(&r->lock);
	g_ptr_array_remove(r->helpers, &l);
	mfs_mutex_unlock(&r->lock);
	lease_clear(&l);
	return NULL;
}

/* The request was interrupted: no folder more, and the helpers' listings
   in flight end at once (their leases interrupted). */
static void stop_run(struct census_run *r)
{
	mfs_mutex_lock(&r->lock);
	r->stop = TRUE;
	for (guint i = 0; i < r->helpers->len; i++)
		lease_interrupt(r->helpers->pdata[i]);
	mfs_mutex_unlock(&r->lock);
}

/* Locked (census_lock). List every shown folder not listed yet. */
static int run_census(struct imap_account *a, struct lease *l)
{
	g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GPtrArray) threads = g_ptr_array_new();
	struct census_run r = { .a = a };
	guint helpers;
	int rc;

	r.todo = g_array_new(FALSE, FALSE, sizeof(guint64));
	tree_folder_subtree(a->tree, TREE_ROOT_INO, all);
	for (guint i = 0; i < all->len; i++) {
		guint64 ino = g_array_index(all, guint64, i);
		struct tree_entry e = { 0 };

		if (tree_get(a->tree, ino, 0, &e) == 0 && !e.listed)
			g_array_append_val(r.todo, ino);
	}
	mfs_mutex_init(&r.lock);
	r.helpers = g_ptr_array_new();
	/* One session is the request's own; the rest of `connections`, at
	   most one per folder, are the helpers'. */
	helpers = MIN(r.todo->len, a->opts->connections);
	helpers = helpers > 0 ? helpers - 1 : 0;
	for (guint i = 0; i < helpers; i++) {
		GThread *t = g_thread_try_new("mailfs-census", helper_thread, &r, NULL);

		if (t)
			g_ptr_array_add(threads, t);
	}
	rc = list_folders(&r, l);
	if (rc == -EINTR)
		stop_run(&r);
	for (guint i = 0; i < threads->len; i++)
		g_thread_join(threads->pdata[i]);
	mfs_log_debug(MFS_LOG_IMAP, "census: %u of %u folders listed on %u sessions%s",
		      r.next, r.todo->len, threads->len + 1, rc == -EINTR ? " (interrupted)" : "");
	g_ptr_array_unref(r.helpers);
	mfs_mutex_clear(&r.lock);
	g_array_unref(r.todo);
	return rc;
}

int account_census(struct imap_account *a, struct lease *l)
{
	int rc = 0;

	if (__atomic_load_n(&a->census_done, __ATOMIC_ACQUIRE) || !account_wants_objids(a))
		return 0;
	mfs_mutex_lock(&a->census_lock);
	if (!a->census_done) {
		rc = run_census(a, l);
		/* A folder that failed is listed when looked at, as any; an
		   interrupted census is finished by the next request. */
		if (rc != -EINTR)
			__atomic_store_n(&a->census_done, TRUE, __ATOMIC_RELEASE);
	}
	mfs_mutex_unlock(&a->census_lock);
	return rc;
}
