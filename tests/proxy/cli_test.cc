// SPDX-License-Identifier: MIT
/*
 * cli_test.cc - weft-proxy end to end, from the command line and the
 * signals an operator uses, and the limits and PROXY headers as a backend
 * sees them (the real binary, WEFT_PROXY_BIN, helpers in harness.h):
 *  - `-t -c FILE` on a good file exits 0 and prints the effective
 *    configuration with the effective max_connections and where it came
 *    from (derived from, held by, or clamped to the descriptor limit the
 *    child runs under); on broken files (an unknown key, a duration
 *    without a unit, an address that does not parse, a frontend naming a
 *    missing backend, a server named twice) it exits 1 with FILE:LINE:
 *    problem on stderr and nothing on stdout; a max_connections the
 *    descriptor limit cannot hold warns and is clamped, and with
 *    strict_limits = on it is fatal, as is a limit with no room at all;
 *  - SIGINT drains like SIGTERM: accepting stops, an established
 *    connection finishes, the exit status is 0; with the descriptor table
 *    full when the proxy waits for signals again, it keeps trying, and a
 *    SIGTERM once descriptors are free still drains and exits 0;
 *  - [global] max_connections: at N connections accepting pauses (the
 *    next client connects but gets no tag from the backend), and resumes
 *    when one of the N ends; a frontend at its own max_connections keeps
 *    no global slot from the other frontends;
 *  - queue_size: with the server at its max_connections one connection
 *    waits (weft_proxy_backend_queue_length 1), the next is reset at once
 *    rather than at queue_timeout, and the waiting one is served when the
 *    slot frees;
 *  - send_proxy = v1 and v2: the exact header bytes a server gets before
 *    the client's unchanged payload, over IPv4, and v1 over IPv6; a
 *    server's own send_proxy= wins over the backend's.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

/* What a `weft-proxy -t` run left: its wait status, stdout and stderr. */
struct checked {
	int status = -1;
	std::string out, err;

