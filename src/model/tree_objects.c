/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/tree_objects.h"

#include "model/tree.h"

#include <string.h>

struct objtab {
	GHashTable *by_id; /* objid (inside the object) -> struct tobj *, live ones */
	GPtrArray *slots;  /* [N] = object numbered TREE_OBJECT_BIT | N, or NULL */
};

static void tobj_free(struct tobj *ob)
{
	if (ob->last) {
		if (ob->last->flags)
			g_ref_string_release(ob->last->flags);
		g_free(ob->last->name);
		g_free(ob->last);
	}
	g_free(ob->more);
	g_free(ob);
}

struct objtab *objtab_new(void)
{
	struct objtab *o = g_new0(struct objtab, 1);

	o->by_id = g_hash_table_new(g_str_hash, g_str_equal);
	o->slots = g_ptr_array_new();
	g_ptr_array_add(o->slots, NULL); /* N counts from 1 */
	return o;
}

void objtab_free(struct objtab *o)
{
	if (!o)
		return;
	for (guint i = 0; i < o->slots->len; i++)
		if (o->slots->pdata[i])
			tobj_free(o->slots->pdata[i]);
	g_ptr_array_unref(o->slots);
	g_hash_table_unref(o->by_id);
	g_free(o);
}

struct tobj *objtab_intern(struct objtab *o, const char *objid)
{
	struct tobj *ob = g_hash_table_lookup(o->by_id, objid);
	size_t len;

	if (ob)
		return ob;
	len = strlen(objid);
	ob = g_malloc0(sizeof(*ob) + len + 1);
	memcpy(ob->objid, objid, len + 1);
	ob->ino = TREE_OBJECT_BIT | o->slots->len;
	g_ptr_array_add(o->slots, ob);
	g_hash_table_insert(o->by_id, ob->objid, ob);
	return ob;
}

struct tobj *objtab_get(struct objtab *o, guint64 ino)
{
	guint64 n = ino & ~TREE_OBJECT_BIT;

	if (!TREE_IS_OBJECT(ino) || n == 0 || n >= o->slots->len)
		return NULL;
	return o->slots->pdata[n];
}

static int cmp_name(const struct tname *a, guint64 folder, guint32 uid)
{
	if (a->folder != folder)
		return a->folder < folder ? -1 : 1;
	return a->uid < uid ? -1 : a->uid > uid;
}

/* Where (folder, uid) is or would go in ob's names. */
static gboolean find_name(const struct tobj *ob, guint64 folder, guint32 uid, guint *pos)
{
	guint lo = 0, hi = ob->n_names;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		int c = cmp_name(objtab_name(ob, mid), folder, uid);

		if (c == 0) {
			*pos = mid;
			return TRUE;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return FALSE;
}

static struct tname *name_at(struct tobj *ob, guint i)
{
	return i == 0 ? &ob->first : &ob->more[i - 1];
}

void objtab_add_name(struct tobj *ob, guint64 folder, guint32 uid)
{
	struct tname n = { (guint32)folder, uid };
	guint pos;

	if (find_name(ob, folder, uid, &pos))
		return;
	if (ob->n_names >= 1 && ob->n_names - 1 >= ob->cap_more) {
		ob->cap_more = ob->cap_more ? ob->cap_more * 2 : 2;
		ob->more = g_renew(struct tname, ob->more, ob->cap_more);
	}
	/* Shift names [pos, n) up by one, then put n at pos. */
	for (guint i = ob->n_names; i > pos; i--)
		*name_at(ob, i) = *name_at(ob, i - 1);
	*name_at(ob, pos) = n;
	ob->n_names++;
}

gboolean objtab_drop_name(struct objtab *o, struct tobj *ob, guint64 folder, guint32 uid)
{
	guint pos;

	if (!find_name(ob, folder, uid, &pos))
		return FALSE;
	for (guint i = pos; i + 1 < ob->n_names; i++)
		*name_at(ob, i) = *name_at(ob, i + 1);
	ob->n_names--;
	if (ob->n_names == 0) {
		g_clear_pointer(&ob->more, g_free);
		ob->cap_more = 0;
		if (g_hash_table_lookup(o->by_id, ob->objid) == ob)
			g_hash_table_remove(o->by_id, ob->objid);
	}
	return TRUE;
}

void objtab_release(struct objtab *o, struct tobj *ob)
{
	if (ob->n_names > 0 || ob->nlookup > 0)
		return;
	o->slots->pdata[ob->ino & ~TREE_OBJECT_BIT] = NULL;
	tobj_free(ob);
}
