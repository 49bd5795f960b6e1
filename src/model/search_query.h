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
 *   unary   = ("-" / "not" *SP) unary / "(" or-expr ")" / term
 *   term    = [field ":"] value
 *   value   = word / DQUOTE *(char / "\" DQUOTE / "\\") DQUOTE
 *
 * Fields:
 *   (none), text:   TEXT (headers and body)      body:     BODY
 *   from: to: cc: bcc: subject:                    the header keys
 *   since:D before:D on:D   D = YYYY-MM-DD, a real date, year 0001..9999:
 *                           SINCE/BEFORE/ON (INTERNALDATE)
 *   larger:N smaller:N      N = digits with an optional K, M or G (x1024),
 *                           at most 4G-1 (an IMAP4rev1 number is 32 bits)
 *   is:unread|read|flagged|unflagged|answered|unanswered|draft|undraft|
 *      deleted|undeleted    UNSEEN, SEEN, FLAGGED, ... (case-insensitive)
 *   keyword:K               KEYWORD K (an IMAP atom, e.g. $Work: printable
 *                           ASCII without ( ) { SP % * " \ ], so no \Seen)
 *   raw:V                   X-GM-RAW V (Gmail's syntax; needs X-GM-EXT-1)
 *   folder:PATH             not a key: limits the search to the folder PATH
 *                           (shown names, levels joined by "%2F" since a
 *                           component cannot hold '/') and the folders below
 *                           it; allowed only in the top-level AND (not under
 *                           "or", "not", "-" or parentheses); several
 *                           folder: terms are a union.
 * A word ends at a space, '(' or ')' (outside quotes); a quote may not
 * appear inside a bare word, and a closing quote must end the word. "-"
 * negates only at the start of a term (foo-bar is a word); "-" and "not"
 * must have something to negate. The bare words "or" and "not" (any case;
 * "not" before a space or "(") are always operators: quote them to search
 * for them. A field is letters then ":" at the start of a word; unknown
 * ones are errors (quote "a:b" to search for it); a word whose part before
 * ':' is not all letters ("10:30") is a plain word. An empty value (from:,
 * from:"", "") is an error, so is "()". Field names are case-insensitive.
 * A query with only folder: terms (or empty after them) matches ALL.
 *
 * Errors: search_query_parse() returns NULL and sets *err
 * (SEARCH_QUERY_ERROR) with a message that names the byte offset (1-based
 * column) and what is wrong there, e.g. "column 7: unknown field \"frm\"".
 * Bounds (SEARCH_QUERY_ERROR_LIMIT): at most NAME_MAX bytes,
 * SEARCH_QUERY_TERMS_MAX terms (folder: included) and SEARCH_QUERY_DEPTH_MAX
 * levels of nesting, where each "(" and each "-"/"not" is a level. Input
 * that is not valid UTF-8 or holds a control character (C0, DEL or C1) is
 * refused (SEARCH_QUERY_ERROR_SYNTAX, like every other mistake).
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
