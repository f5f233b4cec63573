// SPDX-License-Identifier: MIT
/*
 * steal_test.cc - stealing really spreads work: 100,000 tasks of about
 * 10 us each, all spawned by one task on one worker, end up run about
 * evenly by both workers (each at least 30%); and tasks woken together by
 * one worker's timers are stolen from its I/O queue, all but the pinned
 * ones, which stay behind in their places.
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

struct woken {
	uint64_t when;
	bool pinned;
	std::atomic<int> *moved_pinned, *moved_free, *done;
};

/* Sleeps until its deadline, then works 20 us; counts itself as moved when
 * it ends on another thread than it started on. */
intptr_t sleep_then_work(void *arg)
{
	auto *k = static_cast<struct woken *>(arg);
	pid_t before = (pid_t)syscall(SYS_gettid);
	uint64_t now = weft_now();
	if (weft_sleep(k->when > now ? k->when - now : 0) != 0)
		return -1;
	uint64_t t0 = weft_now();
	while (weft_now() - t0 < 20 * WEFT_USEC)
		;
	if ((pid_t)syscall(SYS_gettid) != before)
		(*(k->pinned ? k->moved_pinned : k->moved_free))++;
	(*k->done)++;
	return 0;
}

TEST(StealTest, TasksWokenTogetherAreStolenButThePinnedOnesStayHome)
{
	const int n = 200, rounds = 20;
	static std::atomic<int> moved_pinned{0}, moved_free{0}, done{0};
	static std::vector<struct woken> ks(n);
	run_in_weft(2, [&] {
		for (int r = 0; r < rounds; r++) {
			/* Deadlines within 20 us: one fire wakes most of them. */
			uint64_t base = weft_now() + 5 * WEFT_MSEC;
			std::vector<struct weft_task *> ts(n);
			for (int i = 0; i < n; i++) {
				struct weft_spawn_opts so = {};
				so.flags = i % 2 ? WEFT_SPAWN_PINNED : 0;
				ks[i] = {base + (uint64_t)(i % 20) * WEFT_USEC, i % 2 == 1,
					 &moved_pinned, &moved_free, &done};
				ts[i] = weft_spawn(sleep_then_work, &ks[i], &so);
			}
			for (auto t : ts)
				EXPECT_EQ(weft_join(t, nullptr), 0);
		}
		return (intptr_t)0;
	});
	EXPECT_EQ(done.load(), n * rounds);
	EXPECT_EQ(moved_pinned.load(), 0);
	EXPECT_GT(moved_free.load(), 0) << "nothing was stolen after its wake-up";
}

} // namespace
