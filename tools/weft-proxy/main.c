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
 *  4. relay.c takes both sockets; the task ends.  From then on an idle
 *     connection holds no task and no buffer.
 *
 * SIGTERM or SIGINT: the listeners stop, established connections get up
 * to drain_timeout to finish, then the runtime's shutdown closes the rest
 * and the program exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>
#include <weft/io.h>
#include <weft/net.h>
#include <weft/sync.h>

#include "balance.h"
#include "config.h"
#include "proxy_proto.h"
#include "relay.h"

#define VERSION "0.1.0"

struct frontend {
	const struct proxy_frontend *cfg;
	struct pbackend *backend;
	int *fds;                   /* listening sockets, one per listen */
	struct weft_listener **listeners;
	struct weft_task **loops;
	struct weft_sem slots;      /* per-frontend max_connections */
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
};

static struct proxy P;

struct session {
	struct frontend *f;
	int client;
	struct pserver *server;
	struct weft_addr peer;
};

static void release(struct session *s)
{
	if (s->f->cfg->max_connections)
		weft_sem_release(&s->f->slots);
	weft_sem_release(&P.slots);
	atomic_fetch_sub(&P.active, 1);
	free(s);
}

static void relay_done(void *arg, enum relay_end end, const uint64_t bytes[2], uint64_t ns)
{
	struct session *s = arg;
	(void)end;
	(void)bytes;
	(void)ns;
	balance_done(s->server);
	/* A slot freed: a connection waiting for this server may go. */
	weft_mutex_lock(&P.qlock);
	weft_cond_broadcast(&P.qcond);
	weft_mutex_unlock(&P.qlock);
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
	struct weft_scope sc;
	weft_scope_deadline(&sc, deadline - now);
	int rc = weft_mutex_lock(&P.qlock);
	if (rc == 0) {
		rc = weft_cond_wait(&P.qcond, &P.qlock);
		weft_mutex_unlock(&P.qlock);
	}
	weft_scope_end(&sc);
	atomic_fetch_sub(&pb->queued, 1);
	return rc;
}

static intptr_t session(void *arg)
{
	struct session *s = arg;
	const struct proxy_backend *b = s->f->backend->cfg;
	struct pserver *tried[16];
	size_t ntried = 0;
	uint64_t queue_until = weft_now() + b->queue_timeout_ns;
	int server = -1;
	for (uint32_t attempt = 0; attempt <= b->retries;) {
		int why;
		struct pserver *srv = balance_pick(s->f->backend, &s->peer, tried, ntried, &why);
		if (!srv) {
			if (why == -EBUSY && wait_for_slot(s->f->backend, queue_until) == 0)
				continue;
			break;
		}
		server = dial_server(b, srv);
		balance_connect_result(srv, server >= 0);
		if (server >= 0) {
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
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(s->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		weft_close(s->client);
		atomic_fetch_add(&P.refused, 1);
		release(s);
		return 0;
	}
	weft_tcp_nodelay(server, 1);
	if (b->send_proxy != PROXY_SEND_PROXY_OFF) {
		char hdr[PROXY_PROTO_ENCODE_MAX];
		struct weft_addr dst;
		ssize_t n = weft_sock_local_addr(s->client, &dst) < 0 ? -EINVAL
			    : b->send_proxy == PROXY_SEND_PROXY_V1
				    ? proxy_proto_v1(hdr, sizeof(hdr), &s->peer, &dst)
				    : proxy_proto_v2(hdr, sizeof(hdr), &s->peer, &dst);
		if (n < 0 || weft_sock_send_all(server, hdr, (size_t)n, NULL) < 0) {
			weft_close(server);
			weft_close(s->client);
			balance_done(s->server);
			release(s);
			return 0;
		}
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
		weft_close(s->client);
		balance_done(s->server);
		release(s);
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
		s->f = f;
		s->client = fd;
		if (weft_sock_peer_addr(fd, &s->peer) < 0)
			s->peer.len = 0;
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
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	int sig = weft_signal_wait(&stop);
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
	fprintf(stderr, "weft-proxy: stopped; %llu connections closed at the drain deadline\n",
		(unsigned long long)atomic_load(&P.active));
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
	if (!P.fronts)
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
	weft_sem_init(&P.slots, P.cfg->max_connections);
	weft_mutex_init(&P.qlock);
	weft_cond_init(&P.qcond);
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	struct weft_opts wo = {.workers = P.cfg->workers};
	intptr_t r = weft_main(run, NULL, &wo);
	if (r < 0) {
		fprintf(stderr, "weft-proxy: %s\n", strerror((int)-r));
		return 1;
	}
	return 0;
}
