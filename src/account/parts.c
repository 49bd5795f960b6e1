/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * parts: the .parts directories' structures and part bytes (mailfs(1),
 * PARTS). A message's structure comes from the structures kept in memory,
 * else from its body in the cache (opened locally, model/mime_local.h),
 * else from a structure fetched before and kept in the cache (rendered as
 * BODYSTRUCTURE text, protocol/imap_bodystructure.h), else from one UID
 * FETCH BODYSTRUCTURE. A file's bytes come from the body
 * cache, where each part's shown bytes are kept under a name of their own,
 * else are made: the part's section from the cached body or from one UID
 * FETCH BINARY.PEEK[section] (BODY.PEEK[section] where BINARY is not offered
 * or refused), decoded (model/mime_decode.h), and kept.
 *
 * Locks: a->parts_lock guards the structures kept (never held across I/O).
 */
#include <errno.h>
#include <string.h>

#include "account/imap_account_internal.h"
#include "model/mime_decode.h"
#include "model/mime_local.h"
#include "util/log.h"

/* Structures kept in memory, at most (the ones used last). */
#define STRUCTURES_KEPT 256
/* A part larger than this is refused (EFBIG) rather than held in memory. */
#define PART_MAX ((guint64)256 * 1024 * 1024)

struct parts_structure {
	gint refs; /* atomic */
	guint64 message;
	struct mime_structure *s;
};

const struct mime_structure *parts_structure_get(const struct parts_structure *ps)
{
	return ps->s;
}

void parts_structure_unref(struct parts_structure *ps)
{
	if (ps && g_atomic_int_dec_and_test(&ps->refs)) {
		mime_structure_free(ps->s);
		g_free(ps);
	}
}

static struct parts_structure *structure_ref(struct parts_structure *ps)
{
	g_atomic_int_inc(&ps->refs);
	return ps;
}

void parts_state_init(struct imap_account *a)
{
	mfs_mutex_init(&a->parts_lock);
	a->parts_nodes = parts_nodes_new();
	a->structures = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					      (GDestroyNotify)parts_structure_unref);
	a->structures_used = g_queue_new();
}

void parts_state_clear(struct imap_account *a)
{
	g_queue_free(a->structures_used);
	g_hash_table_unref(a->structures);
	parts_nodes_free(a->parts_nodes);
	mfs_mutex_clear(&a->parts_lock);
}

struct parts_nodes *imap_account_parts_nodes(struct imap_account *a)
{
	return a->parts_nodes;
}

static struct parts_structure *kept_structure(struct imap_account *a, guint64 message)
{
	struct parts_structure *ps;

	mfs_mutex_lock(&a->parts_lock);
	ps = g_hash_table_lookup(a->structures, &message);
	if (ps) {
		/* The one used now goes to the end of the queue. */
		g_queue_remove(a->structures_used, ps);
		g_queue_push_tail(a->structures_used, ps);
		structure_ref(ps);
	}
	mfs_mutex_unlock(&a->parts_lock);
	return ps;
}

static struct parts_structure *keep_structure(struct imap_account *a, guint64 message,
					      struct mime_structure *s)
{
	struct parts_structure *ps = g_new0(struct parts_structure, 1), *old;

	ps->refs = 2; /* the table's and the caller's */
	ps->message = message;
	ps->s = s;
	mfs_mutex_lock(&a->parts_lock);
	old = g_hash_table_lookup(a->structures, &message);
	if (old)
		g_queue_remove(a->structures_used, old);
	g_hash_table_replace(a->structures, &ps->message, ps);
	g_queue_push_tail(a->structures_used, ps);
	while (g_queue_get_length(a->structures_used) > STRUCTURES_KEPT) {
		struct parts_structure *gone = g_queue_pop_head(a->structures_used);

		g_hash_table_remove(a->structures, &gone->message);
	}
	mfs_mutex_unlock(&a->parts_lock);
	return ps;
}

/* The cache's name for the structures of a mailbox: a mailbox name of its
   own, hashed like any (model/mcache.h). */
static char *structure_key(const char *wire)
{
	return g_strdup_printf("%s%cstructure", wire, 1);
}

/* The bytes the cache holds for (mailbox, e's UIDVALIDITY and UID), whole,
   or NULL. */
static GByteArray *cached_whole(struct imap_account *a, const char *mailbox,
				const struct tree_entry *e)
{
	g_autofree char *key = mcache_folder_key(mailbox, e->uidvalidity);
	struct mcache_entry *ce;
	GByteArray *out = NULL;
	guint64 total;

	if (!mcache_peek_complete(a->cache, key, e->uid))
		return NULL;
	ce = mcache_get(a->cache, mailbox, e->uidvalidity, e->uid);
	if (mcache_entry_complete(ce, &total) && total <= PART_MAX) {
		out = g_byte_array_sized_new((guint)total);
		g_byte_array_set_size(out, (guint)total);
		if (mcache_entry_read(ce, out->data, total, 0) != (gssize)total)
			g_clear_pointer(&out, g_byte_array_unref);
	}
	mcache_entry_unref(ce);
	return out;
}

