/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * watch: push for one mailbox (design §2 "Freshness", §7).
 *
 * A thread with an IMAP connection of its own EXAMINEs the mailbox and
 * IDLEs on it, renewing the IDLE every `renew_s` seconds (servers drop it
 * after 10 to 30 minutes). Whenever the server reports anything (new mail,
 * an expunge, a flag change by another client) the `changed` callback runs
 * on the watch thread, outside any FUSE request, so it may fetch and send
 * kernel notifications. Without IDLE it calls `changed` every `poll_s`
 * seconds instead. A lost connection is made again with backoff (1 s
 * doubling to 60 s); `changed` also runs after a reconnect, since anything
 * may have happened meanwhile.
 *
 * Threads: watch_start/watch_stop from one thread; watch_stop aborts the
 * connection at once and joins.
 */
#ifndef MFS_WATCH_H
#define MFS_WATCH_H

#include <glib.h>

#include "protocol/imap_client.h"

struct watch;

struct watch *watch_start(const struct imap_session_opts *opts, const char *mailbox, int renew_s,
			  int poll_s, void (*changed)(void *ud), void *ud);
void watch_stop(struct watch *w);

#endif
