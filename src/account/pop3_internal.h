/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pop3_internal: what the files of the POP3 account share, and nothing
 * else includes. pop3_account.c: lifecycle and the calls the filesystem
 * makes; pop3_spool_session.c: the session, the listing, downloads and the
 * poll thread; pop3_ahead.c: read-ahead; pop3_take.c: taking and the taker
 * thread. The contract, the threads and the lock order are in
 * account/pop3_account.h.
 *
 * A note "sess_lock held" (or "lock held") on a function means its caller
 * holds that lock for the whole call.
 */
#ifndef MFS_POP3_INTERNAL_H
#define MFS_POP3_INTERNAL_H

#include <glib.h>

#include "account/pop3_account.h"
#include "model/spool.h"
#include "protocol/pop3.h"
#include "util/lock.h"
#include "util/workers.h"

/* QUIT (and so commit the DELEs) after this long without work. */
#define IDLE_QUIT_US (2 * G_USEC_PER_SEC)
/* After a refusal ([IN-USE], [LOGIN-DELAY], [SYS/TEMP]) the poll thread logs in
   again after this long, or after `poll` seconds when that is shorter. */
#define BUSY_RETRY_S 30
/* Headers read from a downloaded message for its Date. */
#define DATE_SCAN_MAX (64 * 1024)
/* Messages RETR'd at most in the batch an open waits for (the opened one
   included): two pipeline windows, so that it stays short. */
#define AHEAD_BATCH_MAX (2 * POP3_PIPELINE_WINDOW)
/* ... and bytes beyond the opened one: whatever `prefetch` allows, the open
   that reads ahead never waits for more than this besides its own message. */
#define AHEAD_BATCH_BYTES ((guint64)2 * 1024 * 1024)
/* Past the message a walking reader opened, the read-ahead thread keeps this
   much downloaded (within `prefetch`), in batches of half of it and of at
   most AHEAD_LEAD_BATCH_MAX messages: enough that the transfer never pauses
   for the reader, and few batches (each ends with a pause of the stream). */
#define AHEAD_LEAD_BYTES ((guint64)32 * 1024 * 1024)
#define AHEAD_LEAD_BATCH_MAX 512
/* A message read ahead is kept in memory up to this size, and its file is
   made and written by a syncer: creating a file in the stream thread (ext4
   scans its recently deleted inodes) stalls the transfer. Bigger ones, and
   any once a batch holds AHEAD_MEM_BATCH bytes in memory, are written to
   their file as they arrive. */
#define AHEAD_MEM_MAX ((guint)256 * 1024)
#define AHEAD_MEM_BATCH ((guint64)16 * 1024 * 1024)
/* The taker commits (a syncfs, two fsyncs and DELEs) once no take came for
   TAKE_GATHER_US, or TAKE_GATHER_MAX_US after the first of a batch. */
#define TAKE_GATHER_US (20 * 1000)
#define TAKE_GATHER_MAX_US (250 * 1000)

/*
 * One message. ino, uidl and name are set at creation and never change
 * (read without a lock); the rest is guarded by the account's lock. A
 * message lives until pop3_account_free(), so a pointer to one stays valid.
 */
struct msg {
	guint64 ino;
	char *uidl;
	char *name;      /* names_escape(uidl) ".eml" */
	guint32 num;     /* guarded by lock; number in the current session; 0: not on the server in it */
	guint64 size;    /* guarded by lock; LIST size, then the downloaded size */
	gint64 mtime;    /* guarded by lock */
	int fd;          /* guarded by lock; the spool copy, -1 until downloaded.
			    Kept open while opens > 0, so a reader may pread it unlocked. */
	char *spool_path; /* guarded by lock */
	gboolean taken;  /* guarded by lock */
	gboolean taking; /* guarded by lock; archived, off the listing, waiting for the taker */
	gboolean gone;   /* guarded by lock; no longer on the server, not taken by us */
	gboolean ahead;  /* guarded by lock; downloaded ahead of a reader, not opened since */
	gboolean fetching; /* guarded by lock; in a read-ahead batch (whose thread holds
			      sess_lock) until installed or failed: see fetch_cond */
	guint opens;     /* guarded by lock */
};

