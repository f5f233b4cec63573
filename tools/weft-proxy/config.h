// SPDX-License-Identifier: MIT
/*
 * tools/weft-proxy/config.h - the configuration of weft-proxy as plain data:
 * global settings, frontends (where connections come in) and backends (the
 * servers they go to), read from an INI file by config.c with libinih.
 *
 * Nothing here starts tasks or touches the runtime: the proxy core reads
 * the model, and the parser can run anywhere (the -t check, a reload).
 * Every key, its default, syntax and errors are in docs/proxy.md; the key
 * table at the top of config.c is where they are defined.
 *
 * Ownership: a struct proxy_config and everything it points to belong to
 * it and go with proxy_config_free.  The model is read-only once parsed,
 * apart from what proxy_config_apply_limits derives.  No function keeps
 * global state; different configs may be used on different threads.
 */
#ifndef WEFT_PROXY_CONFIG_H
#define WEFT_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

#include "weft/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Section and server names: 1..PROXY_NAME_MAX characters of A-Z a-z 0-9 _ . - */
#define PROXY_NAME_MAX 63

/* The largest max_connections anywhere (global, frontend, server). */
#define PROXY_CONNECTIONS_MAX 10000000u

enum proxy_balance {
	PROXY_BALANCE_ROUNDROBIN, /* smooth weighted round robin (default) */
	PROXY_BALANCE_LEASTCONN,  /* fewest active connections per weight */
	PROXY_BALANCE_RANDOM2,    /* two random picks, the less loaded wins */
	PROXY_BALANCE_SOURCE,     /* a hash of the client address */
};

enum proxy_send_proxy {
	PROXY_SEND_PROXY_OFF, /* default */
	PROXY_SEND_PROXY_V1,  /* PROXY protocol text header */
	PROXY_SEND_PROXY_V2,  /* PROXY protocol binary header */
};

/* How a relay moves a burst of bytes (tools/weft-proxy/relay.c). */
enum proxy_data_path {
	PROXY_DATA_PATH_AUTO,     /* default: splice what is queued in bulk, else buffer */
	PROXY_DATA_PATH_SPLICE,   /* socket -> pipe -> socket whenever more is queued */
	PROXY_DATA_PATH_BUFFERED, /* always through a buffer */
};

enum proxy_check_kind {
	PROXY_CHECK_OFF,  /* default: a server counts as up */
	PROXY_CHECK_TCP,  /* a connect that succeeds */
	PROXY_CHECK_HTTP, /* GET path over HTTP/1.0 answered with 2xx */
};

enum proxy_log_kind {
	PROXY_LOG_STDERR, /* default */
	PROXY_LOG_STDOUT,
	PROXY_LOG_OFF,
	PROXY_LOG_FILE, /* appended to access_log_path */
};

/* How global max_connections came to be what it is. */
enum proxy_limit_source {
	PROXY_LIMIT_UNSET,      /* 0: proxy_config_apply_limits not called yet */
	PROXY_LIMIT_CONFIGURED, /* as written */
	PROXY_LIMIT_DERIVED,    /* max_connections = auto: what the fd limit holds */
	PROXY_LIMIT_CLAMPED,    /* written larger than the fd limit holds */
};

struct proxy_health_check {
	enum proxy_check_kind kind;
	char *path;           /* HTTP only: the target, starting with '/'; else NULL */
	uint64_t interval_ns; /* between checks of one server; default 2 s */
	uint64_t timeout_ns;  /* connect plus answer; default the interval */
	uint32_t rise;        /* passes in a row that mark a down server up; default 2 */
	uint32_t fall;        /* failures in a row that mark an up server down; default 3 */
	uint32_t port;        /* checks go to this port of each server; 0: the server's own */
	int line;             /* of the health_check key; the section's when defaulted */
};

struct proxy_server {
	char *name;           /* unique in its backend; labels metrics, keys health state */
	char *address;        /* as written */
	bool resolve;         /* address is host:port, for the proxy to look up */
	struct weft_addr addr; /* parsed when !resolve; addr.len is 0 when resolve */
	uint32_t weight;      /* 1..256, default 1 */
	bool backup;          /* used only while no non-backup server is up */
	uint32_t max_connections; /* 0: no limit of its own */
	/* The PROXY header sent to it, and the port its health checks go
	 * to (0: its own): the server's options when its line sets them
	 * (own_*), else the backend's send_proxy and health_check port,
	 * filled in when the file has been read. */
	enum proxy_send_proxy send_proxy;
	uint32_t check_port;
	bool own_send_proxy, own_check_port;
	int line;
};

