// SPDX-License-Identifier: MIT
/*
 * reload.h - configuration generations of weft-proxy (reload.c): what one
 * configuration runs with (frontends, backends and their servers, health
 * checkers, accept loops), built beside the one in force on SIGHUP and
 * freed when its last connection ends; and the set of listening sockets,
 * kept across reloads while their address stays.  main.c swaps them; the
 * protocol (steps and invariants) is at the top of reload.c.
 */
#ifndef WEFT_PROXY_RELOAD_H
#define WEFT_PROXY_RELOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft.h>
#include <weft/net.h>
#include <weft/sync.h>

#include "admin.h"
#include "balance.h"
#include "config.h"
#include "stats.h"

struct gen;

/* A frontend of one generation. */
struct frontend {
	struct gen *gen;
	const struct proxy_frontend *cfg;
	struct pbackend *backend;
	struct weft_sem slots;      /* its max_connections, for this generation's connections */
	struct frontend_stats *st;  /* counted (shared_new), shared by frontend name */
};

/* The task that accepts on one listening socket for one frontend. */
struct accept_loop {
	struct frontend *f;
	int fd;
	struct weft_task *task;
};

struct gen {
	/* One reference while in force, one per connection accepted under
	 * it, one per admin page rendering it.  The last one frees it. */
	_Atomic uint64_t refs;
	uint64_t number;            /* 1 at start, +1 per reload */
	struct proxy_config *cfg;   /* owned */
	struct frontend *fronts;    /* as cfg->frontends */
	struct frontend_stats **fstats; /* the same counters, for the view */
	struct pbackend *backs;     /* as cfg->backends */
	size_t nbacks;              /* set up with balance_init so far */
	struct accept_loop *loops;  /* one per listen address, once started */
	size_t nloops;
	struct health_run *health;  /* NULL: none, or stopped */
	struct resolve_run *resolve; /* likewise, host-name lookups (resolve.c) */
	struct admin_view view;
};

/* A listening socket, and the address its listen line gave (port 0 stays
 * 0: a reload keeps the socket the kernel chose a port for). */
struct lsock {
	struct weft_addr addr;
	int fd;
};

struct listen_set {
	struct lsock *v;
	size_t n;
};

/*
 * Builds the generation of cfg beside prev (the one in force, or NULL at
 * start): frontends whose name prev has take over their counters, backends
 * and servers theirs (balance_init).  Nothing runs yet: no checker, no
 * accept loop.  Returns 0 with *out set (it owns cfg, one reference), or
 * -errno (-ENOMEM, or a host name that did not resolve, said on stderr
 * with FILE:LINE) with cfg still the caller's.  Task only.
 */
int gen_build(struct proxy_config *cfg, const struct gen *prev, struct gen **out);

/* Adds a reference; returns g.  Any thread. */
struct gen *gen_ref(struct gen *g);

/* Drops a reference; the last one frees g (its checkers and accept loops
 * must have been stopped by then).  Any thread. */
void gen_unref(struct gen *g);

/*
 * The listening sockets of cfg into *out, one per listen line in order:
 * the descriptor of an entry of `have` with the same address is taken
 * (moved out of have, its fd set to -1), the rest are bound.  A bind that
 * fails closes what this call bound, leaves have as it was, says why on
 * stderr (FILE:LINE: listen ADDR: reason) and returns -errno.  0 on
 * success; new sockets are said on stderr ("frontend F listening on A").
 * Any thread.
 */
int listen_set_open(const struct proxy_config *cfg, struct listen_set *have,
		    struct listen_set *out);

/* Closes every descriptor left in s (those not taken over) and frees it;
 * why (e.g. "dropped from the configuration") is said for each, with what
 * that means for the connections queued on it (upgrade.c,
 * upgrade_closing_listener).  Any thread. */
void listen_set_close(struct listen_set *s, const char *why);

#endif
