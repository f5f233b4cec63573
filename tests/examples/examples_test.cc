// SPDX-License-Identifier: MIT
/*
 * examples_test.cc - the example programs as a user runs them.  Each server
 * reports the address it bound; echo echoes every byte for many
 * connections; http_hello answers keep-alive, pipelined and split requests
 * and refuses a malformed one with 400; both close every connection and
 * exit 0 on SIGTERM, and refuse bad arguments with a message and status 2.
 * The programs' directory comes from meson (WEFT_EXAMPLES_DIR).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace {

struct child {
	pid_t pid = -1;
	int err = -1; /* its stderr */
};

child start(const char *name, const char *arg)
{
	const char *dir = getenv("WEFT_EXAMPLES_DIR");
	child c;
	int p[2];
	if (!dir || pipe(p) != 0)
		return c;
	std::string path = std::string(dir) + "/" + name;
	const char *bin = path.c_str();
	c.pid = fork();
	if (c.pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		execl(bin, bin, arg, (char *)nullptr);
		_exit(127);
	}
	close(p[1]);
	c.err = p[0];
	return c;
}

std::string read_line(int fd)
{
	std::string s;
	char ch;
	while (read(fd, &ch, 1) == 1 && ch != '\n')
		s += ch;
	return s;
}

/* Waits up to 10 s for the child; returns its wait status or -1. */
int wait_for(pid_t pid)
{
	for (int i = 0; i < 1000; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, nullptr, 0);
	return -1;
}

#define NEED_EXAMPLES()                                                     \
	do {                                                                \
		if (!getenv("WEFT_EXAMPLES_DIR"))                           \
			GTEST_SKIP() << "WEFT_EXAMPLES_DIR not set (run through meson test)"; \
	} while (0)

/* Starts a server example on a free loopback port; returns its port. */
int serve(const char *name, child *c)
{
	*c = start(name, "127.0.0.1:0");
	EXPECT_GT(c->pid, 0);
	std::string line = read_line(c->err);
	size_t at = line.rfind(':');
	int port = at == std::string::npos ? 0 : atoi(line.c_str() + at + 1);
	EXPECT_GT(port, 0) << line;
	return port;
}

std::vector<int> dial(int port, int n)
{
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	std::vector<int> fds;
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		EXPECT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		fds.push_back(fd);
	}
	return fds;
}

/* SIGTERM with every connection still open: each is closed (the client
 * reads end of stream) and the server exits 0. */
void stop_and_check(child &c, std::vector<int> &fds)
{
	ASSERT_EQ(kill(c.pid, SIGTERM), 0);
	int eof = 0;
	for (int fd : fds) {
		char b;
		struct timeval tv = {10, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (recv(fd, &b, 1, 0) == 0)
			eof++;
		close(fd);
	}
	EXPECT_EQ(eof, (int)fds.size());
	int st = wait_for(c.pid);
	EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
	close(c.err);
}

TEST(ExamplesTest, EchoServesManyConnectionsAndExitsCleanlyOnSigterm)
{
	NEED_EXAMPLES();
	child c;
	int port = serve("echo", &c);
	ASSERT_GT(port, 0);
	std::vector<int> fds = dial(port, 200);
	for (size_t i = 0; i < fds.size(); i++) {
		char out[32], in[32] = {};
		int n = snprintf(out, sizeof(out), "connection %zu", i);
		ASSERT_EQ(send(fds[i], out, (size_t)n, 0), n);
		ASSERT_EQ(recv(fds[i], in, (size_t)n, MSG_WAITALL), n);
		EXPECT_EQ(memcmp(in, out, (size_t)n), 0);
	}
	stop_and_check(c, fds);
}

/* Reads from fd until want bytes have come (or 10 s pass). */
std::string read_n(int fd, size_t want)
{
	std::string s;
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[4096];
	while (s.size() < want) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		s.append(buf, (size_t)n);
	}
	return s;
}

TEST(ExamplesTest, HttpHelloAnswersKeepAlivePipelinedAndSplitRequests)
{
	NEED_EXAMPLES();
	const std::string get = "GET /any/path HTTP/1.1\r\nHost: t\r\n\r\n";
	const std::string hello = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				  "Content-Length: 6\r\n\r\nhello\n";
	child c;
	int port = serve("http_hello", &c);
	ASSERT_GT(port, 0);
	std::vector<int> fds = dial(port, 100);
	for (int round = 0; round < 3; round++) {
		for (int fd : fds) {
			/* Three pipelined requests in one write. */
			std::string three = get + get + get;
			ASSERT_EQ(send(fd, three.data(), three.size(), 0), (ssize_t)three.size());
		}
		for (int fd : fds)
			EXPECT_EQ(read_n(fd, 3 * hello.size()), hello + hello + hello);
	}
	/* One request a byte at a time. */
	for (char ch : get) {
		ASSERT_EQ(send(fds[0], &ch, 1, 0), 1);
		usleep(200);
	}
	EXPECT_EQ(read_n(fds[0], hello.size()), hello);
	/* A malformed request: 400, then the server closes. */
	int bad = dial(port, 1)[0];
	const char junk[] = "GET / HTTP/1.1\r\nHost : t\r\n\r\n";
	ASSERT_EQ(send(bad, junk, sizeof(junk) - 1, 0), (ssize_t)sizeof(junk) - 1);
	std::string r = read_n(bad, 1 << 20);
	EXPECT_EQ(r.rfind("HTTP/1.1 400 ", 0), 0u) << r;
	close(bad);
	stop_and_check(c, fds);
}

TEST(ExamplesTest, BadArgumentsAreRefusedWithAMessage)
{
	NEED_EXAMPLES();
	struct {
		const char *arg, *says;
		int status;
	} cases[] = {
		{"no-port-here", "expected HOST:PORT", 2},
		{"256.1.2.3:80", "256.1.2.3:80", 2},
		{"127.0.0.1:1", "127.0.0.1:1", 1}, /* a privileged port, or in use */
	};
	for (const char *name : {"echo", "http_hello"})
	for (auto &k : cases) {
		if (k.status == 1 && geteuid() == 0)
			continue; /* root may bind port 1 */
		child c = start(name, k.arg);
		ASSERT_GT(c.pid, 0);
		std::string line = read_line(c.err);
		EXPECT_NE(line.find(k.says), std::string::npos) << name << " " << k.arg << ": " << line;
		int st = wait_for(c.pid);
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == k.status) << name << " " << k.arg;
		close(c.err);
	}
}

} // namespace
