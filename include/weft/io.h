// SPDX-License-Identifier: MIT
/*
 * weft/io.h - I/O operations that suspend the calling task, not its thread.
 *
 * Each call prepares one io_uring operation on the ring of the worker the
 * task runs on, parks the task, and returns the operation's result once its
 * completion has arrived: a count or 0 on success, a negative errno on
 * failure.  errno is never set.  All are task only and suspension points:
 *  - the task's deadline (weft_scope_deadline) bounds the operation: when it
 *    passes first, the operation is cancelled and the call returns
 *    -ETIMEDOUT;
 *  - weft_cancel cancels the operation on its ring (from any thread) and the
 *    call returns -ECANCELED.
 * In both cases the call returns only after the operation's own completion
 * has arrived, so buffers (often on the task's stack) are never written
 * after it returns; and an operation that completed first returns its
 * result, never -ECANCELED or -ETIMEDOUT: bytes received are never lost.
 * An operation interrupted inside the kernel with neither behind it (one
 * that io_uring runs blocking on a thread of its own, as a splice) returns
 * -EINTR, never one of the kernel's internal restart codes.
 * Every call returns -EOPNOTSUPP, doing nothing, when the kernel's io_uring
 * lacks the operation (probed once per ring).
 * One call moves at most 0x7ffff000 bytes, as read(2) and write(2) do: a
 * longer length gives a short count.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef WEFT_API
#define WEFT_API __attribute__((visibility("default")))
#endif

/* glibc declares struct statx only under _GNU_SOURCE; the header must not
 * depend on the includer's feature macros. */
struct statx;

/* read(2) / write(2) at the file's current position: bytes or -errno.  On
 * a socket whose peer is gone a write fails with -EPIPE and, as write(2),
 * raises SIGPIPE: workers block it, so it kills nothing, but it stays
 * pending on the worker.  weft_send never raises it: prefer it on
 * sockets. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len);

/* readv(2) / writev(2), at the current position: bytes or -errno. */
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt);

/* pread(2) / pwrite(2) at offset: bytes or -errno (-EINVAL for a negative
 * offset, as pread(2)).  Unlike pread(2), on a descriptor that cannot seek
 * io_uring ignores the offset (a pipe: any; a socket: 0) and reads or
 * writes at the stream, rather than failing with -ESPIPE. */
WEFT_API ssize_t weft_pread(int fd, void *buf, size_t len, off_t offset);
WEFT_API ssize_t weft_pwrite(int fd, const void *buf, size_t len, off_t offset);

/* recv(2) / send(2): bytes (0 from recv: the peer shut down) or -errno,
 * e.g. -ECONNRESET, -EPIPE. */
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags);

/* recvmsg(2) / sendmsg(2): bytes or -errno. */
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags);
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags);

/* shutdown(2): 0 or -errno. */
WEFT_API int weft_shutdown(int fd, int how);

/* accept4(2): the new socket (the caller owns it) or -errno, e.g. -EMFILE.
 * addr and addrlen may be NULL. */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/* connect(2): 0 or -errno, e.g. -ECONNREFUSED. */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/* openat(2): the new descriptor (the caller owns it) or -errno.  One
 * difference: a FIFO does not wait for its other end, as io_uring opens it
 * non-blocking first (then clears O_NONBLOCK): for reading it opens at
 * once, for writing with no reader it fails with -ENXIO.  Where open(2)'s
 * wait is wanted, call open(2) through weft_spawn_blocking. */
WEFT_API int weft_openat(int dirfd, const char *path, int flags, mode_t mode);

/* statx(2): 0 with *buf filled, or -errno. */
WEFT_API int weft_statx(int dirfd, const char *path, int flags, unsigned mask,
			struct statx *buf);

/* fsync(2) (datasync != 0: fdatasync(2)): 0 or -errno. */
WEFT_API int weft_fsync(int fd, int datasync);

/* splice(2) of up to len bytes; an offset of -1 means the descriptor's own
 * position (and is required for a pipe): bytes moved or -errno.  The
 * kernel runs it on a thread of its own, blocking (on an empty pipe, a
 * full socket); a deadline or a cancellation interrupts it there all the
 * same. */
WEFT_API ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
			     size_t len, unsigned flags);

/* Waits until fd is ready for the poll(2) events in mask: the events that
 * are, or -errno. */
WEFT_API int weft_poll(int fd, unsigned mask);

/* close(2): 0 or -errno.  Not cancellable and not bounded by the deadline:
 * a close that did not happen would leak the descriptor. */
WEFT_API int weft_close(int fd);

/* ---- Listeners -------------------------------------------------------------- */

