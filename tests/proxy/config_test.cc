// SPDX-License-Identifier: MIT
/*
 * config_test.cc - weft-proxy's configuration module
 * (tools/weft-proxy/config.c).  Properties covered:
 *  - a config with one frontend, one backend and one server takes every
 *    documented default; the issue's example reads as written;
 *  - durations need a unit; numbers, booleans, enums, addresses, server
 *    options and health checks read every documented form;
 *  - each kind of error is reported as exactly one `FILE:LINE: problem`
 *    line, with the line of the offending key or section, including
 *    inih's own (a line with no '=', a section header without ']', a line
 *    too long for its buffer) and the whole-file checks;
 *  - line numbers stay right across comments, blank lines, CRLF, a byte
 *    order mark and indentation; an indented line is never a continuation;
 *  - keys and names longer than inih's 50-byte buffers are kept whole;
 *  - unused backends and frontend limits above the global one warn;
 *  - max_connections is derived from, held to or (strict_limits) refused
 *    by the descriptor limit, the same each time it is applied;
 *  - the printed configuration parses back to the same configuration;
 *  - the embedded default parses; files load, and unreadable ones fail
 *    with the file's name.
 * Every config is freed, so the ASan build checks for leaks.
 */
#include <gtest/gtest.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "pipes.h"

