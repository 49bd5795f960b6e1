/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fs/fs_imap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/prefetch.h"
#include "account/resync.h"
#include "account/watch.h"
#include "fs/notify.h"
#include "model/append.h"
#include "model/headers.h"
#include "model/listing_index.h"
#include "model/names.h"
#include "protocol/mutf7.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/workers.h"

/* Ranges of a message fetched at once: small first, so `head` and `file`
   stay cheap, doubling while a reader goes on sequentially. */
#define CHUNK_MIN (128 * 1024)
#define CHUNK_MAX (4 * 1024 * 1024)
/* Decoded headers kept for getxattr; dropped wholesale when this many. */
#define HEADERS_CACHE_MAX 20000
#define STATUS_XATTR "user.mailfs.status"
#define FLAGS_XATTR "user.imap.flags"
/* A listing that keeps changing is written to disk at most this often. */
#define INDEX_SAVE_INTERVAL_US (10 * G_USEC_PER_SEC)
/* A walk (rsync, find, ls -R) reads folder after folder, each listing a
   round trip it waits for: when a folder is read within WALK_WINDOW_US of
   another, the next LIST_AHEAD folders of the walk are listed meanwhile,
   by LISTERS threads. */
#define WALK_WINDOW_US (2 * G_USEC_PER_SEC)
#define LIST_AHEAD 6
#define LISTERS 2

struct folder_state {
	mfs_mutex lock; /* one listing fetch of this folder at a time */
	gint64 fetched_at;
	/* What the listing was brought up to (resync.h), and its copy on disk. */
	guint32 uidvalidity;
	guint32 uidnext;
	guint64 highestmodseq;
	gboolean index_tried; /* the saved listing was looked for */
	gboolean index_dirty; /* the tree holds more than the saved listing */
	gboolean save_queued; /* with the saver thread */
	gboolean ahead_queued; /* with the listers (under fs->lock) */
	gint64 index_saved_at;
	/* Reading pattern, under fs->lock: opens one after another are prefetched. */
	gint64 last_open;
	guint32 last_uid;
	guint streak;
	gint64 readdir_at; /* a readdir started: the next open may begin a walk */
	/* The listing in the two orders readers use (rsync: names; grep, tar:
	   readdir = UIDs), built once per listing (order_at == fetched_at). */
	GArray *by_uid;  /* struct listed */
	GPtrArray *by_name; /* struct listed *, into by_uid */
	gint64 order_at;
	guint32 order_uidvalidity;
};

struct listed {
	guint32 uid;
	guint64 size;
	char *name;
};

struct mfs_imap_fs {
	const struct mfs_options *opts;
	struct pool *pool;
	struct mcache *cache;
	struct tree *tree;
	struct notify *notify;
	struct watch *watch;
	struct prefetch *prefetch;
	struct prefetch *prefetch_next; /* the folders a tree walk comes to next */
	struct workers *saver; /* one thread writing listings to disk */
	struct workers *lister; /* listings ahead of a walk */
	uid_t uid;
	gid_t gid;

	mfs_mutex lock;         /* folders, headers, staged, delim, trash_wire */
	GHashTable *folders; /* ino -> struct folder_state */
	GHashTable *headers; /* ino -> struct mail_headers */
	GHashTable *staged;  /* ino -> struct staged: new files not yet appended */
	GHashTable *opens;   /* struct open_msg * set: files the kernel holds open */
	guint64 staged_counter;
	char delim;          /* the server's hierarchy delimiter, 0 for a flat namespace */
	char *trash_wire;    /* the Trash mailbox, or NULL when there is none */
	mfs_mutex list_lock;    /* one LIST at a time */
	gint64 list_fetched_at;
	gint64 dir_read_at; /* the last readdir from the start, under lock */
	guint64 dir_read_ino;
	gint64 tree_walk_at; /* list_ahead last saw a walk, under lock */

	guint64 messages_fetched;
	guint64 bytes_fetched;
	guint64 bodies_from_cache;
	guint64 listings_full;
	guint64 listings_resynced;
	guint64 headers_from_cache;
};

/* One open message file. */
struct open_msg {
	mfs_mutex lock; /* one fetch per open file at a time */
	guint64 ino;
	guint32 uid;
	guint32 uidvalidity;
	char *wire;
	guint64 expected;    /* RFC822.SIZE, until the bytes say otherwise */
	guint64 total;       /* the real size, once known */
	gboolean total_known;
	gboolean size_wrong;  /* RFC822.SIZE is known to be wrong, the total not yet */
	struct mcache_entry *entry;
	guint64 seq_end;     /* where the last fetch ended: sequential readers */
	guint64 chunk;
	/* The last fetched range, for when the cache cannot keep it (full disk). */
	GByteArray *mem;
	guint64 mem_off;
};

/* A request that may be waiting for the server, for FUSE interrupts. */
struct req_ctx {
	mfs_mutex lock;
	struct mfs_imap_fs *fs;
	struct imap_session *session;
	gboolean interrupted;
};

/* Local files being written: inode numbers no message or folder can have. */
#define STAGED_INO_BIT ((guint64)1 << 63)
/* A new message larger than this is refused (EFBIG) rather than read into memory. */
#define APPEND_MAX ((guint64)256 * 1024 * 1024)

struct staged {
	guint64 ino;
	guint64 parent;
	char *name;
	int fd;		 /* an unlinked file under cache_dir/staging */
	guint opens;
	guint64 nlookup;
	gint64 mtime;
	char *flags;	 /* canonical user.imap.flags, or NULL */
	gboolean dirty;	 /* written since the last APPEND */
	gboolean done;	 /* appended (or already on the server): kept only for the kernel */
};

static gboolean is_staged(guint64 ino)
{
	return (ino & STAGED_INO_BIT) != 0;
}

static void staged_free(struct staged *st)
{
	if (st->fd >= 0)
		close(st->fd);
	g_free(st->name);
	g_free(st->flags);
	g_free(st);
}

/* Locked: drop st once nobody refers to it. */
static void staged_maybe_free(struct mfs_imap_fs *fs, struct staged *st)
{
	if (st->opens == 0 && st->nlookup == 0 && st->done)
		g_hash_table_remove(fs->staged, &st->ino);
}

static struct staged *staged_get(struct mfs_imap_fs *fs, guint64 ino)
{
	struct staged *st;

	mfs_mutex_lock(&fs->lock);
	st = g_hash_table_lookup(fs->staged, &ino);
	mfs_mutex_unlock(&fs->lock);
	return st;
}

/* Locked. The live (not yet appended) local file called name in parent. */
static struct staged *staged_by_name(struct mfs_imap_fs *fs, guint64 parent, const char *name)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, fs->staged);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct staged *st = v;

		if (!st->done && st->parent == parent && strcmp(st->name, name) == 0)
			return st;
	}
	return NULL;
}

static void staged_attr(const struct mfs_imap_fs *fs, const struct staged *st, struct stat *out)
{
	struct stat fst;

	memset(out, 0, sizeof(*out));
	out->st_ino = st->ino;
	out->st_mode = S_IFREG | 0600;
	out->st_nlink = st->done ? 0 : 1;
	out->st_uid = fs->uid;
	out->st_gid = fs->gid;
	if (fstat(st->fd, &fst) == 0) {
		out->st_size = fst.st_size;
		out->st_blocks = fst.st_blocks;
	}
	out->st_mtime = st->mtime;
	out->st_atime = st->mtime;
	out->st_ctime = st->mtime;
	out->st_blksize = 4096;
}

static gint64 now_us(void)
{
	return g_get_monotonic_time();
}

static double cache_timeout(const struct mfs_imap_fs *fs)
{
	return fs->opts->refresh;
}

static void listed_clear(gpointer p)
{
	g_free(((struct listed *)p)->name);
}

static void folder_state_free(gpointer p)
{
	struct folder_state *f = p;

	if (f->by_name)
		g_ptr_array_unref(f->by_name);
	if (f->by_uid)
		g_array_unref(f->by_uid);
	mfs_mutex_clear(&f->lock);
	g_free(f);
}

static struct folder_state *folder_state(struct mfs_imap_fs *fs, guint64 ino)
{
	struct folder_state *f;

	mfs_mutex_lock(&fs->lock);
	f = g_hash_table_lookup(fs->folders, &ino);
	if (!f) {
		guint64 *key = g_new(guint64, 1);

		*key = ino;
		f = g_new0(struct folder_state, 1);
		mfs_mutex_init(&f->lock);
		g_hash_table_insert(fs->folders, key, f);
	}
	mfs_mutex_unlock(&fs->lock);
	return f;
}

static void headers_free(gpointer p)
{
	mail_headers_clear(p);
	g_free(p);
}

static void save_job(void *data, void *user_data);
static void list_job(void *data, void *user_data);

struct mfs_imap_fs *mfs_imap_fs_new(const struct mfs_options *opts, struct pool *pool,
				    struct mcache *cache, struct tree *tree)
{
	struct mfs_imap_fs *fs = g_new0(struct mfs_imap_fs, 1);

	fs->opts = opts;
	fs->pool = pool;
	fs->cache = cache;
	fs->tree = tree;
	fs->uid = getuid();
	fs->gid = getgid();
	mfs_mutex_init(&fs->lock);
	mfs_mutex_init(&fs->list_lock);
	fs->folders = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, folder_state_free);
	fs->headers = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, headers_free);
	fs->staged = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					   (GDestroyNotify)staged_free);
	fs->opens = g_hash_table_new(g_direct_hash, g_direct_equal);
	/* Unstarted jobs are dropped at detach: save_dirty_listings does them. */
	fs->saver = workers_new("mailfs-saver", 1, save_job, fs, g_free);
	fs->lister = workers_new("mailfs-lister", LISTERS, list_job, fs, g_free);
	return fs;
}

static void open_msg_free(struct open_msg *m);

void mfs_imap_fs_free(struct mfs_imap_fs *fs)
{
	if (!fs)
		return;
	if (fs->saver)
		workers_free(fs->saver, FALSE);
	if (fs->lister)
		workers_free(fs->lister, FALSE);
	g_hash_table_destroy(fs->folders);
	g_hash_table_destroy(fs->headers);
	g_hash_table_destroy(fs->staged);
	/* An unmount does not release files still open: free them here. */
	{
		GHashTableIter it;
		gpointer m;

		g_hash_table_iter_init(&it, fs->opens);
		while (g_hash_table_iter_next(&it, &m, NULL))
			open_msg_free(m);
		g_hash_table_destroy(fs->opens);
	}
	g_free(fs->trash_wire);
	mfs_mutex_clear(&fs->lock);
	mfs_mutex_clear(&fs->list_lock);
	g_free(fs);
}

static int refresh_folder(struct mfs_imap_fs *fs, guint64 ino, gboolean force, fuse_req_t req);

/* Every listing is to be brought up to date when next looked at (cheap with
   QRESYNC: one EXAMINE). The folder list itself waits for `refresh`: NOTIFY
   is not asked for mailbox names. */
static void mark_all_stale(struct mfs_imap_fs *fs)
{
	g_autoptr(GPtrArray) all = g_ptr_array_new();
	GHashTableIter it;
	gpointer value;

	mfs_mutex_lock(&fs->lock);
	g_hash_table_iter_init(&it, fs->folders);
	while (g_hash_table_iter_next(&it, NULL, &value))
		g_ptr_array_add(all, value);
	mfs_mutex_unlock(&fs->lock);
	/* folder_state objects live as long as fs. */
	for (guint i = 0; i < all->len; i++) {
		struct folder_state *f = all->pdata[i];

		mfs_mutex_lock(&f->lock);
		f->fetched_at = 0;
		mfs_mutex_unlock(&f->lock);
	}
}

/*
 * The watch thread saw a mailbox change (NULL: it does not know which, after
 * a reconnect). INBOX and folders already listed are brought up to date at
 * once, so that `ls` and inotify watchers see it; others are listed when
 * first looked at anyway.
 */
static void mailbox_changed(void *ud, const char *wire)
{
	struct mfs_imap_fs *fs = ud;
	guint64 ino;

	if (!wire) {
		pool_server_back(fs->pool);
		if (watch_covers_all(fs->watch))
			mark_all_stale(fs);
		wire = "INBOX";
	}
	ino = tree_find_folder(fs->tree, wire);
	if (!ino) {
		/* A mailbox this mount has not seen (or hides): the folder list
		   may be stale; `refresh` bounds how often this lists. */
		mfs_imap_fs_refresh_list(fs, FALSE, NULL);
		return;
	}
	if (strcmp(wire, "INBOX") != 0) {
		struct folder_state *f = folder_state(fs, ino);
		gboolean listed;

		mfs_mutex_lock(&f->lock);
		listed = f->fetched_at != 0 || f->uidvalidity != 0;
		mfs_mutex_unlock(&f->lock);
		if (!listed)
			return;
	}
	refresh_folder(fs, ino, TRUE, NULL);
}

void mfs_imap_fs_attach(struct mfs_imap_fs *fs, struct fuse_session *se)
{
	fs->notify = notify_start(se);
	pool_warm(fs->pool);
	/* Bodies fetched ahead are read with BODY.PEEK: no prefetch when
	   reading is to set \Seen. */
	if (fs->opts->prefetch > 0 && !fs->opts->mark_seen) {
		fs->prefetch = prefetch_start(fs->pool, fs->cache);
		fs->prefetch_next = prefetch_start(fs->pool, fs->cache);
	}
	if (fs->opts->idle) {
		/* Tests shorten the renewal; servers drop an IDLE after 10-30 min. */
		const char *env = g_getenv("MAILFS_IDLE_RENEW");
		int renew = env ? atoi(env) : 9 * 60;

		fs->watch = watch_start(pool_session_opts(fs->pool), "INBOX", renew, 5 * 60,
					mailbox_changed, fs);
	}
}

