/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "startup/options.h"
#include "util/log.h"

#include <glib/gstdio.h>
#include <string.h>

#define MAXARGS 12

/* Runs init + parse on "mailfs ARGS..."; the caller clears o. */
static gboolean parse_args(struct mfs_options *o, const char *const *args, GError **err)
{
	g_autoptr(GPtrArray) v = g_ptr_array_new_with_free_func(g_free);

	g_ptr_array_add(v, g_strdup("mailfs"));
	for (; *args; args++)
		g_ptr_array_add(v, g_strdup(*args));
	g_ptr_array_add(v, NULL);
	mfs_options_init(o);
	return mfs_options_parse(o, (int)v->len - 1, (char **)v->pdata, err);
}

/* "mailfs imaps://alice@imap.example.com /mnt -o OPTS" */
static gboolean parse_o(struct mfs_options *o, const char *opts, GError **err)
{
	const char *args[] = { "imaps://alice@imap.example.com", "/mnt", "-o", opts, NULL };

	return parse_args(o, args, err);
}

static void assert_error(GError *err, const char *needle)
{
	g_assert_nonnull(err);
	if (!strstr(err->message, needle))
		g_error("error '%s' does not mention '%s'", err->message, needle);
	g_assert_null(strchr(err->message, '\n'));
}

static char *conf_path(void)
{
	return g_build_filename(g_get_user_config_dir(), "mailfs", "mailfs.conf", NULL);
}

/* Each test that writes the default config file removes it before and after. */
static void remove_conf(void)
{
	g_autofree char *path = conf_path();

	g_remove(path);
}

static void write_file(const char *path, const char *text)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autoptr(GError) err = NULL;

	g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
	g_assert_true(g_file_set_contents(path, text, -1, &err));
}

/* ---- URLs ---- */

