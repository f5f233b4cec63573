// SPDX-License-Identifier: MIT
/*
 * floorserver - the least a server can do per message under a closed-loop
 * load, as a yardstick for the real servers in the network benchmark
 * (netbench.py).
 *
 *   floorserver echo|http HOST:PORT
 *
 * Blocking sockets and no readiness mechanism at all: the connections take
 * turns, and each turn is one recv (more only if a request came in
 * pieces) and one send of the answer: the echoed bytes, or a fixed
 * "200 hello\n" once a request head is complete.  Between turns over all
 * connections the listener is asked, nonblocking, for new ones.  Under a
 * closed loop with many connections each one's next message has nearly
 * always arrived by its turn, so the recv rarely sleeps, and the CPU per
 * message is the kernel's: two system calls and the TCP work behind them.
 *
 * Only for that load: one idle connection stalls all the others, which a
 * real server must never let happen.  It is a yardstick, not a bound: a
 * server that hands its operations to io_uring in batches saves most of
 * the two calls' entry and exit, and its recv never sleeps, so it can go
 * below this (the plain io_uring echo loop does), though not by the TCP
 * work.  SIGTERM's default action ends it.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define MAXCONNS 20000
#define BUF_SIZE 16384

static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";

static int conns[MAXCONNS];
static int nconns;
static unsigned char buf[BUF_SIZE];

static int send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/* One turn of connection fd: 0, or -1 to drop it. */
static int turn_echo(int fd)
{
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	return n > 0 ? send_all(fd, buf, (size_t)n) : -1;
}

/* HTTP: requests without bodies (GET), one at a time per connection, so
 * a turn ends with the one request's answer. */
static int turn_http(int fd)
{
	size_t have = 0;
	for (;;) {
		if (have == sizeof(buf))
			return -1;
		ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		if (memmem(buf, have, "\r\n\r\n", 4))
			return send_all(fd, hello, sizeof(hello) - 1);
	}
}

/* Takes every connection the listener has; waits for one when there is
 * none at all. */
static void accept_new(int lfd)
{
	if (nconns == 0) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		poll(&p, 1, -1);
	}
	while (nconns < MAXCONNS) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		conns[nconns++] = fd;
	}
}

int main(int argc, char **argv)
{
	bool http = argc == 3 && strcmp(argv[1], "http") == 0;
	if (argc != 3 || (!http && strcmp(argv[1], "echo") != 0)) {
		fprintf(stderr, "usage: floorserver echo|http HOST:PORT\n");
		return 2;
	}
	nb_raise_nofile();
	/* Nonblocking listener; accepted sockets block (no SOCK_NONBLOCK). */
	int lfd = nb_listen("floorserver", argv[2], SOCK_NONBLOCK);
	if (lfd < 0)
		return 1;
	for (;;) {
		accept_new(lfd);
		for (int i = 0; i < nconns;) {
			if ((http ? turn_http : turn_echo)(conns[i]) == 0) {
				i++;
				continue;
			}
			close(conns[i]);
			conns[i] = conns[--nconns];
		}
	}
}