static void save_dirty_listings(struct mfs_imap_fs *fs);

void mfs_imap_fs_detach(struct mfs_imap_fs *fs)
{
	g_clear_pointer(&fs->watch, watch_stop);
	g_clear_pointer(&fs->prefetch, prefetch_stop);
	g_clear_pointer(&fs->prefetch_next, prefetch_stop);
	g_clear_pointer(&fs->notify, notify_stop);
	if (fs->lister) {
		/* A listing ahead waiting on the server ends at once. */
		pool_shutdown(fs->pool);
		workers_free(g_steal_pointer(&fs->lister), FALSE);
	}
	if (fs->saver)
		workers_free(g_steal_pointer(&fs->saver), FALSE);
	save_dirty_listings(fs);
}

/* -- sessions and interrupts ------------------------------------------------ */

static void on_interrupt(fuse_req_t req, void *data)
{
	struct req_ctx *ctx = data;

	(void)req;
	mfs_mutex_lock(&ctx->lock);
	ctx->interrupted = TRUE;
	if (ctx->session)
		pool_abort_session(ctx->fs->pool, ctx->session);
	mfs_mutex_unlock(&ctx->lock);
}

static void req_ctx_init(struct req_ctx *ctx, struct mfs_imap_fs *fs, fuse_req_t req)
{
	memset(ctx, 0, sizeof(*ctx));
	mfs_mutex_init(&ctx->lock);
	ctx->fs = fs;
	if (req)
		fuse_req_interrupt_func(req, on_interrupt, ctx);
}

static void req_ctx_clear(struct req_ctx *ctx, fuse_req_t req)
{
	if (req)
		fuse_req_interrupt_func(req, NULL, NULL);
	mfs_mutex_clear(&ctx->lock);
}

/* Borrow a session for ctx; -errno on failure (logged). */
static int borrow(struct req_ctx *ctx, const char *mailbox, struct imap_session **out)
{
	GError *err = NULL;
	struct imap_session *s;

	if (ctx->interrupted)
		return -EINTR;
	s = pool_get(ctx->fs->pool, mailbox, &err);
	if (!s) {
		int rc = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED) ? -EINTR : -EIO;

		if (rc == -EIO)
			mfs_log_warn("%s", err->message);
		g_error_free(err);
		return rc;
	}
	mfs_mutex_lock(&ctx->lock);
	ctx->session = s;
	if (ctx->interrupted)
		pool_abort_session(ctx->fs->pool, s);
	mfs_mutex_unlock(&ctx->lock);
	*out = s;
	return 0;
}

static void give_back(struct req_ctx *ctx)
{
	mfs_mutex_lock(&ctx->lock);
	if (ctx->session)
		pool_put(ctx->fs->pool, ctx->session);
	ctx->session = NULL;
	mfs_mutex_unlock(&ctx->lock);
}

/* An IMAP failure as an errno for the kernel, with one log line when the link failed. */
static int imap_errno(struct req_ctx *ctx, int rc, GError *err, const char *what)
{
	/* `what` may be a mailbox name: the server's bytes, escaped for the log. */
	g_autofree char *esc = mfs_log_escape(what, strlen(what), 200);

	if (ctx->interrupted)
		rc = -EINTR;
	else if (rc == -EIO && err)
		mfs_log_warn("%s: %s", esc, err->message);
	else if (err)
		mfs_log_debug(MFS_LOG_IMAP, "%s: %s", esc, err->message);
	if (err)
		g_error_free(err);
	return rc;
}

/* -- attributes ------------------------------------------------------------- */

static void fill_attr(const struct mfs_imap_fs *fs, const struct tree_entry *e, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	if (e->kind == TREE_FOLDER) {
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = 2;
		st->st_size = 4096;
		st->st_blocks = 8;
	} else {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = (off_t)e->size;
		st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
		st->st_mtime = e->mtime;
		st->st_ctime = e->mtime;
		st->st_atime = e->mtime;
	}
	st->st_blksize = 4096;
}

static void queue_removed(struct mfs_imap_fs *fs, GArray *removed)
{
	for (guint i = 0; i < removed->len; i++) {
		const struct tree_removed *r = &g_array_index(removed, struct tree_removed, i);

		notify_entry_gone(fs->notify, r->parent, r->ino, r->name);
		mfs_mutex_lock(&fs->lock);
		g_hash_table_remove(fs->headers, &r->ino);
		mfs_mutex_unlock(&fs->lock);
	}
}

/* -- listings --------------------------------------------------------------- */

/* The delimiter, and which mailbox is the Trash (design §1 `trash`). */
static void learn_namespace(struct mfs_imap_fs *fs, GPtrArray *boxes)
{
	static const char *const names[] = { "Trash", "Deleted Items", "Deleted Messages",
					     "INBOX.Trash" };
	const char *trash = NULL;
	char delim = 0;

	for (guint i = 0; i < boxes->len; i++) {
		const struct imap_mailbox_info *m = boxes->pdata[i];

		if (!delim && m->delimiter)
			delim = m->delimiter;
		if (fs->opts->trash) {
			g_autofree char *dec = mutf7_decode(m->name, NULL);

			if (strcmp(m->name, fs->opts->trash) == 0 ||
			    g_strcmp0(dec, fs->opts->trash) == 0)
				trash = m->name;
		} else if ((m->attrs & IMAP_MBOX_TRASH) && !(m->attrs & IMAP_MBOX_NOSELECT)) {
			trash = m->name;
		}
	}
	for (size_t n = 0; !trash && !fs->opts->trash && n < G_N_ELEMENTS(names); n++)
		for (guint i = 0; !trash && i < boxes->len; i++) {
			const struct imap_mailbox_info *m = boxes->pdata[i];

			if (strcmp(m->name, names[n]) == 0 && !(m->attrs & IMAP_MBOX_NOSELECT))
				trash = m->name;
		}
	mfs_mutex_lock(&fs->lock);
	fs->delim = delim;
	g_free(fs->trash_wire);
	fs->trash_wire = g_strdup(trash);
	mfs_mutex_unlock(&fs->lock);
}

int mfs_imap_fs_refresh_list(struct mfs_imap_fs *fs, gboolean force, GError **err)
{
	struct req_ctx ctx;
	struct imap_session *s;
	GPtrArray *boxes;
	int rc = 0;

	mfs_mutex_lock(&fs->list_lock);
	if (!force && fs->list_fetched_at &&
	    now_us() - fs->list_fetched_at < (gint64)fs->opts->refresh * G_USEC_PER_SEC)
		goto out;
	req_ctx_init(&ctx, fs, NULL);
	rc = borrow(&ctx, NULL, &s);
	if (rc == 0) {
		GError *e = NULL;

		boxes = imap_list_mailboxes(s, &e);
		give_back(&ctx);
		if (!boxes) {
			if (err)
				g_propagate_error(err, e);
			else
				rc = imap_errno(&ctx, -EIO, e, "LIST");
			rc = -EIO;
		} else {
			g_autoptr(GArray) removed = tree_removed_new();

			learn_namespace(fs, boxes);
			tree_apply_list(fs->tree, boxes, removed);
			queue_removed(fs, removed);
			g_ptr_array_unref(boxes);
			fs->list_fetched_at = now_us();
		}
	} else if (err) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "no connection to the server");
	}
	req_ctx_clear(&ctx, NULL);
out:
	mfs_mutex_unlock(&fs->list_lock);
	return rc;
}


/* Counts and highest UID of a folder's listing, for a resync. */
static void count_msg(void *ud, const struct tree_msg_info *m)
{
	struct resync_known *k = ud;

	k->count++;
	k->max_uid = MAX(k->max_uid, m->uid);
}

static guint32 listing_count(struct mfs_imap_fs *fs, guint64 ino)
{
	struct resync_known k = { 0 };
	guint32 uv;

	tree_folder_foreach_message(fs->tree, ino, &uv, count_msg, &k);
	return k.count;
}

/* Locked (f->lock): what is known of folder ino, from memory or from disk. */
static struct lindex *known_state(struct mfs_imap_fs *fs, struct folder_state *f, guint64 ino,
				  const char *wire, struct resync_known *k)
{
	struct lindex *idx = NULL;
	guint32 uv = 0;

	memset(k, 0, sizeof(*k));
	if (f->uidvalidity && tree_folder_foreach_message(fs->tree, ino, &uv, count_msg, k) == 0 &&
	    uv == f->uidvalidity) {
		k->uidvalidity = f->uidvalidity;
		k->uidnext = f->uidnext;
		k->highestmodseq = f->highestmodseq;
		return NULL;
	}
	memset(k, 0, sizeof(*k));
	if (!f->index_tried) {
		g_autoptr(GError) err = NULL;
		g_autofree char *dir = g_build_filename(fs->opts->cache_dir, "listings", NULL);

		f->index_tried = TRUE;
		idx = lindex_load(dir, wire, fs->opts->names, &err);
		if (!idx && !g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			mfs_log_warn("saved listing not used: %s", err->message);
	}
	if (idx) {
		const struct lindex_head *h = lindex_head(idx);
		gsize n;
		const struct tree_msg_info *m = lindex_messages(idx, &n);

		k->uidvalidity = h->uidvalidity;
		k->uidnext = h->uidnext;
		k->highestmodseq = h->highestmodseq;
		k->count = (guint32)n;
		k->max_uid = n ? m[n - 1].uid : 0;
	}
	return idx;
}

/* A folder's listing for the next mount: taken under the folder's lock,
   written to disk without it (a 10,000-message listing takes ~15 ms). */
struct listing_snapshot {
	struct lindex_writer *w;
	struct lindex_head head;
	char *wire;
};

/* Locked (f->lock). FALSE: the tree holds no listing of this generation. */
static gboolean snapshot_listing(struct mfs_imap_fs *fs, struct folder_state *f, guint64 ino,
				 const char *wire, struct listing_snapshot *out)
{
	out->w = lindex_writer_new();
	out->head = (struct lindex_head){ .uidnext = f->uidnext,
					  .highestmodseq = f->highestmodseq,
					  .names_mode = fs->opts->names };
	if (tree_folder_foreach_message(fs->tree, ino, &out->head.uidvalidity, lindex_writer_add,
					out->w) < 0 ||
	    out->head.uidvalidity != f->uidvalidity) {
		lindex_writer_free(out->w);
		return FALSE;
	}
	out->wire = g_strdup(wire);
	f->index_dirty = FALSE;
	f->index_saved_at = now_us();
	return TRUE;
}

static void write_listing(struct mfs_imap_fs *fs, struct listing_snapshot *c)
{
	g_autofree char *dir = g_build_filename(fs->opts->cache_dir, "listings", NULL);
	g_autoptr(GError) err = NULL;

	if (!lindex_writer_save(c->w, dir, c->wire, &c->head, &err))
		mfs_log_warn("cannot save the listing of %s: %s", c->wire, err->message);
	g_free(c->wire);
}

/* Write folder ino's listing if it changed since it was last written. */
static void save_if_dirty(struct mfs_imap_fs *fs, guint64 ino)
{
	struct folder_state *f = folder_state(fs, ino);
	struct tree_entry e = { 0 };
	struct listing_snapshot c;
	gboolean copied;

	mfs_mutex_lock(&f->lock);
	f->save_queued = FALSE;
	copied = f->index_dirty && tree_get(fs->tree, ino, TREE_WANT_WIRE, &e) == 0 && e.wire &&
		 !e.gone && snapshot_listing(fs, f, ino, e.wire, &c);
	mfs_mutex_unlock(&f->lock);
	tree_entry_clear(&e);
	if (copied)
		write_listing(fs, &c);
}

static void save_job(void *data, void *user_data)
{
	save_if_dirty(user_data, *(guint64 *)data);
	g_free(data);
}

/* Listings changed since they were last written go to disk for the next mount. */
static void save_dirty_listings(struct mfs_imap_fs *fs)
{
	g_autoptr(GArray) dirty = g_array_new(FALSE, FALSE, sizeof(guint64));
	GHashTableIter it;
	gpointer key, value;

	mfs_mutex_lock(&fs->lock);
	g_hash_table_iter_init(&it, fs->folders);
	while (g_hash_table_iter_next(&it, &key, &value))
		g_array_append_val(dirty, *(guint64 *)key);
	mfs_mutex_unlock(&fs->lock);
	for (guint i = 0; i < dirty->len; i++)
		save_if_dirty(fs, g_array_index(dirty, guint64, i));
}

/* Locked (f->lock): apply a resync's result to the tree and the disk. */
static int apply_resync(struct mfs_imap_fs *fs, struct folder_state *f, guint64 ino,
			const char *wire, struct lindex *idx, const struct resync_known *k,
			const struct resync_result *res)
{
	g_autoptr(GArray) removed = tree_removed_new();
	int rc = 0;

	if (idx && res->how != RESYNC_FULL) {
		/* The saved listing still holds: it becomes the tree's, then the
		   changes since apply. */
		gsize n;
		const struct tree_msg_info *m = lindex_messages(idx, &n);

		rc = tree_folder_set_messages(fs->tree, ino, res->uidvalidity, m, n, removed);
	}
	/* Bodies of another UIDVALIDITY are other messages now. */
	if (k->uidvalidity && k->uidvalidity != res->uidvalidity)
		mcache_drop_mailbox(fs->cache, wire, res->uidvalidity);
	if (rc == 0)
		rc = tree_folder_merge(fs->tree, ino, res->uidvalidity, &res->delta, removed);
	queue_removed(fs, removed);
	if (rc < 0)
		return rc;
	if (res->how == RESYNC_FULL)
		__atomic_fetch_add(&fs->listings_full, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&fs->listings_resynced, 1, __ATOMIC_RELAXED);
	f->uidvalidity = res->uidvalidity;
	f->uidnext = res->uidnext;
	f->highestmodseq = res->highestmodseq;
	f->fetched_at = now_us();
	if (res->how != RESYNC_UNCHANGED || !idx)
		f->index_dirty = TRUE;
	/* A folder changing all the time is saved at most every few seconds;
	   what is left is saved at unmount. The writing is the saver thread's:
	   the listing's reader does not wait for the disk. */
	if (f->index_dirty && !f->save_queued && fs->saver &&
	    (!f->index_saved_at || now_us() - f->index_saved_at >= INDEX_SAVE_INTERVAL_US)) {
		f->save_queued = TRUE;
		workers_push(fs->saver, g_memdup2(&ino, sizeof(ino)));
	}
	return 0;
}

static int refresh_folder_once(struct mfs_imap_fs *fs, guint64 ino, gboolean force,
			       fuse_req_t req)
{
	struct folder_state *f = folder_state(fs, ino);
	struct tree_entry e = { 0 };
	struct resync_known known;
	struct resync_result res = { 0 };
	struct lindex *idx;
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	guint32 held;
	int rc;

	mfs_mutex_lock(&f->lock);
	if (!force && f->fetched_at &&
	    now_us() - f->fetched_at < (gint64)fs->opts->refresh * G_USEC_PER_SEC) {
		mfs_mutex_unlock(&f->lock);
		return 0;
	}
	rc = tree_get(fs->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.kind != TREE_FOLDER || !e.selectable || !e.wire || e.gone) {
		tree_entry_clear(&e);
		mfs_mutex_unlock(&f->lock);
		return rc < 0 ? rc : 0;
	}
	idx = known_state(fs, f, ino, e.wire, &known);
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, e.wire, &s);
	if (rc == 0) {
		rc = resync_folder(s, e.wire, !fs->opts->mark_seen, fs->opts->names != MFS_NAMES_UID,
				   &known, &res, &err);
		if (rc == 0)
			rc = apply_resync(fs, f, ino, e.wire, idx, &known, &res);
		held = rc == 0 && res.how != RESYNC_FULL ? listing_count(fs, ino) : res.exists;
		if (held != res.exists) {
			/* A server whose QRESYNC or CONDSTORE answers miss something
			   (some do): the count tells, and a full listing mends it. */
			mfs_log_info("%s: %u messages after a resync, the server has %u; "
				     "listing it in full",
				     e.wire, held, res.exists);
			resync_result_clear(&res);
			memset(&known, 0, sizeof(known));
			rc = resync_folder(s, e.wire, !fs->opts->mark_seen,
					   fs->opts->names != MFS_NAMES_UID, &known, &res, &err);
			if (rc == 0)
				rc = apply_resync(fs, f, ino, e.wire, NULL, &known, &res);
		}
		give_back(&ctx);
		resync_result_clear(&res);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, e.wire);
	}
	if (idx && rc < 0)
		f->index_tried = FALSE; /* offline: the saved listing is for the next try */
	lindex_free(idx);
	req_ctx_clear(&ctx, req);
	tree_entry_clear(&e);
	mfs_mutex_unlock(&f->lock);
	return rc;
}

