// SPDX-License-Identifier: MIT
/*
 * stream.c - the receive side of a connection on one multishot receive.
 *
 * weft_recv costs the kernel, per message, a receive that finds no data
 * and arms a poll, then the poll's wake-up and the retried receive.  A
 * stream keeps one IORING_OP_RECV with IORING_RECV_MULTISHOT armed on the
 * ring of the worker that opened it (the owner), selecting buffers from the
 * owner's provided-buffer ring (bufs.c): the kernel posts a completion per
 * arrival with no submission, no poll arm and no failed attempt.  The
 * completions are reaped on the owner (weft__stream_complete) and queue
 * (buffer id, length) on the stream, linked through the ring's per-buffer
 * metadata, so queueing allocates nothing.  A task on any worker reads
 * with weft_stream_recv:
 *  - bytes queued: it copies them out, and the buffers it empties go back
 *    to the ring (through the owner when it runs elsewhere, bufs.c);
 *  - nothing queued: it parks on the wait protocol (runtime/wait.c) as
 *    `reader`.  The completion that brings bytes claims the wait, copies
 *    them straight into the reader's buffer, puts the buffer back at once
 *    and readies the reader, wherever it will run.  Cancellation and the
 *    deadline claim the wait instead; bytes are taken only by a claim, so
 *    -ECANCELED and -ETIMEDOUT mean nothing was read, and the bytes wait in
 *    the queue for the next read.
 *
 * On a unix socket the receive is not multishot: there, on kernels that
 * have not fixed it (seen on 6.18.44; liburing issue 1549), a multishot
 * receive can miss the end of stream that comes just after bytes and stay
 * armed, its reader waiting for good.  A stream on an AF_UNIX socket arms
 * one plain receive per arrival instead, on the same provided buffers: the
 * protocol below is the same, each completion simply ending its receive.
 *
 * A multishot receive ends (a completion without IORING_CQE_F_MORE) at the
 * end of the stream, on an error, with -ENOBUFS when the ring is empty, or
 * when the kernel ends it (CQ overflow); settle() decides what next.  The
 * kernel posts a multishot's completions in order and a re-armed receive
 * starts after the last, so bytes keep their order.
 *
 * Back-pressure: one stream whose reader is slow must not take the whole
 * ring from the others.  When QMAX buffers are queued the owner cancels the
 * receive; the socket's own buffer, then TCP's window, holds what follows.
 * Once the reader has drained the queue to QLOW the receive is re-armed:
 * by the reader itself on the owner, else by the owner when asked.  With
 * 256 buffers, 32 streams at their cap empty the ring; past that the
 * receives that find it empty wait, STARVED, and are re-armed once a buffer
 * comes back, never in a loop on an empty ring.  A reader that is waiting
 * needs a buffer only for the moment of its hand-off.
 *
 * Watching (weft_stream_watch): between bursts a stream may wait with no
 * task, its receive still armed.  A watched stream is on its owner's
 * `swatched` list; the completion that queues bytes (or ends the stream)
 * takes it off and starts a task for the user's function, and the watch
 * sweeper (watch.c) does the same with -ETIMEDOUT once the idle timeout
 * passed.  A watch begun on another worker (the reader was stolen) is put
 * on the list by the owner, when asked.  If no task (or no stack for it)
 * can be had, the stream is orphaned: the owner stops it and, once it has
 * ENDED, closes its fd and frees it, as shutdown does for every watched
 * stream.
 *
 * States (s->state, under s->lock), and what moves between them:
 *   ARMED     the receive is in the kernel, counted in owner->io_inflight;
 *             arm(), by the owner.
 *   STOPPING  cancelled (queue full, or closing), its final completion not
 *             yet reaped; stop().
 *   PAUSED    not armed, the queue at its cap; settle().  A reader that
 *             drains it re-arms it (on the owner) or asks the owner to:
 *   RESUMING  on the owner's `asked` list, to be re-armed; drained().
 *   STARVED   not armed, on the owner's starved list; settle() on -ENOBUFS
 *             with an empty ring; re-armed by weft__stream_poll.
 *   ENDED     never armed again: end of stream, an error, or closing;
 *             settle(), act().
 *
 * Invariants:
 *  1. Only the owner's thread arms, cancels or reaps the receive, and
 *     touches the starved list; other threads ask through `asked`.
 *  2. A buffer id is in the ring, in exactly one stream's queue, or on the
 *     owner's return list (bufs.c).  Queued bytes are taken out only under
 *     s->lock, by a reader or by the completion that claimed the reader.
 *  3. s is freed only by weft_stream_close (or, orphaned, by its owner),
 *     once s->state is ENDED and s is on no list of the owner: no
 *     completion and no request can reach it afterwards.
 *  4. While s->watched, no task holds s: the owner alone starts its
 *     function, once, and s->reader and s->closing stay unset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/internal.h"
#include "scheduler/internal.h"
#include "weft.h"
#include "weft/io.h"

#define QMAX 8 /* buffers a stream may queue (32 KiB) before it stops */
#define QLOW 4 /* re-armed once drained to this */
#define END_EOF 1

