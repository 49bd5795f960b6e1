/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fs/fs_pop3.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "account/pop3_account.h"
#include "fs/fs_common.h"
#include "fs/notify.h"

/* readdir offsets: 1 after ".", 2 after "..", ino + DIR_OFF_BASE after a message. */
#define DIR_OFF_BASE 2

G_STATIC_ASSERT(POP3_ACCOUNT_ROOT_INO == FUSE_ROOT_ID);

struct mfs_pop3_fs {
	/* Set by mfs_pop3_fs_new() and never changed. */
	const struct mfs_options *opts;
	struct pop3_account *acct;
	uid_t uid;
	gid_t gid;
	/* Set by attach before the account's threads start, cleared by detach
	   after they stopped; the account calls back only in between. */
	struct notify *notify;
};

struct mfs_pop3_fs *mfs_pop3_fs_new(const struct mfs_options *opts,
				    const struct pop3_session_opts *so, GError **err)
{
	struct pop3_account *acct = pop3_account_new(opts, so, err);
	struct mfs_pop3_fs *fs;

	if (!acct)
		return NULL;
	fs = g_new0(struct mfs_pop3_fs, 1);
	fs->opts = opts;
	fs->acct = acct;
	fs->uid = getuid();
	fs->gid = getgid();
	return fs;
}

gboolean mfs_pop3_fs_start(struct mfs_pop3_fs *fs, GError **err)
{
	return pop3_account_start(fs->acct, err);
}

void mfs_pop3_fs_free(struct mfs_pop3_fs *fs)
{
	if (!fs)
		return;
	pop3_account_free(fs->acct);
	g_free(fs);
}

static void on_entry_gone(void *ud, guint64 ino, const char *name)
{
	struct mfs_pop3_fs *fs = ud;

	notify_entry_gone(fs->notify, FUSE_ROOT_ID, ino, name);
}

static void on_inode_changed(void *ud, guint64 ino)
{
	struct mfs_pop3_fs *fs = ud;

	notify_inode_changed(fs->notify, ino);
}

void mfs_pop3_fs_attach(struct mfs_pop3_fs *fs, struct fuse_session *se)
{
	const struct pop3_account_notify n = { on_entry_gone, on_inode_changed, fs };

	fs->notify = notify_start(se);
	pop3_account_attach(fs->acct, &n);
}

void mfs_pop3_fs_detach(struct mfs_pop3_fs *fs)
{
	pop3_account_detach(fs->acct);
	g_clear_pointer(&fs->notify, notify_stop);
}

/* -- attributes and lookup ------------------------------------------------------------ */

static void root_attr(const struct mfs_pop3_fs *fs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0700;
	st->st_nlink = 2;
	st->st_size = 4096;
	st->st_blocks = 8;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = pop3_account_mount_time(fs->acct);
	st->st_blksize = 4096;
}

static void msg_attr(const struct mfs_pop3_fs *fs, const struct pop3_entry *m, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = m->ino;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = m->nlink;
	st->st_size = (off_t)m->size;
	st->st_blocks = (blkcnt_t)((m->size + 511) / 512);
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = m->mtime;
	st->st_blksize = 4096;
}

static double entry_timeout(const struct mfs_pop3_fs *fs)
{
	return fs->opts->poll;
}

static void entry_param(const struct mfs_pop3_fs *fs, const struct pop3_entry *m,
			struct fuse_entry_param *ep)
{
	msg_attr(fs, m, &ep->attr);
	ep->ino = m->ino;
	ep->generation = 1;
	ep->attr_timeout = 1.0;
	ep->entry_timeout = entry_timeout(fs);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	struct pop3_entry m;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!pop3_account_lookup(fs->acct, name, &m)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	entry_param(fs, &m, &ep);
	fuse_reply_entry(req, &ep);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* Messages stay in memory for the mount: inode numbers stay stable. */
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct pop3_entry m;
	struct stat st;

