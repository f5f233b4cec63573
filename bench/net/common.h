// SPDX-License-Identifier: MIT
/*
 * common.h - helpers shared by the network benchmark's C programs: the load
 * client (netload.c) and the echo peers (echo_uring_plain.c,
 * echo_uring_tuned.c, echo_epoll.c).
 *
 * Everything is static inline so that each program stays one translation unit
 * (netbench.py builds each with a single gcc call).  HOST:PORT parsing,
 * the listening socket, RLIMIT_NOFILE, ring setup with a fallback ladder of
 * setup flags, and a provided-buffer ring built by hand (liburing 2.3 has
 * no io_uring_setup_buf_ring: the ring is mmap()ed here and registered with
 * io_uring_register_buf_ring).
 */
#ifndef WEFT_BENCH_NET_COMMON_H
#define WEFT_BENCH_NET_COMMON_H

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

/* Splits HOST:PORT (or [HOST]:PORT) and resolves it: 0 with *ss and *len
 * filled, or -1 after printing why (prefixed with prog). */
static inline int nb_resolve(const char *prog, const char *spec, int passive,
		      struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "%s: %s: expected HOST:PORT\n", prog, spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	char *h = host;
	size_t hl = strlen(h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h[hl - 1] = 0;
		h++;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = passive ? AI_PASSIVE : 0};
	struct addrinfo *ai;
	int rc = getaddrinfo(h, colon + 1, &hints, &ai);
	if (rc) {
		fprintf(stderr, "%s: %s: %s\n", prog, spec, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* A listening TCP socket on spec (backlog 4096, SO_REUSEADDR), with the
 * extra socket(2) type flags in type_flags (e.g. SOCK_NONBLOCK): the fd,
 * which the caller owns, or -1 after printing why. */
static inline int nb_listen(const char *prog, const char *spec, int type_flags)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (nb_resolve(prog, spec, 1, &ss, &len) < 0)
		return -1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit.  No failure path that
 * matters: on error the limit simply stays where it was. */
static inline void nb_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Sets up ring with the cheapest completion model the kernel accepts, for
 * a ring used by one thread only: SINGLE_ISSUER|DEFER_TASKRUN (6.1+; task
 * work runs only when this thread waits), else COOP_TASKRUN (5.19+; no IPI
 * to run task work), else none.  cq_entries sizes the completion queue so
 * that many connections do not overflow it.  0 with *mode naming the flags
 * taken, or the -errno of the last attempt. */
static inline int nb_ring_init(struct io_uring *ring, unsigned entries, unsigned cq_entries,
			const char **mode)
{
	static const struct {
		unsigned flags;
		const char *name;
	} ladder[] = {
		{IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single_issuer+defer_taskrun"},
		{IORING_SETUP_COOP_TASKRUN, "coop_taskrun"},
		{0, "default"},
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof(ladder) / sizeof(ladder[0]); i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = ladder[i].flags | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
		rc = io_uring_queue_init_params(entries, ring, &p);
		if (rc == -EINVAL) {
			/* A kernel older than SUBMIT_ALL (5.18) rejects it too. */
			p.flags &= ~IORING_SETUP_SUBMIT_ALL;
			rc = io_uring_queue_init_params(entries, ring, &p);
		}
		if (rc == 0) {
			*mode = ladder[i].name;
			return 0;
		}
	}
	return rc;
}

/* An SQE, submitting what is queued first if the SQ ring is full: never
 * NULL unless the submission itself fails, which these programs treat as
 * fatal. */
static inline struct io_uring_sqe *nb_get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	while (!sqe) {
		int rc = io_uring_submit(ring);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			fprintf(stderr, "io_uring_submit: %s\n", strerror(-rc));
			exit(1);
		}
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

/* A provided-buffer ring: count buffers of size bytes each, group bgid.
 * Buffer ids index bufs.  Returned buffers are added at tail + pending and
 * published together by nb_bufring_publish, one release store per batch. */
struct nb_bufring {
	struct io_uring_buf_ring *br;
	unsigned char *bufs;
	unsigned count, size, mask, pending;
	int bgid;
};

/* 0 with b set up and every buffer handed to the kernel, or -errno (e.g.
 * -EINVAL from a kernel older than 5.19, which has no buffer rings).
 * count must be a power of two no larger than 32768. */
static inline int nb_bufring_init(struct io_uring *ring, struct nb_bufring *b, int bgid,
			   unsigned count, unsigned size)
{
	size_t ring_bytes = count * sizeof(struct io_uring_buf);
	/* The ring must be page aligned: mmap gives that. */
	void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	b->bufs = malloc((size_t)count * size);
	if (!b->bufs) {
		munmap(mem, ring_bytes);
		return -ENOMEM;
	}
	b->br = mem;
	b->count = count;
	b->size = size;
	b->mask = (unsigned)io_uring_buf_ring_mask(count);
	b->pending = 0;
	b->bgid = bgid;
	io_uring_buf_ring_init(b->br);
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)(uintptr_t)mem;
	reg.ring_entries = count;
	reg.bgid = (unsigned short)bgid;
	int rc = io_uring_register_buf_ring(ring, &reg, 0);
	if (rc < 0) {
		free(b->bufs);
		munmap(mem, ring_bytes);
		return rc;
	}
	for (unsigned i = 0; i < count; i++)
		io_uring_buf_ring_add(b->br, b->bufs + (size_t)i * size, size,
				      (unsigned short)i, (int)b->mask, (int)i);
	io_uring_buf_ring_advance(b->br, (int)count);
	return 0;
}

static inline unsigned char *nb_buf(struct nb_bufring *b, unsigned bid)
{
	return b->bufs + (size_t)bid * b->size;
}

/* Queues buffer bid for return to the kernel; visible after publish. */
static inline void nb_bufring_put(struct nb_bufring *b, unsigned bid)
{
	io_uring_buf_ring_add(b->br, nb_buf(b, bid), b->size, (unsigned short)bid,
			      (int)b->mask, (int)b->pending++);
}

/* Makes the buffers put since the last call visible to the kernel. */
static inline void nb_bufring_publish(struct nb_bufring *b)
{
	if (b->pending) {
		io_uring_buf_ring_advance(b->br, (int)b->pending);
		b->pending = 0;
	}
}

static inline unsigned nb_pow2(unsigned v)
{
	unsigned p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

#endif
