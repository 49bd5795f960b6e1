/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The POP3 account's lifecycle and the calls the filesystem makes.
 * Contract and lock order: account/pop3_account.h.
 */
#include "account/pop3_internal.h"
#include "transport/conn.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

gint64 p3_now_us(void)
{
	return g_get_monotonic_time();
}

void p3_crash_point(struct pop3_account *a, const char *where)
{
	if (a->crash_at && strcmp(a->crash_at, where) == 0) {
		mfs_log_info("MAILFS_CRASH_AT=%s: exiting", where);
		_exit(99);
	}
}

void p3_set_last_error(struct pop3_account *a, const char *text)
{
	mfs_mutex_lock(&a->lock);
	g_free(a->last_error);
	a->last_error = g_strdup(text);
	mfs_mutex_unlock(&a->lock);
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

struct pop3_account *pop3_account_new(const struct mfs_options *opts,
				      const struct pop3_session_opts *so, GError **err)
{
	struct pop3_account *a = g_new0(struct pop3_account, 1);
	g_autofree char *dirname = mfs_options_account_dirname(opts->account);

	a->archive_fd = -1;
	a->opts = opts;
	a->cancel = conn_cancel_new();
	a->so_own = *so;
	a->so_own.cancel = a->cancel;
	a->so = &a->so_own;
	a->mount_time = g_get_real_time() / G_USEC_PER_SEC;
	a->crash_at = g_strdup(g_getenv("MAILFS_CRASH_AT"));
	a->next_ino = POP3_ACCOUNT_ROOT_INO + 1;
	mfs_mutex_init(&a->lock);
	mfs_mutex_init(&a->sess_lock);
	mfs_mutex_init(&a->state_lock);
	mfs_cond_init(&a->cond);
	mfs_cond_init(&a->take_cond);
	mfs_cond_init(&a->ahead_cond);
	mfs_cond_init(&a->fetch_cond);
	/* Two: a batch's file creations and writes overlap its transfer and
	   each other. */
	a->syncers = workers_new("pop3-sync", 2, p3_ahead_sync, NULL, NULL);
	a->takes = g_ptr_array_new();
	a->ahead_deles = g_ptr_array_new();
	a->by_ino = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, msg_free);
	a->files = g_hash_table_new_full(g_direct_hash, g_direct_equal, g_free, NULL);
	a->by_uidl = g_hash_table_new(g_str_hash, g_str_equal);
	a->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	a->spool_dir = g_build_filename(opts->cache_dir, "spool", NULL);
	a->state_dir = g_build_filename(g_get_user_state_dir(), "mailfs", dirname, NULL);
	if (!spool_mkdir(opts->cache_dir, 0700, err) || !spool_mkdir(a->spool_dir, 0700, err))
		goto fail;
	clear_spool(a->spool_dir);
	a->state = spool_state_open(a->state_dir, err);
	if (!a->state)
		goto fail;
	if (opts->pop3_archive && (!spool_archive_prepare(opts->pop3_archive, err) ||
				   (a->archive_fd = spool_archive_watch(opts->pop3_archive, err)) < 0)) {
		g_prefix_error(err, "pop3_archive: "); /* the option to change */
		goto fail;
	}
	return a;
fail:
	pop3_account_free(a);
	return NULL;
}

void pop3_account_free(struct pop3_account *a)
{
	if (!a)
		return;
	if (a->sess) {
		GError *e = NULL;

		if (pop3_session_alive(a->sess) && pop3_quit(a->sess, &e) < 0) {
			mfs_log_info("%s", e->message);
			g_clear_error(&e);
		}
		pop3_session_free(a->sess);
	}
	spool_state_free(a->state);
	g_clear_pointer(&a->name_order, g_ptr_array_unref);
	g_hash_table_destroy(a->by_name);
	g_hash_table_destroy(a->by_uidl);
	g_hash_table_destroy(a->by_ino);
	g_hash_table_destroy(a->files);
	if (a->archive_fd >= 0)
		close(a->archive_fd);
	g_free(a->spool_dir);
	g_free(a->state_dir);
	g_free(a->crash_at);
	g_free(a->last_error);
	g_free(a->down_reason);
	g_free(a->last_open);
	g_ptr_array_free(a->takes, TRUE);
	g_ptr_array_free(a->ahead_deles, TRUE);
	workers_free(a->syncers, TRUE);
	mfs_mutex_clear(&a->lock);
	mfs_mutex_clear(&a->sess_lock);
	mfs_mutex_clear(&a->state_lock);
	mfs_cond_clear(&a->cond);
	mfs_cond_clear(&a->take_cond);
	mfs_cond_clear(&a->ahead_cond);
	mfs_cond_clear(&a->fetch_cond);
	conn_cancel_free(a->cancel);
	g_free(a);
}

