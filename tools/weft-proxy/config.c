// SPDX-License-Identifier: MIT
/*
 * config.c - reads weft-proxy's INI configuration into the plain data of
 * config.h, checks it whole, fits its limits to the descriptor limit and
 * prints it back.  The keys, their types, defaults and where they may
 * appear are one table (`keys` below), nginx style; docs/proxy.md is its
 * reference.
 *
 * libinih splits lines into sections, keys and values.  It is fed through
 * a reader of our own (`next_line`) that hands it one line per call, so:
 *  1. the reader's count is the line number every message carries (inih's
 *     handler has no line number in Debian's build);
 *  2. indentation is stripped, so an indented line is never taken for
 *     inih's continuation of the previous value;
 *  3. section headers are read here, not by inih, so an empty section, a
 *     repeated one and a name longer than inih's 50-byte buffer are all
 *     seen; inih is handed a blank line instead;
 *  4. a line longer than inih's buffer is an error here rather than cut
 *     silently, and a line with no '=' is reported with our wording;
 *  5. after the first error the reader ends the input.
 * Keys are taken from the line itself, since inih cuts names at 49 bytes;
 * values come from inih (comments and outer blanks removed).
 *
 * Parsing stops at the first error.  The checks that need the whole file
 * (missing listen, backend or servers; unknown backends; repeated listen
 * addresses) run afterwards in finish(), and report the earliest line.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "pipes.h"

#define MS (1000ull * 1000ull)
#define SEC (1000ull * MS)
#define MIN (60ull * SEC)
#define HOUR (60ull * MIN)
#define DAY (24ull * HOUR)

/* The longest file proxy_config_load reads. */
#define FILE_MAX (16u << 20)

/* inih's buffer holds a line, its '\n' and NUL; its header asks for one
 * byte more (a '\r' it might see, which the reader removes anyway). */
#define LINE_SLACK 3

/* The health check's HTTP path, at most. */
#define PATH_TEXT_MAX 200

enum sect { S_NONE, S_GLOBAL, S_FRONTEND, S_BACKEND };
#define IN_G (1u << S_GLOBAL)
#define IN_F (1u << S_FRONTEND)
#define IN_B (1u << S_BACKEND)

/* ---- The parser's state ------------------------------------------------------ */

struct key;

struct parser {
	struct proxy_config *cfg;
	const char *name;       /* for messages */

	/* The input and the reader's place in it. */
	const char *p, *end;
	int line;               /* of the line last handed to inih */
	char raw[512];          /* that line, normalised: for the key */

	/* The section being read: an index, since the arrays grow. */
	enum sect sect;
	size_t idx;
	char label[PROXY_NAME_MAX + 16]; /* "[frontend web]", for messages */
	int global_line;        /* of [global], 0 if none yet */
	int *seen;              /* per key: the line it was set at in this section */

	/* The first error (the earliest line, in finish()). */
	int err;                /* 0, -EINVAL or -ENOMEM */
	bool finishing;
	struct proxy_config_error e;
};

typedef int (*set_fn)(struct parser *p, const struct key *k, void *obj, const char *v);
typedef void (*print_fn)(FILE *f, const struct key *k, const void *obj,
			 const struct proxy_config *cfg);

enum {
	K_OFF = 1u << 0,    /* "off" is 0 */
	K_AUTO = 1u << 1,   /* "auto" is 0 */
	K_REPEAT = 1u << 2, /* may appear more than once, each adds */
};

#define NO_LINE SIZE_MAX

/* A key: where it may appear, how it is parsed and printed, which field
 * it sets (off) and where it remembers its line (line_off), its range
 * (durations in ns) and its default, parsed as if written when the section
 * opens (NULL: none). */
struct key {
	const char *name;
	unsigned sections;
	set_fn set;
	print_fn print;
	size_t off;
	size_t line_off;
	uint64_t min, max;
	unsigned flags;
	const char *const *words; /* enum keywords, by value */
	const char *dflt;
};

/* ---- Errors and warnings ----------------------------------------------------- */

__attribute__((format(printf, 3, 0))) static int vfail_at(struct parser *p, int line,
							  const char *fmt, va_list ap)
{
	bool take = p->err == 0;
	/* finish() checks item by item; keep the error that comes first in
	 * the file, a file-wide one (line 0) only if nothing else is wrong. */
	if (p->finishing && p->err == -EINVAL && line &&
	    (p->e.line == 0 || line < p->e.line))
		take = true;
	if (take) {
		p->err = -EINVAL;
		p->e.line = line;
		vsnprintf(p->e.message, sizeof(p->e.message), fmt, ap);
	}
	return -EINVAL;
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct parser *p, int line,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vfail_at(p, line, fmt, ap);
	va_end(ap);
	return rc;
}

__attribute__((format(printf, 2, 3))) static int fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vfail_at(p, p->line, fmt, ap);
	va_end(ap);
	return rc;
}

static int nomem(struct parser *p)
{
	p->err = -ENOMEM;
	p->e.line = 0;
	snprintf(p->e.message, sizeof(p->e.message), "out of memory");
	return -ENOMEM;
}

static char *sdup(struct parser *p, const char *s)
{
	char *d = strdup(s);
	if (!d)
		nomem(p);
	return d;
}

/* "FILE:LINE: " or "FILE: " */
static int where(char *buf, size_t n, const char *file, int line)
{
	return line > 0 ? snprintf(buf, n, "%s:%d: ", file, line) : snprintf(buf, n, "%s: ", file);
}

__attribute__((format(printf, 3, 4))) static void warn_at(struct parser *p, int line,
							  const char *fmt, ...)
{
	char buf[512];
	int w = where(buf, sizeof(buf), p->name, line);
	if (w < 0 || (size_t)w >= sizeof(buf))
		w = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + w, sizeof(buf) - (size_t)w, fmt, ap);
	va_end(ap);
	struct proxy_config *c = p->cfg;
	char **w2 = realloc(c->warnings, (c->nwarnings + 1) * sizeof(*w2));
	if (!w2) {
		nomem(p);
		return;
	}
	c->warnings = w2;
	if (!(c->warnings[c->nwarnings] = sdup(p, buf)))
		return;
	c->nwarnings++;
}

int proxy_config_error_format(const struct proxy_config_error *err, char *buf, size_t n)
{
	if (err->line > 0)
		return snprintf(buf, n, "%s:%d: %s", err->file, err->line, err->message);
	return snprintf(buf, n, "%s: %s", err->file, err->message);
}

/* ---- Words, numbers, durations, names, addresses ----------------------------- */

static bool is_word(const char *v, const char *w)
{
	return strcasecmp(v, w) == 0;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* A decimal number, the whole of s, into *v; false when it overflows. */
static bool to_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;
	for (; *s; s++) {
		if (__builtin_mul_overflow(x, 10, &x) ||
		    __builtin_add_overflow(x, (uint64_t)(*s - '0'), &x))
			return false;
	}
	*v = x;
	return true;
}

static int parse_u32(struct parser *p, const char *label, const char *v, uint64_t min,
		     uint64_t max, bool auto_ok, uint32_t *out)
{
	if (auto_ok && is_word(v, "auto")) {
		*out = 0;
		return 0;
	}
	if (!all_digits(v))
		return fail(p, "%s: \"%s\" is not a number%s", label, v, auto_ok ? " or auto" : "");
	uint64_t x;
	if (!to_u64(v, &x) || x < min || x > max)
		return fail(p, "%s: %s is out of range (%llu..%llu)", label, v,
			    (unsigned long long)min, (unsigned long long)max);
	*out = (uint32_t)x;
	return 0;
}

static const struct {
	const char *name;
	uint64_t ns;
} units[] = {
	/* largest first: format_duration picks the first that divides */
	{"d", DAY}, {"h", HOUR}, {"m", MIN}, {"s", SEC}, {"ms", MS},
};

/* ns in the largest unit that divides it: "90s", "1500ms", "0s". */
static const char *format_duration(uint64_t ns, char *buf, size_t n)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ns % units[i].ns == 0) {
			snprintf(buf, n, "%llu%s", (unsigned long long)(ns / units[i].ns),
				 units[i].name);
			return buf;
		}
	}
	snprintf(buf, n, "%lluns", (unsigned long long)ns); /* never from a config */
	return buf;
}

