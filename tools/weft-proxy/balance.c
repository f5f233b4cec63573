// SPDX-License-Identifier: MIT
/*
 * balance.c - choosing a server: smooth weighted round robin, least
 * connections, random of two, source hash.
 *
 * Smooth weighted round robin (as nginx does it): each pick adds every
 * eligible server's weight to its `current`, takes the server with the
 * largest, and subtracts the total from it.  Weights 5, 1, 1 give
 * a a b a c a a rather than a a a a a b c: the heavy server's turns are
 * spread out.  That state is shared, so it is kept under the backend's
 * lock, held for a few dozen instructions and never across a suspension.
 * The other modes read atomics only.
 *
 * Least connections and random-of-two compare active/weight without a
 * division: a.active * b.weight < b.active * a.weight.
 *
 * Passive health: the backend's passive_fall connect failures in a row
 * take a server out for passive_down; the next pick after that tries it
 * again.  passive_fall 0 turns it off.  Active
 * health: a server its checks hold down (health.c clears phealth.up) is
 * skipped until they bring it up (which also lifts a passive mark:
 * balance_passive_clear); with checks off, up stays true.
 *
 * Slow start: a server that comes back (its checks bring it up, a passive
 * mark lapses, it leaves maint) has a cold cache, an empty connection pool,
 * perhaps code still to compile, and least connections would otherwise
 * send it every new connection until it caught up.  With the backend's
 * slowstart its weight grows in a straight line from nearly nothing to its
 * own over that time.  The weight is worked out at each pick from when the
 * server came back, so the ramp is as smooth as the clock, costs nothing
 * once over, and needs no timer; weights are in 1/BALANCE_WEIGHT_ONE units
 * for it (round robin, least connections and random of two compare
 * weights only with each other, so the scale changes no choice outside a
 * ramp; a source hash keeps the configured ones: draw_weight).  Not at the start, nor for a server
 * a reload adds: nothing says those are cold, and a proxy that restarts
 * must not starve servers that were serving all along (as HAProxy).
 *
 * Administrative state: a server in drain or maint (balance.h) is not
 * eligible, like one that is down, so backups stand in exactly when no
 * other server is both ready and up, as HAProxy's drain (weight 0) and
 * maint do.  Nothing here ends its connections.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "balance.h"
#include "queue.h"

struct shared_head {
	_Atomic unsigned refs;
	max_align_t payload[];
};

void *shared_new(size_t size)
{
	struct shared_head *h = calloc(1, sizeof(*h) + size);
	if (!h)
		return NULL;
	atomic_init(&h->refs, 1);
	return h->payload;
}

static struct shared_head *head_of(void *p)
{
	return (struct shared_head *)((char *)p - offsetof(struct shared_head, payload));
}

void *shared_ref(void *p)
{
	/* Relaxed: the caller already holds a reference, so the block is
	 * alive and nothing is published by the count itself. */
	atomic_fetch_add_explicit(&head_of(p)->refs, 1, memory_order_relaxed);
	return p;
}

void shared_unref(void *p)
{
	if (!p)
		return;
	struct shared_head *h = head_of(p);
	/* Acq_rel: the release orders this holder's last writes (counters
	 * bumped through the block) before the free; the acquire, taken by
	 * the last one, pairs with every other holder's release.  (An RMW
	 * rather than a release and a fence: ThreadSanitizer follows the one,
	 * not the other.) */
	if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
		free(h);
}

/* The state of server s, taken over from prev when it has a server of that
 * name, else a new one, up (health.c, invariant 3). */
static struct pserver_state *server_state(const struct proxy_server *s,
					  const struct pbackend *prev)
{
	for (size_t i = 0; prev && i < prev->n; i++) {
		if (strcmp(prev->servers[i].cfg->name, s->name) != 0)
			continue;
		return shared_ref(prev->servers[i].st);
	}
	struct pserver_state *st = shared_new(sizeof(*st));
	if (st) {
		atomic_init(&st->health.up, true);
		atomic_init(&st->max, s->max_connections);
	}
	return st;
}

