/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/prefetch.h"

#include <string.h>

#include "account/fetch.h"
#include "account/inflight.h"

#include "util/lock.h"
#include "util/log.h"

/* Commands in flight on the prefetch connection at once: a sliding window,
   so the link never idles for a round trip between batches. */
#define PIPELINE 32
/* Small bodies go several to a command (fewer commands for the server to
   parse, fewer lines to match), up to this many UIDs or bytes. */
#define UIDS_PER_COMMAND 16
#define BYTES_PER_COMMAND ((guint64)1024 * 1024)
/* With no room in the cache for the next body (what was fetched ahead is
   held for readers not there yet), look again this often for readers that
   came; give the connection back after this long without one. */
#define ROOM_POLL_US (50 * 1000)
#define ROOM_WAIT_MAX_US (5 * G_USEC_PER_SEC)

/* One mailbox's part of a job. */
struct seg {
	char *mailbox;
	guint32 uidvalidity;
	char *cache_key; /* mcache_folder_key() */
	GArray *items;   /* struct prefetch_item */
};

struct job {
	GPtrArray *segs; /* struct seg *, fetched in order */
};

struct prefetch {
	struct pool *pool;
	struct mcache *cache;
	struct inflight *inflight;
	guint64 cap; /* bytes fetched ahead and unread at most (`prefetch`) */
	mfs_mutex lock;
	mfs_cond cond;
	struct job *next; /* the request waiting to start; a newer one replaces it */
	gboolean stopping;
	struct imap_session *busy; /* borrowed now, for prefetch_stop */
	GThread *thread;
	guint64 messages; /* bodies received */
	guint64 bytes;	  /* their bytes, kept or not */
	guint64 unused;	  /* bytes received that the cache could not keep */
};

/* Where the bodies of the segment being fetched go (account/fetch.h's
   body_sink receives them). */
struct sink {
	struct prefetch *p;
	const struct seg *seg; /* the mailbox selected for the fetches in flight */
	/* The segment's bodies sent for and not arrived: GUINT_TO_POINTER(uid)
	   -> the bytes reserved for it (GSIZE_TO_POINTER); claimed in
	   p->inflight. Also the body sink's `wanted`. */
	GHashTable *claimed;
	struct body_sink body;
};

static void seg_free(gpointer data)
{
	struct seg *g = data;

	if (!g)
		return; /* moved to another job */
	g_free(g->mailbox);
	g_free(g->cache_key);
	g_array_unref(g->items);
	g_free(g);
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	g_ptr_array_unref(j->segs);
	g_free(j);
}

/* The claim of uid (sent for) ends: its reservation and claim go back,
   and a reader waiting for it looks in the cache again. */
static void give_back(struct sink *k, guint32 uid)
{
	gpointer reserved;

	if (!g_hash_table_lookup_extended(k->claimed, GUINT_TO_POINTER(uid), NULL, &reserved))
		return;
	g_hash_table_remove(k->claimed, GUINT_TO_POINTER(uid));
	mcache_ahead_unreserve(k->p->cache, GPOINTER_TO_SIZE(reserved));
	inflight_done(k->p->inflight, k->seg->cache_key, uid);
}

/* A body of the segment arrived whole: into the cache, held there for its
   reader (the room was reserved when it was sent for). */
static void take_body(void *ud, guint32 uid, const GByteArray *bytes)
{
	struct sink *k = ud;
	struct mcache_entry *e;
	gboolean kept;

	if (!g_hash_table_contains(k->claimed, GUINT_TO_POINTER(uid)))
		return; /* not sent for by us (answered twice) */
	e = mcache_get(k->p->cache, k->seg->mailbox, k->seg->uidvalidity, uid);
	/* A failed write is no error: the reader will fetch it. */
	kept = !mcache_entry_complete(e, NULL) &&
	       mcache_entry_write(e, 0, bytes->data, bytes->len) == 0 &&
	       mcache_entry_finish(e, bytes->len) == 0;
	if (kept)
		(void)mcache_entry_hold_ahead(e);
	mcache_entry_unref(e);
	mfs_mutex_lock(&k->p->lock);
	k->p->messages++;
	k->p->bytes += bytes->len;
	if (!kept)
		k->p->unused += bytes->len;
	mfs_mutex_unlock(&k->p->lock);
	mfs_log_debug(MFS_LOG_CACHE, "prefetch: UID %u of %s: %u bytes%s", uid, k->seg->mailbox,
		      bytes->len, kept ? "" : ", could not be kept");
	give_back(k, uid);
}

