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
 * This file allocates only in weft_chan_new and takes no lock but the
 * queue's; what readying a task costs (a deque push, perhaps waking a
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

/* send and recv are inlined into each of their two callers: the blocking
 * one is the hand-off path, where a jump between functions is measurable. */
static inline __attribute__((always_inline)) struct weft__resumed
send(struct weft_chan *ch, const void *msg, bool wait)
{
	weft__spin_lock(&ch->q.lock);
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
	weft__waitq_unlock_ready(&ch->q, w, 0);
	return ret(0);
}

static inline __attribute__((always_inline)) struct weft__resumed
recv(struct weft_chan *ch, void *msg, bool wait)
{
	weft__spin_lock(&ch->q.lock);
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
	weft__waitq_unlock_ready(&ch->q, w, 0);
	return ret(0);
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

int weft_chan_close(struct weft_chan *ch)
{
	weft__spin_lock(&ch->q.lock);
	if (ch->closed) {
		weft__spin_unlock(&ch->q.lock);
		return -EPIPE;
	}
	ch->closed = true;
	weft__waitq_wake_all(&ch->q, -EPIPE);
	return 0;
}
