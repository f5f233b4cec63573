// SPDX-License-Identifier: MIT
/*
 * weft/sync.h - task-aware synchronisation: mutex, condition variable,
 * semaphore, bounded MPMC channel, wait group and one-shot future.
 *
 * Each blocking call parks the calling *task*, never the worker thread, and
 * works across workers.  Blocking calls are suspension points (see weft.h):
 * they return -ECANCELED or -ETIMEDOUT, or -ENOMEM when the deadline's
 * timer cannot be stored (nothing done, as for the other two), and an
 * operation that completed first returns its result.  Mutex, condition variable, semaphore and wait
 * group are plain structs so they can be embedded; initialise them with
 * their *_INIT macro or *_init function.  Their fields are private.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef WEFT_API
#define WEFT_API __attribute__((visibility("default")))
#endif

/* A FIFO list of parked tasks behind a spinlock (private). */
struct weft__waitq {
	uint32_t lock;
	uint32_t n;
	void *head, *tail;
};
#define WEFT__WAITQ_INIT { 0, 0, NULL, NULL }

/* ---- Mutex ----------------------------------------------------------------
 * Fair: unlock hands the mutex straight to the longest-waiting task (FIFO),
 * so no waiter starves; the price is that a running task cannot barge in
 * ahead of a parked one.  Not recursive. */
struct weft_mutex {
	uint32_t state; /* 0 free, 1 held, 2 held with waiters */
	struct weft__waitq q;
};
#define WEFT_MUTEX_INIT { 0, WEFT__WAITQ_INIT }
/* The *_init functions (and the *_INIT initialisers) make a fresh, unheld,
 * waiter-less object.  Any thread, before any task uses it; no failure. */
WEFT_API void weft_mutex_init(struct weft_mutex *m);
/* Returns 0 with m held, or -ECANCELED / -ETIMEDOUT / -ENOMEM without it.
 * Task only. */
WEFT_API int weft_mutex_lock(struct weft_mutex *m);
/* Returns 0 with m held, or -EBUSY.  Task only (any thread if never
 * contended by tasks). */
WEFT_API int weft_mutex_trylock(struct weft_mutex *m);
/* Releases m, held by the caller.  Any thread; never suspends.  Memory
 * holding a mutex may be reused once no task can still be inside
 * weft_mutex_unlock on it (after its users are joined, say): the slow path
 * touches m after another task may already have taken it. */
WEFT_API void weft_mutex_unlock(struct weft_mutex *m);

/* ---- Condition variable ----------------------------------------------------
 * Used with a weft_mutex.  Wake-ups are not spurious, but the predicate may be
 * false again by the time the woken task holds the mutex: wait in a loop. */
struct weft_cond {
	struct weft__waitq q;
};
#define WEFT_COND_INIT { WEFT__WAITQ_INIT }
WEFT_API void weft_cond_init(struct weft_cond *c);
/* Atomically releases m and parks; re-acquires m before returning, in every
 * case (the re-acquisition is shielded).  Returns 0 when notified, or
 * -ECANCELED / -ETIMEDOUT / -ENOMEM.  Task only. */
WEFT_API int weft_cond_wait(struct weft_cond *c, struct weft_mutex *m);
/* Wake one / all waiters.  Any thread. */
WEFT_API void weft_cond_signal(struct weft_cond *c);
WEFT_API void weft_cond_broadcast(struct weft_cond *c);

/* ---- Semaphore (counting, FIFO) ------------------------------------------- */
struct weft_sem {
	uint64_t count;
	struct weft__waitq q;
};
#define WEFT_SEM_INIT(n) { (n), WEFT__WAITQ_INIT }
WEFT_API void weft_sem_init(struct weft_sem *s, uint64_t count);
/* Takes one unit: 0, or -ECANCELED / -ETIMEDOUT / -ENOMEM having taken
 * none.  Task only. */
WEFT_API int weft_sem_acquire(struct weft_sem *s);
/* 0 or -EAGAIN.  Any thread. */
WEFT_API int weft_sem_tryacquire(struct weft_sem *s);
/* Returns one unit (to the first waiter if any).  Any thread. */
WEFT_API void weft_sem_release(struct weft_sem *s);

/* ---- Wait group ------------------------------------------------------------ */
struct weft_wg {
	int64_t count;
	struct weft__waitq q;
};
#define WEFT_WG_INIT { 0, WEFT__WAITQ_INIT }
WEFT_API void weft_wg_init(struct weft_wg *wg);
/* Adds n (may be negative) to the counter; at zero every waiter wakes.
 * Returns 0, or -EINVAL if the counter would go negative (unchanged).  Any
 * thread. */
