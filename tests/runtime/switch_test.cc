// SPDX-License-Identifier: MIT
/*
 * switch_test.cc - the context switch keeps what the ABI says a callee must
 * keep, and a task's arg and FP state start out right.  On x86-64: rbx,
 * rbp, r12-r15, the MXCSR control bits and the x87 control word (also when
 * only the latter differs, which the switch loads only then).  On AArch64:
 * x19-x28, all of q8-q15 (runtime/switch_aarch64.S says why more than
 * d8-d15) and FPCR (also when only a field fesetround leaves alone differs),
 * and, in builds with -mbranch-protection, the switch runs on pages the
 * kernel guards for BTI, its signed resume addresses authenticating.
 */
#include <cfenv>
#include <csetjmp>
#include <csignal>
#include <cstddef>
#include <execinfo.h>
#if defined(__aarch64__)
#include <link.h>
#include <sys/mman.h>
#endif

#include "common.h"

#include "runtime/context.h"

namespace {

struct weft__ctx a_ctx, b_ctx;

/* Each test's two sides: a_ctx this thread, b_ctx a context on a stack of
 * its own that starts in `entry` with the FP state in force now. */
struct sides {
	struct weft__stack *s = weft__stack_get(nullptr, 64 * 1024);
	explicit sides(weft__ctx_entry entry)
	{
		if (!s)
			return;
		weft__ctx_on_thread(&a_ctx);
		weft__ctx_on_stack(&b_ctx, s, entry, nullptr, weft__fp_ctl_read());
	}
	~sides()
	{
		if (!s)
			return;
		weft__ctx_release(&b_ctx);
		weft__stack_put(nullptr, s);
	}
};

/* The other side clobbers every callee-saved register and the rounding
 * mode, then switches back. */
[[noreturn]] void clobberer(void *, void *)
{
	weft__ctx_entered();
	for (;;) {
		fesetround(FE_DOWNWARD);
#if defined(__x86_64__)
		__asm__ volatile("mov $0xdead1, %%rbx\n\t"
				 "mov $0xdead2, %%r12\n\t"
				 "mov $0xdead3, %%r13\n\t"
				 "mov $0xdead4, %%r14\n\t"
				 "mov $0xdead5, %%r15\n\t" ::
					 : "rbx", "r12", "r13", "r14", "r15");
#elif defined(__aarch64__)
		__asm__ volatile("mov x19, #0xdead\n\t"
				 "mov x20, x19\n\t"
				 "mov x21, x19\n\t"
				 "mov x22, x19\n\t"
				 "mov x23, x19\n\t"
				 "mov x24, x19\n\t"
				 "mov x25, x19\n\t"
				 "mov x26, x19\n\t"
				 "mov x27, x19\n\t"
				 "mov x28, x19\n\t"
				 "movi v8.16b, #0xde\n\t"
				 "movi v9.16b, #0xde\n\t"
				 "movi v10.16b, #0xde\n\t"
				 "movi v11.16b, #0xde\n\t"
				 "movi v12.16b, #0xde\n\t"
				 "movi v13.16b, #0xde\n\t"
				 "movi v14.16b, #0xde\n\t"
				 "movi v15.16b, #0xde" ::
					 : "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
					   "x27", "x28", "v8", "v9", "v10", "v11", "v12", "v13",
					   "v14", "v15");
#endif
		weft__ctx_switch(&b_ctx, &a_ctx, nullptr, false);
	}
}

TEST(SwitchTest, KeepsCalleeSavedRegisters)
{
	sides sd(clobberer);
	ASSERT_NE(sd.s, nullptr);
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
#if defined(__x86_64__)
	uint64_t rbx, r12, r13, r14, r15;
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
#elif defined(__aarch64__)
	/* x19-x28 get 19..28 and every byte of q(8+k) gets 0x80+k, so that a
	 * lost upper half of a q register shows as well as a lost d register.
	 * Everything but x0 (the record, kept on the stack across the switch)
	 * is clobbered, so the record is how values get in and out. */
	struct {
		void **a;
		void *bsp;
		uint64_t x[10];
		alignas(16) uint8_t q[8][16];
	} io = {&a_ctx.sp, b_ctx.sp, {}, {}};
	static_assert(offsetof(decltype(io), x) == 16 && offsetof(decltype(io), q) == 96, "layout");
	register void *p __asm__("x0") = &io;
	__asm__ volatile("sub sp, sp, #16\n\t"
			 "str x0, [sp]\n\t"
			 "mov x19, #19\n\t"
			 "mov x20, #20\n\t"
			 "mov x21, #21\n\t"
			 "mov x22, #22\n\t"
			 "mov x23, #23\n\t"
			 "mov x24, #24\n\t"
			 "mov x25, #25\n\t"
			 "mov x26, #26\n\t"
			 "mov x27, #27\n\t"
			 "mov x28, #28\n\t"
			 "movi v8.16b, #0x80\n\t"
			 "movi v9.16b, #0x81\n\t"
			 "movi v10.16b, #0x82\n\t"
			 "movi v11.16b, #0x83\n\t"
			 "movi v12.16b, #0x84\n\t"
			 "movi v13.16b, #0x85\n\t"
			 "movi v14.16b, #0x86\n\t"
			 "movi v15.16b, #0x87\n\t"
			 "ldr x1, [x0, #8]\n\t"
			 "ldr x0, [x0]\n\t"
			 "mov x2, #0\n\t"
			 "bl weft__switch" WEFT__BTI_J "\n\t"
			 "ldr x0, [sp]\n\t"
			 "add sp, sp, #16\n\t"
			 "stp x19, x20, [x0, #16]\n\t"
			 "stp x21, x22, [x0, #32]\n\t"
			 "stp x23, x24, [x0, #48]\n\t"
			 "stp x25, x26, [x0, #64]\n\t"
			 "stp x27, x28, [x0, #80]\n\t"
			 "stp q8, q9, [x0, #96]\n\t"
			 "stp q10, q11, [x0, #128]\n\t"
			 "stp q12, q13, [x0, #160]\n\t"
			 "stp q14, q15, [x0, #192]"
			 : "+r"(p)
			 :
			 : "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12",
			   "x13", "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22",
			   "x23", "x24", "x25", "x26", "x27", "x28", "x30", "v0", "v1", "v2", "v3",
			   "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14",
			   "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24",
			   "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory", "cc");
#endif
#ifdef WEFT__ASAN
	__sanitizer_finish_switch_fiber(a_ctx.asan_fake, nullptr, nullptr);
#endif
#if defined(__x86_64__)
	EXPECT_EQ(rbx, 0x1111u);
	EXPECT_EQ(r12, 0x1212u);
	EXPECT_EQ(r13, 0x1313u);
	EXPECT_EQ(r14, 0x1414u);
	EXPECT_EQ(r15, 0x1515u);
#elif defined(__aarch64__)
	for (int i = 0; i < 10; i++)
		EXPECT_EQ(io.x[i], 19u + i) << "x" << 19 + i;
	for (int k = 0; k < 8; k++)
		for (int i = 0; i < 16; i++)
			EXPECT_EQ(io.q[k][i], 0x80u + k) << "q" << 8 + k << " byte " << i;
#endif
}

/* A field of the FP control state that fesetround never touches, with
 * its reader and writer.  x86-64: the x87 precision control, so that two
 * sides differ in the x87 control word alone, with MXCSR equal (the switch
 * loads the control word only when it differs from the one in force; this
 * is the case where it must).  AArch64: FPCR's flush-to-zero bit, which
 * the switch must carry with the rounding mode. */
#if defined(__x86_64__)
constexpr uint64_t kFpField = 0x0300;
uint64_t fp_state()
{
	uint16_t cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return cw;
}
void fp_state_set(uint64_t v)
{
	uint16_t cw = (uint16_t)v;
	__asm__ volatile("fldcw %0" ::"m"(cw));
}
#elif defined(__aarch64__)
constexpr uint64_t kFpField = 1u << 24;
uint64_t fp_state()
{
	uint64_t v;
	__asm__ volatile("mrs %0, fpcr" : "=r"(v));
	return v;
}
void fp_state_set(uint64_t v)
{
	__asm__ volatile("msr fpcr, %0" ::"r"(v));
}
#endif

TEST(SwitchTest, KeepsFPControlState)
{
	int saved = fegetround();
	fesetround(FE_UPWARD);
	uint64_t mine = fp_state();
	sides sd(clobberer);
	ASSERT_NE(sd.s, nullptr);
	weft__ctx_switch(&a_ctx, &b_ctx, nullptr, false);
	/* fegetround reads MXCSR on x86-64; fp_state is the x87 word there. */
	EXPECT_EQ(fegetround(), FE_UPWARD);
	EXPECT_EQ(fp_state(), mine);
	fesetround(saved);
}

uint64_t b_seen_state;

[[noreturn]] void field_changer(void *, void *)
{
	weft__ctx_entered();
	fp_state_set(fp_state() ^ kFpField);
	for (;;) {
		weft__ctx_switch(&b_ctx, &a_ctx, nullptr, false);
		b_seen_state = fp_state();
	}
}

TEST(SwitchTest, KeepsAControlFieldFesetroundLeavesAlone)
{
	uint64_t mine = fp_state();
	sides sd(field_changer);
	ASSERT_NE(sd.s, nullptr);
	for (int i = 0; i < 3; i++) {
		weft__ctx_switch(&a_ctx, &b_ctx, nullptr, false);
		EXPECT_EQ(fp_state(), mine) << "round " << i;
		if (i > 0) {
			EXPECT_EQ(b_seen_state, mine ^ kFpField) << "round " << i;
		}
	}
}

/* backtrace() inside a context walks the context's own frames and stops
 * at its entry instead of running off the top of the stack: the
 * trampoline's CFI marks the return address undefined, and the frame
 * weft__ctx_make built holds nothing an unwinder would follow. */
void *bt_frames[64];
int bt_n;

__attribute__((noinline)) void bt_take()
{
	bt_n = backtrace(bt_frames, 64);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
}

[[noreturn]] __attribute__((noinline)) void bt_entry(void *, void *)
{
	weft__ctx_entered();
	bt_take();
	for (;;)
		weft__ctx_switch(&b_ctx, &a_ctx, nullptr, false);
}

TEST(SwitchTest, ABacktraceInAContextEndsAtItsEntry)
{
	sides sd(bt_entry);
	ASSERT_NE(sd.s, nullptr);
	bt_n = -1;
	weft__ctx_switch(&a_ctx, &b_ctx, nullptr, false);
	/* bt_take, bt_entry and the trampoline, perhaps a frame of the
	 * sanitizers' or backtrace's own: a handful, never the whole array. */
	EXPECT_GE(bt_n, 3);
	EXPECT_LE(bt_n, 6);
	auto entry = reinterpret_cast<uintptr_t>(&bt_entry);
	bool in_entry = false;
	for (int i = 0; i < bt_n; i++) {
		auto pc = reinterpret_cast<uintptr_t>(bt_frames[i]);
		in_entry |= pc > entry && pc < entry + 256;
	}
	EXPECT_TRUE(in_entry) << "no frame returns into bt_entry";
}

#if defined(__aarch64__)
/* BTI: with -mbranch-protection=bti (or standard) every place a switch
 * branches to carries a landing pad, and the kernel enforces them on pages
 * mapped with PROT_BTI.  Debian 12's startup files carry no BTI note, so
 * no executable here is linked with its pages guarded; the tests guard the
 * test program's own code for the span of a few switches instead, with
 * nothing but that code and the runtime's running meanwhile (no gtest
 * assertion: the static gtest has no landing pads). */
#ifndef PROT_BTI
#define PROT_BTI 0x10
#endif
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
constexpr bool kBti = true;
#else
constexpr bool kBti = false;
#endif

struct text_seg {
	uintptr_t addr, lo, hi;
};

int find_text(struct dl_phdr_info *info, size_t, void *data)
{
	auto *t = static_cast<text_seg *>(data);
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && t->addr >= lo &&
		    t->addr < lo + ph->p_memsz) {
			uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
			t->lo = lo & ~(page - 1);
			t->hi = (lo + ph->p_memsz + page - 1) & ~(page - 1);
			return 1;
		}
	}
	return 0;
}

