/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap_probe: drive the IMAP client core from the command line, for the
 * integration tests (no FUSE involved).
 *
 *   imap_probe [--tls implicit|starttls|none] [--ca FILE] [--fingerprint HEX]
 *              [--password-file F] [--timeout S] [--auth MECH] [--oauth] [--trace]
 *              HOST PORT USER COMMAND [ARG]
 * COMMAND:
 *   login          connect and log in, print the capabilities
 *   list           print every mailbox: its decoded name and attributes
 *   fetch MAILBOX OUTDIR
 *                  EXAMINE, list UIDs and sizes, then fetch each body in 64 KiB
 *                  ranges, all ranges of a message pipelined, streamed into
 *                  OUTDIR/UID at the origin each response names
 * --oauth: the password file holds an OAuth token (XOAUTH2/OAUTHBEARER).
 *   noop-wait S    log in, then NOOP every second for S seconds (unsolicited data test)
 * Exit 0 on success; otherwise one line on stderr and exit 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/imap_client.h"
#include "protocol/mutf7.h"
#include "transport/secret.h"
#include "util/log.h"

#define RANGE (64 * 1024)

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

struct body_sink {
	int fd;
	guint64 off; /* origin of the literal being received */
	guint64 pos; /* bytes of it so far */
	guint64 got; /* bytes of the message so far */
	gboolean ok;
};


/* "BODY[]<65536>": the origin of a partial fetch (RFC 3501 §7.4.2). */
static gboolean sink_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct body_sink *b = ud;
	const char *lt = strchr(section, '<');
	guint64 origin = 0;

	(void)seq;
	(void)size;
	if (!g_str_has_prefix(section, "BODY[]"))
		return FALSE;
	if (lt) {
		char *end;

		origin = g_ascii_strtoull(lt + 1, &end, 10);
		if (end == lt + 1 || *end != '>')
			b->ok = FALSE;
	}
	b->off = origin;
	b->pos = 0;
	return TRUE;
}

static void sink_chunk(void *ud, const void *data, size_t len)
{
	struct body_sink *b = ud;

	if (pwrite(b->fd, data, len, (off_t)(b->off + b->pos)) != (ssize_t)len)
		b->ok = FALSE;
	b->pos += len;
	b->got += len;
}

struct uid_size {
	guint32 uid;
	guint64 size;
};

static void collect_uid(void *ud, const struct imap_response *r)
{
	GArray *uids = ud;
	const struct imap_value *v = imap_fetch_item(r, "UID");
	struct uid_size us = { 0 };

	if (v && imap_value_u32(v, &us.uid) &&
	    imap_value_u64(imap_fetch_item(r, "RFC822.SIZE"), &us.size))
		g_array_append_val(uids, us);
}

static int fetch_mailbox(struct imap_session *s, const char *mailbox, const char *outdir,
			 GError **err)
{
	struct imap_select_info info;
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(struct uid_size));
	struct imap_handler h = { .untagged = collect_uid, .ud = uids };
	g_autofree char *wire = mutf7_encode(mailbox, err);

	if (!wire || imap_select(s, wire, TRUE, &info, err) < 0)
		return 1;
	if (info.exists && imap_run(s, &h, NULL, err, "UID FETCH 1:* (UID RFC822.SIZE)") < 0)
		return 1;
	for (guint i = 0; i < uids->len; i++) {
		struct uid_size us = g_array_index(uids, struct uid_size, i);
		g_autofree char *path = g_strdup_printf("%s/%u", outdir, us.uid);
		struct body_sink b = { .ok = TRUE };
		struct imap_handler bh = { .literal_begin = sink_begin, .literal_chunk = sink_chunk,
					   .ud = &b };
		g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint));
		int rc = 0;

		b.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (b.fd < 0) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", path,
				    g_strerror(errno));
			return 1;
		}
		/* Ranged reads as the filesystem does them, all in flight at once;
		   one more range than RFC822.SIZE asks for, since the bytes win. */
		for (guint64 off = 0; off <= us.size; off += RANGE) {
			guint id = imap_send(s, "UID FETCH %u (BODY.PEEK[]<%" G_GUINT64_FORMAT ".%d>)",
					     us.uid, off, RANGE);
			g_array_append_val(ids, id);
		}
		for (guint k = 0; k < ids->len; k++)
			if (imap_wait(s, g_array_index(ids, guint, k), &bh, NULL,
				      rc < 0 ? NULL : err) < 0)
				rc = -1;
		close(b.fd);
		if (rc < 0)
			return 1;
		if (!b.ok) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "write to %s failed", path);
			return 1;
		}
	}
	printf("%u messages\n", uids->len);
	return 0;
}

