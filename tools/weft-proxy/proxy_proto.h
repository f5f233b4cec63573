// SPDX-License-Identifier: MIT
/*
 * proxy_proto.h - the PROXY protocol, versions 1 (text) and 2 (binary), as
 * HAProxy's proxy-protocol.txt (2020/03/05) specifies it: weft-proxy writes
 * a header in front of each connection it opens to a backend, and reads one
 * from a load balancer in front of it.  proxy_proto.c implements it and
 * lists what is rejected; tests/proxy/proxy_proto_test.cc and
 * tests/fuzz/proxy_fuzz.c check it.
 *
 * Nothing here allocates, blocks or touches the runtime: encoders write
 * into the caller's buffer, and the parser works on the caller's bytes and
 * hands back a slice of them.  Every int/ssize_t return is >= 0 on success
 * or a negative errno; errno is never set.  Any thread.
 *
 * Reading a header from a stream that may arrive in pieces:
 *
 *	n = proxy_proto_parse(buf, len, &info);
 *	n > 0:        buf[0, n) is the header: use info, drop n bytes, relay
 *	              the rest (the client's first bytes may follow at once);
 *	-EAGAIN:      nothing wrong so far: receive more, append, call again
 *	              with the longer buffer (it may move; nothing points into
 *	              it between calls);
 *	other errors: not a valid header: log info.why and close.
 *
 * The parser keeps no state: each call reads from buf[0].  It reads only
 * up to the end of the header, and rejects as soon as the bytes it has
 * cannot begin a valid header, so a peer that speaks something else is
 * turned away on its first byte.  A verdict never takes more than
 * PROXY_PROTO_V1_MAX bytes (version 1) or the limit (version 2).
 */
#ifndef WEFT_PROXY_PROXY_PROTO_H
#define WEFT_PROXY_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weft/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest version 1 line, CRLF included ("PROXY UNKNOWN" and two
 * full-length IPv6 addresses and ports). */
#define PROXY_PROTO_V1_MAX 107u
/* Version 2: the fixed part, and the longest header the format allows. */
#define PROXY_PROTO_V2_HEAD 16u
#define PROXY_PROTO_V2_MAX (16u + 65535u)
/* The longest version 2 header proxy_proto_parse accepts: addresses and a
 * few hundred bytes of TLVs (TLS details, a unique ID, cloud endpoint IDs)
 * fit many times over. */
#define PROXY_PROTO_MAX_DEFAULT 4096u
/* Room for any header proxy_proto_v1 or proxy_proto_v2 writes (the IPv6
 * version 2 header, 52 bytes, is the longest). */
#define PROXY_PROTO_ENCODE_MAX PROXY_PROTO_V1_MAX

/* The 12 bytes that open a version 2 header; it holds a NUL. */
#define PROXY_PROTO_V2_SIG "\r\n\r\n\0\r\nQUIT\n"

/* proxy_proto_info.command */
enum proxy_proto_command {
	/* A connection the sender made on its own (a health check): use the
	 * real endpoints.  Version 2 only. */
	PROXY_PROTO_LOCAL = 0,
	/* A relayed connection: the addresses, when given, are the client's
	 * and the one it connected to. */
	PROXY_PROTO_PROXY = 1,
};

/* Registered version 2 TLV types (section 2.2 of the specification). */
enum {
	PROXY_PROTO_TLV_ALPN = 0x01,
	PROXY_PROTO_TLV_AUTHORITY = 0x02,
	PROXY_PROTO_TLV_CRC32C = 0x03,
	PROXY_PROTO_TLV_NOOP = 0x04,
	PROXY_PROTO_TLV_UNIQUE_ID = 0x05,
	PROXY_PROTO_TLV_SSL = 0x20,
	PROXY_PROTO_TLV_SSL_VERSION = 0x21,
	PROXY_PROTO_TLV_SSL_CN = 0x22,
	PROXY_PROTO_TLV_SSL_CIPHER = 0x23,
	PROXY_PROTO_TLV_SSL_SIG_ALG = 0x24,
	PROXY_PROTO_TLV_SSL_KEY_ALG = 0x25,
	PROXY_PROTO_TLV_NETNS = 0x30,
};

/* The longest UNIQUE_ID value the specification allows. */
#define PROXY_PROTO_UNIQUE_ID_MAX 128u

/* Bytes of the caller's buffer; never NUL-terminated. */
struct proxy_proto_slice {
	const char *ptr;
	size_t len;
};

/* A parsed header.  Every field is set when proxy_proto_parse returns > 0;
 * on any other return only why is. */
struct proxy_proto_info {
	int version;				/* 1 or 2 */
	enum proxy_proto_command command;	/* always PROXY in version 1 */
	/* SOCK_STREAM (TCP4, TCP6, version 2 STREAM), SOCK_DGRAM (version 2
	 * DGRAM), or 0 (UNKNOWN, UNSPEC, LOCAL). */
	int transport;
	/*
	 * The client's address and the one it connected to: AF_INET or
	 * AF_INET6 with their ports, or AF_UNIX (version 2; the path's NUL
	 * counted in len as getsockname(2) does; an abstract name's trailing
	 * NULs dropped, since the format pads with them).  AF_UNSPEC with len
	 * 0 for LOCAL, version 1 UNKNOWN and version 2 UNSPEC: use the real
	 * connection's endpoints then.  Unused bytes are zero, so two results
	 * compare with memcmp.
	 */
	struct weft_addr src, dst;
	/* Version 2: the TLVs after the addresses, well-formed (walk them with
	 * proxy_proto_tlv_next); empty in version 1.  Points into the parsed
	 * buffer and always ends where the header ends. */
	struct proxy_proto_slice tlvs;
	/* "" after a success; else a short constant phrase for a log line. */
	const char *why;
};

