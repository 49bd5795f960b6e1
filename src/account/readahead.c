/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading ahead of walks: folders listed before a walk gets to them, and
 * message bodies fetched before a reader opens them. The patterns are
 * account/walk.h's; this file applies them with the account's locks and
 * hands the work to the listers and the two prefetchers.
 */
#include <string.h>

#include "account/imap_account_internal.h"

/* A walk's listings run up to LIST_AHEAD folders ahead of it, given to
   the listers in bursts (account_list_burst) of at least LIST_BURST_MIN,
   unless the walk is about to come to one not given yet. */
#define LIST_AHEAD     LIST_BURST_MAX
#define LIST_BURST_MIN 8
/* A stat of a folder this soon after its parent was read from its start
   is a walker's (imap_account_folder_stat), as a walk's folders are. */
#define STAT_AFTER_READDIR_US WALK_WINDOW_US
/* Opens whose next this many messages (and the farthest asked for) are
   cached ask for nothing. */
#define NEXT_CACHED_ENOUGH 8
/* In a tree walk (seen within TREE_WALK_RECENT_US), entering a folder has
   the first messages of the next NEXT_FOLDERS folders fetched, at most
   1/NEXT_FOLDERS_SHARE of `prefetch` bytes. Folders whose first messages
   are cached already do not count: up to NEXT_FOLDERS_LOOK folders on are
   looked at. */
#define TREE_WALK_RECENT_US (30 * G_USEC_PER_SEC)
#define NEXT_FOLDERS 4
#define NEXT_FOLDERS_SHARE 4
#define NEXT_FOLDERS_LOOK 16

/* A listers' job: the folders of one burst, in walk order. */
struct list_job {
	guint n;
	guint64 ino[];
};

void readahead_list_job(void *data, void *user_data)
{
	struct imap_account *a = user_data;
	struct list_job *j = data;
	struct lease l;

	lease_init(&l, a->pool);
	account_list_burst(a, &l, j->ino, j->n);
	lease_clear(&l);
	g_free(j);
}

/*
 * Of the folders in `candidates` (walk order), those the listers were not
 * given within `refresh` (a listing stays fresh that long) go to them as
 * one burst: unless fewer than LIST_BURST_MIN are due and the first
 * candidate is not one of them (wait for more: the walk has folders given
 * already to read first). With refresh 0 nothing is listed ahead: the walk
 * would list it again.
 */
static void give_listers(struct imap_account *a, const GArray *candidates, gint64 now)
{
	g_autoptr(GPtrArray) states = g_ptr_array_new();
	gint64 fresh_for = (gint64)a->opts->refresh * G_USEC_PER_SEC;
	struct list_job *j;
	guint due = 0;
	gboolean first_due;

	if (!fresh_for || !candidates->len || !a->lister)
		return;
	j = g_malloc(sizeof(*j) + candidates->len * sizeof(guint64));
	/* folder_state objects live as long as the account. */
	for (guint i = 0; i < candidates->len; i++)
		g_ptr_array_add(states, account_folder(a, g_array_index(candidates, guint64, i)));
	mfs_mutex_lock(&a->lock);
	for (guint i = 0; i < candidates->len; i++) {
		const struct folder_state *g = states->pdata[i];

		if (!g->ahead_at || now - g->ahead_at >= fresh_for)
			j->ino[due++] = g_array_index(candidates, guint64, i);
	}
	first_due = due && j->ino[0] == g_array_index(candidates, guint64, 0);
	if (!due || (due < LIST_BURST_MIN && !first_due && due < candidates->len)) {
		mfs_mutex_unlock(&a->lock);
		g_free(j);
		return;
	}
	for (guint i = 0; i < candidates->len; i++) {
		struct folder_state *g = states->pdata[i];

		if (!g->ahead_at || now - g->ahead_at >= fresh_for)
			g->ahead_at = now;
	}
	mfs_mutex_unlock(&a->lock);
	j->n = due;
	workers_push(a->lister, j);
}

