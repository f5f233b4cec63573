// SPDX-License-Identifier: MIT
/*
 * task.c - a task's life: spawn, run, finish, join/detach; its name,
 * deadlines and shields; and the slabs task objects live in.
 *
 * Task objects are allocated in slabs of BATCH and never given back to
 * the allocator while the runtime lives (as Go keeps its dead goroutine
 * descriptors on free lists).  Two things rely on it: a stale waker may CAS
 * a task's wait word after the task has moved on (runtime/wait.c, invariant
 * 5), and shutdown walks every slab to find the tasks still alive.  Stacks,
 * the large part, are returned to the worker's pool the moment a task ends.
 *
 * The handle protocol, t->done:
 *   DONE      set by weft__task_complete once the result is stored.
 *   RELEASED  set by join / detach / block_on: nobody holds the handle.
 *   JOINER    a joiner task parked, t->joiner and t->joiner_token valid.
 *   JOIN_FREE the finisher is done with t->joiner (see join's cancel path).
 * Whoever sets the second of DONE and RELEASED frees the object; a join
 * that finds DONE alone frees it without setting RELEASED (weft_join says
 * why that is safe).  Only one joiner at a time: the handle has one owner.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "runtime/sanitizer.h"
#include "scheduler/internal.h"

#define BATCH 64 /* task objects per slab, and per batch of free ones */
#define WEFT__DONE_EXT (1u << 4) /* a thread sleeps in block_on's futex */

struct weft__slab {
	struct weft__slab *next;
	struct weft_task tasks[BATCH];
};

uint64_t weft_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * WEFT_SEC + (uint64_t)ts.tv_nsec;
}

/* ---- Allocation ------------------------------------------------------------- */

/*
 * Free task objects move in batches of exactly BATCH (a slab's worth),
 * as in Bonwick's magazines: each worker has a current batch it pops from and
 * pushes to, and one full batch in reserve; the runtime keeps a stack of full
 * batches (linked through their first object's batch_next) and a list of loose
 * objects for threads that are not workers.  Every per-task operation is
 * O(1), a worker takes slab_lock at most once per BATCH tasks, and a worker
 * that only frees feeds one that only spawns.
 */
static struct weft_task *new_slab(struct weft_rt *rt)
{
	struct weft__slab *s = aligned_alloc(64, sizeof(*s));
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->next = rt->slabs;
	rt->slabs = s;
	for (int i = 0; i < BATCH - 1; i++)
		s->tasks[i].next = &s->tasks[i + 1];
	return &s->tasks[0];
}

/* A full batch from the runtime (slab_lock held), or NULL. */
static struct weft_task *take_batch(struct weft_rt *rt)
{
	struct weft_task *b = rt->spare_batches;
	if (b) {
		rt->spare_batches = b->batch_next;
		return b;
	}
	return new_slab(rt);
}

static struct weft_task *task_alloc(struct weft_rt *rt, struct weft__worker *w)
{
	struct weft_task *t;
	if (w && w->rt == rt) {
		if (!w->free_cur && w->free_full) {
			w->free_cur = w->free_full;
			w->free_full = NULL;
			w->n_free_cur = BATCH;
		}
		if (!w->free_cur) {
			pthread_mutex_lock(&rt->slab_lock);
			w->free_cur = take_batch(rt);
			pthread_mutex_unlock(&rt->slab_lock);
			if (!w->free_cur)
				return NULL;
			w->n_free_cur = BATCH;
		}
		t = w->free_cur;
		w->free_cur = t->next;
		w->n_free_cur--;
		return t;
	}
	pthread_mutex_lock(&rt->slab_lock);
	if (!rt->spare_tasks)
		rt->spare_tasks = take_batch(rt);
	t = rt->spare_tasks;
	if (t)
		rt->spare_tasks = t->next;
	pthread_mutex_unlock(&rt->slab_lock);
	return t;
}

