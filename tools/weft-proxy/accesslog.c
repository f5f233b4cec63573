// SPDX-License-Identifier: MIT
/*
 * accesslog.c - the access log's ring and its writer thread (accesslog.h).
 *
 * The ring: `nslots` fixed slots of ACCESSLOG_LINE_MAX bytes and two
 * counters that only grow, `head` (next slot to fill) and `tail` (next
 * slot to write); slot i is at i % nslots.
 *
 * Invariants, each holding whenever `lock` is free:
 *  1. tail <= head <= tail + nslots.
 *  2. Slots [tail, head) hold whole lines that are queued and not yet
 *     written; the writer reads them without the lock, and only the writer
 *     moves tail.
 *  3. Producers write only into slot head, under the lock, and only when
 *     head < tail + nslots; so a slot the writer is reading is never
 *     written (it stays in [tail, head) until the writer moves tail).
 *  4. `sleeping` is true only while the writer waits on `more` with an
 *     empty ring; a producer signals only then, so a busy log costs no
 *     wake-up system call per line.
 *  5. `fd` is read without the lock by the writer alone, and changed only
 *     by the writer, under the lock, between two writes: accesslog_set_fd
 *     leaves the new one in `next` for it, so a write never sees its fd
 *     closed under it.
 *
 * A worker thus holds the mutex for a copy of at most one line and never
 * waits on I/O; the writer holds it only to read or move the counters.
 * The mutex gives the ordering: the slot's bytes, copied before the
 * producer unlocks, are visible to the writer after it locks.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"

#define BATCH_IOV 64
#define BATCH_FILE (256u * 1024u)

struct slot {
	uint32_t len;
	char text[ACCESSLOG_LINE_MAX];
};

struct accesslog {
	pthread_mutex_t lock;
	pthread_cond_t more;
	pthread_cond_t finished; /* the writer is about to return: done */
	bool done;
	struct slot *slots;
	size_t nslots;
	uint64_t head, tail;    /* under lock (see the invariants) */
	bool sleeping, stopping;
	int fd;
	bool own_fd;
	size_t batch_max;       /* bytes per write(2) */
	struct {                /* under lock: the fd to go on with (invariant 5) */
		bool pending, own_fd, pipe_atomic;
		int fd;
	} next;
	pthread_t thread;
	/* Statistics: written by producers (queued, dropped) and the writer
	 * (written), read by /metrics; relaxed, as independent counters. */
	_Atomic uint64_t queued, written, dropped;
};

/* Writes all of iov[0, n) (total bytes), resuming short writes and
 * waiting out a non-blocking fd; false on any other error. */
static bool write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};
				poll(&p, 1, 100);
				continue;
			}
			return false;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return true;
}

static void *writer(void *arg)
{
	struct accesslog *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (l->head == l->tail && !l->stopping && !l->next.pending) {
			l->sleeping = true;
			pthread_cond_wait(&l->more, &l->lock);
			l->sleeping = false;
		}
		/* To fd -1 (the log turned off) only once what was queued
		 * before is written where it was headed. */
		if (l->next.pending && (l->next.fd >= 0 || l->head == l->tail)) {
			int old = l->own_fd ? l->fd : -1;
			l->fd = l->next.fd;
			l->own_fd = l->next.own_fd;
			l->batch_max = l->next.pipe_atomic ? PIPE_BUF : BATCH_FILE;
			l->next.pending = false;
			if (old >= 0) {
				pthread_mutex_unlock(&l->lock);
				close(old);
				pthread_mutex_lock(&l->lock);
			}
			continue;
		}
		uint64_t tail = l->tail, head = l->head;
		if (tail == head)
			break; /* stopping, and everything is written */
		pthread_mutex_unlock(&l->lock);
		/* Invariant 2: [tail, head) is ours to read without the lock. */
		struct iovec iov[BATCH_IOV];
		int n = 0;
		size_t bytes = 0;
		uint64_t i = tail;
		for (; i < head && n < BATCH_IOV; i++) {
			struct slot *s = &l->slots[i % l->nslots];
			if (n > 0 && bytes + s->len > l->batch_max)
				break;
			iov[n++] = (struct iovec){.iov_base = s->text, .iov_len = s->len};
			bytes += s->len;
		}
		uint64_t lines = i - tail;
		if (write_all(l->fd, iov, n))
			atomic_fetch_add_explicit(&l->written, lines, memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&l->dropped, lines, memory_order_relaxed);
		pthread_mutex_lock(&l->lock);
		l->tail = i; /* frees the slots for producers (invariant 3) */
	}
	l->done = true;
	pthread_cond_signal(&l->finished);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int accesslog_open(struct accesslog **out, int fd, size_t slots, bool pipe_atomic, bool own_fd)
{
	struct accesslog *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->nslots = slots ? slots : 4096;
	l->slots = malloc(l->nslots * sizeof(*l->slots));
	if (!l->slots) {
		free(l);
		return -ENOMEM;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->more, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->finished, &ca);
	pthread_condattr_destroy(&ca);
	l->fd = fd;
	l->own_fd = own_fd;
	l->batch_max = pipe_atomic ? PIPE_BUF : BATCH_FILE;
	/* The writer must not take the proxy's signals (SIGTERM is waited
	 * for by the runtime): the caller blocks them before starting us,
	 * and the new thread inherits that mask. */
	int rc = pthread_create(&l->thread, NULL, writer, l);
	if (rc) {
		pthread_cond_destroy(&l->finished);
		pthread_cond_destroy(&l->more);
		pthread_mutex_destroy(&l->lock);
		free(l->slots);
		free(l);
		return -rc;
	}
	*out = l;
	return 0;
}

