// SPDX-License-Identifier: MIT
/*
 * http1_test.cc - the HTTP/1.1 parser of net/http1.c.  Properties covered:
 *  - valid requests and responses parse into the expected method, target,
 *    status, version, fields, framing and keep-alive decision;
 *  - each rejection rule of net/http1.c's header comment has a case that
 *    is rejected with its errno and a status for the answer;
 *  - feeding a message in two pieces at every split point, or a byte at a
 *    time, into a buffer that moves between calls, gives exactly the result
 *    of feeding it whole (heads and bodies alike);
 *  - pipelined messages are each read once, their bodies framed so that the
 *    next message starts where the last one ended;
 *  - chunked bodies with extensions and trailers decode to their payload;
 *  - the limits on line length, head size and field count hold exactly at
 *    their boundaries.
 */
#include <gtest/gtest.h>

#include <errno.h>

#include <string>
#include <vector>

#include "weft/http1.h"

namespace {

using std::string;

string S(const weft_http1_slice &s)
{
	return s.ptr ? string(s.ptr, s.len) : string();
}

/* A parse result with slices turned into offsets and strings, so results of
 * different buffers compare. */
struct Result {
	int rc = 0;
	int status = 0; /* the answer's status on error, the response's on success */
	string why;
	string method, target, reason;
	int method_id = 0, minor = -1;
	unsigned flags = 0;
	int framing = -1;
	uint64_t length = 0;
	std::vector<std::pair<string, string>> fields;
	std::vector<size_t> offsets; /* of every slice, relative to the buffer */

