/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conn against a real server: a thread on 127.0.0.1 speaking plain TCP or
 * TLS (OpenSSL), with a CA, a leaf for localhost/127.0.0.1 and a second,
 * unrelated CA, all generated here into a temporary directory.
 *
 * SIGPIPE keeps its default action in the test's main thread (the server
 * threads block it), so a client write that raised it would kill the test.
 */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *tmpdir;
static char *ca_path;	    /* the CA that signed the leaf */
static char *other_ca_path; /* a CA that signed nothing we see */
static char *leaf_fp;	    /* "AB:CD:..." */
static SSL_CTX *srv_ctx;

/* ---- certificates ---- */

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	g_assert_nonnull(e);
	g_assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       const char *san)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	X509V3_CTX v3;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	if (san) {
		add_ext(x, &v3, NID_basic_constraints, "CA:FALSE");
		add_ext(x, &v3, NID_ext_key_usage, "serverAuth");
		add_ext(x, &v3, NID_subject_alt_name, san);
	} else {
		add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	add_ext(x, &v3, NID_subject_key_identifier, "hash");
	g_assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static char *write_pem(const char *name, X509 *x)
{
	char *path = g_build_filename(tmpdir, name, NULL);
	FILE *f = fopen(path, "w");

	g_assert_nonnull(f);
	g_assert_true(PEM_write_X509(f, x));
	fclose(f);
	return path;
}

static void make_pki(void)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	EVP_PKEY *other_key = EVP_EC_gen("P-256");
	EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
	X509 *ca = make_cert(ca_key, "mailfs test CA", NULL, NULL, NULL);
	X509 *other = make_cert(other_key, "mailfs other CA", NULL, NULL, NULL);
	X509 *leaf = make_cert(leaf_key, "localhost", ca, ca_key, "DNS:localhost,IP:127.0.0.1");
	guint8 md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	GString *fp = g_string_new(NULL);

	tmpdir = g_dir_make_tmp("mailfs-test-conn-XXXXXX", NULL);
	g_assert_nonnull(tmpdir);
	ca_path = write_pem("ca.pem", ca);
	other_ca_path = write_pem("other-ca.pem", other);

	g_assert_true(X509_digest(leaf, EVP_sha256(), md, &mdlen));
	for (unsigned i = 0; i < mdlen; i++)
		g_string_append_printf(fp, i ? ":%02X" : "%02X", md[i]);
	leaf_fp = g_string_free(fp, FALSE);

	srv_ctx = SSL_CTX_new(TLS_server_method());
	g_assert_true(SSL_CTX_use_certificate(srv_ctx, leaf));
	g_assert_true(SSL_CTX_use_PrivateKey(srv_ctx, leaf_key));
	/* Like most servers it does not send the root: the client must have it. */

	X509_free(ca);
	X509_free(other);
	X509_free(leaf);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(leaf_key);
}

static void cleanup_pki(void)
{
	g_unlink(ca_path);
	g_unlink(other_ca_path);
	g_rmdir(tmpdir);
	g_free(ca_path);
	g_free(other_ca_path);
	g_free(tmpdir);
	g_free(leaf_fp);
	SSL_CTX_free(srv_ctx);
}

/* ---- the server ---- */

enum srv_mode {
	SRV_TLS,	 /* TLS, "* OK hello", then "got N" for each line received */
	SRV_STARTTLS,	 /* "OK begin TLS" in plain, then as SRV_TLS */
	SRV_INJECT,	 /* "OK begin TLS" and an injected line in one packet */
	SRV_PLAIN_GREET, /* a plain-text greeting, as on a non-TLS port */
	SRV_PLAIN_SINK,	 /* plain: "got N" for each line received */
	SRV_SILENT,	 /* accepts, never sends */
	SRV_TRICKLE,	 /* two lines, one byte at a time */
	SRV_LONG,	 /* a 100-byte line, then a 50-byte one */
	SRV_FLOOD,	 /* 300 KiB without a line end */
	SRV_CLOSE,	 /* accepts and closes */
	SRV_TLS_CLOSE,	 /* TLS handshake, then closes without close_notify */
};

