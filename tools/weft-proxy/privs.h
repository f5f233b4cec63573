// SPDX-License-Identifier: MIT
/*
 * privs.h - weft-proxy's switch to the configured `user` after binding,
 * keeping CAP_NET_BIND_SERVICE for a later reload (privs.c).  main.c calls
 * it once, after the listeners are bound and before any thread exists; the
 * why of that order is in privs.c.  The key is described in docs/proxy.md.
 */
#ifndef WEFT_PROXY_PRIVS_H
#define WEFT_PROXY_PRIVS_H

/*
 * Switches the process to user (a name, or a numeric uid): its groups,
 * its gid, its uid, and when the process was root, keeps
 * CAP_NET_BIND_SERVICE (permitted and effective) and nothing else.  A user
 * that is the current one already, with no change asked, is a no-op (so a
 * non-root proxy may name itself).  Returns 0, or -1 after a message on
 * stderr naming file:line (the `user` line); on -1 the credentials may be
 * half switched, so the caller must exit.  Call with one thread only.
 */
int privs_drop(const char *user, const char *file, int line);

#endif
