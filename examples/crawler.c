// SPDX-License-Identifier: MIT
/*
 * crawler - fetch every page of a web site concurrently, following links.
 *
 *   crawler http://HOST:PORT/PATH [MAX_CONCURRENT]     (default 10)
 *
 * The crawler of the classic live-coded async framework, on weft: a task
 * per URL, written as plain sequential code (connect, send the request,
 * read the response, find the links), with
 *  - de-duplication: a URL is fetched once, however many pages link to it
 *    (a set under a weft_mutex, held only across non-suspending code);
 *  - bounded concurrency: a weft_sem with MAX_CONCURRENT units is held
 *    around each fetch, so at most that many connections are open at once;
 *  - structured concurrency: every fetch task is a child of one task group,
 *    and weft_group_wait returns when the whole site has been fetched.
 * Only http:// links to the same host and port are followed.  Each page is
 * printed as "STATUS PATH BYTES" on stdout as it completes ("error PATH
 * WHY" when there was no answer), then a summary; the exit status is 1 if
 * any fetch got no answer.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <weft.h>
#include <weft/http1.h>
#include <weft/io.h>
#include <weft/net.h>
#include <weft/sync.h>

#define MAX_PAGE (4u << 20)
#define MAX_PATH 2048

struct crawl {
	char host[256];            /* HOST:PORT, as given */
	struct weft_group *group;
	struct weft_sem slots;     /* fetches allowed at once */
	struct weft_mutex lock;    /* guards the fields below */
	char **seen;               /* open-addressed set of paths */
	size_t nseen, cap;
	unsigned pages, errors, active, max_active;
	uint64_t bytes;
};

struct fetch {
	struct crawl *c;
	char path[];
};

static size_t hash(const char *s)
{
	size_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* Adds path to the set; true if it was not there.  Lock held. */
static bool remember(struct crawl *c, const char *path)
{
	if (2 * (c->nseen + 1) > c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		char **t = calloc(cap, sizeof(*t));
		if (!t)
			return false;
		for (size_t i = 0; i < c->cap; i++)
			if (c->seen[i]) {
				size_t j = hash(c->seen[i]) & (cap - 1);
				while (t[j])
					j = (j + 1) & (cap - 1);
				t[j] = c->seen[i];
			}
		free(c->seen);
		c->seen = t;
		c->cap = cap;
	}
	size_t j = hash(path) & (c->cap - 1);
	for (; c->seen[j]; j = (j + 1) & (c->cap - 1))
		if (strcmp(c->seen[j], path) == 0)
			return false;
	if (!(c->seen[j] = strdup(path)))
		return false;
	c->nseen++;
	return true;
}

/*
 * Resolves link (as found in page `base`) to a path on our host, with dot
 * segments removed and the fragment dropped, into out.  Returns false for
 * a link elsewhere (another host, another scheme) or one too long.
 */
static bool resolve(const struct crawl *c, const char *base, const char *link, size_t len,
		    char *out)
{
	char tmp[MAX_PATH];
	const char *hash_at = memchr(link, '#', len);
	if (hash_at)
		len = (size_t)(hash_at - link);
	size_t hl = strlen(c->host);
	if (len >= 7 && strncmp(link, "http://", 7) == 0) {
		if (len < 7 + hl || strncmp(link + 7, c->host, hl) != 0 ||
		    (len > 7 + hl && link[7 + hl] != '/'))
			return false;
		link += 7 + hl;
		len -= 7 + hl;
		if (len == 0)
			link = "/", len = 1;
	} else if (memchr(link, ':', len) && !memchr(link, '/', (size_t)((char *)memchr(link, ':', len) - link))) {
		return false; /* mailto:, https:, javascript: ... */
	} else if (len >= 2 && link[0] == '/' && link[1] == '/') {
		return false; /* another host, scheme-relative */
	}
	size_t n;
	if (len && link[0] == '/') {
		n = 0;
	} else {
		/* Relative: the base path up to its last '/'. */
		n = (size_t)(strrchr(base, '/') - base) + 1;
		memcpy(tmp, base, n);
	}
	if (n + len >= sizeof(tmp))
		return false;
	memcpy(tmp + n, link, len);
	tmp[n + len] = 0;
	/* Remove dot segments (RFC 3986 section 5.2.4), segment by segment. */
	size_t o = 0;
	char *q = strchr(tmp, '?');
	size_t plen = q ? (size_t)(q - tmp) : strlen(tmp);
	for (size_t i = 0; i < plen;) {
		size_t j = i + 1;
		while (j < plen && tmp[j] != '/')
			j++;
		size_t seg = j - i; /* "/name" */
		if (seg == 2 && tmp[i + 1] == '.') {
			if (j == plen)
				out[o++] = '/';
		} else if (seg == 3 && tmp[i + 1] == '.' && tmp[i + 2] == '.') {
			while (o > 0 && out[--o] != '/')
				;
			if (j == plen)
				out[o++] = '/';
		} else {
			memcpy(out + o, tmp + i, seg);
			o += seg;
		}
		i = j;
	}
	if (o == 0)
		out[o++] = '/';
	size_t rest = strlen(tmp + plen);
	memcpy(out + o, tmp + plen, rest + 1);
	return true;
}

static intptr_t fetch_task(void *arg);

/* Queues a fetch of every new same-site link in body[0, len). */
static void follow(struct crawl *c, const char *base, const char *body, size_t len)
{
	static const char attr[] = "href=\"";
	const char *p = body, *end = body + len;
	while ((p = memmem(p, (size_t)(end - p), attr, sizeof(attr) - 1))) {
		p += sizeof(attr) - 1;
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q)
			break;
		char path[MAX_PATH];
		if (resolve(c, base, p, (size_t)(q - p), path)) {
			weft_mutex_lock(&c->lock);
			bool fresh = remember(c, path);
			weft_mutex_unlock(&c->lock);
			struct fetch *f = fresh ? malloc(sizeof(*f) + strlen(path) + 1) : NULL;
			if (f) {
				f->c = c;
				strcpy(f->path, path);
				if (weft_group_spawn(c->group, fetch_task, f, NULL) < 0)
					free(f);
			}
		}
		p = q + 1;
	}
}

