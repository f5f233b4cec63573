// SPDX-License-Identifier: MIT
/*
 * net/http1.c - the strict HTTP/1.1 parser of <weft/http1.h>: heads, framing
 * and body decoding after RFC 9112 (message syntax) and RFC 9110 (field
 * syntax, status codes).  It stands alone: no runtime, no allocation, no
 * library but memcpy and memcmp, so the fuzz target
 * (tests/fuzz/http1_fuzz.c) compiles this file by itself.
 *
 * Heads are read in two phases.
 *
 *  1. scan() looks for the blank line that ends the head, taking the LFs
 *     of 16 bytes at a time as a bit mask, starting where the previous
 *     call stopped (p->pos and p->seen), so a head fed in pieces is
 *     searched once in all.  It enforces the line and head limits and
 *     rejects a bare LF.  It keeps no pointers, only offsets, so the
 *     caller may move its buffer between calls.
 *  2. Once the blank line is there, parse_request() or parse_response()
 *     reads the complete head in one pass.  Because the head is known to
 *     end in CRLF CRLF, and every LF in it follows a CR, the inner loops
 *     need no bounds checks: each stops at the CR of its line at the latest,
 *     and the byte after any CR is still inside the head.
 *
 * Invariants of struct weft_http1_parser between calls:
 *  (P1) start <= pos <= seen, and all three are 0 once a call returned
 *       anything but -EAGAIN;
 *  (P2) buf[start, pos) is a sequence of complete non-empty lines, each
 *       ending in CRLF and at most max_line long;
 *  (P3) buf[pos, seen) holds no LF.
 *
 * What is rejected (-EBADMSG unless noted), by RFC 9112 section:
 *  2.2  a bare LF or a bare CR anywhere in a head; whitespace or an empty
 *       line before a status line (before a request line, empty lines are
 *       skipped);
 *  2.3  a version other than HTTP/1.0 and HTTP/1.1 (-EPROTONOSUPPORT when
 *       it is well-formed "HTTP/d.d"), a lowercase or malformed version;
 *  3    a method that is not a token, a missing or extra space, a target
 *       with a control character, space, DEL or non-ASCII byte, a target
 *       whose form does not suit the method (authority-form is CONNECT's
 *       alone, "*" is OPTIONS' alone);
 *  3.2  an HTTP/1.1 request without Host, more than one Host, a Host value
 *       with characters no host or port has;
 *  4    a status code that is not 3 digits in 100-599, a reason phrase with
 *       a control character;
 *  5.1  a field name that is not a token, whitespace before the colon;
 *  5.2  obs-fold (a field line that starts with whitespace);
 *  5    a control character (NUL, CR, LF, DEL...) in a field value (RFC
 *       9110 5.5);
 *  6.1  Transfer-Encoding in an HTTP/1.0 message, chunked applied twice or
 *       with parameters, a request whose final coding is not chunked, an
 *       empty or malformed coding list;
 *  6.3  Content-Length together with Transfer-Encoding; a Content-Length
 *       that is not digits, is empty, overflows 2^63 - 1, or lists
 *       different values (repeated equal values are accepted);
 *  7.1  a chunk size that is not hex or overflows 2^63 - 1, a malformed
 *       chunk extension, data not followed by CRLF, a malformed trailer;
 *  limits: a line longer than max_line, a head or trailer section longer
 *       than max_head (-EMSGSIZE), more fields than the header array holds
 *       (-E2BIG).
 *
 * Accepted on purpose: empty lines before a request line (2.2 asks a
 * server to ignore them); a status line with no space after the code when
 * there is no reason phrase (common, and it cannot change the framing);
 * Content-Length repeated with one value; transfer codings other than
 * chunked (the caller decides whether it can decode them, or answers 501).
 * The target and Host are checked by character class and form, not against
 * the whole URI grammar.
 */
#include "weft/http1.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- Character classes ------------------------------------------------------
 * One table, a bit per class, built at compile time from the RFCs' rules. */
