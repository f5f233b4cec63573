// SPDX-License-Identifier: MIT
/*
 * net_test.cc - the blocking pool and <weft/net.h>.
 *
 * Properties covered:
 *  - addresses: every accepted form parses and formats back to itself; each
 *    malformed form is -EINVAL and leaves the address untouched; formatting
 *    into a short buffer is -ENOSPC; localhost resolves through the pool,
 *    numeric addresses without it;
 *  - weft_spawn_blocking: fn runs on a pool thread while other tasks keep
 *    the only worker busy; more jobs than threads all complete, never more
 *    than the bound at once; a queued job is withdrawn unrun on cancellation
 *    or deadline; a running one is waited for and its result delivered, the
 *    cancellation reported afterwards; a detachable job is abandoned and
 *    released; idle threads exit; shutdown waits for a running job and
 *    joins idle threads;
 *  - stream sockets: listen/accept/connect/send_all/recv_exact across tasks,
 *    descriptor flags, IPv4 and IPv6 listeners on one port, ECONNREFUSED
 *    (by address and by name), EOF in the middle of recv_exact, deadlines;
 *  - the reader: lines ended by LF and CRLF, the maximum line length, lines
 *    split over many recvs, a timed-out read_line that loses nothing,
 *    read_until past the initial capacity, read_exact mixing buffered and
 *    fresh bytes;
 *  - UDP round trip and truncation; unix sockets, stale-path reclaim,
 *    abstract names; TCP options.
 * Every test runs on loopback and checks that shutdown left no task and no
 * descriptor behind.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "runtime/blocking.h"
#include "weft/io.h"
#include "weft/net.h"

namespace {

int count_fds()
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (struct dirent *e = readdir(d))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Every test: no descriptor outlives it. */
class Net : public ::testing::Test {
protected:
	void SetUp() override { fds_ = count_fds(); }
	void TearDown() override { EXPECT_EQ(count_fds(), fds_) << "descriptors leaked"; }
	int fds_ = 0;
};
using AddrTest = Net;
using BlockingTest = Net;
using SockTest = Net;
using ReaderTest = Net;
using UdpTest = Net;
using UnixTest = Net;

/* The runtime the current test body runs in. */
struct weft_rt *g_rt;

/* run_in_weft with options, exposing the runtime in g_rt. */
intptr_t run_with(struct weft_opts o, std::function<intptr_t()> body)
{
	struct weft_rt *rt = nullptr;
	int rc = weft_rt_new(&rt, &o);
	EXPECT_EQ(rc, 0);
	if (rc < 0)
		return rc;
	g_rt = rt;
	intptr_t result = -1;
	EXPECT_EQ(weft_rt_run(
			  rt,
			  [](void *arg) -> intptr_t {
				  return (*static_cast<std::function<intptr_t()> *>(arg))();
			  },
			  &body, &result),
		  0);
	EXPECT_EQ(weft_rt_shutdown(rt, 2 * WEFT_SEC), 0) << "tasks left behind at shutdown";
	g_rt = nullptr;
	return result;
}

void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, nullptr);
}

/* Spins (on a plain thread) until flag is set or 5 s pass. */
void wait_flag(const std::atomic<bool> &flag)
{
	for (int i = 0; i < 5000 && !flag.load(); i++)
		sleep_ms(1);
}

/* In a task: sleeps until flag is set or 5 s pass. */
void task_wait_flag(const std::atomic<bool> &flag)
{
	for (int i = 0; i < 5000 && !flag.load(); i++)
		weft_sleep(WEFT_MSEC);
}

/* Calls a capturing lambda through weft_spawn_blocking. */
int blocking(std::function<intptr_t()> f, intptr_t *result)
{
	return weft_spawn_blocking(
		[](void *a) -> intptr_t { return (*static_cast<std::function<intptr_t()> *>(a))(); },
		&f, result);
}

std::string fmt(const struct weft_addr &a)
{
	char buf[WEFT_ADDR_STRLEN];
	int n = weft_addr_format(&a, buf, sizeof(buf));
	return n < 0 ? "<error " + std::to_string(n) + ">" : std::string(buf);
}

struct weft_addr addr(const char *s)
{
	struct weft_addr a;
	memset(&a, 0, sizeof(a));
	EXPECT_EQ(weft_addr_parse(&a, s), 0) << s;
	return a;
}

int listen_on(const char *s, const struct weft_listen_opts *o = nullptr)
{
	struct weft_addr a = addr(s);
	return weft_sock_listen(&a, o);
}

int port_of(const char *s)
{
	struct weft_addr a = addr(s);
	return weft_addr_port(&a);
}

int udp_on(const char *s)
{
	struct weft_addr a = addr(s);
	return weft_udp_bind(&a);
}

int connect_to(const char *s)
{
	struct weft_addr a = addr(s);
	return weft_sock_connect(&a);
}

bool ipv6_loopback()
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 a = {};
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* A loopback port nobody listens on. */
int free_port()
{
	int fd = listen_on("127.0.0.1:0");
	struct weft_addr a;
	EXPECT_EQ(weft_sock_local_addr(fd, &a), 0);
	close(fd);
	return weft_addr_port(&a);
}

/* ---- Addresses ------------------------------------------------------------- */

