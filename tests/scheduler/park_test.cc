// SPDX-License-Identifier: MIT
/*
 * park_test.cc - workers that sleep are always woken: stress tests of the
 * idle protocol (scheduler/idle.c) and of sleeping in the ring
 * (scheduler/park.c), with idle polling off so every gap in the work puts a
 * worker to sleep.  A lost wake-up shows up as a hang, which the deadline
 * of each test turns into a failure.
 *  - threads outside the runtime inject tasks one at a time and wait for
 *    each (the injection queue, weft__idle_notify, the eventfd);
 *  - two tasks pinned to different workers hand a counter back and forth
 *    while both workers keep falling asleep (inboxes, MSG_RING wake-ups);
 *  - sleeping workers wake for their timers, and only then.
 */
#include <atomic>
#include <thread>
#include <vector>

#include "common.h"

namespace {

struct weft_rt *sleepy_runtime(unsigned workers)
{
	struct weft_opts o = {};
	o.workers = workers;
	o.idle_spin_ns = WEFT_NEVER; /* sleep at once: every hand-off wakes */
	struct weft_rt *rt = nullptr;
	EXPECT_EQ(weft_rt_new(&rt, &o), 0);
	return rt;
}

intptr_t add_one(void *arg)
{
	return (intptr_t)arg + 1;
}

TEST(ParkTest, OutsideThreadsInjectingOneAtATimeAreNeverLost)
{
	const int threads = 4, per_thread = WEFT_TEST_SCALE(20000);
	struct weft_rt *rt = sleepy_runtime(2);
	ASSERT_NE(rt, nullptr);
	std::atomic<int> done{0};
	std::vector<std::thread> ts;
	for (int k = 0; k < threads; k++)
		ts.emplace_back([&] {
			for (int i = 0; i < per_thread; i++) {
				intptr_t r = 0;
				struct weft_task *t = weft_rt_spawn(rt, add_one, (void *)(intptr_t)i,
								    nullptr);
				if (t && weft_block_on(t, &r) == 0 && r == i + 1)
					done++;
			}
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(done.load(), threads * per_thread);
	struct weft_rt_stats st;
	weft_rt_stats(rt, &st);
	EXPECT_GT(st.parks, 0u);
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
}

/* Two tasks pinned to different workers pass a counter back and forth over
 * rendezvous channels: each hand-off readies a task bound to the other
 * worker, which has gone to sleep meanwhile. */
struct relay {
	struct weft_chan *ping, *pong;
	int rounds;
};

intptr_t relay_front(void *arg)
{
	auto *r = static_cast<struct relay *>(arg);
	int v = 0;
	for (int i = 0; i < r->rounds; i++)
		if (weft_chan_send(r->ping, &v) < 0 || weft_chan_recv(r->pong, &v) < 0)
			return -1;
	return v;
}

intptr_t relay_back(void *arg)
{
	auto *r = static_cast<struct relay *>(arg);
	int v = 0;
	for (int i = 0; i < r->rounds; i++) {
		if (weft_chan_recv(r->ping, &v) < 0)
			return -1;
		v++;
		if (weft_chan_send(r->pong, &v) < 0)
			return -1;
	}
	return 0;
}

TEST(ParkTest, HandOffsBetweenSleepingWorkersAreNeverLost)
{
	static struct relay r;
	r.rounds = WEFT_TEST_SCALE(20000);
	r.ping = weft_chan_new(sizeof(int), 0);
	r.pong = weft_chan_new(sizeof(int), 0);
	struct weft_rt *rt = sleepy_runtime(2);
	ASSERT_NE(rt, nullptr);
	intptr_t result = -1;
	ASSERT_EQ(weft_rt_run(
			  rt,
			  [](void *) -> intptr_t {
				  struct weft_spawn_opts on0 = {}, on1 = {};
				  on0.flags = on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
				  on1.worker = 1;
				  struct weft_task *f = weft_spawn(relay_front, &r, &on0);
				  struct weft_task *b = weft_spawn(relay_back, &r, &on1);
				  intptr_t vf = -1, vb = -1;
				  weft_join(f, &vf);
				  weft_join(b, &vb);
				  return vb == 0 ? vf : -1;
			  },
			  nullptr, &result),
		  0);
	EXPECT_EQ(result, r.rounds);
	struct weft_rt_stats st;
	weft_rt_stats(rt, &st);
	/* Most hand-offs found the other worker asleep and had to wake it. */
	EXPECT_GE(st.wakeups, (uint64_t)r.rounds / 2) << "parks " << st.parks;
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
	weft_chan_free(r.ping);
	weft_chan_free(r.pong);
}

TEST(ParkTest, SleepingWorkersWakeForTheirTimers)
{
	struct weft_rt *rt = sleepy_runtime(2);
	ASSERT_NE(rt, nullptr);
	intptr_t late = -1;
	ASSERT_EQ(weft_rt_run(
			  rt,
			  [](void *) -> intptr_t {
				  /* Nothing else runs: both workers sleep, and only
				   * their timers can wake them. */
				  uint64_t worst = 0;
				  for (int i = 0; i < 50; i++) {
					  uint64_t t0 = weft_now();
					  EXPECT_EQ(weft_sleep(2 * WEFT_MSEC), 0);
					  uint64_t dt = weft_now() - t0;
					  EXPECT_GE(dt, 2 * WEFT_MSEC);
					  if (dt > worst)
						  worst = dt;
				  }
				  return (intptr_t)(worst - 2 * WEFT_MSEC);
			  },
			  nullptr, &late),
		  0);
	/* Generous: a loaded CI machine may deschedule us for a while, but a
	 * worker that slept past its timer would be seconds late. */
	EXPECT_LT(late, (intptr_t)(500 * WEFT_MSEC));
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
}

} // namespace
