/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * listing_index: a folder's message listing saved on disk (mailfs(1),
 * CACHING AND FRESHNESS: listings are cached with the mailbox's UIDVALIDITY and
 * HIGHESTMODSEQ), so that a remount of an unchanged folder costs one
 * CONDSTORE/QRESYNC round trip instead of a listing of every message.
 *
 * One file per mailbox: DIR/<first 32 hex of SHA-256(wire name)>.idx, mode
 * 0600, replaced atomically (temporary file, rename). The content is one
 * GVariant (GLib's serialisation, safe on untrusted bytes) holding a
 * format tag, the wire name, the `names` mode the names were made under,
 * UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, whether the listing was made asking
 * for object ids, and the messages column by column: UIDs (ascending),
 * RFC822.SIZEs, INTERNALDATEs, file names (one NUL-separated blob), flags
 * as indices into a table of the distinct flag strings (most messages
 * share a handful), and object ids (one NUL-separated blob, "" for none).
 * Neither saving nor loading holds the listing a second time: the writer,
 * sized first, writes each column straight into its place in the file
 * (no GVariant built), and loading maps the file and reads the columns in
 * place, every message checked at lindex_load, the pages read handed back
 * as they are passed. Saving or loading a 1,000,000-message listing costs
 * a few hundred KB beside the tree, not the listing's ~65 bytes a message
 * (~90 with object ids).
 *
 * A file that is truncated, of another format, for another mailbox or
 * names mode, whose names do not start with their own UID, or with an
 * object id longer than TREE_OBJID_MAX or in a listing made without
 * asking for them, is not used: the caller lists the folder in full, as if
 * there were no file; so is one made asking for object ids when the
 * caller does not ask for them now, or the reverse (a listing without ids
 * would make every message of the folder one that is not an object).
 * The HIGHESTMODSEQ saved is the one the listing was brought up to;
 * saving a listing with a newer value than its content would lose changes.
 *
 * Threads: no shared state; callers serialise per mailbox.
 */
#ifndef MFS_LISTING_INDEX_H
#define MFS_LISTING_INDEX_H

#include "model/tree.h"

#include <glib.h>

struct lindex_head {
	guint32 uidvalidity;
	guint32 uidnext;       /* 0: the server did not say */
	guint64 highestmodseq; /* 0: no CONDSTORE for this mailbox */
	guint32 names_mode;    /* the caller's `names` setting the names were made under */
	gboolean objids;       /* the listing was made asking for object ids (tree_msg_info.objid) */
};

struct lindex_writer;

/*
 * A writer of wire's listing into a new file under dir (created 0700), for
 * exactly n messages whose names and object ids take name_bytes and
 * objid_bytes (each with its NUL): every column goes straight to its place
 * in the file, none is held in memory. NULL and *err when the file cannot
 * be made.
 */
struct lindex_writer *lindex_writer_new(const char *dir, const char *wire, gsize n,
					gsize name_bytes, gsize objid_bytes, GError **err);
/* Append one message (uid, size, internaldate, flags, name, objid; in UID order).
   A tree_msg_fn: pass it to tree_folder_foreach_message(). */
void lindex_writer_add(void *writer, const struct tree_msg_info *m);
/*
 * Finish the file and put it in place of the old one (durable first);
 * frees w either way. G_FILE_ERROR_INVAL when the messages added were not
 * the ones the writer was made for (the listing changed between its sizing
 * and its writing): nothing replaced.
 */
gboolean lindex_writer_save(struct lindex_writer *w, const struct lindex_head *head,
			    GError **err);
/* Forget the file being written. */
void lindex_writer_free(struct lindex_writer *w);

struct lindex;

/*
 * The saved listing of wire made under names_mode, asking for object ids
 * or not as objids says (lindex_head()->objids), or NULL: *err is
 * G_FILE_ERROR_NOENT when there is none, G_FILE_ERROR_FAILED when it was
 * made under another format, `names` or object-id setting (an upgrade, a
 * changed option), G_FILE_ERROR_INVAL when it is damaged or of another
 * mailbox (the reason in the message).
 */
struct lindex *lindex_load(const char *dir, const char *wire, guint32 names_mode,
			   gboolean objids, GError **err);
const struct lindex_head *lindex_head(const struct lindex *l);
/* How many messages it holds, and the highest UID (0: none). */
gsize lindex_count(const struct lindex *l);
guint32 lindex_max_uid(const struct lindex *l);
/*
 * The next messages, by ascending UID, into out[0..max): how many (0: no
 * more). A tree_msg_source_fn (pass the lindex as its ud). name, flags and
 * objid (NULL: none) point into l, until lindex_free. The file is mapped,
 * not read: the pages read are handed back as the reading goes on, so a
 * loaded listing costs the tree it goes into, not its own size as well.
 * lindex_rewind starts again from the first.
 */
gsize lindex_read(void *l, struct tree_msg_info *out, gsize max);
void lindex_rewind(struct lindex *l);
void lindex_free(struct lindex *l);

/* Forget wire's saved listing (the mailbox is gone). */
void lindex_remove(const char *dir, const char *wire);

#endif
