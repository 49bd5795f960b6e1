/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "protocol/pop3.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "transport/conn.h"
#include "transport/secret.h"
#include "util/log.h"

#define TRACE_MAX 300
#define WORDS_MAX 200 /* the server's words in an error message */
/* RFC 5034 §4: an AUTH command line longer than 255 octets sends its
   initial response after an empty challenge instead. */
#define AUTH_LINE_MAX 255
/* Challenges answered before giving up on a SASL exchange. */
#define SASL_ROUNDS_MAX 4
/* A listing line longer than POP3_LINE_MAX is skipped, up to this much. */
#define SKIP_MAX ((size_t)1024 * 1024)
/* Malformed listing lines logged one by one; after that only counted. */
#define BAD_LINES_LOGGED 10
/* CAPA lines looked at. */
#define CAPA_LINES_MAX 1000

struct pop3_session {
	struct conn *conn;
	char *peer;
	char *trace_name; /* "pop3#N": names this connection in the protocol log */
	guint32 caps;
	guint login_delay; /* seconds, from the latest CAPA */
	gboolean alive;
	gboolean timed_out; /* died because the server made no progress for the timeout */
};

G_DEFINE_QUARK(mailfs-pop3-error-quark, pop3_error)

/* -- errors ------------------------------------------------------------------ */

/* Is code X itself or a detail of it ("SYS/TEMP/DISK" under "SYS/TEMP")? */
static gboolean code_under(const char *code, const char *x)
{
	size_t n = strlen(x);

	return g_ascii_strncasecmp(code, x, n) == 0 && (code[n] == '\0' || code[n] == '/');
}

static enum pop3_error_code classify(const char *code)
{
	if (!code)
		return POP3_ERROR_ERR;
	if (code_under(code, "IN-USE"))
		return POP3_ERROR_IN_USE;
	if (code_under(code, "LOGIN-DELAY"))
		return POP3_ERROR_LOGIN_DELAY;
	if (code_under(code, "SYS/TEMP"))
		return POP3_ERROR_SYS_TEMP;
	if (code_under(code, "SYS"))
		return POP3_ERROR_SYS_PERM;
	if (code_under(code, "AUTH"))
		return POP3_ERROR_AUTH;
	return POP3_ERROR_ERR;
}

int pop3_error_errno(const GError *e, enum errmap_retry *retry)
{
	static const char *const codes[] = {
		[POP3_ERROR_ERR] = NULL,
		[POP3_ERROR_IN_USE] = "IN-USE",
		[POP3_ERROR_LOGIN_DELAY] = "LOGIN-DELAY",
		[POP3_ERROR_SYS_TEMP] = "SYS/TEMP",
		[POP3_ERROR_SYS_PERM] = "SYS/PERM",
		[POP3_ERROR_AUTH] = "AUTH",
	};
	enum errmap_retry dummy;

	if (!retry)
		retry = &dummy;
	if (!e) {
		*retry = ERRMAP_RETRY_FINAL;
		return 0;
	}
	if (e->domain == POP3_ERROR) {
		switch (e->code) {
		case POP3_ERROR_UNSUPPORTED:
			*retry = ERRMAP_RETRY_FINAL;
			return EOPNOTSUPP;
		case POP3_ERROR_PROTOCOL:
			*retry = ERRMAP_RETRY_TEMPORARY;
			return EIO;
		case POP3_ERROR_QUIT_UNCONFIRMED:
			*retry = ERRMAP_RETRY_TEMPORARY;
			return ENOTCONN;
		default:
			if (e->code >= 0 && (size_t)e->code < G_N_ELEMENTS(codes))
				return errmap_pop3(codes[e->code], retry);
			return errmap_pop3(NULL, retry);
		}
	}
	if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		*retry = ERRMAP_RETRY_FINAL;
		return EINTR;
	}
	if (g_error_matches(e, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE)) {
		*retry = ERRMAP_RETRY_FINAL;
		return EACCES;
	}
	*retry = ERRMAP_RETRY_TEMPORARY;
	return EIO;
}

