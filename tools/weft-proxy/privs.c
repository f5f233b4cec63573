// SPDX-License-Identifier: MIT
/*
 * privs.c - `user = NAME|UID`: after binding, weft-proxy becomes that user
 * (initgroups, setgid, setuid) and, when it was root, keeps only
 * CAP_NET_BIND_SERVICE, so that a later reload can still bind a port
 * below 1024.  Called from main.c; the key is in docs/proxy.md.
 *
 * Why before the runtime (and every other thread) starts: at the syscall
 * level setuid, setgid, setgroups and capset change the calling thread
 * only.  glibc's setuid family broadcasts the change to every thread of
 * the process (a signal to each); capset, called raw here, has no such
 * wrapper.  Switching while the main thread is the only thread is the
 * simple way to be sure: every worker, the access log's writer and the
 * health checks are created afterwards and inherit the new credentials
 * and capability sets.
 */
#include "privs.h"
#include "say.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Looks up user: 0 with *uid, *gid and name (NULL when a numeric uid has
 * no passwd entry; its gid is then the uid) filled, or -errno (-ENOENT:
 * no such user). */
static int resolve(const char *user, uid_t *uid, gid_t *gid, char **name)
{
	struct passwd pw, *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t len = sz > 0 ? (size_t)sz : 16384;
	char *end = NULL;
	errno = 0;
	unsigned long num = strtoul(user, &end, 10);
	bool numeric = user[0] >= '0' && user[0] <= '9' && *end == 0 && errno == 0 &&
		       num < (unsigned long)(uid_t)-1;
	for (;;) {
		char *buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		int rc = numeric ? getpwuid_r((uid_t)num, &pw, buf, len, &res)
				 : getpwnam_r(user, &pw, buf, len, &res);
		if (rc == ERANGE && len < (1u << 20)) {
			free(buf);
			len *= 2;
			continue;
		}
		if (rc == 0 && res) {
			*uid = pw.pw_uid;
			*gid = pw.pw_gid;
			*name = strdup(pw.pw_name);
			free(buf);
			return *name ? 0 : -ENOMEM;
		}
		free(buf);
		if (rc != 0 && rc != ENOENT && rc != ESRCH)
			return -rc;
		break;
	}
	if (!numeric)
		return -ENOENT;
	*uid = (uid_t)num;
	*gid = (gid_t)num;
	*name = NULL;
	return 0;
}

/* Leaves CAP_NET_BIND_SERVICE alone in the permitted and effective sets
 * of the calling thread (nothing inheritable): 0 or -errno.  Raw capset,
 * version 3 (two 32-bit words per set), to need no libcap. */
static int keep_bind_cap(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	memset(d, 0, sizeof(d));
	_Static_assert(CAP_NET_BIND_SERVICE < 32, "CAP_NET_BIND_SERVICE is in the first word");
	d[0].permitted = d[0].effective = 1u << CAP_NET_BIND_SERVICE;
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int privs_drop(const char *user, const char *file, int line)
{
	uid_t uid = 0;
	gid_t gid = 0;
	char *name = NULL;
	int rc = resolve(user, &uid, &gid, &name);
	if (rc < 0) {
		say("%s:%d: user %s: %s", file, line, user,
			rc == -ENOENT ? "no such user" : strerror(-rc));
		return -1;
	}
	uid_t ruid, euid, suid;
	getresuid(&ruid, &euid, &suid);
	if (ruid == uid && euid == uid && suid == uid) {
		/* Already that user (a non-root proxy naming itself, or root
		 * naming root): nothing to switch, and an unprivileged process
		 * could not call setgroups anyway. */
		free(name);
		return 0;
	}
	/* Root becoming someone else keeps its permitted capabilities
	 * across setuid (PR_SET_KEEPCAPS), then drops all but one below. */
	bool keep = euid == 0 && uid != 0;
	const char *step = "prctl(PR_SET_KEEPCAPS)";
	if (keep && prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) < 0)
		goto fail;
	step = "initgroups";
	if (name ? initgroups(name, gid) < 0 : setgroups(0, NULL) < 0)
		goto fail;
	step = "setgid";
	if (setresgid(gid, gid, gid) < 0)
		goto fail;
	step = "setuid";
	if (setresuid(uid, uid, uid) < 0)
		goto fail;
	if (keep) {
		step = "capset(CAP_NET_BIND_SERVICE)";
		if ((rc = keep_bind_cap()) < 0) {
			errno = -rc;
			goto fail;
		}
		prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
	}
	free(name);
	return 0;
fail:
	say("%s:%d: user %s: %s: %s", file, line, user, step, strerror(errno));
	free(name);
	return -1;
}
