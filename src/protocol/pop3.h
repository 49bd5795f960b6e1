/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pop3: one POP3 session over one connection (RFC 1939, CAPA and response
 * codes RFC 2449, STLS RFC 2595, SASL RFC 5034) — connect, TLS or STLS,
 * authenticate, then the maildrop commands the read-once spool
 * (account/pop3_account.h) needs: UIDL + LIST, TOP n 0, RETR streamed,
 * DELE, QUIT, pipelined when the server offers PIPELINING. The pure
 * parsers (status, listing and CAPA lines, the dot-unstuffing reader) are
 * in protocol/pop3_parse.h.
 *
 * Security rules kept here: STLS is mandatory for
 * POP3_TLS_STARTTLS (refused if not offered); any byte after the +OK to
 * STLS and before the handshake is an error (CVE-2020-14954); CAPA is asked
 * again after TLS; no password goes over an unencrypted link unless the
 * user chose POP3_TLS_NONE. The trace (log=pop3) never shows PASS or AUTH
 * arguments, nor message bytes.
 *
 * Untrusted input: status lines and listing lines are at most
 * POP3_LINE_MAX bytes (RFC 1939 says 512; servers exceed it); numbers are
 * overflow-checked; a UIDL must be 1-70 characters 0x21-0x7E (RFC 1939
 * §7), else its line is logged and skipped — one bad line never empties
 * the listing. A UIDL may still hold '/' or "..": it becomes a file name
 * only through the name encoder. Message bodies are streamed through a
 * sink, never buffered whole; TOP headers are kept up to POP3_TOP_MAX.
 *
 * Errors: functions returning int give 0 or a negative errno: a -ERR
 * through errmap_pop3() ([IN-USE] -EBUSY, [LOGIN-DELAY] and [SYS/TEMP]
 * -EAGAIN, [AUTH] -EACCES, others -EIO); -EIO for a lost connection, a
 * timeout or a protocol violation (the session is then dead:
 * pop3_session_alive() is FALSE; free it and connect again). *err, where
 * given, names the server and quotes its words (escaped, bounded). A -ERR answer's GError is in POP3_ERROR with
 * the code below, so a caller can tell "maildrop locked, retry later" from
 * "wrong password"; pop3_error_errno() maps any GError to errno and retry
 * class.
 *
 * Threads: none of its own. A session is used by one thread at a time
 * (the caller serialises; the spool holds its session lock); the pure
 * parsers and pop3_error_errno() may be called from any thread.
 */
#ifndef MFS_POP3_H
#define MFS_POP3_H

#include <gio/gio.h>
#include <glib.h>
#include <stddef.h>

#include "protocol/errmap.h"
#include "protocol/pop3_parse.h"

/* Longest status or listing line accepted, without CRLF (lenient: RFC 1939 says 512). */
#define POP3_LINE_MAX 8192
/* Headers kept from TOP n 0; the rest is read and dropped. */
#define POP3_TOP_MAX ((size_t)64 * 1024)
/* Entries of a UIDL or LIST listing kept at most; more are read and dropped. */
#define POP3_LIST_MAX 1000000
/* Commands in flight at once when the server offers PIPELINING. */
#define POP3_PIPELINE_WINDOW 32

enum pop3_tls_mode {
	POP3_TLS_IMPLICIT, /* pop3s:// */
	POP3_TLS_STARTTLS, /* pop3:// — STLS required */
	POP3_TLS_NONE,     /* only when the user said tls=none */
};

enum pop3_auth_mech {
	POP3_AUTH_BEST,    /* XOAUTH2 with an OAuth token; else SASL PLAIN if offered, else USER/PASS */
	POP3_AUTH_USER,    /* USER/PASS */
	POP3_AUTH_PLAIN,   /* AUTH PLAIN with initial response */
	POP3_AUTH_XOAUTH2, /* AUTH XOAUTH2, the secret is a token */
};

/* GError domain for failures the server stated, and for its refusals. */
#define POP3_ERROR (pop3_error_quark())
GQuark pop3_error_quark(void);

