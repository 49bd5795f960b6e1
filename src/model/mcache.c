/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "model/mcache.h"

#include "util/lock.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define HASH_HEX   32
#define TMP_PREFIX ".tmp-"

struct range {
	guint64 start, end; /* [start, end) */
};

struct mcache {
	char *dir;
	guint64 max_bytes;

	mfs_mutex lock;
	/* Everything below is guarded by lock. */
	GHashTable *entries; /* key -> entry: complete bodies on disk, and partial ones in use */
	GQueue lru;	     /* complete cached bodies, most recently used at the head */
	guint64 used;	     /* bytes counted against max_bytes (named files only) */
	guint64 files, partial, hits, misses, evictions;
	/* Bytes of cached entries that cannot be evicted now: open (refs > 0)
	   or held for a reader to come (held); see kept_part(). */
	guint64 kept;
	guint64 reserved;     /* promised to fetches ahead in flight */
	guint64 held_bytes;   /* of held entries */
	guint64 ahead_unused; /* fetched ahead, left the cache unread */
	GQueue held;	      /* held entries, oldest first */
	/* Folder directories this process made (or found) and set to 0700:
	   a body written into one costs no mkdir and chmod. */
	GHashTable *made_dirs; /* dirname (owned) */
	gboolean disk_failing; /* a disk write failed and was logged; cleared by a success */
};

/*
 * One body. An entry is "cached" while it is in c->entries; it leaves the
 * table when evicted, dropped or failed ("dead"), but stays alive while handles
 * hold it so they can read what is present through fd (the file may already be
 * unlinked: POSIX keeps its bytes while the fd is open).
 *
 * All fields are guarded by c->lock. fd is set under the lock and closed only
 * when refs drops to 0, so a handle holder may pread/pwrite it unlocked.
 */
struct mcache_entry {
	struct mcache *c;
	char *key;     /* "<dirname>/<uid>", relative to c->dir, also the table key */
	char *dirname; /* "<hash>-<uidvalidity>" */
	guint32 uid;
	guint32 uidvalidity;

	int refs;
	gboolean in_table;
	gboolean complete; /* all bytes present (size valid); ranges unused */
	gboolean dead;	   /* not cached any more: writes fail with error */
	int error;

	int fd;		   /* -1 when none: a miss not written yet, or complete and unpinned */
	char *tmp_path;	   /* absolute, while partial and its temporary exists */
	GArray *ranges;	   /* struct range, sorted, disjoint, not adjacent */
	guint64 covered;   /* sum of ranges */
	guint64 size;	   /* when complete */
	guint64 accounted; /* bytes of this entry in c->used */
	guint64 expected;  /* while being filled: the size its reader expects */
	GList lru_link;	   /* in c->lru while complete and cached */
	gboolean held;	   /* fetched ahead, kept from eviction for its reader */
	gboolean unread;   /* fetched ahead, no reader has come for it yet */
	GList held_link;   /* in c->held while held */
	gint64 touched;	   /* monotonic us of the last mtime update by a hit; 0: none */
};

/* A hit updates the file's mtime (the next mount's LRU order) at most this
   often: a warm grep -r would otherwise write an inode per file it reads. */
#define TOUCH_INTERVAL_US (60 * G_USEC_PER_SEC)

/* ------------------------------------------------------------------ names */

static char *mailbox_hash(const char *mailbox)
{
	GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
	char *out;

	g_checksum_update(ck, (const guchar *)mailbox, (gssize)strlen(mailbox));
	out = g_strndup(g_checksum_get_string(ck), HASH_HEX);
	g_checksum_free(ck);
	return out;
}

static char *make_dirname(const char *hash, guint32 uidvalidity)
{
	return g_strdup_printf("%s-%" G_GUINT32_FORMAT, hash, uidvalidity);
}

/* An entry's table key: "<dirname>/<uid>", also its path under the cache. */
static char *entry_key(const char *dirname, guint32 uid)
{
	return g_strdup_printf("%s/%" G_GUINT32_FORMAT, dirname, uid);
}

/* Room for an entry's key: "<hash>-<uidvalidity>/<uid>" and its NUL. */
#define KEY_MAX (HASH_HEX + 1 + 10 + 1 + 10 + 1)

/* What entry_key gives, in buf (KEY_MAX bytes) when it fits (a folder key
   of mcache_folder_key always does), else in *heap: no allocation for a
   look-up per probe of the read-ahead. */
static const char *entry_key_into(char *buf, const char *dirname, guint32 uid, char **heap)
{
	size_t n = strnlen(dirname, KEY_MAX - 11);
	char digits[10];
	int d = 0;

	if (n > KEY_MAX - 12) {
		*heap = entry_key(dirname, uid);
		return *heap;
	}
	memcpy(buf, dirname, n);
	buf[n++] = '/';
	do {
		digits[d++] = (char)('0' + uid % 10);
		uid /= 10;
	} while (uid);
	while (d)
		buf[n++] = digits[--d];
	buf[n] = '\0';
	return buf;
}