int balance_init(struct pbackend *pb, const struct proxy_backend *b, const struct pbackend *prev,
		 const struct proxy_server **bad)
{
	*bad = NULL;
	memset(pb, 0, sizeof(*pb));
	pb->cfg = b;
	pb->servers = calloc(b->nservers, sizeof(*pb->servers));
	pb->stats = prev ? shared_ref(prev->stats) : shared_new(sizeof(*pb->stats));
	pb->queue = prev ? shared_ref(prev->queue) : queue_new();
	pthread_mutex_init(&pb->lock, NULL);
	if (!pb->servers || !pb->stats || !pb->queue || queue_lane_open(pb) < 0) {
		balance_fini(pb);
		return -ENOMEM;
	}
	atomic_init(&pb->rng, 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)pb);
	for (size_t i = 0; i < b->nservers; i++) {
		struct pserver *s = &pb->servers[i];
		s->cfg = &b->servers[i];
		s->backend = b;
		if (!(s->st = server_state(s->cfg, prev))) {
			balance_fini(pb);
			return -ENOMEM;
		}
		pthread_mutex_init(&s->addr_lock, NULL);
		pb->n++;
		if (!s->cfg->resolve) {
			s->addr = s->cfg->addr;
			continue;
		}
		int rc = weft_addr_resolve(s->cfg->address, &s->addr, 1);
		if (rc < 0) {
			*bad = s->cfg;
			balance_fini(pb);
			return rc;
		}
	}
	return 0;
}

void balance_commit(struct pbackend *pb)
{
	for (size_t i = 0; i < pb->n; i++)
		atomic_store_explicit(&pb->servers[i].st->max, pb->servers[i].cfg->max_connections,
				      memory_order_relaxed);
}

void balance_fini(struct pbackend *pb)
{
	for (size_t i = 0; i < pb->n; i++) {
		shared_unref(pb->servers[i].st);
		pthread_mutex_destroy(&pb->servers[i].addr_lock);
	}
	free(pb->servers);
	pb->servers = NULL;
	pb->n = 0;
	shared_unref(pb->stats);
	pb->stats = NULL;
	queue_lane_close(pb);
	shared_unref(pb->queue);
	pb->queue = NULL;
	pthread_mutex_destroy(&pb->lock);
}

static bool eligible(const struct pserver *s, struct pserver *const *tried, size_t ntried,
		     uint64_t now, bool *busy)
{
	for (size_t i = 0; i < ntried; i++)
		if (tried[i] == s)
			return false;
	/* Relaxed: the verdict and the state are values on their own
	 * (struct phealth, struct pserver_state). */
	if (!atomic_load_explicit(&s->st->health.up, memory_order_relaxed) ||
	    atomic_load_explicit(&s->st->admin, memory_order_relaxed) != SERVER_READY)
		return false;
	if (atomic_load_explicit(&s->st->down_until, memory_order_relaxed) > now)
		return false;
	uint32_t max = atomic_load_explicit(&s->st->max, memory_order_relaxed);
	if (max && atomic_load_explicit(&s->st->active, memory_order_relaxed) >= max) {
		*busy = true;
		return false;
	}
	return true;
}

uint32_t balance_weight(const struct pserver *s, uint64_t now)
{
	uint32_t full = s->cfg->weight * BALANCE_WEIGHT_ONE;
	uint64_t ramp = s->backend->slowstart_ns;
	if (!ramp || s->backend->balance == PROXY_BALANCE_SOURCE)
		return full;
	/* Relaxed: values on their own (struct pserver_state).  A lapsed
	 * passive mark is a coming back without an event to record it. */
	uint64_t from = atomic_load_explicit(&s->st->back_at, memory_order_relaxed);
	uint64_t mark = atomic_load_explicit(&s->st->down_until, memory_order_relaxed);
	if (mark > from)
		from = mark;
	if (!from || now >= from + ramp)
		return full;
	/* No overflow: now - from < ramp <= a day (< 2^47 ns), full at most
	 * 2^16 (config.c bounds both). */
	uint64_t w = now > from ? (uint64_t)full * (now - from) / ramp : 0;
	return w ? (uint32_t)w : 1;
}

/* The weight a draw goes by: a source hash keeps the configured weights
 * as they are, so that its mapping of clients is that of any version. */
static uint32_t draw_weight(const struct pserver *s, uint64_t now)
{
	return s->backend->balance == PROXY_BALANCE_SOURCE ? s->cfg->weight
							    : balance_weight(s, now);
}

