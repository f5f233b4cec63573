// SPDX-License-Identifier: MIT
/*
 * relay.c - the proxy's data path: two directions, each waiting in
 * weft_watch, forwarding a burst through a buffer or, spliced, through a
 * pipe.
 *
 * Direction d reads side d (0 the client, 1 the server) and writes side
 * 1 - d.  It waits in weft_watch on its source; the bytes start a task
 * (on_bytes) that sends them on with weft_sock_send_all, moves what else
 * is ready without waiting (drain), and watches again.  An idle proxied
 * connection thus holds its two sockets and two watch records: no task,
 * no buffer, no pipe.  What else is ready moves through a buffer or
 * through a pipe, chosen per burst by the backend's data_path:
 *  - buffered: recv into a 16 KiB buffer on the task's stack and send it
 *    on, until the source has nothing more ready;
 *  - spliced: take a pipe from the worker's pool (pipes.c), and splice
 *    socket -> pipe, then pipe -> socket (weft_splice, io_uring's
 *    IORING_OP_SPLICE), until the source has nothing more ready; the pipe
 *    goes back to the pool, empty.  The bytes never reach user space.
 *  - auto, the default, splices a burst when the watch's buffer came back
 *    full and at least SPLICE_MIN bytes are queued behind it (FIONREAD),
 *    and buffers it otherwise; splice always splices what is queued after
 *    the watch's bytes; buffered never splices.  A request-response
 *    exchange that fits the watch's 4 KiB costs no extra system call on
 *    any path but splice.
 * The kernel runs each splice on a worker thread of its own (io_uring
 * splices in io-wq), two thread switches per pair: it pays for bulk, where
 * a pair moves up to a pipe's 256 KiB, and not for a few KiB (the numbers
 * are in docs/proxy.md).
 *
 * A splice from a TCP socket waits for bytes however it is asked
 * (SPLICE_F_NONBLOCK is about the pipe, and the socket is blocking), so
 * it is only ever asked for bytes FIONREAD said are queued: it returns at
 * once, with the end of stream or a reset reported as 0 or an error like
 * a receive's.  The pipe is empty before each splice in, so that one
 * never waits for room; the splice out waits, in the kernel's worker, for
 * the destination to take the bytes (back-pressure, as a send), bounded
 * by the idle timeout.  A pipe that a failed splice out may have left
 * bytes in is closed, never pooled: a pooled pipe is always empty.
 *
 * While a direction sends (or splices out), its source is not read:
 * back-pressure reaches the sender through TCP, and the proxy holds at
 * most one buffer or one pipe per direction.
 *
 * TCP semantics are kept end to end:
 *  - end of stream from one side becomes shutdown(SHUT_WR) on the other,
 *    and the other direction goes on until its own end of stream;
 *  - a reset (or any error) on one side becomes a reset on the other
 *    (SO_LINGER 0 before close), so the peer learns the connection
 *    failed rather than ended; from a side that already sent its FIN,
 *    and so is read no more, within a period of the sweeper below;
 *  - bytes are forwarded in order, each once, by one direction's single
 *    task at a time.
 *
 * Timeouts: the idle timeout counts from the last byte either way
 * (`last`), so each direction's watch, and each send that waits for room,
 * on expiry checks whether the other direction was busy and, if so, waits
 * again for the rest.  A byte counts when its destination's socket took
 * it, and a send that waits for room looks every quarter timeout whether
 * the destination is taking any (deliver, send_budget).  After one side's end of stream the remaining
 * direction waits at most half_closed_timeout, which a sweeper task
 * enforces from outside (sweep_half_closed): the remaining watch was armed
 * with the idle budget.  The sweeper also passes on a reset of the side
 * that ended.
 *
 * Lifetime: each direction holds a reference while it runs; the last one
 * to stop closes both sockets and calls opts.done.  Open relays are also
 * on one list (under `open_lock`), for relay_close_all at the end of a
 * drain, which takes a reference of its own while it closes one.  A
 * direction that fails aborts the relay: it resets one socket at once (a
 * disconnect, for a reset to pass on) and shuts the other down, which ends
 * the other direction's watch (its receive completes with end of stream),
 * send or splice out (-EPIPE, -ECONNRESET) so that it stops too; a
 * direction in a splice loop also checks `end` before each splice in.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <weft.h>
#include <weft/io.h>
#include <weft/net.h>
#include <weft/sync.h>

#include "pipes.h"
#include "relay.h"

#define DRAIN_BUF 16384

/* The size of a watch's buffer (weft_watch): one that comes back full
 * suggests more is queued. */
