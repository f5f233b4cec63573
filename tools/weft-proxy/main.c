// SPDX-License-Identifier: MIT
/*
 * weft-proxy - an L4 (TCP) proxy on weft.
 *
 *   weft-proxy [-c FILE]        run in the foreground (without -c: the
 *                               embedded default configuration)
 *   weft-proxy -c FILE --upgrade-from SOCKET
 *                               take the listening sockets of the running
 *                               proxy whose upgrade_socket is SOCKET, then
 *                               let it drain (binary upgrade: upgrade.c;
 *                               SIGUSR2 makes a running proxy start its
 *                               own program file so)
 *   weft-proxy -t [-c FILE]     check the configuration, print the
 *                               effective settings, exit 0 or 1
 *   weft-proxy --version | --help
 *
 * How a connection goes through (session):
 *  1. An accept loop (one per listen address and configuration generation)
 *     takes a slot of its frontend's limit and one of the global limit
 *     before it accepts, so at a limit accepting pauses and the kernel's
 *     backlog holds the rest: no accept-and-close spin, no exhausted fd
 *     table (a frontend at its own limit holds no global slot).  It
 *     takes one connection at a time with a nonblocking accept4
 *     (take_connection), and gives the slots back while it waits for the
 *     next with weft_poll: an idle address holds none that a busy address
 *     of the same frontend needs.  The poll and accept4 are so that a
 *     reload or an upgrade can stop it without losing one: a connection is
 *     in the kernel's queue or ours, never in a queue of ours that stopping
 *     would close (the multishot weft_listener keeps up to 128).  The wait
 *     is a poll, not io_uring's accept, because that one waits exclusively
 *     (EPOLLEXCLUSIVE): the kernel wakes one waiter per connection, and a
 *     waiter cancelled at that moment (an old process that stops
 *     accepting) takes the wakeup with it, leaving the connection queued
 *     while the new process sleeps on.  A poll wakes every waiter; the one
 *     whose accept4 gets the connection serves it, the others wait again.
 *     The connection holds a reference to the loop's generation (reload.h).
 *  2. A task per new connection picks a server (balance.c) and connects
 *     within connect_timeout; a failed connect is retried on another
 *     server, up to `retries` times; a client that resets meanwhile ends
 *     it (dial_server looks every second).
 *     Servers that are all at their own max_connections make it wait up
 *     to queue_timeout (at most queue_size waiting per backend, first
 *     come first served: queue.c) for a slot, which a connection's end,
 *     or a server made ready from the admin listener, hands on.
 *  3. With send_proxy, the PROXY header goes to the server first.
 *     With accept_proxy, the session first reads the client's PROXY
 *     header (read_proxy_header), takes the client's address from it,
 *     and sends the bytes that came after it to the server first.
 *  4. relay.c takes both sockets; the task ends.  From then on an idle
 *     connection holds no task and no buffer.
 *  5. When it ends (relay_done, or end_early before a relay), the
 *     counters of stats.h take its bytes and the access log its line, and
 *     the generation loses the connection's reference.
 *
 * Observability: counters (stats.h) are relaxed atomics bumped here;
 * admin.c serves them at /metrics and /stats when `admin` is set, from the
 * generation in force, and sets servers' administrative state (ready,
 * drain, maint: balance.h) there; accesslog.c writes the lines from a thread of its
 * own, never blocking a worker.  The line format and the series are in
 * docs/proxy.md.
 *
 * Startup order (main): configuration, RLIMIT_NOFILE, with --upgrade-from
 * the sockets of the running proxy, every listener bound or taken over,
 * the admin and upgrade sockets, the access log's file opened,
 * NOTIFY_SOCKET connected, then the switch to `user` (privs.c) while the
 * main thread is the only thread, then the access log's writer and the
 * runtime.  With NOTIFY_SOCKET set, READY=1 goes out once the accept loops
 * run (after an upgrade with MAINPID=, and "ready" goes to the old
 * process; without its "ok" while it lives, this process steps back and
 * drains: step_back; with it, the control socket is served from then on:
 * upgrade_loop_start).
 *
 * Signals (signals task): SIGHUP reloads (reload: the steps are at the top
 * of reload.c), with RELOADING=1 before and READY=1 after; a broken
 * configuration is reported with FILE:LINE and the old one stays.  SIGUSR2
 * starts this program's file (as it is on disk now: a new binary) as a
 * child with --upgrade-from (upgrade_exec), which then takes over.  SIGTERM
 * or SIGINT: STOPPING=1 is sent and the drain begins.  A handover to a new
 * process (upgrade_serve) begins the same drain without STOPPING=1, which
 * would be the new main process's to send.
 *
 * The drain: the accept loops stop, the listeners close (after a
 * handover, only this process's copies: the new process keeps them),
 * established connections get up to drain_timeout to finish, then the rest
 * are closed over a second (relay_close_all), each with its access log
 * line, and the program exits 0.  Sessions, from accept to the start of
 * their relay, run in one group (P.sessions), which the deadline cancels:
 * those still waiting for a server end then too (cut_at_deadline).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
#include "pipes.h"
#include "privs.h"
#include "proxy_proto.h"
#include "queue.h"
#include "relay.h"
#include "reload.h"
#include "resolve.h"
#include "say.h"
#include "stats.h"
#include "upgrade.h"

#define VERSION "0.1.0"

/* accept_proxy: the longest wait for a whole PROXY header (or the
 * frontend's idle_timeout when that is shorter). */
#define PROXY_HEADER_TIMEOUT (5 * WEFT_SEC)
/* Connections an accept loop takes before it yields (accept_loop). */
#define ACCEPT_BURST 16

/* What the main task waits for (P.events). */
enum event {
	EV_STOP,        /* SIGTERM or SIGINT */
	EV_HANDED_OVER, /* a new process took the sockets over and accepts */
};

struct proxy {
	const char *file;           /* -c FILE; NULL: the embedded default */
	struct proxy_config *first; /* the configuration at start, until run builds on it */
	/* The generation in force.  Written by the reload (under both locks),
	 * read under gen_lock by what holds no generation yet (the admin
	 * pages); the accept loops have their own. */
	pthread_mutex_t gen_lock;
	struct gen *cur;
	/* One reload, handover or server state change at a time; the
	 * listening sockets in force and handed_over are written under it. */
	struct weft_mutex reload_lock;
	struct listen_set ls;
	bool handed_over;
	struct weft_sem slots;      /* global max_connections */
	uint32_t slots_max;         /* the capacity slots heads to (slots_resize) */
	_Atomic uint64_t active;    /* established or connecting */
	_Atomic uint64_t total, refused;
	_Atomic uint64_t reloads, reload_failures;
	/* Sessions (accept to relay start), cancelled at the drain deadline;
	 * cut counts those it ended. */
	struct weft_group *sessions;
	_Atomic uint64_t cut;
	/* The access log's writer, made when the log is first on (at start
	 * or by a reload) and kept to the end; log_to is what connections
	 * write to: the writer, or NULL while the log is off. */
	_Atomic(struct accesslog *) log;
	_Atomic(struct accesslog *) log_to;
	int admin_fd;               /* -1 when off */
	struct weft_addr admin_addr;
	struct weft_task *admin_loop;
	int upgrade_fd;             /* the control socket; -1 when off */
	char *upgrade_path;
	struct weft_task *upgrade_loop;
	struct upgrade_from from;   /* with --upgrade-from */
	bool upgrading;             /* until the old process confirms (under reload_lock) */
	char exe[PATH_MAX];         /* this program's file, for SIGUSR2; "" if unknown */
	struct weft_chan *events;   /* enum event, to the main task */
	_Atomic int draining;
	struct weft_rt *rt;
	struct admin_source admin;
	struct weft_sem admin_slots; /* admin.slots */
};

static struct proxy P;

struct session {
	struct frontend *f;
	int client;
	struct pserver *server;
	struct weft_addr server_addr; /* where the connection to server went; len 0: none */
	struct weft_addr peer;      /* the client: the socket's peer, or the PROXY header's source */
	struct weft_addr real;      /* the socket's peer (a load balancer, with accept_proxy) */
	struct weft_addr dst;       /* from the PROXY header; len 0: the socket's local address */
	uint64_t start;             /* weft_now() at accept */
	uint64_t queue_ns;          /* waiting for a server slot */
	uint64_t connect_ns;        /* connecting to servers, every attempt */
	uint64_t early;             /* bytes after the PROXY header, sent before the relay */
};

