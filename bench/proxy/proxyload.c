// SPDX-License-Identifier: MIT
/*
 * proxyload.c - the proxy benchmark's data client and its sink backend, in
 * one program (proxybench.py runs it in three modes):
 *
 *   proxyload sink ADDR                    the backend: checks and answers
 *   proxyload bulk ADDR [-c N] [-b BYTES] [-t SECS]
 *                                          N connections each stream BYTES
 *   proxyload hold ADDR [-c N] [-w N] [-t SECS]
 *                                          open N idle connections, hold
 *                                          them until stdin ends
 *
 * The protocol (both ends are this file): a connection opens with a 24-byte
 * header (magic, mode, pattern offset, length).  In bulk mode LENGTH bytes
 * of the pattern follow, starting at the offset; the client then shuts its
 * write side down, and the sink, once it has read and compared every byte,
 * answers with a 16-byte verdict (status, bytes received) and closes.  In
 * idle mode the sink answers the header with a verdict at once and keeps
 * the connection open, reading nothing more, until the client closes it.
 * The verdict travels back through the proxy, so every proxied connection is
 * known to have reached the backend and to carry bytes both ways.
 *
 * The pattern is 2 * PATLEN pseudo-random bytes, PATLEN a prime, so a send
 * or a compare at any offset is one memcmp/send from one buffer, and a
 * proxy that drops, repeats or reorders a chunk shows up as a mismatch.
 *
 * One thread, nonblocking sockets, level-triggered epoll.  Output is one
 * line of key=value pairs on stdout; errors go to stderr.  Exit status 0
 * when every connection ended as it should, 1 otherwise, 2 on bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PATLEN 1048573u        /* prime: offsets never line up with chunks */
#define CHUNK (256u << 10)     /* largest send or recv; < PATLEN */
#define MAGIC 0x31425057u      /* "WPB1" */
#define MODE_BULK 1u
#define MODE_IDLE 2u

struct hdr {
	uint32_t magic, mode, offset, pad;
	uint64_t length;
};

struct verdict {
	uint32_t magic, status; /* status: 0 ok, 1 bytes differ */
	uint64_t received;
};

_Static_assert(sizeof(struct hdr) == 24, "header is 24 bytes on the wire");
_Static_assert(sizeof(struct verdict) == 16, "verdict is 16 bytes");

static unsigned char *pat; /* 2 * PATLEN bytes: pat[i + PATLEN] == pat[i] */

static void die(const char *what)
{
	fprintf(stderr, "proxyload: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void make_pattern(void)
{
	pat = malloc(2 * (size_t)PATLEN);
	if (!pat)
		die("malloc");
	uint64_t x = 0x9e3779b97f4a7c15u; /* splitmix64 */
	for (uint32_t i = 0; i < PATLEN; i++) {
		x += 0x9e3779b97f4a7c15u;
		uint64_t z = x;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
		pat[i] = (unsigned char)(z ^ (z >> 31));
	}
	memcpy(pat + PATLEN, pat, PATLEN);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Soft RLIMIT_NOFILE up to the hard limit; returns the soft limit. */
static long raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

static struct sockaddr_in parse_addr(const char *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host)) {
		fprintf(stderr, "proxyload: %s: expected IPv4:PORT\n", s);
		exit(2);
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "proxyload: %s: expected IPv4:PORT\n", s);
		exit(2);
	}
	sa.sin_port = htons((uint16_t)port);
	return sa;
}

static void epoll_set(int ep, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	if (epoll_ctl(ep, op, fd, &ev) != 0)
		die("epoll_ctl");
}

/* --- sink ---------------------------------------------------------------- */

enum { S_HDR, S_BULK, S_IDLE };

struct sconn {
	struct hdr h;
	uint32_t hgot;    /* header bytes read so far */
	uint32_t state;
	uint32_t status;
	uint64_t got;     /* pattern bytes read so far */
};

