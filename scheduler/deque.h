// SPDX-License-Identifier: MIT
/*
 * scheduler/deque.h - the per-worker work-stealing deque (internal to weft).
 *
 * One deque per worker. The owning worker pushes and pops at the bottom
 * (LIFO: the most recently readied coroutine is the one most likely still in
 * cache); any other thread steals from the top (FIFO: the oldest item, which
 * tends to stand for the largest remaining piece of work). The algorithm, its
 * memory orderings and its invariants are described in deque.c.
 *
 * Items are non-NULL pointers with the low bit clear, which leaves the value 1
 * free to mean "steal lost a race" (WEFT__DEQUE_ABORT).
 *
 * C++ translation units (the googletest files) see the functions but not the
 * struct layout: C++17 has no _Atomic, and passing a std::atomic-based mirror
 * of the struct to C code would rest on an ABI coincidence. They allocate
 * through weft__deque_new / weft__deque_free instead.
 */
#ifndef WEFT_SCHEDULER_DEQUE_H
#define WEFT_SCHEDULER_DEQUE_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct weft__deque_array; /* private to deque.c */

#ifndef __cplusplus
/*
 * Who touches what:
 *   top      CAS by thieves (steal) and by the owner (pop of the last item);
 *            read by every thread.
 *   bottom   written only by the owner (push, pop); read by every thread.
 *   array    written only by the owner (when push grows it); read by every
 *            thread.
 *   retired  read and written only by the owner (and destroy).
 *   top_seen read and written only by the owner (push).
 *
 * The padding keeps top and bottom at least 64 bytes apart, so the thieves'
 * CAS traffic on top never invalidates the line holding the owner's bottom,
 * wherever the struct is placed. Placing the struct itself on a 64-byte
 * boundary (weft__deque_new does) also keeps unrelated neighbours off both
 * lines.
 */
struct weft__deque {
    _Atomic int64_t top; /* stealers CAS it; own cache line */
    char pad0[64 - sizeof(_Atomic int64_t)];
    _Atomic int64_t bottom; /* written only by the owner */
    _Atomic(struct weft__deque_array *) array;
    struct weft__deque_array *retired; /* owner only: grown-out-of arrays, see deque.c */
    int64_t top_seen; /* owner only: a top push has read, see deque.c */
    char pad1[64 - sizeof(_Atomic int64_t) - sizeof(_Atomic(struct weft__deque_array *)) -
              sizeof(struct weft__deque_array *) - sizeof(int64_t)];
};
#else
struct weft__deque;
#endif

/* Returned by weft__deque_steal when it lost a race; the caller may retry. */
#define WEFT__DEQUE_ABORT ((void *)1)

/*
 * Initialises d with room for 2^log2_capacity items before it first grows.
 * Returns 0, or -ENOMEM (also when the capacity cannot be represented).
 * Hand d to other threads only through something that synchronises (thread
 * creation, a release store, a mutex).
 */
int weft__deque_init(struct weft__deque *d, unsigned log2_capacity);

/* Frees d's arrays. No thread may use d any more, nor be inside a call on it. */
void weft__deque_destroy(struct weft__deque *d);

/* Heap-allocated, 64-byte-aligned deque: init/destroy plus the allocation.
 * weft__deque_new returns NULL when out of memory; weft__deque_free(NULL) is
 * a no-op. */
struct weft__deque *weft__deque_new(unsigned log2_capacity);
void weft__deque_free(struct weft__deque *d);

/* Owner only. Pushes item at the bottom, growing the deque when it is full.
 * Returns 0, or -ENOMEM, in which case item was not pushed and d is unchanged. */
int weft__deque_push(struct weft__deque *d, void *item);

/* Owner only. Takes the most recently pushed item; NULL when empty. */
void *weft__deque_pop(struct weft__deque *d);

/* Any thread. Takes the oldest item; NULL when empty, WEFT__DEQUE_ABORT when
 * another thread took that item first. */
void *weft__deque_steal(struct weft__deque *d);

/* Any thread. A racy estimate of the number of items, never negative.
 * Inline in C, where the worker asks on every few hand-offs (worker.c,
 * next_local); deque.c holds the external definition C++ links to. */
#ifdef __cplusplus
int64_t weft__deque_size(const struct weft__deque *d);
#else
inline int64_t weft__deque_size(const struct weft__deque *d)
{
    /* Relaxed: an estimate; the two loads are not a consistent snapshot
     * anyway, hence the clamp (pop may hold bottom at top - 1 for a moment). */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    return b > t ? b - t : 0;
}
#endif

/* Owner only, for use inside assert(): 1 when d's invariants hold, else 0. */
int weft__deque_check(const struct weft__deque *d);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_SCHEDULER_DEQUE_H */
