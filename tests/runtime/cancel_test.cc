// SPDX-License-Identifier: MIT
/*
 * cancel_test.cc - cancellation, deadlines, shields and task groups:
 *  - a suspended task wakes with -ECANCELED; a running one sees it at its
 *    next suspension point; it stays (sticky); cancelling a finished task
 *    does nothing;
 *  - deadline scopes nest, the earliest wins, and -ETIMEDOUT is reported by
 *    every suspension point inside; a shield defers cancellation and bounds
 *    cleanup;
 *  - an operation that completed is never reported as cancelled;
 *  - groups: wait for all, fail-fast cancels siblings, collect does not, a
 *    cancelled waiter still outlives every child.
 */
#include <atomic>
#include <vector>

#include "common.h"

namespace {

intptr_t sleeper(void *arg)
{
	(void)arg;
	return weft_sleep(10 * WEFT_SEC);
}

TEST(CancelTest, SuspendedTaskWakesWithECANCELED)
{
	run_in_weft(2, [] {
		struct weft_task *t = weft_spawn(sleeper, nullptr, nullptr);
		weft_sleep(WEFT_MSEC);
		uint64_t t0 = weft_now();
		weft_cancel(t);
		intptr_t r;
		EXPECT_EQ(weft_join(t, &r), 0);
		EXPECT_EQ(r, -ECANCELED);
		EXPECT_LT(weft_now() - t0, WEFT_SEC);
		return (intptr_t)0;
	});
}

TEST(CancelTest, RunningTaskSeesItAtNextSuspensionAndItSticks)
{
	run_in_weft(1, [] {
		static std::atomic<bool> go;
		go = false;
		struct weft_task *t = weft_spawn(
			[](void *) -> intptr_t {
				/* Cancelled while running: no suspension yet. */
				while (!go.load())
					;
				EXPECT_EQ(weft_cancelled(), 1);
				EXPECT_EQ(weft_sleep(WEFT_MSEC), -ECANCELED);
				EXPECT_EQ(weft_yield(), -ECANCELED);
				EXPECT_EQ(weft_sleep(0), -ECANCELED);
				return 1;
			},
			nullptr, nullptr);
		weft_cancel(t); /* before it ever ran */
		go = true;
		intptr_t r;
		EXPECT_EQ(weft_join(t, &r), 0);
		EXPECT_EQ(r, 1);
		return (intptr_t)0;
	});
}

TEST(CancelTest, CancellingAFinishedTaskIsANoOp)
{
	run_in_weft(2, [] {
		struct weft_task *t = weft_spawn([](void *) -> intptr_t { return 9; }, nullptr,
						 nullptr);
		weft_sleep(WEFT_MSEC);
		weft_cancel(t);
		weft_cancel(t);
		intptr_t r;
		EXPECT_EQ(weft_join(t, &r), 0);
		EXPECT_EQ(r, 9);
		return (intptr_t)0;
	});
}

TEST(CancelTest, DeadlineScopesNestAndTheEarliestWins)
{
	run_in_weft(1, [] {
		struct weft_scope outer, inner;
		/* Before the scope: its deadline counts from its own start. */
		uint64_t t0 = weft_now();
		weft_scope_deadline(&outer, 20 * WEFT_MSEC);
		weft_scope_deadline(&inner, 5 * WEFT_SEC);
		EXPECT_EQ(weft_sleep(WEFT_SEC), -ETIMEDOUT);
		uint64_t dt = weft_now() - t0;
		EXPECT_GE(dt, 20 * WEFT_MSEC);
		EXPECT_LT(dt, 500 * WEFT_MSEC);
		EXPECT_EQ(weft_scope_end(&inner), 0) << "the inner scope did not expire";
		/* Past the deadline every suspension point reports it at once. */
		EXPECT_EQ(weft_yield(), -ETIMEDOUT);
		EXPECT_EQ(weft_sleep(WEFT_MSEC), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&outer), 1);
		EXPECT_EQ(weft_sleep(WEFT_MSEC), 0) << "deadline outlived its scope";
		return (intptr_t)0;
	});
}

TEST(CancelTest, SleepShorterThanDeadlineCompletes)
{
	run_in_weft(1, [] {
		struct weft_scope s;
		weft_scope_deadline(&s, WEFT_SEC);
		EXPECT_EQ(weft_sleep(WEFT_MSEC), 0);
		EXPECT_EQ(weft_scope_end(&s), 0);
		return (intptr_t)0;
	});
}

