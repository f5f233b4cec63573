// SPDX-License-Identifier: MIT
/*
 * sync_test.cc - mutex, condition variable, semaphore, wait group and
 * future (runtime/sync.c), each inside a two-worker runtime:
 *  - the mutex excludes across workers, hands off in FIFO order with no
 *    barging, and a cancelled lock takes nothing and leaves it usable;
 *  - cond signal wakes exactly one waiter, broadcast all, and a cancelled
 *    wait still returns holding the mutex;
 *  - the semaphore never lets more than its count in, and a cancelled
 *    acquire takes no unit;
 *  - the wait group releases waiters at zero and refuses to go negative;
 *  - a future resolved from a plain pthread wakes every awaiting task.
 */
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "common.h"

namespace {


TEST(MutexTest, ExcludesTasksAcrossWorkers)
{
	const int tasks = 64, iters = WEFT_TEST_SCALE(20000);
	run_in_weft(2, [&] {
		struct weft_mutex m = WEFT_MUTEX_INIT;
		long counter = 0; /* plain: the mutex is all that guards it */
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < tasks; i++)
			ts.push_back(go([&] {
				for (int k = 0; k < iters; k++) {
					EXPECT_EQ(weft_mutex_lock(&m), 0);
					long v = counter;
					if (k % 64 == 0)
						weft_yield(); /* park holders too */
					counter = v + 1;
					weft_mutex_unlock(&m);
				}
				return (intptr_t)0;
			}));
		for (auto *t : ts)
			join(t);
		EXPECT_EQ(counter, (long)tasks * iters);
		EXPECT_EQ(weft_mutex_trylock(&m), 0);
		weft_mutex_unlock(&m);
		return (intptr_t)0;
	});
}

TEST(MutexTest, UnlockHandsOffInFifoOrderWithoutBarging)
{
	run_in_weft(2, [] {
		const int n = 8;
		struct weft_mutex m = WEFT_MUTEX_INIT;
		std::atomic<int> arrived{0};
		std::vector<int> order;
		std::vector<struct weft_task *> ts;
		EXPECT_EQ(weft_mutex_lock(&m), 0);
		for (int i = 0; i < n; i++) {
			/* Queue them one at a time: i parks before i + 1 starts. */
			ts.push_back(go_and_let_park(arrived, [&, i] {
				arrived++;
				EXPECT_EQ(weft_mutex_lock(&m), 0);
				order.push_back(i);
				weft_mutex_unlock(&m);
				return (intptr_t)0;
			}));
		}
		weft_mutex_unlock(&m);
		/* Ownership went to waiter 0, not back to the free state. */
		EXPECT_EQ(weft_mutex_trylock(&m), -EBUSY);
		for (auto *t : ts)
			join(t);
		std::vector<int> want(n);
		for (int i = 0; i < n; i++)
			want[i] = i;
		EXPECT_EQ(order, want);
		return (intptr_t)0;
	});
}

TEST(MutexTest, CancelledLockReturnsECANCELEDAndMutexStaysUsable)
{
	run_in_weft(2, [] {
		struct weft_mutex m = WEFT_MUTEX_INIT;
		std::atomic<int> arrived{0};
		EXPECT_EQ(weft_mutex_lock(&m), 0);
		struct weft_task *a = go_and_let_park(arrived, [&] {
			arrived++;
			return (intptr_t)weft_mutex_lock(&m);
		});
		weft_cancel(a);
		EXPECT_EQ(join(a), -ECANCELED);
		/* The cancelled waiter must not have been given the mutex. */
		weft_mutex_unlock(&m);
		EXPECT_EQ(weft_mutex_trylock(&m), 0);
		struct weft_task *b = go_and_let_park(arrived, [&] {
			arrived++;
			int rc = weft_mutex_lock(&m);
			weft_mutex_unlock(&m);
			return (intptr_t)rc;
		});
		weft_mutex_unlock(&m);
		EXPECT_EQ(join(b), 0);
		EXPECT_EQ(weft_mutex_trylock(&m), 0);
		weft_mutex_unlock(&m);
		return (intptr_t)0;
	});
}

