/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *make_tmpdir(void)
{
	GError *err = NULL;
	char *d = g_dir_make_tmp("spool-test-XXXXXX", &err);

	g_assert_no_error(err);
	return d;
}

static void rm_rf(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	const char *name;

	if (d) {
		while ((name = g_dir_read_name(d))) {
			g_autofree char *p = g_build_filename(path, name, NULL);

			if (g_file_test(p, G_FILE_TEST_IS_DIR))
				rm_rf(p);
			else
				g_unlink(p);
		}
		g_dir_close(d);
	}
	g_rmdir(path);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	g_assert_cmpint(stat(path, &st), ==, 0);
	return st.st_mode & 07777;
}

static void test_state_roundtrip(void)
{
	g_autofree char *tmp = make_tmpdir();
	g_autofree char *dir = g_build_filename(tmp, "state", "acct", NULL);
	g_autofree char *file = g_build_filename(dir, "taken", NULL);
	GError *err = NULL;
	struct spool_state *st = spool_state_open(dir, &err);
	g_autoptr(GHashTable) present = g_hash_table_new(g_str_hash, g_str_equal);
	char uidl[] = "a/../b";

	g_assert_no_error(err);
	g_assert_nonnull(st);
	g_assert_cmpuint(mode_of(dir), ==, 0700);
	g_assert_cmpuint(spool_state_count(st), ==, 0);
	g_assert_true(spool_state_add(st, "000000016b082964", &err));
	g_assert_true(spool_state_add(st, "a/../b", &err));
	g_assert_true(spool_state_add(st, "a/../b", &err)); /* twice: once */
	g_assert_no_error(err);
	/* Invalid UIDLs are refused, nothing recorded. */
	g_assert_false(spool_state_add(st, "with space", &err));
	g_clear_error(&err);
	g_assert_false(spool_state_add(st, "", &err));
	g_clear_error(&err);
	g_assert_cmpuint(spool_state_count(st), ==, 2);
	g_assert_cmpuint(mode_of(file), ==, 0600);
	spool_state_free(st);

	st = spool_state_open(dir, &err);
	g_assert_no_error(err);
	g_assert_true(spool_state_has(st, "000000016b082964"));
	g_assert_true(spool_state_has(st, "a/../b"));
	g_assert_false(spool_state_has(st, "other"));

	/* Prune: what is no longer on the server goes. */
	g_hash_table_add(present, uidl);
	g_assert_true(spool_state_prune(st, present, &err));
	g_assert_no_error(err);
	spool_state_free(st);
	st = spool_state_open(dir, &err);
	g_assert_cmpuint(spool_state_count(st), ==, 1);
	g_assert_true(spool_state_has(st, "a/../b"));
	spool_state_free(st);
	rm_rf(tmp);
}

