/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fs/fs_pop3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/notify.h"
#include "model/headers.h"
#include "model/names.h"
#include "model/spool.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/workers.h"

#define STATUS_XATTR "user.mailfs.status"
/* QUIT (and so commit the DELEs) after this long without work. */
#define IDLE_QUIT_US (2 * G_USEC_PER_SEC)
/* After a refusal ([IN-USE], [LOGIN-DELAY], [SYS/TEMP]) the poll thread logs in
   again after this long, or after `poll` seconds when that is shorter. */
#define BUSY_RETRY_S 30
/* Headers read from a downloaded message for its Date. */
#define DATE_SCAN_MAX (64 * 1024)
/* readdir offsets: 1 after ".", 2 after "..", ino + DIR_OFF_BASE after a message. */
#define DIR_OFF_BASE 2
/* Messages RETR'd at most in one read-ahead batch (the opened one included):
   two pipeline windows; the opener waits for the batch, so it stays short. */
#define AHEAD_BATCH_MAX (2 * POP3_PIPELINE_WINDOW)
/* ... and bytes beyond the opened one: whatever `prefetch` allows, the open
   that reads ahead never waits for more than this besides its own message. */
#define AHEAD_BATCH_BYTES ((guint64)2 * 1024 * 1024)
/* Past the message a walking reader opened, the read-ahead thread keeps this
   much downloaded (within `prefetch`), in batches of half of it: enough that
   the transfer never pauses for the reader. */
#define AHEAD_LEAD_BYTES ((guint64)16 * 1024 * 1024)
/* The taker commits (three fsyncs and DELEs) once no take came for
   TAKE_GATHER_US, or TAKE_GATHER_MAX_US after the first of a batch. */
#define TAKE_GATHER_US (20 * 1000)
#define TAKE_GATHER_MAX_US (250 * 1000)

struct msg {
	guint64 ino;
	char *uidl;
	char *name;      /* names_escape(uidl) ".eml" */
	guint32 num;     /* number in the current session; 0: not on the server in it */
	guint64 size;    /* LIST size, then the downloaded size */
	gint64 mtime;
	int fd;          /* the spool copy, -1 until downloaded */
	char *spool_path;
	gboolean taken;
	gboolean taking; /* archived, off the listing, waiting for take_commit() */
	gboolean gone;   /* no longer on the server, not taken by us */
	gboolean ahead;  /* downloaded ahead of a reader, not opened since */
	guint opens;
};

/* One open file. */
struct handle {
	struct msg *m;
	gboolean at_end; /* a read at an offset >= the size was seen */
};

struct mfs_pop3_fs {
	const struct mfs_options *opts;
	const struct pop3_session_opts *so;
	struct notify *notify;
	uid_t uid;
	gid_t gid;
	char *spool_dir;
	char *state_dir;
	gint64 mount_time; /* wall clock, seconds: the date of a message without one */
	char *crash_at;    /* MAILFS_CRASH_AT */

	mfs_mutex lock;          /* everything below up to sess_lock; msg fields */
	GHashTable *by_ino;   /* guint64 * -> struct msg (owned) */
	GHashTable *handles; /* struct handle * set: open files (an unmount releases none) */
	GHashTable *by_uidl;  /* uidl -> struct msg */
	GHashTable *by_name;  /* name -> struct msg: the listing */
	guint64 next_ino;
	char *last_error;
	guint64 taken_count, taken_bytes, sessions, retrieved, retrieved_bytes;
	guint64 ahead_count;  /* messages downloaded ahead of a reader */
	char *last_open;      /* name of the message opened last: the reader's pattern */
	guint streak;         /* opens in a row, each the next listed name after the last */
	GPtrArray *takes;     /* struct msg *: archived, for the taker to commit */
	guint committing;     /* messages the taker is committing now */
	mfs_cond take_cond;      /* takes has work, or take_stop */
	gboolean take_stop;
	GThread *taker;
	struct msg *ahead_from; /* read ahead past this one: a walking reader opened it */
	mfs_cond ahead_cond;     /* ahead_from set, or ahead_stop */
	gboolean ahead_stop;
	GThread *ahead;
	struct workers *syncers; /* fsync and rename parts of a read-ahead batch */

	/* Lock order: sess_lock, state_lock, lock. */
	mfs_mutex state_lock;    /* state */
	struct spool_state *state;

	mfs_mutex sess_lock;     /* the session, the listing's freshness */
	struct pop3_session *sess;
	gint64 last_use;      /* monotonic us of the session's last command */
	gint64 listed_at;     /* monotonic us of the last listing; 0: never */
	gint64 retry_after;   /* no listing from readdir before this (busy maildrop) */
	gboolean busy;        /* the maildrop was busy: only the poll thread retries */
	gint64 login_at;      /* monotonic us of the last login accepted; 0: none yet */
	gint64 login_delay;   /* us the server wants between logins (CAPA LOGIN-DELAY) */
	guint deles;          /* DELEs sent in this session, not yet committed */
	gboolean dele_pending; /* taken UIDLs may still be on the server: a session is due */
	GThread *thread;
	mfs_cond cond;
	gboolean stop;
};

static gint64 now_us(void)
{
	return g_get_monotonic_time();
}

static void crash_point(struct mfs_pop3_fs *fs, const char *where)
{
	if (fs->crash_at && strcmp(fs->crash_at, where) == 0) {
		mfs_log_info("MAILFS_CRASH_AT=%s: exiting", where);
		_exit(99);
	}
}

static void set_last_error(struct mfs_pop3_fs *fs, const char *text)
{
	mfs_mutex_lock(&fs->lock);
	g_free(fs->last_error);
	fs->last_error = g_strdup(text);
	mfs_mutex_unlock(&fs->lock);
}

static void msg_free(gpointer p)
{
	struct msg *m = p;

	if (m->fd >= 0)
		close(m->fd);
	g_free(m->uidl);
	g_free(m->name);
	g_free(m->spool_path);
	g_free(m);
}

static void ahead_sync(gpointer data, gpointer ud);

/* Remove what an earlier mount left in the spool store: it is fetched again. */
static void clear_spool(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	if (!d)
		return;
	while ((name = g_dir_read_name(d))) {
		g_autofree char *path = g_build_filename(dir, name, NULL);

		g_unlink(path);
	}
	g_dir_close(d);
}

struct mfs_pop3_fs *mfs_pop3_fs_new(const struct mfs_options *opts,
				    const struct pop3_session_opts *so, GError **err)
{
	struct mfs_pop3_fs *fs = g_new0(struct mfs_pop3_fs, 1);
	g_autofree char *dirname = mfs_options_account_dirname(opts->account);

	fs->opts = opts;
	fs->so = so;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->mount_time = g_get_real_time() / G_USEC_PER_SEC;
	fs->crash_at = g_strdup(g_getenv("MAILFS_CRASH_AT"));
	fs->next_ino = FUSE_ROOT_ID + 1;
	mfs_mutex_init(&fs->lock);
	mfs_mutex_init(&fs->sess_lock);
	mfs_mutex_init(&fs->state_lock);
	mfs_cond_init(&fs->cond);
	mfs_cond_init(&fs->take_cond);
	mfs_cond_init(&fs->ahead_cond);
	/* Two: a batch's fsyncs overlap its transfer and each other. */
	fs->syncers = workers_new("pop3-sync", 2, ahead_sync, NULL, NULL);
	fs->takes = g_ptr_array_new();
	fs->by_ino = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, msg_free);
	fs->handles = g_hash_table_new_full(g_direct_hash, g_direct_equal, g_free, NULL);
	fs->by_uidl = g_hash_table_new(g_str_hash, g_str_equal);
	fs->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	fs->spool_dir = g_build_filename(opts->cache_dir, "spool", NULL);
	fs->state_dir = g_build_filename(g_get_user_state_dir(), "mailfs", dirname, NULL);
	if (!spool_mkdir(opts->cache_dir, 0700, err) || !spool_mkdir(fs->spool_dir, 0700, err))
		goto fail;
	clear_spool(fs->spool_dir);
	fs->state = spool_state_open(fs->state_dir, err);
	if (!fs->state)
		goto fail;
	if (opts->pop3_archive && !spool_archive_prepare(opts->pop3_archive, err))
		goto fail;
	return fs;
