/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/body.h"

#include <errno.h>
#include <string.h>

#include "account/imap_account_internal.h"
#include "util/log.h"

/* Ranges of a message fetched at once: small first, so `head` and `file`
   stay cheap, doubling while a reader goes on sequentially. */
#define CHUNK_MIN (128 * 1024)
#define CHUNK_MAX (4 * 1024 * 1024)

struct body_reader {
	struct imap_account *a;
	/* set at open, then read-only */
	guint64 ino;
	guint32 uid;
	guint32 uidvalidity;
	char *wire;
	struct mcache_entry *entry;

	mfs_mutex lock;	      /* one fetch at a time; guards what follows */
	guint64 expected;     /* RFC822.SIZE, until the bytes say otherwise */
	guint64 total;	      /* the real size, once known */
	gboolean total_known;
	gboolean size_wrong;  /* RFC822.SIZE is known to be wrong, the total not yet */
	guint64 seq_end;      /* where the last fetch ended: sequential readers */
	guint64 chunk;
	/* The last fetched range, for when the cache cannot keep it (full disk). */
	GByteArray *mem;
	guint64 mem_off;
};

/* Locked (r->lock). Keep fetched bytes at off: in the cache, or in memory when it is full. */
static void keep_range(struct body_reader *r, guint64 off, GByteArray *buf)
{
	__atomic_fetch_add(&r->a->bytes_fetched, buf->len, __ATOMIC_RELAXED);
	mfs_log_debug(MFS_LOG_CACHE, "read: UID %u of %s: %u bytes at %" G_GUINT64_FORMAT, r->uid,
		      r->wire, buf->len, off);
	if (buf->len && mcache_entry_write(r->entry, off, buf->data, buf->len) < 0) {
		/* A full disk: serve this range from memory, never fail the reader. */
		if (r->mem)
			g_byte_array_unref(r->mem);
		r->mem = g_byte_array_ref(buf);
		r->mem_off = off;
	}
}

/* The bytes say message ino is `size` long, not what the listing said: the
   tree, and the kernel's idea of its attributes, follow. */
static void size_changed(struct imap_account *a, guint64 ino, guint64 size)
{
	tree_message_set_size(a->tree, ino, size);
	if (a->ev.inode_changed)
		a->ev.inode_changed(a->ev.ud, ino);
}

/* Locked (r->lock): the message is known to be `total` bytes long. */
static void learn_total(struct body_reader *r, guint64 total)
{
	r->total = total;
	r->total_known = TRUE;
	mcache_entry_finish(r->entry, total);
	if (total != r->expected) {
		size_changed(r->a, r->ino, total);
		r->expected = total;
	}
}

/* Whether the message left the tree (expunged, its folder deleted, or
   another UIDVALIDITY listed): the server cannot give its bytes any more. */
static gboolean message_gone(struct body_reader *r)
{
	struct tree_entry e = { 0 };

	return tree_get(r->a->tree, r->ino, 0, &e) < 0 || e.gone;
}

/*
 * Locked (r->lock). Fetch [off, off+len) into the cache. 0 or -errno
 * (-ESTALE: the message is gone from the server); *progress gets the bytes
 * kept, also when the link broke in the middle (the caller resumes from
 * there on a new connection, so a cut link still makes progress).
 */
static int fetch_range(struct body_reader *r, struct lease *l, guint64 off, guint64 len,
		       guint64 *progress)
{
	struct imap_account *a = r->a;
	struct range_answer ans = { .buf = g_byte_array_new() };
	struct imap_session *s;
	GError *err = NULL;
	int rc;

	/* Known gone: no round trip to learn it again (nor a wait for a
	   server that does not answer). */
	if (message_gone(r)) {
		rc = -ESTALE;
		goto out;
	}
	rc = lease_borrow(l, r->wire, &s);
	if (rc < 0)
		goto out;
	rc = fetch_body_range(s, r->wire, r->uidvalidity, !a->opts->mark_seen, r->uid, off, len,
			      &ans, &err);
	lease_give_back(l);
	if (rc < 0) {
		/* -ESTALE: another generation of the mailbox, other messages. */
		if (ans.partial) {
			keep_range(r, off, ans.buf);
			*progress = ans.buf->len;
		}
		rc = lease_errno(l, rc, err, r->wire);
		/* No such mailbox (deleted by another client, not listed yet):
		   its messages are gone with it. */
		if (rc == -ENOENT)
			rc = -ESTALE;
		goto out;
	}
	if (ans.too_big) {
		g_autofree char *esc = mfs_log_escape(r->wire, strlen(r->wire), 200);

		mfs_log_warn("%s: the server sent more of UID %u than asked for; refused", esc,
			     r->uid);
		rc = -EIO;
		goto out;
	}
	if (!ans.matched) {
		/* No body at all: the message was expunged meanwhile. */
		rc = -ESTALE;
		goto out;
	}
	if (off == 0)
		__atomic_fetch_add(&a->messages_fetched, 1, __ATOMIC_RELAXED);
	keep_range(r, off, ans.buf);
	*progress = ans.buf->len;
	if (ans.buf->len == 0 && off > 0 && !mcache_entry_has(r->entry, off - 1, 1)) {
		/* Nothing at off: the message ends before it, where is not known. */
		r->size_wrong = TRUE;
	} else if (ans.buf->len < len) {
		/* A short answer marks the end: the bytes win over RFC822.SIZE. */
		learn_total(r, off + ans.buf->len);
	}
out:
	g_byte_array_unref(ans.buf);
	return rc;
}

