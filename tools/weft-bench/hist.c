// SPDX-License-Identifier: MIT
/*
 * hist.c - weft-bench's latency histogram (API and contracts in hist.h):
 * log-linear buckets, three significant digits over [1 us, 1 h] in ns,
 * O(1) recording into memory allocated once, merge, percentiles, and the
 * .hgrm and SVG writers that --hgrm and --plot use.
 *
 * Bucket math.  A value v (ns, already clamped to [HIST_LOWEST,
 * HIST_HIGHEST]) has the magnitude m = floor(log2 v) and the shift
 * k = max(0, m - 10).  Its counter index is
 *
 *	idx(v) = k * 1024 + (v >> k)
 *
 * For k == 0 (v < 2048) the index is v itself: one counter per ns.  For
 * k >= 1, v >> k lies in [1024, 2048), so power-of-two range [2^m, 2^(m+1))
 * gets 1024 counters of width 2^k each, and ranges follow one another
 * without gap or overlap (k = 1 starts at index 2048).  A counter's width
 * is at most v / 1024 of any value in it, below the 1/1000 that three
 * significant digits allow; values in [1000, 2048) are exact.  Going back:
 * for i < 2048, k = 0 and the bucket is {i}; otherwise k = (i >> 10) - 1
 * and the bucket is [(i - 1024k) << k, ((i - 1024k + 1) << k) - 1].
 * Counters below idx(HIST_LOWEST) = 1000 could never be hit and are not
 * stored: counts[i - FIRST] holds bucket i, for i in [FIRST, LAST] with
 * LAST = idx(HIST_HIGHEST) (32,421 counters, 253 KiB).  In HdrHistogram's
 * terms this is 32 buckets of 2048 sub-buckets, the lower half of each
 * but the first unused, with a unit of 1 ns.
 *
 * Invariants (between calls):
 *  1. count == the sum of counts[] == the samples recorded (clamped ones
 *     included); below and above count the clamped ones.
 *  2. count == 0, or min and max are the exact extreme recorded values,
 *     and every non-zero counter lies in [idx(min), idx(max)]; the loops
 *     over counters only visit that range.
 *  3. sx and sxx are the sums of (v - origin) and (v - origin)^2 over all
 *     samples, exact in 128 bits, origin being the first value recorded.
 *     Centring on a sample keeps the variance's subtraction from
 *     cancelling away for the narrow distributions that latency often
 *     has.  sxx fits for up to 10^13 samples of the widest spread.
 * hist_check() verifies 1 and 2; it runs inside assert() only.
 *
 * Percentiles.  For p percent of n samples the rank is
 * r = max(1, ceil(p/100 * n)); the answer is the highest value of the
 * bucket holding the r-th smallest sample, capped at max.  Each level of
 * the percentile walk (hist_iter_next) is answered the same way, so the
 * hgrm lines, the SVG points and hist_value_at_percentile agree.
 */
#include "hist.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUB_HALF (HIST_SUB_BUCKETS / 2)  /* 1024 counters per doubling */
#define SUB_BITS 10                      /* log2(SUB_HALF) */

static inline size_t idx_of(uint64_t v)
{
	int m = 63 - __builtin_clzll(v | 1);
	int k = m > SUB_BITS ? m - SUB_BITS : 0;
	return ((size_t)k << SUB_BITS) + (size_t)(v >> k);
}

#define FIRST ((size_t)HIST_LOWEST) /* idx(HIST_LOWEST): k == 0 there */
/* idx(3.6e12): m = 41, k = 31, v >> 31 = 1676. */
#define LAST ((size_t)31 * SUB_HALF + 1676)
#define NCOUNTS (LAST - FIRST + 1)

struct hist {
	uint64_t count, below, above;
	uint64_t min, max;
	uint64_t origin;
	__int128 sx, sxx;
	uint64_t counts[NCOUNTS];
};

static inline uint64_t lowest_of(size_t i)
{
	if (i < 2 * SUB_HALF)
		return i;
	int k = (int)(i >> SUB_BITS) - 1;
	return (uint64_t)(i - ((size_t)k << SUB_BITS)) << k;
}

static inline uint64_t highest_of(size_t i)
{
	int k = i < 2 * SUB_HALF ? 0 : (int)(i >> SUB_BITS) - 1;
	return lowest_of(i) + ((uint64_t)1 << k) - 1;
}

