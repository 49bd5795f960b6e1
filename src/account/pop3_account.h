/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pop3_account: the POP3 read-once spool of one account — its state, its
 * policies and every command sent to the server. fs/fs_pop3.c turns FUSE
 * requests into the calls below and replies; nothing else talks to the
 * server. doc/mailfs.1 describes what a user sees.
 *
 * THE SPOOL. One file per message waiting on the server, named
 * names_escape(UIDL) ".eml", minus the UIDLs already taken (the state file
 * $XDG_STATE_HOME/mailfs/ACCOUNT/taken). Sizes come from LIST, dates from
 * the Date header of a pipelined TOP n 0 (the mount time without one).
 * Inode numbers are stable for the mount: POP3_ACCOUNT_ROOT_INO is the
 * root, every message gets the next number the first time its UIDL is
 * listed and keeps it; messages stay in memory until pop3_account_free().
 *
 * THE SESSION. POP3 locks the maildrop, so there is ONE session, under
 * sess_lock, shared by request threads and the background threads. Every
 * new session lists the maildrop again (message numbers are per session)
 * and sends DELE for taken UIDLs still there. The poll thread QUITs
 * (commits) after about 2 s without work, lists again every `poll` seconds
 * (then QUITs), and QUITs at unmount. A login refused for now ([IN-USE],
 * [LOGIN-DELAY], [SYS/TEMP]) is logged once, keeps the last listing and is
 * tried again by the poll thread after min(poll, 30 s); DELEs wait for
 * that session. Logins nobody waits for (the poll, a listing, deferred
 * DELEs) also wait out the LOGIN-DELAY the server states in CAPA (RFC 2449
 * §6.5); an open that must download does not.
 *
 * DOWN. A login that fails for want of the server (refused, unreachable,
 * no answer within the timeout; not a "not now" refusal), or a session
 * whose command made no progress for the timeout, makes the account down:
 * one warning, user.mailfs.status says since when and why, and every
 * open or take that would need a login fails at once with EIO (they check
 * before waiting for the session's lock). The listing and downloaded
 * messages still answer. The poll thread alone logs in while down, after
 * 1 s, 2 s, 4 s ... up to 60 s; its first login makes it up again.
 * Detaching while down abandons that login (the account's conn_cancel).
 *
 * OPEN AND TAKE. pop3_account_open() RETRs the message into the spool
 * store (cache_dir/spool, 0700/0600; not fsync'd: the next mount clears
 * it), complete before any byte is served. A reader that opens the next listed names in a row
 * (cat *, cp -r) gets the following messages RETR'd in pipelined batches,
 * within the `prefetch` budget, by the opener and then the read-ahead
 * thread; reading ahead takes nothing. A message is taken when a reader
 * read at an offset >= its size and then flushes it, or on unlink:
 * (1) archive to the Maildir pop3_archive (unless none), (2) record the
 * UIDL in the state file, (3) DELE (unless pop3_keep). The closing
 * request writes (1); the taker thread makes it durable (one syncfs of
 * the archive's file system: bytes and names of the whole batch) and
 * does (2) and (3) for a batch of takes ((3) by the read-ahead thread,
 * between two of its batches, while that one holds the session). A failure of (1) or (2) takes nothing and is
 * the error of close()/unlink(). An empty download is never taken.
 *
 * MAILFS_CRASH_AT=after-retr|after-archive|after-state|after-dele|
 * before-quit-reply makes the daemon _exit(99) at that point (tests of
 * crash safety). before-quit-reply: at the first QUIT after a DELE, once
 * QUIT was sent and before its reply is read (a lost reply: the server may
 * or may not have committed).
 *
 * THREADS. pop3_account_attach() starts three: pop3-poll (session idle
 * QUIT, polls, retries, the last QUIT), pop3-take (commits takes) and
 * pop3-ahead (keeps a walking reader's lead; sends the taker's DELEs
 * while it holds the session), plus the two pop3-sync
 * workers that write read-ahead files. pop3_account_detach() stops them in
 * the order ahead, take, poll, so a take's DELEs go out before the last
 * QUIT. Every other function may be called from any thread, concurrently.
 *
 * LOCK ORDER: sess_lock before state_lock before lock, never the reverse
 * (a listing holds the session, records taken UIDLs and updates the
 * messages). A read-ahead batch's own mutex is a leaf taken under none of
 * them. The notify callbacks run with lock held: they must only queue.
 * No function returns with a lock held.
 *
 * ERRORS. int results are 0 or a negative errno; failures worth telling
 * the user are logged here and kept for user.mailfs.status (last_error).
 */
#ifndef MFS_POP3_ACCOUNT_H
#define MFS_POP3_ACCOUNT_H

#include <glib.h>
#include <sys/types.h>

#include "startup/options.h"

struct pop3_session_opts; /* protocol/pop3.h: the filesystem layer need not see it */

/* The spool's root directory; messages are numbered from the next one. */
#define POP3_ACCOUNT_ROOT_INO 1

struct pop3_account;
/* An open file of a message; the account owns it until pop3_account_release(). */
struct pop3_file;

/*
 * What the kernel must learn of, for the filesystem to pass on. Both run
 * with the account's lock held, on any thread: queue, never block.
 */
struct pop3_account_notify {
	/* name left the listing; ino is its inode, 0 for a negative entry
	   the kernel may hold (a name listed again). */
	void (*entry_gone)(void *ud, guint64 ino, const char *name);
	/* ino's size or date changed (a download). */
	void (*inode_changed)(void *ud, guint64 ino);
	void *ud;
};

/*
 * Prepare the spool (state dir, spool store cleared); no network, no
 * thread. opts and so must outlive the account. NULL and *err (one line
 * for the user) on failure.
 */
struct pop3_account *pop3_account_new(const struct mfs_options *opts,
				      const struct pop3_session_opts *so, GError **err);
/*
 * In the foreground, before mounting: connect, log in, list (refusing a
 * server without UIDL), TOP for dates. The session stays open. A login
 * refused for now is no error: it is logged and the spool starts empty.
 */
gboolean pop3_account_start(struct pop3_account *a, GError **err);
/* Start the threads; n (copied) is called from now until detach. */
void pop3_account_attach(struct pop3_account *a, const struct pop3_account_notify *n);
/* Stop and join the threads (the poll thread QUITs); no callback after it. */
void pop3_account_detach(struct pop3_account *a);
/* QUITs a session still open (commits) and frees. NULL is ignored. */
void pop3_account_free(struct pop3_account *a);

/* A message as a reply needs it: a copy. */
struct pop3_entry {
	guint64 ino;
	guint64 size;
	gint64 mtime;  /* seconds */
	guint nlink;   /* 0 once taken, being taken, or gone from the server */
	char *name;    /* only from pop3_account_listing(), owned by the array */
};

/* The listed message called name (no session needed); FALSE: none. */
gboolean pop3_account_lookup(struct pop3_account *a, const char *name, struct pop3_entry *out);
/* Any message by inode, listed or not (taken ones stay answerable). */
gboolean pop3_account_getattr(struct pop3_account *a, guint64 ino, struct pop3_entry *out);
/*
 * List the maildrop again when the listing is older than `poll` and a
 * login is allowed; never waits for a session busy elsewhere (a download,
 * a locked maildrop): the last listing then stands.
 */
void pop3_account_refresh(struct pop3_account *a);
/* The listed messages with ino > after, by inode: struct pop3_entry with names. */
GArray *pop3_account_listing(struct pop3_account *a, gint64 after);

/*
 * Open message ino for reading: download it first when needed (the
 * caller waits), noting the reader's pattern for read-ahead. 0 and *out,
 * or -ENOENT (no such message, or taken and not downloaded) or the
 * download's error.
 */
int pop3_account_open(struct pop3_account *a, guint64 ino, struct pop3_file **out);
/* pread of the spool copy; a read at or past the end arms the take at flush. */
ssize_t pop3_account_read(struct pop3_account *a, struct pop3_file *f, void *buf, size_t size,
			  gint64 off);
/* A close: takes the message when it was read to the end. 0 or -errno. */
int pop3_account_flush(struct pop3_account *a, struct pop3_file *f);
/* The last close of f; frees it. */
void pop3_account_release(struct pop3_account *a, struct pop3_file *f);
/* Take the listed message called name. 0, -ENOENT, or the take's error. */
int pop3_account_unlink(struct pop3_account *a, const char *name);

/* The user.mailfs.status text ("key: value" lines); g_free it. */
char *pop3_account_status(struct pop3_account *a);
/* Wall clock seconds of the mount: the root's date. */
gint64 pop3_account_mount_time(const struct pop3_account *a);
/* The spool store, for statfs. */
const char *pop3_account_spool_dir(const struct pop3_account *a);

#endif
