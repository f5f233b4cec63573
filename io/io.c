// SPDX-License-Identifier: MIT
/*
 * io.c - the I/O path: a task prepares an operation on the ring of the
 * worker it runs on, parks, and is woken by the operation's completion.
 *
 * Per-ring, single issuer: only a worker's own thread submits to its ring,
 * so an operation belongs to the worker it was issued on (op->owner) even if
 * its task is woken, stolen and resumed elsewhere.  The protocol, on top of
 * the wait protocol of runtime/wait.c:
 *
 *  1. The task records its operation (t->io_op, t->io_owner), then arms a
 *     wait with the IO flag (weft__wait_arm_io): a wait only the operation's
 *     completion may claim.  SQEs reach the kernel at the worker's
 *     submission points: the end of each scheduling round and every global
 *     interval while there is anything to do (weft__io_poll), parking, and a
 *     full SQ (weft__io_sqe).
 *  2. The completion is reaped on the owner (weft__io_complete): it stores
 *     the result in the operation record and claims the wait.  Nothing else
 *     can, so the record, on the task's stack, is written before the task
 *     can run again, and never after.
 *  3. A deadline is a linked IORING_OP_LINK_TIMEOUT: when it fires first, the
 *     kernel cancels the operation and its completion says -ECANCELED, which
 *     the task reports as -ETIMEDOUT.  Except for a splice, which io_uring
 *     always runs in one of its worker threads (io-wq): there, blocked on a
 *     pipe or a socket, a link timeout never fires (seen on 6.18.44; an
 *     explicit IORING_OP_ASYNC_CANCEL does interrupt it).  A splice's
 *     deadline is therefore also a timer of the owner's (io/timer.c) whose
 *     entry, when it fires, cancels the operation as step 4 does
 *     (weft__io_deadline); the interrupted splice completes with -EINTR or
 *     -ERESTARTSYS, and the task reports -ETIMEDOUT.
 *  4. weft_cancel, seeing an armed IO wait, does not claim it: it queues the
 *     task on the owner (weft__io_cancel_request) and wakes that worker,
 *     which issues IORING_OP_ASYNC_CANCEL on its own ring
 *     (weft__io_process_cancels).  The operation then completes, with
 *     -ECANCELED or with its result if it won the race, and step 2 applies.
 *     Because cancellation is sticky, the owner need not know which wait
 *     the request was for: any IO wait of that task, unshielded, is to be
 *     cancelled.  But a request can outlive its task: the object may be
 *     reused by a new task before the owner gets to it.  The new task
 *     starts without CANCEL, and the owner acts only on a task that has it.
 */
#include <errno.h>
#include <string.h>

#include "io/internal.h"
#include "scheduler/internal.h"
#include "weft.h"
#include "weft/io.h"

/* An operation in flight; lives on the task's stack until its completion. */
struct weft__io_op {
	struct weft__wait w;
	struct weft__worker *owner;
	int res;
	struct __kernel_timespec deadline; /* the link timeout, absolute */
	/* Multishot only: completions that say more will follow. */
	void (*more)(void *arg, int res);
	void *more_arg;
};

/*
 * Makes room for n SQEs on w's ring by handing the kernel what it holds.
 * On our rings a submission fails only for want of a request for its first
 * SQE: -EAGAIN (a full CQ no longer refuses submissions, and only this
 * thread submits).  With DEFER_TASKRUN, the requests of operations that
 * have completed are freed when their completions run, as task work of
 * ours, which a successful submission runs and a failed one does not: with
 * memory short those may be the only requests to be had, and retrying the
 * submission alone would spin for ever (seen on 6.18 in a memory cgroup at
 * its limit).  So a failure runs that work first (io_uring_get_events),
 * which posts CQEs and takes no SQE: room a caller made for a pair stays
 * made.  Nothing is reaped here, as waking a task may take an SQE.
 */
static void io_make_room(struct weft__worker *w, unsigned n)
{
	struct io_uring *ring = &w->ring;
	while (io_uring_sq_space_left(ring) < n)
		if (weft__submitted(w, io_uring_submit(ring)) < 0)
			(void)io_uring_get_events(ring);
}

