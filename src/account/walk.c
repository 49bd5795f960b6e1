/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/walk.h"

#include <string.h>

static void listed_clear(gpointer p)
{
	g_free(((struct listed *)p)->name);
}

GArray *listed_array_new(void)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(struct listed));

	g_array_set_clear_func(a, listed_clear);
	return a;
}

static gint cmp_listed_name(gconstpointer a, gconstpointer b)
{
	return strcmp((*(struct listed *const *)a)->name, (*(struct listed *const *)b)->name);
}

void reading_orders_clear(struct reading_orders *o)
{
	if (o->by_name)
		g_ptr_array_unref(o->by_name);
	if (o->by_uid)
		g_array_unref(o->by_uid);
	o->by_name = NULL;
	o->by_uid = NULL;
}

void reading_orders_set(struct reading_orders *o, GArray *listed, guint32 uidvalidity,
			guint64 gen)
{
	reading_orders_clear(o);
	o->by_uid = listed;
	o->by_name = g_ptr_array_sized_new(listed->len);
	for (guint i = 0; i < listed->len; i++)
		g_ptr_array_add(o->by_name, &g_array_index(listed, struct listed, i));
	g_ptr_array_sort(o->by_name, cmp_listed_name);
	o->gen = gen;
	o->uidvalidity = uidvalidity;
}

void reading_orders_after(const struct reading_orders *o, guint32 uid, const char *name,
			  guint *pu, guint *pn)
{
	struct listed key = { .uid = uid, .name = (char *)(uintptr_t)name };
	struct listed *kp = &key;
	guint n = o->by_uid ? o->by_uid->len : 0;
	guint lo = 0, hi = n;

	/* by_uid is in ascending UID order: the first UID above uid. */
	while (lo < hi) {
		guint mid = (lo + hi) / 2;

		if (g_array_index(o->by_uid, struct listed, mid).uid <= uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pu = lo;
	lo = 0;
	hi = n;
	while (lo < hi) {
		guint mid = (lo + hi) / 2;

		if (cmp_listed_name(&o->by_name->pdata[mid], &kp) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pn = lo;
}

gboolean reading_orders_not_first(const struct reading_orders *o, guint32 uid)
{
	return o->by_uid && o->by_uid->len &&
	       g_array_index(o->by_uid, struct listed, 0).uid != uid &&
	       ((const struct listed *)o->by_name->pdata[0])->uid != uid;
}

enum read_order reading_orders_follows(const struct reading_orders *o, guint32 prev_uid,
				       guint32 uid)
{
	guint n = o->by_uid ? o->by_uid->len : 0;
	guint lo = 0, hi = n, pu, pn;
	gboolean by_uid, by_name;

	/* by_uid is in ascending UID order: find prev_uid's name there. */
	while (lo < hi) {
		guint mid = (lo + hi) / 2;

		if (g_array_index(o->by_uid, struct listed, mid).uid < prev_uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == n || g_array_index(o->by_uid, struct listed, lo).uid != prev_uid)
		return READ_EITHER;
	reading_orders_after(o, prev_uid, g_array_index(o->by_uid, struct listed, lo).name, &pu,
			     &pn);
	by_uid = pu < n && g_array_index(o->by_uid, struct listed, pu).uid == uid;
	by_name = pn < n && ((const struct listed *)o->by_name->pdata[pn])->uid == uid;
	if (by_uid == by_name)
		return READ_EITHER;
	return by_uid ? READ_BY_UID : READ_BY_NAME;
}

void reading_orders_pick(const struct reading_orders *o, guint pu, guint pn,
			 enum read_order order, guint64 *budget, GArray *items)
{
	/* Both orders walked: a message met in one is not taken from the
	   other again. One order holds each message once. */
	g_autoptr(GHashTable) seen =
	    order == READ_EITHER ? g_hash_table_new(g_direct_hash, g_direct_equal) : NULL;
	guint nu = o->by_uid ? o->by_uid->len : 0;
	guint nn = o->by_name ? o->by_name->len : 0;

	if (order == READ_BY_UID)
		pn = nn;
	else if (order == READ_BY_NAME)
		pu = nu;

	while (items->len < AHEAD_MAX && *budget > 0 && (pu < nu || pn < nn)) {
		for (int which = 0; which < 2; which++) {
			const struct listed *l = NULL;

			if (which == 0 && pn < nn)
				l = o->by_name->pdata[pn++];
			else if (which == 1 && pu < nu)
				l = &g_array_index(o->by_uid, struct listed, pu++);
			if (!l || (seen && !g_hash_table_add(seen, GUINT_TO_POINTER(l->uid))))
				continue;
			if (l->size > PREFETCH_MAX_BODY)
				continue;
			struct prefetch_item it = { l->uid, l->size };

			g_array_append_val(items, it);
			*budget = *budget > l->size ? *budget - l->size : 0;
		}
	}
}

struct open_verdict open_pattern_note(struct open_pattern *p, guint32 uid, gint64 now)
{
	struct open_verdict v;

	if (p->last_open && now - p->last_open < SEQUENTIAL_GAP_US && uid != p->last_uid)
		p->streak++;
	else if (uid != p->last_uid)
		p->streak = 1;
	if (p->streak == 1)
		p->order = READ_EITHER; /* a new streak: its order is not known */
	p->last_open = now;
	p->last_uid = uid;
	/* rsync, grep -r and tar list a folder and open its first file right
	   away: that walk is prefetched from its first open, not its second. */
	v.walk = p->streak == 1 && p->readdir_at && now - p->readdir_at < SEQUENTIAL_GAP_US;
	p->readdir_at = 0;
	v.ahead = p->streak >= 2 || v.walk;
	return v;
}

gboolean walk_note_dir_read(struct walk_state *w, guint64 ino, gint64 now)
{
	gboolean walking = w->dir_read_at && w->dir_read_ino != ino &&
			   now - w->dir_read_at < WALK_WINDOW_US;

	if (walking)
		w->tree_walk_at = now;
	w->dir_read_at = now;
	w->dir_read_ino = ino;
	return walking;
}

gboolean walk_recent(const struct walk_state *w, gint64 now, gint64 recent)
{
	return w->tree_walk_at && now - w->tree_walk_at < recent;
}
