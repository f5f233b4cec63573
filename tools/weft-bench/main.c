// SPDX-License-Identifier: MIT
/*
 * main.c - weft-bench, a load generator in the spirit of wrk2 run on weft:
 * reads the command line (options.c), builds the request bytes
 * (request.c), starts a runtime, and runs the test from its main task:
 * resolves the endpoints, spawns each connection (conn.c) pinned to a
 * worker, round robin, starts the clock once each has made its first
 * connect attempt, spawns each worker's ticker (ticker.c), waits for the
 * connections under a deadline scope at the end of the measured window
 * (its expiry cancels them: that is how a -d run stops), then cancels the
 * tickers.  After the runtime is gone the main thread merges the
 * per-worker counters and histograms and reports (report.c); the exit
 * status is report's, or EXIT_FAIL / EXIT_USAGE before that.
 *
 * ^C (SIGINT) or SIGTERM ends the run early, as in wrk: a task waiting for
 * them cancels the connections, and the report covers the window up to
 * then.  A second one exits at once (status 130).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/io.h>

#include "bench.h"

/* Spawns fn(arg) pinned to worker into g; 0 or -ENOMEM. */
static int spawn_on(struct weft_group *g, weft_fn fn, void *arg, unsigned worker,
		    const char *name)
{
	struct weft_spawn_opts so = {
		.name = name,
		.flags = WEFT_SPAWN_PINNED | WEFT_SPAWN_ON,
		.worker = worker,
	};
	return weft_group_spawn(g, fn, arg, &so);
}

/* SIGINT and SIGTERM: blocked in every thread, taken by stop_on_signal. */
static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

/* Ends the run (arg: the connections' group) at the first stop signal, and
 * the process at the second. */
static intptr_t stop_on_signal(void *arg)
{
	struct bench *b = ((void **)arg)[0];
	struct weft_group *g = ((void **)arg)[1];
	sigset_t set;
	stop_signals(&set);
	if (weft_signal_wait(&set) < 0)
		return 0;
	b->interrupted = true;
	weft_group_cancel(g);
	if (weft_signal_wait(&set) > 0)
		_exit(130);
	return 0;
}

static intptr_t main_task(void *arg)
{
	struct bench *b = arg;
	for (unsigned i = 0; i < b->neps; i++) {
		int r = weft_addr_resolve(b->eps[i].name, &b->eps[i].addr, 1);
		if (r < 0) {
			fprintf(stderr, "weft-bench: cannot resolve %s: %s\n", b->eps[i].name,
				r == -ENOENT ? "no such host" : strerror(-r));
			b->setup_err = r;
			return r;
		}
	}
	struct weft_group *g = weft_group_new(0), *tg = weft_group_new(0);
	b->go = weft_future_new();
	if (!g || !tg || !b->go) {
		weft_group_free(g);
		weft_group_free(tg);
		if (b->go)
			weft_future_free(b->go);
		b->setup_err = -ENOMEM;
		return -ENOMEM;
	}
	/* Listening before the connects: one that hangs (a server whose
	 * backlog is full drops the SYN) must not keep ^C waiting for its
	 * connect timeout.  Cancelled connections give up their wait for the
	 * clock, so the run ends with nothing measured. */
	void *stop_args[2] = {b, g};
	struct weft_task *stopper = weft_spawn(stop_on_signal, stop_args,
					       &(struct weft_spawn_opts){.name = "signals"});
	/* Connect first, then start the clock, as wrk does: a schedule that
	 * began while 10,000 connects were still on their way would open the
	 * run with a backlog that is the generator's, not the server's. */
	weft_wg_init(&b->tried);
	int r = 0;
	for (unsigned i = 0; i < b->conns && r == 0; i++) {
		struct conn *c = &b->cs[i];
		c->b = b;
		c->ep = &b->eps[i % b->neps];
		c->w = &b->ws[i % b->workers];
		c->fd = -1;
		c->next = b->proto == P_HTTP ? (i / b->neps) % c->ep->nurls : 0;
		weft_wg_add(&b->tried, 1);
		if ((r = spawn_on(g, conn_task, c, i % b->workers, "conn")) < 0)
			weft_wg_done(&b->tried);
	}
	weft_wg_wait(&b->tried);
	b->t0 = weft_now();
	/* Stopped before every connection had made its attempt: the
	 * connections give up their wait for the clock, and the window is
	 * empty, not the microseconds they take to end. */
	b->clock_started = !b->interrupted;
	b->measure_start = b->t0 + b->warmup_ns;
	b->deadline = b->duration_ns ? b->measure_start + b->duration_ns : WEFT_NEVER;
	weft_future_resolve(b->go, 0);
	for (unsigned i = 0; i < b->workers && ticker_needed(b) && r == 0; i++)
		r = spawn_on(tg, ticker_task, &b->ws[i], i, "ticker");
	if (r < 0) {
		fprintf(stderr, "weft-bench: out of memory for the tasks\n");
		b->setup_err = r;
		weft_group_cancel(g);
	}
	struct weft_scope run;
	weft_scope_deadline(&run, b->deadline == WEFT_NEVER ? WEFT_NEVER
							    : b->deadline - weft_now());
	weft_group_wait(g);
	weft_scope_end(&run);
	b->t_end = weft_now();
	if (stopper) {
		weft_cancel(stopper);
		weft_join(stopper, NULL);
	}
	weft_group_cancel(tg);
	weft_group_wait(tg);
	weft_group_free(g);
	weft_group_free(tg);
	weft_future_free(b->go);
	ivals_finish(b);
	return 0;
}

