/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/resync.h"

#include "model/names.h"
#include "protocol/imap_objid.h"
#include "protocol/uidset.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>

/* VANISHED text kept at most (a server naming every UID one by one in a
   huge folder): beyond it, the folder is listed in full instead. */
#define VANISHED_TEXT_MAX   (16 * 1024 * 1024)
#define VANISHED_RANGES_MAX 4000000u
/* Messages a first listing makes room for before they arrive, at most. */
#define PRESIZE_MAX (1u << 20)

/* What the untagged responses of one resync are collected into. */
struct collect {
	struct header_sink hdr; /* first: the literal callbacks get the collector */
	struct resync_result *out;
	GString *vanished; /* the sets of every VANISHED, joined by ',' */
	gboolean vanished_overflow;
	/* FETCH responses taken: with RFC822.SIZE (new messages) when their UID
	   is at least new_from; else FLAGS-only ones (update_only) up to
	   update_to. */
	guint32 new_from;
	guint32 update_to;
	guint32 new_count;
	guint32 new_max; /* the highest UID of a new message taken, 0 if none */
	/* Name new messages as they arrive (names=subject): the slugs are
	   made while the server is still sending, not after the last byte. */
	gboolean name_new;
	/* The object id item asked for (EMAILID, X-GM-MSGID), or NULL: new
	   messages' objid is read only then, so that a listing holds ids
	   exactly when it was made asking for them. */
	const char *objid_item;
	/* What a listing asks for each new message (listing_items). */
	char items[128];
	/* A first listing handed over in chunks (resync_stream), or NULL;
	   the first chunk the caller could not take in stops the handing.
	   stream_pending: the stream, until begun (list_cold). */
	struct resync_stream *stream;
	struct resync_stream *stream_pending;
	struct imap_session *stream_session; /* its selection names the UIDVALIDITY */
	guint32 stream_uidvalidity;
	int stream_rc;
	/* "UID FETCH $ (UID INTERNALDATE)" was sent: a FETCH with a date
	   and no size is its answer, the newest arrival's. */
	gboolean want_newest;
	gint64 newest;
};

/* A first listing is handed over this many messages at a time: a readdir
   waits for the first chunk, and the listing held is bounded by one. */
#define RESYNC_CHUNK 1024u

/* The messages collected so far go to the stream's taker. */
static void hand_over_chunk(struct collect *c)
{
	struct resync_result *out = c->out;
	const struct tree_delta d = { .msgs = (const struct tree_msg_info *)out->msgs->data,
				      .n = out->msgs->len };
	int rc;

	if (out->msgs->len == 0 || c->stream_rc < 0)
		return;
	rc = c->stream->chunk(c->stream->ud, c->stream_uidvalidity, &d);
	if (rc < 0) {
		c->stream_rc = rc;
		return;
	}
	g_array_set_size(out->msgs, 0);
	g_string_chunk_clear(out->strings);
}

/* "Subject: a\r\n b\r\n\r\n" -> "a\r\n b": the raw value, for the slug rule
   (a copy, freed by the caller: only the name made from it is kept, so a
   million-message listing does not hold a million subjects). */
