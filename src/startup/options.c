/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "startup/options.h"

#include "startup/keyfile_lines.h"
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

/* Enum and boolean fields are written through an int pointer by the table. */
G_STATIC_ASSERT(sizeof(enum mfs_tls) == sizeof(int));
G_STATIC_ASSERT(sizeof(enum mfs_names) == sizeof(int));
G_STATIC_ASSERT(sizeof(enum mfs_auth) == sizeof(int));
G_STATIC_ASSERT(sizeof(gboolean) == sizeof(int));

#define USAGE "usage: mailfs [options] SOURCE MOUNTPOINT"

struct word {
	const char *name;
	int value;
};

struct key_def {
	const char *name;
	/* value NULL: back to "unset" (only for keys whose def is NULL). */
	gboolean (*parse)(struct mfs_options *o, const struct key_def *k, const char *value,
			  GError **err);
	size_t offset;
	const char *def; /* the built-in default, written as a value; NULL: unset */
	guint64 min, max;
	const struct word *words; /* NULL-name terminated */
};

static void *field(struct mfs_options *o, const struct key_def *k)
{
	return (char *)o + k->offset;
}

static void bad_value(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void bad_value(GError **err, const char *fmt, ...)
{
	va_list ap;
	g_autofree char *msg = NULL;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, msg);
}

/* ---- value parsers, one per kind of key ---- */

static gboolean parse_string(struct mfs_options *o, const struct key_def *k, const char *value,
			     GError **err)
{
	char **f = field(o, k);

	(void)err;
	g_free(*f);
	*f = g_strdup(value);
	return TRUE;
}

/* Run later as an argv without a shell; checked now so a typo fails at mount. */
static gboolean parse_command(struct mfs_options *o, const struct key_def *k, const char *value,
			      GError **err)
{
	g_auto(GStrv) argv = NULL;
	g_autoptr(GError) e = NULL;

	if (value && !g_shell_parse_argv(value, NULL, &argv, &e)) {
		/* Not GLib's message: it quotes the command, which may hold a secret. */
		bad_value(err, "cannot split the command into words: %s",
			  g_error_matches(e, G_SHELL_ERROR, G_SHELL_ERROR_EMPTY_STRING)
				  ? "it is empty"
				  : "an unbalanced quote or a trailing backslash");
		return FALSE;
	}
	return parse_string(o, k, value, err);
}

static gboolean parse_path(struct mfs_options *o, const struct key_def *k, const char *value,
			   GError **err)
{
	char **f = field(o, k);
	char *path;

	if (!value) {
		g_clear_pointer(f, g_free);
		return TRUE;
	}
	if (strcmp(value, "~") == 0)
		path = g_strdup(g_get_home_dir());
	else if (g_str_has_prefix(value, "~/"))
		path = g_build_filename(g_get_home_dir(), value + 2, NULL);
	else
		path = g_strdup(value);
	if (!g_path_is_absolute(path)) {
		bad_value(err, "'%s' is not an absolute path (a leading ~/ is allowed)", value);
		g_free(path);
		return FALSE;
	}
	g_free(*f);
	*f = path;
	return TRUE;
}

static const struct word bool_words[] = {
	{ "yes", TRUE }, { "no", FALSE },  { "true", TRUE }, { "false", FALSE },
	{ "on", TRUE },	 { "off", FALSE }, { "1", TRUE },    { "0", FALSE },
	{ NULL, 0 },
};

static gboolean lookup_word(const struct word *words, const char *value, int *out)
{
	g_autofree char *v = g_strstrip(g_strdup(value));

	for (const struct word *w = words; w->name; w++) {
		if (g_ascii_strcasecmp(w->name, v) == 0) {
			*out = w->value;
			return TRUE;
		}
	}
	return FALSE;
}

static gboolean parse_bool(struct mfs_options *o, const struct key_def *k, const char *value,
			   GError **err)
{
	if (!lookup_word(bool_words, value, field(o, k))) {
		bad_value(err, "'%s' is not a boolean (yes, no, true, false, on, off, 1, 0)",
			  value);
		return FALSE;
	}
	return TRUE;
}

static gboolean parse_enum(struct mfs_options *o, const struct key_def *k, const char *value,
			   GError **err)
{
	g_autoptr(GString) known = NULL;

	if (lookup_word(k->words, value, field(o, k)))
		return TRUE;
	known = g_string_new(NULL);
	for (const struct word *w = k->words; w->name; w++)
		g_string_append_printf(known, "%s%s", known->len ? ", " : "", w->name);
	bad_value(err, "'%s' is not one of: %s", value, known->str);
	return FALSE;
}

static gboolean parse_tls(struct mfs_options *o, const struct key_def *k, const char *value,
			  GError **err)
{
	if (!value) {
		o->tls_explicit = FALSE;
		return TRUE;
	}
	if (!parse_enum(o, k, value, err))
		return FALSE;
	o->tls_explicit = TRUE;
	return TRUE;
}

