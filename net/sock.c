// SPDX-License-Identifier: MIT
/*
 * sock.c - stream sockets (TCP and unix), UDP, and the buffered reader of
 * <weft/net.h>, on the addresses of net/addr.c and the operations of
 * <weft/io.h>.
 *
 * Set-up (socket, setsockopt, bind, listen) never waits, so it calls the
 * kernel directly and works on any thread.  Everything that waits for a peer
 * (accept, connect, send, recv) is an operation of <weft/io.h>, so deadlines
 * and cancellation reach it, and a call returns only once the kernel is done
 * with the buffers it was given.  Loops that need several operations
 * (send_all, recv_exact, the reader) count what they moved before each
 * operation, so an interrupted loop reports how far it got.
 *
 * Listening sockets are nonblocking, as callers that poll them expect;
 * connected sockets are left blocking, which io_uring does not need and
 * which keeps it from ever handing -EAGAIN back.  A descriptor this file
 * opened and must give up on is closed with close(2): no operation is in
 * flight on it then (each one has returned).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft/io.h"
#include "weft/net.h"

#define READER_DEFAULT (16 * 1024)
#define DIAL_MAX 16

/* ---- Listening ----------------------------------------------------------------- */

static bool is_inet(const struct weft_addr *a)
{
	return a->sa.sa_family == AF_INET || a->sa.sa_family == AF_INET6;
}

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* a names a filesystem path (not an abstract or unnamed unix socket). */
static bool unix_path(const struct weft_addr *a)
{
	return a->sa.sa_family == AF_UNIX &&
	       a->len > offsetof(struct sockaddr_un, sun_path) && a->un.sun_path[0] != 0;
}

/*
 * bind found a's path taken.  If it is a socket nobody listens on (a server
 * that died), remove it: returns 0 and the caller binds again.  A live
 * socket, or any other kind of file, gives -EADDRINUSE and stays.  The probe
 * and the unlink are two steps; a server that binds the path between them
 * loses it, a race only two servers started at once can run.
 */