/* The session dies with cause; -EINTR for a cancelled transfer, else -EIO. */
static int fail(struct pop3_session *s, GError **err, GError *cause)
{
	int rc = -EIO;

	s->alive = FALSE;
	if (cause && g_error_matches(cause, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		rc = -EINTR;
	if (cause && g_error_matches(cause, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
		s->timed_out = TRUE;
	if (err && !*err && cause)
		*err = g_error_copy(cause);
	g_clear_error(&cause);
	return rc;
}

static int protocol_error(struct pop3_session *s, GError **err, const char *what,
			  const char *line, size_t len)
{
	g_autofree char *esc = mfs_log_escape(line, len, 120);

	s->alive = FALSE;
	g_set_error(err, POP3_ERROR, POP3_ERROR_PROTOCOL, "%s sent a malformed answer to %s: %s",
		    s->peer, what, esc);
	return -EIO;
}

static int dead(struct pop3_session *s, GError **err)
{
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE, "connection to %s is closed", s->peer);
	return -EIO;
}

/* A -ERR answer to `what`: the errno, and *err with the server's words. */
static int reply_error(struct pop3_session *s, const struct pop3_reply *r, GError **err,
		       const char *fmt, ...) G_GNUC_PRINTF(4, 5);
static int reply_error(struct pop3_session *s, const struct pop3_reply *r, GError **err,
		       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_autofree char *what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_autofree char *words = mfs_log_escape(r->text, strlen(r->text), WORDS_MAX);
	g_autofree char *code = r->code ? mfs_log_escape(r->code, strlen(r->code), 70) : NULL;

	g_set_error(err, POP3_ERROR, classify(r->code), "%s %s: %s%s%s%s", s->peer, what,
		    code ? "[" : "", code ? code : "", code ? "] " : "",
		    *words ? words : "(no reason given)");
	return -errmap_pop3(r->code, NULL);
}

/* -- sending and reading ----------------------------------------------------- */

enum redact {
	SHOW,
	REDACT_ARGS,  /* "PASS ***", "AUTH PLAIN ***" */
	REDACT_ALL,   /* a SASL response line */
};

/* Sessions made by this process, for their trace names. */
static gint sessions_made;

static void trace_sent(struct pop3_session *s, const char *line, size_t len, enum redact redact)
{
	if (!mfs_log_enabled(MFS_LOG_POP3))
		return;
	if (redact == REDACT_ALL) {
		mfs_log_debug(MFS_LOG_POP3, "%s C: ***", s->trace_name);
		return;
	}
	if (redact == REDACT_ARGS) {
		/* Keep the command word, and for AUTH the mechanism: no secret. */
		const char *sp = memchr(line, ' ', len);
		size_t keep = sp ? (size_t)(sp - line) : len;

		if (sp && g_ascii_strncasecmp(line, "AUTH ", 5) == 0) {
			const char *sp2 = memchr(sp + 1, ' ', len - keep - 1);

			keep = sp2 ? (size_t)(sp2 - line) : len;
		}
		mfs_log_debug(MFS_LOG_POP3, "%s C: %.*s ***", s->trace_name, (int)keep, line);
		return;
	}
	g_autofree char *esc = mfs_log_escape(line, len, TRACE_MAX);
	mfs_log_debug(MFS_LOG_POP3, "%s C: %s", s->trace_name, esc);
}

/* Write text (one or more CRLF-ended command lines) at once. */
static int send_raw(struct pop3_session *s, const char *text, size_t len, enum redact redact,
		    GError **err)
{
	GError *e = NULL;

	if (!s->alive)
		return dead(s, err);
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t l = end - i;

		trace_sent(s, text + i, l && text[end - 1] == '\r' ? l - 1 : l, redact);
		i = end + 1;
	}
	if (!conn_write_all(s->conn, text, len, &e))
		return fail(s, err, e);
	return 0;
}

static int send_cmd(struct pop3_session *s, enum redact redact, GError **err, const char *fmt,
		    ...) G_GNUC_PRINTF(4, 5);
static int send_cmd(struct pop3_session *s, enum redact redact, GError **err, const char *fmt, ...)
{
	va_list ap;
	GString *line = g_string_new(NULL);
	int rc;

	va_start(ap, fmt);
	g_string_append_vprintf(line, fmt, ap);
	va_end(ap);
	g_string_append(line, "\r\n");
	rc = send_raw(s, line->str, line->len, redact, err);
	/* The line may hold a password. */
	memset(line->str, 0, line->len);
	g_string_free(line, TRUE);
	return rc;
}

/* One status line. 0 (whatever it says) or a negative errno (session dead). */
static int read_reply(struct pop3_session *s, const char *what, struct pop3_reply *r,
		      GError **err)
{
	GError *e = NULL;
	size_t len;
	char *line;

	memset(r, 0, sizeof(*r));
	if (!s->alive)
		return dead(s, err);
	line = conn_read_line(s->conn, POP3_LINE_MAX, &len, &e);
	if (!line) {
		if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE)) {
			g_clear_error(&e);
			s->alive = FALSE;
			g_set_error(err, POP3_ERROR, POP3_ERROR_PROTOCOL,
				    "%s sent an answer to %s longer than %d bytes", s->peer, what,
				    POP3_LINE_MAX);
			return -EIO;
		}
		g_prefix_error(&e, "%s: ", what);
		return fail(s, err, e);
	}
	if (!pop3_parse_reply(line, len, r)) {
		int rc = protocol_error(s, err, what, line, len);

		g_free(line);
		return rc;
	}
	if (mfs_log_enabled(MFS_LOG_POP3)) {
		if (r->status == POP3_STATUS_CONT) {
			mfs_log_debug(MFS_LOG_POP3, "%s S: + ...", s->trace_name);
		} else {
			g_autofree char *esc = mfs_log_escape(line, len, TRACE_MAX);

			mfs_log_debug(MFS_LOG_POP3, "%s S: %s", s->trace_name, esc);
		}
	}
	g_free(line);
	return 0;
}

/* Read past the rest of a line too long to keep. 0 or a negative errno. */
static int skip_line(struct pop3_session *s, GError **err)
{
	size_t skipped = 0;

	for (;;) {
		GError *e = NULL;
		size_t avail;
		const char *data = conn_peek(s->conn, &avail);
		const char *nl = memchr(data, '\n', avail);

		if (nl) {
			conn_consume(s->conn, (size_t)(nl - data) + 1);
			return 0;
		}
		conn_consume(s->conn, avail);
		skipped += avail;
		if (skipped > SKIP_MAX) {
			s->alive = FALSE;
			g_set_error(err, POP3_ERROR, POP3_ERROR_PROTOCOL,
				    "%s sent a line of more than %zu bytes", s->peer, SKIP_MAX);
			return -EIO;
		}
		if (!conn_fill(s->conn, &e))
			return fail(s, err, e);
	}
}

/*
 * The lines of a multi-line answer (CAPA, UIDL, LIST), dot-unstuffed, to
 * fn; a line too long is logged and skipped. 0 or a negative errno.
 */
