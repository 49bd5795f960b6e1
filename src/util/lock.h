/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once
/*
 * Mutexes and condition variables of the daemon.
 *
 * They are POSIX ones, not GLib's: GMutex and GCond are futex-based on
 * Linux, and ThreadSanitizer, which the test suite runs the daemon under,
 * only understands the pthread calls it intercepts. With GMutex every
 * critical section would look like a race to it. The names follow GLib's so
 * the code reads the same.
 *
 * Conditions wait on the monotonic clock (g_get_monotonic_time()), as
 * g_cond_wait_until does. Errors of these calls are programming errors
 * (an uninitialised or destroyed lock) and abort.
 */

#include <glib.h>
#include <pthread.h>

typedef struct {
	pthread_mutex_t m;
} mfs_mutex;

typedef struct {
	pthread_cond_t c;
} mfs_cond;

/* For a static mutex (no mfs_mutex_init needed). */
#define MFS_MUTEX_INIT { PTHREAD_MUTEX_INITIALIZER }

void mfs_mutex_init(mfs_mutex *mu);
void mfs_mutex_clear(mfs_mutex *mu);
void mfs_mutex_lock(mfs_mutex *mu);
void mfs_mutex_unlock(mfs_mutex *mu);
/* TRUE when the lock was taken. */
gboolean mfs_mutex_trylock(mfs_mutex *mu);

void mfs_cond_init(mfs_cond *c);
void mfs_cond_clear(mfs_cond *c);
void mfs_cond_wait(mfs_cond *c, mfs_mutex *mu);
/* Waits until signalled or until end_us (g_get_monotonic_time() scale);
   FALSE when end_us passed. Spurious wake-ups return TRUE, as GLib's do. */
gboolean mfs_cond_wait_until(mfs_cond *c, mfs_mutex *mu, gint64 end_us);
void mfs_cond_signal(mfs_cond *c);
void mfs_cond_broadcast(mfs_cond *c);
