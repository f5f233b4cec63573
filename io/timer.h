// SPDX-License-Identifier: MIT
/*
 * io/timer.h - a worker's pending timers: the wake-ups of weft_sleep and the
 * deadlines of waits outside io/io.c (I/O deadlines are kernel link
 * timeouts; a splice's is also an entry here, which cancels it).  Owner
 * only: a worker's timers are touched by its own thread.  The structure
 * and its invariants are described in io/timer.c.
 *
 * C++ test files may include this header: it has no atomics.
 */
#ifndef WEFT_IO_TIMER_H
#define WEFT_IO_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct weft_task;

struct weft__timer {
	uint64_t when;          /* CLOCK_MONOTONIC ns */
	struct weft_task *task;
	uint64_t token;         /* the wait it ends; stale once the task moved on */
	int result;             /* handed to the task: 0, -ETIMEDOUT, or
				 * WEFT__TIMER_IO_DEADLINE */
};

/* A timer's result that does not wake its task: the deadline of the task's
 * operation on this worker's ring, which the owner then cancels
 * (weft__io_deadline, io/io.c). */
#define WEFT__TIMER_IO_DEADLINE (-0x7fffffff)

/* No sweep for stale entries runs below this many entries. */
#define WEFT__TIMERS_SWEEP_MIN 1024

/* All zero is a valid empty set of timers.  Fields are private to timer.c;
 * tests and benchmarks read n, cap and the counters. */
struct weft__timers {
	struct weft__timer *heap; /* binary min-heap on `when` */
	size_t n, cap;
	size_t sweep_at;        /* a sweep runs when n reaches it (0: SWEEP_MIN) */
	bool mapped;            /* heap is an mmap of cap entries, not malloc'd */
	/* Counters, written by the owner only; read by tests and benchmarks
	 * on the owner's thread. */
	uint64_t n_added;       /* entries added */
	uint64_t n_fired;       /* entries that woke their task */
	uint64_t n_stale;       /* entries dropped unfired: swept, or popped stale */
	uint64_t n_sweeps;      /* sweeps run */
};

/* Adds a timer; may first sweep out the stale entries (O(n), once the
 * heap has doubled since the last sweep).  Returns 0 or -ENOMEM (nothing
 * added). */
int weft__timers_add(struct weft__timers *ts, uint64_t when, struct weft_task *t,
		     uint64_t token, int result);
/* The earliest expiry, or WEFT_NEVER.  No failure path. */
uint64_t weft__timers_next(const struct weft__timers *ts);
/* The entry with the earliest expiry (live or stale), or NULL when empty.
 * Valid until the next call that changes ts. */
const struct weft__timer *weft__timers_peek(const struct weft__timers *ts);
/* Wakes every task whose timer is due at `now`, earliest first, claiming
 * them all before returning; returns how many it woke (stale entries wake
 * nobody).  No failure path. */
unsigned weft__timers_fire(struct weft__timers *ts, uint64_t now);
/* Frees the entries; ts is all zero (empty, reusable) afterwards. */
void weft__timers_free(struct weft__timers *ts);
/* Whether the structure's invariants hold (timer.c's block).  O(n); for
 * assert() and tests. */
bool weft__timers_check(const struct weft__timers *ts);

/* The calling worker's timers, or NULL on a thread that is not a worker.
 * For tests and benchmarks, which read them from a task pinned there. */
const struct weft__timers *weft__timers_here(void);

/*
 * Suspends the calling task until CLOCK_MONOTONIC reaches `when` (ns):
 * weft_sleep with an absolute time.  Returns 0 once it has, -ETIMEDOUT when
 * the task's deadline comes first, -ECANCELED when cancelled, -ENOMEM when
 * the timer cannot be stored.  Task only; a suspension point.
 */
int weft__sleep_until(uint64_t when);

#ifdef __cplusplus
}
#endif

#endif