namespace {

using std::string;

constexpr uint64_t kMs = 1000ull * 1000ull;
constexpr uint64_t kSec = 1000ull * kMs;

struct Freer {
	void operator()(proxy_config *c) const { proxy_config_free(c); }
};
using Config = std::unique_ptr<proxy_config, Freer>;

/* The minimal configuration that runs. */
const char *const kMinimal = "[frontend web]\n"
			     "listen = 127.0.0.1:8080\n"
			     "backend = app\n"
			     "\n"
			     "[backend app]\n"
			     "server a = 127.0.0.1:9000\n";

Config Parse(const string &text)
{
	proxy_config *c = nullptr;
	proxy_config_error e = {};
	int rc = proxy_config_parse(text.c_str(), "cfg", &c, &e);
	char msg[600];
	proxy_config_error_format(&e, msg, sizeof(msg));
	EXPECT_EQ(rc, 0) << msg;
	return Config(c);
}

/* The error line for text, "" when it parses. */
string Error(const string &text, int want_rc = -EINVAL)
{
	proxy_config *c = nullptr;
	proxy_config_error e = {};
	int rc = proxy_config_parse(text.c_str(), "cfg", &c, &e);
	if (rc == 0) {
		proxy_config_free(c);
		return "";
	}
	EXPECT_EQ(rc, want_rc);
	EXPECT_EQ(c, nullptr);
	char msg[600];
	int n = proxy_config_error_format(&e, msg, sizeof(msg));
	EXPECT_EQ((size_t)n, strlen(msg));
	return msg;
}

/* kMinimal with extra lines in [global] (first), the frontend or the
 * backend: lines 1-2 are [global] and its extra, then the rest. */
string WithGlobal(const string &extra)
{
	return "[global]\n" + extra + "\n" + kMinimal;
}
string WithFrontend(const string &extra)
{
	return "[frontend web]\nlisten = 127.0.0.1:8080\nbackend = app\n" + extra +
	       "\n[backend app]\nserver a = 127.0.0.1:9000\n";
}
string WithBackend(const string &extra)
{
	return string(kMinimal) + extra + "\n";
}
/* WithGlobal with a backend that never splices, so the headroom holds no
 * pipes: the limit tests' figures. */
string BufferedWithGlobal(const string &extra)
{
	return WithGlobal(extra) + "data_path = buffered\n";
}

string Printed(const proxy_config *c)
{
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	proxy_config_print(c, f);
	fclose(f);
	string s(buf, len);
	free(buf);
	return s;
}

string Addr(const weft_addr &a)
{
	char buf[WEFT_ADDR_STRLEN];
	return weft_addr_format(&a, buf, sizeof(buf)) >= 0 ? buf : "?";
}

/* ---- Defaults and the issue's example ---------------------------------------- */

TEST(ProxyConfigTest, MinimalConfigTakesEveryDefault)
{
	Config c = Parse(kMinimal);
	ASSERT_TRUE(c);
	EXPECT_STREQ(c->file, "cfg");
	EXPECT_EQ(c->workers, 0u);
	EXPECT_EQ(c->max_connections, 0u);
	EXPECT_EQ(c->max_connections_written, 0u);
	EXPECT_EQ(c->max_connections_line, 0);
	EXPECT_EQ(c->max_connections_source, PROXY_LIMIT_UNSET);
	EXPECT_FALSE(c->strict_limits);
	EXPECT_FALSE(c->has_admin);
	EXPECT_EQ(c->admin_address, nullptr);
	EXPECT_EQ(c->access_log, PROXY_LOG_STDERR);
	EXPECT_EQ(c->access_log_path, nullptr);
	EXPECT_EQ(c->user, nullptr);
	EXPECT_EQ(c->drain_timeout_ns, 30 * kSec);
	EXPECT_EQ(c->nwarnings, 0u);

	ASSERT_EQ(c->nfrontends, 1u);
	const proxy_frontend &f = c->frontends[0];
	EXPECT_STREQ(f.name, "web");
	EXPECT_EQ(f.line, 1);
	ASSERT_EQ(f.nlistens, 1u);
	EXPECT_STREQ(f.listens[0].address, "127.0.0.1:8080");
	EXPECT_EQ(Addr(f.listens[0].addr), "127.0.0.1:8080");
	EXPECT_EQ(f.listens[0].line, 2);
	EXPECT_STREQ(f.backend_name, "app");
	EXPECT_EQ(f.backend_line, 3);
	EXPECT_EQ(f.backend, &c->backends[0]);
	EXPECT_EQ(f.backend_index, 0u);
	EXPECT_FALSE(f.accept_proxy);
	EXPECT_EQ(f.idle_timeout_ns, 60 * kSec);
	EXPECT_EQ(f.half_closed_timeout_ns, 10 * kSec);
	EXPECT_EQ(f.max_connections, 0u);

	ASSERT_EQ(c->nbackends, 1u);
	const proxy_backend &b = c->backends[0];
	EXPECT_STREQ(b.name, "app");
	EXPECT_EQ(b.line, 5);
	EXPECT_EQ(b.balance, PROXY_BALANCE_ROUNDROBIN);
	EXPECT_EQ(b.connect_timeout_ns, 5 * kSec);
	EXPECT_EQ(b.retries, 2u);
	EXPECT_EQ(b.send_proxy, PROXY_SEND_PROXY_OFF);
	EXPECT_EQ(b.check.kind, PROXY_CHECK_OFF);
	EXPECT_EQ(b.check.path, nullptr);
	EXPECT_EQ(b.check.line, 5);
	EXPECT_EQ(b.slowstart_ns, 0u);
	EXPECT_EQ(b.passive_fall, 3u);
	EXPECT_EQ(b.passive_down_ns, 2 * kSec);
	EXPECT_EQ(b.resolve_interval_ns, 0u);
	EXPECT_EQ(b.queue_timeout_ns, 5 * kSec);
	EXPECT_EQ(b.queue_size, 1024u);
	EXPECT_EQ(b.nfrontends, 1u);
	ASSERT_EQ(b.nservers, 1u);
	const proxy_server &s = b.servers[0];
	EXPECT_STREQ(s.name, "a");
	EXPECT_STREQ(s.address, "127.0.0.1:9000");
	EXPECT_FALSE(s.resolve);
	EXPECT_EQ(Addr(s.addr), "127.0.0.1:9000");
	EXPECT_EQ(s.weight, 1u);
	EXPECT_FALSE(s.backup);
	EXPECT_EQ(s.max_connections, 0u);
	EXPECT_EQ(s.line, 6);
}

TEST(ProxyConfigTest, IssueExampleReadsAsWritten)
{
	Config c = Parse("[global]\n"
			 "workers = auto\n"
			 "max_connections = 100000\n"
			 "admin = 127.0.0.1:9901\n"
			 "access_log = stderr\n"
			 "\n"
			 "[frontend web]\n"
			 "listen = 0.0.0.0:8080\n"
			 "listen = [::]:8080\n"
			 "backend = app\n"
			 "accept_proxy = off        ; accept PROXY v1/v2 from a load balancer in front\n"
			 "idle_timeout = 60s\n"
			 "\n"
			 "[backend app]\n"
			 "balance = leastconn       ; roundrobin | leastconn | random2 | source\n"
			 "connect_timeout = 2s\n"
			 "retries = 2\n"
			 "send_proxy = v2           ; off | v1 | v2\n"
			 "health_check = tcp interval=2s rise=2 fall=3\n"
			 "server a = 10.0.0.1:80 weight=2\n"
			 "server b = 10.0.0.2:80 backup\n");
	ASSERT_TRUE(c);
	EXPECT_EQ(c->workers, 0u);
	EXPECT_EQ(c->max_connections_written, 100000u);
	EXPECT_EQ(c->max_connections_line, 3);
	ASSERT_TRUE(c->has_admin);
	EXPECT_EQ(Addr(c->admin), "127.0.0.1:9901");
	EXPECT_EQ(c->admin_line, 4);
	EXPECT_EQ(c->access_log, PROXY_LOG_STDERR);
	EXPECT_EQ(c->access_log_line, 5);

	const proxy_frontend &f = c->frontends[0];
	ASSERT_EQ(f.nlistens, 2u);
	EXPECT_EQ(Addr(f.listens[0].addr), "0.0.0.0:8080");
	EXPECT_EQ(Addr(f.listens[1].addr), "[::]:8080");
	EXPECT_EQ(f.listens[1].line, 9);
	EXPECT_FALSE(f.accept_proxy);
	EXPECT_EQ(f.idle_timeout_ns, 60 * kSec);

	const proxy_backend &b = c->backends[0];
	EXPECT_EQ(b.balance, PROXY_BALANCE_LEASTCONN);
	EXPECT_EQ(b.connect_timeout_ns, 2 * kSec);
	EXPECT_EQ(b.retries, 2u);
	EXPECT_EQ(b.send_proxy, PROXY_SEND_PROXY_V2);
	EXPECT_EQ(b.check.kind, PROXY_CHECK_TCP);
	EXPECT_EQ(b.check.interval_ns, 2 * kSec);
	EXPECT_EQ(b.check.timeout_ns, 2 * kSec); /* the interval, by default */
	EXPECT_EQ(b.check.rise, 2u);
	EXPECT_EQ(b.check.fall, 3u);
	EXPECT_EQ(b.check.line, 19);
	ASSERT_EQ(b.nservers, 2u);
	EXPECT_STREQ(b.servers[0].name, "a");
	EXPECT_EQ(b.servers[0].weight, 2u);
	EXPECT_FALSE(b.servers[0].backup);
	EXPECT_STREQ(b.servers[1].name, "b");
	EXPECT_EQ(b.servers[1].weight, 1u);
	EXPECT_TRUE(b.servers[1].backup);
	EXPECT_EQ(b.servers[1].line, 21);
}

TEST(ProxyConfigTest, EmbeddedDefaultParses)
{
	Config c = Parse(proxy_config_default);
	ASSERT_TRUE(c);
	ASSERT_EQ(c->nfrontends, 1u);
	ASSERT_EQ(c->frontends[0].nlistens, 1u);
	EXPECT_EQ(Addr(c->frontends[0].listens[0].addr), "127.0.0.1:8080");
	ASSERT_EQ(c->nbackends, 1u);
	ASSERT_EQ(c->backends[0].nservers, 2u);
	EXPECT_EQ(Addr(c->backends[0].servers[0].addr), "127.0.0.1:8081");
	EXPECT_EQ(Addr(c->backends[0].servers[1].addr), "127.0.0.1:8082");
	EXPECT_EQ(c->backends[0].balance, PROXY_BALANCE_ROUNDROBIN);
	ASSERT_TRUE(c->has_admin);
	EXPECT_EQ(Addr(c->admin), "127.0.0.1:9901");
	EXPECT_EQ(c->nwarnings, 0u);
}

TEST(ProxyConfigTest, SeveralFrontendsAndBackendsResolve)
{
	Config c = Parse("[backend one]\nserver x = 10.0.0.1:1\n"
			 "[frontend a]\nlisten = 127.0.0.1:1000\nlisten = unix:/tmp/p.sock\n"
			 "listen = unix:@proxy\nbackend = two\n"
			 "[backend two]\nserver y = 10.0.0.2:2\nserver z = 10.0.0.3:3\n"
			 "[frontend b]\nlisten = [::1]:1000\nbackend = one\n"
			 "[frontend c]\nlisten = 127.0.0.2:1000\nbackend = two\n");
	ASSERT_TRUE(c);
	ASSERT_EQ(c->nfrontends, 3u);
	ASSERT_EQ(c->nbackends, 2u);
	EXPECT_EQ(c->frontends[0].backend, &c->backends[1]);
	EXPECT_EQ(c->frontends[0].backend_index, 1u);
	EXPECT_EQ(c->frontends[1].backend, &c->backends[0]);
	EXPECT_EQ(c->frontends[2].backend_index, 1u);
	EXPECT_EQ(c->backends[0].nfrontends, 1u);
	EXPECT_EQ(c->backends[1].nfrontends, 2u);
	EXPECT_EQ(Addr(c->frontends[0].listens[1].addr), "unix:/tmp/p.sock");
	EXPECT_EQ(Addr(c->frontends[0].listens[2].addr), "unix:@proxy");
	EXPECT_EQ(proxy_config_find_frontend(c.get(), "b"), &c->frontends[1]);
	EXPECT_EQ(proxy_config_find_frontend(c.get(), "d"), nullptr);
	EXPECT_EQ(proxy_config_find_backend(c.get(), "two"), &c->backends[1]);
	EXPECT_EQ(proxy_config_find_backend(c.get(), "three"), nullptr);
	EXPECT_EQ(proxy_backend_find_server(&c->backends[1], "z"), &c->backends[1].servers[1]);
	EXPECT_EQ(proxy_backend_find_server(&c->backends[1], "x"), nullptr);
}

/* ---- Values ------------------------------------------------------------------ */

TEST(ProxyConfigTest, DurationsTakeEachUnit)
{
	struct {
		const char *text;
		uint64_t ns;
	} cases[] = {
		{"1ms", kMs},      {"500ms", 500 * kMs}, {"2s", 2 * kSec},
		{"1m", 60 * kSec}, {"1h", 3600 * kSec},  {"7d", 7 * 86400 * kSec},
		{"0090s", 90 * kSec},
	};
	for (auto &t : cases) {
		Config c = Parse(WithBackend(string("connect_timeout = ") + t.text));
		ASSERT_TRUE(c) << t.text;
		EXPECT_EQ(c->backends[0].connect_timeout_ns, t.ns) << t.text;
	}
	Config off = Parse(WithFrontend("idle_timeout = off\nhalf_closed_timeout = OFF"));
	ASSERT_TRUE(off);
	EXPECT_EQ(off->frontends[0].idle_timeout_ns, 0u);
	EXPECT_EQ(off->frontends[0].half_closed_timeout_ns, 0u);
	Config zero = Parse(WithGlobal("drain_timeout = 0s"));
	ASSERT_TRUE(zero);
	EXPECT_EQ(zero->drain_timeout_ns, 0u);
}

TEST(ProxyConfigTest, DurationsWithoutUnitOrOutOfRangeAreErrors)
{
	EXPECT_EQ(Error(WithBackend("connect_timeout = 2")),
		  "cfg:7: connect_timeout: \"2\" needs a unit (ms, s, m, h or d), as in 2s");
	EXPECT_EQ(Error(WithBackend("connect_timeout = 2sec")),
		  "cfg:7: connect_timeout: \"2sec\" is not a duration (a whole number and a unit: "
		  "500ms, 2s, 1m, 1h, 1d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = 1.5s")),
		  "cfg:7: connect_timeout: \"1.5s\" is not a duration (a whole number and a unit: "
		  "500ms, 2s, 1m, 1h, 1d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = -1s")),
		  "cfg:7: connect_timeout: \"-1s\" is not a duration (a whole number and a unit: "
		  "500ms, 2s, 1m, 1h, 1d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = 2 s")),
		  "cfg:7: connect_timeout: \"2 s\" is not a duration (a whole number and a unit: "
		  "500ms, 2s, 1m, 1h, 1d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = 0s")),
		  "cfg:7: connect_timeout: 0s is out of range (1ms..7d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = 8d")),
		  "cfg:7: connect_timeout: 8d is out of range (1ms..7d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = 99999999999999999999999ms")),
		  "cfg:7: connect_timeout: 99999999999999999999999ms is out of range (1ms..7d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = 18446744073709551615d")),
		  "cfg:7: connect_timeout: 18446744073709551615d is out of range (1ms..7d)");
	EXPECT_EQ(Error(WithBackend("connect_timeout = off")),
		  "cfg:7: connect_timeout: \"off\" is not a duration (a whole number and a unit: "
		  "500ms, 2s, 1m, 1h, 1d)");
	EXPECT_EQ(Error(WithFrontend("idle_timeout = 0ms")),
		  "cfg:4: idle_timeout: 0ms is out of range (1ms..7d, or off)");
	EXPECT_EQ(Error(WithGlobal("drain_timeout = 30")),
		  "cfg:2: drain_timeout: \"30\" needs a unit (ms, s, m, h or d), as in 30s");
}

