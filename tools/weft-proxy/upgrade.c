// SPDX-License-Identifier: MIT
/*
 * upgrade.c - handing the listening sockets of a running weft-proxy to a
 * new one (upgrade.h), over a SOCK_SEQPACKET unix socket: one message per
 * packet, so no framing, and each descriptor rides on its own packet.
 *
 * The conversation (text, one line per packet, no newline):
 *
 *   old -> new   weft-proxy-upgrade 3 pid=PID count=N
 *   old -> new   N times, each with one descriptor (SCM_RIGHTS):
 *                  listen FRONTEND ADDRESS   a frontend's listening socket
 *                  admin ADDRESS             the admin listener
 *                  upgrade PATH              this control socket
 *   old -> new   for each server not ready, no descriptor:
 *                  state BACKEND SERVER drain|maint
 *   old -> new   end
 *   new -> old   ready pid=PID version=V     sent once it accepts
 *   old -> new   ok                          (both at version 3 or later)
 *
 * ADDRESS is as weft_addr_parse reads it, from the old process's listen
 * line (port 0 stays 0), and the new process takes a socket for each of
 * its listen lines with the same address, whatever the frontend (the name
 * is for messages).  The states are matched by name, as a reload matches
 * them (main.c).  The version changes with any change of format; a new
 * process reads every version up to its own (1 had no state lines), so
 * any older weft-proxy can hand over to it, and one that does not know the
 * version stops before taking anything.  The new process names its own in
 * "ready" (from 3 on; none means 2 or older), so that an old process asks
 * for no more than its peer knows.
 *
 * Why nothing is lost: the socket is handed over itself, not reopened.
 * The old and the new process accept on the same socket (same queue)
 * until the old one stops; a connection is in the kernel's queue, taken
 * by one of them, or (accept in flight when the old one stops) returned
 * by its accept, since a cancelled accept that already completed returns
 * the connection.  So no queued connection is ever reset by the handover.
 * Only sockets closed for good reset what is queued on them
 * (upgrade_closing_listener): the listen addresses a new configuration
 * drops.
 *
 * Failure: until "ready", the old process runs as before; a new process
 * that exits, closes the connection or says anything else leaves it so.
 * "ready" alone cannot settle who accepts: the old process may give up
 * (its 60 s are over, or it is told to stop) just as the new one sends it,
 * and each would then think the other stops.  So the old process commits
 * only by sending "ok", and a new process that gets none while the old one
 * lives steps back: it drains what it took and exits (main.c).  Neither
 * serves the control socket meanwhile: the old one is busy with this
 * conversation, and the new one starts only once committed, so a third
 * process never takes the sockets from one that may step back.  With a
 * process older than version 3 on either side, "ready" alone commits, as
 * it did.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <weft.h>
#include <weft/io.h>

#include "balance.h"
#include "say.h"
#include "upgrade.h"

#define VERSION_WORD "weft-proxy-upgrade"
#define VERSION 3
#define VERSION_OK 3 /* the first with "ok" */
#define PACKET_MAX 512
#define RECEIVE_TIMEOUT_S 10
#define CONFIRM_TIMEOUT (10 * WEFT_SEC) /* "ok" follows "ready" at once */

static int unix_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	strcpy(a->sun_path, path);
	return 0;
}

int upgrade_listen(const char *path)
{
	struct sockaddr_un a;
	int rc = unix_addr(path, &a);
	if (rc < 0)
		return rc;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	if (rc < 0 && errno == EADDRINUSE) {
		/* A file is there: a live process's socket (refuse), or one a
		 * process that died left behind (replace it). */
		int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		bool dead = probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof(a)) < 0 &&
			    errno == ECONNREFUSED;
		if (probe >= 0)
			close(probe);
		errno = EADDRINUSE;
		if (dead && unlink(path) == 0)
			rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 8) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Sends one packet of text, with fd (if >= 0) as SCM_RIGHTS.  Task only. */
static int send_packet(int conn, const char *text, int fd)
{
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n = weft_sendmsg(conn, &m, MSG_NOSIGNAL);
	return n < 0 ? (int)n : (size_t)n == iov.iov_len ? 0 : -EMSGSIZE;
}

