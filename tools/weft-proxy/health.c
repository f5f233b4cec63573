// SPDX-License-Identifier: MIT
/*
 * health.c - weft-proxy's active health checks: a checker task per server
 * of every backend with health_check on, deciding the server's verdict
 * (struct phealth in balance.h) that balance_pick obeys.  health.h is the
 * API; docs/proxy.md (health_check) the operator's side; the tests are
 * tests/proxy/health_test.cc.
 *
 * A check: connect within `timeout` to the server's address (for a host
 * name, what resolve.c last found), on the check port if one is set; with
 * send_proxy, send the PROXY header a check connection carries (v2: the
 * LOCAL command, as HAProxy's check-send-proxy does; v1: "PROXY
 * UNKNOWN"); for `http PATH`, send
 * "GET PATH HTTP/1.0" with Host and "Connection: close" and read the answer's
 * head with weft_http1_parse_response: a 2xx passes (interim 1xx answers
 * are skipped), anything else fails.  The whole check, connect to status
 * line, is one deadline scope of `timeout`.  The socket is closed in every
 * case.
 *
 * States of one server, with the function behind each transition:
 *
 *              fall failures in a row (record)
 *     +----+ ----------------------------------> +------+
 *     | UP |                                      | DOWN |
 *     +----+ <---------------------------------- +------+
 *              rise passes in a row (record)
 *
 * Invariants:
 *  1. phealth.up is written only by the server's checker, in record; with
 *     health_check off no checker exists and up is true (balance_init for
 *     a new server; health_start for one whose state comes from a
 *     generation that had checks, once that generation's checkers are
 *     stopped, so never beside a checker).
 *  2. streak counts the results in a row that disagree with up: failures
 *     while UP, passes while DOWN.  A result that agrees resets it to 0.
 *     It reaches fall (UP) or rise (DOWN) exactly when the state flips, and
 *     is 0 again right after.
 *  3. A server starts UP, as HAProxy's default `init-state up` does: no
 *     connection is refused at start-up while the first checks run.  Until
 *     its first check has a result, a single failure takes it DOWN (nothing
 *     ever showed that it works); after that, fall failures are needed.
 *  4. A check cut short by cancellation records nothing: shutdown never
 *     logs a server as down.
 *  5. Passive marking (balance_connect_result) is a separate state that
 *     neither reads nor writes phealth; a server is eligible when both
 *     agree.  The one link: the transition to UP lifts a passive mark
 *     (balance_passive_clear), since rise connects in a row just worked;
 *     else a server that came back would wait out the mark's timer.  It
 *     also starts the server's slowstart ramp (balance_came_back), as
 *     health_start does for a server it brings up by turning checks off.
 *  6. A server in maint (enum server_admin, set from the admin listener)
 *     is not checked: its checker keeps its timing but skips the check, and
 *     a check under way when maint is set records nothing.  The verdict
 *     and counts stay as they were, so a server that was down in maint is
 *     still down when it is made ready again, until rise checks pass (the
 *     first one an interval later at most).  Under drain checks go on.
 *
 * Timing: the first check of a server comes after a random delay in
 * [0, min(interval, 1 s)), then each next one an interval (give or take up
 * to an eighth, at random) after the previous ended, so that servers of one
 * backend, started together, are not checked in lockstep.
 *
 * Tasks: health_start spawns the checkers into one weft_group, whose
 * handle (struct health_run) the caller keeps; health_stop cancels the
 * group, waits until every checker has ended (each at its next suspension
 * point: sleep, connect, send, recv) and frees it.  A reload stops the old
 * generation's checkers before it starts the new one's, so that a server's
 * shared state (struct pserver_state) has one writer at a time
 * (invariant 1), and the counts and verdict carry over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>
#include <weft/http1.h>
#include <weft/io.h>
#include <weft/net.h>

#include "health.h"
#include "proxy_proto.h"
#include "say.h"
#include "tasks.h"

/* An answer's head must fit here (status line and header fields). */
#define ANSWER_MAX 8192
#define ANSWER_FIELDS 100

struct checker {
	struct pbackend *pb;
	struct pserver *s;
	uint64_t rng;   /* jitter; this checker's own */
};

struct health_run {
	struct weft_group *group;
	struct checker *checkers;
	size_t n;
};