/*
 * A walk read folder ino: the folders it comes to next (up to LIST_AHEAD)
 * that are due go to the listers, at the walk's first folder all of them,
 * then more as it moves on, LIST_BURST_MIN at a time, so that a walk of
 * many folders costs a few bursts, not a round trip per folder.
 */
static void list_ahead(struct imap_account *a, guint64 ino, gint64 now)
{
	g_autoptr(GArray) next = g_array_new(FALSE, FALSE, sizeof(guint64));

	tree_folders_after(a->tree, ino, LIST_AHEAD, next);
	give_listers(a, next, now);
}

void imap_account_folder_stat(struct imap_account *a, guint64 ino)
{
	g_autoptr(GArray) under = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GArray) candidates = g_array_new(FALSE, FALSE, sizeof(guint64));
	struct tree_entry e = { 0 };
	gint64 now = account_now();
	gboolean walker;
	guint64 parent;

	if (!a->lister || tree_get(a->tree, ino, 0, &e) < 0)
		return;
	parent = e.parent;
	tree_entry_clear(&e);
	mfs_mutex_lock(&a->lock);
	walker = a->walk.dir_read_at && a->walk.dir_read_ino == parent &&
		 now - a->walk.dir_read_at < STAT_AFTER_READDIR_US;
	mfs_mutex_unlock(&a->lock);
	if (!walker)
		return;
	/* ino first (its stat waits for it), then the walk's order. */
	g_array_append_val(candidates, ino);
	tree_folder_subtree(a->tree, parent, under);
	for (guint i = 0; i < under->len && candidates->len < LIST_AHEAD; i++) {
		guint64 n = g_array_index(under, guint64, i);

		if (n != ino && n != parent)
			g_array_append_val(candidates, n);
	}
	give_listers(a, candidates, now);
}

void imap_account_dir_read_from_start(struct imap_account *a, guint64 ino)
{
	struct folder_state *f = account_folder(a, ino);
	gint64 now = account_now();
	gboolean walking;

	mfs_mutex_lock(&a->lock);
	f->pattern.readdir_at = now;
	walking = walk_note_dir_read(&a->walk, ino, now);
	mfs_mutex_unlock(&a->lock);
	if (walking)
		list_ahead(a, ino, now);
}

/* A folder's messages as tree_readdir gives them, for the reading orders. */
struct listed_set {
	GArray *listed; /* struct listed */
	guint32 uidvalidity;
};

static gboolean collect_listed(void *ud, const char *name, const struct tree_entry *e,
			       guint64 next_off)
{
	struct listed_set *c = ud;
	struct listed l;

	(void)next_off;
	/* A name whose body is read through another folder's (model/tree.h,
	   OBJECTS) is not this folder's to fetch ahead. */
	if (e->kind != TREE_MESSAGE || e->alias)
		return TRUE;
	l.uid = e->uid;
	l.size = e->size;
	l.name = g_strdup(name);
	g_array_append_val(c->listed, l);
	c->uidvalidity = e->uidvalidity;
	return TRUE;
}

/* Bring folder f's (folder ino's) reading orders up to its listing: when
   older, copied from the tree outside a->lock (the tree has its own). */
static void refresh_orders(struct imap_account *a, struct folder_state *f, guint64 ino)
{
	guint64 gen = __atomic_load_n(&f->listed_gen, __ATOMIC_ACQUIRE);
	struct listed_set c = { 0 };
	gboolean stale;

	mfs_mutex_lock(&a->lock);
	stale = !f->orders.by_uid || f->orders.gen != gen;
	mfs_mutex_unlock(&a->lock);
	if (!stale)
		return;
	c.listed = listed_array_new();
	tree_readdir(a->tree, ino, 0, FALSE, collect_listed, &c);
	mfs_mutex_lock(&a->lock);
	reading_orders_set(&f->orders, c.listed, c.uidvalidity, gen);
	mfs_mutex_unlock(&a->lock);
}

/* Whether the first messages of items (NEXT_CACHED_ENOUGH of them, or
   all when fewer) and its last are cached already. A few lookups, not one
   per message: this runs at many opens of a cold walk. */