#define WATCH_BUF 4096

/* data_path = auto splices a burst when at least this much is queued once
 * the watch's buffer came back full.  Measured through the proxy (HTTP
 * responses, proxy CPU per response): up to 16 KiB buffering costs less
 * (26 us against 31 us at 16 KiB), from 64 KiB on splicing does (37 us
 * against 52 us at 64 KiB, 80 against 229 at 256 KiB); a bar of 64 KiB
 * left 64 KiB responses buffered. */
#define SPLICE_MIN 16384

struct side {
	struct relay *r;
	int d; /* reads fd[d], writes fd[1 - d] */
};

struct relay {
	struct relay *prev, *next; /* the open list, under open_lock */
	TAILQ_ENTRY(relay) hlink;  /* the half-closed list, when `half` */
	bool closing;              /* relay_close_all or the sweeper has it */
	bool half;                 /* on half_list, under open_lock */
	uint64_t swept;            /* the sweep round that last looked at it */
	int fd[2];
	struct side side[2];
	struct relay_opts o;
	uint64_t start;
	_Atomic uint64_t last;     /* weft_now() of the last byte either way */
	_Atomic uint64_t bytes[2];
	_Atomic unsigned refs;
	_Atomic unsigned eof;      /* bit d: side d ended its stream */
	_Atomic int end;           /* the first reason to end, or -1 */
};

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct relay *open_head;

/* The half-closed sweeper's state, under open_lock (see sweep_half_closed). */
#define SWEEP_MIN (10 * WEFT_MSEC)
#define SWEEP_MAX WEFT_SEC
#define SWEEP_BATCH 64
static TAILQ_HEAD(, relay) half_list = TAILQ_HEAD_INITIALIZER(half_list);
static uint64_t sweep_every;  /* a quarter of the shortest timeout seen */
static uint64_t sweep_round;  /* rounds begun */
static bool sweeping;         /* the sweeper task exists */
/* Released when sweep_every shrinks, to wake the sweeper early. */
static struct weft_sem sweep_kick = WEFT_SEM_INIT(0);

const char *relay_end_name(enum relay_end e)
{
	switch (e) {
	case RELAY_CLOSED: return "closed";
	case RELAY_CLIENT_RESET: return "client_reset";
	case RELAY_SERVER_RESET: return "server_reset";
	case RELAY_IDLE_TIMEOUT: return "idle_timeout";
	case RELAY_HALF_CLOSED_TIMEOUT: return "half_closed_timeout";
	case RELAY_DRAIN_DEADLINE: return "drain_deadline";
	}
	return "?";
}

static void on_bytes(int fd, const void *data, ssize_t n, void *arg);

/* Records the first reason to end; later ones do not replace it. */
static void set_end(struct relay *r, enum relay_end e)
{
	int none = -1;
	atomic_compare_exchange_strong(&r->end, &none, (int)e);
}

/* Ends the relay now: resets side `reset` (-1: none) and shuts the other
 * down, so that both directions' waits end. */
static void abort_relay(struct relay *r, enum relay_end e, int reset)
{
	set_end(r, e);
	for (int i = 0; i < 2; i++) {
		if (i != reset) {
			shutdown(r->fd[i], SHUT_RDWR);
			continue;
		}
		/* No FIN on the side to reset: a disconnect (connect to
		 * AF_UNSPEC) sends the RST now and fails every wait on the
		 * socket, the other direction's send blocked on a slow peer
		 * included, where SHUT_RD woke only a receive.  The zero
		 * linger makes the close reset too, should the disconnect not
		 * take. */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(r->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		struct sockaddr unspec = {.sa_family = AF_UNSPEC};
		if (connect(r->fd[i], &unspec, sizeof(unspec)) < 0)
			shutdown(r->fd[i], SHUT_RD);
	}
}

/* Drops a reference to r; the last one closes everything. */
static void unref(struct relay *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	pthread_mutex_lock(&open_lock);
	if (r->prev)
		r->prev->next = r->next;
	else
		open_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->half)
		TAILQ_REMOVE(&half_list, r, hlink);
	pthread_mutex_unlock(&open_lock);
	int end = atomic_load(&r->end);
	weft_close(r->fd[0]);
	weft_close(r->fd[1]);
	uint64_t bytes[2] = {atomic_load(&r->bytes[0]), atomic_load(&r->bytes[1])};
	if (r->o.done)
		r->o.done(r->o.arg, end < 0 ? RELAY_CLOSED : (enum relay_end)end, bytes,
			  weft_now() - r->start);
	free(r);
}

