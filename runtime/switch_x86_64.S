// SPDX-License-Identifier: MIT
/*
 * switch_x86_64.S - the task context switch for x86-64 System V.
 *
 * A suspended context is nothing but its stack pointer: everything else it
 * needs is pushed on its own stack, in this order (high to low address):
 *
 *     resume address      <- pushed by weft__switch_jmp (or a call)
 *     rbp rbx r12 r13 r14 r15
 *     mxcsr (4 bytes), x87 control word (2 bytes), 2 bytes unused
 *                         <- the saved stack pointer points here
 *
 * The SysV ABI makes rbx, rbp, r12-r15 callee-saved, and also the control
 * bits of MXCSR and the x87 control word (rounding mode, exception masks), so
 * a task that changes its rounding mode must not change its neighbours'.
 * Everything else is caller-saved: the C compiler already spilled whatever it
 * needed before entering weft__switch, which is why a switch costs a
 * handful of moves.  Every other architecture provides the same four symbols
 * (weft__switch, weft__ctx_make, weft__ctx_trampoline, weft__fp_ctl_read) in
 * its own switch_<arch>.S; weft__ctx_make builds the frame described above.
 * The file ends with the entries of public calls that may suspend
 * (RESUMING_ENTRY, runtime/context.h), which every architecture defines too.
 *
 * Unlike switch_aarch64.S, this file carries no .note.gnu.property, on
 * purpose: with -fcf-protection the C objects claim IBT and SHSTK, and the
 * linker keeps a claim only if every object makes it.  The switch moves
 * between stacks without moving the shadow stack (and returns to no call
 * of its own), so a library that claimed SHSTK would fault at the first
 * return a resumed task makes, wherever the C library turns shadow
 * stacks on.
 */

	.text

/*
 * void *weft__switch(void **save_sp, void *next_sp, void *arg)
 *                    rdi              rsi            rdx
 * Returns arg in the resumed context (rax).  Entered by jump with the return
 * address pushed (weft__switch_jmp), though a call works too.
 */
	.globl	weft__switch
	.hidden	weft__switch
	.type	weft__switch, @function
	.p2align 4
weft__switch:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r15, 0
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	/* The x87 control word in force, read back to compare below.  Not
	 * MXCSR: reading back what stmxcsr stored costs more than the ldmxcsr
	 * it would save (docs/benchmarks.md). */
	movzwl	4(%rsp), %r9d
	.cfi_remember_state

	/* The one instruction that leaves this context... */
	movq	%rsp, (%rdi)
	/* ...and the one that enters the next.  The frame there has the same
	 * shape, so the CFI above describes it as well: a debugger stopped on
	 * the instructions below unwinds into the *resumed* task. */
	movq	%rsi, %rsp

	ldmxcsr	(%rsp)
	/* fldcw is slow, and nearly every switch finds the resumed context's
	 * control word already in force. */
	cmpw	4(%rsp), %r9w
	jne	.Lload_cw
.Lcw_loaded:
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r15
	popq	%r14
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r14
	popq	%r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r13
	popq	%r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r12
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbx
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	movq	%rdx, %rax
	/* Not `ret`: callers enter by jump (weft__switch_jmp in
	 * runtime/sanitizer.h), so the return-stack predictor holds no entry
	 * for us, and the address we leave for belongs to another context
	 * anyway.  An indirect jump is predicted from its target history. */
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	.cfi_register %rip, %rcx
	jmp	*%rcx

	/* Out of line, in the frame as it is before the pops above. */
	.cfi_restore_state
.Lload_cw:
	fldcw	4(%rsp)
	jmp	.Lcw_loaded
	.cfi_endproc
	.size	weft__switch, .-weft__switch

/*
 * Where a new context starts (after one nop, below): weft__ctx_make left
 * the entry function in r12 and its argument in rbx, and weft__switch
 * delivered its arg (whoever switched to us) in rax.  The CFI marks the return address as
 * undefined, so gdb and backtrace() stop here instead of walking into
 * whatever lies above the stack.
 */
	.globl	weft__ctx_trampoline
	.hidden	weft__ctx_trampoline
	.type	weft__ctx_trampoline, @function
	.p2align 4
weft__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	/* Never run: the first switch "returns" to the instruction after it.
	 * An unwinder looks up a return address minus one, which must fall
	 * inside this function, not in whatever precedes it. */
	nop