TEST(ProxyConfigTest, NumbersAreDecimalAndInRange)
{
	Config c = Parse(WithGlobal("workers = 8\nmax_connections = 10000000"));
	ASSERT_TRUE(c);
	EXPECT_EQ(c->workers, 8u);
	EXPECT_EQ(c->max_connections_written, 10000000u);
	EXPECT_EQ(Error(WithGlobal("workers = many")),
		  "cfg:2: workers: \"many\" is not a number or auto");
	EXPECT_EQ(Error(WithGlobal("workers = 0")), "cfg:2: workers: 0 is out of range (1..1024)");
	EXPECT_EQ(Error(WithGlobal("workers = 1025")),
		  "cfg:2: workers: 1025 is out of range (1..1024)");
	EXPECT_EQ(Error(WithGlobal("max_connections = 0")),
		  "cfg:2: max_connections: 0 is out of range (1..10000000)");
	EXPECT_EQ(Error(WithGlobal("max_connections = 1e6")),
		  "cfg:2: max_connections: \"1e6\" is not a number or auto");
	EXPECT_EQ(Error(WithBackend("retries = 11")), "cfg:7: retries: 11 is out of range (0..10)");
	EXPECT_EQ(Error(WithBackend("retries = -1")), "cfg:7: retries: \"-1\" is not a number");
	EXPECT_EQ(Error(WithBackend("retries = +1")), "cfg:7: retries: \"+1\" is not a number");
	EXPECT_EQ(Error(WithBackend("retries = 0x2")), "cfg:7: retries: \"0x2\" is not a number");
	EXPECT_EQ(Error(WithBackend("retries = auto")), "cfg:7: retries: \"auto\" is not a number");
	EXPECT_EQ(Error(WithBackend("retries = 99999999999999999999999")),
		  "cfg:7: retries: 99999999999999999999999 is out of range (0..10)");
	EXPECT_EQ(Error(WithBackend("queue_size = 1000001")),
		  "cfg:7: queue_size: 1000001 is out of range (0..1000000)");
	EXPECT_EQ(Error(WithFrontend("max_connections = 10000001")),
		  "cfg:4: max_connections: 10000001 is out of range (0..10000000)");
}

TEST(ProxyConfigTest, BooleansTakeEverySpelling)
{
	const char *yes[] = {"on", "yes", "true", "ON", "Yes", "TRUE"};
	const char *no[] = {"off", "no", "false", "Off", "NO", "False"};
	for (const char *v : yes) {
		Config c = Parse(WithFrontend(string("accept_proxy = ") + v));
		ASSERT_TRUE(c);
		EXPECT_TRUE(c->frontends[0].accept_proxy) << v;
	}
	for (const char *v : no) {
		Config c = Parse(WithFrontend(string("accept_proxy = ") + v));
		ASSERT_TRUE(c);
		EXPECT_FALSE(c->frontends[0].accept_proxy) << v;
	}
	EXPECT_EQ(Error(WithFrontend("accept_proxy = 1")),
		  "cfg:4: accept_proxy: \"1\" is not on or off (on, off, yes, no, true, false)");
	EXPECT_EQ(Error(WithGlobal("strict_limits = maybe")),
		  "cfg:2: strict_limits: \"maybe\" is not on or off (on, off, yes, no, true, "
		  "false)");
}

TEST(ProxyConfigTest, EnumsTakeTheirWordsAndNothingElse)
{
	const char *bal[] = {"roundrobin", "leastconn", "random2", "source"};
	for (int i = 0; i < 4; i++) {
		Config c = Parse(WithBackend(string("balance = ") + bal[i]));
		ASSERT_TRUE(c);
		EXPECT_EQ(c->backends[0].balance, (proxy_balance)i);
		EXPECT_STREQ(proxy_balance_name((proxy_balance)i), bal[i]);
	}
	const char *sp[] = {"off", "v1", "v2"};
	for (int i = 0; i < 3; i++) {
		Config c = Parse(WithBackend(string("send_proxy = ") + sp[i]));
		ASSERT_TRUE(c);
		EXPECT_EQ(c->backends[0].send_proxy, (proxy_send_proxy)i);
		EXPECT_STREQ(proxy_send_proxy_name((proxy_send_proxy)i), sp[i]);
	}
	EXPECT_EQ(Error(WithBackend("balance = fastest")),
		  "cfg:7: balance: unknown value \"fastest\" (roundrobin, leastconn, random2 or "
		  "source)");
	EXPECT_EQ(Error(WithBackend("send_proxy = v3")),
		  "cfg:7: send_proxy: unknown value \"v3\" (off, v1 or v2)");
	EXPECT_EQ(Error(WithBackend("send_proxy = on")),
		  "cfg:7: send_proxy: unknown value \"on\" (off, v1 or v2)");
}

TEST(ProxyConfigTest, GlobalStringsAdminAccessLogUser)
{
	Config c = Parse(WithGlobal("admin = [::1]:9901\naccess_log = /var/log/weft-proxy.log\n"
				    "user = www-data"));
	ASSERT_TRUE(c);
	EXPECT_TRUE(c->has_admin);
	EXPECT_EQ(Addr(c->admin), "[::1]:9901");
	EXPECT_STREQ(c->admin_address, "[::1]:9901");
	EXPECT_EQ(c->access_log, PROXY_LOG_FILE);
	EXPECT_STREQ(c->access_log_path, "/var/log/weft-proxy.log");
	EXPECT_EQ(c->access_log_line, 3);
	EXPECT_STREQ(c->user, "www-data");
	EXPECT_EQ(c->user_line, 4);

	Config d = Parse(WithGlobal("admin = off\naccess_log = off"));
	ASSERT_TRUE(d);
	EXPECT_FALSE(d->has_admin);
	EXPECT_EQ(d->access_log, PROXY_LOG_OFF);
	Config e = Parse(WithGlobal("access_log = stdout\nuser = 33"));
	ASSERT_TRUE(e);
	EXPECT_EQ(e->access_log, PROXY_LOG_STDOUT);
	EXPECT_STREQ(e->user, "33");

	EXPECT_EQ(Error(WithGlobal("user = www data")),
		  "cfg:2: user: \"www data\" is not a user name");
	EXPECT_EQ(Error(WithGlobal("user = -x")), "cfg:2: user: \"-x\" is not a user name");
	EXPECT_EQ(Error(WithGlobal("admin = localhost:9901")),
		  "cfg:2: admin: \"localhost:9901\" is not a numeric address (IPv4:port, "
		  "[IPv6]:port or unix:/path; no host names)");
	EXPECT_EQ(Error(WithGlobal("access_log = /tmp/a\x01")),
		  "cfg:2: access_log: the path has a control character");
}

/* ---- Addresses ---------------------------------------------------------------- */

TEST(ProxyConfigTest, ListenTakesNumericAddressesOnly)
{
	EXPECT_EQ(Error(WithFrontend("listen = localhost:80")),
		  "cfg:4: listen: \"localhost:80\" is not a numeric address (IPv4:port, "
		  "[IPv6]:port or unix:/path; no host names)");
	EXPECT_EQ(Error(WithFrontend("listen = ::1:80")),
		  "cfg:4: listen: \"::1:80\": put IPv6 addresses in brackets, as in [::1]:80");
	EXPECT_EQ(Error(WithFrontend("listen = 127.0.0.1")),
		  "cfg:4: listen: \"127.0.0.1\" is not an address (IPv4:port, [IPv6]:port or "
		  "unix:/path)");
	EXPECT_EQ(Error(WithFrontend("listen = 127.0.0.1:65536")),
		  "cfg:4: listen: \"127.0.0.1:65536\" is not an address (IPv4:port, [IPv6]:port "
		  "or unix:/path)");
	EXPECT_EQ(Error(WithFrontend("listen = 300.0.0.1:80")),
		  "cfg:4: listen: \"300.0.0.1:80\" is not an address (IPv4:port, [IPv6]:port or "
		  "unix:/path)");
	EXPECT_EQ(Error(WithFrontend("listen = unix:")),
		  "cfg:4: listen: \"unix:\" is not an address (IPv4:port, [IPv6]:port or "
		  "unix:/path)");
	EXPECT_EQ(Error(WithFrontend("listen = 127.0.0.1:8080 127.0.0.1:8081")),
		  "cfg:4: listen: \"127.0.0.1:8080 127.0.0.1:8081\" holds more than an address "
		  "(one address a line)");
	/* port 0 asks the kernel for one: allowed for listeners */
	Config c = Parse(WithFrontend("listen = 127.0.0.1:0"));
	ASSERT_TRUE(c);
	EXPECT_EQ(c->frontends[0].nlistens, 2u);
}

