// SPDX-License-Identifier: MIT
/*
 * balance_test.cc - end to end, against the weft-proxy binary: how each
 * balancing mode spreads connections, a backup's turn (and that a
 * connection queued for a busy server waits for it, asleep, rather than
 * for the backup), failover when a
 * server dies in the middle of a stream of connections, passive marking
 * (passive_fall failed connects take a server out for passive_down; 0
 * keeps trying it), the connect,
 * idle and half-closed timeouts (a slow but steady reader is not idle, a
 * reader that takes nothing is; a short half-closed timeout is not held up
 * by a longer one, and a reset after a FIN is passed on), the queue for a
 * busy server (first come, first served; a client gone leaves it; a full
 * queue and a timeout are told apart), a
 * failed connect handing its server slot
 * to the queue at once, a client that resets during a connect ending it
 * at the next look (and getting no retry), a connect longer than a look
 * going on across it, and max_connections pausing the accepts
 * (and an idle listen address keeping no slot from another).
 *
 * A backend of harness.h answers each connection with its one-byte tag, so
 * a client learns which server it reached from the first byte.  Counts are
 * exact where the mode is deterministic (smooth weighted round robin,
 * least connections with connections held open, a source hash), and
 * bounds where it draws at random.
 */
#include <map>
#include <memory>
#include <tuple>

#include "harness.h"

namespace {

/* A connection through the proxy that has reached a server: its tag. */
struct held {
	int fd = -1;
	char tag = 0;
};

/* Dials the proxy (from source address `from`, if set) and reads the tag. */
held reach(int port, const char *from = nullptr)
{
	held h;
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (from) {
		struct sockaddr_in s = {};
		s.sin_family = AF_INET;
		inet_pton(AF_INET, from, &s.sin_addr);
		EXPECT_EQ(bind(fd, (struct sockaddr *)&s, sizeof(s)), 0) << from;
	}
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || recv(fd, &h.tag, 1, 0) != 1) {
		close(fd);
		return h;
	}
	h.fd = fd;
	return h;
}

/* One short connection: the tag of the server it reached, 0 on failure. */
char tag_of_one(int port, const char *from = nullptr)
{
	held h = reach(port, from);
	if (h.fd >= 0)
		close(h.fd);
	return h.tag;
}

/* A proxy on a fresh port in front of the given backends, with `backend`
 * lines replacing the default ones (balance, options) and `servers` the
 * server lines' option suffixes (weight=2, backup, ...). */
struct setup {
	proxy p;
	int port = free_port();

	bool start(const std::vector<backend *> &bs, const std::string &backend_keys,
		   const std::vector<std::string> &opts = {}, const std::string &frontend_keys = "")
	{
		std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
				"\nbackend = b\n" + frontend_keys + "\n[backend b]\n" + backend_keys + "\n";
		for (size_t i = 0; i < bs.size(); i++)
			c += "server s" + std::to_string(i) + " = 127.0.0.1:" +
			     std::to_string(bs[i]->port) + (i < opts.size() ? " " + opts[i] : "") + "\n";
		return p.start(c) && !p.wait_line("listening", 10000).empty();
	}
};

TEST(BalanceTest, RoundRobinFollowsTheWeightsExactly)
{
	NEED_PROXY();
	backend a('a'), b('b');
	setup s;
	ASSERT_TRUE(s.start({&a, &b}, "balance = roundrobin", {"weight=2", "weight=1"}));
	std::map<char, int> n;
	for (int i = 0; i < 300; i++)
		n[tag_of_one(s.port)]++;
	/* Smooth weighted round robin has one shared state: any 3 picks in a
	 * row are a, a, b in some order. */
	EXPECT_EQ(n['a'], 200);
	EXPECT_EQ(n['b'], 100);
	EXPECT_EQ(s.p.stop(), 0);
}

TEST(BalanceTest, LeastConnectionsFillsTheEmptierServer)
{
	NEED_PROXY();
	backend a('a'), b('b');
	setup s;
	ASSERT_TRUE(s.start({&a, &b}, "balance = leastconn"));
	std::vector<held> open;
	std::map<char, int> n;
	for (int i = 0; i < 10; i++) {
		open.push_back(reach(s.port));
		n[open.back().tag]++;
	}
	EXPECT_EQ(n['a'], 5);
	EXPECT_EQ(n['b'], 5);
	/* Four of a's end: the next four all go to a, now the emptier. */
	int closed = 0;
	for (auto &h : open)
		if (h.tag == 'a' && closed < 4) {
			close(h.fd);
			h.fd = -1;
			closed++;
		}
	/* The proxy counts a connection out when its relay ends: give it the
	 * moment it takes to see the end of stream. */
	usleep(200 * 1000);
	for (int i = 0; i < 4; i++) {
		open.push_back(reach(s.port));
		EXPECT_EQ(open.back().tag, 'a') << "connection " << i;
	}
	for (auto &h : open)
		if (h.fd >= 0)
			close(h.fd);
	EXPECT_EQ(s.p.stop(), 0);
}

TEST(BalanceTest, RandomOfTwoKeepsHeldConnectionsEven)
{
	NEED_PROXY();
	backend a('a'), b('b'), c('c');
	setup s;
	ASSERT_TRUE(s.start({&a, &b, &c}, "balance = random2"));
	std::vector<held> open;
	std::map<char, int> n;
	for (int i = 0; i < 60; i++) {
		open.push_back(reach(s.port));
		n[open.back().tag]++;
	}
	/* Of two servers drawn, the less loaded: with every connection held,
	 * no server falls far behind (a uniform draw would leave one below 12
	 * about once in 30 runs; two choices, practically never). */
	for (char t : {'a', 'b', 'c'}) {
		EXPECT_GE(n[t], 12) << t;
		EXPECT_LE(n[t], 28) << t;
	}
	for (auto &h : open)
		close(h.fd);
	EXPECT_EQ(s.p.stop(), 0);
}

