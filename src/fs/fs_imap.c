/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fs/fs_imap.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/notify.h"
#include "model/headers.h"
#include "util/log.h"

/* Ranges of a message fetched at once: small first, so `head` and `file`
   stay cheap, doubling while a reader goes on sequentially. */
#define CHUNK_MIN (128 * 1024)
#define CHUNK_MAX (4 * 1024 * 1024)
/* Decoded headers kept for getxattr; dropped wholesale when this many. */
#define HEADERS_CACHE_MAX 20000
#define STATUS_XATTR "user.mailfs.status"
#define FLAGS_XATTR "user.imap.flags"

struct folder_state {
	GMutex lock; /* one listing fetch of this folder at a time */
	gint64 fetched_at;
	guint32 uidvalidity;
};

struct mfs_imap_fs {
	const struct mfs_options *opts;
	struct pool *pool;
	struct mcache *cache;
	struct tree *tree;
	struct notify *notify;
	uid_t uid;
	gid_t gid;

	GMutex lock;         /* folders, headers */
	GHashTable *folders; /* ino -> struct folder_state */
	GHashTable *headers; /* ino -> struct mail_headers */
	GMutex list_lock;    /* one LIST at a time */
	gint64 list_fetched_at;

	guint64 messages_fetched;
	guint64 bytes_fetched;
	guint64 bodies_from_cache;
};

/* One open message file. */
struct open_msg {
	GMutex lock; /* one fetch per open file at a time */
	guint64 ino;
	guint32 uid;
	guint32 uidvalidity;
	char *wire;
	guint64 expected;    /* RFC822.SIZE, until the bytes say otherwise */
	guint64 total;       /* the real size, once known */
	gboolean total_known;
	struct mcache_entry *entry;
	guint64 seq_end;     /* where the last fetch ended: sequential readers */
	guint64 chunk;
	/* The last fetched range, for when the cache cannot keep it (full disk). */
	GByteArray *mem;
	guint64 mem_off;
};

/* A request that may be waiting for the server, for FUSE interrupts. */
struct req_ctx {
	GMutex lock;
	struct mfs_imap_fs *fs;
	struct imap_session *session;
	gboolean interrupted;
};

static gint64 now_us(void)
{
	return g_get_monotonic_time();
}

static double cache_timeout(const struct mfs_imap_fs *fs)
{
	return fs->opts->refresh;
}

static void folder_state_free(gpointer p)
{
	struct folder_state *f = p;

	g_mutex_clear(&f->lock);
	g_free(f);
}

static void headers_free(gpointer p)
{
	mail_headers_clear(p);
	g_free(p);
}

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
	g_mutex_init(&fs->lock);
	g_mutex_init(&fs->list_lock);
	fs->folders = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, folder_state_free);
	fs->headers = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, headers_free);
	return fs;
}

void mfs_imap_fs_free(struct mfs_imap_fs *fs)
{
	if (!fs)
		return;
	g_hash_table_destroy(fs->folders);
	g_hash_table_destroy(fs->headers);
	g_mutex_clear(&fs->lock);
	g_mutex_clear(&fs->list_lock);
	g_free(fs);
}

void mfs_imap_fs_attach(struct mfs_imap_fs *fs, struct fuse_session *se)
{
	fs->notify = notify_start(se);
}

void mfs_imap_fs_detach(struct mfs_imap_fs *fs)
{
	g_clear_pointer(&fs->notify, notify_stop);
}

/* -- sessions and interrupts ------------------------------------------------ */

static void on_interrupt(fuse_req_t req, void *data)
{
	struct req_ctx *ctx = data;

	(void)req;
	g_mutex_lock(&ctx->lock);
	ctx->interrupted = TRUE;
	if (ctx->session)
		pool_abort_session(ctx->fs->pool, ctx->session);
	g_mutex_unlock(&ctx->lock);
}

static void req_ctx_init(struct req_ctx *ctx, struct mfs_imap_fs *fs, fuse_req_t req)
{
	memset(ctx, 0, sizeof(*ctx));
	g_mutex_init(&ctx->lock);
	ctx->fs = fs;
	if (req)
		fuse_req_interrupt_func(req, on_interrupt, ctx);
}