static _Noreturn void sink(const char *addr)
{
	long nfd = raise_nofile();
	struct sockaddr_in sa = parse_addr(addr);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("bind");
	if (listen(lfd, 4096) != 0)
		die("listen");
	struct sconn *c = calloc((size_t)nfd, sizeof(*c));
	unsigned char *buf = malloc(CHUNK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!c || !buf || ep < 0)
		die("setup");
	epoll_set(ep, EPOLL_CTL_ADD, lfd, EPOLLIN, (uint64_t)lfd);
	fprintf(stderr, "proxyload: sink listening on %s\n", addr);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = (int)evs[i].data.u64;
			if (fd == lfd) {
				for (int k = 0; k < 64; k++) {
					int cfd = accept4(lfd, NULL, NULL,
							  SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (cfd < 0)
						break; /* EAGAIN, or EMFILE: retried */
					if (cfd >= nfd) {
						close(cfd);
						continue;
					}
					memset(&c[cfd], 0, sizeof(c[cfd]));
					epoll_set(ep, EPOLL_CTL_ADD, cfd, EPOLLIN,
						  (uint64_t)cfd);
				}
				continue;
			}
			struct sconn *s = &c[fd];
			ssize_t r;
			if (s->state == S_HDR) {
				r = recv(fd, (char *)&s->h + s->hgot,
					 sizeof(s->h) - s->hgot, 0);
			} else if (s->state == S_BULK) {
				uint64_t left = s->h.length - s->got;
				r = recv(fd, buf, left < CHUNK ? left : CHUNK, 0);
			} else {
				r = recv(fd, buf, CHUNK, 0); /* idle: EOF or junk */
			}
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0 || s->state == S_IDLE) {
				if (r > 0)
					continue; /* bytes after the header: drop */
				close(fd); /* EOF or error; no verdict */
				continue;
			}
			bool reply = false;
			if (s->state == S_HDR) {
				s->hgot += (uint32_t)r;
				if (s->hgot < sizeof(s->h))
					continue;
				if (s->h.magic != MAGIC || s->h.offset >= PATLEN ||
				    (s->h.mode != MODE_BULK && s->h.mode != MODE_IDLE)) {
					close(fd);
					continue;
				}
				s->state = s->h.mode == MODE_BULK ? S_BULK : S_IDLE;
				reply = s->h.mode == MODE_IDLE || s->h.length == 0;
			} else {
				uint32_t at = (uint32_t)((s->h.offset + s->got) % PATLEN);
				if (memcmp(buf, pat + at, (size_t)r) != 0)
					s->status = 1;
				s->got += (uint64_t)r;
				reply = s->got == s->h.length;
			}
			if (!reply)
				continue;
			struct verdict v = {MAGIC, s->status, s->got};
			/* 16 bytes into an empty send buffer: all or an error. */
			if (send(fd, &v, sizeof(v), MSG_NOSIGNAL) != sizeof(v) ||
			    s->state == S_BULK)
				close(fd);
		}
	}
}

/* --- clients ------------------------------------------------------------- */

struct cconn {
	int fd;
	uint32_t offset;
	uint64_t sent;     /* header + pattern bytes sent */
	uint32_t vgot;     /* verdict bytes read */
	bool connected, done;
	struct verdict v;
	struct hdr h;
};

static int open_conn(struct cconn *c, const struct sockaddr_in *sa, int ep,
		     uint64_t idx)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 &&
	    errno != EINPROGRESS) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		return -e;
	}
	epoll_set(ep, EPOLL_CTL_ADD, c->fd, EPOLLOUT | EPOLLIN, idx);
	return 0;
}

/* Reads the verdict; 1 when complete, 0 when more is to come, -1 when the
 * connection ended or failed first (errno kept, 0 for EOF). */
static int read_verdict(struct cconn *c)
{
	ssize_t r = recv(c->fd, (char *)&c->v + c->vgot, sizeof(c->v) - c->vgot, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0) {
		if (r == 0)
			errno = 0;
		return -1;
	}
	c->vgot += (uint32_t)r;
	return c->vgot == sizeof(c->v);
}

static int conn_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	return err;
}

