// SPDX-License-Identifier: MIT
/*
 * weft.h - the public API of weft: tasks, runtimes, deadlines, cancellation
 * and task groups.  Synchronisation lives in <weft/sync.h>.
 *
 * Conventions, for every function below:
 *  - An int return is >= 0 on success or a negative errno; errno is never
 *    read or set.  A pointer return is NULL for the one reason documented.
 *  - "Task only" functions must be called from code running inside a weft
 *    task; "any thread" functions may be called from anywhere, tasks included.
 *  - A suspension point is any call that may park the calling task.  Every
 *    suspension point honours the task's deadline (returns -ETIMEDOUT once it
 *    has passed) and its cancellation (returns -ECANCELED), unless a shield
 *    is in force.  An operation that completed before the cancellation or
 *    deadline took effect returns its result, never -ECANCELED/-ETIMEDOUT.
 *    The suspension points are: weft_yield, weft_sleep, weft_join,
 *    weft_group_wait, weft_spawn_blocking, the blocking calls of
 *    <weft/sync.h>, and the I/O calls of <weft/io.h> and <weft/net.h>.  A
 *    timed suspension outside <weft/io.h> (a deadline in force, or
 *    weft_sleep) may also return -ENOMEM when its timer cannot be stored.
 *  - Cancellation is cooperative: a task that never reaches a suspension
 *    point cannot be stopped, and shutdown waits for it.
 *  - Tasks migrate between threads at suspension points.  Do not keep the
 *    address of a thread-local variable (errno included) across one, or
 *    spawn the task with WEFT_SPAWN_PINNED.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_API __attribute__((visibility("default")))

/* Durations and deadlines are nanoseconds of CLOCK_MONOTONIC. */
#define WEFT_USEC 1000ull
#define WEFT_MSEC 1000000ull
#define WEFT_SEC  1000000000ull
#define WEFT_NEVER UINT64_MAX

/*
 * A task's body.  Its return value is the task's result, handed to
 * weft_join.  By convention a negative value in [-4095, -1] is a failure
 * (a negative errno); task groups count those as failures.
 */
typedef intptr_t (*weft_fn)(void *arg);

struct weft_rt;   /* a runtime: worker threads with their rings and queues */
struct weft_task; /* a handle to a spawned task */

/* ---- Runtimes ------------------------------------------------------------ */

struct weft_opts {
	/* Worker threads.  0: the CPUs this process may use (affinity mask,
	 * bounded by the cgroup's cpu.max quota), unless WEFT_WORKERS is set. */
	unsigned workers;
	/* Default task stack size in bytes, rounded up to pages; 0: 64 KiB. */
	size_t stack_size;
	/* Pin worker i to the i-th CPU of the affinity mask. */
	int pin_workers;
	/* How long shutdown lets cancelled tasks clean up; 0: 5 s. */
	uint64_t shutdown_timeout_ns;
	/* A task running this long without suspending draws a warning
	 * naming it; 0: 100 ms; WEFT_NEVER disables the check. */
	uint64_t stall_warn_ns;
	/* How long a worker out of work polls before it sleeps in its ring;
	 * 0: 50 us; WEFT_NEVER: never poll, sleep at once (tests use this to
	 * exercise the sleep/wake path). */
	uint64_t idle_spin_ns;
	/* Most threads the blocking pool (weft_spawn_blocking) runs at once;
	 * 0: 64.  Threads start as jobs arrive; further jobs queue. */
	unsigned blocking_threads;
	/* How long a blocking-pool thread waits for a job before it exits;
	 * 0: 10 s. */
	uint64_t blocking_idle_ns;
};

/*
 * Runs a runtime until fn(arg), its main task, returns; then cancels the
 * remaining tasks, shuts down as weft_rt_shutdown does, and returns the
 * main task's result, which may itself be negative (fn's own, or -ENOMEM
 * when the main task could get no stack).  opts may be NULL.  Any thread
 * that is not a worker.  Otherwise a negative errno: when the runtime could
 * not start, -ENOMEM, -EINVAL (a malformed WEFT_WORKERS), -EAGAIN
 * (threads), the error io_uring_queue_init gave (-ENOSYS, -EPERM where
 * io_uring is disabled) or that of eventfd(2) for a worker's wake-up
 * descriptor (-EMFILE, -ENFILE); -ENOMEM when the main task could not be
 * made; -EDEADLK on a worker thread.
 */
