/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The IMAP view's hidden .parts directories (mailfs(1), PARTS): a message
 * opened up into its text, headers, attachments and parts. `.parts` (in the
 * mount's root only) is answered by lookup, never by a readdir of the root.
 * Below it, a mirror of the folders; in a folder, a directory per message
 * (its file name without ".eml"); in a message's directory, what
 * model/mime_view.h lays out of its structure (account/imap_account.h,
 * parts.c). Everything here is read-only.
 */
#include "fs/fs_imap_internal.h"

#include <errno.h>
#include <string.h>

#include "model/parts_nodes.h"

static struct parts_nodes *nodes(struct mfs_imap_fs *fs)
{
	return imap_account_parts_nodes(fs->account);
}

static void fill_attr(const struct mfs_imap_fs *fs, guint64 ino, gboolean dir, guint64 size,
		      gint64 mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = dir ? S_IFDIR | 0500 : S_IFREG | 0400;
	st->st_nlink = dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = dir ? 4096 : (off_t)size;
	st->st_blocks = dir ? 8 : (blkcnt_t)((size + 511) / 512);
	st->st_blksize = 4096;
	st->st_mtime = mtime;
	st->st_ctime = mtime;
	st->st_atime = mtime;
}

/* The date a node shows: its folder's or its message's. */
static gint64 node_mtime(struct mfs_imap_fs *fs, const struct parts_node_info *n)
{
	struct tree_entry e = { 0 };

	if (tree_get(fs->tree, n->kind == PARTS_NODE_MIRROR ? n->folder : n->message, 0, &e) != 0)
		return 0;
	return e.mtime;
}

/* What a message or parts/ directory node shows: its structure (held in
   *ps) and entries. 0 or -errno. */
static int view_of(struct mfs_imap_fs *fs, fuse_req_t req, const struct parts_node_info *n,
		   gboolean parts_dir, struct parts_structure **ps, GPtrArray **entries)
{
	const struct mime_structure *s;
	const struct mime_part *msg = NULL;
	struct lease l;
	int rc;

	fs_lease_begin(fs, req, &l);
	rc = imap_account_structure(fs->account, &l, n->message, ps);
	fs_lease_end(req, &l);
	if (rc < 0)
		return rc;
	s = parts_structure_get(*ps);
	if (*n->section) {
		msg = mime_structure_find(s, n->section);
		if (!msg) {
			parts_structure_unref(*ps);
			*ps = NULL;
			return -ENOENT;
		}
	}
	*entries = parts_dir ? mime_view_parts(s, msg) : mime_view_message(s, msg);
	return 0;
}

/* The entry file node n shows, with what holds it. 0 or -errno. */
static int entry_of(struct mfs_imap_fs *fs, fuse_req_t req, const struct parts_node_info *n,
		    struct parts_structure **ps, GPtrArray **entries, const struct mime_entry **me)
{
	int rc = view_of(fs, req, n, n->in_parts, ps, entries);

	if (rc < 0)
		return rc;
	*me = mime_view_find(*entries, n->name);
	if (!*me || (*me)->kind == MIME_ENTRY_PARTS_DIR || (*me)->kind == MIME_ENTRY_MESSAGE_DIR) {
		g_ptr_array_unref(*entries);
		parts_structure_unref(*ps);
		return -ENOENT;
	}
	return 0;
}

/* The size of file node n, worked out (the part made) when not known. */
static int file_size(struct mfs_imap_fs *fs, fuse_req_t req, const struct parts_node_info *n,
		     guint64 *size)
{
	struct parts_structure *ps;
	GPtrArray *entries;
	const struct mime_entry *me;
	struct part_data pd;
	struct lease l;
	int rc;

	if (n->size_known) {
		*size = n->size;
		return 0;
	}
	rc = entry_of(fs, req, n, &ps, &entries, &me);
	if (rc < 0)
		return rc;
	fs_lease_begin(fs, req, &l);
	rc = imap_account_part_open(fs->account, &l, n->message, me, &pd);
	fs_lease_end(req, &l);
	g_ptr_array_unref(entries);
	parts_structure_unref(ps);
	if (rc < 0)
		return rc;
	*size = pd.size;
	part_data_clear(&pd);
	parts_nodes_set_size(nodes(fs), n->ino, *size);
	return 0;
}

/* Attributes of node ino, a file's size worked out when needed. */
static int node_attr(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino, struct stat *st)
{
	struct parts_node_info n;
	guint64 size = 0;
	int rc;

	if (parts_nodes_get(nodes(fs), ino, &n) != 0)
		return -ENOENT;
	rc = n.kind == PARTS_NODE_FILE ? file_size(fs, req, &n, &size) : 0;
	if (rc == 0)
		fill_attr(fs, ino, n.kind != PARTS_NODE_FILE, size, node_mtime(fs, &n), st);
	parts_node_info_clear(&n);
	return rc;
}

static void reply_entry(struct mfs_imap_fs *fs, fuse_req_t req, guint64 ino)
{
	struct fuse_entry_param ep = { 0 };
	int rc;

	if (!ino) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	rc = node_attr(fs, req, ino, &ep.attr);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	ep.ino = ino;
	ep.generation = 1;
	/* A message's parts never change: only its going away does. */
	ep.attr_timeout = fs_imap_timeout(fs);
	ep.entry_timeout = fs_imap_timeout(fs);
	fuse_reply_entry(req, &ep);
}

/* In the mirror of folder: a child folder, or a message without ".eml". */
static void lookup_in_mirror(struct mfs_imap_fs *fs, fuse_req_t req,
			     const struct parts_node_info *n, const char *name)
{
	struct tree_entry e = { 0 };
	g_autofree char *file = g_strconcat(name, ".eml", NULL);
	struct lease l;
	int rc;

	fs_lease_begin(fs, req, &l);
	rc = imap_account_refresh_dir(fs->account, &l, n->folder);
	fs_lease_end(req, &l);
	if (rc == -EINTR) {
		fuse_reply_err(req, EINTR);
		return;
	}
	if (tree_lookup(fs->tree, n->folder, name, FALSE, 0, &e) == 0 && e.kind == TREE_FOLDER) {
		reply_entry(fs, req, parts_nodes_mirror(nodes(fs), e.ino));
		return;
	}
	if (tree_lookup(fs->tree, n->folder, file, FALSE, 0, &e) == 0 && e.kind == TREE_MESSAGE) {
		reply_entry(fs, req, parts_nodes_message(nodes(fs), n->folder, e.ino, ""));
		return;
	}
	fuse_reply_err(req, ENOENT);
}

static void lookup_in_view(struct mfs_imap_fs *fs, fuse_req_t req,
			   const struct parts_node_info *n, const char *name)
{
	struct parts_structure *ps;
	GPtrArray *entries;
	const struct mime_entry *me;
	guint64 ino = 0;
	int rc = view_of(fs, req, n, n->kind == PARTS_NODE_PARTS_DIR, &ps, &entries);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	me = mime_view_find(entries, name);
	if (!me)
		rc = -ENOENT;
	else if (me->kind == MIME_ENTRY_PARTS_DIR)
		ino = parts_nodes_parts_dir(nodes(fs), n->ino);
	else if (me->kind == MIME_ENTRY_MESSAGE_DIR)
		ino = parts_nodes_message(nodes(fs), n->folder, n->message, me->section);
	else
		ino = parts_nodes_file(nodes(fs), n->ino, name);
	g_ptr_array_unref(entries);
	parts_structure_unref(ps);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_entry(fs, req, ino);
}

void fs_parts_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct parts_node_info n;

	if (!parts_is_node(parent)) {
		/* MOUNT/.parts: the mirror of the root. */
		reply_entry(fs, req, parts_nodes_mirror(nodes(fs), TREE_ROOT_INO));
		return;
	}
	if (parts_nodes_get(nodes(fs), parent, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n.kind == PARTS_NODE_MIRROR)
		lookup_in_mirror(fs, req, &n, name);
	else if (n.kind == PARTS_NODE_FILE)
		fuse_reply_err(req, ENOTDIR);
	else
		lookup_in_view(fs, req, &n, name);
	parts_node_info_clear(&n);
}

void fs_parts_getattr(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct stat st;
	int rc = node_attr(fs, req, ino, &st);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, fs_imap_timeout(fs));
}

