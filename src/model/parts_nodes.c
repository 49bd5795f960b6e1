/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The .parts nodes' inode numbers (model/parts_nodes.h). */
#include "model/parts_nodes.h"

#include <errno.h>
#include <string.h>

#include "util/lock.h"

struct pnode {
	guint64 ino;
	enum parts_node_kind kind;
	guint64 folder;
	guint64 message;
	char *section;
	gboolean in_parts;
	char *name;
	gboolean size_known;
	guint64 size;
};

struct parts_nodes {
	mfs_mutex lock;
	guint64 next;	    /* guarded by lock, as the tables */
	GHashTable *by_ino; /* &ino -> struct pnode * (owns) */
	GHashTable *by_key; /* "kind:..." -> struct pnode * */
};

static void pnode_free(void *p)
{
	struct pnode *n = p;

	g_free(n->section);
	g_free(n->name);
	g_free(n);
}

struct parts_nodes *parts_nodes_new(void)
{
	struct parts_nodes *pn = g_new0(struct parts_nodes, 1);

	mfs_mutex_init(&pn->lock);
	pn->next = 1;
	pn->by_ino = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, pnode_free);
	pn->by_key = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return pn;
}

void parts_nodes_free(struct parts_nodes *pn)
{
	if (!pn)
		return;
	g_hash_table_unref(pn->by_key);
	g_hash_table_unref(pn->by_ino);
	mfs_mutex_clear(&pn->lock);
	g_free(pn);
}

static struct pnode *node_get(struct parts_nodes *pn, guint64 ino)
{
	return parts_is_node(ino) ? g_hash_table_lookup(pn->by_ino, &ino) : NULL;
}

/* Locked: the node under key (taken), made like proto when there is none. */
static guint64 node_make(struct parts_nodes *pn, char *key, const struct pnode *proto,
			 const char *section, const char *name)
{
	struct pnode *n = g_hash_table_lookup(pn->by_key, key);

	if (n) {
		g_free(key);
		return n->ino;
	}
	if (g_hash_table_size(pn->by_ino) >= PARTS_NODES_MAX) {
		g_free(key);
		return 0;
	}
	n = g_new0(struct pnode, 1);
	n->ino = PARTS_INO_BITS | pn->next++;
	n->kind = proto->kind;
	n->folder = proto->folder;
	n->message = proto->message;
	n->section = g_strdup(section);
	n->in_parts = proto->in_parts;
	n->name = g_strdup(name);
	g_hash_table_insert(pn->by_ino, &n->ino, n);
	g_hash_table_insert(pn->by_key, key, n);
	return n->ino;
}

guint64 parts_nodes_mirror(struct parts_nodes *pn, guint64 folder)
{
	struct pnode proto = { .kind = PARTS_NODE_MIRROR, .folder = folder };
	guint64 ino;

	mfs_mutex_lock(&pn->lock);
	ino = node_make(pn, g_strdup_printf("f:%" G_GUINT64_FORMAT, folder), &proto, NULL, NULL);
	mfs_mutex_unlock(&pn->lock);
	return ino;
}

guint64 parts_nodes_message(struct parts_nodes *pn, guint64 folder, guint64 message,
			    const char *section)
{
	struct pnode proto = { .kind = PARTS_NODE_MESSAGE, .folder = folder, .message = message };
	guint64 ino;

	mfs_mutex_lock(&pn->lock);
	ino = node_make(pn, g_strdup_printf("m:%" G_GUINT64_FORMAT ":%s", message, section), &proto,
			section, NULL);
	mfs_mutex_unlock(&pn->lock);
	return ino;
}

guint64 parts_nodes_parts_dir(struct parts_nodes *pn, guint64 dir)
{
	struct pnode *d;
	guint64 ino = 0;

	mfs_mutex_lock(&pn->lock);
	d = node_get(pn, dir);
	if (d && d->kind == PARTS_NODE_MESSAGE) {
		struct pnode proto = *d;

		proto.kind = PARTS_NODE_PARTS_DIR;
		ino = node_make(pn,
				g_strdup_printf("p:%" G_GUINT64_FORMAT ":%s", d->message, d->section),
				&proto, d->section, NULL);
	}
	mfs_mutex_unlock(&pn->lock);
	return ino;
}

guint64 parts_nodes_file(struct parts_nodes *pn, guint64 dir, const char *name)
{
	struct pnode *d;
	guint64 ino = 0;

	mfs_mutex_lock(&pn->lock);
	d = node_get(pn, dir);
	if (d && (d->kind == PARTS_NODE_MESSAGE || d->kind == PARTS_NODE_PARTS_DIR)) {
		struct pnode proto = *d;

		proto.kind = PARTS_NODE_FILE;
		proto.in_parts = d->kind == PARTS_NODE_PARTS_DIR;
		ino = node_make(pn,
				g_strdup_printf("x:%" G_GUINT64_FORMAT ":%s:%d:%s", d->message,
						d->section, proto.in_parts, name),
				&proto, d->section, name);
	}
	mfs_mutex_unlock(&pn->lock);
	return ino;
}

int parts_nodes_get(struct parts_nodes *pn, guint64 ino, struct parts_node_info *out)
{
	struct pnode *n;
	int rc = -ENOENT;

	memset(out, 0, sizeof(*out));
	mfs_mutex_lock(&pn->lock);
	if ((n = node_get(pn, ino)) != NULL) {
		out->ino = n->ino;
		out->kind = n->kind;
		out->folder = n->folder;
		out->message = n->message;
		out->section = g_strdup(n->section);
		out->in_parts = n->in_parts;
		out->name = g_strdup(n->name);
		out->size_known = n->size_known;
		out->size = n->size;
		rc = 0;
	}
	mfs_mutex_unlock(&pn->lock);
	return rc;
}

void parts_node_info_clear(struct parts_node_info *i)
{
	g_free(i->section);
	g_free(i->name);
	i->section = NULL;
	i->name = NULL;
}

void parts_nodes_set_size(struct parts_nodes *pn, guint64 ino, guint64 size)
{
	struct pnode *n;

	mfs_mutex_lock(&pn->lock);
	if ((n = node_get(pn, ino)) != NULL && n->kind == PARTS_NODE_FILE) {
		n->size = size;
		n->size_known = TRUE;
	}
	mfs_mutex_unlock(&pn->lock);
}
