// SPDX-License-Identifier: MIT
/*
 * listener.c - accepting connections with one multishot accept.
 *
 * A listener keeps one IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT armed
 * on a ring: the kernel posts a completion per connection without a new
 * submission each time.  The operation belongs to a small task pinned to
 * the worker that opened the listener (the acceptor), so it always runs on
 * the same ring; while the multishot operation goes on, the acceptor stays
 * parked inside weft__io_multishot and each connection is handed, on the
 * owner's thread, to on_accept, which puts it in a channel.  Tasks on any
 * worker take connections from that channel with weft_listener_accept.
 *
 * When the multishot operation ends, the acceptor decides what next:
 *  - the channel was full: on_accept kept the connections it could not put
 *    there and asked the ring to stop accepting; the acceptor sends them
 *    (parking until consumers make room) and re-arms.  The kernel's
 *    backlog holds the rest: back-pressure, not an unbounded queue.
 *  - out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the
 *    connection stays in the backlog and the acceptor sleeps, 1 ms at first
 *    and doubling to 1 s, before trying again.  A full fd table never spins
 *    a core; the first success resets the delay.
 *  - a transient error of one connection (ECONNABORTED and kin): re-arm at
 *    once if a connection came through since the last arming, else back
 *    off as for a shortage.  An error that repeats with nothing accepted
 *    between is the listener's, whatever accept(2) calls it: a security
 *    module that refuses every accept says EPERM before it takes a
 *    connection from the queue, so re-arming at once would spin a core
 *    for as long as the refusal lasts.
 *  - cancelled (weft_listener_close), or any other error (the socket is
 *    not listening, cannot accept, or was closed): the acceptor closes the
 *    channel, and the error reaches the tasks in weft_listener_accept.
 *
 * Lifetime: stopping and freeing are two steps, as for a socket's
 * shutdown and close.  weft_listener_close ends the acceptor and empties
 * the channel, which stays closed: an accept loop elsewhere that calls
 * again gets -EBADF, not freed memory, so a server can close and then
 * join its loops.  weft_listener_free drops the opener's reference; the
 * acceptor and every task inside weft_listener_accept hold one too
 * (`refs`), and the last one out frees the memory, so a task still
 * leaving accept when free runs is safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/internal.h"
#include "scheduler/internal.h"
#include "weft.h"
#include "weft/io.h"
#include "weft/sync.h"

#define QUEUE 128             /* accepted connections waiting for a taker */
#define BACKOFF_MIN (1 * WEFT_MSEC)
#define BACKOFF_MAX (1 * WEFT_SEC)

struct weft_listener {
	int fd;
	_Atomic unsigned refs;
	struct weft_chan *ch;      /* accepted descriptors (int) */
	struct weft_task *acceptor;
	struct weft__worker *owner;
	_Atomic int err;           /* why accepting stopped, once it has */
	uint64_t key;              /* the armed operation, for pausing */
	/* Owner only: connections accepted while the channel was full. */
	int *held;
	size_t nheld, cap;
	bool pausing;
	bool took;                 /* owner only: a connection since the last arming */
	/* The opener's: weft_listener_close has run, and returned closed_rc. */
	bool closed;
	int closed_rc;
};

static void unref(struct weft_listener *l)
{
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	weft_chan_free(l->ch);
	free(l->held);
	free(l);
}

/* On the owner's thread, outside any task: one more connection. */
static void on_accept(void *arg, int res)
{
	struct weft_listener *l = arg;
	if (res < 0)
		return; /* the final completion reports the error */
	l->took = true;
	if (!l->nheld && weft_chan_trysend(l->ch, &res) == 0)
		return;
	if (l->nheld == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		int *h = realloc(l->held, cap * sizeof(*h));
		if (!h) {
			close(res); /* nowhere to keep it: refuse it */
			return;
		}
		l->held = h;
		l->cap = cap;
	}
	l->held[l->nheld++] = res;
	/* No key: the final completion, the operation over already. */
	if (!l->pausing && l->key) {
		l->pausing = true;
		weft__io_cancel_key(l->owner, l->key);
	}
}

static void prep_accept(struct io_uring_sqe *sqe, void *arg)
{
	struct weft_listener *l = arg;
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
}

static bool out_of_resources(int e)
{
	return e == -EMFILE || e == -ENFILE || e == -ENOBUFS || e == -ENOMEM;
}

