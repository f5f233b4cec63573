// SPDX-License-Identifier: MIT
/*
 * ticker.c - weft-bench's per-worker housekeeping task, pinned beside that
 * worker's connections, so everything it touches of theirs is plain
 * memory (bench.h, "Threading").  It does, as the options ask:
 *
 *  - --timeout: every timeout/8 (1 ms..100 ms) it looks at its
 *    connections, and one whose oldest request has waited longer than the
 *    timeout gets timed_out set and its socket shut down; the connection's
 *    pending receive ends and conn.c counts timeouts.  Requests carry no
 *    timer of their own.
 *
 *  - --interval-json and the progress line: at each second of the
 *    measured window (measure_start + k s) it swaps its worker's interval
 *    histogram (wstate.ivl, recorded by the connections) with a spare and
 *    adds the old one, with the counters' growth over the second, into
 *    the collector's slot for second k, under the collector's mutex: once
 *    a second per worker, never on the request path.  The worker that
 *    completes a slot (the last of them to arrive) writes its line and the
 *    progress line.
 *
 * At the end main.c cancels the tickers; each adds its last, partial
 * second as final, and ivals_finish writes what no ticker completed.
 * Slots are a ring of NSLOTS seconds, so workers may fall that far apart.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bench.h"

#define NSLOTS 8

struct islot {
	bool used, final;
	int64_t k;
	unsigned arrived;
	struct hist *h; /* NULL without --interval-json */
	uint64_t requests, bytes, errors, non2xx;
};

struct ivals {
	pthread_mutex_t mu;
	FILE *out;	     /* --interval-json; NULL: none */
	struct hist **spare; /* per worker, swapped with wstate.ivl */
	struct islot slot[NSLOTS];
	uint64_t requests, errors; /* totals so far, for the progress line */
	bool shown;		   /* a progress line is on the terminal */
};

/* What a worker's counters were at its last flush. */
struct snap {
	uint64_t requests, bytes, errors, non2xx;
};

bool ticker_needed(const struct bench *b)
{
	return b->timeout_ns || b->interval_path || b->progress;
}

int ivals_new(struct bench *b)
{
	if (!b->interval_path && !b->progress)
		return 0;
	struct ivals *iv = calloc(1, sizeof(*iv));
	if (!iv)
		return -ENOMEM;
	b->iv = iv;
	pthread_mutex_init(&iv->mu, NULL);
	if (!b->interval_path)
		return 0;
	iv->out = strcmp(b->interval_path, "-") ? fopen(b->interval_path, "w") : stdout;
	if (!iv->out)
		return -errno;
	iv->spare = calloc(b->workers, sizeof(*iv->spare));
	if (!iv->spare)
		return -ENOMEM;
	for (unsigned i = 0; i < b->workers; i++) {
		iv->spare[i] = hist_new();
		b->ws[i].ivl = hist_new();
		if (!iv->spare[i] || !b->ws[i].ivl)
			return -ENOMEM;
	}
	for (int s = 0; s < NSLOTS; s++)
		if (!(iv->slot[s].h = hist_new()))
			return -ENOMEM;
	return 0;
}

void ivals_free(struct bench *b)
{
	struct ivals *iv = b->iv;
	if (!iv)
		return;
	if (iv->out && iv->out != stdout)
		fclose(iv->out);
	for (unsigned i = 0; iv->spare && i < b->workers; i++) {
		hist_free(iv->spare[i]);
		hist_free(b->ws[i].ivl);
	}
	free(iv->spare);
	for (int s = 0; s < NSLOTS; s++)
		hist_free(iv->slot[s].h);
	pthread_mutex_destroy(&iv->mu);
	free(iv);
	b->iv = NULL;
}

