// SPDX-License-Identifier: MIT
/*
 * stack_test.cc - guarded stacks: an overflow is reported with the task's
 * id, name and stack size, on a stack of its own size or a pooled one from a
 * slab, and any other crash in a task with its name and a backtrace; the
 * mprotect fallback (WEFT_STACK_GUARD=mprotect) still guards and costs one
 * extra mapping per stack, where MADV_GUARD_INSTALL costs none, also when
 * a kernel without process_madvise has it install one guard at a time
 * (simulated with seccomp); per-spawn
 * stack sizes are honoured.  Stacks past a pool's cap give their pages back
 * but keep their guards; a slab is unmapped once all its stacks are free,
 * beyond the few empty ones a depot keeps; stacks move between pools on two
 * threads through their shared depot.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
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

/* stack_size 0: the runtime's default, a pooled stack from a slab; other
 * sizes get a mapping of their own. */
void overflow_in_task(size_t stack_size)
{
	struct weft_opts o = {};
	o.workers = 1;
	static size_t size;
	size = stack_size;
	weft_main(
		[](void *) -> intptr_t {
			struct weft_spawn_opts so = {};
			so.name = "deep";
			so.stack_size = size;
			struct weft_task *t = weft_spawn(
				[](void *) -> intptr_t { return recurse(nullptr, 0); }, nullptr, &so);
			return weft_join(t, nullptr);
		},
		nullptr, &o);
}

TEST(StackDeathTest, OverflowIsReportedWithTheTaskName)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(overflow_in_task(32 * 1024),
		     "weft: stack overflow in task [0-9]+ \"deep\" \\(stack 32768 bytes\\)");
}

TEST(StackDeathTest, OverflowOfAPooledStackIsReported)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(overflow_in_task(0),
		     "weft: stack overflow in task [0-9]+ \"deep\" \\(stack 65536 bytes\\)");
}

TEST(StackDeathTest, MprotectFallbackStillGuards)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			setenv("WEFT_STACK_GUARD", "mprotect", 1);
			overflow_in_task(32 * 1024);
		},
		"weft: stack overflow in task [0-9]+ \"deep\"");
	EXPECT_DEATH(
		{
			setenv("WEFT_STACK_GUARD", "mprotect", 1);
			overflow_in_task(0);
		},
		"weft: stack overflow in task [0-9]+ \"deep\" \\(stack 65536 bytes\\)");
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

/* A depot of 64 KiB stacks and one pool on it, as a runtime has per worker. */
struct Depot {
	static constexpr size_t size = 64 * 1024;
	struct weft__stack_depot d;
	struct weft__stack_pool p = {};
	explicit Depot(unsigned max)
	{
		weft__stack_depot_init(&d, size);
		p.max = max;
		p.size = size;
		p.depot = &d;
	}
	~Depot()
	{
		weft__stack_pool_drain(&p);
		weft__stack_depot_destroy(&d);
	}
};

/* Each guard mode's cost in VMAs, measured in a child so the mode can be
 * chosen before the first stack exists; stacks of their own (pool NULL) or
 * from a pool's slabs. */
void maps_per_stack(const char *mode, bool pooled, double lo, double hi)
{

	setenv("WEFT_STACK_GUARD", mode, 1);
	const int n = 2000;
	Depot t(2 * n);
	std::vector<struct weft__stack *> v;
	size_t before = count_maps();
	for (int i = 0; i < n; i++)
		v.push_back(weft__stack_get(pooled ? &t.p : nullptr, Depot::size));
	double per = (double)(count_maps() - before) / n;
	for (auto s : v)
		weft__stack_put(pooled ? &t.p : nullptr, s);
	fprintf(stderr, "mode=%s guard=%d maps_per_stack=%.3f\n", mode, weft__stack_guard_mode(),
		per);
	exit(per >= lo && per <= hi ? 0 : 1);
}

/* Whether this kernel takes MADV_GUARD_INSTALL: the first stack tells
 * (an older kernel turns the mode to mprotect). */
bool guard_install_works()
{
	if (weft__stack_guard_mode() == 1) {
		struct weft__stack *s = weft__stack_get(nullptr, 64 * 1024);
		weft__stack_put(nullptr, s);
	}
	return weft__stack_guard_mode() == 1;
}