WEFT_API intptr_t weft_main(weft_fn fn, void *arg, const struct weft_opts *opts);

/*
 * Starts a runtime with its worker threads and stores it in *rt.  opts may be
 * NULL.  Returns 0, -ENOMEM, -EINVAL (a malformed WEFT_WORKERS), -EAGAIN
 * (threads), the error of io_uring_queue_init, or that of eventfd(2) for a
 * worker's wake-up descriptor (-EMFILE, -ENFILE).  When io_uring cannot be
 * set up, a line on stderr also says why in words: -EPERM, a seccomp profile
 * (Docker's default) or sysctl kernel.io_uring_disabled; -ENOMEM, the
 * locked-memory limit of kernels before 5.12; -ENOSYS, no io_uring in the
 * kernel.  Any thread.
 */
WEFT_API int weft_rt_new(struct weft_rt **rt, const struct weft_opts *opts);

/*
 * Spawns fn(arg) in rt from outside (through the runtime's injection queue).
 * opts may be NULL.  Returns the handle, or NULL when out of memory or when
 * rt is shutting down.  Any thread.
 */
struct weft_spawn_opts;
WEFT_API struct weft_task *weft_rt_spawn(struct weft_rt *rt, weft_fn fn, void *arg,
					 const struct weft_spawn_opts *opts);

/*
 * Blocks the calling thread until task t finishes, stores its result in
 * *result (if not NULL) and releases the handle.  Any thread that is not a
 * worker: use weft_join inside tasks.  Returns 0, or -EDEADLK when called on
 * a worker thread (the handle is then still owned by the caller).
 */
WEFT_API int weft_block_on(struct weft_task *t, intptr_t *result);

/* Spawns fn(arg) in rt and blocks on it, as weft_block_on.  Any non-worker
 * thread.  Returns 0, -ENOMEM, -ESHUTDOWN (rt is shutting down) or
 * -EDEADLK (called on a worker thread). */
WEFT_API int weft_rt_run(struct weft_rt *rt, weft_fn fn, void *arg, intptr_t *result);

/*
 * Shuts rt down: refuses new spawns from outside, cancels every task, lets
 * them clean up until timeout_ns (0: the runtime's shutdown_timeout_ns), names
 * on stderr each task that is still alive then, stops the workers and frees
 * everything the runtime owns, including those tasks' stacks.  Returns 0, or
 * -ETIMEDOUT when tasks had to be abandoned.  Any non-worker thread.  A
 * thread that woke one of rt's tasks (weft_future_resolve, weft_cancel, ...)
 * may still be finishing that call: shutdown waits for it.  Calls that start
 * after shutdown has begun are the caller's error, and rt is invalid once it
 * returns.
 */
WEFT_API int weft_rt_shutdown(struct weft_rt *rt, uint64_t timeout_ns);

/* The number of worker threads of rt.  Any thread. */
WEFT_API unsigned weft_rt_workers(const struct weft_rt *rt);

/* Counters of a runtime, summed over its workers.  Racy snapshots. */
struct weft_rt_stats {
	uint64_t spawned;  /* tasks spawned */
	uint64_t steals;   /* tasks taken from another worker's deque */
	uint64_t parks;    /* times a worker went to sleep in its ring */
	uint64_t wakeups;  /* times a worker was woken by another thread */
	uint64_t switches; /* task switches */
	uint64_t live;     /* tasks spawned and not yet freed: running, or ended with
			    * a handle not yet released (a detached task until it ends) */
	uint64_t submitted; /* SQEs handed to the kernel, over all rings */
};
/* Fills *out with the counters now (each read on its own, so a sum may be a
 * moment old).  Any thread, while rt lives; never suspends; no failure. */
WEFT_API void weft_rt_stats(const struct weft_rt *rt, struct weft_rt_stats *out);

/* ---- Tasks ---------------------------------------------------------------- */