static char *subject_value(const char *s, size_t len)
{
	const char *colon, *end;

	if (len < 8 || g_ascii_strncasecmp(s, "subject", 7) != 0)
		return NULL;
	colon = memchr(s, ':', len);
	if (!colon)
		return NULL;
	end = s + len;
	while (end > colon + 1 && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	return g_strndup(colon + 1, end - (colon + 1));
}

static void take_vanished(struct collect *c, const struct imap_response *r)
{
	const struct imap_value *set = NULL;

	/* "* VANISHED (EARLIER) 3:5" during a resync; "* VANISHED 7" when
	   something goes while we list: both are gone. */
	for (size_t i = 0; i < r->args.n; i++)
		if (r->args.items[i].type == IMAP_V_ATOM)
			set = &r->args.items[i];
	if (!set || c->vanished_overflow)
		return;
	if (c->vanished->len + set->len + 1 > VANISHED_TEXT_MAX) {
		c->vanished_overflow = TRUE;
		return;
	}
	if (c->vanished->len)
		g_string_append_c(c->vanished, ',');
	g_string_append_len(c->vanished, set->str, (gssize)set->len);
}

/* The stream's taker begins, with the newest arrival's date if known. */
static void begin_stream(struct collect *c)
{
	struct resync_stream *st = c->stream_pending;

	c->stream_pending = NULL;
	if (!st)
		return;
	c->stream_uidvalidity = imap_session_select_info(c->stream_session)->uidvalidity;
	if (st->begin(st->ud, c->stream_uidvalidity, c->newest)) {
		st->begun = TRUE;
		c->stream = st;
	}
}

/* The items take_fetch reads, found in one pass over each FETCH. */
enum { ITEM_UID, ITEM_SIZE, ITEM_DATE, ITEM_FLAGS, ITEM_SUBJECT, N_ITEMS };
static const char *const fetch_items[N_ITEMS] = {
	[ITEM_UID] = "UID",
	[ITEM_SIZE] = "RFC822.SIZE",
	[ITEM_DATE] = "INTERNALDATE",
	[ITEM_FLAGS] = "FLAGS",
	[ITEM_SUBJECT] = "BODY[HEADER.FIELDS (SUBJECT)]",
};

static void take_fetch(struct collect *c, const struct imap_response *r)
{
	struct tree_msg_info m = {0};
	const struct imap_value *item[N_ITEMS], *v;
	guint64 size;
	gboolean has_size;
	gint64 date;

	imap_fetch_items(r, fetch_items, item, N_ITEMS);
	if (!imap_value_u32(item[ITEM_UID], &m.uid) || m.uid == 0)
		return;
	has_size = imap_value_u64(item[ITEM_SIZE], &size);
	/* The date's own FETCH (want_newest) has a date and no size. */
	v = !has_size && c->want_newest ? item[ITEM_DATE] : NULL;
	if (v && imap_parse_internaldate(imap_value_str(v), &date)) {
		/* A server may answer it amid the listing (dovecot runs the two
		   FETCHes side by side): the taker begins when it comes. */
		c->newest = MAX(c->newest, date);
		begin_stream(c);
		return;
	}
	v = item[ITEM_FLAGS];
	if (v) {
		g_autofree char *flags = imap_flags_to_string(v);

		m.flags = g_string_chunk_insert_const(c->out->strings, flags);
	}
	if (has_size && m.uid >= c->new_from) {
		m.size = size;
		v = item[ITEM_DATE];
		if (!v || !imap_parse_internaldate(imap_value_str(v), &m.internaldate))
			m.internaldate = 0;
		if (c->objid_item) {
			char id[IMAP_OBJID_MAX];

			if (imap_objid_from_fetch(r, id) > 0)
				m.objid = g_string_chunk_insert(c->out->strings, id);
		}
		if (c->name_new) {
			/* The Subject is fetched only for the name. */
			g_autofree char *subject = NULL;
			g_autofree char *slug = NULL;
			g_autofree char *name = NULL;

			v = item[ITEM_SUBJECT];
			if (v && v->type == IMAP_V_STREAMED && c->hdr.active)
				subject = subject_value((const char *)c->hdr.buf->data,
							c->hdr.buf->len);
			else if (v && imap_value_str(v))
				subject = subject_value(v->str, v->len);
			slug = names_subject_slug(subject);
			name = names_message_name(m.uid, slug);
			m.name = g_string_chunk_insert(c->out->strings, name);
		}
		c->new_count++;
		c->new_max = MAX(c->new_max, m.uid);
	} else if (m.uid <= c->update_to) {
		/* A message the caller holds: its flags (NULL: FETCH (UID) only
		   says it is still there). */
		m.update_only = TRUE;
	} else {
		/* New, but without what a file needs: the new-range FETCH lists it. */
		c->hdr.active = FALSE;
		return;
	}
	c->hdr.active = FALSE;
	g_array_append_val(c->out->msgs, m);
	if (c->stream && c->out->msgs->len >= RESYNC_CHUNK)
		hand_over_chunk(c);
}

static void on_untagged(void *ud, const struct imap_response *r)
{
	struct collect *c = ud;

	if (!r->keyword)
		return;
	if (strcmp(r->keyword, "FETCH") == 0)
		take_fetch(c, r);
	else if (strcmp(r->keyword, "VANISHED") == 0)
		take_vanished(c, r);
}

static int fetch(struct imap_session *s, struct collect *c, GError **err, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

/* The handler every command of a resync is read with. */
static struct imap_handler collector(struct collect *c)
{
	const struct imap_handler h = { .untagged = on_untagged,
					.literal_begin = header_sink_begin,
					.literal_chunk = header_sink_chunk,
					.ud = c };

	return h;
}

static int fetch(struct imap_session *s, struct collect *c, GError **err, const char *fmt, ...)
{
	const struct imap_handler h = collector(c);
	g_autofree char *cmd = NULL;
	va_list ap;

	va_start(ap, fmt);
	cmd = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return imap_run(s, &h, NULL, err, "%s", cmd);
}

/* The items of every FETCH that may bring new messages, into c->items. */
static void listing_items(struct collect *c, gboolean want_subject)
{
	g_snprintf(c->items, sizeof(c->items), "(UID RFC822.SIZE INTERNALDATE FLAGS%s%s%s)",
		   c->objid_item ? " " : "", c->objid_item ? c->objid_item : "",
		   want_subject ? " BODY.PEEK[HEADER.FIELDS (SUBJECT)]" : "");
}

/* EMAILID where the server has OBJECTID, else Gmail's X-GM-MSGID, else none. */
static const char *objid_item(struct imap_session *s, gboolean want_objids)
{
	if (!want_objids)
		return NULL;
	if (imap_session_has(s, IMAP_CAP_OBJECTID))
		return "EMAILID";
	if (imap_session_has(s, IMAP_CAP_X_GM_EXT_1))
		return "X-GM-MSGID";
	return NULL;
}

static void start_over(struct collect *c)
{
	g_array_set_size(c->out->msgs, 0);
	g_string_truncate(c->vanished, 0);
	c->vanished_overflow = FALSE;
	c->new_count = 0;
}

/* Whether the SELECT alone proves nothing changed since known. */
static gboolean unchanged(const struct resync_known *k, const struct imap_select_info *info)
{
	return k->highestmodseq && info->highestmodseq == k->highestmodseq &&
	       (!k->uidnext || !info->uidnext || info->uidnext == k->uidnext) &&
	       info->exists == k->count;
}

/* Mail arriving while the new range is fetched: fetched again this many
   times at most (then the caller's count check sees what is left). */
#define FETCH_NEW_AGAIN_MAX 8

/*
 * The messages the caller does not know yet: UIDs from max_uid + 1 on.
 * Mail that arrives meanwhile is announced by an EXISTS during the FETCH
 * (dovecot's answer does not hold it yet): it is this session's to fetch
 * at once, from the UID after the last one taken, with no new SELECT.
 */
static int fetch_new(struct imap_session *s, struct collect *c, const struct resync_known *k,
		     const struct imap_select_info *info, GError **err)
{
	guint32 seen = info->exists;
	int rc;

	if (info->exists == 0 || (info->uidnext && info->uidnext <= k->max_uid + 1))
		return 0;
	rc = fetch(s, c, err, "UID FETCH %u:* %s", k->max_uid + 1, c->items);
	for (int i = 0; rc == 0 && i < FETCH_NEW_AGAIN_MAX &&
			imap_session_select_info(s)->exists > seen;
	     i++) {
		seen = imap_session_select_info(s)->exists;
		/* n:* with n past every UID answers the highest one, taken
		   already: from new_from on only. */
		c->new_from = MAX(k->max_uid, c->new_max) + 1;
		rc = fetch(s, c, err, "UID FETCH %u:* %s", c->new_from, c->items);
	}
	return rc;
}

static int resync_incremental(struct imap_session *s, struct collect *c,
			      const struct resync_known *k, const struct imap_select_info *info,
			      GError **err)
{
	struct resync_result *out = c->out;
	gboolean qresync = imap_session_qresync(s) && k->highestmodseq && info->highestmodseq;
	gboolean condstore = k->highestmodseq && info->highestmodseq;
	int rc;

	if (unchanged(k, info)) {
		out->how = RESYNC_UNCHANGED;
		return 0;
	}
	rc = fetch_new(s, c, k, info, err);
	if (rc < 0)
		return rc;
	if (qresync) {
		/* What vanished and what changed came with the SELECT. */
		out->how = RESYNC_QRESYNC;
		return 0;
	}
	if (k->max_uid == 0) {
		out->how = condstore ? RESYNC_CONDSTORE : RESYNC_UIDS;
		return 0;
	}
	if (!condstore) {
		/* Every known UID with its flags: what is missing below the new
		   range went away. */
		out->how = RESYNC_UIDS;
		out->delta.complete_below = (guint64)k->max_uid + 1;
		return fetch(s, c, err, "UID FETCH 1:%u (UID FLAGS)", k->max_uid);
	}
	out->how = RESYNC_CONDSTORE;
	rc = fetch(s, c, err, "UID FETCH 1:%u (UID FLAGS) (CHANGEDSINCE %" G_GUINT64_FORMAT ")",
		   k->max_uid, k->highestmodseq);
	if (rc < 0)
		return rc;
	/* Flags came only for what changed; expunges show in the count. */
	if (imap_session_select_info(s)->exists == (guint64)k->count + c->new_count)
		return 0;
	out->delta.complete_below = (guint64)k->max_uid + 1;
	return fetch(s, c, err, "UID FETCH 1:%u (UID)", k->max_uid);
}

static gboolean finish_vanished(struct collect *c)
{
	if (c->vanished_overflow)
		return FALSE;
	if (c->vanished->len == 0)
		return TRUE;
	if (!uidset_parse(c->vanished->str, G_MAXUINT32, VANISHED_RANGES_MAX, c->out->vanished)) {
		g_autofree char *esc = mfs_log_escape(c->vanished->str, c->vanished->len, 80);

		mfs_log_warn("unusable VANISHED set from the server (%s); listing in full", esc);
		return FALSE;
	}
	c->out->delta.vanished = c->out->vanished;
	return TRUE;
}

/*
 * Nothing known: SELECT and the listing in one round trip. With a stream
 * that wants it, where the server has ESORT and SEARCHRES, the newest
 * arrival's date is asked for between the two, and the stream begins when
 * it is in (or when it is known not to come); from then on the listing is
 * handed over in chunks.
 */
static int list_cold(struct imap_session *s, struct collect *c, const char *wire,
		     gboolean readonly, struct resync_stream *stream,
		     struct imap_select_info *info, GError **err)
{
	const struct imap_handler h = collector(c);
	struct resync_result *out = c->out;
	GError *fetch_err = NULL;
	guint sel, sort = 0, first = 0, list;
	int rc, frc;

	out->how = RESYNC_FULL;
	out->delta.complete_below = TREE_COMPLETE;
	sel = imap_select_send(s, wire, readonly, NULL, err);
	if (sel && stream && stream->want_newest && imap_session_has(s, IMAP_CAP_ESORT) &&
	    imap_session_has(s, IMAP_CAP_SEARCHRES)) {
		/* ESORT's MIN is the first message in sort order (RFC 5267). */
		sort = imap_send(s, "UID SORT RETURN (SAVE MIN) (REVERSE ARRIVAL) UTF-8 ALL");
		first = sort ? imap_send(s, "UID FETCH $ (UID INTERNALDATE)") : 0;
	}
	list = sel ? imap_send(s, "UID FETCH 1:* %s", c->items) : 0;
	/* Set before the SELECT is read: one read may take in the answers
	   behind it too, the date among them. */
	if (sel && stream) {
		c->stream_pending = stream;
		c->stream_session = s;
		c->want_newest = first != 0;
	}
	rc = imap_select_finish(s, sel, wire, readonly, &h, info, err);
	if (rc == 0 && out->msgs->len == 0 && info->exists > 0) {
		/* Room for the listing at once, not by doubling (the count is
		   the server's word: bounded); a streamed one needs a chunk. */
		g_array_unref(out->msgs);
		out->msgs = g_array_sized_new(FALSE, FALSE, sizeof(struct tree_msg_info),
					      (guint)MIN(info->exists,
							 stream ? RESYNC_CHUNK : PRESIZE_MAX));
	}
	/* Refused (a server whose SORT wants another charset): no date first;
	   the listing gives it at its end, as without ESORT. */
	if (sort)
		imap_wait(s, sort, &h, NULL, NULL);
	if (first)
		imap_wait(s, first, &h, NULL, NULL);
	if (rc == 0)
		begin_stream(c);
	c->stream_pending = NULL;
	frc = list ? imap_wait(s, list, &h, NULL, &fetch_err) : 0;
	if (rc == 0) {
		out->uidvalidity = info->uidvalidity;
		out->uidnext = info->uidnext;
		out->highestmodseq = info->highestmodseq;
		/* Some servers refuse "1:*" in an empty mailbox: that is no error. */
		if (frc < 0 && (info->exists > 0 || !imap_session_alive(s))) {
			g_propagate_error(err, g_steal_pointer(&fetch_err));
			rc = frc;
		}
	}
	g_clear_error(&fetch_err);
	if (c->stream) {
		/* What was handed over is the caller's: the rest adds to it. */
		out->delta.complete_below = 0;
		if (rc == 0)
			hand_over_chunk(c);
		if (rc == 0 && c->stream_rc < 0) {
			rc = c->stream_rc;
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED,
				    "the listing could not be taken in: %s", g_strerror(-rc));
		}
	}
	return rc;
}

int resync_folder(struct imap_session *s, const char *wire, gboolean readonly,
		  gboolean want_subject, gboolean want_objids, const struct resync_known *known,
		  struct resync_stream *stream, struct resync_result *out, GError **err)
{
	struct imap_known_state ks = {known->uidvalidity, known->highestmodseq};
	struct imap_select_info info;
	struct collect c = {
	    .hdr.buf = g_byte_array_new(),
	    .out = out,
	    .vanished = g_string_new(NULL),
	    .new_from = known->max_uid + 1,
	    .update_to = known->max_uid,
	    .name_new = want_subject,
	    .objid_item = objid_item(s, want_objids),
	};
	const struct imap_handler h = collector(&c);
	int rc;

	listing_items(&c, want_subject);
	memset(out, 0, sizeof(*out));
	out->msgs = g_array_new(FALSE, FALSE, sizeof(struct tree_msg_info));
	out->vanished = g_array_new(FALSE, FALSE, sizeof(struct uid_range));
	out->strings = g_string_chunk_new(4096);
	if (!known->uidvalidity) {
		rc = list_cold(s, &c, wire, readonly, stream, &info, err);
		out->exists_selected = info.exists;
		goto out;
	}
	rc = imap_select_resync(s, wire, readonly, &ks, &h, &info, err);
	if (rc < 0)
		goto out;
	out->exists_selected = info.exists;
	out->uidvalidity = info.uidvalidity;
	out->uidnext = info.uidnext;
	out->highestmodseq = info.highestmodseq;
	if (known->uidvalidity && info.uidvalidity == known->uidvalidity) {
		rc = resync_incremental(s, &c, known, &info, err);
		if (rc < 0 || finish_vanished(&c))
			goto out;
	}
	/* First listing, a new UIDVALIDITY, or a resync that cannot be trusted. */
	start_over(&c);
	c.new_from = 1;
	c.update_to = 0;
	out->how = RESYNC_FULL;
	out->delta.vanished = NULL;
	out->delta.complete_below = TREE_COMPLETE;
	if (info.exists > 0)
		rc = fetch(s, &c, err, "UID FETCH 1:* %s", c.items);
out:
	out->exists = imap_session_select_info(s)->exists;
	out->delta.msgs = (const struct tree_msg_info *)out->msgs->data;
	out->delta.n = out->msgs->len;
	g_byte_array_unref(c.hdr.buf);
	g_string_free(c.vanished, TRUE);
	return rc;
}

void resync_result_clear(struct resync_result *r)
{
	if (r->msgs)
		g_array_unref(r->msgs);
	if (r->vanished)
		g_array_unref(r->vanished);
	if (r->strings)
		g_string_chunk_free(r->strings);
	memset(r, 0, sizeof(*r));
}

/*
 * The reader of a burst: every wait of it is given this, since one read
 * can take in the answers of several folders. Command k of the burst is
 * folder cmd_job[k]'s (imap_session_completed() says which is being
 * answered), and its data goes to that folder's collector.
 */
struct burst_reader {
	struct imap_session *s;
	guint64 base;
	GArray *cmd_job;	  /* guint: the job of each command sent, in order */
	struct collect *collects; /* one per job */
};

static struct collect *burst_current(struct burst_reader *b)
{
	guint64 k = imap_session_completed(b->s) - b->base;

	if (k >= b->cmd_job->len)
		return NULL;
	return &b->collects[g_array_index(b->cmd_job, guint, k)];
}

static void burst_untagged(void *ud, const struct imap_response *r)
{
	struct collect *c = burst_current(ud);

	if (c)
		on_untagged(c, r);
}

static gboolean burst_literal_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct collect *c = burst_current(ud);

	return c ? header_sink_begin(c, seq, section, size) : FALSE;
}