TEST(CancelTest, JoinHonoursDeadlineAndKeepsTheHandle)
{
	run_in_weft(2, [] {
		struct weft_task *t = weft_spawn(
			[](void *) -> intptr_t {
				weft_sleep(50 * WEFT_MSEC);
				return 5;
			},
			nullptr, nullptr);
		struct weft_scope s;
		weft_scope_deadline(&s, WEFT_MSEC);
		EXPECT_EQ(weft_join(t, nullptr), -ETIMEDOUT);
		weft_scope_end(&s);
		intptr_t r;
		EXPECT_EQ(weft_join(t, &r), 0) << "handle must survive a timed-out join";
		EXPECT_EQ(r, 5);
		return (intptr_t)0;
	});
}

TEST(CancelTest, CancelledJoinerLeavesTaskJoinable)
{
	run_in_weft(2, [] {
		static struct weft_task *target;
		target = weft_spawn(
			[](void *) -> intptr_t {
				weft_sleep(30 * WEFT_MSEC);
				return 3;
			},
			nullptr, nullptr);
		struct weft_task *j = weft_spawn(
			[](void *) -> intptr_t { return weft_join(target, nullptr); }, nullptr,
			nullptr);
		weft_sleep(WEFT_MSEC);
		weft_cancel(j);
		intptr_t r;
		EXPECT_EQ(weft_join(j, &r), 0);
		EXPECT_EQ(r, -ECANCELED);
		EXPECT_EQ(weft_join(target, &r), 0);
		EXPECT_EQ(r, 3);
		return (intptr_t)0;
	});
}

TEST(CancelTest, ShieldDefersCancellationAndBoundsCleanup)
{
	run_in_weft(2, [] {
		struct weft_task *t = weft_spawn(
			[](void *) -> intptr_t {
				int rc = weft_sleep(10 * WEFT_SEC);
				EXPECT_EQ(rc, -ECANCELED);
				struct weft_scope s;
				weft_scope_shield(&s, 20 * WEFT_MSEC);
				/* Cleanup may suspend: not cancelled... */
				EXPECT_EQ(weft_sleep(WEFT_MSEC), 0);
				/* ...but bounded by the shield's own deadline. */
				EXPECT_EQ(weft_sleep(10 * WEFT_SEC), -ETIMEDOUT);
				EXPECT_EQ(weft_scope_end(&s), 1);
				/* The cancellation is still pending after the shield. */
				EXPECT_EQ(weft_yield(), -ECANCELED);
				return 0;
			},
			nullptr, nullptr);
		weft_sleep(WEFT_MSEC);
		weft_cancel(t);
		EXPECT_EQ(weft_join(t, nullptr), 0);
		return (intptr_t)0;
	});
}

TEST(CancelTest, CancelFromAPlainThreadWakesTask)
{
	struct weft_opts o = {};
	o.workers = 2;
	struct weft_rt *rt;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	struct weft_task *t = weft_rt_spawn(rt, sleeper, nullptr, nullptr);
	ASSERT_NE(t, nullptr);
	usleep(5000);
	weft_cancel(t);
	intptr_t r;
	EXPECT_EQ(weft_block_on(t, &r), 0);
	EXPECT_EQ(r, -ECANCELED);
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
}

/* Many cancels racing with timers: each task reports either its completed
 * sleep or the cancellation, never a mix, and nothing is lost. */
TEST(CancelTest, CancelRacingCompletionIsExactlyOneOutcome)
{
	const int n = WEFT_TEST_SCALE(20000);
	run_in_weft(2, [&] {
		std::vector<struct weft_task *> ts(n);
		for (int i = 0; i < n; i++)
			ts[i] = weft_spawn(
				[](void *arg) -> intptr_t {
					return weft_sleep((uint64_t)(intptr_t)arg * 1000);
				},
				(void *)(intptr_t)(i % 50), nullptr);
		for (int i = 0; i < n; i += 2)
			weft_cancel(ts[i]);
		int done = 0, cancelled = 0;
		for (int i = 0; i < n; i++) {
			intptr_t r = 1;
			EXPECT_EQ(weft_join(ts[i], &r), 0);
			if (r == 0)
				done++;
			else if (r == -ECANCELED)
				cancelled++;
			else
				ADD_FAILURE() << "unexpected result " << r;
			if (i % 2) {
				EXPECT_EQ(r, 0) << "task " << i << " was never cancelled";
			}
		}
		EXPECT_EQ(done + cancelled, n);
		return (intptr_t)0;
	});
}

/* ---- Groups ----------------------------------------------------------------- */

