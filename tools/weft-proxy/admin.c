// SPDX-License-Identifier: MIT
/*
 * admin.c - the admin listener (admin.h): /metrics, /stats and /health,
 * and POST /servers/BACKEND/SERVER?state=... to set a server's state.
 *
 * Each accepted connection gets a detached task that reads one request
 * head (at most ADMIN_REQUEST_MAX bytes, within ADMIN_TIMEOUT), parses it
 * with <weft/http1.h>, renders the page into a heap buffer from a racy
 * snapshot of the counters (stats.h, balance.h), sends it with
 * Connection: close and closes.  At most ADMIN_CONCURRENCY connections are
 * served at once (each holds a slot of src->slots from before its accept
 * to its close): a flood of slow clients waits in the listener's backlog,
 * and then is refused by the kernel, instead of taking tasks and the
 * descriptors the proxy keeps for its connections.  The pages answer GET
 * and HEAD; the one thing written, a server's administrative state
 * (set_server_state), takes POST with the state in the query and no body.
 * Series names and the JSON layout are documented in docs/proxy.md;
 * tests/proxy/observe_test.cc reads them.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <weft.h>
#include <weft/http1.h>
#include <weft/io.h>
#include <weft/net.h>

#include "admin.h"
#include "pipes.h"
#include "say.h"

#define ADMIN_REQUEST_MAX 8192
#define ADMIN_TIMEOUT (5 * WEFT_SEC)

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = b->cap - b->len;
		int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* s as a JSON string, quotes included (control characters escaped). */
static void json_str(struct sbuf *b, const char *s)
{
	sbuf_printf(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sbuf_printf(b, "\\%c", c);
		else if (c < 0x20)
			sbuf_printf(b, "\\u%04x", c);
		else
			sbuf_printf(b, "%c", c);
	}
	sbuf_printf(b, "\"");
}

/* ---- /metrics ------------------------------------------------------------ */

