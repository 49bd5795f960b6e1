/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/lock.h"

#define BUF_INITIAL ((size_t)16 * 1024)
/* OpenSSL's read-ahead buffer: a few full-size records per recv. */
#define TLS_READ_BUFFER ((size_t)64 * 1024)
/* Pieces of a conn_writev() up to this size are joined into one SSL_write. */
#define JOIN_MAX ((size_t)64 * 1024)

struct conn {
	int fd;
	int abort_fd; /* eventfd: readable once conn_abort() ran, wakes every poll() */
	/* The owner's switch for a connect in progress (conn_connect's cancel),
	   polled beside abort_fd until conn_forget_cancel(); NULL after. */
	struct conn_cancel *cancel;
	int aborted;  /* atomic */
	int timeout_s;
	char *peer; /* "host:port" for messages */

	SSL_CTX *ctx;
	SSL *ssl;
	gboolean tls_up;     /* handshake done */
	gboolean tls_broken; /* fatal TLS error: no close_notify at free */
	gboolean bio_eof;    /* our BIO saw EOF, for BIO_CTRL_EOF */
	int bio_errno;	     /* errno of the BIO's last failed send/recv */

	/* Captured by the certificate callback, for messages and the pin. */
	gboolean pin_set;
	guint8 pin[32];
	gboolean pin_mismatch;
	char *seen_fp;
	char *seen_names;

	char *buf;
	size_t cap, start, end; /* unconsumed bytes are buf[start..end) */
};

/* ---- time ---- */

static gint64 deadline_after(int timeout_s)
{
	if (timeout_s <= 0)
		return G_MAXINT64;
	return g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
}

/* poll() timeout in ms until deadline, rounded up; -1 for no deadline. */
static int remaining_ms(gint64 deadline)
{
	gint64 left;

	if (deadline == G_MAXINT64)
		return -1;
	left = deadline - g_get_monotonic_time();
	if (left <= 0)
		return 0;
	left = (left + 999) / 1000;
	return left > G_MAXINT ? G_MAXINT : (int)left;
}

/* ---- the connect switch ---- */

struct conn_cancel {
	int fd;	   /* eventfd: readable for good once fired */
	int fired; /* atomic */
	struct conn_cancel *parent; /* fired too when it is; NULL: none */
};

struct conn_cancel *conn_cancel_new(void)
{
	return conn_cancel_new_child(NULL);
}

struct conn_cancel *conn_cancel_new_child(struct conn_cancel *parent)
{
	struct conn_cancel *k = g_new0(struct conn_cancel, 1);

	k->parent = parent;
	k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->fd < 0)
		g_error("eventfd: %s", g_strerror(errno)); /* out of descriptors at startup */
	return k;
}

void conn_cancel_fire(struct conn_cancel *k)
{
	uint64_t one = 1;
	ssize_t r;

	g_atomic_int_set(&k->fired, 1);
	r = write(k->fd, &one, sizeof(one));
	(void)r; /* EAGAIN: already readable */
}

gboolean conn_cancel_fired(const struct conn_cancel *k)
{
	return k && (__atomic_load_n(&k->fired, __ATOMIC_ACQUIRE) || conn_cancel_fired(k->parent));
}

void conn_cancel_free(struct conn_cancel *k)
{
	if (!k)
		return;
	close(k->fd);
	g_free(k);
}

/* For poll(): a negative fd is skipped. */
static int cancel_fd(const struct conn_cancel *k)
{
	return k ? k->fd : -1;
}

static int parent_fd(const struct conn_cancel *k)
{
	return k ? cancel_fd(k->parent) : -1;
}

/* ---- errors ---- */

static int errno_code(int errnum)
{
	switch (errnum) {
	case EPIPE:
	case ECONNRESET:
	case ECONNABORTED:
		return G_IO_ERROR_CONNECTION_CLOSED;
	default:
		return g_io_error_from_errno(errnum);
	}
}

static void set_closed(struct conn *c, GError **err)
{
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "%s closed the connection",
		    c->peer);
}

static void set_errno(struct conn *c, int errnum, GError **err)
{
	if (errnum == 0) {
		set_closed(c, err);
		return;
	}
	g_set_error(err, G_IO_ERROR, errno_code(errnum), "connection to %s: %s", c->peer,
		    g_strerror(errnum));
}

static void set_aborted(struct conn *c, GError **err)
{
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED, "connection to %s aborted", c->peer);
}

