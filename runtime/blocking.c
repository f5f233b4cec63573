// SPDX-License-Identifier: MIT
/*
 * blocking.c - weft_spawn_blocking: a bounded pool of plain threads, one pool
 * per runtime, that runs the functions which would block a worker (getaddrinfo,
 * a library without an async API) while the calling task parks.
 *
 * A job is a record on the waiting task's stack (or on the heap, for the
 * detachable variant the resolver uses).  The task queues it, parks on the wait
 * protocol of runtime/wait.c, and the pool thread that ran it claims and
 * readies the task.  Threads start lazily, up to the pool's maximum, leave
 * after an idle spell, and are all joined by weft__blocking_fini at shutdown.
 *
 * Job states, all guarded by the pool's lock:
 *   QUEUED   submit: on the pool's FIFO, not yet taken.
 *   RUNNING  thread_main: a pool thread took it and runs fn outside the lock.
 *   DONE     finish: fn returned; result is set.
 *   FAILED   fail_queued: no pool thread exists and none could be started;
 *            fn never ran, err is set.
 * and one flag, `abandoned`, set by interrupted on a RUNNING detachable job
 * whose waiter walked away: the thread then owns the job and releases it.
 *
 * Invariants:
 *  1. A waiter returns only (a) after its wait was claimed by whoever moved
 *     the job to DONE or FAILED, (b) having seen the job under the lock in a
 *     state no thread will touch again (QUEUED, then unlinked by the waiter;
 *     DONE; FAILED), or (c) having abandoned a detachable heap job.  So no
 *     thread touches a job on a waiter's stack once the waiter has returned.
 *  2. j->w, the waiter's current wait, is read and claimed only under the
 *     lock.  A waiter woken by anyone but that claim (a canceller, its
 *     deadline's timer) takes the lock before it returns or re-arms, so the
 *     record j->w points to is alive whenever the lock holder claims it.
 *  3. Once fn has started, only its end wakes the waiter for good: a
 *     cancellation or deadline that woke it either abandons the job
 *     (detachable) or re-arms a shielded wait with no deadline.
 *  4. threads counts started threads that have not left.  Of them, idle + wakes
 *     sit in pthread_cond_timedwait: `idle` unreserved, `wakes` already
 *     signalled for a queued job (so a second submit does not count on the
 *     same sleeper).  Each thread leaving the wait takes one from `wakes` if
 *     any, else from `idle`; which thread took which does not matter.
 *  5. A thread leaves only with the queue empty, both checked under the lock,
 *     so a queued job always has a thread that will look at the queue again:
 *     a running one, a signalled one, or one its submitter is starting.
 *  6. Every thread is joined: a leaving thread records itself as the pool's
 *     zombie and joins the zombie it replaced; fini, once threads is 0, joins
 *     the last one, which has joined its predecessor, and so on.
 *
 * The pool's lock is a pthread mutex that tasks take too: every critical
 * section is a few loads and stores, and nobody parks or switches inside one.
 * Pool threads inherit the creating worker's signal mask, which blocks every
 * asynchronous signal (scheduler/rt.c): signals stay the application's.

 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/blocking.h"
#include "runtime/internal.h"
#include "scheduler/internal.h"

#define DEFAULT_MAX_THREADS 64
#define DEFAULT_IDLE_NS (10 * WEFT_SEC)

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct job {
	weft_fn fn;
	void *arg;
	/* Detachable jobs (on the heap): how the pool frees an abandoned one. */
	void (*release)(void *arg, intptr_t result);
	/* The rest: under the pool's lock. */
	struct job *next;     /* queue link while QUEUED */
	struct weft__wait *w; /* the waiter's current wait (invariant 2) */
	intptr_t result;      /* DONE */
	int err;              /* FAILED */
	int state;            /* JOB_* */
	bool abandoned;       /* detachable, RUNNING, waiter gone: ours to free */
};

struct weft__blocking {
	struct weft_rt *rt;
	unsigned max;
	uint64_t idle_ns;

	pthread_mutex_t lock; /* guards everything below and every job */
	pthread_cond_t work;  /* idle threads wait here (CLOCK_MONOTONIC) */
	pthread_cond_t gone;  /* fini waits here for threads to leave */
	struct job *head, *tail;
	unsigned threads, idle, wakes; /* invariant 4 */
	bool stopping;
	bool has_zombie;
	pthread_t zombie;     /* the last thread to leave, not yet joined */
};

static struct weft__blocking *pool_of(struct weft_rt *rt)
{
	return rt->blocking;
}

/* ---- The queue (lock held) ------------------------------------------------- */

static void push(struct weft__blocking *p, struct job *j)
{
	j->next = NULL;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
}

static struct job *pop(struct weft__blocking *p)
{
	struct job *j = p->head;
	if (j) {
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
	}
	return j;
}

/* Unlinks a QUEUED job.  Linear, but the queue is only as long as the jobs
 * beyond the pool's thread count. */
