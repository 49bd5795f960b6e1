/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/listing_index.h"

#include "protocol/imap_client.h"

#include <glib/gstdio.h>
#include <string.h>

struct fixture {
	char *dir;
	struct tree_msg_info *read; /* what read_all read last */
};

static void setup(struct fixture *f, gconstpointer data)
{
	(void)data;
	f->dir = g_dir_make_tmp("lindex-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
}

static void teardown(struct fixture *f, gconstpointer data)
{
	g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
	const char *name;

	(void)data;
	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(f->dir, name, NULL);

		g_unlink(p);
	}
	g_rmdir(f->dir);
	g_free(f->dir);
	g_free(f->read);
}

/* Every message of l, read a few at a time (chunks end at odd places);
   kept in f until the next call. Checks the count and highest UID said. */
static const struct tree_msg_info *read_all(struct fixture *f, struct lindex *l, gsize *n)
{
	gsize want = lindex_count(l), got = 0, k;

	g_free(f->read);
	f->read = g_new0(struct tree_msg_info, want + 1);
	lindex_rewind(l);
	while ((k = lindex_read(l, f->read + got, MIN(7, want + 1 - got))) > 0)
		got += k;
	g_assert_cmpuint(got, ==, want);
	g_assert_cmpuint(lindex_read(l, f->read, 1), ==, 0);
	g_assert_cmpuint(lindex_max_uid(l), ==, got ? f->read[got - 1].uid : 0);
	*n = got;
	return f->read;
}

static const struct lindex_head head = {
    .uidvalidity = 1234,
    .uidnext = 10,
    .highestmodseq = 1ull << 40,
    .names_mode = 0,
};

static void save_with(struct fixture *f, const char *wire, const struct lindex_head *h,
		      const struct tree_msg_info *m, gsize n)
{
	struct lindex_writer *w;
	GError *err = NULL;
	gsize name_bytes = 0, objid_bytes = 0;

	/* Sized first, as the saver does (account/listing_saver.c). */
	for (gsize i = 0; i < n; i++) {
		name_bytes += strlen(m[i].name) + 1;
		objid_bytes += (m[i].objid ? strlen(m[i].objid) : 0) + 1;
	}
	w = lindex_writer_new(f->dir, wire, n, name_bytes, objid_bytes, &err);
	g_assert_no_error(err);
	for (gsize i = 0; i < n; i++)
		lindex_writer_add(w, &m[i]);
	g_assert_true(lindex_writer_save(w, h, &err));
	g_assert_no_error(err);
}

static void save(struct fixture *f, const char *wire, const struct tree_msg_info *m, gsize n)
{
	save_with(f, wire, &head, m, n);
}

static const struct tree_msg_info three[] = {
    {.uid = 3, .size = 100, .internaldate = -5, .flags = "\\Seen", .name = "3-Hi.eml"},
    {.uid = 7, .size = 1ull << 33, .internaldate = 1700000000, .flags = "", .name = "7-Grüße.eml"},
    {.uid = 9, .size = 0, .internaldate = 0, .flags = "\\Seen", .name = "9.eml"},
};

