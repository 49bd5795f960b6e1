/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Folders: the folder list and namespace, each folder's listing and its
 * freshness, and the changes the push watcher reports.
 *
 * A folder's listing is brought up to date when it is older than `refresh`
 * seconds (or marked stale by a change this mount made or push reported),
 * with a resync (account/resync.h): cheap with QRESYNC or CONDSTORE, one
 * EXAMINE when nothing changed.
 */
#include <errno.h>
#include <string.h>

#include "account/imap_account_internal.h"
#include "account/resync.h"
#include "model/listing_index.h"
#include "protocol/mutf7.h"
#include "util/log.h"

static void folder_state_free(gpointer p)
{
	struct folder_state *f = p;

	reading_orders_clear(&f->orders);
	mfs_mutex_clear(&f->lock);
	g_free(f);
}

GHashTable *account_folders_new(void)
{
	return g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, folder_state_free);
}

struct folder_state *account_folder(struct imap_account *a, guint64 ino)
{
	struct folder_state *f;

	mfs_mutex_lock(&a->lock);
	f = g_hash_table_lookup(a->folders, &ino);
	if (!f) {
		guint64 *key = g_new(guint64, 1);

		*key = ino;
		f = g_new0(struct folder_state, 1);
		mfs_mutex_init(&f->lock);
		g_hash_table_insert(a->folders, key, f);
	}
	mfs_mutex_unlock(&a->lock);
	return f;
}

void account_removed(struct imap_account *a, GArray *removed)
{
	for (guint i = 0; i < removed->len; i++) {
		const struct tree_removed *r = &g_array_index(removed, struct tree_removed, i);

		if (r->linked) {
			/* One name of an object, or its link count: the inode stays. */
			if (r->name && a->ev.entry_gone)
				a->ev.entry_gone(a->ev.ud, r->parent, 0, r->name);
			if (a->ev.inode_changed)
				a->ev.inode_changed(a->ev.ud, r->ino);
			continue;
		}
		if (a->ev.entry_gone)
			a->ev.entry_gone(a->ev.ud, r->parent, r->ino, r->name);
		mfs_mutex_lock(&a->headers_lock);
		g_hash_table_remove(a->headers, &r->ino);
		mfs_mutex_unlock(&a->headers_lock);
	}
}

char *account_trash(struct imap_account *a)
{
	char *t;

	mfs_mutex_lock(&a->lock);
	t = g_strdup(a->trash_wire);
	mfs_mutex_unlock(&a->lock);
	return t;
}

/* The delimiter, and which mailbox is the Trash (the `trash` option, else
   the \Trash special use, else a usual name). */
static void learn_namespace(struct imap_account *a, GPtrArray *boxes)
{
	static const char *const names[] = { "Trash", "Deleted Items", "Deleted Messages",
					     "INBOX.Trash" };
	const char *trash = NULL;
	char delim = 0;

	for (guint i = 0; i < boxes->len; i++) {
		const struct imap_mailbox_info *m = boxes->pdata[i];

		if (!delim && m->delimiter)
			delim = m->delimiter;
		if (a->opts->trash) {
			g_autofree char *dec = mutf7_decode(m->name, NULL);

			if (strcmp(m->name, a->opts->trash) == 0 ||
			    g_strcmp0(dec, a->opts->trash) == 0)
				trash = m->name;
		} else if ((m->attrs & IMAP_MBOX_TRASH) && !(m->attrs & IMAP_MBOX_NOSELECT)) {
			trash = m->name;
		}
	}
	for (size_t n = 0; !trash && !a->opts->trash && n < G_N_ELEMENTS(names); n++)
		for (guint i = 0; !trash && i < boxes->len; i++) {
			const struct imap_mailbox_info *m = boxes->pdata[i];

			if (strcmp(m->name, names[n]) == 0 && !(m->attrs & IMAP_MBOX_NOSELECT))
				trash = m->name;
		}
	mfs_mutex_lock(&a->lock);
	a->delim = delim;
	g_free(a->trash_wire);
	a->trash_wire = g_strdup(trash);
	mfs_mutex_unlock(&a->lock);
}

