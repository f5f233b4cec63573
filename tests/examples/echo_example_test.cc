// SPDX-License-Identifier: MIT
/*
 * echo_example_test.cc - examples/echo as a user runs it: it reports the
 * port it bound, echoes every byte for many connections, closes them all
 * and exits 0 on SIGTERM, and refuses bad arguments with a message and a
 * non-zero status.  The binary's path comes from meson (WEFT_ECHO_BIN).
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

child start(const char *arg)
{
	const char *bin = getenv("WEFT_ECHO_BIN");
	child c;
	int p[2];
	if (!bin || pipe(p) != 0)
		return c;
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

TEST(EchoExampleTest, EchoesManyConnectionsAndExitsCleanlyOnSigterm)
{
	if (!getenv("WEFT_ECHO_BIN"))
		GTEST_SKIP() << "WEFT_ECHO_BIN not set (run through meson test)";
	child c = start("127.0.0.1:0");
	ASSERT_GT(c.pid, 0);
	std::string line = read_line(c.err);
	size_t at = line.rfind("port ");
	ASSERT_NE(at, std::string::npos) << line;
	int port = atoi(line.c_str() + at + 5);
	ASSERT_GT(port, 0) << line;

	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	std::vector<int> fds;
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		fds.push_back(fd);
	}
	for (size_t i = 0; i < fds.size(); i++) {
		char out[32], in[32] = {};
		int n = snprintf(out, sizeof(out), "connection %zu", i);
		ASSERT_EQ(send(fds[i], out, (size_t)n, 0), n);
		ASSERT_EQ(recv(fds[i], in, (size_t)n, MSG_WAITALL), n);
		EXPECT_EQ(memcmp(in, out, (size_t)n), 0);
	}
	/* SIGTERM with every connection still open: each is closed (the
	 * client reads end of stream) and the server exits 0. */
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

TEST(EchoExampleTest, BadArgumentsAreRefusedWithAMessage)
{
	if (!getenv("WEFT_ECHO_BIN"))
		GTEST_SKIP() << "WEFT_ECHO_BIN not set (run through meson test)";
	struct {
		const char *arg, *says;
		int status;
	} cases[] = {
		{"no-port-here", "expected HOST:PORT", 1},
		{"256.1.2.3:80", "256.1.2.3:80", 1},
	};
	for (auto &k : cases) {
		child c = start(k.arg);
		ASSERT_GT(c.pid, 0);
		std::string line = read_line(c.err);
		EXPECT_NE(line.find(k.says), std::string::npos) << k.arg << ": " << line;
		int st = wait_for(c.pid);
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == k.status) << k.arg;
		close(c.err);
	}
}

} // namespace