/* One HELP and TYPE pair. */
static void family(struct sbuf *b, const char *name, const char *type, const char *help)
{
	sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define U(x) ((unsigned long long)(x))

/* The field at byte offset `off` of backend bi's struct backend_stats. */
static const void *backend_field(const struct admin_view *v, size_t bi, size_t off)
{
	return (const char *)v->backs[bi].stats + off;
}

/* A counter family with one series per backend: the uint64_t counter at
 * byte offset `off` of each backend's struct backend_stats. */
static void backend_counter(struct sbuf *b, const struct admin_view *v, const char *name,
			    const char *help, size_t off)
{
	family(b, name, "counter", help);
	for (size_t bi = 0; bi < v->cfg->nbackends; bi++) {
		const _Atomic uint64_t *c = backend_field(v, bi, off);
		sbuf_printf(b, "%s{backend=\"%s\"} %llu\n", name, v->cfg->backends[bi].name,
			    U(STAT_GET(*c)));
	}
}

/* A histogram family with one histogram per backend: the stats_time at
 * byte offset `off` of each backend's stats, its buckets made cumulative
 * as Prometheus wants. */
static void backend_histogram(struct sbuf *b, const struct admin_view *v, const char *name,
			      const char *help, size_t off)
{
	family(b, name, "histogram", help);
	for (size_t bi = 0; bi < v->cfg->nbackends; bi++) {
		const struct stats_time *h = backend_field(v, bi, off);
		const char *bn = v->cfg->backends[bi].name;
		uint64_t cum = 0;
		for (size_t k = 0; k < STATS_TIME_BUCKETS; k++) {
			cum += STAT_GET(h->buckets[k]);
			sbuf_printf(b, "%s_bucket{backend=\"%s\",le=\"%g\"} %llu\n", name, bn,
				    (double)stats_time_le_us[k] / 1e6, U(cum));
		}
		cum += STAT_GET(h->buckets[STATS_TIME_BUCKETS]);
		sbuf_printf(b, "%s_bucket{backend=\"%s\",le=\"+Inf\"} %llu\n", name, bn, U(cum));
		sbuf_printf(b, "%s_sum{backend=\"%s\"} %.9f\n", name, bn,
			    (double)STAT_GET(h->ns_sum) / 1e9);
		/* The count is the +Inf bucket, so the two always agree. */
		sbuf_printf(b, "%s_count{backend=\"%s\"} %llu\n", name, bn, U(cum));
	}
}

void admin_metrics(struct sbuf *b, const struct admin_source *src, const struct admin_view *v)
{
	const struct proxy_config *cfg = v->cfg;
	uint64_t now = weft_now();

	/* Frontends. */
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} fm[] = {
#define F(n, t, h, f) {n, t, h, offsetof(struct frontend_stats, f)}
		F("weft_proxy_frontend_connections_total", "counter", "Connections accepted.", total),
		F("weft_proxy_frontend_connections_active", "gauge", "Connections accepted and not yet closed.", active),
		F("weft_proxy_frontend_bytes_in_total", "counter", "Bytes from clients to servers, counted as they are forwarded.", bytes_in),
		F("weft_proxy_frontend_bytes_out_total", "counter", "Bytes from servers to clients, counted as they are forwarded.", bytes_out),
		F("weft_proxy_frontend_no_server_total", "counter", "Connections closed because no server could be connected.", no_server),
		F("weft_proxy_frontend_proxy_header_errors_total", "counter", "accept_proxy: connections closed for a malformed PROXY header.", proxy_errors),
		F("weft_proxy_frontend_proxy_header_timeouts_total", "counter", "accept_proxy: connections closed for no whole PROXY header in time.", proxy_timeouts),
#undef F
	};
	for (size_t m = 0; m < sizeof(fm) / sizeof(fm[0]); m++) {
		family(b, fm[m].name, fm[m].type, fm[m].help);
		for (size_t i = 0; i < cfg->nfrontends; i++) {
			_Atomic uint64_t *c = (_Atomic uint64_t *)((char *)v->fronts[i] + fm[m].off);
			sbuf_printf(b, "%s{frontend=\"%s\"} %llu\n", fm[m].name, cfg->frontends[i].name,
				    U(atomic_load_explicit(c, memory_order_relaxed)));
		}
	}
	/* The frontends' bytes by data path: a label, since the two paths of
	 * a direction sum to its bytes counter. */
	static const char *const pathm[2][2] = {
		{"weft_proxy_frontend_path_bytes_in_total",
		 "Bytes from clients to servers by data path (buffered, spliced); the two sum to weft_proxy_frontend_bytes_in_total."},
		{"weft_proxy_frontend_path_bytes_out_total",
		 "Bytes from servers to clients by data path (buffered, spliced); the two sum to weft_proxy_frontend_bytes_out_total."},
	};
	static const char *const path_names[STATS_PATHS] = {"buffered", "spliced"};
	for (int d = 0; d < 2; d++) {
		family(b, pathm[d][0], "counter", pathm[d][1]);
		for (size_t i = 0; i < cfg->nfrontends; i++)
			for (int k = 0; k < STATS_PATHS; k++)
				sbuf_printf(b, "%s{frontend=\"%s\",path=\"%s\"} %llu\n", pathm[d][0],
					    cfg->frontends[i].name, path_names[k],
					    U(STAT_GET(v->fronts[i]->path_bytes[d][k])));
	}

	/* Servers: established, active, attempts and errors, bytes, health. */
	enum { S_TOTAL, S_ACTIVE, S_ATTEMPTS, S_ERRORS, S_IN, S_OUT, S_UP, S_CHECKS, S_FAILED,
	       S_LOOKUPS, S_LOOKUPS_FAILED, S_N };
	static const char *const sm[S_N][3] = {
		{"weft_proxy_server_connections_total", "counter", "Connections established to the server."},
		{"weft_proxy_server_connections_active", "gauge", "Connections through the server now, connecting ones included."},
		{"weft_proxy_server_connect_attempts_total", "counter", "Connects tried to the server."},
		{"weft_proxy_server_connect_errors_total", "counter", "Connects to the server that failed or timed out."},
		{"weft_proxy_server_bytes_in_total", "counter", "Bytes from clients to the server, counted as they are forwarded."},
		{"weft_proxy_server_bytes_out_total", "counter", "Bytes from the server to clients, counted as they are forwarded."},
		{"weft_proxy_server_up", "gauge", "1 when its health allows the server: up by its checks and not marked down by connect failures (weft_proxy_server_state says whether it is also ready)."},
		{"weft_proxy_server_checks_total", "counter", "Active health checks finished."},
		{"weft_proxy_server_checks_failed_total", "counter", "Active health checks that failed."},
		{"weft_proxy_server_lookups_total", "counter", "Lookups of the server's host name made again by resolve_interval."},
		{"weft_proxy_server_lookup_failures_total", "counter", "Of those, the ones that failed: the server kept its last address."},
	};
	for (int m = 0; m < S_N; m++) {
		family(b, sm[m][0], sm[m][1], sm[m][2]);
		for (size_t bi = 0; bi < cfg->nbackends; bi++) {
			const struct pbackend *pb = &v->backs[bi];
			for (size_t i = 0; i < pb->n; i++) {
				const struct pserver *s = &pb->servers[i];
				const struct server_stats *st = &s->st->stats;
				uint64_t x = 0;
				struct health_state h;
				health_server_state(s, &h);
				switch (m) {
				case S_TOTAL: x = STAT_GET(st->total); break;
				case S_ACTIVE: x = STAT_GET(s->st->active); break;
				case S_ATTEMPTS: x = STAT_GET(s->st->total); break;
				case S_ERRORS: x = STAT_GET(s->st->connect_errors); break;
				case S_IN: x = STAT_GET(st->bytes_in); break;
				case S_OUT: x = STAT_GET(st->bytes_out); break;
				case S_UP: x = h.eligible; break;
				case S_CHECKS: x = h.checks; break;
				case S_FAILED: x = h.failed; break;
				case S_LOOKUPS: x = STAT_GET(s->st->lookups); break;
				case S_LOOKUPS_FAILED: x = STAT_GET(s->st->lookup_failures); break;
				}
				sbuf_printf(b, "%s{backend=\"%s\",server=\"%s\"} %llu\n", sm[m][0],
					    cfg->backends[bi].name, s->cfg->name, U(x));
			}
		}
	}

	/* The servers' administrative state, one series per state with 1 on
	 * the one in force (as Prometheus exporters give an enum), so that
	 * `== 1` selects and a change shows as two series flipping. */
	family(b, "weft_proxy_server_state", "gauge",
	       "1 for the server's administrative state (ready, drain, maint: POST /servers/BACKEND/SERVER), 0 for the others.");
	for (size_t bi = 0; bi < cfg->nbackends; bi++) {
		const struct pbackend *pb = &v->backs[bi];
		for (size_t i = 0; i < pb->n; i++) {
			enum server_admin now_in = balance_admin(&pb->servers[i]);
			for (int a = SERVER_READY; a <= SERVER_MAINT; a++)
				sbuf_printf(b, "weft_proxy_server_state{backend=\"%s\",server=\"%s\",state=\"%s\"} %d\n",
					    cfg->backends[bi].name, pb->servers[i].cfg->name,
					    balance_admin_name((enum server_admin)a), a == (int)now_in);
		}
	}

	/* The weight in force, in the configuration's units: below the
	 * configured one only during a slowstart ramp. */
	family(b, "weft_proxy_server_weight", "gauge",
	       "The weight the server is balanced by now: its configured weight, or less while slowstart ramps it up.");
	for (size_t bi = 0; bi < cfg->nbackends; bi++) {
		const struct pbackend *pb = &v->backs[bi];
		for (size_t i = 0; i < pb->n; i++)
			sbuf_printf(b, "weft_proxy_server_weight{backend=\"%s\",server=\"%s\"} %.4f\n",
				    cfg->backends[bi].name, pb->servers[i].cfg->name,
				    (double)balance_weight(&pb->servers[i], now) / BALANCE_WEIGHT_ONE);
	}

	/* Backends: retries, the queue, the time histograms. */
	backend_counter(b, v, "weft_proxy_backend_retries_total",
			"Connect attempts made after a failed one.",
			offsetof(struct backend_stats, retries));
	family(b, "weft_proxy_backend_queue_length", "gauge",
	       "Connections waiting for a server slot now.");
	for (size_t bi = 0; bi < cfg->nbackends; bi++)
		sbuf_printf(b, "weft_proxy_backend_queue_length{backend=\"%s\"} %u\n",
			    cfg->backends[bi].name,
			    (unsigned)STAT_GET(v->backs[bi].stats->queued));
	backend_counter(b, v, "weft_proxy_backend_queue_full_total",
			"Connections reset at once because the queue was full.",
			offsetof(struct backend_stats, queue_full));
	backend_counter(b, v, "weft_proxy_backend_queue_timeouts_total",
			"Connections reset after waiting queue_timeout for a server slot.",
			offsetof(struct backend_stats, queue_timeouts));
	backend_counter(b, v, "weft_proxy_backend_queue_abandoned_total",
			"Connections whose client left while they waited for a server slot.",
			offsetof(struct backend_stats, queue_abandoned));
	backend_histogram(b, v, "weft_proxy_backend_connect_seconds",
			  "Time to connect to a server, successful connects only.",
			  offsetof(struct backend_stats, connect));
	backend_histogram(b, v, "weft_proxy_backend_queue_seconds",
			  "Time waited in the queue for a server slot, by connections that got one.",
			  offsetof(struct backend_stats, queue));

	/* The whole proxy. */
	family(b, "weft_proxy_connections_active", "gauge", "Connections now, all frontends.");
	sbuf_printf(b, "weft_proxy_connections_active %llu\n",
		    U(atomic_load_explicit(src->active, memory_order_relaxed)));
	family(b, "weft_proxy_max_connections", "gauge", "The global connection limit in force.");
	sbuf_printf(b, "weft_proxy_max_connections %u\n", cfg->max_connections);
	family(b, "weft_proxy_uptime_seconds", "gauge", "Seconds since the proxy started.");
	sbuf_printf(b, "weft_proxy_uptime_seconds %.3f\n", (double)(now - src->started) / 1e9);
	family(b, "weft_proxy_draining", "gauge", "1 after SIGTERM, while connections drain.");
	sbuf_printf(b, "weft_proxy_draining %d\n",
		    atomic_load_explicit(src->draining, memory_order_relaxed));
	family(b, "weft_proxy_reloads_total", "counter",
	       "Reloads (SIGHUP) that took effect.");
	sbuf_printf(b, "weft_proxy_reloads_total %llu\n", U(STAT_GET(*src->reloads)));
	family(b, "weft_proxy_reload_failures_total", "counter",
	       "Reloads refused (a broken configuration, a listen address that would not bind): the running configuration stayed.");
	sbuf_printf(b, "weft_proxy_reload_failures_total %llu\n",
		    U(STAT_GET(*src->reload_failures)));
	struct accesslog *log = atomic_load_explicit(src->log, memory_order_acquire);
	if (log) {
		family(b, "weft_proxy_access_log_lines_total", "counter",
		       "Access log lines written.");
		sbuf_printf(b, "weft_proxy_access_log_lines_total %llu\n",
			    U(accesslog_written(log)));
		family(b, "weft_proxy_access_log_dropped_total", "counter",
		       "Access log lines dropped: the log could not keep up, or a write failed.");
		sbuf_printf(b, "weft_proxy_access_log_dropped_total %llu\n",
			    U(accesslog_dropped(log)));
	}
	family(b, "weft_proxy_messages_total", "counter",
	       "The proxy's own messages written to stderr.");
	sbuf_printf(b, "weft_proxy_messages_total %llu\n", U(say_written()));
	family(b, "weft_proxy_messages_dropped_total", "counter",
	       "The proxy's own messages dropped: stderr could not keep up, or a write failed.");
	sbuf_printf(b, "weft_proxy_messages_dropped_total %llu\n", U(say_dropped()));

	/* The spliced path's pipes (pipes.c): process-wide, like its limit. */
	struct pipes_stats ps;
	pipes_stats(&ps);
	family(b, "weft_proxy_pipes_in_use", "gauge", "Pipes a spliced transfer holds now.");
	sbuf_printf(b, "weft_proxy_pipes_in_use %zu\n", ps.in_use);
	family(b, "weft_proxy_pipes_pooled", "gauge", "Empty pipes kept in the workers' pools.");
	sbuf_printf(b, "weft_proxy_pipes_pooled %zu\n", ps.pooled);
	family(b, "weft_proxy_pipes_limit", "gauge",
	       "The most pipes that may exist at once, in use and pooled (0: no backend splices).");
	sbuf_printf(b, "weft_proxy_pipes_limit %zu\n", ps.limit);
	family(b, "weft_proxy_splice_fallbacks_total", "counter",
	       "Bursts that were to be spliced and moved buffered for want of a pipe: the pipe limit was reached, or making one failed.");
	sbuf_printf(b, "weft_proxy_splice_fallbacks_total{reason=\"pipe_limit\"} %llu\n",
		    U(ps.refused_limit));
	sbuf_printf(b, "weft_proxy_splice_fallbacks_total{reason=\"pipe_error\"} %llu\n",
		    U(ps.refused_error));

	/* The runtime (weft_rt_stats). */
	struct weft_rt_stats rs;
	weft_rt_stats(src->rt, &rs);
	family(b, "weft_runtime_workers", "gauge", "Worker threads.");
	sbuf_printf(b, "weft_runtime_workers %u\n", weft_rt_workers(src->rt));
	family(b, "weft_runtime_tasks_spawned_total", "counter", "Tasks spawned.");
	sbuf_printf(b, "weft_runtime_tasks_spawned_total %llu\n", U(rs.spawned));
	family(b, "weft_runtime_tasks_live", "gauge", "Tasks spawned whose handle is not yet released.");
	sbuf_printf(b, "weft_runtime_tasks_live %llu\n", U(rs.live));
	family(b, "weft_runtime_steals_total", "counter", "Tasks taken from another worker's deque.");
	sbuf_printf(b, "weft_runtime_steals_total %llu\n", U(rs.steals));
	family(b, "weft_runtime_parks_total", "counter", "Times a worker went to sleep in its ring.");
	sbuf_printf(b, "weft_runtime_parks_total %llu\n", U(rs.parks));
	family(b, "weft_runtime_wakeups_total", "counter", "Times a worker was woken by another thread.");
	sbuf_printf(b, "weft_runtime_wakeups_total %llu\n", U(rs.wakeups));
	family(b, "weft_runtime_switches_total", "counter", "Task switches.");
	sbuf_printf(b, "weft_runtime_switches_total %llu\n", U(rs.switches));
	family(b, "weft_runtime_io_uring_submitted_total", "counter",
	       "Submission queue entries handed to the kernel.");
	sbuf_printf(b, "weft_runtime_io_uring_submitted_total %llu\n", U(rs.submitted));
}

