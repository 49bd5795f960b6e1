/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/mcache.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static char *make_tmpdir(void)
{
	GError *err = NULL;
	char *d = g_dir_make_tmp("mcache-test-XXXXXX", &err);

	g_assert_no_error(err);
	return d;
}

static void rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		GDir *d = g_dir_open(path, 0, NULL);
		const char *name;

		(void)g_chmod(path, 0700);
		while (d && (name = g_dir_read_name(d))) {
			g_autofree char *child = g_build_filename(path, name, NULL);

			rm_rf(child);
		}
		if (d)
			g_dir_close(d);
		g_assert_cmpint(g_rmdir(path), ==, 0);
	} else {
		g_assert_cmpint(g_unlink(path), ==, 0);
	}
}

/* The body dir the header promises: first 32 hex of SHA-256(mailbox), '-', UIDVALIDITY. */
static char *body_dir(const char *root, const char *mailbox, guint32 uidvalidity)
{
	g_autofree char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, mailbox, -1);
	g_autofree char *name = g_strdup_printf("%.32s-%u", sum, uidvalidity);

	return g_build_filename(root, name, NULL);
}

static char *body_path(const char *root, const char *mailbox, guint32 uidvalidity, guint32 uid)
{
	g_autofree char *dir = body_dir(root, mailbox, uidvalidity);
	g_autofree char *name = g_strdup_printf("%u", uid);

	return g_build_filename(dir, name, NULL);
}

/* Deterministic body bytes, different per uid and offset. */
static char *make_body(guint32 uid, size_t len)
{
	char *b = g_malloc(len ? len : 1);

	for (size_t i = 0; i < len; i++)
		b[i] = (char)('A' + (uid * 7 + i * 13 + i / 251) % 61);
	return b;
}

static void store(struct mcache *c, const char *mailbox, guint32 uv, guint32 uid, size_t len)
{
	struct mcache_entry *e = mcache_get(c, mailbox, uv, uid);
	g_autofree char *b = make_body(uid, len);

	g_assert_false(mcache_entry_complete(e, NULL));
	g_assert_cmpint(mcache_entry_write(e, 0, b, len), ==, 0);
	g_assert_cmpint(mcache_entry_finish(e, len), ==, 0);
	mcache_entry_unref(e);
}

static void assert_body(struct mcache_entry *e, guint32 uid, size_t len)
{
	g_autofree char *want = make_body(uid, len);
	g_autofree char *got = g_malloc0(len + 16);
	guint64 size = 0;

	g_assert_true(mcache_entry_complete(e, &size));
	g_assert_cmpuint(size, ==, len);
	if (len > 0)
		g_assert_cmpint(mcache_entry_read(e, got, len + 16, 0), ==, (gssize)len);
	g_assert_cmpmem(got, len, want, len);
	g_assert_cmpint(mcache_entry_read(e, got, 1, len), ==, 0);
}

/* TRUE when the key is a complete body in the cache (counts a hit or miss). */
static gboolean cached(struct mcache *c, const char *mailbox, guint32 uv, guint32 uid)
{
	struct mcache_entry *e = mcache_get(c, mailbox, uv, uid);
	gboolean complete = mcache_entry_complete(e, NULL);

	mcache_entry_unref(e);
	return complete;
}

static guint count_tmp_files(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	guint n = 0;

	while (d && (name = g_dir_read_name(d)))
		n += g_str_has_prefix(name, ".tmp-");
	if (d)
		g_dir_close(d);
	return n;
}

static struct mcache *open_cache(const char *dir, guint64 max)
{
	GError *err = NULL;
	struct mcache *c = mcache_open(dir, max, &err);

	g_assert_no_error(err);
	g_assert_nonnull(c);
	return c;
}

/* ------------------------------------------------------------------ tests */

static void test_basic(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *path = body_path(root, "INBOX", 7, 42);
	struct mcache *c = open_cache(root, 1 << 20);
	struct mcache_entry *e, *e2;
	struct mcache_stats s;
	char buf[16];

	e = mcache_get(c, "INBOX", 7, 42);
	e2 = mcache_get(c, "INBOX", 7, 42);
	g_assert_true(e == e2); /* one entry per key while referenced */
	mcache_entry_unref(e2);
	g_assert_false(mcache_entry_complete(e, NULL));
	g_assert_false(mcache_entry_has(e, 0, 1));
	g_assert_true(mcache_entry_has(e, 5, 0));
	g_assert_cmpint(mcache_entry_read(e, buf, sizeof(buf), 0), ==, -ENODATA);
	g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
	mcache_entry_unref(e);

	store(c, "INBOX", 7, 42, 5000);
	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
	e = mcache_get(c, "INBOX", 7, 42);
	assert_body(e, 42, 5000);
	g_assert_true(mcache_entry_has(e, 4990, 100)); /* clipped to the size */
	g_assert_true(mcache_entry_has(e, 9000, 10));
	g_assert_cmpint(mcache_entry_write(e, 0, "x", 1), ==, 0); /* complete: no-op */
	g_assert_cmpint(mcache_entry_finish(e, 5000), ==, 0);
	g_assert_cmpint(mcache_entry_finish(e, 5001), ==, -EINVAL);
	mcache_entry_unref(e);

	/* Other mailbox, UIDVALIDITY or UID: other keys. */
	g_assert_false(cached(c, "INBOX", 8, 42));
	g_assert_false(cached(c, "INBOX", 7, 43));
	g_assert_false(cached(c, "Archive", 7, 42));

	/* An empty body is a body too. */
	store(c, "INBOX", 7, 1, 0);
	e = mcache_get(c, "INBOX", 7, 1);
	assert_body(e, 1, 0);
	mcache_entry_unref(e);

	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.files, ==, 2);
	g_assert_cmpuint(s.bytes, ==, 5000);
	g_assert_cmpuint(s.partial, ==, 0);
	g_assert_cmpuint(s.hits, ==, 2);
	g_assert_cmpuint(s.misses, ==, 7);
	g_assert_cmpuint(s.evictions, ==, 0);
	g_assert_cmpuint(s.max_bytes, ==, 1 << 20);
	g_assert_cmpuint(mcache_free_space(c), >, 0);

	mcache_close(c);
	rm_rf(root);
}

