// SPDX-License-Identifier: MIT
/*
 * conn.c - one connection of weft-bench: a task pinned to its worker that
 * keeps up to `depth` requests in flight on one socket, reads the answers
 * in order, and records each latency in its worker's histograms.  The
 * loop, per turn:
 *
 *  1. send: while fewer than depth requests are in flight, take the next
 *     one (a ticket when -n or --rate needs one) and, if it is due (open
 *     loop: its time from schedule.c has come), queue it; all queued
 *     requests leave in one send, as one span of the endpoint's prebuilt
 *     bytes (request.c);
 *  2. nothing in flight: the connection is done (-n ran out), or (open
 *     loop) waits in a receive until the next one is due: a server that
 *     closes the idle connection meanwhile costs a reconnection, not an
 *     error;
 *  3. receive once, bounded by the next due time when more could be sent
 *     (open loop with --pipeline), and hand the bytes to the HTTP/1.1
 *     response parser or the echo checker; each complete answer pops the
 *     oldest request and is recorded at the time of that receive.
 *
 * Before the loop the connection makes its first connect attempt and
 * waits for the run's clock, which starts when every connection has made
 * one (main.c).
 *
 * So a request costs one send, typically one receive and one clock read
 * (the time after a receive is also the next send's time in closed
 * loop); no allocation, no formatting, and no timer beyond the open
 * loop's wait for a due time: the per-request timeout is the ticker's
 * (ticker.c), which shuts the socket down under a connection whose oldest
 * request is late, and the end of the run is a cancellation of the task
 * (main.c).
 *
 * A response that closes the connection (Connection: close, or HTTP/1.0
 * without keep-alive) is not a failure: the requests pipelined behind it,
 * which the server never took up, go again on a new connection, in their
 * slots, with their tickets and their first and intended send times, as
 * RFC 9112 (9.3.2) asks of a pipelining client.  Any failure counts one
 * error per request in flight, of the kind the failure is (a timeout when
 * the ticker caused it, whatever the receive brought), closes the socket
 * and opens a new one; a request not yet sent keeps its ticket and leaves
 * on the new connection, so with -n each ticket ends as one response or
 * one error.  Bytes that answer no request are one parse (or verify) error
 * of their own.  Bytes are counted as they arrive, responses when they
 * complete, both only inside the measured window.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <weft/io.h>

#include "bench.h"

#define RBUF 16384  /* a response head must fit: its line and head limit */
#define NHDR 256    /* field lines in a response head, at most */

static const struct weft_http1_limits head_limits = {.max_line = RBUF, .max_head = RBUF};

const char *const kind_name[E_KINDS] = {
	"connect", "read", "write", "timeout", "parse", "unexpected close", "verify",
};
const char *const kind_key[E_KINDS] = {
	"connect", "read", "write", "timeout", "parse", "closed", "verify",
};

/* The HTTP response being read. */
struct rx {
	struct weft_http1_parser p;
	struct weft_http1_header hdrs[NHDR];
	struct weft_http1_body body;
	bool in_body, keep;
	int status;
};

/* Counts n errors of kind with errno err. */
static void count_error(struct wstate *w, int kind, int err, uint64_t n)
{
	w->errors[kind] += n;
	if (!w->err_errno[kind])
		w->err_errno[kind] = err;
	err_add(w->err_by[kind], err, n);
}

/* Whether now is inside the measured window: after the warm-up, not
 * after the deadline (the connections' cancellation comes a little
 * later). */
static inline bool in_window(const struct bench *b, uint64_t now)
{
	return now >= b->measure_start && now <= b->deadline;
}

/* The oldest request got its answer at now. */
static void complete(struct conn *c, uint64_t now, int status)
{
	struct bench *b = c->b;
	struct wstate *w = c->w;
	struct slot *s = &c->q[c->qhead];
	if (++c->qhead == b->depth)
		c->qhead = 0;
	if (c->inflight == b->depth)
		c->slot_free_at = now; /* a request due meanwhile waited for this */
	c->busy_since = --c->inflight ? c->q[c->qhead].sent : 0;
	if (!in_window(b, now))
		return;
	w->requests++;
	if (status >= 0) {
		w->codes[status]++;
		if (status < 200 || status >= 400)
			w->non2xx++;
	}
	hist_record(w->corr, now - s->intended);
	if (w->unc != w->corr)
		hist_record(w->unc, now - s->sent);
	if (w->ivl)
		hist_record(w->ivl, now - s->intended);
}

/* Closes the connection, counting its requests in flight as errors of
 * kind (or as timeouts, when the ticker ended it). */