fail:
	mfs_pop3_fs_free(fs);
	return NULL;
}

void mfs_pop3_fs_free(struct mfs_pop3_fs *fs)
{
	if (!fs)
		return;
	if (fs->sess) {
		GError *e = NULL;

		if (pop3_session_alive(fs->sess) && pop3_quit(fs->sess, &e) < 0) {
			mfs_log_info("%s", e->message);
			g_clear_error(&e);
		}
		pop3_session_free(fs->sess);
	}
	spool_state_free(fs->state);
	g_hash_table_destroy(fs->by_name);
	g_hash_table_destroy(fs->by_uidl);
	g_hash_table_destroy(fs->by_ino);
	g_hash_table_destroy(fs->handles);
	g_free(fs->spool_dir);
	g_free(fs->state_dir);
	g_free(fs->crash_at);
	g_free(fs->last_error);
	g_free(fs->last_open);
	g_ptr_array_free(fs->takes, TRUE);
	workers_free(fs->syncers, TRUE);
	mfs_mutex_clear(&fs->lock);
	mfs_mutex_clear(&fs->sess_lock);
	mfs_mutex_clear(&fs->state_lock);
	mfs_cond_clear(&fs->cond);
	mfs_cond_clear(&fs->take_cond);
	mfs_cond_clear(&fs->ahead_cond);
	g_free(fs);
}

/* -- the session (sess_lock held throughout) --------------------------------- */

static gint64 header_date(const char *data, size_t len, gint64 fallback)
{
	struct mail_headers h = { 0 };
	gint64 t = fallback;

	mail_headers_parse(data, len, &h);
	if (h.date) {
		GDateTime *dt = g_mime_utils_header_decode_date(h.date);

		if (dt) {
			t = g_date_time_to_unix(dt);
			g_date_time_unref(dt);
		}
	}
	mail_headers_clear(&h);
	return t;
}

struct top_ctx {
	struct mfs_pop3_fs *fs;
	GHashTable *by_num; /* num -> struct msg */
};

static void on_top(void *ud, guint32 num, int rc, const GByteArray *headers)
{
	struct top_ctx *t = ud;
	struct msg *m;
	gint64 date;

	if (rc < 0 || !headers)
		return;
	date = header_date((const char *)headers->data, headers->len, t->fs->mount_time);
	mfs_mutex_lock(&t->fs->lock);
	m = g_hash_table_lookup(t->by_num, GUINT_TO_POINTER(num));
	if (m && m->fd < 0)
		m->mtime = date;
	mfs_mutex_unlock(&t->fs->lock);
}

static void unlist(struct mfs_pop3_fs *fs, struct msg *m, gboolean tell_kernel)
{
	/* Locked. */
	if (g_hash_table_lookup(fs->by_name, m->name) != m)
		return;
	g_hash_table_remove(fs->by_name, m->name);
	if (tell_kernel && fs->notify)
		notify_entry_gone(fs->notify, FUSE_ROOT_ID, m->ino, m->name);
}

/*
 * UIDL + LIST into the table: new messages get an inode and a TOP for their
 * date, vanished ones leave the listing, taken ones still there get DELE.
 */
static int sync_listing(struct mfs_pop3_fs *fs, GError **err)
{
	g_autoptr(GArray) all = NULL;
	g_autoptr(GHashTable) present = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GArray) dele = g_array_new(FALSE, FALSE, sizeof(guint32));
	g_autoptr(GArray) top = g_array_new(FALSE, FALSE, sizeof(guint32));
	struct top_ctx t = { .fs = fs };
	GHashTableIter it;
	gpointer v;
	GError *e = NULL;
	int rc = 0;

	all = pop3_list_all(fs->sess, &e);
	if (!all) {
		rc = -pop3_error_errno(e, NULL);
		g_propagate_error(err, e);
		return rc;
	}
	t.by_num = g_hash_table_new(g_direct_hash, g_direct_equal);
	mfs_mutex_lock(&fs->state_lock);
	mfs_mutex_lock(&fs->lock);
	g_hash_table_iter_init(&it, fs->by_ino);
	while (g_hash_table_iter_next(&it, NULL, &v))
		((struct msg *)v)->num = 0;
	for (guint i = 0; i < all->len; i++) {
		const struct pop3_msg *pm = &g_array_index(all, struct pop3_msg, i);
		struct msg *m;

		g_hash_table_add(present, pm->uidl);
		if (spool_state_has(fs->state, pm->uidl)) {
			if (!fs->opts->pop3_keep)
				g_array_append_val(dele, pm->num);
			m = g_hash_table_lookup(fs->by_uidl, pm->uidl);
			if (m)
				m->num = pm->num;
			continue;
		}
		m = g_hash_table_lookup(fs->by_uidl, pm->uidl);
		if (!m) {
			m = g_new0(struct msg, 1);
			m->ino = fs->next_ino++;
			m->uidl = g_strdup(pm->uidl);
			{
				g_autofree char *esc = names_escape(pm->uidl, strlen(pm->uidl));

				m->name = g_strconcat(esc, ".eml", NULL);
			}
			m->fd = -1;
			m->size = pm->size;
			m->mtime = fs->mount_time;
			g_hash_table_insert(fs->by_ino, &m->ino, m);
			g_hash_table_insert(fs->by_uidl, m->uidl, m);
			g_hash_table_insert(fs->by_name, m->name, m);
			g_array_append_val(top, pm->num);
		} else if (m->fd < 0) {
			m->size = pm->size;
		}
		m->num = pm->num;
		m->gone = FALSE;
		g_hash_table_insert(t.by_num, GUINT_TO_POINTER(pm->num), m);
	}
	g_hash_table_iter_init(&it, fs->by_ino);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct msg *m = v;

		if (!m->taken && !m->taking && !g_hash_table_contains(present, m->uidl)) {
			/* Taken by another client: gone, though an open copy still reads. */
			m->gone = TRUE;
			unlist(fs, m, TRUE);
			if (m->opens == 0 && m->fd >= 0) {
				/* A copy read ahead that nobody will open now. */
				close(m->fd);
				m->fd = -1;
				m->ahead = FALSE;
				if (m->spool_path) {
					g_unlink(m->spool_path);
					g_clear_pointer(&m->spool_path, g_free);
				}
			}
		}
	}
	mfs_mutex_unlock(&fs->lock);

	/* Taken UIDLs no longer on the server were deleted for good. */
	if (!spool_state_prune(fs->state, present, &e)) {
		mfs_log_error("%s", e->message);
		g_clear_error(&e);
	}
	mfs_mutex_unlock(&fs->state_lock);
	if (dele->len) {
		g_autofree int *rcs = g_new0(int, dele->len);

		rc = pop3_dele_many(fs->sess, (const guint32 *)(void *)dele->data, dele->len, rcs,
				    &e);
		fs->deles += dele->len;
		if (rc < 0)
			goto out;
	}
	/* TOP is optional (RFC 1939) but near universal: try it even when CAPA is silent. */
	if (top->len)
		rc = pop3_top_many(fs->sess, (const guint32 *)(void *)top->data, top->len, on_top,
				   &t, &e);
out:
	g_hash_table_destroy(t.by_num);
	if (rc < 0) {
		g_propagate_error(err, e);
		return rc;
	}
	fs->listed_at = now_us();
	/* Every taken UIDL still there was marked again: the QUIT commits them. */
	fs->dele_pending = FALSE;
	return 0;
}

static void drop_session(struct mfs_pop3_fs *fs)
{
	/* DELEs of a session that ended without a confirmed QUIT: send them again. */
	if (fs->deles)
		fs->dele_pending = TRUE;
	g_clear_pointer(&fs->sess, pop3_session_free);
	fs->deles = 0;
}