/* The reason of the first queued OpenSSL error, in words; clears the queue. */
static char *ssl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	char *out;

	if (e && ERR_SYSTEM_ERROR(e))
		out = g_strdup(g_strerror(ERR_GET_REASON(e))); /* the reason is an errno */
	else if (r)
		out = g_strdup(r);
	else if (e)
		out = g_strdup_printf("OpenSSL error %lx", e);
	else
		out = g_strdup("unknown TLS error");
	ERR_clear_error();
	return out;
}

static gboolean is_unexpected_eof(void)
{
	unsigned long e = ERR_peek_error();

	return ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/* ---- a socket BIO that never raises SIGPIPE ---- */

static int bio_write_ex(BIO *b, const char *data, size_t len, size_t *written)
{
	struct conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(c->fd, data, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0) {
		*written = (size_t)n;
		return 1;
	}
	c->bio_errno = errno;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		BIO_set_retry_write(b);
	return 0;
}

static int bio_read_ex(BIO *b, char *data, size_t len, size_t *nread)
{
	struct conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(c->fd, data, len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		*nread = (size_t)n;
		return 1;
	}
	if (n == 0) {
		c->bio_eof = TRUE;
		return 0;
	}
	c->bio_errno = errno;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		BIO_set_retry_read(b);
	return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct conn *c = BIO_get_data(b);

	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return c->bio_eof;
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = c->fd;
		return c->fd;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_meth; /* written once, under bio_once */

static void bio_method_init(void)
{
	bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mailfs socket");
	BIO_meth_set_write_ex(bio_meth, bio_write_ex);
	BIO_meth_set_read_ex(bio_meth, bio_read_ex);
	BIO_meth_set_ctrl(bio_meth, bio_ctrl);
	BIO_meth_set_create(bio_meth, bio_create);
}

/* Any thread. pthread_once, not g_once_init_enter: GLib publishes the
   result from inside its library, where ThreadSanitizer does not see the
   release, so a second thread's read of bio_meth would be reported. */
static BIO_METHOD *bio_method(void)
{
	static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

	if (pthread_once(&bio_once, bio_method_init) != 0)
		g_error("pthread_once failed");
	return bio_meth;
}

/* ---- waiting ---- */

/*
 * Wait until fd is ready for events, the deadline passes, or the conn is
 * aborted. TRUE when fd is ready (or in error: the next call reports it).
 */
static gboolean wait_io(struct conn *c, short events, gint64 deadline, const char *what,
			GError **err)
{
	for (;;) {
		struct pollfd p[4] = {
		    {.fd = c->fd, .events = events},
		    {.fd = c->abort_fd, .events = POLLIN},
		    {.fd = cancel_fd(c->cancel), .events = POLLIN},
		    {.fd = parent_fd(c->cancel), .events = POLLIN},
		};
		int r;

		if (g_atomic_int_get(&c->aborted)) {
			set_aborted(c, err);
			return FALSE;
		}
		r = poll(p, 4, remaining_ms(deadline));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			set_errno(c, errno, err);
			return FALSE;
		}
		if (p[1].revents || p[2].revents || p[3].revents) {
			set_aborted(c, err);
			return FALSE;
		}
		if (p[0].revents)
			return TRUE;
		if (remaining_ms(deadline) == 0) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
				    "connection to %s timed out: no progress for %d s (%s)",
				    c->peer, c->timeout_s, what);
			return FALSE;
		}
	}
}

/* ---- raw I/O: > 0 bytes done, 0 wait for *events, -1 error ---- */

static gssize tls_result(struct conn *c, int r, size_t n, short *events, GError **err)
{
	if (r > 0)
		return (gssize)n;
	switch (SSL_get_error(c->ssl, 0)) {
	case SSL_ERROR_WANT_READ:
		*events = POLLIN;
		ERR_clear_error();
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*events = POLLOUT;
		ERR_clear_error();
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		set_closed(c, err);
		break;
	case SSL_ERROR_SYSCALL:
		c->tls_broken = TRUE;
		set_errno(c, c->bio_eof ? 0 : c->bio_errno, err);
		break;
	default:
		c->tls_broken = TRUE;
		if (is_unexpected_eof()) {
			set_closed(c, err);
		} else {
			g_autofree char *why = ssl_reason();

			g_set_error(err, G_TLS_ERROR, G_TLS_ERROR_HANDSHAKE,
				    "connection to %s: TLS error: %s", c->peer, why);
		}
		break;
	}
	ERR_clear_error();
	return -1;
}