TEST(GroupTest, WaitReturnsWhenAllChildrenFinished)
{
	run_in_weft(2, [] {
		static std::atomic<int> finished;
		finished = 0;
		struct weft_group *g = weft_group_new(0);
		for (int i = 0; i < 100; i++)
			EXPECT_EQ(weft_group_spawn(
					  g,
					  [](void *arg) -> intptr_t {
						  weft_sleep((uint64_t)(intptr_t)arg * 10000);
						  finished++;
						  return 0;
					  },
					  (void *)(intptr_t)i, nullptr),
				  0);
		EXPECT_EQ(weft_group_wait(g), 0);
		EXPECT_EQ(finished.load(), 100);
		weft_group_free(g);
		return (intptr_t)0;
	});
}

TEST(GroupTest, FailFastCancelsSiblingsAndReportsFirstFailure)
{
	run_in_weft(2, [] {
		static std::atomic<int> cancelled;
		cancelled = 0;
		struct weft_group *g = weft_group_new(WEFT_GROUP_FAIL_FAST);
		for (int i = 0; i < 10; i++)
			weft_group_spawn(
				g,
				[](void *) -> intptr_t {
					int rc = weft_sleep(10 * WEFT_SEC);
					if (rc == -ECANCELED)
						cancelled++;
					return rc;
				},
				nullptr, nullptr);
		weft_group_spawn(
			g,
			[](void *) -> intptr_t {
				weft_sleep(WEFT_MSEC);
				return -EIO;
			},
			nullptr, nullptr);
		uint64_t t0 = weft_now();
		EXPECT_EQ(weft_group_wait(g), -EIO);
		EXPECT_LT(weft_now() - t0, 5 * WEFT_SEC);
		EXPECT_EQ(cancelled.load(), 10);
		/* Spawning into a cancelled group is refused by cancellation. */
		weft_group_free(g);
		return (intptr_t)0;
	});
}

TEST(GroupTest, WithoutFailFastSiblingsRunToTheEnd)
{
	run_in_weft(2, [] {
		static std::atomic<int> ok;
		ok = 0;
		struct weft_group *g = weft_group_new(0);
		weft_group_spawn(g, [](void *) -> intptr_t { return -ENOENT; }, nullptr, nullptr);
		for (int i = 0; i < 5; i++)
			weft_group_spawn(
				g,
				[](void *) -> intptr_t {
					if (weft_sleep(5 * WEFT_MSEC) == 0)
						ok++;
					return 0;
				},
				nullptr, nullptr);
		EXPECT_EQ(weft_group_wait(g), -ENOENT);
		EXPECT_EQ(ok.load(), 5);
		weft_group_free(g);
		return (intptr_t)0;
	});
}

TEST(GroupTest, CancelledWaiterStillOutlivesEveryChild)
{
	run_in_weft(2, [] {
		static std::atomic<int> alive;
		alive = 0;
		struct weft_task *owner = weft_spawn(
			[](void *) -> intptr_t {
				struct weft_group *g = weft_group_new(0);
				for (int i = 0; i < 20; i++)
					weft_group_spawn(
						g,
						[](void *) -> intptr_t {
							alive++;
							weft_sleep(10 * WEFT_SEC);
							/* Cleanup after cancellation. */
							struct weft_scope s;
							weft_scope_shield(&s, WEFT_SEC);
							weft_sleep(2 * WEFT_MSEC);
							weft_scope_end(&s);
							alive--;
							return 0;
						},
						nullptr, nullptr);
				int rc = weft_group_wait(g);
				EXPECT_EQ(alive.load(), 0) << "a child outlived its group";
				weft_group_free(g);
				return rc;
			},
			nullptr, nullptr);
		while (alive.load() < 20)
			weft_sleep(WEFT_MSEC);
		weft_cancel(owner);
		intptr_t r;
		EXPECT_EQ(weft_join(owner, &r), 0);
		EXPECT_EQ(r, -ECANCELED);
		return (intptr_t)0;
	});
}

TEST(GroupTest, DeadlineCutsTheGroupShort)
{
	run_in_weft(2, [] {
		struct weft_group *g = weft_group_new(0);
		for (int i = 0; i < 4; i++)
			weft_group_spawn(g, sleeper, nullptr, nullptr);
		struct weft_scope s;
		weft_scope_deadline(&s, 10 * WEFT_MSEC);
		EXPECT_EQ(weft_group_wait(g), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		weft_group_free(g);
		return (intptr_t)0;
	});
}

} // namespace
