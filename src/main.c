/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mailfs: mount a remote mailbox (IMAP or POP3) as a directory tree.
 *
 * Startup order matters: parse options, load the config, get
 * credentials, connect and log in in the foreground, then mount and
 * daemonize, so that every failure reaches the terminal as one line.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <fuse_lowlevel.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/pool.h"
#include "account/pop3_account.h"
#include "fs/fs_imap.h"
#include "fs/fs_pop3.h"
#include "model/mcache.h"
#include "model/tree.h"
#include "protocol/pop3.h"
#include "startup/mountpoint.h"
#include "startup/options.h"
#include "transport/conn.h"
#include "transport/secret.h"
#include "util/log.h"

static void print_version(void)
{
	printf("mailfs %s\n", MAILFS_VERSION);
	printf("libfuse %s (FUSE API %d.%d)\n", fuse_pkgversion(), FUSE_MAJOR_VERSION,
	       FUSE_MINOR_VERSION);
	printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("GLib %u.%u.%u\n", glib_major_version, glib_minor_version, glib_micro_version);
}

static void print_usage(FILE *out)
{
	fprintf(out,
		"usage: mailfs [options] SOURCE MOUNTPOINT\n"
		"  SOURCE   imaps://USER@HOST[:PORT]  imap://USER@HOST[:PORT] (STARTTLS)\n"
		"           pop3s://USER@HOST[:PORT]  pop3://USER@HOST[:PORT] (STLS)\n"
		"           NAME (an [account NAME] section of the config file)\n"
		"\n"
		"  -f            stay in the foreground\n"
		"  -d            libfuse debug and protocol trace (implies -f; secrets redacted)\n"
		"  -s            single-threaded\n"
		"  -o OPT[,OPT]  mailfs or libfuse options (KEY=VALUE; see mailfs(1))\n"
		"  -F FILE       config file [$XDG_CONFIG_HOME/mailfs/mailfs.conf]\n"
		"  -V, --version print versions and exit\n"
		"  -h            print this help and exit (--help: also libfuse's options)\n"
		"\n"
		"Unmount with: fusermount3 -u MOUNTPOINT.  Options and files: man mailfs\n");
}

/* -h fits a terminal; --help adds libfuse's own options. */
static void print_help(gboolean full)
{
	print_usage(stdout);
	if (!full) {
		printf("libfuse's options: mailfs --help\n");
		return;
	}
	printf("\nlibfuse options:\n");
	fflush(stdout);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* -- credentials ------------------------------------------------------------ */

struct secret_source {
	const struct mfs_options *o;
	char *prompted; /* a password typed at startup, kept for reconnects */
};

static char *get_secret(void *ud, gboolean oauth, GError **err)
{
	struct secret_source *src = ud;
	const struct mfs_options *o = src->o;

	if (oauth)
		return secret_from_command(o->oauth_token_command, (int)o->timeout, err);
	if (o->password_command)
		return secret_from_command(o->password_command, (int)o->timeout, err);
	if (o->password_file)
		return secret_from_file(o->password_file, err);
	if (src->prompted)
		return g_strdup(src->prompted);
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
		    "no password for %s: set password_command or password_file, or run "
		    "mailfs on a terminal to be asked",
		    o->account);
	return NULL;
}

static gboolean prompt_if_needed(struct secret_source *src, GError **err)
{
	const struct mfs_options *o = src->o;

	if (o->oauth_token_command || o->password_command || o->password_file)
		return TRUE;
	g_autofree char *prompt = g_strdup_printf("Password for %s: ", o->account);
	src->prompted = secret_prompt(prompt, err);
	if (!src->prompted) {
		g_prefix_error(err, "no password for %s (set password_command or "
				    "password_file): ",
			       o->account);
		return FALSE;
	}
	return TRUE;
}

/* -- checks before mounting ------------------------------------------------- */

/*
 * Files the options name, checked before connecting (and before a password
 * is asked for), so that the mistake is named with its file and OS error.
 * ca_file is read only when the certificate is not pinned.
 */
