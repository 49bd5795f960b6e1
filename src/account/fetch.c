/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/fetch.h"

#include <errno.h>
#include <string.h>

#include "account/resync.h"

/* Receives body literals of a UID FETCH answer; see range_answer. */
struct range_sink {
	guint32 uid;
	guint64 off;
	guint64 limit;	  /* bytes asked for; a server sending more is broken */
	GByteArray *cur;  /* the body literal being received */
	gboolean cur_open;
	guint64 cur_origin;
	gboolean cur_too_big;
	struct range_answer *out;
	gboolean discard; /* the mailbox turned out another generation: keep nothing */
};

static gboolean range_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct range_sink *r = ud;
	const char *lt = strchr(section, '<');
	guint64 origin = 0;

	(void)seq;
	if (strncmp(section, "BODY[]", 6) != 0)
		return FALSE;
	if (lt) {
		char *end;

		origin = g_ascii_strtoull(lt + 1, &end, 10);
		if (end == lt + 1 || *end != '>')
			origin = G_MAXUINT64;
	}
	g_byte_array_set_size(r->cur, 0);
	r->cur_open = TRUE;
	r->cur_origin = origin;
	r->cur_too_big = size > r->limit;
	return TRUE; /* streamed: kept below, or dropped */
}

static void range_chunk(void *ud, const void *data, size_t len)
{
	struct range_sink *r = ud;

	if (r->cur_open && !r->cur_too_big && r->cur->len + len <= r->limit)
		g_byte_array_append(r->cur, data, (guint)len);
}

static void range_response(void *ud, const struct imap_response *resp)
{
	struct range_sink *r = ud;
	guint32 uid;

	if (!r->cur_open || !resp->keyword || strcmp(resp->keyword, "FETCH") != 0)
		return;
	r->cur_open = FALSE;
	if (r->discard || !imap_value_u32(imap_fetch_item(resp, "UID"), &uid) || uid != r->uid ||
	    r->cur_origin != r->off)
		return; /* someone else's bytes */
	if (r->cur_too_big) {
		r->out->too_big = TRUE;
		return;
	}
	/* Said twice (an unsolicited FETCH before the answer): the last one,
	   nearest the command's completion, wins. */
	g_byte_array_set_size(r->out->buf, 0);
	g_byte_array_append(r->out->buf, r->cur->data, r->cur->len);
	r->out->matched = TRUE;
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
	guint sel, id;
	int rc;

	if (!needs_select(s, wire, readonly, uidvalidity))
		return imap_run(s, h, NULL, err, "%s", fetch);
	sel = imap_select_send(s, wire, readonly, NULL, err);
	id = sel ? imap_send(s, "%s", fetch) : 0;
	rc = imap_select_finish(s, sel, wire, readonly, h, NULL, err);
	if (rc == 0 && imap_session_select_info(s)->uidvalidity != uidvalidity)
		rc = -ESTALE;
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
	struct range_sink r = { .uid = uid, .off = off, .limit = len,
				.cur = g_byte_array_new(), .out = out };
	struct imap_handler h = { .untagged = range_response, .literal_begin = range_begin,
				  .literal_chunk = range_chunk, .ud = &r };
	g_autofree char *fetch = g_strdup_printf(
		"UID FETCH %u (BODY%s[]<%" G_GUINT64_FORMAT ".%" G_GUINT64_FORMAT ">)", uid,
		peek ? ".PEEK" : "", off, len);
	int rc;

	rc = select_and_fetch(s, wire, peek, uidvalidity, fetch, &h, &r.discard, err);
	out->stale = r.discard;
	if (rc < 0 && !r.discard && r.cur_open && !r.cur_too_big && r.cur_origin == off &&
	    r.cur->len > 0) {
		/* The link broke in the middle of the answer: what arrived of
		   the literal at the origin asked for is good. */
		g_byte_array_set_size(out->buf, 0);
		g_byte_array_append(out->buf, r.cur->data, r.cur->len);
		out->partial = TRUE;
	}
	g_byte_array_unref(r.cur);
	return rc;
}

#define HEADER_ITEM "BODY[HEADER.FIELDS (SUBJECT FROM TO DATE MESSAGE-ID)]"

struct header_fetch {
	struct header_sink hdr; /* first: the literal callbacks get it */
	guint32 uid;
	gboolean found;
	GByteArray *value;
};

static void on_header_fetch(void *ud, const struct imap_response *r)
{
	struct header_fetch *hf = ud;
	const struct imap_value *v;
	guint32 uid;

	if (!imap_value_u32(imap_fetch_item(r, "UID"), &uid) || uid != hf->uid) {
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
	int rc = fetch_ensure_selected(s, wire, readonly, uidvalidity, err);

	if (rc == 0)
		rc = imap_run(s, &h, NULL, err,
			      "UID FETCH %u (BODY.PEEK[HEADER.FIELDS "
			      "(SUBJECT FROM TO DATE MESSAGE-ID)])",
			      uid);
	*found = hf.found;
	g_byte_array_unref(hf.hdr.buf);
	return rc;
}
