// SPDX-License-Identifier: MIT
/*
 * weft/http1.h - a strict, incremental, zero-copy HTTP/1.1 parser: request
 * and response heads (RFC 9112 sections 2-5), message framing (section 6)
 * and body decoding, Content-Length and chunked (section 7.1).
 *
 * Nothing here allocates, blocks or touches the runtime, so every function
 * may be called from any thread, in a task or not; a parser is used by one
 * thread at a time.  The parser works
 * on the caller's bytes and hands back (pointer, length) slices into them,
 * so a slice is valid as long as those bytes stay where they are.  Every
 * int return is >= 0 on success or a negative errno; errno is never set.
 *
 * Reading a head.  Give the parser everything received so far for the
 * current message, starting at its first byte:
 *
 *	n = weft_http1_parse_request(&p, buf, len, &head);
 *	n > 0:        the head is buf[0, n): use head, then the body (if any)
 *	              starts at buf + n, and pipelined requests after it;
 *	-EAGAIN:      receive more, append, call again with the longer buffer
 *	              (it may have moved: nothing points into it meanwhile);
 *	other errors: the message is malformed or too large: answer with
 *	              weft_http1_parser_error's status and close.
 *
 * A call scans only the bytes it has not seen, for the blank line that ends
 * the head, and parses the head once, when that line is there: feeding a
 * head in n pieces costs O(length), not O(n * length).
 *
 * Reading a body.  weft_http1_body_init with the head's framing, then feed
 * weft_http1_body_decode the bytes after the head, split anywhere; it says
 * how many it consumed, which of them are payload, and when the message
 * ends, so that the bytes after it are left for the next message.
 *
 * Strictness: what RFC 9112 says to reject is rejected, and framing that
 * could be read two ways is an error, never a guess; net/http1.c lists the
 * rules and the few leniencies.  Lines end in CRLF only.
 */
#ifndef WEFT_HTTP1_H
#define WEFT_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef WEFT_API
#define WEFT_API __attribute__((visibility("default")))
#endif

/* Bytes of the caller's buffer; never NUL-terminated. */
struct weft_http1_slice {
	const char *ptr;
	size_t len;
};

/* One field line: the name as sent (compare it case-insensitively) and the
 * value without leading or trailing whitespace (possibly empty). */
struct weft_http1_header {
	struct weft_http1_slice name;
	struct weft_http1_slice value;
};

/* The request methods the parser recognises; others are WEFT_HTTP1_OTHER
 * (the method slice still holds them).  Methods are case-sensitive. */
enum weft_http1_method {
	WEFT_HTTP1_OTHER = 0,
	WEFT_HTTP1_GET,
	WEFT_HTTP1_HEAD,
	WEFT_HTTP1_POST,
	WEFT_HTTP1_PUT,
	WEFT_HTTP1_DELETE,
	WEFT_HTTP1_CONNECT,
	WEFT_HTTP1_OPTIONS,
	WEFT_HTTP1_TRACE,
	WEFT_HTTP1_PATCH,
};

/* How the body of a message is delimited (RFC 9112 section 6.3). */
enum weft_http1_framing {
	WEFT_HTTP1_NONE = 0,	/* no body (including Content-Length: 0) */
	WEFT_HTTP1_LENGTH,	/* content_length bytes */
	WEFT_HTTP1_CHUNKED,	/* chunked transfer coding, with trailers */
	WEFT_HTTP1_UNTIL_CLOSE, /* responses only: everything until EOF */
};

/* weft_http1_head.flags */
enum {
	/* Another message may follow on this connection: HTTP/1.1 without
	 * "Connection: close", or HTTP/1.0 with "Connection: keep-alive";
	 * never with UNTIL_CLOSE framing, a 101 or a tunnel. */
	WEFT_HTTP1_KEEP_ALIVE = 1u << 0,
	/* An HTTP/1.1 request with an Upgrade header and the "upgrade"
	 * connection option, or a 101 (Switching Protocols) response. */
	WEFT_HTTP1_UPGRADE = 1u << 1,
	/* An HTTP/1.1 request with "Expect: 100-continue". */
	WEFT_HTTP1_CONTINUE = 1u << 2,
	/* A 2xx response to CONNECT: the connection is now a tunnel. */
	WEFT_HTTP1_TUNNEL = 1u << 3,
};

