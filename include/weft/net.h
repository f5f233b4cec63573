// SPDX-License-Identifier: MIT
/*
 * weft/net.h - network addresses, stream sockets (TCP and unix), UDP, and a
 * buffered reader, on top of the operations of <weft/io.h>.
 *
 * Every call that waits is an I/O call of <weft/io.h> underneath, so it is
 * task only and a suspension point: the task's deadline (weft_scope_deadline)
 * bounds it with -ETIMEDOUT, weft_cancel ends it with -ECANCELED, and bytes
 * that arrived are never lost to either.  Calls that never wait (parsing,
 * socket set-up) may run on any thread.  Every int/ssize_t return is >= 0 or
 * a negative errno; errno is never set.  Descriptors returned are the
 * caller's to close, and all are close-on-exec.
 *
 * Address strings, as weft_addr_parse reads and weft_addr_format writes them:
 *   1.2.3.4:80             IPv4, dotted decimal, a port 0..65535
 *   [::1]:80               IPv6, always in brackets
 *   [fe80::1%eth0]:80      IPv6 with a scope: an interface name or number
 *   unix:/run/app.sock     a unix socket path (relative paths too)
 *   unix:@name             a Linux abstract unix socket name
 * and, for weft_addr_resolve and weft_sock_dial only, host:port with a host
 * name looked up through getaddrinfo(3) on the blocking pool
 * (weft_spawn_blocking).  Ports are decimal numbers, never service names.
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef WEFT_API
#define WEFT_API __attribute__((visibility("default")))
#endif

/* ---- Addresses ---------------------------------------------------------------
 * A plain struct: pass &a.sa and a.len to any socket call.  len 0 means no
 * address.  Copy it freely. */
struct weft_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
		struct sockaddr_storage ss;
	};
	socklen_t len;
};

/* Room for any address weft_addr_format writes, its NUL included. */
#define WEFT_ADDR_STRLEN 128

/*
 * Parses a numeric address (the forms above; no host names) into *a.
 * Returns 0, or -EINVAL for anything else: a missing or empty host, a
 * missing, empty, signed or non-decimal port, a port above 65535, an IPv6
 * address without brackets or with unbalanced ones, an unknown scope
 * interface, an empty or too long unix path (at most 107 bytes), trailing
 * characters.  On error *a is left unchanged.  Any thread.
 */
WEFT_API int weft_addr_parse(struct weft_addr *a, const char *s);

/*
 * Writes a as weft_addr_parse reads it, NUL-terminated, into buf of size
 * bytes.  An IPv6 scope is written as its interface name when the interface
 * exists, else as its number.  An unnamed unix socket (a client that never
 * bound) is written "unix:", which weft_addr_parse refuses.  Returns the
 * length written (without the NUL), -ENOSPC when buf is too small (buf then
 * holds "" if size > 0), or -EAFNOSUPPORT for a family other than IPv4,
 * IPv6 and unix, or a length that does not fit the family.  Any thread.
 */
WEFT_API int weft_addr_format(const struct weft_addr *a, char *buf, size_t size);

/* The port of an IPv4 or IPv6 address, or -EAFNOSUPPORT.  Any thread. */
WEFT_API int weft_addr_port(const struct weft_addr *a);

/*
 * Resolves s into up to max addresses (at most 64 are kept) at out, in the
 * order getaddrinfo(3) prefers, and returns how many: >= 1.  A numeric
 * address (weft_addr_parse's forms) is parsed on the spot; "host:port" runs
 * getaddrinfo on the blocking pool.  If the caller is cancelled or its
 * deadline passes while the lookup runs, the call returns at once and the
 * lookup finishes unseen.  Errors: -EINVAL (malformed, or max is 0),
 * -ENOENT (no such host, or no address for it), -EAGAIN (temporary
 * resolver failure, or no pool thread could start), -ENOMEM, -EIO (resolver
 * failure), the -errno of a system error in the resolver (getaddrinfo's
 * EAI_SYSTEM, e.g. -EMFILE), -ECANCELED, -ETIMEDOUT.  Task only; a
 * suspension point when it looks a name up.
 */
