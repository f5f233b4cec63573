// SPDX-License-Identifier: MIT
/*
 * proxy_proto.c - the PROXY protocol of proxy_proto.h: version 1 and 2
 * headers written for backends, and a strict parser for headers from a load
 * balancer, after HAProxy's proxy-protocol.txt (2020/03/05; sections named
 * below are that document's).  It stands alone: no runtime, no allocation,
 * nothing from libc but memcpy, memcmp, memset and strnlen, so the fuzz
 * target (tests/fuzz/proxy_fuzz.c) compiles this file by itself.
 *
 * The parser keeps no state between calls: it reads from buf[0] each time,
 * and it is prefix-closed: it walks the bytes in order and decides from the
 * bytes before each point only, so a prefix of the input gives -EAGAIN or
 * the very verdict (and reason) that the whole input gives.  That is what
 * lets the caller feed it a stream split anywhere, and what the tests and
 * the fuzz target check.
 *
 *  - Version 1 is walked byte by byte.  A field (address, port) is checked
 *    for its characters and length as its bytes arrive, and read in full
 *    when its terminator (a space, or the CR of CRLF) arrives, as section
 *    2.1 asks ("wait for the CRLF before decoding" holds: nothing is
 *    reported before the line is complete).  Re-walking a line of at most
 *    107 bytes per call costs nothing worth keeping state for.
 *  - Version 2 is checked field by field as the 16 fixed bytes arrive
 *    (signature, version, command, family, length), then waits for the
 *    whole header and checks the addresses' room and the TLVs once.
 *
 * What is rejected (-EBADMSG unless noted):
 *  2.1  a first byte that begins neither "PROXY " nor the version 2
 *       signature, and any later byte that departs from them;
 *       a protocol other than "TCP4", "TCP6", "UNKNOWN" (case matters);
 *       anything but exactly one space between fields (an empty field);
 *       an IPv4 address that is not 4 decimal numbers 0-255 with single
 *       dots and no leading zeros; an IPv6 address that is not RFC 4291
 *       section 2.2 text (groups of 1-4 hex digits, at most one "::"
 *       standing for at least one group, 128 bits in all, an optional
 *       dotted-quad tail as for IPv4), or carries a zone ("%eth0");
 *       an address of the other family than the protocol names;
 *       a port that is not decimal 0-65535, or has a leading zero;
 *       a line not ended by CRLF (a bare CR, a bare LF, bytes after the
 *       second port), or whose CRLF does not end within 107 bytes;
 *       after "UNKNOWN", anything but CRLF or a space followed by
 *       printable ASCII (0x20-0x7e) up to CRLF (the rest is ignored, as
 *       the section says; CR and LF cannot hide in it);
 *  2.2  a version other than 2 after the signature (-EPROTONOSUPPORT);
 *       a command other than LOCAL (0) and PROXY (1); a family/transport
 *       byte other than the seven the section lists (0x00, 0x11, 0x12,
 *       0x21, 0x22, 0x31, 0x32); a length shorter than the family's
 *       address block (12, 36, 216 bytes); a header longer than the
 *       caller's limit (-EMSGSIZE);
 *       after the addresses, bytes that are not a sequence of whole TLVs
 *       (a partial TLV header, a TLV running past the header's end);
 *  2.2.3 a CRC32C TLV whose length is not 4, a second one, or a checksum
 *       that does not match;
 *  2.2.5 a UNIQUE_ID TLV longer than 128 bytes;
 *  2.2.6 an SSL TLV shorter than its 5 fixed bytes, or whose sub-TLVs are
 *       not whole.
 *
 * Accepted on purpose: UDP and unix families (decoded; transport and
 * family tell the caller, who may refuse them); the PROXY command with the
 * UNSPEC family (the section leaves it to the receiver; it reads as "use
 * the real endpoints", like v1 UNKNOWN); IPv6 groups with leading zeros
 * and in upper case, and "::" not on the longest run (the section allows
 * both cases, and RFC 4291 all of these forms); TLV types the
 * specification does not know (a receiver skips them).  The LOCAL command
 * is held to the same layout as PROXY (the family's address block, then
 * whole TLVs) although its addresses are ignored: a sender that sets a
 * family and a shorter length contradicts itself, and HAProxy puts TLVs,
 * a checksum among them, on LOCAL health checks.
 */
