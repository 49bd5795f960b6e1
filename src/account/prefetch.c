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
/* How long a job waits for a connection that has its folder selected
   (pool_get_selected) before it takes another and selects it there. */
#define PREFETCH_SELECTED_WAIT_US (20 * 1000)

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
	gboolean room_wanted;	   /* waiting for readers (wait_for_room) */
	gboolean room_freed;	   /* ...and one came (prefetch_room_freed) */
	GThread *thread;
	guint64 messages; /* bodies received */
	guint64 bytes;	  /* their bytes, kept or not */
	guint64 unused;	  /* bytes received that the cache could not keep */
};

/* A segment of the running job, once begun. Only the prefetch thread
   touches it. */
struct run {
	const struct seg *g; /* the job's: kept while the job runs */
	guint index;	     /* g's place in the job */
	GArray *queue;	     /* struct prefetch_item: its messages to fetch, in order */
	guint next;	     /* queue[0, next) sent for, or passed over */
	GHashTable *wanted;  /* GUINT_TO_POINTER(uid): ever queued (never twice) */
	/* Sent for and not arrived: GUINT_TO_POINTER(uid) -> the bytes
	   reserved for it (GSIZE_TO_POINTER); claimed in p->inflight. */
	GHashTable *claimed;
	/* The session has its mailbox selected as it was listed: no EXAMINE
	   was needed, or the EXAMINE said the segment's UIDVALIDITY. No body
	   of it is kept before. */
	gboolean verified;
	gboolean examined; /* its EXAMINE was sent, or was not needed */
	gboolean failed;   /* its EXAMINE failed: nothing more is sent for it */
};

/* A command of the job in flight. */
struct sent {
	guint id;
	struct run *r;
	gboolean select; /* r's EXAMINE */
	GArray *uids;	 /* a fetch's UIDs (guint32) */
};

/*
 * The running job on its session. Commands of several segments are in
 * flight together, so the link does not idle between folders: the next
 * segment's EXAMINE and fetches go out as soon as the one before has sent
 * its last, while its answers still come. A server answers in the order the
 * commands went out, so the command an untagged response belongs to is
 * known from the completions read (imap_session_completed): each EXAMINE's
 * UIDVALIDITY is checked against its own segment, and each body goes to its
 * own segment's claims, under its own cache key.
 */
struct stream {
	struct prefetch *p;
	struct imap_session *s;
	struct job *j;
	GPtrArray *runs; /* struct run *: the segments begun, in order */
	/* Up to PIPELINE commands, and the EXAMINE sent with the last one */
	struct sent ring[PIPELINE + 1];
	guint head, count;
	guint64 base;	/* completions the session had read before the job */
	guint64 sent_n; /* the job's commands sent */
	guint selecting; /* EXAMINEs in flight */
	struct run *at;	/* the run whose answer is being read */
	gboolean taken; /* the response's body went to the cache (take_body) */
	struct body_sink body;
	struct imap_handler body_h; /* the sink's own */
	struct imap_handler h;	    /* routes each response to its command's run */
	GHashTable *none;	    /* the sink's wanted when no command is answered */
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

static void run_free(gpointer data)
{
	struct run *r = data;

	g_array_unref(r->queue);
	g_hash_table_unref(r->wanted);
	g_hash_table_unref(r->claimed);
	g_free(r);
}

/* The claim of uid (sent for) ends: its reservation and claim go back,
   and a reader waiting for it looks in the cache again. */
static void give_back(struct prefetch *p, struct run *r, guint32 uid)
{
	gpointer reserved;

	if (!g_hash_table_lookup_extended(r->claimed, GUINT_TO_POINTER(uid), NULL, &reserved))
		return;
	g_hash_table_remove(r->claimed, GUINT_TO_POINTER(uid));
	mcache_ahead_unreserve(p->cache, GPOINTER_TO_SIZE(reserved));
	inflight_done(p->inflight, r->g->cache_key, uid);
}

static void give_back_all(struct prefetch *p, struct run *r, const GArray *uids)
{
	for (guint i = 0; i < uids->len; i++)
		give_back(p, r, g_array_index(uids, guint32, i));
}

/* A body arrived whole, in the answer to one of run st->at's fetches:
   into the cache, held there for its reader (the room was reserved when it
   was sent for). */
static void take_body(void *ud, guint32 uid, const GByteArray *bytes)
{
	struct stream *st = ud;
	struct prefetch *p = st->p;
	struct run *r = st->at;
	struct mcache_entry *e;
	gboolean kept;

	if (!r || !g_hash_table_contains(r->claimed, GUINT_TO_POINTER(uid)))
		return; /* not sent for by us (answered twice) */
	st->taken = TRUE;
	e = mcache_get(p->cache, r->g->mailbox, r->g->uidvalidity, uid);
	/* A failed write is no error: the reader will fetch it. */
	kept = !mcache_entry_complete(e, NULL) &&
	       mcache_entry_write(e, 0, bytes->data, bytes->len) == 0 &&
	       mcache_entry_finish(e, bytes->len) == 0;
	if (kept)
		(void)mcache_entry_hold_ahead(e);
	mcache_entry_unref(e);
	mfs_mutex_lock(&p->lock);
	p->messages++;
	p->bytes += bytes->len;
	if (!kept)
		p->unused += bytes->len;
	mfs_mutex_unlock(&p->lock);
	mfs_log_debug(MFS_LOG_CACHE, "prefetch: UID %u of %s: %u bytes%s", uid, r->g->mailbox,
		      bytes->len, kept ? "" : ", could not be kept");
	give_back(p, r, uid);
}

/* The command whose answer is being read: the one after the last
   completion read. NULL past the last sent (unsolicited data). */
static struct sent *answering(struct stream *st)
{
	guint64 no = imap_session_completed(st->s) - st->base;
	guint64 head_no = st->sent_n - st->count;

