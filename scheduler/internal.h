// SPDX-License-Identifier: MIT
/*
 * scheduler/internal.h - the runtime and worker objects, and the seams
 * between the scheduler's files: worker.c (the loop and the choice of the
 * next task), deque.c (work stealing), inject.c (the global queue), idle.c
 * (who searches, who sleeps), park.c (sleeping in the ring), rt.c (start and
 * shutdown).
 */
#ifndef WEFT_SCHEDULER_INTERNAL_H
#define WEFT_SCHEDULER_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "io/internal.h"
#include "io/timer.h"
#include "runtime/internal.h"
#include "scheduler/deque.h"

/* Every how many scheduling ticks a worker looks past its LIFO slot and
 * deque (the injection queue, due timers, its ring, its I/O queue, its
 * yield list, its inbox: next_local in worker.c).  Prime, as Go's 61, so it
 * does not beat in step with a periodic workload.  See docs/benchmarks.md
 * for how it was measured. */
#ifndef WEFT__GLOBAL_INTERVAL
#define WEFT__GLOBAL_INTERVAL 61
#endif
/* How long a worker out of work polls before it parks (worker.c), unless
 * weft_opts.idle_spin_ns says otherwise. */
#define WEFT__SPIN_NS (50 * WEFT_USEC)
/* Most tasks in a row taken from the LIFO slot before the deque gets a turn. */
#define WEFT__LIFO_MAX 3

/* A plain list of tasks linked through t->next. */
struct weft__tlist {
	struct weft_task *head, *tail;
};

/* A locked FIFO any thread may push to (inject.c). */
struct weft__tqueue {
	uint32_t lock;
	_Atomic uint64_t n;
	struct weft__tlist list;
};

struct weft__worker {
	struct weft__ctx ctx;          /* the thread's own stack: the worker loop */
	/* Running task, NULL in the loop; written by the owner, read by the
	 * stall watchdog. */
	_Atomic(struct weft_task *) current;
	struct weft_rt *rt;
	unsigned index;

	/* Local run queues, owner only except the deque's steal end. */
	struct weft_task *lifo;        /* the task woken last: runs next */
	unsigned lifo_runs;            /* consecutive LIFO runs */
	uint32_t tick;                 /* counts down to the global check */
	struct weft__tlist yielded;    /* FIFO of tasks that called weft_yield */
	struct weft__deque deque;

	/* Tasks only this worker may run: pinned ones, and WEFT_SPAWN_ON ones
	 * before their first run. */
	struct weft__tqueue inbox;

	struct weft__stack_pool stacks;
	struct weft_task *free_cur, *free_full; /* free task objects, task.c */
	unsigned n_free_cur;
	struct weft__timers timers;
	_Atomic int64_t n_live;        /* spawned minus freed here (task.c) */
	uint64_t id_next, id_end;      /* this worker's block of task ids */

	/* The ring and parking (park.c), owner only but for `sleeping`. */
	struct io_uring ring;
	int efd;                       /* eventfd other threads write to wake us */
	uint64_t efd_buf;
	bool efd_armed;
	_Atomic bool sleeping;         /* in idle.c's sleeper set */
	bool searching;
	bool msg_ring;                 /* this ring can send IORING_OP_MSG_RING */
	unsigned io_inflight;          /* our tasks' operations on this ring */
	uint64_t io_ops[4];            /* opcodes the ring supports (probed) */
	struct weft__cancelq io_cancels; /* cancels other threads asked of us */
	struct weft__bufs bufs;        /* watched connections' buffers (watch.c) */
	struct weft__watch_list watches; /* watches armed on this ring */

	uint64_t rng;
	pthread_t thread;
	bool thread_started;
	int start_rc;                  /* the worker's ring setup result */
	bool start_ring_failed;        /* start_rc is the ring's own failure */

