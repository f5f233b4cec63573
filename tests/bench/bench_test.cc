// SPDX-License-Identifier: MIT
/*
 * bench_test.cc - the weft-bench binary end to end, against a small HTTP
 * server the test runs itself in threads on loopback (a thread per
 * connection, keep-alive, a fixed delay before each answer, and optionally
 * one stall of the whole server).  Properties covered:
 *  - closed loop against a 10 ms server: no latency below 10 ms, p50 within
 *    [10 ms, 12 ms];
 *  - -n N: the server sees exactly N requests, and the report counts N;
 *  - --rate: a 1 s stall of the server shows in the corrected p99, not in
 *    the uncorrected one (coordinated omission); closed loop hides it;
 *  - the text summary carries wrk's `Requests/sec:` line.
 * The binary's path comes from meson (WEFT_BENCH_BIN).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

using clk = std::chrono::steady_clock;

/* The test's HTTP server.  delay: before every answer; stall_at: the
 * request number (1-based) that makes every answer wait until 1 s after it
 * arrived; 0: never. */
struct server {
	int lfd = -1;
	int port = 0;
	std::chrono::milliseconds delay{0};
	long stall_at = 0;
	std::atomic<long> count{0};
	std::atomic<int64_t> stall_until{0}; /* ns since clk's epoch */
	std::atomic<bool> stop{false};
	std::thread acceptor;
	std::mutex mu;
	std::vector<std::thread> conns;
	std::vector<int> fds;

	bool start()
	{
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in a{};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t al = sizeof(a);
		if (lfd < 0 || bind(lfd, (sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 256) != 0 ||
		    getsockname(lfd, (sockaddr *)&a, &al) != 0)
			return false;
		port = ntohs(a.sin_port);
		acceptor = std::thread([this] { accept_loop(); });
		return true;
	}

	void accept_loop()
	{
		while (!stop.load()) {
			pollfd p{lfd, POLLIN, 0};
			if (poll(&p, 1, 50) <= 0)
				continue;
			int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			std::lock_guard<std::mutex> g(mu);
			fds.push_back(fd);
			conns.emplace_back([this, fd] { serve(fd); });
		}
	}

	static int64_t now_ns()
	{
		return std::chrono::duration_cast<std::chrono::nanoseconds>(
			       clk::now().time_since_epoch())
			.count();
	}

	void serve(int fd)
	{
		static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
		std::string in;
		char buf[4096];
		/* The client may close while an answer is due: MSG_NOSIGNAL,
		 * not SIGPIPE. */
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				return;
			in.append(buf, (size_t)n);
			size_t e;
			while ((e = in.find("\r\n\r\n")) != std::string::npos) {
				in.erase(0, e + 4);
				long k = ++count;
				if (k == stall_at)
					stall_until = now_ns() + 1000000000;
				if (delay.count())
					std::this_thread::sleep_for(delay);
				int64_t until;
				while ((until = stall_until.load()) > now_ns())
					std::this_thread::sleep_for(
						std::chrono::nanoseconds(until - now_ns()));
				if (send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL) !=
				    (ssize_t)sizeof(resp) - 1)
					return;
			}
		}
	}

	~server()
	{
		stop = true;
		if (acceptor.joinable())
			acceptor.join();
		{
			std::lock_guard<std::mutex> g(mu);
			for (int fd : fds)
				shutdown(fd, SHUT_RDWR);
		}
		for (auto &t : conns)
			t.join();
		for (int fd : fds)
			close(fd);
		if (lfd >= 0)
			close(lfd);
	}

	std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/"; }
};

/* Runs weft-bench with args; returns its exit status and stdout. */
int run_bench(const std::vector<std::string> &args, std::string *out)
{
	const char *bin = getenv("WEFT_BENCH_BIN");
	if (!bin)
		return -1;
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		std::vector<char *> av;
		av.push_back((char *)bin);
		for (auto &a : args)
			av.push_back((char *)a.c_str());
		av.push_back(nullptr);
		execv(bin, av.data());
		_exit(127);
	}
	close(p[1]);
	char buf[4096];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		out->append(buf, (size_t)n);
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The number after "key": inside the object "obj": of a --json line
 * (obj empty: at the top level, the first occurrence); -1 if absent. */
double field(const std::string &json, const std::string &obj, const std::string &key)
{
	size_t from = 0;
	if (!obj.empty()) {
		from = json.find("\"" + obj + "\":{");
		if (from == std::string::npos)
			return -1;
	}
	size_t at = json.find("\"" + key + "\":", from);
	if (at == std::string::npos)
		return -1;
	return strtod(json.c_str() + at + key.size() + 3, nullptr);
}

#define NEED_BIN()                                                          \
	do {                                                                \
		if (!getenv("WEFT_BENCH_BIN"))                              \
			GTEST_SKIP() << "WEFT_BENCH_BIN is not set";        \
	} while (0)

constexpr double MS = 1e6;

