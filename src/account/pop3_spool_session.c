/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The POP3 account's one session: login and listing, the busy maildrop and
 * LOGIN-DELAY rules, QUIT, downloads into the spool store, and the poll
 * thread. Contract and lock order: account/pop3_account.h.
 */
#include "account/pop3_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <gmime/gmime.h>
#include <string.h>
#include <unistd.h>

#include "model/headers.h"
#include "model/names.h"
#include "util/log.h"

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
	struct pop3_account *a;
	GHashTable *by_num; /* num -> struct msg */
};

static void on_top(void *ud, guint32 num, int rc, const GByteArray *headers)
{
	struct top_ctx *t = ud;
	struct msg *m;
	gint64 date;

	if (rc < 0 || !headers)
		return;
	date = header_date((const char *)headers->data, headers->len, t->a->mount_time);
	mfs_mutex_lock(&t->a->lock);
	m = g_hash_table_lookup(t->by_num, GUINT_TO_POINTER(num));
	if (m && m->fd < 0)
		m->mtime = date;
	mfs_mutex_unlock(&t->a->lock);
}

void p3_unlist(struct pop3_account *a, struct msg *m, gboolean tell_kernel)
{
	if (g_hash_table_lookup(a->by_name, m->name) != m)
		return;
	g_hash_table_remove(a->by_name, m->name);
	if (tell_kernel && a->notify.entry_gone)
		a->notify.entry_gone(a->notify.ud, m->ino, m->name);
}

/* A message listed for the first time (lock held): the next inode. */
static struct msg *msg_new(struct pop3_account *a, const struct pop3_msg *pm)
{
	struct msg *m = g_new0(struct msg, 1);
	g_autofree char *esc = names_escape(pm->uidl, strlen(pm->uidl));

	m->ino = a->next_ino++;
	m->uidl = g_strdup(pm->uidl);
	m->name = g_strconcat(esc, ".eml", NULL);
	m->fd = -1;
	m->size = pm->size;
	m->mtime = a->mount_time;
	g_hash_table_insert(a->by_ino, &m->ino, m);
	g_hash_table_insert(a->by_uidl, m->uidl, m);
	g_hash_table_insert(a->by_name, m->name, m);
	g_clear_pointer(&a->name_order, g_ptr_array_unref);
	return m;
}

/*
 * A listing into the table (state_lock and lock held): numbers of this
 * session, new messages (their numbers into top), taken UIDLs still there
 * (their numbers into dele). present gets every UIDL, by_num every listed
 * message not taken.
 */
static void merge_listing(struct pop3_account *a, GArray *all, GHashTable *present, GArray *dele,
			  GArray *top, GHashTable *by_num)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, a->by_ino);
	while (g_hash_table_iter_next(&it, NULL, &v))
		((struct msg *)v)->num = 0;
	for (guint i = 0; i < all->len; i++) {
		const struct pop3_msg *pm = &g_array_index(all, struct pop3_msg, i);
		struct msg *m;

		g_hash_table_add(present, pm->uidl);
		m = g_hash_table_lookup(a->by_uidl, pm->uidl);
		if (spool_state_has(a->state, pm->uidl)) {
			if (!a->opts->pop3_keep)
				g_array_append_val(dele, pm->num);
			if (m)
				m->num = pm->num;
			continue;
		}
		if (!m) {
			m = msg_new(a, pm);
			g_array_append_val(top, pm->num);
		} else if (m->fd < 0) {
			m->size = pm->size;
		}
		m->num = pm->num;
		m->gone = FALSE;
		g_hash_table_insert(by_num, GUINT_TO_POINTER(pm->num), m);
	}
}

/* Messages not in present and not taken by us (lock held): another client took them. */
static void mark_vanished(struct pop3_account *a, GHashTable *present)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, a->by_ino);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct msg *m = v;

		if (m->taken || m->taking || g_hash_table_contains(present, m->uidl))
			continue;
		/* Gone, though an open copy still reads. */
		m->gone = TRUE;
		p3_unlist(a, m, TRUE);
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

/*
 * UIDL + LIST into the table: new messages get an inode and a TOP for their
 * date, vanished ones leave the listing, taken ones still there get DELE.
 */
