// SPDX-License-Identifier: MIT
/*
 * worker.c - the worker loop: which task runs next, how a task hands the CPU
 * to the next one, and what happens to the task that left.
 *
 * A worker is a thread with its own stack (w->ctx), its run queues and its
 * io_uring ring.  Tasks switch *directly* to the next ready task of their
 * worker (weft__schedule), so a hand-off between two tasks is one switch, not
 * two; only when nothing is ready locally does a task switch back to the
 * worker's own stack, where the loop looks further (injection queue, timers,
 * stealing) and finally parks in the ring.
 *
 * Where the next task comes from, in order (next_local):
 *   1. every WEFT__GLOBAL_INTERVAL ticks: the injection queue, then the
 *      timers, the completions, the I/O queue, the yield list and the
 *      inbox, so none of them starves behind a busy local queue;
 *   2. the LIFO slot: the task woken last, run at once for message-passing
 *      latency, at most WEFT__LIFO_MAX times in a row if the deque has work;
 *   3. the deque's owner end (LIFO: spawned children run depth-first);
 *   4. the I/O queue: tasks woken by the completions this worker reaped
 *      and the timers it fired, oldest first.  These come in batches, and
 *      a LIFO order would let each batch overtake the tasks of the one
 *      before (under load the same connections would be served again and
 *      again while others wait) and run two timers due together in the
 *      wrong order.  Bound tasks woken in a batch queue here too, in
 *      their place, and thieves pass them by;
 *   5. the yield list, then the inbox (tasks bound to this worker: pinned,
 *      or spawned with WEFT_SPAWN_ON and not yet started);
 * and from the loop only: the injection queue, due timers, then stealing
 * half of a random victim's deque, or of its I/O queue.
 *
 * After every switch the context that resumes calls weft__finish_switch on
 * the task that left (its `after` field): commit a park, queue a yield, or
 * release a finished task's stack.  Doing it there, not before the switch,
 * is what makes it safe: the old stack is no longer in use.
 *
 * Thread-local storage: tasks migrate, so code on a task stack must not keep
 * the address of a thread-local across a switch.  Here only tls_here() reads
 * the TLS variable, and only inside weft__worker_here(), weft__current(),
 * weft__enqueue() and weft__enqueue_woken(), which are never inlined, never
 * switch, and are called afresh after every switch; a task finds its worker
 * in self->worker, which whoever resumed it set.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/internal.h"
#include "runtime/sanitizer.h"
#include "scheduler/internal.h"

/* initial-exec: a plain %fs-relative load even in the shared library, where
 * the default model would call __tls_get_addr on every access. */
static __thread struct weft__worker *tls_worker __attribute__((tls_model("initial-exec")));

/* The one read of tls_worker, inlined only into the noinline functions
 * below, none of which switches. */
static inline __attribute__((always_inline)) struct weft__worker *tls_here(void)
{
	/* The asm keeps the compiler from caching the TLS address in a caller
	 * even across an inlined call. */
	struct weft__worker *w = tls_worker;
	__asm__ volatile("" : "+r"(w));
	return w;
}

__attribute__((noinline)) struct weft__worker *weft__worker_here(void)
{
	return tls_here();
}

/* Reads the TLS itself rather than calling weft__worker_here: every
 * blocking call starts here, and a call less is measurable on the channel
 * hand-off (docs/benchmarks.md). */
__attribute__((noinline)) struct weft_task *weft__current(void)
{
	struct weft__worker *w = tls_here();
	return w ? atomic_load_explicit(&w->current, memory_order_relaxed) : NULL;
}

/* ---- Queues ------------------------------------------------------------------ */

static void push_deque(struct weft__worker *w, struct weft_task *t)
{
	if (weft__deque_push(&w->deque, t) < 0) {
		/* Out of memory for a bigger array: the global queue is a list. */
		weft__tqueue_push(&w->rt->inject, t);
	}
	if (w->rt->nworkers > 1)
		weft__idle_notify(w->rt);
}

static void push_inbox(struct weft__worker *home, struct weft_task *t)
{
	weft__tqueue_push(&home->inbox, t);
	if (home != weft__worker_here())
		weft__idle_wake_worker(home->rt, home);
}

/* Queues runnable t on worker w (the caller's own).  lifo: t was just woken
 * and goes to the LIFO slot; a spawned task goes to the deque. */
