// SPDX-License-Identifier: MIT
/*
 * stack.c - task stacks: mapped in slabs, guarded, pooled per worker, the
 * surplus kept without its pages in a per-runtime depot.
 *
 * Every stack has one guard page at its low end (stacks grow down), so
 * running off the end faults instead of corrupting a neighbour;
 * runtime/fault.c turns that fault into a report naming the task.  The guard
 * is made with MADV_GUARD_INSTALL where the kernel has it (6.13+): the page
 * stays part of the same VMA, so a slab is one VMA, neighbouring slabs merge,
 * and a million stacks fit in the default vm.max_map_count of 65,530.  The
 * fallback, mprotect(PROT_NONE), splits each stack into two VMAs: with it the
 * limit is about 32,000 mapped stacks, free ones in slabs included (less what
 * the rest of the process maps).  WEFT_STACK_GUARD=mprotect forces the
 * fallback, for tests.
 *
 * Why slabs: with a mapping per stack, every stack past the pool's cap cost
 * an mmap, a guard and a munmap, and a munmap in a multi-threaded process
 * takes mmap_lock for writing and interrupts the other CPUs to flush their
 * TLBs.  A burst of a million tasks spent half its time in mmap and munmap
 * (docs/benchmarks.md).  So default-size stacks come in slabs: one mmap of up
 * to WEFT__STACK_SLAB_MAX stacks (SLAB_BYTES at most), laid out guard, stack,
 * guard, stack.  The guards of a slab are installed with one process_madvise
 * where the kernel takes PIDFD_SELF (6.15+), else one call each.
 *
 * Where a free default-size stack waits:
 *   1. In the pool of the worker where it was freed: a LIFO list owned by
 *      that worker, no locks.  Pooled stacks keep the pages they touched, so
 *      reuse costs no page faults.  A pool holds at most `max`.
 *   2. In the runtime's depot, past that: a put that takes a pool over `max`
 *      hands all but the newest max/2 to the depot (pool_flush).  Their pages
 *      go back to the kernel first, with one madvise(MADV_DONTNEED) per run
 *      of stacks adjacent in memory (sorted by address; a run spans the
 *      guards between, which MADV_DONTNEED leaves in place), so a burst's
 *      stacks cost about one syscall per slab, not one each.  The address
 *      range stays mapped: a depot stack costs address space, no memory.
 *   3. Nowhere: when every stack of a slab is in the depot, the slab is
 *      unmapped with one munmap, unless the depot keeps it as one of its
 *      WEFT__STACK_DEPOT_KEEP empty slabs, so that a pool hovering at its cap
 *      does not map and unmap the same slab over and over.
 * An empty pool refills from the depot, up to a slab's worth at a time, from
 * slabs partly in use first (so that others can empty), then from empty
 * ones, then from a slab mapped there and then.  After a burst, what stays
 * is the pools (at most `max` stacks each, with their pages), the slabs that
 * still hold a live stack (address space only, for their free stacks), and
 * WEFT__STACK_DEPOT_KEEP empty slabs.
 *
 * Pools are touched by their worker only; the depot and the slabs' free
 * lists only under the depot's lock, which also orders a stack's last use on
 * one worker before its next use on another.  Stacks of other sizes
 * (per-spawn sizes, and stacks got without a pool) are a slab of one, mapped
 * when got and unmapped when put.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "runtime/sanitizer.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; Debian 12's headers lack it */
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000) /* the calling thread (so our mm): Linux 6.15 */
#endif

#define SLAB_BYTES (8u << 20) /* bytes per slab at most, unless one stack is more */

/* One mapping of nstacks stacks, each `stride` bytes: guard page, then the
 * stack.  The list fields and `free`, `nfree` are under the depot's lock. */
struct weft__stack_slab {
	LIST_ENTRY(weft__stack_slab) link;    /* on the depot's partial or empty list */
	struct weft__stack_depot *depot;      /* NULL: a lone stack */
	char *base;
	size_t len;
	struct weft__stack *free; /* this slab's stacks now in the depot */
	unsigned nfree, nstacks;
	struct weft__stack stacks[];
};

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

/* Guards the n stacks of a slab at base.  With MADV_GUARD_INSTALL, one
 * process_madvise on our own process (PIDFD_SELF, Linux 6.15+) guards them
 * all; else, or for what it left undone, one call per stack (installing a
 * guard twice is harmless). */