/* A canonical decimal guint32 (no sign, no leading zero, no junk), as we print them. */
static gboolean parse_u32(const char *s, guint32 *out)
{
	guint64 v = 0;

	if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
		return FALSE;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return FALSE;
		v = v * 10 + (guint64)(*s - '0');
		if (v > G_MAXUINT32)
			return FALSE;
	}
	*out = (guint32)v;
	return TRUE;
}

/* "<32 lowercase hex>-<uidvalidity>" */
static gboolean parse_dirname(const char *name, guint32 *uidvalidity)
{
	for (int i = 0; i < HASH_HEX; i++) {
		if (!g_ascii_isxdigit(name[i]) || g_ascii_isupper(name[i]))
			return FALSE;
	}
	if (name[HASH_HEX] != '-')
		return FALSE;
	return parse_u32(name + HASH_HEX + 1, uidvalidity);
}

static char *entry_final_path(const struct mcache_entry *e)
{
	return g_build_filename(e->c->dir, e->key, NULL);
}

/* ----------------------------------------------------------------- ranges */

/* Bytes of [start, end) not yet covered by ranges. */
static guint64 ranges_missing(const GArray *ranges, guint64 start, guint64 end)
{
	guint64 missing = end - start;

	for (guint i = 0; i < ranges->len; i++) {
		const struct range *r = &g_array_index(ranges, struct range, i);
		guint64 lo = MAX(r->start, start), hi = MIN(r->end, end);

		if (r->start >= end)
			break;
		if (lo < hi)
			missing -= hi - lo;
	}
	return missing;
}

/* Add [start, end), merging with overlapping or adjacent ranges; returns the new coverage. */
static guint64 ranges_add(GArray *ranges, guint64 start, guint64 end)
{
	guint i = 0, j;
	guint64 covered = 0;

	while (i < ranges->len && g_array_index(ranges, struct range, i).end < start)
		i++;
	j = i;
	while (j < ranges->len && g_array_index(ranges, struct range, j).start <= end) {
		const struct range *r = &g_array_index(ranges, struct range, j);

		start = MIN(start, r->start);
		end = MAX(end, r->end);
		j++;
	}
	if (j > i)
		g_array_remove_range(ranges, i, j - i);
	g_array_insert_val(ranges, i, ((struct range){start, end}));

	for (i = 0; i < ranges->len; i++) {
		const struct range *r = &g_array_index(ranges, struct range, i);

		covered += r->end - r->start;
	}
	return covered;
}

/* The range holding byte off, or NULL. */
static const struct range *ranges_find(const GArray *ranges, guint64 off)
{
	for (guint i = 0; i < ranges->len; i++) {
		const struct range *r = &g_array_index(ranges, struct range, i);

		if (r->start > off)
			break;
		if (off < r->end)
			return r;
	}
	return NULL;
}

/* Cut everything at or past limit; returns the new coverage. */
static guint64 ranges_clip(GArray *ranges, guint64 limit)
{
	guint64 covered = 0;
	guint i = 0;

	while (i < ranges->len) {
		struct range *r = &g_array_index(ranges, struct range, i);

		if (r->start >= limit) {
			g_array_remove_range(ranges, i, ranges->len - i);
			break;
		}
		r->end = MIN(r->end, limit);
		covered += r->end - r->start;
		i++;
	}
	return covered;
}

/* ---------------------------------------------------------------- entries */

static struct mcache_entry *entry_new(struct mcache *c, const char *dirname, guint32 uidvalidity,
				      guint32 uid)
{
	struct mcache_entry *e = g_new0(struct mcache_entry, 1);

	e->c = c;
	e->dirname = g_strdup(dirname);
	e->key = entry_key(dirname, uid);
	e->uid = uid;
	e->uidvalidity = uidvalidity;
	e->fd = -1;
	e->lru_link.data = e;
	e->held_link.data = e;
	return e;
}

static void entry_free(struct mcache_entry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	if (e->ranges)
		g_array_free(e->ranges, TRUE);
	g_free(e->tmp_path);
	g_free(e->dirname);
	g_free(e->key);
	g_free(e);
}

static void try_rmdir_locked(struct mcache *c, const char *dirname)
{
	g_autofree char *path = g_build_filename(c->dir, dirname, NULL);

	/* Fails with ENOTEMPTY while other bodies live there: that is fine. */
	if (g_rmdir(path) == 0)
		g_hash_table_remove(c->made_dirs, dirname);
}

/* What e adds to c->kept: its bytes, while cached and open or held. Every
   change of refs, held, in_table or accounted is bracketed by taking this
   off c->kept before and adding it back after. */
static guint64 kept_part(const struct mcache_entry *e)
{
	/* A body being filled counts whole: its reader will write the rest. */
	return e->in_table && (e->refs > 0 || e->held) ? MAX(e->accounted, e->expected) : 0;
}

