// SPDX-License-Identifier: MIT
/*
 * resolve.h - looking up the host names of servers again while the proxy
 * runs ([backend] resolve_interval).  How it works: resolve.c.
 */
#ifndef WEFT_PROXY_RESOLVE_H
#define WEFT_PROXY_RESOLVE_H

#include <stddef.h>

#include "balance.h"

struct resolve_run;

/*
 * Starts the lookups of the nbackends backends at backs: a task for each
 * server written as host:port in a backend with resolve_interval set,
 * which looks it up every interval and points the server at what it finds
 * (balance_set_addr).  *out is the handle for resolve_stop, or NULL when
 * no server needs one.  Task only.  Returns 0, or -ENOMEM with nothing
 * started.
 */
int resolve_start(struct pbackend *backs, size_t nbackends, struct resolve_run **out);

/* Stops them and waits until the last has ended (shielded from the
 * caller's own cancellation); NULL is a no-op.  Task only. */
void resolve_stop(struct resolve_run *r);

#endif