	if (no < head_no || no >= st->sent_n)
		return NULL;
	return &st->ring[(st->head + (guint)(no - head_no)) % (PIPELINE + 1)];
}

static void on_untagged(void *ud, const struct imap_response *resp)
{
	struct stream *st = ud;
	struct sent *c = answering(st);
	gboolean body;
	guint32 uv;

	/* The EXAMINE's own UIDVALIDITY: its segment's bodies are kept only
	   when it is the generation they were listed under. */
	if (c && c->select && resp->status == IMAP_STATUS_OK && resp->code &&
	    strcmp(resp->code, "UIDVALIDITY") == 0 && resp->code_args.type == IMAP_V_LIST &&
	    resp->code_args.n >= 1 && imap_value_u32(&resp->code_args.items[0], &uv))
		c->r->verified = uv == c->r->g->uidvalidity;
	st->at = c ? c->r : NULL;
	st->body.wanted = c ? c->r->claimed : st->none;
	st->body.discard = !c || !c->r->verified;
	body = st->body.cur_open && resp->keyword && strcmp(resp->keyword, "FETCH") == 0;
	st->taken = FALSE;
	st->body_h.untagged(st->body_h.ud, resp);
	if (body && !st->taken) {
		/* A body that crossed the link and is not kept (another
		   generation, answered twice): fetched for nothing. */
		mfs_mutex_lock(&st->p->lock);
		st->p->messages++;
		st->p->bytes += st->body.cur->len;
		st->p->unused += st->body.cur->len;
		mfs_mutex_unlock(&st->p->lock);
	}
}

static gboolean on_literal_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct stream *st = ud;

	return st->body_h.literal_begin(st->body_h.ud, seq, section, size);
}

static void on_literal_chunk(void *ud, const void *data, size_t len)
{
	struct stream *st = ud;

	st->body_h.literal_chunk(st->body_h.ud, data, len);
}

/* Cached whole, or a reader is filling it: not the prefetcher's to fetch. */
static gboolean cached(struct prefetch *p, const struct seg *g, guint32 uid)
{
	return mcache_peek_present(p->cache, g->cache_key, uid);
}

/*
 * Claim the next messages of r's queue for one command, each with its room
 * reserved in the cache, and return them as "u1,u2,..." (their UIDs also
 * in uids); those another fetch has (the other prefetcher, a reader) are
 * passed over. NULL when nothing is to be sent now: the queue is done, or
 * (*no_room) the cache cannot keep the next one beside what is open and
 * held for readers (a body that could never be fetched ahead, over half
 * the cache or `prefetch`, is passed over).
 */