static uint64_t next_random(uint64_t *state)
{
	/* splitmix64: enough spread for jitter. */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

const char *health_step_name(enum health_step step)
{
	switch (step) {
	case HEALTH_STEP_NONE: return "";
	case HEALTH_STEP_CONNECT: return "connect";
	case HEALTH_STEP_SEND: return "send";
	case HEALTH_STEP_RECV: return "recv";
	case HEALTH_STEP_RESPONSE: return "response";
	case HEALTH_STEP_STATUS: return "status";
	}
	return "?";
}

int health_format_error(const struct health_state *st, char *buf, size_t size)
{
	int err = st->last_error;
	const char *step = health_step_name(st->step);
	if (err == 0 || st->step == HEALTH_STEP_NONE)
		return snprintf(buf, size, "%s", "");
	if (st->step == HEALTH_STEP_STATUS)
		return snprintf(buf, size, "status %d", err);
	if (st->step == HEALTH_STEP_RECV && err == -EPIPE)
		return snprintf(buf, size, "recv: closed before a whole answer");
	if (st->step == HEALTH_STEP_RESPONSE) {
		const char *why = err == -EMSGSIZE ? "head too long"
				  : err == -E2BIG  ? "too many header fields"
				  : err == -EPROTONOSUPPORT ? "not HTTP/1.0 or 1.1"
							    : "not an HTTP answer";
		return snprintf(buf, size, "response: %s", why);
	}
	return snprintf(buf, size, "%s: %s", step, strerror(-err));
}

/* Sends the PROXY header of a check connection and, for http, the request,
 * in one buffer.  0 or -errno. */
static int send_opening(int fd, const struct proxy_backend *b, const struct pserver *s)
{
	char out[PROXY_PROTO_ENCODE_MAX + 512];
	size_t len = 0;
	ssize_t n = 0;
	if (s->cfg->send_proxy == PROXY_SEND_PROXY_V2)
		n = proxy_proto_v2_local(out, sizeof(out));
	else if (s->cfg->send_proxy == PROXY_SEND_PROXY_V1)
		n = proxy_proto_v1(out, sizeof(out), NULL, NULL); /* PROXY UNKNOWN */
	if (n < 0)
		return (int)n;
	len = (size_t)n;
	if (b->check.kind == PROXY_CHECK_HTTP) {
		/* Host: the address as written (host:port or [v6]:port); a unix
		 * socket has no authority, so localhost stands in. */
		const char *host = s->addr.sa.sa_family == AF_UNIX ? "localhost" : s->cfg->address;
		int m = snprintf(out + len, sizeof(out) - len,
				 "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n"
				 "User-Agent: weft-proxy-check\r\n\r\n",
				 b->check.path, host);
		if (m < 0 || (size_t)m >= sizeof(out) - len)
			return -ENOSPC; /* path and address are bounded: not reached */
		len += (size_t)m;
	}
	if (len == 0)
		return 0;
	ssize_t w = weft_sock_send_all(fd, out, len, NULL);
	return w < 0 ? (int)w : 0;
}

/* Reads the answer's head: its status (>= 200, or 101), or -errno with
 * *step set. */
static int read_status(int fd, enum health_step *step)
{
	char buf[ANSWER_MAX];
	struct weft_http1_header fields[ANSWER_FIELDS];
	struct weft_http1_parser p;
	struct weft_http1_limits lim = {.max_head = sizeof(buf)};
	struct weft_http1_head h;
	size_t len = 0;
	weft_http1_parser_init(&p, &lim, fields, ANSWER_FIELDS);
	for (;;) {
		if (len == sizeof(buf)) {
			*step = HEALTH_STEP_RESPONSE;
			return -EMSGSIZE;
		}
		ssize_t n = weft_recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0) {
			*step = HEALTH_STEP_RECV;
			return n == 0 ? -EPIPE : (int)n;
		}
		len += (size_t)n;
		for (;;) {
			int rc = weft_http1_parse_response(&p, buf, len, &h, WEFT_HTTP1_GET);
			if (rc == -EAGAIN)
				break;
			if (rc < 0) {
				*step = HEALTH_STEP_RESPONSE;
				return rc;
			}
			if (h.status >= 200 || h.status == 101)
				return h.status;
			/* An interim answer (100 Continue, 103 Early Hints): the
			 * final one follows it; parse what came after. */
			memmove(buf, buf + rc, len - (size_t)rc);
			len -= (size_t)rc;
		}
	}
}

/* One check of c's server.  0 when it passed; else -errno or the HTTP
 * status, with *step saying where it failed. */
