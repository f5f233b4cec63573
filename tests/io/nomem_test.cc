// SPDX-License-Identifier: MIT
/*
 * nomem_test.cc - the runtime's own tasks when memory runs out: a watch's
 * function, a watched stream's function, a timeout's sweeper and a
 * listener's acceptor that cannot get a stack are known to have failed at
 * once (runtime/task.c, weft__task_new_stacked), so the fd is closed or
 * the error reported, instead of a task that ends without running its
 * function and loses what that function was to close.  A group wait whose
 * deadline's timer cannot be stored ends with -ENOMEM, rather than failing
 * every wait at once and spinning until the deadline.  And a worker's
 * buffer ring that could not be set up for want of memory is tried again
 * by the next stream, not refused for good.  A watch's sweeper whose
 * pause gets no timer goes on sweeping: the timeout still fires.
 *
 * This test is linked with -Wl,--wrap=mmap64,--wrap=realloc (mmap64: what
 * mmap is with 64-bit file offsets), so the library's calls come here.
 * While `fail_stacks` is set, mappings of stacks of the runtime's default
 * size (STACK: every test task asks for SMALL instead, so no default-size
 * stack exists before) fail; while `fail_maps` is set, every mapping
 * fails; while `fail_reallocs` is set, every realloc fails (the timer heap
 * grows with realloc).  ASan's leak check covers
 * "nothing left behind".
 *
 * It is linked with -Wl,--wrap=io_uring_submit,... too: while
 * `fail_submits` is set, a submission fails as the kernel's does when it
 * cannot allocate a request (-EAGAIN), until io_uring_get_events runs the
 * ring's deferred completions, which give requests back.
 */
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <thread>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"
#include "weft/sync.h"

constexpr size_t STACK = 192 * 1024; /* the runtime's default: never mapped */
constexpr size_t SMALL = 64 * 1024;  /* every task the test spawns */

namespace {
std::atomic<bool> fail_stacks{false}, fail_maps{false}, fail_reallocs{false};
std::atomic<int> failed_maps{0}, failed_reallocs{0};
/* Submissions: failed in all, in a row since the last io_uring_get_events,
 * and whether a run of failures was cut short (a caller that never asked
 * for the completions would have spun for ever). */
std::atomic<bool> fail_submits{false}, submits_gave_up{false};
std::atomic<long> failed_submits{0}, failed_in_a_row{0};
constexpr long GIVE_UP = 1000000;
} // namespace

extern "C" void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
extern "C" void *__real_realloc(void *p, size_t size);
extern "C" int __real_io_uring_submit(struct io_uring *ring);
extern "C" int __real_io_uring_submit_and_get_events(struct io_uring *ring);
extern "C" int __real_io_uring_get_events(struct io_uring *ring);

/* mmap64: what the library's mmap calls become with 64-bit file offsets. */
extern "C" void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	/* Stack mappings are MAP_NORESERVE: a guard page and a stack, or a
	 * slab of them.  SMALL ones stay below this. */
	if (fail_maps.load() || (fail_stacks.load() && (flags & MAP_NORESERVE) && len >= STACK)) {
		failed_maps++;
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return __real_mmap64(addr, len, prot, flags, fd, off);
}

extern "C" void *__wrap_realloc(void *p, size_t size)
{
	if (fail_reallocs.load()) {
		failed_reallocs++;
		errno = ENOMEM;
		return nullptr;
	}
	return __real_realloc(p, size);
}

static bool submit_fails()
{
	if (!fail_submits.load())
		return false;
	failed_submits++;
	if (++failed_in_a_row >= GIVE_UP) {
		submits_gave_up = true;
		fail_submits = false;
	}
	return true;
}

extern "C" int __wrap_io_uring_submit(struct io_uring *ring)
{
	return submit_fails() ? -EAGAIN : __real_io_uring_submit(ring);
}

extern "C" int __wrap_io_uring_submit_and_get_events(struct io_uring *ring)
{
	/* A failed submission runs no completions either. */
	return submit_fails() ? -EAGAIN : __real_io_uring_submit_and_get_events(ring);
}

extern "C" int __wrap_io_uring_get_events(struct io_uring *ring)
{
	fail_submits = false;
	failed_in_a_row = 0;
	return __real_io_uring_get_events(ring);
}