int imap_account_refresh_list(struct imap_account *a, gboolean force, GError **err)
{
	struct lease l;
	struct imap_session *s;
	GPtrArray *boxes;
	int rc = 0;

	mfs_mutex_lock(&a->list_lock);
	if (!force && a->list_fetched_at &&
	    account_now() - a->list_fetched_at < (gint64)a->opts->refresh * G_USEC_PER_SEC)
		goto out;
	lease_init(&l, a->pool);
	rc = lease_borrow(&l, NULL, &s);
	if (rc == 0) {
		GError *e = NULL;

		boxes = imap_list_mailboxes(s, &e);
		lease_give_back(&l);
		if (!boxes) {
			if (err)
				g_propagate_error(err, e);
			else
				lease_errno(&l, -EIO, e, "LIST");
			rc = -EIO;
		} else {
			g_autoptr(GArray) removed = tree_removed_new();

			learn_namespace(a, boxes);
			tree_apply_list(a->tree, boxes, removed);
			account_removed(a, removed);
			g_ptr_array_unref(boxes);
			a->list_fetched_at = account_now();
		}
	} else if (err) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "no connection to the server");
	}
	lease_clear(&l);
out:
	mfs_mutex_unlock(&a->list_lock);
	return rc;
}

/* UIDVALIDITY changes of one mailbox within this long make it unstable. */
#define UNSTABLE_WITHIN_US (60 * G_USEC_PER_SEC)

/*
 * Locked (f->lock). The server gave the mailbox a new UIDVALIDITY: fine
 * once (it was recreated), but a server that does it again and again (GNU
 * Mailutils' imap4d renumbers on every read-only session) has no stable
 * UIDs. mailfs stays safe (no byte of another generation is served), but
 * the user sees names change and ESTALE: say why, once, in the log and the
 * status.
 */
static void note_uidvalidity_change(struct imap_account *a, struct folder_state *f,
				    const char *wire)
{
	const guint n = G_N_ELEMENTS(f->uidvalidity_changed_at);
	gint64 now = account_now();
	g_autofree char *esc = NULL;

	memmove(f->uidvalidity_changed_at, f->uidvalidity_changed_at + 1,
		(n - 1) * sizeof(f->uidvalidity_changed_at[0]));
	f->uidvalidity_changed_at[n - 1] = now;
	if (f->unstable_said || !f->uidvalidity_changed_at[0] ||
	    now - f->uidvalidity_changed_at[0] > UNSTABLE_WITHIN_US)
		return;
	f->unstable_said = TRUE;
	esc = mfs_log_escape(wire, strlen(wire), 200);
	mfs_log_warn("%s: the server changed its UIDVALIDITY %u times within a minute: its "
		     "messages get new UIDs each time, so their file names and inode numbers "
		     "change and open files give ESTALE (a server fault; no wrong byte is served)",
		     esc, n);
	mfs_mutex_lock(&a->lock);
	g_ptr_array_add(a->unstable, g_strdup(wire));
	mfs_mutex_unlock(&a->lock);
}

int account_apply_resync(struct imap_account *a, struct folder_state *f, guint64 ino,
			 const char *wire, struct lindex *idx, const struct resync_known *k,
			 const struct resync_result *res)
{
	g_autoptr(GArray) removed = tree_removed_new();
	int rc = 0;

	if (idx && res->how != RESYNC_FULL) {
		/* The saved listing still holds: it becomes the tree's, then the
		   changes since apply. */
		rc = tree_folder_load(a->tree, ino, res->uidvalidity, lindex_count(idx), lindex_read,
				      idx, removed);
		if (rc == -EEXIST) {
			/* The tree holds a listing of this UIDVALIDITY after all
			   (listing_known loads none then): replaced, keeping its
			   messages' inodes. */
			gsize n = lindex_count(idx);
			g_autofree struct tree_msg_info *m = g_new(struct tree_msg_info, MAX(n, 1));

			lindex_rewind(idx);
			n = lindex_read(idx, m, n);
			rc = tree_folder_set_messages(a->tree, ino, res->uidvalidity, m, n, removed);
		}
	}
	/* Bodies of another UIDVALIDITY are other messages now. */
	if (k->uidvalidity && k->uidvalidity != res->uidvalidity) {
		mcache_drop_mailbox(a->cache, wire, res->uidvalidity);
		note_uidvalidity_change(a, f, wire);
	}
	if (rc == 0)
		rc = tree_folder_merge(a->tree, ino, res->uidvalidity, &res->delta, removed);
	account_removed(a, removed);
	if (rc < 0)
		return rc;
	if (res->how == RESYNC_FULL)
		__atomic_fetch_add(&a->listings_full, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&a->listings_resynced, 1, __ATOMIC_RELAXED);
	f->uidvalidity = res->uidvalidity;
	f->uidnext = res->uidnext;
	f->highestmodseq = res->highestmodseq;
	f->fetched_at = account_now();
	__atomic_fetch_add(&f->listed_gen, 1, __ATOMIC_RELEASE);
	if (res->how != RESYNC_UNCHANGED || !idx)
		f->index_dirty = TRUE;
	listing_save_soon(a, f, ino);
	return 0;
}

