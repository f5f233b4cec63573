// SPDX-License-Identifier: MIT
/*
 * server.h - what the example servers share: `NAME HOST:PORT` on the
 * command line, a listening socket, a weft_listener on it, and a clean
 * stop on SIGTERM or SIGINT.  Each example supplies its accept loop, or
 * builds it on server_task_per_connection (a task per connection).
 *
 * The stop signals are blocked before the runtime starts, so no thread
 * takes them the default way; a task waits for them with weft_signal_wait
 * like any other event, then cancels the accept loop, whose task group (or
 * shutdown) ends the connections.  The main task waits for the accept loop,
 * so a listener that fails ends the program too, with its error.
 */
#ifndef WEFT_EXAMPLES_SERVER_H
#define WEFT_EXAMPLES_SERVER_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>
#include <weft/io.h>
#include <weft/net.h>

struct server {
	int lfd;
	weft_fn accept_loop; /* called with the struct weft_listener * */
};

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* Cancels the task it is given once a stop signal arrives. */
static intptr_t stop_on_signal(void *loop)
{
	sigset_t stop;
	stop_signals(&stop);
	if (weft_signal_wait(&stop) > 0)
		weft_cancel(loop);
	return 0;
}

static intptr_t server_run(void *arg)
{
	struct server *s = arg;
	struct weft_listener *l;
	int rc = weft_listener_open(s->lfd, &l);
	if (rc < 0)
		return rc;
	/* The main task waits for the accept loop, not for the signal: the
	 * loop may also end on its own (the listener failed). */
	struct weft_task *loop = weft_spawn(s->accept_loop, l, NULL);
	struct weft_task *watcher = loop ? weft_spawn(stop_on_signal, loop, NULL) : NULL;
	intptr_t result = -ENOMEM;
	if (loop)
		weft_join(loop, &result);
	if (watcher) {
		weft_cancel(watcher);
		weft_join(watcher, NULL);
	}
	weft_listener_free(l);
	return result == -ECANCELED ? 0 : result;
}

/*
 * An accept loop that runs serve((void *)(intptr_t)fd) in a task per
 * connection, all in one task group: when the loop is cancelled (or the
 * listener fails) it cancels them and returns once each has finished.
 */
static inline intptr_t server_task_per_connection(struct weft_listener *l, weft_fn serve)
{
	struct weft_group *g = weft_group_new(0);
	if (!g)
		return -ENOMEM;
	int fd;
	/* The listener backs off by itself when descriptors run out. */
	while ((fd = weft_listener_accept(l)) >= 0)
		if (weft_group_spawn(g, serve, (void *)(intptr_t)fd, NULL) < 0)
			weft_close(fd);
	weft_group_cancel(g);
	weft_group_wait(g);
	weft_group_free(g);
	return fd;
}

/* The whole of main: returns the process's exit status. */
static int server_main(int argc, char **argv, const char *name, weft_fn accept_loop)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s HOST:PORT\n", name);
		return 2;
	}
	struct weft_addr a;
	if (weft_addr_parse(&a, argv[1]) < 0) {
		fprintf(stderr, "%s: %s: expected HOST:PORT with a numeric host\n", name, argv[1]);
		return 2;
	}
	struct weft_listen_opts lo = {.backlog = 4096};
	struct server s = {.lfd = weft_sock_listen(&a, &lo), .accept_loop = accept_loop};
	if (s.lfd < 0) {
		fprintf(stderr, "%s: %s: %s\n", name, argv[1], strerror(-s.lfd));
		return 1;
	}
	sigset_t stop;
	stop_signals(&stop);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	char where[WEFT_ADDR_STRLEN];
	if (weft_sock_local_addr(s.lfd, &a) == 0 && weft_addr_format(&a, where, sizeof(where)) > 0)
		fprintf(stderr, "%s: listening on %s\n", name, where);
	intptr_t rc = weft_main(server_run, &s, NULL);
	close(s.lfd);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", name, strerror((int)-rc));
		return 1;
	}
	return 0;
}

#endif
