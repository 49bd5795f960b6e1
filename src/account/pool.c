/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/pool.h"

#include <string.h>

#include "transport/conn.h"
#include "util/lock.h"
#include "util/log.h"

#define BACKOFF_MAX_S 60
/* How long a pool shrunk by a connection limit stays at its size. */
#define REGROW_S 60
/* A login faster than this (a near server) is made when first needed: the
   handshakes of a warm-up would compete for the CPU with the first
   requests, which on a near server gain little from connections made
   ahead. */
#define WARM_WORTH_US (50 * 1000)

struct entry {
	struct imap_session *s;
	guint64 counted;  /* commands of s already added to pool->commands */
	gboolean aborted; /* pool_abort_session(): its state is unknown, free it on return */
	/* When this side last knew the session alive (monotonic µs): the start
	   of its connect, its return to the pool, or a NOOP it answered. One
	   heard from before the pool's lost_at is checked before it is lent. */
	gint64 heard_at;
	const char *lent_for; /* interned: the mailbox its borrower said it would select */
};

struct pool {
	struct imap_session_opts opts;
	struct imap_limits limits;
	char *host, *port, *ca_file, *tls_fingerprint, *user; /* owned copies behind opts */

	mfs_mutex lock;
	mfs_cond cond;	  /* a session came back or died, a connect ended, shutdown */
	GQueue idle;	  /* struct entry *, most recently returned first */
	GHashTable *busy; /* struct imap_session * -> struct entry * */
	guint connecting; /* connects in progress, outside the lock */
	/* pool_warm's threads, joined by pool_free: one still exiting when
	   the process ends would leave OpenSSL's per-thread state behind. */
	GPtrArray *warmers;
	gboolean priming;  /* pool_prime at startup: its caller reports failures */
	gint64 prime_us;   /* how long pool_prime's login took; 0: none made */
	guint max;
	guint eff_max;	  /* max, or less after a connection limit was met */
	gint64 regrow_at; /* when eff_max may grow by one again (monotonic µs) */
	guint failures;	  /* consecutive failed connects */
	gint64 retry_at;  /* no connect before this (monotonic µs) */
	GError *last_error;
	gboolean shutdown;
	/* When a lent session last came back dead (a lost link, not a timeout
	   nor an abort; monotonic µs): one that died most likely took those
	   that sat idle meanwhile, and those still logging in, with it. */
	gint64 lost_at;

	/* The link state (pool.h, "Down"): set by a timeout or a failed
	   connect, cleared by the prober's first successful login. */
	gboolean down;
	gint64 down_since;   /* real time, µs, for the status */
	GError *down_reason; /* what made it down */
	GThread *prober;     /* started at the first down; joined by pool_free */
	/* Fired by pool_shutdown: abandons every connect in progress (also the
	   watcher's, made with pool_session_opts). Not guarded: set up once. */
	struct conn_cancel *cancel;

	guint64 commands;
	guint64 connects;
	guint64 connect_failures;
	/* The first login's capabilities (pool_caps); 0 until then. */
	guint32 caps;
};

struct pool *pool_new(const struct imap_session_opts *opts, guint max)
{
	struct pool *p = g_new0(struct pool, 1);

	p->opts = *opts;
	p->opts.host = p->host = g_strdup(opts->host);
	p->opts.port = p->port = g_strdup(opts->port);
	p->opts.ca_file = p->ca_file = g_strdup(opts->ca_file);
	p->opts.tls_fingerprint = p->tls_fingerprint = g_strdup(opts->tls_fingerprint);
	p->opts.user = p->user = g_strdup(opts->user);
	if (opts->limits) {
		p->limits = *opts->limits;
		p->opts.limits = &p->limits;
	}
	p->cancel = conn_cancel_new();
	p->opts.cancel = p->cancel;
	mfs_mutex_init(&p->lock);
	mfs_cond_init(&p->cond);
	g_queue_init(&p->idle);
	p->busy = g_hash_table_new(g_direct_hash, g_direct_equal);
	p->warmers = g_ptr_array_new();
	p->max = MAX(max, 1);
	p->eff_max = p->max;
	return p;
}

static guint live_count(const struct pool *p)
{
	return p->idle.length + g_hash_table_size(p->busy);
}

