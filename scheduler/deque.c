// SPDX-License-Identifier: MIT
/*
 * scheduler/deque.c - the per-worker Chase-Lev work-stealing deque.
 *
 * The owner pushes and pops at the bottom without any read-modify-write,
 * except when it pops the last item; thieves take from the top with one CAS
 * each. The circular array doubles when a push finds it full and never
 * shrinks.
 *
 * Algorithm: D. Chase and Y. Lev, "Dynamic Circular Work-Stealing Deque",
 * SPAA 2005. Memory orderings: N. M. Le, A. Pop, A. Cohen and F. Zappa
 * Nardelli, "Correct and Efficient Work-Stealing for Weak Memory Models",
 * PPoPP 2013 (the C11 version, proved there), with the changes listed under
 * "Traps" and two equivalent substitutions: push publishes with a release
 * store of bottom instead of a release fence followed by a relaxed store, and
 * the array pointer is loaded with acquire where the paper uses consume (which
 * compilers implement as acquire anyway).
 *
 * Fields (see deque.h): top is CAS'd by thieves and, for the last item, by the
 * owner; bottom, array and every slot are written only by the owner; retired
 * and top_seen (the last top push read, which spares it reading top on every
 * push) are owner-only. Thieves read top, bottom, array, the array's mask and
 * slots.
 *
 * Notation: t = top, b = bottom, C = capacity of the current array (a power
 * of two). The items are the logical indices [t, b); index i lives in slot
 * i & (C - 1).
 *
 * Invariants:
 *  1. top never decreases: it only changes by a successful CAS from t to t+1.
 *  2. 0 <= top, and top <= bottom whenever the owner is not inside pop.
 *     Inside pop, top <= bottom + 1 (pop lowers bottom before it reads top).
 *  3. bottom - top <= C: push grows the array before it would overwrite an
 *     index that has not been taken yet.
 *  4. Each index is taken at most once: a thief takes t only by its CAS on
 *     top; the owner takes b either by its CAS on top (when t == b) or,
 *     when t < b after its fence, because every thief then either sees the
 *     lowered bottom or read a top below b (the fences in pop and steal).
 *  5. Only the owner writes slots, and it writes slot i & (C - 1) only once
 *     it has seen top > i - C; the thief that took i - C read the slot before
 *     its CAS (trap 3), and that read happens-before the owner's overwrite.
 *  6. Arrays are never freed before destroy (trap 4); each array on the
 *     retired list is half the size of the one that replaced it.
 *
 * Traps avoided:
 *  (1) Push must continue with the grown array. The paper's listing keeps
 *      using the array it loaded before resizing, so the item lands in the
 *      retired array and is lost (found by CDSChecker). push uses the array
 *      grow() returns.
 *  (2) Indices are signed 64-bit. pop starts by computing b = bottom - 1; on a
 *      deque that was never used that is -1, and with unsigned indices it
 *      would wrap to 2^64 - 1, pass the t <= b test and read a garbage slot.
 *      64 bits never overflow in practice (2^63 pushes).
 *  (3) A thief reads the slot BEFORE its CAS on top. Once top has moved past
 *      t, the owner may push over that slot, so a read after the CAS could
 *      return a newer item (taken twice, the old one lost).
 *  (4) Reclamation. A thief that loaded the old array pointer just before a
 *      grow may still read from it afterwards (its CAS then decides whether
 *      the value counts). Freeing it at grow time would be a use-after-free.
 *      We keep grown-out-of arrays on the owner's retired list and free them
 *      in weft__deque_destroy, when no thief can run. Capacity doubles, so the
 *      retired arrays together have fewer slots than the live one: this at
 *      most doubles the deque's footprint (total < 2 * live capacity, and the
 *      live capacity is below 2 * the peak number of items once it has grown).
 *      Hazard pointers or epochs would free earlier but put extra stores and
 *      a fence or counter on every steal, to save memory that is small,
 *      bounded and allocated only as often as the deque doubles.
 *  (5) ThreadSanitizer does not model standalone atomic_thread_fence, so it
 *      would miss the synchronisation the fences provide. Under TSan each seq_cst fence is removed and the accesses on
 *      both sides of it become seq_cst (see FENCED below). That is
 *      equivalent here: pop's seq_cst store of bottom and load of top, and
 *      steal's seq_cst loads of top and bottom, all sit in the single total
 *      order S, which forbids the same store->load reordering; every write
 *      to top after init is a seq_cst CAS, so whichever of the two sides
 *      comes first in S is seen by the other, exactly as with the fences.
 */
