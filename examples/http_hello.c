// SPDX-License-Identifier: MIT
/*
 * http_hello - a keep-alive HTTP/1.1 server that answers "hello" to a GET
 * on any path.
 *
 *   http_hello HOST:PORT        (WEFT_WORKERS sets the worker count)
 *
 * A connection between requests holds no task and no buffer: its stream
 * (one multishot receive that stays armed) is watched, and its next bytes
 * start a task (on_bytes) that answers every complete request they hold
 * (pipelined ones in one send), then hands the stream back to waiting.  A
 * request split across packets is read on, in the same task.  Each stream
 * is opened on a worker chosen in turn, so the receiving spreads over all
 * of them.  Idle connections close after 60 s.  SIGTERM or SIGINT stops
 * accepting (server.h), and shutdown closes the connections still waiting.
 *
 * weft_watch (a receive armed per burst, the fd the function's own between
 * bursts) suits a server that reads the fd itself; a stream saves the
 * kernel the receive submission and the poll arm of every burst.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <weft/http1.h>

#include "server.h"

#define IDLE_TIMEOUT (60 * WEFT_SEC)
#define MAX_REQUEST 8192  /* a head (and body) must fit in the stack buffer */
#define MAX_HEADERS 64

static const char HELLO[] = "HTTP/1.1 200 OK\r\n"
			    "Content-Type: text/plain\r\n"
			    "Content-Length: 6\r\n"
			    "\r\n"
			    "hello\n";
static const char HELLO_HEAD[] = "HTTP/1.1 200 OK\r\n"
				 "Content-Type: text/plain\r\n"
				 "Content-Length: 6\r\n"
				 "\r\n";
static const char NOT_ALLOWED[] = "HTTP/1.1 405 Method Not Allowed\r\n"
				  "Allow: GET, HEAD\r\n"
				  "Content-Length: 0\r\n"
				  "\r\n";

/* Responses to the requests seen so far, sent together. */
struct out {
	char buf[4096];
	size_t len;
};

static int flush(int fd, struct out *o)
{
	ssize_t n = o->len ? weft_sock_send_all(fd, o->buf, o->len, NULL) : 0;
	o->len = 0;
	return n < 0 ? (int)n : 0;
}

static int append(int fd, struct out *o, const char *s, size_t len)
{
	if (o->len + len > sizeof(o->buf)) {
		int rc = flush(fd, o);
		if (rc < 0)
			return rc;
	}
	memcpy(o->buf + o->len, s, len);
	o->len += len;
	return 0;
}

/* An error answer that ends the connection. */
static void refuse(int fd, struct out *o, int status, const char *why)
{
	char r[256];
	int n = snprintf(r, sizeof(r),
			 "HTTP/1.1 %d Bad Request\r\nConnection: close\r\n"
			 "Content-Length: %zu\r\n\r\n%s\n",
			 status, strlen(why) + 1, why);
	if (append(fd, o, r, (size_t)n) == 0)
		flush(fd, o);
}

/*
 * Answers the complete requests at the start of buf[0, len).  Returns the
 * bytes consumed (a partial request may follow them), or -1 when the
 * connection must close (an error, or a request that asked for it).
 */