/* Locked (r->lock): learn the true end now, with the first range (which
   the first read needs anyway) and, for a longer message, one byte past
   the end it claims. */
static void probe_size(struct body_reader *r, struct lease *l)
{
	guint64 progress = 0;
	guint64 first = MIN(CHUNK_MIN, r->expected + 1);

	if (fetch_range(r, l, 0, first, &progress) == 0 && !r->total_known && !r->size_wrong &&
	    r->expected > 0)
		fetch_range(r, l, r->expected - 1, 2, &progress);
	if (!r->total_known && !r->size_wrong && mcache_entry_has(r->entry, r->expected, 1))
		r->size_wrong = TRUE; /* longer than claimed */
	r->seq_end = first;
}

static gboolean reader_interrupted(void *ud)
{
	return lease_interrupted(ud);
}

/*
 * A message in several folders (model/tree.h, OBJECTS) is read through its
 * representative's name, e; but its body may be cached whole under another
 * name's key (the representative changed since: a name of it left, or a
 * folder of lower number was listed later, or a remount listed them in
 * another order). Then that name is read instead: no body is fetched twice.
 */
static void prefer_cached_name(struct imap_account *a, guint64 ino, struct tree_entry *e)
{
	g_autofree char *key = NULL;
	g_autoptr(GArray) names = NULL;

	if (!TREE_IS_OBJECT(ino))
		return;
	key = mcache_folder_key(e->wire, e->uidvalidity);
	if (mcache_peek_complete(a->cache, key, e->uid))
		return;
	names = tree_message_names(a->tree, ino, TREE_WANT_WIRE);
	for (guint i = 0; names && i < names->len; i++) {
		struct tree_entry *n = &g_array_index(names, struct tree_entry, i);
		g_autofree char *nkey = NULL;

		if (!n->wire || (n->uid == e->uid && strcmp(n->wire, e->wire) == 0))
			continue;
		nkey = mcache_folder_key(n->wire, n->uidvalidity);
		if (mcache_peek_complete(a->cache, nkey, n->uid)) {
			g_free(e->wire);
			e->wire = g_steal_pointer(&n->wire);
			e->uid = n->uid;
			e->uidvalidity = n->uidvalidity;
			return;
		}
	}
}

struct body_arrival {
	struct imap_account *a;
	guint64 folder;
	guint32 uid;
	guint32 uidvalidity;
	char *name;
	char *wire;
};

void body_arrival_send(struct body_arrival *n)
{
	if (!n)
		return;
	imap_account_reader_came(n->a, n->folder, n->uid, n->name, n->wire, n->uidvalidity);
	g_free(n->name);
	g_free(n->wire);
	g_free(n);
}

