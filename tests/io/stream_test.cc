// SPDX-License-Identifier: MIT
/*
 * stream_test.cc - the receive side of a connection on one multishot
 * receive (io/stream.c): a large transfer read in random chunk sizes
 * arrives whole and in order (also when the queue fills and the receive
 * stops and resumes); a short read keeps the rest for the next; end of
 * stream and a reset come after the bytes before them, and over unix
 * sockets the end right behind the last bytes is never lost; a deadline or a
 * cancellation ends a wait without losing bytes, also when it races their
 * arrival; a reader on another worker than the owner gets every byte, also
 * while the owner is too busy to run dry and park; more
 * streams with bytes than the ring has buffers all complete, their
 * buffers handed back from another worker to an owner that sleeps; close
 * drops queued bytes, stops the receive and leaves the fd open, from the
 * owner or another worker; a second reader and a close under a reader are
 * refused.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"
#include "weft/sync.h"

namespace {

/* Byte i of a transfer: not periodic in any buffer size. */
unsigned char pattern(size_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

/* Writes n pattern bytes to fd in random chunk sizes (a plain thread, so the
 * writer does not depend on the runtime it tests), then shuts down. */
std::thread writer(int fd, size_t n, unsigned seed)
{
	return std::thread([fd, n, seed] {
		std::mt19937 rng(seed);
		std::vector<unsigned char> chunk(20000);
		size_t at = 0;
		while (at < n) {
			size_t k = std::min(n - at, (size_t)(rng() % chunk.size()) + 1);
			for (size_t i = 0; i < k; i++)
				chunk[i] = pattern(at + i);
			size_t done = 0;
			while (done < k) {
				ssize_t w = write(fd, chunk.data() + done, k - done);
				ASSERT_GT(w, 0);
				done += (size_t)w;
			}
			at += k;
		}
		shutdown(fd, SHUT_WR);
	});
}

/* Reads s to its end in random sizes; returns the bytes read, counting
 * those that broke the pattern in *bad. */
size_t read_all(struct weft_stream *s, unsigned seed, size_t *bad)
{
	std::mt19937 rng(seed);
	std::vector<unsigned char> buf(10000);
	size_t at = 0;
	*bad = 0;
	for (;;) {
		size_t want = (size_t)(rng() % buf.size()) + 1;
		/* A lost end of stream fails the test instead of hanging it. */
		struct weft_scope sc;
		weft_scope_deadline(&sc, 10 * WEFT_SEC);
		ssize_t n = weft_stream_recv(s, buf.data(), want);
		weft_scope_end(&sc);
		EXPECT_GE(n, 0);
		EXPECT_LE((size_t)std::max<ssize_t>(n, 0), want);
		if (n <= 0)
			return at;
		for (ssize_t i = 0; i < n; i++)
			if (buf[(size_t)i] != pattern(at + (size_t)i))
				(*bad)++;
		at += (size_t)n;
	}
}

/* Runs body(s, peer) as the main task of a runtime with `workers` workers,
 * s a stream on one end of a socket pair and peer the other end; then
 * closes s (which must succeed) and both ends. */
void with_stream(unsigned workers, std::function<void(struct weft_stream *, int)> body)
{
	pair p = socket_pair();
	run_in_weft(workers, [&] {
		struct weft_stream *s;
		EXPECT_EQ(weft_stream_open(p.b, &s), 0);
		body(s, p.a);
		EXPECT_EQ(weft_stream_close(s), 0);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

TEST(StreamTest, ALargeTransferInRandomChunksArrivesWholeAndInOrder)
{
	const size_t n = WEFT_TEST_SCALE((size_t)32 << 20) + (1 << 20);
	with_stream(2, [n](struct weft_stream *s, int peer) {
		std::thread t = writer(peer, n, 1);
		/* Let the queue fill to its cap first: the receive stops, and
		 * reading resumes it. */
		weft_sleep(20 * WEFT_MSEC);
		size_t bad;
		EXPECT_EQ(read_all(s, 2, &bad), n);
		EXPECT_EQ(bad, 0u);
		EXPECT_EQ(weft_stream_recv(s, &bad, 1), 0) << "the end repeats";
		t.join(); /* at once: the end was read, so it has written all */
	});
}

TEST(StreamTest, AShortReadKeepsTheRestForTheNext)
{
	with_stream(1, [](struct weft_stream *s, int peer) {
		EXPECT_EQ(write(peer, "hello world", 11), 11);
		char buf[16] = {};
		EXPECT_EQ(weft_stream_recv(s, buf, 3), 3);
		EXPECT_EQ(std::string(buf, 3), "hel");
		EXPECT_EQ(weft_stream_recv(s, buf, 3), 3);
		EXPECT_EQ(std::string(buf, 3), "lo ");
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), 5);
		EXPECT_EQ(std::string(buf, 5), "world");
		EXPECT_EQ(weft_stream_recv(s, buf, 0), 0) << "len 0 reads nothing";
		/* Bytes that span buffers, read in as few calls as they are
		 * queued in. */
		std::vector<unsigned char> big(10000), back(10000);
		for (size_t i = 0; i < big.size(); i++)
			big[i] = pattern(i);
		EXPECT_EQ(write(peer, big.data(), big.size()), (ssize_t)big.size());
		size_t got = 0;
		while (got < back.size()) {
			ssize_t n = weft_stream_recv(s, back.data() + got, back.size() - got);
			EXPECT_GT(n, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		EXPECT_EQ(back, big);
	});
}

TEST(StreamTest, EndOfStreamComesAfterTheLastBytes)
{
	with_stream(1, [](struct weft_stream *s, int peer) {
		EXPECT_EQ(write(peer, "abc", 3), 3);
		shutdown(peer, SHUT_WR);
		weft_sleep(5 * WEFT_MSEC); /* the end is seen with bytes queued */
		char buf[8];
		EXPECT_EQ(weft_stream_recv(s, buf, 2), 2);
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), 1);
		EXPECT_EQ(buf[0], 'c');
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), 0);
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), 0);
	});
}