static void burst_literal_chunk(void *ud, const void *data, size_t len)
{
	struct collect *c = burst_current(ud);

	if (c)
		header_sink_chunk(c, data, len);
}

/* Whether a SELECT of wire goes out without waiting for the server's
   go-ahead: that wait would read earlier folders' answers unseen. */
static gboolean sends_at_once(struct imap_session *s, const char *wire)
{
	g_autofree char *q = imap_quote(wire);

	return q || imap_session_has(s, IMAP_CAP_LITERAL_PLUS) ||
	       (imap_session_has(s, IMAP_CAP_LITERAL_MINUS) && strlen(wire) <= 4096);
}

static void burst_job_start(struct resync_job *j, struct collect *c, struct imap_session *s,
			    gboolean want_subject, gboolean want_objids)
{
	struct resync_result *out = &j->res;

	memset(out, 0, sizeof(*out));
	out->msgs = g_array_new(FALSE, FALSE, sizeof(struct tree_msg_info));
	out->vanished = g_array_new(FALSE, FALSE, sizeof(struct uid_range));
	out->strings = g_string_chunk_new(4096);
	*c = (struct collect){
		.hdr.buf = g_byte_array_new(),
		.out = out,
		.vanished = g_string_new(NULL),
		.new_from = j->known.max_uid + 1,
		.update_to = j->known.max_uid,
		.name_new = want_subject,
		.objid_item = objid_item(s, want_objids),
	};
	listing_items(c, want_subject);
	j->rc = 0;
	j->done = FALSE;
	j->err = NULL;
}

