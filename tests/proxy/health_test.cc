// SPDX-License-Identifier: MIT
/*
 * health_test.cc - weft-proxy's active health checks (tools/weft-proxy/
 * health.c) end to end: the real binary in front of backends this test
 * serves, checked every 50 ms.
 *  - a server that dies is logged down after `fall` failed checks, while
 *    clients see no failure; it is logged up `rise` passes after it
 *    returns, and takes connections again;
 *  - an HTTP check marks a server answering 500 down and then gets it no
 *    new connection although it still accepts; 200 brings it back;
 *  - with send_proxy = v2 a check connection opens with the PROXY v2
 *    LOCAL header, then the GET with its Host;
 *  - a server dead from the start is down after its first check, not
 *    `fall` of them;
 *  - a server that takes connections but never answers is down by the
 *    check's timeout;
 *  - with a check port, each server is checked there, on its own address,
 *    and its data port sees no check; a server's own check_port= wins over
 *    the backend's port=;
 *  - with slowstart, a server that comes back up gets few of the new
 *    connections at first, although least connections would otherwise
 *    send it all of them (it has none open);
 *  - every test ends with SIGTERM: exit 0, and the runtime's shutdown
 *    finds no task left (no "weft: shutdown" line).
 */
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

using clk = std::chrono::steady_clock;

long ms_since(clk::time_point t)
{
	return (long)std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - t).count();
}

/*
 * An HTTP backend for checks and clients on one port.  A connection whose
 * first bytes are a request head (after a PROXY header, if any) is a check:
 * it gets `status`, the first one's bytes are kept.  A client sends one byte
 * first; it gets the tag, then the backend waits for its end.
 */
struct http_backend {
	int lfd = -1, port = 0;
	char tag;
	std::atomic<int> status{200};
	std::atomic<int> checks{0}, clients{0};
	std::string first_check;
	std::mutex lock;
	std::thread acceptor;
	std::vector<std::thread> conns;

	/* at, host: as for backend (harness.h). */
	explicit http_backend(char t, int at = 0, uint32_t host = INADDR_LOOPBACK) : tag(t)
	{
		lfd = listen_loopback(at, &port, host);
		acceptor = std::thread([this] {
			int fd;
			while ((fd = accept(lfd, nullptr, nullptr)) >= 0) {
				std::lock_guard<std::mutex> g(lock);
				conns.emplace_back([this, fd] { serve(fd); });
			}
		});
	}

	void serve(int fd)
	{
		struct timeval tv = {5, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		std::string in;
		char buf[4096];
		ssize_t n;
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
			in.append(buf, (size_t)n);
			if (in.find("GET ") == std::string::npos) {
				if (in[0] == 'x') {
					clients++;
					send(fd, &tag, 1, MSG_NOSIGNAL);
					while (recv(fd, buf, sizeof(buf), 0) > 0) {
					}
					break;
				}
				continue; /* a PROXY header so far */
			}
			if (in.find("\r\n\r\n", in.find("GET ")) == std::string::npos)
				continue;
			{
				std::lock_guard<std::mutex> g(lock);
				if (checks++ == 0)
					first_check = in;
			}
			std::string out = "HTTP/1.0 " + std::to_string(status.load()) +
					  " X\r\nContent-Length: 0\r\n\r\n";
			send(fd, out.data(), out.size(), MSG_NOSIGNAL);
			break;
		}
		close(fd);
	}

	~http_backend()
	{
		shutdown(lfd, SHUT_RDWR);
		acceptor.join();
		for (auto &t : conns)
			t.join();
		close(lfd);
	}
};

/* A connection through the proxy: the tag of the server it reached, or 0.
 * hello: send a byte first (what http_backend takes for a client). */
char through(int port, bool hello)
{
	int fd = dial(port);
	if (fd < 0)
		return 0;
	char tag = 0;
	if (hello && send(fd, "x", 1, MSG_NOSIGNAL) != 1)
		tag = 0;
	else if (recv(fd, &tag, 1, 0) != 1)
		tag = 0;
	close(fd);
	return tag;
}

/* SIGTERM, then the exit status, with what stderr still had in *tail. */
int finish(proxy &p, std::string *tail)
{
	kill(p.pid, SIGTERM);
	*tail = p.rest();
	return p.stop();
}

/* The proxy in front of server a, which stays, and server b, which a test
 * stops (b.reset()) and brings back on its port (revive). */
struct a_and_b {
	backend a{'a'};
	std::unique_ptr<backend> b = std::make_unique<backend>('b');
	int bport = b->port;
	proxy p;
	int port = free_port();

