// SPDX-License-Identifier: MIT
/*
 * timer.c - per-worker timers for weft_sleep and for the deadlines of waits
 * outside io/io.c: a binary min-heap with lazy deletion and sweeps.
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
 * long deadlines, so once the heap has doubled since the last sweep, a sweep
 * drops the stale ones and rebuilds the heap: O(n), paid for by the n adds
 * since the last one, the bargain Go's timer heaps make too.  Its cost is
 * one cache miss per entry on the entry's task object, overlapped by
 * prefetching.  It stalls the worker while it runs: about 25 ms for two
 * million entries, a million of them live, on the test machine.  A sweep
 * spread over the adds (a cursor, four looks per add, stale entries removed
 * in place) was tried and measured worse: removing an entry from the middle
 * sifts another down through the cold lower levels, which cost more per
 * entry than the sweep it replaced, and the heap it lets grow meanwhile
 * needed a bigger array.  Marking stale entries a few per add and compacting
 * at once would roughly halve the stall (the rebuild is about a third of it);
 * not done yet.
 *
 * Memory.  The array doubles when full and is halved, after a fire and after
 * a sweep, while under a quarter full, so a burst of timers gives its memory
 * back once it has fired.  Arrays of BIG_BYTES and more are mapped by hand
 * and resized with mremap, which moves pages instead of copying them:
 * growing a 64 MB array with realloc stalled the worker for over 20 ms.
 *
 * Why a binary heap.  At a million entries, adding and firing one timer
 * costs ~420 ns here (weft-microbench timers), nearly all of it cache
 * misses: on the lower levels of the heap as the last entry sifts down from
 * the root, and on the task object the wake-up claims.  A 4-ary heap and a
 * binary heap with each sibling pair in one cache line measured the same
 * within this machine's noise.  A throwaway hierarchical timing wheel was
 * faster on its own (2.5x at 100,000 entries, 1.3x at a million), but in
 * the runtime the heap is a small part of a sleep: under 4% of the CPU with
 * 100,000 sleepers keeping a worker busy.  The heap fires in order, exactly
 * at `when`, and knows its next expiry exactly, which is what the worker
 * sleeps until; a wheel fires late by up to a slot or rescans slots for
 * that.  So the simplest of them stays.
 *
 * Invariants:
 *  1. heap[i].when >= heap[(i - 1) / 2].when for 0 < i < n
 *     (weft__timers_check).
 *  2. n <= cap.  cap is 0 (no array) or a power of two >= MIN_CAP.  After a
 *     fire that popped anything and after a sweep, n >= cap / 4 or cap ==
 *     MIN_CAP, unless the smaller array was refused.
 *  3. mapped == (cap * sizeof(entry) >= BIG_BYTES): heap is then an mmap
 *     of exactly cap entries, else malloc'd (NULL when cap is 0).  A
 *     refused resize changes nothing.
 *  4. An all-zero struct is a valid empty one (sweep_at 0 reads as
 *     WEFT__TIMERS_SWEEP_MIN), so a worker needs no init call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io/timer.h"
#include "runtime/internal.h"
#include "scheduler/internal.h"

#define PARENT(i) (((i) - 1) / 2)
#define MIN_CAP 64
/* Arrays this big are mapped by hand, to grow and shrink with mremap. */
#define BIG_BYTES (1u << 20)
/* How far ahead of its look the sweep prefetches a task's wait word. */
#define PREFETCH 16

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
	size_t old_bytes = ts->cap * sizeof(*ts->heap), bytes = cap * sizeof(*ts->heap);
	void *p;
	if (bytes >= BIG_BYTES) {
		/* mremap moves the pages, not the bytes: growing a big array
		 * costs no copy, and its new pages fault in one at a time as
		 * the heap reaches them. */
		if (ts->mapped)
			p = mremap(ts->heap, old_bytes, bytes, MREMAP_MAYMOVE);
		else
			p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		if (!ts->mapped) {
			if (ts->n)
				memcpy(p, ts->heap, ts->n * sizeof(*ts->heap));
			free(ts->heap);
		}
		ts->mapped = true;
	} else if (ts->mapped) {
		/* Shrinking below the line: n < cap / 4, a small copy. */
		if (!(p = malloc(bytes)))
			return -ENOMEM;
		memcpy(p, ts->heap, ts->n * sizeof(*ts->heap));
		munmap(ts->heap, old_bytes);
		ts->mapped = false;
	} else if (!(p = realloc(ts->heap, bytes))) {
		return -ENOMEM;
	}
	ts->heap = p;
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

/* Drops every stale entry and restores the heap (Floyd's bottom-up build). */
static void sweep(struct weft__timers *ts)
{
	struct weft__timer *h = ts->heap;
	size_t j = 0, n = ts->n;
	for (size_t i = 0; i < n; i++) {
		/* Each look misses the cache on a task object: ask for the one
		 * PREFETCH entries ahead now, so that several are in flight. */
		if (i + PREFETCH < n)
			__builtin_prefetch(&h[i + PREFETCH].task->wake);
		if (entry_live(&h[i]))
			h[j++] = h[i];
	}
	ts->n_stale += n - j;
	ts->n_sweeps++;
	ts->n = j;
	for (size_t i = j / 2; i-- > 0;)
		sift_down(h, j, i);
	ts->sweep_at = 2 * j > WEFT__TIMERS_SWEEP_MIN ? 2 * j : WEFT__TIMERS_SWEEP_MIN;
	maybe_shrink(ts);
}

int weft__timers_add(struct weft__timers *ts, uint64_t when, struct weft_task *t,
		     uint64_t token, int result)
{
	if (ts->n >= (ts->sweep_at ? ts->sweep_at : WEFT__TIMERS_SWEEP_MIN))
		sweep(ts);
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
		ts->heap[0] = ts->heap[--ts->n];
		if (ts->n)
			sift_down(ts->heap, ts->n, 0);
		popped++;
		/* Waking only queues the task, and a cancel only an SQE;
		 * nothing here re-enters ts. */
		if (e.result == WEFT__TIMER_IO_DEADLINE ? weft__io_deadline(e.task, e.token)
							: weft__wake_token(e.task, e.token, e.result))
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
	if (ts->mapped)
		munmap(ts->heap, ts->cap * sizeof(*ts->heap));
	else
		free(ts->heap);
	memset(ts, 0, sizeof(*ts));
}

bool weft__timers_check(const struct weft__timers *ts)
{
	if (ts->n > ts->cap || (ts->cap && (ts->cap < MIN_CAP || (ts->cap & (ts->cap - 1)))))
		return false;
	if (ts->mapped != (ts->cap * sizeof(*ts->heap) >= BIG_BYTES))
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
