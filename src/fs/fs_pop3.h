/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_pop3: the FUSE operations of the POP3 read-once spool, on libfuse's
 * low-level API. A flat root directory with one read-only file per message
 * waiting on the server; what the files are, when a message is downloaded
 * and taken, and the threads behind it are account/pop3_account.h's
 * business: every operation here asks the account and replies.
 *
 * A file is taken when a reader read at an offset >= its size and then
 * closes it (FLUSH), or on unlink (EROFS with readonly); the take's error
 * is the error of close()/unlink(). Nothing else changes the spool: opening
 * for write, creating, mkdir, rename, links, symlinks, device nodes, setattr
 * and setting or removing an attribute are EPERM (EROFS with readonly;
 * ENOTSUP for an attribute outside user.*). Opens use direct_io, so every read
 * reaches the daemon. user.mailfs.status on the root gives the account's
 * counters and last error (doc/mailfs.1).
 *
 * Threads: every op may run concurrently. Kernel notifications the account
 * asks for go through the notify thread only (fs/notify.h), started by
 * attach before the account's threads and stopped by detach after them.
 */
#ifndef MFS_FS_POP3_H
#define MFS_FS_POP3_H

#include <fuse_lowlevel.h>
#include <glib.h>

#include "startup/options.h"

struct mfs_pop3_fs;
struct pop3_session_opts;

/*
 * Prepare the spool (state dir, spool store); no network. opts and so must
 * outlive the filesystem. NULL and *err (one line for the user) on failure.
 */
struct mfs_pop3_fs *mfs_pop3_fs_new(const struct mfs_options *opts,
				    const struct pop3_session_opts *so, GError **err);
/*
 * In the foreground, before mounting: connect, log in, list (refusing a
 * server without UIDL), TOP for dates. The session stays open for the mount.
 * A login refused for now ([IN-USE], [LOGIN-DELAY], [SYS/TEMP]) is no
 * error: it is logged, and the mount starts with nothing listed.
 */
gboolean mfs_pop3_fs_start(struct mfs_pop3_fs *fs, GError **err);
/* QUITs an open session (commits). NULL is ignored. */
void mfs_pop3_fs_free(struct mfs_pop3_fs *fs);

/* The operation table; userdata for fuse_session_new() is the fs. */
const struct fuse_lowlevel_ops *mfs_pop3_fs_ops(void);

/* Once the session exists (after daemonizing): the notify thread, then the
   account's poll, take and read-ahead threads. */
void mfs_pop3_fs_attach(struct mfs_pop3_fs *fs, struct fuse_session *se);
/* Before the session is destroyed: stop them (the poll thread QUITs). */
void mfs_pop3_fs_detach(struct mfs_pop3_fs *fs);

#endif
