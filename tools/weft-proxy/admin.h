// SPDX-License-Identifier: MIT
/*
 * admin.h - weft-proxy's admin listener: GET /metrics (Prometheus text
 * format 0.0.4), GET /stats (the same figures as one JSON object),
 * GET /health, and POST /servers/BACKEND/SERVER?state=ready|drain|maint
 * (a server's administrative state, balance.h), over HTTP/1.1 with
 * Connection: close, one task per request.
 *
 * admin.c reads the counters of stats.h and balance.h through the view of
 * the configuration generation in force (reload.h), which it holds while a
 * page renders; it never writes them.  The one thing it writes is a
 * server's administrative state.  The series and the JSON
 * fields are listed in docs/proxy.md ("Observability").
 */
#ifndef WEFT_PROXY_ADMIN_H
#define WEFT_PROXY_ADMIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <weft.h>
#include <weft/sync.h>

#include "accesslog.h"
#include "balance.h"
#include "config.h"
#include "stats.h"

/* One configuration generation's part of the pages (reload.h: each
 * generation has one).  Arrays are indexed as cfg's frontends and
 * backends; a server's figures are in its shared state (balance.h). */
struct admin_view {
	const struct proxy_config *cfg;
	struct frontend_stats *const *fronts; /* per frontend */
	struct pbackend *backs;               /* servers, and each backend's stats */
};

/* Admin connections served at once; more wait in the listen backlog. */
#define ADMIN_CONCURRENCY 32

/* The process's part, and how a page gets the generation in force.  main.c
 * owns it; it must outlive the admin tasks. */
struct admin_source {
	int fd;                          /* the admin listening socket */
	/* ADMIN_CONCURRENCY at first (weft_sem_init, once): one is held per
	 * connection being served, by every admin_serve on this source. */
	struct weft_sem *slots;
	/* The access log's writer: NULL until the log is first on. */
	_Atomic(struct accesslog *) *log;
	struct weft_rt *rt;
	_Atomic uint64_t *active;        /* all connections now */
	_Atomic int *draining;           /* 1 after SIGTERM: /health answers 503 */
	_Atomic uint64_t *reloads;       /* reloads that took effect */
	_Atomic uint64_t *reload_failures; /* reloads refused; the old configuration kept */
	uint64_t started;                /* weft_now() at start */
	/* The view in force, held (its generation kept alive) until put is
	 * called with what get stored in *hold.  Any task; no failure path. */
	const struct admin_view *(*get)(void **hold);
	void (*put)(void *hold);
	/* A server of pb changed its administrative state: serves the
	 * connections waiting for a slot that it lets (queue_dispatch).  Any
	 * thread. */
	void (*servers_changed)(struct pbackend *pb);
	/* Brackets a state change, so that a binary upgrade hands over the
	 * last states: begin returns 0 (and end must follow) or refuses with
	 * -ETIMEDOUT (a hand-over is under way: try again) or -ESHUTDOWN
	 * (handed over: the new process has the admin listener).  Task only. */
	int (*state_begin)(void);
	void (*state_end)(void);
};
/* A growing text buffer for the pages. */
struct sbuf {
	char *p;
	size_t len, cap;
	int failed; /* an allocation failed: the text is cut short */
};

/* Appends printf-style text to b (on allocation failure sets b->failed and
 * drops the text).  No other failure path. */
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The bodies of /metrics and /stats, appended to b.  Task or any thread;
 * no failure path beyond b->failed. */
void admin_metrics(struct sbuf *b, const struct admin_source *src, const struct admin_view *v);
void admin_stats(struct sbuf *b, const struct admin_source *src, const struct admin_view *v);

/*
 * A task body (arg: a const struct admin_source *): serves the admin pages
 * on src->fd, a listening socket, until cancelled.  Accepts (while a slot
 * of src->slots is free), and runs a detached task per connection that
 * reads one request (within 5 s),
 * answers it from the view in force and closes.  The source must outlive
 * every task started (the runtime's shutdown ends them).  Returns the
 * error that ended accepting (-ECANCELED when cancelled).  The socket
 * stays the caller's.
 */
intptr_t admin_serve(void *view);

/* Waits until src serves no connection, at most the 5 s a request may
 * take, even when cancelled: a request taken just before the process
 * stops is answered, not cut off by the exit.  Call it after the last
 * admin_serve on src has ended; src serves nothing after it.  Task only. */
void admin_wait(const struct admin_source *src);

#endif