gboolean pop3_account_start(struct pop3_account *a, GError **err)
{
	GError *e = NULL;
	int rc;

	mfs_mutex_lock(&a->sess_lock);
	rc = p3_session_get(a, NULL, &e);
	mfs_mutex_unlock(&a->sess_lock);
	if (rc == 0)
		return TRUE;
	/* The server knows the maildrop and says "not now" (logged by
	   note_busy): mount it empty; the poll thread lists it when let in. */
	if (p3_busy_error(e)) {
		g_error_free(e);
		return TRUE;
	}
	g_propagate_error(err, e);
	return FALSE;
}

void pop3_account_attach(struct pop3_account *a, const struct pop3_account_notify *n)
{
	a->notify = *n;
	a->taker = g_thread_new("pop3-take", p3_taker_thread, a);
	a->ahead = g_thread_new("pop3-ahead", p3_ahead_thread, a);
	a->poll = g_thread_new("pop3-poll", p3_poll_thread, a);
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

void pop3_account_detach(struct pop3_account *a)
{
	/* Down: the poll thread's login in progress (it holds the session's
	   lock, which the other threads may wait for) is abandoned, and no
	   last login is tried. Up, the last QUIT commits what was taken. */
	if (p3_down(a, NULL))
		conn_cancel_fire(a->cancel);
	stop_thread(&a->ahead, &a->lock, &a->ahead_cond, &a->ahead_stop);
	/* Takes before the poll thread: their DELEs go out before its last QUIT. */
	stop_thread(&a->taker, &a->lock, &a->take_cond, &a->take_stop);
	stop_thread(&a->poll, &a->sess_lock, &a->cond, &a->stop);
	memset(&a->notify, 0, sizeof(a->notify));
}

char *pop3_account_status(struct pop3_account *a)
{
	GString *s = g_string_new(NULL);
	gboolean connected;
	guint taken_known;

	/* Down, the poll thread's login may hold the session for a timeout:
	   there is none to show then, and the status must not wait. */
	if (p3_down(a, NULL)) {
		connected = FALSE;
	} else {
		mfs_mutex_lock(&a->sess_lock);
		connected = a->sess && pop3_session_alive(a->sess);
		mfs_mutex_unlock(&a->sess_lock);
	}
	mfs_mutex_lock(&a->state_lock);
	taken_known = spool_state_count(a->state);
	mfs_mutex_unlock(&a->state_lock);
	mfs_mutex_lock(&a->lock);
	if (a->down) {
		g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(a->down_since / G_USEC_PER_SEC);
		g_autofree char *since = t ? g_date_time_format_iso8601(t) : g_strdup("?");

		g_string_append_printf(s, "state: down since %s\n", since);
		g_string_append_printf(s, "down_reason: %s\n", a->down_reason);
	} else {
		g_string_append_printf(s, "state: up\n");
	}
	g_string_append_printf(s, "session: %s\n", connected ? "open" : "none");
	g_string_append_printf(s, "server: %s\n", a->opts->url);
	g_string_append_printf(s, "messages_waiting: %u\n", g_hash_table_size(a->by_name));
	g_string_append_printf(s, "messages_taken: %" G_GUINT64_FORMAT "\n", a->taken_count);
	g_string_append_printf(s, "bytes_taken: %" G_GUINT64_FORMAT "\n", a->taken_bytes);
	g_string_append_printf(s, "takes_uncommitted: %u\n", a->takes->len + a->committing + a->ahead_deles->len);
	g_string_append_printf(s, "messages_retrieved: %" G_GUINT64_FORMAT "\n", a->retrieved);
	g_string_append_printf(s, "bytes_retrieved: %" G_GUINT64_FORMAT "\n",
			       a->retrieved_bytes);
	g_string_append_printf(s, "messages_read_ahead: %" G_GUINT64_FORMAT "\n",
			       a->ahead_count);
	g_string_append_printf(s, "sessions: %" G_GUINT64_FORMAT "\n", a->sessions);
	g_string_append_printf(s, "taken_uidls_remembered: %u\n", taken_known);
	g_string_append_printf(s, "archive: %s\n",
			       a->opts->pop3_archive ? a->opts->pop3_archive : "none");
	g_string_append_printf(s, "keep: %s\n", a->opts->pop3_keep ? "yes" : "no");
	if (a->last_error)
		g_string_append_printf(s, "last_error: %s\n", a->last_error);
	mfs_mutex_unlock(&a->lock);
	return g_string_free(s, FALSE);
}

gint64 pop3_account_mount_time(const struct pop3_account *a)
{
	return a->mount_time;
}

const char *pop3_account_spool_dir(const struct pop3_account *a)
{
	return a->spool_dir;
}

/* -- what the filesystem asks ----------------------------------------------------------- */

/* Lock held. */
static void entry_of(const struct msg *m, struct pop3_entry *out)
{
	out->ino = m->ino;
	out->size = m->size;
	out->mtime = m->mtime;
	out->nlink = m->taken || m->taking || m->gone ? 0 : 1;
	out->name = NULL;
}

gboolean pop3_account_lookup(struct pop3_account *a, const char *name, struct pop3_entry *out)
{
	struct msg *m;

	mfs_mutex_lock(&a->lock);
	m = g_hash_table_lookup(a->by_name, name);
	if (m)
		entry_of(m, out);
	mfs_mutex_unlock(&a->lock);
	return m != NULL;
}

/* Lock held. */
static struct msg *msg_by_ino(struct pop3_account *a, guint64 ino)
{
	return g_hash_table_lookup(a->by_ino, &ino);
}

gboolean pop3_account_getattr(struct pop3_account *a, guint64 ino, struct pop3_entry *out)
{
	struct msg *m;

	mfs_mutex_lock(&a->lock);
	m = msg_by_ino(a, ino);
	if (m)
		entry_of(m, out);
	mfs_mutex_unlock(&a->lock);
	return m != NULL;
}

void pop3_account_refresh(struct pop3_account *a)
{
	gint64 now;

	/* A session busy elsewhere (a download, the poll thread waiting for a
	   locked maildrop) means a listing is on its way: serve the last one.
	   So does a maildrop another client holds: a server may make a login
	   wait seconds for its lock before [IN-USE]; the poll thread retries.
	   Within the server's LOGIN-DELAY the last listing is served too. */
	if (!mfs_mutex_trylock(&a->sess_lock))
		return;
	now = p3_now_us();
	if ((a->listed_at == 0 || now - a->listed_at >= (gint64)a->opts->poll * G_USEC_PER_SEC) &&
	    now >= a->retry_after && !a->busy && p3_may_work(a, now))
		p3_refresh_locked(a);
	mfs_mutex_unlock(&a->sess_lock);
}

static gint cmp_ino(gconstpointer x, gconstpointer y)
{
	const struct pop3_entry *p = x;
	const struct pop3_entry *q = y;

	return p->ino < q->ino ? -1 : p->ino > q->ino;
}

static void entry_clear(gpointer p)
{
	g_free(((struct pop3_entry *)p)->name);
}

GArray *pop3_account_listing(struct pop3_account *a, gint64 after)
{
	GArray *list = g_array_new(FALSE, FALSE, sizeof(struct pop3_entry));
	GHashTableIter it;
	gpointer v;

	g_array_set_clear_func(list, entry_clear);
	mfs_mutex_lock(&a->lock);
	g_hash_table_iter_init(&it, a->by_name);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		const struct msg *m = v;
		struct pop3_entry e;

		if ((gint64)m->ino <= after)
			continue;
		entry_of(m, &e);
		e.name = g_strdup(m->name);
		g_array_append_val(list, e);
	}
	mfs_mutex_unlock(&a->lock);
	g_array_sort(list, cmp_ino);
	return list;
}

