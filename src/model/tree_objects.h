/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tree_objects: the tree's table of objects (model/tree.h, OBJECTS), private
 * to model/tree.c. An object is one message the server identifies across
 * folders (an objid); each folder entry of it is a name, (folder inode
 * number, UID). This table keeps the names, the object's inode number and
 * its kernel references; what a name's message is (size, flags, ...) stays
 * in the tree's message sets.
 *
 * Numbers: TREE_OBJECT_BIT | N, N counting from 1, never reused.
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

struct tname {
	guint64 folder;
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
	char *objid;
	GArray *names;	 /* struct tname, by ascending (folder, uid): [0] is the
			    representative */
	guint64 nlookup; /* kernel references */
	struct tobj_last last; /* valid once names is empty */
};

struct objtab;

struct objtab *objtab_new(void);
void objtab_free(struct objtab *o);

/* The live object of objid, or a new one (no names yet). */
struct tobj *objtab_intern(struct objtab *o, const char *objid);
/* The object numbered ino (live or referenced), or NULL. */
struct tobj *objtab_get(struct objtab *o, guint64 ino);

/* Add name (folder, uid) to ob (kept sorted; a name given twice counts once). */
void objtab_add_name(struct tobj *ob, guint64 folder, guint32 uid);
/*
 * Take name (folder, uid) from ob; FALSE when it was not one. When it was
 * the last, ob leaves its objid (see Life) and the caller fills ob->last.
 */
gboolean objtab_drop_name(struct objtab *o, struct tobj *ob, guint64 folder, guint32 uid);
/* Free ob when it has no name and no reference left. */
void objtab_release(struct objtab *o, struct tobj *ob);

#endif
