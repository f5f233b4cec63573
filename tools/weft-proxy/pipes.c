// SPDX-License-Identifier: MIT
/*
 * pipes.c - the pipes of the spliced data path (relay.c), pooled per
 * worker thread.
 *
 * A splice moves bytes socket -> pipe -> socket inside the kernel, so a
 * transfer needs a pipe; making one is two descriptors, a pipe2 and an
 * fcntl, and closing it two closes, which is too much for every burst of
 * a connection.  So each thread keeps up to POOL_MAX empty pipes; a
 * transfer takes one and gives it back as soon as its source has nothing
 * more ready, so an idle connection holds none.  A pool that is full
 * closes what comes back: the pool is bounded by its size, and the pipes
 * in use by the transfers running now.
 *
 * The pool is reached through a pthread key, not a __thread variable:
 * tasks move between worker threads at suspension points, and a compiler
 * may keep the address of a __thread variable in a register across a call
 * that suspends.  pthread_getspecific is an opaque call, made afresh on
 * each pipes_get and pipes_put, so it always names the pool of the thread
 * the task runs on now; a pipe may thus come back to another thread's pool
 * than the one it left, which is fine (pipes are the process's).  Each
 * pool is touched only by its own thread, so it needs no lock; the key's
 * destructor closes a pool's pipes when its worker thread ends.
 *
 * Pipes in existence, pooled or in use, are counted and capped
 * (pipes_limit): each takes two descriptors, which would otherwise come
 * out of those the proxy keeps for connections.
 *
 * For the metrics (pipes_stats), the pipes in all pools are counted too,
 * and the pipes_get calls that failed, at the limit or making a pipe: the
 * relay moves each such burst buffered, so these are its fallbacks.  The
 * counts are process-wide relaxed atomics, one add per pipe taken from or
 * given to a pool: a spliced burst costs two splices through io_uring's
 * workers besides, so summing per-thread counts instead would save
 * nothing worth a registry of pools.
 *
 * Invariant: a pipe in a pool holds no bytes (relay.c drops, rather than
 * returns, a pipe a failed transfer may have left bytes in).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "pipes.h"

/* Each pipe's size.  Measured with 64 connections streaming through the
 * proxy: 256 KiB cost as little CPU per MB as 1 MiB (the most an
 * unprivileged process gets), the default 64 KiB about 1.5 times that;
 * it takes a quarter of 1 MiB's share of the per-user pipe quota. */
#define PIPES_SIZE (256u << 10)

/* Empty pipes kept per thread: as many as a worker may hold at all. */
#define POOL_MAX PIPES_PER_WORKER

/* Pipes in existence and the most there may be (pipes_limit); those in
 * the pools, and pipes_get's failures (pipes_stats).  Relaxed, all: each
 * is a count on its own. */
static _Atomic size_t made;
static _Atomic size_t made_max = SIZE_MAX;
static _Atomic size_t pooled;
static _Atomic uint64_t refused_limit, refused_error;

struct pool {
	unsigned n;
	struct pipe_pair p[POOL_MAX];
};

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_rc;

static void pool_free(void *arg)
{
	struct pool *pool = arg;
	for (unsigned i = 0; i < pool->n; i++)
		pipes_drop(&pool->p[i]);
	atomic_fetch_sub_explicit(&pooled, pool->n, memory_order_relaxed);
	free(pool);
}

static void key_init(void)
{
	key_rc = -pthread_key_create(&key, pool_free);
}

/* The calling thread's pool, made on first use; NULL when out of memory. */
static struct pool *pool_here(void)
{
	pthread_once(&key_once, key_init);
	if (key_rc)
		return NULL;
	struct pool *pool = pthread_getspecific(key);
	if (!pool && (pool = calloc(1, sizeof(*pool))) && pthread_setspecific(key, pool)) {
		free(pool);
		pool = NULL;
	}
	return pool;
}

int pipes_get(struct pipe_pair *p)
{
	struct pool *pool = pool_here();
	if (pool && pool->n) {
		*p = pool->p[--pool->n];
		atomic_fetch_sub_explicit(&pooled, 1, memory_order_relaxed);
		return 0;
	}
	/* Relaxed: a count on its own, and an overshoot is undone. */
	if (atomic_fetch_add_explicit(&made, 1, memory_order_relaxed) >=
	    atomic_load_explicit(&made_max, memory_order_relaxed)) {
		atomic_fetch_sub_explicit(&made, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&refused_limit, 1, memory_order_relaxed);
		return -EMFILE;
	}
	int fd[2];
	if (pipe2(fd, O_CLOEXEC) < 0) {
		int rc = -errno;
		atomic_fetch_sub_explicit(&made, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&refused_error, 1, memory_order_relaxed);
		return rc;
	}
	/* EPERM past the per-user pipe quota (pipe-user-pages-soft): the
	 * pipe keeps the kernel's size, and works as well, moving less per
	 * splice. */
	int size = fcntl(fd[1], F_SETPIPE_SZ, PIPES_SIZE);
	if (size < 0)
		size = fcntl(fd[1], F_GETPIPE_SZ);
	if (size <= 0) {
		int rc = size < 0 ? -errno : -EINVAL;
		*p = (struct pipe_pair){.r = fd[0], .w = fd[1]};
		pipes_drop(p);
		atomic_fetch_add_explicit(&refused_error, 1, memory_order_relaxed);
		return rc;
	}
	*p = (struct pipe_pair){.r = fd[0], .w = fd[1], .size = (size_t)size};
	return 0;
}

void pipes_put(struct pipe_pair *p)
{
	struct pool *pool = pool_here();
	if (pool && pool->n < POOL_MAX) {
		pool->p[pool->n++] = *p;
		atomic_fetch_add_explicit(&pooled, 1, memory_order_relaxed);
	} else {
		pipes_drop(p);
	}
}

void pipes_drop(struct pipe_pair *p)
{
	close(p->r);
	close(p->w);
	atomic_fetch_sub_explicit(&made, 1, memory_order_relaxed);
}

void pipes_limit(size_t max)
{
	atomic_store_explicit(&made_max, max, memory_order_relaxed);
}

void pipes_stats(struct pipes_stats *out)
{
	/* Pooled first, so that a pipe made and pooled between the two loads
	 * makes in_use err high, not negative; a pooled pipe closed in
	 * between (a worker's end) can still make the difference negative,
	 * hence the clamp. */
	size_t pool_n = atomic_load_explicit(&pooled, memory_order_relaxed);
	size_t all = atomic_load_explicit(&made, memory_order_relaxed);
	out->pooled = pool_n;
	out->in_use = all > pool_n ? all - pool_n : 0;
	out->limit = atomic_load_explicit(&made_max, memory_order_relaxed);
	out->refused_limit = atomic_load_explicit(&refused_limit, memory_order_relaxed);
	out->refused_error = atomic_load_explicit(&refused_error, memory_order_relaxed);
}
