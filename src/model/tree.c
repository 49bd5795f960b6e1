/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/tree.h"
#include "model/tree_internal.h"

#include "model/names.h"
#include "model/tree_msgs.h"
#include "model/tree_objects.h"
#include "protocol/mutf7.h"
#include "protocol/uidset.h"
#include "util/lock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* m leaves ms for good: its name is dead, its flags released. */
static void tmsg_clear(struct msgset *ms, struct tmsg *m)
{
	if (m->name)
		namestore_drop(&ms->names, m->name);
	if (m->flags)
		g_ref_string_release(m->flags);
	m->name = NULL;
	m->flags = NULL;
}

static void msgs_array_free(struct tmsgs *a)
{
	for (guint i = 0; i < a->len; i++)
		if (a->v[i].flags)
			g_ref_string_release(a->v[i].flags);
	tmsgs_free(a);
}

static void msgset_free(void *p)
{
	struct msgset *ms = p;

	msgs_array_free(&ms->live);
	msgs_array_free(&ms->gone);
	namestore_clear(&ms->names);
	g_free(ms);
}

/* Locked. Copy the names still used into a new store once the dead ones
   outweigh them (model/tree_msgs.h). */
static void msgset_compact_names(struct msgset *ms)
{
	struct namestore fresh;
	struct tmsgs *arrays[] = {&ms->live, &ms->gone};

	if (!namestore_wants_compact(&ms->names))
		return;
	namestore_init(&fresh);
	namestore_reserve(&fresh, ms->names.live);
	for (guint k = 0; k < G_N_ELEMENTS(arrays); k++)
		for (guint i = 0; i < arrays[k]->len; i++)
			arrays[k]->v[i].name = namestore_add(&fresh, arrays[k]->v[i].name);
	namestore_clear(&ms->names);
	ms->names = fresh;
}

static void folder_free(void *p)
{
	struct folder *f = p;

	g_free(f->name);
	g_free(f->key);
	g_free(f->wire);
	g_ptr_array_unref(f->children);
	g_free(f);
}

static gboolean folder_selectable(const struct folder *f)
{
	return f->wire != NULL && !(f->attrs & IMAP_MBOX_NOSELECT) && !f->detached;
}

static void report_linked(GArray *removed, guint64 parent, guint64 ino, const char *name,
			  gboolean linked)
{
	struct tree_removed r = { parent, ino, g_strdup(name), linked };

	if (removed)
		g_array_append_val(removed, r);
	else
		g_free(r.name);
}

static void report(GArray *removed, guint64 parent, guint64 ino, const char *name)
{
	report_linked(removed, parent, ino, name, FALSE);
}

static void clear_removed(void *p)
{
	struct tree_removed *r = p;

	g_free(r->name);
}

GArray *tree_removed_new(void)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(struct tree_removed));

	g_array_set_clear_func(a, clear_removed);
	return a;
}

static guint64 msg_ino(const struct msgset *ms, guint32 uid)
{
	return ((guint64)ms->epoch << 32) | uid;
}

static int cmp_tmsg(const void *a, const void *b)
{
	const struct tmsg *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static void msgset_maybe_free(struct tree *t, struct msgset *ms)
{
	if (!ms->current && ms->refs == 0)
		g_hash_table_remove(t->epochs, GUINT_TO_POINTER(ms->epoch));
}

/*
 * Locked. m leaves ms's listing: reported (when named; a folder that left
 * implies its messages, so then only a link count change is), and taken
 * from its object. TRUE when the caller keeps m as gone (the kernel still
 * refers to it); else m is cleared. A name of an object is never kept: the
 * references are the object's, which keeps the last name's attributes.
 */
static gboolean msg_leaving(struct tree *t, struct msgset *ms, struct tmsg *m, gboolean named,
			    GArray *removed)
{
	struct tobj *ob = m->obj;

	if (!ob) {
		if (named)
			report(removed, ms->folder, msg_ino(ms, m->uid), m->name);
		if (m->nlookup > 0)
			return TRUE;
		tmsg_clear(ms, m);
		return FALSE;
	}
	objtab_drop_name(t->objects, ob, ms->folder, m->uid);
	if (objtab_nnames(ob) == 0) {
		ob->last = g_new0(struct tobj_last, 1);
		ob->last->folder = ms->folder;
		ob->last->uid = m->uid;
		ob->last->uidvalidity = ms->uidvalidity;
		ob->last->size = m->size;
		ob->last->mtime = m->mtime;
		ob->last->flags = g_ref_string_acquire(m->flags);
		ob->last->name = g_strdup(m->name);
		if (named)
			report(removed, ms->folder, ob->ino, m->name);
	} else if (ob->nlookup == 0) {
		/* The kernel holds neither the inode nor a name of it. */
	} else if (named) {
		report_linked(removed, ms->folder, ob->ino, m->name, TRUE);
	} else {
		report_linked(removed, 0, ob->ino, NULL, TRUE);
	}
	objtab_release(t->objects, ob);
	m->obj = NULL;
	tmsg_clear(ms, m);
	return FALSE;
}

void tree_msgset_retire(struct tree *t, struct folder *f, gboolean report_msgs, GArray *removed)
{
	struct msgset *ms = f->msgs;

	if (!ms)
		return;
	f->msgs = NULL;
	ms->current = FALSE;
	for (guint i = 0; i < ms->live.len; i++) {
		struct tmsg *m = &ms->live.v[i];

		if (msg_leaving(t, ms, m, report_msgs, removed))
			tmsgs_append(&ms->gone, m);
	}
	tmsgs_free(&ms->live);
	if (ms->gone.len > 1)
		qsort(ms->gone.v, ms->gone.len, sizeof(struct tmsg), cmp_tmsg);
	msgset_compact_names(ms);
	msgset_maybe_free(t, ms);
}

/* The message with inode number ino, its set, and whether it is gone. */
static struct tmsg *msg_get(struct tree *t, guint64 ino, struct msgset **msp, gboolean *gone)
{
	struct msgset *ms;
	struct tmsg *m;

	if (ino < MSG_INO_MIN)
		return NULL;
	ms = g_hash_table_lookup(t->epochs, GUINT_TO_POINTER((guint32)(ino >> 32)));
	if (!ms)
		return NULL;
	*msp = ms;
	m = tmsgs_find(&ms->live, (guint32)ino, NULL);
	*gone = m == NULL;
	if (!m)
		m = tmsgs_find(&ms->gone, (guint32)ino, NULL);
	return m;
}

struct tree *tree_new(const struct tree_options *opts)
{
	struct tree *t = g_new0(struct tree, 1);

	mfs_mutex_init(&t->lock);
	mfs_cond_init(&t->stream_cond);
	t->excl = g_ptr_array_new_with_free_func((GDestroyNotify)g_pattern_spec_free);
	if (opts) {
		t->names_uid = opts->names_uid;
		t->vshow = opts->virtual_folders_show;
		for (const char *const *g = opts->exclude; g && *g; g++)
			g_ptr_array_add(t->excl, g_pattern_spec_new(*g));
	}
	t->folders = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, folder_free);
	t->keys = g_hash_table_new(g_str_hash, g_str_equal);
	t->epochs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, msgset_free);
	t->objects = objtab_new();
	t->next_ino = TREE_ROOT_INO + 1;
	t->next_epoch = 1;

	t->root = g_new0(struct folder, 1);
	t->root->ino = TREE_ROOT_INO;
	t->root->parent = TREE_ROOT_INO;
	t->root->name = g_strdup("");
	t->root->children = g_ptr_array_new();
	g_hash_table_insert(t->folders, &t->root->ino, t->root);
	return t;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	g_hash_table_unref(t->keys);
	g_hash_table_unref(t->epochs);
	objtab_free(t->objects);
	g_hash_table_unref(t->folders);
	g_ptr_array_unref(t->excl);
	mfs_cond_clear(&t->stream_cond);
	mfs_mutex_clear(&t->lock);
	g_free(t);
}

