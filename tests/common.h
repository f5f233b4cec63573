// SPDX-License-Identifier: MIT
/*
 * tests/common.h - what every test shares: the count scale for sanitizer
 * builds and a way to run a test body as the main task of a fresh runtime.
 */
#ifndef WEFT_TESTS_COMMON_H
#define WEFT_TESTS_COMMON_H

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>

#include "runtime/context.h"
#include "weft.h"

/* Counts in the terms (a million tasks...) are for normal builds;
 * sanitizer builds run the same tests at 1/100 of them. */
#ifdef WEFT_SANITIZED
#define WEFT_TEST_SCALE(n) ((n) / 100)
#else
#define WEFT_TEST_SCALE(n) (n)
#endif

/*
 * How many tasks may be parked at once here: want, or with the mprotect
 * guards (kernels before 6.13, or WEFT_STACK_GUARD=mprotect), which cost two
 * mappings a stack, what vm.max_map_count holds with room to spare
 * (README.md, "Environment").  Past that a task cannot get its stack and
 * ends with -ENOMEM before it runs.
 */
inline size_t weft_test_parkable(size_t want)
{
	if (weft__stack_guard_mode() == 1) {
		struct weft__stack *s = weft__stack_get(nullptr, 64 * 1024);
		weft__stack_put(nullptr, s); /* an older kernel turns the mode to 0 */
	}
	if (weft__stack_guard_mode() == 1)
		return want;
	long maps = 65530; /* the default */
	std::ifstream f("/proc/sys/vm/max_map_count");
	if (!(f >> maps))
		maps = 65530;
	size_t fit = (size_t)(maps - 2000) / 2 * 9 / 10;
	if (fit < want)
		fprintf(stderr, "mprotect guards: %zu tasks, what vm.max_map_count %ld holds\n", fit,
			maps);
	return std::min(want, fit);
}

/* Runs body as the main task of a runtime with `workers` workers, then shuts
 * the runtime down and checks that no task was left behind. */
inline intptr_t run_in_weft(unsigned workers, std::function<intptr_t()> body,
			    size_t stack_size = 0)
{
	struct weft_opts o = {};
	o.workers = workers;
	o.stack_size = stack_size;
	struct weft_rt *rt = nullptr;
	int rc = weft_rt_new(&rt, &o);
	EXPECT_EQ(rc, 0);
	if (rc < 0)
		return rc;
	intptr_t result = -1;
	EXPECT_EQ(weft_rt_run(
			  rt,
			  [](void *arg) -> intptr_t {
				  return (*static_cast<std::function<intptr_t()> *>(arg))();
			  },
			  &body, &result),
		  0);
	struct weft_rt_stats st;
	weft_rt_stats(rt, &st);
	EXPECT_EQ(weft_rt_shutdown(rt, 2 * WEFT_SEC), 0) << "tasks left behind at shutdown";
	return result;
}

/* Spawns f as a task; flags are WEFT_SPAWN_*. */
inline struct weft_task *go(std::function<intptr_t()> f, unsigned flags = 0)
{
	struct weft_spawn_opts o = {};
	o.flags = flags;
	return weft_spawn(
		[](void *a) -> intptr_t {
			std::unique_ptr<std::function<intptr_t()>> fn(
				static_cast<std::function<intptr_t()> *>(a));
			return (*fn)();
		},
		new std::function<intptr_t()>(std::move(f)), &o);
}

inline intptr_t join(struct weft_task *t)
{
	intptr_t r = -1;
	EXPECT_EQ(weft_join(t, &r), 0);
	return r;
}

/* Runs f(arg) in a task pinned to worker `worker` and waits for it. */
inline intptr_t on_worker(unsigned worker, weft_fn f, void *arg)
{
	struct weft_spawn_opts o = {};
	o.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
	o.worker = worker;
	struct weft_task *t = weft_spawn(f, arg, &o);
	return t ? join(t) : -ENOMEM;
}


/*
 * Spawns f pinned to this worker and returns once it has parked.  f must
 * count itself in `arrived` just before its blocking call.  A pinned task
 * runs only on our worker, where we wait in the yield list: so when we see
 * the count and run again, f has run up to its park.
 */
inline struct weft_task *go_and_let_park(std::atomic<int> &arrived, std::function<intptr_t()> f)
{
	int want = arrived.load() + 1;
	struct weft_task *t = go(std::move(f), WEFT_SPAWN_PINNED);
	while (arrived.load() < want)
		weft_yield();
	return t;
}

#endif
