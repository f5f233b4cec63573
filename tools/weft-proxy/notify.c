// SPDX-License-Identifier: MIT
/*
 * notify.c - the systemd notify protocol (sd_notify(3)) without
 * libsystemd: newline-separated KEY=VALUE lines in one datagram to the
 * AF_UNIX socket named by NOTIFY_SOCKET.  main.c sends READY=1 once the
 * accept loops run, RELOADING=1 then READY=1 around a reload, MAINPID=
 * with READY=1 after taking over in an upgrade, and STOPPING=1 when the
 * drain begins (not after a handover); see notify.h.
 */
#include "notify.h"
#include "say.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Written once by notify_init (before any thread), read-only afterwards. */
static int nfd = -1;
static struct sockaddr_un naddr;
static socklen_t naddr_len;

int notify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	if (!e || !*e)
		return 0;
	size_t n = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || n >= sizeof(naddr.sun_path)) {
		say("warning: NOTIFY_SOCKET \"%s\" is not a socket path or @name; not notifying",
			e);
		return -1;
	}
	naddr.sun_family = AF_UNIX;
	memcpy(naddr.sun_path, e, n);
	if (e[0] == '@')
		naddr.sun_path[0] = 0; /* abstract: no terminating NUL counted */
	naddr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		say("warning: NOTIFY_SOCKET: socket: %s; not notifying", strerror(errno));
		return -1;
	}
	/* Connected now, with the credentials the proxy started with: the
	 * permission to write to a path socket is checked here, once, so a
	 * later switch to an unprivileged user (privs.c) keeps the channel. */
	if (connect(fd, (struct sockaddr *)&naddr, naddr_len) < 0) {
		say("warning: NOTIFY_SOCKET %s: %s; not notifying", e, strerror(errno));
		close(fd);
		return -1;
	}
	nfd = fd;
	return 0;
}

int notify_send(const char *state)
{
	if (nfd < 0)
		return 0;
	size_t len = strlen(state);
	ssize_t n = send(nfd, state, len, MSG_NOSIGNAL);
	if (n < 0 && (errno == ECONNREFUSED || errno == ENOTCONN))
		/* The receiver's socket was replaced (a manager that re-executed
		 * itself binds the path anew): try the address once more. */
		n = sendto(nfd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&naddr, naddr_len);
	return n < 0 ? -errno : 0;
}

void notify_ready(void)
{
	notify_send("READY=1");
}

void notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void notify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[64];
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	notify_send(msg);
}

void notify_mainpid(pid_t pid, bool ready)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "MAINPID=%d%s", (int)pid, ready ? "\nREADY=1" : "");
	notify_send(msg);
}