static inline uint64_t clamp(uint64_t v)
{
	return v < HIST_LOWEST ? HIST_LOWEST : v > HIST_HIGHEST ? HIST_HIGHEST : v;
}

#ifndef NDEBUG
static bool hist_check(const struct hist *h)
{
	_Static_assert(LAST - FIRST + 1 == 32421, "counter layout");
	if (idx_of(HIST_HIGHEST) != LAST || idx_of(HIST_LOWEST) != FIRST)
		return false;
	uint64_t sum = 0;
	size_t lo = h->count ? idx_of(h->min) : LAST + 1;
	size_t hi = h->count ? idx_of(h->max) : FIRST;
	for (size_t i = FIRST; i <= LAST; i++) {
		uint64_t c = h->counts[i - FIRST];
		if (c && (i < lo || i > hi))
			return false;
		sum += c;
	}
	return sum == h->count && h->below + h->above <= h->count;
}
#endif

uint64_t hist_lowest_equivalent(uint64_t ns)
{
	return lowest_of(idx_of(clamp(ns)));
}

uint64_t hist_highest_equivalent(uint64_t ns)
{
	return highest_of(idx_of(clamp(ns)));
}

struct hist *hist_new(void)
{
	return calloc(1, sizeof(struct hist));
}

void hist_free(struct hist *h)
{
	free(h);
}

void hist_reset(struct hist *h)
{
	if (h->count) {
		size_t lo = idx_of(h->min), hi = idx_of(h->max);
		memset(&h->counts[lo - FIRST], 0, (hi - lo + 1) * sizeof(uint64_t));
	}
	h->count = h->below = h->above = 0;
	h->min = h->max = h->origin = 0;
	h->sx = h->sxx = 0;
	assert(hist_check(h));
}

void hist_record_n(struct hist *h, uint64_t ns, uint64_t n)
{
	if (n == 0)
		return;
	uint64_t v = ns;
	if (v < HIST_LOWEST) {
		v = HIST_LOWEST;
		h->below += n;
	} else if (v > HIST_HIGHEST) {
		v = HIST_HIGHEST;
		h->above += n;
	}
	h->counts[idx_of(v) - FIRST] += n;
	if (h->count == 0) {
		h->min = h->max = h->origin = v;
	} else {
		if (v < h->min)
			h->min = v;
		if (v > h->max)
			h->max = v;
	}
	h->count += n;
	__int128 d = (__int128)v - (__int128)h->origin;
	h->sx += d * (__int128)n;
	h->sxx += d * d * (__int128)n;
}

void hist_record(struct hist *h, uint64_t ns)
{
	hist_record_n(h, ns, 1);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	/* Read everything from src first: dst may be src. */
	uint64_t n = src->count, lo = src->min, hi = src->max;
	__int128 d = (__int128)src->origin - (__int128)dst->origin;
	__int128 sx = src->sx, sxx = src->sxx;
	for (size_t i = idx_of(lo); i <= idx_of(hi); i++)
		dst->counts[i - FIRST] += src->counts[i - FIRST];
	dst->below += src->below;
	dst->above += src->above;
	if (dst->count == 0) {
		/* Take src's origin: its sums need no re-centring. */
		dst->origin = src->origin;
		dst->min = lo;
		dst->max = hi;
		dst->sx = sx;
		dst->sxx = sxx;
	} else {
		/* With y = v - src->origin, v - dst->origin = y + d:
		 * sum(y + d) = sx + n d, sum((y + d)^2) = sxx + 2 d sx + n d^2. */
		if (lo < dst->min)
			dst->min = lo;
		if (hi > dst->max)
			dst->max = hi;
		dst->sx += sx + (__int128)n * d;
		dst->sxx += sxx + 2 * d * sx + (__int128)n * d * d;
	}
	dst->count += n;
	assert(hist_check(dst));
}

uint64_t hist_count(const struct hist *h) { return h->count; }
uint64_t hist_below(const struct hist *h) { return h->below; }
uint64_t hist_above(const struct hist *h) { return h->above; }
uint64_t hist_min(const struct hist *h) { return h->min; }
uint64_t hist_max(const struct hist *h) { return h->max; }

double hist_mean(const struct hist *h)
{
	if (h->count == 0)
		return 0;
	return (double)((long double)h->origin + (long double)h->sx / (long double)h->count);
}

double hist_stdev(const struct hist *h)
{
	if (h->count == 0)
		return 0;
	long double n = (long double)h->count, sx = (long double)h->sx;
	long double var = ((long double)h->sxx - sx * sx / n) / n;
	return var > 0 ? (double)sqrtl(var) : 0;
}

