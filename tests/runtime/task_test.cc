// SPDX-License-Identifier: MIT
/*
 * task_test.cc - a task's life: spawn, join, detach, results, names, yield,
 * sleep, block_on from a plain thread, weft_main, and the counts the issue
 * asks for (a million tasks spawned and joined; a million parked at once,
 * whose stacks' memory and address space go back once they have finished).
 */
#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

namespace {

intptr_t return_arg(void *arg)
{
	return reinterpret_cast<intptr_t>(arg);
}

TEST(TaskTest, JoinReturnsTheTaskResult)
{
	intptr_t r = run_in_weft(2, [] {
		struct weft_task *t = weft_spawn(return_arg, (void *)42, nullptr);
		EXPECT_NE(t, nullptr);
		intptr_t v = 0;
		EXPECT_EQ(weft_join(t, &v), 0);
		EXPECT_EQ(v, 42);
		return (intptr_t)7;
	});
	EXPECT_EQ(r, 7);
}

TEST(TaskTest, WeftMainReturnsMainTaskResult)
{
	struct weft_opts o = {};
	o.workers = 2;
	EXPECT_EQ(weft_main(return_arg, (void *)-5, &o), -5);
}

TEST(TaskTest, JoinSelfIsDeadlock)
{
	run_in_weft(1, [] {
		EXPECT_EQ(weft_join(weft_self(), nullptr), -EDEADLK);
		return (intptr_t)0;
	});
}

TEST(TaskTest, NamesAndIdsAreKept)
{
	run_in_weft(1, [] {
		struct weft_spawn_opts so = {};
		so.name = "a-long-name-cut-at-15-bytes";
		struct weft_task *t = weft_spawn(
			[](void *) -> intptr_t {
				EXPECT_STREQ(weft_task_name(weft_self()), "a-long-name-cut");
				return (intptr_t)weft_task_id(weft_self());
			},
			nullptr, &so);
		uint64_t id = weft_task_id(t);
		EXPECT_GT(id, 0u);
		EXPECT_NE(id, weft_task_id(weft_self()));
		intptr_t v;
		EXPECT_EQ(weft_join(t, &v), 0);
		EXPECT_EQ((uint64_t)v, id);
		return (intptr_t)0;
	});
}

TEST(TaskTest, DetachedTasksRunToCompletion)
{
	static std::atomic<int> ran;
	ran = 0;
	run_in_weft(2, [] {
		for (int i = 0; i < 1000; i++)
			weft_detach(weft_spawn(
				[](void *) -> intptr_t {
					weft_yield();
					ran++;
					return 0;
				},
				nullptr, nullptr));
		while (ran.load() < 1000)
			weft_sleep(WEFT_MSEC);
		return (intptr_t)0;
	});
	EXPECT_EQ(ran.load(), 1000);
}

TEST(TaskTest, YieldLetsOthersRun)
{
	run_in_weft(1, [] {
		static int turn;
		turn = 0;
		struct weft_task *t = weft_spawn(
			[](void *) -> intptr_t {
				for (int i = 0; i < 100; i++) {
					EXPECT_EQ(turn, 2 * i + 1);
					turn++;
					EXPECT_EQ(weft_yield(), 0);
				}
				return 0;
			},
			nullptr, nullptr);
		for (int i = 0; i < 100; i++) {
			EXPECT_EQ(turn, 2 * i);
			turn++;
			EXPECT_EQ(weft_yield(), 0);
		}
		weft_join(t, nullptr);
		return (intptr_t)0;
	});
}

/* 64 tasks sleep until base + (64 - i) * 2 ms: on one worker (one timer
 * heap) they must wake in exactly reverse spawn order; on two workers each
 * must still never wake before its time. */
void sleepers_wake_in_order(unsigned workers, bool check_order)
{
	run_in_weft(workers, [=] {
		static std::atomic<int> order[64];
		static std::atomic<int> next;
		static uint64_t base;
		next = 0;
		base = weft_now() + 20 * WEFT_MSEC;
		std::vector<struct weft_task *> ts;
		for (intptr_t i = 0; i < 64; i++)
			ts.push_back(weft_spawn(
				[](void *arg) -> intptr_t {
					intptr_t i = (intptr_t)arg;
					uint64_t at = base + (uint64_t)(64 - i) * 2 * WEFT_MSEC;
					uint64_t now = weft_now();
					EXPECT_EQ(weft_sleep(at > now ? at - now : 0), 0);
					EXPECT_GE(weft_now(), at) << "timer fired early";
					order[next++] = (int)i;
					return 0;
				},
				(void *)i, nullptr));
		for (auto t : ts)
			weft_join(t, nullptr);
		for (int k = 0; check_order && k < 64; k++)
			EXPECT_EQ(order[k].load(), 63 - k);
		return (intptr_t)0;
	});
}

TEST(TaskTest, TimersFireInOrder)
{
	sleepers_wake_in_order(1, true);
}

TEST(TaskTest, SleepNeverWakesEarly)
{
	sleepers_wake_in_order(2, false);
}

TEST(TaskTest, BlockOnFromAPlainThread)
{
	struct weft_opts o = {};
	o.workers = 2;
	struct weft_rt *rt;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	std::vector<std::thread> threads;
	std::atomic<int> ok{0};
	for (int i = 0; i < 4; i++)
		threads.emplace_back([&, i] {
			struct weft_task *t = weft_rt_spawn(
				rt,
				[](void *arg) -> intptr_t {
					weft_sleep(WEFT_MSEC);
					return (intptr_t)arg * 2;
				},
				(void *)(intptr_t)i, nullptr);
			intptr_t v = -1;
			if (t && weft_block_on(t, &v) == 0 && v == 2 * i)
				ok++;
		});
	for (auto &th : threads)
		th.join();
	EXPECT_EQ(ok.load(), 4);
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
}

TEST(TaskTest, BlockOnInsideAWorkerIsRefused)
{
	run_in_weft(1, [] {
		struct weft_task *t = weft_spawn(return_arg, nullptr, nullptr);
		EXPECT_EQ(weft_block_on(t, nullptr), -EDEADLK);
		EXPECT_EQ(weft_join(t, nullptr), 0);
		return (intptr_t)0;
	});
}

TEST(TaskTest, AMillionTasksSpawnedAndJoined)
{
	const size_t n = WEFT_TEST_SCALE(1000000);
	run_in_weft(2, [&] {
		std::vector<struct weft_task *> ts(n);
		intptr_t sum = 0;
		/* In waves, as a server would, and all at once below. */
		for (size_t i = 0; i < n; i++) {
			ts[i] = weft_spawn(return_arg, (void *)(intptr_t)(i & 1), nullptr);
			EXPECT_NE(ts[i], nullptr);
		}
		for (size_t i = 0; i < n; i++) {
			intptr_t v;
			EXPECT_EQ(weft_join(ts[i], &v), 0);
			sum += v;
		}
		EXPECT_EQ((size_t)sum, n / 2);
		return (intptr_t)0;
	});
}

/* A /proc/self/status field in KiB ("VmSize:", "VmRSS:"), -1 if missing. */
long status_kib(const char *key)
{
	std::ifstream f("/proc/self/status");
	std::string line;
	while (std::getline(f, line))
		if (line.compare(0, strlen(key), key) == 0)
			return std::stol(line.substr(strlen(key)));
	return -1;
}

TEST(TaskTest, AMillionTasksParkedAtOnce)
{
	const size_t n = weft_test_parkable(WEFT_TEST_SCALE(1000000));
	static std::atomic<size_t> parked;
	parked = 0;
	run_in_weft(2, [&] {
		struct weft_future *f = weft_future_new();
		std::vector<struct weft_task *> ts(n);
		[[maybe_unused]] long size0 = status_kib("VmSize:"), rss0 = status_kib("VmRSS:");
		for (size_t i = 0; i < n; i++) {
			ts[i] = weft_spawn(
				[](void *arg) -> intptr_t {
					parked++;
					intptr_t v;
					EXPECT_EQ(weft_future_await((struct weft_future *)arg, &v), 0);
					return v;
				},
				f, nullptr);
			EXPECT_NE(ts[i], nullptr) << "spawn " << i << " failed";
			if (!ts[i])
				return (intptr_t)-1;
		}
		/* Bounded: a task that cannot get its stack ends with -ENOMEM
		 * and never parks, which must fail the test, not hang it. */
		for (int ms = 0; parked.load() < n && ms < 240000; ms++)
			weft_sleep(WEFT_MSEC);
		EXPECT_EQ(parked.load(), n) << "tasks that never parked";
		/* All n are parked now: each has run up to its await. */
		EXPECT_EQ(weft_future_resolve(f, 3), 0);
		intptr_t sum = 0;
		for (size_t i = 0; i < n; i++) {
			intptr_t v = 0;
			EXPECT_EQ(weft_join(ts[i], &v), 0);
			sum += v;
		}
		EXPECT_EQ((size_t)sum, 3 * n);
		weft_future_free(f);
#ifndef WEFT_SANITIZED
		/* While parked the stacks took 68 KiB of address space and a
		 * page or two of memory each (about 68 GiB and 4 GiB); after,
		 * only the workers' pools and the task objects stay. */
		EXPECT_LT(status_kib("VmSize:") - size0, 2L << 20) << "KiB of address space kept";
		EXPECT_LT(status_kib("VmRSS:") - rss0, 1L << 20) << "KiB of memory kept";
#endif
		return (intptr_t)0;
	});
}

TEST(TaskTest, ShutdownNamesTasksThatDoNotFinish)
{
	struct weft_opts o = {};
	o.workers = 1;
	struct weft_rt *rt;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	struct weft_spawn_opts so = {};
	so.name = "stubborn";
	weft_detach(weft_rt_spawn(
		rt,
		[](void *) -> intptr_t {
			/* Ignores cancellation: shielded sleeps forever. */
			struct weft_scope s;
			weft_scope_shield(&s, WEFT_NEVER);
			for (;;)
				weft_sleep(WEFT_MSEC);
			return 0;
		},
		nullptr, &so));
	testing::internal::CaptureStderr();
	EXPECT_EQ(weft_rt_shutdown(rt, 50 * WEFT_MSEC), -ETIMEDOUT);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("\"stubborn\" did not finish"), std::string::npos) << err;
}