static gboolean check_files(const struct mfs_options *o, GError **err)
{
	if (o->ca_file && o->tls != MFS_TLS_NONE && !o->tls_fingerprint &&
	    !conn_check_ca_file(o->ca_file, err))
		return FALSE;
	return TRUE;
}

/* One mount per account: a lock on its cache directory. Returns the fd or -1. */
static int lock_account(const struct mfs_options *o, GError **err)
{
	g_autofree char *path = g_build_filename(o->cache_dir, "lock", NULL);
	int fd;

	if (g_mkdir_with_parents(o->cache_dir, 0700) != 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "cache_dir %s: %s", o->cache_dir, g_strerror(errno));
		return -1;
	}
	chmod(o->cache_dir, 0700);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: %s", path,
			    g_strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_EXIST,
			    "account %s is already mounted (its cache %s is in use)", o->account,
			    o->cache_dir);
		close(fd);
		return -1;
	}
	return fd;
}

static enum imap_tls_mode tls_mode(enum mfs_tls t)
{
	return t == MFS_TLS_IMPLICIT ? IMAP_TLS_IMPLICIT :
	       t == MFS_TLS_STARTTLS ? IMAP_TLS_STARTTLS :
				       IMAP_TLS_NONE;
}

static enum imap_auth_mech auth_mech(enum mfs_auth a)
{
	switch (a) {
	case MFS_AUTH_PLAIN:
		return IMAP_AUTH_PLAIN;
	case MFS_AUTH_LOGIN:
		return IMAP_AUTH_LOGIN;
	case MFS_AUTH_XOAUTH2:
		return IMAP_AUTH_XOAUTH2;
	case MFS_AUTH_OAUTHBEARER:
		return IMAP_AUTH_OAUTHBEARER;
	case MFS_AUTH_BEST:
	default:
		return IMAP_AUTH_BEST;
	}
}

/* -- the FUSE session, shared by both views ------------------------------------ */

/* A view: its operation table, userdata, and the threads it runs while mounted. */
struct view {
	const struct fuse_lowlevel_ops *ops;
	void *fs;
	void (*attach)(void *fs, struct fuse_session *se);
	void (*detach)(void *fs);
};

/*
 * libfuse ends the session loop on SIGHUP, SIGINT and SIGTERM, then main
 * unmounts; but it leaves alone a signal that was ignored when the program
 * started. A shell ignores SIGINT in the background jobs of a script, where
 * kill -INT must still unmount; so SIGINT and SIGTERM are always taken, and
 * SIGHUP too, except in the foreground under nohup, which asks for it to be
 * ignored (the daemon has no terminal to hang up).
 */
static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP };

static void take_stop_signals(gboolean foreground)
{
	for (size_t i = 0; i < G_N_ELEMENTS(stop_signals); i++) {
		struct sigaction sa;

		if (stop_signals[i] == SIGHUP && foreground)
			continue;
		if (sigaction(stop_signals[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			signal(stop_signals[i], SIG_DFL);
	}
}

/*
 * The stop signals must reach the main thread: libfuse's handler only marks
 * the session ended, and the main thread sees that when the signal breaks
 * its wait in fuse_session_loop_mt(). Handled on any other thread, it
 * would wake nobody and the mount would stay up. So the account's threads
 * are started with the stop signals blocked, as libfuse starts its workers;
 * threads they start inherit that. A signal that comes meanwhile waits
 * and is taken by the main thread once unblocked, before its loop begins.
 */
static void attach_without_stop_signals(const struct view *v, struct fuse_session *se)
{
	sigset_t stop, was;

	sigemptyset(&stop);
	for (size_t i = 0; i < G_N_ELEMENTS(stop_signals); i++)
		sigaddset(&stop, stop_signals[i]);
	pthread_sigmask(SIG_BLOCK, &stop, &was);
	v->attach(v->fs, se);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
}

static int run_fuse(struct mfs_options *o, const struct view *v, GError **err)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	g_autofree char *base = g_strdup_printf("fsname=%s,subtype=mailfs,default_permissions",
						 o->url);
	int rc;

	fuse_opt_add_arg(&args, "mailfs");
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, base);
	for (guint i = 0; i < o->fuse_opts->len; i++) {
		fuse_opt_add_arg(&args, "-o");
		fuse_opt_add_arg(&args, o->fuse_opts->pdata[i]);
	}
	if (o->debug)
		fuse_opt_add_arg(&args, "-d");

	se = fuse_session_new(&args, v->ops, sizeof(*v->ops), v->fs);
	fuse_opt_free_args(&args);
	if (!se) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "libfuse refused the options");
		return 1;
	}
	take_stop_signals(o->foreground);
	if (fuse_set_signal_handlers(se) != 0) {
		fuse_session_destroy(se);
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot set signal handlers");
		return 1;
	}
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot mount on %s",
			    o->mountpoint);
		return 1;
	}
	if (!o->foreground)
		mfs_log_use_syslog("mailfs");
	/* Threads start only after this: fork() keeps just the calling thread. */
	fuse_daemonize(o->foreground);
	attach_without_stop_signals(v, se);

	if (o->single_thread) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();

		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_max_threads(cfg, 16);
		rc = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	v->detach(v->fs);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	if (rc < 0 && rc != -EINTR)
		mfs_log_error("the FUSE session ended with an error: %s", g_strerror(-rc));
	return rc < 0 && rc != -EINTR ? 1 : 0;
}

