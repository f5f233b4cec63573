// SPDX-License-Identifier: MIT
/*
 * reload.c - configuration generations and the listening sockets they
 * share (reload.h).  main.c runs the reload itself (SIGHUP) with these
 * parts; docs/proxy.md ("Reload") is the operator's side and
 * tests/proxy/reload_test.cc checks it end to end.
 *
 * A reload, in main.c's order (reload()):
 *  1. Parse the file again, read on the blocking pool (so is the access
 *     log's file opened, later); a broken one is reported with FILE:LINE
 *     and nothing else happens.
 *  2. listen_set_open: listening sockets whose address stays are taken
 *     over as they are (same descriptor: nothing queued on them is lost and
 *     they never stop listening); new addresses are bound, and a bind that
 *     fails fails the reload, with nothing changed.
 *  3. gen_build: the new generation beside the old one, sharing by name
 *     the frontends' and backends' counters and each server's state
 *     (health verdict, passive mark, active count, counters: balance.h).
 *  4. Commit, which cannot fail: the old generation's health checkers stop,
 *     the new one's start (one writer per server state at a time); the new
 *     generation is put in force; its accept loops start on every socket;
 *     then the old loops are cancelled and joined (an accept that had
 *     already taken a connection returns it, and the old generation serves
 *     it); then the sockets of dropped addresses are closed.
 *  5. The old generation loses its in-force reference; connections accepted
 *     under it hold theirs, so it is freed, config and all, when the last
 *     of them ends.
 *
 * Invariants:
 *  1. A connection's session, relay callback and access log line read only
 *     its own generation's objects (frontend, backend, server, config
 *     names) and the shared blocks those point to; the generation outlives
 *     it by its reference.
 *  2. A shared block (shared_new in balance.c) is freed by the last
 *     generation holding it; removing a server from the configuration frees
 *     its state once no generation has it.
 *  3. Every accept loop belongs to one generation and ends before that
 *     generation loses its in-force reference; so do its health checkers.
 *  4. A listening socket is either in the set in force or being closed;
 *     the set moves only under main.c's reload lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>
#include <weft/io.h>

#include "reload.h"
#include "say.h"
#include "upgrade.h"

/* Frees g and what it holds; its config too when own_cfg. */
static void gen_free(struct gen *g, bool own_cfg)
{
	for (size_t i = 0; g->fronts && i < g->cfg->nfrontends; i++)
		shared_unref(g->fronts[i].st);
	for (size_t i = 0; i < g->nbacks; i++)
		balance_fini(&g->backs[i]);
	free(g->backs);
	free(g->fronts);
	free(g->fstats);
	free(g->loops);
	if (own_cfg)
		proxy_config_free(g->cfg);
	free(g);
}

