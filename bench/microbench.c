// SPDX-License-Identifier: MIT
/*
 * microbench.c - weft-microbench: one microbenchmark of the runtime core,
 * run alone, for bench/compare.py and any outside harness.
 *
 *   weft-microbench NAME [-n N] [-w WORKERS] [--no-spin] [--pending P]
 *
 * NAME: switch, yield, spawn, pingpong, pingpong-cross, pingpong-cross-spin,
 * forkjoin, parked, inject (ns from an outside spawn to the task's start
 * while the worker is busy with yielding tasks), and the timer cases:
 *   timers          add + fire of one timer with N pending, on io/timer.c
 *                   alone (no runtime): stand-in task objects, a virtual
 *                   clock, expiries uniform in [1, 100] ms ahead;
 *   sleep-lateness  N tasks each sleep 10 times for a random [1, 100] ms;
 *                   how late each sleep returns, as percentiles;
 *   scope           a deadline scope entered and left, nothing inside;
 *   pingpong-deadline  pingpong with every receive inside a 1 s deadline
 *                   scope that does not expire: the recv-with-timeout that
 *                   completes in time, whose timer is left behind stale;
 *   pingpong-select pingpong with every receive a weft_chan_select over its
 *                   channel and a quit channel that never goes.
 * --pending P first parks P tasks in a 1 hour sleep (P pending timers) and
 * cancels them at the end; sleep-lateness and pingpong-deadline take it.
 * The last line printed is ns_per_op=<value> (bytes_per_task=<value> for
 * parked, p99_ns=<value> for sleep-lateness, whose line before it gives
 * p50_ns, p999_ns and max_ns too); the exit status is non-zero on failure.
 * switch, yield, spawn, pingpong* and forkjoin print cpu_ns_per_op=<value>
 * just before it: the process's CPU time over the same span, per operation
 * (idle workers' polling included), which other load on a shared machine
 * disturbs far less than the wall clock.
 * The CPU affinity the process was started with is respected (workers are
 * not pinned unless WEFT_PIN=1).  --no-spin makes idle workers sleep at once
 * instead of polling first, so every cross-worker hand-off pays for a
 * wake-up.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/timer.h"
#include "runtime/internal.h"
#include "weft.h"

static uint64_t n_ops, n_pending;
static double result;
/* CPU time of the whole process per operation, over the span `result`
 * times, where a case measures it (negative: not measured).  On a shared
 * machine wall time also counts the time other processes had the CPU;
 * this does not, so it is the steadier of the two for A/B comparisons. */
static double cpu_result = -1;
static _Atomic uint64_t n_blocked;

static double per_op(uint64_t t0, uint64_t t1, uint64_t n)
{
	return (double)(t1 - t0) / (double)n;
}

static uint64_t cpu_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * WEFT_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	return cpu_ns(CLOCK_THREAD_CPUTIME_ID);
}

static uint64_t process_cpu_ns(void)
{
	return cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
}


/* ---- switch: the scheduler's switch routine, two contexts bouncing ------- */

static struct weft__ctx main_ctx, co_ctx;

static _Noreturn void bounce(void *first, void *arg)
{
	(void)first;
	(void)arg;
	weft__ctx_entered();
	for (;;)
		weft__ctx_switch(&co_ctx, &main_ctx, NULL, false);
}

/* One-way switches per second, counted as Boost's ping-pong counts jumps:
 * each round trip is two switches. */
static int bench_switch(uint64_t n)
{
	struct weft__stack *s = weft__stack_get(NULL, 64 * 1024);
	if (!s)
		return -ENOMEM;
	weft__ctx_on_thread(&main_ctx);
	weft__ctx_on_stack(&co_ctx, s, bounce, NULL, weft__fp_ctl_read());
	weft__ctx_switch(&main_ctx, &co_ctx, NULL, false); /* warm up */
	uint64_t t0 = weft_now(), c0 = process_cpu_ns();
	for (uint64_t i = 0; i < n / 2; i++)
		weft__ctx_switch(&main_ctx, &co_ctx, NULL, false);
	uint64_t t1 = weft_now();
	result = per_op(t0, t1, n / 2 * 2);
	cpu_result = per_op(c0, process_cpu_ns(), n / 2 * 2);
	return 0;
}

