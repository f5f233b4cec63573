// SPDX-License-Identifier: MIT
/*
 * switch_aarch64.S - the task context switch for AArch64 (AAPCS64, Linux).
 *
 * The same contract as switch_x86_64.S: a suspended context is nothing but
 * its stack pointer, and everything it needs lies on its own stack, in one
 * 240-byte frame (offsets from the saved stack pointer):
 *
 *       0  x29 (frame pointer), x30 (resume address)
 *      16  x19 x20 x21 x22 x23 x24 x25 x26 x27 x28
 *      96  q8 q9 q10 q11 q12 q13 q14 q15
 *     224  FPCR (8 bytes), 8 bytes unused
 *
 * AAPCS64 makes x19-x29, the stack pointer and the low 64 bits of v8-v15
 * (d8-d15) callee-saved, and the control fields of FPCR (rounding mode,
 * flush-to-zero, default NaN, trap enables) behave like the control bits of
 * x86's MXCSR: a task that changes its rounding mode must not change its
 * neighbours'.  The whole of q8-q15 is kept, not just d8-d15, because the
 * usual entry is an inline asm (weft__switch_jmp in runtime/sanitizer.h),
 * not a call: the compiler cannot be told that an asm clobbers half a
 * register, and a register the asm does not clobber may hold a 128-bit
 * value across it.
 *
 * The resume address travels in the frame, not on a return-address stack:
 * weft__switch is entered by a branch with x30 set by hand and leaves by
 * `br`, never `bl`/`ret`, so the CPU's return-address predictor stays
 * balanced (the reasoning is x86's, in switch_x86_64.S and runtime/sanitizer.h).
 *
 * Branch protection follows the compiler's -mbranch-protection, so that a
 * library built the way current AArch64 distributions build keeps its GNU
 * property note (the linker drops it if one object lacks it) and with it
 * the kernel's guarded pages:
 *  - BTI: every function starts with a landing pad, and so does every place
 *    weft__switch's `br x30` lands: the instruction after the inline asm's
 *    branch (WEFT__BTI_J in runtime/sanitizer.h) and the trampoline's entry.
 *    A `br` to an ordinary return address would fault, so RESUMING_ENTRY
 *    leaves by `ret` in such builds.
 *  - Return-address signing: the resume address is signed against the stack
 *    pointer its context had when it entered weft__switch (stack_top, for a
 *    frame weft__ctx_make builds), and authenticated once the resumed
 *    context's stack pointer is back at that value.  A resume address that
 *    was overwritten on a suspended task's stack then faults instead of
 *    being jumped to.
 * All of it is in the hint space: NOPs on cores without the features.
 */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define BTI_C	hint #34
#define BTI_J	hint #36
#define PROPERTY_BTI 1
#else
#define BTI_C
#define BTI_J
#define PROPERTY_BTI 0
#endif

/* SIGN_LR/AUTH_LR sign and check x30 against sp (paciasp/autiasp, or the B
 * key's); SIGN_1716 signs x17 against x16 (pacia1716).  SIGN_LR is also the
 * landing pad of the function it starts: paciasp is one for calls, and
 * without signing SIGN_LR is BTI_C. */
#if defined(__ARM_FEATURE_PAC_DEFAULT) && (__ARM_FEATURE_PAC_DEFAULT & 2)
#define SIGN_LR		hint #27
#define AUTH_LR		hint #31
#define SIGN_1716	hint #10
#define PROPERTY_PAC 2
#elif defined(__ARM_FEATURE_PAC_DEFAULT) && (__ARM_FEATURE_PAC_DEFAULT & 1)
#define SIGN_LR		hint #25
#define AUTH_LR		hint #29
#define SIGN_1716	hint #8
#define PROPERTY_PAC 2
#else
#define SIGN_LR		BTI_C
#define AUTH_LR
#define SIGN_1716
#define PROPERTY_PAC 0
#endif
/* Keeps unwinders told whether the x30 they find is signed. */
#if PROPERTY_PAC
#define CFI_RA_SIGNED	.cfi_negate_ra_state
#else
#define CFI_RA_SIGNED
#endif

	.text

/*
 * void *weft__switch(void **save_sp, void *next_sp, void *arg)
 *                    x0               x1             x2
 * Returns arg in the resumed context (x0).  x30 holds the resume address:
 * set by weft__switch_jmp, or by a `bl`.
 */
	.globl	weft__switch
	.hidden	weft__switch
	.type	weft__switch, %function
	.p2align 4
