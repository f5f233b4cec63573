// SPDX-License-Identifier: MIT
/*
 * runtime/internal.h - the task object, the context-switch seam, stacks and
 * the wait protocol, shared by runtime/, scheduler/ and io/.
 *
 * The wait protocol (runtime/wait.c) is the one way a task parks and is
 * woken; sync primitives, join, sleep and I/O (io/io.c) are built on it.  Its
 * invariants are written at the top of wait.c.
 */
#ifndef WEFT_RUNTIME_INTERNAL_H
#define WEFT_RUNTIME_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/queue.h>

#include "weft.h"
#include "runtime/context.h"

struct weft__worker;

/* ---- Tasks ----------------------------------------------------------------- */

/* t->run: where a task is as far as schedulers care (runtime/wait.c). */
enum {
	WEFT__RUNNING = 0,  /* on a CPU, or queued to be */
	WEFT__PARKED = 1,   /* switched out: waiting, or readied and queued
			     * since (wait.c, invariant 4) */
	WEFT__NOTIFIED = 2, /* readied before it finished switching out */
};

/* What the context that resumes after a switch must do with the task that
 * switched out (weft__finish_switch). */
enum {
	WEFT__AFTER_NONE = 0,
	WEFT__AFTER_PARK,  /* commit PARKED, or requeue if already notified */
	WEFT__AFTER_YIELD, /* put on the worker's yield list */
	WEFT__AFTER_EXIT,  /* free the stack, publish the result */
};

/* t->done bits (runtime/task.c): the handle protocol. */
enum {
	WEFT__DONE = 1u << 0,     /* the task has finished */
	WEFT__RELEASED = 1u << 1, /* joined or detached: nobody holds the handle */
	WEFT__JOINER = 1u << 2,   /* a joiner is parked on t->joiner */
	WEFT__JOIN_FREE = 1u << 3,/* the finisher is done touching the joiner */
};

/*
 * Kept to three cache lines (192 bytes, 64-byte aligned in its slab): a
 * million queued tasks are a million cache misses on spawn and again on
 * join, and every extra line costs measurably (32 more bytes took spawn+join
 * from 89 to 120 ns).
 */
struct weft_task {
	struct weft__ctx ctx;        /* saved stack pointer (+ tool state) */
	struct weft__worker *worker; /* where it runs now / ran last */
	_Atomic uint64_t wake;       /* the wait word, see wait.c */
	_Atomic uint32_t run;        /* WEFT__RUNNING / PARKED / NOTIFIED */
	uint8_t after;               /* WEFT__AFTER_*, read by finish_switch */
	uint8_t pinned;
	uint8_t start_home;          /* first run goes to `home` (WEFT_SPAWN_ON) */
	_Atomic bool io_cancel_queued; /* on an owner's cancel queue (io.c) */
	int wake_result;             /* written by the waker that claimed */
	uint32_t stack_size;         /* for the first run */
	uint64_t deadline;           /* absolute, WEFT_NEVER when unset */
	struct weft_task *next;      /* queue / free-list link */

	weft_fn fn;
	void *arg;
	intptr_t result;
	struct weft__stack *stack;   /* NULL until it first runs */
	_Atomic uint32_t done;       /* WEFT__DONE | RELEASED | JOINER ... */
	_Atomic uint32_t live;       /* 1 from spawn until freed (shutdown walk) */
	union {
		/* A task with a handle: whoever joins it. */
		struct {
			struct weft_task *joiner; /* valid while WEFT__JOINER */
			uint64_t joiner_token;
		};
		/* A group's child has no handle, so nobody joins it: the
		 * group's list of running children. */
		LIST_ENTRY(weft_task) glink;
		/* A free object that heads a full batch: the next batch
		 * (task.c). */
		struct weft_task *batch_next;
	};
	uint64_t id;
	struct weft_rt *rt;
	struct weft__worker *home;   /* pinned: its worker; WEFT_SPAWN_ON: where it starts */
	struct weft_group *group;    /* the group it belongs to, or NULL */
	/* The I/O wait in progress (io/io.c): its operation record and the
	 * worker whose ring carries it; written before the wait is armed. */
	_Atomic(void *) io_op;
	_Atomic(struct weft__worker *) io_owner;
	struct weft_task *cnext;     /* cancel-queue link */
	char name[16];               /* as thread names: 15 bytes and a NUL */
} __attribute__((aligned(64)));

