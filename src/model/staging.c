/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/staging.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "model/append.h"
#include "util/lock.h"

struct staged {
	guint64 ino;
	guint64 parent;
	char *name;
	int fd; /* the unlinked file */
	guint opens;
	guint64 nlookup;
	gint64 mtime;
	/* mtime was set by the writer (utimensat: rsync -a, cp -p, touch -d)
	   after the last write: a copy of a message from elsewhere */
	gboolean dated;
	char *flags;	/* canonical user.imap.flags, or NULL */
	gboolean dirty; /* written since the last APPEND */
	gboolean done;	/* appended (or removed): kept only for the kernel */
	guint64 replaces;	  /* the message this file is to replace (written into), or 0 */
	guint32 own_uid;	  /* what its last APPEND made (0: unknown): expunged when sent again */
	guint32 own_uidvalidity;
	gint64 recent_until;	  /* monotonic: until then its name answers after its APPEND */
	guint64 origin;		  /* a backup name of this message (no file: fd -1), or 0 */
	gboolean refused;	  /* a write was refused: never sent, until truncated to 0 */
};

struct staging {
	char *dir;
	uid_t uid;
	gid_t gid;
	mfs_mutex lock;
	GHashTable *files; /* guarded by lock: ino -> struct staged, every field */
	guint64 counter;   /* guarded by lock */
};

static void staged_free(gpointer p)
{
	struct staged *st = p;

	if (st->fd >= 0)
		close(st->fd);
	g_free(st->name);
	g_free(st->flags);
	g_free(st);
}

struct staging *staging_new(const char *dir, uid_t uid, gid_t gid)
{
	struct staging *sg = g_new0(struct staging, 1);

	sg->dir = g_strdup(dir);
	sg->uid = uid;
	sg->gid = gid;
	mfs_mutex_init(&sg->lock);
	sg->files = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, staged_free);
	return sg;
}

void staging_free(struct staging *sg)
{
	if (!sg)
		return;
	g_hash_table_destroy(sg->files);
	mfs_mutex_clear(&sg->lock);
	g_free(sg->dir);
	g_free(sg);
}

/* Locked. */
static struct staged *find(struct staging *sg, guint64 ino)
{
	return g_hash_table_lookup(sg->files, &ino);
}

/* Locked: appended a moment ago, its name still answering. */
static gboolean is_recent(const struct staged *st)
{
	return st->done && st->recent_until > g_get_monotonic_time();
}

/* Locked. The live (not yet appended) file called name in parent; with
   recent, also one appended a moment ago. Files written into a message
   (replaces) go by the message's inode, not by name. */
static struct staged *find_name_in(struct staging *sg, guint64 parent, const char *name,
				   gboolean recent)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, sg->files);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct staged *st = v;

		if ((!st->done || (recent && is_recent(st))) && !st->replaces && !st->origin &&
		    st->parent == parent && strcmp(st->name, name) == 0)
			return st;
	}
	return NULL;
}

static struct staged *find_name(struct staging *sg, guint64 parent, const char *name)
{
	return find_name_in(sg, parent, name, TRUE);
}

/* Locked: a file appended a moment ago is written again: live, its next
   APPEND to replace what the last one made. */
static void revive(struct staged *st)
{
	if (is_recent(st)) {
		st->done = FALSE;
		st->recent_until = 0;
	}
}

/* Locked: drop st once nobody refers to it. */
static void maybe_free(struct staging *sg, struct staged *st)
{
	if (st->opens == 0 && st->nlookup == 0 && st->done && !is_recent(st))
		g_hash_table_remove(sg->files, &st->ino);
}

/* Locked: drop the files whose moment passed and nobody refers to. */
static void sweep(struct staging *sg)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, sg->files);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct staged *st = v;

		if (st->opens == 0 && st->nlookup == 0 && st->done && !is_recent(st))
			g_hash_table_iter_remove(&it);
	}
}

/* Locked. */
static void attr_of(const struct staging *sg, const struct staged *st, struct stat *out)
{
	struct stat fst;

	memset(out, 0, sizeof(*out));
	out->st_ino = st->ino;
	out->st_mode = S_IFREG | 0600;
	out->st_nlink = st->done && !is_recent(st) ? 0 : 1;
	out->st_uid = sg->uid;
	out->st_gid = sg->gid;
	if (fstat(st->fd, &fst) == 0) {
		out->st_size = fst.st_size;
		out->st_blocks = fst.st_blocks;
	}
	out->st_mtime = st->mtime;
	out->st_atime = st->mtime;
	out->st_ctime = st->mtime;
	out->st_blksize = 4096;
}

