// SPDX-License-Identifier: MIT
/*
 * hist.h - weft-bench's latency histogram: log-linear buckets with three
 * significant decimal digits over [1 us, 1 h] of nanoseconds, one per
 * worker, merged at the end; every sample is counted, none is dropped or
 * sampled.  hist.c implements it and documents the bucket math and its
 * invariants; tests/bench/hist_test.cc checks it.
 *
 * Memory is allocated once, by hist_new; recording never allocates and
 * costs O(1).  A histogram belongs to one thread at a time: nothing here
 * locks, so merge a worker's histogram only after that worker stopped
 * recording into it (or hands it over with its own synchronization).
 *
 * Values are nanoseconds.  A value below HIST_LOWEST or above
 * HIST_HIGHEST is recorded as that bound and counted (hist_below,
 * hist_above), so the counts always add up to the samples given.
 *
 * Percentiles are reported as HdrHistogram reports them: the highest value
 * of the bucket that holds the sample at that rank, so a percentile never
 * under-reports; it is also capped at the largest value recorded, so the
 * 100th percentile is the exact maximum.
 */
#ifndef WEFT_BENCH_HIST_H
#define WEFT_BENCH_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIST_LOWEST 1000ull                   /* 1 us in ns */
#define HIST_HIGHEST 3600000000000ull         /* 1 h in ns */
#define HIST_SUB_BUCKETS 2048                 /* per power of two, see hist.c */
#define HIST_TICKS_PER_HALF 5                 /* hgrm/svg percentile ticks */

struct hist;

/* A new empty histogram (about 260 KiB, zeroed), or NULL when out of
 * memory.  The caller frees it with hist_free. */
struct hist *hist_new(void);
/* Frees h; NULL is a no-op. */
void hist_free(struct hist *h);
/* Empties h; it keeps its memory.  No failure path. */
void hist_reset(struct hist *h);

/* Records one sample of ns nanoseconds (n samples for hist_record_n).
 * O(1), no allocation, no failure path: out-of-range values are clamped
 * and counted.  hist_record_n with n == 0 changes nothing. */
void hist_record(struct hist *h, uint64_t ns);
void hist_record_n(struct hist *h, uint64_t ns, uint64_t n);

/* Adds every sample of src to dst, as if each had been recorded into dst;
 * src is unchanged.  dst == src is allowed (it doubles every count).  No
 * failure path. */
void hist_merge(struct hist *dst, const struct hist *src);

/* Samples recorded, and how many of them were clamped up to HIST_LOWEST
 * or down to HIST_HIGHEST. */
uint64_t hist_count(const struct hist *h);
uint64_t hist_below(const struct hist *h);
uint64_t hist_above(const struct hist *h);
/* Exact smallest and largest recorded (clamped) value; 0 when empty. */
uint64_t hist_min(const struct hist *h);
uint64_t hist_max(const struct hist *h);
/* Exact mean and population standard deviation of the recorded (clamped)
 * values, in ns; 0 when empty. */
double hist_mean(const struct hist *h);
double hist_stdev(const struct hist *h);

/* The value v such that at least p percent of the samples are <= v, p
 * clamped to [0, 100]: the highest value of the bucket holding the
 * ceil(p/100 * count)-th smallest sample (the first when that is 0),
 * capped at hist_max.  0 when empty. */
uint64_t hist_value_at_percentile(const struct hist *h, double p);

/* Bucket math, for tests and callers that print resolution: the lowest
 * and highest value that land in the same bucket as ns (after clamping). */
uint64_t hist_lowest_equivalent(uint64_t ns);
uint64_t hist_highest_equivalent(uint64_t ns);

/* Walking the percentile distribution, as --hgrm, --plot and
 * --interval-json print it.  Levels start at 0% and step by 1/ticks of
 * the distance to the next halving of the remaining tail (0, 10, ..., 50,
 * 55, ..., 75, 77.5, ...); each level yields the point
 * hist_value_at_percentile would give for it; after the level that reaches
 * the last sample, one final point at exactly 100% ends the walk.
 * An empty histogram yields no point. */
struct hist_point {
	uint64_t value;     /* ns, as hist_value_at_percentile(h, percentile) */
	double percentile;  /* 0..100 */
	uint64_t count;     /* samples <= value's bucket (cumulative) */
};

struct hist_iter {
	/* private */
	const struct hist *h;
	size_t idx;         /* bucket index being examined */
	uint64_t cum;       /* samples in buckets before idx */
	double level;       /* next percentile level to report */
	int ticks;
	bool done;
};

/* Starts a walk over h, which must not change until the walk ends.
 * ticks_per_half <= 0 means HIST_TICKS_PER_HALF. */
void hist_iter_init(struct hist_iter *it, const struct hist *h, int ticks_per_half);
/* Fills *pt with the next point and returns true, or returns false at
 * the end. */
bool hist_iter_next(struct hist_iter *it, struct hist_point *pt);

/* Writes HdrHistogram's percentile distribution text (.hgrm): a header
 * line, one line per point of the walk above (value / unit_scale,
 * percentile as a fraction, cumulative count, 1/(1-percentile), the last
 * column left out on the 100% line) and the Mean/StdDeviation, Max/Total
 * count and Buckets/SubBuckets footer.  unit_scale divides nanoseconds
 * (1e6 prints milliseconds, as wrk2 does); <= 0 means 1.  Returns 0, or
 * -EIO when writing to f failed. */
int hist_write_hgrm(const struct hist *h, FILE *f, double unit_scale);

/* Writes a self-contained SVG of latency (y, linear) against percentile
 * (x, log scale of 1/(1-p), ticks at 0%, 90%, ..., 99.999%): one polyline
 * whose points are the hgrm lines, in order, the 100% point drawn at the
 * right edge.  title is escaped; NULL means none.  Returns 0, or -EIO when
 * writing to f failed. */
int hist_write_svg(const struct hist *h, FILE *f, const char *title);

/* hist_write_svg for n histograms on shared axes (scaled to the largest
 * value of any): one polyline each, in the order given, the first drawn
 * as hist_write_svg draws its one, with labels[i] (labels or an entry may
 * be NULL: none) in a legend at the top left.  Returns 0 or -EIO. */
int hist_write_svg_n(const struct hist *const *hs, const char *const *labels, size_t n, FILE *f,
		     const char *title);

#ifdef __cplusplus
}
#endif

#endif
