/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * notify: the one thread that tells the kernel what changed.
 *
 * libfuse's rule: a notification (inval_entry, delete, inval_inode) must not
 * be sent from inside a request handler or while holding a lock a handler
 * needs, or the kernel and the daemon can wait for each other. Handlers
 * therefore only queue notifications here; this thread sends them.
 *
 * Threads: notify_* may be called from any thread. notify_stop() sends
 * everything queued, then joins the thread.
 */
#ifndef MFS_NOTIFY_H
#define MFS_NOTIFY_H

#include <fuse_lowlevel.h>
#include <glib.h>

struct notify;

struct notify *notify_start(struct fuse_session *se);
void notify_stop(struct notify *n);

/* The name went away (or changed meaning) in parent; child is its old inode (0: unknown). */
void notify_entry_gone(struct notify *n, fuse_ino_t parent, fuse_ino_t child, const char *name);
/* The attributes or data of ino changed (a corrected size). */
void notify_inode_changed(struct notify *n, fuse_ino_t ino);

#endif