	bool exited(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

/* A configuration file, removed when the test ends. */
struct conf_file {
	std::string path;

	explicit conf_file(const std::string &text)
	{
		char p[] = "/tmp/weft-proxy-cli-XXXXXX";
		int fd = mkstemp(p);
		EXPECT_GE(fd, 0);
		EXPECT_EQ(write(fd, text.data(), text.size()), (ssize_t)text.size());
		close(fd);
		path = p;
	}
	~conf_file() { unlink(path.c_str()); }
};

/* Runs `weft-proxy -t -c file` (without -t when !check) with both
 * descriptor limits (soft and hard: the proxy raises its soft limit to the
 * hard one) set to nofile and WEFT_WORKERS to workers in the child only,
 * so that this process keeps its own; waits at most 10 s. */
checked check_file(const std::string &file, rlim_t nofile, const char *workers = "2",
		   bool check = true)
{
	checked r;
	const char *bin = getenv("WEFT_PROXY_BIN");
	int o[2], e[2];
	EXPECT_EQ(pipe2(o, O_CLOEXEC), 0);
	EXPECT_EQ(pipe2(e, O_CLOEXEC), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = {nofile, nofile};
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		dup2(o[1], 1);
		dup2(e[1], 2);
		setenv("WEFT_WORKERS", workers, 1);
		if (check)
			execl(bin, bin, "-t", "-c", file.c_str(), (char *)nullptr);
		else
			execl(bin, bin, "-c", file.c_str(), (char *)nullptr);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	struct pollfd pf[2] = {{o[0], POLLIN, 0}, {e[0], POLLIN, 0}};
	auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
	while ((pf[0].fd >= 0 || pf[1].fd >= 0) && std::chrono::steady_clock::now() < until) {
		if (poll(pf, 2, 100) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			char buf[4096];
			ssize_t n = read(pf[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				continue;
			}
			(i ? r.err : r.out).append(buf, (size_t)n);
		}
	}
	for (auto &p : pf)
		if (p.fd >= 0) {
			close(p.fd);
			kill(pid, SIGKILL); /* it hung: fail, do not wait forever */
		}
	waitpid(pid, &r.status, 0);
	return r;
}

/* The descriptor limit the -t runs use, within this process's hard limit
 * (a non-root child could not raise it). */
bool limits_allow(rlim_t want)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want;
}

bool has_line(const std::string &text, const std::string &line)
{
	return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

/* One frontend and one backend, with nothing that changes the headroom
 * with the machine: two workers, the buffered data path (no pipes).  The
 * headroom is 64 + 2 * 2 workers + 1 listen + 1 server = 70. */
std::string limits_conf(const std::string &global)
{
	return "[global]\nworkers = 2\n" + global +
	       "\n[frontend f]\nlisten = 127.0.0.1:1\nbackend = b\n"
	       "\n[backend b]\ndata_path = buffered\nconnect_timeout = 2s\nsend_proxy = v2\n"
	       "server s0 = 127.0.0.1:2 weight=3\n";
}

TEST(CheckTest, AGoodFilePrintsTheEffectiveConfigurationAndLimits)
{
	NEED_PROXY();
	if (!limits_allow(4096))
		GTEST_SKIP() << "the hard descriptor limit is below 4096";
	conf_file auto_f(limits_conf(""));
	checked r = check_file(auto_f.path, 4096);
	EXPECT_TRUE(r.exited(0)) << r.status << "\n" << r.err;
	EXPECT_EQ(r.err, "");
	EXPECT_EQ(r.out.rfind("; weft-proxy: the effective configuration of " + auto_f.path + "\n", 0),
		  0u)
		<< r.out;
	/* (4096 - 70) / 2 */
	EXPECT_TRUE(has_line(r.out, "; max_connections: auto, derived from the descriptor limit 4096"))
		<< r.out;
	EXPECT_TRUE(has_line(r.out, "max_connections = 2013")) << r.out;
	EXPECT_TRUE(has_line(r.out, "workers = 2")) << r.out;
	EXPECT_TRUE(has_line(r.out, "[frontend f]")) << r.out;
	EXPECT_TRUE(has_line(r.out, "listen = 127.0.0.1:1")) << r.out;
	EXPECT_TRUE(has_line(r.out, "backend = b")) << r.out;
	EXPECT_TRUE(has_line(r.out, "max_connections = 0 ; only the global limit")) << r.out;
	EXPECT_TRUE(has_line(r.out, "[backend b]")) << r.out;
	EXPECT_TRUE(has_line(r.out, "connect_timeout = 2s")) << r.out;
	EXPECT_TRUE(has_line(r.out, "send_proxy = v2")) << r.out;
	/* Defaults are printed too. */
	EXPECT_TRUE(has_line(r.out, "retries = 2")) << r.out;
	EXPECT_TRUE(has_line(r.out, "queue_size = 1024")) << r.out;
	EXPECT_TRUE(has_line(r.out, "server s0 = 127.0.0.1:2 weight=3 max_connections=0")) << r.out;

	conf_file held(limits_conf("max_connections = 50\n"));
	r = check_file(held.path, 4096);
	EXPECT_TRUE(r.exited(0)) << r.status << "\n" << r.err;
	EXPECT_EQ(r.err, "");
	EXPECT_TRUE(has_line(r.out, "; max_connections: as written; the descriptor limit 4096 holds it"))
		<< r.out;
	EXPECT_TRUE(has_line(r.out, "max_connections = 50")) << r.out;
}

TEST(CheckTest, ABrokenFileNamesFileLineAndProblemAndExitsOne)
{
	NEED_PROXY();
	const std::string fe = "[frontend f]\nlisten = 127.0.0.1:1\nbackend = b\n";
	const std::string be = "[backend b]\nserver s0 = 127.0.0.1:2\n";
	struct broken {
		std::string text;
		int line;
		std::string problem;
	};
	const std::vector<broken> cases = {
		{fe + "lsten = 127.0.0.1:3\n" + be, 4,
		 "unknown key \"lsten\" in [frontend f] (did you mean listen?)"},
		{fe + be + "connect_timeout = 2\n", 6,
		 "connect_timeout: \"2\" needs a unit (ms, s, m, h or d), as in 2s"},
		{"[frontend f]\nlisten = 300.0.0.1:80\nbackend = b\n" + be, 2,
		 "listen: \"300.0.0.1:80\" is not an address (IPv4:port, [IPv6]:port or unix:/path)"},
		{be + "\n[frontend f]\nlisten = 127.0.0.1:1\n\nbackend = nope\n", 7,
		 "backend: there is no [backend nope]"},
		{fe + be + "server s1 = 127.0.0.1:3\nserver s0 = 127.0.0.1:4\n", 7,
		 "server s0 appears twice in [backend b] (first at line 5)"},
	};
	for (const broken &c : cases) {
		conf_file f(c.text);
		checked r = check_file(f.path, 4096);
		EXPECT_TRUE(r.exited(1)) << r.status << " for " << c.problem;
		EXPECT_EQ(r.err, "weft-proxy: " + f.path + ":" + std::to_string(c.line) + ": " +
					 c.problem + "\n");
		EXPECT_EQ(r.out, "") << "printed a configuration it refused";
	}
}

TEST(CheckTest, AMaxConnectionsTheDescriptorLimitCannotHoldIsClampedOrRefused)
{
	NEED_PROXY();
	if (!limits_allow(200))
		GTEST_SKIP() << "the hard descriptor limit is below 200";
	/* 1000 connections need 2 * 1000 + 70 descriptors; 200 hold
	 * (200 - 70) / 2 = 65.  max_connections is on line 3. */
	conf_file clamped(limits_conf("max_connections = 1000\n"));
	checked r = check_file(clamped.path, 200);
	EXPECT_TRUE(r.exited(0)) << r.status << "\n" << r.err;
	EXPECT_EQ(r.err, "weft-proxy: warning: " + clamped.path +
				 ":3: max_connections 1000 needs 2070 descriptors, but the limit is 200: "
				 "using 65 (raise it with ulimit -n or LimitNOFILE=)\n");
	EXPECT_TRUE(has_line(
		r.out, "; max_connections: 1000 written, clamped to what the descriptor limit 200 holds"))
		<< r.out;
	EXPECT_TRUE(has_line(r.out, "max_connections = 65")) << r.out;

	conf_file strict(limits_conf("max_connections = 1000\nstrict_limits = on\n"));
	r = check_file(strict.path, 200);
	EXPECT_TRUE(r.exited(1)) << r.status;
	EXPECT_EQ(r.err, "weft-proxy: " + strict.path +
				 ":3: max_connections 1000 needs 2070 descriptors, but the limit is 200 "
				 "(strict_limits is on)\n");
	EXPECT_EQ(r.out, "");

	/* 71 descriptors hold no connection beside the headroom (70):
	 * fatal whatever strict_limits says. */
	conf_file none(limits_conf(""));
	r = check_file(none.path, 71);
	EXPECT_TRUE(r.exited(1)) << r.status;
	EXPECT_NE(r.err.find("the descriptor limit 71 leaves no room for connections (weft-proxy "
			     "keeps 70 for itself; each connection takes 2)"),
		  std::string::npos)
		<< r.err;
	EXPECT_EQ(r.out, "");
}

/* An error that stops the running proxy is its last line on stderr, said
 * after the message ring has stopped (say_last), and the exit status is
 * 1: here the runtime refuses WEFT_WORKERS=two, which workers = auto
 * reads. */
TEST(ExitTest, AnErrorThatStopsTheProxyIsItsLastLine)
{
	NEED_PROXY();
	conf_file f("[frontend f]\nlisten = 127.0.0.1:0\nbackend = b\n\n[backend b]\n"
		    "server s = 127.0.0.1:9\n");
	checked r = check_file(f.path, 4096, "two", false);
	EXPECT_TRUE(r.exited(1)) << r.err;
	const std::string last = "weft-proxy: Invalid argument\n";
	EXPECT_TRUE(r.err.size() >= last.size() &&
		    r.err.compare(r.err.size() - last.size(), last.size(), last) == 0)
		<< r.err;
}

TEST(SignalTest, SigintDrainsEstablishedConnectionsAndExitsZero)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[global]\ndrain_timeout = 10s\n\n" + config(port, {a.port})));
	ASSERT_NE(p.wait_line("listening on", 10000), "");
	int fd = dial(port);
	ASSERT_GE(fd, 0);
	char tag;
	ASSERT_EQ(recv(fd, &tag, 1, 0), 1);
	ASSERT_EQ(tag, 'a');
	kill(p.pid, SIGINT);
	std::string line = p.wait_line("draining", 5000);
	ASSERT_NE(line, "") << "no drain on SIGINT";
	EXPECT_NE(line.find("draining 1 connections"), std::string::npos) << line;
	/* New connections are no longer taken... */
	int late = dial(port);
	EXPECT_LT(late, 0) << "still accepting while draining";
	if (late >= 0)
		close(late);
	/* ...while the established one still works, until it ends; the proxy
	 * then exits by itself, well before the drain deadline. */
	EXPECT_EQ(p.wait_exit(300), -1) << "exited with a connection still open";
	ASSERT_EQ(send(fd, "ping", 4, 0), 4);
	char buf[4];
	EXPECT_EQ(recv(fd, buf, 4, MSG_WAITALL), 4);
	EXPECT_EQ(memcmp(buf, "ping", 4), 0);
	close(fd);
	int st = p.wait_exit(5000);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(p.stop(), 0);
}

/* A client connected through the proxy: its socket and the backend's tag
 * (0 when none came within timeout_ms). */
struct client {
	int fd = -1;
	char tag = 0;
};

client connect_and_tag(int port, int timeout_ms)
{
	client c;
	c.fd = dial(port);
	if (c.fd < 0)
		return c;
	struct pollfd pf = {c.fd, POLLIN, 0};
	if (poll(&pf, 1, timeout_ms) == 1 && recv(c.fd, &c.tag, 1, 0) != 1)
		c.tag = 0;
	return c;
}

/* How many descriptors process pid has open; the lowest number it has
 * free, and the number of its signalfd (-1: none open). */
size_t fd_table(pid_t pid, int *lowest_free, int *signalfd)
{
	std::string dir = "/proc/" + std::to_string(pid) + "/fd";
	std::vector<bool> used;
	size_t open = 0;
	*signalfd = -1;
	if (DIR *d = opendir(dir.c_str())) {
		while (struct dirent *e = readdir(d)) {
			if (e->d_name[0] == '.')
				continue;
			size_t n = strtoul(e->d_name, nullptr, 10);
			if (n >= used.size())
				used.resize(n + 1);
			used[n] = true;
			open++;
			char to[64] = {};
			if (readlink((dir + "/" + e->d_name).c_str(), to, sizeof(to) - 1) > 0 &&
			    strstr(to, "signalfd"))
				*signalfd = (int)n;
		}
		closedir(d);
	}
	*lowest_free = 0;
	while ((size_t)*lowest_free < used.size() && used[*lowest_free])
		++*lowest_free;
	return open;
}

/* Closes fd, a connection through proxy pid that reached its server, and
 * waits (5 s at most) until the proxy has closed its two sockets of it:
 * it does so in its own time, and a descriptor table read before then
 * would find their numbers taken. */
void close_and_settle(pid_t pid, int fd)
{
	int lowest, sfd;
	size_t with = fd_table(pid, &lowest, &sfd);
	close(fd);
	for (int waited = 0; fd_table(pid, &lowest, &sfd) > with - 2 && waited < 5000; waited += 10)
		usleep(10000);
}

/* Every wait for a signal opens a signalfd.  With the proxy's descriptor
 * table full when it waits again (here after a SIGHUP, whose reload fails
 * for want of a descriptor too), the signals task must try again once
 * descriptors are free, not give up: SIGTERM still drains and exits. */
TEST(SignalTest, AFullDescriptorTableDoesNotLeaveTheProxyDeafToSignals)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start(config(port, {a.port})));
	ASSERT_NE(p.wait_line("listening on", 10000), "");
	/* Running (the sockets are bound before the runtime starts): a
	 * connection goes through. */
	client warm = connect_and_tag(port, 5000);
	EXPECT_EQ(warm.tag, 'a');
	close_and_settle(p.pid, warm.fd);
	/* A soft limit that leaves no number free below the signalfd of the
	 * wait under way: once SIGHUP ends that wait, the reload's fopen and
	 * the next wait's signalfd find the table full. */
	int lowest = 0, sfd = -1;
	for (int waited = 0; sfd < 0 && waited < 2000; waited += 10) {
		fd_table(p.pid, &lowest, &sfd);
		if (sfd < 0)
			usleep(10000);
	}
	ASSERT_GE(sfd, 0) << "no signalfd open";
	struct rlimit saved;
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, nullptr, &saved), 0);
	struct rlimit tight = {(rlim_t)std::min(lowest, sfd), saved.rlim_max};
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, &tight, nullptr), 0);
	kill(p.pid, SIGHUP);
	EXPECT_NE(p.wait_line("cannot wait for signals", 5000), "");
	/* Descriptors free again: the next try waits, and takes SIGTERM. */
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, &saved, nullptr), 0);
	kill(p.pid, SIGTERM);
	int st = p.wait_exit(8000);
	EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		<< "SIGTERM was not taken (wait status " << st << ")";
	EXPECT_EQ(p.stop(), 0);
}