/*
 * Counting live tasks and numbering them must not make every spawn touch a
 * cache line shared by all workers: with two workers forking and joining,
 * that line's ping-pong cost more than the rest of a spawn.  So each worker
 * keeps its own live count (its sum over workers, plus rt->live for threads
 * that are not workers, is the total; only the sum means anything, as a task
 * may start on one worker and end on another) and takes ids in blocks.
 */
static void live_add(struct weft_rt *rt, struct weft__worker *w, int64_t d)
{
	if (w && w->rt == rt)
		atomic_store_explicit(&w->n_live,
				      atomic_load_explicit(&w->n_live, memory_order_relaxed) + d,
				      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&rt->live, d, memory_order_relaxed);
}

#define ID_BLOCK 1024

static uint64_t next_id(struct weft_rt *rt, struct weft__worker *w)
{
	if (!w || w->rt != rt)
		return atomic_fetch_add_explicit(&rt->next_id, 1, memory_order_relaxed) + 1;
	if (w->id_next == w->id_end) {
		w->id_next = atomic_fetch_add_explicit(&rt->next_id, ID_BLOCK,
						       memory_order_relaxed) + 1;
		w->id_end = w->id_next + ID_BLOCK;
	}
	return w->id_next++;
}

uint64_t weft__tasks_spawned(const struct weft_rt *rt)
{
	uint64_t n = atomic_load_explicit(&rt->outside_spawned, memory_order_acquire);
	for (unsigned i = 0; i < rt->nworkers; i++)
		n += atomic_load_explicit(&rt->workers[i]->n_spawned, memory_order_acquire);
	return n;
}

int64_t weft__tasks_live(const struct weft_rt *rt)
{
	int64_t n = atomic_load_explicit(&rt->live, memory_order_relaxed);
	for (unsigned i = 0; i < rt->nworkers; i++)
		n += atomic_load_explicit(&rt->workers[i]->n_live, memory_order_relaxed);
	return n;
}

static void cache_task(struct weft_rt *rt, struct weft__worker *w, struct weft_task *t)
{
	if (!w || w->rt != rt) {
		pthread_mutex_lock(&rt->slab_lock);
		t->next = rt->spare_tasks;
		rt->spare_tasks = t;
		pthread_mutex_unlock(&rt->slab_lock);
		return;
	}
	t->next = w->free_cur;
	w->free_cur = t;
	if (++w->n_free_cur < BATCH)
		return;
	if (w->free_full) {
		pthread_mutex_lock(&rt->slab_lock);
		w->free_full->batch_next = rt->spare_batches;
		rt->spare_batches = w->free_full;
		pthread_mutex_unlock(&rt->slab_lock);
	}
	w->free_full = w->free_cur;
	w->free_cur = NULL;
	w->n_free_cur = 0;
}

void weft__task_free(struct weft__worker *w, struct weft_task *t)
{
	struct weft_rt *rt = t->rt;
	atomic_store_explicit(&t->live, 0, memory_order_release);
	live_add(rt, w, -1);
	cache_task(rt, w, t);
}

/* ---- Spawn ------------------------------------------------------------------ */

static _Noreturn void task_start(void *prev, void *arg);

