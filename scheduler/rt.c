// SPDX-License-Identifier: MIT
/*
 * rt.c - a runtime's life: how many workers, starting them, the stall
 * watchdog, and shutdown.
 *
 * Worker count: the options, else WEFT_WORKERS, else the CPUs this process
 * may actually use: its affinity mask, bounded by the cgroup v2 cpu.max
 * quota of its cgroup and every ancestor (rounded up), so that weft in a
 * container limited to 2 CPUs does not start 64 workers.
 *
 * Shutdown, in order:
 *   1. `stopping`: weft_rt_spawn refuses, and tasks created from now on start
 *      cancelled (weft__task_new);
 *   2. every live task is cancelled (the slab walk of task.c, repeated so
 *      tasks spawned meanwhile are caught);
 *   3. wait until no task is unfinished or the timeout passes; name the
 *      stragglers;
 *   4. workers leave their loops and are joined: after this no thread runs
 *      weft code, so
 *   5. once no thread outside the runtime is still inside it (waking a
 *      task from a plain thread, weft__outside_enter), the blocking pool's
 *      threads are joined (runtime/blocking.c), then abandoned tasks'
 *      stacks, the slabs, rings and queues are freed.
 * Step 5 is safe only after 4: a straggler is suspended, and nothing can
 * resume it once no worker runs.
 */
#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/blocking.h"
#include "runtime/sanitizer.h"
#include "scheduler/internal.h"

#define DEFAULT_STACK (64 * 1024)
#define DEFAULT_SHUTDOWN_NS (5 * WEFT_SEC)
#define DEFAULT_STALL_NS (100 * WEFT_MSEC)
#define STACK_POOL_MAX 1024

/* ---- How many workers ------------------------------------------------------ */

/* ceil(quota / period) of one cpu.max file, or 0 when unlimited/unreadable. */
unsigned weft__cpu_max_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char quota[32];
	unsigned long long period = 0;
	unsigned n = 0;
	if (fscanf(f, "%31s %llu", quota, &period) == 2 && strcmp(quota, "max") != 0 &&
	    period > 0) {
		unsigned long long q = strtoull(quota, NULL, 10);
		n = (unsigned)((q + period - 1) / period);
		if (n == 0)
			n = 1;
	}
	fclose(f);
	return n;
}

/* The tightest cpu.max quota on the path from our cgroup to the root. */
static unsigned cgroup_cpu_limit(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return 0;
	char line[4096], path[4200];
	unsigned best = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue; /* cgroup v2 only */
		char *rel = line + 3;
		rel[strcspn(rel, "\n")] = 0;
		for (;;) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max",
				 strcmp(rel, "/") == 0 ? "" : rel);
			unsigned n = weft__cpu_max_file(path);
			if (n && (!best || n < best))
				best = n;
			char *slash = strrchr(rel, '/');
			if (!slash || slash == rel)
				break;
			*slash = 0;
		}
	}
	fclose(f);
	return best;
}

static int default_workers(unsigned *out)
{
	const char *e = getenv("WEFT_WORKERS");
	if (e && *e) {
		char *end;
		unsigned long n = strtoul(e, &end, 10);
		if (*end || n == 0 || n > 4096)
			return -EINVAL;
		*out = (unsigned)n;
		return 0;
	}
	cpu_set_t set;
	unsigned n = 1;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	unsigned q = cgroup_cpu_limit();
	if (q && q < n)
		n = q;
	*out = n ? n : 1;
	return 0;
}

/* ---- The stall watchdog ----------------------------------------------------------- */

/*
 * Copies the id and name of t, the task w ran at the watchdog's look with
 * sw switches counted; false if w has switched since.  t may finish, and
 * its object be reused for a new task, at any moment: w publishes another
 * current task (and counts a switch, or stores NULL) before that
 * (weft__schedule), so the copy counts only if t is still current, with
 * no switch, after it: a seqlock's reader.  The copy itself may race with
 * that reuse; a torn one is never used, and TSan is told to ignore it.
 */
static bool copy_running(struct weft__worker *w, struct weft_task *t, uint64_t sw, uint64_t *id,
			 char *name)
{
	WEFT__TSAN_IGNORE_READS_BEGIN();
	*id = t->id;
	memcpy(name, t->name, sizeof(t->name));
	WEFT__TSAN_IGNORE_READS_END();
	name[sizeof(t->name) - 1] = 0;
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&w->current, memory_order_relaxed) == t &&
	       atomic_load_explicit(&w->n_switches, memory_order_relaxed) == sw;
}