enum {
	C_TCHAR = 1 << 0,  /* token (RFC 9110 5.6.2) */
	C_FIELD = 1 << 1,  /* field-vchar, SP, HTAB: field values, reason phrases */
	C_TARGET = 1 << 2, /* VCHAR: request-target (RFC 3986 is ASCII) */
	C_HEX = 1 << 3,	   /* HEXDIG */
	C_HOST = 1 << 4,   /* uri-host and port: unreserved, sub-delims, ":[]%" */
	C_QDTEXT = 1 << 5, /* inside a quoted-string, but for '"' and '\\' */
	C_SCHEME = 1 << 6, /* ALPHA DIGIT "+" "-" "." */
};

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_OBS(c) ((c) >= 0x80)
#define IS_TCHAR(c)                                                                   \
	(IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' ||      \
	 (c) == '%' || (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' ||        \
	 (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || (c) == '`' ||         \
	 (c) == '|' || (c) == '~')
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_HOST(c)                                                                    \
	(IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' ||      \
	 (c) == '~' || (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' ||        \
	 (c) == '(' || (c) == ')' || (c) == '*' || (c) == '+' || (c) == ',' ||         \
	 (c) == ';' || (c) == '=' || (c) == ':' || (c) == '[' || (c) == ']' || (c) == '%')
#define CLASS(c)                                                                      \
	((IS_TCHAR(c) ? C_TCHAR : 0) |                                                \
	 (IS_VCHAR(c) || IS_OBS(c) || (c) == ' ' || (c) == '\t' ? C_FIELD : 0) |       \
	 (IS_VCHAR(c) ? C_TARGET : 0) | (IS_HEX(c) ? C_HEX : 0) |                      \
	 (IS_HOST(c) ? C_HOST : 0) |                                                   \
	 ((IS_VCHAR(c) || IS_OBS(c) || (c) == ' ' || (c) == '\t') && (c) != '"' &&     \
			  (c) != '\\'                                                  \
		  ? C_QDTEXT                                                           \
		  : 0) |                                                               \
	 (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '+' || (c) == '-' || (c) == '.' ? C_SCHEME \
									       : 0))
#define ROW(r)                                                                        \
	CLASS((r) + 0), CLASS((r) + 1), CLASS((r) + 2), CLASS((r) + 3), CLASS((r) + 4), \
		CLASS((r) + 5), CLASS((r) + 6), CLASS((r) + 7), CLASS((r) + 8),          \
		CLASS((r) + 9), CLASS((r) + 10), CLASS((r) + 11), CLASS((r) + 12),       \
		CLASS((r) + 13), CLASS((r) + 14), CLASS((r) + 15)

static const uint8_t cls[256] = {
	ROW(0x00), ROW(0x10), ROW(0x20), ROW(0x30), ROW(0x40), ROW(0x50), ROW(0x60), ROW(0x70),
	ROW(0x80), ROW(0x90), ROW(0xa0), ROW(0xb0), ROW(0xc0), ROW(0xd0), ROW(0xe0), ROW(0xf0),
};

static inline bool is(char c, unsigned class)
{
	return cls[(uint8_t)c] & class;
}

static inline bool ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Case-insensitive equality with lit, which is lowercase letters, digits and
 * '-'.  Safe because OR-ing 0x20 maps only 'A'-'Z' onto 'a'-'z', and maps
 * onto '-' and the digits only bytes that are themselves or controls. */
static bool ieq(const char *s, size_t n, const char *lit, size_t lit_len)
{
	if (n != lit_len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (((uint8_t)s[i] | 0x20) != (uint8_t)lit[i])
			return false;
	return true;
}
#define IEQ(s, n, lit) ieq(s, n, lit, sizeof(lit) - 1)

static bool ieq_any(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t x = (uint8_t)a[i], y = (uint8_t)b[i];
		if (x >= 'A' && x <= 'Z')
			x |= 0x20;
		if (y >= 'A' && y <= 'Z')
			y |= 0x20;
		if (x != y)
			return false;
	}
	return true;
}

/* ---- Fast scans ------------------------------------------------------------
 * Field values and targets are most of a head's bytes.  skip() passes
 * 16 of them at a time while all are plainly acceptable and returns the
 * first that may not be; the caller's table loop then decides that byte
 * and finishes the run.  skip() only moves q over bytes the table loop
 * would also pass, so without SSE2 (q returned as is) the result is the
 * same.  Every kind counts CR as a stop, and every head ends in CR LF CR
 * LF, so a run always stops inside the head. */
enum {
	K_FIELD, /* 0x20-0x7e, 0x80-0xff: field content but HTAB */
	K_VCHAR, /* 0x21-0x7e: the request-target's bytes */
};

#ifdef __SSE2__
/* A bit per byte of v that kind does not pass. */
static inline unsigned stops(__m128i v, int kind)
{
	__m128i bad;
	if (kind == K_FIELD) {
		/* min(v, 0x1f) == v: an unsigned v <= 0x1f */
		bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v),
				   _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
	} else {
		bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x20)), v),
				   _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x7f)), v));
	}
	return (unsigned)_mm_movemask_epi8(bad);
}
#endif

/* Skips bytes of the given kind from q, within the head [lo, e). */
static inline const char *skip(const char *q, const char *lo, const char *e, int kind)
{
#ifdef __SSE2__
	while (e - q >= 16) {
		unsigned m = stops(_mm_loadu_si128((const __m128i *)q), kind);
		if (m)
			return q + __builtin_ctz(m);
		q += 16;
	}
	/* Under 16 bytes left: look at the head's last 16, which overlap
	 * what was passed, and drop the lanes before q. */
	if (q < e && e - lo >= 16) {
		unsigned m = stops(_mm_loadu_si128((const __m128i *)(e - 16)), kind) >> (16 - (e - q));
		if (m)
			return q + __builtin_ctz(m);
	}
#else
	(void)lo, (void)e, (void)kind;
#endif
	return q;
}

/* ---- Lists ------------------------------------------------------------------
 * RFC 9110 5.6.1: "#rule" lists are elements separated by commas with
 * optional whitespace around them; empty elements are allowed and ignored.
 * A comma inside a quoted-string (in a parameter) does not separate. */

/* Stores in *el the next element of v[*pos, n), trimmed, and advances *pos
 * past its comma.  Returns false at the end of the list.  Empty elements
 * come back as empty slices. */
static bool next_elem(const char *v, size_t n, size_t *pos, struct weft_http1_slice *el)
{
	size_t i = *pos;
	if (i > n)
		return false;
	while (i < n && ows(v[i]))
		i++;
	size_t b = i;
	bool quoted = false;
	for (; i < n; i++) {
		if (quoted) {
			if (v[i] == '\\')
				i++; /* the escaped byte; a trailing '\' ends the loop */
			else if (v[i] == '"')
				quoted = false;
		} else if (v[i] == '"') {
			quoted = true;
		} else if (v[i] == ',') {
			break;
		}
	}
	size_t e = i < n ? i : n;
	while (e > b && ows(v[e - 1]))
		e--;
	el->ptr = v + b;
	el->len = e - b;
	*pos = i + 1; /* past the comma, or past n at the end */
	return true;
}