static void test_good_urls(void)
{
	static const struct {
		const char *url;
		enum mfs_proto proto;
		enum mfs_tls tls;
		const char *user, *host, *port, *account, *normalized;
	} cases[] = {
		{ "imaps://alice@imap.example.com", MFS_PROTO_IMAP, MFS_TLS_IMPLICIT, "alice",
		  "imap.example.com", "993", "alice@imap.example.com",
		  "imaps://alice@imap.example.com" },
		{ "IMAP://Bob@Mail.Example.COM:1143/", MFS_PROTO_IMAP, MFS_TLS_STARTTLS, "Bob",
		  "mail.example.com", "1143", "Bob@mail.example.com",
		  "imap://Bob@mail.example.com:1143" },
		{ "pop3s://carol%40example.org@pop.example.org", MFS_PROTO_POP3, MFS_TLS_IMPLICIT,
		  "carol@example.org", "pop.example.org", "995",
		  "carol@example.org@pop.example.org",
		  "pop3s://carol%40example.org@pop.example.org" },
		{ "Pop3://dave@[::1]", MFS_PROTO_POP3, MFS_TLS_STARTTLS, "dave", "::1", "110",
		  "dave@::1", "pop3://dave@[::1]" },
		{ "imaps://eve@[2001:DB8::1]:10993", MFS_PROTO_IMAP, MFS_TLS_IMPLICIT, "eve",
		  "2001:db8::1", "10993", "eve@2001:db8::1", "imaps://eve@[2001:db8::1]:10993" },
		{ "imaps://frank@192.0.2.7:993", MFS_PROTO_IMAP, MFS_TLS_IMPLICIT, "frank",
		  "192.0.2.7", "993", "frank@192.0.2.7", "imaps://frank@192.0.2.7" },
		{ "imap://a@b.example@host.example", MFS_PROTO_IMAP, MFS_TLS_STARTTLS,
		  "a@b.example", "host.example", "143", "a@b.example@host.example",
		  "imap://a%40b.example@host.example" },
		{ "imaps://x@m\xc3\xbcnchen.example", MFS_PROTO_IMAP, MFS_TLS_IMPLICIT, "x",
		  "xn--mnchen-3ya.example", "993", "x@xn--mnchen-3ya.example",
		  "imaps://x@xn--mnchen-3ya.example" },
		{ "imaps://u%20s%2Cp@h:", MFS_PROTO_IMAP, MFS_TLS_IMPLICIT, "u s,p", "h", "993",
		  "u s,p@h", "imaps://u%20s%2Cp@h" },
		{ "pop3://g@h:0110", MFS_PROTO_POP3, MFS_TLS_STARTTLS, "g", "h", "110", "g@h",
		  "pop3://g@h" },
		{ "imaps://J\xc3\xbcrgen@h_1.example", MFS_PROTO_IMAP, MFS_TLS_IMPLICIT,
		  "J\xc3\xbcrgen", "h_1.example", "993", "J\xc3\xbcrgen@h_1.example",
		  "imaps://J%C3%BCrgen@h_1.example" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		const char *args[] = { cases[i].url, "/mnt", NULL };
		g_autofree char *cache = NULL;

		g_test_message("%s", cases[i].url);
		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpint(o.proto, ==, cases[i].proto);
		g_assert_cmpint(o.tls, ==, cases[i].tls);
		g_assert_false(o.tls_explicit);
		g_assert_cmpstr(o.user, ==, cases[i].user);
		g_assert_cmpstr(o.host, ==, cases[i].host);
		g_assert_cmpstr(o.port, ==, cases[i].port);
		g_assert_cmpstr(o.account, ==, cases[i].account);
		g_assert_cmpstr(o.url, ==, cases[i].normalized);
		g_assert_cmpstr(o.source, ==, cases[i].url);
		g_assert_cmpstr(o.mountpoint, ==, "/mnt");
		cache = g_build_filename(g_get_user_cache_dir(), "mailfs", cases[i].account, NULL);
		g_assert_cmpstr(o.cache_dir, ==, cache);
		mfs_options_clear(&o);
	}
}

static void test_bad_urls(void)
{
	static const struct {
		const char *url, *error;
	} cases[] = {
		{ "imaps://alice:s3cret@host", "password_command or password_file" },
		{ "imaps://:s3cret@host", "password" },
		{ "imaps://alice:s3cret/x@host", "password" },
		{ "imaps://host.example", "user name is missing" },
		{ "imaps://@host.example", "user name is missing" },
		{ "http://alice@host", "unknown scheme 'http'" },
		{ "://alice@host", "unknown scheme ''" },
		{ "imaps://alice@host/INBOX", "unexpected '/INBOX'" },
		{ "imaps://alice@host/x@y", "a '@' after the host" },
		{ "imaps://al/ice@host", "'/', '?' or '#' in the user name" },
		{ "imaps://alice@host/?x", "unexpected '/?x'" },
		{ "imaps://alice@host?x=1", "unexpected '?x=1'" },
		{ "imaps://alice@host#frag", "unexpected '#frag'" },
		{ "imaps://alice@host:0", "port '0'" },
		{ "imaps://alice@host:65536", "port '65536'" },
		{ "imaps://alice@host:99999999999999999999999", "port" },
		{ "imaps://alice@host:12ab", "port '12ab'" },
		{ "imaps://alice@host:-1", "port '-1'" },
		{ "imaps://alice@host:+993", "port '+993'" },
		{ "imaps://alice@", "host name is missing" },
		{ "imaps://alice@:993", "host name is missing" },
		{ "imaps://alice@::1", "brackets" },
		{ "imaps://alice@[::1", "unclosed" },
		{ "imaps://alice@[1.2.3.4]", "not an IPv6 address" },
		{ "imaps://alice@[fe80::1%25eth0]", "not an IPv6 address" },
		{ "imaps://alice@[::1]x", "unexpected 'x'" },
		{ "imaps://alice@[::1]:0", "port '0'" },
		{ "imaps://al%ZZice@host", "%-escape" },
		{ "imaps://al%4ice@host", "%-escape" },
		{ "imaps://al%00ice@host", "%-escape" },
		{ "imaps://al%0Aice@host", "control character" },
		{ "imaps://al%FFice@host", "UTF-8" },
		{ "imaps://alice@ho st", "not a host name" },
		{ "imaps://alice@host%2Eexample", "not a host name" },
		{ "imaps://alice@host\x1b[31m", "\\x1b" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		const char *args[] = { cases[i].url, "/mnt", NULL };

		g_test_message("%s", cases[i].url);
		g_assert_false(parse_args(&o, args, &err));
		assert_error(err, cases[i].error);
		g_assert_true(g_error_matches(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE));
		g_assert_null(strstr(err->message, "s3cret"));
		mfs_options_clear(&o);
	}
}

/* ---- -o ---- */

static void test_o_booleans(void)
{
	static const struct {
		const char *opts;
		gboolean readonly, mark_seen;
		const char *fuse; /* fuse_opts joined with ',' */
	} cases[] = {
		{ "readonly", TRUE, FALSE, "" },
		{ "readonly=yes,mark_seen=On", TRUE, TRUE, "" },
		{ "readonly=No", FALSE, FALSE, "" },
		{ "readonly=TRUE,mark_seen=1", TRUE, TRUE, "" },
		{ "readonly=false,mark_seen=0", FALSE, FALSE, "" },
		{ "readonly=off", FALSE, FALSE, "" },
		{ "mark_seen", FALSE, TRUE, "" },
		{ "ro", TRUE, FALSE, "ro" },
		{ "readonly,readonly=no", FALSE, FALSE, "" },
		{ "readonly=no,ro", TRUE, FALSE, "ro" },
		{ "readonly,readonly=", FALSE, FALSE, "" },
		{ "rw", FALSE, FALSE, "rw" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		g_autofree char *fuse = NULL;

		g_test_message("-o %s", cases[i].opts);
		g_assert_true(parse_o(&o, cases[i].opts, &err));
		g_assert_no_error(err);
		g_assert_cmpint(o.readonly, ==, cases[i].readonly);
		g_assert_cmpint(o.mark_seen, ==, cases[i].mark_seen);
		g_ptr_array_add(o.fuse_opts, NULL);
		fuse = g_strjoinv(",", (char **)o.fuse_opts->pdata);
		g_assert_cmpstr(fuse, ==, cases[i].fuse);
		mfs_options_clear(&o);
	}
}

static void test_o_values(void)
{
	struct mfs_options o;
	g_autoptr(GError) err = NULL;
	g_autofree char *pw = NULL;

	/* Defaults. */
	g_assert_true(parse_o(&o, "", &err));
	g_assert_cmpuint(o.cache_size, ==, G_GUINT64_CONSTANT(1) << 30);
	g_assert_cmpuint(o.connections, ==, 4);
	g_assert_cmpuint(o.refresh, ==, 30);
	g_assert_cmpuint(o.timeout, ==, 30);
	g_assert_cmpint(o.names, ==, MFS_NAMES_UID_SUBJECT);
	g_assert_cmpint(o.auth, ==, MFS_AUTH_BEST);
	g_assert_false(o.readonly);
	g_assert_false(o.mark_seen);
	g_assert_false(o.virtual_folders_show);
	g_assert_cmpuint(o.log_categories, ==, 0);
	g_assert_nonnull(o.exclude);
	g_assert_null(o.exclude[0]);
	g_assert_null(o.password_command);
	g_assert_null(o.password_file);
	g_assert_null(o.oauth_token_command);
	g_assert_null(o.ca_file);
	g_assert_null(o.tls_fingerprint);
	g_assert_cmpuint(o.fuse_opts->len, ==, 0);
	g_assert_false(o.foreground || o.debug || o.single_thread);
	mfs_options_clear(&o);

	g_assert_true(parse_o(&o,
			      "connections=32,refresh=0,timeout=1,names=UID,auth=XOAUTH2,"
			      "virtual_folders=show,log=imap\\,cache,password_file=~/.pw,"
			      "ca_file=/etc/ssl/ca.pem,cache_dir=~,"
			      "password_command=pass show 'mail/work',"
			      "oauth_token_command=oama access alice@example.com,"
			      "tls_fingerprint=AB:cd:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:"
			      "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89",
			      &err));
	g_assert_no_error(err);
	g_assert_cmpuint(o.connections, ==, 32);
	g_assert_cmpuint(o.refresh, ==, 0);
	g_assert_cmpuint(o.timeout, ==, 1);
	g_assert_cmpint(o.names, ==, MFS_NAMES_UID);
	g_assert_cmpint(o.auth, ==, MFS_AUTH_XOAUTH2);
	g_assert_true(o.virtual_folders_show);
	g_assert_cmpuint(o.log_categories, ==, MFS_LOG_IMAP | MFS_LOG_CACHE);
	pw = g_build_filename(g_get_home_dir(), ".pw", NULL);
	g_assert_cmpstr(o.password_file, ==, pw);
	g_assert_cmpstr(o.ca_file, ==, "/etc/ssl/ca.pem");
	g_assert_cmpstr(o.cache_dir, ==, g_get_home_dir());
	g_assert_cmpstr(o.password_command, ==, "pass show 'mail/work'");
	g_assert_cmpstr(o.oauth_token_command, ==, "oama access alice@example.com");
	g_assert_cmpstr(o.tls_fingerprint, ==,
			"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	mfs_options_clear(&o);

	/* An empty value restores the default; the last value wins. */
	g_assert_true(parse_o(&o,
			      "connections=8,connections=,names=uid,names=,password_file=/x,"
			      "password_file=,log=all,log=,exclude=a,exclude=",
			      &err));
	g_assert_no_error(err);
	g_assert_cmpuint(o.connections, ==, 4);
	g_assert_cmpint(o.names, ==, MFS_NAMES_UID_SUBJECT);
	g_assert_null(o.password_file);
	g_assert_cmpuint(o.log_categories, ==, 0);
	g_assert_null(o.exclude[0]);
	mfs_options_clear(&o);
}

static void test_o_sizes(void)
{
	static const struct {
		const char *opts;
		guint64 size;
	} cases[] = {
		{ "cache_size=512M", G_GUINT64_CONSTANT(512) << 20 },
		{ "cache_size=1G", G_GUINT64_CONSTANT(1) << 30 },
		{ "cache_size=2048K", G_GUINT64_CONSTANT(2048) << 10 },
		{ "cache_size=1048576", G_GUINT64_CONSTANT(1) << 20 },
		{ "cache_size=2t", G_GUINT64_CONSTANT(2) << 40 },
		{ "cache_size=3g", G_GUINT64_CONSTANT(3) << 30 },
		{ "cache_size= 64M ", G_GUINT64_CONSTANT(64) << 20 },
		{ "cache_size=16777215T", G_GUINT64_CONSTANT(16777215) << 40 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;

		g_test_message("-o %s", cases[i].opts);
		g_assert_true(parse_o(&o, cases[i].opts, &err));
		g_assert_no_error(err);
		g_assert_cmpuint(o.cache_size, ==, cases[i].size);
		mfs_options_clear(&o);
	}
}

static void test_o_errors(void)
{
	static const struct {
		const char *opts, *error, *secret;
	} cases[] = {
		{ "readonly=maybe", "-o readonly: 'maybe' is not a boolean", NULL },
		{ "readonly=", NULL, NULL }, /* empty restores the default: fine */
		{ "cache_size", "option 'cache_size' needs a value", NULL },
		{ "cache_size=1X", "not a size", NULL },
		{ "cache_size=1.5G", "not a size", NULL },
		{ "cache_size=G", "not a size", NULL },
		{ "cache_size=-1G", "not a size", NULL },
		{ "cache_size=16777216T", "out of range", NULL },
		{ "cache_size=99999999999999999999", "not a size", NULL },
		{ "cache_size=100", "out of range", NULL },
		{ "connections=0", "-o connections: '0' is not a number from 1 to 32", NULL },
		{ "connections=33", "from 1 to 32", NULL },
		{ "connections=-1", "from 1 to 32", NULL },
		{ "connections=4x", "from 1 to 32", NULL },
		{ "connections=0x10", "from 1 to 32", NULL },
		{ "timeout=0", "-o timeout", NULL },
		{ "refresh=99999999999999999999", "-o refresh", NULL },
		{ "names=date", "'date' is not one of: uid-subject, uid", NULL },
		{ "tls=ssl", "not one of: implicit, starttls, none", NULL },
		{ "auth=cram-md5", "-o auth", NULL },
		{ "virtual_folders=maybe", "hide, show", NULL },
		{ "log=smtp", "-o log: unknown log category 'smtp'", NULL },
		{ "password=hunter2", "unknown option 'password': there is no password option",
		  "hunter2" },
		{ "pass=hunter2", "password_command or password_file", "hunter2" },
		{ "frobnicate", "unknown option 'frobnicate'", NULL },
		{ "frob=nicate", "unknown option 'frob'", "nicate" },
		{ "kernel_cache", "unknown option 'kernel_cache'", NULL },
		{ "allow_other=1", "option 'allow_other' takes no value", NULL },
		{ "ro=yes", "takes no value", NULL },
		{ "max_read", "option 'max_read' needs a value", NULL },
		{ "max_read=abc", "-o max_read: 'abc' is not a number", NULL },
		{ "fsname=", "needs a value", NULL },
		{ "debug=1", "unknown option 'debug'", NULL },
		{ "password_file=relative/pw", "-o password_file: 'relative/pw' is not an absolute",
		  NULL },
		{ "ca_file=~alice/ca.pem", "not an absolute path", NULL },
		{ "tls_fingerprint=abcd", "not a SHA-256 fingerprint", NULL },
		{ "tls_fingerprint=zz", "not a SHA-256 fingerprint", NULL },
		{ "password_command=pass show 'mail/work", "-o password_command: cannot split",
		  "mail/work" },
		{ "oauth_token_command=\"", "-o oauth_token_command", NULL },
		{ "=x", "no name", NULL },
		{ "url=imaps://bob@host", "-o url: SOURCE is already a URL", NULL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		gboolean ok;

		g_test_message("-o %s", cases[i].opts);
		ok = parse_o(&o, cases[i].opts, &err);
		if (!cases[i].error) {
			g_assert_no_error(err);
			g_assert_true(ok);
		} else {
			g_assert_false(ok);
			assert_error(err, cases[i].error);
			if (cases[i].secret)
				g_assert_null(strstr(err->message, cases[i].secret));
		}
		mfs_options_clear(&o);
	}
}

static void test_o_fuse_and_ignored(void)
{
	static const struct {
		const char *opts;
		const char *fuse; /* fuse_opts joined with '|' */
	} cases[] = {
		{ "allow_other,max_read=131072,fsname=a\\,b,default_permissions",
		  "allow_other|max_read=131072|fsname=a\\,b|default_permissions" },
		{ "allow_root,auto_unmount,clone_fd,max_threads=8,max_idle_threads=2,subtype=m",
		  "allow_root|auto_unmount|clone_fd|max_threads=8|max_idle_threads=2|subtype=m" },
		{ "defaults,auto,noauto,user,users,nouser,owner,group,_netdev,nofail", "" },
		{ "atime,noatime,relatime,norelatime,strictatime,nostrictatime,diratime,nodiratime",
		  "" },
		{ "lazytime,nolazytime,dev,nodev,suid,nosuid,exec,noexec,async", "" },
		{ "x-systemd.automount,x-systemd.idle-timeout=60,x-gvfs-show,user=alice,comment=x",
		  "" },
		{ "rw,noauto,user,_netdev,nosuid,nodev,allow_other", "rw|allow_other" },
		{ ",,ro,,", "ro" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		g_autofree char *fuse = NULL;

		g_test_message("-o %s", cases[i].opts);
		g_assert_true(parse_o(&o, cases[i].opts, &err));
		g_assert_no_error(err);
		g_ptr_array_add(o.fuse_opts, NULL);
		fuse = g_strjoinv("|", (char **)o.fuse_opts->pdata);
		g_assert_cmpstr(fuse, ==, cases[i].fuse);
		mfs_options_clear(&o);
	}
}

static void test_o_exclude(void)
{
	static const struct {
		const char *opts;
		const char *globs; /* joined with '|' */
	} cases[] = {
		{ "exclude=[Gmail]/All Mail; Spam ;;Trash", "[Gmail]/All Mail|Spam|Trash" },
		{ "exclude=a\\,b;c", "a,b|c" },
		{ "exclude=;", "" },
		{ "exclude=Archive/*", "Archive/*" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		g_autofree char *globs = NULL;

		g_test_message("-o %s", cases[i].opts);
		g_assert_true(parse_o(&o, cases[i].opts, &err));
		g_assert_no_error(err);
		globs = g_strjoinv("|", o.exclude);
		g_assert_cmpstr(globs, ==, cases[i].globs);
		mfs_options_clear(&o);
	}
}

static void test_o_tls(void)
{
	static const struct {
		const char *url, *opts;
		enum mfs_tls tls;
		gboolean explicit_;
	} cases[] = {
		{ "imaps://a@h", "", MFS_TLS_IMPLICIT, FALSE },
		{ "imap://a@h", "", MFS_TLS_STARTTLS, FALSE },
		{ "pop3s://a@h", "", MFS_TLS_IMPLICIT, FALSE },
		{ "pop3://a@h", "", MFS_TLS_STARTTLS, FALSE },
		{ "imap://a@h", "tls=none", MFS_TLS_NONE, TRUE },
		{ "imap://a@h", "tls=Implicit", MFS_TLS_IMPLICIT, TRUE },
		{ "imaps://a@h", "tls=starttls", MFS_TLS_STARTTLS, TRUE },
		{ "imap://a@h", "tls=none,tls=", MFS_TLS_STARTTLS, FALSE },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		const char *args[] = { cases[i].url, "/mnt", "-o", cases[i].opts, NULL };

		g_test_message("%s -o %s", cases[i].url, cases[i].opts);
		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpint(o.tls, ==, cases[i].tls);
		g_assert_cmpint(o.tls_explicit, ==, cases[i].explicit_);
		mfs_options_clear(&o);
	}
}

/* ---- argv ---- */

static void test_argv(void)
{
	static const struct {
		const char *args[MAXARGS];
		const char *mountpoint;
		gboolean fg, debug, single, readonly;
	} cases[] = {
		{ { "imaps://a@h", "/mnt", NULL }, "/mnt", FALSE, FALSE, FALSE, FALSE },
		{ { "-f", "imaps://a@h", "/mnt", NULL }, "/mnt", TRUE, FALSE, FALSE, FALSE },
		{ { "imaps://a@h", "/mnt", "-o", "ro", NULL }, "/mnt", FALSE, FALSE, FALSE, TRUE },
		{ { "imaps://a@h", "-oro", "/mnt", "-d", NULL }, "/mnt", TRUE, TRUE, FALSE, TRUE },
		{ { "-o", "readonly", "-s", "imaps://a@h", "m", NULL }, "m", FALSE, FALSE, TRUE,
		  TRUE },
		{ { "-fs", "imaps://a@h", "/mnt", NULL }, "/mnt", TRUE, FALSE, TRUE, FALSE },
		{ { "-sd", "imaps://a@h", "/mnt", NULL }, "/mnt", TRUE, TRUE, TRUE, FALSE },
		{ { "imaps://a@h", "/mnt", "-o", "debug", NULL }, "/mnt", TRUE, TRUE, FALSE,
		  FALSE },
		{ { "imaps://a@h", "--", "-weird", NULL }, "-weird", FALSE, FALSE, FALSE, FALSE },
		{ { "imaps://a@h", "/mnt", "-o", "readonly", "-o", "readonly=no", NULL },
		  "/mnt", FALSE, FALSE, FALSE, FALSE },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;

		g_test_message("case %zu", i);
		g_assert_true(parse_args(&o, cases[i].args, &err));
		g_assert_no_error(err);
		g_assert_cmpstr(o.source, ==, "imaps://a@h");
		g_assert_cmpstr(o.mountpoint, ==, cases[i].mountpoint);
		g_assert_cmpint(o.foreground, ==, cases[i].fg);
		g_assert_cmpint(o.debug, ==, cases[i].debug);
		g_assert_cmpint(o.single_thread, ==, cases[i].single);
		g_assert_cmpint(o.readonly, ==, cases[i].readonly);
		mfs_options_clear(&o);
	}
}

static void test_argv_errors(void)
{
	static const struct {
		const char *args[MAXARGS];
		const char *error;
	} cases[] = {
		{ { NULL }, "missing SOURCE and MOUNTPOINT (usage: mailfs" },
		{ { "imaps://a@h", NULL }, "missing MOUNTPOINT" },
		{ { "-f", "imaps://a@h", "-o", "ro", NULL }, "missing MOUNTPOINT" },
		{ { "imaps://a@h", "/mnt", "extra", NULL }, "too many arguments: 'extra'" },
		{ { "-x", "imaps://a@h", "/mnt", NULL }, "unknown command-line option '-x'" },
		{ { "-fx", "imaps://a@h", "/mnt", NULL }, "unknown command-line option '-fx'" },
		{ { "--foreground", "imaps://a@h", "/mnt", NULL }, "unknown command-line option" },
		{ { "-h", "imaps://a@h", "/mnt", NULL }, "'-h'" },
		{ { "imaps://a@h", "/mnt", "-o", NULL }, "option '-o' needs an argument" },
		{ { "imaps://a@h", "/mnt", "-F", NULL }, "option '-F' needs an argument" },
		{ { "", "/mnt", NULL }, "SOURCE is empty" },
		{ { "imaps://a@h", "", NULL }, "MOUNTPOINT is empty" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;

		g_test_message("case %zu", i);
		g_assert_false(parse_args(&o, cases[i].args, &err));
		assert_error(err, cases[i].error);
		mfs_options_clear(&o);
	}
}

/* ---- config file ---- */

static const char conf_text[] =
	"# mailfs test config\n"
	"[defaults]\n"
	"connections = 2\n"
	"cache_size = 256M\n"
	"\n"
	"[account work]\n"
	"url = imaps://alice%40corp.example@imap.corp.example  \n"
	"password_command = pass show mail/work\n"
	"connections = 6\n"
	"readonly = yes\n"
	"exclude = [Gmail]/All Mail;Spam\n"
	"\n"
	"[account  home ]\n"
	"url = pop3://bob@pop.home.example:1110\n"
	"tls = none\n"
	"cache_dir = ~/mailcache\n"
	"connections = notanumber\n";

static void test_config(void)
{
	g_autofree char *path = conf_path();
	g_autofree char *cache = NULL;
	g_autofree char *home_cache = NULL;
	struct mfs_options o;
	g_autoptr(GError) err = NULL;

	remove_conf();
	write_file(path, conf_text);

	/* The account's section over [defaults]. */
	{
		const char *args[] = { "work", "/mnt", NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpstr(o.account, ==, "work");
		g_assert_cmpstr(o.config_file, ==, path);
		g_assert_cmpstr(o.url, ==, "imaps://alice%40corp.example@imap.corp.example");
		g_assert_cmpstr(o.user, ==, "alice@corp.example");
		g_assert_cmpstr(o.host, ==, "imap.corp.example");
		g_assert_cmpstr(o.port, ==, "993");
		g_assert_cmpstr(o.password_command, ==, "pass show mail/work");
		g_assert_cmpuint(o.connections, ==, 6);
		g_assert_cmpuint(o.cache_size, ==, G_GUINT64_CONSTANT(256) << 20);
		g_assert_true(o.readonly);
		g_assert_cmpstr(o.exclude[0], ==, "[Gmail]/All Mail");
		g_assert_cmpstr(o.exclude[1], ==, "Spam");
		g_assert_null(o.exclude[2]);
		cache = g_build_filename(g_get_user_cache_dir(), "mailfs", "work", NULL);
		g_assert_cmpstr(o.cache_dir, ==, cache);
		mfs_options_clear(&o);
	}
	/* -o overrides the file, in order. */
	{
		const char *args[] = { "-o", "connections=9,readonly=no", "work", "/mnt",
				       "-o", "connections=10", NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpuint(o.connections, ==, 10);
		g_assert_false(o.readonly);
		mfs_options_clear(&o);
	}
	/* A URL source takes [defaults] only. */
	{
		const char *args[] = { "imaps://carol@imap.corp.example", "/mnt", NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpuint(o.connections, ==, 2);
		g_assert_false(o.readonly);
		g_assert_null(o.password_command);
		mfs_options_clear(&o);
	}
	/* A bad value in the mounted account is reported with file, section and key. */
	{
		const char *args[] = { "home", "/mnt", NULL };
		g_autofree char *where = g_strdup_printf("%s:17: [account  home ] connections: "
							 "'notanumber' is not a number",
							 path);

		g_assert_false(parse_args(&o, args, &err));
		assert_error(err, where);
		g_clear_error(&err);
		mfs_options_clear(&o);
	}
	/* ... and -o cannot rescue it: the file is read first. The trimmed name matches. */
	{
		const char *args[] = { "home", "/mnt", "-o", "connections=3", NULL };

		g_assert_false(parse_args(&o, args, &err));
		assert_error(err, "notanumber");
		g_clear_error(&err);
		mfs_options_clear(&o);
	}
	/* -o url= replaces the account's url for a NAME. */
	{
		const char *args[] = { "work", "/mnt", "-o", "url=imap://dan@other.example", NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpstr(o.account, ==, "work");
		g_assert_cmpstr(o.url, ==, "imap://dan@other.example");
		g_assert_cmpint(o.tls, ==, MFS_TLS_STARTTLS);
		mfs_options_clear(&o);
	}
	/* The home account, with the bad key fixed: tls=none and ~ expansion. */
	{
		g_autofree char *fixed = g_strdup(conf_text);
		const char *args[] = { "home", "/mnt", NULL };

		*strstr(fixed, "connections = notanumber") = '#';
		write_file(path, fixed);
		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpint(o.proto, ==, MFS_PROTO_POP3);
		g_assert_cmpint(o.tls, ==, MFS_TLS_NONE);
		g_assert_true(o.tls_explicit);
		g_assert_cmpstr(o.port, ==, "1110");
		g_assert_cmpstr(o.url, ==, "pop3://bob@pop.home.example:1110");
		home_cache = g_build_filename(g_get_home_dir(), "mailcache", NULL);
		g_assert_cmpstr(o.cache_dir, ==, home_cache);
		g_assert_cmpuint(o.connections, ==, 2);
		mfs_options_clear(&o);
	}
	remove_conf();
}

static void test_config_errors(void)
{
	static const struct {
		const char *text;
		const char *source;
		const char *error; /* after "FILE:LINE: " when line, else anywhere */
		unsigned line;
	} cases[] = {
		{ "[account work]\nurl = imaps://a@h\n", "other", "no [account other] in ", 0 },
		{ "[account work]\nurl = imaps://a@h\n", "alice@h", "a URL needs a scheme", 0 },
		{ "[account work]\nurl = imaps://a@h\n[account home]\ncolour = blue\n", "work",
		  "[account home] unknown key 'colour'", 4 },
		{ "[defaults]\nbogus = 1\n", "imaps://a@h", "[defaults] unknown key 'bogus'", 2 },
		{ "[account work]\nurl = imaps://a@h\npassword = hunter2\n", "work",
		  "[account work] unknown key 'password': there is no password option", 3 },
		{ "\n[global]\nreadonly = yes\n", "imaps://a@h", "unknown section [global]", 2 },
		{ "[account]\nurl = imaps://a@h\n", "imaps://a@h", "unknown section [account]", 1 },
		{ "[defaults]\n# c\n  url = imaps://a@h\n", "imaps://a@h",
		  "[defaults] cannot hold 'url'", 3 },
		{ "[account work]\nreadonly = yes\n", "work", "account 'work' has no url", 0 },
		{ "[account work]\nurl = imaps://a:pw@h\n", "work",
		  "[account work] url: a password in the URL is not accepted", 2 },
		{ "[account work]\nurl = work\n", "work", "[account work] url: not a URL", 2 },
		{ "[account work]\nurl = imaps://a@h\nreadonly = maybe\n", "work",
		  "[account work] readonly: 'maybe' is not a boolean", 3 },
		{ "[defaults]\ntimeout = 0\n[account work]\nurl = imaps://a@h\n", "work",
		  "[defaults] timeout: '0' is not a number from 1 to 3600", 2 },
		/* The last of a repeated key is the one read, and the one named. */
		{ "[account work]\nurl = imaps://a@h\nreadonly = yes\n\n[account work]\r\n"
		  "readonly = maybe\r\n",
		  "work", "[account work] readonly: 'maybe' is not a boolean", 6 },
		{ "[account work]\nurl = imaps://a@h\ntrash = \xff\n", "work",
		  "[account work] trash: the value is not valid UTF-8", 3 },
		/* Syntax errors, found by GKeyFile, located here. */
		{ "this is not a key file\n", "work", "", 1 },
		{ "[account work]\nurl = imaps://a@h\nreadonly\n", "imaps://a@h", "", 3 },
		{ "# c\n\ntimeout = 5\n[defaults]\n", "imaps://a@h", "", 3 },
		{ "[defaults]\ntimeout = 5\n[account work\nurl = imaps://a@h\n", "work", "", 3 },
		{ "[defaults]\ntimeout = 5\nno line end", "work", "", 3 },
	};
	g_autofree char *path = conf_path();

	remove_conf();
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct mfs_options o;
		g_autoptr(GError) err = NULL;
		const char *args[] = { cases[i].source, "/mnt", NULL };
		g_autofree char *want = cases[i].line ? g_strdup_printf("%s:%u: %s", path,
								       cases[i].line,
								       cases[i].error)
						      : g_strdup(cases[i].error);

		g_test_message("case %zu", i);
		write_file(path, cases[i].text);
		g_assert_false(parse_args(&o, args, &err));
		assert_error(err, want);
		if (cases[i].line)
			g_assert_true(g_str_has_prefix(err->message, want));
		g_assert_null(strstr(err->message, "hunter2"));
		g_assert_null(strchr(err->message, '\n'));
		mfs_options_clear(&o);
	}
	remove_conf();
}

static void test_config_file_choice(void)
{
	g_autofree char *other = g_build_filename(g_get_user_data_dir(), "other.conf", NULL);
	g_autofree char *missing = g_build_filename(g_get_user_data_dir(), "missing.conf", NULL);
	g_autofree char *dflt = conf_path();
	struct mfs_options o;
	g_autoptr(GError) err = NULL;

	remove_conf();
	/* No default file: a URL needs none, a NAME does. */
	{
		const char *args[] = { "imaps://a@h", "/mnt", NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpstr(o.config_file, ==, dflt);
		mfs_options_clear(&o);
	}
	{
		const char *args[] = { "work", "/mnt", NULL };
		g_autofree char *want = g_strdup_printf("no account 'work': config file %s does "
							"not exist",
							dflt);

		g_assert_false(parse_args(&o, args, &err));
		assert_error(err, want);
		g_clear_error(&err);
		mfs_options_clear(&o);
	}
	/* -F must exist, even for a URL. */
	{
		const char *args[] = { "-F", missing, "imaps://a@h", "/mnt", NULL };

		g_assert_false(parse_args(&o, args, &err));
		assert_error(err, missing);
		g_clear_error(&err);
		mfs_options_clear(&o);
	}
	/* -F FILE and -FFILE are read instead of the default. */
	write_file(other, "[account x]\nurl = imaps://x@h\ntimeout = 7\n");
	write_file(dflt, "[account x]\nurl = imaps://x@h\ntimeout = 8\n");
	{
		const char *args[] = { "-F", other, "x", "/mnt", NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpuint(o.timeout, ==, 7);
		g_assert_cmpstr(o.config_file, ==, other);
		mfs_options_clear(&o);
	}
	{
		g_autofree char *joined = g_strconcat("-F", other, NULL);
		const char *args[] = { "x", "/mnt", joined, NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpuint(o.timeout, ==, 7);
		mfs_options_clear(&o);
	}
	{
		const char *args[] = { "x", "/mnt", NULL };

		g_assert_true(parse_args(&o, args, &err));
		g_assert_no_error(err);
		g_assert_cmpuint(o.timeout, ==, 8);
		mfs_options_clear(&o);
	}
	remove_conf();
}

/* ---- the key table ---- */

static void test_known_keys(void)
{
	static const char *const expected[] = {
		"url",	       "password_command", "password_file", "auth",
		"oauth_token_command", "tls",  "ca_file",	    "tls_fingerprint",
		"readonly",    "cache_dir",	   "cache_size",    "connections",
		"refresh",     "timeout",	   "names",	    "exclude",
		"virtual_folders", "hardlinks", "mark_seen",	   "delete",	    "trash",
		"idle",	       "prefetch",	   "log",		   "pop3_keep",	    "pop3_archive",
		"poll",	       "nonempty",
	};
	/* A value each key accepts, so every listed key is proven to be parsed. */
	static const char *const sample[] = {
		NULL, "true", "/pw", "plain", "true", "implicit", "/ca", NULL, "yes", "/c",
		"2G", "3", "4", "5", "uid", "x", "show", "no", "on", "expunge", "Deleted Items", "no", "16M", "fuse",
		"yes", "none", "120", "yes",
	};
	const char *const *keys = mfs_options_known_keys();
	guint n = 0;

	G_STATIC_ASSERT(G_N_ELEMENTS(expected) == G_N_ELEMENTS(sample));
	while (keys[n])
		n++;
	g_assert_cmpuint(n, ==, G_N_ELEMENTS(expected));
	for (size_t i = 0; i < G_N_ELEMENTS(expected); i++) {
		g_assert_cmpstr(keys[i], ==, expected[i]);
		if (sample[i]) {
			struct mfs_options o;
			g_autoptr(GError) err = NULL;
			g_autofree char *opt = g_strdup_printf("%s=%s", keys[i], sample[i]);

			g_assert_true(parse_o(&o, opt, &err));
			g_assert_no_error(err);
			mfs_options_clear(&o);
		}
	}
	g_assert_true(mfs_options_known_keys() == keys);
}

/*
 * Every key in mailfs.conf.example, commented out or not, is a known key;
 * every known key is there; each example account parses.
 */
static void test_example_file(void)
{
	g_autofree char *path = g_test_build_filename(G_TEST_DIST, "..", "..",
						      "mailfs.conf.example", NULL);
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) err = NULL;
	g_autoptr(GRegex) re = g_regex_new("^#?\\s*([a-z_0-9]+)\\s*=", 0, 0, NULL);
	const char *const *keys = mfs_options_known_keys();
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_auto(GStrv) groups = NULL;

	g_assert_true(g_file_get_contents(path, &text, NULL, &err));
	g_assert_true(g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &err));
	g_assert_no_error(err);
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		g_autoptr(GMatchInfo) m = NULL;

		if (g_regex_match(re, *l, 0, &m)) {
			g_autofree char *key = g_match_info_fetch(m, 1);

			if (!g_strv_contains(keys, key))
				g_error("%s: unknown key '%s'", path, key);
			g_hash_table_add(seen, g_steal_pointer(&key));
		}
	}
	for (const char *const *k = keys; *k; k++) {
		if (!g_hash_table_contains(seen, *k))
			g_error("%s: key '%s' is missing", path, *k);
	}
	groups = g_key_file_get_groups(kf, NULL);
	for (char **g = groups; *g; g++) {
		struct mfs_options o;
		const char *args[] = { "-F", path, NULL, "/mnt", NULL };

		if (!g_str_has_prefix(*g, "account "))
			continue;
		args[2] = *g + strlen("account ");
		if (!parse_args(&o, args, &err))
			g_error("%s: [%s]: %s", path, *g, err->message);
		mfs_options_clear(&o);
	}
}

static void test_account_dirname(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "work", "work" },
		{ "alice@imap.example.com", "alice@imap.example.com" },
		{ "a/b", "a%2Fb" },
		{ "100%", "100%25" },
		{ ".hidden", "%2Ehidden" },
		{ ".", "%2E" },
		{ "..", "%2E." },
		{ "", "%" },
		{ "a\nb\x7f", "a%0Ab%7F" },
		{ "J\xc3\xbcrgen@h", "J\xc3\xbcrgen@h" },
		{ "dave@::1", "dave@::1" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = mfs_options_account_dirname(cases[i].in);

		g_assert_cmpstr(got, ==, cases[i].out);
	}
}

static void test_account_dirname_in_cache(void)
{
	struct mfs_options o;
	g_autoptr(GError) err = NULL;
	const char *args[] = { "imaps://x%2Fy@h", "/mnt", NULL };
	g_autofree char *want = NULL;

	g_assert_true(parse_args(&o, args, &err));
	g_assert_cmpstr(o.account, ==, "x/y@h");
	want = g_build_filename(g_get_user_cache_dir(), "mailfs", "x%2Fy@h", NULL);
	g_assert_cmpstr(o.cache_dir, ==, want);
	mfs_options_clear(&o);
}

static void test_init_clear(void)
{
	struct mfs_options o;

	mfs_options_init(&o);
	mfs_options_clear(&o);
	mfs_options_clear(&o); /* cleared twice: harmless */
}

static void remove_tree(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	while (dir && (name = g_dir_read_name(dir))) {
		g_autofree char *child = g_build_filename(path, name, NULL);

		if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
		    !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
			remove_tree(child);
		else
			g_remove(child);
	}
	if (dir)
		g_dir_close(dir);
	g_rmdir(path);
}

/*
 * Our own HOME and XDG directories, set before GLib caches them. Not
 * G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks its per-test copies, which
 * would fail the valgrind and ASan runs.
 */
static char *isolate_dirs(void)
{
	static const char *const vars[] = { "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
					    "XDG_DATA_HOME", "XDG_STATE_HOME" };
	char *root = g_dir_make_tmp("test_options_XXXXXX", NULL);

	g_assert_nonnull(root);
	for (size_t i = 0; i < G_N_ELEMENTS(vars); i++) {
		g_autofree char *dir = g_build_filename(root, vars[i], NULL);

		g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
		g_setenv(vars[i], dir, TRUE);
	}
	return root;
}

int main(int argc, char **argv)
{
	g_autofree char *root = isolate_dirs();
	int ret;

	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/options/init-clear", test_init_clear);
	g_test_add_func("/options/url/good", test_good_urls);
	g_test_add_func("/options/url/bad", test_bad_urls);
	g_test_add_func("/options/o/booleans", test_o_booleans);
	g_test_add_func("/options/o/values", test_o_values);
	g_test_add_func("/options/o/sizes", test_o_sizes);
	g_test_add_func("/options/o/errors", test_o_errors);
	g_test_add_func("/options/o/fuse-and-ignored", test_o_fuse_and_ignored);
	g_test_add_func("/options/o/exclude", test_o_exclude);
	g_test_add_func("/options/o/tls", test_o_tls);
	g_test_add_func("/options/argv/good", test_argv);
	g_test_add_func("/options/argv/errors", test_argv_errors);
	g_test_add_func("/options/config/account", test_config);
	g_test_add_func("/options/config/errors", test_config_errors);
	g_test_add_func("/options/config/file-choice", test_config_file_choice);
	g_test_add_func("/options/known-keys", test_known_keys);
	g_test_add_func("/options/example-file", test_example_file);
	g_test_add_func("/options/account-dirname", test_account_dirname);
	g_test_add_func("/options/account-dirname-in-cache", test_account_dirname_in_cache);
	ret = g_test_run();
	remove_tree(root);
	return ret;
}
