/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/fetch.h"

#include <errno.h>
#include <string.h>


static gboolean body_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct body_sink *k = ud;
	const char *lt = strchr(section, '<');
	guint64 origin = 0;

	(void)seq;
	if (k->ranged ? strncmp(section, "BODY[]", 6) != 0 : strcmp(section, "BODY[]") != 0)
		return FALSE;
	if (lt) {
		char *end;

		origin = g_ascii_strtoull(lt + 1, &end, 10);
		if (end == lt + 1 || *end != '>')
			origin = G_MAXUINT64;
	}
	g_byte_array_set_size(k->cur, 0);
	k->cur_open = TRUE;
	k->cur_origin = origin;
	k->cur_too_big = size > k->limit;
	return TRUE; /* streamed: kept below, or dropped */
}

static void body_chunk(void *ud, const void *data, size_t len)
{
	struct body_sink *k = ud;

	if (k->cur_open && !k->cur_too_big && k->cur->len + len <= k->limit)
		g_byte_array_append(k->cur, data, (guint)len);
}

static gboolean body_wanted(const struct body_sink *k, guint32 uid)
{
	return k->uid ? uid == k->uid : g_hash_table_contains(k->wanted, GUINT_TO_POINTER(uid));
}

static void body_response(void *ud, const struct imap_response *resp)
{
	struct body_sink *k = ud;
	guint32 uid;

	if (!k->cur_open || !resp->keyword || strcmp(resp->keyword, "FETCH") != 0)
		return;
	k->cur_open = FALSE;
	if (k->discard || !imap_value_u32(imap_fetch_item(resp, "UID"), &uid) ||
	    !body_wanted(k, uid) || (k->ranged && k->cur_origin != k->origin))
		return; /* someone else's bytes */
	if (k->cur_too_big) {
		k->too_big = TRUE;
		return;
	}
	k->take(k->ud, uid, k->cur);
}

void body_sink_init(struct body_sink *k, struct imap_handler *h)
{
	k->cur = g_byte_array_new();
	*h = (struct imap_handler){ .untagged = body_response, .literal_begin = body_begin,
				    .literal_chunk = body_chunk, .ud = k };
}

void body_sink_clear(struct body_sink *k)
{
	g_clear_pointer(&k->cur, g_byte_array_unref);
}

/* A range's answer: said twice (an unsolicited FETCH before the answer),
   the last one, nearest the command's completion, wins. */
static void take_range(void *ud, guint32 uid, const GByteArray *bytes)
{
	struct range_answer *out = ud;

	(void)uid;
	g_byte_array_set_size(out->buf, 0);
	g_byte_array_append(out->buf, bytes->data, bytes->len);
	out->matched = TRUE;
}

/* s must select wire first: it is elsewhere, in the other mode, or on
   another UIDVALIDITY than the one the message was listed under. */
static gboolean needs_select(struct imap_session *s, const char *wire, gboolean readonly,
			     guint32 uidvalidity)
{
	const struct imap_select_info *si = imap_session_select_info(s);

	return g_strcmp0(imap_session_selected(s), wire) != 0 || si->readonly != readonly ||
	       si->uidvalidity != uidvalidity;
}

int fetch_ensure_selected(struct imap_session *s, const char *wire, gboolean readonly,
			  guint32 uidvalidity, GError **err)
{
	int rc = 0;

	/* A session that selected the mailbox earlier may know an older
	   generation: select it again before deciding. */
	if (needs_select(s, wire, readonly, uidvalidity))
		rc = imap_select(s, wire, readonly, NULL, err);
	if (rc == 0 && imap_session_select_info(s)->uidvalidity != uidvalidity)
		rc = -ESTALE;
	return rc;
}

void fetch_select_send(struct imap_session *s, const char *wire, gboolean readonly,
		       guint32 uidvalidity, struct pending_select *ps, GError **err)
{
	ps->needed = needs_select(s, wire, readonly, uidvalidity);
	ps->id = ps->needed ? imap_select_send(s, wire, readonly, NULL, err) : 0;
}

int fetch_select_finish(struct imap_session *s, struct pending_select *ps, const char *wire,
			gboolean readonly, guint32 uidvalidity, const struct imap_handler *h,
			GError **err)
{
	int rc;

	if (!ps->needed)
		return 0;
	ps->needed = FALSE;
	rc = imap_select_finish(s, ps->id, wire, readonly, h, NULL, err);
	if (rc == 0 && imap_session_select_info(s)->uidvalidity != uidvalidity)
		rc = -ESTALE;
	return rc;
}

/*
 * Run `fetch` on s, selecting wire first when s is elsewhere: the SELECT and
 * the FETCH go out together (one round trip on a reader's entry into a
 * folder). The SELECT's answer comes before the FETCH's, so another
 * UIDVALIDITY is known before any byte is taken: *discard, and -ESTALE once
 * the FETCH is drained.
 */
