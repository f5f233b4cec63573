// SPDX-License-Identifier: MIT
/*
 * echo - a TCP echo server on weft: one task per connection, written as if
 * it blocked.
 *
 *   echo HOST:PORT        (WEFT_WORKERS sets the worker count)
 *
 * Every connection lives in one task group under the accept loop, so
 * SIGTERM or SIGINT, which cancels the loop (server.h), cancels them all,
 * and the program exits once each has closed its socket.
 */
#include "server.h"

static intptr_t serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n;
	while ((n = weft_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (weft_sock_send_all(fd, buf, (size_t)n, NULL) < 0)
			break;
	weft_close(fd);
	return 0;
}

static intptr_t accept_loop(void *arg)
{
	return server_task_per_connection(arg, serve);
}

int main(int argc, char **argv)
{
	return server_main(argc, argv, "echo", accept_loop);
}