TEST(LimitTest, AtTheGlobalMaxConnectionsAcceptingPausesAndResumes)
{
	NEED_PROXY();
	backend b('b');
	proxy p;
	int port = free_port(), admin = free_port();
	ASSERT_TRUE(p.start("[global]\nmax_connections = 3\nadmin = 127.0.0.1:" +
			    std::to_string(admin) + "\n\n" + config(port, {b.port})));
	ASSERT_NE(p.wait_line("admin listening on", 10000), "");
	EXPECT_EQ(metric_at(admin, "weft_proxy_max_connections"), 3);
	std::vector<client> open;
	for (int i = 0; i < 3; i++) {
		open.push_back(connect_and_tag(port, 5000));
		ASSERT_EQ(open.back().tag, 'b');
	}
	EXPECT_EQ(metric_at(admin, "weft_proxy_connections_active"), 3);
	/* The fourth gets through the kernel's backlog but is not accepted:
	 * no tag, and no accept-and-close either (that would be end of
	 * stream). */
	client late = connect_and_tag(port, 500);
	ASSERT_GE(late.fd, 0);
	EXPECT_EQ(late.tag, 0) << "served beyond the global max_connections";
	struct pollfd pf = {late.fd, POLLIN, 0};
	EXPECT_EQ(poll(&pf, 1, 0), 0) << "closed beyond the global max_connections";
	EXPECT_EQ(b.accepted.load(), 3);
	/* One ends: the waiting one is accepted and reaches the server. */
	close(open[0].fd);
	ASSERT_EQ(poll(&pf, 1, 5000), 1);
	ASSERT_EQ(recv(late.fd, &late.tag, 1, 0), 1);
	EXPECT_EQ(late.tag, 'b');
	close(late.fd);
	for (size_t i = 1; i < open.size(); i++)
		close(open[i].fd);
	EXPECT_EQ(b.accepted.load(), 4);
	EXPECT_EQ(p.stop(), 0);
}

