// SPDX-License-Identifier: MIT
/*
 * bufs.c - each worker's provided-buffer ring, shared by watched
 * connections (watch.c) and streams (stream.c).
 *
 * The kernel picks a buffer from the ring when bytes arrive for a receive
 * armed with IOSQE_BUFFER_SELECT, so a connection that waits holds no
 * buffer.  The ring (struct weft__bufs) is made on the worker's first
 * weft_watch or weft_stream_open, mapped and registered by hand: liburing
 * 2.3 has no io_uring_setup_buf_ring.  Only the owner writes to it.  A
 * buffer freed on another worker (its task was stolen) is handed back
 * through a locked list that the owner drains at its submission points
 * (weft__bufs_poll), and the owner is woken for it when a receive waits
 * for a buffer (nstarved, weft__bufs_starve).
 *
 * Invariant: a buffer id is in the ring, or held by exactly one user (a
 * watch's task, or a stream's queue), or on the owner's return list; each
 * id returns once.  `held` counts the ids out of the ring, so the ring has
 * a buffer exactly when held < WEFT__BUFS_N.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "io/internal.h"
#include "scheduler/internal.h"
#include "weft.h"

int weft__bufs_init(struct weft__worker *w)
{
	struct weft__bufs *b = &w->bufs;
	if (b->ring)
		return 0;
	if (!weft__io_supported(w, IORING_OP_RECV))
		return -EOPNOTSUPP;
	if (b->setup_rc)
		return b->setup_rc;
	size_t ring_bytes = WEFT__BUFS_N * sizeof(struct io_uring_buf);
	void *ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	void *mem = mmap(NULL, (size_t)WEFT__BUFS_N * WEFT__BUFS_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint16_t *ret = malloc(WEFT__BUFS_N * sizeof(*ret));
	struct weft__bufmeta *meta = malloc(WEFT__BUFS_N * sizeof(*meta));
	int rc = 0;
	if (ring == MAP_FAILED || mem == MAP_FAILED || !ret || !meta) {
		rc = -ENOMEM;
	} else {
		struct io_uring_buf_reg reg = {
			.ring_addr = (uint64_t)(uintptr_t)ring,
			.ring_entries = WEFT__BUFS_N,
			.bgid = WEFT__BUFS_GROUP,
		};
		rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
	}
	if (rc < 0) {
		if (ring != MAP_FAILED)
			munmap(ring, ring_bytes);
		if (mem != MAP_FAILED)
			munmap(mem, (size_t)WEFT__BUFS_N * WEFT__BUFS_SIZE);
		free(ret);
		free(meta);
		/* -EINVAL: a kernel before 5.19, remembered and not retried.
		 * Anything else (-ENOMEM) may pass: the next call tries again. */
		if (rc == -EINVAL)
			rc = b->setup_rc = -EOPNOTSUPP;
		return rc;
	}
	b->ring = ring;
	b->mem = mem;
	b->ret = ret;
	b->meta = meta;
	weft_sem_init(&b->poke, 0);
	io_uring_buf_ring_init(b->ring);
	for (unsigned i = 0; i < WEFT__BUFS_N; i++)
		io_uring_buf_ring_add(b->ring, b->mem + (size_t)i * WEFT__BUFS_SIZE,
				      WEFT__BUFS_SIZE, (uint16_t)i,
				      io_uring_buf_ring_mask(WEFT__BUFS_N), (int)i);
	io_uring_buf_ring_advance(b->ring, WEFT__BUFS_N);
	return 0;
}

void weft__buf_put(struct weft__bufs *b, unsigned bid)
{
	io_uring_buf_ring_add(b->ring, weft__buf(b, bid), WEFT__BUFS_SIZE, (uint16_t)bid,
			      io_uring_buf_ring_mask(WEFT__BUFS_N), 0);
	io_uring_buf_ring_advance(b->ring, 1);
	b->held--;
}

void weft__buf_give(struct weft__worker *owner, struct weft__worker *here, unsigned bid)
{
	if (here == owner) {
		weft__buf_put(&owner->bufs, bid);
		return;
	}
	/* Not our ring: the owner puts it back. */
	struct weft__bufs *b = &owner->bufs;
	weft__spin_lock(&b->lock);
	b->ret[b->nret++] = (uint16_t)bid;
	/* Seq_cst, this store and the load of nstarved: the owner counts a
	 * starved receive, then looks at has_ret (weft__bufs_starve).  Store
	 * then load on both sides: seq_cst forbids that each load misses the
	 * other's store, so either the owner takes this buffer in or we wake
	 * it.  With release/acquire both could miss, and the receive would
	 * wait for a buffer already returned while its owner sleeps. */
	atomic_store_explicit(&b->has_ret, true, memory_order_seq_cst);
	weft__spin_unlock(&b->lock);
	if (atomic_load_explicit(&b->nstarved, memory_order_seq_cst))
		weft__unpark(owner); /* a receive waits for it */
}

bool weft__bufs_starve(struct weft__worker *w)
{
	struct weft__bufs *b = &w->bufs;
	/* Seq_cst: see weft__buf_give; the load of has_ret in
	 * weft__bufs_poll is the other half. */
	atomic_fetch_add_explicit(&b->nstarved, 1, memory_order_seq_cst);
	weft__bufs_poll(w);
	if (b->held >= WEFT__BUFS_N)
		return true;
	/* Relaxed: a giver that still sees the count only wakes us once more. */
	atomic_fetch_sub_explicit(&b->nstarved, 1, memory_order_relaxed);
	return false;
}

void weft__bufs_poll(struct weft__worker *w)
{
	struct weft__bufs *b = &w->bufs;
	/* Seq_cst: pairs with the store in weft__buf_give (see there). */
	if (!atomic_load_explicit(&b->has_ret, memory_order_seq_cst))
		return;
	weft__spin_lock(&b->lock);
	for (unsigned i = 0; i < b->nret; i++)
		weft__buf_put(b, b->ret[i]);
	b->nret = 0;
	atomic_store_explicit(&b->has_ret, false, memory_order_relaxed);
	weft__spin_unlock(&b->lock);
}

void weft__bufs_fini(struct weft__worker *w)
{
	struct weft__bufs *b = &w->bufs;
	if (!b->ring)
		return;
	munmap(b->ring, WEFT__BUFS_N * sizeof(struct io_uring_buf));
	munmap(b->mem, (size_t)WEFT__BUFS_N * WEFT__BUFS_SIZE);
	free(b->ret);
	free(b->meta);
	b->ring = NULL;
}