/* A new unlinked local file, or -errno. */
static int new_local_file(struct staging *sg)
{
	g_autofree char *tmpl = NULL;
	int fd;

	if (g_mkdir_with_parents(sg->dir, 0700) != 0)
		return -errno;
	tmpl = g_build_filename(sg->dir, "new-XXXXXX", NULL);
	fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	unlink(tmpl); /* nothing of it outlives the mount */
	return fd;
}

/* Enter st (fd, name, parent set) in the table: its inode number. */
static guint64 insert(struct staging *sg, struct staged *st)
{
	guint64 ino;

	mfs_mutex_lock(&sg->lock);
	sweep(sg);
	st->ino = STAGED_INO_BIT | ++sg->counter;
	g_hash_table_insert(sg->files, &st->ino, st);
	ino = st->ino;
	mfs_mutex_unlock(&sg->lock);
	return ino;
}

int staging_create(struct staging *sg, guint64 parent, const char *name, guint64 *ino,
		   struct stat *attr)
{
	struct staged *st;
	int fd = new_local_file(sg);

	if (fd < 0)
		return fd;
	st = g_new0(struct staged, 1);
	st->parent = parent;
	st->name = g_strdup(name);
	st->fd = fd;
	st->opens = 1;
	st->nlookup = 1;
	st->mtime = g_get_real_time() / G_USEC_PER_SEC;
	*ino = insert(sg, st);
	return staging_getattr(sg, *ino, attr);
}

/* Locked. The live copy replacing message, or NULL. */
static struct staged *live_replacement(struct staging *sg, guint64 message)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, sg->files);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct staged *st = v;

		if (!st->done && st->replaces == message)
			return st;
	}
	return NULL;
}

int staging_create_replacement(struct staging *sg, guint64 message, guint64 parent,
			       const char *name, const void *data, gsize len, guint64 *ino)
{
	struct staged *st, *other;
	int fd = new_local_file(sg);

	if (fd < 0)
		return fd;
	if (len > 0 && pwrite(fd, data, len, 0) != (ssize_t)len) {
		int rc = errno ? -errno : -EIO;

		close(fd);
		return rc;
	}
	st = g_new0(struct staged, 1);
	st->parent = parent;
	st->name = g_strdup(name);
	st->fd = fd;
	st->opens = 1;
	st->replaces = message;
	st->mtime = g_get_real_time() / G_USEC_PER_SEC;
	mfs_mutex_lock(&sg->lock);
	/* Two opens at once: the second joins the copy the first made. */
	other = live_replacement(sg, message);
	if (other) {
		other->opens++;
		*ino = other->ino;
	}
	mfs_mutex_unlock(&sg->lock);
	if (other)
		staged_free(st);
	else
		*ino = insert(sg, st);
	return 0;
}

guint64 staging_find_replacement(struct staging *sg, guint64 message)
{
	struct staged *st;
	guint64 ino;

	mfs_mutex_lock(&sg->lock);
	st = live_replacement(sg, message);
	ino = st ? st->ino : 0;
	mfs_mutex_unlock(&sg->lock);
	return ino;
}

gboolean staging_lookup(struct staging *sg, guint64 parent, const char *name, struct stat *attr)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find_name(sg, parent, name);
	if (st) {
		st->nlookup++;
		attr_of(sg, st, attr);
	}
	mfs_mutex_unlock(&sg->lock);
	return st != NULL;
}

int staging_getattr(struct staging *sg, guint64 ino, struct stat *attr)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st)
		attr_of(sg, st, attr);
	mfs_mutex_unlock(&sg->lock);
	return st ? 0 : -ENOENT;
}

void staging_forget(struct staging *sg, guint64 ino, guint64 n)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st) {
		st->nlookup -= MIN(n, st->nlookup);
		if (st->nlookup == 0 && st->opens == 0)
			st->done = TRUE;
		maybe_free(sg, st);
	}
	mfs_mutex_unlock(&sg->lock);
}

int staging_open(struct staging *sg, guint64 ino, gboolean trunc)
{
	struct staged *st;
	int rc = 0;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st)
		revive(st);
	if (!st || st->done) {
		rc = -ENOENT;
	} else {
		st->opens++;
		if (trunc && ftruncate(st->fd, 0) == 0) {
			st->dirty = TRUE;
			st->dated = FALSE;
			st->refused = FALSE;
		}
	}
	mfs_mutex_unlock(&sg->lock);
	return rc;
}

void staging_release(struct staging *sg, guint64 ino)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st) {
		if (st->opens > 0)
			st->opens--;
		/* The last close: a copy of a message is done with (sent, or
		   refused: the message stays as it was). */
		if (st->opens == 0 && !st->done && st->replaces)
			st->done = TRUE;
		maybe_free(sg, st);
	}
	mfs_mutex_unlock(&sg->lock);
}