static void unlink_job(struct weft__blocking *p, struct job *j)
{
	struct job *prev = NULL;
	for (struct job *c = p->head; c; prev = c, c = c->next) {
		if (c != j)
			continue;
		if (prev)
			prev->next = j->next;
		else
			p->head = j->next;
		if (p->tail == j)
			p->tail = prev;
		return;
	}
}

/* ---- Pool threads ------------------------------------------------------------- */

/* fn has returned: publish the result and wake the waiter, or, if the waiter
 * walked away from a detachable job, free it.  Lock held on entry and exit. */
static void finish(struct weft__blocking *p, struct job *j, intptr_t result)
{
	j->result = result;
	j->state = JOB_DONE;
	if (j->abandoned) {
		pthread_mutex_unlock(&p->lock);
		j->release(j->arg, result);
		free(j);
		pthread_mutex_lock(&p->lock);
		return;
	}
	/* Invariant 2: j->w is alive while we hold the lock.  A failed claim
	 * means a canceller or timer woke the waiter first; it will find DONE. */
	struct weft__wait *w = j->w;
	struct weft_task *t = w->task;
	bool claimed = weft__wait_claim(w);
	pthread_mutex_unlock(&p->lock);
	/* j may be gone from here on: the claim made its waiter ours to wake,
	 * and nothing else can (invariant 1).  The task object outlives us: its
	 * slab is freed only after fini has joined this thread. */
	if (claimed)
		weft__wait_ready(t, 0);
	pthread_mutex_lock(&p->lock);
}

/* The absolute CLOCK_MONOTONIC time ns from now, for pthread_cond_timedwait. */
static struct timespec after(uint64_t ns)
{
	uint64_t now = weft_now();
	uint64_t at = ns >= WEFT_NEVER - now ? WEFT_NEVER : now + ns;
	return (struct timespec){.tv_sec = (time_t)(at / WEFT_SEC), .tv_nsec = (long)(at % WEFT_SEC)};
}

static void *thread_main(void *arg)
{
	struct weft__blocking *p = arg;
	pthread_setname_np(pthread_self(), "weft-blocking");
	pthread_mutex_lock(&p->lock);
	struct timespec until = after(p->idle_ns);
	for (;;) {
		struct job *j = pop(p);
		if (j) {
			j->state = JOB_RUNNING;
			pthread_mutex_unlock(&p->lock);
			intptr_t r = j->fn(j->arg);
			pthread_mutex_lock(&p->lock);
			finish(p, j, r);
			until = after(p->idle_ns); /* idle from now on */
			continue;
		}
		if (p->stopping)
			break;
		p->idle++;
		int e = pthread_cond_timedwait(&p->work, &p->lock, &until);
		if (p->wakes)
			p->wakes--;
		else
			p->idle--;
		/* Invariant 5: leave only with nothing queued. */
		if (e == ETIMEDOUT && !p->head)
			break;
	}
	p->threads--;
	bool had = p->has_zombie;
	pthread_t prev = p->zombie;
	p->zombie = pthread_self();
	p->has_zombie = true;
	pthread_cond_broadcast(&p->gone);
	pthread_mutex_unlock(&p->lock);
	/* Invariant 6: we replaced prev as the zombie, so prev is ours to join.
	 * It has left the loop and only has to return. */
	if (had)
		pthread_join(prev, NULL);
	return NULL;
}

/* No thread exists and none could start: fail every queued job with err.
 * Lock held on entry, released on return.  As weft__waitq_wake_all, claim
 * under the lock and ready after it, reading each link before its job's
 * waiter can run (and return, taking the job with its stack). */
static void fail_queued(struct weft__blocking *p, int err)
{
	struct job *claimed = NULL, *j;
	while ((j = pop(p))) {
		j->state = JOB_FAILED;
		j->err = err;
		if (weft__wait_claim(j->w)) {
			j->next = claimed;
			claimed = j;
		}
		/* Not claimed: its waiter was woken otherwise and will find
		 * FAILED once it has the lock. */
	}
	pthread_mutex_unlock(&p->lock);
	while ((j = claimed)) {
		claimed = j->next;
		weft__wait_ready(j->w->task, 0);
	}
}

/* ---- The waiting side --------------------------------------------------------- */

/* The call's outcome once its job has left the queue for good. */
static int outcome(struct job *j, intptr_t *result)
{
	if (j->state == JOB_FAILED)
		return j->err;
	if (result)
		*result = j->result;
	return 0;
}

/*
 * The wait ended with rc (-ECANCELED, -ETIMEDOUT, or -ENOMEM when the
 * deadline's timer could not be stored) before the job's end woke us.
 * *kept is cleared when a detachable job was left to the pool.
 */
