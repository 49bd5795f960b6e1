/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * walk: how readers move through the mailbox, and what to fetch ahead of
 * them. Pure policy: no locks, no I/O, no clock (times are passed in, in
 * g_get_monotonic_time() microseconds); the caller holds whatever lock
 * guards the structures (account/imap_account_internal.h says which).
 *
 * Three patterns are recognised:
 *   - a tree walk (rsync, find, ls -R, grep -r): folder after folder is
 *     read from its start, each within WALK_WINDOW_US of the one before;
 *   - a sequential reader in a folder: files opened one after another,
 *     within SEQUENTIAL_GAP_US, or the first file opened right after the
 *     folder was read (rsync, grep -r and tar list, then open at once);
 *   - anything else (one file picked): nothing is fetched ahead.
 * A folder's reading orders hold its listing in the two orders readers
 * use: by UID (readdir order: grep, tar) and by name (rsync sorts).
 */
#ifndef MFS_WALK_H
#define MFS_WALK_H

#include <glib.h>

#include "account/prefetch.h"

/* Folders read within this of one another make a tree walk. */
#define WALK_WINDOW_US (2 * G_USEC_PER_SEC)
/* Opens further apart than this do not make a sequential reader. */
#define SEQUENTIAL_GAP_US (10 * G_USEC_PER_SEC)
/* Messages asked for ahead at most per open. */
#define AHEAD_MAX 256

/* One message of a folder's listing, for the reading orders. */
struct listed {
	guint32 uid;
	guint64 size;
	char *name;
};

/* A GArray of struct listed whose names are freed with it. */
GArray *listed_array_new(void);

struct reading_orders {
	GArray *by_uid;	    /* struct listed, ascending UID (as listed); NULL: none yet */
	GPtrArray *by_name; /* struct listed *, into by_uid, by name */
	guint64 gen;	    /* the listing generation they were built from */
	guint32 uidvalidity;
};

/* Replace o's orders with listed (taken over; in UID order) of generation gen. */
void reading_orders_set(struct reading_orders *o, GArray *listed, guint32 uidvalidity,
			guint64 gen);
void reading_orders_clear(struct reading_orders *o);

/* Where reading goes on past the message (uid, name): the first position
   after it in the UID order (*pu) and in the name order (*pn). */
void reading_orders_after(const struct reading_orders *o, guint32 uid, const char *name,
			  guint *pu, guint *pn);

/* TRUE when uid is first in neither order: a reader picked one file. */
gboolean reading_orders_not_first(const struct reading_orders *o, guint32 uid);

/* The order a reader follows through a folder, once two opens showed it. */
enum read_order {
	READ_EITHER,  /* not known yet: both */
	READ_BY_UID,  /* readdir order: grep, tar */
	READ_BY_NAME, /* sorted: rsync */
};

/* Which order has uid right after prev_uid: READ_EITHER when both (the
   orders agree there) or neither (the reader skipped). */
enum read_order reading_orders_follows(const struct reading_orders *o, guint32 prev_uid,
				       guint32 uid);

/*
 * From position pu of the UID order and pn of the name order, the messages
 * to fetch ahead (struct prefetch_item appended to items): in the order the
 * reader follows, or, while that is not known, the two orders alternating
 * (the reader may be rsync or grep). Only one order once it is known: what
 * comes next in the other, a reader following this one has read already or
 * reads last, and with a cache smaller than the walk it would be fetched
 * again or evicted unread. Each message once, bodies over PREFETCH_MAX_BODY
 * skipped (the reader's ranged reads take them), at most AHEAD_MAX in all,
 * within *budget bytes (what they take is taken off).
 */
void reading_orders_pick(const struct reading_orders *o, guint pu, guint pn,
			 enum read_order order, guint64 *budget, GArray *items);

/* A folder's recent opens. */
struct open_pattern {
	gint64 last_open;
	guint32 last_uid;
	guint streak;	   /* files opened one after another */
	enum read_order order; /* the streak's order, once seen; the caller sets it */
	gint64 readdir_at; /* the folder was read from its start: 0 once used */
};

/* What an open of message uid at `now` means for reading ahead. */
struct open_verdict {
	gboolean ahead; /* the reader is sequential: fetch ahead */
	gboolean walk;	/* first open right after the folder was read */
};

struct open_verdict open_pattern_note(struct open_pattern *p, guint32 uid, gint64 now);

/* The last folder read from its start, for tree walks. */
struct walk_state {
	gint64 dir_read_at;
	guint64 dir_read_ino;
	gint64 tree_walk_at; /* a tree walk was last seen */
};

/* Folder ino was read from its start at now: TRUE when that continues a
   tree walk (another folder was read within WALK_WINDOW_US). */
gboolean walk_note_dir_read(struct walk_state *w, guint64 ino, gint64 now);

/* Whether a tree walk was seen within `recent` microseconds of now. */
gboolean walk_recent(const struct walk_state *w, gint64 now, gint64 recent);

#endif
