/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pool_probe: drive the connection pool from the command line, for the
 * integration tests (no FUSE involved).
 *
 *   pool_probe [--tls implicit|starttls|none] [--ca FILE] [--password-file F]
 *              [--timeout S] [--trace] HOST PORT USER COMMAND...
 * COMMANDs run in order (the pool is made before the first one that needs it):
 *   max M          the pool's maximum (before the pool is made; default 4)
 *   prime          pool_prime(): "prime ok", or the error
 *   parallel N MAILBOX...
 *                  N threads, each 20 times: borrow a session for a mailbox
 *                  (round robin), EXAMINE it unless selected, NOOP, put back.
 *                  Prints "parallel errors E maxlive L" then the stats.
 *   stats          "live L busy B max M commands C connects K failures F"
 *   repl           read commands from stdin, one a line, plus:
 *                    get MAILBOX   borrow, EXAMINE unless selected, NOOP, put:
 *                                  "ok MS" / "err get MS CODE MESSAGE" (pool_get
 *                                  failed) / "err cmd MS MESSAGE" (a command failed)
 *                    hold MAILBOX  borrow and keep it: "held" / "err get MS CODE MESSAGE"
 *                    release       put back every held session: "released N"
 *                  every answer is one line, flushed.
 * Exit 0 when every command succeeded; errors are printed on stdout (repl)
 * or stderr, exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/pool.h"
#include "protocol/imap_client.h"
#include "transport/secret.h"
#include "util/log.h"

#define ROUNDS 20

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

static void print_stats(struct pool *p)
{
	struct pool_stats st = { 0 };

	pool_get_stats(p, &st);
	printf("live %u busy %u max %u commands %" G_GUINT64_FORMAT " connects %" G_GUINT64_FORMAT
	       " failures %" G_GUINT64_FORMAT "\n",
	       st.live, st.busy, st.max, st.commands, st.connects, st.connect_failures);
	fflush(stdout);
	pool_stats_clear(&st);
}

/* Borrow, EXAMINE unless selected, NOOP, put back. 0, or 1 for a pool_get
   failure, 2 for a command failure, with *err. */
static int use_once(struct pool *p, const char *mailbox, GError **err)
{
	struct imap_session *s = pool_get(p, mailbox, err);
	const char *sel;
	int rc = 0;

	if (!s)
		return 1;
	sel = imap_session_selected(s);
	if ((!sel || strcmp(sel, mailbox) != 0) && imap_select(s, mailbox, TRUE, NULL, err) < 0)
		rc = 2;
	else if (imap_run(s, NULL, NULL, err, "NOOP") < 0)
		rc = 2;
	pool_put(p, s);
	return rc;
}

struct worker {
	struct pool *p;
	char **mailboxes;
	guint n_mailboxes;
	guint index;
	gint *errors;
	gint *maxlive;
};

static gpointer worker_run(gpointer data)
{
	struct worker *w = data;

	for (guint i = 0; i < ROUNDS; i++) {
		const char *mb = w->mailboxes[(w->index + i) % w->n_mailboxes];
		struct imap_session *s;
		struct pool_stats st = { 0 };
		GError *err = NULL;
		const char *sel;
		gint old;

		s = pool_get(w->p, mb, &err);
		if (!s) {
			fprintf(stderr, "pool_probe: get %s: %s\n", mb, err->message);
			g_clear_error(&err);
			g_atomic_int_inc(w->errors);
			continue;
		}
		pool_get_stats(w->p, &st);
		do {
			old = g_atomic_int_get(w->maxlive);
		} while ((gint)st.live > old &&
			 !g_atomic_int_compare_and_exchange(w->maxlive, old, (gint)st.live));
		pool_stats_clear(&st);
		sel = imap_session_selected(s);
		if (((!sel || strcmp(sel, mb) != 0) && imap_select(s, mb, TRUE, NULL, &err) < 0) ||
		    imap_run(s, NULL, NULL, &err, "NOOP") < 0) {
			fprintf(stderr, "pool_probe: %s: %s\n", mb, err->message);
			g_clear_error(&err);
			g_atomic_int_inc(w->errors);
		}
		pool_put(w->p, s);
	}
	return NULL;
}

static int run_parallel(struct pool *p, guint n, char **mailboxes, guint n_mailboxes)
{
	g_autofree struct worker *w = g_new0(struct worker, n);
	g_autofree GThread **t = g_new0(GThread *, n);
	gint errors = 0, maxlive = 0;

	for (guint i = 0; i < n; i++) {
		w[i] = (struct worker){ .p = p, .mailboxes = mailboxes, .n_mailboxes = n_mailboxes,
					.index = i, .errors = &errors, .maxlive = &maxlive };
		t[i] = g_thread_new("worker", worker_run, &w[i]);
	}
	for (guint i = 0; i < n; i++)
		g_thread_join(t[i]);
	printf("parallel errors %d maxlive %d\n", errors, maxlive);
	print_stats(p);
	return errors ? 1 : 0;
}

static gboolean is_command(const char *w)
{
	static const char *const words[] = { "max",  "prime", "parallel", "stats",
					       "repl", "get",	"hold",	    "release" };

	for (size_t i = 0; i < G_N_ELEMENTS(words); i++)
		if (strcmp(w, words[i]) == 0)
			return TRUE;
	return FALSE;
}

struct probe {
	struct imap_session_opts o;
	guint max;
	struct pool *pool;
	GPtrArray *held; /* sessions borrowed by "hold" */
};

static struct pool *probe_pool(struct probe *pr)
{
	if (!pr->pool)
		pr->pool = pool_new(&pr->o, pr->max);
	return pr->pool;
}

