/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_common: replies both views (IMAP and POP3) make the same way.
 * Each call sends exactly one reply to req.
 */
#ifndef MFS_FS_COMMON_H
#define MFS_FS_COMMON_H

#include <fuse_lowlevel.h>
#include <glib.h>

/*
 * The status attribute on the mount's root; the flags one on messages.
 * The status is read by name only: listxattr does not list it, so
 * `rsync -X` and `getfattr -d` neither copy its ever-changing counters
 * (which would make every backup copy the root again) nor try to restore
 * them; setting it (a backup made before, restored) succeeds and changes
 * nothing (mailfs(1), EXTENDED ATTRIBUTES).
 */
#define STATUS_XATTR "user.mailfs.status"
#define FLAGS_XATTR "user.imap.flags"

/* getxattr's reply: the size when size is 0, ERANGE when too small, else value. */
void fs_reply_xattr_value(fuse_req_t req, const char *value, size_t size);
/* listxattr's reply for names, NUL-separated in a buffer of len bytes. */
void fs_reply_xattr_names(fuse_req_t req, const char *names, size_t len, size_t size);

/* statfs's reply for a filesystem whose space is that of a local cache:
   free_bytes left of max_bytes (0: as free). */
void fs_reply_statfs(fuse_req_t req, guint64 free_bytes, guint64 max_bytes);

/* Readdirplus always, in both views: a listing is in memory, attributes
   cost nothing, and `ls -l` then needs no lookup per file. */
void fs_want_readdirplus(struct fuse_conn_info *conn);

#endif