struct server {
	int lfd;
	char port[16];
	enum srv_mode mode;
	GThread *thread;
};

static void srv_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Until the client closes (or 5 s pass: a broken test must not hang). */
static void srv_wait_close(int fd)
{
	char buf[4096];
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (poll(&p, 1, 5000) > 0 && recv(fd, buf, sizeof(buf), 0) > 0)
		;
}

static void srv_tls(int fd)
{
	SSL *ssl = SSL_new(srv_ctx);
	char buf[16384];
	size_t count = 0;
	int n;

	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1)
		goto out;
	SSL_write(ssl, "* OK hello\r\n", 12);
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
		for (int i = 0; i < n; i++) {
			count++;
			if (buf[i] == '\n') {
				char reply[64];
				int l = g_snprintf(reply, sizeof(reply), "got %zu\r\n", count);

				SSL_write(ssl, reply, l);
				count = 0;
			}
		}
	}
out:
	SSL_free(ssl);
	ERR_clear_error();
}

static void srv_plain_sink(int fd)
{
	char buf[16384];
	size_t count = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			count++;
			if (buf[i] == '\n') {
				char reply[64];
				int l = g_snprintf(reply, sizeof(reply), "got %zu\r\n", count);

				srv_send(fd, reply, (size_t)l);
				count = 0;
			}
		}
	}
}

static gpointer server_main(gpointer data)
{
	struct server *s = data;
	struct pollfd p = {.fd = s->lfd, .events = POLLIN};
	sigset_t pipe;
	int fd;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);

	if (poll(&p, 1, 5000) != 1)
		return NULL;
	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;

	switch (s->mode) {
	case SRV_TLS:
		srv_tls(fd);
		break;
	case SRV_STARTTLS:
		srv_send(fd, "OK begin TLS\r\n", 14);
		srv_tls(fd);
		break;
	case SRV_INJECT:
		srv_send(fd, "OK begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n", 50);
		srv_wait_close(fd);
		break;
	case SRV_PLAIN_GREET:
		srv_send(fd, "* OK IMAP4rev1 server ready, no TLS here\r\n", 42);
		srv_wait_close(fd);
		break;
	case SRV_PLAIN_SINK:
		srv_plain_sink(fd);
		break;
	case SRV_SILENT:
		srv_wait_close(fd);
		break;
	case SRV_TRICKLE: {
		const char *text = "hello world\r\nsecond\n";

		for (const char *c = text; *c; c++) {
			srv_send(fd, c, 1);
			g_usleep(2000);
		}
		srv_wait_close(fd);
		break;
	}
	case SRV_LONG: {
		char line[256];

		memset(line, 'x', 100);
		memcpy(line + 100, "\r\n", 2);
		memset(line + 102, 'y', 50);
		memcpy(line + 152, "\r\n", 2);
		srv_send(fd, line, 154);
		srv_wait_close(fd);
		break;
	}
	case SRV_FLOOD: {
		char *big = g_malloc(300 * 1024);

		memset(big, 'z', 300 * 1024);
		srv_send(fd, big, 300 * 1024);
		g_free(big);
		srv_wait_close(fd);
		break;
	}
	case SRV_CLOSE:
		break;
	case SRV_TLS_CLOSE: {
		SSL *ssl = SSL_new(srv_ctx);

		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1)
			SSL_write(ssl, "* OK hello\r\n", 12);
		/* No SSL_shutdown: the connection just drops. */
		SSL_free(ssl);
		ERR_clear_error();
		break;
	}
	}
	close(fd);
	return NULL;
}

