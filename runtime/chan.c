// SPDX-License-Identifier: MIT
/*
 * chan.c - the bounded MPMC channel: fixed-size messages copied through a
 * ring buffer of `cap` slots, or handed task to task when cap is 0.
 *
 * One spinlock (the waiter queue's) guards everything, and one queue holds
 * the parked tasks, senders or receivers but never both: a sender parks only
 * when it can neither hand its message to a parked receiver nor buffer it,
 * and a receiver only when nothing is buffered and no sender is parked.
 * ch->senders says which kind the queue holds while it is not empty.  A task
 * that finds the other kind queued claims the first one (cancelled ones are
 * skipped and dropped) before it would park, so when it does park the queue
 * is empty or holds its own kind, and the invariant holds.  w->data points at
 * the parked task's message: the source of a sender, the destination of a
 * receiver.
 *
 * Transfers always go claim first, then copy:
 *  - a sender that claims a parked receiver copies into the receiver's
 *    message (the ring is then empty: receivers park only on an empty
 *    channel);
 *  - a receiver that claims a parked sender copies from its message, either
 *    straight into its own (rendezvous) or, when it just took the oldest
 *    buffered message of a full buffer, into the freed slot, so the sender's
 *    message keeps its place in FIFO order;
 * and the claimed task is readied with 0 after the unlock.  A task whose
 * claim was lost to its cancellation or deadline has had nothing taken nor
 * given, so -ECANCELED/-ETIMEDOUT always mean "not done".  Close wakes every
 * parked task with -EPIPE: senders have not sent, and parked receivers mean
 * an empty buffer.  The ring and the waiter queue are both FIFO, so messages
 * keep their order and waiters are served in arrival order.
 *
 * A select (weft_chan_select, at the end) waits on several channels with
 * one wait: its own part below says how.
 *
 * This file allocates only in weft_chan_new and takes no lock but the
 * queues'; what readying a task costs (a deque push, perhaps waking a
 * sleeping worker) is the scheduler's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

struct weft_chan {
	struct weft__waitq q; /* parked senders or receivers; q.lock guards all */
	bool senders;         /* what q holds, when q.n > 0 */
	bool closed;
	size_t elem, cap;
	size_t head, len;     /* ring of cap slots: oldest at head */
	unsigned char buf[];
};

struct weft_chan *weft_chan_new(size_t elem_size, size_t capacity)
{
	if (!elem_size ||
	    (capacity && elem_size > (SIZE_MAX - sizeof(struct weft_chan)) / capacity))
		return NULL;
	struct weft_chan *ch = calloc(1, sizeof(*ch) + elem_size * capacity);
	if (ch) {
		ch->elem = elem_size;
		ch->cap = capacity;
	}
	return ch;
}

void weft_chan_free(struct weft_chan *ch)
{
	free(ch);
}

/* Copies one message.  Word-sized messages are the common case (pointers,
 * integers): a constant size lets the compiler inline the copy. */
static inline void copy(const struct weft_chan *ch, void *dst, const void *src)
{
	if (ch->elem == sizeof(uint64_t))
		memcpy(dst, src, sizeof(uint64_t));
	else
		memcpy(dst, src, ch->elem);
}

static void *slot(struct weft_chan *ch, size_t i)
{
	i += ch->head;
	if (i >= ch->cap) /* i < 2 * cap: cheaper than a division */
		i -= ch->cap;
	return ch->buf + i * ch->elem;
}

/* Lock held: claims the first parked task of the kind asked for, or NULL. */
static struct weft__wait *claim_peer(struct weft_chan *ch, bool sender)
{
	if (!ch->q.n || ch->senders != sender)
		return NULL;
	return weft__waitq_claim_first(&ch->q);
}

/* Lock held, released: parks the caller with its message at msg, behind
 * those of its kind.  The queue is empty or holds that kind (see the top). */
static int park(struct weft_chan *ch, bool sender, void *msg)
{
	struct weft__wait w;
	w.data = msg;
	w.value = 0; /* a plain wait: woken with 0 (see woken) */
	ch->senders = sender;
	return weft__waitq_block(&ch->q, weft__current(), &w);
}

/* The result of a call that did not park, and of one that did (which may
 * have been resumed after a switch: see weft__resumed in runtime/context.h). */
