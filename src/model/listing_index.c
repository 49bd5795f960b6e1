/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/listing_index.h"

#include "model/names.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Bumped whenever the layout below changes: an older file is just not used. */
#define FORMAT_TAG "mailfs-listing-4"
/* tag, wire (bytes: a server's mailbox name need not be UTF-8), names mode,
   UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, whether object ids were asked for,
   then the columns: UIDs, sizes, dates, names blob, flag indices, object
   ids blob ("" for none), flag strings blob (last: the one column whose
   size is known only once every message is in). */
#define FORMAT_TYPE "(sayuuutbauataxayauayay)"
/* More messages than an IMAP folder can list (UIDs are 32-bit) is garbage. */
#define MESSAGES_MAX ((gsize)G_MAXUINT32)

/*
 * The file is FORMAT_TYPE in GVariant's serialised form, written member by
 * member at offsets known from the sizes the writer is made with, each
 * column straight into its place in the file through a small buffer: no
 * column is held in memory (at 1,000,000 messages with object ids, ~90 MB
 * beside the tree). Serialised form of a tuple (GVariant specification,
 * "Structures"): each member at the next multiple of its alignment (the
 * padding is the file's holes: zeros); then the end offset of every
 * variable-size member but the last, little-endian, in reverse order, each
 * of the smallest of 1, 2, 4, 8 bytes that can hold the total size. A
 * test checks the bytes against g_variant_get_data() of the same tuple.
 */
/* The columns, in file order after the head's members. */
enum {
	COL_UIDS,
	COL_SIZES,
	COL_DATES,
	COL_NAMES,
	COL_FLAG_IDX,
	COL_OBJIDS,
	COL_FLAG_STRINGS,
	N_COLS
};
/* Columns the writer streams into place: all but the flag strings. */
#define N_STREAMED COL_FLAG_STRINGS
/* Bytes an element: of a message for the fixed-size columns, 1 for a blob. */
static const guint8 col_elem[N_COLS] = {
    sizeof(guint32), sizeof(guint64), sizeof(gint64), 1, sizeof(guint32), 1, 1};

enum { M_TAG, M_WIRE, M_MODE, M_UIDVALIDITY, M_UIDNEXT, M_MODSEQ, M_OBJIDS, M_HEAD_END };
#define M_COL(c)  (M_HEAD_END + (c))
#define N_MEMBERS M_COL(N_COLS)

static const guint8 member_align[N_MEMBERS] = {1, 1, 4, 4, 4, 8, 1, 4, 8, 8, 1, 4, 1, 1};

/* A column's bytes go to the file a buffer at a time (a column smaller
   than this gets a buffer of its size: a folder of ten messages, a few
   hundred bytes). */
#define COL_BUF (64 * 1024)

struct col {
	gsize start; /* where it starts in the file */
	gsize room;  /* the bytes the writer was made for */
	gsize len;   /* the bytes given so far (written and in buf) */
	gsize buffered, cap;
	char *buf;
};

struct lindex_writer {
	int fd;
	int rc;	   /* the first -errno; -EOVERFLOW: not the messages it was made for */
	char *tmp; /* the new file, renamed over path by lindex_writer_save */
	char *path;
	char *wire;
	gsize member_start[N_MEMBERS]; /* all but the flag strings' */
	gsize member_end[N_MEMBERS];
	struct col col[N_STREAMED];
	GHashTable *flag_table; /* flags -> index + 1 */
	GString *flag_strings;	/* NUL-separated, distinct */
};

static char *file_path(const char *dir, const char *wire)
{
	g_autofree char *hex = g_compute_checksum_for_string(G_CHECKSUM_SHA256, wire, -1);

	hex[32] = '\0';
	g_autofree char *base = g_strconcat(hex, ".idx", NULL);
	return g_build_filename(dir, base, NULL);
}

static gsize pad_to(gsize at, gsize align)
{
	return (at + align - 1) & ~(align - 1);
}

static int pwrite_all(int fd, const void *data, gsize len, gsize at)
{
	const char *p = data;

	while (len > 0) {
		ssize_t k = pwrite(fd, p, MIN(len, (gsize)1 << 30), (off_t)at);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		at += (gsize)k;
		len -= (gsize)k;
	}
	return 0;
}

