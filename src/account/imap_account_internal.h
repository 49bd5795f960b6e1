/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The IMAP account's state, shared by the account/ files that implement
 * account/imap_account.h. Not for the filesystem layer.
 *
 * Locks, in the one order they may be taken (a lock may be taken while
 * holding the ones above it, never the reverse; doc/architecture.md has the
 * table for the whole daemon):
 *
 *   0. a->census_lock  one census at a time (census.c: every folder listed
 *                      before the first listing answers, with object ids);
 *                      held across the listings
 *   1. a->list_lock    one LIST at a time; held across the round trip
 *   2. f->lock         one listing refresh of folder f at a time; held across
 *                      the round trips. Never two folders' at once, but in
 *                      a listing burst (listing_burst.c), which trylocks
 *                      them: it never waits for one holding another.
 *   3. r->lock         (body.c) one fetch per open file; held across the fetch
 *   4. a->lock         the folder table, the namespace, the walk state and
 *                      every folder's reading pattern and orders; never held
 *                      across I/O
 *   5. a->headers_lock the decoded header cache; never held across I/O
 *   5. a->parts_lock   the message structures kept for .parts (parts.c);
 *                      never held across I/O, never with headers_lock
 * Below all of them, and taken with any of them held: the tree's, the
 * cache's, the pool's, the inflight registry's, the worker sets' and the
 * filesystem's notification queue's own locks, which call nothing back.
 * (A reader waits in inflight_wait holding none of the locks above.)
 *
 * Counters are updated and read with __atomic builtins, no lock.
 */
#ifndef MFS_IMAP_ACCOUNT_INTERNAL_H
#define MFS_IMAP_ACCOUNT_INTERNAL_H

#include "account/fetch.h"
#include "account/imap_account.h"
#include "account/inflight.h"
#include "account/lease.h"
#include "account/prefetch.h"
#include "account/resync.h"
#include "account/walk.h"
#include "account/watch.h"
#include "model/parts_nodes.h"
#include "model/search_nodes.h"
#include "util/lock.h"
#include "util/workers.h"

/* A listing that keeps changing is written to disk at most this often. */
#define INDEX_SAVE_INTERVAL_US (10 * G_USEC_PER_SEC)

/* One folder's state. Lives as long as the account (never removed from
   a->folders), so a pointer to it may be kept without a->lock. */
struct folder_state {
	mfs_mutex lock;
	/* guarded by lock: the listing's freshness and what it was brought up
	   to (account/resync.h), and its copy on disk */
	gint64 fetched_at;
	guint32 uidvalidity;
	guint32 uidnext;
	guint64 highestmodseq;
	gboolean index_tried; /* the saved listing was looked for */
	gboolean index_dirty; /* the tree holds more than the saved listing */
	gboolean save_queued; /* with the saver thread */
	gint64 index_saved_at;
	/* Written under lock, read anywhere with __atomic_load_n: bumped each
	   time a listing is applied, so reading orders can tell they are old
	   without waiting for a refresh that holds lock. 0: never listed. */
	guint64 listed_gen;
	/* guarded by lock: when the server last changed the UIDVALIDITY
	   (UNSTABLE_CHANGES of them, oldest first), and whether it was said */
	gint64 uidvalidity_changed_at[3];
	gboolean unstable_said;

	/* guarded by the account's a->lock */
	gint64 ahead_at; /* last given to the listers (account_now()), 0: never */
	struct open_pattern pattern;
	struct reading_orders orders;
};

struct imap_account {
	const struct mfs_options *opts;
	struct pool *pool;
	struct mcache *cache;
	struct tree *tree;
	/* Set by imap_account_start, cleared by imap_account_stop; the
	   threads using them run only in between. */
	struct account_events ev;
	struct prefetch *prefetch;
	struct prefetch *prefetch_next; /* the folders a tree walk comes to next */
	struct inflight *inflight;	/* bodies being fetched ahead: readers wait */
	struct watch *watch;
	struct workers *saver;	/* one thread writing listings to disk */
	struct workers *lister; /* listings ahead of a walk */

	mfs_mutex census_lock;
	gboolean census_done; /* set under census_lock; read atomically */

	mfs_mutex list_lock;
	gint64 list_fetched_at; /* guarded by list_lock */

	mfs_mutex lock;
	GHashTable *folders; /* guarded by lock: ino -> struct folder_state */
	char delim;	     /* guarded by lock: the hierarchy delimiter, 0: flat */
	char *trash_wire;    /* guarded by lock: the Trash mailbox, or NULL */
	struct walk_state walk; /* guarded by lock */
	/* guarded by lock: bodies fetched ahead, held for their reader
	   (readahead.c): the folders prefetch_next was asked for in this tree
	   walk (mcache_folder_key set) and the folder read last */
	GHashTable *walk_ahead_keys;
	char *reading_key;
	/* guarded by lock: mailboxes whose UIDVALIDITY keeps changing
	   (folders.c), by wire name, for the status */
	GPtrArray *unstable;

	/* The .search directories (model/search_nodes.h: locks itself). */
	struct search_nodes *search_nodes;
	/* atomic: bumped at every change the account learns of (push, or made
	   through this mount), so a search result older than it is made again */
	guint64 search_gen;

	/* The .parts directories (model/parts_nodes.h: locks itself). */
	struct parts_nodes *parts_nodes;
	mfs_mutex parts_lock;
	GHashTable *structures;	  /* guarded by parts_lock: message ino -> struct parts_structure */
	GQueue *structures_used;  /* guarded by parts_lock: the same, used last at the tail */