struct weft_task *weft__task_new(struct weft_rt *rt, struct weft__worker *w, weft_fn fn,
				 void *arg, const struct weft_spawn_opts *opts)
{
	struct weft_task *t = task_alloc(rt, w);
	if (!t)
		return NULL;
	/* Keep the wait word's token counting up across reuses of the object:
	 * a stale timer entry must never match a new wait (wait.c, inv. 5). */
	uint64_t tok = atomic_load_explicit(&t->wake, memory_order_relaxed) >> WEFT__WAKE_SHIFT;
	uint64_t cancel = atomic_load_explicit(&rt->stopping, memory_order_relaxed)
				  ? WEFT__WAKE_CANCEL
				  : 0; /* shutdown: born cancelled */
	atomic_store_explicit(&t->wake, (tok + 1) << WEFT__WAKE_SHIFT | cancel,
			      memory_order_relaxed);
	atomic_store_explicit(&t->run, WEFT__RUNNING, memory_order_relaxed);
	atomic_store_explicit(&t->done, 0, memory_order_relaxed);
	t->after = WEFT__AFTER_NONE;
	unsigned flags = opts ? opts->flags : 0;
	t->pinned = !!(flags & WEFT_SPAWN_PINNED);
	t->start_home = !!(flags & WEFT_SPAWN_ON);
	if (t->start_home)
		t->home = rt->workers[opts->worker % rt->nworkers];
	else if (t->pinned)
		t->home = w ? w : rt->workers[0];
	else
		t->home = NULL;
	t->deadline = WEFT_NEVER;
	t->fn = fn;
	t->arg = arg;
	t->result = 0;
	t->stack = NULL;
	size_t ss = opts && opts->stack_size ? opts->stack_size : rt->stack_size;
	t->stack_size = ss > UINT32_MAX ? UINT32_MAX : (uint32_t)ss;
	t->ctx.sp = NULL;
	t->joiner = NULL;
	t->group = NULL;
	t->rt = rt;
	t->worker = w;
	t->id = next_id(rt, w);
	if (opts && opts->name) {
		strncpy(t->name, opts->name, sizeof(t->name) - 1);
		t->name[sizeof(t->name) - 1] = 0;
	} else {
		t->name[0] = 0;
	}
	live_add(rt, w, 1);
	/* Release: a shutdown walk that sees live == 1 sees an initialised task. */
	atomic_store_explicit(&t->live, 1, memory_order_release);
	/* Release, after `live`: shutdown reads the spawn count (acquire)
	 * around its walk to know the walk missed no task (rt.c). */
	if (w && w->rt == rt)
		atomic_store_explicit(&w->n_spawned,
				      atomic_load_explicit(&w->n_spawned, memory_order_relaxed) + 1,
				      memory_order_release);
	else
		atomic_fetch_add_explicit(&rt->outside_spawned, 1, memory_order_release);
	return t;
}

/*
 * Gives t its stack and first frame, on the worker about to run it for the
 * first time.  Taking the stack here rather than at spawn keeps queued,
 * never-started tasks cheap, and makes a stack come from (and, when the task
 * ends on the same worker, go back to) the pool of the worker that runs it,
 * which is what keeps pools warm when one worker spawns and others run.
 * Returns false when no stack could be had: t has then finished with
 * -ENOMEM as its result.
 */
bool weft__task_prepare(struct weft__worker *w, struct weft_task *t)
{
	struct weft__stack *s = weft__stack_get(&w->stacks, t->stack_size);
	if (!s) {
		t->result = -ENOMEM;
		weft__task_complete(w, t);
		return false;
	}
	t->stack = s;
	t->start_home = false;
	weft__ctx_on_stack(&t->ctx, s, task_start, t, w->rt->fp_ctl);
	return true;
}

/*
 * weft__task_new for the runtime's own tasks (a watch's function, a
 * sweeper, an acceptor), with the stack taken now, on w.  A task that gets
 * no stack when it first runs ends without running its function, and for
 * these the function is what would close the fd or report the error: so
 * their callers must know at once.  Returns NULL, and leaves nothing behind,
 * when the task or its stack cannot be had.
 */
struct weft_task *weft__task_new_stacked(struct weft__worker *w, weft_fn fn, void *arg,
					 const struct weft_spawn_opts *opts)
{
	struct weft_task *t = weft__task_new(w->rt, w, fn, arg, opts);
	if (t && !weft__task_prepare(w, t)) {
		weft_detach(t); /* finished with -ENOMEM, never run: freed */
		return NULL;
	}
	return t;
}