static void push_local(struct weft__worker *w, struct weft_task *t, bool lifo)
{
	/* Tasks bound to a worker (pinned, or not yet started on the one they
	 * were spawned onto) never enter a stealable deque. */
	bool bound = weft__task_bound(t);
	if (bound && t->home != w) {
		push_inbox(t->home, t);
		return;
	}
	if (lifo && w->batch_wake) {
		/* Woken by a completion or a timer: behind those woken
		 * before it, bound or not.  Thieves pass the bound ones by
		 * (steal_ioq), so only the others are news to idle workers. */
		if (bound)
			weft__stat_add(&w->ioq_bound, 1);
		weft__tqueue_push(&w->ioq, t);
		if (!bound && w->rt->nworkers > 1)
			weft__idle_notify(w->rt);
		return;
	}
	if (lifo) {
		/* The LIFO slot is never stolen from: fine for bound tasks. */
		struct weft_task *old = w->lifo;
		w->lifo = t;
		if (!old)
			return;
		t = old;
		bound = weft__task_bound(t);
	}
	if (bound)
		push_inbox(w, t);
	else
		push_deque(w, t);
}

__attribute__((noinline)) void weft__enqueue(struct weft_rt *rt, struct weft_task *t, bool lifo)
{
	/* Every wake-up comes through here: the TLS read inline, as in
	 * weft__current.  noinline keeps it out of any caller that switches. */
	struct weft__worker *w = tls_here();
	if (w && w->rt == rt) {
		push_local(w, t, lifo);
	} else {
		weft__outside_enter(rt);
		if (weft__task_bound(t)) {
			push_inbox(t->home, t);
		} else {
			weft__tqueue_push(&rt->inject, t);
			weft__idle_notify(rt);
		}
		weft__outside_leave(rt);
	}
}

__attribute__((noinline)) void weft__enqueue_woken(struct weft_rt *rt, struct weft_task *t)
{
	struct weft__worker *w = tls_here(); /* as in weft__enqueue */
	/* The hand-off's case, push_local's first choice made here: a task
	 * woken on a worker of its runtime into an empty LIFO slot.  Kept
	 * free of calls but the last, so it needs no stack frame: that saved
	 * a dozen instructions of a channel hand-off's ~350. */
	if (w && w->rt == rt && !w->lifo && !w->batch_wake && !weft__task_bound(t)) {
		w->lifo = t;
		return;
	}
	weft__enqueue(rt, t, true);
}

/* Wakes the tasks whose timers are due, onto the I/O queue in deadline
 * order; returns how many. */
static unsigned fire_timers(struct weft__worker *w)
{
	w->batch_wake = true;
	unsigned n = weft__timers_fire(&w->timers, weft_now());
	w->batch_wake = false;
	return n;
}

/* The oldest task of this worker's I/O queue, or NULL. */
static struct weft_task *pop_ioq(struct weft__worker *w)
{
	struct weft_task *t = weft__tqueue_pop(&w->ioq);
	if (t && weft__task_bound(t))
		weft__stat_add(&w->ioq_bound, (uint64_t)-1);
	return t;
}

/* The next task from this worker's own queues, or NULL.  Runs on task stacks
 * too, so it never blocks. */
static struct weft_task *next_local(struct weft__worker *w)
{
	struct weft_task *t;
	/* A countdown rather than tick % interval: no division per switch. */
	if (--w->tick == 0) {
		w->tick = WEFT__GLOBAL_INTERVAL;
		if ((t = weft__tqueue_pop(&w->rt->inject)))
			return t;
		if (w->timers.n)
			fire_timers(w);
		/* A submission point: a busy worker's SQEs and completions wait
		 * at most one interval, and so do the requests other threads
		 * leave its buffer ring and streams (buffers handed back, a
		 * stream to resume or close) and its receives waiting for a
		 * buffer: none of those is an operation in flight. */
		struct weft__bufs *b = &w->bufs;
		if (w->io_inflight || io_uring_sq_ready(&w->ring) ||
		    atomic_load_explicit(&w->io_cancels.n, memory_order_relaxed) ||
		    atomic_load_explicit(&b->has_ret, memory_order_relaxed) ||
		    atomic_load_explicit(&b->has_asked, memory_order_relaxed) ||
		    atomic_load_explicit(&b->nstarved, memory_order_relaxed))
			weft__io_poll(w, false);
		if ((t = pop_ioq(w)) || (t = weft__tlist_pop(&w->yielded)) ||
		    (t = weft__tqueue_pop(&w->inbox)))
			return t;
	}
	if (w->lifo) {
		/* Past the cap, the deque gets a turn if it has work; if not,
		 * the count starts over, so the deque is looked at once per
		 * WEFT__LIFO_MAX runs rather than on every one. */
		bool take = w->lifo_runs < WEFT__LIFO_MAX;
		if (!take && weft__deque_size(&w->deque) == 0) {
			take = true;
			w->lifo_runs = 0;
		}
		if (take) {
			t = w->lifo;
			w->lifo = NULL;
			w->lifo_runs++;
			return t;
		}
	}
	w->lifo_runs = 0;
	if ((t = weft__deque_pop(&w->deque)))
		return t;
	if ((t = pop_ioq(w)))
		return t;
	if ((t = weft__tlist_pop(&w->yielded)))
		return t;
	return weft__tqueue_pop(&w->inbox);
}