static int refresh_folder(struct mfs_imap_fs *fs, guint64 ino, gboolean force, fuse_req_t req)
{
	gint64 start = now_us();
	int rc = refresh_folder_once(fs, ino, force, req);

	/* A connection the server dropped while it sat idle fails its first
	   command at once: once more, on a new one. A failure that took half
	   the timeout is a server not answering: no second wait. */
	if (rc == -EIO && now_us() - start < (gint64)fs->opts->timeout * G_USEC_PER_SEC / 2)
		rc = refresh_folder_once(fs, ino, force, req);
	return rc;
}

/* Bring what a directory shows up to date: the folder list, then its messages. */
static int refresh_dir(struct mfs_imap_fs *fs, guint64 ino, fuse_req_t req)
{
	int rc = mfs_imap_fs_refresh_list(fs, FALSE, NULL);

	if (rc < 0 && rc != -EIO)
		return rc;
	/* Offline: a folder listed before still answers from what is known. */
	return refresh_folder(fs, ino, FALSE, req);
}

static void list_job(void *data, void *user_data)
{
	struct mfs_imap_fs *fs = user_data;
	guint64 ino = *(guint64 *)data;
	struct folder_state *f = folder_state(fs, ino);

	g_free(data);
	mfs_mutex_lock(&fs->lock);
	f->ahead_queued = FALSE;
	mfs_mutex_unlock(&fs->lock);
	/* Not forced: a folder listed meanwhile (by the walk itself) is fresh. */
	(void)refresh_folder(fs, ino, FALSE, NULL);
}

/* A readdir of ino from its start: when it follows another folder's within
   WALK_WINDOW_US, the folders the walk comes to next are listed ahead. */
static void list_ahead(struct mfs_imap_fs *fs, guint64 ino)
{
	g_autoptr(GArray) next = NULL;
	gint64 now = now_us();
	gboolean walking;

	mfs_mutex_lock(&fs->lock);
	walking = fs->dir_read_at && fs->dir_read_ino != ino &&
		  now - fs->dir_read_at < WALK_WINDOW_US;
	if (walking)
		fs->tree_walk_at = now;
	fs->dir_read_at = now;
	fs->dir_read_ino = ino;
	mfs_mutex_unlock(&fs->lock);
	if (!walking || !fs->lister)
		return;
	next = g_array_new(FALSE, FALSE, sizeof(guint64));
	tree_folders_after(fs->tree, ino, LIST_AHEAD, next);
	for (guint i = 0; i < next->len; i++) {
		guint64 n = g_array_index(next, guint64, i);
		struct folder_state *f = folder_state(fs, n);
		gboolean queue;

		mfs_mutex_lock(&fs->lock);
		queue = !f->ahead_queued;
		f->ahead_queued = TRUE;
		mfs_mutex_unlock(&fs->lock);
		if (queue)
			workers_push(fs->lister, g_memdup2(&n, sizeof(n)));
	}
}

/* -- lookup, getattr, readdir ----------------------------------------------- */

/* Answer a lookup (or mkdir) with a node the tree counted one reference for;
   if the kernel does not take the answer, the reference is given back. */
static void reply_entry(struct mfs_imap_fs *fs, fuse_req_t req, const struct tree_entry *e)
{
	struct fuse_entry_param ep = { 0 };

	ep.ino = e->ino;
	ep.generation = 1;
	fill_attr(fs, e, &ep.attr);
	ep.attr_timeout = cache_timeout(fs);
	ep.entry_timeout = cache_timeout(fs);
	if (fuse_reply_entry(req, &ep) != 0)
		tree_forget(fs->tree, e->ino, 1);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	struct tree_entry e = { 0 };
	int rc;

	rc = refresh_dir(fs, parent, req);
	if (rc == -EINTR) {
		fuse_reply_err(req, EINTR);
		return;
	}
	rc = tree_lookup(fs->tree, parent, name, TRUE, 0, &e);
	if (rc == -ENOENT) {
		struct staged *st;

		mfs_mutex_lock(&fs->lock);
		st = staged_by_name(fs, parent, name);
		if (st) {
			st->nlookup++;
			ep.ino = st->ino;
			ep.generation = 1;
			staged_attr(fs, st, &ep.attr);
		}
		mfs_mutex_unlock(&fs->lock);
		if (st) {
			fuse_reply_entry(req, &ep);
			return;
		}
		/* A negative entry, cached like the listing it comes from. */
		ep.ino = 0;
		ep.entry_timeout = cache_timeout(fs);
		fuse_reply_entry(req, &ep);
		return;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(fs, req, &e);
}

static void forget_one(struct mfs_imap_fs *fs, guint64 ino, guint64 n)
{
	if (is_staged(ino)) {
		struct staged *st;

		mfs_mutex_lock(&fs->lock);
		st = g_hash_table_lookup(fs->staged, &ino);
		if (st) {
			st->nlookup -= MIN(n, st->nlookup);
			if (st->nlookup == 0 && st->opens == 0)
				st->done = TRUE;
			staged_maybe_free(fs, st);
		}
		mfs_mutex_unlock(&fs->lock);
		return;
	}
	tree_forget(fs->tree, ino, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct stat st;
	int rc;

	(void)fi;
	if (is_staged(ino)) {
		struct staged *sg = staged_get(fs, ino);

		if (!sg) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		staged_attr(fs, sg, &st);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	rc = tree_get(fs->tree, ino, 0, &e);
	if (rc < 0 || e.gone) {
		fuse_reply_err(req, rc < 0 ? -rc : ENOENT);
		return;
	}
	fill_attr(fs, &e, &st);
	fuse_reply_attr(req, &st, cache_timeout(fs));
}

struct dirbuf {
	struct mfs_imap_fs *fs;
	fuse_req_t req;
	char *buf;
	size_t size;
	size_t used;
	gboolean plus;
};

static gboolean add_dirent(void *ud, const char *name, const struct tree_entry *e,
			   guint64 next_off)
{
	struct dirbuf *d = ud;
	size_t room = d->size - d->used;
	size_t need;

	if (d->plus) {
		struct fuse_entry_param ep = { 0 };
		gboolean dot = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;

		fill_attr(d->fs, e, &ep.attr);
		/* "." and ".." carry no lookup reference: inode 0 tells the kernel. */
		ep.ino = dot ? 0 : e->ino;
		ep.generation = 1;
		ep.attr_timeout = cache_timeout(d->fs);
		ep.entry_timeout = cache_timeout(d->fs);
		need = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &ep,
					      (off_t)next_off);
	} else {
		struct stat st = { 0 };

		st.st_ino = e->ino;
		st.st_mode = e->kind == TREE_FOLDER ? S_IFDIR : S_IFREG;
		need = fuse_add_direntry(d->req, d->buf + d->used, room, name, &st,
					 (off_t)next_off);
	}
	if (need > room)
		return FALSE;
	d->used += need;
	return TRUE;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct dirbuf d = { .fs = fs, .req = req, .size = size, .plus = plus };
	int rc;

	if (off == 0) {
		struct folder_state *fst = folder_state(fs, ino);

		mfs_mutex_lock(&fs->lock);
		fst->readdir_at = now_us();
		mfs_mutex_unlock(&fs->lock);
		list_ahead(fs, ino);
		rc = refresh_dir(fs, ino, req);
		if (rc == -EINTR || (rc < 0 && rc != -EIO)) {
			fuse_reply_err(req, -rc);
			return;
		}
		if (rc == -EIO) {
			/* Never listed and the server cannot be reached: say so. */
			struct folder_state *f = folder_state(fs, ino);
			struct tree_entry e = { 0 };

			if (!f->uidvalidity && tree_get(fs->tree, ino, 0, &e) == 0 && e.selectable) {
				fuse_reply_err(req, EIO);
				return;
			}
		}
	}
	d.buf = g_malloc(size);
	rc = tree_readdir(fs->tree, ino, (guint64)off, plus, add_dirent, &d);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	g_free(d.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, FALSE);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, TRUE);
}

/* -- message contents ------------------------------------------------------- */

static void open_msg_free(struct open_msg *m)
{
	if (!m)
		return;
	if (m->entry)
		mcache_entry_unref(m->entry);
	if (m->mem)
		g_byte_array_unref(m->mem);
	g_free(m->wire);
	mfs_mutex_clear(&m->lock);
	g_free(m);
}

/* -- reading ahead (design §5) ------------------------------------------------ */

/* Opens further apart than this do not make a sequential reader. */
#define SEQUENTIAL_GAP_US (10 * G_USEC_PER_SEC)
/* Messages asked for ahead at most per open. */
#define AHEAD_MAX 256
/* Opens whose next this many messages (and the farthest asked for) are
   cached ask for nothing. */
#define NEXT_CACHED_ENOUGH 8
/* In a tree walk (list_ahead saw one within TREE_WALK_RECENT_US), entering a
   folder has the first messages of the next NEXT_FOLDERS folders fetched,
   at most 1/NEXT_FOLDERS_SHARE of `prefetch` bytes. */
#define TREE_WALK_RECENT_US (30 * G_USEC_PER_SEC)
#define NEXT_FOLDERS 4
#define NEXT_FOLDERS_SHARE 4

/* A folder's messages as tree_readdir gives them, for the reading orders. */
struct listed_set {
	GArray *listed; /* struct listed */
	guint32 uidvalidity;
};

static gboolean collect_listed(void *ud, const char *name, const struct tree_entry *e,
			       guint64 next_off)
{
	struct listed_set *c = ud;
	struct listed l;

	(void)next_off;
	if (e->kind != TREE_MESSAGE)
		return TRUE;
	l.uid = e->uid;
	l.size = e->size;
	l.name = g_strdup(name);
	g_array_append_val(c->listed, l);
	c->uidvalidity = e->uidvalidity;
	return TRUE;
}

/* Folder ino's messages, copied outside fs->lock (the tree has its own). */
static void listed_set_of(struct mfs_imap_fs *fs, guint64 ino, struct listed_set *c)
{
	c->listed = g_array_new(FALSE, FALSE, sizeof(struct listed));
	g_array_set_clear_func(c->listed, listed_clear);
	c->uidvalidity = 0;
	tree_readdir(fs->tree, ino, 0, FALSE, collect_listed, c);
}

static gint cmp_listed_name(gconstpointer a, gconstpointer b)
{
	return strcmp((*(struct listed *const *)a)->name, (*(struct listed *const *)b)->name);
}

/* Locked (fs->lock): the two orders of folder f's listing, from c. */
static void build_orders(struct folder_state *f, struct listed_set *c)
{
	GArray *fresh = c->listed;

	if (f->by_name)
		g_ptr_array_unref(f->by_name);
	if (f->by_uid)
		g_array_unref(f->by_uid);
	f->by_uid = fresh;
	f->by_name = g_ptr_array_sized_new(fresh->len);
	for (guint i = 0; i < fresh->len; i++)
		g_ptr_array_add(f->by_name, &g_array_index(fresh, struct listed, i));
	g_ptr_array_sort(f->by_name, cmp_listed_name);
	f->order_at = f->fetched_at;
	f->order_uidvalidity = c->uidvalidity;
}

/* Locked (fs->lock): whether f's reading orders are older than its listing. */
static gboolean orders_stale(const struct folder_state *f)
{
	return !f->by_uid || f->order_at != f->fetched_at;
}

/* Take fs->lock with folder f's reading orders (folder ino) up to date: when
   older than its listing, copied from the tree outside the lock first. */
static void lock_orders(struct mfs_imap_fs *fs, struct folder_state *f, guint64 ino)
{
	struct listed_set c = { 0 };
	gboolean stale;

	mfs_mutex_lock(&fs->lock);
	stale = orders_stale(f);
	mfs_mutex_unlock(&fs->lock);
	if (stale)
		listed_set_of(fs, ino, &c);
	mfs_mutex_lock(&fs->lock);
	if (c.listed)
		build_orders(f, &c);
}

/*
 * The next few messages the reader will open and the farthest one asked
 * for are cached already (a warm walk): no request. A cold walk always
 * asks: each request keeps the prefetcher's running pipeline fed, and
 * letting it drain costs a round trip to start again.
 */
static gboolean next_ones_cached(struct mfs_imap_fs *fs, const char *wire, guint32 uidvalidity,
				 const GArray *items)
{
	g_autofree char *key = NULL;

	if (items->len < NEXT_CACHED_ENOUGH)
		return FALSE;
	key = mcache_folder_key(wire, uidvalidity);
	if (!mcache_peek_complete(fs->cache, key,
				  g_array_index(items, struct prefetch_item, items->len - 1).uid))
		return FALSE;
	for (guint i = 0; i < NEXT_CACHED_ENOUGH; i++) {
		if (!mcache_peek_complete(fs->cache, key,
					  g_array_index(items, struct prefetch_item, i).uid))
			return FALSE;
	}
	return TRUE;
}

/* Locked (fs->lock): from position pu of f's UID order and pn of its name
   order, the messages to fetch ahead, the two orders alternating (the reader
   may be rsync or grep), each once, within *budget (what they take is taken
   off it). */
static void pick_ahead(const struct folder_state *f, guint pu, guint pn, guint64 *budget,
		       GArray *items)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
	guint n = f->by_uid->len;

	while (items->len < AHEAD_MAX && *budget > 0 && (pu < n || pn < f->by_name->len)) {
		for (int order = 0; order < 2; order++) {
			const struct listed *l = NULL;

			if (order == 0 && pn < f->by_name->len)
				l = f->by_name->pdata[pn++];
			else if (order == 1 && pu < n)
				l = &g_array_index(f->by_uid, struct listed, pu++);
			if (!l || g_hash_table_contains(seen, GUINT_TO_POINTER(l->uid)))
				continue;
			g_hash_table_add(seen, GUINT_TO_POINTER(l->uid));
			if (l->size > PREFETCH_MAX_BODY)
				continue;
			struct prefetch_item it = { l->uid, l->size };

			g_array_append_val(items, it);
			*budget = *budget > l->size ? *budget - l->size : 0;
		}
	}
}

