// SPDX-License-Identifier: MIT
/*
 * proxy_test.cc - weft-proxy end to end, as an operator runs it: the real
 * binary (WEFT_PROXY_BIN, from meson) in front of backends this test
 * serves itself.
 *  - on each data path (the backend's data_path: buffered, splice, auto):
 *    every byte of 64 concurrent connections (1 GiB in all, each way, in
 *    random chunks) arrives once and in order, with the client's
 *    half-close passed on; a server's half-close too, after which the
 *    client still sends a burst; a reset by either side in a burst
 *    reaches the other as a reset after an exact prefix of the bytes; a
 *    server that takes nothing ends the relay at the idle timeout, but
 *    one that takes none of an upload while its reply streams does not; the
 *    spliced path holds pipes afterwards (pooled) and the buffered none;
 *  - at the pipe limit, with every pipe held by a transfer a server does
 *    not read, more transfers go buffered (counted), and once the server
 *    reads every byte of every one arrives in order and the pipes are
 *    given back;
 *  - an unknown data_path names its file, line and the choices;
 *  - round robin spreads connections evenly; a dead server is skipped
 *    without a client noticing; a server's reset reaches the client as a
 *    reset; a server at its max_connections makes a connection wait in
 *    the queue until a slot frees, or until queue_timeout (then a reset);
 *  - a configuration error names its file and line and exits 1;
 *  - SIGTERM stops accepting, lets an established connection finish, and
 *    the proxy exits 0; what is left at the drain deadline is closed
 *    spread over a second.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

/* The bytes a test connection sends: a pseudo-random pattern of a prime
 * period, so that each connection starts at its own offset, a send at any
 * offset is one send from one buffer, and a chunk lost, repeated or moved
 * shows up in a byte-for-byte compare. */
const size_t PATLEN = 1048573;

const char *pattern()
{
	static const std::vector<char> pat = [] {
		std::vector<char> p(2 * PATLEN);
		std::mt19937_64 rng(42);
		for (size_t i = 0; i < PATLEN; i += 8) {
			uint64_t x = rng();
			memcpy(&p[i], &x, std::min<size_t>(8, PATLEN - i));
		}
		memcpy(&p[PATLEN], &p[0], PATLEN);
		return p;
	}();
	return pat.data();
}

/* Sends n bytes of the pattern from offset off on fd, in chunks of random
 * sizes up to max_chunk; false when a send fails first. */
bool send_pattern(int fd, size_t off, size_t n, std::mt19937 &rng, size_t max_chunk = 20000)
{
	for (size_t done = 0; done < n;) {
		size_t at = (off + done) % PATLEN;
		size_t k = std::min({n - done, (size_t)(1 + rng() % max_chunk), 2 * PATLEN - at});
		ssize_t w = send(fd, pattern() + at, k, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		done += (size_t)w;
	}
	return true;
}

/* Reads fd to its end or an error, checking each byte against the pattern
 * from offset off: the count of bytes that matched, in order, up to the
 * end, an error (its errno in *err, 0 at the end) or the first byte that
 * did not match (*err EBADMSG). */
size_t recv_pattern(int fd, size_t off, int *err = nullptr)
{
	char buf[65536];
	size_t got = 0;
	ssize_t n;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		for (ssize_t i = 0; i < n;) {
			size_t at = (off + got) % PATLEN;
			size_t k = std::min((size_t)(n - i), PATLEN - at);
			if (memcmp(buf + i, pattern() + at, k) != 0) {
				if (err)
					*err = EBADMSG;
				return got;
			}
			got += k;
			i += (ssize_t)k;
		}
	}
	if (err)
		*err = n < 0 ? errno : 0;
	return got;
}

/* The pipes weft-proxy (pid) holds: the spliced data path's, and its
 * stderr. */
int open_pipes(pid_t pid)
{
	std::string dir = "/proc/" + std::to_string(pid) + "/fd";
	int n = 0;
	if (DIR *d = opendir(dir.c_str())) {
		while (struct dirent *e = readdir(d)) {
			char to[64];
			ssize_t len = readlinkat(dirfd(d), e->d_name, to, sizeof(to) - 1);
			if (len > 0 && std::string(to, (size_t)len).rfind("pipe:", 0) == 0)
				n++;
		}
		closedir(d);
	}
	return n;
}

/* The data paths (the backend's data_path): each test below runs on each. */
class DataPath : public ::testing::TestWithParam<const char *> {
protected:
	/* extra: frontend keys. */
	std::string conf(int port, const std::vector<int> &servers, const std::string &extra = "")
	{
		return config(port, servers, extra) + "data_path = " + GetParam() + "\n";
	}

