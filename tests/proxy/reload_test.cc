// SPDX-License-Identifier: MIT
/*
 * reload_test.cc - weft-proxy's reload (SIGHUP) and binary upgrade
 * (--upgrade-from) end to end, on the real binary (WEFT_PROXY_BIN) with
 * harness.h.  A client opens connections at a constant rate (200/s) and
 * checks every reply while:
 *  - SIGHUP is sent again and again with configurations that add and
 *    remove a server and a frontend listener: no connection fails, the
 *    added listener accepts and the removed one refuses, the added server
 *    gets connections;
 *  - new processes take over with --upgrade-from again and again: no
 *    connection fails and each old process exits 0 by itself;
 * and besides:
 *  - a broken configuration on SIGHUP is reported with FILE:LINE, and so are
 *    a listen address that will not bind and a server name that does not
 *    resolve; the old configuration keeps serving and /metrics counts the
 *    failures; at start, such a name stops the proxy, with its line;
 *  - a reload that waits on its files (a configuration, an access log that
 *    are FIFOs with nobody at the other end yet) leaves the only worker
 *    proxying meanwhile;
 *  - a reload moves the admin listener to a new address (the old one
 *    stops answering), turns it off, and with an address that will not
 *    bind fails as a whole, the running listener still answering; it
 *    moves the control socket (upgrade_socket) too, and an upgrade through
 *    the new path takes over;
 *  - a reload opens the access log file again: after a rotation (the file
 *    renamed away) the lines go to a new file of the same name, and to a
 *    new name when the path changed; none is lost or doubled; and it
 *    turns the access log on (its writer made at the first time) and off
 *    (the file let go), lines written exactly while it is on;
 *  - a reload's descriptor limits count the workers that run, not a
 *    changed `workers` line (which needs a restart);
 *  - a server's health state (verdict and counts) survives a reload, and
 *    its max_connections counts connections from before it: a new one
 *    waits for them, and goes as soon as one ends; a backend's queue_size
 *    bounds the waiters of both generations together; a reloaded limit
 *    applies to every generation, the waiters from before included;
 *  - a long connection keeps flowing through a reload that removes its
 *    server and through an upgrade (served by the old process while it
 *    drains, which then exits 0 once it closes);
 *  - a new process that fails before it is ready leaves the old one
 *    running; one that moves the admin listener has the old address
 *    closed once the old process hands over, while it still drains;
 *  - a new process takes over from an old one that speaks version 1 of
 *    the hand-over (no state lines), and refuses a version it does not
 *    know before taking anything;
 *  - a new process that gets no "ok" after its "ready" while the old one
 *    lives steps back (exits 1, the old one's sockets untouched, MAINPID=
 *    of the old one to the service manager, no STOPPING=1); with the
 *    "ok" it serves, and with the old one gone it goes on alone; it serves
 *    the control socket only once confirmed, so a third process that
 *    connects meanwhile is left to the old one when it steps back; a listening socket handed over blocking
 *    is made nonblocking (else a worker would sleep in accept4 and the
 *    proxy could not stop);
 *  - SIGUSR2 makes the proxy start its own program file to take over, under
 *    load, without a failed connection; a child that fails is reaped and
 *    its status said;
 *  - with NOTIFY_SOCKET: RELOADING=1 with MONOTONIC_USEC then READY=1 around
 *    a reload (a refused one too), MAINPID= of the new process with READY=1
 *    after an upgrade, and no STOPPING=1 from the old one.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

using namespace std::chrono;

void write_file(const std::string &path, const std::string &text)
{
	std::ofstream out(path, std::ios::trunc);
	out << text;
}

/* One short connection: the server's tag (one of tags), then the echo of
 * what was sent.  "" when all is well, else what went wrong. */
std::string exchange(int port, const std::string &tags, int n)
{
	int fd = dial(port);
	if (fd < 0)
		return std::string("connect: ") + strerror(errno);
	std::string msg = "hello " + std::to_string(n) + "\n";
	send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	std::string in = read_all(fd);
	int e = errno;
	close(fd);
	if (in.size() != msg.size() + 1 || tags.find(in[0]) == std::string::npos ||
	    in.substr(1) != msg)
		return "reply \"" + in + "\" (" + strerror(e) + ")";
	return "";
}

/* Runs probe(n) at a constant rate (every 5 ms, on a fixed schedule) on a
 * thread of its own until stopped; counts and keeps the failures (what
 * probe returns when not ""). */
struct load {
	std::function<std::string(int)> probe;
	std::atomic<bool> halt{false};
	std::atomic<int> ok{0};
	std::vector<std::string> failures;
	std::thread t;

	/* Connections to port, each checked by exchange. */
	load(int port, std::string tags)
		: load([port, tags](int n) { return exchange(port, tags, n); })
	{
	}

	explicit load(std::function<std::string(int)> p) : probe(std::move(p))
	{
		t = std::thread([this] {
			auto next = steady_clock::now();
			for (int i = 0; !halt; i++) {
				std::string why = probe(i);
				if (why.empty())
					ok++;
				else
					failures.push_back(why);
				next += milliseconds(5);
				std::this_thread::sleep_until(next);
			}
		});
	}

	void stop()
	{
		halt = true;
		t.join();
	}

	~load()
	{
		if (t.joinable())
			stop(); /* a test that failed early */
	}
};

/* GET path from the admin listener at port: the body, or "". */
std::string http_get(int port, const char *path)
{
	int fd = dial(port);
	if (fd < 0)
		return "";
	std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
	send(fd, req.data(), req.size(), MSG_NOSIGNAL);
	std::string in = read_all(fd);
	close(fd);
	size_t body = in.find("\r\n\r\n");
	return body == std::string::npos ? "" : in.substr(body + 4);
}

/* The number after "key": in the object of /stats that holds "name":"server". */
long stats_field(const std::string &stats, const std::string &server, const std::string &key)
{
	size_t at = stats.find("\"name\":\"" + server + "\"");
	if (at == std::string::npos)
		return -1;
	size_t k = stats.find("\"" + key + "\":", at);
	if (k == std::string::npos)
		return -1;
	std::string v = stats.substr(k + key.size() + 3, 8);
	if (v.rfind("true", 0) == 0)
		return 1;
	if (v.rfind("false", 0) == 0)
		return 0;
	return std::stol(v);
}

/* Whether a connection to port is refused (nothing listens there). */
bool refused(int port)
{
	int fd = dial(port);
	if (fd >= 0)
		close(fd);
	return fd < 0;
}

std::string frontend(const char *name, int port)
{
	return std::string("[frontend ") + name + "]\nlisten = 127.0.0.1:" + std::to_string(port) +
	       "\nbackend = app\n";
}

std::string server(const char *name, int port)
{
	return std::string("server ") + name + " = 127.0.0.1:" + std::to_string(port) + "\n";
}

/* Frontend web on port to server s0 on server_port, with the control
 * socket sock and no access log. */
std::string upgrade_conf(const std::string &sock, int port, int server_port)
{
	return "[global]\naccess_log = off\nupgrade_socket = " + sock + "\n" +
	       frontend("web", port) + "\n[backend app]\n" + server("s0", server_port);
}

/* Starts p on upgrade_conf and waits until its control socket listens. */
bool start_upgradable(proxy &p, const std::string &sock, int port, int server_port)
{
	return p.start(upgrade_conf(sock, port, server_port)) &&
	       p.wait_line("upgrade socket on", 5000) != "";
}

/* Sends p SIGUSR2: the pid of the child it says it started, or -1. */
pid_t sigusr2_child(proxy &p)
{
	kill(p.pid, SIGUSR2);
	std::string line = p.wait_line("to take over", 5000);
	size_t at = line.find("as pid ");
	return at == std::string::npos ? -1 : (pid_t)std::stol(line.substr(at + 7));
}