gboolean account_count_agrees(struct imap_account *a, guint64 ino, const char *wire, int rc,
			      const struct resync_result *res)
{
	guint32 held = rc == 0 && res->how != RESYNC_FULL ? listing_count(a, ino) : res->exists;

	if (held == res->exists)
		return TRUE;
	/* A server whose QRESYNC or CONDSTORE answers miss something (some
	   do): the count tells, and a full listing mends it. */
	mfs_log_info("%s: %u messages after a resync, the server has %u; listing it in full",
		     wire, held, res->exists);
	return FALSE;
}

/* Mail that comes while a resync runs grows the server's count after its
   SELECT, past what the resync brought (resync_folder fetches what comes
   during its new-UID FETCH itself; this is for what comes after it): the
   resync is made again from what is held then (a SELECT and the new
   UIDs), this many times at most while mail keeps coming, before the
   folder is listed in full. */
#define RESYNC_AGAIN_MAX 2

/* Whether the count disagrees only because mail came during res. */
static gboolean mail_came_meanwhile(struct imap_account *a, guint64 ino,
				    const struct resync_result *res)
{
	return res->how != RESYNC_FULL && res->exists > res->exists_selected &&
	       listing_count(a, ino) < res->exists;
}

int account_resync_and_apply(struct imap_account *a, struct folder_state *f, guint64 ino,
			     const char *wire, struct imap_session *s, struct lindex *idx,
			     struct resync_known *known, struct resync_stream *stream,
			     GError **err)
{
	gboolean readonly = !a->opts->mark_seen;
	gboolean subjects = a->opts->names != MFS_NAMES_UID;
	gboolean objids = account_wants_objids(a);
	struct resync_result res = { 0 };
	int rc;

	rc = resync_folder(s, wire, readonly, subjects, objids, known, stream, &res, err);
	if (rc == 0)
		rc = account_apply_resync(a, f, ino, wire, idx, known, &res);
	for (int again = 0; rc == 0 && again < RESYNC_AGAIN_MAX &&
			    mail_came_meanwhile(a, ino, &res);
	     again++) {
		resync_result_clear(&res);
		lindex_free(listing_known(a, f, ino, wire, known));
		rc = resync_folder(s, wire, readonly, subjects, objids, known, NULL, &res, err);
		if (rc == 0)
			rc = account_apply_resync(a, f, ino, wire, NULL, known, &res);
	}
	if (!account_count_agrees(a, ino, wire, rc, &res)) {
		resync_result_clear(&res);
		memset(known, 0, sizeof(*known));
		rc = resync_folder(s, wire, readonly, subjects, objids, known, NULL, &res, err);
		if (rc == 0)
			rc = account_apply_resync(a, f, ino, wire, NULL, known, &res);
	}
	resync_result_clear(&res);
	return rc;
}

/* Locked (f->lock). Whether folder ino's listing is the mailbox in the
   state `seen` describes (same UIDVALIDITY, UIDNEXT, message count and a
   HIGHESTMODSEQ: without one, flags may have changed unseen), the state
   push began from (watch.h): then the listing is fresh from now on. */
static gboolean fresh_if_listed_as(struct imap_account *a, struct folder_state *f, guint64 ino,
				   const struct imap_select_info *seen)
{
	if (!f->uidvalidity || f->uidvalidity != seen->uidvalidity || !f->highestmodseq ||
	    f->highestmodseq != seen->highestmodseq || f->uidnext != seen->uidnext ||
	    listing_count(a, ino) != seen->exists)
		return FALSE;
	f->fetched_at = account_now();
	return TRUE;
}

