/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_bodystructure: a message's MIME structure, as BODYSTRUCTURE tells it
 * (RFC 3501 §7.4.2, RFC 9051 §7.5.2), without a byte of the parts.
 *
 * struct mime_part is the one shape of a structure in the daemon: made
 * here from a server's BODYSTRUCTURE value, or from a message's own bytes
 * (model/mime_local.h, GMime) when the body is cached. Each part carries
 * its IMAP section number ("1", "2.1", ...; "" for the message itself
 * when it is multipart), so a part is fetched by BODY.PEEK[section] or
 * BINARY.PEEK[section] whichever way its structure was learnt.
 *
 * Sections (RFC 3501 §6.4.5): the children of a multipart are numbered 1,
 * 2, ... below its own number; a message that is not multipart has one
 * part, "1"; a message/rfc822 part's own body is numbered as a message
 * below the part's number (its parts "2.1", "2.2", or "2.1" alone when not
 * multipart), and its header is "2.HEADER".
 *
 * In the tree, a message/rfc822 (or message/global) part S has one child,
 * the root of its own body: a multipart body's node has section S itself
 * (as the top-level multipart has ""; it names no fetchable section of its
 * own), its parts S.1, S.2, ...; a body that is not multipart has S.1.
 * So two nodes may share a section; mime_structure_find gives the outer
 * one (the message/rfc822 part), as it walks parents before children.
 *
 * Leniency (what real servers send): type, subtype, encoding and
 * disposition are lower-cased; NIL or missing ones get defaults (type
 * "application", subtype "octet-stream" or "plain" for text, "mixed" for
 * a multipart, encoding "7bit"); a size sent as a quoted string of digits
 * is read, another odd size is 0; parameters whose name or value is not a
 * string are skipped; a disposition sent as a bare string is taken without
 * parameters; a message/rfc822 part without a body where one belongs is a
 * leaf. Only the shape is checked: every body must be a list, a
 * non-multipart one of at least a type and a subtype.
 *
 * Bounds: a structure deeper than MIME_DEPTH_MAX or with more than
 * MIME_PARTS_MAX parts is cut there (the parts beyond are not shown; the
 * structure says it was cut): the root is level 1 and at most
 * MIME_DEPTH_MAX levels are kept (a message/rfc822 part and its body's
 * root are two levels), at most MIME_PARTS_MAX parts counting the root, the
 * first ones in depth-first order. Strings are at most what the parser's limits
 * allowed (protocol/imap_parse.h), and are kept as the server sent them
 * (parameters are raw: RFC 2231/2047 decoding is the model's).
 *
 * Pure: no I/O, any thread.
 */
#ifndef MFS_IMAP_BODYSTRUCTURE_H
#define MFS_IMAP_BODYSTRUCTURE_H

#include <glib.h>

#include "protocol/imap_parse.h"

#define MIME_DEPTH_MAX 64
#define MIME_PARTS_MAX 10000

struct mime_param {
	char *name;  /* as sent (case kept), e.g. "charset", "filename*" */
	char *value; /* as sent, unquoted */
};

struct mime_part {
	char *section;	 /* "" (a multipart message's root), "1", "2.1", ... */
	char *type;	 /* lower-case, e.g. "text", "multipart", "message" */
	char *subtype;	 /* lower-case, e.g. "plain", "mixed", "rfc822" */
	GPtrArray *params; /* struct mime_param *: Content-Type parameters */
	char *id;	 /* Content-ID, or NULL */
	char *description; /* Content-Description, or NULL */
	char *encoding;	 /* lower-case Content-Transfer-Encoding ("7bit" when absent) */
	guint64 size;	 /* octets of the encoded body, as the server counts them */
	char *disposition; /* lower-case "inline" / "attachment" / ..., or NULL */
	GPtrArray *disp_params; /* struct mime_param *: Content-Disposition parameters */
	GPtrArray *children;	/* struct mime_part *: a multipart's parts, or a
				   message/rfc822's one body (its root); empty otherwise */
	struct mime_part *parent; /* NULL for the root */
};

/* The structure of one message. */
struct mime_structure {
	struct mime_part *root;
	gboolean cut; /* deeper or larger than the bounds: parts beyond not kept */
	guint nparts;
};

/*
 * The structure a BODYSTRUCTURE value describes (the value after the
 * BODYSTRUCTURE item name in a FETCH response). NULL and *err
 * (G_IO_ERROR_INVALID_DATA, naming what is wrong) when it is not a body
 * structure; extension data that does not parse is ignored, not an error.
 */
struct mime_structure *mime_structure_from_bodystructure(const struct imap_value *v,
							  GError **err);
void mime_structure_free(struct mime_structure *s); /* NULL-safe */

/* A new part with the given section, type and subtype (lower-cased), for
   builders of structures (model/mime_local.c); children and params empty,
   encoding "7bit", other strings NULL, size 0. NULL section: ""; NULL
   type or subtype: "application" / "octet-stream". */
struct mime_part *mime_part_new(const char *section, const char *type, const char *subtype);
/* Adds child (taken) to parent's children, setting child->parent. */
void mime_part_add_child(struct mime_part *parent, struct mime_part *child);
/* Frees p and every part below it (without recursion), not p's place in
   its parent: use on roots, or on parts not yet added. NULL-safe. */
void mime_part_free(struct mime_part *p);

/* The value of parameter name (ASCII case-insensitive) in params, or NULL. */
const char *mime_param_get(const GPtrArray *params, const char *name);

/* The part with this section in s, or NULL. */
const struct mime_part *mime_structure_find(const struct mime_structure *s, const char *section);

/*
 * A structure as BODYSTRUCTURE text (the envelope of message/rfc822 parts
 * as NILs, the line counts as 0), to be kept on disk and read back with
 * mime_structure_from_text() into the same parts and sections. g_free it.
 */
char *mime_structure_render(const struct mime_structure *s);
/* The structure rendered text (len bytes) holds; NULL and *err when it
   holds none. */
struct mime_structure *mime_structure_from_text(const char *text, gsize len, GError **err);

#endif