/* -- folders ---------------------------------------------------------------- */

static struct folder *child_by_name(const struct folder *p, const char *name)
{
	for (guint i = 0; i < p->children->len; i++) {
		struct folder *c = g_ptr_array_index(p->children, i);

		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static struct folder *folder_create(struct tree *t, struct folder *parent, const char *key,
				    const char *shown)
{
	struct folder *f = g_new0(struct folder, 1);
	char *name = g_strdup(shown);

	/* See the header, "Duplicate names": "%~" is never names_escape() output. */
	for (guint k = 2; child_by_name(parent, name); k++) {
		g_free(name);
		name = g_strdup_printf("%s%%~%u", shown, k);
	}
	f->ino = t->next_ino++;
	f->parent = parent->ino;
	f->name = name;
	f->key = g_strdup(key);
	f->children = g_ptr_array_new();
	g_ptr_array_add(parent->children, f); /* ino grows: stays sorted */
	g_hash_table_insert(t->folders, &f->ino, f);
	g_hash_table_insert(t->keys, f->key, f);
	return f;
}

/* Take f and everything below out of the tree, children reported first. */
static void folder_detach(struct tree *t, struct folder *f, GArray *removed)
{
	struct folder *p = tree_folder_get(t, f->parent);

	while (f->children->len > 0)
		folder_detach(t, g_ptr_array_index(f->children, f->children->len - 1), removed);
	report(removed, f->parent, f->ino, f->name);
	if (p)
		g_ptr_array_remove(p->children, f);
	g_hash_table_remove(t->keys, f->key);
	tree_msgset_retire(t, f, FALSE, NULL);
	f->detached = TRUE;
	if (f->nlookup == 0)
		g_hash_table_remove(t->folders, &f->ino);
}

/* One mailbox of a LIST, split into levels. */
struct pmbox {
	const struct imap_mailbox_info *mi;
	guint n;
	char **keys;  /* keys[i]: identity of the prefix of levels 0..i */
	char **shown; /* shown[i]: path component of level i */
	char **paths; /* paths[i]: '/'-joined decoded levels 0..i, for exclude */
	gboolean hidden;
};

static void pmbox_free(void *p)
{
	struct pmbox *b = p;

	g_strfreev(b->keys);
	g_strfreev(b->shown);
	g_strfreev(b->paths);
	g_free(b);
}

static struct pmbox *pmbox_new(const struct imap_mailbox_info *mi)
{
	struct pmbox *b = g_new0(struct pmbox, 1);
	char dstr[2] = {mi->delimiter, 0};
	char **raw;

	if (mi->delimiter) {
		raw = g_strsplit(mi->name, dstr, -1);
	} else {
		raw = g_new0(char *, 2);
		raw[0] = g_strdup(mi->name);
	}
	b->mi = mi;
	b->n = g_strv_length(raw);
	b->keys = g_new0(char *, b->n + 1);
	b->shown = g_new0(char *, b->n + 1);
	b->paths = g_new0(char *, b->n + 1);
	for (guint i = 0; i < b->n; i++) {
		const char *keylevel = raw[i];
		char *dec = NULL;
		const char *match;

		/* RFC 3501 §5.1: INBOX is case-insensitive; other names are not. */
		if (i == 0 && g_ascii_strcasecmp(raw[i], "INBOX") == 0) {
			keylevel = "INBOX";
			b->shown[i] = g_strdup("INBOX");
			match = "INBOX";
		} else {
			dec = mutf7_decode(raw[i], NULL);
			if (dec) {
				b->shown[i] = names_escape(dec, strlen(dec));
				match = dec;
			} else {
				/* Not mUTF-7: shown from its raw bytes, escaped, never hidden. */
				b->shown[i] = names_escape(raw[i], strlen(raw[i]));
				match = b->shown[i];
			}
		}
		if (i == 0) {
			b->keys[i] = g_strdup(keylevel);
			b->paths[i] = g_strdup(match);
		} else {
			b->keys[i] = g_strconcat(b->keys[i - 1], dstr, keylevel, NULL);
			b->paths[i] = g_strconcat(b->paths[i - 1], "/", match, NULL);
		}
		g_free(dec);
	}
	g_strfreev(raw);
	return b;
}

static int cmp_pmbox(const void *a, const void *b)
{
	const struct pmbox *x = *(struct pmbox *const *)a, *y = *(struct pmbox *const *)b;

	return strcmp(x->keys[x->n - 1], y->keys[y->n - 1]);
}

static gboolean excluded(const struct tree *t, const char *path)
{
	for (guint i = 0; i < t->excl->len; i++)
		if (g_pattern_spec_match_string(g_ptr_array_index(t->excl, i), path))
			return TRUE;
	return FALSE;
}

static gboolean virtual_hidden(const struct tree *t, guint32 attrs)
{
	return !t->vshow &&
	       (attrs & (IMAP_MBOX_ALL | IMAP_MBOX_FLAGGED | IMAP_MBOX_IMPORTANT)) != 0;
}

static int cmp_folder_ino(const void *a, const void *b)
{
	const struct folder *x = *(struct folder *const *)a, *y = *(struct folder *const *)b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

void tree_apply_list(struct tree *t, GPtrArray *mailboxes, GArray *removed)
{
	g_autoptr(GPtrArray) boxes = g_ptr_array_new_with_free_func(pmbox_free);
	g_autoptr(GHashTable) listed = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) gone = g_ptr_array_new();
	GHashTableIter it;
	void *v;

	for (guint i = 0; mailboxes && i < mailboxes->len; i++) {
		const struct imap_mailbox_info *mi = g_ptr_array_index(mailboxes, i);

		if (mi && mi->name)
			g_ptr_array_add(boxes, pmbox_new(mi));
	}
	g_ptr_array_sort(boxes, cmp_pmbox);
	for (guint i = 0; i < boxes->len; i++) {
		struct pmbox *b = g_ptr_array_index(boxes, i);

		/* A wire name listed twice (or INBOX in two cases): the first wins. */
		if (!g_hash_table_contains(listed, b->keys[b->n - 1]))
			g_hash_table_insert(listed, b->keys[b->n - 1], b);
	}
	for (guint i = 0; i < boxes->len; i++) {
		struct pmbox *b = g_ptr_array_index(boxes, i);

		b->hidden = virtual_hidden(t, b->mi->attrs);
		for (guint l = 0; l < b->n && !b->hidden; l++) {
			struct pmbox *anc = g_hash_table_lookup(listed, b->keys[l]);

			b->hidden =
			    excluded(t, b->paths[l]) || (anc && virtual_hidden(t, anc->mi->attrs));
		}
	}

	mfs_mutex_lock(&t->lock);
	g_hash_table_iter_init(&it, t->folders);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct folder *f = v;

		f->seen = f == t->root;
		f->listed_now = FALSE;
	}
	for (guint i = 0; i < boxes->len; i++) {
		struct pmbox *b = g_ptr_array_index(boxes, i);
		struct folder *f = t->root;

		if (b->hidden || g_hash_table_lookup(listed, b->keys[b->n - 1]) != b)
			continue;
		for (guint l = 0; l < b->n; l++) {
			struct folder *c = g_hash_table_lookup(t->keys, b->keys[l]);

			if (!c)
				c = folder_create(t, f, b->keys[l], b->shown[l]);
			c->seen = TRUE;
			f = c;
		}
		f->listed_now = TRUE;
		if (g_strcmp0(f->wire, b->mi->name) != 0) {
			g_free(f->wire);
			f->wire = g_strdup(b->mi->name);
		}
		f->attrs = b->mi->attrs;
	}

	/* Topmost vanished folders; folder_detach takes their subtrees. */
	g_hash_table_iter_init(&it, t->folders);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct folder *f = v, *p;

		if (f->detached || f->seen)
			continue;
		p = tree_folder_get(t, f->parent);
		if (!p || p->seen)
			g_ptr_array_add(gone, f);
	}
	/* Deterministic report order: by inode number. */
	g_ptr_array_sort(gone, cmp_folder_ino);
	for (guint i = 0; i < gone->len; i++)
		folder_detach(t, g_ptr_array_index(gone, i), removed);