static inline struct weft__resumed ret(int rc)
{
	return (struct weft__resumed){rc, 0};
}

static inline struct weft__resumed parked(int rc)
{
	return (struct weft__resumed){rc, 1};
}

/* The result a claimed waiter wakes with when its transfer is done: 0 for a
 * plain send or receive (w->value 0), its case's code for a select's (see
 * select_code below).  One load and no branch on the hand-off path. */
static inline int woken(const struct weft__wait *w)
{
	return (int)w->value;
}

/* send and recv, with the lock held on entry and released on return, are
 * inlined into each of their callers: the blocking one is the hand-off
 * path, where a jump between functions is measurable. */
static inline __attribute__((always_inline)) struct weft__resumed
send_locked(struct weft_chan *ch, const void *msg, bool wait)
{
	struct weft__wait *w;
	if (ch->closed) {
		weft__spin_unlock(&ch->q.lock);
		return ret(-EPIPE);
	}
	if ((w = claim_peer(ch, false))) {
		copy(ch, w->data, msg);
	} else if (ch->len < ch->cap) {
		copy(ch, slot(ch, ch->len), msg);
		ch->len++;
	} else if (wait) {
		/* 0: a receiver took it; -EPIPE: closed first. */
		return parked(park(ch, true, (void *)msg));
	} else {
		weft__spin_unlock(&ch->q.lock);
		return ret(-EAGAIN);
	}
	weft__waitq_unlock_ready(&ch->q, w, w ? woken(w) : 0);
	return ret(0);
}

static inline __attribute__((always_inline)) struct weft__resumed
recv_locked(struct weft_chan *ch, void *msg, bool wait)
{
	struct weft__wait *w;
	if (ch->len) {
		copy(ch, msg, slot(ch, 0));
		if (++ch->head == ch->cap)
			ch->head = 0;
		ch->len--;
		/* A parked sender means the buffer was full: its message takes
		 * the slot just freed, at the tail. */
		if ((w = claim_peer(ch, true))) {
			copy(ch, slot(ch, ch->len), w->data);
			ch->len++;
		}
	} else if ((w = claim_peer(ch, true))) {
		copy(ch, msg, w->data);
	} else if (ch->closed) {
		weft__spin_unlock(&ch->q.lock);
		return ret(-EPIPE);
	} else if (wait) {
		/* 0: a sender filled msg; -EPIPE: closed while empty. */
		return parked(park(ch, false, msg));
	} else {
		weft__spin_unlock(&ch->q.lock);
		return ret(-EAGAIN);
	}
	weft__waitq_unlock_ready(&ch->q, w, w ? woken(w) : 0);
	return ret(0);
}

static inline __attribute__((always_inline)) struct weft__resumed
send(struct weft_chan *ch, const void *msg, bool wait)
{
	weft__spin_lock(&ch->q.lock);
	return send_locked(ch, msg, wait);
}

static inline __attribute__((always_inline)) struct weft__resumed
recv(struct weft_chan *ch, void *msg, bool wait)
{
	weft__spin_lock(&ch->q.lock);
	return recv_locked(ch, msg, wait);
}

/* The bodies of weft_chan_send and weft_chan_recv, whose entries are in
 * runtime/switch_<arch>.S (RESUMING_ENTRY). */
struct weft__resumed weft__chan_send(struct weft_chan *ch, const void *msg);
struct weft__resumed weft__chan_recv(struct weft_chan *ch, void *msg);

struct weft__resumed weft__chan_send(struct weft_chan *ch, const void *msg)
{
	return send(ch, msg, true);
}

int weft_chan_trysend(struct weft_chan *ch, const void *msg)
{
	return (int)send(ch, msg, false).value;
}

struct weft__resumed weft__chan_recv(struct weft_chan *ch, void *msg)
{
	return recv(ch, msg, true);
}

int weft_chan_tryrecv(struct weft_chan *ch, void *msg)
{
	return (int)recv(ch, msg, false).value;
}