static int bulk(const char *addr, int nconns, uint64_t bytes, double timeout)
{
	raise_nofile();
	struct sockaddr_in sa = parse_addr(addr);
	struct cconn *cs = calloc((size_t)nconns, sizeof(*cs));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cs || ep < 0)
		die("setup");
	double t0 = now_s();
	int left = nconns, errors = 0;
	double first_done = 0, last_done = 0;
	for (int i = 0; i < nconns; i++) {
		struct cconn *c = &cs[i];
		c->offset = (uint32_t)(((uint64_t)i * 104729u) % PATLEN);
		c->h = (struct hdr){MAGIC, MODE_BULK, c->offset, 0, bytes};
		int e = open_conn(c, &sa, ep, (uint64_t)i);
		if (e < 0) {
			errno = -e;
			die("connect");
		}
	}
	struct epoll_event evs[256];
	const uint64_t total = sizeof(struct hdr) + bytes;
	while (left > 0) {
		if (now_s() - t0 > timeout) {
			fprintf(stderr, "proxyload: bulk: %d connections unfinished "
				"after %.0f s\n", left, timeout);
			errors += left;
			break;
		}
		int n = epoll_wait(ep, evs, 256, 1000);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct cconn *c = &cs[evs[i].data.u64];
			if (c->done)
				continue;
			bool fail = false;
			const char *why = NULL;
			if (c->sent < total && (evs[i].events & (EPOLLOUT | EPOLLERR))) {
				ssize_t r;
				if (c->sent < sizeof(c->h)) {
					r = send(c->fd, (char *)&c->h + c->sent,
						 sizeof(c->h) - c->sent, MSG_NOSIGNAL);
				} else {
					uint64_t off = c->sent - sizeof(c->h);
					uint64_t want = bytes - off;
					uint32_t at = (uint32_t)((c->offset + off) % PATLEN);
					r = send(c->fd, pat + at,
						 want < CHUNK ? want : CHUNK, MSG_NOSIGNAL);
				}
				if (r > 0) {
					c->sent += (uint64_t)r;
					if (c->sent == total) {
						shutdown(c->fd, SHUT_WR);
						epoll_set(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN,
							  evs[i].data.u64);
					}
				} else if (errno != EAGAIN && errno != EINTR) {
					fail = true;
					why = "send";
				}
			}
			if (!fail && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
				int v = read_verdict(c);
				if (v < 0) {
					fail = true;
					why = errno ? "recv" : "closed before the verdict";
				} else if (v > 0) {
					if (c->sent < total || c->v.magic != MAGIC ||
					    c->v.status != 0 || c->v.received != bytes) {
						fprintf(stderr, "proxyload: conn %ld: verdict "
							"status %u, %llu of %llu bytes%s\n",
							(long)evs[i].data.u64, c->v.status,
							(unsigned long long)c->v.received,
							(unsigned long long)bytes,
							c->v.status ? " (bytes differ)" : "");
						errors++;
					}
					c->done = true;
				}
			}
			if (fail) {
				int e = errno ? errno : conn_error(c->fd);
				fprintf(stderr, "proxyload: conn %ld: %s%s%s after %llu "
					"bytes\n", (long)evs[i].data.u64, why,
					e ? ": " : "", e ? strerror(e) : "",
					(unsigned long long)c->sent);
				errors++;
				c->done = true;
			}
			if (c->done) {
				close(c->fd);
				left--;
				last_done = now_s();
				if (!first_done)
					first_done = last_done;
			}
		}
	}
	double secs = (last_done ? last_done : now_s()) - t0;
	double moved = (double)bytes * (nconns - errors);
	printf("conns=%d bytes=%.0f secs=%.4f mb_per_s=%.1f first_done_s=%.4f "
	       "errors=%d\n", nconns, moved, secs, secs > 0 ? moved / secs / 1e6 : 0,
	       first_done ? first_done - t0 : 0, errors);
	return errors ? 1 : 0;
}

