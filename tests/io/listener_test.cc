// SPDX-License-Identifier: MIT
/*
 * listener_test.cc - the multishot-accept listener: every connection is
 * handed out exactly once, also past the queue's capacity (the pause and
 * re-arm path); a full descriptor table makes it back off without spinning
 * and it recovers by itself; close wakes waiting takers with -EBADF, ends
 * accept loops that call again after it, and closes the connections nobody
 * took; a socket that is not listening, or cannot accept, stops it with the
 * kernel's error.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <vector>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"

namespace {

int dial(const struct sockaddr_in *addr)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	EXPECT_EQ(connect(c, (const struct sockaddr *)addr, sizeof(*addr)), 0);
	return c;
}

/* Which client a server-side socket belongs to: the client's local port. */
int peer_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	EXPECT_EQ(getpeername(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

int local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	EXPECT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

uint64_t process_cpu_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

TEST(ListenerTest, EveryConnectionIsHandedOutOnceAlsoPastTheQueue)
{
	/* 400 connections made before anyone takes one: more than the
	 * listener's queue (128), so it must pause and re-arm. */
	const int n = 400;
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr, 1024);
	std::vector<int> clients;
	std::set<int> ports;
	run_in_weft(2, [&] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		for (int i = 0; i < n; i++) {
			clients.push_back(dial(&addr));
			ports.insert(local_port(clients.back()));
		}
		/* Let the acceptor fill its queue and pause. */
		weft_sleep(50 * WEFT_MSEC);
		std::set<int> seen;
		for (int i = 0; i < n; i++) {
			int fd = weft_listener_accept(l);
			EXPECT_GE(fd, 0);
			if (fd < 0)
				break;
			EXPECT_TRUE(seen.insert(peer_port(fd)).second) << "handed out twice";
			close(fd);
		}
		EXPECT_EQ(seen, ports);
		EXPECT_EQ(weft_listener_close(l), 0);
		weft_listener_free(l);
		return (intptr_t)0;
	});
	for (int c : clients)
		close(c);
	close(lfd);
}

/* Takers on both workers share the connections, and a close ends their
 * loops: each takes a while over a connection, so some are between two
 * accepts when the close comes, and their next accept must get -EBADF
 * from the listener, which stays valid until it is freed. */
TEST(ListenerTest, TakersOnEveryWorkerShareTheConnectionsAndStopAtTheClose)
{
	const int n = 200, takers = 8;
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr, 256);
	std::atomic<int> taken{0};
	run_in_weft(2, [&] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < takers; i++)
			ts.push_back(go([&] {
				int fd;
				while ((fd = weft_listener_accept(l)) >= 0) {
					taken++;
					close(fd);
					weft_sleep(2 * WEFT_MSEC);
				}
				return (intptr_t)fd;
			}));
		std::vector<int> clients;
		for (int i = 0; i < n; i++)
			clients.push_back(dial(&addr));
		while (taken.load() < n)
			weft_sleep(WEFT_MSEC);
		EXPECT_EQ(weft_listener_close(l), 0);
		for (auto *t : ts) {
			intptr_t r = 0;
			EXPECT_EQ(weft_join(t, &r), 0);
			EXPECT_EQ(r, -EBADF);
		}
		EXPECT_EQ(weft_listener_accept(l), -EBADF);
		EXPECT_EQ(weft_listener_close(l), 0) << "a second close repeats the first";
		weft_listener_free(l);
		for (int c : clients)
			close(c);
		return (intptr_t)0;
	});
	EXPECT_EQ(taken.load(), n);
	close(lfd);
}

/* Connections accepted but never taken are closed by the close, not
 * handed to an accept that comes after it. */
TEST(ListenerTest, CloseClosesTheConnectionsNobodyTook)
{
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr, 16);
	run_in_weft(2, [&] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		int c[3];
		for (int &fd : c)
			fd = dial(&addr);
		/* Let the acceptor take them from the backlog into its queue. */
		weft_sleep(20 * WEFT_MSEC);
		EXPECT_EQ(weft_listener_close(l), 0);
		EXPECT_EQ(weft_listener_accept(l), -EBADF);
		for (int fd : c) {
			char b;
			struct timeval tv = {5, 0};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			ssize_t r = recv(fd, &b, 1, 0);
			EXPECT_TRUE(r == 0 || (r < 0 && errno == ECONNRESET))
				<< "a connection nobody took stayed open: " << r << " " << errno;
			close(fd);
		}
		weft_listener_free(l);
		return (intptr_t)0;
	});
	close(lfd);
}