/* ---- Select ------------------------------------------------------------------
 *
 * A select parks once, with one token, and queues one record per case on
 * that case's channel: w[i] with data the case's message and value its
 * code, SELECT_CASE | i.  Whoever claims a record first (a transfer, a
 * close, the deadline, a canceller) wins the whole wait, by the wait
 * word's CAS; the other records are stale from then on, and a transfer
 * that pops one fails its claim and drops it, as it would any stale
 * waiter.  A claimed record's transfer wakes the task with the code, so
 * it knows which case went; a close adds SELECT_CLOSED.  Before returning,
 * the select takes its records still queued off their channels (each under
 * its lock), since they live on its stack.
 *
 * The select visits its cases once, one lock at a time, never two: the
 * first that can go is done there, and the wait is armed just before the
 * first record is queued.  A case that can go once records are out is done
 * by the select itself, but only once it has claimed its own wait, so that
 * no other case can go as well; if that claim fails, another case has
 * already won and its waker is on its way.  A case whose queue held only
 * stale waiters turns out not to be able to go after all: the attempt
 * drops them, and the select looks at the case again, or, armed and so
 * self-claimed for nothing, starts over with a new wait.
 *
 * The channel invariant (a queue holds senders or receivers, never both)
 * holds because a record is queued only on a channel where its case could
 * not go; and a select may not have a send and a receive on one channel,
 * or it could find its own record in the way.
 */

#define SELECT_CASE (1 << 30)   /* a select's code: set in every one */
#define SELECT_CLOSED (1 << 29) /* woken by a close: the case got -EPIPE */
#define SELECT_INDEX (SELECT_CLOSED - 1)

/* What a claimed waiter wakes with when its channel closes. */
static int closed_result(const struct weft__wait *w, int result)
{
	return w->value ? (int)w->value | SELECT_CLOSED : result;
}

int weft_chan_close(struct weft_chan *ch)
{
	weft__spin_lock(&ch->q.lock);
	if (ch->closed) {
		weft__spin_unlock(&ch->q.lock);
		return -EPIPE;
	}
	ch->closed = true;
	weft__waitq_wake_all_by(&ch->q, -EPIPE, closed_result);
	return 0;
}

static bool is_send(const struct weft_chan_case *c)
{
	return c->op == WEFT_CHAN_SEND;
}

static int select_check(const struct weft_chan_case *cs, size_t n)
{
	if (!n || n > WEFT_CHAN_SELECT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (cs[i].op != WEFT_CHAN_SEND && cs[i].op != WEFT_CHAN_RECV)
			return -EINVAL;
		for (size_t j = 0; j < i && cs[i].ch; j++)
			if (cs[j].ch == cs[i].ch && cs[j].op != cs[i].op)
				return -EINVAL;
	}
	return 0;
}

/* Where a select starts looking: pseudo-random, so that of several cases
 * that can go none is always passed over.  Per thread; no switch in
 * between, so the thread-local's address is never held across one. */
static size_t select_start(size_t n)
{
	static _Thread_local uint32_t x;
	if (!x)
		x = (uint32_t)(uintptr_t)&x | 1;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return (size_t)(((uint64_t)x * n) >> 32); /* in [0, n), with no division */
}

/* The k-th case from start on (both below n), with no division: a select's
 * loops visit cases in this order. */
static inline size_t nth(size_t start, size_t k, size_t n)
{
	size_t i = start + k;
	return i < n ? i : i - n;
}

/* Lock held: whether case c could go now (closed counts: it returns -EPIPE). */
static bool can_go(const struct weft_chan *ch, bool sender)
{
	if (ch->closed || (ch->q.n && ch->senders != sender))
		return true;
	return sender ? ch->len < ch->cap : ch->len > 0;
}

/* Tries every case once, from start on: the index of the one done (its
 * result set), or -EAGAIN. */
static int select_poll(struct weft_chan_case *cs, size_t n, size_t start)
{
	for (size_t k = 0; k < n; k++) {
		size_t i = nth(start, k, n);
		if (!cs[i].ch)
			continue;
		int rc = (int)(is_send(&cs[i]) ? send(cs[i].ch, cs[i].msg, false)
					       : recv(cs[i].ch, cs[i].msg, false)).value;
		if (rc != -EAGAIN) {
			cs[i].result = rc;
			return (int)i;
		}
	}
	return -EAGAIN;
}