/* The whole body of e from the cache, or NULL when it is not there whole. */
static GByteArray *cached_body(struct imap_account *a, const struct tree_entry *e)
{
	return cached_whole(a, e->wire, e);
}

/* A structure fetched before, from the cache (it outlives a remount). */
static struct mime_structure *structure_from_disk(struct imap_account *a,
						  const struct tree_entry *e)
{
	g_autofree char *key = structure_key(e->wire);
	g_autoptr(GByteArray) text = cached_whole(a, key, e);

	return text ? mime_structure_from_text((const char *)text->data, text->len, NULL) : NULL;
}

/* Keep a structure fetched in the cache, beside the bodies; a full disk
   only means it is fetched again next time. */
static void structure_to_disk(struct imap_account *a, const struct tree_entry *e,
			      const struct mime_structure *s)
{
	g_autofree char *key = structure_key(e->wire);
	g_autofree char *text = mime_structure_render(s);
	struct mcache_entry *ce = mcache_get(a->cache, key, e->uidvalidity, e->uid);
	size_t len = strlen(text);

	if (mcache_entry_write(ce, 0, text, len) == 0)
		(void)mcache_entry_finish(ce, len);
	mcache_entry_unref(ce);
}

/* The message ino as the tree knows it: its folder's wire name, UID. */
static int message_of(struct imap_account *a, guint64 ino, struct tree_entry *e)
{
	if (tree_get(a->tree, ino, TREE_WANT_WIRE, e) != 0 || e->kind != TREE_MESSAGE || e->gone ||
	    !e->wire) {
		tree_entry_clear(e);
		return -ENOENT;
	}
	return 0;
}

/* One FETCH answer's item of the UID asked for. */
struct item_answer {
	guint32 uid;
	const char *item; /* e.g. "BODYSTRUCTURE", or a section item "BINARY[2]" */
	struct mime_structure *structure;
	GError *bad;
	/* a section's literal: received into cur, kept in bytes when its
	   response names the UID */
	GByteArray *cur;
	gboolean cur_open;
	gboolean too_big;
	GByteArray *bytes;
};

static void on_item(void *ud, const struct imap_response *r)
{
	struct item_answer *ans = ud;
	const struct imap_value *uidv;
	guint32 uid = 0;

	if (!r->keyword || strcmp(r->keyword, "FETCH") != 0)
		return;
	uidv = imap_fetch_item(r, "UID");
	if (!uidv || !imap_value_u32(uidv, &uid) || uid != ans->uid) {
		/* Another message's data (RFC 3501 §7): nothing of it is kept. */
		g_clear_pointer(&ans->cur, g_byte_array_unref);
		return;
	}
	if (strcmp(ans->item, "BODYSTRUCTURE") == 0) {
		const struct imap_value *v = imap_fetch_item(r, "BODYSTRUCTURE");

		if (v && !ans->structure && !ans->bad)
			ans->structure = mime_structure_from_bodystructure(v, &ans->bad);
		return;
	}
	if (ans->cur && !ans->cur_open && !ans->bytes) {
		ans->bytes = ans->cur;
		ans->cur = NULL;
	}
}

static gboolean on_item_literal(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct item_answer *ans = ud;

	(void)seq;
	if (!section || g_ascii_strcasecmp(section, ans->item) != 0)
		return FALSE;
	if (size > PART_MAX) {
		ans->too_big = TRUE;
		return FALSE;
	}
	g_clear_pointer(&ans->cur, g_byte_array_unref);
	ans->cur = g_byte_array_sized_new((guint)MIN(size, (uint64_t)(1 << 20)));
	ans->cur_open = TRUE;
	return TRUE;
}

static void on_item_chunk(void *ud, const void *data, size_t len)
{
	struct item_answer *ans = ud;

	if (ans->cur)
		g_byte_array_append(ans->cur, data, (guint)len);
}

static void on_item_end(void *ud)
{
	struct item_answer *ans = ud;

	ans->cur_open = FALSE;
}

/* UID FETCH uid (att) on s, its answer into ans: 0 or -errno (*refused:
   the server answered NO or BAD). */
static int run_fetch(struct imap_session *s, guint32 uid, const char *att,
		     struct item_answer *ans, gboolean *refused, GError **err)
{
	struct imap_handler h = { .untagged = on_item, .literal_begin = on_item_literal,
				  .literal_chunk = on_item_chunk, .literal_end = on_item_end,
				  .ud = ans };
	struct imap_result res = { 0 };
	int rc = imap_run(s, &h, &res, err, "UID FETCH %u (%s)", uid, att);