#include "proxy_proto.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* sun_path's offset: the length of an unnamed unix address. */
#define UN_BASE ((socklen_t)offsetof(struct sockaddr_un, sun_path))
#define UN_PATH 108u /* a version 2 unix address, as sun_path on Linux */

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == UN_PATH,
	       "version 2 unix addresses are sun_path's size");
_Static_assert(sizeof(PROXY_PROTO_V2_SIG) - 1 == 12, "the signature is 12 bytes");

/* PROXY_PROTO_V2_SIG, byte by byte. */

static const char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static inline uint16_t get16(const char *p)
{
	return (uint16_t)((uint8_t)p[0] << 8 | (uint8_t)p[1]);
}

static inline void put16(char *p, unsigned v)
{
	p[0] = (char)(v >> 8);
	p[1] = (char)v;
}

/* ---- CRC32C -----------------------------------------------------------------
 * The reflected Castagnoli polynomial, table built at compile time: entry i
 * is i run through 8 shift-and-xor steps. */
#define CRC_POLY 0x82f63b78u
#define CRC_BIT(c) (((c) >> 1) ^ (((c) & 1u) ? CRC_POLY : 0u))
#define CRC_BYTE(c)                                                                   \
	CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT(CRC_BIT((uint32_t)(c)))))))))
#define CRC_ROW(r)                                                                    \
	CRC_BYTE((r) + 0), CRC_BYTE((r) + 1), CRC_BYTE((r) + 2), CRC_BYTE((r) + 3),      \
		CRC_BYTE((r) + 4), CRC_BYTE((r) + 5), CRC_BYTE((r) + 6),                 \
		CRC_BYTE((r) + 7), CRC_BYTE((r) + 8), CRC_BYTE((r) + 9),                 \
		CRC_BYTE((r) + 10), CRC_BYTE((r) + 11), CRC_BYTE((r) + 12),              \
		CRC_BYTE((r) + 13), CRC_BYTE((r) + 14), CRC_BYTE((r) + 15)

static const uint32_t crc_table[256] = {
	CRC_ROW(0x00), CRC_ROW(0x10), CRC_ROW(0x20), CRC_ROW(0x30),
	CRC_ROW(0x40), CRC_ROW(0x50), CRC_ROW(0x60), CRC_ROW(0x70),
	CRC_ROW(0x80), CRC_ROW(0x90), CRC_ROW(0xa0), CRC_ROW(0xb0),
	CRC_ROW(0xc0), CRC_ROW(0xd0), CRC_ROW(0xe0), CRC_ROW(0xf0),
};

