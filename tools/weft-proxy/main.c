// SPDX-License-Identifier: MIT
/*
 * weft-proxy - an L4 (TCP) proxy on weft.
 *
 *   weft-proxy [-c FILE]        run in the foreground (without -c: the
 *                               embedded default configuration)
 *   weft-proxy -t [-c FILE]     check the configuration, print the
 *                               effective settings, exit 0 or 1
 *   weft-proxy --version | --help
 *
 * How a connection goes through (session):
 *  1. A frontend's accept loop takes a slot of the global limit and one of
 *     the frontend's before it accepts, so at the limit accepting pauses
 *     and the kernel's backlog holds the rest: no accept-and-close spin,
 *     no exhausted fd table.
 *  2. A task per new connection picks a server (balance.c) and connects
 *     within connect_timeout; a failed connect is retried on another
 *     server, up to `retries` times.  Servers that are all at their own
 *     max_connections make it wait up to queue_timeout (at most
 *     queue_size waiting per backend) for a slot.
 *  3. With send_proxy, the PROXY header goes to the server first.
 *     With accept_proxy, the session first reads the client's PROXY
 *     header (read_proxy_header), takes the client's address from it,
 *     and sends the bytes that came after it to the server first.
 *  4. relay.c takes both sockets; the task ends.  From then on an idle
 *     connection holds no task and no buffer.
 *  5. When it ends (relay_done, or end_early before a relay), the
 *     counters of stats.h take its bytes and the access log its line.
 *
 * Observability: counters (stats.h) are relaxed atomics bumped here;
 * admin.c serves them at /metrics and /stats when `admin` is set;
 * accesslog.c writes the lines from a thread of its own, never blocking a
 * worker.  The line format and the series are in docs/proxy.md.
 *
 * Startup order (main): configuration, RLIMIT_NOFILE, every listener
 * bound, the access log's file opened, NOTIFY_SOCKET connected, then the
 * switch to `user` (privs.c) while the main thread is the only thread,
 * then the access log's writer and the runtime.  With NOTIFY_SOCKET set,
 * READY=1 goes out once the accept loops run (notify.c).
 *
 * SIGTERM or SIGINT: STOPPING=1 is sent, the listeners stop, established
 * connections get up to drain_timeout to finish, then the rest are closed
 * over a second (relay_close_all), each with its access log line, and the
 * program exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>
#include <weft/io.h>
#include <weft/net.h>
#include <weft/sync.h>

#include "accesslog.h"
#include "admin.h"
#include "balance.h"
#include "config.h"
#include "notify.h"
#include "privs.h"
#include "proxy_proto.h"
#include "relay.h"
#include "stats.h"

#define VERSION "0.1.0"

/* accept_proxy: the longest wait for a whole PROXY header (or the
 * frontend's idle_timeout when that is shorter). */
#define PROXY_HEADER_TIMEOUT (5 * WEFT_SEC)

struct frontend {
	const struct proxy_frontend *cfg;
	struct pbackend *backend;
	int *fds;                   /* listening sockets, one per listen */
	struct weft_listener **listeners;
	struct weft_task **loops;
	struct weft_sem slots;      /* per-frontend max_connections */
	struct frontend_stats *st;  /* P.fstats[this frontend] */
};

struct proxy {
	struct proxy_config *cfg;
	struct frontend *fronts;
	struct pbackend *backs;
	struct weft_sem slots;      /* global max_connections */
	struct weft_mutex qlock;    /* server slot waits */
	struct weft_cond qcond;
	_Atomic uint64_t active;    /* established or connecting */
	_Atomic uint64_t total, refused;
	/* Observability: counters indexed as cfg's frontends and backends
	 * (sstats[b][i]: server i of backend b), the access log (NULL when
	 * off), the admin listener (-1 when off) and what it shows. */
	struct frontend_stats *fstats;
	struct backend_stats *bstats;
	struct server_stats **sstats;
	struct accesslog *log;
	int admin_fd;
	struct weft_task *admin_loop;
	_Atomic int draining;
	struct weft_rt *rt;
	struct admin_view view;
};

static struct proxy P;