static int guard_slab(char *base, unsigned n, size_t stride, size_t page)
{
	static _Atomic bool batch_refused;
	static __thread struct iovec iov[WEFT__STACK_SLAB_MAX]; /* off the caller's stack */
	if (n > 1 && weft__stack_guard_mode() == 1 &&
	    !atomic_load_explicit(&batch_refused, memory_order_relaxed)) {
		for (unsigned i = 0; i < n; i++)
			iov[i] = (struct iovec){.iov_base = base + i * stride, .iov_len = page};
		long r = syscall(SYS_process_madvise, PIDFD_SELF, iov, (size_t)n,
				 MADV_GUARD_INSTALL, 0u);
		if (r == (long)(n * page))
			return 0;
		if (r < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS))
			atomic_store_explicit(&batch_refused, true, memory_order_relaxed);
	}
	for (unsigned i = 0; i < n; i++) {
		int rc = guard(base + i * stride, page);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- Slabs ------------------------------------------------------------------ */

/* Maps a slab of stacks of `size` bytes (a page multiple) for depot d, or a
 * lone stack when d is NULL; its stacks are all in use.  NULL when memory,
 * the mapping or a guard could not be had. */
static struct weft__stack_slab *slab_map(struct weft__stack_depot *d, size_t size)
{
	size_t page = weft__page_size(), stride = size + page;
	unsigned n = 1;
	if (d) {
		n = SLAB_BYTES / stride;
		n = n < 1 ? 1 : n > WEFT__STACK_SLAB_MAX ? WEFT__STACK_SLAB_MAX : n;
	}
	struct weft__stack_slab *sl = malloc(sizeof(*sl) + n * sizeof(sl->stacks[0]));
	if (!sl)
		return NULL;
	sl->len = n * stride;
	sl->base = mmap(NULL, sl->len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sl->base == MAP_FAILED) {
		free(sl);
		return NULL;
	}
	if (guard_slab(sl->base, n, stride, page) < 0) {
		munmap(sl->base, sl->len);
		free(sl);
		return NULL;
	}
	sl->depot = d;
	sl->free = NULL;
	sl->nfree = 0;
	sl->nstacks = n;
	for (unsigned i = 0; i < n; i++) {
		struct weft__stack *s = &sl->stacks[i];
		s->base = sl->base + i * stride;
		s->size = size;
		s->next = NULL;
		s->slab = sl;
		s->valgrind_id = WEFT__VALGRIND_STACK_REGISTER((char *)s->base + page,
							       (char *)s->base + stride);
	}
	return sl;
}

static void slab_unmap(struct weft__stack_slab *sl)
{
	for (unsigned i = 0; i < sl->nstacks; i++)
		WEFT__VALGRIND_STACK_DEREGISTER(sl->stacks[i].valgrind_id);
	munmap(sl->base, sl->len);
	free(sl);
}

/* ---- The depot ----------------------------------------------------------------- */

void weft__stack_depot_init(struct weft__stack_depot *d, size_t size)
{
	pthread_mutex_init(&d->lock, NULL);
	d->size = size;
	LIST_INIT(&d->partial);
	LIST_INIT(&d->empty);
	d->nempty = d->nslabs = 0;
}

/* Once no stack of d is in use: unmaps the slabs it still has. */
void weft__stack_depot_destroy(struct weft__stack_depot *d)
{
	struct weft__slab_list *lists[] = {&d->partial, &d->empty};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct weft__stack_slab *sl;
		while ((sl = LIST_FIRST(lists[i]))) {
			LIST_REMOVE(sl, link);
			slab_unmap(sl);
		}
	}
	d->nempty = d->nslabs = 0;
	pthread_mutex_destroy(&d->lock);
}

/* Moves up to `want` stacks from sl's free list onto *out; returns how many.
 * The caller holds the lock and has taken sl off its list, or sl is new and
 * not in the depot yet. */
static unsigned slab_take(struct weft__stack_slab *sl, unsigned want, struct weft__stack **out)
{
	unsigned got = 0;
	while (got < want && sl->free) {
		struct weft__stack *s = sl->free;
		sl->free = s->next;
		s->next = *out;
		*out = s;
		got++;
	}
	sl->nfree -= got;
	return got;
}

/* Takes up to `want` (> 0) free stacks from d onto *out, mapping a slab when d
 * has none; returns how many, 0 when none could be had. */
static unsigned depot_take(struct weft__stack_depot *d, unsigned want, struct weft__stack **out)
{
	unsigned got = 0;
	pthread_mutex_lock(&d->lock);
	while (got < want && (!LIST_EMPTY(&d->partial) || !LIST_EMPTY(&d->empty))) {
		struct weft__stack_slab *sl = LIST_FIRST(&d->partial);
		if (!sl) {
			sl = LIST_FIRST(&d->empty);
			d->nempty--;
		}
		LIST_REMOVE(sl, link);
		got += slab_take(sl, want - got, out);
		if (sl->nfree)
			LIST_INSERT_HEAD(&d->partial, sl, link);
	}
	pthread_mutex_unlock(&d->lock);
	if (got)
		return got;
	/* Map outside the lock: other pools may refill meanwhile. */
	struct weft__stack_slab *sl = slab_map(d, d->size);
	if (!sl)
		return 0;
	for (unsigned i = sl->nstacks; i-- > 0;) {
		sl->stacks[i].next = sl->free;
		sl->free = &sl->stacks[i];
	}
	sl->nfree = sl->nstacks;
	got = slab_take(sl, want, out);
	pthread_mutex_lock(&d->lock);
	d->nslabs++;
	if (sl->nfree)
		LIST_INSERT_HEAD(&d->partial, sl, link);
	pthread_mutex_unlock(&d->lock);
	return got;
}