/* The token at the start of an element, before any parameters. */
static size_t token_len(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && is(s[i], C_TCHAR))
		i++;
	return i;
}

int weft_http1_has_token(const char *value, size_t len, const char *tok, size_t tok_len)
{
	struct weft_http1_slice el;
	size_t pos = 0;
	while (next_elem(value, len, &pos, &el)) {
		size_t t = token_len(el.ptr, el.len);
		if (t == tok_len && ieq_any(el.ptr, tok, t))
			return 1;
	}
	return 0;
}

int weft_http1_find(const struct weft_http1_head *h, const char *name, size_t len, unsigned from)
{
	for (unsigned i = from; i < h->nheaders; i++) {
		const struct weft_http1_slice *n = &h->headers[i].name;
		if (n->len == len && ieq_any(n->ptr, name, len))
			return (int)i;
	}
	return -ENOENT;
}

/* ---- Parser state ------------------------------------------------------------ */

void weft_http1_parser_init(struct weft_http1_parser *p, const struct weft_http1_limits *lim,
			    struct weft_http1_header *headers, unsigned max_headers)
{
	uint32_t line = lim && lim->max_line ? lim->max_line : WEFT_HTTP1_MAX_LINE;
	uint32_t head = lim && lim->max_head ? lim->max_head : WEFT_HTTP1_MAX_HEAD;
	/* The head length is returned as an int, and the offsets below are
	 * 32 bits with room for a line's CRLF past the head. */
	if (head > 1u << 30)
		head = 1u << 30;
	if (line > head)
		line = head;
	*p = (struct weft_http1_parser){
		.headers = headers,
		.max_headers = max_headers,
		.max_line = line,
		.max_head = head,
		.why = "",
	};
}

const char *weft_http1_parser_error(const struct weft_http1_parser *p, int *status)
{
	if (status)
		*status = p->status;
	return p->why;
}

static void reset(struct weft_http1_parser *p)
{
	p->pos = p->start = p->seen = 0;
}

/* Records why the message failed, readies p for the next one, returns err. */
static int fail(struct weft_http1_parser *p, int err, int status, const char *why)
{
	reset(p);
	p->status = status;
	p->why = why;
	return err;
}
#define BAD(p, why) fail(p, -EBADMSG, 400, why)

/* ---- Phase 1: find the end of the head ---------------------------------------
 * Returns the head's length (the offset just past its blank line), -EAGAIN
 * with p's offsets advanced, or an error.  Invariants P1-P3 hold on return. */
static int scan(struct weft_http1_parser *p, const char *buf, size_t len, bool request)
{
	/* P1, and P3's precondition: the caller's buffer still holds the
	 * bytes scanned so far. */
	assert(p->start <= p->pos && p->pos <= p->seen);
	assert(p->seen <= len);
	size_t pos = p->pos;
	size_t i = p->seen > pos ? p->seen : pos;
	/* Where a limit is known broken: the current line has max_line + 2
	 * bytes without its LF, or the head max_head + 1 bytes without its
	 * blank line.  When both are, the one reached first is named, so the
	 * error does not depend on how the bytes were split.  No LF past
	 * head_at matters, so the search stops there. */
	size_t head_at = (size_t)p->max_head + 1;
	size_t end = len < head_at ? len : head_at;
	while (i < end) {
		/* The LFs of the next block of up to 16 bytes, as a bit mask. */
		unsigned m = 0;
		size_t n = end - i;
#ifdef __SSE2__
		if (n >= 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(buf + i));
			m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
			n = 16;
		} else
#endif
		{
			if (n > 16)
				n = 16;
			for (size_t k = 0; k < n; k++)
				m |= (unsigned)(buf[i + k] == '\n') << k;
		}
		for (; m; m &= m - 1) {
			size_t lf = i + (size_t)__builtin_ctz(m);
			if (lf >= pos + p->max_line + 2)
				goto line_too_long;
			if (lf + 1 > p->max_head)
				return fail(p, -EMSGSIZE, 431, "header section too large");
			if (lf == pos || buf[lf - 1] != '\r')
				return BAD(p, "bare LF");
			if (lf - 1 == pos) {
				if (pos != p->start)
					return (int)(lf + 1);
				/* An empty line before the start line. */
				if (!request)
					return BAD(p, "empty line before status line");
				p->start = (uint32_t)(lf + 1);
			}
			pos = lf + 1;
		}
		i += n;
	}
	if (len >= pos + p->max_line + 2 && pos + p->max_line + 2 <= head_at)
		goto line_too_long;
	if (len >= head_at)
		return fail(p, -EMSGSIZE, 431, "header section too large");
	p->pos = (uint32_t)pos;
	p->seen = (uint32_t)len;
	return -EAGAIN;
line_too_long:
	return pos == p->start && request ? fail(p, -EMSGSIZE, 414, "request line too long")
					  : fail(p, -EMSGSIZE, 431, "header line too long");
}

/* ---- Phase 2: parse a complete head ------------------------------------------- */

/* What the field lines say about framing and the connection. */
struct fields {
	uint64_t length;
	struct weft_http1_slice host; /* the last Host value */
	unsigned hosts;
	bool has_length, has_te, te_chunked_last;
	unsigned te_chunked;
	bool close, keep_alive, upgrade_opt, upgrade_hdr, expect_continue;
};

