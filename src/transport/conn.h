/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conn: one client connection to a mail server, TCP with optional TLS, and a
 * bounded receive buffer the protocol parsers read from.
 *
 * Every wait is bounded: a wait ends with G_IO_ERROR_TIMED_OUT after the
 * connection's timeout passed WITHOUT PROGRESS (a byte read or written), so
 * a slow but live transfer never times out and a dead server always does.
 * A timeout of 0 or less means no limit (only conn_abort() ends the wait).
 *
 * Errors (GError domain and code; messages are written for the user and
 * name the host):
 *   G_IO_ERROR_TIMED_OUT           no progress for the timeout
 *   G_IO_ERROR_CONNECTION_CLOSED   the server closed the connection (or reset it)
 *   G_IO_ERROR_CANCELLED           conn_abort() was called
 *   G_IO_ERROR_HOST_NOT_FOUND      name resolution failed
 *   G_IO_ERROR_CONNECTION_REFUSED, G_IO_ERROR_HOST_UNREACHABLE, ... (from errno)
 *   G_IO_ERROR_MESSAGE_TOO_LARGE   conn_read_line(): line longer than max
 *   G_IO_ERROR_NO_SPACE            conn_fill() with a full buffer (caller bug)
 *   G_IO_ERROR_INVALID_ARGUMENT    malformed tls_fingerprint, a ca_file that cannot
 *                                  be read (named, with the OS error) or is no PEM
 *                                  file of certificates, or conn_start_tls()
 *                                  with unread bytes already buffered (injection)
 *   G_TLS_ERROR_BAD_CERTIFICATE    the server's certificate was refused (final:
 *                                  retrying will not help)
 *   G_TLS_ERROR_HANDSHAKE          any other TLS failure
 * After any error other than MESSAGE_TOO_LARGE from a line that did not fit,
 * the connection is unusable: free it and connect again.
 *
 * Threads: a conn is used by one thread at a time. conn_abort() is the
 * exception: any thread may call it at any time while the conn exists; the
 * owner must not conn_free() concurrently with it.
 *
 * SIGPIPE is never raised: writes use MSG_NOSIGNAL, also under TLS.
 * File descriptors are close-on-exec (password commands are spawned).
 */
#ifndef MFS_CONN_H
#define MFS_CONN_H

#include <gio/gio.h>
#include <glib.h>
#include <stddef.h>
#include <sys/uio.h>

/* Bytes of received-but-unconsumed data a conn holds at most. */
#define CONN_BUF_MAX ((size_t)256 * 1024)

struct conn_tls_opts {
	/* PEM file of trusted CA certificates; NULL: the system store. */
	const char *ca_file;
	/*
	 * NULL, or the SHA-256 of the server's leaf certificate as 64 hex
	 * digits (colons and surrounding whitespace allowed, any case). When
	 * set it REPLACES the chain and host-name checks: a pinned self-signed
	 * server is accepted, any other certificate refused.
	 */
	const char *fingerprint;
};

struct conn;

/*
 * The switch that abandons connects in progress (unmount must not wait for
 * a server that accepted TCP and never answers its TLS handshake). Fired
 * once, it stays fired: a conn made with it fails every wait with
 * G_IO_ERROR_CANCELLED — resolving, connecting, the TLS handshake, the
 * greeting and login — until its owner calls conn_forget_cancel() (a
 * session that is up is stopped with conn_abort() instead, and may still
 * log out politely). Fire from any thread; free after every conn made with
 * it has forgotten it or been freed.
 */
struct conn_cancel;
struct conn_cancel *conn_cancel_new(void);
/* A switch that is also fired when parent is (one request's, under the
   pool's); parent must outlive it. */
struct conn_cancel *conn_cancel_new_child(struct conn_cancel *parent);
void conn_cancel_fire(struct conn_cancel *k);
gboolean conn_cancel_fired(const struct conn_cancel *k); /* NULL: FALSE */
void conn_cancel_free(struct conn_cancel *k);

/*
 * Resolve host (IPv4 and IPv6; the lookup itself is bounded by timeout_s)
 * and connect to each address in turn, each attempt bounded by timeout_s,
 * until one answers. The socket gets TCP_NODELAY and keepalive. The new
 * conn has timeout_s as its timeout. cancel (may be NULL) abandons the
 * connect, and later waits until conn_forget_cancel(). Returns NULL and
 * *err on failure, with every address's reason in the message.
 */
struct conn *conn_connect(const char *host, const char *port, int timeout_s,
			  struct conn_cancel *cancel, GError **err);
/* The connect is over (logged in): cancel no longer applies to this conn. */
void conn_forget_cancel(struct conn *c);

/*
 * TLS client handshake over the connection (implicit TLS right after
 * conn_connect(), or STARTTLS/STLS after the server's OK). TLS 1.2 or newer,
 * SNI for a host name (not for an IP literal), chain verified against
 * o->ca_file or the system store, host name or IP address checked; or, with
 * o->fingerprint, only the pin. o may be NULL (system store, no pin).
 * A refused certificate's message says why and carries the leaf's SHA-256
 * fingerprint with the hint "tls_fingerprint=...".
 * Refuses (G_IO_ERROR_INVALID_ARGUMENT) when bytes are already buffered: a
 * server that sent anything after its OK to STARTTLS is injecting responses.
 * The handshake as a whole is bounded by the timeout.
 */
