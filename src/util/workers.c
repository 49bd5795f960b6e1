/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/workers.h"

#include "util/lock.h"

struct workers {
	workers_job_fn job;
	void *user_data;
	GDestroyNotify free_data;
	char *name;
	guint max;

	mfs_mutex lock;
	mfs_cond cond;      /* a job was queued, or stopping */
	GPtrArray *threads; /* guarded by lock: started as jobs come */
	guint idle;         /* guarded by lock: threads waiting for a job */
	GQueue queue;       /* guarded by lock: job data */
	gboolean stopping;  /* guarded by lock */
	gboolean run_queued; /* guarded by lock: at stopping, empty the queue first */
};

static gpointer run(gpointer data)
{
	struct workers *w = data;

	mfs_mutex_lock(&w->lock);
	for (;;) {
		void *job;

		w->idle++;
		while (g_queue_is_empty(&w->queue) && !w->stopping)
			mfs_cond_wait(&w->cond, &w->lock);
		w->idle--;
		if (g_queue_is_empty(&w->queue) || (w->stopping && !w->run_queued))
			break;
		job = g_queue_pop_head(&w->queue);
		mfs_mutex_unlock(&w->lock);
		w->job(job, w->user_data); /* the job owns its data now */
		mfs_mutex_lock(&w->lock);
	}
	mfs_mutex_unlock(&w->lock);
	return NULL;
}

struct workers *workers_new(const char *name, guint n, workers_job_fn job, void *user_data,
			    GDestroyNotify free_data)
{
	struct workers *w = g_new0(struct workers, 1);

	w->job = job;
	w->user_data = user_data;
	w->free_data = free_data;
	mfs_mutex_init(&w->lock);
	mfs_cond_init(&w->cond);
	g_queue_init(&w->queue);
	w->threads = g_ptr_array_new();
	w->name = g_strdup(name);
	w->max = MAX(n, 1);
	return w;
}

void workers_push(struct workers *w, void *data)
{
	mfs_mutex_lock(&w->lock);
	g_queue_push_tail(&w->queue, data);
	/* Threads start at the first jobs, not at workers_new: the daemon makes
	   its sets before fork(), which keeps only the calling thread. */
	if (w->idle == 0 && w->threads->len < w->max)
		g_ptr_array_add(w->threads, g_thread_new(w->name, run, w));
	mfs_cond_signal(&w->cond);
	mfs_mutex_unlock(&w->lock);
}

void workers_free(struct workers *w, gboolean run_queued)
{
	void *job;

	if (!w)
		return;
	mfs_mutex_lock(&w->lock);
	w->stopping = TRUE;
	w->run_queued = run_queued;
	mfs_cond_broadcast(&w->cond);
	mfs_mutex_unlock(&w->lock);
	/* No push comes after workers_free: the array no longer changes. */
	for (guint i = 0; i < w->threads->len; i++)
		g_thread_join(w->threads->pdata[i]);
	g_ptr_array_unref(w->threads);
	/* Only dropped jobs are left. */
	while ((job = g_queue_pop_head(&w->queue)))
		if (w->free_data)
			w->free_data(job);
	mfs_cond_clear(&w->cond);
	mfs_mutex_clear(&w->lock);
	g_free(w->name);
	g_free(w);
}
