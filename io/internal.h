// SPDX-License-Identifier: MIT
/*
 * io/internal.h - the seam between the I/O path (io/io.c) and the worker
 * that owns the ring: completion tags, the per-worker cancel queue, and the
 * calls the scheduler makes at its submission points.
 */
#ifndef WEFT_IO_INTERNAL_H
#define WEFT_IO_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

struct weft_task;
struct weft__worker;

/* A CQE's user_data: its low 3 bits say what it belongs to; with
 * WEFT__TAG_MSG_FAILED and WEFT__TAG_IO the rest is a pointer. */
#define WEFT__TAG_WAKE 1ull       /* the worker's eventfd read (park.c) */
#define WEFT__TAG_MSG 2ull        /* another worker's MSG_RING wake-up */
#define WEFT__TAG_MSG_FAILED 3ull /* our MSG_RING to that worker failed */
#define WEFT__TAG_IO 4ull         /* a task's operation (io.c) */
#define WEFT__TAG_IGNORE 5ull     /* link timeouts, async cancels */
#define WEFT__TAG_MASK 7ull

/* Tasks whose I/O another thread asked the owner to cancel, linked through
 * t->cnext (t->next may be in use by a run queue meanwhile). */
struct weft__cancelq {
	uint32_t lock;
	_Atomic uint32_t n;
	struct weft_task *head, *tail;
};

void weft__cancelq_push(struct weft__cancelq *q, struct weft_task *t);
struct weft_task *weft__cancelq_pop(struct weft__cancelq *q);

/* Whether w's ring supports an io_uring opcode (probed at setup). */
#define weft__io_supported(w, opcode) \
	(((w)->io_ops[(opcode) / 64] >> ((opcode) % 64)) & 1)

/* The owner reaped the completion of a WEFT__TAG_IO operation. */
void weft__io_complete(struct weft__worker *w, uint64_t user_data, int res);
/* weft_cancel found t armed in an IO wait: have its ring cancel it. */
void weft__io_cancel_request(struct weft_task *t);
/* The owner issues the cancels queued for it. */
void weft__io_process_cancels(struct weft__worker *w);
/* A submission point: queued cancels, pending SQEs, and (while operations
 * are in flight) the completions the kernel holds for us. */
void weft__io_poll(struct weft__worker *w);

#endif