struct session {
	struct frontend *f;
	int client;
	struct pserver *server;
	struct weft_addr peer;      /* the client: the socket's peer, or the PROXY header's source */
	struct weft_addr real;      /* the socket's peer (a load balancer, with accept_proxy) */
	struct weft_addr dst;       /* from the PROXY header; len 0: the socket's local address */
	uint64_t start;             /* weft_now() at accept */
	uint64_t early;             /* bytes after the PROXY header, sent before the relay */
};

static void release(struct session *s)
{
	if (s->f->cfg->max_connections)
		weft_sem_release(&s->f->slots);
	weft_sem_release(&P.slots);
	atomic_fetch_sub(&P.active, 1);
	STAT_SUB(s->f->st->active, 1);
	free(s);
}

/* Appends a to the line at *p (room left *room) as a JSON string, or null. */
static void log_addr(char **p, size_t *room, const char *key, const struct weft_addr *a)
{
	char text[WEFT_ADDR_STRLEN];
	int n;
	if (a->len == 0 || weft_addr_format(a, text, sizeof(text)) < 0) {
		n = snprintf(*p, *room, ",\"%s\":null", key);
	} else {
		/* Addresses are printable; only a unix path may hold a quote
		 * or a backslash, which are escaped. */
		char esc[2 * WEFT_ADDR_STRLEN], *e = esc;
		for (const char *c = text; *c; c++) {
			if (*c == '"' || *c == '\\')
				*e++ = '\\';
			*e++ = (unsigned char)*c < 0x20 ? '?' : *c;
		}
		*e = 0;
		n = snprintf(*p, *room, ",\"%s\":\"%s\"", key, esc);
	}
	if (n > 0 && (size_t)n < *room) {
		*p += n;
		*room -= (size_t)n;
	}
}

/*
 * The access log line of a connection that ended now (how: a relay_end
 * name or one of end_early's words), as docs/proxy.md describes it:
 * {"time":..,"client":..,"frontend":..,"backend":..,"server":..,
 *  "bytes_in":..,"bytes_out":..,"duration_ms":..,"end":..}.  Never blocks:
 * a line the log cannot take is dropped and counted.
 */
static void log_line(const struct session *s, const char *how, uint64_t in, uint64_t out)
{
	if (!P.log)
		return;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char line[ACCESSLOG_LINE_MAX], *p = line;
	size_t room = sizeof(line);
	size_t n = strftime(p, room, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
	p += n;
	room -= n;
	int k = snprintf(p, room, ".%03ldZ\"", ts.tv_nsec / 1000000);
	p += k;
	room -= (size_t)k;
	log_addr(&p, &room, "client", &s->peer);
	if (s->f->cfg->accept_proxy)
		log_addr(&p, &room, "peer", &s->real);
	k = snprintf(p, room, ",\"frontend\":\"%s\",\"backend\":\"%s\",\"server\":", s->f->cfg->name,
		     s->f->backend->cfg->name);
	if (k > 0 && (size_t)k < room) {
		p += k;
		room -= (size_t)k;
	}
	k = s->server ? snprintf(p, room, "\"%s\"", s->server->cfg->name) : snprintf(p, room, "null");
	if (k > 0 && (size_t)k < room) {
		p += k;
		room -= (size_t)k;
	}
	k = snprintf(p, room, ",\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,\"end\":\"%s\"}\n",
		     (unsigned long long)in, (unsigned long long)out,
		     (double)(weft_now() - s->start) / 1e6, how);
	if (k < 0 || (size_t)k >= room)
		return; /* cannot happen: names and addresses are bounded */
	p += k;
	accesslog_push(P.log, line, (size_t)(p - line));
}

/* A connection that ends before its relay starts: counted, logged,
 * closed (with a reset when reset), its slots released. */
static void end_early(struct session *s, const char *how, bool reset)
{
	if (reset) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(s->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	weft_close(s->client);
	log_line(s, how, s->early, 0);
	release(s);
}

static void relay_done(void *arg, enum relay_end end, const uint64_t bytes[2], uint64_t ns)
{
	struct session *s = arg;
	(void)ns;
	uint64_t in = bytes[0] + s->early, out = bytes[1];
	struct pbackend *pb = s->f->backend;
	struct server_stats *ss = &P.sstats[pb - P.backs][s->server - pb->servers];
	/* Relaxed: independent counters (stats.h). */
	STAT_ADD(s->f->st->bytes_in, in);
	STAT_ADD(s->f->st->bytes_out, out);
	STAT_ADD(ss->bytes_in, in);
	STAT_ADD(ss->bytes_out, out);
	log_line(s, relay_end_name(end), in, out);
	balance_done(s->server);
	/* A slot freed: a connection waiting for this server may go.  The
	 * lock is taken only when one waits (wait_for_slot: the fences pair
	 * the freed slot with its count of waiters). */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&pb->queued)) {
		weft_mutex_lock(&P.qlock);
		weft_cond_broadcast(&P.qcond);
		weft_mutex_unlock(&P.qlock);
	}
	release(s);
}