/* Thousands of transfers over unix sockets, each ending right behind its
 * last bytes while the receive is busy with them, the reader on another
 * worker than the stream's owner: where some kernels' multishot receive
 * loses that end (stream.c arms plain receives on unix sockets), every
 * transfer must still end, whole. */
TEST(StreamTest, EveryUnixTransferSeesItsEnd)
{
	static int rounds;
	rounds = WEFT_TEST_SCALE(4000) + 40;
	run_in_weft(2, [] {
		struct weft_spawn_opts on0 = {}, on1 = {};
		on0.flags = on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		on1.worker = 1;
		for (int i = 0; i < rounds; i++) {
			static pair p;
			static struct weft_stream *s;
			p = socket_pair();
			const size_t n = 256 << 10;
			EXPECT_EQ(join(weft_spawn([](void *) -> intptr_t { return weft_stream_open(p.b, &s); },
						  nullptr, &on0)),
				  0);
			std::thread t = writer(p.a, n, (unsigned)i);
			static unsigned seed;
			seed = (unsigned)i;
			size_t got = (size_t)join(weft_spawn(
				[](void *) -> intptr_t {
					size_t bad;
					size_t at = read_all(s, seed, &bad);
					return bad ? -1 : (intptr_t)at;
				},
				nullptr, &on1));
			t.join();
			EXPECT_EQ(weft_stream_close(s), 0);
			close(p.a);
			close(p.b);
			if (got != n) {
				ADD_FAILURE() << "transfer " << i << ": " << (ssize_t)got << " of " << n
					      << " bytes (-1: some wrong)";
				break;
			}
		}
		return (intptr_t)0;
	});
}