TEST(ProxyConfigTest, ServerAddressMayBeAHostNameResolvedLater)
{
	Config c = Parse(WithBackend("server b = db.internal:5432\nserver c = [::1]:80\n"
				     "server d = unix:/run/app.sock\nserver e = my_svc-1:80"));
	ASSERT_TRUE(c);
	const proxy_backend &b = c->backends[0];
	ASSERT_EQ(b.nservers, 5u);
	EXPECT_TRUE(b.servers[1].resolve);
	EXPECT_STREQ(b.servers[1].address, "db.internal:5432");
	EXPECT_EQ(b.servers[1].addr.len, 0u);
	EXPECT_FALSE(b.servers[2].resolve);
	EXPECT_EQ(Addr(b.servers[2].addr), "[::1]:80");
	EXPECT_FALSE(b.servers[3].resolve);
	EXPECT_EQ(Addr(b.servers[3].addr), "unix:/run/app.sock");
	EXPECT_TRUE(b.servers[4].resolve);

	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.1:0")),
		  "cfg:7: server b: \"10.0.0.1:0\" has port 0");
	EXPECT_EQ(Error(WithBackend("server b = db:0")), "cfg:7: server b: \"db:0\" has port 0");
	EXPECT_EQ(Error(WithBackend("server b = db:http")),
		  "cfg:7: server b: \"db:http\" has a bad port (0..65535)");
	EXPECT_EQ(Error(WithBackend("server b = db:70000")),
		  "cfg:7: server b: \"db:70000\" has a bad port (0..65535)");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.256:80")),
		  "cfg:7: server b: \"10.0.0.256:80\" is not an address (IPv4:port, [IPv6]:port, "
		  "unix:/path or host:port)");
	EXPECT_EQ(Error(WithBackend("server b = db..x:80")),
		  "cfg:7: server b: \"db..x:80\" is not an address (IPv4:port, [IPv6]:port, "
		  "unix:/path or host:port)");
	EXPECT_EQ(Error(WithBackend("server b = fe80::1:80")),
		  "cfg:7: server b: \"fe80::1:80\": put IPv6 addresses in brackets, as in "
		  "[::1]:80");
}

/* ---- Servers and health checks ----------------------------------------------- */

TEST(ProxyConfigTest, ServerOptionsInAnyOrder)
{
	Config c = Parse(WithBackend("server b = 10.0.0.2:80 backup weight=256 max_connections=100\n"
				     "server c = 10.0.0.3:80\tmax_connections=0  weight=1"));
	ASSERT_TRUE(c);
	const proxy_server &b = c->backends[0].servers[1];
	EXPECT_TRUE(b.backup);
	EXPECT_EQ(b.weight, 256u);
	EXPECT_EQ(b.max_connections, 100u);
	const proxy_server &s = c->backends[0].servers[2];
	EXPECT_FALSE(s.backup);
	EXPECT_EQ(s.max_connections, 0u);
	EXPECT_STREQ(s.address, "10.0.0.3:80");
}

/* send_proxy and the check port: a server's own when its line sets them,
 * else its backend's, whichever comes first in the section. */
TEST(ProxyConfigTest, AServerTakesItsBackendsSendProxyAndCheckPortUnlessItSetsItsOwn)
{
	Config c = Parse(WithBackend("server b = 10.0.0.2:80 send_proxy=off check_port=9000\n"
				     "server c = 10.0.0.3:80 send_proxy=v1\n"
				     "send_proxy = v2\nhealth_check = tcp port=8080"));
	ASSERT_TRUE(c);
	const proxy_backend &be = c->backends[0];
	ASSERT_EQ(be.nservers, 3u);
	EXPECT_EQ(be.servers[0].send_proxy, PROXY_SEND_PROXY_V2);
	EXPECT_EQ(be.servers[0].check_port, 8080u);
	EXPECT_FALSE(be.servers[0].own_send_proxy);
	EXPECT_EQ(be.servers[1].send_proxy, PROXY_SEND_PROXY_OFF);
	EXPECT_EQ(be.servers[1].check_port, 9000u);
	EXPECT_TRUE(be.servers[1].own_send_proxy && be.servers[1].own_check_port);
	EXPECT_EQ(be.servers[2].send_proxy, PROXY_SEND_PROXY_V1);
	EXPECT_EQ(be.servers[2].check_port, 8080u);
	/* Without a backend port, a server without its own is checked on its
	 * own address's port (0). */
	Config d = Parse(WithBackend("server b = 10.0.0.2:80 check_port=9000"));
	ASSERT_TRUE(d);
	EXPECT_EQ(d->backends[0].servers[0].check_port, 0u);
	EXPECT_EQ(d->backends[0].servers[0].send_proxy, PROXY_SEND_PROXY_OFF);
	EXPECT_EQ(d->backends[0].servers[1].check_port, 9000u);
}

TEST(ProxyConfigTest, MalformedServerOptionsAreErrors)
{
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 wieght=2")),
		  "cfg:7: server b: unknown option \"wieght=2\" (weight=N, backup, "
		  "max_connections=N, send_proxy=off|v1|v2, check_port=N)");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 backup=yes")),
		  "cfg:7: server b: backup takes no value");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 weight")),
		  "cfg:7: server b: weight needs a value, as in weight=N");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 weight=")),
		  "cfg:7: server b weight: \"\" is not a number");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 weight=0")),
		  "cfg:7: server b weight: 0 is out of range (1..256)");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 weight=257")),
		  "cfg:7: server b weight: 257 is out of range (1..256)");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 weight=2 weight=3")),
		  "cfg:7: server b: weight given twice");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 backup backup")),
		  "cfg:7: server b: backup given twice");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 max_connections=lots")),
		  "cfg:7: server b max_connections: \"lots\" is not a number");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 weight=1 backup max_connections=1 "
				    "send_proxy=v1 check_port=1 x")),
		  "cfg:7: server b: too many options (weight=N, backup, max_connections=N, "
		  "send_proxy=off|v1|v2, check_port=N)");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 send_proxy")),
		  "cfg:7: server b: send_proxy needs a value, as in send_proxy=off|v1|v2");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 send_proxy=v3")),
		  "cfg:7: server b send_proxy: unknown value \"v3\" (off, v1 or v2)");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 check_port=0")),
		  "cfg:7: server b check_port: 0 is out of range (1..65535)");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 check_port=65536")),
		  "cfg:7: server b check_port: 65536 is out of range (1..65535)");
	EXPECT_EQ(Error(WithBackend("server b = unix:/run/b.sock check_port=80")),
		  "cfg:7: server b check_port: a unix socket has no port to check");
	EXPECT_EQ(Error(WithBackend("server b = 10.0.0.2:80 check_port=1 check_port=2")),
		  "cfg:7: server b: check_port given twice");
	EXPECT_EQ(Error(WithBackend("server = 10.0.0.2:80")),
		  "cfg:7: server needs a name: server NAME = ADDRESS");
	EXPECT_EQ(Error(WithBackend("server b c = 10.0.0.2:80")),
		  "cfg:7: server name \"b c\" is not valid (1 to 63 of A-Z a-z 0-9 _ . -)");
	EXPECT_EQ(Error(WithBackend("server a = 10.0.0.2:80")),
		  "cfg:7: server a appears twice in [backend app] (first at line 6)");
}

TEST(ProxyConfigTest, HealthChecks)
{
	Config c = Parse(WithBackend("health_check = http /healthz?full=1 fall=5 interval=500ms "
				     "timeout=200ms rise=1"));
	ASSERT_TRUE(c);
	const proxy_health_check &h = c->backends[0].check;
	EXPECT_EQ(h.kind, PROXY_CHECK_HTTP);
	EXPECT_STREQ(h.path, "/healthz?full=1");
	EXPECT_EQ(h.interval_ns, 500 * kMs);
	EXPECT_EQ(h.timeout_ns, 200 * kMs);
	EXPECT_EQ(h.rise, 1u);
	EXPECT_EQ(h.fall, 5u);
	EXPECT_EQ(h.line, 7);

	Config t = Parse(WithBackend("health_check = tcp"));
	ASSERT_TRUE(t);
	EXPECT_EQ(t->backends[0].check.kind, PROXY_CHECK_TCP);
	EXPECT_EQ(t->backends[0].check.interval_ns, 2 * kSec);
	EXPECT_EQ(t->backends[0].check.timeout_ns, 2 * kSec);
	EXPECT_EQ(t->backends[0].check.rise, 2u);
	EXPECT_EQ(t->backends[0].check.fall, 3u);
	EXPECT_EQ(t->backends[0].check.port, 0u);
	Config o = Parse(WithBackend("health_check = off"));
	ASSERT_TRUE(o);
	EXPECT_EQ(o->backends[0].check.kind, PROXY_CHECK_OFF);
	Config port = Parse(WithBackend("health_check = http /ready port=8081\n"
					"server n = localhost:80"));
	ASSERT_TRUE(port);
	EXPECT_EQ(port->backends[0].check.port, 8081u);
}

TEST(ProxyConfigTest, SlowstartAndPassiveMarking)
{
	Config c = Parse(WithBackend("slowstart = 30s"));
	ASSERT_TRUE(c);
	EXPECT_EQ(c->backends[0].slowstart_ns, 30 * kSec);
	EXPECT_EQ(Error(WithBackend("slowstart = 2d")),
		  "cfg:7: slowstart: 2d is out of range (1ms..1d, or off)");
	EXPECT_EQ(Error(WithBackend("passive_fall = 101")),
		  "cfg:7: passive_fall: 101 is out of range (0..100)");
	EXPECT_EQ(Error(WithBackend("passive_down = 0ms")),
		  "cfg:7: passive_down: 0ms is out of range (1ms..1d)");
	EXPECT_EQ(Error(WithBackend("slowstart = 30")),
		  "cfg:7: slowstart: \"30\" needs a unit (ms, s, m, h or d), as in 30s");
}