static int read_lines(struct pop3_session *s, const char *what,
		      void (*fn)(void *ud, const char *line, size_t len), void *ud, GError **err)
{
	guint too_long = 0;

	for (;;) {
		GError *e = NULL;
		size_t len;
		char *line = conn_read_line(s->conn, POP3_LINE_MAX, &len, &e);
		const char *p;

		if (!line) {
			int rc;

			if (!g_error_matches(e, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE)) {
				g_prefix_error(&e, "%s: ", what);
				return fail(s, err, e);
			}
			g_clear_error(&e);
			if (too_long++ < BAD_LINES_LOGGED)
				mfs_log_warn("%s sent a line longer than %d bytes in its %s "
					     "answer; skipped",
					     s->peer, POP3_LINE_MAX, what);
			rc = skip_line(s, err);
			if (rc < 0)
				return rc;
			continue;
		}
		p = line;
		if (len > 0 && line[0] == '.') {
			if (len == 1) {
				g_free(line);
				return 0;
			}
			p++;
			len--;
		}
		fn(ud, p, len);
		g_free(line);
	}
}

/*
 * The body of a multi-line answer (RETR, TOP) through the dot reader to
 * sink. 0, the sink's error, or a negative errno (the session is dead then).
 */
static int read_body(struct pop3_session *s, const char *what, pop3_sink_fn sink, void *ud,
		     guint64 *size_out, GError **err)
{
	struct pop3_dot_reader d;

	pop3_dot_reader_init(&d);
	for (;;) {
		GError *e = NULL;
		size_t avail, used;
		const char *data = conn_peek(s->conn, &avail);

		if (avail == 0) {
			if (!conn_fill(s->conn, &e)) {
				g_prefix_error(&e, "%s: ", what);
				return fail(s, err, e);
			}
			continue;
		}
		used = pop3_dot_reader_feed(&d, data, avail, sink, ud);
		conn_consume(s->conn, used);
		if (d.sink_rc) {
			/* The rest of the answer is unread: the stream is out of step. */
			s->alive = FALSE;
			g_set_error(err, G_IO_ERROR, g_io_error_from_errno(-d.sink_rc),
				    "%s from %s: %s", what, s->peer, g_strerror(-d.sink_rc));
			return d.sink_rc;
		}
		if (d.done)
			break;
	}
	if (size_out)
		*size_out = d.out;
	mfs_log_debug(MFS_LOG_POP3, "%s S: (%" G_GUINT64_FORMAT " bytes) .", s->trace_name, d.out);
	return 0;
}

/* Send a one-line command and read its status. 0 (+OK), -errno (-ERR or session). */
static int simple(struct pop3_session *s, GError **err, const char *cmd)
{
	struct pop3_reply r;
	int rc = send_cmd(s, SHOW, err, "%s", cmd);

	if (rc < 0)
		return rc;
	rc = read_reply(s, cmd, &r, err);
	if (rc == 0 && r.status != POP3_STATUS_OK)
		rc = r.status == POP3_STATUS_ERR ?
			     reply_error(s, &r, err, "refused %s", cmd) :
			     protocol_error(s, err, cmd, "+", 1);
	pop3_reply_clear(&r);
	return rc;
}

/* -- capabilities, STLS, login ------------------------------------------------ */

struct capa_state {
	guint32 caps;
	guint login_delay;
	guint lines;
};

static void capa_line(void *ud, const char *line, size_t len)
{
	struct capa_state *cs = ud;

	if (cs->lines++ >= CAPA_LINES_MAX)
		return;
	g_autofree char *copy = g_strndup(line, len);
	cs->caps |= pop3_cap_line(copy);
	cs->login_delay = MAX(cs->login_delay, pop3_cap_login_delay(copy));
}

static int capa(struct pop3_session *s, GError **err)
{
	struct capa_state cs = { .caps = POP3_CAP_CAPA };
	struct pop3_reply r;
	int rc = send_cmd(s, SHOW, err, "CAPA");

	if (rc < 0)
		return rc;
	rc = read_reply(s, "CAPA", &r, err);
	if (rc < 0)
		return rc;
	if (r.status == POP3_STATUS_ERR) {
		/* An RFC 1939 server without RFC 2449: nothing known. */
		s->caps = 0;
		s->login_delay = 0;
		pop3_reply_clear(&r);
		return 0;
	}
	if (r.status != POP3_STATUS_OK) {
		pop3_reply_clear(&r);
		return protocol_error(s, err, "CAPA", "+", 1);
	}
	pop3_reply_clear(&r);
	rc = read_lines(s, "CAPA", capa_line, &cs, err);
	if (rc < 0)
		return rc;
	s->caps = cs.caps;
	s->login_delay = cs.login_delay;
	return 0;
}

static gboolean stls(struct pop3_session *s, const struct pop3_session_opts *o,
		     const struct conn_tls_opts *tls, GError **err)
{
	struct pop3_reply r;

	/* Without CAPA nothing says STLS is missing: asking is the only way. */
	if ((s->caps & POP3_CAP_CAPA) && !(s->caps & POP3_CAP_STLS)) {
		g_set_error(err, POP3_ERROR, POP3_ERROR_UNSUPPORTED,
			    "%s does not offer STLS; refusing to log in over an unencrypted link "
			    "(use pop3s://, or tls=none if you really mean it)",
			    s->peer);
		return FALSE;
	}
	if (send_cmd(s, SHOW, err, "STLS") < 0 || read_reply(s, "STLS", &r, err) < 0)
		return FALSE;
	if (r.status != POP3_STATUS_OK) {
		g_autofree char *words = mfs_log_escape(r.text, strlen(r.text), WORDS_MAX);

		pop3_reply_clear(&r);
		g_set_error(err, POP3_ERROR, POP3_ERROR_UNSUPPORTED,
			    "%s refused STLS (%s); refusing to log in over an unencrypted link "
			    "(use pop3s://, or tls=none if you really mean it)",
			    s->peer, words);
		return FALSE;
	}
	pop3_reply_clear(&r);
	/* Anything sent after the +OK came in clear text and would be read as if
	   it came over TLS: response injection (CVE-2020-14954). */
	if (conn_buffered(s->conn) > 0) {
		s->alive = FALSE;
		g_set_error(err, POP3_ERROR, POP3_ERROR_PROTOCOL,
			    "%s sent data after its +OK to STLS, before the TLS handshake "
			    "(response injection?); refusing the connection",
			    s->peer);
		return FALSE;
	}
	if (!conn_start_tls(s->conn, o->host, tls, err)) {
		s->alive = FALSE;
		return FALSE;
	}
	/* Capabilities from before TLS may have been forged: ask again. */
	s->caps = 0;
	return capa(s, err) == 0;
}

