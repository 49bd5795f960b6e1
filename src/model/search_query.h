/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * search_query: the query language of the .search directories (mailfs(1),
 * SEARCH) parsed into an IMAP SEARCH program (protocol/imap_search.h).
 *
 * A query is one path component: UTF-8, at most NAME_MAX bytes. Grammar:
 *
 *   query   = or-expr
 *   or-expr = and-expr *( "or" and-expr )            ("or"/"OR", any case)
 *   and-expr= unary *( unary )                        (juxtaposition is AND)
 *   unary   = ("-" / "not" SP) unary / "(" or-expr ")" / term
 *   term    = [field ":"] value
 *   value   = word / DQUOTE *(char / "\" DQUOTE / "\\") DQUOTE
 *
 * Fields:
 *   (none), text:   TEXT (headers and body)      body:     BODY
 *   from: to: cc: bcc: subject:                    the header keys
 *   since:D before:D on:D   D = YYYY-MM-DD: SINCE/BEFORE/ON (INTERNALDATE)
 *   larger:N smaller:N      N = digits with an optional K, M or G (x1024)
 *   is:unread|read|flagged|unflagged|answered|unanswered|draft|deleted
 *                           UNSEEN, SEEN, FLAGGED, ...
 *   keyword:K               KEYWORD K (an IMAP atom, e.g. $Work)
 *   raw:V                   X-GM-RAW V (Gmail's syntax; needs X-GM-EXT-1)
 *   folder:PATH             not a key: limits the search to the folder PATH
 *                           (shown names, levels joined by "%2F" since a
 *                           component cannot hold '/') and the folders below
 *                           it; allowed only in the top-level AND (not under
 *                           "or", "not" or "-"); several folder: terms are
 *                           a union.
 * A word ends at whitespace, '(' or ')' (outside quotes). "-" negates only
 * at the start of a term. Field names are case-insensitive. A query with
 * only folder: terms (or empty after them) matches ALL.
 *
 * Errors: search_query_parse() returns NULL and sets *err
 * (SEARCH_QUERY_ERROR) with a message that names the byte offset (1-based
 * column) and what is wrong there, e.g. "column 7: unknown field \"frm\"".
 * Bounds: at most SEARCH_QUERY_TERMS_MAX terms and SEARCH_QUERY_DEPTH_MAX
 * nested parentheses; input that is not valid UTF-8 or holds a control
 * character is refused.
 *
 * Pure: no I/O; any thread.
 */
#ifndef MFS_SEARCH_QUERY_H
#define MFS_SEARCH_QUERY_H

#include <glib.h>

#include "protocol/imap_search.h"

#define SEARCH_QUERY_TERMS_MAX 64
#define SEARCH_QUERY_DEPTH_MAX 16

#define SEARCH_QUERY_ERROR (search_query_error_quark())
GQuark search_query_error_quark(void);

enum search_query_error {
	SEARCH_QUERY_ERROR_SYNTAX, /* not a query of this language */
	SEARCH_QUERY_ERROR_LIMIT,  /* too long, too many terms, nested too deeply */
};

struct search_query {
	struct imap_search_key *key; /* the program; NULL: ALL */
	GPtrArray *folders;          /* char *: folder: paths as written ("%2F"-joined), may be empty */
};

struct search_query *search_query_parse(const char *text, GError **err);
void search_query_free(struct search_query *q);

#endif
