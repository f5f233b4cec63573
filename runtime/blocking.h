// SPDX-License-Identifier: MIT
/*
 * runtime/blocking.h - the seam between the blocking pool (runtime/blocking.c),
 * the runtime that owns it (scheduler/rt.c) and the resolver (net/addr.c).
 *
 * The public half is weft_spawn_blocking in weft.h; its protocol is written
 * at the top of blocking.c.
 */
#ifndef WEFT_RUNTIME_BLOCKING_H
#define WEFT_RUNTIME_BLOCKING_H

#include <stdint.h>

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates rt's pool (no thread yet): at most max_threads threads (0: 64),
 * each leaving after idle_ns without work (0: 10 s).  Returns 0 or -ENOMEM.
 * Called by weft_rt_new before any task can run. */
int weft__blocking_init(struct weft_rt *rt, unsigned max_threads, uint64_t idle_ns);

/* Stops rt's pool: waits for the functions its threads are running, joins
 * every thread and frees the pool.  Jobs still queued belong to tasks that
 * shutdown abandoned; they are dropped without running.  Called once no
 * worker runs (free_rt); does nothing if rt has no pool. */
void weft__blocking_fini(struct weft_rt *rt);

/* The threads rt's pool has now (started and not yet gone).  Racy; for
 * tests. */
unsigned weft__blocking_threads(struct weft_rt *rt);

/*
 * weft_spawn_blocking for work the caller may walk away from.  While fn waits
 * in the queue it behaves as weft_spawn_blocking.  If the caller is cancelled
 * or its deadline passes while fn runs, the call returns -ECANCELED /
 * -ETIMEDOUT at once and leaves fn running.  arg therefore lives on the heap,
 * and its ownership follows the result: on 0, arg is the caller's again; on
 * any error, arg goes to release(arg, r) exactly once, where r is fn's result
 * if it ran, else the error: before the call returns if fn never ran, or on
 * the pool thread when an abandoned fn returns.  Returns as
 * weft_spawn_blocking, or -ENOMEM.  Task only; a suspension point.
 */
int weft__spawn_blocking_detachable(weft_fn fn, void *arg,
				    void (*release)(void *arg, intptr_t result),
				    intptr_t *result);

#ifdef __cplusplus
}
#endif

#endif
