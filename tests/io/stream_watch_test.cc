// SPDX-License-Identifier: MIT
/*
 * stream_watch_test.cc - streams that wait without a task
 * (weft_stream_watch, io/stream.c): keep-alive rounds through watched
 * streams lose, duplicate and reorder nothing, with the watch begun on the
 * owner and on another worker by turns; bytes (or the end) queued before a
 * watch run its function at once; the idle timeout fires no sooner than
 * its time, from either worker, and a watch without one never fires by
 * itself; timeouts, watches begun on either worker and closes from either
 * worker race without losing a byte; while watched, a stream refuses
 * reads, closes and a second watch; shutdown closes the fds of the streams
 * still watched.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"
#include "weft/net.h"
#include "weft/sync.h"

namespace {

/* ---- keep-alive rounds ---------------------------------------------------------- */

/* The clients of the rounds below: plain threads, each taking its
 * connections in turn, one 8-byte request each (which connection, which
 * round), expecting exactly it back; a mismatch counts in wrong.  pause(i,
 * r) says whether to idle 50 ms before connection i's round r.  At the end
 * each half-closes its connections. */
std::vector<std::thread> start_clients(std::vector<pair> &ps, int nclients, int nrounds,
				       std::atomic<int> &wrong, bool (*pause)(int i, int r))
{
	int nconns = (int)ps.size();
	std::vector<std::thread> clients;
	for (int k = 0; k < nclients; k++)
		clients.emplace_back([&ps, &wrong, pause, nclients, nrounds, nconns, k] {
			for (int r = 0; r < nrounds; r++)
				for (int i = k; i < nconns; i += nclients) {
					if (pause(i, r))
						usleep(50000);
					char req[8], got[8];
					std::memcpy(req, &i, 4);
					std::memcpy(req + 4, &r, 4);
					if (write(ps[i].a, req, 8) != 8)
						wrong++;
					size_t at = 0;
					while (at < 8) {
						ssize_t n = read(ps[i].a, got + at, 8 - at);
						if (n <= 0)
							break;
						at += (size_t)n;
					}
					if (at != 8 || memcmp(req, got, 8) != 0)
						wrong++;
				}
			for (int i = k; i < nconns; i += nclients)
				shutdown(ps[i].a, SHUT_WR);
		});
	return clients;
}

/* The server side of the rounds: a runtime with two workers, where
 * open_all(arg) opens and watches every connection's stream on worker 0
 * (the owner); returns once all nconns are done and the clients joined. */
void serve_rounds(struct weft_wg *done, int nconns, std::vector<std::thread> &clients,
		  weft_fn open_all, void *arg)
{
	run_in_weft(2, [&] {
		weft_wg_init(done);
		weft_wg_add(done, nconns);
		EXPECT_EQ(on_worker(0, open_all, arg), 0);
		EXPECT_EQ(weft_wg_wait(done), 0);
		return (intptr_t)0;
	});
	for (auto &t : clients)
		t.join();
}

/* One server-side connection: its function echoes what is queued, then
 * watches again from worker (round % 2), so that every other watch is begun
 * away from the owner (worker 0) and must be linked by it. */
struct conn {
	int fd;
	struct weft_stream *s;
	int rounds;
	struct weft_wg *done;
	std::atomic<int> *wrong;
};

void echo_fn(struct weft_stream *s, int fd, int status, void *arg);

intptr_t rewatch(void *arg)
{
	struct conn *c = static_cast<struct conn *>(arg);
	return weft_stream_watch(c->s, WEFT_NEVER, echo_fn, c);
}

void echo_fn(struct weft_stream *s, int fd, int status, void *arg)
{
	struct conn *c = static_cast<struct conn *>(arg);
	if (status != 0 || s != c->s || fd != c->fd)
		(*c->wrong)++;
	char buf[64];
	ssize_t n = weft_stream_recv(s, buf, sizeof(buf));
	if (n > 0 && weft_sock_send_all(fd, buf, (size_t)n, nullptr) == n) {
		c->rounds++;
		if (on_worker((unsigned)c->rounds % 2, rewatch, c) == 0)
			return;
		(*c->wrong)++;
	} else if (n < 0) {
		(*c->wrong)++;
	}
	/* The end of the stream (n == 0), or a failure counted above. */
	EXPECT_EQ(weft_stream_close(s), 0);
	weft_close(fd);
	weft_wg_done(c->done);
}

