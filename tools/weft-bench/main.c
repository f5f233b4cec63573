// SPDX-License-Identifier: MIT
/*
 * main.c - weft-bench, an HTTP/1.1 load generator in the spirit of wrk2,
 * run on weft itself.  Each connection is one task, pinned to a worker,
 * with one request in flight: it sends a GET, reads the response with
 * <weft/http1.h> (head, then Content-Length or chunked body) and records
 * the latency in its worker's histogram (hist.h).  Tasks on one worker
 * never run at once, so a per-worker histogram needs no lock; the main
 * thread merges them after every task has ended.
 *
 * Closed loop by default: the next request leaves as soon as the response
 * came.  --rate R: open loop, request j of the run (a shared ticket) is due
 * at start + j/R; latency counts from that intended time (corrected for
 * coordinated omission, as wrk2 does) and from the actual send
 * (uncorrected).  -n N: exactly N requests are sent in all (the same
 * ticket).  The run ends at a deadline scope every connection task runs
 * under; a nested scope per request gives --timeout.  docs/bench.md tells
 * how to read the output.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>
#include <weft/http1.h>
#include <weft/io.h>
#include <weft/net.h>

#include "hist.h"

/* Error kinds, as the summary prints them. */
enum { E_CONNECT, E_READ, E_WRITE, E_TIMEOUT, E_PARSE, E_CLOSE, E_KINDS };
static const char *const kind_name[E_KINDS] = {
	"connect", "read", "write", "timeout", "parse", "unexpected close",
};
static const char *const kind_key[E_KINDS] = {
	"connect", "read", "write", "timeout", "parse", "closed",
};

struct target {
	char *url;	/* as given */
	char *hostport; /* HOST:PORT, for weft_addr_resolve */
	char *req;	/* the request bytes */
	size_t req_len;
	struct weft_addr addr;
};

/* What the connections of one worker gather; written only by tasks pinned
 * to that worker (one at a time), read by the main thread after they all
 * ended (weft_group_wait orders it). */
struct wstate {
	struct hist *corr;  /* from the intended send time (closed: = unc) */
	struct hist *unc;   /* from the actual send */
	uint64_t requests;  /* complete responses inside the window */
	uint64_t bytes;	    /* response bytes read inside the window */
	uint64_t status[6]; /* by class: [1] 1xx ... [5] 5xx, [0] other */
	uint64_t codes[600];
	uint64_t errors[E_KINDS];
	int err_errno[E_KINDS]; /* the first errno of each kind */
	uint64_t established;
	uint64_t sends;
	uint64_t lag_sum, lag_max; /* open loop: send time behind schedule */
	uint64_t late_sends;	   /* sends more than 1 ms behind */
};

struct bench {
	struct target *targets;
	unsigned ntargets;
	unsigned conns, workers;
	uint64_t duration_ns; /* 0: none (with -n) */
	uint64_t total;	      /* -n; 0: none */
	uint64_t warmup_ns;
	uint64_t timeout_ns;
	double rate; /* 0: closed loop */
	bool json;
	/* Set before the tasks start; read-only afterwards. */
	uint64_t t0, measure_start, deadline;
	/* The shared ticket: request j of the run (-n, --rate). */
	_Atomic uint64_t ticket;
	struct wstate *ws;
	uint64_t t_end; /* when the last connection ended */
	int setup_err;
};

struct conn {
	struct bench *b;
	struct target *t;
	struct wstate *w;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-bench [options] URL...\n"
		"  -c, --connections N   connections, one request in flight each (10)\n"
		"  -d, --duration T      run time: 10s, 2m, 500ms, 1h (10s unless -n)\n"
		"  -n, --requests N      exactly N requests in all\n"
		"  -w, --workers N       worker threads (weft's default: the CPUs)\n"
		"      --warmup T        leading time not counted (0)\n"
		"  -R, --rate R          open loop at R requests/s in all (CO-corrected)\n"
		"      --timeout T       per-request timeout (2s)\n"
		"      --json            print the result as one JSON object\n"
		"URL: http://HOST:PORT/PATH (HOST a name, IPv4 or [IPv6])\n");
}