struct proxy_backend {
	char *name;
	enum proxy_balance balance;
	uint64_t connect_timeout_ns; /* default 5 s */
	uint32_t retries;            /* further connect attempts after a failed one; default 2 */
	enum proxy_send_proxy send_proxy;
	struct proxy_health_check check;
	/* Passive marking: this many failed connects in a row (0: off;
	 * default 3) take a server out for passive_down_ns (default 2 s). */
	uint32_t passive_fall;
	uint64_t passive_down_ns;
	/* A server back from down or maint takes new connections at a weight
	 * growing from nothing to its own over this long; 0: at once (off,
	 * the default).  balance.c */
	uint64_t slowstart_ns;
	uint64_t queue_timeout_ns; /* longest wait for a free server slot; default 5 s */
	uint32_t queue_size;       /* connections that may wait; 0: none wait; default 1024 */
	enum proxy_data_path data_path; /* default auto */
	/* Host-name servers are looked up again this often (resolve.c); 0:
	 * only when the configuration is built (off, the default). */
	uint64_t resolve_interval_ns;
	int resolve_interval_line;
	struct proxy_server *servers;
	size_t nservers;      /* >= 1 */
	bool host_names;      /* some server is host:port (proxy_server.resolve) */
	size_t nfrontends;    /* frontends that use this backend; 0 gives a warning */
	int line;             /* of the [backend NAME] header */
};

struct proxy_listen {
	char *address;        /* as written */
	struct weft_addr addr;
	int line;
};

struct proxy_frontend {
	char *name;
	struct proxy_listen *listens;
	size_t nlistens;      /* >= 1 */
	char *backend_name;
	struct proxy_backend *backend; /* resolved: points into proxy_config.backends */
	size_t backend_index;          /* the same, as an index */
	int backend_line;
	bool accept_proxy;    /* clients send a PROXY v1 or v2 header first */
	uint64_t idle_timeout_ns;        /* no bytes either way; 0: none; default 60 s */
	uint64_t half_closed_timeout_ns; /* no bytes after one side's FIN; 0: none; default 10 s */
	uint32_t max_connections;        /* 0: only the global limit; default 0 */
	int line;             /* of the [frontend NAME] header */
};

struct proxy_config {
	char *file;            /* the path or name parsed, for FILE:LINE messages */

	/* [global] */
	uint32_t workers;      /* 0: auto (weft's default worker count) */
	uint32_t max_connections; /* the limit in force: 0 (auto) until
				   * proxy_config_apply_limits derives it */
	uint32_t max_connections_written; /* as written; 0: auto */
	int max_connections_line; /* 0 when not written */
	enum proxy_limit_source max_connections_source;
	uint64_t fd_limit;     /* the limit apply_limits worked with; 0 before */
	uint64_t pipes_max;    /* pipes the spliced path may hold (apply_limits) */
	bool strict_limits;
	bool has_admin;
	struct weft_addr admin; /* when has_admin */
	char *admin_address;   /* as written, or NULL */
	int admin_line;
	enum proxy_log_kind access_log;
	char *access_log_path; /* PROXY_LOG_FILE only, else NULL */
	int access_log_line;
	char *user;            /* drop privileges to this user after binding; NULL: stay */
	int user_line;
	uint64_t drain_timeout_ns; /* after SIGTERM; 0: close at once; default 30 s */
	char *upgrade_socket;  /* unix socket for --upgrade-from; NULL: off (default) */
	int upgrade_socket_line;

	struct proxy_frontend *frontends;
	size_t nfrontends;     /* >= 1 */
	struct proxy_backend *backends;
	size_t nbackends;      /* >= 1 */

	/* Warnings found while parsing, each "FILE:LINE: text" (no newline). */
	char **warnings;
	size_t nwarnings;
};

