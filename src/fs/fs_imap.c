/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The IMAP view's life cycle, its operation table and request leases. */
#include "fs/fs_imap_internal.h"

#include <string.h>
#include <unistd.h>

#include "account/body.h"

static void on_entry_gone(void *ud, guint64 parent, guint64 ino, const char *name)
{
	struct mfs_imap_fs *fs = ud;

	notify_entry_gone(fs->notify, parent, ino, name);
}

static void on_inode_changed(void *ud, guint64 ino)
{
	struct mfs_imap_fs *fs = ud;

	notify_inode_changed(fs->notify, ino);
}

struct mfs_imap_fs *mfs_imap_fs_new(const struct mfs_options *opts, struct pool *pool,
				    struct mcache *cache, struct tree *tree)
{
	struct mfs_imap_fs *fs = g_new0(struct mfs_imap_fs, 1);
	g_autofree char *staging_dir = g_build_filename(opts->cache_dir, "staging", NULL);

	fs->opts = opts;
	fs->tree = tree;
	fs->cache = cache;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->account = imap_account_new(opts, pool, cache, tree);
	fs->staging = staging_new(staging_dir, fs->uid, fs->gid);
	mfs_mutex_init(&fs->opens_lock);
	fs->opens = g_hash_table_new(g_direct_hash, g_direct_equal);
	fs->part_opens = g_hash_table_new(g_direct_hash, g_direct_equal);
	return fs;
}

void mfs_imap_fs_free(struct mfs_imap_fs *fs)
{
	if (!fs)
		return;
	fs_imap_close_all(fs);
	g_hash_table_destroy(fs->opens);
	g_hash_table_destroy(fs->part_opens);
	mfs_mutex_clear(&fs->opens_lock);
	staging_free(fs->staging);
	imap_account_free(fs->account);
	g_free(fs);
}

void mfs_imap_fs_attach(struct mfs_imap_fs *fs, struct fuse_session *se)
{
	const struct account_events ev = { on_entry_gone, on_inode_changed, fs };

	fs->notify = notify_start(se);
	imap_account_start(fs->account, &ev);
}

void mfs_imap_fs_detach(struct mfs_imap_fs *fs)
{
	/* The account's threads tell the notifier: they stop first. */
	imap_account_stop(fs->account);
	g_clear_pointer(&fs->notify, notify_stop);
}

int mfs_imap_fs_refresh_list(struct mfs_imap_fs *fs, gboolean force, GError **err)
{
	return imap_account_refresh_list(fs->account, force, err);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	(void)req;
	lease_interrupt(data);
}

/* Before the lease's first borrow: the kernel's interrupt of the request
   now reaches it (at once, when it came already). */
static void arm_interrupt(struct lease *l)
{
	fuse_req_interrupt_func(l->arm_data, on_interrupt, l);
}

void fs_lease_begin(struct mfs_imap_fs *fs, fuse_req_t req, struct lease *l)
{
	lease_init(l, imap_account_pool(fs->account));
	l->arm = arm_interrupt;
	l->arm_data = req;
}

void fs_lease_end(fuse_req_t req, struct lease *l)
{
	/* libfuse holds its request lock while calling on_interrupt: once
	   this returns, no interrupt can reach l. */
	if (l->armed)
		fuse_req_interrupt_func(req, NULL, NULL);
	lease_clear(l);
}

void fs_lease_let_go(fuse_req_t req, struct lease *l)
{
	if (l->armed)
		fuse_req_interrupt_func(req, NULL, NULL);
	l->armed = FALSE;
	l->arm = NULL;
	l->arm_data = NULL;
}

double fs_imap_timeout(const struct mfs_imap_fs *fs)
{
	return fs->opts->refresh;
}

guint64 fs_imap_staged_of(struct mfs_imap_fs *fs, fuse_ino_t ino, const struct fuse_file_info *fi)
{
	/* Readers' handles are pointers, which never have the staged bit. */
	if (fi && staging_is_staged(fi->fh))
		return fi->fh;
	return staging_find_replacement(fs->staging, ino);
}

void fs_reply_rc(fuse_req_t req, int rc)
{
	fuse_reply_err(req, rc < 0 ? -rc : 0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	fs_want_readdirplus(conn);
	/* Lookups and readdirs of one folder in parallel: a walk's listers
	   and readers do not queue behind each other. */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = fs_imap_lookup,
	.forget = fs_imap_forget,
	.forget_multi = fs_imap_forget_multi,
	.getattr = fs_imap_getattr,
	.setattr = fs_imap_setattr,
	.readdir = fs_imap_readdir,
	.readdirplus = fs_imap_readdirplus,
	.open = fs_imap_open,
	.read = fs_imap_read,
	.release = fs_imap_release,
	.statfs = fs_imap_statfs,
	.getxattr = fs_imap_getxattr,
	.listxattr = fs_imap_listxattr,
	.setxattr = fs_imap_setxattr,
	.removexattr = fs_imap_removexattr,
	.mkdir = fs_imap_mkdir,
	.rmdir = fs_imap_rmdir,
	.unlink = fs_imap_unlink,
	.rename = fs_imap_rename,
	.create = fs_imap_create,
	.write = fs_imap_write,
	.flush = fs_imap_flush,
	.symlink = fs_imap_symlink,
	.mknod = fs_imap_mknod,
	.link = fs_imap_link,
	.fsync = fs_imap_fsync,
};

const struct fuse_lowlevel_ops *mfs_imap_fs_ops(void)
{
	return &ops;
}