static gboolean parse_number(const struct key_def *k, const char *value, guint64 *out,
			     GError **err)
{
	g_autofree char *v = g_strstrip(g_strdup(value));

	if (!g_ascii_string_to_unsigned(v, 10, k->min, k->max, out, NULL)) {
		bad_value(err,
			  "'%s' is not a number from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
			  value, k->min, k->max);
		return FALSE;
	}
	return TRUE;
}

static gboolean parse_uint(struct mfs_options *o, const struct key_def *k, const char *value,
			   GError **err)
{
	guint64 n;

	g_assert(k->max <= G_MAXUINT);
	if (!parse_number(k, value, &n, err))
		return FALSE;
	*(guint *)field(o, k) = (guint)n;
	return TRUE;
}

static gboolean parse_size(struct mfs_options *o, const struct key_def *k, const char *value,
			   GError **err)
{
	g_autofree char *v = g_strstrip(g_strdup(value));
	size_t len = strlen(v);
	guint64 mult = 1, n;

	if (len > 0 && !g_ascii_isdigit(v[len - 1])) {
		switch (g_ascii_toupper(v[len - 1])) {
		case 'K':
			mult = G_GUINT64_CONSTANT(1) << 10;
			break;
		case 'M':
			mult = G_GUINT64_CONSTANT(1) << 20;
			break;
		case 'G':
			mult = G_GUINT64_CONSTANT(1) << 30;
			break;
		case 'T':
			mult = G_GUINT64_CONSTANT(1) << 40;
			break;
		default:
			bad_value(err, "'%s' is not a size (a number with K, M, G or T)", value);
			return FALSE;
		}
		v[len - 1] = '\0';
	}
	if (!g_ascii_string_to_unsigned(v, 10, 0, G_MAXUINT64, &n, NULL)) {
		bad_value(err, "'%s' is not a size (a number with K, M, G or T)", value);
		return FALSE;
	}
	if (n > G_MAXUINT64 / mult || n * mult < k->min || n * mult > k->max) {
		bad_value(err, "size '%s' is out of range (at least %" G_GUINT64_FORMAT " bytes)",
			  value, k->min);
		return FALSE;
	}
	*(guint64 *)field(o, k) = n * mult;
	return TRUE;
}

static gboolean parse_globs(struct mfs_options *o, const struct key_def *k, const char *value,
			    GError **err)
{
	char ***f = field(o, k);
	g_auto(GStrv) parts = g_strsplit(value, ";", -1);
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);

	(void)err;
	for (char **p = parts; *p; p++) {
		const char *glob = g_strstrip(*p);

		if (*glob)
			g_ptr_array_add(out, g_strdup(glob));
	}
	g_ptr_array_add(out, NULL);
	g_strfreev(*f);
	*f = (char **)g_ptr_array_free(g_steal_pointer(&out), FALSE);
	return TRUE;
}

static gboolean parse_log(struct mfs_options *o, const struct key_def *k, const char *value,
			  GError **err)
{
	return mfs_log_parse_categories(value, field(o, k), err);
}

/* SHA-256 of the leaf certificate: 64 hex digits, ':' between bytes allowed. */
static gboolean parse_fingerprint(struct mfs_options *o, const struct key_def *k,
				  const char *value, GError **err)
{
	GString *hex;

	if (!value)
		return parse_string(o, k, NULL, err);
	hex = g_string_new(NULL);
	for (const char *p = value; *p; p++) {
		if (*p == ':' || g_ascii_isspace(*p))
			continue;
		if (!g_ascii_isxdigit(*p) || hex->len >= 64) {
			g_string_free(hex, TRUE);
			bad_value(err, "'%s' is not a SHA-256 fingerprint (64 hex digits)", value);
			return FALSE;
		}
		g_string_append_c(hex, g_ascii_tolower(*p));
	}
	if (hex->len != 64) {
		g_string_free(hex, TRUE);
		bad_value(err, "'%s' is not a SHA-256 fingerprint (64 hex digits)", value);
		return FALSE;
	}
	g_free(*(char **)field(o, k));
	*(char **)field(o, k) = g_string_free(hex, FALSE);
	return TRUE;
}

/* A path, or "none": no archive (pop3_archive_none). */
static gboolean parse_archive(struct mfs_options *o, const struct key_def *k, const char *value,
			      GError **err)
{
	g_autofree char *v = value ? g_strstrip(g_strdup(value)) : NULL;

	o->pop3_archive_none = v && g_ascii_strcasecmp(v, "none") == 0;
	if (o->pop3_archive_none)
		return parse_path(o, k, NULL, err);
	return parse_path(o, k, value, err);
}

/* ---- the one table of keys ---- */