TEST(StreamWatchTest, KeepAliveRoundsLoseNothingWhereverTheWatchBegins)
{
	const int nconns = 32, nrounds = WEFT_TEST_SCALE(20000) / 20 + 20, nclients = 4;
	std::vector<pair> ps(nconns);
	std::vector<conn> cs(nconns);
	std::atomic<int> wrong{0}, client_wrong{0};
	struct weft_wg done;
	for (int i = 0; i < nconns; i++) {
		ps[i] = socket_pair();
		cs[i].fd = ps[i].b;
		cs[i].rounds = 0;
		cs[i].done = &done;
		cs[i].wrong = &wrong;
	}
	std::vector<std::thread> clients =
		start_clients(ps, nclients, nrounds, client_wrong, [](int, int) { return false; });
	serve_rounds(&done, nconns, clients, [](void *a) -> intptr_t {
		for (conn &c : *static_cast<std::vector<conn> *>(a)) {
			EXPECT_EQ(weft_stream_open(c.fd, &c.s), 0);
			EXPECT_EQ(weft_stream_watch(c.s, WEFT_NEVER, echo_fn, &c), 0);
		}
		return 0;
	}, &cs);
	EXPECT_EQ(wrong.load(), 0);
	EXPECT_EQ(client_wrong.load(), 0);
	for (int i = 0; i < nconns; i++) {
		EXPECT_EQ(cs[i].rounds, nrounds) << "connection " << i;
		close(ps[i].a);
	}
}

/* Rounds as above, with a 20 ms idle timeout that fires while a client
 * pauses (the function then watches again), watches begun on either
 * worker by turns, and the stream closed, at the end, from either worker:
 * timeouts, asks to the owner, closes and completions race on both
 * workers. */
struct tconn {
	int fd;
	struct weft_stream *s;
	int rounds, timeouts, turns;
	struct weft_wg *done;
	std::atomic<int> *wrong;
};

void timed_fn(struct weft_stream *s, int fd, int status, void *arg);

intptr_t timed_rewatch(void *arg)
{
	struct tconn *c = static_cast<struct tconn *>(arg);
	return weft_stream_watch(c->s, 20 * WEFT_MSEC, timed_fn, c);
}

intptr_t timed_close(void *arg)
{
	return weft_stream_close(static_cast<struct tconn *>(arg)->s);
}

void timed_fn(struct weft_stream *s, int fd, int status, void *arg)
{
	struct tconn *c = static_cast<struct tconn *>(arg);
	unsigned where = (unsigned)++c->turns % 2;
	ssize_t n = 1;
	if (status == -ETIMEDOUT) {
		c->timeouts++;
	} else if (status == 0) {
		char buf[64];
		n = weft_stream_recv(s, buf, sizeof(buf));
		if (n > 0 && weft_sock_send_all(fd, buf, (size_t)n, nullptr) == n)
			c->rounds++;
		else if (n != 0)
			(*c->wrong)++;
	} else {
		(*c->wrong)++;
	}
	if (n > 0 && on_worker(where, timed_rewatch, c) == 0)
		return;
	if (n > 0)
		(*c->wrong)++;
	if (on_worker(where, timed_close, c) != 0)
		(*c->wrong)++;
	weft_close(fd);
	weft_wg_done(c->done);
}