/* What a burst sends for a folder behind its SELECT. */
enum burst_kind {
	BURST_LIST,  /* nothing known: UID FETCH 1:* (the listing) */
	BURST_PROBE, /* a known HIGHESTMODSEQ: nothing; the SELECT may say all */
	BURST_FLAGS, /* known, no MODSEQ: UID FETCH 1:max (UID FLAGS) when max > 0 */
};

static enum burst_kind burst_kind_of(const struct resync_known *k)
{
	if (!k->uidvalidity)
		return BURST_LIST;
	return k->highestmodseq ? BURST_PROBE : BURST_FLAGS;
}

/* No UID above what known holds, as the SELECT (info) says. */
static gboolean nothing_new(const struct resync_known *k, const struct imap_select_info *info)
{
	return info->exists == 0 || (info->uidnext && info->uidnext <= k->max_uid + 1);
}

/* Whether known job j's SELECT (info) and what came behind it are the
   whole resync, as resync_folder would have made it with these commands:
   nothing changed; or with QRESYNC, what changed came with the SELECT and
   no UID is new; or without MODSEQ, no UID is new and the flags of every
   known one came. */
static gboolean burst_known_done(struct imap_session *s, struct resync_job *j, struct collect *c,
				 const struct imap_select_info *info)
{
	const struct resync_known *k = &j->known;

	if (info->uidvalidity != k->uidvalidity)
		return FALSE;
	if (k->highestmodseq) {
		if (unchanged(k, info)) {
			j->res.how = RESYNC_UNCHANGED;
			return TRUE;
		}
		if (!imap_session_qresync(s) || !info->highestmodseq || !nothing_new(k, info))
			return FALSE;
		j->res.how = RESYNC_QRESYNC;
		return finish_vanished(c);
	}
	if (!nothing_new(k, info))
		return FALSE;
	j->res.how = RESYNC_UIDS;
	if (k->max_uid)
		j->res.delta.complete_below = (guint64)k->max_uid + 1;
	return TRUE;
}