/* A whole number and a unit (ms, s, m, h, d); a bare number is refused,
 * since HAProxy reads one as milliseconds and others as seconds. */
static int parse_duration(struct parser *p, const char *label, const char *v, uint64_t min,
			  uint64_t max, bool off_ok, uint64_t *out)
{
	if (off_ok && is_word(v, "off")) {
		*out = 0;
		return 0;
	}
	size_t nd = strspn(v, "0123456789");
	if (nd > 0 && v[nd] == 0)
		return fail(p, "%s: \"%s\" needs a unit (ms, s, m, h or d), as in %ss", label, v, v);
	const char *u = v + nd;
	uint64_t unit = 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(u, units[i].name) == 0)
			unit = units[i].ns;
	if (nd == 0 || unit == 0)
		return fail(p, "%s: \"%s\" is not a duration (a whole number and a unit: 500ms, 2s, "
			    "1m, 1h, 1d)", label, v);
	char digits[32];
	uint64_t x, ns;
	bool ok = nd < sizeof(digits);
	if (ok) {
		memcpy(digits, v, nd);
		digits[nd] = 0;
		ok = to_u64(digits, &x) && !__builtin_mul_overflow(x, unit, &ns);
	}
	if (!ok || ns < min || ns > max) {
		char a[32], b[32];
		return fail(p, "%s: %s is out of range (%s..%s%s)", label, v,
			    format_duration(min, a, sizeof(a)), format_duration(max, b, sizeof(b)),
			    off_ok ? ", or off" : "");
	}
	*out = ns;
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PROXY_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

#define NAME_RULE "1 to 63 of A-Z a-z 0-9 _ . -"

/* A DNS name: labels of 1..63 letters, digits, '-' or '_', dot-separated,
 * at most 253 bytes, a trailing dot allowed; not digits and dots alone (a
 * broken IPv4 address). */
static bool valid_host(const char *h, size_t n)
{
	if (n == 0 || n > 254 || (n == 254 && h[253] != '.'))
		return false;
	size_t label = 0;
	bool alpha = false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
			if (!isdigit((unsigned char)c))
				alpha = true;
		} else {
			return false;
		}
	}
	return alpha;
}

/* An address in weft_addr_parse's numeric forms; with host_ok, host:port
 * as well (*resolve is then set and a left alone).  Port 0 is refused
 * where port0_ok is false. */
static int parse_address(struct parser *p, const char *label, const char *v, bool host_ok,
			 bool port0_ok, struct weft_addr *a, bool *resolve)
{
	const char *forms = host_ok ? "IPv4:port, [IPv6]:port, unix:/path or host:port"
				    : "IPv4:port, [IPv6]:port or unix:/path";
	*resolve = false;
	if (weft_addr_parse(a, v) == 0) {
		if (!port0_ok && a->sa.sa_family != AF_UNIX && weft_addr_port(a) == 0)
			return fail(p, "%s: \"%s\" has port 0", label, v);
		return 0;
	}
	if (strpbrk(v, " \t"))
		return fail(p, "%s: \"%s\" holds more than an address (one address a line)", label,
			    v);
	if (strncmp(v, "unix:", 5) == 0)
		return fail(p, "%s: \"%s\" is not an address (%s)", label, v, forms);
	const char *colon = strrchr(v, ':');
	if (v[0] != '[' && colon && memchr(v, ':', (size_t)(colon - v)))
		return fail(p, "%s: \"%s\": put IPv6 addresses in brackets, as in [::1]:80", label, v);
	if (colon && colon > v && v[0] != '[' && valid_host(v, (size_t)(colon - v))) {
		const char *port = colon + 1;
		uint64_t x;
		if (!all_digits(port) || strlen(port) > 5 || !to_u64(port, &x) || x > 65535)
			return fail(p, "%s: \"%s\" has a bad port (0..65535)", label, v);
		if (!host_ok)
			return fail(p, "%s: \"%s\" is not a numeric address (%s; no host names)", label,
				    v, forms);
		if (x == 0)
			return fail(p, "%s: \"%s\" has port 0", label, v);
		*resolve = true;
		return 0;
	}
	return fail(p, "%s: \"%s\" is not an address (%s)", label, v, forms);
}

bool proxy_addr_equal(const struct weft_addr *a, const struct weft_addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	switch (a->sa.sa_family) {
	case AF_INET:
		return a->in.sin_port == b->in.sin_port &&
		       a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	case AF_INET6:
		return a->in6.sin6_port == b->in6.sin6_port &&
		       a->in6.sin6_scope_id == b->in6.sin6_scope_id &&
		       memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr)) == 0;
	default:
		return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
	}
}

/* Splits s in place at blanks into at most max words; returns how many,
 * or max + 1 when there are more. */
static size_t split_words(char *s, char **w, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return max + 1;
		w[n++] = t;
	}
	return n;
}

/* ---- Setters and printers, by value type ------------------------------------- */

#define FIELD(obj, k, type) ((type *)((char *)(obj) + (k)->off))
#define CFIELD(obj, k, type) ((const type *)((const char *)(obj) + (k)->off))

static int set_duration(struct parser *p, const struct key *k, void *obj, const char *v)
{
	return parse_duration(p, k->name, v, k->min, k->max, k->flags & K_OFF,
			      FIELD(obj, k, uint64_t));
}

static void print_duration(FILE *f, const struct key *k, const void *obj,
			   const struct proxy_config *cfg)
{
	(void)cfg;
	uint64_t ns = *CFIELD(obj, k, uint64_t);
	char buf[32];
	fprintf(f, "%s = %s\n", k->name,
		ns == 0 && (k->flags & K_OFF) ? "off" : format_duration(ns, buf, sizeof(buf)));
}

static int set_u32(struct parser *p, const struct key *k, void *obj, const char *v)
{
	return parse_u32(p, k->name, v, k->min, k->max, k->flags & K_AUTO, FIELD(obj, k, uint32_t));
}

static void print_u32(FILE *f, const struct key *k, const void *obj,
		      const struct proxy_config *cfg)
{
	(void)cfg;
	uint32_t x = *CFIELD(obj, k, uint32_t);
	if (x == 0 && (k->flags & K_AUTO))
		fprintf(f, "%s = auto\n", k->name);
	else
		fprintf(f, "%s = %u\n", k->name, x);
}

static int set_bool(struct parser *p, const struct key *k, void *obj, const char *v)
{
	bool *b = FIELD(obj, k, bool);
	if (is_word(v, "on") || is_word(v, "yes") || is_word(v, "true"))
		*b = true;
	else if (is_word(v, "off") || is_word(v, "no") || is_word(v, "false"))
		*b = false;
	else
		return fail(p, "%s: \"%s\" is not on or off (on, off, yes, no, true, false)",
			    k->name, v);
	return 0;
}

static void print_bool(FILE *f, const struct key *k, const void *obj,
		       const struct proxy_config *cfg)
{
	(void)cfg;
	fprintf(f, "%s = %s\n", k->name, *CFIELD(obj, k, bool) ? "on" : "off");
}

/* "a, b or c" of a NULL-terminated list */
static void list_words(const char *const *w, char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = 0;
	for (size_t i = 0; w[i] && len < n; i++) {
		const char *sep = i == 0 ? "" : w[i + 1] ? ", " : " or ";
		int r = snprintf(buf + len, n - len, "%s%s", sep, w[i]);
		if (r < 0)
			break;
		len += (size_t)r;
	}
}

/* v as one of words (NULL-terminated): its index in *out, or fails. */
static int parse_word(struct parser *p, const char *label, const char *v,
		      const char *const *words, int *out)
{
	for (int i = 0; words[i]; i++) {
		if (is_word(v, words[i])) {
			*out = i;
			return 0;
		}
	}
	char list[128];
	list_words(words, list, sizeof(list));
	return fail(p, "%s: unknown value \"%s\" (%s)", label, v, list);
}