/* Direction s stops. */
static void stop(struct side *s)
{
	unref(s->r);
}

/* How long no byte has moved either way as of now, a time read before
 * r->last: a byte forwarded since may have dated last past it, and that is
 * no quiet at all, not a difference that wraps to centuries. */
static uint64_t quiet_for(struct relay *r, uint64_t now)
{
	uint64_t last = atomic_load_explicit(&r->last, memory_order_relaxed);
	return now > last ? now - last : 0;
}

/* Whether the half-closed sweep decides when r is quiet for too long: a
 * side has sent FIN and half_closed_timeout is on.  The idle timeout then
 * no longer applies (a FIN-then-wait client's download may pause longer). */
static bool swept(struct relay *r)
{
	return atomic_load(&r->eof) && r->o.half_closed_timeout != WEFT_NEVER;
}

/* How long direction s may wait now, or 0 when its time is up.  just_sent:
 * s forwarded bytes a moment ago (sent() took the time then), so the idle
 * budget is whole, and the clock need not be read again: a read is about
 * 40 ns here, and three per burst were 2% of the proxy's CPU. */
static uint64_t wait_budget(struct side *s, enum relay_end *why, bool just_sent)
{
	struct relay *r = s->r;
	/* half_closed_timeout off: the idle timeout goes on applying. */
	if (swept(r)) {
		*why = RELAY_HALF_CLOSED_TIMEOUT;
		return r->o.half_closed_timeout;
	}
	*why = RELAY_IDLE_TIMEOUT;
	if (r->o.idle_timeout == WEFT_NEVER || just_sent)
		return r->o.idle_timeout;
	uint64_t since = quiet_for(r, weft_now());
	return since >= r->o.idle_timeout ? 0 : r->o.idle_timeout - since;
}

/* Watches side s's source again, or stops s if that cannot be.  just_sent:
 * as for wait_budget. */
static void rewatch(struct side *s, bool just_sent)
{
	enum relay_end why;
	uint64_t budget = wait_budget(s, &why, just_sent);
	if (budget == 0) {
		abort_relay(s->r, why, -1);
		stop(s);
		return;
	}
	if (weft_watch(s->r->fd[s->d], budget, on_bytes, s) < 0) {
		abort_relay(s->r, RELAY_CLIENT_RESET + s->d, 1 - s->d);
		stop(s);
	}
}

/* Direction s handed n bytes to its destination, by path (enum
 * stats_path). */
static void sent(struct side *s, size_t n, enum stats_path path)
{
	/* Relaxed: counters and a time on their own; the last direction out
	 * reads the counters after both have dropped their references. */
	atomic_fetch_add_explicit(&s->r->bytes[s->d], n, memory_order_relaxed);
	for (int i = 0; i < 2; i++)
		if (s->r->o.count[s->d][i])
			atomic_fetch_add_explicit(s->r->o.count[s->d][i], n, memory_order_relaxed);
	if (s->r->o.path[s->d][path])
		atomic_fetch_add_explicit(s->r->o.path[s->d][path], n, memory_order_relaxed);
	atomic_store_explicit(&s->r->last, weft_now(), memory_order_relaxed);
}

/* Direction s's destination did not take its bytes: no byte moved either
 * way for the idle timeout (expired), which is as idle as a quiet
 * connection, or it failed, and is the side that reset.  Ends the
 * relay. */
static void send_failed(struct side *s, bool expired)
{
	if (expired)
		abort_relay(s->r, RELAY_IDLE_TIMEOUT, -1);
	else
		abort_relay(s->r, RELAY_CLIENT_RESET + (1 - s->d), s->d);
}