/* One entry of a folder's listing, copied out of the tree's lock. */
struct listed {
	char *name;
	guint64 ino;
	gboolean folder;
	guint64 next_off;
};

struct listing {
	GArray *items; /* struct listed */
	guint max;
};

static gboolean take_listed(void *ud, const char *name, const struct tree_entry *e,
			    guint64 next_off)
{
	struct listing *li = ud;
	struct listed it = { .ino = e->ino, .folder = e->kind == TREE_FOLDER, .next_off = next_off };

	if (li->items->len >= li->max)
		return FALSE;
	it.name = it.folder || strcmp(name, ".") == 0 || strcmp(name, "..") == 0
			  ? g_strdup(name)
			  : g_strndup(name, strlen(name) - (g_str_has_suffix(name, ".eml") ? 4 : 0));
	g_array_append_val(li->items, it);
	return TRUE;
}

static void clear_listed(void *p)
{
	g_free(((struct listed *)p)->name);
}

static void list_mirror(struct dirbuf *d, const struct parts_node_info *n, guint64 off)
{
	struct listing li = { .items = g_array_new(FALSE, FALSE, sizeof(struct listed)),
			      /* no more than a reply can hold */
			      .max = (guint)(d->size / 24) + 2 };

	g_array_set_clear_func(li.items, clear_listed);
	tree_readdir(d->fs->tree, n->folder, off, FALSE, take_listed, &li);
	for (guint i = 0; i < li.items->len; i++) {
		struct listed *it = &g_array_index(li.items, struct listed, i);
		gboolean dot = strcmp(it->name, ".") == 0 || strcmp(it->name, "..") == 0;
		guint64 ino = dot ? n->ino
			    : it->folder ? parts_nodes_mirror(nodes(d->fs), it->ino)
					 : parts_nodes_message(nodes(d->fs), n->folder, it->ino, "");
		struct stat st;

		if (!ino)
			break;
		fill_attr(d->fs, ino, TRUE, 0, 0, &st);
		if (!fs_dirbuf_add(d, it->name, &st, !dot, 0, it->next_off))
			break;
	}
	g_array_unref(li.items);
}

