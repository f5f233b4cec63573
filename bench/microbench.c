// SPDX-License-Identifier: MIT
/*
 * microbench.c - weft-microbench: one microbenchmark of the runtime core,
 * run alone, for bench/compare.py and any outside harness.
 *
 *   weft-microbench NAME [-n N] [-w WORKERS] [--no-spin]
 *
 * NAME: switch, yield, spawn, pingpong, pingpong-cross, pingpong-cross-spin,
 * forkjoin, parked, inject (ns from an outside spawn to the task's start
 * while the worker is busy with yielding tasks).
 * The last line printed is ns_per_op=<value> (bytes_per_task=<value> for
 * parked); the exit status is non-zero on failure.  The CPU affinity the
 * process was started with is respected (workers are not pinned unless
 * WEFT_PIN=1).  --no-spin makes idle workers sleep at once instead of
 * polling first, so every cross-worker hand-off pays for a wake-up.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "weft.h"

static uint64_t n_ops;
static double result;
static _Atomic uint64_t n_blocked;

static double per_op(uint64_t t0, uint64_t t1, uint64_t n)
{
	return (double)(t1 - t0) / (double)n;
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
	uint64_t t0 = weft_now();
	for (uint64_t i = 0; i < n / 2; i++)
		weft__ctx_switch(&main_ctx, &co_ctx, NULL, false);
	uint64_t t1 = weft_now();
	result = per_op(t0, t1, n / 2 * 2);
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
	uint64_t t0 = weft_now();
	for (uint64_t i = 0; i < p->n; i++)
		if (send(p, p->a, &v) < 0 || recv(p, p->b, &v) < 0)
			return -1;
	return (intptr_t)(weft_now() - t0);
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
	uint64_t n = n_ops, t0, t1;
	if (strcmp(bench_name, "yield") == 0) {
		struct weft_task *a = weft_spawn(yielder, &n, NULL);
		struct weft_task *b = weft_spawn(yielder, &n, NULL);
		t0 = weft_now();
		weft_join(a, NULL);
		weft_join(b, NULL);
		t1 = weft_now();
		result = per_op(t0, t1, 2 * n);
	} else if (strcmp(bench_name, "spawn") == 0) {
		struct weft_task **ts = malloc(n * sizeof(*ts));
		/* Round 0 warms the task objects, stacks and deque, as a
		 * long-running server has them; round 1 is timed. */
		for (int round = 0; round < 2; round++) {
			t0 = weft_now();
			for (uint64_t i = 0; i < n; i++)
				if (!(ts[i] = weft_spawn(empty, NULL, NULL)))
					return -ENOMEM;
			for (uint64_t i = 0; i < n; i++)
				weft_join(ts[i], NULL);
			t1 = weft_now();
		}
		free(ts);
		result = per_op(t0, t1, n);
	} else if (strncmp(bench_name, "pingpong", 8) == 0) {
		/* pingpong: two tasks placed by the runtime.  pingpong-cross: pinned to
		 * workers 0 and 1, each side parking its worker while it waits.
		 * pingpong-cross-spin: the same, but each side polls with
		 * try-operations and yields instead of parking. */
		bool cross = strcmp(bench_name, "pingpong") != 0;
		struct pp p = {weft_chan_new(8, 0), weft_chan_new(8, 0), n,
			       strcmp(bench_name, "pingpong-cross-spin") == 0};
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
		result = (double)ns / (double)(2 * n);
	} else if (strcmp(bench_name, "forkjoin") == 0) {
		t0 = weft_now();
		for (uint64_t i = 0; i < n; i++)
			if (fib((void *)30) != 832040)
				return -EIO;
		t1 = weft_now();
		result = per_op(t0, t1, n);
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
			"pingpong-cross-spin|forkjoin|parked|inject [-n N] [-w WORKERS] "
			"[--no-spin]\n");
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
				{"forkjoin", 3}, {"parked", 100000}, {"inject", 20000}};
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			if (strcmp(bench_name, defaults[i].name) == 0)
				n_ops = defaults[i].n;
		if (!n_ops)
			usage();
	}
	if (strcmp(bench_name, "switch") == 0) {
		if (bench_switch(n_ops) < 0)
			return 1;
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
	else
		printf("ns_per_op=%.2f\n", result);
	return 0;
}
