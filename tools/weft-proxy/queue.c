// SPDX-License-Identifier: MIT
/*
 * queue.c - connections waiting for a server slot: one FIFO per backend,
 * served in order, each slot handed straight to the waiter it goes to.
 *
 * When every server a connection could use is at its max_connections, the
 * connection waits here (at most queue_size of them, at most queue_timeout
 * each).  What an operator of HAProxy expects of its queue:
 *  - first come, first served: a slot goes to the connection that has
 *    waited longest, and a new connection queues behind those waiting
 *    (queue_busy) instead of taking a slot one of them was owed;
 *  - one wake-up per slot: whoever frees capacity calls queue_dispatch,
 *    which picks for the waiters in order under the queue's lock and wakes
 *    only the ones it picked for, their slots already taken (balance_pick):
 *    none wakes to find its slot gone, and a thousand waiters cost a freed
 *    slot one pick, not a thousand;
 *  - a place kept: a waiter stays where it is until it is served, its
 *    queue_timeout passes or its client leaves.
 *
 * The pick stops at the first waiter that tried no server yet and found no
 * room: none behind it would.  One that found none among the servers it
 * has not tried (after failed connects) is passed over, so that the room
 * it cannot use goes to the next.
 *
 * Capacity that comes with no event to say so (a server brought up by its
 * checks, a passive mark running out, a reload's higher limit) is found by
 * the waiter at the head, which picks again every QUEUE_TICK (a waiter
 * made the head is woken to begin: mind_head).  At each tick the head
 * also looks, with one poll(2) per GONE_BATCH waiters, for clients that
 * reset or closed, and serves those with -ECONNRESET: they leave rather
 * than be handed a server for nobody, and hold no place meanwhile.  The
 * other waiters sleep until they are served or their time is up: a
 * thousand waiters cost one wake-up a second, not a thousand.
 *
 * Waiters of every generation share their backend's one queue, as the
 * servers' slots are shared (balance.h); each picks among the servers of
 * its own generation.  The waiter's record lives on its task's stack: the
 * dispatcher wakes it under the lock, and the waiter takes the lock once
 * more before it returns, so no release is still touching its record.
 *
 * No lost wake-up: a waiter counts itself (backend_stats.queued) before it
 * looks for room, and a freer gives its slot back before it reads the
 * count, each with a full fence between: the waiter sees the slot or the
 * freer sees the waiter.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/queue.h>

#include <weft.h>
#include <weft/sync.h>

#include "queue.h"

#define QUEUE_TICK WEFT_SEC
#define GONE_BATCH 64

struct waiter {
	TAILQ_ENTRY(waiter) link;
	struct pbackend *pb;
	int client;
	const struct weft_addr *peer;
	struct pserver *const *tried;
	size_t ntried;
	/* Released when served, and when made the head (to begin ticking). */
	struct weft_sem wake;
	bool served;                /* under the lock: srv or err is set */
	struct pserver *srv;
	int err;
};

struct queue {
	pthread_mutex_t lock;       /* never held across a suspension */
	TAILQ_HEAD(, waiter) waiters;
	struct waiter *ticker;      /* the head that knows it must tick, or NULL */
};

struct queue *queue_new(void)
{
	struct queue *q = shared_new(sizeof(*q));
	if (q) {
		pthread_mutex_init(&q->lock, NULL);
		TAILQ_INIT(&q->waiters);
	}
	return q;
}

bool queue_busy(const struct pbackend *pb)
{
	return atomic_load(&pb->stats->queued) != 0;
}

/* Under q's lock: w leaves the queue. */
static void unlink_waiter(struct queue *q, struct waiter *w)
{
	TAILQ_REMOVE(&q->waiters, w, link);
	atomic_fetch_sub(&w->pb->stats->queued, 1);
	if (q->ticker == w)
		q->ticker = NULL;
}

/* Under q's lock: w leaves the queue served, with server s, or none and
 * err, and is woken. */
static void serve(struct queue *q, struct waiter *w, struct pserver *s, int err)
{
	unlink_waiter(q, w);
	w->srv = s;
	w->err = s ? 0 : err;
	w->served = true;
	weft_sem_release(&w->wake);
}

/* Under q's lock: a head that went to sleep behind others is woken to
 * tick (see the top). */
static void mind_head(struct queue *q)
{
	struct waiter *h = TAILQ_FIRST(&q->waiters);
	if (h && q->ticker != h) {
		q->ticker = h;
		weft_sem_release(&h->wake);
	}
}