TEST(StreamTest, AResetIsReportedAndRepeated)
{
	struct sockaddr_in addr;
	int l = listen_loopback(&addr);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
	int fd = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
	ASSERT_GE(fd, 0);
	run_in_weft(1, [&] {
		struct weft_stream *s;
		EXPECT_EQ(weft_stream_open(fd, &s), 0);
		EXPECT_EQ(write(c, "x", 1), 1);
		char buf[8];
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), 1);
		struct linger lg = {1, 0}; /* close sends a reset */
		EXPECT_EQ(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
		close(c);
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), -ECONNRESET);
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), -ECONNRESET);
		EXPECT_EQ(weft_stream_close(s), 0);
		return (intptr_t)0;
	});
	close(fd);
	close(l);
}

TEST(StreamTest, ADeadlineOrACancelEndsAWaitAndTheBytesStayQueued)
{
	with_stream(2, [](struct weft_stream *s, int peer) {
		char buf[8];
		struct weft_scope sc;
		uint64_t t0 = weft_now();
		weft_scope_deadline(&sc, 20 * WEFT_MSEC);
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), -ETIMEDOUT);
		weft_scope_end(&sc);
		EXPECT_GE(weft_now() - t0, 20 * WEFT_MSEC);

		struct weft_task *r = go([s] {
			char b[8];
			return (intptr_t)weft_stream_recv(s, b, sizeof(b));
		});
		weft_sleep(10 * WEFT_MSEC);
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), -EBUSY) << "a second reader";
		EXPECT_EQ(weft_stream_close(s), -EBUSY) << "closed under its reader";
		weft_cancel(r);
		EXPECT_EQ(join(r), -ECANCELED);

		EXPECT_EQ(write(peer, "late", 4), 4);
		EXPECT_EQ(weft_stream_recv(s, buf, sizeof(buf)), 4);
		EXPECT_EQ(std::string(buf, 4), "late");
	});
}

/* A reader cancelled as its bytes arrive either returns them or leaves
 * them queued for a later read: counted over many rounds, every byte is
 * read once. */
TEST(StreamTest, ACancelRacingTheBytesLosesNone)
{
	const int rounds = WEFT_TEST_SCALE(2000) + 20;
	with_stream(2, [rounds](struct weft_stream *s, int peer) {
		std::atomic<int> got{0};
		for (int i = 0; i < rounds; i++) {
			struct weft_task *r = go([s, &got] {
				char b[64];
				ssize_t n = weft_stream_recv(s, b, sizeof(b));
				if (n > 0)
					got += (int)n;
				return (intptr_t)n;
			});
			EXPECT_EQ(write(peer, "x", 1), 1);
			weft_cancel(r);
			intptr_t n = join(r);
			EXPECT_TRUE(n == -ECANCELED || n >= 1) << n;
		}
		shutdown(peer, SHUT_WR);
		char b[64];
		ssize_t n;
		while ((n = weft_stream_recv(s, b, sizeof(b))) > 0)
			got += (int)n;
		EXPECT_EQ(n, 0);
		EXPECT_EQ(got.load(), rounds);
	});
}

/* Opens fd's stream on worker 0, its owner from then on. */
struct weft_stream *open_on_worker0(int fd)
{
	struct opening {
		int fd;
		struct weft_stream *s;
	} o = {fd, nullptr};
	EXPECT_EQ(on_worker(
			  0,
			  [](void *a) -> intptr_t {
				  auto *o = static_cast<opening *>(a);
				  return weft_stream_open(o->fd, &o->s);
			  },
			  &o),
		  0);
	return o.s;
}

/* The stream is opened on worker 0 and read and closed on worker 1: bytes
 * are handed over across workers, buffers go back through the owner, and
 * a receive stopped for back-pressure is resumed at the reader's request. */
TEST(StreamTest, AReaderOnAnotherWorkerGetsEveryByte)
{
	const size_t n = WEFT_TEST_SCALE((size_t)16 << 20) + (1 << 20);
	static pair p;
	p = socket_pair();
	static size_t total;
	total = n;
	std::thread t = writer(p.a, n, 3);
	run_in_weft(2, [] {
		struct weft_spawn_opts on1 = {};
		on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		on1.worker = 1;
		static struct weft_stream *s;
		s = open_on_worker0(p.b);
		struct weft_task *r = weft_spawn(
			[](void *) -> intptr_t {
				weft_sleep(20 * WEFT_MSEC); /* the queue fills: stopped */
				size_t bad;
				EXPECT_EQ(read_all(s, 4, &bad), total);
				EXPECT_EQ(bad, 0u);
				return weft_stream_close(s);
			},
			nullptr, &on1);
		EXPECT_EQ(join(r), 0);
		return (intptr_t)0;
	});
	t.join();
	close(p.a);
	close(p.b);
}

