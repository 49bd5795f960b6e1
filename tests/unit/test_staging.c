/* SPDX-License-Identifier: GPL-2.0-or-later */
/* New files of the IMAP view before they are appended: model/staging.h. */
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "model/staging.h"

struct fixture {
	char *dir;
	struct staging *sg;
};

static void setup(struct fixture *f, gconstpointer data)
{
	(void)data;
	f->dir = g_dir_make_tmp("staging-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
	f->sg = staging_new(f->dir, getuid(), getgid());
}

static void teardown(struct fixture *f, gconstpointer data)
{
	g_autofree char *sub = g_build_filename(f->dir, "staging", NULL);

	(void)data;
	staging_free(f->sg);
	g_rmdir(sub);
	g_rmdir(f->dir);
	g_free(f->dir);
}

/* cp: create, write, the last close sends it once; after the APPEND the
   name is gone from the staging and the file is freed when forgotten. */
static void test_cp(struct fixture *f, gconstpointer data)
{
	struct staged_copy c = { .fd = -1 };
	struct stat st;
	guint64 ino;
	char buf[16];

	(void)data;
	g_assert_cmpint(staging_create(f->sg, 7, "new.eml", &ino, &st), ==, 0);
	g_assert_true(staging_is_staged(ino));
	g_assert_cmpuint(st.st_ino, ==, ino);
	g_assert_cmpint(st.st_size, ==, 0);
	/* Not written yet: a close has nothing to send. */
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	g_assert_cmpint(staging_pwrite(f->sg, ino, "Subject: x\n\nhi\n", 15, 0), ==, 15);
	g_assert_true(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	g_assert_cmpuint(c.parent, ==, 7);
	g_assert_cmpstr(c.name, ==, "new.eml");
	g_assert_cmpint(pread(c.fd, buf, sizeof(buf), 0), ==, 15);
	g_assert_cmpint(memcmp(buf, "Subject: x\n\nhi\n", 15), ==, 0);
	staged_copy_clear(&c);
	{
		const struct staged_sent sent = { 41, 9, "\\Seen", 1000, 7, "new.eml" };

		staging_appended(f->sg, ino, &sent);
	}
	/* Done: no second APPEND; the name answers for a moment (a `>>` or a
	   rename may follow), as the message the APPEND made. */
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	g_assert_true(staging_lookup(f->sg, 7, "new.eml", &st));
	g_assert_cmpuint(st.st_nlink, ==, 1);
	/* Written again: live, its next APPEND replaces UID 41. */
	g_assert_cmpint(staging_pwrite(f->sg, ino, "more\n", 5, 15), ==, 5);
	g_assert_true(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	g_assert_cmpuint(c.own_uid, ==, 41);
	g_assert_cmpuint(c.own_uidvalidity, ==, 9);
	g_assert_cmpstr(c.flags, ==, "\\Seen");
	g_assert_cmpint(c.mtime, ==, 1000);
	g_assert_false(c.sent);
	staged_copy_clear(&c);
	/* Removed: done, not found by name, no more writes. */
	staging_drop(f->sg, ino);
	g_assert_false(staging_lookup(f->sg, 7, "new.eml", &st));
	g_assert_cmpint(staging_pwrite(f->sg, ino, "x", 1, 0), ==, -EPERM);
	/* Still there for the kernel until released and forgotten. */
	g_assert_cmpint(staging_getattr(f->sg, ino, &st), ==, 0);
	g_assert_cmpuint(st.st_nlink, ==, 0);
	staging_release(f->sg, ino);
	staging_forget(f->sg, ino, 2);
	g_assert_cmpint(staging_getattr(f->sg, ino, &st), ==, -ENOENT);
}

/* touch, a 0-byte cp: nothing to send, also when opened again truncated
   (it stays a local empty file until written or forgotten). */
static void test_nothing_written(struct fixture *f, gconstpointer data)
{
	struct staged_copy c = { .fd = -1 };
	struct stat st;
	guint64 ino;

	(void)data;
	g_assert_cmpint(staging_create(f->sg, 7, "t.eml", &ino, &st), ==, 0);
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	staging_release(f->sg, ino);
	g_assert_cmpint(staging_open(f->sg, ino, TRUE), ==, 0);
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	staging_release(f->sg, ino);
	g_assert_true(staging_lookup(f->sg, 7, "t.eml", &st));
	staging_forget(f->sg, ino, 2);
	g_assert_cmpint(staging_getattr(f->sg, ino, &st), ==, -ENOENT);
}

/* A write holding a NUL byte is refused, and so is the file until it is
   truncated: what was written before it is not the file either. A scratch
   file (never sent) takes any byte. */
static void test_nul_refused(struct fixture *f, gconstpointer data)
{
	struct staged_copy c = { .fd = -1 };
	struct stat st, in = { 0 };
	guint64 ino, scratch;

	(void)data;
	g_assert_cmpint(staging_create(f->sg, 7, "n.eml", &ino, &st), ==, 0);
	g_assert_cmpint(staging_pwrite(f->sg, ino, "Subject: a\n", 11, 0), ==, 11);
	g_assert_false(staging_refused(f->sg, ino));
	g_assert_cmpint(staging_pwrite(f->sg, ino, "x\0y", 3, 11), ==, -EINVAL);
	g_assert_true(staging_refused(f->sg, ino));
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	g_assert_cmpint(staging_setattr(f->sg, ino, &in, STAGING_SET_SIZE, &st), ==, 0);
	g_assert_false(staging_refused(f->sg, ino));
	g_assert_cmpint(staging_pwrite(f->sg, ino, "Subject: b\n", 11, 0), ==, 11);
	g_assert_true(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	staged_copy_clear(&c);

	g_assert_cmpint(staging_create(f->sg, 7, ".n.eml.swp", &scratch, &st), ==, 0);
	g_assert_cmpint(staging_pwrite(f->sg, scratch, "x\0y", 3, 0), ==, 3);
	g_assert_false(staging_refused(f->sg, scratch));
}

/* A message opened for writing: a copy with its bytes, found by the
   message's inode; sent only once written; done at its last close. */
static void test_replacement(struct fixture *f, gconstpointer data)
{
	struct staged_copy c = { .fd = -1 };
	struct stat st;
	guint64 ino, other;
	char buf[32];

	(void)data;
	g_assert_cmpint(staging_create_replacement(f->sg, 1234, 7, "5-x.eml", "Subject: a\r\n", 12,
						   &ino),
			==, 0);
	g_assert_cmpuint(staging_find_replacement(f->sg, 1234), ==, ino);
	/* A second open at the same time joins it. */
	g_assert_cmpint(staging_create_replacement(f->sg, 1234, 7, "5-x.eml", NULL, 0, &other), ==,
			0);
	g_assert_cmpuint(other, ==, ino);
	staging_release(f->sg, ino);
	g_assert_cmpuint(staging_find_replacement(f->sg, 1234), ==, ino);
	g_assert_false(staging_lookup(f->sg, 7, "5-x.eml", &st));
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	g_assert_cmpint(staging_pread(f->sg, ino, buf, sizeof(buf), 0), ==, 12);
	g_assert_cmpint(staging_pwrite(f->sg, ino, "b", 1, 9), ==, 1);
	g_assert_true(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	g_assert_cmpuint(c.replaces, ==, 1234);
	staged_copy_clear(&c);
	/* Refused (nothing appended): the last close drops it all the same. */
	staging_release(f->sg, ino);
	g_assert_cmpuint(staging_find_replacement(f->sg, 1234), ==, 0);
	g_assert_cmpint(staging_getattr(f->sg, ino, &st), ==, -ENOENT);
}

/* A second open of the file: the first close does not send it. */
static void test_two_opens(struct fixture *f, gconstpointer data)
{
	struct staged_copy c = { .fd = -1 };
	struct stat st;
	guint64 ino;

	(void)data;
	g_assert_cmpint(staging_create(f->sg, 7, "a.eml", &ino, &st), ==, 0);
	g_assert_cmpint(staging_pwrite(f->sg, ino, "x", 1, 0), ==, 1);
	g_assert_cmpint(staging_open(f->sg, ino, FALSE), ==, 0);
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	staging_release(f->sg, ino);
	g_assert_true(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	staged_copy_clear(&c);
}

/* rsync: a scratch name is never sent at close; found by name for its
   rename; renamed to another scratch name it stays local. */
static void test_scratch_rename(struct fixture *f, gconstpointer data)
{
	struct staged_copy c = { .fd = -1 };
	struct stat st;
	guint64 ino, found = 0;

	(void)data;
	g_assert_cmpint(staging_create(f->sg, 7, ".msg.eml.Ab12Cd", &ino, &st), ==, 0);
	g_assert_cmpint(staging_pwrite(f->sg, ino, "x", 1, 0), ==, 1);
	g_assert_false(staging_copy_to_flush(f->sg, ino, TRUE, &c));
	staging_rename(f->sg, ino, 8, ".other.eml.Zz99Yy");
	g_assert_false(staging_copy_by_name(f->sg, 7, ".msg.eml.Ab12Cd", &found, &c));
	g_assert_true(staging_copy_by_name(f->sg, 8, ".other.eml.Zz99Yy", &found, &c));
	g_assert_cmpuint(found, ==, ino);
	staged_copy_clear(&c);
}

/* Flags, truncation, times, unlink. */
static void test_attributes(struct fixture *f, gconstpointer data)
{
	struct stat st, in = { 0 };
	gboolean exists;
	guint64 ino;
	char *flags;

	(void)data;
	g_assert_cmpint(staging_create(f->sg, 7, "f.eml", &ino, &st), ==, 0);
	flags = staging_get_flags(f->sg, ino, &exists);
	g_assert_true(exists);
	g_assert_null(flags);
	g_assert_cmpint(staging_set_flags(f->sg, ino, "\\Seen"), ==, 0);
	flags = staging_get_flags(f->sg, ino, &exists);
	g_assert_cmpstr(flags, ==, "\\Seen");
	g_free(flags);
	g_assert_cmpint(staging_pwrite(f->sg, ino, "abcdef", 6, 0), ==, 6);
	in.st_size = 2;
	in.st_mtime = 1000;
	g_assert_cmpint(staging_setattr(f->sg, ino, &in, STAGING_SET_SIZE | STAGING_SET_MTIME, &st),
			==, 0);
	g_assert_cmpint(st.st_size, ==, 2);
	g_assert_cmpint(st.st_mtime, ==, 1000);
	g_assert_true(staging_lookup(f->sg, 7, "f.eml", &st));
	g_assert_true(staging_unlink(f->sg, 7, "f.eml"));
	g_assert_false(staging_unlink(f->sg, 7, "f.eml"));
	/* Removed but open: readable until released. */
	g_assert_cmpint(staging_pread(f->sg, ino, &st, 2, 0), ==, 2);
	staging_release(f->sg, ino);
	staging_forget(f->sg, ino, 2);
	g_assert_cmpint(staging_pread(f->sg, ino, &st, 2, 0), ==, -ENOENT);
	g_assert_null(staging_get_flags(f->sg, ino, &exists));
	g_assert_false(exists);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add("/staging/cp", struct fixture, NULL, setup, test_cp, teardown);
	g_test_add("/staging/two-opens", struct fixture, NULL, setup, test_two_opens, teardown);
	g_test_add("/staging/scratch-rename", struct fixture, NULL, setup, test_scratch_rename,
		   teardown);
	g_test_add("/staging/attributes", struct fixture, NULL, setup, test_attributes, teardown);
	g_test_add("/staging/nothing-written", struct fixture, NULL, setup, test_nothing_written,
		   teardown);
	g_test_add("/staging/nul-refused", struct fixture, NULL, setup, test_nul_refused, teardown);
	g_test_add("/staging/replacement", struct fixture, NULL, setup, test_replacement, teardown);
	return g_test_run();
}