/* A control socket path of this test process's own. */
std::string upgrade_path(const char *what)
{
	return "/tmp/weft-proxy-upgrade-" + std::to_string(getpid()) + "-" + what + ".sock";
}

TEST(ReloadTest, RepeatedReloadsUnderConstantLoadFailNoConnection)
{
	NEED_PROXY();
	backend a('a'), b('b'), c('c');
	int port = free_port(), extra = free_port();
	std::string global = "[global]\naccess_log = off\n";
	/* A: servers a and b; B: a and c, a second frontend, a frontend limit. */
	std::string conf_a = global + frontend("web", port) + "\n[backend app]\n" +
			     server("s0", a.port) + server("s1", b.port);
	std::string conf_b = global + frontend("web", port) + "max_connections = 500\n" +
			     frontend("more", extra) + "\n[backend app]\n" + server("s0", a.port) +
			     server("s2", c.port);
	proxy p;
	ASSERT_TRUE(p.start(conf_a));
	ASSERT_NE(p.wait_line("listening on", 5000), "");
	load l(port, "abc");
	for (int i = 0; i < 16; i++) {
		bool b_now = i % 2 == 0;
		write_file(p.file, b_now ? conf_b : conf_a);
		kill(p.pid, SIGHUP);
		std::string line = p.wait_line("reloaded", 5000);
		ASSERT_NE(line, "") << "reload " << i;
		EXPECT_NE(line.find("generation " + std::to_string(i + 2)), std::string::npos) << line;
		if (b_now)
			EXPECT_EQ(exchange(extra, "ac", i), "") << "the added listener, reload " << i;
		else
			EXPECT_TRUE(refused(extra)) << "the removed listener, reload " << i;
		std::this_thread::sleep_for(milliseconds(150));
	}
	l.stop();
	EXPECT_TRUE(l.failures.empty()) << l.failures.size() << " failed, first: " << l.failures[0];
	EXPECT_GT(l.ok, 200);
	EXPECT_GT(c.accepted, 0); /* the added server took connections */
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A reload's limits count the workers that run, not a new `workers` line
 * (which needs a restart): under a descriptor limit of 200, 1,000
 * connections are clamped to (200 - 70) / 2 = 65 with the 2 workers
 * running, before and after a reload that asks for 40 (with 40 it would be
 * (200 - 146) / 2 = 27). */
TEST(ReloadTest, AReloadSizesItsLimitsForTheWorkersThatRun)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	auto conf = [&](int workers) {
		return "[global]\nworkers = " + std::to_string(workers) +
		       "\nmax_connections = 1000\naccess_log = off\n" + frontend("web", port) +
		       "\n[backend app]\ndata_path = buffered\n" + server("s0", a.port);
	};
	proxy p;
	ASSERT_TRUE(p.start(conf(2)));
	ASSERT_NE(p.wait_line("listening on", 5000), "");
	struct rlimit saved, tight;
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, nullptr, &saved), 0);
	tight = {200, saved.rlim_max};
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, &tight, nullptr), 0);
	write_file(p.file, conf(40));
	kill(p.pid, SIGHUP);
	EXPECT_NE(p.wait_line("workers changed: needs a restart", 5000), "");
	std::string line = p.wait_line("max_connections 1000 needs", 5000);
	EXPECT_NE(line.find("needs 2070 descriptors, but the limit is 200: using 65"),
		  std::string::npos)
		<< line;
	EXPECT_NE(p.wait_line("reloaded", 5000), "");
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, &saved, nullptr), 0);
	EXPECT_EQ(exchange(port, "a", 0), "");
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* GET /health from the admin listener at port: "" when it was answered
 * (200, or 503 from a process that drains) within a second, else why. */
std::string health_answered(int port)
{
	int fd = dial(port);
	if (fd < 0)
		return std::string("admin connect: ") + strerror(errno);
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
	send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
	std::string in = read_all(fd);
	int e = errno;
	close(fd);
	if (in.rfind("HTTP/1.1 200 ", 0) != 0 && in.rfind("HTTP/1.1 503 ", 0) != 0)
		return "admin reply \"" + in + "\" (" + strerror(e) + ")";
	return "";
}

/* Connections through the proxy and requests to its admin listener, both
 * at a constant rate across 8 upgrades: none fails, none goes unanswered. */
TEST(ReloadTest, RepeatedUpgradesUnderConstantLoadFailNoConnection)
{
	NEED_PROXY();
	backend a('a'), b('b');
	int port = free_port(), admin = free_port();
	std::string sock = upgrade_path("load");
	std::string conf = "[global]\naccess_log = off\ndrain_timeout = 5s\nupgrade_socket = " + sock +
			   "\nadmin = 127.0.0.1:" + std::to_string(admin) + "\n" +
			   frontend("web", port) + "\n[backend app]\n" + server("s0", a.port) +
			   server("s1", b.port);
	std::vector<proxy> gens(9);
	ASSERT_TRUE(gens[0].start(conf));
	ASSERT_NE(gens[0].wait_line("upgrade socket on", 5000), "");
	std::string file = gens[0].file;
	load l(port, "ab");
	load pages([admin](int) { return health_answered(admin); });
	std::this_thread::sleep_for(milliseconds(200));
	for (size_t i = 1; i < gens.size(); i++) {
		proxy &old = gens[i - 1], &next = gens[i];
		next.file = file;
		ASSERT_TRUE(next.launch({"-c", file, "--upgrade-from", sock}));
		ASSERT_NE(next.wait_line("sockets taken over", 5000), "") << "upgrade " << i;
		ASSERT_NE(old.wait_line("accepts on the sockets now", 5000), "") << "upgrade " << i;
		int st = old.wait_exit(3000); /* its connections are short */
		EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << "upgrade " << i << ": " << st;
		close(old.err);
		std::this_thread::sleep_for(milliseconds(200));
	}
	l.stop();
	pages.stop();
	EXPECT_TRUE(l.failures.empty()) << l.failures.size() << " failed, first: " << l.failures[0];
	EXPECT_GT(l.ok, 200);
	EXPECT_TRUE(pages.failures.empty())
		<< pages.failures.size() << " failed, first: " << pages.failures[0];
	EXPECT_GT(pages.ok, 200);
	int st = gens.back().stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_NE(access(sock.c_str(), F_OK), 0) << "the control socket's file is removed at the end";
}

TEST(ReloadTest, AReloadMovesTheAdminListener)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port(), first = free_port(), second;
	do
		second = free_port();
	while (second == first || second == port);
	auto conf = [&](const std::string &admin) {
		return "[global]\naccess_log = off\n" + admin + frontend("web", port) +
		       "\n[backend app]\n" + server("s0", a.port);
	};
	proxy p;
	ASSERT_TRUE(p.start(conf("admin = 127.0.0.1:" + std::to_string(first) + "\n")));
	ASSERT_NE(p.wait_line("admin listening on", 5000), "");
	std::string body;
	ASSERT_EQ(http_request(first, "GET", "/health", &body), 200);

	/* Moved: the new address answers, the old one is closed. */
	write_file(p.file, conf("admin = 127.0.0.1:" + std::to_string(second) + "\n"));
	kill(p.pid, SIGHUP);
	std::string moved = p.wait_line("admin listening on", 5000);
	EXPECT_NE(moved.find("127.0.0.1:" + std::to_string(second)), std::string::npos) << moved;
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	EXPECT_EQ(http_request(second, "GET", "/health", &body), 200);
	EXPECT_EQ(http_request(first, "GET", "/health", &body), -1);

	/* An address that will not bind: the whole reload fails, and the
	 * running listener goes on. */
	int busy_port;
	int busy = listen_loopback(0, &busy_port);
	write_file(p.file, conf("admin = 127.0.0.1:" + std::to_string(busy_port) + "\n"));
	kill(p.pid, SIGHUP);
	std::string failed = p.wait_line("reload failed", 5000);
	EXPECT_NE(failed.find("admin 127.0.0.1:" + std::to_string(busy_port)), std::string::npos)
		<< failed;
	EXPECT_EQ(http_request(second, "GET", "/health", &body), 200);
	close(busy);

	/* Off. */
	write_file(p.file, conf(""));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("admin listener off", 5000), "");
	EXPECT_EQ(http_request(second, "GET", "/health", &body), -1);
	EXPECT_EQ(exchange(port, "a", 0), "") << "the frontend serves throughout";
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* The lines of the file at path (0 if none). */
int count_lines(const std::string &path)
{
	std::ifstream f(path);
	std::string line;
	int n = 0;
	while (std::getline(f, line))
		n += !line.empty();
	return n;
}

