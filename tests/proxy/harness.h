// SPDX-License-Identifier: MIT
/*
 * harness.h - what the end-to-end tests of weft-proxy share: a backend
 * that tags and echoes, free ports, the proxy binary (WEFT_PROXY_BIN) run
 * on a configuration (or any arguments) with its stderr read line by line,
 * a configuration of one frontend and one backend, a client dial (and
 * the tag of the server a connection reached), a
 * request to the admin listener, and a NOTIFY_SOCKET listener.  Included
 * by each end-to-end test (proxy, health, observe, ops, reload, balance,
 * state, resolve);
 * one translation unit each, so the helpers live in an unnamed namespace.
 */
#ifndef WEFT_TESTS_PROXY_HARNESS_H
#define WEFT_TESTS_PROXY_HARNESS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace {

/* A listening loopback socket on port at (0: a free one; else that port,
 * with SO_REUSEADDR so that a backend can come back where one was
 * stopped); its port in *port. */
inline int listen_loopback(int at, int *port, uint32_t host = INADDR_LOOPBACK)
{
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)at);
	a.sin_addr.s_addr = htonl(host);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	EXPECT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	EXPECT_EQ(listen(fd, 512), 0);
	EXPECT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A backend: answers each connection with its tag, then echoes everything
 * until the client's end of stream, then closes. */
struct backend {
	int lfd = -1, port = 0;
	char tag;
	std::atomic<int> accepted{0};
	std::thread acceptor;
	std::vector<std::thread> conns;
	std::mutex lock;

	/* at: the port (listen_loopback); 0 for a free one.  host: another
	 * loopback address (127.0.0.2, ...), in host order. */
	explicit backend(char t, int at = 0, uint32_t host = INADDR_LOOPBACK) : tag(t)
	{
		lfd = listen_loopback(at, &port, host);
		acceptor = std::thread([this] {
			int fd;
			/* Close-on-exec: a proxy started later must not hold
			 * (and so keep open) the backend's end of a connection. */
			while ((fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0) {
				accepted++;
				std::lock_guard<std::mutex> g(lock);
				conns.emplace_back([this, fd] { serve(fd); });
			}
		});
	}

	void serve(int fd)
	{
		send(fd, &tag, 1, MSG_NOSIGNAL);
		char buf[65536];
		ssize_t n;
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
				if (w <= 0)
					goto out;
				off += w;
			}
	out:
		close(fd);
	}

	~backend()
	{
		shutdown(lfd, SHUT_RDWR);
		acceptor.join();
		for (auto &t : conns)
			t.join();
		close(lfd);
	}
};