/* A frontend at its own max_connections keeps no slot of the global one
 * while its accept loop waits: with a global limit of 2 and one
 * connection open through a frontend limited to 1, another frontend still
 * takes the second. */
TEST(LimitTest, AFrontendAtItsOwnLimitLeavesTheGlobalSlotsToTheOthers)
{
	NEED_PROXY();
	backend b('b');
	proxy p;
	int one = free_port(), two = free_port();
	ASSERT_TRUE(p.start("[global]\nmax_connections = 2\n\n[frontend one]\nlisten = 127.0.0.1:" +
			    std::to_string(one) + "\nbackend = b\nmax_connections = 1\n\n"
			    "[frontend two]\nlisten = 127.0.0.1:" + std::to_string(two) +
			    "\nbackend = b\n\n[backend b]\nserver s0 = 127.0.0.1:" +
			    std::to_string(b.port) + "\n"));
	ASSERT_NE(p.wait_line("frontend two listening on", 10000), "");
	client first = connect_and_tag(one, 5000);
	ASSERT_EQ(first.tag, 'b');
	client waiting = connect_and_tag(one, 300);
	ASSERT_GE(waiting.fd, 0);
	EXPECT_EQ(waiting.tag, 0) << "served beyond the frontend's max_connections";
	client other = connect_and_tag(two, 5000);
	EXPECT_EQ(other.tag, 'b') << "the global limit has room for one more";
	close(other.fd);
	/* The frontend's slot frees: its waiting client is served. */
	close(first.fd);
	struct pollfd pf = {waiting.fd, POLLIN, 0};
	ASSERT_EQ(poll(&pf, 1, 5000), 1);
	ASSERT_EQ(recv(waiting.fd, &waiting.tag, 1, 0), 1);
	EXPECT_EQ(waiting.tag, 'b');
	close(waiting.fd);
	EXPECT_EQ(p.stop(), 0);
}