/* Waits up to 5 s for the file at path to hold n lines: its count then. */
int await_lines(const std::string &path, int n)
{
	for (int i = 0; i < 500 && count_lines(path) < n; i++)
		std::this_thread::sleep_for(milliseconds(10));
	return count_lines(path);
}

TEST(ReloadTest, AReloadOpensTheAccessLogAgainAfterARotation)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	std::string base = "/tmp/weft-proxy-log-" + std::to_string(getpid());
	std::string log = base + ".log", rotated = base + ".log.1", other = base + "-other.log";
	for (auto &f : {log, rotated, other})
		unlink(f.c_str());
	auto conf = [&](const std::string &path) {
		return "[global]\naccess_log = " + path + "\n" + frontend("web", port) +
		       "\n[backend app]\n" + server("s0", a.port);
	};
	proxy p;
	ASSERT_TRUE(p.start(conf(log)));
	ASSERT_NE(p.wait_line("listening on", 5000), "");
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(exchange(port, "a", i), "");
	EXPECT_EQ(await_lines(log, 3), 3);

	/* Rotated: renamed away, then SIGHUP, as logrotate's postrotate does. */
	ASSERT_EQ(rename(log.c_str(), rotated.c_str()), 0);
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(exchange(port, "a", i), "");
	EXPECT_EQ(await_lines(log, 4), 4) << "the lines after the reload, in a new file";
	EXPECT_EQ(count_lines(rotated), 3) << "the rotated file keeps what it had";

	/* A new path. */
	write_file(p.file, conf(other));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	for (int i = 0; i < 2; i++)
		EXPECT_EQ(exchange(port, "a", i), "");
	EXPECT_EQ(await_lines(other, 2), 2);
	EXPECT_EQ(count_lines(log), 4);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	for (auto &f : {log, rotated, other})
		unlink(f.c_str());
}

/* access_log from off to a file, back to off, and on again: lines are
 * written exactly while it is on, the file is let go while it is off, and
 * the counters carry across. */
TEST(ReloadTest, AReloadTurnsTheAccessLogOnAndOff)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port(), admin = free_port();
	std::string log = "/tmp/weft-proxy-onoff-" + std::to_string(getpid()) + ".log";
	unlink(log.c_str());
	auto conf = [&](const std::string &access) {
		return "[global]\naccess_log = " + access + "\nadmin = 127.0.0.1:" +
		       std::to_string(admin) + "\n" + frontend("web", port) + "\n[backend app]\n" +
		       server("s0", a.port);
	};
	proxy p;
	ASSERT_TRUE(p.start(conf("off")));
	ASSERT_NE(p.wait_line("admin listening on", 5000), "");
	EXPECT_EQ(exchange(port, "a", 0), "");
	EXPECT_EQ(metric_at(admin, "weft_proxy_access_log_lines_total"), -1) << "no log yet";

	write_file(p.file, conf(log));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("access log on", 5000), "");
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(exchange(port, "a", i), "");
	EXPECT_EQ(await_lines(log, 3), 3);

	write_file(p.file, conf("off"));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("access log off", 5000), "");
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	for (int i = 0; i < 2; i++)
		EXPECT_EQ(exchange(port, "a", i), "");
	/* The file is let go: no descriptor of the proxy's points at it. */
	bool held = true;
	for (int i = 0; i < 200 && held; i++) {
		held = false;
		std::string dir = "/proc/" + std::to_string(p.pid) + "/fd";
		if (DIR *d = opendir(dir.c_str())) {
			while (struct dirent *e = readdir(d)) {
				char target[4096];
				ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
				if (n > 0 && std::string(target, (size_t)n) == log)
					held = true;
			}
			closedir(d);
		}
		if (held)
			usleep(10000);
	}
	EXPECT_FALSE(held) << "the log file is still open after the log was turned off";

	write_file(p.file, conf(log));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("access log on", 5000), "");
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	EXPECT_EQ(exchange(port, "a", 9), "");
	EXPECT_EQ(await_lines(log, 4), 4) << "3 before, none while off, 1 after";
	EXPECT_EQ(metric_at(admin, "weft_proxy_access_log_lines_total"), 4);
	EXPECT_EQ(metric_at(admin, "weft_proxy_access_log_dropped_total"), 0);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(count_lines(log), 4);
	unlink(log.c_str());
}

/* upgrade_socket moves with a reload: the new socket is bound before the
 * commit (a path that will not bind fails the reload, the old socket still
 * there), the old one's file goes, and an upgrade through the new path
 * takes over; a reload without it turns it off. */