static void fail(struct conn *c, int kind, int err, uint64_t now)
{
	/* Bytes nobody asked for are the server's error, with no request to
	 * pin it on: counted once. */
	uint64_t n = c->inflight ? c->inflight : kind == E_PARSE || kind == E_VERIFY;
	if (c->timed_out) {
		kind = E_TIMEOUT;
		err = ETIMEDOUT;
	}
	if (n && in_window(c->b, now))
		count_error(c->w, kind, err, n);
	weft_close(c->fd);
	c->fd = -1;
	c->timed_out = false;
	c->inflight = c->qhead = 0;
	c->busy_since = 0;
	c->got = 0;
	c->expect = c->next;
}

/* The server closed after an answer that said it would: the requests in
 * flight behind it go again, first, once a new connection is open. */
static void resend_unanswered(struct conn *c)
{
	unsigned nurls = c->ep->nurls;
	c->resend = c->inflight;
	c->next = (c->next + nurls - c->resend % nurls) % nurls;
	weft_close(c->fd);
	c->fd = -1;
	c->inflight = 0;
	c->busy_since = 0;
}

/* Whether a call's -ETIMEDOUT is the end of the run (the deadline scope
 * around every connection, main.c) rather than the kernel's, or a
 * narrower deadline's.  Only once the run has started. */
static bool run_over(const struct bench *b, int rc)
{
	return rc == -ECANCELED || (rc == -ETIMEDOUT && weft_now() >= b->deadline);
}

/*
 * Opens the connection: 0, 1 to try again later, -1 to stop.  A run with
 * no end of its own (-n without -d) stops trying once connects have failed
 * for --connect-timeout in a row, rather than retrying forever.  running:
 * the run has started (the first attempt comes before).
 */
static int open_conn(struct conn *c, uint64_t now, bool running)
{
	struct bench *b = c->b;
	struct weft_scope sc;
	weft_scope_deadline(&sc, b->connect_timeout_ns);
	int fd = weft_sock_connect(&c->ep->addr);
	weft_scope_end(&sc);
	if (running ? run_over(b, fd) : fd == -ECANCELED)
		return -1;
	if (fd < 0) {
		count_error(c->w, E_CONNECT, -fd, 1);
		if (!c->failing_since)
			c->failing_since = now;
		if (!b->duration_ns && weft_now() - c->failing_since >= b->connect_timeout_ns)
			return -1;
		/* Do not spin on a refusing server. */
		return weft_sleep(10 * WEFT_MSEC) < 0 ? -1 : 1;
	}
	c->failing_since = 0;
	c->fd = fd;
	if (c->opened) {
		c->w->reconnects++;
		c->slot_free_at = now; /* what came due while it was down waited */
	} else {
		c->opened = true;
		c->w->established++;
	}
	if (c->ep->addr.sa.sa_family != AF_UNIX)
		weft_tcp_nodelay(fd, 1);
	return 0;
}

/* The next k requests' bytes, and the position after them. */
static const char *span(struct conn *c, unsigned k, size_t *n)
{
	const struct endpoint *e = c->ep;
	unsigned i = c->next;
	if (c->b->proto == P_ECHO) {
		*n = (size_t)k * c->b->size;
		c->next = (unsigned)((i + *n) % e->period);
		return e->ring + i;
	}
	*n = e->off[i + k] - e->off[i];
	c->next = (i + k) % e->nurls;
	return e->ring + e->off[i];
}

/*
 * Parses the responses in buf[*rpos, *len), completing requests.  Returns
 * 0 (more bytes needed; *rpos and *len compacted), 1 when a response
 * asked to close the connection, or -1 with *err (a parse error).
 */
static int on_http(struct conn *c, struct rx *rx, char *buf, size_t *rpos, size_t *len,
		   uint64_t now, int *err)
{
	while (*rpos < *len) {
		if (!rx->in_body) {
			struct weft_http1_head h;
			if (!c->inflight) {
				*err = EPROTO; /* bytes nobody asked for */
				return -1;
			}
			int hn = weft_http1_parse_response(&rx->p, buf + *rpos, *len - *rpos, &h,
							   c->ep->method);
			if (hn == -EAGAIN)
				break;
			if (hn < 0) {
				*err = -hn;
				return -1;
			}
			*rpos += (size_t)hn;
			if (h.status < 200 && h.status != 101)
				continue; /* interim: the final answer follows */
			rx->status = h.status;
			rx->keep = (h.flags & WEFT_HTTP1_KEEP_ALIVE) != 0;
			if (h.framing != WEFT_HTTP1_NONE) {
				weft_http1_body_init(&rx->body, h.framing, h.content_length, NULL);
				rx->in_body = true;
				continue;
			}
		} else {
			size_t u;
			struct weft_http1_slice d;
			int r = weft_http1_body_decode(&rx->body, buf + *rpos, *len - *rpos, &u, &d);
			*rpos += u;
			if (r < 0) {
				*err = -r;
				return -1;
			}
			if (r == 0) {
				if (u == 0)
					break;
				continue;
			}
			rx->in_body = false;
		}
		complete(c, now, rx->status);
		if (!rx->keep)
			return 1;
	}
	if (*rpos == *len) {
		*rpos = *len = 0;
	} else if (*len == RBUF) {
		/* A head is cut by the buffer's end: move it to the front. */
		if (*rpos == 0) {
			*err = EMSGSIZE;
			return -1;
		}
		memmove(buf, buf + *rpos, *len - *rpos);
		*len -= *rpos;
		*rpos = 0;
	}
	return 0;
}