WEFT_API int weft_addr_resolve(const char *s, struct weft_addr *out, size_t max);

/* getsockname(2) / getpeername(2) of fd into *a: 0 or -errno (-EBADF,
 * -ENOTSOCK, -ENOTCONN).  Any thread. */
WEFT_API int weft_sock_local_addr(int fd, struct weft_addr *a);
WEFT_API int weft_sock_peer_addr(int fd, struct weft_addr *a);

/* ---- Stream sockets: TCP and unix ----------------------------------------- */

enum {
	/* SO_REUSEPORT: several sockets listen on one port, the kernel
	 * spreading connections over them.  IPv4 and IPv6 only. */
	WEFT_LISTEN_REUSEPORT = 1u << 0,
	/* An IPv6 listener also takes IPv4 connections (IPV6_V6ONLY off);
	 * then 0.0.0.0:P and [::]:P cannot both be bound. */
	WEFT_LISTEN_DUAL_STACK = 1u << 1,
};

struct weft_listen_opts {
	int backlog;    /* listen(2)'s backlog; 0: SOMAXCONN */
	unsigned flags; /* WEFT_LISTEN_* */
};

/*
 * Opens a listening stream socket on a: TCP for IPv4 and IPv6 (with
 * SO_REUSEADDR, so a restarted server binds at once, and IPV6_V6ONLY on IPv6
 * unless WEFT_LISTEN_DUAL_STACK, so 0.0.0.0:P and [::]:P coexist), or a
 * unix stream socket.  opts may be NULL.  Returns the descriptor,
 * nonblocking and close-on-exec; use weft_sock_accept, weft_accept or a
 * weft_listener on it.  Port 0 picks a free port (weft_sock_local_addr
 * tells which).
 *
 * A unix path that exists already is handled so that a server restarts
 * after a crash without stealing a live one's socket: a socket file nobody
 * listens on (connect(2) is refused) is removed and bound anew; a socket
 * somebody listens on, or any other file, gives -EADDRINUSE and is left
 * alone.  The probe is a real connection: the live server accepts it and
 * sees it end at once.  The path is not removed when the descriptor is closed; unlink it
 * on the way out.  Abstract names (unix:@name) have no file.
 *
 * Errors: -EINVAL (a.len is 0), -EAFNOSUPPORT (another family), -EADDRINUSE,
 * -EACCES, -EADDRNOTAVAIL, -EMFILE, -ENFILE, -ENOMEM, or another -errno of
 * socket(2), setsockopt(2), bind(2) or listen(2), or of lstat(2) and
 * unlink(2) while reclaiming a stale unix socket path.  Any thread.
 */
WEFT_API int weft_sock_listen(const struct weft_addr *a, const struct weft_listen_opts *opts);

/*
 * Accepts a connection on the listening socket lfd (weft_accept) and stores
 * the peer's address in *peer if not NULL.  Returns the new descriptor
 * (close-on-exec), or -errno: -ECANCELED, -ETIMEDOUT, -EMFILE, -ENFILE,
 * -ECONNABORTED (the client gave up first), -EINVAL (lfd is not
 * listening), -EBADF, or another -errno of accept4(2).  Task only; a
 * suspension point.
 */
WEFT_API int weft_sock_accept(int lfd, struct weft_addr *peer);

/*
 * Connects a new stream socket to a (TCP, or a unix socket).  Returns the
 * descriptor (close-on-exec), or -errno: -ECONNREFUSED, -ENOENT (no unix
 * socket there), -ENETUNREACH, -EHOSTUNREACH, -ETIMEDOUT (the deadline, or
 * the kernel gave up), -ECANCELED, -EINVAL (a.len is 0), -EAFNOSUPPORT,
 * -EMFILE, -ENFILE, or another -errno of socket(2) or connect(2).  Task
 * only; a suspension point.
 */
