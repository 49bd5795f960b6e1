/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_account: everything the IMAP view knows and does about the account,
 * below the filesystem. The filesystem layer (fs/fs_imap*.c) translates
 * FUSE requests into these calls and replies; it never speaks IMAP. The
 * account owns each folder's freshness and listing, the folder list and
 * namespace, the policies (refresh, walks, reading ahead, saving listings)
 * and every command sent to the server; the body reader is account/body.h.
 *
 * What is where:
 *   imap_account.c     life cycle, threads, status counters
 *   folders.c          folder list (LIST), namespace, folder freshness,
 *                      resync applied to the tree, push notifications
 *   listing_saver.c    listings saved to disk and loaded at remount
 *   readahead.c        walks: listing ahead, prefetch of what is read next
 *   message_headers.c  decoded headers for the user.mail.* attributes
 *   mutate.c           CREATE, DELETE, RENAME, STORE, MOVE, EXPUNGE
 *   appender.c         APPEND of new messages
 *   fetch.c            the select-then-fetch and the FETCH data sinks
 *   body.c             reading a message's bytes through the body cache
 *
 * Threads: every function may be called from any FUSE worker thread at
 * once, except new/free/start/stop, which the daemon calls once each from
 * its main thread. The account starts these threads in imap_account_start
 * and joins them in imap_account_stop: two prefetchers (account/prefetch.h),
 * the push watcher (account/watch.h), one listing saver and two listers.
 *
 * Errors are negative errno values for the kernel, each failure logged once
 * (account/lease.h): -EIO the link or the server failed, -EINTR the request
 * was interrupted, -ESTALE the mailbox became another generation, -EROFS a
 * read-only mount, -EPERM a change the server or the rules refuse.
 */
#ifndef MFS_IMAP_ACCOUNT_H
#define MFS_IMAP_ACCOUNT_H

#include <glib.h>

#include "account/lease.h"
#include "model/headers.h"
#include "model/mcache.h"
#include "model/mime_view.h"
#include "model/tree.h"
#include "startup/options.h"

struct imap_account;

/* What the account tells the filesystem about changes it learns of (the
   kernel's caches are to forget them). Called from any thread, with
   account locks held: they must queue the news, never wait. */
struct account_events {
	void (*entry_gone)(void *ud, guint64 parent, guint64 ino, const char *name);
	void (*inode_changed)(void *ud, guint64 ino);
	void *ud;
};

/* The account over a connected pool, an open cache and a tree. Ownership
   of pool, cache and tree stays with the caller; opts must outlive it.
   Starts no thread (the daemon forks after this). */
struct imap_account *imap_account_new(const struct mfs_options *opts, struct pool *pool,
				      struct mcache *cache, struct tree *tree);
/* After imap_account_stop (or without a start). */
void imap_account_free(struct imap_account *a);
/* Start the threads; ev is copied and used until imap_account_stop. */
void imap_account_start(struct imap_account *a, const struct account_events *ev);
/* Stop and join every thread (a frozen server ends them at once: the pool
   is shut down first), then save the listings changed since last saved. */
void imap_account_stop(struct imap_account *a);

struct pool *imap_account_pool(struct imap_account *a);

/* "name: value" lines for user.mailfs.status. */
char *imap_account_status(struct imap_account *a);

/* -- folders.c ------------------------------------------------------------ */

/* Fetch the folder list (LIST) into the tree, unless fetched within
   `refresh` seconds (force: always). With err, the failure goes there
   instead of the log. */
int imap_account_refresh_list(struct imap_account *a, gboolean force, GError **err);

/* Bring a folder's listing up to date if older than `refresh` (force:
   always); a folder not selectable, or not a folder, is left alone. */
int imap_account_refresh_folder(struct imap_account *a, struct lease *l, guint64 ino,
				gboolean force);

/*
 * imap_account_refresh_folder(ino, FALSE), for a stat of a folder never
 * listed. A first listing is taken into the tree as it arrives
 * (tree_folder_stream_begin): when the server names the newest arrival
 * before the listing (ESORT), known(ud) is called on this thread as soon
 * as the tree shows the folder's mtime, at most once, while the listing
 * goes on; the caller answers its stat there. Returns when the listing is
 * done, as imap_account_refresh_folder.
 */