struct proxy_config_error {
	int line;          /* 1-based; 0 when about the whole file */
	char file[256];    /* the path or name given, cut to fit */
	char message[256]; /* the problem, without file and line */
};

/* The configuration weft-proxy runs without -c: a frontend on
 * 127.0.0.1:8080 to a round-robin backend of 127.0.0.1:8081 and
 * 127.0.0.1:8082, everything else at its default. */
extern const char proxy_config_default[];

/*
 * Parses the INI text (NUL-terminated) into a new config at *out.  name
 * stands in for the file name in messages.  Returns 0 with *out set (the
 * caller frees it with proxy_config_free), or a negative errno with *out
 * untouched and *err filled in: -EINVAL (the configuration is wrong: err
 * says where and why) or -ENOMEM.  err may be NULL.  Any thread.
 */
int proxy_config_parse(const char *text, const char *name, struct proxy_config **out,
		       struct proxy_config_error *err);

/*
 * proxy_config_parse on the contents of the file at path (at most 16 MiB).
 * Errors as there, plus: the errno of open(2) or read(2) (-ENOENT,
 * -EACCES, -EISDIR, ...) and -EFBIG, with err->line 0.  Any thread.
 */
int proxy_config_load(const char *path, struct proxy_config **out,
		      struct proxy_config_error *err);

/* Frees cfg and all it holds.  NULL is fine.  No failure path. */
void proxy_config_free(struct proxy_config *cfg);

/*
 * Writes err as "FILE:LINE: MESSAGE" ("FILE: MESSAGE" when line is 0),
 * snprintf-style: returns the length the whole text needs.
 */
int proxy_config_error_format(const struct proxy_config_error *err, char *buf, size_t n);

/*
 * Fits the connection limits to the descriptor limit fd_limit (the soft
 * RLIMIT_NOFILE, after the caller raised it as far as it wants).  A
 * proxied connection holds two descriptors (client and server); headroom
 * is kept for everything else:
 *   64 + 2 per worker (auto: the CPUs configured) + 1 per listen address
 *   + 1 per server (its health check) + 16 with an admin listener
 *   + 1 with an access log file + 2 * PIPES_PER_WORKER per worker when a
 *   backend may splice (data_path other than buffered).
 * max_connections = auto becomes (fd_limit - headroom) / 2; a written one
 * larger than that is clamped to it, or, with strict_limits on, is an error.
 * pipes_max becomes what is left for pipes: the descriptors neither the
 * connections nor the rest of the headroom need, halved (0 when no backend
 * splices).
 * Returns 0 (warning gets the clamp's warning as "FILE:LINE: text", or ""
 * when there is none), or -ERANGE with the error in warning: strict_limits
 * forbade a clamp, or fd_limit leaves no room for one connection.  cfg is
 * unchanged on error.  warning may be NULL when n is 0.  Any thread.
 */
int proxy_config_apply_limits(struct proxy_config *cfg, rlim_t fd_limit, char *warning,
			      size_t n);

/*
 * Writes the effective configuration to f, one setting per line, as INI
 * that proxy_config_parse reads back to the same settings: every key with
 * its value or default, max_connections as proxy_config_apply_limits left
 * it, with comment lines on what was derived.  What `weft-proxy -t` prints.
 * No failure path (write errors stay in f).
 */
void proxy_config_print(const struct proxy_config *cfg, FILE *f);

/* Whether a and b are the same address as listen compares them (parsed:
 * 127.0.0.1:080 is 127.0.0.1:80).  Any thread. */
bool proxy_addr_equal(const struct weft_addr *a, const struct weft_addr *b);

/* Lookups by name; NULL when there is none.  Any thread. */
struct proxy_backend *proxy_config_find_backend(const struct proxy_config *cfg,
						const char *name);
struct proxy_frontend *proxy_config_find_frontend(const struct proxy_config *cfg,
						  const char *name);
struct proxy_server *proxy_backend_find_server(const struct proxy_backend *b,
					       const char *name);

/* The keyword of each enum value as the config spells it ("leastconn"). */
const char *proxy_balance_name(enum proxy_balance b);
const char *proxy_send_proxy_name(enum proxy_send_proxy s);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PROXY_CONFIG_H */
