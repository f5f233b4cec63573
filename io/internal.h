// SPDX-License-Identifier: MIT
/*
 * io/internal.h - the seam between the I/O path (io/io.c) and the worker
 * that owns the ring: completion tags, the per-worker cancel queue, and the
 * calls the scheduler makes at its submission points.
 */
#ifndef WEFT_IO_INTERNAL_H
#define WEFT_IO_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "weft.h"
#include "weft/sync.h"

struct weft_task;
struct weft__worker;
struct io_uring_sqe;
struct io_uring_buf_ring;

/* A CQE's user_data: its low 3 bits say what it belongs to; with
 * WEFT__TAG_MSG_FAILED and WEFT__TAG_IO the rest is a pointer. */
#define WEFT__TAG_WAKE 1ull       /* the worker's eventfd read (park.c) */
#define WEFT__TAG_MSG 2ull        /* another worker's MSG_RING wake-up */
#define WEFT__TAG_MSG_FAILED 3ull /* our MSG_RING to that worker failed */
#define WEFT__TAG_IO 4ull         /* a task's operation (io.c) */
#define WEFT__TAG_IGNORE 5ull     /* link timeouts, async cancels */
#define WEFT__TAG_WATCH 6ull      /* a watched connection's receive (watch.c) */
#define WEFT__TAG_STREAM 7ull     /* a stream's multishot receive (stream.c) */
#define WEFT__TAG_MASK 7ull

/* Tasks whose I/O another thread asked the owner to cancel, linked through
 * t->cnext (t->next may be in use by a run queue meanwhile). */
struct weft__cancelq {
	uint32_t lock;
	_Atomic uint32_t n;
	struct weft_task *head, *tail;
};

/* A worker's provided-buffer ring (bufs.c), shared by watched connections
 * (watch.c) and streams (stream.c): 256 buffers of 4 KiB, 1 MiB of address
 * space, resident only once touched by the kernel. */
#define WEFT__BUFS_N 256u
#define WEFT__BUFS_SIZE 4096u
#define WEFT__BUFS_GROUP 0
/* Per buffer: while a stream's queue holds it, the next buffer of that
 * queue and the bytes the kernel put in it (stream.c). */
struct weft__bufmeta {
	uint16_t next, len;
};
struct weft__watch;
struct weft_stream;
/* Lists of watches and of streams (sys/queue.h: O(1) unlink). */
LIST_HEAD(weft__watch_list, weft__watch);
LIST_HEAD(weft__stream_list, weft_stream);
struct weft__bufs {
	struct io_uring_buf_ring *ring; /* NULL until the first use */
	char *mem;
	struct weft__bufmeta *meta;
	int setup_rc;                   /* a failed setup, not retried */
	unsigned held;                  /* buffers out of the ring, owner only */
	/* Receives that found the ring empty, owner only; nstarved counts
	 * both lists, for threads that hand a buffer back. */
	struct weft__watch_list starved;
	struct weft__stream_list sstarved;
	_Atomic unsigned nstarved;
	/* Watched streams, owner only (stream.c). */
	struct weft__stream_list swatched;
	/* Watches and watched streams with a timeout, and their sweeper
	 * (watch.c); owner only. */
	unsigned ntimed;
	uint64_t sweep_every;
	bool sweeping;
	struct weft_sem poke; /* wakes the sweeper early: sweep_every shrank */
	/* Under lock: buffers freed on other workers, for the owner to put
	 * back; streams that asked the owner to act (stream.c). */
	uint32_t lock;
	uint16_t *ret;
	unsigned nret;
	_Atomic bool has_ret;
	struct weft_stream *asked;
	_Atomic bool has_asked;
};

/* bufs.c.  Sets up w's buffer ring once (owner, in a task): 0, -ENOMEM,
 * -EOPNOTSUPP (no receive in this io_uring, or no provided-buffer rings:
 * before 5.19), or another error of the kernel's; a failure is remembered. */
int weft__bufs_init(struct weft__worker *w);
/* Owner only: buffer bid goes back to the ring. */
void weft__buf_put(struct weft__bufs *b, unsigned bid);
/* On any thread (here: the caller's worker, or NULL): buffer bid of
 * owner's ring is free again. */
void weft__buf_give(struct weft__worker *owner, struct weft__worker *here, unsigned bid);
/* The submission point's share: buffers handed back by other threads
 * return to the ring. */
void weft__bufs_poll(struct weft__worker *w);
/* Owner, for a receive that failed with -ENOBUFS: counts it in nstarved,
 * so that a thread handing a buffer back wakes the owner, and takes in
 * what was handed back before.  Returns true if the ring is still empty:
 * the caller puts the receive on its starved list (and takes it out of
 * nstarved when it re-arms it); false: re-arm it now, it is not counted. */
