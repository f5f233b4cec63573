// SPDX-License-Identifier: MIT
/*
 * fuzz.h - what the libFuzzer targets share: a check that aborts with its
 * place (libFuzzer keeps the input that got there), and a small generator
 * seeded from the input, so that split points and limits drawn from it
 * reproduce from the input alone.
 */
#ifndef WEFT_TESTS_FUZZ_H
#define WEFT_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                  \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* The generator's state: each input seeds it with rng = hash(data, size). */
static uint64_t rng;

static inline uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* An FNV-1a hash of the input, never 0 (xorshift's fixed point). */
static inline uint64_t hash(const uint8_t *d, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 0x100000001b3u;
	return h | 1;
}

#endif