/* A parsed request or response head.  Slices point into the parsed buffer. */
struct weft_http1_head {
	/* Requests: method token, its recognised kind, and the request-target
	 * exactly as sent (origin, absolute, authority or asterisk form). */
	struct weft_http1_slice method;
	struct weft_http1_slice target;
	enum weft_http1_method method_id;
	/* Responses: status code (100-599) and reason phrase (maybe empty). */
	int status;
	struct weft_http1_slice reason;
	/* Both: 0 for HTTP/1.0, 1 for HTTP/1.1. */
	int minor;
	/* The parser's header array (weft_http1_parser_init), in order. */
	struct weft_http1_header *headers;
	unsigned nheaders;
	unsigned flags; /* WEFT_HTTP1_KEEP_ALIVE ... */
	enum weft_http1_framing framing;
	/* framing LENGTH: the body's length (> 0); otherwise 0. */
	uint64_t content_length;
};

/* Limits; a 0 field takes its default. */
struct weft_http1_limits {
	/* Bytes in the start line or in one field line, CRLF excluded (also
	 * a chunk-size line, a trailer line).  Default 8 KiB. */
	uint32_t max_line;
	/* Bytes in a head, from its first byte to the end of its blank line
	 * (also the trailer section).  Default 64 KiB; at most 1 GiB. */
	uint32_t max_head;
};

#define WEFT_HTTP1_MAX_LINE 8192u
#define WEFT_HTTP1_MAX_HEAD 65536u

/* A head parser for one connection.  Fields are private. */
struct weft_http1_parser {
	struct weft_http1_header *headers; /* the caller's array */
	unsigned max_headers;		   /* its capacity */
	uint32_t max_line, max_head;
	/* Between -EAGAIN returns: offsets into the caller's buffer. */
	uint32_t pos;	/* start of the first line not yet terminated */
	uint32_t start; /* first byte of the start line (after empty lines) */
	uint32_t seen;	/* bytes already searched for LF */
	int status;	/* of the last error */
	const char *why;
};

/*
 * Prepares p for a connection's heads.  headers[0, max_headers) receives the
 * field lines of each head; more than max_headers field lines is -E2BIG.
 * The array must outlive p's use, and holds the last head's fields until
 * the next parse.  lim may be NULL (the defaults).  No failure path.
 */
WEFT_API void weft_http1_parser_init(struct weft_http1_parser *p,
				     const struct weft_http1_limits *lim,
				     struct weft_http1_header *headers, unsigned max_headers);

/*
 * Parses the request head at the start of buf[0, len) into *h.  Returns the
 * head's length n > 0 (the body and any pipelined request start at buf + n),
 * or:
 *  -EAGAIN           no blank line yet: call again with more bytes;
 *  -EBADMSG          malformed or ambiguous (answer 400);
 *  -EMSGSIZE         the request line (414), a field line or the head (431)
 *                    is longer than the limits;
 *  -E2BIG            more field lines than the header array holds (431);
 *  -EPROTONOSUPPORT  a well-formed version other than HTTP/1.0 or 1.1 (505).
 * Empty lines before the request line are skipped (RFC 9112 section 2.2)
 * and count in n.  Between an -EAGAIN and the next call, the bytes already
 * given must not change; the buffer may move.  After any other return p is
 * ready for the next message.  *h is meaningful only when n > 0.
 */
WEFT_API int weft_http1_parse_request(struct weft_http1_parser *p, const char *buf, size_t len,
				      struct weft_http1_head *h);

/*
 * Parses the response head at the start of buf[0, len) into *h, as
 * weft_http1_parse_request does.  req is the method of the request it
 * answers: a response to HEAD has no body whatever its headers say, and a
 * 2xx to CONNECT makes the connection a tunnel.  A 1xx other than 101 is
 * interim: the final response to the same request follows it.  Returns the
 * head's length or -EAGAIN, -EBADMSG, -EMSGSIZE, -E2BIG, -EPROTONOSUPPORT.
 * A status line without a reason phrase may omit the space after the code.
 */
