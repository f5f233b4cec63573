// SPDX-License-Identifier: MIT
/*
 * accept_fault_test.cc - a listener whose every accept fails with an error
 * that accept(2) calls a connection's own (EPERM, ECONNABORTED) backs off
 * instead of re-arming in a loop, and accepts again by itself once the
 * errors stop (io/listener.c).  Such errors cannot be had from the kernel
 * on demand (EPERM on every accept comes from a security module that
 * refuses it), so this test makes them:
 *
 * It is linked with -Wl,--wrap=io_uring_submit,... (tests/meson.build), so
 * the library's submissions come here first.  While `fail_accepts` holds
 * an error, every accept waiting in the submission queue is rewritten into
 * a NOP that completes with that error (IORING_NOP_INJECT_RESULT, Linux
 * 6.10; the test is skipped on a kernel without it), which is what the
 * acceptor sees when the kernel refuses the accept.
 */
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"

/* Debian 12's liburing headers predate it (include/uapi io_uring.h). */
#ifndef IORING_NOP_INJECT_RESULT
#define IORING_NOP_INJECT_RESULT (1U << 0)
#endif

namespace {
std::atomic<int> fail_accepts{0}; /* the error (negative) to complete them with */
std::atomic<long> failed_accepts{0};

/* Rewrites the accepts among the SQEs not yet handed to the kernel. */
void rewrite(struct io_uring *ring)
{
	int err = fail_accepts.load();
	if (!err)
		return;
	for (unsigned i = ring->sq.sqe_head; i != ring->sq.sqe_tail; i++) {
		struct io_uring_sqe *sqe = &ring->sq.sqes[i & ring->sq.ring_mask];
		if (sqe->opcode != IORING_OP_ACCEPT)
			continue;
		__u64 data = sqe->user_data;
		__u8 flags = sqe->flags;
		memset(sqe, 0, sizeof(*sqe));
		sqe->opcode = IORING_OP_NOP;
		sqe->flags = flags;
		sqe->user_data = data;
		sqe->rw_flags = IORING_NOP_INJECT_RESULT; /* nop_flags, the same word */
		sqe->len = (__u32)err;
		failed_accepts++;
	}
}

/* Whether this kernel's NOP can complete with a chosen result. */
bool nop_injects()
{
	struct io_uring ring;
	if (io_uring_queue_init(2, &ring, 0) < 0)
		return false;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	sqe->rw_flags = IORING_NOP_INJECT_RESULT;
	sqe->len = (__u32)-EPERM;
	struct io_uring_cqe *cqe;
	bool ok = io_uring_submit_and_wait(&ring, 1) == 1 && io_uring_peek_cqe(&ring, &cqe) == 0 &&
		  cqe->res == -EPERM;
	io_uring_queue_exit(&ring);
	return ok;
}
} // namespace

extern "C" int __real_io_uring_submit(struct io_uring *ring);
extern "C" int __real_io_uring_submit_and_get_events(struct io_uring *ring);
extern "C" int __real_io_uring_submit_and_wait_timeout(struct io_uring *ring,
						       struct io_uring_cqe **cqe_ptr,
						       unsigned wait_nr, struct __kernel_timespec *ts,
						       sigset_t *sigmask);

extern "C" int __wrap_io_uring_submit(struct io_uring *ring)
{
	rewrite(ring);
	return __real_io_uring_submit(ring);
}

extern "C" int __wrap_io_uring_submit_and_get_events(struct io_uring *ring)
{
	rewrite(ring);
	return __real_io_uring_submit_and_get_events(ring);
}

extern "C" int __wrap_io_uring_submit_and_wait_timeout(struct io_uring *ring,
						       struct io_uring_cqe **cqe_ptr,
						       unsigned wait_nr, struct __kernel_timespec *ts,
						       sigset_t *sigmask)
{
	rewrite(ring);
	return __real_io_uring_submit_and_wait_timeout(ring, cqe_ptr, wait_nr, ts, sigmask);
}

namespace {

/* With every accept failing with err for 300 ms, a client waiting in the
 * backlog: the acceptor backs off (1 ms doubling: about 9 tries), where
 * re-arming at once would make thousands; once the errors stop it accepts
 * the client by itself, within its back-off. */
void backs_off_on(int err)
{
	if (!nop_injects())
		GTEST_SKIP() << "no IORING_NOP_INJECT_RESULT (Linux 6.10)";
	struct sockaddr_in addr;
	static int lfd;
	lfd = listen_loopback(&addr, 64);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
	failed_accepts = 0;
	fail_accepts = err;
	run_in_weft(1, [] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		weft_sleep(300 * WEFT_MSEC);
		long tries = failed_accepts.load();
		fail_accepts = 0;
		EXPECT_GE(tries, 2) << "the accepts were not made to fail: the test shows nothing";
		EXPECT_LE(tries, 20) << "the listener re-arms without a pause";
		struct weft_scope s;
		weft_scope_deadline(&s, 5 * WEFT_SEC);
		int fd = weft_listener_accept(l);
		weft_scope_end(&s);
		EXPECT_GE(fd, 0) << "not accepting again: " << strerror(-fd);
		if (fd >= 0)
			close(fd);
		EXPECT_EQ(weft_listener_close(l), 0);
		weft_listener_free(l);
		return (intptr_t)0;
	});
	close(c);
	close(lfd);
}

TEST(AcceptFaultTest, EveryAcceptRefusedWithEpermBacksOffAndRecovers)
{
	backs_off_on(-EPERM);
}

TEST(AcceptFaultTest, EveryAcceptAbortedBacksOffAndRecovers)
{
	backs_off_on(-ECONNABORTED);
}

} // namespace
