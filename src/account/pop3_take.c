/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Taking a POP3 message: archive, record the UIDL, DELE — in that order,
 * so a crash never loses a message — with the durable steps batched by the
 * taker thread. Contract and lock order: account/pop3_account.h.
 */
#include "account/pop3_internal.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "util/log.h"

/*
 * DELE of messages recorded as taken (sess_lock held), pipelined on the
 * open session, or by the next one (every new session sends DELE for the
 * taken UIDLs still listed).
 */
void p3_dele_taken(struct pop3_account *a, GPtrArray *batch)
{
	g_autoptr(GArray) nums = g_array_new(FALSE, FALSE, sizeof(guint32));
	GError *e = NULL;
	gboolean fresh = FALSE;
	int rc;

	if (!p3_may_work(a, p3_now_us())) {
		/* No login the server refuses or asked us not to make, for this. */
		a->dele_pending = TRUE;
		mfs_log_debug(MFS_LOG_POP3, "DELE of %u taken deferred to the next session",
			      batch->len);
		return;
	}
	rc = p3_session_get(a, &fresh, &e);
	if (rc == 0 && !fresh) {
		mfs_mutex_lock(&a->lock);
		for (guint i = 0; i < batch->len; i++) {
			const struct msg *m = batch->pdata[i];

			if (m->num)
				g_array_append_val(nums, m->num);
		}
		mfs_mutex_unlock(&a->lock);
		if (nums->len) {
			g_autofree int *rcs = g_new0(int, nums->len);

			rc = pop3_dele_many(a->sess, (const guint32 *)(void *)nums->data, nums->len,
					    rcs, &e);
			a->deles += nums->len;
		}
	}
	if (rc < 0) {
		a->dele_pending = TRUE;
		mfs_log_info("DELE of %u taken deferred: %s", batch->len,
			     e ? e->message : g_strerror(-rc));
		if (a->sess && !pop3_session_alive(a->sess))
			p3_drop_session(a);
	}
	g_clear_error(&e);
}

/* Back into the listing: a take that failed (lock held). */
static void relist(struct pop3_account *a, struct msg *m)
{
	m->taking = FALSE;
	if (m->gone || g_hash_table_contains(a->by_name, m->name))
		return;
	g_hash_table_insert(a->by_name, m->name, m);
	/* A negative entry the kernel may hold for the name. */
	if (a->notify.entry_gone)
		a->notify.entry_gone(a->notify.ud, 0, m->name);
}

static int file_errno(const GError *e)
{
	return e->domain == G_FILE_ERROR && e->code == G_FILE_ERROR_NOSPC ? -ENOSPC : -EIO;
}

/*
 * Take m, the part a reader waits for: the bytes into the archive (the
 * copy written or the spool copy linked, in new/, not yet durable), then m
 * leaves the listing and is queued for take_commit(). 0, or a negative
 * errno (nothing taken: still listed) with *err. tell_kernel: the listing
 * change is not the kernel's own doing (close, not unlink).
 */
int p3_take(struct pop3_account *a, struct msg *m, gboolean tell_kernel, GError **err)
{
	const struct mfs_options *o = a->opts;
	g_autofree char *path = NULL;
	GError *e = NULL;
	guint64 size;
	int rc = 0, fd;

	mfs_mutex_lock(&a->lock);
	if (m->taken || m->taking) {
		mfs_mutex_unlock(&a->lock);
		return 0;
	}
	if (m->gone) {
		/* Another client took it off the server: there is nothing left to take. */
		mfs_mutex_unlock(&a->lock);
		mfs_log_info("%s was taken off the server by another client", m->uidl);
		return 0;
	}
	/* Claimed: a second close or an rm of it meanwhile finds it taken. */
	m->taking = TRUE;
	mfs_mutex_unlock(&a->lock);
	if (o->pop3_archive && !p3_msg_downloaded(a, m) && p3_down(a, &e)) {
		rc = -EIO; /* at once: the poll thread's probe may hold the session */
	} else if (o->pop3_archive && !p3_msg_downloaded(a, m)) {
		mfs_mutex_lock(&a->sess_lock);
		rc = p3_download(a, m, &e);
		mfs_mutex_unlock(&a->sess_lock);
	}
	/* The spool copy as it stands: a read-ahead may still be installing
	   one when there is no archive to wait for it. */
	mfs_mutex_lock(&a->lock);
	fd = m->fd;
	size = m->size;
	path = g_strdup(m->spool_path);
	mfs_mutex_unlock(&a->lock);
	if (rc == 0 && fd >= 0 && size == 0) {
		g_set_error(&e, G_FILE_ERROR, G_FILE_ERROR_IO,
			    "the download of %s came back empty: not taking it", m->uidl);
		rc = -EIO;
	}
	if (rc == 0 && o->pop3_archive &&
	    !(path ? spool_archive_link(o->pop3_archive, m->uidl, path, fd, &e) :
		     spool_archive(o->pop3_archive, m->uidl, fd, &e)))
		rc = file_errno(e);
	mfs_mutex_lock(&a->lock);
	if (rc < 0) {
		relist(a, m);
	} else {
		m->ahead = FALSE;
		p3_unlist(a, m, tell_kernel);
		a->taken_count++;
		a->taken_bytes += m->size;
		g_ptr_array_add(a->takes, m);
		mfs_cond_signal(&a->take_cond);
	}
	mfs_mutex_unlock(&a->lock);
	if (rc < 0)
		g_propagate_error(err, e);
	return rc;
}