/* Runs the (pre-inverted) crc over p[0, n). */
static uint32_t crc_update(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		crc = crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t proxy_proto_crc32c(const void *p, size_t n)
{
	return ~crc_update(~0u, p, n);
}

/* The checksum of the header h[0, total) with the 4 bytes at value_off read
 * as zeros (section 2.2.3). */
static uint32_t crc_zeroed(const char *h, size_t total, size_t value_off)
{
	static const char zero[4];
	uint32_t crc = crc_update(~0u, h, value_off);
	crc = crc_update(crc, zero, 4);
	crc = crc_update(crc, h + value_off + 4, total - value_off - 4);
	return ~crc;
}

/* ---- Addresses --------------------------------------------------------------- */

static bool is_ip4(const struct weft_addr *a)
{
	return a && a->len >= sizeof(struct sockaddr_in) && a->sa.sa_family == AF_INET;
}

static bool is_ip6(const struct weft_addr *a)
{
	return a && a->len >= sizeof(struct sockaddr_in6) && a->sa.sa_family == AF_INET6;
}

static void set_ip4(struct weft_addr *a, const char *addr, const char *port)
{
	memset(a, 0, sizeof(*a));
	a->in.sin_family = AF_INET;
	memcpy(&a->in.sin_addr, addr, 4);
	memcpy(&a->in.sin_port, port, 2); /* both stay in network order */
	a->len = sizeof(struct sockaddr_in);
}

static void set_ip6(struct weft_addr *a, const char *addr, const char *port)
{
	memset(a, 0, sizeof(*a));
	a->in6.sin6_family = AF_INET6;
	memcpy(&a->in6.sin6_addr, addr, 16);
	memcpy(&a->in6.sin6_port, port, 2);
	a->len = sizeof(struct sockaddr_in6);
}

/* A version 2 unix address: 108 bytes, a path padded with NULs, or an
 * abstract name (a NUL, then the name) padded with NULs. */
static void set_unix(struct weft_addr *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->un.sun_family = AF_UNIX;
	size_t n;
	if (path[0]) {
		/* A path: up to its NUL, which len counts as getsockname's does
		 * (none when it fills all 108 bytes). */
		n = strnlen(path, UN_PATH);
		memcpy(a->un.sun_path, path, n);
		a->len = UN_BASE + (socklen_t)n + (n < UN_PATH);
		return;
	}
	/* Abstract, or unnamed when all zero: the padding cannot be told from
	 * the name's own trailing NULs, so both are dropped. */
	n = UN_PATH;
	while (n > 0 && path[n - 1] == 0)
		n--;
	memcpy(a->un.sun_path, path, n);
	a->len = UN_BASE + (socklen_t)n;
}

/* ---- Writing ------------------------------------------------------------------- */

static char *put_dec(char *o, unsigned v)
{
	char tmp[10];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		*o++ = tmp[--n];
	return o;
}

static char *put_ip4(char *o, const struct in_addr *in)
{
	const uint8_t *b = (const uint8_t *)in;
	for (int i = 0; i < 4; i++) {
		if (i)
			*o++ = '.';
		o = put_dec(o, b[i]);
	}
	return o;
}

/* RFC 5952 section 4: lowercase, no leading zeros, the longest run of two
 * or more zero groups (the first of equals) as "::". */
static char *put_ip6(char *o, const struct in6_addr *in)
{
	const uint8_t *b = (const uint8_t *)in;
	unsigned w[8];
	for (int i = 0; i < 8; i++)
		w[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
	int best = -1, best_len = 1;
	for (int i = 0; i < 8;) {
		int j = i;
		while (j < 8 && w[j] == 0)
			j++;
		if (j - i > best_len) {
			best = i;
			best_len = j - i;
		}
		i = j > i ? j : i + 1;
	}
	for (int i = 0; i < 8;) {
		if (i == best) {
			*o++ = ':';
			*o++ = ':';
			i += best_len;
			continue;
		}
		if (i > 0 && i != best + best_len)
			*o++ = ':';
		bool lead = true;
		for (int s = 12; s >= 0; s -= 4) {
			unsigned d = w[i] >> s & 0xf;
			if (lead && d == 0 && s > 0)
				continue;
			lead = false;
			*o++ = "0123456789abcdef"[d];
		}
		i++;
	}
	return o;
}

ssize_t proxy_proto_v1(char *buf, size_t size, const struct weft_addr *src,
		       const struct weft_addr *dst)
{
	char tmp[PROXY_PROTO_V1_MAX];
	char *o = tmp;
	memcpy(o, "PROXY ", 6);
	o += 6;
	if (is_ip4(src) && is_ip4(dst)) {
		memcpy(o, "TCP4 ", 5);
		o = put_ip4(o + 5, &src->in.sin_addr);
		*o++ = ' ';
		o = put_ip4(o, &dst->in.sin_addr);
		*o++ = ' ';
		o = put_dec(o, ntohs(src->in.sin_port));
		*o++ = ' ';
		o = put_dec(o, ntohs(dst->in.sin_port));
	} else if (is_ip6(src) && is_ip6(dst)) {
		memcpy(o, "TCP6 ", 5);
		o = put_ip6(o + 5, &src->in6.sin6_addr);
		*o++ = ' ';
		o = put_ip6(o, &dst->in6.sin6_addr);
		*o++ = ' ';
		o = put_dec(o, ntohs(src->in6.sin6_port));
		*o++ = ' ';
		o = put_dec(o, ntohs(dst->in6.sin6_port));
	} else {
		memcpy(o, "UNKNOWN", 7);
		o += 7;
	}
	*o++ = '\r';
	*o++ = '\n';
	size_t n = (size_t)(o - tmp);
	if (n > size)
		return -ENOSPC;
	memcpy(buf, tmp, n);
	return (ssize_t)n;
}

/* The 16 fixed bytes of a version 2 header. */
static void put_v2_head(char *buf, int command, uint8_t family, size_t body)
{
	memcpy(buf, v2sig, 12);
	buf[12] = (char)(0x20 | command);
	buf[13] = (char)family;
	put16(buf + 14, (unsigned)body);
}

ssize_t proxy_proto_v2_local(char *buf, size_t size)
{
	if (size < PROXY_PROTO_V2_HEAD)
		return -ENOSPC;
	put_v2_head(buf, PROXY_PROTO_LOCAL, 0x00, 0);
	return PROXY_PROTO_V2_HEAD;
}

ssize_t proxy_proto_v2(char *buf, size_t size, const struct weft_addr *src,
		       const struct weft_addr *dst)
{
	if (is_ip4(src) && is_ip4(dst)) {
		if (size < 16 + 12)
			return -ENOSPC;
		put_v2_head(buf, PROXY_PROTO_PROXY, 0x11, 12);
		memcpy(buf + 16, &src->in.sin_addr, 4);
		memcpy(buf + 20, &dst->in.sin_addr, 4);
		memcpy(buf + 24, &src->in.sin_port, 2);
		memcpy(buf + 26, &dst->in.sin_port, 2);
		return 16 + 12;
	}
	if (is_ip6(src) && is_ip6(dst)) {
		if (size < 16 + 36)
			return -ENOSPC;
		put_v2_head(buf, PROXY_PROTO_PROXY, 0x21, 36);
		memcpy(buf + 16, &src->in6.sin6_addr, 16);
		memcpy(buf + 32, &dst->in6.sin6_addr, 16);
		memcpy(buf + 48, &src->in6.sin6_port, 2);
		memcpy(buf + 50, &dst->in6.sin6_port, 2);
		return 16 + 36;
	}
	return proxy_proto_v2_local(buf, size);
}

/* The address block's size for a version 2 family/transport byte, or -1
 * for a byte section 2.2 does not list. */
static int v2_addr_size(uint8_t fam)
{
	switch (fam) {
	case 0x00:
		return 0;
	case 0x11:
	case 0x12:
		return 12;
	case 0x21:
	case 0x22:
		return 36;
	case 0x31:
	case 0x32:
		return 2 * UN_PATH;
	default:
		return -1;
	}
}

/* Whether buf[0, len) is a version 2 header whose length field says len. */
static bool v2_whole(const char *buf, size_t len)
{
	return len >= PROXY_PROTO_V2_HEAD && len <= PROXY_PROTO_V2_MAX &&
	       memcmp(buf, v2sig, 12) == 0 && ((uint8_t)buf[12] >> 4) == 2 &&
	       PROXY_PROTO_V2_HEAD + get16(buf + 14) == len;
}

static ssize_t v2_append(char *buf, size_t size, size_t len, uint8_t type, const void *value,
			 size_t vlen)
{
	if (vlen > PROXY_PROTO_V2_MAX || len + 3 + vlen > PROXY_PROTO_V2_MAX)
		return -EMSGSIZE;
	size_t n = len + 3 + vlen;
	if (n > size)
		return -ENOSPC;
	if (vlen)
		memmove(buf + len + 3, value, vlen); /* value may lie in buf */
	buf[len] = (char)type;
	put16(buf + len + 1, (unsigned)vlen);
	put16(buf + 14, (unsigned)(n - PROXY_PROTO_V2_HEAD));
	return (ssize_t)n;
}

ssize_t proxy_proto_v2_add_tlv(char *buf, size_t size, size_t len, uint8_t type,
			       const void *value, size_t vlen)
{
	if (!v2_whole(buf, len) || type == PROXY_PROTO_TLV_CRC32C)
		return -EINVAL;
	return v2_append(buf, size, len, type, value, vlen);
}

ssize_t proxy_proto_v2_add_crc32c(char *buf, size_t size, size_t len)
{
	if (!v2_whole(buf, len))
		return -EINVAL;
	int asize = v2_addr_size((uint8_t)buf[13]);
	if (asize < 0 || len < PROXY_PROTO_V2_HEAD + (size_t)asize)
		return -EINVAL;
	struct proxy_proto_slice rest = {buf + PROXY_PROTO_V2_HEAD + asize,
					 len - PROXY_PROTO_V2_HEAD - (size_t)asize};
	struct proxy_proto_tlv t;
	int rc;
	while ((rc = proxy_proto_tlv_next(&rest, &t)) > 0)
		if (t.type == PROXY_PROTO_TLV_CRC32C)
			return -EINVAL;
	if (rc < 0)
		return -EINVAL;
	static const char zero[4];
	ssize_t n = v2_append(buf, size, len, PROXY_PROTO_TLV_CRC32C, zero, 4);
	if (n < 0)
		return n;
	uint32_t crc = proxy_proto_crc32c(buf, (size_t)n);
	put16(buf + n - 4, crc >> 16);
	put16(buf + n - 2, crc & 0xffff);
	return n;
}

/* ---- TLVs ----------------------------------------------------------------------- */

int proxy_proto_tlv_next(struct proxy_proto_slice *rest, struct proxy_proto_tlv *tlv)
{
	if (rest->len == 0)
		return 0;
	if (rest->len < 3)
		return -EBADMSG;
	size_t vlen = get16(rest->ptr + 1);
	if (vlen > rest->len - 3)
		return -EBADMSG;
	tlv->type = (uint8_t)rest->ptr[0];
	tlv->value.ptr = rest->ptr + 3;
	tlv->value.len = vlen;
	rest->ptr += 3 + vlen;
	rest->len -= 3 + vlen;
	return 1;
}

/* Checks the TLVs tl of the complete header h[0, total): NULL when they
 * are well-formed, else why not. */
static const char *check_tlvs(const char *h, size_t total, struct proxy_proto_slice tl)
{
	bool crc = false;
	struct proxy_proto_tlv t;
	int rc;
	while ((rc = proxy_proto_tlv_next(&tl, &t)) > 0) {
		switch (t.type) {
		case PROXY_PROTO_TLV_CRC32C: {
			if (t.value.len != 4)
				return "v2: CRC32C TLV not 4 bytes long";
			if (crc)
				return "v2: two CRC32C TLVs";
			crc = true;
			const uint8_t *v = (const uint8_t *)t.value.ptr;
			uint32_t want = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
					(uint32_t)v[2] << 8 | v[3];
			if (crc_zeroed(h, total, (size_t)(t.value.ptr - h)) != want)
				return "v2: CRC32C mismatch";
			break;
		}
		case PROXY_PROTO_TLV_UNIQUE_ID:
			if (t.value.len > PROXY_PROTO_UNIQUE_ID_MAX)
				return "v2: UNIQUE_ID TLV longer than 128 bytes";
			break;
		case PROXY_PROTO_TLV_SSL: {
			/* client (1 byte) and verify (4 bytes), then sub-TLVs */
			if (t.value.len < 5)
				return "v2: SSL TLV shorter than 5 bytes";
			struct proxy_proto_slice sub = {t.value.ptr + 5, t.value.len - 5};
			struct proxy_proto_tlv s;
			int src;
			while ((src = proxy_proto_tlv_next(&sub, &s)) > 0)
				;
			if (src < 0)
				return "v2: SSL sub-TLV past the SSL TLV's end";
			break;
		}
		default:
			break;
		}
	}
	return rc < 0 ? "v2: TLV past the header's end" : NULL;
}

/* ---- Reading version 2 ------------------------------------------------------------ */

static int fail(struct proxy_proto_info *out, int err, const char *why)
{
	out->why = why;
	return err;
}

#define BAD(why) fail(out, -EBADMSG, why)
#define MORE() fail(out, -EAGAIN, "incomplete header")

static int parse_v2(const char *buf, size_t len, size_t max, struct proxy_proto_info *out)
{
	if (memcmp(buf, v2sig, len < 12 ? len : 12) != 0)
		return BAD("not a PROXY protocol header");
	if (len < 13)
		return MORE();
	uint8_t vc = (uint8_t)buf[12];
	if (vc >> 4 != 2)
		return fail(out, -EPROTONOSUPPORT, "v2: version other than 2");
	if ((vc & 0xf) > PROXY_PROTO_PROXY)
		return BAD("v2: unknown command");
	if (len < 14)
		return MORE();
	uint8_t fam = (uint8_t)buf[13];
	int asize = v2_addr_size(fam);
	if (asize < 0)
		return BAD("v2: unknown family or transport");
	if (len < 16)
		return MORE();
	size_t total = PROXY_PROTO_V2_HEAD + get16(buf + 14);
	if (total < PROXY_PROTO_V2_HEAD + (size_t)asize)
		return BAD("v2: length shorter than the address block");
	if (total > max)
		return fail(out, -EMSGSIZE, "v2: header longer than the limit");
	if (len < total)
		return MORE();

	const char *a = buf + PROXY_PROTO_V2_HEAD;
	struct proxy_proto_slice tl = {a + asize, total - PROXY_PROTO_V2_HEAD - (size_t)asize};
	const char *why = check_tlvs(buf, total, tl);
	if (why)
		return BAD(why);

	out->version = 2;
	out->command = (enum proxy_proto_command)(vc & 0xf);
	out->tlvs = tl;
	memset(&out->src, 0, sizeof(out->src));
	memset(&out->dst, 0, sizeof(out->dst));
	out->transport = 0;
	if (out->command == PROXY_PROTO_PROXY && fam != 0x00) {
		out->transport = (fam & 0xf) == 1 ? SOCK_STREAM : SOCK_DGRAM;
		switch (fam >> 4) {
		case 1:
			set_ip4(&out->src, a, a + 8);
			set_ip4(&out->dst, a + 4, a + 10);
			break;
		case 2:
			set_ip6(&out->src, a, a + 32);
			set_ip6(&out->dst, a + 16, a + 34);
			break;
		default:
			set_unix(&out->src, a);
			set_unix(&out->dst, a + UN_PATH);
			break;
		}
	}
	out->why = "";
	return (int)total;
}

/* ---- Reading version 1 ------------------------------------------------------------- */

/* A walk over a version 1 line: the next byte is buf[at]; bytes up to lim
 * (the input or the 107-byte bound, whichever is shorter) may be read. */
struct v1 {
	const char *buf;
	size_t at, lim, len;
	struct proxy_proto_info *out;
};

/* What to return when the walk needs buf[lim]: more bytes, or, at the
 * bound, a line too long. */
static int v1_end(const struct v1 *w)
{
	if (w->len >= PROXY_PROTO_V1_MAX)
		return fail(w->out, -EBADMSG, "v1: no CRLF within 107 bytes");
	return fail(w->out, -EAGAIN, "incomplete header");
}

/* Matches lit byte by byte: 0, or the call's return. */
static int v1_lit(struct v1 *w, const char *lit, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++, w->at++) {
		if (w->at == w->lim)
			return v1_end(w);
		if (w->buf[w->at] != lit[i])
			return fail(w->out, -EBADMSG, why);
	}
	return 0;
}
#define LIT(w, s, why) v1_lit(w, s, sizeof(s) - 1, why)

enum { F_IP4, F_IP6, F_PORT };

static bool field_char(int kind, char c)
{
	bool dig = c >= '0' && c <= '9';
	switch (kind) {
	case F_IP4:
		return dig || c == '.';
	case F_IP6:
		return dig || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
		       c == '.';
	default:
		return dig;
	}
}

/* The longest text of each kind: "255.255.255.255", a full IPv6 address
 * with a dotted-quad tail ("ffff:" six times and 15), "65535". */
static const size_t field_max[] = {15, 45, 5};

/* Reads a field up to (not past) the byte term, checking its characters
 * and length as they come: 0 with *start and *n set, or the call's
 * return. */
static int v1_field(struct v1 *w, int kind, char term, size_t *start, size_t *n,
		    const char *why)
{
	*start = w->at;
	for (;; w->at++) {
		if (w->at == w->lim)
			return v1_end(w);
		char c = w->buf[w->at];
		if (c == term)
			break;
		if (!field_char(kind, c) || w->at - *start == field_max[kind])
			return fail(w->out, -EBADMSG, why);
	}
	*n = w->at - *start;
	return 0;
}

/* A decimal number 0..max with no leading zero, all of s[0, n). */
static bool dec(const char *s, size_t n, unsigned max, unsigned *v)
{
	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return false;
	unsigned x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (unsigned)(s[i] - '0');
	}
	*v = x;
	return x <= max;
}

