/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/uidset.h"

#include <stdlib.h>

static gboolean parse_number(const char **p, guint32 star, guint32 *out)
{
	guint64 v = 0;
	const char *s = *p;

	if (*s == '*') {
		*out = star;
		*p = s + 1;
		return star > 0;
	}
	/* nz-number: no leading zero, at most 2^32 - 1. */
	if (*s < '1' || *s > '9')
		return FALSE;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (guint64)(*s - '0');
		if (v > G_MAXUINT32)
			return FALSE;
		s++;
	}
	*out = (guint32)v;
	*p = s;
	return TRUE;
}

static int cmp_range(const void *a, const void *b)
{
	const struct uid_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

gboolean uidset_parse(const char *set, guint32 star, guint max_ranges, GArray *out)
{
	const char *p = set;
	guint w = 0;

	g_array_set_size(out, 0);
	if (!set || !*set)
		return FALSE;
	for (;;) {
		struct uid_range r;

		if (out->len >= max_ranges || !parse_number(&p, star, &r.lo))
			goto bad;
		r.hi = r.lo;
		if (*p == ':') {
			p++;
			if (!parse_number(&p, star, &r.hi))
				goto bad;
			/* "5:2" is the same set as "2:5" (RFC 3501 §9, seq-range). */
			if (r.hi < r.lo) {
				guint32 t = r.lo;

				r.lo = r.hi;
				r.hi = t;
			}
		}
		g_array_append_val(out, r);
		if (*p == '\0')
			break;
		if (*p++ != ',')
			goto bad;
	}
	qsort(out->data, out->len, sizeof(struct uid_range), cmp_range);
	for (guint i = 0; i < out->len; i++) {
		struct uid_range r = g_array_index(out, struct uid_range, i);
		struct uid_range *last = w ? &g_array_index(out, struct uid_range, w - 1) : NULL;

		if (last && (guint64)r.lo <= (guint64)last->hi + 1) {
			last->hi = MAX(last->hi, r.hi);
			continue;
		}
		g_array_index(out, struct uid_range, w++) = r;
	}
	g_array_set_size(out, w);
	return TRUE;
bad:
	g_array_set_size(out, 0);
	return FALSE;
}

gboolean uidset_contains(const GArray *ranges, guint32 uid)
{
	guint lo = 0, hi = ranges->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		const struct uid_range *r = &g_array_index(ranges, struct uid_range, mid);

		if (uid < r->lo)
			hi = mid;
		else if (uid > r->hi)
			lo = mid + 1;
		else
			return TRUE;
	}
	return FALSE;
}

guint64 uidset_count(const GArray *ranges)
{
	guint64 n = 0;

	for (guint i = 0; i < ranges->len; i++) {
		const struct uid_range *r = &g_array_index(ranges, struct uid_range, i);

		n += (guint64)r->hi - r->lo + 1;
	}
	return n;
}
