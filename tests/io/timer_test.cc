// SPDX-License-Identifier: MIT
/*
 * timer_test.cc - the per-worker timers (io/timer.c) and the sleeping worker
 * that waits for them (scheduler/worker.c, scheduler/park.c):
 *  - no sleep returns before its time, relative (weft_sleep) or absolute
 *    (weft__sleep_until), whatever the duration, 0 included;
 *  - timers fire in deadline order: when a sleeper wakes, no timer with an
 *    earlier deadline is still pending, and the heap invariant holds;
 *  - timers with one and the same deadline all fire;
 *  - many sleeps pending at once on one worker all complete, and the timer
 *    array and the stacks are given back afterwards: 200,000 by default
 *    (each task maps a stack on its first run, ~15 us of CPU here, so a
 *    million would take the suite's whole time budget), a million with
 *    WEFT_TIMER_TEST_PENDING=1000000, 1/100 under sanitizers; bench/
 *    measures a million (weft-microbench timers, sleep-lateness --pending);
 *  - stale entries (deadline scopes left early, cancelled sleeps) are swept:
 *    the heap stays within a small multiple of its live entries;
 *  - a worker whose only event is a far timer sleeps: it burns no CPU and
 *    parks a handful of times, not in a loop;
 *  - a parked worker's nearest timer wakes it on time, also when a farther
 *    timer is pending there and when the timer was armed after a wake-up
 *    (a worker that slept past it for good shows as a hang, which the test
 *    runner's timeout turns into a failure).
 * Ordering inside one batch of due timers is not observable (they are all
 * claimed before any of them runs) and is not tested.  Lateness percentiles
 * are measured in bench/ (weft-microbench sleep-lateness), not asserted here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "io/timer.h"

namespace {

/* Runs body as the main task of a runtime made with o; checks the result
 * and that shutdown left no task behind. */
void run_with(const struct weft_opts &o, std::function<intptr_t()> body)
{
	struct weft_rt *rt = nullptr;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	intptr_t r = -1;
	EXPECT_EQ(weft_rt_run(
			  rt,
			  [](void *arg) -> intptr_t {
				  return (*static_cast<std::function<intptr_t()> *>(arg))();
			  },
			  &body, &r),
		  0);
	EXPECT_EQ(r, 0);
	EXPECT_EQ(weft_rt_shutdown(rt, 2 * WEFT_SEC), 0) << "tasks left behind at shutdown";
}

struct weft_opts opts(unsigned workers)
{
	struct weft_opts o = {};
	o.workers = workers;
	/* The big spawn loops hold the worker on purpose. */
	o.stall_warn_ns = WEFT_NEVER;
	return o;
}

uint64_t cpu_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * WEFT_SEC + (uint64_t)ts.tv_nsec;
}

long rss_bytes()
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = -1;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = -1;
	fclose(f);
	return res * sysconf(_SC_PAGESIZE);
}