static void test_peek(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *inbox = mcache_folder_key("INBOX", 7);
	g_autofree char *other = mcache_folder_key("INBOX", 8);
	struct mcache *c = open_cache(root, 1 << 20);
	struct mcache_entry *e;
	struct mcache_stats before, after;

	g_assert_false(mcache_peek_complete(c, inbox, 42));
	store(c, "INBOX", 7, 42, 5000);
	/* Partly written: not complete. */
	e = mcache_get(c, "INBOX", 7, 43);
	g_assert_cmpint(mcache_entry_write(e, 0, "abc", 3), ==, 0);
	mcache_get_stats(c, &before);
	g_assert_true(mcache_peek_complete(c, inbox, 42));
	g_assert_false(mcache_peek_complete(c, inbox, 43));
	g_assert_false(mcache_peek_complete(c, inbox, 44));
	g_assert_false(mcache_peek_complete(c, other, 42));
	/* A look only: no hit, no miss, no entry made. */
	mcache_get_stats(c, &after);
	g_assert_cmpuint(after.hits, ==, before.hits);
	g_assert_cmpuint(after.misses, ==, before.misses);
	g_assert_cmpuint(after.partial, ==, before.partial);
	mcache_entry_unref(e);
	mcache_close(c);
	rm_rf(root);
}

static void test_remount(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *dir = body_dir(root, "INBOX", 1);
	g_autofree char *crash_tmp = g_build_filename(dir, ".tmp-9-AbC123", NULL);
	g_autofree char *stray = g_build_filename(root, "not-ours", NULL);
	struct mcache *c = open_cache(root, 1 << 20);
	struct mcache_entry *e;
	struct mcache_stats s;

	store(c, "INBOX", 1, 3, 1234);
	store(c, "INBOX", 1, 4, 10);
	/* A partial entry's temporary goes with its last handle. */
	e = mcache_get(c, "INBOX", 1, 5);
	g_assert_cmpint(mcache_entry_write(e, 0, "abc", 3), ==, 0);
	g_assert_cmpuint(count_tmp_files(dir), ==, 1);
	mcache_entry_unref(e);
	g_assert_cmpuint(count_tmp_files(dir), ==, 0);
	mcache_close(c);

	/* What a crash leaves: a temporary; and a file the cache must not touch. */
	g_assert_true(g_file_set_contents(crash_tmp, "half", -1, NULL));
	g_assert_true(g_file_set_contents(stray, "x", -1, NULL));

	c = open_cache(root, 1 << 20);
	g_assert_false(g_file_test(crash_tmp, G_FILE_TEST_EXISTS));
	g_assert_true(g_file_test(stray, G_FILE_TEST_EXISTS));
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.files, ==, 2);
	g_assert_cmpuint(s.bytes, ==, 1244);
	e = mcache_get(c, "INBOX", 1, 3);
	assert_body(e, 3, 1234);
	mcache_entry_unref(e);
	e = mcache_get(c, "INBOX", 1, 4);
	assert_body(e, 4, 10);
	mcache_entry_unref(e);
	g_assert_false(cached(c, "INBOX", 1, 5));
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.hits, ==, 2);
	mcache_close(c);
	rm_rf(root);
}