struct body_reader *body_open(struct imap_account *a, struct lease *l, guint64 ino,
			      gboolean *direct_io, struct body_arrival **later, int *err)
{
	struct tree_entry e = { 0 };
	struct body_arrival *came;
	struct body_reader *r;
	int rc;

	if (later)
		*later = NULL;
	rc = tree_get(a->tree, ino, TREE_WANT_WIRE | TREE_WANT_NAME, &e);
	if (rc < 0 || e.gone || e.kind != TREE_MESSAGE || !e.wire) {
		tree_entry_clear(&e);
		*err = rc < 0 ? rc : e.kind == TREE_FOLDER ? -EISDIR : -ENOENT;
		return NULL;
	}
	/* The name opened, before prefer_cached_name picks another. */
	came = g_new(struct body_arrival, 1);
	*came = (struct body_arrival){ a, e.parent, e.uid, e.uidvalidity,
				       g_steal_pointer(&e.name), g_strdup(e.wire) };
	prefer_cached_name(a, ino, &e);
	r = g_new0(struct body_reader, 1);
	mfs_mutex_init(&r->lock);
	r->a = a;
	r->ino = ino;
	r->uid = e.uid;
	r->uidvalidity = e.uidvalidity;
	r->wire = g_steal_pointer(&e.wire);
	r->expected = e.size;
	r->chunk = CHUNK_MIN;
	/* Its file is opened at the first read: an open whose pages the
	   kernel has costs no system call here. */
	r->entry = mcache_get_lazy(a->cache, r->wire, r->uidvalidity, r->uid);
	if (later && mcache_entry_complete(r->entry, NULL)) {
		/* Nothing to fetch: the read-ahead policy hears of it after
		   the open is answered. */
		*later = g_steal_pointer(&came);
	} else {
		/* Before anything is fetched: the prefetcher gets going. */
		body_arrival_send(g_steal_pointer(&came));
	}
	if (!mcache_entry_complete(r->entry, NULL)) {
		g_autofree char *key = mcache_folder_key(r->wire, r->uidvalidity);

		/* Room for all of it: bodies fetched ahead leave it to us. */
		mcache_entry_expect(r->entry, e.size);
		/* A prefetcher is fetching it whole: its bytes land in our
		   entry; fetching them too would pay for them twice. Ctrl-C
		   ends the wait (the lease's interrupt, wired for it). */
		lease_arm(l);
		if (inflight_wait(a->inflight, key, r->uid, reader_interrupted, l) < 0) {
			*err = -EINTR;
			tree_entry_clear(&e);
			body_close(r);
			return NULL;
		}
	}
	mfs_mutex_lock(&r->lock);
	if (mcache_entry_complete(r->entry, &r->total)) {
		r->total_known = TRUE;
		__atomic_fetch_add(&a->bodies_from_cache, 1, __ATOMIC_RELAXED);
		/* Cached at another size than listed: the bytes win. */
		if (r->total != e.size)
			size_changed(a, ino, r->total);
	} else {
		probe_size(r, l); /* learn_total tells of a size found wrong */
	}
	/* Served without the kernel's size limit and page cache when the size
	   it was told is wrong: the reader gets every byte the server has, no
	   padding, no cut. */
	*direct_io = (r->total_known && r->total != e.size) || r->size_wrong;
	mfs_mutex_unlock(&r->lock);
	tree_entry_clear(&e);
	return r;
}

void body_close(struct body_reader *r)
{
	if (!r)
		return;
	if (r->entry)
		mcache_entry_unref(r->entry);
	if (r->mem)
		g_byte_array_unref(r->mem);
	g_free(r->wire);
	mfs_mutex_clear(&r->lock);
	g_free(r);
}

/* Locked (r->lock). Copy what is present at [off, off+size) into buf;
   bytes copied, or -errno (-ENODATA: not fetched yet). */
static gssize read_present(struct body_reader *r, char *buf, size_t size, guint64 off)
{
	if (r->mem && off >= r->mem_off && off < r->mem_off + r->mem->len) {
		size_t n = MIN(size, r->mem_off + r->mem->len - off);

		memcpy(buf, r->mem->data + (off - r->mem_off), n);
		return (gssize)n;
	}
	return mcache_entry_read(r->entry, buf, size, off);
}

/* Locked (r->lock): the length of the range to fetch at pos for a read
   wanting `want` more bytes. A sequential reader gets growing ranges; near
   the end one byte more than RFC822.SIZE is asked for, so a longer message
   is noticed. */
static guint64 range_length(struct body_reader *r, guint64 pos, size_t want)
{
	guint64 len;

	if (pos == r->seq_end && pos != 0)
		r->chunk = MIN(r->chunk * 2, CHUNK_MAX);
	else if (pos != r->seq_end)
		r->chunk = CHUNK_MIN;
	len = MAX(r->chunk, want);
	if (pos + len >= r->expected)
		len = MAX(r->expected + 1 - MIN(pos, r->expected), want);
	return len;
}

gssize body_read(struct body_reader *r, struct lease *l, char *buf, size_t size, guint64 off)
{
	size_t got = 0;
	int retries = 0;
	int rc = 0;

	mfs_mutex_lock(&r->lock);
	while (got < size) {
		guint64 pos = off + got;
		guint64 end = r->total_known ? r->total : G_MAXUINT64;
		guint64 len, progress = 0;
		gssize n;

		if (pos >= end)
			break;
		n = read_present(r, buf + got, MIN(size - got, end - pos), pos);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 && n != -ENODATA) {
			rc = (int)n;
			break;
		}
		if (n == 0 && r->total_known)
			break;
		/* Not here yet: fetch a range from pos. */
		len = range_length(r, pos, size - got);
		rc = fetch_range(r, l, pos, len, &progress);
		if (rc == -EIO && (progress > 0 || retries++ == 0)) {
			/* A broken link: go on from what arrived, on a new connection;
			   give up after a failure that brought nothing twice. */
			if (progress > 0)
				retries = 0;
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		r->seq_end = pos + len;
		if (r->total_known && pos >= r->total)
			break;
	}
	mfs_mutex_unlock(&r->lock);
	return rc < 0 && got == 0 ? rc : (gssize)got;
}