/* Steals half of what one victim's I/O queue holds that may migrate (see
 * the top); returns one task to run and keeps the rest in our deque. */
static struct weft_task *steal_ioq(struct weft__worker *w, struct weft__worker *v)
{
	uint64_t want = (weft__ioq_stealable(v) + 1) / 2;
	struct weft__tlist got = {NULL, NULL};
	if (!want)
		return NULL;
	weft__stat_add(&w->n_steals, weft__tqueue_steal(&v->ioq, want, &got));
	struct weft_task *first = weft__tlist_pop(&got), *x;
	while ((x = weft__tlist_pop(&got)))
		if (weft__deque_push(&w->deque, x) < 0)
			weft__tqueue_push(&w->rt->inject, x);
	return first;
}

/* Steals half of one victim's deque, or else of its I/O queue; returns one
 * task to run and keeps the rest in our deque. */
static struct weft_task *steal_work(struct weft__worker *w)
{
	struct weft_rt *rt = w->rt;
	unsigned n = rt->nworkers;
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	unsigned start = (unsigned)(w->rng % n);
	for (unsigned i = 0; i < n; i++) {
		struct weft__worker *v = rt->workers[(start + i) % n];
		if (v == w)
			continue;
		int64_t want = (weft__deque_size(&v->deque) + 1) / 2;
		struct weft_task *first = NULL;
		int aborts = 0;
		while (want > 0) {
			void *x = weft__deque_steal(&v->deque);
			if (x == WEFT__DEQUE_ABORT) {
				if (++aborts > 8)
					break;
				continue;
			}
			if (!x)
				break;
			want--;
			weft__stat_inc(&w->n_steals);
			if (!first)
				first = x;
			else if (weft__deque_push(&w->deque, x) < 0)
				weft__tqueue_push(&rt->inject, x);
		}
		if (first || (first = steal_ioq(w, v)))
			return first;
	}
	return NULL;
}

/* ---- Switching ----------------------------------------------------------------- */

/* Makes t the running task of w.  Returns false if t could not start (no
 * stack: it has finished with -ENOMEM) and another must be picked. */
static inline bool prepare_run(struct weft__worker *w, struct weft_task *t)
{
	if (__builtin_expect(!t->ctx.sp, 0) && !weft__task_prepare(w, t))
		return false;
	t->worker = w;
	atomic_store_explicit(&t->run, WEFT__RUNNING, memory_order_relaxed);
	/* Release: the stall watchdog reads t's id and name (rt.c). */
	atomic_store_explicit(&w->current, t, memory_order_release);
	weft__stat_inc(&w->n_switches);
	return true;
}

void weft__finish_switch(struct weft__worker *w, struct weft_task *prev)
{
	if (!prev)
		return;
	switch (prev->after) {
	case WEFT__AFTER_PARK: {
		uint32_t exp = WEFT__RUNNING;
		/* Release: everything prev did before parking is visible to the
		 * waker that sees PARKED (pairs with its acquire load, or its
		 * acq_rel exchange, in weft__wait_ready); acquire on failure: its
		 * wake_result. */
		if (!atomic_compare_exchange_strong_explicit(&prev->run, &exp, WEFT__PARKED,
							     memory_order_acq_rel,
							     memory_order_acquire))
			push_local(w, prev, true);
		break;
	}
	case WEFT__AFTER_YIELD:
		weft__tlist_push(&w->yielded, prev);
		break;
	case WEFT__AFTER_EXIT:
		weft__task_complete(w, prev);
		break;
	}
}