/* ---- Writing (to backends) ------------------------------------------------ */

/*
 * Writes the version 1 line for a TCP connection from src to dst into buf
 * ("PROXY TCP4 a b p q\r\n" or TCP6, IPv6 in RFC 5952 form: lowercase, the
 * longest run of zero groups shortened to "::", no dotted quad; IPv6 scope
 * IDs cannot be carried and are dropped).  When src or dst is NULL, not
 * IPv4 or IPv6 (unix, len 0), or the two families differ, writes "PROXY
 * UNKNOWN\r\n": the backend then uses the real endpoints.  No NUL is
 * written.  Returns the length (at most PROXY_PROTO_V1_MAX), or -ENOSPC
 * when size is too small, buf then untouched.
 */
ssize_t proxy_proto_v1(char *buf, size_t size, const struct weft_addr *src,
		       const struct weft_addr *dst);

/*
 * Writes the version 2 header for a TCP connection from src to dst into
 * buf: PROXY, TCP over IPv4 (28 bytes) or IPv6 (52 bytes), no TLVs.  In
 * the cases where proxy_proto_v1 writes UNKNOWN, writes what
 * proxy_proto_v2_local does (the specification's UNSPEC family, with the
 * LOCAL command that a receiver must accept).  Returns the length, or
 * -ENOSPC when size is too small, buf then untouched.
 */
ssize_t proxy_proto_v2(char *buf, size_t size, const struct weft_addr *src,
		       const struct weft_addr *dst);

/* The 16-byte version 2 LOCAL header with the UNSPEC family and no
 * addresses, for health checks: returns 16, or -ENOSPC. */
ssize_t proxy_proto_v2_local(char *buf, size_t size);

/*
 * Appends a TLV of type with value[0, vlen) to the version 2 header
 * buf[0, len) (from proxy_proto_v2 or proxy_proto_v2_local, maybe with
 * TLVs already), and updates its length field.  Returns the new length;
 * -ENOSPC when it does not fit in size; -EMSGSIZE when the header would
 * pass PROXY_PROTO_V2_MAX; -EINVAL when buf[0, len) is not a version 2
 * header whose length field says len, or type is CRC32C (use
 * proxy_proto_v2_add_crc32c).  On error buf is untouched.
 */
ssize_t proxy_proto_v2_add_tlv(char *buf, size_t size, size_t len, uint8_t type,
			       const void *value, size_t vlen);

/*
 * Appends the CRC32C TLV to the version 2 header buf[0, len) and fills it
 * with the checksum of the whole header, as section 2.2.3 says (computed
 * with the value zero, stored big-endian).  Add it last: any byte changed
 * afterwards breaks it.  Returns the new length, or -ENOSPC, -EMSGSIZE,
 * -EINVAL as proxy_proto_v2_add_tlv (also -EINVAL when the header's TLVs
 * are malformed or hold a CRC32C already).  On error buf is untouched.
 */
ssize_t proxy_proto_v2_add_crc32c(char *buf, size_t size, size_t len);

/* CRC32C (Castagnoli, RFC 4960 appendix B) of p[0, n): of "123456789" it
 * is 0xe3069283.  No failure path. */
uint32_t proxy_proto_crc32c(const void *p, size_t n);

/* ---- Reading (from a load balancer) ----------------------------------------- */

/*
 * Parses the PROXY protocol header, version 1 or 2, at the start of
 * buf[0, len), as the file comment shows.  Returns its length n > 0, with
 * *out filled and out->tlvs pointing into buf; or:
 *  -EAGAIN           buf is a proper prefix of a header that may still turn
 *                    out valid (len 0 included): call again with more;
 *  -EBADMSG          not a header, or a malformed one (proxy_proto.c lists
 *                    every rule): out->why says which;
 *  -EPROTONOSUPPORT  a version 2 signature with a version other than 2;
 *  -EMSGSIZE         a version 2 header longer than PROXY_PROTO_MAX_DEFAULT.
 * A verdict comes by PROXY_PROTO_V1_MAX bytes for version 1 and by the
 * header's end for version 2, and the same bytes give the same verdict
 * however they were split.
 */
int proxy_proto_parse(const char *buf, size_t len, struct proxy_proto_info *out);

/* proxy_proto_parse with max in place of PROXY_PROTO_MAX_DEFAULT as the
 * longest version 2 header accepted (0: the default; above
 * PROXY_PROTO_V2_MAX: that).  Version 1 is bounded by the specification. */
int proxy_proto_parse_max(const char *buf, size_t len, size_t max,
			  struct proxy_proto_info *out);

/* One TLV: its type and value, a slice of the walked block. */
struct proxy_proto_tlv {
	uint8_t type;
	struct proxy_proto_slice value;
};

/*
 * Takes the first TLV off *rest (a parsed header's tlvs, or the sub-TLVs
 * after the 5 fixed bytes of an SSL TLV's value) into *tlv.  Returns 1
 * with *rest advanced past it, 0 when *rest is empty, or -EBADMSG when
 * *rest starts with a partial TLV (never within what proxy_proto_parse
 * accepted), *rest then unchanged.
 */
int proxy_proto_tlv_next(struct proxy_proto_slice *rest, struct proxy_proto_tlv *tlv);

#ifdef __cplusplus
}
#endif

#endif