static gboolean has_crlf(const char *str)
{
	return strpbrk(str, "\r\n") != NULL;
}

/*
 * An AUTH exchange (RFC 5034) with initial response b64; a challenge after
 * it is answered with on_challenge (an XOAUTH2 error report wants an empty
 * line; PLAIN is cancelled with "*"). Fills *r with the final status.
 */
static int sasl(struct pop3_session *s, const char *mech, const char *b64,
		const char *on_challenge, struct pop3_reply *r, GError **err)
{
	int rc;

	if (strlen("AUTH ") + strlen(mech) + 1 + strlen(b64) <= AUTH_LINE_MAX) {
		rc = send_cmd(s, REDACT_ARGS, err, "AUTH %s %s", mech, b64);
		if (rc < 0)
			return rc;
	} else {
		rc = send_cmd(s, SHOW, err, "AUTH %s", mech);
		if (rc < 0)
			return rc;
		rc = read_reply(s, "AUTH", r, err);
		if (rc < 0)
			return rc;
		if (r->status != POP3_STATUS_CONT)
			return 0;
		pop3_reply_clear(r);
		rc = send_cmd(s, REDACT_ALL, err, "%s", b64);
		if (rc < 0)
			return rc;
	}
	for (int round = 0;; round++) {
		rc = read_reply(s, "AUTH", r, err);
		if (rc < 0 || r->status != POP3_STATUS_CONT)
			return rc;
		pop3_reply_clear(r);
		if (round >= SASL_ROUNDS_MAX)
			return protocol_error(s, err, "AUTH", "+ (too many challenges)", 24);
		rc = send_cmd(s, SHOW, err, "%s", on_challenge);
		if (rc < 0)
			return rc;
	}
}

static gboolean refused(struct pop3_session *s, const char *user, const struct pop3_reply *r,
			GError **err)
{
	reply_error(s, r, err, "refused the login of %s", user);
	return FALSE;
}

static gboolean login(struct pop3_session *s, const struct pop3_session_opts *o, GError **err)
{
	enum pop3_auth_mech mech = o->auth;
	gboolean caps_known = (s->caps & POP3_CAP_CAPA) != 0;
	struct pop3_reply r = { 0 };
	char *secret;
	gboolean ok = FALSE;
	int rc;

	if (!o->secret) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "no password source for %s", o->user);
		return FALSE;
	}
	if (mech == POP3_AUTH_BEST)
		mech = o->oauth				  ? POP3_AUTH_XOAUTH2 :
		       (s->caps & POP3_CAP_SASL_PLAIN) ? POP3_AUTH_PLAIN :
							 POP3_AUTH_USER;
	if (caps_known && ((mech == POP3_AUTH_PLAIN && !(s->caps & POP3_CAP_SASL_PLAIN)) ||
			   (mech == POP3_AUTH_XOAUTH2 && !(s->caps & POP3_CAP_SASL_XOAUTH2)))) {
		g_set_error(err, POP3_ERROR, POP3_ERROR_UNSUPPORTED,
			    "%s does not offer SASL %s", s->peer,
			    mech == POP3_AUTH_PLAIN ? "PLAIN" : "XOAUTH2");
		return FALSE;
	}
	if (has_crlf(o->user) || (mech == POP3_AUTH_USER && strchr(o->user, ' '))) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "the user name cannot be sent to a POP3 server");
		return FALSE;
	}
	secret = o->secret(o->secret_ud, o->oauth, err);
	if (!secret)
		return FALSE;
	if (has_crlf(secret)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "the password holds a line break");
		goto out;
	}
	switch (mech) {
	case POP3_AUTH_PLAIN: {
		GString *msg = g_string_new(NULL);
		char *enc;

		g_string_append_c(msg, '\0');
		g_string_append(msg, o->user);
		g_string_append_c(msg, '\0');
		g_string_append(msg, secret);
		enc = g_base64_encode((const guchar *)msg->str, msg->len);
		secret_free(g_string_free(msg, FALSE));
		rc = sasl(s, "PLAIN", enc, "*", &r, err);
		secret_free(enc);
		break;
	}
	case POP3_AUTH_XOAUTH2: {
		char *raw = g_strdup_printf("user=%s\001auth=Bearer %s\001\001", o->user, secret);
		char *enc = g_base64_encode((const guchar *)raw, strlen(raw));

		secret_free(raw);
		rc = sasl(s, "XOAUTH2", enc, "", &r, err);
		secret_free(enc);
		break;
	}
	case POP3_AUTH_USER:
	case POP3_AUTH_BEST:
	default:
		rc = send_cmd(s, SHOW, err, "USER %s", o->user);
		if (rc == 0)
			rc = read_reply(s, "USER", &r, err);
		if (rc < 0)
			break;
		if (r.status != POP3_STATUS_OK)
			break;
		pop3_reply_clear(&r);
		rc = send_cmd(s, REDACT_ARGS, err, "PASS %s", secret);
		if (rc == 0)
			rc = read_reply(s, "PASS", &r, err);
		break;
	}
	if (rc < 0)
		goto out;
	if (r.status != POP3_STATUS_OK) {
		refused(s, o->user, &r, err);
		goto out;
	}
	ok = TRUE;
