// SPDX-License-Identifier: MIT
/*
 * schedule.c - when each request of an open loop is due.  --rate A:B
 * offers A requests/s through the warm-up, then a rate rising linearly
 * from A to B over the measured duration D (--rate R is A = B = R):
 *
 *	r(t) = A                      for t < W (the warm-up)
 *	r(t) = A + k (t - W),  k = (B - A) / D,   after it
 *
 * The requests due by time t are N(t), the integral of r; request j (from
 * 0, a ticket shared by all connections) is due when N(t) = j.  After the
 * warm-up that is the root of A u + k u^2 / 2 = j - A W in u = t - W,
 * taken in the form 2 x / (A + sqrt(A^2 + 2 k x)), which needs no
 * division by k (zero for a constant rate) and does not cancel.  A falling
 * ramp (k < 0) has N(t) peak at A^2 / -2k, where r(t) would reach 0: past
 * the run's end, as B > 0, and the requests beyond it are never due.
 */
#include <math.h>

#include "bench.h"

static double ramp_k(const struct bench *b)
{
	return b->duration_ns ? (b->rate_to - b->rate_from) / ((double)b->duration_ns / 1e9) : 0;
}

uint64_t sched_due(const struct bench *b, uint64_t j)
{
	double a = b->rate_from, w = (double)b->warmup_ns / 1e9;
	double x = (double)j - a * w; /* requests due after the warm-up */
	if (x < 0)
		return (uint64_t)((double)j / a * 1e9);
	double disc = a * a + 2 * ramp_k(b) * x;
	if (disc < 0)
		return UINT64_MAX; /* past a falling ramp's peak */
	double den = a + sqrt(disc);
	double u = den > 0 ? 2 * x / den : 0;
	return (uint64_t)((w + u) * 1e9);
}

double sched_count(const struct bench *b, uint64_t t)
{
	double a = b->rate_from, w = (double)b->warmup_ns / 1e9, s = (double)t / 1e9;
	if (s <= w)
		return a * s;
	double u = s - w;
	return a * w + a * u + ramp_k(b) * u * u / 2;
}

double sched_offered(const struct bench *b, uint64_t window_ns)
{
	if (window_ns == 0)
		return 0;
	double n = sched_count(b, b->warmup_ns + window_ns) - sched_count(b, b->warmup_ns);
	return n / ((double)window_ns / 1e9);
}