TEST_F(AddrTest, EveryFormRoundTrips)
{
	std::vector<std::string> forms = {
		"1.2.3.4:80",	  "0.0.0.0:0",	       "255.255.255.255:65535",
		"[::1]:80",	  "[::]:0",	       "[2001:db8::1:2]:443",
		"[::ffff:1.2.3.4]:1", "[fe80::1%4000000000]:7", "unix:/tmp/weft.sock",
		"unix:relative.sock", "unix:@weft-abstract",
	};
	unsigned lo = if_nametoindex("lo");
	if (lo)
		forms.push_back("[fe80::1%lo]:8080");
	std::string longest(107, 'p');
	longest[0] = '/';
	forms.push_back("unix:" + longest);
	for (const auto &s : forms) {
		struct weft_addr a;
		ASSERT_EQ(weft_addr_parse(&a, s.c_str()), 0) << s;
		EXPECT_EQ(fmt(a), s);
		struct weft_addr b;
		ASSERT_EQ(weft_addr_parse(&b, fmt(a).c_str()), 0) << s;
		EXPECT_EQ(a.len, b.len);
		EXPECT_EQ(memcmp(&a.ss, &b.ss, a.len), 0) << s;
	}
	EXPECT_EQ(port_of("1.2.3.4:80"), 80);
	EXPECT_EQ(port_of("[::1]:65535"), 65535);
	EXPECT_EQ(port_of("unix:/x"), -EAFNOSUPPORT);
	if (lo) {
		EXPECT_EQ(addr("[fe80::1%lo]:1").in6.sin6_scope_id, lo);
	}
	struct weft_addr ab = addr("unix:@weft-abstract");
	EXPECT_EQ(ab.un.sun_path[0], 0) << "abstract names start with a NUL";
}

TEST_F(AddrTest, FormattingNormalises)
{
	EXPECT_EQ(fmt(addr("1.2.3.4:00080")), "1.2.3.4:80");
	EXPECT_EQ(fmt(addr("[2001:DB8:0:0::1]:1")), "[2001:db8::1]:1");
}

TEST_F(AddrTest, EveryMalformedFormIsRejectedAndLeavesTheAddressAlone)
{
	const char *bad[] = {
		"",		     "1.2.3.4",		"1.2.3.4:",	      ":80",
		"1.2.3.4:65536",     "1.2.3.4:123456",	"1.2.3.4:-1",	      "1.2.3.4:+80",
		"1.2.3.4:8x",	     "1.2.3.4:80 ",	" 1.2.3.4:80",	      "1.2.3:80",
		"1.2.3.256:80",	     "01.2.3.4:80",	"1.2.3.4:0x50",	      "::1:80",
		"[::1:80",	     "::1]:80",		"[::1]80",	      "[::1]",
		"[]:80",	     "[1.2.3.4]:80",	"[::1%]:80",	      "[::1%no-such-if9]:80",
		"[[::1]]:80",	     "[::1]]:80",	"[::g]:80",	      "localhost:80",
		"unix:",	     "unix:@",		"unix",		      "tcp:1.2.3.4:80",
		"[::1]:80:80",
	};
	std::string too_long = "unix:/" + std::string(107, 'p');
	std::string too_long_abstract = "unix:@" + std::string(108, 'p');
	std::vector<const char *> all(std::begin(bad), std::end(bad));
	all.push_back(too_long.c_str());
	all.push_back(too_long_abstract.c_str());
	all.push_back(nullptr);
	for (const char *s : all) {
		struct weft_addr a, before;
		memset(&a, 0xab, sizeof(a));
		before = a;
		EXPECT_EQ(weft_addr_parse(&a, s), -EINVAL) << (s ? s : "(null)");
		EXPECT_EQ(memcmp(&a, &before, sizeof(a)), 0) << "partial result for " << s;
	}
}

TEST_F(AddrTest, FormatIntoAShortBufferIsENOSPC)
{
	struct weft_addr a = addr("[2001:db8::1]:443");
	const std::string full = "[2001:db8::1]:443";
	char buf[64];
	EXPECT_EQ(weft_addr_format(&a, buf, full.size() + 1), (int)full.size());
	EXPECT_EQ(buf, full);
	memset(buf, 'x', sizeof(buf));
	EXPECT_EQ(weft_addr_format(&a, buf, full.size()), -ENOSPC);
	EXPECT_EQ(buf[0], 0);
	EXPECT_EQ(weft_addr_format(&a, buf, 0), -ENOSPC);
	struct weft_addr none = {};
	none.sa.sa_family = AF_PACKET;
	none.len = sizeof(none.ss);
	EXPECT_EQ(weft_addr_format(&none, buf, sizeof(buf)), -EAFNOSUPPORT);
	struct weft_addr shortv4 = a;
	shortv4.sa.sa_family = AF_INET;
	shortv4.len = 4;
	EXPECT_EQ(weft_addr_format(&shortv4, buf, sizeof(buf)), -EAFNOSUPPORT);
}

TEST_F(AddrTest, LocalhostResolvesThroughThePoolNumbersWithout)
{
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [] {
		struct weft_addr out[8];
		EXPECT_EQ(weft_addr_resolve("127.0.0.1:9", out, 8), 1);
		EXPECT_EQ(weft_addr_resolve("unix:/x", out, 8), 1);
		EXPECT_EQ(weft__blocking_threads(g_rt), 0u) << "numeric addresses need no thread";

		int n = weft_addr_resolve("localhost:8080", out, 8);
		EXPECT_GE(n, 1);
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(weft_addr_port(&out[i]), 8080);
			std::string s = fmt(out[i]);
			EXPECT_TRUE(s == "127.0.0.1:8080" || s == "[::1]:8080") << s;
		}
		EXPECT_EQ(weft__blocking_threads(g_rt), 1u) << "the lookup ran on the pool";

		EXPECT_EQ(weft_addr_resolve("localhost:8080", out, 0), -EINVAL);
		EXPECT_EQ(weft_addr_resolve("localhost", out, 8), -EINVAL);
		EXPECT_EQ(weft_addr_resolve("localhost:", out, 8), -EINVAL);
		EXPECT_EQ(weft_addr_resolve("[localhost]:80", out, 8), -EINVAL);
		EXPECT_EQ(weft_addr_resolve("bad host:80", out, 8), -EINVAL);
		EXPECT_EQ(weft_addr_resolve(":80", out, 8), -EINVAL);
		return (intptr_t)0;
	});
}