/* An error worth waiting out rather than reporting: the maildrop is busy. */
static gboolean busy_error(const GError *e)
{
	return g_error_matches(e, POP3_ERROR, POP3_ERROR_IN_USE) ||
	       g_error_matches(e, POP3_ERROR, POP3_ERROR_LOGIN_DELAY) ||
	       g_error_matches(e, POP3_ERROR, POP3_ERROR_SYS_TEMP);
}

static gint64 retry_interval(const struct mfs_pop3_fs *fs)
{
	return (gint64)MIN(fs->opts->poll, BUSY_RETRY_S) * G_USEC_PER_SEC;
}

/* The server said "not now": logged once until a session works again. */
static void note_busy(struct mfs_pop3_fs *fs, const GError *e)
{
	if (!fs->busy)
		mfs_log_info("%s; keeping the last listing, trying again later", e->message);
	fs->busy = TRUE;
	fs->retry_after = now_us() + retry_interval(fs);
}

/* RFC 2449 §6.5: no login within the server's LOGIN-DELAY of the last one. */
static gint64 delay_ends(const struct mfs_pop3_fs *fs)
{
	return fs->login_at ? fs->login_at + fs->login_delay : 0;
}

/*
 * The earliest moment for a login nobody is waiting for (a poll, an ls, a
 * deferred DELE): after the LOGIN-DELAY and, after a refusal, the retry
 * interval. An open() that must download logs in at once: a reader waits.
 */
static gint64 next_login(const struct mfs_pop3_fs *fs)
{
	return MAX(delay_ends(fs), fs->busy ? fs->retry_after : 0);
}

/* Background work can be done now: on the open session, or with a due login. */
static gboolean may_work(const struct mfs_pop3_fs *fs, gint64 now)
{
	return (fs->sess && pop3_session_alive(fs->sess)) || now >= next_login(fs);
}

/* A live session whose listing is current; connects (and lists) when needed. */
static int session_get(struct mfs_pop3_fs *fs, gboolean *fresh, GError **err)
{
	GError *e = NULL;
	int rc;

	if (fresh)
		*fresh = FALSE;
	if (fs->sess && pop3_session_alive(fs->sess)) {
		fs->last_use = now_us();
		return 0;
	}
	drop_session(fs);
	fs->sess = pop3_connect(fs->so, &e);
	if (!fs->sess) {
		rc = -pop3_error_errno(e, NULL);
		set_last_error(fs, e->message);
		if (busy_error(e))
			note_busy(fs, e);
		g_propagate_error(err, e);
		return rc;
	}
	fs->login_at = now_us();
	fs->login_delay = (gint64)pop3_session_login_delay(fs->sess) * G_USEC_PER_SEC;
	mfs_mutex_lock(&fs->lock);
	fs->sessions++;
	mfs_mutex_unlock(&fs->lock);
	if (fresh)
		*fresh = TRUE;
	rc = sync_listing(fs, &e);
	if (rc < 0) {
		set_last_error(fs, e ? e->message : "listing failed");
		if (busy_error(e))
			note_busy(fs, e);
		g_propagate_error(err, e);
		drop_session(fs);
		return rc;
	}
	fs->busy = FALSE;
	fs->retry_after = 0;
	fs->last_use = now_us();
	return 0;
}

static void quit_session(struct mfs_pop3_fs *fs)
{
	GError *e = NULL;
	guint deles = fs->deles;

	int rc;

	if (!fs->sess)
		return;
	if (pop3_session_alive(fs->sess)) {
		rc = pop3_quit_send(fs->sess, &e);
		/* The server may commit now, and this reply may never come: the
		   state file already holds every UIDL a DELE was sent for. */
		if (rc == 0 && deles)
			crash_point(fs, "before-quit-reply");
		if (rc == 0)
			rc = pop3_quit_reply(fs->sess, &e);
		if (rc == 0) {
			fs->deles = 0;
		} else {
			mfs_log_info("%s", e ? e->message : "QUIT failed");
			g_clear_error(&e);
		}
	}
	drop_session(fs);
}

/* List again (sess_lock held). Failures keep the last listing. */
static void refresh_locked(struct mfs_pop3_fs *fs)
{
	GError *e = NULL;
	gboolean fresh;
	int rc = session_get(fs, &fresh, &e);

	if (rc == 0 && !fresh) {
		rc = sync_listing(fs, &e);
		if (rc < 0) {
			set_last_error(fs, e ? e->message : "listing failed");
			if (!pop3_session_alive(fs->sess))
				drop_session(fs);
		}
	}
	if (rc == 0) {
		fs->busy = FALSE;
		fs->retry_after = 0;
		return;
	}
	fs->retry_after = now_us() + retry_interval(fs);
	if (busy_error(e))
		note_busy(fs, e);
	else
		mfs_log_info("cannot list the maildrop: %s", e ? e->message : g_strerror(-rc));
	g_clear_error(&e);
}

/* -- the poll thread ------------------------------------------------------------ */

/* When the poll thread has work next (sess_lock held). */
static gint64 poll_wake(const struct mfs_pop3_fs *fs, gint64 next_poll, gint64 next_dele)
{
	gint64 wake = next_poll;

	if (fs->sess) {
		wake = MIN(wake, fs->last_use + IDLE_QUIT_US);
	} else {
		if (fs->busy)
			wake = MIN(wake, next_login(fs));
		if (fs->dele_pending)
			wake = MIN(wake, MAX(next_dele, fs->last_use + IDLE_QUIT_US));
		/* Without a session, all of it needs a login. */
		wake = MAX(wake, next_login(fs));
	}
	return MAX(wake, now_us() + G_USEC_PER_SEC / 20);
}

static gpointer poll_thread(gpointer ud)
{
	struct mfs_pop3_fs *fs = ud;
	const gint64 poll_us = (gint64)fs->opts->poll * G_USEC_PER_SEC;
	gint64 next_poll = now_us() + poll_us;
	gint64 next_dele = 0;

	mfs_mutex_lock(&fs->sess_lock);
	while (!fs->stop) {
		gint64 now = now_us();

		if (fs->sess && !pop3_session_alive(fs->sess))
			drop_session(fs);
		if (fs->sess && now - fs->last_use >= IDLE_QUIT_US)
			quit_session(fs);
		if (now >= next_poll && may_work(fs, now)) {
			refresh_locked(fs);
			quit_session(fs);
			next_poll = now_us() + poll_us;
		} else if (!fs->sess && fs->busy && now >= next_login(fs)) {
			/* Refused: again after the retry interval, not only at the next poll. */
			refresh_locked(fs);
			quit_session(fs);
		} else if (!fs->sess && fs->dele_pending && now >= next_dele &&
			   may_work(fs, now)) {
			/* DELEs lost with a session: a short session sends them again. */
			refresh_locked(fs);
			quit_session(fs);
			next_dele = now_us() + 5 * G_USEC_PER_SEC;
		}
		mfs_cond_wait_until(&fs->cond, &fs->sess_lock, poll_wake(fs, next_poll, next_dele));
	}
	/* Unmount: commit, after one more try at DELEs a lost session did not
	   commit — unless the server's LOGIN-DELAY forbids the login: the state
	   file keeps them for the next mount's first session. */
	if (fs->sess && !pop3_session_alive(fs->sess))
		drop_session(fs);
	if (fs->dele_pending && !fs->sess && now_us() >= delay_ends(fs))
		refresh_locked(fs);
	else if (fs->dele_pending && !fs->sess)
		mfs_log_info("within the server's LOGIN-DELAY: taken messages still on the "
			     "server are deleted by the next mount");
	quit_session(fs);
	mfs_mutex_unlock(&fs->sess_lock);
	return NULL;
}

gboolean mfs_pop3_fs_start(struct mfs_pop3_fs *fs, GError **err)
{
	GError *e = NULL;
	int rc;

	mfs_mutex_lock(&fs->sess_lock);
	rc = session_get(fs, NULL, &e);
	mfs_mutex_unlock(&fs->sess_lock);
	if (rc == 0)
		return TRUE;
	/* The server knows the maildrop and says "not now" (logged by
	   note_busy): mount it empty; the poll thread lists it when let in. */
	if (busy_error(e)) {
		g_error_free(e);
		return TRUE;
	}
	g_propagate_error(err, e);
	return FALSE;
}