/* Cached whole, or a reader is filling it: not the prefetcher's to fetch. */
static gboolean cached(struct prefetch *p, const struct seg *g, guint32 uid)
{
	return mcache_peek_present(p->cache, g->cache_key, uid);
}

/*
 * Claim the next messages of the queue (queue[*next...]) for one command,
 * each with its room reserved in the cache, and return them as "u1,u2,..."
 * (their UIDs also in uids); those another fetch has (the other
 * prefetcher, a reader) are passed over. NULL when nothing is to be sent
 * now: the queue is done, or (*no_room) the cache cannot keep the next one
 * beside what is open and held for readers (a body that could never be
 * fetched ahead, over half the cache or `prefetch`, is passed over).
 */
static char *next_command(struct sink *k, const GArray *queue, guint *next, GArray *uids,
			  gboolean *no_room)
{
	struct prefetch *p = k->p;
	const struct seg *g = k->seg;
	GString *set = g_string_new(NULL);
	guint64 bytes = 0;
	guint n = 0;

	*no_room = FALSE;
	while (*next < queue->len && n < UIDS_PER_COMMAND) {
		const struct prefetch_item *it = &g_array_index(queue, struct prefetch_item, *next);

		if (n > 0 && bytes + it->size > BYTES_PER_COMMAND)
			break;
		enum mcache_room room = mcache_ahead_reserve(p->cache, it->size, p->cap);

		if (room == MCACHE_ROOM_NEVER) {
			/* Larger than may ever be fetched ahead: the
			   reader's ranged reads will take it. */
			(*next)++;
			continue;
		}
		if (room == MCACHE_ROOM_LATER) {
			*no_room = TRUE;
			break;
		}
		(*next)++;
		/* Claim first, then look: a reader that took its entry before
		   the look is seen, one after the claim waits for us. */
		if (!inflight_claim(p->inflight, g->cache_key, it->uid)) {
			mcache_ahead_unreserve(p->cache, it->size);
			continue;
		}
		if (cached(p, g, it->uid)) {
			inflight_done(p->inflight, g->cache_key, it->uid);
			mcache_ahead_unreserve(p->cache, it->size);
			continue;
		}
		g_hash_table_insert(k->claimed, GUINT_TO_POINTER(it->uid),
				    GSIZE_TO_POINTER((gsize)it->size));
		g_array_append_val(uids, it->uid);
		g_string_append_printf(set, "%s%u", n ? "," : "", it->uid);
		bytes += it->size;
		n++;
	}
	if (n == 0) {
		g_string_free(set, TRUE);
		return NULL;
	}
	return g_string_free(set, FALSE);
}

/*
 * Nothing in flight and no room for the next body: wait for readers to
 * come for what is held (polled: a reader's open of a cached body tells
 * nobody) or for a newer request. FALSE: stop, or no reader came for
 * ROOM_WAIT_MAX_US (the connection goes back to the pool).
 */
static gboolean wait_for_room(struct prefetch *p, gint64 *waited)
{
	gint64 end = g_get_monotonic_time() + ROOM_POLL_US;
	gboolean go_on;

	mfs_mutex_lock(&p->lock);
	if (!p->stopping && !p->next)
		mfs_cond_wait_until(&p->cond, &p->lock, end);
	go_on = !p->stopping;
	mfs_mutex_unlock(&p->lock);
	*waited += ROOM_POLL_US;
	return go_on && *waited < ROOM_WAIT_MAX_US;
}