static gboolean first_ones_cached(struct imap_account *a, const char *key, const GArray *items)
{
	guint n = MIN(items->len, NEXT_CACHED_ENOUGH);

	if (!items->len ||
	    !mcache_peek_complete(a->cache, key,
				  g_array_index(items, struct prefetch_item, items->len - 1).uid))
		return FALSE;
	for (guint i = 0; i < n; i++) {
		if (!mcache_peek_complete(a->cache, key,
					  g_array_index(items, struct prefetch_item, i).uid))
			return FALSE;
	}
	return TRUE;
}

/*
 * The next few messages the reader will open and the farthest one asked
 * for are cached already (a warm walk): no request. A cold walk always
 * asks: each request keeps the prefetcher's running pipeline fed, and
 * letting it drain costs a round trip to start again. Fewer than
 * NEXT_CACHED_ENOUGH ahead (a folder's end) always asks: the request goes
 * on into the next folders.
 */
static gboolean next_ones_cached(struct imap_account *a, const char *key, const GArray *items)
{
	return items->len >= NEXT_CACHED_ENOUGH && first_ones_cached(a, key, items);
}

/* One segment of a prefetch request, owned. */
struct ahead {
	char *wire;
	guint32 uidvalidity;
	GArray *items; /* struct prefetch_item */
};

static void ahead_free(gpointer p)
{
	struct ahead *x = p;

	g_free(x->wire);
	g_array_unref(x->items);
	g_free(x);
}

/* The first messages of folder ino worth fetching within *budget, or NULL. */
static struct ahead *folder_start(struct imap_account *a, guint64 ino, guint64 *budget)
{
	struct folder_state *g = account_folder(a, ino);
	struct tree_entry e = { 0 };
	struct ahead *x;

	/* Not listed yet: nothing to go on. */
	if (!__atomic_load_n(&g->listed_gen, __ATOMIC_ACQUIRE) ||
	    tree_get(a->tree, ino, TREE_WANT_WIRE, &e) < 0 || !e.wire) {
		tree_entry_clear(&e);
		return NULL;
	}
	x = g_new0(struct ahead, 1);
	x->wire = g_steal_pointer(&e.wire);
	x->items = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	refresh_orders(a, g, ino);
	mfs_mutex_lock(&a->lock);
	x->uidvalidity = g->orders.uidvalidity;
	reading_orders_pick(&g->orders, 0, 0, READ_EITHER, budget, x->items);
	mfs_mutex_unlock(&a->lock);
	tree_entry_clear(&e);
	if (!x->items->len) {
		ahead_free(x);
		return NULL;
	}
	return x;
}

/*
 * The first messages of the folders a tree walk comes to after `folder`
 * (listed already: the listers saw to it), within *budget, appended to
 * ahead (struct ahead *), up to the first folder whose pick stops before
 * its end. Their folders become ones the walk is heading to: what is
 * fetched of them is held for it (keep_held).
 */
static void next_folders(struct imap_account *a, guint64 folder, guint64 *budget,
			 GPtrArray *ahead)
{
	g_autoptr(GPtrArray) next_keys = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GArray) after = g_array_new(FALSE, FALSE, sizeof(guint64));
	guint taken = 0;

	tree_folders_after(a->tree, folder, NEXT_FOLDERS_LOOK, after);
	for (guint i = 0; i < after->len && *budget > 0 && taken < NEXT_FOLDERS; i++) {
		guint64 ino = g_array_index(after, guint64, i);
		guint64 left = *budget;
		struct ahead *x = folder_start(a, ino, budget);
		gboolean cut;
		char *key;

		if (!x)
			continue;
		key = mcache_folder_key(x->wire, x->uidvalidity);
		g_ptr_array_add(next_keys, key);
		/* Its pick stopped before its end (AHEAD_MAX messages, or a first
		   listing still arriving): the walk reads the rest of it before
		   the folders after it, and its reader's opens ask for that rest.
		   Fetching a later folder's first messages now would put them
		   before it, and bring the connection back to it with a second
		   EXAMINE. */
		cut = x->items->len >= AHEAD_MAX || tree_folder_streaming(a->tree, ino);
		if (first_ones_cached(a, key, x->items)) {
			/* Its first messages were fetched ahead before: passed
			   over, at no cost to the budget, so the walk's folders
			   after it are reached (else the last folders of a walk
			   each begin with a round trip once the ones before them
			   are cached). */
			*budget = left;
			ahead_free(x);
		} else {
			taken++;
			g_ptr_array_add(ahead, x);
		}
		if (cut)
			break;
	}
	mfs_mutex_lock(&a->lock);
	for (guint i = 0; i < next_keys->len; i++)
		g_hash_table_add(a->walk_ahead_keys, g_steal_pointer(&next_keys->pdata[i]));
	mfs_mutex_unlock(&a->lock);
}