TEST(BenchTest, ClosedLoopNeverReadsBelowServerDelay)
{
	NEED_BIN();
	server s;
	s.delay = std::chrono::milliseconds(10);
	ASSERT_TRUE(s.start());
	std::string out;
	ASSERT_EQ(run_bench({"-c", "4", "-w", "1", "-d", "2s", "--json", s.url()}, &out), 0);
	SCOPED_TRACE(out);
	EXPECT_GT(field(out, "", "requests"), 100);
	EXPECT_GE(field(out, "latency", "min_ns"), 10 * MS);
	EXPECT_GE(field(out, "latency", "p50_ns"), 10 * MS);
	EXPECT_LE(field(out, "latency", "p50_ns"), 12 * MS);
	EXPECT_EQ(field(out, "", "established"), 4);
	EXPECT_EQ(field(out, "", "non_2xx_3xx"), 0);
}

TEST(BenchTest, ExactRequestCountSeenByServer)
{
	NEED_BIN();
	server s;
	ASSERT_TRUE(s.start());
	std::string out;
	ASSERT_EQ(run_bench({"-c", "8", "-w", "2", "-n", "500", "--json", s.url()}, &out), 0);
	SCOPED_TRACE(out);
	EXPECT_EQ(s.count.load(), 500);
	EXPECT_EQ(field(out, "", "requests"), 500);
	EXPECT_EQ(field(out, "status", "200"), 500);
}

TEST(BenchTest, OpenLoopShowsStallInCorrectedP99Only)
{
	NEED_BIN();
	server s;
	s.stall_at = 100; /* about 0.5 s into the run */
	ASSERT_TRUE(s.start());
	std::string out;
	ASSERT_EQ(run_bench({"-c", "2", "-w", "1", "-d", "3s", "--rate", "200", "--json",
			     s.url()},
			    &out),
		  0);
	SCOPED_TRACE(out);
	EXPECT_GE(field(out, "latency", "p99_ns"), 500 * MS);
	EXPECT_GE(field(out, "latency", "max_ns"), 900 * MS);
	EXPECT_LT(field(out, "uncorrected", "p99_ns"), 100 * MS);
	EXPECT_EQ(field(out, "rate", "offered"), 200);
	/* The sender fell behind by about the stall. */
	EXPECT_GE(field(out, "rate", "max_lag_ns"), 500 * MS);
	/* It caught up: nearly all 600 requests were made. */
	EXPECT_GE(field(out, "", "requests"), 550);
}

TEST(BenchTest, ClosedLoopHidesStall)
{
	NEED_BIN();
	server s;
	s.stall_at = 50;
	ASSERT_TRUE(s.start());
	std::string out;
	ASSERT_EQ(run_bench({"-c", "2", "-w", "1", "-d", "2s", "--json", s.url()}, &out), 0);
	SCOPED_TRACE(out);
	EXPECT_GE(field(out, "latency", "max_ns"), 900 * MS);
	EXPECT_LT(field(out, "latency", "p99_ns"), 100 * MS);
}

TEST(BenchTest, SummaryHasWrkLines)
{
	NEED_BIN();
	server s;
	ASSERT_TRUE(s.start());
	std::string out;
	ASSERT_EQ(run_bench({"-c", "2", "-w", "1", "-d", "500ms", s.url()}, &out), 0);
	SCOPED_TRACE(out);
	size_t at = out.find("\nRequests/sec: ");
	ASSERT_NE(at, std::string::npos);
	EXPECT_GT(strtod(out.c_str() + at + 15, nullptr), 0);
	EXPECT_NE(out.find("Latency Distribution"), std::string::npos);
	EXPECT_NE(out.find("\nTransfer/sec: "), std::string::npos);
	EXPECT_NE(out.find("(2 established)"), std::string::npos);
	EXPECT_NE(out.find("Status codes: 200: "), std::string::npos);
}

TEST(BenchTest, RefusedConnectionsAreCountedWithErrno)
{
	NEED_BIN();
	int port;
	{
		server s; /* bound then closed: nobody listens there */
		ASSERT_TRUE(s.start());
		port = s.port;
	}
	std::string out;
	ASSERT_EQ(run_bench({"-c", "1", "-w", "1", "-d", "200ms", "--json",
			     "http://127.0.0.1:" + std::to_string(port) + "/"},
			    &out),
		  0);
	SCOPED_TRACE(out);
	EXPECT_EQ(field(out, "", "established"), 0);
	EXPECT_GT(field(out, "connect", "count"), 0);
	EXPECT_NE(out.find("\"errno\":\"ECONNREFUSED\""), std::string::npos);
}

TEST(BenchTest, BadArgumentsExitTwo)
{
	NEED_BIN();
	std::string out;
	EXPECT_EQ(run_bench({"-c", "0", "http://127.0.0.1:1/"}, &out), 2);
	EXPECT_EQ(run_bench({"-d", "10x", "http://127.0.0.1:1/"}, &out), 2);
	EXPECT_EQ(run_bench({"ftp://x/"}, &out), 2);
	EXPECT_EQ(run_bench({}, &out), 2);
}

} // namespace
