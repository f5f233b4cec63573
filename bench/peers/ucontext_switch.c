// SPDX-License-Identifier: MIT
/*
 * glibc ucontext peer for weft's `switch` microbenchmark.
 *
 * Main and one makecontext context ping-pong with swapcontext; every
 * swapcontext counts as one one-way switch, matching weft's `switch`.
 * swapcontext saves and restores the signal mask (a syscall per switch),
 * which is exactly why it is the slow baseline worth showing.
 * Usage: ucontext_switch [-n N]   (last stdout line: ns_per_op=<float>)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

static ucontext_t main_ctx, peer_ctx;

static void bounce(void)
{
	/* Never returns; main stops resuming it once it has measured enough. */
	for (;;)
		swapcontext(&peer_ctx, &main_ctx);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Kept out of main: getcontext returns twice, which would make the
 * compiler treat main's locals as clobberable. */
static int make_peer(void *stack, size_t stack_size)
{
	if (getcontext(&peer_ctx) != 0)
		return -1;
	peer_ctx.uc_stack.ss_sp = stack;
	peer_ctx.uc_stack.ss_size = stack_size;
	peer_ctx.uc_link = NULL;
	makecontext(&peer_ctx, bounce, 0);
	return 0;
}

/* 2*rounds one-way switches. */
static void run(long rounds)
{
	for (long i = 0; i < rounds; i++)
		swapcontext(&main_ctx, &peer_ctx);
}

int main(int argc, char **argv)
{
	long n = 2000000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			n = strtol(argv[++i], NULL, 10);
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
	void *stack = malloc(stack_size);
	if (!stack || make_peer(stack, stack_size) != 0)
		return 1;

	run(n / 20 + 1); /* warm-up */

	long rounds = n / 2;
	double t0 = now_ns();
	run(rounds);
	double t1 = now_ns();

	printf("switches=%ld\n", rounds * 2);
	printf("ns_per_op=%.3f\n", (t1 - t0) / (double)(rounds * 2));
	free(stack);
	return 0;
}
