// SPDX-License-Identifier: MIT
/*
 * state_test.cc - a server's administrative state, set at run time with
 * POST /servers/BACKEND/SERVER?state=ready|drain|maint on the admin
 * listener (tools/weft-proxy/admin.c, balance.c, health.c), end to end on
 * the real binary (WEFT_PROXY_BIN) in front of backends this test serves:
 *  - drain: new connections go to the other server while one already
 *    through the drained server keeps working both ways; ready brings it
 *    back into the rotation; /metrics and /stats show the state and the
 *    change is logged;
 *  - maint: a server that is down gets no more health checks (its count
 *    stands still while the other server's moves); under drain checks go
 *    on, and after ready they resume;
 *  - the state survives a SIGHUP reload (logged as kept) and only ready
 *    lifts it;
 *  - it survives a binary upgrade too: the hand-over carries a state line
 *    for each server not ready, a state change waiting on a hand-over is
 *    refused with 503 (never lost), and the new process starts with the
 *    states the old one had;
 *  - a connection waiting in the queue for a slot of the last ready
 *    server is not left to its queue_timeout when that server goes to
 *    maint: it goes to the backup at once, or without one is reset at once;
 *  - with slowstart, a server back from maint ramps up: its weight (in
 *    /metrics) starts near 0 and grows, its share of new connections with
 *    it, until an even split again at the end; at the start no server
 *    ramps;
 *  - with nobody reading stderr, 2,000 state changes are all answered,
 *    connections go through, and each message is written or counted as
 *    dropped (the messages' ring, say.c);
 *  - errors: 404 for an unknown backend or server, 400 for a missing,
 *    unknown or repeated state, an unknown parameter or a body, 405 with
 *    Allow for a GET on a server and for a POST on a page;
 *  - every test ends with SIGTERM: exit 0.
 */
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

using namespace std::chrono;

/* The proxy with an admin listener, one frontend and backend b of servers
 * s0, s1, ... on the given ports (s0 with s0_options), then backend_extra. */
struct state_proxy : proxy {
	int admin = 0;
	std::string global; /* more lines for [global] */

	bool start(const std::vector<int> &servers, const std::string &backend_extra = "",
		   const std::string &s0_options = "")
	{
		port = free_port();
		admin = free_port();
		return proxy::start(conf(servers, backend_extra, s0_options)) &&
		       wait_line("admin listening on", 5000) != "";
	}

	std::string conf(const std::vector<int> &servers, const std::string &backend_extra,
			 const std::string &s0_options = "") const
	{
		std::string c = "[global]\nadmin = 127.0.0.1:" + std::to_string(admin) +
				"\naccess_log = off\ndrain_timeout = 1s\n" + global +
				"\n[frontend f]\nlisten = 127.0.0.1:" +
				std::to_string(port) + "\nbackend = b\n\n[backend b]\nconnect_timeout = 1s\n";
		for (size_t i = 0; i < servers.size(); i++)
			c += "server s" + std::to_string(i) + " = 127.0.0.1:" + std::to_string(servers[i]) +
			     (i == 0 ? " " + s0_options : "") + "\n";
		return c + backend_extra;
	}

	/* POST /servers/b/SERVER?QUERY: the status code. */
	int set(const std::string &server, const std::string &query, std::string *body = nullptr)
	{
		return http_request(admin, "POST", "/servers/b/" + server + "?" + query, body);
	}

	double metric(const std::string &series)
	{
		return metric_at(admin, series);
	}
};

#define STATE(srv, st) "weft_proxy_server_state{backend=\"b\",server=\"" srv "\",state=\"" st "\"}"
#define CHECKS(srv) "weft_proxy_server_checks_total{backend=\"b\",server=\"" srv "\"}"

/* Whether what goes out on fd comes back (the echo backend), within 5 s. */
bool echoes(int fd, const std::string &what)
{
	if (send(fd, what.data(), what.size(), MSG_NOSIGNAL) != (ssize_t)what.size())
		return false;
	std::string back;
	char buf[256];
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (back.size() < what.size()) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return false;
		back.append(buf, (size_t)n);
	}
	return back == what;
}