static void release(struct session *s)
{
	struct gen *g = s->f->gen;
	if (s->f->cfg->max_connections)
		weft_sem_release(&s->f->slots);
	weft_sem_release(&P.slots);
	atomic_fetch_sub(&P.active, 1);
	STAT_SUB(s->f->st->active, 1);
	free(s);
	gen_unref(g); /* last: it may free the frontend */
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
 *  "bytes_in":..,"bytes_out":..,"duration_ms":..,"queue_ms":..,
 *  "connect_ms":..,"end":..}.  Never blocks:
 * a line the log cannot take is dropped and counted.
 */
static void log_line(const struct session *s, const char *how, uint64_t in, uint64_t out)
{
	struct accesslog *log = atomic_load_explicit(&P.log_to, memory_order_acquire);
	if (!log)
		return;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* Room for any line (three unix paths of quotes at worst, some 1.2
	 * KiB); accesslog_push drops, and counts, one over its limit. */
	char line[2 * ACCESSLOG_LINE_MAX], *p = line;
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
	log_addr(&p, &room, "server_addr", &s->server_addr);
	k = snprintf(p, room,
		     ",\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,\"queue_ms\":%.3f,"
		     "\"connect_ms\":%.3f,\"end\":\"%s\"}\n",
		     (unsigned long long)in, (unsigned long long)out,
		     (double)(weft_now() - s->start) / 1e6, (double)s->queue_ns / 1e6,
		     (double)s->connect_ns / 1e6, how);
	if (k < 0 || (size_t)k >= room)
		return; /* cannot happen: names and addresses are bounded (above) */
	p += k;
	accesslog_push(log, line, (size_t)(p - line));
}

/* Gives back the slot of srv, a server of pb, that balance_pick took,
 * however the connection through it ended (a failed connect too), and
 * hands it to the connection waiting longest, if one waits (queue.c). */
static void slot_done(struct pbackend *pb, struct pserver *srv)
{
	balance_done(srv);
	queue_dispatch(pb);
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
	/* The relay counted its bytes as it forwarded them (relay_opts.count);
	 * the early bytes went before it. */
	uint64_t in = bytes[0] + s->early, out = bytes[1];
	log_line(s, relay_end_name(end), in, out);
	slot_done(s->f->backend, s->server);
	release(s);
}

/* How often a connect that hangs looks whether its client is still there,
 * as the queue looks at its waiters. */
#define CLIENT_LOOK WEFT_SEC

/*
 * Connects to srv within the backend's connect_timeout: a socket or -errno,
 * with the address tried in *to, or -ECONNABORTED when the client reset
 * meanwhile (client_left): the connect is abandoned, which
 * is not the server's failure.  The looks cost a connect nothing: ending
 * io_uring's wait for a TCP connect leaves the socket connecting in the
 * kernel, so from the first look on it is waited for with a poll, and the
 * handshake under way goes on.  A unix socket's connect is no handshake:
 * one that waited for room in the server's queue and was stopped leaves
 * the socket unconnected (and writable, so a poll would take it for
 * connected), and is made again.  A -ETIMEDOUT before the look was due is
 * the kernel's own (its SYN retries ran out).
 */