static int set_enum(struct parser *p, const struct key *k, void *obj, const char *v)
{
	return parse_word(p, k->name, v, k->words, FIELD(obj, k, int));
}

static void print_enum(FILE *f, const struct key *k, const void *obj,
		       const struct proxy_config *cfg)
{
	(void)cfg;
	fprintf(f, "%s = %s\n", k->name, k->words[*CFIELD(obj, k, int)]);
}

/* Whether a is a loopback address (or a unix socket): only this host can
 * reach it. */
static bool local_only(const struct weft_addr *a)
{
	switch (a->sa.sa_family) {
	case AF_INET:
		return (ntohl(a->in.sin_addr.s_addr) >> 24) == 127;
	case AF_INET6:
		return IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr) && a->in6.sin6_addr.s6_addr[12] == 127);
	default:
		return true;
	}
}

/* [global] admin = ADDR | PORT | off: a port alone binds loopback, the
 * listener having no authentication; another address is taken as asked,
 * with a warning when other hosts can reach it. */
static int set_admin(struct parser *p, const struct key *k, void *obj, const char *v)
{
	(void)k;
	struct proxy_config *c = obj;
	free(c->admin_address);
	c->admin_address = NULL;
	c->has_admin = false;
	if (is_word(v, "off"))
		return 0;
	char local[16];
	uint64_t port;
	if (all_digits(v) && strlen(v) <= 5 && to_u64(v, &port) && port <= 65535) {
		snprintf(local, sizeof(local), "127.0.0.1:%u", (unsigned)port);
		v = local;
	}
	bool resolve;
	struct weft_addr a;
	int rc = parse_address(p, "admin", v, false, true, &a, &resolve);
	if (rc)
		return rc;
	if (!(c->admin_address = sdup(p, v)))
		return -ENOMEM;
	c->admin = a;
	c->has_admin = true;
	if (!local_only(&a))
		warn_at(p, p->line, "admin %s: other hosts can reach the admin listener, which has "
				    "no authentication and takes POST /servers (server states); "
				    "a port alone binds 127.0.0.1", v);
	return 0;
}

static void print_admin(FILE *f, const struct key *k, const void *obj,
			const struct proxy_config *cfg)
{
	(void)k;
	(void)obj;
	fprintf(f, "admin = %s\n", cfg->has_admin ? cfg->admin_address : "off");
}

/* Whether s holds a control character (paths may not). */
static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* [global] access_log = stderr | stdout | off | PATH */
static int set_access_log(struct parser *p, const struct key *k, void *obj, const char *v)
{
	(void)k;
	struct proxy_config *c = obj;
	free(c->access_log_path);
	c->access_log_path = NULL;
	if (is_word(v, "stderr")) {
		c->access_log = PROXY_LOG_STDERR;
	} else if (is_word(v, "stdout")) {
		c->access_log = PROXY_LOG_STDOUT;
	} else if (is_word(v, "off")) {
		c->access_log = PROXY_LOG_OFF;
	} else {
		if (has_control(v))
			return fail(p, "access_log: the path has a control character");
		if (!(c->access_log_path = sdup(p, v)))
			return -ENOMEM;
		c->access_log = PROXY_LOG_FILE;
	}
	return 0;
}

static void print_access_log(FILE *f, const struct key *k, const void *obj,
			     const struct proxy_config *cfg)
{
	(void)k;
	(void)obj;
	static const char *const names[] = {"stderr", "stdout", "off"};
	fprintf(f, "access_log = %s\n",
		cfg->access_log == PROXY_LOG_FILE ? cfg->access_log_path : names[cfg->access_log]);
}

/* [global] user = NAME: a portable user name or a number */
static int set_user(struct parser *p, const struct key *k, void *obj, const char *v)
{
	(void)k;
	struct proxy_config *c = obj;
	size_t n = strlen(v);
	if (n > 32 || v[0] == '-' ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != n)
		return fail(p, "user: \"%s\" is not a user name", v);
	free(c->user);
	return (c->user = sdup(p, v)) ? 0 : -ENOMEM;
}

/* "KEY = VALUE" for a global string that may be unset (NULL); unset, the
 * line `unset` instead (nothing when NULL). */
static void print_string(FILE *f, const char *key, const char *value, const char *unset)
{
	if (value)
		fprintf(f, "%s = %s\n", key, value);
	else if (unset)
		fprintf(f, "%s\n", unset);
}

static void print_user(FILE *f, const struct key *k, const void *obj,
		       const struct proxy_config *cfg)
{
	(void)obj;
	print_string(f, k->name, cfg->user, "; user: not set, privileges are kept");
}

/* [global] upgrade_socket = PATH | off: a unix socket path for --upgrade-from */
static int set_upgrade_socket(struct parser *p, const struct key *k, void *obj, const char *v)
{
	(void)k;
	struct proxy_config *c = obj;
	free(c->upgrade_socket);
	c->upgrade_socket = NULL;
	if (is_word(v, "off"))
		return 0;
	struct sockaddr_un un;
	if (v[0] != '/' || strlen(v) >= sizeof(un.sun_path))
		return fail(p, "upgrade_socket: \"%s\" is not an absolute path of at most %zu bytes, "
			    "or off", v, sizeof(un.sun_path) - 1);
	if (has_control(v))
		return fail(p, "upgrade_socket: the path has a control character");
	return (c->upgrade_socket = sdup(p, v)) ? 0 : -ENOMEM;
}

static void print_upgrade_socket(FILE *f, const struct key *k, const void *obj,
				 const struct proxy_config *cfg)
{
	(void)obj;
	/* Off (the default) prints nothing: most configurations have none. */
	print_string(f, k->name, cfg->upgrade_socket, NULL);
}

/* [global] max_connections: the written value; apply_limits derives the rest. */
static int set_global_max(struct parser *p, const struct key *k, void *obj, const char *v)
{
	struct proxy_config *c = obj;
	int rc = parse_u32(p, k->name, v, k->min, k->max, true, &c->max_connections_written);
	if (rc == 0) {
		c->max_connections = c->max_connections_written;
		c->max_connections_source = PROXY_LIMIT_UNSET;
	}
	return rc;
}

static void print_global_max(FILE *f, const struct key *k, const void *obj,
			     const struct proxy_config *cfg)
{
	(void)k;
	(void)obj;
	unsigned long long fd = (unsigned long long)cfg->fd_limit;
	switch (cfg->max_connections_source) {
	case PROXY_LIMIT_UNSET:
		if (cfg->max_connections == 0) {
			fprintf(f, "max_connections = auto\n");
			return;
		}
		break;
	case PROXY_LIMIT_CONFIGURED:
		fprintf(f, "; max_connections: as written; the descriptor limit %llu holds it\n", fd);
		break;
	case PROXY_LIMIT_DERIVED:
		fprintf(f, "; max_connections: auto, derived from the descriptor limit %llu\n", fd);
		break;
	case PROXY_LIMIT_CLAMPED:
		fprintf(f, "; max_connections: %u written, clamped to what the descriptor limit "
			"%llu holds\n", cfg->max_connections_written, fd);
		break;
	}
	fprintf(f, "max_connections = %u\n", cfg->max_connections);
}

/* [frontend] max_connections */
static void print_frontend_max(FILE *f, const struct key *k, const void *obj,
			       const struct proxy_config *cfg)
{
	(void)k;
	const struct proxy_frontend *fe = obj;
	if (fe->max_connections == 0)
		fprintf(f, "max_connections = 0 ; only the global limit\n");
	else if (cfg->max_connections && fe->max_connections > cfg->max_connections)
		fprintf(f, "max_connections = %u ; the global limit %u is lower\n",
			fe->max_connections, cfg->max_connections);
	else
		fprintf(f, "max_connections = %u\n", fe->max_connections);
}

