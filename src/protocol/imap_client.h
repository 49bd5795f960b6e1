/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_client: one IMAP session over one connection — connect, TLS or
 * STARTTLS, authenticate, then tagged commands, pipelined.
 *
 * Commands are sent with imap_send() (many may be in flight) and finished
 * with imap_wait(), which reads responses until that command's tagged
 * completion. Responses are dispatched as they arrive, whichever command
 * they come with:
 *   - tagged completions are matched by tag and kept until waited for;
 *   - untagged data updates the session's own state (below) and goes to
 *     the handler passed to the imap_wait() that is reading at the time:
 *     EXISTS, EXPUNGE, VANISHED, FETCH FLAGS and BYE may arrive with any
 *     command (RFC 3501 §7), so that handler sees them whichever it is;
 *   - literals are offered to that handler, which may stream them (large
 *     bodies never buffered whole) or let the parser buffer them.
 * The session itself tracks CAPABILITY (after TLS and after login, as the
 * RFC requires) and the selected mailbox's UIDVALIDITY, UIDNEXT, EXISTS
 * and HIGHESTMODSEQ.
 *
 * Security rules kept here, so that a password or mail never crosses an
 * unencrypted link unasked: STARTTLS is mandatory for IMAP_TLS_STARTTLS
 * (refused if not offered); any byte after the OK to STARTTLS and before
 * the handshake is an error (CVE-2020-14954); a PREAUTH greeting on a link
 * that must be encrypted is refused (CVE-2020-14093); no password is sent
 * over an unencrypted link unless the user chose IMAP_TLS_NONE. The protocol trace (log=imap) never shows
 * LOGIN/AUTHENTICATE arguments or message bodies.
 *
 * Errors: functions returning int give 0 or a negative errno: the server's
 * NO/BAD through the errmap table (e.g. -ENOENT for [NONEXISTENT]), -EIO for
 * a lost connection, a timeout or a protocol violation (the session is then
 * dead: imap_session_alive() is FALSE; free it and connect again), -EINTR
 * after imap_session_abort(). *err, where given, carries a message naming
 * the server.
 *
 * Threads: a session is used by one thread at a time (the connection pool
 * hands it out); imap_session_abort() may be called from any thread.
 */
#ifndef MFS_IMAP_CLIENT_H
#define MFS_IMAP_CLIENT_H

#include <gio/gio.h>
#include <glib.h>
#include <stdint.h>

#include "protocol/imap_parse.h"

enum imap_tls_mode {
	IMAP_TLS_IMPLICIT,
	IMAP_TLS_STARTTLS,
	IMAP_TLS_NONE,
};

enum imap_auth_mech {
	IMAP_AUTH_BEST,  /* OAuth if a token source is set, else PLAIN, else LOGIN */
	IMAP_AUTH_PLAIN,
	IMAP_AUTH_LOGIN,
	IMAP_AUTH_XOAUTH2,
	IMAP_AUTH_OAUTHBEARER,
};

/* Capabilities the client acts on; anything else is ignored. */
enum imap_cap {
	IMAP_CAP_IMAP4REV1 = 1u << 0,
	IMAP_CAP_STARTTLS = 1u << 1,
	IMAP_CAP_LOGINDISABLED = 1u << 2,
	IMAP_CAP_AUTH_PLAIN = 1u << 3,
	IMAP_CAP_AUTH_LOGIN = 1u << 4,
	IMAP_CAP_AUTH_XOAUTH2 = 1u << 5,
	IMAP_CAP_AUTH_OAUTHBEARER = 1u << 6,
	IMAP_CAP_SASL_IR = 1u << 7,
	IMAP_CAP_LITERAL_PLUS = 1u << 8,
	IMAP_CAP_LITERAL_MINUS = 1u << 9,
	IMAP_CAP_UIDPLUS = 1u << 10,
	IMAP_CAP_MOVE = 1u << 11,
	IMAP_CAP_CONDSTORE = 1u << 12,
	IMAP_CAP_QRESYNC = 1u << 13,
	IMAP_CAP_IDLE = 1u << 14,
	IMAP_CAP_ESEARCH = 1u << 15,
	IMAP_CAP_SPECIAL_USE = 1u << 16,
	IMAP_CAP_LIST_STATUS = 1u << 17,
	IMAP_CAP_ENABLE = 1u << 18,
	IMAP_CAP_ID = 1u << 19,
	IMAP_CAP_NAMESPACE = 1u << 20,
	IMAP_CAP_IMAP4REV2 = 1u << 21,
	IMAP_CAP_LIST_EXTENDED = 1u << 22,
	IMAP_CAP_QUOTA = 1u << 23,
	IMAP_CAP_UTF8_ACCEPT = 1u << 24,
	IMAP_CAP_NOTIFY = 1u << 25,
	IMAP_CAP_X_GM_EXT_1 = 1u << 26, /* Gmail: X-GM-RAW search, X-GM-MSGID */
	IMAP_CAP_BINARY = 1u << 27,     /* RFC 3516: FETCH BINARY[section] */
	IMAP_CAP_OBJECTID = 1u << 28,   /* RFC 8474: FETCH EMAILID */
	IMAP_CAP_ESORT = 1u << 29,      /* RFC 5267: SORT RETURN (MIN) */
	IMAP_CAP_SEARCHRES = 1u << 30,  /* RFC 5182: RETURN (SAVE), then $ */
};