struct io_uring_sqe *weft__io_sqe(struct weft__worker *w)
{
	struct io_uring_sqe *sqe;
	/* Full SQ: hand it to the kernel and take a fresh entry. */
	while (!(sqe = io_uring_get_sqe(&w->ring)))
		io_make_room(w, 1);
	return sqe;
}

/* The kernel's restart codes (include/linux/errno.h, not exported): a
 * system call cut short by a signal, which an io_uring worker thread's
 * operation may complete with. */
#define ERESTARTSYS 512
#define ERESTART_RESTARTBLOCK 516

static bool interrupted(int res)
{
	return res == -EINTR || (res <= -ERESTARTSYS && res >= -ERESTART_RESTARTBLOCK);
}

/* Arms the wait for op; returns 0, or -ECANCELED / -ETIMEDOUT before any
 * SQE is taken. */
static int io_begin(struct weft_task *self, struct weft__io_op *op)
{
	/* An operation and its link timeout must reach the kernel in one
	 * submission: make room for both now, so weft__io_sqe cannot submit the
	 * first alone in between. */
	io_make_room(self->worker, self->deadline != WEFT_NEVER ? 2u : 1u);
	op->owner = self->worker;
	op->res = 0;
	op->more = NULL;
	/* Relaxed: the arm's release publishes them to a canceller that sees
	 * this wait armed; one that read them for an older wait of ours may
	 * see these, which is harmless (cancellation is sticky). */
	atomic_store_explicit(&self->io_op, op, memory_order_relaxed);
	atomic_store_explicit(&self->io_owner, op->owner, memory_order_relaxed);
	return weft__wait_arm_io(self, &op->w);
}

/* Tags sqe as op's, links the deadline if one is in force, parks until the
 * completion and returns the result. */
static int io_end(struct weft_task *self, struct weft__io_op *op, struct io_uring_sqe *sqe)
{
	struct weft__worker *w = op->owner;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | WEFT__TAG_IO);
	uint64_t dl = self->deadline;
	if (dl != WEFT_NEVER) {
		sqe->flags |= IOSQE_IO_LINK;
		op->deadline.tv_sec = (long long)(dl / WEFT_SEC);
		op->deadline.tv_nsec = (long long)(dl % WEFT_SEC);
		struct io_uring_sqe *t = weft__io_sqe(w);
		io_uring_prep_link_timeout(t, &op->deadline, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(t, WEFT__TAG_IGNORE);
		/* Without the timer (no memory for it) only the link timeout
		 * is left, as for any other operation. */
		if (sqe->opcode == IORING_OP_SPLICE)
			(void)weft__timers_add(&w->timers, dl, self, op->w.token,
					       WEFT__TIMER_IO_DEADLINE);
	}
	w->io_inflight++;
	self->after = WEFT__AFTER_PARK;
	weft__schedule(self);
	int res = op->res;
	if (res == -ECANCELED || interrupted(res)) {
		/* Cancelled by us, or by the linked timeout.  An operation that
		 * blocked in one of io_uring's worker threads is interrupted
		 * there by the cancel instead, and its result is whatever the
		 * system call returns when a signal comes: -EINTR, or a restart
		 * code the kernel never meant to show (-ERESTARTSYS, seen on
		 * 6.18 from a splice). */
		uint64_t word = atomic_load_explicit(&self->wake, memory_order_relaxed);
		bool cancelled = (word & WEFT__WAKE_CANCEL) && !(word & WEFT__WAKE_SHIELD);
		if (cancelled)
			res = -ECANCELED;
		else if (dl != WEFT_NEVER && weft_now() >= dl)
			res = -ETIMEDOUT;
		else if (res != -ECANCELED)
			res = -EINTR;
	}
	return res;
}

void weft__io_complete(struct weft__worker *w, uint64_t user_data, int res, unsigned flags)
{
	struct weft__io_op *op = (struct weft__io_op *)(uintptr_t)(user_data & ~7ull);
	if (flags & IORING_CQE_F_MORE) {
		/* A multishot operation's intermediate result: the task stays
		 * parked, op stays valid. */
		op->more(op->more_arg, res);
		return;
	}
	w->io_inflight--;
	op->res = res;
	/* After this claim op may be gone (its task may run and return). */
	weft__wake_token(op->w.task, op->w.token, 0);
}

