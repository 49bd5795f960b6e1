/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * resync: bring one folder's message listing up to date over one session
 * (mailfs(1), CACHING AND FRESHNESS), as cheaply as the server allows:
 *
 *   nothing known, or UIDVALIDITY changed:
 *       SELECT, UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE FLAGS [OBJID] [SUBJECT])
 *   QRESYNC (ENABLEd on the session) and a known HIGHESTMODSEQ:
 *       SELECT box (QRESYNC (uidvalidity modseq)): VANISHED (EARLIER) and the
 *       FLAGS of what changed come with the SELECT; then the new UID range
 *   CONDSTORE and a known HIGHESTMODSEQ:
 *       SELECT box (CONDSTORE); UID FETCH 1:max (UID FLAGS) (CHANGEDSINCE m);
 *       the new UID range; and only when EXISTS says some went away,
 *       UID FETCH 1:max (UID) to learn which
 *   neither: SELECT; UID FETCH 1:max (UID FLAGS); the new UID range.
 * When HIGHESTMODSEQ, UIDNEXT and EXISTS are what they were, the SELECT is
 * all: a remount of an unchanged folder costs one command, whatever its size.
 * Mail announced by an EXISTS while the new UID range is fetched is fetched
 * right after, from the UID after the last one taken (8 times at most), on
 * the same selection.
 * Every FETCH that may bring new messages (the listing, the new UID range)
 * asks for the same items; OBJID is EMAILID (RFC 8474) when the session
 * has OBJECTID, else X-GM-MSGID when it has X-GM-EXT-1, and only when the
 * caller wants object ids.
 *
 * The result is a tree_delta for tree_folder_merge() (a full listing when
 * `full`). No FUSE, no tree access: the caller applies it.
 */
#ifndef MFS_RESYNC_H
#define MFS_RESYNC_H

#include "account/fetch.h"
#include "model/tree.h"
#include "protocol/imap_client.h"

#include <glib.h>

/* What the caller's listing holds; uidvalidity 0: nothing (list in full). */
struct resync_known {
	guint32 uidvalidity;
	guint32 uidnext;       /* as the server last said; 0: unknown */
	guint64 highestmodseq; /* 0: unknown */
	guint32 count;	       /* messages held */
	guint32 max_uid;       /* highest UID held, 0 if none */
};

enum resync_how {
	RESYNC_FULL,	  /* listed in full */
	RESYNC_UNCHANGED, /* the SELECT said nothing changed */
	RESYNC_QRESYNC,
	RESYNC_CONDSTORE,
	RESYNC_UIDS, /* flags of every known UID, and the new range */
};

struct resync_result {
	enum resync_how how;
	guint32 uidvalidity;
	guint32 uidnext;
	guint64 highestmodseq;
	guint32 exists; /* the server's message count when done: a check */
	guint32 exists_selected; /* ... and when the SELECT was answered: mail
				    that came meanwhile is what sets them apart */
	struct tree_delta delta; /* points into the fields below */
	GArray *msgs;		 /* struct tree_msg_info; strings in `strings` */
	GArray *vanished;	 /* struct uid_range */
	GStringChunk *strings;
};

/*
 * A first listing handed over as it arrives (resync_folder with nothing
 * known), so that its taker can answer before the last message. begin() is
 * called once the SELECT is answered, with the mailbox's UIDVALIDITY and,
 * when want_newest, the newest message's INTERNALDATE if the server could
 * name it before the listing, else 0: with ESORT and SEARCHRES,
 *     UID SORT RETURN (SAVE MIN) (REVERSE ARRIVAL) UTF-8 ALL
 *     UID FETCH $ (UID INTERNALDATE)
 * are pipelined between the SELECT and the listing (the server sorts the
 * whole mailbox: only worth it for a stat that waits for the date), and
 * begin() is called when that date is in (a server may answer it amid the
 * listing). begin() returns FALSE to take the listing whole after all; else
 * `begun` is set and chunk() gets the listing in UID order, up to 1,024
 * messages at a time (names and strings valid for the call); a chunk it
 * fails (a negative errno) ends the handing over and is resync_folder's
 * error. The result then holds nothing more: its delta is empty with
 * complete_below 0, to be merged after the chunks.
 */
