/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The IMAP view's changes: new files (create, write, flush, setattr), which
 * become messages when complete, the operations that change the
 * server (mkdir, rmdir, unlink, rename), which the account carries out, and
 * those a mailbox has no room for (symlink, mknod, link).
 *
 * A new file is complete at the last close (or fsync) of a file made under
 * a visible name (cp), or when a scratch name (rsync's and editors'
 * temporaries, model/append.h) is renamed to a visible one; it is then
 * appended. A message opened for writing, or a file renamed over one, is
 * written back as a replacement: APPEND with the old flags and INTERNALDATE,
 * then the old message goes as rm removes it (mailfs(1), WRITING).
 */
#include "fs/fs_imap_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "model/append.h"
#include "util/log.h"

/* APPEND the copy c of staged file ino to folder as `name`, replacing
   message `replaces` (0: none) and what an earlier APPEND of it made; on
   success it is done and the kernel forgets the name (the server's listing
   has the message). */
static int send_staged(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino,
		       const struct staged_copy *c, guint64 folder, const char *name,
		       guint64 replaces)
{
	const struct new_message m = { .fd = c->fd,
				       .mtime = c->mtime,
				       .dated = c->dated,
				       .flags = c->flags,
				       .name = c->name,
				       .own_uid = c->own_uid,
				       .own_uidvalidity = c->own_uidvalidity,
				       .replaces = replaces };
	struct appended out = { 0 };
	struct lease l;
	int rc;

	fs_lease_begin(fs, req, &l);
	rc = imap_account_append(fs->account, &l, folder, &m, &out);
	fs_lease_end(req, &l);
	if (rc == 0) {
		const struct staged_sent sent = { out.uid,   out.uidvalidity, out.flags,
						  out.mtime, folder,	      name };

		staging_appended(fs->staging, ino, &sent);
		notify_entry_gone(fs->notify, folder, 0, name);
	}
	g_free(out.flags);
	return rc;
}

/* Undo what an earlier APPEND of a file made (its rename failed): the
   server is as before the tool ran. */
static void take_back(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino,
		      const struct staged_copy *c)
{
	struct tree_entry f = { 0 };
	struct lease l;

	if (c->own_uid && tree_get(fs->tree, c->parent, TREE_WANT_WIRE, &f) == 0 && f.wire) {
		fs_lease_begin(fs, req, &l);
		if (imap_account_expunge(fs->account, &l, f.wire, c->own_uidvalidity,
					 c->own_uid) < 0)
			mfs_log_warn("%s: the copy appended at its close (UID %u) stays", c->name,
				     c->own_uid);
		fs_lease_end(req, &l);
	}
	tree_entry_clear(&f);
	staging_drop(fs->staging, ino);
}

void fs_imap_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	struct tree_entry e = { 0 };
	guint64 ino;
	int rc;

	if (fs_hidden_refuse(req, parent, name))
		return;
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

	guint64 sino = staging_is_staged(ino) ? ino : (staging_is_staged(fi->fh) ? fi->fh : 0);

	if (!sino) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((guint64)off + size > APPEND_MAX) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	n = staging_pwrite(fs->staging, sino, buf, size, off);
	if (n == -EINVAL)
		mfs_log_info("refusing a write holding a NUL byte: IMAP cannot carry it");
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* Send staged file sino if it was written (at its last close, or any time
   for an fsync). */
static int send_if_written(struct mfs_imap_fs *fs, fuse_req_t req, guint64 sino,
			   gboolean at_last_close)
{
	struct staged_copy c = { .fd = -1 };
	int rc = 0;

	if (sino && staging_copy_to_flush(fs->staging, sino, at_last_close, &c))
		rc = send_staged(fs, req, sino, &c, c.parent, c.name, c.replaces);
	else if (sino && staging_refused(fs->staging, sino))
		rc = -EINVAL; /* a write was refused: the rest is not the file either */
	staged_copy_clear(&c);
	return rc;
}

