/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pop3_probe: drive the POP3 client core from the command line, for the
 * integration tests (no FUSE involved).
 *
 *   pop3_probe [--tls implicit|starttls|none] [--ca FILE] [--fingerprint HEX]
 *              [--password-file F] [--timeout S] [--auth best|user|plain|xoauth2]
 *              [--oauth] [--trace] HOST PORT USER COMMAND [ARGS]
 * COMMAND (each ends with QUIT):
 *   login            connect and log in, print "caps" and the CAPA flags by name,
 *                    and "login-delay S" when the server states one
 *   list             print "N UIDL SIZE" for every message (UIDL + LIST)
 *   retr N OUTFILE   RETR N streamed into OUTFILE; prints "size BYTES"
 *   top N            TOP N 0; the headers to stdout
 *   tops             pipelined TOP n 0 for every message; "N BYTES" per message
 *   dele N [N...]    DELE each (pipelined when offered), then QUIT
 * The QUIT's outcome is printed as "quit ok", "quit unconfirmed" or "quit error".
 * Exit 0 on success; otherwise one line on stderr and exit 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pop3.h"
#include "transport/secret.h"
#include "util/log.h"

static char *password_file;

static char *get_secret(void *ud, gboolean oauth, GError **err)
{
	(void)ud;
	(void)oauth;
	if (!password_file) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "no --password-file");
		return NULL;
	}
	return secret_from_file(password_file, err);
}

static int file_sink(void *ud, const void *data, size_t len)
{
	FILE *f = ud;

	return fwrite(data, 1, len, f) == len ? 0 : -EIO;
}

static gboolean parse_num(const char *s, guint32 *out)
{
	guint64 v;

	if (!g_ascii_string_to_unsigned(s, 10, 1, G_MAXUINT32, &v, NULL))
		return FALSE;
	*out = (guint32)v;
	return TRUE;
}

static void print_caps(guint32 caps)
{
	static const struct {
		guint32 bit;
		const char *name;
	} names[] = {
		{ POP3_CAP_TOP, "TOP" },
		{ POP3_CAP_USER, "USER" },
		{ POP3_CAP_UIDL, "UIDL" },
		{ POP3_CAP_STLS, "STLS" },
		{ POP3_CAP_PIPELINING, "PIPELINING" },
		{ POP3_CAP_RESP_CODES, "RESP-CODES" },
		{ POP3_CAP_AUTH_RESP_CODE, "AUTH-RESP-CODE" },
		{ POP3_CAP_LOGIN_DELAY, "LOGIN-DELAY" },
		{ POP3_CAP_SASL_PLAIN, "SASL-PLAIN" },
		{ POP3_CAP_SASL_LOGIN, "SASL-LOGIN" },
		{ POP3_CAP_SASL_XOAUTH2, "SASL-XOAUTH2" },
		{ POP3_CAP_SASL_OAUTHBEARER, "SASL-OAUTHBEARER" },
		{ POP3_CAP_CAPA, "CAPA" },
	};

	printf("caps");
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		if (caps & names[i].bit)
			printf(" %s", names[i].name);
	printf("\n");
}

static void print_top(void *ud, guint32 num, int rc, const GByteArray *headers)
{
	(void)ud;
	if (rc < 0)
		printf("%u error %d\n", num, -rc);
	else
		printf("%u %u\n", num, headers->len);
}

static int run(struct pop3_session *s, int argc, char **argv, GError **err)
{
	const char *cmd = argv[0];

	if (strcmp(cmd, "login") == 0) {
		print_caps(pop3_session_caps(s));
		if (pop3_session_login_delay(s))
			printf("login-delay %u\n", pop3_session_login_delay(s));
		return 0;
	}
	if (strcmp(cmd, "list") == 0 || strcmp(cmd, "tops") == 0) {
		g_autoptr(GArray) msgs = pop3_list_all(s, err);

		if (!msgs)
			return 1;
		if (strcmp(cmd, "tops") == 0) {
			g_autofree guint32 *nums = g_new0(guint32, msgs->len + 1);

			for (guint i = 0; i < msgs->len; i++)
				nums[i] = g_array_index(msgs, struct pop3_msg, i).num;
			return pop3_top_many(s, nums, msgs->len, print_top, NULL, err) < 0;
		}
		for (guint i = 0; i < msgs->len; i++) {
			struct pop3_msg *m = &g_array_index(msgs, struct pop3_msg, i);

			printf("%u %s %" G_GUINT64_FORMAT "\n", m->num, m->uidl, m->size);
		}
		return 0;
	}
	if (strcmp(cmd, "retr") == 0 && argc == 3) {
		guint32 num;
		guint64 size = 0;
		FILE *f;
		int rc;

		if (!parse_num(argv[1], &num)) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "bad number");
			return 1;
		}
		f = fopen(argv[2], "wb");
		if (!f) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", argv[2],
				    g_strerror(errno));
			return 1;
		}
		rc = pop3_retr(s, num, file_sink, f, &size, err);
		if (fclose(f) != 0 && rc == 0) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: write failed", argv[2]);
			return 1;
		}
		if (rc < 0)
			return 1;
		printf("size %" G_GUINT64_FORMAT "\n", size);
		return 0;
	}
	if (strcmp(cmd, "top") == 0 && argc == 2) {
		g_autoptr(GByteArray) out = g_byte_array_new();
		guint32 num;

		if (!parse_num(argv[1], &num)) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "bad number");
			return 1;
		}
		if (pop3_top_headers(s, num, out, NULL, err) < 0)
			return 1;
		fwrite(out->data, 1, out->len, stdout);
		return 0;
	}
	if (strcmp(cmd, "dele") == 0 && argc >= 2) {
		guint n = (guint)argc - 1;
		g_autofree guint32 *nums = g_new0(guint32, n);
		g_autofree int *rcs = g_new0(int, n);

		for (guint i = 0; i < n; i++) {
			if (!parse_num(argv[i + 1], &nums[i])) {
				g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
					    "bad number");
				return 1;
			}
		}
		if (n == 1) {
			rcs[0] = pop3_dele(s, nums[0], err);
			if (rcs[0] < 0 && !pop3_session_alive(s))
				return 1;
			g_clear_error(err);
		} else if (pop3_dele_many(s, nums, n, rcs, err) < 0) {
			return 1;
		}
		for (guint i = 0; i < n; i++)
			printf("dele %u %s\n", nums[i], rcs[i] == 0 ? "ok" : g_strerror(-rcs[i]));
		return 0;
	}
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "unknown command %s", cmd);
	return 2;
}