/* ---- tasks --------------------------------------------------------------------- */

static intptr_t yielder(void *arg)
{
	uint64_t n = *(uint64_t *)arg;
	for (uint64_t i = 0; i < n; i++)
		weft_yield();
	return 0;
}

static intptr_t empty(void *arg)
{
	(void)arg;
	return 0;
}

struct pp {
	struct weft_chan *a, *b;
	uint64_t n;
	bool spin;
	bool deadline;   /* each receive inside a 1 s deadline scope */
	struct weft_chan *quit; /* each receive a select with this one too */
	uint64_t max_rt; /* the slowest round trip, ns (pinger) */
	uint64_t cpu_ns; /* process CPU time over the pinger's span */
};

static int send(struct pp *p, struct weft_chan *ch, uint64_t *v)
{
	if (!p->spin)
		return weft_chan_send(ch, v);
	int rc;
	while ((rc = weft_chan_trysend(ch, v)) == -EAGAIN)
		weft_yield();
	return rc;
}

static int recv(struct pp *p, struct weft_chan *ch, uint64_t *v)
{
	if (p->quit) {
		/* A receive with a way out, as Go writes it: the quit channel
		 * never goes here. */
		struct weft_chan_case cs[] = {{ch, v, WEFT_CHAN_RECV, 0},
					      {p->quit, v, WEFT_CHAN_RECV, 0}};
		int k = weft_chan_select(cs, 2);
		return k == 0 ? cs[0].result : k < 0 ? k : -EPIPE;
	}
	if (p->deadline) {
		struct weft_scope s;
		weft_scope_deadline(&s, WEFT_SEC);
		int rc = weft_chan_recv(ch, v);
		weft_scope_end(&s);
		return rc;
	}
	if (!p->spin)
		return weft_chan_recv(ch, v);
	int rc;
	while ((rc = weft_chan_tryrecv(ch, v)) == -EAGAIN)
		weft_yield();
	return rc;
}

static intptr_t ponger(void *arg)
{
	struct pp *p = arg;
	uint64_t v;
	for (uint64_t i = 0; i < p->n; i++)
		if (recv(p, p->a, &v) < 0 || send(p, p->b, &v) < 0)
			return -1;
	return 0;
}

/* Returns the nanoseconds n round trips took. */
static intptr_t pinger(void *arg)
{
	struct pp *p = arg;
	uint64_t v = 0;
	uint64_t t0 = weft_now(), prev = t0, c0 = process_cpu_ns();
	for (uint64_t i = 0; i < p->n; i++) {
		if (send(p, p->a, &v) < 0 || recv(p, p->b, &v) < 0)
			return -1;
		if (p->deadline) {
			/* Only here: the clock read would weigh on the
			 * plain pingpong rows. */
			uint64_t now = weft_now();
			if (now - prev > p->max_rt)
				p->max_rt = now - prev;
			prev = now;
		}
	}
	uint64_t t1 = weft_now();
	p->cpu_ns = process_cpu_ns() - c0;
	return (intptr_t)(t1 - t0);
}

static intptr_t fib(void *arg)
{
	intptr_t n = (intptr_t)arg;
	if (n < 2)
		return n;
	struct weft_task *t = weft_spawn(fib, (void *)(n - 1), NULL);
	intptr_t b = fib((void *)(n - 2));
	intptr_t a = 0;
	if (!t || weft_join(t, &a) < 0)
		abort();
	return a + b;
}

static intptr_t blocked(void *arg)
{
	uint64_t v;
	atomic_fetch_add_explicit(&n_blocked, 1, memory_order_relaxed);
	weft_chan_recv(arg, &v);
	return 0;
}

