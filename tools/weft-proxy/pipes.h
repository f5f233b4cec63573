// SPDX-License-Identifier: MIT
/*
 * pipes.h - a pool of pipes per worker thread, for the spliced data path
 * of relay.c: a direction takes a pipe for one transfer and gives it back,
 * empty, when its source has nothing more ready.  pipes.c has the why.
 */
#ifndef WEFT_PROXY_PIPES_H
#define WEFT_PROXY_PIPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The pipes the spliced path may hold at once, per worker: its pool, and
 * the limit on pipes in existence that pipes_limit sets (config.c counts
 * their descriptors in the headroom). */
#define PIPES_PER_WORKER 64

/* The pipe a transfer moves bytes through: socket -> w, r -> socket. */
struct pipe_pair {
	int r, w;
	size_t size; /* bytes it holds (F_GETPIPE_SZ) */
};

/*
 * Takes a pipe from the calling thread's pool, or makes one (sized with
 * F_SETPIPE_SZ to PIPES_SIZE, or left at the kernel's size when the
 * per-user pipe limit refuses).  Returns 0 with *p filled, or -EMFILE at
 * the limit (pipes_limit), or -errno of pipe2 (-EMFILE, -ENFILE, ...) or
 * fcntl; each failure is counted (pipes_stats).  Any thread; does not
 * suspend.
 */
int pipes_get(struct pipe_pair *p);

/*
 * Gives back a pipe that holds no bytes: to the calling thread's pool
 * (not necessarily the one it came from), or closed when that pool is
 * full.  A pipe that may hold bytes goes to pipes_drop instead.  Any
 * thread; does not suspend; no failure path.
 */
void pipes_put(struct pipe_pair *p);

/* Closes a pipe, with whatever it holds.  No failure path. */
void pipes_drop(struct pipe_pair *p);

/*
 * Sets how many pipes may exist at once, pooled or in use (default: no
 * limit).  Past it pipes_get fails with -EMFILE and the relay goes
 * buffered: the descriptors the limits keep for connections are never
 * spent on pipes.  Any thread.
 */
void pipes_limit(size_t max);

/* The pool's figures for the metrics, as pipes_stats reads them. */
struct pipes_stats {
	size_t in_use;          /* taken by a transfer now */
	size_t pooled;          /* empty in a worker's pool */
	size_t limit;           /* pipes_limit's; SIZE_MAX: none */
	uint64_t refused_limit; /* pipes_get refused: the limit was reached */
	uint64_t refused_error; /* pipes_get failed to make one (pipe2, fcntl) */
};

/*
 * Fills *out.  A racy snapshot of counters updated apart: in_use is
 * derived from pipes in existence and pooled, read one after the other,
 * and is clamped at 0 when a pipe made or freed between the two reads
 * would make it negative.  Any thread; no failure path.
 */
void pipes_stats(struct pipes_stats *out);

#ifdef __cplusplus
}
#endif

#endif