static bool transient(int e)
{
	/* accept(2): errors of the connection, not of the listener.  Not
	 * EOPNOTSUPP, which the man page lists among them: Linux gives it for
	 * a socket that cannot accept at all (a datagram socket), and re-arming
	 * on it would spin for ever. */
	return e == -ECONNABORTED || e == -EPROTO || e == -EPERM || e == -EINTR ||
	       e == -ENETDOWN || e == -ENOPROTOOPT || e == -EHOSTDOWN || e == -ENONET ||
	       e == -EHOSTUNREACH || e == -ENETUNREACH || e == -EAGAIN;
}

static intptr_t acceptor(void *arg)
{
	struct weft_listener *l = arg;
	uint64_t backoff = 0;
	int err = 0;
	for (;;) {
		/* Connections kept while paused go first, in order. */
		size_t i = 0;
		for (; i < l->nheld && err == 0; i++)
			if ((err = weft_chan_send(l->ch, &l->held[i])) < 0)
				break;
		if (err < 0) {
			for (; i < l->nheld; i++)
				close(l->held[i]);
			l->nheld = 0;
			break;
		}
		l->nheld = 0;
		l->pausing = false;
		l->took = false;
		int rc = weft__io_multishot(prep_accept, on_accept, l, &l->key);
		if (rc >= 0) {
			/* A final completion may carry a connection. */
			on_accept(l, rc);
			backoff = 0;
			continue;
		}
		if (l->took)
			backoff = 0; /* accepting worked: a pause starts short again */
		if (rc == -ECANCELED && l->pausing)
			continue;
		if (transient(rc) && l->took)
			continue;
		if (out_of_resources(rc) || transient(rc)) {
			backoff = backoff ? backoff * 2 : BACKOFF_MIN;
			if (backoff > BACKOFF_MAX)
				backoff = BACKOFF_MAX;
			if ((err = weft_sleep(backoff)) < 0)
				break;
			continue;
		}
		err = rc;
		break;
	}
	for (size_t i = 0; i < l->nheld; i++)
		close(l->held[i]);
	l->nheld = 0;
	atomic_store_explicit(&l->err, err == -EPIPE || err == -ECANCELED ? -EBADF : err,
			      memory_order_relaxed);
	/* After err: a taker that sees the channel closed reads it. */
	weft_chan_close(l->ch);
	unref(l);
	return 0;
}

int weft_listener_open(int fd, struct weft_listener **out)
{
	struct weft_task *self = weft__current();
	if (fd < 0)
		return -EINVAL;
	if (!weft__io_supported(self->worker, IORING_OP_ACCEPT))
		return -EOPNOTSUPP;
	struct weft_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->fd = fd;
	l->owner = self->worker;
	atomic_init(&l->refs, 2); /* the opener and the acceptor */
	l->ch = weft_chan_new(sizeof(int), QUEUE);
	struct weft_spawn_opts o = {.name = "weft-acceptor", .flags = WEFT_SPAWN_PINNED};
	if (l->ch && (l->acceptor = weft__task_new_stacked(self->worker, acceptor, l, &o)))
		weft__enqueue(self->worker->rt, l->acceptor, false);
	if (!l->acceptor) {
		if (l->ch)
			weft_chan_free(l->ch);
		free(l);
		return -ENOMEM;
	}
	*out = l;
	return 0;
}

int weft_listener_accept(struct weft_listener *l)
{
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	int fd;
	int rc = weft_chan_recv(l->ch, &fd);
	if (rc == 0)
		rc = fd;
	else if (rc == -EPIPE)
		rc = atomic_load_explicit(&l->err, memory_order_relaxed);
	unref(l);
	return rc;
}

int weft_listener_close(struct weft_listener *l)
{
	if (l->closed)
		return l->closed_rc;
	/* The acceptor may be parked in its operation, in a send, or asleep:
	 * the cancellation ends each. */
	weft_cancel(l->acceptor);
	struct weft_scope s;
	weft_scope_shield(&s, WEFT_NEVER);
	int rc = weft_join(l->acceptor, NULL);
	weft_scope_end(&s);
	/* The acceptor closed the channel before it ended: what is left in it
	 * was accepted and never taken, and no more can come.  A taker racing
	 * this loop gets a connection or -EBADF, never a closed descriptor. */
	int fd;
	while (weft_chan_tryrecv(l->ch, &fd) == 0)
		close(fd);
	int err = atomic_load_explicit(&l->err, memory_order_relaxed);
	l->closed = true;
	l->closed_rc = rc < 0 ? rc : err == -EBADF ? 0 : err;
	return l->closed_rc;
}

void weft_listener_free(struct weft_listener *l)
{
	weft_listener_close(l);
	unref(l);
}
