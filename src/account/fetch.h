/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fetch: the FETCH data sinks, and the commands that read one message of a
 * mailbox on a borrowed session, selecting the mailbox first when the
 * session is elsewhere. Every FETCH literal the daemon keeps goes through
 * one of the two sinks here: body_sink (message bytes, for reads and the
 * prefetcher) and header_sink (header fields, for listings and the
 * user.mail.* attributes).
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

/*
 * The one sink of message bodies in FETCH answers (BODY[] or
 * BODY[]<origin>), for reads (fetch_body_range) and the prefetcher: a body
 * literal is received into a buffer of its own and handed to `take` only
 * when its FETCH response names a UID asked for (and, for a range, the
 * origin asked for), and the mailbox was not found to be another
 * generation (discard). Fill the first fields, then body_sink_init.
 */
struct body_sink {
	guint32 uid;	    /* the UID asked for; 0: those in wanted */
	GHashTable *wanted; /* GUINT_TO_POINTER(uid) set, when uid is 0 */
	gboolean ranged;    /* answers are BODY[]<origin>, origin must match */
	guint64 origin;
	guint64 limit;	    /* a body larger than this is refused */
	/* An accepted body; bytes are the sink's (copy what is kept). */
	void (*take)(void *ud, guint32 uid, const GByteArray *bytes);
	void *ud;
	gboolean discard; /* keep nothing (set when the SELECT said so) */

	/* the body literal being received */
	GByteArray *cur;
	gboolean cur_open;
	guint64 cur_origin;
	gboolean cur_too_big;
	gboolean too_big; /* a body asked for was refused for its size */
};

/* Ready k to receive; its handler (untagged, literal_begin and
   literal_chunk, ud = k) goes into *h. */
void body_sink_init(struct body_sink *k, struct imap_handler *h);
void body_sink_clear(struct body_sink *k);

/* Header fields kept per message at most: a subject is cut at 64 bytes anyway. */
#define HEADER_FIELDS_MAX (64 * 1024)

/*
 * Where a BODY[HEADER.FIELDS ...] literal of the response being read goes,
 * whatever its size (the client would drop a large unclaimed one as
 * unsolicited). Put it first in an imap_handler's ud (the listing's
 * collector in resync.c, the header fetch here) and use the two
 * callbacks below; buf holds the literal after the response, when active.
 */
struct header_sink {
	GByteArray *buf;
	gboolean active;
};

gboolean header_sink_begin(void *ud, uint32_t seq, const char *section, uint64_t size);
void header_sink_chunk(void *ud, const void *data, size_t len);

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
 * The Subject, From, To, Date and Message-ID header fields of message uid
 * of wire (listed under uidvalidity), appended to out as the server sends
 * them; the SELECT (EXAMINE when readonly) and the FETCH go out together
 * when the session is elsewhere. 0 (*found FALSE: the message is not
 * there), -ESTALE (another generation), or the error.
 */
int fetch_header_fields(struct imap_session *s, const char *wire, guint32 uidvalidity,
			gboolean readonly, guint32 uid, GByteArray *out, gboolean *found,
			GError **err);

/* A SELECT with commands pipelined behind it (one round trip for the
   SELECT and the first fetches). */
struct pending_select {
	gboolean needed; /* s was elsewhere, in the other mode, or on another generation */
	guint id;	 /* the SELECT's command; 0 when needed but not sent (*err) */
};

/* Unless s has wire selected (read-only or read-write, as asked) under
   uidvalidity, send its SELECT (EXAMINE when readonly) now: commands sent
   after it run in the mailbox. */
void fetch_select_send(struct imap_session *s, const char *wire, gboolean readonly,
		       guint32 uidvalidity, struct pending_select *ps, GError **err);
/* Read up to the SELECT's completion (h gets its untagged data). 0 (also
   when none was needed), -ESTALE (another generation: nothing pipelined
   behind it may be kept), or its error. */
int fetch_select_finish(struct imap_session *s, struct pending_select *ps, const char *wire,
			gboolean readonly, guint32 uidvalidity, const struct imap_handler *h,
			GError **err);

/* Have wire selected on s (read-only or read-write) under uidvalidity.
   0, -ESTALE (the mailbox was recreated: other messages now), or the
   SELECT's error. */
int fetch_ensure_selected(struct imap_session *s, const char *wire, gboolean readonly,
			  guint32 uidvalidity, GError **err);

#endif