/*
 * m's bytes for an open (no lock held): at once when downloaded, or once
 * the read-ahead batch it is in installs it; the
 * read-ahead thread is woken for a walking reader; else downloaded now,
 * with the messages after it when the reader walks.
 */
static int open_msg(struct pop3_account *a, struct msg *m, GError **err)
{
	gboolean walking;
	int rc = 0;

	mfs_mutex_lock(&a->lock);
	/* In a read-ahead batch: its syncer installs it shortly, while the
	   batch goes on (the session is the batch's until its end). */
	while (m->fd < 0 && m->fetching)
		mfs_cond_wait(&a->fetch_cond, &a->lock);
	if (m->taken || m->taking || m->gone) {
		rc = m->fd >= 0 ? 0 : -ENOENT;
		goto out;
	}
	walking = p3_note_open(a, m) && a->opts->prefetch > 0;
	/* Caught up with the read-ahead thread's batch in flight: m comes
	   with its next one (which walking then keeps going, below). */
	if (m->fd < 0 && walking && !a->down && p3_ahead_wait(a, m) &&
	    (m->taken || m->taking || m->gone)) {
		/* Taken by another reader meanwhile: as above. */
		goto out;
	}
	if (m->fd >= 0 && walking) {
		/* Read ahead already: no session needed, and the read-ahead
		   thread keeps the lead. */
		a->ahead_from = m;
		mfs_cond_signal(&a->ahead_cond);
	} else if (m->fd < 0 && a->down) {
		/* Fail at once, not after the probe that may hold the session. */
		p3_set_down_error(a, err);
		rc = -EIO;
	} else if (m->fd < 0) {
		mfs_mutex_unlock(&a->lock);
		mfs_mutex_lock(&a->sess_lock);
		rc = walking ? p3_download_ahead(a, m, err) : p3_download(a, m, err);
		mfs_mutex_unlock(&a->sess_lock);
		mfs_mutex_lock(&a->lock);
	}
out:
	if (rc == 0) {
		m->opens++;
		m->ahead = FALSE;
	}
	mfs_mutex_unlock(&a->lock);
	return rc;
}