/* Locked: a login succeeded; the first one's capabilities are kept. */
static void note_login(struct pool *p, const struct imap_session *s)
{
	p->connects++;
	if (!p->caps)
		p->caps = imap_session_caps(s);
}

/* Locked. The idle queue's link of a session with mailbox selected, or NULL. */
static GList *idle_selected(struct pool *p, const char *mailbox)
{
	for (GList *l = p->idle.head; l; l = l->next) {
		const char *sel = imap_session_selected(((struct entry *)l->data)->s);

		if (sel && strcmp(sel, mailbox) == 0)
			return l;
	}
	return NULL;
}

/* An idle session, preferably one with `mailbox` selected. Locked. */
static struct entry *take_idle(struct pool *p, const char *mailbox)
{
	GList *l = mailbox ? idle_selected(p, mailbox) : NULL;
	struct entry *e;

	if (!l)
		return g_queue_pop_head(&p->idle);
	e = l->data;
	g_queue_delete_link(&p->idle, l);
	return e;
}

/* Locked. e goes to a borrower that said it would select mailbox (may be
   NULL): pool_get_selected() waits for such a one. */
static void lend(struct pool *p, struct entry *e, const char *mailbox)
{
	e->lent_for = mailbox ? g_intern_string(mailbox) : NULL;
	g_hash_table_insert(p->busy, e->s, e);
}

static void set_cancelled(GError **err, const struct pool *p)
{
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED, "connections to %s are shut down",
		    p->opts.host);
}

static void account_commands(struct pool *p, struct entry *e)
{
	guint64 n = imap_session_commands_sent(e->s);

	p->commands += n - e->counted;
	e->counted = n;
}

static void prober_start(struct pool *p);

/* A connect error that says the server cannot be reached at all, as
   opposed to one it answered (a refused login, a connection limit). */
static gboolean is_link_failure(const GError *e)
{
	return e->domain == G_IO_ERROR &&
	       (e->code == G_IO_ERROR_TIMED_OUT || e->code == G_IO_ERROR_CONNECTION_REFUSED ||
		e->code == G_IO_ERROR_HOST_UNREACHABLE ||
		e->code == G_IO_ERROR_NETWORK_UNREACHABLE ||
		e->code == G_IO_ERROR_HOST_NOT_FOUND);
}

/* Locked. Record a failed connect and set the next attempt's time:
   1 s, doubling to BACKOFF_MAX_S. The delay. */
static guint connect_failed(struct pool *p, const GError *e)
{
	guint delay = BACKOFF_MAX_S;

	p->connect_failures++;
	p->failures++;
	if (p->failures <= 6)
		delay = MIN(1u << (p->failures - 1), BACKOFF_MAX_S);
	p->retry_at = g_get_monotonic_time() + (gint64)delay * G_USEC_PER_SEC;
	g_clear_error(&p->last_error);
	p->last_error = g_error_copy(e);
	return delay;
}

/*
 * Locked. The server is down: borrowers fail at once from now on, waiting
 * ones wake to fail, the idle sessions (as stuck as the one that timed
 * out, or as dead) are closed, and the prober reconnects in the background.
 * One warning; the reason is the failed operation's own line and the
 * status's.
 */
static void go_down(struct pool *p, const GError *why)
{
	GList *idle;

	if (p->down || p->shutdown)
		return;
	p->down = TRUE;
	p->down_since = g_get_real_time();
	g_clear_error(&p->down_reason);
	p->down_reason = g_error_copy(why);
	if (p->failures == 0) {
		p->failures = 1;
		p->retry_at = g_get_monotonic_time() + G_USEC_PER_SEC;
	}
	mfs_log_warn("%s is down: what needs the server fails at once until it answers again "
		     "(tried again in the background)",
		     p->opts.host);
	idle = p->idle.head;
	g_queue_init(&p->idle);
	prober_start(p);
	mfs_cond_broadcast(&p->cond);
	/* Freeing never talks to the server, so it may stay under the lock. */
	for (GList *l = idle; l; l = l->next) {
		struct entry *e = l->data;

		account_commands(p, e);
		imap_session_free(e->s);
		g_free(e);
	}
	g_list_free(idle);
}