/*
 * While the read-ahead thread holds the session for a run of batches
 * (a walking reader: seconds), a batch's DELEs go to it, to be sent
 * between two of its batches (lock taken): waiting for the session would
 * stall the taker until the run ends, and everything taken meanwhile
 * would be synced and DELE'd at once at its end (at an unmount, while the
 * user waits). FALSE when the thread is not running: the caller DELEs.
 * The UIDLs are recorded already, so a session lost before these DELEs
 * go out is no loss: the next one DELEs every recorded UIDL still listed.
 */
static gboolean dele_via_ahead(struct pop3_account *a, GPtrArray *batch)
{
	gboolean busy;

	mfs_mutex_lock(&a->lock);
	busy = a->ahead_busy;
	if (busy) {
		for (guint i = 0; i < batch->len; i++)
			g_ptr_array_add(a->ahead_deles, batch->pdata[i]);
	}
	mfs_mutex_unlock(&a->lock);
	return busy;
}

/*
 * The durable rest of taking, for a batch of messages p3_take() queued, in
 * the order that never loses mail: the archive's file system synced (the
 * batch archived, bytes and names: spool_archive_sync), the UIDLs
 * recorded as taken (one state file write), then DELE, pipelined. A reader walking the spool
 * queues messages faster than they commit, so one commit serves many. A
 * failure before the record puts the batch back into the listing.
 */
static void take_commit(struct pop3_account *a, GPtrArray *batch)
{
	const struct mfs_options *o = a->opts;
	g_autofree const char **uidls = g_new(const char *, batch->len);
	GError *e = NULL;
	gboolean ok = TRUE;

	for (guint i = 0; i < batch->len; i++)
		uidls[i] = ((struct msg *)batch->pdata[i])->uidl;
	if (o->pop3_archive) {
		ok = spool_archive_sync(a->archive_fd, o->pop3_archive, &e);
		if (ok)
			p3_crash_point(a, "after-archive");
	}
	if (ok) {
		mfs_mutex_lock(&a->state_lock);
		ok = spool_state_add_many(a->state, uidls, batch->len, &e);
		mfs_mutex_unlock(&a->state_lock);
	}
	if (!ok) {
		mfs_log_error("not taken: %s", e->message);
		p3_set_last_error(a, e->message);
		g_clear_error(&e);
		mfs_mutex_lock(&a->lock);
		for (guint i = 0; i < batch->len; i++) {
			struct msg *m = batch->pdata[i];

			relist(a, m);
			a->taken_count--;
			a->taken_bytes -= m->size;
		}
		mfs_mutex_unlock(&a->lock);
		return;
	}
	p3_crash_point(a, "after-state");
	if (o->pop3_keep || !dele_via_ahead(a, batch)) {
		mfs_mutex_lock(&a->sess_lock);
		if (!o->pop3_keep) {
			p3_dele_taken(a, batch);
			p3_crash_point(a, "after-dele");
		}
		a->last_use = p3_now_us();
		mfs_cond_signal(&a->cond);
		mfs_mutex_unlock(&a->sess_lock);
	}
	mfs_mutex_lock(&a->lock);
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
	mfs_mutex_unlock(&a->lock);
}

/*
 * While takes keep coming (a reader walking the spool), wait for more
 * before committing: up to TAKE_GATHER_US after the last one, at most
 * TAKE_GATHER_MAX_US in all (lock held).
 */
static void gather_takes(struct pop3_account *a)
{
	const gint64 until = g_get_monotonic_time() + TAKE_GATHER_MAX_US;

	while (!a->take_stop) {
		guint had = a->takes->len;
		gint64 end = MIN(until, g_get_monotonic_time() + TAKE_GATHER_US);

		while (!a->take_stop && a->takes->len == had &&
		       mfs_cond_wait_until(&a->take_cond, &a->lock, end))
			;
		if (a->takes->len == had || g_get_monotonic_time() >= until)
			return;
	}
}

/* The taker thread: commits what p3_take() queued until told to stop, then the rest. */
gpointer p3_taker_thread(gpointer ud)
{
	struct pop3_account *a = ud;

	mfs_mutex_lock(&a->lock);
	for (;;) {
		GPtrArray *batch;

		while (a->takes->len == 0 && !a->take_stop)
			mfs_cond_wait(&a->take_cond, &a->lock);
		if (a->takes->len == 0)
			break;
		gather_takes(a);
		batch = a->takes;
		a->takes = g_ptr_array_new();
		a->committing = batch->len;
		mfs_mutex_unlock(&a->lock);
		take_commit(a, batch);
		g_ptr_array_free(batch, TRUE);
		mfs_mutex_lock(&a->lock);
		a->committing = 0;
	}
	mfs_mutex_unlock(&a->lock);
	return NULL;
}
