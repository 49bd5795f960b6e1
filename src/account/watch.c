/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/watch.h"

#include "util/lock.h"
#include "util/log.h"

#include <string.h>

struct watch {
	const struct imap_session_opts *opts;
	char *mailbox;
	int renew_s;
	int poll_s;
	void (*changed)(void *ud, const char *mailbox, const struct watch_seen *seen);
	gboolean (*timed_out)(void *ud, const GError *err);
	void *ud;

	mfs_mutex lock;
	mfs_cond cond;
	gboolean stopping;
	struct imap_session *session; /* current connection, for watch_stop */
	gboolean notify;	      /* NOTIFY set up on it */
	GThread *thread;
};

/* Sleep up to seconds, or until watch_stop. FALSE when stopping. */
static gboolean pause_for(struct watch *w, int seconds)
{
	gint64 until = g_get_monotonic_time() + (gint64)seconds * G_USEC_PER_SEC;
	gboolean go_on;

	mfs_mutex_lock(&w->lock);
	while (!w->stopping && mfs_cond_wait_until(&w->cond, &w->lock, until))
		;
	go_on = !w->stopping;
	mfs_mutex_unlock(&w->lock);
	return go_on;
}

static gboolean stopping(struct watch *w)
{
	gboolean s;

	mfs_mutex_lock(&w->lock);
	s = w->stopping;
	mfs_mutex_unlock(&w->lock);
	return s;
}

/* What one IDLE brought: the watched mailbox changed, and other mailboxes'
   names; while NOTIFY is set, the state its STATUS answers give. */
struct events {
	gboolean selected;
	GPtrArray *others; /* char *, wire names */
	GHashTable *states; /* wire name -> struct imap_select_info; NULL: not collecting */
	gsize state_bytes;  /* their names' bytes */
	gboolean too_many;  /* more than WATCH_SEEN_MAX states or their bytes: none is kept */
};

static void keep_state(struct events *ev, const struct imap_response *r)
{
	struct imap_select_info st;
	const char *name;

	if (ev->too_many || !imap_status_parse(r, &name, &st))
		return;
	if (!g_hash_table_contains(ev->states, name)) {
		ev->state_bytes += strlen(name) + 1;
		if (g_hash_table_size(ev->states) >= WATCH_SEEN_MAX ||
		    ev->state_bytes > WATCH_SEEN_BYTES) {
			ev->too_many = TRUE;
			return;
		}
	}
	g_hash_table_insert(ev->states, g_strdup(name), g_memdup2(&st, sizeof(st)));
}

static void on_event(void *ud, const struct imap_response *r)
{
	struct events *ev = ud;
	const char *name;

	if (!r->keyword)
		return;
	if (strcmp(r->keyword, "STATUS") == 0) {
		if (ev->states) {
			keep_state(ev, r);
			return;
		}
		/* NOTIFY's report for a mailbox that is not selected. */
		if (r->args.n >= 1 && (name = imap_value_str(&r->args.items[0])) != NULL &&
		    strlen(name) == r->args.items[0].len && ev->others->len < 1000)
			g_ptr_array_add(ev->others, g_strdup(name));
		return;
	}
	if (strcmp(r->keyword, "EXISTS") == 0 || strcmp(r->keyword, "EXPUNGE") == 0 ||
	    strcmp(r->keyword, "VANISHED") == 0 || strcmp(r->keyword, "FETCH") == 0)
		ev->selected = TRUE;
}

/*
 * NOTIFY SET for the selected mailbox and every personal one (RFC 5465),
 * with STATUS: the server answers with each other mailbox's state, which
 * push then reports changes from. A server that refuses FlagChange outside
 * the selected mailbox still gets asked for new and expunged mail; one
 * that refuses STATUS, without it. FALSE: push stays with the watched
 * mailbox.
 */
static gboolean set_notify(struct imap_session *s, const struct imap_handler *h)
{
	static const char *const forms[] = {
		"NOTIFY SET STATUS (selected (MessageNew MessageExpunge FlagChange)) "
		"(personal (MessageNew MessageExpunge FlagChange))",
		"NOTIFY SET STATUS (selected (MessageNew MessageExpunge FlagChange)) "
		"(personal (MessageNew MessageExpunge))",
		"NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) "
		"(personal (MessageNew MessageExpunge FlagChange))",
		"NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) "
		"(personal (MessageNew MessageExpunge))",
	};

	if (!imap_session_has(s, IMAP_CAP_NOTIFY))
		return FALSE;
	for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
		GError *err = NULL;
		int rc = imap_run(s, h, NULL, &err, "%s", forms[i]);

		if (rc == 0)
			return TRUE;
		mfs_log_debug(MFS_LOG_IMAP, "NOTIFY refused: %s", err ? err->message : "");
		g_clear_error(&err);
		if (!imap_session_alive(s))
			return FALSE;
	}
	return FALSE;
}

/* The connection failed: one warning, unless a hung server is known
   already (watch.h, timed_out). */
