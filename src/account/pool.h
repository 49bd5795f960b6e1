/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pool: the IMAP sessions of one account, shared by the filesystem's worker
 * threads. A request borrows a session (pool_get), runs its commands on it
 * alone, and gives it back (pool_put).
 *
 * Sessions are connected lazily, at most `max` at once. A borrower gets an
 * idle session that already has its mailbox selected when there is one
 * (saves a SELECT round trip), else any idle one, else a new connection,
 * else it waits for a session to come back.
 *
 * Down. A hung or dead server costs one `timeout`, not one per request:
 * the pool is DOWN from the moment a session's wait times out (a command,
 * or the NOOP that checks an idle session) or a connect fails for want of
 * the server (refused, unreachable, no answer, or any failure while no
 * session is live). While down, pool_get fails at once
 * (G_IO_ERROR_NOT_CONNECTED: "HOST is down since HH:MM:SS (reason)"),
 * waiting borrowers wake to fail, the idle sessions are closed, and no
 * borrower connects: a prober thread does, after 1 s, 2 s, 4 s ... up to
 * 60 s (pool_server_back() brings the next try forward). Its first login
 * brings the pool up again. Sessions borrowed already finish on their own
 * (each wait is bounded by the timeout).
 *
 * Connection limits (servers cap sessions per account: Gmail's ~15, "Too many
 * simultaneous connections", [UNAVAILABLE], [LIMIT]): when a connect fails
 * while other sessions are live, the pool shrinks to the live count (one
 * info line) and the borrower waits for a session to come back instead of
 * failing. After 60 s the pool may try to grow by one again.
 *
 * Errors (GError, G_IO_ERROR domain unless the connect error is passed on):
 *   G_IO_ERROR_TIMED_OUT   no session came back within the timeout
 *   G_IO_ERROR_CANCELLED   pool_shutdown() was called
 *   G_IO_ERROR_NOT_CONNECTED  the pool is down (see above)
 *   anything else          this borrower's connect failed (the pool is down
 *                          now); the message names the server and quotes it
 *
 * Threads: every function may be called from any thread; one mutex guards
 * the pool and is never held while connecting or talking to the server.
 * The prober is the pool's own thread, started at the first down.
 * A borrowed session belongs to its borrower alone until pool_put().
 */
#ifndef MFS_POOL_H
#define MFS_POOL_H

#include <glib.h>

#include "protocol/imap_client.h"

struct pool;

/*
 * A pool of up to max (>= 1) sessions. opts is copied (its strings and
 * limits duplicated); opts->secret and opts->secret_ud must outlive the
 * pool. pool_get() waits for a session to come back at most
 * opts->timeout_s + 1 s (<= 0: no bound but pool_shutdown()): a second
 * longer than the command holding it may wait, so that a hung server is
 * reported by that command's timeout (the pool goes down) and not again.
 */
struct pool *pool_new(const struct imap_session_opts *opts, guint max);

/*
 * Connect one session now (unless one is live already), so that a wrong
 * password or certificate is reported at startup. FALSE and *err.
 */
gboolean pool_prime(struct pool *p, GError **err);

/*
 * Borrow a live session. mailbox: the wire name the caller is going to
 * select (NULL: no preference); the session may have another one
 * selected, or none: check imap_session_selected(). NULL and *err as
 * listed above. Every session returned must go back through pool_put().
 */
struct imap_session *pool_get(struct pool *p, const char *mailbox, GError **err);
/*
 * The same, with the borrower's own switch for a connect it has to make
 * (G_IO_ERROR_CANCELLED once fired: a FUSE interrupt during a TLS
 * handshake): a child of pool_connect_switch(), so that a shutdown fires
 * it too. NULL: the pool's.
 */
struct conn_cancel;
struct imap_session *pool_get_cancellable(struct pool *p, const char *mailbox,
					  struct conn_cancel *cancel, GError **err);
/*
 * pool_get(), but first, for up to wait_us, a session with mailbox
 * selected already: an idle one, or one lent to a borrower that said it
 * would select mailbox, once it comes back. Opening a large folder can
 * cost the server a good part of a second (dovecot on Maildir, 80,000
 * messages: 0.2 s), against a millisecond's wait for a borrower that
 * fetches one body there.
 */