TEST(ReloadTest, AReloadMovesTheControlSocket)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	std::string first = upgrade_path("move1"), second = upgrade_path("move2");
	auto conf = [&](const std::string &sock) {
		return "[global]\naccess_log = off\n" +
		       (sock.empty() ? std::string() : "upgrade_socket = " + sock + "\n") +
		       frontend("web", port) + "\n[backend app]\n" + server("s0", a.port);
	};
	proxy p;
	ASSERT_TRUE(p.start(conf(first)));
	ASSERT_NE(p.wait_line("upgrade socket on", 5000), "");
	EXPECT_EQ(exchange(port, "a", 0), "");

	write_file(p.file, conf("/nonexistent-dir/weft.sock"));
	kill(p.pid, SIGHUP);
	std::string line = p.wait_line("reload failed", 5000);
	EXPECT_NE(line.find(p.file + ":3: upgrade_socket /nonexistent-dir/weft.sock"),
		  std::string::npos) << line;
	EXPECT_EQ(access(first.c_str(), F_OK), 0) << "the running socket stays";

	write_file(p.file, conf(second));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line(("reload: upgrade socket on " + second).c_str(), 5000), "");
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	EXPECT_NE(access(first.c_str(), F_OK), 0) << "the old socket's file is left behind";
	EXPECT_EQ(exchange(port, "a", 1), "");

	/* An upgrade through the new path takes over. */
	proxy next;
	next.file = p.file;
	ASSERT_TRUE(next.launch({"-c", p.file, "--upgrade-from", second}));
	ASSERT_NE(next.wait_line("sockets taken over", 5000), "");
	ASSERT_NE(p.wait_line("accepts on the sockets now", 5000), "");
	int st = p.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(p.err);
	EXPECT_EQ(exchange(port, "a", 2), "") << "served by the new process";

	/* And turned off by a reload of the new one. */
	write_file(next.file, conf(""));
	kill(next.pid, SIGHUP);
	ASSERT_NE(next.wait_line("reload: upgrade socket off", 5000), "");
	ASSERT_NE(next.wait_line("reloaded", 5000), "");
	EXPECT_NE(access(second.c_str(), F_OK), 0);
	st = next.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ReloadTest, BrokenConfigurationIsReportedAndTheOldOneKeepsServing)
{
	NEED_PROXY();
	backend a('a'), b('b');
	int port = free_port(), admin = free_port();
	std::string global = "[global]\naccess_log = off\nadmin = 127.0.0.1:" +
			     std::to_string(admin) + "\n";
	std::string good = global + frontend("web", port) + "\n[backend app]\n" + server("s0", a.port);
	proxy p;
	ASSERT_TRUE(p.start(good));
	ASSERT_NE(p.wait_line("admin listening on", 5000), "");
	/* Line 7 holds an unknown key: the whole reload is refused. */
	write_file(p.file, global + frontend("web", port) + "bogus = 1\n\n[backend app]\n" +
				   server("s0", b.port));
	kill(p.pid, SIGHUP);
	std::string line = p.wait_line("reload failed", 5000);
	EXPECT_NE(line.find(p.file + ":7: unknown key \"bogus\""), std::string::npos) << line;
	EXPECT_NE(line.find("the running configuration stays"), std::string::npos) << line;
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(exchange(port, "a", i), "") << "still server a";
	/* A listen address in use fails the reload whole, with its line. */
	int busy_port;
	int busy = listen_loopback(0, &busy_port);
	write_file(p.file, global + frontend("web", port) + frontend("taken", busy_port) +
				   "\n[backend app]\n" + server("s0", b.port));
	kill(p.pid, SIGHUP);
	line = p.wait_line("listen", 5000);
	EXPECT_NE(line.find(p.file + ":8: listen 127.0.0.1:" + std::to_string(busy_port) +
			    ": Address already in use"), std::string::npos) << line;
	EXPECT_NE(p.wait_line("reload failed", 5000), "");
	close(busy);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(exchange(port, "a", i), "") << "still server a";
	/* So does a server whose host name does not resolve (line 9). */
	write_file(p.file, global + frontend("web", port) +
				   "\n[backend app]\nserver s0 = nonexistent.invalid:80\n");
	kill(p.pid, SIGHUP);
	line = p.wait_line("nonexistent.invalid", 20000);
	EXPECT_NE(line.find(p.file + ":9: server s0 = nonexistent.invalid:80: "), std::string::npos)
		<< line;
	EXPECT_NE(p.wait_line("reload failed", 5000), "");
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(exchange(port, "a", i), "") << "still server a";
	std::string metrics = http_get(admin, "/metrics");
	EXPECT_NE(metrics.find("weft_proxy_reload_failures_total 3\n"), std::string::npos) << metrics;
	EXPECT_NE(metrics.find("weft_proxy_reloads_total 0\n"), std::string::npos);
	/* Fixed, it takes effect. */
	write_file(p.file, good.substr(0, good.find("[backend")) + "[backend app]\n" +
				   server("s0", b.port));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	EXPECT_EQ(exchange(port, "b", 0), "");
	EXPECT_NE(http_get(admin, "/metrics").find("weft_proxy_reloads_total 1\n"), std::string::npos);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* Polls until one of pid's threads sits in openat(2), for up to
 * timeout_ms. */
bool await_openat(pid_t pid, int timeout_ms)
{
	std::string dir = "/proc/" + std::to_string(pid) + "/task";
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		DIR *d = opendir(dir.c_str());
		if (!d)
			return false;
		bool in_openat = false;
		while (struct dirent *e = readdir(d)) {
			std::ifstream in(dir + "/" + e->d_name + "/syscall");
			long nr = -1;
			if (e->d_name[0] != '.' && (in >> nr) && nr == SYS_openat)
				in_openat = true;
		}
		closedir(d);
		if (in_openat)
			return true;
		usleep(10000);
	}
	return false;
}

/* A reload reads its configuration and opens its access log on the
 * blocking pool: while either waits (here on FIFOs, whose open and read
 * wait for the other end), the only worker goes on proxying. */
TEST(ReloadTest, AReloadWaitingOnItsFilesLeavesConnectionsFlowing)
{
	NEED_PROXY();
	backend a('a'), b('b');
	int port = free_port();
	std::string log = "/tmp/weft-proxy-fifo-log-" + std::to_string(getpid());
	unlink(log.c_str());
	ASSERT_EQ(mkfifo(log.c_str(), 0600), 0);
	std::string global = "[global]\nworkers = 1\n";
	proxy p;
	ASSERT_TRUE(p.start(global + "access_log = off\n" + frontend("web", port) +
			    "\n[backend app]\n" + server("s0", a.port)));
	ASSERT_NE(p.wait_line("listening on", 5000), "");
	auto serves = [&](const char *tag, const char *when) {
		for (int i = 0; i < 5; i++) {
			std::string e = exchange(port, tag, i);
			EXPECT_EQ(e, "") << when;
			if (!e.empty())
				return;
		}
	};

	/* The configuration file becomes a FIFO.  Our open returns once the
	 * reload has opened it; its read then waits for our bytes. */
	ASSERT_EQ(unlink(p.file.c_str()), 0);
	ASSERT_EQ(mkfifo(p.file.c_str(), 0600), 0);
	kill(p.pid, SIGHUP);
	int w = open(p.file.c_str(), O_WRONLY);
	ASSERT_GE(w, 0);
	serves("a", "while the reload reads its configuration");
	/* The configuration names the other FIFO as its access log, whose
	 * open waits for a reader. */
	std::string next = global + "access_log = " + log + "\n" + frontend("web", port) +
			   "\n[backend app]\n" + server("s0", b.port);
	ASSERT_EQ(write(w, next.data(), next.size()), (ssize_t)next.size());
	close(w);
	ASSERT_TRUE(await_openat(p.pid, 5000));
	serves("a", "while the reload opens its access log");

	int r = open(log.c_str(), O_RDONLY | O_NONBLOCK);
	ASSERT_GE(r, 0);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	EXPECT_EQ(exchange(port, "b", 0), "");
	struct pollfd pfd = {r, POLLIN, 0};
	ASSERT_EQ(poll(&pfd, 1, 5000), 1) << "the connection's access log line";
	char line[512];
	EXPECT_GT(read(r, line, sizeof(line)), 0);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(r);
	unlink(log.c_str());
}

TEST(ReloadTest, AServerNameThatDoesNotResolveStopsTheStartWithItsLine)
{
	NEED_PROXY();
	int port = free_port();
	proxy p;
	ASSERT_TRUE(p.start("[global]\naccess_log = off\n" + frontend("web", port) +
			    "\n[backend app]\nserver s0 = nonexistent.invalid:80\n"));
	std::string line = p.wait_line("nonexistent.invalid", 20000);
	EXPECT_NE(line.find(p.file + ":8: server s0 = nonexistent.invalid:80: "), std::string::npos)
		<< line;
	int st = p.wait_exit(10000);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << "wait status " << st;
}