static int dial_server(const struct proxy_backend *b, struct pserver *srv, int client,
		       struct weft_addr *to)
{
	balance_addr(srv, to);
	int fd = socket(to->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	uint64_t deadline = weft_now() + b->connect_timeout_ns;
	int rc = -ETIMEDOUT;
	for (bool first = true;; first = false) {
		uint64_t now = weft_now();
		if (now >= deadline)
			break;
		if (!first && client_left(client)) {
			rc = -ECONNABORTED;
			break;
		}
		uint64_t until = deadline - now < CLIENT_LOOK ? deadline : now + CLIENT_LOOK;
		struct weft_scope sc;
		weft_scope_deadline(&sc, until - now);
		if (first || to->sa.sa_family == AF_UNIX) {
			rc = weft_connect(fd, &to->sa, to->len);
		} else if ((rc = weft_poll(fd, POLLOUT)) > 0) {
			int err = 0;
			socklen_t len = sizeof(err);
			rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ? -errno : -err;
		}
		weft_scope_end(&sc);
		if (rc != -ETIMEDOUT || weft_now() < until)
			break;
	}
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
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

/* Ends s if the drain deadline cut it short (run cancels the sessions that
 * have not reached their relay yet): not a failure of the server nor of
 * the client, so neither no_server nor a client's word. */
static bool cut_at_deadline(struct session *s)
{
	if (!weft_cancelled())
		return false;
	atomic_fetch_add(&P.cut, 1);
	end_early(s, "drain_deadline", true);
	return true;
}

static intptr_t session(void *arg)
{
	struct session *s = arg;
	struct pbackend *pb = s->f->backend;
	const struct proxy_backend *b = pb->cfg;
	struct backend_stats *bs = pb->stats;
	/* With accept_proxy: the header and whatever the client sent after
	 * it, which goes to the server before the relay starts. */
	char head[PROXY_PROTO_MAX_DEFAULT];
	size_t hlen = 0, got = 0;
	if (s->f->cfg->accept_proxy) {
		const char *how = NULL;
		ssize_t n = read_proxy_header(s, head, sizeof(head), &got, &how);
		if (n < 0) {
			if (!cut_at_deadline(s))
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
	const char *no_server = "no_server"; /* the access log's word, if so */
	for (uint32_t attempt = 0; attempt <= b->retries;) {
		/* A client that left just as a connect failed gets no retry:
		 * another connect_timeout for nobody, and a server slot. */
		if (attempt > 0 && client_left(s->client)) {
			end_early(s, "client_closed", false);
			return 0;
		}
		/* First come, first served: while connections wait for a
		 * slot, a new one queues behind them (a retry has waited its
		 * turn already). */
		int why = -EBUSY;
		struct pserver *srv = NULL;
		if (attempt > 0 || !queue_busy(pb))
			srv = balance_pick(pb, &s->peer, tried, ntried, &why);
		if (!srv && why == -EBUSY) {
			uint64_t tq = weft_now();
			why = queue_wait(pb, s->client, &s->peer, tried, ntried, queue_until, &srv);
			uint64_t waited = weft_now() - tq;
			s->queue_ns += waited;
			if (srv)
				stats_time_add(&bs->queue, waited);
			if (why == -ECONNRESET) {
				STAT_ADD(bs->queue_abandoned, 1);
				end_early(s, "client_closed", false);
				return 0;
			}
			if (why == -EBUSY) {
				STAT_ADD(bs->queue_full, 1);
				no_server = "queue_full";
			} else if (why == -ETIMEDOUT) {
				STAT_ADD(bs->queue_timeouts, 1);
				no_server = "queue_timeout";
			}
		}
		if (!srv)
			break;
		if (attempt > 0)
			STAT_ADD(bs->retries, 1);
		uint64_t t0 = weft_now();
		struct weft_addr to;
		server = dial_server(b, srv, s->client, &to);
		uint64_t took = weft_now() - t0;
		s->connect_ns += took;
		if (server == -ECONNABORTED) {
			slot_done(pb, srv);
			end_early(s, "client_closed", false);
			return 0;
		}
		if (server < 0 && balance_local_error(server)) {
			/* Ours, not the server's: neither held against it nor
			 * tried elsewhere, where it would fail alike. */
			slot_done(pb, srv);
			break;
		}
		balance_connect_result(srv, server >= 0);
		if (server >= 0) {
			stats_time_add(&bs->connect, took);
			STAT_ADD(srv->st->stats.total, 1);
			s->server = srv;
			s->server_addr = to;
			break;
		}
		slot_done(pb, srv);
		if (ntried < sizeof(tried) / sizeof(tried[0]))
			tried[ntried++] = srv;
		attempt++;
	}
	if (server < 0) {
		if (cut_at_deadline(s))
			return 0;
		/* No server: the client learns it at once, with a reset. */
		atomic_fetch_add(&P.refused, 1);
		STAT_ADD(s->f->st->no_server, 1);
		end_early(s, no_server, true);
		return 0;
	}
	weft_tcp_nodelay(server, 1);
	bool ok = true;
	enum proxy_send_proxy sp = s->server->cfg->send_proxy;
	if (sp != PROXY_SEND_PROXY_OFF) {
		char hdr[PROXY_PROTO_ENCODE_MAX];
		struct weft_addr dst = s->dst;
		ssize_t n = dst.len == 0 && weft_sock_local_addr(s->client, &dst) < 0 ? -EINVAL
			    : sp == PROXY_SEND_PROXY_V1
				    ? proxy_proto_v1(hdr, sizeof(hdr), &s->peer, &dst)
				    : proxy_proto_v2(hdr, sizeof(hdr), &s->peer, &dst);
		ok = n >= 0 && weft_sock_send_all(server, hdr, (size_t)n, NULL) >= 0;
	}
	if (ok && got > hlen)
		ok = weft_sock_send_all(server, head + hlen, got - hlen, NULL) >= 0;
	if (!ok) {
		weft_close(server);
		slot_done(pb, s->server);
		end_early(s, "server_reset", true);
		return 0;
	}
	/* Relaxed: independent counters (stats.h).  The relay counts the
	 * rest as it forwards it. */
	struct server_stats *ss = &s->server->st->stats;
	STAT_ADD(s->f->st->bytes_in, s->early);
	STAT_ADD(s->f->st->path_bytes[0][STATS_BUFFERED], s->early);
	STAT_ADD(ss->bytes_in, s->early);
	struct relay_opts o = {
		.idle_timeout = s->f->cfg->idle_timeout_ns ? s->f->cfg->idle_timeout_ns : WEFT_NEVER,
		.half_closed_timeout = s->f->cfg->half_closed_timeout_ns
					       ? s->f->cfg->half_closed_timeout_ns
					       : WEFT_NEVER,
		.data_path = b->data_path,
		.count = {{&s->f->st->bytes_in, &ss->bytes_in},
			  {&s->f->st->bytes_out, &ss->bytes_out}},
		.path = {{&s->f->st->path_bytes[0][STATS_BUFFERED],
			  &s->f->st->path_bytes[0][STATS_SPLICED]},
			 {&s->f->st->path_bytes[1][STATS_BUFFERED],
			  &s->f->st->path_bytes[1][STATS_SPLICED]}},
		.done = relay_done,
		.arg = s,
	};
	if (relay_start(s->client, server, &o) < 0) {
		weft_close(server);
		slot_done(pb, s->server);
		end_early(s, "no_memory", true);
	}
	return 0;
}

/* The next pause of a retry loop that met a shortage: 1 ms, doubling to 1 s. */
static uint64_t backoff_next(uint64_t backoff)
{
	return !backoff ? WEFT_MSEC : backoff >= WEFT_SEC / 2 ? WEFT_SEC : backoff * 2;
}

/* A connection queued on lfd (nonblocking), its peer in *peer: the
 * descriptor (close-on-exec), -EAGAIN when none is, or -errno.  Step 1 at
 * the top says why accept4 and a poll.  Does not suspend. */
static int take_connection(int lfd, struct weft_addr *peer)
{
	memset(peer, 0, sizeof(*peer));
	socklen_t len = sizeof(peer->ss);
	int fd = accept4(lfd, &peer->sa, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	peer->len = len;
	return fd;
}

/* Accepts on a->fd for a->f until cancelled: see step 1 at the top. */
static intptr_t accept_loop(void *arg)
{
	struct accept_loop *a = arg;
	struct frontend *f = a->f;
	uint64_t backoff = 0;
	unsigned burst = 0;
	bool failed = false; /* the last accept4 failed with a connection's error */
	for (;;) {
		/* Slots first: at a limit, accepting pauses.  The frontend's
		 * before the global one, so that a frontend at its own limit
		 * waits holding none of the global limit, which the other
		 * frontends share; a global slot is held only by connections,
		 * so waiting for one with the frontend's slot in hand keeps
		 * nothing from anyone who could accept. */
		if (f->cfg->max_connections && weft_sem_acquire(&f->slots) < 0)
			break;
		if (weft_sem_acquire(&P.slots) < 0) {
			if (f->cfg->max_connections)
				weft_sem_release(&f->slots);
			break;
		}
		struct weft_addr peer;
		int fd = take_connection(a->fd, &peer);
		struct session *s = fd >= 0 ? calloc(1, sizeof(*s)) : NULL;
		if (!s) {
			if (f->cfg->max_connections)
				weft_sem_release(&f->slots);
			weft_sem_release(&P.slots);
			if (fd >= 0) {
				weft_close(fd);
				continue;
			}
			/* None queued: the wait for the next holds no slot, which
			 * the loops of the frontend's other addresses may need. */
			if (fd == -EAGAIN) {
				failed = false;
				if ((fd = weft_poll(a->fd, POLLIN)) >= 0)
					continue;
			}
			if (fd == -ECANCELED)
				break; /* nothing taken: it stays in the kernel's queue */
			if (fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK) {
				say("frontend %s: accept: %s", f->cfg->name, strerror(-fd));
				break;
			}
			/* Out of descriptors: the connection waits in the backlog
			 * while we pause.  A connection's own error (ECONNABORTED,
			 * ...) passes at once, unless the one before failed too:
			 * then it is the socket's, whatever it is called (a
			 * security module refusing every accept says EPERM and
			 * leaves the connection queued), and is waited out the
			 * same way, not retried in a spin. */
			bool again = failed;
			failed = !balance_shortage(fd);
			if (failed && !again)
				continue;
			backoff = backoff_next(backoff);
			if (weft_sleep(backoff) == -ECANCELED)
				break;
			continue;
		}
		backoff = 0;
		failed = false;
		atomic_fetch_add(&P.active, 1);
		atomic_fetch_add(&P.total, 1);
		/* Relaxed: independent counters (stats.h). */
		STAT_ADD(f->st->total, 1);
		STAT_ADD(f->st->active, 1);
		gen_ref(f->gen);
		s->f = f;
		s->client = fd;
		s->start = weft_now();
		s->peer = peer;
		s->real = s->peer;
		weft_tcp_nodelay(fd, 1);
		if (weft_group_spawn(P.sessions, session, s, NULL) < 0) {
			weft_close(fd);
			release(s);
		}
		/* The slots and accept4 suspend only when they must: with the
		 * backlog full this loop would run on, the sessions it made not
		 * started (on one worker) and a reload's or a drain's
		 * cancellation unseen until the backlog is empty. */
		if (++burst == ACCEPT_BURST) {
			burst = 0;
			if (weft_yield() == -ECANCELED)
				break;
		}
	}
	return 0;
}

/* Starts g's accept loops, one per socket of ls (in g's listen order): 0,
 * or -ENOMEM with those started stopped again. */
static int loops_start(struct gen *g, const struct listen_set *ls)
{
	size_t k = 0;
	for (size_t i = 0; i < g->cfg->nfrontends; i++) {
		for (size_t j = 0; j < g->cfg->frontends[i].nlistens; j++, k++) {
			struct accept_loop *a = &g->loops[k];
			*a = (struct accept_loop){.f = &g->fronts[i], .fd = ls->v[k].fd};
			a->task = weft_spawn(accept_loop, a, &(struct weft_spawn_opts){.name = "accept"});
			if (!a->task)
				return -ENOMEM;
			g->nloops = k + 1;
		}
	}
	return 0;
}

/* Stops g's accept loops: cancelled (an accept that had completed returns
 * its connection, which is served), then joined.  Not cut short by the
 * caller's own cancellation. */
static void loops_stop(struct gen *g)
{
	for (size_t i = 0; i < g->nloops; i++)
		weft_cancel(g->loops[i].task);
	struct weft_scope sc;
	weft_scope_shield(&sc, WEFT_NEVER);
	for (size_t i = 0; i < g->nloops; i++)
		weft_join(g->loops[i].task, NULL);
	weft_scope_end(&sc);
	g->nloops = 0;
}

/* The admin pages' view of the generation in force (admin_source). */
static const struct admin_view *view_get(void **hold)
{
	pthread_mutex_lock(&P.gen_lock);
	struct gen *g = gen_ref(P.cur);
	pthread_mutex_unlock(&P.gen_lock);
	*hold = g;
	return &g->view;
}

static void view_put(void *hold)
{
	gen_unref(hold);
}

/* admin_source.state_begin: a state change waits for a reload or an
 * upgrade's hand-over to end (reload_lock), so the states handed over are
 * the last ones; an upgrade may wait a minute for the new process, so past
 * a moment it is refused, and after a hand-over it is the new process's
 * to take. */
static int state_begin(void)
{
	struct weft_scope sc;
	weft_scope_deadline(&sc, WEFT_SEC);
	int rc = weft_mutex_lock(&P.reload_lock);
	weft_scope_end(&sc);
	if (rc < 0)
		return -ETIMEDOUT; /* or cancelled: the admin task ends anyway */
	if (P.handed_over) {
		weft_mutex_unlock(&P.reload_lock);
		return -ESHUTDOWN;
	}
	return 0;
}

static void state_end(void)
{
	weft_mutex_unlock(&P.reload_lock);
}

/* After a reload: the servers whose administrative state carried over
 * (one not ready would otherwise look forgotten). */
static void say_kept_states(const struct gen *g)
{
	for (size_t i = 0; i < g->cfg->nbackends; i++)
		for (size_t j = 0; j < g->backs[i].n; j++) {
			const struct pserver *s = &g->backs[i].servers[j];
			enum server_admin a = balance_admin(s);
			if (a != SERVER_READY)
				say("reload: server %s/%s stays in %s (set through the admin "
					"listener)", g->cfg->backends[i].name, s->cfg->name,
					balance_admin_name(a));
		}
}

/* Takes n global slots for good: what a lower max_connections leaves over
 * is retired as connections end. */
static intptr_t retire_slots(void *arg)
{
	for (uintptr_t n = (uintptr_t)arg; n > 0; n--)
		if (weft_sem_acquire(&P.slots) < 0)
			break; /* shutdown */
	return 0;
}

/* Heads the global slots to want: more are released at once; fewer are
 * retired by a task as they free (connections are never cut). */
static void slots_resize(uint32_t want)
{
	if (want > P.slots_max) {
		for (uint32_t i = P.slots_max; i < want; i++)
			weft_sem_release(&P.slots);
	} else if (want < P.slots_max) {
		struct weft_task *t = weft_spawn(retire_slots, (void *)(uintptr_t)(P.slots_max - want),
						 &(struct weft_spawn_opts){.name = "retire slots"});
		if (!t) {
			say("reload: max_connections %u: out of memory; %u stays", want,
				P.slots_max);
			return;
		}
		weft_detach(t);
	}
	P.slots_max = want;
}

/* Settings a running proxy cannot change: said, and left as they run; c
 * takes the running worker count, so that its limits count the workers
 * there are. */
static void needs_restart(const struct proxy_config *old, struct proxy_config *c)
{
	const char *what[2];
	int line[2], n = 0;
	if (old->workers != c->workers)
		what[n] = "workers", line[n++] = 0;
	if ((old->user == NULL) != (c->user == NULL) ||
	    (c->user && strcmp(old->user, c->user) != 0))
		what[n] = "user", line[n++] = c->user_line;
	for (int i = 0; i < n; i++) {
		char at[32] = "";
		if (line[i] > 0)
			snprintf(at, sizeof(at), ":%d", line[i]);
		say("warning: %s%s: %s changed: needs a restart (or an upgrade with "
			"--upgrade-from); the running value stays", c->file, at, what[i]);
	}
	c->workers = old->workers;
}

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
			say("%s:%d: access_log %s: %s", cfg->file, cfg->access_log_line,
				cfg->access_log_path, strerror(errno));
			return 1;
		}
		sink->own = true;
		sink->pipe_atomic = false;
		break;
	}
	return 0;
}

/*
 * A reload's file work runs on the blocking pool (weft_spawn_blocking), not
 * on the worker its task runs on: reading the configuration and opening
 * the access log can take as long as the file system takes (a hung network
 * mount), or for ever (a FIFO nobody writes or reads), and meanwhile that
 * worker's connections would wait too.  The reload itself still waits for
 * them: a reload holds reload_lock to its end.
 */
struct load_job {
	const char *path;
	struct proxy_config *cfg;
	struct proxy_config_error err;
};

static intptr_t load_job_run(void *arg)
{
	struct load_job *j = arg;
	return proxy_config_load(j->path, &j->cfg, &j->err);
}

struct log_job {
	const struct proxy_config *cfg;
	struct log_sink *sink;
};

static intptr_t log_job_run(void *arg)
{
	struct log_job *j = arg;
	return open_access_log_file(j->cfg, j->sink);
}

/* A reload's access log, before the commit: *sink opened as access_log
 * says (fd -1: off), and *made a writer for it when none was ever made
 * (the log was off until now).  0, or -EIO / -errno after saying why (the
 * reload fails). */
static int log_prepare(const struct proxy_config *cfg, struct log_sink *sink,
		       struct accesslog **made)
{
	*made = NULL;
	*sink = (struct log_sink){.fd = -1};
	struct log_job job = {cfg, sink};
	intptr_t failed = 0;
	int rc = weft_spawn_blocking(log_job_run, &job, &failed);
	if (rc == 0) {
		if (failed)
			return -EIO; /* said */
		if (sink->fd < 0 || atomic_load_explicit(&P.log, memory_order_relaxed))
			return 0;
		/* From a worker's thread: the writer inherits its mask,
		 * every signal blocked. */
		rc = accesslog_open(made, sink->fd, 0, sink->pipe_atomic, sink->own);
	}
	if (rc < 0) {
		say("reload failed: %s:%d: access log: %s", cfg->file, cfg->access_log_line,
			strerror(-rc));
		if (sink->own)
			close(sink->fd);
		*sink = (struct log_sink){.fd = -1};
		return rc;
	}
	return 0;
}

/* The reload failed: what log_prepare opened, if anything, goes. */
static void log_undo(struct log_sink *sink, struct accesslog *made)
{
	if (made)
		accesslog_close(made); /* it owned the fd */
	else if (sink->fd >= 0 && sink->own)
		close(sink->fd);
}

/* After the commit: connections write to the new sink, or to nothing.
 * Turned off, the writer goes on to fd -1 once the lines queued before are
 * written (accesslog.c), so the file is let go. */
static void log_switch(const struct proxy_config *cfg, struct log_sink *sink,
		       struct accesslog *made)
{
	struct accesslog *log = atomic_load_explicit(&P.log, memory_order_relaxed);
	bool was_on = atomic_load_explicit(&P.log_to, memory_order_relaxed) != NULL;
	if (made) {
		atomic_store_explicit(&P.log, made, memory_order_release);
		log = made;
	} else if (sink->fd >= 0) {
		accesslog_set_fd(log, sink->fd, sink->pipe_atomic, sink->own);
	} else if (was_on) {
		atomic_store_explicit(&P.log_to, NULL, memory_order_release);
		accesslog_set_fd(log, -1, false, false);
		say("reload: access log off");
		return;
	}
	if (sink->fd >= 0) {
		atomic_store_explicit(&P.log_to, log, memory_order_release);
		if (!was_on)
			say("reload: access log on (%s:%d)", cfg->file, cfg->access_log_line);
	}
}

/* Cancels and joins t (if any): not cut short by the caller's own
 * cancellation. */
static void stop_task(struct weft_task *t)
{
	if (!t)
		return;
	weft_cancel(t);
	struct weft_scope sc;
	weft_scope_shield(&sc, WEFT_NEVER);
	weft_join(t, NULL);
	weft_scope_end(&sc);
}

/* Says where the admin listener on fd listens. */
static void say_admin(int fd)
{
	char where[WEFT_ADDR_STRLEN];
	struct weft_addr bound;
	if (weft_sock_local_addr(fd, &bound) == 0 && weft_addr_format(&bound, where, sizeof(where)) > 0)
		say("admin listening on %s", where);
}

/* A reload's admin listener, before the commit: *fd a socket bound to the
 * new address when it changed, else -1 (none wanted, or the running one
 * stays: *same).  0, or -errno after saying why (the reload fails). */
static int admin_prepare(const struct proxy_config *cfg, int *fd, bool *same)
{
	*fd = -1;
	*same = (P.admin_fd >= 0) == cfg->has_admin &&
		(!cfg->has_admin || proxy_addr_equal(&P.admin_addr, &cfg->admin));
	if (*same || !cfg->has_admin)
		return 0;
	struct weft_listen_opts lo = {.backlog = 64};
	int rc = weft_sock_listen(&cfg->admin, &lo);
	if (rc < 0) {
		say("reload failed: %s:%d: admin %s: %s; the running configuration stays",
			cfg->file, cfg->admin_line, cfg->admin_address, strerror(-rc));
		return rc;
	}
	*fd = rc;
	return 0;
}

/* After the commit: the running admin listener stops (requests it took
 * are answered) and closes, and the one on fd, if any, starts.  Under
 * reload_lock, which the upgrade's hand-over of admin_fd takes too. */
static void admin_switch(const struct proxy_config *cfg, int fd)
{
	stop_task(P.admin_loop);
	P.admin_loop = NULL;
	if (P.admin_fd >= 0)
		close(P.admin_fd);
	P.admin_fd = P.admin.fd = fd;
	if (fd < 0) {
		say("reload: admin listener off");
		return;
	}
	P.admin_addr = cfg->admin;
	say_admin(fd);
	if (!(P.admin_loop = weft_spawn(admin_serve, &P.admin,
					&(struct weft_spawn_opts){.name = "admin"})))
		say("reload: admin listener not started: out of memory");
}

static intptr_t upgrade_serve(void *arg);

/* Starts serving the control socket (upgrade_serve), unless this process
 * took it over and the old one has not confirmed yet (P.upgrading): the
 * sockets may still go back to the old process then, and a third process
 * served meanwhile would take them from one that steps back, leaving the
 * old and the third accepting side by side.  What connects meanwhile waits
 * in the socket's queue, for whichever of the two goes on.  Under
 * reload_lock, or before the signals task runs.  false when out of memory. */
static bool upgrade_loop_start(void)
{
	if (P.upgrade_fd < 0 || P.upgrading)
		return true;
	P.upgrade_loop = weft_spawn(upgrade_serve, NULL, &(struct weft_spawn_opts){.name = "upgrade"});
	return P.upgrade_loop != NULL;
}

/* A reload's control socket, before the commit: *fd listening on the new
 * upgrade_socket when it changed, else -1 (none wanted, or the running one
 * stays: *same).  0, or -errno after saying why (the reload fails). */
static int upgrade_prepare(const struct proxy_config *cfg, int *fd, bool *same)
{
	*fd = -1;
	const char *now = P.upgrade_fd >= 0 ? P.upgrade_path : NULL;
	*same = (now == NULL) == (cfg->upgrade_socket == NULL) &&
		(!now || strcmp(now, cfg->upgrade_socket) == 0);
	if (*same || !cfg->upgrade_socket)
		return 0;
	int rc = upgrade_listen(cfg->upgrade_socket);
	if (rc < 0) {
		say("reload failed: %s:%d: upgrade_socket %s: %s; the running configuration "
			"stays", cfg->file, cfg->upgrade_socket_line, cfg->upgrade_socket,
			strerror(-rc));
		return rc;
	}
	*fd = rc;
	return 0;
}

/* After the commit, under reload_lock (so no hand-over is under way): the
 * running control socket stops, closes and its file goes; the one on fd,
 * if any, starts. */
static void upgrade_switch(const struct proxy_config *cfg, int fd)
{
	stop_task(P.upgrade_loop);
	P.upgrade_loop = NULL;
	if (P.upgrade_fd >= 0) {
		close(P.upgrade_fd);
		/* Before the old process has confirmed a hand-over, a socket
		 * taken from it is still its own, file and all: it goes on
		 * with it if the hand-over fails, and forget_old_control_socket
		 * removes the file if it does not. */
		if (!P.upgrading || strcmp(P.upgrade_path, P.from.upgrade_path) != 0)
			unlink(P.upgrade_path);
	}
	free(P.upgrade_path);
	P.upgrade_path = NULL;
	P.upgrade_fd = -1;
	if (fd < 0) {
		say("reload: upgrade socket off");
		return;
	}
	/* Set before the spawn, which publishes them to the new loop. */
	P.upgrade_fd = fd;
	if (!(P.upgrade_path = strdup(cfg->upgrade_socket)) || !upgrade_loop_start()) {
		say("reload: upgrade_socket %s not started: out of memory",
			cfg->upgrade_socket);
		close(fd);
		unlink(cfg->upgrade_socket);
		free(P.upgrade_path);
		P.upgrade_path = NULL;
		P.upgrade_fd = -1;
		return;
	}
	say("reload: upgrade socket on %s", P.upgrade_path);
}

/* Puts the sockets of ls that it took from have back there, and closes the
 * ones it bound: listen_set_open undone. */
static void listen_set_undo(struct listen_set *have, struct listen_set *ls)
{
	for (size_t i = 0; i < ls->n; i++) {
		size_t j = 0;
		while (j < have->n && (have->v[j].fd >= 0 ||
				       !proxy_addr_equal(&have->v[j].addr, &ls->v[i].addr)))
			j++;
		if (j < have->n)
			have->v[j].fd = ls->v[i].fd;
		else
			close(ls->v[i].fd);
	}
	free(ls->v);
}

/* A generation's own tasks: its active checks (health.c) and its host-name
 * lookups (resolve.c).  Start: 0 or -ENOMEM, with none left running. */
static int gen_tasks_start(struct gen *g)
{
	int rc = health_start(g->backs, g->cfg->nbackends, &g->health);
	if (rc == 0 && (rc = resolve_start(g->backs, g->cfg->nbackends, &g->resolve)) < 0) {
		health_stop(g->health);
		g->health = NULL;
	}
	return rc;
}

static void gen_tasks_stop(struct gen *g)
{
	health_stop(g->health);
	g->health = NULL;
	resolve_stop(g->resolve);
	g->resolve = NULL;
}

/* A reload, under reload_lock: the steps at the top of reload.c.  0, or
 * -errno with everything as it was (said on stderr). */
static int reload_locked(void)
{
	if (P.handed_over) {
		say("reload: handed over to a new process; not reloading");
		return -ESHUTDOWN;
	}
	struct load_job job = {.path = P.file};
	intptr_t loaded;
	int rc;
	if (!P.file) {
		loaded = proxy_config_parse(proxy_config_default, "(default)", &job.cfg, &job.err);
	} else if ((rc = weft_spawn_blocking(load_job_run, &job, &loaded)) < 0) {
		say("reload failed: %s: %s; the running configuration stays", P.file,
			strerror(-rc));
		return rc;
	}
	char msg[600];
	struct proxy_config *cfg = job.cfg;
	if ((rc = (int)loaded) < 0) {
		proxy_config_error_format(&job.err, msg, sizeof(msg));
		say("reload failed: %s; the running configuration stays", msg);
		return rc;
	}
	for (size_t i = 0; i < cfg->nwarnings; i++)
		say("warning: %s", cfg->warnings[i]);
	needs_restart(P.cur->cfg, cfg);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if ((rc = proxy_config_apply_limits(cfg, rl.rlim_cur, msg, sizeof(msg))) < 0) {
		say("reload failed: %s; the running configuration stays", msg);
		proxy_config_free(cfg);
		return rc;
	}
	if (msg[0])
		say("warning: %s", msg);
	struct gen *old = P.cur, *g;
	if ((rc = gen_build(cfg, old, &g)) < 0) {
		say("reload failed: %s; the running configuration stays", strerror(-rc));
		proxy_config_free(cfg);
		return rc;
	}
	/* What the reload needs and may fail to get, before the commit: the
	 * admin listener's new address, the access log's file (opened again
	 * even under the same name: after a rotation that is a new file) and
	 * its writer, the listening sockets and their loops. */
	int admin_fd = -1, upgrade_fd = -1;
	bool admin_same, upgrade_same;
	struct log_sink sink = {.fd = -1};
	struct accesslog *made_log = NULL;
	struct listen_set ls;
	if ((rc = admin_prepare(cfg, &admin_fd, &admin_same)) < 0 ||
	    (rc = upgrade_prepare(cfg, &upgrade_fd, &upgrade_same)) < 0)
		goto fail;
	if ((rc = log_prepare(cfg, &sink, &made_log)) < 0)
		goto fail_said;
	if ((rc = listen_set_open(cfg, &P.ls, &ls)) < 0)
		goto fail_said;
	if ((rc = loops_start(g, &ls)) < 0) {
		loops_stop(g);
		listen_set_undo(&P.ls, &ls);
		say("reload failed: %s; the running configuration stays", strerror(-rc));
		goto fail;
	}
	/* Committed: nothing below fails the reload. */
	pthread_mutex_lock(&P.gen_lock);
	P.cur = g;
	pipes_limit(cfg->pipes_max);
	pthread_mutex_unlock(&P.gen_lock);
	for (size_t i = 0; i < g->nbacks; i++) {
		balance_commit(&g->backs[i]);
		queue_dispatch(&g->backs[i]);
	}
	loops_stop(old);
	gen_tasks_stop(old);
	if ((rc = gen_tasks_start(g)) < 0)
		say("reload: health checks or host-name lookups not started: %s; servers keep "
			"their last verdict and address", strerror(-rc));
	struct listen_set dropped = P.ls;
	P.ls = ls;
	listen_set_close(&dropped, "dropped from the configuration");
	if (!admin_same)
		admin_switch(cfg, admin_fd);
	if (!upgrade_same)
		upgrade_switch(cfg, upgrade_fd);
	log_switch(cfg, &sink, made_log);
	slots_resize(cfg->max_connections);
	say("reloaded %s: generation %llu, %zu frontends, %zu backends", cfg->file,
		(unsigned long long)g->number, cfg->nfrontends, cfg->nbackends);
	say_kept_states(g);
	gen_unref(old); /* freed with its last connection */
	return 0;
fail_said:
	say("reload failed: the running configuration stays");
fail:
	if (admin_fd >= 0)
		close(admin_fd);
	if (upgrade_fd >= 0) {
		close(upgrade_fd);
		unlink(cfg->upgrade_socket); /* bound by this reload */
	}
	log_undo(&sink, made_log);
	gen_unref(g);
	return rc;
}

/* SIGHUP: RELOADING=1, the reload, READY=1; counted either way. */
static void reload(void)
{
	notify_reloading();
	/* Shielded: a reload half done is not left behind by a cancellation
	 * (the drain cancels this task). */
	struct weft_scope sc;
	weft_scope_shield(&sc, WEFT_NEVER);
	weft_mutex_lock(&P.reload_lock);
	int rc = reload_locked();
	weft_mutex_unlock(&P.reload_lock);
	weft_scope_end(&sc);
	if (rc < 0)
		STAT_ADD(P.reload_failures, 1);
	else
		STAT_ADD(P.reloads, 1);
	notify_ready();
}

/* SIGUSR2: starts P.exe (the program's file as it is now) as a child, with
 * -c and --upgrade-from the control socket; it takes over as an upgrade
 * does (upgrade_serve), or fails and leaves this process as it was.
 * posix_spawn rather than fork: it does not copy this process's page
 * tables (a worker thread waits only until the exec), and the child starts
 * with no signal blocked. */
static void upgrade_exec(void)
{
	if (P.upgrade_fd < 0 || !P.file || !P.exe[0]) {
		say("SIGUSR2: %s; not upgrading", P.upgrade_fd < 0 ? "no upgrade_socket"
			: !P.file ? "no -c FILE" : "this program's file is unknown");
		return;
	}
	char *argv[] = {P.exe, "-c", (char *)P.file, "--upgrade-from", P.upgrade_path, NULL};
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_t at;
	pid_t pid;
	int rc = posix_spawnattr_init(&at);
	if (rc == 0) {
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
		if (rc == 0)
			rc = posix_spawnattr_setsigmask(&at, &none);
		if (rc == 0)
			rc = posix_spawn(&pid, P.exe, NULL, &at, argv, environ);
		posix_spawnattr_destroy(&at);
	}
	if (rc != 0)
		say("SIGUSR2: cannot start %s: %s; not upgrading", P.exe, strerror(rc));
	else
		say("SIGUSR2: started %s as pid %d to take over", P.exe, (int)pid);
}

/* SIGCHLD: reaps the children of SIGUSR2 that ended (failed to take over,
 * or stepped back), so that none is left a zombie, and says how each
 * ended.  A child that took over outlives this process. */
static void reap_children(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (WIFEXITED(st))
			say("SIGUSR2: pid %d exited with status %d", (int)pid, WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			say("SIGUSR2: pid %d was killed by %s", (int)pid,
				strsignal(WTERMSIG(st)));
	}
}

/* The signals the signals task takes into *set. */
static void handled_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGCHLD);
}