/* "HTTP/1.0" and "HTTP/1.1", as little-endian words to compare 8 bytes at once. */
static inline uint64_t load8(const char *s)
{
	uint64_t w;
	memcpy(&w, s, 8);
	return w;
}

/* Reads "HTTP/d.d" at s, which has at least avail bytes before the head's
 * end; sets *minor.  Returns 0, -EBADMSG or -EPROTONOSUPPORT. */
static int version(const char *s, size_t avail, int *minor)
{
	if (avail >= 8) {
		uint64_t w = load8(s);
		if (w == load8("HTTP/1.1")) {
			*minor = 1;
			return 0;
		}
		if (w == load8("HTTP/1.0")) {
			*minor = 0;
			return 0;
		}
		if (memcmp(s, "HTTP/", 5) == 0 && IS_DIGIT(s[5]) && s[6] == '.' &&
		    IS_DIGIT(s[7]))
			return -EPROTONOSUPPORT;
	}
	return -EBADMSG;
}

/* Content-Length (RFC 9110 8.6): 1*DIGIT, or a list of equal such values. */
static int content_length(const char *v, size_t n, struct fields *f)
{
	struct weft_http1_slice el;
	size_t pos = 0;
	bool any = false;
	while (next_elem(v, n, &pos, &el)) {
		if (el.len == 0)
			return -EBADMSG;
		uint64_t x = 0;
		for (size_t i = 0; i < el.len; i++) {
			char c = el.ptr[i];
			if (!IS_DIGIT(c))
				return -EBADMSG;
			/* Stay at or below 2^63 - 1, so lengths fit off_t. */
			if (x > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(c - '0')) / 10)
				return -EOVERFLOW;
			x = x * 10 + (uint64_t)(c - '0');
		}
		if (f->has_length && x != f->length)
			return -EEXIST;
		f->has_length = true;
		f->length = x;
		any = true;
	}
	return any ? 0 : -EBADMSG;
}

/* Transfer-Encoding (RFC 9112 6.1): a list of codings; track chunked. */
static int transfer_encoding(const char *v, size_t n, struct fields *f)
{
	struct weft_http1_slice el;
	size_t pos = 0;
	bool any = false;
	while (next_elem(v, n, &pos, &el)) {
		if (el.len == 0)
			continue;
		size_t t = token_len(el.ptr, el.len);
		if (t == 0)
			return -EBADMSG;
		/* After the coding: nothing, or OWS ";" parameters. */
		size_t r = t;
		while (r < el.len && ows(el.ptr[r]))
			r++;
		if (r < el.len && el.ptr[r] != ';')
			return -EBADMSG;
		if (IEQ(el.ptr, t, "chunked")) {
			if (r < el.len) /* chunked takes no parameters */
				return -EBADMSG;
			f->te_chunked++;
			f->te_chunked_last = true;
		} else {
			f->te_chunked_last = false;
		}
		any = true;
	}
	if (!any)
		return -EBADMSG;
	f->has_te = true;
	return 0;
}

static void connection(const char *v, size_t n, struct fields *f)
{
	/* Nearly always a single option: skip the list walk. */
	if (IEQ(v, n, "keep-alive")) {
		f->keep_alive = true;
		return;
	}
	if (IEQ(v, n, "close")) {
		f->close = true;
		return;
	}
	struct weft_http1_slice el;
	size_t pos = 0;
	while (next_elem(v, n, &pos, &el)) {
		if (IEQ(el.ptr, el.len, "close"))
			f->close = true;
		else if (IEQ(el.ptr, el.len, "keep-alive"))
			f->keep_alive = true;
		else if (IEQ(el.ptr, el.len, "upgrade"))
			f->upgrade_opt = true;
	}
}

/* Looks at a field the parser itself needs.  Dispatch on the name's length
 * first: most fields are none of these and cost one switch.  Returns 0 or
 * an error with *why set. */
static int special(const char *name, size_t nlen, const char *v, size_t vlen, struct fields *f,
		   const char **why)
{
	int rc;
	switch (nlen) {
	case 4:
		if (IEQ(name, nlen, "host")) {
			f->hosts++;
			f->host.ptr = v;
			f->host.len = vlen;
		}
		break;
	case 6:
		if (IEQ(name, nlen, "expect") && IEQ(v, vlen, "100-continue"))
			f->expect_continue = true;
		break;
	case 7:
		if (IEQ(name, nlen, "upgrade"))
			f->upgrade_hdr = true;
		break;
	case 10:
		if (IEQ(name, nlen, "connection"))
			connection(v, vlen, f);
		break;
	case 14:
		if (IEQ(name, nlen, "content-length")) {
			rc = content_length(v, vlen, f);
			if (rc < 0) {
				*why = rc == -EOVERFLOW ? "Content-Length too large"
				       : rc == -EEXIST	? "conflicting Content-Length"
							: "invalid Content-Length";
				return -EBADMSG;
			}
		}
		break;
	case 17:
		if (IEQ(name, nlen, "transfer-encoding") &&
		    transfer_encoding(v, vlen, f) < 0) {
			*why = "invalid Transfer-Encoding";
			return -EBADMSG;
		}
		break;
	}
	return 0;
}

/* Parses the field lines from q, the start of the line after the start
 * line, through the blank line that ends the head [lo, e).  Fills h's
 * headers. */
