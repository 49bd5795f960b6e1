/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * APPEND of a new message: the bytes of a local file, made a message by
 * model/append.h, sent as one literal. A message that stands in the folder
 * already is not sent again, so an interrupted `cp -a` or `rsync -a` run
 * again does not duplicate mail (mailfs(1), WRITING): "already" means a
 * message of the same size (after the CRLF conversion), the same
 * INTERNALDATE (the file's mtime, to the second) and the same bytes. The
 * server answers the first two: a SEARCH by size, then the INTERNALDATE of
 * its hits; only messages matching both are fetched and compared, as they
 * stream in. Into an empty folder that is one SEARCH answered with nothing.
 * A replacement (an edited message) is always sent, with the old message's
 * flags and INTERNALDATE, and then the old message (and what an earlier
 * APPEND of the same file made) is removed; all or nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/imap_account_internal.h"
#include "model/append.h"
#include "util/log.h"

/* Messages of the same size the check looks at, at most (of a SEARCH). */
#define SEARCH_HITS_MAX 1000
/* Messages of the same size and INTERNALDATE whose bytes are compared, at most. */
#define COMPARE_MAX 16

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

/* The INTERNALDATE answers: the UIDs whose date is `want` go to `same`. */
struct date_sieve {
	gint64 want;
	const GArray *asked; /* the UIDs asked about; others' answers are ignored */
	GArray *same;
};

static gboolean uid_in(const GArray *uids, guint32 uid)
{
	for (guint i = 0; i < uids->len; i++)
		if (g_array_index(uids, guint32, i) == uid)
			return TRUE;
	return FALSE;
}

static void on_date(void *ud, const struct imap_response *r)
{
	struct date_sieve *d = ud;
	const char *date;
	guint32 uid;
	gint64 t;

	if (!r->keyword || strcmp(r->keyword, "FETCH") != 0 ||
	    !imap_value_u32(imap_fetch_item(r, "UID"), &uid) || !uid_in(d->asked, uid))
		return;
	date = imap_value_str(imap_fetch_item(r, "INTERNALDATE"));
	if (date && imap_parse_internaldate(date, &t) && t == d->want &&
	    d->same->len < COMPARE_MAX && !uid_in(d->same, uid))
		g_array_append_val(d->same, uid);
}

/* The bodies of the candidates, each compared with msg as it streams in. */
struct body_compare {
	const GByteArray *msg;
	const GArray *asked;
	gboolean open;	   /* a BODY[] literal of the current FETCH streamed */
	gboolean equal;	   /* so far, the streamed bytes are msg's */
	guint64 offset;	   /* bytes of the current literal seen */
	gboolean found;	   /* a candidate's bytes were msg's, all of them */
};

static gboolean compare_begin(void *ud, uint32_t seq, const char *section, uint64_t size)
{
	struct body_compare *c = ud;

	(void)seq;
	c->open = TRUE;
	c->offset = 0;
	c->equal = g_ascii_strcasecmp(section, "BODY[]") == 0 && size == c->msg->len;
	return TRUE; /* streamed: compared, never kept */
}

static void compare_chunk(void *ud, const void *data, size_t len)
{
	struct body_compare *c = ud;

	if (c->equal && c->offset + len <= c->msg->len &&
	    memcmp(c->msg->data + c->offset, data, len) == 0)
		c->offset += len;
	else
		c->equal = FALSE;
}

static void compare_response(void *ud, const struct imap_response *r)
{
	struct body_compare *c = ud;
	guint32 uid;

	if (!c->open || !r->keyword || strcmp(r->keyword, "FETCH") != 0)
		return;
	c->open = FALSE;
	if (c->equal && c->offset == c->msg->len &&
	    imap_value_u32(imap_fetch_item(r, "UID"), &uid) && uid_in(c->asked, uid))
		c->found = TRUE;
}

/* "1,5,9" */
static char *uid_set(const GArray *uids)
{
	GString *set = g_string_new(NULL);

	for (guint i = 0; i < uids->len; i++)
		g_string_append_printf(set, "%s%u", i ? "," : "", g_array_index(uids, guint32, i));
	return g_string_free(set, FALSE);
}

/*
 * msg, with this INTERNALDATE, is in wire already. An error of the check
 * counts as "not there": the APPEND that follows says what is wrong. A file
 * whose date the writer did not give (a plain cp: its mtime is the copy's
 * own) is compared by its bytes alone, so copying it twice sends it once.
 */
static gboolean already_there(struct imap_session *s, const char *wire, const GByteArray *msg,
			      gint64 internaldate, gboolean dated)
{
	g_autoptr(GArray) hits = g_array_new(FALSE, FALSE, sizeof(guint32));
	g_autoptr(GArray) same = g_array_new(FALSE, FALSE, sizeof(guint32));
	struct imap_handler hs = { .untagged = on_search, .ud = hits };
	struct date_sieve d = { .want = internaldate, .asked = hits, .same = same };
	struct imap_handler hd = { .untagged = on_date, .ud = &d };
	struct body_compare c = { .msg = msg, .asked = same };
	struct imap_handler hc = { .untagged = compare_response, .literal_begin = compare_begin,
				   .literal_chunk = compare_chunk, .ud = &c };
	g_autofree char *set = NULL;

	if (g_strcmp0(imap_session_selected(s), wire) != 0 &&
	    imap_select(s, wire, TRUE, NULL, NULL) < 0)
		return FALSE;
	/* RFC 3501 LARGER and SMALLER are strict: together, exactly this size. */
	if (imap_run(s, &hs, NULL, NULL, "UID SEARCH LARGER %u SMALLER %u", msg->len - 1,
		     msg->len + 1) < 0 ||
	    hits->len == 0)
		return FALSE;
	if (dated) {
		set = uid_set(hits);
		if (imap_run(s, &hd, NULL, NULL, "UID FETCH %s (INTERNALDATE)", set) < 0 ||
		    same->len == 0)
			return FALSE;
		g_free(set);
	} else {
		g_array_append_vals(same, hits->data, MIN(hits->len, COMPARE_MAX));
	}
	set = uid_set(same);
	if (imap_run(s, &hc, NULL, NULL, "UID FETCH %s (BODY.PEEK[])", set) < 0)
		return FALSE;
	return c.found;
}

/*
 * The message a replacement would replace holds these very bytes already
 * (an edit that changed nothing; a restore run again, whose rsync renames
 * a file over a message it thinks differs, say by the CRLF conversion): then
 * nothing is sent and nothing removed. Asked only when the sizes match.
 */
static gboolean unchanged(struct imap_session *s, const char *wire, guint32 uidvalidity,
			  guint32 uid, const GByteArray *msg)
{
	g_autoptr(GArray) one = g_array_new(FALSE, FALSE, sizeof(guint32));
	struct body_compare c = { .msg = msg, .asked = one };
	struct imap_handler hc = { .untagged = compare_response, .literal_begin = compare_begin,
				   .literal_chunk = compare_chunk, .ud = &c };
	const struct imap_select_info *info;

	g_array_append_val(one, uid);
	if (g_strcmp0(imap_session_selected(s), wire) != 0 &&
	    imap_select(s, wire, TRUE, NULL, NULL) < 0)
		return FALSE;
	/* Another generation's UID is another message. */
	info = imap_session_select_info(s);
	if (!info || info->uidvalidity != uidvalidity)
		return FALSE;
	if (imap_run(s, &hc, NULL, NULL, "UID FETCH %u (BODY.PEEK[])", uid) < 0)
		return FALSE;
	return c.found;
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

	if (old->ino)
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
	g_autofree char *q = NULL;
	g_autofree char *prefix = NULL;
	g_autofree char *flags = NULL;
	guint64 replaces = m->replaces;
	gboolean replacing = replaces || m->own_uid;
	gboolean same = FALSE;
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
	if (replaces) {
		rc = tree_get(a->tree, replaces, TREE_WANT_WIRE | TREE_WANT_NAME | TREE_WANT_FLAGS,
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
		} else if (!replacing && date && already_there(s, e.wire, msg, mtime, m->dated)) {
			mfs_log_debug(MFS_LOG_IMAP, "%s is already in %s: not appended again",
				      m->name, e.wire);
		} else if (replaces && old.size == msg->len &&
			   unchanged(s, e.wire, old.uidvalidity, old.uid, msg)) {
			same = TRUE;
			mfs_log_debug(MFS_LOG_IMAP, "%s: the same bytes as the message it replaces: "
				      "nothing sent", m->name);
		} else {
			rc = send_append(s, e.wire, prefix, msg, &uid, &uidvalidity, &err);
		}
		lease_give_back(l);
		if (rc < 0)
			rc = lease_errno(l, rc, err, "APPEND");
	}
	if (rc == 0 && same && m->own_uid) {
		/* Only what an earlier APPEND of the file made goes. */
		if (imap_account_expunge(a, l, e.wire, m->own_uidvalidity, m->own_uid) < 0)
			mfs_log_warn("%s: the earlier copy (UID %u) could not be expunged", m->name,
				     m->own_uid);
	} else if (rc == 0 && replacing) {
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