/* -- the IMAP mount --------------------------------------------------------- */

static void imap_attach(void *fs, struct fuse_session *se)
{
	mfs_imap_fs_attach(fs, se);
}

static void imap_detach(void *fs)
{
	mfs_imap_fs_detach(fs);
}

static int mount_imap(struct mfs_options *o)
{
	struct secret_source src = { .o = o };
	struct imap_session_opts so = { 0 };
	struct tree_options to = { 0 };
	struct pool *pool = NULL;
	struct mcache *cache = NULL;
	struct tree *tree = NULL;
	struct mfs_imap_fs *fs = NULL;
	GError *err = NULL;
	int lock_fd = -1;
	int rc = 1;

	if (!mountpoint_check(o->mountpoint, o->nonempty, &err) || !check_files(o, &err))
		goto out;
	lock_fd = lock_account(o, &err);
	if (lock_fd < 0)
		goto out;
	{
		g_autofree char *bodies = g_build_filename(o->cache_dir, "bodies", NULL);

		cache = mcache_open(bodies, o->cache_size, &err);
	}
	if (!cache || !prompt_if_needed(&src, &err))
		goto out;

	so.host = o->host;
	so.port = o->port;
	so.tls = tls_mode(o->tls);
	so.ca_file = o->ca_file;
	so.tls_fingerprint = o->tls_fingerprint;
	so.user = o->user;
	so.auth = auth_mech(o->auth);
	so.oauth = o->oauth_token_command != NULL;
	so.secret = get_secret;
	so.secret_ud = &src;
	so.timeout_s = (int)o->timeout;
	pool = pool_new(&so, o->connections);
	if (!pool_prime(pool, &err))
		goto out;

	to.names_uid = o->names == MFS_NAMES_UID;
	to.exclude = (const char *const *)o->exclude;
	to.virtual_folders_show = o->virtual_folders_show;
	tree = tree_new(&to);
	fs = mfs_imap_fs_new(o, pool, cache, tree);
	if (mfs_imap_fs_refresh_list(fs, TRUE, &err) < 0) {
		if (!err)
			g_set_error(&err, G_IO_ERROR, G_IO_ERROR_FAILED,
				    "cannot list the mailboxes of %s", o->account);
		goto out;
	}
	{
		const struct view v = { mfs_imap_fs_ops(), fs, imap_attach, imap_detach };

		rc = run_fuse(o, &v, &err);
	}
out:
	if (err) {
		fprintf(stderr, "mailfs: %s\n", err->message);
		g_error_free(err);
	}
	if (pool)
		pool_shutdown(pool);
	mfs_imap_fs_free(fs);
	if (pool)
		pool_free(pool);
	if (tree)
		tree_free(tree);
	if (cache)
		mcache_close(cache);
	if (src.prompted)
		secret_free(src.prompted);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}

/* -- the POP3 mount (mailfs(1) POP3 VIEW; account/pop3_account.h) ------------------ */

