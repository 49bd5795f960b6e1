/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fetch: the commands that read one message of a mailbox on a borrowed
 * session, selecting the mailbox first when the session is elsewhere.
 *
 * A server may send FETCH data for other messages at any time (RFC 3501
 * §7): every sink here keeps only what names the UID asked for (and, for a
 * range, the origin asked for), so nothing of another message can land in
 * this one's bytes. The mailbox is checked to still be the generation
 * (UIDVALIDITY) the message was listed under before any byte is kept.
 *
 * No locks: the caller owns the session (account/lease.h).
 */
#ifndef MFS_FETCH_H
#define MFS_FETCH_H

#include <glib.h>

#include "protocol/imap_client.h"

/* The answer to UID FETCH uid (BODY[.PEEK][]<off.limit>). */
struct range_answer {
	GByteArray *buf;   /* the accepted bytes (the caller's array) */
	gboolean matched;  /* the answer for uid at off arrived */
	gboolean too_big;  /* the server sent more than asked: refused */
	gboolean stale;    /* the mailbox turned out another generation */
	/* After a broken link: what arrived of the literal at off (in buf). */
	gboolean partial;
};

/*
 * Fetch [off, off+len) of message uid of wire (listed under uidvalidity).
 * peek: BODY.PEEK (reading does not set \Seen), and the mailbox is examined
 * read-only. 0 with *out filled; -ESTALE (out->stale); or the command's
 * error (out->partial when bytes of the range arrived before the link
 * broke).
 */
int fetch_body_range(struct imap_session *s, const char *wire, guint32 uidvalidity,
		     gboolean peek, guint32 uid, guint64 off, guint64 len,
		     struct range_answer *out, GError **err);

/*
 * The Subject, From, To, Date and Message-ID header fields of message uid,
 * appended to out as the server sends them. 0 (*found FALSE: the message is
 * not there) or the error.
 */
int fetch_header_fields(struct imap_session *s, const char *wire, guint32 uidvalidity,
			gboolean readonly, guint32 uid, GByteArray *out, gboolean *found,
			GError **err);

/* Have wire selected on s (read-only or read-write) under uidvalidity.
   0, -ESTALE (the mailbox was recreated: other messages now), or the
   SELECT's error. */
int fetch_ensure_selected(struct imap_session *s, const char *wire, gboolean readonly,
			  guint32 uidvalidity, GError **err);

#endif