/* ---- weft_spawn_blocking ------------------------------------------------------- */

TEST_F(BlockingTest, RunsOnAnotherThreadWhileTheWorkerRunsOtherTasks)
{
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [] {
		std::atomic<bool> stop{false};
		std::atomic<int> ticks{0};
		struct weft_task *ticker = go([&] {
			while (!stop.load()) {
				ticks++;
				weft_sleep(WEFT_MSEC);
			}
			return (intptr_t)0;
		});
		pthread_t worker = pthread_self(), runner{};
		int during = 0;
		intptr_t r = 0;
		EXPECT_EQ(blocking(
				  [&] {
					  runner = pthread_self();
					  int before = ticks.load();
					  sleep_ms(100); /* holds this thread, not the worker */
					  during = ticks.load() - before;
					  return (intptr_t)42;
				  },
				  &r),
			  0);
		EXPECT_EQ(r, 42);
		EXPECT_FALSE(pthread_equal(worker, runner)) << "fn ran on the worker";
		EXPECT_GE(during, 10) << "the worker did not run the other task meanwhile";
		stop = true;
		join(ticker);
		return (intptr_t)0;
	});
}

TEST_F(BlockingTest, MoreJobsThanThreadsAllCompleteWithinTheBound)
{
	struct weft_opts o = {};
	o.workers = 2;
	o.blocking_threads = 3;
	const int jobs = 24;
	std::atomic<int> running{0}, peak{0}, done{0};
	run_with(o, [&] {
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < jobs; i++)
			ts.push_back(go([&, i] {
				intptr_t r = -1;
				int rc = blocking(
					[&, i] {
						int now = ++running;
						int p = peak.load();
						while (now > p && !peak.compare_exchange_weak(p, now))
							;
						sleep_ms(5);
						running--;
						done++;
						return (intptr_t)i;
					},
					&r);
				EXPECT_EQ(rc, 0);
				return r;
			}));
		for (int i = 0; i < jobs; i++)
			EXPECT_EQ(join(ts[i]), i);
		EXPECT_LE(weft__blocking_threads(g_rt), 3u);
		return (intptr_t)0;
	});
	EXPECT_EQ(done.load(), jobs);
	EXPECT_LE(peak.load(), 3);
	EXPECT_GE(peak.load(), 2) << "jobs should overlap";
}

/* One thread, held by a job waiting on `gate`; a second job then queues. */
struct held {
	std::atomic<bool> started{false}, gate{false}, second_ran{false};
};

TEST_F(BlockingTest, QueuedJobIsWithdrawnOnCancellationAndNeverRuns)
{
	struct weft_opts o = {};
	o.workers = 2;
	o.blocking_threads = 1;
	held h;
	run_with(o, [&] {
		struct weft_task *first = go([&] {
			intptr_t r = 0;
			EXPECT_EQ(blocking(
					  [&] {
						  h.started = true;
						  wait_flag(h.gate);
						  return (intptr_t)1;
					  },
					  &r),
				  0);
			return r;
		});
		task_wait_flag(h.started);
		struct weft_task *second = go([&] {
			intptr_t r = 7;
			int rc = blocking(
				[&] {
					h.second_ran = true;
					return (intptr_t)2;
				},
				&r);
			EXPECT_EQ(r, 7) << "no result without a run";
			return (intptr_t)rc;
		});
		weft_sleep(20 * WEFT_MSEC); /* second is queued behind first */
		weft_cancel(second);
		EXPECT_EQ(join(second), -ECANCELED);
		h.gate = true;
		EXPECT_EQ(join(first), 1);
		weft_sleep(20 * WEFT_MSEC);
		EXPECT_FALSE(h.second_ran.load()) << "a withdrawn job ran";
		return (intptr_t)0;
	});
}

