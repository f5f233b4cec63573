// SPDX-License-Identifier: MIT
/*
 * sync.c - mutex, condition variable, semaphore, wait group and one-shot
 * future, all built on the wait protocol (runtime/wait.c).
 *
 * Each primitive guards its state with the spinlock of its weft__waitq and
 * parks tasks on that queue with weft__waitq_block.  Every hand-off follows
 * one rule: a waker first claims a waiter (weft__waitq_claim_first), and only
 * then transfers what the waiter waits for (mutex ownership, a semaphore
 * unit, a notification).  A waiter that was cancelled or timed out first
 * cannot be claimed, is skipped, and the hand-off goes to the next one; so an
 * operation that completed is never reported as -ECANCELED/-ETIMEDOUT, and a
 * cancelled one has taken nothing.  Wakers ready claimed tasks only after
 * releasing the queue lock: readying may wake a sleeping worker (a syscall),
 * which should not stretch a critical section others spin on.  A claimed
 * waiter's record stays valid until it is readied (it lives on its parked
 * task's stack), and the primitive itself is not touched after the unlock,
 * so a woken task may free it at once.
 *
 * Fairness: every queue is FIFO, and the mutex and the semaphore hand what
 * they release straight to the first waiter instead of letting a running
 * task barge in (see weft/sync.h).
 *
 * The state words behind the queue lock are plain fields of the public
 * structs; only the mutex's state is also touched outside the lock (its
 * one-CAS fast paths), with __atomic builtins.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime/internal.h"


/* With q's lock held: parks the calling task on q until woken (releasing the
 * lock meanwhile).  Returns the waker's result, or -ECANCELED/-ETIMEDOUT, or
 * -ENOMEM when no timer could be had for the task's deadline. */
static int block(struct weft__waitq *q)
{
	struct weft__wait w;
	return weft__waitq_block(q, weft__current(), &w);
}

/* ---- Mutex ---------------------------------------------------------------------
 * state: 0 free, 1 held, 2 held and waiters may be queued.  A locker sets 2
 * under q.lock before it queues itself, so unlock's one-CAS fast path (1 -> 0)
 * can only succeed when nobody is queued; at 2 unlock takes q.lock and passes
 * ownership to the first claimable waiter without the state ever reading 0,
 * so no fast-path locker can slip in ahead of it. */
enum { M_FREE = 0, M_HELD = 1, M_WAITERS = 2 };

void weft_mutex_init(struct weft_mutex *m)
{
	*m = (struct weft_mutex)WEFT_MUTEX_INIT;
}

int weft_mutex_trylock(struct weft_mutex *m)
{
	uint32_t exp = M_FREE;
	/* Acquire: the previous owner's critical section; pairs with the
	 * release in weft_mutex_unlock. */
	return __atomic_compare_exchange_n(&m->state, &exp, M_HELD, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED)
		       ? 0
		       : -EBUSY;
}

