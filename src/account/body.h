/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * body: reading one message's bytes, for one open file.
 *
 * Bytes are fetched in ranges (BODY.PEEK[]<offset.length>) into the body
 * cache (model/mcache.h): small first, so `head` and `file` stay cheap,
 * doubling while a reader goes on sequentially; a second `cat` fetches
 * nothing. RFC822.SIZE is a hint some servers get wrong, and the kernel
 * never reads past the size it was told: body_open learns the true end
 * with the first range, and the reader is told to bypass the kernel's page
 * cache (direct I/O) when the size differs. When the cache cannot keep a
 * range (a full disk), the last range is served from memory: a reader
 * never fails for the cache's sake. A message a prefetcher is fetching
 * whole at the time of the open is waited for, not fetched again
 * (account/inflight.h); an open of an uncached message counts at its full
 * size among the bodies open, so bodies fetched ahead leave it room.
 *
 * Threads: one reader may be used by several threads (the kernel may send
 * reads of one open file in parallel): its lock makes one fetch at a time.
 */
#ifndef MFS_BODY_H
#define MFS_BODY_H

#include <glib.h>

#include "account/imap_account.h"

struct body_reader;
struct body_arrival;

/*
 * Open message ino for reading; the open also tells the read-ahead policy
 * (account/walk.h) that a reader came. May wait for a prefetcher's fetch
 * of this message (no lock held meanwhile). NULL and *err (-ENOENT: no such
 * message, -EISDIR: a folder); else *direct_io says whether the kernel is
 * to bypass its page cache (the size it was told is wrong).
 *
 * A body cached whole is opened without a system call (its cache file is
 * opened at the first read, mcache_get_lazy), and with later not NULL the
 * read-ahead policy's news is left in *later instead of told at once: pass
 * it to body_arrival_send once the open is answered, so the open does not
 * wait for that bookkeeping (warm grep -r). *later is NULL otherwise (told
 * already, or the open failed).
 */
struct body_reader *body_open(struct imap_account *a, struct lease *l, guint64 ino,
			      gboolean *direct_io, struct body_arrival **later, int *err);

/* Tell the read-ahead policy what body_open left in *later, and free it. NULL: nothing. */
void body_arrival_send(struct body_arrival *n);

/* Up to size bytes at off into buf: the count (0 at the end), or -errno
   when nothing could be read. Once the message is gone from the server
   (expunged, its mailbox deleted or of another UIDVALIDITY), the bytes
   fetched before stay readable for as long as the reader lives (its cache
   handle keeps them, mcache.h "Dropping"; once the cache could not keep a
   range, a full disk, only what it kept before and the last range
   fetched), and a range never fetched is -ESTALE: at once, without asking
   the server, when the tree already lists the message as gone. */
gssize body_read(struct body_reader *r, struct lease *l, char *buf, size_t size, guint64 off);

void body_close(struct body_reader *r);

#endif