TEST_F(BlockingTest, QueuedJobIsWithdrawnAtTheDeadline)
{
	struct weft_opts o = {};
	o.workers = 1;
	o.blocking_threads = 1;
	held h;
	run_with(o, [&] {
		struct weft_task *first = go([&] {
			intptr_t r = 0;
			blocking(
				[&] {
					h.started = true;
					wait_flag(h.gate);
					return (intptr_t)1;
				},
				&r);
			return r;
		});
		task_wait_flag(h.started);
		struct weft_scope s;
		uint64_t t0 = weft_now();
		weft_scope_deadline(&s, 30 * WEFT_MSEC);
		EXPECT_EQ(blocking(
				  [&] {
					  h.second_ran = true;
					  return (intptr_t)2;
				  },
				  nullptr),
			  -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		EXPECT_GE(weft_now() - t0, 30 * WEFT_MSEC);
		EXPECT_LT(weft_now() - t0, 2 * WEFT_SEC);
		h.gate = true;
		EXPECT_EQ(join(first), 1);
		EXPECT_FALSE(h.second_ran.load());
		return (intptr_t)0;
	});
}

TEST_F(BlockingTest, RunningJobIsWaitedForDespiteCancellation)
{
	struct weft_opts o = {};
	o.workers = 2;
	held h;
	std::atomic<bool> returned{false};
	run_with(o, [&] {
		struct weft_task *t = go([&] {
			intptr_t r = 0;
			int rc = blocking(
				[&] {
					h.started = true;
					wait_flag(h.gate);
					return (intptr_t)99;
				},
				&r);
			returned = true;
			EXPECT_EQ(rc, 0) << "fn ran to its end: its result counts";
			EXPECT_EQ(r, 99);
			EXPECT_EQ(weft_yield(), -ECANCELED) << "the cancellation is still pending";
			return r;
		});
		task_wait_flag(h.started);
		weft_cancel(t);
		weft_sleep(30 * WEFT_MSEC);
		EXPECT_FALSE(returned.load()) << "returned while fn ran on its stack's data";
		h.gate = true;
		EXPECT_EQ(join(t), 99);
		return (intptr_t)0;
	});
}

TEST_F(BlockingTest, RunningJobOutlastsTheDeadlineAndDeliversItsResult)
{
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		struct weft_scope s;
		uint64_t t0 = weft_now();
		weft_scope_deadline(&s, 20 * WEFT_MSEC);
		intptr_t r = 0;
		EXPECT_EQ(blocking(
				  [] {
					  sleep_ms(60);
					  return (intptr_t)5;
				  },
				  &r),
			  0);
		EXPECT_EQ(r, 5);
		EXPECT_GE(weft_now() - t0, 60 * WEFT_MSEC);
		EXPECT_EQ(weft_sleep(WEFT_MSEC), -ETIMEDOUT) << "the deadline applies again";
		EXPECT_EQ(weft_scope_end(&s), 1);
		return (intptr_t)0;
	});
}

std::atomic<int> released{-1};

TEST_F(BlockingTest, DetachableJobIsAbandonedAtTheDeadlineAndReleasedLater)
{
	struct weft_opts o = {};
	o.workers = 1;
	static held h;
	h.started = false;
	h.gate = false;
	released = -1;
	run_with(o, [&] {
		struct weft_scope s;
		uint64_t t0 = weft_now();
		weft_scope_deadline(&s, 30 * WEFT_MSEC);
		int *state = new int(3);
		intptr_t r = 0;
		int rc = weft__spawn_blocking_detachable(
			[](void *arg) -> intptr_t {
				h.started = true;
				wait_flag(h.gate);
				return *static_cast<int *>(arg) * 2;
			},
			state,
			[](void *arg, intptr_t result) {
				delete static_cast<int *>(arg);
				released = (int)result;
			},
			&r);
		EXPECT_EQ(rc, -ETIMEDOUT);
		EXPECT_LT(weft_now() - t0, 2 * WEFT_SEC);
		EXPECT_EQ(weft_scope_end(&s), 1);
		EXPECT_TRUE(h.started.load());
		EXPECT_EQ(released.load(), -1) << "released while fn runs";
		h.gate = true;
		for (int i = 0; i < 5000 && released.load() < 0; i++)
			weft_sleep(WEFT_MSEC);
		EXPECT_EQ(released.load(), 6) << "release gets fn's result";

		/* Finished in time: the state is the caller's again. */
		int *mine = new int(4);
		EXPECT_EQ(weft__spawn_blocking_detachable(
				  [](void *arg) -> intptr_t { return *static_cast<int *>(arg); }, mine,
				  [](void *, intptr_t) { released = 100; }, &r),
			  0);
		EXPECT_EQ(r, 4);
		delete mine;
		EXPECT_EQ(released.load(), 6);
		return (intptr_t)0;
	});
}

TEST_F(BlockingTest, IdleThreadsExitAndShutdownJoinsTheRest)
{
	struct weft_opts o = {};
	o.workers = 1;
	o.blocking_idle_ns = 20 * WEFT_MSEC;
	run_with(o, [&] {
		EXPECT_EQ(weft__blocking_threads(g_rt), 0u) << "threads start lazily";
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < 4; i++)
			ts.push_back(go([] {
				intptr_t r = 0;
				blocking(
					[] {
						sleep_ms(20);
						return (intptr_t)1;
					},
					&r);
				return r;
			}));
		for (auto t : ts)
			EXPECT_EQ(join(t), 1);
		EXPECT_GE(weft__blocking_threads(g_rt), 2u);
		for (int i = 0; i < 2000 && weft__blocking_threads(g_rt) > 0; i++)
			weft_sleep(WEFT_MSEC);
		EXPECT_EQ(weft__blocking_threads(g_rt), 0u) << "idle threads should exit";
		/* A fresh thread starts on demand; it is idle at shutdown. */
		intptr_t r = 0;
		EXPECT_EQ(blocking([] { return (intptr_t)8; }, &r), 0);
		EXPECT_EQ(r, 8);
		EXPECT_EQ(weft__blocking_threads(g_rt), 1u);
		return (intptr_t)0;
	});
}

TEST_F(BlockingTest, ShutdownWaitsForARunningJob)
{
	struct weft_opts o = {};
	o.workers = 1;
	static std::atomic<bool> started, finished;
	started = finished = false;
	run_with(o, [&] {
		/* Left running when the main task returns: shutdown cancels it,
		 * it keeps waiting for fn, then finishes. */
		weft_detach(go([] {
			blocking(
				[] {
					started = true;
					sleep_ms(50);
					finished = true;
					return (intptr_t)0;
				},
				nullptr);
			return (intptr_t)0;
		}));
		task_wait_flag(started);
		return (intptr_t)0;
	});
	EXPECT_TRUE(finished.load());
}

