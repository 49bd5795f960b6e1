/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * inflight: which message bodies the prefetchers are fetching now, so that
 * no body is fetched twice at the same time (a reader's ranges and
 * a prefetch of the same large message, or both prefetchers on the first
 * messages of a folder, doubled the bytes of a walk).
 *
 * The rule, for a body keyed (mcache_folder_key, uid):
 *   - a prefetcher claims it before sending its FETCH, then looks in the
 *     cache: an entry there (complete, or a reader filling it) means the
 *     body is not its to fetch, and it gives the claim back at once;
 *   - a reader takes its cache entry first (mcache_get), then waits here
 *     while the body is claimed: the prefetcher's bytes land in the very
 *     entry it holds.
 * Whichever comes second sees the other: the prefetcher's claim comes
 * before its look, the reader's entry before its wait.
 *
 * Threads: any; one mutex, a leaf (nothing is called with it held).
 */
#ifndef MFS_INFLIGHT_H
#define MFS_INFLIGHT_H

#include <glib.h>

struct inflight;

struct inflight *inflight_new(void);
void inflight_free(struct inflight *f);

/* Claim the body for one fetch ahead: FALSE when it is claimed already. */
gboolean inflight_claim(struct inflight *f, const char *folder_key, guint32 uid);

/* The claimed body arrived, or will not: wake those waiting for it. */
void inflight_done(struct inflight *f, const char *folder_key, guint32 uid);

/*
 * Wait while the body is claimed: 1 when it was (then look in the cache
 * again), 0 when it was not claimed at all, -1 when stop(ud) said so (it
 * is asked every INFLIGHT_POLL_MS while waiting: a reader's interrupt, so
 * Ctrl-C does not wait for a prefetcher held up by a hung server). stop
 * may be NULL.
 */
#define INFLIGHT_POLL_MS 100
int inflight_wait(struct inflight *f, const char *folder_key, guint32 uid,
		  gboolean (*stop)(void *ud), void *ud);

#endif