/* The rank answering p percent of n > 0 samples: max(1, ceil(p/100 n)),
 * in [1, n].  The relative slack of 1e-12 keeps a percentile printed with
 * 12 decimals and read back (as the hgrm test does) on the same rank. */
static uint64_t rank_of(double p, uint64_t n)
{
	if (!(p > 0))
		return 1;
	if (p >= 100)
		return n;
	double x = p * (double)n / 100.0;
	double r = ceil(x * (1 - 1e-12));
	if (r < 1)
		return 1;
	return r >= (double)n ? n : (uint64_t)r;
}

static inline uint64_t report(const struct hist *h, size_t i)
{
	uint64_t v = highest_of(i);
	return v > h->max ? h->max : v;
}

uint64_t hist_value_at_percentile(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	uint64_t r = rank_of(p, h->count), cum = 0;
	size_t i = idx_of(h->min), hi = idx_of(h->max);
	for (; i < hi; i++) {
		cum += h->counts[i - FIRST];
		if (cum >= r)
			break;
	}
	return report(h, i);
}

void hist_iter_init(struct hist_iter *it, const struct hist *h, int ticks_per_half)
{
	it->h = h;
	it->idx = h->count ? idx_of(h->min) : FIRST;
	it->cum = 0;
	it->level = 0;
	it->ticks = ticks_per_half > 0 ? ticks_per_half : HIST_TICKS_PER_HALF;
	it->done = h->count == 0;
}

bool hist_iter_next(struct hist_iter *it, struct hist_point *pt)
{
	const struct hist *h = it->h;
	if (it->done)
		return false;
	if (it->level >= 100) {
		/* The closing point: exactly 100%, the exact maximum. */
		*pt = (struct hist_point){ h->max, 100.0, h->count };
		it->done = true;
		return true;
	}
	uint64_t r = rank_of(it->level, h->count);
	/* Invariant: cum counts the buckets below idx, and cum < r. */
	while (it->cum + h->counts[it->idx - FIRST] < r)
		it->cum += h->counts[it->idx++ - FIRST];
	uint64_t upto = it->cum + h->counts[it->idx - FIRST];
	*pt = (struct hist_point){ report(h, it->idx), it->level, upto };
	/* Next level: each halving of the tail left, 100 - level, is cut into
	 * `ticks` steps.  The steps are 20/2^k: sums stay exact in a double
	 * until far past any rank a real count resolves. */
	double step = 100.0 / (it->ticks * ldexp(1.0, (int)floor(log2(100.0 / (100.0 - it->level))) + 1));
	if (upto == h->count || !(it->level + step > it->level))
		it->level = 100;
	else
		it->level += step;
	return true;
}

int hist_write_hgrm(const struct hist *h, FILE *f, double unit_scale)
{
	if (!(unit_scale > 0))
		unit_scale = 1;
	fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
		"1/(1-Percentile)");
	struct hist_iter it;
	struct hist_point pt;
	hist_iter_init(&it, h, HIST_TICKS_PER_HALF);
	while (hist_iter_next(&it, &pt)) {
		double frac = pt.percentile / 100.0;
		if (pt.percentile >= 100)
			fprintf(f, "%12.3f %2.12f %10llu\n", (double)pt.value / unit_scale, frac,
				(unsigned long long)pt.count);
		else
			fprintf(f, "%12.3f %2.12f %10llu %14.2f\n", (double)pt.value / unit_scale,
				frac, (unsigned long long)pt.count, 1.0 / (1.0 - frac));
	}
	fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
		hist_mean(h) / unit_scale, hist_stdev(h) / unit_scale);
	fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n",
		(double)h->max / unit_scale, (unsigned long long)h->count);
	fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n",
		(int)(LAST >> SUB_BITS), HIST_SUB_BUCKETS);
	return ferror(f) ? -EIO : 0;
}

/* SVG layout, in user units. */
#define W 720
#define H 440
#define ML 72   /* left margin: y labels */
#define MR 24
#define MT 40   /* top: title */
#define MB 56   /* bottom: x labels and caption */

static void svg_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* A round step (1, 2 or 5 times a power of ten) giving about 5 ticks over
 * [0, top]. */
static double nice_step(double top)
{
	double raw = top / 5, mag = pow(10, floor(log10(raw)));
	double m = raw / mag;
	return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * mag;
}

