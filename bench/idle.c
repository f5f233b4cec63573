// SPDX-License-Identifier: MIT
/*
 * idle.c - what an idle connection costs a weft server in user-space memory.
 *
 *   weft-idlebench [-n CONNECTIONS] [-m watch|stream|task]
 *
 * Opens CONNECTIONS loopback connections to itself (both ends in this
 * process: the client ends cost no user-space memory, only descriptors)
 * and keeps the server ends idle: in weft_watch (-m watch, the default: no
 * task, no stack, no buffer while idle), as watched streams (-m stream:
 * weft_stream_watch, a multishot receive armed, no task, no buffer), or
 * with a task per connection blocked in weft_recv on a 4 KiB stack buffer
 * (-m task, for comparison).  It reports the growth of the process's resident set from
 * before the first connection to when every connection is idle, divided by
 * CONNECTIONS: bytes_per_conn, the last line.  Both ends count against the
 * descriptor limit, which it raises to the hard limit; 9,900 connections
 * fit under 20,000.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>
#include <weft/io.h>
#include <weft/net.h>
#include <weft/sync.h>

enum mode { WATCH, STREAM, TASK };
static const char *const mode_names[] = {"watch", "stream", "task"};

static int n_conns = 9900;
static enum mode mode;
static struct weft_wg idle_wg;   /* one count per connection until it is idle */
static struct weft_wg closed_wg; /* one count per connection until it closed */

static long rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * sysconf(_SC_PAGESIZE);
}

static void on_bytes(int fd, const void *data, ssize_t n, void *arg)
{
	(void)data;
	(void)n;
	(void)arg;
	weft_close(fd); /* the client closed: end of stream */
	weft_wg_done(&closed_wg);
}

static void on_stream(struct weft_stream *s, int fd, int status, void *arg)
{
	(void)status;
	(void)arg;
	weft_stream_close(s); /* the client closed: end of stream */
	weft_close(fd);
	weft_wg_done(&closed_wg);
}

static intptr_t conn_task(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	weft_wg_done(&idle_wg); /* about to wait */
	weft_recv(fd, buf, sizeof(buf), 0);
	weft_close(fd);
	weft_wg_done(&closed_wg);
	return 0;
}

static intptr_t acceptor(void *arg)
{
	struct weft_listener *l = arg;
	for (int i = 0; i < n_conns; i++) {
		int fd = weft_listener_accept(l);
		if (fd < 0) {
			fprintf(stderr, "idlebench: accept: %s\n", strerror(-fd));
			return fd;
		}
		struct weft_stream *s;
		if (mode == TASK) {
			struct weft_task *t = weft_spawn(conn_task, (void *)(intptr_t)fd, NULL);
			if (t)
				weft_detach(t);
		} else if (mode == STREAM) {
			if (weft_stream_open(fd, &s) < 0 ||
			    weft_stream_watch(s, WEFT_NEVER, on_stream, NULL) < 0)
				return -ENOMEM;
			weft_wg_done(&idle_wg);
		} else {
			if (weft_watch(fd, WEFT_NEVER, on_bytes, NULL) < 0)
				return -ENOMEM;
			weft_wg_done(&idle_wg);
		}
	}
	return 0;
}

static intptr_t run(void *arg)
{
	(void)arg;
	struct weft_addr a;
	weft_addr_parse(&a, "127.0.0.1:0");
	struct weft_listen_opts lo = {.backlog = 4096};
	int lfd = weft_sock_listen(&a, &lo);
	if (lfd < 0 || weft_sock_local_addr(lfd, &a) < 0)
		return lfd < 0 ? lfd : -EINVAL;
	int *clients = calloc((size_t)n_conns, sizeof(int));
	struct weft_listener *l;
	if (!clients || weft_listener_open(lfd, &l) < 0)
		return -ENOMEM;
	weft_wg_add(&idle_wg, n_conns);
	weft_wg_add(&closed_wg, n_conns);
	/* Warm what every connection will touch, then take the baseline. */
	weft_sleep(50 * WEFT_MSEC);
	long before = rss_bytes();
	struct weft_task *acc = weft_spawn(acceptor, l, NULL);
	for (int i = 0; i < n_conns; i++) {
		if ((clients[i] = weft_sock_connect(&a)) < 0) {
			fprintf(stderr, "idlebench: connect %d: %s\n", i, strerror(-clients[i]));
			return clients[i];
		}
	}
	intptr_t rc;
	weft_join(acc, &rc);
	if (rc < 0)
		return rc;
	weft_wg_wait(&idle_wg);
	weft_sleep(200 * WEFT_MSEC);
	long after = rss_bytes();
	printf("mode=%s\nconnections=%d\nrss_before=%ld\nrss_after=%ld\n", mode_names[mode],
	       n_conns, before, after);
	printf("bytes_per_conn=%.1f\n", (double)(after - before) / n_conns);
	fflush(stdout);
	for (int i = 0; i < n_conns; i++)
		weft_close(clients[i]);
	weft_wg_wait(&closed_wg);
	weft_listener_free(l);
	close(lfd);
	free(clients);
	return 0;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "n:m:")) != -1) {
		if (opt == 'n')
			n_conns = atoi(optarg);
		else if (opt == 'm' && !strcmp(optarg, "watch"))
			mode = WATCH;
		else if (opt == 'm' && !strcmp(optarg, "stream"))
			mode = STREAM;
		else if (opt == 'm' && !strcmp(optarg, "task"))
			mode = TASK;
		else {
			fprintf(stderr, "usage: weft-idlebench [-n CONNECTIONS] [-m watch|stream|task]\n");
			return 2;
		}
	}
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	r.rlim_cur = r.rlim_max;
	setrlimit(RLIMIT_NOFILE, &r);
	if (n_conns < 1 || (rlim_t)(2 * n_conns + 64) > r.rlim_cur) {
		fprintf(stderr, "idlebench: %d connections need %d descriptors; the limit is %llu\n",
			n_conns, 2 * n_conns + 64, (unsigned long long)r.rlim_cur);
		return 2;
	}
	weft_wg_init(&idle_wg);
	weft_wg_init(&closed_wg);
	intptr_t rc = weft_main(run, NULL, NULL);
	if (rc < 0) {
		fprintf(stderr, "idlebench: %s\n", strerror((int)-rc));
		return 1;
	}
	return 0;
}