/* Whether a (of weight wa) is less loaded than b (of weight wb). */
static bool lighter(const struct pserver *a, uint32_t wa, const struct pserver *b, uint32_t wb)
{
	uint64_t la = (uint64_t)atomic_load_explicit(&a->st->active, memory_order_relaxed) * wb;
	uint64_t lb = (uint64_t)atomic_load_explicit(&b->st->active, memory_order_relaxed) * wa;
	return la < lb;
}

static uint64_t next_random(struct pbackend *pb)
{
	/* splitmix64 over an atomic counter: no lock, good enough spread. */
	uint64_t z = atomic_fetch_add_explicit(&pb->rng, 0x9e3779b97f4a7c15ull, memory_order_relaxed);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t addr_hash(const struct weft_addr *a)
{
	const unsigned char *p;
	size_t n;
	if (a->sa.sa_family == AF_INET) {
		p = (const unsigned char *)&a->in.sin_addr;
		n = sizeof(a->in.sin_addr);
	} else if (a->sa.sa_family == AF_INET6) {
		p = (const unsigned char *)&a->in6.sin6_addr;
		n = sizeof(a->in6.sin6_addr);
	} else {
		return 0; /* unix clients all hash alike */
	}
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* One pass over the servers of one kind (backups or not). */
static struct pserver *pick_among(struct pbackend *pb, bool backups, const struct weft_addr *client,
				  struct pserver *const *tried, size_t ntried, uint64_t now, bool *busy)
{
	struct pserver *best = NULL;
	uint32_t best_w = 0;
	switch (pb->cfg->balance) {
	case PROXY_BALANCE_ROUNDROBIN: {
		int64_t total = 0;
		pthread_mutex_lock(&pb->lock);
		for (size_t i = 0; i < pb->n; i++) {
			struct pserver *s = &pb->servers[i];
			if (s->cfg->backup != backups || !eligible(s, tried, ntried, now, busy))
				continue;
			uint32_t w = balance_weight(s, now);
			s->current += w;
			total += w;
			if (!best || s->current > best->current)
				best = s;
		}
		if (best)
			best->current -= total;
		pthread_mutex_unlock(&pb->lock);
		break;
	}
	case PROXY_BALANCE_LEASTCONN:
		for (size_t i = 0; i < pb->n; i++) {
			struct pserver *s = &pb->servers[i];
			if (s->cfg->backup != backups || !eligible(s, tried, ntried, now, busy))
				continue;
			uint32_t w = balance_weight(s, now);
			if (!best || lighter(s, w, best, best_w)) {
				best = s;
				best_w = w;
			}
		}
		break;
	case PROXY_BALANCE_RANDOM2:
	case PROXY_BALANCE_SOURCE: {
		/* Weighted draw among the eligible: r in [0, total weight). */
		uint64_t total = 0;
		for (size_t i = 0; i < pb->n; i++) {
			struct pserver *s = &pb->servers[i];
			if (s->cfg->backup == backups && eligible(s, tried, ntried, now, busy))
				total += draw_weight(s, now);
		}
		if (!total)
			break;
		bool source = pb->cfg->balance == PROXY_BALANCE_SOURCE;
		for (int draw = 0; draw < (source ? 1 : 2); draw++) {
			uint64_t r = (source ? addr_hash(client) : next_random(pb)) % total;
			for (size_t i = 0; i < pb->n; i++) {
				struct pserver *s = &pb->servers[i];
				bool ignored = false;
				if (s->cfg->backup != backups || !eligible(s, tried, ntried, now, &ignored))
					continue;
				uint32_t w = draw_weight(s, now);
				if (r < w) {
					if (!best || lighter(s, w, best, best_w)) {
						best = s;
						best_w = w;
					}
					break;
				}
				r -= w;
			}
		}
		break;
	}
	}
	return best;
}

/* Counts one more connection through s unless that would pass its
 * max_connections: the pick saw room, but a connection on another worker
 * may have taken it since, and the limit is a promise to the server. */
static bool take_slot(struct pserver *s)
{
	uint32_t max = atomic_load_explicit(&s->st->max, memory_order_relaxed);
	uint32_t n = atomic_load_explicit(&s->st->active, memory_order_relaxed);
	do {
		if (max && n >= max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&s->st->active, &n, n + 1,
							memory_order_relaxed, memory_order_relaxed));
	return true;
}

struct pserver *balance_pick(struct pbackend *pb, const struct weft_addr *client,
			     struct pserver *const *tried, size_t ntried, int *why)
{
	struct pserver *s;
	/* Each failed take is a slot another connection got: finite. */
	do {
		uint64_t now = weft_now();
		bool busy = false;
		s = pick_among(pb, false, client, tried, ntried, now, &busy);
		if (!s && !busy)
			s = pick_among(pb, true, client, tried, ntried, now, &busy);
		if (!s) {
			*why = busy ? -EBUSY : -EHOSTDOWN;
			return NULL;
		}
	} while (!take_slot(s));
	atomic_fetch_add_explicit(&s->st->total, 1, memory_order_relaxed);
	return s;
}

void balance_addr(const struct pserver *s, struct weft_addr *out)
{
	/* Only a refresher writes it after balance_init (resolve.c). */
	if (!s->cfg->resolve || !s->backend->resolve_interval_ns) {
		*out = s->addr;
		return;
	}
	/* A lock is no part of the server's value: taken for a reader too. */
	pthread_mutex_t *lock = (pthread_mutex_t *)&s->addr_lock;
	pthread_mutex_lock(lock);
	*out = s->addr;
	pthread_mutex_unlock(lock);
}

bool balance_set_addr(struct pserver *s, const struct weft_addr *a)
{
	pthread_mutex_lock(&s->addr_lock);
	bool changed = !proxy_addr_equal(&s->addr, a);
	s->addr = *a;
	pthread_mutex_unlock(&s->addr_lock);
	return changed;
}

void balance_done(struct pserver *s)
{
	atomic_fetch_sub_explicit(&s->st->active, 1, memory_order_relaxed);
}

void balance_connect_result(struct pserver *s, bool ok)
{
	if (ok) {
		atomic_store_explicit(&s->st->fails, 0, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&s->st->connect_errors, 1, memory_order_relaxed);
	uint32_t fall = s->backend->passive_fall;
	if (fall && atomic_fetch_add_explicit(&s->st->fails, 1, memory_order_relaxed) + 1 >= fall) {
		atomic_store_explicit(&s->st->fails, 0, memory_order_relaxed);
		atomic_store_explicit(&s->st->down_until, weft_now() + s->backend->passive_down_ns,
				      memory_order_relaxed);
	}
}

bool balance_shortage(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

bool balance_local_error(int err)
{
	return balance_shortage(err) || err == -EADDRNOTAVAIL || err == -ECANCELED;
}

void balance_passive_clear(struct pserver *s)
{
	/* Relaxed: as in balance_connect_result, each is a value on its own. */
	atomic_store_explicit(&s->st->fails, 0, memory_order_relaxed);
	atomic_store_explicit(&s->st->down_until, 0, memory_order_relaxed);
}

void balance_came_back(struct pserver *s)
{
	/* Relaxed: a value on its own; a pick that misses it by a moment
	 * gives the server one connection more at its full weight. */
	atomic_store_explicit(&s->st->back_at, weft_now(), memory_order_relaxed);
}

static const char *const admin_names[] = {
	[SERVER_READY] = "ready",
	[SERVER_DRAIN] = "drain",
	[SERVER_MAINT] = "maint",
};

const char *balance_admin_name(enum server_admin a)
{
	return (unsigned)a < sizeof(admin_names) / sizeof(admin_names[0]) ? admin_names[a] : "?";
}

int balance_admin_parse(const char *word, size_t len)
{
	for (int a = 0; a < (int)(sizeof(admin_names) / sizeof(admin_names[0])); a++)
		if (strlen(admin_names[a]) == len && memcmp(admin_names[a], word, len) == 0)
			return a;
	return -EINVAL;
}

enum server_admin balance_admin(const struct pserver *s)
{
	/* Relaxed: a value on its own; a pick that reads the state before
	 * it changes is one that came just before the change. */
	return (enum server_admin)atomic_load_explicit(&s->st->admin, memory_order_relaxed);
}

enum server_admin balance_set_admin(struct pserver *s, enum server_admin a)
{
	/* Relaxed, as balance_admin: the waiters that must see it are
	 * served after it, under their queue's lock (queue_dispatch). */
	enum server_admin old = (enum server_admin)atomic_exchange_explicit(
		&s->st->admin, (int)a, memory_order_relaxed);
	if (old == SERVER_MAINT && a != SERVER_MAINT)
		balance_came_back(s);
	return old;
}
