// SPDX-License-Identifier: MIT
/*
 * request.c - the bytes weft-bench sends, built once before the run so
 * that the request path only points at them: URLs grouped into endpoints
 * (one address each), each endpoint's requests laid out back to back in
 * the order a connection sends them, and the echo mode's pseudo-random
 * byte stream.  bench.h ("struct endpoint") describes the layouts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"

/* The echo stream's period: a prime, so that messages of most sizes start
 * at different points of it and a stale or reordered echo shows. */
#define ECHO_PERIOD 65521u

static bool user_has(const struct bench *b, const char *name)
{
	size_t n = strlen(name);
	for (unsigned i = 0; i < b->nheaders; i++)
		if (!strncasecmp(b->headers[i], name, n) && b->headers[i][n] == ':')
			return true;
	return false;
}

/* Writes the request for u into out (NULL: only measures); returns its
 * length. */
static size_t format_request(const struct bench *b, const struct url *u, char *out)
{
	size_t len = 0;
	char *p = out;
#define PUT(s, n)                                  \
	do {                                       \
		if (p)                             \
			memcpy(p + len, (s), (n)); \
		len += (n);                        \
	} while (0)
#define PUTS(s) PUT((s), strlen(s))
	PUTS(b->method ? b->method : "GET");
	PUTS(" ");
	PUTS(u->path);
	PUTS(" HTTP/1.1\r\n");
	if (!user_has(b, "Host")) {
		PUTS("Host: ");
		PUTS(b->host ? b->host : u->host);
		PUTS("\r\n");
	}
	for (unsigned i = 0; i < b->nheaders; i++) {
		PUTS(b->headers[i]);
		PUTS("\r\n");
	}
	if (b->body && !user_has(b, "Content-Length")) {
		char cl[48];
		snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", b->body_len);
		PUTS(cl);
	}
	PUTS("\r\n");
	if (b->body)
		PUT(b->body, b->body_len);
#undef PUTS
#undef PUT
	return len;
}

static enum weft_http1_method method_id(const char *m)
{
	if (m && !strcmp(m, "HEAD"))
		return WEFT_HTTP1_HEAD;
	if (m && !strcmp(m, "CONNECT"))
		return WEFT_HTTP1_CONNECT;
	return WEFT_HTTP1_GET;
}

static int build_http(const struct bench *b, struct endpoint *e)
{
	unsigned n = e->nurls + b->depth;
	e->off = malloc((n + 1) * sizeof(*e->off));
	if (!e->off)
		return -ENOMEM;
	e->off[0] = 0;
	for (unsigned s = 0; s < n; s++)
		e->off[s + 1] = e->off[s] + format_request(b, &b->urls[e->urls[s % e->nurls]], NULL);
	e->ring_len = e->off[n];
	e->ring = malloc(e->ring_len);
	if (!e->ring)
		return -ENOMEM;
	for (unsigned s = 0; s < n; s++)
		format_request(b, &b->urls[e->urls[s % e->nurls]], e->ring + e->off[s]);
	e->method = method_id(b->method);
	return 0;
}

static int build_echo(const struct bench *b, struct endpoint *e)
{
	e->period = ECHO_PERIOD;
	e->ring_len = ECHO_PERIOD + (size_t)b->depth * b->size;
	e->ring = malloc(e->ring_len);
	if (!e->ring)
		return -ENOMEM;
	/* xorshift32, fixed seed: the same stream in every run. */
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < ECHO_PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		e->ring[i] = (char)(x >> 24);
	}
	for (size_t i = ECHO_PERIOD; i < e->ring_len; i++)
		e->ring[i] = e->ring[i - ECHO_PERIOD];
	return 0;
}

int request_build(struct bench *b)
{
	b->eps = calloc(b->nurls, sizeof(*b->eps));
	if (!b->eps)
		return -ENOMEM;
	for (unsigned i = 0; i < b->nurls; i++) {
		struct endpoint *e = NULL;
		for (unsigned j = 0; j < b->neps && !e; j++)
			if (!strcmp(b->eps[j].name, b->urls[i].hostport))
				e = &b->eps[j];
		if (!e) {
			e = &b->eps[b->neps++];
			e->name = strdup(b->urls[i].hostport);
			e->urls = malloc(b->nurls * sizeof(*e->urls));
			if (!e->name || !e->urls)
				return -ENOMEM;
		}
		e->urls[e->nurls++] = i;
	}
	for (unsigned j = 0; j < b->neps; j++) {
		int r = b->proto == P_ECHO ? build_echo(b, &b->eps[j]) : build_http(b, &b->eps[j]);
		if (r < 0)
			return r;
	}
	return 0;
}