/* One segment of a prefetch request, owned. */
struct ahead {
	char *wire;
	guint32 uidvalidity;
	GArray *items; /* struct prefetch_item */
};

static void ahead_free(gpointer p)
{
	struct ahead *a = p;

	g_free(a->wire);
	g_array_unref(a->items);
	g_free(a);
}

/*
 * A tree walk entered folder `folder`: the first messages of the folders it
 * comes to next (listed already: list_ahead saw to it) are fetched
 * meanwhile by a prefetcher of their own, within a quarter of `prefetch`, so
 * the walk finds them cached instead of starting each folder with round
 * trips; in parallel with the folder being read, which may be a long one.
 */
static void prefetch_next_folders(struct mfs_imap_fs *fs, guint64 folder)
{
	g_autoptr(GArray) after = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GPtrArray) ahead = g_ptr_array_new_with_free_func(ahead_free);
	g_autofree struct prefetch_segment *segs = NULL;
	guint64 budget = fs->opts->prefetch / NEXT_FOLDERS_SHARE;

	if (!fs->prefetch_next)
		return;
	tree_folders_after(fs->tree, folder, NEXT_FOLDERS, after);
	for (guint i = 0; i < after->len && budget > 0; i++) {
		guint64 ino = g_array_index(after, guint64, i);
		struct folder_state *g = folder_state(fs, ino);
		struct tree_entry e = { 0 };
		struct ahead *a;

		if (tree_get(fs->tree, ino, TREE_WANT_WIRE, &e) < 0 || !e.wire) {
			tree_entry_clear(&e);
			continue;
		}
		a = g_new0(struct ahead, 1);
		a->wire = g_steal_pointer(&e.wire);
		a->items = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
		lock_orders(fs, g, ino);
		/* Not listed yet (fetched_at 0): nothing to go on. */
		if (g->fetched_at && g->by_uid->len) {
			a->uidvalidity = g->order_uidvalidity;
			pick_ahead(g, 0, 0, &budget, a->items);
		}
		mfs_mutex_unlock(&fs->lock);
		tree_entry_clear(&e);
		if (a->items->len)
			g_ptr_array_add(ahead, a);
		else
			ahead_free(a);
	}
	segs = g_new0(struct prefetch_segment, ahead->len + 1);
	for (guint i = 0; i < ahead->len; i++) {
		const struct ahead *a = ahead->pdata[i];

		segs[i] = (struct prefetch_segment){ a->wire, a->uidvalidity,
						     (const struct prefetch_item *)a->items->data,
						     a->items->len };
	}
	prefetch_request(fs->prefetch_next, segs, ahead->len);
}

/* A file of folder was opened: if files are being read one after another,
   ask for the next ones (in name order and in UID order) ahead, and in a
   tree walk for the first ones of the folders after it. */
