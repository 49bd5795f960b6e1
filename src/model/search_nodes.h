/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * search_nodes: the inode numbers and the kept results of the hidden
 * .search directories (mailfs(1), SEARCH). Pure model: no I/O; the account
 * runs the searches (account/search.h) and the FUSE layer answers from here.
 *
 * NODES. Three kinds of directory, each numbered SEARCH_INO_BIT | n (n from
 * a counter, never reused, below 2^61; message inode numbers stay below 2^62, see
 * model/tree.h, and new files carry bit 63, model/staging.h):
 *   - a root: MOUNT/.search or FOLDER/.search, one per scope folder;
 *   - a query: ROOT/QUERY, one per (root, query text);
 *   - a mirror: a folder inside a query's result, one per (query, folder);
 *     the query node is itself the mirror of its scope.
 * Nodes live as long as the mount (a few hundred bytes each), so a name the
 * kernel holds never dangles; at most SEARCH_NODES_MAX are made, then
 * making one fails.
 *
 * RESULTS. A query node holds its last result: for each folder with hits,
 * the UIDs (ascending), and for each folder on the way from the scope down
 * to one (the scope included), its child folders on that way; with the
 * command text sent, when it was made and the account's change count then.
 * At most SEARCH_RESULTS_MAX results are kept; setting one more drops the
 * one made longest ago (its query is searched again when next looked at).
 *
 * THREADS. Its own mutex (a leaf); every function copies out.
 */
#ifndef MFS_SEARCH_NODES_H
#define MFS_SEARCH_NODES_H

#include <glib.h>

#define SEARCH_INO_BIT ((guint64)1 << 62)
#define SEARCH_DIR_NAME ".search"
#define SEARCH_NODES_MAX 100000
#define SEARCH_RESULTS_MAX 64

static inline gboolean search_is_node(guint64 ino)
{
	return (ino >> 61) == 2;
}

enum search_node_kind {
	SEARCH_NODE_ROOT = 1,
	SEARCH_NODE_QUERY,
	SEARCH_NODE_MIRROR,
};

struct search_node_info {
	guint64 ino;
	enum search_node_kind kind;
	guint64 scope;	/* the tree folder searched (root, query, mirror) */
	guint64 query;	/* the query node (query: itself; mirror: its query) */
	guint64 folder; /* the tree folder mirrored (query: the scope) */
	char *text;	/* the query text (query, mirror); g_free */
	gint64 made_at_wall; /* the result's time (seconds since the epoch), 0: none */
};

/* What a search found, built by the account and handed over. */
struct search_hits {
	GHashTable *uids; /* folder ino (guint64 *) -> GArray of guint32, ascending */
	GHashTable *kids; /* folder ino (guint64 *) -> GArray of guint64, ascending */
};

struct search_hits *search_hits_new(void);
void search_hits_free(struct search_hits *h);
/* uid of folder is a hit (any order; duplicates kept out by the caller). */
void search_hits_add_uid(struct search_hits *h, guint64 folder, guint32 uid);
/* child is on the way from a folder to a hit below it. */
void search_hits_add_kid(struct search_hits *h, guint64 folder, guint64 child);
/* Sort every array (after the last add). */
void search_hits_finish(struct search_hits *h);

struct search_nodes;

struct search_nodes *search_nodes_new(void);
void search_nodes_free(struct search_nodes *sn);

/* The root node of scope folder (made at the first call); 0 when full. */
guint64 search_nodes_root(struct search_nodes *sn, guint64 scope);
/* The query node `text` under root node root; 0 when full or root is not a root. */
guint64 search_nodes_query(struct search_nodes *sn, guint64 root, const char *text);
/* The mirror node of folder under query node query; 0 when full or not a query. */
guint64 search_nodes_mirror(struct search_nodes *sn, guint64 query, guint64 folder);

/* What ino is. 0 or -ENOENT. */
int search_nodes_get(struct search_nodes *sn, guint64 ino, struct search_node_info *out);
void search_node_info_clear(struct search_node_info *i);

/* Query node query's result becomes hits (taken), made now (monotonic µs,
   and wall seconds) with the account's change count gen. */
void search_nodes_set_result(struct search_nodes *sn, guint64 query, struct search_hits *hits,
			     const char *display, gint64 now, gint64 wall, guint64 gen);
/* Does query hold a result made after now - max_age with change count gen? */
gboolean search_nodes_fresh(struct search_nodes *sn, guint64 query, gint64 now, gint64 max_age,
			    guint64 gen);
/*
 * What mirror (or query) node ino shows, from its query's result: its child
 * folders with hits below (guint64, ascending) and its folder's UIDs
 * (guint32, ascending) appended. FALSE when its query holds no result.
 */
gboolean search_nodes_contents(struct search_nodes *sn, guint64 ino, GArray *kids, GArray *uids);
/* The command text query's result was made with, or NULL. g_free. */
char *search_nodes_display(struct search_nodes *sn, guint64 query);
/* The query nodes of root node root, in the order they were made: their
   inode numbers (guint64) and texts (char *, owned by names). */
void search_nodes_queries(struct search_nodes *sn, guint64 root, GArray *inos, GPtrArray *names);

#endif