WEFT_API int weft_wg_add(struct weft_wg *wg, int64_t n);
/* weft_wg_add(wg, -1), with its result.  Any thread. */
WEFT_API int weft_wg_done(struct weft_wg *wg);
/* Waits for the counter to reach zero: 0, or -ECANCELED / -ETIMEDOUT /
 * -ENOMEM.  Task only. */
WEFT_API int weft_wg_wait(struct weft_wg *wg);

/* ---- Bounded MPMC channel ---------------------------------------------------
 * Carries fixed-size messages (elem_size bytes, copied).  Capacity 0 is a
 * rendezvous: a send completes only when a receiver takes the message, as
 * Go's unbuffered channels.  Messages keep FIFO order; waiters are FIFO. */
struct weft_chan;
/* Returns a new channel, or NULL when out of memory (or elem_size is 0).
 * Any thread. */
WEFT_API struct weft_chan *weft_chan_new(size_t elem_size, size_t capacity);
/* Frees ch; no task may be blocked on it.  Messages still buffered are
 * dropped.  Any thread. */
WEFT_API void weft_chan_free(struct weft_chan *ch);
/* Sends a copy of *msg.  Returns 0 once the message is buffered or taken,
 * -EPIPE if ch is closed (msg not sent), or -ECANCELED / -ETIMEDOUT /
 * -ENOMEM (not sent).  Task only. */
WEFT_API int weft_chan_send(struct weft_chan *ch, const void *msg);
/* Receives into *msg.  Returns 0, -EPIPE once ch is closed and empty, or
 * -ECANCELED / -ETIMEDOUT / -ENOMEM (nothing taken).  Task only. */
WEFT_API int weft_chan_recv(struct weft_chan *ch, void *msg);
/* Non-blocking twins: -EAGAIN instead of parking.  Any thread. */
WEFT_API int weft_chan_trysend(struct weft_chan *ch, const void *msg);
WEFT_API int weft_chan_tryrecv(struct weft_chan *ch, void *msg);
/* Closes ch: later sends fail with -EPIPE; receivers drain what is buffered,
 * then get -EPIPE; blocked senders fail with -EPIPE.  Returns 0, or -EPIPE if
 * already closed.  Any thread. */
WEFT_API int weft_chan_close(struct weft_chan *ch);

/* One case of a select: a send of the message at msg on ch, or a receive
 * into msg.  A case whose ch is NULL never goes (Go's nil channel), which
 * turns a case off without rebuilding the array. */
struct weft_chan_case {
	struct weft_chan *ch;
	void *msg;
	int op;     /* WEFT_CHAN_SEND or WEFT_CHAN_RECV */
	int result; /* set in the case that went: 0, or -EPIPE (ch closed) */
};
#define WEFT_CHAN_SEND 1
#define WEFT_CHAN_RECV 2
#define WEFT_CHAN_SELECT_MAX 64

/*
 * Waits until one of the n cases can go, does it, and returns its index,
 * as Go's select: exactly one case goes, and its result is what
 * weft_chan_send or weft_chan_recv would have returned (0, or -EPIPE for a
 * send on a closed channel or a receive from a closed, empty one).  Of
 * several cases that can go at once, one is chosen at random, so none
 * starves.  Returns -ECANCELED / -ETIMEDOUT / -ENOMEM (no case went), or
 * -EINVAL (nothing done) for n == 0 or above WEFT_CHAN_SELECT_MAX, an op
 * that is neither, or one channel in both a send and a receive.  With every
 * ch NULL it waits for its cancellation or deadline.  Task only; a
 * suspension point.
 */
WEFT_API int weft_chan_select(struct weft_chan_case *cases, size_t n);
/* The same without waiting: -EAGAIN when no case can go now.  Any thread. */
WEFT_API int weft_chan_tryselect(struct weft_chan_case *cases, size_t n);

/* ---- One-shot future --------------------------------------------------------
 * Resolved once, from any thread (including threads that are not workers);
 * awaited by tasks.  The Future of the classic async talk. */
struct weft_future;
/* Returns a new unresolved future, or NULL when out of memory.  Any thread. */
WEFT_API struct weft_future *weft_future_new(void);
/* Frees f; no task may be awaiting it.  Any thread. */
WEFT_API void weft_future_free(struct weft_future *f);
/* Stores value and wakes every awaiting task.  Returns 0, or -EALREADY if
 * already resolved (value dropped).  Any thread; never blocks. */
WEFT_API int weft_future_resolve(struct weft_future *f, intptr_t value);
/* Waits for the value: 0 with *value set (value may be NULL), or
 * -ECANCELED / -ETIMEDOUT / -ENOMEM.  Task only. */
WEFT_API int weft_future_await(struct weft_future *f, intptr_t *value);
/* 0 with *value set, or -EAGAIN while unresolved.  Any thread. */
WEFT_API int weft_future_poll(struct weft_future *f, intptr_t *value);

#ifdef __cplusplus
}
#endif

#endif