/* A first listing taken into the tree as it arrives (tree_folder_stream_begin). */
struct listing_stream {
	struct resync_stream rs;
	struct imap_account *a;
	guint64 ino;
	/* The caller's, called once the tree shows the folder's mtime: a stat
	   waiting for it is answered while the listing goes on. */
	void (*known)(void *ud);
	void *known_ud;
};

static gboolean stream_begin(void *ud, guint32 uidvalidity, gint64 newest)
{
	struct listing_stream *ls = ud;

	if (tree_folder_stream_begin(ls->a->tree, ls->ino, uidvalidity, newest) < 0)
		return FALSE;
	if (newest && ls->known) {
		ls->known(ls->known_ud);
		/* Answered: a second try (refresh_folder's) needs no date first. */
		ls->known = NULL;
		ls->rs.want_newest = FALSE;
	}
	return TRUE;
}

static int stream_chunk(void *ud, guint32 uidvalidity, const struct tree_delta *d)
{
	struct listing_stream *ls = ud;
	g_autoptr(GArray) removed = tree_removed_new();
	int rc = tree_folder_merge(ls->a->tree, ls->ino, uidvalidity, d, removed);

	account_removed(ls->a, removed);
	return rc;
}

/* Locked (f->lock). After the resync a stream was given to: the listing is
   whole (ok), or what it handed over leaves again. */
static void stream_end(struct listing_stream *ls, gboolean ok)
{
	g_autoptr(GArray) removed = tree_removed_new();

	if (!ls->rs.begun)
		return;
	ls->rs.begun = FALSE;
	tree_folder_stream_end(ls->a->tree, ls->ino, ok, removed);
	account_removed(ls->a, removed);
}

/* How often a stat waiting for a folder another lister holds looks at its
   lock again: its release wakes no one. */
#define STAT_LOCK_POLL_US (20 * 1000)

/* Takes the folder's lock for a listing: 1, held. A stat's (ls->known set)
   does not wait for it while another lister's first listing of the folder
   (push's, at mount) streams in: once that stream makes the folder read as
   listed (its newest arrival is known), the stat is answered from it
   (known() called) and the lister goes on: 0, not held. -EINTR: the stat
   was interrupted meanwhile, not held. */
static int lock_for_listing(struct imap_account *a, struct folder_state *f, guint64 ino,
			    struct lease *l, struct listing_stream *ls)
{
	if (!ls->known) {
		mfs_mutex_lock(&f->lock);
		return 1;
	}
	while (!mfs_mutex_trylock(&f->lock)) {
		gint64 until = g_get_monotonic_time() + STAT_LOCK_POLL_US;

		lease_arm(l);
		if (lease_interrupted(l))
			return -EINTR;
		if (tree_folder_wait_listed(a->tree, ino, until)) {
			ls->known(ls->known_ud);
			return 0;
		}
		if (g_get_monotonic_time() < until) {
			/* Back early and not listed: the tree holds no such folder
			   (removed meanwhile), so no stream will answer the stat.
			   Wait for the lock as any lister, not in a spin. */
			mfs_mutex_lock(&f->lock);
			return 1;
		}
	}
	return 1;
}

/* seen: what push saw of the mailbox when it began to watch it (watch.h);
   a listing in that state is fresh from then on. ls: how a first listing
   is streamed (its known() may be set). */
static int refresh_folder_once(struct imap_account *a, struct lease *l, guint64 ino,
			       gboolean force, const struct imap_select_info *seen,
			       struct listing_stream *ls)
{
	struct folder_state *f = account_folder(a, ino);
	struct tree_entry e = { 0 };
	struct resync_known known;
	struct lindex *idx;
	struct imap_session *s;
	GError *err = NULL;
	int rc = lock_for_listing(a, f, ino, l, ls);