void fs_imap_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	guint64 sino = staging_is_staged(ino) ? ino : (staging_is_staged(fi->fh) ? fi->fh : 0);

	fs_reply_rc(req, send_if_written(fs, req, sino, TRUE));
}

void fs_imap_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	guint64 sino = staging_is_staged(ino) ? ino : (staging_is_staged(fi->fh) ? fi->fh : 0);

	(void)datasync;
	/* On the server now: a refusal reaches fsync (shells ignore close). */
	fs_reply_rc(req, send_if_written(fs, req, sino, FALSE));
}

void fs_imap_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		     struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	struct stat out;
	int rc;

	guint64 sino = staging_is_staged(ino) ? ino : fs_imap_staged_of(fs, ino, fi);

	if (fs_hidden_refuse(req, ino, NULL))
		return;
	if (sino) {
		int what = ((to_set & FUSE_SET_ATTR_SIZE) ? STAGING_SET_SIZE : 0) |
			   ((to_set & FUSE_SET_ATTR_MTIME) ? STAGING_SET_MTIME : 0) |
			   ((to_set & FUSE_SET_ATTR_MTIME_NOW) ? STAGING_SET_MTIME_NOW : 0);

		rc = staging_setattr(fs->staging, sino, attr, what, &out);
		out.st_ino = ino;
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

	if (fs_hidden_refuse(req, parent, name))
		return;
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

	if (fs_hidden_refuse(req, parent, name))
		return;
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

	if (fs_hidden_refuse(req, parent, name))
		return;
	/* Local scratch, or an editor's backup name: gone without a word to
	   the server. */
	if (staging_unlink(fs->staging, parent, name) ||
	    staging_alias(fs->staging, parent, name, TRUE)) {
		fuse_reply_err(req, 0);
		return;
	}
	fs_lease_begin(fs, req, &l);
	rc = imap_account_remove(fs->account, &l, parent, name);
	fs_lease_end(req, &l);
	fs_reply_rc(req, rc);
}

/* rename of staged file ino (copy c): rsync's dot-named temporary becoming
   the visible file is complete; renamed over a message (sed -i, perl -pi,
   editors writing a temporary) it replaces that message. A file appended
   a moment ago at its close (sed's visible temporary) replaces the message
   it is renamed over; if that fails, what its close appended is taken
   back, so the tool's error leaves the folder as it was. */
static int rename_staged(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino,
			 const struct staged_copy *c, guint64 newparent, const char *newname)
{
	struct tree_entry t = { 0 };
	guint64 replaces = 0;
	int rc;

	if (tree_lookup(fs->tree, newparent, newname, FALSE, 0, &t) == 0) {
		if (t.kind != TREE_MESSAGE)
			return -EISDIR;
		/* A file the writer dated (rsync -a, cp -p) is a copy of a message
		   from elsewhere, not an edit of this one (a restore into another
		   account meets names that are that account's UIDs): it goes in
		   beside it, unless already there, and this message stays. */
		if (!c->dated)
			replaces = t.ino;
	}
	if (append_is_scratch_name(newname) && !replaces && !c->sent) {
		staging_rename(fs->staging, ino, newparent, newname);
		return 0;
	}
	if (staging_refused(fs->staging, ino))
		return -EINVAL;
	if (c->sent && newparent != c->parent)
		return -EXDEV; /* its message is in the other folder */
	if (c->sent && !replaces) {
		/* On the server already: only the local name changes. */
		staging_rename(fs->staging, ino, newparent, newname);
		return 0;
	}
	rc = send_staged(fs, req, ino, c, newparent, newname, replaces);
	if (rc < 0 && c->sent)
		take_back(fs, req, ino, c);
	return rc;
}

/* An editor's backup by rename (vim with backupcopy=no or auto, emacs):
   x.eml -> x.eml~ keeps the message on the server, the name x.eml~ only
   remembered; the editor then writes x.eml, which replaces the message
   (flags and INTERNALDATE kept), and unlinks x.eml~ or, when its write
   failed, renames it back: both answered locally. TRUE when handled (*rc). */