static const struct word auth_words[] = {
	{ "best", MFS_AUTH_BEST },	   { "plain", MFS_AUTH_PLAIN },
	{ "login", MFS_AUTH_LOGIN },	   { "xoauth2", MFS_AUTH_XOAUTH2 },
	{ "oauthbearer", MFS_AUTH_OAUTHBEARER }, { NULL, 0 },
};
static const struct word tls_words[] = {
	{ "implicit", MFS_TLS_IMPLICIT },
	{ "starttls", MFS_TLS_STARTTLS },
	{ "none", MFS_TLS_NONE },
	{ NULL, 0 },
};
static const struct word names_words[] = {
	{ "uid-subject", MFS_NAMES_UID_SUBJECT },
	{ "uid", MFS_NAMES_UID },
	{ NULL, 0 },
};
static const struct word delete_words[] = {
	{ "trash", MFS_DELETE_TRASH },
	{ "expunge", MFS_DELETE_EXPUNGE },
	{ NULL, 0 },
};
static const struct word virtual_words[] = {
	{ "hide", FALSE },
	{ "show", TRUE },
	{ NULL, 0 },
};

#define OFF(f) offsetof(struct mfs_options, f)
#define KEY(name, parser, f, def) { name, parser, OFF(f), def, 0, 0, NULL }
#define KEY_NUM(name, parser, f, def, min, max) { name, parser, OFF(f), def, min, max, NULL }
#define KEY_ENUM(name, parser, f, def, words) { name, parser, OFF(f), def, 0, 0, words }
#define MIB (G_GUINT64_CONSTANT(1) << 20)

/* Adding a key: one line here, a field in struct mfs_options, the header's list. */
static const struct key_def keys[] = {
	KEY("url", parse_string, url, NULL),
	KEY("password_command", parse_command, password_command, NULL),
	KEY("password_file", parse_path, password_file, NULL),
	KEY_ENUM("auth", parse_enum, auth, "best", auth_words),
	KEY("oauth_token_command", parse_command, oauth_token_command, NULL),
	KEY_ENUM("tls", parse_tls, tls, NULL, tls_words),
	KEY("ca_file", parse_path, ca_file, NULL),
	KEY("tls_fingerprint", parse_fingerprint, tls_fingerprint, NULL),
	KEY("readonly", parse_bool, readonly, "no"),
	KEY("cache_dir", parse_path, cache_dir, NULL),
	KEY_NUM("cache_size", parse_size, cache_size, "1G", MIB, G_MAXUINT64),
	KEY_NUM("connections", parse_uint, connections, "4", 1, 32),
	KEY_NUM("refresh", parse_uint, refresh, "30", 0, 86400),
	KEY_NUM("timeout", parse_uint, timeout, "30", 1, 3600),
	KEY_ENUM("names", parse_enum, names, "uid-subject", names_words),
	KEY("exclude", parse_globs, exclude, ""),
	KEY_ENUM("virtual_folders", parse_enum, virtual_folders_show, "hide", virtual_words),
	KEY("hardlinks", parse_bool, hardlinks, "yes"),
	KEY("mark_seen", parse_bool, mark_seen, "no"),
	KEY_ENUM("delete", parse_enum, delete_mode, "trash", delete_words),
	KEY("trash", parse_string, trash, NULL),
	KEY("idle", parse_bool, idle, "yes"),
	KEY_NUM("prefetch", parse_size, prefetch, "64M", 0, G_MAXUINT64),
	KEY("log", parse_log, log_categories, "none"),
	KEY("pop3_keep", parse_bool, pop3_keep, "no"),
	KEY("pop3_archive", parse_archive, pop3_archive, NULL),
	KEY_NUM("poll", parse_uint, poll, "60", 1, 86400),
	KEY("nonempty", parse_bool, nonempty, "no"),
};

static const struct key_def *find_key(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

/* Written once, under known_once; NULL-terminated. */
static const char *known_names[G_N_ELEMENTS(keys) + 1];

static void known_keys_init(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
		known_names[i] = keys[i].name;
}

/* pthread_once rather than g_once_init_enter, whose publication
   ThreadSanitizer cannot see (util/lock.h). */
const char *const *mfs_options_known_keys(void)
{
	static pthread_once_t known_once = PTHREAD_ONCE_INIT;

	if (pthread_once(&known_once, known_keys_init) != 0)
		g_error("pthread_once failed");
	return known_names;
}

/* ---- init / clear ---- */

void mfs_options_init(struct mfs_options *o)
{
	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
		gboolean ok = keys[i].parse(o, &keys[i], keys[i].def, NULL);

		g_assert(ok); /* a default that does not parse is a bug in the table */
	}
	o->fuse_opts = g_ptr_array_new_with_free_func(g_free);
}