static int sync_listing(struct pop3_account *a, GError **err)
{
	g_autoptr(GArray) all = NULL;
	g_autoptr(GHashTable) present = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GArray) dele = g_array_new(FALSE, FALSE, sizeof(guint32));
	g_autoptr(GArray) top = g_array_new(FALSE, FALSE, sizeof(guint32));
	struct top_ctx t = { .a = a };
	GError *e = NULL;
	int rc = 0;

	all = pop3_list_all(a->sess, &e);
	if (!all) {
		rc = -pop3_error_errno(e, NULL);
		g_propagate_error(err, e);
		return rc;
	}
	t.by_num = g_hash_table_new(g_direct_hash, g_direct_equal);
	mfs_mutex_lock(&a->state_lock);
	mfs_mutex_lock(&a->lock);
	merge_listing(a, all, present, dele, top, t.by_num);
	mark_vanished(a, present);
	mfs_mutex_unlock(&a->lock);
	/* Taken UIDLs no longer on the server were deleted for good. */
	if (!spool_state_prune(a->state, present, &e)) {
		mfs_log_error("%s", e->message);
		g_clear_error(&e);
	}
	mfs_mutex_unlock(&a->state_lock);
	if (dele->len) {
		g_autofree int *rcs = g_new0(int, dele->len);

		rc = pop3_dele_many(a->sess, (const guint32 *)(void *)dele->data, dele->len, rcs,
				    &e);
		a->deles += dele->len;
	}
	/* TOP is optional (RFC 1939) but near universal: try it even when CAPA is silent. */
	if (rc == 0 && top->len)
		rc = pop3_top_many(a->sess, (const guint32 *)(void *)top->data, top->len, on_top,
				   &t, &e);
	g_hash_table_destroy(t.by_num);
	if (rc < 0) {
		g_propagate_error(err, e);
		return rc;
	}
	a->listed_at = p3_now_us();
	/* Every taken UIDL still there was marked again: the QUIT commits them. */
	a->dele_pending = FALSE;
	return 0;
}

/* -- down and up (pop3_account.h, DOWN) --------------------------------------- */

#define PROBE_BACKOFF_MAX_S 60

void p3_set_down_error(const struct pop3_account *a, GError **err)
{
	g_autoptr(GDateTime) t = g_date_time_new_from_unix_local(a->down_since / G_USEC_PER_SEC);
	g_autofree char *when = t ? g_date_time_format(t, "%H:%M:%S") : g_strdup("?");

	g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "%s is down since %s (%s)",
		    a->so->host, when, a->down_reason ? a->down_reason : "?");
}

gboolean p3_down(struct pop3_account *a, GError **err)
{
	gboolean down;

	mfs_mutex_lock(&a->lock);
	down = a->down;
	if (down && err)
		p3_set_down_error(a, err);
	mfs_mutex_unlock(&a->lock);
	return down;
}

/*
 * The server is down from now (sess_lock held): opens that need it fail at
 * once, and the poll thread logs in at 1 s, 2 s, 4 s ... up to 60 s. Not
 * before the threads start: a mount whose first login fails says so itself.
 */
static void go_down(struct pop3_account *a, const GError *why)
{
	gboolean news;

	if (!a->poll)
		return;
	mfs_mutex_lock(&a->lock);
	news = !a->down;
	if (news) {
		a->down = TRUE;
		a->down_since = g_get_real_time();
	}
	g_free(a->down_reason);
	a->down_reason = g_strdup(why->message);
	mfs_mutex_unlock(&a->lock);
	if (!news)
		return;
	mfs_log_warn("%s is down: opening a message not downloaded yet fails at once until it "
		     "answers again (tried again in the background)",
		     a->so->host);
	a->probe_failures = 0;
	a->probe_at = p3_now_us() + G_USEC_PER_SEC;
	mfs_cond_broadcast(&a->cond);
}

/* A login worked (sess_lock held). */
static void come_up(struct pop3_account *a)
{
	gint64 since = 0;

	mfs_mutex_lock(&a->lock);
	if (a->down) {
		since = a->down_since;
		a->down = FALSE;
		g_clear_pointer(&a->down_reason, g_free);
	}
	mfs_mutex_unlock(&a->lock);
	if (since)
		mfs_log_info("connected to %s again, after %" G_GINT64_FORMAT " s down",
			     pop3_session_peer(a->sess),
			     (g_get_real_time() - since) / G_USEC_PER_SEC);
}

/* The poll thread's login while down (sess_lock held): a listing, as a
   poll makes, then QUIT; the next try later when it fails. */
static void probe(struct pop3_account *a)
{
	a->probing = TRUE;
	p3_refresh_locked(a);
	a->probing = FALSE;
	if (!p3_down(a, NULL))
		return;
	a->probe_failures++;
	a->probe_at = p3_now_us() +
		      (gint64)MIN(1u << MIN(a->probe_failures, 6u), PROBE_BACKOFF_MAX_S) *
			  G_USEC_PER_SEC;
}

