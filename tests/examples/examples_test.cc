// SPDX-License-Identifier: MIT
/*
 * examples_test.cc - the example programs as a user runs them.  Each server
 * reports the address it bound; echo and echo_stream echo every byte for
 * many connections; http_hello answers keep-alive, pipelined and split
 * requests and refuses a malformed one with 400; all close every connection
 * and exit 0 on SIGTERM, and refuse bad arguments with a message and status 2.
 * The crawler fetches every page of a small site served by the test once,
 * never more than its bound at a time.
 * The programs' directory comes from meson (WEFT_EXAMPLES_DIR).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
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

/* echo, and echo_stream (the same server reading through a weft_stream). */
TEST(ExamplesTest, EchoServesManyConnectionsAndExitsCleanlyOnSigterm)
{
	NEED_EXAMPLES();
	for (const char *name : {"echo", "echo_stream"}) {
		SCOPED_TRACE(name);
		child c;
		int port = serve(name, &c);
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

/*
 * A small site for the crawler: /index.html and pages /p/0.html ..
 * /p/{N-1}.html, linked in every form a page may use (absolute, relative,
 * dot segments, fragments, the full URL), plus links it must not follow
 * (another host, another scheme) and one to a page that does not exist.
 * Odd pages are sent chunked.  Every response waits 2 ms, so that fetches
 * overlap; the site records each path asked for and the most connections
 * open at once.
 */
struct site {
	static constexpr int pages = 60;
	int lfd = -1, port = 0;
	std::mutex lock;
	std::map<std::string, int> asked;
	int open = 0, max_open = 0;
	std::thread acceptor;
	std::vector<std::thread> conns;

	std::string page(const std::string &path)
	{
		int i;
		if (path == "/index.html")
			return "<a href=\"/p/0.html\">start</a> <a href=\"mailto:x@y.z\">mail</a>"
			       "<a href=\"https://127.0.0.1/\">tls</a>";
		if (sscanf(path.c_str(), "/p/%d.html", &i) != 1 || i < 0 || i >= pages)
			return "";
		int a = (i + 1) % pages, b = (i * 7 + 3) % pages, d = (i * 13 + 5) % pages;
		std::string s = "<html><a href=\"" + std::to_string(a) + ".html\">next</a>";
		s += "<a href=\"../p/./" + std::to_string(b) + ".html#top\">b</a>";
		s += "<a href=\"http://127.0.0.1:" + std::to_string(port) + "/p/" + std::to_string(d) +
		     ".html\">d</a>";
		s += "<a href=\"http://other.invalid/p/1.html\">elsewhere</a>";
		s += "<a href=\"//other.invalid/x\">elsewhere</a>";
		if (i == 17)
			s += "<a href=\"/missing.html\">broken</a>";
		return s + "</html>";
	}

	void handle(int fd)
	{
		std::string req;
		char buf[4096];
		while (req.find("\r\n\r\n") == std::string::npos) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			req.append(buf, (size_t)n);
		}
		std::string path = req.substr(4, req.find(' ', 4) - 4);
		{
			std::lock_guard<std::mutex> g(lock);
			asked[path]++;
			max_open = std::max(max_open, ++open);
		}
		usleep(2000);
		std::string body = page(path), resp;
		int i = 0;
		if (body.empty()) {
			resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
		} else if (sscanf(path.c_str(), "/p/%d.html", &i) == 1 && i % 2) {
			char size[16];
			snprintf(size, sizeof(size), "%zx", body.size() - 10);
			resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			       std::string(size) + ";ext=1\r\n" + body.substr(0, body.size() - 10) +
			       "\r\na\r\n" + body.substr(body.size() - 10) + "\r\n0\r\n\r\n";
		} else {
			resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
			       "\r\n\r\n" + body;
		}
		{
			std::lock_guard<std::mutex> g(lock);
			open--;
		}
		send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
		close(fd);
	}

	void start()
	{
		struct sockaddr_in a = {};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof(a);
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ASSERT_EQ(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
		ASSERT_EQ(listen(lfd, 128), 0);
		ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
		port = ntohs(a.sin_port);
		acceptor = std::thread([this] {
			int fd;
			while ((fd = accept(lfd, nullptr, nullptr)) >= 0)
				conns.emplace_back([this, fd] { handle(fd); });
		});
	}

	void stop()
	{
		shutdown(lfd, SHUT_RDWR);
		acceptor.join();
		for (auto &t : conns)
			t.join();
		close(lfd);
	}
};

TEST(ExamplesTest, CrawlerFetchesEveryPageOnceWithBoundedConcurrency)
{
	NEED_EXAMPLES();
	site s;
	s.start();
	std::string url = "http://127.0.0.1:" + std::to_string(s.port) + "/index.html";
	std::string cmd = std::string(getenv("WEFT_EXAMPLES_DIR")) + "/crawler " + url + " 3";
	FILE *out = popen(cmd.c_str(), "r");
	ASSERT_NE(out, nullptr);
	std::string text;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), out)) > 0)
		text.append(buf, n);
	int st = pclose(out);
	s.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << text;
	/* Every page, the index and the broken link: each asked for once. */
	EXPECT_EQ(s.asked.size(), (size_t)site::pages + 2);
	for (auto &kv : s.asked)
		EXPECT_EQ(kv.second, 1) << kv.first;
	for (int i = 0; i < site::pages; i++) {
		std::string p = "/p/" + std::to_string(i) + ".html";
		EXPECT_EQ(s.asked.count(p), 1u) << p;
		EXPECT_NE(text.find("200 " + p + " " + std::to_string(s.page(p).size()) + "\n"),
			  std::string::npos)
			<< p << " missing or of the wrong size in:\n"
			<< text;
	}
	EXPECT_NE(text.find("404 /missing.html 0\n"), std::string::npos) << text;
	EXPECT_NE(text.find("crawled 62 pages"), std::string::npos) << text;
	EXPECT_LE(s.max_open, 3) << "more fetches at once than allowed";
	EXPECT_GE(s.max_open, 2) << "the fetches never overlapped";
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