	*refused = rc < 0 && (res.status == IMAP_STATUS_NO || res.status == IMAP_STATUS_BAD);
	imap_result_clear(&res);
	g_clear_pointer(&ans->cur, g_byte_array_unref);
	return rc;
}

/*
 * Item `what` of message e: BODYSTRUCTURE, or a section's bytes, fetched
 * with BINARY.PEEK where allowed and offered (RFC 3516: the server
 * decodes; *decoded then), else with BODY.PEEK, also when the server
 * refuses to decode the part ([UNKNOWN-CTE]). The mailbox is examined first
 * when the session is elsewhere.
 */
static int fetch_item(struct lease *l, const struct tree_entry *e,
		      const char *what, gboolean allow_binary, struct item_answer *ans,
		      gboolean *decoded)
{
	struct imap_session *s;
	GError *err = NULL;
	gboolean refused = FALSE;
	int rc = lease_borrow(l, e->wire, &s);

	if (rc < 0)
		return rc;
	rc = fetch_ensure_selected(s, e->wire, TRUE, e->uidvalidity, &err);
	if (rc == 0 && strcmp(what, "BODYSTRUCTURE") == 0) {
		ans->item = "BODYSTRUCTURE";
		rc = run_fetch(s, e->uid, "BODYSTRUCTURE", ans, &refused, &err);
	} else if (rc == 0) {
		gboolean binary = allow_binary && imap_session_has(s, IMAP_CAP_BINARY);
		g_autofree char *item = g_strdup_printf("%s[%s]", binary ? "BINARY" : "BODY", what);
		g_autofree char *att = g_strdup_printf("%s.PEEK[%s]", binary ? "BINARY" : "BODY", what);

		ans->item = item;
		rc = run_fetch(s, e->uid, att, ans, &refused, &err);
		if (rc < 0 && binary && refused && imap_session_alive(s)) {
			g_clear_error(&err);
			g_free(item);
			g_free(att);
			binary = FALSE;
			item = g_strdup_printf("BODY[%s]", what);
			att = g_strdup_printf("BODY.PEEK[%s]", what);
			ans->item = item;
			rc = run_fetch(s, e->uid, att, ans, &refused, &err);
		}
		*decoded = binary;
		ans->item = NULL;
	}
	lease_give_back(l);
	if (rc < 0)
		return lease_errno(l, rc, err, e->wire);
	return 0;
}

int imap_account_structure(struct imap_account *a, struct lease *l, guint64 message,
			   struct parts_structure **out)
{
	struct tree_entry e = { 0 };
	struct item_answer ans = { 0 };
	g_autoptr(GByteArray) body = NULL;
	int rc;

	*out = kept_structure(a, message);
	if (*out)
		return 0;
	rc = message_of(a, message, &e);
	if (rc < 0)
		return rc;
	body = cached_body(a, &e);
	if (body) {
		*out = keep_structure(a, message, mime_local_structure(body->data, body->len));
		tree_entry_clear(&e);
		return 0;
	}
	ans.structure = structure_from_disk(a, &e);
	if (ans.structure) {
		*out = keep_structure(a, message, ans.structure);
		tree_entry_clear(&e);
		return 0;
	}
	ans.uid = e.uid;
	rc = fetch_item(l, &e, "BODYSTRUCTURE", FALSE, &ans, NULL);
	if (rc == 0 && !ans.structure) {
		g_autofree char *esc = mfs_log_escape(e.wire, strlen(e.wire), 200);

		/* Expunged meanwhile (no answer), or an answer that is no
		   structure: nothing can be shown. */
		if (ans.bad)
			mfs_log_warn("%s: UID %u: the server's BODYSTRUCTURE is not one: %s", esc,
				     e.uid, ans.bad->message);
		rc = ans.bad ? -EIO : -ENOENT;
	}
	if (rc == 0) {
		__atomic_fetch_add(&a->structures_fetched, 1, __ATOMIC_RELAXED);
		structure_to_disk(a, &e, ans.structure);
		*out = keep_structure(a, message, ans.structure);
		ans.structure = NULL;
	}
	mime_structure_free(ans.structure);
	g_clear_error(&ans.bad);
	tree_entry_clear(&e);
	return rc;
}

/* The cache's name for the bytes entry shows of message e: a mailbox name
   of its own per (section, kind), hashed like any (model/mcache.h). */
static char *part_key(const struct tree_entry *e, const struct mime_entry *me)
{
	return g_strdup_printf("%s%cpart%c%s%c%d%c%d", e->wire, 1, 1, me->section, 1, me->kind, 1,
			       me->html_as_text);
}

