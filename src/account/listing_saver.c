/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Listings on disk (model/listing_index.h): a folder's listing is saved so
 * that the next mount resyncs from it instead of listing the folder in
 * full. The saving is the saver thread's: the reader of a listing does not
 * wait for the disk. A folder changing all the time is saved at most every
 * INDEX_SAVE_INTERVAL_US; what is left is saved at unmount.
 */
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "account/imap_account_internal.h"
#include "account/resync.h"
#include "model/listing_index.h"
#include "util/log.h"

static void count_msg(void *ud, const struct tree_msg_info *m)
{
	struct resync_known *k = ud;

	k->count++;
	k->max_uid = MAX(k->max_uid, m->uid);
}

guint32 listing_count(struct imap_account *a, guint64 ino)
{
	struct resync_known k = { 0 };
	guint32 uv;

	tree_folder_foreach_message(a->tree, ino, &uv, count_msg, &k);
	return k.count;
}

struct lindex *listing_known(struct imap_account *a, struct folder_state *f, guint64 ino,
			     const char *wire, struct resync_known *k)
{
	struct lindex *idx = NULL;
	guint32 uv = 0;

	memset(k, 0, sizeof(*k));
	if (f->uidvalidity && tree_folder_foreach_message(a->tree, ino, &uv, count_msg, k) == 0 &&
	    uv == f->uidvalidity) {
		k->uidvalidity = f->uidvalidity;
		k->uidnext = f->uidnext;
		k->highestmodseq = f->highestmodseq;
		return NULL;
	}
	memset(k, 0, sizeof(*k));
	if (!f->index_tried) {
		g_autoptr(GError) err = NULL;
		g_autofree char *dir = g_build_filename(a->opts->cache_dir, "listings", NULL);

		f->index_tried = TRUE;
		/* A listing made with object ids or without cannot stand
		   for the other: a full listing then. */
		idx = lindex_load(dir, wire, a->opts->names, account_wants_objids(a), &err);
		/* Damaged: a warning. Made under other settings (after an
		   upgrade, every folder's once): an info line. */
		if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_FAILED))
			mfs_log_info("saved listing not used: %s", err->message);
		else if (!idx && !g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			mfs_log_warn("saved listing not used: %s", err->message);
	}
	if (idx) {
		const struct lindex_head *h = lindex_head(idx);

		k->uidvalidity = h->uidvalidity;
		k->uidnext = h->uidnext;
		k->highestmodseq = h->highestmodseq;
		k->count = (guint32)lindex_count(idx);
		k->max_uid = lindex_max_uid(idx);
	}
	return idx;
}

/* A folder's listing for the next mount: written under the folder's lock
   (into the page cache: ~15 ms for 10,000 messages), made durable and put
   in place without it. */
struct listing_snapshot {
	struct lindex_writer *w;
	struct lindex_head head;
	char *wire;
};

/* A listing this big gives memory back before it is written. */
#define TRIM_FROM 100000

struct listing_size {
	gsize n, name_bytes, objid_bytes;
};

static void size_msg(void *ud, const struct tree_msg_info *m)
{
	struct listing_size *z = ud;

	z->n++;
	z->name_bytes += strlen(m->name) + 1;
	z->objid_bytes += (m->objid ? strlen(m->objid) : 0) + 1;
}

/* Locked (f->lock). FALSE: the tree holds no listing of this generation,
   or the file cannot be made (said). */
static gboolean snapshot_listing(struct imap_account *a, struct folder_state *f, guint64 ino,
				 const char *wire, struct listing_snapshot *out)
{
	g_autofree char *dir = g_build_filename(a->opts->cache_dir, "listings", NULL);
	g_autoptr(GError) err = NULL;
	struct listing_size z = {0};
	guint32 uv;

	/* Sized first (a pass over the tree is ~10 ms a million): the writer
	   puts each column at its place in the file. */
	if (tree_folder_foreach_message(a->tree, ino, &uv, size_msg, &z) < 0)
		return FALSE;
#ifdef __GLIBC__
	/* The listing just merged was freed in the arena of the thread that
	   read it, where glibc keeps its pages (~100 MB at 1,000,000
	   messages) until something of that thread's reuses them. */
	if (z.n >= TRIM_FROM)
		malloc_trim(0);
#endif
	out->w = lindex_writer_new(dir, wire, z.n, z.name_bytes, z.objid_bytes, &err);
	if (!out->w) {
		mfs_log_warn("cannot save the listing of %s: %s", wire, err->message);
		return FALSE;
	}
	out->head = (struct lindex_head){ .uidnext = f->uidnext,
					  .highestmodseq = f->highestmodseq,
					  .names_mode = a->opts->names,
					  .objids = account_wants_objids(a) };
	if (tree_folder_foreach_message(a->tree, ino, &out->head.uidvalidity, lindex_writer_add,
					out->w) < 0 ||
	    out->head.uidvalidity != f->uidvalidity) {
		lindex_writer_free(out->w);
		return FALSE;
	}
	out->wire = g_strdup(wire);
	f->index_dirty = FALSE;
	f->index_saved_at = account_now();
	return TRUE;
}

/* FALSE: not saved (said). */
static gboolean write_listing(struct listing_snapshot *c)
{
	g_autoptr(GError) err = NULL;
	gboolean ok = lindex_writer_save(c->w, &c->head, &err);

	if (!ok)
		mfs_log_warn("cannot save the listing of %s: %s", c->wire, err->message);
	g_free(c->wire);
	return ok;
}

/* Write folder ino's listing if it changed since it was last written. */
static void save_if_dirty(struct imap_account *a, guint64 ino)
{
	struct folder_state *f = account_folder(a, ino);
	struct tree_entry e = { 0 };
	struct listing_snapshot c;
	gboolean copied;

	mfs_mutex_lock(&f->lock);
	f->save_queued = FALSE;
	copied = f->index_dirty && tree_get(a->tree, ino, TREE_WANT_WIRE, &e) == 0 && e.wire &&
		 !e.gone && snapshot_listing(a, f, ino, e.wire, &c);
	mfs_mutex_unlock(&f->lock);
	tree_entry_clear(&e);
	if (copied && !write_listing(&c)) {
		/* Tried again at the folder's next change or at unmount. */
		mfs_mutex_lock(&f->lock);
		f->index_dirty = TRUE;
		mfs_mutex_unlock(&f->lock);
	}
}

void listing_save_job(void *data, void *user_data)
{
	save_if_dirty(user_data, *(guint64 *)data);
	g_free(data);
}

void listing_save_soon(struct imap_account *a, struct folder_state *f, guint64 ino)
{
	if (f->index_dirty && !f->save_queued && a->saver &&
	    (!f->index_saved_at || account_now() - f->index_saved_at >= INDEX_SAVE_INTERVAL_US)) {
		f->save_queued = TRUE;
		workers_push(a->saver, g_memdup2(&ino, sizeof(ino)));
	}
}

void listing_save_all(struct imap_account *a)
{
	g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(guint64));
	GHashTableIter it;
	gpointer key, value;

	mfs_mutex_lock(&a->lock);
	g_hash_table_iter_init(&it, a->folders);
	while (g_hash_table_iter_next(&it, &key, &value))
		g_array_append_val(all, *(guint64 *)key);
	mfs_mutex_unlock(&a->lock);
	for (guint i = 0; i < all->len; i++)
		save_if_dirty(a, g_array_index(all, guint64, i));
}
