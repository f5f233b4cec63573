// SPDX-License-Identifier: MIT
/*
 * stream_orphan_test.cc - a watched stream that cannot get a task it needs
 * (no task object to be had) is ended by its owner: the receive stopped,
 * the fd closed, the stream freed, the function never run, and the runtime
 * goes on (io/stream.c, `orphan`).  Both ways there: the task for the
 * function, when bytes arrive; and the timeout's sweeper, when the owner
 * links a watch with a timeout that was begun on another worker.
 *
 * Task objects come in slabs from aligned_alloc (runtime/task.c).  This
 * test is linked with -Wl,--wrap=aligned_alloc, so the library's calls come
 * here, where they fail while `fail_allocs` is set.  Spawning until a spawn
 * fails then uses up every task object the runtime holds, and the next one
 * the stream needs cannot be made.  ASan's leak check covers "freed".
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "common.h"
#include "sockets.h"
#include "weft/io.h"
#include "weft/sync.h"

namespace {
std::atomic<bool> fail_allocs{false};
std::atomic<int> wrapped_failures{0};
} // namespace

extern "C" void *__real_aligned_alloc(size_t align, size_t size);

extern "C" void *__wrap_aligned_alloc(size_t align, size_t size)
{
	if (fail_allocs.load(std::memory_order_relaxed)) {
		wrapped_failures++;
		errno = ENOMEM;
		return nullptr;
	}
	return __real_aligned_alloc(align, size);
}

namespace {

std::atomic<int> fn_runs{0};

void never_fn(struct weft_stream *s, int fd, int status, void *arg)
{
	(void)s;
	(void)fd;
	(void)status;
	(void)arg;
	fn_runs++;
}

intptr_t blocker(void *arg)
{
	return weft_sem_acquire(static_cast<struct weft_sem *>(arg));
}

TEST(StreamOrphanTest, AStreamWhoseFunctionCannotStartIsEndedByItsOwner)
{
	pair p = socket_pair();
	intptr_t r = run_in_weft(1, [&]() -> intptr_t {
		struct weft_stream *s = nullptr;
		EXPECT_EQ(weft_stream_open(p.b, &s), 0);
		EXPECT_EQ(weft_stream_watch(s, WEFT_NEVER, never_fn, nullptr), 0);

		/* Every task object the runtime holds goes to a blocker. */
		struct weft_sem sem;
		weft_sem_init(&sem, 0);
		std::vector<struct weft_task *> blockers;
		fail_allocs = true;
		for (;;) {
			struct weft_task *t = weft_spawn(blocker, &sem, nullptr);
			if (!t)
				break;
			blockers.push_back(t);
		}
		EXPECT_GT(wrapped_failures.load(), 0) << "task objects did not come from aligned_alloc";

		/* The byte completes the stream's receive; its function needs a
		 * task, which cannot be made, so the owner closes the fd: the
		 * peer reads the end. */
		EXPECT_EQ(write(p.a, "x", 1), 1);
		struct weft_scope sc;
		weft_scope_deadline(&sc, 10 * WEFT_SEC);
		char c;
		ssize_t n = weft_recv(p.a, &c, 1, 0);
		weft_scope_end(&sc);
		EXPECT_EQ(n, 0) << "the orphaned stream's fd was not closed";
		errno = 0;
		EXPECT_EQ(fcntl(p.b, F_GETFD), -1);
		EXPECT_EQ(errno, EBADF);
		EXPECT_EQ(fn_runs.load(), 0);

		/* And the runtime goes on: once memory is back, tasks start
		 * and finish as before. */
		fail_allocs = false;
		for (size_t i = 0; i < blockers.size(); i++)
			weft_sem_release(&sem);
		for (struct weft_task *t : blockers)
			EXPECT_EQ(join(t), 0);
		struct weft_task *t = weft_spawn(blocker, &sem, nullptr);
		EXPECT_NE(t, nullptr);
		weft_sem_release(&sem);
		EXPECT_EQ(join(t), 0);
		return 0;
	});
	EXPECT_EQ(r, 0);
	EXPECT_EQ(fn_runs.load(), 0);
	close(p.a);
}

/* ---- the sweeper, for a watch begun away from the owner ----------------------- */

struct away {
	pair p;
	struct weft_stream *s;
	struct weft_sem go;       /* the watcher may begin */
	int watch_rc;
	ssize_t peer_read;        /* what the peer read once the watch began */
	struct weft_sem release;  /* the blockers may finish */
};

intptr_t open_on_owner(void *arg)
{
	struct away *a = static_cast<struct away *>(arg);
	return weft_stream_open(a->p.b, &a->s);
}

/* On worker 1: begins the watch, with a timeout, on worker 0's stream. */
intptr_t watcher(void *arg)
{
	struct away *a = static_cast<struct away *>(arg);
	if (weft_sem_acquire(&a->go) < 0)
		return -1;
	a->watch_rc = weft_stream_watch(a->s, 10 * WEFT_SEC, never_fn, nullptr);
	return 0;
}

/* On worker 0, the owner: takes every task object worker 0 could find,
 * stays alive (a task that ended would give its object back), lets the
 * watch begin, and reads what the peer sees. */
intptr_t exhaust_and_wait(void *arg)
{
	struct away *a = static_cast<struct away *>(arg);
	std::vector<struct weft_task *> blockers;
	fail_allocs = true;
	for (;;) {
		struct weft_task *t = weft_spawn(blocker, &a->release, nullptr);
		if (!t)
			break;
		blockers.push_back(t);
	}
	weft_sem_release(&a->go);
	struct weft_scope sc;
	weft_scope_deadline(&sc, 10 * WEFT_SEC);
	char c;
	a->peer_read = weft_recv(a->p.a, &c, 1, 0);
	weft_scope_end(&sc);
	fail_allocs = false;
	for (size_t i = 0; i < blockers.size(); i++)
		weft_sem_release(&a->release);
	for (struct weft_task *t : blockers)
		EXPECT_EQ(join(t), 0);
	return 0;
}

TEST(StreamOrphanTest, AWatchWhoseSweeperCannotStartIsEndedByTheOwner)
{
	struct away a = {};
	a.p = socket_pair();
	a.watch_rc = 1;
	a.peer_read = 1;
	fn_runs = 0;
	intptr_t r = run_in_weft(2, [&]() -> intptr_t {
		EXPECT_EQ(on_worker(0, open_on_owner, &a), 0);
		weft_sem_init(&a.go, 0);
		weft_sem_init(&a.release, 0);
		struct weft_spawn_opts o = {};
		o.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED;
		o.worker = 1;
		struct weft_task *w = weft_spawn(watcher, &a, &o);
		EXPECT_NE(w, nullptr);
		/* The watch is the owner's to link; its timeout needs the
		 * owner's sweeper, a task that cannot be made: the owner ends
		 * the stream, and the peer reads the end. */
		EXPECT_EQ(on_worker(0, exhaust_and_wait, &a), 0);
		EXPECT_EQ(join(w), 0);
		return 0;
	});
	EXPECT_EQ(r, 0);
	EXPECT_EQ(a.watch_rc, 0) << "the watch is begun away from the owner: it cannot fail there";
	EXPECT_EQ(a.peer_read, 0) << "the orphaned stream's fd was not closed";
	errno = 0;
	EXPECT_EQ(fcntl(a.p.b, F_GETFD), -1);
	EXPECT_EQ(errno, EBADF);
	EXPECT_EQ(fn_runs.load(), 0);
	close(a.p.a);
}

} // namespace
