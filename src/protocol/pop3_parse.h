/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pop3_parse: the pure half of the POP3 client — status lines, UIDL and
 * LIST lines, CAPA lines, and the dot-unstuffing reader of multi-line
 * answers. No I/O and no allocation beyond the strings handed back; every
 * function is safe on any input (the fuzzers feed it garbage) and may be
 * called from any thread. protocol/pop3.h is the session built on it.
 */
#ifndef MFS_POP3_PARSE_H
#define MFS_POP3_PARSE_H

#include <glib.h>
#include <stddef.h>

/* Longest CAPA LOGIN-DELAY taken, in seconds (a day, the longest poll); more is this. */
#define POP3_LOGIN_DELAY_MAX 86400

/* CAPA tags the client acts on (RFC 2449 §6); anything else is ignored. */
enum pop3_cap {
	POP3_CAP_TOP = 1u << 0,
	POP3_CAP_USER = 1u << 1,
	POP3_CAP_UIDL = 1u << 2,
	POP3_CAP_STLS = 1u << 3,
	POP3_CAP_PIPELINING = 1u << 4,
	POP3_CAP_RESP_CODES = 1u << 5,
	POP3_CAP_AUTH_RESP_CODE = 1u << 6,
	POP3_CAP_LOGIN_DELAY = 1u << 7,
	POP3_CAP_SASL_PLAIN = 1u << 8,
	POP3_CAP_SASL_LOGIN = 1u << 9,
	POP3_CAP_SASL_XOAUTH2 = 1u << 10,
	POP3_CAP_SASL_OAUTHBEARER = 1u << 11,
	POP3_CAP_CAPA = 1u << 12, /* the server answered CAPA at all */
};

/*
 * Receives message bytes in order: return 0 to go on, or a negative errno to
 * stop (a full disk): the command then fails with it and the session is
 * dead, since the rest of the answer was not read.
 */
typedef int (*pop3_sink_fn)(void *ud, const void *data, size_t len);

enum pop3_status {
	POP3_STATUS_OK,   /* "+OK" */
	POP3_STATUS_ERR,  /* "-ERR" */
	POP3_STATUS_CONT, /* "+ " SASL continuation */
};

struct pop3_reply {
	enum pop3_status status;
	char *code; /* "IN-USE", "SYS/TEMP", ... without brackets (-ERR and +OK), or NULL */
	char *text; /* the rest of the line, raw (after the code), never NULL */
};
void pop3_reply_clear(struct pop3_reply *r);

/*
 * Parse one status line (without CRLF). FALSE when it is none of "+OK",
 * "-ERR" (either followed by end or a space; any case) or "+" (SASL,
 * followed by end or a space). A response code is taken only in RFC 2449
 * form: "[" 1-64 of ALPHA DIGIT "-" "/" "]".
 */
gboolean pop3_parse_reply(const char *line, size_t len, struct pop3_reply *out);

/*
 * A listing line "NUM VALUE" (UIDL: VALUE a valid UIDL, copied to
 * *uidl_out; LIST: VALUE a size, with optional further words ignored).
 * FALSE for anything malformed, a number 0 or over G_MAXUINT32, a size
 * over G_MAXUINT64.
 */
gboolean pop3_parse_uidl_line(const char *line, size_t len, guint32 *num, char **uidl_out);
gboolean pop3_parse_list_line(const char *line, size_t len, guint32 *num, guint64 *size);
/* A UIDL as RFC 1939 allows: 1-70 characters 0x21-0x7E. */
gboolean pop3_uidl_valid(const char *s, size_t len);
/* "+OK 2 320" after STAT: the text part "2 320 ..." -> count, octets. */
gboolean pop3_parse_stat(const char *text, guint32 *count, guint64 *octets);
/* One CAPA line -> its bits (0 for a tag the client ignores). */
guint32 pop3_cap_line(const char *line);
/*
 * "LOGIN-DELAY n" or "LOGIN-DELAY n USER" -> n, at most
 * POP3_LOGIN_DELAY_MAX; 0 for any other line, or a malformed one.
 */
guint pop3_cap_login_delay(const char *line);

/*
 * Resumable reader of a multi-line answer's body (after its status line):
 * feed it bytes in any pieces, it passes the unstuffed bytes to the sink and
 * stops right after the terminating line ("." CRLF; "." LF accepted). Per
 * RFC 1939 §3 a line starting with "." has that dot removed ("..x" -> ".x",
 * ".x" -> "x"). Output never exceeds input. No allocation, no limits needed:
 * lines of any length pass through.
 */
struct pop3_dot_reader {
	int state;
	gboolean done;   /* the terminator was read */
	int sink_rc;     /* the sink's negative errno when it stopped us */
	guint64 out;     /* bytes passed to the sink */
};
void pop3_dot_reader_init(struct pop3_dot_reader *d);
/*
 * Returns the bytes consumed: all of len, or fewer when the terminator ended
 * the answer (the rest belongs to the next answer) or the sink returned an
 * error (d->sink_rc; bytes offered to it count as consumed). After done or a
 * sink error it consumes nothing.
 */
size_t pop3_dot_reader_feed(struct pop3_dot_reader *d, const void *data, size_t len,
			    pop3_sink_fn sink, void *ud);

#endif