#include "scheduler/deque.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#if defined(__SANITIZE_THREAD__)
#define WEFT__DEQUE_TSAN 1
#elif defined(__has_feature)
/* Nested: gcc 12 has no __has_feature and rejects it even behind &&. */
#if __has_feature(thread_sanitizer)
#define WEFT__DEQUE_TSAN 1
#endif
#endif

/*
 * FENCED(order) is the order of an access adjacent to one of the two seq_cst
 * fences, and SC_FENCE() is that fence; under TSan the fence goes and the
 * access becomes seq_cst instead (trap 5).
 */
#ifdef WEFT__DEQUE_TSAN
#define FENCED(order) memory_order_seq_cst
#define SC_FENCE() ((void)0)
#else
#define FENCED(order) (order)
#define SC_FENCE() atomic_thread_fence(memory_order_seq_cst)
#endif

struct weft__deque_array {
    int64_t mask;                   /* capacity - 1; never changes */
    struct weft__deque_array *next; /* retired list link; owner only */
    /* Atomic (accessed relaxed) because a thief holding a stale top may read
     * a slot while the owner rewrites it; that thief's CAS then fails and the
     * value is dropped, but the access must not be a data race. */
    _Atomic(void *) slots[];
};

_Static_assert(offsetof(struct weft__deque, bottom) - offsetof(struct weft__deque, top) >= 64,
               "top and bottom must not share a cache line");
_Static_assert(sizeof(struct weft__deque) % 64 == 0, "weft__deque_new uses aligned_alloc(64, ...)");

static _Atomic(void *) *slot(struct weft__deque_array *a, int64_t i)
{
    return &a->slots[(uint64_t)i & (uint64_t)a->mask];
}

/* capacity is a power of two; NULL when out of memory or too large. */
static struct weft__deque_array *array_alloc(uint64_t capacity)
{
    const size_t max_slots = (PTRDIFF_MAX - sizeof(struct weft__deque_array)) / sizeof(_Atomic(void *));
    if (capacity > max_slots)
        return NULL;
    /* Slots are left uninitialised: a slot is only read after the owner has
     * stored to it, except by a thief whose CAS is bound to fail. */
    struct weft__deque_array *a =
        malloc(sizeof(struct weft__deque_array) + (size_t)capacity * sizeof(_Atomic(void *)));
    if (a == NULL)
        return NULL;
    a->mask = (int64_t)capacity - 1;
    a->next = NULL;
    return a;
}

int weft__deque_init(struct weft__deque *d, unsigned log2_capacity)
{
    /* 2^62 keeps the doubling in grow() within uint64_t; array_alloc refuses
     * far smaller sizes anyway. */
    struct weft__deque_array *a = log2_capacity <= 62 ? array_alloc((uint64_t)1 << log2_capacity) : NULL;
    if (a == NULL)
        return -ENOMEM;
    /* Plain initialisation: no other thread can see d yet (see deque.h). */
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->array, a);
    d->retired = NULL;
    d->top_seen = 0;
    return 0;
}

void weft__deque_destroy(struct weft__deque *d)
{
    /* Relaxed: the caller guarantees no other thread uses d any more. */
    free(atomic_load_explicit(&d->array, memory_order_relaxed));
    atomic_store_explicit(&d->array, NULL, memory_order_relaxed);
    while (d->retired != NULL) {
        struct weft__deque_array *next = d->retired->next;
        free(d->retired);
        d->retired = next;
    }
}