WEFT_API int weft_http1_parse_response(struct weft_http1_parser *p, const char *buf, size_t len,
				       struct weft_http1_head *h, enum weft_http1_method req);

/*
 * Why the last parse failed, as a short constant phrase for a log or a 400
 * body, with *status (if not NULL) set to the status code a server should
 * answer with (400, 414, 431 or 505).  Returns "" after a success.
 */
WEFT_API const char *weft_http1_parser_error(const struct weft_http1_parser *p, int *status);

/*
 * The index of the first header at or after index from whose name equals
 * name[0, len) ignoring ASCII case, or -ENOENT.
 */
WEFT_API int weft_http1_find(const struct weft_http1_head *h, const char *name, size_t len,
			     unsigned from);

/*
 * Whether the comma-separated list value[0, len) holds the token tok[0,
 * tok_len), ignoring case and parameters (";..."): 1 or 0.  For
 * Connection, Transfer-Encoding, Upgrade; one field value at a time.
 */
WEFT_API int weft_http1_has_token(const char *value, size_t len, const char *tok, size_t tok_len);

/* A body decoder for one message.  Fields are private. */
struct weft_http1_body {
	uint64_t remaining; /* LENGTH: bytes left; CHUNKED: left in this chunk */
	const char *why;    /* after an error */
	uint32_t line;	    /* bytes of the chunk-size or trailer line so far */
	uint32_t trailer;   /* bytes of the trailer section so far */
	uint32_t max_line, max_head;
	int err;	    /* 0, or the error every later call returns */
	uint8_t framing;
	uint8_t state;
};

/*
 * Prepares b for a body framed as framing says, with content_length for
 * WEFT_HTTP1_LENGTH (normally the head's fields).  lim may be NULL; its
 * max_line bounds a chunk-size line (with its extensions) and a trailer
 * line, its max_head the trailer section.  No failure path.
 */
WEFT_API void weft_http1_body_init(struct weft_http1_body *b, enum weft_http1_framing framing,
				   uint64_t content_length, const struct weft_http1_limits *lim);

/*
 * Consumes body bytes from the start of buf[0, len): sets *consumed to how
 * many, and *data to the payload among them (a slice of buf[0, *consumed),
 * maybe empty).  Returns:
 *   1         the body ended at buf + *consumed (what follows is the next
 *             message); later calls consume nothing and return 1;
 *   0         the body goes on: call again with buf + *consumed if that is
 *             short of len (a call returns at most one run of payload, so a
 *             chunked body takes a call per chunk), else with more bytes;
 *  -EBADMSG   malformed chunked framing (a bad chunk size or extension, a
 *             missing CRLF after the data, a malformed trailer line);
 *  -EMSGSIZE  a chunk-size or trailer line, or the trailer section, is
 *             longer than the limits.
 * On an error, *consumed stops short of the bad byte and *data holds the
 * payload before it; every later call returns the error again, consuming
 * nothing.  Trailer fields are checked and skipped: they are in the
 * consumed bytes, not in *data.  An UNTIL_CLOSE body never ends here: see
 * weft_http1_body_eof.
 */
WEFT_API int weft_http1_body_decode(struct weft_http1_body *b, const char *buf, size_t len,
				    size_t *consumed, struct weft_http1_slice *data);

/*
 * The connection reached EOF: returns 0 when that is a proper end of the
 * body (it had ended, or its framing is UNTIL_CLOSE), -EPROTO when it cut
 * the body short, or the decoder's earlier error.
 */
WEFT_API int weft_http1_body_eof(const struct weft_http1_body *b);

/* Why the body decoder failed, as a short constant phrase; "" if it has not. */
WEFT_API const char *weft_http1_body_error(const struct weft_http1_body *b);

#ifdef __cplusplus
}
#endif

#endif