	/* Starts p on conf(*port, servers, extra), *port a free one; the pipes
	 * it holds once listening in *pipes (unless NULL). */
	void start(proxy &p, const std::vector<int> &servers, int *port, int *pipes,
		   const std::string &extra = "")
	{
		*port = free_port();
		ASSERT_TRUE(p.start(conf(*port, servers, extra)));
		ASSERT_NE(p.wait_line("listening on"), "");
		if (pipes)
			*pipes = open_pipes(p.pid);
	}

	/* Starts p in front of server_port with idle_timeout 300ms and dials
	 * it: in *fd a client whose sends and receives give up after secs. */
	void dial_with_idle_timeout(proxy &p, int server_port, int secs, int *fd)
	{
		int port;
		ASSERT_NO_FATAL_FAILURE(
			start(p, {server_port}, &port, nullptr, "idle_timeout = 300ms\n"));
		*fd = dial(port);
		ASSERT_GE(*fd, 0);
		struct timeval tv = {secs, 0};
		setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}

	/* After bursts: the spliced path went through pipes and keeps them
	 * pooled, the buffered path has none; auto may have taken either. */
	void expect_pipes(pid_t pid, int before)
	{
		std::string path = GetParam();
		if (path == "buffered") {
			EXPECT_EQ(open_pipes(pid), before);
		} else if (path == "splice") {
			EXPECT_GT(open_pipes(pid), before);
		}
	}
};

INSTANTIATE_TEST_SUITE_P(ProxyTest, DataPath, ::testing::Values("buffered", "splice", "auto"),
			 [](const ::testing::TestParamInfo<const char *> &i) {
				 return std::string(i.param);
			 });

