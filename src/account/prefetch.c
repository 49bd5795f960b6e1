/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/prefetch.h"

#include <string.h>

#include "util/log.h"

/* Commands in flight on the prefetch connection at once: a sliding window,
   so the link never idles for a round trip between batches. */
#define PIPELINE 32
/* Small bodies go several to a command (fewer commands for the server to
   parse, fewer lines to match), up to this many UIDs or bytes. */
#define UIDS_PER_COMMAND 16
#define BYTES_PER_COMMAND ((guint64)1024 * 1024)

struct job {
	char *mailbox;
	guint32 uidvalidity;
	char *cache_key; /* mcache_folder_key() */
	GArray *items;   /* struct prefetch_item */
};

struct prefetch {
	struct pool *pool;
	struct mcache *cache;
	GMutex lock;
	GCond cond;
	struct job *next; /* the request waiting to start; a newer one replaces it */
	gboolean stopping;
	struct imap_session *busy; /* borrowed now, for prefetch_stop */
	GThread *thread;
	guint64 messages;
	guint64 bytes;
};

/* The body being received; it is stored once its response names the UID. */
struct sink {
	struct prefetch *p;
	const struct job *job;
	GHashTable *wanted; /* UIDs asked for on this connection */
	gboolean discard;   /* the mailbox is not the one asked for: keep nothing */
	GByteArray *buf;
	gboolean active;
	gboolean too_big;
};

static void job_free(struct job *j)
{
	if (!j)
		return;
	g_free(j->mailbox);
	g_free(j->cache_key);
	g_array_unref(j->items);
	g_free(j);
}

static gboolean on_literal(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct sink *k = ud;

	(void)seq;
	if (strcmp(section, "BODY[]") != 0)
		return FALSE;
	g_byte_array_set_size(k->buf, 0);
	k->active = TRUE;
	k->too_big = size > PREFETCH_MAX_BODY;
	return TRUE;
}

static void on_chunk(void *ud, const void *data, size_t len)
{
	struct sink *k = ud;

	if (k->active && !k->too_big)
		g_byte_array_append(k->buf, data, (guint)len);
}

static void on_fetch(void *ud, const struct imap_response *r)
{
	struct sink *k = ud;
	const struct imap_value *v = imap_fetch_item(r, "BODY[]");
	guint32 uid;

	if (!k->active || k->discard || !v || v->type != IMAP_V_STREAMED || k->too_big ||
	    !imap_value_u32(imap_fetch_item(r, "UID"), &uid) ||
	    !g_hash_table_contains(k->wanted, GUINT_TO_POINTER(uid))) {
		k->active = FALSE;
		return;
	}
	k->active = FALSE;
	struct mcache_entry *e = mcache_get(k->p->cache, k->job->mailbox, k->job->uidvalidity, uid);
	guint64 have;

	/* A reader may have finished it meanwhile; a failed write is no error. */
	if (!mcache_entry_complete(e, &have) &&
	    mcache_entry_write(e, 0, k->buf->data, k->buf->len) == 0 &&
	    mcache_entry_finish(e, k->buf->len) == 0) {
		g_mutex_lock(&k->p->lock);
		k->p->messages++;
		k->p->bytes += k->buf->len;
		g_mutex_unlock(&k->p->lock);
	}
	mcache_entry_unref(e);
}

static gboolean cached(struct prefetch *p, const struct job *j, guint32 uid)
{
	return mcache_peek_complete(p->cache, j->cache_key, uid);
}

/* The UIDs of queue[*next...] that go in one command, as "u1,u2,...". */
static char *next_command(const GArray *queue, guint *next)
{
	GString *set = g_string_new(NULL);
	guint64 bytes = 0;
	guint n = 0;

	while (*next < queue->len && n < UIDS_PER_COMMAND) {
		const struct prefetch_item *it = &g_array_index(queue, struct prefetch_item, *next);

		if (n > 0 && bytes + it->size > BYTES_PER_COMMAND)
			break;
		g_string_append_printf(set, "%s%u", n ? "," : "", it->uid);
		bytes += it->size;
		n++;
		(*next)++;
	}
	return g_string_free(set, FALSE);
}

/* Queue what items holds that is neither asked for nor cached yet. */
static void enqueue(struct prefetch *p, const struct job *j, const GArray *items, GArray *queue,
		    GHashTable *wanted)
{
	for (guint i = 0; i < items->len; i++) {
		const struct prefetch_item *it = &g_array_index(items, struct prefetch_item, i);

		if (it->size > PREFETCH_MAX_BODY ||
		    g_hash_table_contains(wanted, GUINT_TO_POINTER(it->uid)) ||
		    cached(p, j, it->uid))
			continue;
		g_hash_table_add(wanted, GUINT_TO_POINTER(it->uid));
		g_array_append_val(queue, *it);
	}
}

/*
 * A newer request while this job runs: one for the same mailbox (the reader
 * went on in the same folder) joins the queue, so the pipeline never drains;
 * FALSE for another mailbox (or a stop): send no more.
 */
static gboolean take_newer(struct prefetch *p, const struct job *j, GArray *queue,
			   GHashTable *wanted)
{
	struct job *n = NULL;
	gboolean go_on = TRUE;

	g_mutex_lock(&p->lock);
	if (p->stopping) {
		go_on = FALSE;
	} else if (p->next && strcmp(p->next->mailbox, j->mailbox) == 0 &&
		   p->next->uidvalidity == j->uidvalidity) {
		n = p->next;
		p->next = NULL;
	} else if (p->next) {
		go_on = FALSE;
	}
	g_mutex_unlock(&p->lock);
	if (n) {
		enqueue(p, j, n->items, queue, wanted);
		job_free(n);
	}
	return go_on;
}