struct lindex_writer *lindex_writer_new(const char *dir, const char *wire, gsize n,
					gsize name_bytes, gsize objid_bytes, GError **err)
{
	struct lindex_writer *w = g_new0(struct lindex_writer, 1);
	gsize len[N_MEMBERS] = {[M_TAG] = sizeof(FORMAT_TAG),
				[M_WIRE] = strlen(wire) + 1, /* a bytestring: with its NUL */
				[M_MODE] = 4,
				[M_UIDVALIDITY] = 4,
				[M_UIDNEXT] = 4,
				[M_MODSEQ] = 8,
				[M_OBJIDS] = 1};
	gsize at = 0;

	for (int c = 0; c < N_STREAMED; c++)
		len[M_COL(c)] = n * col_elem[c];
	len[M_COL(COL_NAMES)] = name_bytes;
	len[M_COL(COL_OBJIDS)] = objid_bytes;
	w->fd = -1;
	w->path = file_path(dir, wire);
	w->wire = g_strdup(wire);
	w->flag_table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	w->flag_strings = g_string_new(NULL);
	for (int i = 0; i < M_COL(COL_FLAG_STRINGS); i++) {
		w->member_start[i] = pad_to(at, member_align[i]);
		at = w->member_end[i] = w->member_start[i] + len[i];
	}
	for (int c = 0; c < N_STREAMED; c++) {
		w->col[c].start = w->member_start[M_COL(c)];
		w->col[c].room = len[M_COL(c)];
		w->col[c].cap = CLAMP(w->col[c].room, 1, COL_BUF);
		w->col[c].buf = g_malloc(w->col[c].cap);
	}
	if (g_mkdir_with_parents(dir, 0700) != 0) {
		w->rc = -errno;
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-w->rc), "%s: %s", dir,
			    g_strerror(-w->rc));
		lindex_writer_free(w);
		return NULL;
	}
	w->tmp = g_strconcat(w->path, ".XXXXXX", NULL);
	w->fd = g_mkstemp_full(w->tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		w->rc = -errno;
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-w->rc), "%s: %s", w->tmp,
			    g_strerror(-w->rc));
		g_clear_pointer(&w->tmp, g_free);
		lindex_writer_free(w);
		return NULL;
	}
	return w;
}

void lindex_writer_free(struct lindex_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp)
		unlink(w->tmp);
	for (int c = 0; c < N_STREAMED; c++)
		g_free(w->col[c].buf);
	g_hash_table_destroy(w->flag_table);
	g_string_free(w->flag_strings, TRUE);
	g_free(w->tmp);
	g_free(w->path);
	g_free(w->wire);
	g_free(w);
}

static void col_flush(struct lindex_writer *w, struct col *c)
{
	if (w->rc == 0 && c->buffered)
		w->rc = pwrite_all(w->fd, c->buf, c->buffered, c->start + c->len - c->buffered);
	c->buffered = 0;
}

static void col_add(struct lindex_writer *w, int which, const void *data, gsize len)
{
	struct col *c = &w->col[which];
	const char *p = data;

	if (w->rc < 0)
		return;
	if (len > c->room - c->len) {
		w->rc = -EOVERFLOW;
		return;
	}
	while (len > 0) {
		gsize k = MIN(len, c->cap - c->buffered);

		memcpy(c->buf + c->buffered, p, k);
		c->buffered += k;
		c->len += k;
		p += k;
		len -= k;
		if (c->buffered == c->cap)
			col_flush(w, c);
	}
}

void lindex_writer_add(void *writer, const struct tree_msg_info *m)
{
	struct lindex_writer *w = writer;
	const char *flags = m->flags ? m->flags : "";
	const char *objid = m->objid ? m->objid : "";
	guint32 idx = GPOINTER_TO_UINT(g_hash_table_lookup(w->flag_table, flags));
	gint64 date = m->internaldate;
	guint64 size = m->size;

	if (idx == 0) {
		idx = g_hash_table_size(w->flag_table) + 1;
		g_hash_table_insert(w->flag_table, g_strdup(flags), GUINT_TO_POINTER(idx));
		g_string_append_len(w->flag_strings, flags, (gssize)strlen(flags) + 1);
	}
	idx--;
	col_add(w, COL_UIDS, &m->uid, sizeof(m->uid));
	col_add(w, COL_SIZES, &size, sizeof(size));
	col_add(w, COL_DATES, &date, sizeof(date));
	col_add(w, COL_NAMES, m->name, strlen(m->name) + 1);
	col_add(w, COL_FLAG_IDX, &idx, sizeof(idx));
	col_add(w, COL_OBJIDS, objid, strlen(objid) + 1);
}