TEST(CondTest, SignalWakesOneBroadcastWakesAll)
{
	run_in_weft(2, [] {
		const int n = 4;
		struct weft_mutex m = WEFT_MUTEX_INIT;
		struct weft_cond c = WEFT_COND_INIT;
		int waiting = 0, woken = 0; /* under m */
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < n; i++)
			ts.push_back(go([&] {
				weft_mutex_lock(&m);
				waiting++;
				int rc = weft_cond_wait(&c, &m);
				woken++;
				weft_mutex_unlock(&m);
				return (intptr_t)rc;
			}));
		/* cond_wait queues before it releases m: once we hold m and
		 * see all n, all n are queued. */
		for (;;) {
			weft_mutex_lock(&m);
			if (waiting == n)
				break;
			weft_mutex_unlock(&m);
			weft_sleep(WEFT_MSEC);
		}
		weft_cond_signal(&c);
		weft_mutex_unlock(&m);
		weft_sleep(20 * WEFT_MSEC);
		weft_mutex_lock(&m);
		EXPECT_EQ(woken, 1);
		weft_cond_broadcast(&c);
		weft_mutex_unlock(&m);
		for (auto *t : ts)
			EXPECT_EQ(join(t), 0);
		EXPECT_EQ(woken, n);
		return (intptr_t)0;
	});
}

TEST(CondTest, CancelledWaitReturnsHoldingTheMutex)
{
	run_in_weft(2, [] {
		struct weft_mutex m = WEFT_MUTEX_INIT;
		struct weft_cond c = WEFT_COND_INIT;
		bool waiting = false; /* under m */
		std::atomic<bool> returned{false};
		struct weft_task *t = go([&] {
			weft_mutex_lock(&m);
			waiting = true;
			int rc = weft_cond_wait(&c, &m);
			returned = true;
			/* Held by us: nobody else can take it. */
			EXPECT_EQ(weft_mutex_trylock(&m), -EBUSY);
			weft_mutex_unlock(&m);
			return (intptr_t)rc;
		});
		for (;;) {
			weft_mutex_lock(&m);
			if (waiting)
				break;
			weft_mutex_unlock(&m);
			weft_sleep(WEFT_MSEC);
		}
		weft_cancel(t);
		/* It cannot return before getting m back, which we hold. */
		weft_sleep(10 * WEFT_MSEC);
		EXPECT_FALSE(returned.load());
		weft_mutex_unlock(&m);
		EXPECT_EQ(join(t), -ECANCELED);
		EXPECT_EQ(weft_mutex_trylock(&m), 0);
		weft_mutex_unlock(&m);
		return (intptr_t)0;
	});
}

TEST(SemTest, NeverAdmitsMoreThanItsCount)
{
	const int tasks = 16, iters = WEFT_TEST_SCALE(2000);
	run_in_weft(2, [&] {
		struct weft_sem s = WEFT_SEM_INIT(3);
		std::atomic<int> inside{0}, most{0};
		std::atomic<long> passes{0};
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < tasks; i++)
			ts.push_back(go([&] {
				for (int k = 0; k < iters; k++) {
					EXPECT_EQ(weft_sem_acquire(&s), 0);
					int now = ++inside;
					int m = most.load();
					while (now > m && !most.compare_exchange_weak(m, now))
						;
					weft_yield();
					inside--;
					passes++;
					weft_sem_release(&s);
				}
				return (intptr_t)0;
			}));
		for (auto *t : ts)
			join(t);
		EXPECT_EQ(passes.load(), (long)tasks * iters);
		EXPECT_LE(most.load(), 3);
		EXPECT_GE(most.load(), 2); /* it did admit several at once */
		/* All three units are back, and no more. */
		for (int i = 0; i < 3; i++)
			EXPECT_EQ(weft_sem_tryacquire(&s), 0);
		EXPECT_EQ(weft_sem_tryacquire(&s), -EAGAIN);
		return (intptr_t)0;
	});
}

