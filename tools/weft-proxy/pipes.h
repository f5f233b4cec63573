// SPDX-License-Identifier: MIT
/*
 * pipes.h - a pool of pipes per worker thread, for the spliced data path
 * of relay.c: a direction takes a pipe for one transfer and gives it back,
 * empty, when its source has nothing more ready.  pipes.c has the why.
 */
#ifndef WEFT_PROXY_PIPES_H
#define WEFT_PROXY_PIPES_H

#include <stddef.h>

/* The pipe a transfer moves bytes through: socket -> w, r -> socket. */
struct pipe_pair {
	int r, w;
	size_t size; /* bytes it holds (F_GETPIPE_SZ) */
};

/*
 * Takes a pipe from the calling thread's pool, or makes one (sized with
 * F_SETPIPE_SZ to PIPES_SIZE, or left at the kernel's size when the
 * per-user pipe limit refuses).  Returns 0 with *p filled, or -errno of
 * pipe2 (-EMFILE, -ENFILE, ...) or -ENOMEM.  Any thread; does not suspend.
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

#endif