TEST(BalanceTest, SourceHashKeepsEachClientAddressOnOneServer)
{
	NEED_PROXY();
	backend a('a'), b('b');
	setup s;
	ASSERT_TRUE(s.start({&a, &b}, "balance = source"));
	std::map<std::string, char> first;
	std::map<char, int> n;
	for (int round = 0; round < 3; round++)
		for (int i = 2; i < 22; i++) {
			std::string from = "127.0.0." + std::to_string(i);
			char t = tag_of_one(s.port, from.c_str());
			ASSERT_NE(t, 0) << from;
			if (round == 0) {
				first[from] = t;
				n[t]++;
			} else {
				EXPECT_EQ(t, first[from]) << from << " moved in round " << round;
			}
		}
	/* Twenty addresses all hashing to one of two servers: 1 in 2^19. */
	EXPECT_GT(n['a'], 0);
	EXPECT_GT(n['b'], 0);
	EXPECT_EQ(s.p.stop(), 0);
}

TEST(BalanceTest, ABackupServesOnlyWhileNoOtherServerIsUp)
{
	NEED_PROXY();
	auto a = std::make_unique<backend>('a');
	backend k('k');
	setup s;
	ASSERT_TRUE(s.start({a.get(), &k}, "balance = roundrobin", {"", "backup"}));
	for (int i = 0; i < 20; i++)
		EXPECT_EQ(tag_of_one(s.port), 'a');
	a.reset(); /* its port now refuses */
	for (int i = 0; i < 20; i++)
		EXPECT_EQ(tag_of_one(s.port), 'k') << "connection " << i;
	EXPECT_EQ(s.p.stop(), 0);
}

