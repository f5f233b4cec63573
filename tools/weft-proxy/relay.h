// SPDX-License-Identifier: MIT
/*
 * relay.h - moving bytes both ways between a client and a server socket.
 *
 * A relay owns two connected sockets and forwards what either side sends
 * to the other until both sides have finished.  Neither direction holds a
 * task while it waits: each waits in weft_watch, so an idle proxied
 * connection costs its two sockets and a few hundred bytes.  A burst
 * moves through a buffer or, spliced, through a pipe (opts.data_path;
 * relay.c says how it is chosen).
 */
#ifndef WEFT_PROXY_RELAY_H
#define WEFT_PROXY_RELAY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "stats.h"

struct relay;

/* How a relay ended, for the access log and the metrics. */
enum relay_end {
	RELAY_CLOSED,       /* both sides finished with FIN */
	RELAY_CLIENT_RESET, /* the client reset (or failed); the server got a reset */
	RELAY_SERVER_RESET, /* the server reset (or failed); the client got a reset */
	RELAY_IDLE_TIMEOUT, /* no byte either way for idle_timeout */
	RELAY_HALF_CLOSED_TIMEOUT, /* one side finished and the other went quiet */
	RELAY_DRAIN_DEADLINE, /* still open when the drain ended (relay_close_all) */
};

const char *relay_end_name(enum relay_end e);

struct relay_opts {
	uint64_t idle_timeout;        /* ns: no byte either way; WEFT_NEVER for none */
	uint64_t half_closed_timeout; /* ns: after one side's FIN */
	enum proxy_data_path data_path; /* how bursts move (relay.c's top comment) */
	/* Counters the bytes are added to as they are forwarded, so that a
	 * long transfer shows while it runs: count[d] for direction d (0
	 * client to server, 1 server to client); NULL entries are skipped.
	 * They must outlive the relay (until done is called). */
	_Atomic uint64_t *count[2][2];
	/* And by the path they took: path[d][p] for direction d and
	 * enum stats_path p (buffered or spliced).  NULL entries are skipped;
	 * they must outlive the relay likewise. */
	_Atomic uint64_t *path[2][STATS_PATHS];
	/* Called once, from a task, when both sockets are closed: bytes[0]
	 * went client to server, bytes[1] server to client. */
	void (*done)(void *arg, enum relay_end end, const uint64_t bytes[2], uint64_t duration_ns);
	void *arg;
};

/*
 * Starts relaying between client and server, which the relay now owns
 * (both are closed when it ends).  Task only; does not suspend.  Returns 0,
 * or -ENOMEM / -EOPNOTSUPP (from weft_watch), the sockets then still the
 * caller's.
 */
int relay_start(int client, int server, const struct relay_opts *opts);

/*
 * Closes every relay still open, spread evenly over window_ns rather than
 * all at once (a burst of closes makes every client reconnect in the same
 * instant).  Each ends with RELAY_DRAIN_DEADLINE, its done callback called
 * as usual.  Returns how many it closed.  Task only; suspends.
 */
size_t relay_close_all(uint64_t window_ns);

#endif