static int interrupted(struct weft__blocking *p, struct job *j, struct weft_task *self, int rc,
		       intptr_t *result, bool *kept)
{
	pthread_mutex_lock(&p->lock);
	switch (j->state) {
	case JOB_QUEUED:
		/* fn never ran and now never will. */
		unlink_job(p, j);
		pthread_mutex_unlock(&p->lock);
		return rc;
	case JOB_FAILED:
		pthread_mutex_unlock(&p->lock);
		return rc;
	case JOB_DONE:
		/* It ended while we were being woken: its result (an fd it
		 * opened, say) must reach the caller, not be lost. */
		pthread_mutex_unlock(&p->lock);
		return outcome(j, result);
	default:
		break;
	}
	if (j->release) {
		j->abandoned = true;
		*kept = false;
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	/* fn runs and cannot be interrupted (invariant 3): wait for its end,
	 * shielded and without deadline.  The cancellation stays pending. */
	struct weft_scope shield;
	weft_scope_shield(&shield, WEFT_NEVER);
	struct weft__wait w;
	int armed = weft__wait_arm(self, &w);
	(void)armed;
	/* Shielded and without deadline, arm cannot refuse. */
	assert(armed == 0);
	j->w = &w;
	pthread_mutex_unlock(&p->lock);
	(void)weft__wait_park(self, &w, WEFT_NEVER, 0); /* only finish wakes it */
	weft_scope_end(&shield);
	return outcome(j, result);
}

/* Queues j, parks until its end, returns the call's result. */
static int run_job(struct job *j, intptr_t *result, bool *kept)
{
	struct weft_task *self = weft__current();
	struct weft__blocking *p = pool_of(self->rt);
	if (!p)
		return -ESHUTDOWN; /* unreachable: the pool outlives every task */
	struct weft__wait w;
	int rc = weft__wait_arm(self, &w);
	if (rc < 0)
		return rc; /* cancelled or past the deadline: nothing queued */

	bool start = false;
	pthread_mutex_lock(&p->lock);
	j->w = &w;
	j->state = JOB_QUEUED;
	push(p, j);
	if (p->idle) {
		p->idle--;
		p->wakes++;
		pthread_cond_signal(&p->work);
	} else if (p->threads < p->max) {
		p->threads++; /* counted now, so no other submit overshoots max */
		start = true;
	}
	pthread_mutex_unlock(&p->lock);

	/* A thread that starts is joined through the zombie chain (invariant
	 * 6), so its handle is not kept. */
	pthread_t th;
	if (start && pthread_create(&th, NULL, thread_main, p) != 0) {
		pthread_mutex_lock(&p->lock);
		p->threads--;
		if (p->threads == 0)
			fail_queued(p, -EAGAIN); /* our own job included */
		else
			pthread_mutex_unlock(&p->lock); /* they will run it */
	}

	rc = weft__wait_park(self, &w, WEFT_NEVER, 0);
	if (rc == 0)
		return outcome(j, result);
	return interrupted(p, j, self, rc, result, kept);
}

int weft_spawn_blocking(weft_fn fn, void *arg, intptr_t *result)
{
	struct job j = {.fn = fn, .arg = arg};
	bool kept = true;
	return run_job(&j, result, &kept);
}

int weft__spawn_blocking_detachable(weft_fn fn, void *arg,
				    void (*release)(void *arg, intptr_t result),
				    intptr_t *result)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		release(arg, -ENOMEM);
		return -ENOMEM;
	}
	j->fn = fn;
	j->arg = arg;
	j->release = release;
	bool kept = true;
	int rc = run_job(j, result, &kept);
	if (!kept)
		return rc; /* the pool thread releases arg and frees j */
	if (rc < 0)
		release(arg, rc); /* fn never ran */
	free(j);
	return rc;
}

/* ---- Start and stop ------------------------------------------------------------ */

int weft__blocking_init(struct weft_rt *rt, unsigned max_threads, uint64_t idle_ns)
{
	struct weft__blocking *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->rt = rt;
	p->max = max_threads ? max_threads : DEFAULT_MAX_THREADS;
	p->idle_ns = idle_ns ? idle_ns : DEFAULT_IDLE_NS;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* weft_now's clock */
	pthread_cond_init(&p->work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&p->gone, NULL);
	rt->blocking = p;
	return 0;
}

void weft__blocking_fini(struct weft_rt *rt)
{
	struct weft__blocking *p = pool_of(rt);
	rt->blocking = NULL;
	if (!p)
		return;

	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	/* Queued jobs belong to tasks shutdown abandoned (every other task
	 * has returned, and with it its job): drop them unrun. */
	p->head = p->tail = NULL;
	pthread_cond_broadcast(&p->work);
	while (p->threads)
		pthread_cond_wait(&p->gone, &p->lock);
	bool had = p->has_zombie;
	pthread_t last = p->zombie;
	pthread_mutex_unlock(&p->lock);
	if (had)
		pthread_join(last, NULL); /* and, through it, every other */

	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->gone);
	free(p);
}

unsigned weft__blocking_threads(struct weft_rt *rt)
{
	struct weft__blocking *p = pool_of(rt);
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	unsigned n = p->threads;
	pthread_mutex_unlock(&p->lock);
	return n;
}