int imap_account_list_for_stat(struct imap_account *a, struct lease *l, guint64 ino,
			       void (*known)(void *ud), void *ud);

/* What directory ino shows, up to date: the folder list, then its messages.
   Offline (-EIO) a folder listed before still answers from what is known. */
int imap_account_refresh_dir(struct imap_account *a, struct lease *l, guint64 ino);

/*
 * Folder ino is about to be listed for a stat (its mtime is its newest
 * message's): when its parent was the folder read from its start last,
 * within 2 seconds (as a walk's folders), a walker is at work (ls -l, rsync, find
 * stat every entry after a readdir, each stat of a folder a listing): the
 * folders under that parent, ino first, that are due (not given to the
 * listers within `refresh`; up to 32, depth first in name order) are
 * listed in one burst in the background, so ino's listing and the next
 * stats' take about one round trip together. Call before
 * imap_account_refresh_folder; no I/O of its own.
 */
void imap_account_folder_stat(struct imap_account *a, guint64 ino);

/* A readdir of ino from its start: notes the reading pattern (walks), then
   refreshes as imap_account_refresh_dir. 0, or the error the readdir is to
   fail with (-EIO only for a folder never listed: offline, a listed one
   answers from what is known). */
int imap_account_read_dir(struct imap_account *a, struct lease *l, guint64 ino);

/* -- message_headers.c ---------------------------------------------------- */

/* The decoded headers of message ino (from memory, the cached body, or one
   FETCH of their fields), copied into out (mail_headers_clear() it). */
int imap_account_headers(struct imap_account *a, struct lease *l, guint64 ino,
			 struct mail_headers *out);

/* The header a user.mail.* attribute names; *known FALSE for another name. */
const char *imap_account_header_field(const struct mail_headers *h, const char *xattr,
				      gboolean *known);

/* -- mutate.c -------------------------------------------------------------- */

/* mkdir: CREATE of child `name` of folder parent; the tree lists it on 0. */
int imap_account_mkdir(struct imap_account *a, struct lease *l, guint64 parent,
		       const char *name);
/* rmdir: DELETE of an empty folder (not INBOX, not the Trash). */
int imap_account_rmdir(struct imap_account *a, struct lease *l, guint64 parent,
		       const char *name);
/* rm of a message: MOVE to the Trash, or expunge (delete=expunge, or in the
   Trash); -EISDIR for a folder. */
int imap_account_remove(struct imap_account *a, struct lease *l, guint64 parent,
			const char *name);
/* mv of a message to another folder (MOVE), or of a folder (RENAME). */
int imap_account_rename(struct imap_account *a, struct lease *l, guint64 parent,
			const char *name, guint64 newparent, const char *newname);
/* \Deleted and UID EXPUNGE of uid alone in mailbox wire (under
   uidvalidity): for a message mailfs itself appended a moment ago. */
int imap_account_expunge(struct imap_account *a, struct lease *l, const char *wire,
			 guint32 uidvalidity, guint32 uid);
/*
 * ln: message ino (an object, model/tree.h) gets a name in folder
 * newparent: UID COPY there, then the folder is listed again. On 0, *out is
 * the new name's entry (TREE_WANT_NAME), one lookup reference counted for
 * the kernel. -EPERM when ino is no object (no object ids, a new file) or
 * newparent cannot hold messages, -EEXIST when it holds ino already, -EIO
 * when the copy did not keep the message's identity.
 */
int imap_account_link(struct imap_account *a, struct lease *l, guint64 ino, guint64 newparent,
		      struct tree_entry *out);
/* The flags of message ino become `flags` (canonical, append_parse_flags). */
int imap_account_store_flags(struct imap_account *a, struct lease *l, guint64 ino,
			     const char *flags);

/* A new message for folder: the bytes of fd (read with pread), its date
   (mtime), its flags (canonical, or NULL) and the local name (for the log).
   Replacing: own_uid (under own_uidvalidity) is a message an earlier APPEND
   of the same file made, expunged once the new one is in; replaces is a
   message of folder (tree ino) the new one takes the place of: its flags and
   INTERNALDATE are carried over and it is removed as rm removes it. */