TEST_P(DataPath, EveryByteArrivesOnceAndInOrderWithHalfClose)
{
	NEED_PROXY();
	backend a('a'), b('b');
	proxy p;
	int port, pipes_before;
	ASSERT_NO_FATAL_FAILURE(start(p, {a.port, b.port}, &port, &pipes_before));
	const int conns = 64;
	/* 1 GiB in all, each way; a quarter under the sanitizers, where the
	 * proxy runs several times slower. */
#ifdef WEFT_SANITIZED
	const size_t per_conn = 4u << 20;
#else
	const size_t per_conn = 16u << 20;
#endif
	std::atomic<int> good{0};
	std::vector<std::thread> ts;
	for (int c = 0; c < conns; c++)
		ts.emplace_back([&, c] {
			std::mt19937 rng((unsigned)c);
			size_t off = (size_t)c * 16411 % PATLEN;
			int fd = dial(port);
			if (fd < 0)
				return;
			/* Send in random chunks while a reader checks the echo. */
			char tag = 0;
			size_t back = 0;
			std::thread reader([&] {
				if (recv(fd, &tag, 1, 0) == 1)
					back = recv_pattern(fd, off);
			});
			bool sent = send_pattern(fd, off, per_conn, rng);
			shutdown(fd, SHUT_WR); /* the backend sees it and ends too */
			reader.join();
			close(fd);
			if (sent && back == per_conn && (tag == 'a' || tag == 'b'))
				good++;
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(good.load(), conns);
	expect_pipes(p.pid, pipes_before);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A server that runs fn on the one connection it accepts. */
struct one_server {
	int lfd, port = 0;
	std::thread t;
	template <class F> explicit one_server(F fn)
	{
		lfd = listen_loopback(0, &port);
		t = std::thread([this, fn] {
			int fd = accept(lfd, nullptr, nullptr);
			if (fd >= 0) {
				struct timeval tv = {20, 0};
				setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
				fn(fd);
				close(fd);
			}
		});
	}
	~one_server()
	{
		if (t.joinable())
			t.join();
		close(lfd);
	}
};

/* Closes fd with a reset (a zero linger), not a FIN. */
void reset_close(int fd)
{
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

const size_t BURST = 8u << 20;

TEST_P(DataPath, TheServerHalfClosesFirstAndTheClientStillSends)
{
	NEED_PROXY();
	std::atomic<size_t> server_got{0};
	one_server s([&](int fd) {
		std::mt19937 rng(1);
		send_pattern(fd, 0, BURST, rng);
		shutdown(fd, SHUT_WR);
		server_got = recv_pattern(fd, 777);
	});
	proxy p;
	int port, pipes_before;
	ASSERT_NO_FATAL_FAILURE(start(p, {s.port}, &port, &pipes_before));
	int fd = dial(port);
	ASSERT_GE(fd, 0);
	/* The server's bytes, then its end of stream... */
	int err = -1;
	EXPECT_EQ(recv_pattern(fd, 0, &err), BURST);
	EXPECT_EQ(err, 0);
	/* ...and the other way still carries a burst after it. */
	std::mt19937 rng(2);
	EXPECT_TRUE(send_pattern(fd, 777, BURST, rng));
	shutdown(fd, SHUT_WR);
	char b;
	EXPECT_EQ(recv(fd, &b, 1, 0), 0);
	close(fd);
	s.t.join();
	EXPECT_EQ(server_got.load(), BURST);
	expect_pipes(p.pid, pipes_before);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST_P(DataPath, AResetInABurstReachesTheOtherSideAfterAnExactPrefix)
{
	NEED_PROXY();
	for (bool client_resets : {false, true}) {
		SCOPED_TRACE(client_resets ? "the client resets" : "the server resets");
		std::atomic<size_t> server_got{0};
		std::atomic<int> server_err{-1};
		one_server s([&](int fd) {
			if (client_resets) {
				int err = 0;
				server_got = recv_pattern(fd, 5, &err);
				server_err = err;
				return;
			}
			std::mt19937 rng(3);
			send_pattern(fd, 5, BURST, rng, 1 << 20);
			reset_close(fd);
		});
		proxy p;
		int port, pipes_before;
		ASSERT_NO_FATAL_FAILURE(start(p, {s.port}, &port, &pipes_before));
		int fd = dial(port);
		ASSERT_GE(fd, 0);
		if (client_resets) {
			std::mt19937 rng(4);
			EXPECT_TRUE(send_pattern(fd, 5, BURST, rng, 1 << 20));
			reset_close(fd);
			close(fd);
			s.t.join();
			EXPECT_EQ(server_err.load(), ECONNRESET) << "the server saw an end of stream";
			EXPECT_LE(server_got.load(), BURST);
		} else {
			int err = 0;
			size_t got = recv_pattern(fd, 5, &err);
			EXPECT_EQ(err, ECONNRESET) << "the client saw an end of stream after " << got;
			EXPECT_LE(got, BURST);
			close(fd);
		}
		expect_pipes(p.pid, pipes_before);
		int st = p.stop();
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	}
}

TEST(ProxyTest, RoundRobinSpreadsAndADeadServerIsSkipped)
{
	NEED_PROXY();
	backend a('a'), b('b');
	int dead = free_port(); /* nothing listens there */
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(config(port, {a.port, dead, b.port})));
	ASSERT_NE(p.wait_line("listening on"), "");
	std::map<char, int> seen;
	for (int i = 0; i < 60; i++) {
		int fd = dial(port);
		ASSERT_GE(fd, 0);
		char tag = 0;
		EXPECT_EQ(recv(fd, &tag, 1, 0), 1) << "connection " << i << " failed";
		seen[tag]++;
		close(fd);
	}
	EXPECT_EQ(seen.size(), 2u);
	EXPECT_NEAR(seen['a'], 30, 3);
	EXPECT_NEAR(seen['b'], 30, 3);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* The server resets while the proxy is blocked sending to a client that
 * reads nothing; the client's next byte finds the server gone.  The relay
 * ends at once, its blocked send woken by the client's reset, not at the
 * idle timeout (20 s here), and the client reads the reset. */
TEST_P(DataPath, AResetEndsASendBlockedOnASlowClientAtOnce)
{
	NEED_PROXY();
	std::atomic<bool> full{false};
	one_server s([&](int fd) {
		/* Send until nothing more goes for 300 ms: the client's
		 * buffers and the proxy's send to it are full.  Then reset. */
		struct timeval tv = {0, 300 * 1000};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		std::mt19937 rng(6);
		send_pattern(fd, 0, 256u << 20, rng, 1 << 16);
		reset_close(fd);
		full = true;
	});
	proxy p;
	int port;
	ASSERT_NO_FATAL_FAILURE(start(p, {s.port}, &port, nullptr, "idle_timeout = 20s\n"));
	int fd = dial(port);
	ASSERT_GE(fd, 0);
	for (int i = 0; i < 1000 && !full; i++)
		usleep(10000);
	ASSERT_TRUE(full) << "the server never filled the path";
	s.t.join();
	ASSERT_EQ(send(fd, "x", 1, MSG_NOSIGNAL), 1);
	std::string line = p.wait_line("\"end\":", 3000);
	EXPECT_NE(line.find("\"end\":\"server_reset\""), std::string::npos)
		<< "the relay did not end at the reset: " << line;
	int err = 0;
	recv_pattern(fd, 0, &err);
	EXPECT_EQ(err, ECONNRESET) << "the client saw an end of stream";
	close(fd);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ProxyTest, AResetByTheServerReachesTheClientAsAReset)
{
	NEED_PROXY();
	int port_b;
	int lfd = listen_loopback(0, &port_b);
	std::thread server([lfd] {
		int fd = accept(lfd, nullptr, nullptr);
		char b;
		if (fd >= 0 && recv(fd, &b, 1, 0) == 1) {
			/* A zero linger: close sends RST, not FIN. */
			struct linger lg = {1, 0};
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		if (fd >= 0)
			close(fd);
	});
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(config(port, {port_b})));
	ASSERT_NE(p.wait_line("listening on"), "");
	int fd = dial(port);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(send(fd, "x", 1, 0), 1);
	char b;
	errno = 0;
	EXPECT_EQ(recv(fd, &b, 1, 0), -1) << "the client saw an end of stream, not a reset";
	EXPECT_EQ(errno, ECONNRESET);
	close(fd);
	server.join();
	close(lfd);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ProxyTest, AConnectionWaitsForAServerSlotAndGetsIt)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			    "\nbackend = b\n\n[backend b]\nqueue_timeout = 5s\nserver s0 = 127.0.0.1:" +
			    std::to_string(a.port) + " max_connections=2\n"));
	ASSERT_NE(p.wait_line("listening on"), "");
	char tag;
	int one = dial(port), two = dial(port);
	ASSERT_EQ(recv(one, &tag, 1, 0), 1);
	ASSERT_EQ(recv(two, &tag, 1, 0), 1);
	/* The server is at its limit: the third waits in the queue... */
	int three = dial(port);
	ASSERT_GE(three, 0);
	struct pollfd pf = {three, POLLIN, 0};
	EXPECT_EQ(poll(&pf, 1, 300), 0) << "served past the server's max_connections";
	/* ...until a slot frees. */
	close(one);
	EXPECT_EQ(poll(&pf, 1, 3000), 1);
	EXPECT_EQ(recv(three, &tag, 1, 0), 1);
	close(two);
	close(three);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ProxyTest, AConnectionNoSlotFreesForIsResetAtTheQueueTimeout)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			    "\nbackend = b\n\n[backend b]\nqueue_timeout = 200ms\nserver s0 = 127.0.0.1:" +
			    std::to_string(a.port) + " max_connections=1\n"));
	ASSERT_NE(p.wait_line("listening on"), "");
	char tag;
	int one = dial(port);
	ASSERT_EQ(recv(one, &tag, 1, 0), 1);
	int two = dial(port);
	auto t0 = std::chrono::steady_clock::now();
	errno = 0;
	EXPECT_EQ(recv(two, &tag, 1, 0), -1);
	EXPECT_EQ(errno, ECONNRESET);
	auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
		std::chrono::steady_clock::now() - t0);
	EXPECT_GE(waited.count(), 150) << "refused without waiting in the queue";
	close(one);
	close(two);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ProxyTest, AConfigurationErrorNamesFileAndLine)
{
	NEED_PROXY();
	proxy p;
	ASSERT_TRUE(p.start("[frontend f]\nlisten = 127.0.0.1:1\nbackend = nowhere\n\n[backend b]\nserver s = 127.0.0.1:2\n"));
	std::string line = p.wait_line(":");
	EXPECT_NE(line.find(p.file + ":3:"), std::string::npos) << line;
	int st;
	waitpid(p.pid, &st, 0);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
	close(p.err);
	unlink(p.file.c_str());
}

