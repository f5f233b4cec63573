// SPDX-License-Identifier: MIT
/*
 * proxy_test.cc - weft-proxy end to end, as an operator runs it: the real
 * binary (WEFT_PROXY_BIN, from meson) in front of backends this test
 * serves itself.
 *  - every byte of 64 concurrent connections arrives once and in order,
 *    both ways, with the client's half-close passed on;
 *  - round robin spreads connections evenly; a dead server is skipped
 *    without a client noticing;
 *  - a configuration error names its file and line and exits 1;
 *  - SIGTERM stops accepting, lets an established connection finish, and
 *    the proxy exits 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

/* A backend: answers each connection with its tag, then echoes everything
 * until the client's end of stream, then closes. */
struct backend {
	int lfd = -1, port = 0;
	char tag;
	std::thread acceptor;
	std::vector<std::thread> conns;
	std::mutex lock;

	explicit backend(char t) : tag(t)
	{
		struct sockaddr_in a = {};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof(a);
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		EXPECT_EQ(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
		EXPECT_EQ(listen(lfd, 512), 0);
		EXPECT_EQ(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
		port = ntohs(a.sin_port);
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
		send(fd, &tag, 1, MSG_NOSIGNAL);
		char buf[65536];
		ssize_t n;
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
				if (w <= 0)
					goto out;
				off += w;
			}
	out:
		close(fd);
	}

	~backend()
	{
		shutdown(lfd, SHUT_RDWR);
		acceptor.join();
		for (auto &t : conns)
			t.join();
		close(lfd);
	}
};

/* A free loopback port: bound, read, closed (a race no test here loses). */
int free_port()
{
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

struct proxy {
	pid_t pid = -1;
	int err = -1;
	int port = 0;
	std::string file;

	/* Writes conf to a file and starts weft-proxy on it. */
	bool start(const std::string &conf)
	{
		const char *bin = getenv("WEFT_PROXY_BIN");
		if (!bin)
			return false;
		char path[] = "/tmp/weft-proxy-test-XXXXXX";
		int cfd = mkstemp(path);
		EXPECT_EQ(write(cfd, conf.data(), conf.size()), (ssize_t)conf.size());
		close(cfd);
		file = path;
		int p[2];
		EXPECT_EQ(pipe(p), 0);
		pid = fork();
		if (pid == 0) {
			dup2(p[1], 2);
			close(p[0]);
			setenv("WEFT_WORKERS", "2", 1);
			execl(bin, bin, "-c", path, (char *)nullptr);
			_exit(127);
		}
		close(p[1]);
		err = p[0];
		return true;
	}

	/* Reads stderr up to the line that has `what`; returns it ("" at EOF). */
	std::string wait_line(const char *what)
	{
		std::string line;
		char ch;
		while (read(err, &ch, 1) == 1) {
			if (ch != '\n') {
				line += ch;
				continue;
			}
			if (line.find(what) != std::string::npos)
				return line;
			line.clear();
		}
		return "";
	}

	int stop()
	{
		kill(pid, SIGTERM);
		int st = -1;
		for (int i = 0; i < 1000; i++) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			usleep(10000);
			if (i == 999) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				st = -1;
			}
		}
		close(err);
		unlink(file.c_str());
		return st;
	}
};

std::string config(int port, const std::vector<int> &servers, const std::string &extra = "")
{
	std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) + "\nbackend = b\n" + extra +
			"\n[backend b]\nconnect_timeout = 1s\nretries = 2\n";
	for (size_t i = 0; i < servers.size(); i++)
		c += "server s" + std::to_string(i) + " = 127.0.0.1:" + std::to_string(servers[i]) + "\n";
	return c;
}

int dial(int port)
{
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {20, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

#define NEED_PROXY()                                                                    \
	do {                                                                            \
		if (!getenv("WEFT_PROXY_BIN"))                                          \
			GTEST_SKIP() << "WEFT_PROXY_BIN not set (run through meson test)"; \
	} while (0)

TEST(ProxyTest, EveryByteArrivesOnceAndInOrderWithHalfClose)
{
	NEED_PROXY();
	backend a('a'), b('b');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(config(port, {a.port, b.port})));
	ASSERT_NE(p.wait_line("listening on"), "");
	const int conns = 64;
	const size_t per_conn = 1u << 20; /* 64 MiB in all */
	std::atomic<int> good{0};
	std::vector<std::thread> ts;
	for (int c = 0; c < conns; c++)
		ts.emplace_back([&, c] {
			std::mt19937 rng((unsigned)c);
			std::vector<char> out(per_conn);
			for (auto &x : out)
				x = (char)rng();
			int fd = dial(port);
			if (fd < 0)
				return;
			/* Send in random chunks while a reader collects the echo. */
			std::string in;
			std::thread reader([&] {
				char buf[65536];
				ssize_t n;
				while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
					in.append(buf, (size_t)n);
			});
			for (size_t off = 0; off < out.size();) {
				size_t n = std::min(out.size() - off, (size_t)(1 + rng() % 20000));
				ssize_t w = send(fd, out.data() + off, n, MSG_NOSIGNAL);
				if (w <= 0)
					break;
				off += (size_t)w;
			}
			shutdown(fd, SHUT_WR); /* the backend sees it and ends too */
			reader.join();
			close(fd);
			if (in.size() == out.size() + 1 && (in[0] == 'a' || in[0] == 'b') &&
			    memcmp(in.data() + 1, out.data(), out.size()) == 0)
				good++;
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(good.load(), conns);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
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

} // namespace
