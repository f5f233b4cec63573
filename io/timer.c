// SPDX-License-Identifier: MIT
/*
 * timer.c - per-worker timers for weft_sleep and for the deadlines of waits
 * outside io/io.c: a binary min-heap with lazy deletion, swept incrementally.
 * The wait protocol it wakes through is in runtime/wait.c; the worker loop
 * fires it (scheduler/worker.c) and sleeps until its earliest entry
 * (scheduler/park.c).  docs/internals.md, "Timers and deadlines", walks
 * through it; docs/benchmarks.md has the measurements behind the choices.
 *
 * Lazy deletion.  A timer is armed on the worker the task runs on when it
 * parks; the task may then be woken by something else and migrate, so timers
 * are never removed eagerly (that would need the owning worker's
 * cooperation).  An entry names the wait it ends by (task, token): when it
 * fires, weft__wake_token() claims that wait only if it is still the armed
 * one, and a stale entry does nothing.  This is safe because task objects
 * are never returned to the allocator while the runtime lives (task.c).
 *
 * The sweep.  Stale entries must not pile up when many short waits carry
 * long deadlines.  Once the heap has doubled since the last sweep ended, a
 * sweep starts: each add then looks at SWEEP_STEP entries from a cursor and
 * removes the stale ones in place, until the cursor reaches the end.  So the
 * O(n) work is the same as sweeping all at once (paid for by the n adds
 * since the last sweep), but no single add pays more than SWEEP_STEP looks
 * and removals: a one-shot sweep of two million entries stalled its worker
 * for about 100 ms.  An entry that a sift moves from ahead of the cursor to
 * behind it escapes this sweep and is met by the next; that is a few entries
 * per sift path, so the heap still stays within a small multiple of its live
 * entries (tests/io/timer_test.cc checks the bound).
 *
 * Why a binary heap.  At a million entries, adding and firing one timer
 * costs ~450 ns here, nearly all of it cache misses: on the lower levels of
 * the heap as the last entry sifts down from the root, and on the task
 * object the wake-up claims.  A 4-ary heap (half the levels, each sibling
 * group two whole cache lines) and a binary heap with each sibling pair in
 * one line measured the same within this machine's noise, and a throwaway
 * hierarchical timing wheel, faster at 100,000 entries, was no faster at a
 * million and fires late by up to a slot or rescans slots to be exact.  So
 * the simplest of them stays (docs/benchmarks.md, 2026-11-21).
 *
 * Invariants:
 *  1. heap[i].when >= heap[(i - 1) / 2].when for 0 < i < n
 *     (weft__timers_check).
 *  2. n <= cap.  cap is 0 (no array) or a power of two >= MIN_CAP.  After a
 *     fire that popped anything and at the end of a sweep the array is
 *     halved while under a quarter full (down to MIN_CAP; should the smaller
 *     array be refused, the larger stays), so a burst of timers gives its
 *     memory back once it has fired.
 *  3. While `sweeping`, every entry the sweep has not looked at sits at an
 *     index >= sweep_pos, except those sifts have moved behind the cursor
 *     (see above).  Fires may leave sweep_pos > n; the next step then ends
 *     the sweep.  An all-zero struct is a valid empty one (sweep_at 0 reads
 *     as WEFT__TIMERS_SWEEP_MIN), so a worker needs no init call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/timer.h"
#include "runtime/internal.h"
#include "scheduler/internal.h"

#define PARENT(i) (((i) - 1) / 2)
#define MIN_CAP 64
/* Entries a sweep looks at per add: the sweep of n entries ends within
 * n / SWEEP_STEP adds, so the heap grows at most by a quarter meanwhile. */
#define SWEEP_STEP 4

static inline bool before(const struct weft__timer *a, const struct weft__timer *b)
{
	return a->when < b->when;
}

