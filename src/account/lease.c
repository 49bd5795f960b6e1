/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "account/lease.h"

#include "account/pool.h"
#include "transport/conn.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"

void lease_init(struct lease *l, struct pool *pool)
{
	memset(l, 0, sizeof(*l));
	l->pool = pool;
	mfs_mutex_init(&l->lock);
}

void lease_clear(struct lease *l)
{
	conn_cancel_free(l->cancel);
	mfs_mutex_clear(&l->lock);
}

void lease_interrupt(struct lease *l)
{
	mfs_mutex_lock(&l->lock);
	l->interrupted = TRUE;
	if (l->session)
		pool_abort_session(l->pool, l->session);
	else if (l->cancel)
		conn_cancel_fire(l->cancel); /* a connect in progress, if any */
	mfs_mutex_unlock(&l->lock);
}

gboolean lease_interrupted(struct lease *l)
{
	gboolean i;

	mfs_mutex_lock(&l->lock);
	i = l->interrupted;
	mfs_mutex_unlock(&l->lock);
	return i;
}

void lease_arm(struct lease *l)
{
	if (l->arm && !l->armed) {
		/* Before the interrupt is wired: it may fire the switch. */
		l->cancel = conn_cancel_new_child(pool_connect_switch(l->pool));
		l->armed = TRUE;
		l->arm(l);
	}
}

int lease_borrow(struct lease *l, const char *mailbox, struct imap_session **out)
{
	GError *err = NULL;
	struct imap_session *s;

	lease_arm(l);
	if (lease_interrupted(l))
		return -EINTR;
	s = pool_get_cancellable(l->pool, mailbox, l->cancel, &err);
	if (!s) {
		int rc = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED) ? -EINTR : -EIO;

		/* Down: the warning was the operation that found it so. */
		if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED))
			mfs_log_debug(MFS_LOG_IMAP, "%s", err->message);
		else if (rc == -EIO)
			mfs_log_warn("%s", err->message);
		g_error_free(err);
		return rc;
	}
	mfs_mutex_lock(&l->lock);
	l->session = s;
	/* An interrupt that came while pool_get waited. */
	if (l->interrupted)
		pool_abort_session(l->pool, s);
	mfs_mutex_unlock(&l->lock);
	*out = s;
	return 0;
}

void lease_give_back(struct lease *l)
{
	mfs_mutex_lock(&l->lock);
	if (l->session)
		l->was_down = pool_put(l->pool, l->session) == POOL_PUT_WAS_DOWN;
	l->session = NULL;
	mfs_mutex_unlock(&l->lock);
}

int lease_errno(struct lease *l, int rc, GError *err, const char *what)
{
	/* `what` may be a mailbox name: the server's bytes, escaped for the log. */
	g_autofree char *esc = mfs_log_escape(what, strlen(what), 200);

	if (lease_interrupted(l) || g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED) ||
	    (rc == -EIO && pool_is_shut_down(l->pool))) {
		rc = -EINTR; /* an interrupt, or unmount (a session it aborted) */
		if (err)
			mfs_log_debug(MFS_LOG_IMAP, "%s: %s", esc, err->message);
	} else if (rc == -EIO && err && l->was_down)
		/* Another request found the server down first, and said so. */
		mfs_log_debug(MFS_LOG_IMAP, "%s: %s", esc, err->message);
	else if (rc == -EIO && err)
		mfs_log_warn("%s: %s", esc, err->message);
	else if (err)
		mfs_log_debug(MFS_LOG_IMAP, "%s: %s", esc, err->message);
	if (err)
		g_error_free(err);
	return rc;
}