TEST(ReloadTest, HealthStateSurvivesAReload)
{
	NEED_PROXY();
	backend a('a'), b('b');
	int port = free_port(), admin = free_port(), dead = free_port();
	std::string head = "[global]\naccess_log = off\nadmin = 127.0.0.1:" + std::to_string(admin) +
			   "\n" + frontend("web", port) +
			   "\n[backend app]\nhealth_check = tcp interval=100ms rise=2 fall=2\n" +
			   server("s0", a.port) + server("down", dead);
	proxy p;
	ASSERT_TRUE(p.start(head));
	ASSERT_NE(p.wait_line("admin listening on", 5000), "");
	/* Down, with checks counted, before the reload. */
	long checks = 0;
	for (int i = 0; i < 100; i++) {
		std::string st = http_get(admin, "/stats");
		if (stats_field(st, "down", "up") == 0 && (checks = stats_field(st, "down", "checks")) >= 8)
			break;
		std::this_thread::sleep_for(milliseconds(50));
	}
	ASSERT_GE(checks, 8);
	write_file(p.file, head + server("s2", b.port));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	/* A state made afresh would be up with no checks (health.c,
	 * invariant 3); the one carried over is down with its count. */
	std::string st = http_get(admin, "/stats");
	EXPECT_EQ(stats_field(st, "down", "up"), 0) << st;
	EXPECT_GE(stats_field(st, "down", "checks"), checks) << st;
	EXPECT_EQ(stats_field(st, "down", "connections_total"), 0) << st;
	for (int i = 0; i < 20; i++)
		EXPECT_EQ(exchange(port, "ab", i), "") << "never the server that is down";
	/* The checks go on in the new generation. */
	std::this_thread::sleep_for(milliseconds(400));
	EXPECT_GT(stats_field(http_get(admin, "/stats"), "down", "checks"),
		  stats_field(st, "down", "checks"));
	int rc = p.stop();
	EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << rc;
}

TEST(ReloadTest, AServersLimitCountsConnectionsFromBeforeAReload)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	std::string conf = "[global]\naccess_log = off\n" + frontend("web", port) +
			   "\n[backend app]\nqueue_timeout = 10s\nserver s0 = 127.0.0.1:" +
			   std::to_string(a.port) + " max_connections=1\n";
	proxy p;
	ASSERT_TRUE(p.start(conf));
	ASSERT_NE(p.wait_line("listening on", 5000), "");
	int first = dial(port);
	char tag = 0;
	ASSERT_EQ(recv(first, &tag, 1, 0), 1);
	write_file(p.file, conf + "retries = 1\n");
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	/* The server's one slot is the first connection's, from before. */
	int second = dial(port);
	struct timeval tv = {0, 300 * 1000};
	setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	EXPECT_EQ(recv(second, &tag, 1, 0), -1) << "served beside the first";
	/* Its end frees the slot for the waiter of the new generation at once,
	 * not at the queue's timeout. */
	auto t0 = steady_clock::now();
	shutdown(first, SHUT_WR);
	EXPECT_EQ(read_all(first), "");
	close(first);
	tv = {5, 0};
	setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ASSERT_EQ(recv(second, &tag, 1, 0), 1);
	EXPECT_EQ(tag, 'a');
	EXPECT_LT(duration_cast<milliseconds>(steady_clock::now() - t0).count(), 1000);
	close(second);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* queue_size bounds the connections waiting under every generation
 * together, and /metrics counts them all: a reload does not open a second
 * queue beside the first. */
TEST(ReloadTest, ABackendsQueueSpansAReload)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port(), admin = free_port();
	std::string conf = "[global]\naccess_log = off\nadmin = 127.0.0.1:" + std::to_string(admin) +
			   "\n" + frontend("web", port) +
			   "\n[backend app]\nqueue_timeout = 10s\nqueue_size = 1\n"
			   "server s0 = 127.0.0.1:" + std::to_string(a.port) + " max_connections=1\n";
	proxy p;
	ASSERT_TRUE(p.start(conf));
	ASSERT_NE(p.wait_line("admin listening on", 5000), "");
	const std::string queue = "weft_proxy_backend_queue_length{backend=\"app\"} ";
	int first = dial(port);
	char tag = 0;
	ASSERT_EQ(recv(first, &tag, 1, 0), 1);
	int second = dial(port); /* waits: the server's one slot is taken */
	for (int i = 0; i < 100 && http_get(admin, "/metrics").find(queue + "1\n") == std::string::npos; i++)
		usleep(10000);
	ASSERT_NE(http_get(admin, "/metrics").find(queue + "1\n"), std::string::npos);
	write_file(p.file, conf + "retries = 1\n");
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	EXPECT_NE(http_get(admin, "/metrics").find(queue + "1\n"), std::string::npos)
		<< "the connection waiting from before the reload";
	/* The queue is full: a third connection is reset at once. */
	auto t0 = steady_clock::now();
	int third = dial(port);
	EXPECT_EQ(recv(third, &tag, 1, 0), -1);
	EXPECT_EQ(errno, ECONNRESET);
	EXPECT_LT(duration_cast<milliseconds>(steady_clock::now() - t0).count(), 2000)
		<< "not queued until queue_timeout";
	close(third);
	/* The first one's end lets the second go. */
	shutdown(first, SHUT_WR);
	EXPECT_EQ(read_all(first), "");
	close(first);
	ASSERT_EQ(recv(second, &tag, 1, 0), 1);
	EXPECT_EQ(tag, 'a');
	EXPECT_NE(http_get(admin, "/metrics").find(queue + "0\n"), std::string::npos);
	close(second);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A server's max_connections is the one in force for every generation: a
 * reload that raises it lets the connection waiting from before go (it
 * waited by the old limit until its queue_timeout), and one that lowers it
 * holds the older generation's connections to it too. */