WEFT_API int weft_sock_connect(const struct weft_addr *a);

/*
 * weft_addr_resolve(s), then weft_sock_connect to each address in turn
 * until one answers.  Returns the descriptor, or the error of
 * weft_addr_resolve, or that of the last address tried; -ECANCELED and
 * -ETIMEDOUT end the attempts at once.  Task only; a suspension point.
 */
WEFT_API int weft_sock_dial(const char *s);

/*
 * Sends all len bytes of buf, however many send(2)s that takes (short
 * writes are resumed), with MSG_NOSIGNAL: a vanished peer gives -EPIPE, not
 * SIGPIPE.  Returns len, or -errno (-EPIPE, -ECONNRESET, -ECANCELED,
 * -ETIMEDOUT, ...).  *sent, if not NULL, receives the bytes the kernel took
 * in every case, so a caller can tell how far an interrupted send got.
 * Task only; a suspension point.
 */
WEFT_API ssize_t weft_sock_send_all(int fd, const void *buf, size_t len, size_t *sent);

/*
 * Receives exactly len bytes into buf, however many recv(2)s that takes.
 * Returns len; 0 when the peer ended the stream before the first byte (a
 * clean end between messages); -EPIPE when it ended the stream after some
 * bytes but before len (a message cut short); or another -errno
 * (-ECONNRESET, -ECANCELED, -ETIMEDOUT, ...).  *got, if not NULL, receives
 * the bytes stored in buf in every case.  Task only; a suspension point.
 */
WEFT_API ssize_t weft_sock_recv_exact(int fd, void *buf, size_t len, size_t *got);

/* TCP_NODELAY on (on != 0) or off: 0 or -errno (-EBADF, -ENOTSOCK,
 * -ENOPROTOOPT for an IPv4 or IPv6 socket that is not TCP, -EOPNOTSUPP for
 * a unix socket).  Any thread. */
WEFT_API int weft_tcp_nodelay(int fd, int on);

/*
 * SO_KEEPALIVE on (on != 0) or off.  When on, idle_s, interval_s and count
 * set TCP_KEEPIDLE (seconds idle before the first probe), TCP_KEEPINTVL
 * (seconds between probes) and TCP_KEEPCNT (probes before the connection is
 * dropped); 0 leaves that one at the system's default.  Returns 0 or -errno
 * (-EBADF, -ENOTSOCK, -EINVAL for a value the kernel refuses; for a socket
 * that is not TCP, when a value is given, -ENOPROTOOPT (IPv4, IPv6) or
 * -EOPNOTSUPP (unix), SO_KEEPALIVE being set by then).  Any thread.
 */
WEFT_API int weft_tcp_keepalive(int fd, int on, unsigned idle_s, unsigned interval_s,
				unsigned count);

/* ---- UDP ------------------------------------------------------------------------ */

/*
 * Opens a UDP socket bound to a (IPv4 or IPv6; IPV6_V6ONLY on IPv6; port 0
 * picks one, which is also how a client gets a socket).  Returns the
 * descriptor (close-on-exec), or -EINVAL (a.len is 0), -EAFNOSUPPORT,
 * -EADDRINUSE, -EADDRNOTAVAIL, -EACCES, -EMFILE, -ENFILE, or another -errno
 * of socket(2) or bind(2).  Any thread.
 */
WEFT_API int weft_udp_bind(const struct weft_addr *a);

/*
 * Sends one datagram of len bytes to *to (NULL: the connected peer).
 * Returns len, or -errno (-EMSGSIZE: too long for one datagram,
 * -ECONNREFUSED: an earlier datagram to a connected peer found no
 * listener, -ECANCELED, -ETIMEDOUT, ...).  Task only; a suspension point.
 */