	g_hash_table_iter_init(&it, t->folders);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct folder *f = v;

		if (f->detached || f == t->root)
			continue;
		if (!f->listed_now) {
			g_clear_pointer(&f->wire, g_free);
			f->attrs = 0;
		}
		if (!folder_selectable(f))
			tree_msgset_retire(t, f, TRUE, removed);
	}
	mfs_mutex_unlock(&t->lock);
}

static gint cmp_folder_name(gconstpointer a, gconstpointer b)
{
	const struct folder *x = *(struct folder *const *)a;
	const struct folder *y = *(struct folder *const *)b;

	return strcmp(x->name, y->name);
}

/* Locked. f's subfolders, depth first in name order, after f itself. */
static void walk_order(const struct folder *f, GPtrArray *order)
{
	g_autoptr(GPtrArray) kids = g_ptr_array_sized_new(f->children->len);

	for (guint i = 0; i < f->children->len; i++)
		g_ptr_array_add(kids, f->children->pdata[i]);
	g_ptr_array_sort(kids, cmp_folder_name);
	for (guint i = 0; i < kids->len; i++) {
		g_ptr_array_add(order, kids->pdata[i]);
		walk_order(kids->pdata[i], order);
	}
}

void tree_folders_after(struct tree *t, guint64 from, guint max, GArray *out)
{
	g_autoptr(GPtrArray) order = g_ptr_array_new();
	guint i = 0;

	mfs_mutex_lock(&t->lock);
	g_ptr_array_add(order, t->root);
	walk_order(t->root, order);
	while (i < order->len && ((struct folder *)order->pdata[i])->ino != from)
		i++;
	for (i++; i < order->len && max > 0; i++) {
		const struct folder *f = order->pdata[i];

		if (folder_selectable(f)) {
			g_array_append_val(out, f->ino);
			max--;
		}
	}
	mfs_mutex_unlock(&t->lock);
}

void tree_folder_subtree(struct tree *t, guint64 ino, GArray *out)
{
	g_autoptr(GPtrArray) order = g_ptr_array_new();
	struct folder *f;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, ino);
	if (f && !f->detached) {
		g_ptr_array_add(order, f);
		walk_order(f, order);
	}
	for (guint i = 0; i < order->len; i++) {
		const struct folder *c = order->pdata[i];

		if (folder_selectable(c))
			g_array_append_val(out, c->ino);
	}
	mfs_mutex_unlock(&t->lock);
}