/* Locked: e stops being held (a reader came, or the hold was given up). */
static void unhold_locked(struct mcache *c, struct mcache_entry *e)
{
	if (!e->held)
		return;
	c->kept -= kept_part(e);
	c->held_bytes -= e->accounted;
	g_queue_unlink(&c->held, &e->held_link);
	e->held = FALSE;
	c->kept += kept_part(e);
}

/*
 * Take e out of the cache: unlink its file, forget its bytes. e->fd stays
 * open so handles can still read. The caller frees e if no handle holds it.
 */
static void entry_uncache_locked(struct mcache *c, struct mcache_entry *e, int error)
{
	unhold_locked(c, e);
	if (e->in_table && e->unread) {
		/* Fetched ahead and never read: the bytes were fetched for nothing. */
		c->ahead_unused += e->accounted;
		e->unread = FALSE;
		mfs_log_debug(MFS_LOG_CACHE, "cache: %s fetched ahead, leaves unread", e->key);
	}
	if (!e->in_table) {
		if (!e->dead)
			e->error = error;
		e->dead = TRUE;
		return;
	}
	if (e->complete) {
		g_autofree char *path = entry_final_path(e);

		/* Held but not read yet (mcache_get_lazy): its handles keep the
		   bytes as they would with the file open. */
		if (e->refs > 0 && e->fd < 0)
			e->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (g_unlink(path) < 0 && errno != ENOENT)
			mfs_log_warn("cache: cannot remove %s: %s", path, g_strerror(errno));
		g_queue_unlink(&c->lru, &e->lru_link);
		c->files--;
	} else {
		if (e->tmp_path && g_unlink(e->tmp_path) < 0 && errno != ENOENT)
			mfs_log_warn("cache: cannot remove %s: %s", e->tmp_path, g_strerror(errno));
		g_clear_pointer(&e->tmp_path, g_free);
		c->partial--;
	}
	g_hash_table_remove(c->entries, e->key);
	c->kept -= kept_part(e);
	e->in_table = FALSE;
	c->used -= e->accounted;
	e->accounted = 0;
	e->dead = TRUE;
	e->error = error;
	try_rmdir_locked(c, e->dirname);
}

/*
 * Make room for need more bytes by evicting unpinned complete bodies from
 * the cold end. FALSE when pinned bodies leave too little room.
 */
static gboolean evict_locked(struct mcache *c, guint64 need)
{
	GList *l = c->lru.tail;

	if (need > c->max_bytes)
		return FALSE;
	while (c->used > c->max_bytes - need && l) {
		struct mcache_entry *e = l->data;

		l = l->prev;
		if (e->refs > 0 || e->held)
			continue;
		mfs_log_debug(MFS_LOG_CACHE, "cache: evict %s (%" G_GUINT64_FORMAT " bytes)",
			      e->key, e->size);
		entry_uncache_locked(c, e, -ESTALE);
		c->evictions++;
		entry_free(e);
	}
	return c->used <= c->max_bytes - need;
}

/* The entry stops caching: log a disk failure once, not for every chunk. */
static void entry_fail_locked(struct mcache *c, struct mcache_entry *e, int error)
{
	if (!c->disk_failing)
		mfs_log_warn("cache: cannot store a body (%s); serving without caching",
			     g_strerror(-error));
	else
		mfs_log_debug(MFS_LOG_CACHE, "cache: %s not stored: %s", e->key,
			      g_strerror(-error));
	c->disk_failing = TRUE;
	entry_uncache_locked(c, e, error);
}

static int create_temp_locked(struct mcache *c, struct mcache_entry *e)
{
	g_autofree char *dirpath = g_build_filename(c->dir, e->dirname, NULL);
	char *tmpl;
	int fd;

	for (;;) {
		if (!g_hash_table_contains(c->made_dirs, e->dirname)) {
			if (g_mkdir_with_parents(dirpath, 0700) < 0)
				return -errno;
			/* An older or foreign directory may be looser than
			   0700: mail is private. */
			if (g_chmod(dirpath, 0700) < 0)
				return -errno;
			g_hash_table_add(c->made_dirs, g_strdup(e->dirname));
		}
		tmpl = g_strdup_printf("%s/" TMP_PREFIX "%" G_GUINT32_FORMAT "-XXXXXX", dirpath,
				       e->uid);
		fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		int err = -errno;

		g_free(tmpl);
		/* Removed behind our back (the cache directory cleaned by
		   hand): made again, once. */
		if (err != -ENOENT || !g_hash_table_remove(c->made_dirs, e->dirname))
			return err;
	}
	/* mkstemp's mode is cut by the umask only; make it exactly 0600. */
	(void)fchmod(fd, 0600);
	e->fd = fd;
	e->tmp_path = tmpl;
	return 0;
}

static int pwrite_all(int fd, const void *data, size_t len, guint64 off)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (guint64)n;
	}
	return 0;
}

/* ------------------------------------------------------------ open, close */

struct scanned {
	struct mcache_entry *e;
	gint64 mtime_ns;
};