static int check_once(struct checker *c, enum health_step *step)
{
	const struct proxy_backend *b = c->pb->cfg;
	struct weft_scope sc;
	weft_scope_deadline(&sc, b->check.timeout_ns);
	*step = HEALTH_STEP_CONNECT;
	struct weft_addr to;
	balance_addr(c->s, &to);
	/* A check port (config.c refuses one for a unix server). */
	uint32_t port = c->s->cfg->check_port;
	if (port && to.sa.sa_family == AF_INET)
		to.in.sin_port = htons((uint16_t)port);
	else if (port && to.sa.sa_family == AF_INET6)
		to.in6.sin6_port = htons((uint16_t)port);
	int rc = weft_sock_connect(&to);
	if (rc >= 0) {
		int fd = rc;
		*step = HEALTH_STEP_SEND;
		rc = send_opening(fd, b, c->s);
		if (rc == 0 && b->check.kind == PROXY_CHECK_HTTP) {
			rc = read_status(fd, step);
			if (rc >= 0) {
				*step = HEALTH_STEP_STATUS;
				rc = rc >= 200 && rc <= 299 ? 0 : rc;
			}
		}
		weft_close(fd); /* not cancellable, not bounded by the deadline */
	}
	weft_scope_end(&sc);
	if (rc == 0)
		*step = HEALTH_STEP_NONE;
	return rc;
}

/* Servers of pb whose checks hold them up. */
static size_t verdict_up(const struct pbackend *pb)
{
	size_t up = 0;
	for (size_t i = 0; i < pb->n; i++)
		up += atomic_load_explicit(&pb->servers[i].st->health.up, memory_order_relaxed);
	return up;
}

/* Counts a check's result and moves the state (the diagram above). */
static void record(struct checker *c, int result, enum health_step step)
{
	struct phealth *h = &c->s->st->health;
	const struct proxy_health_check *hc = &c->pb->cfg->check;
	bool pass = result == 0;
	/* Relaxed throughout: this task is the only writer (invariant 1) and
	 * each field stands alone (struct phealth). */
	/* Invariant 3's "first": no check of this server has had a result,
	 * in this generation or one before (the count carries over). */
	bool first = atomic_fetch_add_explicit(&h->checks, 1, memory_order_relaxed) == 0;
	if (!pass)
		atomic_fetch_add_explicit(&h->failed, 1, memory_order_relaxed);
	atomic_store_explicit(&h->last_error, result, memory_order_relaxed);
	atomic_store_explicit(&h->last_step, (int)step, memory_order_relaxed);
	bool up = atomic_load_explicit(&h->up, memory_order_relaxed);
	if (pass == up) {
		atomic_store_explicit(&h->streak, 0, memory_order_relaxed);
		return;
	}
	uint32_t streak = atomic_load_explicit(&h->streak, memory_order_relaxed) + 1;
	uint32_t need = up ? (first ? 1 : hc->fall) : hc->rise;
	if (streak < need) {
		atomic_store_explicit(&h->streak, streak, memory_order_relaxed);
		return;
	}
	if (!up) {
		balance_passive_clear(c->s); /* invariant 5 */
		balance_came_back(c->s);
	}
	atomic_store_explicit(&h->up, !up, memory_order_relaxed);
	atomic_store_explicit(&h->streak, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->changes, 1, memory_order_relaxed);
	atomic_store_explicit(&h->changed_at, weft_now(), memory_order_relaxed);

	const char *bname = c->pb->cfg->name, *sname = c->s->cfg->name;
	size_t nup = verdict_up(c->pb);
	if (up) {
		struct health_state st = {.last_error = result, .step = step};
		char why[160];
		health_format_error(&st, why, sizeof(why));
		say("server %s/%s is down (%s); %zu of %zu up in backend %s", bname, sname, why,
			nup, c->pb->n, bname);
		if (nup == 0)
			say("backend %s has no server up", bname);
	} else {
		say("server %s/%s is up (%u check%s passed); %zu of %zu up in backend %s",
			bname, sname, hc->rise, hc->rise == 1 ? "" : "s", nup, c->pb->n, bname);
	}
}

