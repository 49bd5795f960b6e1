/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_objid: a message's identity across folders, from one FETCH response
 * (mailfs(1), Links). Pure: no I/O, no state, never logs.
 *
 * Two sources, each made into a string with a one-letter prefix so that
 * identities of different kinds never compare equal:
 *   - "E" + the EMAILID of RFC 8474 (OBJECTID): "EMAILID (M6f8c2...)" gives
 *     "EM6f8c2...". RFC 8474's objectid is 1 to 255 of ALPHA, DIGIT, "_"
 *     and "-": the item must be a list of exactly one atom of those bytes.
 *   - "G" + the decimal X-GM-MSGID of Gmail (X-GM-EXT-1):
 *     "X-GM-MSGID 1278455344230334865" gives "G1278455344230334865". The
 *     value must be an atom of digits that fits 64 bits unsigned; it is
 *     written back without leading zeros ("007" gives "G7").
 * Anything else (NIL, a string, an empty or longer objectid, a byte outside
 * the grammar, a number that overflows, the item missing) is no id.
 *
 * When the response carries EMAILID, EMAILID alone decides: a malformed
 * EMAILID is no id, even with a good X-GM-MSGID beside it, so one server's
 * messages never get ids of two kinds.
 *
 * The string fits IMAP_OBJID_MAX bytes with its NUL (the prefix and 255
 * bytes): at most model/tree.h's TREE_OBJID_MAX bytes without it.
 */
#ifndef MFS_IMAP_OBJID_H
#define MFS_IMAP_OBJID_H

#include "protocol/imap_parse.h"

#include <glib.h>

/* RFC 8474 objectid length bounds. */
#define IMAP_OBJECTID_MAXLEN 255
/* "E" + 255 bytes + NUL. */
#define IMAP_OBJID_MAX (1 + IMAP_OBJECTID_MAXLEN + 1)

/*
 * The id of the message r is a FETCH response for, written to out with its
 * NUL. Returns its length (2 .. IMAP_OBJID_MAX - 1), or 0 when r carries no
 * usable id (out is then ""). r may be any response (not a FETCH: 0).
 */
size_t imap_objid_from_fetch(const struct imap_response *r, char out[IMAP_OBJID_MAX]);

#endif