/* Waits for SIGHUP (reload), SIGUSR2 (upgrade_exec), SIGCHLD
 * (reap_children), SIGTERM and SIGINT (EV_STOP) until cancelled or
 * stopped.  Each wait opens a signalfd: with the descriptor table full (or
 * no memory) it fails, and the task waits a while and tries again, the
 * signals staying pending meanwhile; giving up would leave the proxy deaf
 * to SIGTERM for good. */
static intptr_t signals(void *arg)
{
	(void)arg;
	sigset_t set;
	handled_signals(&set);
	uint64_t backoff = 0;
	for (;;) {
		int sig = weft_signal_wait(&set);
		if (balance_shortage(sig)) {
			if (!backoff)
				say("cannot wait for signals (%s): trying again",
					strerror(-sig));
			backoff = backoff_next(backoff);
			int rc = weft_sleep(backoff);
			if (rc < 0)
				return rc;
			continue;
		}
		if (sig < 0)
			return sig;
		backoff = 0;
		if (sig == SIGHUP) {
			reload();
			continue;
		}
		if (sig == SIGUSR2) {
			upgrade_exec();
			continue;
		}
		if (sig == SIGCHLD) {
			reap_children();
			continue;
		}
		say("%s", strsignal(sig));
		int ev = EV_STOP;
		weft_chan_send(P.events, &ev);
		return 0;
	}
}

