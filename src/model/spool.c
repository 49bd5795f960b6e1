/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/names.h"

#define STATE_NAME "taken"
/* A UIDL is at most 70 characters (RFC 1939 §7). */
#define UIDL_MAX 70

struct spool_state {
	char *dir;
	char *path;
	GHashTable *taken; /* UIDL -> itself */
};

static gboolean errno_error(GError **err, int e, const char *what, const char *path)
{
	g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "%s %s: %s", what, path,
		    g_strerror(e));
	return FALSE;
}

gboolean spool_mkdir(const char *path, int mode, GError **err)
{
	if (g_mkdir_with_parents(path, mode) != 0)
		return errno_error(err, errno, "cannot create", path);
	if (chmod(path, (mode_t)mode) != 0)
		return errno_error(err, errno, "cannot chmod", path);
	return TRUE;
}

gboolean spool_fsync_dir(const char *path, GError **err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int e;

	if (fd < 0)
		return errno_error(err, errno, "cannot open", path);
	if (fsync(fd) != 0) {
		e = errno;
		close(fd);
		return errno_error(err, e, "cannot fsync", path);
	}
	close(fd);
	return TRUE;
}

static gboolean uidl_ok(const char *s, size_t len)
{
	if (len == 0 || len > UIDL_MAX)
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return FALSE;
	}
	return TRUE;
}

struct spool_state *spool_state_open(const char *dir, GError **err)
{
	struct spool_state *st;
	g_autofree char *text = NULL;
	gsize len = 0;
	GError *e = NULL;

	if (!spool_mkdir(dir, 0700, err))
		return NULL;
	st = g_new0(struct spool_state, 1);
	st->dir = g_strdup(dir);
	st->path = g_build_filename(dir, STATE_NAME, NULL);
	st->taken = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (!g_file_get_contents(st->path, &text, &len, &e)) {
		if (g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_error_free(e);
			return st;
		}
		g_propagate_error(err, e);
		spool_state_free(st);
		return NULL;
	}
	for (gsize i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (text + i)) : len - i;

		if (uidl_ok(text + i, l))
			g_hash_table_add(st->taken, g_strndup(text + i, l));
		i += l + 1;
	}
	return st;
}

void spool_state_free(struct spool_state *st)
{
	if (!st)
		return;
	g_hash_table_destroy(st->taken);
	g_free(st->path);
	g_free(st->dir);
	g_free(st);
}

gboolean spool_state_has(const struct spool_state *st, const char *uidl)
{
	return g_hash_table_contains(st->taken, uidl);
}

guint spool_state_count(const struct spool_state *st)
{
	return g_hash_table_size(st->taken);
}

/* Write all of len bytes; FALSE with errno set. */
static gboolean write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return FALSE;
		}
		p += n;
		len -= (size_t)n;
	}
	return TRUE;
}

/* Write data to dir/tmpname, fsync, rename to final, fsync dir. */
static gboolean write_durably(const char *tmp, const char *final, const char *dir,
			      const void *data, size_t len, GError **err)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int e;

	if (fd < 0)
		return errno_error(err, errno, "cannot create", tmp);
	if (!write_all(fd, data, len) || fsync(fd) != 0) {
		e = errno;
		close(fd);
		g_unlink(tmp);
		return errno_error(err, e, "cannot write", tmp);
	}
	if (close(fd) != 0) {
		e = errno;
		g_unlink(tmp);
		return errno_error(err, e, "cannot write", tmp);
	}
	if (rename(tmp, final) != 0) {
		e = errno;
		g_unlink(tmp);
		return errno_error(err, e, "cannot rename to", final);
	}
	return spool_fsync_dir(dir, err);
}

static gboolean state_save(struct spool_state *st, GError **err)
{
	GString *s = g_string_new(NULL);
	g_autofree char *tmp = g_strconcat(st->path, ".new", NULL);
	GHashTableIter it;
	gpointer k;
	gboolean ok;

	g_hash_table_iter_init(&it, st->taken);
	while (g_hash_table_iter_next(&it, &k, NULL)) {
		g_string_append(s, k);
		g_string_append_c(s, '\n');
	}
	ok = write_durably(tmp, st->path, st->dir, s->str, s->len, err);
	g_string_free(s, TRUE);
	return ok;
}

gboolean spool_state_add_many(struct spool_state *st, const char *const *uidls, guint n,
			      GError **err)
{
	g_autoptr(GPtrArray) added = g_ptr_array_new();

	for (guint i = 0; i < n; i++) {
		if (!uidl_ok(uidls[i], strlen(uidls[i]))) {
			g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "invalid UIDL");
			goto undo;
		}
		if (!g_hash_table_contains(st->taken, uidls[i])) {
			char *copy = g_strdup(uidls[i]);

			g_hash_table_add(st->taken, copy);
			g_ptr_array_add(added, copy);
		}
	}
	if (added->len == 0 || state_save(st, err))
		return TRUE;
undo:
	/* Not recorded on disk: not taken. */
	for (guint i = 0; i < added->len; i++)
		g_hash_table_remove(st->taken, added->pdata[i]);
	return FALSE;
}

gboolean spool_state_add(struct spool_state *st, const char *uidl, GError **err)
{
	return spool_state_add_many(st, &uidl, 1, err);
}