	(void)fi;
	if (ino == FUSE_ROOT_ID) {
		root_attr(fs, &st);
		fuse_reply_attr(req, &st, 1.0);
		return;
	}
	if (!pop3_account_getattr(fs->acct, ino, &m)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	msg_attr(fs, &m, &st);
	fuse_reply_attr(req, &st, 1.0);
}

/* -- readdir ---------------------------------------------------------------------------- */

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	g_autoptr(GArray) list = NULL;
	char *buf;
	size_t used = 0;

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (off == 0)
		pop3_account_refresh(fs->acct);
	list = pop3_account_listing(fs->acct, (gint64)off - DIR_OFF_BASE);
	buf = g_malloc(size);
	for (guint i = 0; i < 2 + list->len; i++) {
		const char *name;
		struct fuse_entry_param ep = { 0 };
		off_t next;
		size_t need;

		if (i < 2) {
			if (off > (off_t)i)
				continue;
			name = i == 0 ? "." : "..";
			root_attr(fs, &ep.attr);
			ep.ino = 0; /* no lookup reference for "." and ".." */
			next = (off_t)i + 1;
		} else {
			const struct pop3_entry *m = &g_array_index(list, struct pop3_entry, i - 2);

			name = m->name;
			entry_param(fs, m, &ep);
			next = (off_t)(m->ino + DIR_OFF_BASE);
		}
		if (plus) {
			need = fuse_add_direntry_plus(req, buf + used, size - used, name, &ep,
						      next);
		} else {
			if (i < 2)
				ep.attr.st_ino = FUSE_ROOT_ID;
			need = fuse_add_direntry(req, buf + used, size - used, name, &ep.attr,
						 next);
		}
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	g_free(buf);
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

/* -- what the spool refuses --------------------------------------------------------------- */

/* The spool only gives: nothing is written into it, made in it or renamed
   within it (rm takes a message, as a reader does). EPERM, not the ENOSYS
   libfuse answers for an operation not in the table; EROFS when readonly. */
static void refuse_write(fuse_req_t req)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);

	fuse_reply_err(req, fs->opts->readonly ? EROFS : EPERM);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	refuse_write(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	refuse_write(req);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	refuse_write(req);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	refuse_write(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	refuse_write(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	refuse_write(req);
}

/* Sizes, times, modes, owners: a message is the server's bytes as given. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)attr;
	(void)to_set;
	(void)fi;
	refuse_write(req);
}

/* -- open, read, flush, release, unlink -------------------------------------------------- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct pop3_file *f = NULL;
	struct pop3_entry m;
	int rc;

	if (!pop3_account_getattr(fs->acct, ino, &m)) {
		fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		refuse_write(req);
		return;
	}
	rc = pop3_account_open(fs->acct, ino, &f);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	/* Every read reaches us, so the kernel's read-ahead is never taken for a reader. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0)
		pop3_account_release(fs->acct, f);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct pop3_file *f = (struct pop3_file *)(uintptr_t)fi->fh;
	char *buf = g_malloc(size ? size : 1);
	ssize_t n;

	(void)ino;
	n = pop3_account_read(fs->acct, f, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	g_free(buf);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);

	(void)ino;
	fuse_reply_err(req, -pop3_account_flush(fs->acct, (struct pop3_file *)(uintptr_t)fi->fh));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);

	(void)ino;
	pop3_account_release(fs->acct, (struct pop3_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fs->opts->readonly) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fuse_reply_err(req, -pop3_account_unlink(fs->acct, name));
}

/* -- xattrs, statfs, init ------------------------------------------------------------------ */

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	g_autofree char *text = NULL;

	/* ENOTSUP outside user.*, as in the IMAP view: ls -l then stops asking
	 * for security.selinux and the ACL of every file. */
	if (!g_str_has_prefix(name, "user.")) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (ino != FUSE_ROOT_ID || strcmp(name, STATUS_XATTR) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	text = pop3_account_status(fs->acct);
	fs_reply_xattr_value(req, text, size);
}

/* Nothing is listed: the status is read by name (fs_common.h). */
static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	fs_reply_xattr_names(req, "", 0, size);
}

/* Setting the root's status succeeds and changes nothing (fs_common.h), so
   a backup that holds it restores; the spool's files carry no attribute to
   set. ENOTSUP outside user.*, as getxattr. */
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)value;
	(void)size;
	(void)flags;
	if (!g_str_has_prefix(name, "user."))
		fuse_reply_err(req, ENOTSUP);
	else if (ino == FUSE_ROOT_ID && strcmp(name, STATUS_XATTR) == 0)
		fuse_reply_err(req, 0);
	else
		refuse_write(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	if (!g_str_has_prefix(name, "user."))
		fuse_reply_err(req, ENOTSUP);
	else
		refuse_write(req);
}

/* The spool's file system is where the messages go. */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct statvfs local;

	(void)ino;
	if (statvfs(pop3_account_spool_dir(fs->acct), &local) == 0)
		fs_reply_statfs(req, (guint64)local.f_bavail * local.f_frsize,
				(guint64)local.f_blocks * local.f_frsize);
	else
		fs_reply_statfs(req, 0, 0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	fs_want_readdirplus(conn);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.open = op_open,
	.read = op_read,
	.flush = op_flush,
	.release = op_release,
	.unlink = op_unlink,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.mkdir = op_mkdir,
	.mknod = op_mknod,
	.create = op_create,
	.symlink = op_symlink,
	.link = op_link,
	.rename = op_rename,
	.setattr = op_setattr,
};

const struct fuse_lowlevel_ops *mfs_pop3_fs_ops(void)
{
	return &ops;
}