/* [frontend] listen = ADDR, repeated */
static int add_listen(struct parser *p, const struct key *k, void *obj, const char *v)
{
	(void)k;
	struct proxy_frontend *fe = obj;
	struct weft_addr a;
	bool resolve;
	int rc = parse_address(p, "listen", v, false, true, &a, &resolve);
	if (rc)
		return rc;
	struct proxy_listen *l = realloc(fe->listens, (fe->nlistens + 1) * sizeof(*l));
	if (!l)
		return nomem(p);
	fe->listens = l;
	l += fe->nlistens;
	memset(l, 0, sizeof(*l));
	if (!(l->address = sdup(p, v)))
		return -ENOMEM;
	l->addr = a;
	l->line = p->line;
	fe->nlistens++;
	return 0;
}

static void print_listens(FILE *f, const struct key *k, const void *obj,
			  const struct proxy_config *cfg)
{
	(void)k;
	(void)cfg;
	const struct proxy_frontend *fe = obj;
	for (size_t i = 0; i < fe->nlistens; i++)
		fprintf(f, "listen = %s\n", fe->listens[i].address);
}

/* [frontend] backend = NAME, resolved in finish() */
static int set_backend_ref(struct parser *p, const struct key *k, void *obj, const char *v)
{
	(void)k;
	struct proxy_frontend *fe = obj;
	if (!valid_name(v))
		return fail(p, "backend: \"%s\" is not a valid name (" NAME_RULE ")", v);
	free(fe->backend_name);
	return (fe->backend_name = sdup(p, v)) ? 0 : -ENOMEM;
}

static void print_backend_ref(FILE *f, const struct key *k, const void *obj,
			      const struct proxy_config *cfg)
{
	(void)k;
	(void)cfg;
	fprintf(f, "backend = %s\n", ((const struct proxy_frontend *)obj)->backend_name);
}

/* [backend] health_check = off | tcp [OPTIONS] | http PATH [OPTIONS] */
static int set_check(struct parser *p, const struct key *k, void *obj, const char *v)
{
	(void)k;
	struct proxy_backend *b = obj;
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", v);
	char *w[8];
	size_t n = split_words(buf, w, 8);
	struct proxy_health_check c = {
		.kind = PROXY_CHECK_OFF,
		.interval_ns = 2 * SEC,
		.rise = 2,
		.fall = 3,
	};
	size_t i = 1;
	if (n == 0)
		return fail(p, "health_check needs a value");
	if (is_word(w[0], "off")) {
		if (n > 1)
			return fail(p, "health_check: off takes no options");
	} else if (is_word(w[0], "tcp")) {
		c.kind = PROXY_CHECK_TCP;
	} else if (is_word(w[0], "http")) {
		c.kind = PROXY_CHECK_HTTP;
		if (n < 2 || w[1][0] != '/')
			return fail(p, "health_check: http needs a path, as in http /health");
		for (const char *s = w[1]; *s; s++)
			if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
				return fail(p, "health_check: the path has a byte HTTP does not allow "
					    "in a target");
		if (strlen(w[1]) > PATH_TEXT_MAX)
			return fail(p, "health_check: the path is longer than %d bytes",
				    PATH_TEXT_MAX);
		i = 2;
	} else {
		return fail(p, "health_check: unknown check \"%s\" (off, tcp or http PATH)", w[0]);
	}
	if (n > 8)
		return fail(p, "health_check: too many options");
	bool have_timeout = false;
	unsigned given = 0;
	for (; i < n; i++) {
		static const char *const opts[] = {"interval", "timeout", "rise", "fall", "port"};
		char *eq = strchr(w[i], '=');
		int o = -1;
		if (eq) {
			*eq = 0;
			for (int j = 0; j < 5; j++)
				if (strcmp(w[i], opts[j]) == 0)
					o = j;
		}
		if (o < 0) {
			if (eq)
				*eq = '=';
			return fail(p, "health_check: unknown option \"%s\" (interval=, timeout=, "
				    "rise=, fall=, port=)", w[i]);
		}
		if (given & (1u << o))
			return fail(p, "health_check: %s given twice", opts[o]);
		given |= 1u << o;
		char label[32];
		snprintf(label, sizeof(label), "health_check %s", opts[o]);
		int rc;
		switch (o) {
		case 0:
			rc = parse_duration(p, label, eq + 1, MS, 7 * DAY, false, &c.interval_ns);
			break;
		case 1:
			rc = parse_duration(p, label, eq + 1, MS, 7 * DAY, false, &c.timeout_ns);
			have_timeout = true;
			break;
		case 2:
			rc = parse_u32(p, label, eq + 1, 1, 100, false, &c.rise);
			break;
		case 3:
			rc = parse_u32(p, label, eq + 1, 1, 100, false, &c.fall);
			break;
		default:
			rc = parse_u32(p, label, eq + 1, 1, 65535, false, &c.port);
			break;
		}
		if (rc)
			return rc;
	}
	if (!have_timeout)
		c.timeout_ns = c.interval_ns;
	if (c.kind == PROXY_CHECK_HTTP && !(c.path = sdup(p, w[1])))
		return -ENOMEM;
	free(b->check.path);
	c.line = p->line;
	b->check = c;
	return 0;
}

static void print_check(FILE *f, const struct key *k, const void *obj,
			const struct proxy_config *cfg)
{
	(void)k;
	(void)cfg;
	const struct proxy_health_check *c = &((const struct proxy_backend *)obj)->check;
	if (c->kind == PROXY_CHECK_OFF) {
		fprintf(f, "health_check = off\n");
		return;
	}
	char a[32], b[32], port[24] = "";
	if (c->port)
		snprintf(port, sizeof(port), " port=%u", c->port);
	fprintf(f, "health_check = %s%s%s interval=%s timeout=%s rise=%u fall=%u%s\n",
		c->kind == PROXY_CHECK_TCP ? "tcp" : "http", c->path ? " " : "",
		c->path ? c->path : "", format_duration(c->interval_ns, a, sizeof(a)),
		format_duration(c->timeout_ns, b, sizeof(b)), c->rise, c->fall, port);
}

/* ---- The key table ----------------------------------------------------------- */

static const char *const balance_words[] = {"roundrobin", "leastconn", "random2", "source",
					    NULL};
static const char *const send_proxy_words[] = {"off", "v1", "v2", NULL};
static const char *const data_path_words[] = {"auto", "splice", "buffered", NULL};

#define G_(f) offsetof(struct proxy_config, f)
#define F_(f) offsetof(struct proxy_frontend, f)
#define B_(f) offsetof(struct proxy_backend, f)