	/* Tasks woken by the events this worker dispatches in batches (the
	 * completions it reaps, the timers it fires), in the order of those
	 * events: FIFO, so no connection's turn, no earlier timer, is
	 * overtaken by a later one; thieves take from it too, all but the
	 * bound tasks.  `batch_wake` is set while such a batch is
	 * dispatched. */
	struct weft__tqueue ioq;
	/* How many of ioq's tasks are bound to us (pinned, or not yet started
	 * on their chosen worker): they keep their place in the order, and
	 * thieves pass them by.  Written by the owner only. */
	_Atomic uint64_t ioq_bound;
	bool batch_wake;
	/* Statistics: written by the owner (relaxed), read by anyone. */
	_Atomic uint64_t n_spawned, n_steals, n_parks, n_wakeups, n_switches;
	_Atomic uint64_t n_submitted;  /* SQEs handed to the kernel */
};

struct weft__slab;
struct weft__blocking;

struct weft_rt {
	unsigned nworkers;
	struct weft__worker **workers;
	size_t stack_size;
	struct weft__stack_depot stack_depot; /* free default-size stacks past the pools */
	uint64_t stall_ns, shutdown_ns;
	uint64_t spin_ns;              /* 0: no polling before parking */
	int pin;
	uint32_t fp_ctl;               /* FP control state new tasks start with */

	/* The injection queue: tasks spawned or woken from outside workers. */
	struct weft__tqueue inject;

	/* idle.c: searching workers in the low half, awake ones in the high. */
	_Atomic uint64_t idle_state;
	pthread_mutex_t idle_lock;
	unsigned *sleepers, n_sleepers;

	/* Every task object ever made, for shutdown's walk (task.c). */
	pthread_mutex_t slab_lock;
	struct weft__slab *slabs;
	struct weft_task *spare_batches; /* full batches of free task objects */
	struct weft_task *spare_tasks;   /* loose ones, for non-worker threads */
	_Atomic uint64_t next_id;
	_Atomic uint64_t outside_spawned; /* spawns by non-worker threads */
	_Atomic int64_t live;
	_Atomic bool stopping;         /* shutdown: no new outside spawns */
	_Atomic uint64_t outside;      /* threads outside the runtime inside it */
	_Atomic bool exit_workers;     /* workers leave their loops */

	struct weft__blocking *blocking; /* weft_spawn_blocking's pool */
	pthread_t watchdog;
	bool watchdog_started;
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_cond;
};

/* rt.c: the CPU count a cgroup v2 cpu.max file allows, 0 for no limit. */
unsigned weft__cpu_max_file(const char *path);

/* worker.c */
struct weft__worker *weft__worker_here(void); /* this thread's worker or NULL */
void *weft__worker_main(void *w);
/* Switches from the running task `self` (whose `after` says what happens to
 * it) to the next ready task of its worker or to the worker loop. */
void weft__schedule(struct weft_task *self);
void weft__finish_switch(struct weft__worker *w, struct weft_task *prev);

/*
 * A thread that is not one of rt's workers (a resolve from a plain thread, a
 * signal handler's thread cancelling a task) may wake a task that then runs,
 * finishes, and lets the program shut rt down while the waking thread is
 * still writing an eventfd of rt's.  Such threads bracket their time inside
 * rt with these, and shutdown waits for the count to reach zero before it
 * frees anything.  The increment comes before the task can run (before it
 * is queued), so the count cannot read zero too early.
 */
static inline void weft__outside_enter(struct weft_rt *rt)
{
	atomic_fetch_add_explicit(&rt->outside, 1, memory_order_acquire);
}
static inline void weft__outside_leave(struct weft_rt *rt)
{
	/* Release: our last use of rt comes before shutdown frees it. */
	atomic_fetch_sub_explicit(&rt->outside, 1, memory_order_release);
}

/* Whether t may run only on t->home: pinned, or spawned with WEFT_SPAWN_ON
 * and not yet started. */
static inline bool weft__task_bound(const struct weft_task *t)
{
	return t->pinned || t->start_home;
}