/* Tasks waiting in accept when the listener closes get -EBADF, and may
 * still be on their way out when it is freed.  They are pinned to this
 * task's worker and ready at once, so while this task sleeps each runs to
 * its park inside accept, before the close begins. */
TEST(ListenerTest, CloseWakesTheTakersWaitingInAccept)
{
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr, 16);
	run_in_weft(2, [&] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < 4; i++)
			ts.push_back(go([&] { return (intptr_t)weft_listener_accept(l); },
					WEFT_SPAWN_PINNED));
		EXPECT_EQ(weft_sleep(10 * WEFT_MSEC), 0);
		EXPECT_EQ(weft_listener_close(l), 0);
		/* Woken but not yet run (they are on this worker): each still
		 * holds the listener, which the last one out frees. */
		weft_listener_free(l);
		for (auto *t : ts) {
			intptr_t r = 0;
			EXPECT_EQ(weft_join(t, &r), 0);
			EXPECT_EQ(r, -EBADF);
		}
		return (intptr_t)0;
	});
	close(lfd);
}

TEST(ListenerTest, AFullDescriptorTableBacksOffWithoutSpinningAndRecovers)
{
	struct sockaddr_in addr;
	static int lfd;
	lfd = listen_loopback(&addr, 64);
	int c1 = dial(&addr), c2 = dial(&addr);
	run_in_weft(1, [] {
		struct rlimit saved = fill_fd_table();
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		/* 300 ms with two connections pending and no descriptor to
		 * give them: the acceptor must sleep, not retry in a loop. */
		uint64_t cpu0 = process_cpu_ns();
		weft_sleep(300 * WEFT_MSEC);
		uint64_t cpu = process_cpu_ns() - cpu0;
		EXPECT_LT(cpu, 100 * WEFT_MSEC) << "the listener spins on EMFILE";
		EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
		/* It recovers by itself, within its longest back-off. */
		struct weft_scope s;
		weft_scope_deadline(&s, 5 * WEFT_SEC);
		int a = weft_listener_accept(l), b = weft_listener_accept(l);
		weft_scope_end(&s);
		EXPECT_GE(a, 0);
		EXPECT_GE(b, 0);
		close(a);
		close(b);
		EXPECT_EQ(weft_listener_close(l), 0);
		weft_listener_free(l);
		return (intptr_t)0;
	});
	close(c1);
	close(c2);
	close(lfd);
}

TEST(ListenerTest, ASocketThatIsNotListeningStopsItWithTheKernelsError)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	run_in_weft(1, [&] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(fd, &l), 0);
		EXPECT_EQ(weft_listener_accept(l), -EINVAL);
		EXPECT_EQ(weft_listener_close(l), -EINVAL);
		weft_listener_free(l);
		return (intptr_t)0;
	});
	close(fd);
}

TEST(ListenerTest, ASocketThatCannotAcceptStopsItWithoutSpinning)
{
	/* A datagram socket: accept(2) fails with EOPNOTSUPP, which is about
	 * the socket, not one connection, so re-arming would fail the same way
	 * for ever.  The deadline only bounds the test. */
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	run_in_weft(1, [&] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(fd, &l), 0);
		uint64_t cpu0 = process_cpu_ns();
		struct weft_scope s;
		weft_scope_deadline(&s, 200 * WEFT_MSEC);
		EXPECT_EQ(weft_listener_accept(l), -EOPNOTSUPP);
		weft_scope_end(&s);
		EXPECT_LT(process_cpu_ns() - cpu0, 50 * WEFT_MSEC);
		EXPECT_EQ(weft_listener_close(l), -EOPNOTSUPP);
		weft_listener_free(l);
		return (intptr_t)0;
	});
	close(fd);
}

TEST(ListenerTest, AcceptHonoursDeadlineAndCancellation)
{
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr, 16);
	run_in_weft(2, [&] {
		struct weft_listener *l;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		struct weft_scope s;
		weft_scope_deadline(&s, 20 * WEFT_MSEC);
		EXPECT_EQ(weft_listener_accept(l), -ETIMEDOUT);
		weft_scope_end(&s);
		struct weft_task *t = go([&] { return (intptr_t)weft_listener_accept(l); });
		weft_sleep(10 * WEFT_MSEC);
		weft_cancel(t);
		intptr_t r;
		EXPECT_EQ(weft_join(t, &r), 0);
		EXPECT_EQ(r, -ECANCELED);
		/* The listener itself goes on. */
		int c = dial(&addr);
		int fd = weft_listener_accept(l);
		EXPECT_GE(fd, 0);
		close(fd);
		close(c);
		EXPECT_EQ(weft_listener_close(l), 0);
		weft_listener_free(l);
		return (intptr_t)0;
	});
	close(lfd);
}

} // namespace
