/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * staging: new files of the IMAP view, kept locally until they are complete
 * and appended as messages.
 *
 * `cp`, `rsync` and editors create a file, write it, and close or rename
 * it; only then is it a message the server can take. Until then it lives in
 * an unlinked file under cache_dir/staging (nothing of it outlives the
 * mount), under an inode number no message or folder can have
 * (STAGED_INO_BIT). A file is "done" once appended, or removed: it is then
 * kept only while the kernel still refers to it (lookups and opens).
 *
 * An existing message opened for writing gets a local file too (it
 * "replaces" the message): the kernel keeps the message's inode, the
 * file handle names the local file. Sent, it replaces the message.
 *
 * For STAGING_RECENT_SECONDS after an APPEND, a file's name still answers
 * (lookup, open, rename, write through a descriptor kept open): written
 * again, it is live once more and its next APPEND replaces the message the
 * last one made (own_uid). So `>` then `>>`, and sed -i's temporary renamed
 * over a message after its close, end as one message.
 *
 * Threads: every function may be called from any thread; one lock guards
 * the table and every field of its files, and is never held across I/O
 * other than fstat/ftruncate of a local file. A file's descriptor stays
 * valid while it is open or looked up.
 */
#ifndef MFS_STAGING_H
#define MFS_STAGING_H

#include <glib.h>
#include <sys/stat.h>

/* Local files being written: inode numbers no message or folder can have. */
#define STAGED_INO_BIT ((guint64)1 << 63)

static inline gboolean staging_is_staged(guint64 ino)
{
	return (ino & STAGED_INO_BIT) != 0;
}

struct staging;

struct staging *staging_new(const char *dir, uid_t uid, gid_t gid);
void staging_free(struct staging *sg);

/* A new file `name` in folder parent, open once and looked up once.
   0 (*ino, *attr set) or -errno. */
int staging_create(struct staging *sg, guint64 parent, const char *name, guint64 *ino,
		   struct stat *attr);

/* Seconds a file's name still answers after its APPEND. */
#define STAGING_RECENT_SECONDS 10

/* A local copy of message `message` (named name in folder parent) opened
   for writing: data (len bytes: the message, or nothing when truncated) in a
   new file, open once, not yet written; when another open made one
   meanwhile, that one is opened once more instead. 0 (*ino set) or -errno. */
int staging_create_replacement(struct staging *sg, guint64 message, guint64 parent,
			       const char *name, const void *data, gsize len, guint64 *ino);
/* The live local copy replacing message, or 0. */
guint64 staging_find_replacement(struct staging *sg, guint64 message);

/* The live (not done) file called name in parent, or one appended in the
   last STAGING_RECENT_SECONDS: one more lookup, its
   attributes in *attr. FALSE when there is none. */
gboolean staging_lookup(struct staging *sg, guint64 parent, const char *name, struct stat *attr);
/* Attributes of ino; -ENOENT when unknown. */
int staging_getattr(struct staging *sg, guint64 ino, struct stat *attr);
/* The kernel dropped n lookups of ino. */
void staging_forget(struct staging *sg, guint64 ino, guint64 n);

/* An open of ino (truncated first with trunc): 0 or -ENOENT (done or
   unknown). A recent file is live again. */
int staging_open(struct staging *sg, guint64 ino, gboolean trunc);
/* The last release of a copy of a message makes it done. */
void staging_release(struct staging *sg, guint64 ino);

/* Reading works until the file is forgotten (-ENOENT after); writing only
   while it is live or recent (-EPERM once done or unknown). A write holding
   a NUL byte is -EINVAL, but into a scratch name (never sent), and the file
   is then refused (staging_refused). Bytes, or -errno. */
gssize staging_pread(struct staging *sg, guint64 ino, void *buf, size_t size, off_t off);
gssize staging_pwrite(struct staging *sg, guint64 ino, const void *buf, size_t size, off_t off);

enum {
	STAGING_SET_SIZE = 1 << 0,
	STAGING_SET_MTIME = 1 << 1,	/* to in->st_mtime */
	STAGING_SET_MTIME_NOW = 1 << 2,
};

