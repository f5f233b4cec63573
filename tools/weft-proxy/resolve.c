// SPDX-License-Identifier: MIT
/*
 * resolve.c - looking up the host names of servers again while the proxy
 * runs, so that a server whose name moves to another address (a rebuilt
 * instance, a failed-over database, a Kubernetes service) is followed
 * without a reload.
 *
 * A server written as host:port is looked up when its generation is built
 * (balance_init).  With its backend's resolve_interval, one task per such
 * server (a refresher) looks it up again every interval, with
 * weft_addr_resolve (getaddrinfo on the blocking pool, so /etc/hosts and
 * the system's resolver settings apply as at start), and points the server
 * at the result with balance_set_addr: new connections and checks go
 * there, connections already made stay where they are.  A task each, not
 * one for all: a lookup that hangs (a name server that does not answer
 * holds getaddrinfo for its whole timeout, seconds) holds up no other
 * name.
 *
 * Which address, when a name has several: the one in use, as long as the
 * answer still has it, else the first of the answer.  A resolver that
 * rotates its answers then moves no server, and only an address that is
 * gone moves one.
 *
 * A lookup that fails keeps the address last found: a resolver outage must
 * not take away servers that still work.  That is said once, when a run of
 * failures starts, and again when a lookup succeeds after it.
 *
 * Like the health checkers, the refreshers belong to a generation: a reload
 * stops the old one's (resolve_stop) and starts the new one's, whose
 * balance_init has just looked every name up anyway.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "resolve.h"
#include "say.h"
#include "tasks.h"

#define ANSWER_MAX 64 /* addresses of one name considered; weft_addr_resolve keeps no more */

struct refresher {
	struct pbackend *pb;
	size_t i;     /* the server, in pb */
	bool failing; /* the last lookup failed (logged once) */
};

struct resolve_run {
	struct weft_group *group;
	struct refresher *rs;
	size_t n;
};

/* The address of answer[0, n) to use for s: the one s has, if there. */
static const struct weft_addr *choose(const struct pserver *s, const struct weft_addr *answer,
				      size_t n)
{
	struct weft_addr now;
	balance_addr(s, &now);
	for (size_t i = 0; i < n; i++)
		if (proxy_addr_equal(&answer[i], &now))
			return &answer[i];
	return &answer[0];
}

/* Looks r's server up once, into answer (ANSWER_MAX long).  Returns
 * -ECANCELED when the refresher is being stopped, else 0. */
static int refresh(struct refresher *r, struct weft_addr *answer)
{
	struct pserver *s = &r->pb->servers[r->i];
	const char *bname = r->pb->cfg->name, *sname = s->cfg->name;
	int n = weft_addr_resolve(s->cfg->address, answer, ANSWER_MAX);
	if (n == -ECANCELED)
		return n;
	STAT_ADD(s->st->lookups, 1);
	if (n < 0)
		STAT_ADD(s->st->lookup_failures, 1);
	struct weft_addr was;
	balance_addr(s, &was);
	char a[WEFT_ADDR_STRLEN], b[WEFT_ADDR_STRLEN];
	(void)weft_addr_format(&was, b, sizeof(b));
	if (n < 0) {
		if (!r->failing)
			say("server %s/%s: looking up %s failed (%s); connections go on to %s",
				bname, sname, s->cfg->address,
				n == -ENOENT ? "no such host" : strerror(-n), b);
		r->failing = true;
		return 0;
	}
	const struct weft_addr *to = choose(s, answer, (size_t)n);
	(void)weft_addr_format(to, a, sizeof(a));
	if (balance_set_addr(s, to))
		say("server %s/%s: %s is now %s (was %s)", bname, sname, s->cfg->address, a, b);
	else if (r->failing)
		say("server %s/%s: %s resolves again, to %s", bname, sname, s->cfg->address, a);
	r->failing = false;
	return 0;
}

static intptr_t refresher(void *arg)
{
	struct refresher *r = arg;
	struct weft_addr *answer = malloc(ANSWER_MAX * sizeof(*answer));
	if (!answer) {
		say("server %s/%s: out of memory; its host name is not looked up again",
		    r->pb->cfg->name, r->pb->servers[r->i].cfg->name);
		return -ENOMEM;
	}
	/* The generation has just looked every name up: the first lookup
	 * comes an interval later.  Cancellation ends the sleep or the
	 * lookup with -ECANCELED. */
	while (weft_sleep(r->pb->cfg->resolve_interval_ns) == 0 && refresh(r, answer) == 0)
		;
	free(answer);
	return 0;
}

/* Whether server i of pb is looked up again. */
static bool needs_refresher(const struct pbackend *pb, size_t i)
{
	return pb->cfg->resolve_interval_ns && pb->servers[i].cfg->resolve;
}

int resolve_start(struct pbackend *backs, size_t nbackends, struct resolve_run **out)
{
	*out = NULL;
	size_t n = 0;
	for (size_t b = 0; b < nbackends; b++)
		for (size_t i = 0; i < backs[b].n; i++)
			n += needs_refresher(&backs[b], i);
	if (n == 0)
		return 0;
	struct resolve_run *run = calloc(1, sizeof(*run));
	struct refresher *rs = calloc(n, sizeof(*rs));
	struct weft_group *g = weft_group_new(0);
	if (!run || !rs || !g) {
		if (g)
			weft_group_free(g);
		free(rs);
		free(run);
		return -ENOMEM;
	}
	run->group = g;
	run->rs = rs;
	struct weft_spawn_opts o = {.name = "resolve"};
	for (size_t b = 0; b < nbackends; b++)
		for (size_t i = 0; i < backs[b].n; i++) {
			if (!needs_refresher(&backs[b], i))
				continue;
			rs[run->n] = (struct refresher){.pb = &backs[b], .i = i};
			if (weft_group_spawn(g, refresher, &rs[run->n], &o) < 0) {
				/* Refreshers have started: stop them before
				 * their array goes. */
				resolve_stop(run);
				return -ENOMEM;
			}
			run->n++;
		}
	*out = run;
	return 0;
}

void resolve_stop(struct resolve_run *r)
{
	if (!r)
		return;
	tasks_stop(r->group);
	free(r->rs);
	free(r);
}