static void test_modes(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *cdir = g_build_filename(root, "a", "b", "bodies", NULL);
	g_autofree char *bdir = body_dir(cdir, "INBOX", 1);
	g_autofree char *file = body_path(cdir, "INBOX", 1, 1);
	g_autofree char *parent = g_build_filename(root, "a", NULL);
	mode_t old = umask(022);
	struct mcache *c = open_cache(cdir, 1 << 20);
	struct mcache_entry *e;
	struct stat st;
	GDir *d;
	const char *name;

	g_assert_cmpint(stat(cdir, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0700);
	g_assert_cmpint(stat(parent, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 077, ==, 0);

	e = mcache_get(c, "INBOX", 1, 2);
	g_assert_cmpint(mcache_entry_write(e, 0, "abc", 3), ==, 0);
	d = g_dir_open(bdir, 0, NULL);
	g_assert_nonnull(d);
	while ((name = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(bdir, name, NULL);

		g_assert_cmpint(stat(p, &st), ==, 0);
		g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
	}
	g_dir_close(d);
	mcache_entry_unref(e);

	store(c, "INBOX", 1, 1, 100);
	g_assert_cmpint(stat(bdir, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0700);
	g_assert_cmpint(stat(file, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
	mcache_close(c);

	/* Looser modes left by someone else are tightened at open. */
	g_assert_cmpint(chmod(cdir, 0755), ==, 0);
	g_assert_cmpint(chmod(bdir, 0755), ==, 0);
	g_assert_cmpint(chmod(file, 0644), ==, 0);
	c = open_cache(cdir, 1 << 20);
	g_assert_cmpint(stat(cdir, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0700);
	g_assert_cmpint(stat(bdir, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0700);
	g_assert_cmpint(stat(file, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
	mcache_close(c);
	umask(old);
	rm_rf(root);
}

static void set_mtime(const char *root, guint32 uid, time_t t)
{
	g_autofree char *p = body_path(root, "INBOX", 1, uid);
	struct timespec ts[2] = {{t, 0}, {t, 0}};

	g_assert_cmpint(utimensat(AT_FDCWD, p, ts, 0), ==, 0);
}

static void test_lru(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *evicted = body_path(root, "INBOX", 1, 2);
	struct mcache *c = open_cache(root, 300);
	struct mcache_entry *e;
	struct mcache_stats s;

	store(c, "INBOX", 1, 1, 100);
	store(c, "INBOX", 1, 2, 100);
	store(c, "INBOX", 1, 3, 100);
	e = mcache_get(c, "INBOX", 1, 1); /* 1 is now the hottest; 2 the coldest */
	mcache_entry_unref(e);
	store(c, "INBOX", 1, 4, 100);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.evictions, ==, 1);
	g_assert_cmpuint(s.bytes, ==, 300);
	g_assert_false(g_file_test(evicted, G_FILE_TEST_EXISTS));
	g_assert_true(cached(c, "INBOX", 1, 1));
	g_assert_true(cached(c, "INBOX", 1, 3));
	g_assert_true(cached(c, "INBOX", 1, 4));
	g_assert_false(cached(c, "INBOX", 1, 2));

	/* An exact fit evicts nothing; one more byte evicts the coldest (1). */
	store(c, "INBOX", 1, 5, 0);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.evictions, ==, 1);
	store(c, "INBOX", 1, 6, 1);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.evictions, ==, 2);
	g_assert_false(cached(c, "INBOX", 1, 1));
	mcache_close(c);

	/* A remount takes the order from the mtimes. */
	set_mtime(root, 3, 3000);
	set_mtime(root, 4, 1000);
	set_mtime(root, 5, 4000);
	set_mtime(root, 6, 2000);
	c = open_cache(root, 300);
	store(c, "INBOX", 1, 7, 100);
	g_assert_false(cached(c, "INBOX", 1, 4));
	g_assert_true(cached(c, "INBOX", 1, 6));
	g_assert_true(cached(c, "INBOX", 1, 3));
	mcache_close(c);

	/*
	 * A smaller cache_size evicts at open, coldest first. (Explicit mtimes:
	 * the kernel's file clock is coarse, so the touches above may tie.)
	 */
	set_mtime(root, 3, 5000);
	set_mtime(root, 5, 4000);
	set_mtime(root, 6, 2500);
	set_mtime(root, 7, 1500);
	c = open_cache(root, 150);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.bytes, ==, 101);
	g_assert_cmpuint(s.evictions, ==, 1);
	g_assert_false(cached(c, "INBOX", 1, 7));
	g_assert_true(cached(c, "INBOX", 1, 6));
	g_assert_true(cached(c, "INBOX", 1, 3));
	mcache_close(c);
	rm_rf(root);
}

static void test_pinned(void)
{
	g_autofree char *root = make_tmpdir();
	struct mcache *c = open_cache(root, 200);
	struct mcache_entry *a, *d, *big;
	g_autofree char *body = make_body(9, 100);
	g_autofree char *huge = make_body(9, 201);
	struct mcache_stats s;

	store(c, "INBOX", 1, 1, 100);
	a = mcache_get(c, "INBOX", 1, 1); /* pinned: a FUSE reader has it open */
	store(c, "INBOX", 1, 2, 100);
	store(c, "INBOX", 1, 3, 100); /* evicts 2, the colder unpinned one */
	g_assert_true(cached(c, "INBOX", 1, 1));
	g_assert_false(cached(c, "INBOX", 1, 2));
	assert_body(a, 1, 100);

	/* 1 and 3 pinned, cache full: the new body cannot be cached, silently. */
	{
		struct mcache_entry *three = mcache_get(c, "INBOX", 1, 3);

		d = mcache_get(c, "INBOX", 1, 4);
		g_assert_cmpint(mcache_entry_write(d, 0, body, 50), ==, -ENOSPC);
		g_assert_cmpint(mcache_entry_write(d, 50, body + 50, 50), ==, -ENOSPC);
		g_assert_cmpint(mcache_entry_finish(d, 100), ==, -ENOSPC);
		g_assert_false(mcache_entry_has(d, 0, 1));
		mcache_entry_unref(d);
		assert_body(three, 3, 100);
		mcache_entry_unref(three);
	}
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.evictions, ==, 1);
	g_assert_cmpuint(s.bytes, ==, 200);
	g_assert_cmpuint(s.partial, ==, 0);

	/* Larger than the whole cache: refused without evicting anything first. */
	big = mcache_get(c, "INBOX", 1, 5);
	g_assert_cmpint(mcache_entry_write(big, 0, huge, 201), ==, -ENOSPC);
	mcache_entry_unref(big);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.evictions, ==, 1);
	g_assert_true(cached(c, "INBOX", 1, 3));

	mcache_entry_unref(a);
	mcache_close(c);
	rm_rf(root);
}

static void test_partial_ranges(void)
{
	/* Chunks written in this order into a 1000-byte body; then queries. */
	static const struct {
		guint64 off, len;
	} writes[] = {
	    {500, 100}, {0, 100},  {50, 100}, /* overlap */
	    {900, 100}, {150, 50},	      /* adjacent to [0,150) */
	    {600, 100},			      /* adjacent to [500,600) */
	};
	static const struct {
		guint64 off, len;
		gboolean has;
		guint64 gap_off, gap_len;
	} queries[] = {
	    {0, 200, TRUE, 0, 0},	 {0, 201, FALSE, 200, 1},     {199, 1, TRUE, 0, 0},
	    {200, 1, FALSE, 200, 1},	 {100, 500, FALSE, 200, 300}, {500, 200, TRUE, 0, 0},
	    {650, 300, FALSE, 700, 200}, {950, 50, TRUE, 0, 0},	      {950, 51, FALSE, 1000, 1},
	    {300, 0, TRUE, 0, 0},
	};
	static const struct {
		guint64 off;
		size_t len;
		gssize want;
	} reads[] = {
	    {0, 1000, 200},   {120, 10, 10}, {190, 50, 10},	  {200, 10, -ENODATA},
	    {550, 1000, 150}, {999, 5, 1},   {1000, 5, -ENODATA},
	};
	g_autofree char *root = make_tmpdir();
	g_autofree char *body = make_body(77, 1000);
	struct mcache *c = open_cache(root, 1 << 20);
	struct mcache_entry *e = mcache_get(c, "INBOX", 1, 77);
	struct mcache_entry *other;
	struct mcache_stats s;
	char buf[1100];

	for (size_t i = 0; i < G_N_ELEMENTS(writes); i++) {
		g_assert_cmpint(
		    mcache_entry_write(e, writes[i].off, body + writes[i].off, writes[i].len), ==,
		    0);
	}
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.bytes, ==, 200 + 200 + 100); /* overlap counted once */
	g_assert_cmpuint(s.partial, ==, 1);

	/* A second reader of the message shares the ranges. */
	other = mcache_get(c, "INBOX", 1, 77);
	for (size_t i = 0; i < G_N_ELEMENTS(queries); i++) {
		guint64 go = 0, gl = 0;
		gboolean gap =
		    mcache_entry_first_gap(other, queries[i].off, queries[i].len, &go, &gl);

		g_test_message("query %zu", i);
		g_assert_cmpint(mcache_entry_has(other, queries[i].off, queries[i].len), ==,
				queries[i].has);
		g_assert_cmpint(gap, ==, !queries[i].has);
		if (gap) {
			g_assert_cmpuint(go, ==, queries[i].gap_off);
			g_assert_cmpuint(gl, ==, queries[i].gap_len);
		}
	}
	for (size_t i = 0; i < G_N_ELEMENTS(reads); i++) {
		gssize n = mcache_entry_read(other, buf, reads[i].len, reads[i].off);

		g_test_message("read %zu", i);
		g_assert_cmpint(n, ==, reads[i].want);
		if (n > 0)
			g_assert_cmpmem(buf, (size_t)n, body + reads[i].off, (size_t)n);
	}

	g_assert_cmpint(mcache_entry_finish(e, 1000), ==, -EAGAIN);
	g_assert_false(mcache_entry_complete(e, NULL));
	g_assert_cmpint(mcache_entry_write(other, 200, body + 200, 300), ==, 0);
	g_assert_cmpint(mcache_entry_write(e, 700, body + 700, 200), ==, 0);
	g_assert_true(mcache_entry_has(e, 0, 1000));
	/* The last chunk came back short: the server's bytes say 990, not the 1000 hinted. */
	g_assert_cmpint(mcache_entry_finish(e, 990), ==, 0);
	assert_body(other, 77, 990);
	mcache_entry_unref(other);
	mcache_entry_unref(e);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.bytes, ==, 990);
	g_assert_cmpuint(s.partial, ==, 0);
	g_assert_cmpuint(s.files, ==, 1);

	e = mcache_get(c, "INBOX", 1, 77);
	assert_body(e, 77, 990);
	mcache_entry_unref(e);

	/* A body longer than hinted: the bytes win as well. */
	e = mcache_get(c, "INBOX", 1, 78);
	g_assert_cmpint(mcache_entry_write(e, 0, body, 1000), ==, 0);
	g_assert_cmpint(mcache_entry_finish(e, 1000), ==, 0);
	mcache_entry_unref(e);

	/* Invalid offsets are refused and do not harm the entry. */
	e = mcache_get(c, "INBOX", 1, 79);
	g_assert_cmpint(mcache_entry_write(e, G_MAXUINT64 - 1, "ab", 2), ==, -EINVAL);
	g_assert_cmpint(mcache_entry_write(e, (guint64)G_MAXINT64, "ab", 2), ==, -EINVAL);
	g_assert_cmpint(mcache_entry_write(e, 0, "ab", 2), ==, 0);
	g_assert_false(mcache_entry_has(e, 0, G_MAXUINT64));
	g_assert_true(mcache_entry_has(e, 0, 2));
	mcache_entry_unref(e);

	mcache_close(c);
	rm_rf(root);
}

static void test_drop(void)
{
	/* Wire names are bytes: none may escape the cache directory or collide. */
	static const char *const boxes[] = {
	    "INBOX", "../../etc", "a/b", "", "Entw&APw-rfe", "\xff\xfe", "INBOX.Sent",
	};
	g_autofree char *root = make_tmpdir();
	struct mcache *c = open_cache(root, 1 << 20);
	struct mcache_entry *held, *partial, *again;
	g_autofree char *olddir = body_dir(root, "INBOX", 1);
	struct mcache_stats s;
	guint n = 0;
	GDir *d;
	const char *name;

	for (size_t i = 0; i < G_N_ELEMENTS(boxes); i++) {
		store(c, boxes[i], 1, 1, 10 + i);
		store(c, boxes[i], 2, 1, 20 + i);
	}
	d = g_dir_open(root, 0, NULL);
	while ((name = g_dir_read_name(d)))
		n++;
	g_dir_close(d);
	g_assert_cmpuint(n, ==, 2 * G_N_ELEMENTS(boxes));

	store(c, "INBOX", 1, 2, 100);
	held = mcache_get(c, "INBOX", 1, 2);
	partial = mcache_get(c, "INBOX", 1, 3);
	g_assert_cmpint(mcache_entry_write(partial, 0, "abcdef", 6), ==, 0);

	/* UIDVALIDITY of INBOX went from 1 to 2. */
	mcache_drop_mailbox(c, "INBOX", 2);
	g_assert_false(cached(c, "INBOX", 1, 1));
	g_assert_false(cached(c, "INBOX", 1, 2));
	g_assert_true(cached(c, "INBOX", 2, 1));
	for (size_t i = 1; i < G_N_ELEMENTS(boxes); i++) {
		g_assert_true(cached(c, boxes[i], 1, 1));
		g_assert_true(cached(c, boxes[i], 2, 1));
	}
	/* Readers that had it open keep their bytes; nothing new is stored. */
	assert_body(held, 2, 100);
	g_assert_true(mcache_entry_has(partial, 0, 6));
	g_assert_cmpint(mcache_entry_write(partial, 6, "gh", 2), ==, -ESTALE);
	g_assert_cmpint(mcache_entry_finish(partial, 6), ==, -ESTALE);
	g_assert_false(g_file_test(olddir, G_FILE_TEST_EXISTS));
	mcache_entry_unref(partial);
	mcache_entry_unref(held);

	/* One expunged message, held open while it goes. */
	held = mcache_get(c, "a/b", 2, 1);
	mcache_drop(c, "a/b", 2, 1);
	mcache_drop(c, "a/b", 2, 999); /* unknown: nothing happens */
	again = mcache_get(c, "a/b", 2, 1);
	g_assert_true(again != held);
	g_assert_false(mcache_entry_complete(again, NULL));
	assert_body(held, 1, 20 + 2);
	mcache_entry_unref(again);
	mcache_entry_unref(held);

	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.files, ==, 2 * G_N_ELEMENTS(boxes) - 2);
	g_assert_cmpuint(s.partial, ==, 0);
	mcache_close(c);

	/* Nothing dropped comes back at the next mount. */
	c = open_cache(root, 1 << 20);
	g_assert_false(cached(c, "INBOX", 1, 1));
	g_assert_false(cached(c, "a/b", 2, 1));
	g_assert_true(cached(c, "a/b", 1, 1));
	mcache_close(c);
	rm_rf(root);
}

/* --------------------------------------------------------------- threads */

#define T_THREADS 4
#define T_ITERS	  400
#define T_UIDS	  16

struct thread_arg {
	struct mcache *c;
	guint seed;
	guint gets;
};

static size_t t_size(guint32 uid)
{
	return 1000 + uid * 37;
}

static gpointer worker(gpointer data)
{
	struct thread_arg *a = data;
	GRand *rnd = g_rand_new_with_seed(a->seed);
	char *buf = g_malloc(t_size(T_UIDS) + 64);

	for (guint i = 0; i < T_ITERS; i++) {
		guint32 uid = (guint32)g_rand_int_range(rnd, 0, T_UIDS);
		size_t len = t_size(uid);
		g_autofree char *body = make_body(uid, len);
		struct mcache_entry *e = mcache_get(a->c, "INBOX", 1, uid);
		size_t half = len / 2;

		a->gets++;
		if (!mcache_entry_complete(e, NULL)) {
			/* Second half first, sometimes: chunks arrive out of order. */
			gboolean rev = g_rand_boolean(rnd);
			int r1 = mcache_entry_write(e, rev ? half : 0, body + (rev ? half : 0),
						    rev ? len - half : half);
			int r2 = mcache_entry_write(e, rev ? 0 : half, body + (rev ? 0 : half),
						    rev ? half : len - half);
			int r3 = mcache_entry_finish(e, len);

			g_assert_true(r1 == 0 || r1 == -ENOSPC);
			g_assert_true(r2 == 0 || r2 == -ENOSPC);
			if (r1 == 0 && r2 == 0)
				g_assert_true(r3 == 0 || r3 == -ENOSPC);
		}
		/* Whatever is present must be the right bytes. */
		for (guint64 off = 0; off < len;) {
			gssize n = mcache_entry_read(e, buf, len + 64, off);

			if (n == -ENODATA) {
				off++;
				continue;
			}
			g_assert_cmpint(n, >, 0);
			g_assert_cmpmem(buf, (size_t)n, body + off, (size_t)n);
			off += (guint64)n;
		}
		mcache_entry_unref(e);
	}
	g_free(buf);
	g_rand_free(rnd);
	return NULL;
}

static void test_threads(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *dir = body_dir(root, "INBOX", 1);
	struct mcache *c = open_cache(root, 9000);
	struct thread_arg args[T_THREADS];
	GThread *th[T_THREADS];
	struct mcache_stats s;
	guint64 disk_bytes = 0, disk_files = 0, gets = 0;
	GDir *d;
	const char *name;

	for (guint i = 0; i < T_THREADS; i++) {
		args[i] = (struct thread_arg){c, 1234 + i, 0};
		th[i] = g_thread_new("mcache-test", worker, &args[i]);
	}
	for (guint i = 0; i < T_THREADS; i++) {
		g_thread_join(th[i]);
		gets += args[i].gets;
	}

	d = g_dir_open(dir, 0, NULL);
	g_assert_nonnull(d);
	while ((name = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(dir, name, NULL);
		struct stat st;

		g_assert_false(g_str_has_prefix(name, ".tmp-"));
		g_assert_cmpint(stat(p, &st), ==, 0);
		disk_bytes += (guint64)st.st_size;
		disk_files++;
	}
	g_dir_close(d);

	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.hits + s.misses, ==, gets);
	g_assert_cmpuint(s.hits, >, 0);
	g_assert_cmpuint(s.evictions, >, 0);
	g_assert_cmpuint(s.partial, ==, 0);
	g_assert_cmpuint(s.bytes, ==, disk_bytes);
	g_assert_cmpuint(s.files, ==, disk_files);
	g_assert_cmpuint(s.bytes, <=, 9000);
	mcache_close(c);
	rm_rf(root);
}

/* -------------------------------------------------------- write failure */

/*
 * A disk that refuses bytes, simulated with RLIMIT_FSIZE in a subprocess
 * (root ignores a read-only directory, and a tiny tmpfs needs privileges).
 */
static void test_write_failure(void)
{
	if (g_test_subprocess()) {
		g_autofree char *root = make_tmpdir();
		g_autofree char *dir = body_dir(root, "INBOX", 1);
		g_autofree char *body = make_body(1, 10000);
		struct rlimit rl = {4096, 4096};
		struct mcache *c = open_cache(root, 1 << 20);
		struct mcache_entry *e, *e2, *fresh;
		struct mcache_stats s;
		char buf[2000];

		signal(SIGXFSZ, SIG_IGN);
		g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &rl), ==, 0);

		e = mcache_get(c, "INBOX", 1, 1);
		e2 = mcache_get(c, "INBOX", 1, 1);
		g_assert_cmpint(mcache_entry_write(e, 0, body, 1000), ==, 0);
		g_assert_cmpint(mcache_entry_write(e, 1000, body + 1000, 9000), ==, -EFBIG);
		/* The entry stopped caching; what was stored stays readable, no error. */
		g_assert_cmpint(mcache_entry_write(e2, 1000, body + 1000, 10), ==, -EFBIG);
		g_assert_cmpint(mcache_entry_finish(e, 10000), ==, -EFBIG);
		g_assert_false(mcache_entry_has(e2, 1000, 1));
		g_assert_cmpint(mcache_entry_read(e2, buf, sizeof(buf), 0), ==, 1000);
		g_assert_cmpmem(buf, 1000, body, 1000);
		g_assert_cmpuint(count_tmp_files(dir), ==, 0);
		mcache_get_stats(c, &s);
		g_assert_cmpuint(s.bytes, ==, 0);
		g_assert_cmpuint(s.partial, ==, 0);

		/* The key is free again: a later try may succeed. */
		fresh = mcache_get(c, "INBOX", 1, 1);
		g_assert_true(fresh != e);
		g_assert_false(mcache_entry_has(fresh, 0, 1));
		mcache_entry_unref(fresh);
		mcache_entry_unref(e2);
		mcache_entry_unref(e);

		store(c, "INBOX", 1, 2, 4000); /* fits under the limit */
		mcache_close(c);
		rm_rf(root);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stderr("*serving without caching*");
}

