// SPDX-License-Identifier: MIT
/*
 * resolve_test.cc - a server written as host:port, looked up again every
 * resolve_interval (tools/weft-proxy/resolve.c), end to end on the real
 * binary.  The proxy runs in a mount namespace of its own with the test's
 * files on /etc/hosts and /etc/nsswitch.conf (hosts from the file only, so
 * nothing asks a DNS server), and the test decides what the name resolves
 * to and changes it while the proxy runs, by mounting a new file over
 * /etc/hosts in the proxy's namespace (at once: never half written):
 *  - an answer with a second address first keeps the server where it is,
 *    as long as its address is still in the answer;
 *  - the name moves from server a (127.0.0.1) to server b (127.0.0.2, the
 *    same port): new connections follow within an interval, logged once
 *    (their access log lines say server_addr 127.0.0.2, /stats says
 *    connects_to 127.0.0.2), and a
 *    connection made before stays on a and keeps working;
 *  - the name goes: the failure is logged once, however many lookups fail,
 *    each counted (weft_proxy_server_lookup_failures_total), and
 *    connections go on to the address last found; when it comes back,
 *    that is logged too, and lookups go on without failures;
 *  - with resolve_interval off the name is looked up at the start only
 *    (weft_proxy_server_lookups_total stays 0);
 *  - a lookup that hangs on a name server that does not answer (the
 *    test's own, on 127.0.0.77:53, through /etc/resolv.conf) does not
 *    delay another server's;
 *  - every test ends with SIGTERM: exit 0.
 * Skipped where the test cannot make a mount namespace (it needs
 * CAP_SYS_ADMIN, which a container may not grant).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

using namespace std::chrono;

const uint32_t kLoopback2 = 0x7f000002; /* 127.0.0.2 */

/* A file of the test's with text in it: its path. */
std::string temp_file(const std::string &text)
{
	char path[] = "/tmp/weft-resolve-XXXXXX";
	int fd = mkstemp(path);
	EXPECT_GE(fd, 0);
	EXPECT_EQ(write(fd, text.data(), text.size()), (ssize_t)text.size());
	close(fd);
	return path;
}

/* Mounts file over target in the mount namespace of process pid, from a
 * child (setns wants a single thread): what pid reads at target changes
 * at once, never through a half-written file. */
bool bind_in(pid_t pid, const std::string &file, const char *target)
{
	std::string ns = "/proc/" + std::to_string(pid) + "/ns/mnt";
	pid_t child = fork();
	if (child == 0) {
		int fd = open(ns.c_str(), O_RDONLY | O_CLOEXEC);
		_exit(fd >= 0 && setns(fd, CLONE_NEWNS) == 0 &&
			      mount(file.c_str(), target, nullptr, MS_BIND, nullptr) == 0
		      ? 0
		      : 1);
	}
	int st = 0;
	return child > 0 && waitpid(child, &st, 0) == child && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0;
}

/* A proxy in front of one server, svc.weft-test:PORT, whose /etc/hosts is
 * the test's to set (set_hosts), and whose lookups read nothing else. */
struct named {
	backend a{'a'};
	backend b{'b', a.port, kLoopback2}; /* the same port on 127.0.0.2 */
	proxy p;
	int admin = free_port();
	std::vector<std::string> files;

	named()
	{
		files.push_back(temp_file("hosts: files\n"));
		p.binds = {{files.back(), "/etc/nsswitch.conf"}};
	}

	~named()
	{
		for (const auto &f : files)
			unlink(f.c_str());
	}

	/* /etc/hosts for the proxy from now on: mounted before it starts,
	 * over the one before after. */
	bool set_hosts(const std::string &text)
	{
		files.push_back(temp_file(text));
		if (p.pid > 0)
			return bind_in(p.pid, files.back(), "/etc/hosts");
		p.binds.emplace_back(files.back(), "/etc/hosts");
		return true;
	}

	bool resolve_to(const char *ip)
	{
		return set_hosts(std::string(ip) + " svc.weft-test\n");
	}

	/* more_servers: server lines before s's. */
	bool start(const std::string &backend_extra, const std::string &more_servers = "")
	{
		p.port = free_port();
		return p.start("[global]\naccess_log = stderr\nadmin = 127.0.0.1:" +
			       std::to_string(admin) + "\n\n[frontend f]\nlisten = 127.0.0.1:" +
			       std::to_string(p.port) + "\nbackend = b\n\n[backend b]\n" + backend_extra +
			       more_servers + "server s = svc.weft-test:" + std::to_string(a.port) + "\n") &&
		       p.wait_line(("listening on 127.0.0.1:" + std::to_string(p.port)).c_str(), 5000) !=
			       "";
	}

	/* n short connections through the proxy: how many reached tag. */
	int count(char tag, int n)
	{
		return count_tag(p.port, tag, n);
	}