static gpointer taker_thread(gpointer ud);
static gpointer ahead_thread(gpointer ud);

void mfs_pop3_fs_attach(struct mfs_pop3_fs *fs, struct fuse_session *se)
{
	fs->notify = notify_start(se);
	fs->taker = g_thread_new("pop3-take", taker_thread, fs);
	fs->ahead = g_thread_new("pop3-ahead", ahead_thread, fs);
	fs->thread = g_thread_new("pop3-poll", poll_thread, fs);
}

/* Tell a thread that waits on cond under mu to stop (*flag), and join it. */
static void stop_thread(GThread **t, mfs_mutex *mu, mfs_cond *cond, gboolean *flag)
{
	if (!*t)
		return;
	mfs_mutex_lock(mu);
	*flag = TRUE;
	mfs_cond_signal(cond);
	mfs_mutex_unlock(mu);
	g_thread_join(*t);
	*t = NULL;
}

void mfs_pop3_fs_detach(struct mfs_pop3_fs *fs)
{
	stop_thread(&fs->ahead, &fs->lock, &fs->ahead_cond, &fs->ahead_stop);
	/* Takes before the poll thread: their DELEs go out before its last QUIT. */
	stop_thread(&fs->taker, &fs->lock, &fs->take_cond, &fs->take_stop);
	stop_thread(&fs->thread, &fs->sess_lock, &fs->cond, &fs->stop);
	g_clear_pointer(&fs->notify, notify_stop);
}

/* -- download and taking (sess_lock held) ----------------------------------------- */

static int sink_write(void *ud, const void *data, size_t len)
{
	int fd = *(int *)ud;
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -EIO : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int file_error(GError **err, int e, const char *path)
{
	g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "%s: %s", path, g_strerror(e));
	return -e;
}

/* A new spool file NAME.part for m; -errno and *err on failure. */
static int part_open(struct mfs_pop3_fs *fs, const struct msg *m, char **tmp_out, GError **err)
{
	g_autofree char *tmp = g_strconcat(fs->spool_dir, G_DIR_SEPARATOR_S, m->name, ".part",
					   NULL);
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return file_error(err, errno, tmp);
	*tmp_out = g_steal_pointer(&tmp);
	return fd;
}

/*
 * fsync a complete NAME.part and rename it to NAME, the spool store's name
 * for m (*final_out). The directory is fsync'd by the caller, once for all
 * files of a batch, before any of them is served. On failure the part is
 * removed and fd closed.
 */
static int part_finish(struct mfs_pop3_fs *fs, const struct msg *m, int fd, const char *tmp,
		       char **final_out, GError **err)
{
	g_autofree char *final = g_build_filename(fs->spool_dir, m->name, NULL);
	int rc = 0;

	if (fsync(fd) != 0)
		rc = file_error(err, errno, tmp);
	else if (rename(tmp, final) != 0)
		rc = file_error(err, errno, final);
	if (rc < 0) {
		close(fd);
		g_unlink(tmp);
		return rc;
	}
	*final_out = g_steal_pointer(&final);
	return 0;
}

/* A downloaded, fsync'd spool file becomes m's bytes (locks fs->lock). */
static void install(struct mfs_pop3_fs *fs, struct msg *m, int fd, char *final, guint64 got,
		    gboolean ahead)
{
	char head[DATE_SCAN_MAX];
	ssize_t hn = pread(fd, head, sizeof(head), 0);

	mfs_mutex_lock(&fs->lock);
	m->fd = fd;
	g_free(m->spool_path);
	m->spool_path = final;
	m->size = got;
	m->ahead = ahead;
	if (hn > 0)
		m->mtime = header_date(head, (size_t)hn, m->mtime);
	fs->retrieved++;
	fs->retrieved_bytes += got;
	if (ahead)
		fs->ahead_count++;
	mfs_mutex_unlock(&fs->lock);
	if (fs->notify)
		notify_inode_changed(fs->notify, m->ino);
}

static int download(struct mfs_pop3_fs *fs, struct msg *m, GError **err);

static int retr_once(struct mfs_pop3_fs *fs, struct msg *m, GError **err)
{
	g_autofree char *tmp = NULL;
	char *final = NULL;
	guint64 got = 0;
	guint32 num;
	int fd, rc;

	mfs_mutex_lock(&fs->lock);
	num = m->num;
	mfs_mutex_unlock(&fs->lock);
	if (num == 0)
		return -ENOENT;
	fd = part_open(fs, m, &tmp, err);
	if (fd < 0)
		return fd;
	rc = pop3_retr(fs->sess, num, sink_write, &fd, &got, err);
	if (rc < 0) {
		close(fd);
		g_unlink(tmp);
		return rc;
	}
	rc = part_finish(fs, m, fd, tmp, &final, err);
	if (rc < 0)
		return rc;
	if (!spool_fsync_dir(fs->spool_dir, err)) {
		close(fd);
		g_unlink(final);
		g_free(final);
		return -EIO;
	}
	install(fs, m, fd, final, got, FALSE);
	crash_point(fs, "after-retr");
	return 0;
}

/* -- read-ahead ---------------------------------------------------------------------------- */

static gint cmp_name(gconstpointer a, gconstpointer b)
{
	const struct msg *x = *(struct msg *const *)a;
	const struct msg *y = *(struct msg *const *)b;

	return strcmp(x->name, y->name);
}

/*
 * Note an open of m (listed, fs->lock held) in the reader's pattern: TRUE
 * when it is the second or later of opens in a row each of the next listed
 * name after the one before — a reader walking the spool in name order
 * (cat *, cp -r, rsync). Taken messages have left the listing, so "next"
 * skips them. ls and stat never open: they never count.
 */
static gboolean note_open(struct mfs_pop3_fs *fs, const struct msg *m)
{
	gboolean next = fs->last_open && strcmp(fs->last_open, m->name) < 0;
	GHashTableIter it;
	gpointer v;

	if (next) {
		g_hash_table_iter_init(&it, fs->by_name);
		while (next && g_hash_table_iter_next(&it, NULL, &v)) {
			const struct msg *o = v;

			next = !(strcmp(o->name, fs->last_open) > 0 && strcmp(o->name, m->name) < 0);
		}
	}
	fs->streak = next ? fs->streak + 1 : 1;
	g_free(fs->last_open);
	fs->last_open = g_strdup(m->name);
	return fs->streak >= 2;
}

/*
 * The listed messages after m in name order that are not downloaded yet,
 * while the bytes read ahead and not opened stay within the prefetch budget
 * (fs->lock held); m first when it is not downloaded either (a reader waits
 * for it); batch_bytes at most besides the first. NULL when there is
 * nothing to fetch, or when lead_max is set and the bytes already read
 * ahead after m reach it.
 */
static GPtrArray *ahead_batch(struct mfs_pop3_fs *fs, struct msg *m, guint64 lead_max,
			      guint64 batch_bytes)
{
	GPtrArray *batch = g_ptr_array_new();
	g_autoptr(GPtrArray) after = g_ptr_array_new();
	guint64 held = 0, extra = 0, lead = 0;
	GHashTableIter it;
	gpointer v;

	if (m->fd < 0 && m->num && !m->taken && !m->taking && !m->gone)
		g_ptr_array_add(batch, m);
	g_hash_table_iter_init(&it, fs->by_ino);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct msg *o = v;

		if (o->ahead && o->fd >= 0) {
			held += o->size;
			if (strcmp(o->name, m->name) > 0)
				lead += o->size;
		} else if (o != m && o->fd < 0 && o->num && !o->taken && !o->taking && !o->gone &&
			 g_hash_table_lookup(fs->by_name, o->name) == o &&
			 strcmp(o->name, m->name) > 0)
			g_ptr_array_add(after, o);
	}
	if (lead_max && lead >= lead_max)
		after->len = 0;
	g_ptr_array_sort(after, cmp_name);
	for (guint i = 0; i < after->len && batch->len < AHEAD_BATCH_MAX; i++) {
		struct msg *o = after->pdata[i];

		if (held + o->size > fs->opts->prefetch ||
		    (extra > 0 && extra + o->size > batch_bytes))
			break;
		held += o->size;
		extra += o->size;
		g_ptr_array_add(batch, o);
	}
	if (batch->len == 0)
		g_clear_pointer(&batch, g_ptr_array_unref);
	return batch;
}