static void log_failure(struct watch *w, const GError *err, const char *fmt_tail,
			const char *what)
{
	gboolean news = TRUE;

	if (stopping(w))
		return;
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) && w->timed_out)
		news = w->timed_out(w->ud, err);
	if (news)
		mfs_log_warn("push for %s%s: %s%s", w->mailbox, fmt_tail[0] ? " stopped" : "", what,
			     fmt_tail);
	else
		mfs_log_debug(MFS_LOG_IMAP, "push for %s: %s", w->mailbox, what);
}

static void report(struct watch *w, struct events *ev)
{
	for (guint i = 0; i < ev->others->len && !stopping(w); i++)
		if (strcmp(ev->others->pdata[i], w->mailbox) != 0)
			w->changed(w->ud, ev->others->pdata[i], NULL);
	if (ev->selected && !stopping(w))
		w->changed(w->ud, w->mailbox, NULL);
	g_ptr_array_set_size(ev->others, 0);
	ev->selected = FALSE;
}

/* One connection's life: select, then IDLE (or poll) until it fails. */
static void watch_session(struct watch *w, struct imap_session *s)
{
	struct events ev = { .others = g_ptr_array_new_with_free_func(g_free) };
	const struct imap_handler h = { .untagged = on_event, .ud = &ev };
	GError *err = NULL;
	gboolean notify;

	struct imap_select_info watched;
	struct watch_seen seen = { 0 };

	if (imap_select(s, w->mailbox, TRUE, &watched, &err) < 0) {
		log_failure(w, err, "", err ? err->message : "EXAMINE failed");
		g_clear_error(&err);
		goto out;
	}
	ev.states = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	notify = imap_session_has(s, IMAP_CAP_IDLE) && set_notify(s, &h);
	mfs_mutex_lock(&w->lock);
	w->notify = notify;
	mfs_mutex_unlock(&w->lock);
	/* Whatever happened while no one watched, anywhere: before the first
	   connection too, for what was listed while it was being made. What
	   the EXAMINE said covers the watched mailbox only while nothing in it
	   changed before the IDLE (the NOTIFY SET's answers would say). */
	seen.watched = ev.selected ? NULL : &watched;
	seen.others = notify && !ev.too_many && g_hash_table_size(ev.states) ? ev.states : NULL;
	w->changed(w->ud, NULL, &seen);
	g_clear_pointer(&ev.states, g_hash_table_unref);
	ev.selected = FALSE;
	g_ptr_array_set_size(ev.others, 0);
	while (!stopping(w)) {
		int rc;

		if (!imap_session_has(s, IMAP_CAP_IDLE)) {
			if (!pause_for(w, w->poll_s))
				goto out;
			rc = imap_run(s, NULL, NULL, &err, "NOOP");
			if (rc == 0)
				w->changed(w->ud, w->mailbox, NULL);
		} else {
			rc = imap_idle(s, w->renew_s, &h, &err);
			if (rc > 0)
				report(w, &ev);
		}
		if (rc < 0) {
			log_failure(w, err, "; reconnecting", err ? err->message : g_strerror(-rc));
			g_clear_error(&err);
			goto out;
		}
	}
out:
	mfs_mutex_lock(&w->lock);
	w->notify = FALSE;
	mfs_mutex_unlock(&w->lock);
	g_ptr_array_unref(ev.others);
	g_clear_pointer(&ev.states, g_hash_table_unref);
}

gboolean watch_covers_all(struct watch *w)
{
	gboolean all;

	if (!w)
		return FALSE;
	mfs_mutex_lock(&w->lock);
	all = w->notify;
	mfs_mutex_unlock(&w->lock);
	return all;
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
		mfs_mutex_lock(&w->lock);
		w->session = s;
		if (w->stopping)
			imap_session_abort(s);
		mfs_mutex_unlock(&w->lock);
		watch_session(w, s);
		mfs_mutex_lock(&w->lock);
		w->session = NULL;
		mfs_mutex_unlock(&w->lock);
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
			  int poll_s,
			  void (*changed)(void *ud, const char *mailbox,
					  const struct watch_seen *seen),
			  gboolean (*timed_out)(void *ud, const GError *err), void *ud)
{
	struct watch *w = g_new0(struct watch, 1);

	w->opts = opts;
	w->mailbox = g_strdup(mailbox);
	w->renew_s = renew_s > 0 ? renew_s : 9 * 60;
	w->poll_s = poll_s > 0 ? poll_s : 5 * 60;
	w->changed = changed;
	w->timed_out = timed_out;
	w->ud = ud;
	mfs_mutex_init(&w->lock);
	mfs_cond_init(&w->cond);
	w->thread = g_thread_new("mailfs-watch", run, w);
	return w;
}

void watch_stop(struct watch *w)
{
	if (!w)
		return;
	mfs_mutex_lock(&w->lock);
	w->stopping = TRUE;
	if (w->session)
		imap_session_abort(w->session);
	mfs_cond_broadcast(&w->cond);
	mfs_mutex_unlock(&w->lock);
	g_thread_join(w->thread);
	mfs_mutex_clear(&w->lock);
	mfs_cond_clear(&w->cond);
	g_free(w->mailbox);
	g_free(w);
}