/* Dotted-quad IPv4, all of s[0, n), into 4 bytes. */
static bool ip4(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part) {
			if (i == n || s[i] != '.')
				return false;
			i++;
		}
		size_t j = i;
		while (j < n && s[j] != '.')
			j++;
		unsigned v;
		if (j - i > 3 || !dec(s + i, j - i, 255, &v))
			return false;
		out[part] = (uint8_t)v;
		i = j;
	}
	return i == n;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 4291 section 2.2 IPv6 text, all of s[0, n), into 16 bytes. */
static bool ip6(const char *s, size_t n, uint8_t out[16])
{
	unsigned w[8];
	int nw = 0, gap = -1;
	size_t i = 0;
	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		gap = 0;
		i = 2;
	}
	while (i < n) {
		size_t j = i;
		unsigned v = 0;
		while (j < n && j - i < 5 && hexval(s[j]) >= 0)
			v = v << 4 | (unsigned)hexval(s[j++]);
		if (j < n && s[j] == '.') {
			/* The last 32 bits as a dotted quad, from i to the end. */
			uint8_t q[4];
			if (nw > 6 || !ip4(s + i, n - i, q))
				return false;
			w[nw++] = (unsigned)q[0] << 8 | q[1];
			w[nw++] = (unsigned)q[2] << 8 | q[3];
			break;
		}
		if (j == i || j - i > 4 || nw == 8)
			return false;
		w[nw++] = v;
		if (j == n)
			break;
		if (s[j] != ':' || ++j == n)
			return false; /* a single trailing colon */
		if (s[j] == ':') {
			if (gap >= 0)
				return false;
			gap = nw;
			j++;
		}
		i = j;
	}
	/* "::" stands for one group at least. */
	if (gap < 0 ? nw != 8 : nw > 7)
		return false;
	int k = 0;
	for (int g = 0; g < 8; g++) {
		unsigned v;
		if (gap >= 0 && g >= gap && g < gap + 8 - nw)
			v = 0;
		else
			v = w[k++];
		out[2 * g] = (uint8_t)(v >> 8);
		out[2 * g + 1] = (uint8_t)v;
	}
	return true;
}

