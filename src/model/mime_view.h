/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mime_view: what a message's directory under .parts shows (mailfs(1),
 * PARTS), from its structure (protocol/imap_bodystructure.h). Pure: no I/O.
 *
 * A message directory (the top-level message, or a message/rfc822 part
 * inside one) holds, in this order:
 *   text      the readable text: the first text/plain part that is not an
 *             attachment, in a depth-first walk of the message's own parts
 *             (not inside a nested message/rfc822); with none, the first
 *             text/html one, to be converted to text (html_as_text). Absent
 *             when there is neither.
 *   html      the first text/html part that is not an attachment, if any.
 *   headers   the message's header block (section "HEADER", or "S.HEADER"
 *             for a message/rfc822 part S).
 *   one file per attachment: every leaf part (and message/rfc822 part) of
 *             the message's own parts that has Content-Disposition
 *             attachment, or a filename (disposition "filename" or
 *             Content-Type "name", RFC 2231 continuations and charsets and
 *             RFC 2047 encoded words decoded, GMime), other than the parts
 *             chosen for text and html. Named by its filename's last path
 *             component ('/' and '\\' end a component), through
 *             names_escape() (model/names.h); without a filename,
 *             "part-SECTION". A name taken already (by an entry above or an
 *             earlier attachment) gets "~2", "~3", ... before its last
 *             extension: "a.pdf", "a~2.pdf"; "text" -> "text~2". A name
 *             longer than 255 bytes is cut on a character boundary before
 *             its extension.
 *   parts     a directory: every leaf part of the message's own parts by
 *             its full section number ("1", "2.1", ...), and every
 *             message/rfc822 part by its number as a directory of this same
 *             shape (its parts are not listed flat).
 * A message whose structure is just one part has the part "1".
 *
 * Attachment and part files are the part's bytes transfer-decoded; text is
 * converted to UTF-8 with LF line ends (model/mime_decode.h).
 */
#ifndef MFS_MIME_VIEW_H
#define MFS_MIME_VIEW_H

#include <glib.h>

#include "protocol/imap_bodystructure.h"

enum mime_entry_kind {
	MIME_ENTRY_TEXT = 1,
	MIME_ENTRY_HTML,
	MIME_ENTRY_HEADERS,
	MIME_ENTRY_ATTACHMENT,
	MIME_ENTRY_PARTS_DIR,
	MIME_ENTRY_PART,	/* in parts/: a leaf */
	MIME_ENTRY_MESSAGE_DIR, /* in parts/: a message/rfc822 part */
};

struct mime_entry {
	char *name;
	enum mime_entry_kind kind;
	/* The part shown: the leaf (TEXT, HTML, ATTACHMENT, PART), the
	   message/rfc822 part (MESSAGE_DIR), the message whose headers or
	   parts these are (HEADERS, PARTS_DIR: NULL for the top-level message). */
	const struct mime_part *part;
	/* What to fetch: the leaf's section; "HEADER" / "S.HEADER" for
	   HEADERS; the message's section ("" top-level) for the directories. */
	char *section;
	gboolean html_as_text; /* TEXT made from an HTML part */
};

void mime_entry_free(struct mime_entry *e);

/*
 * The entries of the directory of message msg (NULL: the top-level message;
 * else a message/rfc822 part of s), in the order above. A GPtrArray of
 * struct mime_entry * that frees them. Entries point into s: keep s.
 */
GPtrArray *mime_view_message(const struct mime_structure *s, const struct mime_part *msg);

/* The entries of msg's parts/ directory, by section order. */
GPtrArray *mime_view_parts(const struct mime_structure *s, const struct mime_part *msg);

/* The entry of that name in entries (a mime_view_* result), or NULL. */
const struct mime_entry *mime_view_find(const GPtrArray *entries, const char *name);

/* An attachment's decoded filename (UTF-8, before escaping), or NULL. */
char *mime_part_filename(const struct mime_part *p);

#endif
