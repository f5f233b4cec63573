// SPDX-License-Identifier: MIT
/*
 * watch_test.cc - connections that wait without a task: the bytes start a
 * task with them, the task can wait again, end of stream and the timeout
 * arrive as values, more ready connections than buffers are all served
 * (the -ENOBUFS path, where bytes that came are not a timeout, and a
 * watch begun with the ring empty still times out when none come), buffers
 * freed on another worker come back, many
 * idle timeouts fire neither early nor much late while bytes that come in
 * time beat theirs (a short one also behind a long one), and a shutdown closes the connections still waiting.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"
#include "weft/sync.h"

namespace {

struct seen {
	std::string bytes;
	ssize_t n = 1;
	uint64_t at = 0;
	struct weft_future *done = weft_future_new();
	~seen() { weft_future_free(done); }
};

void record(int fd, const void *data, ssize_t n, void *arg)
{
	auto *s = static_cast<seen *>(arg);
	s->n = n;
	s->at = weft_now();
	if (n > 0)
		s->bytes.assign(static_cast<const char *>(data), (size_t)n);
	close(fd);
	weft_future_resolve(s->done, 0);
}

TEST(WatchTest, BytesStartATaskWithThem)
{
	pair p = socket_pair();
	seen s;
	run_in_weft(2, [&] {
		EXPECT_EQ(weft_watch(p.b, WEFT_NEVER, record, &s), 0);
		weft_sleep(5 * WEFT_MSEC);
		EXPECT_EQ(s.n, 1) << "ran before any byte came";
		EXPECT_EQ(write(p.a, "ping", 4), 4);
		EXPECT_EQ(weft_future_await(s.done, nullptr), 0);
		EXPECT_EQ(s.n, 4);
		EXPECT_EQ(s.bytes, "ping");
		return (intptr_t)0;
	});
	close(p.a);
}

TEST(WatchTest, EndOfStreamAndTimeoutArriveAsValues)
{
	pair p = socket_pair(), q = socket_pair();
	seen eof, late;
	run_in_weft(1, [&] {
		EXPECT_EQ(weft_watch(p.b, WEFT_NEVER, record, &eof), 0);
		uint64_t t0 = weft_now();
		EXPECT_EQ(weft_watch(q.b, 20 * WEFT_MSEC, record, &late), 0);
		close(p.a);
		EXPECT_EQ(weft_future_await(eof.done, nullptr), 0);
		EXPECT_EQ(eof.n, 0);
		EXPECT_EQ(weft_future_await(late.done, nullptr), 0);
		EXPECT_EQ(late.n, -ETIMEDOUT);
		EXPECT_GE(late.at - t0, 20 * WEFT_MSEC) << "timed out early";
		return (intptr_t)0;
	});
	close(q.a);
}

TEST(WatchTest, ManyTimeoutsFireOnTimeAndBytesBeatTheirTimeout)
{
	const int n = 200;
	std::vector<pair> ps;
	for (int i = 0; i < n; i++)
		ps.push_back(socket_pair());
	std::vector<seen> late(n);
	seen early;
	pair q = socket_pair();
	run_in_weft(2, [&] {
		uint64_t t0 = weft_now();
		for (int i = 0; i < n; i++)
			EXPECT_EQ(weft_watch(ps[i].b, (uint64_t)(20 + i % 40) * WEFT_MSEC, record, &late[i]), 0);
		EXPECT_EQ(weft_watch(q.b, 10 * WEFT_SEC, record, &early), 0);
		EXPECT_EQ(write(q.a, "x", 1), 1);
		EXPECT_EQ(weft_future_await(early.done, nullptr), 0);
		EXPECT_EQ(early.n, 1) << "bytes that came in time are delivered";
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(weft_future_await(late[i].done, nullptr), 0);
			EXPECT_EQ(late[i].n, -ETIMEDOUT);
			uint64_t after = late[i].at - t0, want = (uint64_t)(20 + i % 40) * WEFT_MSEC;
			EXPECT_GE(after, want) << "timed out early";
			/* A quarter late at most, with room for a loaded machine. */
			EXPECT_LE(after, want + want / 4 + 200 * WEFT_MSEC) << "timed out very late";
		}
		return (intptr_t)0;
	});
	for (auto &p : ps)
		close(p.a);
	close(q.a);
}

/* The sweeper checks every quarter of the shortest timeout it knows; one
 * already asleep for a long timeout's quarter must start over when a short
 * timeout arrives, or that one fires a second late. */