/*
 * Where credentials come from. Called at every login (a reconnect logs in
 * again, and OAuth tokens expire). Returns a secret the session wipes and
 * frees (secret_free), or NULL with *err.
 */
typedef char *(*imap_secret_fn)(void *ud, gboolean oauth, GError **err);

struct conn_cancel; /* transport/conn.h */

struct imap_session_opts {
	const char *host;
	const char *port;
	enum imap_tls_mode tls;
	const char *ca_file;          /* NULL: system store */
	const char *tls_fingerprint;  /* NULL, or a SHA-256 pin (replaces chain checks) */
	const char *user;
	enum imap_auth_mech auth;
	gboolean oauth;               /* the secret is an OAuth token (oauth_token_command) */
	imap_secret_fn secret;
	void *secret_ud;
	int timeout_s;                /* without progress, for every wait */
	const struct imap_limits *limits;  /* NULL: defaults */
	/* NULL, or the switch that abandons this connect (unmount); no longer
	   applies once connected */
	struct conn_cancel *cancel;
};

/* What the reader of a command wants to see while it waits. Members may be NULL. */
struct imap_handler {
	/* every untagged response while this handler is reading (borrowed) */
	void (*untagged)(void *ud, const struct imap_response *r);
	/* a literal after `section` (e.g. "BODY[]<0>") in FETCH seq: TRUE to stream it */
	gboolean (*literal_begin)(void *ud, uint32_t seq, const char *section, uint64_t size);
	void (*literal_chunk)(void *ud, const void *data, size_t len);
	void (*literal_end)(void *ud);
	void *ud;
};

/* The tagged completion of a command. */
struct imap_result {
	enum imap_status status;
	char *code;        /* response code atom, or NULL */
	char *code_text;   /* raw code arguments, or NULL */
	char *text;        /* the server's words, escaped and bounded for messages */
};
void imap_result_clear(struct imap_result *r);

struct imap_session;

/*
 * Connect, secure the link, read the greeting, authenticate, read the
 * capabilities, send ID when offered. NULL and *err on failure; a failed
 * login's message quotes the server's words; a refused certificate's
 * message carries the fingerprint to pin. Without TLS the greeting must
 * begin within CONN_GREETING_WAIT_S (conn_await_greeting(): a TLS port is
 * silent; G_IO_ERROR_TIMED_OUT, "use imaps://"); a POP3 greeting ("+OK",
 * "-ERR") is G_IO_ERROR_INVALID_DATA saying to use a pop3 scheme.
 */
struct imap_session *imap_session_connect(const struct imap_session_opts *o, GError **err);

/* LOGOUT (bounded wait) and free. NULL is ignored. */
void imap_session_close(struct imap_session *s);
/* Free without talking to the server (after an error). */
void imap_session_free(struct imap_session *s);

gboolean imap_session_alive(const struct imap_session *s);
/* Dead because the server made no progress for the timeout (a hung server
   or link, as opposed to a connection it closed). */
gboolean imap_session_timed_out(const struct imap_session *s);
guint32 imap_session_caps(const struct imap_session *s);
gboolean imap_session_has(const struct imap_session *s, enum imap_cap cap);
/* The largest message APPEND takes (RFC 7889 APPENDLIMIT=N), 0 when not stated. */
guint64 imap_session_append_limit(const struct imap_session *s);
/* "host:port", for messages. */
const char *imap_session_peer(const struct imap_session *s);
/* Any thread: make current and future waits fail with -EINTR at once. */
void imap_session_abort(struct imap_session *s);
/* Commands sent on this session so far (for user.mailfs.status). */
guint64 imap_session_commands_sent(const struct imap_session *s);

