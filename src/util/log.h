/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log: the daemon's one way to say something.
 *
 * Messages go to stderr while the daemon runs in the foreground, and to
 * syslog once it has daemonized (mfs_log_use_syslog()). Errors and warnings
 * are always shown; debug lines only for the categories switched on with
 * mfs_log_enable() (the `log=` option: imap, pop3, fuse, cache).
 *
 * Anything that came from the network must pass through mfs_log_escape()
 * before it is formatted: it bounds the length and escapes control bytes,
 * so a server cannot write terminal escapes or unbounded lines into a log.
 *
 * Thread-safe: any thread may log.
 */
#ifndef MFS_LOG_H
#define MFS_LOG_H

#include <glib.h>
#include <stddef.h>

enum mfs_log_cat {
	MFS_LOG_IMAP = 1 << 0,
	MFS_LOG_POP3 = 1 << 1,
	MFS_LOG_FUSE = 1 << 2,
	MFS_LOG_CACHE = 1 << 3,
};

/* Parse "imap,pop3,fuse,cache" (or "all", "none"); FALSE and *err on an unknown word. */
gboolean mfs_log_parse_categories(const char *spec, unsigned *out, GError **err);
void mfs_log_enable(unsigned categories);
gboolean mfs_log_enabled(enum mfs_log_cat cat);
void mfs_log_use_syslog(const char *ident);

void mfs_log_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void mfs_log_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void mfs_log_info(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void mfs_log_debug(enum mfs_log_cat cat, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * A printable copy of untrusted bytes: at most max_out bytes of input shown,
 * control bytes and non-UTF-8 as \xNN, "..." appended when cut. Free with g_free.
 */
char *mfs_log_escape(const void *data, size_t len, size_t max_out);

#endif
