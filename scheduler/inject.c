// SPDX-License-Identifier: MIT
/*
 * inject.c - a locked FIFO of tasks, for queues that any thread may push to:
 * the runtime's injection queue (tasks spawned or woken by threads that are
 * not its workers, and overflow from a deque that could not grow) and each
 * worker's inbox (pinned tasks, and tasks started on a chosen worker).
 *
 * A spinlock around a linked list is enough: both are off the hot path
 * (workers look at the injection queue every WEFT__GLOBAL_INTERVAL ticks
 * and when their own queues are empty), and `n` lets readers skip the lock
 * when a queue is empty.
 */
#include "scheduler/internal.h"

void weft__tqueue_push(struct weft__tqueue *q, struct weft_task *t)
{
	weft__spin_lock(&q->lock);
	weft__tlist_push(&q->list, t);
	/* Under the lock, so n never runs ahead of the list; readers use it
	 * only as a hint before taking the lock. */
	atomic_fetch_add_explicit(&q->n, 1, memory_order_relaxed);
	weft__spin_unlock(&q->lock);
}

struct weft_task *weft__tqueue_pop(struct weft__tqueue *q)
{
	if (!weft__tqueue_len(q))
		return NULL;
	weft__spin_lock(&q->lock);
	struct weft_task *t = weft__tlist_pop(&q->list);
	if (t)
		atomic_fetch_sub_explicit(&q->n, 1, memory_order_relaxed);
	weft__spin_unlock(&q->lock);
	return t;
}
