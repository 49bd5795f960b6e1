/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/tree_objects.h"

#include "model/tree.h"

struct objtab {
	GHashTable *by_id;  /* objid -> struct tobj *, live objects only */
	GHashTable *by_ino; /* &ino -> struct tobj * (owns every object) */
	guint64 next;
};

static void tobj_free(void *p)
{
	struct tobj *ob = p;

	g_free(ob->objid);
	g_array_unref(ob->names);
	if (ob->last.flags)
		g_ref_string_release(ob->last.flags);
	g_free(ob->last.name);
	g_free(ob);
}

struct objtab *objtab_new(void)
{
	struct objtab *o = g_new0(struct objtab, 1);

	o->by_id = g_hash_table_new(g_str_hash, g_str_equal);
	o->by_ino = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, tobj_free);
	o->next = 1;
	return o;
}

void objtab_free(struct objtab *o)
{
	if (!o)
		return;
	g_hash_table_unref(o->by_id);
	g_hash_table_unref(o->by_ino);
	g_free(o);
}

struct tobj *objtab_intern(struct objtab *o, const char *objid)
{
	struct tobj *ob = g_hash_table_lookup(o->by_id, objid);

	if (ob)
		return ob;
	ob = g_new0(struct tobj, 1);
	ob->ino = TREE_OBJECT_BIT | o->next++;
	ob->objid = g_strdup(objid);
	ob->names = g_array_new(FALSE, FALSE, sizeof(struct tname));
	g_hash_table_insert(o->by_id, ob->objid, ob);
	g_hash_table_insert(o->by_ino, &ob->ino, ob);
	return ob;
}

struct tobj *objtab_get(struct objtab *o, guint64 ino)
{
	return g_hash_table_lookup(o->by_ino, &ino);
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
	guint lo = 0, hi = ob->names->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		int c = cmp_name(&g_array_index(ob->names, struct tname, mid), folder, uid);

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

void objtab_add_name(struct tobj *ob, guint64 folder, guint32 uid)
{
	struct tname n = { folder, uid };
	guint pos;

	if (!find_name(ob, folder, uid, &pos))
		g_array_insert_val(ob->names, pos, n);
}

gboolean objtab_drop_name(struct objtab *o, struct tobj *ob, guint64 folder, guint32 uid)
{
	guint pos;

	if (!find_name(ob, folder, uid, &pos))
		return FALSE;
	g_array_remove_index(ob->names, pos);
	if (ob->names->len == 0 && g_hash_table_lookup(o->by_id, ob->objid) == ob)
		g_hash_table_remove(o->by_id, ob->objid);
	return TRUE;
}

void objtab_release(struct objtab *o, struct tobj *ob)
{
	if (ob->names->len == 0 && ob->nlookup == 0)
		g_hash_table_remove(o->by_ino, &ob->ino);
}