out:
	pop3_reply_clear(&r);
	secret_free(secret);
	return ok;
}

/*
 * An IMAP server greets "* OK" (or PREAUTH, BYE) where a POP3 server says
 * "+OK": the wrong scheme for the port, which "malformed answer" would not say.
 */
static gboolean not_imap(struct pop3_session *s, const struct pop3_session_opts *o,
			 GError **err)
{
	static const char *const imap_greetings[] = { "* OK", "* PREAUTH", "* BYE" };
	size_t n;
	const char *p = conn_peek(s->conn, &n);
	const char *nl = memchr(p, '\n', n);
	size_t len = nl ? (size_t)(nl - p) : n;
	gboolean imap = FALSE;
	g_autofree char *shown = NULL;

	for (size_t i = 0; i < G_N_ELEMENTS(imap_greetings); i++) {
		size_t k = MIN(n, strlen(imap_greetings[i]));

		/* The greeting may have arrived in part: "* OK" needs 4 bytes,
		   conn_await_greeting() gets 8 or a whole line. */
		if (k >= 4 && g_ascii_strncasecmp(p, imap_greetings[i], k) == 0)
			imap = TRUE;
	}
	if (!imap)
		return TRUE;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	shown = mfs_log_escape(p, len, 80);
	g_set_error(err, POP3_ERROR, POP3_ERROR_PROTOCOL,
		    "%s is an IMAP server, not POP3 (it greeted \"%s\"): for IMAP, use %s",
		    s->peer, shown,
		    o->tls == POP3_TLS_IMPLICIT ? "imaps://" :
		    o->tls == POP3_TLS_STARTTLS ? "imap://" :
						  "imap:// with tls=none");
	return FALSE;
}

struct pop3_session *pop3_connect(const struct pop3_session_opts *o, GError **err)
{
	struct conn_tls_opts tls = { .ca_file = o->ca_file, .fingerprint = o->tls_fingerprint };
	struct pop3_session *s;
	struct pop3_reply r;
	struct conn *c;

	c = conn_connect(o->host, o->port, o->timeout_s, o->cancel, err);
	if (!c)
		return NULL;
	s = g_new0(struct pop3_session, 1);
	s->conn = c;
	s->peer = g_strdup(conn_peer_name(c));
	s->trace_name = g_strdup_printf("pop3#%u", g_atomic_int_add(&sessions_made, 1) + 1);
	mfs_log_debug(MFS_LOG_POP3, "%s connected to %s", s->trace_name, s->peer);
	s->alive = TRUE;

	if (o->tls == POP3_TLS_IMPLICIT && !conn_start_tls(c, o->host, &tls, err))
		goto fail;
	if (o->tls == POP3_TLS_NONE)
		mfs_log_warn("tls=none: the password and all mail travel unencrypted to %s",
			     s->peer);
	if (!conn_await_greeting(c, "if this is one, use pop3s:// (tls=implicit)", err) ||
	    !not_imap(s, o, err))
		goto fail;
	if (read_reply(s, "the greeting", &r, err) < 0)
		goto fail;
	if (r.status != POP3_STATUS_OK) {
		g_autofree char *words = mfs_log_escape(r.text, strlen(r.text), WORDS_MAX);

		if (r.status == POP3_STATUS_ERR)
			g_set_error(err, POP3_ERROR, classify(r.code),
				    "%s refused the connection: %s", s->peer, words);
		else
			g_set_error(err, POP3_ERROR, POP3_ERROR_PROTOCOL,
				    "%s sent an invalid POP3 greeting: + %s", s->peer, words);
		pop3_reply_clear(&r);
		goto fail;
	}
	pop3_reply_clear(&r);
	if (capa(s, err) < 0)
		goto fail;
	if (o->tls == POP3_TLS_STARTTLS && !stls(s, o, &tls, err))
		goto fail;
	if (!login(s, o, err))
		goto fail;
	/* RFC 2449 §5: capabilities may differ after login (PIPELINING, TOP). */
	if (capa(s, err) < 0)
		goto fail;
	conn_forget_cancel(c);
	return s;
fail:
	pop3_session_free(s);
	return NULL;
}

void pop3_session_free(struct pop3_session *s)
{
	if (!s)
		return;
	conn_free(s->conn);
	g_free(s->peer);
	g_free(s->trace_name);
	g_free(s);
}

gboolean pop3_session_timed_out(const struct pop3_session *s)
{
	return s->timed_out;
}

gboolean pop3_session_alive(const struct pop3_session *s)
{
	return s->alive;
}

guint32 pop3_session_caps(const struct pop3_session *s)
{
	return s->caps;
}

const char *pop3_session_peer(const struct pop3_session *s)
{
	return s->peer;
}

guint pop3_session_login_delay(const struct pop3_session *s)
{
	return s->login_delay;
}

/* -- maildrop commands --------------------------------------------------------- */

static void msg_clear(gpointer p)
{
	struct pop3_msg *m = p;

	g_clear_pointer(&m->uidl, g_free);
}

struct listing {
	struct pop3_session *s;
	const char *what;
	GArray *msgs;      /* struct pop3_msg; size G_MAXUINT64 until LIST gives it */
	GHashTable *index; /* num -> index + 1 in msgs */
	GHashTable *uidls; /* uidl -> NULL (borrowed keys) */
	guint bad;
	guint dropped;
};