bool weft__io_deadline(struct weft_task *t, uint64_t token)
{
	/* Only this thread reaps the operation's completion, so while the
	 * wait below is still armed the operation is in flight, and t->io_op
	 * (written before the arm) is it. */
	uint64_t word = atomic_load_explicit(&t->wake, memory_order_acquire);
	if ((word >> WEFT__WAKE_SHIFT) != token || !(word & WEFT__WAKE_ARMED) ||
	    !(word & WEFT__WAKE_IO))
		return false;
	void *op = atomic_load_explicit(&t->io_op, memory_order_relaxed);
	weft__io_cancel_key(weft__worker_here(), (uint64_t)(uintptr_t)op | WEFT__TAG_IO);
	return true;
}

void weft__io_cancel_request(struct weft_task *t)
{
	/* The caller's RMW of t->wake (acquire) saw the wait armed, and the
	 * task recorded io_owner before arming (release): it is the owner of
	 * that wait's operation, or of a later one. */
	struct weft__worker *owner = atomic_load_explicit(&t->io_owner, memory_order_relaxed);
	/* Release: a visit that clears the flag after this reads it, and
	 * sees the CANCEL our caller set (weft__io_process_cancels). */
	if (atomic_exchange_explicit(&t->io_cancel_queued, true, memory_order_acq_rel))
		return; /* already queued somewhere: that visit will do */
	struct weft__worker *here = weft__worker_here();
	bool outside = !here || here->rt != owner->rt;
	if (outside)
		weft__outside_enter(owner->rt);
	weft__cancelq_push(&owner->io_cancels, t);
	if (owner != here)
		weft__unpark(owner);
	if (outside)
		weft__outside_leave(owner->rt);
}

void weft__io_process_cancels(struct weft__worker *w)
{
	struct weft_task *t;
	while ((t = weft__cancelq_pop(&w->io_cancels))) {
		/* An exchange, not a store.  A canceller that finds the flag
		 * still set leaves its cancel to this visit, so this visit must
		 * see its CANCEL: its exchange then comes before ours in the
		 * flag's modification order, ours reads it and synchronizes
		 * with it, and its OR of CANCEL happens before the load below.
		 * A store and a load would be store buffering, where each side
		 * may miss the other's write (on x86 the store waits in the
		 * store buffer while the load goes ahead): a request left by
		 * the task that ran on this object before would swallow the
		 * cancel of the one that runs now. */
		(void)atomic_exchange_explicit(&t->io_cancel_queued, false, memory_order_acq_rel);
		uint64_t word = atomic_load_explicit(&t->wake, memory_order_acquire);
		/* No CANCEL: the request outlived its task, and the object now
		 * runs another one (task.c reuses it), which nobody cancelled. */
		if (!(word & WEFT__WAKE_ARMED) || !(word & WEFT__WAKE_IO) ||
		    !(word & WEFT__WAKE_CANCEL) || (word & WEFT__WAKE_SHIELD))
			continue; /* finished meanwhile, or not to be cancelled now */
		if (atomic_load_explicit(&t->io_owner, memory_order_relaxed) != w) {
			/* It moved on to an operation on another ring. */
			weft__io_cancel_request(t);
			continue;
		}
		void *op = atomic_load_explicit(&t->io_op, memory_order_relaxed);
		weft__io_cancel_key(w, (uint64_t)(uintptr_t)op | WEFT__TAG_IO);
	}
}

void weft__cancelq_push(struct weft__cancelq *q, struct weft_task *t)
{
	weft__spin_lock(&q->lock);
	t->cnext = NULL;
	if (q->tail)
		q->tail->cnext = t;
	else
		q->head = t;
	q->tail = t;
	atomic_fetch_add_explicit(&q->n, 1, memory_order_relaxed);
	weft__spin_unlock(&q->lock);
}