/* "10s", "2m", "500ms", "1.5h", "3" (seconds) into ns; -1 if malformed. */
static int64_t parse_time(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || !(v >= 0))
		return -1;
	double mul = 1e9;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mul = 1e9;
	else if (!strcmp(end, "ms"))
		mul = 1e6;
	else if (!strcmp(end, "us"))
		mul = 1e3;
	else if (!strcmp(end, "m"))
		mul = 60e9;
	else if (!strcmp(end, "h"))
		mul = 3600e9;
	else
		return -1;
	double ns = v * mul;
	if (ns > 1e18)
		return -1;
	return (int64_t)ns;
}

static int parse_count(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s || *end || errno || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

/* Splits http://HOST[:PORT][/PATH] into t; 0 or -1. */
static int parse_url(const char *url, struct target *t)
{
	const char *p = url;
	if (strncmp(p, "http://", 7) != 0)
		return -1;
	p += 7;
	const char *slash = strchr(p, '/');
	size_t hl = slash ? (size_t)(slash - p) : strlen(p);
	const char *path = slash ? slash : "/";
	if (hl == 0)
		return -1;
	char host[512];
	if (hl >= sizeof(host) - 8)
		return -1;
	memcpy(host, p, hl);
	host[hl] = 0;
	/* The port is after the last ':' outside brackets. */
	const char *rb = strrchr(host, ']');
	const char *colon = strrchr(host, ':');
	bool has_port = colon && (!rb || colon > rb);
	if (host[0] == '[' && !rb)
		return -1;
	if (!host[0] || (has_port && colon == host))
		return -1;
	char hp[520];
	snprintf(hp, sizeof(hp), "%s%s", host, has_port ? "" : ":80");
	t->url = strdup(url);
	t->hostport = strdup(hp);
	int n = snprintf(NULL, 0, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
	t->req = malloc((size_t)n + 1);
	if (!t->url || !t->hostport || !t->req)
		return -1;
	snprintf(t->req, (size_t)n + 1, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
	t->req_len = (size_t)n;
	return 0;
}

static const char *errname(int e)
{
	const char *s = e ? strerrorname_np(e) : NULL;
	return s ? s : e ? "?" : "-";
}

static void count_error(struct wstate *w, int kind, int err)
{
	w->errors[kind]++;
	if (!w->err_errno[kind])
		w->err_errno[kind] = err;
}

/* Outcome of one exchange. */
enum { XCH_OK, XCH_ERR, XCH_STOP };

/*
 * One request on fd: sends it, reads the response into buf (leftover bytes
 * of a previous response at buf[0, *len)), decodes the body.  Returns XCH_OK
 * with *status, *keep (the connection may carry the next request) and
 * *bytes set; XCH_ERR with *kind and *err; or the raw -ETIMEDOUT/-ECANCELED
 * through *err with XCH_STOP.
 */
static int exchange(int fd, struct target *t, char *buf, size_t cap, size_t *len,
		    int *status, bool *keep, uint64_t *bytes, int *kind, int *err)
{
	ssize_t rc = weft_sock_send_all(fd, t->req, t->req_len, NULL);
	if (rc < 0) {
		*err = (int)-rc;
		*kind = E_WRITE;
		return rc == -ETIMEDOUT || rc == -ECANCELED ? XCH_STOP : XCH_ERR;
	}
	struct weft_http1_header headers[64];
	struct weft_http1_parser p;
	struct weft_http1_head h;
	struct weft_http1_body body;
	weft_http1_parser_init(&p, NULL, headers, 64);
	bool have_head = false;
	size_t used = 0;
	*bytes = 0;
	for (;;) {
		if (!have_head && *len > 0) {
			/* The head is parsed from buf[0]: the parser wants
			 * the whole head so far on every call. */
			int hn = weft_http1_parse_response(&p, buf, *len, &h, WEFT_HTTP1_GET);
			if (hn < 0 && hn != -EAGAIN) {
				*kind = E_PARSE;
				*err = -hn;
				return XCH_ERR;
			}
			if (hn > 0 && h.status < 200) {
				/* An interim response: the final one follows. */
				memmove(buf, buf + hn, *len - (size_t)hn);
				*len -= (size_t)hn;
				continue;
			}
			if (hn > 0) {
				have_head = true;
				*status = h.status;
				*keep = (h.flags & WEFT_HTTP1_KEEP_ALIVE) != 0;
				used = (size_t)hn;
				weft_http1_body_init(&body, h.framing, h.content_length, NULL);
			}
		}
		if (have_head) {
			/* At least one call: a body with no bytes ends at once. */
			int r;
			do {
				size_t u;
				struct weft_http1_slice d;
				r = weft_http1_body_decode(&body, buf + used, *len - used, &u, &d);
				used += u;
			} while (r == 0 && used < *len);
			if (r < 0) {
				*kind = E_PARSE;
				*err = -r;
				return XCH_ERR;
			}
			if (r == 1) {
				/* Keep what follows: nothing, with one request
				 * in flight, unless the server misbehaves. */
				memmove(buf, buf + used, *len - used);
				*len -= used;
				return XCH_OK;
			}
			/* The payload is dropped: room for the next bytes. */
			*len = 0;
			used = 0;
		}
		if (*len == cap) {
			*kind = E_PARSE;
			*err = EMSGSIZE; /* a head larger than the buffer */
			return XCH_ERR;
		}
		ssize_t got = weft_recv(fd, buf + *len, cap - *len, 0);
		if (got < 0) {
			*err = (int)-got;
			*kind = E_READ;
			return got == -ETIMEDOUT || got == -ECANCELED ? XCH_STOP : XCH_ERR;
		}
		if (got == 0) {
			/* End of stream ends the exchange properly only where
			 * the framing says so (UNTIL_CLOSE). */
			if (have_head && weft_http1_body_eof(&body) == 0) {
				*keep = false;
				return XCH_OK;
			}
			*kind = E_CLOSE;
			*err = have_head || *len ? EPROTO : ECONNRESET;
			return XCH_ERR;
		}
		*bytes += (uint64_t)got;
		*len += (size_t)got;
	}
}

static intptr_t conn_task(void *arg)
{
	struct conn *c = arg;
	struct bench *b = c->b;
	struct wstate *w = c->w;
	struct weft_scope run;
	if (b->deadline != WEFT_NEVER) {
		uint64_t now = weft_now();
		weft_scope_deadline(&run, b->deadline > now ? b->deadline - now : 0);
	} else {
		weft_scope_deadline(&run, WEFT_NEVER);
	}
	char buf[16384];
	size_t len = 0;
	int fd = -1;
	bool stop = false;
	while (!stop) {
		if (fd < 0) {
			int r = weft_sock_connect(&c->t->addr);
			if (r == -ETIMEDOUT || r == -ECANCELED)
				break;
			if (r < 0) {
				count_error(w, E_CONNECT, -r);
				/* Do not spin on a refusing server. */
				if (weft_sleep(10 * WEFT_MSEC) < 0)
					break;
				continue;
			}
			fd = r;
			len = 0;
			w->established++;
			weft_tcp_nodelay(fd, 1);
		}
		uint64_t intended = 0;
		if (b->rate > 0 || b->total) {
			uint64_t j = atomic_fetch_add_explicit(&b->ticket, 1, memory_order_relaxed);
			/* relaxed: the ticket only hands out distinct numbers. */
			if (b->total && j >= b->total)
				break;
			if (b->rate > 0) {
				intended = b->t0 + (uint64_t)((double)j * 1e9 / b->rate);
				uint64_t now = weft_now();
				if (now < intended && weft_sleep(intended - now) < 0)
					break;
			}
		}
		uint64_t sent = weft_now();
		if (b->rate > 0) {
			uint64_t lag = sent > intended ? sent - intended : 0;
			w->sends++;
			w->lag_sum += lag;
			if (lag > w->lag_max)
				w->lag_max = lag;
			if (lag > WEFT_MSEC)
				w->late_sends++;
		} else {
			intended = sent;
		}
		struct weft_scope rq;
		weft_scope_deadline(&rq, b->timeout_ns);
		int status = 0, kind = 0, err = 0;
		bool keep = true;
		uint64_t bytes = 0;
		int x = exchange(fd, c->t, buf, sizeof(buf), &len, &status, &keep, &bytes,
				 &kind, &err);
		int mine = weft_scope_end(&rq);
		uint64_t done = weft_now();
		if (x == XCH_STOP && err == ETIMEDOUT && mine) {
			x = XCH_ERR;
			kind = E_TIMEOUT;
		}
		if (x == XCH_STOP)
			break;
		bool counted = done >= b->measure_start;
		if (x == XCH_ERR) {
			if (counted)
				count_error(w, kind, err);
			weft_close(fd);
			fd = -1;
			continue;
		}
		if (counted) {
			w->requests++;
			w->bytes += bytes;
			w->status[status / 100 <= 5 ? status / 100 : 0]++;
			w->codes[status < 600 ? status : 0]++;
			hist_record(w->corr, done - intended);
			if (w->unc != w->corr)
				hist_record(w->unc, done - sent);
		}
		if (!keep) {
			weft_close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		weft_close(fd);
	weft_scope_end(&run);
	return 0;
}

static intptr_t main_task(void *arg)
{
	struct bench *b = arg;
	for (unsigned i = 0; i < b->ntargets; i++) {
		struct target *t = &b->targets[i];
		int r = weft_addr_resolve(t->hostport, &t->addr, 1);
		if (r < 0) {
			fprintf(stderr, "weft-bench: %s: cannot resolve %s: %s\n", t->url,
				t->hostport, strerror(-r));
			b->setup_err = r;
			return r;
		}
	}
	struct conn *cs = calloc(b->conns, sizeof(*cs));
	struct weft_group *g = weft_group_new(0);
	if (!cs || !g) {
		free(cs);
		b->setup_err = -ENOMEM;
		return -ENOMEM;
	}
	b->t0 = weft_now();
	b->measure_start = b->t0 + b->warmup_ns;
	b->deadline = b->duration_ns ? b->measure_start + b->duration_ns : WEFT_NEVER;
	for (unsigned i = 0; i < b->conns; i++) {
		cs[i].b = b;
		cs[i].t = &b->targets[i % b->ntargets];
		cs[i].w = &b->ws[i % b->workers];
		struct weft_spawn_opts so = {
			.name = "conn",
			.flags = WEFT_SPAWN_PINNED | WEFT_SPAWN_ON,
			.worker = i % b->workers,
		};
		if (weft_group_spawn(g, conn_task, &cs[i], &so) < 0) {
			fprintf(stderr, "weft-bench: out of memory for connection %u\n", i);
			weft_group_cancel(g);
			break;
		}
	}
	weft_group_wait(g);
	b->t_end = weft_now();
	weft_group_free(g);
	free(cs);
	return 0;
}

/* Prints ns with a unit, as wrk does: 10.12ms, 1.00s, 812.00us. */
static void fmt_time(char *out, size_t n, double ns)
{
	if (ns >= 1e9)
		snprintf(out, n, "%.2fs", ns / 1e9);
	else if (ns >= 1e6)
		snprintf(out, n, "%.2fms", ns / 1e6);
	else
		snprintf(out, n, "%.2fus", ns / 1e3);
}

static void fmt_bytes(char *out, size_t n, double v)
{
	const char *u[] = {"B", "KB", "MB", "GB", "TB"};
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, n, "%.2f%s", v, u[i]);
}

static const double pcts[] = {50, 75, 90, 99, 99.9, 99.99, 100};
#define NPCTS (sizeof(pcts) / sizeof(pcts[0]))

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

static void json_latency(const char *key, const struct hist *h)
{
	printf("\"%s\":{\"count\":%" PRIu64 ",\"min_ns\":%" PRIu64 ",\"mean_ns\":%.0f,"
	       "\"stdev_ns\":%.0f,\"max_ns\":%" PRIu64,
	       key, hist_count(h), hist_min(h), hist_mean(h), hist_stdev(h), hist_max(h));
	static const char *const names[NPCTS] = {"p50", "p75", "p90", "p99",
						  "p99_9", "p99_99", "p100"};
	for (size_t i = 0; i < NPCTS; i++)
		printf(",\"%s_ns\":%" PRIu64, names[i], hist_value_at_percentile(h, pcts[i]));
	printf("}");
}

static void report(struct bench *b, struct wstate *t)
{
	uint64_t end = b->deadline != WEFT_NEVER && b->t_end > b->deadline ? b->deadline
									   : b->t_end;
	double secs = end > b->measure_start ? (double)(end - b->measure_start) / 1e9 : 0;
	double rps = secs > 0 ? (double)t->requests / secs : 0;
	double tps = secs > 0 ? (double)t->bytes / secs : 0;
	uint64_t non2xx = t->requests - t->status[2] - t->status[3];
	bool open = b->rate > 0;
	if (b->json) {
		printf("{\"mode\":\"%s\",\"connections\":%u,\"established\":%" PRIu64
		       ",\"workers\":%u,\"duration_s\":%.6f,\"requests\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"requests_per_sec\":%.2f,\"bytes_per_sec\":%.2f,",
		       open ? "open" : "closed", b->conns, t->established, b->workers, secs,
		       t->requests, t->bytes, rps, tps);
		json_latency("latency", t->corr);
		if (open) {
			printf(",");
			json_latency("uncorrected", t->unc);
			printf(",\"rate\":{\"offered\":%.2f,\"achieved\":%.2f,\"sends\":%" PRIu64
			       ",\"late_sends\":%" PRIu64 ",\"max_lag_ns\":%" PRIu64
			       ",\"mean_lag_ns\":%.0f}",
			       b->rate, rps, t->sends, t->late_sends, t->lag_max,
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
		printf("},\"non_2xx_3xx\":%" PRIu64 ",\"errors\":{", non2xx);
		for (int k = 0; k < E_KINDS; k++)
			printf("%s\"%s\":{\"count\":%" PRIu64 ",\"errno\":\"%s\"}", k ? "," : "",
			       kind_key[k], t->errors[k], errname(t->err_errno[k]));
		printf("}}\n");
		return;
	}
	char d[32];
	fmt_time(d, sizeof(d), (double)(end - b->measure_start));
	printf("Running %s test @ %s", d, b->targets[0].url);
	for (unsigned i = 1; i < b->ntargets; i++)
		printf(" %s", b->targets[i].url);
	printf("\n  %u workers and %u connections (%" PRIu64 " established), %s\n", b->workers,
	       b->conns, t->established, open ? "open loop" : "closed loop");
	if (open) {
		print_latency("Corrected latency (from each request's intended send time)", t->corr);
		print_latency("Uncorrected latency (from the actual send)", t->unc);
	} else {
		print_latency("Latency (closed loop)", t->corr);
	}
	char by[32];
	fmt_bytes(by, sizeof(by), (double)t->bytes);
	printf("  %" PRIu64 " requests in %s, %s read\n", t->requests, d, by);
	printf("  Status codes:");
	for (int i = 0; i < 600; i++)
		if (t->codes[i])
			printf(" %d: %" PRIu64, i, t->codes[i]);
	printf("\n");
	if (non2xx)
		printf("  Non-2xx or 3xx responses: %" PRIu64 "\n", non2xx);
	uint64_t nerr = 0;
	for (int k = 0; k < E_KINDS; k++)
		nerr += t->errors[k];
	if (nerr) {
		printf("  Socket errors:");
		for (int k = 0; k < E_KINDS; k++)
			printf("%s %s %" PRIu64 " (%s)", k ? "," : "", kind_name[k], t->errors[k],
			       errname(t->err_errno[k]));
		printf("\n");
	}
	if (open) {
		char ml[32], mean[32];
		fmt_time(ml, sizeof(ml), (double)t->lag_max);
		fmt_time(mean, sizeof(mean),
			 t->sends ? (double)t->lag_sum / (double)t->sends : 0.0);
		printf("  Rate: offered %.2f/s, achieved %.2f/s\n", b->rate, rps);
		printf("  Behind schedule: max %s, mean %s, %" PRIu64 " of %" PRIu64
		       " sends more than 1ms late\n",
		       ml, mean, t->late_sends, t->sends);
	}
	printf("Requests/sec: %.2f\n", rps);
	fmt_bytes(by, sizeof(by), tps);
	printf("Transfer/sec: %s\n", by);
}

int main(int argc, char **argv)
{
	struct bench b = {.conns = 10, .timeout_ns = 2 * WEFT_SEC};
	int64_t dur = -1;
	enum { O_WARMUP = 256, O_TIMEOUT, O_JSON };
	static const struct option lo[] = {
		{"connections", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"requests", required_argument, NULL, 'n'},
		{"workers", required_argument, NULL, 'w'},
		{"rate", required_argument, NULL, 'R'},
		{"warmup", required_argument, NULL, O_WARMUP},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o;
	uint64_t v;
	int64_t tv;
	while ((o = getopt_long(argc, argv, "c:d:n:w:R:h", lo, NULL)) != -1) {
		switch (o) {
		case 'c':
			if (parse_count(optarg, &v) || v == 0 || v > 1000000)
				goto bad;
			b.conns = (unsigned)v;
			break;
		case 'd':
			if ((dur = parse_time(optarg)) <= 0)
				goto bad;
			break;
		case 'n':
			if (parse_count(optarg, &b.total) || b.total == 0)
				goto bad;
			break;
		case 'w':
			if (parse_count(optarg, &v) || v == 0 || v > 1024)
				goto bad;
			b.workers = (unsigned)v;
			break;
		case 'R': {
			char *end;
			b.rate = strtod(optarg, &end);
			if (end == optarg || *end || !(b.rate > 0) || b.rate > 1e9)
				goto bad;
			break;
		}
		case O_WARMUP:
			if ((tv = parse_time(optarg)) < 0)
				goto bad;
			b.warmup_ns = (uint64_t)tv;
			break;
		case O_TIMEOUT:
			if ((tv = parse_time(optarg)) <= 0)
				goto bad;
			b.timeout_ns = (uint64_t)tv;
			break;
		case O_JSON:
			b.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		continue;
	bad:
		fprintf(stderr, "weft-bench: bad value for -%c: %s\n", o < 256 ? o : '-', optarg);
		return 2;
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	b.duration_ns = dur > 0 ? (uint64_t)dur : b.total ? 0 : 10 * WEFT_SEC;
	b.ntargets = (unsigned)(argc - optind);
	b.targets = calloc(b.ntargets, sizeof(*b.targets));
	if (!b.targets)
		return 1;
	for (unsigned i = 0; i < b.ntargets; i++) {
		if (parse_url(argv[optind + i], &b.targets[i]) < 0) {
			fprintf(stderr, "weft-bench: not an http://HOST:PORT/PATH URL: %s\n",
				argv[optind + i]);
			return 2;
		}
	}
	struct weft_opts wo = {.workers = b.workers};
	struct weft_rt *rt;
	int r = weft_rt_new(&rt, &wo);
	if (r < 0) {
		fprintf(stderr, "weft-bench: cannot start the runtime: %s\n", strerror(-r));
		return 1;
	}
	b.workers = weft_rt_workers(rt);
	b.ws = calloc(b.workers, sizeof(*b.ws));
	if (!b.ws)
		return 1;
	for (unsigned i = 0; i < b.workers; i++) {
		b.ws[i].corr = hist_new();
		b.ws[i].unc = b.rate > 0 ? hist_new() : b.ws[i].corr;
		if (!b.ws[i].corr || !b.ws[i].unc)
			return 1;
	}
	intptr_t res;
	r = weft_rt_run(rt, main_task, &b, &res);
	weft_rt_shutdown(rt, 0);
	if (r < 0 || b.setup_err < 0)
		return 1;
	/* Merge every worker into the first. */
	struct wstate *t = &b.ws[0];
	for (unsigned i = 1; i < b.workers; i++) {
		struct wstate *w = &b.ws[i];
		hist_merge(t->corr, w->corr);
		if (t->unc != t->corr)
			hist_merge(t->unc, w->unc);
		t->requests += w->requests;
		t->bytes += w->bytes;
		for (int k = 0; k < 6; k++)
			t->status[k] += w->status[k];
		for (int k = 0; k < 600; k++)
			t->codes[k] += w->codes[k];
		for (int k = 0; k < E_KINDS; k++) {
			t->errors[k] += w->errors[k];
			if (!t->err_errno[k])
				t->err_errno[k] = w->err_errno[k];
		}
		t->established += w->established;
		t->sends += w->sends;
		t->lag_sum += w->lag_sum;
		t->late_sends += w->late_sends;
		if (w->lag_max > t->lag_max)
			t->lag_max = w->lag_max;
	}
	report(&b, t);
	for (unsigned i = 0; i < b.workers; i++) {
		if (b.ws[i].unc != b.ws[i].corr)
			hist_free(b.ws[i].unc);
		hist_free(b.ws[i].corr);
	}
	free(b.ws);
	for (unsigned i = 0; i < b.ntargets; i++) {
		free(b.targets[i].url);
		free(b.targets[i].hostport);
		free(b.targets[i].req);
	}
	free(b.targets);
	return 0;
}
