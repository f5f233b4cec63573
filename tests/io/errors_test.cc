// SPDX-License-Identifier: MIT
/*
 * errors_test.cc - how the I/O operations fail:
 *  - a connection reset by its peer: recv and read report -ECONNRESET (also
 *    to a recv already blocked), send, sendmsg and write report -ECONNRESET
 *    then -EPIPE, and no SIGPIPE reaches the process;
 *  - misuse reports the system call's errno: an offset on a socket
 *    -ESPIPE, every operation on a bad descriptor -EBADF, splice without a
 *    pipe -EINVAL (an offset on its pipe -ESPIPE), recv on a pipe
 *    -ENOTSOCK, accept on a socket that does not listen -EINVAL;
 *  - a send on a full socket buffer, a connect to a listener whose queue
 *    is full (no answer) and a poll with nothing to read end with
 *    -ETIMEDOUT under a deadline and with -ECANCELED when another task
 *    cancels them; the send sent nothing;
 *  - a plain thread (not a worker) cancels a task blocked in recv or
 *    accept: it gets -ECANCELED, its buffer on its stack is not written
 *    afterwards, and the bytes or the connection that come later are still
 *    there for the next taker;
 *  - a task woken by a recv completion may resume on another worker: the
 *    completion queues it on its worker's I/O queue, which an idle worker
 *    steals from while the owner runs a task queued before it.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"

namespace {

struct tcp {
	int client, server;
};

/* A connected loopback TCP pair; the listener is gone when it returns. */
tcp tcp_pair()
{
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	EXPECT_EQ(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
	int s = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
	EXPECT_GE(s, 0);
	close(l);
	return {c, s};
}

/* Closes fd with SO_LINGER {1, 0}, so the peer gets an RST, and waits until
 * the peer has seen it (POLLERR/POLLHUP), so that what follows does not
 * race the reset. */
void reset_and_wait(int fd, int peer)
{
	struct linger lg = {1, 0};
	EXPECT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	EXPECT_EQ(close(fd), 0);
	struct pollfd p = {peer, 0, 0};
	EXPECT_EQ(poll(&p, 1, 2000), 1);
	EXPECT_TRUE(p.revents & (POLLERR | POLLHUP)) << p.revents;
}

/* SIGPIPE counted rather than fatal, so that a test can assert that none
 * was raised; restores the previous disposition when it goes. */
std::atomic<int> sigpipes{0};
struct count_sigpipe {
	struct sigaction old;
	count_sigpipe()
	{
		sigpipes = 0;
		struct sigaction sa = {};
		sa.sa_handler = [](int) { sigpipes++; };
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		EXPECT_EQ(sigaction(SIGPIPE, &sa, &old), 0);
	}
	~count_sigpipe()
	{
		sigaction(SIGPIPE, &old, nullptr);
	}
};

/* ---- Peer reset ---------------------------------------------------------- */

TEST(ErrorsTest, RecvAndReadOnAResetConnectionReportECONNRESET)
{
	tcp r = tcp_pair(), d = tcp_pair(), b = tcp_pair();
	run_in_weft(2, [&] {
		char buf[16];
		reset_and_wait(r.server, r.client);
		EXPECT_EQ(weft_recv(r.client, buf, sizeof(buf), 0), -ECONNRESET);
		/* The error is reported once; then the stream has ended. */
		EXPECT_EQ(weft_recv(r.client, buf, sizeof(buf), 0), 0);

		reset_and_wait(d.server, d.client);
		EXPECT_EQ(weft_read(d.client, buf, sizeof(buf)), -ECONNRESET);

		/* A recv already parked when the reset comes. */
		std::atomic<int> parked{0};
		struct weft_task *t = go([&] {
			char in[16];
			parked++;
			return (intptr_t)weft_recv(b.client, in, sizeof(in), 0);
		});
		while (parked.load() == 0)
			weft_sleep(WEFT_MSEC);
		weft_sleep(10 * WEFT_MSEC); /* let it park in the kernel */
		reset_and_wait(b.server, b.client);
		EXPECT_EQ(join(t), -ECONNRESET);
		return (intptr_t)0;
	});
	close(r.client);
	close(d.client);
	close(b.client);
}

/* io_uring's send and sendmsg always add MSG_NOSIGNAL: the second send,
 * which gets -EPIPE, is the one a send(2) without the flag would have
 * signalled. */
TEST(ErrorsTest, SendAndSendmsgToAResetPeerFailWithoutSIGPIPE)
{
	count_sigpipe guard;
	tcp s = tcp_pair(), m = tcp_pair();
	run_in_weft(2, [&] {
		reset_and_wait(s.server, s.client);
		ssize_t first = weft_send(s.client, "x", 1, 0);
		EXPECT_TRUE(first == -ECONNRESET || first == -EPIPE) << first;
		EXPECT_EQ(weft_send(s.client, "x", 1, 0), -EPIPE);
		EXPECT_EQ(weft_send(s.client, "x", 1, 0), -EPIPE);

		reset_and_wait(m.server, m.client);
		struct iovec v = {(void *)"y", 1};
		struct msghdr msg = {};
		msg.msg_iov = &v;
		msg.msg_iovlen = 1;
		first = weft_sendmsg(m.client, &msg, 0);
		EXPECT_TRUE(first == -ECONNRESET || first == -EPIPE) << first;
		EXPECT_EQ(weft_sendmsg(m.client, &msg, 0), -EPIPE);
		return (intptr_t)0;
	});
	EXPECT_EQ(sigpipes.load(), 0) << "weft_send raised SIGPIPE";
	close(s.client);
	close(m.client);
}

/* weft_write is write(2), which has no flags: the kernel raises SIGPIPE
 * with -EPIPE, as write(2) does, but at the thread that issued the write,
 * a worker, and workers block every asynchronous signal (scheduler/rt.c):
 * it is never delivered (it stays pending on that worker). */
TEST(ErrorsTest, WriteToAResetPeerFailsAndNoSIGPIPEIsDelivered)
{
	count_sigpipe guard;
	tcp s = tcp_pair();
	int pfd[2];
	ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0);
	run_in_weft(2, [&] {
		reset_and_wait(s.server, s.client);
		ssize_t first = weft_write(s.client, "x", 1);
		EXPECT_TRUE(first == -ECONNRESET || first == -EPIPE) << first;
		EXPECT_EQ(weft_write(s.client, "x", 1), -EPIPE);
		struct iovec v = {(void *)"y", 1};
		EXPECT_EQ(weft_writev(s.client, &v, 1), -EPIPE);
		/* A pipe whose reader is gone. */
		close(pfd[0]);
		EXPECT_EQ(weft_write(pfd[1], "x", 1), -EPIPE);
		return (intptr_t)0;
	});
	EXPECT_EQ(sigpipes.load(), 0) << "weft_write delivered SIGPIPE";
	close(s.client);
	close(pfd[1]);
}

