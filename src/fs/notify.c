/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fs/notify.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"

enum note_kind { NOTE_ENTRY_GONE, NOTE_INODE, NOTE_STOP };

struct note {
	enum note_kind kind;
	fuse_ino_t parent;
	fuse_ino_t ino;
	char *name;
};

struct notify {
	struct fuse_session *se;
	GAsyncQueue *queue;
	GThread *thread;
};

static void note_free(struct note *n)
{
	g_free(n->name);
	g_free(n);
}

static void send_note(struct notify *nt, const struct note *n)
{
	int rc = 0;

	switch (n->kind) {
	case NOTE_ENTRY_GONE:
		/* notify_delete also tells inotify watchers; it needs the child. */
		if (n->ino)
			rc = fuse_lowlevel_notify_delete(nt->se, n->parent, n->ino, n->name,
							 strlen(n->name));
		if (!n->ino || rc == -ENOENT || rc == -ENOTDIR || rc == -EBUSY)
			rc = fuse_lowlevel_notify_inval_entry(nt->se, n->parent, n->name,
							      strlen(n->name));
		break;
	case NOTE_INODE:
		rc = fuse_lowlevel_notify_inval_inode(nt->se, n->ino, 0, 0);
		break;
	case NOTE_STOP:
		break;
	}
	/* ENOENT: the kernel did not have it cached, which is fine. */
	if (rc < 0 && rc != -ENOENT)
		mfs_log_debug(MFS_LOG_FUSE, "notification for inode %lu failed: %s",
			      (unsigned long)(n->ino ? n->ino : n->parent), g_strerror(-rc));
}

static gpointer run(gpointer data)
{
	struct notify *nt = data;

	for (;;) {
		struct note *n = g_async_queue_pop(nt->queue);
		gboolean stop = n->kind == NOTE_STOP;

		if (!stop)
			send_note(nt, n);
		note_free(n);
		if (stop)
			return NULL;
	}
}

struct notify *notify_start(struct fuse_session *se)
{
	struct notify *nt = g_new0(struct notify, 1);

	nt->se = se;
	nt->queue = g_async_queue_new();
	nt->thread = g_thread_new("mailfs-notify", run, nt);
	return nt;
}

void notify_stop(struct notify *nt)
{
	struct note *stop;

	if (!nt)
		return;
	stop = g_new0(struct note, 1);
	stop->kind = NOTE_STOP;
	g_async_queue_push(nt->queue, stop);
	g_thread_join(nt->thread);
	g_async_queue_unref(nt->queue);
	g_free(nt);
}

static void push(struct notify *nt, enum note_kind kind, fuse_ino_t parent, fuse_ino_t ino,
		 const char *name)
{
	struct note *n;

	if (!nt)
		return;
	n = g_new0(struct note, 1);
	n->kind = kind;
	n->parent = parent;
	n->ino = ino;
	n->name = g_strdup(name);
	g_async_queue_push(nt->queue, n);
}

void notify_entry_gone(struct notify *nt, fuse_ino_t parent, fuse_ino_t child, const char *name)
{
	push(nt, NOTE_ENTRY_GONE, parent, child, name);
}

void notify_inode_changed(struct notify *nt, fuse_ino_t ino)
{
	push(nt, NOTE_INODE, 0, ino, NULL);
}