gboolean spool_state_prune(struct spool_state *st, GHashTable *present, GError **err)
{
	GHashTableIter it;
	gpointer k;
	guint dropped = 0;

	g_hash_table_iter_init(&it, st->taken);
	while (g_hash_table_iter_next(&it, &k, NULL)) {
		if (!g_hash_table_contains(present, k)) {
			g_hash_table_iter_remove(&it);
			dropped++;
		}
	}
	return dropped == 0 || state_save(st, err);
}

gboolean spool_archive_prepare(const char *maildir, GError **err)
{
	static const char *const sub[] = { "tmp", "new", "cur" };

	if (!spool_mkdir(maildir, 0700, err))
		return FALSE;
	for (guint i = 0; i < G_N_ELEMENTS(sub); i++) {
		g_autofree char *path = g_build_filename(maildir, sub[i], NULL);

		if (!spool_mkdir(path, 0700, err))
			return FALSE;
	}
	return TRUE;
}

gboolean spool_archive(const char *maildir, const char *uidl, int src_fd, GError **err)
{
	g_autofree char *name = names_escape(uidl, strlen(uidl));
	g_autofree char *tmpdir = g_build_filename(maildir, "tmp", NULL);
	g_autofree char *newdir = g_build_filename(maildir, "new", NULL);
	g_autofree char *tmp = g_build_filename(tmpdir, name, NULL);
	g_autofree char *final = g_build_filename(newdir, name, NULL);
	char buf[65536];
	off_t off = 0;
	int fd, e;

	/* The directories were made at mount (spool_archive_prepare): four
	   mkdir and chmod per message cost more than the rename. A Maildir
	   removed while mounted is made again. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		if (!spool_archive_prepare(maildir, err))
			return FALSE;
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return errno_error(err, errno, "cannot create", tmp);
	for (;;) {
		ssize_t n = pread(src_fd, buf, sizeof(buf), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			close(fd);
			g_unlink(tmp);
			return errno_error(err, e, "cannot read the spool copy for", tmp);
		}
		if (n == 0)
			break;
		if (!write_all(fd, buf, (size_t)n)) {
			e = errno;
			close(fd);
			g_unlink(tmp);
			return errno_error(err, e, "cannot write", tmp);
		}
		off += n;
	}
	/* Not fsync'd here: spool_archive_sync() makes it durable with the
	   rest of the batch. */
	if (close(fd) != 0) {
		e = errno;
		g_unlink(tmp);
		return errno_error(err, e, "cannot write", tmp);
	}
	if (rename(tmp, final) != 0 && (errno != ENOENT || !spool_archive_prepare(maildir, NULL) ||
					rename(tmp, final) != 0)) {
		e = errno;
		g_unlink(tmp);
		return errno_error(err, e, "cannot rename to", final);
	}
	return TRUE;
}

gboolean spool_archive_link(const char *maildir, const char *uidl, const char *src_path,
			    int src_fd, GError **err)
{
	g_autofree char *name = names_escape(uidl, strlen(uidl));
	g_autofree char *tmp = g_build_filename(maildir, "tmp", name, NULL);
	g_autofree char *newdir = g_build_filename(maildir, "new", NULL);
	g_autofree char *final = g_build_filename(newdir, name, NULL);
	int e;

	/* A tmp/ entry left by a crash is this message's: replaced. */
	g_unlink(tmp);
	if (link(src_path, tmp) != 0 && (errno != ENOENT || !spool_archive_prepare(maildir, NULL) ||
					 link(src_path, tmp) != 0))
		return spool_archive(maildir, uidl, src_fd, err);
	if (rename(tmp, final) != 0 && (errno != ENOENT || !spool_archive_prepare(maildir, NULL) ||
					rename(tmp, final) != 0)) {
		e = errno;
		g_unlink(tmp);
		return errno_error(err, e, "cannot rename to", final);
	}
	/* The bytes, the new name and the link count reach the disk with the
	   batch (spool_archive_sync). */
	return TRUE;
}

/*
 * syncfs(2) of new/'s file system: one writeback and one device flush for
 * a whole batch of messages, where an fsync of each file (and of new/)
 * flushes the device once per message. It also writes whatever else is
 * dirty on that file system, which only makes it slower, never less safe.
 * Since Linux 5.8 it reports a writeback error of any file there since the
 * descriptor was opened or last synced (the superblock's errseq), so a
 * failed write of a message's bytes fails the batch: even one the kernel's
 * own writeback met before this call, because watch_fd was opened at mount,
 * before any of them was written. (An error of another file there fails
 * the batch too: it is retried.)
 */
int spool_archive_watch(const char *maildir, GError **err)
{
	g_autofree char *newdir = g_build_filename(maildir, "new", NULL);
	int fd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		errno_error(err, errno, "cannot open", newdir);
	return fd;
}

gboolean spool_archive_sync(int watch_fd, const char *maildir, GError **err)
{
	if (syncfs(watch_fd) != 0) {
		g_autofree char *newdir = g_build_filename(maildir, "new", NULL);

		return errno_error(err, errno, "cannot sync the file system of", newdir);
	}
	return TRUE;
}
