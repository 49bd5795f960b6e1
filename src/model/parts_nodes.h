/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * parts_nodes: the inode numbers of the hidden .parts directories and their
 * files (mailfs(1), PARTS). Pure model: no I/O; what a node shows is worked
 * out from the message's structure each time (model/mime_view.h), so a node
 * is only a name for a place:
 *   - a mirror of a tree folder (.parts itself mirrors the root);
 *   - a message directory: a tree message, and the section of the message
 *     shown ("" the message itself, "2" a message/rfc822 part of it);
 *   - a parts/ directory of such a message;
 *   - a file in one of those two, by its name there.
 * Each is numbered PARTS_INO_BITS | n (n from a counter, never reused), apart
 * from the tree's numbers (messages stay below 2^62, model/tree.h), the
 * .search directories' (model/search_nodes.h) and new files' (bit 63). A
 * file's size, once worked out, is kept with it.
 *
 * Nodes live as long as the mount; at most PARTS_NODES_MAX are made, then
 * making one fails (the caller answers ENOSPC).
 *
 * THREADS. Its own mutex (a leaf); every function copies out.
 */
#ifndef MFS_PARTS_NODES_H
#define MFS_PARTS_NODES_H

#include <glib.h>

#define PARTS_INO_BITS ((guint64)3 << 61)
#define PARTS_DIR_NAME ".parts"
#define PARTS_NODES_MAX 1000000

static inline gboolean parts_is_node(guint64 ino)
{
	return (ino >> 61) == 3;
}

enum parts_node_kind {
	PARTS_NODE_MIRROR = 1,
	PARTS_NODE_MESSAGE,
	PARTS_NODE_PARTS_DIR,
	PARTS_NODE_FILE,
};

struct parts_node_info {
	guint64 ino;
	enum parts_node_kind kind;
	guint64 folder;	 /* MIRROR: the tree folder; others: the message's folder */
	guint64 message; /* the tree message (not MIRROR) */
	char *section;	 /* the message shown: "" or a message/rfc822 part's (not MIRROR) */
	gboolean in_parts; /* FILE: in the parts/ directory (else in the message's) */
	char *name;	 /* FILE: its name */
	gboolean size_known;
	guint64 size;	 /* FILE, when size_known */
};

struct parts_nodes;

struct parts_nodes *parts_nodes_new(void);
void parts_nodes_free(struct parts_nodes *pn);

/* The node for the mirror of tree folder `folder`; 0 when full. */
guint64 parts_nodes_mirror(struct parts_nodes *pn, guint64 folder);
/* The message directory of tree message `message` (in folder) showing
   section; 0 when full. */
guint64 parts_nodes_message(struct parts_nodes *pn, guint64 folder, guint64 message,
			    const char *section);
/* The parts/ directory of message directory dir; 0 when full or not one. */
guint64 parts_nodes_parts_dir(struct parts_nodes *pn, guint64 dir);
/* The file `name` in directory dir (a message or parts/ directory); 0 when
   full or dir is neither. */
guint64 parts_nodes_file(struct parts_nodes *pn, guint64 dir, const char *name);

/* What ino is: 0 or -ENOENT. */
int parts_nodes_get(struct parts_nodes *pn, guint64 ino, struct parts_node_info *out);
void parts_node_info_clear(struct parts_node_info *i);
/* File ino's size is known now. */
void parts_nodes_set_size(struct parts_nodes *pn, guint64 ino, guint64 size);

#endif
