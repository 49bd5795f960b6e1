/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * prefetch: fetch bodies ahead of a sequential reader (mailfs(1), prefetch).
 *
 * rsync, grep -r and tar open the files of a folder one after another, and
 * every open of an uncached message would cost a round trip. The filesystem
 * layer sees the pattern and asks for the messages the reader will open
 * next; one worker thread fetches them with pipelined UID FETCHes on a
 * connection borrowed from the pool, straight into the body cache, where
 * the reader's open then finds them. Each request replaces the previous
 * one not yet started (the reader has moved on); bodies larger than
 * PREFETCH_MAX_BODY are left to the reader's own ranged reads.
 *
 * Within a budget it can keep: a body is sent for only when the
 * cache grants room for it (mcache_ahead_reserve: beside the bodies open
 * and those held for readers, and with those held and in flight within
 * cap and half the cache);
 * what arrives is held in the cache until its reader comes, so it is never
 * evicted unread to make room for more of the same walk. With no room, the
 * prefetcher waits for readers to come (and gives its connection back
 * after a few seconds without one) instead of evicting its own unread work.
 * A body larger than may ever be fetched ahead (over half the cache or cap)
 * is left to the reader.
 * No body is fetched twice at once: each is claimed in the account's
 * inflight registry (account/inflight.h) before it is sent for, and passed
 * over when another prefetcher claimed it or a reader is filling it.
 * Releasing the holds of bodies the reader passed or abandoned is the
 * caller's (account/readahead.c).
 *
 * Threads: prefetch_request from any thread; prefetch_stop joins.
 */
#ifndef MFS_PREFETCH_H
#define MFS_PREFETCH_H

#include <glib.h>

#include "account/inflight.h"
#include "account/pool.h"
#include "model/mcache.h"

#define PREFETCH_MAX_BODY ((guint64)8 * 1024 * 1024)

struct prefetch;

struct prefetch_item {
	guint32 uid;
	guint64 size;
};

/* cap: bytes fetched ahead (held unread, or in flight) at most, shared
   with any other prefetcher of the cache (`prefetch`). */
struct prefetch *prefetch_start(struct pool *pool, struct mcache *cache, struct inflight *inflight,
			       guint64 cap);
void prefetch_stop(struct prefetch *p);

/* Messages of one mailbox (under uidvalidity), in the order to fetch them. */
struct prefetch_segment {
	const char *mailbox;
	guint32 uidvalidity;
	const struct prefetch_item *items;
	guint n;
};

/*
 * Fetch these segments' messages into the cache, segment after segment: the
 * first is the folder being read, the others the folders a walk comes to
 * next. The segments are pipelined into one another: a segment's EXAMINE
 * and first fetches go out as soon as the one before has sent its last, so
 * the link does not idle at a folder's end (each EXAMINE's UIDVALIDITY is
 * checked before a body of its segment is kept). The request replaces one
 * not started yet. A running one goes on when the new one holds the
 * mailbox it is sending for, with nothing before it but what the running
 * job queued already (that segment's queue becomes the new one's, its
 * later segments the new ones); else it stops.
 */
void prefetch_request(struct prefetch *p, const struct prefetch_segment *segs, guint nsegs);

/* A reader came for what was fetched ahead (any thread; p may be NULL): a
   prefetcher waiting for room looks again at once. */
void prefetch_room_freed(struct prefetch *p);

/* Bodies and bytes fetched ahead so far (all that arrived, kept or not),
   and the bytes of those not kept: the cache could not keep them, or they
   turned out another generation's (fetched for nothing). */
void prefetch_counters(struct prefetch *p, guint64 *messages, guint64 *bytes, guint64 *unused);

#endif
