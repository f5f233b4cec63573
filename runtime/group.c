// SPDX-License-Identifier: MIT
/*
 * group.c - task groups: structured concurrency in the manner of Trio's
 * nurseries.  A group owns its children: weft_group_wait returns only when
 * all of them have finished, even if the waiter is cancelled meanwhile (it
 * then cancels them and keeps waiting, shielded).  So no child outlives the
 * scope that spawned it, and a failure is never silently dropped.
 *
 * g->q.lock guards everything in the group: the list of running children
 * (linked through t->glink, so cancelling them all needs no
 * allocation), the counters and the first failure.  A finished child is
 * unlinked in weft__group_child_done, which its finisher calls before the
 * task's DONE bit is set; while linked, a child's task object is alive, which
 * is what makes the cancel walk safe.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime/internal.h"
#include "scheduler/internal.h"

struct weft_group {
	struct weft__waitq q;       /* the task in weft_group_wait; q.lock guards all */
	unsigned flags;
	bool cancelled, failed;
	uint64_t running;
	intptr_t first_failure;
	LIST_HEAD(, weft_task) children;
};

static bool is_failure(intptr_t r)
{
	return r < 0 && r >= -4095;
}

struct weft_group *weft_group_new(unsigned flags)
{
	struct weft_group *g = calloc(1, sizeof(*g));
	if (g)
		g->flags = flags;
	return g;
}

void weft_group_free(struct weft_group *g)
{
	free(g);
}

static void cancel_locked(struct weft_group *g)
{
	g->cancelled = true;
	struct weft_task *c;
	LIST_FOREACH(c, &g->children, glink)
		weft__task_cancel(c);
}

void weft_group_cancel(struct weft_group *g)
{
	weft__spin_lock(&g->q.lock);
	cancel_locked(g);
	weft__spin_unlock(&g->q.lock);
}

int weft_group_spawn(struct weft_group *g, weft_fn fn, void *arg,
		     const struct weft_spawn_opts *opts)
{
	struct weft__worker *w = weft__current()->worker;
	struct weft_task *t = weft__task_new(w->rt, w, fn, arg, opts);
	if (!t)
		return -ENOMEM;
	/* The group holds no handle: the child frees itself when done. */
	atomic_store_explicit(&t->done, WEFT__RELEASED, memory_order_relaxed);
	t->group = g;
	weft__spin_lock(&g->q.lock);
	if (g->cancelled) {
		/* Start it cancelled rather than not at all: its object
		 * is made, and it ends at its first suspension point. */
		weft__task_cancel(t);
	}
	LIST_INSERT_HEAD(&g->children, t, glink);
	g->running++;
	weft__spin_unlock(&g->q.lock);
	weft__enqueue(w->rt, t, false);
	return 0;
}

void weft__group_child_done(struct weft_task *t)
{
	struct weft_group *g = t->group;
	weft__spin_lock(&g->q.lock);
	LIST_REMOVE(t, glink);
	if (is_failure(t->result) && !g->failed) {
		g->failed = true;
		g->first_failure = t->result;
		if (g->flags & WEFT_GROUP_FAIL_FAST)
			cancel_locked(g);
	}
	struct weft__wait *w = NULL;
	if (--g->running == 0)
		w = weft__waitq_claim_first(&g->q); /* one waiter: the owner */
	weft__spin_unlock(&g->q.lock);
	if (w)
		weft__wait_ready(w->task, 0);
}

int weft_group_wait(struct weft_group *g)
{
	struct weft_task *self = weft__current();
	struct weft_scope shield;
	int interrupted = 0;
	weft__spin_lock(&g->q.lock);
	while (g->running > 0) {
		struct weft__wait w;
		int rc = weft__waitq_block(&g->q, self, &w);
		if (rc < 0 && !interrupted) {
			/* Our scope is cut short (cancelled, past its deadline, or
			 * a deadline whose timer could not be stored, -ENOMEM,
			 * which would otherwise fail every wait at once and spin):
			 * so is the group's.  Wait on, shielded and without
			 * deadline (no timer), for the children to end. */
			interrupted = rc;
			weft_group_cancel(g);
			weft_scope_shield(&shield, WEFT_NEVER);
		}
		weft__spin_lock(&g->q.lock);
	}
	int result = g->failed ? (int)g->first_failure : 0;
	weft__spin_unlock(&g->q.lock);
	if (interrupted) {
		weft_scope_end(&shield);
		return interrupted;
	}
	return result;
}
