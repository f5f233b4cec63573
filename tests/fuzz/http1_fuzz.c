// SPDX-License-Identifier: MIT
/*
 * http1_fuzz.c - the libFuzzer target for net/http1.c.  Each input is read
 * as a request stream, as a response stream and as a chunked body, whole
 * and in pieces, and the parser's promises are checked:
 *  - a head's length and a body's consumed count never exceed the input,
 *    and every slice lies inside the bytes the call consumed;
 *  - what was accepted obeys the grammar (token names, no CR, LF or NUL in
 *    values, trimmed values, a version of 1.0 or 1.1, a status in 100-599,
 *    framing that suits the message);
 *  - an error is one of the documented errno values, with a reason and a
 *    status;
 *  - feeding in pieces (at split points drawn from a hash of the input,
 *    and a byte at a time for short inputs) into a buffer that moves
 *    between calls gives exactly the result of feeding whole;
 *  - an accepted head, parsed again on its own, gives the same head.
 * Pipelined messages are followed through their bodies up to a few
 * messages deep.  The limits and the header array's size also come from
 * the hash, so small limits are exercised as well as the defaults.
 *
 * Built by tests/fuzz/meson.build with -fsanitize=fuzzer,address,undefined
 * and run by `./dev fuzz http1`; replay_main.c runs the same function over
 * the seed corpus in the ordinary test suite.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "weft/http1.h"

#define MAX_FIELDS 64
#define MAX_PIPELINE 8
#define MAX_BYTEWISE 2048 /* longer inputs are not fed a byte at a time */

/* Two scratch buffers used in turn, so that the bytes move between calls. */
static char *scratch[2];
static size_t scratch_size;

static char *moved(const uint8_t *d, size_t n, int turn)
{
	if (n > scratch_size || !scratch[0]) {
		free(scratch[0]);
		free(scratch[1]);
		scratch_size = n * 2 + 16;
		scratch[0] = malloc(scratch_size);
		scratch[1] = malloc(scratch_size);
		CHECK(scratch[0] && scratch[1]);
	}
	if (n)
		memcpy(scratch[turn & 1], d, n);
	return scratch[turn & 1];
}

static bool in(const struct weft_http1_slice *s, const char *lo, const char *hi)
{
	if (s->len == 0)
		return true; /* an empty slice may point anywhere, NULL included */
	return s->ptr >= lo && s->ptr + s->len <= hi;
}

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A parse result in terms of offsets, so results of two buffers compare. */
struct result {
	int rc, status, minor, method_id;
	unsigned flags, nheaders;
	int framing;
	uint64_t length;
	const char *why;
	size_t off[3 + 2 * MAX_FIELDS][2]; /* (offset, length) of every slice */
};

static void slice_off(size_t out[2], const struct weft_http1_slice *s, const char *base)
{
	out[0] = s->len ? (size_t)(s->ptr - base) : 0;
	out[1] = s->len;
}

static void collect(struct result *r, int rc, const struct weft_http1_parser *p,
		    const struct weft_http1_head *h, const char *base)
{
	memset(r, 0, sizeof(*r));
	r->rc = rc;
	if (rc <= 0) {
		r->why = weft_http1_parser_error(p, &r->status);
		return;
	}
	r->why = "";
	r->status = h->status;
	r->minor = h->minor;
	r->method_id = h->method_id;
	r->flags = h->flags;
	r->nheaders = h->nheaders;
	r->framing = h->framing;
	r->length = h->content_length;
	slice_off(r->off[0], &h->method, base);
	slice_off(r->off[1], &h->target, base);
	slice_off(r->off[2], &h->reason, base);
	for (unsigned i = 0; i < h->nheaders; i++) {
		slice_off(r->off[3 + 2 * i], &h->headers[i].name, base);
		slice_off(r->off[4 + 2 * i], &h->headers[i].value, base);
	}
}

static bool same_(const struct result *a, const struct result *b)
{
	return a->rc == b->rc && a->status == b->status && a->minor == b->minor &&
	       a->method_id == b->method_id && a->flags == b->flags &&
	       a->nheaders == b->nheaders && a->framing == b->framing &&
	       a->length == b->length && strcmp(a->why, b->why) == 0 &&
	       memcmp(a->off, b->off, sizeof(a->off)) == 0;
}