static void sift_up(struct weft__timer *h, size_t i)
{
	struct weft__timer x = h[i];
	while (i > 0) {
		size_t p = PARENT(i);
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

/* Moves the entries to an array of cap entries.  Returns 0 or -ENOMEM
 * (nothing changed). */
static int resize(struct weft__timers *ts, size_t cap)
{
	struct weft__timer *h = realloc(ts->heap, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	ts->heap = h;
	ts->cap = cap;
	return 0;
}

static void maybe_shrink(struct weft__timers *ts)
{
	/* Halve while under a quarter full: what is left has room for as
	 * many adds again before the next growth, so no resize ping-pong at
	 * a boundary; and a burst that fired in one call shrinks at once. */
	size_t cap = ts->cap;
	while (cap > MIN_CAP && ts->n < cap / 4)
		cap /= 2;
	if (cap != ts->cap)
		resize(ts, cap); /* on failure the larger array stays */
}

/* Whether the wait an entry was armed for is still waiting. */
static bool entry_live(const struct weft__timer *e)
{
	/* Relaxed: a stale answer either way is harmless.  Read "live" for a
	 * wait that just ended, the entry stays until it fires or the next
	 * sweep; read "stale" it is: tokens never come back, so a wait that
	 * was not armed with this token at the load never will be. */
	uint64_t w = atomic_load_explicit(&e->task->wake, memory_order_relaxed);
	return (w >> WEFT__WAKE_SHIFT) == e->token && (w & WEFT__WAKE_ARMED);
}

/* Removes heap[i], keeping invariant 1. */
static void remove_at(struct weft__timers *ts, size_t i)
{
	struct weft__timer *h = ts->heap;
	size_t last = --ts->n;
	if (i == last)
		return;
	h[i] = h[last];
	if (i > 0 && before(&h[i], &h[PARENT(i)]))
		sift_up(h, i);
	else
		sift_down(h, ts->n, i);
}

/* One slice of a sweep: up to SWEEP_STEP looks from the cursor. */
static void sweep_step(struct weft__timers *ts)
{
	for (int k = 0; k < SWEEP_STEP; k++) {
		if (ts->sweep_pos >= ts->n) {
			ts->sweeping = false;
			ts->sweep_at = 2 * ts->n > WEFT__TIMERS_SWEEP_MIN ? 2 * ts->n
									 : WEFT__TIMERS_SWEEP_MIN;
			maybe_shrink(ts);
			return;
		}
		if (entry_live(&ts->heap[ts->sweep_pos])) {
			ts->sweep_pos++;
		} else {
			/* Whatever moves into the slot is looked at next. */
			remove_at(ts, ts->sweep_pos);
			ts->n_stale++;
		}
	}
}

int weft__timers_add(struct weft__timers *ts, uint64_t when, struct weft_task *t,
		     uint64_t token, int result)
{
	if (!ts->sweeping && ts->n >= (ts->sweep_at ? ts->sweep_at : WEFT__TIMERS_SWEEP_MIN)) {
		ts->sweeping = true;
		ts->sweep_pos = 0;
		ts->n_sweeps++;
	}
	if (ts->sweeping)
		sweep_step(ts);
	if (ts->n == ts->cap && resize(ts, ts->cap ? 2 * ts->cap : MIN_CAP) < 0)
		return -ENOMEM;
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
	size_t popped = 0;
	while (ts->n && ts->heap[0].when <= now) {
		struct weft__timer e = ts->heap[0];
		remove_at(ts, 0);
		popped++;
		/* A copy: remove_at has given its slot to another entry.
		 * Waking only queues the task; nothing here re-enters ts. */
		if (weft__wake_token(e.task, e.token, e.result))
			woke++;
	}
	ts->n_fired += woke;
	ts->n_stale += popped - woke;
	if (popped)
		maybe_shrink(ts);
	return woke;
}

void weft__timers_free(struct weft__timers *ts)
{
	free(ts->heap);
	memset(ts, 0, sizeof(*ts));
}

bool weft__timers_check(const struct weft__timers *ts)
{
	if (ts->n > ts->cap || (ts->cap && (ts->cap < MIN_CAP || (ts->cap & (ts->cap - 1)))))
		return false;
	for (size_t i = 1; i < ts->n; i++)
		if (before(&ts->heap[i], &ts->heap[PARENT(i)]))
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