	mfs_mutex headers_lock;
	GHashTable *headers; /* guarded by headers_lock: ino -> struct mail_headers */

	/* atomics */
	guint64 messages_fetched;
	guint64 bytes_fetched;
	guint64 bodies_from_cache;
	guint64 listings_full;
	guint64 listings_resynced;
	guint64 headers_from_cache;
	guint64 structures_fetched; /* UID FETCH BODYSTRUCTURE answered */
	guint64 parts_fetched;	    /* UID FETCH of one part's section answered */
};

static inline gint64 account_now(void)
{
	return g_get_monotonic_time();
}

/* imap_account.c */
/* Whether listings ask for the messages' object ids (mailfs(1), Links):
   `hardlinks` is on and the pool's first login (pool_caps, made at mount
   before any listing) offered OBJECTID or X-GM-EXT-1. The same answer for
   the whole mount; any thread, no lock of the account (the pool's own,
   briefly). */
gboolean account_wants_objids(struct imap_account *a);

/* census.c: with object ids, every shown folder listed once before the
   first listing answers (mailfs(1), Links); other requests wait for it.
   0, or -EINTR when l was interrupted (the next request finishes it). */
int account_census(struct imap_account *a, struct lease *l);

/* folders.c */
GHashTable *account_folders_new(void);
struct folder_state *account_folder(struct imap_account *a, guint64 ino);
/* Tell the filesystem, and forget the headers of, what a tree change removed. */
void account_removed(struct imap_account *a, GArray *removed);
void account_mark_stale(struct imap_account *a, guint64 folder);
/* Locked (f->lock): apply res, a resync of folder ino (wire) from known,
   to the tree and the disk (idx: the saved listing known came from, or
   NULL). 0 or a negative errno. */
struct lindex;
int account_apply_resync(struct imap_account *a, struct folder_state *f, guint64 ino,
			 const char *wire, struct lindex *idx, const struct resync_known *k,
			 const struct resync_result *res);
/* After account_apply_resync (rc its result): whether folder ino now holds
   as many messages as the server says; FALSE (an info line said so): list
   it in full. */
gboolean account_count_agrees(struct imap_account *a, guint64 ino, const char *wire, int rc,
			      const struct resync_result *res);
/* Locked (f->lock): resync folder ino (wire) on s from known and apply it;
   when the count then disagrees, list it in full. stream (may be NULL):
   the first resync's (resync_folder); the caller ends what it began. */
int account_resync_and_apply(struct imap_account *a, struct folder_state *f, guint64 ino,
			     const char *wire, struct imap_session *s, struct lindex *idx,
			     struct resync_known *known, struct resync_stream *stream,
			     GError **err);
void account_mailbox_changed(void *ud, const char *wire, const struct watch_seen *seen);
/* The Trash mailbox (a copy), or NULL. */
char *account_trash(struct imap_account *a);

/* mutate.c: one info line with the server's words ([CODE] text) for a
   command it answered NO or BAD; nothing when it did not answer. */
void account_log_refused(const char *what, const struct imap_result *res);
/* rm of message e (wire, uid, uidvalidity, name, ino): MOVE to the Trash or
   expunge, as `delete` says; the tree forgets it on 0. */
int account_remove_message(struct imap_account *a, struct lease *l, const struct tree_entry *e);

/* parts.c: the .parts state's life */
void parts_state_init(struct imap_account *a);
void parts_state_clear(struct imap_account *a);

/* search.c: a change to the account; search results are to be made again. */
void account_search_changed(struct imap_account *a);

/* listing_saver.c */
/* The messages the tree holds for folder ino. */
guint32 listing_count(struct imap_account *a, guint64 ino);
/* Locked (f->lock): what is known of folder ino, from memory or from disk. */
struct lindex *listing_known(struct imap_account *a, struct folder_state *f, guint64 ino,
			     const char *wire, struct resync_known *k);
/* Locked (f->lock): after a change to f's listing, have it saved in time. */
void listing_save_soon(struct imap_account *a, struct folder_state *f, guint64 ino);
void listing_save_job(void *data, void *user_data);
void listing_save_all(struct imap_account *a);

/* listing_burst.c */
/* Folders one burst lists at most (their answers are in memory at once). */
#define LIST_BURST_MAX 32
/*
 * List folders inos[0..n) (the first LIST_BURST_MAX of them that are due)
 * on one session of l, their commands pipelined (account/resync.h,
 * resync_folders), each as imap_account_refresh_folder lists it, not
 * forced. A folder being listed by another thread, or fresh, is left out;
 * one that fails does not stop the others (its reader lists it and says
 * why). Takes the folders' locks with trylock only (doc/architecture.md,
 * Locks); the caller holds none of the account's.
 */
void account_list_burst(struct imap_account *a, struct lease *l, const guint64 *inos, guint n);

/* readahead.c */
void readahead_list_job(void *data, void *user_data);
/* Folder ino is read from its start: note it, and list ahead of a walk. */
void imap_account_dir_read_from_start(struct imap_account *a, guint64 ino);
/* A reader opened message uid (name) of folder: fetch ahead of it when it
   reads one file after another. */
void imap_account_reader_came(struct imap_account *a, guint64 folder, guint32 uid,
			      const char *name, const char *wire, guint32 uidvalidity);

#endif