static gsize offset_size(gsize body, guint n_offsets)
{
	if (body + n_offsets <= G_MAXUINT8)
		return 1;
	if (body + 2 * n_offsets <= G_MAXUINT16)
		return 2;
	if (body + 4 * n_offsets <= G_MAXUINT32)
		return 4;
	return 8;
}

/* The head, the flag strings and the framing table, after the columns. */
static int finish_file(struct lindex_writer *w, const struct lindex_head *head)
{
	guint32 mode = head->names_mode, uv = head->uidvalidity, next = head->uidnext;
	guint64 modseq = head->highestmodseq;
	guint8 objids = head->objids != FALSE;
	const void *fixed[M_HEAD_END] = {FORMAT_TAG, w->wire, &mode, &uv, &next, &modseq, &objids};
	/* Variable-size members, all framed but the last (the flag strings). */
	static const int framed[] = {M_TAG,
				     M_WIRE,
				     M_COL(COL_UIDS),
				     M_COL(COL_SIZES),
				     M_COL(COL_DATES),
				     M_COL(COL_NAMES),
				     M_COL(COL_FLAG_IDX),
				     M_COL(COL_OBJIDS)};
	gsize body, osize, at;
	int rc = 0;

	for (int c = 0; c < N_STREAMED; c++) {
		col_flush(w, &w->col[c]);
		if (w->rc == 0 && w->col[c].len != w->col[c].room)
			w->rc = -EOVERFLOW;
	}
	if (w->rc < 0)
		return w->rc;
	for (int i = 0; i < M_HEAD_END && rc == 0; i++)
		rc = pwrite_all(w->fd, fixed[i], w->member_end[i] - w->member_start[i],
				w->member_start[i]);
	at = w->member_end[M_COL(COL_OBJIDS)];
	if (rc == 0)
		rc = pwrite_all(w->fd, w->flag_strings->str, w->flag_strings->len, at);
	body = at + w->flag_strings->len;
	osize = offset_size(body, G_N_ELEMENTS(framed));
	at = body;
	for (gsize i = G_N_ELEMENTS(framed); i-- > 0 && rc == 0;) {
		guint64 le = GUINT64_TO_LE((guint64)w->member_end[framed[i]]);

		/* The low osize bytes of the little-endian value. */
		rc = pwrite_all(w->fd, &le, osize, at);
		at += osize;
	}
	return rc;
}

gboolean lindex_writer_save(struct lindex_writer *w, const struct lindex_head *head, GError **err)
{
	int rc = finish_file(w, head);

	/* Durable before it replaces the old one (as
	   G_FILE_SET_CONTENTS_CONSISTENT does). */
	if (rc == 0 && fsync(w->fd) != 0)
		rc = -errno;
	if (close(w->fd) != 0 && rc == 0)
		rc = -errno;
	w->fd = -1;
	if (rc == 0 && rename(w->tmp, w->path) != 0)
		rc = -errno;
	if (rc == 0)
		g_clear_pointer(&w->tmp, g_free); /* nothing to remove */
	if (rc == -EOVERFLOW)
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: the listing changed while it was written", w->path);
	else if (rc < 0)
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-rc), "%s: %s", w->path,
			    g_strerror(-rc));
	lindex_writer_free(w);
	return rc == 0;
}

static gboolean bad(GError **err, const char *path, const char *why)
{
	g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: %s", path, why);
	return FALSE;
}

/* Sound, but made under another format or other settings (an upgrade, a
   changed option): nothing is wrong, it just cannot stand for this one. */
static void other_settings(GError **err, const char *path, const char *why)
{
	g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: %s", path, why);
}

/* Where lindex_read is: the next message, its name's and object id's
   offsets in their blobs, and how far each column's pages were handed
   back. */
struct cursor {
	gsize i, name_at, objid_at;
	const char *dropped[N_COLS];
};

struct lindex {
	GVariant *v;
	GVariant *cols[N_COLS]; /* held: the columns are read in place */
	struct lindex_head head;
	const guint32 *uids;
	const guint64 *sizes;
	const gint64 *dates;
	const guint32 *flag_idx;
	const char *names, *objids;
	gsize n, names_len, objids_len, flags_n;
	const char **flag_table;
	struct cursor at;
};

/*
 * Pages of the mapping read already go back (a 1,000,000-message listing
 * maps ~100 MB, and pages read stay resident, in the daemon's RSS, until
 * the mapping goes, beside the tree the listing is loaded into: issue
 * 22's 300 MB): every this many messages while lindex_load checks them,
 * and at each lindex_read those the last call gave. A page handed back
 * comes back from the file if it is touched again.
 */
#define DROP_EVERY 16384