/* setattr of a file (what to_set says, STAGING_SET_*); the attributes
   after it in *attr. 0 or -errno. */
int staging_setattr(struct staging *sg, guint64 ino, const struct stat *in, int to_set,
		    struct stat *attr);

/* The flags (canonical, or NULL: none) the message is to be appended with. */
int staging_set_flags(struct staging *sg, guint64 ino, const char *flags);
/* A copy of the flags, or NULL; *exists FALSE for an unknown ino. */
char *staging_get_flags(struct staging *sg, guint64 ino, gboolean *exists);

/* What an APPEND of a file needs, taken at one moment. */
struct staged_copy {
	int fd;		/* a dup of the file's descriptor: close it */
	gint64 mtime;
	gboolean dated;	/* mtime set by the writer after its last write (rsync -a, cp -p) */
	char *flags;	/* or NULL */
	char *name;
	guint64 parent;
	guint64 replaces;	 /* the message it is to replace, or 0 */
	gboolean sent;		 /* appended a moment ago (a recent name) */
	guint32 own_uid;	 /* the message its last APPEND made, or 0 */
	guint32 own_uidvalidity;
};
void staged_copy_clear(struct staged_copy *c);

/*
 * The live file called name in parent (by_name), or ino, as a copy for an
 * APPEND. For a flush (ino): only when written since the last APPEND, not
 * a scratch name, and (at_last_close) this is its only open; an fsync
 * passes FALSE. FALSE when nothing is to be sent. A 0-byte new file is
 * never sent (nothing was written); a 0-byte copy of a message is (and
 * refused: the message stays).
 */
gboolean staging_copy_by_name(struct staging *sg, guint64 parent, const char *name,
			      guint64 *ino, struct staged_copy *out);
gboolean staging_copy_to_flush(struct staging *sg, guint64 ino, gboolean at_last_close,
			       struct staged_copy *out);

/* What an APPEND of a file made, and where. */
struct staged_sent {
	guint32 uid; /* 0: unknown */
	guint32 uidvalidity;
	const char *flags;
	gint64 mtime;
	guint64 parent;
	const char *name;
};

/* A write into live file ino was refused (a NUL byte): it is never sent
   (flush, fsync and rename fail with EINVAL) until truncated to 0. */
gboolean staging_refused(struct staging *sg, guint64 ino);

/* The APPEND of ino succeeded: the file is done (the server lists the
   message); its name answers as a recent one for a moment (name, parent:
   where it now stands; flags, mtime: what it was sent with). */
void staging_appended(struct staging *sg, guint64 ino, const struct staged_sent *sent);
/*
 * The message ino's last APPEND made, while the kernel still refers to ino
 * (`ln` of a file rsync -H has just written: mailfs(1), Links): TRUE with
 * the folder, UID and UIDVALIDITY the server gave; FALSE when it was not
 * sent, was written since, or the server did not say (no UIDPLUS).
 */
gboolean staging_sent_message(struct staging *sg, guint64 ino, guint64 *parent, guint32 *uid,
			      guint32 *uidvalidity);
/* Forget ino now (a replacement that failed): done, not recent. */
void staging_drop(struct staging *sg, guint64 ino);

/* rename of a live file to another scratch name: it stays local. */
void staging_rename(struct staging *sg, guint64 ino, guint64 newparent, const char *newname);

/*
 * A message renamed to a scratch name in its folder (vim's and emacs'
 * backup: x.eml -> x.eml~) keeps standing on the server: the backup name
 * is only remembered, so that the editor's rename back (when its write
 * failed) or unlink (when it succeeded) of it is answered without a word to
 * the server. Such names are never found by staging_lookup.
 */
void staging_create_alias(struct staging *sg, guint64 message, guint64 parent, const char *name);
/* The message the backup name `name` in parent stands for, or 0; with take,
   the name is forgotten. */
guint64 staging_alias(struct staging *sg, guint64 parent, const char *name, gboolean take);

/* unlink of the live file name in parent: TRUE when there was one (gone,
   without a word to the server). A recent name is forgotten (FALSE). */
gboolean staging_unlink(struct staging *sg, guint64 parent, const char *name);

#endif