	/* extra: lines for the backend. */
	bool start(const std::string &extra)
	{
		return p.start(config(port, {a.port, bport}) + extra) &&
		       p.wait_line("listening on") != "";
	}

	bool revive()
	{
		b = std::make_unique<backend>('b', bport);
		return b->port == bport;
	}
};

TEST(HealthTest, ADeadServerIsDownAfterFallChecksAndUpAfterRise)
{
	NEED_PROXY();
	a_and_b t;
	ASSERT_TRUE(t.start("health_check = tcp interval=50ms rise=3 fall=3\n"));
	proxy &p = t.p;
	int port = t.port;
	std::this_thread::sleep_for(std::chrono::milliseconds(300)); /* checks pass */

	/* b dies; clients keep going meanwhile and must never notice. */
	std::atomic<bool> done{false};
	std::atomic<int> ok{0}, failed{0};
	std::thread clients([&] {
		while (!done) {
			char t = through(port, false);
			(t == 'a' || t == 'b' ? ok : failed)++;
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
		}
	});
	auto t0 = clk::now();
	t.b.reset();
	std::string down = p.wait_line("server b/s1 is down", 3000);
	long took = ms_since(t0);
	done = true;
	clients.join();
	ASSERT_NE(down, "") << "no down line within 3 s";
	EXPECT_NE(down.find("(connect: Connection refused)"), std::string::npos) << down;
	EXPECT_NE(down.find("1 of 2 up in backend b"), std::string::npos) << down;
	/* fall = 3: two more intervals (each at least 7/8 of 50 ms) after the
	 * first failure. */
	EXPECT_GE(took, 80) << "down after fewer than fall checks";
	EXPECT_EQ(failed.load(), 0) << "a client noticed the dead server";
	EXPECT_GT(ok.load(), 0);

	/* Down: every connection goes to a. */
	for (int i = 0; i < 20; i++)
		EXPECT_EQ(through(port, false), 'a');

	/* b comes back on its port: up after rise passes, and used again. */
	auto t1 = clk::now();
	ASSERT_TRUE(t.revive());
	std::string up = p.wait_line("server b/s1 is up", 3000);
	ASSERT_NE(up, "") << "no up line within 3 s";
	EXPECT_GE(ms_since(t1), 80) << "up after fewer than rise checks";
	EXPECT_NE(up.find("2 of 2 up in backend b"), std::string::npos) << up;
	int seen_b = 0;
	for (int i = 0; i < 20; i++)
		seen_b += through(port, false) == 'b';
	EXPECT_NEAR(seen_b, 10, 2);

	std::string tail;
	int st = finish(p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(tail.find("weft: shutdown"), std::string::npos) << tail;
	EXPECT_EQ(tail.find("is down"), std::string::npos) << "shutdown logged a server down: " << tail;
}

TEST(HealthTest, AnHttp500IsDownAndGetsNoConnectionsA200IsUp)
{
	NEED_PROXY();
	http_backend a('a'), b('b');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(config(port, {a.port, b.port}) +
			    "health_check = http /health interval=50ms timeout=5s rise=2 fall=2\n"));
	ASSERT_NE(p.wait_line("listening on"), "");
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	int seen_b = 0;
	for (int i = 0; i < 20; i++)
		seen_b += through(port, true) == 'b';
	EXPECT_NEAR(seen_b, 10, 2);

	b.status = 500;
	std::string down = p.wait_line("server b/s1 is down", 3000);
	ASSERT_NE(down, "") << "no down line within 3 s";
	EXPECT_NE(down.find("(status 500)"), std::string::npos) << down;
	/* b still accepts, but gets no new connection. */
	int before = b.clients.load();
	for (int i = 0; i < 20; i++)
		EXPECT_EQ(through(port, true), 'a');
	EXPECT_EQ(b.clients.load(), before);

	b.status = 200;
	ASSERT_NE(p.wait_line("server b/s1 is up", 3000), "") << "no up line within 3 s";
	seen_b = 0;
	for (int i = 0; i < 20; i++)
		seen_b += through(port, true) == 'b';
	EXPECT_NEAR(seen_b, 10, 2);
	EXPECT_GE(a.checks.load(), 5);

	std::string tail;
	int st = finish(p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(tail.find("weft: shutdown"), std::string::npos) << tail;
	EXPECT_EQ(tail.find("s0 is down"), std::string::npos) << tail;
}

TEST(HealthTest, WithSendProxyV2ACheckOpensWithTheLocalHeader)
{
	NEED_PROXY();
	http_backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(config(port, {a.port}) + "send_proxy = v2\n" +
			    "health_check = http /ping interval=50ms timeout=5s\n"));
	ASSERT_NE(p.wait_line("listening on"), "");
	for (int i = 0; i < 200 && a.checks.load() == 0; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	ASSERT_GT(a.checks.load(), 0);
	std::string first;
	{
		std::lock_guard<std::mutex> g(a.lock);
		first = a.first_check;
	}
	/* Signature, version 2 and LOCAL (0x20), UNSPEC (0x00), length 0. */
	const char local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
	ASSERT_GE(first.size(), 16u);
	EXPECT_EQ(first.substr(0, 16), std::string(local, 16));
	std::string req = first.substr(16);
	std::string host = "Host: 127.0.0.1:" + std::to_string(a.port) + "\r\n";
	EXPECT_EQ(req.rfind("GET /ping HTTP/1.0\r\n", 0), 0u) << req;
	EXPECT_NE(req.find(host), std::string::npos) << req;

	std::string tail;
	int st = finish(p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(tail.find("is down"), std::string::npos) << tail;
}

TEST(HealthTest, AServerDeadFromTheStartIsDownAfterOneCheck)
{
	NEED_PROXY();
	backend a('a');
	int dead = free_port();
	proxy p;
	int port = free_port();
	/* fall = 100 at 50 ms would take about 5 s; the first check decides. */
	auto t0 = clk::now();
	ASSERT_TRUE(p.start(config(port, {a.port, dead}) +
			    "health_check = tcp interval=50ms fall=100\n"));
	std::string down = p.wait_line("server b/s1 is down", 3000);
	ASSERT_NE(down, "");
	EXPECT_LT(ms_since(t0), 2000);
	for (int i = 0; i < 10; i++)
		EXPECT_EQ(through(port, false), 'a');

	std::string tail;
	int st = finish(p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(tail.find("s0 is down"), std::string::npos) << tail;
	EXPECT_EQ(tail.find("weft: shutdown"), std::string::npos) << tail;
}

TEST(HealthTest, AServerThatNeverAnswersIsDownByTheTimeout)
{
	NEED_PROXY();
	http_backend a('a');
	/* Listens (the kernel completes connects) but never accepts or answers. */
	int mute = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in m = {};
	m.sin_family = AF_INET;
	m.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(m);
	ASSERT_EQ(bind(mute, (struct sockaddr *)&m, sizeof(m)), 0);
	ASSERT_EQ(listen(mute, 512), 0);
	ASSERT_EQ(getsockname(mute, (struct sockaddr *)&m, &len), 0);
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(config(port, {a.port, ntohs(m.sin_port)}) +
			    "health_check = http /health interval=50ms timeout=100ms fall=2\n"));
	std::string down = p.wait_line("server b/s1 is down", 3000);
	ASSERT_NE(down, "");
	EXPECT_NE(down.find("(recv: Connection timed out)"), std::string::npos) << down;

	std::string tail;
	int st = finish(p, &tail);
	close(mute);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(tail.find("s0 is down"), std::string::npos) << tail;
	EXPECT_EQ(tail.find("weft: shutdown"), std::string::npos) << tail;
}

/* Frontend f on port to backend b of servers s0 and s1 (their lines after
 * "server "), checked by http /ready on check_port every 50 ms, each
 * verdict at once. */
std::string checked_on(int port, int check_port, const std::string &s0, const std::string &s1)
{
	return "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
	       "\nbackend = b\n\n[backend b]\nconnect_timeout = 1s\n"
	       "health_check = http /ready interval=50ms rise=1 fall=1 port=" +
	       std::to_string(check_port) + "\nserver " + s0 + "\nserver " + s1 + "\n";
}

TEST(HealthTest, ACheckPortIsCheckedInsteadOfTheServersOwn)
{
	NEED_PROXY();
	const uint32_t loopback2 = 0x7f000002; /* 127.0.0.2 */
	backend a('a'), b('b', 0, loopback2);
	/* The check port, the same on both servers' addresses. */
	http_backend check_a('x'), check_b('y', check_a.port, loopback2);
	ASSERT_EQ(check_b.port, check_a.port);
	check_b.status = 500;
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(checked_on(port, check_a.port, "s0 = 127.0.0.1:" + std::to_string(a.port),
				       "s1 = 127.0.0.2:" + std::to_string(b.port))));
	std::string down = p.wait_line("server b/s1 is down", 3000);
	EXPECT_NE(down.find("(status 500)"), std::string::npos) << down;
	int to_a = 0;
	for (int i = 0; i < 10; i++)
		to_a += through(port, false) == 'a';
	EXPECT_EQ(to_a, 10);

	check_b.status = 200;
	ASSERT_NE(p.wait_line("server b/s1 is up", 3000), "");
	int to_b = 0;
	for (int i = 0; i < 20; i++) {
		char t = through(port, false);
		to_a += t == 'a';
		to_b += t == 'b';
	}
	EXPECT_NEAR(to_b, 10, 2);
	EXPECT_GT(check_a.checks.load(), 0);
	EXPECT_GT(check_b.checks.load(), 0);
	/* The data ports saw the clients and nothing else. */
	EXPECT_EQ(a.accepted.load(), to_a);
	EXPECT_EQ(b.accepted.load(), to_b);

	std::string tail;
	int st = finish(p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A server's own check_port wins over the backend's port=, which the other
 * server keeps. */
TEST(HealthTest, AServersOwnCheckPortWinsOverTheBackends)
{
	NEED_PROXY();
	backend a('a'), b('b');
	http_backend check_a('x'), check_b('y');
	check_b.status = 500;
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(checked_on(port, check_a.port, "s0 = 127.0.0.1:" + std::to_string(a.port),
				       "s1 = 127.0.0.1:" + std::to_string(b.port) +
					       " check_port=" + std::to_string(check_b.port))));
	std::string down = p.wait_line("server b/s1 is down", 3000);
	EXPECT_NE(down.find("(status 500)"), std::string::npos) << down;
	check_b.status = 200;
	ASSERT_NE(p.wait_line("server b/s1 is up", 3000), "");
	/* s0 was checked on the backend's port throughout, s1 on its own. */
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	EXPECT_GT(check_a.checks.load(), 2);
	EXPECT_GT(check_b.checks.load(), 2);
	int to_a = 0, to_b = 0;
	for (int i = 0; i < 20; i++) {
		char t = through(port, false);
		to_a += t == 'a';
		to_b += t == 'b';
	}
	EXPECT_EQ(to_a + to_b, 20);
	EXPECT_NEAR(to_b, 10, 2);
	EXPECT_EQ(a.accepted.load(), to_a);
	EXPECT_EQ(b.accepted.load(), to_b);
	std::string tail;
	int st = finish(p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(HealthTest, SlowstartKeepsLeastConnectionsFromPilingOntoAServerThatCameBack)
{
	NEED_PROXY();
	a_and_b t;
	ASSERT_TRUE(t.start("balance = leastconn\nslowstart = 3s\n"
			    "health_check = tcp interval=50ms rise=1 fall=1\n"));
	t.b.reset();
	ASSERT_NE(t.p.wait_line("server b/s1 is down", 3000), "");

	/* A connection held open: the server it reached. */
	std::vector<int> held;
	auto hold = [&] {
		int fd = dial(t.port);
		char tag = 0;
		if (fd >= 0 && recv(fd, &tag, 1, 0) != 1)
			tag = 0;
		held.push_back(fd);
		return tag;
	};
	/* Ten through a while b is down. */
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(hold(), 'a');

	/* b back, with none open: least connections alone would send it the
	 * next ten.  Within the first part of its ramp its weight is a small
	 * share of a's, and so is the load it may carry before a is the
	 * lighter again. */
	ASSERT_TRUE(t.revive());
	ASSERT_NE(t.p.wait_line("server b/s1 is up", 3000), "");
	auto t0 = clk::now();
	int to_b = 0;
	for (int i = 0; i < 10; i++) {
		char tag = hold();
		ASSERT_TRUE(tag == 'a' || tag == 'b') << tag;
		to_b += tag == 'b';
	}
	long took = ms_since(t0);
	/* At t seconds into the 3 s ramp b weighs t/3 of a, so it is picked
	 * while its count is below a's times that: with a at 10 to 20, at most
	 * 20t/3 + 1 of the ten.  t runs from the up line's writing, up to
	 * 100 ms before this test read it. */
	EXPECT_LE(to_b, 20.0 * (double)(took + 100) / 3000.0 + 1)
		<< "b took " << to_b << " of 10 in " << took << " ms";
	EXPECT_LT(took, 1500) << "too slow to say anything about the ramp";
	for (int fd : held)
		close(fd);

	std::string tail;
	int st = finish(t.p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

} // namespace
