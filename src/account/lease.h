/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lease: one request's hold on a pooled IMAP session, and the way a FUSE
 * interrupt reaches it.
 *
 * A filesystem request that may wait for the server owns one lease for its
 * whole life. The account's operations borrow a session through it
 * (lease_borrow), run their commands, and give it back (lease_give_back);
 * meanwhile lease_interrupt, called from libfuse's interrupt callback on
 * another thread, aborts the session in use (the command fails at once) and
 * makes every later borrow of the lease fail with -EINTR. Background work
 * (listing ahead, push) uses a lease nobody interrupts.
 *
 * Threads: lease_interrupt may run on any thread at any time between
 * lease_init and lease_clear; every other call is made by the lease's owner.
 */
#ifndef MFS_LEASE_H
#define MFS_LEASE_H

#include <glib.h>

#include "util/lock.h"

/* Opaque here: the filesystem layer holds leases without seeing the protocol. */
struct pool;
struct imap_session;

struct lease {
	struct pool *pool;
	/* Called by the owner before the first borrow: wires the interrupt
	   (a request that never waits for the server pays nothing for it). */
	void (*arm)(struct lease *l);
	void *arm_data;
	gboolean armed;
	mfs_mutex lock;
	struct imap_session *session; /* guarded by lock: borrowed now, or NULL */
	gboolean interrupted;	      /* guarded by lock */
	/* Made at the first borrow, fired by an interrupt: ends a connect
	   the borrow makes (a TLS handshake a hung server never answers).
	   The pointer is set by the owner before the interrupt is wired. */
	struct conn_cancel *cancel;
	/* The last session given back failed while the server was known to
	   be down (pool_put's POOL_PUT_WAS_DOWN): its error is not news. */
	gboolean was_down;
};

void lease_init(struct lease *l, struct pool *pool);
/* The session was given back before (lease_give_back). */
void lease_clear(struct lease *l);

/* Wire the interrupt now, for a wait that is no borrow (a reader waiting
   for a body being fetched ahead); a borrow does it itself. */
void lease_arm(struct lease *l);

/* From the interrupt callback: abort the session in use, refuse the next. */
void lease_interrupt(struct lease *l);
gboolean lease_interrupted(struct lease *l);

/*
 * Borrow a session, preferring one with mailbox selected (NULL: any).
 * 0, -EINTR (interrupted, or the pool shut down) or -EIO (no connection:
 * one warning logged, or only a debug line while the server is known to be
 * down).
 */
int lease_borrow(struct lease *l, const char *mailbox, struct imap_session **out);
void lease_give_back(struct lease *l);

/*
 * An IMAP failure as the errno the kernel gets: -EINTR when interrupted,
 * else rc. Logs one line (a warning when the link failed: rc -EIO, unless
 * the server was known to be down before: then a debug line) naming
 * `what` (a mailbox or command, escaped for the log), and frees err.
 * Call it after lease_give_back().
 */
int lease_errno(struct lease *l, int rc, GError *err, const char *what);

#endif