/* Compares, and on a difference says what differs. */
static bool same(const struct result *a, const struct result *b)
{
	if (same_(a, b))
		return true;
	fprintf(stderr, "http1_fuzz: results differ: rc %d/%d status %d/%d why \"%s\"/\"%s\" "
			"framing %d/%d flags %u/%u fields %u/%u\n",
		a->rc, b->rc, a->status, b->status, a->why, b->why, a->framing, b->framing,
		a->flags, b->flags, a->nheaders, b->nheaders);
	return false;
}

struct setup {
	struct weft_http1_limits lim;
	unsigned max_fields;
	int req; /* -1: parse requests; else the method a response answers */
};

static int parse(const struct setup *s, struct weft_http1_parser *p, const char *buf, size_t n,
		 struct weft_http1_head *h)
{
	return s->req < 0 ? weft_http1_parse_request(p, buf, n, h)
			  : weft_http1_parse_response(p, buf, n, h, (enum weft_http1_method)s->req);
}

/* Checks what a single parse call promised. */
static void check_head(const struct setup *s, int rc, const struct weft_http1_parser *p,
		       const struct weft_http1_head *h, const char *buf, size_t n)
{
	if (rc <= 0) {
		int status;
		const char *why = weft_http1_parser_error(p, &status);
		CHECK(rc == -EAGAIN || rc == -EBADMSG || rc == -EMSGSIZE || rc == -E2BIG ||
		      rc == -EPROTONOSUPPORT);
		if (rc == -EAGAIN) {
			uint32_t max_head = s->lim.max_head ? s->lim.max_head : WEFT_HTTP1_MAX_HEAD;
			CHECK(n <= max_head);
			return;
		}
		CHECK(why && why[0]);
		CHECK(status == 400 || status == 414 || status == 431 || status == 505);
		CHECK((rc == -EBADMSG) == (status == 400));
		return;
	}
	const char *end = buf + rc;
	CHECK((size_t)rc <= n);
	CHECK(rc >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0);
	CHECK(h->nheaders <= s->max_fields);
	CHECK(h->minor == 0 || h->minor == 1);
	CHECK(in(&h->method, buf, end) && in(&h->target, buf, end) && in(&h->reason, buf, end));
	if (s->req < 0) {
		CHECK(h->method.len > 0 && h->target.len > 0);
		for (size_t i = 0; i < h->method.len; i++)
			CHECK(is_tchar((unsigned char)h->method.ptr[i]));
		for (size_t i = 0; i < h->target.len; i++)
			CHECK(h->target.ptr[i] > 0x20 && h->target.ptr[i] < 0x7f);
		CHECK(h->framing != WEFT_HTTP1_UNTIL_CLOSE);
		CHECK(h->minor == 0 || weft_http1_find(h, "host", 4, 0) >= 0);
	} else {
		CHECK(h->status >= 100 && h->status <= 599);
		for (size_t i = 0; i < h->reason.len; i++) {
			unsigned char c = (unsigned char)h->reason.ptr[i];
			CHECK(c >= 0x20 || c == '\t');
			CHECK(c != 0x7f);
		}
		if (h->status < 200 || h->status == 204 || h->status == 304 ||
		    s->req == WEFT_HTTP1_HEAD)
			CHECK(h->framing == WEFT_HTTP1_NONE);
	}
	CHECK((h->framing == WEFT_HTTP1_LENGTH) == (h->content_length > 0));
	if (h->framing == WEFT_HTTP1_UNTIL_CLOSE)
		CHECK(!(h->flags & WEFT_HTTP1_KEEP_ALIVE));
	CHECK(h->framing != WEFT_HTTP1_CHUNKED || h->minor == 1);
	for (unsigned i = 0; i < h->nheaders; i++) {
		const struct weft_http1_header *f = &h->headers[i];
		CHECK(f->name.len > 0 && in(&f->name, buf, end) && in(&f->value, buf, end));
		for (size_t j = 0; j < f->name.len; j++)
			CHECK(is_tchar((unsigned char)f->name.ptr[j]));
		for (size_t j = 0; j < f->value.len; j++) {
			unsigned char c = (unsigned char)f->value.ptr[j];
			CHECK((c >= 0x20 && c != 0x7f) || c == '\t');
		}
		if (f->value.len) {
			CHECK(f->value.ptr[0] != ' ' && f->value.ptr[0] != '\t');
			char last = f->value.ptr[f->value.len - 1];
			CHECK(last != ' ' && last != '\t');
		}
		CHECK(weft_http1_find(h, f->name.ptr, f->name.len, 0) <= (int)i);
	}
}