/* 600 streams with 2 buffers' worth of bytes each, opened on worker 0 and
 * read only once all were written: 1,200 buffers wanted from a ring of
 * 256.  The receives that find it empty wait; the readers, on worker 1,
 * hand the buffers back through the owner, which must be woken for them
 * while it has nothing else to do; every stream gets all of its bytes. */
struct crowd {
	std::vector<pair> ps;
	std::vector<struct weft_stream *> ss;
	struct weft_sem gate;
	struct weft_wg done;
	std::atomic<int> wrong{0};
	std::atomic<int> next{0};
};

/* A reader on another worker drains a stream stopped for back-pressure and
 * asks the owner to re-arm it, while the owner never runs dry: a task there
 * yields in a loop, so its scheduling rounds never end and it never parks.
 * The owner must still act on the request at its periodic submission
 * point, not only once it is idle. */
TEST(StreamTest, ABusyOwnerResumesAStreamDrainedOnAnotherWorker)
{
	static pair p;
	p = socket_pair();
	static std::atomic<bool> spinning, done;
	spinning = done = false;
	static const size_t n = 12 * 4096; /* past the queue's cap of 8 buffers */
	run_in_weft(2, [] {
		struct weft_spawn_opts on0 = {}, on1 = {};
		on0.flags = on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		on1.worker = 1;
		static struct weft_stream *s;
		s = open_on_worker0(p.b);
		std::vector<char> out(n);
		for (size_t i = 0; i < n; i++)
			out[i] = (char)pattern(i);
		EXPECT_EQ(write(p.a, out.data(), n), (ssize_t)n);
		weft_sleep(20 * WEFT_MSEC); /* the queue fills: stopped */
		struct weft_task *busy = weft_spawn(
			[](void *) -> intptr_t {
				spinning = true;
				/* Bounded, so that the test ends either way. */
				uint64_t until = weft_now() + 2 * WEFT_SEC;
				while (!done && weft_now() < until)
					weft_yield();
				return 0;
			},
			nullptr, &on0);
		struct weft_task *r = weft_spawn(
			[](void *) -> intptr_t {
				while (!spinning)
					weft_sleep(WEFT_MSEC);
				uint64_t t0 = weft_now();
				size_t got = 0, bad = 0;
				char buf[1000];
				while (got < n) {
					ssize_t k = weft_stream_recv(s, buf, sizeof(buf));
					EXPECT_GT(k, 0);
					if (k <= 0)
						break;
					for (ssize_t i = 0; i < k; i++)
						bad += buf[i] != (char)pattern(got + (size_t)i);
					got += (size_t)k;
				}
				uint64_t took = weft_now() - t0;
				done = true;
				EXPECT_EQ(got, n);
				EXPECT_EQ(bad, 0u);
				EXPECT_LT(took, WEFT_SEC) << "the owner re-armed only when it ran dry";
				return weft_stream_close(s);
			},
			nullptr, &on1);
		EXPECT_EQ(join(r), 0);
		EXPECT_EQ(join(busy), 0);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

TEST(StreamTest, MoreStreamsWithBytesThanBuffersAllComplete)
{
	const int nstreams = 600;
	static crowd c;
	c.ps.clear();
	for (int i = 0; i < nstreams; i++)
		c.ps.push_back(socket_pair());
	c.ss.assign(nstreams, nullptr);
	c.wrong = 0;
	c.next = 0;
	run_in_weft(2, [] {
		weft_sem_init(&c.gate, 0);
		weft_wg_init(&c.done);
		weft_wg_add(&c.done, (int)c.ps.size());
		struct weft_spawn_opts on0 = {}, on1 = {};
		on0.flags = on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		on1.worker = 1;
		struct weft_task *o = weft_spawn(
			[](void *) -> intptr_t {
				std::vector<unsigned char> bytes(5000);
				for (size_t i = 0; i < bytes.size(); i++)
					bytes[i] = pattern(i);
				for (size_t i = 0; i < c.ps.size(); i++) {
					EXPECT_EQ(weft_stream_open(c.ps[i].b, &c.ss[i]), 0);
					EXPECT_EQ(write(c.ps[i].a, bytes.data(), bytes.size()), 5000);
					shutdown(c.ps[i].a, SHUT_WR);
				}
				return 0;
			},
			nullptr, &on0);
		EXPECT_EQ(join(o), 0);
		weft_sleep(50 * WEFT_MSEC); /* the ring runs dry */
		for (size_t i = 0; i < c.ps.size(); i++) {
			struct weft_task *t = weft_spawn(
				[](void *) -> intptr_t {
					struct weft_stream *s = c.ss[(size_t)c.next++];
					weft_sem_acquire(&c.gate);
					weft_sem_release(&c.gate);
					size_t bad;
					if (read_all(s, 5, &bad) != 5000 || bad)
						c.wrong++;
					EXPECT_EQ(weft_stream_close(s), 0);
					weft_wg_done(&c.done);
					return 0;
				},
				nullptr, &on1);
			weft_detach(t);
		}
		weft_sem_release(&c.gate);
		EXPECT_EQ(weft_wg_wait(&c.done), 0);
		return (intptr_t)0;
	});
	EXPECT_EQ(c.wrong.load(), 0);
	for (auto &p : c.ps) {
		close(p.a);
		close(p.b);
	}
}

/* Close with bytes queued (and the receive stopped at the cap) drops
 * them, and with the receive armed stops it; the fd stays open, and a new
 * stream on it reads what comes next.  Closing from another worker than the
 * owner's goes through the owner. */
TEST(StreamTest, CloseDropsQueuedBytesAndLeavesTheFdOpen)
{
	static pair p;
	p = socket_pair();
	run_in_weft(2, [] {
		struct weft_stream *s;
		EXPECT_EQ(weft_stream_open(p.b, &s), 0);
		std::vector<char> junk(100000, 'j');
		EXPECT_EQ(write(p.a, junk.data(), junk.size()), (ssize_t)junk.size());
		weft_sleep(10 * WEFT_MSEC);
		EXPECT_EQ(weft_stream_close(s), 0);
		/* What the closed stream did not take is still in the socket:
		 * drain it, then the fd works as before. */
		char buf[4096];
		while (recv(p.b, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
		}
		EXPECT_EQ(fcntl(p.b, F_GETFD), FD_CLOEXEC) << "the fd was closed";

		static struct weft_stream *s2;
		struct weft_spawn_opts on0 = {}, on1 = {};
		on0.flags = on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		on1.worker = 1;
		struct weft_task *o = weft_spawn(
			[](void *) -> intptr_t { return weft_stream_open(p.b, &s2); }, nullptr, &on0);
		EXPECT_EQ(join(o), 0);
		EXPECT_EQ(write(p.a, "next", 4), 4);
		EXPECT_EQ(weft_stream_recv(s2, buf, sizeof(buf)), 4);
		EXPECT_EQ(std::string(buf, 4), "next");
		EXPECT_EQ(write(p.a, "more", 4), 4); /* queued on s2 */
		weft_sleep(5 * WEFT_MSEC);
		struct weft_task *c = weft_spawn(
			[](void *) -> intptr_t { return weft_stream_close(s2); }, nullptr, &on1);
		EXPECT_EQ(join(c), 0);
		return (intptr_t)0;
	});
	close(p.a);
	close(p.b);
}

TEST(StreamTest, BadArgumentsAreRejected)
{
	run_in_weft(1, [] {
		struct weft_stream *s;
		EXPECT_EQ(weft_stream_open(-1, &s), -EINVAL);
		return (intptr_t)0;
	});
}

} // namespace
