// SPDX-License-Identifier: MIT
/*
 * queue.h - connections waiting for a server slot: one FIFO per backend
 * (queue.c says how it works).
 */
#ifndef WEFT_PROXY_QUEUE_H
#define WEFT_PROXY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balance.h"

/* A backend's queue, empty: a counted block (shared_new), shared like the
 * backend's counters by every generation's backend of that name; NULL when
 * out of memory. */
struct queue *queue_new(void);

/* pb's lane in its queue (pb->lane; see queue.c), opened by balance_init
 * after pb->queue and closed by balance_fini before it, when no waiter of
 * pb's generation is left.  Open returns 0 or -ENOMEM; close accepts a pb
 * with no lane.  Any thread; never suspends. */
int queue_lane_open(struct pbackend *pb);
void queue_lane_close(struct pbackend *pb);

/* Whether connections wait in pb's queue: a new connection then queues
 * behind them instead of picking.  Any thread; never suspends. */
bool queue_busy(const struct pbackend *pb);

/*
 * Waits in pb's queue, at its tail, for a server slot, as balance_pick
 * would give it to a connection from peer (tried, ntried as there; both
 * must stay valid meanwhile), until deadline (weft_now() scale).  Client
 * is the connection's socket, looked at every second: one that reset or
 * closed meanwhile leaves the queue.  Returns 0 with *srv set (its slot
 * taken, as by balance_pick), or -EBUSY (queue_size are waiting already),
 * -EHOSTDOWN (no server left to try), -ETIMEDOUT, -ECONNRESET (the client
 * left), -ECANCELED or -ENOMEM (no timer for the wait).  Task only.
 */
int queue_wait(struct pbackend *pb, int client, const struct weft_addr *peer,
	       struct pserver *const *tried, size_t ntried, uint64_t deadline,
	       struct pserver **srv);

/* Whether the client on socket fd reset: a connection for it would serve
 * nobody.  A FIN alone is not leaving (it may be a half-close, the answer
 * still awaited).  One poll(2); any thread. */
bool client_left(int fd);

/* Capacity may have appeared in pb (a slot given back with balance_done,
 * a server made ready): serves the waiters it lets, in order.  Cheap when
 * none waits.  Any thread; never suspends. */
void queue_dispatch(struct pbackend *pb);

#endif
