/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once
/*
 * A fixed set of threads running queued jobs in the order they were queued.
 *
 * Used instead of GThreadPool and GAsyncQueue because their hand-off goes
 * through GLib's futex locks, which ThreadSanitizer cannot see: a job's data
 * written before the push and read by the worker would look like a race.
 * Here the queue is under an mfs_mutex (util/lock.h).
 *
 * Thread safety: every function may be called from any thread, except
 * workers_free, which must not be called from one of the set's own threads.
 */

#include <glib.h>

struct workers;

typedef void (*workers_job_fn)(void *data, void *user_data);

/* A set of up to n (>= 1) threads named name, started as jobs are queued.
   A job that runs owns its data; free_data, when not NULL, frees the data
   of a job dropped without running (as GThreadPool's item_free_func). */
struct workers *workers_new(const char *name, guint n, workers_job_fn job, void *user_data,
			    GDestroyNotify free_data);

/* Queues a job; its data belongs to the set from now on. */
void workers_push(struct workers *w, void *data);

/* Stops the threads and frees the set. Jobs already running finish; jobs
   still queued are run first when run_queued, else dropped (freed). */
void workers_free(struct workers *w, gboolean run_queued);