TEST(ProxyConfigTest, MalformedHealthChecksAreErrors)
{
	EXPECT_EQ(Error(WithBackend("health_check = icmp")),
		  "cfg:7: health_check: unknown check \"icmp\" (off, tcp or http PATH)");
	EXPECT_EQ(Error(WithBackend("health_check = http")),
		  "cfg:7: health_check: http needs a path, as in http /health");
	EXPECT_EQ(Error(WithBackend("health_check = http interval=2s")),
		  "cfg:7: health_check: http needs a path, as in http /health");
	EXPECT_EQ(Error(WithBackend("health_check = tcp inter=2s")),
		  "cfg:7: health_check: unknown option \"inter=2s\" (interval=, timeout=, rise=, "
		  "fall=, port=)");
	EXPECT_EQ(Error(WithBackend("health_check = tcp rise")),
		  "cfg:7: health_check: unknown option \"rise\" (interval=, timeout=, rise=, "
		  "fall=, port=)");
	EXPECT_EQ(Error(WithBackend("health_check = tcp port=0")),
		  "cfg:7: health_check port: 0 is out of range (1..65535)");
	EXPECT_EQ(Error(WithBackend("health_check = tcp port=9\nserver u = unix:/run/x.sock")),
		  "cfg:7: health_check port=9: server u is a unix socket, which has no port "
		  "(line 8)");
	EXPECT_EQ(Error(WithBackend("health_check = tcp interval=2")),
		  "cfg:7: health_check interval: \"2\" needs a unit (ms, s, m, h or d), as in 2s");
	EXPECT_EQ(Error(WithBackend("health_check = tcp rise=0")),
		  "cfg:7: health_check rise: 0 is out of range (1..100)");
	EXPECT_EQ(Error(WithBackend("health_check = tcp fall=x")),
		  "cfg:7: health_check fall: \"x\" is not a number");
	EXPECT_EQ(Error(WithBackend("health_check = tcp fall=2 fall=3")),
		  "cfg:7: health_check: fall given twice");
	EXPECT_EQ(Error(WithBackend("health_check = off interval=1s")),
		  "cfg:7: health_check: off takes no options");
	EXPECT_EQ(Error(WithBackend("health_check = tcp rise=1 rise=1 rise=1 rise=1 rise=1 rise=1 "
				    "rise=1 rise=1")),
		  "cfg:7: health_check: too many options");
}

/* ---- Each kind of error, with its line --------------------------------------- */

struct ErrorCase {
	const char *what;
	string text;
	string error;
};

TEST(ProxyConfigTest, EachErrorKindNamesFileAndLine)
{
	const std::vector<ErrorCase> cases = {
		{"key outside any section", "listen = 127.0.0.1:80\n" + string(kMinimal),
		 "cfg:1: listen is outside any section (keys go under [global], [frontend NAME] "
		 "or [backend NAME])"},
		{"unknown section type", string(kMinimal) + "[listen web]\n",
		 "cfg:7: unknown section [listen web] (sections are [global], [frontend NAME] and "
		 "[backend NAME])"},
		{"unknown section type without name", "[defaults]\n" + string(kMinimal),
		 "cfg:1: unknown section [defaults] (sections are [global], [frontend NAME] and "
		 "[backend NAME])"},
		{"section type is case-sensitive", "[Global]\n",
		 "cfg:1: unknown section [Global] (sections are [global], [frontend NAME] and "
		 "[backend NAME])"},
		{"frontend without name", "[frontend]\n",
		 "cfg:1: [frontend] needs a name, as in [frontend web]"},
		{"backend without name", string(kMinimal) + "[backend ]\n",
		 "cfg:7: [backend] needs a name, as in [backend app]"},
		{"global with a name", "[global main]\n", "cfg:1: [global] takes no name"},
		{"bad section name", "[frontend a/b]\n",
		 "cfg:1: [frontend a/b]: \"a/b\" is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -)"},
		{"section name with a blank", "[backend a b]\n",
		 "cfg:1: [backend a b]: \"a b\" is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -)"},
		{"section name too long", "[backend " + string(64, 'x') + "]\n",
		 "cfg:1: [backend " + string(64, 'x') + "]: \"" + string(64, 'x') +
			 "\" is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -)"},
		{"duplicate frontend", string(kMinimal) + "[frontend web]\n",
		 "cfg:7: [frontend web] appears twice (first at line 1)"},
		{"duplicate backend", string(kMinimal) + "\n[backend app]\n",
		 "cfg:8: [backend app] appears twice (first at line 5)"},
		{"duplicate global", "[global]\n[global]\n", "cfg:2: [global] appears twice (first at line 1)"},
		{"section header without ]", "[frontend web\n",
		 "cfg:1: section header without a closing ]"},
		{"text after ]", "[frontend web] x\n", "cfg:1: text after ] in a section header"},
		{"line without =", WithFrontend("accept_proxy"),
		 "cfg:4: expected KEY = VALUE, a [section] or a comment"},
		{"line with a comment but no =", WithFrontend("accept_proxy ; = on"),
		 "cfg:4: expected KEY = VALUE, a [section] or a comment"},
		{"empty key", WithFrontend("= on"), "cfg:4: a key is missing before the ="},
		{"empty value", WithFrontend("accept_proxy ="), "cfg:4: accept_proxy needs a value"},
		{"empty value before a comment", WithFrontend("accept_proxy = ; none"),
		 "cfg:4: accept_proxy needs a value"},
		{"unknown key in global", WithGlobal("worker = 4"),
		 "cfg:2: unknown key \"worker\" in [global] (did you mean workers?)"},
		{"unknown key in frontend", WithFrontend("lsten = 127.0.0.1:1"),
		 "cfg:4: unknown key \"lsten\" in [frontend web] (did you mean listen?)"},
		{"unknown key in backend", WithBackend("timeout_connect = 2s"),
		 "cfg:7: unknown key \"timeout_connect\" in [backend app]"},
		{"unknown key close to server", WithBackend("servr = 1.2.3.4:5"),
		 "cfg:7: unknown key \"servr\" in [backend app] (did you mean server NAME?)"},
		{"no suggestion from another section", WithFrontend("balanse = source"),
		 "cfg:4: unknown key \"balanse\" in [frontend web]"},
		{"keys are case-sensitive", WithFrontend("Listen = 127.0.0.1:1"),
		 "cfg:4: unknown key \"Listen\" in [frontend web] (did you mean listen?)"},
		{"backend key in frontend", WithFrontend("balance = leastconn"),
		 "cfg:4: balance belongs in [backend NAME], not [frontend web]"},
		{"frontend key in global", WithGlobal("listen = 127.0.0.1:1"),
		 "cfg:2: listen belongs in [frontend NAME], not [global]"},
		{"max_connections in backend", WithBackend("max_connections = 5"),
		 "cfg:7: max_connections belongs in [global] or [frontend NAME], not [backend app]"},
		{"server in frontend", WithFrontend("server a = 1.2.3.4:5"),
		 "cfg:4: server belongs in [backend NAME], not [frontend web]"},
		{"key set twice", WithBackend("retries = 1\nretries = 2"),
		 "cfg:8: retries is set twice in [backend app] (first at line 7)"},
		{"global key set twice", WithGlobal("workers = 1\n\nworkers = 2"),
		 "cfg:4: workers is set twice in [global] (first at line 2)"},
		{"frontend without listen", "[frontend web]\nbackend = app\n[backend app]\nserver a = 1.2.3.4:5\n",
		 "cfg:1: [frontend web] has no listen address"},
		{"frontend without backend",
		 "[backend app]\nserver a = 1.2.3.4:5\n[frontend web]\nlisten = 127.0.0.1:1\n",
		 "cfg:3: [frontend web] has no backend (backend = NAME)"},
		{"frontend naming a missing backend", WithFrontend("") + "[frontend b]\n"
			"listen = 127.0.0.1:2\nbackend = nope\n",
		 "cfg:9: backend: there is no [backend nope]"},
		{"bad backend name", "[frontend web]\nlisten = 127.0.0.1:1\nbackend = a b\n",
		 "cfg:3: backend: \"a b\" is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -)"},
		{"backend without servers", string(kMinimal) + "[backend spare]\nbalance = source\n",
		 "cfg:7: [backend spare] has no servers (server NAME = ADDRESS)"},
		{"no frontend at all", "[global]\n[backend app]\nserver a = 1.2.3.4:5\n",
		 "cfg: no [frontend NAME] section: nothing to listen on"},
		{"empty file", "", "cfg: no [frontend NAME] section: nothing to listen on"},
		{"same listen address twice", WithFrontend("listen = 127.0.0.1:8080"),
		 "cfg:4: listen: 127.0.0.1:8080 is already a listen address (line 2)"},
		{"same listen address in two frontends", WithFrontend("") +
			"[frontend b]\nlisten = [::1]:1\nlisten = unix:/x\nbackend = app\n"
			"[frontend c]\nlisten = unix:/x\nbackend = app\n",
		 "cfg:12: listen: unix:/x is already a listen address (line 9)"},
		{"listen address written differently", WithFrontend("listen = 127.0.0.1:08080"),
		 "cfg:4: listen: 127.0.0.1:08080 is already a listen address (line 2)"},
		{"admin on a listen address", WithGlobal("admin = 127.0.0.1:8080"),
		 "cfg:4: the admin address 127.0.0.1:8080 is also a listen address"},
	};
	for (const ErrorCase &t : cases)
		EXPECT_EQ(Error(t.text), t.error) << t.what;
}

