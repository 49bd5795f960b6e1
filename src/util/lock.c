/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/lock.h"

#include <errno.h>
#include <time.h>

static void check(int rc, const char *what)
{
	if (rc != 0)
		g_error("%s: %s", what, g_strerror(rc));
}

void mfs_mutex_init(mfs_mutex *mu)
{
	check(pthread_mutex_init(&mu->m, NULL), "pthread_mutex_init");
}

void mfs_mutex_clear(mfs_mutex *mu)
{
	check(pthread_mutex_destroy(&mu->m), "pthread_mutex_destroy");
}

void mfs_mutex_lock(mfs_mutex *mu)
{
	check(pthread_mutex_lock(&mu->m), "pthread_mutex_lock");
}

void mfs_mutex_unlock(mfs_mutex *mu)
{
	check(pthread_mutex_unlock(&mu->m), "pthread_mutex_unlock");
}

gboolean mfs_mutex_trylock(mfs_mutex *mu)
{
	int rc = pthread_mutex_trylock(&mu->m);

	if (rc == EBUSY)
		return FALSE;
	check(rc, "pthread_mutex_trylock");
	return TRUE;
}

void mfs_cond_init(mfs_cond *c)
{
	pthread_condattr_t attr;

	check(pthread_condattr_init(&attr), "pthread_condattr_init");
	/* g_get_monotonic_time() is CLOCK_MONOTONIC. */
	check(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), "pthread_condattr_setclock");
	check(pthread_cond_init(&c->c, &attr), "pthread_cond_init");
	pthread_condattr_destroy(&attr);
}

void mfs_cond_clear(mfs_cond *c)
{
	check(pthread_cond_destroy(&c->c), "pthread_cond_destroy");
}

void mfs_cond_wait(mfs_cond *c, mfs_mutex *mu)
{
	check(pthread_cond_wait(&c->c, &mu->m), "pthread_cond_wait");
}

gboolean mfs_cond_wait_until(mfs_cond *c, mfs_mutex *mu, gint64 end_us)
{
	struct timespec ts = {
		.tv_sec = end_us / G_USEC_PER_SEC,
		.tv_nsec = (end_us % G_USEC_PER_SEC) * 1000,
	};
	int rc;

	if (end_us < 0)
		ts = (struct timespec){ 0, 0 };
	rc = pthread_cond_timedwait(&c->c, &mu->m, &ts);
	if (rc == ETIMEDOUT)
		return FALSE;
	check(rc, "pthread_cond_timedwait");
	return TRUE;
}

void mfs_cond_signal(mfs_cond *c)
{
	check(pthread_cond_signal(&c->c), "pthread_cond_signal");
}

void mfs_cond_broadcast(mfs_cond *c)
{
	check(pthread_cond_broadcast(&c->c), "pthread_cond_broadcast");
}