/* The servers of g not ready, in *states (n of them): 0 or -ENOMEM.  Under
 * reload_lock, which state changes take too (state_begin). */
static int handover_states(const struct gen *g, struct upgrade_state **states, size_t *n)
{
	size_t k = 0, all = 0;
	for (size_t i = 0; i < g->cfg->nbackends; i++)
		all += g->backs[i].n;
	struct upgrade_state *v = calloc(all ? all : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < g->cfg->nbackends; i++)
		for (size_t j = 0; j < g->backs[i].n; j++) {
			const struct pserver *s = &g->backs[i].servers[j];
			enum server_admin a = balance_admin(s);
			if (a != SERVER_READY)
				v[k++] = (struct upgrade_state){g->cfg->backends[i].name, s->cfg->name, a};
		}
	*states = v;
	*n = k;
	return 0;
}

/* The sockets to hand over, in *items (n of them): 0 or -ENOMEM.  Under
 * reload_lock. */
static int handover_items(struct upgrade_item **items, size_t *n)
{
	const struct proxy_config *cfg = P.cur->cfg;
	struct upgrade_item *v = calloc(P.ls.n + 2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < cfg->nfrontends; i++)
		for (size_t j = 0; j < cfg->frontends[i].nlistens; j++, k++) {
			v[k] = (struct upgrade_item){.kind = "listen", .name = cfg->frontends[i].name,
						     .fd = P.ls.v[k].fd};
			weft_addr_format(&P.ls.v[k].addr, v[k].text, sizeof(v[k].text));
		}
	if (P.admin_fd >= 0) {
		v[k] = (struct upgrade_item){.kind = "admin", .fd = P.admin_fd};
		weft_addr_format(&P.admin_addr, v[k].text, sizeof(v[k].text));
		k++;
	}
	v[k] = (struct upgrade_item){.kind = "upgrade", .fd = P.upgrade_fd};
	snprintf(v[k].text, sizeof(v[k].text), "%s", P.upgrade_path);
	*items = v;
	*n = k + 1;
	return 0;
}