static int parse_v1(const char *buf, size_t len, struct proxy_proto_info *out)
{
	struct v1 w = {buf, 0, len < PROXY_PROTO_V1_MAX ? len : PROXY_PROTO_V1_MAX, len, out};
	int rc;
	if ((rc = LIT(&w, "PROXY ", "not a PROXY protocol header")))
		return rc;
	if (w.at == w.lim)
		return v1_end(&w);
	int kind;
	if (buf[w.at] == 'U') {
		if ((rc = LIT(&w, "UNKNOWN", "v1: unknown protocol")))
			return rc;
		if (w.at == w.lim)
			return v1_end(&w);
		if (buf[w.at] == ' ') {
			/* The rest of the line is ignored (section 2.1). */
			for (w.at++;; w.at++) {
				if (w.at == w.lim)
					return v1_end(&w);
				char c = buf[w.at];
				if (c == '\r')
					break;
				if (c < 0x20 || c > 0x7e)
					return BAD("v1: byte other than printable ASCII after UNKNOWN");
			}
		}
		if ((rc = LIT(&w, "\r\n", "v1: UNKNOWN not followed by a space or CRLF")))
			return rc;
		out->version = 1;
		out->command = PROXY_PROTO_PROXY;
		out->transport = 0;
		memset(&out->src, 0, sizeof(out->src));
		memset(&out->dst, 0, sizeof(out->dst));
		out->tlvs = (struct proxy_proto_slice){buf + w.at, 0};
		out->why = "";
		return (int)w.at;
	}
	if ((rc = LIT(&w, "TCP", "v1: unknown protocol")))
		return rc;
	if (w.at == w.lim)
		return v1_end(&w);
	if (buf[w.at] == '4')
		kind = F_IP4;
	else if (buf[w.at] == '6')
		kind = F_IP6;
	else
		return BAD("v1: unknown protocol");
	w.at++;
	if ((rc = LIT(&w, " ", "v1: no single space after the protocol")))
		return rc;

	/* Each field: read to its terminator, decode, step over the terminator. */
	uint8_t addr[2][16];
	unsigned port[2];
	size_t s, n;
	static const char *const bad_addr[2] = {"v1: bad source address",
						"v1: bad destination address"};
	static const char *const bad_port[2] = {"v1: bad source port", "v1: bad destination port"};
	for (int i = 0; i < 2; i++) {
		if ((rc = v1_field(&w, kind, ' ', &s, &n, bad_addr[i])))
			return rc;
		if (!(kind == F_IP4 ? ip4(buf + s, n, addr[i]) : ip6(buf + s, n, addr[i])))
			return BAD(bad_addr[i]);
		w.at++;
	}
	for (int i = 0; i < 2; i++) {
		if ((rc = v1_field(&w, F_PORT, i ? '\r' : ' ', &s, &n, bad_port[i])))
			return rc;
		if (!dec(buf + s, n, 65535, &port[i]))
			return BAD(bad_port[i]);
		w.at++;
	}
	if ((rc = LIT(&w, "\n", "v1: CR not followed by LF")))
		return rc;

	out->version = 1;
	out->command = PROXY_PROTO_PROXY;
	out->transport = SOCK_STREAM;
	for (int i = 0; i < 2; i++) {
		char p[2];
		put16(p, port[i]);
		struct weft_addr *a = i ? &out->dst : &out->src;
		if (kind == F_IP4)
			set_ip4(a, (const char *)addr[i], p);
		else
			set_ip6(a, (const char *)addr[i], p);
	}
	out->tlvs = (struct proxy_proto_slice){buf + w.at, 0};
	out->why = "";
	return (int)w.at;
}

/* ---- Entry points --------------------------------------------------------------------- */

int proxy_proto_parse_max(const char *buf, size_t len, size_t max, struct proxy_proto_info *out)
{
	if (max == 0)
		max = PROXY_PROTO_MAX_DEFAULT;
	if (max > PROXY_PROTO_V2_MAX)
		max = PROXY_PROTO_V2_MAX;
	if (len == 0)
		return MORE();
	/* The first byte tells the versions apart: 'P' or CR. */
	if (buf[0] == v2sig[0])
		return parse_v2(buf, len, max, out);
	return parse_v1(buf, len, out);
}

int proxy_proto_parse(const char *buf, size_t len, struct proxy_proto_info *out)
{
	return proxy_proto_parse_max(buf, len, PROXY_PROTO_MAX_DEFAULT, out);
}