TEST(StackDeathTest, GuardInstallMergesMappingsWhereSupported)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	if (!guard_install_works())
		GTEST_SKIP() << "kernel lacks MADV_GUARD_INSTALL (6.13+): mprotect fallback in use";
#ifdef WEFT_SANITIZED
	GTEST_SKIP() << "sanitizer shadow mappings make VMA counts meaningless";
#endif
	EXPECT_EXIT(maps_per_stack("madvise", false, 0.0, 0.1), testing::ExitedWithCode(0),
		    "maps_per_stack");
	EXPECT_EXIT(maps_per_stack("madvise", true, 0.0, 0.1), testing::ExitedWithCode(0),
		    "maps_per_stack");
}

TEST(StackDeathTest, MprotectFallbackCostsTwoMappingsPerStack)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
#ifdef WEFT_SANITIZED
	GTEST_SKIP() << "sanitizer shadow mappings make VMA counts meaningless";
#endif
	EXPECT_EXIT(maps_per_stack("mprotect", false, 1.9, 2.1), testing::ExitedWithCode(0),
		    "guard=0 maps_per_stack");
	/* Two per mapped stack: 2,000 stacks take 32 slabs of 64. */
	EXPECT_EXIT(maps_per_stack("mprotect", true, 1.9, 2.1), testing::ExitedWithCode(0),
		    "guard=0 maps_per_stack");
}

/* What a kernel with MADV_GUARD_INSTALL but without process_madvise on
 * its own process (6.13, 6.14) does: the call fails with ENOSYS, here by a
 * seccomp filter on this (death test) process.  Stacks are then guarded one
 * madvise each, and must be as well guarded. */
void without_process_madvise()
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_madvise, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("seccomp");
		exit(2);
	}
	if (syscall(SYS_process_madvise, -1, nullptr, 0, 0, 0u) != -1 || errno != ENOSYS)
		exit(3);
}

TEST(StackDeathTest, WithoutProcessMadviseEachStackIsGuardedOnItsOwn)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	if (!guard_install_works())
		GTEST_SKIP() << "kernel lacks MADV_GUARD_INSTALL (6.13+): mprotect fallback in use";
	EXPECT_DEATH(
		{
			without_process_madvise();
			overflow_in_task(0);
		},
		"weft: stack overflow in task [0-9]+ \"deep\" \\(stack 65536 bytes\\)");
#ifndef WEFT_SANITIZED
	/* Still no mapping split: the guards are MADV_GUARD_INSTALL's. */
	EXPECT_EXIT(
		{
			without_process_madvise();
			maps_per_stack("madvise", true, 0.0, 0.1);
		},
		testing::ExitedWithCode(0), "guard=1 maps_per_stack");
#endif
}

/* Pages of [lo, lo + len) in memory; 0 where nothing is mapped. */
size_t resident_pages(void *lo, size_t len)
{
	size_t page = weft__page_size(), n = len / page, r = 0;
	std::vector<unsigned char> v(n);
	if (mincore(lo, len, v.data()) < 0)
		return 0;
	for (unsigned char c : v)
		r += c & 1;
	return r;
}

size_t resident_stack_pages(struct weft__stack *s)
{
	return resident_pages((char *)s->base + weft__page_size(), s->size);
}

TEST(StackTest, StacksPastThePoolGiveTheirPagesBack)
{
	Depot t(8);
	std::vector<struct weft__stack *> v;
	for (int i = 0; i < 100; i++) {
		struct weft__stack *s = weft__stack_get(&t.p, Depot::size);
		ASSERT_NE(s, nullptr);
		memset((char *)weft__stack_top(s) - 8192, 1, 8192);
		v.push_back(s);
	}
	size_t touched = 0;
	for (auto s : v)
		touched += resident_stack_pages(s);
	EXPECT_EQ(touched, 200u);
	for (auto s : v)
		weft__stack_put(&t.p, s);
	/* The pool keeps the newest half of its cap after it overflows. */
	EXPECT_LE(t.p.n, 8u);
	EXPECT_GE(t.p.n, 4u);
	size_t pooled = 0, kept = 0;
	for (struct weft__stack *s = t.p.head; s; s = s->next, pooled++)
		kept += resident_stack_pages(s);
	EXPECT_EQ(pooled, t.p.n);
	EXPECT_EQ(kept, 2 * pooled) << "pooled stacks keep their pages";
	size_t all = 0;
	for (auto s : v)
		all += resident_stack_pages(s);
	EXPECT_EQ(all, kept) << "stacks in the depot gave their pages back";
}

