// SPDX-License-Identifier: MIT
/*
 * inject.c - a locked FIFO of tasks, for queues that any thread may push to:
 * the runtime's injection queue (tasks spawned or woken by threads that are
 * not its workers, and overflow from a deque that could not grow) and each
 * worker's inbox (pinned tasks, and tasks started on a chosen worker) and
 * I/O queue (tasks woken by its completions and timers, which thieves take
 * from too).
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

/* How far past the tasks it takes a thief looks for more: bound tasks are
 * rare in a stealable queue, and a queue of nothing else should not hold
 * its owner's lock for a walk of all of it. */
#define STEAL_LOOK 64

/*
 * Moves up to max tasks that may migrate from q to the end of out, oldest
 * first; bound ones stay where they are, so the owner still runs everything
 * in the order it was queued.  Returns how many moved.
 */
uint64_t weft__tqueue_steal(struct weft__tqueue *q, uint64_t max, struct weft__tlist *out)
{
	uint64_t moved = 0, look = max + STEAL_LOOK;
	if (!weft__tqueue_len(q))
		return 0;
	weft__spin_lock(&q->lock);
	struct weft_task *prev = NULL, *t = q->list.head;
	while (t && moved < max && look-- > 0) {
		struct weft_task *next = t->next;
		if (weft__task_bound(t)) {
			prev = t;
		} else {
			if (prev)
				prev->next = next;
			else
				q->list.head = next;
			if (q->list.tail == t)
				q->list.tail = prev;
			weft__tlist_push(out, t);
			moved++;
		}
		t = next;
	}
	atomic_fetch_sub_explicit(&q->n, moved, memory_order_relaxed);
	weft__spin_unlock(&q->lock);
	return moved;
}