/* The control socket (upgrade_socket): each connection is a new process
 * asking for the sockets; once one is ready, the drain begins (EV_HANDED_OVER). */
static intptr_t upgrade_serve(void *arg)
{
	(void)arg;
	for (;;) {
		int conn = weft_sock_accept(P.upgrade_fd, NULL);
		if (conn == -ECANCELED)
			return 0;
		if (conn < 0) {
			if (weft_sleep(100 * WEFT_MSEC) == -ECANCELED)
				return 0;
			continue;
		}
		if (weft_mutex_lock(&P.reload_lock) < 0) {
			weft_close(conn); /* cancelled: the drain begins */
			return 0;
		}
		struct upgrade_item *items = NULL;
		struct upgrade_state *states = NULL;
		size_t n, nstates;
		pid_t pid = 0;
		int rc = handover_items(&items, &n);
		if (rc == 0)
			rc = handover_states(P.cur, &states, &nstates);
		if (rc == 0)
			rc = upgrade_hand_over(conn, items, n, states, nstates, &pid);
		free(items);
		free(states);
		weft_close(conn);
		if (rc == 0)
			P.handed_over = true;
		weft_mutex_unlock(&P.reload_lock);
		if (rc == 0) {
			say("upgrade: pid %d accepts on the sockets now", (int)pid);
			int ev = EV_HANDED_OVER;
			weft_chan_send(P.events, &ev);
			return 0;
		}
		say("upgrade: the new process did not take over (%s); running on as before",
			strerror(-rc));
	}
}