TEST(ProxyConfigTest, WholeFileChecksReportTheEarliestLine)
{
	/* a backend without servers (line 1) before a frontend without listen */
	EXPECT_EQ(Error("[backend x]\n[frontend web]\nbackend = x\n"),
		  "cfg:1: [backend x] has no servers (server NAME = ADDRESS)");
	EXPECT_EQ(Error("[frontend web]\nbackend = x\n[backend x]\n"),
		  "cfg:1: [frontend web] has no listen address");
	/* parsing stops at the first error: the later one is not reported */
	EXPECT_EQ(Error(WithGlobal("workers = x\nfoo = 1")),
		  "cfg:2: workers: \"x\" is not a number or auto");
}

/* ---- Lines as inih sees them -------------------------------------------------- */

TEST(ProxyConfigTest, LineNumbersSurviveCommentsBlankLinesCrlfAndBom)
{
	string text = "\xEF\xBB\xBF; a comment\r\n"
		      "# another\r\n"
		      "\r\n"
		      "   [frontend web]   ; trailing\r\n"
		      "\tlisten = 127.0.0.1:1  # port one\r\n"
		      "  backend = app\r\n"
		      "  \r\n"
		      "[backend app]\r\n"
		      "  server a = 10.0.0.1:1 ; first\r\n"
		      "  retries = x\r\n";
	EXPECT_EQ(Error(text), "cfg:10: retries: \"x\" is not a number");
	text.replace(text.find("retries = x"), 11, "retries = 3");
	Config c = Parse(text);
	ASSERT_TRUE(c);
	EXPECT_EQ(c->frontends[0].line, 4);
	EXPECT_EQ(c->frontends[0].listens[0].line, 5);
	EXPECT_STREQ(c->frontends[0].listens[0].address, "127.0.0.1:1");
	EXPECT_EQ(c->backends[0].servers[0].line, 9);
	EXPECT_STREQ(c->backends[0].servers[0].address, "10.0.0.1:1");
	EXPECT_EQ(c->backends[0].retries, 3u);
	/* a BOM on a later line is no BOM */
	EXPECT_EQ(Error("[global]\n\xEF\xBB\xBFworkers = 1\n"),
		  "cfg:2: unknown key \"\xEF\xBB\xBFworkers\" in [global]");
}

TEST(ProxyConfigTest, IndentedLineIsNotAContinuation)
{
	/* inih would read "  listen = ..." after "backend = app" as more of
	 * backend's value; here it is a key of its own. */
	Config c = Parse("[frontend web]\nbackend = app\n  listen = 127.0.0.1:1\n"
			 "[backend app]\nserver a = 10.0.0.1:1\n");
	ASSERT_TRUE(c);
	EXPECT_STREQ(c->frontends[0].backend_name, "app");
	ASSERT_EQ(c->frontends[0].nlistens, 1u);
	EXPECT_EQ(c->frontends[0].listens[0].line, 3);
}

TEST(ProxyConfigTest, InlineCommentsNeedABlankBefore)
{
	Config c = Parse(WithBackend("health_check = http /a;b#c ; comment\n"
				     "server b = 10.0.0.2:80 # comment"));
	ASSERT_TRUE(c);
	EXPECT_STREQ(c->backends[0].check.path, "/a;b#c");
	EXPECT_STREQ(c->backends[0].servers[1].address, "10.0.0.2:80");
	EXPECT_EQ(c->backends[0].nservers, 2u);
}

TEST(ProxyConfigTest, ColonSeparatesLikeEquals)
{
	Config c = Parse("[frontend web]\nlisten: [::1]:80\nbackend: app\n"
			 "[backend app]\nserver a: 10.0.0.1:80\n");
	ASSERT_TRUE(c);
	EXPECT_EQ(Addr(c->frontends[0].listens[0].addr), "[::1]:80");
	EXPECT_STREQ(c->backends[0].servers[0].address, "10.0.0.1:80");
}

TEST(ProxyConfigTest, LongLinesAreErrorsNotCut)
{
	/* 197 bytes after the indentation fit inih's 200-byte buffer ... */
	string path = "/" + string(197 - strlen("health_check = http /"), 'p');
	string fits = "health_check = http " + path;
	ASSERT_EQ(fits.size(), 197u);
	Config c = Parse(WithBackend("    " + fits));
	ASSERT_TRUE(c);
	EXPECT_EQ(string(c->backends[0].check.path), path);
	/* ... 198 do not */
	EXPECT_EQ(Error(WithBackend(fits + "p")),
		  "cfg:7: line too long (more than 197 bytes after the indentation)");
	/* comments may be as long as they like */
	Config d = Parse("; " + string(5000, 'c') + "\n" + kMinimal);
	ASSERT_TRUE(d);
	EXPECT_EQ(d->frontends[0].line, 2);
}

TEST(ProxyConfigTest, NamesLongerThanInihsBuffersStayWhole)
{
	/* inih keeps 49 bytes of a key and of a section name; two server
	 * names alike in their first 55 bytes are still two servers. */
	string a = string(55, 's') + "_one", b = string(55, 's') + "_two";
	string fe = string(60, 'f');
	Config c = Parse("[frontend " + fe + "]\nlisten = 127.0.0.1:1\nbackend = " + fe +
			 "\n[backend " + fe + "]\nserver " + a + " = 10.0.0.1:1\nserver " + b +
			 " = 10.0.0.2:1\n");
	ASSERT_TRUE(c);
	EXPECT_EQ(string(c->frontends[0].name), fe);
	ASSERT_EQ(c->backends[0].nservers, 2u);
	EXPECT_EQ(string(c->backends[0].servers[0].name), a);
	EXPECT_EQ(string(c->backends[0].servers[1].name), b);
	string k = "listen" + string(50, 'x');
	EXPECT_EQ(Error(WithFrontend(k + " = 1")),
		  "cfg:4: unknown key \"" + k + "\" in [frontend web]");
}

/* ---- Warnings ----------------------------------------------------------------- */

TEST(ProxyConfigTest, UnusedBackendAndHighFrontendLimitWarn)
{
	Config c = Parse("[global]\nmax_connections = 100\n" + WithFrontend("max_connections = 500") +
			 "[backend spare]\nserver x = 10.0.0.9:1\n");
	ASSERT_TRUE(c);
	ASSERT_EQ(c->nwarnings, 2u);
	EXPECT_STREQ(c->warnings[0], "cfg:9: [backend spare] is not used by any frontend");
	EXPECT_STREQ(c->warnings[1],
		     "cfg:3: [frontend web] max_connections 500 is above the global 100, which "
		     "applies");
	EXPECT_EQ(c->backends[1].nfrontends, 0u);
}

TEST(ProxyConfigTest, ResolveIntervalWithoutAHostNameWarns)
{
	Config c = Parse(WithBackend("resolve_interval = 10s"));
	ASSERT_TRUE(c);
	ASSERT_EQ(c->nwarnings, 1u);
	EXPECT_STREQ(c->warnings[0],
		     "cfg:7: [backend app] resolve_interval: no server has a host name to look up");
	EXPECT_EQ(c->backends[0].resolve_interval_ns, 10 * kSec);
	EXPECT_FALSE(c->backends[0].host_names);
	Config named = Parse(string(kMinimal).substr(0, string(kMinimal).rfind("server")) +
			     "server a = localhost:9000\nresolve_interval = 10s\n");
	ASSERT_TRUE(named);
	EXPECT_EQ(named->nwarnings, 0u);
	EXPECT_TRUE(named->backends[0].host_names);
}