void mfs_options_clear(struct mfs_options *o)
{
	g_free(o->source);
	g_free(o->mountpoint);
	g_free(o->config_file);
	g_free(o->account);
	g_free(o->url);
	g_free(o->user);
	g_free(o->host);
	g_free(o->port);
	g_free(o->password_command);
	g_free(o->password_file);
	g_free(o->oauth_token_command);
	g_free(o->ca_file);
	g_free(o->tls_fingerprint);
	g_free(o->cache_dir);
	g_free(o->trash);
	g_free(o->pop3_archive);
	g_strfreev(o->exclude);
	if (o->fuse_opts)
		g_ptr_array_unref(o->fuse_opts);
	memset(o, 0, sizeof(*o));
}

/* ---- URLs ---- */

struct scheme {
	const char *name;
	enum mfs_proto proto;
	enum mfs_tls tls;
	const char *port;
};

static const struct scheme schemes[] = {
	{ "imaps", MFS_PROTO_IMAP, MFS_TLS_IMPLICIT, "993" },
	{ "imap", MFS_PROTO_IMAP, MFS_TLS_STARTTLS, "143" },
	{ "pop3s", MFS_PROTO_POP3, MFS_TLS_IMPLICIT, "995" },
	{ "pop3", MFS_PROTO_POP3, MFS_TLS_STARTTLS, "110" },
};

struct url_parts {
	const struct scheme *scheme;
	char *user, *host, *port;
};

static void url_parts_clear(struct url_parts *u)
{
	g_free(u->user);
	g_free(u->host);
	g_free(u->port);
}

static gboolean is_url(const char *s)
{
	return strstr(s, "://") != NULL;
}

static gboolean parse_host(const char *s, size_t len, struct url_parts *u, GError **err)
{
	g_autofree char *host = g_strndup(s, len);
	const char *colon;
	const char *port = NULL;

	if (host[0] == '[') {
		char *close = strchr(host, ']');

		if (!close) {
			bad_value(err, "unclosed '[' in the host");
			return FALSE;
		}
		*close = '\0';
		if (!strchr(host + 1, ':') || strchr(host + 1, '%') ||
		    !g_hostname_is_ip_address(host + 1)) {
			bad_value(err, "'[%s]' is not an IPv6 address", host + 1);
			return FALSE;
		}
		if (close[1] == ':')
			port = close + 2;
		else if (close[1]) {
			bad_value(err, "unexpected '%s' after the IPv6 address", close + 1);
			return FALSE;
		}
		u->host = g_ascii_strdown(host + 1, -1);
	} else {
		colon = strchr(host, ':');
		if (colon) {
			if (strchr(colon + 1, ':')) {
				bad_value(err, "an IPv6 address must be written in brackets: [%s]",
					  host);
				return FALSE;
			}
			port = colon + 1;
			host[colon - host] = '\0';
		}
		if (!*host) {
			bad_value(err, "the host name is missing (SCHEME://USER@HOST)");
			return FALSE;
		}
		if (g_str_is_ascii(host)) {
			for (const char *p = host; *p; p++) {
				if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_') {
					g_autofree char *shown =
						mfs_log_escape(host, strlen(host), 80);

					bad_value(err, "'%s' is not a host name", shown);
					return FALSE;
				}
			}
			u->host = g_ascii_strdown(host, -1);
		} else {
			char *ascii = g_utf8_validate(host, -1, NULL) ? g_hostname_to_ascii(host)
								       : NULL;

			if (!ascii) {
				g_autofree char *shown = mfs_log_escape(host, strlen(host), 80);

				bad_value(err, "'%s' is not a host name", shown);
				return FALSE;
			}
			u->host = g_ascii_strdown(ascii, -1);
			g_free(ascii);
		}
	}
	if (port && *port) {
		guint64 n;

		if (!g_ascii_string_to_unsigned(port, 10, 1, 65535, &n, NULL)) {
			g_autofree char *shown = mfs_log_escape(port, strlen(port), 20);

			bad_value(err, "port '%s' is not a number from 1 to 65535", shown);
			return FALSE;
		}
		u->port = g_strdup_printf("%u", (unsigned)n);
	} else {
		u->port = g_strdup(u->scheme->port);
	}
	return TRUE;
}

/*
 * No message here repeats the URL: it may hold a password, and what is
 * wrong is clearer named on its own.
 */