weft__switch:
	.cfi_startproc
	SIGN_LR
	CFI_RA_SIGNED
	sub	sp, sp, #240
	.cfi_def_cfa_offset 240
	stp	x29, x30, [sp, #0]
	.cfi_offset x29, -240
	.cfi_offset x30, -232
	stp	x19, x20, [sp, #16]
	.cfi_offset x19, -224
	.cfi_offset x20, -216
	stp	x21, x22, [sp, #32]
	.cfi_offset x21, -208
	.cfi_offset x22, -200
	stp	x23, x24, [sp, #48]
	.cfi_offset x23, -192
	.cfi_offset x24, -184
	stp	x25, x26, [sp, #64]
	.cfi_offset x25, -176
	.cfi_offset x26, -168
	stp	x27, x28, [sp, #80]
	.cfi_offset x27, -160
	.cfi_offset x28, -152
	/* DWARF numbers v8-v15 72-79 and describes their low 64 bits, which
	 * lie first in each 16-byte slot. */
	stp	q8, q9, [sp, #96]
	.cfi_offset 72, -144
	.cfi_offset 73, -128
	stp	q10, q11, [sp, #128]
	.cfi_offset 74, -112
	.cfi_offset 75, -96
	stp	q12, q13, [sp, #160]
	.cfi_offset 76, -80
	.cfi_offset 77, -64
	stp	q14, q15, [sp, #192]
	.cfi_offset 78, -48
	.cfi_offset 79, -32
	/* FPCR in force, kept in x9 to compare below. */
	mrs	x9, fpcr
	str	x9, [sp, #224]
	.cfi_remember_state

	/* The one store that leaves this context... */
	mov	x10, sp
	str	x10, [x0]
	/* ...and the one move that enters the next.  The frame there has the
	 * same shape, so the CFI above describes it as well: a debugger
	 * stopped on the instructions below unwinds into the *resumed* task. */
	mov	sp, x1

	/* Writing FPCR may synchronise the pipeline, and nearly every switch
	 * finds the resumed context's value already in force. */
	ldr	x10, [sp, #224]
	cmp	x9, x10
	b.ne	.Lload_fpcr
.Lfpcr_loaded:
	ldp	q14, q15, [sp, #192]
	ldp	q12, q13, [sp, #160]
	ldp	q10, q11, [sp, #128]
	ldp	q8, q9, [sp, #96]
	ldp	x27, x28, [sp, #80]
	ldp	x25, x26, [sp, #64]
	ldp	x23, x24, [sp, #48]
	ldp	x21, x22, [sp, #32]
	ldp	x19, x20, [sp, #16]
	ldp	x29, x30, [sp, #0]
	add	sp, sp, #240
	.cfi_def_cfa_offset 0
	.cfi_restore x29
	.cfi_restore x30
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore 72
	.cfi_restore 73
	.cfi_restore 74
	.cfi_restore 75
	.cfi_restore 76
	.cfi_restore 77
	.cfi_restore 78
	.cfi_restore 79
	AUTH_LR
	CFI_RA_SIGNED
	mov	x0, x2
	/* Not `ret`: no `bl` pushed a prediction for this return, and the
	 * address we leave for belongs to another context anyway.  An
	 * indirect branch is predicted from its target history. */
	br	x30

	/* Out of line, in the frame as it is before the loads above. */
	.cfi_restore_state
.Lload_fpcr:
	msr	fpcr, x10
	b	.Lfpcr_loaded
	.cfi_endproc
	.size	weft__switch, .-weft__switch

/*
 * Where a new context starts (after one nop, below): weft__ctx_make left
 * the entry function in x19 and its argument in x20, and weft__switch
 * delivered its arg (whoever switched to us) in x0.  The CFI marks the
 * return address as undefined, so gdb and backtrace() stop here; x29 = 0
 * ends the frame-pointer chain for unwinders that follow it instead.
 */
	.globl	weft__ctx_trampoline
	.hidden	weft__ctx_trampoline
	.type	weft__ctx_trampoline, %function
	.p2align 4
weft__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	/* Never run: the first switch branches to the instruction after it.
	 * An unwinder looks up a return address minus one, which must fall
	 * inside this function, not in whatever precedes it. */
	nop
.Ltrampoline_entry:
	BTI_J
	mov	x29, #0
	mov	x1, x20
	/* The stack pointer is weft__ctx_make's stack_top: 16-byte aligned,
	 * as AAPCS64 wants it at all times. */
	blr	x19
	brk	#0
	.cfi_endproc
	.size	weft__ctx_trampoline, .-weft__ctx_trampoline

/*
 * void *weft__ctx_make(void *stack_top, void (*entry)(void *, void *),
 *                      void *arg, uint32_t fp_ctl)
 * Builds, below stack_top (16-byte aligned), a frame that weft__switch can
 * resume: it branches to weft__ctx_trampoline, which calls
 * entry(switch_arg, arg) with FPCR = fp_ctl, as weft__fp_ctl_read returns
 * it.  entry must not return.  Returns the stack pointer to switch to.
 */
	.globl	weft__ctx_make
	.hidden	weft__ctx_make
	.type	weft__ctx_make, %function
	.p2align 4
weft__ctx_make:
	.cfi_startproc
	BTI_C
	/* The resume address, signed as weft__switch's entry would have
	 * signed it with sp = stack_top. */
	adr	x17, .Ltrampoline_entry
	mov	x16, x0
	SIGN_1716
	sub	x0, x0, #240
	stp	xzr, x17, [x0, #0]    /* x29 = 0, resume at the trampoline */
	stp	x1, x2, [x0, #16]     /* x19 = entry, x20 = arg */
	stp	xzr, xzr, [x0, #32]
	stp	xzr, xzr, [x0, #48]
	stp	xzr, xzr, [x0, #64]
	stp	xzr, xzr, [x0, #80]
	movi	v16.2d, #0
	stp	q16, q16, [x0, #96]
	stp	q16, q16, [x0, #128]
	stp	q16, q16, [x0, #160]
	stp	q16, q16, [x0, #192]
	mov	w3, w3                /* zero-extend: FPCR's upper half is reserved */
	stp	x3, xzr, [x0, #224]
	ret
	.cfi_endproc
	.size	weft__ctx_make, .-weft__ctx_make

/*
 * uint32_t weft__fp_ctl_read(void)
 * The caller's FPCR, the state a new task inherits from its runtime (its
 * upper 32 bits are reserved and read as zero).
 */
	.globl	weft__fp_ctl_read
	.hidden	weft__fp_ctl_read
	.type	weft__fp_ctl_read, %function
	.p2align 4
weft__fp_ctl_read:
	.cfi_startproc
	BTI_C
	mrs	x0, fpcr
	ret
	.cfi_endproc
	.size	weft__fp_ctl_read, .-weft__fp_ctl_read

/*
 * RESUMING_ENTRY name, body: the public function `name`, whose body is the
 * C function `body` with the same arguments, returning struct weft__resumed
 * (runtime/context.h) in x0:x1.  The entry returns x0.
 *
 * As on x86 (switch_x86_64.S): when the body says it may have been resumed,
 * the `ret` that pops the return-address predictor would find the entry
 * pushed by whichever task called in last, so we leave by `br x30`, which
 * is predicted from branch history instead; a call that did not suspend
 * returns with `ret`.  With BTI it always returns with `ret`: the caller's
 * return address has no landing pad.  The frame record keeps backtraces
 * through the entry whole.
 */
	.macro	RESUMING_ENTRY name, body
	.globl	\name
	.type	\name, %function
	.p2align 4
\name:
	.cfi_startproc
	SIGN_LR
	CFI_RA_SIGNED
	stp	x29, x30, [sp, #-16]!
	.cfi_def_cfa_offset 16
	.cfi_offset x29, -16
	.cfi_offset x30, -8
	mov	x29, sp
	bl	\body
	ldp	x29, x30, [sp], #16
	.cfi_def_cfa_offset 0
	.cfi_restore x29
	.cfi_restore x30
	AUTH_LR
	CFI_RA_SIGNED
#if PROPERTY_BTI
	ret
#else
	cbnz	x1, 1f
	ret
1:
	br	x30
#endif
	.cfi_endproc
	.size	\name, .-\name
	.endm

	RESUMING_ENTRY weft_chan_send, weft__chan_send
	RESUMING_ENTRY weft_chan_recv, weft__chan_recv

	.section .note.GNU-stack,"",%progbits

/* What this file does of the above, for the linker to AND with the other
 * objects' notes: GNU_PROPERTY_AARCH64_FEATURE_1_AND, bit 0 BTI, bit 1
 * PAC. */
#if PROPERTY_BTI || PROPERTY_PAC
	.section .note.gnu.property,"a"
	.p2align 3
	.long	4			/* name size */
	.long	16			/* descriptor size */
	.long	5			/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.long	0xc0000000		/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.long	4			/* its data size */
	.long	PROPERTY_BTI | PROPERTY_PAC
	.long	0			/* padding to 8 bytes */
#endif