static gint scanned_cmp(gconstpointer a, gconstpointer b)
{
	const struct scanned *x = a, *y = b;

	return (x->mtime_ns > y->mtime_ns) - (x->mtime_ns < y->mtime_ns);
}

static void scan_body_dir(struct mcache *c, const char *dirname, guint32 uidvalidity, GArray *found)
{
	g_autofree char *dirpath = g_build_filename(c->dir, dirname, NULL);
	GDir *d;
	const char *name;
	struct stat dst;

	if (lstat(dirpath, &dst) < 0 || !S_ISDIR(dst.st_mode) || g_chmod(dirpath, 0700) < 0)
		return;
	d = g_dir_open(dirpath, 0, NULL);
	if (!d)
		return;
	while ((name = g_dir_read_name(d))) {
		g_autofree char *path = g_build_filename(dirpath, name, NULL);
		struct stat st;
		guint32 uid;
		struct scanned s;

		if (g_str_has_prefix(name, TMP_PREFIX)) {
			/* Left by a crash: partial entries do not outlive the process. */
			(void)g_unlink(path);
			continue;
		}
		if (!parse_u32(name, &uid) || lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if ((st.st_mode & 07777) != 0600)
			(void)g_chmod(path, 0600);
		s.e = entry_new(c, dirname, uidvalidity, uid);
		s.e->complete = TRUE;
		s.e->size = (guint64)st.st_size;
		s.e->accounted = s.e->size;
		s.mtime_ns =
		    (gint64)st.st_mtim.tv_sec * G_GINT64_CONSTANT(1000000000) + st.st_mtim.tv_nsec;
		g_array_append_val(found, s);
	}
	g_dir_close(d);
	try_rmdir_locked(c, dirname);
}

struct mcache *mcache_open(const char *dir, guint64 max_bytes, GError **err)
{
	struct mcache *c;
	GArray *found;
	GDir *d;
	const char *name;
	GError *derr = NULL;

	g_return_val_if_fail(dir != NULL, NULL);

	if (g_mkdir_with_parents(dir, 0700) < 0 || g_chmod(dir, 0700) < 0) {
		int e = errno;

		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "cache directory %s: %s",
			    dir, g_strerror(e));
		return NULL;
	}
	d = g_dir_open(dir, 0, &derr);
	if (!d) {
		g_propagate_prefixed_error(err, derr, "cache directory: ");
		return NULL;
	}

	c = g_new0(struct mcache, 1);
	c->dir = g_strdup(dir);
	c->max_bytes = max_bytes;
	mfs_mutex_init(&c->lock);
	c->entries = g_hash_table_new(g_str_hash, g_str_equal);
	c->made_dirs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_queue_init(&c->lru);

	found = g_array_new(FALSE, FALSE, sizeof(struct scanned));
	while ((name = g_dir_read_name(d))) {
		guint32 uidvalidity;

		if (parse_dirname(name, &uidvalidity))
			scan_body_dir(c, name, uidvalidity, found);
	}
	g_dir_close(d);

	/* Oldest first, each pushed to the head: the newest ends up hottest. */
	g_array_sort(found, scanned_cmp);
	for (guint i = 0; i < found->len; i++) {
		struct mcache_entry *e = g_array_index(found, struct scanned, i).e;

		e->in_table = TRUE;
		g_hash_table_insert(c->entries, e->key, e);
		g_queue_push_head_link(&c->lru, &e->lru_link);
		c->used += e->accounted;
		c->files++;
	}
	g_array_free(found, TRUE);

	/* cache_size may have shrunk since the last mount. */
	mfs_mutex_lock(&c->lock);
	(void)evict_locked(c, 0);
	mfs_mutex_unlock(&c->lock);

	mfs_log_debug(MFS_LOG_CACHE,
		      "cache: %s: %" G_GUINT64_FORMAT " bodies, %" G_GUINT64_FORMAT " bytes", dir,
		      c->files, c->used);
	return c;
}

void mcache_close(struct mcache *c)
{
	GHashTableIter it;
	gpointer v;
	guint leaked = 0;

	if (!c)
		return;
	mfs_mutex_lock(&c->lock);
	g_hash_table_iter_init(&it, c->entries);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct mcache_entry *e = v;

		if (e->refs > 0) {
			leaked++;
			continue;
		}
		g_hash_table_iter_remove(&it);
		entry_free(e);
	}
	mfs_mutex_unlock(&c->lock);
	if (leaked) {
		/* Freeing them would turn the holders' next call into a use after free. */
		mfs_log_error("cache: closed with %u bodies still in use", leaked);
		return;
	}
	g_hash_table_destroy(c->entries);
	g_hash_table_destroy(c->made_dirs);
	mfs_mutex_clear(&c->lock);
	g_free(c->dir);
	g_free(c);
}

/* ---------------------------------------------------------------- lookups */

/* mcache_get, and with lazy mcache_get_lazy: a hit's file is opened at
   its first read (open_lazily_locked). */