TEST(StreamWatchTest, TimeoutsAsksAndClosesRaceOnBothWorkersAndLoseNothing)
{
	const int nconns = 16, nrounds = 40, nclients = 4;
	std::vector<pair> ps(nconns);
	std::vector<tconn> cs(nconns);
	std::atomic<int> wrong{0}, client_wrong{0};
	struct weft_wg done;
	for (int i = 0; i < nconns; i++) {
		ps[i] = socket_pair();
		cs[i] = tconn{ps[i].b, nullptr, 0, 0, 0, &done, &wrong};
	}
	/* Idle past the timeout: connection i before every tenth round. */
	std::vector<std::thread> clients = start_clients(
		ps, nclients, nrounds, client_wrong, [](int i, int r) { return r % 10 == i % 10; });
	serve_rounds(&done, nconns, clients, [](void *a) -> intptr_t {
		for (tconn &c : *static_cast<std::vector<tconn> *>(a)) {
			EXPECT_EQ(weft_stream_open(c.fd, &c.s), 0);
			EXPECT_EQ(timed_rewatch(&c), 0);
		}
		return 0;
	}, &cs);
	EXPECT_EQ(wrong.load(), 0);
	EXPECT_EQ(client_wrong.load(), 0);
	int timeouts = 0;
	for (int i = 0; i < nconns; i++) {
		EXPECT_EQ(cs[i].rounds, nrounds) << "connection " << i;
		timeouts += cs[i].timeouts;
		close(ps[i].a);
	}
	/* Each connection idled 50 ms, four times, against a 20 ms timeout. */
	EXPECT_GE(timeouts, nconns * 4);
}

/* ---- what a watch's function is started with ------------------------------------ */

struct seen {
	std::atomic<int> runs{0};
	int status = 1;
	uint64_t at = 0;
	std::string bytes;
	bool read_end = false; /* read again after the bytes, into last */
	ssize_t last = 1;
	struct weft_sem ran;
};

/* Records status and the bytes queued on the stream, then closes it. */
void record(struct weft_stream *s, int fd, int status, void *arg)
{
	seen *e = static_cast<seen *>(arg);
	e->status = status;
	e->at = weft_now();
	if (status == 0) {
		char buf[64];
		ssize_t n = weft_stream_recv(s, buf, sizeof(buf));
		if (n > 0)
			e->bytes.assign(buf, (size_t)n);
		if (n > 0 && e->read_end)
			e->last = weft_stream_recv(s, buf, sizeof(buf));
	}
	EXPECT_EQ(weft_stream_close(s), 0);
	weft_close(fd);
	e->runs++;
	weft_sem_release(&e->ran);
}

TEST(StreamWatchTest, BytesOrTheEndQueuedBeforeTheWatchRunItsFunctionAtOnce)
{
	pair p = socket_pair();
	seen e;
	e.read_end = true;
	run_in_weft(1, [&] {
		weft_sem_init(&e.ran, 0);
		struct weft_stream *s;
		EXPECT_EQ(weft_stream_open(p.b, &s), 0);
		EXPECT_EQ(write(p.a, "abc", 3), 3);
		shutdown(p.a, SHUT_WR);
		weft_sleep(10 * WEFT_MSEC); /* both queue on s */
		EXPECT_EQ(weft_stream_watch(s, WEFT_NEVER, record, &e), 0);
		EXPECT_EQ(weft_sem_acquire(&e.ran), 0);
		return (intptr_t)0;
	});
	EXPECT_EQ(e.runs.load(), 1);
	EXPECT_EQ(e.status, 0);
	EXPECT_EQ(e.bytes, "abc");
	EXPECT_EQ(e.last, 0) << "the end follows the bytes";
	close(p.a);
}

/* Two streams owned by worker 0, one watched there and one from worker 1,
 * each with a 40 ms idle timeout; a third without a timeout stays watched
 * until bytes come. */
struct timed {
	pair p[3];
	struct weft_stream *s[3];
	seen e[3];
	uint64_t from[3];
};