/* A stack back from the depot reads as zeros (its pages were released), and
 * its guard still faults. */
void reuse_then_touch_guard(const char *mode)
{
	setenv("WEFT_STACK_GUARD", mode, 1);
	Depot t(0); /* no pooling: every put goes to the depot */
	struct weft__stack *s = weft__stack_get(&t.p, Depot::size);
	char *top = (char *)weft__stack_top(s);
	top[-1] = 42;
	weft__stack_put(&t.p, s);
	if (weft__stack_get(&t.p, Depot::size) != s || top[-1] != 0)
		exit(3);
	fprintf(stderr, "guard=%d touching the guard\n", weft__stack_guard_mode());
	*(volatile char *)s->base = 1;
	exit(0);
}

TEST(StackDeathTest, ReleasedStackKeepsItsGuard)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_EXIT(reuse_then_touch_guard("madvise"), testing::KilledBySignal(SIGSEGV),
		    "touching the guard");
	EXPECT_EXIT(reuse_then_touch_guard("mprotect"), testing::KilledBySignal(SIGSEGV),
		    "guard=0 touching the guard");
}

TEST(StackTest, SlabIsUnmappedOnceAllItsStacksAreFree)
{
	const unsigned slabs = 10, keep = WEFT__STACK_DEPOT_KEEP;
	Depot t(0);
	std::vector<struct weft__stack *> v;
	for (unsigned i = 0; i < slabs * WEFT__STACK_SLAB_MAX; i++) {
		v.push_back(weft__stack_get(&t.p, Depot::size));
		ASSERT_NE(v.back(), nullptr);
	}
	EXPECT_EQ(t.d.nslabs, slabs);
	/* One stack in use holds its slab; of the nine emptied, the depot
	 * keeps `keep`.  (An unmapped slab's descriptors are freed too.) */
	void *last = v.back()->base;
	for (size_t i = 1; i < v.size(); i++)
		weft__stack_put(&t.p, v[i]);
	EXPECT_EQ(t.d.nslabs, 1 + keep);
	EXPECT_EQ(t.d.nempty, keep);
	EXPECT_EQ(mincore(last, weft__page_size(), std::vector<unsigned char>(1).data()), -1);
	EXPECT_EQ(errno, ENOMEM) << "the slab emptied last is unmapped";
	weft__stack_put(&t.p, v[0]);
	EXPECT_EQ(t.d.nslabs, keep);
}

/* As when tasks start on one worker and end on another: one thread takes
 * stacks from its pool and hands them over, the other puts them into its
 * own pool, whose surplus reaches the first through the depot. */
TEST(StackTest, StacksMoveBetweenPoolsThroughTheDepot)
{
	const int n = 20000;
	Depot a(16);
	struct weft__stack_pool b = a.p;
	std::mutex lock;
	std::vector<std::pair<struct weft__stack *, int>> handed;
	std::thread giver([&] {
		for (int i = 0; i < n; i++) {
			struct weft__stack *s = weft__stack_get(&a.p, Depot::size);
			if (s)
				memcpy((char *)weft__stack_top(s) - sizeof(i), &i, sizeof(i));
			std::lock_guard<std::mutex> g(lock);
			handed.emplace_back(s, i);
			if (!s)
				return; /* NULL ends the hand-over */
		}
	});
	int got = 0, wrong = 0;
	while (got < n) {
		std::vector<std::pair<struct weft__stack *, int>> take;
		{
			std::lock_guard<std::mutex> g(lock);
			take.swap(handed);
		}
		for (auto [s, i] : take) {
			if (!s) {
				ADD_FAILURE() << "no stack for the " << i << "th get";
				got = n;
				break;
			}
			int seen;
			memcpy(&seen, (char *)weft__stack_top(s) - sizeof(seen), sizeof(seen));
			wrong += seen != i;
			weft__stack_put(&b, s);
			got++;
		}
	}
	giver.join();
	EXPECT_EQ(wrong, 0) << "a stack was handed out while another held it";
	weft__stack_pool_drain(&b);
	weft__stack_pool_drain(&a.p);
	EXPECT_LE(a.d.nslabs, WEFT__STACK_DEPOT_KEEP) << "every slab was empty";
	EXPECT_TRUE(LIST_EMPTY(&a.d.partial));
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