/* The task running on this thread, or NULL.  Never inlined: see worker.c on
 * thread-local addresses across switches. */
struct weft_task *weft__current(void);

/* ---- The wait protocol (runtime/wait.c) ------------------------------------
 *
 *   struct weft__wait w;
 *   lock(q); ...
 *   if ((rc = weft__wait_arm(self, &w)) < 0) { unlock(q); return rc; }
 *   enqueue(q, &w); unlock(q);
 *   rc = weft__wait_park(self, &w, WEFT_NEVER, 0);
 *   if (rc was not set by the waker) { lock(q); unlink if still queued; unlock(q); }
 *
 * A waker with a pointer to w does weft__wait_claim(w); only if that returns
 * true may it hand over its data (into w->data) and call
 * weft__wait_ready(w->task, result).  weft__wake_token does both, with no
 * data, for a waker that holds only (task, token): a timer, a canceller.
 */
struct weft__wait {
	struct weft_task *task;
	uint64_t token;           /* which wait of the task this is */
	struct weft__wait *next, *prev; /* links in a primitive's waiter queue */
	void *data;               /* the primitive's payload pointer */
	intptr_t value;           /* passed between waiter and waker: the primitive says how */
	bool queued;              /* on a queue; guarded by the queue's lock */
};

/* Arms a new wait on self.  Returns 0, or -ECANCELED / -ETIMEDOUT (nothing
 * armed) when a cancellation is pending outside a shield or the deadline
 * has passed. */
int weft__wait_arm(struct weft_task *self, struct weft__wait *w);
/* The same for an I/O wait, which cancellation reaches through the ring
 * (io/io.c) rather than by claiming it. */
int weft__wait_arm_io(struct weft_task *self, struct weft__wait *w);
/* Parks until a waker claims w, and returns the waker's result.  If wake_at
 * is not WEFT_NEVER, a timer claims w then with at_result; the task's own
 * deadline also claims it, with -ETIMEDOUT, if earlier. */
int weft__wait_park(struct weft_task *self, struct weft__wait *w, uint64_t wake_at,
		    int at_result);
/* Queues a runnable task: on this thread's worker if it belongs to rt (the
 * LIFO slot if lifo, for a task just woken; else the deque), otherwise
 * through the injection queue.  A task bound to a worker (pinned, or spawned
 * with WEFT_SPAWN_ON and not yet started) goes to that worker: its LIFO slot
 * when woken there, else its inbox.  (scheduler/worker.c) */
void weft__enqueue(struct weft_rt *rt, struct weft_task *t, bool lifo);
/* weft__enqueue(rt, t, true) with the hand-off's case, an empty LIFO slot,
 * decided first and without a stack frame; spawns keep to weft__enqueue,
 * which that test would only slow down. */
void weft__enqueue_woken(struct weft_rt *rt, struct weft_task *t);
/* weft__wait_ready for a task not yet seen PARKED (wait.c). */
void weft__wait_ready_unparked(struct weft_task *t);
/* Claim + ready.  Returns whether this call woke it. */
bool weft__wake_token(struct weft_task *t, uint64_t token, int result);
/* group.c: a group's child has finished (called before its DONE bit). */
void weft__group_child_done(struct weft_task *t);
/* Cancel request: sets the sticky bit and wakes an armed, unshielded wait. */
void weft__task_cancel(struct weft_task *t);

/* Shield bit of the wait word, set and cleared by weft_scope_*. */
void weft__wait_shield(struct weft_task *self, bool on);

/* The wait word: token << WEFT__WAKE_SHIFT | flags. */
#define WEFT__WAKE_ARMED  1ull  /* a wait with this token awaits its claim */
#define WEFT__WAKE_CANCEL 2ull  /* cancellation requested (sticky) */
#define WEFT__WAKE_SHIELD 4ull  /* cancellation not reported now */
#define WEFT__WAKE_IO     8ull  /* only the I/O completion may claim (io.c) */
#define WEFT__WAKE_SHIFT  4