/* Parses d[0, n) whole, then in pieces, and checks they agree.  Returns the
 * whole result; *h holds its head, whose slices point into d. */
static int head_everyway(const struct setup *s, const uint8_t *d, size_t n,
			 struct weft_http1_head *h, struct weft_http1_header *hdrs)
{
	struct weft_http1_parser p;
	weft_http1_parser_init(&p, &s->lim, hdrs, s->max_fields);
	const char *buf = (const char *)d;
	int rc = parse(s, &p, buf, n, h);
	check_head(s, rc, &p, h, buf, n);
	struct result whole;
	collect(&whole, rc, &p, h, buf);

	/* Reparse what was accepted, on its own. */
	if (rc > 0) {
		struct weft_http1_header again_hdrs[MAX_FIELDS];
		struct weft_http1_head again;
		struct weft_http1_parser q;
		weft_http1_parser_init(&q, &s->lim, again_hdrs, s->max_fields);
		int rc2 = parse(s, &q, buf, (size_t)rc, &again);
		struct result r2;
		collect(&r2, rc2, &q, &again, buf);
		CHECK(same(&whole, &r2));
	}

	/* A few random cuts, then (for short inputs) every byte. */
	for (int mode = 0; mode < 2; mode++) {
		if (mode == 1 && n > MAX_BYTEWISE)
			break;
		struct weft_http1_header piece_hdrs[MAX_FIELDS];
		struct weft_http1_head ph;
		struct weft_http1_parser q;
		weft_http1_parser_init(&q, &s->lim, piece_hdrs, s->max_fields);
		size_t at = 0;
		int turn = 0;
		for (;;) {
			size_t step = mode == 1 ? 1 : 1 + (size_t)(next() % (n / 3 + 2));
			at = at + step < n ? at + step : n;
			char *b = moved(d, at, turn++);
			int r = parse(s, &q, b, at, &ph);
			check_head(s, r, &q, &ph, b, at);
			if (r != -EAGAIN || at == n) {
				struct result pr;
				collect(&pr, r, &q, &ph, b);
				CHECK(same(&whole, &pr));
				break;
			}
		}
	}
	return rc;
}

/* A decoded body: what the calls returned, in total. */
struct body {
	int rc;
	size_t consumed;
	uint64_t payload_len;
	uint64_t payload_hash;
	const char *why;
};

static void body_run(struct weft_http1_body *b, struct body *out, const char *buf, size_t n)
{
	size_t at = 0;
	for (;;) {
		size_t used = (size_t)-1;
		struct weft_http1_slice data;
		int rc = weft_http1_body_decode(b, buf + at, n - at, &used, &data);
		CHECK(rc == 0 || rc == 1 || rc == -EBADMSG || rc == -EMSGSIZE);
		CHECK(used <= n - at);
		CHECK(data.len <= used);
		CHECK(data.len == 0 || (data.ptr >= buf + at && data.ptr + data.len <= buf + at + used));
		/* On an error too: the payload before the bad byte is data. */
		for (size_t i = 0; i < data.len; i++)
			out->payload_hash = (out->payload_hash ^ (uint8_t)data.ptr[i]) * 0x100000001b3u;
		out->payload_len += data.len;
		at += used;
		out->rc = rc;
		if (rc != 0 || at == n)
			break;
		CHECK(used > 0); /* a call short of the input made progress */
	}
	out->consumed += at;
}

/* Decodes d[0, n) as a body of the given framing, whole and in pieces, and
 * checks they agree.  Returns the whole result. */