/* ---- Stream sockets --------------------------------------------------------------- */

TEST_F(SockTest, ListenAcceptConnectSendAllRecvExactAcrossTasks)
{
	const size_t size = WEFT_TEST_SCALE(4u << 20) + 12345;
	struct weft_opts o = {};
	o.workers = 2;
	run_with(o, [&] {
		int l = listen_on("127.0.0.1:0");
		EXPECT_GE(l, 0);
		struct weft_addr la;
		EXPECT_EQ(weft_sock_local_addr(l, &la), 0);
		EXPECT_GT(weft_addr_port(&la), 0);
		std::vector<unsigned char> out(size);
		for (size_t i = 0; i < size; i++)
			out[i] = (unsigned char)(i * 7 + i / 251);

		struct weft_task *server = go([&] {
			struct weft_addr peer;
			int c = weft_sock_accept(l, &peer);
			EXPECT_GE(c, 0);
			if (c < 0)
				return (intptr_t)c;
			EXPECT_EQ(fmt(peer).rfind("127.0.0.1:", 0), 0u) << fmt(peer);
			EXPECT_EQ(fcntl(c, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
			std::vector<unsigned char> in(size);
			size_t got = 0;
			EXPECT_EQ(weft_sock_recv_exact(c, in.data(), size, &got), (ssize_t)size);
			EXPECT_EQ(got, size);
			EXPECT_TRUE(in == out);
			size_t sent = 0;
			EXPECT_EQ(weft_sock_send_all(c, "ok", 2, &sent), 2);
			EXPECT_EQ(sent, 2u);
			/* The client closes: a clean end between messages. */
			char b;
			EXPECT_EQ(weft_sock_recv_exact(c, &b, 1, &got), 0);
			EXPECT_EQ(got, 0u);
			weft_close(c);
			return (intptr_t)0;
		});
		int fd = weft_sock_connect(&la);
		EXPECT_GE(fd, 0);
		EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		size_t sent = 0;
		EXPECT_EQ(weft_sock_send_all(fd, out.data(), size, &sent), (ssize_t)size);
		EXPECT_EQ(sent, size);
		char ok[2];
		EXPECT_EQ(weft_sock_recv_exact(fd, ok, 2, nullptr), 2);
		EXPECT_EQ(memcmp(ok, "ok", 2), 0);
		weft_close(fd);
		EXPECT_EQ(join(server), 0);
		weft_close(l);
		return (intptr_t)0;
	});
}

TEST_F(SockTest, ListenerIsNonblockingAndCloexec)
{
	int l = listen_on("127.0.0.1:0");
	ASSERT_GE(l, 0);
	EXPECT_EQ(fcntl(l, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	EXPECT_EQ(fcntl(l, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	int one = 0;
	socklen_t len = sizeof(one);
	EXPECT_EQ(getsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, &len), 0);
	EXPECT_EQ(one, 1);
	close(l);
	struct weft_addr none = {};
	EXPECT_EQ(weft_sock_listen(&none, nullptr), -EINVAL);
	none.sa.sa_family = AF_PACKET;
	none.len = sizeof(none.ss);
	EXPECT_EQ(weft_sock_listen(&none, nullptr), -EAFNOSUPPORT);
}

TEST_F(SockTest, IPv4AndIPv6ListenersShareOnePort)
{
	if (!ipv6_loopback())
		GTEST_SKIP() << "no IPv6 loopback here";
	struct weft_opts o = {};
	o.workers = 2;
	run_with(o, [] {
		int l4 = listen_on("0.0.0.0:0");
		EXPECT_GE(l4, 0);
		struct weft_addr a;
		weft_sock_local_addr(l4, &a);
		int port = weft_addr_port(&a);
		std::string v6 = "[::]:" + std::to_string(port);
		int l6 = listen_on(v6.c_str());
		EXPECT_GE(l6, 0) << "IPV6_V6ONLY lets [::]:P coexist with 0.0.0.0:P";
		int on = 0;
		socklen_t len = sizeof(on);
		EXPECT_EQ(getsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &on, &len), 0);
		EXPECT_EQ(on, 1);

		const std::pair<const char *, int> cases[] = {{"127.0.0.1", l4}, {"[::1]", l6}};
		for (const auto &cs : cases) {
			const char *host = cs.first;
			int l = cs.second;
			std::string s = std::string(host) + ":" + std::to_string(port);
			struct weft_task *acc = go([l] {
				struct weft_addr peer;
				int c = weft_sock_accept(l, &peer);
				if (c >= 0)
					weft_close(c);
				return (intptr_t)(c >= 0 ? peer.sa.sa_family : c);
			});
			int fd = weft_sock_dial(s.c_str());
			EXPECT_GE(fd, 0) << s;
			intptr_t fam = join(acc);
			EXPECT_EQ(fam, l == l4 ? AF_INET : AF_INET6) << s;
			if (fd >= 0)
				weft_close(fd);
		}
		weft_close(l4);
		weft_close(l6);
		return (intptr_t)0;
	});
}

TEST_F(SockTest, ConnectToAPortNobodyListensOnIsRefused)
{
	int port = free_port();
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [port] {
		std::string v4 = "127.0.0.1:" + std::to_string(port);
		EXPECT_EQ(connect_to(v4.c_str()), -ECONNREFUSED);
		EXPECT_EQ(weft_sock_dial(v4.c_str()), -ECONNREFUSED);
		/* By name: every address localhost has is tried, each refuses. */
		std::string name = "localhost:" + std::to_string(port);
		EXPECT_EQ(weft_sock_dial(name.c_str()), -ECONNREFUSED);
		EXPECT_EQ(weft_sock_dial("localhost"), -EINVAL);
		return (intptr_t)0;
	});
}

TEST_F(SockTest, DialByNameConnects)
{
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [] {
		int l = listen_on("127.0.0.1:0");
		struct weft_addr a;
		weft_sock_local_addr(l, &a);
		std::string name = "localhost:" + std::to_string(weft_addr_port(&a));
		struct weft_task *acc = go([l] { return (intptr_t)weft_sock_accept(l, nullptr); });
		int fd = weft_sock_dial(name.c_str());
		EXPECT_GE(fd, 0);
		intptr_t c = join(acc);
		EXPECT_GE(c, 0);
		EXPECT_EQ(weft_sock_send_all(fd, "x", 1, nullptr), 1);
		char b = 0;
		EXPECT_EQ(weft_sock_recv_exact((int)c, &b, 1, nullptr), 1);
		EXPECT_EQ(b, 'x');
		weft_close((int)c);
		weft_close(fd);
		weft_close(l);
		return (intptr_t)0;
	});
}

TEST_F(SockTest, RecvExactReportsAnEndInTheMiddleAsEPIPE)
{
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		EXPECT_EQ(weft_sock_send_all(sv[0], "abc", 3, nullptr), 3);
		EXPECT_EQ(weft_shutdown(sv[0], SHUT_WR), 0);
		char buf[8];
		size_t got = 99;
		EXPECT_EQ(weft_sock_recv_exact(sv[1], buf, sizeof(buf), &got), -EPIPE);
		EXPECT_EQ(got, 3u);
		EXPECT_EQ(memcmp(buf, "abc", 3), 0);
		EXPECT_EQ(weft_sock_recv_exact(sv[1], buf, sizeof(buf), &got), 0);
		EXPECT_EQ(got, 0u);
		return (intptr_t)0;
	});
	close(sv[0]);
	close(sv[1]);
}

