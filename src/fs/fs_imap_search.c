/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The IMAP view's hidden .search directories (mailfs(1), SEARCH): lookup,
 * getattr, readdir and the user.mailfs.query attribute of the directories
 * model/search_nodes.h numbers. `.search` is answered by lookup only, never
 * by a readdir of its folder, so rsync, find, du and grep -r never walk into
 * it. The files of a result are the messages themselves (the tree's inode
 * numbers and lookup counts), so reads and attributes are the folder's.
 */
#include "fs/fs_imap_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "model/names.h"
#include "model/search_nodes.h"

#define QUERY_XATTR "user.mailfs.query"

/* Offsets of a result directory's entries, as the tree's (model/tree.h). */
#define OFF_FOLDER_BASE 3
#define OFF_MSG_BASE ((guint64)1 << 33)

static struct search_nodes *nodes(struct mfs_imap_fs *fs)
{
	return imap_account_search_nodes(fs->account);
}

static void fill_dir_attr(const struct mfs_imap_fs *fs, const struct search_node_info *n,
			  struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	/* Read-only: names here are made by searching, not by writing. */
	st->st_mode = S_IFDIR | 0500;
	st->st_nlink = 2;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = 4096;
	st->st_blocks = 8;
	st->st_blksize = 4096;
	st->st_mtime = n->made_at_wall ? n->made_at_wall : time(NULL);
	st->st_ctime = st->st_mtime;
	st->st_atime = st->st_mtime;
}

static void reply_dir_entry(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino)
{
	struct fuse_entry_param ep = { 0 };
	struct search_node_info n;

	if (search_nodes_get(nodes(fs), ino, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	ep.ino = ino;
	ep.generation = 1;
	fill_dir_attr(fs, &n, &ep.attr);
	ep.attr_timeout = fs_imap_timeout(fs);
	ep.entry_timeout = fs_imap_timeout(fs);
	search_node_info_clear(&n);
	fuse_reply_entry(req, &ep);
}

/* The query result n shows, searched first when there is none (or it is
   old, with `fresh`). 0 or -errno. */
static int ensure_result(struct mfs_imap_fs *fs, fuse_req_t req, const struct search_node_info *n,
			 gboolean fresh)
{
	struct lease l;
	int rc;

	if (!fresh && search_nodes_contents(nodes(fs), n->ino, NULL, NULL))
		return 0;
	fs_lease_begin(fs, req, &l);
	rc = imap_account_search(fs->account, &l, n->query);
	fs_lease_end(req, &l);
	return rc;
}

/* The name of tree folder ino, or NULL. */
static char *folder_name(struct mfs_imap_fs *fs, guint64 ino)
{
	struct tree_entry e = { 0 };

	if (tree_get(fs->tree, ino, TREE_WANT_NAME, &e) != 0)
		return NULL;
	return e.name;
}

static void lookup_in_result(struct mfs_imap_fs *fs, fuse_req_t req,
			     const struct search_node_info *n, const char *name)
{
	g_autoptr(GArray) kids = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));
	struct tree_entry e = { 0 };
	guint32 uid;
	int rc = ensure_result(fs, req, n, FALSE);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	search_nodes_contents(nodes(fs), n->ino, kids, uids);
	for (guint i = 0; i < kids->len; i++) {
		guint64 kid = g_array_index(kids, guint64, i);
		g_autofree char *kname = folder_name(fs, kid);

		if (kname && strcmp(kname, name) == 0) {
			guint64 ino = search_nodes_mirror(nodes(fs), n->query, kid);

			if (!ino)
				fuse_reply_err(req, ENOSPC);
			else
				reply_dir_entry(fs, req, ino);
			return;
		}
	}
	if (names_parse_uid(name, &uid)) {
		for (guint i = 0; i < uids->len; i++) {
			if (g_array_index(uids, guint32, i) != uid)
				continue;
			if (tree_lookup(fs->tree, n->folder, name, TRUE, 0, &e) == 0) {
				fs_imap_reply_entry(fs, req, &e);
				return;
			}
			break;
		}
	}
	fuse_reply_err(req, ENOENT);
}

void fs_search_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct search_node_info n;

	if (!search_is_node(parent)) {
		/* FOLDER/.search: one root per folder (and the mount's root). */
		struct tree_entry e = { 0 };
		guint64 root;

		if (tree_get(fs->tree, parent, 0, &e) != 0 || e.kind != TREE_FOLDER || e.gone) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		root = search_nodes_root(nodes(fs), parent);
		if (!root)
			fuse_reply_err(req, ENOSPC);
		else
			reply_dir_entry(fs, req, root);
		return;
	}
	if (search_nodes_get(nodes(fs), parent, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n.kind == SEARCH_NODE_ROOT) {
		struct lease l;
		guint64 query;
		int rc;

		fs_lease_begin(fs, req, &l);
		rc = imap_account_search_lookup(fs->account, &l, parent, name, &query);
		fs_lease_end(req, &l);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			reply_dir_entry(fs, req, query);
	} else {
		lookup_in_result(fs, req, &n, name);
	}
	search_node_info_clear(&n);
}

