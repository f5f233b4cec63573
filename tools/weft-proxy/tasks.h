// SPDX-License-Identifier: MIT
/*
 * tasks.h - ending a group of the proxy's own tasks (health checkers,
 * host-name refreshers) whose state the caller frees next.
 */
#ifndef WEFT_PROXY_TASKS_H
#define WEFT_PROXY_TASKS_H

#include <weft.h>

/* Cancels every task of g, waits until the last has ended and frees g.
 * The wait is shielded: the tasks' state may go only after they have
 * ended, even when the caller is being cancelled itself.  Task only. */
static inline void tasks_stop(struct weft_group *g)
{
	weft_group_cancel(g);
	struct weft_scope sc;
	weft_scope_shield(&sc, WEFT_NEVER);
	weft_group_wait(g);
	weft_scope_end(&sc);
	weft_group_free(g);
}

#endif
