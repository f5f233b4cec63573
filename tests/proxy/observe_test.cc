// SPDX-License-Identifier: MIT
/*
 * observe_test.cc - weft-proxy's observability and accept_proxy end to
 * end: the real binary (WEFT_PROXY_BIN) in front of an echo backend this
 * test serves, its admin listener and its access log file.
 *  - /metrics has every series of docs/proxy.md, and after N connections
 *    the connection counters moved by exactly N and the byte counters by
 *    exactly the bytes sent each way; the histogram counted N connects;
 *  - /stats is one JSON object (checked with python3 when there is one),
 *    /health answers 200, an unknown path 404; the admin listener serves
 *    32 connections at once, the rest waiting in its backlog; a request it
 *    took before SIGTERM is answered before the exit;
 *  - the access log has one JSON line per connection with its bytes;
 *  - the bytes by data path: with data_path = splice a 1 MiB echo moves
 *    spliced both ways, and the buffered and spliced counts of each
 *    direction sum to its bytes counter exactly; afterwards no pipe is in
 *    use and the pool holds the ones used, and nothing fell back; with
 *    data_path = buffered nothing is spliced and the pipe limit is 0;
 *  - accept_proxy: a version 1 and a version 2 header give the client's
 *    address to the log, the bytes after the header reach the backend,
 *    a LOCAL header keeps the real peer, a malformed header closes the
 *    connection without a backend connect, and a missing one times out
 *    (at the frontend's 1 s idle_timeout).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

/* The proxy with an admin listener and an access log file. */
struct admin_proxy : proxy {
	int admin = 0;
	std::string log;

	bool start(const std::string &frontend_extra, int backend_port,
		   const std::string &backend_extra = "")
	{
		port = free_port();
		admin = free_port();
		char lpath[] = "/tmp/weft-proxy-log-XXXXXX";
		close(mkstemp(lpath));
		log = lpath;
		std::string conf = "[global]\nadmin = 127.0.0.1:" + std::to_string(admin) +
				   "\naccess_log = " + log + "\ndrain_timeout = 2s\n\n[frontend f]\nlisten = 127.0.0.1:" +
				   std::to_string(port) + "\nbackend = b\n" + frontend_extra +
				   "\n[backend b]\nconnect_timeout = 1s\nserver s0 = 127.0.0.1:" +
				   std::to_string(backend_port) + "\n" + backend_extra;
		/* Up once the admin listener says so (it binds last). */
		return proxy::start(conf) && wait_line("admin listening on") != "";
	}

	int stop()
	{
		int st = proxy::stop();
		unlink(log.c_str());
		return st;
	}

	/* GET path on the admin listener: the status code, the body in *body. */
	int get(const std::string &path, std::string *body)
	{
		return http_request(admin, "GET", path, body);
	}

	/* The value of the series whose line starts with `series ` in /metrics; -1 if none. */
	double metric(const std::string &series)
	{
		return metric_at(admin, series);
	}

	/* The access log's lines, once there are at least n (within 5 s). */
	std::vector<std::string> log_lines(size_t n)
	{
		std::vector<std::string> lines;
		for (int i = 0; i < 500; i++) {
			lines.clear();
			std::ifstream f(log);
			std::string line;
			while (std::getline(f, line))
				lines.push_back(line);
			if (lines.size() >= n)
				break;
			usleep(10000);
		}
		return lines;
	}

	/* Waits until no connection is open (their counters are final). */
	void settle()
	{
		for (int i = 0; i < 500 && metric("weft_proxy_connections_active") != 0; i++)
			usleep(10000);
	}
};

/* The number after "key": in a log line; -1 if absent. */
long long field_num(const std::string &line, const std::string &key)
{
	size_t at = line.find("\"" + key + "\":");
	return at == std::string::npos ? -1 : atoll(line.c_str() + at + key.size() + 3);
}

/* The string value of "key": in a log line; "" if absent or null. */
std::string field_str(const std::string &line, const std::string &key)
{
	size_t at = line.find("\"" + key + "\":\"");
	if (at == std::string::npos)
		return "";
	at += key.size() + 4;
	return line.substr(at, line.find('"', at) - at);
}