TEST_F(SockTest, RecvExactAndSendAllHonourTheDeadline)
{
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		EXPECT_EQ(weft_sock_send_all(sv[0], "ab", 2, nullptr), 2);
		char buf[8];
		size_t got = 0;
		struct weft_scope s;
		weft_scope_deadline(&s, 20 * WEFT_MSEC);
		EXPECT_EQ(weft_sock_recv_exact(sv[1], buf, sizeof(buf), &got), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		EXPECT_EQ(got, 2u) << "bytes received before the deadline are reported";

		/* Nobody reads sv[1]: the send fills the socket and stops. */
		std::vector<char> big(8 << 20);
		size_t sent = 0;
		weft_scope_deadline(&s, 20 * WEFT_MSEC);
		EXPECT_EQ(weft_sock_send_all(sv[0], big.data(), big.size(), &sent), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		EXPECT_GT(sent, 0u);
		EXPECT_LT(sent, big.size());
		return (intptr_t)0;
	});
	close(sv[0]);
	close(sv[1]);
}

TEST_F(SockTest, NodelayAndKeepaliveReachTheSocket)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(fd, 0);
	int v = 0;
	socklen_t len = sizeof(v);
	EXPECT_EQ(weft_tcp_nodelay(fd, 1), 0);
	getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len);
	EXPECT_EQ(v, 1);
	EXPECT_EQ(weft_tcp_nodelay(fd, 0), 0);
	getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len);
	EXPECT_EQ(v, 0);
	EXPECT_EQ(weft_tcp_keepalive(fd, 1, 30, 5, 4), 0);
	getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len);
	EXPECT_EQ(v, 1);
	getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len);
	EXPECT_EQ(v, 30);
	getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &len);
	EXPECT_EQ(v, 5);
	getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &len);
	EXPECT_EQ(v, 4);
	EXPECT_EQ(weft_tcp_keepalive(fd, 0, 0, 0, 0), 0);
	getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len);
	EXPECT_EQ(v, 0);
	close(fd);
	EXPECT_EQ(weft_tcp_nodelay(fd, 1), -EBADF);
}

/* ---- The buffered reader ------------------------------------------------------------ */

/* A socket pair and a reader on its second end, for one test. */
struct reader_pair {
	int w, r;
	struct weft_reader *rd;
	explicit reader_pair(size_t cap = 0)
	{
		int sv[2];
		EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		w = sv[0];
		r = sv[1];
		rd = weft_reader_new(r, cap);
		EXPECT_NE(rd, nullptr);
	}
	~reader_pair()
	{
		weft_reader_free(rd);
		close(w);
		close(r);
	}
	void send(const std::string &s) const
	{
		EXPECT_EQ(write(w, s.data(), s.size()), (ssize_t)s.size());
	}
};

TEST_F(ReaderTest, LinesEndWithLFOrCRLF)
{
	reader_pair p;
	p.send("a\r\nbc\n\n\r\nlast");
	shutdown(p.w, SHUT_WR);
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		char line[16];
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 3);
		EXPECT_STREQ(line, "a");
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 3);
		EXPECT_STREQ(line, "bc");
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 1);
		EXPECT_STREQ(line, "");
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 2);
		EXPECT_STREQ(line, "");
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 4);
		EXPECT_STREQ(line, "last") << "an unterminated last line comes whole";
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 0);
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 0);
		EXPECT_EQ(weft_reader_read_line(p.rd, line, 0), -EINVAL);
		return (intptr_t)0;
	});
}

