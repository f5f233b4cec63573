// SPDX-License-Identifier: MIT
/*
 * echo - a TCP echo server on weft: one task per connection, written as if
 * it blocked.
 *
 *   echo HOST:PORT        (WEFT_WORKERS sets the worker count)
 *
 * Every connection lives in one task group under the accept loop, so
 * SIGTERM or SIGINT (turned into a cancellation of the loop) cancels them
 * all, and the program exits once each has closed its socket.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>
#include <weft/io.h>

static intptr_t serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n;
	while ((n = weft_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (weft_send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	weft_close(fd);
	return 0;
}

static intptr_t accept_loop(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	struct weft_group *g = weft_group_new(0);
	if (!g)
		return -ENOMEM;
	for (;;) {
		int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -ECANCELED)
			break;
		if (fd == -EMFILE || fd == -ENFILE) {
			/* Out of descriptors: wait for connections to close
			 * rather than spin. */
			if (weft_sleep(10 * WEFT_MSEC) == -ECANCELED)
				break;
			continue;
		}
		if (fd < 0)
			continue; /* the client gave up before we accepted */
		if (weft_group_spawn(g, serve, (void *)(intptr_t)fd, NULL) < 0)
			weft_close(fd);
	}
	weft_group_cancel(g);
	weft_group_wait(g);
	weft_group_free(g);
	return 0;
}

/* HOST:PORT (or [HOST]:PORT) -> a listening socket, or -1 with a message. */
static int listen_on(const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "echo: %s: expected HOST:PORT\n", spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = 0;
		h++;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *ai;
	int rc = getaddrinfo(h, colon + 1, &hints, &ai);
	if (rc) {
		fprintf(stderr, "echo: %s: %s\n", spec, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "echo: %s: %s\n", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Resolved by the signal thread; never freed, so a late signal is harmless. */
static struct weft_future *stop;

static void *signal_thread(void *set)
{
	int sig;
	sigwait(set, &sig);
	weft_future_resolve(stop, sig);
	return NULL;
}

/* Cancels the task it was given once a stop signal arrives. */
static intptr_t watcher(void *loop)
{
	intptr_t sig;
	if (weft_future_await(stop, &sig) == 0)
		weft_cancel(loop);
	return 0;
}

static intptr_t run(void *lfd)
{
	struct weft_task *w = weft_spawn(watcher, weft_self(), NULL);
	intptr_t rc = accept_loop(lfd);
	weft_cancel(w);
	weft_join(w, NULL);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: echo HOST:PORT\n");
		return 2;
	}
	int lfd = listen_on(argv[1]);
	if (lfd < 0)
		return 1;
	/* Blocked here, so every thread started from now on inherits it and
	 * only signal_thread receives them. */
	static sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	stop = weft_future_new();
	pthread_t th;
	if (!stop || pthread_create(&th, NULL, signal_thread, &set) != 0) {
		fprintf(stderr, "echo: out of memory\n");
		return 1;
	}
	pthread_detach(th);
	/* The address actually bound (port 0 picks a free one). */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[64] = "?", port[16] = "?";
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
	fprintf(stderr, "echo: listening on %s port %s\n", host, port);
	intptr_t rc = weft_main(run, (void *)(intptr_t)lfd, NULL);
	close(lfd);
	if (rc < 0) {
		fprintf(stderr, "echo: %s\n", strerror((int)-rc));
		return 1;
	}
	return 0;
}
