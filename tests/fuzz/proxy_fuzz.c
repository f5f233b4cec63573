// SPDX-License-Identifier: MIT
/*
 * proxy_fuzz.c - the libFuzzer target for tools/weft-proxy/proxy_proto.c.
 * Each input is read as the first bytes of a connection from a load
 * balancer, whole and in pieces, and the parser's promises are checked:
 *  - the result is a header length or one of the documented errno values,
 *    with a reason on every error and none on success;
 *  - an accepted header is what the specification allows: a version 1 line
 *    of at most 107 bytes ending in CRLF, or a version 2 header whose
 *    length field, limit and family agree with its length; its addresses
 *    are of one family, with the length that family has; its TLV slice
 *    lies inside the header and ends where the header ends, and walks to
 *    its end; -EAGAIN comes only while the bound has not been reached;
 *  - feeding in pieces (at split points drawn from a hash of the input, and
 *    a byte at a time for short inputs), each piece an exact-size copy at
 *    a new address, gives exactly the whole input's result, so every prefix
 *    of an accepted header asks for more;
 *  - an accepted header, parsed again on its own, gives the same result;
 *  - round trip: TCP or UDP addresses that were parsed, written again as a
 *    version 1 line and as a version 2 header, parse to the same addresses;
 *    a version 2 header's TLVs, written again after them with a CRC32C
 *    added, walk to the same TLVs;
 *  - the writers, given addresses drawn from the input, write headers that
 *    parse back to them, and never write past a size too small.
 * The parser's limit also comes from the hash, so small limits are
 * exercised as well as the default.
 *
 * Built by tests/fuzz/meson.build with -fsanitize=fuzzer,address,undefined
 * and run by `./dev fuzz proxy`; replay_main.c runs the same function over
 * the seed corpus (tests/fuzz/corpus/proxy) in the ordinary test suite.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tools/weft-proxy/proxy_proto.h"

#define MAX_BYTEWISE 512 /* longer inputs are not fed a byte at a time */
#define UN_BASE offsetof(struct sockaddr_un, sun_path)

static uint16_t be16(const char *p)
{
	return (uint16_t)((uint8_t)p[0] << 8 | (uint8_t)p[1]);
}

/* An exact-size copy, so that a read past the bytes given is an ASan
 * error, at an address of its own. */
static char *copy_of(const void *d, size_t n)
{
	char *c = malloc(n ? n : 1);
	CHECK(c);
	if (n)
		memcpy(c, d, n);
	return c;
}

/* A parse result in terms of offsets, so results of two buffers compare. */
struct result {
	int rc;
	const char *why;
	int version, command, transport;
	struct weft_addr src, dst;
	size_t tlv_off, tlv_len;
};

static void collect(struct result *r, int rc, const struct proxy_proto_info *info,
		    const char *base)
{
	memset(r, 0, sizeof(*r));
	r->rc = rc;
	r->why = info->why;
	if (rc <= 0)
		return;
	r->version = info->version;
	r->command = info->command;
	r->transport = info->transport;
	r->src = info->src;
	r->dst = info->dst;
	r->tlv_off = (size_t)(info->tlvs.ptr - base);
	r->tlv_len = info->tlvs.len;
}