static int reclaim_unix_path(const struct weft_addr *a)
{
	struct stat st;
	if (lstat(a->un.sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno; /* gone meanwhile: bind again */
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	/* Nonblocking: a unix connect never waits; a listener with a full
	 * backlog answers -EAGAIN, which is just as alive. */
	int rc = connect(probe, &a->sa, a->len) < 0 ? -errno : 0;
	close(probe);
	if (rc != -ECONNREFUSED)
		return -EADDRINUSE;
	if (unlink(a->un.sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int weft_sock_listen(const struct weft_addr *a, const struct weft_listen_opts *opts)
{
	struct weft_listen_opts o = opts ? *opts : (struct weft_listen_opts){0};
	if (!a->len)
		return -EINVAL;
	int family = a->sa.sa_family;
	if (!is_inet(a) && family != AF_UNIX)
		return -EAFNOSUPPORT;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (is_inet(a)) {
		rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
		if (rc == 0 && (o.flags & WEFT_LISTEN_REUSEPORT))
			rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
		/* Set either way: the system default (bindv6only) is not ours
		 * to rely on. */
		if (rc == 0 && family == AF_INET6)
			rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY,
				     !(o.flags & WEFT_LISTEN_DUAL_STACK));
	}
	if (rc == 0) {
		rc = bind(fd, &a->sa, a->len) < 0 ? -errno : 0;
		if (rc == -EADDRINUSE && unix_path(a) && (rc = reclaim_unix_path(a)) == 0)
			rc = bind(fd, &a->sa, a->len) < 0 ? -errno : 0;
	}
	if (rc == 0)
		rc = listen(fd, o.backlog > 0 ? o.backlog : SOMAXCONN) < 0 ? -errno : 0;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

/* ---- Connections ------------------------------------------------------------------ */

int weft_sock_accept(int lfd, struct weft_addr *peer)
{
	/* The kernel writes the address into tmp when the accept completes;
	 * weft_accept returns only after that. */
	struct weft_addr tmp;
	memset(&tmp, 0, sizeof(tmp));
	socklen_t len = sizeof(tmp.ss);
	int fd = weft_accept(lfd, peer ? &tmp.sa : NULL, peer ? &len : NULL, SOCK_CLOEXEC);
	if (fd >= 0 && peer) {
		tmp.len = len;
		*peer = tmp;
	}
	return fd;
}

int weft_sock_connect(const struct weft_addr *a)
{
	if (!a->len)
		return -EINVAL;
	if (!is_inet(a) && a->sa.sa_family != AF_UNIX)
		return -EAFNOSUPPORT;
	int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = weft_connect(fd, &a->sa, a->len);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int weft_sock_dial(const char *s)
{
	struct weft_addr addrs[DIAL_MAX];
	int n = weft_addr_resolve(s, addrs, DIAL_MAX);
	if (n < 0)
		return n;
	int rc = -ECONNREFUSED;
	for (int i = 0; i < n; i++) {
		rc = weft_sock_connect(&addrs[i]);
		/* The caller's own limits end the attempts; an address that
		 * does not answer hands over to the next. */
		if (rc >= 0 || rc == -ECANCELED || rc == -ETIMEDOUT)
			return rc;
	}
	return rc;
}

ssize_t weft_sock_send_all(int fd, const void *buf, size_t len, size_t *sent)
{
	const char *p = buf;
	size_t done = 0;
	ssize_t rc = (ssize_t)len;
	while (done < len) {
		ssize_t n = weft_send(fd, p + done, len - done, MSG_NOSIGNAL);
		if (n <= 0) {
			/* A stream send of at least one byte never returns 0;
			 * should one, do not spin on it. */
			rc = n < 0 ? n : -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (sent)
		*sent = done;
	return rc;
}

ssize_t weft_sock_recv_exact(int fd, void *buf, size_t len, size_t *got)
{
	char *p = buf;
	size_t done = 0;
	ssize_t rc = (ssize_t)len;
	while (done < len) {
		ssize_t n = weft_recv(fd, p + done, len - done, 0);
		if (n <= 0) {
			rc = n < 0 ? n : done ? -EPIPE : 0;
			break;
		}
		done += (size_t)n;
	}
	if (got)
		*got = done;
	return rc;
}

int weft_tcp_nodelay(int fd, int on)
{
	return set_int(fd, IPPROTO_TCP, TCP_NODELAY, !!on);
}

int weft_tcp_keepalive(int fd, int on, unsigned idle_s, unsigned interval_s, unsigned count)
{
	int rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, !!on);
	if (rc < 0 || !on)
		return rc;
	if (idle_s && (rc = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_s)) < 0)
		return rc;
	if (interval_s && (rc = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)interval_s)) < 0)
		return rc;
	if (count && (rc = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)count)) < 0)
		return rc;
	return 0;
}

/* ---- UDP ------------------------------------------------------------------------------ */

int weft_udp_bind(const struct weft_addr *a)
{
	if (!a->len)
		return -EINVAL;
	if (!is_inet(a))
		return -EAFNOSUPPORT;
	int fd = socket(a->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (a->sa.sa_family == AF_INET6)
		rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	if (rc == 0)
		rc = bind(fd, &a->sa, a->len) < 0 ? -errno : 0;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

ssize_t weft_udp_send_to(int fd, const void *buf, size_t len, const struct weft_addr *to)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (to) {
		m.msg_name = (void *)&to->sa;
		m.msg_namelen = to->len;
	}
	return weft_sendmsg(fd, &m, MSG_NOSIGNAL);
}

ssize_t weft_udp_recv_from(int fd, void *buf, size_t len, struct weft_addr *from)
{
	/* The kernel writes the sender, its length and msg_flags back into
	 * tmp and m when the operation completes. */
	struct weft_addr tmp;
	memset(&tmp, 0, sizeof(tmp));
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr m = {
		.msg_name = &tmp.ss,
		.msg_namelen = sizeof(tmp.ss),
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t n = weft_recvmsg(fd, &m, 0);
	if (n < 0)
		return n;
	if (from) {
		tmp.len = m.msg_namelen;
		*from = tmp;
	}
	return (m.msg_flags & MSG_TRUNC) ? -EMSGSIZE : n;
}

/* ---- Buffered reader -------------------------------------------------------------------
 * buf[start, end) holds the bytes received and not yet handed out; cap is
 * buf's size.  Invariants: start <= end <= cap; start == end only when
 * nothing is buffered; eof once recv returned 0 (later calls do not ask
 * again).  The buffer only grows, and only to what a call's max asks. */

struct weft_reader {
	int fd;
	bool eof;
	char *buf;
	size_t cap, start, end;
};

struct weft_reader *weft_reader_new(int fd, size_t capacity)
{
	struct weft_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->fd = fd;
	r->cap = capacity ? capacity : READER_DEFAULT;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	return r;
}

void weft_reader_free(struct weft_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

size_t weft_reader_buffered(const struct weft_reader *r)
{
	return r->end - r->start;
}

/* Room for at least need buffered bytes: grows buf to need if smaller. */
static int reserve(struct weft_reader *r, size_t need)
{
	if (r->cap >= need)
		return 0;
	char *nb = malloc(need);
	if (!nb)
		return -ENOMEM;
	memcpy(nb, r->buf + r->start, r->end - r->start);
	free(r->buf);
	r->buf = nb;
	r->end -= r->start;
	r->start = 0;
	r->cap = need;
	return 0;
}

/* One recv into the free space after end, moving the buffered bytes to the
 * front first if there is none.  Returns bytes added, 0 at EOF, or -errno.
 * Needs end - start < cap. */
static ssize_t fill(struct weft_reader *r)
{
	if (r->eof)
		return 0;
	if (r->start == r->end) {
		r->start = r->end = 0;
	} else if (r->end == r->cap) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	ssize_t n = weft_recv(r->fd, r->buf + r->end, r->cap - r->end, 0);
	if (n > 0)
		r->end += (size_t)n;
	else if (n == 0)
		r->eof = true;
	return n;
}

/* Hands out the first n buffered bytes into out. */
static void take(struct weft_reader *r, void *out, size_t n)
{
	memcpy(out, r->buf + r->start, n);
	r->start += n;
}

ssize_t weft_reader_read(struct weft_reader *r, void *buf, size_t len)
{
	if (len == 0)
		return 0;
	size_t have = r->end - r->start;
	if (have == 0) {
		if (r->eof)
			return 0;
		if (len >= r->cap) {
			/* As large as our buffer: skip the copy. */
			ssize_t n = weft_recv(r->fd, buf, len, 0);
			if (n == 0)
				r->eof = true;
			return n;
		}
		ssize_t n = fill(r);
		if (n <= 0)
			return n;
		have = r->end - r->start;
	}
	size_t n = have < len ? have : len;
	take(r, buf, n);
	return (ssize_t)n;
}

ssize_t weft_reader_read_exact(struct weft_reader *r, void *buf, size_t len, size_t *got)
{
	char *p = buf;
	size_t done = 0;
	ssize_t rc = (ssize_t)len;
	while (done < len) {
		ssize_t n = weft_reader_read(r, p + done, len - done);
		if (n <= 0) {
			rc = n < 0 ? n : done ? -EPIPE : 0;
			break;
		}
		done += (size_t)n;
	}
	if (got)
		*got = done;
	return rc;
}

/*
 * Waits until the first `window` buffered bytes hold delim, or window bytes
 * are buffered without it, or the stream ended.  Returns 1 with the
 * delimiter's index from start in *at, 0 when there is none (look at what is
 * buffered and at r->eof), or -errno from recv.  Consumes nothing.
 */
static int find(struct weft_reader *r, int delim, size_t window, size_t *at)
{
	size_t scanned = 0;
	for (;;) {
		size_t have = r->end - r->start;
		size_t lim = have < window ? have : window;
		const char *base = r->buf + r->start;
		const char *hit = memchr(base + scanned, delim, lim - scanned);
		if (hit) {
			*at = (size_t)(hit - base);
			return 1;
		}
		scanned = lim;
		if (have >= window || r->eof)
			return 0;
		/* have < window <= cap: fill has room.  It may move the bytes
		 * to the front; scanned counts from start, so it stays true. */
		ssize_t n = fill(r);
		if (n < 0)
			return (int)n;
	}
}

ssize_t weft_reader_read_until(struct weft_reader *r, int delim, void *buf, size_t max)
{
	if (max == 0)
		return -EINVAL;
	int rc = reserve(r, max);
	if (rc < 0)
		return rc;
	size_t at;
	if ((rc = find(r, delim, max, &at)) < 0)
		return rc;
	if (rc) {
		take(r, buf, at + 1);
		return (ssize_t)at + 1;
	}
	size_t have = r->end - r->start;
	if (have >= max)
		return -EMSGSIZE;
	/* The stream ended: what is left is the last record, undelimited. */
	take(r, buf, have);
	return (ssize_t)have;
}

ssize_t weft_reader_read_line(struct weft_reader *r, char *buf, size_t size)
{
	if (size == 0)
		return -EINVAL;
	/* The longest line that fits, size - 1 characters, and its "\r\n". */
	size_t window = size + 1;
	int rc = reserve(r, window);
	if (rc < 0)
		return rc;
	size_t at;
	if ((rc = find(r, '\n', window, &at)) < 0)
		return rc;
	const char *base = r->buf + r->start;
	size_t len, used;
	if (rc) {
		len = at;
		if (len > 0 && base[len - 1] == '\r')
			len--;
		used = at + 1;
	} else {
		size_t have = r->end - r->start;
		if (have >= window)
			return -EMSGSIZE;
		len = used = have; /* the last line, unterminated (or nothing) */
	}
	if (len > size - 1)
		return -EMSGSIZE;
	memcpy(buf, base, len);
	buf[len] = 0;
	r->start += used;
	return (ssize_t)used;
}
