// SPDX-License-Identifier: MIT
/*
 * rt_test.cc - a runtime's setup and its watchdog:
 *  - the worker count honours the options, then WEFT_WORKERS (and refuses
 *    a malformed one), and reads cgroup v2 cpu.max quotas as a container
 *    sets them;
 *  - pin_workers gives each worker one CPU;
 *  - a task that holds its worker past stall_warn_ns is named on stderr;
 *  - when io_uring cannot be set up (a seccomp filter makes it fail as
 *    Docker's profile or an old kernel would), the error comes back and a
 *    line on stderr says why in words.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "common.h"

extern "C" unsigned weft__cpu_max_file(const char *path);

namespace {

TEST(RtTest, OptionsThenEnvironmentSetTheWorkerCount)
{
	struct weft_rt *rt;
	struct weft_opts o = {};
	o.workers = 3;
	setenv("WEFT_WORKERS", "2", 1);
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	EXPECT_EQ(weft_rt_workers(rt), 3u) << "options come before the environment";
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
	ASSERT_EQ(weft_rt_new(&rt, nullptr), 0);
	EXPECT_EQ(weft_rt_workers(rt), 2u);
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
	for (const char *bad : {"0", "two", "3x", "", "100000"}) {
		setenv("WEFT_WORKERS", bad, 1);
		if (!*bad)
			continue; /* empty means unset */
		EXPECT_EQ(weft_rt_new(&rt, nullptr), -EINVAL) << "WEFT_WORKERS=" << bad;
	}
	unsetenv("WEFT_WORKERS");
}

TEST(RtTest, CgroupCpuMaxQuotasRoundUp)
{
	char path[] = "/tmp/weft-cpu-max-XXXXXX";
	int fd = mkstemp(path);
	ASSERT_GE(fd, 0);
	close(fd);
	auto quota = [&](const char *text) {
		FILE *f = fopen(path, "w");
		fputs(text, f);
		fclose(f);
		return weft__cpu_max_file(path);
	};
	EXPECT_EQ(quota("max 100000\n"), 0u);
	EXPECT_EQ(quota("200000 100000\n"), 2u);
	EXPECT_EQ(quota("150000 100000\n"), 2u);
	EXPECT_EQ(quota("50000 100000\n"), 1u);
	EXPECT_EQ(quota("garbage\n"), 0u);
	unlink(path);
	EXPECT_EQ(weft__cpu_max_file("/nonexistent/cpu.max"), 0u);
}

TEST(RtTest, PinnedWorkersRunOnOneCpuEach)
{
	struct weft_opts o = {};
	o.workers = 2;
	o.pin_workers = 1;
	intptr_t cpus = weft_main(
		[](void *) -> intptr_t {
			cpu_set_t set;
			if (sched_getaffinity(0, sizeof(set), &set) != 0)
				return -1;
			return CPU_COUNT(&set);
		},
		nullptr, &o);
	EXPECT_EQ(cpus, 1);
}

TEST(RtTest, StallWarningNamesTheTask)
{
	struct weft_opts o = {};
	o.workers = 1;
	o.stall_warn_ns = 20 * WEFT_MSEC;
	testing::internal::CaptureStderr();
	weft_main(
		[](void *) -> intptr_t {
			struct weft_spawn_opts so = {};
			so.name = "hog";
			struct weft_task *t = weft_spawn(
				[](void *) -> intptr_t {
					uint64_t t0 = weft_now();
					while (weft_now() - t0 < 200 * WEFT_MSEC)
						; /* no suspension point */
					return 0;
				},
				nullptr, &so);
			return weft_join(t, nullptr);
		},
		nullptr, &o);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("held by task"), std::string::npos) << err;
	EXPECT_NE(err.find("\"hog\""), std::string::npos) << err;
}

/* In a child whose system call nr (io_uring_setup by default) fails with
 * err (as a seccomp profile or a kernel without io_uring makes it),
 * weft_rt_new's result and stderr. */
std::string setup_failure(int err, int *rc, long nr = __NR_io_uring_setup)
{
	int p[2];
	EXPECT_EQ(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {(unsigned short)(sizeof(f) / sizeof(f[0])), f};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(255);
		struct weft_rt *rt;
		struct weft_opts o = {};
		o.workers = 1;
		_exit(-weft_rt_new(&rt, &o));
	}
	close(p[1]);
	std::string out;
	char buf[512];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		out.append(buf, (size_t)n);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	*rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return out;
}

TEST(RtTest, AFailedRingSetupIsExplainedInWords)
{
	int rc;
	std::string why = setup_failure(EPERM, &rc);
	EXPECT_EQ(rc, EPERM);
	EXPECT_NE(why.find("weft: cannot set up io_uring"), std::string::npos) << why;
	EXPECT_TRUE(why.find("seccomp") != std::string::npos ||
		    why.find("kernel.io_uring_disabled") != std::string::npos)
		<< why;
	why = setup_failure(ENOSYS, &rc);
	EXPECT_EQ(rc, ENOSYS);
	EXPECT_NE(why.find("no io_uring"), std::string::npos) << why;
	why = setup_failure(ENOMEM, &rc);
	EXPECT_EQ(rc, ENOMEM);
	EXPECT_NE(why.find("RLIMIT_MEMLOCK"), std::string::npos) << why;
}

TEST(RtTest, AFailedWakeupEventfdIsNotBlamedOnIoUring)
{
	int rc;
	std::string why = setup_failure(EMFILE, &rc, __NR_eventfd2);
	EXPECT_EQ(rc, EMFILE);
	EXPECT_NE(why.find("wake-up eventfd"), std::string::npos) << why;
	EXPECT_EQ(why.find("io_uring"), std::string::npos) << why;
}

} // namespace
