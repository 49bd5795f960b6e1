/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The IMAP view's reading: open, read and release of messages (and of new
   files not yet appended). */
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

void fs_imap_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct body_reader *r;
	struct lease l;
	gboolean direct_io = FALSE;
	int rc = 0;

	if (staging_is_staged(ino)) {
		open_staged(fs, req, ino, fi);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		/* Messages are immutable: writing into one is EPERM (a new file
		   is a new message). */
		fuse_reply_err(req, EPERM);
		return;
	}
	fs_lease_begin(fs, req, &l);
	r = body_open(fs->account, &l, ino, &direct_io, &rc);
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
}

void fs_imap_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct body_reader *r = (struct body_reader *)(uintptr_t)fi->fh;

	if (staging_is_staged(ino)) {
		staging_release(fs->staging, ino);
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
	mfs_mutex_unlock(&fs->opens_lock);
}

void fs_imap_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	g_autofree char *buf = g_malloc(size);
	struct lease l;
	gssize n;

	if (staging_is_staged(ino)) {
		n = staging_pread(fs->staging, ino, buf, size, off);
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