/*
 * How many tagged completions of commands it sent the session has read.
 * A server answers pipelined commands in order, so with commands c0, c1,
 * ... in flight, untagged data read while this is base + k (base: its value
 * before c0 was sent) belongs to ck: a handler given to every wait of a
 * pipelined batch can tell whose answer it sees, though one read may take
 * in the answers of several.
 */
guint64 imap_session_completed(const struct imap_session *s);

/*
 * Command text: imap_send() takes a printf-style format where the caller
 * quotes every string argument with imap_quote() (or sends it as a literal
 * with imap_send_literal(), or among other parts with imap_send_parts()).
 */
/* A quoted string for s, or NULL when s cannot be quoted (CR, LF, NUL, 8-bit). */
char *imap_quote(const char *s);

/* Send one tagged command (the tag is added). Returns its id (> 0), or 0 when the session is dead. */
guint imap_send(struct imap_session *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * Send a command whose last argument is a literal: "prefix {N}\r\n" data
 * "suffix". With LITERAL+ (or LITERAL- and N <= 4096) it goes out at once;
 * otherwise the session waits for the server's continuation first (other
 * commands in flight are completed meanwhile, their results kept).
 * Returns the command id, or 0 (the session is dead, or the server refused
 * the literal: *err says which).
 */
guint imap_send_literal(struct imap_session *s, const char *prefix, const void *data,
			size_t len, const char *suffix, GError **err);

/* One piece of a command: text as it is, or a literal ({N} and its bytes). */
struct imap_part {
	gboolean literal;
	const char *data;
	gsize len;
};

/*
 * Send one tagged command: the tag, a space, prefix, then the parts in
 * order with nothing added between them (text parts carry their own
 * spaces), then CRLF. Each literal goes as imap_send_literal() sends its
 * one: with LITERAL+ (or LITERAL- and at most 4096 bytes) at once, else
 * after the server's continuation. show_literals: whether the protocol
 * trace shows a literal's bytes (SEARCH strings) or only
 * "{N bytes omitted}" (passwords, message bodies, as imap_send_literal).
 * Returns the command id, or 0 (the session is dead, or the server refused
 * a literal: *err says which).
 */
guint imap_send_parts(struct imap_session *s, const char *prefix, const struct imap_part *parts,
		      gsize n, gboolean show_literals, GError **err);

/*
 * Read until command id completes. Untagged responses meanwhile go to h
 * (may be NULL). res (may be NULL) gets the completion.
 * Returns 0 for OK, else a negative errno as described above.
 */
int imap_wait(struct imap_session *s, guint id, const struct imap_handler *h,
	      struct imap_result *res, GError **err);

/* imap_send + imap_wait. */
int imap_run(struct imap_session *s, const struct imap_handler *h, struct imap_result *res,
	     GError **err, const char *fmt, ...) G_GNUC_PRINTF(5, 6);

/*
 * IDLE (RFC 2177) on the selected mailbox for up to `seconds`. Returns as
 * soon as the server reports anything (the untagged data went to h), or when the time is up; DONE is sent and the IDLE
 * completed either way, which also proves the link alive. 1: something
 * arrived, 0: nothing did, else a negative errno (-EOPNOTSUPP without IDLE).
 */
int imap_idle(struct imap_session *s, int seconds, const struct imap_handler *h, GError **err);

/* -- mailboxes ------------------------------------------------------------- */

struct imap_mailbox_info {
	char *name;           /* the wire name (modified UTF-7 as the server sent it) */
	char delimiter;       /* 0 when NIL (a flat namespace) */
	guint32 attrs;        /* enum imap_mbox_attr */
};

enum imap_mbox_attr {
	IMAP_MBOX_NOSELECT = 1u << 0,   /* \Noselect or \NonExistent */
	IMAP_MBOX_HASCHILDREN = 1u << 1,
	IMAP_MBOX_HASNOCHILDREN = 1u << 2,
	IMAP_MBOX_NOINFERIORS = 1u << 3,
	IMAP_MBOX_ALL = 1u << 4,        /* SPECIAL-USE (RFC 6154) */
	IMAP_MBOX_ARCHIVE = 1u << 5,
	IMAP_MBOX_DRAFTS = 1u << 6,
	IMAP_MBOX_FLAGGED = 1u << 7,
	IMAP_MBOX_JUNK = 1u << 8,
	IMAP_MBOX_SENT = 1u << 9,
	IMAP_MBOX_TRASH = 1u << 10,
	IMAP_MBOX_IMPORTANT = 1u << 11, /* RFC 8457 */
};