void accesslog_set_fd(struct accesslog *l, int fd, bool pipe_atomic, bool own_fd)
{
	pthread_mutex_lock(&l->lock);
	if (l->next.pending && l->next.own_fd && l->next.fd != fd)
		close(l->next.fd); /* set twice before the writer looked */
	l->next.fd = fd;
	l->next.own_fd = own_fd;
	l->next.pipe_atomic = pipe_atomic;
	l->next.pending = true;
	pthread_cond_signal(&l->more);
	pthread_mutex_unlock(&l->lock);
}

bool accesslog_push(struct accesslog *l, const char *line, size_t len)
{
	size_t need = len + (len == 0 || line[len - 1] != '\n');
	if (need > ACCESSLOG_LINE_MAX) {
		atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
		return false;
	}
	pthread_mutex_lock(&l->lock);
	if (l->head - l->tail == l->nslots) {
		pthread_mutex_unlock(&l->lock);
		atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
		return false;
	}
	struct slot *s = &l->slots[l->head % l->nslots];
	memcpy(s->text, line, len);
	if (need > len)
		s->text[len] = '\n';
	s->len = (uint32_t)need;
	l->head++;
	bool wake = l->sleeping;
	pthread_mutex_unlock(&l->lock);
	if (wake)
		pthread_cond_signal(&l->more);
	atomic_fetch_add_explicit(&l->queued, 1, memory_order_relaxed);
	return true;
}

uint64_t accesslog_queued(const struct accesslog *l)
{
	return atomic_load_explicit(&l->queued, memory_order_relaxed);
}

uint64_t accesslog_written(const struct accesslog *l)
{
	return atomic_load_explicit(&l->written, memory_order_relaxed);
}

uint64_t accesslog_dropped(const struct accesslog *l)
{
	return atomic_load_explicit(&l->dropped, memory_order_relaxed);
}

void accesslog_close(struct accesslog *l)
{
	if (!l)
		return;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ACCESSLOG_CLOSE_WAIT_S;
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	pthread_cond_signal(&l->more);
	while (!l->done && pthread_cond_timedwait(&l->finished, &l->lock, &until) != ETIMEDOUT)
		;
	bool done = l->done;
	pthread_mutex_unlock(&l->lock);
	if (!done)
		return; /* a stuck fd (a pipe nobody reads): leave the writer be */
	pthread_join(l->thread, NULL);
	if (l->own_fd)
		close(l->fd);
	if (l->next.pending && l->next.own_fd)
		close(l->next.fd); /* set after the writer's last look */
	pthread_cond_destroy(&l->finished);
	pthread_cond_destroy(&l->more);
	pthread_mutex_destroy(&l->lock);
	free(l->slots);
	free(l);
}