struct weft__deque *weft__deque_new(unsigned log2_capacity)
{
    struct weft__deque *d = aligned_alloc(64, sizeof *d);
    if (d == NULL)
        return NULL;
    if (weft__deque_init(d, log2_capacity) != 0) {
        free(d);
        return NULL;
    }
    return d;
}

void weft__deque_free(struct weft__deque *d)
{
    if (d == NULL)
        return;
    weft__deque_destroy(d);
    free(d);
}

/* Owner only, slow path of push: replaces old (full, holding [t, b)) by an
 * array twice its size. Returns the new array, or NULL with d unchanged. */
static struct weft__deque_array *grow(struct weft__deque *d, struct weft__deque_array *old, int64_t t, int64_t b)
{
    struct weft__deque_array *a = array_alloc(2 * ((uint64_t)old->mask + 1));
    if (a == NULL)
        return NULL;
    /* Copying from a t that thieves have since passed is harmless: those
     * copies are never read by a winning CAS. */
    for (int64_t i = t; i < b; i++) {
        /* Relaxed load: the owner wrote these slots itself. Relaxed store:
         * published by the release store of array just below. */
        atomic_store_explicit(slot(a, i), atomic_load_explicit(slot(old, i), memory_order_relaxed),
                              memory_order_relaxed);
    }
    /* Release: pairs with the acquire load of array in steal, so a thief
     * that sees the new array also sees its header and the copied slots. */
    atomic_store_explicit(&d->array, a, memory_order_release);
    /* Trap (4): a thief may still be reading old; free it only in destroy. */
    old->next = d->retired;
    d->retired = old;
    assert(weft__deque_check(d));
    return a;
}