/* Adds worker w's counters and histograms into t. */
static void merge(struct wstate *t, const struct wstate *w)
{
	hist_merge(t->corr, w->corr);
	if (t->unc != t->corr)
		hist_merge(t->unc, w->unc);
	t->requests += w->requests;
	t->bytes += w->bytes;
	t->non2xx += w->non2xx;
	for (int k = 0; k < 600; k++)
		t->codes[k] += w->codes[k];
	for (int k = 0; k < E_KINDS; k++) {
		t->errors[k] += w->errors[k];
		if (!t->err_errno[k])
			t->err_errno[k] = w->err_errno[k];
		for (int i = 0; i < ERR_BY && w->err_by[k][i].n; i++)
			err_add(t->err_by[k], w->err_by[k][i].err, w->err_by[k][i].n);
	}
	t->established += w->established;
	t->reconnects += w->reconnects;
	t->sends += w->sends;
	t->lag_sum += w->lag_sum;
	t->late_sends += w->late_sends;
	t->late_own += w->late_own;
	t->late_waiting += w->late_waiting;
	if (w->lag_max > t->lag_max)
		t->lag_max = w->lag_max;
	if (w->own_lag_max > t->own_lag_max)
		t->own_lag_max = w->own_lag_max;
}

static int run(struct bench *b)
{
	struct weft_opts wo = {.workers = b->workers};
	struct weft_rt *rt;
	sigset_t stop;
	stop_signals(&stop);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before any thread: all inherit it */
	int r = weft_rt_new(&rt, &wo);
	if (r < 0) {
		fprintf(stderr, "weft-bench: cannot start the runtime: %s\n", strerror(-r));
		return EXIT_FAIL;
	}
	b->workers = weft_rt_workers(rt);
	b->ws = aligned_alloc(64, b->workers * sizeof(*b->ws));
	b->cs = aligned_alloc(64, b->conns * sizeof(*b->cs));
	/* Each connection's slots on cache lines of their own: 4 a line. */
	_Static_assert(sizeof(struct slot) == 16, "4 slots a cache line");
	size_t per = (b->depth + 3) / 4 * 4;
	struct slot *slots = aligned_alloc(64, (size_t)b->conns * per * sizeof(*slots));
	int rc = EXIT_FAIL;
	if (!b->ws || !b->cs || !slots)
		goto out;
	memset(b->ws, 0, b->workers * sizeof(*b->ws));
	memset(b->cs, 0, b->conns * sizeof(*b->cs));
	for (unsigned i = 0; i < b->conns; i++)
		b->cs[i].q = slots + (size_t)i * per;
	for (unsigned i = 0; i < b->workers; i++) {
		struct wstate *w = &b->ws[i];
		w->b = b;
		w->index = i;
		w->corr = hist_new();
		w->unc = open_loop(b) ? hist_new() : w->corr;
		if (!w->corr || !w->unc)
			goto out;
	}
	if ((r = ivals_new(b)) < 0) {
		fprintf(stderr, "weft-bench: %s: %s\n", b->interval_path ? b->interval_path : "",
			strerror(-r));
		goto out;
	}
	r = weft_rt_run(rt, main_task, b, NULL);
	weft_rt_shutdown(rt, 0);
	rt = NULL;
	if (r < 0 || b->setup_err < 0)
		goto out;
	for (unsigned i = 1; i < b->workers; i++)
		merge(&b->ws[0], &b->ws[i]);
	rc = report(b, &b->ws[0]);
out:
	if (rt)
		weft_rt_shutdown(rt, 0);
	ivals_free(b);
	for (unsigned i = 0; b->ws && i < b->workers; i++) {
		if (b->ws[i].unc != b->ws[i].corr)
			hist_free(b->ws[i].unc);
		hist_free(b->ws[i].corr);
	}
	free(b->ws);
	free(b->cs);
	free(slots);
	return rc;
}

int main(int argc, char **argv)
{
	static struct bench b;
	int rc = options_parse(&b, argc, argv);
	if (rc < 0) {
		b.progress = isatty(STDERR_FILENO);
		if (request_build(&b) < 0) {
			fprintf(stderr, "weft-bench: out of memory\n");
			rc = EXIT_FAIL;
		} else if (b.conns < b.neps) {
			/* Connection i opens endpoint i % neps: each needs one. */
			fprintf(stderr, "weft-bench: -c is below the number of targets (host:port or "
					"socket), which need a connection each\n");
			rc = EXIT_USAGE;
		} else {
			rc = run(&b);
		}
	}
	options_free(&b);
	return rc;
}