/* Appends d to the page buffer *page of *len bytes (capacity *cap). */
static int keep(char **page, size_t *len, size_t *cap, struct weft_http1_slice d)
{
	if (*len + d.len > *cap) {
		size_t want = *cap ? *cap : 16384;
		while (want < *len + d.len)
			want *= 2;
		char *p = want <= MAX_PAGE ? realloc(*page, want) : NULL;
		if (!p)
			return -EFBIG;
		*page = p;
		*cap = want;
	}
	memcpy(*page + *len, d.ptr, d.len);
	*len += d.len;
	return 0;
}

/* GETs path over a new connection: returns the status with the body in
 * *page (malloc'd, *plen bytes), or -errno. */
static int get(struct crawl *c, const char *path, char **page, size_t *plen)
{
	int fd = weft_sock_dial(c->host);
	if (fd < 0)
		return fd;
	char raw[16384];
	int n = snprintf(raw, sizeof(raw),
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: weft-crawler\r\n"
			 "Connection: close\r\n\r\n",
			 path, c->host);
	ssize_t rc = weft_sock_send_all(fd, raw, (size_t)n, NULL);
	struct weft_http1_header headers[64];
	struct weft_http1_parser p;
	struct weft_http1_head h;
	struct weft_http1_body b;
	weft_http1_parser_init(&p, NULL, headers, 64);
	size_t len = 0, cap = 0;
	bool have_head = false;
	int status = 0;
	*page = NULL;
	*plen = 0;
	while (rc >= 0) {
		if (len == sizeof(raw)) {
			rc = -EMSGSIZE; /* a head larger than raw */
			break;
		}
		ssize_t got = weft_recv(fd, raw + len, sizeof(raw) - len, 0);
		if (got <= 0) {
			/* End of stream is a proper end only where the
			 * framing says so (or it is UNTIL_CLOSE). */
			rc = got < 0 ? got : have_head && weft_http1_body_eof(&b) == 0 ? 0 : -EPROTO;
			break;
		}
		len += (size_t)got;
		size_t used = 0;
		if (!have_head) {
			int hn = weft_http1_parse_response(&p, raw, len, &h, WEFT_HTTP1_GET);
			if (hn == -EAGAIN)
				continue;
			if (hn < 0) {
				rc = hn;
				break;
			}
			have_head = true;
			status = h.status;
			used = (size_t)hn;
			weft_http1_body_init(&b, h.framing, h.content_length, NULL);
		}
		/* Decode what came; the payload goes to the page. */
		/* At least one call: a body with no bytes (NONE) ends at once. */
		int r;
		do {
			size_t u;
			struct weft_http1_slice d;
			r = weft_http1_body_decode(&b, raw + used, len - used, &u, &d);
			if (r >= 0 && keep(page, plen, &cap, d) < 0)
				r = -EFBIG;
			used += u;
		} while (r == 0 && used < len);
		if (r < 0)
			rc = r;
		if (r != 0)
			break; /* the body ended, or failed */
		memmove(raw, raw + used, len - used);
		len -= used;
	}
	weft_close(fd);
	if (rc < 0) {
		free(*page);
		*page = NULL;
		return (int)rc;
	}
	return status;
}