gboolean conn_start_tls(struct conn *c, const char *host, const struct conn_tls_opts *o,
			GError **err);
gboolean conn_is_tls(const struct conn *c);

/*
 * Can ca_file be read as a file? FALSE and *err "ca_file PATH: <OS error>"
 * (G_IO_ERROR_INVALID_ARGUMENT; a directory is EISDIR's words). conn_start_tls() checks it before loading it;
 * startup checks it before connecting, so that the mistake is named first.
 */
gboolean conn_check_ca_file(const char *path, GError **err);

/* The server leaf's SHA-256 as "AB:CD:..." (g_free it), or NULL before TLS. */
char *conn_peer_fingerprint(const struct conn *c);

/*
 * Parse a tls_fingerprint value (see struct conn_tls_opts) into 32 bytes.
 * For config checks at startup; conn_start_tls() calls it too.
 */
gboolean conn_parse_fingerprint(const char *text, guint8 out[32], GError **err);

/*
 * Receive whatever is available, at least one byte, into the buffer. FALSE
 * and *err on EOF, timeout, abort or error. Calling it while the buffer
 * holds CONN_BUF_MAX unconsumed bytes is a caller bug (G_IO_ERROR_NO_SPACE).
 */
gboolean conn_fill(struct conn *c, GError **err);

/*
 * The unconsumed buffered bytes (never NULL; *avail may be 0). The pointer is
 * valid until the next conn_fill(), conn_read_line() or conn_free().
 */
const char *conn_peek(const struct conn *c, size_t *avail);

/*
 * Wait up to timeout_ms for something to read (already buffered, or
 * arriving), without consuming it and without the timeout being an error:
 * for IMAP IDLE, which waits long on purpose. 1: readable, 0: the time
 * passed (the conn stays usable), -1 and *err: aborted or failed.
 */
int conn_wait_readable(struct conn *c, int timeout_ms, GError **err);

/*
 * How long a connection without TLS waits for the first byte of the server's
 * greeting (or the timeout, when shorter). A mail server speaks first, at
 * once; a port that expects TLS from the first byte waits silently for the
 * client, and a wrong scheme should not cost the whole timeout to find out.
 */
#define CONN_GREETING_WAIT_S 5

/*
 * Wait for the start of the server's greeting: until its first line ended or
 * 8 bytes are buffered, so that the caller can peek at how it begins (a POP3
 * "+OK" where an IMAP "* OK" was expected). Nothing is consumed. Without TLS
 * the first byte must come within CONN_GREETING_WAIT_S: else
 * G_IO_ERROR_TIMED_OUT, "HOST:PORT sent no greeting within N s: ..." ending
 * with tls_hint (what to try instead, e.g. "use imaps://"). Other errors as
 * conn_fill().
 */
gboolean conn_await_greeting(struct conn *c, const char *tls_hint, GError **err);

/* Mark n bytes (n <= what conn_peek() reported) as consumed. */
void conn_consume(struct conn *c, size_t n);

/* Bytes received and not consumed yet. */
size_t conn_buffered(const struct conn *c);

/*
 * One line ending in CRLF or LF, returned without the line end and
 * NUL-terminated (the line itself may hold NUL bytes: use *len). A line
 * longer than max bytes: NULL and G_IO_ERROR_MESSAGE_TOO_LARGE, and nothing
 * is consumed. Caller g_free()s the line. len may be NULL.
 */
char *conn_read_line(struct conn *c, size_t max, size_t *len, GError **err);

/* Write all len bytes. Waits up to the timeout for each bit of progress. */
gboolean conn_write_all(struct conn *c, const void *buf, size_t len, GError **err);

/*
 * Write the pieces as one: plain TCP uses one sendmsg(); under TLS pieces up
 * to 64 KiB in total are joined into one SSL_write, so a command and its
 * literal leave in the same records instead of one small record each.
 */
gboolean conn_writev(struct conn *c, const struct iovec *iov, int iovcnt, GError **err);

/* Timeout in seconds WITHOUT PROGRESS for later waits; <= 0: no limit. */
void conn_set_timeout(struct conn *c, int timeout_s);

/*
 * Make every wait of this conn, current or future, fail at once with
 * G_IO_ERROR_CANCELLED. Any thread may call it (an atomic flag and a write
 * to an eventfd); used for unmount and FUSE interrupts. Irreversible.
 */
void conn_abort(struct conn *c);

/*
 * Close the connection and free it. Under TLS a close_notify is sent if the
 * socket takes it at once; it never waits for the server. NULL is ignored.
 */
void conn_free(struct conn *c);

/* "host:port" this conn was made for, for messages; owned by the conn. */
const char *conn_peer_name(const struct conn *c);

#endif
