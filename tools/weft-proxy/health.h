// SPDX-License-Identifier: MIT
/*
 * health.h - active health checks of weft-proxy's servers: a checker task
 * per server connects (and, for `http`, sends GET PATH and reads the status)
 * every interval, and rise passes or fall failures in a row move the
 * server's verdict (struct phealth in balance.h), which balance_pick obeys.
 * health.c implements it and holds the state diagram; docs/proxy.md
 * (health_check) is the operator's side; tests/proxy/health_test.cc checks it.
 */
#ifndef WEFT_PROXY_HEALTH_H
#define WEFT_PROXY_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balance.h"

/* Where a failed check failed: phealth.last_step, health_state.step. */
enum health_step {
	HEALTH_STEP_NONE = 0,   /* the check passed, or none has run */
	HEALTH_STEP_CONNECT,    /* connecting (-errno: refused, timed out, ...) */
	HEALTH_STEP_SEND,       /* sending the PROXY header or the request */
	HEALTH_STEP_RECV,       /* reading the answer (-EPIPE: closed before a whole head) */
	HEALTH_STEP_RESPONSE,   /* the answer is not HTTP (-EBADMSG, -EMSGSIZE, ...) */
	HEALTH_STEP_STATUS,     /* an HTTP status other than 2xx (last_error is it) */
};

/* One server's health, as health_server_state reads it (a racy snapshot:
 * each field is a value that was stored, two fields may be a check apart). */
struct health_state {
	bool checked;          /* its backend has health_check on */
	bool up;               /* the checks' verdict; true when not checked */
	bool passive_down;     /* skipped now after passive_fall connect failures */
	bool eligible;         /* up and not passive_down: balance_pick may take it */
	uint32_t streak;       /* results in a row against the verdict: failures
				* while up (fall of them take it down), passes
				* while down (rise of them bring it up) */
	uint64_t checks;       /* checks finished since the start (reloads keep it) */
	uint64_t failed;       /* of which failed */
	uint64_t changes;      /* up/down transitions since the start */
	uint64_t changed_at;   /* weft_now() of the last transition; 0: none */
	int last_error;        /* the last check: 0 passed (or none ran), -errno,
				* or the HTTP status of a non-2xx answer */
	enum health_step step; /* where the last check failed */
};

/* The checkers of one generation's backends (health.c). */
struct health_run;

/*
 * Starts a checker task for every server of the backends whose
 * health_check is not off, in one group, and sets *out to its handle (NULL
 * when no backend has checks).  Each checker reads and writes its server's
 * shared state (struct pserver_state), so the checkers of a generation
 * before must have been stopped.  backs must outlive health_stop.  Returns
 * 0, or -ENOMEM with nothing started.  Task only.
 */
int health_start(struct pbackend *backs, size_t nbackends, struct health_run **out);

/* Cancels r's checkers, waits for every one to end (a check cut short
 * records nothing) and frees r.  NULL is fine.  Task only; suspends, and
 * is not cut short by the caller's cancellation; no failure path. */
void health_stop(struct health_run *r);

/* Fills *out with s's health.  Any thread; never suspends; no failure path. */
void health_server_state(const struct pserver *s, struct health_state *out);

/* The step as a log word ("connect", "status", ...); "" for NONE. */
const char *health_step_name(enum health_step step);

/*
 * Writes why the last check of a server failed, as in the log lines
 * ("connect: Connection refused", "status 500"), NUL-terminated, into
 * buf of size bytes; "" when it passed.  Returns what snprintf returns.
 */
int health_format_error(const struct health_state *st, char *buf, size_t size);

#endif