static void list_view(struct dirbuf *d, const struct parts_node_info *n, guint64 off)
{
	struct parts_structure *ps;
	GPtrArray *entries;
	struct stat st;
	int rc = view_of(d->fs, d->req, n, n->kind == PARTS_NODE_PARTS_DIR, &ps, &entries);

	if (rc < 0)
		return;
	fill_attr(d->fs, n->ino, TRUE, 0, 0, &st);
	if ((off >= 1 || fs_dirbuf_add(d, ".", &st, FALSE, 0, 1)) &&
	    (off >= 2 || fs_dirbuf_add(d, "..", &st, FALSE, 0, 2))) {
		for (guint i = 0; i < entries->len; i++) {
			const struct mime_entry *me = entries->pdata[i];
			gboolean dir = me->kind == MIME_ENTRY_PARTS_DIR ||
				       me->kind == MIME_ENTRY_MESSAGE_DIR;
			guint64 key = 3 + i, ino;

			if (key <= off)
				continue;
			ino = me->kind == MIME_ENTRY_PARTS_DIR
				      ? parts_nodes_parts_dir(nodes(d->fs), n->ino)
			      : me->kind == MIME_ENTRY_MESSAGE_DIR
				      ? parts_nodes_message(nodes(d->fs), n->folder, n->message,
							    me->section)
				      : parts_nodes_file(nodes(d->fs), n->ino, me->name);
			if (!ino)
				break;
			/* A file's size is known only once its part is made: it is
			   listed without attributes (no lookup reference), so the
			   kernel asks for them when wanted (ls -l, not ls). */
			fill_attr(d->fs, ino, dir, 0, 0, &st);
			if (!fs_dirbuf_add(d, me->name, &st, dir, fs_imap_timeout(d->fs), key))
				break;
		}
	}
	g_ptr_array_unref(entries);
	parts_structure_unref(ps);
}

void fs_parts_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, gboolean plus)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct dirbuf d = { .fs = fs, .req = req, .size = size, .plus = plus };
	struct parts_node_info n;

	if (parts_nodes_get(nodes(fs), ino, &n) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n.kind == PARTS_NODE_FILE) {
		parts_node_info_clear(&n);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (n.kind == PARTS_NODE_MIRROR && off == 0) {
		struct lease l;
		int rc;

		fs_lease_begin(fs, req, &l);
		rc = imap_account_refresh_dir(fs->account, &l, n.folder);
		fs_lease_end(req, &l);
		if (rc == -EINTR) {
			parts_node_info_clear(&n);
			fuse_reply_err(req, EINTR);
			return;
		}
	}
	d.buf = g_malloc(size);
	if (n.kind == PARTS_NODE_MIRROR)
		list_mirror(&d, &n, (guint64)off);
	else
		list_view(&d, &n, (guint64)off);
	fuse_reply_buf(req, d.buf, d.used);
	g_free(d.buf);
	parts_node_info_clear(&n);
}

static void drop_open(struct mfs_imap_fs *fs, struct part_data *pd);