enum {
	/* Keep the task on the worker it starts on (the spawning worker, worker
	 * 0 for a spawn from outside, or opts->worker with WEFT_SPAWN_ON): it
	 * never migrates, so it may hold thread-local addresses and use
	 * per-ring registered files. */
	WEFT_SPAWN_PINNED = 1u << 0,
	/* Start the task on worker opts->worker (modulo the worker count). */
	WEFT_SPAWN_ON = 1u << 1,
};

struct weft_spawn_opts {
	const char *name;  /* copied, at most 15 bytes kept; NULL: unnamed */
	size_t stack_size; /* 0: the runtime's default */
	unsigned flags;    /* WEFT_SPAWN_* */
	unsigned worker;   /* with WEFT_SPAWN_ON: which worker */
};

/*
 * Spawns fn(arg) as a new task on the calling worker (idle workers will
 * steal it).  opts may be NULL.  The handle must be passed exactly once to
 * weft_join, weft_block_on or weft_detach.  Returns NULL only when out of
 * memory for the task object.  The stack is mapped when the task first
 * runs; if that fails the task finishes at once with -ENOMEM as its
 * result.  Task only.
 */
WEFT_API struct weft_task *weft_spawn(weft_fn fn, void *arg, const struct weft_spawn_opts *opts);

/*
 * Waits for t to finish, stores its result in *result (if not NULL) and
 * releases the handle.  Returns 0; or, leaving the handle owned by the
 * caller, -ECANCELED / -ETIMEDOUT when the *caller* was cancelled or hit its
 * deadline first, -ENOMEM when its deadline's timer could not be stored,
 * and -EDEADLK when t is the caller.  Task only; a suspension point.
 */
WEFT_API int weft_join(struct weft_task *t, intptr_t *result);

/* Releases the handle; the task runs on and frees itself.  Any thread. */
WEFT_API void weft_detach(struct weft_task *t);

/*
 * Requests cancellation of t.  Sticky: a suspended task wakes with
 * -ECANCELED, a running one sees it at its next suspension point, and every
 * later suspension point reports it too (outside shields).  Cancelling a
 * finished task does nothing.  The handle stays owned by the caller.  Any
 * thread.
 */
WEFT_API void weft_cancel(struct weft_task *t);

/* The calling task, or NULL outside tasks.  Any thread.  The pointer is a
 * borrowed reference: it may be passed to weft_cancel and the weft_task_*
 * getters while the task runs, never to join/detach. */
WEFT_API struct weft_task *weft_self(void);

/* The task's unique id (1, 2, ...) and name ("" when unnamed).  Valid while
 * the handle is owned.  Any thread. */
WEFT_API uint64_t weft_task_id(const struct weft_task *t);
WEFT_API const char *weft_task_name(const struct weft_task *t);

/* Whether cancellation was requested of the calling task.  Task only. */
WEFT_API int weft_cancelled(void);

/*
 * Lets every other ready task of this worker run once, then resumes.  Returns
 * 0, or -ECANCELED / -ETIMEDOUT (checked after resuming): a CPU-bound loop
 * that calls it is cancellable.  Task only; a suspension point.
 */
WEFT_API int weft_yield(void);

/*
 * Suspends the calling task for ns nanoseconds.  Returns 0 when the time has
 * passed, -ETIMEDOUT when the task's deadline comes first, -ECANCELED when
 * cancelled, -ENOMEM when its timer could not be stored.  Task only; a
 * suspension point.
 */
WEFT_API int weft_sleep(uint64_t ns);

/* CLOCK_MONOTONIC in nanoseconds.  Any thread. */
WEFT_API uint64_t weft_now(void);

/* ---- Blocking work -------------------------------------------------------- */