TEST(WatchTest, AShortTimeoutIsNotHeldUpByALongOneBeforeIt)
{
	pair p = socket_pair(), q = socket_pair();
	seen slow, fast;
	run_in_weft(1, [&] {
		EXPECT_EQ(weft_watch(p.b, 10 * WEFT_SEC, record, &slow), 0);
		weft_sleep(50 * WEFT_MSEC); /* the sweeper sleeps for 1 s now */
		uint64_t t0 = weft_now();
		EXPECT_EQ(weft_watch(q.b, 40 * WEFT_MSEC, record, &fast), 0);
		EXPECT_EQ(weft_future_await(fast.done, nullptr), 0);
		EXPECT_EQ(fast.n, -ETIMEDOUT);
		EXPECT_GE(fast.at - t0, 40 * WEFT_MSEC) << "timed out early";
		/* A quarter late at most, with room for a loaded machine; it
		 * was 900 ms late when the sweeper slept on. */
		EXPECT_LE(fast.at - t0, 50 * WEFT_MSEC + 200 * WEFT_MSEC) << "timed out very late";
		EXPECT_EQ(write(p.a, "x", 1), 1);
		EXPECT_EQ(weft_future_await(slow.done, nullptr), 0);
		EXPECT_EQ(slow.n, 1);
		return (intptr_t)0;
	});
	close(p.a);
	close(q.a);
}

/* An echo that waits without a task between messages. */
struct echo_state {
	std::atomic<int> served{0};
	struct weft_future *closed = weft_future_new();
	~echo_state() { weft_future_free(closed); }
};

void echo(int fd, const void *data, ssize_t n, void *arg)
{
	auto *st = static_cast<echo_state *>(arg);
	if (n <= 0) {
		close(fd);
		weft_future_resolve(st->closed, n);
		return;
	}
	EXPECT_EQ(weft_send(fd, data, (size_t)n, 0), n);
	st->served++;
	EXPECT_EQ(weft_watch(fd, WEFT_NEVER, echo, st), 0);
}

TEST(WatchTest, TheTaskHandsTheConnectionBackToWaiting)
{
	pair p = socket_pair();
	echo_state st;
	run_in_weft(2, [&] {
		EXPECT_EQ(weft_watch(p.b, WEFT_NEVER, echo, &st), 0);
		for (int i = 0; i < 200; i++) {
			char msg[32], back[32];
			int len = snprintf(msg, sizeof(msg), "message %d", i);
			EXPECT_EQ(weft_send(p.a, msg, (size_t)len, 0), len);
			EXPECT_EQ(weft_recv(p.a, back, (size_t)len, MSG_WAITALL), len);
			EXPECT_EQ(memcmp(msg, back, (size_t)len), 0);
		}
		weft_shutdown(p.a, SHUT_WR);
		intptr_t r;
		EXPECT_EQ(weft_future_await(st.closed, &r), 0);
		EXPECT_EQ(r, 0);
		return (intptr_t)0;
	});
	EXPECT_EQ(st.served.load(), 200);
	close(p.a);
}

/* More connections with bytes ready than the worker has buffers (256):
 * the functions hold their buffers until every connection has been
 * counted, so the last ones must wait for -ENOBUFS re-arms. */
struct crowd {
	std::atomic<int> started{0};
	std::atomic<int> bad{0};
	struct weft_sem gate;
	struct weft_wg done;
};

void hold(int fd, const void *data, ssize_t n, void *arg)
{
	auto *c = static_cast<crowd *>(arg);
	/* Each client wrote one byte: a function of its peer's number. */
	if (n != 1)
		c->bad++;
	else if (*static_cast<const unsigned char *>(data) != (unsigned char)(fd ^ 0x5a))
		c->bad++;
	c->started++;
	weft_sem_acquire(&c->gate);
	weft_sem_release(&c->gate);
	close(fd);
	weft_wg_done(&c->done);
}

TEST(WatchTest, MoreReadyConnectionsThanBuffersAreAllServed)
{
	const int n = 600;
	std::vector<pair> ps;
	for (int i = 0; i < n; i++)
		ps.push_back(socket_pair());
	crowd c;
	weft_sem_init(&c.gate, 0);
	weft_wg_init(&c.done);
	run_in_weft(2, [&] {
		weft_wg_add(&c.done, n);
		for (auto &p : ps)
			EXPECT_EQ(weft_watch(p.b, WEFT_NEVER, hold, &c), 0);
		for (auto &p : ps) {
			unsigned char b = (unsigned char)(p.b ^ 0x5a);
			EXPECT_EQ(write(p.a, &b, 1), 1);
		}
		/* Only as many functions can hold bytes as there are buffers. */
		uint64_t until = weft_now() + 5 * WEFT_SEC;
		while (c.started.load() < 256 && weft_now() < until)
			weft_sleep(WEFT_MSEC);
		weft_sleep(20 * WEFT_MSEC);
		EXPECT_LE(c.started.load(), 256) << "more buffers out than the ring has";
		weft_sem_release(&c.gate);
		EXPECT_EQ(weft_wg_wait(&c.done), 0);
		return (intptr_t)0;
	});
	EXPECT_EQ(c.started.load(), n);
	EXPECT_EQ(c.bad.load(), 0);
	for (auto &p : ps)
		close(p.a);
}