void fs_parts_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	struct parts_node_info n;
	struct parts_structure *ps;
	GPtrArray *entries;
	const struct mime_entry *me;
	struct part_data *pd;
	struct lease l;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (parts_nodes_get(nodes(fs), ino, &n) != 0 || n.kind != PARTS_NODE_FILE) {
		parts_node_info_clear(&n);
		fuse_reply_err(req, EISDIR);
		return;
	}
	rc = entry_of(fs, req, &n, &ps, &entries, &me);
	if (rc < 0) {
		parts_node_info_clear(&n);
		fuse_reply_err(req, -rc);
		return;
	}
	pd = g_new0(struct part_data, 1);
	fs_lease_begin(fs, req, &l);
	rc = imap_account_part_open(fs->account, &l, n.message, me, pd);
	fs_lease_end(req, &l);
	g_ptr_array_unref(entries);
	parts_structure_unref(ps);
	if (rc == 0)
		parts_nodes_set_size(nodes(fs), ino, pd->size);
	parts_node_info_clear(&n);
	if (rc < 0) {
		g_free(pd);
		fuse_reply_err(req, -rc);
		return;
	}
	mfs_mutex_lock(&fs->opens_lock);
	g_hash_table_add(fs->part_opens, pd);
	mfs_mutex_unlock(&fs->opens_lock);
	fi->fh = (uint64_t)(uintptr_t)pd;
	/* A part's bytes never change: the kernel may keep what it read. */
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) != 0)
		drop_open(fs, pd);
}

gssize fs_parts_pread(struct fuse_file_info *fi, char *buf, size_t size, off_t off)
{
	return part_data_read((struct part_data *)(uintptr_t)fi->fh, buf, size, (guint64)off);
}

void fs_parts_free_open(void *p)
{
	struct part_data *pd = p;

	part_data_clear(pd);
	g_free(pd);
}

/* Forget an open file's bytes (its release, or a failed open). */
static void drop_open(struct mfs_imap_fs *fs, struct part_data *pd)
{
	gboolean ours;

	mfs_mutex_lock(&fs->opens_lock);
	ours = g_hash_table_remove(fs->part_opens, pd);
	mfs_mutex_unlock(&fs->opens_lock);
	if (ours)
		fs_parts_free_open(pd);
}

void fs_parts_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	drop_open(fuse_req_userdata(req), (struct part_data *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* The user.mime.* attributes of a file node: name -> value, appended. */
static int mime_attrs(struct mfs_imap_fs *fs, fuse_req_t req, fuse_ino_t ino, GPtrArray *names,
		      GPtrArray *values)
{
	struct parts_node_info n;
	struct parts_structure *ps;
	GPtrArray *entries;
	const struct mime_entry *me;
	int rc;

	if (parts_nodes_get(nodes(fs), ino, &n) != 0)
		return -ENOENT;
	if (n.kind != PARTS_NODE_FILE) {
		parts_node_info_clear(&n);
		return 0;
	}
	rc = entry_of(fs, req, &n, &ps, &entries, &me);
	parts_node_info_clear(&n);
	if (rc < 0)
		return rc;
	if (me->part && me->kind != MIME_ENTRY_HEADERS) {
		const char *charset = mime_param_get(me->part->params, "charset");

		g_ptr_array_add(names, g_strdup("user.mime.type"));
		g_ptr_array_add(values, g_strdup_printf("%s/%s", me->part->type, me->part->subtype));
		if (charset) {
			g_ptr_array_add(names, g_strdup("user.mime.charset"));
			g_ptr_array_add(values, g_strdup(charset));
		}
		g_ptr_array_add(names, g_strdup("user.mime.encoding"));
		g_ptr_array_add(values, g_strdup(me->part->encoding));
	}
	g_ptr_array_add(names, g_strdup("user.mime.section"));
	g_ptr_array_add(values, g_strdup(me->section));
	g_ptr_array_unref(entries);
	parts_structure_unref(ps);
	return 0;
}

void fs_parts_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func(g_free);
	int rc = mime_attrs(fs, req, ino, names, values);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	for (guint i = 0; i < names->len; i++) {
		if (strcmp(names->pdata[i], name) == 0) {
			fs_reply_xattr_value(req, values->pdata[i], size);
			return;
		}
	}
	fuse_reply_err(req, ENODATA);
}

void fs_parts_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mfs_imap_fs *fs = fuse_req_userdata(req);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) list = g_string_new(NULL);
	int rc = mime_attrs(fs, req, ino, names, values);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	for (guint i = 0; i < names->len; i++)
		g_string_append_len(list, names->pdata[i], (gssize)strlen(names->pdata[i]) + 1);
	fs_reply_xattr_names(req, list->str, list->len, size);
}