/* Connects to srv within the backend's connect_timeout: a socket or -errno. */
static int dial_server(const struct proxy_backend *b, struct pserver *srv)
{
	struct weft_scope sc;
	weft_scope_deadline(&sc, b->connect_timeout_ns);
	int fd = weft_sock_connect(&srv->addr);
	weft_scope_end(&sc);
	return fd;
}

/* Waits, as one of at most queue_size, for a server slot of pb to free,
 * until deadline (weft_now() scale). */
static int wait_for_slot(struct pbackend *pb, uint64_t deadline)
{
	uint64_t now = weft_now();
	if (now >= deadline)
		return -ETIMEDOUT;
	if (atomic_fetch_add(&pb->queued, 1) >= pb->cfg->queue_size) {
		atomic_fetch_sub(&pb->queued, 1);
		return -EBUSY; /* the queue is full */
	}
	/* Counted in queued (above), then the recheck under qlock: a slot
	 * freed before it is seen here; one freed after it finds queued
	 * non-zero and broadcasts under qlock, so after this wait began. */
	atomic_thread_fence(memory_order_seq_cst);
	struct weft_scope sc;
	weft_scope_deadline(&sc, deadline - now);
	int rc = weft_mutex_lock(&P.qlock);
	if (rc == 0) {
		if (!balance_has_room(pb))
			rc = weft_cond_wait(&P.qcond, &P.qlock);
		weft_mutex_unlock(&P.qlock);
	}
	weft_scope_end(&sc);
	atomic_fetch_sub(&pb->queued, 1);
	return rc;
}

/*
 * accept_proxy: reads the client's PROXY header into buf[0, cap) within
 * PROXY_HEADER_TIMEOUT (or the frontend's idle_timeout when shorter) and
 * takes the client's address from it (LOCAL, UNKNOWN and UNSPEC keep the
 * socket's peer).  Returns the header's length, with *len the bytes
 * received (those past the header are the client's first bytes, for the
 * server), or a word for the access log's "end" through *how and -1:
 * a malformed header, a timeout, or a client that left first.
 */
static ssize_t read_proxy_header(struct session *s, char *buf, size_t cap, size_t *len,
				 const char **how)
{
	uint64_t budget = PROXY_HEADER_TIMEOUT;
	if (s->f->cfg->idle_timeout_ns && s->f->cfg->idle_timeout_ns < budget)
		budget = s->f->cfg->idle_timeout_ns;
	struct weft_scope sc;
	weft_scope_deadline(&sc, budget);
	struct proxy_proto_info info;
	int n = -EAGAIN;
	*len = 0;
	while (n == -EAGAIN && *len < cap) {
		ssize_t got = weft_recv(s->client, buf + *len, cap - *len, 0);
		if (got <= 0) {
			n = got == 0 ? -EPIPE : (int)got;
			break;
		}
		*len += (size_t)got;
		n = proxy_proto_parse(buf, *len, &info);
	}
	weft_scope_end(&sc);
	if (n > 0) {
		if (info.command == PROXY_PROTO_PROXY && info.src.len > 0) {
			s->peer = info.src;
			s->dst = info.dst;
		}
		return n;
	}
	if (n == -ETIMEDOUT) {
		STAT_ADD(s->f->st->proxy_timeouts, 1);
		*how = "proxy_header_timeout";
	} else if (n == -EPIPE || n == -ECONNRESET || n == -ECANCELED) {
		*how = "client_closed";
	} else {
		STAT_ADD(s->f->st->proxy_errors, 1);
		*how = "proxy_header_error";
	}
	return -1;
}