/* Whether python3 reads each line of text as JSON: 1 yes, 0 no, -1 no python3. */
int json_ok(const std::string &text, bool per_line)
{
	if (system("python3 -c 'import json' >/dev/null 2>&1") != 0)
		return -1;
	char path[] = "/tmp/weft-proxy-json-XXXXXX";
	int fd = mkstemp(path);
	EXPECT_EQ(write(fd, text.data(), text.size()), (ssize_t)text.size());
	close(fd);
	std::string cmd = std::string("python3 -c 'import json,sys\n") +
			  (per_line ? "[json.loads(l) for l in open(sys.argv[1])]"
				    : "json.load(open(sys.argv[1]))") +
			  "' " + path + " >/dev/null 2>&1";
	int rc = system(cmd.c_str());
	unlink(path);
	return rc == 0;
}

#define F "{frontend=\"f\"}"
#define S "{backend=\"b\",server=\"s0\"}"
#define B "{backend=\"b\"}"
#define PATH_IN(p) "weft_proxy_frontend_path_bytes_in_total{frontend=\"f\",path=\"" p "\"}"
#define PATH_OUT(p) "weft_proxy_frontend_path_bytes_out_total{frontend=\"f\",path=\"" p "\"}"

TEST(ObserveTest, MetricsMoveByExactlyTheConnectionsAndBytesSent)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("", be.port));
	std::string m;
	ASSERT_EQ(p.get("/metrics", &m), 200);
	for (const char *series :
	     {"weft_proxy_frontend_connections_total" F, "weft_proxy_frontend_connections_active" F,
	      "weft_proxy_frontend_bytes_in_total" F, "weft_proxy_frontend_bytes_out_total" F,
	      "weft_proxy_frontend_no_server_total" F, "weft_proxy_server_connections_total" S,
	      "weft_proxy_server_connections_active" S, "weft_proxy_server_connect_errors_total" S,
	      "weft_proxy_server_bytes_in_total" S, "weft_proxy_server_up" S,
	      "weft_proxy_backend_retries_total" B, "weft_proxy_backend_queue_length" B,
	      "weft_proxy_backend_connect_seconds_bucket{backend=\"b\",le=\"+Inf\"}",
	      "weft_proxy_backend_connect_seconds_count" B, "weft_proxy_backend_queue_seconds_count" B,
	      "weft_proxy_backend_queue_seconds_bucket{backend=\"b\",le=\"30\"}",
	      "weft_proxy_access_log_dropped_total", "weft_proxy_messages_total",
	      "weft_proxy_messages_dropped_total",
	      "weft_runtime_workers", "weft_runtime_tasks_spawned_total", "weft_runtime_steals_total",
	      PATH_IN("buffered"), PATH_IN("spliced"), PATH_OUT("buffered"), PATH_OUT("spliced"),
	      "weft_proxy_server_state{backend=\"b\",server=\"s0\",state=\"ready\"}",
	      "weft_proxy_pipes_in_use", "weft_proxy_pipes_pooled", "weft_proxy_pipes_limit",
	      "weft_proxy_splice_fallbacks_total{reason=\"pipe_limit\"}"})
		EXPECT_NE(m.find(std::string("\n") + series + " "), std::string::npos) << series;
	EXPECT_EQ(p.metric("weft_runtime_workers"), 2);
	EXPECT_EQ(p.metric("weft_proxy_server_up" S), 1);
	double c0 = p.metric("weft_proxy_frontend_connections_total" F);
	double in0 = p.metric("weft_proxy_frontend_bytes_in_total" F);

	const int n = 7;
	uint64_t sent = 0;
	std::vector<size_t> sizes;
	for (int i = 0; i < n; i++) {
		size_t len = 1000u * (size_t)(i + 1) + (size_t)i;
		std::string out(len, (char)('a' + i));
		int fd = dial(p.port);
		ASSERT_GE(fd, 0);
		ASSERT_EQ(send(fd, out.data(), len, MSG_NOSIGNAL), (ssize_t)len);
		shutdown(fd, SHUT_WR);
		EXPECT_EQ(read_all(fd).size(), len + 1);
		close(fd);
		sent += len;
		sizes.push_back(len);
	}
	p.settle();
	EXPECT_EQ(p.metric("weft_proxy_frontend_connections_total" F) - c0, n);
	EXPECT_EQ(p.metric("weft_proxy_frontend_connections_active" F), 0);
	EXPECT_EQ(p.metric("weft_proxy_frontend_bytes_in_total" F) - in0, (double)sent);
	EXPECT_EQ(p.metric("weft_proxy_frontend_bytes_out_total" F), (double)(sent + n));
	EXPECT_EQ(p.metric("weft_proxy_server_connections_total" S), n);
	EXPECT_EQ(p.metric("weft_proxy_server_bytes_in_total" S), (double)sent);
	EXPECT_EQ(p.metric("weft_proxy_server_bytes_out_total" S), (double)(sent + n));
	EXPECT_EQ(p.metric("weft_proxy_backend_connect_seconds_count" B), n);
	EXPECT_EQ(p.metric("weft_proxy_backend_connect_seconds_bucket{backend=\"b\",le=\"+Inf\"}"), n);
	EXPECT_EQ(p.metric("weft_proxy_backend_retries_total" B), 0);

	/* One JSON line per connection, with its bytes (each connection
	 * sent a different count, which names its line). */
	std::vector<std::string> lines = p.log_lines(n);
	ASSERT_EQ(lines.size(), (size_t)n);
	std::string all;
	std::multiset<long long> want(sizes.begin(), sizes.end()), got;
	for (int i = 0; i < n; i++) {
		const std::string &l = lines[(size_t)i];
		all += l + "\n";
		got.insert(field_num(l, "bytes_in"));
		EXPECT_EQ(field_num(l, "bytes_out"), field_num(l, "bytes_in") + 1) << l;
		EXPECT_EQ(field_str(l, "frontend"), "f") << l;
		EXPECT_EQ(field_str(l, "server"), "s0") << l;
		EXPECT_EQ(field_str(l, "server_addr"), "127.0.0.1:" + std::to_string(be.port)) << l;
		EXPECT_EQ(field_str(l, "end"), "closed") << l;
		EXPECT_EQ(field_str(l, "client").rfind("127.0.0.1:", 0), 0u) << l;
		EXPECT_GE(field_num(l, "duration_ms"), 0) << l;
		EXPECT_EQ(field_num(l, "queue_ms"), 0) << l;
		EXPECT_GE(field_num(l, "connect_ms"), 0) << l;
		EXPECT_EQ(field_str(l, "time").size(), 24u) << l; /* 2024-01-02T03:04:05.678Z */
	}
	EXPECT_EQ(got, want);
	int ok = json_ok(all, true);
	if (ok >= 0) {
		EXPECT_EQ(ok, 1) << all;
	}
	EXPECT_EQ(p.metric("weft_proxy_access_log_lines_total"), n);
	EXPECT_EQ(p.metric("weft_proxy_access_log_dropped_total"), 0);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* Bytes count as they are forwarded, not when the connection ends: a long
 * transfer shows on /metrics while it runs. */