TEST(ProxyConfigTest, AnAdminPortAloneIsLoopbackAndAReachableOneWarns)
{
	Config c = Parse(WithGlobal("admin = 9901"));
	ASSERT_TRUE(c);
	ASSERT_TRUE(c->has_admin);
	EXPECT_EQ(Addr(c->admin), "127.0.0.1:9901");
	EXPECT_STREQ(c->admin_address, "127.0.0.1:9901");
	EXPECT_EQ(c->nwarnings, 0u);
	for (const char *local : {"127.0.0.2:9901", "[::1]:9901", "[::ffff:127.0.0.1]:9901"}) {
		Config l = Parse(WithGlobal(std::string("admin = ") + local));
		ASSERT_TRUE(l) << local;
		EXPECT_EQ(l->nwarnings, 0u) << local;
	}
	for (const char *open : {"0.0.0.0:9901", "[::]:9901", "10.1.2.3:9901"}) {
		Config o = Parse(WithGlobal(std::string("admin = ") + open));
		ASSERT_TRUE(o) << open;
		ASSERT_EQ(o->nwarnings, 1u) << open;
		EXPECT_EQ(std::string(o->warnings[0]),
			  std::string("cfg:2: admin ") + open +
				  ": other hosts can reach the admin listener, which has no "
				  "authentication and takes POST /servers (server states); a port "
				  "alone binds 127.0.0.1");
	}
	EXPECT_EQ(Error(WithGlobal("admin = 65536")),
		  "cfg:2: admin: \"65536\" is not an address (IPv4:port, [IPv6]:port or unix:/path)");
}

/* ---- Limits ------------------------------------------------------------------- */

TEST(ProxyConfigTest, AutoMaxConnectionsIsWhatTheFdLimitHolds)
{
	Config c = Parse(BufferedWithGlobal("workers = 4"));
	ASSERT_TRUE(c);
	char w[256];
	/* headroom: 64 + 2*4 workers + 1 listen + 1 server = 74 */
	ASSERT_EQ(proxy_config_apply_limits(c.get(), 1024, w, sizeof(w)), 0);
	EXPECT_STREQ(w, "");
	EXPECT_EQ(c->max_connections, (1024u - 74) / 2);
	EXPECT_EQ(c->max_connections_source, PROXY_LIMIT_DERIVED);
	EXPECT_EQ(c->fd_limit, 1024u);
	/* again, with a larger limit: derived anew, not kept */
	ASSERT_EQ(proxy_config_apply_limits(c.get(), 1048576, w, sizeof(w)), 0);
	EXPECT_EQ(c->max_connections, (1048576u - 74) / 2);
	/* no limit at all counts as 2^31 - 1, capped at the largest limit */
	ASSERT_EQ(proxy_config_apply_limits(c.get(), RLIM_INFINITY, w, sizeof(w)), 0);
	EXPECT_EQ(c->max_connections, PROXY_CONNECTIONS_MAX);
	/* an admin listener and an access log file take room too */
	Config d = Parse(BufferedWithGlobal("workers = 4\nadmin = 127.0.0.1:9901\naccess_log = /tmp/x.log"));
	ASSERT_TRUE(d);
	ASSERT_EQ(proxy_config_apply_limits(d.get(), 1024, w, sizeof(w)), 0);
	EXPECT_EQ(d->max_connections, (1024u - 74 - 16 - 1) / 2);
}

TEST(ProxyConfigTest, WrittenMaxConnectionsIsKeptOrClamped)
{
	Config c = Parse(BufferedWithGlobal("workers = 4\nmax_connections = 100000"));
	ASSERT_TRUE(c);
	char w[256];
	ASSERT_EQ(proxy_config_apply_limits(c.get(), 1048576, w, sizeof(w)), 0);
	EXPECT_STREQ(w, "");
	EXPECT_EQ(c->max_connections, 100000u);
	EXPECT_EQ(c->max_connections_source, PROXY_LIMIT_CONFIGURED);

	ASSERT_EQ(proxy_config_apply_limits(c.get(), 1024, w, sizeof(w)), 0);
	EXPECT_STREQ(w, "cfg:3: max_connections 100000 needs 200074 descriptors, but the limit "
			"is 1024: using 475 (raise it with ulimit -n or LimitNOFILE=)");
	EXPECT_EQ(c->max_connections, 475u);
	EXPECT_EQ(c->max_connections_source, PROXY_LIMIT_CLAMPED);
	EXPECT_EQ(c->max_connections_written, 100000u);

	/* exactly at the edge: 2 * 475 + 74 = 1024 */
	Config e = Parse(BufferedWithGlobal("workers = 4\nmax_connections = 475"));
	ASSERT_TRUE(e);
	ASSERT_EQ(proxy_config_apply_limits(e.get(), 1024, w, sizeof(w)), 0);
	EXPECT_STREQ(w, "");
	EXPECT_EQ(e->max_connections_source, PROXY_LIMIT_CONFIGURED);
	Config f = Parse(BufferedWithGlobal("workers = 4\nmax_connections = 476"));
	ASSERT_TRUE(f);
	ASSERT_EQ(proxy_config_apply_limits(f.get(), 1024, w, sizeof(w)), 0);
	EXPECT_EQ(f->max_connections_source, PROXY_LIMIT_CLAMPED);
	/* a NULL buffer with n 0 is fine */
	ASSERT_EQ(proxy_config_apply_limits(f.get(), 1024, nullptr, 0), 0);
}

TEST(ProxyConfigTest, StrictLimitsRefuseAClamp)
{
	Config c = Parse(BufferedWithGlobal("workers = 4\nmax_connections = 100000\nstrict_limits = on"));
	ASSERT_TRUE(c);
	char w[256];
	EXPECT_EQ(proxy_config_apply_limits(c.get(), 1024, w, sizeof(w)), -ERANGE);
	EXPECT_STREQ(w, "cfg:3: max_connections 100000 needs 200074 descriptors, but the limit "
			"is 1024 (strict_limits is on)");
	EXPECT_EQ(c->max_connections, 100000u); /* unchanged */
	EXPECT_EQ(c->max_connections_source, PROXY_LIMIT_UNSET);
	EXPECT_EQ(proxy_config_apply_limits(c.get(), 300000, w, sizeof(w)), 0);
	EXPECT_STREQ(w, "");
	/* auto never clamps, so strict_limits has nothing to refuse */
	Config d = Parse(BufferedWithGlobal("workers = 4\nstrict_limits = on"));
	ASSERT_TRUE(d);
	EXPECT_EQ(proxy_config_apply_limits(d.get(), 1024, w, sizeof(w)), 0);
}

TEST(ProxyConfigTest, SplicingBackendsKeepDescriptorsForPipes)
{
	char w[256];
	/* auto data_path may splice: 2 * PIPES_PER_WORKER per worker more */
	Config c = Parse(WithGlobal("workers = 4"));
	ASSERT_TRUE(c);
	uint64_t pipes = 4ull * PIPES_PER_WORKER, head = 74 + 2 * pipes;
	ASSERT_EQ(proxy_config_apply_limits(c.get(), 1024, w, sizeof(w)), 0);
	EXPECT_EQ(c->max_connections, (1024u - head) / 2);
	EXPECT_EQ(c->pipes_max, pipes) << "auto leaves the pipes their share, no more";
	/* a written limit below what fits leaves the rest to pipes */
	Config d = Parse(WithGlobal("workers = 4\nmax_connections = 100"));
	ASSERT_TRUE(d);
	ASSERT_EQ(proxy_config_apply_limits(d.get(), 1024, w, sizeof(w)), 0);
	EXPECT_EQ(d->max_connections, 100u);
	EXPECT_EQ(d->pipes_max, (1024u - 74 - 200) / 2);
	/* never splicing: no room kept, no pipes allowed */
	Config e = Parse(BufferedWithGlobal("workers = 4"));
	ASSERT_TRUE(e);
	ASSERT_EQ(proxy_config_apply_limits(e.get(), 1024, w, sizeof(w)), 0);
	EXPECT_EQ(e->max_connections, (1024u - 74) / 2);
	EXPECT_EQ(e->pipes_max, 0u);
}

TEST(ProxyConfigTest, FdLimitWithNoRoomIsAnError)
{
	Config c = Parse(BufferedWithGlobal("workers = 4"));
	ASSERT_TRUE(c);
	char w[256];
	EXPECT_EQ(proxy_config_apply_limits(c.get(), 75, w, sizeof(w)), -ERANGE);
	EXPECT_STREQ(w, "cfg: the descriptor limit 75 leaves no room for connections (weft-proxy "
			"keeps 74 for itself; each connection takes 2)");
	EXPECT_EQ(proxy_config_apply_limits(c.get(), 76, w, sizeof(w)), 0);
	EXPECT_EQ(c->max_connections, 1u);
	/* a short buffer is cut, never overrun */
	char small[8];
	EXPECT_EQ(proxy_config_apply_limits(c.get(), 10, small, sizeof(small)), -ERANGE);
	EXPECT_EQ(strlen(small), 7u);
}

/* ---- Printing ----------------------------------------------------------------- */