void pool_close_selected(struct pool *p, const char *mailbox)
{
	GList *l, *next, *drop = NULL;

	mfs_mutex_lock(&p->lock);
	for (l = p->idle.head; l; l = next) {
		struct entry *e = l->data;
		const char *sel = imap_session_selected(e->s);

		next = l->next;
		if (sel && strcmp(sel, mailbox) == 0) {
			g_queue_unlink(&p->idle, l);
			drop = g_list_concat(l, drop);
		}
	}
	/* Freeing never talks to the server, so it may stay under the lock. */
	for (l = drop; l; l = l->next) {
		struct entry *e = l->data;

		account_commands(p, e);
		imap_session_free(e->s);
		g_free(e);
	}
	g_list_free(drop);
	mfs_mutex_unlock(&p->lock);
}

/* Locked. Why borrowing fails while down: G_IO_ERROR_NOT_CONNECTED, one
   line naming the server, since when and why. */
static void set_down_error(GError **err, const struct pool *p)
{
	g_autoptr(GDateTime) t = g_date_time_new_from_unix_local(p->down_since / G_USEC_PER_SEC);
	g_autofree char *when = t ? g_date_time_format(t, "%H:%M:%S") : g_strdup("?");

	g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "%s is down since %s (%s)",
		    p->opts.host, when, p->down_reason->message);
}

/* Locked. A connection timed out: the server hangs, or the link does.
   TRUE when this put the pool down (FALSE: it was down already). */
static gboolean timed_out(struct pool *p, struct imap_session *s)
{
	GError *e;

	if (p->down)
		return FALSE;
	e = g_error_new(G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s made no progress for %d s",
			imap_session_peer(s), p->opts.timeout_s);
	go_down(p, e);
	g_error_free(e);
	return TRUE;
}

/*
 * Locked. An idle session ready to lend (one last heard from before a lent
 * one came back dead is checked with a NOOP first, the lock dropped
 * meanwhile), or NULL.
 * *again: one was found dead and dropped, which changes what the pool may
 * do: look again.
 */
static struct entry *idle_checked(struct pool *p, const char *mailbox, gboolean *again)
{
	struct entry *e = take_idle(p, mailbox);
	gboolean ok;

	*again = FALSE;
	if (!e || e->heard_at > p->lost_at)
		return e;
	/* NOOP outside the lock: one round trip, bounded by the timeout. */
	g_hash_table_insert(p->busy, e->s, e);
	mfs_mutex_unlock(&p->lock);
	ok = imap_run(e->s, NULL, NULL, NULL, "NOOP") == 0;
	mfs_mutex_lock(&p->lock);
	g_hash_table_remove(p->busy, e->s);
	account_commands(p, e);
	if (!ok) {
		if (imap_session_timed_out(e->s))
			timed_out(p, e->s); /* the borrower's next look finds it down */
		mfs_mutex_unlock(&p->lock);
		imap_session_free(e->s);
		g_free(e);
		mfs_mutex_lock(&p->lock);
		mfs_cond_broadcast(&p->cond);
		*again = TRUE;
		return NULL;
	}
	e->heard_at = g_get_monotonic_time();
	return e;
}

enum connect_outcome {
	CONNECT_GOT,	/* a new session, to lend */
	CONNECT_FAILED, /* *err set: the borrower fails */
	CONNECT_AGAIN,	/* a connection limit was met: look again */
	CONNECT_NOT_NOW, /* at the limit, or another connect tries after a limit */
};

/* Locked (dropped while connecting). A new connection, when the pool may
   make one now. */
static enum connect_outcome maybe_connect(struct pool *p, struct conn_cancel *cancel,
					  struct entry **out, GError **err)
{
	gint64 now = g_get_monotonic_time(), start;
	guint live = live_count(p);
	struct imap_session_opts o = p->opts;
	struct imap_session *s;
	GError *ce = NULL;

