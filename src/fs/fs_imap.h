/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_imap: the FUSE operations of the IMAP view, on libfuse's low-level API.
 *
 * Folders are directories, messages files (named by model/names.h), read
 * on demand through the body cache; mkdir, rmdir, rm, mv, cp, setfattr of
 * user.imap.flags change the server (doc/mailfs.1 says how). This layer
 * only translates: each request becomes calls of the account
 * (account/imap_account.h, account/body.h), which holds every folder's
 * state and sends every command, and a reply. New files are kept in the
 * staging (model/staging.h) until complete, then appended.
 *
 * Requests run in libfuse's worker threads; one that may wait for the
 * server holds a lease (account/lease.h), so the kernel's interrupt aborts
 * its command. Kernel caches are invalidated through the notify thread
 * (fs/notify.h) only, never from a handler.
 */
#ifndef MFS_FS_IMAP_H
#define MFS_FS_IMAP_H

#include <fuse_lowlevel.h>
#include <glib.h>

#include "model/mcache.h"
#include "model/tree.h"
#include "startup/options.h"

struct mfs_imap_fs;
struct pool; /* account/pool.h */

/*
 * The filesystem over a connected pool, an open cache and a tree that already
 * holds the first LIST. Ownership of pool, cache and tree stays with the
 * caller; opts must outlive the filesystem.
 */
struct mfs_imap_fs *mfs_imap_fs_new(const struct mfs_options *opts, struct pool *pool,
				    struct mcache *cache, struct tree *tree);
void mfs_imap_fs_free(struct mfs_imap_fs *fs);

/* The operation table; userdata for fuse_session_new() is the fs. */
const struct fuse_lowlevel_ops *mfs_imap_fs_ops(void);

/* Once the session exists (after the daemon forked): start the notify
   thread and the account's threads (imap_account_start). */
void mfs_imap_fs_attach(struct mfs_imap_fs *fs, struct fuse_session *se);
/* After the session loop ended, before the session is destroyed: stop and
   join them, account first (its threads feed the notify thread). */
void mfs_imap_fs_detach(struct mfs_imap_fs *fs);

/* Fetch the folder list (LIST) into the tree; used at startup too. */
int mfs_imap_fs_refresh_list(struct mfs_imap_fs *fs, gboolean force, GError **err);

#endif