TEST(ProxyConfigTest, PrintedConfigParsesBackToTheSame)
{
	const char *text = "[global]\nworkers = 3\nmax_connections = 5000\nadmin = unix:@admin\n"
			   "access_log = /var/log/p.log\nuser = nobody\ndrain_timeout = 90s\n"
			   "strict_limits = yes\n"
			   "[frontend web]\nlisten = 0.0.0.0:80\nlisten = [::]:80\nbackend = app\n"
			   "accept_proxy = on\nidle_timeout = off\nhalf_closed_timeout = 1500ms\n"
			   "max_connections = 100\n"
			   "[backend app]\nbalance = random2\nconnect_timeout = 2s\nretries = 0\n"
			   "send_proxy = v1\nhealth_check = http /health rise=3 port=8080\nslowstart = 90s\n"
			   "passive_fall = 0\npassive_down = 500ms\n"
			   "queue_timeout = 1m\nqueue_size = 0\ndata_path = splice\n"
			   "resolve_interval = 30s\n"
			   "server a = 10.0.0.1:80 weight=3 max_connections=50 check_port=81\n"
			   "server b = db.local:80 backup send_proxy=off\n"
			   "[backend spare]\nserver x = unix:/run/x.sock\n";
	Config c = Parse(text);
	ASSERT_TRUE(c);
	string once = Printed(c.get());
	Config c2 = Parse(once);
	ASSERT_TRUE(c2) << once;
	EXPECT_EQ(Printed(c2.get()), once);
	EXPECT_EQ(c2->nwarnings, c->nwarnings);
	EXPECT_EQ(once, "; weft-proxy: the effective configuration of cfg\n"
			"[global]\n"
			"workers = 3\n"
			"max_connections = 5000\n"
			"strict_limits = on\n"
			"admin = unix:@admin\n"
			"access_log = /var/log/p.log\n"
			"user = nobody\n"
			"drain_timeout = 90s\n"
			"\n"
			"[frontend web]\n"
			"listen = 0.0.0.0:80\n"
			"listen = [::]:80\n"
			"backend = app\n"
			"accept_proxy = on\n"
			"idle_timeout = off\n"
			"half_closed_timeout = 1500ms\n"
			"max_connections = 100\n"
			"\n"
			"[backend app]\n"
			"balance = random2\n"
			"connect_timeout = 2s\n"
			"retries = 0\n"
			"send_proxy = v1\n"
			"health_check = http /health interval=2s timeout=2s rise=3 fall=3 port=8080\n"
			"passive_fall = 0\n"
			"passive_down = 500ms\n"
			"slowstart = 90s\n"
			"queue_timeout = 1m\n"
			"queue_size = 0\n"
			"data_path = splice\n"
			"resolve_interval = 30s\n"
			"server a = 10.0.0.1:80 weight=3 max_connections=50 check_port=81\n"
			"server b = db.local:80 weight=1 backup max_connections=0 send_proxy=off ; a "
			"host name, looked up at start and every resolve_interval\n"
			"\n"
			"[backend spare]\n"
			"balance = roundrobin\n"
			"connect_timeout = 5s\n"
			"retries = 2\n"
			"send_proxy = off\n"
			"health_check = off\n"
			"passive_fall = 3\n"
			"passive_down = 2s\n"
			"slowstart = off\n"
			"queue_timeout = 5s\n"
			"queue_size = 1024\n"
			"data_path = auto\n"
			"resolve_interval = off\n"
			"server x = unix:/run/x.sock weight=1 max_connections=0\n");
}

TEST(ProxyConfigTest, PrintShowsTheLimitsInForce)
{
	Config c = Parse(BufferedWithGlobal("workers = 4\nmax_connections = 100000"));
	ASSERT_TRUE(c);
	EXPECT_NE(Printed(c.get()).find("\nmax_connections = 100000\n"), string::npos);
	ASSERT_EQ(proxy_config_apply_limits(c.get(), 1024, nullptr, 0), 0);
	string p = Printed(c.get());
	EXPECT_NE(p.find("; max_connections: 100000 written, clamped to what the descriptor limit "
			 "1024 holds\nmax_connections = 475\n"),
		  string::npos)
		<< p;
	EXPECT_NE(p.find("max_connections = 0 ; only the global limit\n"), string::npos) << p;
	Config again = Parse(p);
	ASSERT_TRUE(again);
	EXPECT_EQ(again->max_connections_written, 475u);

	Config d = Parse(BufferedWithGlobal("workers = 4"));
	ASSERT_TRUE(d);
	EXPECT_NE(Printed(d.get()).find("\nmax_connections = auto\n"), string::npos);
	ASSERT_EQ(proxy_config_apply_limits(d.get(), 1024, nullptr, 0), 0);
	EXPECT_NE(Printed(d.get()).find("; max_connections: auto, derived from the descriptor "
					"limit 1024\nmax_connections = 475\n"),
		  string::npos);
	EXPECT_NE(Printed(d.get()).find("; user: not set, privileges are kept\n"), string::npos);
}

/* ---- Files -------------------------------------------------------------------- */

class ProxyConfigFileTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		const char *t = getenv("TMPDIR");
		dir_ = string(t && *t ? t : "/tmp") + "/weft-proxy-config-XXXXXX";
		ASSERT_NE(mkdtemp(&dir_[0]), nullptr);
	}
	void TearDown() override
	{
		for (const string &f : files_)
			unlink(f.c_str());
		rmdir(dir_.c_str());
	}
	string Write(const string &name, const string &content)
	{
		string path = dir_ + "/" + name;
		FILE *f = fopen(path.c_str(), "w");
		EXPECT_NE(f, nullptr);
		fwrite(content.data(), 1, content.size(), f);
		fclose(f);
		files_.push_back(path);
		return path;
	}
	string dir_;
	std::vector<string> files_;
};

TEST_F(ProxyConfigFileTest, LoadReadsTheFileAndNamesIt)
{
	string path = Write("p.ini", kMinimal);
	proxy_config *c = nullptr;
	proxy_config_error e = {};
	ASSERT_EQ(proxy_config_load(path.c_str(), &c, &e), 0);
	EXPECT_STREQ(c->file, path.c_str());
	EXPECT_EQ(c->nfrontends, 1u);
	proxy_config_free(c);

	string bad = Write("bad.ini", WithBackend("retries = lots"));
	c = nullptr;
	ASSERT_EQ(proxy_config_load(bad.c_str(), &c, &e), -EINVAL);
	EXPECT_EQ(c, nullptr);
	char msg[600];
	proxy_config_error_format(&e, msg, sizeof(msg));
	EXPECT_EQ(string(msg), bad + ":7: retries: \"lots\" is not a number");
	EXPECT_EQ(e.line, 7);
	EXPECT_EQ(string(e.file), bad);
	EXPECT_STREQ(e.message, "retries: \"lots\" is not a number");

	/* a NUL byte read from a file is an error on its line */
	string nul = Write("nul.ini", string(kMinimal) + string("retries = 1\0\n", 13));
	ASSERT_EQ(proxy_config_load(nul.c_str(), &c, &e), -EINVAL);
	proxy_config_error_format(&e, msg, sizeof(msg));
	EXPECT_EQ(string(msg), nul + ":7: the line holds a NUL byte");
}

TEST_F(ProxyConfigFileTest, UnreadableFilesFailWithTheirName)
{
	proxy_config *c = nullptr;
	proxy_config_error e = {};
	char msg[600];
	string missing = dir_ + "/missing.ini";
	ASSERT_EQ(proxy_config_load(missing.c_str(), &c, &e), -ENOENT);
	proxy_config_error_format(&e, msg, sizeof(msg));
	EXPECT_EQ(string(msg), missing + ": cannot open: No such file or directory");
	EXPECT_EQ(e.line, 0);

	ASSERT_EQ(proxy_config_load(dir_.c_str(), &c, &e), -EISDIR);
	proxy_config_error_format(&e, msg, sizeof(msg));
	EXPECT_EQ(string(msg), dir_ + ": cannot read: Is a directory");

	string big = Write("big.ini", "");
	ASSERT_EQ(truncate(big.c_str(), (16 << 20) + 1), 0);
	ASSERT_EQ(proxy_config_load(big.c_str(), &c, &e), -EFBIG);
	proxy_config_error_format(&e, msg, sizeof(msg));
	EXPECT_EQ(string(msg), big + ": larger than 16 MiB");
	EXPECT_EQ(c, nullptr);

	/* err may be NULL */
	EXPECT_EQ(proxy_config_load(missing.c_str(), &c, nullptr), -ENOENT);
	EXPECT_EQ(proxy_config_parse("", "x", &c, nullptr), -EINVAL);
}

TEST(ProxyConfigTest, LongFileNamesKeepTheirEnd)
{
	string name = string(300, 'd') + "/proxy.ini";
	proxy_config *c = nullptr;
	proxy_config_error e = {};
	ASSERT_EQ(proxy_config_parse("[nope]\n", name.c_str(), &c, &e), -EINVAL);
	string f = e.file;
	EXPECT_EQ(f.size(), sizeof(e.file) - 1);
	EXPECT_EQ(f.substr(0, 3), "...");
	EXPECT_EQ(f.substr(f.size() - 10), "/proxy.ini");
}

} // namespace