static void req_ctx_clear(struct req_ctx *ctx, fuse_req_t req)
{
	if (req)
		fuse_req_interrupt_func(req, NULL, NULL);
	g_mutex_clear(&ctx->lock);
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
	g_mutex_lock(&ctx->lock);
	ctx->session = s;
	if (ctx->interrupted)
		pool_abort_session(ctx->fs->pool, s);
	g_mutex_unlock(&ctx->lock);
	*out = s;
	return 0;
}

static void give_back(struct req_ctx *ctx)
{
	g_mutex_lock(&ctx->lock);
	if (ctx->session)
		pool_put(ctx->fs->pool, ctx->session);
	ctx->session = NULL;
	g_mutex_unlock(&ctx->lock);
}

/* An IMAP failure as an errno for the kernel, with one log line when the link failed. */
static int imap_errno(struct req_ctx *ctx, int rc, GError *err, const char *what)
{
	if (ctx->interrupted)
		rc = -EINTR;
	else if (rc == -EIO && err)
		mfs_log_warn("%s: %s", what, err->message);
	else if (err)
		mfs_log_debug(MFS_LOG_IMAP, "%s: %s", what, err->message);
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
		g_mutex_lock(&fs->lock);
		g_hash_table_remove(fs->headers, &r->ino);
		g_mutex_unlock(&fs->lock);
	}
}

/* -- listings --------------------------------------------------------------- */

int mfs_imap_fs_refresh_list(struct mfs_imap_fs *fs, gboolean force, GError **err)
{
	struct req_ctx ctx;
	struct imap_session *s;
	GPtrArray *boxes;
	int rc = 0;

	g_mutex_lock(&fs->list_lock);
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
	g_mutex_unlock(&fs->list_lock);
	return rc;
}

static struct folder_state *folder_state(struct mfs_imap_fs *fs, guint64 ino)
{
	struct folder_state *f;

	g_mutex_lock(&fs->lock);
	f = g_hash_table_lookup(fs->folders, &ino);
	if (!f) {
		guint64 *key = g_new(guint64, 1);

		*key = ino;
		f = g_new0(struct folder_state, 1);
		g_mutex_init(&f->lock);
		g_hash_table_insert(fs->folders, key, f);
	}
	g_mutex_unlock(&fs->lock);
	return f;
}

/* Header fields kept per message at most: a subject is cut at 64 bytes anyway. */
#define HEADER_FIELDS_MAX (64 * 1024)

/* A header-field literal of the response being read, whatever its size
   (the client would drop a large unclaimed one as unsolicited). */
struct header_sink {
	GByteArray *buf;
	gboolean active;
};

static gboolean header_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct header_sink *h = ud;

	(void)seq;
	(void)size;
	if (!g_str_has_prefix(section, "BODY[HEADER.FIELDS"))
		return FALSE;
	g_byte_array_set_size(h->buf, 0);
	h->active = TRUE;
	return TRUE;
}

static void header_chunk(void *ud, const void *data, size_t len)
{
	struct header_sink *h = ud;

	if (h->active && h->buf->len < HEADER_FIELDS_MAX)
		g_byte_array_append(h->buf, data, (guint)MIN(len, HEADER_FIELDS_MAX - h->buf->len));
}

struct listing {
	struct header_sink hdr; /* first: the literal callbacks get the listing */
	GArray *msgs;           /* struct tree_msg_info, strings owned below */
	GStringChunk *strings;
};