/* The descriptor of file ino (a dup, for I/O outside the lock), or -errno:
   `missing` for an unknown ino, -EPERM for a done one unless done_ok. */
static int file_fd(struct staging *sg, guint64 ino, int missing, gboolean done_ok)
{
	struct staged *st;
	int fd;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (!st)
		fd = missing;
	else if (st->done && !done_ok)
		fd = -EPERM;
	else if ((fd = dup(st->fd)) < 0)
		fd = -errno;
	mfs_mutex_unlock(&sg->lock);
	return fd;
}

gssize staging_pread(struct staging *sg, guint64 ino, void *buf, size_t size, off_t off)
{
	int fd = file_fd(sg, ino, -ENOENT, TRUE);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = pread(fd, buf, size, off);
	n = n < 0 ? -errno : n;
	close(fd);
	return n;
}

gssize staging_pwrite(struct staging *sg, guint64 ino, const void *buf, size_t size, off_t off)
{
	struct staged *st;
	ssize_t n;
	int fd;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	/* IMAP carries no NUL without BINARY: refused at the write that holds
	   one, so the writer sees it (scratch files are never sent). */
	if (st && !append_is_scratch_name(st->name) && memchr(buf, '\0', size)) {
		st->refused = TRUE; /* what was written before is not a message either */
		mfs_mutex_unlock(&sg->lock);
		return -EINVAL;
	}
	if (st)
		revive(st); /* written again through a descriptor kept open (after fsync) */
	mfs_mutex_unlock(&sg->lock);
	fd = file_fd(sg, ino, -EPERM, FALSE);
	if (fd < 0)
		return fd;
	n = pwrite(fd, buf, size, off);
	n = n < 0 ? -errno : n;
	close(fd);
	if (n >= 0) {
		mfs_mutex_lock(&sg->lock);
		st = find(sg, ino);
		if (st) {
			st->dirty = TRUE;
			st->dated = FALSE; /* a write makes the time its own */
		}
		mfs_mutex_unlock(&sg->lock);
	}
	return n;
}

int staging_setattr(struct staging *sg, guint64 ino, const struct stat *in, int to_set,
		    struct stat *attr)
{
	struct staged *st;
	int rc = 0;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (!st) {
		rc = -ENOENT;
	} else if ((to_set & STAGING_SET_SIZE) && (revive(st), st->done)) {
		rc = -EPERM;
	} else if ((to_set & STAGING_SET_SIZE) && ftruncate(st->fd, in->st_size) != 0) {
		rc = -errno;
	} else {
		if (to_set & STAGING_SET_SIZE)
			st->dirty = TRUE;
		if ((to_set & STAGING_SET_SIZE) && in->st_size == 0)
			st->refused = FALSE;
		if (to_set & STAGING_SET_MTIME) {
			st->mtime = in->st_mtime;
			st->dated = TRUE;
		}
		if (to_set & STAGING_SET_MTIME_NOW) {
			st->mtime = g_get_real_time() / G_USEC_PER_SEC;
			st->dated = FALSE;
		}
		attr_of(sg, st, attr);
	}
	mfs_mutex_unlock(&sg->lock);
	return rc;
}

int staging_set_flags(struct staging *sg, guint64 ino, const char *flags)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st) {
		g_free(st->flags);
		st->flags = g_strdup(flags);
	}
	mfs_mutex_unlock(&sg->lock);
	return st ? 0 : -ENOENT;
}

char *staging_get_flags(struct staging *sg, guint64 ino, gboolean *exists)
{
	struct staged *st;
	char *flags = NULL;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	*exists = st != NULL;
	if (st)
		flags = g_strdup(st->flags);
	mfs_mutex_unlock(&sg->lock);
	return flags;
}

void staged_copy_clear(struct staged_copy *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	g_clear_pointer(&c->flags, g_free);
	g_clear_pointer(&c->name, g_free);
}

/* Locked. */
static gboolean copy_of(struct staged *st, struct staged_copy *out)
{
	out->fd = dup(st->fd);
	if (out->fd < 0)
		return FALSE;
	out->mtime = st->mtime;
	out->dated = st->dated;
	out->flags = g_strdup(st->flags);
	out->name = g_strdup(st->name);
	out->parent = st->parent;
	out->replaces = st->replaces;
	out->sent = st->done;
	out->own_uid = st->own_uid;
	out->own_uidvalidity = st->own_uidvalidity;
	return TRUE;
}

gboolean staging_refused(struct staging *sg, guint64 ino)
{
	struct staged *st;
	gboolean refused;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	refused = st && !st->done && st->refused;
	mfs_mutex_unlock(&sg->lock);
	return refused;
}