/* Waits up to timeout_ms for the metric series to read want. */
bool metric_becomes(int admin, const std::string &series, double want, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		if (metric_at(admin, series) == want)
			return true;
		usleep(20000);
	}
	return false;
}

/* A connect that fails for want of a descriptor of the proxy's own says
 * nothing of the server: it is not counted as the server's connect error,
 * nor held against it (three such used to mark it down for 2 s), and the
 * next connection, descriptors free again, reaches it at once. */
TEST(LimitTest, AConnectFailingForWantOfOurDescriptorsIsNotTheServersFault)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port(), admin = free_port();
	ASSERT_TRUE(p.start("[global]\nadmin = 127.0.0.1:" + std::to_string(admin) + "\n\n" +
			    config(port, {a.port})));
	ASSERT_NE(p.wait_line("admin listening on", 10000), "");
	client warm = connect_and_tag(port, 5000);
	ASSERT_EQ(warm.tag, 'a');
	close_and_settle(p.pid, warm.fd);
	/* One descriptor free below the limit: the accept takes it, the
	 * connect to the server finds none. */
	int lowest = 0, sfd = -1;
	fd_table(p.pid, &lowest, &sfd);
	struct rlimit saved;
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, nullptr, &saved), 0);
	struct rlimit tight = {(rlim_t)lowest + 1, saved.rlim_max};
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, &tight, nullptr), 0);
	for (int i = 0; i < 4; i++) {
		client c = connect_and_tag(port, 2000);
		EXPECT_EQ(c.tag, 0) << "a connection got through with no descriptor for it";
		if (c.fd >= 0)
			close(c.fd);
	}
	ASSERT_EQ(prlimit(p.pid, RLIMIT_NOFILE, &saved, nullptr), 0);
	client after = connect_and_tag(port, 5000);
	EXPECT_EQ(after.tag, 'a') << "the server was held responsible";
	if (after.fd >= 0)
		close(after.fd);
	EXPECT_EQ(metric_at(admin, "weft_proxy_server_connect_errors_total{backend=\"b\",server=\"s0\"}"), 0);
	EXPECT_EQ(p.stop(), 0);
}

