// SPDX-License-Identifier: MIT
/*
 * park.c - a worker sleeps inside its own io_uring wait, so one mechanism
 * serves new work, timers and I/O completions alike.
 *
 * Each worker owns a ring created on its own thread with SINGLE_ISSUER and
 * DEFER_TASKRUN where the kernel has them (flags fall back one by one).  To
 * be wakeable by other threads it keeps one read of its eventfd in flight
 * while it sleeps: weft__unpark writes the eventfd, the read completes, and
 * the worker's io_uring_submit_and_wait_timeout returns.  The wait's timeout
 * is the worker's nearest timer, passed with IORING_ENTER_EXT_ARG, so no
 * timeout SQE is needed and a sleeping worker wakes exactly for its next
 * timer without polling.
 *
 * The eventfd counter makes an early unpark stick: written before the worker
 * sleeps, it completes the read at once.  Threads that are not workers can
 * use it too.  A worker can instead post a completion straight into the
 * sleeper's ring with IORING_OP_MSG_RING.  Published measurements disagree on
 * which is cheaper; here MSG_RING woke a sleeping worker in about 60% of the
 * eventfd's time (docs/benchmarks.md), so workers wake workers that way and
 * the eventfd serves threads that have no ring.  WEFT_WAKE=eventfd selects
 * the eventfd for everything, for comparison.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/sanitizer.h"
#include "scheduler/internal.h"

#define RING_ENTRIES 256

static void weft__unpark_efd(struct weft__worker *w);

static _Atomic int wake_mode = -1; /* -1 unknown, 0 eventfd, 1 msg_ring */

static bool use_msg_ring(void)
{
	int m = atomic_load_explicit(&wake_mode, memory_order_relaxed);
	if (m < 0) {
		const char *e = getenv("WEFT_WAKE");
		m = !(e && strcmp(e, "eventfd") == 0);
		atomic_store_explicit(&wake_mode, m, memory_order_relaxed);
	}
	return m;
}

/* TASKRUN_FLAG makes the kernel say, in the SQ ring's flags, when
 * completions wait for us to enter (IORING_SQ_TASKRUN), so a worker with
 * nothing to submit need not enter just to find that nothing came
 * (weft__io_poll). */
static int ring_init(struct io_uring *ring)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {.flags = tries[i]};
		rc = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
		if (rc != -EINVAL)
			return rc;
	}
	return rc;
}

void weft__ring_explain(int rc)
{
	const char *why;
	char buf[256];
	switch (rc) {
	case -EPERM: {
		/* Which of the two: the sysctl says if it is set. */
		int disabled = 0;
		FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
		if (f) {
			if (fscanf(f, "%d", &disabled) != 1)
				disabled = 0;
			fclose(f);
		}
		if (disabled) {
			snprintf(buf, sizeof(buf),
				 "io_uring is disabled by sysctl kernel.io_uring_disabled=%d%s", disabled,
				 disabled == 1 ? " (only members of kernel.io_uring_group may use it)" : "");
			why = buf;
		} else {
			why = "io_uring is not permitted here: a seccomp profile blocks it "
			      "(Docker's default profile does; allow io_uring_setup, io_uring_enter "
			      "and io_uring_register)";
		}
		break;
	}
	case -ENOMEM:
		why = "no memory for the ring: kernels before 5.12 charge it to the locked-memory "
		      "limit, so raise RLIMIT_MEMLOCK (ulimit -l)";
		break;
	case -ENOSYS:
		why = "this kernel has no io_uring (Linux 5.1 or later built with CONFIG_IO_URING)";
		break;
	case -EMFILE:
	case -ENFILE:
		why = "out of file descriptors for the ring";
		break;
	default:
		why = "unexpected error";
		break;
	}
	fprintf(stderr, "weft: cannot set up io_uring (%s): %s\n", strerror(-rc), why);
}

int weft__park_init(struct weft__worker *w)
{
	int rc = ring_init(&w->ring);
	if (rc < 0) {
		w->start_ring_failed = true;
		return rc;
	}
	w->efd = eventfd(0, EFD_CLOEXEC);
	if (w->efd < 0) {
		rc = -errno;
		io_uring_queue_exit(&w->ring);
		return rc;
	}
	w->efd_armed = false;
	/* Which operations this kernel has (the I/O path answers -EOPNOTSUPP
	 * for the others), among them MSG_RING (5.18) with CQE_SKIP_SUCCESS
	 * (5.17) for wake-ups: the ring setup falls back to older kernels. */
	struct io_uring_probe *probe = io_uring_get_probe_ring(&w->ring);
	for (int op = 0; op < IORING_OP_LAST && op < 256; op++)
		/* No probe (it can fail for want of memory): let the kernel
		 * answer for each operation instead. */
		if (!probe || io_uring_opcode_supported(probe, op))
			w->io_ops[op / 64] |= 1ull << (op % 64);
	w->msg_ring = probe && weft__io_supported(w, IORING_OP_MSG_RING) &&
		      (w->ring.features & IORING_FEAT_CQE_SKIP);
	if (probe)
		io_uring_free_probe(probe);
	/* Enter by the ring's registered index rather than its descriptor:
	 * the kernel then skips looking the descriptor up on each enter, an
	 * fdget and fdput that are atomic in a threaded process (5.18; an
	 * older kernel keeps entering by the descriptor).  The index belongs
	 * to this thread, the only one that enters this ring. */
	(void)io_uring_register_ring_fd(&w->ring);
	return 0;
}