static ssize_t answer(int fd, const char *buf, size_t len, struct out *o)
{
	struct weft_http1_header headers[MAX_HEADERS];
	struct weft_http1_parser p;
	weft_http1_parser_init(&p, NULL, headers, MAX_HEADERS);
	size_t off = 0;
	while (off < len) {
		struct weft_http1_head h;
		int n = weft_http1_parse_request(&p, buf + off, len - off, &h);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			int status;
			const char *why = weft_http1_parser_error(&p, &status);
			refuse(fd, o, status, why);
			return -1;
		}
		/* A body, if any, is read and dropped: it must be whole here. */
		size_t used = (size_t)n;
		if (h.framing != WEFT_HTTP1_NONE) {
			struct weft_http1_body b;
			struct weft_http1_slice data;
			size_t c;
			weft_http1_body_init(&b, h.framing, h.content_length, NULL);
			int r = weft_http1_body_decode(&b, buf + off + used, len - off - used, &c, &data);
			while (r == 0 && off + used + c < len) {
				used += c;
				r = weft_http1_body_decode(&b, buf + off + used, len - off - used, &c, &data);
			}
			if (r < 0) {
				refuse(fd, o, 400, weft_http1_body_error(&b));
				return -1;
			}
			if (r == 0)
				break; /* the rest of the body is still to come */
			used += c;
		}
		int rc;
		if (h.method_id == WEFT_HTTP1_GET)
			rc = append(fd, o, HELLO, sizeof(HELLO) - 1);
		else if (h.method_id == WEFT_HTTP1_HEAD)
			rc = append(fd, o, HELLO_HEAD, sizeof(HELLO_HEAD) - 1);
		else
			rc = append(fd, o, NOT_ALLOWED, sizeof(NOT_ALLOWED) - 1);
		off += used;
		if (rc < 0)
			return -1;
		if (!(h.flags & WEFT_HTTP1_KEEP_ALIVE)) {
			flush(fd, o);
			return -1;
		}
	}
	return (ssize_t)off;
}

static void on_bytes(struct weft_stream *s, int fd, int status, void *arg);

/* Answers the requests queued on s, then hands it back to waiting. */
static void serve(struct weft_stream *s, int fd)
{
	char buf[MAX_REQUEST];
	size_t len = 0;
	/* Not `= {.len = 0}`: that would zero the 4 KiB buffer for every
	 * burst, which was 2% of this server's CPU. */
	struct out o;
	o.len = 0;
	/* Queued bytes: this read does not suspend. */
	ssize_t r = weft_stream_recv(s, buf, sizeof(buf));
	while (r > 0) {
		len += (size_t)r;
		ssize_t used = answer(fd, buf, len, &o);
		if (used < 0)
			break;
		memmove(buf, buf + used, len - (size_t)used);
		len -= (size_t)used;
		if (len == 0) {
			if (flush(fd, &o) == 0 &&
			    weft_stream_watch(s, IDLE_TIMEOUT, on_bytes, NULL) == 0)
				return;
			break;
		}
		/* A request split across packets: wait for its rest. */
		if (len == sizeof(buf) || flush(fd, &o) < 0)
			break; /* too large for this server, or gone */
		struct weft_scope sc;
		weft_scope_deadline(&sc, IDLE_TIMEOUT);
		r = weft_stream_recv(s, buf + len, sizeof(buf) - len);
		weft_scope_end(&sc);
	}
	weft_stream_close(s);
	weft_close(fd);
}

static void on_bytes(struct weft_stream *s, int fd, int status, void *arg)
{
	(void)arg;
	if (status == 0) {
		serve(s, fd);
	} else { /* idle too long */
		weft_stream_close(s);
		weft_close(fd);
	}
}

/* Opens fd's stream on this worker, whose ring receives for it from then
 * on, and watches it. */
static intptr_t open_stream(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct weft_stream *s;
	if (weft_stream_open(fd, &s) < 0) {
		weft_close(fd);
	} else if (weft_stream_watch(s, IDLE_TIMEOUT, on_bytes, NULL) < 0) {
		weft_stream_close(s);
		weft_close(fd);
	}
	return 0;
}

static intptr_t accept_loop(void *arg)
{
	struct weft_listener *l = arg;
	struct weft_spawn_opts on = {.flags = WEFT_SPAWN_ON | WEFT_SPAWN_PINNED};
	int fd;
	while ((fd = weft_listener_accept(l)) >= 0) {
		weft_tcp_nodelay(fd, 1);
		on.worker++; /* the runtime takes it modulo the worker count */
		struct weft_task *t = weft_spawn(open_stream, (void *)(intptr_t)fd, &on);
		if (t)
			weft_detach(t);
		else
			weft_close(fd);
	}
	return fd;
}

int main(int argc, char **argv)
{
	return server_main(argc, argv, "http_hello", accept_loop);
}
