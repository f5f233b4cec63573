// SPDX-License-Identifier: MIT
/*
 * notify.h - the systemd notify protocol for weft-proxy (notify.c): one
 * datagram per state change to the AF_UNIX socket that NOTIFY_SOCKET
 * names, without libsystemd.  The protocol is sd_notify(3)'s; what the
 * proxy sends and when is in docs/proxy.md ("Running under systemd").
 */
#ifndef WEFT_PROXY_NOTIFY_H
#define WEFT_PROXY_NOTIFY_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * Reads NOTIFY_SOCKET (a path, or "@name" for the abstract namespace) and
 * connects a CLOEXEC datagram socket to it, so that a later switch of user
 * (privs.c) does not need write permission on the socket's file.  Unset:
 * nothing to do.  Returns 0, or -1 after a warning on stderr (notifying is
 * then off; the proxy runs on).  Call once, from main, before threads.
 */
int notify_init(void);

/* READY=1: listeners bound, accept loops running.  Any thread. */
void notify_ready(void);

/* STOPPING=1: the drain begins.  Any thread. */
void notify_stopping(void);

/*
 * RELOADING=1 with MONOTONIC_USEC (what Type=notify-reload expects), at
 * the start of a reload (SIGHUP); the caller sends notify_ready() when it
 * is done, whether it took effect or not.  Any thread.
 */
void notify_reloading(void);

/* MAINPID=pid, with READY=1 in the same datagram when ready: a process
 * started with --upgrade-from that accepts now takes over as the
 * service's main process (its own pid, ready), or gives that back to the
 * old one after an upgrade it did not confirm (main.c).  The unit needs
 * NotifyAccess=all.  Any thread. */
void notify_mainpid(pid_t pid, bool ready);

/* Sends one datagram of state ("KEY=VALUE" lines): 0, -errno, or 0 with
 * nothing sent when notifying is off.  Any thread. */
int notify_send(const char *state);

#endif