/* Checks n echoed bytes against what was sent: 0, or -1 on a mismatch. */
static int on_echo(struct conn *c, const char *buf, size_t n, uint64_t now)
{
	const struct endpoint *e = c->ep;
	size_t size = c->b->size, pos = 0;
	while (pos < n) {
		if (!c->inflight)
			return -1; /* more bytes than were sent */
		size_t take = size - c->got;
		if (take > n - pos)
			take = n - pos;
		if (memcmp(buf + pos, e->ring + c->expect + c->got, take))
			return -1;
		c->got += take;
		pos += take;
		if (c->got == size) {
			c->got = 0;
			c->expect = (unsigned)((c->expect + size) % e->period);
			complete(c, now, -1);
		}
	}
	return 0;
}

/* Echo batches larger than this go through echo_send. */
#define ECHO_DIRECT 65536

/*
 * Echo: sends the n bytes at p while taking in the echo that comes back
 * meanwhile, into buf (RBUF bytes).  An echo server answers as it reads,
 * so a batch larger than the two sides' socket buffers hold (a few MiB on
 * loopback) cannot go whole before its echo is read: both would wait on
 * each other.  Each send goes as far as the socket takes; when it takes
 * nothing, a poll waits for room or for echo.  Returns 0 once all went,
 * or -errno of the send, the receive or the poll, -EPROTO for an end of
 * stream, -EILSEQ for an echo that differs from what was sent.
 */
