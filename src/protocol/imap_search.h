/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_search: SEARCH programs (RFC 3501 §6.4.4, RFC 9051 §6.4.4) as a
 * tree, the command text they become, and the UIDs a server answers.
 *
 * A program is a tree of struct imap_search_key: AND/OR/NOT nodes over
 * leaves that are one search key each. imap_search_render() turns it into
 * the arguments of UID SEARCH:
 *   - an AND of n keys is the keys one after another (in parentheses when
 *     it is not the whole program), OR is "OR a b" (an OR of more than two
 *     is nested: OR a (OR b c)), NOT is "NOT a";
 *   - strings go as quoted strings when imap_quote() takes them (printable
 *     ASCII), else as literals (8-bit UTF-8, or quotes and backslashes in
 *     odd places are fine either way); a program with a non-ASCII string
 *     starts with "CHARSET UTF-8";
 *   - dates as d-Mon-yyyy (SINCE, BEFORE, ON: the INTERNALDATE, as the file
 *     mtime shows it); numbers in decimal; keywords as atoms (a keyword that
 *     is not a valid atom is refused at parse time, model/search_query.h);
 *   - ESEARCH: with return_all, the arguments start with "RETURN (ALL)"
 *     (RFC 4731), so a long answer is a short sequence set.
 * An AND or OR of one kid is that kid; of none, ALL (AND) or NOT ALL (OR).
 * The rendering is a list of parts (text, or a literal's bytes) that
 * imap_send_parts() sends, and a display form (literals shown as quoted
 * strings, bytes as they are) for the log and user.mailfs.query.
 *
 * imap_search_collect() reads one untagged answer: "* SEARCH 1 2 3" or
 * "* ESEARCH (TAG "x") UID ALL 1:3,7" (RFC 4731; MIN/MAX/COUNT ignored,
 * a sequence set expanded up to max).
 *
 * Pure: no I/O, no locks; every function may be called from any thread.
 */
#ifndef MFS_IMAP_SEARCH_H
#define MFS_IMAP_SEARCH_H

#include <glib.h>

#include "protocol/imap_client.h" /* struct imap_part */
#include "protocol/imap_parse.h"

enum imap_search_op {
	/* inner nodes: kids */
	IMAP_SK_AND = 1,
	IMAP_SK_OR,
	IMAP_SK_NOT, /* exactly one kid */
	/* string keys: str (UTF-8, no NUL) */
	IMAP_SK_TEXT,
	IMAP_SK_BODY,
	IMAP_SK_FROM,
	IMAP_SK_TO,
	IMAP_SK_CC,
	IMAP_SK_BCC,
	IMAP_SK_SUBJECT,
	IMAP_SK_KEYWORD, /* str: an atom (flag-keyword) */
	IMAP_SK_X_GM_RAW, /* str: Gmail's own syntax (X-GM-EXT-1) */
	/* date keys: year, month (1..12), day (1..31) */
	IMAP_SK_SINCE,
	IMAP_SK_BEFORE,
	IMAP_SK_ON,
	/* number keys: num (octets) */
	IMAP_SK_LARGER,
	IMAP_SK_SMALLER,
	/* flag keys: no argument */
	IMAP_SK_ALL,
	IMAP_SK_SEEN,
	IMAP_SK_UNSEEN,
	IMAP_SK_FLAGGED,
	IMAP_SK_UNFLAGGED,
	IMAP_SK_ANSWERED,
	IMAP_SK_UNANSWERED,
	IMAP_SK_DRAFT,
	IMAP_SK_UNDRAFT,
	IMAP_SK_DELETED,
	IMAP_SK_UNDELETED,
};

struct imap_search_key {
	enum imap_search_op op;
	char *str;
	guint64 num;
	int year, month, day;
	GPtrArray *kids; /* struct imap_search_key *, owned; inner nodes only */
};

struct imap_search_key *imap_search_key_new(enum imap_search_op op);
/* Frees the key and its kids. NULL-safe. */
void imap_search_key_free(struct imap_search_key *k);
/* An inner node with kids a and b (taken). A new AND/OR node has an empty
   kids array to fill; a leaf has kids NULL and owns str. */
struct imap_search_key *imap_search_key_pair(enum imap_search_op op, struct imap_search_key *a,
					     struct imap_search_key *b);
/* Does the program (or any kid) use op? (e.g. IMAP_SK_X_GM_RAW needs X-GM-EXT-1) */
gboolean imap_search_key_uses(const struct imap_search_key *k, enum imap_search_op op);

/* A rendered program. parts point into strings the rendering owns. */
struct imap_search_text {
	GPtrArray *strings;  /* owned storage of the parts' bytes */
	GArray *parts;       /* struct imap_part, in order; text parts hold their spaces */
	char *display;       /* the whole argument string as a person reads it */
};

/*
 * The arguments of "UID SEARCH " for program k (NULL: ALL), beginning
 * with "RETURN (ALL) " when return_all and "CHARSET UTF-8 " when a string
 * is not ASCII. Never fails for a program the parser made.
 */
void imap_search_render(const struct imap_search_key *k, gboolean return_all,
			struct imap_search_text *out);
void imap_search_text_clear(struct imap_search_text *t);

/*
 * If r is a SEARCH or ESEARCH answer, append its UIDs (numbers of a SEARCH,
 * the ALL set of a UID ESEARCH) to uids (guint32) until uids->len reaches
 * max (the array in all, what it held before included: answers of several
 * lines add up), and return TRUE; FALSE for any other response (uids
 * unchanged). "* SEARCH" without numbers and a UID ESEARCH without ALL (no
 * match, RFC 4731) are empty answers: TRUE. An ESEARCH without UID
 * (sequence numbers) or a malformed answer (a number that is not a UID,
 * "*", a list where a set belongs) is not taken: FALSE, uids unchanged.
 * A CONDSTORE "(MODSEQ n)" ending a SEARCH is skipped. The ESEARCH TAG
 * correlator is not checked: the caller's imap_wait reads one command.
 */
gboolean imap_search_collect(const struct imap_response *r, GArray *uids, guint max);

#endif
