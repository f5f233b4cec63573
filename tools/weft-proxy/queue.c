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
 * reset, and serves those with -ECONNRESET: they leave rather
 * than be handed a server for nobody, and hold no place meanwhile.  The
 * other waiters sleep until they are served or their time is up: a
 * thousand waiters cost one wake-up a second, not a thousand.
 *
 * Waiters of every generation share their backend's one queue, as the
 * servers' slots are shared (balance.h); each picks among the servers of
 * its own generation.  So each generation waits in a lane of its own, and
 * the order above holds within a lane: a reload that replaces a backend's
 * servers must not leave the new generation's connections, which the new
 * servers have room for, behind an old one that waits for an old server
 * (as HAProxy's new process does not queue behind the old one's).  The
 * dispatcher serves the lanes oldest first, each up to its first waiter
 * that finds no room; every lane's head ticks.  A lane lives as long as
 * its generation's backend (queue_lane_open, queue_lane_close), and there
 * are seldom more than two.
 *
 * The waiter's record lives on its task's stack: the dispatcher wakes it
 * under the lock, and the waiter takes the lock once more before it
 * returns, so no release is still touching its record.
 *
 * No lost wake-up: a waiter counts itself (backend_stats.queued) before it
 * looks for room, and a freer gives its slot back before it reads the
 * count, each with a full fence between: the waiter sees the slot or the
 * freer sees the waiter.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
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

/* The waiters of one generation's backend, under the queue's lock. */
struct queue_lane {
	TAILQ_ENTRY(queue_lane) link;
	TAILQ_HEAD(, waiter) waiters;
	struct waiter *ticker;      /* the head that knows it must tick, or NULL */
};

struct queue {
	pthread_mutex_t lock;       /* never held across a suspension */
	TAILQ_HEAD(, queue_lane) lanes; /* oldest generation first */
};

struct queue *queue_new(void)
{
	struct queue *q = shared_new(sizeof(*q));
	if (q) {
		pthread_mutex_init(&q->lock, NULL);
		TAILQ_INIT(&q->lanes);
	}
	return q;
}

int queue_lane_open(struct pbackend *pb)
{
	struct queue_lane *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	TAILQ_INIT(&l->waiters);
	pthread_mutex_lock(&pb->queue->lock);
	TAILQ_INSERT_TAIL(&pb->queue->lanes, l, link);
	pthread_mutex_unlock(&pb->queue->lock);
	pb->lane = l;
	return 0;
}

void queue_lane_close(struct pbackend *pb)
{
	if (!pb->lane)
		return;
	/* Empty: every waiter's connection holds the generation, and so pb. */
	pthread_mutex_lock(&pb->queue->lock);
	TAILQ_REMOVE(&pb->queue->lanes, pb->lane, link);
	pthread_mutex_unlock(&pb->queue->lock);
	free(pb->lane);
	pb->lane = NULL;
}

bool queue_busy(const struct pbackend *pb)
{
	return atomic_load(&pb->stats->queued) != 0;
}

/* Under the queue's lock: w leaves its lane. */
static void unlink_waiter(struct waiter *w)
{
	struct queue_lane *l = w->pb->lane;
	TAILQ_REMOVE(&l->waiters, w, link);
	atomic_fetch_sub(&w->pb->stats->queued, 1);
	if (l->ticker == w)
		l->ticker = NULL;
}

/* Under the queue's lock: w leaves its lane served, with server s, or none
 * and err, and is woken. */
static void serve(struct waiter *w, struct pserver *s, int err)
{
	unlink_waiter(w);
	w->srv = s;
	w->err = s ? 0 : err;
	w->served = true;
	weft_sem_release(&w->wake);
}

/* Under the queue's lock: a head that went to sleep behind others is
 * woken to tick (see the top). */
static void mind_head(struct queue_lane *l)
{
	struct waiter *h = TAILQ_FIRST(&l->waiters);
	if (h && l->ticker != h) {
		l->ticker = h;
		weft_sem_release(&h->wake);
	}
}

/* Under q's lock: serves each lane's waiters in order while picks find
 * room, the oldest generation's lane first. */
static void dispatch_locked(struct queue *q)
{
	struct queue_lane *l;
	TAILQ_FOREACH(l, &q->lanes, link) {
		struct waiter *w, *next;
		for (w = TAILQ_FIRST(&l->waiters); w; w = next) {
			next = TAILQ_NEXT(w, link);
			int why;
			struct pserver *s = balance_pick(w->pb, w->peer, w->tried, w->ntried, &why);
			if (!s && why == -EBUSY) {
				if (w->ntried == 0)
					break;
				continue;
			}
			serve(w, s, why);
		}
		mind_head(l);
	}
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

/* Whether poll(2)'s revents say the client reset: POLLHUP needs both
 * directions shut, and the proxy shuts none before the relay, so a FIN
 * alone shows as neither. */
static bool gone(short revents)
{
	return revents & (POLLERR | POLLHUP);
}

bool client_left(int fd)
{
	struct pollfd pf = {.fd = fd};
	return poll(&pf, 1, 0) > 0 && gone(pf.revents);
}

/* Under the queue's lock: serves every waiter of lane l whose client left
 * with -ECONNRESET, one poll(2) per GONE_BATCH waiters. */
static void sweep_gone(struct queue_lane *l)
{
	struct waiter *w = TAILQ_FIRST(&l->waiters);
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
					serve(batch[i], NULL, -ECONNRESET);
	}
}

int queue_wait(struct pbackend *pb, int client, const struct weft_addr *peer,
	       struct pserver *const *tried, size_t ntried, uint64_t deadline,
	       struct pserver **srv)
{
	struct queue *q = pb->queue;
	struct queue_lane *l = pb->lane;
	struct waiter w = {
		.pb = pb, .client = client, .peer = peer, .tried = tried, .ntried = ntried,
	};
	weft_sem_init(&w.wake, 0);
	pthread_mutex_lock(&q->lock);
	if (atomic_load(&pb->stats->queued) >= pb->cfg->queue_size) {
		pthread_mutex_unlock(&q->lock);
		return -EBUSY;
	}
	TAILQ_INSERT_TAIL(&l->waiters, &w, link);
	atomic_fetch_add(&pb->stats->queued, 1);
	atomic_thread_fence(memory_order_seq_cst);
	/* A slot freed before the count went up: served at once if no one
	 * is ahead, or the one ahead is served with it. */
	dispatch_locked(q);
	while (!w.served) {
		bool head = TAILQ_FIRST(&l->waiters) == &w;
		if (head)
			l->ticker = &w;
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
			sweep_gone(l);
			dispatch_locked(q);
			continue;
		}
		unlink_waiter(&w);
		mind_head(l);
		pthread_mutex_unlock(&q->lock);
		return rc;
	}
	pthread_mutex_unlock(&q->lock);
	if (!w.srv)
		return w.err;
	/* Served, perhaps as a timeout or cancellation came: a slot taken
	 * is the caller's, unless its client left since the last look. */
	if (client_left(client)) {
		balance_done(w.srv);
		queue_dispatch(pb);
		return -ECONNRESET;
	}
	*srv = w.srv;
	return 0;
}
