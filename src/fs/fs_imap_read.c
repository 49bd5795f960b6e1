/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The IMAP view's reading: open, read and release of messages (and of new
   files not yet appended); the open of a message for writing, which gives
   it a local copy (model/staging.h) that replaces it once written. */
#include "fs/fs_imap_internal.h"

#include <errno.h>
#include <fcntl.h>

#include "account/body.h"

static void open_staged(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	int rc = staging_open(fs->staging, ino, (fi->flags & O_TRUNC) != 0);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = 0;
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

/* The whole message ino (size bytes) into a new array, or NULL and *rc. */
static GByteArray *read_message(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino,
				guint64 size, int *rc)
{
	g_autoptr(GByteArray) data = NULL;
	struct body_reader *r;
	struct lease l;
	gboolean direct_io = FALSE;

	if (size > APPEND_MAX) {
		*rc = -EFBIG;
		return NULL;
	}
	data = g_byte_array_sized_new((guint)size);
	fs_lease_begin(fs, req, &l);
	r = body_open(fs->account, &l, ino, &direct_io, NULL, rc);
	while (r) {
		guint8 buf[65536];
		gssize n = body_read(r, &l, (char *)buf, sizeof(buf), data->len);

		if (n < 0)
			*rc = (int)n;
		if (n <= 0)
			break;
		if ((guint64)data->len + (guint64)n > APPEND_MAX) {
			*rc = -EFBIG;
			break;
		}
		g_byte_array_append(data, buf, (guint)n);
	}
	fs_lease_end(req, &l);
	if (r)
		body_close(r);
	return *rc < 0 || !r ? NULL : g_steal_pointer(&data);
}

/* A message opened for writing: a local copy (its bytes, or none when
   truncated) that replaces the message once written (mailfs(1), WRITING). */
static void open_for_write(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	gboolean trunc = (fi->flags & O_TRUNC) != 0;
	struct tree_entry e = { 0 };
	g_autoptr(GByteArray) data = NULL;
	guint64 sino;
	int rc = 0;

	if (fs->opts->readonly) {
		fuse_reply_err(req, EROFS);
		return;
	}
	sino = staging_find_replacement(fs->staging, ino);
	if (sino && staging_open(fs->staging, sino, trunc) == 0)
		goto opened;
	rc = tree_get(fs->tree, ino, TREE_WANT_NAME, &e);
	if (rc == 0 && (e.gone || e.kind != TREE_MESSAGE))
		rc = e.gone ? -ENOENT : -EISDIR;
	if (rc == 0 && !trunc)
		data = read_message(fs, req, ino, e.size, &rc);
	if (rc == 0)
		rc = staging_create_replacement(fs->staging, ino, e.parent, e.name,
						data ? data->data : NULL, data ? data->len : 0,
						&sino);
	if (rc == 0 && trunc && e.size > 0) {
		struct stat in = { 0 }, out;

		/* Truncated: a change even when nothing is written after. */
		rc = staging_setattr(fs->staging, sino, &in, STAGING_SET_SIZE, &out);
	}
	tree_entry_clear(&e);
	if (rc < 0) {
		if (sino) {
			staging_release(fs->staging, sino);
			staging_drop(fs->staging, sino);
		}
		fuse_reply_err(req, -rc);
		return;
	}
opened:
	fi->fh = sino;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) != 0)
		staging_release(fs->staging, sino);
}

void fs_imap_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct body_reader *r;
	struct body_arrival *later = NULL;
	struct lease l;
	gboolean direct_io = FALSE;
	int rc = 0;

	if (staging_is_staged(ino)) {
		open_staged(fs, req, ino, fi);
		return;
	}
	if (parts_is_node(ino)) {
		fs_parts_open(req, ino, fi);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		open_for_write(fs, req, ino, fi);
		return;
	}
	fs_lease_begin(fs, req, &l);
	r = body_open(fs->account, &l, ino, &direct_io, &later, &rc);
	fs_lease_end(req, &l);
	if (!r) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)r;
	fi->direct_io = direct_io;
	fi->keep_cache = fi->direct_io ? 0 : 1;
	/* A message is read-only: its close has nothing to flush, so the
	   kernel need not ask (one request fewer per file for grep -r). */
	fi->noflush = 1;
	mfs_mutex_lock(&fs->opens_lock);
	g_hash_table_add(fs->opens, r);
	mfs_mutex_unlock(&fs->opens_lock);
	if (fuse_reply_open(req, fi) != 0) {
		mfs_mutex_lock(&fs->opens_lock);
		g_hash_table_remove(fs->opens, r);
		mfs_mutex_unlock(&fs->opens_lock);
		body_close(r);
	}
	/* After the answer: the reader goes on while the read-ahead policy
	   does its bookkeeping (r may be released already; later is apart). */
	body_arrival_send(later);
}

void fs_imap_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct body_reader *r = (struct body_reader *)(uintptr_t)fi->fh;

	if (parts_is_node(ino)) {
		fs_parts_release(req, ino, fi);
		return;
	}
	if (staging_is_staged(ino) || staging_is_staged(fi->fh)) {
		staging_release(fs->staging, staging_is_staged(ino) ? ino : fi->fh);
	} else {
		mfs_mutex_lock(&fs->opens_lock);
		g_hash_table_remove(fs->opens, r);
		mfs_mutex_unlock(&fs->opens_lock);
		body_close(r);
	}
	fuse_reply_err(req, 0);
}

void fs_imap_close_all(struct mfs_imap_fs *fs)
{
	GHashTableIter it;
	gpointer r;

	/* An unmount does not release files still open. */
	mfs_mutex_lock(&fs->opens_lock);
	g_hash_table_iter_init(&it, fs->opens);
	while (g_hash_table_iter_next(&it, &r, NULL))
		body_close(r);
	g_hash_table_remove_all(fs->opens);
	g_hash_table_iter_init(&it, fs->part_opens);
	while (g_hash_table_iter_next(&it, &r, NULL))
		fs_parts_free_open(r);
	g_hash_table_remove_all(fs->part_opens);
	mfs_mutex_unlock(&fs->opens_lock);
}

void fs_imap_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	g_autofree char *buf = g_malloc(size);
	struct lease l;
	gssize n;

	if (parts_is_node(ino)) {
		n = fs_parts_pread(fi, buf, size, off);
	} else if (staging_is_staged(ino) || staging_is_staged(fi->fh)) {
		n = staging_pread(fs->staging, staging_is_staged(ino) ? ino : fi->fh, buf, size,
				  off);
	} else {
		fs_lease_begin(fs, req, &l);
		n = body_read((struct body_reader *)(uintptr_t)fi->fh, &l, buf, size, (guint64)off);
		fs_lease_end(req, &l);
	}
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}
