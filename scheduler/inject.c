// SPDX-License-Identifier: MIT
/*
 * inject.c - the runtime's global queue: tasks spawned or woken by threads
 * that are not its workers, and overflow from a deque that could not grow.
 *
 * A mutex-protected FIFO list is enough: it is off the hot path (workers look
 * at it every WEFT__GLOBAL_INTERVAL ticks and when their own queues are
 * empty), and inject_n lets them skip the lock when it is empty.
 */
#include "scheduler/internal.h"

void weft__inject_push(struct weft_rt *rt, struct weft_task *t)
{
	pthread_mutex_lock(&rt->inject_lock);
	weft__tlist_push(&rt->inject, t);
	/* Under the lock, so inject_n never runs ahead of the list; relaxed
	 * readers only use it as a hint before taking the lock. */
	atomic_fetch_add_explicit(&rt->inject_n, 1, memory_order_relaxed);
	pthread_mutex_unlock(&rt->inject_lock);
}

struct weft_task *weft__inject_pop(struct weft_rt *rt)
{
	if (!atomic_load_explicit(&rt->inject_n, memory_order_relaxed))
		return NULL;
	pthread_mutex_lock(&rt->inject_lock);
	struct weft_task *t = weft__tlist_pop(&rt->inject);
	if (t)
		atomic_fetch_sub_explicit(&rt->inject_n, 1, memory_order_relaxed);
	pthread_mutex_unlock(&rt->inject_lock);
	return t;
}