static int field_lines(struct weft_http1_parser *p, const char *lo, const char *q,
		       const char *e, struct weft_http1_head *h, struct fields *f)
{
	unsigned n = 0;
	for (;;) {
		if (*q == '\r') {
			if (q[1] != '\n')
				return BAD(p, "bare CR");
			/* By scan(), the first empty line ends the head. */
			assert(q + 2 == e);
			break;
		}
		const char *name = q;
		while (is(*q, C_TCHAR))
			q++;
		if (*q != ':') {
			if (q == name && ows(*q))
				return BAD(p, "obs-fold or whitespace before field name");
			if (ows(*q))
				return BAD(p, "whitespace before colon");
			return BAD(p, "invalid character in field name");
		}
		if (q == name)
			return BAD(p, "empty field name");
		size_t nlen = (size_t)(q - name);
		q++;
		while (ows(*q))
			q++;
		const char *v = q;
		q = skip(q, lo, e, K_FIELD);
		while (is(*q, C_FIELD))
			q++;
		/* Every line ends in CR LF, and CR is not a field byte, so the
		 * loop stopped inside this line. */
		if (*q != '\r')
			return BAD(p, "invalid character in field value");
		if (q[1] != '\n')
			return BAD(p, "bare CR");
		const char *ve = q;
		while (ve > v && ows(ve[-1]))
			ve--;
		q += 2;
		if (n == p->max_headers)
			return fail(p, -E2BIG, 431, "too many header fields");
		struct weft_http1_header *hd = &p->headers[n++];
		hd->name.ptr = name;
		hd->name.len = nlen;
		hd->value.ptr = v;
		hd->value.len = (size_t)(ve - v);
		const char *why = NULL;
		if (special(name, nlen, v, hd->value.len, f, &why) < 0)
			return BAD(p, why);
	}
	h->headers = p->headers;
	h->nheaders = n;
	return 0;
}

static enum weft_http1_method method_id(const char *m, size_t n)
{
	switch (n) {
	case 3:
		if (memcmp(m, "GET", 3) == 0)
			return WEFT_HTTP1_GET;
		if (memcmp(m, "PUT", 3) == 0)
			return WEFT_HTTP1_PUT;
		break;
	case 4:
		if (memcmp(m, "HEAD", 4) == 0)
			return WEFT_HTTP1_HEAD;
		if (memcmp(m, "POST", 4) == 0)
			return WEFT_HTTP1_POST;
		break;
	case 5:
		if (memcmp(m, "TRACE", 5) == 0)
			return WEFT_HTTP1_TRACE;
		if (memcmp(m, "PATCH", 5) == 0)
			return WEFT_HTTP1_PATCH;
		break;
	case 6:
		if (memcmp(m, "DELETE", 6) == 0)
			return WEFT_HTTP1_DELETE;
		break;
	case 7:
		if (memcmp(m, "CONNECT", 7) == 0)
			return WEFT_HTTP1_CONNECT;
		if (memcmp(m, "OPTIONS", 7) == 0)
			return WEFT_HTTP1_OPTIONS;
		break;
	}
	return WEFT_HTTP1_OTHER;
}

/* RFC 9112 3.2: the target's form must suit the method. */
static bool target_form(const char *t, size_t n, enum weft_http1_method m)
{
	if (m == WEFT_HTTP1_CONNECT) {
		/* authority-form: uri-host ":" port */
		bool colon = false;
		for (size_t i = 0; i < n; i++) {
			if (!is(t[i], C_HOST) || t[i] == '%')
				return false;
			colon |= t[i] == ':';
		}
		return colon && t[0] != ':';
	}
	if (t[0] == '/')
		return true; /* origin-form */
	if (n == 1 && t[0] == '*')
		return m == WEFT_HTTP1_OPTIONS; /* asterisk-form */
	/* absolute-form: scheme ":" ... */
	if (!IS_ALPHA(t[0]))
		return false;
	size_t i = 1;
	while (i < n && is(t[i], C_SCHEME))
		i++;
	return i < n && t[i] == ':';
}

static unsigned keep_alive(int minor, const struct fields *f)
{
	if (f->close)
		return 0;
	return minor == 1 || f->keep_alive ? WEFT_HTTP1_KEEP_ALIVE : 0;
}

/* buf[start, end) is a complete request head (scan() found its end). */
static int parse_request(struct weft_http1_parser *p, const char *buf, size_t start, size_t end,
			 struct weft_http1_head *h)
{
	const char *s = buf + start, *e = buf + end, *q = s;
	while (is(*q, C_TCHAR))
		q++;
	if (q == s || *q != ' ')
		return BAD(p, "invalid method");
	h->method.ptr = s;
	h->method.len = (size_t)(q - s);
	h->method_id = method_id(s, h->method.len);
	s = ++q;
	q = skip(q, buf + start, e, K_VCHAR);
	while (is(*q, C_TARGET))
		q++;
	if (q == s || *q != ' ')
		return BAD(p, "invalid request-target");
	h->target.ptr = s;
	h->target.len = (size_t)(q - s);
	if (!target_form(s, h->target.len, h->method_id))
		return BAD(p, "request-target form does not suit the method");
	q++;
	int rc = version(q, (size_t)(e - q), &h->minor);
	if (rc == -EPROTONOSUPPORT)
		return fail(p, rc, 505, "HTTP version not supported");
	if (rc < 0 || q[8] != '\r' || q[9] != '\n')
		return BAD(p, "invalid HTTP version");
	q += 10;

	struct fields f = {0};
	rc = field_lines(p, buf + start, q, e, h, &f);
	if (rc < 0)
		return rc;