TEST(ProxyTest, SigtermDrainsEstablishedConnectionsAndExitsZero)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[global]\ndrain_timeout = 10s\n\n" + config(port, {a.port})));
	ASSERT_NE(p.wait_line("listening on"), "");
	int fd = dial(port);
	ASSERT_GE(fd, 0);
	char tag;
	ASSERT_EQ(recv(fd, &tag, 1, 0), 1);
	kill(p.pid, SIGTERM);
	ASSERT_NE(p.wait_line("draining"), "");
	/* New connections are no longer taken... */
	int late = dial(port);
	EXPECT_LT(late, 0) << "still accepting while draining";
	if (late >= 0)
		close(late);
	/* ...while the established one still works, until it ends. */
	ASSERT_EQ(send(fd, "ping", 4, 0), 4);
	char buf[4];
	EXPECT_EQ(recv(fd, buf, 4, MSG_WAITALL), 4);
	EXPECT_EQ(memcmp(buf, "ping", 4), 0);
	close(fd);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ProxyTest, ConnectionsLeftAtTheDrainDeadlineAreClosedSpreadOut)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[global]\ndrain_timeout = 100ms\n\n" + config(port, {a.port})));
	ASSERT_NE(p.wait_line("listening on"), "");
	const int n = 20;
	std::vector<int> fds;
	for (int i = 0; i < n; i++) {
		int fd = dial(port);
		ASSERT_GE(fd, 0);
		char tag;
		ASSERT_EQ(recv(fd, &tag, 1, 0), 1);
		fds.push_back(fd);
	}
	kill(p.pid, SIGTERM);
	/* Each client reads its end of stream; the ends are spread over the
	 * proxy's one-second window, not all in one instant. */
	std::vector<std::chrono::steady_clock::time_point> ends;
	std::vector<struct pollfd> pf;
	for (int fd : fds)
		pf.push_back({fd, POLLIN, 0});
	while (ends.size() < fds.size() && poll(pf.data(), pf.size(), 5000) > 0)
		for (auto &x : pf)
			if (x.fd >= 0 && x.revents) {
				char b;
				EXPECT_EQ(recv(x.fd, &b, 1, 0), 0);
				ends.push_back(std::chrono::steady_clock::now());
				close(x.fd);
				x.fd = -1;
			}
	ASSERT_EQ(ends.size(), fds.size()) << "not every connection was closed";
	auto spread = std::chrono::duration_cast<std::chrono::milliseconds>(ends.back() - ends.front());
	EXPECT_GE(spread.count(), 500) << "closed in a burst";
	std::string line = p.wait_line("stopped;");
	EXPECT_NE(line.find(std::to_string(n) + " connections closed at the drain deadline"),
		  std::string::npos)
		<< line;
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* Sleeps until over is set, ms milliseconds at most. */
void hold_until(const std::atomic<bool> &over, int ms)
{
	for (int i = 0; i < ms / 10 && !over; i++)
		usleep(10000);
}