static void test_roundtrip(struct fixture *f, gconstpointer data)
{
	GError *err = NULL;
	struct lindex *l;
	const struct tree_msg_info *m;
	gsize n;

	(void)data;
	save(f, "INBOX", three, G_N_ELEMENTS(three));
	l = lindex_load(f->dir, "INBOX", 0, FALSE, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(lindex_head(l)->uidvalidity, ==, 1234);
	g_assert_cmpuint(lindex_head(l)->uidnext, ==, 10);
	g_assert_cmpuint(lindex_head(l)->highestmodseq, ==, 1ull << 40);
	m = read_all(f, l, &n);
	g_assert_cmpuint(n, ==, 3);
	for (gsize i = 0; i < n; i++) {
		g_assert_cmpuint(m[i].uid, ==, three[i].uid);
		g_assert_cmpuint(m[i].size, ==, three[i].size);
		g_assert_cmpint(m[i].internaldate, ==, three[i].internaldate);
		g_assert_cmpstr(m[i].flags, ==, three[i].flags);
		g_assert_cmpstr(m[i].name, ==, three[i].name);
		g_assert_null(m[i].subject);
		g_assert_null(m[i].objid);
	}
	lindex_free(l);

	/* Another mailbox: none; another names mode: made under other settings. */
	g_assert_null(lindex_load(f->dir, "INBOX/Sub", 0, FALSE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
	g_clear_error(&err);
	g_assert_null(lindex_load(f->dir, "INBOX", 1, FALSE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED);
	g_clear_error(&err);

	/* Empty listings are listings too; remove forgets. */
	save(f, "Empty", NULL, 0);
	l = lindex_load(f->dir, "Empty", 0, FALSE, &err);
	g_assert_no_error(err);
	read_all(f, l, &n);
	g_assert_cmpuint(n, ==, 0);
	lindex_free(l);
	lindex_remove(f->dir, "Empty");
	g_assert_null(lindex_load(f->dir, "Empty", 0, FALSE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
	g_clear_error(&err);
}

static char *only_file(struct fixture *f)
{
	g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);

	return g_build_filename(f->dir, g_dir_read_name(d), NULL);
}

/* Whatever the bytes, a damaged file is refused, never half-used. */
static void test_damaged(struct fixture *f, gconstpointer data)
{
	g_autofree char *path = NULL;
	g_autofree char *good = NULL;
	gsize len;
	GError *err = NULL;

	(void)data;
	save(f, "INBOX", three, G_N_ELEMENTS(three));
	path = only_file(f);
	g_assert_true(g_file_get_contents(path, &good, &len, NULL));
	/* Every truncation, and every single-byte change, in the file. */
	for (gsize cut = 0; cut < len; cut++) {
		struct lindex *l;

		g_assert_true(g_file_set_contents(path, good, (gssize)cut, NULL));
		l = lindex_load(f->dir, "INBOX", 0, FALSE, &err);
		g_assert_null(l);
		g_clear_error(&err);
	}
	for (gsize at = 0; at < len; at++) {
		g_autofree char *bad = g_memdup2(good, len);
		struct lindex *l;
		const struct tree_msg_info *m;
		gsize n;

		bad[at] ^= 0x5a;
		g_assert_true(g_file_set_contents(path, bad, (gssize)len, NULL));
		l = lindex_load(f->dir, "INBOX", 0, FALSE, &err);
		if (!l) {
			g_clear_error(&err);
			continue;
		}
		/* A change that kept it valid (a size, a date, a flag) must
		   still give names that fit their UIDs. */
		m = read_all(f, l, &n);
		for (gsize i = 0; i < n; i++) {
			guint32 uid;

			g_assert_true(g_str_has_suffix(m[i].name, ".eml"));
			g_assert_null(strchr(m[i].name, '/'));
			g_assert_nonnull(m[i].flags);
			g_assert_null(m[i].objid);
			(void)uid;
		}
		lindex_free(l);
	}
}

/* A listing of an older format (its tag says so) is made under other
   settings, not damaged: G_FILE_ERROR_FAILED, which the caller does not
   warn of (every folder has one after an upgrade). */
static void test_older_format(struct fixture *f, gconstpointer data)
{
	g_autofree char *path = NULL;
	g_autofree char *bytes = NULL;
	char *tag;
	gsize len;
	GError *err = NULL;

	(void)data;
	save(f, "INBOX", three, G_N_ELEMENTS(three));
	path = only_file(f);
	g_assert_true(g_file_get_contents(path, &bytes, &len, NULL));
	tag = memmem(bytes, len, "mailfs-listing-", strlen("mailfs-listing-"));
	g_assert_nonnull(tag);
	tag[strlen("mailfs-listing-")] = '2';
	g_assert_true(g_file_set_contents(path, bytes, (gssize)len, NULL));
	g_assert_null(lindex_load(f->dir, "INBOX", 0, FALSE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED);
	g_clear_error(&err);
}

/* Object ids come back as saved (NULL and "" are none), and a listing is
   used only by a caller asking for them as it was made. */
static void test_objids(struct fixture *f, gconstpointer data)
{
	g_autofree char *longest = g_strnfill(TREE_OBJID_MAX, 'x');
	const struct tree_msg_info with[] = {
	    {.uid = 3, .flags = "", .name = "3.eml", .objid = "EM6f8c2a1b"},
	    {.uid = 4, .flags = "", .name = "4.eml", .objid = NULL},
	    {.uid = 5, .flags = "", .name = "5.eml", .objid = ""},
	    {.uid = 6, .flags = "", .name = "6.eml", .objid = "G1278455344230334865"},
	    {.uid = 7, .flags = "", .name = "7.eml", .objid = longest},
	};
	struct lindex_head h = head;
	GError *err = NULL;
	struct lindex *l;
	const struct tree_msg_info *m;
	gsize n;

	(void)data;
	h.objids = TRUE;
	save_with(f, "INBOX", &h, with, G_N_ELEMENTS(with));
	l = lindex_load(f->dir, "INBOX", 0, TRUE, &err);
	g_assert_no_error(err);
	g_assert_true(lindex_head(l)->objids);
	m = read_all(f, l, &n);
	g_assert_cmpuint(n, ==, 5);
	g_assert_cmpstr(m[0].objid, ==, "EM6f8c2a1b");
	g_assert_null(m[1].objid);
	g_assert_null(m[2].objid);
	g_assert_cmpstr(m[3].objid, ==, "G1278455344230334865");
	g_assert_cmpstr(m[4].objid, ==, longest);
	lindex_free(l);

	/* Made asking for ids, loaded by a caller that does not: unusable. */
	g_assert_null(lindex_load(f->dir, "INBOX", 0, FALSE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED);
	g_clear_error(&err);

	/* And the reverse. */
	save(f, "INBOX", three, G_N_ELEMENTS(three));
	g_assert_null(lindex_load(f->dir, "INBOX", 0, TRUE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_FAILED);
	g_clear_error(&err);
	l = lindex_load(f->dir, "INBOX", 0, FALSE, &err);
	g_assert_no_error(err);
	g_assert_false(lindex_head(l)->objids);
	lindex_free(l);

	/* Ids in a listing said to be made without them: a damaged file. */
	save(f, "INBOX", with, G_N_ELEMENTS(with));
	g_assert_null(lindex_load(f->dir, "INBOX", 0, FALSE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
	g_clear_error(&err);
}

/* An id longer than the tree takes is never saved back as valid. */
static void test_objid_too_long(struct fixture *f, gconstpointer data)
{
	g_autofree char *over = g_strnfill(TREE_OBJID_MAX + 1, 'x');
	const struct tree_msg_info m[] = {
	    {.uid = 3, .flags = "", .name = "3.eml", .objid = over},
	};
	struct lindex_head h = head;
	GError *err = NULL;

	(void)data;
	h.objids = TRUE;
	save_with(f, "INBOX", &h, m, 1);
	g_assert_null(lindex_load(f->dir, "INBOX", 0, TRUE, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
	g_clear_error(&err);
}

/* Large listings load fast and in columns; sanity on 100,000 messages. */
static void test_large(struct fixture *f, gconstpointer data)
{
	g_autofree struct tree_msg_info *in = g_new0(struct tree_msg_info, 100000);
	g_autoptr(GStringChunk) strings = g_string_chunk_new(1 << 20);
	GError *err = NULL;
	struct lindex *l;
	const struct tree_msg_info *m;
	gsize n;

	(void)data;
	for (guint32 uid = 1; uid <= 100000; uid++) {
		char name[64];

		g_snprintf(name, sizeof(name), "%u-Subject_number_%u.eml", uid, uid);
		in[uid - 1] = (struct tree_msg_info){ .uid = uid,
						      .size = uid * 3,
						      .internaldate = uid,
						      .flags = uid % 3 ? "\\Seen" : "\\Seen \\Answered",
						      .name = g_string_chunk_insert(strings, name) };
	}
	save(f, "Big", in, 100000);
	l = lindex_load(f->dir, "Big", 0, FALSE, &err);
	g_assert_no_error(err);
	m = read_all(f, l, &n);
	g_assert_cmpuint(n, ==, 100000);
	g_assert_cmpstr(m[99999].name, ==, "100000-Subject_number_100000.eml");
	g_assert_cmpstr(m[2].flags, ==, "\\Seen \\Answered");
	lindex_free(l);
}

/* The file is GVariant's serialised form of the tuple, written by hand
   (model/listing_index.c): byte for byte what GLib makes of the same
   columns, with framing offsets of 1 byte (3 messages), 2 (300) and 4
   (20,000). */
static void test_same_bytes(struct fixture *f, gconstpointer data)
{
	static const gsize counts[] = {0, 3, 300, 20000};
	static const char *const flag_set[] = {"\\Seen", "", "\\Seen \\Flagged"};

	(void)data;
	for (gsize c = 0; c < G_N_ELEMENTS(counts); c++) {
		gsize n = counts[c];
		g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));
		g_autoptr(GArray) sizes = g_array_new(FALSE, FALSE, sizeof(guint64));
		g_autoptr(GArray) dates = g_array_new(FALSE, FALSE, sizeof(gint64));
		g_autoptr(GArray) fidx = g_array_new(FALSE, FALSE, sizeof(guint32));
		g_autoptr(GString) names = g_string_new(NULL);
		g_autoptr(GString) ids = g_string_new(NULL);
		g_autoptr(GString) fstr = g_string_new(NULL);
		g_autofree struct tree_msg_info *in = g_new0(struct tree_msg_info, n + 1);
		g_autoptr(GStringChunk) strings = g_string_chunk_new(4096);
		struct lindex_head h = head;
		g_autoptr(GVariant) v = NULL;
		g_autofree char *got = NULL;
		g_autofree char *path = NULL;
		gsize got_len = 0;

		h.objids = TRUE;
		for (gsize i = 0; i < n; i++) {
			guint32 uid = (guint32)(i * 7 + 1), k = (guint32)(i % 3);
			guint64 size = (guint64)i << 30;
			gint64 date = 1700000000 - (gint64)i;
			g_autofree char *name = g_strdup_printf("%u-Grüße_%zu.eml", uid, i);
			g_autofree char *id = i % 2 ? g_strdup_printf("M%zx", i) : g_strdup("");
			struct tree_msg_info mi = {.uid = uid,
						   .size = size,
						   .internaldate = date,
						   .flags = flag_set[k],
						   .name = name,
						   .objid = *id ? id : NULL};

			mi.name = g_string_chunk_insert(strings, name);
			mi.objid = *id ? g_string_chunk_insert(strings, id) : NULL;
			in[i] = mi;
			g_array_append_val(uids, uid);
			g_array_append_val(sizes, size);
			g_array_append_val(dates, date);
			/* Flags are numbered in order of first appearance. */
			g_array_append_val(fidx, k);
			g_string_append_len(names, name, (gssize)strlen(name) + 1);
			g_string_append_len(ids, id, (gssize)strlen(id) + 1);
		}
		for (gsize k = 0; k < MIN(n, G_N_ELEMENTS(flag_set)); k++)
			g_string_append_len(fstr, flag_set[k], (gssize)strlen(flag_set[k]) + 1);
		save_with(f, "Bytes", &h, in, n);
		v = g_variant_ref_sink(g_variant_new(
		    "(s^ayuuutb@au@at@ax@ay@au@ay@ay)", "mailfs-listing-4", "Bytes", h.names_mode,
		    h.uidvalidity, h.uidnext, h.highestmodseq, h.objids,
		    g_variant_new_fixed_array(G_VARIANT_TYPE_UINT32, uids->data, n, 4),
		    g_variant_new_fixed_array(G_VARIANT_TYPE_UINT64, sizes->data, n, 8),
		    g_variant_new_fixed_array(G_VARIANT_TYPE_INT64, dates->data, n, 8),
		    g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, names->str, names->len, 1),
		    g_variant_new_fixed_array(G_VARIANT_TYPE_UINT32, fidx->data, n, 4),
		    g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, ids->str, ids->len, 1),
		    g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, fstr->str, fstr->len, 1)));
		/* The file's name: the only one in the directory. */
		{
			g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
			const char *base = g_dir_read_name(d);

			g_assert_nonnull(base);
			g_assert_null(g_dir_read_name(d));
			path = g_build_filename(f->dir, base, NULL);
		}
		g_assert_true(g_file_get_contents(path, &got, &got_len, NULL));
		g_assert_cmpmem(got, got_len, g_variant_get_data(v), g_variant_get_size(v));
		lindex_remove(f->dir, "Bytes");
	}
}

/* Issue 22's folder: 1,000,000 messages saved and loaded back, every
   field of every message compared (20 times fewer under valgrind). */
static void test_million(struct fixture *f, gconstpointer data)
{
	static const char *const flag_set[] = {"\\Seen", "", "\\Seen \\Answered",
					       "\\Flagged $Label1"};
	const gsize n = g_getenv("MAILFS_TEST_SMALL") ? 50000 : 1000000;
	struct lindex_writer *w;
	struct lindex_head h = head;
	GError *err = NULL;
	struct lindex *l;
	const struct tree_msg_info *m;
	gsize got, name_bytes = 0, id_bytes = 0;
	char name[64], id[32];

	(void)data;
	h.objids = TRUE;
	/* Sized first, as the saver does (account/listing_saver.c). */
	for (gsize i = 0; i < n; i++) {
		name_bytes += (gsize)g_snprintf(name, sizeof(name), "%zu-Subject_%zu.eml",
						3 * i + 1, i % 1000) +
			      1;
		id_bytes += i % 5 ? (gsize)g_snprintf(id, sizeof(id), "M%024zx", i) + 1 : 1;
	}
	w = lindex_writer_new(f->dir, "[Gmail]/All Mail", n, name_bytes, id_bytes, &err);
	g_assert_no_error(err);
	for (gsize i = 0; i < n; i++) {
		struct tree_msg_info mi = {.uid = (guint32)(3 * i + 1),
					   .size = 500 + i * 17,
					   .internaldate = 1577836800 + (gint64)i * 311,
					   .flags = flag_set[i % 4],
					   .name = name,
					   .objid = i % 5 ? id : NULL};

		g_snprintf(name, sizeof(name), "%zu-Subject_%zu.eml", 3 * i + 1, i % 1000);
		g_snprintf(id, sizeof(id), "M%024zx", i);
		lindex_writer_add(w, &mi);
	}
	g_assert_true(lindex_writer_save(w, &h, &err));
	g_assert_no_error(err);
	l = lindex_load(f->dir, "[Gmail]/All Mail", 0, TRUE, &err);
	g_assert_no_error(err);
	g_assert_true(lindex_head(l)->objids);
	g_assert_cmpuint(lindex_head(l)->uidvalidity, ==, h.uidvalidity);
	m = read_all(f, l, &got);
	g_assert_cmpuint(got, ==, n);
	for (gsize i = 0; i < n; i++) {
		g_snprintf(name, sizeof(name), "%zu-Subject_%zu.eml", 3 * i + 1, i % 1000);
		g_snprintf(id, sizeof(id), "M%024zx", i);
		/* One check per message, not six: g_assert_* costs a call each. */
		if (m[i].uid != 3 * i + 1 || m[i].size != 500 + i * 17 ||
		    m[i].internaldate != 1577836800 + (gint64)i * 311 ||
		    strcmp(m[i].flags, flag_set[i % 4]) != 0 || strcmp(m[i].name, name) != 0 ||
		    (i % 5 ? g_strcmp0(m[i].objid, id) != 0 : m[i].objid != NULL) || m[i].subject)
			g_error("message %zu did not round-trip (uid %u, name %s)", i, m[i].uid,
				m[i].name);
	}
	lindex_free(l);
}

struct held {
	GPtrArray *lines; /* "uid size date flags name objid" per message, in order */
};

static void hold_msg(void *ud, const struct tree_msg_info *m)
{
	struct held *h = ud;

	g_ptr_array_add(h->lines, g_strdup_printf("%u %" G_GUINT64_FORMAT " %" G_GINT64_FORMAT
						  " %s %s %s",
						  m->uid, m->size, m->internaldate, m->flags,
						  m->name, m->objid ? m->objid : "-"));
}

/* A saved listing into a tree (what a remount does): chunk by chunk, every
   message as saved; only into a folder without a listing of that
   UIDVALIDITY; one of another UIDVALIDITY leaves. */
static void test_into_tree(struct fixture *f, gconstpointer data)
{
	const gsize n = 10007; /* past two of the tree's chunks, ending inside a third */
	g_autoptr(GPtrArray) mbs = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)imap_mailbox_info_free);
	struct imap_mailbox_info *mi = g_new0(struct imap_mailbox_info, 1);
	g_autoptr(GArray) removed = tree_removed_new();
	g_autoptr(GPtrArray) want = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) got = g_ptr_array_new_with_free_func(g_free);
	g_autofree struct tree_msg_info *m = g_new0(struct tree_msg_info, n);
	g_autoptr(GStringChunk) strings = g_string_chunk_new(4096);
	struct lindex_head h = head;
	struct held wanted = { want }, held = { got };
	struct tree *t = tree_new(NULL);
	struct tree_entry e;
	GError *err = NULL;
	struct lindex *l;
	guint32 uv = 0;

	(void)data;
	mi->name = g_strdup("INBOX");
	mi->delimiter = '/';
	g_ptr_array_add(mbs, mi);
	tree_apply_list(t, mbs, NULL);
	g_assert_cmpint(tree_lookup(t, TREE_ROOT_INO, "INBOX", FALSE, 0, &e), ==, 0);
	h.objids = TRUE;
	for (gsize i = 0; i < n; i++) {
		guint32 uid = (guint32)(3 * i + 1);
		char name[32], objid[32];

		g_snprintf(name, sizeof(name), "%u-m.eml", uid);
		g_snprintf(objid, sizeof(objid), "Eo%zu", i / 2); /* pairs: two names, one object */
		m[i] = (struct tree_msg_info){ .uid = uid,
					       .size = 1000 + i,
					       .internaldate = 1700000000 + (gint64)i,
					       .flags = i % 3 ? "\\Seen" : "",
					       .name = g_string_chunk_insert(strings, name),
					       .objid = i % 4 ? g_string_chunk_insert(strings, objid)
							      : NULL };
		hold_msg(&wanted, &m[i]);
	}
	save_with(f, "INBOX", &h, m, n);
	l = lindex_load(f->dir, "INBOX", 0, TRUE, &err);
	g_assert_no_error(err);

	g_assert_cmpint(tree_folder_load(t, e.ino, 1234, lindex_count(l), lindex_read, l, removed),
			==, 0);
	g_assert_cmpint(tree_folder_foreach_message(t, e.ino, &uv, hold_msg, &held), ==, 0);
	g_assert_cmpuint(uv, ==, 1234);
	g_assert_cmpuint(got->len, ==, n);
	for (gsize i = 0; i < n; i++)
		g_assert_cmpstr(got->pdata[i], ==, want->pdata[i]);
	g_assert_cmpuint(removed->len, ==, 0);

	/* Held already: not loaded again. */
	lindex_rewind(l);
	g_assert_cmpint(tree_folder_load(t, e.ino, 1234, n, lindex_read, l, removed), ==, -EEXIST);

	/* Another UIDVALIDITY: the old messages leave (each one that is no
	   object reported: a quarter), the new listing is whole. */
	g_assert_cmpint(tree_folder_load(t, e.ino, 99, n, lindex_read, l, removed), ==, 0);
	g_assert_cmpuint(removed->len, >=, (n + 3) / 4);
	g_ptr_array_set_size(got, 0);
	g_assert_cmpint(tree_folder_foreach_message(t, e.ino, &uv, hold_msg, &held), ==, 0);
	g_assert_cmpuint(uv, ==, 99);
	g_assert_cmpuint(got->len, ==, n);
	lindex_free(l);

	/* An empty saved listing makes an empty listing, not none. */
	save(f, "INBOX", NULL, 0);
	l = lindex_load(f->dir, "INBOX", 0, FALSE, &err);
	g_assert_no_error(err);
	g_assert_cmpint(tree_folder_load(t, e.ino, 5, 0, lindex_read, l, removed), ==, 0);
	g_ptr_array_set_size(got, 0);
	g_assert_cmpint(tree_folder_foreach_message(t, e.ino, &uv, hold_msg, &held), ==, 0);
	g_assert_cmpuint(got->len, ==, 0);
	lindex_free(l);
	tree_entry_clear(&e);
	tree_free(t);
}

/* A writer given other messages than it was made for (the listing changed
   between the saver's sizing and its writing) replaces nothing and leaves
   no file behind. */
static void test_wrong_size(struct fixture *f, gconstpointer data)
{
	static const gsize made_for[] = { 2, 4 }; /* fewer, more */
	GError *err = NULL;
	struct lindex *l;
	gsize n;

	(void)data;
	save(f, "INBOX", three, G_N_ELEMENTS(three));
	for (gsize c = 0; c < G_N_ELEMENTS(made_for); c++) {
		struct lindex_writer *w = lindex_writer_new(f->dir, "INBOX", made_for[c], 64, 8, &err);
		g_autoptr(GDir) d = NULL;
		guint files = 0;

		g_assert_no_error(err);
		for (gsize i = 0; i < G_N_ELEMENTS(three); i++)
			lindex_writer_add(w, &three[i]);
		g_assert_false(lindex_writer_save(w, &head, &err));
		g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
		g_clear_error(&err);
		d = g_dir_open(f->dir, 0, NULL);
		while (g_dir_read_name(d))
			files++;
		g_assert_cmpuint(files, ==, 1);
		l = lindex_load(f->dir, "INBOX", 0, FALSE, &err);
		g_assert_no_error(err);
		read_all(f, l, &n);
		g_assert_cmpuint(n, ==, G_N_ELEMENTS(three));
		lindex_free(l);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add("/listing-index/roundtrip", struct fixture, NULL, setup, test_roundtrip,
		   teardown);
	g_test_add("/listing-index/damaged", struct fixture, NULL, setup, test_damaged, teardown);
	g_test_add("/listing-index/objids", struct fixture, NULL, setup, test_objids, teardown);
	g_test_add("/listing-index/older-format", struct fixture, NULL, setup, test_older_format,
		   teardown);
	g_test_add("/listing-index/objid_too_long", struct fixture, NULL, setup,
		   test_objid_too_long, teardown);
	g_test_add("/listing-index/large", struct fixture, NULL, setup, test_large, teardown);
	g_test_add("/listing-index/into-tree", struct fixture, NULL, setup, test_into_tree,
		   teardown);
	g_test_add("/listing-index/wrong-size", struct fixture, NULL, setup, test_wrong_size,
		   teardown);
	g_test_add("/listing-index/same-bytes", struct fixture, NULL, setup, test_same_bytes,
		   teardown);
	g_test_add("/listing-index/million", struct fixture, NULL, setup, test_million, teardown);
	return g_test_run();
}
