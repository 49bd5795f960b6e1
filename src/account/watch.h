/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * watch: push for one mailbox, and for every folder where the server has
 * NOTIFY (mailfs(1), CACHING AND FRESHNESS).
 *
 * A thread with an IMAP connection of its own EXAMINEs the mailbox and
 * IDLEs on it, renewing the IDLE every `renew_s` seconds (servers drop it
 * after 10 to 30 minutes). Where the server offers NOTIFY (RFC 5465), it
 * first asks for MessageNew, MessageExpunge and FlagChange in every
 * personal mailbox too; those come as STATUS responses during the IDLE.
 * Whenever the server reports anything, `changed` runs on the watch thread,
 * outside any FUSE request (so it may fetch and send kernel notifications),
 * with the wire name of the mailbox that changed: the watched one for new
 * mail, expunges and flag changes there, another for a STATUS. Without IDLE
 * it calls `changed` for the watched mailbox every `poll_s` seconds
 * instead. A lost connection is made again with backoff (1 s doubling to
 * 60 s); after each connect `changed` runs with NULL: anything, anywhere,
 * may have happened while no one watched. `seen` then says what push began
 * from (NULL in every other call); from that state on, push reports every
 * change, so a listing of a mailbox in that same state needs no new look:
 *   watched: what the EXAMINE of the watched mailbox said (UIDVALIDITY,
 *     UIDNEXT, EXISTS, HIGHESTMODSEQ), when nothing in it changed between
 *     that EXAMINE and the IDLE; else NULL;
 *   others: with NOTIFY, the other mailboxes' state as the NOTIFY SET's
 *     STATUS answers gave it (wire name -> struct imap_select_info, up to
 *     WATCH_SEEN_MAX of them, their names within WATCH_SEEN_BYTES, whatever
 *     a server sends); NULL without NOTIFY, when the server sent no such
 *     answers, or more than that.
 *
 * Threads: watch_start/watch_stop from one thread; watch_stop aborts the
 * connection at once and joins.
 */
#ifndef MFS_WATCH_H
#define MFS_WATCH_H

#include <glib.h>

#include "protocol/imap_client.h"

struct watch;

#define WATCH_SEEN_MAX 65536
#define WATCH_SEEN_BYTES (4u << 20)

struct watch_seen {
	const struct imap_select_info *watched;
	GHashTable *others;
};

/*
 * timed_out (may be NULL) hears of a wait of the watch's connection that
 * made no progress for the timeout (a hung server, found by push before
 * any request): TRUE when that is news (the account is down now, and the
 * watch logs its warning), FALSE when it was known (a debug line).
 */
struct watch *watch_start(const struct imap_session_opts *opts, const char *mailbox, int renew_s,
			  int poll_s,
			  void (*changed)(void *ud, const char *mailbox,
					  const struct watch_seen *seen),
			  gboolean (*timed_out)(void *ud, const GError *err), void *ud);
/* Whether the current connection has NOTIFY set up (every folder is pushed). */
gboolean watch_covers_all(struct watch *w);
void watch_stop(struct watch *w);

#endif