struct new_message {
	int fd;
	gint64 mtime;
	/* mtime was given by the writer (rsync -a, cp -p): the message's
	   INTERNALDATE is then part of what "already there" compares. */
	gboolean dated;
	const char *flags;
	const char *name;
	guint32 own_uid;
	guint32 own_uidvalidity;
	guint64 replaces;
};

/* What an APPEND made: the new message's UID (0 when the server did not say,
   or when nothing was sent), and the flags and date it was sent with. */
struct appended {
	guint32 uid;
	guint32 uidvalidity;
	char *flags; /* g_free */
	gint64 mtime;
};

/* APPEND it, unless (a new file only, not a replacement) the folder holds
   a message of the same size (after the CRLF conversion), INTERNALDATE
   (mtime, to the second) and bytes already (then 0, nothing sent). -EFBIG
   over the server's APPENDLIMIT or 256 MiB, -EINVAL for bytes APPEND cannot
   carry (empty, NUL). A replacement is all or nothing: when the old message
   cannot be removed, the new one is expunged again and the error returned.
   out may be NULL. */
int imap_account_append(struct imap_account *a, struct lease *l, guint64 folder,
			const struct new_message *m, struct appended *out);

/* A message larger than this is refused (EFBIG) rather than read into memory. */
#define APPEND_MAX ((guint64)256 * 1024 * 1024)

/* -- search.c ------------------------------------------------------------- */
/* The .search directories' nodes and results (model/search_nodes.h). */
struct search_nodes *imap_account_search_nodes(struct imap_account *a);
/*
 * Make query node query's result current (mailfs(1), SEARCH): searched
 * again when it holds none, is older than `refresh`, or the account changed
 * since (push, or a change made through this mount). Offline (-EIO), an
 * older result still answers. 0, -ENOENT (the query is malformed, names no
 * folder, or the server refused it: one info line says why), -EIO, -EINTR.
 */
int imap_account_search(struct imap_account *a, struct lease *l, guint64 query);
/*
 * The query node `text` under root node root, searched as above; a
 * malformed query makes no node (-ENOENT, one info line saying where it is
 * wrong). -ENOSPC when no more nodes can be made.
 */
int imap_account_search_lookup(struct imap_account *a, struct lease *l, guint64 root,
			       const char *text, guint64 *query);

/* -- parts.c -------------------------------------------------------------- */
/* The .parts directories' nodes (model/parts_nodes.h). */
struct parts_nodes *imap_account_parts_nodes(struct imap_account *a);
/* A message's MIME structure, shared and immutable while referenced. */
struct parts_structure;
const struct mime_structure *parts_structure_get(const struct parts_structure *ps);
void parts_structure_unref(struct parts_structure *ps);
/*
 * The structure of message ino (mailfs(1), PARTS): kept in memory (the 256
 * used last), else from its body in the cache, else as fetched before and
 * kept in the cache, else one UID FETCH BODYSTRUCTURE (then kept there). 0, -ENOENT (no such message, or expunged), -EIO (the link,
 * or an answer that is no structure: one warning), -EINTR.
 */
int imap_account_structure(struct imap_account *a, struct lease *l, guint64 message,
			   struct parts_structure **out);
/* The bytes of one .parts file: a cache entry (complete), or memory when
   the cache could not keep them. */
struct part_data {
	struct mcache_entry *entry;
	GBytes *mem;
	guint64 size;
};
/*
 * The bytes entry me (of message's structure, model/mime_view.h) shows,
 * whole: from the cache, else made from the section's bytes (the cached
 * body, else one UID FETCH BINARY.PEEK or BODY.PEEK of the section) and
 * kept in the cache. 0, -ENOENT, -EFBIG (over 256 MiB), -EIO, -EINTR.
 */
int imap_account_part_open(struct imap_account *a, struct lease *l, guint64 message,
			   const struct mime_entry *me, struct part_data *out);
/* Bytes of p from off: the count read (0 at the end), or -errno. */
gssize part_data_read(struct part_data *p, void *buf, size_t len, guint64 off);
void part_data_clear(struct part_data *p);

#endif