/* Hand back the whole pages of column c before `upto` not handed back yet. */
static void drop_read(struct lindex *l, struct cursor *c, int col, const void *upto)
{
	const gsize page = (gsize)sysconf(_SC_PAGESIZE); /* glibc: from the aux vector */
	const char *from = c->dropped[col] ? c->dropped[col] : g_variant_get_data(l->cols[col]);
	guintptr a, b;

	a = ((guintptr)from + page - 1) & ~(guintptr)(page - 1);
	b = (guintptr)upto & ~(guintptr)(page - 1);
	if (b > a && madvise((void *)a, b - a, MADV_DONTNEED) == 0)
		c->dropped[col] = (const char *)b;
}

static void drop_columns(struct lindex *l, struct cursor *c)
{
	drop_read(l, c, COL_UIDS, l->uids + c->i);
	drop_read(l, c, COL_SIZES, l->sizes + c->i);
	drop_read(l, c, COL_DATES, l->dates + c->i);
	drop_read(l, c, COL_NAMES, l->names + c->name_at);
	drop_read(l, c, COL_FLAG_IDX, l->flag_idx + c->i);
	drop_read(l, c, COL_OBJIDS, l->objids + c->objid_at);
}

/* The next NUL-terminated string of a blob at *at (moved past it), or NULL
   when the blob ends first. */
static const char *blob_next(const char *blob, gsize len, gsize *at)
{
	const char *s = blob + *at;
	const char *end = *at < len ? memchr(s, '\0', len - *at) : NULL;

	if (!end)
		return NULL;
	*at = (gsize)(end - blob) + 1;
	return s;
}

/* Message c->i into out, c moved past it; NULL, or why it is not one the
   tree would take. */
static const char *decode(const struct lindex *l, struct cursor *c, struct tree_msg_info *out)
{
	gsize i = c->i;
	const char *name = blob_next(l->names, l->names_len, &c->name_at);
	const char *objid = blob_next(l->objids, l->objids_len, &c->objid_at);
	guint32 uid;

	if (!name)
		return "names do not match the UIDs";
	if (!objid)
		return "object ids do not match the UIDs";
	/* A name comes back into the tree as is: it must be one the tree
	   would make for this UID (no '/', valid UTF-8). */
	if ((i > 0 && l->uids[i] <= l->uids[i - 1]) || !names_parse_uid(name, &uid) ||
	    uid != l->uids[i] || strchr(name, '/') || !g_utf8_validate(name, -1, NULL))
		return "a message name does not fit its UID";
	if (l->flag_idx[i] >= l->flags_n)
		return "a flag index is out of range";
	if (strlen(objid) > TREE_OBJID_MAX || (objid[0] && !l->head.objids))
		return "an object id that cannot be";
	*out = (struct tree_msg_info){.uid = l->uids[i],
				      .size = l->sizes[i],
				      .internaldate = l->dates[i],
				      .name = name,
				      .flags = l->flag_table[l->flag_idx[i]],
				      .objid = objid[0] ? objid : NULL};
	c->i++;
	return NULL;
}

/* Check the columns against each other and every message, handing the
   pages back as it goes (lindex_read reads them again). */
static gboolean take_columns(struct lindex *l, const char *path, GError **err)
{
	const char *start[N_COLS];
	gsize len[N_COLS];
	struct cursor c = {0};
	const char *fstr;

	for (int k = 0; k < N_COLS; k++) {
		/* A child of a serialised GVariant is a slice of the mapping. */
		l->cols[k] = g_variant_get_child_value(l->v, M_COL(k));
		start[k] = g_variant_get_fixed_array(l->cols[k], &len[k], col_elem[k]);
	}
	l->uids = (const guint32 *)start[COL_UIDS];
	l->sizes = (const guint64 *)start[COL_SIZES];
	l->dates = (const gint64 *)start[COL_DATES];
	l->flag_idx = (const guint32 *)start[COL_FLAG_IDX];
	l->names = start[COL_NAMES];
	l->names_len = len[COL_NAMES];
	l->objids = start[COL_OBJIDS];
	l->objids_len = len[COL_OBJIDS];
	l->n = len[COL_UIDS];
	if (l->n > MESSAGES_MAX || len[COL_SIZES] != l->n || len[COL_DATES] != l->n ||
	    len[COL_FLAG_IDX] != l->n)
		return bad(err, path, "columns of different lengths");
	fstr = start[COL_FLAG_STRINGS];
	for (gsize i = 0; i < len[COL_FLAG_STRINGS]; i++)
		l->flags_n += fstr[i] == '\0';
	if (l->flags_n > l->n + 1)
		return bad(err, path, "too many flag strings");
	l->flag_table = g_new0(const char *, l->flags_n + 1);
	for (gsize i = 0, at = 0; i < l->flags_n; i++)
		l->flag_table[i] = blob_next(fstr, len[COL_FLAG_STRINGS], &at);
	if (len[COL_FLAG_STRINGS] && fstr[len[COL_FLAG_STRINGS] - 1] != '\0')
		return bad(err, path, "flag table is not NUL-separated");
	while (c.i < l->n) {
		struct tree_msg_info m;
		const char *why = decode(l, &c, &m);

		if (why)
			return bad(err, path, why);
		if (c.i % DROP_EVERY == 0)
			drop_columns(l, &c);
	}
	if (c.name_at != l->names_len)
		return bad(err, path, "names do not match the UIDs");
	if (c.objid_at != l->objids_len)
		return bad(err, path, "object ids do not match the UIDs");
	drop_columns(l, &c);
	return TRUE;
}