/* inject.c */
void weft__tqueue_push(struct weft__tqueue *q, struct weft_task *t);
struct weft_task *weft__tqueue_pop(struct weft__tqueue *q);
uint64_t weft__tqueue_steal(struct weft__tqueue *q, uint64_t max, struct weft__tlist *out);
static inline uint64_t weft__tqueue_len(struct weft__tqueue *q)
{
	return atomic_load_explicit(&q->n, memory_order_relaxed);
}

/* How many tasks a thief could take from v's I/O queue; a hint, as
 * weft__tqueue_len: the owner, which is awake while its queue holds
 * anything, runs whatever a stale reading leaves behind. */
static inline uint64_t weft__ioq_stealable(struct weft__worker *v)
{
	uint64_t bound = atomic_load_explicit(&v->ioq_bound, memory_order_relaxed);
	uint64_t len = weft__tqueue_len(&v->ioq);
	return len > bound ? len - bound : 0;
}

/* idle.c */
void weft__idle_notify(struct weft_rt *rt);
bool weft__idle_start_search(struct weft_rt *rt, struct weft__worker *w);
void weft__idle_stop_search(struct weft_rt *rt, struct weft__worker *w, bool found);
bool weft__idle_sleep(struct weft_rt *rt, struct weft__worker *w);
void weft__idle_wake(struct weft_rt *rt, struct weft__worker *w);
void weft__idle_wake_worker(struct weft_rt *rt, struct weft__worker *w);
void weft__idle_wake_all(struct weft_rt *rt);

/* fault.c */
void weft__fault_install(void);
void weft__fault_thread_init(void);
void weft__fault_thread_fini(void);

/* park.c */
int weft__park_init(struct weft__worker *w);
void weft__park_thread_exit(struct weft__worker *w);
void weft__park_fini(struct weft__worker *w);
void weft__park(struct weft__worker *w, uint64_t timeout_ns);
void weft__unpark(struct weft__worker *w);
void weft__park_reap(struct weft__worker *w);
/* Tells on stderr, in words, why io_uring setup failed with rc. */
void weft__ring_explain(int rc);

/* task.c */
void weft__task_free(struct weft__worker *w, struct weft_task *t);
void weft__task_complete(struct weft__worker *w, struct weft_task *t);
struct weft_task *weft__task_new(struct weft_rt *rt, struct weft__worker *w, weft_fn fn,
				 void *arg, const struct weft_spawn_opts *opts);
bool weft__task_prepare(struct weft__worker *w, struct weft_task *t);
struct weft_task *weft__task_new_stacked(struct weft__worker *w, weft_fn fn, void *arg,
					 const struct weft_spawn_opts *opts);
uint64_t weft__tasks_cancel_all(struct weft_rt *rt);
int64_t weft__tasks_live(const struct weft_rt *rt);
uint64_t weft__tasks_spawned(const struct weft_rt *rt);
void weft__tasks_report_live(struct weft_rt *rt);
void weft__tasks_free_all(struct weft_rt *rt);

static inline void weft__tlist_push(struct weft__tlist *l, struct weft_task *t)
{
	t->next = NULL;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
}

static inline struct weft_task *weft__tlist_pop(struct weft__tlist *l)
{
	struct weft_task *t = l->head;
	if (t) {
		l->head = t->next;
		if (!l->head)
			l->tail = NULL;
	}
	return t;
}

static inline void weft__stat_add(_Atomic uint64_t *c, uint64_t n)
{
	/* Only the owner writes: a relaxed load and store, not an RMW. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void weft__stat_inc(_Atomic uint64_t *c)
{
	weft__stat_add(c, 1);
}

/* Counts what an io_uring_submit* call on w's ring handed to the kernel;
 * returns rc unchanged. */
static inline int weft__submitted(struct weft__worker *w, int rc)
{
	if (rc > 0)
		weft__stat_add(&w->n_submitted, (uint64_t)rc);
	return rc;
}

#endif