/*
 * LIST "" "*" (with RETURN (SPECIAL-USE) where offered): every mailbox of the
 * personal namespace. Returns a GPtrArray of struct imap_mailbox_info
 * (free with g_ptr_array_unref), or NULL and *err. A malformed LIST line is
 * logged and skipped; it never empties the listing.
 */
GPtrArray *imap_list_mailboxes(struct imap_session *s, GError **err);
void imap_mailbox_info_free(struct imap_mailbox_info *m);

struct imap_select_info {
	guint32 uidvalidity;
	guint32 uidnext;
	guint32 exists;
	guint64 highestmodseq;  /* 0 when the server has no CONDSTORE */
	gboolean readonly;
};

/*
 * A mailbox's state from a STATUS response (RFC 3501 7.2.4; NOTIFY SET
 * STATUS sends one per mailbox, RFC 5465 5.1): TRUE, with *mailbox the
 * response's own wire name (lives as long as r), when r is a STATUS that
 * names its mailbox and gives UIDVALIDITY, UIDNEXT and MESSAGES (exists);
 * highestmodseq is 0 unless given. FALSE for anything else or a malformed
 * one. readonly is left FALSE.
 */
gboolean imap_status_parse(const struct imap_response *r, const char **mailbox,
			   struct imap_select_info *out);

/* EXAMINE (readonly) or SELECT a mailbox by its wire name. */
int imap_select(struct imap_session *s, const char *mailbox, gboolean readonly,
		struct imap_select_info *info, GError **err);
/* Whether the server confirmed ENABLE QRESYNC on this session (RFC 7162):
   expunges then come as VANISHED, and SELECT can resynchronise. */
gboolean imap_session_qresync(const struct imap_session *s);

/* What the client knew of a mailbox when it last looked. */
struct imap_known_state {
	guint32 uidvalidity;
	guint64 highestmodseq;
};

/*
 * imap_select, resynchronising from `known` in the same round trip where
 * the session has QRESYNC (SELECT box (QRESYNC (uidvalidity modseq))): the
 * server then sends, to h's untagged callback, "* VANISHED (EARLIER) set"
 * for UIDs expunged since and "* n FETCH (UID u FLAGS (..) MODSEQ (m))" for
 * messages changed or added since. Without QRESYNC (or with known NULL)
 * this is imap_select; CONDSTORE is asked for where offered, so info's
 * highestmodseq is set (0: the server keeps none for this mailbox).
 * If the UIDVALIDITY differs, the server sends no such data.
 */
int imap_select_resync(struct imap_session *s, const char *mailbox, gboolean readonly,
		       const struct imap_known_state *known, const struct imap_handler *h,
		       struct imap_select_info *info, GError **err);

/*
 * imap_select_resync in two halves, so that commands for the mailbox can be
 * pipelined behind the SELECT (one round trip for SELECT + UID FETCH):
 * send, then imap_send the others, then finish (which reads up to the
 * SELECT's completion) before waiting for them. A failed SELECT leaves no
 * mailbox selected, so what was pipelined behind it fails too.
 *
 * Several SELECTs may be in flight, each with commands behind it (the
 * answers of several mailboxes in one round trip): a server answers in
 * order, so the session takes a SELECT's answer to start when the command
 * sent before it completes, and each finish gives what its own SELECT's
 * answer said, however far the reading went meanwhile. The session's
 * imap_session_selected() and imap_session_select_info() describe the
 * mailbox whose answer was read last: after a batch, the last one's, and
 * during it not necessarily the one a command being waited for is about.
 */
guint imap_select_send(struct imap_session *s, const char *mailbox, gboolean readonly,
		       const struct imap_known_state *known, GError **err);
int imap_select_finish(struct imap_session *s, guint id, const char *mailbox, gboolean readonly,
		       const struct imap_handler *h, struct imap_select_info *info, GError **err);

/* The selected mailbox's wire name, or NULL. */
const char *imap_session_selected(const struct imap_session *s);
/* The selected mailbox's state as the session last saw it. */
const struct imap_select_info *imap_session_select_info(const struct imap_session *s);

#endif