guint64 tree_find_folder(struct tree *t, const char *wire)
{
	GHashTableIter it;
	void *v;
	guint64 ino = 0;

	mfs_mutex_lock(&t->lock);
	g_hash_table_iter_init(&it, t->keys);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct folder *f = v;

		if (g_strcmp0(f->wire, wire) == 0) {
			ino = f->ino;
			break;
		}
	}
	mfs_mutex_unlock(&t->lock);
	return ino;
}

/* -- messages --------------------------------------------------------------- */

struct uidx {
	guint32 uid;
	guint32 idx;
};

static int cmp_uidx(const void *a, const void *b)
{
	const struct uidx *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The name of a message listed without one (mi->name NULL). */
static char *message_name(const struct tree *t, const struct tree_msg_info *mi)
{
	g_autofree char *slug = t->names_uid ? NULL : names_subject_slug(mi->subject);

	return names_message_name(mi->uid, slug);
}

static char *intern_flags(const char *flags)
{
	return g_ref_string_new_intern(flags ? flags : "");
}

int tree_messages_folder(struct tree *t, guint64 ino, struct folder **out)
{
	struct folder *f = tree_folder_get(t, ino);

	if (!f)
		return ino >= MSG_INO_MIN ? -ENOTDIR : -ENOENT;
	if (f->detached)
		return -ENOENT;
	if (!folder_selectable(f))
		return -EINVAL;
	*out = f;
	return 0;
}

/* Whether the delta says uid was expunged. */
static gboolean vanished(const struct tree_delta *d, guint32 uid)
{
	return d->vanished && uidset_contains(d->vanished, uid);
}

/* Whether an old message not among the inputs has left the folder. */
static gboolean implied_gone(const struct tree_delta *d, guint32 uid)
{
	return (guint64)uid < d->complete_below || vanished(d, uid);
}

int tree_folder_set_messages(struct tree *t, guint64 ino, guint32 uidvalidity,
			     const struct tree_msg_info *msgs, gsize n, GArray *removed)
{
	const struct tree_delta d = { .msgs = msgs, .n = n, .complete_below = TREE_COMPLETE };

	return tree_folder_merge(t, ino, uidvalidity, &d, removed);
}

/* The delta's messages by UID, each UID once (the first given wins), the
   vanished left out. *count gets how many. */
static struct uidx *delta_order(const struct tree_delta *d, gsize *count)
{
	struct uidx *order = g_new(struct uidx, d->n ? d->n : 1);
	gsize n = 0, w = 0;

	for (gsize i = 0; i < d->n; i++) {
		if (d->msgs[i].uid == 0 || vanished(d, d->msgs[i].uid))
			continue;
		order[n].uid = d->msgs[i].uid;
		order[n].idx = (guint32)i;
		n++;
	}
	qsort(order, n, sizeof(*order), cmp_uidx);
	/* Drop repeated UIDs: the first given (lowest index) sorts first. */
	for (gsize i = 0; i < n; i++)
		if (w == 0 || order[w - 1].uid != order[i].uid)
			order[w++] = order[i];
	*count = w;
	return order;
}

/* Locked. Which of the UIDs in order the folder already has a name for. */
static void mark_known(struct folder *f, guint32 uidvalidity, const struct uidx *order, gsize count,
		       guint8 *known)
{
	if (!f->msgs || f->msgs->uidvalidity != uidvalidity)
		return;
	for (gsize i = 0; i < count; i++)
		known[i] = tmsgs_find(&f->msgs->live, order[i].uid, NULL) ||
			   tmsgs_find(&f->msgs->gone, order[i].uid, NULL);
}

struct msgset *tree_current_msgset(struct tree *t, struct folder *f, guint32 uidvalidity,
				   GArray *removed)
{
	struct msgset *ms;

	if (f->msgs && f->msgs->uidvalidity != uidvalidity)
		tree_msgset_retire(t, f, TRUE, removed);
	if (f->msgs)
		return f->msgs;
	ms = g_new0(struct msgset, 1);
	ms->epoch = t->next_epoch++;
	ms->uidvalidity = uidvalidity;
	ms->folder = f->ino;
	ms->current = TRUE;
	namestore_init(&ms->names);
	g_hash_table_insert(t->epochs, GUINT_TO_POINTER(ms->epoch), ms);
	f->msgs = ms;
	return ms;
}

/* Locked. Old message *old, not in the delta: kept in live unless the
   delta implies it is gone (then reported, and kept as gone while the
   kernel still refers to it). */
static void carry_old(struct tree *t, const struct tree_delta *d, struct msgset *ms,
		      struct tmsg *old, struct tmsgs *live, GArray *removed)
{
	guint gpos;

	if (!implied_gone(d, old->uid)) {
		tmsgs_append(live, old);
		return;
	}
	if (msg_leaving(t, ms, old, TRUE, removed)) {
		tmsgs_find(&ms->gone, old->uid, &gpos);
		tmsgs_insert(&ms->gone, gpos, old);
	}
}

/* Locked. New message m of ms, listed with objid in: a name of its object
   (an object that had names already changes its link count). */
static void name_object(struct tree *t, struct msgset *ms, const struct tree_msg_info *in,
			struct tmsg *m, GArray *removed)
{
	struct tobj *ob;

	m->obj = NULL;
	if (!in->objid || !*in->objid || strlen(in->objid) > TREE_OBJID_MAX)
		return;
	ob = objtab_intern(t->objects, in->objid);
	/* Only an inode the kernel holds has a link count to correct (a
	   1,000,000-message All Mail listed after the labels would otherwise
	   queue a notification per message). */
	if (objtab_nnames(ob) > 0 && ob->nlookup > 0)
		report_linked(removed, 0, ob->ino, NULL, TRUE);
	objtab_add_name(ob, ms->folder, in->uid);
	m->obj = ob;
}

/* Locked. The message the delta gives as in: the old one updated, one
   listed again, or a new one named as listed, or *name (made in phase 2),
   or named now. FALSE when there is nothing to add (flags of a message no
   longer held). */
static gboolean merged_message(struct tree *t, struct msgset *ms, guint *oi,
			       const struct tree_msg_info *in, const char *name, struct tmsg *m,
			       GArray *removed)
{
	struct tmsg *old;
	guint gpos;

	if (*oi < ms->live.len && ms->live.v[*oi].uid == in->uid) {
		*m = ms->live.v[(*oi)++];
		if (in->flags && strcmp(m->flags, in->flags) != 0) {
			g_ref_string_release(m->flags);
			m->flags = intern_flags(in->flags);
		}
	} else if (in->update_only) {
		return FALSE;
	} else if ((old = tmsgs_find(&ms->gone, in->uid, &gpos)) != NULL) {
		/* Listed again (a partial listing before?): same inode, same name. */
		*m = *old;
		tmsgs_remove(&ms->gone, gpos);
	} else {
		m->uid = in->uid;
		m->nlookup = 0;
		m->size = in->size;
		m->mtime = in->internaldate;
		if (in->name || name) {
			m->name = namestore_add(&ms->names, in->name ? in->name : name);
		} else {
			/* Known in phase 1 but removed since: name it now. */
			g_autofree char *made = message_name(t, in);

			m->name = namestore_add(&ms->names, made);
		}
		m->flags = intern_flags(in->flags);
		name_object(t, ms, in, m, removed);
	}
	return TRUE;
}

/* Whether the delta only adds after what ms holds, taking nothing away: a
   first listing, or the next chunk of one listed as it arrives. */
static gboolean appends_only(const struct msgset *ms, const struct tree_delta *d,
			     const struct uidx *order, gsize count)
{
	if (ms->live.len == 0)
		return TRUE;
	if (count > 0 && order[0].uid <= ms->live.v[ms->live.len - 1].uid)
		return FALSE;
	return (guint64)ms->live.v[0].uid >= d->complete_below &&
	       (!d->vanished || d->vanished->len == 0);
}

/* Locked. Merge the delta (in UID order) into folder f's current set. */
static void merge_delta(struct tree *t, struct folder *f, const struct tree_delta *d,
			const struct uidx *order, gsize count, char **names, guint32 uidvalidity,
			gboolean more_to_come, GArray *removed)
{
	struct msgset *ms = tree_current_msgset(t, f, uidvalidity, removed);
	struct tmsgs live = {0};
	guint oi = 0;

	if (appends_only(ms, d, order, count)) {
		/* In place: no second array while the first is copied (at
		   1,000,000 messages, 46 MB), and a big block grows by
		   remapping its pages, not copying them. */
		guint past = G_MAXUINT; /* no old message to match */

		tmsgs_reserve(&ms->live, (guint)(ms->live.len + count));
		for (gsize i = 0; i < count; i++) {
			struct tmsg m;

			if (merged_message(t, ms, &past, &d->msgs[order[i].idx],
					   names ? names[i] : NULL, &m, removed))
				tmsgs_append(&ms->live, &m);
		}
		/* The room reserved for what is still to come stays. */
		if (!more_to_come)
			tmsgs_trim(&ms->live);
		return;
	}
	/* Sized for the worst case, trimmed after: a 1,000,000-message
	   folder keeps no growth slack. */
	tmsgs_reserve(&live, (guint)(count + ms->live.len));
	for (gsize i = 0; i <= count; i++) {
		const struct tree_msg_info *in = i < count ? &d->msgs[order[i].idx] : NULL;
		struct tmsg m;

		/* Old messages below this UID: kept unless gone. */
		while (oi < ms->live.len && (!in || ms->live.v[oi].uid < in->uid))
			carry_old(t, d, ms, &ms->live.v[oi++], &live, removed);
		if (!in)
			break;
		if (merged_message(t, ms, &oi, in, names ? names[i] : NULL, &m, removed))
			tmsgs_append(&live, &m);
	}
	tmsgs_free(&ms->live);
	tmsgs_trim(&live);
	ms->live = live;
	msgset_compact_names(ms);
}

int tree_folder_merge(struct tree *t, guint64 ino, guint32 uidvalidity, const struct tree_delta *d,
		      GArray *removed)
{
	g_autofree struct uidx *order = NULL;
	g_autofree guint8 *known = NULL;
	char **names = NULL;
	gsize count = 0;
	struct folder *f;
	int rc;

	if (d->n > G_MAXUINT32 || (d->n > 0 && !d->msgs))
		return -EINVAL;
	order = delta_order(d, &count);

	/*
	 * Phase 1: which UIDs already have a name. Phase 2, without the lock:
	 * the slugs of the others (RFC 2047, iconv, NFC: the slow part of a
	 * 100,000-message first listing). Phase 3: merge.
	 */
	known = g_new0(guint8, count ? count : 1);
	mfs_mutex_lock(&t->lock);
	rc = tree_messages_folder(t, ino, &f);
	if (rc == 0)
		mark_known(f, uidvalidity, order, count, known);
	mfs_mutex_unlock(&t->lock);
	if (rc < 0)
		return rc;

	/* A listing that names its messages (a saved one; resync's) needs
	   none made: no array of names then. */
	for (gsize i = 0; i < count; i++) {
		const struct tree_msg_info *in = &d->msgs[order[i].idx];

		if (known[i] || in->update_only || in->name)
			continue;
		if (!names)
			names = g_new0(char *, count);
		names[i] = message_name(t, in);
	}

	mfs_mutex_lock(&t->lock);
	rc = tree_messages_folder(t, ino, &f);
	if (rc == 0)
		merge_delta(t, f, d, order, count, names, uidvalidity, FALSE, removed);
	if (rc == 0 && f->streaming)
		mfs_cond_broadcast(&t->stream_cond);
	mfs_mutex_unlock(&t->lock);
	for (gsize i = 0; names && i < count; i++)
		g_free(names[i]);
	g_free(names);
	return rc;
}

/* Messages tree_folder_load takes from its source at a time. */
#define LOAD_CHUNK 4096

int tree_folder_load(struct tree *t, guint64 ino, guint32 uidvalidity, gsize n_hint,
		     tree_msg_source_fn next, void *ud, GArray *removed)
{
	g_autofree struct tree_msg_info *chunk = g_new(struct tree_msg_info, LOAD_CHUNK);
	struct folder *f;
	int rc;

	mfs_mutex_lock(&t->lock);
	rc = tree_messages_folder(t, ino, &f);
	if (rc == 0 && f->msgs && f->msgs->uidvalidity == uidvalidity)
		rc = -EEXIST;
	/* Sized once: grown a chunk at a time, a big array below glibc's mmap
	   threshold would be copied at every chunk. */
	if (rc == 0)
		tmsgs_reserve(&tree_current_msgset(t, f, uidvalidity, removed)->live,
			      (guint)MIN(n_hint, G_MAXUINT32));
	/* Each chunk comes after the last (a source by UID): the append path,
	   names taken as given. An empty source still makes the (empty)
	   listing; the last call trims the room left. */
	for (gboolean more = rc == 0; more;) {
		const struct tree_delta d = { .msgs = chunk, .n = next(ud, chunk, LOAD_CHUNK) };
		g_autofree struct uidx *order = NULL;
		gsize count;

		more = d.n > 0;
		order = delta_order(&d, &count);
		merge_delta(t, f, &d, order, count, NULL, uidvalidity, more, removed);
	}
	mfs_mutex_unlock(&t->lock);
	return rc;
}

void tree_folder_note_list_failed(struct tree *t, guint64 ino)
{
	struct folder *f;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, ino);
	if (f && !f->msgs)
		f->list_failed = TRUE;
	mfs_mutex_unlock(&t->lock);
}

