// SPDX-License-Identifier: MIT
/*
 * echo_stream - the TCP echo server of examples/echo, reading through a
 * weft_stream: one multishot receive per connection stays armed, so a
 * message costs the kernel no receive submission and no poll arm.
 *
 *   echo_stream HOST:PORT        (WEFT_WORKERS sets the worker count)
 *
 * Every connection lives in one task group under the accept loop, so
 * SIGTERM or SIGINT, which cancels the loop (server.h), cancels them all,
 * and the program exits once each has closed its socket.
 */
#include "server.h"

static intptr_t serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct weft_stream *s;
	if (weft_stream_open(fd, &s) == 0) {
		char buf[4096];
		ssize_t n;
		while ((n = weft_stream_recv(s, buf, sizeof(buf))) > 0)
			if (weft_sock_send_all(fd, buf, (size_t)n, NULL) < 0)
				break;
		weft_stream_close(s);
	}
	weft_close(fd);
	return 0;
}

static intptr_t accept_loop(void *arg)
{
	return server_task_per_connection(arg, serve);
}

int main(int argc, char **argv)
{
	return server_main(argc, argv, "echo_stream", accept_loop);
}