	if (rc <= 0)
		return rc;
	if (seen && fresh_if_listed_as(a, f, ino, seen)) {
		mfs_mutex_unlock(&f->lock);
		return 0;
	}
	if (!force && f->fetched_at &&
	    account_now() - f->fetched_at < (gint64)a->opts->refresh * G_USEC_PER_SEC) {
		mfs_mutex_unlock(&f->lock);
		return 0;
	}
	rc = tree_get(a->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.kind != TREE_FOLDER || !e.selectable || !e.wire || e.gone) {
		tree_entry_clear(&e);
		mfs_mutex_unlock(&f->lock);
		return rc < 0 ? rc : 0;
	}
	idx = listing_known(a, f, ino, e.wire, &known);
	rc = lease_borrow(l, e.wire, &s);
	if (rc == 0) {
		/* Only a first listing streams: one into an empty folder. */
		gboolean first = !known.uidvalidity && !idx && !e.listed;

		rc = account_resync_and_apply(a, f, ino, e.wire, s, idx, &known,
					      first ? &ls->rs : NULL, &err);
		stream_end(ls, rc == 0);
		lease_give_back(l);
		if (rc < 0)
			rc = lease_errno(l, rc, err, e.wire);
	}
	if (idx && rc < 0)
		f->index_tried = FALSE; /* offline: the saved listing is for the next try */
	lindex_free(idx);
	tree_entry_clear(&e);
	mfs_mutex_unlock(&f->lock);
	return rc;
}

/* want_newest: a first listing asks for the newest arrival first (a
   stat's does; so does push's, for the stats made meanwhile). known: a
   stat's, answered from the stream (refresh_folder_once). */
static int refresh_folder(struct imap_account *a, struct lease *l, guint64 ino, gboolean force,
			  const struct imap_select_info *seen, gboolean want_newest,
			  void (*known)(void *ud), void *ud)
{
	struct listing_stream ls = {
	    .rs = { .begin = stream_begin, .chunk = stream_chunk, .ud = &ls,
		    .want_newest = want_newest },
	    .a = a,
	    .ino = ino,
	    .known = known,
	    .known_ud = ud,
	};
	gint64 start = account_now();
	int rc = refresh_folder_once(a, l, ino, force, seen, &ls);

	/* A connection the server dropped while it sat idle fails its first
	   command at once: once more, on a new one. A failure that took half
	   the timeout is a server not answering: no second wait. */
	if (rc == -EIO && account_now() - start < (gint64)a->opts->timeout * G_USEC_PER_SEC / 2)
		rc = refresh_folder_once(a, l, ino, force, NULL, &ls);
	return rc;
}

int imap_account_refresh_folder(struct imap_account *a, struct lease *l, guint64 ino,
				gboolean force)
{
	return refresh_folder(a, l, ino, force, NULL, FALSE, NULL, NULL);
}

int imap_account_list_for_stat(struct imap_account *a, struct lease *l, guint64 ino,
			       void (*known)(void *ud), void *ud)
{
	return refresh_folder(a, l, ino, FALSE, NULL, TRUE, known, ud);
}

int imap_account_refresh_dir(struct imap_account *a, struct lease *l, guint64 ino)
{
	int rc = imap_account_refresh_list(a, FALSE, NULL);

	if (rc < 0 && rc != -EIO)
		return rc;
	if (ino != TREE_ROOT_INO && account_census(a, l) == -EINTR)
		return -EINTR;
	/* Offline: a folder listed before still answers from what is known. */
	return imap_account_refresh_folder(a, l, ino, FALSE);
}

int imap_account_read_dir(struct imap_account *a, struct lease *l, guint64 ino)
{
	struct tree_entry e = { 0 };
	struct folder_state *f;
	gboolean listed;
	int rc;

	imap_account_dir_read_from_start(a, ino);
	/* Its first listing arriving now (a stat began it) is as fresh as a
	   listing gets: the readdir gives what came and waits for the rest. */
	if (tree_folder_streaming(a->tree, ino))
		return 0;
	rc = imap_account_refresh_dir(a, l, ino);
	if (rc != -EIO)
		return rc;
	/* Never listed and the server cannot be reached: say so. */
	f = account_folder(a, ino);
	mfs_mutex_lock(&f->lock);
	listed = f->uidvalidity != 0;
	mfs_mutex_unlock(&f->lock);
	if (!listed && tree_get(a->tree, ino, 0, &e) == 0 && e.selectable)
		return -EIO;
	return 0;
}

/* Folder f's listing is to be brought up to date when next looked at:
   a walk's listers may list it ahead again, though they did lately. */
static void make_stale(struct imap_account *a, struct folder_state *f)
{
	mfs_mutex_lock(&f->lock);
	f->fetched_at = 0;
	mfs_mutex_unlock(&f->lock);
	mfs_mutex_lock(&a->lock);
	f->ahead_at = 0;
	mfs_mutex_unlock(&a->lock);
}

