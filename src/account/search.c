/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * search: the .search directories' searches (mailfs(1), SEARCH). A query
 * is parsed (model/search_query.h), rendered once (protocol/imap_search.h),
 * and sent to every folder of its scope in pipelined batches of EXAMINE +
 * UID SEARCH on one borrowed session: one round trip per batch, no body
 * fetched. Folders with hits whose listing is missing, of another
 * UIDVALIDITY or older than a hit are listed afterwards, so every entry
 * shows under its folder's name and inode. The result is kept in the
 * account's search_nodes.
 *
 * No lock of its own: searches of the same query may run at once (the
 * last result kept wins); the tree and search_nodes lock themselves.
 */
#include <errno.h>
#include <string.h>

#include "account/imap_account_internal.h"
#include "model/search_query.h"
#include "util/log.h"

/* Folders whose EXAMINE + UID SEARCH are in flight at once. */
#define SEARCH_BATCH 32
/* UIDs kept per folder: a bound on what a server's answer costs. */
#define SEARCH_HITS_PER_FOLDER_MAX 2000000

struct folder_search {
	guint64 ino;
	char *wire;
	guint sel_id;
	guint search_id;
	int rc;
	guint32 uidvalidity;
	GArray *uids;
};

static void folder_search_clear(void *p)
{
	struct folder_search *fs = p;

	g_free(fs->wire);
	if (fs->uids)
		g_array_unref(fs->uids);
}

/*
 * The reader of one batch: every wait of the batch is given it, since one
 * read can take in the answers of several commands. Each folder sent
 * EXAMINE then UID SEARCH, so command k of the batch is folder k / 2's,
 * its EXAMINE when k is even; untagged data belongs to the command after
 * the last one completed (imap_session_completed).
 */
struct batch_reader {
	struct imap_session *s;
	guint64 base;
	struct folder_search *folders;
	guint n;
};

static void on_batch_data(void *ud, const struct imap_response *r)
{
	struct batch_reader *br = ud;
	guint64 k = imap_session_completed(br->s) - br->base;
	struct folder_search *fs;

	if (k >= 2 * (guint64)br->n)
		return;
	fs = &br->folders[k / 2];
	if (k % 2 == 0) {
		if (r->code && strcmp(r->code, "UIDVALIDITY") == 0 && r->code_args.n >= 1)
			imap_value_u32(&r->code_args.items[0], &fs->uidvalidity);
	} else {
		imap_search_collect(r, fs->uids, SEARCH_HITS_PER_FOLDER_MAX);
	}
}

/* The folder a folder: path names ("%2F"-joined shown names from the
   mount's root), or 0. */
static guint64 resolve_folder(struct tree *t, const char *path)
{
	g_auto(GStrv) levels = g_strsplit(path, "%2F", -1);
	guint64 ino = TREE_ROOT_INO;

	for (guint i = 0; levels[i]; i++) {
		struct tree_entry e = { 0 };

		if (!*levels[i])
			continue;
		if (tree_lookup(t, ino, levels[i], FALSE, 0, &e) != 0 || e.kind != TREE_FOLDER)
			return 0;
		ino = e.ino;
	}
	return ino;
}

/* Is folder ino scope or below it? */
static gboolean within(struct tree *t, guint64 ino, guint64 scope)
{
	for (guint depth = 0; depth < 4096; depth++) {
		struct tree_entry e = { 0 };

		if (ino == scope)
			return TRUE;
		if (ino == TREE_ROOT_INO || tree_get(t, ino, 0, &e) != 0)
			return FALSE;
		ino = e.parent;
	}
	return FALSE;
}

static void log_query(const char *text, const char *why)
{
	g_autofree char *q = mfs_log_escape(text, strlen(text), 300);

	mfs_log_info("search \"%s\": %s", q, why);
}

/* The selectable folders query q searches under scope, in walk order. */
static int folders_of(struct imap_account *a, guint64 scope, const struct search_query *q,
		      const char *text, GArray *out)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_int64_hash, g_int64_equal);
	g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(guint64));

	if (q->folders->len == 0)
		tree_folder_subtree(a->tree, scope, all);
	for (guint i = 0; i < q->folders->len; i++) {
		const char *path = q->folders->pdata[i];
		guint64 ino = resolve_folder(a->tree, path);

		if (!ino) {
			g_autofree char *p = mfs_log_escape(path, strlen(path), 200);
			g_autofree char *why = g_strdup_printf(
				"folder:%s names no folder of the mount (hidden folders are not searched)", p);

			log_query(text, why);
			return -ENOENT;
		}
		/* Under a folder's .search, folder: narrows within it. */
		if (within(a->tree, ino, scope))
			tree_folder_subtree(a->tree, ino, all);
		else if (within(a->tree, scope, ino))
			tree_folder_subtree(a->tree, scope, all);
	}
	for (guint i = 0; i < all->len; i++) {
		guint64 *ino = &g_array_index(all, guint64, i);

		if (g_hash_table_add(seen, ino))
			g_array_append_val(out, *ino);
	}
	return 0;
}