/*
 * Job j, whose SELECT (info) was the burst's last, is still selected when
 * its answers are in: when that SELECT showed new UIDs (with a MODSEQ
 * known on both sides), they are fetched on this selection, as
 * resync_folder fetches them behind its own SELECT, rather than by the
 * caller after a second SELECT (a big Maildir folder costs the server a
 * fifth of a second to open). Whether j is then done.
 */
static gboolean burst_last_goes_on(struct imap_session *s, struct resync_job *j,
				   struct collect *c, const struct imap_select_info *info)
{
	const char *selected = imap_session_selected(s);
	GError *err = NULL;
	int rc;

	if (!imap_session_alive(s) || !selected || strcmp(selected, j->wire) != 0 ||
	    info->uidvalidity != j->known.uidvalidity || !j->known.highestmodseq ||
	    !info->highestmodseq)
		return FALSE;
	/* With QRESYNC and no new UID, what failed was the SELECT's VANISHED
	   set: that needs the caller's resync. */
	if (imap_session_qresync(s) && nothing_new(&j->known, info))
		return FALSE;
	rc = resync_incremental(s, c, &j->known, info, &err);
	/* The session lost, or the FETCH failed: the caller's resync says
	   what is wrong. */
	g_clear_error(&err);
	if (rc < 0)
		return FALSE;
	if (!finish_vanished(c))
		return FALSE;
	j->res.exists = imap_session_select_info(s)->exists;
	return TRUE;
}