enum { ARMED, STOPPING, PAUSED, RESUMING, STARVED, ENDED };

struct weft_stream {
	uint32_t lock;             /* guards state through closer */
	uint8_t state;
	bool closing;
	int fd;
	bool oneshot;              /* AF_UNIX: one receive per arrival */
	struct weft__worker *owner;
	int end;                   /* 0; END_EOF; or the receive's -errno */
	unsigned nq;               /* buffers queued */
	uint16_t head, tail;       /* oldest and newest queued buffer */
	uint16_t off;              /* bytes of head already read */
	struct weft__wait *reader; /* w->data: its struct want */
	struct weft__wait *closer;
	/* Owner only: the link on the owner's starved list. */
	LIST_ENTRY(weft_stream) link;
	/* On the owner's asked list: written under both s->lock and
	 * owner->bufs.lock, so read under either; the link, under the latter. */
	bool asked;
	struct weft_stream *anext;
	/* The watch (weft_stream_watch), under lock. */
	bool watched;              /* waiting for its function's task */
	bool orphan;               /* no task could be had: the owner ends s */
	int wstatus;               /* for the task that runs wfn */
	weft_stream_fn wfn;
	void *warg;
	uint64_t expires;          /* weft_now() + timeout; WEFT_NEVER: none */
	/* Owner only: on the owner's swatched list, and the link. */
	bool wlinked;
	LIST_ENTRY(weft_stream) wlink;
};

/* Where a waiting reader wants its bytes. */
struct want {
	char *buf;
	size_t len;
};

static uint64_t key(const struct weft_stream *s)
{
	return (uint64_t)(uintptr_t)s | WEFT__TAG_STREAM;
}

/* Owner, under s->lock: hands the receive to the ring. */
static void arm(struct weft__worker *w, struct weft_stream *s)
{
	struct io_uring_sqe *sqe = weft__io_sqe(w);
	if (s->oneshot)
		io_uring_prep_recv(sqe, s->fd, NULL, 0, 0);
	else
		io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = WEFT__BUFS_GROUP;
	io_uring_sqe_set_data64(sqe, key(s));
	s->state = ARMED;
	w->io_inflight++;
}

/* Owner, under s->lock: cancels the armed receive. */
static void stop(struct weft__worker *w, struct weft_stream *s)
{
	weft__io_cancel_key(w, key(s));
	s->state = STOPPING;
}

/* Owner, under s->lock: s waits for a buffer (counted by
 * weft__bufs_starve). */
static void starve(struct weft__worker *w, struct weft_stream *s)
{
	LIST_INSERT_HEAD(&w->bufs.sstarved, s, link);
	s->state = STARVED;
}

static void unstarve(struct weft__worker *w, struct weft_stream *s)
{
	LIST_REMOVE(s, link);
	atomic_fetch_sub_explicit(&w->bufs.nstarved, 1, memory_order_relaxed);
}