int weft_mutex_lock(struct weft_mutex *m)
{
	if (weft_mutex_trylock(m) == 0)
		return 0;
	weft__spin_lock(&m->q.lock);
	/* Relaxed: only a guess for the CASes below, which recheck it. */
	uint32_t s = __atomic_load_n(&m->state, __ATOMIC_RELAXED);
	for (;;) {
		/* Acquire on taking a free mutex: pairs with the release in
		 * weft_mutex_unlock, as in trylock.  Relaxed otherwise: 1 -> 2
		 * only announces us, and q.lock orders it against unlock's
		 * slow path. */
		if (s == M_FREE) {
			if (__atomic_compare_exchange_n(&m->state, &s, M_HELD, false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
				weft__spin_unlock(&m->q.lock);
				return 0;
			}
		} else if (s == M_WAITERS ||
			   __atomic_compare_exchange_n(&m->state, &s, M_WAITERS, false,
						       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
			break;
		}
	}
	/* 0: the unlocker handed us the mutex, already marked held. */
	return block(&m->q);
}

void weft_mutex_unlock(struct weft_mutex *m)
{
	uint32_t exp = M_HELD;
	/* Release: our critical section, to the next owner's acquire in
	 * trylock / lock. */
	if (__atomic_compare_exchange_n(&m->state, &exp, M_FREE, false, __ATOMIC_RELEASE,
					__ATOMIC_RELAXED))
		return;
	weft__spin_lock(&m->q.lock);
	struct weft__wait *w = weft__waitq_claim_first(&m->q);
	if (w) {
		/* Hand-off: the state stays held; the new owner sees our
		 * critical section through weft__wait_ready (wait.c,
		 * invariant 4).  With no one left queued the next unlock may
		 * take the fast path. */
		__atomic_store_n(&m->state, m->q.n ? M_WAITERS : M_HELD, __ATOMIC_RELAXED);
	} else {
		/* Every waiter was cancelled or timed out.  Release: pairs with
		 * the acquire of the next locker's CAS. */
		__atomic_store_n(&m->state, M_FREE, __ATOMIC_RELEASE);
	}
	weft__waitq_unlock_ready(&m->q, w, 0);
}

/* ---- Condition variable -------------------------------------------------------- */

void weft_cond_init(struct weft_cond *c)
{
	*c = (struct weft_cond)WEFT_COND_INIT;
}

int weft_cond_wait(struct weft_cond *c, struct weft_mutex *m)
{
	/* Release m only under c's lock, so a signal (which needs that lock)
	 * cannot fall between the unlock and our being queued. */
	weft__spin_lock(&c->q.lock);
	weft_mutex_unlock(m);
	int rc = block(&c->q);
	/* Re-acquire in every case, shielded and without deadline, so the
	 * caller always holds m on return whatever ended the wait. */
	struct weft_scope s;
	weft_scope_shield(&s, WEFT_NEVER);
	weft_mutex_lock(m);
	weft_scope_end(&s);
	return rc;
}

void weft_cond_signal(struct weft_cond *c)
{
	weft__spin_lock(&c->q.lock);
	weft__waitq_unlock_ready(&c->q, weft__waitq_claim_first(&c->q), 0);
}

void weft_cond_broadcast(struct weft_cond *c)
{
	weft__spin_lock(&c->q.lock);
	weft__waitq_wake_all(&c->q, 0);
}

/* ---- Semaphore ------------------------------------------------------------------
 * count is only positive while nobody waits: release gives its unit to the
 * first claimable waiter, and banks it only if there is none. */

void weft_sem_init(struct weft_sem *s, uint64_t count)
{
	*s = (struct weft_sem)WEFT_SEM_INIT(count);
}

/* With s->q.lock held: takes a unit if one is banked. */
static bool sem_take(struct weft_sem *s)
{
	if (!s->count)
		return false;
	s->count--;
	return true;
}

int weft_sem_acquire(struct weft_sem *s)
{
	weft__spin_lock(&s->q.lock);
	if (sem_take(s)) {
		weft__spin_unlock(&s->q.lock);
		return 0;
	}
	/* 0: a releaser handed its unit to us. */
	return block(&s->q);
}

int weft_sem_tryacquire(struct weft_sem *s)
{
	weft__spin_lock(&s->q.lock);
	bool got = sem_take(s);
	weft__spin_unlock(&s->q.lock);
	return got ? 0 : -EAGAIN;
}

void weft_sem_release(struct weft_sem *s)
{
	weft__spin_lock(&s->q.lock);
	struct weft__wait *w = weft__waitq_claim_first(&s->q);
	if (!w)
		s->count++;
	weft__waitq_unlock_ready(&s->q, w, 0);
}

/* ---- Wait group -------------------------------------------------------------------
 * No lock-free fast path in wait: a waiter that saw zero before the last
 * done() released the lock could return and free a wait group (often on its
 * stack) that done() is still unlocking. */

void weft_wg_init(struct weft_wg *wg)
{
	*wg = (struct weft_wg)WEFT_WG_INIT;
}

int weft_wg_add(struct weft_wg *wg, int64_t n)
{
	weft__spin_lock(&wg->q.lock);
	if (wg->count + n < 0) {
		weft__spin_unlock(&wg->q.lock);
		return -EINVAL;
	}
	wg->count += n;
	if (wg->count == 0)
		weft__waitq_wake_all(&wg->q, 0);
	else
		weft__spin_unlock(&wg->q.lock);
	return 0;
}

int weft_wg_done(struct weft_wg *wg)
{
	return weft_wg_add(wg, -1);
}

int weft_wg_wait(struct weft_wg *wg)
{
	weft__spin_lock(&wg->q.lock);
	if (wg->count == 0) {
		weft__spin_unlock(&wg->q.lock);
		return 0;
	}
	return block(&wg->q);
}

/* ---- One-shot future ---------------------------------------------------------------
 * value is written once, under the lock, before resolved is set; readers
 * look at resolved under the lock too (see the wait group on why there is no
 * lock-free fast path).  Waiters read value after their wake-up, which
 * weft__wait_ready orders after the write (wait.c, invariant 4). */

struct weft_future {
	struct weft__waitq q; /* awaiting tasks; q.lock guards the rest */
	bool resolved;
	intptr_t value;
};

struct weft_future *weft_future_new(void)
{
	return calloc(1, sizeof(struct weft_future));
}

void weft_future_free(struct weft_future *f)
{
	free(f);
}

int weft_future_resolve(struct weft_future *f, intptr_t value)
{
	weft__spin_lock(&f->q.lock);
	if (f->resolved) {
		weft__spin_unlock(&f->q.lock);
		return -EALREADY;
	}
	f->value = value;
	f->resolved = true;
	weft__waitq_wake_all(&f->q, 0);
	return 0;
}

int weft_future_poll(struct weft_future *f, intptr_t *value)
{
	weft__spin_lock(&f->q.lock);
	bool done = f->resolved;
	if (done)
		*value = f->value;
	weft__spin_unlock(&f->q.lock);
	return done ? 0 : -EAGAIN;
}

int weft_future_await(struct weft_future *f, intptr_t *value)
{
	weft__spin_lock(&f->q.lock);
	int rc = 0;
	if (!f->resolved)
		rc = block(&f->q);
	else
		weft__spin_unlock(&f->q.lock);
	if (rc == 0 && value)
		*value = f->value;
	return rc;
}