/* ---- /stats --------------------------------------------------------------- */

void admin_stats(struct sbuf *b, const struct admin_source *src, const struct admin_view *v)
{
	const struct proxy_config *cfg = v->cfg;
	uint64_t now = weft_now();
	sbuf_printf(b, "{\"uptime_s\":%.3f,\"draining\":%s,\"connections_active\":%llu,"
		       "\"max_connections\":%u,\"reloads\":%llu,\"reload_failures\":%llu,"
		       "\"frontends\":[",
		    (double)(now - src->started) / 1e9,
		    atomic_load_explicit(src->draining, memory_order_relaxed) ? "true" : "false",
		    U(atomic_load_explicit(src->active, memory_order_relaxed)), cfg->max_connections,
		    U(STAT_GET(*src->reloads)), U(STAT_GET(*src->reload_failures)));
	for (size_t i = 0; i < cfg->nfrontends; i++) {
		const struct frontend_stats *f = v->fronts[i];
		sbuf_printf(b, "%s{\"name\":", i ? "," : "");
		json_str(b, cfg->frontends[i].name);
		sbuf_printf(b, ",\"connections_total\":%llu,\"connections_active\":%llu,"
			       "\"bytes_in\":%llu,\"bytes_out\":%llu,\"no_server\":%llu,"
			       "\"proxy_header_errors\":%llu,\"proxy_header_timeouts\":%llu,"
			       "\"bytes_in_buffered\":%llu,\"bytes_in_spliced\":%llu,"
			       "\"bytes_out_buffered\":%llu,\"bytes_out_spliced\":%llu}",
			    U(STAT_GET(f->total)), U(STAT_GET(f->active)), U(STAT_GET(f->bytes_in)),
			    U(STAT_GET(f->bytes_out)), U(STAT_GET(f->no_server)),
			    U(STAT_GET(f->proxy_errors)), U(STAT_GET(f->proxy_timeouts)),
			    U(STAT_GET(f->path_bytes[0][STATS_BUFFERED])),
			    U(STAT_GET(f->path_bytes[0][STATS_SPLICED])),
			    U(STAT_GET(f->path_bytes[1][STATS_BUFFERED])),
			    U(STAT_GET(f->path_bytes[1][STATS_SPLICED])));
	}
	sbuf_printf(b, "],\"backends\":[");
	for (size_t bi = 0; bi < cfg->nbackends; bi++) {
		const struct pbackend *pb = &v->backs[bi];
		const struct backend_stats *st = pb->stats;
		sbuf_printf(b, "%s{\"name\":", bi ? "," : "");
		json_str(b, cfg->backends[bi].name);
		sbuf_printf(b, ",\"queue_length\":%u,\"queue_full\":%llu,\"queue_timeouts\":%llu,"
			       "\"queue_abandoned\":%llu,\"queue_waits\":%llu,\"queue_seconds_sum\":%.9f,"
			       "\"retries\":%llu,\"connects\":%llu,\"connect_seconds_sum\":%.9f,"
			       "\"servers\":[",
			    (unsigned)STAT_GET(st->queued), U(STAT_GET(st->queue_full)),
			    U(STAT_GET(st->queue_timeouts)), U(STAT_GET(st->queue_abandoned)),
			    U(STAT_GET(st->queue.count)), (double)STAT_GET(st->queue.ns_sum) / 1e9,
			    U(STAT_GET(st->retries)), U(STAT_GET(st->connect.count)),
			    (double)STAT_GET(st->connect.ns_sum) / 1e9);
		for (size_t i = 0; i < pb->n; i++) {
			const struct pserver *s = &pb->servers[i];
			const struct server_stats *ss = &s->st->stats;
			sbuf_printf(b, "%s{\"name\":", i ? "," : "");
			json_str(b, s->cfg->name);
			sbuf_printf(b, ",\"address\":");
			json_str(b, s->cfg->address);
			struct weft_addr to;
			char text[WEFT_ADDR_STRLEN];
			balance_addr(s, &to);
			if (weft_addr_format(&to, text, sizeof(text)) < 0)
				text[0] = 0;
			sbuf_printf(b, ",\"connects_to\":");
			json_str(b, text);
			struct health_state h;
			health_server_state(s, &h);
			char why[128];
			health_format_error(&h, why, sizeof(why));
			sbuf_printf(b, ",\"state\":\"%s\",\"weight\":%.4f",
				    balance_admin_name(balance_admin(s)),
				    (double)balance_weight(s, now) / BALANCE_WEIGHT_ONE);
			sbuf_printf(b, ",\"up\":%s,\"checked\":%s,\"check_up\":%s,\"passive_down\":%s,"
				       "\"checks\":%llu,\"checks_failed\":%llu,\"last_check_error\":",
				    h.eligible ? "true" : "false", h.checked ? "true" : "false",
				    h.up ? "true" : "false", h.passive_down ? "true" : "false",
				    U(h.checks), U(h.failed));
			json_str(b, why);
			sbuf_printf(b, ",\"connections_total\":%llu,\"connections_active\":%u,"
				       "\"connect_attempts\":%llu,\"connect_errors\":%llu,"
				       "\"bytes_in\":%llu,\"bytes_out\":%llu,\"lookups\":%llu,"
				       "\"lookup_failures\":%llu}",
				    U(STAT_GET(ss->total)),
				    (unsigned)STAT_GET(s->st->active), U(STAT_GET(s->st->total)),
				    U(STAT_GET(s->st->connect_errors)), U(STAT_GET(ss->bytes_in)),
				    U(STAT_GET(ss->bytes_out)), U(STAT_GET(s->st->lookups)),
				    U(STAT_GET(s->st->lookup_failures)));
		}
		sbuf_printf(b, "]}");
	}
	struct pipes_stats ps;
	pipes_stats(&ps);
	sbuf_printf(b, "],\"pipes\":{\"in_use\":%zu,\"pooled\":%zu,\"limit\":%zu,"
		       "\"fallbacks_limit\":%llu,\"fallbacks_error\":%llu}",
		    ps.in_use, ps.pooled, ps.limit, U(ps.refused_limit), U(ps.refused_error));
	sbuf_printf(b, ",\"access_log\":");
	struct accesslog *log = atomic_load_explicit(src->log, memory_order_acquire);
	if (log)
		sbuf_printf(b, "{\"lines\":%llu,\"dropped\":%llu}", U(accesslog_written(log)),
			    U(accesslog_dropped(log)));
	else
		sbuf_printf(b, "null");
	sbuf_printf(b, ",\"messages\":{\"lines\":%llu,\"dropped\":%llu}", U(say_written()),
		    U(say_dropped()));
	struct weft_rt_stats rs;
	weft_rt_stats(src->rt, &rs);
	sbuf_printf(b, ",\"runtime\":{\"workers\":%u,\"tasks_spawned\":%llu,\"tasks_live\":%llu,"
		       "\"steals\":%llu,\"parks\":%llu,\"wakeups\":%llu,\"switches\":%llu,"
		       "\"io_uring_submitted\":%llu}}\n",
		    weft_rt_workers(src->rt), U(rs.spawned), U(rs.live), U(rs.steals), U(rs.parks),
		    U(rs.wakeups), U(rs.switches), U(rs.submitted));
}