/* How often a send that waits for room looks whether its destination takes
 * bytes at all: a quarter of the idle timeout, or of the half-closed one
 * once a side has sent FIN, since the sweep goes by `last` too.  A look
 * sees that bytes went, not when, so it dates them to itself: an end comes
 * at most a quarter of the timeout late, never early. */
static uint64_t probe_period(struct relay *r)
{
	uint64_t t = r->o.idle_timeout;
	if (atomic_load(&r->eof) && r->o.half_closed_timeout < t)
		t = r->o.half_closed_timeout;
	return t == WEFT_NEVER ? WEFT_NEVER : t / 4;
}

/* A send to s's destination has waited a probe period, or less at the end
 * of the idle budget: how long it may wait on, 0 when the relay is idle.
 * A full socket makes a send wait until much of its buffer is free (half
 * of up to 4 MiB), which a slow reader that takes bytes every few
 * milliseconds may need seconds for: it is not idle.  So the measure is
 * the bytes still queued (SIOCOUTQ), against *outq from the look before
 * (-1: none yet): fewer means the destination took some, which counts as
 * activity (`last`).  The first look has nothing to compare with and
 * counts as activity too: otherwise a destination taking bytes just before
 * the second look could see the half-closed sweep, which goes by `last`
 * alone, end the relay.  The idle timeout counts from the last byte either
 * way: while the other direction moves bytes, this send waits on however
 * full its destination stays.  After a FIN the sweep ends a quiet relay at
 * the half-closed timeout, by the `last` these looks keep, and the send
 * waits for it (as wait_budget leaves it to the sweep). */
static uint64_t send_budget(struct side *s, int *outq)
{
	struct relay *r = s->r;
	int q;
	if (ioctl(r->fd[1 - s->d], SIOCOUTQ, &q) == 0) {
		if (*outq < 0 || q < *outq)
			atomic_store_explicit(&r->last, weft_now(), memory_order_relaxed);
		*outq = q;
	}
	uint64_t period = probe_period(r);
	if (r->o.idle_timeout == WEFT_NEVER || swept(r))
		return period;
	uint64_t since = quiet_for(r, weft_now());
	if (since >= r->o.idle_timeout)
		return 0;
	return period < r->o.idle_timeout - since ? period : r->o.idle_timeout - since;
}

/* Moves n bytes to s's destination, from data, or from pipe p when not
 * NULL (then perhaps left not empty); false when the relay must end: the
 * destination failed, or no byte moved either way for the idle timeout
 * (see send_budget).  Each send or splice returns as soon as some bytes
 * went, and each part counts as activity (sent). */
static bool deliver(struct side *s, const struct pipe_pair *p, const char *data, size_t n)
{
	struct relay *r = s->r;
	int fd = r->fd[1 - s->d], outq = -1;
	uint64_t wait = probe_period(r);
	while (n) {
		struct weft_scope sc;
		weft_scope_deadline(&sc, wait);
		ssize_t m = p ? weft_splice(p->r, -1, fd, -1, n, SPLICE_F_NONBLOCK)
			      : weft_send(fd, data, n, MSG_NOSIGNAL);
		/* A splice cut short by its deadline may end with a short
		 * count rather than -ETIMEDOUT: the scope says whether the
		 * time ran out. */
		bool expired = weft_scope_end(&sc);
		if (m > 0) {
			sent(s, (size_t)m, p ? STATS_SPLICED : STATS_BUFFERED);
			data += p ? 0 : m;
			n -= (size_t)m;
			outq = -1;
			wait = probe_period(r);
			continue;
		}
		/* 0 never comes from a stream send or splice of n > 0. */
		if (expired && (wait = send_budget(s, &outq)) > 0)
			continue;
		send_failed(s, expired);
		return false;
	}
	return true;
}

/* Moves what else is ready on s's source, through a buffer: 1 once the
 * source has nothing more ready, 0 at its end of stream, -1 when the relay
 * ended (aborted). */
