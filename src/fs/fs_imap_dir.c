/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The IMAP view's names and attributes: lookup, forget, getattr, readdir, statfs. */
#include "fs/fs_imap_internal.h"

#include <errno.h>
#include <string.h>

void fs_imap_fill_attr(const struct mfs_imap_fs *fs, const struct tree_entry *e,
		       struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	if (e->kind == TREE_FOLDER) {
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = e->gone ? 0 : 2;
		st->st_size = 4096;
		st->st_blocks = 8;
		/* The newest message's arrival (mailfs(1), Attributes): stable
		   while the folder does not change, as rsync and tar want. */
		st->st_mtime = e->mtime;
		st->st_ctime = e->mtime;
		st->st_atime = e->mtime;
	} else {
		st->st_mode = S_IFREG | 0600;
		/* Gone from the server: unlinked, as a local file removed while
		   open. A message in several folders: its names (mailfs(1), Links). */
		st->st_nlink = e->gone ? 0 : MAX(e->nlink, 1);
		st->st_size = (off_t)e->size;
		st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
		st->st_mtime = e->mtime;
		st->st_ctime = e->mtime;
		st->st_atime = e->mtime;
	}
	st->st_blksize = 4096;
}

/* A folder whose mtime is not known yet, and that no stat failed to list. */
static gboolean must_list(const struct tree_entry *e)
{
	return e->kind == TREE_FOLDER && e->selectable && !e->listed && !e->list_failed && !e->gone;
}

/* How long the kernel may keep e's attributes: not at all for a folder
   whose messages are not known yet, whose mtime is not known either; the
   getattr that follows lists it (fs_imap_getattr). */
static double attr_timeout(const struct mfs_imap_fs *fs, const struct tree_entry *e)
{
	return must_list(e) ? 0 : fs_imap_timeout(fs);
}

void fs_imap_reply_entry(struct mfs_imap_fs *fs, fuse_req_t req, const struct tree_entry *e)
{
	struct fuse_entry_param ep = { 0 };

	ep.ino = e->ino;
	ep.generation = 1;
	fs_imap_fill_attr(fs, e, &ep.attr);
	ep.attr_timeout = attr_timeout(fs, e);
	ep.entry_timeout = fs_imap_timeout(fs);
	if (fuse_reply_entry(req, &ep) != 0)
		tree_forget(fs->tree, e->ino, 1);
}

gboolean fs_hidden(fuse_ino_t parent, const char *name)
{
	return search_is_node(parent) || parts_is_node(parent) ||
	       (name && strcmp(name, SEARCH_DIR_NAME) == 0) ||
	       (name && parent == FUSE_ROOT_ID && strcmp(name, PARTS_DIR_NAME) == 0);
}

gboolean fs_hidden_refuse(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!fs_hidden(parent, name))
		return FALSE;
	fuse_reply_err(req, EROFS);
	return TRUE;
}

void fs_imap_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	struct tree_entry e = { 0 };
	struct lease l;
	int rc;

	if (search_is_node(parent) || strcmp(name, SEARCH_DIR_NAME) == 0) {
		fs_search_lookup(req, parent, name);
		return;
	}
	if (fs_hidden(parent, name)) {
		fs_parts_lookup(req, parent, name);
		return;
	}
	fs_lease_begin(fs, req, &l);
	rc = imap_account_refresh_dir(fs->account, &l, parent);
	fs_lease_end(req, &l);
	if (rc == -EINTR) {
		fuse_reply_err(req, EINTR);
		return;
	}
	rc = tree_lookup(fs->tree, parent, name, TRUE, 0, &e);
	if (rc == -ENOENT) {
		if (staging_lookup(fs->staging, parent, name, &ep.attr)) {
			ep.ino = ep.attr.st_ino;
			ep.generation = 1;
			fuse_reply_entry(req, &ep);
			return;
		}
		/* A negative entry, cached like the listing it comes from. */
		ep.ino = 0;
		ep.entry_timeout = fs_imap_timeout(fs);
		fuse_reply_entry(req, &ep);
		return;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_imap_reply_entry(fs, req, &e);
}