static gboolean parse_url(const char *url, struct url_parts *u, GError **err)
{
	const char *sep = strstr(url, "://");
	const char *rest, *at, *hostpart, *end;
	g_autofree char *scheme = NULL;
	g_autofree char *userinfo = NULL;

	if (!sep) {
		bad_value(err, "not a URL (SCHEME://USER@HOST)");
		return FALSE;
	}
	scheme = g_strndup(url, (gsize)(sep - url));
	for (size_t i = 0; i < G_N_ELEMENTS(schemes); i++) {
		if (g_ascii_strcasecmp(scheme, schemes[i].name) == 0)
			u->scheme = &schemes[i];
	}
	if (!u->scheme) {
		g_autofree char *shown = mfs_log_escape(scheme, strlen(scheme), 20);

		bad_value(err, "unknown scheme '%s' (imaps, imap, pop3s or pop3)", shown);
		return FALSE;
	}
	rest = sep + 3;
	/* A host never holds '@', so the last one ends the user even if it is not encoded. */
	at = strrchr(rest, '@');
	if (!at) {
		bad_value(err, "the user name is missing (%s://USER@HOST)", u->scheme->name);
		return FALSE;
	}
	userinfo = g_strndup(rest, (gsize)(at - rest));
	if (strchr(userinfo, ':')) {
		bad_value(err, "a password in the URL is not accepted; "
			       "use password_command or password_file");
		return FALSE;
	}
	/* RFC 3986 forbids these unescaped in userinfo; here they mean a '@' past the host. */
	if (strpbrk(userinfo, "/?#")) {
		bad_value(err, "'/', '?' or '#' in the user name or a '@' after the host "
			       "(write them as %%2F, %%3F, %%23, %%40)");
		return FALSE;
	}
	u->user = g_uri_unescape_string(userinfo, NULL);
	if (!u->user) {
		bad_value(err, "bad %%-escape in the user name");
		return FALSE;
	}
	if (!*u->user) {
		bad_value(err, "the user name is missing (%s://USER@HOST)", u->scheme->name);
		return FALSE;
	}
	if (!g_utf8_validate(u->user, -1, NULL)) {
		bad_value(err, "the user name is not valid UTF-8");
		return FALSE;
	}
	for (const char *p = u->user; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			bad_value(err, "the user name holds a control character");
			return FALSE;
		}
	}
	hostpart = at + 1;
	end = hostpart + strcspn(hostpart, "/?#");
	if (!parse_host(hostpart, (size_t)(end - hostpart), u, err))
		return FALSE;
	if (*end && strcmp(end, "/") != 0) {
		g_autofree char *shown = mfs_log_escape(end, strlen(end), 80);

		bad_value(err, "unexpected '%s' after the host: a URL names the account, "
			       "its mailboxes are the mount's folders", shown);
		return FALSE;
	}
	return TRUE;
}

static char *normalized_url(const struct url_parts *u)
{
	g_autofree char *user = g_uri_escape_string(u->user, NULL, FALSE);
	gboolean v6 = strchr(u->host, ':') != NULL;
	gboolean default_port = strcmp(u->port, u->scheme->port) == 0;

	return g_strdup_printf("%s://%s@%s%s%s%s%s", u->scheme->name, user, v6 ? "[" : "",
			       u->host, v6 ? "]" : "", default_port ? "" : ":",
			       default_port ? "" : u->port);
}

char *mfs_options_account_dirname(const char *account)
{
	GString *s = g_string_new(NULL);

	for (const char *p = account; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '%' || c == '/' || c < 0x20 || c == 0x7f || (p == account && c == '.'))
			g_string_append_printf(s, "%%%02X", c);
		else
			g_string_append_c(s, (char)c);
	}
	if (s->len == 0)
		g_string_append_c(s, '%');
	return g_string_free(s, FALSE);
}

/* ---- applying keys ---- */

struct ctx {
	struct mfs_options *o;
	gboolean source_is_url;
	char *url_origin; /* who set url, for its error messages */
};

/* where: "-o KEY" or "FILE: [SECTION] KEY", the prefix of any error. */
static gboolean apply_key(struct ctx *c, const struct key_def *k, const char *value,
			  const char *where, GError **err)
{
	if (value && !*value)
		value = k->def;
	if (!k->parse(c->o, k, value, err)) {
		g_prefix_error(err, "%s: ", where);
		return FALSE;
	}
	if (k->offset == OFF(url)) {
		g_free(c->url_origin);
		c->url_origin = g_strdup(where);
	}
	return TRUE;
}

static const char *const no_password_hint =
	"there is no password option: use password_command or password_file";

static gboolean is_password_key(const char *key)
{
	return strcmp(key, "password") == 0 || strcmp(key, "pass") == 0 ||
	       strcmp(key, "passwd") == 0;
}

/* ---- -o ---- */

enum fuse_arg { FUSE_FLAG, FUSE_NUMBER, FUSE_STRING };

static const struct {
	const char *name;
	enum fuse_arg arg;
} fuse_passthrough[] = {
	{ "ro", FUSE_FLAG },
	{ "rw", FUSE_FLAG },
	{ "allow_other", FUSE_FLAG },
	{ "allow_root", FUSE_FLAG },
	{ "default_permissions", FUSE_FLAG },
	{ "auto_unmount", FUSE_FLAG },
	{ "clone_fd", FUSE_FLAG },
	{ "max_read", FUSE_NUMBER },
	{ "max_threads", FUSE_NUMBER },
	{ "max_idle_threads", FUSE_NUMBER },
	{ "fsname", FUSE_STRING },
	{ "subtype", FUSE_STRING },
};