/* One batch: EXAMINE and UID SEARCH of each folder, all sent, then read. */
static int run_batch(struct imap_session *s, struct folder_search *batch, guint n,
		     const struct imap_search_text *text, GError **err)
{
	struct batch_reader br = { .s = s, .base = imap_session_completed(s), .folders = batch,
				   .n = n };
	struct imap_handler h = { .untagged = on_batch_data, .ud = &br };

	for (guint i = 0; i < n; i++) {
		batch[i].sel_id = imap_select_send(s, batch[i].wire, TRUE, NULL, err);
		if (!batch[i].sel_id)
			return -EIO;
		batch[i].search_id = imap_send_parts(s, "UID SEARCH ",
						     &g_array_index(text->parts, struct imap_part, 0),
						     text->parts->len, TRUE, err);
		if (!batch[i].search_id)
			return -EIO;
	}
	for (guint i = 0; i < n; i++) {
		struct imap_select_info info = { 0 };
		struct imap_result res = { 0 };
		GError *e = NULL;
		int rc = imap_select_finish(s, batch[i].sel_id, batch[i].wire, TRUE, &h, &info, &e);

		/* A literal that waited for the server's go-ahead read the
		   EXAMINE's answer without this reader: the session kept it. */
		if (!batch[i].uidvalidity)
			batch[i].uidvalidity = info.uidvalidity;
		if (rc == 0)
			rc = imap_wait(s, batch[i].search_id, &h, &res, &e);
		else if (imap_session_alive(s))
			(void)imap_wait(s, batch[i].search_id, &h, NULL, NULL);
		batch[i].rc = rc;
		if (rc < 0 && !imap_session_alive(s)) {
			imap_result_clear(&res);
			g_propagate_error(err, e);
			return rc;
		}
		if (rc < 0 && (res.status == IMAP_STATUS_NO || res.status == IMAP_STATUS_BAD)) {
			/* The server refused the search itself (a key it does not
			   know, a charset): the query cannot be answered. */
			g_autofree char *words = res.text ? g_strdup(res.text) : g_strdup("");

			imap_result_clear(&res);
			g_clear_error(&e);
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
				    "the server refused the search: %s", words);
			return -ENOENT;
		}
		/* A folder that went away meanwhile has no hits. */
		imap_result_clear(&res);
		g_clear_error(&e);
	}
	return 0;
}

/* Can a batch go out at once? Not when a literal must wait for the
   server's go-ahead: that wait reads answers before their reader is set. */
static guint batch_size(struct imap_session *s, const struct imap_search_text *text)
{
	for (guint i = 0; i < text->parts->len; i++) {
		const struct imap_part *p = &g_array_index(text->parts, struct imap_part, i);

		if (p->literal && !imap_session_has(s, IMAP_CAP_LITERAL_PLUS) &&
		    !(imap_session_has(s, IMAP_CAP_LITERAL_MINUS) && p->len <= 4096))
			return 1;
	}
	return SEARCH_BATCH;
}

/* Is fs's folder listed under the generation searched? */
static gboolean listed_as_searched(struct imap_account *a, const struct folder_search *fs)
{
	struct tree_entry fe = { 0 };

	return tree_get(a->tree, fs->ino, 0, &fe) == 0 && fe.listed &&
	       fe.uidvalidity == fs->uidvalidity;
}

/* Does the tree show every hit of fs (else its folder is listed again)? */
static gboolean tree_shows_hits(struct imap_account *a, const struct folder_search *fs)
{
	if (!listed_as_searched(a, fs))
		return FALSE;
	for (guint i = 0; i < fs->uids->len; i++) {
		struct tree_entry e = { 0 };

		if (tree_folder_message(a->tree, fs->ino, g_array_index(fs->uids, guint32, i), FALSE,
					0, &e) != 0)
			return FALSE;
	}
	return TRUE;
}

/* The hits of fs the tree shows, and the way down to their folder from
   the scope, into hits. */
static void take_hits(struct imap_account *a, const struct folder_search *fs, guint64 scope,
		      struct search_hits *hits)
{
	gboolean any = FALSE;

	if (!listed_as_searched(a, fs))
		return;
	for (guint i = 0; i < fs->uids->len; i++) {
		struct tree_entry e = { 0 };
		guint32 uid = g_array_index(fs->uids, guint32, i);

		if (tree_folder_message(a->tree, fs->ino, uid, FALSE, 0, &e) == 0) {
			search_hits_add_uid(hits, fs->ino, uid);
			any = TRUE;
		}
	}
	for (guint64 child = fs->ino, depth = 0; any && child != scope && depth < 4096; depth++) {
		struct tree_entry e = { 0 };

		if (tree_get(a->tree, child, 0, &e) != 0)
			break;
		search_hits_add_kid(hits, e.parent, child);
		child = e.parent;
	}
}