uint64_t splitmix(uint64_t &s)
{
	uint64_t z = (s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- No early fire ---------------------------------------------------------- */

struct early {
	std::atomic<int> early{0}, failed{0}, done{0};
};

/* Sleeps a few times for durations from 0 to ~20 ms, each measured from a
 * clock read taken before the call: the wake-up must not come before it. */
intptr_t sleep_and_check(void *arg)
{
	auto *e = static_cast<struct early *>(arg);
	uint64_t seed = (uint64_t)(uintptr_t)weft_self();
	static const uint64_t fixed[] = {0, 1, 999, 1000, WEFT_USEC, 50 * WEFT_USEC};
	for (int r = 0; r < 8; r++) {
		uint64_t d = r < 6 ? fixed[r] : splitmix(seed) % (20 * WEFT_MSEC);
		uint64_t t0 = weft_now();
		if (weft_sleep(d) != 0)
			e->failed++;
		if (weft_now() < t0 + d)
			e->early++;
		/* Absolute: the exact time the timer holds. */
		uint64_t when = weft_now() + splitmix(seed) % (5 * WEFT_MSEC);
		if (weft__sleep_until(when) != 0)
			e->failed++;
		if (weft_now() < when)
			e->early++;
	}
	e->done++;
	return 0;
}

TEST(TimerTest, NoSleepReturnsBeforeItsTime)
{
	static struct early e;
	const int n = WEFT_TEST_SCALE(20000) + 50;
	run_with(opts(2), [=]() -> intptr_t {
		std::vector<struct weft_task *> ts(n);
		for (auto &t : ts)
			t = weft_spawn(sleep_and_check, &e, nullptr);
		for (auto t : ts)
			join(t);
		return 0;
	});
	EXPECT_EQ(e.done.load(), n);
	EXPECT_EQ(e.failed.load(), 0);
	EXPECT_EQ(e.early.load(), 0) << "sleeps returned before their time";
}

TEST(TimerTest, SleepUntilThePastReturnsAtOnce)
{
	run_with(opts(1), []() -> intptr_t {
		uint64_t t0 = weft_now();
		EXPECT_EQ(weft__sleep_until(0), 0);
		EXPECT_EQ(weft__sleep_until(t0), 0);
		EXPECT_EQ(weft_sleep(0), 0);
		/* Generous: nothing here waits for anything. */
		EXPECT_LT(weft_now() - t0, 100 * WEFT_MSEC);
		return 0;
	});
}

/* ---- Order ------------------------------------------------------------------ */

struct ordered {
	std::atomic<int> armed{0}, out_of_order{0}, early{0}, bad_heap{0}, done{0};
};

struct ordered_arg {
	struct ordered *o;
	uint64_t when;
	struct weft_task *self;
	uint64_t armed_at; /* clock read just before arming */
};

/* Which sleeper each pending entry belongs to (built before any runs). */
std::unordered_map<const struct weft_task *, const struct ordered_arg *> *owner_of;

/*
 * On waking, no timer due before ours may still be pending, unless it was
 * armed after ours fired (its deadline already past when armed: a slow
 * start).  One worker runs everything, so a sleeper's clock read and the
 * arming after it happen with no fire in between: an entry whose sleeper
 * read the clock before our deadline was in the heap when ours fired.
 */
intptr_t sleep_in_order(void *arg)
{
	auto *a = static_cast<struct ordered_arg *>(arg);
	a->armed_at = weft_now();
	a->o->armed++;
	if (weft__sleep_until(a->when) != 0)
		return -1;
	if (weft_now() < a->when)
		a->o->early++;
	const struct weft__timers *ts = weft__timers_here();
	if (!weft__timers_check(ts))
		a->o->bad_heap++;
	for (size_t i = 0; i < ts->n; i++) {
		const struct weft__timer *e = &ts->heap[i];
		if (e->when > a->when)
			continue;
		auto it = owner_of->find(e->task);
		if (it == owner_of->end() || it->second->armed_at < a->when)
			a->o->out_of_order++;
	}
	a->o->done++;
	return 0;
}

TEST(TimerTest, DistinctDeadlinesFireInDeadlineOrder)
{
	static struct ordered o;
	const int n = 2000;
	static std::vector<struct ordered_arg> args(n);
	static std::unordered_map<const struct weft_task *, const struct ordered_arg *> owners;
	owner_of = &owners;
	run_with(opts(1), [=]() -> intptr_t {
		/* Deadlines 20 us apart over 40 ms, armed in a shuffled order,
		 * normally all before the first is due. */
		std::vector<uint64_t> slot(n);
		for (int i = 0; i < n; i++)
			slot[i] = (uint64_t)i;
		uint64_t seed = 42;
		for (int i = n - 1; i > 0; i--)
			std::swap(slot[i], slot[splitmix(seed) % (uint64_t)(i + 1)]);
		uint64_t base = weft_now() + 200 * WEFT_MSEC;
		std::vector<struct weft_task *> ts(n);
		for (int i = 0; i < n; i++) {
			args[i] = {&o, base + slot[i] * 20 * WEFT_USEC, nullptr, 0};
			ts[i] = weft_spawn(sleep_in_order, &args[i], nullptr);
			/* One worker: none of them runs before we join. */
			args[i].self = ts[i];
			owners[ts[i]] = &args[i];
		}
		/* Once all are armed (and normally none due yet), the heap
		 * must hold them in order, its earliest entry first: a fire
		 * that finds everything due at once would hide a misordered
		 * heap in one batch. */
		while (o.armed.load() < n)
			weft_yield();
		const struct weft__timers *tm = weft__timers_here();
		EXPECT_TRUE(weft__timers_check(tm));
		if (tm->n) {
			uint64_t least = UINT64_MAX;
			for (size_t i = 0; i < tm->n; i++)
				least = std::min(least, tm->heap[i].when);
			EXPECT_EQ(weft__timers_peek(tm)->when, least);
		}
		for (auto t : ts)
			EXPECT_EQ(join(t), 0);
		return 0;
	});
	EXPECT_EQ(o.done.load(), n);
	EXPECT_EQ(o.early.load(), 0);
	EXPECT_EQ(o.bad_heap.load(), 0);
	EXPECT_EQ(o.out_of_order.load(), 0) << "a timer fired while an earlier one was pending";
}

/* Sleeps until the deadline it is handed, then takes the next place. */
struct batch_sleeper {
	uint64_t when;
	int index;
	std::atomic<int> *next;
	int *order;
};

intptr_t sleep_and_take_place(void *arg)
{
	auto *b = static_cast<struct batch_sleeper *>(arg);
	if (weft__sleep_until(b->when) != 0)
		return -1;
	b->order[b->next->fetch_add(1)] = b->index;
	return 0;
}

/*
 * Pinned tasks are never stolen, so they cannot share the I/O queue's
 * stealable order by accident: tasks pinned and not, woken by one fire,
 * must still run in deadline order.  The main task holds the only worker
 * past every deadline, so one fire finds them all due.
 */
TEST(TimerTest, PinnedAndUnpinnedSleepersWokenTogetherRunInDeadlineOrder)
{
	const int n = 64;
	static struct batch_sleeper b[n];
	static int order[n];
	static std::atomic<int> next{0};
	run_with(opts(1), [=]() -> intptr_t {
		uint64_t base = weft_now() + 20 * WEFT_MSEC;
		std::vector<struct weft_task *> ts(n);
		for (int i = 0; i < n; i++) {
			b[i] = {base + (uint64_t)i * WEFT_USEC, i, &next, order};
			struct weft_spawn_opts so = {};
			so.flags = i % 3 ? WEFT_SPAWN_PINNED : 0;
			ts[i] = weft_spawn(sleep_and_take_place, &b[i], &so);
		}
		weft_sleep(WEFT_MSEC); /* every one arms its timer */
		while (weft_now() < base + (uint64_t)n * WEFT_USEC) {
		}
		for (auto t : ts)
			EXPECT_EQ(join(t), 0);
		return 0;
	});
	ASSERT_EQ(next.load(), n);
	for (int i = 0; i < n; i++)
		EXPECT_EQ(order[i], i) << "place " << i;
}

struct same {
	struct weft_future *go;
	std::atomic<int> ok{0};
};

/* Waits at the gate, then sleeps until the time the gate hands out. */
intptr_t sleep_until_same(void *arg)
{
	auto *s = static_cast<struct same *>(arg);
	intptr_t when = 0;
	if (weft_future_await(s->go, &when) != 0)
		return -1;
	if (weft__sleep_until((uint64_t)when) == 0 && weft_now() >= (uint64_t)when)
		s->ok++;
	return 0;
}

TEST(TimerTest, EqualDeadlinesAllFire)
{
	static struct same s;
	const int n = (int)weft_test_parkable(WEFT_TEST_SCALE(50000) + 100);
	run_with(opts(2), [=]() -> intptr_t {
		s.go = weft_future_new();
		std::vector<struct weft_task *> ts(n);
		for (auto &t : ts)
			t = weft_spawn(sleep_until_same, &s, nullptr);
		weft_sleep(10 * WEFT_MSEC); /* most of them reach the gate */
		weft_future_resolve(s.go, (intptr_t)(weft_now() + 50 * WEFT_MSEC));
		for (auto t : ts)
			join(t);
		weft_future_free(s.go);
		return 0;
	});
	EXPECT_EQ(s.ok.load(), n);
}

/* ---- Many pending ------------------------------------------------------------- */

struct million {
	struct weft_wg ready;
	struct weft_future *go;
	std::atomic<int> armed{0}, fired{0}, early{0};
};

struct million *mil;

/* Parks at the gate first (no timer), so that stacks are mapped before any
 * sleep is armed; then sleeps until the gate's time plus a spread. */
intptr_t million_sleeper(void *arg)
{
	uint64_t i = (uint64_t)(uintptr_t)arg;
	intptr_t base = 0;
	weft_wg_done(&mil->ready);
	if (weft_future_await(mil->go, &base) != 0)
		return -1;
	uint64_t when = (uint64_t)base + (i % 1000) * 50 * WEFT_USEC;
	mil->armed++;
	if (weft__sleep_until(when) != 0)
		return -1;
	if (weft_now() < when)
		mil->early++;
	mil->fired++;
	return 0;
}

TEST(TimerTest, ManyPendingSleepsAllCompleteAndMemoryIsReleased)
{
	static struct million m;
	mil = &m;
	const char *env = getenv("WEFT_TIMER_TEST_PENDING");
	const int n = (int)weft_test_parkable(WEFT_TEST_SCALE(env ? atoi(env) : 200000));
	ASSERT_GT(n, 0);
	static size_t peak_pending, cap_after;
	static long rss0, rss_peak, rss_after;
	run_with(opts(1), [=]() -> intptr_t {
		weft_wg_init(&m.ready);
		weft_wg_add(&m.ready, n);
		m.go = weft_future_new();
		rss0 = rss_bytes();
		std::vector<struct weft_task *> ts(n);
		for (int i = 0; i < n; i++)
			ts[i] = weft_spawn(million_sleeper, (void *)(uintptr_t)i, nullptr);
		uint64_t t0 = weft_now();
		EXPECT_EQ(weft_wg_wait(&m.ready), 0);
		/* Re-arming after the gate costs far less than the first run,
		 * which mapped each stack: the time that took, plus a margin,
		 * lets every sleep be armed before the first one is due. */
		uint64_t first_run = weft_now() - t0;
		weft_future_resolve(m.go, (intptr_t)(weft_now() + first_run / 8 + 300 * WEFT_MSEC));
		/* One worker: the sleepers run while we wait here, on a timer
		 * of our own that is due before theirs. */
		while (m.armed.load() < n)
			weft_sleep(WEFT_MSEC);
		const struct weft__timers *tm = weft__timers_here();
		peak_pending = tm->n;
		EXPECT_TRUE(weft__timers_check(tm));
		rss_peak = rss_bytes();
		for (auto t : ts)
			EXPECT_EQ(join(t), 0);
		cap_after = tm->cap;
		EXPECT_TRUE(weft__timers_check(tm));
		rss_after = rss_bytes();
		weft_future_free(m.go);
		return 0;
	});
	EXPECT_EQ(m.fired.load(), n);
	EXPECT_EQ(m.early.load(), 0);
	EXPECT_GE(peak_pending, (size_t)n) << "not all sleeps were pending at once";
	/* The timer array shrinks as it empties: not a million entries' worth
	 * kept for a heap that holds none. */
	EXPECT_LE(cap_after, (size_t)WEFT__TIMERS_SWEEP_MIN);
#ifndef WEFT_SANITIZED
	/* Stacks are unmapped as tasks finish (a few stay pooled); task
	 * objects stay (never freed while the runtime lives, 192 bytes
	 * each).  Most of what the sleepers held must be back. */
	EXPECT_LT(rss_after - rss0, (rss_peak - rss0) / 4)
		<< "rss before " << rss0 << " peak " << rss_peak << " after " << rss_after;
#else
	/* The sanitizers' own allocators and shadow memory blur RSS. */
	(void)rss0, (void)rss_peak, (void)rss_after;
#endif
}

/* ---- Stale entries are swept --------------------------------------------------- */

struct pingpong {
	struct weft_chan *ping, *pong;
	int rounds;
};

/* Each receive sits in a one-hour deadline scope that it leaves long before
 * the deadline: every park leaves a stale timer behind. */
intptr_t deadline_echo(void *arg)
{
	auto *p = static_cast<struct pingpong *>(arg);
	int v;
	for (int i = 0; i < p->rounds; i++) {
		struct weft_scope s;
		weft_scope_deadline(&s, 3600 * WEFT_SEC);
		int rc = weft_chan_recv(p->ping, &v);
		if (weft_scope_end(&s) || rc != 0 || weft_chan_send(p->pong, &v) != 0)
			return -1;
	}
	return 0;
}

/* Sleeps for an hour, until cancelled; counts itself in *arg (if not
 * NULL) just before. */
intptr_t long_sleep(void *arg)
{
	if (arg)
		(*static_cast<std::atomic<int> *>(arg))++;
	return weft_sleep(3600 * WEFT_SEC) == -ECANCELED ? 0 : -1;
}

/* Runs `rounds` deadline-scoped round trips on this worker next to `live`
 * tasks asleep for an hour, and returns the largest heap seen. */
size_t churn_deadlines(int rounds, int live, uint64_t *sweeps)
{
	const struct weft__timers *tm = weft__timers_here();
	std::atomic<int> asleep{0};
	std::vector<struct weft_task *> sleepers(live);
	for (auto &t : sleepers)
		t = weft_spawn(long_sleep, &asleep, nullptr);
	while (asleep.load() < live)
		weft_yield();
	uint64_t sweeps0 = tm->n_sweeps;
	struct pingpong p = {weft_chan_new(sizeof(int), 0), weft_chan_new(sizeof(int), 0), rounds};
	struct weft_task *echo = weft_spawn(deadline_echo, &p, nullptr);
	size_t peak = 0;
	for (int i = 0; i < rounds; i++) {
		struct weft_scope s;
		int v = i;
		weft_scope_deadline(&s, 3600 * WEFT_SEC);
		EXPECT_EQ(weft_chan_send(p.ping, &v), 0);
		EXPECT_EQ(weft_chan_recv(p.pong, &v), 0);
		EXPECT_EQ(weft_scope_end(&s), 0);
		peak = std::max(peak, tm->n);
	}
	EXPECT_EQ(join(echo), 0);
	EXPECT_TRUE(weft__timers_check(tm));
	*sweeps = tm->n_sweeps - sweeps0;
	for (auto t : sleepers)
		weft_cancel(t);
	for (auto t : sleepers)
		EXPECT_EQ(join(t), 0);
	weft_chan_free(p.ping);
	weft_chan_free(p.pong);
	return peak;
}

TEST(TimerTest, DeadlineScopesLeftEarlyDoNotGrowTheHeap)
{
	const int rounds = WEFT_TEST_SCALE(200000) + 5000;
	run_with(opts(1), [=]() -> intptr_t {
		/* Two live waits at a time, a stale entry per round trip. */
		uint64_t sweeps = 0;
		size_t peak = churn_deadlines(rounds, 0, &sweeps);
		EXPECT_GT(sweeps, 0u);
		EXPECT_LE(peak, 2u * WEFT__TIMERS_SWEEP_MIN) << "after " << 2 * rounds << " stale timers";
		/* The same next to live sleepers: the bound follows them. */
		const int live = WEFT_TEST_SCALE(20000) + 100;
		peak = churn_deadlines(rounds, live, &sweeps);
		EXPECT_GT(sweeps, 0u);
		EXPECT_LE(peak, 3u * (size_t)live + 2u * WEFT__TIMERS_SWEEP_MIN)
			<< "after " << 2 * rounds << " stale timers";
		return 0;
	});
}

TEST(TimerTest, CancelledSleepsDoNotGrowTheHeap)
{
	const int batch = WEFT_TEST_SCALE(2000) + 100, batches = 20;
	run_with(opts(1), [=]() -> intptr_t {
		const struct weft__timers *tm = weft__timers_here();
		size_t peak = 0;
		uint64_t stale0 = tm->n_stale;
		for (int b = 0; b < batches; b++) {
			std::atomic<int> asleep{0};
			std::vector<struct weft_task *> ts(batch);
			for (auto &t : ts)
				t = weft_spawn(long_sleep, &asleep, nullptr);
			/* One worker: the last one counted has parked by the
			 * time we run again. */
			while (asleep.load() < batch)
				weft_yield();
			weft_yield();
			peak = std::max(peak, tm->n);
			for (auto t : ts)
				weft_cancel(t);
			for (auto t : ts)
				EXPECT_EQ(join(t), 0);
		}
		EXPECT_GT(tm->n_stale, stale0);
		EXPECT_LE(peak, 3u * (size_t)batch + 2u * WEFT__TIMERS_SWEEP_MIN)
			<< "after " << batches * batch << " cancelled sleeps";
		EXPECT_TRUE(weft__timers_check(tm));
		return 0;
	});
}

/* ---- Sleeping workers ------------------------------------------------------------ */

/* The whole runtime has one thing to wait for, a timer an hour away: over
 * half a second the process must use next to no CPU (a worker polling for
 * it would use the whole half second, or its share of a busy machine) and
 * its workers must park a few times, not in a loop. */
void far_timer_only(uint64_t idle_spin_ns)
{
	struct weft_opts o = opts(2);
	o.idle_spin_ns = idle_spin_ns;
	struct weft_rt *rt = nullptr;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	struct weft_task *t = weft_rt_spawn(rt, long_sleep, nullptr, nullptr);
	ASSERT_NE(t, nullptr);
	usleep(50 * 1000); /* let it park, and the workers settle */
	struct weft_rt_stats s0, s1;
	weft_rt_stats(rt, &s0);
	uint64_t c0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = weft_now();
	usleep(500 * 1000);
	uint64_t c1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), w1 = weft_now();
	weft_rt_stats(rt, &s1);
	EXPECT_LT(c1 - c0, (w1 - w0) / 20) << "CPU ns used while only a far timer was pending";
	EXPECT_LT(s1.parks - s0.parks, 20u);
	weft_cancel(t);
	intptr_t r = -1;
	EXPECT_EQ(weft_block_on(t, &r), 0);
	EXPECT_EQ(r, 0);
	EXPECT_EQ(weft_rt_shutdown(rt, 0), 0);
}

TEST(TimerTest, WorkerWithOnlyAFarTimerSleeps)
{
	far_timer_only(0);          /* the default idle polling */
	far_timer_only(WEFT_NEVER); /* sleep as soon as idle */
}

/* A task pinned to worker 1 sleeps `d` there, each time after that worker
 * has gone back to sleep; it returns the worst lateness seen. */
struct nearest {
	uint64_t d;
	int rounds;
};

intptr_t sleep_on_parked_worker(void *arg)
{
	auto *n = static_cast<struct nearest *>(arg);
	uint64_t worst = 0;
	for (int i = 0; i < n->rounds; i++) {
		uint64_t due = weft_now() + n->d;
		if (weft_sleep(n->d) != 0)
			return -1;
		uint64_t now = weft_now();
		if (now < due)
			return -2;
		worst = std::max(worst, now - due);
	}
	return (intptr_t)worst;
}

TEST(TimerTest, ParkedWorkerWakesForItsNearestTimer)
{
	struct weft_opts o = opts(2);
	o.idle_spin_ns = WEFT_NEVER; /* every gap parks the worker */
	run_with(o, []() -> intptr_t {
		struct weft_spawn_opts on1 = {};
		on1.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		on1.worker = 1;
		struct nearest nr = {20 * WEFT_MSEC, 10};
		/* Alone on worker 1: the worker parks with this timer as its
		 * only event, armed each time just after a wake-up. */
		struct weft_task *t = weft_spawn(sleep_on_parked_worker, &nr, &on1);
		intptr_t worst = -1;
		EXPECT_EQ(weft_join(t, &worst), 0);
		EXPECT_GE(worst, 0);
		/* Generous for a loaded machine; a worker that missed its
		 * nearest timer would wait for the hour-long one below, or
		 * for ever. */
		EXPECT_LT(worst, (intptr_t)(250 * WEFT_MSEC));
		/* Next to a farther timer on the same worker. */
		struct weft_task *far = weft_spawn(long_sleep, nullptr, &on1);
		t = weft_spawn(sleep_on_parked_worker, &nr, &on1);
		worst = -1;
		EXPECT_EQ(weft_join(t, &worst), 0);
		EXPECT_GE(worst, 0);
		EXPECT_LT(worst, (intptr_t)(250 * WEFT_MSEC));
		weft_cancel(far);
		EXPECT_EQ(join(far), 0);
		return 0;
	});
}

} // namespace