TEST(StreamWatchTest, TheIdleTimeoutFiresNoSoonerThanItsTimeAndOnlyWhenAsked)
{
	static timed *tp;
	tp = new timed(); /* fresh for each repeat */
	static constexpr uint64_t timeout = 40 * WEFT_MSEC;
	for (auto &p : tp->p)
		p = socket_pair();
	run_in_weft(2, [] {
		for (auto &e : tp->e)
			weft_sem_init(&e.ran, 0);
		EXPECT_EQ(on_worker(
				  0,
				  [](void *) -> intptr_t {
					  for (int i = 0; i < 3; i++)
						  EXPECT_EQ(weft_stream_open(tp->p[i].b, &tp->s[i]), 0);
					  return 0;
				  },
				  nullptr),
			  0);
		struct arm {
			int i;
			uint64_t timeout;
		};
		auto watch = [](void *a) -> intptr_t {
			arm *x = static_cast<arm *>(a);
			tp->from[x->i] = weft_now();
			return weft_stream_watch(tp->s[x->i], x->timeout, record, &tp->e[x->i]);
		};
		arm a0 = {0, timeout}, a1 = {1, timeout}, a2 = {2, WEFT_NEVER};
		EXPECT_EQ(on_worker(0, watch, &a0), 0);
		EXPECT_EQ(on_worker(1, watch, &a1), 0);
		EXPECT_EQ(on_worker(1, watch, &a2), 0);
		for (int i = 0; i < 2; i++) {
			struct weft_scope sc;
			weft_scope_deadline(&sc, 5 * WEFT_SEC);
			EXPECT_EQ(weft_sem_acquire(&tp->e[i].ran), 0) << "stream " << i;
			weft_scope_end(&sc);
		}
		weft_sleep(3 * timeout);
		EXPECT_EQ(tp->e[2].runs.load(), 0) << "a watch without a timeout ran by itself";
		EXPECT_EQ(write(tp->p[2].a, "late", 4), 4);
		EXPECT_EQ(weft_sem_acquire(&tp->e[2].ran), 0);
		return (intptr_t)0;
	});
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(tp->e[i].runs.load(), 1) << "stream " << i;
		EXPECT_EQ(tp->e[i].status, -ETIMEDOUT) << "stream " << i;
		EXPECT_GE(tp->e[i].at - tp->from[i], timeout) << "stream " << i << " timed out early";
	}
	EXPECT_EQ(tp->e[2].status, 0);
	EXPECT_EQ(tp->e[2].bytes, "late");
	for (auto &p : tp->p)
		close(p.a);
	delete tp;
}

TEST(StreamWatchTest, AWatchedStreamIsTheRuntimesUntilItsFunctionRuns)
{
	pair p = socket_pair();
	seen e;
	run_in_weft(1, [&] {
		weft_sem_init(&e.ran, 0);
		struct weft_stream *s;
		EXPECT_EQ(weft_stream_open(p.b, &s), 0);
		EXPECT_EQ(weft_stream_watch(s, WEFT_NEVER, nullptr, nullptr), -EINVAL);
		EXPECT_EQ(weft_stream_watch(s, 10 * WEFT_SEC, record, &e), 0);
		char c;
		EXPECT_EQ(weft_stream_recv(s, &c, 1), -EBUSY);
		EXPECT_EQ(weft_stream_close(s), -EBUSY);
		EXPECT_EQ(weft_stream_watch(s, WEFT_NEVER, record, &e), -EBUSY);
		EXPECT_EQ(e.runs.load(), 0);
		EXPECT_EQ(write(p.a, "x", 1), 1);
		EXPECT_EQ(weft_sem_acquire(&e.ran), 0);
		return (intptr_t)0;
	});
	EXPECT_EQ(e.status, 0);
	EXPECT_EQ(e.bytes, "x");
	close(p.a);
}

TEST(StreamWatchTest, ShutdownClosesTheFdsOfWatchedStreams)
{
	static pair p[2];
	static seen e[2];
	for (auto &x : p)
		x = socket_pair();
	run_in_weft(2, [] {
		static struct weft_stream *s[2];
		EXPECT_EQ(on_worker(
				  0,
				  [](void *) -> intptr_t {
					  for (int i = 0; i < 2; i++)
						  EXPECT_EQ(weft_stream_open(p[i].b, &s[i]), 0);
					  return weft_stream_watch(s[0], 10 * WEFT_SEC, record, &e[0]);
				  },
				  nullptr),
			  0);
		EXPECT_EQ(on_worker(
				  1,
				  [](void *) -> intptr_t {
					  return weft_stream_watch(s[1], WEFT_NEVER, record, &e[1]);
				  },
				  nullptr),
			  0);
		return (intptr_t)0;
	});
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(e[i].runs.load(), 0) << "the function ran";
		errno = 0;
		EXPECT_EQ(fcntl(p[i].b, F_GETFD), -1) << "stream " << i << " still open";
		EXPECT_EQ(errno, EBADF);
		close(p[i].a);
	}
}

} // namespace