/* inject: how long a task spawned from outside waits for a worker that is
 * busy with a yielding task: the cost WEFT__GLOBAL_INTERVAL trades. */
static _Atomic bool stop_spinning;

static intptr_t spinner(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop_spinning, memory_order_relaxed))
		weft_yield();
	return 0;
}

static intptr_t started_at(void *arg)
{
	return (intptr_t)(weft_now() - *(uint64_t *)arg);
}

static double bench_inject(struct weft_rt *rt, uint64_t n)
{
	struct weft_task *s = weft_rt_spawn(rt, spinner, NULL, NULL);
	struct weft_task *s2 = weft_rt_spawn(rt, spinner, NULL, NULL);
	uint64_t total = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = weft_now();
		intptr_t wait = 0;
		weft_block_on(weft_rt_spawn(rt, started_at, &t0, NULL), &wait);
		total += (uint64_t)wait;
	}
	atomic_store(&stop_spinning, true);
	weft_block_on(s, NULL);
	weft_block_on(s2, NULL);
	return (double)total / (double)n;
}

/* ---- timers ------------------------------------------------------------------ */

/* xorshift64: cheap, and the same sequence on every run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t rand_ms_1_100(uint64_t *s)
{
	return WEFT_MSEC + rnd(s) % (99 * WEFT_MSEC + 1);
}

/*
 * timers: the timer structure alone, in its steady state with n entries
 * pending.  Stand-in task objects sit in one wait each (armed, never
 * parked, so a fire claims the wait and readies nothing); each step moves
 * a virtual clock to the earliest expiry, fires it, re-arms that task and
 * adds its next timer 1-100 ms ahead.  Keys carry the task's index in their
 * low bits, so they are distinct and each fire wakes exactly the entry
 * peeked.  One step is one add plus one fire, touching one random task
 * object as a real wake-up does.  Stale entries have no part here
 * (pingpong-deadline makes them).
 */
static int bench_timers(uint64_t n, uint64_t steps)
{
	unsigned bits = 1;
	while ((1ull << bits) < n)
		bits++;
	struct weft_task *ft = aligned_alloc(64, n * sizeof(*ft));
	if (!ft)
		return -ENOMEM;
	memset(ft, 0, n * sizeof(*ft));
	for (uint64_t i = 0; i < n; i++)
		atomic_store_explicit(&ft[i].wake, 1ull << WEFT__WAKE_SHIFT | WEFT__WAKE_ARMED,
				      memory_order_relaxed);
	struct weft__timers ts = {0};
	uint64_t seed = 0x9e3779b97f4a7c15ull, vnow = 1ull << 30;
	/* Filled in a scattered task order, as tasks park in no particular
	 * order. */
	uint64_t t0 = weft_now(), tf;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t k = (i * 2654435761ull) % n;
		if (weft__timers_add(&ts, (vnow + rand_ms_1_100(&seed)) << bits | k, &ft[k], 1, 0) < 0)
			return -ENOMEM;
	}
	tf = weft_now();
	uint64_t t1 = tf, c1 = 0;
	/* Untimed first: n / 2 steps, so that a sweep the fill started (the
	 * heap doubled) has finished; then the timed steps. */
	for (uint64_t i = 0; i < n / 2 + steps; i++) {
		if (i == n / 2) {
			t1 = weft_now();
			c1 = thread_cpu_ns();
		}
		const struct weft__timer *e = weft__timers_peek(&ts);
		uint64_t when = e->when, token = e->token;
		struct weft_task *t = e->task;
		if (weft__timers_fire(&ts, when) != 1)
			return -EIO;
		vnow = when >> bits;
		atomic_store_explicit(&t->run, WEFT__RUNNING, memory_order_relaxed);
		atomic_store_explicit(&t->wake, (token + 1) << WEFT__WAKE_SHIFT | WEFT__WAKE_ARMED,
				      memory_order_relaxed);
		if (weft__timers_add(&ts, (vnow + rand_ms_1_100(&seed)) << bits | (uint64_t)(t - ft),
				     t, token + 1, 0) < 0)
			return -ENOMEM;
	}
	uint64_t t2 = weft_now(), c2 = thread_cpu_ns();
	/* CPU time beside wall time: on a shared machine the wall clock also
	 * counts the time others had the CPU. */
	printf("pending=%" PRIu64 " fill_ns_per_add=%.2f cpu_ns_per_op=%.2f\n", n,
	       per_op(t0, tf, n), per_op(c1, c2, steps));
	weft__timers_free(&ts);
	free(ft);
	result = per_op(t1, t2, steps);
	return 0;
}