static void forget_one(struct mfs_imap_fs *fs, guint64 ino, guint64 n)
{
	/* Search and parts nodes live as long as the mount. */
	if (search_is_node(ino) || parts_is_node(ino))
		return;
	if (staging_is_staged(ino))
		staging_forget(fs->staging, ino, n);
	else
		tree_forget(fs->tree, ino, n);
}

void fs_imap_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

void fs_imap_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* A stat of a folder never listed, answered as soon as its mtime is known. */
struct stat_answer {
	struct mfs_imap_fs *fs;
	fuse_req_t req;
	fuse_ino_t ino;
	struct lease *l;
	gboolean answered;
};

/* The server named the newest arrival before the listing: the stat is
   answered now, with what every later one says, and the listing goes on
   on this thread (imap_account_list_for_stat). */
static void answer_stat(void *ud)
{
	struct stat_answer *sa = ud;
	struct tree_entry e = { 0 };
	struct stat st;

	if (tree_get(sa->fs->tree, sa->ino, 0, &e) < 0 || must_list(&e))
		return;
	fs_lease_let_go(sa->req, sa->l);
	fs_imap_fill_attr(sa->fs, &e, &st);
	fuse_reply_attr(sa->req, &st, attr_timeout(sa->fs, &e));
	sa->answered = TRUE;
}

void fs_imap_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct stat st;
	int rc;

	guint64 sino = staging_is_staged(ino) ? ino : fs_imap_staged_of(fs, ino, fi);

	if (search_is_node(ino)) {
		fs_search_getattr(req, ino);
		return;
	}
	if (parts_is_node(ino)) {
		fs_parts_getattr(req, ino);
		return;
	}
	if (sino) {
		rc = staging_getattr(fs->staging, sino, &st);
		st.st_ino = ino; /* a message being written keeps its inode */
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_attr(req, &st, 0);
		return;
	}
	/*
	 * A node that left the tree (expunged, its folder deleted or of another
	 * UIDVALIDITY now) answers with its last attributes, st_nlink 0, for as
	 * long as the kernel holds it: a file open on it holds it, and the
	 * kernel asks again before reads once the attributes expired. ENOENT
	 * here would fail those reads and fstat of the open file; its name is
	 * gone already (lookup answers ENOENT), so nothing new reaches it.
	 */
	rc = tree_get(fs->tree, ino, 0, &e);
	if (rc == 0 && must_list(&e)) {
		/* Its mtime is its newest message's: list it first, as opening it
		   would, so the first stat says what every later one says. Failing
		   (offline, a server refusing that folder), it answers mtime 0 and
		   is not tried again by a stat: a readdir lists it. */
		struct lease l;
		struct stat_answer sa = { .fs = fs, .req = req, .ino = ino, .l = &l };

		imap_account_folder_stat(fs->account, ino);
		fs_lease_begin(fs, req, &l);
		rc = imap_account_list_for_stat(fs->account, &l, ino, answer_stat, &sa);
		fs_lease_end(req, &l);
		if (sa.answered)
			return;
		if (rc == -EINTR) {
			fuse_reply_err(req, EINTR);
			return;
		}
		if (rc < 0)
			tree_folder_note_list_failed(fs->tree, ino);
		rc = tree_get(fs->tree, ino, 0, &e);
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_imap_fill_attr(fs, &e, &st);
	fuse_reply_attr(req, &st, attr_timeout(fs, &e));
}

