/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * APPEND of a new message: the bytes of a local file, checked and made a
 * message by model/append.h, sent as one literal. A message whose
 * Message-ID and size are in the folder already is not sent again
 * (imapsync's rule): an interrupted `cp -r` or `rsync` run again does not
 * duplicate mail. A replacement (an edited message) is always sent, with
 * the old message's flags and INTERNALDATE, and then the old message (and
 * what an earlier APPEND of the same file made) is removed; all or nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/imap_account_internal.h"
#include "model/append.h"
#include "util/log.h"

/* Messages a Message-ID search may name, at most, for the size check. */
#define SEARCH_HITS_MAX 1000

static void on_search(void *ud, const struct imap_response *r)
{
	GArray *uids = ud;

	if (!r->keyword || strcmp(r->keyword, "SEARCH") != 0)
		return;
	/* Only the first SEARCH_HITS_MAX are looked at: keep no more. */
	for (size_t i = 0; i < r->args.n && uids->len < SEARCH_HITS_MAX; i++) {
		guint32 uid;

		if (imap_value_u32(&r->args.items[i], &uid))
			g_array_append_val(uids, uid);
	}
}

static void on_sizes(void *ud, const struct imap_response *r)
{
	GArray *sizes = ud;
	guint64 size;

	if (imap_value_u64(imap_fetch_item(r, "RFC822.SIZE"), &size))
		g_array_append_val(sizes, size);
}

/* A message with this Message-ID and size is in wire already. */
static gboolean already_there(struct imap_session *s, const char *wire, const char *message_id,
			      guint64 size)
{
	g_autofree char *q = imap_quote(message_id);
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));
	g_autoptr(GArray) sizes = g_array_new(FALSE, FALSE, sizeof(guint64));
	struct imap_handler hs = { .untagged = on_search, .ud = uids };
	struct imap_handler hz = { .untagged = on_sizes, .ud = sizes };
	GString *set;

	if (!q || strlen(message_id) > 998)
		return FALSE;
	if (g_strcmp0(imap_session_selected(s), wire) != 0 &&
	    imap_select(s, wire, TRUE, NULL, NULL) < 0)
		return FALSE;
	if (imap_run(s, &hs, NULL, NULL, "UID SEARCH HEADER Message-ID %s", q) < 0 ||
	    uids->len == 0)
		return FALSE;
	set = g_string_new(NULL);
	for (guint i = 0; i < uids->len; i++)
		g_string_append_printf(set, "%s%u", i ? "," : "", g_array_index(uids, guint32, i));
	if (imap_run(s, &hz, NULL, NULL, "UID FETCH %s (RFC822.SIZE)", set->str) < 0)
		sizes->len = 0;
	g_string_free(set, TRUE);
	for (guint i = 0; i < sizes->len; i++)
		if (g_array_index(sizes, guint64, i) == size)
			return TRUE;
	return FALSE;
}

/* The file's bytes as a message ready to send, or -errno (logged). */
static int prepare(const struct new_message *m, const char *wire, GByteArray **out)
{
	g_autoptr(GByteArray) raw = NULL;
	GError *err = NULL;
	struct stat fst;

	if (fstat(m->fd, &fst) != 0 || (guint64)fst.st_size > APPEND_MAX)
		return -EFBIG;
	raw = g_byte_array_sized_new((guint)fst.st_size);
	g_byte_array_set_size(raw, (guint)fst.st_size);
	if (fst.st_size > 0 && pread(m->fd, raw->data, raw->len, 0) != (ssize_t)raw->len)
		return -EIO;
	if (!append_prepare(raw->data, raw->len, out, &err)) {
		g_autofree char *esc = mfs_log_escape(wire, strlen(wire), 200);

		mfs_log_info("not appending %s to %s: %s", m->name, esc, err->message);
		g_error_free(err);
		return -EINVAL;
	}
	return 0;
}

/* The APPEND itself; the server's refusal logged with its words. *uid and
   *uidvalidity from its APPENDUID (RFC 4315), 0 when it gave none. */
static int send_append(struct imap_session *s, const char *wire, const char *prefix,
		       const GByteArray *msg, guint32 *uid, guint32 *uidvalidity, GError **err)
{
	struct imap_result res = { 0 };
	guint id = imap_send_literal(s, prefix, msg->data, msg->len, NULL, err);
	int rc = id ? imap_wait(s, id, NULL, &res, err) : -EIO;

	*uid = *uidvalidity = 0;
	if (rc < 0) {
		g_autofree char *esc = mfs_log_escape(wire, strlen(wire), 200);
		g_autofree char *what = g_strdup_printf("APPEND to %s", esc);

		account_log_refused(what, &res);
	} else if (res.code && g_ascii_strcasecmp(res.code, "APPENDUID") == 0 && res.code_text) {
		unsigned long v = 0, u = 0;

		if (sscanf(res.code_text, "%lu %lu", &v, &u) == 2 && v <= G_MAXUINT32 &&
		    u <= G_MAXUINT32) {
			*uidvalidity = (guint32)v;
			*uid = (guint32)u;
		}
	}
	imap_result_clear(&res);
	return rc;
}