/* Under s->lock, on any thread: has the owner act on s (invariant 1). */
static void ask(struct weft_stream *s)
{
	struct weft__bufs *b = &s->owner->bufs;
	weft__spin_lock(&b->lock);
	if (!s->asked) {
		s->asked = true;
		s->anext = b->asked;
		b->asked = s;
		atomic_store_explicit(&b->has_asked, true, memory_order_relaxed);
	}
	weft__spin_unlock(&b->lock);
	weft__unpark(s->owner);
}

/* Under s->lock: copies up to len queued bytes to buf; the buffers it
 * empties go back (here: the caller's worker, or NULL).  Returns the count. */
static size_t take(struct weft_stream *s, char *buf, size_t len, struct weft__worker *here)
{
	struct weft__bufs *b = &s->owner->bufs;
	size_t n = 0;
	while (s->nq && n < len) {
		unsigned bid = s->head;
		size_t k = b->meta[bid].len - s->off;
		if (k > len - n)
			k = len - n;
		memcpy(buf + n, weft__buf(b, bid) + s->off, k);
		n += k;
		s->off = (uint16_t)(s->off + k);
		if (s->off == b->meta[bid].len) {
			s->head = b->meta[bid].next;
			s->off = 0;
			s->nq--;
			weft__buf_give(s->owner, here, bid);
		}
	}
	return n;
}

/* Under s->lock: the queued buffers go back (here: the caller's worker). */
static void drop(struct weft_stream *s, struct weft__worker *here)
{
	while (s->nq) {
		unsigned bid = s->head;
		s->head = s->owner->bufs.meta[bid].next;
		s->nq--;
		weft__buf_give(s->owner, here, bid);
	}
}

/* Under s->lock: the queue got shorter; a paused receive resumes at QLOW. */
static void drained(struct weft_stream *s, struct weft__worker *here)
{
	if (s->state != PAUSED || s->nq > QLOW || s->closing)
		return;
	if (here == s->owner) {
		arm(here, s);
	} else {
		s->state = RESUMING;
		ask(s);
	}
}

/* Owner, under s->lock: the receive ended with res (its bytes, if any,
 * already queued); what next. */
static void settle(struct weft__worker *w, struct weft_stream *s, int res)
{
	if (s->closing) {
		s->state = ENDED;
	} else if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED)) {
		s->end = res == 0 ? END_EOF : res;
		s->state = ENDED;
	} else if (s->nq >= QMAX) {
		s->state = PAUSED; /* stopped for back-pressure (-ECANCELED) */
	} else if (res == -ENOBUFS && w->bufs.held >= WEFT__BUFS_N && weft__bufs_starve(w)) {
		starve(w, s);
	} else {
		/* Buffers came back since, drained below the cap meanwhile, or
		 * the kernel ended it with bytes. */
		arm(w, s);
	}
}

/* Owner, under s->lock: if a reader waits and there is something for it,
 * claims it and fills its buffer; returns it, to be readied with *result
 * after the unlock. */
static struct weft__wait *feed(struct weft__worker *w, struct weft_stream *s, int *result)
{
	struct weft__wait *r = s->reader;
	if (!r || (!s->nq && !s->end) || !weft__wait_claim(r))
		return NULL; /* a reader whose claim was lost unlinks itself */
	s->reader = NULL;
	struct want *want = r->data;
	if (s->nq) {
		*result = (int)take(s, want->buf, want->len, w);
		drained(s, w);
	} else {
		*result = s->end == END_EOF ? 0 : s->end;
	}
	r->value = 1; /* handed over: the reader does not touch s again */
	return r;
}

static int link_watch(struct weft__worker *w, struct weft_stream *s, uint64_t timeout);
static void orphan(struct weft__worker *w, struct weft_stream *s);

/* Owner, under s->lock: what a closer asked for.  Returns the closer, to be
 * readied after the unlock, once s may be freed. */