/* One message of a batch being RETR'd. */
struct ahead_item {
	struct msg *m;
	guint32 num;
	int fd;          /* -1 when not begun or dropped */
	char *tmp;
	char *final;     /* set once the file is complete and renamed */
	guint64 got;
	struct ahead_ctx *ctx;
};

struct ahead_ctx {
	struct mfs_pop3_fs *fs;
	struct ahead_item *items;
	guint cur;
	int write_err;   /* the sink's first local failure for items[cur] */
	mfs_mutex mu;       /* pending, and the items handed to the syncers */
	mfs_cond done;
	guint pending;   /* items the syncers have not finished */
};

/* A syncer (fs->syncers): fsync and rename one complete part while the
   batch's next messages keep arriving. */
static void ahead_sync(gpointer data, gpointer ud)
{
	struct ahead_item *it = data;
	struct ahead_ctx *c = it->ctx;
	GError *e = NULL;
	char *final = NULL;
	int fd = it->fd;

	(void)ud;
	if (part_finish(c->fs, it->m, fd, it->tmp, &final, &e) < 0) {
		fd = -1;
		mfs_log_info("read-ahead: %s", e->message);
		g_error_free(e);
	}
	mfs_mutex_lock(&c->mu);
	it->fd = fd;
	it->final = final;
	c->pending--;
	mfs_cond_signal(&c->done);
	mfs_mutex_unlock(&c->mu);
}

static void ahead_begin(void *ud, guint i)
{
	struct ahead_ctx *c = ud;
	struct ahead_item *it = &c->items[i];
	GError *e = NULL;

	c->cur = i;
	c->write_err = 0;
	it->fd = part_open(c->fs, it->m, &it->tmp, &e);
	if (it->fd < 0) {
		c->write_err = it->fd;
		it->fd = -1;
		mfs_log_info("read-ahead: %s", e->message);
		g_error_free(e);
	}
}

/* A local failure (a full disk) drops this message's bytes but keeps the
   session: the others of the pipeline are still coming. */
static int ahead_sink(void *ud, const void *data, size_t len)
{
	struct ahead_ctx *c = ud;
	struct ahead_item *it = &c->items[c->cur];

	if (c->write_err == 0 && it->fd >= 0)
		c->write_err = sink_write(&it->fd, data, len);
	return 0;
}

static void ahead_end(void *ud, guint i, int rc, guint64 size)
{
	struct ahead_ctx *c = ud;
	struct ahead_item *it = &c->items[i];

	if (rc == 0 && c->write_err == 0 && it->fd >= 0) {
		it->got = size;
		mfs_mutex_lock(&c->mu);
		c->pending++;
		mfs_mutex_unlock(&c->mu);
		workers_push(c->fs->syncers, it);
		return;
	}
	if (it->fd >= 0) {
		close(it->fd);
		g_unlink(it->tmp);
		it->fd = -1;
	}
}

/*
 * RETR a batch (ahead_batch) pipelined on the live session into the spool
 * store: each file fsync'd and renamed, then the directory fsync'd once,
 * before any is served. Reading ahead takes nothing: the messages stay on
 * the server until a reader takes them. A crash leaves complete files or
 * .part files, and the next mount clears the store (clear_spool). Failures
 * are dropped silently (each is RETR'd again when opened). opener: the
 * message a reader is waiting for, if it is in the batch (not "ahead").
 */
static void retr_batch(struct mfs_pop3_fs *fs, GPtrArray *batch, const struct msg *opener)
{
	g_autofree guint32 *nums = g_new0(guint32, batch->len);
	struct ahead_ctx c = { .fs = fs };
	static const struct pop3_retr_many_cb cb = { ahead_begin, ahead_sink, ahead_end };
	GError *e = NULL;
	gboolean dir_ok = TRUE, any = FALSE;
	int rc;

	c.items = g_new0(struct ahead_item, batch->len);
	mfs_mutex_init(&c.mu);
	mfs_cond_init(&c.done);
	mfs_mutex_lock(&fs->lock);
	for (guint i = 0; i < batch->len; i++) {
		c.items[i].ctx = &c;
		c.items[i].m = batch->pdata[i];
		c.items[i].fd = -1;
		nums[i] = c.items[i].num = c.items[i].m->num;
	}
	mfs_mutex_unlock(&fs->lock);
	mfs_log_debug(MFS_LOG_POP3, "read-ahead: RETR of %u messages from %s", batch->len,
		      c.items[0].m->name);
	rc = pop3_retr_many(fs->sess, nums, batch->len, &cb, &c, &e);
	mfs_mutex_lock(&c.mu);
	while (c.pending)
		mfs_cond_wait(&c.done, &c.mu);
	mfs_mutex_unlock(&c.mu);
	mfs_mutex_clear(&c.mu);
	mfs_cond_clear(&c.done);
	if (rc < 0) {
		mfs_log_info("read-ahead: %s", e ? e->message : g_strerror(-rc));
		g_clear_error(&e);
		/* A part begun when the session failed: its end() never came. */
		for (guint i = 0; i < batch->len; i++) {
			struct ahead_item *it = &c.items[i];

			if (it->fd >= 0 && !it->final) {
				close(it->fd);
				g_unlink(it->tmp);
				it->fd = -1;
			}
		}
		if (fs->sess && !pop3_session_alive(fs->sess))
			drop_session(fs);
	}
	for (guint i = 0; i < batch->len; i++)
		any = any || c.items[i].final;
	if (any && !spool_fsync_dir(fs->spool_dir, &e)) {
		mfs_log_info("read-ahead: %s", e->message);
		g_clear_error(&e);
		dir_ok = FALSE;
	}
	for (guint i = 0; i < batch->len; i++) {
		struct ahead_item *it = &c.items[i];

		if (it->final && dir_ok) {
			install(fs, it->m, it->fd, it->final, it->got, it->m != opener);
		} else if (it->final) {
			close(it->fd);
			g_unlink(it->final);
			g_free(it->final);
		}
		g_free(it->tmp);
	}
	g_free(c.items);
	if (any && dir_ok)
		crash_point(fs, "after-retr");
}

/*
 * Download m, which a reader walking the spool opens, and the messages
 * after it in one pipelined batch; m's outcome comes from download().
 */
static int download_ahead(struct mfs_pop3_fs *fs, struct msg *m, GError **err)
{
	g_autoptr(GPtrArray) batch = NULL;
	GError *e = NULL;
	int rc;

	/* Read ahead already: no login for it. */
	if (m->fd >= 0)
		return 0;
	rc = session_get(fs, NULL, &e);
	if (rc < 0) {
		/* As download() reports it; no second login straight after a refusal. */
		if (e)
			set_last_error(fs, e->message);
		g_propagate_error(err, e);
		return rc;
	}
	mfs_mutex_lock(&fs->lock);
	batch = ahead_batch(fs, m, 0, AHEAD_BATCH_BYTES);
	mfs_mutex_unlock(&fs->lock);
	if (batch && batch->len >= 2)
		retr_batch(fs, batch, m);
	/* m itself failed (refused, a dropped session): the one-message path,
	   with its retry on a new session and its error for the reader. */
	return download(fs, m, err);
}

/*
 * The read-ahead thread: while a reader walks through messages read ahead,
 * keep up to AHEAD_LEAD_BYTES downloaded past the one it opened, so that it
 * never waits for a batch. Only on a live session: no login for this.
 */