void weft__schedule(struct weft_task *self)
{
	struct weft__worker *w = self->worker;
	struct weft_task *next;
	while ((next = next_local(w)) && !prepare_run(w, next))
		;
	struct weft__ctx *to;
	if (next) {
		to = &next->ctx;
	} else {
		atomic_store_explicit(&w->current, NULL, memory_order_relaxed);
		to = &w->ctx;
	}
	struct weft_task *prev =
		weft__ctx_switch(&self->ctx, to, self, self->after == WEFT__AFTER_EXIT);
	/* Resumed, perhaps on another worker: self->worker was set by it. */
	weft__finish_switch(self->worker, prev);
}

static void run_task(struct weft__worker *w, struct weft_task *t)
{
	if (!prepare_run(w, t))
		return;
	struct weft_task *prev = weft__ctx_switch(&w->ctx, &t->ctx, NULL, false);
	weft__finish_switch(w, prev);
}

/* ---- The loop -------------------------------------------------------------------- */

static struct weft_task *find_work(struct weft__worker *w)
{
	struct weft_task *t;
	if ((t = next_local(w)))
		return t;
	if ((t = weft__tqueue_pop(&w->rt->inject)))
		return t;
	if (w->timers.n && fire_timers(w) && (t = next_local(w)))
		return t;
	if (w->rt->nworkers > 1 && weft__idle_start_search(w->rt, w))
		return steal_work(w);
	return NULL;
}

/* Whether anything has been queued for this worker since it last looked. */
static bool local_work(struct weft__worker *w)
{
	return w->lifo || weft__tqueue_len(&w->inbox) ||
	       weft__deque_size(&w->deque) > 0 || weft__tqueue_len(&w->ioq) ||
	       weft__tqueue_len(&w->rt->inject);
}

/*
 * Before parking, poll for rt->spin_ns (WEFT__SPIN_NS by default).  Work often arrives within
 * microseconds of a worker running dry (the reply to a message it just sent,
 * a child its neighbour spawns), and a worker that has not gone to sleep
 * needs no syscall to be woken: the waker only queues.  The spin is bounded
 * so an idle runtime costs nothing after it.
 */
static struct weft_task *spin_for_work(struct weft__worker *w)
{
	if (!w->rt->spin_ns)
		return NULL;
	uint64_t until = weft_now() + w->rt->spin_ns;
	for (unsigned i = 1;; i++) {
		if (local_work(w) || (i & 63) == 0) {
			struct weft_task *t = find_work(w);
			if (t || weft_now() >= until ||
			    atomic_load_explicit(&w->rt->exit_workers, memory_order_relaxed))
				return t;
		}
		weft__cpu_relax();
	}
}

static void worker_loop(struct weft__worker *w)
{
	struct weft_rt *rt = w->rt;
	while (!atomic_load_explicit(&rt->exit_workers, memory_order_acquire)) {
		struct weft_task *t = find_work(w);
		if (!t) {
			/* Out of ready tasks: the end of a scheduling round, so
			 * hand the kernel what it has been given. */
			weft__io_poll(w, true);
			t = find_work(w);
		}
		/* With operations in flight their completions come through
		 * the ring, which parking waits on: no point polling. */
		if (!t && !w->io_inflight)
			t = spin_for_work(w);
		if (w->searching)
			weft__idle_stop_search(rt, w, t != NULL);
		if (t) {
			run_task(w, t);
			continue;
		}
		if (weft__idle_sleep(rt, w)) {
			uint64_t next = weft__timers_next(&w->timers);
			uint64_t now = next == WEFT_NEVER ? 0 : weft_now();
			weft__park(w, next == WEFT_NEVER ? WEFT_NEVER : next > now ? next - now : 0);
			weft__idle_wake(rt, w);
		}
	}
}

void *weft__worker_main(void *arg)
{
	struct weft__worker *w = arg;
	tls_worker = w;
	weft__ctx_on_thread(&w->ctx);
	weft__fault_thread_init();
	worker_loop(w);
	weft__fault_thread_fini();
	/* Tasks abandoned at shutdown are freed by rt.c; drop our caches. */
	weft__stack_pool_drain(&w->stacks);
	tls_worker = NULL;
	return NULL;
}
