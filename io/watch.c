// SPDX-License-Identifier: MIT
/*
 * watch.c - connections that wait without a task.
 *
 * A server with ten thousand idle keep-alive connections should not hold
 * ten thousand stacks, nor ten thousand receive buffers.  weft_watch hands a
 * descriptor to the runtime: it arms one receive on the calling worker's
 * ring with IOSQE_BUFFER_SELECT, and the kernel picks a buffer from the
 * worker's provided-buffer ring only when bytes arrive.  Until then the
 * connection costs a small record (struct weft__watch) and the kernel's
 * poll entry.  The completion starts a task that runs the user's function
 * with the bytes; the buffer goes back to the ring when that function
 * returns.  To wait again, the function calls weft_watch once more.
 *
 * The buffer ring is the worker's (io/bufs.c, shared with streams); a
 * buffer freed on another worker (the task was stolen) goes back through
 * the owner.
 *
 * Receives are single-shot.  A multishot receive would keep delivering into
 * buffers while the started task runs, so the bytes would need a queue per
 * connection (that is what a stream is, io/stream.c); one receive per wait
 * keeps the record at a few dozen bytes and lets the connection move to
 * whichever worker runs its task.  A receive polls first, so it looks for
 * a buffer only once bytes came; one that finds the ring empty then fails
 * with -ENOBUFS: the watch waits on the owner's starved list and is
 * re-armed when buffers come back, never in a loop on an empty ring.
 * Bytes came, so from then on its idle timeout no longer applies: under
 * buffer pressure a busy connection is not closed as an idle one.
 *
 * Timeouts are idle timeouts: they need no precision, and a kernel linked
 * timeout per wait (an hrtimer armed and disarmed for every request of a
 * keep-alive connection) cost 7% of an HTTP server's CPU.  Instead each
 * record notes when it expires, and a sweeper task pinned to the owner,
 * alive while the owner has watches (or watched streams, stream.c) with a
 * timeout, wakes every quarter of the shortest timeout (10 ms to 1 s) and
 * cancels the receives that have expired (IORING_OP_ASYNC_CANCEL; the
 * -ECANCELED completion is reported as -ETIMEDOUT).  A watch with a
 * shorter timeout than any before pokes the sleeping sweeper (a semaphore
 * it waits on under a deadline), which then starts over at the shorter
 * interval.  A timeout therefore fires between its time and one interval
 * later (a quarter of it, but at least 10 ms and at most 1 s), never
 * before.  The interval shrinks
 * but does not grow back while the sweeper lives: a short timeout seen
 * once costs more frequent sweeps, not lateness.
 *
 * Invariants:
 *  1. A record is on its owner's `watches` list exactly while its receive is
 *     in the kernel, and then counts in owner->io_inflight (so a busy worker
 *     reaps it within an interval, as any operation).
 *  2. A record is either armed, starved, or owned by the task running its
 *     function: nothing else frees it.
 *  3. A buffer id is in the ring, or held by exactly one record, or on the
 *     owner's return list: each id returns once.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/internal.h"
#include "scheduler/internal.h"
#include "weft.h"
#include "weft/io.h"

struct weft__watch {
	LIST_ENTRY(weft__watch) link;    /* owner's watches (armed) or starved list */
	struct weft__worker *owner;      /* whose ring the receive is on */
	weft_watch_fn fn;
	void *arg;
	int fd;
	int res;                         /* the receive's result */
	uint64_t expires;                /* weft_now() + timeout; WEFT_NEVER: none */
	bool expired;                    /* the sweeper cancelled the receive */
	int bid;                         /* buffer held, or -1 */
};

#define SWEEP_MIN (10 * WEFT_MSEC)
#define SWEEP_MAX WEFT_SEC

static intptr_t sweeper(void *arg);

