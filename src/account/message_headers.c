/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Decoded headers for the user.mail.* attributes: from memory, else from
 * the message's cached body when it is complete there (a remount's
 * `rsync -aX` of mail already copied asks the server nothing), else one
 * FETCH of the header fields. Kept per message, up to HEADERS_CACHE_MAX.
 */
#include <errno.h>
#include <string.h>

#include "account/imap_account_internal.h"

/* Decoded headers kept for getxattr; dropped wholesale when this many. */
#define HEADERS_CACHE_MAX 20000

static void copy_headers(struct mail_headers *dst, const struct mail_headers *src)
{
	dst->subject = g_strdup(src->subject);
	dst->from = g_strdup(src->from);
	dst->to = g_strdup(src->to);
	dst->date = g_strdup(src->date);
	dst->message_id = g_strdup(src->message_id);
}

/* Keep h (owned by the table from now on) as ino's decoded headers. */
static void keep_headers(struct imap_account *a, guint64 ino, struct mail_headers *h)
{
	guint64 *key = g_new(guint64, 1);

	*key = ino;
	mfs_mutex_lock(&a->headers_lock);
	if (g_hash_table_size(a->headers) >= HEADERS_CACHE_MAX)
		g_hash_table_remove_all(a->headers);
	g_hash_table_replace(a->headers, key, h);
	mfs_mutex_unlock(&a->headers_lock);
}

/* Parse the header block in buf, keep it for ino and copy it to out. */
static void parse_and_keep(struct imap_account *a, guint64 ino, const char *buf, size_t len,
			   struct mail_headers *out)
{
	struct mail_headers *h = g_new0(struct mail_headers, 1);

	mail_headers_parse(buf, len, h);
	copy_headers(out, h);
	keep_headers(a, ino, h);
}

/* The parser reads the fields it wants up to the first empty line, as in
   the server's HEADER.FIELDS answer. */
static gboolean headers_from_cache(struct imap_account *a, const struct tree_entry *e,
				   struct mail_headers *out)
{
	struct mcache_entry *ce = mcache_get(a->cache, e->wire, e->uidvalidity, e->uid);
	g_autofree char *buf = NULL;
	guint64 total;
	gssize got = -1;

	if (mcache_entry_complete(ce, &total)) {
		size_t want = (size_t)MIN(total, (guint64)HEADER_FIELDS_MAX);

		buf = g_malloc(want ? want : 1);
		got = mcache_entry_read(ce, buf, want, 0);
	}
	mcache_entry_unref(ce);
	if (got < 0)
		return FALSE;
	parse_and_keep(a, e->ino, buf, (size_t)got, out);
	__atomic_fetch_add(&a->headers_from_cache, 1, __ATOMIC_RELAXED);
	return TRUE;
}

static int headers_from_server(struct imap_account *a, struct lease *l,
			       const struct tree_entry *e, struct mail_headers *out)
{
	g_autoptr(GByteArray) value = g_byte_array_new();
	struct imap_session *s;
	GError *err = NULL;
	gboolean found = FALSE;
	int rc = lease_borrow(l, e->wire, &s);

	if (rc < 0)
		return rc;
	rc = fetch_header_fields(s, e->wire, e->uidvalidity, !a->opts->mark_seen, e->uid, value,
				 &found, &err);
	lease_give_back(l);
	if (rc < 0)
		return lease_errno(l, rc, err, e->wire);
	if (!found)
		return -ENOENT; /* expunged meanwhile */
	parse_and_keep(a, e->ino, (const char *)value->data, value->len, out);
	return 0;
}

int imap_account_headers(struct imap_account *a, struct lease *l, guint64 ino,
			 struct mail_headers *out)
{
	struct mail_headers *cached;
	struct tree_entry e = { 0 };
	int rc;

	mfs_mutex_lock(&a->headers_lock);
	cached = g_hash_table_lookup(a->headers, &ino);
	if (cached)
		copy_headers(out, cached);
	mfs_mutex_unlock(&a->headers_lock);
	if (cached)
		return 0;

	rc = tree_get(a->tree, ino, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.gone || !e.wire) {
		tree_entry_clear(&e);
		return rc < 0 ? rc : -ENOENT;
	}
	if (!headers_from_cache(a, &e, out)) {
		gint64 start = g_get_monotonic_time();

		rc = headers_from_server(a, l, &e, out);
		/* As for a listing: a connection the server dropped while it sat
		   idle fails its first command at once; once more, on a new one.
		   A failure that took half the timeout is a server not answering. */
		if (rc == -EIO && g_get_monotonic_time() - start <
				      (gint64)a->opts->timeout * G_USEC_PER_SEC / 2)
			rc = headers_from_server(a, l, &e, out);
	}
	tree_entry_clear(&e);
	return rc;
}

const char *imap_account_header_field(const struct mail_headers *h, const char *xattr,
				      gboolean *known)
{
	static const struct {
		const char *xattr;
		size_t offset;
	} fields[] = {
		{ "user.mail.subject", G_STRUCT_OFFSET(struct mail_headers, subject) },
		{ "user.mail.from", G_STRUCT_OFFSET(struct mail_headers, from) },
		{ "user.mail.to", G_STRUCT_OFFSET(struct mail_headers, to) },
		{ "user.mail.date", G_STRUCT_OFFSET(struct mail_headers, date) },
		{ "user.mail.message-id", G_STRUCT_OFFSET(struct mail_headers, message_id) },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
		if (strcmp(xattr, fields[i].xattr) == 0) {
			*known = TRUE;
			const void *field = (const char *)h + fields[i].offset;

			return *(char *const *)field;
		}
	}
	*known = FALSE;
	return NULL;
}