static struct mcache_entry *get_entry(struct mcache *c, const char *mailbox,
				      guint32 uidvalidity, guint32 uid, gboolean lazy)
{
	g_autofree char *dirname = mcache_folder_key(mailbox, uidvalidity);
	char buf[KEY_MAX];
	g_autofree char *heap = NULL;
	const char *key = entry_key_into(buf, dirname, uid, &heap);
	g_autofree char *touch_path = NULL;
	struct mcache_entry *e;
	int touch_fd = -1, open_error = 0;

	mfs_mutex_lock(&c->lock);
	e = g_hash_table_lookup(c->entries, key);
	if (e && e->complete && e->fd < 0 && !lazy) {
		g_autofree char *path = entry_final_path(e);

		e->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (e->fd < 0 && errno == ENOENT) {
			/* Removed behind our back: forget it, fetch again. */
			entry_uncache_locked(c, e, -ESTALE);
			entry_free(e);
			e = NULL;
		} else if (e->fd < 0) {
			/*
			 * EMFILE and the like pass: keep the file, and hand out a
			 * private entry that caches nothing, so the body is fetched
			 * and served from memory this time.
			 */
			open_error = -errno;
			e = entry_new(c, dirname, uidvalidity, uid);
			e->ranges = g_array_new(FALSE, FALSE, sizeof(struct range));
			e->refs = 1;
			e->dead = TRUE;
			e->error = open_error;
			c->misses++;
			mfs_mutex_unlock(&c->lock);
			mfs_log_warn("cache: cannot open a cached body: %s",
				     g_strerror(-open_error));
			return e;
		}
	}
	if (e) {
		/* A reader came: a body fetched ahead for it has done its job. */
		unhold_locked(c, e);
		e->unread = FALSE;
		c->kept -= kept_part(e);
		e->refs++;
		c->kept += kept_part(e);
		if (e->complete) {
			gint64 now = g_get_monotonic_time();

			c->hits++;
			g_queue_unlink(&c->lru, &e->lru_link);
			g_queue_push_head_link(&c->lru, &e->lru_link);
			if (!e->touched || now - e->touched >= TOUCH_INTERVAL_US) {
				if (e->fd >= 0)
					touch_fd = e->fd;
				else
					touch_path = entry_final_path(e);
				e->touched = now;
			}
		} else {
			c->misses++;
		}
	} else {
		e = entry_new(c, dirname, uidvalidity, uid);
		e->ranges = g_array_new(FALSE, FALSE, sizeof(struct range));
		e->refs = 1;
		e->in_table = TRUE;
		g_hash_table_insert(c->entries, e->key, e);
		c->partial++;
		c->misses++;
	}
	mfs_mutex_unlock(&c->lock);

	/* The mtime is the last use, so the next mount rebuilds the same LRU order. */
	if (touch_fd >= 0)
		(void)futimens(touch_fd, NULL);
	else if (touch_path)
		(void)utimensat(AT_FDCWD, touch_path, NULL, 0);
	return e;
}

struct mcache_entry *mcache_get(struct mcache *c, const char *mailbox, guint32 uidvalidity,
				guint32 uid)
{
	return get_entry(c, mailbox, uidvalidity, uid, FALSE);
}

struct mcache_entry *mcache_get_lazy(struct mcache *c, const char *mailbox, guint32 uidvalidity,
				     guint32 uid)
{
	return get_entry(c, mailbox, uidvalidity, uid, TRUE);
}

/* The last folder key made on this thread: a walk asks for the same
   folder's, file after file (a SHA-256 each otherwise). No heap, so a
   thread's end leaves nothing behind. */
#define MEMO_MAILBOX_MAX 256
static _Thread_local char memo_mailbox[MEMO_MAILBOX_MAX];
static _Thread_local guint32 memo_uidvalidity;
static _Thread_local char memo_key[KEY_MAX];

char *mcache_folder_key(const char *mailbox, guint32 uidvalidity)
{
	g_autofree char *hash = NULL;
	char *key;

	if (memo_key[0] && memo_uidvalidity == uidvalidity &&
	    strcmp(memo_mailbox, mailbox) == 0)
		return g_strdup(memo_key);
	hash = mailbox_hash(mailbox);
	key = make_dirname(hash, uidvalidity);
	if (strlen(mailbox) < MEMO_MAILBOX_MAX && strlen(key) < KEY_MAX) {
		strcpy(memo_mailbox, mailbox);
		strcpy(memo_key, key);
		memo_uidvalidity = uidvalidity;
	}
	return key;
}

gboolean mcache_peek_complete(struct mcache *c, const char *folder_key, guint32 uid)
{
	char buf[KEY_MAX];
	g_autofree char *heap = NULL;
	const char *key = entry_key_into(buf, folder_key, uid, &heap);
	struct mcache_entry *e;
	gboolean complete;

	mfs_mutex_lock(&c->lock);
	e = g_hash_table_lookup(c->entries, key);
	complete = e && e->complete;
	mfs_mutex_unlock(&c->lock);
	return complete;
}