void p3_drop_session(struct pop3_account *a)
{
	if (a->sess && pop3_session_timed_out(a->sess)) {
		GError *e = g_error_new(G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
					"%s made no progress for %d s",
					pop3_session_peer(a->sess), a->so->timeout_s);

		go_down(a, e);
		g_error_free(e);
	}
	/* DELEs of a session that ended without a confirmed QUIT: send them again. */
	if (a->deles)
		a->dele_pending = TRUE;
	g_clear_pointer(&a->sess, pop3_session_free);
	a->deles = 0;
}

/* An error worth waiting out rather than reporting: the maildrop is busy. */
gboolean p3_busy_error(const GError *e)
{
	return g_error_matches(e, POP3_ERROR, POP3_ERROR_IN_USE) ||
	       g_error_matches(e, POP3_ERROR, POP3_ERROR_LOGIN_DELAY) ||
	       g_error_matches(e, POP3_ERROR, POP3_ERROR_SYS_TEMP);
}

static gint64 retry_interval(const struct pop3_account *a)
{
	return (gint64)MIN(a->opts->poll, BUSY_RETRY_S) * G_USEC_PER_SEC;
}

/* The server said "not now": logged once until a session works again. */
static void note_busy(struct pop3_account *a, const GError *e)
{
	if (!a->busy)
		mfs_log_info("%s; keeping the last listing, trying again later", e->message);
	a->busy = TRUE;
	a->retry_after = p3_now_us() + retry_interval(a);
}

/* RFC 2449 §6.5: no login within the server's LOGIN-DELAY of the last one. */
static gint64 delay_ends(const struct pop3_account *a)
{
	return a->login_at ? a->login_at + a->login_delay : 0;
}

/*
 * The earliest moment for a login nobody is waiting for (a poll, an ls, a
 * deferred DELE): after the LOGIN-DELAY and, after a refusal, the retry
 * interval. An open() that must download logs in at once: a reader waits.
 */
static gint64 next_login(const struct pop3_account *a)
{
	return MAX(delay_ends(a), a->busy ? a->retry_after : 0);
}

/* Background work can be done now: on the open session, or with a due
   login (not while down: the poll thread's probe comes first). */
gboolean p3_may_work(struct pop3_account *a, gint64 now)
{
	return (a->sess && pop3_session_alive(a->sess)) ||
	       (now >= next_login(a) && !p3_down(a, NULL));
}

/* A live session whose listing is current; connects (and lists) when needed. */
int p3_session_get(struct pop3_account *a, gboolean *fresh, GError **err)
{
	GError *e = NULL;
	int rc;

	if (fresh)
		*fresh = FALSE;
	if (a->sess && pop3_session_alive(a->sess)) {
		a->last_use = p3_now_us();
		return 0;
	}
	p3_drop_session(a);
	/* Down: nobody but the probe waits for a login. */
	if (!a->probing && p3_down(a, err))
		return -EIO;
	a->sess = pop3_connect(a->so, &e);
	if (!a->sess) {
		rc = -pop3_error_errno(e, NULL);
		p3_set_last_error(a, e->message);
		if (p3_busy_error(e))
			note_busy(a, e);
		else if (!g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			go_down(a, e);
		g_propagate_error(err, e);
		return rc;
	}
	come_up(a);
	a->login_at = p3_now_us();
	a->login_delay = (gint64)pop3_session_login_delay(a->sess) * G_USEC_PER_SEC;
	mfs_mutex_lock(&a->lock);
	a->sessions++;
	mfs_mutex_unlock(&a->lock);
	if (fresh)
		*fresh = TRUE;
	rc = sync_listing(a, &e);
	if (rc < 0) {
		p3_set_last_error(a, e ? e->message : "listing failed");
		if (p3_busy_error(e))
			note_busy(a, e);
		g_propagate_error(err, e);
		p3_drop_session(a);
		return rc;
	}
	a->busy = FALSE;
	a->retry_after = 0;
	a->last_use = p3_now_us();
	return 0;
}

static void quit_session(struct pop3_account *a)
{
	GError *e = NULL;
	guint deles = a->deles;

	int rc;

	if (!a->sess)
		return;
	if (pop3_session_alive(a->sess)) {
		rc = pop3_quit_send(a->sess, &e);
		/* The server may commit now, and this reply may never come: the
		   state file already holds every UIDL a DELE was sent for. */
		if (rc == 0 && deles)
			p3_crash_point(a, "before-quit-reply");
		if (rc == 0)
			rc = pop3_quit_reply(a->sess, &e);
		if (rc == 0) {
			a->deles = 0;
		} else {
			mfs_log_info("%s", e ? e->message : "QUIT failed");
			g_clear_error(&e);
		}
	}
	p3_drop_session(a);
}

/* List again (sess_lock held). Failures keep the last listing. */
void p3_refresh_locked(struct pop3_account *a)
{
	GError *e = NULL;
	gboolean fresh;
	int rc = p3_session_get(a, &fresh, &e);

	if (rc == 0 && !fresh) {
		rc = sync_listing(a, &e);
		if (rc < 0) {
			p3_set_last_error(a, e ? e->message : "listing failed");
			if (!pop3_session_alive(a->sess))
				p3_drop_session(a);
		}
	}
	if (rc == 0) {
		a->busy = FALSE;
		a->retry_after = 0;
		return;
	}
	a->retry_after = p3_now_us() + retry_interval(a);
	if (p3_busy_error(e))
		note_busy(a, e);
	else if (a->probing || g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED))
		mfs_log_debug(MFS_LOG_POP3, "still down: %s", e ? e->message : g_strerror(-rc));
	else
		mfs_log_info("cannot list the maildrop: %s", e ? e->message : g_strerror(-rc));
	g_clear_error(&e);
}