/* Under q's lock: serves the waiters in order while picks find room. */
static void dispatch_locked(struct queue *q)
{
	struct waiter *w, *next;
	for (w = TAILQ_FIRST(&q->waiters); w; w = next) {
		next = TAILQ_NEXT(w, link);
		int why;
		struct pserver *s = balance_pick(w->pb, w->peer, w->tried, w->ntried, &why);
		if (!s && why == -EBUSY) {
			if (w->ntried == 0)
				break;
			continue;
		}
		serve(q, w, s, why);
	}
	mind_head(q);
}

void queue_dispatch(struct pbackend *pb)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!queue_busy(pb))
		return;
	pthread_mutex_lock(&pb->queue->lock);
	dispatch_locked(pb->queue);
	pthread_mutex_unlock(&pb->queue->lock);
}

/* Whether poll(2)'s revents say the client reset or closed (POLLHUP needs
 * both directions shut, and the proxy shuts none while queued). */
static bool gone(short revents)
{
	return revents & (POLLERR | POLLHUP);
}

/* Under q's lock: serves every waiter whose client left with -ECONNRESET,
 * one poll(2) per GONE_BATCH waiters. */
static void sweep_gone(struct queue *q)
{
	struct waiter *w = TAILQ_FIRST(&q->waiters);
	while (w) {
		struct waiter *batch[GONE_BATCH];
		struct pollfd pf[GONE_BATCH];
		size_t n = 0;
		for (; w && n < GONE_BATCH; w = TAILQ_NEXT(w, link)) {
			batch[n] = w;
			pf[n++] = (struct pollfd){.fd = w->client};
		}
		if (poll(pf, n, 0) > 0)
			for (size_t i = 0; i < n; i++)
				if (gone(pf[i].revents))
					serve(q, batch[i], NULL, -ECONNRESET);
	}
}

int queue_wait(struct pbackend *pb, int client, const struct weft_addr *peer,
	       struct pserver *const *tried, size_t ntried, uint64_t deadline,
	       struct pserver **srv)
{
	struct queue *q = pb->queue;
	struct waiter w = {
		.pb = pb, .client = client, .peer = peer, .tried = tried, .ntried = ntried,
	};
	weft_sem_init(&w.wake, 0);
	pthread_mutex_lock(&q->lock);
	if (atomic_load(&pb->stats->queued) >= pb->cfg->queue_size) {
		pthread_mutex_unlock(&q->lock);
		return -EBUSY;
	}
	TAILQ_INSERT_TAIL(&q->waiters, &w, link);
	atomic_fetch_add(&pb->stats->queued, 1);
	atomic_thread_fence(memory_order_seq_cst);
	/* A slot freed before the count went up: served at once if no one
	 * is ahead, or the one ahead is served with it. */
	dispatch_locked(q);
	while (!w.served) {
		bool head = TAILQ_FIRST(&q->waiters) == &w;
		if (head)
			q->ticker = &w;
		pthread_mutex_unlock(&q->lock);
		uint64_t now = weft_now();
		int rc = -ETIMEDOUT;
		if (now < deadline) {
			uint64_t wait = deadline - now;
			struct weft_scope sc;
			weft_scope_deadline(&sc, head && wait > QUEUE_TICK ? QUEUE_TICK : wait);
			rc = weft_sem_acquire(&w.wake);
			weft_scope_end(&sc);
		}
		/* Also waits for a release of w.wake to be over. */
		pthread_mutex_lock(&q->lock);
		if (w.served)
			break;
		if (rc == 0)
			continue; /* made the head */
		if (rc == -ETIMEDOUT && weft_now() < deadline) {
			/* The head's tick. */
			sweep_gone(q);
			dispatch_locked(q);
			continue;
		}
		unlink_waiter(q, &w);
		mind_head(q);
		pthread_mutex_unlock(&q->lock);
		return rc;
	}
	pthread_mutex_unlock(&q->lock);
	if (!w.srv)
		return w.err;
	/* Served, perhaps as a timeout or cancellation came: a slot taken
	 * is the caller's, unless its client left since the last look. */
	struct pollfd pf = {.fd = client};
	if (poll(&pf, 1, 0) == 1 && gone(pf.revents)) {
		balance_done(w.srv);
		queue_dispatch(pb);
		return -ECONNRESET;
	}
	*srv = w.srv;
	return 0;
}