/* ---- Misuse -------------------------------------------------------------- */

/*
 * pread(2)/pwrite(2) refuse any descriptor that cannot seek with -ESPIPE.
 * Through io_uring only the socket's own read and write refuse, and only a
 * non-zero offset (the kernel passes 0 for "no offset" to a stream): so on
 * a socket an offset gives -ESPIPE, and nothing is sent or taken.
 */
TEST(ErrorsTest, PositionalIoOnASocketIsESPIPE)
{
	pair p = socket_pair();
	run_in_weft(1, [&] {
		char buf[4];
		EXPECT_EQ(weft_pwrite(p.a, "abcd", 4, 5), -ESPIPE);
		EXPECT_EQ(recv(p.b, buf, sizeof(buf), MSG_DONTWAIT), -1) << "the pwrite sent";
		EXPECT_EQ(send(p.b, "wxyz", 4, 0), 4);
		EXPECT_EQ(weft_pread(p.a, buf, sizeof(buf), 5), -ESPIPE);
		EXPECT_EQ(weft_pread(p.a, buf, sizeof(buf), 1), -ESPIPE);
		/* The bytes are still there. */
		EXPECT_EQ(weft_recv(p.a, buf, sizeof(buf), 0), 4);
		EXPECT_EQ(memcmp(buf, "wxyz", 4), 0);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

TEST(ErrorsTest, EveryOperationOnABadDescriptorIsEBADF)
{
	run_in_weft(1, [&] {
		for (int k = 0; k < 2; k++) {
			int pfd[2];
			EXPECT_EQ(pipe2(pfd, O_CLOEXEC), 0);
			/* A descriptor number just closed (taken last: the
			 * runtime's and the pipe's must not reuse it), then -1. */
			int fd = -1;
			if (k == 0) {
				fd = dup(0);
				EXPECT_GE(fd, 0);
				EXPECT_EQ(close(fd), 0);
			}
			SCOPED_TRACE(fd);
			char buf[4];
			struct iovec v = {buf, sizeof(buf)};
			struct msghdr msg = {};
			msg.msg_iov = &v;
			msg.msg_iovlen = 1;
			struct sockaddr_in addr = {};
			addr.sin_family = AF_INET;
			addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			addr.sin_port = htons(9);
			EXPECT_EQ(weft_read(fd, buf, sizeof(buf)), -EBADF);
			EXPECT_EQ(weft_write(fd, buf, sizeof(buf)), -EBADF);
			EXPECT_EQ(weft_readv(fd, &v, 1), -EBADF);
			EXPECT_EQ(weft_writev(fd, &v, 1), -EBADF);
			EXPECT_EQ(weft_pread(fd, buf, sizeof(buf), 0), -EBADF);
			EXPECT_EQ(weft_pwrite(fd, buf, sizeof(buf), 0), -EBADF);
			EXPECT_EQ(weft_recv(fd, buf, sizeof(buf), 0), -EBADF);
			EXPECT_EQ(weft_send(fd, buf, sizeof(buf), 0), -EBADF);
			EXPECT_EQ(weft_recvmsg(fd, &msg, 0), -EBADF);
			EXPECT_EQ(weft_sendmsg(fd, &msg, 0), -EBADF);
			EXPECT_EQ(weft_accept(fd, nullptr, nullptr, 0), -EBADF);
			EXPECT_EQ(weft_connect(fd, (struct sockaddr *)&addr, sizeof(addr)),
				  -EBADF);
			EXPECT_EQ(weft_shutdown(fd, SHUT_RDWR), -EBADF);
			EXPECT_EQ(weft_fsync(fd, 0), -EBADF);
			EXPECT_EQ(weft_fsync(fd, 1), -EBADF);
			EXPECT_EQ(weft_poll(fd, POLLIN), -EBADF);
			EXPECT_EQ(weft_splice(fd, -1, pfd[1], -1, 4, 0), -EBADF);
			EXPECT_EQ(weft_splice(pfd[0], -1, fd, -1, 4, 0), -EBADF);
			EXPECT_EQ(weft_close(fd), -EBADF);
			close(pfd[0]);
			close(pfd[1]);
		}
		return (intptr_t)0;
	});
}

TEST(ErrorsTest, MisusedDescriptorsReportTheSystemCallsErrno)
{
	pair p = socket_pair(), q = socket_pair();
	int pfd[2];
	ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0);
	int unlistened = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(unlistened, 0);
	run_in_weft(1, [&] {
		/* splice needs a pipe on one side. */
		EXPECT_EQ(send(p.a, "abcd", 4, 0), 4);
		EXPECT_EQ(weft_splice(p.b, -1, q.a, -1, 4, 0), -EINVAL);
		/* An offset on the pipe side is not allowed either. */
		EXPECT_EQ(weft_splice(pfd[0], 0, q.a, -1, 4, 0), -ESPIPE);
		/* The bytes are still where they were. */
		char buf[4];
		EXPECT_EQ(weft_recv(p.b, buf, sizeof(buf), 0), 4);
		EXPECT_EQ(memcmp(buf, "abcd", 4), 0);
		EXPECT_EQ(weft_recv(pfd[0], buf, sizeof(buf), 0), -ENOTSOCK);
		EXPECT_EQ(weft_send(pfd[1], "x", 1, 0), -ENOTSOCK);
		EXPECT_EQ(weft_accept(unlistened, nullptr, nullptr, 0), -EINVAL);
		EXPECT_EQ(weft_accept(pfd[0], nullptr, nullptr, 0), -ENOTSOCK);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
	close(q.a);
	close(q.b);
	close(pfd[0]);
	close(pfd[1]);
	close(unlistened);
}

/* ---- Deadlines and cancellation of blocked operations ---------------------- */

/*
 * op must block (and be safe to run again).  Under a 30 ms deadline it must
 * return -ETIMEDOUT after about that long; in a task that a second task
 * cancels once it has blocked, -ECANCELED.
 */
void expect_bounded_and_cancellable(const std::function<intptr_t()> &op)
{
	run_in_weft(2, [&] {
		struct weft_scope s;
		uint64_t t0 = weft_now();
		weft_scope_deadline(&s, 30 * WEFT_MSEC);
		EXPECT_EQ(op(), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		uint64_t dt = weft_now() - t0;
		EXPECT_GE(dt, 30 * WEFT_MSEC);
		EXPECT_LT(dt, 2 * WEFT_SEC);

		std::atomic<int> arrived{0};
		std::atomic<uint64_t> cancelled_at{0};
		struct weft_task *victim = go([&] {
			arrived++;
			return op();
		});
		struct weft_task *canceller = go([&] {
			while (arrived.load() == 0)
				weft_sleep(WEFT_MSEC);
			weft_sleep(20 * WEFT_MSEC); /* let it block */
			cancelled_at = weft_now();
			weft_cancel(victim);
			return (intptr_t)0;
		});
		EXPECT_EQ(join(victim), -ECANCELED);
		EXPECT_NE(cancelled_at.load(), 0u) << "returned before it was cancelled";
		EXPECT_EQ(join(canceller), 0);
		return (intptr_t)0;
	});
}

TEST(ErrorsTest, SendOnAFullBufferTimesOutAndIsCancelled)
{
	pair p = socket_pair();
	int small = 4096;
	ASSERT_EQ(setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	static char chunk[1024];
	size_t filled = 0;
	ssize_t n;
	while ((n = send(p.a, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0)
		filled += (size_t)n;
	ASSERT_EQ(errno, EAGAIN);
	ASSERT_GT(filled, 0u);
	expect_bounded_and_cancellable([&] { return (intptr_t)weft_send(p.a, "z", 1, 0); });
	/* The timed-out and the cancelled send sent nothing. */
	size_t drained = 0;
	char buf[4096];
	while ((n = recv(p.b, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		drained += (size_t)n;
	EXPECT_EQ(drained, filled);
	close(p.a);
	close(p.b);
}

/*
 * A listener that never accepts, with its accept queue full: the kernel
 * drops further SYNs, so a connect to it waits (for the SYN's retransmits)
 * on loopback.
 */
TEST(ErrorsTest, ConnectThatGetsNoAnswerTimesOutAndIsCancelled)
{
	struct sockaddr_in addr;
	int l = listen_loopback(&addr, 0);
	std::vector<int> held;
	bool full = false;
	for (int i = 0; i < 16 && !full; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ASSERT_GE(fd, 0);
		held.push_back(fd);
		int rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
		ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << strerror(errno);
		struct pollfd p = {fd, POLLOUT, 0};
		full = rc < 0 && poll(&p, 1, 50) == 0;
	}
	ASSERT_TRUE(full) << "the listener's queue never filled";
	expect_bounded_and_cancellable([&] {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		intptr_t r = weft_connect(fd, (struct sockaddr *)&addr, sizeof(addr));
		close(fd);
		return r;
	});
	for (int fd : held)
		close(fd);
	close(l);
}

TEST(ErrorsTest, PollWithNothingToReadTimesOutAndIsCancelled)
{
	pair p = socket_pair();
	expect_bounded_and_cancellable([&] { return (intptr_t)weft_poll(p.b, POLLIN); });
	/* The socket is still usable: a poll now sees the byte. */
	ASSERT_EQ(send(p.a, "!", 1, 0), 1);
	run_in_weft(1, [&] {
		EXPECT_EQ(weft_poll(p.b, POLLIN) & POLLIN, POLLIN);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

/* ---- Cancellation from a plain thread -------------------------------------- */

constexpr unsigned char SENTINEL = 0xa5;

TEST(ErrorsTest, CancelFromAPlainThreadReachesABlockedRecvAndSparesItsBuffer)
{
	pair p = socket_pair();
	run_in_weft(2, [&] {
		std::atomic<int> arrived{0};
		std::atomic<int> result{1};
		struct weft_future *sent = weft_future_new();
		struct weft_task *t = go([&] {
			unsigned char buf[64];
			memset(buf, SENTINEL, sizeof(buf));
			arrived++;
			ssize_t r = weft_recv(p.b, buf, sizeof(buf), 0);
			result = (int)r;
			/* Keep the buffer alive until bytes have reached the
			 * socket: a cancelled recv that was still in flight would
			 * write them here.  Shielded: the cancellation is sticky. */
			struct weft_scope s;
			weft_scope_shield(&s, 2 * WEFT_SEC);
			EXPECT_EQ(weft_future_await(sent, nullptr), 0);
			EXPECT_EQ(weft_sleep(10 * WEFT_MSEC), 0);
			weft_scope_end(&s);
			for (size_t i = 0; i < sizeof(buf); i++)
				if (buf[i] != SENTINEL)
					return (intptr_t)-EIO;
			return (intptr_t)r;
		});
		struct weft_future *done = weft_future_new();
		std::thread th([&] {
			while (arrived.load() == 0)
				usleep(1000);
			usleep(20000); /* let it park */
			weft_cancel(t);
			weft_future_resolve(done, 0);
		});
		EXPECT_EQ(weft_future_await(done, nullptr), 0);
		th.join();
		/* Bytes arrive only after the cancel has returned. */
		EXPECT_EQ(send(p.a, "late", 4, 0), 4);
		EXPECT_EQ(weft_future_resolve(sent, 0), 0);
		EXPECT_EQ(join(t), -ECANCELED) << "-EIO: the buffer was written";
		EXPECT_EQ(result.load(), -ECANCELED);
		/* The bytes were not taken by the cancelled recv. */
		char in[8] = {};
		EXPECT_EQ(weft_recv(p.b, in, sizeof(in), 0), 4);
		EXPECT_EQ(memcmp(in, "late", 4), 0);
		weft_future_free(sent);
		weft_future_free(done);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

TEST(ErrorsTest, CancelFromAPlainThreadReachesABlockedAccept)
{
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(c, 0);
	run_in_weft(2, [&] {
		std::atomic<int> arrived{0};
		struct weft_task *t = go([&] {
			arrived++;
			return (intptr_t)weft_accept(l, nullptr, nullptr, SOCK_CLOEXEC);
		});
		struct weft_future *done = weft_future_new();
		std::thread th([&] {
			while (arrived.load() == 0)
				usleep(1000);
			usleep(20000);
			weft_cancel(t);
			weft_future_resolve(done, 0);
		});
		EXPECT_EQ(weft_future_await(done, nullptr), 0);
		th.join();
		EXPECT_EQ(join(t), -ECANCELED);
		/* A connection made after the cancel waits for the next accept. */
		EXPECT_EQ(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
		int s = accept4(l, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
		EXPECT_GE(s, 0) << strerror(errno);
		if (s >= 0)
			close(s);
		weft_future_free(done);
		return (intptr_t)0;
	});
	close(c);
	close(l);
}

/* ---- Migration after a completion ---------------------------------------- */

/* Spawns f on worker 0 (flags: WEFT_SPAWN_* added to WEFT_SPAWN_ON). */
struct weft_task *go_on0(std::function<intptr_t()> f, unsigned flags = 0)
{
	struct weft_spawn_opts o = {};
	o.flags = WEFT_SPAWN_ON | flags;
	o.worker = 0;
	return weft_spawn(
		[](void *a) -> intptr_t {
			std::unique_ptr<std::function<intptr_t()>> fn(
				static_cast<std::function<intptr_t()> *>(a));
			return (*fn)();
		},
		new std::function<intptr_t()>(std::move(f)), &o);
}

/* The calling thread's id.  Not pthread_self(): glibc declares it const,
 * so the compiler may reuse a value read before a suspension point after
 * it, on another thread. */
pid_t thread_id()
{
	return (pid_t)syscall(SYS_gettid);
}

/* Spins (no suspension point) until done or 100 ms have passed. */
void spin_until(const std::atomic<bool> &done)
{
	uint64_t until = weft_now() + 100 * WEFT_MSEC;
	while (!done.load() && weft_now() < until)
		;
}

/*
 * A completion is reaped only by the worker whose ring holds the operation,
 * and only between tasks: while a task computes there, it waits.  Once
 * reaped, the task it wakes goes to that worker's I/O queue, oldest first,
 * which idle workers steal from.  So the receiver R can resume elsewhere
 * only if its worker has something to run before it.  On worker 0: S parks
 * in a recv on socket q, R in a recv on socket p; then B, pinned there,
 * computes while a plain thread sends to q and then to p.  When B ends,
 * worker 0 reaps both completions in one batch, queues S then R, runs S,
 * which computes until R has run; worker 1, idle, must steal R.
 */
TEST(ErrorsTest, ATaskWokenByARecvCompletionCanResumeOnAnotherWorker)
{
	const int attempts = 20;
	struct weft_opts o = {};
	o.workers = 2;
	o.stall_warn_ns = WEFT_NEVER; /* B and S compute without suspending */
	struct weft_rt *rt = nullptr;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	struct ctx {
		int migrated = 0, ran = 0;
	} c;
	intptr_t result = -1;
	ASSERT_EQ(weft_rt_run(
			  rt,
			  [](void *arg) -> intptr_t {
				  auto *c = static_cast<struct ctx *>(arg);
				  for (int i = 0; i < attempts; i++) {
					  pair p = socket_pair(), q = socket_pair();
					  std::atomic<int> parked{0};
					  std::atomic<bool> r_done{false}, b_running{false},
						  sent{false};
					  pid_t before = 0, after = 0;
					  struct weft_task *s = go_on0([&] {
						  char ch;
						  parked++;
						  ssize_t n = weft_recv(q.b, &ch, 1, 0);
						  spin_until(r_done);
						  return (intptr_t)n;
					  });
					  struct weft_task *r = go_on0([&] {
						  before = thread_id();
						  char buf[8] = {};
						  parked++;
						  ssize_t n = weft_recv(p.b, buf, sizeof(buf), 0);
						  after = thread_id();
						  r_done = true;
						  EXPECT_EQ(memcmp(buf, "bytes", 5), 0);
						  return (intptr_t)n;
					  });
					  while (parked.load() < 2)
						  weft_sleep(WEFT_MSEC);
					  weft_sleep(2 * WEFT_MSEC); /* both recvs reach the kernel */
					  struct weft_task *b = go_on0(
						  [&] {
							  b_running = true;
							  spin_until(sent);
							  return (intptr_t)0;
						  },
						  WEFT_SPAWN_PINNED);
					  std::thread sender([&] {
						  while (!b_running.load())
							  usleep(100);
						  EXPECT_EQ(send(q.a, "s", 1, 0), 1);
						  EXPECT_EQ(send(p.a, "bytes", 5, 0), 5);
						  usleep(1000); /* the wake-ups reach the ring */
						  sent = true;
					  });
					  EXPECT_EQ(join(r), 5);
					  EXPECT_EQ(join(s), 1);
					  EXPECT_EQ(join(b), 0);
					  sender.join();
					  c->ran++;
					  c->migrated += before != after;
					  close(p.a);
					  close(p.b);
					  close(q.a);
					  close(q.b);
				  }
				  return 0;
			  },
			  &c, &result),
		  0);
	EXPECT_EQ(result, 0);
	EXPECT_EQ(weft_rt_shutdown(rt, 2 * WEFT_SEC), 0);
	EXPECT_GE(c.migrated, 1) << "never resumed on another worker in " << c.ran << " attempts";
}

} // namespace