/*
 * With completions deferred to their worker, a task that keeps its worker
 * busy also holds back every completion of that worker's ring.  A thread per
 * runtime samples each worker's switch counter; a worker whose counter has
 * not moved for stall_ns while a task is on it gets one warning naming the
 * task.  Nothing is added to the switch path.
 */
static void *watchdog_main(void *arg)
{
	struct weft_rt *rt = arg;
	uint64_t period = rt->stall_ns / 4 < 5 * WEFT_MSEC ? 5 * WEFT_MSEC : rt->stall_ns / 4;
	uint64_t *last = calloc(rt->nworkers, sizeof(*last));
	uint64_t *since = calloc(rt->nworkers, sizeof(*since));
	bool *warned = calloc(rt->nworkers, sizeof(*warned));
	pthread_mutex_lock(&rt->watch_lock);
	while (last && since && warned &&
	       !atomic_load_explicit(&rt->exit_workers, memory_order_relaxed)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t dl = (uint64_t)ts.tv_sec * WEFT_SEC + (uint64_t)ts.tv_nsec + period;
		ts.tv_sec = (time_t)(dl / WEFT_SEC);
		ts.tv_nsec = (long)(dl % WEFT_SEC);
		pthread_cond_timedwait(&rt->watch_cond, &rt->watch_lock, &ts);
		uint64_t now = weft_now();
		for (unsigned i = 0; i < rt->nworkers; i++) {
			struct weft__worker *w = rt->workers[i];
			uint64_t sw = atomic_load_explicit(&w->n_switches, memory_order_relaxed);
			/* Acquire pairs with the release in prepare_run: t's id and
			 * name are initialised. */
			struct weft_task *t = atomic_load_explicit(&w->current, memory_order_acquire);
			if (sw != last[i] || !t) {
				last[i] = sw;
				since[i] = now;
				warned[i] = false;
			} else if (!warned[i] && now - since[i] >= rt->stall_ns) {
				uint64_t id;
				char name[sizeof(t->name)];
				if (!copy_running(w, t, sw, &id, name))
					continue; /* it moved on just now */
				warned[i] = true;
				fprintf(stderr,
					"weft: worker %u held by task %" PRIu64 " \"%s\" for %" PRIu64
					" ms without a suspension point; its other tasks and ring "
					"completions wait\n",
					i, id, name, (uint64_t)((now - since[i]) / WEFT_MSEC));
			}
		}
	}
	pthread_mutex_unlock(&rt->watch_lock);
	free(last);
	free(since);
	free(warned);
	return NULL;
}

/* ---- Start ------------------------------------------------------------------------ */

static void free_rt(struct weft_rt *rt)
{
	/* First: a blocking-pool thread finishing its function still wakes
	 * the task that waits for it, through the rings and queues below. */
	weft__blocking_fini(rt);
	if (rt->workers) {
		for (unsigned i = 0; i < rt->nworkers; i++) {
			struct weft__worker *w = rt->workers[i];
			if (!w)
				continue;
			if (w->thread_started && w->start_rc == 0) {
				/* The ring first: its exit ends the receives
				 * that write into the watch buffers. */
				weft__park_fini(w);
				weft__stream_fini(w);
				weft__watch_fini(w);
			}
			weft__deque_destroy(&w->deque);
			weft__timers_free(&w->timers);
			weft__stack_pool_drain(&w->stacks);
			free(w);
		}
	}
	/* Abandoned tasks give their stacks back too; then, with the pools
	 * drained above, no stack is in use and the depot unmaps its slabs. */
	weft__tasks_free_all(rt);
	weft__stack_depot_destroy(&rt->stack_depot);
	free(rt->workers);
	free(rt->sleepers);
	pthread_mutex_destroy(&rt->idle_lock);
	pthread_mutex_destroy(&rt->slab_lock);
	pthread_mutex_destroy(&rt->watch_lock);
	pthread_cond_destroy(&rt->watch_cond);
	free(rt);
}

/* Workers create their rings on their own threads (SINGLE_ISSUER), report,
 * and wait at this gate until every worker exists before running. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready, left; /* left: past the gate, done with it */
	int state; /* 0 wait, 1 go, -1 abort */
};

struct start {
	struct weft__worker *w;
	struct gate *g;
};