/* Sorts the n stacks of list l by address (merge sort; depth log2 n). */
static struct weft__stack *sort_by_address(struct weft__stack *l, unsigned n)
{
	if (n < 2)
		return l;
	struct weft__stack *mid = l;
	for (unsigned i = 1; i < n / 2; i++)
		mid = mid->next;
	struct weft__stack *r = mid->next;
	mid->next = NULL;
	l = sort_by_address(l, n / 2);
	r = sort_by_address(r, n - n / 2);
	struct weft__stack *head = NULL, **tail = &head;
	while (l && r) {
		struct weft__stack **min = (char *)l->base < (char *)r->base ? &l : &r;
		*tail = *min;
		tail = &(*min)->next;
		*min = (*min)->next;
	}
	*tail = l ? l : r;
	return head;
}

/* Gives the pages of the stacks on sorted list l back to the kernel: one
 * madvise per run of stacks adjacent in memory.  The guard pages inside a
 * run keep their guards: MADV_DONTNEED drops pages, not guard markers, and
 * leaves PROT_NONE alone.  It cannot fail on a mapped range. */
static void release_pages(struct weft__stack *l)
{
	size_t page = weft__page_size();
	while (l) {
		char *lo = (char *)l->base + page, *hi = lo + l->size;
		for (l = l->next; l && (char *)l->base == hi; l = l->next)
			hi = (char *)l->base + page + l->size;
		madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
	}
}

/* Returns the n stacks on list l, none in use, to d: their pages to the
 * kernel, and each slab they complete to the kernel too, past the
 * WEFT__STACK_DEPOT_KEEP empty ones the depot keeps. */
static void depot_give(struct weft__stack_depot *d, struct weft__stack *l, unsigned n)
{
	l = sort_by_address(l, n);
	release_pages(l);
	struct weft__slab_list doomed = LIST_HEAD_INITIALIZER(doomed);
	pthread_mutex_lock(&d->lock);
	for (struct weft__stack *s = l, *next; s; s = next) {
		next = s->next;
		struct weft__stack_slab *sl = s->slab;
		s->next = sl->free;
		sl->free = s;
		bool was_partial = sl->nfree++ > 0;
		if (sl->nfree < sl->nstacks) {
			if (!was_partial)
				LIST_INSERT_HEAD(&d->partial, sl, link);
			continue;
		}
		if (was_partial)
			LIST_REMOVE(sl, link);
		if (d->nempty < WEFT__STACK_DEPOT_KEEP) {
			LIST_INSERT_HEAD(&d->empty, sl, link);
			d->nempty++;
		} else {
			LIST_INSERT_HEAD(&doomed, sl, link);
			d->nslabs--;
		}
	}
	pthread_mutex_unlock(&d->lock);
	struct weft__stack_slab *sl;
	while ((sl = LIST_FIRST(&doomed))) {
		LIST_REMOVE(sl, link);
		slab_unmap(sl);
	}
}

/* ---- Pools and the public calls --------------------------------------------------- */

void *weft__stack_top(const struct weft__stack *s)
{
	return (char *)s->base + weft__page_size() + s->size;
}

struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size)
{
	size_t page = weft__page_size();
	size = (size + page - 1) & ~(page - 1);
	struct weft__stack *s;
	if (p && size == p->size) {
		if (!p->head) {
			unsigned want = p->max / 2;
			want = want < 1 ? 1 : want > WEFT__STACK_SLAB_MAX ? WEFT__STACK_SLAB_MAX : want;
			p->n = depot_take(p->depot, want, &p->head);
			if (!p->n)
				return NULL;
		}
		s = p->head;
		p->head = s->next;
		p->n--;
	} else {
		struct weft__stack_slab *sl = slab_map(NULL, size);
		if (!sl)
			return NULL;
		s = &sl->stacks[0];
	}
	/* A finished task never returned from its first frames; clear ASan's
	 * redzones they left behind (no-op otherwise). */
	WEFT__ASAN_UNPOISON((char *)s->base + page, s->size);
	return s;
}

/* A pool past its cap keeps its newer half, whose pages are the warmest, and
 * hands the rest to its depot: so it flushes once per max/2 puts, not at
 * every put. */
static void pool_flush(struct weft__stack_pool *p)
{
	unsigned keep = p->max / 2;
	struct weft__stack **link = &p->head;
	for (unsigned i = 0; i < keep; i++)
		link = &(*link)->next;
	struct weft__stack *rest = *link;
	*link = NULL;
	depot_give(p->depot, rest, p->n - keep);
	p->n = keep;
}

void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s)
{
	struct weft__stack_depot *d = s->slab->depot;
	if (p && d == p->depot) {
		s->next = p->head;
		p->head = s;
		if (++p->n > p->max)
			pool_flush(p);
	} else if (d) {
		s->next = NULL;
		depot_give(d, s, 1);
	} else {
		slab_unmap(s->slab);
	}
}

void weft__stack_pool_drain(struct weft__stack_pool *p)
{
	if (p->head)
		depot_give(p->depot, p->head, p->n);
	p->head = NULL;
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