TEST(ObserveTest, BytesShowWhileTheConnectionIsStillOpen)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("", be.port));
	int fd = dial(p.port);
	ASSERT_GE(fd, 0);
	char tag;
	ASSERT_EQ(recv(fd, &tag, 1, 0), 1);
	const std::string out(5000, 'x');
	ASSERT_EQ(send(fd, out.data(), out.size(), MSG_NOSIGNAL), (ssize_t)out.size());
	std::string back;
	char buf[8192];
	while (back.size() < out.size()) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		ASSERT_GT(n, 0);
		back.append(buf, (size_t)n);
	}
	/* Still open, and the echo came back through the proxy: both
	 * directions have sent their bytes on (each forwarding task counts
	 * them just after its send, or each part of it, completes, which may
	 * be after the client read them: give them a moment). */
	for (int i = 0; i < 100 && (p.metric("weft_proxy_server_bytes_in_total" S) != 5000 ||
				    p.metric("weft_proxy_frontend_bytes_out_total" F) != 5001);
	     i++)
		usleep(10000);
	EXPECT_EQ(p.metric("weft_proxy_frontend_connections_active" F), 1);
	EXPECT_EQ(p.metric("weft_proxy_frontend_bytes_in_total" F), 5000);
	EXPECT_EQ(p.metric("weft_proxy_frontend_bytes_out_total" F), 5001);
	EXPECT_EQ(p.metric("weft_proxy_server_bytes_in_total" S), 5000);
	EXPECT_EQ(p.metric("weft_proxy_server_bytes_out_total" S), 5001);
	close(fd);
	p.settle();
	/* Ending adds nothing more. */
	EXPECT_EQ(p.metric("weft_proxy_frontend_bytes_in_total" F), 5000);
	EXPECT_EQ(p.metric("weft_proxy_server_bytes_out_total" S), 5001);
	EXPECT_EQ(p.stop(), 0);
}

