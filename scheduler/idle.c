// SPDX-License-Identifier: MIT
/*
 * idle.c - which workers search for work and which sleep, and who wakes
 * whom, so that work is never stranded and idle workers do not stampede.
 *
 * rt->idle_state packs two counters: searching workers (low 32 bits) and
 * awake workers (high 32 bits).  Sleepers' indices sit in rt->sleepers
 * (idle_lock).  The protocol follows Tokio's idle.rs and Go's spinning Ms:
 *
 *  1. Work is published (a deque push, an injection) and then
 *     weft__idle_notify runs: a seq_cst fence, then a look at idle_state.
 *     If some worker is searching it will find the work; if none sleeps
 *     there is nobody to wake.  Otherwise one sleeper is woken, counted as
 *     awake and searching on its behalf (so a burst of pushes wakes one
 *     worker, not all).
 *  2. A worker out of local work may search (steal) only while fewer than
 *     half the workers search (weft__idle_start_search; the check and the
 *     increment are separate, so the bound may be overshot by a racing
 *     worker or two: it limits contention, correctness does not need it).
 *  3. A searcher that finds work stops searching; if it was the last
 *     searcher it wakes a successor, because the work it found may have
 *     come with more that nobody is looking for (weft__idle_stop_search).
 *  4. A worker that goes to sleep first registers as a sleeper with a
 *     seq_cst RMW of idle_state, then looks at every queue once more
 *     (recheck); if it finds anything it takes itself off the sleeper list
 *     again (weft__idle_wake) and goes back to look.  Between 1 and 4
 *     there is a store->load pair on each side (queue then idle_state;
 *     idle_state then queue), each separated by a seq_cst fence or RMW, so
 *     at least one side sees the other: no lost wake-up.
 */
#include <stdlib.h>

#include "scheduler/internal.h"

#define SEARCH_ONE 1ull
#define AWAKE_ONE (1ull << 32)
#define N_SEARCHING(s) ((uint32_t)(s))
#define N_AWAKE(s) ((uint32_t)((s) >> 32))

static void wake_locked_pop(struct weft_rt *rt, struct weft__worker **out)
{
	unsigned i = rt->sleepers[--rt->n_sleepers];
	struct weft__worker *v = rt->workers[i];
	/* v reads this under idle_lock in weft__idle_wake; it starts out
	 * searching, counted by the caller. */
	atomic_store_explicit(&v->sleeping, false, memory_order_relaxed);
	*out = v;
}

void weft__idle_notify(struct weft_rt *rt)
{
	/* Orders the caller's queue store before the idle_state load (step 1
	 * of the protocol); pairs with the seq_cst RMW in weft__idle_sleep. */
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t s = atomic_load_explicit(&rt->idle_state, memory_order_seq_cst);
	if (N_SEARCHING(s) != 0 || N_AWAKE(s) == rt->nworkers)
		return;
	struct weft__worker *v = NULL;
	pthread_mutex_lock(&rt->idle_lock);
	s = atomic_load_explicit(&rt->idle_state, memory_order_relaxed);
	if (N_SEARCHING(s) == 0 && rt->n_sleepers) {
		atomic_fetch_add_explicit(&rt->idle_state, SEARCH_ONE + AWAKE_ONE,
					  memory_order_seq_cst);
		wake_locked_pop(rt, &v);
	}
	pthread_mutex_unlock(&rt->idle_lock);
	if (v)
		weft__unpark(v);
}

bool weft__idle_start_search(struct weft_rt *rt, struct weft__worker *w)
{
	if (w->searching)
		return true;
	uint64_t s = atomic_load_explicit(&rt->idle_state, memory_order_relaxed);
	if (2 * N_SEARCHING(s) >= rt->nworkers)
		return false;
	atomic_fetch_add_explicit(&rt->idle_state, SEARCH_ONE, memory_order_seq_cst);
	w->searching = true;
	return true;
}

void weft__idle_stop_search(struct weft_rt *rt, struct weft__worker *w, bool found)
{
	w->searching = false;
	uint64_t prev = atomic_fetch_sub_explicit(&rt->idle_state, SEARCH_ONE,
						  memory_order_seq_cst);
	if (found && N_SEARCHING(prev) == 1)
		weft__idle_notify(rt);
}

/* Whether any queue another worker could serve us from has work. */
static bool work_visible(struct weft_rt *rt, struct weft__worker *self)
{
	if (weft__tqueue_len(&rt->inject))
		return true;
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct weft__worker *v = rt->workers[i];
		if (v != self && (weft__deque_size(&v->deque) > 0 || weft__ioq_stealable(v)))
			return true;
	}
	return false;
}

bool weft__idle_sleep(struct weft_rt *rt, struct weft__worker *w)
{
	pthread_mutex_lock(&rt->idle_lock);
	rt->sleepers[rt->n_sleepers++] = w->index;
	atomic_store_explicit(&w->sleeping, true, memory_order_relaxed);
	/* Seq_cst RMW: step 4's store, ordered before the recheck below. */
	atomic_fetch_sub_explicit(&rt->idle_state, AWAKE_ONE, memory_order_seq_cst);
	pthread_mutex_unlock(&rt->idle_lock);
	atomic_thread_fence(memory_order_seq_cst);
	if (work_visible(rt, w) || weft__deque_size(&w->deque) > 0 || w->lifo ||
	    weft__tqueue_len(&w->inbox) || weft__tqueue_len(&w->ioq)) {
		weft__idle_wake(rt, w);
		return false;
	}
	return true;
}

void weft__idle_wake(struct weft_rt *rt, struct weft__worker *w)
{
	pthread_mutex_lock(&rt->idle_lock);
	if (atomic_load_explicit(&w->sleeping, memory_order_relaxed)) {
		/* Woken by a timer, a pinned task or our own recheck: still
		 * listed, so take ourselves off. */
		for (unsigned i = 0; i < rt->n_sleepers; i++)
			if (rt->sleepers[i] == w->index) {
				rt->sleepers[i] = rt->sleepers[--rt->n_sleepers];
				break;
			}
		atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
		atomic_fetch_add_explicit(&rt->idle_state, AWAKE_ONE, memory_order_seq_cst);
	} else {
		/* A notifier took us off the list and counted us as awake and
		 * searching (wake_locked_pop). */
		w->searching = true;
	}
	pthread_mutex_unlock(&rt->idle_lock);
}

void weft__idle_wake_worker(struct weft_rt *rt, struct weft__worker *v)
{
	(void)rt;
	/* A pinned task for v: v must run it itself, so wake v whether or not
	 * others search.  v takes itself off the sleeper list when it wakes. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&v->sleeping, memory_order_relaxed))
		weft__unpark(v);
}

void weft__idle_wake_all(struct weft_rt *rt)
{
	for (unsigned i = 0; i < rt->nworkers; i++)
		weft__unpark(rt->workers[i]);
}