static void maybe_prefetch(struct mfs_imap_fs *fs, guint64 folder, guint32 uid, const char *name,
			   const char *wire, guint32 uidvalidity)
{
	struct folder_state *f = folder_state(fs, folder);
	g_autoptr(GArray) items = NULL;
	struct prefetch_segment seg;
	gint64 now = now_us();
	guint64 budget = fs->opts->prefetch;
	gboolean walk, tree_walk;
	guint streak;

	if (!fs->prefetch)
		return;
	mfs_mutex_lock(&fs->lock);
	if (f->last_open && now - f->last_open < SEQUENTIAL_GAP_US && uid != f->last_uid)
		f->streak++;
	else if (uid != f->last_uid)
		f->streak = 1;
	f->last_open = now;
	f->last_uid = uid;
	streak = f->streak;
	/* rsync, grep -r and tar list a folder and open its first file right
	   away: that walk is prefetched from its first open, not its second. */
	walk = streak == 1 && f->readdir_at && now - f->readdir_at < SEQUENTIAL_GAP_US;
	f->readdir_at = 0;
	tree_walk = fs->tree_walk_at && now - fs->tree_walk_at < TREE_WALK_RECENT_US;
	mfs_mutex_unlock(&fs->lock);
	if (streak < 2 && !walk)
		return;
	items = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	lock_orders(fs, f, folder);
	if (walk && f->by_uid->len &&
	    g_array_index(f->by_uid, struct listed, 0).uid != uid &&
	    ((struct listed *)f->by_name->pdata[0])->uid != uid) {
		/* Not the first file in either order: someone picked one file. */
		mfs_mutex_unlock(&fs->lock);
		return;
	}
	if (f->by_uid->len) {
		struct listed key = { .uid = uid, .name = (char *)(uintptr_t)name };
		struct listed *kp = &key;
		guint pu = 0, pn = 0, n = f->by_uid->len;

		/* Past the opened file in each order. */
		while (pu < n && g_array_index(f->by_uid, struct listed, pu).uid <= uid)
			pu++;
		{
			guint lo = 0, hi = f->by_name->len;

			while (lo < hi) {
				guint mid = (lo + hi) / 2;

				if (cmp_listed_name(&f->by_name->pdata[mid], &kp) <= 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			pn = lo;
		}
		pick_ahead(f, pu, pn, &budget, items);
	}
	mfs_mutex_unlock(&fs->lock);
	if (walk && tree_walk)
		prefetch_next_folders(fs, folder);
	if (next_ones_cached(fs, wire, uidvalidity, items))
		return;
	seg = (struct prefetch_segment){ wire, uidvalidity,
					 (const struct prefetch_item *)items->data, items->len };
	prefetch_request(fs->prefetch, &seg, 1);
}

static int fetch_range(struct mfs_imap_fs *fs, struct open_msg *m, guint64 off, guint64 len,
		       fuse_req_t req, guint64 *progress);

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct open_msg *m;
	int rc;

	if (is_staged(ino)) {
		struct staged *st;

		mfs_mutex_lock(&fs->lock);
		st = g_hash_table_lookup(fs->staged, &ino);
		if (st && !st->done)
			st->opens++;
		mfs_mutex_unlock(&fs->lock);
		if (!st || st->done) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		if ((fi->flags & O_TRUNC) && ftruncate(st->fd, 0) == 0)
			st->dirty = TRUE;
		fi->fh = 0;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		/* Messages are immutable (design §2): writing into one is EPERM. */
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = tree_get(fs->tree, ino, TREE_WANT_WIRE | TREE_WANT_NAME, &e);
	if (rc < 0 || e.gone || e.kind != TREE_MESSAGE || !e.wire) {
		tree_entry_clear(&e);
		fuse_reply_err(req, rc < 0 ? -rc : e.kind == TREE_FOLDER ? EISDIR : ENOENT);
		return;
	}
	maybe_prefetch(fs, e.parent, e.uid, e.name, e.wire, e.uidvalidity);
	m = g_new0(struct open_msg, 1);
	mfs_mutex_init(&m->lock);
	m->ino = ino;
	m->uid = e.uid;
	m->uidvalidity = e.uidvalidity;
	m->wire = g_steal_pointer(&e.wire);
	m->expected = e.size;
	m->chunk = CHUNK_MIN;
	m->entry = mcache_get(fs->cache, m->wire, m->uidvalidity, m->uid);
	if (mcache_entry_complete(m->entry, &m->total)) {
		m->total_known = TRUE;
		__atomic_fetch_add(&fs->bodies_from_cache, 1, __ATOMIC_RELAXED);
	}
	if (!m->total_known) {
		/*
		 * RFC822.SIZE is a hint some servers get wrong, and the kernel never
		 * reads past the size it was told: learn the true end now, with the
		 * first range (which the first read needs anyway) and, for a longer
		 * message, one byte past the end it claims.
		 */
		guint64 progress = 0;
		guint64 first = MIN(CHUNK_MIN, m->expected + 1);

		if (fetch_range(fs, m, 0, first, req, &progress) == 0 && !m->total_known &&
		    !m->size_wrong && m->expected > 0)
			fetch_range(fs, m, m->expected - 1, 2, req, &progress);
		if (!m->total_known && !m->size_wrong &&
		    mcache_entry_has(m->entry, m->expected, 1))
			m->size_wrong = TRUE; /* longer than claimed */
		m->seq_end = first;
	}
	if ((m->total_known && m->total != e.size) || m->size_wrong) {
		/* Serve it without the kernel's size limit and page cache: the
		   reader gets every byte the server has, no padding, no cut. */
		fi->direct_io = 1;
		if (m->total_known) {
			tree_message_set_size(fs->tree, ino, m->total);
			notify_inode_changed(fs->notify, ino);
		}
	}
	tree_entry_clear(&e);
	fi->fh = (uint64_t)(uintptr_t)m;
	fi->keep_cache = fi->direct_io ? 0 : 1;
	/* A message is read-only: its close has nothing to flush, so the
	   kernel need not ask (one request fewer per file for grep -r). */
	fi->noflush = 1;
	mfs_mutex_lock(&fs->lock);
	g_hash_table_add(fs->opens, m);
	mfs_mutex_unlock(&fs->lock);
	if (fuse_reply_open(req, fi) != 0) {
		mfs_mutex_lock(&fs->lock);
		g_hash_table_remove(fs->opens, m);
		mfs_mutex_unlock(&fs->lock);
		open_msg_free(m);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);

	if (is_staged(ino)) {
		struct staged *st;

		mfs_mutex_lock(&fs->lock);
		st = g_hash_table_lookup(fs->staged, &ino);
		if (st) {
			if (st->opens > 0)
				st->opens--;
			staged_maybe_free(fs, st);
		}
		mfs_mutex_unlock(&fs->lock);
		fuse_reply_err(req, 0);
		return;
	}
	struct open_msg *m = (struct open_msg *)(uintptr_t)fi->fh;

	mfs_mutex_lock(&fs->lock);
	g_hash_table_remove(fs->opens, m);
	mfs_mutex_unlock(&fs->lock);
	open_msg_free(m);
	fuse_reply_err(req, 0);
}

/*
 * The answer to UID FETCH uid (BODY.PEEK[]<off.limit>). A body literal is
 * received into `cur` and accepted only when its response names the UID
 * asked for and the origin asked for: a server may send FETCH data for
 * other messages at any time (RFC 3501 §7), which must never land in this
 * message's bytes.
 */
struct range_sink {
	guint32 uid;
	guint64 off;
	guint64 limit;	  /* bytes asked for; a server sending more is broken */
	GByteArray *cur;  /* the body literal being received */
	gboolean cur_open;
	guint64 cur_origin;
	gboolean cur_too_big;
	GByteArray *buf;  /* the accepted bytes */
	gboolean matched; /* the answer for uid at off arrived */
	gboolean too_big;
	gboolean discard; /* the mailbox turned out another generation: keep nothing */
};

static gboolean range_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct range_sink *r = ud;
	const char *lt = strchr(section, '<');
	guint64 origin = 0;

	(void)seq;
	if (strncmp(section, "BODY[]", 6) != 0)
		return FALSE;
	if (lt) {
		char *end;

		origin = g_ascii_strtoull(lt + 1, &end, 10);
		if (end == lt + 1 || *end != '>')
			origin = G_MAXUINT64;
	}
	g_byte_array_set_size(r->cur, 0);
	r->cur_open = TRUE;
	r->cur_origin = origin;
	r->cur_too_big = size > r->limit;
	return TRUE; /* streamed: kept below, or dropped */
}

static void range_chunk(void *ud, const void *data, size_t len)
{
	struct range_sink *r = ud;

	if (r->cur_open && !r->cur_too_big && r->cur->len + len <= r->limit)
		g_byte_array_append(r->cur, data, (guint)len);
}

static void range_response(void *ud, const struct imap_response *resp)
{
	struct range_sink *r = ud;
	guint32 uid;

	if (!r->cur_open || !resp->keyword || strcmp(resp->keyword, "FETCH") != 0)
		return;
	r->cur_open = FALSE;
	if (r->discard || !imap_value_u32(imap_fetch_item(resp, "UID"), &uid) || uid != r->uid ||
	    r->cur_origin != r->off)
		return; /* someone else's bytes */
	if (r->cur_too_big) {
		r->too_big = TRUE;
		return;
	}
	/* Said twice (an unsolicited FETCH before the answer): the last one,
	   nearest the command's completion, wins. */
	g_byte_array_set_size(r->buf, 0);
	g_byte_array_append(r->buf, r->cur->data, r->cur->len);
	r->matched = TRUE;
}

/* s must select wire first: it is elsewhere, in the other mode, or on
   another UIDVALIDITY than the one the message was listed under. */
static gboolean needs_select(struct imap_session *s, const char *wire, gboolean readonly,
			     guint32 uidvalidity)
{
	const struct imap_select_info *si = imap_session_select_info(s);

	return g_strcmp0(imap_session_selected(s), wire) != 0 || si->readonly != readonly ||
	       si->uidvalidity != uidvalidity;
}

/*
 * Have wire selected on s (read-only or read-write as asked) under the
 * UIDVALIDITY a message was listed with. A session that selected the
 * mailbox earlier may know an older generation: select it again before
 * deciding. 0, -ESTALE (the mailbox was recreated: other messages now), or
 * the SELECT's error.
 */
static int ensure_selected(struct imap_session *s, const char *wire, gboolean readonly,
			   guint32 uidvalidity, GError **err)
{
	int rc = 0;

	if (needs_select(s, wire, readonly, uidvalidity))
		rc = imap_select(s, wire, readonly, NULL, err);
	if (rc == 0 && imap_session_select_info(s)->uidvalidity != uidvalidity)
		rc = -ESTALE;
	return rc;
}

/*
 * Run a UID FETCH of a message of wire (listed under uidvalidity) on s,
 * selecting wire first when s is elsewhere: the SELECT and the FETCH go out
 * together (one round trip on a reader's entry into a folder). The SELECT's
 * answer comes before the FETCH's, so another UIDVALIDITY is known before
 * any byte is taken: r->discard, and -ESTALE once the FETCH is drained.
 */
static int select_and_fetch(struct imap_session *s, const char *wire, gboolean readonly,
			    guint32 uidvalidity, const char *fetch, const struct imap_handler *h,
			    struct range_sink *r, GError **err)
{
	guint sel, id;
	int rc;

	if (!needs_select(s, wire, readonly, uidvalidity))
		return imap_run(s, h, NULL, err, "%s", fetch);
	sel = imap_select_send(s, wire, readonly, NULL, err);
	id = sel ? imap_send(s, "%s", fetch) : 0;
	rc = imap_select_finish(s, sel, wire, readonly, h, NULL, err);
	if (rc == 0 && imap_session_select_info(s)->uidvalidity != uidvalidity)
		rc = -ESTALE;
	if (rc < 0) {
		/* Whatever the FETCH brings (or its NO, with no mailbox
		   selected) is drained and dropped. */
		r->discard = TRUE;
		if (id && imap_session_alive(s))
			imap_wait(s, id, h, NULL, NULL);
		return rc;
	}
	return id ? imap_wait(s, id, h, NULL, err) : -EIO;
}

/* Keep fetched bytes of m at off: in the cache, or in memory when it is full. */
static void keep_range(struct mfs_imap_fs *fs, struct open_msg *m, guint64 off, GByteArray *buf)
{
	__atomic_fetch_add(&fs->bytes_fetched, buf->len, __ATOMIC_RELAXED);
	if (buf->len && mcache_entry_write(m->entry, off, buf->data, buf->len) < 0) {
		/* A full disk: serve this range from memory, never fail the reader. */
		if (m->mem)
			g_byte_array_unref(m->mem);
		m->mem = g_byte_array_ref(buf);
		m->mem_off = off;
	}
}

/*
 * Fetch [off, off+len) of m into the cache. 0 or -errno; *progress gets the
 * bytes kept, also when the link broke in the middle (the caller resumes
 * from there on a new connection, so a cut link still makes progress).
 */
static int fetch_range(struct mfs_imap_fs *fs, struct open_msg *m, guint64 off, guint64 len,
		       fuse_req_t req, guint64 *progress)
{
	struct req_ctx ctx;
	struct imap_session *s;
	struct range_sink r = { .uid = m->uid, .off = off, .limit = len,
				.cur = g_byte_array_new(), .buf = g_byte_array_new() };
	struct imap_handler h = { .untagged = range_response, .literal_begin = range_begin,
				  .literal_chunk = range_chunk, .ud = &r };
	GError *err = NULL;
	int rc;

	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, m->wire, &s);
	if (rc < 0)
		goto out;
	{
		g_autofree char *fetch = g_strdup_printf(
			"UID FETCH %u (BODY%s[]<%" G_GUINT64_FORMAT ".%" G_GUINT64_FORMAT ">)",
			m->uid, fs->opts->mark_seen ? "" : ".PEEK", off, len);

		rc = select_and_fetch(s, m->wire, !fs->opts->mark_seen, m->uidvalidity, fetch, &h,
				      &r, &err);
	}
	give_back(&ctx);
	if (rc < 0 && r.discard) {
		/* -ESTALE: another generation of the mailbox, other messages. */
		rc = imap_errno(&ctx, rc, err, m->wire);
		goto out;
	}
	if (rc < 0) {
		/* The link broke in the middle of the answer: keep what arrived of
		   the literal at the origin asked for. */
		if (r.cur_open && !r.cur_too_big && r.cur_origin == off && r.cur->len > 0) {
			keep_range(fs, m, off, r.cur);
			*progress = r.cur->len;
		}
		rc = imap_errno(&ctx, rc, err, m->wire);
		goto out;
	}
	if (r.too_big) {
		g_autofree char *esc = mfs_log_escape(m->wire, strlen(m->wire), 200);

		mfs_log_warn("%s: the server sent more of UID %u than asked for; refused", esc,
			     m->uid);
		rc = -EIO;
		goto out;
	}
	if (!r.matched) {
		/* No body at all: the message was expunged meanwhile. */
		rc = -ESTALE;
		goto out;
	}
	if (off == 0)
		__atomic_fetch_add(&fs->messages_fetched, 1, __ATOMIC_RELAXED);
	keep_range(fs, m, off, r.buf);
	*progress = r.buf->len;
	if (r.buf->len == 0 && off > 0 && !mcache_entry_has(m->entry, off - 1, 1)) {
		/* Nothing at off: the message ends before it, where is not known. */
		m->size_wrong = TRUE;
	} else if (r.buf->len < len) {
		/* A short answer marks the end: the bytes win over RFC822.SIZE. */
		m->total = off + r.buf->len;
		m->total_known = TRUE;
		mcache_entry_finish(m->entry, m->total);
		if (m->total != m->expected) {
			tree_message_set_size(fs->tree, m->ino, m->total);
			notify_inode_changed(fs->notify, m->ino);
			m->expected = m->total;
		}
	}
out:
	g_byte_array_unref(r.buf);
	g_byte_array_unref(r.cur);
	req_ctx_clear(&ctx, req);
	return rc;
}

/* Copy what is present at [off, off+size) into buf; bytes copied, or -errno. */
static gssize read_present(struct open_msg *m, char *buf, size_t size, guint64 off)
{
	if (m->mem && off >= m->mem_off && off < m->mem_off + m->mem->len) {
		size_t n = MIN(size, m->mem_off + m->mem->len - off);

		memcpy(buf, m->mem->data + (off - m->mem_off), n);
		return (gssize)n;
	}
	return mcache_entry_read(m->entry, buf, size, off);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		    struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct open_msg *m = (struct open_msg *)(uintptr_t)fi->fh;
	guint64 off = (guint64)offset;
	g_autofree char *buf = NULL;
	size_t got = 0;
	int retries = 0;
	int rc = 0;

	if (is_staged(ino)) {
		struct staged *st = staged_get(fs, ino);
		ssize_t n;

		buf = g_malloc(size);
		n = st ? pread(st->fd, buf, size, offset) : -1;
		if (n < 0)
			fuse_reply_err(req, st ? errno : ENOENT);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		return;
	}
	mfs_mutex_lock(&m->lock);
	buf = g_malloc(size);
	while (got < size) {
		guint64 pos = off + got;
		guint64 end = m->total_known ? m->total : G_MAXUINT64;
		gssize n;

		if (pos >= end)
			break;
		n = read_present(m, buf + got, MIN(size - got, end - pos), pos);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 && n != -ENODATA) {
			rc = (int)n;
			break;
		}
		if (n == 0 && m->total_known)
			break;
		/* Not here yet: fetch a range from pos. A sequential reader gets
		   growing ranges; near the end one byte more than RFC822.SIZE is
		   asked for, so a longer message is noticed. */
		if (pos == m->seq_end && pos != 0)
			m->chunk = MIN(m->chunk * 2, CHUNK_MAX);
		else if (pos != m->seq_end)
			m->chunk = CHUNK_MIN;
		guint64 len = MAX(m->chunk, size - got);
		if (pos + len >= m->expected)
			len = MAX(m->expected + 1 - MIN(pos, m->expected), size - got);
		guint64 progress = 0;

		rc = fetch_range(fs, m, pos, len, req, &progress);
		if (rc == -EIO && (progress > 0 || retries++ == 0)) {
			/* A broken link: go on from what arrived, on a new connection;
			   give up after a failure that brought nothing twice. */
			if (progress > 0)
				retries = 0;
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		m->seq_end = pos + len;
		if (m->total_known && pos >= m->total)
			break;
	}
	mfs_mutex_unlock(&m->lock);
	if (rc < 0 && got == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, got);
}

/* -- extended attributes ---------------------------------------------------- */

static const char *const message_xattrs[] = {
	FLAGS_XATTR, "user.mail.subject", "user.mail.from", "user.mail.to", "user.mail.date",
	"user.mail.message-id",
};

/* "name: N" for one of the counters other threads add to. */
static void append_counter(GString *s, const char *name, guint64 *counter)
{
	g_string_append_printf(s, "%s: %" G_GUINT64_FORMAT "\n", name,
			       __atomic_load_n(counter, __ATOMIC_RELAXED));
}

