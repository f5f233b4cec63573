// SPDX-License-Identifier: MIT
/*
 * steal_test.cc - stealing really spreads work: 100,000 tasks of about
 * 10 us each, all spawned by one task on one worker, end up run about
 * evenly by both workers (each at least 30%).
 */
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "common.h"

namespace {

std::atomic<pid_t> tid_a{0};
std::atomic<int> on_a{0}, on_other{0};

intptr_t work_10us(void *)
{
	uint64_t t0 = weft_now();
	while (weft_now() - t0 < 10 * WEFT_USEC)
		;
	pid_t me = (pid_t)syscall(SYS_gettid);
	pid_t expect = 0;
	tid_a.compare_exchange_strong(expect, me);
	if (tid_a.load() == me)
		on_a++;
	else
		on_other++;
	return 0;
}

TEST(StealTest, TwoWorkersEachRunAtLeast30PercentOfOneSpawnersTasks)
{
	/* Sanitizers slow the spawner down more than the 10 us of work, so they
	 * get a tenth of the tasks rather than the usual hundredth. */
#ifdef WEFT_SANITIZED
	const int n = 10000;
#else
	const int n = 100000;
#endif
	run_in_weft(2, [&] {
		std::vector<struct weft_task *> ts(n);
		for (int i = 0; i < n; i++)
			ts[i] = weft_spawn(work_10us, nullptr, nullptr);
		for (int i = 0; i < n; i++)
			weft_join(ts[i], nullptr);
		return (intptr_t)0;
	});
	int a = on_a.load(), b = on_other.load();
	EXPECT_EQ(a + b, n);
	EXPECT_GE(a, n * 3 / 10) << "a=" << a << " b=" << b;
	EXPECT_GE(b, n * 3 / 10) << "a=" << a << " b=" << b;
}

} // namespace