static int run_commands(struct probe *pr, char **argv, int argc, gboolean interactive);

static void repl(struct probe *pr)
{
	char line[4096];

	while (fgets(line, sizeof(line), stdin)) {
		g_auto(GStrv) words = NULL;

		g_strchomp(line);
		if (strcmp(line, "quit") == 0)
			break;
		words = g_strsplit(line, " ", -1);
		if (!words[0] || !*words[0])
			continue;
		run_commands(pr, words, (int)g_strv_length(words), TRUE);
		fflush(stdout);
	}
}

static int run_commands(struct probe *pr, char **argv, int argc, gboolean interactive)
{
	int rc = 0;

	for (int i = 0; i < argc;) {
		const char *cmd = argv[i++];
		GError *err = NULL;

		if (strcmp(cmd, "max") == 0 && i < argc) {
			pr->max = (guint)atoi(argv[i++]);
		} else if (strcmp(cmd, "prime") == 0) {
			if (pool_prime(probe_pool(pr), &err)) {
				printf("prime ok\n");
			} else {
				fprintf(interactive ? stdout : stderr, "pool_probe: prime: %s\n",
					err->message);
				rc = 1;
			}
		} else if (strcmp(cmd, "parallel") == 0 && i < argc) {
			guint n = (guint)atoi(argv[i++]);
			int first = i;

			while (i < argc && !is_command(argv[i]))
				i++;
			if (i == first) {
				fprintf(stderr, "pool_probe: parallel needs mailboxes\n");
				return 2;
			}
			rc |= run_parallel(probe_pool(pr), n, argv + first, (guint)(i - first));
		} else if (strcmp(cmd, "stats") == 0) {
			print_stats(probe_pool(pr));
		} else if (strcmp(cmd, "get") == 0 && i < argc) {
			gint64 t0 = g_get_monotonic_time();
			int r = use_once(probe_pool(pr), argv[i++], &err);
			gint64 ms = (g_get_monotonic_time() - t0) / 1000;

			if (r == 0)
				printf("ok %" G_GINT64_FORMAT "\n", ms);
			else if (r == 1)
				printf("err get %" G_GINT64_FORMAT " %d %s\n", ms,
				       err->domain == G_IO_ERROR ? err->code : -1, err->message);
			else
				printf("err cmd %" G_GINT64_FORMAT " %s\n", ms, err->message);
			rc |= r ? 1 : 0;
		} else if (strcmp(cmd, "hold") == 0 && i < argc) {
			gint64 t0 = g_get_monotonic_time();
			struct imap_session *s = pool_get(probe_pool(pr), argv[i++], &err);

			if (s) {
				g_ptr_array_add(pr->held, s);
				printf("held\n");
			} else {
				printf("err get %" G_GINT64_FORMAT " %d %s\n",
				       (g_get_monotonic_time() - t0) / 1000,
				       err->domain == G_IO_ERROR ? err->code : -1, err->message);
				rc = 1;
			}
		} else if (strcmp(cmd, "release") == 0) {
			printf("released %u\n", pr->held->len);
			for (guint k = 0; k < pr->held->len; k++)
				pool_put(pr->pool, pr->held->pdata[k]);
			g_ptr_array_set_size(pr->held, 0);
		} else if (strcmp(cmd, "repl") == 0 && !interactive) {
			repl(pr);
		} else {
			fprintf(stderr, "pool_probe: bad command %s\n", cmd);
			return 2;
		}
		g_clear_error(&err);
		fflush(stdout);
	}
	return rc;
}

int main(int argc, char **argv)
{
	char *tls = NULL, *ca = NULL;
	int timeout = 10;
	gboolean trace = FALSE;
	GOptionEntry entries[] = {
		{ "tls", 0, 0, G_OPTION_ARG_STRING, &tls, "implicit|starttls|none", NULL },
		{ "ca", 0, 0, G_OPTION_ARG_FILENAME, &ca, "CA file", NULL },
		{ "password-file", 0, 0, G_OPTION_ARG_FILENAME, &password_file, "password", NULL },
		{ "timeout", 0, 0, G_OPTION_ARG_INT, &timeout, "seconds", NULL },
		{ "trace", 0, 0, G_OPTION_ARG_NONE, &trace, "protocol trace", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("HOST PORT USER COMMAND...");
	GError *err = NULL;
	struct probe pr = { .max = 4, .held = g_ptr_array_new() };
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc < 5) {
		fprintf(stderr, "pool_probe: %s\n", err ? err->message : "missing arguments");
		g_clear_error(&err);
		return 2;
	}
	if (trace)
		mfs_log_enable(MFS_LOG_IMAP);
	pr.o.host = argv[1];
	pr.o.port = argv[2];
	pr.o.user = argv[3];
	pr.o.tls = !tls || strcmp(tls, "implicit") == 0 ? IMAP_TLS_IMPLICIT :
		   strcmp(tls, "starttls") == 0	       ? IMAP_TLS_STARTTLS :
							 IMAP_TLS_NONE;
	pr.o.auth = IMAP_AUTH_BEST;
	pr.o.ca_file = ca;
	pr.o.secret = get_secret;
	pr.o.timeout_s = timeout;

	rc = run_commands(&pr, argv + 4, argc - 4, FALSE);
	for (guint k = 0; k < pr.held->len; k++)
		pool_put(pr.pool, pr.held->pdata[k]);
	g_ptr_array_free(pr.held, TRUE);
	if (pr.pool) {
		pool_shutdown(pr.pool);
		pool_free(pr.pool);
	}
	g_free(tls);
	g_free(ca);
	g_free(password_file);
	return rc;
}