static gboolean rename_backup(struct mfs_imap_fs *fs, guint64 parent, const char *name,
			      guint64 newparent, const char *newname, int *rc)
{
	struct tree_entry e = { 0 };
	guint64 origin = staging_alias(fs->staging, parent, name, FALSE);

	if (origin) {
		*rc = -EPERM;
		if (tree_lookup(fs->tree, newparent, newname, FALSE, 0, &e) == 0 && e.ino == origin) {
			staging_alias(fs->staging, parent, name, TRUE);
			*rc = 0;
		}
		return TRUE;
	}
	if (fs->opts->readonly || parent != newparent || !append_is_scratch_name(newname) ||
	    tree_lookup(fs->tree, parent, name, FALSE, 0, &e) != 0 || e.kind != TREE_MESSAGE)
		return FALSE;
	staging_create_alias(fs->staging, e.ino, parent, newname);
	*rc = 0;
	return TRUE;
}

void fs_imap_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		    const char *newname, unsigned int flags)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct staged_copy c = { .fd = -1 };
	struct lease l;
	guint64 ino;
	int rc;

	if (fs_hidden_refuse(req, parent, name) || fs_hidden_refuse(req, newparent, newname))
		return;
	if (flags & (RENAME_EXCHANGE | RENAME_WHITEOUT)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (staging_copy_by_name(fs->staging, parent, name, &ino, &c)) {
		rc = rename_staged(fs, req, ino, &c, newparent, newname);
		staged_copy_clear(&c);
		fs_reply_rc(req, rc);
		return;
	}
	if (rename_backup(fs, parent, name, newparent, newname, &rc)) {
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

/* What a mailbox cannot hold: symlinks, FIFOs, sockets, device nodes (and
   a second name for a message, unless the server names messages across
   folders: fs_imap_link). EPERM, as link(2) documents for a file system
   without hard links; a regular file is made by open(2), not mknod(2).
   Unless nothing may change at all (readonly), as for create. */
static void refuse_kind(fuse_req_t req)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);

	fuse_reply_err(req, fs->opts->readonly ? EROFS : EPERM);
}

void fs_imap_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (fs_hidden_refuse(req, parent, name))
		return;
	(void)link;
	(void)parent;
	(void)name;
	refuse_kind(req);
}

void fs_imap_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (fs_hidden_refuse(req, parent, name))
		return;
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	refuse_kind(req);
}

/* ln of a message into another folder: a server-side copy, the same inode
   where the server keeps the message's identity (mailfs(1), Links). The
   name is the folder's for the copy's UID: the kernel's dentry for the
   name asked for is dropped at once, as a new file's is. */
void fs_imap_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct tree_entry e = { 0 };
	guint64 folder;
	guint32 uid, uidvalidity;
	struct lease l;
	int rc;

	if (fs_hidden_refuse(req, newparent, newname))
		return;
	fs_lease_begin(fs, req, &l);
	/* A file written a moment ago (rsync -H links a restored file's other
	   names to it): the message its APPEND made. A file not sent, a
	   .search or .parts node: no object, EPERM below. */
	if (staging_sent_message(fs->staging, ino, &folder, &uid, &uidvalidity) &&
	    imap_account_refresh_dir(fs->account, &l, folder) != -EINTR &&
	    tree_folder_message(fs->tree, folder, uid, FALSE, 0, &e) == 0 &&
	    e.uidvalidity == uidvalidity)
		ino = e.ino;
	tree_entry_clear(&e);
	rc = imap_account_link(fs->account, &l, ino, newparent, &e);
	fs_lease_end(req, &l);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_imap_reply_entry(fs, req, &e);
	if (strcmp(e.name, newname) != 0)
		notify_entry_gone(fs->notify, newparent, 0, newname);
	notify_inode_changed(fs->notify, ino);
	tree_entry_clear(&e);
}