static int echo_send(struct conn *c, const char *p, size_t n, char *buf, uint64_t *now)
{
	while (n) {
		ssize_t m = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (m > 0) {
			p += m;
			n -= (size_t)m;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int ev = weft_poll(c->fd, POLLIN | POLLOUT);
		if (ev < 0)
			return ev;
		if (!(ev & (POLLIN | POLLERR | POLLHUP)))
			continue;
		ssize_t got = recv(c->fd, buf, RBUF, MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (got <= 0)
			return got == 0 ? -EPROTO : -errno;
		*now = weft_now();
		if (in_window(c->b, *now))
			c->w->bytes += (uint64_t)got;
		if (on_echo(c, buf, (size_t)got, *now) < 0)
			return -EILSEQ;
	}
	return 0;
}

/* Decides the next request unless it is (*have_next) or none is left
 * (*no_more): with -n or --rate it takes the request's ticket, and in open
 * loop its due time into *due.  Returns whether there is a next request. */
static bool next_request(struct conn *c, bool ticketed, bool open, bool *have_next,
			 bool *no_more, uint64_t *due)
{
	struct bench *b = c->b;
	if (*have_next || *no_more)
		return *have_next;
	if (ticketed) {
		/* relaxed: the ticket only hands out distinct numbers. */
		uint64_t j = atomic_fetch_add_explicit(&b->ticket, 1, memory_order_relaxed);
		if (b->total && j >= b->total) {
			*no_more = true;
			return false;
		}
		if (open) {
			uint64_t at = sched_due(b, j);
			*due = at == UINT64_MAX ? WEFT_NEVER : b->t0 + at;
		}
	}
	return *have_next = true;
}

intptr_t conn_task(void *arg)
{
	struct conn *c = arg;
	struct bench *b = c->b;
	struct wstate *w = c->w;
	const bool open = open_loop(b), ticketed = open || b->total;
	char buf[RBUF];
	size_t len = 0, rpos = 0;
	struct rx rx;
	bool have_next = false, no_more = false;
	uint64_t due = 0, now = weft_now();
	/* The first attempt, then wait for the clock to start (main.c). */
	int first = open_conn(c, now, false);
	weft_wg_done(&b->tried);
	bool started = weft_future_await(b->go, NULL) == 0 && first >= 0;
	rx.in_body = false;
	weft_http1_parser_init(&rx.p, &head_limits, rx.hdrs, NHDR);
	now = weft_now();
	while (started) {
		if (c->fd < 0) {
			/* The next request's ticket first: with -n, none left
			 * means no connection to open for it. */
			if (!c->resend && !next_request(c, ticketed, open, &have_next, &no_more, &due))
				break;
			int r = open_conn(c, now, true);
			if (r < 0)
				break;
			now = weft_now();
			if (r > 0)
				continue;
			len = rpos = 0;
			rx.in_body = false;
			weft_http1_parser_init(&rx.p, &head_limits, rx.hdrs, NHDR);
		}
		/* 1. Queue what is due, send it in one piece: what was
		 * left unanswered by a close first, as it was, its send
		 * time included (the wait for the new connection was the
		 * client's too, and its timeout runs from then). */
		unsigned k = c->resend;
		c->resend = 0;
		while (c->inflight + k < b->depth) {
			if (!next_request(c, ticketed, open, &have_next, &no_more, &due))
				break;
			if (open && due > now)
				break;
			unsigned at = c->qhead + c->inflight + k;
			struct slot *s = &c->q[at < b->depth ? at : at - b->depth];
			s->sent = now;
			s->intended = open ? due : now;
			if (open && in_window(b, now)) {
				/* Our own share of the lag: since it was due, or
				 * since a slot came free if none was free then. */
				uint64_t lag = now - due;
				uint64_t own = c->slot_free_at > due ? now - c->slot_free_at : lag;
				w->sends++;
				w->lag_sum += lag;
				if (lag > w->lag_max)
					w->lag_max = lag;
				if (own > w->own_lag_max)
					w->own_lag_max = own;
				if (lag > WEFT_MSEC) {
					w->late_sends++;
					if (own > WEFT_MSEC)
						w->late_own++;
					else
						w->late_waiting++;
				}
			}
			k++;
			have_next = false;
		}
		if (k) {
			size_t n;
			const char *p = span(c, k, &n);
			if (!c->inflight)
				c->busy_since = c->q[c->qhead].sent;
			c->inflight += k;
			ssize_t r = b->proto == P_ECHO && n > ECHO_DIRECT
					    ? echo_send(c, p, n, buf, &now)
					    : weft_sock_send_all(c->fd, p, n, NULL);
			if (run_over(b, (int)r))
				break;
			if (r < 0) {
				fail(c, r == -EILSEQ ? E_VERIFY : r == -EPROTO ? E_CLOSE : E_WRITE,
				     (int)-r, now);
				continue;
			}
		}
		/* 2. Nothing in flight: done, or wait for the schedule (open
		 * loop) in the receive below. */
		bool idle = !c->inflight;
		if (idle && !have_next)
			break;
		/* 3. Receive, until the next request is due if it could go. */
		struct weft_scope sc;
		bool paced = open && have_next && c->inflight < b->depth;
		if (paced)
			weft_scope_deadline(&sc, due > now ? due - now : 0);
		ssize_t got = weft_recv(c->fd, buf + len, RBUF - len, 0);
		bool mine = paced && weft_scope_end(&sc);
		now = weft_now();
		/* The pacing deadline, unless the ticker shut the socket down
		 * meanwhile: then nothing more may go on it. */
		if (got == -ETIMEDOUT && mine && !c->timed_out)
			continue;
		if (run_over(b, (int)got))
			break;
		if (idle && got <= 0) {
			/* The server closed (or reset) a connection with nothing
			 * asked on it, as servers do to idle keep-alive ones: no
			 * request lost, no error; the next one goes on a new
			 * connection. */
			weft_close(c->fd);
			c->fd = -1;
			continue;
		}
		if (c->timed_out) {
			/* The ticker gave up on the oldest request while this
			 * receive was on its way back: whatever came is late,
			 * and the socket is shut down under us, so no request
			 * may follow on it. */
			fail(c, E_TIMEOUT, ETIMEDOUT, now);
			continue;
		}
		if (got < 0) {
			fail(c, E_READ, (int)-got, now);
			continue;
		}
		if (got == 0) {
			/* End of stream: a proper end only for a body that runs
			 * until it. */
			if (b->proto == P_HTTP && rx.in_body && weft_http1_body_eof(&rx.body) == 0) {
				rx.in_body = false;
				complete(c, now, rx.status);
			}
			fail(c, E_CLOSE, c->got || rx.in_body || rpos < len ? EPROTO : ECONNRESET,
			     now);
			continue;
		}
		if (in_window(b, now))
			w->bytes += (uint64_t)got;
		int err = 0, r;
		if (b->proto == P_ECHO) {
			r = on_echo(c, buf, (size_t)got, now);
			err = EILSEQ;
		} else {
			len += (size_t)got;
			r = on_http(c, &rx, buf, &rpos, &len, now, &err);
		}
		if (r < 0)
			fail(c, b->proto == P_ECHO ? E_VERIFY : E_PARSE, err, now);
		else if (r > 0)
			resend_unanswered(c);
	}
	if (c->fd >= 0) {
		weft_close(c->fd);
		c->fd = -1;
	}
	return 0;
}
