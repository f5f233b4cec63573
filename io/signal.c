// SPDX-License-Identifier: MIT
/*
 * signal.c - waiting for a signal like any other event.
 *
 * A signalfd turns pending signals into something to read, and a read is an
 * operation on the task's ring: the task parks until the signal comes and
 * is cancellable and bounded by its deadline like every read.  The signals
 * must be blocked in every thread, or the kernel delivers them the old way
 * instead of leaving them pending for the signalfd: workers block every
 * asynchronous signal, so only the program's other threads need it.
 */
#include <errno.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "weft.h"
#include "weft/io.h"

int weft_signal_wait(const sigset_t *set)
{
	int fd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct signalfd_siginfo info;
	ssize_t n = weft_read(fd, &info, sizeof(info));
	close(fd);
	if (n < 0)
		return (int)n;
	return n == (ssize_t)sizeof(info) ? (int)info.ssi_signo : -EIO;
}