/* -- the poll thread ------------------------------------------------------------ */

/* When the poll thread has work next (sess_lock held). */
static gint64 poll_wake(struct pop3_account *a, gint64 next_poll, gint64 next_dele)
{
	gint64 wake = next_poll;

	if (!a->sess && p3_down(a, NULL))
		return MAX(a->probe_at, p3_now_us() + G_USEC_PER_SEC / 20);
	if (a->sess) {
		wake = MIN(wake, a->last_use + IDLE_QUIT_US);
	} else {
		if (a->busy)
			wake = MIN(wake, next_login(a));
		if (a->dele_pending)
			wake = MIN(wake, MAX(next_dele, a->last_use + IDLE_QUIT_US));
		/* Without a session, all of it needs a login. */
		wake = MAX(wake, next_login(a));
	}
	return MAX(wake, p3_now_us() + G_USEC_PER_SEC / 20);
}

gpointer p3_poll_thread(gpointer ud)
{
	struct pop3_account *a = ud;
	const gint64 poll_us = (gint64)a->opts->poll * G_USEC_PER_SEC;
	gint64 next_poll = p3_now_us() + poll_us;
	gint64 next_dele = 0;

	mfs_mutex_lock(&a->sess_lock);
	while (!a->stop) {
		gint64 now = p3_now_us();

		if (a->sess && !pop3_session_alive(a->sess))
			p3_drop_session(a);
		if (a->sess && now - a->last_use >= IDLE_QUIT_US)
			quit_session(a);
		if (!a->sess && p3_down(a, NULL)) {
			if (now >= a->probe_at)
				probe(a);
		} else if (now >= next_poll && p3_may_work(a, now)) {
			p3_refresh_locked(a);
			quit_session(a);
			next_poll = p3_now_us() + poll_us;
		} else if (!a->sess && a->busy && now >= next_login(a)) {
			/* Refused: again after the retry interval, not only at the next poll. */
			p3_refresh_locked(a);
			quit_session(a);
		} else if (!a->sess && a->dele_pending && now >= next_dele &&
			   p3_may_work(a, now)) {
			/* DELEs lost with a session: a short session sends them again. */
			p3_refresh_locked(a);
			quit_session(a);
			next_dele = p3_now_us() + 5 * G_USEC_PER_SEC;
		}
		mfs_cond_wait_until(&a->cond, &a->sess_lock, poll_wake(a, next_poll, next_dele));
	}
	/* Unmount: commit, after one more try at DELEs a lost session did not
	   commit — unless the server's LOGIN-DELAY forbids the login: the state
	   file keeps them for the next mount's first session. */
	if (a->sess && !pop3_session_alive(a->sess))
		p3_drop_session(a);
	if (a->dele_pending && !a->sess && p3_down(a, NULL))
		mfs_log_info("the server is down: taken messages still on it are deleted by "
			     "the next mount");
	else if (a->dele_pending && !a->sess && p3_now_us() >= delay_ends(a))
		p3_refresh_locked(a);
	else if (a->dele_pending && !a->sess)
		mfs_log_info("within the server's LOGIN-DELAY: taken messages still on the "
			     "server are deleted by the next mount");
	quit_session(a);
	mfs_mutex_unlock(&a->sess_lock);
	return NULL;
}