/* Whether segment g holds a message neither cached nor too big to prefetch. */
static gboolean seg_has_work(struct prefetch *p, const struct seg *g)
{
	for (guint n = 0; n < g->items->len; n++) {
		const struct prefetch_item *it = &g_array_index(g->items, struct prefetch_item, n);

		if (it->size <= PREFETCH_MAX_BODY && !cached(p, g, it->uid))
			return TRUE;
	}
	return FALSE;
}

/* Queue what items holds that is neither asked for nor cached yet. */
static void enqueue(struct prefetch *p, const struct seg *g, const GArray *items, GArray *queue,
		    GHashTable *wanted)
{
	for (guint i = 0; i < items->len; i++) {
		const struct prefetch_item *it = &g_array_index(items, struct prefetch_item, i);

		if (it->size > PREFETCH_MAX_BODY ||
		    g_hash_table_contains(wanted, GUINT_TO_POINTER(it->uid)) ||
		    cached(p, g, it->uid))
			continue;
		g_hash_table_add(wanted, GUINT_TO_POINTER(it->uid));
		g_array_append_val(queue, *it);
	}
}

/*
 * A newer request while segment `at` of job j runs, queue[0, sent) sent for
 * already. When it holds the same mailbox at some segment q and has nothing
 * to fetch before q (the reader went on in the same folder, or, for the
 * folders ahead, the walk asks for the same ones again), it joins: that
 * segment's items replace what of the queue is not sent yet (the reader
 * passed what they leave out: fetched now, it would be fetched for
 * nothing), its later segments replace j's, and the pipeline never drains.
 * Else (or on a stop) FALSE: send no more.
 */
static gboolean take_newer(struct prefetch *p, struct job *j, guint at, GArray *queue,
			   guint sent, GHashTable *wanted)
{
	const struct seg *g = j->segs->pdata[at];
	struct job *n;
	guint q;

	mfs_mutex_lock(&p->lock);
	if (p->stopping) {
		mfs_mutex_unlock(&p->lock);
		return FALSE;
	}
	n = g_steal_pointer(&p->next);
	mfs_mutex_unlock(&p->lock);
	if (!n)
		return TRUE;
	for (q = 0; q < n->segs->len; q++) {
		const struct seg *h = n->segs->pdata[q];

		if (strcmp(h->mailbox, g->mailbox) == 0 && h->uidvalidity == g->uidvalidity)
			break;
		if (seg_has_work(p, h)) {
			q = n->segs->len; /* something to fetch before it: no join */
			break;
		}
	}
	if (q == n->segs->len) {
		/* Put it back for the loop to start, unless a newer one came. */
		mfs_mutex_lock(&p->lock);
		if (!p->next)
			p->next = g_steal_pointer(&n);
		mfs_mutex_unlock(&p->lock);
		job_free(n);
		return FALSE;
	}
	for (guint i = sent; i < queue->len; i++)
		g_hash_table_remove(wanted,
				    GUINT_TO_POINTER(g_array_index(queue, struct prefetch_item, i).uid));
	g_array_set_size(queue, sent);
	enqueue(p, g, ((struct seg *)n->segs->pdata[q])->items, queue, wanted);
	g_ptr_array_remove_range(j->segs, at + 1, j->segs->len - (at + 1));
	for (guint i = q + 1; i < n->segs->len; i++)
		g_ptr_array_add(j->segs, g_steal_pointer(&n->segs->pdata[i]));
	job_free(n);
	return TRUE;
}

/*
 * Fetch the queue with up to PIPELINE commands in flight, sending one as
 * each completes, while the cache has room for what is fetched ahead (see
 * next_command). FALSE: a stop, a newer request elsewhere, or readers that
 * do not come for what was fetched.
 */
static gboolean fetch_window(struct prefetch *p, struct imap_session *s, struct job *j, guint at,
			     GArray *queue, GHashTable *wanted, const struct imap_handler *h,
			     struct pending_select *ps, GError **err)
{
	struct sink *k = ((struct body_sink *)h->ud)->ud;
	const struct seg *g = j->segs->pdata[at];
	guint ids[PIPELINE];
	GArray *sent[PIPELINE]; /* each command's UIDs */
	guint head = 0, count = 0, next = 0;
	gboolean go_on = TRUE, newer_ok = TRUE;
	gint64 waited = 0;