static intptr_t session(void *arg)
{
	struct session *s = arg;
	struct pbackend *pb = s->f->backend;
	const struct proxy_backend *b = pb->cfg;
	struct backend_stats *bs = &P.bstats[pb - P.backs];
	/* With accept_proxy: the header and whatever the client sent after
	 * it, which goes to the server before the relay starts. */
	char head[PROXY_PROTO_MAX_DEFAULT];
	size_t hlen = 0, got = 0;
	if (s->f->cfg->accept_proxy) {
		const char *how = NULL;
		ssize_t n = read_proxy_header(s, head, sizeof(head), &got, &how);
		if (n < 0) {
			end_early(s, how, false);
			return 0;
		}
		hlen = (size_t)n;
		s->early = got - hlen;
	}
	struct pserver *tried[16];
	size_t ntried = 0;
	uint64_t queue_until = weft_now() + b->queue_timeout_ns;
	int server = -1;
	for (uint32_t attempt = 0; attempt <= b->retries;) {
		int why;
		struct pserver *srv = balance_pick(pb, &s->peer, tried, ntried, &why);
		if (!srv) {
			if (why == -EBUSY && wait_for_slot(pb, queue_until) == 0)
				continue;
			break;
		}
		if (attempt > 0)
			STAT_ADD(bs->retries, 1);
		uint64_t t0 = weft_now();
		server = dial_server(b, srv);
		balance_connect_result(srv, server >= 0);
		if (server >= 0) {
			stats_connect_time(bs, weft_now() - t0);
			STAT_ADD(P.sstats[pb - P.backs][srv - pb->servers].total, 1);
			s->server = srv;
			break;
		}
		balance_done(srv);
		if (ntried < sizeof(tried) / sizeof(tried[0]))
			tried[ntried++] = srv;
		attempt++;
	}
	if (server < 0) {
		/* No server: the client learns it at once, with a reset. */
		atomic_fetch_add(&P.refused, 1);
		STAT_ADD(s->f->st->no_server, 1);
		end_early(s, "no_server", true);
		return 0;
	}
	weft_tcp_nodelay(server, 1);
	bool ok = true;
	if (b->send_proxy != PROXY_SEND_PROXY_OFF) {
		char hdr[PROXY_PROTO_ENCODE_MAX];
		struct weft_addr dst = s->dst;
		ssize_t n = dst.len == 0 && weft_sock_local_addr(s->client, &dst) < 0 ? -EINVAL
			    : b->send_proxy == PROXY_SEND_PROXY_V1
				    ? proxy_proto_v1(hdr, sizeof(hdr), &s->peer, &dst)
				    : proxy_proto_v2(hdr, sizeof(hdr), &s->peer, &dst);
		ok = n >= 0 && weft_sock_send_all(server, hdr, (size_t)n, NULL) >= 0;
	}
	if (ok && got > hlen)
		ok = weft_sock_send_all(server, head + hlen, got - hlen, NULL) >= 0;
	if (!ok) {
		weft_close(server);
		balance_done(s->server);
		end_early(s, "server_reset", true);
		return 0;
	}
	struct relay_opts o = {
		.idle_timeout = s->f->cfg->idle_timeout_ns ? s->f->cfg->idle_timeout_ns : WEFT_NEVER,
		.half_closed_timeout = s->f->cfg->half_closed_timeout_ns
					       ? s->f->cfg->half_closed_timeout_ns
					       : WEFT_NEVER,
		.done = relay_done,
		.arg = s,
	};
	if (relay_start(s->client, server, &o) < 0) {
		weft_close(server);
		balance_done(s->server);
		end_early(s, "no_memory", true);
	}
	return 0;
}

struct accept_arg {
	struct frontend *f;
	size_t i;
};