struct gen *gen_ref(struct gen *g)
{
	/* Relaxed: the caller holds a reference (or the lock that guards the
	 * one in force), so g is alive; the count publishes nothing. */
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void gen_unref(struct gen *g)
{
	/* Acq_rel, as in shared_unref: every holder's writes (counters, the
	 * relay's callback) happen before the free by the last one. */
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		gen_free(g, true);
}

/* The backend of prev named name, or NULL. */
static const struct pbackend *prev_backend(const struct gen *prev, const char *name)
{
	for (size_t i = 0; prev && i < prev->cfg->nbackends; i++)
		if (strcmp(prev->cfg->backends[i].name, name) == 0)
			return &prev->backs[i];
	return NULL;
}

/* The counters of prev's frontend named name (a new reference), or new ones. */
static struct frontend_stats *frontend_stats(const struct gen *prev, const char *name)
{
	for (size_t i = 0; prev && i < prev->cfg->nfrontends; i++)
		if (strcmp(prev->cfg->frontends[i].name, name) == 0)
			return shared_ref(prev->fronts[i].st);
	return shared_new(sizeof(struct frontend_stats));
}

int gen_build(struct proxy_config *cfg, const struct gen *prev, struct gen **out)
{
	struct gen *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	atomic_init(&g->refs, 1);
	g->number = prev ? prev->number + 1 : 1;
	g->cfg = cfg;
	g->backs = calloc(cfg->nbackends, sizeof(*g->backs));
	g->fronts = calloc(cfg->nfrontends, sizeof(*g->fronts));
	g->fstats = calloc(cfg->nfrontends, sizeof(*g->fstats));
	size_t listens = 0;
	for (size_t i = 0; i < cfg->nfrontends; i++)
		listens += cfg->frontends[i].nlistens;
	g->loops = calloc(listens, sizeof(*g->loops));
	int rc = g->backs && g->fronts && g->fstats && g->loops ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < cfg->nbackends; i++) {
		const struct proxy_backend *b = &cfg->backends[i];
		const struct proxy_server *bad;
		if ((rc = balance_init(&g->backs[i], b, prev_backend(prev, b->name), &bad)) < 0) {
			if (bad)
				say("%s:%d: server %s = %s: %s", cfg->file, bad->line,
					bad->name, bad->address,
					rc == -ENOENT ? "no such host" : strerror(-rc));
			else
				say("%s:%d: backend %s: %s", cfg->file, b->line, b->name,
					strerror(-rc));
			break;
		}
		g->nbacks++;
	}
	for (size_t i = 0; rc == 0 && i < cfg->nfrontends; i++) {
		struct frontend *f = &g->fronts[i];
		f->gen = g;
		f->cfg = &cfg->frontends[i];
		f->backend = &g->backs[f->cfg->backend_index];
		weft_sem_init(&f->slots, f->cfg->max_connections);
		if (!(f->st = g->fstats[i] = frontend_stats(prev, f->cfg->name)))
			rc = -ENOMEM;
	}
	if (rc < 0) {
		gen_free(g, false); /* cfg is still the caller's */
		return rc;
	}
	g->view = (struct admin_view){.cfg = cfg, .fronts = g->fstats, .backs = g->backs};
	*out = g;
	return 0;
}

/* The entry of have with address a and a descriptor, or -1. */
static ssize_t find(const struct listen_set *have, const struct weft_addr *a)
{
	for (size_t i = 0; have && i < have->n; i++)
		if (have->v[i].fd >= 0 && proxy_addr_equal(&have->v[i].addr, a))
			return (ssize_t)i;
	return -1;
}

int listen_set_open(const struct proxy_config *cfg, struct listen_set *have,
		    struct listen_set *out)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->nfrontends; i++)
		n += cfg->frontends[i].nlistens;
	struct lsock *v = calloc(n, sizeof(*v));
	ssize_t *from = calloc(n, sizeof(*from));
	if (!v || !from) {
		free(v);
		free(from);
		say("%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	size_t k = 0;
	int rc = 0;
	for (size_t i = 0; i < cfg->nfrontends && rc == 0; i++) {
		const struct proxy_frontend *fe = &cfg->frontends[i];
		for (size_t j = 0; j < fe->nlistens && rc == 0; j++, k++) {
			const struct proxy_listen *l = &fe->listens[j];
			v[k].addr = l->addr;
			if ((from[k] = find(have, &l->addr)) >= 0)
				continue;
			struct weft_listen_opts lo = {.backlog = 4096};
			if ((v[k].fd = weft_sock_listen(&l->addr, &lo)) < 0) {
				rc = v[k].fd;
				say("%s:%d: listen %s: %s", cfg->file, l->line, l->address,
					strerror(-rc));
				break;
			}
			char where[WEFT_ADDR_STRLEN];
			struct weft_addr bound;
			if (weft_sock_local_addr(v[k].fd, &bound) == 0 &&
			    weft_addr_format(&bound, where, sizeof(where)) > 0)
				say("frontend %s listening on %s", fe->name, where);
		}
	}
	for (size_t i = 0; i < k; i++) {
		if (rc < 0) {
			if (from[i] < 0)
				close(v[i].fd); /* bound here; have is left as it was */
		} else if (from[i] >= 0) {
			v[i].fd = have->v[from[i]].fd;
			have->v[from[i]].fd = -1;
		}
	}
	free(from);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = (struct listen_set){.v = v, .n = n};
	return 0;
}

void listen_set_close(struct listen_set *s, const char *why)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].fd < 0)
			continue;
		upgrade_closing_listener(s->v[i].fd, why);
		close(s->v[i].fd);
	}
	free(s->v);
	*s = (struct listen_set){0};
}