/* Ask prefetcher p for the segments of ahead (struct ahead *), in order. */
static void request_ahead(struct prefetch *p, const GPtrArray *ahead)
{
	g_autofree struct prefetch_segment *segs = g_new0(struct prefetch_segment, ahead->len + 1);

	for (guint i = 0; i < ahead->len; i++) {
		const struct ahead *x = ahead->pdata[i];

		segs[i] = (struct prefetch_segment){ x->wire, x->uidvalidity,
						     (const struct prefetch_item *)x->items->data,
						     x->items->len };
	}
	prefetch_request(p, segs, ahead->len);
}

/*
 * A tree walk entered folder `folder`: the first messages of the folders it
 * comes to next are fetched meanwhile by a prefetcher of their own, within
 * a quarter of `prefetch`, so the walk finds them cached instead of
 * starting each folder with round trips; in parallel with the folder being
 * read, which may be a long one.
 */
static void prefetch_next_folders(struct imap_account *a, guint64 folder)
{
	g_autoptr(GPtrArray) ahead = g_ptr_array_new_with_free_func(ahead_free);
	guint64 budget = a->opts->prefetch / NEXT_FOLDERS_SHARE;

	if (!a->prefetch_next)
		return;
	next_folders(a, folder, &budget, ahead);
	request_ahead(a->prefetch_next, ahead);
}

/* Which holds of bodies fetched ahead stay at a reader's open (see
   release_passed). */
struct keep_ahead {
	const char *folder_key;	      /* the folder read */
	const GArray *items;	      /* its messages the reader comes to next */
	GHashTable *next_uids;	      /* their UIDs, made at the first need */
	const char *left_key;	      /* the folder read before, left; or NULL */
	GHashTable *walk_ahead;	      /* a->walk_ahead_keys (read only) */
};

static gboolean keep_held(void *ud, const char *folder_key, guint32 uid)
{
	struct keep_ahead *k = ud;

	if (strcmp(folder_key, k->folder_key) == 0) {
		/* Only when a body of this folder is held (none in a warm walk). */
		if (!k->next_uids) {
			k->next_uids = g_hash_table_new(g_direct_hash, g_direct_equal);
			for (guint i = 0; i < k->items->len; i++)
				g_hash_table_add(k->next_uids,
						 GUINT_TO_POINTER(g_array_index(
						     k->items, struct prefetch_item, i).uid));
		}
		return g_hash_table_contains(k->next_uids, GUINT_TO_POINTER(uid));
	}
	if (k->left_key && strcmp(folder_key, k->left_key) == 0)
		return FALSE;
	return g_hash_table_contains(k->walk_ahead, folder_key);
}

/*
 * A reader opened a message of a folder, and comes to items next. Of the
 * bodies fetched ahead and held for it, it has passed those of this folder
 * not among items, and will not come back for those of the folder it read
 * before (it left it; the walk is depth first); nor for those of folders no
 * walk is heading to (a walk stopped, or a reader went elsewhere). Their
 * holds are given up: they stay cached, evictable, and the room they took
 * goes to what comes next. The folders the walk comes to next keep theirs
 * until the reader has been in them: a walk may enter them in another order
 * than the tree's (grep -r descends into a subfolder before it reads the
 * folder's own files).
 */