/* Printed in this order; docs/proxy.md lists them the same way. */
static const struct key keys[] = {
	/* [global] */
	{"workers", IN_G, set_u32, print_u32, G_(workers), NO_LINE, 1, 1024, K_AUTO, NULL, "auto"},
	{"max_connections", IN_G, set_global_max, print_global_max, 0, G_(max_connections_line), 1,
	 PROXY_CONNECTIONS_MAX, K_AUTO, NULL, "auto"},
	{"strict_limits", IN_G, set_bool, print_bool, G_(strict_limits), NO_LINE, 0, 0, 0, NULL,
	 "off"},
	{"admin", IN_G, set_admin, print_admin, 0, G_(admin_line), 0, 0, 0, NULL, "off"},
	{"access_log", IN_G, set_access_log, print_access_log, 0, G_(access_log_line), 0, 0, 0, NULL,
	 "stderr"},
	{"user", IN_G, set_user, print_user, 0, G_(user_line), 0, 0, 0, NULL, NULL},
	{"drain_timeout", IN_G, set_duration, print_duration, G_(drain_timeout_ns), NO_LINE, 0,
	 7 * DAY, 0, NULL, "30s"},
	{"upgrade_socket", IN_G, set_upgrade_socket, print_upgrade_socket, 0,
	 G_(upgrade_socket_line), 0, 0, 0, NULL, "off"},
	/* [frontend NAME] */
	{"listen", IN_F, add_listen, print_listens, 0, NO_LINE, 0, 0, K_REPEAT, NULL, NULL},
	{"backend", IN_F, set_backend_ref, print_backend_ref, 0, F_(backend_line), 0, 0, 0, NULL,
	 NULL},
	{"accept_proxy", IN_F, set_bool, print_bool, F_(accept_proxy), NO_LINE, 0, 0, 0, NULL,
	 "off"},
	{"idle_timeout", IN_F, set_duration, print_duration, F_(idle_timeout_ns), NO_LINE, MS,
	 7 * DAY, K_OFF, NULL, "60s"},
	{"half_closed_timeout", IN_F, set_duration, print_duration, F_(half_closed_timeout_ns),
	 NO_LINE, MS, 7 * DAY, K_OFF, NULL, "10s"},
	{"max_connections", IN_F, set_u32, print_frontend_max, F_(max_connections), NO_LINE, 0,
	 PROXY_CONNECTIONS_MAX, 0, NULL, "0"},
	/* [backend NAME]; its servers follow, printed apart */
	{"balance", IN_B, set_enum, print_enum, B_(balance), NO_LINE, 0, 0, 0, balance_words,
	 "roundrobin"},
	{"connect_timeout", IN_B, set_duration, print_duration, B_(connect_timeout_ns), NO_LINE, MS,
	 7 * DAY, 0, NULL, "5s"},
	{"retries", IN_B, set_u32, print_u32, B_(retries), NO_LINE, 0, 10, 0, NULL, "2"},
	{"send_proxy", IN_B, set_enum, print_enum, B_(send_proxy), NO_LINE, 0, 0, 0,
	 send_proxy_words, "off"},
	{"health_check", IN_B, set_check, print_check, 0, NO_LINE, 0, 0, 0, NULL, "off"},
	{"passive_fall", IN_B, set_u32, print_u32, B_(passive_fall), NO_LINE, 0, 100, 0, NULL, "3"},
	{"passive_down", IN_B, set_duration, print_duration, B_(passive_down_ns), NO_LINE, MS, DAY,
	 0, NULL, "2s"},
	{"slowstart", IN_B, set_duration, print_duration, B_(slowstart_ns), NO_LINE, MS, DAY, K_OFF,
	 NULL, "off"},
	{"queue_timeout", IN_B, set_duration, print_duration, B_(queue_timeout_ns), NO_LINE, MS,
	 7 * DAY, 0, NULL, "5s"},
	{"queue_size", IN_B, set_u32, print_u32, B_(queue_size), NO_LINE, 0, 1000000, 0, NULL,
	 "1024"},
	{"data_path", IN_B, set_enum, print_enum, B_(data_path), NO_LINE, 0, 0, 0, data_path_words,
	 "auto"},
	{"resolve_interval", IN_B, set_duration, print_duration, B_(resolve_interval_ns),
	 B_(resolve_interval_line), MS, DAY, K_OFF, NULL, "off"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(sizeof(enum proxy_balance) == sizeof(int), "set_enum stores an int");
_Static_assert(sizeof(enum proxy_send_proxy) == sizeof(int), "set_enum stores an int");
_Static_assert(sizeof(enum proxy_data_path) == sizeof(int), "set_enum stores an int");

const char *proxy_balance_name(enum proxy_balance b)
{
	return (unsigned)b < 4 ? balance_words[b] : "?";
}

const char *proxy_send_proxy_name(enum proxy_send_proxy s)
{
	return (unsigned)s < 3 ? send_proxy_words[s] : "?";
}

static const char *sect_word(enum sect s)
{
	return s == S_GLOBAL ? "[global]" : s == S_FRONTEND ? "[frontend NAME]" : "[backend NAME]";
}

/* The object a key of the current section writes into. */
static void *section_obj(struct parser *p)
{
	switch (p->sect) {
	case S_GLOBAL:
		return p->cfg;
	case S_FRONTEND:
		return &p->cfg->frontends[p->idx];
	case S_BACKEND:
		return &p->cfg->backends[p->idx];
	default:
		return NULL;
	}
}

/* Edit distance of short strings, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na > 31 || nb > 31)
		return SIZE_MAX;
	size_t d[32][32];
	for (size_t i = 0; i <= na; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= nb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= na; i++) {
		for (size_t j = 1; j <= nb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	}
	return d[na][nb];
}

/* Applies the defaults of the keys of section s to obj, as if written. */
static void apply_defaults(struct parser *p, enum sect s, void *obj)
{
	for (size_t i = 0; i < NKEYS && !p->err; i++) {
		const struct key *k = &keys[i];
		if (!(k->sections & (1u << s)) || !k->dflt)
			continue;
		int rc = k->set(p, k, obj, k->dflt);
		assert(rc == 0 || rc == -ENOMEM); /* a default that does not parse is a bug */
		(void)rc;
		if (k->line_off != NO_LINE)
			*(int *)((char *)obj + k->line_off) = p->line;
	}
}

/* ---- Sections ---------------------------------------------------------------- */

static int open_section(struct parser *p, const char *type, const char *name)
{
	struct proxy_config *c = p->cfg;
	memset(p->seen, 0, NKEYS * sizeof(*p->seen));
	if (strcmp(type, "global") == 0) {
		if (*name)
			return fail(p, "[global] takes no name");
		if (p->global_line)
			return fail(p, "[global] appears twice (first at line %d)", p->global_line);
		p->global_line = p->line;
		p->sect = S_GLOBAL;
		snprintf(p->label, sizeof(p->label), "[global]");
		return 0;
	}
	bool fe = strcmp(type, "frontend") == 0;
	if (!fe && strcmp(type, "backend") != 0) {
		if (*name)
			return fail(p, "unknown section [%s %s] (sections are [global], "
				    "[frontend NAME] and [backend NAME])", type, name);
		return fail(p, "unknown section [%s] (sections are [global], [frontend NAME] and "
			    "[backend NAME])", type);
	}
	if (!*name)
		return fail(p, "[%s] needs a name, as in [%s %s]", type, type, fe ? "web" : "app");
	if (!valid_name(name))
		return fail(p, "[%s %s]: \"%s\" is not a valid name (" NAME_RULE ")", type, name,
			    name);
	if (fe) {
		struct proxy_frontend *old = proxy_config_find_frontend(c, name);
		if (old)
			return fail(p, "[frontend %s] appears twice (first at line %d)", name,
				    old->line);
		struct proxy_frontend *a = realloc(c->frontends, (c->nfrontends + 1) * sizeof(*a));
		if (!a)
			return nomem(p);
		c->frontends = a;
		memset(&a[c->nfrontends], 0, sizeof(*a));
		if (!(a[c->nfrontends].name = sdup(p, name)))
			return -ENOMEM;
		a[c->nfrontends].line = p->line;
		p->idx = c->nfrontends++;
		p->sect = S_FRONTEND;
	} else {
		struct proxy_backend *old = proxy_config_find_backend(c, name);
		if (old)
			return fail(p, "[backend %s] appears twice (first at line %d)", name, old->line);
		struct proxy_backend *a = realloc(c->backends, (c->nbackends + 1) * sizeof(*a));
		if (!a)
			return nomem(p);
		c->backends = a;
		memset(&a[c->nbackends], 0, sizeof(*a));
		if (!(a[c->nbackends].name = sdup(p, name)))
			return -ENOMEM;
		a[c->nbackends].line = p->line;
		p->idx = c->nbackends++;
		p->sect = S_BACKEND;
	}
	snprintf(p->label, sizeof(p->label), "[%s %s]", type, name);
	apply_defaults(p, p->sect, section_obj(p));
	return p->err;
}

/* A "[...]" line, s at the '['. */
static int section_line(struct parser *p, char *s)
{
	char *close = strchr(s, ']');
	if (!close)
		return fail(p, "section header without a closing ]");
	const char *after = close + 1;
	after += strspn(after, " \t");
	if (*after && *after != ';' && *after != '#')
		return fail(p, "text after ] in a section header");
	*close = 0;
	char *type = s + 1;
	type += strspn(type, " \t");
	char *e = close;
	while (e > type && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = 0;
	char *name = type + strcspn(type, " \t");
	if (*name) {
		*name++ = 0;
		name += strspn(name, " \t");
	}
	return open_section(p, type, name);
}

/* ---- Servers ----------------------------------------------------------------- */

/* A server line's options, after its address, each as it is written: its
 * name, then "=" and what the value looks like unless it takes none. */
enum { OPT_WEIGHT, OPT_BACKUP, OPT_MAX_CONNECTIONS, OPT_SEND_PROXY, OPT_CHECK_PORT, NOPTS };
static const char *const server_opts[NOPTS] = {"weight=N", "backup", "max_connections=N",
					       "send_proxy=off|v1|v2", "check_port=N"};

/* Which of server_opts is called name: its index, or NOPTS. */
static int server_opt(const char *name)
{
	int o = 0;
	size_t len = strlen(name);
	while (o < NOPTS && (strncmp(name, server_opts[o], len) != 0 ||
			     (server_opts[o][len] != '=' && server_opts[o][len] != 0)))
		o++;
	return o;
}

/* Fails with "LABEL: WHAT (the options)". */
static int fail_server_opts(struct parser *p, const char *label, const char *what)
{
	char list[160] = "";
	for (int o = 0; o < NOPTS; o++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", o ? ", " : "",
			 server_opts[o]);
	return fail(p, "%s: %s (%s)", label, what, list);
}

/* "server NAME = ADDRESS [OPTION]..." in a backend (server_opts); rest is
 * what follows "server" in the key. */
static int add_server(struct parser *p, const char *rest, const char *v)
{
	struct proxy_backend *b = &p->cfg->backends[p->idx];
	rest += strspn(rest, " \t");
	if (!*rest)
		return fail(p, "server needs a name: server NAME = ADDRESS");
	if (!valid_name(rest))
		return fail(p, "server name \"%s\" is not valid (" NAME_RULE ")", rest);
	const struct proxy_server *old = proxy_backend_find_server(b, rest);
	if (old)
		return fail(p, "server %s appears twice in %s (first at line %d)", rest, p->label,
			    old->line);
	char label[PROXY_NAME_MAX + 32];
	snprintf(label, sizeof(label), "server %s", rest);

	char buf[512];
	snprintf(buf, sizeof(buf), "%s", v);
	char *w[NOPTS + 2];
	size_t n = split_words(buf, w, NOPTS + 2);
	if (n == 0)
		return fail(p, "%s needs an address", label);
	if (n > NOPTS + 1)
		return fail_server_opts(p, label, "too many options");
	struct proxy_server s = {.weight = 1};
	int rc = parse_address(p, label, w[0], true, false, &s.addr, &s.resolve);
	if (rc)
		return rc;
	unsigned given = 0;
	int word;
	for (size_t i = 1; i < n; i++) {
		char *eq = strchr(w[i], '=');
		if (eq)
			*eq = 0;
		int o = server_opt(w[i]);
		if (o == NOPTS) {
			if (eq)
				*eq = '=';
			char what[300];
			snprintf(what, sizeof(what), "unknown option \"%s\"", w[i]);
			return fail_server_opts(p, label, what);
		}
		if (o == OPT_BACKUP && eq)
			return fail(p, "%s: backup takes no value", label);
		if (o != OPT_BACKUP && !eq)
			return fail(p, "%s: %s needs a value, as in %s", label, w[i], server_opts[o]);
		if (given & (1u << o))
			return fail(p, "%s: %s given twice", label, w[i]);
		given |= 1u << o;
		char olabel[PROXY_NAME_MAX + 48];
		snprintf(olabel, sizeof(olabel), "%s %s", label, w[i]);
		switch (o) {
		case OPT_WEIGHT:
			rc = parse_u32(p, olabel, eq + 1, 1, 256, false, &s.weight);
			break;
		case OPT_BACKUP:
			s.backup = true;
			break;
		case OPT_MAX_CONNECTIONS:
			rc = parse_u32(p, olabel, eq + 1, 0, PROXY_CONNECTIONS_MAX, false,
				       &s.max_connections);
			break;
		case OPT_SEND_PROXY:
			if (!(rc = parse_word(p, olabel, eq + 1, send_proxy_words, &word)))
				s.send_proxy = (enum proxy_send_proxy)word;
			s.own_send_proxy = true;
			break;
		case OPT_CHECK_PORT:
			rc = parse_u32(p, olabel, eq + 1, 1, 65535, false, &s.check_port);
			s.own_check_port = true;
			if (!rc && !s.resolve && s.addr.sa.sa_family == AF_UNIX)
				rc = fail(p, "%s: a unix socket has no port to check", olabel);
			break;
		}
		if (rc)
			return rc;
	}
	struct proxy_server *a = realloc(b->servers, (b->nservers + 1) * sizeof(*a));
	if (!a)
		return nomem(p);
	b->servers = a;
	s.line = p->line;
	if (!(s.name = sdup(p, rest)))
		return -ENOMEM;
	if (!(s.address = sdup(p, w[0]))) {
		free(s.name);
		return -ENOMEM;
	}
	b->servers[b->nservers++] = s;
	return 0;
}

/* ---- Lines and pairs: inih's reader and handler ------------------------------ */

/* Feeds inih the next line, normalised (see the top of the file); NULL at
 * the end of the input or after an error. */
static char *next_line(char *str, int num, void *stream)
{
	struct parser *p = stream;
	while (!p->err && p->p < p->end) {
		const char *s = p->p;
		const char *nl = memchr(s, '\n', (size_t)(p->end - s));
		const char *le = nl ? nl : p->end;
		p->p = nl ? nl + 1 : p->end;
		p->line++;
		size_t len = (size_t)(le - s);
		if (len && s[len - 1] == '\r')
			len--;
		if (memchr(s, 0, len)) {
			fail(p, "the line holds a NUL byte");
			return NULL;
		}
		if (p->line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
			s += 3; /* a UTF-8 byte order mark */
			len -= 3;
		}
		while (len && (*s == ' ' || *s == '\t')) {
			s++;
			len--;
		}
		/* Blank and comment lines reach inih as blank lines, so
		 * inih's count stays ours. */
		if (len == 0 || *s == ';' || *s == '#') {
			snprintf(str, (size_t)num, "\n");
			return str;
		}
		if (len >= sizeof(p->raw) || len + LINE_SLACK > (size_t)num) {
			fail(p, "line too long (more than %d bytes after the indentation)",
			     num - LINE_SLACK);
			return NULL;
		}
		memcpy(p->raw, s, len);
		p->raw[len] = 0;
		/* '#' after a blank starts a comment too, as ';' does in inih. */
		for (size_t i = 1; i < len; i++)
			if (p->raw[i] == '#' && (p->raw[i - 1] == ' ' || p->raw[i - 1] == '\t'))
				p->raw[i] = ';';
		if (p->raw[0] == '[') {
			if (section_line(p, p->raw) < 0)
				return NULL;
			snprintf(str, (size_t)num, "\n");
			return str;
		}
		/* inih's rule: the key ends at '=' or ':', before any comment. */
		size_t k = strcspn(p->raw, "=:;");
		if (p->raw[k] != '=' && p->raw[k] != ':') {
			fail(p, "expected KEY = VALUE, a [section] or a comment");
			return NULL;
		}
		snprintf(str, (size_t)num, "%s\n", p->raw);
		return str;
	}
	return NULL;
}

/* The key of the line in p->raw, as inih split it but whole, into key. */
static void key_of(const char *raw, char *key, size_t n)
{
	size_t k = strcspn(raw, "=:");
	while (k && (raw[k - 1] == ' ' || raw[k - 1] == '\t'))
		k--;
	if (k >= n)
		k = n - 1;
	memcpy(key, raw, k);
	key[k] = 0;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	(void)section; /* ours is in p->sect: see next_line */
	(void)name;    /* cut at 49 bytes by inih: see key_of */
	struct parser *p = user;
	if (p->err)
		return 0;
	char key[sizeof(p->raw)];
	key_of(p->raw, key, sizeof(key));
	if (!*key)
		return fail(p, "a key is missing before the =") == 0;
	if (p->sect == S_NONE)
		return fail(p, "%s is outside any section (keys go under [global], [frontend NAME] "
			    "or [backend NAME])", key) == 0;
	if (!*value)
		return fail(p, "%s needs a value", key) == 0;
	if (strncmp(key, "server", 6) == 0 && (key[6] == 0 || key[6] == ' ' || key[6] == '\t')) {
		if (p->sect != S_BACKEND)
			return fail(p, "server belongs in [backend NAME], not %s", p->label) == 0;
		return add_server(p, key + 6, value) == 0;
	}
	const struct key *k = NULL;
	unsigned allowed = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, key) != 0)
			continue;
		allowed |= keys[i].sections;
		if (keys[i].sections & (1u << p->sect))
			k = &keys[i];
	}
	if (!k && allowed) {
		char list[64] = "";
		for (enum sect s = S_GLOBAL; s <= S_BACKEND; s++)
			if (allowed & (1u << s))
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 *list ? " or " : "", sect_word(s));
		return fail(p, "%s belongs in %s, not %s", key, list, p->label) == 0;
	}
	if (!k) {
		const char *best = NULL;
		size_t bd = 3;
		for (size_t i = 0; i < NKEYS; i++) {
			if (!(keys[i].sections & (1u << p->sect)))
				continue; /* suggest only what may be written here */
			size_t d = distance(key, keys[i].name);
			if (d < bd) {
				bd = d;
				best = keys[i].name;
			}
		}
		if (distance(key, "server") < bd && p->sect == S_BACKEND)
			best = "server NAME";
		if (best)
			return fail(p, "unknown key \"%s\" in %s (did you mean %s?)", key, p->label,
				    best) == 0;
		return fail(p, "unknown key \"%s\" in %s", key, p->label) == 0;
	}
	size_t ki = (size_t)(k - keys);
	if (!(k->flags & K_REPEAT) && p->seen[ki])
		return fail(p, "%s is set twice in %s (first at line %d)", key, p->label,
			    p->seen[ki]) == 0;
	p->seen[ki] = p->line;
	void *obj = section_obj(p);
	if (k->set(p, k, obj, value) < 0)
		return 0;
	if (k->line_off != NO_LINE)
		*(int *)((char *)obj + k->line_off) = p->line;
	return 1;
}