/* On the worker's thread, as it ends: takes the ring's index out of this
 * thread's table.  liburing's queue exit would take it out of the table of
 * whichever thread runs weft__park_fini, where the same index may name
 * that thread's own ring (the kernel refuses it for a SINGLE_ISSUER ring,
 * but 5.18 and 5.19 register ring descriptors without that flag). */
void weft__park_thread_exit(struct weft__worker *w)
{
	(void)io_uring_unregister_ring_fd(&w->ring);
}

void weft__park_fini(struct weft__worker *w)
{
	io_uring_queue_exit(&w->ring);
	close(w->efd);
}

/*
 * Reaps every completion ready in the ring.  Each batch is copied out and
 * consumed before it is acted on: waking a task may send a MSG_RING from
 * this very ring, or run the I/O path, and neither should see a half-read
 * CQ.
 */
void weft__park_reap(struct weft__worker *w)
{
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		struct {
			uint64_t data;
			int res;
			unsigned flags;
		} batch[64];
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			batch[n].data = cqe->user_data;
			batch[n].res = cqe->res;
			batch[n].flags = cqe->flags;
			if (++n == 64)
				break;
		}
		if (!n)
			return;
		io_uring_cq_advance(&w->ring, n);
		/* Tasks woken from here queue FIFO on w->ioq (worker.c). */
		w->batch_wake = true;
		for (unsigned i = 0; i < n; i++) {
			uint64_t ud = batch[i].data;
			switch (ud & WEFT__TAG_MASK) {
			case WEFT__TAG_WAKE:
				w->efd_armed = false;
				/* fall through */
			case WEFT__TAG_MSG:
				WEFT__TSAN_ACQUIRE(&w->efd);
				weft__stat_inc(&w->n_wakeups);
				break;
			case WEFT__TAG_MSG_FAILED:
				/* Only failures post here (CQE_SKIP_SUCCESS): wake
				 * the target the other way. */
				weft__unpark_efd((struct weft__worker *)(uintptr_t)(ud & ~WEFT__TAG_MASK));
				break;
			case WEFT__TAG_IO:
				weft__io_complete(w, ud, batch[i].res, batch[i].flags);
				break;
			case WEFT__TAG_WATCH:
				weft__watch_complete(w, ud, batch[i].res, batch[i].flags);
				break;
			case WEFT__TAG_STREAM:
				weft__stream_complete(w, ud, batch[i].res, batch[i].flags);
				break;
			default: /* WEFT__TAG_IGNORE */
				break;
			}
		}
		w->batch_wake = false;
	}
}

void weft__park(struct weft__worker *w, uint64_t timeout_ns)
{
	/* Cancels asked of us go to the kernel with this wait. */
	weft__io_process_cancels(w);
	if (!w->efd_armed) {
		/* Never skipped for a full SQ (weft__io_sqe makes room): an
		 * unarmed eventfd would leave a wake-up from outside the
		 * runtime unheard until something else completes. */
		struct io_uring_sqe *sqe = weft__io_sqe(w);
		io_uring_prep_read(sqe, w->efd, &w->efd_buf, sizeof(w->efd_buf), 0);
		io_uring_sqe_set_data64(sqe, WEFT__TAG_WAKE);
		w->efd_armed = true;
	}
	struct __kernel_timespec ts = {
		.tv_sec = (long long)(timeout_ns / WEFT_SEC),
		.tv_nsec = (long long)(timeout_ns % WEFT_SEC),
	};
	struct io_uring_cqe *cqe;
	weft__stat_inc(&w->n_parks);
	/* -ETIME and -EINTR are ordinary ends of a park; anything else would
	 * be a bug in how we use the ring, and the loop simply comes back. */
	/* Counted from the queue: liburing before 2.4 returns 0, not the
	 * count, and -ETIME still means the SQEs went in. */
	unsigned ready = io_uring_sq_ready(&w->ring);
	int rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1,
						  timeout_ns == WEFT_NEVER ? NULL : &ts, NULL);
	if (rc >= 0 || rc == -ETIME || rc == -EINTR)
		weft__submitted(w, (int)ready);
	weft__park_reap(w);
}

void weft__unpark(struct weft__worker *w)
{
	struct weft__worker *me;
	if (use_msg_ring() && (me = weft__worker_here()) && me->rt == w->rt && me != w &&
	    me->msg_ring) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&me->ring);
		if (sqe) {
			/* Our own ring hears of it only if it fails (see reap). */
			io_uring_prep_msg_ring(sqe, w->ring.ring_fd, 0, WEFT__TAG_MSG, 0);
			io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)w | WEFT__TAG_MSG_FAILED);
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			WEFT__TSAN_RELEASE(&w->efd);
			if (weft__submitted(me, io_uring_submit(&me->ring)) == 1)
				return;
		}
	}
	weft__unpark_efd(w);
}

static void weft__unpark_efd(struct weft__worker *w)
{
	uint64_t one = 1;
	WEFT__TSAN_RELEASE(&w->efd);
	/* Cannot fail short of a bad fd: the counter saturates far away. */
	ssize_t r = write(w->efd, &one, sizeof(one));
	(void)r;
}
