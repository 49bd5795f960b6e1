/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Listing bursts: the folders a walk comes to next listed on one session
 * with their commands pipelined (resync_folders), so that at a long round
 * trip a walk of many folders costs about one round trip of listings, not
 * one per folder. Each folder is listed as imap_account_refresh_folder
 * lists it (not forced): the same resync from what is known, the same
 * checks, the listing saved; a folder the burst cannot finish (it changed
 * since the saved listing, its count disagrees) is resynced on its own
 * after the burst, on the same session.
 *
 * Locks: a burst holds several folders' locks at once, the one exception
 * to "never two folders' at once" (doc/architecture.md). It takes them
 * with trylock only, so it never waits for a folder while holding
 * another, and a folder someone is listing already is left to them. Each
 * lock is let go as soon as its folder is applied, while later folders'
 * answers are still coming: a walker waiting for the first folder waits
 * for its answers only.
 */
#include <errno.h>
#include <string.h>

#include "account/imap_account_internal.h"
#include "model/listing_index.h"
#include "util/log.h"

/* One folder of a burst, its lock held from take to let_go. */
struct burst_folder {
	guint64 ino;
	struct folder_state *f;
	char *wire;
	struct lindex *idx;
	gboolean again; /* to be resynced on its own after the burst */
	gboolean full;	/* ...in full: its count disagreed */
};

struct burst {
	struct imap_account *a;
	GArray *folders; /* struct burst_folder, parallel to the jobs */
	guint next;	 /* the folder the next done() is for */
};

/* Folder ino's lock, when nobody holds it and its listing is due; with
   what is known of it. FALSE: leave it (busy, fresh, or not a folder to
   list), its lock not held. */
static gboolean take(struct imap_account *a, guint64 ino, struct burst_folder *bf,
		     struct resync_known *known)
{
	struct folder_state *f = account_folder(a, ino);
	struct tree_entry e = { 0 };

	if (!mfs_mutex_trylock(&f->lock))
		return FALSE;
	if (f->fetched_at &&
	    account_now() - f->fetched_at < (gint64)a->opts->refresh * G_USEC_PER_SEC)
		goto leave;
	if (tree_get(a->tree, ino, TREE_WANT_WIRE, &e) < 0 || e.kind != TREE_FOLDER ||
	    !e.selectable || !e.wire || e.gone)
		goto leave;
	*bf = (struct burst_folder){ .ino = ino, .f = f, .wire = g_steal_pointer(&e.wire) };
	bf->idx = listing_known(a, f, ino, bf->wire, known);
	tree_entry_clear(&e);
	return TRUE;
leave:
	tree_entry_clear(&e);
	mfs_mutex_unlock(&f->lock);
	return FALSE;
}

static void let_go(struct burst_folder *bf, int rc)
{
	/* Offline: the saved listing is for the next try. */
	if (bf->idx && rc < 0)
		bf->f->index_tried = FALSE;
	g_clear_pointer(&bf->idx, lindex_free);
	mfs_mutex_unlock(&bf->f->lock);
	g_clear_pointer(&bf->wire, g_free);
}

/* resync_folders' done(): apply what the burst finished, at once. */
static void folder_done(void *ud, struct resync_job *j)
{
	struct burst *b = ud;
	struct burst_folder *bf = &g_array_index(b->folders, struct burst_folder, b->next++);
	int rc = j->rc;

	if (rc == 0 && !j->done) {
		bf->again = TRUE;
	} else {
		if (rc == 0)
			rc = account_apply_resync(b->a, bf->f, bf->ino, bf->wire, bf->idx,
						  &j->known, &j->res);
		if (rc == 0 && !account_count_agrees(b->a, bf->ino, bf->wire, rc, &j->res))
			bf->again = bf->full = TRUE;
	}
	if (rc < 0) {
		/* A folder gone meanwhile, or the session lost: its walker
		   lists it (and says what is wrong) when it gets there. */
		if (j->err)
			mfs_log_debug(MFS_LOG_IMAP, "listing burst: %s", j->err->message);
		g_clear_error(&j->err);
	}
	resync_result_clear(&j->res);
	if (!bf->again)
		let_go(bf, rc);
}