static int search_now(struct imap_account *a, struct lease *l, const struct search_node_info *qi)
{
	g_autoptr(GError) perr = NULL;
	struct search_query *q = search_query_parse(qi->text, &perr);
	g_autoptr(GArray) folders = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GArray) batch = g_array_new(FALSE, TRUE, sizeof(struct folder_search));
	struct imap_search_text text = { 0 };
	struct imap_session *s = NULL;
	struct search_hits *hits;
	GError *err = NULL;
	guint64 gen = __atomic_load_n(&a->search_gen, __ATOMIC_ACQUIRE);
	g_autofree char *display = NULL;
	int rc;

	if (!q) {
		log_query(qi->text, perr->message);
		return -ENOENT;
	}
	g_array_set_clear_func(batch, folder_search_clear);
	rc = imap_account_refresh_list(a, FALSE, NULL);
	if (rc == -EINTR)
		goto out;
	rc = folders_of(a, qi->scope, q, qi->text, folders);
	if (rc < 0)
		goto out;
	rc = lease_borrow(l, NULL, &s);
	if (rc < 0)
		goto out;
	if (imap_search_key_uses(q->key, IMAP_SK_X_GM_RAW) &&
	    !imap_session_has(s, IMAP_CAP_X_GM_EXT_1)) {
		lease_give_back(l);
		log_query(qi->text, "raw: needs a server with X-GM-EXT-1 (Gmail)");
		rc = -ENOENT;
		goto out;
	}
	imap_search_render(q->key, imap_session_has(s, IMAP_CAP_ESEARCH), &text);
	display = g_strdup_printf("UID SEARCH %s", text.display);
	for (guint i = 0; i < folders->len; i++) {
		guint64 ino = g_array_index(folders, guint64, i);
		struct tree_entry e = { 0 };
		struct folder_search fs = { .ino = ino };

		if (tree_get(a->tree, ino, TREE_WANT_WIRE, &e) != 0 || !e.wire) {
			tree_entry_clear(&e);
			continue;
		}
		fs.wire = e.wire;
		e.wire = NULL;
		fs.uids = g_array_new(FALSE, FALSE, sizeof(guint32));
		g_array_append_val(batch, fs);
	}
	guint per = batch_size(s, &text);

	for (guint i = 0; i < batch->len && rc == 0; i += per)
		rc = run_batch(s, &g_array_index(batch, struct folder_search, i),
			       MIN(per, batch->len - i), &text, &err);
	lease_give_back(l);
	if (rc == -ENOENT) {
		log_query(qi->text, err->message);
		g_clear_error(&err);
		goto out;
	}
	if (rc < 0) {
		rc = lease_errno(l, rc, err, "search");
		goto out;
	}
	/* The folders with hits the tree does not show yet are listed now. */
	for (guint i = 0; i < batch->len; i++) {
		struct folder_search *fs = &g_array_index(batch, struct folder_search, i);

		if (fs->rc < 0 || fs->uids->len == 0 || tree_shows_hits(a, fs))
			continue;
		rc = imap_account_refresh_folder(a, l, fs->ino, TRUE);
		if (rc == -EINTR)
			goto out;
	}
	rc = 0;
	hits = search_hits_new();
	for (guint i = 0; i < batch->len; i++) {
		struct folder_search *fs = &g_array_index(batch, struct folder_search, i);

		if (fs->rc == 0 && fs->uids->len > 0)
			take_hits(a, fs, qi->scope, hits);
	}
	search_hits_finish(hits);
	mfs_log_debug(MFS_LOG_IMAP, "search \"%s\": %u folders", qi->text, batch->len);
	search_nodes_set_result(a->search_nodes, qi->ino, hits, display, account_now(),
				g_get_real_time() / G_USEC_PER_SEC, gen);
out:
	imap_search_text_clear(&text);
	search_query_free(q);
	return rc;
}

int imap_account_search(struct imap_account *a, struct lease *l, guint64 query)
{
	struct search_node_info qi;
	guint64 gen = __atomic_load_n(&a->search_gen, __ATOMIC_ACQUIRE);
	int rc;

	if (search_nodes_get(a->search_nodes, query, &qi) != 0 || qi.kind != SEARCH_NODE_QUERY) {
		search_node_info_clear(&qi);
		return -ENOENT;
	}
	if (search_nodes_fresh(a->search_nodes, query, account_now(),
			       (gint64)a->opts->refresh * G_USEC_PER_SEC, gen)) {
		search_node_info_clear(&qi);
		return 0;
	}
	rc = search_now(a, l, &qi);
	/* Offline, an older result still answers, as a folder's listing does. */
	if (rc == -EIO && search_nodes_contents(a->search_nodes, query, NULL, NULL))
		rc = 0;
	search_node_info_clear(&qi);
	return rc;
}

int imap_account_search_lookup(struct imap_account *a, struct lease *l, guint64 root,
			       const char *text, guint64 *query)
{
	g_autoptr(GError) err = NULL;
	struct search_query *q = search_query_parse(text, &err);

	*query = 0;
	if (!q) {
		log_query(text, err->message);
		return -ENOENT;
	}
	search_query_free(q);
	*query = search_nodes_query(a->search_nodes, root, text);
	if (!*query)
		return -ENOSPC;
	return imap_account_search(a, l, *query);
}

struct search_nodes *imap_account_search_nodes(struct imap_account *a)
{
	return a->search_nodes;
}

void account_search_changed(struct imap_account *a)
{
	__atomic_add_fetch(&a->search_gen, 1, __ATOMIC_RELEASE);
}