/* flags without \Recent, which the server sets and APPEND cannot carry. */
static char *carried_flags(const char *flags)
{
	g_auto(GStrv) v = g_strsplit(flags ? flags : "", " ", -1);
	GString *out = g_string_new(NULL);

	for (guint i = 0; v[i]; i++) {
		if (!*v[i] || g_ascii_strcasecmp(v[i], "\\Recent") == 0)
			continue;
		if (out->len)
			g_string_append_c(out, ' ');
		g_string_append(out, v[i]);
	}
	return g_string_free(out, FALSE);
}

/* After the new message (uid) is in: the old ones go. On failure the new
   one is expunged again, so the folder is as before. */
static int drop_replaced(struct imap_account *a, struct lease *l, const struct new_message *m,
			 struct tree_entry *old, const char *wire, guint32 uidvalidity, guint32 uid)
{
	int rc = 0;

	if (m->replaces)
		rc = account_remove_message(a, l, old);
	if (rc < 0) {
		mfs_log_info("replacing %s: the old message stays (%s); taking the new one back",
			     m->name, g_strerror(-rc));
		if (imap_account_expunge(a, l, wire, uidvalidity, uid) < 0)
			mfs_log_warn("replacing %s: the new message (UID %u) could not be taken back",
				     m->name, uid);
		return rc;
	}
	if (m->own_uid && imap_account_expunge(a, l, wire, m->own_uidvalidity, m->own_uid) < 0)
		mfs_log_warn("%s: the earlier copy (UID %u) could not be expunged", m->name,
			     m->own_uid);
	return 0;
}

int imap_account_append(struct imap_account *a, struct lease *l, guint64 folder,
			const struct new_message *m, struct appended *out)
{
	struct tree_entry e = { 0 };
	struct tree_entry old = { 0 };
	g_autoptr(GByteArray) msg = NULL;
	g_autofree char *date = NULL;
	g_autofree char *mid = NULL;
	g_autofree char *q = NULL;
	g_autofree char *prefix = NULL;
	g_autofree char *flags = NULL;
	gboolean replacing = m->replaces || m->own_uid;
	guint32 uid = 0, uidvalidity = 0;
	gint64 mtime = m->mtime;
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	if (a->opts->readonly)
		return -EROFS;
	rc = tree_get(a->tree, folder, TREE_WANT_WIRE, &e);
	if (rc < 0 || e.kind != TREE_FOLDER || !e.wire) {
		tree_entry_clear(&e);
		return rc < 0 ? rc : -EPERM; /* a \Noselect folder holds no messages */
	}
	if (m->replaces) {
		rc = tree_get(a->tree, m->replaces, TREE_WANT_WIRE | TREE_WANT_NAME | TREE_WANT_FLAGS,
			      &old);
		if (rc == 0 && (old.gone || old.kind != TREE_MESSAGE || old.parent != folder))
			rc = -ENOENT; /* gone meanwhile: nothing to replace */
		if (rc < 0) {
			tree_entry_clear(&old);
			tree_entry_clear(&e);
			return rc;
		}
		flags = carried_flags(old.flags);
		mtime = old.mtime;
	} else {
		flags = g_strdup(m->flags ? m->flags : "");
	}
	rc = prepare(m, e.wire, &msg);
	if (rc < 0) {
		tree_entry_clear(&old);
		tree_entry_clear(&e);
		return rc;
	}
	mid = append_message_id(msg->data, msg->len);
	date = append_internaldate(mtime);
	q = imap_quote(e.wire);
	prefix = g_strdup_printf("APPEND %s (%s) \"%s\"", q ? q : "\"\"", flags, date);
	rc = q ? lease_borrow(l, e.wire, &s) : -EINVAL;
	if (rc == 0) {
		guint64 limit = imap_session_append_limit(s);

		if (limit && msg->len > limit) {
			/* Refused before a byte is sent (the server's APPENDLIMIT). */
			mfs_log_info("not appending %s: %u bytes, the server takes at most %"
				     G_GUINT64_FORMAT, m->name, msg->len, limit);
			rc = -EFBIG;
		} else if (replacing && !imap_session_has(s, IMAP_CAP_UIDPLUS)) {
			/* Without APPENDUID the new message could not be taken back. */
			mfs_log_warn("%s has no UIDPLUS: refusing to replace %s", imap_session_peer(s),
				     m->name);
			rc = -EPERM;
		} else if (!replacing && mid && already_there(s, e.wire, mid, msg->len)) {
			mfs_log_debug(MFS_LOG_IMAP, "%s is already in %s: not appended again",
				      m->name, e.wire);
		} else {
			rc = send_append(s, e.wire, prefix, msg, &uid, &uidvalidity, &err);
		}
		lease_give_back(l);
		if (rc < 0)
			rc = lease_errno(l, rc, err, "APPEND");
	}
	if (rc == 0 && replacing) {
		if (!uid) {
			mfs_log_warn("%s: the server named no UID for the new message; the old one "
				     "stays", m->name);
			rc = -EIO;
		} else {
			rc = drop_replaced(a, l, m, &old, e.wire, uidvalidity, uid);
		}
	}
	if (rc == 0 || replacing)
		account_mark_stale(a, folder);
	if (rc == 0 && out) {
		out->uid = uid;
		out->uidvalidity = uidvalidity;
		out->flags = g_steal_pointer(&flags);
		out->mtime = mtime;
	}
	tree_entry_clear(&old);
	tree_entry_clear(&e);
	return rc;
}
