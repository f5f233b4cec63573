// SPDX-License-Identifier: MIT
/*
 * echo_uring_plain - the straightforward raw io_uring echo server, peer of
 * weft's examples/echo in the network benchmark (netbench.py).
 *
 *   echo_uring_plain HOST:PORT
 *
 * One thread, one ring with default setup flags.  Each connection has one
 * operation in flight at a time: a single-shot recv into its own buffer,
 * then a send of what came in (again for the rest after a short send), then
 * the next recv.  One single-shot accept is always armed.  Every loop
 * iteration submits what is queued with io_uring_submit_and_wait(ring, 1)
 * and handles every completion that is ready.  This is what one writes
 * first with liburing; echo_uring_tuned.c is what one writes after tuning.
 * SIGTERM's default action ends it (it holds nothing to flush).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define BUF_SIZE 4096

struct conn {
	int fd;
	unsigned len, off; /* bytes received, and sent of them so far */
	unsigned char buf[BUF_SIZE];
};

enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2 };

static struct io_uring ring;

/* user_data: the connection pointer (16-byte aligned by malloc) with the
 * operation in its low bits. */
static void *tag(struct conn *c, int op)
{
	return (void *)((uintptr_t)c | (uintptr_t)op);
}

static void queue_accept(int lfd)
{
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, tag(NULL, OP_ACCEPT));
}

static void queue_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_recv(sqe, c->fd, c->buf, BUF_SIZE, 0);
	io_uring_sqe_set_data(sqe, tag(c, OP_RECV));
}

static void queue_send(struct conn *c)
{
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, tag(c, OP_SEND));
}

/* Nothing of c is in flight when this is called. */
static void drop(struct conn *c)
{
	close(c->fd);
	free(c);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: echo_uring_plain HOST:PORT\n");
		return 2;
	}
	nb_raise_nofile();
	int lfd = nb_listen("echo_uring_plain", argv[1], 0);
	if (lfd < 0)
		return 1;
	int rc = io_uring_queue_init(4096, &ring, 0);
	if (rc < 0) {
		fprintf(stderr, "echo_uring_plain: io_uring_queue_init: %s\n", strerror(-rc));
		return 1;
	}
	queue_accept(lfd);
	for (;;) {
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			fprintf(stderr, "echo_uring_plain: io_uring_submit_and_wait: %s\n",
				strerror(-rc));
			return 1;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
			struct conn *c = (struct conn *)(ud & ~(uintptr_t)3);
			int res = cqe->res;
			switch (ud & 3) {
			case OP_ACCEPT:
				if (res >= 0) {
					c = malloc(sizeof(*c));
					if (c) {
						c->fd = res;
						queue_recv(c);
					} else {
						close(res);
					}
				}
				queue_accept(lfd);
				break;
			case OP_RECV:
				if (res <= 0) {
					drop(c);
					break;
				}
				c->len = (unsigned)res;
				c->off = 0;
				queue_send(c);
				break;
			case OP_SEND:
				if (res < 0) {
					drop(c);
					break;
				}
				c->off += (unsigned)res;
				if (c->off < c->len)
					queue_send(c); /* short send: the rest */
				else
					queue_recv(c);
				break;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
}