/* --pending: tasks parked in a long sleep, each one pending timer. */
static _Atomic uint64_t n_asleep;

static intptr_t long_sleeper(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&n_asleep, 1, memory_order_relaxed);
	return weft_sleep(3600 * WEFT_SEC) == -ECANCELED ? 0 : -EIO;
}

static struct weft_task **park_sleepers(uint64_t p)
{
	struct weft_task **ts = malloc((p ? p : 1) * sizeof(*ts));
	if (!ts)
		return NULL;
	for (uint64_t i = 0; i < p; i++)
		if (!(ts[i] = weft_spawn(long_sleeper, NULL, NULL)))
			return NULL;
	while (atomic_load_explicit(&n_asleep, memory_order_relaxed) < p)
		weft_sleep(WEFT_MSEC);
	return ts;
}

static int wake_sleepers(struct weft_task **ts, uint64_t p)
{
	int rc = 0;
	for (uint64_t i = 0; i < p; i++)
		weft_cancel(ts[i]);
	for (uint64_t i = 0; i < p; i++) {
		intptr_t r = 0;
		if (weft_join(ts[i], &r) < 0 || r < 0)
			rc = -EIO;
	}
	free(ts);
	return rc;
}

/* sleep-lateness: each task sleeps LATE_ROUNDS times and records, for each
 * sleep, how long after its due time it returned.  The tasks start together
 * from a gate and stay until every one is done, so no stack is mapped or
 * unmapped (task start and exit) while sleeps are being timed. */
#define LATE_ROUNDS 10

struct late_shared {
	uint32_t *samples;        /* ns late, saturating at ~4.3 s */
	struct weft_future *go, *end;
	struct weft_wg ready, done;
};

struct late {
	struct late_shared *sh;
	uint64_t i; /* the task's index */
};