/* Generic mount(8) options that reach us through mount.fuse3 from fstab. */
static const char *const ignored_opts[] = {
	"defaults", "auto",	  "noauto",	 "user",	"users",      "nouser",
	"owner",    "group",	  "_netdev",	 "nofail",	"atime",      "noatime",
	"relatime", "norelatime", "strictatime", "nostrictatime", "diratime", "nodiratime",
	"lazytime", "nolazytime", "dev",	 "nodev",	"suid",	      "nosuid",
	"exec",	    "noexec",	  "async",
};

static gboolean is_ignored(const char *key)
{
	if (g_str_has_prefix(key, "x-") || strcmp(key, "comment") == 0)
		return TRUE;
	for (size_t i = 0; i < G_N_ELEMENTS(ignored_opts); i++) {
		if (strcmp(key, ignored_opts[i]) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Split at ',' not preceded by '\'; items keep their escapes (fuse_opt form). */
static void split_o(const char *arg, GPtrArray *items)
{
	GString *cur = g_string_new(NULL);

	for (const char *p = arg;; p++) {
		if (*p == '\\' && p[1]) {
			g_string_append_c(cur, *p++);
			g_string_append_c(cur, *p);
		} else if (*p == ',' || !*p) {
			if (cur->len)
				g_ptr_array_add(items, g_strdup(cur->str));
			g_string_truncate(cur, 0);
			if (!*p)
				break;
		} else {
			g_string_append_c(cur, *p);
		}
	}
	g_string_free(cur, TRUE);
}

static char *unescape_o(const char *item)
{
	GString *s = g_string_new(NULL);

	for (const char *p = item; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		g_string_append_c(s, *p);
	}
	return g_string_free(s, FALSE);
}

static gboolean apply_fuse_opt(struct ctx *c, const char *raw, const char *key, const char *value,
			       GError **err)
{
	for (size_t i = 0; i < G_N_ELEMENTS(fuse_passthrough); i++) {
		if (strcmp(key, fuse_passthrough[i].name) != 0)
			continue;
		if (fuse_passthrough[i].arg == FUSE_FLAG && value) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "option '%s' takes no value", key);
			return FALSE;
		}
		if (fuse_passthrough[i].arg != FUSE_FLAG && (!value || !*value)) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "option '%s' needs a value (%s=...)", key, key);
			return FALSE;
		}
		if (fuse_passthrough[i].arg == FUSE_NUMBER &&
		    !g_ascii_string_to_unsigned(value, 10, 0, G_MAXINT, NULL, NULL)) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "-o %s: '%s' is not a number", key, value);
			return FALSE;
		}
		if (strcmp(key, "ro") == 0)
			c->o->readonly = TRUE;
		g_ptr_array_add(c->o->fuse_opts, g_strdup(raw));
		return TRUE;
	}
	g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION, "unknown option '%s'%s%s",
		    key, is_password_key(key) ? ": " : "",
		    is_password_key(key) ? no_password_hint : "");
	return FALSE;
}

static gboolean apply_o_item(struct ctx *c, const char *raw, GError **err)
{
	g_autofree char *item = unescape_o(raw);
	char *eq = strchr(item, '=');
	const char *value = NULL;
	const char *key;
	const struct key_def *k;
	g_autofree char *where = NULL;

	if (eq) {
		*eq = '\0';
		value = eq + 1;
	}
	key = g_strstrip(item);
	if (!*key) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
			    "-o: an option has no name");
		return FALSE;
	}
	k = find_key(key);
	if (!k) {
		if (strcmp(key, "debug") == 0 && !value) {
			c->o->debug = c->o->foreground = TRUE;
			return TRUE;
		}
		if (is_ignored(key))
			return TRUE;
		return apply_fuse_opt(c, raw, key, value, err);
	}
	if (k->offset == OFF(url) && c->source_is_url) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "-o url: SOURCE is already a URL");
		return FALSE;
	}
	if (!value) {
		if (k->parse != parse_bool) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "option '%s' needs a value (%s=...)", key, key);
			return FALSE;
		}
		value = "yes";
	}
	where = g_strdup_printf("-o %s", key);
	return apply_key(c, k, value, where, err);
}

/* ---- argv ---- */

static gboolean take_arg(int argc, char **argv, int *i, GError **err, const char **out)
{
	const char *a = argv[*i];

	if (a[2]) {
		*out = a + 2;
		return TRUE;
	}
	if (*i + 1 >= argc) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "option '%s' needs an argument", a);
		return FALSE;
	}
	*out = argv[++*i];
	return TRUE;
}