/*
 * A listener accepts on a listening socket with one multishot accept on the
 * ring of the worker that opened it, and queues the connections (up to 128;
 * past that the kernel's backlog holds them) for any task to take.  When
 * the process runs out of descriptors (EMFILE, ENFILE) or memory it stops
 * accepting and retries after 1 ms, doubling up to 1 s, so a full fd table
 * neither spins a core nor loses the listener (one whose retry timer
 * cannot be stored stops, with -ENOMEM).  An error of one connection
 * (ECONNABORTED, EPERM, ...) re-arms at once after a connection that went
 * through, and otherwise backs off the same way: every accept refused (by
 * a security module, say) costs no core either.  Needs Linux 5.19.
 */
struct weft_listener;

/* Starts accepting on fd, which stays the caller's (close it after
 * weft_listener_close).  Task only; does not suspend.  Returns 0 with *l
 * set, -EINVAL (fd < 0), -ENOMEM (no memory for the listener, or no task or
 * stack for its acceptor), or -EOPNOTSUPP (no accept in this io_uring). */
WEFT_API int weft_listener_open(int fd, struct weft_listener **l);
/* Takes the next connection: a descriptor (SOCK_CLOEXEC), or -ECANCELED /
 * -ETIMEDOUT, -ENOMEM (no timer for the deadline), or once the listener
 * has stopped -EBADF (closed) or the error that stopped it (e.g. -EINVAL:
 * fd is not listening).  Task only; suspension point. */
WEFT_API int weft_listener_accept(struct weft_listener *l);
/* Stops accepting and waits until the multishot operation has ended; tasks
 * in weft_listener_accept, and any that call it later, get -EBADF (or the
 * error that had stopped the listener already), and connections nobody
 * took are closed.  l stays valid until
 * weft_listener_free, so a server can close its listener and then join
 * the tasks that accept in a loop: each sees -EBADF at its next accept.
 * Returns 0, or the error that had stopped the listener before; a second
 * call returns the first one's result.  Task only; not cancellable; not
 * concurrently with itself. */
WEFT_API int weft_listener_close(struct weft_listener *l);
/* Releases l, closing it first if weft_listener_close has not run.  No
 * task may call weft_listener_accept on l once free has begun; those still
 * inside it leave with -EBADF, and the last one out frees the memory.
 * Task only; not cancellable. */
WEFT_API void weft_listener_free(struct weft_listener *l);

/* ---- Streams ------------------------------------------------------------------ */

/*
 * A stream owns the receive side of a connected stream socket: one
 * multishot receive stays armed on the ring of the worker that opened it,
 * and bytes land, as they arrive, in buffers of that worker's shared ring
 * (4 KiB each, 256 per worker, shared with weft_watch), queued in order on
 * the stream until read.  A read of queued bytes makes no system call; a
 * reader that waits is handed the bytes by their completion.  Any task on
 * any worker may read, one at a time.  Sending stays weft_send on the fd;
 * never receive on the fd by other means while the stream is open (the
 * bytes would go to either).  At most 8 buffers (32 KiB) queue on one
 * stream: past that it stops receiving, and the socket's own buffer (then
 * TCP's window) holds the rest until the queue is read.  Queued bytes hold
 * buffers of the shared ring, so keep reading.  Between bursts a stream
 * can wait without a task (weft_stream_watch).  Close every stream that is
 * not watched before the runtime shuts down (one left open is leaked).
 * On a unix socket the receive is re-armed per arrival instead of
 * multishot: some kernels (6.18 among them) lose a multishot receive's end
 * of stream there.  Needs Linux 6.0.
 */
struct weft_stream;

/* Starts receiving on fd, which stays the caller's: close it after
 * weft_stream_close.  Task only; does not suspend.  Returns 0 with *s set,
 * -EINVAL (fd < 0), -ENOMEM, -EOPNOTSUPP (no receive in this io_uring, or
 * no provided-buffer rings: a kernel before 5.19), or another -errno of
 * registering the worker's buffer ring.  Only -EOPNOTSUPP is final for the
 * worker; after any other error the next call tries again. */
WEFT_API int weft_stream_open(int fd, struct weft_stream **s);
/* Reads up to len bytes into buf: returns the count; 0 once the peer has
 * ended the stream and every byte before the end has been read (and for
 * len 0); or -errno: the receive's error once the bytes before it are read
 * (-ECONNRESET, ...; every later call returns it again; -EINVAL from a
 * kernel before 6.0), -ECANCELED or -ETIMEDOUT while waiting (bytes that
 * arrive meanwhile stay queued for the next call), -EBUSY (another task is
 * reading s, or s is watched), -ENOMEM (no timer for the deadline).  Bytes already queued
 * are returned without suspending, cancelled or not.  Task only;
 * suspension point when nothing is queued. */
