/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mountpoint: the directory mailfs mounts on, made absolute and checked
 * before anything connects (mailfs(1), MOUNT POINT).
 *
 * "/dev/fd/N" naming an open character device is a mount the caller made
 * itself (mount.fuse3 -o drop_privileges): it is kept as is and not checked.
 *
 * Errors are one line for stderr (G_FILE_ERROR), naming the absolute path.
 * Called once at startup, before any thread exists.
 */
#ifndef MFS_MOUNTPOINT_H
#define MFS_MOUNTPOINT_H

#include <glib.h>

/*
 * The absolute form of the mountpoint as given: realpath() of it, or, when
 * that fails (a dead mount cannot be resolved, a missing directory is
 * reported by mountpoint_check()), realpath() of its parent with the last
 * name appended. Needed before anything else: fuse_daemonize() changes the
 * working directory to "/", in the foreground too, and the unmount at exit
 * goes by this path. NULL and *err when the parent cannot be resolved.
 * g_free() the result.
 */
char *mountpoint_resolve(const char *given, GError **err);

/*
 * May mailfs mount on mp (absolute, from mountpoint_resolve())? Refused:
 * a missing path or not a directory; something mounted there already; a
 * directory with entries, unless nonempty (they would be hidden while
 * mounted); a dead mount (stat fails with ENOTCONN: its daemon ended
 * without unmounting), with the hint "fusermount3 -uz MP". A dead mount
 * that is our own (fuse.mailfs, mounted by this user) is unmounted here
 * instead, with one info line, and the check goes on.
 */
gboolean mountpoint_check(const char *mp, gboolean nonempty, GError **err);

#endif