int pop3_account_open(struct pop3_account *a, guint64 ino, struct pop3_file **out)
{
	struct pop3_file *f;
	struct msg *m;
	GError *e = NULL;
	int rc;

	mfs_mutex_lock(&a->lock);
	m = msg_by_ino(a, ino);
	mfs_mutex_unlock(&a->lock);
	if (!m)
		return -ENOENT;
	rc = open_msg(a, m, &e);
	if (rc < 0) {
		/* While down, that was said when it went down. */
		if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED))
			mfs_log_debug(MFS_LOG_POP3, "cannot open %s: %s", m->name, e->message);
		else if (e)
			mfs_log_info("cannot open %s: %s", m->name, e->message);
		g_clear_error(&e);
		return rc;
	}
	f = g_new0(struct pop3_file, 1);
	f->m = m;
	mfs_mutex_lock(&a->lock);
	g_hash_table_add(a->files, f);
	mfs_mutex_unlock(&a->lock);
	*out = f;
	return 0;
}

ssize_t pop3_account_read(struct pop3_account *a, struct pop3_file *f, void *buf, size_t size,
			  gint64 off)
{
	ssize_t n;
	int fd;

	mfs_mutex_lock(&a->lock);
	fd = f->m->fd;
	if (off >= 0 && (guint64)off >= f->m->size)
		f->at_end = TRUE;
	mfs_mutex_unlock(&a->lock);
	if (off < 0 || fd < 0)
		return off < 0 ? -EINVAL : -EIO;
	/* Unlocked: the fd stays open while f is (opens > 0). */
	do
		n = pread(fd, buf, size, off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* A take a user asked for failed: logged, and kept for the status. */
static void take_failed(struct pop3_account *a, int rc, GError *e)
{
	const char *why = e ? e->message : g_strerror(-rc);

	mfs_log_error("not taken: %s", why);
	p3_set_last_error(a, why);
}

int pop3_account_flush(struct pop3_account *a, struct pop3_file *f)
{
	GError *e = NULL;
	gboolean at_end;
	int rc;

	mfs_mutex_lock(&a->lock);
	at_end = f->at_end;
	mfs_mutex_unlock(&a->lock);
	if (!at_end)
		return 0;
	rc = p3_take(a, f->m, TRUE, &e);
	if (rc < 0)
		take_failed(a, rc, e);
	g_clear_error(&e);
	return rc;
}

void pop3_account_release(struct pop3_account *a, struct pop3_file *f)
{
	struct msg *m = f->m;

	mfs_mutex_lock(&a->lock);
	m->opens--;
	/* A message being taken is closed by the taker. */
	if (m->opens == 0 && (m->taken || m->gone) && !m->taking && m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
		if (m->spool_path) {
			g_unlink(m->spool_path);
			g_clear_pointer(&m->spool_path, g_free);
		}
	}
	g_hash_table_remove(a->files, f); /* frees it */
	mfs_mutex_unlock(&a->lock);
}

int pop3_account_unlink(struct pop3_account *a, const char *name)
{
	struct msg *m;
	GError *e = NULL;
	int rc;

	mfs_mutex_lock(&a->lock);
	m = g_hash_table_lookup(a->by_name, name);
	mfs_mutex_unlock(&a->lock);
	rc = m ? p3_take(a, m, FALSE, &e) : -ENOENT;
	if (rc < 0 && e)
		take_failed(a, rc, e);
	g_clear_error(&e);
	return rc;
}
