// SPDX-License-Identifier: MIT
/*
 * stack.c - task stacks: mmap'd, guarded, pooled per worker.
 *
 * Each stack is its own anonymous mapping with one guard page at its low end
 * (stacks grow down), so running off the end faults instead of corrupting a
 * neighbour; runtime/fault.c turns that fault into a report naming the task.
 *
 * The guard is made with madvise(MADV_GUARD_INSTALL) where the kernel has it
 * (6.13+): the page stays part of the same VMA, so neighbouring stacks merge
 * into a few large VMAs and a million stacks fit in the default
 * vm.max_map_count of 65,530.  The fallback, mprotect(PROT_NONE), splits each
 * stack into two VMAs: with it the limit is about 32,000 live stacks (less
 * what the rest of the process maps).  WEFT_STACK_GUARD=mprotect forces the
 * fallback, for tests.
 *
 * Pools hold default-size stacks only, at most `max` per worker; beyond that
 * a freed stack is unmapped.  Pooled stacks keep the pages they touched, so
 * reuse costs no page faults.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "runtime/sanitizer.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; Debian 12's headers lack it */
#endif

static size_t page_size_cached;
static _Atomic int guard_mode = -1; /* -1 unknown, 1 madvise, 0 mprotect */

size_t weft__page_size(void)
{
	if (!page_size_cached)
		page_size_cached = (size_t)sysconf(_SC_PAGESIZE);
	return page_size_cached;
}

int weft__stack_guard_mode(void)
{
	int m = atomic_load_explicit(&guard_mode, memory_order_relaxed);
	if (m < 0) {
		const char *e = getenv("WEFT_STACK_GUARD");
		m = (e && strcmp(e, "mprotect") == 0) ? 0 : 1;
		atomic_store_explicit(&guard_mode, m, memory_order_relaxed);
	}
	return m;
}

static int guard(void *base, size_t page)
{
	if (weft__stack_guard_mode() == 1) {
		if (madvise(base, page, MADV_GUARD_INSTALL) == 0)
			return 0;
		if (errno != EINVAL)
			return -errno;
		/* An older kernel: remember, so we ask only once. */
		atomic_store_explicit(&guard_mode, 0, memory_order_relaxed);
	}
	return mprotect(base, page, PROT_NONE) == 0 ? 0 : -errno;
}

static struct weft__stack *stack_map(size_t size)
{
	size_t page = weft__page_size();
	size = (size + page - 1) & ~(page - 1);
	void *base = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	if (guard(base, page) < 0) {
		munmap(base, size + page);
		return NULL;
	}
	struct weft__stack *s = malloc(sizeof(*s));
	if (!s) {
		munmap(base, size + page);
		return NULL;
	}
	s->base = base;
	s->size = size;
	s->next = NULL;
	s->valgrind_id = WEFT__VALGRIND_STACK_REGISTER((char *)base + page,
							(char *)base + page + size);
	return s;
}

static void stack_unmap(struct weft__stack *s)
{
	WEFT__VALGRIND_STACK_DEREGISTER(s->valgrind_id);
	munmap(s->base, s->size + weft__page_size());
	free(s);
}

void *weft__stack_top(const struct weft__stack *s)
{
	return (char *)s->base + weft__page_size() + s->size;
}

struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size)
{
	size_t page = weft__page_size();
	size = (size + page - 1) & ~(page - 1);
	if (p && size == p->size && p->head) {
		struct weft__stack *s = p->head;
		p->head = s->next;
		p->n--;
		/* A finished task never returned from its first frames; clear
		 * ASan's redzones they left behind (no-op otherwise). */
		WEFT__ASAN_UNPOISON((char *)s->base + weft__page_size(), s->size);
		return s;
	}
	return stack_map(size);
}

void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s)
{
	if (p && s->size == p->size && p->n < p->max) {
		s->next = p->head;
		p->head = s;
		p->n++;
		return;
	}
	stack_unmap(s);
}

void weft__stack_pool_drain(struct weft__stack_pool *p)
{
	while (p->head) {
		struct weft__stack *s = p->head;
		p->head = s->next;
		stack_unmap(s);
	}
	p->n = 0;
}

void weft__ctx_on_stack(struct weft__ctx *c, const struct weft__stack *s,
			weft__ctx_entry entry, void *arg, uint32_t fp_ctl)
{
	c->sp = weft__ctx_make(weft__stack_top(s), entry, arg, fp_ctl);
#if defined(WEFT__ASAN) || defined(WEFT__TSAN)
	c->stack_lo = (char *)s->base + weft__page_size();
	c->stack_size = s->size;
	c->asan_fake = NULL;
#endif
#ifdef WEFT__TSAN
	c->tsan_fiber = __tsan_create_fiber(0);
#endif
}

void weft__ctx_on_thread(struct weft__ctx *c)
{
#if defined(WEFT__ASAN) || defined(WEFT__TSAN)
	pthread_attr_t a;
	void *lo = NULL;
	size_t size = 0;
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		pthread_attr_getstack(&a, &lo, &size);
		pthread_attr_destroy(&a);
	}
	c->stack_lo = lo;
	c->stack_size = size;
	c->asan_fake = NULL;
#endif
#ifdef WEFT__TSAN
	c->tsan_fiber = __tsan_get_current_fiber();
#endif
	(void)c;
}

void weft__ctx_entered(void)
{
#ifdef WEFT__ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

void weft__ctx_release(struct weft__ctx *c)
{
#ifdef WEFT__TSAN
	__tsan_destroy_fiber(c->tsan_fiber);
#endif
	(void)c;
}
