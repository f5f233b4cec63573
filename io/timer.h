// SPDX-License-Identifier: MIT
/*
 * io/timer.h - a worker's pending timers: a binary min-heap of
 * (when, task, wait token, result) entries, owner only.
 */
#ifndef WEFT_IO_TIMER_H
#define WEFT_IO_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct weft_task;

struct weft__timer {
	uint64_t when;          /* CLOCK_MONOTONIC ns */
	struct weft_task *task;
	uint64_t token;         /* the wait it ends; stale once the task moved on */
	int result;             /* handed to the task: 0 or -ETIMEDOUT */
};

struct weft__timers {
	struct weft__timer *heap;
	size_t n, cap;
	size_t sweep_at;        /* size at which stale entries are swept out */
};

/* Adds a timer.  Returns 0 or -ENOMEM. */
int weft__timers_add(struct weft__timers *ts, uint64_t when, struct weft_task *t,
		     uint64_t token, int result);
/* The earliest expiry, or WEFT_NEVER. */
uint64_t weft__timers_next(const struct weft__timers *ts);
/* Wakes every task whose timer is due at `now`; returns how many it woke. */
unsigned weft__timers_fire(struct weft__timers *ts, uint64_t now);
void weft__timers_free(struct weft__timers *ts);

#endif