static char *status_text(struct mfs_imap_fs *fs)
{
	struct pool_stats ps = { 0 };
	struct mcache_stats cs = { 0 };
	GString *s = g_string_new(NULL);

	pool_get_stats(fs->pool, &ps);
	mcache_get_stats(fs->cache, &cs);
	g_string_append_printf(s, "state: %s\n", ps.live > 0 ? "connected" : "disconnected");
	g_string_append_printf(s, "server: %s\n", fs->opts->url);
	g_string_append_printf(s, "connections: %u\n", ps.live);
	g_string_append_printf(s, "connections_busy: %u\n", ps.busy);
	g_string_append_printf(s, "connects: %" G_GUINT64_FORMAT "\n", ps.connects);
	g_string_append_printf(s, "connect_failures: %" G_GUINT64_FORMAT "\n",
			       ps.connect_failures);
	if (ps.last_error)
		g_string_append_printf(s, "last_error: %s\n", ps.last_error);
	g_string_append_printf(s, "commands_sent: %" G_GUINT64_FORMAT "\n", ps.commands);
	append_counter(s, "messages_fetched", &fs->messages_fetched);
	append_counter(s, "bytes_fetched", &fs->bytes_fetched);
	append_counter(s, "bodies_from_cache", &fs->bodies_from_cache);
	append_counter(s, "headers_from_cache", &fs->headers_from_cache);
	append_counter(s, "listings_full", &fs->listings_full);
	append_counter(s, "listings_resynced", &fs->listings_resynced);
	if (fs->prefetch) {
		guint64 pm, pb, nm = 0, nb = 0;

		prefetch_counters(fs->prefetch, &pm, &pb);
		if (fs->prefetch_next)
			prefetch_counters(fs->prefetch_next, &nm, &nb);
		pm += nm;
		pb += nb;
		g_string_append_printf(s, "prefetched_messages: %" G_GUINT64_FORMAT "\n", pm);
		g_string_append_printf(s, "prefetched_bytes: %" G_GUINT64_FORMAT "\n", pb);
	}
	g_string_append_printf(s, "cache_bytes: %" G_GUINT64_FORMAT "\n", cs.bytes);
	g_string_append_printf(s, "cache_max_bytes: %" G_GUINT64_FORMAT "\n", cs.max_bytes);
	g_string_append_printf(s, "cache_files: %" G_GUINT64_FORMAT "\n", cs.files);
	g_string_append_printf(s, "cache_hits: %" G_GUINT64_FORMAT "\n", cs.hits);
	g_string_append_printf(s, "cache_misses: %" G_GUINT64_FORMAT "\n", cs.misses);
	g_string_append_printf(s, "cache_evictions: %" G_GUINT64_FORMAT "\n", cs.evictions);
	pool_stats_clear(&ps);
	return g_string_free(s, FALSE);
}

static void copy_headers(struct mail_headers *dst, const struct mail_headers *src)
{
	dst->subject = g_strdup(src->subject);
	dst->from = g_strdup(src->from);
	dst->to = g_strdup(src->to);
	dst->date = g_strdup(src->date);
	dst->message_id = g_strdup(src->message_id);
}

struct header_fetch {
	struct header_sink hdr; /* first: the literal callbacks get it */
	guint32 uid;
	gboolean found;
	GByteArray *value;
};

static void on_header_fetch(void *ud, const struct imap_response *r)
{
	struct header_fetch *hf = ud;
	const struct imap_value *v;
	guint32 uid;

	if (!imap_value_u32(imap_fetch_item(r, "UID"), &uid) || uid != hf->uid) {
		hf->hdr.active = FALSE;
		return;
	}
	v = imap_fetch_item(r, "BODY[HEADER.FIELDS (SUBJECT FROM TO DATE MESSAGE-ID)]");
	if (v && v->type == IMAP_V_STREAMED && hf->hdr.active) {
		g_byte_array_append(hf->value, hf->hdr.buf->data, hf->hdr.buf->len);
		hf->found = TRUE;
	} else if (v && imap_value_str(v)) {
		g_byte_array_append(hf->value, (const guint8 *)v->str, (guint)v->len);
		hf->found = TRUE;
	}
	hf->hdr.active = FALSE;
}

/* Keep h (owned by the table from now on) as ino's decoded headers. */
static void keep_headers(struct mfs_imap_fs *fs, guint64 ino, struct mail_headers *h)
{
	guint64 *key = g_new(guint64, 1);

	*key = ino;
	mfs_mutex_lock(&fs->lock);
	if (g_hash_table_size(fs->headers) >= HEADERS_CACHE_MAX)
		g_hash_table_remove_all(fs->headers);
	g_hash_table_replace(fs->headers, key, h);
	mfs_mutex_unlock(&fs->lock);
}

/*
 * The headers from the message's cached body, when it is complete there: a
 * remount's rsync -aX of mail already copied asks the server nothing. The
 * parser reads the fields it wants up to the first empty line, as in the
 * server's HEADER.FIELDS answer.
 */
static gboolean headers_from_cache(struct mfs_imap_fs *fs, const struct tree_entry *e,
				   struct mail_headers *out)
{
	struct mcache_entry *ce = mcache_get(fs->cache, e->wire, e->uidvalidity, e->uid);
	g_autofree char *buf = NULL;
	guint64 total;
	gssize got = -1;

	if (mcache_entry_complete(ce, &total)) {
		size_t want = (size_t)MIN(total, (guint64)HEADER_FIELDS_MAX);

		buf = g_malloc(want ? want : 1);
		got = mcache_entry_read(ce, buf, want, 0);
	}
	mcache_entry_unref(ce);
	if (got < 0)
		return FALSE;
	struct mail_headers *h = g_new0(struct mail_headers, 1);

	mail_headers_parse(buf, (size_t)got, h);
	copy_headers(out, h);
	keep_headers(fs, e->ino, h);
	__atomic_fetch_add(&fs->headers_from_cache, 1, __ATOMIC_RELAXED);
	return TRUE;
}

/* The decoded headers of a message, fetched once and kept. */
static int message_headers(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino,
			   struct mail_headers *out)
{
	struct mail_headers *cached;
	struct tree_entry e = { 0 };
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	mfs_mutex_lock(&fs->lock);
	cached = g_hash_table_lookup(fs->headers, &ino);
	if (cached)
		copy_headers(out, cached);
	mfs_mutex_unlock(&fs->lock);
	if (cached)
		return 0;

	rc = tree_get(fs->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.gone || !e.wire) {
		tree_entry_clear(&e);
		return rc < 0 ? rc : -ENOENT;
	}
	if (headers_from_cache(fs, &e, out)) {
		tree_entry_clear(&e);
		return 0;
	}
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, e.wire, &s);
	if (rc == 0) {
		struct header_fetch hf = { .hdr.buf = g_byte_array_new(), .uid = e.uid,
					   .value = g_byte_array_new() };
		struct imap_handler h = { .untagged = on_header_fetch,
					  .literal_begin = header_sink_begin,
					  .literal_chunk = header_sink_chunk,
					  .ud = &hf };

		rc = ensure_selected(s, e.wire, !fs->opts->mark_seen, e.uidvalidity, &err);
		if (rc == 0)
			rc = imap_run(s, &h, NULL, &err,
				      "UID FETCH %u (BODY.PEEK[HEADER.FIELDS "
				      "(SUBJECT FROM TO DATE MESSAGE-ID)])",
				      e.uid);
		give_back(&ctx);
		if (rc == 0 && !hf.found)
			rc = -ENOENT; /* expunged meanwhile */
		if (rc == 0) {
			struct mail_headers *h2 = g_new0(struct mail_headers, 1);

			mail_headers_parse((const char *)hf.value->data, hf.value->len, h2);
			copy_headers(out, h2);
			keep_headers(fs, ino, h2);
		} else {
			rc = imap_errno(&ctx, rc, err, e.wire);
		}
		g_byte_array_unref(hf.hdr.buf);
		g_byte_array_unref(hf.value);
	}
	req_ctx_clear(&ctx, req);
	tree_entry_clear(&e);
	return rc;
}

/* The header a user.mail.* attribute names; *known FALSE for another name. */
static const char *header_field(const struct mail_headers *h, const char *name, gboolean *known)
{
	static const struct {
		const char *xattr;
		size_t offset;
	} fields[] = {
		{ "user.mail.subject", G_STRUCT_OFFSET(struct mail_headers, subject) },
		{ "user.mail.from", G_STRUCT_OFFSET(struct mail_headers, from) },
		{ "user.mail.to", G_STRUCT_OFFSET(struct mail_headers, to) },
		{ "user.mail.date", G_STRUCT_OFFSET(struct mail_headers, date) },
		{ "user.mail.message-id", G_STRUCT_OFFSET(struct mail_headers, message_id) },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
		if (strcmp(name, fields[i].xattr) == 0) {
			*known = TRUE;
			const void *field = (const char *)h + fields[i].offset;

			return *(char *const *)field;
		}
	}
	*known = FALSE;
	return NULL;
}

static int reply_xattr_value(fuse_req_t req, const char *value, size_t size)
{
	size_t len = strlen(value);

	if (size == 0)
		return fuse_reply_xattr(req, len);
	if (size < len)
		return fuse_reply_err(req, ERANGE);
	return fuse_reply_buf(req, value, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct mail_headers h = { 0 };
	const char *value = NULL;
	gboolean known;
	int rc;

	/* Only user.* names exist here. ENOTSUP for the others (security.selinux,
	 * system.posix_acl_access), not ENODATA: ls -l asks for both on every
	 * file, and after ENOTSUP it stops asking for the whole mount, where
	 * ENODATA costs two round trips through the daemon per file. */
	if (!g_str_has_prefix(name, "user.")) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (ino == FUSE_ROOT_ID && strcmp(name, STATUS_XATTR) == 0) {
		g_autofree char *text = status_text(fs);

		reply_xattr_value(req, text, size);
		return;
	}
	if (is_staged(ino)) {
		struct staged *st = staged_get(fs, ino);
		g_autofree char *flags = NULL;

		mfs_mutex_lock(&fs->lock);
		flags = st ? g_strdup(st->flags) : NULL;
		mfs_mutex_unlock(&fs->lock);
		if (flags && strcmp(name, FLAGS_XATTR) == 0)
			reply_xattr_value(req, flags, size);
		else
			fuse_reply_err(req, st ? ENODATA : ENOENT);
		return;
	}
	rc = tree_get(fs->tree, ino, TREE_WANT_FLAGS, &e);
	if (rc < 0 || e.gone || e.kind != TREE_MESSAGE) {
		tree_entry_clear(&e);
		fuse_reply_err(req, rc < 0 ? -rc : e.gone ? ENOENT : ENODATA);
		return;
	}
	if (strcmp(name, FLAGS_XATTR) == 0) {
		reply_xattr_value(req, e.flags ? e.flags : "", size);
		tree_entry_clear(&e);
		return;
	}
	tree_entry_clear(&e);
	if (!g_str_has_prefix(name, "user.mail.")) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = message_headers(fs, req, ino, &h);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	value = header_field(&h, name, &known);
	if (!known) {
		mail_headers_clear(&h);
		fuse_reply_err(req, ENODATA);
		return;
	}
	reply_xattr_value(req, value ? value : "", size);
	mail_headers_clear(&h);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	GString *names = g_string_new(NULL);
	int rc;

	if (ino == FUSE_ROOT_ID) {
		g_string_append_len(names, STATUS_XATTR, sizeof(STATUS_XATTR));
	} else if (is_staged(ino)) {
		struct staged *st = staged_get(fs, ino);

		if (st && st->flags)
			g_string_append_len(names, FLAGS_XATTR, sizeof(FLAGS_XATTR));
	} else {
		rc = tree_get(fs->tree, ino, 0, &e);
		if (rc < 0) {
			g_string_free(names, TRUE);
			fuse_reply_err(req, -rc);
			return;
		}
		if (e.kind == TREE_MESSAGE)
			for (size_t i = 0; i < G_N_ELEMENTS(message_xattrs); i++)
				g_string_append_len(names, message_xattrs[i],
						    (gssize)strlen(message_xattrs[i]) + 1);
	}
	if (size == 0)
		fuse_reply_xattr(req, names->len);
	else if (size < names->len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names->str, names->len);
	g_string_free(names, TRUE);
}

/* -- the rest --------------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct statvfs st = { 0 };
	struct mcache_stats cs;
	guint64 free_blocks;

	(void)ino;
	mcache_get_stats(fs->cache, &cs);
	free_blocks = MAX(mcache_free_space(fs->cache) / 4096, 1);
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = MAX(cs.max_bytes / 4096, free_blocks);
	st.f_bfree = free_blocks;
	st.f_bavail = free_blocks;
	st.f_files = 1000000;
	st.f_ffree = 1000000;
	st.f_favail = 1000000;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* -- writing (design §2 "Writing") ------------------------------------------- */

static int refuse_readonly(const struct mfs_imap_fs *fs)
{
	/* `readonly` (or -o ro): nothing is ever sent. */
	return fs->opts->readonly ? -EROFS : 0;
}

/* The message or folder `name` in parent, as the tree knows it (after a refresh). */
static int lookup_entry(struct mfs_imap_fs *fs, fuse_req_t req, guint64 parent, const char *name,
			unsigned want, struct tree_entry *e)
{
	int rc = refresh_dir(fs, parent, req);

	if (rc == -EINTR)
		return rc;
	return tree_lookup(fs->tree, parent, name, FALSE, want, e);
}

static void mark_stale(struct mfs_imap_fs *fs, guint64 folder)
{
	struct folder_state *f = folder_state(fs, folder);

	mfs_mutex_lock(&f->lock);
	f->fetched_at = 0;
	mfs_mutex_unlock(&f->lock);
}

/* The wire name of a new child `name` (a path component) of folder parent. */
static int child_wire(struct mfs_imap_fs *fs, guint64 parent, const char *name, char **out)
{
	g_autofree char *key = tree_folder_key(fs->tree, parent);
	g_autofree char *plain = NULL;
	g_autofree char *enc = NULL;
	size_t len;
	char delim;

	if (!key)
		return -ENOENT;
	plain = names_unescape(name, &len, NULL);
	/* A name the escape could not have made, or one holding NUL: not a mailbox name. */
	if (!plain || strlen(plain) != len || !*plain)
		return -EINVAL;
	mfs_mutex_lock(&fs->lock);
	delim = fs->delim;
	mfs_mutex_unlock(&fs->lock);
	if (delim && strchr(plain, delim))
		return -EINVAL;
	enc = mutf7_encode(plain, NULL);
	if (!enc)
		return -EINVAL;
	if (!*key)
		*out = g_steal_pointer(&enc);
	else if (!delim)
		return -EPERM; /* a flat namespace has no children */
	else
		*out = g_strdup_printf("%s%c%s", key, delim, enc);
	return 0;
}

/* INBOX and the Trash mailbox are never renamed or removed. */
static gboolean protected_mailbox(struct mfs_imap_fs *fs, const char *wire)
{
	gboolean trash;

	if (!wire)
		return FALSE;
	mfs_mutex_lock(&fs->lock);
	trash = fs->trash_wire && strcmp(fs->trash_wire, wire) == 0;
	mfs_mutex_unlock(&fs->lock);
	return trash || g_ascii_strcasecmp(wire, "INBOX") == 0;
}

/* Run one command that changes the server; -errno through the one table. */
static int run_change(struct req_ctx *ctx, struct imap_session *s, const char *what, GError **err,
		      const char *fmt, ...) G_GNUC_PRINTF(5, 6);

static int run_change(struct req_ctx *ctx, struct imap_session *s, const char *what, GError **err,
		      const char *fmt, ...)
{
	va_list ap;
	struct imap_result res = { 0 };
	int rc;

	va_start(ap, fmt);
	g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	rc = imap_run(s, NULL, &res, err, "%s", cmd);
	if (rc < 0 && res.status != IMAP_STATUS_NONE)
		mfs_log_info("%s refused: %s%s%s%s", what, res.code ? "[" : "",
			     res.code ? res.code : "", res.code ? "] " : "", res.text ? res.text : "");
	imap_result_clear(&res);
	(void)ctx;
	return rc;
}

static void simple_reply(fuse_req_t req, int rc)
{
	fuse_reply_err(req, rc < 0 ? -rc : 0);
}

/* mkdir -> CREATE */
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	g_autofree char *wire = NULL;
	g_autofree char *q = NULL;
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	(void)mode;
	if ((rc = refuse_readonly(fs)) < 0 || (rc = child_wire(fs, parent, name, &wire)) < 0) {
		simple_reply(req, rc);
		return;
	}
	q = imap_quote(wire);
	req_ctx_init(&ctx, fs, req);
	rc = q ? borrow(&ctx, NULL, &s) : -EINVAL;
	if (rc == 0) {
		rc = run_change(&ctx, s, "CREATE", &err, "CREATE %s", q);
		give_back(&ctx);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, "CREATE");
	}
	req_ctx_clear(&ctx, req);
	if (rc == 0) {
		mfs_imap_fs_refresh_list(fs, TRUE, NULL);
		rc = tree_lookup(fs->tree, parent, name, TRUE, 0, &e);
		if (rc == -ENOENT)
			rc = -EIO; /* created, yet the server does not list it */
	}
	if (rc < 0) {
		simple_reply(req, rc);
		return;
	}
	reply_entry(fs, req, &e);
}

