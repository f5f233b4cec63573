// SPDX-License-Identifier: MIT
/*
 * accesslog.h - the access log: one line per connection, written by a
 * thread of its own so that no worker ever waits for the log's fd.
 *
 * Workers push formatted lines into a bounded ring (accesslog_push, which
 * copies and returns at once); a plain pthread drains the ring to the fd.
 * When the ring is full the line is dropped and counted, never waited
 * for.  accesslog.c describes the ring and its lock; docs/proxy.md the
 * line format (main.c writes the lines).  The proxy's own messages use a
 * second ring of their own (say.c).
 */
#ifndef WEFT_PROXY_ACCESSLOG_H
#define WEFT_PROXY_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest line kept, its newline included; longer ones are dropped. */
#define ACCESSLOG_LINE_MAX 1024u

struct accesslog;

/*
 * Starts a log writing to fd, with room for slots lines waiting (0: 4096).
 * With pipe_atomic, each write(2) holds at most PIPE_BUF bytes of whole
 * lines, so lines written to a pipe shared with other writers (stderr)
 * never interleave with theirs.  With own_fd the log closes fd at the end.
 * Returns 0 with *out set, or -ENOMEM, or the error of pthread_create
 * (negated); fd then stays the caller's.  Any thread.
 */
int accesslog_open(struct accesslog **out, int fd, size_t slots, bool pipe_atomic, bool own_fd);

/*
 * Makes the writer go on with fd (pipe_atomic and own_fd as for
 * accesslog_open) from its next write: lines queued and not yet written go
 * there too.  The old fd is closed, when owned, by the writer once it no
 * longer writes to it.  For a reload: a new path, or the same one opened
 * again after the file was rotated away.  fd -1 is for a log turned off:
 * the lines queued before still go to the old fd, and any pushed after
 * are dropped and counted.  Any thread but the writer's;
 * never blocks on I/O; no failure path.
 */
void accesslog_set_fd(struct accesslog *l, int fd, bool pipe_atomic, bool own_fd);

/*
 * Queues line[0, len) (a newline is added when it lacks one) and returns
 * at once: true when queued, false when dropped (the ring was full, or the
 * line too long), which is counted.  Any thread; takes a mutex held only
 * for bookkeeping and one copy, never across I/O.
 */
bool accesslog_push(struct accesslog *l, const char *line, size_t len);

/* Lines queued, written and dropped so far: racy snapshots.  Any thread. */
uint64_t accesslog_queued(const struct accesslog *l);
uint64_t accesslog_written(const struct accesslog *l);
uint64_t accesslog_dropped(const struct accesslog *l);

/* How long accesslog_close waits for the queued lines to be written. */
#define ACCESSLOG_CLOSE_WAIT_S 2

/* Writes what is queued, stops the thread, closes fd if owned, frees l.
 * When the fd does not take the lines within ACCESSLOG_CLOSE_WAIT_S (a
 * pipe nobody reads), returns without them: the writer thread and l are
 * left behind for the exiting process to drop.  No push may run or start.
 * NULL is fine.  Any thread but the writer's. */
void accesslog_close(struct accesslog *l);

#endif