static int drain_buffered(struct side *s)
{
	struct relay *r = s->r;
	char buf[DRAIN_BUF];
	ssize_t m;
	while ((m = recv(r->fd[s->d], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		if (!deliver(s, NULL, buf, (size_t)m))
			return -1;
	if (m == 0)
		return 0;
	if (errno != EAGAIN && errno != EWOULDBLOCK) {
		abort_relay(r, RELAY_CLIENT_RESET + s->d, 1 - s->d);
		return -1;
	}
	return 1;
}

/* Bytes queued on s's source (FIONREAD), 0 when none or unknown. */
static size_t ready_bytes(struct side *s)
{
	int n;
	return ioctl(s->r->fd[s->d], FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

/* Moves what is ready on s's source, `ready` bytes to begin with, through
 * a pipe of the pool: returns as drain_buffered. */
static int drain_spliced(struct side *s, size_t ready)
{
	struct relay *r = s->r;
	struct pipe_pair p;
	/* Out of pipes (the limit, or descriptors): a buffer needs none.
	 * pipes_get counts the refusal, so each fallback is counted once. */
	if (pipes_get(&p) < 0)
		return drain_buffered(s);
	int rc = 1;
	bool empty = true;
	while (ready && rc == 1) {
		if (atomic_load(&r->end) >= 0) {
			rc = -1; /* the other direction aborted the relay */
			break;
		}
		/* The pipe is empty and `ready` bytes are queued: this splice
		 * neither waits for the pipe nor for the socket. */
		ssize_t in = weft_splice(r->fd[s->d], -1, p.w, -1, ready < p.size ? ready : p.size,
					 SPLICE_F_NONBLOCK);
		if (in == 0) {
			rc = 0;
		} else if (in < 0) {
			abort_relay(r, RELAY_CLIENT_RESET + s->d, 1 - s->d);
			rc = -1;
		} else if (!deliver(s, &p, NULL, (size_t)in)) {
			empty = false;
			rc = -1;
		} else {
			ready = ready_bytes(s);
		}
	}
	if (empty)
		pipes_put(&p);
	else
		pipes_drop(&p); /* bytes for a destination that failed */
	return rc;
}

/* After the watch's n bytes went on: moves what else is ready, through the
 * data path the relay's setting and the amount queued choose (see the
 * top); returns as drain_buffered. */
static int drain(struct side *s, size_t n)
{
	enum proxy_data_path path = s->r->o.data_path;
	if (path == PROXY_DATA_PATH_SPLICE)
		return drain_spliced(s, ready_bytes(s));
	/* A buffer that came back short: the exchange fit in it. */
	if (n < WATCH_BUF)
		return 1;
	if (path == PROXY_DATA_PATH_BUFFERED)
		return drain_buffered(s);
	size_t ready = ready_bytes(s);
	return ready >= SPLICE_MIN ? drain_spliced(s, ready) : drain_buffered(s);
}

/* Under open_lock: takes a reference to listed relay r for the caller,
 * marking it closing, unless its last reference is already gone (it is
 * leaving the list, under this lock, right after us). */
static bool grab(struct relay *r)
{
	r->closing = true;
	unsigned refs = atomic_load(&r->refs);
	while (refs && !atomic_compare_exchange_weak(&r->refs, &refs, refs + 1))
		;
	return refs != 0;
}

/*
 * After one side's end of stream, two things would go unseen from inside
 * the relay.  The direction still open waits in the watch it armed before,
 * with the idle budget: it would learn of the shorter half_closed_timeout
 * only when that watch ends.  And nothing reads the side that ended any
 * more, so its reset (a client that sent its request and FIN, then gave
 * up) would reach the other side only at that side's next byte.  So one
 * task for the whole proxy looks after the half-closed relays from
 * outside.  While any relay is half closed it wakes every quarter of the
 * shortest half_closed_timeout seen (10 ms to 1 s; 1 s for relays with
 * the timeout off), sooner when a shorter one comes (sweep_kick), and
 * walks half_list once (sweep_once): a relay with no byte moved for its
 * timeout is aborted, and one whose ended side has an error pending
 * (POLLERR: a reset came) is aborted with that reset passed on.  A timeout
 * thus fires between its time and a quarter of it later, and a reset
 * passes within one period.
 */

/* The side of half-closed r that sent its end of stream, or -1 when both
 * have (the relay is ending anyway). */
static int ended_side(struct relay *r)
{
	unsigned eof = atomic_load(&r->eof);
	return eof == 1 ? 0 : eof == 2 ? 1 : -1;
}

/* One round over half_list, SWEEP_BATCH relays at a time: each batch is
 * looked at under open_lock, where a listed relay's descriptors are still
 * open (unref unlists it before it closes them), with one poll(2) for
 * their ended sides; the aborts happen outside it.  A relay looked at
 * moves to the tail, stamped with the round, so the unlooked ones stay
 * ahead (new ones enter at the head) and the round ends at the first
 * stamped one. */
static void sweep_once(void)
{
	uint64_t now = weft_now();
	pthread_mutex_lock(&open_lock);
	uint64_t round = ++sweep_round;
	pthread_mutex_unlock(&open_lock);
	bool more = true;
	while (more) {
		struct relay *look[SWEEP_BATCH], *doomed[SWEEP_BATCH];
		struct pollfd pf[SWEEP_BATCH];
		enum relay_end why[SWEEP_BATCH];
		int reset[SWEEP_BATCH];
		size_t n = 0, k = 0;
		struct relay *r;
		pthread_mutex_lock(&open_lock);
		while (n < SWEEP_BATCH && (r = TAILQ_FIRST(&half_list)) && r->swept != round) {
			TAILQ_REMOVE(&half_list, r, hlink);
			TAILQ_INSERT_TAIL(&half_list, r, hlink);
			r->swept = round;
			int d = ended_side(r);
			if (d < 0 || r->closing || atomic_load(&r->end) >= 0)
				continue;
			look[n] = r;
			pf[n++] = (struct pollfd){.fd = r->fd[d]};
		}
		more = n == SWEEP_BATCH;
		if (n && poll(pf, n, 0) < 0)
			n = 0; /* ENOMEM: no look this round */
		for (size_t i = 0; i < n; i++) {
			r = look[i];
			int d = ended_side(r);
			if (d < 0)
				continue; /* both ended since: closing as it should */
			/* POLLERR only: POLLHUP comes also once the other
			 * direction passed its own FIN on to this side. */
			if (pf[i].revents & POLLERR) {
				why[k] = RELAY_CLIENT_RESET + d;
				reset[k] = 1 - d;
			} else if (r->o.half_closed_timeout != WEFT_NEVER &&
				   quiet_for(r, now) >= r->o.half_closed_timeout) {
				why[k] = RELAY_HALF_CLOSED_TIMEOUT;
				reset[k] = -1;
			} else {
				continue;
			}
			if (grab(r))
				doomed[k++] = r;
		}
		pthread_mutex_unlock(&open_lock);
		for (size_t i = 0; i < k; i++) {
			abort_relay(doomed[i], why[i], reset[i]);
			unref(doomed[i]);
		}
	}
}

static intptr_t sweep_half_closed(void *arg)
{
	(void)arg;
	bool no_timer = false;
	for (;;) {
		/* Leaving is decided under the lock that count_half_closed
		 * takes, so a relay half closed just now finds either this
		 * task still sweeping or `sweeping` false and starts another.
		 * Without a timer (-ENOMEM) this task cannot pace itself: it
		 * leaves the same way, and the next relay to half close starts
		 * a sweeper again. */
		pthread_mutex_lock(&open_lock);
		uint64_t every = sweep_every;
		bool leave = TAILQ_EMPTY(&half_list) || no_timer;
		if (leave) {
			sweeping = false;
			sweep_every = 0;
		}
		pthread_mutex_unlock(&open_lock);
		if (leave)
			return 0;
		struct weft_scope sc;
		weft_scope_deadline(&sc, every);
		int rc = weft_sem_acquire(&sweep_kick);
		weft_scope_end(&sc);
		if (rc == 0)
			continue; /* a shorter timeout came: wait by it */
		if (rc == -ENOMEM) {
			no_timer = true;
			continue;
		}
		if (rc != -ETIMEDOUT)
			return 0; /* shutdown */
		sweep_once();
	}
}

/* r has just become half closed: have the sweeper look after it. */
static void count_half_closed(struct relay *r)
{
	uint64_t timeout = r->o.half_closed_timeout;
	uint64_t every = timeout == WEFT_NEVER ? SWEEP_MAX : timeout / 4;
	every = every < SWEEP_MIN ? SWEEP_MIN : every > SWEEP_MAX ? SWEEP_MAX : every;
	pthread_mutex_lock(&open_lock);
	r->half = true;
	TAILQ_INSERT_HEAD(&half_list, r, hlink);
	bool start = !sweeping, kick = !start && every < sweep_every;
	if (!sweep_every || every < sweep_every)
		sweep_every = every;
	sweeping = true;
	pthread_mutex_unlock(&open_lock);
	if (kick)
		weft_sem_release(&sweep_kick);
	if (!start)
		return;
	struct weft_spawn_opts o = {.name = "relay-half-closed"};
	struct weft_task *t = weft_spawn(sweep_half_closed, NULL, &o);
	if (t) {
		weft_detach(t);
	} else {
		/* Out of memory: the next half close tries again. */
		pthread_mutex_lock(&open_lock);
		sweeping = false;
		pthread_mutex_unlock(&open_lock);
	}
}

static void on_bytes(int fd, const void *data, ssize_t n, void *arg)
{
	struct side *s = arg;
	struct relay *r = s->r;
	if (atomic_load(&r->end) >= 0) {
		stop(s); /* the other direction aborted the relay */
		return;
	}
	if (n == 0) {
		/* End of stream from our source: pass it on. */
		shutdown(r->fd[1 - s->d], SHUT_WR);
		unsigned eof = atomic_fetch_or(&r->eof, 1u << s->d) | 1u << s->d;
		if (eof == 3)
			set_end(r, RELAY_CLOSED);
		else
			count_half_closed(r);
		stop(s);
		return;
	}
	if (n < 0) {
		if (n == -ETIMEDOUT) {
			rewatch(s, false); /* the other direction may have been busy */
			return;
		}
		abort_relay(r, RELAY_CLIENT_RESET + s->d, 1 - s->d);
		stop(s);
		return;
	}
	if (!deliver(s, NULL, data, (size_t)n)) {
		stop(s);
		return;
	}
	int rc = drain(s, (size_t)n);
	if (rc < 0)
		stop(s);
	else if (rc == 0)
		on_bytes(fd, NULL, 0, arg);
	else
		rewatch(s, true);
}

int relay_start(int client, int server, const struct relay_opts *opts)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd[0] = client;
	r->fd[1] = server;
	r->o = *opts;
	r->start = weft_now();
	atomic_init(&r->last, r->start);
	atomic_init(&r->refs, 2);
	atomic_init(&r->end, -1);
	for (int d = 0; d < 2; d++)
		r->side[d] = (struct side){.r = r, .d = d};
	int rc = weft_watch(client, r->o.idle_timeout, on_bytes, &r->side[0]);
	if (rc < 0) {
		free(r);
		return rc;
	}
	pthread_mutex_lock(&open_lock);
	r->next = open_head;
	if (open_head)
		open_head->prev = r;
	open_head = r;
	pthread_mutex_unlock(&open_lock);
	rc = weft_watch(server, r->o.idle_timeout, on_bytes, &r->side[1]);
	if (rc < 0) {
		/* The client's watch is armed: end it through the relay. */
		abort_relay(r, RELAY_SERVER_RESET, 0);
		struct side *s = &r->side[1];
		stop(s);
		return 0;
	}
	return 0;
}

size_t relay_close_all(uint64_t window_ns)
{
	size_t n = 0, total = 0;
	pthread_mutex_lock(&open_lock);
	for (struct relay *r = open_head; r; r = r->next)
		total++;
	pthread_mutex_unlock(&open_lock);
	if (!total)
		return 0;
	/* Evenly over the window: a tick per relay, or one a millisecond
	 * with a share of them each when there are more. */
	uint64_t ticks = window_ns / WEFT_MSEC ? window_ns / WEFT_MSEC : 1;
	if (ticks > total)
		ticks = total;
	size_t per_tick = (size_t)((total + ticks - 1) / ticks);
	for (;;) {
		size_t k = 0;
		for (; k < per_tick; k++) {
			pthread_mutex_lock(&open_lock);
			struct relay *r = open_head;
			for (; r; r = r->next)
				if (!r->closing && grab(r))
					break;
			pthread_mutex_unlock(&open_lock);
			if (!r)
				return n;
			abort_relay(r, RELAY_DRAIN_DEADLINE, -1);
			unref(r);
			n++;
		}
		weft_sleep(window_ns / ticks);
	}
}