enum pop3_error_code {
	POP3_ERROR_ERR,         /* -ERR without a code the client knows */
	POP3_ERROR_IN_USE,      /* [IN-USE]: another session holds the maildrop */
	POP3_ERROR_LOGIN_DELAY, /* [LOGIN-DELAY]: logged in too recently */
	POP3_ERROR_SYS_TEMP,    /* [SYS/TEMP] */
	POP3_ERROR_SYS_PERM,    /* [SYS/PERM] or [SYS] */
	POP3_ERROR_AUTH,        /* [AUTH]: the credentials were refused */
	POP3_ERROR_UNSUPPORTED, /* STLS, UIDL or the asked SASL mechanism not offered */
	POP3_ERROR_PROTOCOL,    /* malformed answer; the session is dead */
	POP3_ERROR_QUIT_UNCONFIRMED, /* see pop3_quit() */
};

/*
 * errno (positive) and retry class for any error this module set: POP3_ERROR
 * through errmap_pop3(), G_IO_ERROR_CANCELLED -> EINTR, a refused
 * certificate -> EACCES (final), anything else from the transport -> EIO
 * (temporary). retry may be NULL.
 */
int pop3_error_errno(const GError *e, enum errmap_retry *retry);

/*
 * Where credentials come from, as imap_secret_fn: called at every login,
 * returns a secret the session wipes and frees (secret_free), or NULL and *err.
 */
typedef char *(*pop3_secret_fn)(void *ud, gboolean oauth, GError **err);

struct conn_cancel; /* transport/conn.h */

struct pop3_session_opts {
	const char *host;
	const char *port;
	enum pop3_tls_mode tls;
	const char *ca_file;         /* NULL: system store */
	const char *tls_fingerprint; /* NULL, or a SHA-256 pin (replaces chain checks) */
	const char *user;
	enum pop3_auth_mech auth;
	gboolean oauth;              /* the secret is an OAuth token */
	pop3_secret_fn secret;
	void *secret_ud;
	int timeout_s;               /* without progress, for every wait */
	/* NULL, or the switch that abandons this connect (unmount); no longer
	   applies once connected */
	struct conn_cancel *cancel;
};

struct pop3_session;

/*
 * Connect, secure the link, read the greeting, CAPA, STLS (and CAPA again),
 * authenticate, CAPA again (it may change after login). NULL and *err on
 * failure; a refused login quotes the server's words (POP3_ERROR_AUTH,
 * POP3_ERROR_IN_USE, ...). Without TLS the greeting must begin within
 * CONN_GREETING_WAIT_S (conn_await_greeting(): a TLS port is silent;
 * G_IO_ERROR_TIMED_OUT, "use pop3s://"); an IMAP greeting ("* OK", PREAUTH,
 * BYE) is POP3_ERROR_PROTOCOL saying to use an imap scheme.
 */
struct pop3_session *pop3_connect(const struct pop3_session_opts *o, GError **err);

/* Close without QUIT (nothing marked deleted is committed) and free. NULL is ignored. */
void pop3_session_free(struct pop3_session *s);
gboolean pop3_session_alive(const struct pop3_session *s);
/* Dead because the server made no progress for the timeout (it hangs), as
   opposed to a connection it closed. */
gboolean pop3_session_timed_out(const struct pop3_session *s);
guint32 pop3_session_caps(const struct pop3_session *s);
/* "host:port", for messages. */
const char *pop3_session_peer(const struct pop3_session *s);
/*
 * Seconds the server wants between logins (CAPA LOGIN-DELAY, RFC 2449
 * §6.5), from the latest CAPA: the one after login, which may be the
 * user's own value. 0 when it states none.
 */
guint pop3_session_login_delay(const struct pop3_session *s);

/* One message of the maildrop. */
struct pop3_msg {
	guint32 num;  /* message number, valid for this session only */
	char *uidl;   /* 1-70 characters 0x21-0x7E; may contain '/' or ".." */
	guint64 size; /* LIST size: octets as the server counts them (CRLF, stuffed dots) */
};

/*
 * UIDL and LIST of all messages (pipelined when offered), merged by number
 * and sorted by it: a GArray of struct pop3_msg (free with g_array_unref:
 * the uidl strings go with it). A message missing from one listing, a
 * malformed line, a duplicate number or a duplicate UIDL is logged and
 * skipped. A server without UIDL (not in CAPA and UIDL answered -ERR):
 * NULL and POP3_ERROR_UNSUPPORTED "server does not support UIDL" — the
 * caller refuses to mount. NULL and *err otherwise on failure.
 */
GArray *pop3_list_all(struct pop3_session *s, GError **err);