int upgrade_hand_over(int conn, const struct upgrade_item *items, size_t n,
		      const struct upgrade_state *states, size_t nstates, pid_t *pid)
{
	char line[PACKET_MAX];
	snprintf(line, sizeof(line), VERSION_WORD " %d pid=%d count=%zu", VERSION, (int)getpid(), n);
	int rc = send_packet(conn, line, -1);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (items[i].name)
			snprintf(line, sizeof(line), "%s %s %s", items[i].kind, items[i].name,
				 items[i].text);
		else
			snprintf(line, sizeof(line), "%s %s", items[i].kind, items[i].text);
		rc = send_packet(conn, line, items[i].fd);
	}
	/* Names are at most PROXY_NAME_MAX bytes: a line fits a packet. */
	for (size_t i = 0; i < nstates && rc == 0; i++) {
		snprintf(line, sizeof(line), "state %s %s %s", states[i].backend, states[i].server,
			 balance_admin_name((enum server_admin)states[i].admin));
		rc = send_packet(conn, line, -1);
	}
	if (rc == 0)
		rc = send_packet(conn, "end", -1);
	if (rc < 0)
		return rc;
	/* The new process binds what it does not get, sets up its runtime and
	 * starts accepting: give it time, but not forever. */
	struct weft_scope sc;
	weft_scope_deadline(&sc, UPGRADE_READY_TIMEOUT);
	ssize_t got = weft_recv(conn, line, sizeof(line) - 1, 0);
	weft_scope_end(&sc);
	if (got <= 0)
		return got == 0 ? -EPIPE : (int)got;
	line[got] = 0;
	int p, version = 2;
	if (sscanf(line, "ready pid=%d version=%d", &p, &version) < 1 || p <= 0)
		return -EPROTO;
	/* The commit (see the top): a new process that is gone by now, or
	 * does not hear it, has not taken over. */
	if (version >= VERSION_OK && (rc = send_packet(conn, "ok", -1)) < 0)
		return rc;
	*pid = (pid_t)p;
	return 0;
}

/* One packet into buf (NUL-terminated) and its descriptor, if any, into
 * *fd (-1 if none): its length, or -errno. */
static ssize_t recv_packet(int conn, char *buf, size_t size, int *fd)
{
	struct iovec iov = {.iov_base = buf, .iov_len = size - 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	*fd = -1;
	ssize_t n = recvmsg(conn, &m, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EMSGSIZE;
	}
	buf[n] = 0;
	return n;
}

/* Takes a state line ("state BACKEND SERVER WORD", no descriptor) into u:
 * 0, or -1 with the reason in why. */
static int take_state(struct upgrade_from *u, char *line, const char **why)
{
	char *save = NULL;
	strtok_r(line, " ", &save);
	char *backend = strtok_r(NULL, " ", &save);
	char *server = strtok_r(NULL, " ", &save);
	char *word = strtok_r(NULL, " ", &save);
	int admin = word ? balance_admin_parse(word, strlen(word)) : -EINVAL;
	if (!server || admin <= SERVER_READY || strtok_r(NULL, " ", &save) ||
	    strlen(backend) > PROXY_NAME_MAX || strlen(server) > PROXY_NAME_MAX) {
		*why = "a server state it does not know";
		return -1;
	}
	struct upgrade_kept *v = realloc(u->states, (u->nstates + 1) * sizeof(*v));
	if (!v) {
		*why = strerror(ENOMEM);
		return -1;
	}
	u->states = v;
	v = &v[u->nstates++];
	strcpy(v->backend, backend);
	strcpy(v->server, server);
	v->admin = admin;
	return 0;
}

/* Takes one item packet (text in line, descriptor fd) into u: 0, or -1 with
 * the reason in why. */
static int take_item(struct upgrade_from *u, char *line, int fd, const char **why)
{
	char *save = NULL;
	char *kind = strtok_r(line, " ", &save);
	char *a = strtok_r(NULL, " ", &save);
	char *b = strtok_r(NULL, " ", &save);
	struct weft_addr addr;
	if (fd < 0) {
		*why = "an item without a descriptor";
		return -1;
	}
	if (kind && strcmp(kind, "listen") == 0 && b && weft_addr_parse(&addr, b) == 0) {
		/* The accept loops take connections with a nonblocking accept4
		 * (main.c): a blocking socket would hold a worker in the kernel.
		 * The flag is the shared file's, and the old process wants it
		 * too. */
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
			close(fd);
			*why = strerror(errno);
			return -1;
		}
		u->listens.v[u->listens.n++] = (struct lsock){.addr = addr, .fd = fd};
		return 0;
	}
	if (kind && strcmp(kind, "admin") == 0 && a && !b && weft_addr_parse(&addr, a) == 0 &&
	    u->admin_fd < 0) {
		u->admin_fd = fd;
		u->admin = addr;
		return 0;
	}
	if (kind && strcmp(kind, "upgrade") == 0 && a && !b && u->upgrade_fd < 0 &&
	    strlen(a) < sizeof(u->upgrade_path)) {
		u->upgrade_fd = fd;
		strcpy(u->upgrade_path, a);
		return 0;
	}
	close(fd);
	*why = "an item it does not know";
	return -1;
}

