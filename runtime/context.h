// SPDX-License-Identifier: MIT
/*
 * runtime/context.h - the architecture seam: a suspended context, the
 * switch, the first frame of a new context, and the stacks contexts run on.
 * Nothing here knows about tasks or workers, so the switch can be tested and
 * benchmarked alone (tests/runtime/switch_test.cc, bench/microbench.c).
 */
#ifndef WEFT_RUNTIME_CONTEXT_H
#define WEFT_RUNTIME_CONTEXT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "runtime/sanitizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Context switch (runtime/switch_<arch>.S) ----------------------------
 * weft__switch (runtime/sanitizer.h) saves the callee-saved registers and FP
 * control words on the current stack, stores the stack pointer in *save_sp,
 * switches to next_sp and returns `arg` there (as the return value of the
 * weft__switch call that suspended that side).  A fresh stack made by
 * weft__ctx_make starts in entry(arg of the first switch into it, arg). */
typedef void (*weft__ctx_entry)(void *switch_arg, void *arg);
void *weft__ctx_make(void *stack_top, weft__ctx_entry entry, void *arg, uint32_t fp_ctl);
uint32_t weft__fp_ctl_read(void);

/* A hint inside a spin-wait loop: `pause` on x86 lets the sibling
 * hyperthread run and avoids a memory-order flush on exit; on AArch64
 * `yield` is a no-op on most cores, and `isb`, which waits for the pipeline
 * to drain, is the customary stand-in. */
static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("isb" ::: "memory");
#endif
}

/* ---- Entries of calls that may suspend (runtime/switch_<arch>.S) ----------
 * A public call that may suspend the task (weft_chan_send, weft_chan_recv)
 * is an assembly entry (RESUMING_ENTRY) that calls its C body and returns
 * the body's `value`.  When `resumed` is non-zero the task may have been switched
 * out and back in on the way, and the entry returns to its caller by an
 * indirect jump rather than `ret`: the CPU's return-stack predictor then
 * holds the return address of whichever task switched out last, not ours,
 * and a `ret` would be mispredicted every time two tasks with different call
 * chains hand off to each other (docs/internals.md, chapter 2).  The struct
 * is returned in rax:rdx (SysV: two INTEGER words). */
struct weft__resumed {
	intptr_t value;
	uintptr_t resumed;
};

/* ---- Stacks (runtime/stack.c) ----------------------------------------------
 * A stack lies in a slab: one mapping of up to 64 guarded stacks of one
 * size, or of a single stack for sizes other than the runtime's default.
 * Free default-size stacks wait in a worker's pool (pages kept, lock-free),
 * and beyond the pool's cap in the runtime's depot (pages released, under a
 * lock); the depot unmaps a slab once all its stacks are free. */
#define WEFT__STACK_SLAB_MAX 64  /* stacks per slab at most (64 KiB stacks: 64) */
#define WEFT__STACK_DEPOT_KEEP 4 /* empty slabs a depot keeps mapped */
struct weft__stack_slab;
LIST_HEAD(weft__slab_list, weft__stack_slab); /* sys/queue.h */
struct weft__stack {
	void *base;   /* lowest address of the stack's range (the guard page) */
	size_t size;  /* usable bytes above the guard */
	struct weft__stack *next; /* pool or depot link */
	struct weft__stack_slab *slab; /* the mapping it lies in */
	unsigned valgrind_id; /* VALGRIND_STACK_REGISTER's id */
};
/* Free default-size stacks shared by a runtime's pools; `size` is fixed at
 * init, the rest is under `lock`.  Slabs with free stacks sit on `partial`
 * (some in use) or `empty` (none in use, at most a few kept mapped). */
struct weft__stack_depot {
	pthread_mutex_t lock;
	size_t size;
	struct weft__slab_list partial, empty;
	unsigned nempty;
	unsigned nslabs; /* slabs mapped, in use or not */
};
/* A per-worker cache of default-size stacks, owned by one thread. */
struct weft__stack_pool {
	struct weft__stack *head;
	unsigned n, max;
	size_t size;
	struct weft__stack_depot *depot; /* where the surplus goes; never NULL */
};
void weft__stack_depot_init(struct weft__stack_depot *d, size_t size);
void weft__stack_depot_destroy(struct weft__stack_depot *d);
/* weft__stack_get returns NULL when no memory or mapping could be had.
 * With p NULL, or a size other than the pool's, it maps a stack of its own,
 * which weft__stack_put unmaps. */
struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size);
void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s);
void weft__stack_pool_drain(struct weft__stack_pool *p);
void *weft__stack_top(const struct weft__stack *s);
size_t weft__page_size(void);
/* Whether guards use MADV_GUARD_INSTALL (1) or mprotect (0). */
int weft__stack_guard_mode(void);

/* ---- Contexts with what the tools need (runtime/stack.c) --------------------
 * weft__ctx_on_stack makes c start in entry(switch arg, arg) on stack s;
 * weft__ctx_on_thread describes the calling thread's own stack, to switch
 * away from and back to; weft__ctx_entered must be the first call of an
 * entry function; weft__ctx_release ends a context that will never run
 * again.  Outside sanitizer builds they reduce to weft__ctx_make. */
void weft__ctx_on_stack(struct weft__ctx *c, const struct weft__stack *s,
			weft__ctx_entry entry, void *arg, uint32_t fp_ctl);
void weft__ctx_on_thread(struct weft__ctx *c);
void weft__ctx_entered(void);
void weft__ctx_release(struct weft__ctx *c);

#ifdef __cplusplus
}
#endif

#endif