static struct weft__wait *act(struct weft__worker *w, struct weft_stream *s)
{
	if (!s->closing) {
		if (s->state == RESUMING)
			arm(w, s);
		if (s->watched && !s->wlinked) {
			uint64_t now = weft_now();
			if (link_watch(w, s, s->expires > now ? s->expires - now : 0) < 0)
				orphan(w, s);
		}
		return NULL;
	}
	if (s->state == ARMED)
		stop(w, s);
	if (s->state == STOPPING)
		return NULL; /* the final completion frees the closer */
	if (s->state == STARVED)
		unstarve(w, s);
	s->state = ENDED;
	return s->closer && weft__wait_claim(s->closer) ? s->closer : NULL;
}

/* ---- Watching ------------------------------------------------------------------ */

/* The task that runs a watched stream's function. */
static intptr_t watch_run(void *arg)
{
	struct weft_stream *s = arg;
	s->wfn(s, s->fd, s->wstatus, s->warg);
	return 0;
}

/* Under s->lock, on worker here (any): starts the task that runs s's
 * function with status; false when no task, or no stack for it, can be
 * had. */
static bool start(struct weft__worker *here, struct weft_stream *s, int status)
{
	struct weft_task *t = weft__task_new_stacked(here, watch_run, s, NULL);
	if (!t)
		return false;
	s->watched = false;
	s->wstatus = status;
	weft__enqueue(here->rt, t, true);
	weft_detach(t);
	return true;
}

/* Owner, under s->lock: s, watched, goes on the list the sweeper and
 * shutdown walk.  0, or -ENOMEM (no sweeper for its timeout). */
static int link_watch(struct weft__worker *w, struct weft_stream *s, uint64_t timeout)
{
	if (s->expires != WEFT_NEVER) {
		int rc = weft__sweep_need(w, timeout);
		if (rc < 0)
			return rc;
	}
	LIST_INSERT_HEAD(&w->bufs.swatched, s, wlink);
	s->wlinked = true;
	return 0;
}

static void unlink_watch(struct weft__worker *w, struct weft_stream *s)
{
	if (!s->wlinked)
		return;
	LIST_REMOVE(s, wlink);
	s->wlinked = false;
	if (s->expires != WEFT_NEVER)
		w->bufs.ntimed--;
}

/* Owner, under s->lock: s's function cannot run (out of memory); the
 * owner ends the stream itself (see the top).  s stays on the watched list,
 * without a timeout, for shutdown to find. */
static void orphan(struct weft__worker *w, struct weft_stream *s)
{
	unlink_watch(w, s);
	s->watched = false;
	s->orphan = s->closing = true;
	s->expires = WEFT_NEVER;
	drop(s, w);
	LIST_INSERT_HEAD(&w->bufs.swatched, s, wlink);
	s->wlinked = true;
	act(w, s); /* no closer: returns NULL */
}

/* Owner, under s->lock: true when s is an orphan that may go now
 * (invariant 3); it is off every list, and the caller disposes of it after
 * the unlock. */
static bool orphan_done(struct weft__worker *w, struct weft_stream *s)
{
	if (!s->orphan || s->state != ENDED || s->asked)
		return false;
	unlink_watch(w, s);
	return true;
}

static void dispose(struct weft_stream *s)
{
	close(s->fd);
	free(s);
}

/* Owner, under s->lock: the watch is over with status; start the
 * function. */
static void wake_watch(struct weft__worker *w, struct weft_stream *s, int status)
{
	unlink_watch(w, s);
	if (!start(w, s, status))
		orphan(w, s);
}

void weft__stream_sweep(struct weft__worker *w, uint64_t now)
{
	struct weft_stream *s, *next;
	for (s = LIST_FIRST(&w->bufs.swatched); s; s = next) {
		next = LIST_NEXT(s, wlink);
		/* Both fields change only while s is off this list, or here. */
		if (!s->watched || s->expires > now)
			continue;
		weft__spin_lock(&s->lock);
		wake_watch(w, s, -ETIMEDOUT);
		bool gone = orphan_done(w, s);
		weft__spin_unlock(&s->lock);
		if (gone)
			dispose(s);
	}
}