.Ltrampoline_entry:
	xorl	%ebp, %ebp
	movq	%rax, %rdi
	movq	%rbx, %rsi
	/* Entered by weft__switch's closing jump with rsp = 8 mod 16, as if
	 * called; realign so the callee sees the ABI's entry alignment. */
	subq	$8, %rsp
	call	*%r12
	ud2
	.cfi_endproc
	.size	weft__ctx_trampoline, .-weft__ctx_trampoline

/*
 * void *weft__ctx_make(void *stack_top, void (*entry)(void *, void *),
 *                      void *arg, uint32_t fp_ctl)
 * Builds, below stack_top (16-byte aligned), a frame that weft__switch can
 * resume: it "returns" into weft__ctx_trampoline, which calls
 * entry(switch_arg, arg) with the FP control state fp_ctl, packed as
 * weft__fp_ctl_read returns it.  entry must not return.  Returns the stack
 * pointer to switch to.
 */
	.globl	weft__ctx_make
	.hidden	weft__ctx_make
	.type	weft__ctx_make, @function
	.p2align 4
weft__ctx_make:
	.cfi_startproc
	leaq	-72(%rdi), %rax
	movq	$0, 64(%rax)          /* an empty slot above the entry frame */
	leaq	.Ltrampoline_entry(%rip), %r8
	movq	%r8, 56(%rax)         /* return address of the first switch */
	movq	$0, 48(%rax)          /* rbp */
	movq	%rdx, 40(%rax)        /* rbx = arg */
	movq	%rsi, 32(%rax)        /* r12 = entry */
	movq	$0, 24(%rax)          /* r13 */
	movq	$0, 16(%rax)          /* r14 */
	movq	$0, 8(%rax)           /* r15 */
	movl	%ecx, %r8d
	andl	$0xffff, %r8d
	movl	%r8d, (%rax)          /* mxcsr */
	shrl	$16, %ecx
	movw	%cx, 4(%rax)          /* x87 control word */
	movw	$0, 6(%rax)
	ret
	.cfi_endproc
	.size	weft__ctx_make, .-weft__ctx_make

/*
 * uint32_t weft__fp_ctl_read(void)
 * The caller's MXCSR (low 16 bits) and x87 control word (high 16 bits), the
 * state a new task inherits from its runtime.
 */
	.globl	weft__fp_ctl_read
	.hidden	weft__fp_ctl_read
	.type	weft__fp_ctl_read, @function
	.p2align 4
weft__fp_ctl_read:
	.cfi_startproc
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movzwl	(%rsp), %eax
	movzwl	4(%rsp), %ecx
	shll	$16, %ecx
	orl	%ecx, %eax
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	weft__fp_ctl_read, .-weft__fp_ctl_read

/*
 * RESUMING_ENTRY name, body: the public function `name`, whose body is the
 * C function `body` with the same arguments, returning struct weft__resumed
 * (runtime/context.h) in rax:rdx.  The entry returns rax.
 *
 * The return-stack predictor is a stack of the return addresses of the
 * calls this CPU made, whichever task made them.  When task A suspends
 * inside weft_chan_recv and task B resumes inside it, B returns through the
 * same runtime frames as A (those predictions hold) up to this entry, whose
 * `ret` would pop A's return address into A's caller and mispredict, since
 * B's caller is elsewhere: a ping-pong between two different functions paid
 * that on every message.  So when the body says it may have been resumed,
 * we leave as weft__switch does, by `pop; jmp *`: an indirect jump is
 * predicted from the recent branch history, which tells the two callers
 * apart.  The predictor's entry for A's caller stays behind, unpopped; after
 * a switch the entries below ours are another task's anyway.  A call that
 * did not suspend returns with `ret`, which pops exactly what its call
 * pushed.  rcx is free: caller-saved and not a return register.
 */
	.macro	RESUMING_ENTRY name, body
	.globl	\name
	.type	\name, @function
	.p2align 4
\name:
	.cfi_startproc
	/* Keep the 16-byte alignment the body expects at its call. */
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	call	\body
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	testq	%rdx, %rdx
	jnz	1f
	ret
1:
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	.cfi_register %rip, %rcx
	jmp	*%rcx
	.cfi_endproc
	.size	\name, .-\name
	.endm

	RESUMING_ENTRY weft_chan_send, weft__chan_send
	RESUMING_ENTRY weft_chan_recv, weft__chan_recv

	.section .note.GNU-stack,"",@progbits