/* ---- HTTP ------------------------------------------------------------------ */

struct request {
	const struct admin_source *src;
	int fd;
};

/* Sends a whole response: head (with the header lines of extra, each
 * ending in CRLF, or ""), then body unless head_only. */
static void respond(int fd, int status, const char *reason, const char *extra, const char *type,
		    const char *body, size_t len, int head_only)
{
	char head[320];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
			 status, reason, type, len, extra);
	if (weft_sock_send_all(fd, head, (size_t)n, NULL) < 0 || head_only || !len)
		return;
	weft_sock_send_all(fd, body, len, NULL);
}

/* A short text/plain answer, formatted. */
static void answer(int fd, int status, const char *reason, const char *extra, int head_only,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void answer(int fd, int status, const char *reason, const char *extra, int head_only,
		   const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
	respond(fd, status, reason, extra, "text/plain", msg, len, head_only);
}

/* Whether the request target's path (before any query) is path. */
static int is_path(struct weft_http1_slice t, const char *path)
{
	size_t n = strlen(path);
	return t.len >= n && memcmp(t.ptr, path, n) == 0 && (t.len == n || t.ptr[n] == '?');
}

#define SERVERS_PATH "/servers/"

/* Whether len bytes at p are the NUL-terminated name. */
static int is_name(const char *p, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(p, name, len) == 0;
}

/* The state a query (the bytes after '?') asks for: a server_admin, or
 * -EINVAL with *why set.  It must hold state= once and nothing else. */
static int query_state(const char *q, size_t len, const char **why)
{
	int state = -ENOENT;
	while (len) {
		const char *amp = memchr(q, '&', len);
		size_t n = amp ? (size_t)(amp - q) : len;
		bool is_state = n >= 6 && memcmp(q, "state=", 6) == 0;
		if (n && !is_state) {
			*why = "unknown parameter (state=ready|drain|maint only)";
			return -EINVAL;
		}
		if (is_state && state != -ENOENT) {
			*why = "state given twice";
			return -EINVAL;
		}
		if (is_state && (state = balance_admin_parse(q + 6, n - 6)) < 0) {
			*why = "unknown state (ready, drain or maint)";
			return -EINVAL;
		}
		q += n + (amp != NULL);
		len -= n + (amp != NULL);
	}
	if (state == -ENOENT) {
		*why = "state=ready, drain or maint is needed";
		return -EINVAL;
	}
	return state;
}

/*
 * POST /servers/BACKEND/SERVER?state=ready|drain|maint: sets the
 * administrative state (balance.h) of that server of the generation in
 * force, which its state block carries to every other generation and
 * through reloads.  404 for a backend or server v does not have, 400 for a
 * missing or unknown state or a request body, 503 while a binary upgrade
 * hands the states over (src->state_begin), 200 with "BACKEND/SERVER
 * STATE (was OLD)" otherwise.  A change is said on stderr, and the
 * connections waiting for a server slot are served again
 * (src->servers_changed): a server made ready may have room, and with none
 * ready they give up at once (or go to a backup) rather than at their
 * queue_timeout.
 */
static void set_server_state(int fd, const struct admin_source *src, const struct admin_view *v,
			     const struct weft_http1_head *h)
{
	const char *p = h->target.ptr + strlen(SERVERS_PATH);
	const char *end = h->target.ptr + h->target.len;
	const char *q = memchr(p, '?', (size_t)(end - p));
	if (!q)
		q = end;
	const char *slash = memchr(p, '/', (size_t)(q - p));
	if (!slash) {
		answer(fd, 404, "Not Found", "", 0, "use /servers/BACKEND/SERVER?state=...\n");
		return;
	}
	size_t blen = (size_t)(slash - p), slen = (size_t)(q - slash - 1);
	const struct proxy_config *cfg = v->cfg;
	struct pbackend *pb = NULL;
	struct pserver *s = NULL;
	for (size_t i = 0; i < cfg->nbackends && !pb; i++)
		if (is_name(p, blen, cfg->backends[i].name))
			pb = &v->backs[i];
	for (size_t i = 0; pb && i < pb->n && !s; i++)
		if (is_name(slash + 1, slen, pb->servers[i].cfg->name))
			s = &pb->servers[i];
	if (!s) {
		/* Names are printable (config.c checks them); what is echoed
		 * is bounded by the answer's buffer. */
		answer(fd, 404, "Not Found", "", 0, "no %s %.*s\n", pb ? "server" : "backend",
		       pb ? (int)slen : (int)blen, pb ? slash + 1 : p);
		return;
	}
	const char *why = NULL;
	int state = query_state(q + (q < end), (size_t)(end - q) - (q < end), &why);
	if (state >= 0 && h->framing != WEFT_HTTP1_NONE) {
		why = "no body: the state goes in the query";
		state = -EINVAL;
	}
	if (state < 0) {
		answer(fd, 400, "Bad Request", "", 0, "%s\n", why);
		return;
	}
	int busy = src->state_begin();
	if (busy < 0) {
		answer(fd, 503, "Service Unavailable", "Retry-After: 1\r\n", 0, "%s\n",
		       busy == -ESHUTDOWN ? "this process has handed over to a new one: try again"
					  : "a binary upgrade is handing the states over: try again");
		return;
	}
	enum server_admin old = balance_set_admin(s, (enum server_admin)state);
	src->state_end();
	const char *bname = pb->cfg->name, *sname = s->cfg->name;
	if (old != (enum server_admin)state) {
		size_t ready = 0;
		for (size_t i = 0; i < pb->n; i++)
			ready += balance_admin(&pb->servers[i]) == SERVER_READY;
		say("server %s/%s set to %s (was %s) through the admin listener; %zu of %zu "
			"ready in backend %s", bname, sname,
			balance_admin_name((enum server_admin)state), balance_admin_name(old),
			ready, pb->n, bname);
		if (ready == 0)
			say("backend %s has no server ready", bname);
		src->servers_changed(pb);
	}
	answer(fd, 200, "OK", "", 0, "%s/%s %s (was %s)\n", bname, sname,
	       balance_admin_name((enum server_admin)state), balance_admin_name(old));
}

static intptr_t serve_one(void *arg)
{
	struct request *r = arg;
	const struct admin_source *src = r->src;
	int fd = r->fd;
	free(r);
	struct weft_scope sc;
	weft_scope_deadline(&sc, ADMIN_TIMEOUT);
	char buf[ADMIN_REQUEST_MAX];
	struct weft_http1_header headers[32];
	struct weft_http1_parser p;
	struct weft_http1_head h;
	weft_http1_parser_init(&p, NULL, headers, 32);
	size_t len = 0;
	int n = -EAGAIN;
	while (n == -EAGAIN && len < sizeof(buf)) {
		ssize_t got = weft_recv(fd, buf + len, sizeof(buf) - len, 0);
		if (got <= 0)
			goto out;
		len += (size_t)got;
		n = weft_http1_parse_request(&p, buf, len, &h);
	}
	if (n < 0) {
		int status = 431;
		const char *why = n == -EAGAIN ? "request too large" : weft_http1_parser_error(&p, &status);
		answer(fd, status, "Bad Request", "", 0, "%s\n", why);
		goto out;
	}
	/* The pages are read with GET or HEAD; a server's state is changed
	 * with POST, and is not a page. */
	bool post_path = h.target.len > strlen(SERVERS_PATH) &&
			 memcmp(h.target.ptr, SERVERS_PATH, strlen(SERVERS_PATH)) == 0;
	int head_only = h.method_id == WEFT_HTTP1_HEAD;
	if (post_path && h.method_id != WEFT_HTTP1_POST) {
		answer(fd, 405, "Method Not Allowed", "Allow: POST\r\n", head_only, "POST only\n");
		goto out;
	}
	if (!post_path && h.method_id != WEFT_HTTP1_GET && !head_only) {
		answer(fd, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", 0, "GET or HEAD only\n");
		goto out;
	}
	struct sbuf b = {0};
	void *hold;
	const struct admin_view *v = src->get(&hold);
	if (post_path) {
		set_server_state(fd, src, v, &h);
	} else if (is_path(h.target, "/metrics")) {
		admin_metrics(&b, src, v);
		if (!b.failed)
			respond(fd, 200, "OK", "", "text/plain; version=0.0.4; charset=utf-8", b.p,
				b.len, head_only);
	} else if (is_path(h.target, "/stats")) {
		admin_stats(&b, src, v);
		if (!b.failed)
			respond(fd, 200, "OK", "", "application/json", b.p, b.len, head_only);
	} else if (is_path(h.target, "/health")) {
		if (atomic_load_explicit(src->draining, memory_order_relaxed))
			answer(fd, 503, "Service Unavailable", "", head_only, "draining\n");
		else
			answer(fd, 200, "OK", "", head_only, "ok\n");
	} else {
		answer(fd, 404, "Not Found", "", head_only,
		       "/metrics, /stats, /health, or POST /servers/BACKEND/SERVER?state=...\n");
	}
	src->put(hold);
	if (b.failed)
		answer(fd, 500, "Internal Server Error", "", 0, "out of memory\n");
	free(b.p);
out:
	weft_scope_end(&sc);
	weft_close(fd);
	weft_sem_release(src->slots);
	return 0;
}

/*
 * The next connection queued on the (nonblocking) listener lfd, or -errno.
 * A poll and accept4, not io_uring's accept (weft_sock_accept), for the
 * reason main.c's accept loops give: during a binary upgrade both
 * processes wait on this socket, and io_uring's accept waits exclusively,
 * so the old process's accept, cancelled as it stops serving, could take
 * a connection's wakeup with it and leave the request queued, unanswered,
 * until the next one came.  A poll wakes every waiter.
 */
static int take_request(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0 || errno != EAGAIN)
			return fd >= 0 ? fd : -errno;
		int rc = weft_poll(lfd, POLLIN);
		if (rc < 0)
			return rc;
	}
}