/* A cached file that cannot be opened: gone (a miss), or no fd left (served uncached). */
static void test_open_failure(void)
{
	if (g_test_subprocess()) {
		g_autofree char *root = make_tmpdir();
		g_autofree char *gone = body_path(root, "INBOX", 1, 1);
		g_autofree char *kept = body_path(root, "INBOX", 1, 2);
		struct mcache *c = open_cache(root, 1 << 20);
		struct mcache_entry *e;
		struct mcache_stats s;
		struct rlimit old, rl;
		int lowest;

		store(c, "INBOX", 1, 1, 100);
		store(c, "INBOX", 1, 2, 200);
		g_assert_cmpint(g_unlink(gone), ==, 0);
		g_assert_false(cached(c, "INBOX", 1, 1));
		mcache_get_stats(c, &s);
		g_assert_cmpuint(s.files, ==, 1);
		g_assert_cmpuint(s.bytes, ==, 200);

		g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &old), ==, 0);
		lowest = dup(0);
		g_assert_cmpint(lowest, >=, 0);
		close(lowest);
		rl = old;
		rl.rlim_cur = (rlim_t)lowest;
		g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &rl), ==, 0);
		e = mcache_get(c, "INBOX", 1, 2);
		g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &old), ==, 0);
		g_assert_false(mcache_entry_complete(e, NULL));
		g_assert_cmpint(mcache_entry_write(e, 0, "abc", 3), ==, -EMFILE);
		g_assert_false(mcache_entry_has(e, 0, 1));
		mcache_entry_unref(e);
		g_assert_true(g_file_test(kept, G_FILE_TEST_IS_REGULAR));
		e = mcache_get(c, "INBOX", 1, 2);
		assert_body(e, 2, 200);
		mcache_entry_unref(e);
		mcache_close(c);
		rm_rf(root);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
}