void weft__stream_fini(struct weft__worker *w)
{
	struct weft__bufs *b = &w->bufs;
	struct weft_stream *s, *next;
	/* The asked list first: it also holds watches begun on other workers
	 * that the owner never linked, and a stream may be on both lists. */
	for (s = b->asked; s; s = next) {
		next = s->anext;
		if (s->wlinked)
			LIST_REMOVE(s, wlink);
		if (s->watched || s->orphan)
			dispose(s);
	}
	while ((s = LIST_FIRST(&b->swatched))) {
		LIST_REMOVE(s, wlink);
		dispose(s);
	}
}

int weft_stream_watch(struct weft_stream *s, uint64_t timeout_ns, weft_stream_fn fn, void *arg)
{
	struct weft__worker *here = weft__current()->worker;
	if (!fn)
		return -EINVAL;
	uint64_t expires = weft__expiry(timeout_ns);
	weft__spin_lock(&s->lock);
	int rc = 0;
	if (s->watched || s->reader) {
		rc = -EBUSY;
	} else {
		s->wfn = fn;
		s->warg = arg;
		s->expires = expires;
		s->watched = true;
		if (s->nq || s->end) {
			if (!start(here, s, 0)) {
				s->watched = false;
				rc = -ENOMEM;
			}
		} else if (here == s->owner) {
			if ((rc = link_watch(here, s, timeout_ns)) < 0)
				s->watched = false;
		} else {
			ask(s); /* the owner links it (invariant 1) */
		}
	}
	weft__spin_unlock(&s->lock);
	return rc;
}

/* ---- Completions and requests --------------------------------------------------- */

void weft__stream_complete(struct weft__worker *w, uint64_t user_data, int res, unsigned flags)
{
	struct weft_stream *s = (struct weft_stream *)(uintptr_t)(user_data & ~WEFT__TAG_MASK);
	struct weft__bufs *b = &w->bufs;
	weft__spin_lock(&s->lock);
	if (flags & IORING_CQE_F_BUFFER) {
		unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
		b->held++;
		if (res > 0 && !s->closing) {
			b->meta[bid].len = (uint16_t)res;
			if (s->nq++)
				b->meta[s->tail].next = (uint16_t)bid;
			else
				s->head = (uint16_t)bid;
			s->tail = (uint16_t)bid;
		} else {
			weft__buf_put(b, bid);
		}
	}
	if (!(flags & IORING_CQE_F_MORE)) {
		w->io_inflight--;
		settle(w, s, res);
	}
	int result = 0;
	struct weft__wait *r = feed(w, s, &result), *closer = NULL;
	if (s->watched && (s->nq || s->end))
		wake_watch(w, s, 0);
	if (s->state == ARMED && s->nq >= QMAX)
		stop(w, s);
	if (s->closing && s->state == ENDED && !s->asked)
		closer = s->closer && weft__wait_claim(s->closer) ? s->closer : NULL;
	bool gone = orphan_done(w, s);
	weft__spin_unlock(&s->lock);
	/* s may be freed from here on, once the closer runs. */
	if (r)
		weft__wait_ready(r->task, result);
	if (closer)
		weft__wait_ready(closer->task, 0);
	if (gone)
		dispose(s);
}