WEFT_API ssize_t weft_udp_send_to(int fd, const void *buf, size_t len, const struct weft_addr *to);

/*
 * Receives one datagram into buf and stores its sender in *from (if not
 * NULL).  Returns its length; or -EMSGSIZE when it was longer than len (buf
 * holds its first len bytes, *from is set, the rest is gone); or -errno
 * (-ECANCELED, -ETIMEDOUT, ...).  Task only; a suspension point.
 */
WEFT_API ssize_t weft_udp_recv_from(int fd, void *buf, size_t len, struct weft_addr *from);

/* ---- Buffered reader -----------------------------------------------------------
 * Reads a stream socket through a buffer, for line- and delimiter-framed
 * protocols.  read_until and read_line hand a record out whole or not at
 * all: when they fail (-ETIMEDOUT, -ECANCELED, -EMSGSIZE) the bytes stay in
 * the reader, so the call can be retried or the bytes taken another way.
 * read and read_exact hand out what they got.  One task at a time per
 * reader.  The reader never closes fd. */
struct weft_reader;

/* A reader of fd with a buffer of capacity bytes (0: 16 KiB), grown when a
 * call asks for a longer delimited record.  NULL when out of memory.  Any
 * thread. */
WEFT_API struct weft_reader *weft_reader_new(int fd, size_t capacity);

/* Frees r (not its descriptor); buffered bytes are dropped.  Any thread. */
WEFT_API void weft_reader_free(struct weft_reader *r);

/* Bytes buffered and not yet handed out.  Any thread. */
WEFT_API size_t weft_reader_buffered(const struct weft_reader *r);

/*
 * Up to len bytes: what is buffered, else what one recv(2) brings.  Returns
 * the count, 0 at the end of the stream, or -errno.  Task only; a
 * suspension point when the buffer is empty.
 */
WEFT_API ssize_t weft_reader_read(struct weft_reader *r, void *buf, size_t len);

/*
 * Exactly len bytes, as weft_sock_recv_exact (0 when the stream ended
 * before the first byte, -EPIPE when it ended before len; *got, if not
 * NULL, counts the bytes stored in buf, which are consumed whatever the
 * outcome).  Task only; a suspension point.
 */
WEFT_API ssize_t weft_reader_read_exact(struct weft_reader *r, void *buf, size_t len,
					size_t *got);

/*
 * The bytes up to and including the first delim, at most max of them, into
 * buf.  Returns their count, whose last byte is delim; or, when the stream
 * ends with bytes and no delim, those bytes (the next call returns 0); 0 at
 * the end of the stream; -EMSGSIZE when max bytes came with no delim among
 * them; -ENOMEM when the buffer could not grow to max; -EINVAL when max is
 * 0; or the -errno of recv (-ECANCELED, -ETIMEDOUT, ...).  Nothing is
 * consumed on error.  Task only; a suspension point.
 */
WEFT_API ssize_t weft_reader_read_until(struct weft_reader *r, int delim, void *buf, size_t max);

/*
 * A line ended by "\n" or "\r\n": stores it without its end in buf as a C
 * string of at most size - 1 characters, and returns the bytes it took from
 * the stream, its end included (as getline(3): an empty line is 1 or 2, so
 * only the end of the stream is 0).  When the stream ends with an
 * unterminated line, that line is returned whole and the next call returns
 * 0.  The line's length is strlen(buf) unless it holds NUL bytes (use
 * weft_reader_read_until for binary records).  Errors, consuming nothing:
 * -EMSGSIZE when the line does not fit in size - 1 characters, -ENOMEM when
 * the buffer could not grow to hold it, -EINVAL when size is 0, or the
 * -errno of recv (-ECANCELED, -ETIMEDOUT, ...).  Task only; a suspension
 * point.
 */
WEFT_API ssize_t weft_reader_read_line(struct weft_reader *r, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