/* A free loopback port: bound, read, closed (a race no test here loses). */
inline int free_port()
{
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

/* Files mounted over others (first over second) for one process only. */
using bind_list = std::vector<std::pair<std::string, std::string>>;

/* In the calling process: a mount namespace of its own, in which each
 * file of binds is mounted over its target, as a test's own /etc/hosts.
 * Whether that worked: it needs CAP_SYS_ADMIN, which a container may not
 * grant even to root.  Only system calls: fit for a child of fork. */
inline bool private_binds(const bind_list &binds)
{
	if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
		return false;
	for (const auto &b : binds)
		if (mount(b.first.c_str(), b.second.c_str(), nullptr, MS_BIND, nullptr) < 0)
			return false;
	return true;
}

/* Whether private_binds works here: tried in a child, binds mounting
 * each target over itself. */
inline bool can_private_binds(const bind_list &binds)
{
	bind_list self;
	for (const auto &b : binds)
		self.emplace_back(b.second, b.second);
	pid_t pid = fork();
	if (pid == 0)
		_exit(private_binds(self) ? 0 : 1);
	int st = 0;
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

struct proxy {
	pid_t pid = -1;
	int err = -1;
	int port = 0;
	std::string file;
	bind_list binds; /* for the proxy alone (private_binds), if any */
	/* Run in the child before the exec, if set; false: it exits 125. */
	std::function<bool()> child_setup;

	proxy() = default;
	proxy(const proxy &) = delete;
	proxy &operator=(const proxy &) = delete;

	/* A test that failed before stop(): the proxy would otherwise hold
	 * connections open and the backends' threads would wait on them. */
	~proxy()
	{
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, nullptr, 0);
		}
	}

	/* Writes conf to a file and starts weft-proxy on it. */
	bool start(const std::string &conf)
	{
		char path[] = "/tmp/weft-proxy-test-XXXXXX";
		int cfd = mkstemp(path);
		EXPECT_EQ(write(cfd, conf.data(), conf.size()), (ssize_t)conf.size());
		close(cfd);
		file = path;
		return launch({"-c", file});
	}

	/* Starts weft-proxy with args (file, if set, is the caller's to
	 * remove), its stderr read by wait_line and rest. */
	bool launch(const std::vector<std::string> &args)
	{
		const char *bin = getenv("WEFT_PROXY_BIN");
		if (!bin)
			return false;
		std::vector<char *> argv{const_cast<char *>(bin)};
		for (const auto &a : args)
			argv.push_back(const_cast<char *>(a.c_str()));
		argv.push_back(nullptr);
		int p[2];
		EXPECT_EQ(pipe(p), 0);
		pid = fork();
		if (pid == 0) {
			dup2(p[1], 2);
			close(p[0]);
			if (!binds.empty() && !private_binds(binds))
				_exit(126);
			if (child_setup && !child_setup())
				_exit(125);
			setenv("WEFT_WORKERS", "2", 1);
			execv(bin, argv.data());
			_exit(127);
		}
		close(p[1]);
		err = p[0];
		return true;
	}

	/* Waits up to timeout_ms for the proxy to exit by itself: its wait
	 * status, or -1 (then it is still running). */
	int wait_exit(int timeout_ms)
	{
		int st;
		for (int waited = 0; waited <= timeout_ms; waited += 10) {
			if (waitpid(pid, &st, WNOHANG) == pid) {
				pid = -1;
				return st;
			}
			usleep(10000);
		}
		return -1;
	}

	/* Reads stderr up to the line that has `what`; returns it ("" at EOF,
	 * or when timeout_ms, if not negative, passes first). */
	std::string wait_line(const char *what, int timeout_ms = -1)
	{
		std::string line;
		char ch;
		auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
		for (;;) {
			if (timeout_ms >= 0) {
				auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
					until - std::chrono::steady_clock::now());
				struct pollfd pf = {err, POLLIN, 0};
				if (left.count() <= 0 || poll(&pf, 1, (int)left.count()) != 1)
					return "";
			}
			if (read(err, &ch, 1) != 1)
				break;
			if (ch != '\n') {
				line += ch;
				continue;
			}
			if (line.find(what) != std::string::npos)
				return line;
			line.clear();
		}
		return "";
	}

	/* Everything left on stderr, up to the proxy's exit. */
	std::string rest()
	{
		std::string all;
		char buf[4096];
		ssize_t n;
		while ((n = read(err, buf, sizeof(buf))) > 0)
			all.append(buf, (size_t)n);
		return all;
	}

	int stop()
	{
		if (pid < 0) { /* exited already (wait_exit) */
			close(err);
			unlink(file.c_str());
			return 0;
		}
		kill(pid, SIGTERM);
		int st = -1;
		for (int i = 0; i < 1000; i++) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			/* Take what it still writes: with the pipe full (a test
			 * that read no access log lines) its last messages would
			 * hold it up for ever. */
			struct pollfd pf = {err, POLLIN, 0};
			char buf[4096];
			int ready = poll(&pf, 1, 10); /* 10 ms a turn, as without */
			if (ready < 0 || (ready == 1 && read(err, buf, sizeof(buf)) <= 0))
				usleep(10000); /* its end is closed: only the exit is left */
			if (i == 999) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				st = -1;
			}
		}
		pid = -1;
		close(err);
		unlink(file.c_str());
		return st;
	}
};