/* Shutdown's walk over the task slabs is no snapshot: a task it has passed
 * may spawn another into a slot it saw free.  A chain of tasks, each
 * spawning the next on the other worker and returning, must still run to
 * its end before shutdown returns 0. */
struct chain {
	std::atomic<int> left;
	std::atomic<bool> finished;
};

intptr_t chain_step(void *arg)
{
	auto *c = static_cast<struct chain *>(arg);
	if (c->left.fetch_sub(1) <= 1) {
		c->finished = true;
		return 0;
	}
	struct weft_spawn_opts so = {};
	so.flags = WEFT_SPAWN_ON;
	so.worker = (unsigned)c->left.load();
	weft_detach(weft_spawn(chain_step, c, &so));
	return 0;
}

TEST(TaskTest, ShutdownWaitsForTasksSpawnedDuringItsWalk)
{
	struct weft_opts o = {};
	o.workers = 2;
	struct weft_rt *rt;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	static struct chain c;
	/* Each step parks and wakes the other worker (tens of us); 100,000
	 * keeps the chain running long after the walk, in seconds. */
	c.left = WEFT_TEST_SCALE(100000);
	c.finished = false;
	weft_detach(weft_rt_spawn(rt, chain_step, &c, nullptr));
	EXPECT_EQ(weft_rt_shutdown(rt, 60 * WEFT_SEC), 0);
	EXPECT_TRUE(c.finished.load()) << c.left.load() << " steps never ran";
}

} // namespace