/* The bytes of section of message e as BODY[section] (or, *decoded,
   BINARY[section]) gives them. */
static int section_bytes(struct imap_account *a, struct lease *l, const struct tree_entry *e,
			 const struct mime_entry *me, gboolean *decoded, GByteArray **out)
{
	g_autoptr(GByteArray) body = cached_body(a, e);
	/* BINARY only where there is something to decode: of a message/rfc822
	   part a server may decode the parts inside too, and change them. */
	const struct mime_part *p = me->kind == MIME_ENTRY_HEADERS ? NULL : me->part;
	gboolean binary_ok = p && p->children->len == 0 && p->encoding &&
			     (strcmp(p->encoding, "base64") == 0 ||
			      strcmp(p->encoding, "quoted-printable") == 0);
	struct item_answer ans = { .uid = e->uid };
	int rc;

	*decoded = FALSE;
	*out = NULL;
	if (body) {
		*out = mime_local_section(body->data, body->len, me->section);
		return *out ? 0 : -ENOENT;
	}
	rc = fetch_item(l, e, me->section, binary_ok, &ans, decoded);
	if (rc == 0 && ans.too_big)
		rc = -EFBIG;
	if (rc == 0 && !ans.bytes)
		rc = -ENOENT; /* expunged meanwhile, or no such section */
	if (rc < 0) {
		if (ans.bytes)
			g_byte_array_unref(ans.bytes);
		return rc;
	}
	__atomic_fetch_add(&a->parts_fetched, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&a->bytes_fetched, ans.bytes->len, __ATOMIC_RELAXED);
	*out = ans.bytes;
	return 0;
}

/* What entry me shows, made from the section's bytes. */
static GByteArray *shown_bytes(const struct mime_entry *me, GByteArray *raw, gboolean decoded)
{
	const struct mime_part *p = me->part;
	const char *charset = p && p->params ? mime_param_get(p->params, "charset") : NULL;
	g_autoptr(GByteArray) plain = NULL;

	if (me->kind == MIME_ENTRY_HEADERS)
		return mime_headers_text(raw->data, raw->len);
	plain = decoded || !p ? g_byte_array_ref(raw)
			      : mime_decode_transfer(p->encoding, raw->data, raw->len);
	if (me->kind != MIME_ENTRY_TEXT)
		return g_byte_array_ref(plain);
	if (me->html_as_text) {
		g_autoptr(GByteArray) utf8 = mime_text_to_utf8(charset, plain->data, plain->len);

		return mime_html_to_text(utf8->data, utf8->len);
	}
	return mime_text_to_utf8(charset, plain->data, plain->len);
}

int imap_account_part_open(struct imap_account *a, struct lease *l, guint64 message,
			   const struct mime_entry *me, struct part_data *out)
{
	struct tree_entry e = { 0 };
	g_autofree char *key = NULL;
	g_autoptr(GByteArray) raw = NULL;
	g_autoptr(GByteArray) shown = NULL;
	struct mcache_entry *ce;
	gboolean decoded;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = message_of(a, message, &e);
	if (rc < 0)
		return rc;
	key = part_key(&e, me);
	ce = mcache_get(a->cache, key, e.uidvalidity, e.uid);
	if (mcache_entry_complete(ce, &out->size)) {
		out->entry = ce;
		tree_entry_clear(&e);
		return 0;
	}
	rc = section_bytes(a, l, &e, me, &decoded, &raw);
	if (rc < 0) {
		mcache_entry_unref(ce);
		tree_entry_clear(&e);
		return rc;
	}
	shown = shown_bytes(me, raw, decoded);
	out->size = shown->len;
	/* Kept in the cache, bounded with the bodies; where it cannot be
	   (a full disk), served from memory all the same. */
	if (mcache_entry_write(ce, 0, shown->data, shown->len) == 0 &&
	    mcache_entry_finish(ce, shown->len) == 0) {
		out->entry = ce;
	} else {
		mcache_entry_unref(ce);
		out->mem = g_bytes_new(shown->data, shown->len);
	}
	tree_entry_clear(&e);
	return 0;
}

gssize part_data_read(struct part_data *p, void *buf, size_t len, guint64 off)
{
	if (p->entry)
		return mcache_entry_read(p->entry, buf, len, off);
	if (!p->mem || off >= p->size)
		return 0;
	len = (size_t)MIN((guint64)len, p->size - off);
	memcpy(buf, (const guint8 *)g_bytes_get_data(p->mem, NULL) + off, len);
	return (gssize)len;
}

void part_data_clear(struct part_data *p)
{
	if (p->entry)
		mcache_entry_unref(p->entry);
	if (p->mem)
		g_bytes_unref(p->mem);
	memset(p, 0, sizeof(*p));
}