	std::string where(const char *ip) const
	{
		return std::string(ip) + ":" + std::to_string(a.port);
	}
};

#define NEED_NAMESPACE(t)                                                                       \
	do {                                                                                    \
		if (!can_private_binds((t).p.binds))                                            \
			GTEST_SKIP() << "no mount namespace here (needs CAP_SYS_ADMIN)";        \
	} while (0)

/* SIGTERM, then the exit status, with the rest of stderr in *tail. */
int finish(proxy &p, std::string *tail)
{
	kill(p.pid, SIGTERM);
	*tail = p.rest();
	return p.stop();
}

size_t occurrences(const std::string &s, const std::string &what)
{
	size_t n = 0;
	for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
		n++;
	return n;
}

#define LOOKUPS(what) "weft_proxy_server_" what "_total{backend=\"b\",server=\"s\"}"

TEST(ResolveTest, NewConnectionsFollowTheNameAndALostNameKeepsTheLastAddress)
{
	NEED_PROXY();
	named t;
	NEED_NAMESPACE(t);
	ASSERT_TRUE(t.resolve_to("127.0.0.1"));
	ASSERT_TRUE(t.start("resolve_interval = 100ms\n"));
	EXPECT_EQ(t.count('a', 5), 5);

	int held = dial(t.p.port);
	ASSERT_GE(held, 0);
	char tag = 0;
	ASSERT_EQ(recv(held, &tag, 1, 0), 1);
	ASSERT_EQ(tag, 'a');

	/* The name moves: new connections follow, the held one stays. */
	ASSERT_TRUE(t.resolve_to("127.0.0.2"));
	std::string moved = t.p.wait_line("svc.weft-test", 3000);
	EXPECT_NE(moved.find("server b/s: svc.weft-test:" + std::to_string(t.a.port) + " is now " +
			     t.where("127.0.0.2") + " (was " + t.where("127.0.0.1") + ")"),
		  std::string::npos) << moved;
	EXPECT_EQ(t.count('b', 5), 5);
	/* The access log says where they went, /stats where they go. */
	EXPECT_NE(t.p.wait_line(("\"server_addr\":\"" + t.where("127.0.0.2") + "\"").c_str(), 3000),
		  "");
	std::string stats;
	ASSERT_EQ(http_request(t.admin, "GET", "/stats", &stats), 200);
	EXPECT_NE(stats.find("\"address\":\"svc.weft-test:" + std::to_string(t.a.port) +
			     "\",\"connects_to\":\"" + t.where("127.0.0.2") + "\""),
		  std::string::npos) << stats;
	ASSERT_EQ(send(held, "x", 1, MSG_NOSIGNAL), 1);
	char back = 0;
	EXPECT_EQ(recv(held, &back, 1, 0), 1);
	EXPECT_EQ(back, 'x');
	close(held);

	/* Another address ahead of it in the answer (getaddrinfo puts
	 * 127.0.0.1 first here, whatever the file's order) moves nothing
	 * while the one in use is still there. */
	ASSERT_TRUE(t.set_hosts("127.0.0.1 svc.weft-test\n127.0.0.2 svc.weft-test\n"));
	std::this_thread::sleep_for(milliseconds(300));
	EXPECT_EQ(t.count('b', 5), 5);

	/* The name goes: said once, and the last address stays in use. */
	ASSERT_TRUE(t.set_hosts("127.0.0.9 elsewhere.weft-test\n"));
	std::string failed = t.p.wait_line("svc.weft-test", 3000);
	EXPECT_NE(failed.find("looking up svc.weft-test:" + std::to_string(t.a.port) +
			      " failed (no such host); connections go on to " + t.where("127.0.0.2")),
		  std::string::npos) << failed;
	std::this_thread::sleep_for(milliseconds(400)); /* about four lookups more */
	EXPECT_EQ(t.count('b', 5), 5);
	/* Each failed lookup is counted. */
	double failures = metric_at(t.admin, LOOKUPS("lookup_failures"));
	EXPECT_GE(failures, 3);
	EXPECT_GT(metric_at(t.admin, LOOKUPS("lookups")), failures);

	/* Back: said so. */
	ASSERT_TRUE(t.resolve_to("127.0.0.2"));
	std::string again = t.p.wait_line("svc.weft-test", 3000);
	EXPECT_NE(again.find("svc.weft-test:" + std::to_string(t.a.port) + " resolves again, to " +
			     t.where("127.0.0.2")),
		  std::string::npos) << again;
	double lookups = metric_at(t.admin, LOOKUPS("lookups"));
	failures = metric_at(t.admin, LOOKUPS("lookup_failures"));
	std::this_thread::sleep_for(milliseconds(300));
	EXPECT_GT(metric_at(t.admin, LOOKUPS("lookups")), lookups);
	EXPECT_EQ(metric_at(t.admin, LOOKUPS("lookup_failures")), failures);

	std::string tail;
	int st = finish(t.p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(occurrences(tail, "svc.weft-test"), 0u) << "more lines about the name: " << tail;
}

TEST(ResolveTest, WithoutResolveIntervalTheNameIsLookedUpAtTheStartOnly)
{
	NEED_PROXY();
	named t;
	NEED_NAMESPACE(t);
	ASSERT_TRUE(t.resolve_to("127.0.0.1"));
	ASSERT_TRUE(t.start(""));
	EXPECT_EQ(t.count('a', 3), 3);
	ASSERT_TRUE(t.resolve_to("127.0.0.2"));
	std::this_thread::sleep_for(milliseconds(500));
	EXPECT_EQ(t.count('a', 3), 3);
	EXPECT_EQ(metric_at(t.admin, LOOKUPS("lookups")), 0);
	std::string tail;
	int st = finish(t.p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	EXPECT_EQ(occurrences(tail, "svc.weft-test"), 0u) << tail;
}

/* A name server on 127.0.0.77:53 for the test's lookups: it answers a
 * query for an A record with 127.0.0.1 (and one for any other type with no
 * record) until told to go mute, after which it takes queries and answers
 * none, as a name server that is down behind a firewall that drops. */
struct name_server {
	int fd = -1;
	std::atomic<bool> mute{false};
	std::thread t;

	bool start()
	{
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = {};
		a.sin_family = AF_INET;
		a.sin_port = htons(53);
		a.sin_addr.s_addr = htonl(0x7f00004d); /* 127.0.0.77 */
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			return false;
		t = std::thread([this] { serve(); });
		return true;
	}

	void serve()
	{
		unsigned char q[512];
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		ssize_t n;
		while ((n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &len)) > 0) {
			if (mute || n < 17)
				continue;
			/* The question: labels up to a zero, then type and class. */
			size_t end = 12;
			while (end < (size_t)n && q[end])
				end += q[end] + 1u;
			if (end + 5 > (size_t)n)
				continue;
			end += 5;
			bool a_query = q[end - 4] == 0 && q[end - 3] == 1;
			unsigned char r[600];
			memcpy(r, q, end);
			r[2] = 0x81, r[3] = 0x80; /* a response, recursion available, no error */
			r[6] = 0, r[7] = a_query; /* answers */
			r[8] = r[9] = r[10] = r[11] = 0;
			size_t m = end;
			if (a_query) {
				const unsigned char rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0,
							    0, 4, 127, 0, 0, 1};
				memcpy(r + m, rr, sizeof(rr));
				m += sizeof(rr);
			}
			sendto(fd, r, m, 0, (struct sockaddr *)&from, len);
		}
	}

	~name_server()
	{
		if (t.joinable()) {
			shutdown(fd, SHUT_RDWR); /* ends the recvfrom */
			t.join();
		}
		if (fd >= 0)
			close(fd);
	}
};

