/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_pop3: the FUSE operations of the POP3 read-once spool (design §3), on
 * libfuse's low-level API.
 *
 * The mount root holds one file per message waiting on the server,
 * names_escape(UIDL) + ".eml", minus the UIDLs already taken (state file).
 * Sizes come from LIST, dates from the Date header of a pipelined TOP n 0.
 *
 * POP3 locks the maildrop, so there is ONE session, guarded by a mutex and
 * shared by request threads and a background thread. Every new session
 * lists the maildrop again (message numbers are per session) and sends DELE
 * for taken UIDLs still there. The background thread QUITs (commits) after
 * about 2 s without work, lists again every `poll` seconds (then QUITs),
 * and QUITs at unmount.
 *
 * A login refused for now ([IN-USE], [LOGIN-DELAY], [SYS/TEMP]) is logged
 * once, keeps the last listing and is tried again by the background thread
 * after min(poll, 30 s); DELEs wait for that session. Logins nobody waits
 * for (the poll, ls, those DELEs) also wait out the LOGIN-DELAY the server
 * states in CAPA (RFC 2449 §6.5); an open() that must download does not.
 * The 2 s QUIT stays: the commit and the maildrop's lock come first.
 *
 * open RETRs the message into the spool store (cache_dir/spool, 0700/0600),
 * fsync'd file and directory, before any byte is served (direct_io). A
 * message is taken when a reader read at an offset >= its size and then
 * closes it (FLUSH), or on unlink: (1) archive to the Maildir pop3_archive
 * (unless none), (2) record the UIDL in $XDG_STATE_HOME/mailfs/ACCOUNT/taken,
 * (3) DELE (unless pop3_keep). A failure of (1) or (2) takes nothing and is
 * the error of close()/unlink(). An empty download is never taken.
 *
 * MAILFS_CRASH_AT=after-retr|after-archive|after-state|after-dele|
 * before-quit-reply makes the daemon _exit(99) at that point (tests of
 * crash safety). before-quit-reply: at the first QUIT after a DELE, once
 * QUIT was sent and before its reply is read (a lost reply: the server may
 * or may not have committed).
 *
 * Threads: every op may run concurrently; kernel notifications go through
 * the notify thread only.
 */
#ifndef MFS_FS_POP3_H
#define MFS_FS_POP3_H

#include <fuse_lowlevel.h>
#include <glib.h>

#include "protocol/pop3.h"
#include "startup/options.h"

struct mfs_pop3_fs;

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

/* Once the session exists (after daemonizing): notify and poll threads. */
void mfs_pop3_fs_attach(struct mfs_pop3_fs *fs, struct fuse_session *se);
/* Before the session is destroyed: stop them (the poll thread QUITs). */
void mfs_pop3_fs_detach(struct mfs_pop3_fs *fs);

#endif
