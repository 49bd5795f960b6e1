/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/listing_index.h"

#include "model/names.h"
#include "util/log.h"

#include <errno.h>
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

struct lindex_writer {
	GArray *uids;		/* guint32 */
	GArray *sizes;		/* guint64 */
	GArray *dates;		/* gint64 */
	GString *names;		/* NUL-separated */
	GArray *flag_idx;	/* guint32 */
	GString *flag_strings;	/* NUL-separated, distinct */
	GHashTable *flag_table; /* flags -> index + 1 */
	GString *objids;	/* NUL-separated, "" for none */
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

	w->uids = g_array_new(FALSE, FALSE, sizeof(guint32));
	w->sizes = g_array_new(FALSE, FALSE, sizeof(guint64));
	w->dates = g_array_new(FALSE, FALSE, sizeof(gint64));
	w->names = g_string_new(NULL);
	w->flag_idx = g_array_new(FALSE, FALSE, sizeof(guint32));
	w->flag_strings = g_string_new(NULL);
	w->flag_table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	w->objids = g_string_new(NULL);
	return w;
}

void lindex_writer_free(struct lindex_writer *w)
{
	if (!w)
		return;
	g_array_unref(w->uids);
	g_array_unref(w->sizes);
	g_array_unref(w->dates);
	g_string_free(w->names, TRUE);
	g_array_unref(w->flag_idx);
	g_string_free(w->flag_strings, TRUE);
	g_hash_table_destroy(w->flag_table);
	g_string_free(w->objids, TRUE);
	g_free(w);
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
	g_array_append_val(w->uids, m->uid);
	g_array_append_val(w->sizes, size);
	g_array_append_val(w->dates, date);
	g_string_append_len(w->names, m->name, (gssize)strlen(m->name) + 1);
	g_array_append_val(w->flag_idx, idx);
	g_string_append_len(w->objids, objid, (gssize)strlen(objid) + 1);
}

static GVariant *column(const GVariantType *t, const void *data, gsize n, gsize elem)
{
	return g_variant_new_fixed_array(t, data, n, elem);
}

gboolean lindex_writer_save(struct lindex_writer *w, const char *dir, const char *wire,
			    const struct lindex_head *head, GError **err)
{
	g_autofree char *path = file_path(dir, wire);
	GVariant *v;
	gboolean ok;

	if (g_mkdir_with_parents(dir, 0700) != 0) {
		int e = errno;

		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "%s: %s", dir,
			    g_strerror(e));
		lindex_writer_free(w);
		return FALSE;
	}
	v = g_variant_new(
	    "(s^ayuuutb@au@at@ax@ay@au@ay@ay)", FORMAT_TAG, wire, head->names_mode,
	    head->uidvalidity, head->uidnext, head->highestmodseq, head->objids != FALSE,
	    column(G_VARIANT_TYPE_UINT32, w->uids->data, w->uids->len, sizeof(guint32)),
	    column(G_VARIANT_TYPE_UINT64, w->sizes->data, w->sizes->len, sizeof(guint64)),
	    column(G_VARIANT_TYPE_INT64, w->dates->data, w->dates->len, sizeof(gint64)),
	    column(G_VARIANT_TYPE_BYTE, w->names->str, w->names->len, 1),
	    column(G_VARIANT_TYPE_UINT32, w->flag_idx->data, w->flag_idx->len, sizeof(guint32)),
	    column(G_VARIANT_TYPE_BYTE, w->flag_strings->str, w->flag_strings->len, 1),
	    column(G_VARIANT_TYPE_BYTE, w->objids->str, w->objids->len, 1));
	g_variant_ref_sink(v);
	/* The columns are copied into v: the writer's memory can go first. */
	lindex_writer_free(w);
	ok = g_file_set_contents_full(path, g_variant_get_data(v), (gssize)g_variant_get_size(v),
				      G_FILE_SET_CONTENTS_CONSISTENT, 0600, err);
	g_variant_unref(v);
	return ok;
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
