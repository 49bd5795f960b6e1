/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The .search directories' inode numbers and kept results (model/search_nodes.h). */
#include "model/search_nodes.h"

#include <errno.h>
#include <string.h>

#include "util/lock.h"

struct snode {
	guint64 ino;
	enum search_node_kind kind;
	guint64 scope;
	guint64 query;
	guint64 folder;
	char *text;
	/* query nodes: the kept result, or hits NULL */
	struct search_hits *hits;
	char *display;
	gint64 made_at;
	gint64 made_at_wall;
	guint64 gen;
	/* root nodes: their query nodes' numbers, in the order made */
	GArray *queries;
};

struct search_nodes {
	mfs_mutex lock;
	guint64 next; /* guarded by lock, as everything below */
	GHashTable *by_ino;   /* &ino -> struct snode * (owns) */
	GHashTable *by_key;   /* "kind:a:b[:text]" -> struct snode * */
	GQueue *results;      /* query nodes holding a result, oldest first */
};

struct search_hits *search_hits_new(void)
{
	struct search_hits *h = g_new0(struct search_hits, 1);

	h->uids = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
					(GDestroyNotify)g_array_unref);
	h->kids = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
					(GDestroyNotify)g_array_unref);
	return h;
}

void search_hits_free(struct search_hits *h)
{
	if (!h)
		return;
	g_hash_table_unref(h->uids);
	g_hash_table_unref(h->kids);
	g_free(h);
}

static GArray *slot(GHashTable *t, guint64 folder, guint elt)
{
	GArray *a = g_hash_table_lookup(t, &folder);

	if (!a) {
		guint64 *k = g_new(guint64, 1);

		*k = folder;
		a = g_array_new(FALSE, FALSE, elt);
		g_hash_table_insert(t, k, a);
	}
	return a;
}

void search_hits_add_uid(struct search_hits *h, guint64 folder, guint32 uid)
{
	g_array_append_val(slot(h->uids, folder, sizeof(guint32)), uid);
}

void search_hits_add_kid(struct search_hits *h, guint64 folder, guint64 child)
{
	GArray *a = slot(h->kids, folder, sizeof(guint64));

	for (guint i = 0; i < a->len; i++)
		if (g_array_index(a, guint64, i) == child)
			return;
	g_array_append_val(a, child);
}

static int cmp_u32(const void *a, const void *b)
{
	guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;

	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;

	return x < y ? -1 : x > y;
}

void search_hits_finish(struct search_hits *h)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, h->uids);
	while (g_hash_table_iter_next(&it, NULL, &v))
		g_array_sort(v, cmp_u32);
	g_hash_table_iter_init(&it, h->kids);
	while (g_hash_table_iter_next(&it, NULL, &v))
		g_array_sort(v, cmp_u64);
}

static void snode_free(void *p)
{
	struct snode *n = p;

	g_free(n->text);
	search_hits_free(n->hits);
	g_free(n->display);
	if (n->queries)
		g_array_unref(n->queries);
	g_free(n);
}

struct search_nodes *search_nodes_new(void)
{
	struct search_nodes *sn = g_new0(struct search_nodes, 1);

	mfs_mutex_init(&sn->lock);
	sn->next = 1;
	sn->by_ino = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, snode_free);
	sn->by_key = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	sn->results = g_queue_new();
	return sn;
}

void search_nodes_free(struct search_nodes *sn)
{
	if (!sn)
		return;
	g_queue_free(sn->results);
	g_hash_table_unref(sn->by_key);
	g_hash_table_unref(sn->by_ino);
	mfs_mutex_clear(&sn->lock);
	g_free(sn);
}

static struct snode *node_get(struct search_nodes *sn, guint64 ino)
{
	return search_is_node(ino) ? g_hash_table_lookup(sn->by_ino, &ino) : NULL;
}

/* Locked: the node under key, made from proto when there is none yet. */
static guint64 node_make(struct search_nodes *sn, char *key, const struct snode *proto,
			 const char *text)
{
	struct snode *n = g_hash_table_lookup(sn->by_key, key);

	if (n) {
		g_free(key);
		return n->ino;
	}
	if (g_hash_table_size(sn->by_ino) >= SEARCH_NODES_MAX) {
		g_free(key);
		return 0;
	}
	n = g_new0(struct snode, 1);
	*n = *proto;
	n->ino = SEARCH_INO_BIT | sn->next++;
	n->text = g_strdup(text);
	if (n->kind == SEARCH_NODE_ROOT)
		n->queries = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_hash_table_insert(sn->by_ino, &n->ino, n);
	g_hash_table_insert(sn->by_key, key, n);
	return n->ino;
}

guint64 search_nodes_root(struct search_nodes *sn, guint64 scope)
{
	struct snode proto = { .kind = SEARCH_NODE_ROOT, .scope = scope, .folder = scope };
	guint64 ino;

	mfs_mutex_lock(&sn->lock);
	ino = node_make(sn, g_strdup_printf("r:%" G_GUINT64_FORMAT, scope), &proto, NULL);
	mfs_mutex_unlock(&sn->lock);
	return ino;
}