/* Guards (or unguards) the executable segment that holds the switch and
 * this file's code.  0 or -errno. */
int guard_text(bool on)
{
	text_seg t = {reinterpret_cast<uintptr_t>(&weft__switch), 0, 0};
	if (!dl_iterate_phdr(find_text, &t))
		return -ENOENT;
	int prot = PROT_READ | PROT_EXEC | (on ? PROT_BTI : 0);
	return mprotect(reinterpret_cast<void *>(t.lo), t.hi - t.lo, prot) ? -errno : 0;
}

/* Counts its rounds, resuming each time where the switch left it. */
uint64_t pinger_rounds;

[[noreturn]] void pinger(void *, void *)
{
	weft__ctx_entered();
	for (;;) {
		pinger_rounds++;
		weft__ctx_switch(&b_ctx, &a_ctx, nullptr, false);
	}
}

TEST(SwitchTest, SwitchesOnGuardedPages)
{
	if (!kBti)
		GTEST_SKIP() << "built without -mbranch-protection=bti";
	text_seg here = {reinterpret_cast<uintptr_t>(&pinger), 0, 0};
	ASSERT_EQ(dl_iterate_phdr(find_text, &here), 1);
	ASSERT_EQ(reinterpret_cast<uintptr_t>(&weft__switch) - here.lo < here.hi - here.lo, true)
		<< "the switch and the test's code lie in different segments";
	pinger_rounds = 0;
	sides sd(pinger);
	ASSERT_NE(sd.s, nullptr);
	/* A new context's first switch lands on the trampoline, the later ones
	 * after the switch in pinger; ours land after the one below. */
	int on = guard_text(true);
	for (int i = 0; on == 0 && i < 100; i++)
		weft__ctx_switch(&a_ctx, &b_ctx, nullptr, false);
	int off = guard_text(false);
	ASSERT_EQ(on, 0);
	ASSERT_EQ(off, 0);
	EXPECT_EQ(pinger_rounds, 100u);
}