/* A spinlock for waiter queues: short critical sections, no parking. */
static inline void weft__spin_lock(uint32_t *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			weft__cpu_relax();
}
static inline void weft__spin_unlock(uint32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/*
 * What follows is inline because it is the hand-off path: a channel send to
 * a parked receiver is lock, claim, copy, unlock, ready, and calls between
 * them were a measurable part of it (docs/benchmarks.md).
 */

/* Claims w for the caller: true exactly once per armed wait (wait.c,
 * invariant 1). */
static inline bool weft__wait_claim(const struct weft__wait *w)
{
	struct weft_task *t = w->task;
	uint64_t old = atomic_load_explicit(&t->wake, memory_order_relaxed);
	for (;;) {
		if ((old >> WEFT__WAKE_SHIFT) != w->token || !(old & WEFT__WAKE_ARMED))
			return false;
		/* Acquire, pairing with the release of the arm (see
		 * weft__wake_token). */
		if (atomic_compare_exchange_weak_explicit(&t->wake, &old,
							  old & ~WEFT__WAKE_ARMED,
							  memory_order_acquire,
							  memory_order_relaxed))
			return true;
	}
}

/* Intrusive FIFO of struct weft__wait behind weft__waitq (public layout in
 * weft/sync.h).  All three need the queue's lock held. */
static inline void weft__waitq_push(struct weft__waitq *q, struct weft__wait *w)
{
	struct weft__wait *tail = q->tail;
	w->next = NULL;
	w->prev = tail;
	if (tail)
		tail->next = w;
	else
		q->head = w;
	q->tail = w;
	q->n++;
	w->queued = true;
}

static inline void weft__waitq_remove(struct weft__waitq *q, struct weft__wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->tail = w->prev;
	q->n--;
	w->queued = false;
}

/* weft__waitq_remove of the head, which has no prev: a waker pops on
 * every hand-off. */
static inline struct weft__wait *weft__waitq_pop(struct weft__waitq *q)
{
	struct weft__wait *w = q->head;
	if (w) {
		q->head = w->next;
		if (w->next)
			w->next->prev = NULL;
		else
			q->tail = NULL;
		q->n--;
		w->queued = false;
	}
	return w;
}

/* Pops waiters until one is claimed; returns it (claimed, not yet readied) or
 * NULL.  Queue lock held. */
static inline struct weft__wait *weft__waitq_claim_first(struct weft__waitq *q)
{
	struct weft__wait *w;
	while ((w = weft__waitq_pop(q)))
		if (weft__wait_claim(w))
			return w;
	return NULL;
}

/* Makes a claimed task runnable with result; any thread.  Inline, with the
 * race against the task's switch-out in wait.c: a hand-off readies a task
 * that parked long before (wait.c, invariant 4). */
static inline void weft__wait_ready(struct weft_task *t, int result)
{
	t->wake_result = result;
	/* Acquire: its switch-out is complete (pairs with the release CAS in
	 * weft__finish_switch).  wake_result and any hand-over data reach
	 * whoever runs t next through the queue t goes on: the LIFO slot is
	 * this thread's, and every other queue publishes with a release
	 * (deque bottom, queue locks). */
	if (atomic_load_explicit(&t->run, memory_order_acquire) == WEFT__PARKED)
		weft__enqueue_woken(t->rt, t);
	else
		weft__wait_ready_unparked(t);
}

/* The waking halves every primitive shares: release q's lock, then ready w
 * (claimed under it) if not NULL; or, with q's lock held, claim every waiter,
 * release the lock and ready them all with result, in FIFO order. */
static inline void weft__waitq_unlock_ready(struct weft__waitq *q, struct weft__wait *w,
					    int result)
{
	weft__spin_unlock(&q->lock);
	if (w)
		weft__wait_ready(w->task, result);
}
void weft__waitq_wake_all(struct weft__waitq *q, int result);
void weft__waitq_wake_all_by(struct weft__waitq *q, int result,
			     int (*result_of)(const struct weft__wait *w, int result));
/* The blocking half every primitive shares: arms w, queues it on q (whose
 * lock the caller holds and this releases), parks, and on a wake-up that did
 * not come through the queue (cancel, deadline) unlinks w.  Returns the
 * wake result, or -ENOMEM when no timer could be had for the deadline. */
int weft__waitq_block(struct weft__waitq *q, struct weft_task *self, struct weft__wait *w);

#endif
