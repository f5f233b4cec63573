// SPDX-License-Identifier: MIT
/*
 * ops_test.cc - weft-proxy's operator features end to end, on the real
 * binary (WEFT_PROXY_BIN) with harness.h:
 *  - `user = nobody`, started as root: every thread of the process runs
 *    with nobody's uid and gid, keeps CAP_NET_BIND_SERVICE alone, and
 *    still proxies a connection (root only: skipped otherwise);
 *  - `user` naming the current user is a no-op switch;
 *  - a user that does not exist fails at start with FILE:LINE, exit 1;
 *  - with NOTIFY_SOCKET (a path, or @name), READY=1 arrives after start
 *    and STOPPING=1 after SIGTERM, and the proxy exits 0;
 *  - with every accept refused (EPERM, as a security module refuses them;
 *    here a seccomp filter), clients waiting on a frontend and on the
 *    admin listener cost the proxy no core, and it stops cleanly.
 */
#include <dirent.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace {

/* The line of /proc/PID[/task/TID]/status that starts with key, or "". */
std::string status_line(const std::string &dir, const char *key)
{
	std::ifstream in(dir + "/status");
	std::string line;
	while (std::getline(in, line))
		if (line.rfind(key, 0) == 0)
			return line;
	return "";
}

/* "Uid:\tN\tN\tN\tN": real, effective, saved and filesystem all n. */
std::string ids_line(const char *key, unsigned n)
{
	std::string s = std::to_string(n);
	return std::string(key) + "\t" + s + "\t" + s + "\t" + s + "\t" + s;
}