/* Without it the test above shows nothing: on a guarded page a branch to an
 * instruction that is no landing pad faults. */
extern "C" void weft_test_no_pad(void);
__asm__(".text\n"
	".p2align 2\n"
	".type weft_test_no_pad, %function\n"
	"weft_test_no_pad:\n\t"
	"nop\n\t"
	"ret\n"
	".size weft_test_no_pad, .-weft_test_no_pad\n");

sigjmp_buf no_pad_jmp;
volatile sig_atomic_t no_pad_faulted;

/* Unguards before it jumps back: the jump's landing is no concern of the
 * test's. */
void no_pad_fault(int)
{
	no_pad_faulted = 1;
	(void)guard_text(false);
	siglongjmp(no_pad_jmp, 1);
}

TEST(SwitchTest, GuardedPagesFaultOnABranchWithoutALandingPad)
{
	if (!kBti)
		GTEST_SKIP() << "built without -mbranch-protection=bti";
	/* A signal handler, not a death test: the emulator cannot fork. */
	struct sigaction sa = {}, old = {};
	sa.sa_handler = no_pad_fault;
	ASSERT_EQ(sigaction(SIGILL, &sa, &old), 0);
	void (*volatile no_pad)(void) = weft_test_no_pad;
	no_pad_faulted = 0;
	int on = -1;
	if (sigsetjmp(no_pad_jmp, 1) == 0) {
		on = guard_text(true);
		if (on == 0)
			no_pad();
		(void)guard_text(false);
	}
	sigaction(SIGILL, &old, nullptr);
	ASSERT_EQ(on, 0);
	EXPECT_EQ(no_pad_faulted, 1) << "a branch to no landing pad ran on a guarded page";
}
#endif

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