/* Stops accepting: the loops, then the sockets (after a handover only our
 * copies close; the new process has the same sockets).  The signals and
 * upgrade tasks have ended: nothing else moves the sockets now. */
static void stop_accepting(bool handed_over)
{
	loops_stop(P.cur);
	for (size_t i = 0; i < P.ls.n; i++)
		close(P.ls.v[i].fd);
	free(P.ls.v);
	P.ls = (struct listen_set){0};
	if (P.upgrade_fd >= 0) {
		close(P.upgrade_fd);
		if (!handed_over)
			unlink(P.upgrade_path); /* ours alone: no process listens there now */
	}
	if (handed_over && P.admin_fd >= 0) {
		/* The new process answers the admin pages from now on, on the
		 * same socket, or on another address: then ours closes now,
		 * not left listening unanswered until the drain ends. */
		stop_task(P.admin_loop);
		P.admin_loop = NULL;
		close(P.admin_fd);
		P.admin_fd = P.admin.fd = -1;
	}
}

/* After a hand-over that moved upgrade_socket (under reload_lock, which
 * keeps P.upgrade_path still): the old process's control socket file
 * goes.  That process closes its socket without removing the file (the
 * path is the new process's when unchanged), so the file would stay, a
 * path that takes connections nobody answers and then none. */
static void forget_old_control_socket(void)
{
	const char *old = P.from.upgrade_path;
	if (!old[0] || (P.upgrade_path && strcmp(old, P.upgrade_path) == 0))
		return;
	if (unlink(old) < 0 && errno != ENOENT)
		say("warning: upgrade: the old control socket %s stays: %s", old, strerror(errno));
}

/* After an upgrade: the states the old process had, on the servers of g
 * (the first generation) with the same names; each said, as a reload
 * says what it keeps. */
static void keep_upgrade_states(struct gen *g)
{
	for (size_t k = 0; k < P.from.nstates; k++) {
		const struct upgrade_kept *st = &P.from.states[k];
		struct pserver *s = NULL;
		for (size_t i = 0; i < g->cfg->nbackends && !s; i++) {
			if (strcmp(g->cfg->backends[i].name, st->backend) != 0)
				continue;
			for (size_t j = 0; j < g->backs[i].n && !s; j++)
				if (strcmp(g->backs[i].servers[j].cfg->name, st->server) == 0)
					s = &g->backs[i].servers[j];
		}
		const char *word = balance_admin_name((enum server_admin)st->admin);
		if (s) {
			balance_set_admin(s, (enum server_admin)st->admin);
			say("upgrade: server %s/%s stays in %s (as in pid %d)", st->backend,
				st->server, word, (int)P.from.pid);
		} else {
			say("upgrade: server %s/%s was in %s in pid %d; the configuration has "
				"no such server now", st->backend, st->server, word,
				(int)P.from.pid);
		}
	}
	free(P.from.states);
	P.from.states = NULL;
	P.from.nstates = 0;
}

/* After an upgrade that the old process did not confirm (rc): if it
 * lives, it accepts on as before, so this process steps back: the main
 * process goes back to it, and this one (like one handed over) drains what
 * it took and exits.  If it is gone, this process goes on alone.  Returns
 * true when stepping back. */
static bool step_back(int rc)
{
	pid_t old = P.from.pid;
	if (old <= 0 || (kill(old, 0) < 0 && errno == ESRCH)) {
		say("upgrade: pid %d did not confirm the hand-over (%s) and is gone: this "
			"process goes on alone", (int)old, strerror(-rc));
		return false;
	}
	say("upgrade: pid %d did not confirm the hand-over (%s): it accepts on as before, and "
		"this process stops", (int)old, strerror(-rc));
	notify_mainpid(old, false);
	weft_mutex_lock(&P.reload_lock);
	P.handed_over = true;
	weft_mutex_unlock(&P.reload_lock);
	return true;
}

static intptr_t run(void *arg)
{
	(void)arg;
	struct gen *g;
	int rc = gen_build(P.first, NULL, &g);
	if (rc < 0)
		return rc;
	P.first = NULL; /* the generation's now */
	keep_upgrade_states(g); /* before the checks: maint has none */
	/* Stopped at the end, or by a reload. */
	if ((rc = gen_tasks_start(g)) < 0)
		return rc;
	P.cur = g;
	P.events = weft_chan_new(sizeof(int), 4);
	P.sessions = weft_group_new(0);
	if (!P.events || !P.sessions)
		return -ENOMEM;
	weft_sem_init(&P.admin_slots, ADMIN_CONCURRENCY);
	P.admin = (struct admin_source){
		.fd = P.admin_fd,
		.slots = &P.admin_slots,
		.log = &P.log,
		.rt = P.rt,
		.active = &P.active,
		.draining = &P.draining,
		.reloads = &P.reloads,
		.reload_failures = &P.reload_failures,
		.started = weft_now(),
		.get = view_get,
		.put = view_put,
		.servers_changed = queue_dispatch,
		.state_begin = state_begin,
		.state_end = state_end,
	};
	if (P.admin_fd >= 0 &&
	    !(P.admin_loop = weft_spawn(admin_serve, &P.admin, &(struct weft_spawn_opts){.name = "admin"})))
		return -ENOMEM;
	if ((rc = loops_start(g, &P.ls)) < 0)
		return rc;
	if (!upgrade_loop_start())
		return -ENOMEM;
	struct weft_task *sig = weft_spawn(signals, NULL, &(struct weft_spawn_opts){.name = "signals"});
	if (!sig)
		return -ENOMEM;
	/* Bound (before the runtime) and accepting: ready for systemd, and
	 * for the old process after an upgrade. */
	bool back = false;
	if (P.upgrading) {
		/* systemd first: the old process may exit soon after "ready",
		 * and the unit must know its new main process by then. */
		notify_mainpid(getpid(), true);
		back = (rc = upgrade_ready(&P.from)) < 0 && step_back(rc);
		if (!back) {
			weft_mutex_lock(&P.reload_lock);
			forget_old_control_socket();
			P.upgrading = false;
			if (!upgrade_loop_start())
				say("upgrade socket %s not served: out of memory",
					P.upgrade_path);
			weft_mutex_unlock(&P.reload_lock);
		}
	} else {
		notify_ready();
	}
	int ev;
	if (!back)
		weft_chan_recv(P.events, &ev);
	/* A reload under way ends first (it is shielded); a handover under
	 * way is cut short, unless it is done: then the new process is the
	 * main one, and STOPPING=1 would be its to send. */
	stop_task(sig);
	stop_task(P.upgrade_loop);
	bool handed_over = P.handed_over;
	if (!handed_over)
		notify_stopping();
	/* Relaxed: a flag on its own, read by /health and /metrics. */
	atomic_store_explicit(&P.draining, 1, memory_order_relaxed);
	stop_accepting(handed_over);
	uint64_t timeout = P.cur->cfg->drain_timeout_ns;
	say("%s: draining %llu connections for up to %.1f s",
		back ? "stepping back" : handed_over ? "handed over" : "stopping",
		(unsigned long long)atomic_load(&P.active), (double)timeout / 1e9);
	uint64_t until = weft_now() + timeout;
	while (atomic_load(&P.active) > 0 && weft_now() < until)
		weft_sleep(10 * WEFT_MSEC);
	/* What is left is closed over a second, not in one burst that would
	 * have every client reconnect in the same instant; each gets its
	 * access log line and counters as it ends.  Sessions still waiting
	 * for a server end at once: no server took them up. */
	weft_group_cancel(P.sessions);
	size_t closed = relay_close_all(WEFT_SEC);
	weft_group_wait(P.sessions);
	until = weft_now() + 2 * WEFT_SEC;
	while (atomic_load(&P.active) > 0 && weft_now() < until)
		weft_sleep(10 * WEFT_MSEC);
	say("stopped; %llu connections closed at the drain deadline",
		(unsigned long long)(closed + atomic_load(&P.cut)));
	/* The admin listener answers (503 on /health) until the drain ends,
	 * and the requests it took before then are answered. */
	stop_task(P.admin_loop);
	admin_wait(&P.admin);
	gen_tasks_stop(P.cur);
	return back; /* the upgrade failed: exit 1 */
}

