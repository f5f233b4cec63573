// SPDX-License-Identifier: MIT
/*
 * echo_uring_tuned - a raw io_uring echo server with the known tunings, the
 * bar weft's examples/echo is held to in the network benchmark
 * (netbench.py).
 *
 *   echo_uring_tuned HOST:PORT
 *
 * One thread; the ring set up SINGLE_ISSUER|DEFER_TASKRUN, else
 * COOP_TASKRUN, else plain (common.h).  One multishot accept; per
 * connection one multishot recv selecting from a provided-buffer ring, so
 * no buffer is tied up by an idle connection and no recv is re-submitted per
 * message.  A received buffer is sent as it is and goes back to the ring
 * when its send has completed.  Only one send per connection is in flight
 * (two could complete out of order if the first had to wait for socket
 * space); data received meanwhile waits in the connection's queue, and a
 * short send is resubmitted for the rest.  A multishot that ends (no
 * IORING_CQE_F_MORE: out of buffers with -ENOBUFS, or the kernel's choice)
 * is re-armed.  Every SQE and every returned buffer of a loop iteration goes
 * to the kernel in one io_uring_submit_and_wait.
 *
 * A connection is freed once neither its recv nor a send is in flight and
 * either an error ended it or the peer has shut down its side and every
 * byte received before that has been echoed.  SIGTERM's default action ends
 * the program (it holds nothing to flush).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define BGID 1
#define NBUFS 4096
#define BUF_SIZE 2048

/* A received buffer waiting to be (or being) sent. */
struct chunk {
	unsigned short bid;
	unsigned len, off;
};

struct conn {
	int fd;
	int eof;           /* the peer shut down its side: echo what is queued */
	int closing;       /* an error: drop the queue, stop once idle */
	int recv_armed;    /* a multishot recv is in flight */
	int sending;       /* q[qhead] is being sent */
	unsigned qhead, qlen, qcap;
	struct chunk *q;   /* ring of chunks in receive order */
};

enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2 };

static struct io_uring ring;
static struct nb_bufring bufs;
static int lfd;

static void *tag(struct conn *c, int op)
{
	return (void *)((uintptr_t)c | (uintptr_t)op);
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, tag(NULL, OP_ACCEPT));
}

static void arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data(sqe, tag(c, OP_RECV));
	c->recv_armed = 1;
}

/* Sends the rest of the chunk at the head of the queue. */
static void send_head(struct conn *c)
{
	struct chunk *k = &c->q[c->qhead];
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_send(sqe, c->fd, nb_buf(&bufs, k->bid) + k->off, k->len - k->off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, tag(c, OP_SEND));
	c->sending = 1;
}

/* Frees c once nothing of it is in flight and it has failed, or the peer
 * has shut down and every byte received has been echoed.  Buffers still
 * queued (after an error) go back to the ring. */
static void maybe_free(struct conn *c)
{
	if (c->recv_armed || c->sending || !(c->closing || (c->eof && !c->qlen)))
		return;
	for (unsigned i = 0; i < c->qlen; i++)
		nb_bufring_put(&bufs, c->q[(c->qhead + i) % c->qcap].bid);
	close(c->fd);
	free(c->q);
	free(c);
}

static void on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->recv_armed = 0;
	if (res > 0) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (c->closing || c->eof) {
			nb_bufring_put(&bufs, bid);
		} else {
			if (c->qlen == c->qcap) {
				unsigned ncap = c->qcap * 2;
				struct chunk *nq = malloc(ncap * sizeof(*nq));
				if (!nq) {
					fprintf(stderr, "echo_uring_tuned: out of memory\n");
					exit(1);
				}
				for (unsigned i = 0; i < c->qlen; i++)
					nq[i] = c->q[(c->qhead + i) % c->qcap];
				free(c->q);
				c->q = nq;
				c->qcap = ncap;
				c->qhead = 0;
			}
			c->q[(c->qhead + c->qlen++) % c->qcap] =
				(struct chunk){.bid = (unsigned short)bid, .len = (unsigned)res};
			if (!c->sending)
				send_head(c);
		}
	} else if (res == 0) {
		c->eof = 1;
	} else if (res != -ENOBUFS) {
		c->closing = 1;
	}
	if (!c->recv_armed && !c->closing && !c->eof)
		arm_recv(c); /* ended by -ENOBUFS or by the kernel */
	maybe_free(c);
}

static void on_send(struct conn *c, int res)
{
	c->sending = 0;
	if (res < 0) {
		c->closing = 1;
		/* Wake the recv so that the connection can be freed. */
		shutdown(c->fd, SHUT_RDWR);
	} else {
		struct chunk *k = &c->q[c->qhead];
		k->off += (unsigned)res;
		if (k->off == k->len) {
			nb_bufring_put(&bufs, k->bid);
			c->qhead = (c->qhead + 1) % c->qcap;
			c->qlen--;
		}
		if (c->qlen && !c->closing)
			send_head(c);
	}
	maybe_free(c);
}

static void on_accept(struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept();
	if (cqe->res < 0)
		return;
	struct conn *c = calloc(1, sizeof(*c));
	struct chunk *q = malloc(4 * sizeof(*q));
	if (!c || !q) {
		free(c);
		free(q);
		close(cqe->res);
		return;
	}
	c->fd = cqe->res;
	c->q = q;
	c->qcap = 4;
	arm_recv(c);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: echo_uring_tuned HOST:PORT\n");
		return 2;
	}
	nb_raise_nofile();
	lfd = nb_listen("echo_uring_tuned", argv[1], 0);
	if (lfd < 0)
		return 1;
	const char *mode = "";
	int rc = nb_ring_init(&ring, 4096, 65536, &mode);
	if (rc < 0) {
		fprintf(stderr, "echo_uring_tuned: io_uring setup: %s\n", strerror(-rc));
		return 1;
	}
	rc = nb_bufring_init(&ring, &bufs, BGID, NBUFS, BUF_SIZE);
	if (rc < 0) {
		fprintf(stderr, "echo_uring_tuned: provided-buffer ring: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "echo_uring_tuned: ring %s\n", mode);
	arm_accept();
	for (;;) {
		nb_bufring_publish(&bufs);
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			fprintf(stderr, "echo_uring_tuned: io_uring_submit_and_wait: %s\n",
				strerror(-rc));
			return 1;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
			struct conn *c = (struct conn *)(ud & ~(uintptr_t)3);
			switch (ud & 3) {
			case OP_ACCEPT: on_accept(cqe); break;
			case OP_RECV: on_recv(c, cqe); break;
			case OP_SEND: on_send(c, cqe->res); break;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
}