static int hold(const char *addr, int nconns, int window, double timeout)
{
	long nfd = raise_nofile();
	if (nconns + 16 > nfd) {
		fprintf(stderr, "proxyload: %d connections need more than the "
			"descriptor limit %ld\n", nconns, nfd);
		return 1;
	}
	struct sockaddr_in sa = parse_addr(addr);
	struct cconn *cs = calloc((size_t)nconns, sizeof(*cs));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cs || ep < 0)
		die("setup");
	/* stdin: its end (or a line) releases the connections. */
	epoll_set(ep, EPOLL_CTL_ADD, 0, EPOLLIN, UINT64_MAX);
	double t0 = now_s();
	int opened = 0, ready = 0, pending = 0, dropped = 0;
	struct epoll_event evs[256];
	bool all_ready = false, release = false;
	while (!release) {
		while (!all_ready && opened < nconns && pending < window) {
			struct cconn *c = &cs[opened];
			c->h = (struct hdr){MAGIC, MODE_IDLE, 0, 0, 0};
			int e = open_conn(c, &sa, ep, (uint64_t)opened);
			if (e < 0) {
				fprintf(stderr, "proxyload: hold: connection %d: %s\n",
					opened, strerror(-e));
				return 1;
			}
			opened++;
			pending++;
		}
		if (!all_ready && now_s() - t0 > timeout) {
			fprintf(stderr, "proxyload: hold: %d of %d connections ready "
				"after %.0f s\n", ready, nconns, timeout);
			return 1;
		}
		int n = epoll_wait(ep, evs, 256, 1000);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == UINT64_MAX) {
				release = true;
				continue;
			}
			struct cconn *c = &cs[evs[i].data.u64];
			if (c->done) { /* held and ready: anything here is an end */
				dropped++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
				continue;
			}
			if (!c->connected) {
				int e = conn_error(c->fd);
				if (e || !(evs[i].events & EPOLLOUT)) {
					if (!e && (evs[i].events & EPOLLIN))
						continue; /* cannot happen before a send */
					fprintf(stderr, "proxyload: hold: connection %ld: "
						"%s\n", (long)evs[i].data.u64,
						strerror(e ? e : ECONNRESET));
					return 1;
				}
				c->connected = true;
				if (send(c->fd, &c->h, sizeof(c->h), MSG_NOSIGNAL) !=
				    sizeof(c->h))
					die("hold: send header");
				epoll_set(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN,
					  evs[i].data.u64);
				continue;
			}
			int v = read_verdict(c);
			if (v < 0) {
				fprintf(stderr, "proxyload: hold: connection %ld ended "
					"before the backend answered\n",
					(long)evs[i].data.u64);
				return 1;
			}
			if (v > 0) {
				if (c->v.magic != MAGIC || c->v.status != 0) {
					fprintf(stderr, "proxyload: hold: bad answer\n");
					return 1;
				}
				c->done = true;
				pending--;
				if (++ready == nconns) {
					all_ready = true;
					printf("ready conns=%d secs=%.3f\n", ready,
					       now_s() - t0);
					fflush(stdout);
				}
			}
		}
	}
	for (int i = 0; i < opened; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	printf("released conns=%d dropped=%d\n", ready, dropped);
	return dropped || !all_ready ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: proxyload sink ADDR\n"
		"       proxyload bulk ADDR [-c CONNS] [-b BYTES] [-t SECS]\n"
		"       proxyload hold ADDR [-c CONNS] [-w WINDOW] [-t SECS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *mode = argv[1], *addr = argv[2];
	int conns = 64, window = 256;
	uint64_t bytes = 32u << 20;
	double timeout = 300;
	for (int i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			usage();
		char *end;
		double v = strtod(argv[i + 1], &end);
		if (*end || v <= 0)
			usage();
		if (!strcmp(argv[i], "-c"))
			conns = (int)v;
		else if (!strcmp(argv[i], "-b"))
			bytes = (uint64_t)v;
		else if (!strcmp(argv[i], "-w"))
			window = (int)v;
		else if (!strcmp(argv[i], "-t"))
			timeout = v;
		else
			usage();
	}
	if (conns < 1 || window < 1)
		usage();
	make_pattern();
	if (!strcmp(mode, "sink"))
		sink(addr);
	if (!strcmp(mode, "bulk"))
		return bulk(addr, conns, bytes, timeout);
	if (!strcmp(mode, "hold"))
		return hold(addr, conns, window, timeout);
	usage();
	return 2;
}