static intptr_t late_sleeper(void *arg)
{
	struct late *l = arg;
	struct late_shared *sh = l->sh;
	uint64_t seed = 0x2545f4914f6cdd1dull ^ (l->i + 1) * 0x9e3779b97f4a7c15ull;
	intptr_t v;
	weft_wg_done(&sh->ready);
	if (weft_future_await(sh->go, &v) < 0)
		return -EIO;
	for (int r = 0; r < LATE_ROUNDS; r++) {
		uint64_t d = rand_ms_1_100(&seed);
		uint64_t due = weft_now() + d;
		if (weft_sleep(d) < 0)
			return -EIO;
		uint64_t late = weft_now() - due;
		sh->samples[l->i * LATE_ROUNDS + (uint64_t)r] = late > UINT32_MAX ? UINT32_MAX
									   : (uint32_t)late;
	}
	weft_wg_done(&sh->done);
	return weft_future_await(sh->end, &v) < 0 ? -EIO : 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int bench_lateness(uint64_t n)
{
	uint64_t ns = n * LATE_ROUNDS;
	struct late_shared sh = {.samples = calloc(ns, sizeof(uint32_t)),
				 .go = weft_future_new(), .end = weft_future_new()};
	struct late *ls = calloc(n, sizeof(*ls));
	struct weft_task **ts = calloc(n, sizeof(*ts));
	if (!sh.samples || !sh.go || !sh.end || !ls || !ts)
		return -ENOMEM;
	weft_wg_init(&sh.ready);
	weft_wg_init(&sh.done);
	weft_wg_add(&sh.ready, (int64_t)n);
	weft_wg_add(&sh.done, (int64_t)n);
	struct weft_task **bg = park_sleepers(n_pending);
	if (!bg)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		ls[i] = (struct late){&sh, i};
		if (!(ts[i] = weft_spawn(late_sleeper, &ls[i], NULL)))
			return -ENOMEM;
	}
	int rc = weft_wg_wait(&sh.ready);
	uint64_t t0 = weft_now(), c0 = process_cpu_ns();
	weft_future_resolve(sh.go, 0);
	if (rc == 0)
		rc = weft_wg_wait(&sh.done);
	uint64_t t1 = weft_now(), c1 = process_cpu_ns();
	weft_future_resolve(sh.end, 0);
	for (uint64_t i = 0; i < n; i++) {
		intptr_t r = 0;
		if (weft_join(ts[i], &r) < 0 || r < 0)
			rc = -EIO;
	}
	if (wake_sleepers(bg, n_pending) < 0)
		rc = -EIO;
	uint32_t *smp = sh.samples;
	qsort(smp, ns, sizeof(*smp), cmp_u32);
	/* CPU time of every thread: the sleeps' own cost, and idle polling
	 * (idle_spin_ns) between them. */
	printf("pending=%" PRIu64 " sleepers=%" PRIu64 " sleeps=%" PRIu64
	       " wall_s=%.2f cpu_ns_per_sleep=%.0f\n",
	       n_pending, n, ns, (double)(t1 - t0) / 1e9, per_op(c0, c1, ns));
	printf("p50_ns=%" PRIu32 " p99_ns=%" PRIu32 " p999_ns=%" PRIu32 " max_ns=%" PRIu32 "\n",
	       smp[ns / 2], smp[ns * 99 / 100], smp[ns * 999 / 1000], smp[ns - 1]);
	result = smp[ns * 99 / 100];
	free(smp);
	weft_future_free(sh.go);
	weft_future_free(sh.end);
	free(ls);
	free(ts);
	return rc;
}

static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = -1;
	fclose(f);
	return res * sysconf(_SC_PAGESIZE);
}

static const char *bench_name;