static void release_passed(struct imap_account *a, const char *key, const GArray *items,
			   gboolean tree_walk)
{
	g_autofree char *left = NULL;
	struct keep_ahead k = { key, items, NULL, NULL, NULL };

	/* a->lock is above the cache's: keep_held may read what it guards. */
	mfs_mutex_lock(&a->lock);
	if (!tree_walk)
		g_hash_table_remove_all(a->walk_ahead_keys);
	if (g_strcmp0(a->reading_key, key) != 0) {
		left = g_steal_pointer(&a->reading_key);
		a->reading_key = g_strdup(key);
		if (left)
			g_hash_table_remove(a->walk_ahead_keys, left);
	}
	k.left_key = left;
	k.walk_ahead = a->walk_ahead_keys;
	mcache_ahead_release_unless(a->cache, keep_held, &k);
	mfs_mutex_unlock(&a->lock);
	if (k.next_uids)
		g_hash_table_unref(k.next_uids);
}

void imap_account_reader_came(struct imap_account *a, guint64 folder, guint32 uid,
			      const char *name, const char *wire, guint32 uidvalidity)
{
	struct folder_state *f = account_folder(a, folder);
	g_autoptr(GArray) items = NULL;
	g_autoptr(GPtrArray) ahead = g_ptr_array_new_with_free_func(ahead_free);
	g_autofree char *key = NULL;
	struct ahead *here;
	struct open_verdict v;
	gint64 now = account_now();
	guint64 budget = a->opts->prefetch;
	gboolean tree_walk, picked_one, to_end;
	guint32 prev_uid;

	if (!a->prefetch)
		return;
	/* This open may have taken a body held for it, and with it the room
	   a prefetcher waiting for readers needs: it looks again now, not at
	   its next poll. */
	prefetch_room_freed(a->prefetch);
	prefetch_room_freed(a->prefetch_next);
	mfs_mutex_lock(&a->lock);
	prev_uid = f->pattern.last_uid;
	v = open_pattern_note(&f->pattern, uid, now);
	tree_walk = walk_recent(&a->walk, now, TREE_WALK_RECENT_US);
	mfs_mutex_unlock(&a->lock);
	if (!v.ahead)
		return;
	items = g_array_sized_new(FALSE, FALSE, sizeof(struct prefetch_item), AHEAD_MAX);
	refresh_orders(a, f, folder);
	mfs_mutex_lock(&a->lock);
	/* Right after a readdir, a file first in neither order: someone
	   picked one file, no walk. */
	picked_one = v.walk && reading_orders_not_first(&f->orders, uid);
	if (!picked_one && f->orders.by_uid->len) {
		guint pu, pn;

		if (f->pattern.streak >= 2 && prev_uid != uid) {
			enum read_order o = reading_orders_follows(&f->orders, prev_uid, uid);

			if (o != READ_EITHER)
				f->pattern.order = o;
		}
		reading_orders_after(&f->orders, uid, name, &pu, &pn);
		reading_orders_pick(&f->orders, pu, pn, f->pattern.order, &budget, items);
	}
	mfs_mutex_unlock(&a->lock);
	if (picked_one)
		return;
	if (v.walk && tree_walk)
		prefetch_next_folders(a, folder);
	key = mcache_folder_key(wire, uidvalidity);
	release_passed(a, key, items, tree_walk);
	if (next_ones_cached(a, key, items))
		return;
	/* The pick stopped at the folder's end, not at AHEAD_MAX or the
	   budget: in a tree walk the request goes on into the folders the
	   walk comes to next, so the prefetcher's pipeline runs on into them
	   instead of draining at the folder's end (account/prefetch.h). A
	   folder whose first listing is still arriving has not ended: the
	   pick stopped at what has arrived, and the reader's next opens ask
	   for the rest (going on into the next folders would fetch those
	   first, and come back to this one with a second EXAMINE). */
	to_end = items->len < AHEAD_MAX && budget > 0 && !tree_folder_streaming(a->tree, folder);
	here = g_new0(struct ahead, 1);
	here->wire = g_strdup(wire);
	here->uidvalidity = uidvalidity;
	here->items = g_steal_pointer(&items);
	g_ptr_array_add(ahead, here);
	if (tree_walk && to_end)
		next_folders(a, folder, &budget, ahead);
	request_ahead(a->prefetch, ahead);
}