/* Owner only: hands x's receive to the ring (invariant 1). */
static void arm(struct weft__worker *w, struct weft__watch *x)
{
	struct io_uring_sqe *sqe = weft__io_sqe(w);
	io_uring_prep_recv(sqe, x->fd, NULL, WEFT__BUFS_SIZE, 0);
	/* Poll first (see the top): a receive tried at once picks its buffer
	 * before it looks for bytes, so with the ring empty it would fail with
	 * -ENOBUFS though none came, and an idle connection would lose its
	 * timeout. */
	sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = WEFT__BUFS_GROUP;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)x | WEFT__TAG_WATCH);
	LIST_INSERT_HEAD(&w->watches, x, link);
	w->io_inflight++;
}

/* Owner only (in a task or in its loop): a watch with this timeout began;
 * make sure a sweeper looks, often enough. */
int weft__sweep_need(struct weft__worker *w, uint64_t timeout)
{
	struct weft__bufs *b = &w->bufs;
	uint64_t every = timeout / 4;
	every = every < SWEEP_MIN ? SWEEP_MIN : every > SWEEP_MAX ? SWEEP_MAX : every;
	if (!b->sweep_every || every < b->sweep_every) {
		bool asleep = b->sweeping && b->sweep_every;
		b->sweep_every = every;
		if (asleep) /* for the longer interval: have it start over */
			weft_sem_release(&b->poke);
	}
	b->ntimed++;
	if (b->sweeping)
		return 0;
	struct weft_spawn_opts o = {.name = "weft-sweeper", .flags = WEFT_SPAWN_PINNED};
	struct weft_task *t = weft__task_new_stacked(w, sweeper, w, &o);
	if (!t) {
		b->ntimed--;
		return -ENOMEM;
	}
	weft__enqueue(w->rt, t, false);
	weft_detach(t);
	b->sweeping = true;
	return 0;
}

int weft_watch(int fd, uint64_t timeout_ns, weft_watch_fn fn, void *arg)
{
	struct weft_task *self = weft__current();
	struct weft__worker *w = self->worker;
	if (fd < 0 || !fn)
		return -EINVAL;
	int rc = weft__bufs_init(w);
	if (rc < 0)
		return rc;
	struct weft__watch *x = malloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	*x = (struct weft__watch){
		.owner = w, .fn = fn, .arg = arg, .fd = fd, .expires = WEFT_NEVER, .bid = -1,
	};
	if (timeout_ns != WEFT_NEVER) {
		x->expires = weft__expiry(timeout_ns);
		if ((rc = weft__sweep_need(w, timeout_ns)) < 0) {
			free(x);
			return rc;
		}
	}
	arm(w, x);
	return 0;
}

/* The task that runs a watch's function once its receive completed. */
static intptr_t watch_run(void *arg)
{
	struct weft__watch *x = arg;
	const void *data = x->bid >= 0 ? weft__buf(&x->owner->bufs, (unsigned)x->bid) : NULL;
	x->fn(x->fd, data, x->res, x->arg);
	if (x->bid >= 0)
		weft__buf_give(x->owner, weft__current()->worker, (unsigned)x->bid); /* invariant 3 */
	free(x);
	return 0;
}

/* Owner only: x's wait is over with res (and buffer bid, or -1): start
 * its function. */
static void deliver(struct weft__worker *w, struct weft__watch *x, int res, int bid)
{
	if (x->expires != WEFT_NEVER)
		w->bufs.ntimed--;
	if (x->expired && (res == -ECANCELED || res == -ENOBUFS))
		res = -ETIMEDOUT; /* the sweeper found it expired */
	x->res = res;
	x->bid = bid;
	if (bid >= 0)
		w->bufs.held++;
	struct weft_task *t = weft__task_new_stacked(w, watch_run, x, NULL);
	if (!t) {
		/* Out of memory for a task or its stack: the connection is
		 * dropped, the process goes on. */
		if (bid >= 0)
			weft__buf_put(&w->bufs, (unsigned)bid);
		close(x->fd);
		free(x);
		return;
	}
	weft__enqueue(w->rt, t, true);
	weft_detach(t);
}

