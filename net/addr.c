// SPDX-License-Identifier: MIT
/*
 * addr.c - network addresses: parsing and formatting the strings of
 * <weft/net.h> (1.2.3.4:80, [::1]:80, [fe80::1%eth0]:80, unix:/path,
 * unix:@name), resolving host:port with getaddrinfo on the blocking pool, and
 * the socket's own and peer addresses.  net/sock.c opens sockets on them.
 *
 * Parsing is strict and all-or-nothing: it fills a scratch address and copies
 * it out only when the whole string was read, so an error never leaves a
 * half-written result.  Formatting writes exactly what parsing reads, so the
 * two round-trip (an unnamed unix socket aside: it has no string to parse).
 *
 * A lookup may take seconds (DNS retries), longer than the caller's deadline.
 * Its state is therefore on the heap and the job detachable
 * (weft__spawn_blocking_detachable): a caller that is cancelled or times out
 * returns at once, and the pool thread frees the state when getaddrinfo
 * returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/blocking.h"
#include "weft/net.h"

/* A host between the brackets or before the colon; DNS names stop at 253. */
#define HOST_MAX 256
/* weft_addr_resolve keeps at most this many addresses. */
#define RESOLVE_MAX 64

/* sun_path's offset: the length of an unnamed unix address. */
#define UN_BASE ((socklen_t)offsetof(struct sockaddr_un, sun_path))
#define UN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* ---- Parsing ---------------------------------------------------------------- */

/* A decimal port 0..65535, the whole of s: leading zeros allowed, at most 5
 * digits, nothing else. */
static int parse_port(const char *s, in_port_t *port)
{
	unsigned v = 0;
	size_t n = 0;
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || ++n > 5)
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = htons((uint16_t)v);
	return 0;
}

/*
 * Splits "host:port" or "[host]:port": the host (without brackets) into
 * host[HOST_MAX], the port into *port.  *bracketed tells which form it was.
 * The host is never empty; an unbracketed one holds no ':' (a bare IPv6
 * address would be ambiguous) and a bracketed one no '[' or ']'.
 */
static int split(const char *s, char *host, in_port_t *port, bool *bracketed)
{
	const char *h, *he, *colon;
	if (s[0] == '[') {
		h = s + 1;
		he = strchr(h, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		colon = he + 1;
		*bracketed = true;
		if (memchr(h, '[', (size_t)(he - h)))
			return -EINVAL;
	} else {
		h = s;
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL; /* no port */
		he = colon;
		*bracketed = false;
		if (memchr(h, ':', (size_t)(he - h)) || memchr(h, '[', (size_t)(he - h)) ||
		    memchr(h, ']', (size_t)(he - h)))
			return -EINVAL;
	}
	size_t n = (size_t)(he - h);
	if (n == 0 || n >= HOST_MAX)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = 0;
	return parse_port(colon + 1, port);
}

/* An interface number or name after '%' in an IPv6 literal. */
static int parse_scope(const char *s, uint32_t *scope)
{
	if (!*s)
		return -EINVAL;
	if (strspn(s, "0123456789") == strlen(s)) {
		if (strlen(s) > 10)
			return -EINVAL;
		unsigned long long v = strtoull(s, NULL, 10);
		if (v > UINT32_MAX)
			return -EINVAL;
		*scope = (uint32_t)v;
		return 0;
	}
	if (strlen(s) >= IF_NAMESIZE)
		return -EINVAL;
	unsigned idx = if_nametoindex(s);
	if (!idx)
		return -EINVAL;
	*scope = idx;
	return 0;
}

/* host (without brackets, maybe with %scope) as an IPv6 literal. */
static int parse_in6(char *host, in_port_t port, struct weft_addr *a)
{
	uint32_t scope = 0;
	char *pct = strchr(host, '%');
	if (pct) {
		*pct = 0;
		if (parse_scope(pct + 1, &scope) < 0)
			return -EINVAL;
	}
	struct sockaddr_in6 *in6 = &a->in6;
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
		return -EINVAL;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = port;
	in6->sin6_scope_id = scope;
	a->len = sizeof(*in6);
	return 0;
}

/* host as an IPv4 literal (strict dotted decimal, as inet_pton reads it). */
static int parse_in4(const char *host, in_port_t port, struct weft_addr *a)
{
	struct sockaddr_in *in = &a->in;
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return -EINVAL;
	in->sin_family = AF_INET;
	in->sin_port = port;
	a->len = sizeof(*in);
	return 0;
}

/* The part after "unix:": a path, or @ and an abstract name. */
static int parse_unix(const char *s, struct weft_addr *a)
{
	struct sockaddr_un *un = &a->un;
	size_t n = strlen(s);
	un->sun_family = AF_UNIX;
	if (s[0] == '@') {
		/* Abstract: a NUL, then the name's bytes, no terminator; the
		 * length says where it ends. */
		n--;
		if (n == 0 || n > UN_PATH_MAX)
			return -EINVAL;
		un->sun_path[0] = 0;
		memcpy(un->sun_path + 1, s + 1, n);
		a->len = UN_BASE + 1 + (socklen_t)n;
		return 0;
	}
	if (n == 0 || n > UN_PATH_MAX)
		return -EINVAL;
	memcpy(un->sun_path, s, n + 1);
	/* The length getsockname reports for a path: its NUL included. */
	a->len = UN_BASE + (socklen_t)n + 1;
	return 0;
}

/*
 * Parses s into the zeroed *a.  *named is set when s is well-formed
 * host:port whose host is not a numeric literal (a name to look up);
 * host then holds it.
 */
static int parse(const char *s, struct weft_addr *a, char *host, in_port_t *port, bool *named)
{
	*named = false;
	if (!s)
		return -EINVAL;
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix(s + 5, a);
	bool bracketed;
	int rc = split(s, host, port, &bracketed);
	if (rc < 0)
		return rc;
	if (bracketed)
		return parse_in6(host, *port, a); /* only literals go in brackets */
	if (parse_in4(host, *port, a) == 0)
		return 0;
	/* A host name's characters (RFC 1123, and '_' found in the wild);
	 * anything else is no name getaddrinfo should be asked about. */
	*named = strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			      "0123456789-._") == strlen(host);
	return -EINVAL;
}