struct lindex *lindex_load(const char *dir, const char *wire, guint32 names_mode, gboolean objids,
			   GError **err)
{
	g_autofree char *path = file_path(dir, wire);
	g_autoptr(GMappedFile) mf = NULL;
	g_autoptr(GBytes) bytes = NULL;
	const char *tag, *saved_wire;
	struct lindex *l;

	mf = g_mapped_file_new(path, FALSE, err);
	if (!mf)
		return NULL;
	bytes = g_mapped_file_get_bytes(mf);
	l = g_new0(struct lindex, 1);
	l->v =
	    g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE(FORMAT_TYPE), bytes, FALSE));
	g_variant_get(l->v, "(&s^&ayuuutb@au@at@ax@ay@au@ay@ay)", &tag, &saved_wire,
		      &l->head.names_mode, &l->head.uidvalidity, &l->head.uidnext,
		      &l->head.highestmodseq, &l->head.objids, NULL, NULL, NULL, NULL, NULL, NULL,
		      NULL);
	if (strcmp(tag, FORMAT_TAG) != 0)
		other_settings(err, path, "not a listing of this format");
	else if (strcmp(saved_wire, wire) != 0)
		bad(err, path, "the listing of another mailbox");
	else if (l->head.names_mode != names_mode)
		other_settings(err, path, "names made under another `names` setting");
	else if (!l->head.objids != !objids)
		other_settings(
		    err, path,
		    objids ? "made without object ids (hardlinks off, or the server did not offer "
			     "them)"
			   : "made with object ids (hardlinks on, and the server offered them)");
	else if (l->head.uidvalidity == 0)
		bad(err, path, "no UIDVALIDITY");
	else if (take_columns(l, path, err))
		return l;
	lindex_free(l);
	return NULL;
}

const struct lindex_head *lindex_head(const struct lindex *l)
{
	return &l->head;
}

gsize lindex_count(const struct lindex *l)
{
	return l->n;
}

guint32 lindex_max_uid(const struct lindex *l)
{
	return l->n ? l->uids[l->n - 1] : 0;
}

gsize lindex_read(void *index, struct tree_msg_info *out, gsize max)
{
	struct lindex *l = index;
	gsize k = 0;

	/* What the last call gave is no longer the caller's: its pages go. */
	drop_columns(l, &l->at);
	for (; k < max && l->at.i < l->n; k++) {
		const char *why = decode(l, &l->at, &out[k]);

		if (why) {
			/* Checked at the load; the file is replaced by rename,
			   never written in place: only a hand could change it. */
			mfs_log_warn("saved listing: message %zu of %zu: %s (changed since it "
				     "was loaded?); the rest is not used",
				     l->at.i + 1, l->n, why);
			l->at.i = l->n;
			break;
		}
	}
	return k;
}

void lindex_rewind(struct lindex *l)
{
	memset(&l->at, 0, sizeof(l->at));
}

void lindex_free(struct lindex *l)
{
	if (!l)
		return;
	g_free(l->flag_table);
	for (int k = 0; k < N_COLS; k++)
		if (l->cols[k])
			g_variant_unref(l->cols[k]);
	g_variant_unref(l->v);
	g_free(l);
}

void lindex_remove(const char *dir, const char *wire)
{
	g_autofree char *path = file_path(dir, wire);

	if (unlink(path) != 0 && errno != ENOENT)
		mfs_log_warn("cannot remove the saved listing %s: %s", path, g_strerror(errno));
}