int tree_folder_foreach_message(struct tree *t, guint64 ino, guint32 *uidvalidity,
				tree_msg_fn fn, void *ud)
{
	struct folder *f;
	int rc;

	mfs_mutex_lock(&t->lock);
	rc = tree_messages_folder(t, ino, &f);
	if (rc == 0 && !f->msgs)
		rc = -ENODATA;
	if (rc == 0) {
		*uidvalidity = f->msgs->uidvalidity;
		for (guint i = 0; i < f->msgs->live.len; i++) {
			const struct tmsg *m = &f->msgs->live.v[i];
			const struct tree_msg_info mi = { .uid = m->uid,
							  .size = m->size,
							  .internaldate = m->mtime,
							  .flags = m->flags,
							  .objid = m->obj ? m->obj->objid
									  : NULL,
							  .name = m->name };

			fn(ud, &mi);
		}
	}
	mfs_mutex_unlock(&t->lock);
	return rc;
}

/* -- queries ---------------------------------------------------------------- */

void tree_entry_clear(struct tree_entry *e)
{
	g_clear_pointer(&e->name, g_free);
	g_clear_pointer(&e->wire, g_free);
	g_clear_pointer(&e->flags, g_free);
	g_clear_pointer(&e->objid, g_free);
}

static void fill_folder(const struct folder *f, unsigned want, struct tree_entry *out)
{
	memset(out, 0, sizeof(*out));
	out->ino = f->ino;
	out->parent = f->parent;
	out->kind = TREE_FOLDER;
	out->gone = f->detached;
	out->selectable = folder_selectable(f);
	out->mbox_attrs = f->attrs;
	out->list_failed = f->list_failed;
	if (f->msgs) {
		const struct tmsgs *live = &f->msgs->live;

		out->uidvalidity = f->msgs->uidvalidity;
		/* The newest arrival: one pass, under the lock (mailfs(1),
		   Attributes). A listing still arriving is listed when the
		   server named its newest arrival first. */
		out->listed = tree_folder_reads_listed(f);
		out->mtime = f->streaming ? f->newest : 0;
		for (guint i = 0; i < live->len; i++)
			out->mtime = MAX(out->mtime, live->v[i].mtime);
	}
	if (want & TREE_WANT_NAME)
		out->name = g_strdup(f->name);
	if ((want & TREE_WANT_WIRE) && out->selectable)
		out->wire = g_strdup(f->wire);
	if (want & TREE_WANT_FLAGS)
		out->flags = g_strdup("");
}

