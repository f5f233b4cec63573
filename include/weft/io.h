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
 * Every call returns -EOPNOTSUPP, doing nothing, when the kernel's io_uring
 * lacks the operation (probed once per ring).
 * In both cases the call returns only after the operation's own completion
 * has arrived, so buffers (often on the task's stack) are never written
 * after it returns; and an operation that completed first returns its
 * result, never -ECANCELED or -ETIMEDOUT: bytes received are never lost.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stddef.h>
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

/* read(2) / write(2) at the file's current position: bytes or -errno. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len);

/* readv(2) / writev(2), at the current position: bytes or -errno. */
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt);

/* pread(2) / pwrite(2) at offset: bytes or -errno. */
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

/* openat(2): the new descriptor (the caller owns it) or -errno. */
WEFT_API int weft_openat(int dirfd, const char *path, int flags, mode_t mode);

/* statx(2): 0 with *buf filled, or -errno. */
WEFT_API int weft_statx(int dirfd, const char *path, int flags, unsigned mask,
			struct statx *buf);

/* fsync(2) (datasync != 0: fdatasync(2)): 0 or -errno. */
WEFT_API int weft_fsync(int fd, int datasync);

/* splice(2) of up to len bytes; an offset of -1 means the descriptor's own
 * position (and is required for a pipe): bytes moved or -errno. */
WEFT_API ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
			     size_t len, unsigned flags);

/* Waits until fd is ready for the poll(2) events in mask: the events that
 * are, or -errno. */
WEFT_API int weft_poll(int fd, unsigned mask);

/* close(2): 0 or -errno.  Not cancellable and not bounded by the deadline:
 * a close that did not happen would leak the descriptor. */
WEFT_API int weft_close(int fd);

#ifdef __cplusplus
}
#endif

#endif