struct weft_task *weft__cancelq_pop(struct weft__cancelq *q)
{
	if (!atomic_load_explicit(&q->n, memory_order_relaxed))
		return NULL;
	weft__spin_lock(&q->lock);
	struct weft_task *t = q->head;
	if (t) {
		q->head = t->cnext;
		if (!q->head)
			q->tail = NULL;
		atomic_fetch_sub_explicit(&q->n, 1, memory_order_relaxed);
	}
	weft__spin_unlock(&q->lock);
	return t;
}

/*
 * Whether a poll at the end of a round should enter the kernel: it has SQEs
 * to hand over, or the kernel holds completions back as task work until we
 * enter (DEFER_TASKRUN, COOP_TASKRUN), or some overflowed the CQ ring.  A
 * ring set up with TASKRUN_FLAG says the latter in its SQ flags; without
 * the flag there is no telling, so every poll enters.
 *
 * Only the poll at the end of a round trusts the flag, and if it is wrong
 * the park that follows enters anyway.  The poll of a busy worker
 * (next_local, every WEFT__GLOBAL_INTERVAL ticks) enters whatever the flag
 * says: the promise that completions wait at most one interval then rests
 * on entering alone, not on the kernel keeping the flag exact (it clears
 * the flag at each entry, runs at most 20 task-work items per entry since
 * Linux 6.13, and sets the flag again for what it leaves).
 */
static bool io_enter_needed(struct weft__worker *w, bool round_end)
{
	if (!round_end || io_uring_sq_ready(&w->ring) ||
	    !(w->ring.flags & IORING_SETUP_TASKRUN_FLAG))
		return true;
	/* Relaxed: a flag set just after this read is seen by the park. */
	unsigned f = __atomic_load_n(w->ring.sq.kflags, __ATOMIC_RELAXED);
	return f & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

void weft__io_poll(struct weft__worker *w, bool round_end)
{
	weft__io_process_cancels(w);
	weft__bufs_poll(w);
	weft__stream_poll(w);
	weft__watch_poll(w);
	if (w->io_inflight) {
		/* DEFER_TASKRUN delivers completions only when we enter the
		 * kernel asking for them; those it posted at submission are in
		 * the CQ ring already. */
		if (io_enter_needed(w, round_end))
			weft__submitted(w, io_uring_submit_and_get_events(&w->ring));
		weft__park_reap(w);
	} else if (io_uring_sq_ready(&w->ring)) {
		weft__submitted(w, io_uring_submit(&w->ring));
	}
}

int weft__io_multishot(void (*prep)(struct io_uring_sqe *sqe, void *arg),
		       void (*more)(void *arg, int res), void *arg, uint64_t *key)
{
	struct weft_task *self = weft__current();
	struct weft__io_op op;
	int rc = io_begin(self, &op);
	if (rc < 0)
		return rc;
	op.more = more;
	op.more_arg = arg;
	*key = (uint64_t)(uintptr_t)&op | WEFT__TAG_IO;
	/* No deadline: a multishot operation runs until stopped. */
	uint64_t dl = self->deadline;
	self->deadline = WEFT_NEVER;
	struct io_uring_sqe *sqe = weft__io_sqe(op.owner);
	prep(sqe, arg);
	rc = io_end(self, &op, sqe);
	self->deadline = dl;
	*key = 0;
	return rc;
}

void weft__io_cancel_key(struct weft__worker *w, uint64_t key)
{
	struct io_uring_sqe *sqe = weft__io_sqe(w);
	io_uring_prep_cancel64(sqe, key, 0);
	io_uring_sqe_set_data64(sqe, WEFT__TAG_IGNORE);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* ---- Operations --------------------------------------------------------------- */

/* One operation: opcode names it for the probe made at ring setup, prep
 * fills the SQE. */
#define IO_OP(opcode, prep)                                          \
	do {                                                         \
		struct weft_task *self = weft__current();           \
		if (!weft__io_supported(self->worker, opcode))       \
			return -EOPNOTSUPP;                          \
		struct weft__io_op op;                               \
		int rc = io_begin(self, &op);                        \
		if (rc < 0)                                          \
			return rc;                                   \
		struct io_uring_sqe *sqe = weft__io_sqe(op.owner);       \
		prep;                                                \
		return io_end(self, &op, sqe);                       \
	} while (0)

/* An SQE's length is 32 bits: a longer request would wrap (4 GiB to 0, read
 * as the end of the stream).  Capped as read(2) and write(2) cap theirs
 * (MAX_RW_COUNT), it is a short count, which callers handle anyway. */
#define IO_MAX 0x7ffff000u

static inline unsigned io_len(size_t len)
{
	return len < IO_MAX ? (unsigned)len : IO_MAX;
}

ssize_t weft_read(int fd, void *buf, size_t len)
{
	IO_OP(IORING_OP_READ, io_uring_prep_read(sqe, fd, buf, io_len(len), (uint64_t)-1));
}

ssize_t weft_write(int fd, const void *buf, size_t len)
{
	IO_OP(IORING_OP_WRITE, io_uring_prep_write(sqe, fd, buf, io_len(len), (uint64_t)-1));
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt)
{
	IO_OP(IORING_OP_READV, io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)-1));
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt)
{
	IO_OP(IORING_OP_WRITEV, io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)-1));
}

