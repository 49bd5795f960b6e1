/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * uidset: a set of UIDs as IMAP writes it ("1:3,7,9:*", RFC 3501
 * sequence-set; RFC 7162 VANISHED), kept as sorted, disjoint ranges so
 * that "1:4294967295" costs one element, not four billion.
 */
#ifndef MFS_UIDSET_H
#define MFS_UIDSET_H

#include <glib.h>

struct uid_range {
	guint32 lo, hi; /* inclusive, lo <= hi */
};

/*
 * Parse set (NUL-terminated) into out (a GArray of struct uid_range, emptied
 * first), sorted and merged. "*" stands for star (the largest UID there is,
 * as far as the caller knows). FALSE, out left empty, when the text is not a
 * set of non-zero UIDs or holds more than max_ranges elements: a server's
 * answer is bounded like every size read from the network.
 */
gboolean uidset_parse(const char *set, guint32 star, guint max_ranges, GArray *out);

/* Whether uid lies in the ranges of a parsed set. */
gboolean uidset_contains(const GArray *ranges, guint32 uid);

/* How many UIDs the set holds. */
guint64 uidset_count(const GArray *ranges);

#endif
