// SPDX-License-Identifier: MIT
/*
 * report.c - weft-bench's results: the wrk-style summary (with wrk's exact
 * `Requests/sec:` and `Transfer/sec:` lines), the --json object, the
 * --hgrm and --plot files written from the latency histogram (hist.c),
 * and the --slo verdict behind the exit status.  docs/bench.md explains
 * every line and field; the field names of --json are stable.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define HAVE_STRERRORNAME_NP 1
#endif

void err_add(struct err_count *by, int err, uint64_t n)
{
	for (int i = 0; i < ERR_BY; i++) {
		if (!by[i].n || by[i].err == err) {
			by[i].err = err;
			by[i].n += n;
			return;
		}
	}
	by[ERR_BY - 1].err = 0; /* every entry taken: the last is "other" now */
	by[ERR_BY - 1].n += n;
}

/* The name of a breakdown entry's errno: "other" for the catch-all. */
static const char *err_by_name(const struct err_count *c)
{
	return c->err ? errname(c->err) : "other";
}

const char *errname(int e)
{
	if (!e)
		return "-";
#ifdef HAVE_STRERRORNAME_NP
	const char *s = strerrorname_np(e);
	return s ? s : "?";
#else
	static const struct {
		int e;
		const char *name;
	} names[] = {
		{ECONNREFUSED, "ECONNREFUSED"}, {ECONNRESET, "ECONNRESET"},
		{ETIMEDOUT, "ETIMEDOUT"},	{EPIPE, "EPIPE"},
		{EPROTO, "EPROTO"},		{EBADMSG, "EBADMSG"},
		{EMSGSIZE, "EMSGSIZE"},		{EILSEQ, "EILSEQ"},
		{ENOENT, "ENOENT"},		{EHOSTUNREACH, "EHOSTUNREACH"},
		{ENETUNREACH, "ENETUNREACH"},	{EADDRNOTAVAIL, "EADDRNOTAVAIL"},
		{EMFILE, "EMFILE"},		{ENFILE, "ENFILE"},
		{E2BIG, "E2BIG"},		{EPROTONOSUPPORT, "EPROTONOSUPPORT"},
		{EACCES, "EACCES"},		{ECONNABORTED, "ECONNABORTED"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	return "?";
#endif
}

void fmt_time(char *out, size_t n, double ns)
{
	if (ns >= 1e9)
		snprintf(out, n, "%.2fs", ns / 1e9);
	else if (ns >= 1e6)
		snprintf(out, n, "%.2fms", ns / 1e6);
	else
		snprintf(out, n, "%.2fus", ns / 1e3);
}

void fmt_bytes(char *out, size_t n, double v)
{
	static const char *const u[] = {"B", "KB", "MB", "GB", "TB"};
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, n, "%.2f%s", v, u[i]);
}

uint64_t window_ns(const struct bench *b)
{
	uint64_t end = b->t_end;
	if (!b->clock_started)
		return 0;
	if (b->deadline != WEFT_NEVER && end > b->deadline)
		end = b->deadline;
	return end > b->measure_start ? end - b->measure_start : 0;
}

static const double pcts[] = {50, 75, 90, 99, 99.9, 99.99, 100};
static const char *const pct_key[] = {"p50", "p75", "p90", "p99", "p99_9", "p99_99", "p100"};
#define NPCTS (sizeof(pcts) / sizeof(pcts[0]))

void json_percentiles(FILE *f, const struct hist *h)
{
	fprintf(f, "\"count\":%" PRIu64 ",\"min_ns\":%" PRIu64 ",\"mean_ns\":%.0f,"
		   "\"stdev_ns\":%.0f,\"max_ns\":%" PRIu64,
		hist_count(h), hist_min(h), hist_mean(h), hist_stdev(h), hist_max(h));
	for (size_t i = 0; i < NPCTS; i++)
		fprintf(f, ",\"%s_ns\":%" PRIu64, pct_key[i], hist_value_at_percentile(h, pcts[i]));
}

/* The figures of one run, as both outputs print them. */
struct figures {
	double secs, rps, tps;
	uint64_t errors; /* of every kind */
	double error_pct;
	bool slo_ok;
	double slo_value[MAX_SLOS];
	bool slo_met[MAX_SLOS];
	bool slo_unmeasured[MAX_SLOS]; /* a latency target with no latencies */
};

static void evaluate(const struct bench *b, const struct wstate *t, struct figures *fg)
{
	fg->secs = (double)window_ns(b) / 1e9;
	fg->rps = fg->secs > 0 ? (double)t->requests / fg->secs : 0;
	fg->tps = fg->secs > 0 ? (double)t->bytes / fg->secs : 0;
	fg->errors = 0;
	for (int k = 0; k < E_KINDS; k++)
		fg->errors += t->errors[k];
	uint64_t bad = fg->errors + t->non2xx, all = t->requests + fg->errors;
	fg->error_pct = all ? 100.0 * (double)bad / (double)all : 0;
	fg->slo_ok = true;
	for (unsigned i = 0; i < b->nslos; i++) {
		const struct slo *o = &b->slos[i];
		double v = 0;
		switch (o->kind) {
		case SLO_PCT: v = (double)hist_value_at_percentile(t->corr, o->pct); break;
		case SLO_MEAN: v = hist_mean(t->corr); break;
		case SLO_MAX: v = (double)hist_max(t->corr); break;
		case SLO_ERRORS: v = fg->error_pct; break;
		case SLO_RPS: v = fg->rps; break;
		}
		fg->slo_value[i] = v;
		/* A latency target needs latencies: with no response at all
		 * (a server that never answers) it is missed, not met by 0. */
		fg->slo_unmeasured[i] = o->kind != SLO_RPS && o->kind != SLO_ERRORS &&
					!hist_count(t->corr);
		fg->slo_met[i] = !fg->slo_unmeasured[i] &&
				 (o->kind == SLO_RPS ? v >= o->limit : v <= o->limit);
		fg->slo_ok &= fg->slo_met[i];
	}
}

static bool kind_applies(const struct bench *b, int k)
{
	return k == E_VERIFY ? b->proto == P_ECHO : k == E_PARSE ? b->proto == P_HTTP : true;
}

/*
 * Open loop: why sends were late, and a plain word when it matters (more
 * than 1% of them).  Late by its own delay means the generator did not keep
 * up; late waiting for a free connection means the server did not answer
 * fast enough for the rate over these connections.  The corrected latency
 * counts both; only the first says the load was not what was asked.
 */
static void print_lateness(const struct bench *b, const struct wstate *t)
{
	if (!t->late_sends)
		return;
	char own[32];
	fmt_time(own, sizeof(own), (double)t->own_lag_max);
	printf("    late waiting for a free connection: %" PRIu64 ", by weft-bench's own delay: %" PRIu64
	       " (own delay max %s)\n",
	       t->late_waiting, t->late_own, own);
	if (t->late_own * 100 > t->sends)
		printf("  Warning: weft-bench could not keep up: %" PRIu64 " of %" PRIu64
		       " sends left more than 1ms late by its own delay, so the load was not the "
		       "one asked for; give it more workers (-w) or CPU\n",
		       t->late_own, t->sends);
	if (t->late_waiting * 100 > t->sends)
		printf("  Note: %" PRIu64 " of %" PRIu64 " requests came due while all %u connections "
		       "were busy: the server did not answer fast enough for this rate over %u "
		       "connections (the corrected latency counts the wait)\n",
		       t->late_waiting, t->sends, b->conns, b->conns);
}

static void print_json(const struct bench *b, const struct wstate *t, const struct figures *fg)
{
	bool open = open_loop(b);
	printf("{\"mode\":\"%s\",\"protocol\":\"%s\",\"connections\":%u,\"established\":%" PRIu64
	       ",\"reconnects\":%" PRIu64 ",\"interrupted\":%s,\"workers\":%u,\"pipeline\":%u,\"duration_s\":%.6f,\"requests\":%" PRIu64
	       ",\"bytes\":%" PRIu64 ",\"requests_per_sec\":%.2f,\"bytes_per_sec\":%.2f,"
	       "\"latency\":{",
	       open ? "open" : "closed", b->proto == P_ECHO ? "echo" : "http", b->conns,
	       t->established, t->reconnects, b->interrupted ? "true" : "false", b->workers,
	       b->depth, fg->secs, t->requests, t->bytes, fg->rps, fg->tps);
	json_percentiles(stdout, t->corr);
	printf("}");
	if (open) {
		printf(",\"uncorrected\":{");
		json_percentiles(stdout, t->unc);
		printf("},\"rate\":{\"offered\":%.2f,\"from\":%.2f,\"to\":%.2f,\"achieved\":%.2f,"
		       "\"sends\":%" PRIu64 ",\"late_sends\":%" PRIu64 ",\"late_sends_own\":%" PRIu64
		       ",\"late_sends_waiting\":%" PRIu64 ",\"max_lag_ns\":%" PRIu64
		       ",\"max_own_lag_ns\":%" PRIu64 ",\"mean_lag_ns\":%.0f}",
		       sched_offered(b, window_ns(b)), b->rate_from, b->rate_to, fg->rps, t->sends,
		       t->late_sends, t->late_own, t->late_waiting, t->lag_max, t->own_lag_max,
		       t->sends ? (double)t->lag_sum / (double)t->sends : 0.0);
	}
	printf(",\"status\":{");
	bool first = true;
	for (int i = 0; i < 600; i++) {
		if (!t->codes[i])
			continue;
		printf("%s\"%d\":%" PRIu64, first ? "" : ",", i, t->codes[i]);
		first = false;
	}
	printf("},\"non_2xx_3xx\":%" PRIu64 ",\"error_pct\":%.4f,\"errors\":{", t->non2xx,
	       fg->error_pct);
	for (int k = 0; k < E_KINDS; k++) {
		printf("%s\"%s\":{\"count\":%" PRIu64 ",\"errno\":\"%s\",\"by_errno\":{", k ? "," : "",
		       kind_key[k], t->errors[k], errname(t->err_errno[k]));
		for (int i = 0; i < ERR_BY && t->err_by[k][i].n; i++)
			printf("%s\"%s\":%" PRIu64, i ? "," : "", err_by_name(&t->err_by[k][i]),
			       t->err_by[k][i].n);
		printf("}}");
	}
	printf("}");
	if (b->nslos) {
		printf(",\"slo\":{\"ok\":%s,\"targets\":[", fg->slo_ok ? "true" : "false");
		for (unsigned i = 0; i < b->nslos; i++) {
			printf("%s{\"name\":\"%s\",\"limit\":%.6g,\"value\":", i ? "," : "",
			       b->slos[i].name, b->slos[i].limit);
			if (fg->slo_unmeasured[i])
				printf("null");
			else
				printf("%.6g", fg->slo_value[i]);
			printf(",\"ok\":%s}", fg->slo_met[i] ? "true" : "false");
		}
		printf("]}");
	}
	printf("}\n");
}

static void print_latency(const char *title, const struct hist *h)
{
	char a[32], s[32], m[32], lo[32];
	fmt_time(a, sizeof(a), hist_mean(h));
	fmt_time(s, sizeof(s), hist_stdev(h));
	fmt_time(m, sizeof(m), (double)hist_max(h));
	fmt_time(lo, sizeof(lo), (double)hist_min(h));
	printf("  %s\n", title);
	printf("    Latency   mean %s  stdev %s  max %s  min %s\n", a, s, m, lo);
	printf("  Latency Distribution\n");
	for (size_t i = 0; i < NPCTS; i++) {
		char v[32];
		fmt_time(v, sizeof(v), (double)hist_value_at_percentile(h, pcts[i]));
		printf("    %7g%%  %s\n", pcts[i], v);
	}
}

/* An SLO's limit or value in its own unit. */
static void fmt_slo(char *out, size_t n, const struct slo *o, double v)
{
	if (o->kind == SLO_ERRORS)
		snprintf(out, n, "%.4g%%", v);
	else if (o->kind == SLO_RPS)
		snprintf(out, n, "%.2f/s", v);
	else
		fmt_time(out, n, v);
}

static void print_text(const struct bench *b, const struct wstate *t, const struct figures *fg)
{
	bool open = open_loop(b);
	char d[32], by[32];
	fmt_time(d, sizeof(d), (double)window_ns(b));
	printf("Running %s test @ %s", d, b->urls[0].text);
	for (unsigned i = 1; i < b->nurls; i++)
		printf(" %s", b->urls[i].text);
	printf("\n  %u workers and %u connections (%" PRIu64 " established", b->workers, b->conns,
	       t->established);
	if (t->reconnects)
		printf(", %" PRIu64 " reconnections", t->reconnects);
	printf("), %s", open ? "open loop" : "closed loop");
	if (b->depth > 1)
		printf(", pipeline %u", b->depth);
	printf("\n");
	if (open) {
		print_latency("Corrected latency (from each request's intended send time)", t->corr);
		print_latency("Uncorrected latency (from the actual send)", t->unc);
	} else {
		print_latency("Latency (closed loop)", t->corr);
	}
	fmt_bytes(by, sizeof(by), (double)t->bytes);
	printf("  %" PRIu64 " requests in %s, %s read\n", t->requests, d, by);
	if (b->proto == P_HTTP) {
		printf("  Status codes:");
		for (int i = 0; i < 600; i++)
			if (t->codes[i])
				printf(" %d: %" PRIu64, i, t->codes[i]);
		printf("\n");
		if (t->non2xx)
			printf("  Non-2xx or 3xx responses: %" PRIu64 "\n", t->non2xx);
	}
	if (fg->errors) {
		printf("  Socket errors:");
		const char *sep = "";
		for (int k = 0; k < E_KINDS; k++) {
			if (!kind_applies(b, k))
				continue;
			const struct err_count *by = t->err_by[k];
			printf("%s %s %" PRIu64, sep, kind_name[k], t->errors[k]);
			if (by[1].n) { /* more than one errno: each with its count */
				for (int i = 0; i < ERR_BY && by[i].n; i++)
					printf("%s%s %" PRIu64, i ? ", " : " (", err_by_name(&by[i]),
					       by[i].n);
				printf(")");
			} else {
				printf(" (%s)", errname(t->err_errno[k]));
			}
			sep = ",";
		}
		printf("\n");
	}
	if (open) {
		char ml[32], mean[32];
		fmt_time(ml, sizeof(ml), (double)t->lag_max);
		fmt_time(mean, sizeof(mean), t->sends ? (double)t->lag_sum / (double)t->sends : 0.0);
		printf("  Rate: offered %.2f/s", sched_offered(b, window_ns(b)));
		if (b->rate_from != b->rate_to)
			printf(" (ramp %.2f/s to %.2f/s)", b->rate_from, b->rate_to);
		printf(", achieved %.2f/s\n", fg->rps);
		printf("  Behind schedule: max %s, mean %s, %" PRIu64 " of %" PRIu64
		       " sends more than 1ms late\n",
		       ml, mean, t->late_sends, t->sends);
		print_lateness(b, t);
	}
	for (unsigned i = 0; i < b->nslos; i++) {
		const struct slo *o = &b->slos[i];
		char lim[32], val[32];
		fmt_slo(lim, sizeof(lim), o, o->limit);
		if (fg->slo_unmeasured[i])
			snprintf(val, sizeof(val), "no responses");
		else
			fmt_slo(val, sizeof(val), o, fg->slo_value[i]);
		printf("  SLO %s %s %s: %s, %s\n", o->name, o->kind == SLO_RPS ? ">=" : "<=", lim,
		       val, fg->slo_met[i] ? "met" : "MISSED");
	}
	printf("Requests/sec: %.2f\n", fg->rps);
	fmt_bytes(by, sizeof(by), fg->tps);
	printf("Transfer/sec: %s\n", by);
}

/* Writes --hgrm or --plot; 0, or -errno with a message on stderr. */
static int write_file(const char *path, const struct bench *b, const struct hist *h,
		      const struct hist *t_unc, bool svg)
{
	FILE *f = fopen(path, "w");
	int r = f ? 0 : -errno;
	if (f) {
		/* Open loop: the corrected curve, and the uncorrected one
		 * to show what coordinated omission would have hidden. */
		const struct hist *hs[] = {h, t_unc};
		static const char *const labels[] = {"corrected (from the intended send)",
						     "uncorrected (from the actual send)"};
		r = !svg ? hist_write_hgrm(h, f, 1e6)
		    : open_loop(b) ? hist_write_svg_n(hs, labels, 2, f, "Latency by percentile")
				   : hist_write_svg(h, f, "Latency by percentile");
		if (fclose(f) && r == 0)
			r = -EIO;
	}
	if (r < 0)
		fprintf(stderr, "weft-bench: %s: %s\n", path, strerror(-r));
	return r;
}

int report(const struct bench *b, const struct wstate *t)
{
	struct figures fg;
	evaluate(b, t, &fg);
	if (!b->clock_started)
		fprintf(stderr, "weft-bench: interrupted while connecting; nothing was measured\n");
	else if (b->interrupted)
		fprintf(stderr, "weft-bench: interrupted; the figures cover the %.2f s measured\n",
			fg.secs);
	if (b->json)
		print_json(b, t, &fg);
	else
		print_text(b, t, &fg);
	fflush(stdout);
	int rc = fg.slo_ok ? EXIT_OK : EXIT_SLO;
	if (b->hgrm_path && write_file(b->hgrm_path, b, t->corr, t->unc, false) < 0)
		rc = EXIT_FAIL;
	if (b->plot_path && write_file(b->plot_path, b, t->corr, t->unc, true) < 0)
		rc = EXIT_FAIL;
	return rc;
}