	if (h->minor == 1 && f.hosts == 0)
		return BAD(p, "missing Host");
	if (f.hosts > 1)
		return BAD(p, "more than one Host");
	for (size_t i = 0; i < f.host.len; i++)
		if (!is(f.host.ptr[i], C_HOST))
			return BAD(p, "invalid Host");
	h->status = 0;
	h->reason.ptr = NULL;
	h->reason.len = 0;
	h->content_length = 0;
	h->framing = WEFT_HTTP1_NONE;
	if (f.has_te) {
		if (h->minor == 0)
			return BAD(p, "Transfer-Encoding in HTTP/1.0");
		if (f.has_length)
			return BAD(p, "both Content-Length and Transfer-Encoding");
		if (f.te_chunked > 1)
			return BAD(p, "chunked applied twice");
		if (!f.te_chunked_last)
			return BAD(p, "chunked is not the final transfer coding");
		h->framing = WEFT_HTTP1_CHUNKED;
	} else if (f.has_length && f.length > 0) {
		h->framing = WEFT_HTTP1_LENGTH;
		h->content_length = f.length;
	}
	h->flags = keep_alive(h->minor, &f);
	/* RFC 9110 7.8: an Upgrade in an HTTP/1.0 request is ignored. */
	if (f.upgrade_opt && f.upgrade_hdr && h->minor == 1)
		h->flags |= WEFT_HTTP1_UPGRADE;
	if (f.expect_continue && h->minor == 1)
		h->flags |= WEFT_HTTP1_CONTINUE;
	return (int)end;
}

/* buf[0, end) is a complete response head. */
static int parse_response(struct weft_http1_parser *p, const char *buf, size_t end,
			  struct weft_http1_head *h, enum weft_http1_method req)
{
	const char *q = buf, *e = buf + end;
	int rc = version(q, end, &h->minor);
	if (rc == -EPROTONOSUPPORT)
		return fail(p, rc, 505, "HTTP version not supported");
	if (rc < 0 || q[8] != ' ')
		return BAD(p, "invalid HTTP version");
	q += 9;
	/* The head is at least "HTTP/1.1 " CR LF CR LF, so q[0..3] are in it. */
	if (!IS_DIGIT(q[0]) || !IS_DIGIT(q[1]) || !IS_DIGIT(q[2]))
		return BAD(p, "invalid status code");
	h->status = (q[0] - '0') * 100 + (q[1] - '0') * 10 + (q[2] - '0');
	if (h->status < 100 || h->status > 599)
		return BAD(p, "invalid status code");
	q += 3;
	h->reason.ptr = q;
	h->reason.len = 0;
	if (*q == ' ') {
		const char *r = ++q;
		q = skip(q, buf, e, K_FIELD);
		while (is(*q, C_FIELD))
			q++;
		h->reason.ptr = r;
		h->reason.len = (size_t)(q - r);
	}
	if (*q != '\r' || q[1] != '\n')
		return BAD(p, "invalid status line");
	q += 2;

	struct fields f = {0};
	rc = field_lines(p, buf, q, e, h, &f);
	if (rc < 0)
		return rc;

	h->method.ptr = h->target.ptr = NULL;
	h->method.len = h->target.len = 0;
	h->method_id = WEFT_HTTP1_OTHER;
	h->content_length = 0;
	h->framing = WEFT_HTTP1_NONE;
	if (f.has_te && h->minor == 0)
		return BAD(p, "Transfer-Encoding in HTTP/1.0");
	if (f.has_te && f.has_length)
		return BAD(p, "both Content-Length and Transfer-Encoding");
	if (f.te_chunked > 1)
		return BAD(p, "chunked applied twice");
	h->flags = keep_alive(h->minor, &f);
	int st = h->status;
	if (st == 101) {
		/* The connection now speaks the protocol named in Upgrade. */
		h->flags = WEFT_HTTP1_UPGRADE;
	} else if (req == WEFT_HTTP1_CONNECT && st >= 200 && st < 300) {
		h->flags = WEFT_HTTP1_TUNNEL;
	} else if (st < 200 || st == 204 || st == 304 || req == WEFT_HTTP1_HEAD) {
		/* No body, whatever the fields say (RFC 9112 6.3 rule 1). */
	} else if (f.has_te) {
		if (f.te_chunked_last) {
			h->framing = WEFT_HTTP1_CHUNKED;
		} else {
			h->framing = WEFT_HTTP1_UNTIL_CLOSE;
			h->flags &= ~WEFT_HTTP1_KEEP_ALIVE;
		}
	} else if (f.has_length) {
		if (f.length > 0) {
			h->framing = WEFT_HTTP1_LENGTH;
			h->content_length = f.length;
		}
	} else {
		h->framing = WEFT_HTTP1_UNTIL_CLOSE;
		h->flags &= ~WEFT_HTTP1_KEEP_ALIVE;
	}
	return (int)end;
}

int weft_http1_parse_request(struct weft_http1_parser *p, const char *buf, size_t len,
			     struct weft_http1_head *h)
{
	int n = scan(p, buf, len, true);
	if (n < 0)
		return n;
	size_t start = p->start;
	reset(p);
	p->status = 0;
	p->why = "";
	return parse_request(p, buf, start, (size_t)n, h);
}

int weft_http1_parse_response(struct weft_http1_parser *p, const char *buf, size_t len,
			      struct weft_http1_head *h, enum weft_http1_method req)
{
	int n = scan(p, buf, len, false);
	if (n < 0)
		return n;
	reset(p);
	p->status = 0;
	p->why = "";
	return parse_response(p, buf, (size_t)n, h, req);
}

