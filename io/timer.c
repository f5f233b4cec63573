// SPDX-License-Identifier: MIT
/*
 * timer.c - per-worker timers for weft_sleep and deadlines.
 *
 * Each worker keeps a binary min-heap ordered by expiry.  A timer is armed on
 * the worker the task runs on when it parks; the task may then be woken by
 * something else and migrate, so timers are never removed eagerly (that would
 * need the owning worker's cooperation).  Instead an entry names the wait it
 * ends by (task, token): when it fires, weft__wake_token() claims that wait
 * only if it is still the armed one, and a stale entry does nothing.  This is
 * safe because task objects are never returned to the allocator while the
 * runtime lives (task.c).
 *
 * Stale entries must not pile up when many short waits carry long deadlines,
 * so once the heap has doubled since the last sweep, a sweep drops the stale
 * ones and re-heapifies: O(n), paid for by the n insertions since the last
 * one, the same bargain Go's timer heaps make.
 *
 * Invariant: heap[i].when >= heap[(i-1)/2].when for every i > 0
 * (weft__timers_check).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/timer.h"
#include "runtime/internal.h"
#include "scheduler/internal.h"

#define SWEEP_MIN 1024

static inline bool before(const struct weft__timer *a, const struct weft__timer *b)
{
	return a->when < b->when;
}

static void sift_up(struct weft__timer *h, size_t i)
{
	struct weft__timer x = h[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!before(&x, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = x;
}

static void sift_down(struct weft__timer *h, size_t n, size_t i)
{
	struct weft__timer x = h[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && before(&h[c + 1], &h[c]))
			c++;
		if (!before(&h[c], &x))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

/* Whether the wait an entry was armed for is still waiting. */
static bool entry_live(const struct weft__timer *e)
{
	uint64_t w = atomic_load_explicit(&e->task->wake, memory_order_relaxed);
	return (w >> WEFT__WAKE_SHIFT) == e->token && (w & WEFT__WAKE_ARMED);
}

static void sweep(struct weft__timers *ts)
{
	size_t j = 0;
	for (size_t i = 0; i < ts->n; i++)
		if (entry_live(&ts->heap[i]))
			ts->heap[j++] = ts->heap[i];
	ts->n_stale += ts->n - j;
	ts->n_sweeps++;
	ts->n = j;
	for (size_t i = ts->n / 2; i-- > 0;)
		sift_down(ts->heap, ts->n, i);
	ts->sweep_at = 2 * ts->n > SWEEP_MIN ? 2 * ts->n : SWEEP_MIN;
}

int weft__timers_add(struct weft__timers *ts, uint64_t when, struct weft_task *t,
		     uint64_t token, int result)
{
	if (ts->n >= ts->sweep_at)
		sweep(ts);
	if (ts->n == ts->cap) {
		size_t cap = ts->cap ? 2 * ts->cap : 64;
		struct weft__timer *h = realloc(ts->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		ts->heap = h;
		ts->cap = cap;
	}
	ts->heap[ts->n] = (struct weft__timer){when, t, token, result};
	sift_up(ts->heap, ts->n++);
	ts->n_added++;
	return 0;
}

uint64_t weft__timers_next(const struct weft__timers *ts)
{
	return ts->n ? ts->heap[0].when : WEFT_NEVER;
}

const struct weft__timer *weft__timers_peek(const struct weft__timers *ts)
{
	return ts->n ? &ts->heap[0] : NULL;
}

unsigned weft__timers_fire(struct weft__timers *ts, uint64_t now)
{
	unsigned woke = 0;
	while (ts->n && ts->heap[0].when <= now) {
		struct weft__timer e = ts->heap[0];
		ts->heap[0] = ts->heap[--ts->n];
		if (ts->n)
			sift_down(ts->heap, ts->n, 0);
		if (weft__wake_token(e.task, e.token, e.result))
			woke++;
		else
			ts->n_stale++;
	}
	ts->n_fired += woke;
	return woke;
}

void weft__timers_free(struct weft__timers *ts)
{
	free(ts->heap);
	memset(ts, 0, sizeof(*ts));
}

bool weft__timers_check(const struct weft__timers *ts)
{
	if (ts->n > ts->cap)
		return false;
	for (size_t i = 1; i < ts->n; i++)
		if (before(&ts->heap[i], &ts->heap[(i - 1) / 2]))
			return false;
	return true;
}

const struct weft__timers *weft__timers_here(void)
{
	struct weft__worker *w = weft__worker_here();
	return w ? &w->timers : NULL;
}

int weft__sleep_until(uint64_t when)
{
	struct weft_task *self = weft__current();
	struct weft__wait w;
	int rc = weft__wait_arm(self, &w);
	if (rc < 0)
		return rc;
	/* WEFT_NEVER would mean "no timer": the latest time that is one. */
	return weft__wait_park(self, &w, when == WEFT_NEVER ? WEFT_NEVER - 1 : when, 0);
}