TEST_F(ReaderTest, LineLongerThanTheMaximumIsEMSGSIZEAndConsumesNothing)
{
	reader_pair p(4); /* smaller than the lines: the buffer grows */
	p.send("abc\nabc\r\nabcd\nabcdefgh");
	shutdown(p.w, SHUT_WR);
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		char line[4]; /* 3 characters fit */
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 4);
		EXPECT_STREQ(line, "abc");
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 5);
		EXPECT_STREQ(line, "abc") << "the CR does not count against the limit";
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), -EMSGSIZE);
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), -EMSGSIZE)
			<< "nothing was consumed";
		char rec[16];
		EXPECT_EQ(weft_reader_read_until(p.rd, '\n', rec, sizeof(rec)), 5);
		EXPECT_EQ(memcmp(rec, "abcd\n", 5), 0);
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), -EMSGSIZE)
			<< "an unterminated last line too long";
		EXPECT_EQ(weft_reader_read_until(p.rd, '\n', rec, 4), -EMSGSIZE);
		EXPECT_EQ(weft_reader_buffered(p.rd), 8u);
		EXPECT_EQ(weft_reader_read(p.rd, rec, sizeof(rec)), 8);
		EXPECT_EQ(weft_reader_read(p.rd, rec, sizeof(rec)), 0);
		return (intptr_t)0;
	});
}

TEST_F(ReaderTest, LineSplitOverManyRecvsAndAReadLineThatTimedOutLosesNothing)
{
	reader_pair p;
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		p.send("hello ");
		char line[64];
		struct weft_scope s;
		weft_scope_deadline(&s, 20 * WEFT_MSEC);
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		EXPECT_EQ(weft_reader_buffered(p.rd), 6u);
		struct weft_task *writer = go([&] {
			for (const char *part : {"wo", "r", "ld\nnext", "\n"}) {
				weft_sleep(2 * WEFT_MSEC);
				p.send(part);
			}
			return (intptr_t)0;
		});
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 12);
		EXPECT_STREQ(line, "hello world");
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 5);
		EXPECT_STREQ(line, "next");
		join(writer);
		return (intptr_t)0;
	});
}

TEST_F(ReaderTest, ReadUntilGrowsPastTheCapacityAndReadExactMixesBufferedAndFresh)
{
	reader_pair p(8);
	std::string payload(5000, 'z');
	for (size_t i = 0; i < payload.size(); i++)
		payload[i] = (char)('a' + i % 26);
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		p.send("key=a-long-value;" + std::to_string(payload.size()) + "\n" + payload.substr(0, 10));
		char rec[64];
		EXPECT_EQ(weft_reader_read_until(p.rd, ';', rec, sizeof(rec)), 17);
		EXPECT_EQ(std::string(rec, 17), "key=a-long-value;");
		char line[16];
		EXPECT_EQ(weft_reader_read_line(p.rd, line, sizeof(line)), 5);
		EXPECT_EQ(std::stoul(line), payload.size());
		struct weft_task *writer = go([&] {
			weft_sleep(5 * WEFT_MSEC);
			p.send(payload.substr(10));
			return (intptr_t)0;
		});
		std::string in(payload.size(), 0);
		size_t got = 0;
		EXPECT_EQ(weft_reader_read_exact(p.rd, in.data(), in.size(), &got), (ssize_t)in.size());
		EXPECT_EQ(got, in.size());
		EXPECT_EQ(in, payload);
		join(writer);
		shutdown(p.w, SHUT_WR);
		EXPECT_EQ(weft_reader_read_exact(p.rd, rec, 4, &got), 0);
		EXPECT_EQ(weft_reader_read_until(p.rd, ';', rec, sizeof(rec)), 0);
		return (intptr_t)0;
	});
}

TEST_F(ReaderTest, ReadExactCutShortIsEPIPE)
{
	reader_pair p;
	p.send("12345");
	shutdown(p.w, SHUT_WR);
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		char b[8];
		size_t got = 0;
		EXPECT_EQ(weft_reader_read(p.rd, b, 2), 2);
		EXPECT_EQ(weft_reader_read_exact(p.rd, b, sizeof(b), &got), -EPIPE);
		EXPECT_EQ(got, 3u);
		EXPECT_EQ(memcmp(b, "345", 3), 0);
		return (intptr_t)0;
	});
}

/* ---- UDP ------------------------------------------------------------------------------ */

