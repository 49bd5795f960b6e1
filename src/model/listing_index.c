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
#define FORMAT_TAG "mailfs-listing-3"
/* tag, wire (bytes: a server's mailbox name need not be UTF-8), names mode,
   UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, whether object ids were asked for,
   then the columns: UIDs, sizes, dates, names blob, flag indices, flag
   strings blob, object ids blob ("" for none). */
#define FORMAT_TYPE "(sayuuutbauataxayauayay)"
/* More messages than an IMAP folder can list (UIDs are 32-bit) is garbage. */
#define MESSAGES_MAX ((gsize)G_MAXUINT32)

/* A column being written: bytes, grown by half (realloc of a big block
   moves pages, it does not copy them) or reserved exactly. GArray and
   GString round every capacity up to a power of two: up to as much again
   as slack at 1,000,000 messages. */
struct col {
	char *data;
	gsize len, cap;
};

struct lindex_writer {
	struct col uids;	 /* guint32 */
	struct col sizes;	 /* guint64 */
	struct col dates;	 /* gint64 */
	struct col names;	 /* NUL-separated */
	struct col flag_idx;	 /* guint32 */
	struct col flag_strings; /* NUL-separated, distinct */
	GHashTable *flag_table; /* flags -> index + 1 */
	struct col objids;	/* NUL-separated, "" for none */
};

static char *file_path(const char *dir, const char *wire)
{
	g_autofree char *hex = g_compute_checksum_for_string(G_CHECKSUM_SHA256, wire, -1);

	hex[32] = '\0';
	g_autofree char *base = g_strconcat(hex, ".idx", NULL);
	return g_build_filename(dir, base, NULL);
}

struct lindex_writer *lindex_writer_new(void)
{
	struct lindex_writer *w = g_new0(struct lindex_writer, 1);

	w->flag_table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return w;
}

static void col_free(struct col *c)
{
	g_free(c->data);
	memset(c, 0, sizeof(*c));
}

void lindex_writer_free(struct lindex_writer *w)
{
	if (!w)
		return;
	col_free(&w->uids);
	col_free(&w->sizes);
	col_free(&w->dates);
	col_free(&w->names);
	col_free(&w->flag_idx);
	col_free(&w->flag_strings);
	g_hash_table_destroy(w->flag_table);
	col_free(&w->objids);
	g_free(w);
}

static void col_reserve(struct col *c, gsize more)
{
	if (c->cap - c->len >= more)
		return;
	c->cap = c->len + more;
	c->data = g_realloc(c->data, c->cap);
}

static void col_add(struct col *c, const void *data, gsize len)
{
	if (c->cap - c->len < len)
		col_reserve(c, MAX(len, c->cap / 2 + 64));
	memcpy(c->data + c->len, data, len);
	c->len += len;
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
		col_add(&w->flag_strings, flags, strlen(flags) + 1);
	}
	idx--;
	col_add(&w->uids, &m->uid, sizeof(m->uid));
	col_add(&w->sizes, &size, sizeof(size));
	col_add(&w->dates, &date, sizeof(date));
	col_add(&w->names, m->name, strlen(m->name) + 1);
	col_add(&w->flag_idx, &idx, sizeof(idx));
	col_add(&w->objids, objid, strlen(objid) + 1);
}

void lindex_writer_reserve(struct lindex_writer *w, gsize n, gsize name_bytes, gsize objid_bytes)
{
	col_reserve(&w->uids, n * sizeof(guint32));
	col_reserve(&w->sizes, n * sizeof(guint64));
	col_reserve(&w->dates, n * sizeof(gint64));
	col_reserve(&w->names, name_bytes);
	col_reserve(&w->flag_idx, n * sizeof(guint32));
	col_reserve(&w->objids, objid_bytes);
}

/*
 * The file is FORMAT_TYPE in GVariant's serialised form, written member by
 * member from the writer's columns: building the GVariant would copy every
 * column once into it and once more into its serialised bytes (at 1,000,000
 * messages, 130 MB beside the tree). Serialised form of a tuple (GVariant
 * specification, "Structures"): each member at the next multiple of its
 * alignment; then the end offset of every variable-size member but the
 * last, little-endian, in reverse order, each of the smallest of 1, 2, 4, 8
 * bytes that can hold the total size. A test checks the bytes against
 * g_variant_get_data() of the same tuple.
 */
