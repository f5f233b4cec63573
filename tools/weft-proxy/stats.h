// SPDX-License-Identifier: MIT
/*
 * stats.h - weft-proxy's counters: per frontend, per server and per
 * backend, bumped on the data path by main.c and read by admin.c for
 * /metrics and /stats.
 *
 * Every field is an atomic updated with memory_order_relaxed and no lock:
 * each counter is a statistic on its own, nothing is published through
 * it, and a reader only needs each value to be one that was stored (a
 * scrape is a racy snapshot; two counters read together may disagree by
 * the connections in flight between the two loads).  Writers: any worker;
 * readers: the admin task.  balance.h keeps the server fields it needs
 * for choosing (active, connect attempts, connect errors); this file
 * keeps the rest.
 */
#ifndef WEFT_PROXY_STATS_H
#define WEFT_PROXY_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds of the time histograms (connect, queue), in microseconds;
 * a last, implicit bucket (+Inf) takes the rest.  Fixed, so that an update
 * is one relaxed add and the series never change shape; one set for both,
 * from a loopback connect to a long queue_timeout. */
#define STATS_TIME_BUCKETS 16
static const uint64_t stats_time_le_us[STATS_TIME_BUCKETS] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000,
};

/* Durations by size: bucket i counts those of at most stats_time_le_us[i]
 * and more than the bound before (not cumulative; /metrics sums them); the
 * last one counts the rest. */
struct stats_time {
	_Atomic uint64_t buckets[STATS_TIME_BUCKETS + 1];
	_Atomic uint64_t ns_sum;
	_Atomic uint64_t count;
};

/* Data paths of the byte counters by path (relay.c's top comment). */
enum stats_path {
	STATS_BUFFERED, /* through a buffer: the watch's bytes, drain_buffered, a PROXY header's tail */
	STATS_SPLICED,  /* through a pipe, never in user space */
	STATS_PATHS,
};

struct frontend_stats {
	_Atomic uint64_t total;       /* connections accepted */
	_Atomic uint64_t active;      /* accepted and not yet closed */
	_Atomic uint64_t bytes_in;    /* client to server, counted as forwarded */
	_Atomic uint64_t bytes_out;   /* server to client, likewise */
	/* The same bytes by data path: path_bytes[d][p], d 0 in and 1 out;
	 * the paths of a direction sum to its bytes_ counter (both are added
	 * after the same send, so a scrape may find them a send apart).  Per
	 * frontend, as the byte counters are, and next to them: one more add
	 * per send on a line the send dirties anyway.  A frontend has one
	 * backend, whose data_path chooses the path. */
	_Atomic uint64_t path_bytes[2][STATS_PATHS];
	_Atomic uint64_t no_server;   /* closed because no server could be connected */
	_Atomic uint64_t proxy_errors;   /* accept_proxy: a malformed header */
	_Atomic uint64_t proxy_timeouts; /* accept_proxy: no whole header in time */
};

struct server_stats {
	_Atomic uint64_t total;     /* connections established through it */
	_Atomic uint64_t bytes_in;  /* client to server, counted as forwarded */
	_Atomic uint64_t bytes_out; /* server to client, likewise */
};

struct backend_stats {
	_Atomic uint64_t retries;   /* connect attempts after a failed one */
	/* Connections waiting for a server slot now, under any generation:
	 * queue_size bounds them all, as the servers' limits count the
	 * connections of every generation. */
	_Atomic uint32_t queued;
	/* How waits for a slot ended badly: the queue was full (the
	 * connection was reset at once), queue_timeout passed, the client
	 * left while it waited. */
	_Atomic uint64_t queue_full, queue_timeouts, queue_abandoned;
	struct stats_time connect; /* successful connects, by time taken */
	struct stats_time queue;   /* waits for a slot that got one, by length */
};

/* Counts one duration of ns nanoseconds in h.  Any thread; no failure
 * path. */
static inline void stats_time_add(struct stats_time *h, uint64_t ns)
{
	uint64_t us = ns / 1000;
	size_t i = 0;
	while (i < STATS_TIME_BUCKETS && us > stats_time_le_us[i])
		i++;
	/* Relaxed: independent statistics (see the file comment). */
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->ns_sum, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* A relaxed load and a relaxed add, spelled short for the many counters. */
#define STAT_GET(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STAT_ADD(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)
#define STAT_SUB(x, n) atomic_fetch_sub_explicit(&(x), (n), memory_order_relaxed)

#endif