TEST(LimitTest, PastTheBackendQueueSizeAConnectionIsResetAtOnce)
{
	NEED_PROXY();
	backend a('a');
	proxy p;
	int port = free_port(), admin = free_port();
	ASSERT_TRUE(p.start("[global]\nadmin = 127.0.0.1:" + std::to_string(admin) +
			    "\n\n[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			    "\nbackend = b\n\n[backend b]\nqueue_timeout = 5s\nqueue_size = 1\n"
			    "server s0 = 127.0.0.1:" + std::to_string(a.port) + " max_connections=1\n"));
	ASSERT_NE(p.wait_line("admin listening on", 10000), "");
	const std::string queued = "weft_proxy_backend_queue_length{backend=\"b\"}";
	EXPECT_EQ(metric_at(admin, queued), 0);
	/* One served: the server is at its limit. */
	client one = connect_and_tag(port, 5000);
	ASSERT_EQ(one.tag, 'a');
	/* One waits, filling the queue. */
	client two = connect_and_tag(port, 300);
	ASSERT_GE(two.fd, 0);
	EXPECT_EQ(two.tag, 0) << "served past the server's max_connections";
	ASSERT_TRUE(metric_becomes(admin, queued, 1, 2000)) << metric_at(admin, queued);
	/* The next finds the queue full: a reset now, not at queue_timeout. */
	auto t0 = std::chrono::steady_clock::now();
	int three = dial(port);
	ASSERT_GE(three, 0);
	char t;
	errno = 0;
	EXPECT_EQ(recv(three, &t, 1, 0), -1) << "served or waiting past queue_size";
	EXPECT_EQ(errno, ECONNRESET) << strerror(errno);
	auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
		std::chrono::steady_clock::now() - t0);
	EXPECT_LT(waited.count(), 1000) << "refused only after waiting";
	close(three);
	EXPECT_EQ(metric_at(admin, queued), 1) << "the refused connection took the queue's place";
	EXPECT_EQ(a.accepted.load(), 1);
	/* The slot frees: the waiting one is served and the queue empties. */
	close(one.fd);
	struct pollfd pf = {two.fd, POLLIN, 0};
	ASSERT_EQ(poll(&pf, 1, 3000), 1);
	ASSERT_EQ(recv(two.fd, &t, 1, 0), 1);
	EXPECT_EQ(t, 'a');
	EXPECT_TRUE(metric_becomes(admin, queued, 0, 2000)) << metric_at(admin, queued);
	close(two.fd);
	EXPECT_EQ(a.accepted.load(), 2);
	EXPECT_EQ(p.stop(), 0);
}