struct weft_task *weft_spawn(weft_fn fn, void *arg, const struct weft_spawn_opts *opts)
{
	struct weft_task *self = weft__current();
	struct weft__worker *w = self->worker;
	struct weft_task *t = weft__task_new(w->rt, w, fn, arg, opts);
	if (t)
		weft__enqueue(w->rt, t, false);
	return t;
}

struct weft_task *weft_rt_spawn(struct weft_rt *rt, weft_fn fn, void *arg,
				const struct weft_spawn_opts *opts)
{
	if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
		return NULL;
	struct weft__worker *w = weft__worker_here();
	if (w && w->rt != rt)
		w = NULL;
	struct weft_task *t = weft__task_new(rt, w, fn, arg, opts);
	if (t)
		weft__enqueue(rt, t, false);
	return t;
}

/* ---- Run and finish ----------------------------------------------------------- */

/* Every task's first frame (via weft__ctx_trampoline). */
static _Noreturn void task_start(void *prev, void *arg)
{
	struct weft_task *t = arg;
	weft__ctx_entered();
	weft__finish_switch(t->worker, prev);
	t->result = t->fn(t->arg);
	t->after = WEFT__AFTER_EXIT;
	weft__schedule(t);
	__builtin_unreachable();
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Runs on the context that took over from the finished task t: its stack is
 * no longer in use. */
void weft__task_complete(struct weft__worker *w, struct weft_task *t)
{
	if (t->stack) {
		weft__stack_put(&w->stacks, t->stack);
		t->stack = NULL;
		weft__ctx_release(&t->ctx);
	}
	if (t->group)
		weft__group_child_done(t);
	/* Release: the result reaches the joiner; acquire: the joiner's
	 * t->joiner fields are visible if JOINER is set. */
	uint32_t old = atomic_fetch_or_explicit(&t->done, WEFT__DONE, memory_order_acq_rel);
	if (old & WEFT__JOINER) {
		/* Copy the joiner record out, then say we are done with t: a
		 * joiner that was cancelled meanwhile waits for JOIN_FREE before
		 * it may free t (weft_join). */
		struct weft_task *j = t->joiner;
		uint64_t tok = t->joiner_token;
		atomic_fetch_or_explicit(&t->done, WEFT__JOIN_FREE, memory_order_release);
		weft__wake_token(j, tok, 0);
	}
	if (old & WEFT__DONE_EXT)
		futex_wake_all(&t->done);
	if (old & WEFT__RELEASED)
		weft__task_free(w, t);
}

/* ---- Handles ---------------------------------------------------------------- */

static void release(struct weft_task *t)
{
	uint32_t old = atomic_fetch_or_explicit(&t->done, WEFT__RELEASED, memory_order_acq_rel);
	if (old & WEFT__DONE)
		weft__task_free(weft__worker_here(), t);
}

int weft_join(struct weft_task *t, intptr_t *result)
{
	struct weft_task *self = weft__current();
	if (t == self)
		return -EDEADLK;
	/* Acquire pairs with the release of DONE in weft__task_complete. */
	uint32_t st = atomic_load_explicit(&t->done, memory_order_acquire);
	if (st == WEFT__DONE) {
		/* Finished before we came, the usual case when joining many
		 * tasks: its finisher saw no RELEASED, JOINER or DONE_EXT, so it
		 * touches t no more after setting DONE, and the handle is ours
		 * alone.  Free it without the read-modify-write of release(),
		 * which on a task finished by another worker would stall on that
		 * worker's cache line (the plain stores of the free do not). */
		if (result)
			*result = t->result;
		weft__task_free(self->worker, t);
		return 0;
	}
	if (!(st & WEFT__DONE)) {
		struct weft__wait w;
		int rc = weft__wait_arm(self, &w);
		if (rc < 0)
			return rc;
		t->joiner = self;
		t->joiner_token = w.token;
		st = atomic_fetch_or_explicit(&t->done, WEFT__JOINER, memory_order_acq_rel);
		if (st & WEFT__DONE) {
			/* Finished meanwhile: the finisher will not wake us.  End
			 * our wait ourselves; if a canceller claimed it first, it
			 * has readied us, and we must park once to absorb that
			 * ready (its result no longer matters: the join is done). */
			atomic_fetch_and_explicit(&t->done, ~WEFT__JOINER, memory_order_relaxed);
			if (!weft__wait_claim(&w))
				(void)weft__wait_park(self, &w, WEFT_NEVER, 0);
		} else {
			rc = weft__wait_park(self, &w, WEFT_NEVER, 0);
			if (rc < 0) {
				/* Cancelled or timed out: withdraw, unless t finished
				 * in the meantime and its finisher is using our
				 * joiner record, in which case the join completed. */
				uint32_t exp = atomic_load_explicit(&t->done, memory_order_acquire);
				while (!(exp & WEFT__DONE)) {
					if (atomic_compare_exchange_weak_explicit(
						    &t->done, &exp, exp & ~WEFT__JOINER,
						    memory_order_acq_rel, memory_order_acquire))
						return rc;
				}
				while (!(atomic_load_explicit(&t->done, memory_order_acquire) &
					 WEFT__JOIN_FREE))
					weft__cpu_relax();
			}
		}
	}
	if (result)
		*result = t->result;
	release(t);
	return 0;
}

void weft_detach(struct weft_task *t)
{
	release(t);
}

int weft_block_on(struct weft_task *t, intptr_t *result)
{
	if (weft__worker_here())
		return -EDEADLK;
	uint32_t st = atomic_fetch_or_explicit(&t->done, WEFT__DONE_EXT, memory_order_acq_rel);
	while (!(st & WEFT__DONE)) {
		syscall(SYS_futex, &t->done, FUTEX_WAIT_PRIVATE, st | WEFT__DONE_EXT, NULL, NULL,
			0);
		st = atomic_load_explicit(&t->done, memory_order_acquire);
	}
	if (result)
		*result = t->result;
	release(t);
	return 0;
}

void weft_cancel(struct weft_task *t)
{
	/* From a thread that is not one of t's runtime's workers the whole
	 * call counts as inside the runtime (weft__outside_enter): once the
	 * wake word changes, t may finish and the program shut the runtime
	 * down, while the rest of the call still reaches the worker that owns
	 * t's I/O to have it cancelled there. */
	struct weft__worker *here = weft__worker_here();
	bool outside = !here || here->rt != t->rt;
	if (outside)
		weft__outside_enter(t->rt);
	weft__task_cancel(t);
	if (outside)
		weft__outside_leave(t->rt);
}

struct weft_task *weft_self(void)
{
	return weft__current();
}

uint64_t weft_task_id(const struct weft_task *t)
{
	return t->id;
}

const char *weft_task_name(const struct weft_task *t)
{
	return t->name;
}

int weft_cancelled(void)
{
	struct weft_task *self = weft__current();
	return !!(atomic_load_explicit(&self->wake, memory_order_relaxed) & WEFT__WAKE_CANCEL);
}

/* ---- Yield and sleep ----------------------------------------------------------- */

static int checkpoint(struct weft_task *self)
{
	uint64_t w = atomic_load_explicit(&self->wake, memory_order_relaxed);
	if ((w & WEFT__WAKE_CANCEL) && !(w & WEFT__WAKE_SHIELD))
		return -ECANCELED;
	if (self->deadline != WEFT_NEVER && weft_now() >= self->deadline)
		return -ETIMEDOUT;
	return 0;
}

int weft_yield(void)
{
	struct weft_task *self = weft__current();
	self->after = WEFT__AFTER_YIELD;
	weft__schedule(self);
	return checkpoint(self);
}

int weft_sleep(uint64_t ns)
{
	struct weft_task *self = weft__current();
	struct weft__wait w;
	int rc = weft__wait_arm(self, &w);
	if (rc < 0)
		return rc;
	uint64_t now = weft_now();
	uint64_t at = ns > WEFT_NEVER - now ? WEFT_NEVER - 1 : now + ns;
	return weft__wait_park(self, &w, at, 0);
}

/* ---- Scopes ------------------------------------------------------------------- */

enum { SCOPE_SHIELD = 1 };

static uint64_t after_ns(uint64_t timeout_ns)
{
	uint64_t now = weft_now();
	return timeout_ns >= WEFT_NEVER - now ? WEFT_NEVER : now + timeout_ns;
}

void weft_scope_deadline(struct weft_scope *s, uint64_t timeout_ns)
{
	struct weft_task *self = weft__current();
	s->deadline = after_ns(timeout_ns);
	s->saved_deadline = self->deadline;
	s->flags = 0;
	if (s->deadline < self->deadline)
		self->deadline = s->deadline;
}

void weft_scope_shield(struct weft_scope *s, uint64_t timeout_ns)
{
	struct weft_task *self = weft__current();
	s->deadline = after_ns(timeout_ns);
	s->saved_deadline = self->deadline;
	s->saved_shield = !!(atomic_load_explicit(&self->wake, memory_order_relaxed) &
			     WEFT__WAKE_SHIELD);
	s->flags = SCOPE_SHIELD;
	self->deadline = s->deadline;
	weft__wait_shield(self, true);
}

int weft_scope_end(struct weft_scope *s)
{
	struct weft_task *self = weft__current();
	self->deadline = s->saved_deadline;
	if (s->flags & SCOPE_SHIELD)
		weft__wait_shield(self, s->saved_shield);
	return s->deadline != WEFT_NEVER && weft_now() >= s->deadline;
}

/* ---- Shutdown support ---------------------------------------------------------- */

/* Cancels every task that has not finished; returns how many there were. */
uint64_t weft__tasks_cancel_all(struct weft_rt *rt)
{
	uint64_t n = 0;
	pthread_mutex_lock(&rt->slab_lock);
	for (struct weft__slab *s = rt->slabs; s; s = s->next)
		for (int i = 0; i < BATCH; i++) {
			struct weft_task *t = &s->tasks[i];
			if (atomic_load_explicit(&t->live, memory_order_acquire) &&
			    !(atomic_load_explicit(&t->done, memory_order_acquire) & WEFT__DONE)) {
				weft__task_cancel(t);
				n++;
			}
		}
	pthread_mutex_unlock(&rt->slab_lock);
	return n;
}

void weft__tasks_report_live(struct weft_rt *rt)
{
	pthread_mutex_lock(&rt->slab_lock);
	for (struct weft__slab *s = rt->slabs; s; s = s->next)
		for (int i = 0; i < BATCH; i++) {
			struct weft_task *t = &s->tasks[i];
			if (atomic_load_explicit(&t->live, memory_order_acquire) &&
			    !(atomic_load_explicit(&t->done, memory_order_acquire) & WEFT__DONE))
				fprintf(stderr,
					"weft: shutdown: task %llu \"%s\" did not finish; "
					"abandoned\n",
					(unsigned long long)t->id, t->name);
		}
	pthread_mutex_unlock(&rt->slab_lock);
}

/* After the workers have stopped: free the stacks of abandoned tasks and
 * every slab. */
void weft__tasks_free_all(struct weft_rt *rt)
{
	for (struct weft__slab *s = rt->slabs, *n; s; s = n) {
		n = s->next;
		for (int i = 0; i < BATCH; i++) {
			struct weft_task *t = &s->tasks[i];
			if (atomic_load_explicit(&t->live, memory_order_relaxed) && t->stack) {
				weft__stack_put(NULL, t->stack);
				weft__ctx_release(&t->ctx);
			}
		}
		free(s);
	}
	rt->slabs = NULL;
	rt->spare_tasks = NULL;
	rt->spare_batches = NULL;
}