int weft_addr_parse(struct weft_addr *a, const char *s)
{
	struct weft_addr r;
	char host[HOST_MAX];
	in_port_t port;
	bool named;
	memset(&r, 0, sizeof(r));
	int rc = parse(s, &r, host, &port, &named);
	if (rc == 0)
		*a = r;
	return rc;
}

/* ---- Formatting ---------------------------------------------------------------- */

int weft_addr_format(const struct weft_addr *a, char *buf, size_t size)
{
	char tmp[WEFT_ADDR_STRLEN];
	char ip[INET6_ADDRSTRLEN];
	int n;
	switch (a->sa.sa_family) {
	case AF_INET:
		if (a->len < sizeof(struct sockaddr_in))
			return -EAFNOSUPPORT;
		inet_ntop(AF_INET, &a->in.sin_addr, ip, sizeof(ip));
		n = snprintf(tmp, sizeof(tmp), "%s:%u", ip, ntohs(a->in.sin_port));
		break;
	case AF_INET6: {
		if (a->len < sizeof(struct sockaddr_in6))
			return -EAFNOSUPPORT;
		inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof(ip));
		char scope[IF_NAMESIZE + 12] = "";
		uint32_t id = a->in6.sin6_scope_id;
		if (id) {
			char name[IF_NAMESIZE];
			if (if_indextoname(id, name))
				snprintf(scope, sizeof(scope), "%%%s", name);
			else
				snprintf(scope, sizeof(scope), "%%%u", id);
		}
		n = snprintf(tmp, sizeof(tmp), "[%s%s]:%u", ip, scope, ntohs(a->in6.sin6_port));
		break;
	}
	case AF_UNIX: {
		if (a->len < UN_BASE || a->len > sizeof(struct sockaddr_un))
			return -EAFNOSUPPORT;
		size_t plen = a->len - UN_BASE;
		const char *p = a->un.sun_path;
		memcpy(tmp, "unix:", 5);
		n = 5;
		if (plen > 0 && p[0] == 0) {
			/* Abstract: every byte after the NUL is the name's. */
			tmp[n++] = '@';
			memcpy(tmp + n, p + 1, plen - 1);
			n += (int)plen - 1;
		} else {
			size_t l = strnlen(p, plen);
			memcpy(tmp + n, p, l);
			n += (int)l;
		}
		tmp[n] = 0;
		break;
	}
	default:
		return -EAFNOSUPPORT;
	}
	if ((size_t)n >= size) {
		if (size)
			buf[0] = 0;
		return -ENOSPC;
	}
	memcpy(buf, tmp, (size_t)n + 1);
	return n;
}

