// SPDX-License-Identifier: MIT
/*
 * floorgen - the least a closed-loop HTTP load generator can do per
 * request, as a yardstick for the real ones (bench/loadgen/loadgen.py).
 *
 *   floorgen HOST:PORT CONNECTIONS SECONDS
 *
 * Blocking sockets, no event loop, no timing per request, no parser: the
 * connections take turns, and each turn is one recv of the answer (more
 * only if it came in pieces), found whole by its Content-Length, then one
 * send of the next request.  With 50 requests in flight the answer is
 * nearly always there already, so the recv rarely sleeps.  What the
 * process costs per request is then the kernel's: two system calls and
 * the TCP work behind them, on loopback including the delivery into the
 * server's socket and its wake-up.  A generator that makes one send and
 * one receive system call per request cannot cost less; one that hands
 * its operations to io_uring in batches saves most of the two calls'
 * entry and exit (about 190 ns each on the machine of docs/benchmarks.md)
 * and can go below it by that much, but not by the TCP work.
 *
 * Prints wrk's two lines, "N requests in Ts" and "Requests/sec: R", so the
 * driver reads it as it reads wrk; exits 1 on any socket error or an
 * answer it cannot frame (it understands Content-Length only).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXCONNS 1024

static const char request[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int send_request(int fd)
{
	return send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) ==
			       (ssize_t)(sizeof(request) - 1)
		       ? 0
		       : -1;
}

/* Reads one whole answer from fd: 0, or -1 (error, end, or unframeable). */
static int read_answer(int fd)
{
	char buf[4096];
	size_t have = 0;
	long need = -1; /* head and body, once the head is in */
	while (need < 0 || (long)have < need) {
		if (have == sizeof(buf))
			return -1;
		ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		if (need < 0) {
			const char *end = memmem(buf, have, "\r\n\r\n", 4);
			if (!end)
				continue;
			const char *cl = memmem(buf, (size_t)(end - buf), "\r\nContent-Length:", 17);
			if (!cl)
				return -1;
			need = (end - buf) + 4 + atol(cl + 17);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: floorgen HOST:PORT CONNECTIONS SECONDS\n");
		return 2;
	}
	char host[64];
	int port, conns = atoi(argv[2]);
	double secs = atof(argv[3]);
	struct sockaddr_in a = {.sin_family = AF_INET};
	if (sscanf(argv[1], "%63[^:]:%d", host, &port) != 2 ||
	    inet_pton(AF_INET, host, &a.sin_addr) != 1 || conns < 1 || conns > MAXCONNS ||
	    secs <= 0) {
		fprintf(stderr, "floorgen: bad arguments\n");
		return 2;
	}
	a.sin_port = htons((uint16_t)port);
	int fd[MAXCONNS];
	for (int i = 0; i < conns; i++) {
		int one = 1;
		fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fd[i] < 0 || connect(fd[i], (struct sockaddr *)&a, sizeof(a)) != 0) {
			perror("floorgen: connect");
			return 1;
		}
		/* As wrk and weft-bench: every request leaves at once. */
		setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	double t0 = now(), end = t0 + secs;
	for (int i = 0; i < conns; i++)
		if (send_request(fd[i]) < 0) {
			perror("floorgen: send");
			return 1;
		}
	long done = 0;
	while (now() < end) {
		for (int i = 0; i < conns; i++) {
			if (read_answer(fd[i]) < 0 || send_request(fd[i]) < 0) {
				fprintf(stderr, "floorgen: connection %d failed\n", i);
				return 1;
			}
			done++;
		}
	}
	double took = now() - t0;
	printf("  %ld requests in %.2fs\n", done, took);
	printf("Requests/sec: %.2f\n", (double)done / took);
	return 0;
}