inline std::string config(int port, const std::vector<int> &servers, const std::string &extra = "")
{
	std::string c = "[frontend f]\nlisten = 127.0.0.1:" + std::to_string(port) + "\nbackend = b\n" + extra +
			"\n[backend b]\nconnect_timeout = 1s\nretries = 2\n";
	for (size_t i = 0; i < servers.size(); i++)
		c += "server s" + std::to_string(i) + " = 127.0.0.1:" + std::to_string(servers[i]) + "\n";
	return c;
}

inline int dial(int port)
{
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {20, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* A short connection through the proxy on port: the tag of the server
 * it reached (backend's first byte), or 0 (reset, or nothing). */
inline char tag_of(int port)
{
	int fd = dial(port);
	if (fd < 0)
		return 0;
	char tag = 0;
	if (recv(fd, &tag, 1, 0) != 1)
		tag = 0;
	close(fd);
	return tag;
}

/* n short connections: how many reached the server tagged t. */
inline int count_tag(int port, char t, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += tag_of(port) == t;
	return k;
}

/* Everything fd sends until its end of stream (or an error). */
inline std::string read_all(int fd)
{
	std::string in;
	char buf[65536];
	ssize_t n;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		in.append(buf, (size_t)n);
	return in;
}

/* One HTTP/1.1 request to the admin listener at port (method and path as
 * sent, no body): the status code, or -1 when no whole answer came; the
 * head (status line and fields) in *head and the body in *body when not
 * NULL. */
inline int http_request(int port, const std::string &method, const std::string &path,
			std::string *body, std::string *head = nullptr)
{
	int fd = dial(port);
	if (fd < 0)
		return -1;
	std::string req = method + " " + path + " HTTP/1.1\r\nHost: test\r\n\r\n";
	send(fd, req.data(), req.size(), MSG_NOSIGNAL);
	std::string r = read_all(fd);
	close(fd);
	size_t sp = r.find(' '), end = r.find("\r\n\r\n");
	if (sp == std::string::npos || end == std::string::npos)
		return -1;
	if (head)
		*head = r.substr(0, end);
	if (body)
		*body = r.substr(end + 4);
	return atoi(r.c_str() + sp + 1);
}

/* The value of the series whose /metrics line starts with `series ` (name
 * and labels, as printed) from the admin listener at port; -1 if none. */
inline double metric_at(int port, const std::string &series)
{
	std::string m;
	if (http_request(port, "GET", "/metrics", &m) != 200)
		return -1;
	for (size_t at = 0; at < m.size();) {
		size_t nl = m.find('\n', at);
		if (nl == std::string::npos)
			nl = m.size();
		if (m.compare(at, series.size() + 1, series + " ") == 0)
			return atof(m.c_str() + at + series.size() + 1);
		at = nl + 1;
	}
	return -1;
}

/* A datagram socket at addr (a path, or @name: abstract) for
 * NOTIFY_SOCKET, with a receive timeout. */
inline int notify_listen(const std::string &addr)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {};
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path, addr.data(), addr.size());
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + addr.size());
	if (addr[0] == '@')
		a.sun_path[0] = 0;
	else
		len++;
	EXPECT_EQ(bind(fd, (struct sockaddr *)&a, len), 0) << strerror(errno);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

inline std::string notify_recv(int fd)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	return n > 0 ? std::string(buf, (size_t)n) : "";
}

#define NEED_PROXY()                                                                    \
	do {                                                                            \
		if (!getenv("WEFT_PROXY_BIN"))                                          \
			GTEST_SKIP() << "WEFT_PROXY_BIN not set (run through meson test)"; \
	} while (0)

} // namespace

#endif