	for (guint i = 0; i < PIPELINE; i++)
		sent[i] = g_array_new(FALSE, FALSE, sizeof(guint32));
	for (;;) {
		gboolean no_room = FALSE;

		while (go_on && next < queue->len && count < PIPELINE && imap_session_alive(s)) {
			guint slot = (head + count) % PIPELINE;
			g_autofree char *set = NULL;

			g_array_set_size(sent[slot], 0);
			set = next_command(k, queue, &next, sent[slot], &no_room);
			if (!set)
				break;
			ids[slot] = imap_send(s, "UID FETCH %s (BODY.PEEK[])", set);
			count++;
			waited = 0;
		}
		/* The EXAMINE the fetches were pipelined behind: its answer
		   comes before theirs. Another UIDVALIDITY means other
		   messages under these UIDs: nothing of them is kept. */
		if (ps->needed &&
		    fetch_select_finish(s, ps, g->mailbox, TRUE, g->uidvalidity, h, err) < 0) {
			k->body.discard = TRUE;
			go_on = FALSE;
		}
		if (count == 0 && no_room && go_on && imap_session_alive(s)) {
			if (!wait_for_room(p, &waited))
				go_on = FALSE;
			else if (!take_newer(p, j, at, queue, next, wanted))
				go_on = newer_ok = FALSE;
			continue;
		}
		if (count == 0)
			break;
		imap_wait(s, ids[head], h, NULL, NULL);
		/* What the command did not bring (expunged, another
		   generation, a broken link) will not come. */
		for (guint i = 0; i < sent[head]->len; i++)
			give_back(k, g_array_index(sent[head], guint32, i));
		head = (head + 1) % PIPELINE;
		count--;
		if (go_on && !take_newer(p, j, at, queue, next, wanted))
			go_on = newer_ok = FALSE;
	}
	for (guint i = 0; i < PIPELINE; i++)
		g_array_unref(sent[i]);
	return newer_ok && imap_session_alive(s);
}

/* Segment `at` of j on s: what of it is not cached yet. FALSE: stop the job. */
static gboolean run_seg(struct prefetch *p, struct imap_session *s, struct job *j, guint at,
			struct sink *k, const struct imap_handler *h, GError **err)
{
	g_autoptr(GArray) queue = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	g_autoptr(GHashTable) wanted = g_hash_table_new(g_direct_hash, g_direct_equal);
	const struct seg *g = j->segs->pdata[at];
	struct pending_select ps;

	g_autoptr(GHashTable) claimed = g_hash_table_new(g_direct_hash, g_direct_equal);

	enqueue(p, g, g->items, queue, wanted);
	if (queue->len == 0)
		return TRUE;
	k->seg = g;
	k->claimed = claimed;
	k->body.wanted = claimed;
	k->body.discard = FALSE;
	/* EXAMINE and the first fetches in one round trip. */
	fetch_select_send(s, g->mailbox, TRUE, g->uidvalidity, &ps, err);
	if (ps.needed && !ps.id)
		return FALSE;
	/* Every command is waited for: nothing stays claimed after it. */
	return fetch_window(p, s, j, at, queue, wanted, h, &ps, err);
}

/* Whether any segment holds a message to fetch: else no connection is borrowed. */
static gboolean has_work(struct prefetch *p, const struct job *j)
{
	for (guint i = 0; i < j->segs->len; i++) {
		if (seg_has_work(p, j->segs->pdata[i]))
			return TRUE;
	}
	return FALSE;
}