TEST_F(UdpTest, DatagramsRoundTripWithTheirSender)
{
	struct weft_opts o = {};
	o.workers = 2;
	run_with(o, [] {
		int a = udp_on("127.0.0.1:0");
		int b = udp_on("127.0.0.1:0");
		EXPECT_GE(a, 0);
		EXPECT_GE(b, 0);
		struct weft_addr aa, ba;
		weft_sock_local_addr(a, &aa);
		weft_sock_local_addr(b, &ba);
		struct weft_task *echo = go([b] {
			char buf[64];
			struct weft_addr from;
			ssize_t n = weft_udp_recv_from(b, buf, sizeof(buf), &from);
			if (n < 0)
				return (intptr_t)n;
			return (intptr_t)weft_udp_send_to(b, buf, (size_t)n, &from);
		});
		EXPECT_EQ(weft_udp_send_to(a, "ping", 4, &ba), 4);
		char buf[64];
		struct weft_addr from;
		EXPECT_EQ(weft_udp_recv_from(a, buf, sizeof(buf), &from), 4);
		EXPECT_EQ(memcmp(buf, "ping", 4), 0);
		EXPECT_EQ(fmt(from), fmt(ba));
		EXPECT_EQ(join(echo), 4);

		/* Longer than the buffer: the head arrives, the call says so. */
		EXPECT_EQ(weft_udp_send_to(a, "0123456789", 10, &ba), 10);
		EXPECT_EQ(weft_udp_recv_from(b, buf, 4, &from), -EMSGSIZE);
		EXPECT_EQ(memcmp(buf, "0123", 4), 0);
		EXPECT_EQ(fmt(from), fmt(aa));

		struct weft_scope s;
		weft_scope_deadline(&s, 10 * WEFT_MSEC);
		EXPECT_EQ(weft_udp_recv_from(b, buf, sizeof(buf), nullptr), -ETIMEDOUT);
		weft_scope_end(&s);
		EXPECT_EQ(udp_on("unix:/x"), -EAFNOSUPPORT);
		weft_close(a);
		weft_close(b);
		return (intptr_t)0;
	});
}

/* ---- Unix sockets ------------------------------------------------------------------- */

struct tmpdir {
	std::string path;
	tmpdir()
	{
		char t[] = "/tmp/weft-net-XXXXXX";
		EXPECT_NE(mkdtemp(t), nullptr);
		path = t;
	}
	~tmpdir()
	{
		std::string cmd = path + "/s";
		unlink(cmd.c_str());
		unlink((path + "/file").c_str());
		rmdir(path.c_str());
	}
};

TEST_F(UnixTest, StreamRoundTripAndAStalePathIsReclaimed)
{
	tmpdir dir;
	std::string spec = "unix:" + dir.path + "/s";
	struct weft_opts o = {};
	o.workers = 2;
	run_with(o, [&] {
		struct weft_addr a = addr(spec.c_str());
		int l = weft_sock_listen(&a, nullptr);
		EXPECT_GE(l, 0);
		struct weft_task *server = go([l] {
			struct weft_addr peer;
			int c = weft_sock_accept(l, &peer);
			if (c < 0)
				return (intptr_t)c;
			EXPECT_EQ(fmt(peer), "unix:") << "the client never bound: unnamed";
			char buf[5];
			ssize_t n = weft_sock_recv_exact(c, buf, 5, nullptr);
			if (n == 5)
				n = weft_sock_send_all(c, buf, 5, nullptr);
			weft_close(c);
			return (intptr_t)n;
		});
		int fd = weft_sock_dial(spec.c_str());
		EXPECT_GE(fd, 0);
		struct weft_addr peer;
		EXPECT_EQ(weft_sock_peer_addr(fd, &peer), 0);
		EXPECT_EQ(fmt(peer), spec);
		EXPECT_EQ(weft_sock_send_all(fd, "hello", 5, nullptr), 5);
		char buf[5];
		EXPECT_EQ(weft_sock_recv_exact(fd, buf, 5, nullptr), 5);
		EXPECT_EQ(memcmp(buf, "hello", 5), 0);
		EXPECT_EQ(join(server), 5);
		weft_close(fd);
		/* Its probe is a connection l never accepts. */
		EXPECT_EQ(weft_sock_listen(&a, nullptr), -EADDRINUSE) << "a live socket stays";
		weft_close(l);

		/* The file stays behind a closed listener; nobody answers on
		 * it, so listening again reclaims it. */
		struct stat st;
		EXPECT_EQ(stat((dir.path + "/s").c_str(), &st), 0);
		l = weft_sock_listen(&a, nullptr);
		EXPECT_GE(l, 0) << "a stale socket is reclaimed";
		weft_close(l);

		/* Nobody listening on a path: refused or absent. */
		unlink((dir.path + "/s").c_str());
		EXPECT_EQ(weft_sock_connect(&a), -ENOENT);

		/* Any other file is never removed. */
		std::string file = dir.path + "/file";
		int f = open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		close(f);
		struct weft_addr fa = addr(("unix:" + file).c_str());
		EXPECT_EQ(weft_sock_listen(&fa, nullptr), -EADDRINUSE);
		EXPECT_EQ(stat(file.c_str(), &st), 0);
		EXPECT_TRUE(S_ISREG(st.st_mode));
		return (intptr_t)0;
	});
}

TEST_F(UnixTest, AbstractNamesListenAndConnect)
{
	std::string spec = "unix:@weft-net-test-" + std::to_string(getpid());
	struct weft_opts o = {};
	o.workers = 1;
	run_with(o, [&] {
		struct weft_addr a = addr(spec.c_str());
		int l = weft_sock_listen(&a, nullptr);
		EXPECT_GE(l, 0);
		struct weft_addr la;
		EXPECT_EQ(weft_sock_local_addr(l, &la), 0);
		EXPECT_EQ(fmt(la), spec);
		struct weft_task *acc = go([l] { return (intptr_t)weft_sock_accept(l, nullptr); });
		int fd = weft_sock_connect(&a);
		EXPECT_GE(fd, 0);
		intptr_t c = join(acc);
		EXPECT_GE(c, 0);
		EXPECT_EQ(weft_sock_send_all(fd, "z", 1, nullptr), 1);
		char b = 0;
		EXPECT_EQ(weft_sock_recv_exact((int)c, &b, 1, nullptr), 1);
		EXPECT_EQ(b, 'z');
		weft_close((int)c);
		weft_close(fd);
		weft_close(l);
		return (intptr_t)0;
	});
}

} // namespace