intptr_t admin_serve(void *arg)
{
	const struct admin_source *src = arg;
	for (;;) {
		int rc = weft_sem_acquire(src->slots);
		if (rc < 0)
			return rc; /* cancelled */
		int fd = take_request(src->fd);
		if (fd < 0) {
			weft_sem_release(src->slots);
			/* Only cancellation and a listener that is gone end the
			 * loop.  Anything else passes after a pause: a shortage,
			 * or a connection's own error (ECONNABORTED, EPROTO,
			 * EPERM), which comes back on every accept when a
			 * security module refuses them and must not spin. */
			if (fd == -ECANCELED || fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK)
				return fd;
			if (weft_sleep(100 * WEFT_MSEC) == -ECANCELED)
				return fd;
			continue;
		}
		struct request *r = malloc(sizeof(*r));
		struct weft_task *t = NULL;
		if (r) {
			*r = (struct request){.src = src, .fd = fd};
			/* The page renders on the task's stack plus the heap: the
			 * default stack is plenty for the 8 KiB request buffer. */
			t = weft_spawn(serve_one, r, &(struct weft_spawn_opts){.name = "admin"});
		}
		if (t) {
			weft_detach(t);
		} else {
			free(r);
			weft_close(fd);
			weft_sem_release(src->slots);
		}
	}
}

void admin_wait(const struct admin_source *src)
{
	struct weft_scope sc;
	weft_scope_shield(&sc, ADMIN_TIMEOUT);
	for (int i = 0; i < ADMIN_CONCURRENCY && weft_sem_acquire(src->slots) == 0; i++)
		;
	weft_scope_end(&sc);
}