TEST_P(DataPath, ADestinationThatTakesNothingEndsTheRelayAtTheIdleTimeout)
{
	NEED_PROXY();
	std::atomic<bool> over{false};
	one_server s([&](int) {
		hold_until(over, 20000); /* reads nothing */
	});
	proxy p;
	int fd;
	ASSERT_NO_FATAL_FAILURE(dial_with_idle_timeout(p, s.port, 20, &fd));
	/* The server's window fills, then the proxy's buffers, then the
	 * client's send waits, until the proxy gives up on the server and
	 * resets the client. */
	auto t0 = std::chrono::steady_clock::now();
	std::mt19937 rng(5);
	EXPECT_FALSE(send_pattern(fd, 0, 256u << 20, rng, 1 << 20)) << "256 MiB went nowhere";
	auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
		std::chrono::steady_clock::now() - t0);
	EXPECT_GE(waited.count(), 300);
	EXPECT_LT(waited.count(), 10000);
	std::string line = p.wait_line("\"end\":", 5000);
	EXPECT_NE(line.find("\"end\":\"idle_timeout\""), std::string::npos) << line;
	close(fd);
	over = true;
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* The idle timeout counts bytes either way, as HAProxy's `timeout tunnel`
 * does: a server that reads none of a client's upload while it streams a
 * reply the client reads is not idle, though the proxy's send of the
 * upload waits far longer than the timeout. */
