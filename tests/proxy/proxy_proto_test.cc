// SPDX-License-Identifier: MIT
/*
 * proxy_proto_test.cc - the PROXY protocol of tools/weft-proxy/proxy_proto.c.
 * Properties covered:
 *  - the writers produce, byte for byte, the version 1 lines and version 2
 *    headers of HAProxy's proxy-protocol.txt, built here by hand from its
 *    sections 2.1 and 2.2: TCP4, TCP6 (RFC 5952 text), UNKNOWN, LOCAL,
 *    TLVs and the CRC32C TLV; they never write past the size they are given;
 *  - CRC32C matches the published check values (RFC 3720 B.4);
 *  - what the writers produce parses back to the same addresses;
 *  - valid headers of every family (UDP and unix too) parse into the
 *    expected addresses, command, transport and TLV slice, and only the
 *    header's bytes are taken, not the payload after it;
 *  - each rejection rule of proxy_proto.c's header comment has a case,
 *    rejected with its errno and reason, and as early as the bytes allow;
 *  - feeding a header in two pieces at every split point, or a byte at a
 *    time, from a fresh copy each time, gives exactly the result of feeding
 *    it whole; every proper prefix of a valid header is -EAGAIN;
 *  - the limits hold at their boundaries: 107 bytes for version 1, the
 *    caller's maximum for version 2, 128 bytes for a UNIQUE_ID.
 */
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <string>
#include <vector>

#include "tools/weft-proxy/proxy_proto.h"