bool weft__bufs_starve(struct weft__worker *w);
/* At shutdown, after the ring is gone. */
void weft__bufs_fini(struct weft__worker *w);
static inline char *weft__buf(const struct weft__bufs *b, unsigned bid)
{
	return b->mem + (size_t)bid * WEFT__BUFS_SIZE;
}

void weft__cancelq_push(struct weft__cancelq *q, struct weft_task *t);
struct weft_task *weft__cancelq_pop(struct weft__cancelq *q);

/* Whether w's ring supports an io_uring opcode (probed at setup). */
#define weft__io_supported(w, opcode) \
	(((w)->io_ops[(opcode) / 64] >> ((opcode) % 64)) & 1)

/* The owner reaped a completion of a WEFT__TAG_IO operation; flags are the
 * CQE's (IORING_CQE_F_MORE: a multishot operation goes on). */
void weft__io_complete(struct weft__worker *w, uint64_t user_data, int res, unsigned flags);

/*
 * Runs a multishot operation for the calling task: prep(sqe, arg) fills the
 * SQE, each completion flagged IORING_CQE_F_MORE is handed to more(arg, res)
 * on the owner's thread (outside any task: it must not suspend), and the
 * call returns the final completion's result (which may itself be a
 * success).  *key is set, for the duration of the call, to what
 * weft__io_cancel_key needs to stop the operation.  Honours the task's
 * cancellation like any operation; no deadline is linked.  Task only.
 */
int weft__io_multishot(void (*prep)(struct io_uring_sqe *sqe, void *arg),
		       void (*more)(void *arg, int res), void *arg, uint64_t *key);
/* A timer's, on the worker whose ring has t's operation (timer.c): the
 * deadline of that operation has come; if t still waits for it (token),
 * cancels it.  Returns whether it did. */
bool weft__io_deadline(struct weft_task *t, uint64_t token);
/* Asks the ring of w, the caller's own worker, to cancel the operation
 * whose key weft__io_multishot published. */
void weft__io_cancel_key(struct weft__worker *w, uint64_t key);
/* A free SQE of w's ring, submitting the full queue first if need be. */
struct io_uring_sqe *weft__io_sqe(struct weft__worker *w);

/* When a wait with this relative timeout expires: weft_now() + timeout,
 * saturated short of WEFT_NEVER, which means none (as is a timeout of
 * WEFT_NEVER). */
static inline uint64_t weft__expiry(uint64_t timeout)
{
	if (timeout == WEFT_NEVER)
		return WEFT_NEVER;
	uint64_t now = weft_now();
	return timeout < WEFT_NEVER - now ? now + timeout : WEFT_NEVER - 1;
}
/* watch.c: a completion tagged WEFT__TAG_WATCH; the worker's watches when
 * it shuts down. */
void weft__watch_complete(struct weft__worker *w, uint64_t user_data, int res, unsigned flags);
void weft__watch_fini(struct weft__worker *w);
/* The submission point's share of watch.c: starved receives are re-armed
 * once the ring has a buffer. */
void weft__watch_poll(struct weft__worker *w);
/* Owner only, in a task or in its loop: a watch (or a watched stream) with
 * this timeout began; the sweeper, started if need be, will look at it.
 * 0, or -ENOMEM (no task for the sweeper; nothing counted). */
int weft__sweep_need(struct weft__worker *w, uint64_t timeout);
/* stream.c: a completion tagged WEFT__TAG_STREAM; the submission point's
 * share (what other workers asked of the owner, starved receives). */
void weft__stream_complete(struct weft__worker *w, uint64_t user_data, int res, unsigned flags);
void weft__stream_poll(struct weft__worker *w);
/* The sweeper's share: watched streams whose timeout passed at now. */
void weft__stream_sweep(struct weft__worker *w, uint64_t now);
/* At shutdown, after the ring is gone: watched streams close their fds. */
void weft__stream_fini(struct weft__worker *w);
/* weft_cancel found t armed in an IO wait: have its ring cancel it. */
void weft__io_cancel_request(struct weft_task *t);
/* The owner issues the cancels queued for it. */
void weft__io_process_cancels(struct weft__worker *w);
/* A submission point: queued cancels, pending SQEs, and (while operations
 * are in flight) the completions the kernel holds for us.  round_end: the
 * worker found nothing to run and parks next unless this brings work, so
 * an entry that would bring nothing may be skipped (io.c). */
void weft__io_poll(struct weft__worker *w, bool round_end);

#endif
