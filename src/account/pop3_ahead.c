/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Read-ahead for a reader walking the POP3 spool in name order: the opener
 * RETRs a short pipelined batch, the read-ahead thread keeps a lead past
 * it on the open session. Contract and lock order: account/pop3_account.h.
 */
#include "account/pop3_internal.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

/* -- read-ahead ---------------------------------------------------------------------------- */

static gint cmp_name(gconstpointer a, gconstpointer b)
{
	const struct msg *x = *(struct msg *const *)a;
	const struct msg *y = *(struct msg *const *)b;

	return strcmp(x->name, y->name);
}

/* Index in a->name_order of the first message whose name is after name
   (lock held; name_order sorted). */
static guint first_after(const struct pop3_account *a, const char *name)
{
	guint lo = 0, hi = a->name_order->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		const struct msg *o = a->name_order->pdata[mid];

		if (strcmp(o->name, name) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Note an open of m (listed, lock held) in the reader's pattern: TRUE
 * when it is the second or later of opens in a row each of the next listed
 * name after the one before — a reader walking the spool in name order
 * (cat *, cp -r, rsync). Taken messages have left the listing, so "next"
 * skips them. ls and stat never open: they never count.
 */
gboolean p3_note_open(struct pop3_account *a, const struct msg *m)
{
	gboolean next = a->last_open && strcmp(a->last_open, m->name) < 0;

	if (next && !a->name_order) {
		GHashTableIter it;
		gpointer v;

		a->name_order = g_ptr_array_sized_new(g_hash_table_size(a->by_ino));
		g_hash_table_iter_init(&it, a->by_ino);
		while (g_hash_table_iter_next(&it, NULL, &v))
			g_ptr_array_add(a->name_order, v);
		g_ptr_array_sort(a->name_order, cmp_name);
	}
	/* No listed name between the last one opened and m's. A walker took
	   the ones before: the scan starts after the last one opened and
	   stops at m, so it looks at no more than the names in between. */
	for (guint i = next ? first_after(a, a->last_open) : 0;
	     next && i < a->name_order->len; i++) {
		const struct msg *o = a->name_order->pdata[i];

		if (strcmp(o->name, m->name) >= 0)
			break;
		next = !g_hash_table_contains(a->by_name, o->name);
	}
	a->streak = next ? a->streak + 1 : 1;
	g_free(a->last_open);
	a->last_open = g_strdup(m->name);
	return a->streak >= 2;
}

/*
 * The listed messages after m in name order that are not downloaded yet,
 * while the bytes read ahead and not opened stay within the prefetch budget
 * (lock held); m first when it is not downloaded either (a reader waits
 * for it); batch_bytes at most besides the first. Messages in flight
 * count as read ahead; those returned are marked in flight (fetching):
 * the caller must RETR them with retr_batch(), which clears the mark. NULL when there is
 * nothing to fetch, or when lead_max is set and the bytes already read
 * ahead after m reach it.
 */
static GPtrArray *ahead_batch(struct pop3_account *a, struct msg *m, guint64 lead_max,
			      guint64 batch_bytes, guint batch_max)
{
	GPtrArray *batch = g_ptr_array_new();
	g_autoptr(GPtrArray) after = g_ptr_array_new();
	guint64 held = 0, extra = 0, lead = 0;
	GHashTableIter it;
	gpointer v;

	if (m->fd < 0 && m->num && !m->taken && !m->taking && !m->gone && !m->fetching)
		g_ptr_array_add(batch, m);
	g_hash_table_iter_init(&it, a->by_ino);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct msg *o = v;

		if ((o->ahead && o->fd >= 0) || o->fetching) {
			held += o->size;
			if (strcmp(o->name, m->name) > 0)
				lead += o->size;
		} else if (o != m && o->fd < 0 && o->num && !o->taken && !o->taking && !o->gone &&
			 g_hash_table_lookup(a->by_name, o->name) == o &&
			 strcmp(o->name, m->name) > 0)
			g_ptr_array_add(after, o);
	}
	if (lead_max && lead >= lead_max)
		after->len = 0;
	g_ptr_array_sort(after, cmp_name);
	for (guint i = 0; i < after->len && batch->len < batch_max; i++) {
		struct msg *o = after->pdata[i];

		if (held + o->size > a->opts->prefetch ||
		    (extra > 0 && extra + o->size > batch_bytes))
			break;
		held += o->size;
		extra += o->size;
		g_ptr_array_add(batch, o);
	}
	if (batch->len == 0)
		g_clear_pointer(&batch, g_ptr_array_unref);
	/* In flight until the syncer installs each (or the batch ends). */
	for (guint i = 0; batch && i < batch->len; i++)
		((struct msg *)batch->pdata[i])->fetching = TRUE;
	return batch;
}

/*
 * One message of a batch being RETR'd. The session thread owns it until
 * ahead_end() hands it to a syncer (workers_push); the syncer's writes
 * are under the batch's mu, and the session thread reads them again only
 * once pending is back to 0.
 */
struct ahead_item {
	struct msg *m;
	guint32 num;
	/* The bytes so far, while they fit AHEAD_MEM_MAX: the syncer makes the
	   file (creating a file costs the stream thread more than the bytes). */
	GByteArray *buf;
	int fd;          /* -1 when not begun, kept in buf, or dropped */
	char *tmp;
	gboolean installed; /* a syncer's write under ctx->mu: m has the bytes */
	guint64 got;
	struct ahead_ctx *ctx;
};

/* A batch; on the stack of the thread holding sess_lock for it. */
struct ahead_ctx {
	struct pop3_account *a;
	struct ahead_item *items;
	const struct msg *opener; /* the message a reader waits for, or NULL */
	guint cur;       /* session thread only */
	int write_err;   /* session thread only; the sink's first local failure for items[cur] */
	mfs_mutex mu;    /* a leaf lock: taken under none other, nothing taken under it */
	mfs_cond done;   /* with mu: pending went down */
	guint pending;   /* guarded by mu; items the syncers have not finished */
	guint64 mem;     /* guarded by mu; bytes of the items' bufs (AHEAD_MEM_BATCH) */
};

/* m is no longer in flight, downloaded or not (takes lock): its waiters look again. */
static void fetch_over(struct pop3_account *a, struct msg *m)
{
	mfs_mutex_lock(&a->lock);
	if (m->fetching) {
		m->fetching = FALSE;
		mfs_cond_broadcast(&a->fetch_cond);
	}
	mfs_mutex_unlock(&a->lock);
}

/*
 * A syncer (a->syncers): one complete message into the spool store (the
 * file made and written when its bytes were kept in memory, renamed; not
 * fsync'd, see p3_part_finish) and installed at once, while the batch's
 * next messages keep arriving: a reader never waits for the rest of the
 * batch.
 */
void p3_ahead_sync(gpointer data, gpointer ud)
{
	struct ahead_item *it = data;
	struct ahead_ctx *c = it->ctx;
	struct pop3_account *a = c->a;
	GError *e = NULL;
	char *final = NULL;
	int fd = it->fd;
	gboolean ok = TRUE;

	(void)ud;
	if (it->buf) {
		int wrc = 0;

		fd = p3_part_open(a, it->m, &it->tmp, &e);
		if (fd >= 0)
			wrc = p3_sink_write(&fd, it->buf->data, it->buf->len);
		if (wrc < 0) {
			g_set_error(&e, G_FILE_ERROR, g_file_error_from_errno(-wrc), "%s: %s",
				    it->tmp, g_strerror(-wrc));
			close(fd);
			g_unlink(it->tmp);
			fd = -1;
		}
		mfs_mutex_lock(&c->mu);
		c->mem -= it->buf->len;
		mfs_mutex_unlock(&c->mu);
		g_clear_pointer(&it->buf, g_byte_array_unref);
		ok = fd >= 0;
	}
	if (ok && p3_part_finish(a, it->m, fd, it->tmp, &final, &e) < 0)
		ok = FALSE;
	if (ok)
		p3_install(a, it->m, fd, final, it->got, it->m != c->opener);
	else
		mfs_log_info("read-ahead: %s", e->message);
	g_clear_error(&e);
	fetch_over(a, it->m);
	mfs_mutex_lock(&c->mu);
	it->fd = -1; /* the message's now, or closed */
	it->installed = ok;
	c->pending--;
	mfs_cond_signal(&c->done);
	mfs_mutex_unlock(&c->mu);
}

static void ahead_begin(void *ud, guint i)
{
	struct ahead_ctx *c = ud;
	struct ahead_item *it = &c->items[i];

	c->cur = i;
	c->write_err = 0;
	it->buf = g_byte_array_new();
}

/* The item's bytes outgrew memory: into its part file from now on. */
static int ahead_to_file(struct ahead_ctx *c, struct ahead_item *it)
{
	GError *e = NULL;
	int rc;

	it->fd = p3_part_open(c->a, it->m, &it->tmp, &e);
	if (it->fd < 0) {
		rc = it->fd;
		it->fd = -1;
		mfs_log_info("read-ahead: %s", e->message);
		g_error_free(e);
		return rc;
	}
	rc = p3_sink_write(&it->fd, it->buf->data, it->buf->len);
	mfs_mutex_lock(&c->mu);
	c->mem -= it->buf->len;
	mfs_mutex_unlock(&c->mu);
	g_clear_pointer(&it->buf, g_byte_array_unref);
	return rc;
}

/* A local failure (a full disk) drops this message's bytes but keeps the
   session: the others of the pipeline are still coming. */
static int ahead_sink(void *ud, const void *data, size_t len)
{
	struct ahead_ctx *c = ud;
	struct ahead_item *it = &c->items[c->cur];

	if (c->write_err)
		return 0;
	if (it->buf && it->buf->len + len <= AHEAD_MEM_MAX) {
		gboolean room;

		mfs_mutex_lock(&c->mu);
		room = c->mem + len <= AHEAD_MEM_BATCH;
		if (room)
			c->mem += len;
		mfs_mutex_unlock(&c->mu);
		if (room) {
			g_byte_array_append(it->buf, data, (guint)len);
			return 0;
		}
	}
	if (it->buf)
		c->write_err = ahead_to_file(c, it);
	if (c->write_err == 0 && it->fd >= 0)
		c->write_err = p3_sink_write(&it->fd, data, len);
	return 0;
}

static void ahead_end(void *ud, guint i, int rc, guint64 size)
{
	struct ahead_ctx *c = ud;
	struct ahead_item *it = &c->items[i];

	if (rc == 0 && c->write_err == 0 && (it->buf || it->fd >= 0)) {
		it->got = size;
		mfs_mutex_lock(&c->mu);
		c->pending++;
		mfs_mutex_unlock(&c->mu);
		workers_push(c->a->syncers, it);
		return;
	}
	if (it->buf) {
		mfs_mutex_lock(&c->mu);
		c->mem -= it->buf->len;
		mfs_mutex_unlock(&c->mu);
		g_clear_pointer(&it->buf, g_byte_array_unref);
	}
	if (it->fd >= 0) {
		close(it->fd);
		g_unlink(it->tmp);
		it->fd = -1;
	}
}

/*
 * RETR a batch (ahead_batch; its messages marked fetching) pipelined on
 * the live session into the spool store, each message installed by a
 * syncer once its file is complete and renamed. Reading ahead takes nothing: the messages stay on the server
 * until a reader takes them. A crash leaves complete files or .part files,
 * and the next mount clears the store (pop3_account_new). Failures are
 * dropped silently (each is RETR'd again when opened). opener: the message
 * a reader is waiting for, if it is in the batch (not "ahead").
 */
static void retr_batch(struct pop3_account *a, GPtrArray *batch, const struct msg *opener)
{
	g_autofree guint32 *nums = g_new0(guint32, batch->len);
	struct ahead_ctx c = { .a = a, .opener = opener };
	static const struct pop3_retr_many_cb cb = { ahead_begin, ahead_sink, ahead_end };
	GError *e = NULL;
	gboolean any = FALSE;
	int rc;

	c.items = g_new0(struct ahead_item, batch->len);
	mfs_mutex_init(&c.mu);
	mfs_cond_init(&c.done);
	mfs_mutex_lock(&a->lock);
	for (guint i = 0; i < batch->len; i++) {
		c.items[i].ctx = &c;
		c.items[i].m = batch->pdata[i];
		c.items[i].fd = -1;
		nums[i] = c.items[i].num = c.items[i].m->num;
	}
	mfs_mutex_unlock(&a->lock);
	mfs_log_debug(MFS_LOG_POP3, "read-ahead: RETR of %u messages from %s", batch->len,
		      c.items[0].m->name);
	rc = pop3_retr_many(a->sess, nums, batch->len, &cb, &c, &e);
	mfs_mutex_lock(&c.mu);
	while (c.pending)
		mfs_cond_wait(&c.done, &c.mu);
	mfs_mutex_unlock(&c.mu);
	mfs_mutex_clear(&c.mu);
	mfs_cond_clear(&c.done);
	if (rc < 0) {
		mfs_log_info("read-ahead: %s", e ? e->message : g_strerror(-rc));
		g_clear_error(&e);
		if (a->sess && !pop3_session_alive(a->sess))
			p3_drop_session(a);
	}
	for (guint i = 0; i < batch->len; i++) {
		struct ahead_item *it = &c.items[i];

		/* A part begun when the session failed: its end() never came. */
		g_clear_pointer(&it->buf, g_byte_array_unref);
		if (it->fd >= 0) {
			close(it->fd);
			g_unlink(it->tmp);
		}
		/* Not installed: an opener waiting for it downloads it itself. */
		fetch_over(a, it->m);
		any = any || it->installed;
		g_free(it->tmp);
	}
	g_free(c.items);
	if (any)
		p3_crash_point(a, "after-retr");
}

/*
 * Download m, which a reader walking the spool opens, and the messages
 * after it in one pipelined batch; m's outcome comes from p3_download().
 */
int p3_download_ahead(struct pop3_account *a, struct msg *m, GError **err)
{
	g_autoptr(GPtrArray) batch = NULL;
	GError *e = NULL;
	int rc;

	/* Read ahead already: no login for it. */
	if (p3_msg_downloaded(a, m))
		return 0;
	rc = p3_session_get(a, NULL, &e);
	if (rc < 0) {
		/* As p3_download() reports it; no second login straight after a refusal. */
		if (e)
			p3_set_last_error(a, e->message);
		g_propagate_error(err, e);
		return rc;
	}
	mfs_mutex_lock(&a->lock);
	batch = ahead_batch(a, m, 0, AHEAD_BATCH_BYTES, AHEAD_BATCH_MAX);
	if (batch && batch->len < 2) {
		/* m alone: p3_download() below. */
		((struct msg *)batch->pdata[0])->fetching = FALSE;
		g_clear_pointer(&batch, g_ptr_array_unref);
	}
	mfs_mutex_unlock(&a->lock);
	if (batch)
		retr_batch(a, batch, m);
	/* m itself failed (refused, a dropped session): the one-message path,
	   with its retry on a new session and its error for the reader. */
	return p3_download(a, m, err);
}

/*
 * The DELEs the taker handed over (dele_via_ahead in pop3_take.c), sent
 * between two batches (sess_lock held). last: the run of batches ends, so
 * the taker sends its own from now on (ahead_busy cleared in the same
 * critical section as the queue is taken: none is left behind).
 */
static void send_deles(struct pop3_account *a, gboolean last)
{
	GPtrArray *deles = NULL;

	mfs_mutex_lock(&a->lock);
	if (a->ahead_deles->len) {
		deles = a->ahead_deles;
		a->ahead_deles = g_ptr_array_new();
	}
	if (last) {
		a->ahead_busy = FALSE;
		mfs_cond_broadcast(&a->fetch_cond);
	}
	mfs_mutex_unlock(&a->lock);
	if (!deles)
		return;
	p3_dele_taken(a, deles);
	p3_crash_point(a, "after-dele");
	g_ptr_array_unref(deles);
}

/*
 * m, opened by a reader walking the spool, is neither downloaded nor in a
 * batch, and the read-ahead thread holds the session for a run of batches
 * (lock held): waiting for the session would wait for that whole run
 * (the lead it keeps past the last message opened, tens of MiB), although
 * the reader is only ahead of the batch in flight. Instead the thread
 * reads ahead from m with its next batch, m first, and the reader waits
 * for m alone. TRUE once m is downloaded; FALSE when the thread's next
 * batch did not bring it (another reader moved it elsewhere, m failed)
 * or its run ended: the caller downloads m itself.
 */
gboolean p3_ahead_wait(struct pop3_account *a, struct msg *m)
{
	guint64 round = a->ahead_round;

	if (!a->ahead_busy)
		return FALSE;
	a->ahead_from = m;
	while (m->fd < 0 && (m->fetching || (a->ahead_busy && a->ahead_round == round)))
		mfs_cond_wait(&a->fetch_cond, &a->lock);
	return m->fd >= 0;
}

/*
 * The read-ahead thread: while a reader walks through messages read ahead,
 * keep up to AHEAD_LEAD_BYTES downloaded past the one it opened, so that it
 * never waits for a batch. Only on a live session: no login for this.
 */
gpointer p3_ahead_thread(gpointer ud)
{
	struct pop3_account *a = ud;

	mfs_mutex_lock(&a->lock);
	for (;;) {
		struct msg *from;
		g_autoptr(GPtrArray) batch = NULL;

		while (!a->ahead_from && !a->ahead_stop)
			mfs_cond_wait(&a->ahead_cond, &a->lock);
		if (a->ahead_stop)
			break;
		from = a->ahead_from;
		a->ahead_from = NULL;
		mfs_mutex_unlock(&a->lock);
		mfs_mutex_lock(&a->sess_lock);
		mfs_mutex_lock(&a->lock);
		a->ahead_busy = TRUE;
		mfs_mutex_unlock(&a->lock);
		/* Batch after batch until the lead is kept, or the reader stops. */
		while (a->sess && pop3_session_alive(a->sess)) {
			mfs_mutex_lock(&a->lock);
			if (a->ahead_from) {
				from = a->ahead_from;
				a->ahead_from = NULL;
			}
			batch = a->ahead_stop ?
					NULL :
					ahead_batch(a, from, AHEAD_LEAD_BYTES, AHEAD_LEAD_BYTES / 2,
						    AHEAD_LEAD_BATCH_MAX);
			/* A reader waiting in p3_ahead_wait() looks again. */
			a->ahead_round++;
			mfs_cond_broadcast(&a->fetch_cond);
			mfs_mutex_unlock(&a->lock);
			send_deles(a, FALSE);
			if (!batch)
				break;
			a->last_use = p3_now_us();
			retr_batch(a, batch, NULL);
			g_clear_pointer(&batch, g_ptr_array_unref);
		}
		/* The taker DELEs itself from now on. */
		send_deles(a, TRUE);
		mfs_mutex_unlock(&a->sess_lock);
		mfs_mutex_lock(&a->lock);
	}
	mfs_mutex_unlock(&a->lock);
	return NULL;
}