gboolean mcache_peek_present(struct mcache *c, const char *folder_key, guint32 uid)
{
	char buf[KEY_MAX];
	g_autofree char *heap = NULL;
	const char *key = entry_key_into(buf, folder_key, uid, &heap);
	gboolean present;

	mfs_mutex_lock(&c->lock);
	present = g_hash_table_contains(c->entries, key);
	mfs_mutex_unlock(&c->lock);
	return present;
}

/* ------------------------------------------------------------ fetched ahead */

void mcache_entry_expect(struct mcache_entry *e, guint64 size)
{
	struct mcache *c = e->c;

	mfs_mutex_lock(&c->lock);
	if (!e->complete) {
		c->kept -= kept_part(e);
		/* A body larger than the cache will not be kept whole: it takes
		   only what it writes until it stops caching. */
		e->expected = size <= c->max_bytes ? size : 0;
		c->kept += kept_part(e);
	}
	mfs_mutex_unlock(&c->lock);
}

enum mcache_room mcache_ahead_reserve(struct mcache *c, guint64 bytes, guint64 cap)
{
	enum mcache_room room;

	mfs_mutex_lock(&c->lock);
	{
		/* Held entries have no handle but the prefetcher's, for a moment. */
		guint64 open = c->kept - MIN(c->kept, c->held_bytes);
		guint64 ahead = c->held_bytes + c->reserved;
		guint64 limit = MIN(cap, c->max_bytes / 2);

		/* The bodies open go away when their readers close them;
		   over the limit stays over it. */
		if (bytes > limit)
			room = MCACHE_ROOM_NEVER;
		else if (open + ahead + bytes > c->max_bytes || ahead + bytes > limit)
			room = MCACHE_ROOM_LATER;
		else
			room = MCACHE_ROOM_RESERVED;
	}
	if (room == MCACHE_ROOM_RESERVED)
		c->reserved += bytes;
	mfs_mutex_unlock(&c->lock);
	return room;
}

void mcache_ahead_unreserve(struct mcache *c, guint64 bytes)
{
	mfs_mutex_lock(&c->lock);
	g_assert(c->reserved >= bytes);
	c->reserved -= bytes;
	mfs_mutex_unlock(&c->lock);
}

gboolean mcache_entry_hold_ahead(struct mcache_entry *e)
{
	struct mcache *c = e->c;
	gboolean held = FALSE;

	mfs_mutex_lock(&c->lock);
	/* Another handle is a reader already there: nothing to wait for. */
	if (e->in_table && e->complete && e->refs == 1 && !e->held) {
		c->kept -= kept_part(e);
		e->held = TRUE;
		e->unread = TRUE;
		c->held_bytes += e->accounted;
		g_queue_push_tail_link(&c->held, &e->held_link);
		c->kept += kept_part(e);
		held = TRUE;
	}
	mfs_mutex_unlock(&c->lock);
	return held;
}

void mcache_ahead_release_unless(struct mcache *c,
				 gboolean (*keep)(void *ud, const char *folder_key, guint32 uid),
				 void *ud)
{
	mfs_mutex_lock(&c->lock);
	for (GList *l = c->held.head; l;) {
		struct mcache_entry *e = l->data;

		l = l->next;
		if (!keep(ud, e->dirname, e->uid)) {
			mfs_log_debug(MFS_LOG_CACHE, "cache: %s no longer held for a reader", e->key);
			unhold_locked(c, e);
		}
	}
	mfs_mutex_unlock(&c->lock);
}

void mcache_entry_unref(struct mcache_entry *e)
{
	struct mcache *c;
	gboolean free_it = FALSE;
	int close_fd = -1;

	if (!e)
		return;
	c = e->c;
	mfs_mutex_lock(&c->lock);
	g_assert(e->refs > 0);
	c->kept -= kept_part(e);
	e->refs--;
	c->kept += kept_part(e);
	if (e->refs == 0) {
		if (e->dead) {
			free_it = TRUE;
		} else if (!e->complete) {
			/* Unfinished bodies are not kept: nobody would fill the gaps. */
			entry_uncache_locked(c, e, -ESTALE);
			free_it = TRUE;
		} else {
			close_fd = e->fd;
			e->fd = -1;
		}
	}
	mfs_mutex_unlock(&c->lock);
	if (close_fd >= 0)
		close(close_fd);
	if (free_it)
		entry_free(e);
}

gboolean mcache_entry_complete(struct mcache_entry *e, guint64 *size)
{
	gboolean complete;

	mfs_mutex_lock(&e->c->lock);
	complete = e->complete;
	if (complete && size)
		*size = e->size;
	mfs_mutex_unlock(&e->c->lock);
	return complete;
}

