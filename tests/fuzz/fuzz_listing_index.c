/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Properties: a saved listing (model/listing_index) made of any bytes, or a
 * valid one with any bytes changed, either is refused or gives messages in
 * ascending UID order whose names start with their own UID and hold no '/',
 * and whose object ids are bounded and only in a listing made with them.
 * The same input as a UID set (protocol/uidset) parses to sorted, disjoint
 * ranges or is refused.
 */
#include "fuzz.h"
#include "model/listing_index.h"
#include "model/names.h"
#include "protocol/uidset.h"

#include <glib/gstdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static char *path;
static GBytes *valid;

/* Once: a directory, and a valid listing to mutate. */
static void setup(void)
{
	static const struct tree_msg_info m[] = {
		{ .uid = 3, .size = 10, .internaldate = 5, .flags = "\\Seen", .name = "3-a.eml",
		  .objid = "EMa1" },
		{ .uid = 9, .size = 20, .internaldate = 6, .flags = "", .name = "9.eml",
		  .objid = "G12" },
		{ .uid = 70, .size = 30, .internaldate = 7, .flags = "\\Seen", .name = "70-b_c.eml" },
	};
	const struct lindex_head head = { .uidvalidity = 1, .uidnext = 71, .highestmodseq = 9,
					  .objids = TRUE };
	struct lindex_writer *w;
	g_autoptr(GDir) d = NULL;
	gsize len, name_bytes = 0, objid_bytes = 0;
	char *contents;

	dir = g_dir_make_tmp("fuzz-lindex-XXXXXX", NULL);
	CHECK(dir);
	for (size_t i = 0; i < G_N_ELEMENTS(m); i++) {
		name_bytes += strlen(m[i].name) + 1;
		objid_bytes += (m[i].objid ? strlen(m[i].objid) : 0) + 1;
	}
	w = lindex_writer_new(dir, "INBOX", G_N_ELEMENTS(m), name_bytes, objid_bytes, NULL);
	CHECK(w);
	for (size_t i = 0; i < G_N_ELEMENTS(m); i++)
		lindex_writer_add(w, &m[i]);
	CHECK(lindex_writer_save(w, &head, NULL));
	d = g_dir_open(dir, 0, NULL);
	path = g_build_filename(dir, g_dir_read_name(d), NULL);
	CHECK(g_file_get_contents(path, &contents, &len, NULL));
	valid = g_bytes_new_take(contents, len);
}

static void check_listing(void)
{
	struct lindex *l = lindex_load(dir, "INBOX", 0, TRUE, NULL);
	struct tree_msg_info m[2]; /* read two at a time: chunk edges too */
	guint32 last_uid = 0;
	gsize n, total = 0;

	if (!l)
		return;
	while ((n = lindex_read(l, m, G_N_ELEMENTS(m))) > 0) {
		total += n;
		for (gsize i = 0; i < n; i++) {
			guint32 uid;

			CHECK(m[i].uid > last_uid);
			last_uid = m[i].uid;
			CHECK(names_parse_uid(m[i].name, &uid) && uid == m[i].uid);
			CHECK(!strchr(m[i].name, '/'));
			CHECK(m[i].flags);
			CHECK(!m[i].objid ||
			      (m[i].objid[0] && strlen(m[i].objid) <= TREE_OBJID_MAX &&
			       lindex_head(l)->objids));
		}
	}
	/* Every message checked at the load comes out. */
	CHECK(total == lindex_count(l) && last_uid == lindex_max_uid(l));
	CHECK(lindex_head(l)->uidvalidity != 0);
	lindex_free(l);
}

static void check_uidset(const uint8_t *data, size_t size)
{
	g_autofree char *s = g_strndup((const char *)data, size);
	g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(struct uid_range));

	if (!uidset_parse(s, 1000, 64, a)) {
		CHECK(a->len == 0);
		return;
	}
	for (guint i = 0; i < a->len; i++) {
		const struct uid_range *r = &g_array_index(a, struct uid_range, i);

		CHECK(r->lo >= 1 && r->lo <= r->hi);
		CHECK(i == 0 || r->lo > g_array_index(a, struct uid_range, i - 1).hi + 1);
		CHECK(uidset_contains(a, r->lo) && uidset_contains(a, r->hi));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir)
		setup();
	check_uidset(data, size);
	if (size > 0 && data[0] & 1) {
		/* A valid listing with bytes changed: (position, xor) pairs. */
		gsize len;
		const guint8 *v = g_bytes_get_data(valid, &len);
		g_autofree guint8 *buf = g_memdup2(v, len);

		for (size_t i = 1; i + 1 < size; i += 2)
			buf[data[i] % len] ^= data[i + 1];
		CHECK(g_file_set_contents(path, (const char *)buf, (gssize)len, NULL));
	} else {
		CHECK(g_file_set_contents(path, (const char *)data, (gssize)size, NULL));
	}
	check_listing();
	return 0;
}