static gpointer ahead_thread(gpointer ud)
{
	struct mfs_pop3_fs *fs = ud;

	mfs_mutex_lock(&fs->lock);
	for (;;) {
		struct msg *from;
		g_autoptr(GPtrArray) batch = NULL;

		while (!fs->ahead_from && !fs->ahead_stop)
			mfs_cond_wait(&fs->ahead_cond, &fs->lock);
		if (fs->ahead_stop)
			break;
		from = fs->ahead_from;
		fs->ahead_from = NULL;
		mfs_mutex_unlock(&fs->lock);
		mfs_mutex_lock(&fs->sess_lock);
		/* Batch after batch until the lead is kept, or the reader stops. */
		while (fs->sess && pop3_session_alive(fs->sess)) {
			mfs_mutex_lock(&fs->lock);
			if (fs->ahead_from) {
				from = fs->ahead_from;
				fs->ahead_from = NULL;
			}
			batch = fs->ahead_stop ? NULL :
						 ahead_batch(fs, from, AHEAD_LEAD_BYTES,
							     AHEAD_LEAD_BYTES / 2);
			mfs_mutex_unlock(&fs->lock);
			if (!batch)
				break;
			fs->last_use = now_us();
			retr_batch(fs, batch, NULL);
			g_clear_pointer(&batch, g_ptr_array_unref);
		}
		mfs_mutex_unlock(&fs->sess_lock);
		mfs_mutex_lock(&fs->lock);
	}
	mfs_mutex_unlock(&fs->lock);
	return NULL;
}

/* The message's bytes in the spool store. */
static int download(struct mfs_pop3_fs *fs, struct msg *m, GError **err)
{
	for (int attempt = 0;; attempt++) {
		gboolean fresh = FALSE;
		GError *e = NULL;
		int rc;

		if (m->fd >= 0)
			return 0;
		rc = session_get(fs, &fresh, &e);
		if (rc == 0)
			rc = retr_once(fs, m, &e);
		if (rc == 0)
			return 0;
		/* A session that died while idle: once more on a new one. */
		if (attempt == 0 && !fresh && rc == -EIO && fs->sess &&
		    !pop3_session_alive(fs->sess)) {
			g_clear_error(&e);
			drop_session(fs);
			continue;
		}
		if (e)
			set_last_error(fs, e->message);
		if (fs->sess && !pop3_session_alive(fs->sess))
			drop_session(fs);
		g_propagate_error(err, e);
		return rc;
	}
}

/*
 * DELE of messages recorded as taken (sess_lock held), pipelined on the
 * open session, or by the next one (every new session sends DELE for the
 * taken UIDLs still listed).
 */
static void dele_taken(struct mfs_pop3_fs *fs, GPtrArray *batch)
{
	g_autoptr(GArray) nums = g_array_new(FALSE, FALSE, sizeof(guint32));
	GError *e = NULL;
	gboolean fresh = FALSE;
	int rc;

	if (!may_work(fs, now_us())) {
		/* No login the server refuses or asked us not to make, for this. */
		fs->dele_pending = TRUE;
		mfs_log_debug(MFS_LOG_POP3, "DELE of %u taken deferred to the next session",
			      batch->len);
		return;
	}
	rc = session_get(fs, &fresh, &e);
	if (rc == 0 && !fresh) {
		mfs_mutex_lock(&fs->lock);
		for (guint i = 0; i < batch->len; i++) {
			const struct msg *m = batch->pdata[i];

			if (m->num)
				g_array_append_val(nums, m->num);
		}
		mfs_mutex_unlock(&fs->lock);
		if (nums->len) {
			g_autofree int *rcs = g_new0(int, nums->len);

			rc = pop3_dele_many(fs->sess, (const guint32 *)(void *)nums->data, nums->len,
					    rcs, &e);
			fs->deles += nums->len;
		}
	}
	if (rc < 0) {
		fs->dele_pending = TRUE;
		mfs_log_info("DELE of %u taken deferred: %s", batch->len,
			     e ? e->message : g_strerror(-rc));
		if (fs->sess && !pop3_session_alive(fs->sess))
			drop_session(fs);
	}
	g_clear_error(&e);
}

/* Back into the listing: a take that failed (fs->lock held). */
static void relist(struct mfs_pop3_fs *fs, struct msg *m)
{
	m->taking = FALSE;
	if (m->gone || g_hash_table_contains(fs->by_name, m->name))
		return;
	g_hash_table_insert(fs->by_name, m->name, m);
	/* A negative entry the kernel may hold for the name. */
	if (fs->notify)
		notify_entry_gone(fs->notify, FUSE_ROOT_ID, 0, m->name);
}

static int file_errno(const GError *e)
{
	return e->domain == G_FILE_ERROR && e->code == G_FILE_ERROR_NOSPC ? -ENOSPC : -EIO;
}

/*
 * Take m, the part a reader waits for: the bytes into the archive (the
 * copy's file fsync'd or the spool copy linked; not yet new/), then m
 * leaves the listing and is queued for take_commit(). 0, or a negative
 * errno (nothing taken: still listed) with *err. tell_kernel: the listing
 * change is not the kernel's own doing (close, not unlink).
 */
static int take(struct mfs_pop3_fs *fs, struct msg *m, gboolean tell_kernel, GError **err)
{
	const struct mfs_options *o = fs->opts;
	g_autofree char *path = NULL;
	GError *e = NULL;
	guint64 size;
	int rc = 0, fd;

	mfs_mutex_lock(&fs->lock);
	if (m->taken || m->taking) {
		mfs_mutex_unlock(&fs->lock);
		return 0;
	}
	if (m->gone) {
		/* Another client took it off the server: there is nothing left to take. */
		mfs_mutex_unlock(&fs->lock);
		mfs_log_info("%s was taken off the server by another client", m->uidl);
		return 0;
	}
	/* Claimed: a second close or an rm of it meanwhile finds it taken. */
	m->taking = TRUE;
	mfs_mutex_unlock(&fs->lock);
	if (o->pop3_archive && m->fd < 0) {
		mfs_mutex_lock(&fs->sess_lock);
		rc = download(fs, m, &e);
		mfs_mutex_unlock(&fs->sess_lock);
	}
	/* The spool copy as it stands: a read-ahead may still be installing
	   one when there is no archive to wait for it. */
	mfs_mutex_lock(&fs->lock);
	fd = m->fd;
	size = m->size;
	path = g_strdup(m->spool_path);
	mfs_mutex_unlock(&fs->lock);
	if (rc == 0 && fd >= 0 && size == 0) {
		g_set_error(&e, G_FILE_ERROR, G_FILE_ERROR_IO,
			    "the download of %s came back empty: not taking it", m->uidl);
		rc = -EIO;
	}
	if (rc == 0 && o->pop3_archive &&
	    !(path ? spool_archive_link(o->pop3_archive, m->uidl, path, fd, &e) :
		     spool_archive(o->pop3_archive, m->uidl, fd, &e)))
		rc = file_errno(e);
	mfs_mutex_lock(&fs->lock);
	if (rc < 0) {
		relist(fs, m);
	} else {
		m->ahead = FALSE;
		unlist(fs, m, tell_kernel);
		fs->taken_count++;
		fs->taken_bytes += m->size;
		g_ptr_array_add(fs->takes, m);
		mfs_cond_signal(&fs->take_cond);
	}
	mfs_mutex_unlock(&fs->lock);
	if (rc < 0)
		g_propagate_error(err, e);
	return rc;
}

/*
 * The durable rest of taking, for a batch of messages take() queued, in
 * design order: new/ fsync'd (archived), the UIDLs recorded as taken (one
 * state file write), then DELE, pipelined. A reader walking the spool
 * queues messages faster than they commit, so one commit serves many. A
 * failure before the record puts the batch back into the listing.
 */
