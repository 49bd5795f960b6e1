/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * options: how mailfs was invoked and how the account is configured
 * (mailfs(1), OPTIONS and CONFIGURATION FILE). Turns argv and the config file into one struct mfs_options,
 * or into one user-facing line saying what is wrong.
 *
 * Command line:  mailfs [options] SOURCE MOUNTPOINT
 *   Options may stand before, between or after the two positionals (mount.fuse3
 *   calls `mailfs SOURCE MOUNTPOINT -o OPTS`); "--" ends options.
 *   -f foreground; -d libfuse debug + protocol trace, implies -f; -s single
 *   thread (flags may be grouped: -fd); -o OPT[,OPT...] repeatable, also
 *   -oOPT; -F FILE (also -FFILE) config file. -h/-V are main's business and
 *   are refused here like any other unknown option.
 *
 * SOURCE is a URL when it contains "://", otherwise an account NAME.
 *   URL:  SCHEME://USER@HOST[:PORT][/]   scheme imaps|imap|pop3s|pop3, any case.
 *         USER is percent-decoded (%40 -> @); a raw '@' in USER is also taken,
 *         since the host is what follows the last '@'. HOST is a DNS name
 *         (lower-cased; a non-ASCII name goes to its IDNA ASCII form), an IPv4
 *         address, or an IPv6 address in brackets ([::1]). PORT 1..65535,
 *         defaulted from the scheme (993, 143, 995, 110). Refused: a password
 *         ("USER:PW@"; the message points to password_command/password_file
 *         and never repeats the URL), a missing or empty user, an unescaped
 *         '/', '?' or '#' in the user, control bytes or invalid UTF-8 in the
 *         decoded user, a path other than "" or "/", a query or fragment, an
 *         empty or malformed host (an IPv6 zone "%25eth0" is not supported).
 *   NAME: the config file must have [account NAME] with a `url` key.
 *   The account's name is NAME, or USER@HOST for a URL.
 *
 * Config file: GKeyFile, -F FILE or $XDG_CONFIG_HOME/mailfs/mailfs.conf.
 *   -F FILE must exist; the default file must exist only for a NAME source.
 *   Sections: [account NAME] (one per account) and an optional [defaults]
 *   whose keys apply to every account (`url` is not allowed there). Any other
 *   section, and any unknown key in any section, is an error naming the file,
 *   line, section and key ("FILE:LINE: [SECTION] KEY: ..."; a syntax error
 *   "FILE:LINE: ..."; the line is found in the text, since GKeyFile does not
 *   say it: startup/keyfile_lines.h); a bad value is checked only in
 *   [defaults] and in the account being mounted. A URL source reads only [defaults] (the file is
 *   optional then). No inline comments: GKeyFile comments are whole lines.
 *   Trailing blanks of a value are dropped (GKeyFile's "\s" keeps one).
 *   Localized keys ("key[de]") are invisible to GKeyFile's key list and so
 *   silently ignored.
 *   Order of precedence: built-in default < [defaults] < [account NAME] < -o
 *   in command-line order (the last one wins).
 *
 * -o items are split at ',' (a backslash escapes the next character, as
 * libfuse's fuse_opt does: "exclude=a\,b"). Each item is one of:
 *   KEY=VALUE or KEY  a mailfs key (mfs_options_known_keys()); a bare KEY only
 *                     for a boolean key, where it means "yes". `url` only when
 *                     SOURCE is a NAME.
 *   ro                readonly=yes, and passed on to libfuse.
 *   debug             same as -d.
 *   libfuse options, passed on unchanged (escaped form kept) in fuse_opts:
 *                     ro rw allow_other allow_root default_permissions
 *                     auto_unmount clone_fd max_read=N max_threads=N
 *                     max_idle_threads=N fsname=S subtype=S
 *   generic mount options (from fstab via mount.fuse3), ignored:
 *                     defaults auto noauto user users nouser owner group
 *                     _netdev nofail atime noatime relatime norelatime
 *                     strictatime diratime nodiratime lazytime nolazytime
 *                     dev nodev suid nosuid exec noexec async user=X
 *                     comment=X x-ANYTHING (x-systemd.*, x-gvfs-*)
 *   anything else     "unknown option 'X'". There is no password option.
 *
 * Values, the same in the config file and in -o:
 *   booleans  yes|no|true|false|on|off|1|0, any case.
 *   numbers   decimal, overflow-checked, bounds per key.
 *   sizes     N with an optional K, M, G or T suffix (binary: 1K = 1024).
 *   enums     the listed words, any case.
 *   paths     password_file, ca_file, cache_dir: a leading "~/" is the home
 *             directory; the result must be absolute.
 *   commands  password_command, oauth_token_command: kept as a string, checked
 *             to split as an argv (g_shell_parse_argv); never run by a shell.
 *   An empty value ("KEY=") restores the key's built-in default.
 *
 * Keys and defaults (documented in mailfs(1), OPTIONS):
 *   url                                  (account sections, or -o for a NAME)
 *   password_command, password_file      [unset]
 *   auth        best|plain|login|xoauth2|oauthbearer   [best]
 *   oauth_token_command                  [unset]
 *   tls         implicit|starttls|none   [from the scheme]
 *   ca_file                              [unset: system store]
 *   tls_fingerprint  SHA-256, 64 hex digits, ':' allowed   [unset]
 *                    (normalized to 64 lower-case hex digits, no ':')
 *   readonly    bool                     [no]
 *   cache_dir   path                     [$XDG_CACHE_HOME/mailfs/ACCOUNT]
 *   cache_size  size, 1M..               [1G]
 *   connections 1..32                    [4]
 *   refresh     seconds 0..86400         [30]
 *   timeout     seconds 1..3600          [30]
 *   names       uid-subject|uid          [uid-subject]
 *   exclude     globs, ';'-separated, blanks around each trimmed   [none]
 *   virtual_folders  hide|show           [hide]
 *   hardlinks   bool                     [yes]
 *   mark_seen   bool                     [no]
 *   log         imap,pop3,fuse,cache,all,none   [none]
 *   pop3_keep   bool                     [no]; `readonly` sets it
 *   pop3_archive  path, or none          [$XDG_DATA_HOME/mailfs/ACCOUNT]
 *   poll        seconds 1..86400         [60]
 *   nonempty    bool                     [no]: mount over a directory that has entries
 *
 * Secrets: there is no password key; a URL with a password is refused; no
 * error message repeats a value of password_command or oauth_token_command.
 *
 * Errors: G_OPTION_ERROR (UNKNOWN_OPTION for unknown keys/options, BAD_VALUE
 * for values and URLs, FAILED for files and positionals); the message is one
 * line meant for stderr as is, naming the option or file:line/section/key.
 *
 * Not thread-safe; called once at startup before any thread exists. The
 * struct owns every pointer in it; mfs_options_clear() frees them.
 */
#ifndef MFS_OPTIONS_H
#define MFS_OPTIONS_H

#include <glib.h>

enum mfs_proto { MFS_PROTO_IMAP, MFS_PROTO_POP3 };
enum mfs_tls { MFS_TLS_IMPLICIT, MFS_TLS_STARTTLS, MFS_TLS_NONE };
enum mfs_names { MFS_NAMES_UID_SUBJECT, MFS_NAMES_UID };
enum mfs_delete { MFS_DELETE_TRASH, MFS_DELETE_EXPUNGE };
enum mfs_auth {
	MFS_AUTH_BEST, /* the best the server offers */
	MFS_AUTH_PLAIN,
	MFS_AUTH_LOGIN,
	MFS_AUTH_XOAUTH2,
	MFS_AUTH_OAUTHBEARER,
};

struct mfs_options {
	/* From the command line. */
	char *source;      /* as given: URL or account NAME */
	char *mountpoint;  /* as given; not checked here */
	char *config_file; /* -F FILE, or the default path (which may not exist for a URL) */
	gboolean foreground, debug, single_thread; /* -f, -d (sets foreground too), -s */

	/* The account. */
	char *account;          /* NAME, or USER@HOST for a URL (decoded user, lower-case host) */
	char *url;              /* normalized, no secret: scheme://USER@HOST[:PORT], user
				 * percent-encoded, port only when not the default; fit for
				 * /proc/mounts and logs */
	enum mfs_proto proto;
	enum mfs_tls tls;       /* the `tls` key, else from the scheme */
	gboolean tls_explicit;  /* `tls` was set: warn when it is MFS_TLS_NONE */
	char *user;             /* percent-decoded, valid UTF-8, no control bytes */
	char *host;             /* no brackets for IPv6; ASCII */
	char *port;             /* decimal 1..65535, never NULL after a successful parse */

	/* Keys; NULL strings are "unset". */
	char *password_command;
	char *password_file;    /* absolute */
	char *oauth_token_command;
	char *ca_file;          /* absolute */
	char *tls_fingerprint;  /* 64 lower-case hex digits */
	enum mfs_auth auth;
	gboolean readonly;
	gboolean mark_seen;
	enum mfs_delete delete_mode; /* `delete`: rm moves to Trash, or expunges */
	char *trash;            /* `trash`: the Trash mailbox's wire name; NULL: found by LIST */
	gboolean idle;          /* `idle`: push for INBOX with IMAP IDLE */
	guint64 prefetch;       /* `prefetch`: bytes fetched ahead of a sequential reader; 0: off */
	char *cache_dir;        /* absolute; never NULL after a successful parse */
	guint64 cache_size;     /* bytes */
	guint connections;
	guint refresh;          /* seconds */
	guint timeout;          /* seconds */
	enum mfs_names names;
	char **exclude;         /* NULL-terminated, never NULL, may be empty */
	gboolean virtual_folders_show;
	gboolean hardlinks;     /* one inode per message across folders (OBJECTID, X-GM-EXT-1) */
	unsigned log_categories; /* enum mfs_log_cat bits, for mfs_log_enable() */
	gboolean pop3_keep;     /* never DELE; TRUE whenever readonly */
	char *pop3_archive;     /* absolute; NULL exactly when pop3_archive_none */
	gboolean pop3_archive_none;
	guint poll;             /* seconds between POP3 listings */
	gboolean nonempty;      /* mount on a directory that has entries (startup/mountpoint.h) */

	/* libfuse options in fuse_opt form (escapes kept), in order, e.g.
	 * "allow_other", "max_read=131072"; give each as "-o" ITEM. */
	GPtrArray *fuse_opts;   /* of char *, owned */
};

/* Built-in defaults; every pointer owned. Call before parse, even on error paths. */
void mfs_options_init(struct mfs_options *o);
/* Free everything; o can be init'ed again. */
void mfs_options_clear(struct mfs_options *o);

/*
 * argv (argv[0] is the program, skipped) + config file + validation, in the
 * order above. On FALSE, *err holds the one-line message and o is left in a
 * state only fit for mfs_options_clear().
 */
gboolean mfs_options_parse(struct mfs_options *o, int argc, char **argv, GError **err);

/* Every key the config file and -o know, in table order, NULL-terminated. Static. */
const char *const *mfs_options_known_keys(void);

/*
 * A file-name-safe form of an account name, for the per-account cache, state
 * and archive directories: '%', '/', control bytes and a leading '.' become
 * %XX; an empty name becomes "%". Never "", "." or "..". Free with g_free.
 */
char *mfs_options_account_dirname(const char *account);

#endif
