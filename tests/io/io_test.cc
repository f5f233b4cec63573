// SPDX-License-Identifier: MIT
/*
 * io_test.cc - the I/O path: operations succeed and fail as their system
 * calls would (bytes, EOF, -ECONNREFUSED), a deadline bounds a blocked
 * operation with -ETIMEDOUT, a cancellation from another worker reaches a
 * blocked recv or accept as -ECANCELED, and a recv that completed is never
 * reported as cancelled (no byte is lost), and a cancellation that outlives
 * its task never reaches the next task on the same object; accept with a full descriptor
 * table reports -EMFILE and recovers.  File, vectored, message,
 * splice and poll operations each do what their system call does (a
 * FIFO's open excepted: it does not wait for the other end); a task
 * waits for a signal through weft_signal_wait, which no thread of the
 * runtime's own takes first.  A worker kept busy by
 * tasks that are always ready still reaps completions, however many come
 * at once.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"

namespace {

TEST(IoTest, SendAndRecvCarryTheBytes)
{
	pair p = socket_pair();
	run_in_weft(2, [&] {
		EXPECT_EQ(weft_send(p.a, "hello", 5, 0), 5);
		char buf[16] = {};
		EXPECT_EQ(weft_recv(p.b, buf, sizeof(buf), 0), 5);
		EXPECT_STREQ(buf, "hello");
		EXPECT_EQ(weft_write(p.b, "back", 4), 4);
		EXPECT_EQ(weft_read(p.a, buf, 4), 4);
		EXPECT_EQ(memcmp(buf, "back", 4), 0);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

TEST(IoTest, ALengthOfFourGiBIsAShortCountNotAWrappedOne)
{
	/* A real buffer of 4 GiB (address space only): an SQE's length is
	 * 32 bits, and 2^32 must not wrap to 0, which reads as the end. */
	const size_t big = (size_t)1 << 32;
	void *buf = mmap(nullptr, big, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(buf, MAP_FAILED);
	pair p = socket_pair();
	int pp[2];
	ASSERT_EQ(pipe(pp), 0);
	run_in_weft(1, [&] {
		EXPECT_EQ(write(p.a, "hello", 5), 5);
		EXPECT_EQ(weft_recv(p.b, buf, big, 0), 5);
		EXPECT_EQ(memcmp(buf, "hello", 5), 0);
		EXPECT_EQ(write(pp[1], "world", 5), 5);
		EXPECT_EQ(weft_read(pp[0], buf, big), 5);
		EXPECT_EQ(memcmp(buf, "world", 5), 0);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
	close(pp[0]);
	close(pp[1]);
	munmap(buf, big);
}

TEST(IoTest, RecvReturnsZeroAtEndOfStream)
{
	pair p = socket_pair();
	run_in_weft(1, [&] {
		EXPECT_EQ(weft_close(p.a), 0);
		char buf[4];
		EXPECT_EQ(weft_recv(p.b, buf, sizeof(buf), 0), 0);
		EXPECT_EQ(weft_close(p.a), -EBADF) << "closed twice";
		return (intptr_t)0;
	});
	close(p.b);
}

TEST(IoTest, ConnectToAClosedPortIsRefused)
{
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	close(l); /* the port is now free and nobody listens */
	run_in_weft(1, [&] {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		EXPECT_EQ(weft_connect(fd, (struct sockaddr *)&addr, sizeof(addr)), -ECONNREFUSED);
		weft_close(fd);
		return (intptr_t)0;
	});
}

TEST(IoTest, AcceptConnectAndEchoOverLoopback)
{
	struct sockaddr_in addr;
	static int l;
	static struct sockaddr_in a;
	l = listen_loopback(&addr);
	a = addr;
	run_in_weft(2, [] {
		struct weft_task *server = weft_spawn(
			[](void *) -> intptr_t {
				int c = weft_accept(l, nullptr, nullptr, SOCK_CLOEXEC);
				if (c < 0)
					return c;
				char buf[64];
				ssize_t n;
				while ((n = weft_recv(c, buf, sizeof(buf), 0)) > 0)
					if (weft_send(c, buf, (size_t)n, 0) != n)
						return -EIO;
				weft_close(c);
				return n;
			},
			nullptr, nullptr);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		EXPECT_EQ(weft_connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		for (int i = 0; i < 100; i++) {
			char out[32], in[32] = {};
			int n = snprintf(out, sizeof(out), "message %d", i);
			EXPECT_EQ(weft_send(fd, out, (size_t)n, 0), n);
			EXPECT_EQ(weft_recv(fd, in, (size_t)n, MSG_WAITALL), n);
			EXPECT_EQ(memcmp(in, out, (size_t)n), 0);
		}
		shutdown(fd, SHUT_WR);
		intptr_t r = -1;
		EXPECT_EQ(weft_join(server, &r), 0);
		EXPECT_EQ(r, 0) << "server saw end of stream";
		weft_close(fd);
		return (intptr_t)0;
	});
	close(l);
}

TEST(IoTest, DeadlineBoundsABlockedRecv)
{
	pair p = socket_pair();
	run_in_weft(1, [&] {
		char buf[4];
		struct weft_scope s;
		uint64_t t0 = weft_now();
		weft_scope_deadline(&s, 20 * WEFT_MSEC);
		EXPECT_EQ(weft_recv(p.b, buf, sizeof(buf), 0), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		uint64_t dt = weft_now() - t0;
		EXPECT_GE(dt, 20 * WEFT_MSEC);
		EXPECT_LT(dt, 2 * WEFT_SEC);
		/* The socket still works afterwards. */
		EXPECT_EQ(weft_send(p.a, "x", 1, 0), 1);
		EXPECT_EQ(weft_recv(p.b, buf, sizeof(buf), 0), 1);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

TEST(IoTest, CancelFromAnotherWorkerReachesABlockedRecvAndAccept)
{
	pair p = socket_pair();
	struct sockaddr_in addr;
	static int l, fd;
	l = listen_loopback(&addr);
	fd = p.b;
	run_in_weft(2, [] {
		/* Both block on worker 0; the canceller runs on worker 1. */
		struct weft_spawn_opts on0 = {}, on1 = {};
		on0.flags = on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		on1.worker = 1;
		struct weft_task *r = weft_spawn(
			[](void *) -> intptr_t {
				char buf[4];
				return weft_recv(fd, buf, sizeof(buf), 0);
			},
			nullptr, &on0);
		struct weft_task *a = weft_spawn(
			[](void *) -> intptr_t { return weft_accept(l, nullptr, nullptr, 0); },
			nullptr, &on0);
		static struct weft_task *victims[2];
		victims[0] = r;
		victims[1] = a;
		struct weft_task *c = weft_spawn(
			[](void *) -> intptr_t {
				weft_sleep(20 * WEFT_MSEC); /* let them block */
				weft_cancel(victims[0]);
				weft_cancel(victims[1]);
				return 0;
			},
			nullptr, &on1);
		intptr_t rr = 0, ra = 0;
		EXPECT_EQ(weft_join(r, &rr), 0);
		EXPECT_EQ(weft_join(a, &ra), 0);
		EXPECT_EQ(weft_join(c, nullptr), 0);
		EXPECT_EQ(rr, -ECANCELED);
		EXPECT_EQ(ra, -ECANCELED);
		return (intptr_t)0;
	});
	close(l);
	close(p.a);
	close(p.b);
}

/* An operation that blocks in one of io_uring's worker threads (a splice
 * from an empty pipe, or out to a socket nobody reads) is interrupted there
 * by the cancel and by the deadline: the task sees -ECANCELED or
 * -ETIMEDOUT, as for any other operation. */
struct splice_args {
	int in, out;
	unsigned flags;
	uint64_t deadline; /* relative; WEFT_NEVER: none */
};

/* Runs the splice of *a in a task of its own, cancelled after `cancel_after`
 * (WEFT_NEVER: never), and returns its result; -EDEADLK (and cancels it)
 * when it is still blocked 2 s on. */
intptr_t splice_in_task(splice_args *a, uint64_t cancel_after)
{
	struct weft_task *t = weft_spawn(
		[](void *arg) -> intptr_t {
			auto *a = (splice_args *)arg;
			struct weft_scope s;
			weft_scope_deadline(&s, a->deadline);
			intptr_t r = weft_splice(a->in, -1, a->out, -1, 4, a->flags);
			weft_scope_end(&s);
			return r;
		},
		a, nullptr);
	if (cancel_after != WEFT_NEVER) {
		weft_sleep(cancel_after);
		weft_cancel(t);
	}
	intptr_t r = 0;
	struct weft_scope s;
	weft_scope_deadline(&s, 2 * WEFT_SEC);
	int rc = weft_join(t, &r);
	weft_scope_end(&s);
	if (rc == -ETIMEDOUT) {
		weft_cancel(t);
		weft_join(t, nullptr);
		return -EDEADLK;
	}
	return r;
}

TEST(IoTest, AnOperationBlockedInTheKernelsWorkersIsCancelledAndTimedOut)
{
	static int in[2], out[2];
	ASSERT_EQ(pipe(in), 0);
	ASSERT_EQ(pipe(out), 0);
	run_in_weft(2, [] {
		splice_args a = {in[0], out[1], 0, WEFT_NEVER};
		EXPECT_EQ(splice_in_task(&a, 20 * WEFT_MSEC), -ECANCELED);
		a.deadline = 20 * WEFT_MSEC;
		EXPECT_EQ(splice_in_task(&a, WEFT_NEVER), -ETIMEDOUT);
		/* The pipes still work afterwards. */
		EXPECT_EQ(write(in[1], "abcd", 4), 4);
		EXPECT_EQ(weft_splice(in[0], -1, out[1], -1, 4, 0), 4);
		/* A splice out to a socket whose peer reads nothing. */
		pair p = socket_pair();
		fcntl(p.a, F_SETFL, O_NONBLOCK);
		static char junk[65536];
		while (write(p.a, junk, sizeof(junk)) > 0) {
		}
		fcntl(p.a, F_SETFL, 0);
		EXPECT_EQ(write(in[1], "abcd", 4), 4);
		a = {in[0], p.a, SPLICE_F_NONBLOCK, 20 * WEFT_MSEC};
		EXPECT_EQ(splice_in_task(&a, WEFT_NEVER), -ETIMEDOUT);
		close(p.a);
		close(p.b);
		return (intptr_t)0;
	});
	for (int fd : {in[0], in[1], out[0], out[1]})
		close(fd);
}

/* A byte sent while the receiver is being cancelled is either returned by
 * the recv (rc 1) or still in the socket afterwards: never lost. */
TEST(IoTest, CompletedRecvIsNeverReportedCancelled)
{
	const int rounds = WEFT_TEST_SCALE(2000);
	pair p = socket_pair();
	static int rx;
	rx = p.b;
	run_in_weft(2, [&] {
		int got = 0, cancelled = 0;
		for (int i = 0; i < rounds; i++) {
			struct weft_task *t = weft_spawn(
				[](void *) -> intptr_t {
					char c;
					return weft_recv(rx, &c, 1, 0);
				},
				nullptr, nullptr);
			if (i % 3)
				weft_yield(); /* vary who is first */
			EXPECT_EQ(send(p.a, "z", 1, 0), 1);
			weft_cancel(t);
			intptr_t r = 0;
			EXPECT_EQ(weft_join(t, &r), 0);
			if (r == 1) {
				got++;
			} else {
				EXPECT_EQ(r, -ECANCELED);
				cancelled++;
				char c;
				/* The byte must still be there. */
				EXPECT_EQ(recv(rx, &c, 1, MSG_DONTWAIT), 1) << "round " << i;
			}
		}
		EXPECT_EQ(got + cancelled, rounds);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

/* A cancellation that races its task's completion can still be queued on
 * the ring's owner after the task ended, was joined, and its object went to
 * a new task (task.c reuses them).  The new task's I/O must not be
 * cancelled by it.  One worker that sleeps as soon as it is idle, so that the
 * outside thread's cancel often lands while the completion is being reaped;
 * before the owner checked for CANCEL, B saw -ECANCELED in about one round
 * of ten. */
TEST(IoTest, ACancelThatOutlivesItsTaskSparesTheNextTaskOnTheObject)
{
	const int rounds = WEFT_TEST_SCALE(300);
	struct weft_opts o = {};
	o.workers = 1;
	o.idle_spin_ns = WEFT_NEVER;
	struct weft_rt *rt = nullptr;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	struct ctx {
		int rounds, spared = 0;
	} c = {rounds};
	intptr_t result = -1;
	ASSERT_EQ(weft_rt_run(
			  rt,
			  [](void *arg) -> intptr_t {
				  auto *c = static_cast<struct ctx *>(arg);
				  pair p = socket_pair(), q = socket_pair();
				  static int rx, idle;
				  rx = p.b;
				  idle = q.b;
				  for (int i = 0; i < c->rounds; i++) {
					  std::atomic<int> parked{0};
					  struct weft_task *a = go_and_let_park(parked, [&parked] {
						  char ch;
						  parked++;
						  return (intptr_t)weft_recv(rx, &ch, 1, 0);
					  });
					  struct weft_future *f = weft_future_new();
					  std::thread th([&] {
						  EXPECT_EQ(send(p.a, "z", 1, 0), 1);
						  weft_cancel(a);
						  weft_future_resolve(f, 0);
					  });
					  EXPECT_EQ(weft_future_await(f, nullptr), 0);
					  th.join();
					  weft_future_free(f);
					  if (join(a) != 1) {
						  char ch; /* cancelled first: the byte is still there */
						  EXPECT_EQ(recv(rx, &ch, 1, MSG_DONTWAIT), 1);
					  }
					  struct weft_task *b = go([] {
						  char ch;
						  struct weft_scope s;
						  weft_scope_deadline(&s, 2 * WEFT_MSEC);
						  ssize_t r = weft_recv(idle, &ch, 1, 0);
						  weft_scope_end(&s);
						  return (intptr_t)r;
					  });
					  intptr_t r = join(b);
					  EXPECT_EQ(r, -ETIMEDOUT) << "round " << i;
					  c->spared += r == -ETIMEDOUT;
				  }
				  close(p.a);
				  close(p.b);
				  close(q.a);
				  close(q.b);
				  return 0;
			  },
			  &c, &result),
		  0);
	EXPECT_EQ(c.spared, rounds);
	EXPECT_EQ(weft_rt_shutdown(rt, 2 * WEFT_SEC), 0);
}

/* With the descriptor table full, accept reports -EMFILE and nothing else
 * happens; once a descriptor is free the same connection is accepted. */
TEST(IoTest, AcceptWithAFullDescriptorTableReportsEMFILEAndRecovers)
{
	struct sockaddr_in addr;
	static int l;
	l = listen_loopback(&addr);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
	run_in_weft(1, [] {
		struct rlimit saved = fill_fd_table();
		EXPECT_EQ(weft_accept(l, nullptr, nullptr, SOCK_CLOEXEC), -EMFILE);
		EXPECT_EQ(weft_accept(l, nullptr, nullptr, SOCK_CLOEXEC), -EMFILE);
		EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
		int fd = weft_accept(l, nullptr, nullptr, SOCK_CLOEXEC);
		EXPECT_GE(fd, 0);
		weft_close(fd);
		return (intptr_t)0;
	});
	close(c);
	close(l);
}

TEST(IoTest, FileOperationsDoWhatTheirSyscallsDo)
{
	char dir[] = "/tmp/weft-io-XXXXXX";
	ASSERT_NE(mkdtemp(dir), nullptr);
	static std::string path;
	path = std::string(dir) + "/f";
	run_in_weft(1, [] {
		int fd = weft_openat(AT_FDCWD, path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
		EXPECT_GE(fd, 0);
		EXPECT_EQ(weft_pwrite(fd, "0123456789", 10, 0), 10);
		EXPECT_EQ(weft_pwrite(fd, "abc", 3, 20), 3);
		EXPECT_EQ(weft_fsync(fd, 0), 0);
		EXPECT_EQ(weft_fsync(fd, 1), 0);
		struct statx st;
		EXPECT_EQ(weft_statx(AT_FDCWD, path.c_str(), 0, STATX_SIZE, &st), 0);
		EXPECT_EQ(st.stx_size, 23u);
		char buf[8] = {};
		EXPECT_EQ(weft_pread(fd, buf, 4, 3), 4);
		EXPECT_EQ(memcmp(buf, "3456", 4), 0);
		/* A negative offset is an error, not "the current position". */
		EXPECT_EQ(weft_pread(fd, buf, 4, -1), -EINVAL);
		EXPECT_EQ(weft_pwrite(fd, "zz", 2, -1), -EINVAL);
		EXPECT_EQ(lseek(fd, 0, SEEK_CUR), 0);
		/* readv/writev use and advance the file position. */
		char x[2] = {}, y[3] = {};
		struct iovec rv[2] = {{x, 2}, {y, 3}};
		EXPECT_EQ(weft_readv(fd, rv, 2), 5);
		EXPECT_EQ(memcmp(x, "01", 2), 0);
		EXPECT_EQ(memcmp(y, "234", 3), 0);
		struct iovec wv[2] = {{(void *)"XY", 2}, {(void *)"Z", 1}};
		EXPECT_EQ(weft_writev(fd, wv, 2), 3);
		EXPECT_EQ(weft_pread(fd, buf, 3, 5), 3);
		EXPECT_EQ(memcmp(buf, "XYZ", 3), 0);
		EXPECT_EQ(weft_close(fd), 0);
		EXPECT_EQ(weft_openat(AT_FDCWD, "/nonexistent/x", O_RDONLY, 0), -ENOENT);
		EXPECT_EQ(weft_statx(AT_FDCWD, "/nonexistent/x", 0, STATX_SIZE, &st), -ENOENT);
		return (intptr_t)0;
	});
	unlink(path.c_str());
	rmdir(dir);
}

/* A FIFO does not wait for its other end, unlike open(2) (weft/io.h says
 * so): for reading it opens at once, blocking reads after; for writing
 * with no reader it fails with -ENXIO. */
TEST(IoTest, AFifoOpensWithoutWaitingForItsOtherEnd)
{
	char dir[] = "/tmp/weft-io-XXXXXX";
	ASSERT_NE(mkdtemp(dir), nullptr);
	static std::string path;
	path = std::string(dir) + "/fifo";
	ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
	run_in_weft(1, [] {
		struct weft_scope sc;
		weft_scope_deadline(&sc, 5 * WEFT_SEC);
		EXPECT_EQ(weft_openat(AT_FDCWD, path.c_str(), O_WRONLY | O_CLOEXEC, 0), -ENXIO);
		int r = weft_openat(AT_FDCWD, path.c_str(), O_RDONLY | O_CLOEXEC, 0);
		EXPECT_GE(r, 0);
		EXPECT_FALSE(fcntl(r, F_GETFL) & O_NONBLOCK);
		int w = weft_openat(AT_FDCWD, path.c_str(), O_WRONLY | O_CLOEXEC, 0);
		EXPECT_GE(w, 0);
		EXPECT_FALSE(weft_scope_end(&sc)) << "an open waited";
		EXPECT_EQ(weft_write(w, "x", 1), 1);
		char c = 0;
		EXPECT_EQ(weft_read(r, &c, 1), 1);
		EXPECT_EQ(c, 'x');
		weft_close(w);
		weft_close(r);
		return (intptr_t)0;
	});
	unlink(path.c_str());
	rmdir(dir);
}

TEST(IoTest, MessagesSpliceShutdownAndPoll)
{
	pair p = socket_pair();
	static pair q;
	q = p;
	run_in_weft(2, [] {
		/* sendmsg / recvmsg with two iovecs. */
		struct iovec out[2] = {{(void *)"he", 2}, {(void *)"llo", 3}};
		struct msghdr m = {};
		m.msg_iov = out;
		m.msg_iovlen = 2;
		EXPECT_EQ(weft_sendmsg(q.a, &m, 0), 5);
		char buf[8] = {};
		struct iovec in = {buf, sizeof(buf)};
		struct msghdr r = {};
		r.msg_iov = &in;
		r.msg_iovlen = 1;
		EXPECT_EQ(weft_recvmsg(q.b, &r, 0), 5);
		EXPECT_STREQ(buf, "hello");

		/* splice: pipe -> socket. */
		int pfd[2];
		EXPECT_EQ(pipe(pfd), 0);
		EXPECT_EQ(write(pfd[1], "spliced", 7), 7);
		EXPECT_EQ(weft_splice(pfd[0], -1, q.a, -1, 7, 0), 7);
		memset(buf, 0, sizeof(buf));
		EXPECT_EQ(weft_recv(q.b, buf, 7, MSG_WAITALL), 7);
		EXPECT_STREQ(buf, "spliced");
		close(pfd[0]);
		close(pfd[1]);

		/* poll waits until another task makes the socket readable. */
		struct weft_task *w = weft_spawn(
			[](void *) -> intptr_t {
				weft_sleep(5 * WEFT_MSEC);
				return weft_send(q.a, "!", 1, 0);
			},
			nullptr, nullptr);
		int ev = weft_poll(q.b, POLLIN);
		EXPECT_TRUE(ev & POLLIN) << ev;
		EXPECT_EQ(weft_join(w, nullptr), 0);
		EXPECT_EQ(weft_recv(q.b, buf, 1, 0), 1);

		/* shutdown: the peer reads end of stream. */
		EXPECT_EQ(weft_shutdown(q.a, SHUT_WR), 0);
		EXPECT_EQ(weft_recv(q.b, buf, 1, 0), 0);
		EXPECT_EQ(weft_shutdown(-1, SHUT_WR), -EBADF);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}


TEST(IoTest, SignalWaitTakesAPendingSignal)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	run_in_weft(2, [&] {
		std::thread killer([] {
			usleep(10000);
			kill(getpid(), SIGUSR1);
		});
		EXPECT_EQ(weft_signal_wait(&set), SIGUSR1);
		killer.join();
		/* Bounded and cancellable like any wait. */
		struct weft_scope s;
		weft_scope_deadline(&s, 10 * WEFT_MSEC);
		EXPECT_EQ(weft_signal_wait(&set), -ETIMEDOUT);
		weft_scope_end(&s);
		return (intptr_t)0;
	});
	ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
}


/* The runtime's own threads block what the workers block: a signal that
 * main blocks once the runtime is made (every thread of its own then has
 * it blocked) reaches weft_signal_wait, never the stall watchdog's thread
 * (where SIGUSR1's default action would end the process). */
std::atomic<int> usr1_handled{0};

TEST(IoTest, ASignalBlockedAfterTheRuntimeStartsReachesSignalWait)
{
	struct sigaction sa = {}, old_sa;
	sa.sa_handler = [](int) { usr1_handled++; };
	ASSERT_EQ(sigaction(SIGUSR1, &sa, &old_sa), 0);
	struct weft_opts o = {};
	o.workers = 2; /* with the default stall warning: its watchdog runs */
	struct weft_rt *rt;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	static sigset_t set;
	sigset_t old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	usr1_handled = 0;
	intptr_t got = 0;
	for (int i = 0; i < 5; i++) {
		std::thread killer([] {
			usleep(10000);
			kill(getpid(), SIGUSR1);
		});
		ASSERT_EQ(weft_rt_run(
				  rt,
				  [](void *) -> intptr_t {
					  struct weft_scope s;
					  weft_scope_deadline(&s, 2 * WEFT_SEC);
					  intptr_t r = weft_signal_wait(&set);
					  weft_scope_end(&s);
					  return r;
				  },
				  nullptr, &got),
			  0);
		killer.join();
		EXPECT_EQ(got, SIGUSR1) << "round " << i;
	}
	EXPECT_EQ(usr1_handled.load(), 0) << "a thread of the runtime took the signal";
	EXPECT_EQ(weft_rt_shutdown(rt, WEFT_SEC), 0);
	pthread_sigmask(SIG_SETMASK, &old, nullptr);
	sigaction(SIGUSR1, &old_sa, nullptr);
}

TEST(IoTest, StatsCountTheEntriesSubmitted)
{
	struct weft_opts o = {};
	o.workers = 1;
	struct weft_rt *rt;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	static pair p;
	p = socket_pair();
	intptr_t r = -1;
	ASSERT_EQ(weft_rt_run(
			  rt,
			  [](void *) -> intptr_t {
				  char b;
				  for (int i = 0; i < 10; i++)
					  if (weft_send(p.a, "x", 1, 0) != 1 || weft_recv(p.b, &b, 1, 0) != 1)
						  return -1;
				  return 0;
			  },
			  nullptr, &r),
		  0);
	EXPECT_EQ(r, 0);
	struct weft_rt_stats st;
	weft_rt_stats(rt, &st);
	/* Twenty operations, each one SQE; wake-ups may add MSG_RINGs. */
	EXPECT_GE(st.submitted, 20u);
	EXPECT_EQ(weft_rt_shutdown(rt, WEFT_SEC), 0);
	close(p.a);
	close(p.b);
}

/* ---- completions reach a busy worker ------------------------------------------ */

struct busy {
	std::atomic<bool> stop{false};
	std::atomic<int> received{0};
	struct weft_wg all_received;
};

/* Always ready, and slow between yields (20 us), so that a busy worker's
 * polls are far apart: the 64 completions below then wait together. */
intptr_t spinner(void *arg)
{
	struct busy *b = static_cast<struct busy *>(arg);
	while (!b->stop.load(std::memory_order_relaxed)) {
		uint64_t until = weft_now() + 20 * WEFT_USEC;
		while (weft_now() < until)
			;
		weft_yield();
	}
	return 0;
}

struct receiver {
	int fd;
	struct busy *b;
};

intptr_t receive_one(void *arg)
{
	struct receiver *r = static_cast<struct receiver *>(arg);
	char c;
	ssize_t n = weft_recv(r->fd, &c, 1, 0);
	if (n == 1)
		r->b->received++;
	weft_wg_done(&r->b->all_received);
	return n == 1 ? 0 : -1;
}

/*
 * Tasks that yield forever keep the only worker from ever running out of
 * work, so it never parks: completions can reach it only through the poll
 * a busy worker makes every WEFT__GLOBAL_INTERVAL switches, here about a
 * millisecond apart.  64 receives complete between two such polls, more
 * than the kernel runs per entry (20 task-work items on Linux 6.13 and
 * later); all must arrive while the spinners still spin, well within the
 * 10 s the waiter allows.
 */
TEST(IoTest, ABusyWorkerReapsEveryCompletionWithoutParking)
{
	const int n = 64;
	std::vector<pair> ps(n);
	for (auto &p : ps)
		p = socket_pair();
	struct busy b;
	std::vector<receiver> rs(n);
	intptr_t r = run_in_weft(1, [&]() -> intptr_t {
		weft_wg_init(&b.all_received);
		weft_wg_add(&b.all_received, n);
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < n; i++) {
			rs[i] = {ps[i].b, &b};
			ts.push_back(weft_spawn(receive_one, &rs[i], nullptr));
		}
		struct weft_task *s1 = weft_spawn(spinner, &b, nullptr);
		struct weft_task *s2 = weft_spawn(spinner, &b, nullptr);
		/* The bytes come from outside once every receive is armed in
		 * the kernel (the receivers ran and parked). */
		std::thread writer([&] {
			usleep(100 * 1000);
			for (auto &p : ps)
				EXPECT_EQ(write(p.a, "x", 1), 1);
		});
		struct weft_scope sc;
		weft_scope_deadline(&sc, 10 * WEFT_SEC);
		int rc = weft_wg_wait(&b.all_received);
		weft_scope_end(&sc);
		EXPECT_EQ(rc, 0) << "completions waited behind the ready tasks";
		EXPECT_FALSE(b.stop.load());
		b.stop = true;
		writer.join();
		EXPECT_EQ(join(s1), 0);
		EXPECT_EQ(join(s2), 0);
		for (struct weft_task *t : ts)
			EXPECT_EQ(join(t), 0);
		return 0;
	});
	EXPECT_EQ(r, 0);
	EXPECT_EQ(b.received.load(), n);
	for (auto &p : ps) {
		close(p.a);
		close(p.b);
	}
}

} // namespace
