/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tree_objects: the tree's table of objects (model/tree.h, OBJECTS), private
 * to model/tree.c. An object is one message the server identifies across
 * folders (an objid); each folder entry of it is a name, (folder inode
 * number, UID). This table keeps the names, the object's inode number and
 * its kernel references; what a name's message is (size, flags, ...) stays
 * in the tree's message sets.
 *
 * Numbers: TREE_OBJECT_BIT | N, N counting from 1, never reused; N is also
 * the object's slot in the table, so a number is found without a hash.
 *
 * Size: a Gmail All Mail holds a million messages, each an object. So an
 * object is one allocation with its objid inline and its first name inside
 * (most messages have one to three), a slot (8 bytes) and a bucket of the
 * objid table (4 bytes, at most three quarters full): 117 bytes more per
 * message than without objects, measured with 26-byte objids (100,000
 * messages, test_tree.c's large test; 133 with a GHashTable for the ids).
 *
 * Life: an object is made by objtab_intern the first time its objid is
 * seen with no live object of that id. It is LIVE while it has names; when
 * its last name leaves (objtab_drop_name) it is unhooked from its objid
 * (the id seen again makes a new object, as a UIDVALIDITY change makes new
 * message numbers) and stays only while the kernel references it
 * (nlookup); objtab_release frees it once both are gone.
 *
 * Threads: none of its own; the tree calls it under tree.lock.
 */
#ifndef MFS_TREE_OBJECTS_H
#define MFS_TREE_OBJECTS_H

#include <glib.h>

/* One name: folder inode numbers stay below 2^32 (model/tree.h). */
struct tname {
	guint32 folder;
	guint32 uid;
};

/* The last name's attributes, kept once the object has no name. */
struct tobj_last {
	guint64 folder;
	guint32 uid;
	guint32 uidvalidity;
	guint64 size;
	gint64 mtime;
	char *flags; /* GRefString */
	char *name;
};

struct tobj {
	guint64 ino;
	guint64 nlookup;	/* kernel references */
	struct tobj_last *last; /* set once names are none */
	struct tname first;	/* names[0] while n_names > 0 */
	struct tname *more;	/* names[1..n_names), capacity cap_more */
	guint32 n_names;
	guint32 cap_more;
	char objid[]; /* NUL-terminated */
};

struct objtab;

struct objtab *objtab_new(void);
void objtab_free(struct objtab *o);

/* The live object of objid, or a new one (no names yet). */
struct tobj *objtab_intern(struct objtab *o, const char *objid);
/* The object numbered ino (live or referenced), or NULL. */
struct tobj *objtab_get(struct objtab *o, guint64 ino);

/* Names by ascending (folder, uid): name 0 is the representative. */
static inline guint objtab_nnames(const struct tobj *ob)
{
	return ob->n_names;
}

static inline const struct tname *objtab_name(const struct tobj *ob, guint i)
{
	return i == 0 ? &ob->first : &ob->more[i - 1];
}

/* Add name (folder, uid) to ob (kept sorted; a name given twice counts once). */
void objtab_add_name(struct tobj *ob, guint64 folder, guint32 uid);
/*
 * Take name (folder, uid) from ob; FALSE when it was not one. When it was
 * the last, ob leaves its objid (see Life) and the caller sets ob->last.
 */
gboolean objtab_drop_name(struct objtab *o, struct tobj *ob, guint64 folder, guint32 uid);
/* Free ob when it has no name and no reference left. */
void objtab_release(struct objtab *o, struct tobj *ob);

#endif