/* A server that takes one connection and keeps every byte of it, up to
 * the proxy's end of stream. */
struct recorder {
	int lfd = -1, port = 0;
	std::string got;
	std::thread t;

	recorder()
	{
		lfd = listen_loopback(0, &port);
		t = std::thread([this] {
			struct pollfd pf = {lfd, POLLIN, 0};
			if (poll(&pf, 1, 10000) != 1)
				return;
			int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
			if (fd < 0)
				return;
			struct timeval tv = {10, 0};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			got = read_all(fd);
			close(fd);
		});
	}
	/* What arrived; the connection is over. */
	const std::string &wait()
	{
		if (t.joinable())
			t.join();
		return got;
	}
	~recorder()
	{
		shutdown(lfd, SHUT_RDWR);
		if (t.joinable())
			t.join();
		close(lfd);
	}
};

/* Through a proxy listening on `listen` (port `fport`) with send_proxy =
 * version (the backend's; server_options after the server's address):
 * connects from family (AF_INET or AF_INET6 loopback), sends payload and
 * ends its half; returns what the server got, with the client's port in
 * *cport. */
std::string through(const std::string &version, int family, int fport, const std::string &payload,
		    int *cport, const std::string &server_options = "")
{
	recorder r;
	proxy p;
	std::string listen =
		family == AF_INET6 ? "[::1]:" + std::to_string(fport) : "127.0.0.1:" + std::to_string(fport);
	EXPECT_TRUE(p.start("[frontend f]\nlisten = " + listen + "\nbackend = b\n\n[backend b]\nsend_proxy = " +
			    version + "\nserver s0 = 127.0.0.1:" + std::to_string(r.port) + " " +
			    server_options + "\n"));
	EXPECT_NE(p.wait_line("listening on", 10000), "");
	struct sockaddr_storage a = {};
	socklen_t len;
	if (family == AF_INET6) {
		auto *a6 = (struct sockaddr_in6 *)&a;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)fport);
		a6->sin6_addr = in6addr_loopback;
		len = sizeof(*a6);
	} else {
		auto *a4 = (struct sockaddr_in *)&a;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)fport);
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a4);
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	EXPECT_EQ(connect(fd, (struct sockaddr *)&a, len), 0) << strerror(errno);
	struct sockaddr_storage me = {};
	socklen_t mlen = sizeof(me);
	EXPECT_EQ(getsockname(fd, (struct sockaddr *)&me, &mlen), 0);
	*cport = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_port
					  : ((struct sockaddr_in *)&me)->sin_port);
	EXPECT_EQ(send(fd, payload.data(), payload.size(), MSG_NOSIGNAL), (ssize_t)payload.size());
	shutdown(fd, SHUT_WR);
	std::string got = r.wait();
	/* The server closed after our end of stream: so does the client. */
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	EXPECT_EQ(read_all(fd), "");
	close(fd);
	EXPECT_EQ(p.stop(), 0);
	return got;
}