static gssize io_read(struct conn *c, void *buf, size_t len, short *events, GError **err)
{
	ssize_t n;

	if (c->ssl) {
		size_t got = 0;
		int r;

		ERR_clear_error();
		c->bio_errno = 0;
		r = SSL_read_ex(c->ssl, buf, len, &got);
		return tls_result(c, r, got, events, err);
	}
	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == 0) {
		set_closed(c, err);
		return -1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*events = POLLIN;
		return 0;
	}
	set_errno(c, errno, err);
	return -1;
}

static gssize io_write(struct conn *c, const void *buf, size_t len, short *events, GError **err)
{
	ssize_t n;

	if (c->ssl) {
		size_t done = 0;
		int r;

		ERR_clear_error();
		c->bio_errno = 0;
		r = SSL_write_ex(c->ssl, buf, len, &done);
		return tls_result(c, r, done, events, err);
	}
	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		*events = POLLOUT;
		return 0;
	}
	set_errno(c, n < 0 ? errno : EPIPE, err);
	return -1;
}

/* ---- connecting ---- */

/*
 * getaddrinfo() cannot be told a timeout, so it runs in a thread we stop
 * waiting for at the deadline. The job is reference-counted: whoever is last
 * (the abandoned thread or the waiter) frees it.
 */
struct resolve_job {
	int ref;
	mfs_mutex lock;
	mfs_cond cond;
	gboolean done;
	char *host, *port;
	struct addrinfo *res;
	int rc;
	int sys_errno; /* for EAI_SYSTEM: errno is per thread */
};

static void resolve_job_unref(struct resolve_job *j)
{
	if (!g_atomic_int_dec_and_test(&j->ref))
		return;
	if (j->res)
		freeaddrinfo(j->res);
	mfs_mutex_clear(&j->lock);
	mfs_cond_clear(&j->cond);
	g_free(j->host);
	g_free(j->port);
	g_free(j);
}

static gpointer resolve_thread(gpointer data)
{
	struct resolve_job *j = data;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(j->host, j->port, &hints, &res);
	int e = errno;

	mfs_mutex_lock(&j->lock);
	j->rc = rc;
	j->sys_errno = e;
	j->res = res;
	j->done = TRUE;
	mfs_cond_signal(&j->cond);
	mfs_mutex_unlock(&j->lock);
	resolve_job_unref(j);
	return NULL;
}

/* How often a resolve waiting for its thread looks at the connect switch. */
#define RESOLVE_CANCEL_CHECK_US (100 * 1000)

static struct addrinfo *resolve(const char *host, const char *port, int timeout_s,
				const struct conn_cancel *cancel, struct resolve_job **job_out,
				GError **err)
{
	struct resolve_job *j = g_new0(struct resolve_job, 1);
	gint64 deadline = deadline_after(timeout_s);
	GThread *t;
	GError *terr = NULL;
	gboolean done;

	j->ref = 2;
	mfs_mutex_init(&j->lock);
	mfs_cond_init(&j->cond);
	j->host = g_strdup(host);
	j->port = g_strdup(port);
	t = g_thread_try_new("mailfs-resolve", resolve_thread, j, &terr);
	if (!t) {
		j->ref = 1;
		resolve_job_unref(j);
		g_propagate_prefixed_error(err, terr, "cannot resolve %s: ", host);
		return NULL;
	}
	g_thread_unref(t);

	mfs_mutex_lock(&j->lock);
	/* In short slices: the cond cannot be told about the switch. */
	while (!j->done && !conn_cancel_fired(cancel)) {
		gint64 slice = g_get_monotonic_time() + RESOLVE_CANCEL_CHECK_US;

		if (g_get_monotonic_time() >= deadline)
			break;
		mfs_cond_wait_until(&j->cond, &j->lock, MIN(slice, deadline));
	}
	/* Read under the lock: the thread may still finish after it. Once
	   done, it writes nothing more. */
	done = j->done;
	mfs_mutex_unlock(&j->lock);
	if (!done && conn_cancel_fired(cancel)) {
		resolve_job_unref(j);
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED, "connecting to %s abandoned",
			    host);
		return NULL;
	}
	if (!done) {
		resolve_job_unref(j);
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
			    "cannot resolve %s: no answer within %d s", host, timeout_s);
		return NULL;
	}
	if (j->rc != 0) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_HOST_NOT_FOUND, "cannot resolve %s: %s",
			    host,
			    j->rc == EAI_SYSTEM ? g_strerror(j->sys_errno) : gai_strerror(j->rc));
		resolve_job_unref(j);
		return NULL;
	}
	*job_out = j;
	return j->res;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	const void *a =
	    sa->sa_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;

	if (!inet_ntop(sa->sa_family, a, out, (socklen_t)outlen))
		g_strlcpy(out, "?", outlen);
}

