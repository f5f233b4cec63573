// SPDX-License-Identifier: MIT
/*
 * pipes_test.cc - the spliced path's pipe pool (tools/weft-proxy/pipes.c):
 * a pipe comes back empty and is reused, pipes_limit caps the pipes in
 * existence, pooled or in use, with -EMFILE past it, and a pipe closed or
 * dropped makes room again; pipes_stats counts the pipes in use and
 * pooled, and each refusal, at the limit or when a pipe cannot be made.
 * One thread: the pool is per thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "pipes.h"

namespace {

/* Whether fd is an open descriptor. */
bool open_fd(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

TEST(PipesTest, APipeGivenBackIsTheNextOneTaken)
{
	pipes_limit(SIZE_MAX);
	struct pipe_pair a, b;
	ASSERT_EQ(pipes_get(&a), 0);
	EXPECT_GT(a.size, 0u);
	EXPECT_EQ(write(a.w, "x", 1), 1);
	char c;
	EXPECT_EQ(read(a.r, &c, 1), 1); /* empty again: it may go back */
	pipes_put(&a);
	ASSERT_EQ(pipes_get(&b), 0);
	EXPECT_EQ(b.r, a.r);
	EXPECT_EQ(b.w, a.w);
	pipes_drop(&b);
	EXPECT_FALSE(open_fd(b.r));
	EXPECT_FALSE(open_fd(b.w));
}

TEST(PipesTest, TheLimitCountsPooledAndUsedPipesAndDropsMakeRoom)
{
	pipes_limit(3);
	std::vector<struct pipe_pair> held(3);
	for (auto &p : held)
		ASSERT_EQ(pipes_get(&p), 0);
	struct pipe_pair x;
	EXPECT_EQ(pipes_get(&x), -EMFILE) << "a fourth pipe past the limit";
	/* Pooled, a pipe still counts: taking it back is fine, a new one not. */
	pipes_put(&held[2]);
	ASSERT_EQ(pipes_get(&x), 0);
	EXPECT_EQ(x.r, held[2].r);
	EXPECT_EQ(pipes_get(&held[2]), -EMFILE);
	/* Closed, it no longer counts. */
	pipes_drop(&x);
	ASSERT_EQ(pipes_get(&x), 0);
	EXPECT_TRUE(open_fd(x.r));
	pipes_drop(&x);
	pipes_drop(&held[0]);
	pipes_drop(&held[1]);
	/* All gone: three may exist again. */
	for (auto &p : held)
		ASSERT_EQ(pipes_get(&p), 0);
	for (auto &p : held)
		pipes_drop(&p);
	pipes_limit(SIZE_MAX);
}

TEST(PipesTest, AFullPoolClosesWhatComesBack)
{
	pipes_limit(SIZE_MAX);
	std::vector<struct pipe_pair> ps(PIPES_PER_WORKER + 1);
	for (auto &p : ps)
		ASSERT_EQ(pipes_get(&p), 0);
	for (auto &p : ps)
		pipes_put(&p);
	/* The pool kept PIPES_PER_WORKER of them; the one past it is closed. */
	EXPECT_FALSE(open_fd(ps.back().r));
	EXPECT_TRUE(open_fd(ps.front().r));
	for (int i = 0; i < PIPES_PER_WORKER; i++) {
		struct pipe_pair p;
		ASSERT_EQ(pipes_get(&p), 0);
		pipes_drop(&p);
	}
}

TEST(PipesTest, StatsCountInUsePooledAndEachRefusal)
{
	pipes_limit(SIZE_MAX);
	struct pipes_stats s0, s;
	pipes_stats(&s0);
	EXPECT_EQ(s0.limit, SIZE_MAX);
	struct pipe_pair a, b;
	ASSERT_EQ(pipes_get(&a), 0);
	ASSERT_EQ(pipes_get(&b), 0);
	pipes_stats(&s);
	EXPECT_EQ(s.in_use, s0.in_use + 2);
	pipes_put(&a);
	pipes_stats(&s);
	EXPECT_EQ(s.in_use, s0.in_use + 1);
	EXPECT_EQ(s.pooled, s0.pooled + 1);
	ASSERT_EQ(pipes_get(&a), 0); /* the pooled one */
	pipes_stats(&s);
	EXPECT_EQ(s.in_use, s0.in_use + 2);
	EXPECT_EQ(s.pooled, s0.pooled);

	/* At the limit: refused and counted as such, twice. */
	pipes_limit(s.in_use + s.pooled);
	struct pipe_pair x;
	EXPECT_EQ(pipes_get(&x), -EMFILE);
	EXPECT_EQ(pipes_get(&x), -EMFILE);
	pipes_stats(&s);
	EXPECT_EQ(s.limit, s.in_use + s.pooled);
	EXPECT_EQ(s.refused_limit, s0.refused_limit + 2);
	EXPECT_EQ(s.refused_error, s0.refused_error);
	pipes_limit(SIZE_MAX);

	/* Out of descriptors: pipe2 fails, counted as an error.  The soft
	 * limit is set to the lowest free descriptor, then put back. */
	struct rlimit rl, low;
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	int lowest = dup(0);
	ASSERT_GE(lowest, 0);
	close(lowest);
	low = rl;
	low.rlim_cur = (rlim_t)lowest;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	int rc = pipes_get(&x);
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
	EXPECT_EQ(rc, -EMFILE);
	pipes_stats(&s);
	EXPECT_EQ(s.refused_error, s0.refused_error + 1);
	EXPECT_EQ(s.refused_limit, s0.refused_limit + 2);
	EXPECT_EQ(s.in_use, s0.in_use + 2) << "a failed pipes_get left a pipe counted";

	pipes_drop(&a);
	pipes_drop(&b);
	pipes_stats(&s);
	EXPECT_EQ(s.in_use, s0.in_use);
	EXPECT_EQ(s.pooled, s0.pooled);
}

} // namespace