static void *worker_thread(void *arg)
{
	struct start *st = arg;
	struct weft__worker *w = st->w;
	struct gate *g = st->g;
	free(st);
	w->start_rc = weft__park_init(w);
	pthread_mutex_lock(&g->lock);
	g->ready++;
	pthread_cond_broadcast(&g->cond);
	while (g->state == 0)
		pthread_cond_wait(&g->cond, &g->lock);
	bool go = g->state > 0;
	g->left++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	if (go)
		weft__worker_main(w);
	/* The ring and eventfd outlive the thread: other threads may still
	 * unpark us until shutdown has joined every worker (free_rt).  Only
	 * the ring's index in this thread's table goes with it. */
	if (w->start_rc == 0)
		weft__park_thread_exit(w);
	return NULL;
}

static void pin(pthread_t th, unsigned i)
{
	cpu_set_t set, one;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	unsigned seen = 0, n = (unsigned)CPU_COUNT(&set);
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (seen++ == i % n) {
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			pthread_setaffinity_np(th, sizeof(one), &one);
			return;
		}
	}
}

int weft_rt_new(struct weft_rt **out, const struct weft_opts *opts)
{
	struct weft_opts o = opts ? *opts : (struct weft_opts){0};
	unsigned n = o.workers;
	if (!n) {
		int rc = default_workers(&n);
		if (rc < 0)
			return rc;
	}
	struct weft_rt *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->nworkers = n;
	size_t page = weft__page_size();
	rt->stack_size = ((o.stack_size ? o.stack_size : DEFAULT_STACK) + page - 1) & ~(page - 1);
	weft__stack_depot_init(&rt->stack_depot, rt->stack_size);
	rt->shutdown_ns = o.shutdown_timeout_ns ? o.shutdown_timeout_ns : DEFAULT_SHUTDOWN_NS;
	rt->stall_ns = o.stall_warn_ns ? o.stall_warn_ns : DEFAULT_STALL_NS;
	rt->pin = o.pin_workers;
	rt->spin_ns = o.idle_spin_ns == WEFT_NEVER ? 0
		      : o.idle_spin_ns	     ? o.idle_spin_ns
					     : WEFT__SPIN_NS;
	rt->fp_ctl = weft__fp_ctl_read();
	pthread_mutex_init(&rt->idle_lock, NULL);
	pthread_mutex_init(&rt->slab_lock, NULL);
	pthread_mutex_init(&rt->watch_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rt->watch_cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_store(&rt->idle_state, (uint64_t)n << 32);
	rt->workers = calloc(n, sizeof(*rt->workers));
	rt->sleepers = calloc(n, sizeof(*rt->sleepers));
	if (!rt->workers || !rt->sleepers)
		goto nomem;
	if (weft__blocking_init(rt, o.blocking_threads, o.blocking_idle_ns) < 0)
		goto nomem;
	for (unsigned i = 0; i < n; i++) {
		struct weft__worker *w = aligned_alloc(64, (sizeof(*w) + 63) & ~(size_t)63);
		if (!w)
			goto nomem;
		memset(w, 0, sizeof(*w));
		rt->workers[i] = w;
		w->rt = rt;
		w->index = i;
		w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
		w->tick = WEFT__GLOBAL_INTERVAL;
		w->stacks.size = rt->stack_size;
		w->stacks.max = STACK_POOL_MAX;
		w->stacks.depot = &rt->stack_depot;
		if (weft__deque_init(&w->deque, 8) < 0)
			goto nomem;
	}
	weft__fault_install();

	/* Workers (and the watchdog, below) block every asynchronous signal
	 * (they are the application's business, not ours); faults stay
	 * deliverable for fault.c. */
	sigset_t all, old;
	sigfillset(&all);
	int sync_sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS};
	for (size_t i = 0; i < sizeof(sync_sigs) / sizeof(sync_sigs[0]); i++)
		sigdelset(&all, sync_sigs[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);

	struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
	unsigned started = 0;
	int rc = 0;
	for (; started < n; started++) {
		struct start *st = malloc(sizeof(*st));
		if (!st) {
			rc = -ENOMEM;
			break;
		}
		*st = (struct start){rt->workers[started], &g};
		int e = pthread_create(&rt->workers[started]->thread, NULL, worker_thread, st);
		if (e) {
			free(st);
			rc = -e;
			break;
		}
		rt->workers[started]->thread_started = true;
		if (rt->pin)
			pin(rt->workers[started]->thread, started);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_lock(&g.lock);
	while (g.ready < started)
		pthread_cond_wait(&g.cond, &g.lock);
	for (unsigned i = 0; i < started; i++)
		if (rt->workers[i]->start_rc < 0 && rc == 0) {
			rc = rt->workers[i]->start_rc;
			if (rt->workers[i]->start_ring_failed)
				weft__ring_explain(rc);
			else /* the ring was set up; its wake-up eventfd was not */
				fprintf(stderr, "weft: cannot create a worker's wake-up eventfd: %s\n",
					strerror(-rc));
		}
	g.state = rc < 0 ? -1 : 1;
	pthread_cond_broadcast(&g.cond);
	while (g.left < started) /* g lives on this stack */
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	if (rc < 0) {
		for (unsigned i = 0; i < started; i++)
			pthread_join(rt->workers[i]->thread, NULL);
		free_rt(rt);
		return rc;
	}
	if (rt->stall_ns != WEFT_NEVER) {
		/* Blocking what the workers block: a signal the application
		 * waits for with weft_signal_wait must not land here. */
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&rt->watchdog, NULL, watchdog_main, rt) == 0)
			rt->watchdog_started = true;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	*out = rt;
	return 0;
nomem:
	free_rt(rt);
	return -ENOMEM;
}

unsigned weft_rt_workers(const struct weft_rt *rt)
{
	return rt->nworkers;
}

void weft_rt_stats(const struct weft_rt *rt, struct weft_rt_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct weft__worker *w = rt->workers[i];
		out->spawned += atomic_load_explicit(&w->n_spawned, memory_order_relaxed);
		out->steals += atomic_load_explicit(&w->n_steals, memory_order_relaxed);
		out->parks += atomic_load_explicit(&w->n_parks, memory_order_relaxed);
		out->wakeups += atomic_load_explicit(&w->n_wakeups, memory_order_relaxed);
		out->switches += atomic_load_explicit(&w->n_switches, memory_order_relaxed);
		out->submitted += atomic_load_explicit(&w->n_submitted, memory_order_relaxed);
	}
	int64_t live = weft__tasks_live(rt);
	out->live = live > 0 ? (uint64_t)live : 0;
}