/* One address: a connected non-blocking socket, or -1 with *errnum. */
static int connect_one(const struct addrinfo *ai, int timeout_s,
		       const struct conn_cancel *cancel, int *errnum)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	gint64 deadline = deadline_after(timeout_s);
	socklen_t elen = sizeof(*errnum);

	if (fd < 0) {
		*errnum = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR) {
		*errnum = errno;
		close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd p[3] = {
		    {.fd = fd, .events = POLLOUT},
		    {.fd = cancel_fd(cancel), .events = POLLIN},
		    {.fd = parent_fd(cancel), .events = POLLIN},
		};
		int r = poll(p, 3, remaining_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*errnum = errno;
			close(fd);
			return -1;
		}
		if (p[1].revents || p[2].revents) {
			*errnum = ECANCELED;
			close(fd);
			return -1;
		}
		if (r == 0) {
			*errnum = ETIMEDOUT;
			close(fd);
			return -1;
		}
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, errnum, &elen) < 0)
		*errnum = errno;
	if (*errnum != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void tune_socket(int fd)
{
	/* Best effort: a socket without these still works. */
	int on = 1, idle = 60, intvl = 15, cnt = 4;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

struct conn *conn_connect(const char *host, const char *port, int timeout_s,
			  struct conn_cancel *cancel, GError **err)
{
	struct resolve_job *job = NULL;
	struct addrinfo *res = resolve(host, port, timeout_s, cancel, &job, err);
	g_autoptr(GString) why = g_string_new(NULL);
	int fd = -1, errnum = 0;
	struct conn *c;

	if (!res)
		return NULL;
	for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		char addr[INET6_ADDRSTRLEN];

		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		fd = connect_one(ai, timeout_s, cancel, &errnum);
		if (fd >= 0 || errnum == ECANCELED)
			break;
		addr_text(ai->ai_addr, addr, sizeof(addr));
		if (why->len)
			g_string_append(why, "; ");
		if (errnum == ETIMEDOUT)
			g_string_append_printf(why, "no answer within %d s", timeout_s);
		else
			g_string_append(why, g_strerror(errnum));
		if (strcmp(addr, host) != 0)
			g_string_append_printf(why, " (%s)", addr);
	}
	resolve_job_unref(job);
	if (fd < 0 && errnum == ECANCELED) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED, "connecting to %s abandoned",
			    host);
		return NULL;
	}
	if (fd < 0) {
		g_set_error(err, G_IO_ERROR,
			    errnum ? errno_code(errnum) : G_IO_ERROR_HOST_NOT_FOUND,
			    "cannot connect to %s port %s: %s", host, port,
			    why->len ? why->str : "no usable address");
		return NULL;
	}
	tune_socket(fd);

	c = g_new0(struct conn, 1);
	c->fd = fd;
	c->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->abort_fd < 0) {
		int e = errno;

		close(fd);
		g_free(c);
		g_set_error(err, G_IO_ERROR, g_io_error_from_errno(e), "eventfd: %s",
			    g_strerror(e));
		return NULL;
	}
	c->timeout_s = timeout_s;
	c->cancel = cancel;
	c->peer = strchr(host, ':') ? g_strdup_printf("[%s]:%s", host, port)
				    : g_strdup_printf("%s:%s", host, port);
	c->cap = BUF_INITIAL;
	c->buf = g_malloc(c->cap);
	return c;
}

/* ---- TLS ---- */

static char *hex_colon(const guint8 *md, size_t len)
{
	GString *s = g_string_sized_new(len * 3);

	for (size_t i = 0; i < len; i++)
		g_string_append_printf(s, i ? ":%02X" : "%02X", md[i]);
	return g_string_free(s, FALSE);
}

static char *cert_fingerprint(X509 *x)
{
	guint8 md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!X509_digest(x, EVP_sha256(), md, &mdlen))
		return NULL;
	return hex_colon(md, mdlen);
}