void weft__watch_complete(struct weft__worker *w, uint64_t user_data, int res, unsigned flags)
{
	struct weft__watch *x = (struct weft__watch *)(uintptr_t)(user_data & ~WEFT__TAG_MASK);
	LIST_REMOVE(x, link);
	w->io_inflight--;
	if (res == -ENOBUFS && !x->expired) {
		/* No buffer when bytes came: wait for one (see the top), unless
		 * one came back meanwhile.  Bytes came, so the connection is
		 * not idle: its idle timeout no longer applies. */
		if (x->expires != WEFT_NEVER) {
			x->expires = WEFT_NEVER;
			w->bufs.ntimed--;
		}
		if (weft__bufs_starve(w))
			LIST_INSERT_HEAD(&w->bufs.starved, x, link);
		else
			arm(w, x);
		return;
	}
	deliver(w, x, res,
		(flags & IORING_CQE_F_BUFFER) ? (int)(flags >> IORING_CQE_BUFFER_SHIFT) : -1);
}

void weft__watch_poll(struct weft__worker *w)
{
	struct weft__bufs *b = &w->bufs;
	/* Re-arm the starved once the ring has a buffer: not before, or an
	 * empty ring would be polled in a loop. */
	if (!LIST_EMPTY(&b->starved) && b->held < WEFT__BUFS_N) {
		struct weft__watch *x;
		while ((x = LIST_FIRST(&b->starved))) {
			LIST_REMOVE(x, link);
			atomic_fetch_sub_explicit(&b->nstarved, 1, memory_order_relaxed);
			arm(w, x);
		}
	}
}

/* The sweeper's pause: sweep_every, or less when weft__sweep_need shortened
 * it meanwhile (a poke).  0 to sweep; negative (shutdown) to leave.  With
 * no memory for the deadline's timer there is no pause to be had, but the
 * timeouts counted in ntimed must not be dropped: it yields instead, and
 * sweeps after the other ready tasks, until memory comes back. */
static int nap(struct weft__bufs *b)
{
	struct weft_scope s;
	weft_scope_deadline(&s, b->sweep_every);
	int rc = weft_sem_acquire(&b->poke);
	weft_scope_end(&s);
	if (rc == -ENOMEM)
		return weft_yield();
	return rc == -ETIMEDOUT ? 0 : rc;
}

/*
 * The owner's sweeper: cancels the receives whose timeout passed, and
 * starts the functions of watched streams (stream.c) whose timeout passed
 * (a starved watch has none: bytes came, see weft__watch_complete).
 * Pinned to the owner, so it may walk the owner's lists; it leaves when no
 * watch with a timeout is left, and at shutdown.
 */
static intptr_t sweeper(void *arg)
{
	struct weft__worker *w = arg;
	struct weft__bufs *b = &w->bufs;
	while (b->ntimed > 0 && nap(b) == 0) {
		uint64_t now = weft_now();
		struct weft__watch *x;
		LIST_FOREACH(x, &w->watches, link) {
			if (x->expired || x->expires > now)
				continue;
			x->expired = true;
			weft__io_cancel_key(w, (uint64_t)(uintptr_t)x | WEFT__TAG_WATCH);
		}
		weft__stream_sweep(w, now);
	}
	b->sweeping = false;
	b->sweep_every = 0;
	return 0;
}

void weft__watch_fini(struct weft__worker *w)
{
	/* The ring is gone: its receives with it.  Drop what waited. */
	struct weft__watch_list *lists[2] = {&w->watches, &w->bufs.starved};
	for (int i = 0; i < 2; i++) {
		struct weft__watch *x;
		while ((x = LIST_FIRST(lists[i]))) {
			LIST_REMOVE(x, link);
			close(x->fd);
			free(x);
		}
	}
	weft__bufs_fini(w);
}