/* ---- Bodies ------------------------------------------------------------------------
 * The chunked decoder is a byte-at-a-time state machine over the framing
 * (RFC 9112 7.1), so it needs no buffer of its own and resumes at any split;
 * chunk data is passed over in one step.  A grammar line per state:
 *
 *   chunk       = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext   = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val     = token / quoted-string
 *   last-chunk  = 1*"0" [ chunk-ext ] CRLF
 *   trailer     = *( field-line CRLF ) CRLF
 */
enum {
	S_SIZE0,     /* first hex digit of a chunk size */
	S_SIZE,	     /* more hex digits, or what follows them */
	S_SIZE_WS,   /* BWS after the size: only ";" may follow */
	S_EXT_NAME0, /* BWS after ";", then the extension's name */
	S_EXT_NAME,  /* in the name */
	S_EXT_NAME_WS, /* BWS after the name: "=" or ";" */
	S_EXT_VAL0,  /* BWS after "=", then a token or a quoted-string */
	S_EXT_TOKEN, /* in a token value */
	S_EXT_QUOTE, /* in a quoted-string */
	S_EXT_QPAIR, /* after a backslash in one */
	S_EXT_VAL_END, /* after a value: ";", CR, or BWS */
	S_EXT_VAL_WS,  /* BWS after a value: only ";" may follow */
	S_SIZE_LF,   /* CR seen, LF must follow */
	S_DATA,	     /* remaining bytes of chunk data */
	S_DATA_CR,   /* the CRLF after the data */
	S_DATA_LF,
	S_TR_LINE,   /* the start of a trailer line, or the final CRLF */
	S_TR_NAME,   /* in a trailer field's name */
	S_TR_VALUE,  /* in its value */
	S_TR_LF,     /* its CR seen */
	S_END_LF,    /* the final CR seen */
	S_DONE,
};

void weft_http1_body_init(struct weft_http1_body *b, enum weft_http1_framing framing,
			  uint64_t content_length, const struct weft_http1_limits *lim)
{
	*b = (struct weft_http1_body){
		.remaining = framing == WEFT_HTTP1_LENGTH ? content_length : 0,
		.why = "",
		.max_line = lim && lim->max_line ? lim->max_line : WEFT_HTTP1_MAX_LINE,
		.max_head = lim && lim->max_head ? lim->max_head : WEFT_HTTP1_MAX_HEAD,
		.framing = (uint8_t)framing,
		.state = S_SIZE0,
	};
}

static int body_fail(struct weft_http1_body *b, int err, const char *why)
{
	b->err = err;
	b->why = why;
	return err;
}