/* Where the access log goes: opened before the switch of user (a file
 * the user could not open is still written), its writer started after. */
/* Starts the access log's writer on sink: 0 with P.log set (NULL when
 * off), or 1 after saying why on stderr (sink's fd is then closed if
 * owned). */
static int open_access_log(const struct log_sink *sink)
{
	int fd = sink->fd;
	bool own = sink->own;
	if (fd < 0)
		return 0;
	struct accesslog *log;
	int rc = accesslog_open(&log, fd, 0, sink->pipe_atomic, own);
	if (rc < 0) {
		say("access log: %s", strerror(-rc));
		if (own)
			close(fd);
		return 1;
	}
	atomic_store_explicit(&P.log, log, memory_order_relaxed);
	atomic_store_explicit(&P.log_to, log, memory_order_relaxed);
	return 0;
}

/* The admin listener and the control socket: bound, or with --upgrade-from
 * taken over when the address is the same.  0, or 1 after saying why. */
static int open_admin_and_upgrade(const struct proxy_config *cfg)
{
	P.admin_fd = P.upgrade_fd = -1;
	if (cfg->has_admin) {
		P.admin_addr = cfg->admin;
		if (P.from.admin_fd >= 0 && proxy_addr_equal(&P.from.admin, &cfg->admin)) {
			P.admin_fd = P.from.admin_fd;
			P.from.admin_fd = -1;
		} else {
			struct weft_listen_opts lo = {.backlog = 64};
			if ((P.admin_fd = weft_sock_listen(&cfg->admin, &lo)) < 0) {
				say("%s:%d: admin %s: %s", cfg->file, cfg->admin_line,
					cfg->admin_address, strerror(-P.admin_fd));
				return 1;
			}
		}
		say_admin(P.admin_fd);
	}
	if (!cfg->upgrade_socket)
		return 0;
	if (!(P.upgrade_path = strdup(cfg->upgrade_socket)))
		return 1;
	if (P.from.upgrade_fd >= 0 && strcmp(P.from.upgrade_path, cfg->upgrade_socket) == 0) {
		P.upgrade_fd = P.from.upgrade_fd;
		P.from.upgrade_fd = -1;
	} else if ((P.upgrade_fd = upgrade_listen(cfg->upgrade_socket)) < 0) {
		say("%s:%d: upgrade_socket %s: %s", cfg->file, cfg->upgrade_socket_line,
			cfg->upgrade_socket, strerror(-P.upgrade_fd));
		return 1;
	}
	say("upgrade socket on %s", cfg->upgrade_socket);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-proxy [-c FILE]        run (default configuration without -c)\n"
		"       weft-proxy -c FILE --upgrade-from SOCKET\n"
		"                                   take over from the proxy whose upgrade_socket\n"
		"                                   is SOCKET (binary upgrade)\n"
		"       weft-proxy -t [-c FILE]     check the configuration and print it\n"
		"       weft-proxy --version | --help\n"
		"\n"
		"SIGHUP reloads the configuration; SIGUSR2 starts this program's file\n"
		"to take over (upgrade_socket); SIGTERM drains and stops.\n"
		"Without -c the embedded default runs: a frontend on 127.0.0.1:8080 to a\n"
		"round-robin backend of 127.0.0.1:8081 and 127.0.0.1:8082, and the admin\n"
		"listener on 127.0.0.1:9901.\n"
		"The configuration reference is docs/proxy.md.\n");
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"upgrade-from", required_argument, NULL, 'U'},
		{NULL, 0, NULL, 0},
	};
	/* The signals the signals task takes, blocked before anything else:
	 * a SIGHUP sent as soon as "listening on" is printed must wait for
	 * the task, not end the process.  Every thread made later inherits
	 * the mask.  SIGPIPE too: a write to a closed socket is an error. */
	sigset_t sigs;
	handled_signals(&sigs);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	/* The program's path, read now: a package upgrade that replaces the
	 * file leaves /proc/self/exe naming the deleted one. */
	ssize_t n = readlink("/proc/self/exe", P.exe, sizeof(P.exe) - 1);
	P.exe[n > 0 ? n : 0] = 0;
	if (n > 10 && strcmp(P.exe + n - 10, " (deleted)") == 0)
		P.exe[0] = 0;
	const char *upgrade_from = NULL;
	int check = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:th", longs, NULL)) != -1) {
		switch (opt) {
		case 'c': P.file = optarg; break;
		case 't': check = 1; break;
		case 'U': upgrade_from = optarg; break;
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
	int rc = P.file ? proxy_config_load(P.file, &P.first, &err)
			: proxy_config_parse(proxy_config_default, "(default)", &P.first, &err);
	if (rc < 0) {
		char msg[600];
		proxy_config_error_format(&err, msg, sizeof(msg));
		say("%s", msg);
		return 1;
	}
	struct proxy_config *cfg = P.first;
	for (size_t i = 0; i < cfg->nwarnings; i++)
		say("warning: %s", cfg->warnings[i]);
	/* Descriptors: as many as the hard limit allows, then fit the limits. */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	char warning[512];
	if (proxy_config_apply_limits(cfg, rl.rlim_cur, warning, sizeof(warning)) < 0) {
		say("%s", warning);
		return 1;
	}
	if (warning[0])
		say("warning: %s", warning);
	if (check) {
		proxy_config_print(cfg, stdout);
		return 0;
	}
	pipes_limit(cfg->pipes_max);
	/* The running proxy's sockets first (a broken configuration has
	 * stopped us above without touching it), then bind everything else
	 * before the runtime starts: a port in use is a startup error with
	 * the line that asked for it.  Any failure from here to "ready"
	 * leaves the old process running as it was. */
	P.from = (struct upgrade_from){.conn = -1, .admin_fd = -1, .upgrade_fd = -1};
	if (upgrade_from) {
		if (upgrade_receive(upgrade_from, &P.from) < 0)
			return 1;
		P.upgrading = true;
	}
	if (listen_set_open(cfg, &P.from.listens, &P.ls) < 0 || open_admin_and_upgrade(cfg))
		return 1;
	upgrade_from_close(&P.from); /* what the configuration has no use for */
	P.slots_max = cfg->max_connections;
	weft_sem_init(&P.slots, P.slots_max);
	weft_mutex_init(&P.reload_lock);
	pthread_mutex_init(&P.gen_lock, NULL);
	struct log_sink sink;
	if (open_access_log_file(cfg, &sink))
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
	if (cfg->user && privs_drop(cfg->user, cfg->file, cfg->user_line) < 0)
		return 1;
	/* After the mask: the logs' threads must not take SIGTERM.  From
	 * here to say_stop, messages go through the ring (say.h). */
	if (open_access_log(&sink))
		return 1;
	int said = say_start();
	if (said < 0)
		say("warning: messages written straight to stderr: %s", strerror(-said));
	/* weft_main's steps spelled out, to keep the runtime for
	 * weft_rt_stats: start, run the main task, shut down. */
	struct weft_opts wo = {.workers = cfg->workers};
	int rc2 = weft_rt_new(&P.rt, &wo);
	intptr_t r = rc2;
	if (rc2 == 0) {
		int rr = weft_rt_run(P.rt, run, NULL, &r);
		if (rr < 0)
			r = rr;
		weft_rt_shutdown(P.rt, 0);
	}
	/* Every connection has ended: the last lines are queued.  The error,
	 * if any, comes after them, and only if stderr takes it at once: a
	 * stuck stderr holds the exit for say_stop's bounded wait, not for
	 * ever, and a full ring does not drop it. */
	accesslog_close(atomic_load_explicit(&P.log, memory_order_relaxed));
	say_stop();
	if (r < 0)
		say_last("%s", strerror((int)-r));
	return r < 0 ? 1 : r > 0; /* r > 0: stepped back from an upgrade (run) */
}
