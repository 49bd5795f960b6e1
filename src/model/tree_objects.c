/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/tree_objects.h"

#include "model/tree.h"

#include <string.h>

/*
 * The live objects by objid: open addressing over slot numbers (4 bytes a
 * bucket, at most three quarters full), the objid compared in the object. A
 * GHashTable spends a key, a value and a hash (20 bytes) a bucket, with
 * twice to four times as many buckets as entries: ~50 bytes an object of a
 * 1,000,000-message All Mail.
 */
#define BUCKET_FREE 0
#define BUCKET_TOMB G_MAXUINT32 /* an object left: probing goes on past it */
#define BUCKETS_MIN 16

struct objtab {
	guint32 *buckets;  /* slot numbers N, BUCKET_FREE or BUCKET_TOMB */
	guint32 n_buckets; /* a power of two */
	guint32 n_live;	   /* buckets holding an object */
	guint32 n_tombs;
	GPtrArray *slots; /* [N] = object numbered TREE_OBJECT_BIT | N, or NULL */
};

static struct tobj *slot(const struct objtab *o, guint32 n)
{
	return o->slots->pdata[n];
}

/* The bucket of objid: where it is, or else the first free one its probe
   meets (*found FALSE). */
static guint32 bucket_of(const struct objtab *o, const char *objid, gboolean *found)
{
	guint32 mask = o->n_buckets - 1, i = g_str_hash(objid) & mask;

	for (;; i = (i + 1) & mask) {
		guint32 b = o->buckets[i];

		if (b == BUCKET_FREE) {
			*found = FALSE;
			return i;
		}
		if (b != BUCKET_TOMB && strcmp(slot(o, b)->objid, objid) == 0) {
			*found = TRUE;
			return i;
		}
	}
}

/* Room for one more: at three quarters full (live and tombstones), rebuilt
   without the tombstones, at least twice as big as the live ones. */
static void buckets_make_room(struct objtab *o)
{
	guint32 *old = o->buckets, n_old = o->n_buckets, n = BUCKETS_MIN;
	gboolean found;

	if ((guint64)(o->n_live + o->n_tombs + 1) * 4 <= (guint64)o->n_buckets * 3)
		return;
	while ((guint64)(o->n_live + 1) * 2 > n)
		n *= 2;
	o->buckets = g_new0(guint32, n);
	o->n_buckets = n;
	o->n_tombs = 0;
	for (guint32 i = 0; i < n_old; i++)
		if (old[i] != BUCKET_FREE && old[i] != BUCKET_TOMB)
			o->buckets[bucket_of(o, slot(o, old[i])->objid, &found)] = old[i];
	g_free(old);
}

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
	g_free(o->buckets);
	g_free(o);
}

struct tobj *objtab_intern(struct objtab *o, const char *objid)
{
	struct tobj *ob;
	gboolean found;
	guint32 b;
	size_t len;

	buckets_make_room(o);
	b = bucket_of(o, objid, &found);
	if (found)
		return slot(o, o->buckets[b]);
	/* Slot numbers stay below BUCKET_TOMB: 4 billion objects first. */
	g_assert(o->slots->len < BUCKET_TOMB);
	len = strlen(objid);
	ob = g_malloc0(sizeof(*ob) + len + 1);
	memcpy(ob->objid, objid, len + 1);
	ob->ino = TREE_OBJECT_BIT | o->slots->len;
	o->buckets[b] = o->slots->len;
	o->n_live++;
	g_ptr_array_add(o->slots, ob);
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
		gboolean found;
		guint32 b = o->n_buckets ? bucket_of(o, ob->objid, &found) : 0;

		if (o->n_buckets && found && slot(o, o->buckets[b]) == ob) {
			o->buckets[b] = BUCKET_TOMB;
			o->n_live--;
			o->n_tombs++;
		}
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
