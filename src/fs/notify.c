/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "fs/notify.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"
#include "util/workers.h"

enum note_kind { NOTE_ENTRY_GONE, NOTE_INODE };

struct note {
	enum note_kind kind;
	fuse_ino_t parent;
	fuse_ino_t ino;
	char *name;
};

struct notify {
	struct fuse_session *se;
	struct workers *sender; /* one thread, so notes go out in order */
};

static void note_free(void *p)
{
	struct note *n = p;

	g_free(n->name);
	g_free(n);
}

static void send_note(void *data, void *user_data)
{
	struct note *n = data;
	struct notify *nt = user_data;
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
	}
	/* ENOENT: the kernel did not have it cached, which is fine. */
	if (rc < 0 && rc != -ENOENT)
		mfs_log_debug(MFS_LOG_FUSE, "notification for inode %lu failed: %s",
			      (unsigned long)(n->ino ? n->ino : n->parent), g_strerror(-rc));
	note_free(data);
}

struct notify *notify_start(struct fuse_session *se)
{
	struct notify *nt = g_new0(struct notify, 1);

	nt->se = se;
	nt->sender = workers_new("mailfs-notify", 1, send_note, nt, note_free);
	return nt;
}

void notify_stop(struct notify *nt)
{
	if (!nt)
		return;
	workers_free(nt->sender, TRUE);
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
	workers_push(nt->sender, n);
}

void notify_entry_gone(struct notify *nt, fuse_ino_t parent, fuse_ino_t child, const char *name)
{
	push(nt, NOTE_ENTRY_GONE, parent, child, name);
}

void notify_inode_changed(struct notify *nt, fuse_ino_t ino)
{
	push(nt, NOTE_INODE, 0, ino, NULL);
}
