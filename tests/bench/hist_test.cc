// SPDX-License-Identifier: MIT
/*
 * hist_test.cc - weft-bench's latency histogram (tools/weft-bench/hist.c).
 * Properties covered:
 *  - every value from 1 us to 1 h comes back within 0.1% (three
 *    significant digits), never below itself, and bucket bounds tile the
 *    range without gap or overlap;
 *  - percentiles of uniform 1..N and of a bimodal distribution lie
 *    between the exact (sort-based) answer and 0.1% above it, and the
 *    100th percentile is the exact maximum;
 *  - merging per-worker histograms equals recording everything into one;
 *    merging into an empty one, an empty one, and itself;
 *  - values below 1 us and above 1 h are clamped and counted;
 *  - mean and standard deviation match a direct computation, including a
 *    narrow distribution far from zero;
 *  - reset empties a histogram for reuse;
 *  - the .hgrm output reads back line by line: header, columns, footer,
 *    and each value/percentile pair equals hist_value_at_percentile;
 *  - the SVG starts with <svg, ends with </svg>, escapes its title and
 *    has one polyline with one point per hgrm line; several histograms
 *    share the axes, one polyline and one escaped label each;
 *  - a million records run in a fast test (O(1) record, no timing check).
 * Every histogram is freed, so the ASan build checks for leaks.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "hist.h"
}

namespace {

struct HistFree {
	void operator()(hist *h) const { hist_free(h); }
};
using Hist = std::unique_ptr<hist, HistFree>;

Hist make()
{
	Hist h(hist_new());
	EXPECT_NE(h, nullptr);
	return h;
}

// The exact answer hist_value_at_percentile approximates: the r-th
// smallest sample, r = max(1, ceil(p/100 n)).
uint64_t exact_percentile(std::vector<uint64_t> sorted, double p)
{
	size_t n = sorted.size();
	size_t r = p <= 0 ? 1 : (size_t)std::ceil(p * (double)n / 100.0 * (1 - 1e-12));
	r = std::min(std::max<size_t>(r, 1), n);
	return sorted[r - 1];
}

// Within three significant digits, never under-reporting.
void expect_close_above(uint64_t got, uint64_t exact, const char *what)
{
	EXPECT_GE(got, exact) << what;
	EXPECT_LE((double)(got - exact), (double)exact / 1000.0) << what << " exact " << exact;
}

std::string write_to_string(const hist *h, int (*fn)(const hist *, FILE *, double), double scale)
{
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	EXPECT_NE(f, nullptr);
	EXPECT_EQ(fn(h, f, scale), 0);
	fclose(f);
	std::string s(buf, len);
	free(buf);
	return s;
}

std::string hgrm(const hist *h, double scale)
{
	return write_to_string(h, hist_write_hgrm, scale);
}

std::string svg(const hist *h, const char *title)
{
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	EXPECT_NE(f, nullptr);
	EXPECT_EQ(hist_write_svg(h, f, title), 0);
	fclose(f);
	std::string s(buf, len);
	free(buf);
	return s;
}

// Values spread over every magnitude from 1 us to 1 h.
std::vector<uint64_t> every_magnitude()
{
	std::vector<uint64_t> v;
	std::mt19937_64 rng(7);
	for (uint64_t base = HIST_LOWEST; base < HIST_HIGHEST; base *= 2) {
		v.push_back(base);
		v.push_back(base + 1);
		v.push_back(base * 2 - 1);
		for (int i = 0; i < 50; i++)
			v.push_back(base + rng() % base);
	}
	v.push_back(HIST_HIGHEST - 1);
	v.push_back(HIST_HIGHEST);
	for (uint64_t &x : v)
		x = std::min<uint64_t>(x, HIST_HIGHEST);
	return v;
}

} // namespace

TEST(HistTest, EveryMagnitudeComesBackWithinThreeDigits)
{
	Hist h = make();
	for (uint64_t v : every_magnitude()) {
		uint64_t lo = hist_lowest_equivalent(v), hi = hist_highest_equivalent(v);
		ASSERT_LE(lo, v);
		ASSERT_GE(hi, v);
		ASSERT_LE((double)(hi - lo), (double)v / 1000.0) << v;
		// One sample at v under a larger one: the median is the top of
		// v's bucket (capped at the max when they share it).
		hist_reset(h.get());
		hist_record(h.get(), v);
		hist_record(h.get(), HIST_HIGHEST);
		uint64_t got = hist_value_at_percentile(h.get(), 50);
		ASSERT_EQ(got, std::min<uint64_t>(hi, HIST_HIGHEST)) << v;
		expect_close_above(got, v, "median");
		// Alone, every percentile is v exactly (capped at the max).
		hist_reset(h.get());
		hist_record(h.get(), v);
		ASSERT_EQ(hist_value_at_percentile(h.get(), 0), v);
		ASSERT_EQ(hist_value_at_percentile(h.get(), 99.9), v);
		ASSERT_EQ(hist_value_at_percentile(h.get(), 100), v);
	}
}

TEST(HistTest, BucketsTileTheRange)
{
	// Walk bucket by bucket: each starts right after the previous one.
	uint64_t v = HIST_LOWEST, buckets = 0;
	EXPECT_EQ(hist_lowest_equivalent(v), HIST_LOWEST);
	while (v <= HIST_HIGHEST) {
		uint64_t lo = hist_lowest_equivalent(v), hi = hist_highest_equivalent(v);
		ASSERT_EQ(lo, v);
		ASSERT_EQ(hist_lowest_equivalent(hi), lo);
		ASSERT_EQ(hist_highest_equivalent(lo), hi);
		buckets++;
		if (hi >= HIST_HIGHEST)
			break;
		v = hi + 1;
	}
	EXPECT_EQ(buckets, 32421u);
	EXPECT_GE(hist_highest_equivalent(HIST_HIGHEST), HIST_HIGHEST);
	// Values in [1 us, 2048 ns) are exact.
	for (uint64_t x = 1000; x < 2048; x++)
		ASSERT_EQ(hist_highest_equivalent(x), x);
}

TEST(HistTest, UniformPercentilesMatchSort)
{
	Hist h = make();
	const uint64_t n = 100000;
	std::vector<uint64_t> all;
	// 1..N in us, so the values span 1 us .. 100 ms.
	for (uint64_t i = 1; i <= n; i++) {
		all.push_back(i * 1000);
		hist_record(h.get(), i * 1000);
	}
	std::sort(all.begin(), all.end());
	for (double p : { 0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0 })
		expect_close_above(hist_value_at_percentile(h.get(), p), exact_percentile(all, p),
				   ("p" + std::to_string(p)).c_str());
	EXPECT_EQ(hist_value_at_percentile(h.get(), 100), n * 1000);
	EXPECT_EQ(hist_value_at_percentile(h.get(), 0), 1000u);
	EXPECT_EQ(hist_min(h.get()), 1000u);
	EXPECT_EQ(hist_max(h.get()), n * 1000);
	EXPECT_EQ(hist_count(h.get()), n);
	// Out-of-range p is clamped.
	EXPECT_EQ(hist_value_at_percentile(h.get(), -5), hist_value_at_percentile(h.get(), 0));
	EXPECT_EQ(hist_value_at_percentile(h.get(), 150), n * 1000);
}

TEST(HistTest, BimodalPercentilesMatchSort)
{
	Hist h = make();
	std::mt19937_64 rng(42);
	std::normal_distribution<double> fast(200e3, 20e3);   // 200 us
	std::normal_distribution<double> slow(50e6, 5e6);     // 50 ms
	std::vector<uint64_t> all;
	for (int i = 0; i < 200000; i++) {
		double x = (i % 10 == 0) ? slow(rng) : fast(rng);
		uint64_t v = (uint64_t)std::max(x, 1000.0);
		all.push_back(v);
		hist_record(h.get(), v);
	}
	std::sort(all.begin(), all.end());
	for (double p = 0; p <= 100; p += 0.5)
		expect_close_above(hist_value_at_percentile(h.get(), p), exact_percentile(all, p),
				   ("p" + std::to_string(p)).c_str());
	for (double p : { 89.9, 90.0, 90.1, 99.9, 99.99, 99.999 })
		expect_close_above(hist_value_at_percentile(h.get(), p), exact_percentile(all, p),
				   ("p" + std::to_string(p)).c_str());
	EXPECT_EQ(hist_value_at_percentile(h.get(), 100), all.back());
}

TEST(HistTest, MergeEqualsRecordingIntoOne)
{
	Hist one = make(), total = make(), empty = make();
	Hist workers[4] = { make(), make(), make(), make() };
	std::mt19937_64 rng(3);
	std::vector<uint64_t> vals = every_magnitude();
	for (int i = 0; i < 40000; i++) {
		uint64_t v = vals[rng() % vals.size()];
		if (i % 1000 == 0)
			v = 10; // clamped, counted in below
		uint64_t n = 1 + i % 3;
		hist_record_n(one.get(), v, n);
		hist_record_n(workers[rng() % 4].get(), v, n);
	}
	for (auto &w : workers)
		hist_merge(total.get(), w.get());
	hist_merge(total.get(), empty.get());
	EXPECT_EQ(hist_count(total.get()), hist_count(one.get()));
	EXPECT_EQ(hist_below(total.get()), hist_below(one.get()));
	EXPECT_EQ(hist_above(total.get()), hist_above(one.get()));
	EXPECT_EQ(hist_min(total.get()), hist_min(one.get()));
	EXPECT_EQ(hist_max(total.get()), hist_max(one.get()));
	EXPECT_DOUBLE_EQ(hist_mean(total.get()), hist_mean(one.get()));
	EXPECT_NEAR(hist_stdev(total.get()), hist_stdev(one.get()), hist_stdev(one.get()) * 1e-12);
	for (double p = 0; p <= 100; p += 0.25)
		ASSERT_EQ(hist_value_at_percentile(total.get(), p),
			  hist_value_at_percentile(one.get(), p)) << p;
	EXPECT_EQ(hgrm(total.get(), 1e6), hgrm(one.get(), 1e6));

	// Into an empty one: a copy.  Into itself: every count doubles.
	hist_merge(empty.get(), one.get());
	EXPECT_EQ(hgrm(empty.get(), 1e3), hgrm(one.get(), 1e3));
	uint64_t n = hist_count(one.get());
	double mean = hist_mean(one.get()), sd = hist_stdev(one.get());
	uint64_t p90 = hist_value_at_percentile(one.get(), 90);
	hist_merge(one.get(), one.get());
	EXPECT_EQ(hist_count(one.get()), 2 * n);
	EXPECT_DOUBLE_EQ(hist_mean(one.get()), mean);
	EXPECT_NEAR(hist_stdev(one.get()), sd, sd * 1e-12);
	EXPECT_EQ(hist_value_at_percentile(one.get(), 90), p90);
}

TEST(HistTest, OutOfRangeIsClampedAndCounted)
{
	Hist h = make();
	hist_record(h.get(), 0);
	hist_record(h.get(), 999);
	hist_record_n(h.get(), 1, 3);
	hist_record(h.get(), HIST_LOWEST);      // in range
	hist_record(h.get(), HIST_HIGHEST);     // in range
	hist_record(h.get(), HIST_HIGHEST + 1);
	hist_record(h.get(), UINT64_MAX);
	hist_record_n(h.get(), 5, 0);           // nothing
	EXPECT_EQ(hist_count(h.get()), 9u);
	EXPECT_EQ(hist_below(h.get()), 5u);
	EXPECT_EQ(hist_above(h.get()), 2u);
	EXPECT_EQ(hist_min(h.get()), HIST_LOWEST);
	EXPECT_EQ(hist_max(h.get()), HIST_HIGHEST);
	EXPECT_EQ(hist_value_at_percentile(h.get(), 50), HIST_LOWEST);
	EXPECT_EQ(hist_value_at_percentile(h.get(), 100), HIST_HIGHEST);
	// The mean is of the clamped values.
	EXPECT_DOUBLE_EQ(hist_mean(h.get()), (6.0 * HIST_LOWEST + 3.0 * HIST_HIGHEST) / 9.0);
}

TEST(HistTest, MeanAndStdevMatchDirectComputation)
{
	auto direct = [](const std::vector<uint64_t> &v, double *mean, double *sd) {
		long double s = 0;
		for (uint64_t x : v)
			s += x;
		long double m = s / v.size(), q = 0;
		for (uint64_t x : v)
			q += ((long double)x - m) * ((long double)x - m);
		*mean = (double)m;
		*sd = (double)std::sqrt(q / v.size());
	};
	std::mt19937_64 rng(11);
	// A wide spread, and a narrow one far from zero (1 s +- 1 us), where
	// a naive sum of squares would cancel away.
	for (int narrow = 0; narrow < 2; narrow++) {
		Hist h = make();
		std::vector<uint64_t> v;
		for (int i = 0; i < 100000; i++) {
			uint64_t x = narrow ? 1000000000ull + rng() % 2001 - 1000
					    : HIST_LOWEST + rng() % 100000000000ull;
			v.push_back(x);
			hist_record(h.get(), x);
		}
		double mean, sd;
		direct(v, &mean, &sd);
		EXPECT_NEAR(hist_mean(h.get()), mean, mean * 1e-12) << narrow;
		EXPECT_NEAR(hist_stdev(h.get()), sd, sd * 1e-9) << narrow;
	}
	Hist e = make();
	EXPECT_EQ(hist_mean(e.get()), 0);
	EXPECT_EQ(hist_stdev(e.get()), 0);
	EXPECT_EQ(hist_value_at_percentile(e.get(), 50), 0u);
	hist_record(e.get(), 5000);
	EXPECT_EQ(hist_stdev(e.get()), 0);
	EXPECT_EQ(hist_mean(e.get()), 5000);
}

TEST(HistTest, ResetEmptiesForReuse)
{
	Hist h = make(), fresh = make();
	for (uint64_t v : every_magnitude())
		hist_record(h.get(), v);
	hist_reset(h.get());
	EXPECT_EQ(hist_count(h.get()), 0u);
	EXPECT_EQ(hist_max(h.get()), 0u);
	EXPECT_EQ(hist_value_at_percentile(h.get(), 99), 0u);
	hist_record(h.get(), 123456);
	hist_record(fresh.get(), 123456);
	EXPECT_EQ(hgrm(h.get(), 1e3), hgrm(fresh.get(), 1e3));
}

namespace {

struct HgrmLine {
	double value, frac, inv;
	uint64_t count;
	bool has_inv;
};

// Parses hist_write_hgrm's output as an HdrHistogram plotter would; fails
// the test on any line out of shape.
std::vector<HgrmLine> parse_hgrm(const std::string &text, double *mean, double *sd,
				 double *max, uint64_t *total)
{
	std::istringstream in(text);
	std::string line;
	std::vector<HgrmLine> out;
	std::getline(in, line);
	std::istringstream hdr(line);
	std::string c1, c2, c3, c4;
	hdr >> c1 >> c2 >> c3 >> c4;
	EXPECT_EQ(c1, "Value");
	EXPECT_EQ(c2, "Percentile");
	EXPECT_EQ(c3, "TotalCount");
	EXPECT_EQ(c4, "1/(1-Percentile)");
	std::getline(in, line);
	EXPECT_EQ(line, "");
	int footer = 0;
	int buckets = 0, sub = 0;
	while (std::getline(in, line)) {
		if (line.rfind("#[", 0) == 0) {
			footer++;
			if (sscanf(line.c_str(), "#[Mean = %lf, StdDeviation = %lf]", mean, sd) == 2)
				continue;
			unsigned long long t;
			if (sscanf(line.c_str(), "#[Max = %lf, Total count = %llu]", max, &t) == 2) {
				*total = t;
				continue;
			}
			EXPECT_EQ(sscanf(line.c_str(), "#[Buckets = %d, SubBuckets = %d]", &buckets, &sub), 2)
				<< line;
			continue;
		}
		EXPECT_EQ(footer, 0) << "data after the footer: " << line;
		HgrmLine l{};
		unsigned long long c;
		int got = sscanf(line.c_str(), "%lf %lf %llu %lf", &l.value, &l.frac, &c, &l.inv);
		EXPECT_GE(got, 3) << line;
		l.count = c;
		l.has_inv = got == 4;
		out.push_back(l);
	}
	EXPECT_EQ(footer, 3);
	EXPECT_EQ(buckets, 32);
	EXPECT_EQ(sub, 2048);
	return out;
}

} // namespace

TEST(HistTest, HgrmReadsBackAndMatchesPercentiles)
{
	Hist h = make();
	std::mt19937_64 rng(5);
	std::lognormal_distribution<double> d(std::log(300e3), 1.0); // ~300 us
	for (int i = 0; i < 50000; i++)
		hist_record(h.get(), (uint64_t)d(rng));
	const double scale = 1e6; // milliseconds, as wrk2 prints
	std::string text = hgrm(h.get(), scale);
	double mean = -1, sd = -1, max = -1;
	uint64_t total = 0;
	std::vector<HgrmLine> lines = parse_hgrm(text, &mean, &sd, &max, &total);
	ASSERT_GT(lines.size(), 50u);
	EXPECT_EQ(total, hist_count(h.get()));
	EXPECT_NEAR(mean, hist_mean(h.get()) / scale, 0.0005);
	EXPECT_NEAR(sd, hist_stdev(h.get()) / scale, 0.0005);
	EXPECT_NEAR(max, hist_max(h.get()) / scale, 0.0005);

	// Levels: 0, then 10% steps to 50%, 5% to 75%, ... ; the last line
	// is 100% with no 1/(1-p) column and the whole count.
	EXPECT_EQ(lines[0].frac, 0.0);
	EXPECT_NEAR(lines[1].frac, 0.1, 1e-12);
	EXPECT_NEAR(lines[5].frac, 0.5, 1e-12);
	EXPECT_NEAR(lines[6].frac, 0.55, 1e-12);
	EXPECT_NEAR(lines[10].frac, 0.75, 1e-12);
	EXPECT_NEAR(lines[11].frac, 0.775, 1e-12);
	const HgrmLine &last = lines.back();
	EXPECT_EQ(last.frac, 1.0);
	EXPECT_FALSE(last.has_inv);
	EXPECT_EQ(last.count, hist_count(h.get()));
	for (size_t i = 0; i < lines.size(); i++) {
		const HgrmLine &l = lines[i];
		uint64_t v = hist_value_at_percentile(h.get(), l.frac * 100);
		EXPECT_NEAR(l.value, v / scale, 0.0005) << "line " << i;
		if (i + 1 < lines.size()) {
			EXPECT_TRUE(l.has_inv) << i;
			EXPECT_NEAR(l.inv, 1 / (1 - l.frac), 0.006) << i;
			EXPECT_LT(l.frac, lines[i + 1].frac) << i;
		}
		if (i > 0) {
			EXPECT_GE(l.value, lines[i - 1].value) << i;
			EXPECT_GE(l.count, lines[i - 1].count) << i;
		}
		EXPECT_GE((double)l.count, l.frac * hist_count(h.get()) * (1 - 1e-12)) << i;
	}

	// The points behind the lines, unrounded, match exactly.
	hist_iter it;
	hist_point pt;
	hist_iter_init(&it, h.get(), 0);
	size_t n = 0;
	while (hist_iter_next(&it, &pt)) {
		ASSERT_EQ(pt.value, hist_value_at_percentile(h.get(), pt.percentile)) << n;
		n++;
	}
	EXPECT_EQ(n, lines.size());

	// Empty: header and footer only.
	Hist e = make();
	EXPECT_TRUE(parse_hgrm(hgrm(e.get(), 1e3), &mean, &sd, &max, &total).empty());
	EXPECT_EQ(total, 0u);
}

TEST(HistTest, SvgHasOnePolylineWithTheHgrmPoints)
{
	Hist h = make();
	for (uint64_t i = 1; i <= 20000; i++)
		hist_record(h.get(), 1000 * i + (i % 7) * 100000);
	std::string s = svg(h.get(), "GET / <weft> & \"co\"");
	ASSERT_EQ(s.rfind("<svg", 0), 0u);
	while (!s.empty() && s.back() == '\n')
		s.pop_back();
	ASSERT_GE(s.size(), 6u);
	EXPECT_EQ(s.substr(s.size() - 6), "</svg>");
	EXPECT_NE(s.find("GET / &lt;weft&gt; &amp; &quot;co&quot;"), std::string::npos);
	EXPECT_EQ(s.find("<weft>"), std::string::npos);
	for (const char *tick : { ">0%<", ">90%<", ">99%<", ">99.9%<", ">99.99%<", ">99.999%<" })
		EXPECT_NE(s.find(tick), std::string::npos) << tick;

	size_t at = s.find("<polyline");
	ASSERT_NE(at, std::string::npos);
	EXPECT_EQ(s.find("<polyline", at + 1), std::string::npos);
	size_t p0 = s.find("points=\"", at);
	ASSERT_NE(p0, std::string::npos);
	p0 += 8;
	size_t p1 = s.find('"', p0);
	std::istringstream pts(s.substr(p0, p1 - p0));
	std::string xy;
	std::vector<std::pair<double, double>> points;
	while (pts >> xy) {
		double x, y;
		ASSERT_EQ(sscanf(xy.c_str(), "%lf,%lf", &x, &y), 2) << xy;
		points.emplace_back(x, y);
	}
	double mean, sd, max;
	uint64_t total;
	std::vector<HgrmLine> lines = parse_hgrm(hgrm(h.get(), 1e6), &mean, &sd, &max, &total);
	EXPECT_EQ(points.size(), lines.size());
	// Left to right, and up (smaller y) as latency grows.
	for (size_t i = 1; i < points.size(); i++) {
		EXPECT_GE(points[i].first, points[i - 1].first) << i;
		EXPECT_LE(points[i].second, points[i - 1].second) << i;
	}

	// Empty: still a drawing, with an empty polyline.
	Hist e = make();
	std::string es = svg(e.get(), nullptr);
	EXPECT_EQ(es.rfind("<svg", 0), 0u);
	EXPECT_NE(es.find("points=\"\""), std::string::npos);
}

TEST(HistTest, SvgOfSeveralSharesAxesAndLabelsEach)
{
	Hist small = make(), big = make();
	for (uint64_t i = 1; i <= 1000; i++) {
		hist_record(small.get(), 1000 * i);
		hist_record(big.get(), 4000 * i);
	}
	const hist *hs[] = { small.get(), big.get() };
	const char *const labels[] = { "a <1>", "b" };
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ASSERT_NE(f, nullptr);
	EXPECT_EQ(hist_write_svg_n(hs, labels, 2, f, "t"), 0);
	fclose(f);
	std::string s(buf, len);
	free(buf);
	EXPECT_NE(s.find(">a &lt;1&gt;</text>"), std::string::npos);
	EXPECT_NE(s.find(">b</text>"), std::string::npos);
	// Two curves, in order; the second reaches 4 times higher on the
	// shared y axis, so its last point is higher up (smaller y).
	size_t a0 = s.find("<polyline"), a1 = s.find("<polyline", a0 + 1);
	ASSERT_NE(a1, std::string::npos);
	EXPECT_EQ(s.find("<polyline", a1 + 1), std::string::npos);
	auto last_y = [&](size_t at) {
		size_t q = s.find('"', s.find("points=\"", at) + 8);
		size_t c = s.rfind(',', q);
		return strtod(s.c_str() + c + 1, nullptr);
	};
	double y0 = last_y(a0), y1 = last_y(a1);
	// The frame's bottom is at 384 (40 + 344): heights measured from it.
	EXPECT_NEAR((384 - y0) / (384 - y1), 0.25, 0.01);
}

TEST(HistTest, MillionRecordsRunFast)
{
	// O(1) record with no allocation: a million samples over every
	// magnitude, then one pass for the percentiles.  No timing assertion.
	Hist h = make();
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 1000000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		hist_record(h.get(), x >> (22 + (x & 15)));
	}
	EXPECT_EQ(hist_count(h.get()), 1000000u);
	EXPECT_EQ(hist_below(h.get()) + hist_above(h.get()) <= 1000000u, true);
	EXPECT_LE(hist_value_at_percentile(h.get(), 50), hist_value_at_percentile(h.get(), 99));
}