/* "a, b, 1.2.3.4": the certificate's DNS and IP names (else its CN), bounded. */
static char *cert_names(X509 *x)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	GString *s = g_string_new(NULL);
	int n = sans ? sk_GENERAL_NAME_num(sans) : 0;
	int shown = 0;

	for (int i = 0; i < n && shown < 8; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		char ip[INET6_ADDRSTRLEN];
		const char *name = NULL;
		int len = 0;

		if (g->type == GEN_DNS) {
			name = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
		} else if (g->type == GEN_IPADD) {
			int alen = ASN1_STRING_length(g->d.iPAddress);
			int fam = alen == 4 ? AF_INET : alen == 16 ? AF_INET6 : 0;

			if (fam &&
			    inet_ntop(fam, ASN1_STRING_get0_data(g->d.iPAddress), ip, sizeof(ip))) {
				name = ip;
				len = (int)strlen(ip);
			}
		}
		if (!name || len <= 0 || len > 255)
			continue;
		if (s->len)
			g_string_append(s, ", ");
		for (int k = 0; k < len; k++)
			g_string_append_c(s, g_ascii_isgraph(name[k]) ? name[k] : '?');
		shown++;
	}
	if (n > shown)
		g_string_append(s, ", ...");
	GENERAL_NAMES_free(sans);
	if (!s->len) {
		char cn[256];
		X509_NAME *subj = X509_get_subject_name(x);

		if (subj && X509_NAME_get_text_by_NID(subj, NID_commonName, cn, sizeof(cn)) > 0) {
			for (char *p = cn; *p; p++)
				if (!g_ascii_isgraph(*p))
					*p = '?';
			g_string_append(s, cn);
		}
	}
	return g_string_free(s, FALSE);
}

/*
 * Replaces OpenSSL's chain verification so that the leaf's fingerprint is
 * known even when verification fails (OpenSSL does not keep a refused peer
 * certificate), and so a pin can stand in for the chain and name checks.
 */
static int verify_cert(X509_STORE_CTX *xs, void *arg)
{
	struct conn *c = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	guint8 md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!leaf || !X509_digest(leaf, EVP_sha256(), md, &mdlen) || mdlen != 32) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	g_free(c->seen_fp);
	c->seen_fp = hex_colon(md, mdlen);
	g_free(c->seen_names);
	c->seen_names = cert_names(leaf);
	if (c->pin_set) {
		if (memcmp(md, c->pin, 32) == 0)
			return 1;
		c->pin_mismatch = TRUE;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return X509_verify_cert(xs) > 0;
}

gboolean conn_parse_fingerprint(const char *text, guint8 out[32], GError **err)
{
	size_t n = 0;
	int hi = -1;

	for (const char *p = text; *p; p++) {
		int v;

		if (*p == ':' || g_ascii_isspace(*p))
			continue;
		v = g_ascii_xdigit_value(*p);
		if (v < 0 || n >= 32)
			goto bad;
		if (hi < 0) {
			hi = v;
		} else {
			out[n++] = (guint8)(hi << 4 | v);
			hi = -1;
		}
	}
	if (n == 32 && hi < 0)
		return TRUE;
bad:
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
		    "tls_fingerprint must be the certificate's SHA-256 as 64 hex digits "
		    "(colons allowed), as in AB:CD:...");
	return FALSE;
}

static void set_handshake_error(struct conn *c, const char *host, int ssl_err, GError **err)
{
	long vr = SSL_get_verify_result(c->ssl);

	if (c->pin_mismatch) {
		g_autofree char *want = hex_colon(c->pin, 32);

		g_set_error(err, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
			    "TLS certificate of %s does not match tls_fingerprint: the server's "
			    "SHA-256 fingerprint is %s, not %s; if the certificate was changed on "
			    "purpose, set tls_fingerprint=%s",
			    host, c->seen_fp, want, c->seen_fp);
	} else if (c->seen_fp && vr != X509_V_OK) {
		gboolean name =
		    vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH;
		g_autofree char *names =
		    name && c->seen_names && *c->seen_names
			? g_strdup_printf(" (the certificate is for %s)", c->seen_names)
			: g_strdup("");

		g_set_error(err, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
			    "TLS certificate of %s refused: certificate verify failed: %s%s. "
			    "Its SHA-256 fingerprint is %s; if you trust this certificate, "
			    "set tls_fingerprint=%s",
			    host, X509_verify_cert_error_string(vr), names, c->seen_fp, c->seen_fp);
	} else if (ssl_err == SSL_ERROR_SYSCALL || is_unexpected_eof()) {
		if (c->bio_eof || c->bio_errno == 0)
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
				    "%s closed the connection during the TLS handshake", c->peer);
		else
			set_errno(c, c->bio_errno, err);
	} else {
		unsigned long e = ERR_peek_error();
		int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
		const char *hint = "";
		g_autofree char *why = NULL;

		if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG)
			hint = " (does this port speak TLS? try the other tls mode)";
		else if (reason == SSL_R_UNSUPPORTED_PROTOCOL ||
			 reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)
			hint = " (the server offers no TLS version of 1.2 or newer)";
		why = ssl_reason();
		g_set_error(err, G_TLS_ERROR, G_TLS_ERROR_HANDSHAKE,
			    "TLS handshake with %s failed: %s%s", c->peer, why, hint);
	}
	ERR_clear_error();
}