static void take_commit(struct mfs_pop3_fs *fs, GPtrArray *batch)
{
	const struct mfs_options *o = fs->opts;
	g_autofree const char **uidls = g_new(const char *, batch->len);
	GError *e = NULL;
	gboolean ok = TRUE;

	for (guint i = 0; i < batch->len; i++)
		uidls[i] = ((struct msg *)batch->pdata[i])->uidl;
	if (o->pop3_archive) {
		ok = spool_archive_sync(o->pop3_archive, &e);
		if (ok)
			crash_point(fs, "after-archive");
	}
	if (ok) {
		mfs_mutex_lock(&fs->state_lock);
		ok = spool_state_add_many(fs->state, uidls, batch->len, &e);
		mfs_mutex_unlock(&fs->state_lock);
	}
	if (!ok) {
		mfs_log_error("not taken: %s", e->message);
		set_last_error(fs, e->message);
		g_clear_error(&e);
		mfs_mutex_lock(&fs->lock);
		for (guint i = 0; i < batch->len; i++) {
			struct msg *m = batch->pdata[i];

			relist(fs, m);
			fs->taken_count--;
			fs->taken_bytes -= m->size;
		}
		mfs_mutex_unlock(&fs->lock);
		return;
	}
	crash_point(fs, "after-state");
	mfs_mutex_lock(&fs->sess_lock);
	if (!o->pop3_keep) {
		dele_taken(fs, batch);
		crash_point(fs, "after-dele");
	}
	fs->last_use = now_us();
	mfs_cond_signal(&fs->cond);
	mfs_mutex_unlock(&fs->sess_lock);
	mfs_mutex_lock(&fs->lock);
	for (guint i = 0; i < batch->len; i++) {
		struct msg *m = batch->pdata[i];

		m->taking = FALSE;
		m->taken = TRUE;
		if (m->spool_path) {
			g_unlink(m->spool_path);
			g_clear_pointer(&m->spool_path, g_free);
		}
		if (m->opens == 0 && m->fd >= 0) {
			close(m->fd);
			m->fd = -1;
		}
	}
	mfs_mutex_unlock(&fs->lock);
}

/*
 * While takes keep coming (a reader walking the spool), wait for more
 * before committing: up to TAKE_GATHER_US after the last one, at most
 * TAKE_GATHER_MAX_US in all (fs->lock held).
 */
static void gather_takes(struct mfs_pop3_fs *fs)
{
	const gint64 until = g_get_monotonic_time() + TAKE_GATHER_MAX_US;

	while (!fs->take_stop) {
		guint had = fs->takes->len;
		gint64 end = MIN(until, g_get_monotonic_time() + TAKE_GATHER_US);

		while (!fs->take_stop && fs->takes->len == had &&
		       mfs_cond_wait_until(&fs->take_cond, &fs->lock, end))
			;
		if (fs->takes->len == had || g_get_monotonic_time() >= until)
			return;
	}
}

/* The taker thread: commits what take() queued until told to stop, then the rest. */
static gpointer taker_thread(gpointer ud)
{
	struct mfs_pop3_fs *fs = ud;

	mfs_mutex_lock(&fs->lock);
	for (;;) {
		GPtrArray *batch;

		while (fs->takes->len == 0 && !fs->take_stop)
			mfs_cond_wait(&fs->take_cond, &fs->lock);
		if (fs->takes->len == 0)
			break;
		gather_takes(fs);
		batch = fs->takes;
		fs->takes = g_ptr_array_new();
		fs->committing = batch->len;
		mfs_mutex_unlock(&fs->lock);
		take_commit(fs, batch);
		g_ptr_array_free(batch, TRUE);
		mfs_mutex_lock(&fs->lock);
		fs->committing = 0;
	}
	mfs_mutex_unlock(&fs->lock);
	return NULL;
}

/* -- attributes and lookup ------------------------------------------------------------ */

static void root_attr(const struct mfs_pop3_fs *fs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0700;
	st->st_nlink = 2;
	st->st_size = 4096;
	st->st_blocks = 8;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = fs->mount_time;
	st->st_blksize = 4096;
}

/* Locked. */
static void msg_attr(const struct mfs_pop3_fs *fs, const struct msg *m, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = m->ino;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = m->taken || m->taking || m->gone ? 0 : 1;
	st->st_size = (off_t)m->size;
	st->st_blocks = (blkcnt_t)((m->size + 511) / 512);
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = m->mtime;
	st->st_blksize = 4096;
}

static double entry_timeout(const struct mfs_pop3_fs *fs)
{
	return fs->opts->poll;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	struct msg *m;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	mfs_mutex_lock(&fs->lock);
	m = g_hash_table_lookup(fs->by_name, name);
	if (m) {
		msg_attr(fs, m, &ep.attr);
		ep.ino = m->ino;
		ep.generation = 1;
		ep.attr_timeout = 1.0;
		ep.entry_timeout = entry_timeout(fs);
	}
	mfs_mutex_unlock(&fs->lock);
	if (!m)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_entry(req, &ep);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* Messages stay in memory for the mount: inode numbers stay stable. */
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct stat st;
	struct msg *m;
	guint64 key = ino;

	(void)fi;
	if (ino == FUSE_ROOT_ID) {
		root_attr(fs, &st);
		fuse_reply_attr(req, &st, 1.0);
		return;
	}
	mfs_mutex_lock(&fs->lock);
	m = g_hash_table_lookup(fs->by_ino, &key);
	if (m)
		msg_attr(fs, m, &st);
	mfs_mutex_unlock(&fs->lock);
	if (!m)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, 1.0);
}

/* -- readdir ---------------------------------------------------------------------------- */

static gint cmp_ino(gconstpointer a, gconstpointer b)
{
	const struct msg *x = *(struct msg *const *)a;
	const struct msg *y = *(struct msg *const *)b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	g_autoptr(GPtrArray) list = g_ptr_array_new();
	char *buf;
	size_t used = 0;
	GHashTableIter it;
	gpointer v;

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* A session busy elsewhere (a download, the poll thread waiting for a
	   locked maildrop) means a listing is on its way: serve the last one.
	   So does a maildrop another client holds: a server may make a login
	   wait seconds for its lock before [IN-USE]; the poll thread retries.
	   Within the server's LOGIN-DELAY the last listing is served too. */
	if (off == 0 && mfs_mutex_trylock(&fs->sess_lock)) {
		gint64 now = now_us();

		if ((fs->listed_at == 0 ||
		     now - fs->listed_at >= (gint64)fs->opts->poll * G_USEC_PER_SEC) &&
		    now >= fs->retry_after && !fs->busy && may_work(fs, now))
			refresh_locked(fs);
		mfs_mutex_unlock(&fs->sess_lock);
	}
	buf = g_malloc(size);
	mfs_mutex_lock(&fs->lock);
	g_hash_table_iter_init(&it, fs->by_name);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct msg *m = v;

		if ((off_t)(m->ino + DIR_OFF_BASE) > off)
			g_ptr_array_add(list, m);
	}
	g_ptr_array_sort(list, cmp_ino);
	for (guint i = 0; i < 2 + list->len; i++) {
		const char *name;
		struct fuse_entry_param ep = { 0 };
		off_t next;
		size_t need;

		if (i < 2) {
			if (off > (off_t)i)
				continue;
			name = i == 0 ? "." : "..";
			root_attr(fs, &ep.attr);
			ep.ino = 0; /* no lookup reference for "." and ".." */
			next = (off_t)i + 1;
		} else {
			struct msg *m = list->pdata[i - 2];

			name = m->name;
			msg_attr(fs, m, &ep.attr);
			ep.ino = m->ino;
			ep.generation = 1;
			ep.attr_timeout = 1.0;
			ep.entry_timeout = entry_timeout(fs);
			next = (off_t)(m->ino + DIR_OFF_BASE);
		}
		if (plus) {
			need = fuse_add_direntry_plus(req, buf + used, size - used, name, &ep,
						      next);
		} else {
			if (i < 2)
				ep.attr.st_ino = FUSE_ROOT_ID;
			need = fuse_add_direntry(req, buf + used, size - used, name, &ep.attr,
						 next);
		}
		if (need > size - used)
			break;
		used += need;
	}
	mfs_mutex_unlock(&fs->lock);
	fuse_reply_buf(req, buf, used);
	g_free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, FALSE);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, TRUE);
}

/* -- open, read, flush, release, unlink -------------------------------------------------- */

static struct msg *msg_by_ino(struct mfs_pop3_fs *fs, fuse_ino_t ino)
{
	guint64 key = ino;
	struct msg *m;

