// SPDX-License-Identifier: MIT
/*
 * balance.h - a backend's servers at run time, and the choice of one for a
 * new connection.  A server is chosen only while it is up by its active
 * checks (health.c, whose API health.h brings in below) and not taken out
 * by passive marking (connect failures, here).  The two are kept apart: a
 * connect never changes a check's verdict, and the checks touch a passive
 * mark only to lift it when they bring a server up.
 *
 * A reload (reload.c) builds new pbackends for the new configuration.  What
 * a server has learnt (its health, passive mark, active count and
 * counters) lives in a struct pserver_state that the pservers of every
 * generation with that (backend name, server name) share, and a backend's
 * counters likewise by backend name: balance_init takes them over from the
 * generation before.  Both are counted blocks (shared_new below) freed by
 * the last generation that has them.
 */
#ifndef WEFT_PROXY_BALANCE_H
#define WEFT_PROXY_BALANCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <weft/net.h>

#include "config.h"
#include "stats.h"

/*
 * Active health of one server.  Writer: the server's checker task
 * (health.c) only.  Readers: balance_pick (up) and health_server_state
 * (metrics), on any thread.  Every field is on its own, nothing is
 * published through it, so every access is relaxed: a reader needs only a
 * value that was stored.
 */
struct phealth {
	_Atomic bool up;              /* the checks' verdict; true with checks off */
	_Atomic uint32_t streak;      /* results in a row against the verdict */
	_Atomic uint64_t checks;      /* checks finished */
	_Atomic uint64_t failed;      /* of which failed */
	_Atomic uint64_t changes;     /* up/down transitions */
	_Atomic uint64_t changed_at;  /* weft_now() of the last one; 0: none */
	_Atomic int last_error;       /* last check: 0 passed, -errno, or HTTP status */
	_Atomic int last_step;        /* enum health_step of a failed last check */
};

/*
 * A server's administrative state, set at run time from the admin listener
 * (admin.c) and never by the configuration.  Both states but ready take the
 * server out of every pick (a backup stands in when no other server is
 * ready and up); connections through it go on.  They differ in the checks:
 * under drain they go on (the verdict stays current), under maint they
 * stop (health.c).  Zero is ready, so a new server state starts ready.
 */
enum server_admin {
	SERVER_READY = 0,
	SERVER_DRAIN,
	SERVER_MAINT,
};

/* What one server keeps across reloads, shared by the pservers of every
 * generation that has it (a counted block).  Any thread reads and writes
 * it with relaxed atomics: each field is a value on its own. */
struct pserver_state {
	_Atomic uint32_t active;      /* connections through it now, all generations */
	/* Its max_connections in force (0: none), as the generation in force
	 * says (balance_commit): connections of every generation, and those
	 * still waiting under an older one, go by the same limit. */
	_Atomic uint32_t max;
	_Atomic uint32_t fails;       /* connect failures in a row */
	_Atomic uint64_t down_until;  /* weft_now() before which it is skipped */
	/* weft_now() when it last came back (balance_came_back); 0: never,
	 * as at the start.  With slowstart its weight ramps from then. */
	_Atomic uint64_t back_at;
	_Atomic uint64_t total, connect_errors;
	/* Its host name looked up again (resolve.c), and of those, failed. */
	_Atomic uint64_t lookups, lookup_failures;
	_Atomic int admin;            /* enum server_admin; written by balance_set_admin */
	struct phealth health;        /* active checks: health.c */
	struct server_stats stats;    /* established, bytes (stats.h) */
};

struct pserver {
	const struct proxy_server *cfg;
	const struct proxy_backend *backend;
	/* Where to connect: the address written, or what the last lookup of
	 * the host name found, which a refresher (resolve.c) may replace
	 * while other threads read it.  Read with balance_addr. */
	struct weft_addr addr;
	pthread_mutex_t addr_lock;    /* over addr; never held across a suspension */
	int64_t current;              /* smooth round robin, under the lock */
	struct pserver_state *st;     /* shared across generations */
};

struct pbackend {
	const struct proxy_backend *cfg;
	struct pserver *servers;
	size_t n;
	pthread_mutex_t lock;         /* round robin state; never held across a suspension */
	_Atomic uint64_t rng;
	struct backend_stats *stats;  /* shared across generations (by name) */
	struct queue *queue;          /* likewise: the connections waiting for a slot */
	struct queue_lane *lane;      /* this generation's place in it (queue.c) */
};