gboolean conn_check_ca_file(const char *path, GError **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int e = 0;

	if (fd < 0)
		e = errno;
	else if (fstat(fd, &st) != 0)
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	if (fd >= 0)
		close(fd);
	if (e) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "ca_file %s: %s", path,
			    g_strerror(e));
		return FALSE;
	}
	return TRUE;
}

static void tls_drop(struct conn *c)
{
	g_clear_pointer(&c->ssl, SSL_free);
	g_clear_pointer(&c->ctx, SSL_CTX_free);
	c->tls_up = FALSE;
}

/* Everything up to the handshake. FALSE with *err set. */
static gboolean tls_setup(struct conn *c, const char *host, const struct conn_tls_opts *o,
			  GError **err)
{
	gboolean is_ip = g_hostname_is_ip_address(host);
	BIO *bio;

	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx)
		goto ssl_fail;
	if (!SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION))
		goto ssl_fail;
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(c->ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_clear_mode(c->ctx, SSL_MODE_AUTO_RETRY);
	/* Read what the socket has, up to TLS_READ_BUFFER, not one record
	   header and body at a time: a bulk fetch then costs a recv per
	   several records instead of two per record (servers often send
	   records far smaller than 16 KiB). Unprocessed records then wait in
	   OpenSSL's buffer, which conn_wait_readable asks (SSL_has_pending). */
	SSL_CTX_set_read_ahead(c->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(c->ctx, TLS_READ_BUFFER);
	if (!c->pin_set) {
		if (o && o->ca_file) {
			if (!conn_check_ca_file(o->ca_file, err))
				return FALSE;
			if (!SSL_CTX_load_verify_file(c->ctx, o->ca_file)) {
				gboolean not_pem = ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_X509 &&
						   ERR_GET_REASON(ERR_peek_error()) ==
							   X509_R_NO_CERTIFICATE_OR_CRL_FOUND;
				g_autofree char *why = ssl_reason();

				g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
					    "ca_file %s: %s%s", o->ca_file, why,
					    not_pem ? " (it must be a PEM file of CA certificates)"
						    : "");
				return FALSE;
			}
		} else if (!SSL_CTX_set_default_verify_paths(c->ctx)) {
			goto ssl_fail;
		}
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(c->ctx, verify_cert, c);

	c->ssl = SSL_new(c->ctx);
	if (!c->ssl)
		goto ssl_fail;
	if (!c->pin_set) {
		if (is_ip) {
			if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host))
				goto bad_host;
		} else {
			SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (!SSL_set1_host(c->ssl, host))
				goto bad_host;
		}
	}
	/* RFC 6066: SNI carries host names only, never an address literal. */
	/* SSL_set_tlsext_host_name() casts away const, which clang rejects. */
	if (!is_ip && !SSL_ctrl(c->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
				(void *)(uintptr_t)host))
		goto bad_host;
	bio = BIO_new(bio_method());
	if (!bio)
		goto ssl_fail;
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio);
	SSL_set_connect_state(c->ssl);
	return TRUE;

bad_host:
	ERR_clear_error();
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
		    "cannot check a TLS certificate against the host name '%s'", host);
	return FALSE;
ssl_fail : {
	g_autofree char *why = ssl_reason();

	g_set_error(err, G_TLS_ERROR, G_TLS_ERROR_HANDSHAKE, "cannot set up TLS: %s", why);
	return FALSE;
}
}

gboolean conn_start_tls(struct conn *c, const char *host, const struct conn_tls_opts *o,
			GError **err)
{
	gint64 deadline;

	if (c->ssl) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "connection to %s: TLS is already on", c->peer);
		return FALSE;
	}
	if (conn_buffered(c) > 0) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "%s sent data before the TLS handshake began; refusing it as "
			    "a possible response injection",
			    c->peer);
		return FALSE;
	}
	c->pin_set = FALSE;
	c->pin_mismatch = FALSE;
	g_clear_pointer(&c->seen_fp, g_free);
	g_clear_pointer(&c->seen_names, g_free);
	if (o && o->fingerprint && *o->fingerprint) {
		if (!conn_parse_fingerprint(o->fingerprint, c->pin, err))
			return FALSE;
		c->pin_set = TRUE;
	}
	ERR_clear_error();
	if (!tls_setup(c, host, o, err)) {
		tls_drop(c);
		return FALSE;
	}

	deadline = deadline_after(c->timeout_s);
	for (;;) {
		int r, e;

		ERR_clear_error();
		c->bio_errno = 0;
		r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			if (!wait_io(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline,
				     "TLS handshake", err)) {
				tls_drop(c);
				return FALSE;
			}
			continue;
		}
		set_handshake_error(c, host, e, err);
		tls_drop(c);
		return FALSE;
	}
	ERR_clear_error();
	c->tls_up = TRUE;
	return TRUE;
}