struct member {
	const void *data;
	gsize len;
	gsize align;
	gboolean framed; /* variable size and not last: its end goes in the table */
};

#define N_MEMBERS 14

static gsize pad_to(gsize at, gsize align)
{
	return (at + align - 1) & ~(align - 1);
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

static int write_all(int fd, const void *data, gsize len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t k = write(fd, p, MIN(len, (gsize)1 << 30));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		len -= (gsize)k;
	}
	return 0;
}

/* Write the members and the framing table to fd. 0 or -errno. */
static int write_tuple(int fd, const struct member *m, guint n)
{
	static const char zeros[8];
	gsize at = 0, ends[N_MEMBERS], osize;
	guint framed = 0;
	int rc = 0;

	for (guint i = 0; i < n; i++) {
		at = pad_to(at, m[i].align) + m[i].len;
		ends[i] = at;
		framed += m[i].framed != FALSE;
	}
	osize = offset_size(at, framed);
	at = 0;
	for (guint i = 0; i < n && rc == 0; i++) {
		gsize start = pad_to(at, m[i].align);

		rc = write_all(fd, zeros, start - at);
		if (rc == 0)
			rc = write_all(fd, m[i].data, m[i].len);
		at = start + m[i].len;
	}
	for (guint i = n; i-- > 0 && rc == 0;) {
		guint64 le = GUINT64_TO_LE((guint64)ends[i]);

		/* The low osize bytes of the little-endian value. */
		if (m[i].framed)
			rc = write_all(fd, &le, osize);
	}
	return rc;
}

static int write_file(int fd, const struct lindex_writer *w, const char *wire,
		      const struct lindex_head *head)
{
	guint32 mode = head->names_mode, uv = head->uidvalidity, next = head->uidnext;
	guint64 modseq = head->highestmodseq;
	guint8 objids = head->objids != FALSE;
	const struct member m[N_MEMBERS] = {
	    {FORMAT_TAG, sizeof(FORMAT_TAG), 1, TRUE},
	    {wire, strlen(wire) + 1, 1, TRUE}, /* a bytestring: with its NUL */
	    {&mode, 4, 4, FALSE},
	    {&uv, 4, 4, FALSE},
	    {&next, 4, 4, FALSE},
	    {&modseq, 8, 8, FALSE},
	    {&objids, 1, 1, FALSE},
	    {w->uids.data, w->uids.len, 4, TRUE},
	    {w->sizes.data, w->sizes.len, 8, TRUE},
	    {w->dates.data, w->dates.len, 8, TRUE},
	    {w->names.data, w->names.len, 1, TRUE},
	    {w->flag_idx.data, w->flag_idx.len, 4, TRUE},
	    {w->flag_strings.data, w->flag_strings.len, 1, TRUE},
	    {w->objids.data, w->objids.len, 1, FALSE},
	};

	return write_tuple(fd, m, N_MEMBERS);
}

gboolean lindex_writer_save(struct lindex_writer *w, const char *dir, const char *wire,
			    const struct lindex_head *head, GError **err)
{
	g_autofree char *path = file_path(dir, wire);
	g_autofree char *tmp = g_strconcat(path, ".XXXXXX", NULL);
	int fd, rc;

	if (g_mkdir_with_parents(dir, 0700) != 0) {
		int e = errno;

		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "%s: %s", dir,
			    g_strerror(e));
		lindex_writer_free(w);
		return FALSE;
	}
	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
	} else {
		rc = write_file(fd, w, wire, head);
		/* Durable before it replaces the old one (as
		   G_FILE_SET_CONTENTS_CONSISTENT does). */
		if (rc == 0 && fsync(fd) != 0)
			rc = -errno;
		if (close(fd) != 0 && rc == 0)
			rc = -errno;
		if (rc == 0 && rename(tmp, path) != 0)
			rc = -errno;
		if (rc < 0)
			unlink(tmp);
	}
	lindex_writer_free(w);
	if (rc < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-rc), "%s: %s",
			    fd < 0 ? tmp : path, g_strerror(-rc));
		return FALSE;
	}
	return TRUE;
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