guint64 search_nodes_query(struct search_nodes *sn, guint64 root, const char *text)
{
	struct snode *r;
	guint64 ino = 0;

	mfs_mutex_lock(&sn->lock);
	r = node_get(sn, root);
	if (r && r->kind == SEARCH_NODE_ROOT) {
		struct snode proto = { .kind = SEARCH_NODE_QUERY, .scope = r->scope,
				       .folder = r->scope };
		guint before = g_hash_table_size(sn->by_ino);
		struct snode *q;

		ino = node_make(sn, g_strdup_printf("q:%" G_GUINT64_FORMAT ":%s", root, text), &proto,
				text);
		q = ino && g_hash_table_size(sn->by_ino) > before ? node_get(sn, ino) : NULL;
		if (q) {
			q->query = ino;
			g_array_append_val(r->queries, ino);
		}
	}
	mfs_mutex_unlock(&sn->lock);
	return ino;
}

guint64 search_nodes_mirror(struct search_nodes *sn, guint64 query, guint64 folder)
{
	struct snode *q;
	guint64 ino = 0;

	mfs_mutex_lock(&sn->lock);
	q = node_get(sn, query);
	if (q && q->kind == SEARCH_NODE_QUERY) {
		if (folder == q->scope) {
			ino = query;
		} else {
			struct snode proto = { .kind = SEARCH_NODE_MIRROR, .scope = q->scope,
					       .query = query, .folder = folder };

			ino = node_make(sn,
					g_strdup_printf("m:%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT,
							query, folder),
					&proto, q->text);
		}
	}
	mfs_mutex_unlock(&sn->lock);
	return ino;
}

int search_nodes_get(struct search_nodes *sn, guint64 ino, struct search_node_info *out)
{
	struct snode *n;
	int rc = -ENOENT;

	memset(out, 0, sizeof(*out));
	mfs_mutex_lock(&sn->lock);
	if ((n = node_get(sn, ino)) != NULL) {
		struct snode *q = n->query ? node_get(sn, n->query) : NULL;

		out->ino = n->ino;
		out->kind = n->kind;
		out->scope = n->scope;
		out->query = n->query;
		out->folder = n->folder;
		out->text = g_strdup(n->text);
		out->made_at_wall = q && q->hits ? q->made_at_wall : 0;
		rc = 0;
	}
	mfs_mutex_unlock(&sn->lock);
	return rc;
}

void search_node_info_clear(struct search_node_info *i)
{
	g_free(i->text);
	i->text = NULL;
}

void search_nodes_set_result(struct search_nodes *sn, guint64 query, struct search_hits *hits,
			     const char *display, gint64 now, gint64 wall, guint64 gen)
{
	struct snode *q;

	mfs_mutex_lock(&sn->lock);
	q = node_get(sn, query);
	if (!q || q->kind != SEARCH_NODE_QUERY) {
		mfs_mutex_unlock(&sn->lock);
		search_hits_free(hits);
		return;
	}
	if (q->hits)
		g_queue_remove(sn->results, q);
	search_hits_free(q->hits);
	g_free(q->display);
	q->hits = hits;
	q->display = g_strdup(display);
	q->made_at = now;
	q->made_at_wall = wall;
	q->gen = gen;
	g_queue_push_tail(sn->results, q);
	while (g_queue_get_length(sn->results) > SEARCH_RESULTS_MAX) {
		struct snode *old = g_queue_pop_head(sn->results);

		search_hits_free(old->hits);
		old->hits = NULL;
	}
	mfs_mutex_unlock(&sn->lock);
}

gboolean search_nodes_fresh(struct search_nodes *sn, guint64 query, gint64 now, gint64 max_age,
			    guint64 gen)
{
	struct snode *q;
	gboolean fresh;

	mfs_mutex_lock(&sn->lock);
	q = node_get(sn, query);
	fresh = q && q->hits && q->gen == gen && now - q->made_at < max_age;
	mfs_mutex_unlock(&sn->lock);
	return fresh;
}

gboolean search_nodes_contents(struct search_nodes *sn, guint64 ino, GArray *kids, GArray *uids)
{
	struct snode *n, *q;
	gboolean ok = FALSE;

	mfs_mutex_lock(&sn->lock);
	n = node_get(sn, ino);
	q = n && n->query ? node_get(sn, n->query) : NULL;
	if (q && q->hits) {
		GArray *k = g_hash_table_lookup(q->hits->kids, &n->folder);
		GArray *u = g_hash_table_lookup(q->hits->uids, &n->folder);

		if (k && kids)
			g_array_append_vals(kids, k->data, k->len);
		if (u && uids)
			g_array_append_vals(uids, u->data, u->len);
		ok = TRUE;
	}
	mfs_mutex_unlock(&sn->lock);
	return ok;
}

char *search_nodes_display(struct search_nodes *sn, guint64 query)
{
	struct snode *q;
	char *d = NULL;

	mfs_mutex_lock(&sn->lock);
	q = node_get(sn, query);
	if (q && q->kind == SEARCH_NODE_QUERY)
		d = g_strdup(q->display);
	mfs_mutex_unlock(&sn->lock);
	return d;
}

void search_nodes_queries(struct search_nodes *sn, guint64 root, GArray *inos, GPtrArray *names)
{
	struct snode *r;

	mfs_mutex_lock(&sn->lock);
	r = node_get(sn, root);
	if (r && r->kind == SEARCH_NODE_ROOT) {
		for (guint i = 0; i < r->queries->len; i++) {
			guint64 ino = g_array_index(r->queries, guint64, i);
			struct snode *q = node_get(sn, ino);

			if (!q)
				continue;
			g_array_append_val(inos, ino);
			g_ptr_array_add(names, g_strdup(q->text));
		}
	}
	mfs_mutex_unlock(&sn->lock);
}