int main(int argc, char **argv)
{
	char *tls = NULL, *ca = NULL, *fingerprint = NULL, *auth = NULL;
	int timeout = 10;
	gboolean trace = FALSE, oauth = FALSE;
	GOptionEntry entries[] = {
		{ "tls", 0, 0, G_OPTION_ARG_STRING, &tls, "implicit|starttls|none", NULL },
		{ "ca", 0, 0, G_OPTION_ARG_FILENAME, &ca, "CA file", NULL },
		{ "fingerprint", 0, 0, G_OPTION_ARG_STRING, &fingerprint, "SHA-256 pin", NULL },
		{ "password-file", 0, 0, G_OPTION_ARG_FILENAME, &password_file, "password", NULL },
		{ "timeout", 0, 0, G_OPTION_ARG_INT, &timeout, "seconds", NULL },
		{ "auth", 0, 0, G_OPTION_ARG_STRING, &auth, "best|user|plain|xoauth2", NULL },
		{ "trace", 0, 0, G_OPTION_ARG_NONE, &trace, "protocol trace", NULL },
		{ "oauth", 0, 0, G_OPTION_ARG_NONE, &oauth, "the secret is an OAuth token", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("HOST PORT USER COMMAND [ARGS]");
	GError *err = NULL;
	struct pop3_session_opts o = { 0 };
	struct pop3_session *s;
	int rc = 0;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc < 5) {
		fprintf(stderr, "pop3_probe: %s\n", err ? err->message : "missing arguments");
		g_clear_error(&err);
		return 2;
	}
	if (trace)
		mfs_log_enable(MFS_LOG_POP3);
	o.host = argv[1];
	o.port = argv[2];
	o.user = argv[3];
	o.tls = !tls || strcmp(tls, "implicit") == 0 ? POP3_TLS_IMPLICIT :
		strcmp(tls, "starttls") == 0	    ? POP3_TLS_STARTTLS :
						      POP3_TLS_NONE;
	o.auth = !auth || strcmp(auth, "best") == 0 ? POP3_AUTH_BEST :
		 strcmp(auth, "user") == 0	    ? POP3_AUTH_USER :
		 strcmp(auth, "xoauth2") == 0	    ? POP3_AUTH_XOAUTH2 :
						      POP3_AUTH_PLAIN;
	o.oauth = oauth;
	o.ca_file = ca;
	o.tls_fingerprint = fingerprint;
	o.secret = get_secret;
	o.timeout_s = timeout;

	s = pop3_connect(&o, &err);
	if (!s) {
		fprintf(stderr, "pop3_probe: %s\n", err->message);
		g_clear_error(&err);
		rc = 1;
		goto out;
	}
	rc = run(s, argc - 4, argv + 4, &err);
	if (rc)
		fprintf(stderr, "pop3_probe: %s\n", err ? err->message : "failed");
	g_clear_error(&err);
	fflush(stdout);
	if (pop3_session_alive(s)) {
		int q = pop3_quit(s, &err);

		printf("quit %s\n", q == 0 ? "ok" : q == -ENOTCONN ? "unconfirmed" : "error");
		if (q < 0) {
			fprintf(stderr, "pop3_probe: %s\n", err->message);
			if (rc == 0)
				rc = 1;
		}
		g_clear_error(&err);
	}
	pop3_session_free(s);
out:
	g_free(tls);
	g_free(ca);
	g_free(fingerprint);
	g_free(auth);
	g_free(password_file);
	return rc;
}