void fs_search_getattr(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct search_node_info n;
	struct stat st;

	if (search_nodes_get(nodes(fs), ino, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_dir_attr(fs, &n, &st);
	search_node_info_clear(&n);
	fuse_reply_attr(req, &st, fs_imap_timeout(fs));
}

static gboolean add_node(struct dirbuf *d, const char *name, guint64 ino, guint64 next_off)
{
	struct search_node_info n;
	struct stat st;

	if (search_nodes_get(nodes(d->fs), ino, &n) != 0)
		return TRUE;
	fill_dir_attr(d->fs, &n, &st);
	search_node_info_clear(&n);
	/* Nodes live as long as the mount: the lookup count is not kept. */
	return fs_dirbuf_add(d, name, &st, TRUE, fs_imap_timeout(d->fs), next_off);
}

static void list_root(struct dirbuf *d, const struct search_node_info *n, guint64 off)
{
	g_autoptr(GArray) inos = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

	search_nodes_queries(nodes(d->fs), n->ino, inos, names);
	for (guint i = 0; i < inos->len; i++) {
		guint64 key = OFF_FOLDER_BASE + i;

		if (key <= off)
			continue;
		if (!add_node(d, names->pdata[i], g_array_index(inos, guint64, i), key))
			return;
	}
}

static void list_result(struct dirbuf *d, const struct search_node_info *n, guint64 off)
{
	g_autoptr(GArray) kids = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));

	search_nodes_contents(nodes(d->fs), n->ino, kids, uids);
	for (guint i = 0; i < kids->len; i++) {
		guint64 kid = g_array_index(kids, guint64, i);
		guint64 key = OFF_FOLDER_BASE + kid;
		g_autofree char *name = NULL;
		guint64 ino;

		if (key <= off)
			continue;
		name = folder_name(d->fs, kid);
		ino = name ? search_nodes_mirror(nodes(d->fs), n->query, kid) : 0;
		if (ino && !add_node(d, name, ino, key))
			return;
	}
	for (guint i = 0; i < uids->len; i++) {
		guint32 uid = g_array_index(uids, guint32, i);
		guint64 key = OFF_MSG_BASE + uid;
		struct tree_entry e = { 0 };
		struct stat st;

		if (key <= off)
			continue;
		/* readdirplus hands the kernel one reference per message entry. */
		if (tree_folder_message(d->fs->tree, n->folder, uid, d->plus, TREE_WANT_NAME, &e) != 0)
			continue;
		fs_imap_fill_attr(d->fs, &e, &st);
		if (!fs_dirbuf_add(d, e.name, &st, TRUE, fs_imap_timeout(d->fs), key)) {
			if (d->plus)
				tree_forget(d->fs->tree, e.ino, 1);
			tree_entry_clear(&e);
			return;
		}
		tree_entry_clear(&e);
	}
}

void fs_search_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct dirbuf d = { .fs = fs, .req = req, .size = size, .plus = plus };
	struct search_node_info n;
	struct stat dot;

	if (search_nodes_get(nodes(fs), ino, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n.kind != SEARCH_NODE_ROOT && off == 0) {
		/* A listing from its start is the moment to search again. */
		int rc = ensure_result(fs, req, &n, TRUE);

		if (rc < 0) {
			search_node_info_clear(&n);
			fuse_reply_err(req, -rc);
			return;
		}
		search_node_info_clear(&n);
		search_nodes_get(nodes(fs), ino, &n);
	}
	d.buf = g_malloc(size);
	fill_dir_attr(fs, &n, &dot);
	if ((off >= 1 || fs_dirbuf_add(&d, ".", &dot, FALSE, 0, 1)) &&
	    (off >= 2 || fs_dirbuf_add(&d, "..", &dot, FALSE, 0, 2))) {
		if (n.kind == SEARCH_NODE_ROOT)
			list_root(&d, &n, (guint64)off);
		else
			list_result(&d, &n, (guint64)off);
	}
	fuse_reply_buf(req, d.buf, d.used);
	g_free(d.buf);
	search_node_info_clear(&n);
}

void fs_search_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct search_node_info n;
	g_autofree char *display = NULL;

	if (search_nodes_get(nodes(fs), ino, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n.kind == SEARCH_NODE_QUERY && strcmp(name, QUERY_XATTR) == 0)
		display = search_nodes_display(nodes(fs), ino);
	search_node_info_clear(&n);
	if (display)
		fs_reply_xattr_value(req, display, size);
	else
		fuse_reply_err(req, ENODATA);
}

void fs_search_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct search_node_info n;
	gboolean query;

	if (search_nodes_get(nodes(fs), ino, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	query = n.kind == SEARCH_NODE_QUERY;
	search_node_info_clear(&n);
	fs_reply_xattr_names(req, QUERY_XATTR, query ? sizeof(QUERY_XATTR) : 0, size);
}