TEST(ObserveTest, StatsIsJsonHealthAnswers200AndOtherPaths404)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("", be.port));
	int fd = dial(p.port);
	ASSERT_GE(fd, 0);
	shutdown(fd, SHUT_WR);
	EXPECT_EQ(read_all(fd), "t");
	close(fd);
	p.settle();
	std::string body;
	ASSERT_EQ(p.get("/stats", &body), 200);
	EXPECT_EQ(body.front(), '{');
	EXPECT_NE(body.find("\"connections_total\":1,"), std::string::npos) << body;
	EXPECT_NE(body.find("\"name\":\"s0\""), std::string::npos) << body;
	EXPECT_NE(body.find("\"runtime\":{\"workers\":2,"), std::string::npos) << body;
	int ok = json_ok(body, false);
	if (ok >= 0) {
		EXPECT_EQ(ok, 1) << body;
	}
	EXPECT_EQ(p.get("/health", &body), 200);
	EXPECT_EQ(body, "ok\n");
	EXPECT_EQ(p.get("/metrics?x=1", nullptr), 200);
	EXPECT_EQ(p.get("/nowhere", nullptr), 404);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* The admin listener serves 32 connections at once: a 33rd waits, unread,
 * in the backlog while 32 clients say nothing, and is answered as soon as
 * one of them leaves. */