/* mcache_get_lazy: a hit opens nothing until read; taken, its bytes stay the
   handle's (dropped before the read); a file gone behind our back is found
   at the read, and the body leaves the cache. */
static void test_lazy(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *gone = body_path(root, "INBOX", 1, 3);
	struct mcache *c = open_cache(root, 1 << 20);
	struct mcache_entry *e;
	char buf[8];
	int next_fd;

	store(c, "INBOX", 1, 1, 100);
	store(c, "INBOX", 1, 2, 200);
	store(c, "INBOX", 1, 3, 300);

	next_fd = dup(0);
	close(next_fd);
	e = mcache_get_lazy(c, "INBOX", 1, 1);
	g_assert_true(mcache_entry_complete(e, NULL));
	/* Nothing opened by the hit: the next descriptor is still free. */
	g_assert_cmpint(dup(0), ==, next_fd);
	close(next_fd);
	assert_body(e, 1, 100);
	mcache_entry_unref(e);

	e = mcache_get_lazy(c, "INBOX", 1, 2);
	mcache_drop(c, "INBOX", 1, 2);
	g_assert_false(cached(c, "INBOX", 1, 2));
	assert_body(e, 2, 200);
	mcache_entry_unref(e);

	e = mcache_get_lazy(c, "INBOX", 1, 3);
	g_assert_cmpint(g_unlink(gone), ==, 0);
	g_assert_cmpint(mcache_entry_read(e, buf, sizeof(buf), 0), ==, -ENODATA);
	g_assert_cmpint(mcache_entry_read(e, buf, sizeof(buf), 0), ==, -ENODATA);
	g_assert_cmpint(mcache_entry_write(e, 0, "abc", 3), <, 0);
	mcache_entry_unref(e);
	g_assert_false(cached(c, "INBOX", 1, 3));
	store(c, "INBOX", 1, 3, 300);
	g_assert_true(cached(c, "INBOX", 1, 3));
	mcache_close(c);
	rm_rf(root);
}

