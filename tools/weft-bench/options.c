// SPDX-License-Identifier: MIT
/*
 * options.c - weft-bench's command line: options into struct bench,
 * targets into struct url (http://, unix: and tcp:// forms), --rate's
 * constant and ramp forms, and --slo's target list.  Every mistake is
 * reported on stderr with the option it concerns and ends the program
 * with EXIT_USAGE; docs/bench.md lists the options.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-bench [options] URL...\n"
		"  URL: http://HOST[:PORT][/PATH], unix:SOCKET[:/PATH], or tcp://HOST:PORT (echo)\n"
		"  -c, --connections N     connections (10)\n"
		"  -d, --duration T        measured time: 10s, 2m, 500ms (10s unless -n)\n"
		"  -n, --requests N        exactly N requests in all\n"
		"  -w, -t, --workers N     worker threads (the CPUs)\n"
		"      --warmup T          leading time not counted (0)\n"
		"  -R, --rate R|A:B        open loop at R req/s, or a ramp from A to B\n"
		"  -p, --pipeline N        requests in flight per connection (1)\n"
		"      --timeout T         per request, 0 for none (2s)\n"
		"      --connect-timeout T per connect (2s)\n"
		"  -m, --method M          request method (GET)\n"
		"  -H, --header 'N: V'     add a header (repeatable; Host replaces ours)\n"
		"      --body S            request body\n"
		"      --body-file F       request body from a file\n"
		"      --host NAME         Host header (unix: targets: localhost)\n"
		"      --size N            tcp:// echo: bytes per message (64)\n"
		"      --slo LIST          p99=10ms,mean=2ms,max=1s,errors=0.1%%,rps=1000\n"
		"      --json              the result as one JSON object\n"
		"      --interval-json F   one JSON line per second into F (-: stdout)\n"
		"      --hgrm F            the latency distribution, HdrHistogram text\n"
		"      --plot F            the latency distribution as an SVG plot\n"
		"exit status: 0 ok, 1 failure, 2 usage, 3 an --slo target missed\n");
}

/* A plain decimal number, DIGITS[.DIGITS] or .DIGITS, at s: *v and the
 * position after it, or NULL.  Not strtod's wider syntax: a value such as
 * 0x10 or 1e3 in a duration or a rate is far more likely a slip than a
 * wish. */
static const char *decimal(const char *s, double *v)
{
	size_t n = strspn(s, "0123456789");
	if (s[n] == '.')
		n += 1 + strspn(s + n + 1, "0123456789");
	char buf[64];
	if (n == 0 || (n == 1 && s[0] == '.') || n >= sizeof(buf))
		return NULL;
	memcpy(buf, s, n);
	buf[n] = 0;
	*v = strtod(buf, NULL);
	return s + n;
}

int64_t parse_time(const char *s, bool unit_optional)
{
	double v;
	const char *end = decimal(s, &v);
	if (!end)
		return -1;
	double mul;
	if (!strcmp(end, "") && unit_optional)
		mul = 1e9;
	else if (!strcmp(end, "s"))
		mul = 1e9;
	else if (!strcmp(end, "ms"))
		mul = 1e6;
	else if (!strcmp(end, "us"))
		mul = 1e3;
	else if (!strcmp(end, "m"))
		mul = 60e9;
	else if (!strcmp(end, "h"))
		mul = 3600e9;
	else
		return -1;
	double ns = v * mul;
	return ns > 1e18 ? -1 : (int64_t)ns;
}