/* One open file. m never changes. */
struct pop3_file {
	struct msg *m;
	gboolean at_end; /* guarded by lock; a read at an offset >= the size was seen */
};

struct pop3_account {
	/* Set by pop3_account_new() and never changed: read without a lock. */
	const struct mfs_options *opts;
	const struct pop3_session_opts *so; /* &so_own */
	struct pop3_session_opts so_own;    /* the caller's, with cancel */
	/* Fired by detach while down: abandons the login in progress. */
	struct conn_cancel *cancel;
	char *spool_dir;
	char *state_dir;
	/* new/ of pop3_archive, opened before anything is written: its
	   syncfs reports every write-back failure since (-1: no archive). */
	int archive_fd;
	gint64 mount_time; /* wall clock, seconds: the date of a message without one */
	char *crash_at;    /* MAILFS_CRASH_AT */
	struct workers *syncers; /* write and rename parts of a read-ahead batch */
	/* Written by attach before the threads start and by detach after they
	   were joined; read by any thread in between without a lock. */
	struct pop3_account_notify notify;
	/* Started by attach, joined by detach (one thread, the mount's). */
	GThread *poll, *taker, *ahead;

	mfs_mutex lock;
	GHashTable *by_ino;   /* guarded by lock; guint64 * -> struct msg (owned) */
	GHashTable *files;    /* guarded by lock; struct pop3_file * set: open files
				 (an unmount releases none) */
	GHashTable *by_uidl;  /* guarded by lock; uidl -> struct msg */
	GHashTable *by_name;  /* guarded by lock; name -> struct msg: the listing */
	guint64 next_ino;     /* guarded by lock */
	char *last_error;     /* guarded by lock */
	/* guarded by lock: the link state (pop3_account.h, DOWN), read by
	   opens before they wait for sess_lock */
	gboolean down;
	gint64 down_since;    /* real time, µs */
	char *down_reason;
	/* guarded by lock: counters for the status */
	guint64 taken_count, taken_bytes, sessions, retrieved, retrieved_bytes;
	guint64 ahead_count;  /* guarded by lock; messages downloaded ahead of a reader */
	char *last_open;      /* guarded by lock; name of the message opened last */
	guint streak;         /* guarded by lock; opens in a row, each the next listed name */
	/* guarded by lock: every message made so far (listed or not), in name
	   order, for p3_note_open(); NULL once a message is made, sorted again
	   at the next open. Scanning the listing at every open cost a walk of
	   N messages O(N^2) name comparisons. */
	GPtrArray *name_order;
	GPtrArray *takes;     /* guarded by lock; struct msg *: archived, for the taker */
	guint committing;     /* guarded by lock; messages the taker is committing now */
	mfs_cond take_cond;   /* with lock: takes has work, or take_stop */
	gboolean take_stop;   /* guarded by lock */
	struct msg *ahead_from; /* guarded by lock; read ahead past this one */
	mfs_cond ahead_cond;  /* with lock: ahead_from set, or ahead_stop */
	mfs_cond fetch_cond;  /* with lock: a message's fetching went FALSE */
	gboolean ahead_stop;  /* guarded by lock */
	/* guarded by lock: the read-ahead thread holds the session for a run
	   of batches; ahead_round counts the batches it chose (fetch_cond is
	   broadcast at each, and when the run ends) */
	gboolean ahead_busy;
	guint64 ahead_round;
	/* guarded by lock; struct msg *: takes committed (archived durably and
	   recorded) whose DELE the read-ahead thread sends between its
	   batches, as it holds the session (p3_dele_via_ahead) */
	GPtrArray *ahead_deles;

	mfs_mutex state_lock;
	struct spool_state *state; /* guarded by state_lock */