struct imap_session *pool_get_selected(struct pool *p, const char *mailbox, gint64 wait_us,
				       GError **err);
/* The pool's switch, fired by pool_shutdown(): the parent of borrowers'. */
struct conn_cancel *pool_connect_switch(struct pool *p);

/*
 * Give a borrowed session back. A dead session (imap_session_alive() FALSE)
 * or one aborted with pool_abort_session() is freed, which makes room for
 * a new connect; one that died of a timeout puts the pool down. What the
 * borrower should say of a failure it had: its own warning, unless the
 * pool was down already (then that was said; a debug line is enough).
 */
enum pool_put_outcome {
	POOL_PUT_UP,	     /* the pool is up, or this session put it down... */
	POOL_PUT_WENT_DOWN,  /* ...as here: its timeout did */
	POOL_PUT_WAS_DOWN,   /* down before this session came back */
};
enum pool_put_outcome pool_put(struct pool *p, struct imap_session *s);

/*
 * Close the idle sessions that have mailbox selected, before this mount
 * deletes or renames it: a server may end such a session with a BYE
 * ("deleted under us"), which would read as a failure of the next
 * borrower. Nothing is said to the server (as when the pool goes down).
 */
void pool_close_selected(struct pool *p, const char *mailbox);

/* The capabilities of the pool's first login (imap_session_caps): for the
   whole life of the pool, even when a later login (after the server went
   down and came back) offers others, so that what the account decided from
   them at mount holds. 0 before the first login (pool_prime makes it at
   mount). Any thread (takes the pool's lock). */
guint32 pool_caps(struct pool *p);

/* The options sessions are made with (owned by the pool), for a connection of
   its own such as the IDLE watcher's. */
const struct imap_session_opts *pool_session_opts(const struct pool *p);

/* Open the remaining connections (up to `max`) in the background, in
   parallel, so the first requests that need several (a listing, a reader,
   prefetch) do not each wait for a login. Failures are left to pool_get. */
void pool_warm(struct pool *p);
/* Another connection (the push watcher's) just reached the server: a
   backoff after failed connects ends now, so work goes on at once. */
void pool_server_back(struct pool *p);
/*
 * Unmount: abort every borrowed session (their commands fail with -EINTR
 * at once), abandon every connect in progress, and make waiting and later
 * pool_get() calls fail with G_IO_ERROR_CANCELLED. Any thread; idempotent.
 * Borrowers still put their sessions back.
 */
void pool_shutdown(struct pool *p);
/* A connection of the account's own outside the pool (the push watcher's)
   timed out: the server hangs, the pool goes down. TRUE when that is news. */
gboolean pool_report_timeout(struct pool *p, const GError *why);
/* pool_shutdown() was called: a failure now is the unmount's doing. */
gboolean pool_is_shut_down(struct pool *p);

/*
 * Shut down (if not yet), LOGOUT the idle sessions (each bounded to a few
 * seconds, all at once), free everything. Every borrowed session must have been put back (a
 * caller bug otherwise: logged, and those sessions leak). NULL is ignored.
 */
void pool_free(struct pool *p);

struct pool_stats {
	guint live;	  /* connected sessions, idle or borrowed */
	guint busy;	  /* borrowed now */
	guint max;	  /* the effective maximum (may have shrunk) */
	guint64 commands; /* sent on all sessions, closed ones too, as of their last return */
	guint64 connects; /* successful connects */
	guint64 connect_failures;
	char *last_error; /* the last connect error, or NULL; owned by the caller */
	gboolean down;	   /* see "Down" above */
	gint64 down_since; /* real time, µs (when down) */
	char *down_reason; /* why (when down); owned by the caller */
};

/* A snapshot; free with pool_stats_clear(). */
void pool_get_stats(struct pool *p, struct pool_stats *out);
void pool_stats_clear(struct pool_stats *s);

/*
 * Interrupt support (FUSE_INTERRUPT), any thread: abort the commands of a
 * session borrowed for a request; they fail with -EINTR, and pool_put()
 * frees the session. Does nothing if s is not borrowed now. The caller must
 * make sure s is still borrowed by the request being interrupted (not put
 * back and lent to another one), e.g. by holding its own request lock
 * around both this call and pool_put().
 */
void pool_abort_session(struct pool *p, struct imap_session *s);

#endif