	if (p->eff_max < p->max && now >= p->regrow_at) {
		p->eff_max++;
		p->regrow_at = now + (gint64)REGROW_S * G_USEC_PER_SEC;
	}
	if (live + p->connecting >= p->eff_max)
		return CONNECT_NOT_NOW;
	/* After a connection limit was met, one connect tries at a time. */
	if (p->failures > 0 && (now < p->retry_at || p->connecting > 0))
		return CONNECT_NOT_NOW;
	if (cancel)
		o.cancel = cancel; /* the borrower's, a child of the pool's */
	p->connecting++;
	mfs_mutex_unlock(&p->lock);
	start = g_get_monotonic_time();
	s = imap_session_connect(&o, &ce);
	mfs_mutex_lock(&p->lock);
	p->connecting--;
	mfs_cond_broadcast(&p->cond);
	if (!s && g_error_matches(ce, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		/* Interrupted or shut down: says nothing of the server. */
		g_propagate_error(err, ce);
		return CONNECT_FAILED;
	}
	if (!s) {
		guint delay = connect_failed(p, ce);

		live = live_count(p);
		if (live > 0 && !is_link_failure(ce) && !p->shutdown) {
			/* Most likely the server's limit on simultaneous
			   connections: live sessions will come back, so make
			   do with them. */
			if (p->eff_max > live) {
				mfs_log_info("%s: connecting another session failed (%s); using "
					     "%u connection%s for now",
					     p->opts.host, ce->message, live, live == 1 ? "" : "s");
				p->eff_max = live;
			}
			p->regrow_at = now + (gint64)REGROW_S * G_USEC_PER_SEC;
			g_clear_error(&ce);
			return CONNECT_AGAIN;
		}
		if (p->down) {
			/* Another request found it down meanwhile: said once. */
			mfs_log_debug(MFS_LOG_IMAP, "%s", ce->message);
			g_clear_error(&ce);
			set_down_error(err, p);
			return CONNECT_FAILED;
		}
		/* pool_prime's caller reports its error itself, and the process
		   ends: no prober then (it runs after the daemon forked). */
		if (!p->priming) {
			mfs_log_warn("%s; retrying in %u s", ce->message, delay);
			go_down(p, ce);
			/* The warning above was this request's line. */
			ce->code = G_IO_ERROR_NOT_CONNECTED;
		}
		g_propagate_error(err, ce);
		return CONNECT_FAILED;
	}
	p->failures = 0;
	note_login(p, s);
	*out = g_new0(struct entry, 1);
	(*out)->s = s;
	(*out)->heard_at = start;
	if (p->shutdown) {
		/* pool_free() logs it out. */
		g_queue_push_head(&p->idle, g_steal_pointer(out));
		set_cancelled(err, p);
		return CONNECT_FAILED;
	}
	return CONNECT_GOT;
}

/* Locked. Wait for whatever may let a borrower go on: a returned session
   (signalled), the end of a backoff, a regrow. FALSE (and *err) once the
   deadline (0: none) has passed. */
static gboolean wait_for_change(struct pool *p, gint64 deadline, GError **err)
{
	gint64 now = g_get_monotonic_time();
	gint64 wake = deadline;

	if (deadline && now >= deadline) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
			    "no connection to %s became free within %d s (%u in use)", p->opts.host,
			    p->opts.timeout_s + 1, g_hash_table_size(p->busy));
		return FALSE;
	}
	if (p->failures > 0 && p->retry_at > now && (!wake || p->retry_at < wake))
		wake = p->retry_at;
	if (p->eff_max < p->max && (!wake || p->regrow_at < wake))
		wake = p->regrow_at;
	if (wake)
		mfs_cond_wait_until(&p->cond, &p->lock, wake);
	else
		mfs_cond_wait(&p->cond, &p->lock);
	return TRUE;
}

struct imap_session *pool_get(struct pool *p, const char *mailbox, GError **err)
{
	return pool_get_cancellable(p, mailbox, NULL, err);
}

struct conn_cancel *pool_connect_switch(struct pool *p)
{
	return p->cancel;
}

gboolean pool_report_timeout(struct pool *p, const GError *why)
{
	gboolean news;

	mfs_mutex_lock(&p->lock);
	news = !p->down && !p->shutdown;
	go_down(p, why);
	mfs_mutex_unlock(&p->lock);
	return news;
}

gboolean pool_is_shut_down(struct pool *p)
{
	gboolean down;

	mfs_mutex_lock(&p->lock);
	down = p->shutdown;
	mfs_mutex_unlock(&p->lock);
	return down;
}

struct imap_session *pool_get_cancellable(struct pool *p, const char *mailbox,
					  struct conn_cancel *cancel, GError **err)
{
	gint64 deadline = 0;
	struct entry *e;