/* A lookup held up by a name server that does not answer (for the
 * resolver's whole timeout, 2 s here) holds up no other server's: each
 * server is looked up by a task of its own.  The mute name's server comes
 * first in the backend, so a single task going through them in order would
 * see svc's move only after the timeout. */
TEST(ResolveTest, ALookupThatHangsHoldsUpNoOtherServer)
{
	NEED_PROXY();
	named t;
	t.files.push_back(temp_file("hosts: files dns\n"));
	t.p.binds[0].first = t.files.back();
	t.files.push_back(temp_file("nameserver 127.0.0.77\noptions timeout:2 attempts:1\n"));
	t.p.binds.emplace_back(t.files.back(), "/etc/resolv.conf");
	NEED_NAMESPACE(t);
	name_server ns;
	if (!ns.start())
		GTEST_SKIP() << "cannot bind 127.0.0.77:53 here: " << strerror(errno);
	ASSERT_TRUE(t.resolve_to("127.0.0.1"));
	ASSERT_TRUE(t.start("resolve_interval = 100ms\n",
			    "server q = mute.weft-test:" + std::to_string(t.a.port) + "\n"));
	EXPECT_EQ(t.count('a', 4), 4) << "both names lead to a";
	ns.mute = true;
	std::this_thread::sleep_for(milliseconds(300)); /* q's lookups now hang */
	auto t0 = steady_clock::now();
	ASSERT_TRUE(t.resolve_to("127.0.0.2"));
	std::string moved = t.p.wait_line("svc.weft-test", 1000);
	EXPECT_NE(moved.find("is now " + t.where("127.0.0.2")), std::string::npos)
		<< "svc's move not followed within 1 s, "
		<< duration_cast<milliseconds>(steady_clock::now() - t0).count() << " ms: " << moved;
	std::string tail;
	int st = finish(t.p, &tail);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

} // namespace