int weft_rt_run(struct weft_rt *rt, weft_fn fn, void *arg, intptr_t *result)
{
	if (weft__worker_here())
		return -EDEADLK;
	struct weft_task *t = weft_rt_spawn(rt, fn, arg, &(struct weft_spawn_opts){.name = "main"});
	if (!t)
		return atomic_load(&rt->stopping) ? -ESHUTDOWN : -ENOMEM;
	return weft_block_on(t, result);
}

/* ---- Shutdown --------------------------------------------------------------------- */

int weft_rt_shutdown(struct weft_rt *rt, uint64_t timeout_ns)
{
	int rc = 0;
	atomic_store_explicit(&rt->stopping, true, memory_order_release);
	uint64_t deadline = weft_now() + (timeout_ns ? timeout_ns : rt->shutdown_ns);
	for (;;) {
		/* The walk is the authority on what still runs: handles that
		 * were never joined keep finished tasks' objects, not their
		 * stacks, and do not hold shutdown up. */
		uint64_t before = weft__tasks_spawned(rt);
		uint64_t running = weft__tasks_cancel_all(rt);
		/* The walk is no snapshot: a task it passed may have spawned
		 * one into a slot it had already seen free.  A walk that found
		 * none counts only if no spawn happened meanwhile. */
		if (running == 0 && weft__tasks_spawned(rt) == before)
			break;
		if (weft_now() >= deadline) {
			weft__tasks_report_live(rt);
			rc = -ETIMEDOUT;
			break;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	atomic_store_explicit(&rt->exit_workers, true, memory_order_release);
	weft__idle_wake_all(rt);
	for (unsigned i = 0; i < rt->nworkers; i++)
		pthread_join(rt->workers[i]->thread, NULL);
	/* No thread outside the runtime may still be inside it (see
	 * weft__outside_enter); acquire pairs with their leave. */
	while (atomic_load_explicit(&rt->outside, memory_order_acquire))
		sched_yield();
	if (rt->watchdog_started) {
		pthread_mutex_lock(&rt->watch_lock);
		pthread_cond_signal(&rt->watch_cond);
		pthread_mutex_unlock(&rt->watch_lock);
		pthread_join(rt->watchdog, NULL);
	}
	free_rt(rt);
	return rc;
}

intptr_t weft_main(weft_fn fn, void *arg, const struct weft_opts *opts)
{
	struct weft_rt *rt;
	int rc = weft_rt_new(&rt, opts);
	if (rc < 0)
		return rc;
	intptr_t result = 0;
	rc = weft_rt_run(rt, fn, arg, &result);
	weft_rt_shutdown(rt, 0);
	return rc < 0 ? rc : result;
}
