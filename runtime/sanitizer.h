// SPDX-License-Identifier: MIT
/*
 * runtime/sanitizer.h - what ASan, TSan and Valgrind must be told about our
 * context switches, and the one inline function that performs a switch.
 *
 * The tools assume one stack per thread.  We tell ASan where the next stack
 * is before each switch (__sanitizer_start_switch_fiber) and that we arrived
 * after it (__sanitizer_finish_switch_fiber), TSan which fiber runs next
 * (__tsan_switch_to_fiber), and Valgrind which ranges are stacks.  In normal
 * builds all of it compiles to nothing and weft__ctx_switch is one jump into
 * weft__switch (weft__switch_jmp).
 */
#ifndef WEFT_RUNTIME_SANITIZER_H
#define WEFT_RUNTIME_SANITIZER_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(WEFT__ASAN)
#define WEFT__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(WEFT__TSAN)
#define WEFT__TSAN 1
#endif

#ifdef WEFT__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define WEFT__ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define WEFT__ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifdef WEFT__TSAN
#include <sanitizer/tsan_interface.h>
/* Ordering that travels through the kernel (an eventfd write, a CQE) is
 * invisible to TSan: the sender releases, the receiver acquires, on the
 * same address. */
#define WEFT__TSAN_RELEASE(a) __tsan_release((void *)(a))
#define WEFT__TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
/* Reads that may race with a writer and are then thrown away (a seqlock's
 * reader): TSan's dynamic annotations, which its runtime provides. */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define WEFT__TSAN_IGNORE_READS_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define WEFT__TSAN_IGNORE_READS_END() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define WEFT__TSAN_RELEASE(a) ((void)(a))
#define WEFT__TSAN_ACQUIRE(a) ((void)(a))
#define WEFT__TSAN_IGNORE_READS_BEGIN() ((void)0)
#define WEFT__TSAN_IGNORE_READS_END() ((void)0)
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEFT__VALGRIND_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define WEFT__VALGRIND_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#endif
#endif
#ifndef WEFT__VALGRIND_STACK_REGISTER
#define WEFT__VALGRIND_STACK_REGISTER(lo, hi) ((void)(lo), (void)(hi), 0u)
#define WEFT__VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#ifdef __cplusplus
extern "C"
#endif
void *weft__switch(void **save_sp, void *next_sp, void *arg);

/*
 * Enters weft__switch by jump, not call.  A call pushes an entry on the CPU's
 * return-stack predictor that weft__switch, which leaves by an indirect jump
 * into another context, never pops; entering by jump keeps the predictor's
 * stack balanced, so the returns the resumed context makes next are
 * predicted as they would be without a switch.  Everything but the
 * callee-saved registers is clobbered: the other context ran arbitrary code.
 */
#if defined(__x86_64__)
/* The 128 bytes skipped first protect this function's red zone from the
 * pushed return address. */
static inline __attribute__((always_inline)) void *
weft__switch_jmp(void **save_sp, void *next_sp, void *arg)
{
	register void **rdi __asm__("rdi") = save_sp;
	register void *rsi __asm__("rsi") = next_sp;
	register void *rdx __asm__("rdx") = arg;
	void *ret;
	__asm__ volatile("lea -128(%%rsp), %%rsp\n\t"
			 "lea 1f(%%rip), %%rax\n\t"
			 "push %%rax\n\t"
			 "jmp weft__switch\n"
			 "1:\n\t"
			 "lea 128(%%rsp), %%rsp"
			 : "=a"(ret), "+r"(rdi), "+r"(rsi), "+r"(rdx)
			 :
			 : "rcx", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1",
			   "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
			   "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st",
			   "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)"
#ifdef __AVX512F__
			   , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
			   "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29",
			   "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#endif
	);
	return ret;
}
#elif defined(__aarch64__)
/* The resume address goes in x30 by hand, where a `bl` would put it; no red
 * zone to step over (AAPCS64 has none).  v8-v15 are not listed: the switch
 * keeps all 128 bits of them (switch_aarch64.S).  With BTI the switch's
 * `br x30` needs a landing pad where it resumes us: `bti j`. */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define WEFT__BTI_J "\n\thint #36"
#else
#define WEFT__BTI_J ""
#endif
static inline __attribute__((always_inline)) void *
weft__switch_jmp(void **save_sp, void *next_sp, void *arg)
{
	register void *x0 __asm__("x0") = save_sp;
	register void *x1 __asm__("x1") = next_sp;
	register void *x2 __asm__("x2") = arg;
	__asm__ volatile("adr x30, 1f\n\t"
			 "b weft__switch\n"
			 "1:" WEFT__BTI_J
			 : "+r"(x0), "+r"(x1), "+r"(x2)
			 :
			 : "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
			   "x14", "x15", "x16", "x17", "x18", "x30", "memory", "cc", "v0", "v1",
			   "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v20",
			   "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30",
			   "v31");
	return x0;
}
#else
#error "weft__switch_jmp: no context switch for this architecture"
#endif

/* A place a context can be suspended in: a task's, or a worker thread's own
 * stack.  The tool fields exist only in sanitizer builds. */
struct weft__ctx {
	void *sp;
#if defined(WEFT__ASAN) || defined(WEFT__TSAN)
	const void *stack_lo;
	size_t stack_size;
	void *asan_fake;
	void *tsan_fiber;
#endif
};

/*
 * Saves the running context in *from and resumes *to, handing it arg; returns
 * the arg of whoever resumes *from later.  from_dies: *from will never be
 * resumed (a finished task), so ASan may drop its fake stack.
 */
static inline __attribute__((always_inline)) void *
weft__ctx_switch(struct weft__ctx *from, struct weft__ctx *to, void *arg, bool from_dies)
{
#ifdef WEFT__ASAN
	__sanitizer_start_switch_fiber(from_dies ? NULL : &from->asan_fake, to->stack_lo,
				       to->stack_size);
#endif
#ifdef WEFT__TSAN
	__tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
	(void)from_dies;
	void *r = weft__switch_jmp(&from->sp, to->sp, arg);
#ifdef WEFT__ASAN
	__sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
	return r;
}

#endif
