// SPDX-License-Identifier: MIT
/*
 * bench.h - what the files of weft-bench share: the run's settings and
 * state (struct bench), endpoints with their prebuilt request bytes, the
 * per-worker counters, one connection's state, and each file's entry
 * points.  One file per concern:
 *
 *	options.c   the command line, URLs, --slo         -> struct bench
 *	request.c   request bytes per endpoint, the echo pattern
 *	schedule.c  when request j is due under --rate R or A:B
 *	conn.c      one connection task: send, receive, parse, record
 *	ticker.c    per-worker housekeeping: timeouts, intervals, progress
 *	report.c    the summary, --json, --hgrm, --plot, --slo verdict
 *	main.c      runtime, tasks, merge, exit status
 *
 * Threading.  Connection tasks and one ticker task per worker are all
 * pinned (WEFT_SPAWN_PINNED), so the tasks of one worker never run at the
 * same time: a worker's wstate and its connections' fields are plain
 * memory, written with plain stores, with no lock on the request path.
 * What crosses workers is the request ticket (an atomic) and the
 * per-second interval collector (a mutex taken once a second per worker,
 * ticker.c).  The main thread reads everything after the runtime ended.
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <weft.h>
#include <weft/http1.h>
#include <weft/net.h>

#include "hist.h"

/* Exit statuses (docs/bench.md, "Exit status"). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_SLO = 3 };

/* Error kinds, in report order. */
enum { E_CONNECT, E_READ, E_WRITE, E_TIMEOUT, E_PARSE, E_CLOSE, E_VERIFY, E_KINDS };
extern const char *const kind_name[E_KINDS]; /* the summary's words */
extern const char *const kind_key[E_KINDS];  /* --json keys */

enum proto { P_HTTP, P_ECHO };

/*
 * One address that connections open, with the bytes they send.
 *
 * HTTP: the URLs naming this address, in command-line order, are sent in
 * turn.  ring holds the requests for the sequence url[0], url[1], ...,
 * url[nurls - 1], url[0], ... of nurls + depth requests back to back, and
 * off[s] is where request s starts (off[nurls + depth] is the end), so
 * that k <= depth consecutive requests starting at any i < nurls are the
 * one span ring[off[i], off[i + k]): pipelined requests leave in one send.
 *
 * Echo: message s of a connection is `size` bytes of a fixed pseudo-random
 * stream of period `period` bytes, starting at stream offset s * size mod
 * period; ring holds period + depth * size bytes of the stream, so k <=
 * depth consecutive messages are again one span.  The echo must return the
 * same bytes, which is how they are checked.
 */
struct endpoint {
	char *name; /* HOST:PORT or unix:PATH: resolved, and named in errors */
	struct weft_addr addr;
	unsigned nurls;
	unsigned *urls;	 /* HTTP: indexes into bench.urls */
	char *ring;
	size_t ring_len;
	size_t *off;	 /* HTTP: nurls + depth + 1 offsets */
	size_t period;	 /* echo */
	enum weft_http1_method method; /* what the responses answer */
};

/* One URL as given, split. */
struct url {
	char *text;	/* as given */
	char *hostport; /* the endpoint's name */
	char *host;	/* the default Host header */
	char *path;	/* request-target */
};

enum slo_kind { SLO_PCT, SLO_MEAN, SLO_MAX, SLO_ERRORS, SLO_RPS };
struct slo {
	enum slo_kind kind;
	double pct;   /* SLO_PCT: the percentile */
	double limit; /* ns for latencies, percent for errors, req/s for rps */
	char name[24]; /* as written: "p99", "errors"... */
};
#define MAX_SLOS 16
#define MAX_HEADERS 64

/*
 * What the connections of one worker gather.  Written only by tasks pinned
 * to that worker (one at a time); read by that worker's ticker, and by the
 * main thread after the runtime ended.  Aligned so that two workers'
 * counters never share a cache line.
 */
#define ERR_BY 4 /* errnos told apart per error kind */

struct wstate {
	_Alignas(64) struct bench *b;
	unsigned index;			/* the worker */
	struct hist *corr;		/* from the intended send time (closed: = unc) */
	struct hist *unc;		/* from the actual send */
	struct hist *ivl;		/* this second's corr samples; NULL if unused */
	uint64_t requests;		/* complete responses inside the window */
	uint64_t bytes;			/* bytes received inside the window */
	uint64_t non2xx;		/* responses with a status outside 2xx, 3xx */
	uint64_t codes[600];		/* by status code (net/http1 admits 100..599) */
	uint64_t errors[E_KINDS];
	int err_errno[E_KINDS];		/* the first errno of each kind */
	/* Each kind's errors by errno, in the order first seen; a fourth
	 * errno and later ones count in the last entry (err 0: "other"). */
	struct err_count {
		int err;
		uint64_t n;
	} err_by[E_KINDS][ERR_BY];
	uint64_t established;		/* connections that opened at least once */
	uint64_t reconnects;		/* opens after the first */
	uint64_t sends;			/* open loop: requests sent */
	uint64_t lag_sum, lag_max;	/* open loop: send time behind schedule */
	uint64_t late_sends;		/* sends more than 1 ms behind */
	/* Of those, late by weft-bench's own delay (more than 1 ms from
	 * the later of the due time and the moment a request slot came
	 * free), and the rest: late because every slot was busy, waiting
	 * for the server's answers.  own_lag_max is the largest own delay. */
	uint64_t late_own, late_waiting, own_lag_max;
};

/* In-flight request times, oldest first. */
struct slot {
	uint64_t intended, sent;
};