/* Runs the chunked state machine over buf[0, len).  See body_decode. */
static int chunked(struct weft_http1_body *b, const char *buf, size_t len, size_t *consumed,
		   struct weft_http1_slice *data)
{
	size_t i = 0;
	int rc = 0;
	bool had_data = false;
	while (i < len) {
		uint8_t st = b->state;
		if (st == S_DATA) {
			/* One run of payload per call, so it is one slice. */
			if (had_data)
				break;
			size_t n = len - i;
			if (n > b->remaining)
				n = (size_t)b->remaining;
			data->ptr = buf + i;
			data->len = n;
			had_data = true;
			i += n;
			b->remaining -= n;
			if (b->remaining == 0)
				b->state = S_DATA_CR;
			continue;
		}
		char c = buf[i++];
		/* A chunk-size line's bytes but its CRLF count against
		 * max_line, so does each trailer line's; the trailer section,
		 * CRLFs included, counts against max_head. */
		if (st < S_SIZE_LF && c != '\r' && ++b->line > b->max_line) {
			rc = body_fail(b, -EMSGSIZE, "chunk-size line too long");
			break;
		}
		if (st >= S_TR_LINE && st <= S_END_LF) {
			if (++b->trailer > b->max_head) {
				rc = body_fail(b, -EMSGSIZE, "trailer section too large");
				break;
			}
			if ((st == S_TR_NAME || (st == S_TR_VALUE && c != '\r')) &&
			    ++b->line > b->max_line) {
				rc = body_fail(b, -EMSGSIZE, "trailer line too long");
				break;
			}
		}
		switch (st) {
		case S_SIZE0:
		case S_SIZE:
			if (is(c, C_HEX)) {
				unsigned d = IS_DIGIT(c) ? (unsigned)(c - '0')
							 : (unsigned)((c | 0x20) - 'a' + 10);
				/* Stay at or below 2^63 - 1, as Content-Length. */
				if (b->remaining > UINT64_C(0x7fffffffffffffff) >> 4) {
					rc = body_fail(b, -EBADMSG, "chunk size too large");
					goto out;
				}
				b->remaining = b->remaining << 4 | d;
				b->state = S_SIZE;
			} else if (st == S_SIZE0) {
				rc = body_fail(b, -EBADMSG, "invalid chunk size");
				goto out;
			} else if (c == ';') {
				b->state = S_EXT_NAME0;
			} else if (ows(c)) {
				b->state = S_SIZE_WS;
			} else if (c == '\r') {
				b->state = S_SIZE_LF;
			} else {
				rc = body_fail(b, -EBADMSG, "invalid chunk size");
				goto out;
			}
			break;
		case S_SIZE_WS:
		case S_EXT_VAL_WS:
			if (c == ';')
				b->state = S_EXT_NAME0;
			else if (!ows(c))
				goto bad_ext;
			break;
		case S_EXT_NAME0:
			if (is(c, C_TCHAR))
				b->state = S_EXT_NAME;
			else if (!ows(c))
				goto bad_ext;
			break;
		case S_EXT_NAME:
			if (is(c, C_TCHAR))
				break;
			if (c == '=')
				b->state = S_EXT_VAL0;
			else if (c == ';')
				b->state = S_EXT_NAME0;
			else if (c == '\r')
				b->state = S_SIZE_LF;
			else if (ows(c))
				b->state = S_EXT_NAME_WS;
			else
				goto bad_ext;
			break;
		case S_EXT_NAME_WS:
			if (c == '=')
				b->state = S_EXT_VAL0;
			else if (c == ';')
				b->state = S_EXT_NAME0;
			else if (!ows(c))
				goto bad_ext;
			break;
		case S_EXT_VAL0:
			if (c == '"')
				b->state = S_EXT_QUOTE;
			else if (is(c, C_TCHAR))
				b->state = S_EXT_TOKEN;
			else if (!ows(c))
				goto bad_ext;
			break;
		case S_EXT_TOKEN:
			if (is(c, C_TCHAR))
				break;
			if (c == ';')
				b->state = S_EXT_NAME0;
			else if (c == '\r')
				b->state = S_SIZE_LF;
			else if (ows(c))
				b->state = S_EXT_VAL_WS;
			else
				goto bad_ext;
			break;
		case S_EXT_QUOTE:
			if (c == '"')
				b->state = S_EXT_VAL_END;
			else if (c == '\\')
				b->state = S_EXT_QPAIR;
			else if (!is(c, C_QDTEXT))
				goto bad_ext;
			break;
		case S_EXT_QPAIR:
			/* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
			if (!is(c, C_FIELD))
				goto bad_ext;
			b->state = S_EXT_QUOTE;
			break;
		case S_EXT_VAL_END:
			if (c == ';')
				b->state = S_EXT_NAME0;
			else if (c == '\r')
				b->state = S_SIZE_LF;
			else if (ows(c))
				b->state = S_EXT_VAL_WS;
			else
				goto bad_ext;
			break;
		case S_SIZE_LF:
			if (c != '\n') {
				rc = body_fail(b, -EBADMSG, "bare CR in chunk-size line");
				goto out;
			}
			b->line = 0;
			b->state = b->remaining ? S_DATA : S_TR_LINE;
			break;
		case S_DATA_CR:
			if (c != '\r') {
				rc = body_fail(b, -EBADMSG, "chunk data not followed by CRLF");
				goto out;
			}
			b->state = S_DATA_LF;
			break;
		case S_DATA_LF:
			if (c != '\n') {
				rc = body_fail(b, -EBADMSG, "chunk data not followed by CRLF");
				goto out;
			}
			b->state = S_SIZE0;
			break;
		case S_TR_LINE:
			b->line = 0;
			if (c == '\r') {
				b->state = S_END_LF;
			} else if (is(c, C_TCHAR)) {
				b->line = 1;
				b->state = S_TR_NAME;
			} else {
				rc = body_fail(b, -EBADMSG, ows(c) ? "obs-fold in trailer"
								   : "invalid trailer field");
				goto out;
			}
			break;
		case S_TR_NAME:
			if (c == ':') {
				b->state = S_TR_VALUE;
			} else if (!is(c, C_TCHAR)) {
				rc = body_fail(b, -EBADMSG, "invalid trailer field");
				goto out;
			}
			break;
		case S_TR_VALUE:
			if (c == '\r') {
				b->state = S_TR_LF;
			} else if (!is(c, C_FIELD)) {
				rc = body_fail(b, -EBADMSG, "invalid trailer field");
				goto out;
			}
			break;
		case S_TR_LF:
		case S_END_LF:
			if (c != '\n') {
				rc = body_fail(b, -EBADMSG, "bare CR in trailer");
				goto out;
			}
			if (st == S_END_LF) {
				b->state = S_DONE;
				rc = 1;
				goto out;
			}
			b->state = S_TR_LINE;
			break;
		}
		continue;
bad_ext:
		rc = body_fail(b, -EBADMSG, "invalid chunk extension");
		break;
	}
out:
	/* On an error, *consumed stops short of the bad byte. */
	*consumed = rc < 0 ? i - 1 : i;
	return rc;
}

int weft_http1_body_decode(struct weft_http1_body *b, const char *buf, size_t len,
			   size_t *consumed, struct weft_http1_slice *data)
{
	data->ptr = buf;
	data->len = 0;
	*consumed = 0;
	if (b->err)
		return b->err;
	size_t n;
	switch (b->framing) {
	case WEFT_HTTP1_LENGTH:
		n = len < b->remaining ? len : (size_t)b->remaining;
		b->remaining -= n;
		data->len = n;
		*consumed = n;
		return b->remaining == 0;
	case WEFT_HTTP1_CHUNKED:
		if (b->state == S_DONE)
			return 1;
		return chunked(b, buf, len, consumed, data);
	case WEFT_HTTP1_UNTIL_CLOSE:
		data->len = len;
		*consumed = len;
		return 0;
	default:
		return 1;
	}
}

int weft_http1_body_eof(const struct weft_http1_body *b)
{
	if (b->err)
		return b->err;
	switch (b->framing) {
	case WEFT_HTTP1_LENGTH:
		return b->remaining == 0 ? 0 : -EPROTO;
	case WEFT_HTTP1_CHUNKED:
		return b->state == S_DONE ? 0 : -EPROTO;
	default:
		return 0;
	}
}

const char *weft_http1_body_error(const struct weft_http1_body *b)
{
	return b->why;
}