static bool same(const struct result *a, const struct result *b)
{
	if (a->rc == b->rc && strcmp(a->why, b->why) == 0 && a->version == b->version &&
	    a->command == b->command && a->transport == b->transport &&
	    memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
	    memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0 && a->tlv_off == b->tlv_off &&
	    a->tlv_len == b->tlv_len)
		return true;
	fprintf(stderr, "proxy_fuzz: results differ: rc %d/%d why \"%s\"/\"%s\" tlvs %zu+%zu/%zu+%zu\n",
		a->rc, b->rc, a->why, b->why, a->tlv_off, a->tlv_len, b->tlv_off, b->tlv_len);
	return false;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Checks one address of an accepted header. */
static void check_addr(const struct weft_addr *a, int transport)
{
	switch (a->sa.sa_family) {
	case AF_UNSPEC:
		CHECK(a->len == 0 && all_zero(a, sizeof(*a)));
		CHECK(transport == 0);
		break;
	case AF_INET:
		CHECK(a->len == sizeof(struct sockaddr_in));
		CHECK(all_zero(&a->in.sin_zero, sizeof(a->in.sin_zero)));
		CHECK(transport == SOCK_STREAM || transport == SOCK_DGRAM);
		break;
	case AF_INET6:
		CHECK(a->len == sizeof(struct sockaddr_in6));
		CHECK(a->in6.sin6_flowinfo == 0 && a->in6.sin6_scope_id == 0);
		CHECK(transport == SOCK_STREAM || transport == SOCK_DGRAM);
		break;
	case AF_UNIX: {
		CHECK(a->len >= UN_BASE && a->len <= UN_BASE + 108);
		size_t n = a->len - UN_BASE;
		/* Nothing is kept past what len counts. */
		CHECK(all_zero(a->un.sun_path + n, sizeof(a->un.sun_path) - n));
		if (n > 0 && a->un.sun_path[0])
			CHECK(strnlen(a->un.sun_path, n) >= n - 1); /* a path, its NUL */
		else if (n > 0)
			CHECK(a->un.sun_path[n - 1] != 0); /* abstract, padding dropped */
		CHECK(transport == SOCK_STREAM || transport == SOCK_DGRAM);
		break;
	}
	default:
		CHECK(!"an address of another family");
	}
}

/* Checks what a single parse call promised. */
static void check(int rc, const struct proxy_proto_info *info, const char *buf, size_t n,
		  size_t max)
{
	CHECK(info->why);
	if (rc <= 0) {
		CHECK(rc == -EAGAIN || rc == -EBADMSG || rc == -EPROTONOSUPPORT ||
		      rc == -EMSGSIZE);
		CHECK(info->why[0]);
		if (rc == -EAGAIN) {
			/* A verdict comes by the bound: 107 bytes, or the limit. */
			if (n > 0 && buf[0] == 'P')
				CHECK(n < PROXY_PROTO_V1_MAX);
			if (n > 0 && buf[0] == '\r')
				CHECK(n < (max > 16 ? max : 16));
		}
		if (rc == -EPROTONOSUPPORT || rc == -EMSGSIZE)
			CHECK(n >= 13 && memcmp(buf, PROXY_PROTO_V2_SIG, 12) == 0);
		return;
	}
	CHECK(info->why[0] == 0);
	CHECK((size_t)rc <= n);
	const char *end = buf + rc;
	if (info->version == 1) {
		CHECK(rc <= (int)PROXY_PROTO_V1_MAX);
		CHECK(rc >= 15 && memcmp(buf, "PROXY ", 6) == 0);
		CHECK(end[-2] == '\r' && end[-1] == '\n');
		CHECK(memchr(buf, '\n', (size_t)rc - 1) == NULL);
		CHECK(memchr(buf, '\r', (size_t)rc - 2) == NULL);
		CHECK(info->command == PROXY_PROTO_PROXY);
		CHECK(info->tlvs.len == 0);
	} else {
		CHECK(info->version == 2);
		CHECK(rc >= 16 && memcmp(buf, PROXY_PROTO_V2_SIG, 12) == 0);
		CHECK((uint8_t)buf[12] >> 4 == 2);
		CHECK((size_t)rc == 16u + be16(buf + 14));
		CHECK((size_t)rc <= max);
		CHECK(info->command == PROXY_PROTO_LOCAL || info->command == PROXY_PROTO_PROXY);
		CHECK(info->command == ((uint8_t)buf[12] & 0xf));
		CHECK(info->tlvs.ptr >= buf + 16);
		/* The TLVs are whole, and a CRC32C among them is right. */
		struct proxy_proto_slice rest = info->tlvs;
		struct proxy_proto_tlv t;
		int r;
		while ((r = proxy_proto_tlv_next(&rest, &t)) > 0) {
			CHECK(t.value.ptr >= info->tlvs.ptr && t.value.ptr + t.value.len <= end);
			if (t.type == PROXY_PROTO_TLV_CRC32C) {
				CHECK(t.value.len == 4);
				char *z = copy_of(buf, (size_t)rc);
				memset(z + (t.value.ptr - buf), 0, 4);
				uint32_t crc = proxy_proto_crc32c(z, (size_t)rc);
				free(z);
				const uint8_t *v = (const uint8_t *)t.value.ptr;
				CHECK(crc == ((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
					      (uint32_t)v[2] << 8 | v[3]));
			}
		}
		CHECK(r == 0 && rest.len == 0);
	}
	/* The TLV slice ends where the header ends (empty in version 1). */
	CHECK(info->tlvs.ptr + info->tlvs.len == end);
	CHECK(info->src.sa.sa_family == info->dst.sa.sa_family);
	CHECK((info->src.sa.sa_family == AF_UNSPEC) == (info->transport == 0));
	if (info->command == PROXY_PROTO_LOCAL)
		CHECK(info->src.sa.sa_family == AF_UNSPEC);
	check_addr(&info->src, info->transport);
	check_addr(&info->dst, info->transport);
}

static int parse_copy(const void *d, size_t n, size_t max, struct result *r)
{
	char *c = copy_of(d, n);
	struct proxy_proto_info info;
	memset(&info, 0xa5, sizeof(info));
	int rc = proxy_proto_parse_max(c, n, max, &info);
	check(rc, &info, c, n, max);
	collect(r, rc, &info, c);
	free(c);
	return rc;
}

/* Parses d[0, n) whole, again on its own if accepted, and in pieces, and
 * checks that all agree.  Returns the whole result. */
static int parse_everyway(const uint8_t *d, size_t n, size_t max, struct result *whole,
			  struct proxy_proto_info *info)
{
	const char *buf = (const char *)d;
	int rc = proxy_proto_parse_max(buf, n, max, info);
	check(rc, info, buf, n, max);
	collect(whole, rc, info, buf);

	if (rc > 0) {
		struct result again;
		parse_copy(d, (size_t)rc, max, &again);
		CHECK(same(whole, &again));
	}
	for (int mode = 0; mode < 2; mode++) {
		if (mode == 1 && n > MAX_BYTEWISE)
			break;
		size_t at = 0;
		for (;;) {
			size_t step = mode == 1 ? 1 : (size_t)(next() % (n / 2 + 2));
			at = at + step < n ? at + step : n;
			struct result piece;
			int r = parse_copy(d, at, max, &piece);
			if (r != -EAGAIN || at == n) {
				CHECK(same(whole, &piece));
				break;
			}
		}
	}
	return rc;
}

/* Parses a header the writers made: it must be accepted whole. */
static void parse_written(const char *h, size_t n, struct proxy_proto_info *info)
{
	int rc = proxy_proto_parse_max(h, n, PROXY_PROTO_V2_MAX, info);
	check(rc, info, h, n, PROXY_PROTO_V2_MAX);
	CHECK(rc > 0 && (size_t)rc == n);
}

static bool inet(const struct weft_addr *a)
{
	return a->sa.sa_family == AF_INET || a->sa.sa_family == AF_INET6;
}

/* Writes src and dst as version 1 and 2 headers, checks that they parse
 * back to them (or to UNKNOWN/LOCAL when they cannot be said), and that a
 * size too small is refused without a byte written. */
static void write_and_reparse(const struct weft_addr *src, const struct weft_addr *dst)
{
	bool sayable = inet(src) && inet(dst) && src->sa.sa_family == dst->sa.sa_family &&
		       src->len == dst->len;
	char buf[PROXY_PROTO_ENCODE_MAX + 8];
	for (int version = 1; version <= 2; version++) {
		ssize_t n = version == 1 ? proxy_proto_v1(buf, PROXY_PROTO_ENCODE_MAX, src, dst)
					 : proxy_proto_v2(buf, PROXY_PROTO_ENCODE_MAX, src, dst);
		CHECK(n > 0 && n <= (ssize_t)PROXY_PROTO_ENCODE_MAX);
		struct proxy_proto_info info;
		parse_written(buf, (size_t)n, &info);
		CHECK(info.version == version);
		if (sayable) {
			CHECK(info.command == PROXY_PROTO_PROXY && info.transport == SOCK_STREAM);
			/* Flow label and scope are not carried. */
			struct weft_addr s = *src, d = *dst;
			if (s.sa.sa_family == AF_INET6) {
				s.in6.sin6_flowinfo = d.in6.sin6_flowinfo = 0;
				s.in6.sin6_scope_id = d.in6.sin6_scope_id = 0;
			}
			CHECK(memcmp(&info.src, &s, sizeof(s)) == 0);
			CHECK(memcmp(&info.dst, &d, sizeof(d)) == 0);
		} else {
			CHECK(info.src.sa.sa_family == AF_UNSPEC);
			CHECK(info.command == (version == 1 ? PROXY_PROTO_PROXY : PROXY_PROTO_LOCAL));
		}
		/* Too small a size: -ENOSPC, nothing written. */
		size_t small = (size_t)(next() % (uint64_t)n);
		char canary[sizeof(buf)];
		memset(buf, 0x5c, sizeof(buf));
		memcpy(canary, buf, sizeof(buf));
		ssize_t r = version == 1 ? proxy_proto_v1(buf, small, src, dst)
					 : proxy_proto_v2(buf, small, src, dst);
		CHECK(r == -ENOSPC);
		CHECK(memcmp(buf, canary, sizeof(buf)) == 0);
	}
}

/* An accepted header, written again: its addresses (TCP and UDP alike,
 * written as TCP), and for version 2 its TLVs with a fresh CRC32C. */
static void round_trip(const struct proxy_proto_info *got)
{
	if (inet(&got->src))
		write_and_reparse(&got->src, &got->dst);
	if (got->version != 2)
		return;

	static char h[PROXY_PROTO_V2_MAX];
	ssize_t n = proxy_proto_v2(h, sizeof(h), &got->src, &got->dst);
	CHECK(n > 0);
	struct proxy_proto_slice rest = got->tlvs;
	struct proxy_proto_tlv t;
	size_t count = 0;
	while (proxy_proto_tlv_next(&rest, &t) > 0) {
		if (t.type == PROXY_PROTO_TLV_CRC32C)
			continue;
		n = proxy_proto_v2_add_tlv(h, sizeof(h), (size_t)n, t.type, t.value.ptr, t.value.len);
		/* The original fit, and the addresses written are no longer. */
		CHECK(n > 0);
		count++;
	}
	ssize_t with_crc = proxy_proto_v2_add_crc32c(h, sizeof(h), (size_t)n);
	CHECK(with_crc > 0 || with_crc == -EMSGSIZE);
	if (with_crc > 0)
		n = with_crc;
	struct proxy_proto_info again;
	parse_written(h, (size_t)n, &again);
	/* The same TLVs in the same order, the CRC32C last. */
	struct proxy_proto_slice a = got->tlvs, b = again.tlvs;
	struct proxy_proto_tlv ta, tb;
	for (size_t i = 0; i < count; i++) {
		do
			CHECK(proxy_proto_tlv_next(&a, &ta) == 1);
		while (ta.type == PROXY_PROTO_TLV_CRC32C);
		CHECK(proxy_proto_tlv_next(&b, &tb) == 1);
		CHECK(ta.type == tb.type && ta.value.len == tb.value.len);
		CHECK(ta.value.len == 0 || memcmp(ta.value.ptr, tb.value.ptr, ta.value.len) == 0);
	}
	if (with_crc > 0) {
		CHECK(proxy_proto_tlv_next(&b, &tb) == 1 && tb.type == PROXY_PROTO_TLV_CRC32C);
		/* A second one is refused, h untouched. */
		CHECK(proxy_proto_v2_add_crc32c(h, sizeof(h), (size_t)n) == -EINVAL);
	}
	CHECK(proxy_proto_tlv_next(&b, &tb) == 0);
}

/* Addresses drawn from the input's hash: IPv4 or IPv6 (random bytes,
 * ports, sometimes a scope), now and then unix or none. */
static void draw_addr(struct weft_addr *a)
{
	memset(a, 0, sizeof(*a));
	uint64_t r = next();
	switch (r % 8) {
	case 0:
		return; /* no address */
	case 1:
		a->un.sun_family = AF_UNIX;
		memcpy(a->un.sun_path, "/run/p.sock", 12);
		a->len = (socklen_t)(UN_BASE + 12);
		return;
	case 2:
	case 3:
	case 4: {
		a->in.sin_family = AF_INET;
		uint32_t ip = (uint32_t)next();
		memcpy(&a->in.sin_addr, &ip, 4);
		a->in.sin_port = (uint16_t)(r >> 16);
		a->len = sizeof(a->in);
		return;
	}
	default: {
		a->in6.sin6_family = AF_INET6;
		uint64_t w[2] = {next(), next()};
		/* Runs of zero groups, to exercise "::". */
		uint8_t *b = (uint8_t *)&a->in6.sin6_addr;
		memcpy(b, w, 16);
		unsigned zs = (unsigned)(r >> 8) % 8, zl = (unsigned)(r >> 12) % 9;
		for (unsigned g = zs; g < zs + zl && g < 8; g++)
			b[2 * g] = b[2 * g + 1] = 0;
		a->in6.sin6_port = (uint16_t)(r >> 16);
		if (r & (1u << 20))
			a->in6.sin6_scope_id = (uint32_t)(r >> 32);
		a->len = sizeof(a->in6);
		return;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* libFuzzer may pass NULL for the empty input; keep pointer
	 * arithmetic on it defined. */
	static const uint8_t empty[1];
	if (size == 0)
		data = empty;
	rng = hash(data, size);

	/* Mostly the default limit; sometimes a small one, or the largest. */
	uint64_t r = next();
	size_t max = PROXY_PROTO_MAX_DEFAULT;
	if (r % 4 == 0)
		max = 1 + (size_t)(next() % 300);
	else if (r % 4 == 1)
		max = PROXY_PROTO_V2_MAX;

	struct result whole;
	struct proxy_proto_info info;
	int rc = parse_everyway(data, size, max, &whole, &info);
	if (rc > 0)
		round_trip(&info);

	struct weft_addr src, dst;
	draw_addr(&src);
	dst = src; /* the same family, mostly */
	if (next() % 4 == 0)
		draw_addr(&dst);
	else if (inet(&dst))
		dst.in.sin_port ^= 0x1234; /* sin6_port lies at the same offset */
	write_and_reparse(&src, &dst);
	return 0;
}