gboolean mcache_entry_first_gap(struct mcache_entry *e, guint64 off, guint64 len, guint64 *gap_off,
				guint64 *gap_len)
{
	guint64 end = len > G_MAXUINT64 - off ? G_MAXUINT64 : off + len;
	gboolean gap = FALSE;

	mfs_mutex_lock(&e->c->lock);
	if (e->complete || len == 0) {
		gap = FALSE;
	} else {
		guint64 pos = off;

		for (guint i = 0; i < e->ranges->len && pos < end; i++) {
			const struct range *r = &g_array_index(e->ranges, struct range, i);

			if (r->end <= pos)
				continue;
			if (r->start > pos)
				break;
			pos = r->end;
		}
		if (pos < end) {
			guint64 stop = end;

			for (guint i = 0; i < e->ranges->len; i++) {
				const struct range *r = &g_array_index(e->ranges, struct range, i);

				if (r->start > pos) {
					stop = MIN(stop, r->start);
					break;
				}
			}
			gap = TRUE;
			if (gap_off)
				*gap_off = pos;
			if (gap_len)
				*gap_len = stop - pos;
		}
	}
	mfs_mutex_unlock(&e->c->lock);
	return gap;
}

gboolean mcache_entry_has(struct mcache_entry *e, guint64 off, guint64 len)
{
	return !mcache_entry_first_gap(e, off, len, NULL, NULL);
}

/*
 * Locked. The file of complete e, got with mcache_get_lazy, opened at its
 * first read. One that cannot be opened (removed behind our back, no
 * descriptor left) takes e out of the cache: 0 or -errno, and then e is
 * dead (its reader fetches the bytes and serves them from memory).
 */
static int open_lazily_locked(struct mcache_entry *e)
{
	g_autofree char *path = NULL;
	int err;

	if (e->dead)
		return e->error;
	path = entry_final_path(e);
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->fd >= 0)
		return 0;
	err = -errno;
	mfs_log_warn("cache: cannot open a cached body: %s", g_strerror(-err));
	entry_uncache_locked(e->c, e, err);
	return err;
}

