/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mcache: the on-disk cache of message bodies.
 *
 * A body never changes for a given (mailbox, UIDVALIDITY, UID), so it can be
 * kept across mounts. Layout under the cache directory:
 *
 *   DIR/<first 32 hex of SHA-256(mailbox)>-<uidvalidity>/<uid>    complete body
 *   DIR/<same>/.tmp-<uid>-XXXXXX                                  being filled
 *
 * The mailbox's wire name is arbitrary bytes, so it is hashed, never used as a
 * path. Directories are 0700, files 0600: mail is private to its owner. A
 * body gets its final name only when it is complete (rename of the
 * temporary), so a reader never sees half a file under that name. mcache_open() deletes temporaries left by
 * a crash and rebuilds the LRU from the complete files (size, mtime as last
 * use): a remount serves cached bodies without fetching them again.
 *
 * Bounded by max_bytes: bytes are counted when written (complete bodies and
 * the present ranges of bodies being filled); a write that would go over the
 * bound first evicts least-recently-used complete bodies, never one held by a
 * handle nor one held for a reader to come (below). The DIR is the cache's alone: pass e.g. `cache_dir/bodies`; only
 * names of the form above are touched.
 *
 * Entries and pinning. Each mcache_get() returns a handle holding one
 * reference of the key's entry (released by mcache_entry_unref(); a handle
 * is not copied, a second user calls mcache_get() again); while any
 * handle of a key is held, the body is pinned (not evicted; its file, once
 * opened, stays open).
 * There is one entry object per key while it is referenced, so two readers of
 * the same message share it and see each other's ranges. Waiting for a range
 * that another thread is fetching is the caller's business.
 *
 * Bodies are filled by ranges (FUSE reads are ranged): write chunks at any
 * offset, ask which ranges are present, read them, and call
 * mcache_entry_finish() with the real total size once [0, total) is present.
 * RFC822.SIZE is only a hint; the total given to finish() wins. An entry not
 * finished when its last handle goes is discarded (it lives in memory and in
 * its temporary file only).
 *
 * A FULL DISK IS NEVER THE READER'S ERROR. When a write fails (ENOSPC, EDQUOT,
 * EFBIG, EIO, or the max_bytes bound cannot be met), mcache_entry_write()
 * returns -errno and the entry stops caching: it is taken out of the cache,
 * its temporary file is removed, and further writes/finish fail fast with the
 * same error. The caller must then go on serving the bytes it fetched from
 * memory; it must not pass the error to the reader. Ranges written before the
 * failure stay readable through the handles already held.
 *
 * Fetched ahead. A prefetcher fetches bodies before their reader comes; they
 * are worth their bytes only if still there when it does. It reserves room
 * before sending (mcache_ahead_reserve: granted only while the bodies open
 * and held, plus those reserved, fit in max_bytes, and those held plus
 * reserved fit in the prefetcher's cap), then holds what arrived
 * (mcache_entry_hold_ahead): a held body is not evicted, like an open one,
 * until a reader's mcache_get() of it (the reader came) or
 * mcache_ahead_release_unless() (the reader will not come: it passed it or
 * went elsewhere). A body fetched ahead that leaves the cache (evicted after
 * its hold was given up, or dropped) before any reader's mcache_get() is
 * counted in ahead_unused.
 *
 * Dropping (expunge, UIDVALIDITY change): the body leaves the cache at once
 * (its file is unlinked, a later mcache_get() of the key is a miss), but
 * handles already held keep reading the bytes present, as with a local file
 * unlinked while open: a program in the middle of a message is not cut off.
 * Writes to a dropped entry fail with -ESTALE.
 *
 * Threads: every function may be called from any thread; one mutex guards
 * the index, and body bytes are read and written with pread/pwrite outside it.
 * All handles must be released before mcache_close().
 */
#ifndef MFS_MCACHE_H
#define MFS_MCACHE_H

#include <glib.h>
#include <sys/types.h>

struct mcache;
struct mcache_entry;

/*
 * Open (creating with parents, mode 0700) the cache in dir, bounded by
 * max_bytes. Scans existing bodies, deletes stale temporaries, evicts down to
 * max_bytes if the bound shrank. FALSE-ish (NULL) and *err when dir cannot be
 * created or read. The cache copies dir.
 */
struct mcache *mcache_open(const char *dir, guint64 max_bytes, GError **err);

/* Free the in-memory index. Files stay on disk. NULL is allowed. */
void mcache_close(struct mcache *c);

/*
 * The entry for a key: a complete body (a hit), the entry another handle is
 * filling, or a new empty one (a miss). Never NULL; a miss does no disk I/O.
 * A hit marks the body as just used (also its mtime, for the next mount).
 * The caller owns one reference: release with mcache_entry_unref().
 */
struct mcache_entry *mcache_get(struct mcache *c, const char *mailbox, guint32 uidvalidity,
				guint32 uid);

/*
 * As mcache_get, but a hit opens its file only at its first
 * mcache_entry_read, so a handle taken and given back without a read (an
 * open of a file whose pages the kernel has) costs no system call. Once
 * taken, the bytes are the handle's as with mcache_get: a body dropped
 * before its first read keeps them (its file is opened before it is
 * unlinked). A file that cannot be opened at that read (removed behind our
 * back, no descriptor left) takes the body out of the cache: the read is
 * -ENODATA, and the entry is dead from then on (writes fail, as after a
 * failed write), so its reader fetches the bytes and serves them itself.
 */
struct mcache_entry *mcache_get_lazy(struct mcache *c, const char *mailbox, guint32 uidvalidity,
				     guint32 uid);

/* The cache's name for a mailbox under one UIDVALIDITY (g_free it). */
char *mcache_folder_key(const char *mailbox, guint32 uidvalidity);
/*
 * Whether the body of uid in the mailbox folder_key names (mcache_folder_key)
 * is cached whole: a look only, for callers that probe many (prefetch), so
 * no use is recorded, nothing is opened, and no hit or miss counted.
 */
gboolean mcache_peek_complete(struct mcache *c, const char *folder_key, guint32 uid);
/* Whether an entry of uid is in the cache, complete or being filled by a
   reader (so a prefetcher leaves it to that reader). A look, as above. */
gboolean mcache_peek_present(struct mcache *c, const char *folder_key, guint32 uid);
void mcache_entry_unref(struct mcache_entry *e);

/* A reader expects the body e is being filled with to be size bytes long:
   until it is complete, it counts as that many among the open bodies, so
   that bodies fetched ahead leave room for the rest of it (unless it is
   larger than max_bytes: it will not be kept whole anyway). */
void mcache_entry_expect(struct mcache_entry *e, guint64 size);

enum mcache_room {
	MCACHE_ROOM_RESERVED, /* the bytes are reserved */
	MCACHE_ROOM_LATER,    /* not now: once readers came for what is held, or
				 closed what they have open */
	MCACHE_ROOM_NEVER,    /* over the limit (cap, half of max_bytes) */
};

/*
 * Room for a body of `bytes` to be fetched ahead. Bytes fetched ahead (held
 * and reserved) stay within cap and half of max_bytes (the other half is
 * the readers': a message they open must fit beside them), and with the
 * bodies open (at the size expected) within max_bytes. Reserved: give the
 * bytes back with mcache_ahead_unreserve, once the body arrived (and is
 * held) or will not.
 */
enum mcache_room mcache_ahead_reserve(struct mcache *c, guint64 bytes, guint64 cap);
void mcache_ahead_unreserve(struct mcache *c, guint64 bytes);

/*
 * e, complete and held by the prefetcher's handle only, was fetched ahead of
 * its reader: keep it from eviction until a reader's mcache_get() or a
 * release. FALSE (nothing changes) when e is not complete, not cached, or
 * another handle (a reader) holds it already.
 */
gboolean mcache_entry_hold_ahead(struct mcache_entry *e);

/* Give up the hold of every held body for which keep(ud, folder_key, uid)
   is FALSE: it stays cached, evictable like any other. keep is called with
   the cache's lock held: it must not call into the cache. */
void mcache_ahead_release_unless(struct mcache *c,
				 gboolean (*keep)(void *ud, const char *folder_key, guint32 uid),
				 void *ud);

/* TRUE when the whole body is present; then *size (if not NULL) is its size. */
gboolean mcache_entry_complete(struct mcache_entry *e, guint64 *size);

/*
 * TRUE when all of [off, off+len) is present. For a complete body the range
 * is clipped to its size (so a range at or past the end is "present": there
 * is nothing to read). len 0 is always present.
 */
gboolean mcache_entry_has(struct mcache_entry *e, guint64 off, guint64 len);

/*
 * The first missing range within [off, off+len): TRUE and *gap_off, *gap_len
 * when some byte is missing, FALSE when all is present (clipped as above).
 * Lets the caller fetch only what is not there yet.
 */
gboolean mcache_entry_first_gap(struct mcache_entry *e, guint64 off, guint64 len, guint64 *gap_off,
				guint64 *gap_len);

/*
 * Read present bytes starting at off into buf: returns the number of bytes
 * read (at most len, fewer where the present range or the body ends), 0 at or
 * past the end of a complete body, -ENODATA when the byte at off is not
 * present, or another -errno from pread (-EIO).
 */
gssize mcache_entry_read(struct mcache_entry *e, void *buf, size_t len, guint64 off);

/*
 * Store bytes [off, off+len) of the body. Overlapping and out-of-order writes
 * are fine (the bytes are the same). Writing to a complete body is a no-op.
 * 0, or -errno and the entry stops caching (see above): -ENOSPC (also when
 * max_bytes cannot be met, e.g. pinned bodies fill it, or the body alone is
 * larger), -EDQUOT, -EFBIG, -EIO, -ESTALE (dropped), -EMFILE (the cached file
 * could not be opened). -EINVAL: off + len overflows; the entry is unchanged.
 * None of these is an error for the reader.
 *
 * The daemon should ignore SIGXFSZ, so that a file size limit is -EFBIG here
 * rather than death.
 */
int mcache_entry_write(struct mcache_entry *e, guint64 off, const void *data, size_t len);

/*
 * The body is total_size bytes long and [0, total_size) is present: give it
 * its final name. Ranges past total_size are cut off (the bytes win over any
 * earlier size). 0; -EAGAIN when some byte of [0, total_size) is missing (the
 * entry is unchanged); -EINVAL when already complete with another size; or
 * -errno of a failed write/rename, after which the entry stops caching.
 */
int mcache_entry_finish(struct mcache_entry *e, guint64 total_size);

/* Drop one body (expunged). Handles held keep their bytes; see above. */
void mcache_drop(struct mcache *c, const char *mailbox, guint32 uidvalidity, guint32 uid);

/* Drop every body of mailbox whose UIDVALIDITY is not keep_uidvalidity. */
void mcache_drop_mailbox(struct mcache *c, const char *mailbox, guint32 keep_uidvalidity);

struct mcache_stats {
	guint64 bytes; /* counted against max_bytes: complete + present partial */
	guint64 max_bytes;
	guint64 files;	   /* complete bodies */
	guint64 partial;   /* entries being filled */
	guint64 hits;	   /* mcache_get() found a complete body */
	guint64 misses;	   /* mcache_get() did not */
	guint64 evictions; /* bodies removed to stay within max_bytes */
	guint64 ahead_held;   /* bytes of bodies fetched ahead, held for their reader */
	guint64 ahead_unused; /* bytes fetched ahead that left the cache unread */
};

void mcache_get_stats(struct mcache *c, struct mcache_stats *s);

/* Free bytes for an unprivileged user on the cache's filesystem (statvfs); 0 on error. */
guint64 mcache_free_space(struct mcache *c);

#endif