TEST_P(DataPath, ASendBlockedOneWayWaitsWhileTheOtherWayMovesBytes)
{
	NEED_PROXY();
	const int chunks = 75; /* 16 KiB each, 20 ms apart: 1.5 s, 5x the timeout */
	std::atomic<bool> over{false};
	one_server s([&](int fd) {
		static char chunk[16384];
		for (int i = 0; i < chunks; i++) {
			if (send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) != (ssize_t)sizeof(chunk))
				return;
			usleep(20000);
		}
		shutdown(fd, SHUT_WR);
		hold_until(over, 10000);
	});
	proxy p;
	int fd;
	ASSERT_NO_FATAL_FAILURE(dial_with_idle_timeout(p, s.port, 10, &fd));
	std::thread upload([fd] {
		std::mt19937 rng(7);
		send_pattern(fd, 0, 256u << 20, rng, 1 << 20); /* fails once the relay ends */
	});
	std::string got = read_all(fd);
	EXPECT_EQ(got.size(), (size_t)chunks * 16384) << "the relay ended while bytes still flowed";
	over = true;
	shutdown(fd, SHUT_RDWR);
	upload.join();
	close(fd);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ProxyTest, AtThePipeLimitTransfersGoBufferedAndLoseNothing)
{
	NEED_PROXY();
	/* One worker: the pipe limit is then its share, 64 (config.c). */
	const int extra = 16;
	/* Past the proxy's send buffer towards the server (at most tcp_wmem's
	 * last figure), so that the splice out waits with bytes in its pipe. */
	size_t wmem[3] = {0, 0, 4u << 20};
	if (FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r")) {
		if (fscanf(f, "%zu %zu %zu", &wmem[0], &wmem[1], &wmem[2]) != 3)
			wmem[2] = 4u << 20;
		fclose(f);
	}
	const size_t per_conn = wmem[2] + (2u << 20);
	int port = free_port(), admin, sport;
	do /* two free ports, not one twice */
		admin = free_port();
	while (admin == port);
	int lfd = listen_loopback(0, &sport);
	/* Small receive buffers for the server's connections (they inherit
	 * the listener's), so that the kernel does not take a whole transfer
	 * on the server's behalf. */
	int small = 4096;
	ASSERT_EQ(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	proxy p;
	ASSERT_TRUE(p.start("[global]\nworkers = 1\naccess_log = off\nadmin = 127.0.0.1:" +
			    std::to_string(admin) + "\n\n" + config(port, {sport}) +
			    "data_path = splice\n"));
	/* The admin listener opens after the frontend's: its line, not the
	 * frontend's, says /metrics can be asked. */
	ASSERT_NE(p.wait_line("admin listening on", 10000), "");
	int limit = (int)metric_at(admin, "weft_proxy_pipes_limit");
	ASSERT_GT(limit, 0);
	ASSERT_LE(limit, 1000) << "more connections than this test should open";
	const int conns = limit + extra;

	/* The server accepts everything and reads nothing until released: each
	 * transfer fills its socket buffers and then holds its pipe, full. */
	std::vector<int> held;
	std::vector<std::thread> clients;
	for (int c = 0; c < conns; c++) {
		clients.emplace_back([&] {
			int fd = dial(port);
			if (fd < 0)
				return;
			std::mt19937 rng(7);
			if (send_pattern(fd, 0, per_conn, rng))
				shutdown(fd, SHUT_WR);
			read_all(fd); /* until the server's close comes through */
			close(fd);
		});
		struct pollfd pf = {lfd, POLLIN, 0};
		if (poll(&pf, 1, 5000) == 1)
			held.push_back(accept(lfd, nullptr, nullptr));
	}
	ASSERT_EQ((int)held.size(), conns);
	const std::string fallbacks = "weft_proxy_splice_fallbacks_total{reason=\"pipe_limit\"}";
	for (int i = 0; i < 1000 && metric_at(admin, fallbacks) < extra; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	EXPECT_EQ(metric_at(admin, "weft_proxy_pipes_in_use"), limit);
	EXPECT_GE(metric_at(admin, fallbacks), extra);

	/* Released: every byte of every transfer, in order. */
	std::atomic<int> good{0};
	std::vector<std::thread> readers;
	for (int fd : held)
		readers.emplace_back([&, fd] {
			if (recv_pattern(fd, 0) == per_conn)
				good++;
			close(fd);
		});
	for (auto &t : readers)
		t.join();
	for (auto &t : clients)
		t.join();
	close(lfd);
	EXPECT_EQ(good.load(), conns);
	for (int i = 0; i < 500 && metric_at(admin, "weft_proxy_pipes_in_use") != 0; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	EXPECT_EQ(metric_at(admin, "weft_proxy_pipes_in_use"), 0);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ProxyTest, AnUnknownDataPathNamesFileLineAndTheChoices)
{
	NEED_PROXY();
	proxy p;
	ASSERT_TRUE(p.start(config(1, {2}) + "data_path = fast\n"));
	std::string line = p.wait_line(":");
	EXPECT_NE(line.find(p.file + ":9:"), std::string::npos) << line;
	EXPECT_NE(line.find("data_path: unknown value \"fast\" (auto, splice or buffered)"),
		  std::string::npos)
		<< line;
	int st;
	waitpid(p.pid, &st, 0);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
	close(p.err);
	unlink(p.file.c_str());
}

} // namespace