int upgrade_receive(const char *path, struct upgrade_from *u)
{
	*u = (struct upgrade_from){.conn = -1, .admin_fd = -1, .upgrade_fd = -1};
	struct sockaddr_un a;
	const char *why = NULL;
	char line[PACKET_MAX];
	int fd = -1;
	size_t count = 0;
	if (unix_addr(path, &a) < 0) {
		say("--upgrade-from %s: the path is too long", path);
		return -1;
	}
	u->conn = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (u->conn < 0 || connect(u->conn, (struct sockaddr *)&a, sizeof(a)) < 0) {
		say("--upgrade-from %s: %s", path, strerror(errno));
		goto fail;
	}
	struct timeval tv = {.tv_sec = RECEIVE_TIMEOUT_S};
	setsockopt(u->conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n = recv_packet(u->conn, line, sizeof(line), &fd);
	int pid = 0, version = 0;
	if (n < 0 || fd >= 0 ||
	    sscanf(line, VERSION_WORD " %d pid=%d count=%zu", &version, &pid, &count) != 3 ||
	    version < 1 || version > VERSION || count > 65536) {
		if (fd >= 0)
			close(fd);
		why = n < 0 ? strerror((int)-n)
			    : version > VERSION ? "the old process speaks a newer version of the upgrade "
						  "protocol than this program knows"
						: "not a weft-proxy upgrade socket";
		goto fail;
	}
	u->pid = (pid_t)pid;
	u->version = version;
	u->listens.v = calloc(count ? count : 1, sizeof(*u->listens.v));
	if (!u->listens.v) {
		why = strerror(ENOMEM);
		goto fail;
	}
	for (size_t i = 0;; i++) {
		if ((n = recv_packet(u->conn, line, sizeof(line), &fd)) < 0) {
			why = strerror((int)-n);
			goto fail;
		}
		if (i < count) {
			if (take_item(u, line, fd, &why) < 0)
				goto fail;
			continue;
		}
		/* After the items: states (version 2 on), then the end. */
		if (fd >= 0) {
			close(fd);
			why = "more descriptors than it announced";
			goto fail;
		}
		if (strcmp(line, "end") == 0)
			break;
		if (version < 2 || strncmp(line, "state ", 6) != 0) {
			why = "no end after the items it announced";
			goto fail;
		}
		if (take_state(u, line, &why) < 0)
			goto fail;
	}
	int migrate = upgrade_migrate_req();
	say("upgrade from pid %d: %zu sockets taken over (net.ipv4.tcp_migrate_req = %d)", pid,
		count, migrate);
	return 0;
fail:
	if (why)
		say("--upgrade-from %s: %s", path, why);
	for (size_t i = 0; i < u->listens.n; i++)
		close(u->listens.v[i].fd);
	free(u->listens.v);
	if (u->admin_fd >= 0)
		close(u->admin_fd);
	if (u->upgrade_fd >= 0)
		close(u->upgrade_fd);
	if (u->conn >= 0)
		close(u->conn);
	free(u->states);
	*u = (struct upgrade_from){.conn = -1, .admin_fd = -1, .upgrade_fd = -1};
	return -1;
}

int upgrade_ready(struct upgrade_from *u)
{
	char line[64];
	snprintf(line, sizeof(line), "ready pid=%d version=%d", (int)getpid(), VERSION);
	ssize_t n = weft_send(u->conn, line, strlen(line), MSG_NOSIGNAL);
	if (n >= 0 && u->version >= VERSION_OK) {
		struct weft_scope sc;
		weft_scope_deadline(&sc, CONFIRM_TIMEOUT);
		n = weft_recv(u->conn, line, sizeof(line) - 1, 0);
		weft_scope_end(&sc);
		if (n == 0)
			n = -EPIPE;
		else if (n > 0 && !((size_t)n == 2 && memcmp(line, "ok", 2) == 0))
			n = -EPROTO;
	}
	weft_close(u->conn);
	u->conn = -1;
	return n < 0 ? (int)n : 0;
}

void upgrade_from_close(struct upgrade_from *u)
{
	listen_set_close(&u->listens, "not in the new configuration; closed for good when the "
				      "old process stops");
	if (u->admin_fd >= 0)
		close(u->admin_fd);
	if (u->upgrade_fd >= 0)
		close(u->upgrade_fd);
	u->admin_fd = u->upgrade_fd = -1;
}

int upgrade_migrate_req(void)
{
	int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char c = 0;
	ssize_t n = read(fd, &c, 1);
	close(fd);
	return n == 1 && (c == '0' || c == '1') ? c - '0' : -1;
}

void upgrade_closing_listener(int fd, const char *why)
{
	char where[WEFT_ADDR_STRLEN] = "?";
	struct weft_addr a;
	if (weft_sock_local_addr(fd, &a) == 0)
		weft_addr_format(&a, where, sizeof(where));
	int reuse = 0;
	socklen_t len = sizeof(reuse);
	getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuse, &len);
	int migrate = reuse ? upgrade_migrate_req() : 0;
	if (!reuse)
		say("closing listener %s (%s): connections still queued on it are reset", where,
			why);
	else if (migrate == 1)
		say("closing listener %s (%s): net.ipv4.tcp_migrate_req is 1, so connections "
			"queued on it move to another socket of its SO_REUSEPORT group", where,
			why);
	else
		say("warning: closing listener %s (%s): it is in a SO_REUSEPORT group but "
			"net.ipv4.tcp_migrate_req is %s, so connections queued on it are reset "
			"rather than moved (weft-proxy never sets it)", where, why,
			migrate == 0 ? "0" : "unreadable");
}