static gboolean count_entry(void *ud, const char *name, const struct tree_entry *e,
			    guint64 next_off)
{
	guint *n = ud;

	(void)e;
	(void)next_off;
	if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
		(*n)++;
	return TRUE;
}

/* rmdir -> DELETE, only of a mailbox without messages and children. */
static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	g_autofree char *key = NULL;
	g_autofree char *q = NULL;
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	guint children = 0;
	int rc;

	if ((rc = refuse_readonly(fs)) < 0 ||
	    (rc = lookup_entry(fs, req, parent, name, TREE_WANT_WIRE, &e)) < 0) {
		simple_reply(req, rc);
		return;
	}
	if (e.kind != TREE_FOLDER) {
		tree_entry_clear(&e);
		simple_reply(req, -ENOTDIR);
		return;
	}
	key = tree_folder_key(fs->tree, e.ino);
	if (protected_mailbox(fs, key)) {
		tree_entry_clear(&e);
		simple_reply(req, -EPERM);
		return;
	}
	/* What it holds now, not what a listing said a while ago. */
	rc = refresh_folder(fs, e.ino, TRUE, req);
	if (rc == 0)
		rc = tree_readdir(fs->tree, e.ino, 0, FALSE, count_entry, &children);
	if (rc == 0 && children > 0)
		rc = -ENOTEMPTY;
	q = key ? imap_quote(key) : NULL;
	if (rc == 0 && !q)
		rc = -EINVAL;
	req_ctx_init(&ctx, fs, req);
	if (rc == 0)
		rc = borrow(&ctx, NULL, &s);
	if (rc == 0) {
		/* A selected mailbox cannot always be deleted: select none. */
		if (g_strcmp0(imap_session_selected(s), key) == 0)
			imap_select(s, "INBOX", TRUE, NULL, NULL);
		rc = run_change(&ctx, s, "DELETE", &err, "DELETE %s", q);
		give_back(&ctx);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, "DELETE");
	}
	req_ctx_clear(&ctx, req);
	if (rc == 0) {
		g_autofree char *dir = g_build_filename(fs->opts->cache_dir, "listings", NULL);

		mcache_drop_mailbox(fs->cache, key, 0);
		lindex_remove(dir, key);
		mfs_imap_fs_refresh_list(fs, TRUE, NULL);
	}
	tree_entry_clear(&e);
	simple_reply(req, rc);
}

/* Select wire read-write for a change, under the UIDVALIDITY the message was listed with. */
static int select_for_change(struct imap_session *s, const char *wire, guint32 uidvalidity,
			     GError **err)
{
	return ensure_selected(s, wire, FALSE, uidvalidity, err);
}

/* \Deleted + UID EXPUNGE of that UID alone: never an expunge of what others marked. */
static int expunge_uid(struct req_ctx *ctx, struct imap_session *s, guint32 uid, GError **err)
{
	int rc;

	if (!imap_session_has(s, IMAP_CAP_UIDPLUS)) {
		mfs_log_warn("%s has no UIDPLUS: refusing to expunge, which could remove "
			     "messages others marked \\Deleted",
			     imap_session_peer(s));
		return -EPERM;
	}
	rc = run_change(ctx, s, "STORE", err, "UID STORE %u +FLAGS.SILENT (\\Deleted)", uid);
	if (rc == 0)
		rc = run_change(ctx, s, "UID EXPUNGE", err, "UID EXPUNGE %u", uid);
	return rc;
}

/* Move (or copy and expunge) message uid of the selected mailbox to dest. */
static int move_uid(struct req_ctx *ctx, struct imap_session *s, guint32 uid, const char *dest,
		    GError **err)
{
	g_autofree char *q = imap_quote(dest);
	int rc;

	if (!q)
		return -EINVAL;
	if (imap_session_has(s, IMAP_CAP_MOVE))
		return run_change(ctx, s, "MOVE", err, "UID MOVE %u %s", uid, q);
	if (!imap_session_has(s, IMAP_CAP_UIDPLUS)) {
		mfs_log_warn("%s has neither MOVE nor UIDPLUS: refusing to move, which would "
			     "need an expunge of messages others marked \\Deleted",
			     imap_session_peer(s));
		return -EPERM;
	}
	rc = run_change(ctx, s, "COPY", err, "UID COPY %u %s", uid, q);
	if (rc == 0)
		rc = expunge_uid(ctx, s, uid, err);
	return rc;
}

static void removed_message(struct mfs_imap_fs *fs, guint64 ino)
{
	g_autoptr(GArray) removed = tree_removed_new();

	tree_message_remove(fs->tree, ino, removed);
	queue_removed(fs, removed);
}

/* rm of a message -> MOVE to Trash, or expunge (inside Trash, delete=expunge). */
static int remove_message(struct mfs_imap_fs *fs, fuse_req_t req, const struct tree_entry *e)
{
	g_autofree char *trash = NULL;
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	gboolean expunge;
	int rc;

	mfs_mutex_lock(&fs->lock);
	trash = g_strdup(fs->trash_wire);
	mfs_mutex_unlock(&fs->lock);
	expunge = fs->opts->delete_mode == MFS_DELETE_EXPUNGE || g_strcmp0(trash, e->wire) == 0;
	if (!expunge && !trash) {
		mfs_log_warn("rm of %s: no Trash mailbox (set trash= or delete=expunge)", e->name);
		return -EPERM;
	}
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, e->wire, &s);
	if (rc == 0) {
		rc = select_for_change(s, e->wire, e->uidvalidity, &err);
		if (rc == 0)
			rc = expunge ? expunge_uid(&ctx, s, e->uid, &err) :
				       move_uid(&ctx, s, e->uid, trash, &err);
		give_back(&ctx);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, e->wire);
	}
	req_ctx_clear(&ctx, req);
	if (rc == 0) {
		removed_message(fs, e->ino);
		if (!expunge) {
			guint64 t = tree_find_folder(fs->tree, trash);

			if (t)
				mark_stale(fs, t);
		}
	}
	return rc;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct staged *st;
	int rc;

	mfs_mutex_lock(&fs->lock);
	st = staged_by_name(fs, parent, name);
	if (st) {
		/* Local scratch: gone without a word to the server. */
		st->done = TRUE;
		staged_maybe_free(fs, st);
	}
	mfs_mutex_unlock(&fs->lock);
	if (st) {
		fuse_reply_err(req, 0);
		return;
	}
	if ((rc = refuse_readonly(fs)) < 0 ||
	    (rc = lookup_entry(fs, req, parent, name, TREE_WANT_WIRE | TREE_WANT_NAME, &e)) < 0) {
		simple_reply(req, rc);
		return;
	}
	rc = e.kind == TREE_MESSAGE ? remove_message(fs, req, &e) : -EISDIR;
	tree_entry_clear(&e);
	simple_reply(req, rc);
}

/* -- new messages: local files, appended once complete ------------------------ */

struct search_sink {
	GArray *uids;
};

static void on_search(void *ud, const struct imap_response *r)
{
	struct search_sink *ss = ud;

	if (!r->keyword || strcmp(r->keyword, "SEARCH") != 0)
		return;
	for (size_t i = 0; i < r->args.n; i++) {
		guint32 uid;

		if (imap_value_u32(&r->args.items[i], &uid))
			g_array_append_val(ss->uids, uid);
	}
}

static void on_sizes(void *ud, const struct imap_response *r)
{
	GArray *sizes = ud;
	guint64 size;

	if (imap_value_u64(imap_fetch_item(r, "RFC822.SIZE"), &size))
		g_array_append_val(sizes, size);
}

/* imapsync's rule: a message with this Message-ID and size is already there. */
static gboolean already_there(struct req_ctx *ctx, struct imap_session *s, const char *wire,
			      const char *message_id, guint64 size)
{
	g_autofree char *q = imap_quote(message_id);
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));
	g_autoptr(GArray) sizes = g_array_new(FALSE, FALSE, sizeof(guint64));
	struct search_sink ss = { uids };
	struct imap_handler hs = { .untagged = on_search, .ud = &ss };
	struct imap_handler hz = { .untagged = on_sizes, .ud = sizes };
	GString *set;

	(void)ctx;
	if (!q || strlen(message_id) > 998)
		return FALSE;
	if (g_strcmp0(imap_session_selected(s), wire) != 0 &&
	    imap_select(s, wire, TRUE, NULL, NULL) < 0)
		return FALSE;
	if (imap_run(s, &hs, NULL, NULL, "UID SEARCH HEADER Message-ID %s", q) < 0 ||
	    uids->len == 0)
		return FALSE;
	set = g_string_new(NULL);
	for (guint i = 0; i < uids->len && i < 1000; i++)
		g_string_append_printf(set, "%s%u", i ? "," : "", g_array_index(uids, guint32, i));
	if (imap_run(s, &hz, NULL, NULL, "UID FETCH %s (RFC822.SIZE)", set->str) < 0)
		sizes->len = 0;
	g_string_free(set, TRUE);
	for (guint i = 0; i < sizes->len; i++)
		if (g_array_index(sizes, guint64, i) == size)
			return TRUE;
	return FALSE;
}

