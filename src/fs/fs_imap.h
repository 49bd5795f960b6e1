/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_imap: the FUSE operations of the IMAP view (design §2), on libfuse's
 * low-level API.
 *
 * Requests run in libfuse's worker threads. A request that needs the server
 * borrows a session from the pool, does its commands and gives it back; the
 * reply is sent from the same thread. The tree (model/tree) answers lookup,
 * getattr and readdir; a folder's listing is fetched again when it is older
 * than `refresh` seconds (one pipelined UID FETCH per folder). Message bytes
 * are fetched in ranges (BODY.PEEK[]<offset.length>, the range growing while
 * a reader reads on sequentially) into the body cache, so `head` of a large
 * message fetches little and a second `cat` fetches nothing. Kernel caches
 * are invalidated through the notify thread only, never from a handler.
 *
 * Nothing here writes to the server yet: writes are refused (EROFS; writing
 * into a message: EPERM).
 */
#ifndef MFS_FS_IMAP_H
#define MFS_FS_IMAP_H

#include <fuse_lowlevel.h>
#include <glib.h>

#include "account/pool.h"
#include "model/mcache.h"
#include "model/tree.h"
#include "startup/options.h"

struct mfs_imap_fs;

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

/* Once the session exists: start the notification thread. */
void mfs_imap_fs_attach(struct mfs_imap_fs *fs, struct fuse_session *se);
/* Before the session is destroyed: stop it. */
void mfs_imap_fs_detach(struct mfs_imap_fs *fs);

/* Fetch the folder list (LIST) into the tree; used at startup too. */
int mfs_imap_fs_refresh_list(struct mfs_imap_fs *fs, gboolean force, GError **err);

#endif