/* Writes slot s's line and empties it.  Under the mutex, or alone. */
static void emit(const struct bench *b, struct ivals *iv, struct islot *s)
{
	uint64_t start = b->measure_start + (uint64_t)s->k * WEFT_SEC;
	uint64_t end = start + WEFT_SEC, stop = b->measure_start + window_ns(b);
	if (s->final && stop < end)
		end = stop > start ? stop : start;
	double dur = (double)(end - start) / 1e9;
	if (iv->out && dur > 0) {
		FILE *f = iv->out;
		fprintf(f, "{\"second\":%" PRId64 ",\"t_s\":%.3f,\"interval_s\":%.3f,"
			   "\"requests\":%" PRIu64 ",\"requests_per_sec\":%.2f,",
			s->k + 1, (double)(end - b->measure_start) / 1e9, dur, s->requests,
			(double)s->requests / dur);
		if (open_loop(b))
			fprintf(f, "\"offered_per_sec\":%.2f,",
				(sched_count(b, end - b->t0) - sched_count(b, start - b->t0)) / dur);
		fprintf(f, "\"bytes\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"non_2xx_3xx\":%" PRIu64
			   ",\"latency\":{",
			s->bytes, s->errors, s->non2xx);
		json_percentiles(f, s->h);
		fprintf(f, "}}\n");
		fflush(f);
	}
	if (b->progress && !s->final) {
		/* "  3.00s, 7.00s left: 1234 req/s (1890 overall), 5678 requests,
		 * 0 errors": the last second's rate, then the run's so far. */
		char el[32], left[48] = "", of[32] = "";
		uint64_t t = end - b->measure_start;
		fmt_time(el, sizeof(el), (double)t);
		if (b->duration_ns > t) {
			char r[32];
			fmt_time(r, sizeof(r), (double)(b->duration_ns - t));
			snprintf(left, sizeof(left), ", %s left", r);
		}
		if (b->total)
			snprintf(of, sizeof(of), " of %" PRIu64, b->total);
		fprintf(stderr, "\r  %s%s: %.0f req/s (%.0f overall), %" PRIu64 "%s requests, %" PRIu64
				" errors\033[K",
			el, left, (double)s->requests / dur, (double)iv->requests * 1e9 / (double)t,
			iv->requests, of, iv->errors);
		iv->shown = true;
	}
	if (s->h)
		hist_reset(s->h);
	struct hist *h = s->h;
	*s = (struct islot){.h = h};
}

/* Adds worker w's second k (final: its last, partial one) to the collector. */
static void flush(struct wstate *w, int64_t k, struct snap *last, bool final)
{
	struct bench *b = w->b;
	struct ivals *iv = b->iv;
	struct hist *h = w->ivl;
	if (h)
		w->ivl = iv->spare[w->index];
	uint64_t errors = 0;
	for (int e = 0; e < E_KINDS; e++)
		errors += w->errors[e];
	struct snap now = {w->requests, w->bytes, errors, w->non2xx};
	pthread_mutex_lock(&iv->mu);
	struct islot *s = &iv->slot[k % NSLOTS];
	s->used = true;
	s->k = k;
	s->final |= final;
	if (h)
		hist_merge(s->h, h);
	s->requests += now.requests - last->requests;
	s->bytes += now.bytes - last->bytes;
	s->errors += now.errors - last->errors;
	s->non2xx += now.non2xx - last->non2xx;
	iv->requests += now.requests - last->requests;
	iv->errors += now.errors - last->errors;
	if (++s->arrived == b->workers)
		emit(b, iv, s);
	pthread_mutex_unlock(&iv->mu);
	*last = now;
	if (h) {
		hist_reset(h);
		iv->spare[w->index] = h;
	}
}

/* Shuts down the connections of w whose oldest request is late. */
static void check_timeouts(struct wstate *w, uint64_t now)
{
	struct bench *b = w->b;
	for (unsigned i = w->index; i < b->conns; i += b->workers) {
		struct conn *c = &b->cs[i];
		if (c->busy_since && now - c->busy_since > b->timeout_ns && c->fd >= 0 &&
		    !c->timed_out) {
			c->timed_out = true;
			shutdown(c->fd, SHUT_RDWR);
		}
	}
}

intptr_t ticker_task(void *arg)
{
	struct wstate *w = arg;
	struct bench *b = w->b;
	uint64_t period = b->timeout_ns / 8;
	if (period < WEFT_MSEC)
		period = WEFT_MSEC;
	if (period > 100 * WEFT_MSEC)
		period = 100 * WEFT_MSEC;
	uint64_t now = weft_now();
	uint64_t check = b->timeout_ns ? now + period : WEFT_NEVER;
	struct snap last = {0};
	int64_t k = 0;
	for (;;) {
		uint64_t tick = b->iv ? b->measure_start + (uint64_t)(k + 1) * WEFT_SEC : WEFT_NEVER;
		uint64_t wake = tick < check ? tick : check;
		if (wake > now && weft_sleep(wake - now) < 0)
			break;
		now = weft_now();
		if (now >= check) {
			check_timeouts(w, now);
			check = now + period;
		}
		if (now >= tick)
			flush(w, k++, &last, false);
	}
	if (b->iv)
		flush(w, k, &last, true);
	return 0;
}

void ivals_finish(struct bench *b)
{
	struct ivals *iv = b->iv;
	if (!iv)
		return;
	/* Slots some worker never completed, oldest first. */
	for (;;) {
		struct islot *oldest = NULL;
		for (int s = 0; s < NSLOTS; s++)
			if (iv->slot[s].used && (!oldest || iv->slot[s].k < oldest->k))
				oldest = &iv->slot[s];
		if (!oldest)
			break;
		oldest->final = true;
		emit(b, iv, oldest);
	}
	if (iv->shown)
		fprintf(stderr, "\r\033[K");
}