/* A negative offset fails as in pread(2): io_uring would read -1 as "the
 * current position". */
ssize_t weft_pread(int fd, void *buf, size_t len, off_t offset)
{
	if (offset < 0)
		return -EINVAL;
	IO_OP(IORING_OP_READ, io_uring_prep_read(sqe, fd, buf, io_len(len), (uint64_t)offset));
}

ssize_t weft_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
	if (offset < 0)
		return -EINVAL;
	IO_OP(IORING_OP_WRITE, io_uring_prep_write(sqe, fd, buf, io_len(len), (uint64_t)offset));
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags)
{
	IO_OP(IORING_OP_RECV, io_uring_prep_recv(sqe, fd, buf, io_len(len), flags));
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
	IO_OP(IORING_OP_SEND, io_uring_prep_send(sqe, fd, buf, io_len(len), flags));
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
	IO_OP(IORING_OP_RECVMSG, io_uring_prep_recvmsg(sqe, fd, msg, (unsigned)flags));
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	IO_OP(IORING_OP_SENDMSG, io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags));
}

int weft_shutdown(int fd, int how)
{
	IO_OP(IORING_OP_SHUTDOWN, io_uring_prep_shutdown(sqe, fd, how));
}

int weft_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	IO_OP(IORING_OP_OPENAT, io_uring_prep_openat(sqe, dirfd, path, flags, mode));
}

int weft_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *buf)
{
	IO_OP(IORING_OP_STATX, io_uring_prep_statx(sqe, dirfd, path, flags, mask, buf));
}

int weft_fsync(int fd, int datasync)
{
	IO_OP(IORING_OP_FSYNC, io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0));
}

ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
		    unsigned flags)
{
	IO_OP(IORING_OP_SPLICE, io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, io_len(len), flags));
}

int weft_poll(int fd, unsigned mask)
{
	IO_OP(IORING_OP_POLL_ADD, io_uring_prep_poll_add(sqe, fd, mask));
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	IO_OP(IORING_OP_ACCEPT, io_uring_prep_accept(sqe, fd, addr, addrlen, flags));
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	IO_OP(IORING_OP_CONNECT, io_uring_prep_connect(sqe, fd, addr, addrlen));
}

int weft_close(int fd)
{
	/* Shielded, without deadline: see the header. */
	struct weft_scope s;
	weft_scope_shield(&s, WEFT_NEVER);
	struct weft_task *self = weft__current();
	struct weft__io_op op;
	int rc = weft__io_supported(self->worker, IORING_OP_CLOSE) ? io_begin(self, &op)
								     : -EOPNOTSUPP;
	if (rc == 0) {
		struct io_uring_sqe *sqe = weft__io_sqe(op.owner);
		io_uring_prep_close(sqe, fd);
		rc = io_end(self, &op, sqe);
	}
	weft_scope_end(&s);
	return rc;
}
