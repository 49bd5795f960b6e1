/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/tree_msgs.h"

#include <string.h>

/* Blocks of names double from NAME_BLOCK_MIN (a folder of a few messages
   takes little) to NAME_BLOCK_MAX: big enough that a block's tail left
   unused is small beside it, small enough to stay in malloc's heap (not
   one mmap each). */
#define NAME_BLOCK_MIN 256
#define NAME_BLOCK_MAX (64 * 1024)
/* Below this, dead names are not worth a compaction. */
#define COMPACT_MIN (256 * 1024)

void tmsgs_reserve(struct tmsgs *a, guint cap)
{
	if (cap <= a->cap)
		return;
	a->v = g_renew(struct tmsg, a->v, cap);
	a->cap = cap;
}

void tmsgs_trim(struct tmsgs *a)
{
	if (a->len == a->cap)
		return;
	if (a->len == 0) {
		tmsgs_free(a);
		return;
	}
	a->v = g_renew(struct tmsg, a->v, a->len);
	a->cap = a->len;
}

/* One more: grown by half, as a set gains messages one listing at a time. */
static void grow(struct tmsgs *a)
{
	if (a->len == a->cap)
		tmsgs_reserve(a, a->cap + MAX(a->cap / 2, 16));
}

void tmsgs_append(struct tmsgs *a, const struct tmsg *m)
{
	grow(a);
	a->v[a->len++] = *m;
}

void tmsgs_insert(struct tmsgs *a, guint pos, const struct tmsg *m)
{
	grow(a);
	memmove(&a->v[pos + 1], &a->v[pos], (a->len - pos) * sizeof(*m));
	a->v[pos] = *m;
	a->len++;
}

void tmsgs_remove(struct tmsgs *a, guint pos)
{
	memmove(&a->v[pos], &a->v[pos + 1], (a->len - pos - 1) * sizeof(a->v[0]));
	a->len--;
}

void tmsgs_free(struct tmsgs *a)
{
	g_free(a->v);
	a->v = NULL;
	a->len = a->cap = 0;
}

struct tmsg *tmsgs_find(const struct tmsgs *a, guint32 uid, guint *pos)
{
	guint lo = 0, hi = a->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		struct tmsg *m = &a->v[mid];

		if (m->uid == uid) {
			if (pos)
				*pos = mid;
			return m;
		}
		if (m->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

void namestore_init(struct namestore *s)
{
	memset(s, 0, sizeof(*s));
	s->blocks = g_ptr_array_new_with_free_func(g_free);
}

void namestore_clear(struct namestore *s)
{
	if (s->blocks)
		g_ptr_array_unref(s->blocks);
	memset(s, 0, sizeof(*s));
}

/* The last block's unused tail stays (names point into it: no realloc). */
static void new_block(struct namestore *s, gsize bytes)
{
	s->last_size = MAX(bytes, CLAMP(s->last_size * 2, NAME_BLOCK_MIN, NAME_BLOCK_MAX));
	g_ptr_array_add(s->blocks, g_malloc(s->last_size));
	s->free_at = 0;
}

void namestore_reserve(struct namestore *s, gsize bytes)
{
	if (bytes == 0)
		return;
	if (s->blocks->len == 0 || s->last_size - s->free_at < bytes)
		new_block(s, bytes);
}

const char *namestore_add(struct namestore *s, const char *name)
{
	gsize len = strlen(name) + 1;
	char *at;

	namestore_reserve(s, len);
	at = (char *)s->blocks->pdata[s->blocks->len - 1] + s->free_at;
	memcpy(at, name, len);
	s->free_at += len;
	s->live += len;
	return at;
}

void namestore_drop(struct namestore *s, const char *name)
{
	gsize len = strlen(name) + 1;

	s->live -= MIN(len, s->live);
	s->dead += len;
}

gboolean namestore_wants_compact(const struct namestore *s)
{
	return s->dead >= COMPACT_MIN && s->dead > s->live;
}