int hist_write_svg(const struct hist *h, FILE *f, const char *title)
{
	return hist_write_svg_n(&h, NULL, 1, f, title);
}

int hist_write_svg_n(const struct hist *const *hs, const char *const *labels, size_t n, FILE *f,
		     const char *title)
{
	static const char *const color[] = { "#1f6fb4", "#d95f02", "#1b9e77", "#7570b3" };
	/* Units for the y axis, from the largest value. */
	uint64_t top = 0;
	for (size_t i = 0; i < n; i++)
		if (hs[i]->count && hs[i]->max > top)
			top = hs[i]->max;
	double scale = 1e3;
	const char *unit = "us";
	if (top >= 1000000000ull) {
		scale = 1e9;
		unit = "s";
	} else if (top >= 1000000ull) {
		scale = 1e6;
		unit = "ms";
	}
	double ytop = top ? (double)top / scale : 1;
	double ystep = nice_step(ytop);
	ytop = ceil(ytop / ystep) * ystep;

	/* The x axis spans decades of 1/(1-p): 0 (0%) to xdec, at least 6
	 * (99.9999%), more when the walk reaches further; the 100% point
	 * sits on the right edge. */
	struct hist_iter it;
	struct hist_point pt;
	double xdec = 6;
	for (size_t i = 0; i < n; i++) {
		hist_iter_init(&it, hs[i], HIST_TICKS_PER_HALF);
		while (hist_iter_next(&it, &pt))
			if (pt.percentile < 100) {
				double d = log10(100.0 / (100.0 - pt.percentile));
				if (d > xdec)
					xdec = ceil(d);
			}
	}
	const double pw = W - ML - MR, ph = H - MT - MB;

	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
		W, H, W, H);
	fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
	if (title) {
		fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
		svg_text(f, title);
		fputs("</text>\n", f);
	}
	/* Grid and labels: y every ystep, x at each decade up to 99.999%. */
	fputs("<g stroke=\"#ddd\">\n", f);
	for (double y = 0; y <= ytop * (1 + 1e-9); y += ystep) {
		double py = MT + ph - y / ytop * ph;
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ML, py,
			ML + pw, py);
	}
	static const char *const xlabel[] = { "0%", "90%", "99%", "99.9%", "99.99%", "99.999%" };
	for (int d = 0; d < 6; d++) {
		double px = ML + d / xdec * pw;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px, MT, px,
			MT + ph);
	}
	fputs("</g>\n<g fill=\"#333\">\n", f);
	for (double y = 0; y <= ytop * (1 + 1e-9); y += ystep) {
		double py = MT + ph - y / ytop * ph;
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6,
			py + 4, y);
	}
	for (int d = 0; d < 6; d++)
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
			ML + d / xdec * pw, MT + ph + 18, xlabel[d]);
	fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">percentile</text>\n",
		ML + pw / 2, H - 12);
	fprintf(f, "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" "
		   "transform=\"rotate(-90 16 %.1f)\">latency (%s)</text>\n",
		MT + ph / 2, MT + ph / 2, unit);
	fputs("</g>\n", f);
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
		   "stroke=\"#333\"/>\n", ML, MT, pw, ph);

	/* The curves: each one's hgrm points, in order, and its legend. */
	for (size_t i = 0; i < n; i++) {
		const char *c = color[i % (sizeof(color) / sizeof(color[0]))];
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", c);
		hist_iter_init(&it, hs[i], HIST_TICKS_PER_HALF);
		bool first = true;
		while (hist_iter_next(&it, &pt)) {
			double d = pt.percentile >= 100 ? xdec : log10(100.0 / (100.0 - pt.percentile));
			double px = ML + d / xdec * pw;
			double py = MT + ph - (double)pt.value / scale / ytop * ph;
			fprintf(f, "%s%.1f,%.1f", first ? "" : " ", px, py);
			first = false;
		}
		fputs("\"/>\n", f);
		if (labels && labels[i]) {
			double ly = MT + 16 + 18.0 * (double)i;
			fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" "
				   "stroke-width=\"3\"/>\n<text x=\"%d\" y=\"%.1f\">",
				ML + 12, ly - 4, ML + 36, ly - 4, c, ML + 42, ly);
			svg_text(f, labels[i]);
			fputs("</text>\n", f);
		}
	}
	fputs("</svg>\n", f);
	return ferror(f) ? -EIO : 0;
}