static void run_job(struct prefetch *p, struct job *j)
{
	struct sink k = { .p = p,
			  .body = { .limit = PREFETCH_MAX_BODY, .take = take_body, .ud = &k } };
	struct imap_handler h;
	const struct seg *first = j->segs->pdata[0];
	struct imap_session *s;
	GError *err = NULL;

	body_sink_init(&k.body, &h);
	if (!has_work(p, j))
		goto out;
	s = pool_get(p->pool, first->mailbox, &err);
	if (!s)
		goto out;
	mfs_mutex_lock(&p->lock);
	p->busy = s;
	if (p->stopping)
		pool_abort_session(p->pool, s);
	mfs_mutex_unlock(&p->lock);
	/* j->segs may change while a segment runs (take_newer): its length is
	   read again each time. */
	for (guint at = 0; at < j->segs->len; at++) {
		gboolean go_on = run_seg(p, s, j, at, &k, &h, &err);

		k.body.wanted = NULL;
		k.claimed = NULL;
		if (err) {
			/* A folder that cannot be selected: the next may be. */
			mfs_log_debug(MFS_LOG_CACHE, "prefetch in %s: %s", k.seg->mailbox,
				      err->message);
			g_clear_error(&err);
		}
		if (!go_on)
			break;
	}
	mfs_mutex_lock(&p->lock);
	p->busy = NULL;
	mfs_mutex_unlock(&p->lock);
	(void)pool_put(p->pool, s);
out:
	if (err)
		mfs_log_debug(MFS_LOG_CACHE, "prefetch in %s stopped: %s", first->mailbox,
			      err->message);
	g_clear_error(&err);
	body_sink_clear(&k.body);
}

static gpointer run(gpointer data)
{
	struct prefetch *p = data;

	for (;;) {
		struct job *j;

		mfs_mutex_lock(&p->lock);
		while (!p->next && !p->stopping)
			mfs_cond_wait(&p->cond, &p->lock);
		if (p->stopping) {
			mfs_mutex_unlock(&p->lock);
			return NULL;
		}
		j = p->next;
		p->next = NULL;
		mfs_mutex_unlock(&p->lock);
		run_job(p, j);
		job_free(j);
	}
}

struct prefetch *prefetch_start(struct pool *pool, struct mcache *cache, struct inflight *inflight,
			       guint64 cap)
{
	struct prefetch *p = g_new0(struct prefetch, 1);

	p->pool = pool;
	p->cache = cache;
	p->inflight = inflight;
	p->cap = cap;
	mfs_mutex_init(&p->lock);
	mfs_cond_init(&p->cond);
	p->thread = g_thread_new("mailfs-prefetch", run, p);
	return p;
}

void prefetch_stop(struct prefetch *p)
{
	if (!p)
		return;
	mfs_mutex_lock(&p->lock);
	p->stopping = TRUE;
	if (p->busy)
		pool_abort_session(p->pool, p->busy);
	mfs_cond_broadcast(&p->cond);
	mfs_mutex_unlock(&p->lock);
	g_thread_join(p->thread);
	job_free(p->next);
	mfs_mutex_clear(&p->lock);
	mfs_cond_clear(&p->cond);
	g_free(p);
}

void prefetch_request(struct prefetch *p, const struct prefetch_segment *segs, guint nsegs)
{
	struct job *j;
	guint total = 0;

	for (guint i = 0; i < nsegs; i++)
		total += segs[i].n;
	/* Nothing to ask for: whatever is queued or running goes on. */
	if (!p || total == 0)
		return;
	j = g_new0(struct job, 1);
	j->segs = g_ptr_array_new_with_free_func(seg_free);
	for (guint i = 0; i < nsegs; i++) {
		struct seg *g = g_new0(struct seg, 1);

		g->mailbox = g_strdup(segs[i].mailbox);
		g->uidvalidity = segs[i].uidvalidity;
		g->cache_key = mcache_folder_key(segs[i].mailbox, segs[i].uidvalidity);
		g->items = g_array_sized_new(FALSE, FALSE, sizeof(struct prefetch_item), segs[i].n);
		g_array_append_vals(g->items, segs[i].items, segs[i].n);
		g_ptr_array_add(j->segs, g);
	}
	mfs_mutex_lock(&p->lock);
	job_free(p->next);
	p->next = j;
	mfs_cond_signal(&p->cond);
	mfs_mutex_unlock(&p->lock);
}

void prefetch_counters(struct prefetch *p, guint64 *messages, guint64 *bytes, guint64 *unused)
{
	mfs_mutex_lock(&p->lock);
	*messages = p->messages;
	*bytes = p->bytes;
	*unused = p->unused;
	mfs_mutex_unlock(&p->lock);
}
