/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_local: a message opened up from its own bytes (a body in the cache),
 * with GMime, into the same structure and sections a server's BODYSTRUCTURE
 * and BODY[section] give (protocol/imap_bodystructure.h), so .parts needs
 * no round trip for a cached message. Pure: works on bytes in memory, any
 * thread. Bounded as protocol/imap_bodystructure.h says (depth, parts).
 */
#ifndef MFS_MIME_LOCAL_H
#define MFS_MIME_LOCAL_H

#include <glib.h>

#include "protocol/imap_bodystructure.h"

/* The structure of message bytes; never NULL (what GMime makes of any
   bytes: at worst one text/plain part "1"). size is each part's encoded
   body length, as a server counts it. */
struct mime_structure *mime_local_structure(const guint8 *data, gsize len);

/*
 * What BODY[section] of the message would be: a leaf's body as encoded
 * (not transfer-decoded), a message/rfc822 part's whole message,
 * "HEADER" / "S.HEADER" the header block (with its final empty line).
 * NULL when there is no such section.
 */
GByteArray *mime_local_section(const guint8 *data, gsize len, const char *section);

#endif