TEST(ObserveTest, TheAdminListenerServes32ConnectionsAtOnce)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("", be.port));
	std::vector<int> idle;
	for (int i = 0; i < 32; i++) {
		idle.push_back(dial(p.admin));
		ASSERT_GE(idle.back(), 0);
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(100)); /* all taken */
	int late = dial(p.admin);
	ASSERT_GE(late, 0);
	const char req[] = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
	ASSERT_EQ(send(late, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
	struct pollfd pf = {late, POLLIN, 0};
	EXPECT_EQ(poll(&pf, 1, 300), 0) << "the 33rd connection was served beside 32";
	close(idle.back());
	idle.pop_back();
	EXPECT_EQ(poll(&pf, 1, 3000), 1) << "a slot came free";
	char buf[256] = {};
	ssize_t n = recv(late, buf, sizeof(buf) - 1, 0);
	EXPECT_GT(n, 0);
	EXPECT_EQ(std::string(buf).rfind("HTTP/1.1 200", 0), 0u) << buf;
	close(late);
	for (int fd : idle)
		close(fd);
	std::string body;
	EXPECT_EQ(p.get("/health", &body), 200);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A request the admin listener took before SIGTERM, still coming in when
 * the drain (of no connection) is over, is answered before the exit: 503,
 * draining. */
TEST(ObserveTest, ARequestTakenBeforeTheExitIsAnswered)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("", be.port));
	int fd = dial(p.admin);
	ASSERT_GE(fd, 0);
	const char head[] = "GET /health HTTP/1.1\r\n", rest[] = "Host: a\r\n\r\n";
	ASSERT_EQ(send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(head) - 1);
	std::this_thread::sleep_for(std::chrono::milliseconds(100)); /* taken */
	kill(p.pid, SIGTERM);
	EXPECT_NE(p.wait_line("stopped;", 5000), "");
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	ASSERT_EQ(send(fd, rest, sizeof(rest) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(rest) - 1);
	std::string answer = read_all(fd);
	close(fd);
	EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
	int st = p.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	p.stop();
}

/* Sends len bytes through p to the echo backend and reads them back (and
 * the tag): whether all came back. */
bool echo_through(admin_proxy &p, size_t len)
{
	int fd = dial(p.port);
	if (fd < 0)
		return false;
	std::string out(len, 'q');
	/* The reader on its own thread: the echo comes back while the
	 * client still sends. */
	std::string in;
	std::thread reader([&] { in = read_all(fd); });
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, out.data() + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	reader.join();
	close(fd);
	return in.size() == len + 1 && in.compare(1, len, out) == 0;
}

TEST(ObserveTest, SplicedAndBufferedBytesAreCountedApartAndSumToTheTotals)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("", be.port, "data_path = splice\n"));
	EXPECT_GT(p.metric("weft_proxy_pipes_limit"), 0);
	const size_t len = 1u << 20;
	ASSERT_TRUE(echo_through(p, len));
	p.settle();
	double in_b = p.metric(PATH_IN("buffered")), in_s = p.metric(PATH_IN("spliced"));
	double out_b = p.metric(PATH_OUT("buffered")), out_s = p.metric(PATH_OUT("spliced"));
	EXPECT_EQ(p.metric("weft_proxy_frontend_bytes_in_total" F), (double)len);
	EXPECT_EQ(in_b + in_s, (double)len);
	EXPECT_EQ(out_b + out_s, (double)len + 1);
	/* Beyond the watch's first 4 KiB of each burst, splice moves it all. */
	EXPECT_GT(in_s, 0);
	EXPECT_GT(out_s, 0);
	/* Every pipe went back to a pool, none fell back to a buffer. */
	EXPECT_EQ(p.metric("weft_proxy_pipes_in_use"), 0);
	EXPECT_GE(p.metric("weft_proxy_pipes_pooled"), 1);
	EXPECT_EQ(p.metric("weft_proxy_splice_fallbacks_total{reason=\"pipe_limit\"}"), 0);
	EXPECT_EQ(p.metric("weft_proxy_splice_fallbacks_total{reason=\"pipe_error\"}"), 0);
	std::string body;
	ASSERT_EQ(p.get("/stats", &body), 200);
	char want[160];
	snprintf(want, sizeof(want), "\"bytes_in_buffered\":%.0f,\"bytes_in_spliced\":%.0f,", in_b, in_s);
	EXPECT_NE(body.find(want), std::string::npos) << want << "\n" << body;
	EXPECT_NE(body.find("\"pipes\":{\"in_use\":0,"), std::string::npos) << body;
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ObserveTest, WithDataPathBufferedNothingIsSpliced)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("", be.port, "data_path = buffered\n"));
	const size_t len = 1u << 20;
	ASSERT_TRUE(echo_through(p, len));
	p.settle();
	EXPECT_EQ(p.metric(PATH_IN("buffered")), (double)len);
	EXPECT_EQ(p.metric(PATH_IN("spliced")), 0);
	EXPECT_EQ(p.metric(PATH_OUT("buffered")), (double)len + 1);
	EXPECT_EQ(p.metric(PATH_OUT("spliced")), 0);
	/* No backend splices: no pipe may exist. */
	EXPECT_EQ(p.metric("weft_proxy_pipes_limit"), 0);
	EXPECT_EQ(p.metric("weft_proxy_pipes_pooled"), 0);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* Sends header + payload in one write, ends the stream, returns the echo. */