int weft__deque_push(struct weft__deque *d, void *item)
{
    assert(item != NULL && ((uintptr_t)item & 1) == 0);
    /* Relaxed: only the owner, i.e. this thread, writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* Relaxed: only the owner writes array. */
    struct weft__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
    /* top_seen is a top we read earlier (with the acquire below), so a
     * lower bound of top (invariant 1): if slot b is free by it, it is
     * free, and the thief that took b - C read that slot before our
     * acquire that returned top_seen, so before our store (invariant 5).
     * Only a deque that looks full by it reads top again: with a thief
     * stealing each item as it is pushed, reading top on every push cost
     * a miss on the line the thief's CAS had just taken. */
    int64_t t = d->top_seen;
    if (b - t > a->mask) {
        /* Acquire: pairs with the release half of the CAS on top in
         * steal, so the read of slot b - C by the thief that took index
         * b - C happens-before our store into that slot (invariant 5). A
         * stale t only makes us grow early. */
        t = d->top_seen = atomic_load_explicit(&d->top, memory_order_acquire);
    }
    if (b - t > a->mask) {
        /* Trap (1): from here on use the grown array, not the retired one. */
        a = grow(d, a, t, b);
        if (a == NULL)
            return -ENOMEM;
    }
    /* Relaxed: published by the release store of bottom just below. */
    atomic_store_explicit(slot(a, b), item, memory_order_relaxed);
    /* Release: pairs with the acquire load of bottom in steal: a thief that
     * sees b + 1 also sees the item (and any array grown on the way). The
     * owner's later relaxed stores of bottom in pop stay in this store's
     * release sequence (C17 5.1.2.4), so thieves reading those synchronise
     * with it too. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return 0;
}

void *weft__deque_pop(struct weft__deque *d)
{
    /* Relaxed: only the owner writes bottom and array. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    struct weft__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
    /* Reserve index b before looking at top. Relaxed: the fence below orders
     * it (seq_cst under TSan, trap 5). */
    atomic_store_explicit(&d->bottom, b, FENCED(memory_order_relaxed));
    /* seq_cst fence: forbids the store of bottom above from being reordered
     * after the load of top below (store->load, which even x86 allows). Pairs
     * with the fence in steal: either that thief's load of bottom sees our
     * b, or our load of top sees the t that thief read (or a later one). So a
     * thief and the owner cannot both believe index b is theirs without both
     * going to the CAS. */
    SC_FENCE();
    /* Relaxed: ordered by the fence above (seq_cst under TSan). */
    int64_t t = atomic_load_explicit(&d->top, FENCED(memory_order_relaxed));
    /* Trap (2): on an empty deque b may be -1 here; it must compare as such. */
    if (t > b) {
        /* Empty: undo the reservation. Relaxed: publishes nothing, as the
         * deque stays empty (top >= b + 1 already), so a thief reading this
         * value finds it empty or loses its CAS. */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    /* Relaxed: the owner wrote this slot itself (in push or grow). */
    void *item = atomic_load_explicit(slot(a, b), memory_order_relaxed);
    if (t == b) {
        /* The last item: thieves may be racing for index t == b, so it goes to
         * whoever moves top first. seq_cst as in Le et al., where the proof
         * puts every CAS on top in the total order together with the fences;
         * failure is relaxed because we then take nothing. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            item = NULL;
        /* Relaxed: top == b + 1 now whoever won, so this publishes nothing
         * (same argument as the empty case). */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return item;
}

void *weft__deque_steal(struct weft__deque *d)
{
    /* Acquire: pairs with the release half of the CAS that last moved top (in
     * steal or pop), so that CAS happens-before our fence. Without it we could
     * combine a new top with a stale, larger bottom and take an index the
     * owner popped without a CAS because it saw the older top. */
    int64_t t = atomic_load_explicit(&d->top, FENCED(memory_order_acquire));
    /* seq_cst fence: the thief's half of pop's store->load fence. Keeping our
     * load of top before it and our load of bottom after it, it ensures that
     * if pop's fence comes first in the total order we see the lowered
     * bottom, and otherwise pop sees our t (or later). */
    SC_FENCE();
    /* Acquire: pairs with the release store of bottom in push, making the
     * slot for index t (and the array it was stored in) visible. */
    int64_t b = atomic_load_explicit(&d->bottom, FENCED(memory_order_acquire));
    if (t >= b)
        return NULL;
    /* Acquire: pairs with the release store of array in grow, so the copied
     * slots are visible if we get the new array. An old array is also fine:
     * index t is still in it unless our CAS is going to fail (trap 4 keeps
     * it allocated). */
    struct weft__deque_array *a = atomic_load_explicit(&d->array, memory_order_acquire);
    /* Trap (3): read the slot before the CAS. Relaxed: its contents were made
     * visible by the acquires above; if the owner is rewriting it, top has
     * already moved past t and the value is dropped. */
    void *item = atomic_load_explicit(slot(a, t), memory_order_relaxed);
    /* seq_cst: only one CAS from t succeeds, so only one taker gets index t.
     * Its release half keeps the slot read above before the CAS and pairs
     * with the acquire load of top in push (invariant 5); its acquire half
     * pairs with the release half of the CAS that wrote t. seq_cst rather
     * than acq_rel as in Le et al., whose proof puts it in the total order
     * with the fences. Failure is relaxed: we then use nothing we read. */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
        return WEFT__DEQUE_ABORT;
    return item;
}

/* The external definition of the inline one in deque.h (C99 6.7.4). */
extern inline int64_t weft__deque_size(const struct weft__deque *d);

int weft__deque_check(const struct weft__deque *d)
{
    /* Relaxed: the owner reads its own bottom and array. top can only grow
     * meanwhile, and never past the bottom the owner holds outside pop, so
     * reading it after bottom keeps the comparisons below valid. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    const struct weft__deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
    if (a == NULL || a->mask < 0 || (a->mask & (a->mask + 1)) != 0)
        return 0; /* capacity must be a power of two */
    if (t < 0 || t > b || b - t > a->mask + 1)
        return 0; /* invariants 2 and 3 */
    const struct weft__deque_array *bigger = a;
    for (const struct weft__deque_array *r = d->retired; r != NULL; bigger = r, r = r->next) {
        if (2 * (r->mask + 1) != bigger->mask + 1)
            return 0; /* invariant 6: the retired list halves at each step */
    }
    return 1;
}