struct resync_stream {
	gboolean (*begin)(void *ud, guint32 uidvalidity, gint64 newest);
	int (*chunk)(void *ud, guint32 uidvalidity, const struct tree_delta *d);
	void *ud;
	gboolean want_newest;
	gboolean begun;
};

/*
 * Select wire (EXAMINE when readonly) on s and compute what changed since
 * known. want_subject: fetch the Subject of new messages (the default names
 * need it) and give them their names (tree_msg_info.name; the subject itself
 * is not kept: tree_msg_info.subject stays NULL). want_objids:
 * ask for new messages' object ids where the session offers them (above)
 * and fill tree_msg_info.objid (protocol/imap_objid.h; NULL when the server
 * gave none, or none was asked). stream (may be NULL) is used only when
 * nothing is known (above). 0 or a negative errno as imap_run gives it;
 * out is filled on success and must be cleared with resync_result_clear()
 * either way.
 */
int resync_folder(struct imap_session *s, const char *wire, gboolean readonly,
		  gboolean want_subject, gboolean want_objids, const struct resync_known *known,
		  struct resync_stream *stream, struct resync_result *out, GError **err);
void resync_result_clear(struct resync_result *r);

/* One folder of a burst (resync_folders). */
struct resync_job {
	const char *wire;	  /* the caller's */
	struct resync_known known; /* the caller's */
	/* Set by resync_folders before done() is called: */
	int rc;		/* 0 or a negative errno, as resync_folder's */
	GError *err;	/* with rc < 0: why; the caller frees it */
	gboolean done;	/* rc 0 and res is the resync; FALSE: not done yet */
	struct resync_result res; /* cleared by the caller either way */
};

/* A job finished (its answers read), while later ones may still be in
   flight: the callback must not use the session. */
typedef void (*resync_done_fn)(void *ud, struct resync_job *job);

/*
 * The listings of n folders on s in one burst: every folder's commands
 * are sent, then each folder's answers read in order and handed to done()
 * at once, so the first folder is done when its answers are in, not the
 * last's. Per folder, what resync_folder sends when nothing is new:
 *   nothing known: SELECT + UID FETCH 1:* (the whole listing; done);
 *   a known HIGHESTMODSEQ: the SELECT alone (QRESYNC or CONDSTORE as
 *       resync_folder asks): done when it proves nothing changed
 *       (RESYNC_UNCHANGED: the one command resync_folder costs), or, with
 *       QRESYNC, when what changed came with it and no UID is new
 *       (RESYNC_QRESYNC); else not done, but for the folder sent last,
 *       whose SELECT is still in force when its answers are in: its new
 *       UIDs (and, without QRESYNC, its changes) are fetched on it, as
 *       resync_folder does (done unless that fails);
 *   known without MODSEQ: SELECT + UID FETCH 1:max (UID FLAGS) (no FETCH
 *       when nothing is held): done (RESYNC_UIDS) when no UID is new.
 * So a remount of unchanged folders costs the commands it costs folder by
 * folder, in one round trip. A folder not done (rc 0, done FALSE: it has
 * new messages, changed without QRESYNC, or got another UIDVALIDITY; or
 * its name needs a literal the server wants a go-ahead for) is for the
 * caller to resync_folder afterwards, which selects it again. A folder
 * whose SELECT fails (deleted meanwhile: -ENOENT) has rc < 0, nothing of
 * what came behind it is kept, and the others go on. done() is called
 * once for every job, in order. Returns 0, or -EIO when the session was
 * lost (the jobs not finished then have rc -EIO).
 */
int resync_folders(struct imap_session *s, struct resync_job *jobs, guint n, gboolean readonly,
		   gboolean want_subject, gboolean want_objids, resync_done_fn done, void *ud);

#endif
