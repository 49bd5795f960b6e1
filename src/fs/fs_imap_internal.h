/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The IMAP view's state, shared by fs/fs_imap*.c: what the FUSE operations
 * need besides the account (account/imap_account.h), which does all the
 * talking to the server.
 *
 *   fs_imap.c        life cycle, the operation table, leases for requests
 *   fs_imap_dir.c    lookup, forget, getattr, readdir, statfs
 *   fs_imap_read.c   open, read, release
 *   fs_imap_xattr.c  getxattr, listxattr, setxattr, removexattr
 *   fs_imap_parts.c  the hidden .parts directories: lookup, getattr, readdir,
 *                    open, read, release, their attributes
 *   fs_imap_search.c the hidden .search directories: lookup, getattr, readdir,
 *                    their attribute; every change in them refused
 *   fs_imap_write.c  create, write, flush, fsync, setattr, mkdir, rmdir, unlink, rename;
 *                    symlink, mknod, link (refused)
 */
#ifndef MFS_FS_IMAP_INTERNAL_H
#define MFS_FS_IMAP_INTERNAL_H

#include <fuse_lowlevel.h>

#include "account/imap_account.h"
#include "fs/fs_common.h"
#include "fs/fs_imap.h"
#include "fs/notify.h"
#include "model/parts_nodes.h"
#include "model/search_nodes.h"
#include "model/staging.h"
#include "util/lock.h"

struct mfs_imap_fs {
	/* set at creation, then read-only */
	const struct mfs_options *opts;
	struct imap_account *account;
	struct tree *tree;
	struct mcache *cache;
	struct staging *staging; /* new files not yet appended; locks itself */
	uid_t uid;
	gid_t gid;
	/* Set by attach before any request or account thread runs, cleared by
	   detach after all of them ended. */
	struct notify *notify;

	mfs_mutex opens_lock;
	GHashTable *opens; /* guarded by opens_lock: struct body_reader * the kernel holds open */
	GHashTable *part_opens; /* guarded by opens_lock: struct part_data * of .parts files open */
};

/* The lease of one request: borrowed sessions go through it, and the
   kernel's interrupt of req aborts the one in use. */
void fs_lease_begin(struct mfs_imap_fs *fs, fuse_req_t req, struct lease *l);
void fs_lease_end(fuse_req_t req, struct lease *l);
/* req is answered while its lease's work goes on (a stat answered before
   the listing is whole): no interrupt reaches the lease from now on, and
   nothing in it refers to req. fs_lease_end stays the lease's end. */
void fs_lease_let_go(fuse_req_t req, struct lease *l);

/* How long the kernel may keep attributes and names: `refresh`. */
double fs_imap_timeout(const struct mfs_imap_fs *fs);
void fs_imap_fill_attr(const struct mfs_imap_fs *fs, const struct tree_entry *e,
		       struct stat *st);
/* Answer a lookup (or mkdir) with a node the tree counted one reference
   for; if the kernel does not take the answer, the reference is given back. */
void fs_imap_reply_entry(struct mfs_imap_fs *fs, fuse_req_t req, const struct tree_entry *e);
/* The local file behind a request on message ino: the one its file
   handle names (an open for writing), else the live copy being written
   into it; 0 when there is none. */
guint64 fs_imap_staged_of(struct mfs_imap_fs *fs, fuse_ino_t ino, const struct fuse_file_info *fi);
/* A readdir reply being filled. */
struct dirbuf {
	struct mfs_imap_fs *fs;
	fuse_req_t req;
	char *buf;
	size_t size;
	size_t used;
	gboolean plus;
};
/* One entry into d (readdirplus: with attr, and one lookup reference when
   ref); FALSE when it does not fit (then nothing was added). */
gboolean fs_dirbuf_add(struct dirbuf *d, const char *name, const struct stat *attr, gboolean ref,
		       double attr_timeout, guint64 next_off);
/* fuse_reply_err of a 0 or -errno result. */
void fs_reply_rc(fuse_req_t req, int rc);

/* The operations, by file. */
void fs_imap_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_imap_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_imap_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_imap_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_imap_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void fs_imap_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi);
void fs_imap_statfs(fuse_req_t req, fuse_ino_t ino);

void fs_imap_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_imap_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void fs_imap_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Free the readers of files still open at unmount. */
void fs_imap_close_all(struct mfs_imap_fs *fs);

void fs_imap_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_imap_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_imap_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		      size_t size, int flags);
void fs_imap_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

void fs_imap_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    struct fuse_file_info *fi);
void fs_imap_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_imap_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_imap_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_imap_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		     struct fuse_file_info *fi);
void fs_imap_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_imap_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_imap_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_imap_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		    const char *newname, unsigned int flags);
/* A mailbox holds folders and messages only: these are EPERM (EROFS when readonly). */
void fs_imap_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_imap_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_imap_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);

/* The .search directories (fs_imap_search.c); the fs_imap_* operations
   hand their nodes (model/search_nodes.h: search_is_node) and the name
   ".search" to these. */
void fs_search_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_search_getattr(fuse_req_t req, fuse_ino_t ino);
void fs_search_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus);
void fs_search_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_search_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
/* The .parts directories (fs_imap_parts.c), handed over the same way
   (model/parts_nodes.h: parts_is_node; ".parts" in the root). */
void fs_parts_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_parts_getattr(fuse_req_t req, fuse_ino_t ino);
void fs_parts_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus);
void fs_parts_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Bytes of an open .parts file (fs_imap_read replies). */
gssize fs_parts_pread(struct fuse_file_info *fi, char *buf, size_t size, off_t off);
void fs_parts_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_parts_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_parts_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
/* Free an open .parts file's bytes (at unmount, for those still open). */
void fs_parts_free_open(void *pd);

/* Is this name in directory parent one of the hidden directories (or
   parent inside one)? */
gboolean fs_hidden(fuse_ino_t parent, const char *name);
/* A change of `name` in directory parent (name NULL: of parent itself) that
   touches a .search or .parts directory: replied EROFS, TRUE. */
gboolean fs_hidden_refuse(fuse_req_t req, fuse_ino_t parent, const char *name);

#endif