/* The proxy's CPU time so far, in clock ticks (utime + stime). */
long cpu_ticks(pid_t pid)
{
	FILE *f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
	if (!f)
		return -1;
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	long utime = 0, stime = 0;
	/* After the name: state, then fields 4..13, then utime and stime. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime,
			 &stime) != 2)
		return -1;
	return utime + stime;
}

/* With `first` holding the only slot of server 'a', a second connection
 * waits for that slot asleep, and takes it when it frees. */
void expect_queued_asleep_then_served(setup &s, held first)
{
	ASSERT_EQ(first.tag, 'a');
	int second = dial(s.port);
	ASSERT_GE(second, 0);
	usleep(100 * 1000); /* it is queued now */
	long t0 = cpu_ticks(s.p.pid);
	usleep(1000 * 1000);
	long used = cpu_ticks(s.p.pid) - t0;
	ASSERT_GE(t0, 0);
	/* A spinning waiter takes a whole CPU (100 ticks a second, less on a
	 * crowded machine); a sleeping one next to nothing. */
	EXPECT_LT(used, 30) << "the queued connection kept the proxy busy";
	char tag = 0;
	EXPECT_EQ(recv(second, &tag, 1, MSG_DONTWAIT), -1) << "it went on before a slot freed: " << tag;
	close(first.fd);
	struct timeval tv = {5, 0};
	setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	EXPECT_EQ(recv(second, &tag, 1, 0), 1);
	EXPECT_EQ(tag, 'a');
	close(second);
	EXPECT_EQ(s.p.stop(), 0);
}

/* A backup is for servers that are down, not busy: a connection that finds
 * the only server at its max_connections waits for it, asleep (it used to
 * spin, picking and waiting again, as the backup looked like room), and
 * takes its slot when it frees. */
TEST(BalanceTest, AQueuedConnectionWaitsForItsBusyServerAsleepNotForTheBackup)
{
	NEED_PROXY();
	backend a('a'), k('k');
	setup s;
	ASSERT_TRUE(s.start({&a, &k}, "queue_timeout = 10s", {"max_connections=1", "backup"}));
	expect_queued_asleep_then_served(s, reach(s.port));
}

/* Nor is a server the connection has tried already: with leastconn a dead
 * server (nothing listens on its port) is tried first, refuses, and the
 * live one is at its max_connections.  The connection waits for the live
 * one asleep (it used to spin until queue_timeout: the dead one, not yet
 * marked down, looked like room). */
TEST(BalanceTest, AQueuedConnectionDoesNotCountATriedServerAsRoom)
{
	NEED_PROXY();
	backend a('a');
	setup s;
	std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(s.port) +
			"\nbackend = b\n\n[backend b]\nbalance = leastconn\nqueue_timeout = 10s\n"
			"server dead = 127.0.0.1:" + std::to_string(free_port()) + "\n" +
			"server s1 = 127.0.0.1:" + std::to_string(a.port) + " max_connections=1\n";
	ASSERT_TRUE(s.p.start(c) && !s.p.wait_line("listening", 10000).empty());
	expect_queued_asleep_then_served(s, reach(s.port));
}

/* A proxy with one worker in front of a, whose only server takes one
 * connection at a time (connections wait up to 20 s for it, unless
 * backend_keys say otherwise), and a connection through it that holds
 * that slot. */
held hold_the_one_slot(setup &s, backend &a, const std::string &global_keys = "",
		       const std::string &backend_keys = "queue_timeout = 20s\n")
{
	std::string c = "[global]\nworkers = 1\n" + global_keys + "\n[frontend f]\nlisten = 127.0.0.1:" +
			std::to_string(s.port) + "\nbackend = b\n\n[backend b]\n" + backend_keys +
			"server s1 = 127.0.0.1:" + std::to_string(a.port) + " max_connections=1\n";
	if (!s.p.start(c) || s.p.wait_line("listening", 10000).empty())
		return held{};
	return reach(s.port);
}

/* Whether fd has a byte for us now. */
bool readable_now(int fd)
{
	struct pollfd pf = {fd, POLLIN, 0};
	return poll(&pf, 1, 0) == 1;
}

/* The queue for a busy server is first come, first served: each freed
 * slot goes to the connection that has waited longest (one worker wakes
 * the newest first, so a broadcast served them newest first). */
TEST(QueueTest, WaitersAreServedInTheOrderTheyCame)
{
	NEED_PROXY();
	backend a('a');
	setup s;
	held first = hold_the_one_slot(s, a);
	ASSERT_EQ(first.tag, 'a');
	std::vector<int> q;
	for (int i = 0; i < 4; i++) {
		q.push_back(dial(s.port));
		ASSERT_GE(q.back(), 0);
		usleep(100 * 1000); /* queued before the next comes */
	}
	close(first.fd);
	for (size_t i = 0; i < q.size(); i++) {
		struct timeval tv = {5, 0};
		setsockopt(q[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		char tag = 0;
		EXPECT_EQ(recv(q[i], &tag, 1, 0), 1) << "connection " << i << " was not served next";
		for (size_t j = i + 1; j < q.size(); j++)
			EXPECT_FALSE(readable_now(q[j])) << "connection " << j << " went before " << i;
		close(q[i]); /* its slot goes to the next */
	}
	EXPECT_EQ(s.p.stop(), 0);
}

/* A client that resets while it waits leaves the queue (found within a
 * second): no server connection is made for it, and the slot goes to the
 * connection behind it, whose wait the queue histogram counts. */
TEST(QueueTest, AClientThatResetsWhileQueuedIsNeverConnected)
{
	NEED_PROXY();
	backend a('a');
	setup s;
	int admin = free_port();
	held first = hold_the_one_slot(s, a, "admin = 127.0.0.1:" + std::to_string(admin) + "\n");
	ASSERT_EQ(first.tag, 'a');
	int gone = dial(s.port);
	usleep(100 * 1000);
	int next = dial(s.port);
	ASSERT_GE(gone, 0);
	ASSERT_GE(next, 0);
	usleep(100 * 1000);
	struct linger lg = {1, 0};
	setsockopt(gone, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(gone);
	usleep(1500 * 1000); /* a look at the clients has come */
	close(first.fd);
	struct timeval tv = {5, 0};
	setsockopt(next, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char tag = 0;
	EXPECT_EQ(recv(next, &tag, 1, 0), 1);
	EXPECT_EQ(tag, 'a');
	EXPECT_FALSE(s.p.wait_line("\"end\":\"client_closed\"", 3000).empty())
		<< "no access log line for the client gone";
	close(next); /* the slot is free for anyone still waiting */
	usleep(300 * 1000);
	EXPECT_EQ(a.accepted.load(), 2) << "a server connection was made for a client gone";
	EXPECT_EQ(metric_at(admin, "weft_proxy_backend_queue_abandoned_total{backend=\"b\"}"), 1);
	/* The wait of the one served, about 1.7 s, is in the queue histogram;
	 * the client gone is not. */
	EXPECT_EQ(metric_at(admin, "weft_proxy_backend_queue_seconds_count{backend=\"b\"}"), 1);
	EXPECT_EQ(metric_at(admin, "weft_proxy_backend_queue_seconds_bucket{backend=\"b\",le=\"1\"}"), 0);
	EXPECT_EQ(metric_at(admin, "weft_proxy_backend_queue_seconds_bucket{backend=\"b\",le=\"5\"}"), 1);
	double waited = metric_at(admin, "weft_proxy_backend_queue_seconds_sum{backend=\"b\"}");
	EXPECT_GE(waited, 1.5);
	EXPECT_LT(waited, 5.0);
	EXPECT_EQ(s.p.stop(), 0);
}

/* A connection still waiting for a slot when the drain deadline comes ends
 * with the drain, as the established one does: reset, "drain_deadline" in
 * the access log and in the count of the stop line, not a no_server (it
 * was cut short, not refused), and no waiting on it after the deadline. */
TEST(QueueTest, AConnectionStillQueuedAtTheDrainDeadlineEndsWithTheDrain)
{
	NEED_PROXY();
	backend a('a');
	setup s;
	held first = hold_the_one_slot(s, a, "drain_timeout = 200ms\n");
	ASSERT_EQ(first.tag, 'a');
	int waits = dial(s.port);
	ASSERT_GE(waits, 0);
	usleep(100 * 1000);
	kill(s.p.pid, SIGTERM);
	char c;
	EXPECT_EQ(recv(waits, &c, 1, 0), -1);
	EXPECT_EQ(errno, ECONNRESET);
	int st = s.p.wait_exit(10000);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	std::string err = s.p.rest();
	size_t cut = 0;
	for (size_t at = 0; (at = err.find("\"end\":\"drain_deadline\"", at)) != std::string::npos; at++)
		cut++;
	EXPECT_EQ(cut, 2u) << err;
	EXPECT_EQ(err.find("no_server"), std::string::npos) << err;
	EXPECT_NE(err.find("stopped; 2 connections closed at the drain deadline"), std::string::npos)
		<< err;
	close(waits);
	close(first.fd);
	s.p.stop();
}

/* How a wait ends badly is said apart, in the access log and the
 * backend's counters: a full queue resets at once, a wait that reaches
 * queue_timeout is reset then; both are no_server for the frontend. */
TEST(QueueTest, AFullQueueAndATimeoutAreToldApart)
{
	NEED_PROXY();
	backend a('a');
	setup s;
	int admin = free_port();
	held first = hold_the_one_slot(s, a, "admin = 127.0.0.1:" + std::to_string(admin) + "\n",
				       "queue_size = 1\nqueue_timeout = 500ms\n");
	ASSERT_EQ(first.tag, 'a');
	int waits = dial(s.port);
	usleep(100 * 1000);
	int refused = dial(s.port);
	char c;
	EXPECT_EQ(recv(refused, &c, 1, 0), -1);
	EXPECT_FALSE(s.p.wait_line("\"end\":\"queue_full\"", 3000).empty());
	EXPECT_EQ(recv(waits, &c, 1, 0), -1);
	std::string line = s.p.wait_line("\"end\":\"queue_timeout\"", 3000);
	size_t at = line.find("\"queue_ms\":");
	ASSERT_NE(at, std::string::npos) << line;
	EXPECT_GE(atof(line.c_str() + at + 11), 500) << line;
	EXPECT_NE(line.find("\"connect_ms\":0.000,"), std::string::npos) << line;
	EXPECT_EQ(metric_at(admin, "weft_proxy_backend_queue_full_total{backend=\"b\"}"), 1);
	EXPECT_EQ(metric_at(admin, "weft_proxy_backend_queue_timeouts_total{backend=\"b\"}"), 1);
	EXPECT_EQ(metric_at(admin, "weft_proxy_frontend_no_server_total{frontend=\"f\"}"), 2);
	close(waits);
	close(refused);
	close(first.fd);
	EXPECT_EQ(s.p.stop(), 0);
}

/* A proxy with an admin listener in front of a and a dead port, round
 * robin, passive marking as backend_keys say: 10 connections, all served
 * (through a, after a retry where the dead one was picked).  The dead
 * server's connect attempts, and whether it then counts as up. */
struct passive_run {
	double attempts = 0, up = 0;
};

passive_run ten_past_a_dead_server(setup &s, backend &a, int admin, const std::string &backend_keys)
{
	std::string c = "[global]\nadmin = 127.0.0.1:" + std::to_string(admin) +
			"\n[frontend f]\nlisten = 127.0.0.1:" + std::to_string(s.port) +
			"\nbackend = b\n\n[backend b]\nretries = 2\n" + backend_keys +
			"server a = 127.0.0.1:" + std::to_string(a.port) + "\n" +
			"server dead = 127.0.0.1:" + std::to_string(free_port()) + "\n";
	passive_run r;
	if (!s.p.start(c) || s.p.wait_line("admin listening", 10000).empty())
		return r;
	for (int i = 0; i < 10; i++)
		EXPECT_EQ(tag_of_one(s.port), 'a') << i;
	r.attempts = metric_at(admin, "weft_proxy_server_connect_attempts_total{backend=\"b\",server=\"dead\"}");
	r.up = metric_at(admin, "weft_proxy_server_up{backend=\"b\",server=\"dead\"}");
	return r;
}

TEST(BalanceTest, PassiveFallFailedConnectsTakeAServerOutForPassiveDown)
{
	NEED_PROXY();
	backend a('a');
	setup s;
	int admin = free_port();
	passive_run r = ten_past_a_dead_server(s, a, admin, "passive_fall = 2\npassive_down = 1s\n");
	EXPECT_EQ(r.attempts, 2) << "tried again before passive_down ran out";
	EXPECT_EQ(r.up, 0);
	/* After passive_down it is tried again. */
	std::this_thread::sleep_for(std::chrono::milliseconds(1200));
	EXPECT_EQ(metric_at(admin, "weft_proxy_server_up{backend=\"b\",server=\"dead\"}"), 1);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(tag_of_one(s.port), 'a') << i;
	double again = metric_at(admin, "weft_proxy_server_connect_attempts_total{backend=\"b\",server=\"dead\"}");
	EXPECT_GE(again, 3);
	EXPECT_LE(again, 4);
	EXPECT_EQ(s.p.stop(), 0);
}

TEST(BalanceTest, PassiveFallZeroKeepsTryingAFailingServer)
{
	NEED_PROXY();
	backend a('a');
	setup s;
	passive_run r = ten_past_a_dead_server(s, a, free_port(), "passive_fall = 0\n");
	/* Round robin picks it every other time, each a failed connect. */
	EXPECT_GE(r.attempts, 4);
	EXPECT_EQ(r.up, 1) << "marked down with passive marking off";
	EXPECT_EQ(s.p.stop(), 0);
}

TEST(BalanceTest, AServerDyingMidStreamCostsNoClientAConnection)
{
	NEED_PROXY();
	auto a = std::make_unique<backend>('a');
	backend b('b');
	setup s;
	ASSERT_TRUE(s.start({a.get(), &b}, "balance = roundrobin\nretries = 2"));
	int ok = 0;
	std::map<char, int> n;
	for (int i = 0; i < 200; i++) {
		if (i == 60)
			a.reset();
		held h = reach(s.port);
		if (h.fd < 0)
			continue;
		/* The whole exchange, not only the first byte. */
		if (send(h.fd, "ping", 4, MSG_NOSIGNAL) == 4) {
			char buf[4];
			if (recv(h.fd, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "ping", 4) == 0)
				ok++;
		}
		n[h.tag]++;
		close(h.fd);
	}
	EXPECT_EQ(ok, 200) << "clients noticed the dead server";
	EXPECT_EQ(n['a'], 30) << "a served its turns until it died";
	EXPECT_EQ(n['b'], 170);
	EXPECT_EQ(s.p.stop(), 0);
}

/* A listener whose accept queue is full: further SYNs are dropped, so a
 * connect to it hangs (never refused) until the connector gives up. */
struct blackhole {
	int lfd = -1, port = 0;
	std::vector<int> fillers;
	blackhole()
	{
		lfd = listen_loopback(0, &port);
		EXPECT_EQ(listen(lfd, 0), 0); /* again: the smallest backlog */
		struct sockaddr_in a = {};
		a.sin_family = AF_INET;
		a.sin_port = htons((uint16_t)port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		/* A backlog of 0 holds one; fill it with non-blocking
		 * connects until one stays in progress. */
		for (int i = 0; i < 8; i++) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
			fillers.push_back(fd);
			if (rc < 0 && errno == EINPROGRESS) {
				struct pollfd pf = {fd, POLLOUT, 0};
				if (poll(&pf, 1, 100) == 0)
					return; /* this SYN was dropped: full */
			}
		}
		ADD_FAILURE() << "could not fill the accept queue";
	}
	~blackhole()
	{
		for (int fd : fillers)
			close(fd);
		close(lfd);
	}
};

TEST(TimeoutTest, AConnectThatHangsIsAbandonedAtConnectTimeoutAndRetriedElsewhere)
{
	NEED_PROXY();
	blackhole h;
	backend b('b');
	proxy p;
	int port = free_port();
	std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			"\nbackend = b\n\n[backend b]\nbalance = roundrobin\n"
			"connect_timeout = 300ms\nretries = 1\n"
			"server hole = 127.0.0.1:" + std::to_string(h.port) + "\n" +
			"server live = 127.0.0.1:" + std::to_string(b.port) + "\n";
	ASSERT_TRUE(p.start(c) && !p.wait_line("listening", 10000).empty());
	/* Round robin starts at the first server: the hole. */
	auto t0 = std::chrono::steady_clock::now();
	held x = reach(port);
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
			  std::chrono::steady_clock::now() - t0)
			  .count();
	EXPECT_EQ(x.tag, 'b');
	EXPECT_GE(ms, 290) << "the connect was given up early";
	EXPECT_LT(ms, 2000) << "the connect timeout did not apply";
	if (x.fd >= 0)
		close(x.fd);
	EXPECT_EQ(p.stop(), 0);
}

/* A server that sends its tag and then neither reads nor closes. */
struct mute {
	int lfd = -1, port = 0;
	std::mutex mu;
	std::vector<int> conns;
	std::thread t;
	mute()
	{
		lfd = listen_loopback(0, &port);
		t = std::thread([this] {
			int fd;
			while ((fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0) {
				{
					std::lock_guard<std::mutex> g(mu);
					conns.push_back(fd);
				}
				send(fd, "m", 1, MSG_NOSIGNAL);
			}
		});
	}
	/* The server's end of the i-th connection (its tag was sent), or -1. */
	int conn(size_t i)
	{
		std::lock_guard<std::mutex> g(mu);
		return i < conns.size() ? conns[i] : -1;
	}
	~mute()
	{
		shutdown(lfd, SHUT_RDWR);
		t.join();
		for (int fd : conns)
			close(fd);
		close(lfd);
	}
};

/* Milliseconds until fd's end of stream (or reset), -1 if more bytes come. */
long ms_to_end(int fd)
{
	auto t0 = std::chrono::steady_clock::now();
	char ch;
	if (recv(fd, &ch, 1, 0) > 0)
		return -1;
	return std::chrono::duration_cast<std::chrono::milliseconds>(
		       std::chrono::steady_clock::now() - t0)
		.count();
}

/* A proxy with frontend keys `extra` in front of m, and a connection
 * through it that reached m. */
held through_mute(proxy &p, const mute &m, const std::string &extra)
{
	int port = free_port();
	if (!p.start(config(port, {m.port}, extra)) || p.wait_line("listening", 10000).empty())
		return held{};
	return reach(port);
}

TEST(TimeoutTest, AQuietConnectionEndsAtTheIdleTimeout)
{
	NEED_PROXY();
	mute m;
	proxy p;
	held x = through_mute(p, m, "idle_timeout = 400ms\n");
	ASSERT_EQ(x.tag, 'm');
	long ms = ms_to_end(x.fd);
	EXPECT_GE(ms, 350) << "ended early";
	EXPECT_LT(ms, 3000) << "the idle timeout did not apply";
	close(x.fd);
	EXPECT_EQ(p.stop(), 0);
}

/* Through a proxy with frontend keys `extra` to a server that never
 * speaks again, the client sends FIN: the milliseconds until the proxy
 * ends the connection (about 5000: it did not, within the receive
 * timeout). */
long ms_to_end_after_fin(const std::string &extra)
{
	mute m;
	proxy p;
	held x = through_mute(p, m, extra);
	EXPECT_EQ(x.tag, 'm');
	if (x.fd < 0)
		return -2;
	shutdown(x.fd, SHUT_WR); /* the server never answers with its own */
	long ms = ms_to_end(x.fd);
	close(x.fd);
	EXPECT_EQ(p.stop(), 0);
	return ms;
}

TEST(TimeoutTest, AfterTheClientsFinTheHalfClosedTimeoutApplies)
{
	NEED_PROXY();
	long ms = ms_to_end_after_fin("idle_timeout = 30s\nhalf_closed_timeout = 300ms\n");
	EXPECT_GE(ms, 250) << "ended early";
	EXPECT_LT(ms, 3000) << "still open long after the half-closed timeout";
}

/* half_closed_timeout = off leaves the idle timeout in force: a half-closed
 * connection whose other side stays quiet still ends (it used to wait
 * forever, holding its descriptors and its slot). */
TEST(TimeoutTest, WithHalfClosedTimeoutOffTheIdleTimeoutStillApplies)
{
	NEED_PROXY();
	long ms = ms_to_end_after_fin("idle_timeout = 400ms\nhalf_closed_timeout = off\n");
	EXPECT_GE(ms, 350) << "ended early";
	EXPECT_LT(ms, 3000) << "a half-closed connection outlived the idle timeout";
}

/* The sweeper that ends half-closed connections paces itself by the
 * shortest half_closed_timeout it has seen: one that comes while it waits
 * by a longer one (here a quarter of 8 s, capped at 1 s) wakes it, rather
 * than firing up to that wait late. */
TEST(TimeoutTest, AShortHalfClosedTimeoutIsNotHeldUpByALongerOnesSweep)
{
	NEED_PROXY();
	mute m;
	proxy p;
	int slow = free_port(), fast = free_port();
	std::string c;
	for (auto [name, port, timeout] : {std::tuple{"slow", slow, "8s"}, {"fast", fast, "100ms"}})
		c += std::string("[frontend ") + name + "]\nlisten = 127.0.0.1:" +
		     std::to_string(port) + "\nbackend = b\nidle_timeout = 30s\n" +
		     "half_closed_timeout = " + timeout + "\n\n";
	c += "[backend b]\nserver s = 127.0.0.1:" + std::to_string(m.port) + "\n";
	ASSERT_TRUE(p.start(c) && !p.wait_line("listening", 10000).empty());
	held a = reach(slow);
	ASSERT_EQ(a.tag, 'm');
	shutdown(a.fd, SHUT_WR);
	usleep(100 * 1000); /* the sweeper now waits 1 s */
	held b = reach(fast);
	ASSERT_EQ(b.tag, 'm');
	shutdown(b.fd, SHUT_WR);
	long ms = ms_to_end(b.fd);
	EXPECT_GE(ms, 80) << "ended early";
	EXPECT_LT(ms, 600) << "the sweeper went on waiting by the longer timeout";
	struct linger lg = {1, 0};
	setsockopt(a.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(a.fd); /* a reset: gone at the next sweep, not in 8 s */
	close(b.fd);
	EXPECT_EQ(p.stop(), 0);
}

/* Milliseconds until fd reports an error (a reset came), at most 5000. */
long ms_to_error(int fd)
{
	auto t0 = std::chrono::steady_clock::now();
	struct pollfd pf = {fd, 0, 0};
	if (poll(&pf, 1, 5000) != 1 || !(pf.revents & POLLERR))
		return 5000;
	return std::chrono::duration_cast<std::chrono::milliseconds>(
		       std::chrono::steady_clock::now() - t0)
		.count();
}

/* A side that sent its FIN and then resets (a client that gave up on its
 * answer) is read by no one any more: its reset still reaches the other
 * side, within the sweep's period (here 1 s), not at the half-closed
 * timeout 20 s later.  Both ways round. */
TEST(TimeoutTest, AResetAfterFinReachesTheOtherSide)
{
	NEED_PROXY();
	for (bool client_resets : {true, false}) {
		mute m;
		proxy p;
		held x = through_mute(p, m, "idle_timeout = 30s\nhalf_closed_timeout = 20s\n");
		ASSERT_EQ(x.tag, 'm');
		int srv = m.conn(0);
		ASSERT_GE(srv, 0);
		int from = client_resets ? x.fd : srv, to = client_resets ? srv : x.fd;
		struct timeval tv = {5, 0};
		setsockopt(to, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		shutdown(from, SHUT_WR);
		char ch;
		ASSERT_EQ(recv(to, &ch, 1, 0), 0) << "the FIN was not passed on";
		/* A reset without a close (the descriptor stays its owner's):
		 * a disconnect sends the RST. */
		struct sockaddr unspec = {};
		unspec.sa_family = AF_UNSPEC;
		ASSERT_EQ(connect(from, &unspec, sizeof(unspec)), 0);
		long ms = ms_to_error(to);
		EXPECT_LT(ms, 2500) << (client_resets ? "client" : "server")
				    << "'s reset did not reach the other side";
		EXPECT_EQ(p.stop(), 0);
	}
}

/* A server that sends its tag, then `total` bytes as fast as they go,
 * then its FIN; `cut_ms` is how long after the first byte a send failed
 * (-1: none did). */
struct firehose {
	int lfd = -1, port = 0;
	size_t total;
	std::atomic<long> cut_ms{-1};
	std::thread t;
	explicit firehose(size_t n) : total(n)
	{
		lfd = listen_loopback(0, &port);
		t = std::thread([this] {
			int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
			if (fd < 0)
				return;
			auto t0 = std::chrono::steady_clock::now();
			static char chunk[65536];
			send(fd, "f", 1, MSG_NOSIGNAL);
			for (size_t left = total; left;) {
				ssize_t n = send(fd, chunk, std::min(left, sizeof(chunk)), MSG_NOSIGNAL);
				if (n <= 0) {
					cut_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
							 std::chrono::steady_clock::now() - t0)
							 .count();
					break;
				}
				left -= (size_t)n;
			}
			shutdown(fd, SHUT_WR);
			char c;
			recv(fd, &c, 1, 0); /* until the proxy closes */
			close(fd);
		});
	}
	~firehose()
	{
		shutdown(lfd, SHUT_RDWR);
		t.join();
		close(lfd);
	}
};

/* Through a proxy (frontend keys `fkeys`, data_path `path`) to a firehose
 * of `total` bytes: a client reads, after its own FIN when `fin` and then
 * a pause of pause_ms; when `slow`, with a small receive buffer, 16 KiB
 * every 4 ms (about 4 MB/s), else as fast as it can.  The bytes it got
 * before the end. */
size_t read_through(const std::string &fkeys, const char *path, bool fin, size_t total,
		    bool slow = true, int pause_ms = 0)
{
	firehose f(total);
	proxy p;
	int port = free_port();
	std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			"\nbackend = b\n" + fkeys + "\n[backend b]\ndata_path = " + path +
			"\nserver s = 127.0.0.1:" + std::to_string(f.port) + "\n";
	if (!p.start(c) || p.wait_line("listening", 10000).empty())
		return 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int small = 8192;
	if (slow)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	size_t got = 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		if (fin)
			shutdown(fd, SHUT_WR);
		usleep((useconds_t)pause_ms * 1000);
		static char buf[1 << 18];
		size_t want = slow ? 16384 : sizeof(buf);
		ssize_t n;
		while ((n = recv(fd, buf, want, 0)) > 0) {
			got += (size_t)n;
			if (slow)
				usleep(4000);
		}
	}
	close(fd);
	if (got != total + 1) /* how the proxy saw it end, beside the caller's failure */
		fprintf(stderr, "%s: %zu of %zu bytes; %s\n", path, got, total + 1,
			p.wait_line("\"end\":", 2000).c_str());
	EXPECT_EQ(p.stop(), 0);
	return got;
}

/* A destination that takes bytes slowly but steadily is not idle, though
 * each of the proxy's sends to it waits long for room (a full socket
 * buffer frees up in big steps): neither the idle nor the half-closed
 * timeout ends the transfer, on either data path. */
TEST(TimeoutTest, ASlowButSteadyReaderIsNotIdle)
{
	NEED_PROXY();
	const size_t total = 5 << 20;
	for (const char *path : {"buffered", "splice"}) {
		EXPECT_EQ(read_through("idle_timeout = 300ms\n", path, false, total), total + 1) << path;
		EXPECT_EQ(read_through("idle_timeout = 60s\nhalf_closed_timeout = 300ms\n", path, true,
				    total),
			  total + 1)
			<< path << ", half closed";
	}
}

/* A fast download after the client's FIN moves bytes all the time: the
 * half-closed sweep, however often it looks, must not take it for quiet
 * (it once read the clock before the relay's last-byte time, and a byte
 * forwarded in between made the difference wrap).  200 ms: a look every
 * 50 ms, yet far longer than the gaps a loaded machine leaves between a
 * relay's turns (10 and 50 ms were not, once each, on the splice path
 * with the whole suite running beside it). */
TEST(TimeoutTest, AFastDownloadAfterTheClientsFinIsNotQuiet)
{
	NEED_PROXY();
#ifdef WEFT_SANITIZED
	const size_t total = 128 << 20; /* a sanitized proxy moves bytes several times slower */
#else
	const size_t total = 512 << 20;
#endif
	for (const char *path : {"buffered", "splice"})
		for (int i = 0; i < 3; i++)
			EXPECT_EQ(read_through("idle_timeout = 60s\nhalf_closed_timeout = 200ms\n", path,
					       true, total, false),
				  total + 1)
				<< path << ", round " << i;
}

/* After the client's FIN the half-closed timeout replaces the idle one,
 * also for a send that waits on the client: a download the client stops
 * reading for longer than idle_timeout, but not half_closed_timeout, goes
 * on (the send used to end it at the idle timeout). */
TEST(TimeoutTest, AfterAFinASendWaitsOutTheHalfClosedTimeoutNotTheIdleOne)
{
	NEED_PROXY();
	const size_t total = 32 << 20;
	for (const char *path : {"buffered", "splice"})
		EXPECT_EQ(read_through("idle_timeout = 300ms\nhalf_closed_timeout = 5s\n", path, true,
				       total, false, 1200),
			  total + 1)
			<< path;
}

/* And one that takes nothing is idle: the proxy gives up on it at the idle
 * timeout (the server's sends fail), though its send never completes. */
TEST(TimeoutTest, AReaderThatTakesNothingEndsAtTheIdleTimeout)
{
	NEED_PROXY();
	for (const char *path : {"buffered", "splice"}) {
		firehose f(64 << 20);
		proxy p;
		int port = free_port();
		std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
				"\nbackend = b\nidle_timeout = 300ms\n\n[backend b]\ndata_path = " +
				path + "\nserver s = 127.0.0.1:" + std::to_string(f.port) + "\n";
		ASSERT_TRUE(p.start(c) && !p.wait_line("listening", 10000).empty());
		int fd = dial(port);
		ASSERT_GE(fd, 0);
		for (int i = 0; i < 300 && f.cut_ms.load() < 0; i++)
			usleep(10000);
		EXPECT_GE(f.cut_ms.load(), 250) << path << ": ended early";
		EXPECT_LT(f.cut_ms.load(), 2000) << path << ": the idle timeout did not apply";
		close(fd);
		EXPECT_EQ(p.stop(), 0);
	}
}

/* A connect that fails gives its server slot back to the queue at once:
 * the connection waiting for it learns its fate then (here no server is
 * left, the only one just failed), not at the queue's timeout. */
TEST(TimeoutTest, AFailedConnectWakesTheConnectionQueuedForItsSlot)
{
	NEED_PROXY();
	blackhole h;
	proxy p;
	int port = free_port();
	std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			"\nbackend = b\n\n[backend b]\nconnect_timeout = 500ms\nretries = 0\n"
			"queue_timeout = 5s\nserver hole = 127.0.0.1:" + std::to_string(h.port) +
			" max_connections=1\n";
	ASSERT_TRUE(p.start(c) && !p.wait_line("listening", 10000).empty());
	int first = dial(port);
	usleep(100 * 1000); /* its connect holds the one slot */
	int second = dial(port);
	long ms = ms_to_end(second);
	EXPECT_GE(ms, 200) << "ended before the first connect failed";
	EXPECT_LT(ms, 2500) << "woken only by the queue timeout";
	close(first);
	close(second);
	EXPECT_EQ(p.stop(), 0);
}

/* Starts p on port, its backend b with these keys and servers hole<i> on
 * the given ports: whether it is listening. */
bool start_before_holes(proxy &p, int port, const std::string &keys, const std::vector<int> &holes)
{
	std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			"\nbackend = b\n\n[backend b]\n" + keys;
	for (size_t i = 0; i < holes.size(); i++)
		c += "server hole" + std::to_string(i) + " = 127.0.0.1:" + std::to_string(holes[i]) + "\n";
	return p.start(c) && !p.wait_line("listening", 10000).empty();
}

/* The access log's connect_ms of line, -1 if it has none. */
double connect_ms_of(const std::string &line)
{
	size_t at = line.find("\"connect_ms\":");
	return at == std::string::npos ? -1 : atof(line.c_str() + at + strlen("\"connect_ms\":"));
}

/* A client of p on port that resets 100 ms in, while the proxy connects
 * for it to servers that never answer: the access log's line for it, and
 * its connect_ms in *ms (-1 if it has none). */
std::string reset_while_connecting(proxy &p, int port, double *ms)
{
	int fd = dial(port);
	EXPECT_GE(fd, 0);
	usleep(100 * 1000); /* its first connect is under way */
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	std::string line = p.wait_line("\"end\":", 5000);
	*ms = connect_ms_of(line);
	return line;
}

/* A client that resets while a connect hangs gets no retry: the next
 * server would cost another connect_timeout, for nobody. */
TEST(TimeoutTest, AClientThatResetsDuringAConnectIsNotRetried)
{
	NEED_PROXY();
	blackhole h1, h2;
	proxy p;
	int port = free_port();
	ASSERT_TRUE(start_before_holes(p, port, "connect_timeout = 400ms\nretries = 1\n",
				       {h1.port, h2.port}));
	double connect_ms;
	std::string line = reset_while_connecting(p, port, &connect_ms);
	EXPECT_NE(line.find("\"end\":\"client_closed\""), std::string::npos) << line;
	EXPECT_GE(connect_ms, 350) << "the first connect was cut short";
	EXPECT_LT(connect_ms, 700) << "retried for a client that had left: " << line;
	EXPECT_EQ(p.stop(), 0);
}

/* A client that resets while the proxy's connect hangs ends that connect
 * at the next look (every second), not at connect_timeout. */
TEST(TimeoutTest, AClientThatResetsDuringAConnectEndsItAtTheNextLook)
{
	NEED_PROXY();
	blackhole h;
	proxy p;
	int port = free_port();
	ASSERT_TRUE(start_before_holes(p, port, "connect_timeout = 5s\nretries = 0\n", {h.port}));
	double ms;
	std::string line = reset_while_connecting(p, port, &ms);
	EXPECT_NE(line.find("\"end\":\"client_closed\""), std::string::npos)
		<< "the connect went on for a client that had left: " << line;
	EXPECT_GE(ms, 800) << line;
	EXPECT_LT(ms, 2500) << line;
	EXPECT_EQ(p.stop(), 0);
}

/* Accepts the next connection on lfd within 5 s and answers it with tag,
 * held 200 ms for the client to read. */
void answer_next(int lfd, char tag)
{
	struct pollfd pf = {lfd, POLLIN, 0};
	int fd;
	if (poll(&pf, 1, 5000) == 1 && (fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0) {
		send(fd, &tag, 1, MSG_NOSIGNAL);
		usleep(200 * 1000);
		close(fd);
	}
}

/* A client of p on port reaches the server that `clear` makes room on
 * (and then joins): the server's tag arrives, through a connect of at
 * least min_ms; then p stops. */
void reached_across_looks(proxy &p, int port, std::thread &clear, char tag, double min_ms)
{
	held x = reach(port);
	clear.join();
	EXPECT_EQ(x.tag, tag) << "the connect did not survive its looks";
	if (x.fd >= 0)
		close(x.fd);
	std::string line = p.wait_line("\"end\":", 3000);
	EXPECT_GE(connect_ms_of(line), min_ms) << line;
	EXPECT_EQ(p.stop(), 0);
}

/* A connect longer than a look goes on across it: the handshake under way
 * is waited for, not restarted.  The hole's accept queue is emptied 1.5 s
 * in, after the proxy's first look; its SYN, dropped until then, gets in
 * when next sent, and the connection reaches the server the test then
 * accepts. */
TEST(TimeoutTest, AConnectLongerThanALookStillConnects)
{
	NEED_PROXY();
	blackhole h;
	proxy p;
	int port = free_port();
	ASSERT_TRUE(start_before_holes(p, port, "connect_timeout = 6s\nretries = 0\n", {h.port}));
	std::thread clear([&h] {
		usleep(1500 * 1000);
		for (int fd : h.fillers)
			close(fd); /* no more SYNs from them */
		h.fillers.clear();
		int fd;
		struct pollfd pf = {h.lfd, POLLIN, 0};
		while (poll(&pf, 1, 0) == 1 && (fd = accept4(h.lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0)
			close(fd);
		answer_next(h.lfd, 'h'); /* the proxy's */
	});
	reached_across_looks(p, port, clear, 'h', 1500);
}

/* The same across a look to a unix socket, whose connect is no handshake
 * under way: io_uring's wait for it ended, the socket is not connecting
 * any more, and waiting for it to turn writable (which an unconnected unix
 * socket is at once) took it for connected; the proxy then relayed to a
 * socket connected to nothing.  The server's queue (backlog 0) holds one
 * filler until 1.5 s in. */
TEST(TimeoutTest, AConnectToAUnixServerLongerThanALookStillConnects)
{
	NEED_PROXY();
	struct sockaddr_un a = {};
	a.sun_family = AF_UNIX;
	std::string name = "weft-proxy-test-" + std::to_string(getpid());
	memcpy(a.sun_path + 1, name.data(), name.size()); /* abstract: sun_path[0] = 0 */
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + name.size());
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(bind(lfd, (struct sockaddr *)&a, alen), 0);
	ASSERT_EQ(listen(lfd, 0), 0);
	int filler = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ASSERT_EQ(connect(filler, (struct sockaddr *)&a, alen), 0);
	int more = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ASSERT_EQ(connect(more, (struct sockaddr *)&a, alen), -1) << "the queue is not full";
	close(more);
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) +
			    "\nbackend = b\n\n[backend b]\nconnect_timeout = 6s\nretries = 0\n"
			    "server s = unix:@" + name + "\n") &&
		    !p.wait_line("listening", 10000).empty());
	std::thread clear([&] {
		usleep(1500 * 1000);
		int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd); /* the filler's */
		answer_next(lfd, 'u');
	});
	/* 1200: the 1.5 s began before the proxy's connect did. */
	reached_across_looks(p, port, clear, 'u', 1200);
	close(filler);
	close(lfd);
}

TEST(LimitTest, AtMaxConnectionsAcceptingPausesAndResumes)
{
	NEED_PROXY();
	backend b('b');
	setup s;
	ASSERT_TRUE(s.start({&b}, "", {}, "max_connections = 3\n"));
	std::vector<held> open;
	for (int i = 0; i < 3; i++) {
		open.push_back(reach(s.port));
		ASSERT_EQ(open.back().tag, 'b');
	}
	/* The fourth gets through the kernel's backlog but not accepted: no
	 * tag, and no accept-and-close either (that would be end of stream). */
	int fd = dial(s.port);
	ASSERT_GE(fd, 0);
	struct timeval tv = {0, 500 * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char t;
	errno = 0;
	EXPECT_EQ(recv(fd, &t, 1, 0), -1) << "served or closed beyond the limit";
	EXPECT_EQ(errno, EAGAIN);
	/* One ends: the waiting one is accepted and reaches the server. */
	close(open[0].fd);
	tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	EXPECT_EQ(recv(fd, &t, 1, 0), 1);
	EXPECT_EQ(t, 'b');
	close(fd);
	for (size_t i = 1; i < open.size(); i++)
		close(open[i].fd);
	EXPECT_EQ(b.accepted.load(), 4);
	EXPECT_EQ(s.p.stop(), 0);
}

/* A frontend with two listen addresses and max_connections = 1: each
 * address serves while the other is idle, again and again.  A loop waiting
 * for its next connection holds no slot; one that did would keep the only
 * slot from the other address for as long as its own stays quiet. */
TEST(LimitTest, AnIdleListenAddressKeepsNoSlotFromTheOther)
{
	NEED_PROXY();
	backend b('b');
	setup s;
	int second = free_port();
	ASSERT_TRUE(s.start({&b}, "", {},
			    "listen = 127.0.0.1:" + std::to_string(second) + "\nmax_connections = 1\n"));
	/* start waits for the first address's line; the second follows. */
	ASSERT_NE(s.p.wait_line(("listening on 127.0.0.1:" + std::to_string(second)).c_str(), 10000),
		  "");
	for (int i = 0; i < 6; i++) {
		held h = reach(i % 2 ? s.port : second);
		EXPECT_EQ(h.tag, 'b') << "round " << i << " on the " << (i % 2 ? "first" : "second")
				      << " address";
		/* Closed, then its end seen by the proxy, which frees the slot. */
		shutdown(h.fd, SHUT_WR);
		char c;
		while (h.fd >= 0 && recv(h.fd, &c, 1, 0) > 0) {
		}
		close(h.fd);
	}
	EXPECT_EQ(s.p.stop(), 0);
}

} // namespace
