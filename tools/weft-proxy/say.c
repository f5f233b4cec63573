// SPDX-License-Identifier: MIT
/*
 * say.c - the proxy's own messages (say.h): formatted here, queued on an
 * accesslog ring that writes to fd 2 with a thread of its own.
 *
 * `ring` is set once by say_start before any worker exists and cleared by
 * say_stop after the last has stopped, so the tasks that say something
 * see it set throughout; it is atomic only so that the threads that read
 * it (workers, the blocking pool) need no other ordering argument.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "say.h"

/* Few messages are said at a time (a health change per server, a reload):
 * 256 waiting lines hold a burst of them, in 256 KiB. */
#define SAY_SLOTS 256

_Static_assert(SAY_LINE_MAX <= ACCESSLOG_LINE_MAX, "a message fits a ring slot");

static _Atomic(struct accesslog *) ring;

/* "weft-proxy: " and the message into line (SAY_LINE_MAX), without the
 * newline, for which it leaves room: its length, or 0 when fmt fails. */
static size_t format(char *line, const char *fmt, va_list ap)
{
	static const char prefix[] = "weft-proxy: ";
	size_t len = sizeof(prefix) - 1;
	memcpy(line, prefix, len);
	int n = vsnprintf(line + len, SAY_LINE_MAX - len, fmt, ap);
	if (n < 0)
		return 0;
	/* Cut to leave room for the newline (vsnprintf left one for its
	 * NUL, which the line does not keep). */
	return len + ((size_t)n < SAY_LINE_MAX - len ? (size_t)n : SAY_LINE_MAX - len - 1);
}

/* say's and say_last's line: queued while the ring runs (unless last),
 * else written straight; the last words only if stderr takes them now (a
 * pipe or socket that polls writable takes a line this short without
 * blocking; a stuck one is given up on, as the ring would). */
static void emit(bool last, const char *fmt, va_list ap)
{
	char line[SAY_LINE_MAX];
	size_t len = format(line, fmt, ap);
	if (!len)
		return;
	struct accesslog *r = atomic_load_explicit(&ring, memory_order_acquire);
	if (r && !last) {
		accesslog_push(r, line, len);
		return;
	}
	line[len] = '\n';
	if (!last) {
		fwrite(line, 1, len + 1, stderr);
		return;
	}
	struct pollfd pf = {.fd = 2, .events = POLLOUT};
	if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT))
		return;
	fflush(stderr);
	(void)!write(2, line, len + 1);
}

void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(false, fmt, ap);
	va_end(ap);
}

void say_last(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(true, fmt, ap);
	va_end(ap);
}

int say_start(void)
{
	struct accesslog *r;
	int rc = accesslog_open(&r, 2, SAY_SLOTS, true, false);
	if (rc < 0)
		return rc;
	fflush(stderr); /* what was written straight goes first */
	atomic_store_explicit(&ring, r, memory_order_release);
	return 0;
}

void say_stop(void)
{
	accesslog_close(atomic_exchange_explicit(&ring, NULL, memory_order_acq_rel));
}

uint64_t say_written(void)
{
	struct accesslog *r = atomic_load_explicit(&ring, memory_order_acquire);
	return r ? accesslog_written(r) : 0;
}

uint64_t say_dropped(void)
{
	struct accesslog *r = atomic_load_explicit(&ring, memory_order_acquire);
	return r ? accesslog_dropped(r) : 0;
}
