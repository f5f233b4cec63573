// SPDX-License-Identifier: MIT
/*
 * wait.c - how a task parks and how it is woken: the one protocol under
 * every blocking call (sync primitives, join, sleep, and I/O).
 *
 * A task can be woken by several parties at once: the primitive it waits on
 * (a sender, an unlock), its timer, and a canceller on any thread.  Exactly
 * one must win, and whatever it hands over must be what the task sees; a
 * loser must touch nothing of the wait.  Two words in the task decide it.
 *
 * The wait word, t->wake = token << WEFT__WAKE_SHIFT | flags:
 *   token   numbers the task's waits; weft__wait_arm increments it.
 *   ARMED   a wait with this token is parked or about to park, unclaimed.
 *   CANCEL  cancellation was requested (sticky: never cleared).
 *   SHIELD  cancellation is not reported now (weft_scope_shield).
 *   IO      an I/O wait: only its completion claims it; a canceller asks the
 *           owning ring to cancel the operation instead (io/io.c).
 *
 * The run word, t->run: RUNNING, PARKED, NOTIFIED (runtime/internal.h).
 *
 * Invariants:
 *  1. Only the task itself sets ARMED (arm) and SHIELD; a claim clears ARMED
 *     with a CAS that also checks the token, so at most one claim succeeds per
 *     token, and a waker holding an old token (a stale timer, a late
 *     canceller) fails without side effects.
 *  2. arm and cancel are both read-modify-writes of the wait word, so they are
 *     totally ordered: either arm sees CANCEL and does not park, or cancel
 *     sees ARMED and claims it (an I/O wait: has its ring cancel the
 *     operation, whose completion then claims).  No fence is needed.
 *  3. The claimer, and only it, writes t->wake_result and then calls
 *     weft__wait_ready exactly once.
 *  4. ready first loads run (acquire).  PARKED means the task is fully
 *     switched out, and nothing but this ready can make it runnable (its
 *     wait is claimed, so no other waker gets here, and finish_switch has
 *     committed): ready queues it with no read-modify-write, and run stays
 *     PARKED until prepare_run sets RUNNING.  Otherwise ready exchanges run
 *     to NOTIFIED.  If that finds PARKED (the commit came in between), ready
 *     queues it.  If it finds RUNNING, the task is still on its way out;
 *     weft__finish_switch, run by the next context after the switch, fails
 *     its RUNNING -> PARKED CAS and queues it instead.  Either way it is
 *     queued once, and never while its stack is in use.
 *  5. Task objects are never freed while the runtime lives (task.c), so a
 *     stale waker's CAS lands on valid memory and fails on the token.
 */
#include <errno.h>

#include "runtime/internal.h"
#include "io/internal.h"
#include "scheduler/internal.h"

static int arm(struct weft_task *self, struct weft__wait *w, uint64_t kind)
{
	if (self->deadline != WEFT_NEVER && weft_now() >= self->deadline)
		return -ETIMEDOUT;
	/* Read after the clock, not before: nothing then lives across that
	 * call, which spared a channel hand-off two saved registers. */
	uint64_t old = atomic_load_explicit(&self->wake, memory_order_relaxed);
	for (;;) {
		if ((old & WEFT__WAKE_CANCEL) && !(old & WEFT__WAKE_SHIELD))
			return -ECANCELED;
		uint64_t tok = (old >> WEFT__WAKE_SHIFT) + 1;
		uint64_t new = tok << WEFT__WAKE_SHIFT | WEFT__WAKE_ARMED | kind |
			       (old & (WEFT__WAKE_CANCEL | WEFT__WAKE_SHIELD));
		/* Invariant 2 needs no ordering (one word, RMWs only), but a
		 * canceller that claims this wait writes t->wake_result: release
		 * orders our read of the previous wait's result before it (pairs
		 * with the acquire of the claim CAS). */
		if (atomic_compare_exchange_weak_explicit(&self->wake, &old, new,
							  memory_order_release,
							  memory_order_relaxed)) {
			w->task = self;
			w->token = tok;
			w->queued = false;
			return 0;
		}
	}
}

int weft__wait_arm(struct weft_task *self, struct weft__wait *w)
{
	return arm(self, w, 0);
}

int weft__wait_arm_io(struct weft_task *self, struct weft__wait *w)
{
	return arm(self, w, WEFT__WAKE_IO);
}