namespace {

/* Runs body in a task with a SMALL stack, in a runtime of `workers` whose
 * default stack is STACK. */
intptr_t run_small(unsigned workers, std::function<intptr_t()> body)
{
	struct weft_opts o = {};
	o.workers = workers;
	o.stack_size = STACK;
	struct weft_rt *rt = nullptr;
	EXPECT_EQ(weft_rt_new(&rt, &o), 0);
	if (!rt)
		return -1;
	struct weft_spawn_opts so = {};
	so.stack_size = SMALL;
	struct weft_task *t = weft_rt_spawn(
		rt, [](void *arg) -> intptr_t { return (*static_cast<std::function<intptr_t()> *>(arg))(); },
		&body, &so);
	intptr_t result = -1;
	EXPECT_NE(t, nullptr);
	if (t) {
		EXPECT_EQ(weft_block_on(t, &result), 0);
	}
	fail_stacks = fail_maps = fail_reallocs = fail_submits = false;
	EXPECT_EQ(weft_rt_shutdown(rt, 2 * WEFT_SEC), 0) << "tasks left behind at shutdown";
	return result;
}

/* What the peer of an fd the runtime dropped reads: 0 once it is closed. */
ssize_t peer_reads(int fd)
{
	struct weft_scope sc;
	weft_scope_deadline(&sc, 5 * WEFT_SEC);
	char c;
	ssize_t n = weft_recv(fd, &c, 1, 0);
	weft_scope_end(&sc);
	return n;
}

bool closed(int fd)
{
	errno = 0;
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

std::atomic<int> fn_runs{0};

void stream_fn(struct weft_stream *, int, int, void *)
{
	fn_runs++;
}

void watch_fn(int fd, const void *, ssize_t, void *)
{
	fn_runs++;
	close(fd);
}

/* Begins a watch on fd with `begin`; then, with stack mappings failing, the
 * peer sends a byte.  The function's task gets no stack, so the runtime
 * must close fd (the peer reads the end) without running the function. */
void expect_dropped_when_bytes_come(std::function<void(int fd)> begin)
{
	pair p = socket_pair();
	fn_runs = 0;
	intptr_t r = run_small(1, [&]() -> intptr_t {
		begin(p.b);
		fail_stacks = true;
		EXPECT_EQ(write(p.a, "x", 1), 1);
		EXPECT_EQ(peer_reads(p.a), 0) << "the watched fd was not closed";
		EXPECT_GT(failed_maps.load(), 0) << "no stack mapping was refused";
		EXPECT_TRUE(closed(p.b));
		return 0;
	});
	EXPECT_EQ(r, 0);
	EXPECT_EQ(fn_runs.load(), 0);
	close(p.a);
}

TEST(NomemTest, AWatchedStreamWhoseFunctionGetsNoStackIsEndedByItsOwner)
{
	expect_dropped_when_bytes_come([](int fd) {
		struct weft_stream *s = nullptr;
		EXPECT_EQ(weft_stream_open(fd, &s), 0);
		EXPECT_EQ(weft_stream_watch(s, WEFT_NEVER, stream_fn, nullptr), 0);
	});
}

TEST(NomemTest, AWatchWhoseFunctionGetsNoStackClosesItsFd)
{
	expect_dropped_when_bytes_come(
		[](int fd) { EXPECT_EQ(weft_watch(fd, WEFT_NEVER, watch_fn, nullptr), 0); });
}

TEST(NomemTest, AWatchWhoseSweeperGetsNoStackIsRefused)
{
	pair p = socket_pair();
	fn_runs = 0;
	intptr_t r = run_small(1, [&]() -> intptr_t {
		fail_stacks = true;
		/* A timeout needs the sweeper, which cannot run: refused, and
		 * the fd is still the caller's. */
		EXPECT_EQ(weft_watch(p.b, 10 * WEFT_SEC, watch_fn, nullptr), -ENOMEM);
		EXPECT_FALSE(closed(p.b));
		fail_stacks = false;
		EXPECT_EQ(weft_watch(p.b, 10 * WEFT_SEC, watch_fn, nullptr), 0);
		EXPECT_EQ(write(p.a, "x", 1), 1);
		return 0;
	});
	EXPECT_EQ(r, 0);
	EXPECT_EQ(fn_runs.load(), 1) << "the second watch's function did not run";
	close(p.a);
}

TEST(NomemTest, AListenerWhoseAcceptorGetsNoStackIsRefused)
{
	struct sockaddr_in addr;
	int lfd = listen_loopback(&addr);
	intptr_t r = run_small(1, [&]() -> intptr_t {
		struct weft_listener *l = nullptr;
		fail_stacks = true;
		EXPECT_EQ(weft_listener_open(lfd, &l), -ENOMEM);
		fail_stacks = false;
		EXPECT_EQ(weft_listener_open(lfd, &l), 0);
		if (l) {
			EXPECT_EQ(weft_listener_close(l), 0);
			weft_listener_free(l);
		}
		return 0;
	});
	EXPECT_EQ(r, 0);
	close(lfd);
}

TEST(NomemTest, AStreamRefusedForWantOfMemoryCanBeOpenedOnceMemoryIsBack)
{
	pair p = socket_pair();
	intptr_t r = run_small(1, [&]() -> intptr_t {
		struct weft_stream *s = nullptr;
		/* The worker's buffer ring is set up by the first stream. */
		fail_maps = true;
		EXPECT_EQ(weft_stream_open(p.b, &s), -ENOMEM);
		fail_maps = false;
		EXPECT_EQ(weft_stream_open(p.b, &s), 0) << "an -ENOMEM was remembered";
		if (s) {
			EXPECT_EQ(weft_stream_close(s), 0);
		}
		return 0;
	});
	EXPECT_EQ(r, 0);
	close(p.a);
	close(p.b);
}

intptr_t wait_for(void *arg)
{
	return weft_sem_acquire(static_cast<struct weft_sem *>(arg));
}

TEST(NomemTest, AGroupWaitWhoseDeadlineCannotBeKeptCancelsTheGroup)
{
	intptr_t r = run_small(1, [&]() -> intptr_t {
		struct weft_sem never;
		weft_sem_init(&never, 0);
		struct weft_group *g = weft_group_new(0);
		EXPECT_NE(g, nullptr);
		struct weft_spawn_opts so = {};
		so.stack_size = SMALL;
		EXPECT_EQ(weft_group_spawn(g, wait_for, &never, &so), 0);
		/* The deadline's timer cannot be stored: every wait fails at
		 * once.  The group is cut short as by the deadline, and its
		 * child, on this same worker, gets to run and end. */
		struct weft_scope sc;
		weft_scope_deadline(&sc, 3 * WEFT_SEC);
		fail_reallocs = true;
		int rc = weft_group_wait(g);
		fail_reallocs = false;
		weft_scope_end(&sc);
		EXPECT_EQ(rc, -ENOMEM);
		EXPECT_GT(failed_reallocs.load(), 0) << "no timer allocation was refused";
		weft_group_free(g);
		return 0;
	});
	EXPECT_EQ(r, 0);
}

std::atomic<ssize_t> watch_result{1};

void record_fn(int fd, const void *, ssize_t n, void *)
{
	watch_result = n;
	close(fd);
}

/* A watch's sweeper whose pause cannot get its timer keeps sweeping (it
 * used to leave, and the watch's timeout never fired): the 50 ms timeout
 * fires once memory is back. */
TEST(NomemTest, AWatchTimeoutFiresThoughItsSweepersTimerWasRefused)
{
	pair p = socket_pair(), wake = socket_pair();
	watch_result = 1;
	std::thread poker([&] {
		usleep(200 * 1000);
		EXPECT_EQ(write(wake.a, "x", 1), 1);
	});
	intptr_t r = run_small(1, [&]() -> intptr_t {
		fail_reallocs = true;
		EXPECT_EQ(weft_watch(p.b, 50 * WEFT_MSEC, record_fn, nullptr), 0);
		/* A wait with no timer of its own while the sweeper naps. */
		char c;
		EXPECT_EQ(weft_recv(wake.b, &c, 1, 0), 1);
		fail_reallocs = false;
		EXPECT_GT(failed_reallocs.load(), 0) << "no timer allocation was refused";
		for (int i = 0; i < 100 && watch_result.load() == 1; i++)
			weft_sleep(10 * WEFT_MSEC);
		return 0;
	});
	poker.join();
	EXPECT_EQ(r, 0);
	EXPECT_EQ(watch_result.load(), -ETIMEDOUT) << "the watch's timeout never fired";
	close(p.a);
	close(wake.a);
	close(wake.b);
}

intptr_t poll_out(void *arg)
{
	return weft_poll(*static_cast<int *>(arg), POLLOUT);
}

/* More operations in one round than the SQ (256 entries) holds, while every
 * submission fails: the worker that takes the SQE past the last must run
 * the ring's completions and try again, not retry the submission alone. */
TEST(NomemTest, AFullSubmissionQueueThatCannotBeSubmittedRunsTheCompletions)
{
	pair p = socket_pair();
	constexpr int N = 300;
	submits_gave_up = false;
	failed_submits = 0;
	failed_in_a_row = 0;
	intptr_t r = run_small(1, [&]() -> intptr_t {
		struct weft_group *g = weft_group_new(0);
		EXPECT_NE(g, nullptr);
		if (!g)
			return -1;
		struct weft_spawn_opts so = {};
		so.stack_size = SMALL;
		for (int i = 0; i < N; i++)
			EXPECT_EQ(weft_group_spawn(g, poll_out, &p.a, &so), 0);
		/* The children run on this worker once the wait parks us. */
		fail_submits = true;
		EXPECT_EQ(weft_group_wait(g), 0);
		fail_submits = false;
		weft_group_free(g);
		return 0;
	});
	EXPECT_EQ(r, 0);
	EXPECT_GT(failed_submits.load(), 0) << "no submission was refused";
	EXPECT_FALSE(submits_gave_up.load())
		<< "the worker retried a failing submission " << GIVE_UP
		<< " times without running the completions";
	close(p.a);
	close(p.b);
}

} // namespace