static void fill_msg(struct tree *t, const struct msgset *ms, const struct tmsg *m, gboolean gone,
		     unsigned want, struct tree_entry *out)
{
	const struct tobj *ob = m->obj;

	memset(out, 0, sizeof(*out));
	out->ino = ob ? ob->ino : msg_ino(ms, m->uid);
	out->parent = ms->folder;
	out->kind = TREE_MESSAGE;
	out->gone = gone;
	out->nlink = gone ? 0 : ob ? objtab_nnames(ob) : 1;
	if (ob) {
		const struct tname *rep = objtab_name(ob, 0);

		out->alias = rep->folder != ms->folder || rep->uid != m->uid;
		if (want & TREE_WANT_OBJID)
			out->objid = g_strdup(ob->objid);
	}
	out->uid = m->uid;
	out->uidvalidity = ms->uidvalidity;
	out->size = m->size;
	out->mtime = m->mtime;
	if (want & TREE_WANT_NAME)
		out->name = g_strdup(m->name);
	if (want & TREE_WANT_WIRE) {
		struct folder *f = tree_folder_get(t, ms->folder);

		if (f && f->wire)
			out->wire = g_strdup(f->wire);
	}
	if (want & TREE_WANT_FLAGS)
		out->flags = g_strdup(m->flags);
}

/* Locked. The live message of name n, or NULL. */
static struct tmsg *name_msg(struct tree *t, const struct tname *n, struct msgset **msp)
{
	struct folder *f = tree_folder_get(t, n->folder);

	if (!f || !f->msgs)
		return NULL;
	*msp = f->msgs;
	return tmsgs_find(&f->msgs->live, n->uid, NULL);
}

/* Locked. Object ob as tree_get gives it: its representative, or once it
   has no name, its last name's attributes. */