/* Send a complete local file to folder as one APPEND. 0 or -errno. */
static int commit_staged(struct mfs_imap_fs *fs, fuse_req_t req, struct staged *st,
			 guint64 folder)
{
	struct tree_entry e = { 0 };
	g_autoptr(GByteArray) raw = NULL;
	g_autoptr(GByteArray) msg = NULL;
	g_autofree char *date = NULL;
	g_autofree char *mid = NULL;
	g_autofree char *q = NULL;
	g_autofree char *prefix = NULL;
	struct req_ctx ctx;
	struct imap_session *s;
	struct stat fst;
	GError *err = NULL;
	int rc;

	if ((rc = refuse_readonly(fs)) < 0)
		return rc;
	rc = tree_get(fs->tree, folder, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.kind != TREE_FOLDER || !e.wire) {
		tree_entry_clear(&e);
		return rc < 0 ? rc : -EPERM; /* a \Noselect folder holds no messages */
	}
	if (fstat(st->fd, &fst) != 0 || (guint64)fst.st_size > APPEND_MAX) {
		tree_entry_clear(&e);
		return -EFBIG;
	}
	raw = g_byte_array_sized_new((guint)fst.st_size);
	g_byte_array_set_size(raw, (guint)fst.st_size);
	if (fst.st_size > 0 && pread(st->fd, raw->data, raw->len, 0) != (ssize_t)raw->len) {
		tree_entry_clear(&e);
		return -EIO;
	}
	if (!append_prepare(raw->data, raw->len, &msg, &err)) {
		g_autofree char *esc = mfs_log_escape(e.wire, strlen(e.wire), 200);

		mfs_log_info("not appending %s to %s: %s", st->name, esc, err->message);
		g_error_free(err);
		tree_entry_clear(&e);
		return -EINVAL;
	}
	mid = append_message_id(msg->data, msg->len);
	date = append_internaldate(st->mtime);
	q = imap_quote(e.wire);
	prefix = g_strdup_printf("APPEND %s (%s) \"%s\"", q ? q : "\"\"", st->flags ? st->flags : "",
				 date);
	req_ctx_init(&ctx, fs, req);
	rc = q ? borrow(&ctx, e.wire, &s) : -EINVAL;
	if (rc == 0) {
		guint64 limit = imap_session_append_limit(s);

		if (limit && msg->len > limit) {
			/* Refused before a byte is sent (design §7, APPENDLIMIT). */
			mfs_log_info("not appending %s: %u bytes, the server takes at most %"
				     G_GUINT64_FORMAT, st->name, msg->len, limit);
			rc = -EFBIG;
		} else if (mid && already_there(&ctx, s, e.wire, mid, msg->len)) {
			mfs_log_debug(MFS_LOG_IMAP, "%s is already in %s: not appended again",
				      st->name, e.wire);
		} else {
			struct imap_result res = { 0 };
			guint id = imap_send_literal(s, prefix, msg->data, msg->len, NULL, &err);

			rc = id ? imap_wait(s, id, NULL, &res, &err) : -EIO;
			if (rc < 0 && res.status != IMAP_STATUS_NONE) {
				g_autofree char *esc = mfs_log_escape(e.wire, strlen(e.wire), 200);

				mfs_log_info("APPEND to %s refused: %s%s%s%s", esc,
					     res.code ? "[" : "", res.code ? res.code : "",
					     res.code ? "] " : "", res.text ? res.text : "");
			}
			imap_result_clear(&res);
		}
		give_back(&ctx);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, "APPEND");
	}
	req_ctx_clear(&ctx, req);
	if (rc == 0) {
		st->dirty = FALSE;
		mark_stale(fs, folder);
	}
	tree_entry_clear(&e);
	return rc;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	struct tree_entry e = { 0 };
	struct staged *st;
	g_autofree char *dir = NULL;
	g_autofree char *tmpl = NULL;
	int rc, fd;

	(void)mode;
	if ((rc = refuse_readonly(fs)) < 0) {
		simple_reply(req, rc);
		return;
	}
	rc = tree_get(fs->tree, parent, 0, &e);
	if (rc < 0 || e.kind != TREE_FOLDER || !e.selectable) {
		simple_reply(req, rc < 0 ? rc : -EPERM);
		return;
	}
	dir = g_build_filename(fs->opts->cache_dir, "staging", NULL);
	if (g_mkdir_with_parents(dir, 0700) != 0) {
		simple_reply(req, -errno);
		return;
	}
	tmpl = g_build_filename(dir, "new-XXXXXX", NULL);
	fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		simple_reply(req, -errno);
		return;
	}
	unlink(tmpl); /* nothing of it outlives the mount */
	st = g_new0(struct staged, 1);
	st->parent = parent;
	st->name = g_strdup(name);
	st->fd = fd;
	st->opens = 1;
	st->nlookup = 1;
	st->mtime = g_get_real_time() / G_USEC_PER_SEC;
	mfs_mutex_lock(&fs->lock);
	st->ino = STAGED_INO_BIT | ++fs->staged_counter;
	g_hash_table_insert(fs->staged, &st->ino, st);
	mfs_mutex_unlock(&fs->lock);

	ep.ino = st->ino;
	ep.generation = 1;
	staged_attr(fs, st, &ep.attr);
	/* Short timeouts: the name turns into a message with another inode. */
	ep.attr_timeout = 0;
	ep.entry_timeout = 0;
	fi->fh = 0;
	fi->direct_io = 1;
	if (fuse_reply_create(req, &ep, fi) != 0) {
		mfs_mutex_lock(&fs->lock);
		st->done = TRUE;
		st->opens = 0;
		st->nlookup = 0;
		staged_maybe_free(fs, st);
		mfs_mutex_unlock(&fs->lock);
	}
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct staged *st = is_staged(ino) ? staged_get(fs, ino) : NULL;
	ssize_t n;

	(void)fi;
	if (!st || st->done) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((guint64)off + size > APPEND_MAX) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	n = pwrite(st->fd, buf, size, off);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	st->dirty = TRUE;
	fuse_reply_write(req, (size_t)n);
}

/* The last close of a file made under a visible name completes it (cp). */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct staged *st = is_staged(ino) ? staged_get(fs, ino) : NULL;
	int rc = 0;

	(void)fi;
	if (st && !st->done && st->dirty && st->opens == 1 &&
	    !append_is_scratch_name(st->name)) {
		rc = commit_staged(fs, req, st, st->parent);
		if (rc == 0) {
			mfs_mutex_lock(&fs->lock);
			st->done = TRUE;
			mfs_mutex_unlock(&fs->lock);
			notify_entry_gone(fs->notify, st->parent, 0, st->name);
		}
	}
	simple_reply(req, rc);
}

static int rename_message(struct mfs_imap_fs *fs, fuse_req_t req, const struct tree_entry *e,
			  guint64 newparent)
{
	struct tree_entry dest = { 0 };
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	if (e->parent == newparent)
		return -EPERM; /* names are the server's: a message cannot be renamed */
	rc = tree_get(fs->tree, newparent, TREE_WANT_WIRE, &dest);
	if (rc < 0 || dest.kind != TREE_FOLDER || !dest.wire) {
		tree_entry_clear(&dest);
		return rc < 0 ? rc : -EPERM;
	}
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, e->wire, &s);
	if (rc == 0) {
		rc = select_for_change(s, e->wire, e->uidvalidity, &err);
		if (rc == 0)
			rc = move_uid(&ctx, s, e->uid, dest.wire, &err);
		give_back(&ctx);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, e->wire);
	}
	req_ctx_clear(&ctx, req);
	if (rc == 0) {
		removed_message(fs, e->ino);
		mark_stale(fs, newparent);
	}
	tree_entry_clear(&dest);
	return rc;
}

static int rename_folder(struct mfs_imap_fs *fs, fuse_req_t req, const struct tree_entry *e,
			 guint64 newparent, const char *newname)
{
	g_autofree char *key = tree_folder_key(fs->tree, e->ino);
	g_autofree char *to = NULL;
	g_autofree char *qf = NULL;
	g_autofree char *qt = NULL;
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	if (!key || protected_mailbox(fs, key))
		return -EPERM;
	rc = child_wire(fs, newparent, newname, &to);
	if (rc < 0)
		return rc;
	qf = imap_quote(key);
	qt = imap_quote(to);
	if (!qf || !qt)
		return -EINVAL;
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, NULL, &s);
	if (rc == 0) {
		if (g_strcmp0(imap_session_selected(s), key) == 0)
			imap_select(s, "INBOX", TRUE, NULL, NULL);
		rc = run_change(&ctx, s, "RENAME", &err, "RENAME %s %s", qf, qt);
		give_back(&ctx);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, "RENAME");
	}
	req_ctx_clear(&ctx, req);
	if (rc == 0)
		mfs_imap_fs_refresh_list(fs, TRUE, NULL);
	return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct staged *st;
	int rc;

	if (flags & (RENAME_EXCHANGE | RENAME_WHITEOUT)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	mfs_mutex_lock(&fs->lock);
	st = staged_by_name(fs, parent, name);
	mfs_mutex_unlock(&fs->lock);
	if (st) {
		/* rsync: a dot-named temporary becomes the visible file: complete. */
		rc = 0;
		if (!append_is_scratch_name(newname)) {
			rc = commit_staged(fs, req, st, newparent);
			if (rc == 0) {
				mfs_mutex_lock(&fs->lock);
				st->done = TRUE;
				mfs_mutex_unlock(&fs->lock);
				notify_entry_gone(fs->notify, newparent, 0, newname);
			}
		} else {
			mfs_mutex_lock(&fs->lock);
			g_free(st->name);
			st->name = g_strdup(newname);
			st->parent = newparent;
			mfs_mutex_unlock(&fs->lock);
		}
		simple_reply(req, rc);
		return;
	}
	if ((rc = refuse_readonly(fs)) < 0 ||
	    (rc = lookup_entry(fs, req, parent, name, TREE_WANT_WIRE | TREE_WANT_NAME, &e)) < 0) {
		simple_reply(req, rc);
		return;
	}
	if (e.kind == TREE_MESSAGE)
		rc = rename_message(fs, req, &e, newparent);
	else
		rc = rename_folder(fs, req, &e, newparent, newname);
	if (rc == 0)
		notify_entry_gone(fs->notify, newparent, 0, newname);
	tree_entry_clear(&e);
	simple_reply(req, rc);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct staged *st = is_staged(ino) ? staged_get(fs, ino) : NULL;
	struct tree_entry e = { 0 };
	struct stat out;
	int rc;

	(void)fi;
	if (st) {
		if ((to_set & FUSE_SET_ATTR_SIZE) && ftruncate(st->fd, attr->st_size) != 0) {
			fuse_reply_err(req, errno);
			return;
		}
		if (to_set & FUSE_SET_ATTR_SIZE)
			st->dirty = TRUE;
		if (to_set & FUSE_SET_ATTR_MTIME)
			st->mtime = attr->st_mtime;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			st->mtime = g_get_real_time() / G_USEC_PER_SEC;
		staged_attr(fs, st, &out);
		fuse_reply_attr(req, &out, 0);
		return;
	}
	rc = tree_get(fs->tree, ino, 0, &e);
	if (rc < 0 || e.gone) {
		fuse_reply_err(req, rc < 0 ? -rc : ENOENT);
		return;
	}
	/* Messages are immutable: a new size is refused; times, modes and owners,
	   as rsync sets them on arrival, are accepted and change nothing. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && e.kind == TREE_MESSAGE &&
	    (guint64)attr->st_size != e.size) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fill_attr(fs, &e, &out);
	fuse_reply_attr(req, &out, cache_timeout(fs));
}

/* setfattr -n user.imap.flags -> UID STORE FLAGS */
static int store_flags(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino, const char *flags)
{
	struct tree_entry e = { 0 };
	struct req_ctx ctx;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	if ((rc = refuse_readonly(fs)) < 0)
		return rc;
	rc = tree_get(fs->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.gone || !e.wire) {
		tree_entry_clear(&e);
		return rc < 0 ? rc : -ENOENT;
	}
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, e.wire, &s);
	if (rc == 0) {
		rc = select_for_change(s, e.wire, e.uidvalidity, &err);
		if (rc == 0)
			rc = run_change(&ctx, s, "STORE", &err, "UID STORE %u FLAGS.SILENT (%s)",
					e.uid, flags);
		give_back(&ctx);
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, e.wire);
	}
	req_ctx_clear(&ctx, req);
	if (rc == 0)
		tree_message_set_flags(fs->tree, ino, flags);
	tree_entry_clear(&e);
	return rc;
}

/* The value a read-only attribute has now, to accept rsync setting it again. */
static int current_xattr(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino, const char *name,
			 char **out)
{
	struct mail_headers h = { 0 };
	const char *v = NULL;
	int rc = message_headers(fs, req, ino, &h);
	gboolean known;

	if (rc < 0)
		return rc;
	v = header_field(&h, name, &known);
	if (!known)
		rc = -ENOTSUP;
	*out = g_strdup(v ? v : "");
	mail_headers_clear(&h);
	return rc;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct staged *st = is_staged(ino) ? staged_get(fs, ino) : NULL;
	g_autofree char *canonical = NULL;
	g_autofree char *current = NULL;
	int rc = 0;

	(void)flags;
	if (strcmp(name, FLAGS_XATTR) == 0) {
		GError *err = NULL;

		if (!append_parse_flags(value, size, &canonical, &err)) {
			mfs_log_info("%s: %s", FLAGS_XATTR, err->message);
			g_error_free(err);
			fuse_reply_err(req, EINVAL);
			return;
		}
		if (st) {
			mfs_mutex_lock(&fs->lock);
			g_free(st->flags);
			st->flags = g_steal_pointer(&canonical);
			mfs_mutex_unlock(&fs->lock);
		} else {
			rc = store_flags(fs, req, ino, canonical);
		}
		simple_reply(req, rc);
		return;
	}
	if (!g_str_has_prefix(name, "user.mail.")) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	/* Headers are the message's: a new file takes them from its bytes. */
	if (st) {
		fuse_reply_err(req, 0);
		return;
	}
	rc = current_xattr(fs, req, ino, name, &current);
	if (rc == 0 && (strlen(current) != size || memcmp(current, value, size) != 0))
		rc = -EPERM;
	simple_reply(req, rc);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	int rc = -EPERM;

	/* Removing the flags attribute clears the flags. */
	if (strcmp(name, FLAGS_XATTR) == 0) {
		struct staged *st = is_staged(ino) ? staged_get(fs, ino) : NULL;

		if (st) {
			mfs_mutex_lock(&fs->lock);
			g_clear_pointer(&st->flags, g_free);
			mfs_mutex_unlock(&fs->lock);
			rc = 0;
		} else {
			rc = store_flags(fs, req, ino, "");
		}
	}
	simple_reply(req, rc);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Always readdirplus: a listing is in memory, attributes cost nothing,
	   and `ls -l` then needs no lookup per file. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.create = op_create,
	.write = op_write,
	.flush = op_flush,
};

const struct fuse_lowlevel_ops *mfs_imap_fs_ops(void)
{
	return &ops;
}