	bool operator==(const Result &o) const
	{
		return rc == o.rc && status == o.status && why == o.why && method == o.method &&
		       target == o.target && reason == o.reason && method_id == o.method_id &&
		       minor == o.minor && flags == o.flags && framing == o.framing &&
		       length == o.length && fields == o.fields && offsets == o.offsets;
	}
};

std::ostream &operator<<(std::ostream &os, const Result &r)
{
	return os << "rc=" << r.rc << " status=" << r.status << " why=" << r.why
		  << " framing=" << r.framing << " length=" << r.length << " flags=" << r.flags;
}

constexpr unsigned kMaxFields = 32;

Result collect(int rc, const weft_http1_parser &p, const weft_http1_head &h, const char *base)
{
	Result r;
	r.rc = rc;
	if (rc <= 0) {
		r.why = weft_http1_parser_error(&p, &r.status);
		return r;
	}
	r.status = h.status;
	r.method = S(h.method);
	r.target = S(h.target);
	r.reason = S(h.reason);
	r.method_id = h.method_id;
	r.minor = h.minor;
	r.flags = h.flags;
	r.framing = h.framing;
	r.length = h.content_length;
	auto off = [&](const weft_http1_slice &s) {
		r.offsets.push_back(s.ptr ? (size_t)(s.ptr - base) : (size_t)-1);
	};
	off(h.method);
	off(h.target);
	off(h.reason);
	for (unsigned i = 0; i < h.nheaders; i++) {
		r.fields.emplace_back(S(h.headers[i].name), S(h.headers[i].value));
		off(h.headers[i].name);
		off(h.headers[i].value);
	}
	return r;
}

/* Parses msg whole, as a request (req < 0) or as a response to req. */
Result parse(const string &msg, int req = -1, const weft_http1_limits *lim = nullptr,
	     unsigned max_fields = kMaxFields)
{
	weft_http1_header hdrs[kMaxFields];
	weft_http1_parser p;
	weft_http1_parser_init(&p, lim, hdrs, max_fields);
	weft_http1_head h;
	int rc = req < 0 ? weft_http1_parse_request(&p, msg.data(), msg.size(), &h)
			 : weft_http1_parse_response(&p, msg.data(), msg.size(), &h,
						     (weft_http1_method)req);
	return collect(rc, p, h, msg.data());
}

/* Feeds msg in pieces ending at each of cuts (then whole), each time from a
 * fresh copy at a new address, until a call does not ask for more (a
 * malformed line may be rejected before the head ends).  Returns that
 * call's result. */
Result parse_pieces(const string &msg, const std::vector<size_t> &cuts, int req = -1,
		    const weft_http1_limits *lim = nullptr, unsigned max_fields = kMaxFields)
{
	weft_http1_header hdrs[kMaxFields];
	weft_http1_parser p;
	weft_http1_parser_init(&p, lim, hdrs, max_fields);
	weft_http1_head h;
	std::vector<size_t> ends = cuts;
	ends.push_back(msg.size());
	for (size_t end : ends) {
		/* A new heap block each time: the parser may keep no pointer. */
		std::vector<char> copy(msg.begin(), msg.begin() + end);
		copy.push_back('\0');
		int rc = req < 0 ? weft_http1_parse_request(&p, copy.data(), end, &h)
				 : weft_http1_parse_response(&p, copy.data(), end, &h,
							     (weft_http1_method)req);
		if (rc != -EAGAIN || end == msg.size())
			return collect(rc, p, h, copy.data());
	}
	return Result{};
}

/* A request with the usual head around the given lines. */
string get(const string &extra = "")
{
	return "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n" + extra + "\r\n";
}

constexpr int kReq = -1;

#define EXPECT_BAD(msg, ...)                                                         \
	do {                                                                         \
		Result r_ = parse(msg, ##__VA_ARGS__);                               \
		EXPECT_EQ(r_.rc, -EBADMSG) << r_;                                    \
		EXPECT_EQ(r_.status, 400);                                           \
		EXPECT_NE(r_.why, "");                                               \
	} while (0)

/* ---- Valid requests ----------------------------------------------------------- */

TEST(Http1Request, HelloWorldGetParsesEveryPart)
{
	string m = "GET /hello HTTP/1.1\r\n"
		   "Host: localhost:8080\r\n"
		   "User-Agent: wrk/4.2\r\n"
		   "Accept: */*\r\n"
		   "Accept-Encoding: gzip, deflate\r\n"
		   "Connection: keep-alive\r\n"
		   "\r\n";
	Result r = parse(m);
	ASSERT_EQ(r.rc, (int)m.size()) << r;
	EXPECT_EQ(r.method, "GET");
	EXPECT_EQ(r.method_id, WEFT_HTTP1_GET);
	EXPECT_EQ(r.target, "/hello");
	EXPECT_EQ(r.minor, 1);
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	ASSERT_EQ(r.fields.size(), 5u);
	EXPECT_EQ(r.fields[0], std::make_pair(string("Host"), string("localhost:8080")));
	EXPECT_EQ(r.fields[3], std::make_pair(string("Accept-Encoding"), string("gzip, deflate")));
	EXPECT_EQ(r.why, "");
}

TEST(Http1Request, ValuesAreTrimmedAndMayBeEmptyOrObsText)
{
	Result r = parse(get("A: \t x y \t\r\nB:\r\nC:   \r\nD: caf\xc3\xa9\r\n"));
	ASSERT_GT(r.rc, 0) << r;
	ASSERT_EQ(r.fields.size(), 5u);
	EXPECT_EQ(r.fields[1].second, "x y");
	EXPECT_EQ(r.fields[2].second, "");
	EXPECT_EQ(r.fields[3].second, "");
	EXPECT_EQ(r.fields[4].second, "caf\xc3\xa9");
}

TEST(Http1Request, MethodsAreRecognisedCaseSensitively)
{
	struct {
		const char *m;
		int id;
	} cases[] = {{"GET", WEFT_HTTP1_GET},	      {"HEAD", WEFT_HTTP1_HEAD},
		     {"POST", WEFT_HTTP1_POST},	      {"PUT", WEFT_HTTP1_PUT},
		     {"DELETE", WEFT_HTTP1_DELETE},   {"OPTIONS", WEFT_HTTP1_OPTIONS},
		     {"TRACE", WEFT_HTTP1_TRACE},     {"PATCH", WEFT_HTTP1_PATCH},
		     {"get", WEFT_HTTP1_OTHER},	      {"PROPFIND", WEFT_HTTP1_OTHER},
		     {"M-SEARCH", WEFT_HTTP1_OTHER}};
	for (auto &c : cases) {
		Result r = parse(string(c.m) + " / HTTP/1.1\r\nHost: h\r\n\r\n");
		ASSERT_GT(r.rc, 0) << c.m;
		EXPECT_EQ(r.method, c.m);
		EXPECT_EQ(r.method_id, c.id) << c.m;
	}
}

TEST(Http1Request, TargetFormsSuitTheirMethods)
{
	EXPECT_GT(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").rc, 0);
	EXPECT_GT(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").rc, 0);
	EXPECT_GT(parse("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n").rc, 0);
	EXPECT_GT(parse("GET /a/b;c?d=e&f=%20#g HTTP/1.1\r\nHost: h\r\n\r\n").rc, 0);
	EXPECT_BAD("GET * HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET example.com HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET 1http://x/ HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST(Http1Request, KeepAliveFollowsVersionAndConnectionTokens)
{
	EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n").flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").flags, 0u);
	EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n").flags, 0u);
	EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: a\r\nconnection: Close\r\n\r\n")
			  .flags,
		  0u);
	Result r = parse("GET / HTTP/1.0\r\n\r\n");
	ASSERT_GT(r.rc, 0) << r; /* HTTP/1.0 needs no Host */
	EXPECT_EQ(r.minor, 0);
	EXPECT_EQ(r.flags, 0u);
	EXPECT_EQ(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").flags,
		  (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	EXPECT_EQ(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").flags, 0u);
}

TEST(Http1Request, UpgradeNeedsTheOptionAndTheHeader)
{
	Result r = parse(get("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
	EXPECT_EQ(r.flags, (unsigned)(WEFT_HTTP1_KEEP_ALIVE | WEFT_HTTP1_UPGRADE));
	EXPECT_EQ(parse(get("Upgrade: websocket\r\n")).flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	EXPECT_EQ(parse(get("Connection: upgrade\r\n")).flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	EXPECT_EQ(parse("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").flags,
		  0u);
}

TEST(Http1Request, ExpectContinueIsFlagged)
{
	string m = "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nExpect: 100-Continue\r\n\r\n";
	EXPECT_EQ(parse(m).flags, (unsigned)(WEFT_HTTP1_KEEP_ALIVE | WEFT_HTTP1_CONTINUE));
}

TEST(Http1Request, FramingFollowsContentLengthAndTransferEncoding)
{
	Result r = parse("POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0042\r\n\r\n");
	EXPECT_EQ(r.framing, WEFT_HTTP1_LENGTH);
	EXPECT_EQ(r.length, 42u);
	r = parse("POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	EXPECT_EQ(r.length, 0u);
	r = parse("POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
	EXPECT_EQ(r.framing, WEFT_HTTP1_CHUNKED);
	r = parse("POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
		  "Transfer-Encoding: Chunked\r\n\r\n");
	EXPECT_EQ(r.framing, WEFT_HTTP1_CHUNKED);
	r = parse("POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip;q=\"a,b\" , ,chunked\r\n\r\n");
	EXPECT_EQ(r.framing, WEFT_HTTP1_CHUNKED) << r;
	/* Equal values, repeated or listed, are one length. */
	r = parse("POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n");
	EXPECT_EQ(r.length, 7u);
	r = parse("POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 7 , 07\r\n\r\n");
	EXPECT_EQ(r.length, 7u);
	r = parse("POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n");
	EXPECT_EQ(r.length, 9223372036854775807u);
}

TEST(Http1Request, EmptyLinesBeforeTheRequestLineAreSkipped)
{
	string m = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
	Result r = parse(m);
	ASSERT_EQ(r.rc, (int)m.size());
	EXPECT_EQ(r.offsets[0], 4u);
	EXPECT_EQ(parse_pieces(m, {1, 2, 3, 4, 5}), r);
	EXPECT_EQ(parse("\r\n").rc, -EAGAIN);
}

TEST(Http1Request, IncompleteHeadsAskForMore)
{
	string m = get("X: y\r\n");
	for (size_t n = 0; n < m.size(); n++)
		EXPECT_EQ(parse(m.substr(0, n)).rc, -EAGAIN) << n;
}

TEST(Http1Request, FindIgnoresCaseAndResumes)
{
	string m = get("X-A: 1\r\nx-a: 2\r\nX-B: 3\r\n");
	weft_http1_header hdrs[8];
	weft_http1_parser p;
	weft_http1_parser_init(&p, nullptr, hdrs, 8);
	weft_http1_head h;
	ASSERT_GT(weft_http1_parse_request(&p, m.data(), m.size(), &h), 0);
	EXPECT_EQ(weft_http1_find(&h, "HOST", 4, 0), 0);
	EXPECT_EQ(weft_http1_find(&h, "x-A", 3, 0), 1);
	EXPECT_EQ(weft_http1_find(&h, "x-A", 3, 2), 2);
	EXPECT_EQ(weft_http1_find(&h, "x-A", 3, 3), -ENOENT);
	EXPECT_EQ(weft_http1_find(&h, "X-C", 3, 0), -ENOENT);
	EXPECT_EQ(weft_http1_find(&h, "X-", 2, 0), -ENOENT);
}

TEST(Http1Request, HasTokenReadsListsIgnoringCaseAndParameters)
{
	auto has = [](const char *v, const char *t) {
		return weft_http1_has_token(v, strlen(v), t, strlen(t));
	};
	EXPECT_EQ(has("keep-alive, Upgrade", "upgrade"), 1);
	EXPECT_EQ(has(" , gzip;q=\"x,chunked\" ,chunked ", "chunked"), 1);
	EXPECT_EQ(has("gzip;q=\"x,chunked\"", "chunked"), 0);
	EXPECT_EQ(has("closed", "close"), 0);
	EXPECT_EQ(has("", "close"), 0);
}

/* ---- Rejected requests: one case per rule ----------------------------------------- */

TEST(Http1Reject, ContentLengthWithTransferEncoding)
{
	EXPECT_BAD(get("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"));
}

TEST(Http1Reject, ObsFold)
{
	EXPECT_BAD(get("X: a\r\n b\r\n"));
	EXPECT_BAD(get("X: a\r\n\tb\r\n"));
	EXPECT_BAD("GET / HTTP/1.1\r\n Host: h\r\n\r\n");
}

TEST(Http1Reject, InvalidTokenCharsInMethodAndFieldNames)
{
	EXPECT_BAD("G(T / HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD(" GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("/ HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD(get("X@Y: z\r\n"));
	EXPECT_BAD(get("X Y: z\r\n"));
	EXPECT_BAD(get("X\xc3\xa9: z\r\n"));
	EXPECT_BAD(get(": z\r\n"));
	EXPECT_BAD(get("no colon\r\n"));
}

TEST(Http1Reject, BareCrAndBareLf)
{
	EXPECT_BAD(get("X: a\rb\r\n"));
	EXPECT_BAD(get("X: a\r\r\n"));
	EXPECT_BAD("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD(get("\rX: a\r\n"));
	EXPECT_BAD("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1.1\nHost: h\r\n\r\n");
	EXPECT_BAD(get("X: a\n"));
	EXPECT_BAD("GET / HTTP/1.1\r\nHost: h\n\n");
	/* A bare LF is rejected as soon as its line arrives. */
	EXPECT_BAD("GET / HTTP/1.1\r\nX: a\n");
}

TEST(Http1Reject, WhitespaceBeforeColon)
{
	EXPECT_BAD(get("X : a\r\n"));
	EXPECT_BAD(get("Content-Length\t: 5\r\n"));
}

TEST(Http1Reject, ControlCharsInFieldValues)
{
	EXPECT_BAD(get(string("X: a\0b\r\n", 8)));
	EXPECT_BAD(get("X: a\x01\r\n"));
	EXPECT_BAD(get("X: a\x7f\r\n"));
	EXPECT_BAD(get("X: \x1b[0m\r\n"));
}

TEST(Http1Reject, ConflictingOrMalformedContentLength)
{
	EXPECT_BAD(get("Content-Length: 5\r\nContent-Length: 6\r\n"));
	EXPECT_BAD(get("Content-Length: 5, 6\r\n"));
	EXPECT_BAD(get("Content-Length: 5,,5\r\n"));
	EXPECT_BAD(get("Content-Length:\r\n"));
	EXPECT_BAD(get("Content-Length: +5\r\n"));
	EXPECT_BAD(get("Content-Length: -1\r\n"));
	EXPECT_BAD(get("Content-Length: 5a\r\n"));
	EXPECT_BAD(get("Content-Length: 0x5\r\n"));
	EXPECT_BAD(get("Content-Length: 5 5\r\n"));
	EXPECT_BAD(get("Content-Length: 1.0\r\n"));
}

TEST(Http1Reject, OverflowingContentLength)
{
	Result r = parse(get("Content-Length: 9223372036854775808\r\n"));
	EXPECT_EQ(r.rc, -EBADMSG);
	EXPECT_EQ(r.why, "Content-Length too large");
	EXPECT_BAD(get("Content-Length: 18446744073709551616\r\n"));
	EXPECT_BAD(get("Content-Length: 99999999999999999999999999\r\n"));
}

TEST(Http1Reject, TransferEncodingNotEndingInChunked)
{
	EXPECT_BAD(get("Transfer-Encoding: gzip\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: chunked, gzip\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: chunked, chunked\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: chunked;x=1\r\n"));
	EXPECT_BAD(get("Transfer-Encoding:\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: ,\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: chunked x\r\n"));
	EXPECT_BAD(get("Transfer-Encoding: \"chunked\"\r\n"));
}

TEST(Http1Reject, TransferEncodingInHttp10)
{
	EXPECT_BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
	EXPECT_BAD("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", WEFT_HTTP1_GET);
}

TEST(Http1Reject, VersionsOtherThan10And11)
{
	for (const char *v : {"HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "HTTP/3.0"}) {
		Result r = parse(string("GET / ") + v + "\r\nHost: h\r\n\r\n");
		EXPECT_EQ(r.rc, -EPROTONOSUPPORT) << v;
		EXPECT_EQ(r.status, 505);
	}
	EXPECT_EQ(parse("HTTP/2.0 200 OK\r\n\r\n", WEFT_HTTP1_GET).rc, -EPROTONOSUPPORT);
	EXPECT_BAD("GET / http/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1.10\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET / HTTP/11\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1.1 \r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET /\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1\r\n\r\n");
}

TEST(Http1Reject, ControlCharsOrSpacesInTarget)
{
	EXPECT_BAD("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n");
	{
		static const char m[] = "GET /a\0 HTTP/1.1\r\nHost: h\r\n\r\n";
		EXPECT_BAD(string(m, sizeof(m) - 1));
	}
	EXPECT_BAD("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n");
	EXPECT_BAD("GET  / HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST(Http1Reject, MissingDuplicateOrInvalidHost)
{
	EXPECT_BAD("GET / HTTP/1.1\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n");
	EXPECT_BAD("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n");
	/* An empty Host is allowed (the target names no authority). */
	EXPECT_GT(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n").rc, 0);
	EXPECT_GT(parse("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").rc, 0);
}

/* ---- Limits --------------------------------------------------------------------- */

TEST(Http1Limits, RequestLineLongerThanMaxLineIs414)
{
	weft_http1_limits lim = {32, 0};
	string line = "GET /" + string(32 - 14, 'a') + " HTTP/1.1"; /* 32 bytes */
	ASSERT_EQ(line.size(), 32u);
	EXPECT_GT(parse(line + "\r\nHost: h\r\n\r\n", kReq, &lim).rc, 0);
	Result r = parse("GET /" + string(32 - 13, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", kReq, &lim);
	EXPECT_EQ(r.rc, -EMSGSIZE);
	EXPECT_EQ(r.status, 414);
	/* Known too long before its end arrives. */
	r = parse("GET /" + string(40, 'a'), kReq, &lim);
	EXPECT_EQ(r.rc, -EMSGSIZE);
	EXPECT_EQ(parse("GET /" + string(27, 'a'), kReq, &lim).rc, -EAGAIN);
	EXPECT_EQ(parse("GET /" + string(27, 'a') + "\r", kReq, &lim).rc, -EAGAIN);
	EXPECT_EQ(parse("GET /" + string(28, 'a'), kReq, &lim).rc, -EAGAIN);
	EXPECT_EQ(parse("GET /" + string(29, 'a'), kReq, &lim).rc, -EMSGSIZE);
}

TEST(Http1Limits, FieldLineLongerThanMaxLineIs431)
{
	weft_http1_limits lim = {32, 0};
	string ok = "X: " + string(29, 'v'); /* 32 bytes */
	EXPECT_GT(parse(get(ok + "\r\n"), kReq, &lim).rc, 0);
	Result r = parse(get(ok + "v\r\n"), kReq, &lim);
	EXPECT_EQ(r.rc, -EMSGSIZE);
	EXPECT_EQ(r.status, 431);
}

TEST(Http1Limits, HeadLargerThanMaxHeadIs431)
{
	string m = get("X: 12345\r\n");
	weft_http1_limits lim = {0, (uint32_t)m.size()};
	EXPECT_EQ(parse(m, kReq, &lim).rc, (int)m.size());
	lim.max_head--;
	Result r = parse(m, kReq, &lim);
	EXPECT_EQ(r.rc, -EMSGSIZE);
	EXPECT_EQ(r.status, 431);
	/* Known too large before the blank line arrives. */
	EXPECT_EQ(parse(m.substr(0, m.size() - 2), kReq, &lim).rc, -EAGAIN);
	lim.max_head = 20;
	EXPECT_EQ(parse(m.substr(0, 21), kReq, &lim).rc, -EMSGSIZE);
	/* Skipped empty lines count too. */
	lim.max_head = (uint32_t)m.size() + 1;
	EXPECT_EQ(parse("\r\n" + m, kReq, &lim).rc, -EMSGSIZE);
}

TEST(Http1Limits, MoreFieldsThanTheArrayHoldsIsE2big)
{
	string four = get("A: 1\r\nB: 2\r\nC: 3\r\n");
	EXPECT_GT(parse(four, kReq, nullptr, 4).rc, 0);
	Result r = parse(four, kReq, nullptr, 3);
	EXPECT_EQ(r.rc, -E2BIG);
	EXPECT_EQ(r.status, 431);
	EXPECT_EQ(parse("GET / HTTP/1.0\r\n\r\n", kReq, nullptr, 0).rc, 18);
}

/* ---- Responses ------------------------------------------------------------------- */

TEST(Http1Response, StatusReasonAndFraming)
{
	Result r = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n", WEFT_HTTP1_GET);
	ASSERT_GT(r.rc, 0) << r;
	EXPECT_EQ(r.status, 200);
	EXPECT_EQ(r.reason, "OK");
	EXPECT_EQ(r.minor, 1);
	EXPECT_EQ(r.framing, WEFT_HTTP1_LENGTH);
	EXPECT_EQ(r.length, 5u);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	r = parse("HTTP/1.1 404 Not  Found \t\r\nContent-Length: 0\r\n\r\n", WEFT_HTTP1_GET);
	EXPECT_EQ(r.reason, "Not  Found \t");
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	r = parse("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", WEFT_HTTP1_GET);
	EXPECT_GT(r.rc, 0);
	EXPECT_EQ(r.reason, "");
	r = parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", WEFT_HTTP1_GET);
	EXPECT_GT(r.rc, 0);
	EXPECT_EQ(r.reason, "");
}

TEST(Http1Response, ChunkedUntilCloseAndLength)
{
	Result r = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", WEFT_HTTP1_GET);
	EXPECT_EQ(r.framing, WEFT_HTTP1_CHUNKED);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	r = parse("HTTP/1.1 200 OK\r\n\r\n", WEFT_HTTP1_GET);
	EXPECT_EQ(r.framing, WEFT_HTTP1_UNTIL_CLOSE);
	EXPECT_EQ(r.flags, 0u);
	/* A response's final coding need not be chunked: read until close. */
	r = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", WEFT_HTTP1_GET);
	EXPECT_EQ(r.framing, WEFT_HTTP1_UNTIL_CLOSE);
	EXPECT_EQ(r.flags, 0u);
	r = parse("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", WEFT_HTTP1_GET);
	EXPECT_EQ(r.framing, WEFT_HTTP1_LENGTH);
	EXPECT_EQ(r.flags, 0u);
	r = parse("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n",
		  WEFT_HTTP1_GET);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
}

TEST(Http1Response, StatusesAndHeadRequestsWithoutBody)
{
	for (int st : {100, 103, 204, 304}) {
		Result r = parse("HTTP/1.1 " + std::to_string(st) +
					 " X\r\nContent-Length: 10\r\n\r\n",
				 WEFT_HTTP1_GET);
		EXPECT_EQ(r.status, st);
		EXPECT_EQ(r.framing, WEFT_HTTP1_NONE) << st;
		EXPECT_EQ(r.length, 0u);
		EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
	}
	Result r = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", WEFT_HTTP1_HEAD);
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	r = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", WEFT_HTTP1_HEAD);
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	r = parse("HTTP/1.1 200 OK\r\n\r\n", WEFT_HTTP1_HEAD);
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
}

TEST(Http1Response, SwitchingProtocolsAndTunnels)
{
	Result r = parse("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
			 "Upgrade: websocket\r\n\r\n",
			 WEFT_HTTP1_GET);
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_UPGRADE);
	r = parse("HTTP/1.1 200 Connection established\r\n\r\n", WEFT_HTTP1_CONNECT);
	EXPECT_EQ(r.framing, WEFT_HTTP1_NONE);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_TUNNEL);
	r = parse("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", WEFT_HTTP1_CONNECT);
	EXPECT_EQ(r.framing, WEFT_HTTP1_LENGTH);
	EXPECT_EQ(r.flags, (unsigned)WEFT_HTTP1_KEEP_ALIVE);
}

TEST(Http1Response, MalformedStatusLinesAreRejected)
{
	int g = WEFT_HTTP1_GET;
	EXPECT_BAD("HTTP/1.1 20 OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 2000 OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 099 OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 600 OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 20x OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 200OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1  200 OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 200 O\x01K\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 200 O\rK\r\n\r\n", g);
	EXPECT_BAD("\r\nHTTP/1.1 200 OK\r\n\r\n", g);
	EXPECT_BAD(" HTTP/1.1 200 OK\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		   g);
	EXPECT_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", g);
	EXPECT_BAD("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", g);
}

/* ---- Feeding in pieces gives the result of feeding whole --------------------------- */

const char *const kSplitRequests[] = {
	"GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
	"\r\nPOST /p?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n",	     /* rejected */
	"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n z\r\n\r\n", /* rejected */
	"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",	     /* rejected early */
	"GET / HTTP/2.0\r\nHost: h\r\n\r\n",		     /* 505 */
};

TEST(Http1Split, EverySplitPointGivesTheWholeResult)
{
	for (const char *m : kSplitRequests) {
		string msg = m;
		Result whole = parse(msg);
		for (size_t cut = 0; cut <= msg.size(); cut++)
			EXPECT_EQ(parse_pieces(msg, {cut}), whole) << msg << " cut " << cut;
	}
	string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n";
	Result whole = parse(resp, WEFT_HTTP1_GET);
	ASSERT_GT(whole.rc, 0);
	for (size_t cut = 0; cut <= resp.size(); cut++)
		EXPECT_EQ(parse_pieces(resp, {cut}, WEFT_HTTP1_GET), whole) << cut;
}

TEST(Http1Split, ByteAtATimeGivesTheWholeResult)
{
	for (const char *m : kSplitRequests) {
		string msg = m;
		std::vector<size_t> cuts;
		for (size_t i = 1; i < msg.size(); i++)
			cuts.push_back(i);
		EXPECT_EQ(parse_pieces(msg, cuts), parse(msg)) << msg;
	}
	weft_http1_limits lim = {16, 64};
	string longline = "GET /" + string(40, 'a') + " HTTP/1.1\r\n\r\n";
	std::vector<size_t> cuts;
	for (size_t i = 1; i < longline.size(); i++)
		cuts.push_back(i);
	/* Rejected at the 19th byte, before the line ends. */
	weft_http1_parser p;
	weft_http1_header hdrs[4];
	weft_http1_parser_init(&p, &lim, hdrs, 4);
	weft_http1_head h;
	size_t n = 1;
	int rc;
	while ((rc = weft_http1_parse_request(&p, longline.data(), n, &h)) == -EAGAIN)
		n++;
	EXPECT_EQ(rc, -EMSGSIZE);
	EXPECT_EQ(n, 18u);
}

TEST(Http1Split, ByteAtATimeOverALargeHeadStaysLinear)
{
	/* 60 KiB of fields fed a byte at a time: each call looks only at the
	 * new byte, so this is 60 K short calls, not 1.8 G byte visits (a
	 * quadratic scan would make this test take seconds). */
	string m = "GET / HTTP/1.1\r\nHost: h\r\n";
	unsigned fields = 1;
	for (; m.size() < 60000; fields++)
		m += "X-Field: " + string(50, 'v') + "\r\n";
	m += "\r\n";
	weft_http1_header hdrs[1200];
	weft_http1_parser p;
	weft_http1_parser_init(&p, nullptr, hdrs, 1200);
	weft_http1_head h;
	int rc = -EAGAIN;
	size_t n = 0;
	while (rc == -EAGAIN && n < m.size())
		rc = weft_http1_parse_request(&p, m.data(), ++n, &h);
	EXPECT_EQ(rc, (int)m.size());
	EXPECT_EQ(weft_http1_find(&h, "x-field", 7, 0), 1);
	EXPECT_EQ(h.nheaders, fields);
	EXPECT_EQ(S(h.headers[h.nheaders - 1].value), string(50, 'v'));
}

/* ---- Bodies ----------------------------------------------------------------------- */

struct Body {
	int rc = 0;		/* the last call's */
	size_t consumed = 0;	/* in all */
	string payload;
	string why;
	bool operator==(const Body &o) const
	{
		return rc == o.rc && consumed == o.consumed && payload == o.payload && why == o.why;
	}
};

std::ostream &operator<<(std::ostream &os, const Body &b)
{
	return os << "rc=" << b.rc << " consumed=" << b.consumed << " payload=" << b.payload
		  << " why=" << b.why;
}

/* Decodes data fed in pieces ending at cuts (then whole), each piece from a
 * fresh copy; stops at the body's end or an error. */
Body decode(const string &data, weft_http1_framing framing, uint64_t length = 0,
	    std::vector<size_t> cuts = {}, const weft_http1_limits *lim = nullptr)
{
	weft_http1_body b;
	weft_http1_body_init(&b, framing, length, lim);
	Body out;
	cuts.push_back(data.size());
	size_t at = 0;
	for (size_t end : cuts) {
		if (end < at)
			continue;
		std::vector<char> piece(data.begin() + at, data.begin() + end);
		size_t off = 0;
		for (;;) {
			size_t used = 99;
			weft_http1_slice d;
			out.rc = weft_http1_body_decode(&b, piece.data() + off, piece.size() - off,
							&used, &d);
			EXPECT_LE(used, piece.size() - off);
			EXPECT_GE(d.ptr, piece.data() + off);
			EXPECT_LE(d.ptr + d.len, piece.data() + off + used);
			out.payload.append(d.ptr, d.len);
			off += used;
			if (out.rc != 0 || off == piece.size())
				break;
		}
		at += off;
		out.consumed = at;
		if (out.rc != 0) {
			out.why = weft_http1_body_error(&b);
			return out;
		}
	}
	return out;
}

TEST(Http1Body, ContentLengthStopsAtTheLength)
{
	Body b = decode("helloGET", WEFT_HTTP1_LENGTH, 5);
	EXPECT_EQ(b.rc, 1);
	EXPECT_EQ(b.consumed, 5u);
	EXPECT_EQ(b.payload, "hello");
	b = decode("hel", WEFT_HTTP1_LENGTH, 5);
	EXPECT_EQ(b.rc, 0);
	EXPECT_EQ(b.payload, "hel");
	b = decode("abc", WEFT_HTTP1_NONE);
	EXPECT_EQ(b.rc, 1);
	EXPECT_EQ(b.consumed, 0u);
	b = decode("abc", WEFT_HTTP1_UNTIL_CLOSE);
	EXPECT_EQ(b.rc, 0);
	EXPECT_EQ(b.payload, "abc");
}

TEST(Http1Body, EofEndsOnlyCompleteOrUntilCloseBodies)
{
	weft_http1_body b;
	weft_http1_slice d;
	size_t n;
	weft_http1_body_init(&b, WEFT_HTTP1_LENGTH, 5, nullptr);
	EXPECT_EQ(weft_http1_body_decode(&b, "hel", 3, &n, &d), 0);
	EXPECT_EQ(weft_http1_body_eof(&b), -EPROTO);
	EXPECT_EQ(weft_http1_body_decode(&b, "lo", 2, &n, &d), 1);
	EXPECT_EQ(weft_http1_body_eof(&b), 0);
	weft_http1_body_init(&b, WEFT_HTTP1_UNTIL_CLOSE, 0, nullptr);
	EXPECT_EQ(weft_http1_body_eof(&b), 0);
	weft_http1_body_init(&b, WEFT_HTTP1_CHUNKED, 0, nullptr);
	EXPECT_EQ(weft_http1_body_decode(&b, "5\r\nab", 5, &n, &d), 0);
	EXPECT_EQ(weft_http1_body_eof(&b), -EPROTO);
	EXPECT_EQ(weft_http1_body_decode(&b, "cdeX", 4, &n, &d), -EBADMSG);
	EXPECT_EQ(n, 3u); /* short of the bad byte */
	EXPECT_EQ(weft_http1_body_eof(&b), -EBADMSG);
	EXPECT_EQ(weft_http1_body_decode(&b, "\r\n", 2, &n, &d), -EBADMSG);
	EXPECT_EQ(n, 0u);
}

const string kChunked = "5;name=value;quoted=\"a \\\"b\\\" ;c\"\r\nhello\r\n"
			"0000B ; x ; y = z\r\n world, and\r\n"
			"1\r\n!\r\n"
			"0;last\r\nExpires: never\r\nX-Sum:  abc \r\n\r\n"
			"GET / HTTP/1.1\r\n";

TEST(Http1Body, ChunkedWithExtensionsAndTrailers)
{
	Body b = decode(kChunked, WEFT_HTTP1_CHUNKED);
	EXPECT_EQ(b.rc, 1) << b;
	EXPECT_EQ(b.payload, "hello world, and!");
	EXPECT_EQ(b.consumed, kChunked.find("GET"));
	EXPECT_EQ(decode("0\r\n\r\n", WEFT_HTTP1_CHUNKED).consumed, 5u);
	EXPECT_EQ(decode("000\r\n\r\n", WEFT_HTTP1_CHUNKED).rc, 1);
	EXPECT_EQ(decode("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", WEFT_HTTP1_CHUNKED)
			  .payload,
		  "01234567890123456789");
}

TEST(Http1Body, ChunkedEverySplitGivesTheWholeResult)
{
	Body whole = decode(kChunked, WEFT_HTTP1_CHUNKED);
	for (size_t a = 0; a <= kChunked.size(); a++) {
		EXPECT_EQ(decode(kChunked, WEFT_HTTP1_CHUNKED, 0, {a}), whole) << a;
		for (size_t c = a; c <= kChunked.size(); c += 7)
			ASSERT_EQ(decode(kChunked, WEFT_HTTP1_CHUNKED, 0, {a, c}), whole) << a << " " << c;
	}
	std::vector<size_t> each;
	for (size_t i = 1; i < kChunked.size(); i++)
		each.push_back(i);
	EXPECT_EQ(decode(kChunked, WEFT_HTTP1_CHUNKED, 0, each), whole);
	/* A rejected body fails at the same byte however it is split. */
	string bad = "5\r\nhello\r\n3;a=\"x\r\nabc\r\n0\r\n\r\n";
	Body bw = decode(bad, WEFT_HTTP1_CHUNKED);
	EXPECT_EQ(bw.rc, -EBADMSG);
	for (size_t a = 0; a <= bad.size(); a++)
		EXPECT_EQ(decode(bad, WEFT_HTTP1_CHUNKED, 0, {a}), bw) << a;
}

TEST(Http1Body, BadChunkSizesAreRejected)
{
	for (const char *s : {"\r\n", "x\r\n", "-1\r\n", "+1\r\n", "0x1\r\n", "1 2\r\n", "1 \r\n",
			      " 1\r\n", "1\n", "1\rx", "g\r\n", ";x\r\n"}) {
		Body b = decode(string(s) + "a\r\n0\r\n\r\n", WEFT_HTTP1_CHUNKED);
		EXPECT_EQ(b.rc, -EBADMSG) << s;
		EXPECT_NE(b.why, "");
	}
	Body b = decode("8000000000000000\r\n", WEFT_HTTP1_CHUNKED);
	EXPECT_EQ(b.rc, -EBADMSG);
	EXPECT_EQ(b.why, "chunk size too large");
	b = decode("fffffffffffffffffff\r\n", WEFT_HTTP1_CHUNKED);
	EXPECT_EQ(b.rc, -EBADMSG);
	b = decode("7fffffffffffffff\r\nabc", WEFT_HTTP1_CHUNKED);
	EXPECT_EQ(b.rc, 0);
	EXPECT_EQ(b.payload, "abc");
	b = decode("00000000000000000000000000001\r\nx\r\n0\r\n\r\n", WEFT_HTTP1_CHUNKED);
	EXPECT_EQ(b.rc, 1);
}

TEST(Http1Body, BadExtensionsDataEndsAndTrailersAreRejected)
{
	for (const char *s : {"1;\r\n", "1;=v\r\n", "1;a=\r\n", "1;a b\r\n", "1;a=\"x\r\n",
			      "1;a=\"\x01\"\r\n", "1;a=b c\r\n", "1;a=b \r\n", "1;a@\r\n",
			      "1 ;a=\"b\"x\r\n"}) {
		Body b = decode(string(s) + "x\r\n0\r\n\r\n", WEFT_HTTP1_CHUNKED);
		EXPECT_EQ(b.rc, -EBADMSG) << s;
	}
	EXPECT_EQ(decode("1 ; a = \"b\\\"\" ; c\r\nx\r\n0\r\n\r\n", WEFT_HTTP1_CHUNKED).rc, 1);
	for (const char *s : {"3\r\nabcd\r\n", "3\r\nabc\n", "3\r\nabc\r\r",
			      "0\r\nX : y\r\n\r\n", "0\r\n y\r\n\r\n", "0\r\nX: a\x01\r\n\r\n",
			      "0\r\nX\r\n\r\n", "0\r\nX: y\n\r\n", "0\r\n\n", "0\r\n\rx"}) {
		Body b = decode(s, WEFT_HTTP1_CHUNKED);
		EXPECT_EQ(b.rc, -EBADMSG) << s;
	}
}

TEST(Http1Body, ChunkLineAndTrailerLimits)
{
	weft_http1_limits lim = {8, 20};
	EXPECT_EQ(decode("1;abcdef\r\nx\r\n0\r\n\r\n", WEFT_HTTP1_CHUNKED, 0, {}, &lim).rc, 1);
	EXPECT_EQ(decode("1;abcdefg\r\nx\r\n0\r\n\r\n", WEFT_HTTP1_CHUNKED, 0, {}, &lim).rc,
		  -EMSGSIZE);
	EXPECT_EQ(decode("0\r\nA: 12345\r\n\r\n", WEFT_HTTP1_CHUNKED, 0, {}, &lim).rc, 1);
	EXPECT_EQ(decode("0\r\nA: 123456\r\n\r\n", WEFT_HTTP1_CHUNKED, 0, {}, &lim).rc, -EMSGSIZE);
	EXPECT_EQ(decode("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", WEFT_HTTP1_CHUNKED, 0, {}, &lim).rc, 1);
	EXPECT_EQ(decode("0\r\nA: 1\r\nB: 2\r\nC: 34\r\n\r\n", WEFT_HTTP1_CHUNKED, 0, {}, &lim).rc,
		  -EMSGSIZE);
}

/* ---- Pipelining -------------------------------------------------------------------- */

TEST(Http1Pipeline, EachMessageIsReadOnceAndTheNextStartsAfterIt)
{
	string stream = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
			"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
			"\r\n" /* an extra CRLF after a body, as some clients send */
			"PUT /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
			"3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n"
			"GET /4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
			"GET /5 HTTP/1.1\r\nHo";
	const char *want_target[] = {"/1", "/2", "/3", "/4"};
	const char *want_body[] = {"", "hello", "abc", ""};
	unsigned want_flags[] = {1, 1, 1, 0};
	weft_http1_header hdrs[8];
	weft_http1_parser p;
	weft_http1_parser_init(&p, nullptr, hdrs, 8);
	size_t at = 0;
	for (int i = 0; i < 4; i++) {
		weft_http1_head h;
		int n = weft_http1_parse_request(&p, stream.data() + at, stream.size() - at, &h);
		ASSERT_GT(n, 0) << i;
		EXPECT_EQ(S(h.target), want_target[i]);
		EXPECT_EQ(h.flags, want_flags[i]);
		at += n;
		weft_http1_body b;
		weft_http1_body_init(&b, h.framing, h.content_length, nullptr);
		string body;
		int rc;
		do {
			size_t used;
			weft_http1_slice d;
			rc = weft_http1_body_decode(&b, stream.data() + at, stream.size() - at, &used,
						    &d);
			body.append(d.ptr, d.len);
			at += used;
		} while (rc == 0);
		EXPECT_EQ(rc, 1);
		EXPECT_EQ(body, want_body[i]);
	}
	weft_http1_head h;
	EXPECT_EQ(weft_http1_parse_request(&p, stream.data() + at, stream.size() - at, &h), -EAGAIN);
}

TEST(Http1Pipeline, InterimResponsesPrecedeTheFinalOne)
{
	string stream = "HTTP/1.1 100 Continue\r\n\r\n"
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
			"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
	int want_status[] = {100, 200, 304, 200};
	weft_http1_header hdrs[8];
	weft_http1_parser p;
	weft_http1_parser_init(&p, nullptr, hdrs, 8);
	size_t at = 0;
	string bodies;
	for (int st : want_status) {
		weft_http1_head h;
		int n = weft_http1_parse_response(&p, stream.data() + at, stream.size() - at, &h,
						  WEFT_HTTP1_GET);
		ASSERT_GT(n, 0);
		EXPECT_EQ(h.status, st);
		at += n;
		weft_http1_body b;
		weft_http1_body_init(&b, h.framing, h.content_length, nullptr);
		int rc;
		do {
			size_t used;
			weft_http1_slice d;
			rc = weft_http1_body_decode(&b, stream.data() + at, stream.size() - at, &used,
						    &d);
			bodies.append(d.ptr, d.len);
			at += used;
		} while (rc == 0);
		EXPECT_EQ(rc, 1);
	}
	EXPECT_EQ(at, stream.size());
	EXPECT_EQ(bodies, "okhi");
}

} // namespace
