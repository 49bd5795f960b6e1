/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * spool: the local files of the POP3 read-once spool (mailfs(1), POP3 VIEW) — the
 * taken-UIDL state file and the Maildir archive — written so that a crash
 * at any point loses nothing: every file is written under a temporary
 * name and renamed, and is durable (the state file: fsync'd, and its
 * directory; the archive: see below) before it counts.
 *
 * State file: one UIDL per line (UIDLs are 0x21-0x7E, so no line breaks or
 * blanks inside), in the state directory. A line that is not a valid UIDL is
 * skipped. A missing file is an empty set.
 *
 * Archive: a Maildir (tmp/, new/, cur/, mode 0700). A message goes to
 * tmp/NAME (written, or a hard link of the spool store's copy) and is
 * renamed to new/NAME; nothing of it is fsync'd then: one syncfs of the
 * archive's file system for a batch of messages (spool_archive_sync) makes
 * their bytes and names durable before any of them counts as archived.
 * NAME is
 * names_escape(UIDL): the same UIDL always gives the same name, so writing
 * it again (after a crash between archive and state) replaces the earlier
 * copy rather than adding a second one.
 *
 * Errors: gboolean + GError (G_FILE_ERROR from errno; the message names the
 * path). Memory: the state owns its strings. Threads: a spool_state is not
 * locked; the caller serialises access.
 */
#ifndef MFS_SPOOL_H
#define MFS_SPOOL_H

#include <glib.h>

struct spool_state;

/* Load (or start empty) the state file dir/taken; creates dir (0700). NULL and *err on failure. */
struct spool_state *spool_state_open(const char *dir, GError **err);
void spool_state_free(struct spool_state *st);
gboolean spool_state_has(const struct spool_state *st, const char *uidl);
guint spool_state_count(const struct spool_state *st);
/* Add a UIDL and write the file durably (new file, fsync, rename, fsync dir). */
gboolean spool_state_add(struct spool_state *st, const char *uidl, GError **err);
/* Add n UIDLs with one durable write; on failure none of them is added. */
gboolean spool_state_add_many(struct spool_state *st, const char *const *uidls, guint n,
			      GError **err);
/*
 * Drop the UIDLs not in present (a set of UIDL strings on the server): they
 * were committed deleted, and a UIDL is never reused (RFC 1939 §7). Writes
 * the file only when something was dropped.
 */
gboolean spool_state_prune(struct spool_state *st, GHashTable *present, GError **err);

/* mkdir -p with mode (and chmod it, for a directory that existed looser). */
gboolean spool_mkdir(const char *path, int mode, GError **err);
/* fsync a directory. */
gboolean spool_fsync_dir(const char *path, GError **err);

/*
 * Create the Maildir maildir and its tmp/, new/, cur/ (0700, tightened if
 * looser). Done once per mount: spool_archive() does it again only when it
 * finds tmp/ or new/ missing (removed while mounted).
 */
gboolean spool_archive_prepare(const char *maildir, GError **err);

/*
 * Copy the whole of src_fd (from offset 0) into the Maildir at maildir as
 * new/NAME (NAME = names_escape(uidl)): tmp/NAME written, renamed to
 * new/NAME. Durable once spool_archive_sync() returned TRUE. Files are
 * 0600. A failure (a full disk) leaves no file in new/.
 */
gboolean spool_archive(const char *maildir, const char *uidl, int src_fd, GError **err);
/*
 * As spool_archive(), when src_path names src_fd's file (the spool
 * store's copy, complete, fsync'd or not): it is hard-linked into tmp/
 * and renamed to new/ — the same bytes, without a second write of them;
 * durable, bytes and names, once spool_archive_sync() returned TRUE (one
 * file system: the syncfs covers the linked file). Falls back to the copy
 * when it cannot link (another file system: EXDEV; a file system without
 * links).
 */
gboolean spool_archive_link(const char *maildir, const char *uidl, const char *src_path,
			    int src_fd, GError **err);
/*
 * A descriptor of new/, for spool_archive_sync: open it before any message
 * of the mount is written (into the archive or the spool store), so that a
 * write-back failure of any of them is reported. -1 and *err on failure.
 */
int spool_archive_watch(const char *maildir, GError **err);
/* syncfs of new/'s file system (watch_fd: spool_archive_watch's): every
   message put there so far (bytes, the file, its name) is archived
   durably. FALSE when a write-back on that file system failed since the
   descriptor was opened or last synced (Linux >= 5.8 says so). */
gboolean spool_archive_sync(int watch_fd, const char *maildir, GError **err);

#endif
