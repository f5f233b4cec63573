// SPDX-License-Identifier: MIT
/*
 * stack_test.cc - guarded stacks: an overflow is reported with the task's
 * id, name and stack size, and any other crash in a task with its name and
 * a backtrace; the mprotect fallback (WEFT_STACK_GUARD=mprotect)
 * still guards and costs one extra mapping per stack, where
 * MADV_GUARD_INSTALL costs none; per-spawn stack sizes are honoured.
 */
#include <fstream>
#include <string>
#include <vector>

#include "common.h"

#include "runtime/context.h"

/* The sanitizers' own SIGSEGV handlers would report the overflow before
 * ours: leave faults to weft, whose report these tests check. */
extern "C" const char *__asan_default_options()
{
	return "handle_segv=0:detect_leaks=1";
}
extern "C" const char *__tsan_default_options()
{
	return "handle_segv=0";
}

namespace {

__attribute__((noinline)) int recurse(volatile char *prev, int depth)
{
	volatile char buf[512];
	buf[0] = (char)depth;
	if (prev)
		buf[1] = prev[0];
	return depth > 1000000 ? buf[0] : recurse(buf, depth + 1) + buf[1];
}

void overflow_in_task()
{
	struct weft_opts o = {};
	o.workers = 1;
	weft_main(
		[](void *) -> intptr_t {
			struct weft_spawn_opts so = {};
			so.name = "deep";
			so.stack_size = 32 * 1024;
			struct weft_task *t = weft_spawn(
				[](void *) -> intptr_t { return recurse(nullptr, 0); }, nullptr, &so);
			return weft_join(t, nullptr);
		},
		nullptr, &o);
}

TEST(StackDeathTest, OverflowIsReportedWithTheTaskName)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(overflow_in_task(), "weft: stack overflow in task [0-9]+ \"deep\" \\(stack 32768 bytes\\)");
}

TEST(StackDeathTest, MprotectFallbackStillGuards)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			setenv("WEFT_STACK_GUARD", "mprotect", 1);
			overflow_in_task();
		},
		"weft: stack overflow in task [0-9]+ \"deep\"");
}

size_t count_maps()
{
	std::ifstream f("/proc/self/maps");
	std::string line;
	size_t n = 0;
	while (std::getline(f, line))
		n++;
	return n;
}

/* Each guard mode's cost in VMAs, measured in a child so the mode can be
 * chosen before the first stack exists. */
void maps_per_stack(const char *mode, double lo, double hi)
{

	setenv("WEFT_STACK_GUARD", mode, 1);
	const int n = 2000;
	std::vector<struct weft__stack *> v;
	size_t before = count_maps();
	for (int i = 0; i < n; i++)
		v.push_back(weft__stack_get(nullptr, 64 * 1024));
	double per = (double)(count_maps() - before) / n;
	for (auto s : v)
		weft__stack_put(nullptr, s);
	fprintf(stderr, "mode=%s guard=%d maps_per_stack=%.3f\n", mode, weft__stack_guard_mode(),
		per);
	exit(per >= lo && per <= hi ? 0 : 1);
}

TEST(StackDeathTest, GuardInstallMergesMappingsWhereSupported)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	if (weft__stack_guard_mode() == 1) {
		/* Probe: does this kernel take MADV_GUARD_INSTALL? */
		struct weft__stack *s = weft__stack_get(nullptr, 64 * 1024);
		weft__stack_put(nullptr, s);
	}
	if (weft__stack_guard_mode() != 1)
		GTEST_SKIP() << "kernel lacks MADV_GUARD_INSTALL (6.13+): mprotect fallback in use";
#ifdef WEFT_SANITIZED
	GTEST_SKIP() << "sanitizer shadow mappings make VMA counts meaningless";
#endif
	EXPECT_EXIT(maps_per_stack("madvise", 0.0, 0.1), testing::ExitedWithCode(0),
		    "maps_per_stack");
}

TEST(StackDeathTest, MprotectFallbackCostsTwoMappingsPerStack)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
#ifdef WEFT_SANITIZED
	GTEST_SKIP() << "sanitizer shadow mappings make VMA counts meaningless";
#endif
	EXPECT_EXIT(maps_per_stack("mprotect", 1.9, 2.1), testing::ExitedWithCode(0),
		    "guard=0 maps_per_stack");
}

void crash_in_task()
{
	struct weft_opts o = {};
	o.workers = 1;
	weft_main(
		[](void *) -> intptr_t {
			struct weft_spawn_opts so = {};
			so.name = "clumsy";
			struct weft_task *t = weft_spawn(
				[](void *) -> intptr_t {
					volatile int *volatile p = nullptr;
					return *p;
				},
				nullptr, &so);
			return weft_join(t, nullptr);
		},
		nullptr, &o);
}

TEST(StackDeathTest, CrashInATaskNamesItAndPrintsABacktrace)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(crash_in_task(),
		     "weft: Segmentation fault at address \\(nil\\) in task [0-9]+ \"clumsy\"; "
		     "backtrace:");
}

TEST(StackTest, PerSpawnStackSizeIsHonoured)
{
	run_in_weft(1, [] {
		struct weft_spawn_opts so = {};
		so.stack_size = 1024 * 1024;
		struct weft_task *t = weft_spawn(
			[](void *) -> intptr_t {
				/* 600 KiB on the stack: would overflow 64 KiB. */
				volatile char big[600 * 1024];
				big[0] = 1;
				big[sizeof(big) - 1] = 2;
				return big[0] + big[sizeof(big) - 1];
			},
			nullptr, &so);
		intptr_t r;
		EXPECT_EQ(weft_join(t, &r), 0);
		EXPECT_EQ(r, 3);
		return (intptr_t)0;
	});
}

} // namespace