WEFT_API ssize_t weft_stream_recv(struct weft_stream *s, void *buf, size_t len);
/* Stops receiving, waits until the receive has ended in the kernel, drops
 * the bytes still queued (their buffers go back to the ring) and frees s;
 * the fd stays open and the caller's.  Returns 0, or -EBUSY, doing nothing,
 * while a task is in weft_stream_recv on s (cancel it first) or s is
 * watched.  Task only; not cancellable. */
WEFT_API int weft_stream_close(struct weft_stream *s);

/*
 * A watched stream's function (weft_stream_watch), run in a new task: s and
 * its fd are the function's again, and status is 0 when weft_stream_recv
 * has something to return without suspending (bytes, the end of the
 * stream, or its error), or -ETIMEDOUT when the idle timeout passed with
 * nothing queued.  The function serves the connection, then hands s back
 * to waiting with weft_stream_watch, or closes it (weft_stream_close, then
 * the fd).
 */
typedef void (*weft_stream_fn)(struct weft_stream *s, int fd, int status, void *arg);

/*
 * Hands s to the runtime until bytes are queued on it, the stream ends, or
 * timeout_ns (relative; WEFT_NEVER for none) passes with nothing queued,
 * then runs fn(s, fd, status, arg) in a new detached task; at once if
 * something is queued already.  The timeout is checked as weft_watch's is.
 * Meanwhile the connection holds no task, no stack and no buffer, as with
 * weft_watch, and its receive stays armed: a burst costs the kernel no
 * receive submission and no poll arm, which weft_watch pays each time.
 * The receive stays on the worker that opened s, wherever fn runs: open
 * streams on the workers that should share the receiving.  Until fn runs,
 * s is the runtime's: no call may use it.  If the runtime shuts down
 * first, the fd is closed, s is freed and fn never runs; so are they if a
 * task the watch needs later (for fn, or for the timeout's sweeper on
 * another worker), or a stack for it, cannot be had (out of memory).  Task
 * only, on any worker; does not suspend.  Returns 0, -EINVAL (fn NULL),
 * -EBUSY (s is watched already, or a task is in weft_stream_recv on it),
 * or -ENOMEM (no task or stack could be had now: for fn, something being
 * queued already, or for the timeout's sweeper).
 */
WEFT_API int weft_stream_watch(struct weft_stream *s, uint64_t timeout_ns, weft_stream_fn fn,
			       void *arg);

/* ---- Signals ------------------------------------------------------------------ */

/*
 * Waits until one of the signals in set is pending and takes it: returns
 * its number, or -ECANCELED / -ETIMEDOUT, or -errno from signalfd(2) (-EIO
 * for a short read of it, which signalfd does not do).  The
 * signals must be blocked in every thread that is not a weft worker
 * (workers block them all), e.g. with pthread_sigmask in main before the
 * runtime starts; otherwise they are delivered as usual and never seen
 * here.  Task only; suspension point.
 */
WEFT_API int weft_signal_wait(const sigset_t *set);

/* ---- Connections that wait without a task ---------------------------------- */

/*
 * What a watch runs, in a new task, once its connection has something to
 * say: n > 0 bytes at data (valid until the function returns), 0 for the
 * peer's end of stream, or a negative errno (-ETIMEDOUT when the watch's
 * timeout passed first, -ECONNRESET, ...).  The function owns fd again: it
 * serves the connection, then either closes it or hands it back to waiting
 * with weft_watch.
 */
typedef void (*weft_watch_fn)(int fd, const void *data, ssize_t n, void *arg);

/*
 * Hands fd, a connected stream socket, to the runtime until bytes arrive or
 * timeout_ns (relative; WEFT_NEVER for none) passes, then runs fn(fd, ...,
 * arg) in a new detached task.  The timeout is an idle timeout, checked
 * every quarter of itself, but at least every 1 s and at most every 10 ms:
 * it fires no sooner than timeout_ns and at most that interval later.  Meanwhile the connection holds no task, no
 * stack and no buffer: the bytes land in a buffer of the worker's shared
 * ring (4 KiB each) only when they come.  If the runtime shuts down first,
 * fd is closed and fn never runs; so is it if no task, or no stack for
 * it, can be had when the bytes come (out of memory).  Task only; does not
 * suspend.  Returns 0, -EINVAL (fd < 0 or fn NULL), -ENOMEM (no memory for
 * the watch, or no task or stack for the timeout's sweeper), -EOPNOTSUPP
 * (no receive in this io_uring, or a kernel without provided-buffer rings,
 * before 5.19), or another -errno of registering the worker's buffer ring
 * (as weft_stream_open).
 */
WEFT_API int weft_watch(int fd, uint64_t timeout_ns, weft_watch_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