TEST(ReloadTest, AReloadedServerLimitAppliesToTheConnectionsWaitingFromBefore)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	auto conf = [&](int max) {
		return "[global]\naccess_log = off\n" + frontend("web", port) +
		       "\n[backend app]\nqueue_timeout = 10s\nserver s0 = 127.0.0.1:" +
		       std::to_string(a.port) + " max_connections=" + std::to_string(max) + "\n";
	};
	proxy p;
	ASSERT_TRUE(p.start(conf(1)));
	ASSERT_NE(p.wait_line("listening", 5000), "");
	int first = dial(port);
	char tag = 0;
	ASSERT_EQ(recv(first, &tag, 1, 0), 1);
	int second = dial(port); /* waits: the server's one slot is taken */
	usleep(200 * 1000);
	write_file(p.file, conf(2));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	struct timeval tv = {3, 0};
	setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	EXPECT_EQ(recv(second, &tag, 1, 0), 1) << "the waiting connection kept the old limit";
	/* Lowered to 1 with two open: a new connection waits, though it
	 * belongs to the generation that said 1 and the two to the ones
	 * before. */
	write_file(p.file, conf(1));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	int third = dial(port);
	struct pollfd pf = {third, POLLIN, 0};
	EXPECT_EQ(poll(&pf, 1, 500), 0) << "a third connection went past the new limit";
	close(first);
	close(second);
	usleep(100 * 1000); /* both slots given back: now it goes */
	setsockopt(third, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	EXPECT_EQ(recv(third, &tag, 1, 0), 1);
	close(third);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A reload that replaces a busy backend's server: a connection of the new
 * generation, which the new server has room for, does not queue behind
 * one that waits for the old server; that one is still served when the
 * old server's slot comes free. */
TEST(ReloadTest, ANewServerServesAtOnceThoughConnectionsWaitForTheOldOne)
{
	NEED_PROXY();
	backend a('a'), b('b');
	int port = free_port();
	/* Named apart: a server's slots go by its name across reloads. */
	auto conf = [&](const backend &be) {
		return "[global]\naccess_log = off\n" + frontend("web", port) +
		       "\n[backend app]\nqueue_timeout = 10s\nserver " + std::string(1, be.tag) +
		       " = 127.0.0.1:" + std::to_string(be.port) + " max_connections=1\n";
	};
	proxy p;
	ASSERT_TRUE(p.start(conf(a)));
	ASSERT_NE(p.wait_line("listening", 5000), "");
	int first = dial(port);
	char tag = 0;
	ASSERT_EQ(recv(first, &tag, 1, 0), 1);
	ASSERT_EQ(tag, 'a');
	int second = dial(port); /* waits for a's one slot */
	usleep(200 * 1000);
	write_file(p.file, conf(b));
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	int third = dial(port);
	struct timeval tv = {2, 0};
	setsockopt(third, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	EXPECT_EQ(recv(third, &tag, 1, 0), 1) << "the new generation waited behind the old";
	EXPECT_EQ(tag, 'b');
	struct pollfd pf = {second, POLLIN, 0};
	EXPECT_EQ(poll(&pf, 1, 0), 0) << "the old waiter went past a's limit";
	close(first);
	setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	tag = 0;
	EXPECT_EQ(recv(second, &tag, 1, 0), 1) << "the old waiter was not served";
	EXPECT_EQ(tag, 'a');
	close(second);
	close(third);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* One echo on an open connection through the proxy: "" or what went wrong. */
std::string echo(int fd, const std::string &msg)
{
	if (send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) != (ssize_t)msg.size())
		return std::string("send: ") + strerror(errno);
	std::string in(msg.size(), 0);
	size_t got = 0;
	while (got < in.size()) {
		ssize_t n = recv(fd, &in[got], in.size() - got, 0);
		if (n <= 0)
			return std::string("recv: ") + (n == 0 ? "end of stream" : strerror(errno));
		got += (size_t)n;
	}
	return in == msg ? "" : "got \"" + in + "\"";
}

TEST(ReloadTest, LongConnectionsKeepFlowingThroughReloadAndUpgrade)
{
	NEED_PROXY();
	backend a('a'), b('b');
	int port = free_port();
	std::string sock = upgrade_path("long");
	std::string global = "[global]\naccess_log = off\ndrain_timeout = 10s\nupgrade_socket = " +
			     sock + "\n";
	proxy old;
	ASSERT_TRUE(old.start(global + frontend("web", port) + "\n[backend app]\n" + server("s0", a.port)));
	ASSERT_NE(old.wait_line("upgrade socket on", 5000), "");
	int fd = dial(port);
	ASSERT_GE(fd, 0);
	char tag = 0;
	ASSERT_EQ(recv(fd, &tag, 1, 0), 1);
	EXPECT_EQ(tag, 'a');
	EXPECT_EQ(echo(fd, "before"), "");
	/* The reload removes the connection's server: it is not touched. */
	write_file(old.file, global + frontend("web", port) + "\n[backend app]\n" + server("s1", b.port));
	kill(old.pid, SIGHUP);
	ASSERT_NE(old.wait_line("reloaded", 5000), "");
	EXPECT_EQ(echo(fd, "after the reload"), "");
	EXPECT_EQ(exchange(port, "b", 0), "") << "new connections go to the new server";
	/* The upgrade: the old process drains with the connection open. */
	proxy next;
	next.file = old.file;
	ASSERT_TRUE(next.launch({"-c", old.file, "--upgrade-from", sock}));
	ASSERT_NE(old.wait_line("accepts on the sockets now", 5000), "");
	EXPECT_EQ(echo(fd, "after the upgrade"), "");
	EXPECT_EQ(exchange(port, "b", 1), "") << "the new process serves";
	std::this_thread::sleep_for(milliseconds(300));
	EXPECT_EQ(echo(fd, "still flowing"), "");
	EXPECT_EQ(old.wait_exit(0), -1) << "the old process waits for its connection";
	shutdown(fd, SHUT_WR);
	EXPECT_EQ(read_all(fd), "");
	close(fd);
	int st = old.wait_exit(2000); /* at once, not at the drain deadline */
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(old.err);
	st = next.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* An upgrade whose configuration moves the admin listener: once the old
 * process has handed over, its address is closed, though the old process
 * still drains a connection; not left listening with nobody to answer
 * (a scraper there would hang, not be refused, and the address could not
 * be bound again) until the old process exits. */
TEST(ReloadTest, AnUpgradeThatMovesTheAdminListenerClosesTheOldAddress)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port(), admin1 = free_port(), admin2 = free_port();
	std::string sock = upgrade_path("admin");
	auto conf = [&](int admin) {
		return "[global]\naccess_log = off\ndrain_timeout = 10s\nupgrade_socket = " + sock +
		       "\nadmin = 127.0.0.1:" + std::to_string(admin) + "\n" + frontend("web", port) +
		       "\n[backend app]\n" + server("s0", a.port);
	};
	proxy old;
	ASSERT_TRUE(old.start(conf(admin1)));
	ASSERT_NE(old.wait_line("upgrade socket on", 5000), "");
	int fd = dial(port); /* keeps the old process draining */
	ASSERT_GE(fd, 0);
	char tag = 0;
	ASSERT_EQ(recv(fd, &tag, 1, 0), 1);
	write_file(old.file, conf(admin2));
	proxy next;
	next.file = old.file;
	ASSERT_TRUE(next.launch({"-c", old.file, "--upgrade-from", sock}));
	ASSERT_NE(old.wait_line("handed over: draining 1 connections", 5000), "");
	EXPECT_TRUE(refused(admin1)) << "the old admin address still takes connections";
	EXPECT_EQ(http_request(admin2, "GET", "/health", nullptr), 200);
	close(fd);
	int st = old.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(old.err);
	st = next.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* An upgrade whose configuration moves the control socket: once the new
 * process has taken over, the old path's file is gone (the old process,
 * draining still, closed its socket without removing it) and the new path
 * takes the next upgrade. */
TEST(ReloadTest, AnUpgradeThatMovesTheControlSocketRemovesTheOldFile)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	std::string first = upgrade_path("move1"), second = upgrade_path("move2");
	proxy old;
	ASSERT_TRUE(start_upgradable(old, first, port, a.port));
	int fd = dial(port); /* keeps the old process draining */
	ASSERT_GE(fd, 0);
	char tag = 0;
	ASSERT_EQ(recv(fd, &tag, 1, 0), 1);
	write_file(old.file, upgrade_conf(second, port, a.port));
	proxy next;
	next.file = old.file;
	ASSERT_TRUE(next.launch({"-c", old.file, "--upgrade-from", first}));
	ASSERT_NE(old.wait_line("handed over: draining 1 connections", 5000), "");
	ASSERT_NE(next.wait_line(("upgrade socket on " + second).c_str(), 5000), "");
	for (int i = 0; i < 100 && access(first.c_str(), F_OK) == 0; i++)
		std::this_thread::sleep_for(milliseconds(10));
	EXPECT_NE(access(first.c_str(), F_OK), 0) << first << " is left behind";
	EXPECT_EQ(access(second.c_str(), F_OK), 0);
	close(fd);
	int st = old.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(old.err);
	proxy third;
	third.file = old.file;
	ASSERT_TRUE(third.launch({"-c", old.file, "--upgrade-from", second}));
	EXPECT_NE(third.wait_line("sockets taken over", 5000), "");
	EXPECT_NE(next.wait_line("accepts on the sockets now", 5000), "");
	st = next.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(next.err);
	st = third.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_NE(access(second.c_str(), F_OK), 0);
}

TEST(ReloadTest, AnUpgradeThatFailsBeforeReadyLeavesTheOldRunning)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	std::string sock = upgrade_path("fail");
	std::string conf = upgrade_conf(sock, port, a.port);
	proxy old;
	ASSERT_TRUE(start_upgradable(old, sock, port, a.port));
	/* The new process takes the sockets, then cannot bind its second
	 * frontend's address and exits 1 before it is ready. */
	int busy_port;
	int busy = listen_loopback(0, &busy_port);
	char path[] = "/tmp/weft-proxy-test-XXXXXX";
	int cfd = mkstemp(path);
	close(cfd);
	write_file(path, conf + frontend("taken", busy_port));
	proxy next;
	ASSERT_TRUE(next.launch({"-c", path, "--upgrade-from", sock}));
	int st = next.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
	close(next.err);
	unlink(path);
	close(busy);
	EXPECT_NE(old.wait_line("did not take over", 5000), "");
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(exchange(port, "a", i), "") << "the old process serves on";
	st = old.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* Sends one packet of text on conn, with fd (if >= 0) as SCM_RIGHTS. */
void packet(int conn, const std::string &text, int fd)
{
	struct iovec iov = {const_cast<char *>(text.data()), text.size()};
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = {};
	struct msghdr m = {};
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (fd >= 0) {
		m.msg_control = u.b;
		m.msg_controllen = sizeof(u.b);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	sendmsg(conn, &m, MSG_NOSIGNAL);
}

/* The next packet on fd within timeout_ms, or "". */
std::string next_packet(int fd, int timeout_ms)
{
	struct pollfd pf = {fd, POLLIN, 0};
	char buf[128];
	ssize_t n = poll(&pf, 1, timeout_ms) == 1 ? recv(fd, buf, sizeof(buf), MSG_DONTWAIT) : -1;
	return n > 0 ? std::string(buf, (size_t)n) : "";
}

/* Plays the old process, of pid old_pid, on a control socket at path, up
 * to the new process's answer: listens there, starts next on conf_file
 * with --upgrade-from path, and hands over the listening socket lfd as
 * frontend web's (and, with hand_ctl, the control socket itself, as a
 * proxy does), announced as `version`.  What the new process answers goes
 * to *ready ("" when it closes, or after 5 s).  Returns the connection to
 * it, and the control socket in *ctl: both the caller's. */
int hand_over_begin(int version, const std::string &path, int lfd, int port, proxy *next,
		    const std::string &conf_file, pid_t old_pid, bool hand_ctl, int *ctl,
		    std::string *ready)
{
	*ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {};
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
	unlink(path.c_str());
	EXPECT_EQ(bind(*ctl, (struct sockaddr *)&a, sizeof(a)), 0);
	EXPECT_EQ(listen(*ctl, 1), 0);
	EXPECT_TRUE(next->launch({"-c", conf_file, "--upgrade-from", path}));
	struct pollfd pf = {*ctl, POLLIN, 0};
	int conn = poll(&pf, 1, 5000) == 1 ? accept(*ctl, nullptr, nullptr) : -1;
	EXPECT_GE(conn, 0);
	packet(conn, "weft-proxy-upgrade " + std::to_string(version) + " pid=" +
			     std::to_string(old_pid) + " count=" + (hand_ctl ? "2" : "1"), -1);
	packet(conn, "listen web 127.0.0.1:" + std::to_string(port), lfd);
	if (hand_ctl)
		packet(conn, "upgrade " + path, *ctl);
	packet(conn, "end", -1);
	*ready = next_packet(conn, 5000);
	return conn;
}

/* hand_over_begin, then the answer to the new process's "ready": confirm
 * if not null; returns what it answered. */
std::string hand_over_as(int version, const std::string &path, int lfd, int port, proxy *next,
			 const std::string &conf_file, const char *confirm = nullptr,
			 pid_t old_pid = getpid())
{
	int ctl;
	std::string ready;
	int conn = hand_over_begin(version, path, lfd, port, next, conf_file, old_pid, false, &ctl,
				   &ready);
	if (!ready.empty() && confirm)
		packet(conn, confirm, -1);
	close(conn);
	close(ctl);
	unlink(path.c_str());
	return ready;
}

/* What a test that plays the old process needs: a server, a listening
 * socket of the test's own to hand over (lfd, on port), a control socket
 * path, and a configuration file (path) with frontend web on port. */
struct played_old {
	backend a{'a'};
	int port = 0;
	int lfd = listen_loopback(0, &port);
	std::string sock;
	char path[32] = "/tmp/weft-proxy-test-XXXXXX";

	explicit played_old(const char *what) : sock(upgrade_path(what))
	{
		close(mkstemp(path));
		write_file(path, "[global]\naccess_log = off\n" + frontend("web", port) +
					 "\n[backend app]\n" + server("s0", a.port));
	}

	/* hand_over_as with these. */
	std::string hand_over(int version, proxy *next, const char *confirm = nullptr,
			      pid_t old_pid = getpid())
	{
		return hand_over_as(version, sock, lfd, port, next, path, confirm, old_pid);
	}

	/* A new process takes over (answered with confirm), serves on the
	 * socket it got, which the test then no longer holds, and stops with
	 * exit 0; the last use of this. */
	void taken_over(int version, const char *confirm)
	{
		proxy next;
		std::string ready = hand_over(version, &next, confirm);
		EXPECT_EQ(ready.rfind("ready pid=", 0), 0u) << ready;
		close(lfd); /* the proxy holds its own copy */
		for (int i = 0; i < 3; i++)
			EXPECT_EQ(exchange(port, "a", i), "") << "the new process serves";
		next.file = path;
		int st = next.stop();
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	}
};

TEST(ReloadTest, AnOldProcessOfVersion1HandsOverAndAnUnknownVersionIsRefused)
{
	NEED_PROXY();
	played_old o("v1");

	/* A version this program does not know: nothing taken, exit 1. */
	proxy newer;
	EXPECT_EQ(o.hand_over(4, &newer), "");
	EXPECT_NE(newer.wait_line("newer version of the upgrade protocol", 5000), "");
	int st = newer.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
	close(newer.err);

	/* Version 1: taken over, ready, and it serves on the socket it got
	 * (a blocking one, as listen_loopback makes it). */
	o.taken_over(1, nullptr);
}

/* "ready" and the old process's "ok" (version 3): a new process that gets
 * no "ok" from an old one still alive (it gave up at that moment, say)
 * steps back: it exits 1 and leaves the sockets to the old one, rather than
 * accept beside it for good.  With the "ok" it serves on; and when the old
 * process is gone it goes on alone. */
TEST(ReloadTest, ANewProcessWithoutTheOldOnesConfirmationStepsBack)
{
	NEED_PROXY();
	played_old o("confirm");

	/* No "ok" from a live old process (this one): it steps back, and
	 * tells the service manager the main process is the old one again. */
	std::string notify = "@weft-proxy-step-back-" + std::to_string(getpid());
	int nfd = notify_listen(notify);
	setenv("NOTIFY_SOCKET", notify.c_str(), 1);
	proxy back;
	std::string ready = o.hand_over(3, &back);
	unsetenv("NOTIFY_SOCKET");
	pid_t back_pid = back.pid;
	EXPECT_EQ(ready.rfind("ready pid=", 0), 0u) << ready;
	EXPECT_NE(ready.find(" version=3"), std::string::npos) << ready;
	EXPECT_NE(back.wait_line("did not confirm the hand-over", 5000), "");
	int st = back.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
	close(back.err);
	EXPECT_EQ(notify_recv(nfd), "MAINPID=" + std::to_string(back_pid) + "\nREADY=1");
	EXPECT_EQ(notify_recv(nfd), "MAINPID=" + std::to_string(getpid()));
	char more[64];
	EXPECT_EQ(recv(nfd, more, sizeof(more), MSG_DONTWAIT), -1) << "no STOPPING=1 from it";
	close(nfd);
	/* The socket is still the old process's, listening. */
	int c = dial(o.port);
	EXPECT_GE(c, 0);
	struct pollfd pf = {o.lfd, POLLIN, 0};
	EXPECT_EQ(poll(&pf, 1, 2000), 1) << "the old process's socket still takes connections";
	int got = accept(o.lfd, nullptr, nullptr);
	EXPECT_GE(got, 0);
	close(got);
	close(c);

	/* No "ok" and the old process gone (a child that has exited): this
	 * one goes on alone. */
	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, nullptr, 0);
	proxy alone;
	ready = o.hand_over(3, &alone, nullptr, gone);
	EXPECT_EQ(ready.rfind("ready pid=", 0), 0u) << ready;
	EXPECT_NE(alone.wait_line("is gone: this process goes on alone", 5000), "");
	EXPECT_EQ(exchange(o.port, "a", 0), "") << "the new process serves";
	st = alone.stop(); /* file unset: the configuration stays for the next */
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;

	/* With the "ok": it takes over and serves. */
	o.taken_over(3, "ok");
}

/* A connection to the control socket at path, or -1. */
int dial_unix(const std::string &path)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {};
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The control socket is handed over with the rest, and both processes
 * hold it; the new one serves it only once the old one has confirmed
 * ("ok").  Before that the sockets may still go back to the old process,
 * and a third one served meanwhile would take them from a process that
 * then steps back: the old and the third would accept side by side for
 * good.  So a third process that connects in between waits in the
 * socket's queue: for the old process when the new one steps back, for
 * the new one once it is confirmed. */
TEST(ReloadTest, TheNewProcessServesTheControlSocketOnlyOnceConfirmed)
{
	NEED_PROXY();
	played_old o("serve");
	write_file(o.path, upgrade_conf(o.sock, o.port, o.a.port));

	/* No "ok": the new process steps back, and the third's connection
	 * is still queued, for the old process (this one). */
	proxy back;
	int ctl;
	std::string ready;
	int conn = hand_over_begin(3, o.sock, o.lfd, o.port, &back, o.path, getpid(), true, &ctl,
				   &ready);
	EXPECT_EQ(ready.rfind("ready pid=", 0), 0u) << ready;
	int third = dial_unix(o.sock);
	ASSERT_GE(third, 0);
	EXPECT_EQ(next_packet(third, 1000), "") << "served by a process not confirmed yet";
	close(conn);
	EXPECT_NE(back.wait_line("did not confirm the hand-over", 5000), "");
	int st = back.wait_exit(5000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
	close(back.err);
	EXPECT_EQ(next_packet(third, 0), "") << "served by the process that stepped back";
	struct pollfd pf = {ctl, POLLIN, 0};
	EXPECT_EQ(poll(&pf, 1, 0), 1) << "the third's connection is left to the old process";
	close(third);
	close(ctl);

	/* With the "ok": the new process serves the third, which was
	 * waiting; the third leaves, and the new one runs on. */
	proxy next;
	conn = hand_over_begin(3, o.sock, o.lfd, o.port, &next, o.path, getpid(), true, &ctl, &ready);
	EXPECT_EQ(ready.rfind("ready pid=", 0), 0u) << ready;
	third = dial_unix(o.sock);
	ASSERT_GE(third, 0);
	EXPECT_EQ(next_packet(third, 1000), "") << "served by a process not confirmed yet";
	packet(conn, "ok", -1);
	close(conn);
	close(ctl); /* the old process is done with it; the new one holds it */
	std::string hello = next_packet(third, 5000);
	EXPECT_EQ(hello.rfind("weft-proxy-upgrade 3 pid=" + std::to_string(next.pid) + " ", 0), 0u)
		<< hello;
	close(third);
	EXPECT_NE(next.wait_line("did not take over", 5000), "");
	close(o.lfd); /* the proxy holds its own copy */
	EXPECT_EQ(exchange(o.port, "a", 0), "") << "the new process serves";
	next.file = o.path;
	st = next.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_NE(access(o.sock.c_str(), F_OK), 0) << "the control socket's file is removed at the end";
}

TEST(ReloadTest, Sigusr2StartsTheProgramAnewToTakeOver)
{
	NEED_PROXY();
	/* The new process is the old one's child: once the old one exits it
	 * becomes ours, to stop and wait for. */
	ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	backend a('a');
	int port = free_port();
	std::string sock = upgrade_path("usr2");
	proxy old;
	ASSERT_TRUE(start_upgradable(old, sock, port, a.port));
	load l(port, "a");
	std::this_thread::sleep_for(milliseconds(100));
	pid_t next_pid = sigusr2_child(old);
	ASSERT_GT(next_pid, 0);
	ASSERT_NE(old.wait_line("accepts on the sockets now", 5000), "");
	int st = old.wait_exit(3000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	std::this_thread::sleep_for(milliseconds(200));
	l.stop();
	EXPECT_TRUE(l.failures.empty()) << l.failures.size() << " failed, first: " << l.failures[0];
	EXPECT_GT(l.ok, 20);
	/* The new process writes to the same stderr. */
	proxy next;
	next.pid = next_pid;
	next.err = old.err;
	next.file = old.file;
	st = next.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A child of SIGUSR2 that fails (here: the configuration file broke since
 * the start) is reaped as it ends, and its status said; no zombie stays,
 * and the proxy serves on. */
TEST(ReloadTest, AFailedSigusr2ChildIsReapedAndItsStatusSaid)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	std::string sock = upgrade_path("reap");
	proxy p;
	ASSERT_TRUE(start_upgradable(p, sock, port, a.port));
	write_file(p.file, "[global]\nno_such_key = 1\n");
	pid_t pid = sigusr2_child(p);
	ASSERT_GT(pid, 0);
	std::string child = std::to_string(pid);
	EXPECT_NE(p.wait_line(("pid " + child + " exited with status 1").c_str(), 5000), "");
	/* A child is listed under the thread that started it. */
	std::string tasks = "/proc/" + std::to_string(p.pid) + "/task/", left;
	DIR *d = opendir(tasks.c_str());
	ASSERT_NE(d, nullptr);
	while (struct dirent *e = readdir(d)) {
		std::ifstream kids(tasks + e->d_name + "/children");
		std::string some;
		if (e->d_name[0] != '.' && std::getline(kids, some))
			left += some;
	}
	closedir(d);
	EXPECT_EQ(left, "") << "no child left, zombie or not";
	EXPECT_EQ(exchange(port, "a", 0), "") << "the proxy serves on";
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(ReloadTest, NotifyReloadingReadyAndTheNewMainPid)
{
	NEED_PROXY();
	backend a('a');
	int port = free_port();
	std::string name = "weft-proxy-reload-notify-" + std::to_string(getpid());
	std::string sock = upgrade_path("notify");
	int nfd = notify_listen("@" + name);
	std::string conf = upgrade_conf(sock, port, a.port);
	setenv("NOTIFY_SOCKET", ("@" + name).c_str(), 1);
	proxy old;
	bool started = old.start(conf);
	ASSERT_TRUE(started);
	EXPECT_EQ(notify_recv(nfd), "READY=1");
	kill(old.pid, SIGHUP);
	std::string msg = notify_recv(nfd);
	EXPECT_EQ(msg.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << msg;
	EXPECT_GT(std::stoull(msg.substr(msg.find('=', 12) + 1)), 0u) << msg;
	EXPECT_EQ(notify_recv(nfd), "READY=1");
	/* A refused reload ends with READY=1 too: the old configuration runs. */
	write_file(old.file, "[frontend x]\n");
	kill(old.pid, SIGHUP);
	EXPECT_EQ(notify_recv(nfd).rfind("RELOADING=1\n", 0), 0u);
	EXPECT_EQ(notify_recv(nfd), "READY=1");
	write_file(old.file, conf);
	proxy next;
	next.file = old.file;
	ASSERT_TRUE(next.launch({"-c", old.file, "--upgrade-from", sock}));
	unsetenv("NOTIFY_SOCKET");
	EXPECT_EQ(notify_recv(nfd), "MAINPID=" + std::to_string(next.pid) + "\nREADY=1");
	int st = old.wait_exit(3000);
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(old.err);
	st = next.stop();
	EXPECT_EQ(notify_recv(nfd), "STOPPING=1") << "from the new main process, the only one";
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(nfd);
}

} // namespace