namespace {

using std::string;

/* ---- Helpers ---------------------------------------------------------------- */

string B(std::initializer_list<int> bytes)
{
	string s;
	for (int b : bytes)
		s.push_back((char)b);
	return s;
}

const string kSig = B({0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a});

weft_addr ip4(const char *ip, uint16_t port)
{
	weft_addr a;
	memset(&a, 0, sizeof(a));
	a.in.sin_family = AF_INET;
	EXPECT_EQ(inet_pton(AF_INET, ip, &a.in.sin_addr), 1) << ip;
	a.in.sin_port = htons(port);
	a.len = sizeof(a.in);
	return a;
}

weft_addr ip6(const char *ip, uint16_t port)
{
	weft_addr a;
	memset(&a, 0, sizeof(a));
	a.in6.sin6_family = AF_INET6;
	EXPECT_EQ(inet_pton(AF_INET6, ip, &a.in6.sin6_addr), 1) << ip;
	a.in6.sin6_port = htons(port);
	a.len = sizeof(a.in6);
	return a;
}

weft_addr unix_path(const char *path)
{
	weft_addr a;
	memset(&a, 0, sizeof(a));
	a.un.sun_family = AF_UNIX;
	strcpy(a.un.sun_path, path);
	a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	return a;
}

uint16_t get_be16(const char *p)
{
	return (uint16_t)((uint8_t)p[0] << 8 | (uint8_t)p[1]);
}

string addr_bytes(const weft_addr &a)
{
	return string((const char *)&a, sizeof(a));
}

bool same_addr(const weft_addr &a, const weft_addr &b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

string v1(const weft_addr *src, const weft_addr *dst)
{
	char buf[PROXY_PROTO_ENCODE_MAX];
	ssize_t n = proxy_proto_v1(buf, sizeof(buf), src, dst);
	EXPECT_GT(n, 0);
	return n > 0 ? string(buf, (size_t)n) : string();
}

string v2(const weft_addr *src, const weft_addr *dst)
{
	char buf[PROXY_PROTO_ENCODE_MAX];
	ssize_t n = proxy_proto_v2(buf, sizeof(buf), src, dst);
	EXPECT_GT(n, 0);
	return n > 0 ? string(buf, (size_t)n) : string();
}

/* The fixed 16 bytes of a version 2 header. */
string v2head(int ver_cmd, int fam, size_t body)
{
	return kSig + B({ver_cmd, fam, (int)(body >> 8), (int)(body & 0xff)});
}

string tlv(int type, const string &value)
{
	return B({type, (int)(value.size() >> 8), (int)(value.size() & 0xff)}) + value;
}

/* A parse result with the TLV slice as an offset, so results of different
 * buffers compare. */
struct Result {
	int rc = 0;
	string why;
	int version = 0, command = -1, transport = -1;
	string src, dst;
	size_t tlv_off = 0, tlv_len = 0;

	bool operator==(const Result &o) const
	{
		return rc == o.rc && why == o.why && version == o.version &&
		       command == o.command && transport == o.transport && src == o.src &&
		       dst == o.dst && tlv_off == o.tlv_off && tlv_len == o.tlv_len;
	}
};

std::ostream &operator<<(std::ostream &os, const Result &r)
{
	return os << "rc=" << r.rc << " why=\"" << r.why << "\" version=" << r.version
		  << " command=" << r.command << " transport=" << r.transport
		  << " tlvs=" << r.tlv_off << "+" << r.tlv_len;
}

Result collect(int rc, const proxy_proto_info &info, const char *base)
{
	Result r;
	r.rc = rc;
	r.why = info.why ? info.why : "(null)";
	if (rc <= 0)
		return r;
	r.version = info.version;
	r.command = info.command;
	r.transport = info.transport;
	r.src = addr_bytes(info.src);
	r.dst = addr_bytes(info.dst);
	r.tlv_off = (size_t)(info.tlvs.ptr - base);
	r.tlv_len = info.tlvs.len;
	return r;
}

Result parse(const string &msg, size_t max = 0)
{
	/* An exact-size heap copy, so a read past the end is a sanitizer error. */
	std::vector<char> copy(msg.begin(), msg.end());
	proxy_proto_info info;
	memset(&info, 0xa5, sizeof(info));
	info.why = nullptr;
	int rc = proxy_proto_parse_max(copy.data(), copy.size(), max, &info);
	return collect(rc, info, copy.data());
}

/* Feeds msg in pieces ending at each of cuts (then whole), each time from a
 * fresh copy at a new address, until a call does not ask for more.
 * Returns that call's result. */
Result parse_pieces(const string &msg, const std::vector<size_t> &cuts, size_t max = 0)
{
	std::vector<size_t> ends = cuts;
	ends.push_back(msg.size());
	for (size_t end : ends) {
		std::vector<char> copy(msg.begin(), msg.begin() + (ptrdiff_t)end);
		proxy_proto_info info;
		memset(&info, 0x5a, sizeof(info));
		info.why = nullptr;
		int rc = proxy_proto_parse_max(copy.data(), end, max, &info);
		if (rc != -EAGAIN || end == msg.size())
			return collect(rc, info, copy.data());
	}
	return Result{};
}

/* Every two-piece split and the byte-at-a-time feed agree with the whole. */
void expect_split_invariant(const string &msg, size_t max = 0)
{
	Result whole = parse(msg, max);
	for (size_t cut = 0; cut <= msg.size(); cut++)
		ASSERT_EQ(parse_pieces(msg, {cut}, max), whole) << "cut at " << cut;
	std::vector<size_t> bytewise;
	for (size_t i = 0; i < msg.size(); i++)
		bytewise.push_back(i);
	ASSERT_EQ(parse_pieces(msg, bytewise, max), whole) << "byte at a time";
}

/* Every proper prefix of a valid header asks for more. */
void expect_prefixes_need_more(const string &hdr)
{
	for (size_t n = 0; n < hdr.size(); n++)
		ASSERT_EQ(parse(hdr.substr(0, n)).rc, -EAGAIN) << "prefix of " << n;
}

/* ---- Writing version 1 ------------------------------------------------------------ */

TEST(ProxyProtoV1, Ipv4LineIsTheSpecsExample)
{
	weft_addr src = ip4("192.168.0.1", 56324), dst = ip4("192.168.0.11", 443);
	/* Section 2.1's example line. */
	EXPECT_EQ(v1(&src, &dst), "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	weft_addr lo = ip4("0.0.0.0", 0), hi = ip4("255.255.255.255", 65535);
	string line = v1(&hi, &hi);
	EXPECT_EQ(line, "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
	EXPECT_EQ(line.size(), 56u); /* the section's longest TCP4 line */
	EXPECT_EQ(v1(&lo, &lo), "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n");
}

TEST(ProxyProtoV1, Ipv6LineIsRfc5952Text)
{
	weft_addr src = ip6("2001:db8::1", 56324), dst = ip6("2001:db8::2", 443);
	EXPECT_EQ(v1(&src, &dst), "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n");

	struct {
		const char *in, *out;
	} forms[] = {
		{"::", "::"},
		{"::1", "::1"},
		{"1::", "1::"},
		{"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"}, /* one zero group stays */
		{"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},	  /* the longest run */
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},	  /* the first of equals */
		{"::ffff:192.0.2.1", "::ffff:c000:201"},	  /* no dotted quad */
		{"FE80:0000:0000:0000:0202:B3FF:FE1E:8329", "fe80::202:b3ff:fe1e:8329"},
		{"1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"},
		{"0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"},
	};
	for (auto &f : forms) {
		weft_addr a = ip6(f.in, 1);
		EXPECT_EQ(v1(&a, &a), string("PROXY TCP6 ") + f.out + " " + f.out + " 1 1\r\n")
			<< f.in;
	}

	/* The section's longest TCP6 line: 104 bytes. */
	weft_addr full = ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	string line = v1(&full, &full);
	EXPECT_EQ(line, "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
	EXPECT_EQ(line.size(), 104u);
}

TEST(ProxyProtoV1, UnknownWhenTheAddressesCannotBeSaid)
{
	weft_addr a4 = ip4("10.0.0.1", 1), a6 = ip6("::1", 2), un = unix_path("/run/x.sock");
	weft_addr none;
	memset(&none, 0, sizeof(none));
	weft_addr short4 = a4;
	short4.len = sizeof(struct sockaddr_in) - 1;
	const string unknown = "PROXY UNKNOWN\r\n";
	EXPECT_EQ(v1(&un, &un), unknown);
	EXPECT_EQ(v1(&a4, &a6), unknown);
	EXPECT_EQ(v1(&a6, &a4), unknown);
	EXPECT_EQ(v1(nullptr, &a4), unknown);
	EXPECT_EQ(v1(&a4, nullptr), unknown);
	EXPECT_EQ(v1(&none, &none), unknown);
	EXPECT_EQ(v1(&short4, &a4), unknown);
	EXPECT_EQ(unknown.size(), 15u); /* the section's short form */
}

TEST(ProxyProtoV1, NeverWritesPastSize)
{
	weft_addr full = ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	string want = v1(&full, &full);
	for (size_t size = 0; size < want.size(); size++) {
		string buf(want.size() + 8, '#');
		EXPECT_EQ(proxy_proto_v1(&buf[0], size, &full, &full), -ENOSPC) << size;
		EXPECT_EQ(buf, string(want.size() + 8, '#')) << "touched at size " << size;
	}
	string buf(want.size() + 8, '#');
	EXPECT_EQ(proxy_proto_v1(&buf[0], want.size(), &full, &full), (ssize_t)want.size());
	EXPECT_EQ(buf, want + string(8, '#'));
}

/* ---- Writing version 2 ------------------------------------------------------------ */

TEST(ProxyProtoV2, Ipv4HeaderByteExact)
{
	weft_addr src = ip4("192.168.0.1", 56324), dst = ip4("192.168.0.11", 443);
	/* Signature, version 2 + PROXY, TCP over IPv4, 12 bytes: source and
	 * destination addresses, then ports, all big-endian. */
	string want = kSig + B({0x21, 0x11, 0x00, 0x0c,		   //
				 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0x0b, //
				 0xdc, 0x04, 0x01, 0xbb});
	EXPECT_EQ(v2(&src, &dst), want);
	EXPECT_EQ(want.size(), 28u);
}

TEST(ProxyProtoV2, Ipv6HeaderByteExact)
{
	weft_addr src = ip6("2001:db8::1", 56324), dst = ip6("fe80::2:3", 443);
	string want = kSig + B({0x21, 0x21, 0x00, 0x24, //
				 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
				 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0x03,
				 0xdc, 0x04, 0x01, 0xbb});
	EXPECT_EQ(v2(&src, &dst), want);
	EXPECT_EQ(want.size(), 52u);
}

TEST(ProxyProtoV2, LocalForHealthChecksAndUnsayableAddresses)
{
	const string local = kSig + B({0x20, 0x00, 0x00, 0x00});
	char buf[16];
	EXPECT_EQ(proxy_proto_v2_local(buf, sizeof(buf)), 16);
	EXPECT_EQ(string(buf, 16), local);
	EXPECT_EQ(proxy_proto_v2_local(buf, 15), -ENOSPC);

	weft_addr a4 = ip4("10.0.0.1", 1), a6 = ip6("::1", 2), un = unix_path("/run/x.sock");
	EXPECT_EQ(v2(&un, &un), local);
	EXPECT_EQ(v2(&a4, &a6), local);
	EXPECT_EQ(v2(nullptr, nullptr), local);
}

TEST(ProxyProtoV2, NeverWritesPastSize)
{
	weft_addr a4 = ip4("1.2.3.4", 5), a6 = ip6("1::2", 3);
	for (const weft_addr *a : {&a4, &a6}) {
		string want = v2(a, a);
		for (size_t size = 0; size < want.size(); size++) {
			string buf(64, '#');
			EXPECT_EQ(proxy_proto_v2(&buf[0], size, a, a), -ENOSPC) << size;
			EXPECT_EQ(buf, string(64, '#'));
		}
	}
}

/* A bit at a time, as RFC 3720 B.4 defines it: the reference for the table. */
uint32_t crc32c_ref(const string &s)
{
	uint32_t crc = 0xffffffffu;
	for (unsigned char c : s) {
		crc ^= c;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ ((crc & 1) ? 0x82f63b78u : 0);
	}
	return ~crc;
}

TEST(ProxyProtoCrc32c, PublishedCheckValues)
{
	EXPECT_EQ(proxy_proto_crc32c("123456789", 9), 0xe3069283u);
	string zeros(32, '\0'), ones(32, '\xff'), inc, dec;
	for (int i = 0; i < 32; i++) {
		inc.push_back((char)i);
		dec.push_back((char)(31 - i));
	}
	/* RFC 3720 B.4 */
	EXPECT_EQ(proxy_proto_crc32c(zeros.data(), 32), 0x8a9136aau);
	EXPECT_EQ(proxy_proto_crc32c(ones.data(), 32), 0x62a8ab43u);
	EXPECT_EQ(proxy_proto_crc32c(inc.data(), 32), 0x46dd794eu);
	EXPECT_EQ(proxy_proto_crc32c(dec.data(), 32), 0x113fdb5cu);
	string all;
	for (int i = 0; i < 256; i++)
		all.push_back((char)i);
	EXPECT_EQ(proxy_proto_crc32c(all.data(), all.size()), crc32c_ref(all));
	EXPECT_EQ(proxy_proto_crc32c(nullptr, 0), 0u);
}

TEST(ProxyProtoV2, TlvsAndChecksumByteExact)
{
	weft_addr src = ip4("192.168.0.1", 56324), dst = ip4("192.168.0.11", 443);
	char buf[256];
	ssize_t n = proxy_proto_v2(buf, sizeof(buf), &src, &dst);
	ASSERT_EQ(n, 28);
	n = proxy_proto_v2_add_tlv(buf, sizeof(buf), (size_t)n, PROXY_PROTO_TLV_AUTHORITY,
				   "example.com", 11);
	ASSERT_EQ(n, 28 + 3 + 11);
	n = proxy_proto_v2_add_crc32c(buf, sizeof(buf), (size_t)n);
	ASSERT_EQ(n, 28 + 3 + 11 + 7);

	/* By hand: the length covers addresses and TLVs; the CRC32C is that of
	 * the whole header with its value zeroed (section 2.2.3), big-endian. */
	string body = B({0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0x0b, 0xdc, 0x04, 0x01, 0xbb}) +
		      tlv(0x02, "example.com");
	string zeroed = v2head(0x21, 0x11, body.size() + 7) + body + tlv(0x03, string(4, '\0'));
	uint32_t crc = crc32c_ref(zeroed);
	string want = zeroed.substr(0, zeroed.size() - 4) +
		      B({(int)(crc >> 24), (int)(crc >> 16 & 0xff), (int)(crc >> 8 & 0xff),
			 (int)(crc & 0xff)});
	ASSERT_EQ(string(buf, (size_t)n), want);

	Result r = parse(want);
	EXPECT_EQ(r.rc, (int)want.size()) << r;
	EXPECT_EQ(r.tlv_off, 28u);
	EXPECT_EQ(r.tlv_len, 14u + 7u);

	/* Any byte of the addresses or TLVs changed is caught, by the checksum or
	 * by the TLV layout; all but the checksum's own type byte, which makes
	 * it an AUTHORITY TLV that nobody checks. */
	size_t crc_type = want.size() - 7;
	for (size_t i = 16; i < want.size(); i++) {
		if (i == crc_type)
			continue;
		string bad = want;
		bad[i] ^= 0x01;
		Result b = parse(bad);
		EXPECT_EQ(b.rc, -EBADMSG) << "byte " << i << ": " << b;
	}

	/* The writers refuse a second checksum, a CRC32C through add_tlv, and
	 * bytes that are not a version 2 header. */
	char again[256];
	memcpy(again, buf, (size_t)n);
	EXPECT_EQ(proxy_proto_v2_add_crc32c(again, sizeof(again), (size_t)n), -EINVAL);
	EXPECT_EQ(proxy_proto_v2_add_tlv(again, sizeof(again), 28, PROXY_PROTO_TLV_NOOP, "", 0),
		  -EINVAL); /* the length field says n, not 28 */
	EXPECT_EQ(proxy_proto_v2_add_tlv(again, sizeof(again), (size_t)n, PROXY_PROTO_TLV_CRC32C,
					 "abcd", 4),
		  -EINVAL);
	char line[] = "PROXY UNKNOWN\r\n";
	EXPECT_EQ(proxy_proto_v2_add_tlv(line, sizeof(line), 15, 1, "h2", 2), -EINVAL);
	EXPECT_EQ(proxy_proto_v2_add_crc32c(line, sizeof(line), 15), -EINVAL);
	/* ...nor a header whose family, length or TLVs are not right. */
	for (const string &h : {v2head(0x21, 0x13, 0), v2head(0x21, 0x11, 11) + string(11, 'a'),
				v2head(0x21, 0x00, 2) + "ab"}) {
		char hb[64];
		memcpy(hb, h.data(), h.size());
		EXPECT_EQ(proxy_proto_v2_add_crc32c(hb, sizeof(hb), h.size()), -EINVAL);
		EXPECT_EQ(string(hb, h.size()), h);
	}
	EXPECT_EQ(memcmp(again, buf, (size_t)n), 0);
}

TEST(ProxyProtoV2, TlvWritersRespectSizeAndTheFormatsBound)
{
	std::vector<char> big(PROXY_PROTO_V2_MAX + 16);
	ssize_t n = proxy_proto_v2_local(big.data(), big.size());
	ASSERT_EQ(n, 16);
	/* ENOSPC leaves the header as it was. */
	EXPECT_EQ(proxy_proto_v2_add_tlv(big.data(), 16 + 3 + 3, 16, 0xe0, "abcd", 4), -ENOSPC);
	EXPECT_EQ(get_be16(big.data() + 14), 0);
	EXPECT_EQ(proxy_proto_v2_add_crc32c(big.data(), 16 + 6, 16), -ENOSPC);
	EXPECT_EQ(proxy_proto_v2_add_crc32c(big.data(), 16 + 7, 16), 23);
	n = proxy_proto_v2_local(big.data(), big.size());

	/* One TLV filling the format: 16 + 3 + 65532 = 16 + 65535. */
	std::vector<char> value(65532, 'v');
	EXPECT_EQ(proxy_proto_v2_add_tlv(big.data(), big.size(), 16, PROXY_PROTO_TLV_NOOP,
					 value.data(), 65533),
		  -EMSGSIZE);
	n = proxy_proto_v2_add_tlv(big.data(), big.size(), 16, PROXY_PROTO_TLV_NOOP, value.data(),
				   value.size());
	ASSERT_EQ(n, (ssize_t)PROXY_PROTO_V2_MAX);
	EXPECT_EQ(proxy_proto_v2_add_crc32c(big.data(), big.size(), (size_t)n), -EMSGSIZE);
	EXPECT_EQ(proxy_proto_v2_add_tlv(big.data(), big.size(), (size_t)n, 1, "", 0), -EMSGSIZE);

	/* Parsed with the largest limit it is accepted; with the default, not. */
	string hdr(big.data(), (size_t)n);
	EXPECT_EQ(parse(hdr, PROXY_PROTO_V2_MAX).rc, (int)PROXY_PROTO_V2_MAX);
	EXPECT_EQ(parse(hdr, SIZE_MAX).rc, (int)PROXY_PROTO_V2_MAX);
	EXPECT_EQ(parse(hdr).rc, -EMSGSIZE);
}

/* ---- Round trips ------------------------------------------------------------------ */

TEST(ProxyProtoRoundTrip, WrittenHeadersParseToTheSameAddresses)
{
	std::vector<std::pair<weft_addr, weft_addr>> pairs = {
		{ip4("192.168.0.1", 56324), ip4("192.168.0.11", 443)},
		{ip4("0.0.0.0", 0), ip4("255.255.255.255", 65535)},
		{ip6("2001:db8::1", 1), ip6("2001:db8::2", 2)},
		{ip6("::", 0), ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)},
		{ip6("::ffff:192.0.2.1", 80), ip6("1:0:0:1::", 8080)},
	};
	for (auto &p : pairs) {
		for (int version = 1; version <= 2; version++) {
			string h = version == 1 ? v1(&p.first, &p.second) : v2(&p.first, &p.second);
			std::vector<char> copy(h.begin(), h.end());
			proxy_proto_info info;
			ASSERT_EQ(proxy_proto_parse(copy.data(), copy.size(), &info), (int)h.size()) << h;
			EXPECT_EQ(info.version, version);
			EXPECT_EQ(info.command, PROXY_PROTO_PROXY);
			EXPECT_EQ(info.transport, SOCK_STREAM);
			EXPECT_TRUE(same_addr(info.src, p.first));
			EXPECT_TRUE(same_addr(info.dst, p.second));
			EXPECT_EQ(info.tlvs.len, 0u);
			EXPECT_EQ(info.tlvs.ptr, copy.data() + copy.size());
			EXPECT_STREQ(info.why, "");
		}
	}

	/* A scope ID has no place in either version: it is dropped. */
	weft_addr scoped = ip6("fe80::1", 22);
	scoped.in6.sin6_scope_id = 3;
	scoped.in6.sin6_flowinfo = htonl(7);
	weft_addr plain = ip6("fe80::1", 22);
	for (int version = 1; version <= 2; version++) {
		string h = version == 1 ? v1(&scoped, &scoped) : v2(&scoped, &scoped);
		proxy_proto_info info;
		ASSERT_GT(proxy_proto_parse(h.data(), h.size(), &info), 0);
		EXPECT_TRUE(same_addr(info.src, plain));
	}
}

/* ---- Reading version 1 ------------------------------------------------------------ */

TEST(ProxyProtoParseV1, ValidLines)
{
	const string payload = "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
	const string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
	Result r = parse(line + payload);
	ASSERT_EQ(r.rc, (int)line.size()) << r;
	EXPECT_EQ(r.version, 1);
	EXPECT_EQ(r.command, PROXY_PROTO_PROXY);
	EXPECT_EQ(r.transport, SOCK_STREAM);
	EXPECT_EQ(r.src, addr_bytes(ip4("192.168.0.1", 56324)));
	EXPECT_EQ(r.dst, addr_bytes(ip4("192.168.0.11", 443)));
	EXPECT_EQ(r.tlv_off, line.size()); /* an empty slice at the header's end */
	EXPECT_EQ(r.tlv_len, 0u);
	EXPECT_EQ(r.why, "");

	/* IPv6 in every RFC 4291 text form. */
	struct {
		const char *text, *canonical;
	} forms[] = {
		{"2001:db8::1", "2001:db8::1"},
		{"2001:DB8::1", "2001:db8::1"},
		{"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
		{"::", "::"},
		{"::1", "::1"},
		{"1::", "1::"},
		{"::ffff:192.0.2.1", "::ffff:c000:201"},
		{"::192.0.2.1", "::c000:201"},
		{"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"},
		{"1:2:3:4:5::1.2.3.4", "1:2:3:4:5:0:102:304"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	};
	for (auto &f : forms) {
		Result r6 = parse(string("PROXY TCP6 ") + f.text + " ::1 0 65535\r\n");
		ASSERT_GT(r6.rc, 0) << f.text << ": " << r6;
		EXPECT_EQ(r6.src, addr_bytes(ip6(f.canonical, 0))) << f.text;
		EXPECT_EQ(r6.dst, addr_bytes(ip6("::1", 65535)));
	}

	/* UNKNOWN: short, or with anything printable up to CRLF, ignored. */
	for (const char *u : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN \r\n",
			      "PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n",
			      "PROXY UNKNOWN whatever ~!@#$%^&*()\r\n"}) {
		Result ru = parse(string(u) + payload);
		ASSERT_EQ(ru.rc, (int)strlen(u)) << u << ": " << ru;
		EXPECT_EQ(ru.version, 1);
		EXPECT_EQ(ru.command, PROXY_PROTO_PROXY);
		EXPECT_EQ(ru.transport, 0);
		weft_addr none;
		memset(&none, 0, sizeof(none));
		EXPECT_EQ(ru.src, addr_bytes(none));
		EXPECT_EQ(ru.dst, addr_bytes(none));
	}
}

TEST(ProxyProtoParseV1, LineLimitIs107Bytes)
{
	/* The section's worst case, 107 bytes with CRLF, is accepted... */
	string full = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	ASSERT_EQ(full.size(), 107u);
	EXPECT_EQ(parse(full).rc, 107);
	/* ...one byte more is not, and 107 bytes without CRLF are enough to say so. */
	string longer = full.substr(0, 105) + "5\r\n";
	Result r = parse(longer);
	EXPECT_EQ(r.rc, -EBADMSG);
	EXPECT_EQ(r.why, "v1: no CRLF within 107 bytes");
	EXPECT_EQ(parse(longer.substr(0, 107)).rc, -EBADMSG);
	EXPECT_EQ(parse(longer.substr(0, 106)).rc, -EAGAIN);
	/* The CR as the 107th byte, its LF beyond: too long as well. */
	EXPECT_EQ(parse(full.substr(0, 104) + "55\r\n").rc, -EBADMSG);
}

struct Bad {
	string in;
	int rc;
	const char *why;
};

void expect_rejections(const std::vector<Bad> &cases)
{
	for (auto &c : cases) {
		Result r = parse(c.in);
		EXPECT_EQ(r.rc, c.rc) << "\"" << c.in << "\": " << r;
		EXPECT_EQ(r.why, c.why) << "\"" << c.in << "\"";
		expect_split_invariant(c.in);
	}
}

TEST(ProxyProtoParseV1, Rejections)
{
	const char *src = "v1: bad source address", *dst = "v1: bad destination address";
	const char *sport = "v1: bad source port", *dport = "v1: bad destination port";
	const char *proto = "v1: unknown protocol", *notpp = "not a PROXY protocol header";
	auto tcp4 = [](const string &a, const string &b = "5.6.7.8") {
		return "PROXY TCP4 " + a + " " + b + " 1 2\r\n";
	};
	auto tcp6 = [](const string &a) { return "PROXY TCP6 " + a + " ::2 1 2\r\n"; };
	auto ports = [](const string &p, const string &q) {
		return "PROXY TCP4 1.2.3.4 5.6.7.8 " + p + " " + q + "\r\n";
	};
	expect_rejections({
		/* Not the protocol at all, or a different case. */
		{"GET / HTTP/1.1\r\n\r\n", -EBADMSG, notpp},
		{"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, notpp},
		{"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, notpp},
		{"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, proto},
		{"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, proto},
		{"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, proto},
		{"PROXY UNKNOWn\r\n", -EBADMSG, proto},
		/* Spaces: extra, missing, trailing. */
		{"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, proto},
		{"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, src},
		{"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", -EBADMSG, dst},
		{"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", -EBADMSG, sport},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", -EBADMSG, dport},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", -EBADMSG, dport},
		{"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", -EBADMSG, "v1: no single space after the protocol"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", -EBADMSG, sport},
		{"PROXY TCP4 1.2.3.4 5.6.7.8\r\n", -EBADMSG, dst},
		{"PROXY TCP4\r\n", -EBADMSG, "v1: no single space after the protocol"},
		/* Line ends. */
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", -EBADMSG, dport},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", -EBADMSG, "v1: CR not followed by LF"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", -EBADMSG, "v1: CR not followed by LF"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", -EBADMSG, dport},
		{"PROXY UNKNOWN\n", -EBADMSG, "v1: UNKNOWN not followed by a space or CRLF"},
		{"PROXY UNKNOWNX\r\n", -EBADMSG, "v1: UNKNOWN not followed by a space or CRLF"},
		{"PROXY UNKNOWN\rX", -EBADMSG, "v1: UNKNOWN not followed by a space or CRLF"},
		{"PROXY UNKNOWN a\nb\r\n", -EBADMSG,
		 "v1: byte other than printable ASCII after UNKNOWN"},
		{string("PROXY UNKNOWN a\0b\r\n", 19), -EBADMSG,
		 "v1: byte other than printable ASCII after UNKNOWN"},
		{"PROXY UNKNOWN a\rb\r\n", -EBADMSG, "v1: UNKNOWN not followed by a space or CRLF"},
		/* IPv4. */
		{tcp4("256.1.1.1"), -EBADMSG, src},
		{tcp4("1.2.3.255", "1.2.3.256"), -EBADMSG, dst},
		{tcp4("01.2.3.4"), -EBADMSG, src},
		{tcp4("1.2.3.00"), -EBADMSG, src},
		{tcp4("1.2.3"), -EBADMSG, src},
		{tcp4("1.2.3.4.5"), -EBADMSG, src},
		{tcp4("1..2.3"), -EBADMSG, src},
		{tcp4("1.2.3."), -EBADMSG, src},
		{tcp4(".1.2.3"), -EBADMSG, src},
		{tcp4("1.2.3.-4"), -EBADMSG, src},
		{tcp4("0x1.2.3.4"), -EBADMSG, src},
		{tcp4("1.2.3.4444"), -EBADMSG, src},
		{tcp4("1111.2.3.4"), -EBADMSG, src},
		{tcp4("111.222.233.2444"), -EBADMSG, src}, /* 16 characters */
		{tcp4("::1"), -EBADMSG, src},		    /* TCP4 with IPv6 */
		{tcp4("1.2.3.4", "::ffff:1.2.3.4"), -EBADMSG, dst},
		/* IPv6. */
		{tcp6("1.2.3.4"), -EBADMSG, src}, /* TCP6 with IPv4 */
		{tcp6("1:2:3:4:5:6:7:8:9"), -EBADMSG, src},
		{tcp6("1:2:3:4:5:6:7"), -EBADMSG, src},
		{tcp6("1::2::3"), -EBADMSG, src},
		{tcp6("12345::"), -EBADMSG, src},
		{tcp6(":1::"), -EBADMSG, src},
		{tcp6("1:"), -EBADMSG, src},
		{tcp6("1::2:"), -EBADMSG, src},
		{tcp6(":::"), -EBADMSG, src},
		{tcp6("::g"), -EBADMSG, src},
		{tcp6("fe80::1%eth0"), -EBADMSG, src},
		{tcp6("[::1]"), -EBADMSG, src},
		{tcp6("1:2:3:4:5:6:7::8"), -EBADMSG, src}, /* "::" for no group */
		{tcp6("1:2:3:4::5:6:7:8"), -EBADMSG, src},
		{tcp6("::ffff:1.2.3.04"), -EBADMSG, src},
		{tcp6("::1.2.3.256"), -EBADMSG, src},
		{tcp6("::1.2.3.4:5"), -EBADMSG, src},
		{tcp6("1:2:3:4:5:6:7:1.2.3.4"), -EBADMSG, src},
		{tcp6("::ffff:1.2.3"), -EBADMSG, src},
		{tcp6("0000:0000:0000:0000:0000:0000:0000:0000:0"), -EBADMSG, src},
		/* Ports. */
		{ports("65536", "1"), -EBADMSG, sport},
		{ports("1", "99999"), -EBADMSG, dport},
		{ports("080", "1"), -EBADMSG, sport},
		{ports("1", "00"), -EBADMSG, dport},
		{ports("-1", "1"), -EBADMSG, sport},
		{ports("+1", "1"), -EBADMSG, sport},
		{ports("1a", "1"), -EBADMSG, sport},
		{ports("100000", "1"), -EBADMSG, sport},
		{ports("", "1"), -EBADMSG, sport},
		{ports("1", ""), -EBADMSG, dport},
	});
}

TEST(ProxyProtoParseV1, RejectedAsSoonAsTheBytesAllow)
{
	/* The first byte that cannot begin a header is enough. */
	EXPECT_EQ(parse("G").rc, -EBADMSG);
	EXPECT_EQ(parse("\x16\x03\x01").rc, -EBADMSG); /* a TLS ClientHello */
	EXPECT_EQ(parse("PROXI").rc, -EBADMSG);
	EXPECT_EQ(parse("PROXY X").rc, -EBADMSG);
	/* A field's characters and length are checked before it ends. */
	EXPECT_EQ(parse("PROXY TCP4 1.2.3.4:").rc, -EBADMSG);
	EXPECT_EQ(parse("PROXY TCP4 1234567890123456").rc, -EBADMSG);
	EXPECT_EQ(parse("PROXY TCP6 ::g").rc, -EBADMSG);
	EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 123456").rc, -EBADMSG);
	/* A field is judged whole once its terminator comes. */
	EXPECT_EQ(parse("PROXY TCP4 256.2.3.4").rc, -EAGAIN);
	EXPECT_EQ(parse("PROXY TCP4 256.2.3.4 ").rc, -EBADMSG);
	EXPECT_EQ(parse("").rc, -EAGAIN);
	EXPECT_EQ(parse("").why, "incomplete header");
}

/* ---- Reading version 2 ------------------------------------------------------------ */

TEST(ProxyProtoParseV2, ValidHeadersOfEveryFamily)
{
	const string payload = "\x16\x03\x01 hello";
	weft_addr none;
	memset(&none, 0, sizeof(none));

	/* TCP and UDP over IPv4 and IPv6. */
	string a4 = B({10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x00, 0x50});
	string a6 = string(15, '\0') + B({1}) + B({0x20, 0x01, 0x0d, 0xb8}) + string(11, '\0') +
		    B({2, 0x30, 0x39, 0x00, 0x50});
	struct {
		int fam;
		string addrs;
		weft_addr src, dst;
		int transport;
	} inet[] = {
		{0x11, a4, ip4("10.0.0.1", 12345), ip4("10.0.0.2", 80), SOCK_STREAM},
		{0x12, a4, ip4("10.0.0.1", 12345), ip4("10.0.0.2", 80), SOCK_DGRAM},
		{0x21, a6, ip6("::1", 12345), ip6("2001:db8::2", 80), SOCK_STREAM},
		{0x22, a6, ip6("::1", 12345), ip6("2001:db8::2", 80), SOCK_DGRAM},
	};
	for (auto &c : inet) {
		string h = v2head(0x21, c.fam, c.addrs.size()) + c.addrs;
		Result r = parse(h + payload);
		ASSERT_EQ(r.rc, (int)h.size()) << std::hex << c.fam << ": " << r;
		EXPECT_EQ(r.version, 2);
		EXPECT_EQ(r.command, PROXY_PROTO_PROXY);
		EXPECT_EQ(r.transport, c.transport);
		EXPECT_EQ(r.src, addr_bytes(c.src));
		EXPECT_EQ(r.dst, addr_bytes(c.dst));
		EXPECT_EQ(r.tlv_off, h.size());
		EXPECT_EQ(r.tlv_len, 0u);
		expect_prefixes_need_more(h);
		expect_split_invariant(h + payload);
	}

	/* Unix: a path, and an abstract name, each padded to 108 bytes. */
	string path = "/run/app.sock", abstract = string("\0name", 5);
	string ua = path + string(108 - path.size(), '\0') + abstract + string(103, '\0');
	for (int fam : {0x31, 0x32}) {
		string h = v2head(0x21, fam, 216) + ua;
		Result r = parse(h);
		ASSERT_EQ(r.rc, 16 + 216) << r;
		EXPECT_EQ(r.transport, fam == 0x31 ? SOCK_STREAM : SOCK_DGRAM);
		EXPECT_EQ(r.src, addr_bytes(unix_path("/run/app.sock")));
		weft_addr abs;
		memset(&abs, 0, sizeof(abs));
		abs.un.sun_family = AF_UNIX;
		memcpy(abs.un.sun_path, "\0name", 5);
		abs.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 5);
		EXPECT_EQ(r.dst, addr_bytes(abs));
	}
	/* A path filling all 108 bytes has no NUL to count; all zero is unnamed. */
	string h108 = v2head(0x21, 0x31, 216) + string(108, 'p') + string(108, '\0');
	proxy_proto_info info;
	ASSERT_EQ(proxy_proto_parse(h108.data(), h108.size(), &info), 232);
	EXPECT_EQ(info.src.len, offsetof(struct sockaddr_un, sun_path) + 108);
	EXPECT_EQ(info.dst.len, offsetof(struct sockaddr_un, sun_path));
	EXPECT_EQ(info.dst.un.sun_family, AF_UNIX);

	/* LOCAL: addresses ignored whatever the family; TLVs after them. */
	string local = v2head(0x20, 0x00, 0);
	Result rl = parse(local + payload);
	ASSERT_EQ(rl.rc, 16) << rl;
	EXPECT_EQ(rl.command, PROXY_PROTO_LOCAL);
	EXPECT_EQ(rl.transport, 0);
	EXPECT_EQ(rl.src, addr_bytes(none));
	EXPECT_EQ(rl.dst, addr_bytes(none));
	string t = tlv(PROXY_PROTO_TLV_NOOP, "pad");
	string local4 = v2head(0x20, 0x11, 12 + t.size()) + a4 + t;
	Result rl4 = parse(local4);
	ASSERT_EQ(rl4.rc, (int)local4.size()) << rl4;
	EXPECT_EQ(rl4.command, PROXY_PROTO_LOCAL);
	EXPECT_EQ(rl4.src, addr_bytes(none));
	EXPECT_EQ(rl4.tlv_off, 28u);
	EXPECT_EQ(rl4.tlv_len, t.size());

	/* PROXY with UNSPEC: use the real endpoints; TLVs start at once. */
	string unspec = v2head(0x21, 0x00, t.size()) + t;
	Result ru = parse(unspec);
	ASSERT_EQ(ru.rc, (int)unspec.size()) << ru;
	EXPECT_EQ(ru.command, PROXY_PROTO_PROXY);
	EXPECT_EQ(ru.transport, 0);
	EXPECT_EQ(ru.src, addr_bytes(none));
	EXPECT_EQ(ru.tlv_off, 16u);
	EXPECT_EQ(ru.tlv_len, t.size());
}

TEST(ProxyProtoParseV2, TlvsWalkedZeroCopy)
{
	string ssl_value = B({0x01, 0, 0, 0, 0}) + tlv(PROXY_PROTO_TLV_SSL_VERSION, "TLSv1.3") +
			   tlv(PROXY_PROTO_TLV_SSL_CN, "example.com");
	string tlvs = tlv(PROXY_PROTO_TLV_ALPN, "h2") + tlv(PROXY_PROTO_TLV_AUTHORITY, "example.com") +
		      tlv(PROXY_PROTO_TLV_UNIQUE_ID, string(128, 'u')) + tlv(PROXY_PROTO_TLV_SSL, ssl_value) +
		      tlv(PROXY_PROTO_TLV_NOOP, "") + tlv(0xea, "vpce-0123") + tlv(0x00, "?");
	string a4 = B({1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2});
	string h = v2head(0x21, 0x11, 12 + tlvs.size()) + a4 + tlvs;
	std::vector<char> copy(h.begin(), h.end());
	proxy_proto_info info;
	ASSERT_EQ(proxy_proto_parse(copy.data(), copy.size(), &info), (int)h.size()) << info.why;
	EXPECT_EQ(info.tlvs.ptr, copy.data() + 28); /* a slice of the input itself */
	EXPECT_EQ(info.tlvs.len, tlvs.size());

	proxy_proto_slice rest = info.tlvs;
	proxy_proto_tlv t;
	std::vector<std::pair<int, string>> seen;
	while (proxy_proto_tlv_next(&rest, &t) == 1) {
		EXPECT_GE(t.value.ptr, copy.data());
		EXPECT_LE(t.value.ptr + t.value.len, copy.data() + copy.size());
		seen.emplace_back(t.type, string(t.value.ptr, t.value.len));
	}
	EXPECT_EQ(rest.len, 0u);
	ASSERT_EQ(seen.size(), 7u);
	EXPECT_EQ(seen[0], std::make_pair(0x01, string("h2")));
	EXPECT_EQ(seen[1], std::make_pair(0x02, string("example.com")));
	EXPECT_EQ(seen[3].first, PROXY_PROTO_TLV_SSL);
	EXPECT_EQ(seen[6], std::make_pair(0x00, string("?")));

	/* The SSL TLV's sub-TLVs, after its 5 fixed bytes. */
	proxy_proto_slice sub = {seen[3].second.data() + 5, seen[3].second.size() - 5};
	ASSERT_EQ(proxy_proto_tlv_next(&sub, &t), 1);
	EXPECT_EQ(t.type, PROXY_PROTO_TLV_SSL_VERSION);
	EXPECT_EQ(string(t.value.ptr, t.value.len), "TLSv1.3");
	ASSERT_EQ(proxy_proto_tlv_next(&sub, &t), 1);
	EXPECT_EQ(string(t.value.ptr, t.value.len), "example.com");
	EXPECT_EQ(proxy_proto_tlv_next(&sub, &t), 0);

	/* A partial TLV is refused and leaves the slice as it was. */
	string partial = tlv(1, "ab").substr(0, 4);
	proxy_proto_slice p = {partial.data(), partial.size()};
	EXPECT_EQ(proxy_proto_tlv_next(&p, &t), -EBADMSG);
	EXPECT_EQ(p.ptr, partial.data());
	EXPECT_EQ(p.len, 4u);
	proxy_proto_slice two = {partial.data(), 2};
	EXPECT_EQ(proxy_proto_tlv_next(&two, &t), -EBADMSG);

	expect_split_invariant(h);
	expect_prefixes_need_more(h);
}

TEST(ProxyProtoParseV2, Rejections)
{
	const string a4 = B({1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2});
	auto with_tlvs = [&](const string &tlvs) {
		return v2head(0x21, 0x11, 12 + tlvs.size()) + a4 + tlvs;
	};
	/* A header with a correct checksum, then one with a wrong one. */
	char buf[128];
	weft_addr s = ip4("1.2.3.4", 1), d = ip4("5.6.7.8", 2);
	ssize_t n = proxy_proto_v2(buf, sizeof(buf), &s, &d);
	n = proxy_proto_v2_add_crc32c(buf, sizeof(buf), (size_t)n);
	ASSERT_EQ(n, 35);
	string good_crc(buf, (size_t)n);
	EXPECT_EQ(parse(good_crc).rc, 35);
	string bad_crc = good_crc;
	bad_crc[34] ^= 0x80;
	string ssl_short = tlv(PROXY_PROTO_TLV_SSL, B({1, 0, 0, 0}));
	string ssl_bad_sub = tlv(PROXY_PROTO_TLV_SSL, B({1, 0, 0, 0, 0}) + B({0x21, 0, 9, 'x'}));

	expect_rejections({
		{v2head(0x11, 0x11, 12) + a4, -EPROTONOSUPPORT, "v2: version other than 2"},
		{v2head(0x31, 0x11, 12) + a4, -EPROTONOSUPPORT, "v2: version other than 2"},
		{v2head(0x01, 0x11, 12) + a4, -EPROTONOSUPPORT, "v2: version other than 2"},
		{v2head(0x22, 0x11, 12) + a4, -EBADMSG, "v2: unknown command"},
		{v2head(0x2f, 0x11, 12) + a4, -EBADMSG, "v2: unknown command"},
		{v2head(0x21, 0x13, 12) + a4, -EBADMSG, "v2: unknown family or transport"},
		{v2head(0x21, 0x41, 12) + a4, -EBADMSG, "v2: unknown family or transport"},
		{v2head(0x21, 0x10, 12) + a4, -EBADMSG, "v2: unknown family or transport"},
		{v2head(0x21, 0x01, 12) + a4, -EBADMSG, "v2: unknown family or transport"},
		/* Lengths that lie about the address block. */
		{v2head(0x21, 0x11, 11) + a4, -EBADMSG, "v2: length shorter than the address block"},
		{v2head(0x21, 0x21, 12) + a4, -EBADMSG, "v2: length shorter than the address block"},
		{v2head(0x21, 0x31, 215) + string(216, 'a'), -EBADMSG,
		 "v2: length shorter than the address block"},
		{v2head(0x20, 0x11, 0), -EBADMSG, "v2: length shorter than the address block"},
		/* A length longer than the address block: the rest must be TLVs. */
		{v2head(0x21, 0x11, 13) + a4 + "x", -EBADMSG, "v2: TLV past the header's end"},
		{v2head(0x21, 0x11, 14) + a4 + "xy", -EBADMSG, "v2: TLV past the header's end"},
		{v2head(0x20, 0x00, 2) + "xy", -EBADMSG, "v2: TLV past the header's end"},
		{with_tlvs(B({0x01, 0x00, 0x03, 'h', '2'})), -EBADMSG, "v2: TLV past the header's end"},
		{with_tlvs(tlv(1, "h2") + B({0x02, 0xff, 0xff})), -EBADMSG,
		 "v2: TLV past the header's end"},
		/* Checksum, unique ID and SSL TLVs. */
		{bad_crc, -EBADMSG, "v2: CRC32C mismatch"},
		{with_tlvs(tlv(PROXY_PROTO_TLV_CRC32C, "abc")), -EBADMSG,
		 "v2: CRC32C TLV not 4 bytes long"},
		{with_tlvs(tlv(PROXY_PROTO_TLV_CRC32C, "abcde")), -EBADMSG,
		 "v2: CRC32C TLV not 4 bytes long"},
		{with_tlvs(tlv(PROXY_PROTO_TLV_UNIQUE_ID, string(129, 'u'))), -EBADMSG,
		 "v2: UNIQUE_ID TLV longer than 128 bytes"},
		{with_tlvs(ssl_short), -EBADMSG, "v2: SSL TLV shorter than 5 bytes"},
		{with_tlvs(ssl_bad_sub), -EBADMSG, "v2: SSL sub-TLV past the SSL TLV's end"},
	});

	/* Two checksums are refused, even when the first is right. */
	string two = with_tlvs(tlv(PROXY_PROTO_TLV_CRC32C, string(4, '\0')) +
			       tlv(PROXY_PROTO_TLV_CRC32C, string(4, '\0')));
	uint32_t c = crc32c_ref(two);
	for (int i = 0; i < 4; i++)
		two[28 + 3 + i] = (char)(c >> (24 - 8 * i));
	Result r = parse(two);
	EXPECT_EQ(r.rc, -EBADMSG);
	EXPECT_EQ(r.why, "v2: two CRC32C TLVs");
	expect_split_invariant(two);
	string one = two.substr(0, 28 + 7);
	one[15] = 12 + 7;
	EXPECT_EQ(parse(one).why, "v2: CRC32C mismatch"); /* the sum covered the second */

	/* Every family/transport byte: the seven of section 2.2, and no other. */
	for (int fam = 0; fam < 256; fam++) {
		string h = v2head(0x21, fam, 216) + string(216, 'a');
		Result rf = parse(h.substr(0, 14));
		bool listed = fam == 0x00 || fam == 0x11 || fam == 0x12 || fam == 0x21 ||
			      fam == 0x22 || fam == 0x31 || fam == 0x32;
		EXPECT_EQ(rf.rc, listed ? -EAGAIN : -EBADMSG) << fam;
	}
	/* Every version and command nibble. */
	for (int vc = 0; vc < 256; vc++) {
		Result rv = parse(v2head(vc, 0x11, 12).substr(0, 13));
		int want = (vc >> 4) != 2 ? -EPROTONOSUPPORT : (vc & 15) > 1 ? -EBADMSG : -EAGAIN;
		EXPECT_EQ(rv.rc, want) << vc;
	}
}

TEST(ProxyProtoParseV2, RejectedAsSoonAsTheBytesAllow)
{
	/* Each signature byte is checked as it comes. */
	for (size_t i = 0; i < 12; i++) {
		string bad = kSig;
		bad[i] ^= 0x20;
		Result r = parse(bad.substr(0, i + 1));
		EXPECT_EQ(r.rc, -EBADMSG) << "byte " << i;
		EXPECT_EQ(r.why, "not a PROXY protocol header");
		EXPECT_EQ(parse(kSig.substr(0, i + 1)).rc, -EAGAIN);
	}
	/* A length the limit refuses, or the address block cannot fit in, is
	 * refused with the 16 fixed bytes, before the rest arrives. */
	EXPECT_EQ(parse(v2head(0x21, 0x11, 5000)).rc, -EMSGSIZE);
	EXPECT_EQ(parse(v2head(0x21, 0x11, 5)).rc, -EBADMSG);
	/* A truncated address block is only "more, please". */
	EXPECT_EQ(parse(v2head(0x21, 0x11, 12) + "abc").rc, -EAGAIN);
}

TEST(ProxyProtoParseV2, LimitHoldsAtItsBoundary)
{
	auto header_of = [](size_t total) {
		size_t value = total - 16 - 3;
		return v2head(0x20, 0x00, total - 16) + tlv(PROXY_PROTO_TLV_NOOP, string(value, 'n'));
	};
	string at = header_of(PROXY_PROTO_MAX_DEFAULT), over = header_of(PROXY_PROTO_MAX_DEFAULT + 1);
	EXPECT_EQ(parse(at).rc, (int)PROXY_PROTO_MAX_DEFAULT);
	Result r = parse(over);
	EXPECT_EQ(r.rc, -EMSGSIZE);
	EXPECT_EQ(r.why, "v2: header longer than the limit");
	EXPECT_EQ(parse(over, PROXY_PROTO_MAX_DEFAULT + 1).rc, (int)over.size());
	/* A small limit: the LOCAL header of 16 bytes fits 16, the IPv4 one not. */
	EXPECT_EQ(parse(v2head(0x20, 0, 0), 16).rc, 16);
	EXPECT_EQ(parse(v2head(0x21, 0x11, 12) + string(12, 'a'), 27).rc, -EMSGSIZE);
	EXPECT_EQ(parse(v2head(0x21, 0x11, 12) + string(12, 'a'), 28).rc, 28);
	/* Version 1 is bounded by the specification, not by the limit. */
	EXPECT_EQ(parse("PROXY UNKNOWN\r\n", 16).rc, 15);
	EXPECT_EQ(parse("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 16).rc, 47);
	/* proxy_proto_parse uses the default. */
	proxy_proto_info info;
	EXPECT_EQ(proxy_proto_parse(over.data(), over.size(), &info), -EMSGSIZE);
	EXPECT_EQ(proxy_proto_parse(at.data(), at.size(), &info), (int)at.size());
}

/* ---- Pieces ------------------------------------------------------------------------ */

TEST(ProxyProtoPieces, EverySplitAgreesWithTheWhole)
{
	weft_addr s4 = ip4("192.168.0.1", 56324), d4 = ip4("192.168.0.11", 443);
	weft_addr s6 = ip6("2001:db8::1", 1), d6 = ip6("::ffff:10.0.0.1", 65535);
	char buf[256];
	ssize_t n = proxy_proto_v2(buf, sizeof(buf), &s6, &d6);
	n = proxy_proto_v2_add_tlv(buf, sizeof(buf), (size_t)n, PROXY_PROTO_TLV_ALPN, "http/1.1", 8);
	n = proxy_proto_v2_add_crc32c(buf, sizeof(buf), (size_t)n);
	ASSERT_GT(n, 0);
	const string rest = "GET / HTTP/1.1\r\n\r\n";
	std::vector<string> valid = {
		v1(&s4, &d4),
		v1(&s6, &d6),
		"PROXY TCP6 ::ffff:1.2.3.4 ::1 0 65535\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN 1.2.3.4 whatever\r\n",
		v2(&s4, &d4),
		v2(&s6, &d6),
		string(buf, (size_t)n),
		v2head(0x20, 0x00, 0),
	};
	for (auto &h : valid) {
		expect_prefixes_need_more(h);
		expect_split_invariant(h);
		expect_split_invariant(h + rest);
		EXPECT_EQ(parse(h + rest).rc, (int)h.size());
	}
	std::vector<string> invalid = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
		"PROXY TCP6 1::2::3 ::1 1 2\r\n",
		"PROXY UNKNOWN " + string(120, 'x') + "\r\n",
		"HTTP/1.1 200 OK\r\n",
		v2head(0x21, 0x11, 12 + 5) + string(12, 'a') + tlv(1, "abc").substr(0, 4) + "z",
		v2head(0x21, 0x11, 60000),
		v2head(0x31, 0x11, 12),
	};
	for (auto &h : invalid) {
		EXPECT_LT(parse(h).rc, 0);
		EXPECT_NE(parse(h).rc, -EAGAIN);
		expect_split_invariant(h);
	}
}

} // namespace
