// SPDX-License-Identifier: MIT
/*
 * echo_epoll - a single-threaded epoll echo server, peer of weft's
 * examples/echo in the network benchmark (netbench.py).
 *
 *   echo_epoll HOST:PORT
 *
 * Nonblocking sockets, level-triggered epoll.  A readable connection gets
 * one read(2) per wake-up (no second read just to see EAGAIN, which
 * edge-triggered mode would need: if more is waiting, level triggering
 * reports the socket again) and what came in is written back at once.
 * The remainder of a short write is kept in the connection; then the
 * connection waits for EPOLLOUT instead of EPOLLIN, so a slow reader is
 * not fed more than it takes.  The listening socket accepts until EAGAIN.
 * Per message that is read + write, with epoll_wait shared by every
 * connection that is ready.  SIGTERM's default action ends it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define BUF_SIZE 16384
#define MAX_EVENTS 512

struct conn {
	int fd;
	unsigned len, off;  /* unsent bytes are pend[off, len) */
	unsigned char *pend; /* NULL while nothing waits to be sent */
};

static int ep;
static unsigned char buf[BUF_SIZE];

static void drop(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
	free(c->pend);
	free(c);
}

static int watch(struct conn *c, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	return epoll_ctl(ep, op, c->fd, &ev);
}

/* Writes pend[off, len); 0 when all of it went (EPOLLIN again), 1 when
 * the socket is full (EPOLLOUT), -1 on error. */
static int flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->pend + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		c->off += (unsigned)n;
	}
	free(c->pend);
	c->pend = NULL;
	return 0;
}

static void on_readable(struct conn *c)
{
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			drop(c);
		return;
	}
	ssize_t w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
	if (w == n)
		return; /* the common case */
	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			drop(c);
			return;
		}
		w = 0;
	}
	/* Short write: keep the rest, wait until the socket drains. */
	c->pend = malloc((size_t)(n - w));
	if (!c->pend) {
		drop(c);
		return;
	}
	memcpy(c->pend, buf + w, (size_t)(n - w));
	c->off = 0;
	c->len = (unsigned)(n - w);
	if (watch(c, EPOLL_CTL_MOD, EPOLLOUT) < 0)
		drop(c);
}

static void on_writable(struct conn *c)
{
	int rc = flush(c);
	if (rc < 0 || (rc == 0 && watch(c, EPOLL_CTL_MOD, EPOLLIN) < 0))
		drop(c);
}

static void on_listener(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN: all taken; EMFILE etc.: try at the next wake-up */
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (watch(c, EPOLL_CTL_ADD, EPOLLIN) < 0)
			drop(c);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: echo_epoll HOST:PORT\n");
		return 2;
	}
	nb_raise_nofile();
	int lfd = nb_listen("echo_epoll", argv[1], SOCK_NONBLOCK);
	if (lfd < 0)
		return 1;
	ep = epoll_create1(EPOLL_CLOEXEC);
	/* The listener is told apart by a NULL data pointer. */
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
		fprintf(stderr, "echo_epoll: epoll: %s\n", strerror(errno));
		return 1;
	}
	static struct epoll_event evs[MAX_EVENTS];
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "echo_epoll: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c)
				on_listener(lfd);
			else if (c->pend)
				on_writable(c);
			else
				on_readable(c);
		}
	}
}