static void fill_obj(struct tree *t, const struct tobj *ob, unsigned want, struct tree_entry *out)
{
	struct msgset *ms;
	struct tmsg *m;
	struct folder *f;

	if (objtab_nnames(ob) > 0 && (m = name_msg(t, objtab_name(ob, 0), &ms)) != NULL) {
		fill_msg(t, ms, m, FALSE, want, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	out->ino = ob->ino;
	out->kind = TREE_MESSAGE;
	out->gone = TRUE;
	if (!ob->last)
		return; /* not reached: a name always leaves through msg_leaving */
	out->parent = ob->last->folder;
	out->uid = ob->last->uid;
	out->uidvalidity = ob->last->uidvalidity;
	out->size = ob->last->size;
	out->mtime = ob->last->mtime;
	if (want & TREE_WANT_NAME)
		out->name = g_strdup(ob->last->name ? ob->last->name : "");
	if ((want & TREE_WANT_WIRE) && (f = tree_folder_get(t, ob->last->folder)) != NULL && f->wire)
		out->wire = g_strdup(f->wire);
	if (want & TREE_WANT_FLAGS)
		out->flags = g_strdup(ob->last->flags ? ob->last->flags : "");
	if (want & TREE_WANT_OBJID)
		out->objid = g_strdup(ob->objid);
}

int tree_get(struct tree *t, guint64 ino, unsigned want, struct tree_entry *out)
{
	struct tobj *ob;
	struct folder *f;
	struct msgset *ms;
	struct tmsg *m;
	gboolean gone;
	int rc = 0;

	mfs_mutex_lock(&t->lock);
	if ((f = tree_folder_get(t, ino)) != NULL)
		fill_folder(f, want, out);
	else if (TREE_IS_OBJECT(ino) && (ob = objtab_get(t->objects, ino)) != NULL)
		fill_obj(t, ob, want, out);
	else if ((m = msg_get(t, ino, &ms, &gone)) != NULL)
		fill_msg(t, ms, m, gone, want, out);
	else
		rc = -ENOENT;
	mfs_mutex_unlock(&t->lock);
	return rc;
}

static void msg_ref(struct msgset *ms, struct tmsg *m)
{
	if (m->obj)
		m->obj->nlookup++;
	else if (m->nlookup < G_MAXUINT32) {
		m->nlookup++;
		ms->refs++;
	}
}

int tree_lookup(struct tree *t, guint64 parent, const char *name, gboolean ref, unsigned want,
		struct tree_entry *out)
{
	struct folder *p, *c;
	struct tmsg *m;
	guint32 uid;
	int rc = -ENOENT;

	mfs_mutex_lock(&t->lock);
	p = tree_folder_get(t, parent);
	if (!p) {
		rc = (TREE_IS_OBJECT(parent) && objtab_get(t->objects, parent)) ||
			     (parent >= MSG_INO_MIN &&
			      g_hash_table_contains(t->epochs,
						    GUINT_TO_POINTER((guint32)(parent >> 32))))
			 ? -ENOTDIR
			 : -ENOENT;
		goto out;
	}
	if ((c = child_by_name(p, name)) != NULL) {
		if (ref)
			c->nlookup++;
		fill_folder(c, want, out);
		rc = 0;
	} else if (p->msgs && names_parse_uid(name, &uid) &&
		   (m = tmsgs_find(&p->msgs->live, uid, NULL)) != NULL &&
		   strcmp(m->name, name) == 0) {
		if (ref)
			msg_ref(p->msgs, m);
		fill_msg(t, p->msgs, m, FALSE, want, out);
		rc = 0;
	}
out:
	mfs_mutex_unlock(&t->lock);
	return rc;
}

void tree_forget(struct tree *t, guint64 ino, guint64 n)
{
	struct folder *f;
	struct msgset *ms;
	struct tmsg *m;
	struct tobj *ob;
	gboolean gone;

	mfs_mutex_lock(&t->lock);
	if ((f = tree_folder_get(t, ino)) != NULL) {
		f->nlookup -= MIN(n, f->nlookup);
		if (f->detached && f->nlookup == 0)
			g_hash_table_remove(t->folders, &f->ino);
	} else if (TREE_IS_OBJECT(ino) && (ob = objtab_get(t->objects, ino)) != NULL) {
		ob->nlookup -= MIN(n, ob->nlookup);
		objtab_release(t->objects, ob);
	} else if ((m = msg_get(t, ino, &ms, &gone)) != NULL) {
		guint32 dec = (guint32)MIN(n, (guint64)m->nlookup);

		m->nlookup -= dec;
		ms->refs -= dec;
		if (gone && m->nlookup == 0) {
			guint pos;

			tmsgs_find(&ms->gone, m->uid, &pos);
			tmsg_clear(ms, m);
			tmsgs_remove(&ms->gone, pos);
			msgset_compact_names(ms);
		}
		msgset_maybe_free(t, ms);
	}
	mfs_mutex_unlock(&t->lock);
}

int tree_readdir(struct tree *t, guint64 dir, guint64 off, gboolean plus, tree_dir_fn fn, void *ud)
{
	struct tree_entry e;
	struct folder *f;
	struct msgset *ms;
	int rc = 0;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, dir);
	if (!f) {
		rc = dir >= MSG_INO_MIN ? -ENOTDIR : -ENOENT;
		goto out;
	}
	/* "." and ".." are not counted: FUSE readdirplus does not count them. */
	if (off < OFF_DOT) {
		fill_folder(f, 0, &e);
		if (!fn(ud, ".", &e, OFF_DOT))
			goto out;
	}
	if (off < OFF_DOTDOT) {
		struct folder *p = tree_folder_get(t, f->parent);

		if (p)
			fill_folder(p, 0, &e);
		else
			fill_folder(f, 0, &e);
		if (!fn(ud, "..", &e, OFF_DOTDOT))
			goto out;
	}
	if (off < OFF_MSG_BASE) {
		for (guint i = 0; i < f->children->len; i++) {
			struct folder *c = g_ptr_array_index(f->children, i);
			guint64 key = OFF_FOLDER_BASE + c->ino;

			if (key <= off)
				continue;
			fill_folder(c, 0, &e);
			if (!fn(ud, c->name, &e, key))
				goto out;
			if (plus)
				c->nlookup++;
		}
	}
	ms = f->msgs;
	if (ms) {
		guint i = 0;

		if (off >= OFF_MSG_BASE) {
			guint64 after = off - OFF_MSG_BASE;

			if (after >= G_MAXUINT32)
				goto out;
			tmsgs_find(&ms->live, (guint32)after + 1, &i);
		}
		for (; i < ms->live.len; i++) {
			struct tmsg *m = &ms->live.v[i];

			fill_msg(t, ms, m, FALSE, 0, &e);
			if (!fn(ud, m->name, &e, OFF_MSG_BASE + m->uid))
				goto out;
			if (plus)
				msg_ref(ms, m);
		}
	}
	if (f->streaming)
		rc = TREE_READDIR_MORE;
out:
	mfs_mutex_unlock(&t->lock);
	return rc;
}

/* Locked. The messages an update of ino changes: every live name of an
   object, or the message itself (also gone). 0, -EISDIR or -ENOENT. */
static int msgs_of(struct tree *t, guint64 ino, GPtrArray *out)
{
	struct msgset *ms;
	struct tobj *ob;
	struct tmsg *m;
	gboolean gone;

	if (tree_folder_get(t, ino))
		return -EISDIR;
	if (TREE_IS_OBJECT(ino)) {
		if (!(ob = objtab_get(t->objects, ino)) || objtab_nnames(ob) == 0)
			return -ENOENT;
		for (guint i = 0; i < objtab_nnames(ob); i++)
			if ((m = name_msg(t, objtab_name(ob, i), &ms)))
				g_ptr_array_add(out, m);
		return 0;
	}
	if (!(m = msg_get(t, ino, &ms, &gone)))
		return -ENOENT;
	g_ptr_array_add(out, m);
	return 0;
}

int tree_message_set_flags(struct tree *t, guint64 ino, const char *flags)
{
	g_autoptr(GPtrArray) msgs = g_ptr_array_new();
	int rc;

	mfs_mutex_lock(&t->lock);
	rc = msgs_of(t, ino, msgs);
	for (guint i = 0; i < msgs->len; i++) {
		struct tmsg *m = msgs->pdata[i];

		g_ref_string_release(m->flags);
		m->flags = intern_flags(flags);
	}
	mfs_mutex_unlock(&t->lock);
	return rc;
}

int tree_message_set_size(struct tree *t, guint64 ino, guint64 size)
{
	g_autoptr(GPtrArray) msgs = g_ptr_array_new();
	int rc;

	mfs_mutex_lock(&t->lock);
	rc = msgs_of(t, ino, msgs);
	for (guint i = 0; i < msgs->len; i++)
		((struct tmsg *)msgs->pdata[i])->size = size;
	mfs_mutex_unlock(&t->lock);
	return rc;
}

int tree_message_remove(struct tree *t, guint64 folder, guint32 uid, GArray *removed)
{
	struct folder *f;
	struct msgset *ms;
	struct tmsg *m, copy;
	guint pos, gpos;
	int rc = 0;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, folder);
	if (!f) {
		rc = folder >= MSG_INO_MIN ? -ENOTDIR : -ENOENT;
		goto out;
	}
	ms = f->msgs;
	if (!ms || (m = tmsgs_find(&ms->live, uid, &pos)) == NULL) {
		rc = -ENOENT;
		goto out;
	}
	copy = *m;
	tmsgs_remove(&ms->live, pos);
	if (msg_leaving(t, ms, &copy, TRUE, removed)) {
		tmsgs_find(&ms->gone, copy.uid, &gpos);
		tmsgs_insert(&ms->gone, gpos, &copy);
	}
	msgset_compact_names(ms);
out:
	mfs_mutex_unlock(&t->lock);
	return rc;
}