static void test_open_errors(void)
{
	g_autofree char *root = make_tmpdir();
	g_autofree char *file = g_build_filename(root, "plain", NULL);
	g_autofree char *below = g_build_filename(file, "cache", NULL);
	GError *err = NULL;

	g_assert_true(g_file_set_contents(file, "x", -1, NULL));
	g_assert_null(mcache_open(file, 100, &err));
	g_assert_nonnull(err);
	g_clear_error(&err);
	g_assert_null(mcache_open(below, 100, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOTDIR);
	g_clear_error(&err);
	mcache_close(NULL);
	rm_rf(root);
}

/* Fetch ahead as the prefetcher does: reserve, write, finish, hold. */
static gboolean store_ahead(struct mcache *c, guint32 uid, size_t len)
{
	struct mcache_entry *e;
	g_autofree char *b = make_body(uid, len);
	gboolean held;

	if (mcache_ahead_reserve(c, len, G_MAXUINT64) != MCACHE_ROOM_RESERVED)
		return FALSE;
	e = mcache_get(c, "INBOX", 1, uid);
	g_assert_cmpint(mcache_entry_write(e, 0, b, len), ==, 0);
	g_assert_cmpint(mcache_entry_finish(e, len), ==, 0);
	held = mcache_entry_hold_ahead(e);
	mcache_entry_unref(e);
	mcache_ahead_unreserve(c, len);
	return held;
}

static gboolean keep_none(void *ud, const char *folder_key, guint32 uid)
{
	(void)ud;
	(void)folder_key;
	(void)uid;
	return FALSE;
}

static gboolean keep_uid_3(void *ud, const char *folder_key, guint32 uid)
{
	(void)folder_key;
	return uid == GPOINTER_TO_UINT(ud);
}

/* Bodies fetched ahead: room within half the cache beside the open ones,
   never evicted while held, released to the LRU, counted when they leave
   unread. */
static void test_ahead(void)
{
	g_autofree char *root = make_tmpdir();
	struct mcache *c = open_cache(root, 1000);
	struct mcache_entry *reader, *open_one;
	struct mcache_stats s;
	g_autofree char *b = make_body(9, 700);
	g_autofree char *key = mcache_folder_key("INBOX", 1);

	/* Half of the cache at most is fetched ahead; cap bounds it too. */
	g_assert_cmpint(mcache_ahead_reserve(c, 501, G_MAXUINT64), ==, MCACHE_ROOM_NEVER);
	g_assert_cmpint(mcache_ahead_reserve(c, 200, 100), ==, MCACHE_ROOM_NEVER);
	g_assert_true(store_ahead(c, 1, 200));
	g_assert_true(store_ahead(c, 2, 200));
	g_assert_cmpint(mcache_ahead_reserve(c, 200, G_MAXUINT64), ==, MCACHE_ROOM_LATER);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.ahead_held, ==, 400);

	/* A reader fills the cache: the held bodies are not evicted for it. */
	open_one = mcache_get(c, "INBOX", 1, 7);
	g_assert_cmpint(mcache_entry_write(open_one, 0, b, 300), ==, 0);
	g_assert_cmpint(mcache_entry_finish(open_one, 300), ==, 0);
	mcache_entry_unref(open_one);
	reader = mcache_get(c, "INBOX", 1, 8);
	g_assert_cmpint(mcache_entry_write(reader, 0, b, 400), ==, 0); /* evicts 7, not 1, 2 */
	g_assert_true(mcache_peek_present(c, key, 1));
	g_assert_true(mcache_peek_present(c, key, 2));
	g_assert_true(mcache_peek_present(c, key, 8)); /* being filled */
	g_assert_false(mcache_peek_present(c, key, 7));
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.evictions, ==, 1);
	g_assert_cmpuint(s.ahead_unused, ==, 0);
	/* The reader expects 600 bytes: 50 more do not fit ahead beside it
	   and the 400 held (though within half the cache). */
	mcache_entry_expect(reader, 600);
	g_assert_cmpint(mcache_ahead_reserve(c, 50, G_MAXUINT64), ==, MCACHE_ROOM_LATER);

	/* A reader came for 1: no longer held, and it was used. */
	g_assert_true(cached(c, "INBOX", 1, 1));
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.ahead_held, ==, 200);

	/* 2 given up unread: evicted like any body, and counted. */
	mcache_ahead_release_unless(c, keep_none, NULL);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.ahead_held, ==, 0);
	g_assert_cmpint(mcache_entry_write(reader, 400, b + 400, 300), ==, 0); /* evicts 2 */
	g_assert_cmpint(mcache_entry_finish(reader, 700), ==, 0);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.ahead_unused, ==, 200);
	mcache_entry_unref(reader);

	/* The release keeps what keep says; a dropped held body counts too. */
	g_assert_true(store_ahead(c, 3, 100));
	g_assert_true(store_ahead(c, 4, 100));
	mcache_ahead_release_unless(c, keep_uid_3, GUINT_TO_POINTER(3));
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.ahead_held, ==, 100);
	mcache_drop(c, "INBOX", 1, 3);
	mcache_get_stats(c, &s);
	g_assert_cmpuint(s.ahead_held, ==, 0);
	g_assert_cmpuint(s.ahead_unused, ==, 300);

	/* A body a reader holds already is not held for it. */
	{
		struct mcache_entry *r2 = mcache_get(c, "INBOX", 1, 5);
		struct mcache_entry *p = mcache_get(c, "INBOX", 1, 5);

		g_assert_cmpint(mcache_entry_write(p, 0, b, 50), ==, 0);
		g_assert_cmpint(mcache_entry_finish(p, 50), ==, 0);
		g_assert_false(mcache_entry_hold_ahead(p));
		mcache_entry_unref(p);
		mcache_entry_unref(r2);
	}
	mcache_close(c);
	rm_rf(root);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/mcache/basic", test_basic);
	g_test_add_func("/mcache/peek", test_peek);
	g_test_add_func("/mcache/remount", test_remount);
	g_test_add_func("/mcache/modes", test_modes);
	g_test_add_func("/mcache/lru", test_lru);
	g_test_add_func("/mcache/pinned", test_pinned);
	g_test_add_func("/mcache/partial-ranges", test_partial_ranges);
	g_test_add_func("/mcache/drop", test_drop);
	g_test_add_func("/mcache/threads", test_threads);
	g_test_add_func("/mcache/write-failure", test_write_failure);
	g_test_add_func("/mcache/open-failure", test_open_failure);
	g_test_add_func("/mcache/open-errors", test_open_errors);
	g_test_add_func("/mcache/lazy", test_lazy);
	g_test_add_func("/mcache/ahead", test_ahead);
	return g_test_run();
}