/* "Subject: a\r\n b\r\n\r\n" -> "a\r\n b": the raw value, for the slug rule. */
static const char *subject_value(GStringChunk *chunk, const char *s, size_t len)
{
	const char *colon, *end;

	if (len < 8 || g_ascii_strncasecmp(s, "subject", 7) != 0)
		return NULL;
	colon = memchr(s, ':', len);
	if (!colon)
		return NULL;
	end = s + len;
	while (end > colon + 1 && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	return g_string_chunk_insert_len(chunk, colon + 1, end - (colon + 1));
}

static void on_listing(void *ud, const struct imap_response *r)
{
	struct listing *l = ud;
	struct tree_msg_info m = { 0 };
	const struct imap_value *v;
	guint64 size;

	if (!r->keyword || strcmp(r->keyword, "FETCH") != 0)
		return;
	if (!imap_value_u32(imap_fetch_item(r, "UID"), &m.uid) ||
	    !imap_value_u64(imap_fetch_item(r, "RFC822.SIZE"), &size)) {
		/* An unsolicited FETCH (flags of some message): not a listing line. */
		return;
	}
	m.size = size;
	v = imap_fetch_item(r, "INTERNALDATE");
	if (!v || !imap_parse_internaldate(imap_value_str(v), &m.internaldate))
		m.internaldate = 0;
	v = imap_fetch_item(r, "FLAGS");
	if (v) {
		g_autofree char *flags = imap_flags_to_string(v);

		m.flags = g_string_chunk_insert_const(l->strings, flags);
	}
	v = imap_fetch_item(r, "BODY[HEADER.FIELDS (SUBJECT)]");
	if (v && v->type == IMAP_V_STREAMED && l->hdr.active)
		m.subject = subject_value(l->strings, (const char *)l->hdr.buf->data, l->hdr.buf->len);
	else if (v && imap_value_str(v))
		m.subject = subject_value(l->strings, v->str, v->len);
	l->hdr.active = FALSE;
	g_array_append_val(l->msgs, m);
}

static int refresh_folder(struct mfs_imap_fs *fs, guint64 ino, gboolean force, fuse_req_t req)
{
	struct folder_state *f = folder_state(fs, ino);
	struct tree_entry e = { 0 };
	struct req_ctx ctx;
	struct imap_session *s;
	struct imap_select_info info;
	GError *err = NULL;
	int rc;

	g_mutex_lock(&f->lock);
	if (!force && f->fetched_at &&
	    now_us() - f->fetched_at < (gint64)fs->opts->refresh * G_USEC_PER_SEC) {
		g_mutex_unlock(&f->lock);
		return 0;
	}
	rc = tree_get(fs->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.kind != TREE_FOLDER || !e.selectable || !e.wire || e.gone) {
		tree_entry_clear(&e);
		g_mutex_unlock(&f->lock);
		return rc < 0 ? rc : 0;
	}
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, e.wire, &s);
	if (rc == 0) {
		rc = imap_select(s, e.wire, !fs->opts->mark_seen, &info, &err);
		if (rc == 0) {
			struct listing l = {
				.hdr.buf = g_byte_array_new(),
				.msgs = g_array_new(FALSE, FALSE, sizeof(struct tree_msg_info)),
				.strings = g_string_chunk_new(4096),
			};
			struct imap_handler h = { .untagged = on_listing,
						  .literal_begin = header_begin,
						  .literal_chunk = header_chunk,
						  .ud = &l };
			g_autoptr(GArray) removed = tree_removed_new();

			if (info.exists > 0)
				rc = imap_run(s, &h, NULL, &err, "UID FETCH 1:* (UID RFC822.SIZE "
						  "INTERNALDATE FLAGS%s)",
					      fs->opts->names == MFS_NAMES_UID ?
						      "" :
						      " BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
			give_back(&ctx);
			if (rc == 0) {
				/* Bodies of another UIDVALIDITY are other messages now. */
				if (f->uidvalidity && f->uidvalidity != info.uidvalidity)
					mcache_drop_mailbox(fs->cache, e.wire, info.uidvalidity);
				rc = tree_folder_set_messages(fs->tree, ino, info.uidvalidity,
							      (struct tree_msg_info *)l.msgs->data,
							      l.msgs->len, removed);
				queue_removed(fs, removed);
				f->uidvalidity = info.uidvalidity;
				f->fetched_at = now_us();
			}
			g_array_unref(l.msgs);
			g_string_chunk_free(l.strings);
			g_byte_array_unref(l.hdr.buf);
		} else {
			give_back(&ctx);
		}
		if (rc < 0)
			rc = imap_errno(&ctx, rc, err, e.wire);
	}
	req_ctx_clear(&ctx, req);
	tree_entry_clear(&e);
	g_mutex_unlock(&f->lock);
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

/* -- lookup, getattr, readdir ----------------------------------------------- */

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
	ep.ino = e.ino;
	ep.generation = 1;
	fill_attr(fs, &e, &ep.attr);
	ep.attr_timeout = cache_timeout(fs);
	ep.entry_timeout = cache_timeout(fs);
	if (fuse_reply_entry(req, &ep) != 0)
		tree_forget(fs->tree, e.ino, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);

	tree_forget(fs->tree, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++)
		tree_forget(fs->tree, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct stat st;
	int rc;

	(void)fi;
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
		rc = refresh_dir(fs, ino, req);
		if (rc == -EINTR || (rc < 0 && rc != -EIO)) {
			fuse_reply_err(req, -rc);
			return;
		}
		if (rc == -EIO) {
			/* Never listed and the server cannot be reached: say so. */
			struct folder_state *f = folder_state(fs, ino);
			struct tree_entry e = { 0 };

			if (!f->fetched_at && tree_get(fs->tree, ino, 0, &e) == 0 && e.selectable) {
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
	g_mutex_clear(&m->lock);
	g_free(m);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct open_msg *m;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		/* Messages are immutable (design §2): writing into one is EPERM. */
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = tree_get(fs->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.gone || e.kind != TREE_MESSAGE || !e.wire) {
		tree_entry_clear(&e);
		fuse_reply_err(req, rc < 0 ? -rc : e.kind == TREE_FOLDER ? EISDIR : ENOENT);
		return;
	}
	m = g_new0(struct open_msg, 1);
	g_mutex_init(&m->lock);
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
	tree_entry_clear(&e);
	fi->fh = (uint64_t)(uintptr_t)m;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) != 0)
		open_msg_free(m);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	open_msg_free((struct open_msg *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

struct range_sink {
	GByteArray *buf;
	guint64 limit;    /* bytes asked for; a server sending more is broken */
	gboolean matched; /* saw the literal of the body section */
	gboolean too_big;
};

static gboolean range_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct range_sink *r = ud;

	(void)seq;
	if (!g_str_has_prefix(section, "BODY[]"))
		return FALSE;
	if (size > r->limit) {
		r->too_big = TRUE;
		return TRUE; /* stream it away */
	}
	r->matched = TRUE;
	return TRUE;
}

static void range_chunk(void *ud, const void *data, size_t len)
{
	struct range_sink *r = ud;

	if (r->matched && !r->too_big && r->buf->len + len <= r->limit)
		g_byte_array_append(r->buf, data, (guint)len);
}

/* Fetch [off, off+len) of m from the server into the cache (or m->mem). */
static int fetch_range(struct mfs_imap_fs *fs, struct open_msg *m, guint64 off, guint64 len,
		       fuse_req_t req)
{
	struct req_ctx ctx;
	struct imap_session *s;
	struct imap_select_info info;
	struct range_sink r = { .buf = g_byte_array_new(), .limit = len };
	struct imap_handler h = { .literal_begin = range_begin, .literal_chunk = range_chunk,
				  .ud = &r };
	GError *err = NULL;
	int rc;

	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, m->wire, &s);
	if (rc < 0)
		goto out;
	if (g_strcmp0(imap_session_selected(s), m->wire) != 0 ||
	    imap_session_select_info(s)->readonly == fs->opts->mark_seen) {
		rc = imap_select(s, m->wire, !fs->opts->mark_seen, &info, &err);
		if (rc < 0) {
			give_back(&ctx);
			rc = imap_errno(&ctx, rc, err, m->wire);
			goto out;
		}
	}
	if (imap_session_select_info(s)->uidvalidity != m->uidvalidity) {
		/* Another generation of the mailbox: these are other messages. */
		give_back(&ctx);
		rc = -ESTALE;
		goto out;
	}
	rc = imap_run(s, &h, NULL, &err, "UID FETCH %u (BODY%s[]<%" G_GUINT64_FORMAT ".%" G_GUINT64_FORMAT ">)",
		      m->uid, fs->opts->mark_seen ? "" : ".PEEK", off, len);
	give_back(&ctx);
	if (rc < 0) {
		rc = imap_errno(&ctx, rc, err, m->wire);
		goto out;
	}
	if (r.too_big) {
		mfs_log_warn("%s sent more of UID %u than asked for; refused", m->wire, m->uid);
		rc = -EIO;
		goto out;
	}
	if (!r.matched) {
		/* No body at all: the message was expunged meanwhile. */
		rc = -ESTALE;
		goto out;
	}
	__atomic_fetch_add(&fs->bytes_fetched, r.buf->len, __ATOMIC_RELAXED);
	if (off == 0)
		__atomic_fetch_add(&fs->messages_fetched, 1, __ATOMIC_RELAXED);
	if (r.buf->len && mcache_entry_write(m->entry, off, r.buf->data, r.buf->len) < 0) {
		/* A full disk: serve this range from memory, never fail the reader. */
		if (m->mem)
			g_byte_array_unref(m->mem);
		m->mem = g_byte_array_ref(r.buf);
		m->mem_off = off;
	}
	if (r.buf->len < len) {
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
	int rc = 0;

	(void)ino;
	g_mutex_lock(&m->lock);
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
		rc = fetch_range(fs, m, pos, len, req);
		if (rc < 0)
			break;
		m->seq_end = pos + len;
		if (m->total_known && pos >= m->total)
			break;
	}
	g_mutex_unlock(&m->lock);
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
	g_string_append_printf(s, "messages_fetched: %" G_GUINT64_FORMAT "\n",
			       __atomic_load_n(&fs->messages_fetched, __ATOMIC_RELAXED));
	g_string_append_printf(s, "bytes_fetched: %" G_GUINT64_FORMAT "\n",
			       __atomic_load_n(&fs->bytes_fetched, __ATOMIC_RELAXED));
	g_string_append_printf(s, "bodies_from_cache: %" G_GUINT64_FORMAT "\n",
			       __atomic_load_n(&fs->bodies_from_cache, __ATOMIC_RELAXED));
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

/* The decoded headers of a message, fetched once and kept. */
static int message_headers(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino,
			   struct mail_headers *out)
{
	struct mail_headers *cached;
	struct tree_entry e = { 0 };
	struct req_ctx ctx;
	struct imap_session *s;
	struct imap_select_info info;
	GError *err = NULL;
	int rc;

	g_mutex_lock(&fs->lock);
	cached = g_hash_table_lookup(fs->headers, &ino);
	if (cached)
		copy_headers(out, cached);
	g_mutex_unlock(&fs->lock);
	if (cached)
		return 0;

	rc = tree_get(fs->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.gone || !e.wire) {
		tree_entry_clear(&e);
		return rc < 0 ? rc : -ENOENT;
	}
	req_ctx_init(&ctx, fs, req);
	rc = borrow(&ctx, e.wire, &s);
	if (rc == 0) {
		struct header_fetch hf = { .hdr.buf = g_byte_array_new(), .uid = e.uid,
					   .value = g_byte_array_new() };
		struct imap_handler h = { .untagged = on_header_fetch,
					  .literal_begin = header_begin,
					  .literal_chunk = header_chunk,
					  .ud = &hf };

		if (g_strcmp0(imap_session_selected(s), e.wire) != 0)
			rc = imap_select(s, e.wire, !fs->opts->mark_seen, &info, &err);
		if (rc == 0 && imap_session_select_info(s)->uidvalidity != e.uidvalidity)
			rc = -ESTALE;
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
			guint64 *key = g_new(guint64, 1);

			mail_headers_parse((const char *)hf.value->data, hf.value->len, h2);
			copy_headers(out, h2);
			*key = ino;
			g_mutex_lock(&fs->lock);
			if (g_hash_table_size(fs->headers) >= HEADERS_CACHE_MAX)
				g_hash_table_remove_all(fs->headers);
			g_hash_table_replace(fs->headers, key, h2);
			g_mutex_unlock(&fs->lock);
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
	int rc;

	if (ino == FUSE_ROOT_ID && strcmp(name, STATUS_XATTR) == 0) {
		g_autofree char *text = status_text(fs);

		reply_xattr_value(req, text, size);
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
	if (strcmp(name, "user.mail.subject") == 0)
		value = h.subject;
	else if (strcmp(name, "user.mail.from") == 0)
		value = h.from;
	else if (strcmp(name, "user.mail.to") == 0)
		value = h.to;
	else if (strcmp(name, "user.mail.date") == 0)
		value = h.date;
	else if (strcmp(name, "user.mail.message-id") == 0)
		value = h.message_id;
	else {
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

/* Writing arrives with issue 5 ("Writing" in design §2); until then the
   view is read-only, and says so. */
static void op_refuse_entry(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_refuse_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void op_refuse_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			     fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_refuse_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			     struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)attr;
	(void)to_set;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, EROFS);
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
	.mkdir = op_refuse_entry,
	.mknod = NULL,
	.rmdir = op_refuse_unlink,
	.unlink = op_refuse_unlink,
	.rename = op_refuse_rename,
	.create = op_refuse_create,
};

const struct fuse_lowlevel_ops *mfs_imap_fs_ops(void)
{
	return &ops;
}