static void clear_entry(void *p)
{
	tree_entry_clear(p);
}

GArray *tree_message_names(struct tree *t, guint64 ino, unsigned want)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(struct tree_entry));
	struct msgset *ms;
	struct tobj *ob;
	struct tmsg *m;
	gboolean gone = FALSE;

	g_array_set_clear_func(out, clear_entry);
	mfs_mutex_lock(&t->lock);
	if (TREE_IS_OBJECT(ino)) {
		if ((ob = objtab_get(t->objects, ino)) != NULL) {
			for (guint i = 0; i < objtab_nnames(ob); i++) {
				struct tree_entry e;

				if (!(m = name_msg(t, objtab_name(ob, i), &ms)))
					continue;
				fill_msg(t, ms, m, FALSE, want, &e);
				g_array_append_val(out, e);
			}
		}
	} else if (!tree_folder_get(t, ino) && (m = msg_get(t, ino, &ms, &gone)) != NULL && !gone) {
		struct tree_entry e;

		fill_msg(t, ms, m, FALSE, want, &e);
		g_array_append_val(out, e);
	}
	mfs_mutex_unlock(&t->lock);
	if (out->len == 0)
		g_clear_pointer(&out, g_array_unref);
	return out;
}

int tree_folder_object(struct tree *t, guint64 folder, guint64 ino, gboolean ref, unsigned want,
		       struct tree_entry *out)
{
	struct msgset *ms;
	struct tobj *ob;
	struct tmsg *m;
	int rc = -ENOENT;

	mfs_mutex_lock(&t->lock);
	ob = TREE_IS_OBJECT(ino) ? objtab_get(t->objects, ino) : NULL;
	for (guint i = 0; ob && i < objtab_nnames(ob) && rc != 0; i++) {
		const struct tname *n = objtab_name(ob, i);

		if (n->folder != folder || !(m = name_msg(t, n, &ms)))
			continue;
		if (ref)
			msg_ref(ms, m);
		fill_msg(t, ms, m, FALSE, want, out);
		rc = 0;
	}
	mfs_mutex_unlock(&t->lock);
	return rc;
}

char *tree_folder_key(struct tree *t, guint64 ino)
{
	struct folder *f;
	char *key = NULL;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, ino);
	if (f && !f->detached)
		key = g_strdup(f->key ? f->key : "");
	mfs_mutex_unlock(&t->lock);
	return key;
}

int tree_folder_message(struct tree *t, guint64 folder, guint32 uid, gboolean ref, unsigned want,
			struct tree_entry *out)
{
	struct folder *f;
	struct tmsg *m;
	int rc = -ENOENT;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, folder);
	if (f && f->msgs && (m = tmsgs_find(&f->msgs->live, uid, NULL)) != NULL) {
		if (ref)
			msg_ref(f->msgs, m);
		fill_msg(t, f->msgs, m, FALSE, want, out);
		rc = 0;
	}
	mfs_mutex_unlock(&t->lock);
	return rc;
}