static void print_unsolicited(void *ud, const struct imap_response *r)
{
	const struct imap_value *flags = imap_fetch_item(r, "FLAGS");

	(void)ud;
	if (flags) {
		g_autofree char *f = imap_flags_to_string(flags);
		printf("flags %u %s\n", r->number, f);
		fflush(stdout);
	}
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
		{ "auth", 0, 0, G_OPTION_ARG_STRING, &auth, "plain|login", NULL },
		{ "trace", 0, 0, G_OPTION_ARG_NONE, &trace, "protocol trace", NULL },
		{ "oauth", 0, 0, G_OPTION_ARG_NONE, &oauth, "the secret is an OAuth token", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("HOST PORT USER COMMAND [ARGS]");
	GError *err = NULL;
	struct imap_session_opts o = { 0 };
	struct imap_session *s;
	int rc = 0;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc < 5) {
		fprintf(stderr, "imap_probe: %s\n", err ? err->message : "missing arguments");
		return 2;
	}
	if (trace)
		mfs_log_enable(MFS_LOG_IMAP);
	o.host = argv[1];
	o.port = argv[2];
	o.user = argv[3];
	o.tls = !tls || strcmp(tls, "implicit") == 0 ? IMAP_TLS_IMPLICIT :
		strcmp(tls, "starttls") == 0	    ? IMAP_TLS_STARTTLS :
						      IMAP_TLS_NONE;
	o.auth = !auth				 ? IMAP_AUTH_BEST :
		 strcmp(auth, "login") == 0	 ? IMAP_AUTH_LOGIN :
		 strcmp(auth, "xoauth2") == 0	 ? IMAP_AUTH_XOAUTH2 :
		 strcmp(auth, "oauthbearer") == 0 ? IMAP_AUTH_OAUTHBEARER :
						    IMAP_AUTH_PLAIN;
	o.oauth = oauth;
	o.ca_file = ca;
	o.tls_fingerprint = fingerprint;
	o.secret = get_secret;
	o.timeout_s = timeout;

	s = imap_session_connect(&o, &err);
	if (!s) {
		fprintf(stderr, "imap_probe: %s\n", err->message);
		g_clear_error(&err);
		rc = 1;
		goto out;
	}
	if (strcmp(argv[4], "login") == 0) {
		printf("caps %#x\n", imap_session_caps(s));
	} else if (strcmp(argv[4], "list") == 0) {
		g_autoptr(GPtrArray) boxes = imap_list_mailboxes(s, &err);

		for (guint i = 0; boxes && i < boxes->len; i++) {
			struct imap_mailbox_info *m = boxes->pdata[i];
			g_autofree char *name = mutf7_decode(m->name, NULL);

			printf("%s\t%c\t%#x\n", name ? name : m->name, m->delimiter ? m->delimiter : '-',
			       m->attrs);
		}
		rc = boxes ? 0 : 1;
	} else if (strcmp(argv[4], "fetch") == 0 && argc >= 7) {
		rc = fetch_mailbox(s, argv[5], argv[6], &err);
	} else if (strcmp(argv[4], "noop-wait") == 0 && argc >= 6) {
		struct imap_handler h = { .untagged = print_unsolicited };

		if (imap_select(s, "INBOX", TRUE, NULL, &err) < 0) {
			rc = 1;
		} else {
			for (int i = 0; i < atoi(argv[5]) && rc == 0; i++) {
				if (imap_run(s, &h, NULL, &err, "NOOP") < 0)
					rc = 1;
				else
					g_usleep(G_USEC_PER_SEC / 4);
			}
		}
	} else {
		fprintf(stderr, "imap_probe: unknown command %s\n", argv[4]);
		rc = 2;
	}
	if (rc == 1)
		fprintf(stderr, "imap_probe: %s\n", err ? err->message : "failed");
	g_clear_error(&err);
	imap_session_close(s);
out:
	g_free(tls);
	g_free(ca);
	g_free(fingerprint);
	g_free(auth);
	g_free(password_file);
	return rc;
}