static gboolean scan_argv(struct mfs_options *o, int argc, char **argv, GPtrArray *o_items,
			  GError **err)
{
	gboolean only_positionals = FALSE;
	int npos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *arg;

		if (!only_positionals && a[0] == '-' && a[1]) {
			if (strcmp(a, "--") == 0) {
				only_positionals = TRUE;
			} else if (a[1] == 'o') {
				if (!take_arg(argc, argv, &i, err, &arg))
					return FALSE;
				split_o(arg, o_items);
			} else if (a[1] == 'F') {
				if (!take_arg(argc, argv, &i, err, &arg))
					return FALSE;
				g_free(o->config_file);
				o->config_file = g_strdup(arg);
			} else if (strspn(a + 1, "fds") == strlen(a + 1)) {
				for (const char *p = a + 1; *p; p++) {
					if (*p == 'f')
						o->foreground = TRUE;
					else if (*p == 'd')
						o->debug = o->foreground = TRUE;
					else
						o->single_thread = TRUE;
				}
			} else {
				g_autofree char *shown = mfs_log_escape(a, strlen(a), 40);

				g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
					    "unknown command-line option '%s' (" USAGE ")", shown);
				return FALSE;
			}
			continue;
		}
		if (npos >= 2) {
			g_autofree char *shown = mfs_log_escape(a, strlen(a), 80);

			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
				    "too many arguments: '%s' (" USAGE ")", shown);
			return FALSE;
		}
		if (!*a) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "%s is empty",
				    npos == 0 ? "SOURCE" : "MOUNTPOINT");
			return FALSE;
		}
		if (npos++ == 0)
			o->source = g_strdup(a);
		else
			o->mountpoint = g_strdup(a);
	}
	if (npos < 2) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "missing %s (" USAGE ")",
			    npos == 0 ? "SOURCE and MOUNTPOINT" : "MOUNTPOINT");
		return FALSE;
	}
	return TRUE;
}

/* ---- config file ---- */

/* "[account NAME]" -> NAME (blanks trimmed), "[defaults]" -> "", else NULL. */
static char *section_account(const char *group)
{
	if (strcmp(group, "defaults") == 0)
		return g_strdup("");
	if (g_str_has_prefix(group, "account ")) {
		char *name = g_strstrip(g_strdup(group + strlen("account ")));

		if (*name)
			return name;
		g_free(name);
	}
	return NULL;
}

/* The config file as read, for the lines its errors name. */
struct conf_text {
	const char *file;
	char *text; /* NULL when it could not be read again: no line numbers */
	gsize len;
};

/* "FILE:LINE" (the form compilers use, which editors jump to), or "FILE". */
static char *file_line(const struct conf_text *t, guint line)
{
	return line ? g_strdup_printf("%s:%u", t->file, line) : g_strdup(t->file);
}

static char *key_where(const struct conf_text *t, const char *group, const char *key)
{
	guint line = t->text ? keyfile_key_line(t->text, t->len, group, key) : 0;
	g_autofree char *at = file_line(t, line);

	return g_strdup_printf("%s: [%s] %s", at, group, key);
}

static gboolean check_config(GKeyFile *kf, const struct conf_text *t, GError **err)
{
	g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);

	for (char **g = groups; *g; g++) {
		g_autofree char *account = section_account(*g);
		g_auto(GStrv) names = NULL;

		if (!account) {
			g_autofree char *at =
				file_line(t, t->text ? keyfile_group_line(t->text, t->len, *g) : 0);

			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
				    "%s: unknown section [%s] "
				    "(expected [account NAME] or [defaults])",
				    at, *g);
			return FALSE;
		}
		names = g_key_file_get_keys(kf, *g, NULL, NULL);
		for (char **key = names; key && *key; key++) {
			const struct key_def *k = find_key(*key);

			g_autofree char *at = NULL;

			if (k && (*account || k->offset != OFF(url)))
				continue;
			at = file_line(t, t->text ? keyfile_key_line(t->text, t->len, *g, *key) : 0);
			if (!k)
				g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
					    "%s: [%s] unknown key '%s'%s%s", at, *g, *key,
					    is_password_key(*key) ? ": " : "",
					    is_password_key(*key) ? no_password_hint : "");
			else
				g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
					    "%s: [defaults] cannot hold 'url': it belongs in an "
					    "[account NAME] section",
					    at);
			return FALSE;
		}
	}
	return TRUE;
}

static gboolean apply_section(struct ctx *c, GKeyFile *kf, const struct conf_text *t,
			      const char *group, GError **err)
{
	g_auto(GStrv) names = g_key_file_get_keys(kf, group, NULL, NULL);

	for (char **key = names; key && *key; key++) {
		g_autofree char *where = key_where(t, group, *key);
		g_autofree char *value = NULL;
		g_autoptr(GError) e = NULL;

		value = g_key_file_get_string(kf, group, *key, &e);
		if (!value) {
			/* GLib's message would repeat the value's raw bytes. */
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s: %s", where,
				    g_error_matches(e, G_KEY_FILE_ERROR,
						    G_KEY_FILE_ERROR_UNKNOWN_ENCODING)
					    ? "the value is not valid UTF-8"
					    : e->message);
			return FALSE;
		}
		/* Trailing blanks are never meant (GKeyFile keeps them; "\\s" is there). */
		g_strchomp(value);
		if (!apply_key(c, find_key(*key), value, where, err))
			return FALSE;
	}
	return TRUE;
}