/*
 * Counted blocks: zeroed memory of size bytes with one reference, or NULL
 * when out of memory; shared_ref adds one and returns p, shared_unref
 * drops one and frees the block with the last.  Any thread.
 */
void *shared_new(size_t size);
void *shared_ref(void *p);
void shared_unref(void *p);

/*
 * The servers of b, resolved or parsed.  With prev (the same backend in
 * the generation before, or NULL), each server whose name prev has takes
 * over its state, and the backend its counters; the rest start afresh
 * (up, nothing counted).  Returns 0 or -errno (-ENOMEM; host names are
 * looked up with weft_addr_resolve: task only, and *bad is then the server
 * whose name did not resolve, else NULL), with nothing held on error.
 * balance_fini drops what balance_init took.
 */
int balance_init(struct pbackend *pb, const struct proxy_backend *b, const struct pbackend *prev,
		 const struct proxy_server **bad);
void balance_fini(struct pbackend *pb);

/* pb's generation is now in force: its servers' limits apply (to every
 * generation: pserver_state.max).  The caller then serves pb's queue
 * (queue_dispatch), which a higher limit may let go.  Any thread; no
 * failure path. */
void balance_commit(struct pbackend *pb);

/*
 * Picks a server for a connection from client, none of tried[0, ntried):
 * the eligible ones are ready (enum server_admin), up (by their checks,
 * and not passively marked down) and below their own max_connections; backups
 * only when no other server is eligible.  Counts the connection in the
 * server's active count.  Returns the server, or NULL with *why set:
 * -EBUSY (servers are up but all at their limit: worth waiting), or
 * -EHOSTDOWN (no server to try).  Any thread; never suspends.
 */
struct pserver *balance_pick(struct pbackend *pb, const struct weft_addr *client,
			     struct pserver *const *tried, size_t ntried, int *why);

/* Where a connection to s goes now, copied into *out.  Any thread; never
 * suspends. */
void balance_addr(const struct pserver *s, struct weft_addr *out);

/* New connections to s go to a from now on; returns whether that differs
 * from where they went.  Any thread; never suspends. */
bool balance_set_addr(struct pserver *s, const struct weft_addr *a);

/* A connection through s ended (or its connect failed: ok false). */
void balance_done(struct pserver *s);
void balance_connect_result(struct pserver *s, bool ok);
/* Whether -errno err is this process running short of descriptors, memory
 * or buffers: it passes with time, so a loop that meets it (accepting,
 * waiting for signals) pauses and tries again rather than ending. */
bool balance_shortage(int err);
/* Whether a connect's -errno is this process's own trouble (a shortage,
 * no free local port) or its cancellation, not the server's: such a
 * failure says nothing of the server, and another server would fail the
 * same way. */
bool balance_local_error(int err);

/* Lifts s's passive mark (and its count of failures in a row): its checks
 * have just brought it up, which says more than the mark's timer.  Any
 * thread; no failure path. */
void balance_passive_clear(struct pserver *s);

/* s has just come back into service: up by its checks after being down, or
 * out of maint.  With its backend's slowstart, its weight ramps up from
 * now.  Any thread; no failure path. */
void balance_came_back(struct pserver *s);

/* A weight in force is counted in 1/BALANCE_WEIGHT_ONE of a configured
 * weight unit, so that even a server of weight 1 can ramp by small steps. */
#define BALANCE_WEIGHT_ONE 256u

/*
 * The weight s is balanced by at time now (weft_now()): its configured
 * weight times BALANCE_WEIGHT_ONE, or, during its slowstart ramp, that
 * share of it which the ramp has reached (at least 1).  A balance =
 * source backend keeps its full weights, so that a client's server does
 * not move during a ramp.  Any thread; no failure path.
 */
uint32_t balance_weight(const struct pserver *s, uint64_t now);

/* The word for a state ("ready", "drain", "maint"), and back: the state
 * named by the len bytes at word, or -EINVAL. */
const char *balance_admin_name(enum server_admin a);
int balance_admin_parse(const char *word, size_t len);

/* s's administrative state now.  Any thread; no failure path. */
enum server_admin balance_admin(const struct pserver *s);

/*
 * Sets s's administrative state (shared with every generation that has the
 * server) and returns the one it replaced.  Connections waiting for a
 * server slot are not served here: the caller (admin.c, through
 * admin_source.servers_changed) does that.  Any thread; no failure path.
 */
enum server_admin balance_set_admin(struct pserver *s, enum server_admin a);

/* The checks of these servers (health_start, health_server_state): every
 * user of balance.h, the daemon and its metrics, needs them too. */
#include "health.h"

#endif