static enum pop3_tls_mode pop3_tls(enum mfs_tls t)
{
	return t == MFS_TLS_IMPLICIT ? POP3_TLS_IMPLICIT :
	       t == MFS_TLS_STARTTLS ? POP3_TLS_STARTTLS :
				       POP3_TLS_NONE;
}

static enum pop3_auth_mech pop3_auth(enum mfs_auth a, GError **err)
{
	switch (a) {
	case MFS_AUTH_PLAIN:
		return POP3_AUTH_PLAIN;
	case MFS_AUTH_XOAUTH2:
		return POP3_AUTH_XOAUTH2;
	case MFS_AUTH_LOGIN:
	case MFS_AUTH_OAUTHBEARER:
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "auth=%s is not available for POP3 (use best, plain or xoauth2)",
			    a == MFS_AUTH_LOGIN ? "login" : "oauthbearer");
		return POP3_AUTH_BEST;
	case MFS_AUTH_BEST:
	default:
		return POP3_AUTH_BEST;
	}
}

static void pop3_attach(void *fs, struct fuse_session *se)
{
	mfs_pop3_fs_attach(fs, se);
}

static void pop3_detach(void *fs)
{
	mfs_pop3_fs_detach(fs);
}

static int mount_pop3(struct mfs_options *o)
{
	struct secret_source src = { .o = o };
	struct pop3_session_opts so = { 0 };
	struct mfs_pop3_fs *fs = NULL;
	GError *err = NULL;
	int lock_fd = -1;
	int rc = 1;

	if (!mountpoint_check(o->mountpoint, o->nonempty, &err) || !check_files(o, &err))
		goto out;
	so.auth = pop3_auth(o->auth, &err);
	if (err)
		goto out;
	lock_fd = lock_account(o, &err);
	if (lock_fd < 0)
		goto out;
	if (!prompt_if_needed(&src, &err))
		goto out;
	so.host = o->host;
	so.port = o->port;
	so.tls = pop3_tls(o->tls);
	so.ca_file = o->ca_file;
	so.tls_fingerprint = o->tls_fingerprint;
	so.user = o->user;
	so.oauth = o->oauth_token_command != NULL;
	so.secret = get_secret;
	so.secret_ud = &src;
	so.timeout_s = (int)o->timeout;
	fs = mfs_pop3_fs_new(o, &so, &err);
	if (!fs || !mfs_pop3_fs_start(fs, &err))
		goto out;
	{
		const struct view v = { mfs_pop3_fs_ops(), fs, pop3_attach, pop3_detach };

		rc = run_fuse(o, &v, &err);
	}
out:
	if (err) {
		fprintf(stderr, "mailfs: %s\n", err->message);
		g_error_free(err);
	}
	mfs_pop3_fs_free(fs);
	if (src.prompted)
		secret_free(src.prompted);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}

int main(int argc, char **argv)
{
	struct mfs_options o;
	GError *err = NULL;
	char *mountpoint = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			print_version();
			return EXIT_SUCCESS;
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			print_help(strcmp(argv[i], "--help") == 0);
			return EXIT_SUCCESS;
		}
	}
	/* A server that closes the link must not kill the daemon; a full cache
	   file system is a failed write, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);

	mfs_options_init(&o);
	if (!mfs_options_parse(&o, argc, argv, &err) ||
	    !(mountpoint = mountpoint_resolve(o.mountpoint, &err))) {
		fprintf(stderr, "mailfs: %s\n", err->message);
		g_error_free(err);
		mfs_options_clear(&o);
		return EXIT_FAILURE;
	}
	/* Absolute before anything else: the daemon's working directory becomes
	   "/" (fuse_daemonize(), in the foreground too), and the unmount at exit
	   goes by this path. */
	g_free(o.mountpoint);
	o.mountpoint = mountpoint;
	mfs_log_enable(o.log_categories |
		       (o.debug ? MFS_LOG_IMAP | MFS_LOG_POP3 | MFS_LOG_FUSE | MFS_LOG_CACHE : 0));
	rc = o.proto == MFS_PROTO_POP3 ? mount_pop3(&o) : mount_imap(&o);
	mfs_options_clear(&o);
	return rc;
}