	mfs_mutex_lock(&fs->lock);
	m = g_hash_table_lookup(fs->by_ino, &key);
	mfs_mutex_unlock(&fs->lock);
	return m;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct msg *m = msg_by_ino(fs, ino);
	struct handle *h;
	GError *e = NULL;
	int rc = 0;

	if (!m) {
		fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	mfs_mutex_lock(&fs->lock);
	if (m->taken || m->taking || m->gone) {
		rc = m->fd >= 0 ? 0 : -ENOENT;
	} else {
		gboolean walking = note_open(fs, m) && fs->opts->prefetch > 0;

		if (m->fd >= 0 && walking) {
			/* Read ahead already: no session needed, and the
			   read-ahead thread keeps the lead. */
			fs->ahead_from = m;
			mfs_cond_signal(&fs->ahead_cond);
		} else if (m->fd < 0) {
			mfs_mutex_unlock(&fs->lock);
			mfs_mutex_lock(&fs->sess_lock);
			rc = walking ? download_ahead(fs, m, &e) : download(fs, m, &e);
			mfs_mutex_unlock(&fs->sess_lock);
			mfs_mutex_lock(&fs->lock);
		}
	}
	if (rc == 0) {
		m->opens++;
		m->ahead = FALSE;
	}
	mfs_mutex_unlock(&fs->lock);
	if (rc < 0) {
		if (e)
			mfs_log_info("cannot open %s: %s", m->name, e->message);
		g_clear_error(&e);
		fuse_reply_err(req, -rc);
		return;
	}
	h = g_new0(struct handle, 1);
	h->m = m;
	mfs_mutex_lock(&fs->lock);
	g_hash_table_add(fs->handles, h);
	mfs_mutex_unlock(&fs->lock);
	fi->fh = (uint64_t)(uintptr_t)h;
	/* Every read reaches us, so the kernel's read-ahead is never taken for a reader. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0) {
		mfs_mutex_lock(&fs->lock);
		m->opens--;
		g_hash_table_remove(fs->handles, h); /* frees it */
		mfs_mutex_unlock(&fs->lock);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	char *buf;
	ssize_t n;
	int fd;
	guint64 msize;

	(void)ino;
	mfs_mutex_lock(&fs->lock);
	fd = h->m->fd;
	msize = h->m->size;
	if (off >= 0 && (guint64)off >= msize)
		h->at_end = TRUE;
	mfs_mutex_unlock(&fs->lock);
	if (off < 0 || fd < 0) {
		fuse_reply_err(req, off < 0 ? EINVAL : EIO);
		return;
	}
	buf = g_malloc(size ? size : 1);
	do
		n = pread(fd, buf, size, off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	g_free(buf);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	GError *e = NULL;
	gboolean at_end;
	int rc = 0;

	(void)ino;
	mfs_mutex_lock(&fs->lock);
	at_end = h->at_end;
	mfs_mutex_unlock(&fs->lock);
	if (!at_end) {
		fuse_reply_err(req, 0);
		return;
	}
	rc = take(fs, h->m, TRUE, &e);
	if (rc < 0) {
		mfs_log_error("not taken: %s", e ? e->message : g_strerror(-rc));
		set_last_error(fs, e ? e->message : g_strerror(-rc));
		g_clear_error(&e);
	}
	fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct msg *m = h->m;

	(void)ino;
	mfs_mutex_lock(&fs->lock);
	m->opens--;
	/* A message being taken is closed by take_commit(). */
	if (m->opens == 0 && (m->taken || m->gone) && !m->taking && m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
		if (m->spool_path) {
			g_unlink(m->spool_path);
			g_clear_pointer(&m->spool_path, g_free);
		}
	}
	g_hash_table_remove(fs->handles, h); /* frees it */
	mfs_mutex_unlock(&fs->lock);
	fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct msg *m;
	GError *e = NULL;
	int rc;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fs->opts->readonly) {
		fuse_reply_err(req, EROFS);
		return;
	}
	mfs_mutex_lock(&fs->lock);
	m = g_hash_table_lookup(fs->by_name, name);
	mfs_mutex_unlock(&fs->lock);
	rc = m ? take(fs, m, FALSE, &e) : -ENOENT;
	if (rc < 0 && e) {
		mfs_log_error("not taken: %s", e->message);
		set_last_error(fs, e->message);
	}
	g_clear_error(&e);
	fuse_reply_err(req, -rc);
}

/* -- xattrs, statfs, init ------------------------------------------------------------------ */

static char *status_text(struct mfs_pop3_fs *fs)
{
	GString *s = g_string_new(NULL);
	gboolean connected;
	guint taken_known;

	mfs_mutex_lock(&fs->sess_lock);
	connected = fs->sess && pop3_session_alive(fs->sess);
	mfs_mutex_unlock(&fs->sess_lock);
	mfs_mutex_lock(&fs->state_lock);
	taken_known = spool_state_count(fs->state);
	mfs_mutex_unlock(&fs->state_lock);
	mfs_mutex_lock(&fs->lock);
	g_string_append_printf(s, "state: %s\n", connected ? "connected" : "idle");
	g_string_append_printf(s, "server: %s\n", fs->opts->url);
	g_string_append_printf(s, "messages_waiting: %u\n", g_hash_table_size(fs->by_name));
	g_string_append_printf(s, "messages_taken: %" G_GUINT64_FORMAT "\n", fs->taken_count);
	g_string_append_printf(s, "bytes_taken: %" G_GUINT64_FORMAT "\n", fs->taken_bytes);
	g_string_append_printf(s, "takes_uncommitted: %u\n", fs->takes->len + fs->committing);
	g_string_append_printf(s, "messages_retrieved: %" G_GUINT64_FORMAT "\n", fs->retrieved);
	g_string_append_printf(s, "bytes_retrieved: %" G_GUINT64_FORMAT "\n",
			       fs->retrieved_bytes);
	g_string_append_printf(s, "messages_read_ahead: %" G_GUINT64_FORMAT "\n",
			       fs->ahead_count);
	g_string_append_printf(s, "sessions: %" G_GUINT64_FORMAT "\n", fs->sessions);
	g_string_append_printf(s, "taken_uidls_remembered: %u\n", taken_known);
	g_string_append_printf(s, "archive: %s\n",
			       fs->opts->pop3_archive ? fs->opts->pop3_archive : "none");
	g_string_append_printf(s, "keep: %s\n", fs->opts->pop3_keep ? "yes" : "no");
	if (fs->last_error)
		g_string_append_printf(s, "last_error: %s\n", fs->last_error);
	mfs_mutex_unlock(&fs->lock);
	return g_string_free(s, FALSE);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	g_autofree char *text = NULL;
	size_t len;

	/* ENOTSUP outside user.*, as in the IMAP view: ls -l then stops asking
	 * for security.selinux and the ACL of every file. */
	if (!g_str_has_prefix(name, "user.")) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (ino != FUSE_ROOT_ID || strcmp(name, STATUS_XATTR) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	text = status_text(fs);
	len = strlen(text);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, text, len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	size_t len = ino == FUSE_ROOT_ID ? sizeof(STATUS_XATTR) : 0;

	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, STATUS_XATTR, len);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_pop3_fs *fs = fuse_req_userdata(req);
	struct statvfs st = { 0 };
	struct statvfs local;

	(void)ino;
	if (statvfs(fs->spool_dir, &local) == 0) {
		guint64 avail = (guint64)local.f_bavail * local.f_frsize / 4096;

		st.f_bfree = st.f_bavail = MAX(avail, 1);
		st.f_blocks = MAX((guint64)local.f_blocks * local.f_frsize / 4096, st.f_bfree);
	} else {
		st.f_blocks = st.f_bfree = st.f_bavail = 1;
	}
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_files = 1000000;
	st.f_ffree = 1000000;
	st.f_favail = 1000000;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.open = op_open,
	.read = op_read,
	.flush = op_flush,
	.release = op_release,
	.unlink = op_unlink,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
};

const struct fuse_lowlevel_ops *mfs_pop3_fs_ops(void)
{
	return &ops;
}