static void bad_line(struct listing *l, const char *line, size_t len, const char *why)
{
	if (l->bad++ < BAD_LINES_LOGGED) {
		g_autofree char *esc = mfs_log_escape(line, len, 120);

		mfs_log_warn("%s: %s line skipped (%s): %s", l->s->peer, l->what, why, esc);
	}
}

static void uidl_line(void *ud, const char *line, size_t len)
{
	struct listing *l = ud;
	struct pop3_msg m = { 0 };

	if (!pop3_parse_uidl_line(line, len, &m.num, &m.uidl)) {
		bad_line(l, line, len, "malformed");
		return;
	}
	if (g_hash_table_contains(l->index, GUINT_TO_POINTER(m.num))) {
		bad_line(l, line, len, "number listed twice");
	} else if (g_hash_table_contains(l->uidls, m.uidl)) {
		/* Two messages with one UIDL: neither name could be trusted for
		   "taken"; the second is left out. */
		bad_line(l, line, len, "UIDL listed twice");
	} else if (l->msgs->len >= POP3_LIST_MAX) {
		l->dropped++;
	} else {
		m.size = G_MAXUINT64;
		g_array_append_val(l->msgs, m);
		g_hash_table_insert(l->index, GUINT_TO_POINTER(m.num),
				    GUINT_TO_POINTER(l->msgs->len));
		g_hash_table_add(l->uidls,
				 g_array_index(l->msgs, struct pop3_msg, l->msgs->len - 1).uidl);
		return;
	}
	g_free(m.uidl);
}

static void list_line(void *ud, const char *line, size_t len)
{
	struct listing *l = ud;
	guint32 num;
	guint64 size;
	guint idx;

	if (!pop3_parse_list_line(line, len, &num, &size)) {
		bad_line(l, line, len, "malformed");
		return;
	}
	idx = GPOINTER_TO_UINT(g_hash_table_lookup(l->index, GUINT_TO_POINTER(num)));
	if (!idx)
		return; /* no UIDL for it: reported when merging */
	struct pop3_msg *m = &g_array_index(l->msgs, struct pop3_msg, idx - 1);
	if (m->size != G_MAXUINT64) {
		bad_line(l, line, len, "number listed twice");
		return;
	}
	m->size = size;
}

static gint by_num(gconstpointer a, gconstpointer b)
{
	const struct pop3_msg *x = a, *y = b;

	return x->num < y->num ? -1 : x->num > y->num;
}

/* Read the rest of a LIST answer whose UIDL failed, to stay in step. */
static void ignore_line(void *ud, const char *line, size_t len)
{
	(void)ud;
	(void)line;
	(void)len;
}

GArray *pop3_list_all(struct pop3_session *s, GError **err)
{
	gboolean pipe = (s->caps & POP3_CAP_PIPELINING) != 0;
	struct listing l = { .s = s, .what = "UIDL" };
	struct pop3_reply r = { 0 };
	GArray *out = NULL;
	int rc;

	rc = pipe ? send_raw(s, "UIDL\r\nLIST\r\n", 12, SHOW, err) : send_cmd(s, SHOW, err, "UIDL");
	if (rc == 0)
		rc = read_reply(s, "UIDL", &r, err);
	if (rc < 0)
		return NULL;
	if (r.status != POP3_STATUS_OK) {
		if (r.status != POP3_STATUS_ERR)
			protocol_error(s, err, "UIDL", "+", 1);
		else if (!(s->caps & POP3_CAP_UIDL))
			g_set_error(err, POP3_ERROR, POP3_ERROR_UNSUPPORTED,
				    "%s: server does not support UIDL, which mailfs needs to tell "
				    "messages apart",
				    s->peer);
		else
			reply_error(s, &r, err, "refused UIDL");
		pop3_reply_clear(&r);
		if (pipe && s->alive) {
			/* LIST is in flight: its answer must be read to stay in step. */
			if (read_reply(s, "LIST", &r, NULL) == 0 && r.status == POP3_STATUS_OK)
				read_lines(s, "LIST", ignore_line, NULL, NULL);
			pop3_reply_clear(&r);
		}
		return NULL;
	}
	pop3_reply_clear(&r);

	l.msgs = g_array_new(FALSE, FALSE, sizeof(struct pop3_msg));
	g_array_set_clear_func(l.msgs, msg_clear);
	l.index = g_hash_table_new(g_direct_hash, g_direct_equal);
	l.uidls = g_hash_table_new(g_str_hash, g_str_equal);
	if (read_lines(s, "UIDL", uidl_line, &l, err) < 0)
		goto out;
	l.what = "LIST";
	rc = pipe ? 0 : send_cmd(s, SHOW, err, "LIST");
	if (rc == 0)
		rc = read_reply(s, "LIST", &r, err);
	if (rc < 0)
		goto out;
	if (r.status != POP3_STATUS_OK) {
		if (r.status == POP3_STATUS_ERR)
			reply_error(s, &r, err, "refused LIST");
		else
			protocol_error(s, err, "LIST", "+", 1);
		goto out;
	}
	if (read_lines(s, "LIST", list_line, &l, err) < 0)
		goto out;
	if (l.bad > BAD_LINES_LOGGED)
		mfs_log_warn("%s: %u malformed listing lines skipped in all", s->peer, l.bad);
	if (l.dropped)
		mfs_log_warn("%s: more than %d messages; %u left out of the listing", s->peer,
			     POP3_LIST_MAX, l.dropped);
	out = g_array_sized_new(FALSE, FALSE, sizeof(struct pop3_msg), l.msgs->len);
	g_array_set_clear_func(out, msg_clear);
	for (guint i = 0; i < l.msgs->len; i++) {
		struct pop3_msg *m = &g_array_index(l.msgs, struct pop3_msg, i);

		if (m->size == G_MAXUINT64) {
			g_autofree char *esc = mfs_log_escape(m->uidl, strlen(m->uidl), 80);

			mfs_log_warn("%s: message %u (UIDL %s) has no LIST size; skipped", s->peer,
				     m->num, esc);
			continue;
		}
		g_array_append_val(out, *m);
		m->uidl = NULL; /* moved */
	}
	g_array_sort(out, by_num);
out:
	pop3_reply_clear(&r);
	g_hash_table_destroy(l.uidls);
	g_hash_table_destroy(l.index);
	g_array_unref(l.msgs);
	return out;
}

