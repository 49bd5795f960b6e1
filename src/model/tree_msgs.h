/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tree_msgs: how the tree (model/tree.h) stores the messages of one message
 * set, private to model/tree.c. Two things, sized for a 1,000,000-message
 * folder (Gmail's All Mail; issue 22's 300 MB):
 *
 *   - struct tmsgs, an array of struct tmsg by ascending UID whose capacity
 *     is what it was asked for: GArray rounds every capacity up to a power
 *     of two, so 1,000,000 messages of 48 bytes took 64 MiB, not 46;
 *   - struct namestore, the message file names of the set, packed end to end
 *     in blocks instead of one malloc each (a 40-byte name cost 48 to 64
 *     bytes with malloc's header and rounding). A name leaving the set is
 *     only counted as dead; the tree compacts the store (copies the names
 *     still used into a new one) when the dead bytes outweigh the live ones,
 *     so a folder whose mail keeps coming and going does not grow for ever.
 *
 * Threads: none of their own; the tree calls them under tree.lock.
 */
#ifndef MFS_TREE_MSGS_H
#define MFS_TREE_MSGS_H

#include "model/tree_objects.h"

#include <glib.h>

/*
 * One message: 48 bytes on 64-bit, plus its name in the set's namestore. Its
 * inode number is derived (epoch, uid) unless it is a name of an object,
 * and flags strings are interned (GRefString), so a folder where most
 * messages say "\Seen" stores that once.
 */
struct tmsg {
	guint32 uid;
	guint32 nlookup; /* 0 for a name of an object: references are the object's */
	guint64 size;
	gint64 mtime;
	const char *name; /* in the message set's namestore */
	char *flags;	  /* GRefString */
	struct tobj *obj; /* the object it is a name of, or NULL; never in `gone` */
};

struct tmsgs {
	struct tmsg *v;
	guint len, cap;
};

/* Room for at least cap messages in all (exactly that when it grows). */
void tmsgs_reserve(struct tmsgs *a, guint cap);
/* Capacity down to len (realloc: a big block shrinks in place). */
void tmsgs_trim(struct tmsgs *a);
void tmsgs_append(struct tmsgs *a, const struct tmsg *m);
void tmsgs_insert(struct tmsgs *a, guint pos, const struct tmsg *m);
void tmsgs_remove(struct tmsgs *a, guint pos);
/* Frees the array (not what its messages point to). */
void tmsgs_free(struct tmsgs *a);

/* The message with uid in a (sorted), or NULL; *pos gets where it is or would go. */
struct tmsg *tmsgs_find(const struct tmsgs *a, guint32 uid, guint *pos);

struct namestore {
	GPtrArray *blocks; /* char *: full but the last */
	gsize free_at;	   /* next free byte of the last block */
	gsize last_size;
	gsize live; /* bytes of names in use (with their NULs) */
	gsize dead; /* bytes of names dropped */
};

void namestore_init(struct namestore *s);
void namestore_clear(struct namestore *s);
/* Room for `bytes` more in one block (a full listing's names at once). */
void namestore_reserve(struct namestore *s, gsize bytes);
/* A copy of name, valid until dropped and the store compacted or cleared. */
const char *namestore_add(struct namestore *s, const char *name);
void namestore_drop(struct namestore *s, const char *name);
/* Whether compacting would give back enough to be worth a copy of the live. */
gboolean namestore_wants_compact(const struct namestore *s);

#endif