static intptr_t accept_loop(void *arg)
{
	struct accept_arg *a = arg;
	struct frontend *f = a->f;
	for (;;) {
		/* A slot first: at the limit, accepting pauses. */
		if (weft_sem_acquire(&P.slots) < 0)
			break;
		if (f->cfg->max_connections && weft_sem_acquire(&f->slots) < 0) {
			weft_sem_release(&P.slots);
			break;
		}
		int fd = weft_listener_accept(f->listeners[a->i]);
		struct session *s = fd >= 0 ? calloc(1, sizeof(*s)) : NULL;
		if (!s) {
			if (f->cfg->max_connections)
				weft_sem_release(&f->slots);
			weft_sem_release(&P.slots);
			if (fd >= 0) {
				weft_close(fd);
				continue;
			}
			break;
		}
		atomic_fetch_add(&P.active, 1);
		atomic_fetch_add(&P.total, 1);
		/* Relaxed: independent counters (stats.h). */
		STAT_ADD(f->st->total, 1);
		STAT_ADD(f->st->active, 1);
		s->f = f;
		s->client = fd;
		s->start = weft_now();
		if (weft_sock_peer_addr(fd, &s->peer) < 0)
			s->peer.len = 0;
		s->real = s->peer;
		weft_tcp_nodelay(fd, 1);
		struct weft_task *t = weft_spawn(session, s, NULL);
		if (t) {
			weft_detach(t);
		} else {
			weft_close(fd);
			release(s);
		}
	}
	free(a);
	return 0;
}

static intptr_t run(void *arg)
{
	(void)arg;
	struct proxy_config *cfg = P.cfg;
	int rc = 0;
	P.backs = calloc(cfg->nbackends, sizeof(*P.backs));
	if (!P.backs)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nbackends; i++)
		if ((rc = balance_init(&P.backs[i], &cfg->backends[i])) < 0) {
			fprintf(stderr, "weft-proxy: %s:%d: backend %s: %s\n", cfg->file,
				cfg->backends[i].line, cfg->backends[i].name, strerror(-rc));
			return rc;
		}
	/* Active checks (health.c); they end when the runtime shuts down. */
	if ((rc = health_start(P.backs, cfg->nbackends)) < 0)
		return rc;
	/* The admin listener: its view of the counters, then its task. */
	P.view = (struct admin_view){
		.cfg = cfg,
		.fd = P.admin_fd,
		.fronts = P.fstats,
		.backs = P.backs,
		.backends = P.bstats,
		.servers = P.sstats,
		.log = P.log,
		.rt = P.rt,
		.active = &P.active,
		.draining = &P.draining,
		.started = weft_now(),
	};
	if (P.admin_fd >= 0 &&
	    !(P.admin_loop = weft_spawn(admin_serve, &P.view, &(struct weft_spawn_opts){.name = "admin"})))
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nfrontends; i++) {
		struct frontend *f = &P.fronts[i];
		f->backend = &P.backs[f->cfg->backend_index];
		for (size_t j = 0; j < f->cfg->nlistens; j++) {
			struct accept_arg *a = malloc(sizeof(*a));
			if (!a || (rc = weft_listener_open(f->fds[j], &f->listeners[j])) < 0)
				return a ? rc : -ENOMEM;
			*a = (struct accept_arg){.f = f, .i = j};
			if (!(f->loops[j] = weft_spawn(accept_loop, a, NULL)))
				return -ENOMEM;
		}
	}
	/* Bound (before the runtime) and accepting: ready for systemd. */
	notify_ready();
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	int sig = weft_signal_wait(&stop);
	notify_stopping();
	/* Relaxed: a flag on its own, read by /health and /metrics. */
	atomic_store_explicit(&P.draining, 1, memory_order_relaxed);
	/* Stop accepting: the loops, then the sockets, so that new
	 * connections are refused rather than left in a backlog. */
	for (size_t i = 0; i < cfg->nfrontends; i++)
		for (size_t j = 0; j < P.fronts[i].cfg->nlistens; j++) {
			weft_cancel(P.fronts[i].loops[j]);
			weft_join(P.fronts[i].loops[j], NULL);
			weft_listener_close(P.fronts[i].listeners[j]);
			weft_close(P.fronts[i].fds[j]);
		}
	fprintf(stderr, "weft-proxy: %s: draining %llu connections for up to %.1f s\n",
		sig > 0 ? strsignal(sig) : "stopping", (unsigned long long)atomic_load(&P.active),
		(double)cfg->drain_timeout_ns / 1e9);
	uint64_t until = weft_now() + cfg->drain_timeout_ns;
	while (atomic_load(&P.active) > 0 && weft_now() < until)
		weft_sleep(10 * WEFT_MSEC);
	/* What is left is closed over a second, not in one burst that would
	 * have every client reconnect in the same instant; each gets its
	 * access log line and counters as it ends. */
	size_t closed = relay_close_all(WEFT_SEC);
	until = weft_now() + 2 * WEFT_SEC;
	while (atomic_load(&P.active) > 0 && weft_now() < until)
		weft_sleep(10 * WEFT_MSEC);
	fprintf(stderr, "weft-proxy: stopped; %zu connections closed at the drain deadline\n", closed);
	/* The admin listener answers (503 on /health) until the drain ends. */
	if (P.admin_loop) {
		weft_cancel(P.admin_loop);
		weft_join(P.admin_loop, NULL);
	}
	return 0;
}