void account_mark_stale(struct imap_account *a, guint64 folder)
{
	make_stale(a, account_folder(a, folder));
	account_search_changed(a);
}

/* Whether folder ino was listed in the state push began from (`others`
   of struct watch_seen), and is fresh from now on; a listing under way is
   waited for. */
static gboolean listed_as_seen(struct imap_account *a, struct folder_state *f, guint64 ino,
			       GHashTable *others)
{
	struct tree_entry e = { 0 };
	const struct imap_select_info *st;
	gboolean same;

	mfs_mutex_lock(&f->lock);
	same = f->uidvalidity && tree_get(a->tree, ino, TREE_WANT_WIRE, &e) == 0 && e.wire &&
	       (st = g_hash_table_lookup(others, e.wire)) != NULL &&
	       fresh_if_listed_as(a, f, ino, st);
	mfs_mutex_unlock(&f->lock);
	tree_entry_clear(&e);
	return same;
}

/* Every listing is to be brought up to date when next looked at (cheap with
   QRESYNC: one EXAMINE), but one push found in the state it was listed in
   (others: NULL when push had no such answers). The folder list itself
   waits for `refresh`: NOTIFY is not asked for mailbox names. */
static void mark_changed_stale(struct imap_account *a, GHashTable *others)
{
	g_autoptr(GArray) inos = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GPtrArray) all = g_ptr_array_new();
	GHashTableIter it;
	gpointer key, value;

	mfs_mutex_lock(&a->lock);
	g_hash_table_iter_init(&it, a->folders);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		g_array_append_val(inos, *(guint64 *)key);
		g_ptr_array_add(all, value);
	}
	mfs_mutex_unlock(&a->lock);
	/* folder_state objects live as long as the account. */
	for (guint i = 0; i < all->len; i++)
		if (!others || !listed_as_seen(a, all->pdata[i], g_array_index(inos, guint64, i),
					       others))
			make_stale(a, all->pdata[i]);
}

/*
 * The watch thread saw a mailbox change (NULL: it does not know which, after
 * a reconnect). INBOX and folders already listed are brought up to date at
 * once, so that `ls` and inotify watchers see it; others are listed when
 * first looked at anyway.
 */
void account_mailbox_changed(void *ud, const char *wire, const struct watch_seen *seen)
{
	struct imap_account *a = ud;
	const struct imap_select_info *watched = seen ? seen->watched : NULL;
	struct lease l;
	guint64 ino;

	account_search_changed(a);
	if (!wire) {
		struct watch *w;

		pool_server_back(a->pool);
		/* NULL while imap_account_start has not stored it yet: then
		   nothing was listed to be marked stale. */
		mfs_mutex_lock(&a->lock);
		w = a->watch;
		mfs_mutex_unlock(&a->lock);
		if (watch_covers_all(w))
			mark_changed_stale(a, seen ? seen->others : NULL);
		wire = "INBOX";
	}
	ino = tree_find_folder(a->tree, wire);
	if (!ino) {
		/* A mailbox this mount has not seen (or hides): the folder list
		   may be stale; `refresh` bounds how often this lists. */
		imap_account_refresh_list(a, FALSE, NULL);
		return;
	}
	if (strcmp(wire, "INBOX") != 0) {
		struct folder_state *f = account_folder(a, ino);
		gboolean listed;

		mfs_mutex_lock(&f->lock);
		listed = f->fetched_at != 0 || f->uidvalidity != 0;
		mfs_mutex_unlock(&f->lock);
		if (!listed)
			return;
	}
	lease_init(&l, a->pool);
	/* After a connect, INBOX listed in the very state push began from
	   (a mount that just listed it, with nothing changed since) is not
	   listed again: push covers it from there. A first listing of it
	   (push's at mount) asks for the newest arrival first, as a stat's
	   does: once that is in the folder reads as listed, so a stat made
	   meanwhile is answered and a readdir reads the stream, instead of
	   both waiting for the folder's lock until the listing is whole.
	   Push itself, answering no stat, waits for the lock: a change it
	   reports is never left to a listing that began before it. */
	refresh_folder(a, &l, ino, TRUE, watched, TRUE, NULL, NULL);
	lease_clear(&l);
}