	/* As long as a command of the session it waits for may wait, and a
	   second more: when the server hangs, that command's timeout puts the
	   pool down first, and this borrower fails with the down error instead
	   of being a second timeout. */
	if (p->opts.timeout_s > 0)
		deadline = g_get_monotonic_time() + (gint64)(p->opts.timeout_s + 1) * G_USEC_PER_SEC;
	mfs_mutex_lock(&p->lock);
	for (;;) {
		gboolean again;

		if (p->shutdown) {
			set_cancelled(err, p);
			break;
		}
		if (p->down) {
			set_down_error(err, p);
			break;
		}
		e = idle_checked(p, mailbox, &again);
		if (again)
			continue;
		if (!e) {
			enum connect_outcome c = maybe_connect(p, cancel, &e, err);

			if (c == CONNECT_FAILED)
				break;
			if (c == CONNECT_AGAIN)
				continue;
		}
		if (e) {
			lend(p, e, mailbox);
			mfs_mutex_unlock(&p->lock);
			return e->s;
		}
		if (!wait_for_change(p, deadline, err))
			break;
	}
	mfs_mutex_unlock(&p->lock);
	return NULL;
}

/* Locked. Whether a lent session's borrower said it would select mailbox. */
static gboolean lent_for(struct pool *p, const char *mailbox)
{
	const char *want = g_intern_string(mailbox);
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, p->busy);
	while (g_hash_table_iter_next(&it, NULL, &v))
		if (((struct entry *)v)->lent_for == want)
			return TRUE;
	return FALSE;
}

struct imap_session *pool_get_selected(struct pool *p, const char *mailbox, gint64 wait_us,
				       GError **err)
{
	gint64 until = g_get_monotonic_time() + wait_us;

	/* Until a session with mailbox selected is idle (pool_get prefers
	   it), while a borrower that said it would select mailbox may bring
	   one back. */
	mfs_mutex_lock(&p->lock);
	while (!p->shutdown && !p->down && !idle_selected(p, mailbox) && lent_for(p, mailbox) &&
	       mfs_cond_wait_until(&p->cond, &p->lock, until))
		;
	mfs_mutex_unlock(&p->lock);
	return pool_get(p, mailbox, err);
}

gboolean pool_prime(struct pool *p, GError **err)
{
	struct imap_session *s;
	gint64 start;

	mfs_mutex_lock(&p->lock);
	if (live_count(p) > 0) {
		mfs_mutex_unlock(&p->lock);
		return TRUE;
	}
	p->priming = TRUE;
	mfs_mutex_unlock(&p->lock);
	start = g_get_monotonic_time();
	s = pool_get(p, NULL, err);
	mfs_mutex_lock(&p->lock);
	p->priming = FALSE;
	if (s)
		p->prime_us = g_get_monotonic_time() - start;
	mfs_mutex_unlock(&p->lock);
	if (!s)
		return FALSE;
	pool_put(p, s);
	return TRUE;
}

/*
 * The prober: while the pool is down, connect again at the backoff's times
 * (1 s, doubling to BACKOFF_MAX_S; pool_server_back() brings the next try
 * forward). The first login brings the pool up, its session the first
 * idle one. Ends at shutdown; a connect in progress is abandoned then.
 */