static gboolean load_config(struct ctx *c, gboolean given, GError **err)
{
	struct mfs_options *o = c->o;
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) e = NULL;
	g_auto(GStrv) groups = NULL;
	g_autofree char *text = NULL;
	struct conf_text t = { .file = o->config_file };
	const char *account_group = NULL;
	gboolean ok;

	ok = g_key_file_load_from_file(kf, o->config_file, G_KEY_FILE_NONE, &e);
	if (!ok && e->domain != G_KEY_FILE_ERROR) {
		if (g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT) && !given &&
		    c->source_is_url)
			return TRUE;
		if (g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT) && !c->source_is_url) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
				    "no account '%s': config file %s does not exist", o->source,
				    o->config_file);
			return FALSE;
		}
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "%s: %s", o->config_file,
			    e->message);
		return FALSE;
	}
	/* Read again for the line numbers of errors; without it they are left out. */
	if (g_file_get_contents(o->config_file, &text, &t.len, NULL))
		t.text = text;
	if (!ok) {
		g_autofree char *at = file_line(&t, t.text ? keyfile_error_line(t.text, t.len) : 0);

		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "%s: %s", at, e->message);
		return FALSE;
	}
	if (!check_config(kf, &t, err))
		return FALSE;

	groups = g_key_file_get_groups(kf, NULL);
	for (char **g = groups; *g; g++) {
		g_autofree char *name = section_account(*g);

		if (!c->source_is_url && *name && strcmp(name, o->source) == 0 && !account_group)
			account_group = *g;
	}
	if (!c->source_is_url && !account_group) {
		gboolean looks_like_url = strchr(o->source, '@') || strchr(o->source, ':');

		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "no [account %s] in %s%s", o->source, o->config_file,
			    looks_like_url ? " (a URL needs a scheme: imaps://USER@HOST)" : "");
		return FALSE;
	}
	if (g_key_file_has_group(kf, "defaults") && !apply_section(c, kf, &t, "defaults", err))
		return FALSE;
	if (account_group && !apply_section(c, kf, &t, account_group, err))
		return FALSE;
	return TRUE;
}

/* ---- the whole ---- */

static gboolean finish(struct ctx *c, GError **err)
{
	struct mfs_options *o = c->o;
	struct url_parts u = { 0 };
	g_autofree char *dirname = NULL;

	if (!o->url) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "account '%s' has no url (in %s: [account %s] url = imaps://USER@HOST)",
			    o->account, o->config_file, o->account);
		return FALSE;
	}
	if (!parse_url(o->url, &u, err)) {
		g_prefix_error(err, "%s: ", c->url_origin ? c->url_origin : "SOURCE");
		url_parts_clear(&u);
		return FALSE;
	}
	o->proto = u.scheme->proto;
	if (!o->tls_explicit)
		o->tls = u.scheme->tls;
	g_free(o->url);
	o->url = normalized_url(&u);
	o->user = g_steal_pointer(&u.user);
	o->host = g_steal_pointer(&u.host);
	o->port = g_steal_pointer(&u.port);
	url_parts_clear(&u);

	if (c->source_is_url)
		o->account = g_strdup_printf("%s@%s", o->user, o->host);
	dirname = mfs_options_account_dirname(o->account);
	if (strlen(dirname) > 255) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "account name is too long to name its cache directory");
		return FALSE;
	}
	if (!o->cache_dir)
		o->cache_dir = g_build_filename(g_get_user_cache_dir(), "mailfs", dirname, NULL);
	if (!o->pop3_archive && !o->pop3_archive_none)
		o->pop3_archive = g_build_filename(g_get_user_data_dir(), "mailfs", dirname, NULL);
	/* Nothing is deleted on the server of a read-only mount. */
	if (o->readonly)
		o->pop3_keep = TRUE;
	return TRUE;
}

gboolean mfs_options_parse(struct mfs_options *o, int argc, char **argv, GError **err)
{
	struct ctx c = { .o = o };
	g_autoptr(GPtrArray) o_items = g_ptr_array_new_with_free_func(g_free);
	gboolean given, ok = FALSE;

	if (!scan_argv(o, argc, argv, o_items, err))
		return FALSE;
	c.source_is_url = is_url(o->source);
	given = o->config_file != NULL;
	if (!given)
		o->config_file =
			g_build_filename(g_get_user_config_dir(), "mailfs", "mailfs.conf", NULL);
	if (c.source_is_url) {
		o->url = g_strdup(o->source);
		c.url_origin = g_strdup("SOURCE");
	} else {
		o->account = g_strdup(o->source);
	}

	if (!load_config(&c, given, err))
		goto out;
	for (guint i = 0; i < o_items->len; i++) {
		if (!apply_o_item(&c, o_items->pdata[i], err))
			goto out;
	}
	ok = finish(&c, err);
out:
	g_free(c.url_origin);
	return ok;
}