static intptr_t fetch_task(void *arg)
{
	struct fetch *f = arg;
	struct crawl *c = f->c;
	if (weft_sem_acquire(&c->slots) < 0) {
		free(f);
		return -ECANCELED;
	}
	weft_mutex_lock(&c->lock);
	if (++c->active > c->max_active)
		c->max_active = c->active;
	weft_mutex_unlock(&c->lock);
	char *body = NULL;
	size_t len = 0;
	int status = get(c, f->path, &body, &len);
	weft_mutex_lock(&c->lock);
	c->active--;
	if (status >= 0) {
		c->pages++;
		c->bytes += len;
	} else {
		c->errors++; /* no answer at all */
	}
	weft_mutex_unlock(&c->lock);
	weft_sem_release(&c->slots);
	if (status < 0)
		printf("error %s %s\n", f->path, strerror(-status));
	else
		printf("%d %s %zu\n", status, f->path, len);
	if (status == 200)
		follow(c, f->path, body, len);
	free(body);
	free(f);
	return 0;
}

static intptr_t crawl_main(void *arg)
{
	struct crawl *c = arg;
	uint64_t t0 = weft_now();
	c->group = weft_group_new(0);
	const char *slash = strchr(c->host, '/');
	const char *path = slash ? slash : "/";
	struct fetch *f = c->group ? malloc(sizeof(*f) + strlen(path) + 1) : NULL;
	if (!f)
		return -ENOMEM;
	f->c = c;
	strcpy(f->path, path);
	if (slash)
		c->host[slash - c->host] = 0;
	remember(c, f->path);
	if (weft_group_spawn(c->group, fetch_task, f, NULL) < 0)
		free(f);
	weft_group_wait(c->group);
	weft_group_free(c->group);
	printf("crawled %u pages (%llu bytes) in %.1f ms, %u errors, at most %u fetches at once\n",
	       c->pages, (unsigned long long)c->bytes, (double)(weft_now() - t0) / 1e6, c->errors,
	       c->max_active);
	return c->errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3 || strncmp(argv[1], "http://", 7) != 0) {
		fprintf(stderr, "usage: crawler http://HOST:PORT/PATH [MAX_CONCURRENT]\n");
		return 2;
	}
	struct crawl c = {0};
	long max = argc == 3 ? strtol(argv[2], NULL, 10) : 10;
	if (max < 1 || strlen(argv[1] + 7) >= sizeof(c.host)) {
		fprintf(stderr, "crawler: bad MAX_CONCURRENT or URL too long\n");
		return 2;
	}
	strcpy(c.host, argv[1] + 7);
	weft_sem_init(&c.slots, (uint64_t)max);
	weft_mutex_init(&c.lock);
	intptr_t rc = weft_main(crawl_main, &c, NULL);
	for (size_t i = 0; i < c.cap; i++)
		free(c.seen[i]);
	free(c.seen);
	if (rc < 0) {
		fprintf(stderr, "crawler: %s\n", strerror((int)-rc));
		return 1;
	}
	return (int)rc;
}