gssize mcache_entry_read(struct mcache_entry *e, void *buf, size_t len, guint64 off)
{
	char *p = buf;
	size_t n, done = 0;
	int fd;

	if (len == 0)
		return 0;
	if (len > G_MAXSSIZE)
		len = G_MAXSSIZE;
	mfs_mutex_lock(&e->c->lock);
	if (e->complete) {
		n = off >= e->size ? 0 : (size_t)MIN((guint64)len, e->size - off);
		if (n > 0 && e->fd < 0 && open_lazily_locked(e) < 0) {
			mfs_mutex_unlock(&e->c->lock);
			return -ENODATA;
		}
	} else {
		const struct range *r = ranges_find(e->ranges, off);

		if (!r) {
			mfs_mutex_unlock(&e->c->lock);
			return -ENODATA;
		}
		n = (size_t)MIN((guint64)len, r->end - off);
	}
	fd = e->fd;
	mfs_mutex_unlock(&e->c->lock);

	while (done < n) {
		ssize_t r = pread(fd, p + done, n - done, (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return done ? (gssize)done : -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	/* The file is shorter than its index says: not our bytes to guess. */
	if (done == 0 && n > 0)
		return -EIO;
	return (gssize)done;
}

/* ----------------------------------------------------------------- filling */

int mcache_entry_write(struct mcache_entry *e, guint64 off, const void *data, size_t len)
{
	struct mcache *c = e->c;
	guint64 end, need;
	int fd, r;

	if (len == 0)
		return 0;
	if (off > (guint64)G_MAXINT64 || (guint64)len > (guint64)G_MAXINT64 - off)
		return -EINVAL;
	end = off + len;

	mfs_mutex_lock(&c->lock);
	if (e->dead) {
		r = e->error;
		mfs_mutex_unlock(&c->lock);
		return r;
	}
	if (e->complete) {
		mfs_mutex_unlock(&c->lock);
		return 0;
	}
	if (e->fd < 0) {
		r = create_temp_locked(c, e);
		if (r < 0) {
			entry_fail_locked(c, e, r);
			mfs_mutex_unlock(&c->lock);
			return r;
		}
	}
	need = ranges_missing(e->ranges, off, end);
	/* A body larger than the whole cache must not empty it first. */
	if (e->accounted + need > c->max_bytes || !evict_locked(c, need)) {
		mfs_log_debug(MFS_LOG_CACHE,
			      "cache: %s does not fit in cache_size (%" G_GUINT64_FORMAT
			      " more; %" G_GUINT64_FORMAT " used, %" G_GUINT64_FORMAT
			      " open or held, %" G_GUINT64_FORMAT " reserved)",
			      e->key, need, c->used, c->kept, c->reserved);
		entry_uncache_locked(c, e, -ENOSPC);
		mfs_mutex_unlock(&c->lock);
		return -ENOSPC;
	}
	/* Reserve now so concurrent writers cannot overshoot max_bytes together. */
	c->used += need;
	fd = e->fd;
	mfs_mutex_unlock(&c->lock);

	r = pwrite_all(fd, data, len, off);

	mfs_mutex_lock(&c->lock);
	c->used -= need;
	if (r == 0 && !e->complete) {
		/* Even a dead entry gets the range: the bytes are in its (unlinked) file. */
		guint64 covered = ranges_add(e->ranges, off, end);

		if (e->in_table) {
			c->kept -= kept_part(e);
			c->used += covered - e->covered;
			e->accounted += covered - e->covered;
			c->kept += kept_part(e);
		}
		e->covered = covered;
	}
	if (r < 0 && !e->dead)
		entry_fail_locked(c, e, r);
	else if (r == 0 && e->dead)
		r = e->error;
	mfs_mutex_unlock(&c->lock);
	return r;
}

int mcache_entry_finish(struct mcache_entry *e, guint64 total_size)
{
	struct mcache *c = e->c;
	g_autofree char *path = NULL;
	int r = 0;

	mfs_mutex_lock(&c->lock);
	if (e->dead) {
		r = e->error;
		goto out;
	}
	if (e->complete) {
		r = e->size == total_size ? 0 : -EINVAL;
		goto out;
	}
	if (ranges_missing(e->ranges, 0, total_size) > 0) {
		r = -EAGAIN;
		goto out;
	}
	if (e->fd < 0)
		r = create_temp_locked(c, e); /* an empty body was never written */
	if (r == 0 && e->ranges->len > 0 &&
	    g_array_index(e->ranges, struct range, e->ranges->len - 1).end > total_size) {
		guint64 covered = ranges_clip(e->ranges, total_size);

		c->kept -= kept_part(e);
		c->used -= e->covered - covered;
		e->accounted -= e->covered - covered;
		c->kept += kept_part(e);
		e->covered = covered;
		if (ftruncate(e->fd, (off_t)total_size) < 0)
			r = -errno;
	}
	if (r == 0) {
		path = entry_final_path(e);
		if (g_rename(e->tmp_path, path) < 0)
			r = -errno;
	}
	if (r < 0) {
		entry_fail_locked(c, e, r);
		goto out;
	}
	g_clear_pointer(&e->tmp_path, g_free);
	g_array_free(e->ranges, TRUE);
	e->ranges = NULL;
	c->kept -= kept_part(e);
	e->expected = 0;
	c->kept += kept_part(e);
	e->complete = TRUE;
	e->size = total_size;
	/* Just written: its mtime is now, no reader's open needs to touch it. */
	e->touched = g_get_monotonic_time();
	c->partial--;
	c->files++;
	c->disk_failing = FALSE;
	g_queue_push_head_link(&c->lru, &e->lru_link);
out:
	mfs_mutex_unlock(&c->lock);
	return r;
}

/* ---------------------------------------------------------------- dropping */

static void drop_locked(struct mcache *c, struct mcache_entry *e)
{
	entry_uncache_locked(c, e, -ESTALE);
	if (e->refs == 0)
		entry_free(e);
}

void mcache_drop(struct mcache *c, const char *mailbox, guint32 uidvalidity, guint32 uid)
{
	g_autofree char *dirname = mcache_folder_key(mailbox, uidvalidity);
	g_autofree char *key = entry_key(dirname, uid);
	struct mcache_entry *e;

	mfs_mutex_lock(&c->lock);
	e = g_hash_table_lookup(c->entries, key);
	if (e)
		drop_locked(c, e);
	mfs_mutex_unlock(&c->lock);
}

void mcache_drop_mailbox(struct mcache *c, const char *mailbox, guint32 keep_uidvalidity)
{
	g_autofree char *hash = mailbox_hash(mailbox);
	GPtrArray *victims = g_ptr_array_new();
	GHashTableIter it;
	gpointer v;
	guint dropped;

	mfs_mutex_lock(&c->lock);
	g_hash_table_iter_init(&it, c->entries);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct mcache_entry *e = v;

		if (strncmp(e->dirname, hash, HASH_HEX) == 0 && e->uidvalidity != keep_uidvalidity)
			g_ptr_array_add(victims, e);
	}
	for (guint i = 0; i < victims->len; i++)
		drop_locked(c, victims->pdata[i]);
	dropped = victims->len;
	mfs_mutex_unlock(&c->lock);
	g_ptr_array_free(victims, TRUE);
	if (dropped)
		mfs_log_debug(MFS_LOG_CACHE, "cache: UIDVALIDITY changed, %u bodies dropped",
			      dropped);
}

/* ------------------------------------------------------------------- stats */

void mcache_get_stats(struct mcache *c, struct mcache_stats *s)
{
	mfs_mutex_lock(&c->lock);
	s->bytes = c->used;
	s->max_bytes = c->max_bytes;
	s->files = c->files;
	s->partial = c->partial;
	s->hits = c->hits;
	s->misses = c->misses;
	s->evictions = c->evictions;
	s->ahead_held = c->held_bytes;
	s->ahead_unused = c->ahead_unused;
	mfs_mutex_unlock(&c->lock);
}

guint64 mcache_free_space(struct mcache *c)
{
	struct statvfs sv;

	if (statvfs(c->dir, &sv) < 0)
		return 0;
	return (guint64)sv.f_bavail * (guint64)sv.f_frsize;
}