void weft__stream_poll(struct weft__worker *w)
{
	struct weft__bufs *b = &w->bufs;
	if (atomic_load_explicit(&b->has_asked, memory_order_relaxed)) {
		for (;;) {
			weft__spin_lock(&b->lock);
			struct weft_stream *s = b->asked;
			if (s)
				b->asked = s->anext;
			else
				atomic_store_explicit(&b->has_asked, false, memory_order_relaxed);
			weft__spin_unlock(&b->lock);
			if (!s)
				break;
			/* s->asked stays set until here, so that an ask meanwhile
			 * neither pushes s twice nor is lost: act() sees it. */
			weft__spin_lock(&s->lock);
			weft__spin_lock(&b->lock);
			s->asked = false;
			weft__spin_unlock(&b->lock);
			struct weft__wait *closer = act(w, s);
			bool gone = orphan_done(w, s);
			weft__spin_unlock(&s->lock);
			if (closer)
				weft__wait_ready(closer->task, 0);
			if (gone)
				dispose(s);
		}
	}
	/* Re-armed once the ring has a buffer: not before (see the top). */
	struct weft_stream *s;
	while (!LIST_EMPTY(&b->sstarved) && b->held < WEFT__BUFS_N) {
		s = LIST_FIRST(&b->sstarved);
		weft__spin_lock(&s->lock);
		unstarve(w, s);
		arm(w, s);
		weft__spin_unlock(&s->lock);
	}
}

int weft_stream_open(int fd, struct weft_stream **out)
{
	struct weft__worker *w = weft__current()->worker;
	if (fd < 0)
		return -EINVAL;
	int rc = weft__bufs_init(w);
	if (rc < 0)
		return rc;
	struct weft_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int domain = 0;
	socklen_t dlen = sizeof(domain);
	s->fd = fd;
	s->oneshot = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 &&
		     domain == AF_UNIX;
	s->owner = w;
	arm(w, s);
	*out = s;
	return 0;
}

ssize_t weft_stream_recv(struct weft_stream *s, void *buf, size_t len)
{
	if (!len)
		return 0;
	struct weft_task *self = weft__current();
	weft__spin_lock(&s->lock);
	ssize_t rc;
	if (s->reader || s->watched) {
		rc = -EBUSY;
	} else if (s->nq) {
		rc = (ssize_t)take(s, buf, len, self->worker);
		drained(s, self->worker);
	} else if (s->end) {
		rc = s->end == END_EOF ? 0 : s->end;
	} else {
		struct want want = {buf, len};
		struct weft__wait w;
		int arm_rc = weft__wait_arm(self, &w);
		if (arm_rc < 0) {
			weft__spin_unlock(&s->lock);
			return arm_rc;
		}
		w.data = &want;
		w.value = 0;
		s->reader = &w;
		weft__spin_unlock(&s->lock);
		rc = weft__wait_park(self, &w, WEFT_NEVER, 0);
		if (!w.value) {
			/* Cancelled or timed out: no bytes were taken. */
			weft__spin_lock(&s->lock);
			if (s->reader == &w)
				s->reader = NULL;
			weft__spin_unlock(&s->lock);
		}
		return rc;
	}
	weft__spin_unlock(&s->lock);
	return rc;
}

int weft_stream_close(struct weft_stream *s)
{
	struct weft_task *self = weft__current();
	struct weft__worker *here = self->worker;
	weft__spin_lock(&s->lock);
	if (s->reader || s->watched) {
		weft__spin_unlock(&s->lock);
		return -EBUSY;
	}
	s->closing = true;
	drop(s, here);
	bool wait;
	if (here == s->owner && !s->asked) {
		act(here, s); /* no closer yet: returns NULL */
		wait = s->state != ENDED;
	} else {
		/* A stream on the owner's asked list (RESUMING, or a watch
		 * begun elsewhere) must leave it before s may go (invariant
		 * 3): the owner's act() then frees the closer. */
		wait = s->asked || (s->state != PAUSED && s->state != ENDED);
		if (wait && s->state != STOPPING)
			ask(s);
	}
	if (wait) {
		struct weft_scope sc;
		weft_scope_shield(&sc, WEFT_NEVER);
		struct weft__wait w;
		/* Shielded and without deadline: it cannot fail. */
		weft__wait_arm(self, &w);
		s->closer = &w;
		weft__spin_unlock(&s->lock);
		weft__wait_park(self, &w, WEFT_NEVER, 0);
		weft_scope_end(&sc);
	} else {
		weft__spin_unlock(&s->lock);
	}
	free(s);
	return 0;
}