static int parse_count(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || errno || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_rate(const char *s, double *out)
{
	const char *end = decimal(s, out);
	return !end || *end || *out > 1e9 ? -1 : 0;
}

/* "R" or "A:B" (A may be 0, R and B may not). */
static int parse_rates(struct bench *b, const char *s)
{
	char tmp[64];
	const char *colon = strchr(s, ':');
	if (!colon) {
		if (parse_rate(s, &b->rate_from))
			return -1;
		b->rate_to = b->rate_from;
	} else {
		size_t n = (size_t)(colon - s);
		if (n >= sizeof(tmp))
			return -1;
		memcpy(tmp, s, n);
		tmp[n] = 0;
		if (parse_rate(tmp, &b->rate_from) || parse_rate(colon + 1, &b->rate_to))
			return -1;
	}
	return b->rate_to > 0 ? 0 : -1;
}

/* One --slo item, NAME=VALUE. */
static int parse_slo_item(struct slo *o, const char *item, const char **why)
{
	const char *eq = strchr(item, '=');
	size_t nl = eq ? (size_t)(eq - item) : 0;
	if (!eq || nl == 0 || nl >= sizeof(o->name)) {
		*why = "expected NAME=VALUE";
		return -1;
	}
	memcpy(o->name, item, nl);
	o->name[nl] = 0;
	const char *val = eq + 1;
	if (o->name[0] == 'p' && nl > 1) {
		if (!isdigit((unsigned char)o->name[1])) {
			*why = "a percentile is pNN or pNN.N";
			return -1;
		}
		const char *end = decimal(o->name + 1, &o->pct);
		if (!end || *end || !(o->pct > 0) || o->pct > 100) {
			*why = "a percentile is pNN or pNN.N, above 0 and at most 100";
			return -1;
		}
		o->kind = SLO_PCT;
	} else if (!strcmp(o->name, "mean")) {
		o->kind = SLO_MEAN;
	} else if (!strcmp(o->name, "max")) {
		o->kind = SLO_MAX;
	} else if (!strcmp(o->name, "errors")) {
		o->kind = SLO_ERRORS;
		const char *end = decimal(val, &o->limit);
		if (!end || strcmp(end, "%") || o->limit > 100) {
			*why = "errors takes a percentage: errors=0.1%";
			return -1;
		}
		return 0;
	} else if (!strcmp(o->name, "rps")) {
		o->kind = SLO_RPS;
		if (parse_rate(val, &o->limit)) {
			*why = "rps takes a rate in requests/s: rps=1000";
			return -1;
		}
		return 0;
	} else {
		*why = "unknown target (pNN, mean, max, errors, rps)";
		return -1;
	}
	int64_t ns = parse_time(val, false);
	if (ns < 0) {
		*why = "a latency needs a unit: 10ms, 250us, 1s";
		return -1;
	}
	o->limit = (double)ns;
	return 0;
}

static int parse_slo(struct bench *b, const char *s)
{
	char item[128];
	for (const char *p = s;; p++) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *why = "too many targets";
		if (n >= sizeof(item))
			why = "too long";
		else if (n == 0)
			why = "an empty target";
		if (n && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = 0;
		} else {
			snprintf(item, sizeof(item), "%s", s);
		}
		if (n == 0 || n >= sizeof(item) || b->nslos == MAX_SLOS ||
		    parse_slo_item(&b->slos[b->nslos], item, &why)) {
			fprintf(stderr, "weft-bench: --slo: %s: %s\n", item, why);
			return -1;
		}
		b->nslos++;
		if (!comma)
			return 0;
		p = comma;
	}
}

static char *strndup0(const char *s, size_t n)
{
	char *r = malloc(n + 1);
	if (r) {
		memcpy(r, s, n);
		r[n] = 0;
	}
	return r;
}

/*
 * Splits a target into u: http://HOST[:PORT][/PATH] (port 80),
 * unix:SOCKET[:/PATH] (the path after the first ":/"; Host from --host or
 * "localhost"), or tcp://HOST:PORT.  Returns the protocol, or -1.
 */
static int parse_url(const char *s, struct url *u)
{
	const char *hp, *path;
	size_t hl;
	int proto = P_HTTP;
	if (!strncmp(s, "unix:", 5)) {
		if (!s[5])
			return -1;
		/* The socket path has at least one byte: search after it. */
		const char *sep = strstr(s + 6, ":/");
		hl = sep ? (size_t)(sep - s) : strlen(s);
		hp = s;
		path = sep ? sep + 1 : "/";
		u->host = strdup("localhost");
	} else {
		if (!strncmp(s, "http://", 7)) {
			hp = s + 7;
		} else if (!strncmp(s, "tcp://", 6)) {
			hp = s + 6;
			proto = P_ECHO;
		} else {
			return -1;
		}
		/* The authority ends at the path, the query or the fragment
		 * (RFC 3986 section 3.2); with no path the path is "/". */
		hl = strcspn(hp, "/?#");
		const char *rest = hp + hl;
		if (proto == P_ECHO && *rest && strcmp(rest, "/"))
			return -1;
		path = *rest == '/' || *rest == '?' ? rest : "/";
		/* The port is after the last ':' outside brackets. */
		const char *rb = memchr(hp, ']', hl), *colon = NULL;
		for (size_t i = 0; i < hl; i++)
			if (hp[i] == ':')
				colon = hp + i;
		bool has_port = colon && (!rb || colon > rb);
		if (hl == 0 || (hp[0] == '[' && !rb) || (has_port && colon == hp) ||
		    (proto == P_ECHO && !has_port))
			return -1;
		u->host = strndup0(hp, hl);
		if (u->host && !has_port) {
			size_t n = hl + 4;
			u->hostport = malloc(n);
			if (u->hostport)
				snprintf(u->hostport, n, "%s:80", u->host);
		}
	}
	/* The fragment is the client's alone (wrk drops it too); what is left
	 * goes into the request line, which no space or control byte may
	 * break.  A query with no path before it gets the path "/". */
	size_t pl = strcspn(path, "#"), slash = *path == '?';
	bool ok = true;
	for (size_t i = 0; i < pl; i++)
		ok &= (unsigned char)path[i] > ' ' && path[i] != 0x7f;
	u->text = strdup(s);
	if (!u->hostport)
		u->hostport = strndup0(hp, hl);
	if ((u->path = malloc(slash + pl + 1))) {
		u->path[0] = '/';
		memcpy(u->path + slash, path, pl);
		u->path[slash + pl] = 0;
	}
	return ok && u->text && u->hostport && u->host && u->path ? proto : -1;
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
			return false;
	return true;
}