/* Read job j's answers: its SELECT (sel) and what came behind it (list).
   last: no command of the burst follows j's. */
static void burst_job_finish(struct imap_session *s, struct resync_job *j, struct collect *c,
			     const struct imap_handler *h, guint sel, guint list, gboolean last)
{
	struct resync_result *out = &j->res;
	struct imap_select_info info = { 0 };
	GError *fetch_err = NULL;
	int frc = 0;

	j->rc = imap_select_finish(s, sel, j->wire, TRUE, h, &info, &j->err);
	if (j->rc == 0 && !j->known.uidvalidity && out->msgs->len == 0 && info.exists > 0) {
		/* Room for the listing at once (the count is the server's
		   word: bounded). */
		g_array_unref(out->msgs);
		out->msgs = g_array_sized_new(FALSE, FALSE, sizeof(struct tree_msg_info),
					      (guint)MIN(info.exists, PRESIZE_MAX));
	}
	if (list && (j->rc == 0 || imap_session_alive(s)))
		frc = imap_wait(s, list, h, NULL, &fetch_err);
	if (j->rc < 0) {
		/* Whatever came behind a failed SELECT is no folder's. */
		g_array_set_size(out->msgs, 0);
		g_clear_error(&fetch_err);
		return;
	}
	out->uidvalidity = info.uidvalidity;
	out->uidnext = info.uidnext;
	out->highestmodseq = info.highestmodseq;
	/* The count as the SELECT said: what comes and goes while the rest is
	   read shows at the next resync. */
	out->exists = info.exists;
	out->exists_selected = info.exists;
	if (!j->known.uidvalidity) {
		out->how = RESYNC_FULL;
		out->delta.complete_below = TREE_COMPLETE;
		/* Some servers refuse "1:*" in an empty mailbox: that is no error. */
		if (frc < 0 && (info.exists > 0 || !imap_session_alive(s))) {
			j->rc = frc;
			g_propagate_error(&j->err, g_steal_pointer(&fetch_err));
		} else {
			j->done = TRUE;
		}
	} else {
		/* A flags FETCH that failed: resync_folder does it all again. */
		j->done = frc == 0 && burst_known_done(s, j, c, &info);
		if (!j->done && frc == 0 && last)
			j->done = burst_last_goes_on(s, j, c, &info);
	}
	g_clear_error(&fetch_err);
	if (!j->done)
		g_array_set_size(out->msgs, 0);
	out->delta.msgs = (const struct tree_msg_info *)out->msgs->data;
	out->delta.n = out->msgs->len;
}