/* ---- Whole-file checks ------------------------------------------------------- */

static void finish(struct parser *p)
{
	struct proxy_config *c = p->cfg;
	p->finishing = true;
	if (c->nfrontends == 0)
		fail_at(p, 0, "no [frontend NAME] section: nothing to listen on");
	for (size_t i = 0; i < c->nbackends; i++) {
		struct proxy_backend *b = &c->backends[i];
		for (size_t j = 0; j < b->nservers; j++)
			b->host_names |= b->servers[j].resolve;
		if (b->nservers == 0)
			fail_at(p, b->line, "[backend %s] has no servers (server NAME = ADDRESS)",
				b->name);
		for (size_t j = 0; j < b->nservers; j++) {
			struct proxy_server *s = &b->servers[j];
			if (!s->own_send_proxy)
				s->send_proxy = b->send_proxy;
			if (s->own_check_port || !b->check.port)
				continue;
			s->check_port = b->check.port;
			if (!s->resolve && s->addr.sa.sa_family == AF_UNIX)
				fail_at(p, b->check.line, "health_check port=%u: server %s is a unix "
					"socket, which has no port (line %d)", b->check.port,
					s->name, s->line);
		}
	}
	for (size_t i = 0; i < c->nfrontends; i++) {
		struct proxy_frontend *fe = &c->frontends[i];
		if (fe->nlistens == 0)
			fail_at(p, fe->line, "[frontend %s] has no listen address", fe->name);
		if (!fe->backend_name) {
			fail_at(p, fe->line, "[frontend %s] has no backend (backend = NAME)", fe->name);
		} else {
			fe->backend = proxy_config_find_backend(c, fe->backend_name);
			if (!fe->backend) {
				fail_at(p, fe->backend_line, "backend: there is no [backend %s]",
					fe->backend_name);
			} else {
				fe->backend_index = (size_t)(fe->backend - c->backends);
				fe->backend->nfrontends++;
			}
		}
		/* the same address twice, here or in an earlier frontend */
		for (size_t j = 0; j < fe->nlistens; j++) {
			const struct proxy_listen *l = &fe->listens[j];
			for (size_t i2 = 0; i2 <= i; i2++) {
				const struct proxy_frontend *f2 = &c->frontends[i2];
				size_t lim = i2 == i ? j : f2->nlistens;
				for (size_t j2 = 0; j2 < lim; j2++) {
					if (proxy_addr_equal(&l->addr, &f2->listens[j2].addr))
						fail_at(p, l->line, "listen: %s is already a listen "
							"address (line %d)", l->address,
							f2->listens[j2].line);
				}
			}
			if (c->has_admin && proxy_addr_equal(&l->addr, &c->admin))
				fail_at(p, l->line > c->admin_line ? l->line : c->admin_line,
					"the admin address %s is also a listen address",
					c->admin_address);
		}
	}
	if (p->err)
		return;
	p->finishing = false;
	for (size_t i = 0; i < c->nbackends; i++)
		if (c->backends[i].nfrontends == 0)
			warn_at(p, c->backends[i].line, "[backend %s] is not used by any frontend",
				c->backends[i].name);
	for (size_t i = 0; i < c->nbackends; i++) {
		const struct proxy_backend *b = &c->backends[i];
		if (b->resolve_interval_ns && !b->host_names)
			warn_at(p, b->resolve_interval_line, "[backend %s] resolve_interval: no server "
				"has a host name to look up", b->name);
	}
	for (size_t i = 0; i < c->nfrontends; i++) {
		const struct proxy_frontend *fe = &c->frontends[i];
		if (c->max_connections_written && fe->max_connections > c->max_connections_written)
			warn_at(p, fe->line, "[frontend %s] max_connections %u is above the global "
				"%u, which applies", fe->name, fe->max_connections,
				c->max_connections_written);
	}
}