static gpointer prober_thread(gpointer data)
{
	struct pool *p = data;

	mfs_mutex_lock(&p->lock);
	while (!p->shutdown) {
		struct imap_session *s;
		GError *ce = NULL;
		gint64 start;

		if (!p->down) {
			mfs_cond_wait(&p->cond, &p->lock);
			continue;
		}
		if (g_get_monotonic_time() < p->retry_at) {
			mfs_cond_wait_until(&p->cond, &p->lock, p->retry_at);
			continue;
		}
		p->connecting++;
		mfs_mutex_unlock(&p->lock);
		start = g_get_monotonic_time();
		s = imap_session_connect(&p->opts, &ce);
		mfs_mutex_lock(&p->lock);
		p->connecting--;
		if (s) {
			struct entry *e = g_new0(struct entry, 1);
			gint64 secs = (g_get_real_time() - p->down_since) / G_USEC_PER_SEC;

			mfs_log_info("connected to %s again, after %" G_GINT64_FORMAT " s down",
				     imap_session_peer(s), secs);
			p->down = FALSE;
			g_clear_error(&p->down_reason);
			p->failures = 0;
			note_login(p, s);
			e->s = s;
			e->heard_at = start;
			/* After a shutdown pool_free() logs it out. */
			g_queue_push_head(&p->idle, e);
		} else if (!g_error_matches(ce, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
			guint delay = connect_failed(p, ce);

			mfs_log_debug(MFS_LOG_IMAP, "still down (%s); next attempt in %u s",
				      ce->message, delay);
			g_clear_error(&p->down_reason);
			p->down_reason = g_error_copy(ce);
		}
		g_clear_error(&ce);
		mfs_cond_broadcast(&p->cond);
	}
	mfs_mutex_unlock(&p->lock);
	return NULL;
}

/* Locked. Started at the first down, never before: the pool is made before
   the daemon forks, and a fork keeps no threads. */
static void prober_start(struct pool *p)
{
	if (p->prober)
		return;
	p->prober = g_thread_try_new("pool-prober", prober_thread, p, NULL);
	if (!p->prober)
		mfs_log_error("cannot start a thread to reconnect to %s: "
			      "it stays down until the next mount",
			      p->opts.host);
}

/* One connection opened ahead; p->connecting was counted for it by pool_warm. */
static gpointer warm_thread(gpointer data)
{
	struct pool *p = data;
	gint64 start = g_get_monotonic_time();
	struct imap_session *s = imap_session_connect(&p->opts, NULL);

	mfs_mutex_lock(&p->lock);
	p->connecting--;
	if (s) {
		struct entry *e = g_new0(struct entry, 1);

		e->s = s;
		e->heard_at = start;
		note_login(p, s);
		/* Idle from the start; after a shutdown pool_free() logs it out. */
		g_queue_push_tail(&p->idle, e);
	}
	mfs_cond_broadcast(&p->cond);
	mfs_mutex_unlock(&p->lock);
	return NULL;
}

void pool_warm(struct pool *p)
{
	mfs_mutex_lock(&p->lock);
	if (p->prime_us && p->prime_us < WARM_WORTH_US) {
		mfs_log_debug(MFS_LOG_IMAP, "login took %" G_GINT64_FORMAT " ms: "
			      "further connections are made when needed",
			      p->prime_us / 1000);
		mfs_mutex_unlock(&p->lock);
		return;
	}
	while (!p->shutdown && !p->down && p->failures == 0 &&
	       live_count(p) + p->connecting < p->eff_max) {
		GThread *t;

		p->connecting++;
		t = g_thread_try_new("pool-warm", warm_thread, p, NULL);
		if (!t) {
			p->connecting--;
			break;
		}
		g_ptr_array_add(p->warmers, t);
	}
	mfs_mutex_unlock(&p->lock);
}

enum pool_put_outcome pool_put(struct pool *p, struct imap_session *s)
{
	enum pool_put_outcome out = POOL_PUT_UP;
	struct entry *e;

	if (!s)
		return out;
	mfs_mutex_lock(&p->lock);
	e = g_hash_table_lookup(p->busy, s);
	if (!e) {
		mfs_mutex_unlock(&p->lock);
		mfs_log_error("pool_put: a session that was not borrowed");
		return out;
	}
	if (p->down)
		out = POOL_PUT_WAS_DOWN;
	g_hash_table_remove(p->busy, s);
	account_commands(p, e);
	if (imap_session_alive(s) && !e->aborted && !p->down) {
		e->heard_at = g_get_monotonic_time();
		g_queue_push_head(&p->idle, e);
		e = NULL;
	} else if (!e->aborted && imap_session_timed_out(s)) {
		if (timed_out(p, s))
			out = POOL_PUT_WENT_DOWN;
	} else if (!e->aborted) {
		/* A lost link (server restarted, network gone) most likely took
		   the idle ones too, and the ones a warm-up was logging in: each
		   is checked before it is lent again (idle_checked). */
		p->lost_at = g_get_monotonic_time();
	}
	mfs_cond_broadcast(&p->cond);
	mfs_mutex_unlock(&p->lock);
	if (e) {
		imap_session_free(e->s);
		g_free(e);
	}
	return out;
}

void pool_abort_session(struct pool *p, struct imap_session *s)
{
	struct entry *e;

	mfs_mutex_lock(&p->lock);
	e = g_hash_table_lookup(p->busy, s);
	if (e) {
		e->aborted = TRUE;
		imap_session_abort(s);
	}
	mfs_mutex_unlock(&p->lock);
}

void pool_server_back(struct pool *p)
{
	mfs_mutex_lock(&p->lock);
	if (p->failures > 0 || p->down) {
		p->retry_at = g_get_monotonic_time();
		mfs_cond_broadcast(&p->cond);
	}
	mfs_mutex_unlock(&p->lock);
}

void pool_shutdown(struct pool *p)
{
	GHashTableIter it;
	gpointer v;

	/* Connects in progress (the prober's, a borrower's, the watcher's)
	   are abandoned: unmount does not wait for a server that hangs. */
	conn_cancel_fire(p->cancel);
	mfs_mutex_lock(&p->lock);
	p->shutdown = TRUE;
	g_hash_table_iter_init(&it, p->busy);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct entry *e = v;

		e->aborted = TRUE;
		imap_session_abort(e->s);
	}
	mfs_cond_broadcast(&p->cond);
	mfs_mutex_unlock(&p->lock);
}