/*
 * One connection task's state.  fd and busy_since are read by the ticker
 * of the same worker to enforce --timeout: it shuts a connection down
 * whose oldest request is older than the timeout and sets timed_out, and
 * the task, seeing its receive end, counts a timeout.  Same worker, so
 * plain fields.  Neighbouring connections run on different workers, so
 * each one starts a cache line of its own (as do its slots, main.c).
 */
struct conn {
	_Alignas(64) struct bench *b;
	struct endpoint *ep;
	struct wstate *w;
	int fd;
	bool timed_out;
	uint64_t busy_since; /* when the oldest in-flight request left; 0: none */
	struct slot *q;	     /* depth slots: a ring */
	unsigned qhead, inflight;
	unsigned resend;     /* HTTP: slots from qhead to go again after a close */
	unsigned next;	     /* HTTP: next URL index; echo: stream offset */
	unsigned expect;     /* echo: stream offset of the next byte back */
	size_t got;	     /* echo: bytes of the oldest message back so far */
	uint64_t failing_since; /* first of the connects failing in a row; 0: none */
	uint64_t slot_free_at; /* when a full connection last got a slot back; 0: never full */
	bool opened;	       /* it has opened once: later opens are reconnections */
};

struct ivals;

struct bench {
	/* Settings, from the command line (options.c); read-only once the
	 * runtime runs. */
	enum proto proto;
	struct url *urls;
	unsigned nurls;
	struct endpoint *eps;
	unsigned neps;
	unsigned conns, workers, depth;
	uint64_t duration_ns;	   /* 0: none (with -n) */
	uint64_t total;		   /* -n; 0: none */
	uint64_t warmup_ns;
	uint64_t timeout_ns;	   /* 0: none */
	uint64_t connect_timeout_ns;
	double rate_from, rate_to; /* requests/s; 0: closed loop */
	const char *method;	   /* -m */
	const char *headers[MAX_HEADERS]; /* -H, as given */
	unsigned nheaders;
	char *body;		   /* --body or --body-file; NULL: none */
	size_t body_len;
	const char *host;	   /* --host */
	size_t size;		   /* echo: bytes per message */
	struct slo slos[MAX_SLOS];
	unsigned nslos;
	bool json, progress;
	const char *interval_path, *hgrm_path, *plot_path;

	/* The run.  Its clock starts once every connection has made its
	 * first connect attempt (main.c): `tried` counts the attempts down,
	 * `go` then releases the connections, t0..deadline set. */
	struct weft_wg tried;
	struct weft_future *go;
	uint64_t t0, measure_start, deadline;
	uint64_t t_end; /* when the last connection ended */
	/* SIGINT or SIGTERM ended the run early; written by the signal task,
	 * read when the connects are done. */
	_Atomic bool interrupted;
	bool clock_started; /* false: interrupted before the connects were done */
	_Alignas(64) _Atomic uint64_t ticket; /* request j of the run (-n, --rate) */
	_Alignas(64) struct wstate *ws;
	struct conn *cs;
	struct ivals *iv;
	int setup_err;
};

static inline bool open_loop(const struct bench *b)
{
	return b->rate_to > 0;
}

/* options.c: fills b from argv.  Returns -1 to run, or an exit status:
 * EXIT_OK after --help, EXIT_USAGE after a message on stderr, EXIT_FAIL
 * when out of memory. */
int options_parse(struct bench *b, int argc, char **argv);
/* Frees what options_parse and request_build allocated. */
void options_free(struct bench *b);
/* Parses "10s", "2m", "500ms", "250us", "1h" (or plain seconds when
 * unit_optional) into ns; -1 if malformed. */
int64_t parse_time(const char *s, bool unit_optional);

/* request.c: groups the URLs into endpoints and builds their bytes.
 * 0 or -ENOMEM. */
int request_build(struct bench *b);

/* schedule.c: open loop.  When request j is due, in ns after t0
 * (UINT64_MAX: never, past a falling ramp's peak), and how many requests
 * are due in [0, t) ns after t0 (a real number). */
uint64_t sched_due(const struct bench *b, uint64_t j);
double sched_count(const struct bench *b, uint64_t t);
/* The offered rate over the measured window, requests/s. */
double sched_offered(const struct bench *b, uint64_t window_ns);

/* conn.c: one connection, arg a struct conn. */
intptr_t conn_task(void *arg);

/* ticker.c: per-worker housekeeping, arg the worker's struct wstate. */
int ivals_new(struct bench *b);
void ivals_free(struct bench *b);
bool ticker_needed(const struct bench *b);
intptr_t ticker_task(void *arg);
/* After the tickers ended: writes what no ticker wrote, clears the
 * progress line. */
void ivals_finish(struct bench *b);

/* report.c */
const char *errname(int e);
/* Adds n errors with errno err to a kind's breakdown (struct wstate). */
void err_add(struct err_count *by, int err, uint64_t n);
void fmt_time(char *out, size_t n, double ns);
void fmt_bytes(char *out, size_t n, double v);
/* The measured window in ns. */
uint64_t window_ns(const struct bench *b);
/* Prints the summary (or --json) for the merged totals t; writes --hgrm
 * and --plot.  Returns EXIT_OK, EXIT_SLO when a --slo target is missed, or
 * EXIT_FAIL when a file could not be written. */
int report(const struct bench *b, const struct wstate *t);
/* Writes the percentile fields of h as JSON members ("p50_ns":...). */
void json_percentiles(FILE *f, const struct hist *h);

#endif