struct top_sink {
	GByteArray *out;
	size_t kept;
	gboolean truncated;
};

static int top_chunk(void *ud, const void *data, size_t len)
{
	struct top_sink *t = ud;
	size_t room = POP3_TOP_MAX - t->kept;

	if (len > room)
		t->truncated = TRUE;
	len = MIN(len, room);
	if (len) {
		g_byte_array_append(t->out, data, (guint)len);
		t->kept += len;
	}
	return 0;
}

/*
 * Send the commands made by build(i) for i in [0, n) and hand each status
 * to answer(i), which reads the rest of a multi-line answer. When the
 * server pipelines, up to POP3_PIPELINE_WINDOW commands are in flight, and
 * once half of them are answered the next half goes out: the window
 * slides, so the server never runs dry while the answers of a window are
 * being read (a lockstep window stalls the stream for a round trip and the
 * server's first byte every POP3_PIPELINE_WINDOW commands). The commands
 * are a few bytes each: a window of them fits the socket buffers, so
 * writing them while the server's answers are unread cannot deadlock.
 * 0 or the session's failure.
 */
static int pipeline(struct pop3_session *s, guint n, void (*build)(void *ud, guint i, GString *out),
		    int (*answer)(struct pop3_session *s, void *ud, guint i, struct pop3_reply *r,
				  GError **err),
		    void *ud, GError **err)
{
	const guint window = (s->caps & POP3_CAP_PIPELINING) ? POP3_PIPELINE_WINDOW : 1;
	const guint refill = window > 1 ? window / 2 : 1;
	GString *batch = g_string_new(NULL);
	guint sent = 0;
	int rc = 0;

	for (guint i = 0; i < n && rc == 0; i++) {
		struct pop3_reply r;

		/* In flight: sent - i. Top it up to the window once it is low. */
		if (sent < n && sent - i < refill) {
			guint end = MIN(n, i + window);

			g_string_truncate(batch, 0);
			for (; sent < end; sent++)
				build(ud, sent, batch);
			rc = send_raw(s, batch->str, batch->len, SHOW, err);
			if (rc < 0)
				break;
		}
		rc = read_reply(s, "a pipelined command", &r, err);
		if (rc == 0)
			rc = answer(s, ud, i, &r, err);
		pop3_reply_clear(&r);
	}
	g_string_free(batch, TRUE);
	return rc;
}

struct top_many {
	const guint32 *nums;
	pop3_top_fn fn;
	void *ud;
};

static void top_build(void *ud, guint i, GString *out)
{
	struct top_many *t = ud;

	g_string_append_printf(out, "TOP %u 0\r\n", t->nums[i]);
}

static int top_answer(struct pop3_session *s, void *ud, guint i, struct pop3_reply *r,
		      GError **err)
{
	struct top_many *t = ud;
	guint32 num = t->nums[i];

	if (r->status == POP3_STATUS_ERR) {
		GError *e = NULL;
		int rc = reply_error(s, r, &e, "refused TOP %u 0", num);

		mfs_log_debug(MFS_LOG_POP3, "%s", e->message);
		g_error_free(e);
		t->fn(t->ud, num, rc, NULL);
		return 0;
	}
	if (r->status != POP3_STATUS_OK)
		return protocol_error(s, err, "TOP", "+", 1);

	struct top_sink sink = { .out = g_byte_array_new() };
	g_autofree char *what = g_strdup_printf("TOP %u 0", num);
	int rc = read_body(s, what, top_chunk, &sink, NULL, err);

	if (rc == 0) {
		if (sink.truncated)
			mfs_log_debug(MFS_LOG_POP3, "%s: headers of message %u cut at %zu bytes",
				      s->peer, num, POP3_TOP_MAX);
		t->fn(t->ud, num, 0, sink.out);
	}
	g_byte_array_unref(sink.out);
	return rc;
}

int pop3_top_many(struct pop3_session *s, const guint32 *nums, guint n, pop3_top_fn fn, void *ud,
		  GError **err)
{
	struct top_many t = { .nums = nums, .fn = fn, .ud = ud };

	return pipeline(s, n, top_build, top_answer, &t, err);
}

int pop3_top_headers(struct pop3_session *s, guint32 num, GByteArray *out, gboolean *truncated,
		     GError **err)
{
	struct pop3_reply r;
	struct top_sink sink = { .out = out };
	int rc = send_cmd(s, SHOW, err, "TOP %u 0", num);

	if (rc == 0)
		rc = read_reply(s, "TOP", &r, err);
	if (rc < 0)
		return rc;
	if (r.status == POP3_STATUS_OK) {
		g_autofree char *what = g_strdup_printf("TOP %u 0", num);

		rc = read_body(s, what, top_chunk, &sink, NULL, err);
	} else if (r.status == POP3_STATUS_ERR) {
		rc = reply_error(s, &r, err, "refused TOP %u 0", num);
	} else {
		rc = protocol_error(s, err, "TOP", "+", 1);
	}
	pop3_reply_clear(&r);
	if (truncated)
		*truncated = sink.truncated;
	return rc;
}