/* One round trip through the proxy: the backend's tag, then the echo. */
bool proxies(int port, char tag)
{
	int fd = dial(port);
	if (fd < 0)
		return false;
	send(fd, "ping", 4, MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	std::string in = read_all(fd);
	close(fd);
	return in == std::string(1, tag) + "ping";
}

TEST(OpsTest, UserNobodySwitchesEveryThreadAndStillProxies)
{
	NEED_PROXY();
	if (geteuid() != 0)
		GTEST_SKIP() << "switching to another user needs root";
	struct passwd *pw = getpwnam("nobody");
	if (!pw)
		GTEST_SKIP() << "no user nobody here";
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[global]\nuser = nobody\n" + config(port, {a.port})));
	ASSERT_NE(p.wait_line("listening on"), "");
	ASSERT_TRUE(proxies(port, 'a')); /* also: the runtime is up */
	std::string proc = "/proc/" + std::to_string(p.pid);
	EXPECT_EQ(status_line(proc, "Uid:"), ids_line("Uid:", uid));
	EXPECT_EQ(status_line(proc, "Gid:"), ids_line("Gid:", gid));
	/* CAP_NET_BIND_SERVICE (bit 10) alone, kept for a reload. */
	EXPECT_EQ(status_line(proc, "CapEff:"), "CapEff:\t0000000000000400");
	EXPECT_EQ(status_line(proc, "CapPrm:"), "CapPrm:\t0000000000000400");
	/* Every thread, workers and the rest, was made after the switch. */
	DIR *d = opendir((proc + "/task").c_str());
	ASSERT_NE(d, nullptr);
	int threads = 0;
	while (struct dirent *e = readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		std::string task = proc + "/task/" + e->d_name;
		EXPECT_EQ(status_line(task, "Uid:"), ids_line("Uid:", uid)) << task;
		EXPECT_EQ(status_line(task, "Gid:"), ids_line("Gid:", gid)) << task;
		EXPECT_EQ(status_line(task, "CapEff:"), "CapEff:\t0000000000000400") << task;
		threads++;
	}
	closedir(d);
	EXPECT_GE(threads, 3); /* main and WEFT_WORKERS=2 at least */
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(OpsTest, UserThatIsTheCurrentUserIsANoOp)
{
	NEED_PROXY();
	struct passwd *pw = getpwuid(geteuid());
	ASSERT_NE(pw, nullptr);
	std::string me = pw->pw_name;
	backend a('a');
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[global]\nuser = " + me + "\n" + config(port, {a.port})));
	ASSERT_NE(p.wait_line("listening on"), "");
	EXPECT_TRUE(proxies(port, 'a'));
	std::string proc = "/proc/" + std::to_string(p.pid);
	EXPECT_EQ(status_line(proc, "Uid:"), ids_line("Uid:", geteuid()));
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(OpsTest, UnknownUserFailsAtStartWithFileLineAndExit1)
{
	NEED_PROXY();
	proxy p;
	int port = free_port();
	ASSERT_TRUE(p.start("[global]\nuser = weft-no-such-user\n" + config(port, {free_port()})));
	std::string err = p.rest();
	EXPECT_NE(err.find(p.file + ":2: user weft-no-such-user: no such user"), std::string::npos)
		<< err;
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
}

/* Runs the proxy with NOTIFY_SOCKET=addr (and extra global lines): READY=1
 * once it accepts, STOPPING=1 on SIGTERM, exit 0. */
void check_notify(const std::string &addr, const std::string &global = "")
{
	backend a('a');
	int nfd = notify_listen(addr);
	proxy p;
	int port = free_port();
	setenv("NOTIFY_SOCKET", addr.c_str(), 1);
	bool started = p.start("[global]\n" + global + config(port, {a.port}));
	unsetenv("NOTIFY_SOCKET");
	ASSERT_TRUE(started);
	EXPECT_EQ(notify_recv(nfd), "READY=1");
	EXPECT_TRUE(proxies(port, 'a')); /* ready meant accepting */
	int st = p.stop();
	EXPECT_EQ(notify_recv(nfd), "STOPPING=1");
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
	close(nfd);
}

TEST(OpsTest, NotifySocketPathGetsReadyThenStopping)
{
	NEED_PROXY();
	char dir[] = "/tmp/weft-proxy-notify-XXXXXX";
	ASSERT_NE(mkdtemp(dir), nullptr);
	std::string path = std::string(dir) + "/notify";
	check_notify(path);
	/* As root with `user = nobody`: the socket (root's, mode 0755 by the
	 * umask) was connected before the switch, so nobody still reaches it. */
	if (geteuid() == 0 && getpwnam("nobody")) {
		unlink(path.c_str());
		check_notify(path, "user = nobody\n");
	}
	unlink(path.c_str());
	rmdir(dir);
}

TEST(OpsTest, NotifySocketAbstractGetsReadyThenStopping)
{
	NEED_PROXY();
	check_notify("@weft-proxy-notify-" + std::to_string(getpid()));
}

/* In the child: every accept(2) and accept4(2) fails with EPERM from now on
 * (io_uring's accept is not a system call and is not refused). */
bool refuse_accepts()
{
#ifdef __x86_64__
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_accept4, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_accept, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = {(unsigned short)(sizeof(code) / sizeof(code[0])), code};
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
#else
	return false;
#endif
}

/* The proxy's CPU time so far (utime + stime), in clock ticks. */
long cpu_ticks(pid_t pid)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
	std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	std::istringstream rest(text.substr(text.rfind(')') + 2));
	std::string field;
	long utime = 0, stime = 0;
	for (int i = 3; i <= 15 && rest >> field; i++) {
		if (i == 14)
			utime = std::stol(field);
		if (i == 15)
			stime = std::stol(field);
	}
	return utime + stime;
}

TEST(OpsTest, EveryAcceptRefusedCostsNoCore)
{
	NEED_PROXY();
#ifndef __x86_64__
	GTEST_SKIP() << "the seccomp filter here is for x86-64";
#endif
	backend a('a');
	proxy p;
	int admin = free_port();
	p.child_setup = refuse_accepts;
	p.port = free_port();
	ASSERT_TRUE(p.start("[global]\naccess_log = off\nadmin = 127.0.0.1:" + std::to_string(admin) +
			    "\n" + config(p.port, {a.port})));
	ASSERT_NE(p.wait_line("admin listening on", 5000), "");
	/* Queued, never taken: the handshake is the kernel's. */
	int c1 = dial(p.port), c2 = dial(admin);
	ASSERT_GE(c1, 0);
	ASSERT_GE(c2, 0);
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	long t0 = cpu_ticks(p.pid);
	std::this_thread::sleep_for(std::chrono::seconds(1));
	long ticks = cpu_ticks(p.pid) - t0;
	EXPECT_LT(ticks, sysconf(_SC_CLK_TCK) / 10) << "more than 100 ms of CPU in 1 s";
	close(c1);
	close(c2);
	int st = p.stop();
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

} // namespace