static struct server *server_start(enum srv_mode mode)
{
	struct server *s = g_new0(struct server, 1);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	s->mode = mode;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(s->lfd, >=, 0);
	g_assert_cmpint(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
	g_assert_cmpint(listen(s->lfd, 4), ==, 0);
	g_assert_cmpint(getsockname(s->lfd, (struct sockaddr *)&a, &alen), ==, 0);
	g_snprintf(s->port, sizeof(s->port), "%u", ntohs(a.sin_port));
	s->thread = g_thread_new("test-server", server_main, s);
	return s;
}

/* Wait for the server thread to finish (it ends when its connection does). */
static void server_join(struct server *s)
{
	if (s->thread)
		g_thread_join(s->thread);
	s->thread = NULL;
}

static void server_stop(struct server *s)
{
	server_join(s);
	close(s->lfd);
	g_free(s);
}

/* ---- helpers ---- */

static struct conn *connect_ok(struct server *s, const char *host, int timeout_s)
{
	GError *err = NULL;
	struct conn *c = conn_connect(host, s->port, timeout_s, NULL, &err);

	g_assert_no_error(err);
	g_assert_nonnull(c);
	return c;
}

static char *line_ok(struct conn *c)
{
	GError *err = NULL;
	size_t len = 0;
	char *line = conn_read_line(c, 1000, &len, &err);

	g_assert_no_error(err);
	g_assert_cmpuint(strlen(line), ==, len);
	return line;
}

/* connect to the TLS server as host (via 127.0.0.1 unless host is localhost) */
static GError *try_tls(const char *host, const char *ca, const char *pin)
{
	struct server *s = server_start(SRV_TLS);
	const char *addr = strcmp(host, "localhost") == 0 ? "localhost" : "127.0.0.1";
	struct conn *c = connect_ok(s, addr, 5);
	struct conn_tls_opts o = {.ca_file = ca, .fingerprint = pin};
	GError *err = NULL;

	if (conn_start_tls(c, host, &o, &err)) {
		g_autofree char *greet = line_ok(c);

		g_assert_cmpstr(greet, ==, "* OK hello");
		g_assert_true(conn_is_tls(c));
	} else {
		g_assert_false(conn_is_tls(c));
		g_assert_null(conn_peer_fingerprint(c));
	}
	conn_free(c);
	server_stop(s);
	return err;
}

static void assert_refused_with_hint(GError *err, const char *reason)
{
	g_autofree char *hint = g_strdup_printf("tls_fingerprint=%s", leaf_fp);

	g_test_message("%s", err->message);
	g_assert_error(err, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
	if (!strstr(err->message, reason) || !strstr(err->message, hint))
		g_error("unexpected message: %s", err->message);
}

/* ---- TLS ---- */

static void test_tls_ok(void)
{
	struct server *s = server_start(SRV_TLS);
	struct conn *c = connect_ok(s, "localhost", 5);
	struct conn_tls_opts o = {.ca_file = ca_path};
	GError *err = NULL;
	g_autofree char *greet = NULL;
	g_autofree char *got = NULL;
	g_autofree char *got2 = NULL;
	g_autofree char *fp = NULL;
	char cmd[] = "A1 APPEND INBOX {5}\r\n", lit[] = "12345\r\n";
	struct iovec iov[2] = {
	    {.iov_base = cmd, .iov_len = 21},
	    {.iov_base = lit, .iov_len = 7},
	};

	g_assert_false(conn_is_tls(c));
	g_assert_null(conn_peer_fingerprint(c));
	g_assert_true(conn_start_tls(c, "localhost", &o, &err));
	g_assert_no_error(err);
	g_assert_true(conn_is_tls(c));
	fp = conn_peer_fingerprint(c);
	g_assert_cmpstr(fp, ==, leaf_fp);
	g_assert_cmpuint(ERR_peek_error(), ==, 0);

	greet = line_ok(c);
	g_assert_cmpstr(greet, ==, "* OK hello");
	g_assert_true(conn_write_all(c, "abc\n", 4, &err));
	got = line_ok(c);
	g_assert_cmpstr(got, ==, "got 4");
	/* Two lines in one write: two replies. */
	g_assert_true(conn_writev(c, iov, 2, &err));
	g_assert_no_error(err);
	g_free(got);
	got = line_ok(c);
	got2 = line_ok(c);
	g_assert_cmpstr(got, ==, "got 21");
	g_assert_cmpstr(got2, ==, "got 7");
	g_assert_cmpuint(conn_buffered(c), ==, 0);
	conn_free(c);
	server_stop(s);
}

/* 1 MiB through TLS: partial writes, several records, buffer reuse. */
static void test_tls_bulk(void)
{
	struct server *s = server_start(SRV_TLS);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	struct conn_tls_opts o = {.ca_file = ca_path};
	size_t big = 1024 * 1024;
	g_autofree char *data = g_malloc(big);
	g_autofree char *greet = NULL;
	g_autofree char *got = NULL;
	g_autofree char *want = g_strdup_printf("got %zu", big);
	GError *err = NULL;

	memset(data, 'q', big);
	data[big - 1] = '\n';
	g_assert_true(conn_start_tls(c, "127.0.0.1", &o, &err));
	greet = line_ok(c);
	g_assert_true(conn_write_all(c, data, big, &err));
	g_assert_no_error(err);
	got = line_ok(c);
	g_assert_cmpstr(got, ==, want);
	conn_free(c);
	server_stop(s);
}

static void test_tls_wrong_ca(void)
{
	GError *err = try_tls("localhost", other_ca_path, NULL);

	assert_refused_with_hint(err, "certificate verify failed: unable to get local issuer "
				      "certificate");
	g_assert_cmpuint(ERR_peek_error(), ==, 0);
	g_error_free(err);
}

static void test_tls_system_store(void)
{
	GError *err = try_tls("localhost", NULL, NULL);

	assert_refused_with_hint(err, "certificate verify failed");
	g_error_free(err);
}

static void test_tls_name_mismatch(void)
{
	GError *err = try_tls("wronghost", ca_path, NULL);

	assert_refused_with_hint(err, "hostname mismatch");
	g_assert_nonnull(strstr(err->message, "localhost, 127.0.0.1"));
	g_error_free(err);
}

static void test_tls_ip(void)
{
	GError *err = try_tls("127.0.0.1", ca_path, NULL);

	g_assert_no_error(err);
	err = try_tls("127.0.0.2", ca_path, NULL);
	assert_refused_with_hint(err, "IP address mismatch");
	g_error_free(err);
}

static void test_tls_pin(void)
{
	g_autofree char *lower = g_ascii_strdown(leaf_fp, -1);
	g_auto(GStrv) parts = g_strsplit(lower, ":", -1);
	g_autofree char *plain = g_strjoinv("", parts);
	GError *err;

	/* Untrusted chain, wrong name: the pin alone decides. */
	err = try_tls("wronghost", other_ca_path, leaf_fp);
	g_assert_no_error(err);
	err = try_tls("localhost", NULL, plain);
	g_assert_no_error(err);
	err = try_tls("localhost", NULL, lower);
	g_assert_no_error(err);
}

static void test_tls_pin_wrong(void)
{
	const char *zero = "00000000000000000000000000000000"
			   "00000000000000000000000000000000";
	/* Even a certificate that would pass the chain check. */
	GError *err = try_tls("localhost", ca_path, zero);

	assert_refused_with_hint(err, "does not match tls_fingerprint");
	g_error_free(err);
}

static void test_fingerprint_parse(void)
{
	static const struct {
		const char *text;
		gboolean ok;
	} cases[] = {
	    {"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", TRUE},
	    {"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
	     "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
	     TRUE},
	    {"  00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", TRUE},
	    {"", FALSE},
	    {"abc", FALSE},
	    {"00112233445566778899aabbccddeeff00112233445566778899aabbccddeef", FALSE},
	    {"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00", FALSE},
	    {"g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", FALSE},
	    {"SHA256:00112233445566778899aabbccddeeff00112233445566778899aabbccddee", FALSE},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint8 md[32];
		GError *err = NULL;
		gboolean ok = conn_parse_fingerprint(cases[i].text, md, &err);

		g_assert_cmpint(ok, ==, cases[i].ok);
		if (ok) {
			g_assert_no_error(err);
			g_assert_cmphex(md[0], ==, 0x00);
			g_assert_cmphex(md[10], ==, 0xaa);
			g_assert_cmphex(md[31], ==, 0xff);
		} else {
			g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
			g_error_free(err);
		}
	}
}

static void test_tls_pin_malformed(void)
{
	struct server *s = server_start(SRV_SILENT);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	struct conn_tls_opts o = {.fingerprint = "AB:CD"};
	GError *err = NULL;

	g_assert_false(conn_start_tls(c, "127.0.0.1", &o, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_error_free(err);
	conn_free(c);
	server_stop(s);
}

static void test_tls_bad_ca_file(void)
{
	struct server *s = server_start(SRV_SILENT);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	g_autofree char *missing = g_build_filename(tmpdir, "missing.pem", NULL);
	struct conn_tls_opts o = {.ca_file = missing};
	GError *err = NULL;

	g_assert_false(conn_start_tls(c, "127.0.0.1", &o, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_assert_nonnull(strstr(err->message, "missing.pem: No such file or directory"));
	g_assert_cmpuint(ERR_peek_error(), ==, 0);
	g_clear_error(&err);
	/* A directory, and a file that is no PEM: named, with what is wrong. */
	o.ca_file = tmpdir;
	g_assert_false(conn_check_ca_file(tmpdir, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_assert_nonnull(strstr(err->message, "Is a directory"));
	g_clear_error(&err);
	{
		g_autofree char *text = g_build_filename(tmpdir, "not-pem.txt", NULL);

		g_assert_true(g_file_set_contents(text, "no certificate\n", -1, NULL));
		o.ca_file = text;
		g_assert_false(conn_start_tls(c, "127.0.0.1", &o, &err));
		g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
		g_assert_nonnull(strstr(err->message, "not-pem.txt: "));
		g_assert_nonnull(strstr(err->message, "PEM"));
		g_assert_cmpuint(ERR_peek_error(), ==, 0);
		g_clear_error(&err);
		g_unlink(text);
	}
	conn_free(c);
	server_stop(s);
}

/* ---- the greeting ---- */

/* A port that expects TLS from the first byte says nothing: the wait is short. */
static void test_greeting_silent(void)
{
	struct server *s = server_start(SRV_SILENT);
	struct conn *c = connect_ok(s, "127.0.0.1", 1);
	GError *err = NULL;

	g_assert_false(conn_await_greeting(c, "use the TLS scheme", &err));
	g_test_message("%s", err->message);
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_nonnull(strstr(err->message, "sent no greeting within 1 s"));
	g_assert_true(g_str_has_suffix(err->message, ": use the TLS scheme"));
	g_error_free(err);
	conn_free(c);
	server_stop(s);
}

/* The greeting's start is buffered for a peek, byte by byte if it comes so. */
static void test_greeting_peek(void)
{
	static const enum srv_mode modes[] = { SRV_PLAIN_GREET, SRV_TRICKLE };

	for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
		struct server *s = server_start(modes[i]);
		struct conn *c = connect_ok(s, "127.0.0.1", 5);
		GError *err = NULL;
		size_t n;
		const char *p;

		g_assert_true(conn_await_greeting(c, "hint", &err));
		g_assert_no_error(err);
		p = conn_peek(c, &n);
		g_assert_cmpuint(n, >=, 8);
		g_assert_cmpmem(p, 8, i == 0 ? "* OK IMA" : "hello wo", 8);
		conn_free(c);
		server_stop(s);
	}
}

static void test_starttls(void)
{
	struct server *s = server_start(SRV_STARTTLS);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	struct conn_tls_opts o = {.ca_file = ca_path};
	g_autofree char *ok = line_ok(c);
	g_autofree char *greet = NULL;
	GError *err = NULL;

	g_assert_cmpstr(ok, ==, "OK begin TLS");
	g_assert_cmpuint(conn_buffered(c), ==, 0);
	g_assert_true(conn_start_tls(c, "localhost", &o, &err));
	g_assert_no_error(err);
	greet = line_ok(c);
	g_assert_cmpstr(greet, ==, "* OK hello");
	conn_free(c);
	server_stop(s);
}

static void test_starttls_injection(void)
{
	struct server *s = server_start(SRV_INJECT);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	struct conn_tls_opts o = {.ca_file = ca_path};
	g_autofree char *ok = NULL;
	GError *err = NULL;

	/* Wait until both lines are here, as they would be for an attacker. */
	while (conn_buffered(c) < 50)
		g_assert_true(conn_fill(c, &err));
	ok = line_ok(c);
	g_assert_cmpstr(ok, ==, "OK begin TLS");
	g_assert_cmpuint(conn_buffered(c), >, 0);
	g_assert_false(conn_start_tls(c, "localhost", &o, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_test_message("%s", err->message);
	g_assert_nonnull(strstr(err->message, "injection"));
	g_error_free(err);
	conn_free(c);
	server_stop(s);
}

static void test_tls_to_plain_port(void)
{
	struct server *s = server_start(SRV_PLAIN_GREET);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	struct conn_tls_opts o = {.ca_file = ca_path};
	GError *err = NULL;

	g_assert_false(conn_start_tls(c, "localhost", &o, &err));
	g_test_message("%s", err->message);
	g_assert_error(err, G_TLS_ERROR, G_TLS_ERROR_HANDSHAKE);
	g_assert_nonnull(strstr(err->message, "TLS handshake with 127.0.0.1:"));
	g_assert_cmpuint(ERR_peek_error(), ==, 0);
	g_error_free(err);
	conn_free(c);
	server_stop(s);
}

/* ---- waiting, closing ---- */

static void test_read_timeout(void)
{
	struct server *s = server_start(SRV_SILENT);
	struct conn *c = connect_ok(s, "127.0.0.1", 1);
	GError *err = NULL;
	gint64 t0 = g_get_monotonic_time();
	gint64 took;

	g_assert_false(conn_fill(c, &err));
	took = g_get_monotonic_time() - t0;
	g_test_message("%s", err->message);
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	g_assert_cmpint(took, >=, 900 * 1000);
	g_assert_cmpint(took, <, 2500 * 1000);
	g_error_free(err);
	conn_free(c);
	server_stop(s);
}

static gpointer abort_later(gpointer data)
{
	g_usleep(100 * 1000);
	conn_abort(data);
	return NULL;
}

static void test_abort(void)
{
	struct server *s = server_start(SRV_SILENT);
	struct conn *c = connect_ok(s, "127.0.0.1", 20);
	GThread *t = g_thread_new("abort", abort_later, c);
	GError *err = NULL;
	gint64 t0 = g_get_monotonic_time();

	g_assert_false(conn_fill(c, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 1500 * 1000);
	g_clear_error(&err);
	g_thread_join(t);
	/* Sticky: every later wait fails at once. */
	g_assert_false(conn_fill(c, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_clear_error(&err);
	g_assert_false(conn_write_all(c, "x", 1, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_clear_error(&err);
	conn_free(c);
	server_stop(s);
}

static gpointer fire_later(gpointer data)
{
	g_usleep(100 * 1000);
	conn_cancel_fire(data);
	return NULL;
}

/* The switch abandons a TLS handshake the server never answers, and later
   connects made with it; a conn that forgot it is not touched. */
static void test_cancel_connect(void)
{
	struct server *s = server_start(SRV_SILENT);
	struct server *s2 = server_start(SRV_SILENT);
	struct conn_cancel *k = conn_cancel_new();
	struct conn_cancel *k2 = conn_cancel_new();
	struct conn *c = conn_connect("127.0.0.1", s->port, 20, k, NULL);
	struct conn *c2 = conn_connect("127.0.0.1", s2->port, 20, k2, NULL);
	GThread *t = g_thread_new("fire", fire_later, k);
	GError *err = NULL;
	gint64 t0 = g_get_monotonic_time();

	g_assert_nonnull(c);
	g_assert_nonnull(c2);
	g_assert_false(conn_start_tls(c, "127.0.0.1", NULL, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_USEC_PER_SEC);
	g_clear_error(&err);
	g_thread_join(t);
	g_assert_true(conn_cancel_fired(k));
	g_assert_null(conn_connect("127.0.0.1", s->port, 20, k, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
	g_clear_error(&err);

	conn_forget_cancel(c2);
	conn_cancel_fire(k2);
	g_assert_cmpint(conn_wait_readable(c2, 100, &err), ==, 0);
	g_assert_no_error(err);
	conn_free(c);
	conn_free(c2);
	conn_cancel_free(k);
	conn_cancel_free(k2);
	server_stop(s);
	server_stop(s2);
}

static void test_eof(gconstpointer data)
{
	gboolean tls = GPOINTER_TO_INT(data);
	struct server *s = server_start(tls ? SRV_TLS_CLOSE : SRV_CLOSE);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	struct conn_tls_opts o = {.ca_file = ca_path};
	GError *err = NULL;

	if (tls) {
		g_autofree char *greet = NULL;

		g_assert_true(conn_start_tls(c, "127.0.0.1", &o, &err));
		greet = line_ok(c);
	}
	g_assert_false(conn_fill(c, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
	g_assert_cmpuint(ERR_peek_error(), ==, 0);
	g_clear_error(&err);
	conn_free(c);
	server_stop(s);
}

/* Writing to a closed connection is an error, never SIGPIPE. */
static void test_write_closed(gconstpointer data)
{
	gboolean tls = GPOINTER_TO_INT(data);
	struct server *s = server_start(tls ? SRV_TLS_CLOSE : SRV_CLOSE);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	struct conn_tls_opts o = {.ca_file = ca_path};
	GError *err = NULL;
	char chunk[4096];
	int i;

	memset(chunk, 'w', sizeof(chunk));
	if (tls) {
		g_autofree char *greet = NULL;

		g_assert_true(conn_start_tls(c, "127.0.0.1", &o, &err));
		greet = line_ok(c);
	}
	server_join(s); /* the server has closed its end */
	for (i = 0; i < 200; i++) {
		if (!conn_write_all(c, chunk, sizeof(chunk), &err))
			break;
		g_usleep(1000);
	}
	g_assert_cmpint(i, <, 200);
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
	g_clear_error(&err);
	conn_free(c);
	server_stop(s);
}

static void test_buffer_full(void)
{
	struct server *s = server_start(SRV_FLOOD);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	GError *err = NULL;

	while (conn_fill(c, &err))
		;
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
	g_assert_cmpuint(conn_buffered(c), ==, CONN_BUF_MAX);
	g_clear_error(&err);
	/* Consuming makes room again. */
	conn_consume(c, 1000);
	g_assert_true(conn_fill(c, &err));
	g_assert_no_error(err);
	conn_free(c);
	server_stop(s);
}

/* ---- lines ---- */

static void test_line_too_long(void)
{
	struct server *s = server_start(SRV_LONG);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	GError *err = NULL;
	size_t len = 0;
	char *line;

	line = conn_read_line(c, 50, &len, &err);
	g_assert_null(line);
	g_test_message("%s", err->message);
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
	g_clear_error(&err);
	/* Nothing was consumed: with a larger limit the line is there. */
	line = conn_read_line(c, 100, &len, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(len, ==, 100);
	g_free(line);
	/* Exactly max bytes is fine. */
	line = conn_read_line(c, 50, &len, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(len, ==, 50);
	g_assert_cmpint(line[0], ==, 'y');
	g_free(line);
	conn_free(c);
	server_stop(s);
}

static void test_line_trickle(void)
{
	struct server *s = server_start(SRV_TRICKLE);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	g_autofree char *a = line_ok(c);
	g_autofree char *b = line_ok(c);

	g_assert_cmpstr(a, ==, "hello world");
	g_assert_cmpstr(b, ==, "second");
	conn_free(c);
	server_stop(s);
}

static void test_plain_writev(void)
{
	struct server *s = server_start(SRV_PLAIN_SINK);
	struct conn *c = connect_ok(s, "127.0.0.1", 5);
	char a[] = "abc", empty[] = "", b[] = "de\n";
	struct iovec iov[3] = {
	    {.iov_base = a, .iov_len = 3},
	    {.iov_base = empty, .iov_len = 0},
	    {.iov_base = b, .iov_len = 3},
	};
	GError *err = NULL;
	g_autofree char *got = NULL;

	g_assert_true(conn_writev(c, iov, 3, &err));
	g_assert_no_error(err);
	got = line_ok(c);
	g_assert_cmpstr(got, ==, "got 6");
	conn_free(c);
	server_stop(s);
}

/* ---- connecting ---- */

static void test_refused(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char port[16];
	GError *err = NULL;

	/* A port that was free a moment ago and has no listener. */
	g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &alen), ==, 0);
	g_snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
	close(fd);

	g_assert_null(conn_connect("127.0.0.1", port, 5, NULL, &err));
	g_test_message("%s", err->message);
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
	g_assert_nonnull(strstr(err->message, "cannot connect to 127.0.0.1 port"));
	g_assert_nonnull(strstr(err->message, "refused"));
	g_error_free(err);
}

static void test_unresolvable(void)
{
	GError *err = NULL;

	/* RFC 2606: .invalid never resolves. Offline, the lookup may time out. */
	g_assert_null(conn_connect("no-such-host.invalid", "993", 2, NULL, &err));
	g_assert_nonnull(err);
	g_assert_true(g_error_matches(err, G_IO_ERROR, G_IO_ERROR_HOST_NOT_FOUND) ||
		      g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
	g_test_message("%s", err->message);
	g_assert_nonnull(strstr(err->message, "no-such-host.invalid"));
	g_error_free(err);
}

int main(int argc, char **argv)
{
	int rc;

	g_test_init(&argc, &argv, NULL);
	make_pki();
	g_test_add_func("/conn/tls/ok", test_tls_ok);
	g_test_add_func("/conn/cancel-connect", test_cancel_connect);
	g_test_add_func("/conn/tls/bulk", test_tls_bulk);
	g_test_add_func("/conn/tls/wrong-ca", test_tls_wrong_ca);
	g_test_add_func("/conn/tls/system-store", test_tls_system_store);
	g_test_add_func("/conn/tls/name-mismatch", test_tls_name_mismatch);
	g_test_add_func("/conn/tls/ip", test_tls_ip);
	g_test_add_func("/conn/tls/pin", test_tls_pin);
	g_test_add_func("/conn/tls/pin-wrong", test_tls_pin_wrong);
	g_test_add_func("/conn/tls/pin-malformed", test_tls_pin_malformed);
	g_test_add_func("/conn/tls/bad-ca-file", test_tls_bad_ca_file);
	g_test_add_func("/conn/tls/plain-port", test_tls_to_plain_port);
	g_test_add_func("/conn/greeting/silent", test_greeting_silent);
	g_test_add_func("/conn/greeting/peek", test_greeting_peek);
	g_test_add_func("/conn/fingerprint-parse", test_fingerprint_parse);
	g_test_add_func("/conn/starttls/ok", test_starttls);
	g_test_add_func("/conn/starttls/injection", test_starttls_injection);
	g_test_add_func("/conn/read-timeout", test_read_timeout);
	g_test_add_func("/conn/abort", test_abort);
	g_test_add_data_func("/conn/eof/plain", GINT_TO_POINTER(0), test_eof);
	g_test_add_data_func("/conn/eof/tls", GINT_TO_POINTER(1), test_eof);
	g_test_add_data_func("/conn/write-closed/plain", GINT_TO_POINTER(0), test_write_closed);
	g_test_add_data_func("/conn/write-closed/tls", GINT_TO_POINTER(1), test_write_closed);
	g_test_add_func("/conn/buffer-full", test_buffer_full);
	g_test_add_func("/conn/line/too-long", test_line_too_long);
	g_test_add_func("/conn/line/trickle", test_line_trickle);
	g_test_add_func("/conn/plain-writev", test_plain_writev);
	g_test_add_func("/conn/connect/refused", test_refused);
	g_test_add_func("/conn/connect/unresolvable", test_unresolvable);
	rc = g_test_run();
	cleanup_pki();
	return rc;
}