int weft_addr_port(const struct weft_addr *a)
{
	if (a->sa.sa_family == AF_INET && a->len >= sizeof(struct sockaddr_in))
		return ntohs(a->in.sin_port);
	if (a->sa.sa_family == AF_INET6 && a->len >= sizeof(struct sockaddr_in6))
		return ntohs(a->in6.sin6_port);
	return -EAFNOSUPPORT;
}

/* ---- Socket addresses -------------------------------------------------------- */

/* getsockname or getpeername into *a, which is left alone on failure. */
static int sock_addr(int fd, struct weft_addr *a,
		     int (*get)(int, struct sockaddr *, socklen_t *))
{
	struct weft_addr r;
	memset(&r, 0, sizeof(r));
	r.len = sizeof(r.ss);
	if (get(fd, &r.sa, &r.len) < 0)
		return -errno;
	*a = r;
	return 0;
}

int weft_sock_local_addr(int fd, struct weft_addr *a)
{
	return sock_addr(fd, a, getsockname);
}

int weft_sock_peer_addr(int fd, struct weft_addr *a)
{
	return sock_addr(fd, a, getpeername);
}

/* ---- Resolving ----------------------------------------------------------------- */

/* A lookup's state, on the heap: the pool thread may outlive the caller. */
struct lookup {
	char host[HOST_MAX];
	char port[6];
	size_t max, n;
	struct weft_addr out[];
};

/* getaddrinfo's EAI_* codes as the errnos weft_addr_resolve documents. */
static int gai_errno(int e, int sys)
{
	switch (e) {
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return sys > 0 ? -sys : -EIO;
	case EAI_SERVICE:
	case EAI_BADFLAGS:
	case EAI_SOCKTYPE:
	case EAI_FAMILY:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* Runs on a pool thread. */
static intptr_t lookup_run(void *arg)
{
	struct lookup *l = arg;
	/* SOCK_STREAM only to get each address once rather than once per
	 * socket type; the addresses serve UDP as well. */
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	int e = getaddrinfo(l->host, l->port, &hints, &res);
	if (e)
		/* errno here is this pool thread's, set by getaddrinfo. */
		return gai_errno(e, errno);
	l->n = 0;
	for (struct addrinfo *ai = res; ai && l->n < l->max; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(l->out[0].ss))
			continue;
		struct weft_addr *a = &l->out[l->n++];
		memset(a, 0, sizeof(*a));
		memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
		a->len = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	return l->n ? 0 : -ENOENT;
}

/* The caller walked away: nobody else will read the state. */
static void lookup_release(void *arg, intptr_t result)
{
	(void)result;
	free(arg);
}

int weft_addr_resolve(const char *s, struct weft_addr *out, size_t max)
{
	if (max == 0)
		return -EINVAL;
	struct weft_addr r;
	char host[HOST_MAX];
	in_port_t port;
	bool named;
	memset(&r, 0, sizeof(r));
	int rc = parse(s, &r, host, &port, &named);
	if (rc == 0) {
		out[0] = r;
		return 1;
	}
	if (!named)
		return rc;

	if (max > RESOLVE_MAX)
		max = RESOLVE_MAX;
	struct lookup *l = malloc(sizeof(*l) + max * sizeof(l->out[0]));
	if (!l)
		return -ENOMEM;
	memcpy(l->host, host, sizeof(l->host));
	snprintf(l->port, sizeof(l->port), "%u", ntohs(port));
	l->max = max;
	l->n = 0;
	intptr_t res;
	rc = weft__spawn_blocking_detachable(lookup_run, l, lookup_release, &res);
	if (rc < 0)
		return rc; /* l was released, or will be when the lookup ends */
	if (res == 0) {
		memcpy(out, l->out, l->n * sizeof(out[0]));
		rc = (int)l->n;
	} else {
		rc = (int)res;
	}
	free(l);
	return rc;
}