/* Where the access log goes: opened before the switch of user (a file
 * the user could not open is still written), its writer started after. */
struct log_sink {
	int fd;                     /* -1: the log is off */
	bool own, pipe_atomic;
};

/* Opens what access_log names into *sink: 0, or 1 after saying why on
 * stderr. */
static int open_access_log_file(const struct proxy_config *cfg, struct log_sink *sink)
{
	*sink = (struct log_sink){.fd = -1, .own = false, .pipe_atomic = true};
	switch (cfg->access_log) {
	case PROXY_LOG_OFF: return 0;
	case PROXY_LOG_STDERR: sink->fd = 2; break;
	case PROXY_LOG_STDOUT: sink->fd = 1; break;
	case PROXY_LOG_FILE:
		sink->fd = open(cfg->access_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (sink->fd < 0) {
			fprintf(stderr, "weft-proxy: %s:%d: access_log %s: %s\n", cfg->file,
				cfg->access_log_line, cfg->access_log_path, strerror(errno));
			return 1;
		}
		sink->own = true;
		sink->pipe_atomic = false;
		break;
	}
	return 0;
}

/* Starts the access log's writer on sink: 0 with P.log set (NULL when
 * off), or 1 after saying why on stderr (sink's fd is then closed if
 * owned). */
static int open_access_log(const struct log_sink *sink)
{
	int fd = sink->fd;
	bool own = sink->own;
	if (fd < 0)
		return 0;
	int rc = accesslog_open(&P.log, fd, 0, sink->pipe_atomic, own);
	if (rc < 0) {
		fprintf(stderr, "weft-proxy: access log: %s\n", strerror(-rc));
		if (own)
			close(fd);
		return 1;
	}
	return 0;
}

/* The counters of stats.h for every frontend, backend and server: 0 or 1. */
static int alloc_stats(const struct proxy_config *cfg)
{
	P.fstats = calloc(cfg->nfrontends, sizeof(*P.fstats));
	P.bstats = calloc(cfg->nbackends, sizeof(*P.bstats));
	P.sstats = calloc(cfg->nbackends, sizeof(*P.sstats));
	if (!P.fstats || !P.bstats || !P.sstats)
		return 1;
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (!(P.sstats[i] = calloc(cfg->backends[i].nservers, sizeof(**P.sstats))))
			return 1;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-proxy [-c FILE]        run (default configuration without -c)\n"
		"       weft-proxy -t [-c FILE]     check the configuration and print it\n"
		"       weft-proxy --version | --help\n"
		"\n"
		"Without -c the embedded default runs: a frontend on 127.0.0.1:8080 to a\n"
		"round-robin backend of 127.0.0.1:8081 and 127.0.0.1:8082.\n"
		"The configuration reference is docs/proxy.md.\n");
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	int check = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:th", longs, NULL)) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 't': check = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("weft-proxy %s\n", VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	struct proxy_config_error err;
	int rc = file ? proxy_config_load(file, &P.cfg, &err)
		      : proxy_config_parse(proxy_config_default, "(default)", &P.cfg, &err);
	if (rc < 0) {
		char msg[600];
		proxy_config_error_format(&err, msg, sizeof(msg));
		fprintf(stderr, "weft-proxy: %s\n", msg);
		return 1;
	}
	for (size_t i = 0; i < P.cfg->nwarnings; i++)
		fprintf(stderr, "weft-proxy: warning: %s\n", P.cfg->warnings[i]);
	/* Descriptors: as many as the hard limit allows, then fit the limits. */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	char warning[512];
	if (proxy_config_apply_limits(P.cfg, rl.rlim_cur, warning, sizeof(warning)) < 0) {
		fprintf(stderr, "weft-proxy: %s\n", warning);
		return 1;
	}
	if (warning[0])
		fprintf(stderr, "weft-proxy: warning: %s\n", warning);
	if (check) {
		proxy_config_print(P.cfg, stdout);
		return 0;
	}
	/* Bind everything before the runtime starts: a port in use is a
	 * startup error with the line that asked for it. */
	P.fronts = calloc(P.cfg->nfrontends, sizeof(*P.fronts));
	if (!P.fronts || alloc_stats(P.cfg))
		return 1;
	for (size_t i = 0; i < P.cfg->nfrontends; i++) {
		struct frontend *f = &P.fronts[i];
		f->cfg = &P.cfg->frontends[i];
		f->fds = calloc(f->cfg->nlistens, sizeof(int));
		f->listeners = calloc(f->cfg->nlistens, sizeof(*f->listeners));
		f->loops = calloc(f->cfg->nlistens, sizeof(*f->loops));
		if (!f->fds || !f->listeners || !f->loops)
			return 1;
		weft_sem_init(&f->slots, f->cfg->max_connections);
		f->st = &P.fstats[i];
		for (size_t j = 0; j < f->cfg->nlistens; j++) {
			const struct proxy_listen *l = &f->cfg->listens[j];
			struct weft_listen_opts lo = {.backlog = 4096};
			if ((f->fds[j] = weft_sock_listen(&l->addr, &lo)) < 0) {
				fprintf(stderr, "weft-proxy: %s:%d: listen %s: %s\n", P.cfg->file, l->line,
					l->address, strerror(-f->fds[j]));
				return 1;
			}
			char where[WEFT_ADDR_STRLEN];
			struct weft_addr bound;
			if (weft_sock_local_addr(f->fds[j], &bound) == 0 &&
			    weft_addr_format(&bound, where, sizeof(where)) > 0)
				fprintf(stderr, "weft-proxy: frontend %s listening on %s\n", f->cfg->name,
					where);
		}
	}
	P.admin_fd = -1;
	if (P.cfg->has_admin) {
		struct weft_listen_opts lo = {.backlog = 64};
		if ((P.admin_fd = weft_sock_listen(&P.cfg->admin, &lo)) < 0) {
			fprintf(stderr, "weft-proxy: %s:%d: admin %s: %s\n", P.cfg->file,
				P.cfg->admin_line, P.cfg->admin_address, strerror(-P.admin_fd));
			return 1;
		}
		char where[WEFT_ADDR_STRLEN];
		struct weft_addr bound;
		if (weft_sock_local_addr(P.admin_fd, &bound) == 0 &&
		    weft_addr_format(&bound, where, sizeof(where)) > 0)
			fprintf(stderr, "weft-proxy: admin listening on %s\n", where);
	}
	weft_sem_init(&P.slots, P.cfg->max_connections);
	weft_mutex_init(&P.qlock);
	weft_cond_init(&P.qcond);
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	struct log_sink sink;
	if (open_access_log_file(P.cfg, &sink))
		return 1;
	notify_init(); /* a failure is a warning: the proxy runs on */
	/*
	 * The switch to `user`, now: every socket is bound and every file
	 * open, and no thread but this one exists yet.  setuid, setgid and
	 * setgroups change only the calling thread at the syscall level
	 * (glibc broadcasts its wrappers to all threads; the raw capset in
	 * privs.c is not broadcast), so doing it before the access log's
	 * writer and the runtime's workers are created is the simple way to
	 * have every thread run with the new credentials.
	 */
	if (P.cfg->user && privs_drop(P.cfg->user, P.cfg->file, P.cfg->user_line) < 0)
		return 1;
	/* After the mask: the log's thread must not take SIGTERM. */
	if (open_access_log(&sink))
		return 1;
	/* weft_main's steps spelled out, to keep the runtime for
	 * weft_rt_stats: start, run the main task, shut down. */
	struct weft_opts wo = {.workers = P.cfg->workers};
	int rc2 = weft_rt_new(&P.rt, &wo);
	intptr_t r = rc2;
	if (rc2 == 0) {
		int rr = weft_rt_run(P.rt, run, NULL, &r);
		if (rr < 0)
			r = rr;
		weft_rt_shutdown(P.rt, 0);
	}
	/* Every connection has ended: the last lines are queued. */
	accesslog_close(P.log);
	if (r < 0) {
		fprintf(stderr, "weft-proxy: %s\n", strerror((int)-r));
		return 1;
	}
	return 0;
}