/* Send job i's commands (SELECT, and what its kind puts behind it), noting
   whose each is. FALSE when the session is lost. */
static gboolean burst_send(struct imap_session *s, struct resync_job *j, guint i,
			   struct collect *c, gboolean readonly, GArray *cmd_job, guint *sel,
			   guint *list)
{
	struct imap_known_state ks = { j->known.uidvalidity, j->known.highestmodseq };
	enum burst_kind kind = burst_kind_of(&j->known);

	*sel = imap_select_send(s, j->wire, readonly, kind == BURST_LIST ? NULL : &ks, NULL);
	if (!*sel)
		return FALSE;
	g_array_append_val(cmd_job, i);
	if (kind == BURST_LIST)
		*list = imap_send(s, "UID FETCH 1:* %s", c->items);
	else if (kind == BURST_FLAGS && j->known.max_uid)
		*list = imap_send(s, "UID FETCH 1:%u (UID FLAGS)", j->known.max_uid);
	else
		return TRUE;
	if (!*list)
		return FALSE;
	g_array_append_val(cmd_job, i);
	return TRUE;
}

int resync_folders(struct imap_session *s, struct resync_job *jobs, guint n, gboolean readonly,
		   gboolean want_subject, gboolean want_objids, resync_done_fn done, void *ud)
{
	g_autofree struct collect *collects = g_new0(struct collect, n);
	g_autofree guint *sel = g_new0(guint, n);
	g_autofree guint *list = g_new0(guint, n);
	g_autoptr(GArray) cmd_job = g_array_new(FALSE, FALSE, sizeof(guint));
	guint last = G_MAXUINT; /* the job whose commands went out last */
	struct burst_reader b = { .s = s, .base = imap_session_completed(s), .cmd_job = cmd_job,
				  .collects = collects };
	const struct imap_handler h = { .untagged = burst_untagged,
					.literal_begin = burst_literal_begin,
					.literal_chunk = burst_literal_chunk,
					.ud = &b };

	for (guint i = 0; i < n; i++)
		burst_job_start(&jobs[i], &collects[i], s, want_subject, want_objids);
	/* Everything out first: one round trip for the lot. A name sent as a
	   literal the server must say go-ahead to is left for the caller. */
	for (guint i = 0; i < n; i++)
		if (sends_at_once(s, jobs[i].wire) &&
		    !burst_send(s, &jobs[i], i, &collects[i], readonly, cmd_job, &sel[i], &list[i]))
			break;
	for (guint i = 0; i < n; i++)
		if (sel[i])
			last = i;
	for (guint i = 0; i < n; i++) {
		struct resync_job *j = &jobs[i];

		/* Not sent: not done (rc 0), unless the session is lost. */
		if (sel[i])
			burst_job_finish(s, j, &collects[i], &h, sel[i], list[i], i == last);
		if (!imap_session_alive(s) && !j->done && j->rc == 0) {
			j->rc = -EIO;
			g_set_error(&j->err, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE,
				    "%s: the connection was lost", imap_session_peer(s));
		}
		g_byte_array_unref(collects[i].hdr.buf);
		g_string_free(collects[i].vanished, TRUE);
		done(ud, j);
	}
	return imap_session_alive(s) ? 0 : -EIO;
}