/* Fetch the queue with up to PIPELINE commands in flight, sending one as
   each completes. */
static void fetch_window(struct prefetch *p, struct imap_session *s, const struct job *j,
			 GArray *queue, GHashTable *wanted, const struct imap_handler *h,
			 guint select_id, GError **err)
{
	struct sink *k = h->ud;
	guint ids[PIPELINE];
	guint head = 0, count = 0, next = 0;
	gboolean go_on = TRUE;

	for (;;) {
		while (go_on && next < queue->len && count < PIPELINE && imap_session_alive(s)) {
			g_autofree char *set = next_command(queue, &next);

			ids[(head + count++) % PIPELINE] =
				imap_send(s, "UID FETCH %s (BODY.PEEK[])", set);
		}
		if (select_id) {
			/* The EXAMINE the fetches were pipelined behind: its answer
			   comes before theirs. Another UIDVALIDITY means other
			   messages under these UIDs: nothing of them is kept. */
			if (imap_select_finish(s, select_id, j->mailbox, TRUE, h, NULL, err) < 0 ||
			    imap_session_select_info(s)->uidvalidity != j->uidvalidity) {
				k->discard = TRUE;
				go_on = FALSE;
			}
			select_id = 0;
		}
		if (count == 0)
			break;
		imap_wait(s, ids[head], h, NULL, NULL);
		head = (head + 1) % PIPELINE;
		count--;
		if (go_on)
			go_on = take_newer(p, j, queue, wanted);
	}
}

static void run_job(struct prefetch *p, struct job *j)
{
	g_autoptr(GArray) queue = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	g_autoptr(GHashTable) wanted = g_hash_table_new(g_direct_hash, g_direct_equal);
	struct sink k = { .p = p, .job = j, .wanted = wanted, .buf = g_byte_array_new() };
	struct imap_handler h = { .untagged = on_fetch, .literal_begin = on_literal,
				  .literal_chunk = on_chunk, .ud = &k };
	struct imap_session *s;
	GError *err = NULL;

	enqueue(p, j, j->items, queue, wanted);
	if (queue->len == 0)
		goto out;
	s = pool_get(p->pool, j->mailbox, &err);
	if (!s)
		goto out;
	g_mutex_lock(&p->lock);
	p->busy = s;
	if (p->stopping)
		pool_abort_session(p->pool, s);
	g_mutex_unlock(&p->lock);
	if (g_strcmp0(imap_session_selected(s), j->mailbox) == 0 &&
	    imap_session_select_info(s)->uidvalidity == j->uidvalidity) {
		fetch_window(p, s, j, queue, wanted, &h, 0, &err);
	} else {
		/* EXAMINE and the first fetches in one round trip. */
		guint id = imap_select_send(s, j->mailbox, TRUE, NULL, &err);

		if (id)
			fetch_window(p, s, j, queue, wanted, &h, id, &err);
	}
	g_mutex_lock(&p->lock);
	p->busy = NULL;
	g_mutex_unlock(&p->lock);
	pool_put(p->pool, s);
out:
	if (err)
		mfs_log_debug(MFS_LOG_CACHE, "prefetch in %s stopped: %s", j->mailbox,
			      err->message);
	g_clear_error(&err);
	g_byte_array_unref(k.buf);
}

static gpointer run(gpointer data)
{
	struct prefetch *p = data;

	for (;;) {
		struct job *j;

		g_mutex_lock(&p->lock);
		while (!p->next && !p->stopping)
			g_cond_wait(&p->cond, &p->lock);
		if (p->stopping) {
			g_mutex_unlock(&p->lock);
			return NULL;
		}
		j = p->next;
		p->next = NULL;
		g_mutex_unlock(&p->lock);
		run_job(p, j);
		job_free(j);
	}
}

struct prefetch *prefetch_start(struct pool *pool, struct mcache *cache)
{
	struct prefetch *p = g_new0(struct prefetch, 1);

	p->pool = pool;
	p->cache = cache;
	g_mutex_init(&p->lock);
	g_cond_init(&p->cond);
	p->thread = g_thread_new("mailfs-prefetch", run, p);
	return p;
}

void prefetch_stop(struct prefetch *p)
{
	if (!p)
		return;
	g_mutex_lock(&p->lock);
	p->stopping = TRUE;
	if (p->busy)
		pool_abort_session(p->pool, p->busy);
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
	g_thread_join(p->thread);
	job_free(p->next);
	g_mutex_clear(&p->lock);
	g_cond_clear(&p->cond);
	g_free(p);
}

void prefetch_request(struct prefetch *p, const char *mailbox, guint32 uidvalidity,
		      const struct prefetch_item *items, guint n)
{
	struct job *j;

	if (!p || n == 0)
		return;
	j = g_new0(struct job, 1);
	j->mailbox = g_strdup(mailbox);
	j->uidvalidity = uidvalidity;
	j->cache_key = mcache_folder_key(mailbox, uidvalidity);
	j->items = g_array_sized_new(FALSE, FALSE, sizeof(struct prefetch_item), n);
	g_array_append_vals(j->items, items, n);
	g_mutex_lock(&p->lock);
	job_free(p->next);
	p->next = j;
	g_cond_signal(&p->cond);
	g_mutex_unlock(&p->lock);
}

void prefetch_counters(struct prefetch *p, guint64 *messages, guint64 *bytes)
{
	g_mutex_lock(&p->lock);
	*messages = p->messages;
	*bytes = p->bytes;
	g_mutex_unlock(&p->lock);
}