TEST(SemTest, CancelledAcquireTakesNoUnit)
{
	run_in_weft(2, [] {
		struct weft_sem s = WEFT_SEM_INIT(0);
		std::atomic<int> arrived{0};
		struct weft_task *t = go_and_let_park(arrived, [&] {
			arrived++;
			return (intptr_t)weft_sem_acquire(&s);
		});
		weft_cancel(t);
		EXPECT_EQ(join(t), -ECANCELED);
		weft_sem_release(&s);
		EXPECT_EQ(weft_sem_tryacquire(&s), 0);
		EXPECT_EQ(weft_sem_tryacquire(&s), -EAGAIN);
		return (intptr_t)0;
	});
}

TEST(WaitGroupTest, WaitReturnsOnceCounterReachesZero)
{
	run_in_weft(2, [] {
		const int n = 32;
		struct weft_wg wg = WEFT_WG_INIT;
		EXPECT_EQ(weft_wg_wait(&wg), 0); /* zero: no wait */
		EXPECT_EQ(weft_wg_add(&wg, -1), -EINVAL);
		std::atomic<int> finished{0};
		EXPECT_EQ(weft_wg_add(&wg, n), 0);
		/* A second waiter, on another task: all waiters wake. */
		struct weft_task *w2 = go([&] {
			int rc = weft_wg_wait(&wg);
			EXPECT_EQ(finished.load(), n);
			return (intptr_t)rc;
		});
		for (int i = 0; i < n; i++)
			weft_detach(go([&, i] {
				weft_sleep((uint64_t)(i % 4) * WEFT_MSEC);
				finished++;
				EXPECT_EQ(weft_wg_done(&wg), 0);
				return (intptr_t)0;
			}));
		EXPECT_EQ(weft_wg_wait(&wg), 0);
		EXPECT_EQ(finished.load(), n);
		EXPECT_EQ(join(w2), 0);
		EXPECT_EQ(weft_wg_done(&wg), -EINVAL);
		return (intptr_t)0;
	});
}

TEST(FutureTest, ResolvedFromPlainPthreadWakesEveryAwaitingTask)
{
	const int n = 8;
	struct weft_future *f = weft_future_new();
	ASSERT_NE(f, nullptr);
	intptr_t v = 0;
	EXPECT_EQ(weft_future_poll(f, &v), -EAGAIN);
	std::atomic<int> awaiting{0};
	std::atomic<bool> resolver_done{false};
	/* Not a worker: the resolver wakes tasks through the injection path. */
	std::thread resolver([&] {
		while (awaiting.load() < n)
			std::this_thread::yield();
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
		EXPECT_EQ(weft_future_resolve(f, 42), 0);
		EXPECT_EQ(weft_future_resolve(f, 43), -EALREADY);
		resolver_done = true;
	});
	run_in_weft(2, [&] {
		std::vector<struct weft_task *> ts;
		for (int i = 0; i < n; i++)
			ts.push_back(go([&] {
				intptr_t got = 0;
				awaiting++;
				int rc = weft_future_await(f, &got);
				EXPECT_EQ(got, 42);
				return (intptr_t)rc;
			}));
		for (auto *t : ts)
			EXPECT_EQ(join(t), 0);
		intptr_t got = 0;
		EXPECT_EQ(weft_future_await(f, &got), 0); /* resolved: no wait */
		EXPECT_EQ(got, 42);
		/* The resolver still touches the runtime after waking the last
		 * awaiter (queues, the worker's eventfd): no shutdown before
		 * resolve has returned. */
		while (!resolver_done.load())
			weft_sleep(WEFT_MSEC);
		return (intptr_t)0;
	});
	resolver.join();
	EXPECT_EQ(weft_future_poll(f, &v), 0);
	EXPECT_EQ(v, 42);
	weft_future_free(f);
}

TEST(FutureTest, AwaitHonoursDeadline)
{
	run_in_weft(2, [] {
		struct weft_future *f = weft_future_new();
		struct weft_scope s;
		intptr_t v = 0;
		weft_scope_deadline(&s, 5 * WEFT_MSEC);
		EXPECT_EQ(weft_future_await(f, &v), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		EXPECT_EQ(weft_future_resolve(f, 7), 0);
		EXPECT_EQ(weft_future_await(f, &v), 0);
		EXPECT_EQ(v, 7);
		weft_future_free(f);
		return (intptr_t)0;
	});
}

} // namespace