gboolean fs_dirbuf_add(struct dirbuf *d, const char *name, const struct stat *attr, gboolean ref,
		       double attr_timeout, guint64 next_off)
{
	size_t room = d->size - d->used;
	size_t need;

	if (d->plus) {
		struct fuse_entry_param ep = { 0 };

		ep.attr = *attr;
		/* An entry that carries no lookup reference ("." and ".."): inode 0
		   tells the kernel. */
		ep.ino = ref ? attr->st_ino : 0;
		ep.generation = 1;
		ep.attr_timeout = attr_timeout;
		ep.entry_timeout = fs_imap_timeout(d->fs);
		need = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &ep,
					      (off_t)next_off);
	} else {
		need = fuse_add_direntry(d->req, d->buf + d->used, room, name, attr,
					 (off_t)next_off);
	}
	if (need > room)
		return FALSE;
	d->used += need;
	return TRUE;
}

static gboolean add_dirent(void *ud, const char *name, const struct tree_entry *e,
			   guint64 next_off)
{
	struct dirbuf *d = ud;
	gboolean dot = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
	struct stat st;

	fs_imap_fill_attr(d->fs, e, &st);
	return fs_dirbuf_add(d, name, &st, !dot, attr_timeout(d->fs, e), next_off);
}

/* How long a readdir waits for a streamed listing between looks at
   whether it was interrupted. */
#define STREAM_WAIT_US (100 * 1000)

/* Whether a readdir that gave entries of ino (or waited for them) finds
   it unlisted: its first listing failed half way and was taken back. */
static gboolean listing_taken_back(struct mfs_imap_fs *fs, fuse_ino_t ino)
{
	struct tree_entry e = { 0 };

	return tree_get(fs->tree, ino, 0, &e) == 0 && e.kind == TREE_FOLDER && e.selectable &&
	       !e.gone && !e.listed;
}

/*
 * The entries of ino from off into d. A folder whose first listing is
 * arriving gives what came; when nothing after off came yet, the readdir
 * waits for more (an empty answer would end it). A listing that failed
 * half way was taken back: the folder is listed again (the lister's own
 * second try, or this readdir's), and the readdir goes on after off, as
 * offsets are UIDs; if that fails too, -EIO, not a short directory.
 */
static int next_entries(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino, guint64 off,
			struct dirbuf *d)
{
	gboolean relisted = FALSE;
	struct lease l;
	int rc;

	/* At offset 0 "." is always given: an empty answer is a continuation's. */
	for (;;) {
		rc = tree_readdir(fs->tree, ino, off, d->plus, add_dirent, d);
		if (rc < 0 || d->used > 0)
			break;
		if (rc == 0) {
			if (!listing_taken_back(fs, ino))
				break;
			if (relisted)
				return -EIO;
			relisted = TRUE;
			fs_lease_begin(fs, req, &l);
			rc = imap_account_refresh_folder(fs->account, &l, ino, FALSE);
			fs_lease_end(req, &l);
			if (rc < 0)
				return rc == -EINTR ? rc : -EIO;
			continue;
		}
		if (fuse_req_interrupted(req))
			return -EINTR;
		tree_folder_stream_wait(fs->tree, ino, off, g_get_monotonic_time() + STREAM_WAIT_US);
	}
	return rc < 0 ? rc : 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct dirbuf d = { .fs = fs, .req = req, .size = size, .plus = plus };
	int rc;

	if (search_is_node(ino)) {
		fs_search_readdir(req, ino, size, off, plus);
		return;
	}
	if (parts_is_node(ino)) {
		fs_parts_readdir(req, ino, size, off, plus);
		return;
	}
	if (off == 0) {
		struct lease l;

		fs_lease_begin(fs, req, &l);
		rc = imap_account_read_dir(fs->account, &l, ino);
		fs_lease_end(req, &l);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	d.buf = g_malloc(size);
	rc = next_entries(fs, req, ino, (guint64)off, &d);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	g_free(d.buf);
}

void fs_imap_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, FALSE);
}

void fs_imap_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, TRUE);
}

void fs_imap_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct mcache_stats cs;

	(void)ino;
	mcache_get_stats(fs->cache, &cs);
	fs_reply_statfs(req, mcache_free_space(fs->cache), cs.max_bytes);
}