/* "Name: value": a token, a colon, no CR or LF. */
static bool is_header(const char *h)
{
	const char *colon = strchr(h, ':');
	return colon && is_token(h, (size_t)(colon - h)) && !strpbrk(h, "\r\n");
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			char *nb = cap <= 64u << 20 ? realloc(buf, cap) : NULL;
			if (!nb) {
				rc = cap > 64u << 20 ? -EFBIG : -ENOMEM;
				break;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
	fclose(f);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return 0;
}

enum {
	O_WARMUP = 256, O_TIMEOUT, O_CTIMEOUT, O_BODY, O_BODY_FILE, O_HOST, O_SIZE,
	O_SLO, O_JSON, O_INTERVAL, O_HGRM, O_PLOT,
};

static const struct option longopts[] = {
	{"connections", required_argument, NULL, 'c'},
	{"duration", required_argument, NULL, 'd'},
	{"requests", required_argument, NULL, 'n'},
	{"workers", required_argument, NULL, 'w'},
	{"threads", required_argument, NULL, 't'},
	{"rate", required_argument, NULL, 'R'},
	{"pipeline", required_argument, NULL, 'p'},
	{"method", required_argument, NULL, 'm'},
	{"header", required_argument, NULL, 'H'},
	{"warmup", required_argument, NULL, O_WARMUP},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"connect-timeout", required_argument, NULL, O_CTIMEOUT},
	{"body", required_argument, NULL, O_BODY},
	{"body-file", required_argument, NULL, O_BODY_FILE},
	{"host", required_argument, NULL, O_HOST},
	{"size", required_argument, NULL, O_SIZE},
	{"slo", required_argument, NULL, O_SLO},
	{"json", no_argument, NULL, O_JSON},
	{"interval-json", required_argument, NULL, O_INTERVAL},
	{"hgrm", required_argument, NULL, O_HGRM},
	{"plot", required_argument, NULL, O_PLOT},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* The option's name for messages: "-c" or "--timeout". */
static const char *opt_name(int o, char *buf, size_t n)
{
	for (const struct option *l = longopts; l->name; l++)
		if (l->val == o) {
			snprintf(buf, n, "--%s", l->name);
			return buf;
		}
	snprintf(buf, n, "-%c", o);
	return buf;
}

/* Applies one option; 0, or -1 when its value is bad (the caller says so),
 * or 1 when it printed its own message. */
static int apply(struct bench *b, int o, const char *arg)
{
	uint64_t v;
	int64_t t;
	switch (o) {
	case 'c':
		if (parse_count(arg, 1000000, &v) || v == 0)
			return -1;
		b->conns = (unsigned)v;
		return 0;
	case 'd':
		if ((t = parse_time(arg, true)) <= 0)
			return -1;
		b->duration_ns = (uint64_t)t;
		return 0;
	case 'n':
		return parse_count(arg, UINT64_MAX / 2, &b->total) || b->total == 0 ? -1 : 0;
	case 'w':
	case 't':
		if (parse_count(arg, 1024, &v) || v == 0)
			return -1;
		b->workers = (unsigned)v;
		return 0;
	case 'R':
		return parse_rates(b, arg);
	case 'p':
		if (parse_count(arg, 1024, &v) || v == 0)
			return -1;
		b->depth = (unsigned)v;
		return 0;
	case 'm':
		b->method = arg;
		return is_token(arg, strlen(arg)) ? 0 : -1;
	case 'H':
		if (b->nheaders == MAX_HEADERS) {
			fprintf(stderr, "weft-bench: at most %d -H headers\n", MAX_HEADERS);
			return 1;
		}
		b->headers[b->nheaders++] = arg;
		return is_header(arg) ? 0 : -1;
	case O_WARMUP:
		if ((t = parse_time(arg, true)) < 0)
			return -1;
		b->warmup_ns = (uint64_t)t;
		return 0;
	case O_TIMEOUT:
	case O_CTIMEOUT:
		if ((t = parse_time(arg, true)) < 0 || (o == O_CTIMEOUT && t == 0))
			return -1;
		*(o == O_TIMEOUT ? &b->timeout_ns : &b->connect_timeout_ns) = (uint64_t)t;
		return 0;
	case O_BODY:
	case O_BODY_FILE: {
		free(b->body);
		b->body = NULL;
		if (o == O_BODY) {
			b->body_len = strlen(arg);
			b->body = strndup0(arg, b->body_len);
			return b->body ? 0 : -1;
		}
		int r = read_file(arg, &b->body, &b->body_len);
		if (r < 0) {
			fprintf(stderr, "weft-bench: --body-file %s: %s\n", arg, strerror(-r));
			return 1;
		}
		return 0;
	}
	case O_HOST:
		b->host = arg;
		return !*arg || strpbrk(arg, "\r\n \t") ? -1 : 0;
	case O_SIZE:
		if (parse_count(arg, 16u << 20, &v) || v == 0)
			return -1;
		b->size = (size_t)v;
		return 0;
	case O_SLO:
		return parse_slo(b, arg) ? 1 : 0;
	case O_JSON:
		b->json = true;
		return 0;
	case O_INTERVAL:
		b->interval_path = arg;
		return 0;
	case O_HGRM:
		b->hgrm_path = arg;
		return 0;
	case O_PLOT:
		b->plot_path = arg;
		return 0;
	}
	return -1;
}

/* The prebuilt request bytes of one target (request.c): (URLs + depth)
 * copies of an HTTP request, depth messages of echo. */
#define REQUESTS_MAX (256u << 20)

/* Checks the combination of options against the targets. */
static const char *check(const struct bench *b)
{
	if (b->proto == P_ECHO) {
		if (b->method || b->nheaders || b->body || b->host)
			return "-m, -H, --body and --host are for HTTP targets";
		if ((uint64_t)b->size * b->depth > REQUESTS_MAX)
			return "--size times --pipeline is at most 256 MiB (each message in "
			       "flight is kept)";
	} else if (b->size) {
		return "--size is for tcp:// targets";
	} else if ((uint64_t)b->body_len * (b->depth + b->nurls) > REQUESTS_MAX) {
		return "the body times (--pipeline + URLs) is at most 256 MiB (each in flight "
		       "is a copy of the request)";
	}
	if (b->rate_from != b->rate_to && !b->duration_ns)
		return "a ramp (--rate A:B) needs -d";
	return NULL;
}

int options_parse(struct bench *b, int argc, char **argv)
{
	b->conns = 10;
	b->depth = 1;
	b->timeout_ns = 2 * WEFT_SEC;
	b->connect_timeout_ns = 2 * WEFT_SEC;
	int o;
	while ((o = getopt_long(argc, argv, "c:d:n:w:t:R:p:m:H:h", longopts, NULL)) != -1) {
		if (o == 'h') {
			usage(stdout);
			return EXIT_OK;
		}
		if (o == '?' || o == ':') {
			usage(stderr);
			return EXIT_USAGE;
		}
		int r = apply(b, o, optarg);
		if (r < 0) {
			char nb[32];
			fprintf(stderr, "weft-bench: bad value for %s: %s\n",
				opt_name(o, nb, sizeof(nb)), optarg);
		}
		if (r)
			return EXIT_USAGE;
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	b->nurls = (unsigned)(argc - optind);
	b->urls = calloc(b->nurls, sizeof(*b->urls));
	if (!b->urls)
		return EXIT_FAIL;
	for (unsigned i = 0; i < b->nurls; i++) {
		int p = parse_url(argv[optind + i], &b->urls[i]);
		if (p < 0 || (i > 0 && p != (int)b->proto)) {
			fprintf(stderr, "weft-bench: %s: %s\n", argv[optind + i],
				p < 0 ? "not http://HOST[:PORT][/PATH], unix:SOCKET[:/PATH] "
					"or tcp://HOST:PORT"
				      : "tcp:// targets cannot be mixed with HTTP ones");
			return EXIT_USAGE;
		}
		b->proto = (enum proto)p;
	}
	const char *why = check(b);
	if (why) {
		fprintf(stderr, "weft-bench: %s\n", why);
		return EXIT_USAGE;
	}
	if (b->proto == P_ECHO && !b->size)
		b->size = 64;
	if (!b->duration_ns && !b->total)
		b->duration_ns = 10 * WEFT_SEC;
	return -1;
}

void options_free(struct bench *b)
{
	for (unsigned i = 0; i < b->nurls; i++) {
		free(b->urls[i].text);
		free(b->urls[i].hostport);
		free(b->urls[i].host);
		free(b->urls[i].path);
	}
	free(b->urls);
	for (unsigned i = 0; i < b->neps; i++) {
		free(b->eps[i].name);
		free(b->eps[i].urls);
		free(b->eps[i].ring);
		free(b->eps[i].off);
	}
	free(b->eps);
	free(b->body);
}