bool weft__wake_token(struct weft_task *t, uint64_t token, int result)
{
	uint64_t old = atomic_load_explicit(&t->wake, memory_order_relaxed);
	for (;;) {
		if ((old >> WEFT__WAKE_SHIFT) != token || !(old & WEFT__WAKE_ARMED))
			return false;
		/* Acquire, pairing with the release of the arm: the winner sees
		 * what the task did before arming (its read of the previous
		 * wait's result, so our write of wake_result cannot race it). */
		if (atomic_compare_exchange_weak_explicit(&t->wake, &old,
							  old & ~WEFT__WAKE_ARMED,
							  memory_order_acquire,
							  memory_order_relaxed))
			break;
	}
	weft__wait_ready(t, result);
	return true;
}

/* The common case, a task that parked before its waker came, needs no
 * read-modify-write and is inline (weft__wait_ready, runtime/internal.h). */
void weft__wait_ready_unparked(struct weft_task *t)
{
	/* Still on its way out, or committing now.  Release: wake_result and
	 * the hand-over data reach finish_switch, which requeues t if it sees
	 * NOTIFIED; acquire: as with the load if the commit came first. */
	uint32_t was = atomic_exchange_explicit(&t->run, WEFT__NOTIFIED, memory_order_acq_rel);
	if (was == WEFT__PARKED)
		weft__enqueue(t->rt, t, true);
}

int weft__wait_park(struct weft_task *self, struct weft__wait *w, uint64_t wake_at,
		    int at_result)
{
	if (self->deadline < wake_at) {
		wake_at = self->deadline;
		at_result = -ETIMEDOUT;
	}
	if (wake_at != WEFT_NEVER &&
	    weft__timers_add(&self->worker->timers, wake_at, self, w->token, at_result) < 0) {
		/* No timer, no bounded wait: end it now if nobody else did. */
		if (weft__wait_claim(w))
			return -ENOMEM;
	}
	self->after = WEFT__AFTER_PARK;
	weft__schedule(self);
	return self->wake_result;
}

void weft__task_cancel(struct weft_task *t)
{
	/* Acq_rel: totally ordered with the task's arm (invariant 2). */
	uint64_t old = atomic_fetch_or_explicit(&t->wake, WEFT__WAKE_CANCEL, memory_order_acq_rel);
	if (!(old & WEFT__WAKE_ARMED) || (old & WEFT__WAKE_SHIELD))
		return;
	if (old & WEFT__WAKE_IO)
		weft__io_cancel_request(t); /* the ring cancels, the CQE wakes */
	else
		weft__wake_token(t, old >> WEFT__WAKE_SHIFT, -ECANCELED);
}

void weft__wait_shield(struct weft_task *self, bool on)
{
	if (on)
		atomic_fetch_or_explicit(&self->wake, WEFT__WAKE_SHIELD, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(&self->wake, ~WEFT__WAKE_SHIELD, memory_order_relaxed);
}

/* ---- Waiter queues (the inline halves are in runtime/internal.h) ------------ */

int weft__waitq_block(struct weft__waitq *q, struct weft_task *self, struct weft__wait *w)
{
	int rc = weft__wait_arm(self, w);
	if (rc < 0) {
		weft__spin_unlock(&q->lock);
		return rc;
	}
	weft__waitq_push(q, w);
	weft__spin_unlock(&q->lock);
	rc = weft__wait_park(self, w, WEFT_NEVER, 0);
	/* rc < 0 first: one test for the common 0 rather than three. */
	if (rc < 0 && (rc == -ECANCELED || rc == -ETIMEDOUT || rc == -ENOMEM)) {
		/* Not woken through q: w may still be queued there. */
		weft__spin_lock(&q->lock);
		if (w->queued)
			weft__waitq_remove(q, w);
		weft__spin_unlock(&q->lock);
	}
	return rc;
}

/* With q's lock held: claims every waiter, releases the lock, then readies
 * them all with result, or with what result_of says for each, in FIFO
 * order. */
void weft__waitq_wake_all_by(struct weft__waitq *q, int result,
			     int (*result_of)(const struct weft__wait *w, int result))
{
	struct weft__wait *first = NULL, **tail = &first, *w;
	while ((w = weft__waitq_claim_first(q))) {
		/* Popped, so w->next is ours to reuse as a private list link. */
		*tail = w;
		tail = &w->next;
	}
	*tail = NULL;
	weft__spin_unlock(&q->lock);
	while ((w = first)) {
		/* Read the link and the result before readying: w dies with
		 * the wait. */
		first = w->next;
		weft__wait_ready(w->task, result_of ? result_of(w, result) : result);
	}
}

void weft__waitq_wake_all(struct weft__waitq *q, int result)
{
	weft__waitq_wake_all_by(q, result, NULL);
}
