// SPDX-License-Identifier: MIT
/*
 * upgrade.h - binary upgrade without loss (upgrade.c): the running
 * weft-proxy hands its listening sockets over a unix socket (SCM_RIGHTS) to
 * a new one started with --upgrade-from, with the servers an operator put
 * in drain or maint; the new one accepts on the sockets and says when it
 * is ready; only then does the old one stop accepting and drain.
 * The message format is at the top of upgrade.c; the procedure in
 * docs/proxy.md ("Binary upgrade").
 */
#ifndef WEFT_PROXY_UPGRADE_H
#define WEFT_PROXY_UPGRADE_H

#include <stddef.h>
#include <sys/types.h>

#include <weft/net.h>

#include "config.h"
#include "reload.h"

/* How long the old process waits for the new one's "ready". */
#define UPGRADE_READY_TIMEOUT (60 * WEFT_SEC)

/* ---- The running (old) process ------------------------------------------- */

/*
 * The control socket at path (upgrade_socket): a SOCK_SEQPACKET unix
 * socket, mode 0600, listening.  A socket file nobody listens on is
 * replaced; one somebody listens on gives -EADDRINUSE.  Returns the
 * descriptor (nonblocking, close-on-exec) or -errno.  Any thread.
 */
int upgrade_listen(const char *path);

/* One socket to hand over: kind is "listen" (name: its frontend), "admin"
 * or "upgrade" (name NULL); text is its address as the new process
 * compares it (listen and admin: weft_addr_parse's form; upgrade: the
 * path). */
struct upgrade_item {
	const char *kind, *name;
	char text[WEFT_ADDR_STRLEN];
	int fd;
};

/* A server's administrative state (balance.h) other than ready, to carry
 * over: the operator's drain or maint outlives the process that was told. */
struct upgrade_state {
	const char *backend, *server;
	int admin;                  /* enum server_admin */
};

/*
 * Hands items and states over on conn, a connection accepted on the
 * control socket, then waits up to UPGRADE_READY_TIMEOUT for the new
 * process's "ready" and answers "ok" (the commit, when the new process
 * knows it).  Returns 0 with *pid the new process's once it is ready (it
 * accepts on the sockets now, and this process must stop); or -errno when
 * it failed, left, took too long or did not take the "ok", the sockets
 * then still ours and nothing changed.  conn stays the caller's.  Task
 * only; suspends.
 */
int upgrade_hand_over(int conn, const struct upgrade_item *items, size_t n,
		      const struct upgrade_state *states, size_t nstates, pid_t *pid);

/* ---- The new process ------------------------------------------------------- */

/* A state carried over, as the new process received it. */
struct upgrade_kept {
	char backend[PROXY_NAME_MAX + 1], server[PROXY_NAME_MAX + 1];
	int admin;                  /* enum server_admin, not SERVER_READY */
};

/* What upgrade_receive got: listening sockets by address, the admin and
 * control sockets (-1 when the old process had none), and the servers the
 * old process had in drain or maint (none from a version 1 process). */
struct upgrade_from {
	int conn;                   /* to the old process, for upgrade_ready */
	pid_t pid;                  /* the old process */
	int version;                /* of its hand-over (upgrade.c) */
	struct listen_set listens;  /* addr: as the old process's listen line gave it */
	int admin_fd;
	struct weft_addr admin;
	int upgrade_fd;
	char upgrade_path[108];
	struct upgrade_kept *states; /* malloc'd */
	size_t nstates;
};

/*
 * Connects to the old process's control socket at path and takes every
 * socket it hands over (within 10 s).  Returns 0 with *u filled, or -1
 * after saying why on stderr (nothing held then).  Blocking: call from
 * main before the runtime starts.
 */
int upgrade_receive(const char *path, struct upgrade_from *u);

/* Tells the old process this one accepts now and waits (up to 10 s) for
 * its "ok", then closes u->conn.  Returns 0 once the old process has
 * committed to stop accepting and drain (a process before version 3 is
 * taken at its word); or -errno: it did not commit (-EPIPE: it closed the
 * connection; -ETIMEDOUT; -EPROTO: an answer other than "ok"; or the
 * send's error), so it accepts on as before, unless it has died.  Task
 * only; suspends. */
int upgrade_ready(struct upgrade_from *u);

/* Closes what upgrade_receive got that nobody took (descriptors still
 * >= 0), saying so for listening sockets (upgrade_closing_listener).  The
 * states stay (the caller frees them once applied).  No failure path. */
void upgrade_from_close(struct upgrade_from *u);

/* ---- Either -------------------------------------------------------------------- */

/*
 * Says, before a listening socket is closed for good (dropped from the
 * configuration by a reload or an upgrade), what happens to connections
 * queued on it: they are reset; unless the socket is in a SO_REUSEPORT
 * group and net.ipv4.tcp_migrate_req is 1, which moves them to another
 * socket of the group.  The sysctl is read, never set; a warning names it
 * when it is off for such a socket.  Any thread.
 */
void upgrade_closing_listener(int fd, const char *why);

/* net.ipv4.tcp_migrate_req: 0, 1, or -1 when it cannot be read (a kernel
 * before 5.14 has none). */
int upgrade_migrate_req(void);

#endif