static void test_state_add_many(void)
{
	g_autofree char *tmp = make_tmpdir();
	g_autofree char *dir = g_build_filename(tmp, "state", NULL);
	g_autofree char *file = g_build_filename(dir, "taken", NULL);
	static const char *const batch[] = { "u1", "u2", "u1", "u3" };
	static const char *const bad[] = { "u4", "with space" };
	static const char *const late[] = { "u5", "u6" };
	GError *err = NULL;
	struct spool_state *st = spool_state_open(dir, &err);

	g_assert_no_error(err);
	g_assert_true(spool_state_add_many(st, batch, G_N_ELEMENTS(batch), &err));
	g_assert_no_error(err);
	g_assert_cmpuint(spool_state_count(st), ==, 3);
	/* One invalid UIDL: none of the batch is recorded. */
	g_assert_false(spool_state_add_many(st, bad, G_N_ELEMENTS(bad), &err));
	g_clear_error(&err);
	g_assert_false(spool_state_has(st, "u4"));
	/* A write that fails (the directory is gone): none of it counts. */
	g_assert_cmpint(g_unlink(file), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
	g_assert_false(spool_state_add_many(st, late, G_N_ELEMENTS(late), &err));
	g_assert_nonnull(err);
	g_clear_error(&err);
	g_assert_false(spool_state_has(st, "u5"));
	g_assert_false(spool_state_has(st, "u6"));
	g_assert_true(spool_state_has(st, "u2"));
	spool_state_free(st);
	/* Written once, whole: reopened, the first batch is there. */
	g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
	st = spool_state_open(dir, &err);
	g_assert_cmpuint(spool_state_count(st), ==, 0);
	g_assert_true(spool_state_add_many(st, late, G_N_ELEMENTS(late), &err));
	spool_state_free(st);
	st = spool_state_open(dir, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(spool_state_count(st), ==, 2);
	g_assert_true(spool_state_has(st, "u6"));
	spool_state_free(st);
	rm_rf(tmp);
}

static void test_state_bad_lines(void)
{
	g_autofree char *tmp = make_tmpdir();
	g_autofree char *file = g_build_filename(tmp, "taken", NULL);
	static const char text[] = "good1\n\nbad line\nx\x01y\n"
				   "0123456789012345678901234567890123456789012345678901234567890123456789X\n"
				   "good2";
	GError *err = NULL;
	struct spool_state *st;

	g_assert_true(g_file_set_contents(file, text, sizeof(text) - 1, &err));
	st = spool_state_open(tmp, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(spool_state_count(st), ==, 2);
	g_assert_true(spool_state_has(st, "good1"));
	g_assert_true(spool_state_has(st, "good2"));
	spool_state_free(st);
	rm_rf(tmp);
}

static void test_archive_sync_error(void)
{
	g_autofree char *tmp = make_tmpdir();
	GError *err = NULL;

	/* No new/: nothing to watch, and it says why. */
	g_assert_cmpint(spool_archive_watch(tmp, &err), <, 0);
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
	g_clear_error(&err);
	/* A descriptor that is not one: the batch is not archived. */
	g_assert_false(spool_archive_sync(-1, tmp, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_BADF);
	g_clear_error(&err);
	rm_rf(tmp);
}

static void test_archive(void)
{
	g_autofree char *tmp = make_tmpdir();
	g_autofree char *maildir = g_build_filename(tmp, "archive", NULL);
	g_autofree char *src = g_build_filename(tmp, "src", NULL);
	g_autofree char *dst = NULL;
	g_autofree char *got = NULL;
	g_autoptr(GString) body = g_string_new("Subject: x\r\n\r\n");
	GError *err = NULL;
	gsize len;
	int fd, watch;

	for (int i = 0; i < 20000; i++)
		g_string_append(body, "line of text\r\n");
	g_assert_true(g_file_set_contents(src, body->str, (gssize)body->len, &err));
	fd = open(src, O_RDONLY);
	g_assert_cmpint(fd, >=, 0);
	/* A UIDL with '/' and a leading '.' goes through the name encoder. */
	g_assert_true(spool_archive_prepare(maildir, &err));
	watch = spool_archive_watch(maildir, &err);
	g_assert_cmpint(watch, >=, 0);
	g_assert_true(spool_archive(maildir, ".a/b", fd, &err));
	g_assert_no_error(err);
	g_assert_true(spool_archive_sync(watch, maildir, &err));
	g_assert_no_error(err);
	close(watch);
	dst = g_build_filename(maildir, "new", "%2Ea%2Fb", NULL);
	g_assert_true(g_file_get_contents(dst, &got, &len, &err));
	g_assert_cmpmem(got, len, body->str, body->len);
	g_assert_cmpuint(mode_of(dst), ==, 0600);
	g_assert_cmpuint(mode_of(maildir), ==, 0700);
	{
		g_autofree char *cur = g_build_filename(maildir, "cur", NULL);
		g_autofree char *tmpd = g_build_filename(maildir, "tmp", NULL);
		GDir *d;

		g_assert_true(g_file_test(cur, G_FILE_TEST_IS_DIR));
		d = g_dir_open(tmpd, 0, NULL);
		g_assert_null(g_dir_read_name(d)); /* nothing left in tmp/ */
		g_dir_close(d);
	}
	/* Again (a crash between archive and state): one copy, same name. */
	g_assert_true(spool_archive(maildir, ".a/b", fd, &err));
	{
		g_autofree char *newd = g_build_filename(maildir, "new", NULL);
		GDir *d = g_dir_open(newd, 0, NULL);
		guint n = 0;

		while (g_dir_read_name(d))
			n++;
		g_dir_close(d);
		g_assert_cmpuint(n, ==, 1);
	}
	close(fd);
	rm_rf(tmp);
}

/* The Maildir is made once (prepare); one removed while mounted is made again. */
static void test_archive_prepared_once(void)
{
	g_autofree char *tmp = make_tmpdir();
	g_autofree char *maildir = g_build_filename(tmp, "archive", NULL);
	g_autofree char *newd = g_build_filename(maildir, "new", NULL);
	g_autofree char *tmpd = g_build_filename(maildir, "tmp", NULL);
	g_autofree char *src = g_build_filename(tmp, "src", NULL);
	g_autofree char *dst = g_build_filename(newd, "u1", NULL);
	GError *err = NULL;
	int fd;

	g_assert_true(spool_archive_prepare(maildir, &err));
	g_assert_no_error(err);
	g_assert_cmpuint(mode_of(newd), ==, 0700);
	g_assert_true(g_file_set_contents(src, "Subject: y\r\n\r\nbody\r\n", -1, &err));
	fd = open(src, O_RDONLY);
	g_assert_cmpint(fd, >=, 0);
	/* new/ gone: made again at the rename. */
	g_assert_cmpint(rmdir(newd), ==, 0);
	g_assert_true(spool_archive(maildir, "u1", fd, &err));
	g_assert_no_error(err);
	g_assert_true(g_file_test(dst, G_FILE_TEST_IS_REGULAR));
	/* tmp/ gone as well: made again before the copy. */
	rm_rf(maildir);
	g_assert_true(spool_archive(maildir, "u1", fd, &err));
	g_assert_no_error(err);
	g_assert_true(g_file_test(dst, G_FILE_TEST_IS_REGULAR));
	g_assert_true(g_file_test(tmpd, G_FILE_TEST_IS_DIR));
	close(fd);
	rm_rf(tmp);
}

/* From the spool store's file: a hard link, the same inode, nothing left in tmp/. */
static void test_archive_link(void)
{
	g_autofree char *tmp = make_tmpdir();
	g_autofree char *maildir = g_build_filename(tmp, "archive", NULL);
	g_autofree char *src = g_build_filename(tmp, "src", NULL);
	g_autofree char *dst = g_build_filename(maildir, "new", "u1", NULL);
	g_autofree char *tmpd = g_build_filename(maildir, "tmp", NULL);
	g_autofree char *stale = g_build_filename(tmpd, "u1", NULL);
	struct stat a, b;
	GError *err = NULL;
	GDir *d;
	int fd;

	g_assert_true(g_file_set_contents(src, "Subject: z\r\n\r\nbody\r\n", -1, &err));
	fd = open(src, O_RDONLY);
	g_assert_cmpint(fd, >=, 0);
	g_assert_true(spool_archive_prepare(maildir, &err));
	/* A tmp/ entry a crash left behind is replaced. */
	g_assert_true(g_file_set_contents(stale, "junk", -1, &err));
	g_assert_true(spool_archive_link(maildir, "u1", src, fd, &err));
	g_assert_no_error(err);
	g_assert_cmpint(stat(src, &a), ==, 0);
	g_assert_cmpint(stat(dst, &b), ==, 0);
	g_assert_cmpuint(a.st_ino, ==, b.st_ino);
	d = g_dir_open(tmpd, 0, NULL);
	g_assert_null(g_dir_read_name(d));
	g_dir_close(d);
	/* Again (a crash between archive and state): one copy. */
	g_assert_true(spool_archive_link(maildir, "u1", src, fd, &err));
	g_assert_no_error(err);
	/* A source name that cannot be linked: the copy. */
	g_assert_cmpint(unlink(src), ==, 0);
	g_assert_true(spool_archive_link(maildir, "u2", src, fd, &err));
	g_assert_no_error(err);
	{
		g_autofree char *dst2 = g_build_filename(maildir, "new", "u2", NULL);
		g_autofree char *got = NULL;
		gsize len;

		g_assert_true(g_file_get_contents(dst2, &got, &len, &err));
		g_assert_cmpstr(got, ==, "Subject: z\r\n\r\nbody\r\n");
	}
	close(fd);
	rm_rf(tmp);
}

/* A copy that fails (here: the source cannot be read) leaves nothing in new/. */
static void test_archive_read_error(void)
{
	g_autofree char *tmp = make_tmpdir();
	g_autofree char *maildir = g_build_filename(tmp, "archive", NULL);
	g_autofree char *newname = g_build_filename(maildir, "new", "u1", NULL);
	GError *err = NULL;
	int bad = open(tmp, O_RDONLY | O_DIRECTORY);

	g_assert_cmpint(bad, >=, 0);
	g_assert_false(spool_archive(maildir, "u1", bad, &err));
	g_assert_nonnull(err);
	g_clear_error(&err);
	g_assert_false(g_file_test(newname, G_FILE_TEST_EXISTS));
	close(bad);
	rm_rf(tmp);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/spool/state-roundtrip", test_state_roundtrip);
	g_test_add_func("/spool/state-add-many", test_state_add_many);
	g_test_add_func("/spool/state-bad-lines", test_state_bad_lines);
	g_test_add_func("/spool/archive", test_archive);
	g_test_add_func("/spool/archive-sync-error", test_archive_sync_error);
	g_test_add_func("/spool/archive-read-error", test_archive_read_error);
	g_test_add_func("/spool/archive-prepared-once", test_archive_prepared_once);
	g_test_add_func("/spool/archive-link", test_archive_link);
	return g_test_run();
}