static int select_and_fetch(struct imap_session *s, const char *wire, gboolean readonly,
			    guint32 uidvalidity, const char *fetch, const struct imap_handler *h,
			    gboolean *discard, GError **err)
{
	struct pending_select ps;
	guint id;
	int rc;

	fetch_select_send(s, wire, readonly, uidvalidity, &ps, err);
	if (!ps.needed)
		return imap_run(s, h, NULL, err, "%s", fetch);
	id = ps.id ? imap_send(s, "%s", fetch) : 0;
	rc = fetch_select_finish(s, &ps, wire, readonly, uidvalidity, h, err);
	if (rc < 0) {
		/* Whatever the FETCH brings (or its NO, with no mailbox
		   selected) is drained and dropped. */
		*discard = TRUE;
		if (id && imap_session_alive(s))
			imap_wait(s, id, h, NULL, NULL);
		return rc;
	}
	return id ? imap_wait(s, id, h, NULL, err) : -EIO;
}

int fetch_body_range(struct imap_session *s, const char *wire, guint32 uidvalidity,
		     gboolean peek, guint32 uid, guint64 off, guint64 len,
		     struct range_answer *out, GError **err)
{
	struct body_sink k = { .uid = uid, .ranged = TRUE, .origin = off, .limit = len,
			       .take = take_range, .ud = out };
	struct imap_handler h;
	g_autofree char *fetch = g_strdup_printf(
		"UID FETCH %u (BODY%s[]<%" G_GUINT64_FORMAT ".%" G_GUINT64_FORMAT ">)", uid,
		peek ? ".PEEK" : "", off, len);
	int rc;

	body_sink_init(&k, &h);
	rc = select_and_fetch(s, wire, peek, uidvalidity, fetch, &h, &k.discard, err);
	out->stale = k.discard;
	out->too_big = k.too_big;
	if (rc < 0 && !k.discard && k.cur_open && !k.cur_too_big && k.cur_origin == off &&
	    k.cur->len > 0) {
		/* The link broke in the middle of the answer: what arrived of
		   the literal at the origin asked for is good. */
		g_byte_array_set_size(out->buf, 0);
		g_byte_array_append(out->buf, k.cur->data, k.cur->len);
		out->partial = TRUE;
	}
	body_sink_clear(&k);
	return rc;
}

gboolean header_sink_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct header_sink *h = ud;

	(void)seq;
	(void)size;
	if (!g_str_has_prefix(section, "BODY[HEADER.FIELDS"))
		return FALSE;
	g_byte_array_set_size(h->buf, 0);
	h->active = TRUE;
	return TRUE;
}

void header_sink_chunk(void *ud, const void *data, size_t len)
{
	struct header_sink *h = ud;

	if (h->active && h->buf->len < HEADER_FIELDS_MAX)
		g_byte_array_append(h->buf, data, (guint)MIN(len, HEADER_FIELDS_MAX - h->buf->len));
}

#define HEADER_ITEM "BODY[HEADER.FIELDS (SUBJECT FROM TO DATE MESSAGE-ID)]"

struct header_fetch {
	struct header_sink hdr; /* first: the literal callbacks get it */
	guint32 uid;
	gboolean discard; /* the mailbox turned out another generation */
	gboolean found;
	GByteArray *value;
};

static void on_header_fetch(void *ud, const struct imap_response *r)
{
	struct header_fetch *hf = ud;
	const struct imap_value *v;
	guint32 uid;

	if (hf->discard || !imap_value_u32(imap_fetch_item(r, "UID"), &uid) || uid != hf->uid) {
		hf->hdr.active = FALSE;
		return;
	}
	v = imap_fetch_item(r, HEADER_ITEM);
	if (v && v->type == IMAP_V_STREAMED && hf->hdr.active) {
		g_byte_array_append(hf->value, hf->hdr.buf->data, hf->hdr.buf->len);
		hf->found = TRUE;
	} else if (v && imap_value_str(v)) {
		g_byte_array_append(hf->value, (const guint8 *)v->str, (guint)v->len);
		hf->found = TRUE;
	}
	hf->hdr.active = FALSE;
}

int fetch_header_fields(struct imap_session *s, const char *wire, guint32 uidvalidity,
			gboolean readonly, guint32 uid, GByteArray *out, gboolean *found,
			GError **err)
{
	struct header_fetch hf = { .hdr.buf = g_byte_array_new(), .uid = uid, .value = out };
	struct imap_handler h = { .untagged = on_header_fetch,
				  .literal_begin = header_sink_begin,
				  .literal_chunk = header_sink_chunk,
				  .ud = &hf };
	g_autofree char *fetch = g_strdup_printf(
		"UID FETCH %u (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM TO DATE MESSAGE-ID)])", uid);
	/* Pipelined behind the SELECT when the session is elsewhere. */
	int rc = select_and_fetch(s, wire, readonly, uidvalidity, fetch, &h, &hf.discard, err);

	*found = rc == 0 && hf.found;
	g_byte_array_unref(hf.hdr.buf);
	return rc;
}