/*
 * TOP num 0: the header section and the blank line after it, dot-unstuffed,
 * CRLF kept, appended to out up to POP3_TOP_MAX bytes (the rest read and
 * dropped; *truncated, if not NULL, says so).
 */
int pop3_top_headers(struct pop3_session *s, guint32 num, GByteArray *out, gboolean *truncated,
		     GError **err);

/*
 * TOP n 0 for every n of nums, pipelined (a sliding window of
 * POP3_PIPELINE_WINDOW) when the server offers PIPELINING. fn gets each
 * message's result in order: rc 0 and its headers (borrowed, bounded as
 * above), or a negative errno from its -ERR (headers NULL). Returns 0 when
 * every answer was read (whatever each said), else a negative errno and
 * *err for a failure of the session; fn is then not called for the rest.
 */
typedef void (*pop3_top_fn)(void *ud, guint32 num, int rc, const GByteArray *headers);
int pop3_top_many(struct pop3_session *s, const guint32 *nums, guint n, pop3_top_fn fn, void *ud,
		  GError **err);

/*
 * RETR num, streamed to sink in chunks as they arrive: the message exactly,
 * CRLF kept, dot-unstuffed (a leading ".." becomes "."), the terminating
 * ".\r\n" removed. *size_out (may be NULL) gets the bytes passed to sink.
 * On failure after some bytes were passed, the caller discards them.
 */
int pop3_retr(struct pop3_session *s, guint32 num, pop3_sink_fn sink, void *ud,
	      guint64 *size_out, GError **err);

/*
 * RETR for every n of nums, pipelined (a sliding window of POP3_PIPELINE_WINDOW)
 * when the server offers PIPELINING, one at a time otherwise. For each
 * message in order: begin(ud, i) before its bytes (which then go to
 * sink(ud, ...) as for pop3_retr()), then end(ud, i, rc, size): rc 0 and
 * the bytes passed to the sink, or a negative errno — the server's -ERR
 * (nothing was passed; the session goes on) or the sink's error (the
 * session is dead, as for pop3_retr()). Returns 0 when every answer was
 * read, else the session's failure and *err: end() was called for each
 * message whose status line came (with the failure, for the one being
 * read), and not for the rest. A sink
 * that wants the session to survive a local failure (a full disk) drops
 * the bytes and returns 0, and remembers the error itself.
 */
struct pop3_retr_many_cb {
	void (*begin)(void *ud, guint i);
	pop3_sink_fn sink;
	void (*end)(void *ud, guint i, int rc, guint64 size);
};
int pop3_retr_many(struct pop3_session *s, const guint32 *nums, guint n,
		   const struct pop3_retr_many_cb *cb, void *ud, GError **err);

/* DELE num: marked, committed only by a successful QUIT. */
int pop3_dele(struct pop3_session *s, guint32 num, GError **err);

/*
 * DELE for every n of nums, pipelined when offered. rcs[i] gets each one's
 * 0 or -errno. Returns 0 when every answer was read, else the session's
 * failure (rcs of unanswered ones are -EIO).
 */
int pop3_dele_many(struct pop3_session *s, const guint32 *nums, guint n, int *rcs, GError **err);

/*
 * QUIT: the server commits the DELEs (UPDATE state, RFC 1939 §6) and
 * closes. 0: committed. A -ERR answer: -EIO (some deletions failed; the
 * server's words in *err). When the QUIT could not be sent or its reply
 * never came (connection lost, timeout): -ENOTCONN and
 * POP3_ERROR_QUIT_UNCONFIRMED — the server may or may not have committed:
 * this is NOT a failure of the DELEs; the caller keeps the messages as
 * taken and sends DELE again in the next session for those still there.
 * The session is dead afterwards in every case; free it.
 */
int pop3_quit(struct pop3_session *s, GError **err);
/*
 * pop3_quit() in its two halves, for a caller that acts between them: once
 * pop3_quit_send() returned 0 the server may commit at any moment, whatever
 * becomes of the reply (the spool's crash test dies right there, to be a
 * lost reply). pop3_quit_send() fails as pop3_quit() does when the QUIT
 * could not be sent (-ENOTCONN, session dead); after it returned 0,
 * pop3_quit_reply() gives pop3_quit()'s result.
 */
int pop3_quit_send(struct pop3_session *s, GError **err);
int pop3_quit_reply(struct pop3_session *s, GError **err);

#endif
