// SPDX-License-Identifier: MIT
/*
 * delayserver.c - an HTTP/1.1 server that answers every GET with 200
 * "hello\n" exactly DELAY microseconds after the request's head arrived;
 * the load-generator benchmark (loadgen.py) checks weft-bench's --rate
 * against it: a generator that paces and measures right reports a p50 just
 * above DELAY.
 *
 *   delayserver HOST:PORT [DELAY_US]      (default 1000)
 *
 * One thread, nonblocking sockets, level-triggered epoll, one timerfd.
 * Since the delay is the same for every request, due times are in arrival
 * order: the pending answers are a FIFO ring, and the timerfd is armed
 * (absolute, CLOCK_MONOTONIC) for the head of the ring only.  When it
 * fires, every answer that is due goes out, one send each.  Timer slack is
 * set to 1 ns, so the kernel does not defer the expiry to batch wake-ups.
 * A ring entry names its connection by slot and generation, so an answer
 * to a connection that closed meanwhile (and whose slot was reused) is
 * dropped.  Requests carry no body (GET only); a head is counted at each
 * blank line, so pipelined requests each get their answer, in order.
 *
 * SIGTERM or SIGINT ends it with status 0.  Errors go to stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RING (1u << 16)	  /* pending answers; a power of two */
#define MAX_PENDING 64	  /* per connection; more closes it */
#define HEAD_MAX 8192	  /* a request head larger than this closes it */
#define TIMER_TAG UINT64_MAX

static const char answer[] = "HTTP/1.1 200 OK\r\n"
			     "Content-Type: text/plain\r\n"
			     "Content-Length: 6\r\n"
			     "\r\n"
			     "hello\n";

struct conn {
	int fd;		   /* -1: free slot */
	uint32_t gen;	   /* bumped on close: stale ring entries miss it */
	unsigned pending;  /* answers in the ring for this connection */
	size_t len;	   /* bytes of an unfinished head in buf */
	unsigned match;	   /* how much of "\r\n\r\n" ends buf so far */
	char buf[HEAD_MAX];
};

struct due {
	uint64_t at_ns;
	uint32_t slot, gen;
};

static volatile sig_atomic_t stop;
static struct conn **conns;
static unsigned nconns;
static struct due ring[RING];
static unsigned head, tail; /* tail - head entries, indices mod RING */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int listen_on(const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
		perror("delayserver: listen");
		return -1;
	}
	return fd;
}

static void close_conn(int ep, uint32_t slot)
{
	struct conn *c = conns[slot];
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->gen++;
	c->pending = 0;
}

/* Arms the timer for the ring's head, or disarms it when the ring is empty. */
static void arm(int tfd)
{
	struct itimerspec its = {0};
	if (head != tail) {
		uint64_t at = ring[head % RING].at_ns;
		its.it_value.tv_sec = (time_t)(at / 1000000000u);
		its.it_value.tv_nsec = (long)(at % 1000000000u);
	}
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Sends every answer that is due; the ring's head moves past them. */
static void answer_due(int ep)
{
	uint64_t now = now_ns();
	while (head != tail && ring[head % RING].at_ns <= now) {
		struct due d = ring[head % RING];
		head++;
		struct conn *c = conns[d.slot];
		if (c->fd < 0 || c->gen != d.gen)
			continue;
		c->pending--;
		/* 80 bytes into an idle loopback socket's buffer: a short
		 * send means the client stopped reading; drop it. */
		ssize_t n = send(c->fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL);
		if (n != (ssize_t)(sizeof(answer) - 1))
			close_conn(ep, d.slot);
	}
}

/* Reads what the connection sent and queues an answer per complete head;
 * false when it closed or misbehaved (and was closed). */
static bool read_conn(int ep, uint32_t slot, uint64_t delay_ns)
{
	struct conn *c = conns[slot];
	char in[4096];
	ssize_t n = recv(c->fd, in, sizeof(in), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0) {
		close_conn(ep, slot);
		return false;
	}
	uint64_t at = now_ns() + delay_ns;
	static const char end[] = "\r\n\r\n";
	for (ssize_t i = 0; i < n; i++) {
		/* A head ends at the first "\r\n\r\n"; only its length
		 * matters here, so the bytes themselves are not kept. */
		c->match = in[i] == end[c->match] ? c->match + 1 : in[i] == '\r' ? 1 : 0;
		if (++c->len > HEAD_MAX) {
			close_conn(ep, slot);
			return false;
		}
		if (c->match < 4)
			continue;
		c->match = 0;
		c->len = 0;
		if (tail - head == RING || c->pending == MAX_PENDING) {
			close_conn(ep, slot);
			return false;
		}
		ring[tail % RING] = (struct due){at, slot, c->gen};
		tail++;
		c->pending++;
	}
	return true;
}

static int accept_all(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED ? 0 : -1;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		uint32_t slot = 0;
		while (slot < nconns && conns[slot]->fd >= 0)
			slot++;
		if (slot == nconns) {
			struct conn **grown = realloc(conns, (nconns + 1) * sizeof(*conns));
			struct conn *c = grown ? calloc(1, sizeof(*c)) : NULL;
			if (grown)
				conns = grown;
			if (!c) {
				close(fd);
				return -1;
			}
			conns[nconns++] = c;
		}
		struct conn *c = conns[slot];
		c->fd = fd;
		c->len = 0;
		c->match = 0;
		c->pending = 0;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = slot};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close_conn(ep, slot);
			return -1;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: delayserver HOST:PORT [DELAY_US]\n");
		return 2;
	}
	long delay_us = argc == 3 ? strtol(argv[2], NULL, 10) : 1000;
	if (delay_us < 0 || delay_us > 60000000) {
		fprintf(stderr, "delayserver: bad delay: %s\n", argv[2]);
		return 2;
	}
	uint64_t delay_ns = (uint64_t)delay_us * 1000u;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int lfd = listen_on(argv[1]);
	if (lfd < 0)
		return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN, .data.u64 = TIMER_TAG - 1};
	struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
	if (ep < 0 || tfd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) < 0) {
		perror("delayserver: epoll");
		return 1;
	}
	struct epoll_event evs[256];
	while (!stop) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("delayserver: epoll_wait");
			return 1;
		}
		bool was_empty = head == tail;
		bool fired = false;
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			if (tag == TIMER_TAG) {
				uint64_t ticks;
				if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					perror("delayserver: timerfd");
				fired = true;
			} else if (tag == TIMER_TAG - 1) {
				if (accept_all(ep, lfd) < 0)
					perror("delayserver: accept");
			} else {
				read_conn(ep, (uint32_t)tag, delay_ns);
			}
		}
		/* Answers may also be due without the timer's event in this
		 * batch; sending them now costs nothing extra. */
		uint32_t before = head;
		answer_due(ep);
		/* Re-arm only when the head changed or the ring was empty. */
		if (fired || head != before || (was_empty && head != tail))
			arm(tfd);
	}
	return 0;
}