gboolean staging_copy_by_name(struct staging *sg, guint64 parent, const char *name,
			      guint64 *ino, struct staged_copy *out)
{
	struct staged *st;
	gboolean ok = FALSE;

	mfs_mutex_lock(&sg->lock);
	st = find_name(sg, parent, name);
	if (st) {
		*ino = st->ino;
		ok = copy_of(st, out);
	}
	mfs_mutex_unlock(&sg->lock);
	return ok;
}

gboolean staging_copy_to_flush(struct staging *sg, guint64 ino, gboolean at_last_close,
			       struct staged_copy *out)
{
	struct staged *st;
	gboolean ok = FALSE;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	/* The last close of a file made under a visible name completes it (cp);
	   a scratch name (editors', rsync's temporaries) waits for its rename. */
	if (st && !st->done && st->dirty && !st->refused && (st->opens == 1 || !at_last_close) &&
	    !append_is_scratch_name(st->name)) {
		struct stat fst;

		if (!st->replaces && fstat(st->fd, &fst) == 0 && fst.st_size == 0)
			st->dirty = FALSE; /* truncated to nothing: a new file of nothing */
		else
			ok = copy_of(st, out);
	}
	mfs_mutex_unlock(&sg->lock);
	return ok;
}

void staging_appended(struct staging *sg, guint64 ino, const struct staged_sent *sent)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st) {
		st->dirty = FALSE;
		st->done = TRUE;
		st->replaces = 0;
		st->own_uid = sent->uid;
		st->own_uidvalidity = sent->uidvalidity;
		st->mtime = sent->mtime;
		g_free(st->flags);
		st->flags = g_strdup(sent->flags);
		g_free(st->name);
		st->name = g_strdup(sent->name);
		st->parent = sent->parent;
		st->recent_until = g_get_monotonic_time() + STAGING_RECENT_SECONDS * G_USEC_PER_SEC;
		maybe_free(sg, st);
	}
	mfs_mutex_unlock(&sg->lock);
}

gboolean staging_sent_message(struct staging *sg, guint64 ino, guint64 *parent, guint32 *uid,
			      guint32 *uidvalidity)
{
	struct staged *st;
	gboolean sent = FALSE;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st && st->done && !st->dirty && st->own_uid && st->fd >= 0) {
		*parent = st->parent;
		*uid = st->own_uid;
		*uidvalidity = st->own_uidvalidity;
		sent = TRUE;
	}
	mfs_mutex_unlock(&sg->lock);
	return sent;
}

/* Locked. The backup name `name` in parent. */
static struct staged *find_alias(struct staging *sg, guint64 parent, const char *name)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, sg->files);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct staged *st = v;

		if (!st->done && st->origin && st->parent == parent && strcmp(st->name, name) == 0)
			return st;
	}
	return NULL;
}

void staging_create_alias(struct staging *sg, guint64 message, guint64 parent, const char *name)
{
	struct staged *st = g_new0(struct staged, 1), *old;

	st->parent = parent;
	st->name = g_strdup(name);
	st->fd = -1;
	st->origin = message;
	mfs_mutex_lock(&sg->lock);
	old = find_alias(sg, parent, name);
	if (old) {
		old->done = TRUE;
		maybe_free(sg, old);
	}
	mfs_mutex_unlock(&sg->lock);
	insert(sg, st);
}

guint64 staging_alias(struct staging *sg, guint64 parent, const char *name, gboolean take)
{
	struct staged *st;
	guint64 origin = 0;

	mfs_mutex_lock(&sg->lock);
	st = find_alias(sg, parent, name);
	if (st) {
		origin = st->origin;
		if (take) {
			st->done = TRUE;
			maybe_free(sg, st);
		}
	}
	mfs_mutex_unlock(&sg->lock);
	return origin;
}

void staging_drop(struct staging *sg, guint64 ino)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st) {
		st->done = TRUE;
		st->recent_until = 0;
		maybe_free(sg, st);
	}
	mfs_mutex_unlock(&sg->lock);
}

void staging_rename(struct staging *sg, guint64 ino, guint64 newparent, const char *newname)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	st = find(sg, ino);
	if (st) {
		g_free(st->name);
		st->name = g_strdup(newname);
		st->parent = newparent;
	}
	mfs_mutex_unlock(&sg->lock);
}

gboolean staging_unlink(struct staging *sg, guint64 parent, const char *name)
{
	struct staged *st;

	mfs_mutex_lock(&sg->lock);
	/* A name appended a moment ago is forgotten; the message stays. */
	st = find_name_in(sg, parent, name, TRUE);
	if (st && st->done) {
		st->recent_until = 0;
		maybe_free(sg, st);
		st = NULL;
	}
	st = st ? st : find_name_in(sg, parent, name, FALSE);
	if (st) {
		st->done = TRUE;
		maybe_free(sg, st);
	}
	mfs_mutex_unlock(&sg->lock);
	return st != NULL;
}
