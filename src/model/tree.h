/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tree: the IMAP account as a directory tree of inode numbers (mailfs(1),
 * IMAP VIEW: Folders, Message names, Attributes). Pure model: no I/O, no FUSE
 * header. The FUSE layer feeds it LIST results and message listings, and asks
 * it lookup / getattr / readdir / forget questions.
 *
 * INODE NUMBERS are stable within a mount and never reused:
 *   - TREE_ROOT_INO (1, FUSE_ROOT_ID) is the account root;
 *   - a folder gets the next number of a counter (2, 3, ...; always < 2^32)
 *     the first time its wire name is seen, and keeps it for as long as LIST
 *     keeps listing that wire name (or a child of it);
 *   - a message is (EPOCH << 32) | UID, where EPOCH (>= 1) is drawn from a
 *     counter each time a folder gets a message set for a new UIDVALIDITY, so
 *     a UIDVALIDITY change gives every message a new number, and the same UID
 *     keeps the same number while UIDVALIDITY holds. Nothing per message is
 *     stored for its number. EPOCH stays below 2^29 (one per
 *     UIDVALIDITY change seen), so a message number never has bit 61, 62
 *     (the .search and .parts nodes, model/search_nodes.h,
 *     model/parts_nodes.h) or 63 (new files, model/staging.h) set;
 *   - a message with an object id (below) is TREE_OBJECT_BIT | N instead,
 *     N from a counter, the first time the id is seen; it keeps that number
 *     while any folder listed holds the id, and after while referenced.
 *
 * OBJECTS (mailfs(1), Links). A message listed with an objid (the server's
 * identity of the message across folders: OBJECTID's EMAILID, Gmail's
 * X-GM-MSGID) is one node, an object, whatever the number of folders
 * listing it: each folder entry is a NAME of it. All names answer with the
 * object's inode number; nlink counts the live names. The REPRESENTATIVE
 * is the name in the folder of lowest inode number (then lowest UID): its
 * folder, UID, UIDVALIDITY, size, date and flags are what tree_get gives
 * for the object, so the body is read and cached through it alone.
 * tree_lookup / tree_readdir / tree_folder_message give the object's inode
 * number with their own folder's UID, wire name and flags (what rm and mv
 * of that name need), and set `alias` when the name is not the
 * representative. Lookup references are the object's. An object whose
 * last name leaves is gone (tree_get gives the last name's attributes)
 * until forgotten. A message of a folder listed without an objid is not
 * an object and never becomes one while its UID stays.
 *
 * FOLDERS (tree_apply_list). The wire name is split at the server's delimiter
 * (NIL: one level); each level is decoded from modified UTF-7 (a level that is
 * not valid mUTF-7 keeps its raw bytes) and then passed through names_escape().
 * A first level equal to "INBOX" in any case is shown as "INBOX" and is the
 * same folder whatever case the server used, so a Courier-style namespace
 * ("INBOX.Sent", delimiter '.') shows as INBOX/Sent. Levels the server did not
 * list become directories without messages (like \Noselect). A folder's
 * identity is its wire-name prefix, not its shown name.
 *
 * Hiding: a mailbox is hidden, with everything below it, when an `exclude`
 * glob (GPatternSpec) matches its path or the path of one of its ancestors,
 * and (unless virtual_folders_show) when it carries SPECIAL-USE \All,
 * \Flagged or \Important. The path matched is the levels joined by '/',
 * each level decoded (UTF-8; a level that is not valid mUTF-7 as its
 * names_escape()d raw bytes), e.g. "[Gmail]/All Mail". '*' also matches '/',
 * so "Archive*" hides Archive and all below it.
 *
 * Duplicate names. names_escape() is injective, so two siblings can only get
 * the same shown name from different wire names when (a) a level that is not
 * valid mUTF-7 shows its raw bytes and those equal another level's decoding
 * ("&bad" raw vs "&-bad" decoded), or (b) a server lists two wire names for
 * one decoded name in different mailboxes' delimiters. Then the folder created
 * later (mailboxes are processed in strcmp order of their wire names, so the
 * first mount of a given LIST is deterministic) gets "NAME%~2", "NAME%~3", ...:
 * '%' followed by '~' is never produced by names_escape(), so such a name
 * collides with nothing; names_unescape() rejects it (it is not creatable by
 * mkdir, which is right: it names an existing folder only). A shown name is
 * frozen for the life of the folder's inode number.
 *
 * Folder names never collide with message file names: names_escape() escapes
 * a name that looks like a message file ("4711-x.eml" -> "%34711-x.eml").
 *
 * MESSAGES (tree_folder_set_messages) get the frozen name
 * names_message_name(uid, names_subject_slug(subject)), or "UID.eml" with
 * names_uid. A name is computed once per (folder, UIDVALIDITY, UID); later
 * listings update only the flags. tree_lookup() of a message resolves the
 * leading UID and then requires the exact canonical name (else -ENOENT).
 *
 * NLOOKUP. tree_lookup(ref = TRUE) and tree_readdir(plus = TRUE) count one
 * kernel reference per entry returned, as FUSE does; tree_forget() takes them
 * back. A folder or message that leaves the tree (server removed it, or its
 * UIDVALIDITY changed) is reported in the `removed` array, disappears from
 * lookup and readdir at once, and stays answerable by tree_get() (with
 * `gone` set, and its last size and date) until its count is forgotten to
 * 0; then its memory goes. A file the kernel holds open keeps its count
 * above 0, so the FUSE layer answers its getattr from here. The
 * root is never freed. A message count is 32-bit and saturates (a kernel does
 * not hold 4 billion references to one file).
 *
 * READDIR ORDER AND OFFSETS. Entries come as ".", "..", then child folders in
 * inode order (= order of first appearance; on a fresh mount, strcmp order of
 * the wire names), then messages by ascending UID. The offset passed back
 * (next_off) is not a position but a key of the entry just returned:
 *     1 after ".", 2 after "..", 3 + INO after a folder, 2^33 + UID after a
 *     message;
 * a readdir resumed with it continues with the first entry whose key is
 * greater. So concurrent changes never make a listing repeat or skip an
 * entry that existed during the whole listing; entries added meanwhile appear
 * if they sort after the point reached.
 *
 * THREADS. The tree has its own mutex: every function may be called from any
 * thread, and results are copies (struct tree_entry, the removed array), so
 * nothing the caller holds points into the tree. The one exception is the
 * tree_readdir() callback, which runs with the mutex held: it must not call
 * any tree_ function nor block (fuse_add_direntry into a buffer is fine).
 * tree_folder_set_messages() computes subject slugs outside the mutex.
 *
 * Errors are negative errno values: -ENOENT (no such inode or name),
 * -ENOTDIR (a message where a folder is needed), -EISDIR (a folder where a
 * message is needed), -EINVAL (message listing for a folder without messages).
 */
#ifndef MFS_TREE_H
#define MFS_TREE_H

#include "protocol/imap_client.h"
#include "protocol/uidset.h"

#include <glib.h>

#define TREE_ROOT_INO 1
/* Object inode numbers: bit 61 alone of the top three (see INODE NUMBERS). */
#define TREE_OBJECT_BIT ((guint64)1 << 61)
#define TREE_OBJID_MAX 256
/* Whether ino is an object's number (it may be unknown to the tree). */
#define TREE_IS_OBJECT(ino) (((guint64)(ino) >> 61) == 1)

enum tree_kind {
	TREE_FOLDER = 1,
	TREE_MESSAGE = 2,
};

struct tree_options {
	gboolean names_uid;	    /* names = uid: "UID.eml" */
	const char *const *exclude; /* NULL-terminated globs; NULL: none. Copied. */
	gboolean virtual_folders_show;
};

struct tree;

/* opts may be NULL (defaults: uid-subject names, no excludes, hide virtual). */
struct tree *tree_new(const struct tree_options *opts);
void tree_free(struct tree *t);

/*
 * One change the kernel must be told of. name is owned by the array
 * element.
 *   - linked FALSE: the entry (parent, name) left, and inode ino with it:
 *     notify_delete(parent, ino, name);
 *   - linked TRUE, name set: only the name left; ino is an object that
 *     keeps other names (its link count dropped): inval_entry(parent, name)
 *     and inval_inode(ino), never notify_delete (it zeroes the link count);
 *   - linked TRUE, name NULL (parent 0): object ino got a name, or lost one
 *     with a folder that left (its link count changed): inval_inode(ino).
 * Linked entries are reported only for an object the kernel holds (lookup
 * count above 0): it has no name or attributes of any other cached.
 */
struct tree_removed {
	guint64 parent;
	guint64 ino;
	char *name;
	gboolean linked;
};

/* A GArray of struct tree_removed that frees the names (g_array_unref). */
GArray *tree_removed_new(void);

/*
 * Make the folders those of `mailboxes` (GPtrArray of struct
 * imap_mailbox_info, not kept). Folders whose wire name stays keep their
 * inode number and shown name; new ones are added; vanished ones are appended
 * to removed (may be NULL), children before their parents. The messages of a
 * removed folder are not reported one by one (implied). A folder that
 * stays but loses its messages (now \Noselect, or no longer listed itself
 * but still the parent of a listed one) has its messages reported one by one.
 */
void tree_apply_list(struct tree *t, GPtrArray *mailboxes, GArray *removed);

/* One message of a listing (UID FETCH (UID RFC822.SIZE INTERNALDATE FLAGS ...)). */
struct tree_msg_info {
	guint32 uid;	     /* 0: the entry is skipped */
	gboolean update_only; /* flags of a message that may be held: never added */
	guint64 size;	     /* RFC822.SIZE */
	gint64 internaldate; /* seconds since the epoch */
	const char *flags;   /* space-separated, as for user.imap.flags; NULL = "" */
	const char *subject; /* raw Subject header value; NULL = none */
	const char *objid;   /* the message's identity across folders (see
				OBJECTS), or NULL; at most TREE_OBJID_MAX bytes,
				longer ones are ignored */
	const char *name;    /* the file name, when known already (a saved listing,
				or made as the listing arrived): used instead of one
				made from subject. Trusted: the caller made it with
				names_message_name() or checked it with
				names_parse_uid() */
};
/* update_only beside uid: 56 bytes, not 64 (a listing or a saved one
   loaded holds one a message: 8 MB at 1,000,000). */

/*
 * Make msgs[0..n) the complete message listing of folder (any order; a UID
 * given twice counts once, the first wins). If uidvalidity differs from the
 * folder's current one, every old message is removed (reported) and all get
 * new inode numbers. Else: a UID already present keeps inode number, name,
 * size and date (immutable per UID; see tree_message_set_size) and takes the
 * new flags; new UIDs are added; UIDs not in msgs are removed and reported
 * (removed may be NULL). Returns 0, -ENOENT, -ENOTDIR or -EINVAL (folder
 * cannot hold messages).
 */
int tree_folder_set_messages(struct tree *t, guint64 folder, guint32 uidvalidity,
			     const struct tree_msg_info *msgs, gsize n, GArray *removed);

/*
 * A source of a listing too big to hold twice (a saved one): fills
 * out[0..max) with its next messages, by ascending UID, and returns how
 * many (0: no more). Called with the tree locked: it must not call tree
 * functions. What the infos point to need last only until the next call.
 */
typedef gsize (*tree_msg_source_fn)(void *ud, struct tree_msg_info *out, gsize max);

/*
 * tree_folder_set_messages for a listing read from next chunk by chunk,
 * under one hold of the tree's lock (no reader sees part of it), into a
 * folder holding no listing of uidvalidity: a first one, or one of
 * another UIDVALIDITY (whose messages all leave, as there). The folder's
 * memory grows by the listing's messages only, never by a copy of the
 * listing. n_hint: how many messages next will give (the room made at
 * once). -EEXIST (next not called) when the folder holds a listing of
 * uidvalidity already; else as tree_folder_set_messages.
 */
int tree_folder_load(struct tree *t, guint64 folder, guint32 uidvalidity, gsize n_hint,
		     tree_msg_source_fn next, void *ud, GArray *removed);

/*
 * A change to a folder's listing (QRESYNC, CONDSTORE or new-UID-range
 * resync: account/resync.h). msgs are added (new UIDs) or take new flags
 * (UIDs held; flags NULL: unchanged); an old message leaves when its UID is
 * in vanished (struct uid_range, may be NULL) or below complete_below and
 * not among msgs. A full listing is complete_below = TREE_COMPLETE.
 */
#define TREE_COMPLETE ((guint64)G_MAXUINT32 + 1)
struct tree_delta {
	const struct tree_msg_info *msgs;
	gsize n;
	const GArray *vanished;
	guint64 complete_below;
};

/*
 * Apply d to folder's messages, reporting what left in removed, as
 * tree_folder_set_messages does (which is this with a complete listing).
 * A message whose UID is both in msgs and in vanished is gone. When
 * uidvalidity differs from the folder's, the old messages all leave first,
 * whatever d says: pass a full listing then.
 */
int tree_folder_merge(struct tree *t, guint64 folder, guint32 uidvalidity,
		      const struct tree_delta *d, GArray *removed);

/*
 * Call fn for each message of folder's listing, in UID order, with the tree
 * locked (fn must not call tree functions); *uidvalidity gets the listing's.
 * name and flags point into the tree for the call only. 0, -ENODATA (no
 * listing yet), or tree_folder_set_messages' errors.
 */
typedef void (*tree_msg_fn)(void *ud, const struct tree_msg_info *m);
int tree_folder_foreach_message(struct tree *t, guint64 folder, guint32 *uidvalidity,
				tree_msg_fn fn, void *ud);

/*
 * A listing of folder ino, made only to know its mtime (a stat), failed:
 * noted, so the next stats do not try again (one failing server, one
 * try); a later listing (a readdir) makes its mtime known all the same.
 * Not a folder, or listed already: ignored.
 */
void tree_folder_note_list_failed(struct tree *t, guint64 ino);

/*
 * A first listing taken in as it arrives, so that a readdir can answer
 * before its last message (mailfs(1), Attributes). Between
 * tree_folder_stream_begin and tree_folder_stream_end, the lister merges
 * each chunk of the listing (tree_folder_merge, complete_below 0, every
 * chunk's UIDs after those held: the append path) and:
 *   - the folder reads as listed only when newest, the newest arrival
 *     the server named before the listing, is known (not 0): its mtime is
 *     then newest (or a newer message's), the same as once the listing is
 *     whole; else a stat still waits for the whole listing;
 *   - tree_readdir gives what arrived and returns TREE_READDIR_MORE.
 * begin: -EEXIST when the folder holds a listing already (nothing to
 * stream), -ENOENT / -ENOTDIR / -EINVAL as tree_folder_merge. end (always
 * called after a begin that returned 0): ok FALSE when the listing did not
 * finish: what arrived leaves again (reported in removed) and the folder
 * is not listed, as before the begin.
 */
int tree_folder_stream_begin(struct tree *t, guint64 folder, guint32 uidvalidity, gint64 newest);
void tree_folder_stream_end(struct tree *t, guint64 folder, gboolean ok, GArray *removed);
/* Whether folder's first listing is being taken in now. */
gboolean tree_folder_streaming(struct tree *t, guint64 folder);
/* Wait until folder holds a message after readdir offset off, or its
   listing is no longer streamed, or until end_us (monotonic). */
void tree_folder_stream_wait(struct tree *t, guint64 folder, guint64 off, gint64 end_us);
/* Wait until folder reads as listed (tree_get's entry->listed: a listing is
   whole, or a first listing's newest arrival is known), or until end_us
   (monotonic). Whether it does; FALSE at once for what is no folder. */
gboolean tree_folder_wait_listed(struct tree *t, guint64 folder, gint64 end_us);

/* What tree_get/tree_lookup/tree_readdir tell about a node. */
enum {
	TREE_WANT_NAME = 1u << 0,  /* fill name: the path component */
	TREE_WANT_WIRE = 1u << 1,  /* fill wire: the folder's (for a message: its folder's)
				    * wire name for SELECT; NULL for a folder that cannot
				    * be selected and for the root */
	TREE_WANT_FLAGS = 1u << 2, /* fill flags (messages; "" for folders) */
	TREE_WANT_OBJID = 1u << 3, /* fill objid (messages of an object; else NULL) */
};

struct tree_entry {
	guint64 ino;
	guint64 parent; /* the root's parent is the root */
	enum tree_kind kind;
	gboolean gone; /* no longer in the tree; kept until forgotten */
	/* folders */
	gboolean selectable; /* holds messages (not \Noselect, listed itself) */
	guint32 mbox_attrs;  /* enum imap_mbox_attr as listed; 0 if not listed */
	gboolean listed;     /* its messages are known (tree_folder_set_messages) */
	gboolean list_failed; /* tree_folder_note_list_failed was called, before it was listed */
	/* messages */
	guint32 uid;
	guint32 uidvalidity; /* a message's; a listed folder's listing's (0: not listed) */
	guint64 size;
	gint64 mtime; /* a message's INTERNALDATE; a folder's newest message's
		       * (0 when it holds none or they are not known yet) */
	guint32 nlink; /* messages: live names (1 for a message that is not an
			* object; 0 when gone) */
	gboolean alias; /* a name of an object other than its representative */
	/* copies, only as asked by want; free with tree_entry_clear() */
	char *name;
	char *wire;
	char *flags;
	char *objid;
};

void tree_entry_clear(struct tree_entry *e);

/* Attributes of ino (also of a gone node still referenced). 0 or -ENOENT. */
int tree_get(struct tree *t, guint64 ino, unsigned want, struct tree_entry *out);

/*
 * The child `name` of folder parent. With ref, the child's lookup count is
 * incremented (atomically with the lookup: reply with fuse_reply_entry, or
 * tree_forget(ino, 1) if the reply fails). 0, -ENOENT or -ENOTDIR. out is
 * filled only on success.
 */
int tree_lookup(struct tree *t, guint64 parent, const char *name, gboolean ref, unsigned want,
		struct tree_entry *out);

/* The kernel forgets n references to ino (FUSE forget). Unknown ino: ignored. */
void tree_forget(struct tree *t, guint64 ino, guint64 n);

/*
 * Readdir callback: one entry (e has no name/wire/flags strings; name is only
 * valid during the call). Return TRUE if the entry was taken, FALSE to stop
 * (buffer full): the entry is then not counted and the listing ends.
 */
typedef gboolean (*tree_dir_fn)(void *ud, const char *name, const struct tree_entry *e,
				guint64 next_off);

/*
 * List folder dir from offset off (0: start, else a next_off given earlier),
 * calling fn under the tree's mutex (see THREADS). With plus, each entry
 * taken other than "." and ".." gets one lookup reference (readdirplus).
 * 0, -ENOENT or -ENOTDIR. A gone folder lists "." and ".." only.
 * TREE_READDIR_MORE: every entry held was given, but the folder's first
 * listing is still arriving (tree_folder_stream_begin): more may come after
 * the last next_off (tree_folder_stream_wait). Offsets are UIDs, so a
 * message is given once however the listing grows or shrinks meanwhile.
 */
#define TREE_READDIR_MORE 1
int tree_readdir(struct tree *t, guint64 dir, guint64 off, gboolean plus, tree_dir_fn fn, void *ud);

/* New flags of a message (after UID STORE; an object's: of every name);
   0, -ENOENT or -EISDIR. */
int tree_message_set_flags(struct tree *t, guint64 ino, const char *flags);

/* The real size of a message once its bytes are known: they win over the
   server's RFC822.SIZE (mailfs(1), Contents). An object's: every name's. */
int tree_message_set_size(struct tree *t, guint64 ino, guint64 size);

/*
 * Message uid left folder (expunged or moved by this mount): it is
 * reported in removed and answers as gone until forgotten, as a message a
 * new listing no longer holds (an object only when it was its last name).
 * 0, -ENOENT (no such live message) or -ENOTDIR.
 */
int tree_message_remove(struct tree *t, guint64 folder, guint32 uid, GArray *removed);

/*
 * Every live name of message ino, the representative first (one for a
 * message that is not an object): a GArray of struct tree_entry filled as
 * tree_lookup of that name does with want, each cleared by
 * g_array_unref. NULL when ino is no live message.
 */
GArray *tree_message_names(struct tree *t, guint64 ino, unsigned want);

/*
 * The live name of object ino in folder, as tree_lookup would find it (ref:
 * one lookup reference more). 0, or -ENOENT when folder holds none.
 */
int tree_folder_object(struct tree *t, guint64 folder, guint64 ino, gboolean ref, unsigned want,
		       struct tree_entry *out);

/*
 * The wire-name prefix of folder ino (its identity: the wire name, or for a
 * level the server did not list, the prefix it stands for), for naming a new
 * child (CREATE, RENAME). "" for the root. NULL (-ENOENT/-ENOTDIR) otherwise.
 * Free with g_free.
 */
char *tree_folder_key(struct tree *t, guint64 ino);

/*
 * The selectable folders of the subtree of folder ino (itself first, then
 * depth-first in name order), appended to out (guint64 inode numbers).
 */
void tree_folder_subtree(struct tree *t, guint64 ino, GArray *out);

/*
 * The live message uid of folder's current listing, as tree_lookup finds
 * one by name (ref: one lookup reference more). 0 or -ENOENT.
 */
int tree_folder_message(struct tree *t, guint64 folder, guint32 uid, gboolean ref, unsigned want,
			struct tree_entry *out);

/* The inode number of the folder listed with this wire name, or 0. */
guint64 tree_find_folder(struct tree *t, const char *wire);

/*
 * The selectable folders a depth-first walk in name order (as rsync, find
 * and ls -R go) comes to after folder `from`, at most max, appended to out
 * (guint64 inode numbers). Nothing when from is not a folder.
 */
void tree_folders_after(struct tree *t, guint64 from, guint max, GArray *out);

#endif