/* ---- Entry points ------------------------------------------------------------ */

static void set_file(struct proxy_config_error *err, const char *name)
{
	size_t n = strlen(name);
	if (n < sizeof(err->file)) {
		memcpy(err->file, name, n + 1);
	} else {
		/* keep the end, where the file name is */
		snprintf(err->file, sizeof(err->file), "...%s",
			 name + n - (sizeof(err->file) - 4));
	}
}

static int parse_buffer(const char *text, size_t len, const char *name,
			struct proxy_config **out, struct proxy_config_error *err)
{
	int seen[NKEYS];
	struct parser p = {
		.name = name,
		.p = text,
		.end = text + len,
		.seen = seen,
	};
	set_file(&p.e, name);
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (!p.cfg || !(p.cfg->file = strdup(name))) {
		nomem(&p);
	} else {
		apply_defaults(&p, S_GLOBAL, p.cfg);
		int rc = p.err ? 0 : ini_parse_stream(next_line, &p, on_pair, &p);
		if (rc == -2 && !p.err)
			nomem(&p);
		else if (rc > 0 && !p.err)
			fail_at(&p, rc, "syntax error"); /* not reached: next_line checks first */
		if (!p.err)
			finish(&p);
	}
	if (p.err) {
		if (err)
			*err = p.e;
		proxy_config_free(p.cfg);
		return p.err;
	}
	*out = p.cfg;
	return 0;
}

int proxy_config_parse(const char *text, const char *name, struct proxy_config **out,
		       struct proxy_config_error *err)
{
	return parse_buffer(text, strlen(text), name, out, err);
}

static int load_fail(struct proxy_config_error *err, const char *path, int rc, const char *what)
{
	if (err) {
		memset(err, 0, sizeof(*err));
		set_file(err, path);
		snprintf(err->message, sizeof(err->message), "%s", what);
	}
	return rc;
}

