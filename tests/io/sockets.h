// SPDX-License-Identifier: MIT
/*
 * tests/io/sockets.h - the sockets the I/O tests share: a connected pair, a
 * loopback listener on a free port, and a descriptor table made full.
 */
#ifndef WEFT_TESTS_IO_SOCKETS_H
#define WEFT_TESTS_IO_SOCKETS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

struct pair {
	int a, b;
};

/* A connected unix stream pair. */
inline pair socket_pair()
{
	int fds[2];
	EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	return {fds[0], fds[1]};
}

/* A listening loopback TCP socket on a free port, its address in *addr. */
inline int listen_loopback(struct sockaddr_in *addr, int backlog = 64)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(*addr);
	EXPECT_EQ(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	EXPECT_EQ(listen(fd, backlog), 0);
	EXPECT_EQ(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

/* Lowers the descriptor limit to the lowest free descriptor, so that
 * descriptors 0..N-1 are all in use and the table is full; returns the
 * limit to restore with setrlimit. */
inline struct rlimit fill_fd_table()
{
	struct rlimit saved, tight;
	EXPECT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
	int probe = dup(0);
	close(probe);
	tight = saved;
	tight.rlim_cur = (rlim_t)probe;
	EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
	EXPECT_EQ(dup(0), -1) << "the table is not full";
	return saved;
}

#endif