gboolean conn_is_tls(const struct conn *c)
{
	return c->tls_up;
}

char *conn_peer_fingerprint(const struct conn *c)
{
	X509 *x;

	if (!c->tls_up)
		return NULL;
	x = SSL_get0_peer_certificate(c->ssl);
	return x ? cert_fingerprint(x) : NULL;
}

/* ---- buffered input ---- */

gboolean conn_fill(struct conn *c, GError **err)
{
	gint64 deadline;

	if (g_atomic_int_get(&c->aborted)) {
		set_aborted(c, err);
		return FALSE;
	}
	if (c->start == c->end)
		c->start = c->end = 0;
	if (c->end == c->cap) {
		if (c->start > 0) {
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		} else if (c->cap < CONN_BUF_MAX) {
			c->cap = MIN(c->cap * 2, CONN_BUF_MAX);
			c->buf = g_realloc(c->buf, c->cap);
		} else {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
				    "connection to %s: receive buffer full (%zu bytes unconsumed)",
				    c->peer, CONN_BUF_MAX);
			return FALSE;
		}
	}

	deadline = deadline_after(c->timeout_s);
	for (;;) {
		short events = 0;
		gssize n = io_read(c, c->buf + c->end, c->cap - c->end, &events, err);

		if (n > 0) {
			c->end += (size_t)n;
			return TRUE;
		}
		if (n < 0)
			return FALSE;
		if (!wait_io(c, events, deadline, "waiting for data", err))
			return FALSE;
	}
}

/* Bytes of the greeting conn_await_greeting() gets before its first line ends. */
#define GREETING_PEEK ((size_t)8)

gboolean conn_await_greeting(struct conn *c, const char *tls_hint, GError **err)
{
	if (!c->tls_up && conn_buffered(c) == 0) {
		int wait_s = c->timeout_s > 0 ? MIN(c->timeout_s, CONN_GREETING_WAIT_S)
					      : CONN_GREETING_WAIT_S;
		int r = conn_wait_readable(c, wait_s * 1000, err);

		if (r < 0)
			return FALSE;
		if (r == 0) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
				    "%s sent no greeting within %d s; a port that expects TLS from "
				    "the first byte waits silently for the client: %s",
				    c->peer, wait_s, tls_hint);
			return FALSE;
		}
	}
	for (;;) {
		size_t n;
		const char *p = conn_peek(c, &n);

		if (n >= GREETING_PEEK || memchr(p, '\n', n))
			return TRUE;
		if (!conn_fill(c, err))
			return FALSE;
	}
}

const char *conn_peek(const struct conn *c, size_t *avail)
{
	*avail = c->end - c->start;
	return c->buf + c->start;
}

void conn_consume(struct conn *c, size_t n)
{
	g_return_if_fail(n <= c->end - c->start);
	c->start += n;
}

size_t conn_buffered(const struct conn *c)
{
	return c->end - c->start;
}

char *conn_read_line(struct conn *c, size_t max, size_t *len, GError **err)
{
	size_t scanned = 0;

	for (;;) {
		const char *p = c->buf + c->start;
		size_t avail = c->end - c->start;
		const char *nl = memchr(p + scanned, '\n', avail - scanned);

		if (nl) {
			size_t raw = (size_t)(nl - p);
			size_t l = raw > 0 && p[raw - 1] == '\r' ? raw - 1 : raw;
			char *line;

			if (l > max)
				goto too_long;
			line = g_malloc(l + 1);
			memcpy(line, p, l);
			line[l] = '\0';
			c->start += raw + 1;
			if (len)
				*len = l;
			return line;
		}
		scanned = avail;
		/* max bytes and a CR may still be followed by the LF. */
		if ((avail > max && avail - max > 1) || avail >= CONN_BUF_MAX)
			goto too_long;
		if (!conn_fill(c, err))
			return NULL;
	}
too_long:
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
		    "%s sent a line longer than %zu bytes", c->peer, max);
	return NULL;
}

/* ---- output ---- */