/* The columns, as pointers into the mapping. */
enum { COL_UIDS, COL_SIZES, COL_DATES, COL_NAMES, COL_FLAG_IDX, COL_FLAG_STRINGS, COL_OBJIDS,
       N_COLS };

/* Where lindex_read is: the next message, its name's and object id's
   offsets in their blobs, and how far each column's pages were handed
   back. */
struct cursor {
	gsize i, name_at, objid_at;
	const char *dropped[N_COLS];
};

struct lindex {
	GVariant *v;
	struct lindex_head head;
	const guint32 *uids;
	const guint64 *sizes;
	const gint64 *dates;
	const guint32 *flag_idx;
	const char *names, *objids;
	gsize n, names_len, objids_len, flags_n;
	const char *col_start[N_COLS];
	const char **flag_table;
	struct cursor at;
};

/*
 * Pages of the mapping read already go back every this many messages: a
 * 1,000,000-message listing maps ~100 MB, and pages read stay resident
 * (in the daemon's RSS) until the mapping goes, beside the tree the
 * listing is loaded into (issue 22's 300 MB). A page handed back comes
 * back from the file if it is touched again.
 */
#define DROP_EVERY 16384

/* Hand back the whole pages of column c before `upto` not handed back yet. */
static void drop_read(struct lindex *l, struct cursor *c, int col, const void *upto)
{
	static gsize page;
	const char *from = c->dropped[col] ? c->dropped[col] : l->col_start[col];
	guintptr a, b;

	if (!page)
		page = (gsize)sysconf(_SC_PAGESIZE);
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
	*out = (struct tree_msg_info){ .uid = l->uids[i],
				       .size = l->sizes[i],
				       .internaldate = l->dates[i],
				       .name = name,
				       .flags = l->flag_table[l->flag_idx[i]],
				       .objid = objid[0] ? objid : NULL };
	c->i++;
	return NULL;
}

/* Check the columns against each other and every message, handing the
   pages back as it goes (lindex_read reads them again). */
static gboolean take_columns(struct lindex *l, const char *path, GError **err)
{
	GVariant *col[N_COLS];
	gsize len[N_COLS];
	gsize size_of[N_COLS] = { sizeof(guint32), sizeof(guint64), sizeof(gint64), 1,
				  sizeof(guint32), 1, 1 };
	struct cursor c = { 0 };
	const char *fstr;

	for (int k = 0; k < N_COLS; k++) {
		/* Children of a serialised GVariant are slices of the mapping. */
		col[k] = g_variant_get_child_value(l->v, 7 + k);
		l->col_start[k] = g_variant_get_fixed_array(col[k], &len[k], size_of[k]);
		g_variant_unref(col[k]);
	}
	l->uids = (const guint32 *)l->col_start[COL_UIDS];
	l->sizes = (const guint64 *)l->col_start[COL_SIZES];
	l->dates = (const gint64 *)l->col_start[COL_DATES];
	l->flag_idx = (const guint32 *)l->col_start[COL_FLAG_IDX];
	l->names = l->col_start[COL_NAMES];
	l->names_len = len[COL_NAMES];
	l->objids = l->col_start[COL_OBJIDS];
	l->objids_len = len[COL_OBJIDS];
	l->n = len[COL_UIDS];
	if (l->n > MESSAGES_MAX || len[COL_SIZES] != l->n || len[COL_DATES] != l->n ||
	    len[COL_FLAG_IDX] != l->n)
		return bad(err, path, "columns of different lengths");
	fstr = l->col_start[COL_FLAG_STRINGS];
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

struct lindex *lindex_load(const char *dir, const char *wire, guint32 names_mode,
			   gboolean objids, GError **err)
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
		other_settings(err, path,
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
		if (l->at.i % DROP_EVERY == 0)
			drop_columns(l, &l->at);
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
	g_variant_unref(l->v);
	g_free(l);
}

void lindex_remove(const char *dir, const char *wire)
{
	g_autofree char *path = file_path(dir, wire);

	if (unlink(path) != 0 && errno != ENOENT)
		mfs_log_warn("cannot remove the saved listing %s: %s", path, g_strerror(errno));
}
