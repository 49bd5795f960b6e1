/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/listing_index.h"

#include "model/names.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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

struct lindex {
	GVariant *v;
	struct lindex_head head;
	struct tree_msg_info *msgs;
	gsize n;
	const char **flag_table;
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

/* Split a NUL-separated blob into exactly n strings (pointers into it). */
static gboolean split_blob(const char *blob, gsize len, gsize n, const char **out)
{
	gsize at = 0;

	for (gsize i = 0; i < n; i++) {
		const char *end = at < len ? memchr(blob + at, '\0', len - at) : NULL;

		if (!end)
			return FALSE;
		out[i] = blob + at;
		at = (gsize)(end - blob) + 1;
	}
	return at == len;
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

/* Check the columns against each other and fill l->msgs. */
static gboolean take_columns(struct lindex *l, const char *path, GError **err)
{
	g_autoptr(GVariant) vu = g_variant_get_child_value(l->v, 7);
	g_autoptr(GVariant) vs = g_variant_get_child_value(l->v, 8);
	g_autoptr(GVariant) vd = g_variant_get_child_value(l->v, 9);
	g_autoptr(GVariant) vn = g_variant_get_child_value(l->v, 10);
	g_autoptr(GVariant) vf = g_variant_get_child_value(l->v, 11);
	g_autoptr(GVariant) vt = g_variant_get_child_value(l->v, 12);
	g_autoptr(GVariant) vo = g_variant_get_child_value(l->v, 13);
	gsize n, ns, nd, nf, nn, nt, no, flags_n = 0;
	const guint32 *uids = g_variant_get_fixed_array(vu, &n, sizeof(guint32));
	const guint64 *sizes = g_variant_get_fixed_array(vs, &ns, sizeof(guint64));
	const gint64 *dates = g_variant_get_fixed_array(vd, &nd, sizeof(gint64));
	const char *names = g_variant_get_fixed_array(vn, &nn, 1);
	const guint32 *fidx = g_variant_get_fixed_array(vf, &nf, sizeof(guint32));
	const char *fstr = g_variant_get_fixed_array(vt, &nt, 1);
	const char *objids = g_variant_get_fixed_array(vo, &no, 1);
	g_autofree const char **name_of = NULL;
	g_autofree const char **objid_of = NULL;

	if (n > MESSAGES_MAX || ns != n || nd != n || nf != n)
		return bad(err, path, "columns of different lengths");
	for (gsize i = 0; i < nt; i++)
		flags_n += fstr[i] == '\0';
	if (flags_n > n + 1)
		return bad(err, path, "too many flag strings");
	l->flag_table = g_new0(const char *, flags_n + 1);
	if (!split_blob(fstr, nt, flags_n, l->flag_table))
		return bad(err, path, "flag table is not NUL-separated");
	name_of = g_new(const char *, n ? n : 1);
	if (!split_blob(names, nn, n, name_of))
		return bad(err, path, "names do not match the UIDs");
	objid_of = g_new(const char *, n ? n : 1);
	if (!split_blob(objids, no, n, objid_of))
		return bad(err, path, "object ids do not match the UIDs");
	l->msgs = g_new0(struct tree_msg_info, n ? n : 1);
	for (gsize i = 0; i < n; i++) {
		guint32 uid;

		/* A name comes back into the tree as is: it must be one the
		   tree would make for this UID (no '/', valid UTF-8). */
		if ((i > 0 && uids[i] <= uids[i - 1]) || !names_parse_uid(name_of[i], &uid) ||
		    uid != uids[i] || strchr(name_of[i], '/') ||
		    !g_utf8_validate(name_of[i], -1, NULL))
			return bad(err, path, "a message name does not fit its UID");
		if (fidx[i] >= flags_n)
			return bad(err, path, "a flag index is out of range");
		if (strlen(objid_of[i]) > TREE_OBJID_MAX ||
		    (objid_of[i][0] && !l->head.objids))
			return bad(err, path, "an object id that cannot be");
		l->msgs[i].uid = uids[i];
		l->msgs[i].size = sizes[i];
		l->msgs[i].internaldate = dates[i];
		l->msgs[i].name = name_of[i];
		l->msgs[i].flags = l->flag_table[fidx[i]];
		l->msgs[i].objid = objid_of[i][0] ? objid_of[i] : NULL;
	}
	l->n = n;
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

const struct tree_msg_info *lindex_messages(const struct lindex *l, gsize *n)
{
	*n = l->n;
	return l->msgs;
}

void lindex_free(struct lindex *l)
{
	if (!l)
		return;
	g_free(l->msgs);
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