static gboolean write_buf(struct conn *c, const char *p, size_t len, GError **err)
{
	gint64 deadline = deadline_after(c->timeout_s);

	while (len > 0) {
		short events = 0;
		gssize n;

		if (g_atomic_int_get(&c->aborted)) {
			set_aborted(c, err);
			return FALSE;
		}
		n = io_write(c, p, len, &events, err);
		if (n < 0)
			return FALSE;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			deadline = deadline_after(c->timeout_s);
			continue;
		}
		if (!wait_io(c, events, deadline, "sending", err))
			return FALSE;
	}
	return TRUE;
}

gboolean conn_write_all(struct conn *c, const void *buf, size_t len, GError **err)
{
	return write_buf(c, buf, len, err);
}

/* Plain TCP: sendmsg() keeps the pieces in as few segments as possible. */
static gboolean writev_plain(struct conn *c, const struct iovec *iov, int iovcnt, GError **err)
{
	g_autofree struct iovec *v = g_memdup2(iov, sizeof(*iov) * (size_t)iovcnt);
	struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)iovcnt};
	gint64 deadline = deadline_after(c->timeout_s);

	while (m.msg_iovlen > 0) {
		ssize_t n;

		if (m.msg_iov->iov_len == 0) {
			m.msg_iov++;
			m.msg_iovlen--;
			continue;
		}
		if (g_atomic_int_get(&c->aborted)) {
			set_aborted(c, err);
			return FALSE;
		}
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_io(c, POLLOUT, deadline, "sending", err))
				return FALSE;
			continue;
		}
		if (n < 0) {
			set_errno(c, errno, err);
			return FALSE;
		}
		deadline = deadline_after(c->timeout_s);
		while (n > 0) {
			size_t take = MIN((size_t)n, m.msg_iov->iov_len);

			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + take;
			m.msg_iov->iov_len -= take;
			n -= (ssize_t)take;
			if (m.msg_iov->iov_len == 0) {
				m.msg_iov++;
				m.msg_iovlen--;
			}
		}
	}
	return TRUE;
}

gboolean conn_writev(struct conn *c, const struct iovec *iov, int iovcnt, GError **err)
{
	size_t total = 0;

	if (iovcnt <= 0)
		return TRUE;
	if (!c->ssl)
		return writev_plain(c, iov, iovcnt, err);
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total <= JOIN_MAX) {
		g_autofree char *joined = g_malloc(total ? total : 1);
		size_t off = 0;

		for (int i = 0; i < iovcnt; i++) {
			if (iov[i].iov_len)
				memcpy(joined + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		return write_buf(c, joined, total, err);
	}
	for (int i = 0; i < iovcnt; i++)
		if (!write_buf(c, iov[i].iov_base, iov[i].iov_len, err))
			return FALSE;
	return TRUE;
}

/* ---- the rest ---- */

void conn_set_timeout(struct conn *c, int timeout_s)
{
	c->timeout_s = timeout_s;
}

void conn_abort(struct conn *c)
{
	uint64_t one = 1;
	ssize_t r;

	g_atomic_int_set(&c->aborted, 1);
	r = write(c->abort_fd, &one, sizeof(one));
	(void)r; /* EAGAIN: the counter is already non-zero, poll() wakes anyway */
}

void conn_forget_cancel(struct conn *c)
{
	c->cancel = NULL;
}

const char *conn_peer_name(const struct conn *c)
{
	return c->peer;
}

void conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->ssl && c->tls_up && !c->tls_broken && !g_atomic_int_get(&c->aborted)) {
		/* One try: the socket is non-blocking, so this never waits. */
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	tls_drop(c);
	close(c->fd);
	close(c->abort_fd);
	g_free(c->seen_fp);
	g_free(c->seen_names);
	g_free(c->peer);
	g_free(c->buf);
	g_free(c);
}

int conn_wait_readable(struct conn *c, int timeout_ms, GError **err)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	if (g_atomic_int_get(&c->aborted)) {
		set_aborted(c, err);
		return -1;
	}
	if (c->end > c->start || (c->ssl && SSL_has_pending(c->ssl)))
		return 1;
	for (;;) {
		struct pollfd p[4] = {
		    {.fd = c->fd, .events = POLLIN},
		    {.fd = c->abort_fd, .events = POLLIN},
		    {.fd = cancel_fd(c->cancel), .events = POLLIN},
		    {.fd = parent_fd(c->cancel), .events = POLLIN},
		};
		gint64 left = deadline - g_get_monotonic_time();
		int r;

		if (left <= 0)
			return 0;
		r = poll(p, 4, (int)MIN((left + 999) / 1000, G_MAXINT));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			set_errno(c, errno, err);
			return -1;
		}
		if (p[1].revents || p[2].revents || p[3].revents) {
			set_aborted(c, err);
			return -1;
		}
		if (p[0].revents)
			return 1;
	}
}
