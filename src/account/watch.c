/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/watch.h"

#include "util/log.h"

struct watch {
	const struct imap_session_opts *opts;
	char *mailbox;
	int renew_s;
	int poll_s;
	void (*changed)(void *ud);
	void *ud;

	GMutex lock;
	GCond cond;
	gboolean stopping;
	struct imap_session *session; /* current connection, for watch_stop */
	GThread *thread;
};

/* Sleep up to seconds, or until watch_stop. FALSE when stopping. */
static gboolean pause_for(struct watch *w, int seconds)
{
	gint64 until = g_get_monotonic_time() + (gint64)seconds * G_USEC_PER_SEC;
	gboolean go_on;

	g_mutex_lock(&w->lock);
	while (!w->stopping && g_cond_wait_until(&w->cond, &w->lock, until))
		;
	go_on = !w->stopping;
	g_mutex_unlock(&w->lock);
	return go_on;
}

static gboolean stopping(struct watch *w)
{
	gboolean s;

	g_mutex_lock(&w->lock);
	s = w->stopping;
	g_mutex_unlock(&w->lock);
	return s;
}

/* One connection's life: select, then IDLE (or poll) until it fails. */
static void watch_session(struct watch *w, struct imap_session *s)
{
	GError *err = NULL;

	if (imap_select(s, w->mailbox, TRUE, NULL, &err) < 0) {
		if (!stopping(w))
			mfs_log_warn("push for %s: %s", w->mailbox,
				     err ? err->message : "EXAMINE failed");
		g_clear_error(&err);
		return;
	}
	/* Whatever happened while no one watched. */
	w->changed(w->ud);
	while (!stopping(w)) {
		int rc;

		if (!imap_session_has(s, IMAP_CAP_IDLE)) {
			if (!pause_for(w, w->poll_s))
				return;
			rc = imap_run(s, NULL, NULL, &err, "NOOP");
			if (rc == 0)
				w->changed(w->ud);
		} else {
			rc = imap_idle(s, w->renew_s, NULL, &err);
			if (rc > 0)
				w->changed(w->ud);
		}
		if (rc < 0) {
			if (!stopping(w))
				mfs_log_warn("push for %s stopped: %s; reconnecting", w->mailbox,
					     err ? err->message : g_strerror(-rc));
			g_clear_error(&err);
			return;
		}
	}
}

static gpointer run(gpointer data)
{
	struct watch *w = data;
	int backoff = 1;

	while (!stopping(w)) {
		GError *err = NULL;
		struct imap_session *s = imap_session_connect(w->opts, &err);

		if (!s) {
			mfs_log_debug(MFS_LOG_IMAP, "push connection failed: %s; next try in %d s",
				      err->message, backoff);
			g_clear_error(&err);
			if (!pause_for(w, backoff))
				break;
			backoff = MIN(backoff * 2, 60);
			continue;
		}
		backoff = 1;
		g_mutex_lock(&w->lock);
		w->session = s;
		if (w->stopping)
			imap_session_abort(s);
		g_mutex_unlock(&w->lock);
		watch_session(w, s);
		g_mutex_lock(&w->lock);
		w->session = NULL;
		g_mutex_unlock(&w->lock);
		if (imap_session_alive(s))
			imap_session_close(s);
		else
			imap_session_free(s);
		if (!stopping(w) && !pause_for(w, 1))
			break;
	}
	return NULL;
}

struct watch *watch_start(const struct imap_session_opts *opts, const char *mailbox, int renew_s,
			  int poll_s, void (*changed)(void *ud), void *ud)
{
	struct watch *w = g_new0(struct watch, 1);

	w->opts = opts;
	w->mailbox = g_strdup(mailbox);
	w->renew_s = renew_s > 0 ? renew_s : 9 * 60;
	w->poll_s = poll_s > 0 ? poll_s : 5 * 60;
	w->changed = changed;
	w->ud = ud;
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->thread = g_thread_new("mailfs-watch", run, w);
	return w;
}

void watch_stop(struct watch *w)
{
	if (!w)
		return;
	g_mutex_lock(&w->lock);
	w->stopping = TRUE;
	if (w->session)
		imap_session_abort(w->session);
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
	g_thread_join(w->thread);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
	g_free(w->mailbox);
	g_free(w);
}