int proxy_config_load(const char *path, struct proxy_config **out,
		      struct proxy_config_error *err)
{
	char msg[128];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(msg, sizeof(msg), "cannot open: %s", strerrordesc_np(e));
		return load_fail(err, path, -e, msg);
	}
	/* Read to the end (a pipe has no size to ask for); one byte past
	 * FILE_MAX tells a file that is too large. */
	size_t cap = 0, len = 0;
	char *buf = NULL;
	int rc = 0;
	for (;;) {
		if (len == cap) {
			if (cap == FILE_MAX + 1) {
				rc = -EFBIG;
				snprintf(msg, sizeof(msg), "larger than %u MiB", FILE_MAX >> 20);
				break;
			}
			size_t ncap = cap ? 2 * cap : 4096;
			if (ncap > FILE_MAX + 1)
				ncap = FILE_MAX + 1;
			char *b2 = realloc(buf, ncap);
			if (!b2) {
				rc = -ENOMEM;
				snprintf(msg, sizeof(msg), "out of memory");
				break;
			}
			buf = b2;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(msg, sizeof(msg), "cannot read: %s", strerrordesc_np(-rc));
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (rc == 0)
		rc = parse_buffer(buf ? buf : "", len, path, out, err);
	else
		load_fail(err, path, rc, msg);
	free(buf);
	return rc;
}

void proxy_config_free(struct proxy_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nfrontends; i++) {
		struct proxy_frontend *fe = &c->frontends[i];
		for (size_t j = 0; j < fe->nlistens; j++)
			free(fe->listens[j].address);
		free(fe->listens);
		free(fe->backend_name);
		free(fe->name);
	}
	free(c->frontends);
	for (size_t i = 0; i < c->nbackends; i++) {
		struct proxy_backend *b = &c->backends[i];
		for (size_t j = 0; j < b->nservers; j++) {
			free(b->servers[j].name);
			free(b->servers[j].address);
		}
		free(b->servers);
		free(b->check.path);
		free(b->name);
	}
	free(c->backends);
	for (size_t i = 0; i < c->nwarnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c->admin_address);
	free(c->access_log_path);
	free(c->user);
	free(c->upgrade_socket);
	free(c->file);
	free(c);
}

struct proxy_backend *proxy_config_find_backend(const struct proxy_config *c, const char *name)
{
	for (size_t i = 0; i < c->nbackends; i++)
		if (strcmp(c->backends[i].name, name) == 0)
			return &c->backends[i];
	return NULL;
}

struct proxy_frontend *proxy_config_find_frontend(const struct proxy_config *c,
						  const char *name)
{
	for (size_t i = 0; i < c->nfrontends; i++)
		if (strcmp(c->frontends[i].name, name) == 0)
			return &c->frontends[i];
	return NULL;
}

struct proxy_server *proxy_backend_find_server(const struct proxy_backend *b, const char *name)
{
	for (size_t i = 0; i < b->nservers; i++)
		if (strcmp(b->servers[i].name, name) == 0)
			return &b->servers[i];
	return NULL;
}

/* ---- Limits ------------------------------------------------------------------ */

int proxy_config_apply_limits(struct proxy_config *c, rlim_t fd_limit, char *warning, size_t n)
{
	if (n)
		warning[0] = 0;
	uint64_t workers = c->workers;
	if (!workers) {
		long cpus = sysconf(_SC_NPROCESSORS_CONF);
		workers = cpus > 0 ? (uint64_t)cpus : 1;
	}
	uint64_t listens = 0, servers = 0;
	bool splices = false;
	for (size_t i = 0; i < c->nfrontends; i++)
		listens += c->frontends[i].nlistens;
	for (size_t i = 0; i < c->nbackends; i++) {
		servers += c->backends[i].nservers;
		splices |= c->backends[i].data_path != PROXY_DATA_PATH_BUFFERED;
	}
	uint64_t pipe_fds = splices ? 2 * PIPES_PER_WORKER * workers : 0;
	uint64_t head = 64 + 2 * workers + listens + servers + (c->has_admin ? 16 : 0) +
			(c->access_log == PROXY_LOG_FILE ? 1 : 0) + pipe_fds;
	/* RLIM_INFINITY and limits past what any kernel gives count as 2^31. */
	uint64_t fds = fd_limit == RLIM_INFINITY || fd_limit > INT32_MAX ? INT32_MAX : fd_limit;
	int line = c->max_connections_line;
	int w = n ? where(warning, n, c->file, line) : 0;
	if (w < 0 || (size_t)w >= n)
		w = 0;
	char *msg = n ? warning + w : NULL;
	size_t mn = n ? n - (size_t)w : 0;
	if (fds < head + 2) {
		if (mn)
			snprintf(msg, mn, "the descriptor limit %llu leaves no room for connections "
				 "(weft-proxy keeps %llu for itself; each connection takes 2)",
				 (unsigned long long)fds, (unsigned long long)head);
		return -ERANGE;
	}
	uint64_t cap = (fds - head) / 2;
	if (cap > PROXY_CONNECTIONS_MAX)
		cap = PROXY_CONNECTIONS_MAX;
	uint32_t want = c->max_connections_written;
	enum proxy_limit_source src;
	uint32_t got;
	if (want == 0) {
		got = (uint32_t)cap;
		src = PROXY_LIMIT_DERIVED;
	} else if (want <= cap) {
		got = want;
		src = PROXY_LIMIT_CONFIGURED;
	} else if (c->strict_limits) {
		if (mn)
			snprintf(msg, mn, "max_connections %u needs %llu descriptors, but the limit is "
				 "%llu (strict_limits is on)", want,
				 (unsigned long long)(2ull * want + head), (unsigned long long)fds);
		return -ERANGE;
	} else {
		got = (uint32_t)cap;
		src = PROXY_LIMIT_CLAMPED;
		if (mn)
			snprintf(msg, mn, "max_connections %u needs %llu descriptors, but the limit is "
				 "%llu: using %u (raise it with ulimit -n or LimitNOFILE=)", want,
				 (unsigned long long)(2ull * want + head), (unsigned long long)fds,
				 got);
	}
	if (src != PROXY_LIMIT_CLAMPED && n)
		warning[0] = 0;
	c->max_connections = got;
	c->max_connections_source = src;
	c->fd_limit = fds;
	c->pipes_max = splices ? (fds - head + pipe_fds - 2ull * got) / 2 : 0;
	return 0;
}

/* ---- Printing ---------------------------------------------------------------- */

static void print_section(FILE *f, const struct proxy_config *c, enum sect s, const void *obj)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].sections & (1u << s))
			keys[i].print(f, &keys[i], obj, c);
}

void proxy_config_print(const struct proxy_config *c, FILE *f)
{
	fprintf(f, "; weft-proxy: the effective configuration of %s\n", c->file);
	fprintf(f, "[global]\n");
	print_section(f, c, S_GLOBAL, c);
	for (size_t i = 0; i < c->nfrontends; i++) {
		fprintf(f, "\n[frontend %s]\n", c->frontends[i].name);
		print_section(f, c, S_FRONTEND, &c->frontends[i]);
	}
	for (size_t i = 0; i < c->nbackends; i++) {
		const struct proxy_backend *b = &c->backends[i];
		fprintf(f, "\n[backend %s]\n", b->name);
		print_section(f, c, S_BACKEND, b);
		for (size_t j = 0; j < b->nservers; j++) {
			const struct proxy_server *s = &b->servers[j];
			fprintf(f, "server %s = %s weight=%u%s max_connections=%u", s->name, s->address,
				s->weight, s->backup ? " backup" : "", s->max_connections);
			if (s->own_send_proxy)
				fprintf(f, " send_proxy=%s", send_proxy_words[s->send_proxy]);
			if (s->own_check_port)
				fprintf(f, " check_port=%u", s->check_port);
			if (s->resolve)
				fprintf(f, " ; a host name, looked up at start%s",
					b->resolve_interval_ns ? " and every resolve_interval" : "");
			fprintf(f, "\n");
		}
	}
}

/* ---- The embedded default ---------------------------------------------------- */

const char proxy_config_default[] =
	"; weft-proxy's built-in configuration, used when no -c FILE is given:\n"
	"; 127.0.0.1:8080 to two local servers on ports 8081 and 8082, and the\n"
	"; admin listener (/metrics, /stats, /health) on 127.0.0.1:9901.\n"
	"[global]\n"
	"admin = 127.0.0.1:9901\n"
	"\n"
	"[frontend demo]\n"
	"listen = 127.0.0.1:8080\n"
	"backend = demo\n"
	"\n"
	"[backend demo]\n"
	"server one = 127.0.0.1:8081\n"
	"server two = 127.0.0.1:8082\n";
