/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A first listing taken in as it arrives: model/tree.h, tree_folder_stream_begin. */
#include "model/tree.h"
#include "model/tree_internal.h"

#include <errno.h>

int tree_folder_stream_begin(struct tree *t, guint64 ino, guint32 uidvalidity, gint64 newest)
{
	struct folder *f;
	int rc;

	mfs_mutex_lock(&t->lock);
	rc = tree_messages_folder(t, ino, &f);
	if (rc == 0 && (f->msgs || f->streaming))
		rc = -EEXIST;
	if (rc == 0) {
		/* An empty set of this UIDVALIDITY: nothing to report leaving. */
		tree_current_msgset(t, f, uidvalidity, NULL);
		f->streaming = TRUE;
		f->newest = newest;
		mfs_cond_broadcast(&t->stream_cond);
	}
	mfs_mutex_unlock(&t->lock);
	return rc;
}

void tree_folder_stream_end(struct tree *t, guint64 ino, gboolean ok, GArray *removed)
{
	struct folder *f;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, ino);
	if (f && f->streaming) {
		f->streaming = FALSE;
		f->newest = 0;
		/* Half a listing is no listing: readers would take what is
		   missing for gone. The next look lists it again. */
		if (!ok)
			tree_msgset_retire(t, f, TRUE, removed);
	}
	mfs_cond_broadcast(&t->stream_cond);
	mfs_mutex_unlock(&t->lock);
}

gboolean tree_folder_streaming(struct tree *t, guint64 ino)
{
	struct folder *f;
	gboolean streaming;

	mfs_mutex_lock(&t->lock);
	f = tree_folder_get(t, ino);
	streaming = f && f->streaming;
	mfs_mutex_unlock(&t->lock);
	return streaming;
}

gboolean tree_folder_wait_listed(struct tree *t, guint64 ino, gint64 end_us)
{
	struct folder *f;
	gboolean listed = FALSE;

	mfs_mutex_lock(&t->lock);
	while ((f = tree_folder_get(t, ino)) != NULL && !(listed = tree_folder_reads_listed(f)))
		if (!mfs_cond_wait_until(&t->stream_cond, &t->lock, end_us))
			break;
	mfs_mutex_unlock(&t->lock);
	return listed;
}

/* Locked. Whether f holds a message a readdir at offset off has not given. */
static gboolean holds_past(const struct folder *f, guint64 off)
{
	const struct tmsgs *live;

	if (!f->msgs || f->msgs->live.len == 0)
		return FALSE;
	live = &f->msgs->live;
	return off < OFF_MSG_BASE || live->v[live->len - 1].uid > off - OFF_MSG_BASE;
}

void tree_folder_stream_wait(struct tree *t, guint64 ino, guint64 off, gint64 end_us)
{
	struct folder *f;

	mfs_mutex_lock(&t->lock);
	while ((f = tree_folder_get(t, ino)) != NULL && f->streaming && !holds_past(f, off))
		if (!mfs_cond_wait_until(&t->stream_cond, &t->lock, end_us))
			break;
	mfs_mutex_unlock(&t->lock);
}