static intptr_t checker(void *arg)
{
	struct checker *c = arg;
	const struct proxy_health_check *hc = &c->pb->cfg->check;
	uint64_t first = hc->interval_ns < WEFT_SEC ? hc->interval_ns : WEFT_SEC;
	uint64_t pause = next_random(&c->rng) % first;
	for (;;) {
		/* -ECANCELED ends the loop; -ENOMEM (no timer) only shortens a pause. */
		if (weft_sleep(pause) == -ECANCELED || weft_cancelled())
			break;
		/* Invariant 6: no check of a server in maint, and none that
		 * ran into the change counts. */
		if (balance_admin(c->s) != SERVER_MAINT) {
			enum health_step step;
			int rc = check_once(c, &step);
			if (weft_cancelled())
				break; /* invariant 4: a check cut short counts for nothing */
			/* Nor does one that could not start for a shortage of
			 * ours (balance_local_error). */
			bool ours = rc < 0 && step == HEALTH_STEP_CONNECT && balance_local_error(rc);
			if (balance_admin(c->s) != SERVER_MAINT && !ours)
				record(c, rc, step);
		}
		/* interval +- interval/8 */
		uint64_t spread = hc->interval_ns / 4;
		pause = hc->interval_ns - hc->interval_ns / 8 + (spread ? next_random(&c->rng) % (spread + 1) : 0);
	}
	return 0;
}

int health_start(struct pbackend *backs, size_t nbackends, struct health_run **out)
{
	*out = NULL;
	size_t n = 0;
	for (size_t i = 0; i < nbackends; i++) {
		if (backs[i].cfg->check.kind != PROXY_CHECK_OFF) {
			n += backs[i].n;
			continue;
		}
		/* Invariant 1: unchecked servers are up, also those whose state
		 * a generation with checks left down. */
		for (size_t j = 0; j < backs[i].n; j++) {
			struct phealth *h = &backs[i].servers[j].st->health;
			if (!atomic_load_explicit(&h->up, memory_order_relaxed))
				balance_came_back(&backs[i].servers[j]);
			atomic_store_explicit(&h->up, true, memory_order_relaxed);
			atomic_store_explicit(&h->streak, 0, memory_order_relaxed);
		}
	}
	if (n == 0)
		return 0;
	struct health_run *r = calloc(1, sizeof(*r));
	struct checker *cs = calloc(n, sizeof(*cs));
	struct weft_group *g = weft_group_new(0);
	if (!r || !cs || !g) {
		if (g)
			weft_group_free(g);
		free(cs);
		free(r);
		return -ENOMEM;
	}
	r->group = g;
	r->checkers = cs;
	r->n = n;
	size_t k = 0;
	uint64_t seed = weft_now();
	for (size_t i = 0; i < nbackends; i++) {
		if (backs[i].cfg->check.kind == PROXY_CHECK_OFF)
			continue;
		for (size_t j = 0; j < backs[i].n; j++, k++) {
			struct checker *c = &cs[k];
			c->pb = &backs[i];
			c->s = &backs[i].servers[j];
			c->rng = seed ^ (0x9e3779b97f4a7c15ull * (k + 1));
			struct weft_spawn_opts o = {.name = "health check"};
			if (weft_group_spawn(g, checker, c, &o) < 0) {
				/* Checkers have started: stop them before their array goes. */
				health_stop(r);
				return -ENOMEM;
			}
		}
	}
	*out = r;
	return 0;
}

void health_stop(struct health_run *r)
{
	if (!r)
		return;
	tasks_stop(r->group);
	free(r->checkers);
	free(r);
}

void health_server_state(const struct pserver *s, struct health_state *out)
{
	const struct phealth *h = &s->st->health;
	/* Relaxed: a racy snapshot of independent fields (struct phealth). */
	out->checked = s->backend && s->backend->check.kind != PROXY_CHECK_OFF;
	out->up = atomic_load_explicit(&h->up, memory_order_relaxed);
	out->passive_down = atomic_load_explicit(&s->st->down_until, memory_order_relaxed) > weft_now();
	out->eligible = out->up && !out->passive_down;
	out->streak = atomic_load_explicit(&h->streak, memory_order_relaxed);
	out->checks = atomic_load_explicit(&h->checks, memory_order_relaxed);
	out->failed = atomic_load_explicit(&h->failed, memory_order_relaxed);
	out->changes = atomic_load_explicit(&h->changes, memory_order_relaxed);
	out->changed_at = atomic_load_explicit(&h->changed_at, memory_order_relaxed);
	out->last_error = atomic_load_explicit(&h->last_error, memory_order_relaxed);
	out->step = (enum health_step)atomic_load_explicit(&h->last_step, memory_order_relaxed);
}
