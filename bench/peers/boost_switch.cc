// SPDX-License-Identifier: MIT
/*
 * Boost.Context peer for weft's `switch` microbenchmark.
 *
 * Main and one fcontext jump back and forth with the raw fcontext API
 * (the cheapest switch Boost offers); every jump counts as one one-way
 * switch, the same way weft-microbench counts `switch`.
 * Usage: boost_switch [-n N]   (last stdout line: ns_per_op=<float>)
 */
#include <boost/context/detail/fcontext.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace ctx = boost::context::detail;

static void bounce(ctx::transfer_t t)
{
	/* Never returns: returning from an fcontext entry ends the process.
	 * Main simply stops resuming it when the measurement is done. */
	for (;;)
		t = ctx::jump_fcontext(t.fctx, nullptr);
}

static double now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Each call does 2*rounds one-way jumps; returns the handle to resume next. */
static ctx::fcontext_t run(ctx::fcontext_t peer, long rounds)
{
	for (long i = 0; i < rounds; i++)
		peer = ctx::jump_fcontext(peer, nullptr).fctx;
	return peer;
}

int main(int argc, char **argv)
{
	long n = 50000000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			n = strtol(argv[++i], nullptr, 10);
		} else {
			fprintf(stderr, "usage: %s [-n N]\n", argv[0]);
			return 2;
		}
	}
	if (n < 2) {
		fprintf(stderr, "-n must be >= 2\n");
		return 2;
	}

	const size_t stack_size = 64 * 1024;
	char *stack = static_cast<char *>(malloc(stack_size));
	if (!stack)
		return 1;
	/* fcontext stacks grow down, so make_fcontext wants the top address. */
	ctx::fcontext_t peer = ctx::make_fcontext(stack + stack_size, stack_size, bounce);

	/* Warm-up: fault in the stack and settle caches and branch predictors. */
	peer = run(peer, n / 20 + 1);

	long rounds = n / 2;
	double t0 = now_ns();
	peer = run(peer, rounds);
	double t1 = now_ns();
	(void)peer;

	printf("switches=%ld\n", rounds * 2);
	printf("ns_per_op=%.3f\n", (t1 - t0) / (double)(rounds * 2));
	free(stack);
	return 0;
}