/* After the burst: the folders it could not finish, one by one on s. */
static void resync_the_rest(struct burst *b, struct resync_job *jobs, struct imap_session *s)
{
	for (guint i = 0; i < b->folders->len; i++) {
		struct burst_folder *bf = &g_array_index(b->folders, struct burst_folder, i);
		GError *err = NULL;
		int rc = -EIO;

		if (!bf->again)
			continue;
		if (bf->full) {
			memset(&jobs[i].known, 0, sizeof(jobs[i].known));
			g_clear_pointer(&bf->idx, lindex_free);
		}
		if (imap_session_alive(s))
			rc = account_resync_and_apply(b->a, bf->f, bf->ino, bf->wire, s, bf->idx,
						      &jobs[i].known, NULL, &err);
		if (err)
			mfs_log_debug(MFS_LOG_IMAP, "listing burst: %s", err->message);
		g_clear_error(&err);
		let_go(bf, rc);
	}
}

/* The folder holding the most messages goes last: its SELECT is still in
   force when the burst's answers are in, so new mail there is fetched
   without selecting it again (resync_folders), and the biggest folder is
   the one that costs the server most to select. */
static void biggest_last(struct burst *b, GArray *jobs)
{
	guint big = 0;

	for (guint i = 1; i < jobs->len; i++)
		if (g_array_index(jobs, struct resync_job, i).known.count >
		    g_array_index(jobs, struct resync_job, big).known.count)
			big = i;
	if (big + 1 < jobs->len) {
		struct burst_folder bf = g_array_index(b->folders, struct burst_folder, big);
		struct resync_job j = g_array_index(jobs, struct resync_job, big);

		g_array_remove_index(b->folders, big);
		g_array_remove_index(jobs, big);
		g_array_append_val(b->folders, bf);
		g_array_append_val(jobs, j);
	}
}

void account_list_burst(struct imap_account *a, struct lease *l, const guint64 *inos, guint n)
{
	g_autoptr(GArray) jobs = g_array_new(FALSE, TRUE, sizeof(struct resync_job));
	struct burst b = { .a = a };
	struct imap_session *s;

	/* The folders first, as a refresh takes its folder's lock before its
	   session: a walker coming to one of them meanwhile waits for the
	   burst's answers rather than listing it a round trip on its own. */
	b.folders = g_array_new(FALSE, TRUE, sizeof(struct burst_folder));
	for (guint i = 0; i < n && b.folders->len < LIST_BURST_MAX; i++) {
		struct burst_folder bf;
		struct resync_job j = { 0 };

		if (!take(a, inos[i], &bf, &j.known))
			continue;
		g_array_append_val(b.folders, bf);
		g_array_append_val(jobs, j);
	}
	if (!jobs->len)
		goto out;
	biggest_last(&b, jobs);
	if (lease_borrow(l, g_array_index(b.folders, struct burst_folder, 0).wire, &s) < 0) {
		for (guint i = 0; i < b.folders->len; i++)
			let_go(&g_array_index(b.folders, struct burst_folder, i), -EIO);
		goto out;
	}
	for (guint i = 0; i < jobs->len; i++)
		g_array_index(jobs, struct resync_job, i).wire =
			g_array_index(b.folders, struct burst_folder, i).wire;
	(void)resync_folders(s, (struct resync_job *)jobs->data, jobs->len, !a->opts->mark_seen,
			     a->opts->names != MFS_NAMES_UID, account_wants_objids(a), folder_done,
			     &b);
	resync_the_rest(&b, (struct resync_job *)jobs->data, s);
	mfs_log_debug(MFS_LOG_IMAP, "listing burst: %u folders", jobs->len);
	lease_give_back(l);
out:
	g_array_unref(b.folders);
}
