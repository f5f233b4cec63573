// SPDX-License-Identifier: MIT
/*
 * floorproxy - the least an L4 proxy can do per request under a
 * closed-loop keep-alive load, as a yardstick for the real proxies in the
 * proxy benchmark (proxybench.py, the http case).
 *
 *   floorproxy LISTEN_IP:PORT BACKEND_IP:PORT
 *
 * Blocking sockets and no readiness mechanism at all.  Each accepted
 * client gets its own backend connection.  Then rounds of two phases: every
 * client in turn, one recv of its request and one send of it to the
 * backend; then every backend in turn, one recv of its answer and one send
 * of it to the client.  Between rounds the listener is asked, nonblocking,
 * for new clients.  Under wrk's closed loop each client has exactly one
 * request in flight, and a request or a small answer is one segment, so
 * each recv finds one whole message, and the CPU per request is the
 * kernel's: four system calls and the TCP work behind them.
 *
 * Only for that load: one idle client, or a message that comes in two
 * pieces, stalls every connection, which a real proxy must never let
 * happen.  A proxy that hands its operations to io_uring in batches saves
 * most of the four calls' entry and exit and can go below this, but not
 * by the TCP work.  SIGTERM's default action ends it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXPAIRS 4096
#define BUF_SIZE 16384

struct pair {
	int client, server;
};

static struct pair pairs[MAXPAIRS];
static int npairs;
static char buf[BUF_SIZE];

static int parse(const char *spec, struct sockaddr_in *a)
{
	char host[64];
	int port;
	*a = (struct sockaddr_in){.sin_family = AF_INET};
	if (sscanf(spec, "%63[^:]:%d", host, &port) != 2 ||
	    inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -1;
	a->sin_port = htons((uint16_t)port);
	return 0;
}

/* One recv from `from`, all of it sent to `to`: 0, or -1 to drop the pair. */
static int relay(int from, int to)
{
	ssize_t n = recv(from, buf, sizeof(buf), 0);
	if (n <= 0)
		return -1;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		off += w;
	}
	return 0;
}

static void drop(int i)
{
	close(pairs[i].client);
	close(pairs[i].server);
	pairs[i] = pairs[--npairs];
}

/* Takes every client the listener has, each with a new backend
 * connection; waits for one when there is none at all. */
static void accept_new(int lfd, const struct sockaddr_in *backend)
{
	if (npairs == 0) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		poll(&p, 1, -1);
	}
	while (npairs < MAXPAIRS) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			return;
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
		if (s < 0 || connect(s, (const struct sockaddr *)backend, sizeof(*backend)) != 0) {
			perror("floorproxy: backend");
			close(c);
			if (s >= 0)
				close(s);
			continue;
		}
		/* As the real proxies: every relayed message leaves at once. */
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pairs[npairs++] = (struct pair){c, s};
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in listen_at, backend;
	if (argc != 3 || parse(argv[1], &listen_at) < 0 || parse(argv[2], &backend) < 0) {
		fprintf(stderr, "usage: floorproxy LISTEN_IP:PORT BACKEND_IP:PORT\n");
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int one = 1;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&listen_at, sizeof(listen_at)) != 0 ||
	    listen(lfd, 1024) != 0) {
		perror("floorproxy: listen");
		return 1;
	}
	for (;;) {
		accept_new(lfd, &backend);
		for (int i = 0; i < npairs;)
			if (relay(pairs[i].client, pairs[i].server) == 0)
				i++;
			else
				drop(i);
		for (int i = 0; i < npairs;)
			if (relay(pairs[i].server, pairs[i].client) == 0)
				i++;
			else
				drop(i);
	}
}