static struct body body_everyway(const struct setup *s, enum weft_http1_framing framing,
				 uint64_t length, const uint8_t *d, size_t n)
{
	struct weft_http1_body b;
	weft_http1_body_init(&b, framing, length, &s->lim);
	struct body whole = {0};
	body_run(&b, &whole, (const char *)d, n);
	whole.why = weft_http1_body_error(&b);
	if (whole.rc < 0) {
		CHECK(whole.why[0]);
		CHECK(weft_http1_body_eof(&b) == whole.rc);
	} else {
		CHECK(whole.why[0] == 0);
		int eof = weft_http1_body_eof(&b);
		CHECK(eof == 0 || eof == -EPROTO);
		CHECK((eof == 0) == (whole.rc == 1 || framing == WEFT_HTTP1_UNTIL_CLOSE));
	}
	if (framing == WEFT_HTTP1_LENGTH) {
		CHECK(whole.payload_len == (length < n ? length : n));
		CHECK(whole.rc == (length <= n));
	}
	if (framing == WEFT_HTTP1_NONE)
		CHECK(whole.rc == 1 && whole.consumed == 0);

	for (int mode = 0; mode < 2; mode++) {
		if (mode == 1 && n > MAX_BYTEWISE)
			break;
		weft_http1_body_init(&b, framing, length, &s->lim);
		struct body pieces = {0};
		size_t at = 0;
		int turn = 0;
		while (at < n || n == 0) {
			size_t step = mode == 1 ? 1 : 1 + (size_t)(next() % (n / 3 + 2));
			size_t len = at + step < n ? step : n - at;
			const char *piece = moved(d + at, len, turn++);
			size_t before = pieces.consumed;
			body_run(&b, &pieces, piece, len);
			at += pieces.consumed - before;
			if (pieces.rc != 0 || n == 0)
				break;
			CHECK(pieces.consumed - before == len);
		}
		pieces.why = weft_http1_body_error(&b);
		CHECK(pieces.rc == whole.rc);
		CHECK(pieces.payload_len == whole.payload_len);
		CHECK(pieces.payload_hash == whole.payload_hash);
		CHECK(strcmp(pieces.why, whole.why) == 0);
		/* An error stops at the same byte; so does the body's end. */
		CHECK(pieces.consumed == whole.consumed);
	}
	return whole;
}

/* Follows a stream of pipelined messages: head, body, next head... */
static void stream(const struct setup *s, const uint8_t *d, size_t n)
{
	struct weft_http1_header hdrs[MAX_FIELDS];
	for (int i = 0; i < MAX_PIPELINE; i++) {
		struct weft_http1_head h;
		int rc = head_everyway(s, d, n, &h, hdrs);
		if (rc <= 0)
			return;
		d += rc;
		n -= (size_t)rc;
		struct body b = body_everyway(s, h.framing, h.content_length, d, n);
		if (b.rc != 1)
			return;
		CHECK(b.consumed <= n);
		d += b.consumed;
		n -= b.consumed;
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
	struct setup s = {0};
	/* Mostly the defaults; sometimes limits small enough to be hit. */
	uint64_t r = next();
	if (r % 4 == 0) {
		s.lim.max_line = 1 + (uint32_t)(next() % 64);
		s.lim.max_head = 1 + (uint32_t)(next() % 256);
	}
	s.max_fields = r % 3 == 0 ? (unsigned)(next() % 8) : MAX_FIELDS;

	s.req = -1;
	stream(&s, data, size);

	static const int methods[] = {WEFT_HTTP1_GET, WEFT_HTTP1_HEAD, WEFT_HTTP1_CONNECT,
				      WEFT_HTTP1_POST};
	s.req = methods[next() % 4];
	stream(&s, data, size);

	body_everyway(&s, WEFT_HTTP1_CHUNKED, 0, data, size);
	body_everyway(&s, WEFT_HTTP1_LENGTH, 1 + next() % (size + 1), data, size);

	/* The list helper must stay inside its input. */
	if (size > 0) {
		size_t t = 1 + (size_t)(next() % (size < 16 ? size : 16));
		int has = weft_http1_has_token((const char *)data + t, size - t, (const char *)data, t);
		CHECK(has == 0 || has == 1);
	}
	return 0;
}
