/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The IMAP view's changes: new files (create, write, flush, setattr), which
 * become messages when complete, the operations that change the
 * server (mkdir, rmdir, unlink, rename), which the account carries out, and
 * those a mailbox has no room for (symlink, mknod, link).
 *
 * A new file is complete at the last close of a file made under a visible
 * name (cp), or when a scratch name (rsync's and editors' temporaries,
 * model/append.h) is renamed to a visible one; it is then appended.
 */
#include "fs/fs_imap_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "model/append.h"

/* APPEND the copy c of staged file ino to folder; on success it is done and
   the kernel forgets the local name (the server's listing has the message). */
static int send_staged(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino,
		       const struct staged_copy *c, guint64 folder, const char *name)
{
	const struct new_message m = { c->fd, c->mtime, c->flags, c->name };
	struct lease l;
	int rc;

	fs_lease_begin(fs, req, &l);
	rc = imap_account_append(fs->account, &l, folder, &m);
	fs_lease_end(req, &l);
	if (rc == 0) {
		staging_appended(fs->staging, ino);
		notify_entry_gone(fs->notify, folder, 0, name);
	}
	return rc;
}

void fs_imap_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	struct tree_entry e = { 0 };
	guint64 ino;
	int rc;

	(void)mode;
	if (fs->opts->readonly) {
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = tree_get(fs->tree, parent, 0, &e);
	if (rc < 0 || e.kind != TREE_FOLDER || !e.selectable) {
		fs_reply_rc(req, rc < 0 ? rc : -EPERM);
		return;
	}
	rc = staging_create(fs->staging, parent, name, &ino, &ep.attr);
	if (rc < 0) {
		fs_reply_rc(req, rc);
		return;
	}
	ep.ino = ino;
	ep.generation = 1;
	/* Short timeouts: the name turns into a message with another inode. */
	ep.attr_timeout = 0;
	ep.entry_timeout = 0;
	fi->fh = 0;
	fi->direct_io = 1;
	if (fuse_reply_create(req, &ep, fi) != 0) {
		staging_release(fs->staging, ino);
		staging_forget(fs->staging, ino, 1);
	}
}

void fs_imap_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	gssize n;

	(void)fi;
	if (!staging_is_staged(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((guint64)off + size > APPEND_MAX) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	n = staging_pwrite(fs->staging, ino, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void fs_imap_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct staged_copy c = { .fd = -1 };
	int rc = 0;

	(void)fi;
	if (staging_is_staged(ino) && staging_copy_to_flush(fs->staging, ino, &c))
		rc = send_staged(fs, req, ino, &c, c.parent, c.name);
	staged_copy_clear(&c);
	fs_reply_rc(req, rc);
}

void fs_imap_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		     struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct stat out;
	int rc;

	(void)fi;
	if (staging_is_staged(ino)) {
		int what = ((to_set & FUSE_SET_ATTR_SIZE) ? STAGING_SET_SIZE : 0) |
			   ((to_set & FUSE_SET_ATTR_MTIME) ? STAGING_SET_MTIME : 0) |
			   ((to_set & FUSE_SET_ATTR_MTIME_NOW) ? STAGING_SET_MTIME_NOW : 0);

		rc = staging_setattr(fs->staging, ino, attr, what, &out);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
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
	fs_imap_fill_attr(fs, &e, &out);
	fuse_reply_attr(req, &out, fs_imap_timeout(fs));
}

void fs_imap_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct lease l;
	int rc;

	(void)mode;
	fs_lease_begin(fs, req, &l);
	rc = imap_account_mkdir(fs->account, &l, parent, name);
	fs_lease_end(req, &l);
	if (rc == 0) {
		rc = tree_lookup(fs->tree, parent, name, TRUE, 0, &e);
		if (rc == -ENOENT)
			rc = -EIO; /* created, yet the server does not list it */
	}
	if (rc < 0)
		fs_reply_rc(req, rc);
	else
		fs_imap_reply_entry(fs, req, &e);
}

void fs_imap_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct lease l;
	int rc;

	fs_lease_begin(fs, req, &l);
	rc = imap_account_rmdir(fs->account, &l, parent, name);
	fs_lease_end(req, &l);
	fs_reply_rc(req, rc);
}

void fs_imap_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct lease l;
	int rc;

	/* Local scratch: gone without a word to the server. */
	if (staging_unlink(fs->staging, parent, name)) {
		fuse_reply_err(req, 0);
		return;
	}
	fs_lease_begin(fs, req, &l);
	rc = imap_account_remove(fs->account, &l, parent, name);
	fs_lease_end(req, &l);
	fs_reply_rc(req, rc);
}

void fs_imap_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		    const char *newname, unsigned int flags)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct staged_copy c = { .fd = -1 };
	struct lease l;
	guint64 ino;
	int rc;

	if (flags & (RENAME_EXCHANGE | RENAME_WHITEOUT)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (staging_copy_by_name(fs->staging, parent, name, &ino, &c)) {
		/* rsync: a dot-named temporary becomes the visible file: complete. */
		rc = 0;
		if (!append_is_scratch_name(newname))
			rc = send_staged(fs, req, ino, &c, newparent, newname);
		else
			staging_rename(fs->staging, ino, newparent, newname);
		staged_copy_clear(&c);
		fs_reply_rc(req, rc);
		return;
	}
	fs_lease_begin(fs, req, &l);
	rc = imap_account_rename(fs->account, &l, parent, name, newparent, newname);
	fs_lease_end(req, &l);
	if (rc == 0)
		notify_entry_gone(fs->notify, newparent, 0, newname);
	fs_reply_rc(req, rc);
}

/* What a mailbox cannot hold: symlinks, FIFOs, sockets, device nodes, a
   second name for a message. EPERM, as link(2) documents for a file system
   without hard links; a regular file is made by open(2), not mknod(2).
   Unless nothing may change at all (readonly), as for create. */
static void refuse_kind(fuse_req_t req)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);

	fuse_reply_err(req, fs->opts->readonly ? EROFS : EPERM);
}

void fs_imap_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	refuse_kind(req);
}

void fs_imap_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	refuse_kind(req);
}

void fs_imap_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	refuse_kind(req);
}