/* -- downloads (sess_lock held) ----------------------------------------- */

int p3_sink_write(void *ud, const void *data, size_t len)
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
int p3_part_open(struct pop3_account *a, const struct msg *m, char **tmp_out, GError **err)
{
	g_autofree char *tmp = g_strconcat(a->spool_dir, G_DIR_SEPARATOR_S, m->name, ".part",
					   NULL);
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return file_error(err, errno, tmp);
	*tmp_out = g_steal_pointer(&tmp);
	return fd;
}

/*
 * Rename a complete NAME.part to NAME, the spool store's name for m
 * (*final_out). Neither is fsync'd: the next mount clears the store, and
 * a take makes the archive's link of it durable, bytes included, with one
 * syncfs for its batch (spool_archive_sync). On failure the part is
 * removed and fd closed.
 */
int p3_part_finish(struct pop3_account *a, const struct msg *m, int fd, const char *tmp,
		   char **final_out, GError **err)
{
	g_autofree char *final = g_build_filename(a->spool_dir, m->name, NULL);
	int rc = 0;

	if (rename(tmp, final) != 0)
		rc = file_error(err, errno, final);
	if (rc < 0) {
		close(fd);
		g_unlink(tmp);
		return rc;
	}
	*final_out = g_steal_pointer(&final);
	return 0;
}

/* A downloaded spool file becomes m's bytes (takes lock). */
void p3_install(struct pop3_account *a, struct msg *m, int fd, char *final, guint64 got,
		gboolean ahead)
{
	char head[DATE_SCAN_MAX];
	ssize_t hn = pread(fd, head, sizeof(head), 0);

	mfs_mutex_lock(&a->lock);
	m->fd = fd;
	g_free(m->spool_path);
	m->spool_path = final;
	m->size = got;
	m->ahead = ahead;
	if (hn > 0)
		m->mtime = header_date(head, (size_t)hn, m->mtime);
	a->retrieved++;
	a->retrieved_bytes += got;
	if (ahead)
		a->ahead_count++;
	mfs_mutex_unlock(&a->lock);
	if (a->notify.inode_changed)
		a->notify.inode_changed(a->notify.ud, m->ino);
}

static int retr_once(struct pop3_account *a, struct msg *m, GError **err)
{
	g_autofree char *tmp = NULL;
	char *final = NULL;
	guint64 got = 0;
	guint32 num;
	int fd, rc;

	mfs_mutex_lock(&a->lock);
	num = m->num;
	mfs_mutex_unlock(&a->lock);
	if (num == 0)
		return -ENOENT;
	fd = p3_part_open(a, m, &tmp, err);
	if (fd < 0)
		return fd;
	rc = pop3_retr(a->sess, num, p3_sink_write, &fd, &got, err);
	if (rc < 0) {
		close(fd);
		g_unlink(tmp);
		return rc;
	}
	rc = p3_part_finish(a, m, fd, tmp, &final, err);
	if (rc < 0)
		return rc;
	p3_install(a, m, fd, final, got, FALSE);
	p3_crash_point(a, "after-retr");
	return 0;
}

/* Whether m's bytes are in the spool store (takes lock). */
gboolean p3_msg_downloaded(struct pop3_account *a, const struct msg *m)
{
	gboolean yes;

	mfs_mutex_lock(&a->lock);
	yes = m->fd >= 0;
	mfs_mutex_unlock(&a->lock);
	return yes;
}

/* The message's bytes in the spool store. */
int p3_download(struct pop3_account *a, struct msg *m, GError **err)
{
	for (int attempt = 0;; attempt++) {
		gboolean fresh = FALSE;
		GError *e = NULL;
		int rc;

		if (p3_msg_downloaded(a, m))
			return 0;
		rc = p3_session_get(a, &fresh, &e);
		if (rc == 0)
			rc = retr_once(a, m, &e);
		if (rc == 0)
			return 0;
		/* A session that died while idle: once more on a new one. */
		if (attempt == 0 && !fresh && rc == -EIO && a->sess &&
		    !pop3_session_alive(a->sess)) {
			g_clear_error(&e);
			p3_drop_session(a);
			continue;
		}
		if (e)
			p3_set_last_error(a, e->message);
		if (a->sess && !pop3_session_alive(a->sess))
			p3_drop_session(a);
		g_propagate_error(err, e);
		return rc;
	}
}