/* n connections whose bytes a watch each takes in a buffer and holds
 * (hold) until gate opens, and one more, ps[n], for the test: with n the
 * worker's buffers, the ring is empty once fill() returns. */
struct empty_ring {
	static const int n = 256; /* the worker's buffers */
	std::vector<pair> ps;
	crowd c;

	empty_ring()
	{
		for (int i = 0; i <= n; i++)
			ps.push_back(socket_pair());
		weft_sem_init(&c.gate, 0);
		weft_wg_init(&c.done);
	}
	~empty_ring()
	{
		for (auto &p : ps)
			close(p.a);
	}
	/* In a task: takes every buffer, and waits until all n functions hold
	 * one. */
	void fill()
	{
		weft_wg_add(&c.done, n);
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(weft_watch(ps[i].b, WEFT_NEVER, hold, &c), 0);
			unsigned char b = (unsigned char)(ps[i].b ^ 0x5a);
			EXPECT_EQ(write(ps[i].a, &b, 1), 1);
		}
		uint64_t until = weft_now() + 5 * WEFT_SEC;
		while (c.started.load() < n && weft_now() < until)
			weft_sleep(WEFT_MSEC);
	}
};

/* A watch whose bytes came while every buffer was held waits for one
 * (-ENOBUFS), and is not idle meanwhile: its function gets the bytes, not
 * -ETIMEDOUT, though buffers come back only after its timeout. */
TEST(WatchTest, BytesThatFoundNoBufferAreNotATimeout)
{
	empty_ring r;
	pair &q = r.ps[empty_ring::n];
	seen last;
	run_in_weft(1, [&] {
		r.fill();
		EXPECT_EQ(weft_watch(q.b, 50 * WEFT_MSEC, record, &last), 0);
		EXPECT_EQ(write(q.a, "y", 1), 1);
		weft_sleep(300 * WEFT_MSEC); /* well past its timeout, starved */
		weft_sem_release(&r.c.gate);
		EXPECT_EQ(weft_future_await(last.done, nullptr), 0);
		EXPECT_EQ(weft_wg_wait(&r.c.done), 0);
		return (intptr_t)0;
	});
	EXPECT_EQ(last.n, 1) << "reported as " << last.n;
	EXPECT_EQ(last.bytes, "y");
}

/* The converse: a watch begun while the ring is empty, on a connection that
 * stays silent, is idle and must time out, then or once buffers are back.
 * The kernel must not look for a buffer before bytes come. */
TEST(WatchTest, AnIdleWatchBegunWithTheRingEmptyStillTimesOut)
{
	empty_ring r;
	pair &q = r.ps[empty_ring::n];
	seen idle;
	run_in_weft(1, [&] {
		r.fill();
		uint64_t t0 = weft_now();
		EXPECT_EQ(weft_watch(q.b, 30 * WEFT_MSEC, record, &idle), 0);
		weft_sleep(10 * WEFT_MSEC);
		weft_sem_release(&r.c.gate); /* the buffers come back */
		EXPECT_EQ(weft_wg_wait(&r.c.done), 0);
		struct weft_scope sc;
		weft_scope_deadline(&sc, 2 * WEFT_SEC);
		EXPECT_EQ(weft_future_await(idle.done, nullptr), 0) << "the timeout never fired";
		weft_scope_end(&sc);
		EXPECT_EQ(idle.n, -ETIMEDOUT);
		EXPECT_GE(idle.at - t0, 30 * WEFT_MSEC) << "timed out early";
		return (intptr_t)0;
	});
}

TEST(WatchTest, ShutdownClosesTheConnectionsStillWaiting)
{
	pair p = socket_pair();
	seen s;
	run_in_weft(1, [&] {
		EXPECT_EQ(weft_watch(p.b, WEFT_NEVER, record, &s), 0);
		return (intptr_t)0;
	});
	EXPECT_EQ(s.n, 1) << "the function ran";
	errno = 0;
	EXPECT_EQ(fcntl(p.b, F_GETFD), -1) << "still open";
	EXPECT_EQ(errno, EBADF);
	close(p.a);
}

TEST(WatchTest, BadArgumentsAreRejected)
{
	run_in_weft(1, [&] {
		EXPECT_EQ(weft_watch(-1, WEFT_NEVER, record, nullptr), -EINVAL);
		EXPECT_EQ(weft_watch(0, WEFT_NEVER, nullptr, nullptr), -EINVAL);
		return (intptr_t)0;
	});
}

} // namespace