/* Takes the records of the first `visited` cases from start on off their
 * channels, where still queued, but case `won`'s: its waker popped it. */
static void select_unqueue(struct weft_chan_case *cs, struct weft__wait *w, size_t n,
			   size_t start, size_t visited, size_t won)
{
	for (size_t k = 0; k < visited; k++) {
		size_t i = nth(start, k, n);
		if (!cs[i].ch || i == won)
			continue;
		weft__spin_lock(&cs[i].ch->q.lock);
		if (w[i].queued)
			weft__waitq_remove(&cs[i].ch->q, &w[i]);
		weft__spin_unlock(&cs[i].ch->q.lock);
	}
}

#define SELECT_PARK (-1) /* armed, and every case queued or another one won */

/*
 * One pass over the cases from start on, each under its own channel's lock:
 * does the first that can go, or queues w[i] for it, arming w[0] before the
 * first record goes out.  Returns the index of a case done here (its
 * result set), SELECT_PARK, -EAGAIN to start over (see the top of this
 * part), or the arm's -ECANCELED / -ETIMEDOUT.  *visited counts the cases
 * whose records may be queued.
 */
static int select_queue(struct weft_task *self, struct weft_chan_case *cs, struct weft__wait *w,
			size_t n, size_t start, size_t *visited)
{
	bool armed = false;
	int rc;
	for (size_t k = 0; k < n; k++) {
		size_t i = nth(start, k, n);
		struct weft_chan *ch = cs[i].ch;
		bool sender = is_send(&cs[i]);
		*visited = k;
		if (!ch)
			continue;
		weft__spin_lock(&ch->q.lock);
		while (can_go(ch, sender)) {
			/* Armed, a case goes only by winning the wait. */
			if (armed && !weft__wait_claim(&w[0])) {
				weft__spin_unlock(&ch->q.lock);
				return SELECT_PARK;
			}
			rc = (int)(sender ? send_locked(ch, cs[i].msg, false)
					  : recv_locked(ch, cs[i].msg, false)).value;
			if (rc != -EAGAIN) {
				cs[i].result = rc;
				return (int)i;
			}
			if (armed)
				return -EAGAIN;
			/* Only stale waiters, dropped now: look again. */
			weft__spin_lock(&ch->q.lock);
		}
		if (!armed) {
			if ((rc = weft__wait_arm(self, &w[0])) < 0) {
				weft__spin_unlock(&ch->q.lock);
				return rc;
			}
			armed = true;
		}
		w[i].task = self;
		w[i].token = w[0].token;
		w[i].data = cs[i].msg;
		w[i].value = SELECT_CASE | (int)i;
		ch->senders = sender;
		weft__waitq_push(&ch->q, &w[i]);
		weft__spin_unlock(&ch->q.lock);
	}
	*visited = n;
	/* Every ch NULL: a wait only the deadline or a canceller ends. */
	if (!armed && (rc = weft__wait_arm(self, &w[0])) < 0)
		return rc;
	return SELECT_PARK;
}

static int select_wait(struct weft_chan_case *cs, size_t n)
{
	struct weft_task *self = weft__current();
	struct weft__wait w[n];
	for (;;) {
		size_t start = select_start(n), visited;
		int rc = select_queue(self, cs, w, n, start, &visited);
		if (rc == SELECT_PARK)
			rc = weft__wait_park(self, &w[0], WEFT_NEVER, 0);
		size_t won = rc >= SELECT_CASE ? (size_t)(rc & SELECT_INDEX) : n;
		select_unqueue(cs, w, n, start, visited, won);
		if (won < n) {
			cs[won].result = rc & SELECT_CLOSED ? -EPIPE : 0;
			return (int)won;
		}
		if (rc != -EAGAIN)
			return rc; /* a case done here, or -ECANCELED/-ETIMEDOUT/-ENOMEM */
	}
}

int weft_chan_select(struct weft_chan_case *cs, size_t n)
{
	int rc = select_check(cs, n);
	return rc < 0 ? rc : select_wait(cs, n);
}

int weft_chan_tryselect(struct weft_chan_case *cs, size_t n)
{
	int rc = select_check(cs, n);
	return rc < 0 ? rc : select_poll(cs, n, select_start(n));
}