int pop3_retr(struct pop3_session *s, guint32 num, pop3_sink_fn sink, void *ud,
	      guint64 *size_out, GError **err)
{
	struct pop3_reply r;
	int rc = send_cmd(s, SHOW, err, "RETR %u", num);

	if (size_out)
		*size_out = 0;
	if (rc == 0)
		rc = read_reply(s, "RETR", &r, err);
	if (rc < 0)
		return rc;
	if (r.status == POP3_STATUS_OK) {
		g_autofree char *what = g_strdup_printf("RETR %u", num);

		rc = read_body(s, what, sink, ud, size_out, err);
	} else if (r.status == POP3_STATUS_ERR) {
		rc = reply_error(s, &r, err, "refused RETR %u", num);
	} else {
		rc = protocol_error(s, err, "RETR", "+", 1);
	}
	pop3_reply_clear(&r);
	return rc;
}

struct retr_many {
	const guint32 *nums;
	const struct pop3_retr_many_cb *cb;
	void *ud;
};

static void retr_build(void *ud, guint i, GString *out)
{
	struct retr_many *t = ud;

	g_string_append_printf(out, "RETR %u\r\n", t->nums[i]);
}

static int retr_answer(struct pop3_session *s, void *ud, guint i, struct pop3_reply *r,
		       GError **err)
{
	struct retr_many *t = ud;
	guint32 num = t->nums[i];
	guint64 size = 0;
	int rc;

	if (r->status == POP3_STATUS_ERR) {
		GError *e = NULL;

		/* One message refused (deleted by another session): the rest go on. */
		rc = reply_error(s, r, &e, "refused RETR %u", num);
		mfs_log_debug(MFS_LOG_POP3, "%s", e->message);
		g_error_free(e);
		t->cb->end(t->ud, i, rc, 0);
		return 0;
	}
	if (r->status != POP3_STATUS_OK) {
		rc = protocol_error(s, err, "RETR", "+", 1);
		t->cb->end(t->ud, i, rc, 0);
		return rc;
	}
	{
		g_autofree char *what = g_strdup_printf("RETR %u", num);

		t->cb->begin(t->ud, i);
		rc = read_body(s, what, t->cb->sink, t->ud, &size, err);
	}
	t->cb->end(t->ud, i, rc, size);
	return rc;
}

int pop3_retr_many(struct pop3_session *s, const guint32 *nums, guint n,
		   const struct pop3_retr_many_cb *cb, void *ud, GError **err)
{
	struct retr_many t = { .nums = nums, .cb = cb, .ud = ud };

	return pipeline(s, n, retr_build, retr_answer, &t, err);
}

int pop3_dele(struct pop3_session *s, guint32 num, GError **err)
{
	g_autofree char *cmd = g_strdup_printf("DELE %u", num);

	return simple(s, err, cmd);
}

struct dele_many {
	const guint32 *nums;
	int *rcs;
};

static void dele_build(void *ud, guint i, GString *out)
{
	struct dele_many *d = ud;

	g_string_append_printf(out, "DELE %u\r\n", d->nums[i]);
}

static int dele_answer(struct pop3_session *s, void *ud, guint i, struct pop3_reply *r,
		       GError **err)
{
	struct dele_many *d = ud;

	if (r->status == POP3_STATUS_OK) {
		d->rcs[i] = 0;
	} else if (r->status == POP3_STATUS_ERR) {
		GError *e = NULL;

		d->rcs[i] = reply_error(s, r, &e, "refused DELE %u", d->nums[i]);
		mfs_log_debug(MFS_LOG_POP3, "%s", e->message);
		g_error_free(e);
	} else {
		return protocol_error(s, err, "DELE", "+", 1);
	}
	return 0;
}

int pop3_dele_many(struct pop3_session *s, const guint32 *nums, guint n, int *rcs, GError **err)
{
	struct dele_many d = { .nums = nums, .rcs = rcs };

	for (guint i = 0; i < n; i++)
		rcs[i] = -EIO;
	return pipeline(s, n, dele_build, dele_answer, &d, err);
}

/* The QUIT went out or its reply never came: whether the server reached
   its UPDATE state (RFC 1939 §6) is unknown. */
static int quit_unconfirmed(struct pop3_session *s, GError **err, GError *cause)
{
	g_set_error(err, POP3_ERROR, POP3_ERROR_QUIT_UNCONFIRMED,
		    "%s: no answer to QUIT (%s); deletions may or may not be committed", s->peer,
		    cause ? cause->message : "connection closed");
	g_clear_error(&cause);
	s->alive = FALSE;
	return -ENOTCONN;
}

int pop3_quit_send(struct pop3_session *s, GError **err)
{
	GError *e = NULL;

	if (send_cmd(s, SHOW, &e, "QUIT") < 0)
		return quit_unconfirmed(s, err, e);
	return 0;
}

int pop3_quit_reply(struct pop3_session *s, GError **err)
{
	struct pop3_reply r;
	GError *e = NULL;
	int rc;

	if (read_reply(s, "QUIT", &r, &e) < 0)
		return quit_unconfirmed(s, err, e);
	if (r.status == POP3_STATUS_OK)
		rc = 0;
	else if (r.status == POP3_STATUS_ERR)
		rc = reply_error(s, &r, err, "could not commit (QUIT)");
	else
		rc = protocol_error(s, err, "QUIT", "+", 1);
	pop3_reply_clear(&r);
	s->alive = FALSE;
	/* RFC 1939 §6: -ERR to QUIT means some deletions failed; not an errno
	   of a command, but of the commit. */
	return rc < 0 ? -EIO : 0;
}

int pop3_quit(struct pop3_session *s, GError **err)
{
	int rc = pop3_quit_send(s, err);

	return rc < 0 ? rc : pop3_quit_reply(s, err);
}
