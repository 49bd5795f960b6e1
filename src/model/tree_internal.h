/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The tree's insides, shared by model/tree.c (folders, listings, queries)
 * and model/tree_stream.c (a first listing taken in as it arrives). Nothing
 * outside model/tree*.c includes this: the contract is model/tree.h.
 *
 * Every field is guarded by tree.lock, but stream_cond, which is waited on
 * with that lock.
 */
#ifndef MFS_TREE_INTERNAL_H
#define MFS_TREE_INTERNAL_H

#include "model/tree.h"
#include "model/tree_msgs.h"
#include "util/lock.h"

#include <glib.h>

#define MSG_INO_MIN	((guint64)1 << 32)
#define OFF_DOT		1
#define OFF_DOTDOT	2
#define OFF_FOLDER_BASE 3
#define OFF_MSG_BASE	((guint64)1 << 33)

/* The messages of one folder for one UIDVALIDITY. */
struct msgset {
	guint32 epoch;
	guint32 uidvalidity;
	guint64 folder;	  /* inode number, not a pointer: the folder may go first */
	gboolean current; /* the folder's set; else retired, alive for `gone` only */
	struct tmsgs live;	/* by ascending uid (model/tree_msgs.h) */
	struct tmsgs gone;	/* by ascending uid, removed but nlookup > 0 */
	struct namestore names; /* the names of live and gone */
	guint64 refs;	  /* sum of nlookup over live and gone */
};

struct folder {
	guint64 ino;
	guint64 parent;
	char *name;
	char *key;  /* wire-name prefix with INBOX normalised: the identity; NULL for root */
	char *wire; /* as listed, for SELECT; NULL when not listed itself */
	guint32 attrs;
	gboolean detached;
	gboolean seen;	     /* scratch of tree_apply_list */
	gboolean listed_now; /* scratch of tree_apply_list */
	gboolean list_failed; /* a listing for its mtime failed; no more tries for it */
	/* A first listing being taken in (tree_folder_stream_begin): msgs
	   holds what arrived so far; newest is the newest arrival the server
	   named before the listing, 0 when it did not. */
	gboolean streaming;
	gint64 newest;
	guint64 nlookup;
	GPtrArray *children; /* struct folder * by ascending ino */
	struct msgset *msgs; /* current message set, or NULL */
};

struct tree {
	mfs_mutex lock;
	mfs_cond stream_cond; /* with lock: a streamed listing grew or ended */
	gboolean names_uid;
	gboolean vshow;
	GPtrArray *excl; /* GPatternSpec * */
	guint64 next_ino;
	guint32 next_epoch;
	struct folder *root;
	GHashTable *folders; /* &ino -> struct folder * (owns every folder) */
	GHashTable *keys;    /* key -> struct folder *, attached folders only */
	GHashTable *epochs;  /* GUINT_TO_POINTER(epoch) -> struct msgset * (owns) */
	struct objtab *objects;
};

/* Locked. The folder with inode number ino, or NULL. */
static inline struct folder *tree_folder_get(struct tree *t, guint64 ino)
{
	if (ino == 0 || ino >= MSG_INO_MIN)
		return NULL;
	return g_hash_table_lookup(t->folders, &ino);
}

/* Locked. Whether f reads as listed (tree_entry.listed): it holds a
   listing that is whole, or a first listing still arriving whose newest
   arrival the server named first. */
static inline gboolean tree_folder_reads_listed(const struct folder *f)
{
	return f->msgs && (!f->streaming || f->newest != 0);
}

/* Locked. The folder ino if it can hold messages (tree_folder_merge's
   checks): 0, or -ENOENT, -ENOTDIR or -EINVAL. */
int tree_messages_folder(struct tree *t, guint64 ino, struct folder **out);

/* Locked. Folder f's message set for uidvalidity: a set of another
   UIDVALIDITY is retired (its messages reported in removed), a new one
   made. */
struct msgset *tree_current_msgset(struct tree *t, struct folder *f, guint32 uidvalidity,
				   GArray *removed);

/* Locked. The folder's current set stops being current: its live messages
   are reported (if report_msgs) and kept only while referenced. */
void tree_msgset_retire(struct tree *t, struct folder *f, gboolean report_msgs, GArray *removed);

#endif