static intptr_t bench_main(void *arg)
{
	(void)arg;
	uint64_t n = n_ops, t0, t1, c0 = 0;
	if (strcmp(bench_name, "yield") == 0) {
		struct weft_task *a = weft_spawn(yielder, &n, NULL);
		struct weft_task *b = weft_spawn(yielder, &n, NULL);
		t0 = weft_now();
		c0 = process_cpu_ns();
		weft_join(a, NULL);
		weft_join(b, NULL);
		t1 = weft_now();
		result = per_op(t0, t1, 2 * n);
		cpu_result = per_op(c0, process_cpu_ns(), 2 * n);
	} else if (strcmp(bench_name, "spawn") == 0) {
		struct weft_task **ts = malloc(n * sizeof(*ts));
		/* Round 0 warms the task objects, stacks and deque, as a
		 * long-running server has them; round 1 is timed. */
		for (int round = 0; round < 2; round++) {
			t0 = weft_now();
			c0 = process_cpu_ns();
			for (uint64_t i = 0; i < n; i++)
				if (!(ts[i] = weft_spawn(empty, NULL, NULL)))
					return -ENOMEM;
			for (uint64_t i = 0; i < n; i++)
				weft_join(ts[i], NULL);
			t1 = weft_now();
		}
		free(ts);
		result = per_op(t0, t1, n);
		cpu_result = per_op(c0, process_cpu_ns(), n);
	} else if (strcmp(bench_name, "sleep-lateness") == 0) {
		return bench_lateness(n);
	} else if (strcmp(bench_name, "scope") == 0) {
		struct weft_scope s;
		t0 = weft_now();
		for (uint64_t i = 0; i < n; i++) {
			weft_scope_deadline(&s, WEFT_SEC);
			if (weft_scope_end(&s))
				return -EIO;
		}
		t1 = weft_now();
		result = per_op(t0, t1, n);
	} else if (strncmp(bench_name, "pingpong", 8) == 0) {
		/* pingpong: two tasks placed by the runtime.  pingpong-cross: pinned to
		 * workers 0 and 1, each side parking its worker while it waits.
		 * pingpong-cross-spin: the same, but each side polls with
		 * try-operations and yields instead of parking.  pingpong-deadline:
		 * pingpong with every receive in a deadline scope.  pingpong-select:
		 * with every receive a select over its channel and a quit channel. */
		bool deadline = strcmp(bench_name, "pingpong-deadline") == 0;
		bool sel = strcmp(bench_name, "pingpong-select") == 0;
		bool cross = strncmp(bench_name, "pingpong-cross", 14) == 0;
		struct pp p = {weft_chan_new(8, 0), weft_chan_new(8, 0), n,
			       strcmp(bench_name, "pingpong-cross-spin") == 0, deadline,
			       sel ? weft_chan_new(8, 0) : NULL, 0, 0};
		struct weft_task **bg = deadline ? park_sleepers(n_pending) : NULL;
		if (deadline && !bg)
			return -ENOMEM;
		if (p.spin) {
			weft_chan_free(p.a);
			weft_chan_free(p.b);
			p.a = weft_chan_new(8, 1);
			p.b = weft_chan_new(8, 1);
		}
		struct weft_spawn_opts on0 = {.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED,
					      .worker = 0};
		struct weft_spawn_opts on1 = on0;
		on1.worker = cross ? 1 : 0;
		struct weft_task *a = weft_spawn(pinger, &p, cross ? &on0 : NULL);
		struct weft_task *b = weft_spawn(ponger, &p, cross ? &on1 : NULL);
		intptr_t ns = 0;
		if (weft_join(a, &ns) < 0 || weft_join(b, NULL) < 0 || ns <= 0)
			return -EIO;
		weft_chan_free(p.a);
		weft_chan_free(p.b);
		if (p.quit)
			weft_chan_free(p.quit);
		if (deadline) {
			const struct weft__timers *tm = weft__timers_here();
			printf("pending=%" PRIu64 " max_round_trip_ns=%" PRIu64 " timers_left=%zu"
			       " sweeps=%" PRIu64 "\n",
			       n_pending, p.max_rt, tm->n, tm->n_sweeps);
			if (wake_sleepers(bg, n_pending) < 0)
				return -EIO;
		}
		result = (double)ns / (double)(2 * n);
		cpu_result = (double)p.cpu_ns / (double)(2 * n);
	} else if (strcmp(bench_name, "forkjoin") == 0) {
		t0 = weft_now();
		c0 = process_cpu_ns();
		for (uint64_t i = 0; i < n; i++)
			if (fib((void *)30) != 832040)
				return -EIO;
		t1 = weft_now();
		result = per_op(t0, t1, n);
		cpu_result = per_op(c0, process_cpu_ns(), n);
	} else if (strcmp(bench_name, "parked") == 0) {
		struct weft_chan *ch = weft_chan_new(8, 0);
		struct weft_task **ts = malloc(n * sizeof(*ts));
		long before = rss_bytes();
		for (uint64_t i = 0; i < n; i++)
			if (!(ts[i] = weft_spawn(blocked, ch, NULL)))
				return -ENOMEM;
		while (atomic_load_explicit(&n_blocked, memory_order_relaxed) < n)
			weft_sleep(WEFT_MSEC);
		long after = rss_bytes();
		weft_chan_close(ch);
		for (uint64_t i = 0; i < n; i++)
			weft_join(ts[i], NULL);
		free(ts);
		weft_chan_free(ch);
		result = (double)(after - before) / (double)n;
	} else {
		return -EINVAL;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: weft-microbench switch|yield|spawn|pingpong|pingpong-cross|"
			"pingpong-cross-spin|forkjoin|parked|inject|timers|sleep-lateness|scope|"
			"pingpong-deadline|pingpong-select [-n N] [-w WORKERS] [--no-spin] [--pending P]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	bench_name = argv[1];
	unsigned workers = 1;
	bool no_spin = false; /* idle workers sleep at once: measures wake-ups */
	n_ops = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n_ops = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc)
			workers = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--no-spin") == 0)
			no_spin = true;
		else if (strcmp(argv[i], "--pending") == 0 && i + 1 < argc)
			n_pending = strtoull(argv[++i], NULL, 10);
		else
			usage();
	}
	if (!n_ops) {
		static const struct {
			const char *name;
			uint64_t n;
		} defaults[] = {{"switch", 20000000}, {"yield", 5000000}, {"spawn", 1000000},
				{"pingpong", 2000000}, {"pingpong-cross", 500000},
				{"pingpong-cross-spin", 2000000},
				{"forkjoin", 3}, {"parked", 100000}, {"inject", 20000},
				{"timers", 1000000}, {"sleep-lateness", 10000},
				{"scope", 20000000}, {"pingpong-deadline", 2000000},
				{"pingpong-select", 2000000}};
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			if (strcmp(bench_name, defaults[i].name) == 0)
				n_ops = defaults[i].n;
		if (!n_ops)
			usage();
	}
	if (strcmp(bench_name, "switch") == 0) {
		if (bench_switch(n_ops) < 0)
			return 1;
	} else if (strcmp(bench_name, "timers") == 0) {
		/* Steps: twice the pending count, at least 2 million. */
		int rc = bench_timers(n_ops, n_ops > 1000000 ? 2 * n_ops : 2000000);
		if (rc < 0) {
			fprintf(stderr, "weft-microbench: timers failed: %s\n", strerror(-rc));
			return 1;
		}
	} else {
		const char *pin = getenv("WEFT_PIN");
		/* Benchmarks hold a worker on purpose (the spawn loop): no stall
		 * warnings. */
		struct weft_opts o = {.workers = workers,
				      .pin_workers = pin && *pin == '1',
				      .stall_warn_ns = WEFT_NEVER,
				      .idle_spin_ns = no_spin ? WEFT_NEVER : 0};
		struct weft_rt *rt;
		int rc = weft_rt_new(&rt, &o);
		if (rc < 0) {
			fprintf(stderr, "weft-microbench: runtime: %s\n", strerror(-rc));
			return 1;
		}
		intptr_t r = -1;
		if (strcmp(bench_name, "inject") == 0) {
			result = bench_inject(rt, n_ops);
			rc = 0;
			r = 0;
		} else {
			rc = weft_rt_run(rt, bench_main, NULL, &r);
		}
		struct weft_rt_stats st;
		weft_rt_stats(rt, &st);
		weft_rt_shutdown(rt, 0);
		if (rc < 0 || r < 0) {
			fprintf(stderr, "weft-microbench: %s failed: %s\n", bench_name,
				strerror(rc < 0 ? -rc : (int)-r));
			return 1;
		}
		printf("workers=%u steals=%" PRIu64 " parks=%" PRIu64 " switches=%" PRIu64 "\n",
		       workers, st.steals, st.parks, st.switches);
		if (strcmp(bench_name, "forkjoin") == 0)
			printf("steals=%" PRIu64 "\n", st.steals);
	}
	if (strcmp(bench_name, "parked") == 0)
		printf("bytes_per_task=%.1f\n", result);
	else if (strcmp(bench_name, "sleep-lateness") == 0)
		printf("p99_ns=%.0f\n", result);
	else {
		if (cpu_result >= 0)
			printf("cpu_ns_per_op=%.2f\n", cpu_result);
		printf("ns_per_op=%.2f\n", result);
	}
	return 0;
}