/* A payload that would confuse a sloppy header reader: CRLFs, a NUL, a
 * second PROXY line. */
const char kPayloadBytes[] = "hello\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\0end";
const std::string kPayload(kPayloadBytes, sizeof(kPayloadBytes) - 1);

TEST(SendProxyTest, V1SendsTheTextHeaderThenThePayloadUnchanged)
{
	NEED_PROXY();
	int fport = free_port(), cport = 0;
	std::string got = through("v1", AF_INET, fport, kPayload, &cport);
	EXPECT_EQ(got, "PROXY TCP4 127.0.0.1 127.0.0.1 " + std::to_string(cport) + " " +
			       std::to_string(fport) + "\r\n" + kPayload);
}

/* A server's own send_proxy wins over its backend's, either way. */
TEST(SendProxyTest, AServersOwnSendProxyWinsOverTheBackends)
{
	NEED_PROXY();
	int fport = free_port(), cport = 0;
	std::string got = through("off", AF_INET, fport, kPayload, &cport, "send_proxy=v1");
	EXPECT_EQ(got, "PROXY TCP4 127.0.0.1 127.0.0.1 " + std::to_string(cport) + " " +
			       std::to_string(fport) + "\r\n" + kPayload);
	got = through("v2", AF_INET, fport, kPayload, &cport, "send_proxy=off");
	EXPECT_EQ(got, kPayload);
}

TEST(SendProxyTest, V2SendsTheBinaryHeaderThenThePayloadUnchanged)
{
	NEED_PROXY();
	int fport = free_port(), cport = 0;
	std::string got = through("v2", AF_INET, fport, kPayload, &cport);
	/* Signature, PROXY command of version 2, TCP over IPv4, 12 bytes of
	 * addresses (no TLVs): source, destination, their ports. */
	std::string want("\r\n\r\n\0\r\nQUIT\n", 12);
	const unsigned char fixed[] = {0x21, 0x11, 0x00, 0x0c, 127, 0, 0, 1, 127, 0, 0, 1};
	want.append((const char *)fixed, sizeof(fixed));
	want += (char)(cport >> 8);
	want += (char)(cport & 0xff);
	want += (char)(fport >> 8);
	want += (char)(fport & 0xff);
	ASSERT_EQ(want.size(), 28u);
	EXPECT_EQ(got, want + kPayload);
}

/* A free port on [::1], or 0 without IPv6 loopback. */
int free_port6()
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in6 a = {};
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	socklen_t len = sizeof(a);
	int port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin6_port);
	close(fd);
	return port;
}

TEST(SendProxyTest, V1OverIpv6SendsTcp6)
{
	NEED_PROXY();
	int fport = free_port6(), cport = 0;
	if (!fport)
		GTEST_SKIP() << "no IPv6 loopback";
	std::string got = through("v1", AF_INET6, fport, kPayload, &cport);
	EXPECT_EQ(got, "PROXY TCP6 ::1 ::1 " + std::to_string(cport) + " " + std::to_string(fport) +
			       "\r\n" + kPayload);
}

} // namespace
