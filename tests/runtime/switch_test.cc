// SPDX-License-Identifier: MIT
/*
 * switch_test.cc - the context switch keeps what the ABI says a callee must
 * keep: rbx, rbp, r12-r15, the MXCSR control bits and the x87 control word
 * (also when only the latter differs, which the switch loads only then);
 * and a task's arg and FP state start out right.
 */
#include <cfenv>

#include "common.h"


#include "runtime/context.h"

namespace {

struct weft__ctx a_ctx, b_ctx;

/* The other side clobbers every callee-saved register and the rounding
 * mode, then switches back. */
[[noreturn]] void clobberer(void *, void *)
{
	weft__ctx_entered();
	for (;;) {
		fesetround(FE_DOWNWARD);
		__asm__ volatile("mov $0xdead1, %%rbx\n\t"
				 "mov $0xdead2, %%r12\n\t"
				 "mov $0xdead3, %%r13\n\t"
				 "mov $0xdead4, %%r14\n\t"
				 "mov $0xdead5, %%r15\n\t" ::
					 : "rbx", "r12", "r13", "r14", "r15");
		weft__ctx_switch(&b_ctx, &a_ctx, nullptr, false);
	}
}

TEST(SwitchTest, KeepsCalleeSavedRegisters)
{
	struct weft__stack *s = weft__stack_get(nullptr, 64 * 1024);
	ASSERT_NE(s, nullptr);
	weft__ctx_on_thread(&a_ctx);
	weft__ctx_on_stack(&b_ctx, s, clobberer, nullptr, weft__fp_ctl_read());
	uint64_t rbx, r12, r13, r14, r15;
	/* The raw switch below bypasses weft__ctx_switch: tell the tools. */
#ifdef WEFT__ASAN
	__sanitizer_start_switch_fiber(&a_ctx.asan_fake, b_ctx.stack_lo, b_ctx.stack_size);
#endif
#ifdef WEFT__TSAN
	__tsan_switch_to_fiber(b_ctx.tsan_fiber, 0);
#endif
	/* Load known values, switch away and back through the clobberer, and
	 * read the registers straight after: the compiler may not reload them,
	 * since they are callee-saved across the call. */
	__asm__ volatile("mov $0x1111, %%rbx\n\t"
			 "mov $0x1212, %%r12\n\t"
			 "mov $0x1313, %%r13\n\t"
			 "mov $0x1414, %%r14\n\t"
			 "mov $0x1515, %%r15\n\t"
			 "lea %[a], %%rdi\n\t"
			 "mov %[bsp], %%rsi\n\t"
			 "xor %%edx, %%edx\n\t"
			 "call weft__switch\n\t"
			 "mov %%rbx, %[rbx]\n\t"
			 "mov %%r12, %[r12]\n\t"
			 "mov %%r13, %[r13]\n\t"
			 "mov %%r14, %[r14]\n\t"
			 "mov %%r15, %[r15]\n\t"
			 : [rbx] "=m"(rbx), [r12] "=m"(r12), [r13] "=m"(r13), [r14] "=m"(r14),
			   [r15] "=m"(r15), [a] "+m"(a_ctx.sp)
			 : [bsp] "m"(b_ctx.sp)
			 : "rbx", "r12", "r13", "r14", "r15", "rax", "rcx", "rdx", "rsi", "rdi",
			   "r8", "r9", "r10", "r11", "memory", "cc");
#ifdef WEFT__ASAN
	__sanitizer_finish_switch_fiber(a_ctx.asan_fake, nullptr, nullptr);
#endif
	EXPECT_EQ(rbx, 0x1111u);
	EXPECT_EQ(r12, 0x1212u);
	EXPECT_EQ(r13, 0x1313u);
	EXPECT_EQ(r14, 0x1414u);
	EXPECT_EQ(r15, 0x1515u);
	weft__ctx_release(&b_ctx);
	weft__stack_put(nullptr, s);
}

TEST(SwitchTest, KeepsFPControlState)
{
	struct weft__stack *s = weft__stack_get(nullptr, 64 * 1024);
	ASSERT_NE(s, nullptr);
	int saved = fegetround();
	fesetround(FE_UPWARD);
	weft__ctx_on_thread(&a_ctx);
	weft__ctx_on_stack(&b_ctx, s, clobberer, nullptr, weft__fp_ctl_read());
	weft__ctx_switch(&a_ctx, &b_ctx, nullptr, false);
	/* fegetround reads MXCSR; check the x87 word too. */
	EXPECT_EQ(fegetround(), FE_UPWARD);
	uint16_t cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	EXPECT_EQ(cw & 0x0c00, 0x0800) << "x87 rounding control is not upward";
	fesetround(saved);
	weft__ctx_release(&b_ctx);
	weft__stack_put(nullptr, s);
}

uint16_t x87_cw()
{
	uint16_t cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return cw;
}

void x87_set_cw(uint16_t cw)
{
	__asm__ volatile("fldcw %0" ::"m"(cw));
}

/* Precision control 00 (single): a field fesetround never touches, so the
 * two sides below differ in the x87 control word alone, with MXCSR equal.
 * The switch loads the control word only when it differs from the one in
 * force; this is the case where it must. */
constexpr uint16_t kSinglePrecision = 0x0300;
uint16_t b_seen_cw;

[[noreturn]] void x87_changer(void *, void *)
{
	weft__ctx_entered();
	x87_set_cw(x87_cw() & ~kSinglePrecision);
	for (;;) {
		weft__ctx_switch(&b_ctx, &a_ctx, nullptr, false);
		b_seen_cw = x87_cw();
	}
}

TEST(SwitchTest, KeepsTheX87ControlWordAloneWhenMXCSRIsEqual)
{
	struct weft__stack *s = weft__stack_get(nullptr, 64 * 1024);
	ASSERT_NE(s, nullptr);
	uint16_t mine = x87_cw();
	ASSERT_EQ(mine & kSinglePrecision, kSinglePrecision) << "expected double-extended precision";
	weft__ctx_on_thread(&a_ctx);
	weft__ctx_on_stack(&b_ctx, s, x87_changer, nullptr, weft__fp_ctl_read());
	for (int i = 0; i < 3; i++) {
		weft__ctx_switch(&a_ctx, &b_ctx, nullptr, false);
		EXPECT_EQ(x87_cw(), mine) << "round " << i;
		if (i > 0) {
			EXPECT_EQ(b_seen_cw, mine & ~kSinglePrecision) << "round " << i;
		}
	}
	weft__ctx_release(&b_ctx);
	weft__stack_put(nullptr, s);
}

TEST(SwitchTest, NewTaskInheritsTheRuntimeFPState)
{
	int saved = fegetround();
	fesetround(FE_TOWARDZERO);
	struct weft_opts o = {};
	o.workers = 1;
	intptr_t r = weft_main([](void *) -> intptr_t { return fegetround(); }, nullptr, &o);
	fesetround(saved);
	EXPECT_EQ(r, FE_TOWARDZERO);
}

} // namespace