static gpointer close_thread(gpointer data)
{
	imap_session_close(data);
	return NULL;
}

void pool_free(struct pool *p)
{
	GPtrArray *threads;
	struct entry *e;

	if (!p)
		return;
	pool_shutdown(p); /* idempotent: also ends the prober */
	mfs_mutex_lock(&p->lock);
	/* A connect still running was abandoned by the shutdown: it ends at
	   its next wait. */
	while (p->connecting > 0)
		mfs_cond_wait(&p->cond, &p->lock);
	mfs_mutex_unlock(&p->lock);
	if (p->prober)
		g_thread_join(p->prober);
	for (guint i = 0; i < p->warmers->len; i++)
		g_thread_join(p->warmers->pdata[i]);
	g_ptr_array_free(p->warmers, TRUE);
	if (g_hash_table_size(p->busy) > 0)
		mfs_log_error("pool_free: %u sessions still borrowed", g_hash_table_size(p->busy));

	/* LOGOUT in parallel: each is bounded, and unmount should not wait
	   for them one after another on a slow server. */
	threads = g_ptr_array_new();
	while ((e = g_queue_pop_head(&p->idle))) {
		GThread *t = g_thread_try_new("pool-logout", close_thread, e->s, NULL);

		if (t)
			g_ptr_array_add(threads, t);
		else
			imap_session_close(e->s);
		g_free(e);
	}
	for (guint i = 0; i < threads->len; i++)
		g_thread_join(threads->pdata[i]);
	g_ptr_array_free(threads, TRUE);

	g_hash_table_destroy(p->busy);
	g_clear_error(&p->last_error);
	g_clear_error(&p->down_reason);
	conn_cancel_free(p->cancel);
	mfs_cond_clear(&p->cond);
	mfs_mutex_clear(&p->lock);
	g_free(p->host);
	g_free(p->port);
	g_free(p->ca_file);
	g_free(p->tls_fingerprint);
	g_free(p->user);
	g_free(p);
}

void pool_get_stats(struct pool *p, struct pool_stats *out)
{
	mfs_mutex_lock(&p->lock);
	out->live = live_count(p);
	out->busy = g_hash_table_size(p->busy);
	out->max = p->eff_max;
	out->commands = p->commands;
	out->connects = p->connects;
	out->connect_failures = p->connect_failures;
	out->last_error = p->last_error ? g_strdup(p->last_error->message) : NULL;
	out->down = p->down;
	out->down_since = p->down ? p->down_since : 0;
	out->down_reason = p->down ? g_strdup(p->down_reason->message) : NULL;
	mfs_mutex_unlock(&p->lock);
}

void pool_stats_clear(struct pool_stats *s)
{
	g_clear_pointer(&s->last_error, g_free);
	g_clear_pointer(&s->down_reason, g_free);
}

guint32 pool_caps(struct pool *p)
{
	guint32 caps;

	mfs_mutex_lock(&p->lock);
	caps = p->caps;
	mfs_mutex_unlock(&p->lock);
	return caps;
}

const struct imap_session_opts *pool_session_opts(const struct pool *p)
{
	return &p->opts;
}