static char *next_command(struct prefetch *p, struct run *r, GArray *uids, gboolean *no_room)
{
	const struct seg *g = r->g;
	GString *set = g_string_new(NULL);
	guint64 bytes = 0;
	guint n = 0;

	*no_room = FALSE;
	while (r->next < r->queue->len && n < UIDS_PER_COMMAND) {
		const struct prefetch_item *it =
			&g_array_index(r->queue, struct prefetch_item, r->next);

		if (n > 0 && bytes + it->size > BYTES_PER_COMMAND)
			break;
		enum mcache_room room = mcache_ahead_reserve(p->cache, it->size, p->cap);

		if (room == MCACHE_ROOM_NEVER) {
			/* Larger than may ever be fetched ahead: the
			   reader's ranged reads will take it. */
			r->next++;
			continue;
		}
		if (room == MCACHE_ROOM_LATER) {
			*no_room = TRUE;
			break;
		}
		r->next++;
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
		g_hash_table_insert(r->claimed, GUINT_TO_POINTER(it->uid),
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
 * come for what is held (prefetch_room_freed, or the next poll: a body
 * can also leave the cache's count by eviction, which tells nobody) or for
 * a newer request. FALSE: stop, or no reader came for ROOM_WAIT_MAX_US
 * (the connection goes back to the pool).
 */
static gboolean wait_for_room(struct prefetch *p, gint64 *waited)
{
	gint64 end = g_get_monotonic_time() + ROOM_POLL_US;
	gboolean go_on;

	mfs_mutex_lock(&p->lock);
	p->room_wanted = TRUE;
	if (!p->stopping && !p->next && !p->room_freed)
		mfs_cond_wait_until(&p->cond, &p->lock, end);
	p->room_wanted = FALSE;
	p->room_freed = FALSE;
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

/* Whether h (the same mailbox as r) holds a message r never queued that
   is neither cached nor too big to prefetch. */
static gboolean news_for(struct prefetch *p, const struct run *r, const struct seg *h)
{
	for (guint n = 0; n < h->items->len; n++) {
		const struct prefetch_item *it = &g_array_index(h->items, struct prefetch_item, n);

		if (it->size <= PREFETCH_MAX_BODY &&
		    !g_hash_table_contains(r->wanted, GUINT_TO_POINTER(it->uid)) &&
		    !cached(p, r->g, it->uid))
			return TRUE;
	}
	return FALSE;
}

/* Queue what items holds that r has not queued and is not cached yet. */
static void enqueue(struct prefetch *p, struct run *r, const GArray *items)
{
	for (guint i = 0; i < items->len; i++) {
		const struct prefetch_item *it = &g_array_index(items, struct prefetch_item, i);

		if (it->size > PREFETCH_MAX_BODY ||
		    g_hash_table_contains(r->wanted, GUINT_TO_POINTER(it->uid)) ||
		    cached(p, r->g, it->uid))
			continue;
		g_hash_table_add(r->wanted, GUINT_TO_POINTER(it->uid));
		g_array_append_val(r->queue, *it);
	}
}

/* What of r's queue is not sent yet is dropped: the reader passed it. */
static void run_truncate(struct run *r)
{
	for (guint i = r->next; i < r->queue->len; i++)
		g_hash_table_remove(
			r->wanted,
			GUINT_TO_POINTER(g_array_index(r->queue, struct prefetch_item, i).uid));
	g_array_set_size(r->queue, r->next);
}

static gboolean same_seg(const struct seg *a, const struct seg *b)
{
	return strcmp(a->mailbox, b->mailbox) == 0 && a->uidvalidity == b->uidvalidity;
}

/*
 * A newer request while the job runs. Only the last segment begun can
 * still be sent for (the session has its mailbox selected). When the
 * request holds that mailbox at some segment q, and before q nothing to
 * fetch but what the job's earlier segments queued already (the reader is
 * still in the folder before, or went on in the same one, or the walk asks
 * for the same folders again), it joins: segment q's items replace what of
 * the queue is not sent yet (the reader passed what they leave out), the
 * request's later segments replace the job's, and the pipeline never
 * drains. Else (or on a stop) FALSE: send no more.
 */
static gboolean take_newer(struct stream *st)
{
	struct prefetch *p = st->p;
	struct job *n;
	struct run *last;
	guint first, q;

	mfs_mutex_lock(&p->lock);
	if (p->stopping) {
		mfs_mutex_unlock(&p->lock);
		return FALSE;
	}
	n = g_steal_pointer(&p->next);
	mfs_mutex_unlock(&p->lock);
	if (!n)
		return TRUE;
	last = st->runs->len ? st->runs->pdata[st->runs->len - 1] : NULL;
	/* The segments not done yet: from the one whose answers come next. */
	first = st->count ? st->ring[st->head].r->index : last ? last->index : 0;
	for (q = 0; last && q < n->segs->len; q++) {
		const struct seg *h = n->segs->pdata[q];
		guint i = first;

		while (i < st->runs->len && !same_seg(h, ((struct run *)st->runs->pdata[i])->g))
			i++;
		if (i == last->index)
			break;
		if (i < st->runs->len ? news_for(p, st->runs->pdata[i], h) : seg_has_work(p, h)) {
			q = n->segs->len; /* something to fetch before it: no join */
			break;
		}
	}
	if (!last || q == n->segs->len) {
		/* Put it back for the loop to start, unless a newer one came. */
		mfs_mutex_lock(&p->lock);
		if (!p->next)
			p->next = g_steal_pointer(&n);
		mfs_mutex_unlock(&p->lock);
		job_free(n);
		return FALSE;
	}
	run_truncate(last);
	if (!last->failed)
		enqueue(p, last, ((struct seg *)n->segs->pdata[q])->items);
	g_ptr_array_remove_range(st->j->segs, last->index + 1,
				 st->j->segs->len - (last->index + 1));
	for (guint i = q + 1; i < n->segs->len; i++)
		g_ptr_array_add(st->j->segs, g_steal_pointer(&n->segs->pdata[i]));
	job_free(n);
	return TRUE;
}

static void push(struct stream *st, guint id, struct run *r, gboolean select, GArray *uids)
{
	struct sent *c = &st->ring[(st->head + st->count) % (PIPELINE + 1)];

	*c = (struct sent){ .id = id, .r = r, .select = select, .uids = uids };
	st->count++;
	st->sent_n++;
}

/* Begin the job's next segment: what of it is to be fetched. */
static void begin_run(struct stream *st)
{
	const struct seg *g = st->j->segs->pdata[st->runs->len];
	struct run *r = g_new0(struct run, 1);

	r->g = g;
	r->index = st->runs->len;
	r->queue = g_array_new(FALSE, FALSE, sizeof(struct prefetch_item));
	r->wanted = g_hash_table_new(g_direct_hash, g_direct_equal);
	r->claimed = g_hash_table_new(g_direct_hash, g_direct_equal);
	g_ptr_array_add(st->runs, r);
	enqueue(st->p, r, g->items);
}

/* Before r's first fetch: its EXAMINE, unless the session has the mailbox
   selected already (sent only now: a segment whose messages another fetch
   has costs no command). FALSE: the session could not send it (*err). */
static gboolean examine(struct stream *st, struct run *r, GError **err)
{
	struct pending_select ps;
	guint id;

	r->examined = TRUE;
	/* With an EXAMINE in flight, what the session says is selected is
	   not yet what the server has: always EXAMINE then. */
	if (st->selecting == 0) {
		fetch_select_send(st->s, r->g->mailbox, TRUE, r->g->uidvalidity, &ps, err);
		if (!ps.needed) {
			r->verified = TRUE;
			return TRUE;
		}
		id = ps.id;
	} else {
		id = imap_select_send(st->s, r->g->mailbox, TRUE, NULL, err);
	}
	if (!id)
		return FALSE;
	push(st, id, r, TRUE, NULL);
	st->selecting++;
	return TRUE;
}

/* Read up to the oldest command's completion. A fetch gives back the
   claims of what it did not bring (expunged, another generation, a broken
   link: it will not come); a failed EXAMINE ends its segment. */
static void finish_head(struct stream *st)
{
	struct sent *c = &st->ring[st->head];

	if (c->select) {
		GError *e = NULL;

		/* The generation is checked as the EXAMINE's answer is read
		   (on_untagged): with several in flight, the session's
		   record of the selected mailbox is the last one's. */
		if (imap_select_finish(st->s, c->id, c->r->g->mailbox, TRUE, &st->h, NULL, &e) < 0 ||
		    !c->r->verified) {
			/* Another UIDVALIDITY, or a folder that cannot be
			   selected: nothing of it is kept or sent for, and
			   the next segment may do better. */
			c->r->verified = FALSE;
			c->r->failed = TRUE;
			run_truncate(c->r);
			mfs_log_debug(MFS_LOG_CACHE, "prefetch in %s: %s", c->r->g->mailbox,
				      e ? e->message : "another UIDVALIDITY");
			g_clear_error(&e);
		}
		st->selecting--;
	} else {
		imap_wait(st->s, c->id, &st->h, NULL, NULL);
		give_back_all(st->p, c->r, c->uids);
		g_array_unref(c->uids);
	}
	st->head = (st->head + 1) % (PIPELINE + 1);
	st->count--;
}

/*
 * Fetch the job's segments with up to PIPELINE commands in flight, sending
 * one as each completes, while the cache has room for what is fetched
 * ahead (see next_command); a segment's EXAMINE and first fetches go out
 * as soon as the one before has sent its last. Returns with every command
 * answered. FALSE: a stop, a newer request elsewhere, readers that do not
 * come for what was fetched, or a broken session.
 */
static gboolean stream_job(struct stream *st, GError **err)
{
	struct prefetch *p = st->p;
	gboolean go_on = TRUE, newer_ok = TRUE;
	gint64 waited = 0;

	for (;;) {
		gboolean no_room = FALSE;

		while (go_on && st->count < PIPELINE && imap_session_alive(st->s)) {
			struct run *r =
				st->runs->len ? st->runs->pdata[st->runs->len - 1] : NULL;

			if (r && !r->failed && r->next < r->queue->len) {
				GArray *uids = g_array_new(FALSE, FALSE, sizeof(guint32));
				g_autofree char *set = next_command(p, r, uids, &no_room);
				guint id;

				if (!set) {
					g_array_unref(uids);
					if (no_room)
						break;
					continue; /* the rest was passed over */
				}
				id = 0;
				if (r->examined || examine(st, r, err))
					id = imap_send(st->s, "UID FETCH %s (BODY.PEEK[])", set);
				if (!id) {
					give_back_all(p, r, uids);
					g_array_unref(uids);
					go_on = FALSE;
					break;
				}
				push(st, id, r, FALSE, uids);
				waited = 0;
				continue;
			}
			/* Its queue is sent: on to the next segment. */
			if (st->runs->len >= st->j->segs->len)
				break;
			begin_run(st);
		}
		if (st->count == 0) {
			if (no_room && go_on && imap_session_alive(st->s)) {
				if (!wait_for_room(p, &waited))
					go_on = FALSE;
				else if (!take_newer(st))
					go_on = newer_ok = FALSE;
				continue;
			}
			break;
		}
		finish_head(st);
		if (go_on && !take_newer(st))
			go_on = newer_ok = FALSE;
	}
	return newer_ok && imap_session_alive(st->s);
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
	const struct seg *first = j->segs->pdata[0];
	struct stream st = { .p = p, .j = j };
	GError *err = NULL;

	if (!has_work(p, j))
		return;
	/* The reader's own fetch has often just selected the folder: its
	   connection, free again a round trip later, spares the server a
	   second open of the folder. */
	st.s = pool_get_selected(p->pool, first->mailbox, PREFETCH_SELECTED_WAIT_US, &err);
	if (!st.s)
		goto out;
	mfs_mutex_lock(&p->lock);
	p->busy = st.s;
	if (p->stopping)
		pool_abort_session(p->pool, st.s);
	mfs_mutex_unlock(&p->lock);
	st.runs = g_ptr_array_new_with_free_func(run_free);
	st.none = g_hash_table_new(g_direct_hash, g_direct_equal);
	st.body = (struct body_sink){ .limit = PREFETCH_MAX_BODY, .take = take_body, .ud = &st };
	body_sink_init(&st.body, &st.body_h);
	st.h = (struct imap_handler){ .untagged = on_untagged,
				      .literal_begin = on_literal_begin,
				      .literal_chunk = on_literal_chunk,
				      .ud = &st };
	st.base = imap_session_completed(st.s);
	(void)stream_job(&st, &err);
	/* Every command was waited for: nothing stays claimed. */
	body_sink_clear(&st.body);
	g_hash_table_unref(st.none);
	g_ptr_array_unref(st.runs);
	mfs_mutex_lock(&p->lock);
	p->busy = NULL;
	mfs_mutex_unlock(&p->lock);
	(void)pool_put(p->pool, st.s);
out:
	if (err)
		mfs_log_debug(MFS_LOG_CACHE, "prefetch in %s stopped: %s", first->mailbox,
			      err->message);
	g_clear_error(&err);
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

void prefetch_room_freed(struct prefetch *p)
{
	if (!p)
		return;
	mfs_mutex_lock(&p->lock);
	if (p->room_wanted) {
		p->room_freed = TRUE;
		mfs_cond_broadcast(&p->cond);
	}
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