	mfs_mutex sess_lock;
	struct pop3_session *sess; /* guarded by sess_lock */
	gint64 last_use;      /* guarded by sess_lock; monotonic us of the session's last command */
	gint64 listed_at;     /* guarded by sess_lock; monotonic us of the last listing; 0: never */
	gint64 retry_after;   /* guarded by sess_lock; no listing from readdir before this */
	gboolean busy;        /* guarded by sess_lock; the maildrop was busy: only the poll thread retries */
	gint64 login_at;      /* guarded by sess_lock; monotonic us of the last login accepted; 0: none */
	gint64 login_delay;   /* guarded by sess_lock; us the server wants between logins */
	guint deles;          /* guarded by sess_lock; DELEs sent in this session, not yet committed */
	gboolean dele_pending; /* guarded by sess_lock; taken UIDLs may still be on the server */
	mfs_cond cond;        /* with sess_lock: wakes the poll thread */
	gboolean stop;        /* guarded by sess_lock */
	/* guarded by sess_lock: the poll thread's logins while down */
	gint64 probe_at;      /* monotonic µs of the next one */
	guint probe_failures;
	gboolean probing;     /* this login is the poll thread's probe */
};

/* pop3_account.c */
gint64 p3_now_us(void);
void p3_crash_point(struct pop3_account *a, const char *where);
/* Takes lock. */
void p3_set_last_error(struct pop3_account *a, const char *text);

/* pop3_spool_session.c; sess_lock held by the caller of each unless said. */
gpointer p3_poll_thread(gpointer ud); /* takes sess_lock */
int p3_session_get(struct pop3_account *a, gboolean *fresh, GError **err);
void p3_drop_session(struct pop3_account *a);
void p3_refresh_locked(struct pop3_account *a);
gboolean p3_busy_error(const GError *e); /* no lock */
gboolean p3_may_work(struct pop3_account *a, gint64 now);
/* Takes lock. Whether the server is known to be down; *err (when not NULL)
   then says since when and why (G_IO_ERROR_NOT_CONNECTED). */
gboolean p3_down(struct pop3_account *a, GError **err);
/* lock held: what p3_down() says into *err. */
void p3_set_down_error(const struct pop3_account *a, GError **err);
int p3_download(struct pop3_account *a, struct msg *m, GError **err);
/* Takes lock: whether m is in the spool store. */
gboolean p3_msg_downloaded(struct pop3_account *a, const struct msg *m);
/* Lock held: m leaves the listing. */
void p3_unlist(struct pop3_account *a, struct msg *m, gboolean tell_kernel);
/* No lock held: the spool store's files. */
int p3_sink_write(void *ud, const void *data, size_t len);
int p3_part_open(struct pop3_account *a, const struct msg *m, char **tmp_out, GError **err);
int p3_part_finish(struct pop3_account *a, const struct msg *m, int fd, const char *tmp,
		   char **final_out, GError **err);
/* Takes lock. */
void p3_install(struct pop3_account *a, struct msg *m, int fd, char *final, guint64 got,
		gboolean ahead);

/* pop3_ahead.c */
gpointer p3_ahead_thread(gpointer ud); /* takes lock, then sess_lock with lock released */
void p3_ahead_sync(gpointer data, gpointer ud); /* a syncer job, no lock */
gboolean p3_note_open(struct pop3_account *a, const struct msg *m); /* lock held */
gboolean p3_ahead_wait(struct pop3_account *a, struct msg *m); /* lock held */
int p3_download_ahead(struct pop3_account *a, struct msg *m, GError **err); /* sess_lock held */

/* pop3_take.c */
gpointer p3_taker_thread(gpointer ud); /* takes lock; sess_lock and state_lock with lock released */
/* sess_lock held: DELE of committed takes, on the open session or the next. */
void p3_dele_taken(struct pop3_account *a, GPtrArray *batch);
/* No lock held. */
int p3_take(struct pop3_account *a, struct msg *m, gboolean tell_kernel, GError **err);

#endif