/* SIGTERM, then the exit status, with what stderr still had in *tail
 * (if not NULL). */
int finish(state_proxy &p, std::string *tail = nullptr)
{
	kill(p.pid, SIGTERM);
	std::string rest = p.rest();
	if (tail)
		*tail = rest;
	return p.stop();
}

TEST(StateTest, DrainTakesNoNewConnectionsButAnOpenOneKeepsWorkingAndReadyBringsItBack)
{
	NEED_PROXY();
	backend a('a'), b('b');
	state_proxy p;
	ASSERT_TRUE(p.start({a.port, b.port}));
	EXPECT_EQ(p.metric(STATE("s0", "ready")), 1);
	EXPECT_EQ(p.metric(STATE("s0", "drain")), 0);

	/* A long connection, through s0 or s1; drain the server it reached. */
	int held = dial(p.port);
	ASSERT_GE(held, 0);
	char tag = 0;
	ASSERT_EQ(recv(held, &tag, 1, 0), 1);
	ASSERT_TRUE(tag == 'a' || tag == 'b') << tag;
	std::string name = tag == 'a' ? "s0" : "s1";
	char other = tag == 'a' ? 'b' : 'a';
	std::string body;
	ASSERT_EQ(p.set(name, "state=drain", &body), 200);
	EXPECT_EQ(body, "b/" + name + " drain (was ready)\n");
	std::string line = p.wait_line("set to drain", 3000);
	EXPECT_NE(line.find("server b/" + name + " set to drain (was ready) through the admin listener; 1 of 2 ready"),
		  std::string::npos) << line;
	EXPECT_EQ(p.metric("weft_proxy_server_state{backend=\"b\",server=\"" + name + "\",state=\"drain\"}"), 1);
	EXPECT_EQ(p.metric("weft_proxy_server_state{backend=\"b\",server=\"" + name + "\",state=\"ready\"}"), 0);
	std::string stats;
	ASSERT_EQ(http_request(p.admin, "GET", "/stats", &stats), 200);
	std::string at = "127.0.0.1:" + std::to_string(tag == 'a' ? a.port : b.port);
	EXPECT_NE(stats.find("\"name\":\"" + name + "\",\"address\":\"" + at +
			     "\",\"connects_to\":\"" + at + "\",\"state\":\"drain\""),
		  std::string::npos) << stats;

	/* Every new connection goes to the other server; the drained one's
	 * open connection works on, both ways. */
	EXPECT_EQ(count_tag(p.port, other, 20), 20);
	EXPECT_TRUE(echoes(held, "still here"));

	/* Ready again: back in the round robin. */
	ASSERT_EQ(p.set(name, "state=ready", &body), 200);
	EXPECT_EQ(body, "b/" + name + " ready (was drain)\n");
	EXPECT_NE(p.wait_line("set to ready (was drain)", 3000), "");
	EXPECT_NEAR(count_tag(p.port, tag, 20), 10, 1);
	EXPECT_TRUE(echoes(held, "and now"));
	close(held);
	int st = finish(p);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(StateTest, MaintStopsTheChecksOfADownServerDrainDoesNot)
{
	NEED_PROXY();
	backend a('a');
	int dead = free_port();
	state_proxy p;
	ASSERT_TRUE(p.start({a.port, dead}, "health_check = tcp interval=50ms\n"));
	ASSERT_NE(p.wait_line("server b/s1 is down", 3000), "");

	/* Drain: the checks go on. */
	ASSERT_EQ(p.set("s1", "state=drain"), 200);
	double d0 = p.metric(CHECKS("s1"));
	std::this_thread::sleep_for(milliseconds(400));
	EXPECT_GE(p.metric(CHECKS("s1")) - d0, 3) << "checks stopped under drain";

	/* Maint: none.  A check under way at the change (50 ms at most)
	 * records nothing either; give it that long and then some. */
	ASSERT_EQ(p.set("s1", "state=maint"), 200);
	std::this_thread::sleep_for(milliseconds(150));
	double m0 = p.metric(CHECKS("s1")), a0 = p.metric(CHECKS("s0"));
	std::this_thread::sleep_for(milliseconds(500));
	EXPECT_EQ(p.metric(CHECKS("s1")), m0) << "a server in maint was checked";
	EXPECT_GE(p.metric(CHECKS("s0")) - a0, 5) << "the other server's checks stopped";
	EXPECT_EQ(p.metric(STATE("s1", "maint")), 1);
	/* Still down by its last verdict; in maint, and so out, either way. */
	EXPECT_EQ(p.metric("weft_proxy_server_up{backend=\"b\",server=\"s1\"}"), 0);
	EXPECT_EQ(count_tag(p.port, 'a', 10), 10);

	/* Ready: checked again. */
	ASSERT_EQ(p.set("s1", "state=ready"), 200);
	std::this_thread::sleep_for(milliseconds(400));
	EXPECT_GE(p.metric(CHECKS("s1")) - m0, 3) << "checks did not resume";
	int st = finish(p);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(StateTest, TheStateSurvivesAReload)
{
	NEED_PROXY();
	backend a('a'), b('b'), c('c');
	state_proxy p;
	ASSERT_TRUE(p.start({a.port, b.port}));
	ASSERT_EQ(p.set("s0", "state=maint"), 200);
	EXPECT_EQ(count_tag(p.port, 'b', 10), 10);

	/* A reload that adds a server: s0 is matched by name and stays in maint. */
	FILE *f = fopen(p.file.c_str(), "w");
	ASSERT_NE(f, nullptr);
	fputs(p.conf({a.port, b.port, c.port}, "").c_str(), f);
	fclose(f);
	kill(p.pid, SIGHUP);
	ASSERT_NE(p.wait_line("reloaded", 5000), "");
	std::string kept = p.wait_line("stays in", 2000);
	EXPECT_NE(kept.find("server b/s0 stays in maint"), std::string::npos) << kept;
	EXPECT_EQ(p.metric(STATE("s0", "maint")), 1);
	EXPECT_EQ(p.metric(STATE("s2", "ready")), 1);
	EXPECT_EQ(count_tag(p.port, 'a', 20), 0);

	/* Only ready lifts it. */
	std::string body;
	ASSERT_EQ(p.set("s0", "state=ready", &body), 200);
	EXPECT_EQ(body, "b/s0 ready (was maint)\n");
	EXPECT_NEAR(count_tag(p.port, 'a', 30), 10, 1);
	int st = finish(p);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* The packets an old process hands over on the control socket at path,
 * read as a new process would up to "end" (descriptors closed), with fd
 * the connection, left open: the old process waits for "ready" on it. */
std::vector<std::string> read_handover(const std::string &path, int *fd)
{
	std::vector<std::string> lines;
	*fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {};
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
	if (*fd < 0 || connect(*fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return lines;
	struct timeval tv = {5, 0};
	setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		char buf[512];
		union {
			char b[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr m = {};
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = u.b;
		m.msg_controllen = sizeof(u.b);
		ssize_t n = recvmsg(*fd, &m, MSG_CMSG_CLOEXEC);
		if (n <= 0)
			return lines;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_type == SCM_RIGHTS) {
				int got;
				memcpy(&got, CMSG_DATA(c), sizeof(got));
				close(got);
			}
		lines.emplace_back(buf, (size_t)n);
		if (lines.back() == "end")
			return lines;
	}
}

TEST(StateTest, TheStateSurvivesAnUpgrade)
{
	NEED_PROXY();
	backend a('a'), b('b'), c('c');
	std::string sock = "/tmp/weft-proxy-state-" + std::to_string(getpid()) + ".sock";
	state_proxy p;
	p.global = "upgrade_socket = " + sock + "\n";
	ASSERT_TRUE(p.start({a.port, b.port, c.port}));
	ASSERT_EQ(p.set("s0", "state=maint"), 200);
	ASSERT_EQ(p.set("s1", "state=drain"), 200);

	/* A new process that takes the sockets and never says ready: the
	 * states come after the descriptors, one line per server not ready. */
	int fake;
	std::vector<std::string> lines = read_handover(sock, &fake);
	ASSERT_FALSE(lines.empty());
	EXPECT_EQ(lines.front().rfind("weft-proxy-upgrade 3 pid=", 0), 0u) << lines.front();
	ASSERT_EQ(lines.back(), "end");
	std::vector<std::string> states;
	for (const auto &l : lines)
		if (l.rfind("state ", 0) == 0)
			states.push_back(l);
	EXPECT_EQ(states, (std::vector<std::string>{"state b s0 maint", "state b s1 drain"}));
	/* While the old process waits for "ready", a change would be lost to
	 * the new one: it is refused, and nothing changes. */
	std::string body;
	EXPECT_EQ(p.set("s2", "state=drain", &body), 503);
	EXPECT_NE(body.find("upgrade"), std::string::npos) << body;
	close(fake);
	ASSERT_NE(p.wait_line("did not take over", 5000), "");
	EXPECT_EQ(p.metric(STATE("s2", "ready")), 1);
	EXPECT_EQ(count_tag(p.port, 'c', 10), 10);

	/* The real upgrade: the new process starts with the old one's states. */
	state_proxy next;
	next.port = p.port;
	next.admin = p.admin;
	ASSERT_TRUE(next.launch({"-c", p.file, "--upgrade-from", sock}));
	std::string kept = next.wait_line("b/s0 stays in", 5000);
	EXPECT_NE(kept.find("server b/s0 stays in maint (as in pid " + std::to_string(p.pid)),
		  std::string::npos) << kept;
	kept = next.wait_line("b/s1 stays in", 5000);
	EXPECT_NE(kept.find("server b/s1 stays in drain"), std::string::npos) << kept;
	ASSERT_NE(p.wait_line("accepts on the sockets now", 5000), "");
	int st = p.wait_exit(5000); /* drain_timeout 1s, no connection open */
	EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	p.stop();
	EXPECT_EQ(next.metric(STATE("s0", "maint")), 1);
	EXPECT_EQ(next.metric(STATE("s1", "drain")), 1);
	EXPECT_EQ(count_tag(next.port, 'c', 10), 10);
	ASSERT_EQ(next.set("s0", "state=ready", &body), 200);
	EXPECT_EQ(body, "b/s0 ready (was maint)\n");
	EXPECT_GT(count_tag(next.port, 'a', 20), 0);
	st = finish(next);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* A server at its max_connections, a second client queued for it (10 s
 * queue_timeout): how long that client waits once the server goes to
 * maint, and what it gets. */
void queued_then_maint(bool with_backup, char want)
{
	backend a('a'), spare('z');
	state_proxy p;
	std::string extra = "queue_timeout = 10s\n";
	if (with_backup)
		extra += "server spare = 127.0.0.1:" + std::to_string(spare.port) + " backup\n";
	ASSERT_TRUE(p.start({a.port}, extra, "max_connections=1"));

	int first = dial(p.port);
	ASSERT_GE(first, 0);
	char tag = 0;
	ASSERT_EQ(recv(first, &tag, 1, 0), 1);
	ASSERT_EQ(tag, 'a');
	int second = dial(p.port);
	ASSERT_GE(second, 0);
	for (int i = 0; i < 200 && p.metric("weft_proxy_backend_queue_length{backend=\"b\"}") != 1; i++)
		std::this_thread::sleep_for(milliseconds(10));
	ASSERT_EQ(p.metric("weft_proxy_backend_queue_length{backend=\"b\"}"), 1);

	auto t0 = steady_clock::now();
	ASSERT_EQ(p.set("s0", "state=maint"), 200);
	char got = 0;
	if (recv(second, &got, 1, 0) != 1)
		got = 0; /* reset: no server */
	auto waited = steady_clock::now() - t0;
	EXPECT_EQ(got, want);
	EXPECT_LT(waited, milliseconds(2000)) << "the queued connection waited for its queue_timeout";
	EXPECT_EQ(p.metric("weft_proxy_backend_queue_length{backend=\"b\"}"), 0);
	/* The first connection, through the server now in maint, goes on. */
	EXPECT_TRUE(echoes(first, "on"));
	close(first);
	close(second);
	int st = finish(p);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(StateTest, AQueuedConnectionGoesToTheBackupWhenTheLastReadyServerGoesToMaint)
{
	NEED_PROXY();
	queued_then_maint(true, 'z');
}

TEST(StateTest, AQueuedConnectionIsResetAtOnceWhenNoServerIsLeft)
{
	NEED_PROXY();
	queued_then_maint(false, 0);
}

#define WEIGHT(srv) "weft_proxy_server_weight{backend=\"b\",server=\"" srv "\"}"

TEST(StateTest, SlowstartRampsUpAServerBackFromMaint)
{
	NEED_PROXY();
	backend a('a'), b('b');
	state_proxy p;
	ASSERT_TRUE(p.start({a.port, b.port}, "slowstart = 3s\n"));
	/* Nothing is cold at the start: full weights, an even split. */
	EXPECT_EQ(p.metric(WEIGHT("s1")), 1);
	EXPECT_EQ(count_tag(p.port, 'b', 20), 10);

	ASSERT_EQ(p.set("s1", "state=maint"), 200);
	EXPECT_EQ(count_tag(p.port, 'a', 10), 10);
	ASSERT_EQ(p.set("s1", "state=ready"), 200);
	double w0 = p.metric(WEIGHT("s1"));
	std::this_thread::sleep_for(milliseconds(200));
	double w1 = p.metric(WEIGHT("s1"));
	EXPECT_GT(w0, 0);
	EXPECT_LT(w0, w1) << "the weight does not grow";
	EXPECT_LT(w1, 1);
	EXPECT_EQ(p.metric(WEIGHT("s0")), 1);
	std::string stats;
	ASSERT_EQ(http_request(p.admin, "GET", "/stats", &stats), 200);
	std::string at = "127.0.0.1:" + std::to_string(b.port);
	EXPECT_NE(stats.find("\"name\":\"s1\",\"address\":\"" + at + "\",\"connects_to\":\"" + at +
			     "\",\"state\":\"ready\",\"weight\":0."),
		  std::string::npos) << stats;

	/* Smooth round robin gives s1 w/(1 + w) of the picks, give or take
	 * one, where w is its weight, at most w2 by the end of these. */
	int got = count_tag(p.port, 'b', 20);
	double w2 = p.metric(WEIGHT("s1"));
	EXPECT_LE(got, 20 * w2 / (1 + w2) + 1) << "weight " << w2;
	EXPECT_LT(w2, 1) << "too slow to say anything about the ramp";

	/* The ramp's end: full weight, an even split again. */
	auto until = steady_clock::now() + seconds(6);
	while (p.metric(WEIGHT("s1")) < 1 && steady_clock::now() < until)
		std::this_thread::sleep_for(milliseconds(100));
	EXPECT_EQ(p.metric(WEIGHT("s1")), 1);
	EXPECT_NEAR(count_tag(p.port, 'b', 20), 10, 1);
	int st = finish(p);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

/* The lines on fd until it has had nothing for 500 ms. */
std::vector<std::string> lines_waiting(int fd)
{
	std::vector<std::string> lines;
	std::string part;
	char buf[4096];
	struct pollfd pf = {fd, POLLIN, 0};
	while (poll(&pf, 1, 500) == 1) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		part.append(buf, (size_t)n);
		for (size_t nl; (nl = part.find('\n')) != std::string::npos; part.erase(0, nl + 1))
			lines.push_back(part.substr(0, nl));
	}
	return lines;
}

/*
 * The proxy's messages when nobody reads its stderr: 2,000 state changes
 * say 2,000 lines (about 300 KB) into a pipe that holds 64 KiB.  Every
 * change is still answered and connections still go through, and no line
 * is lost without being counted: the lines written and the dropped count
 * add up to 2,000.  Once stderr is read again, new messages come out.
 */
TEST(StateTest, AStderrNobodyReadsHoldsUpNoWorker)
{
	NEED_PROXY();
	backend a('a'), b('b');
	state_proxy p;
	ASSERT_TRUE(p.start({a.port, b.port}));
	const int changes = 2000;
	for (int i = 0; i < changes; i++)
		ASSERT_EQ(p.set("s1", i % 2 ? "state=ready" : "state=drain"), 200) << "change " << i;
	char t = tag_of(p.port);
	EXPECT_TRUE(t == 'a' || t == 'b') << (int)t;
	double dropped = p.metric("weft_proxy_messages_dropped_total");
	EXPECT_GT(dropped, 0) << "the pipe never filled up: the test shows nothing";

	std::vector<std::string> lines = lines_waiting(p.err);
	int said = 0;
	for (const auto &l : lines) {
		EXPECT_EQ(l.rfind("weft-proxy: ", 0), 0u) << "a cut or mixed line: " << l;
		said += l.find(" set to ") != std::string::npos;
	}
	EXPECT_EQ(said + dropped, changes) << said << " lines, " << dropped << " dropped";
	EXPECT_EQ(p.metric("weft_proxy_messages_dropped_total"), dropped);
	std::string stats;
	ASSERT_EQ(http_request(p.admin, "GET", "/stats", &stats), 200);
	EXPECT_NE(stats.find("\"messages\":{\"lines\":"), std::string::npos) << stats;

	ASSERT_EQ(p.set("s1", "state=maint"), 200);
	EXPECT_NE(p.wait_line("set to maint", 5000), "");
	int st = finish(p);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(StateTest, ErrorsAre404400And405)
{
	NEED_PROXY();
	backend a('a');
	state_proxy p;
	ASSERT_TRUE(p.start({a.port}));
	std::string body, head;
	EXPECT_EQ(http_request(p.admin, "POST", "/servers/nope/s0?state=drain", &body), 404);
	EXPECT_EQ(body, "no backend nope\n");
	EXPECT_EQ(p.set("s9", "state=drain", &body), 404);
	EXPECT_EQ(body, "no server s9\n");
	EXPECT_EQ(http_request(p.admin, "POST", "/servers/b?state=drain", &body), 404);
	EXPECT_EQ(p.set("s0", "state=down", &body), 400);
	EXPECT_EQ(body, "unknown state (ready, drain or maint)\n");
	EXPECT_EQ(p.set("s0", "", &body), 400);
	EXPECT_EQ(body, "state=ready, drain or maint is needed\n");
	EXPECT_EQ(p.set("s0", "state=drain&weight=0", &body), 400);
	EXPECT_EQ(p.set("s0", "state=drain&state=maint", &body), 400);
	EXPECT_EQ(body, "state given twice\n");
	/* A body: the state goes in the query only. */
	{
		int fd = dial(p.admin);
		ASSERT_GE(fd, 0);
		std::string req = "POST /servers/b/s0?state=drain HTTP/1.1\r\nHost: x\r\n"
				  "Content-Length: 11\r\n\r\nstate=maint";
		send(fd, req.data(), req.size(), MSG_NOSIGNAL);
		std::string r = read_all(fd);
		close(fd);
		EXPECT_EQ(r.rfind("HTTP/1.1 400 ", 0), 0u) << r;
	}
	EXPECT_EQ(http_request(p.admin, "GET", "/servers/b/s0?state=drain", &body, &head), 405);
	EXPECT_NE(head.find("\r\nAllow: POST"), std::string::npos) << head;
	EXPECT_EQ(http_request(p.admin, "POST", "/metrics", &body, &head), 405);
	EXPECT_NE(head.find("\r\nAllow: GET, HEAD"), std::string::npos) << head;
	/* None of that changed anything. */
	EXPECT_EQ(p.metric(STATE("s0", "ready")), 1);
	EXPECT_EQ(tag_of(p.port), 'a');
	std::string tail;
	int st = finish(p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(tail.find("set to"), std::string::npos) << tail;
}

} // namespace