/*
 * Runs fn(arg) on a thread of the runtime's blocking pool while the calling
 * task parks (its worker runs other tasks meanwhile), and stores fn's return
 * value in *result (if not NULL).  For calls that would hold a worker:
 * getaddrinfo, file systems io_uring cannot drive, libraries without an
 * asynchronous API.  The pool starts threads as jobs arrive, up to
 * weft_opts.blocking_threads; later jobs wait in a FIFO queue for a free
 * thread.  A thread idle for weft_opts.blocking_idle_ns exits.
 *
 * fn runs on a plain thread, not in a task: it may call only the "any
 * thread" functions of weft (weft_future_resolve, weft_rt_spawn, ...).
 *
 * Cancellation and the deadline reach the call only while the job is still
 * queued: it is then withdrawn, fn never runs, and the call returns
 * -ECANCELED / -ETIMEDOUT.  fn itself cannot be interrupted: once it has
 * started, the call waits for it to return (that wait is shielded and has
 * no deadline) and returns 0 with its result, and the next suspension point
 * reports the cancellation or deadline.  So arg may point into the caller's
 * stack, and whatever fn acquires (a descriptor, memory) reaches the caller.
 *
 * Shutdown waits for the functions that are running, however long they
 * take, as it waits for a task that never suspends.
 *
 * Returns 0 with *result set; or, fn not having run: -ECANCELED,
 * -ETIMEDOUT, -ENOMEM (the deadline's timer could not be stored), or
 * -EAGAIN (the pool has no thread and could not start one).  Task only; a
 * suspension point.
 */
WEFT_API int weft_spawn_blocking(weft_fn fn, void *arg, intptr_t *result);

/* ---- Deadlines and shields ------------------------------------------------ */

/*
 * A scope lives on the caller's stack between weft_scope_* and
 * weft_scope_end, which must pair up in LIFO order within one task.  Its
 * fields are private.
 *
 * weft_scope_deadline: every suspension point inside returns -ETIMEDOUT once
 * weft_now() >= now + timeout_ns.  Scopes nest; the earliest deadline wins.
 *
 * weft_scope_shield: for cleanup that must run after a cancellation: inside,
 * cancellation is not reported (it stays pending and is reported after
 * weft_scope_end), and outer deadlines are replaced by now + timeout_ns so the
 * cleanup is bounded.
 *
 * weft_scope_end returns 1 when this scope's own deadline has passed by
 * now, else 0; after a 0, an -ETIMEDOUT seen inside came from an outer
 * scope.
 * All three: task only; none suspends.
 */
struct weft_scope {
	uint64_t deadline, saved_deadline;
	unsigned saved_shield, flags;
};
WEFT_API void weft_scope_deadline(struct weft_scope *s, uint64_t timeout_ns);
WEFT_API void weft_scope_shield(struct weft_scope *s, uint64_t timeout_ns);
WEFT_API int weft_scope_end(struct weft_scope *s);

/* ---- Task groups (structured concurrency) --------------------------------- */

/*
 * A group owns the tasks spawned into it: none outlives weft_group_wait.  A
 * child *fails* when it returns a value in [-4095, -1] (a negative errno,
 * -ECANCELED included).  With WEFT_GROUP_FAIL_FAST the first failure cancels
 * every sibling; without, children run to the end whatever happens.
 */
enum { WEFT_GROUP_FAIL_FAST = 1u << 0 };
struct weft_group;

/* Returns a new group, or NULL when out of memory.  Any thread. */
WEFT_API struct weft_group *weft_group_new(unsigned flags);

/*
 * Spawns fn(arg) into g on the calling worker.  Returns 0 or -ENOMEM.  A
 * child spawned into a cancelled group starts cancelled: it fails at its
 * first suspension point.  Task only.
 */
WEFT_API int weft_group_spawn(struct weft_group *g, weft_fn fn, void *arg,
			      const struct weft_spawn_opts *opts);

/* Cancels every child of g, and children spawned later.  Any thread. */
WEFT_API void weft_group_cancel(struct weft_group *g);

/*
 * Waits until every child has finished.  If the caller is cancelled or its
 * deadline passes meanwhile, the children are cancelled and the wait goes on
 * until they have all finished: no child outlives this call.  Returns 0 when
 * no child failed, else the first failure's result; -ECANCELED/-ETIMEDOUT
 * when the caller's own cancellation or deadline cut the group short, and
 * -ENOMEM when the caller's deadline could not be kept (no memory for its
 * timer), which cuts the group short likewise.  One task at a time may
 * wait on a group.  Task only; a suspension point.
 */
WEFT_API int weft_group_wait(struct weft_group *g);

/* Frees g, which must have no running child (after weft_group_wait, or
 * before any spawn).  Any thread. */
WEFT_API void weft_group_free(struct weft_group *g);

#ifdef __cplusplus
}
#endif

#include "weft/sync.h"

#endif
