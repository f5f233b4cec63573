// SPDX-License-Identifier: MIT
/*
 * say.h - the proxy's own messages on stderr ("weft-proxy: ..."): health
 * changes, reloads, upgrades, errors.
 *
 * Most of them are said by tasks, on a worker.  A plain fprintf(stderr)
 * there would make the worker, and every connection on it, wait whenever
 * stderr does: a pipe to a logger that has stalled, a terminal paused with
 * ^S.  So once say_start has run, a message is queued on a line ring
 * drained by a thread of its own (accesslog.c's), and dropped and counted
 * when the ring is full, never waited for.  Before say_start and after
 * say_stop (the command line, the configuration check, the last words) a
 * message is written straight to stderr: no worker runs then.
 */
#ifndef WEFT_PROXY_SAY_H
#define WEFT_PROXY_SAY_H

#include <stdint.h>

/* Messages longer than this, "weft-proxy: " and the newline included, are
 * cut to it. */
#define SAY_LINE_MAX 1024u

/* Says "weft-proxy: " and the message, with a newline added: queued when
 * the ring is started, written at once otherwise.  Any thread; never waits
 * on stderr once started. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* After say_stop: the proxy's last words, written straight only if stderr
 * can take them at once, so that a stderr that stopped draining cannot
 * hold the exit (nor could a ring already full of lines drop them). */
void say_last(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Starts the ring and its writer thread on fd 2: 0, or a negative errno
 * (messages are then written straight, as before).  Call it with the
 * signals the runtime waits for blocked: the writer inherits the mask. */
int say_start(void);

/* Writes what is queued (waiting at most ACCESSLOG_CLOSE_WAIT_S for a
 * stuck stderr) and stops the writer; say writes straight again after.
 * No say may run or start meanwhile. */
void say_stop(void);

/* Messages queued on the ring and dropped so far (0 before say_start):
 * racy snapshots.  Any thread. */
uint64_t say_written(void);
uint64_t say_dropped(void);

#endif