std::string through(int port, const std::string &header, const std::string &payload)
{
	int fd = dial(port);
	if (fd < 0)
		return "connect failed";
	std::string out = header + payload;
	send(fd, out.data(), out.size(), MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	std::string in = read_all(fd);
	close(fd);
	return in;
}

std::string v2_tcp4(const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
	std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
	h += (char)0x21; /* version 2, PROXY */
	h += (char)0x11; /* TCP over IPv4 */
	h += (char)0;
	h += (char)12;
	struct in_addr a;
	inet_pton(AF_INET, src, &a);
	h.append((const char *)&a, 4);
	inet_pton(AF_INET, dst, &a);
	h.append((const char *)&a, 4);
	uint16_t p = htons(sport);
	h.append((const char *)&p, 2);
	p = htons(dport);
	h.append((const char *)&p, 2);
	return h;
}

TEST(AcceptProxyTest, HeadersGiveTheClientAddressAndTheRestReachesTheBackend)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("accept_proxy = on\nidle_timeout = 1s\n", be.port));
	/* Version 1, the first bytes in the same segment as the header. */
	EXPECT_EQ(through(p.port, "PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n", "hello"), "thello");
	/* Version 2. */
	EXPECT_EQ(through(p.port, v2_tcp4("198.51.100.7", 6000, "198.51.100.8", 443), "world!"),
		  "tworld!");
	/* Version 2 LOCAL (a health check of the balancer): the real peer. */
	std::string local("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16);
	EXPECT_EQ(through(p.port, local, "x"), "tx");
	/* A header split in two segments is read whole. */
	{
		int fd = dial(p.port);
		ASSERT_GE(fd, 0);
		send(fd, "PROXY TCP6 2001:db8::1 ", 23, MSG_NOSIGNAL);
		usleep(50000);
		send(fd, "2001:db8::2 7 8\r\nsplit it", 25, MSG_NOSIGNAL);
		shutdown(fd, SHUT_WR);
		EXPECT_EQ(read_all(fd), "tsplit it");
		close(fd);
	}
	/* Each connection sent a different count after its header, which
	 * names its line. */
	std::vector<std::string> lines = p.log_lines(4);
	ASSERT_EQ(lines.size(), 4u);
	auto by_bytes = [&](long long n) {
		for (auto &l : lines)
			if (field_num(l, "bytes_in") == n)
				return l;
		return std::string();
	};
	std::string l = by_bytes(5);
	EXPECT_EQ(field_str(l, "client"), "192.0.2.1:5555") << l;
	EXPECT_EQ(field_str(l, "peer").rfind("127.0.0.1:", 0), 0u) << l;
	l = by_bytes(6);
	EXPECT_EQ(field_str(l, "client"), "198.51.100.7:6000") << l;
	l = by_bytes(1);
	EXPECT_EQ(field_str(l, "client").rfind("127.0.0.1:", 0), 0u) << l;
	EXPECT_EQ(field_str(l, "client"), field_str(l, "peer")) << l;
	l = by_bytes(8);
	EXPECT_EQ(field_str(l, "client"), "[2001:db8::1]:7") << l;
	/* The bytes after a header went on from the session's buffer: they
	 * count as buffered, and the paths still sum to the total. */
	p.settle();
	EXPECT_EQ(p.metric(PATH_IN("buffered")) + p.metric(PATH_IN("spliced")),
		  p.metric("weft_proxy_frontend_bytes_in_total" F));
	EXPECT_EQ(p.metric("weft_proxy_frontend_bytes_in_total" F), 5 + 6 + 1 + 8);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(AcceptProxyTest, AMalformedHeaderClosesAndAMissingOneTimesOut)
{
	NEED_PROXY();
	backend be('t');
	admin_proxy p;
	ASSERT_TRUE(p.start("accept_proxy = on\nidle_timeout = 1s\n", be.port));
	/* Not a PROXY header: closed at once, the backend never dialled. */
	auto t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(through(p.port, "GET / HTTP/1.1\r\n\r\n", ""), "");
	EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));
	/* A version 1 header with a bad address. */
	EXPECT_EQ(through(p.port, "PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", "x"), "");
	/* Nothing at all: closed at the frontend's idle_timeout (1 s). */
	int fd = dial(p.port);
	ASSERT_GE(fd, 0);
	t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(read_all(fd), "");
	auto waited = std::chrono::steady_clock::now() - t0;
	close(fd);
	EXPECT_GE(waited, std::chrono::milliseconds(900));
	EXPECT_LT(waited, std::chrono::milliseconds(3000));
	p.settle();
	EXPECT_EQ(be.accepted.load(), 0);
	EXPECT_EQ(p.metric("weft_proxy_frontend_proxy_header_errors_total" F), 2);
	EXPECT_EQ(p.metric("weft_proxy_frontend_proxy_header_timeouts_total" F), 1);
	EXPECT_EQ(p.metric("weft_proxy_frontend_connections_total" F), 3);
	std::vector<std::string> lines = p.log_lines(3);
	ASSERT_EQ(lines.size(), 3u);
	EXPECT_EQ(field_str(lines[0], "end"), "proxy_header_error") << lines[0];
	EXPECT_EQ(field_str(lines[1], "end"), "proxy_header_error") << lines[1];
	EXPECT_EQ(field_str(lines[2], "end"), "proxy_header_timeout") << lines[2];
	EXPECT_NE(lines[2].find("\"server\":null,\"server_addr\":null"), std::string::npos)
		<< lines[2];
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

} // namespace
