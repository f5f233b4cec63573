// SPDX-License-Identifier: MIT
/*
 * echo_test.cc - many connections at once over loopback: 9,000 clients
 * (the fd hard limit here is 20,000, and both ends count) each send
 * messages of pseudo-random bytes to an echo server on the same runtime
 * and check every byte that comes back.  No client sends before all are
 * connected, so all 9,000 connections are open at once (counted).  Tasks
 * block in recv and send on
 * both workers, are woken by completions reaped on whichever ring issued
 * them, and move between workers as stealing dictates.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "common.h"
#include "weft/io.h"

namespace {

const int kConns = WEFT_TEST_SCALE(9000);
const int kRounds = 4;
const size_t kMsg = 64;

int listen_fd;
struct sockaddr_in listen_addr;
std::atomic<int> verified, failed;
struct weft_wg connected;          /* clients yet to connect (or fail to) */
std::atomic<int> open_now, open_peak;

intptr_t echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[256];
	ssize_t n;
	while ((n = weft_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (weft_send(fd, buf, (size_t)n, 0) != n)
			break;
	weft_close(fd);
	return 0;
}

intptr_t acceptor(void *)
{
	for (int i = 0; i < kConns; i++) {
		int c = weft_accept(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
		if (c < 0)
			return c;
		weft_detach(weft_spawn(echo_conn, (void *)(intptr_t)c, nullptr));
	}
	return 0;
}

intptr_t client(void *arg)
{
	uint32_t seed = (uint32_t)(intptr_t)arg * 2654435761u + 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || weft_connect(fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) < 0) {
		failed++;
		if (fd >= 0)
			weft_close(fd);
		weft_wg_done(&connected);
		return -1;
	}
	int now = ++open_now;
	for (int peak = open_peak.load(); now > peak && !open_peak.compare_exchange_weak(peak, now);)
		;
	weft_wg_done(&connected);
	bool ok = weft_wg_wait(&connected) == 0; /* every client connected */
	for (int r = 0; r < kRounds && ok; r++) {
		unsigned char out[kMsg], in[kMsg];
		for (size_t i = 0; i < kMsg; i++) {
			seed = seed * 1103515245u + 12345u;
			out[i] = (unsigned char)(seed >> 16);
		}
		ok = weft_send(fd, out, kMsg, 0) == (ssize_t)kMsg &&
		     weft_recv(fd, in, kMsg, MSG_WAITALL) == (ssize_t)kMsg &&
		     memcmp(in, out, kMsg) == 0;
	}
	open_now--;
	weft_close(fd);
	(ok ? verified : failed)++;
	return ok ? 0 : -1;
}

TEST(EchoTest, NineThousandConnectionsEchoEveryByte)
{
	struct rlimit rl;
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < (rlim_t)(2 * kConns + 64))
		GTEST_SKIP() << "needs " << 2 * kConns + 64 << " file descriptors, hard limit is "
			     << rl.rlim_max;
	rlim_t saved = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&listen_addr, 0, sizeof(listen_addr));
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(listen_addr);
	ASSERT_EQ(bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)), 0);
	ASSERT_EQ(listen(listen_fd, 4096), 0);
	ASSERT_EQ(getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len), 0);
	verified = 0;
	failed = 0;
	open_now = open_peak = 0;
	weft_wg_init(&connected);
	weft_wg_add(&connected, kConns);

	run_in_weft(2, [] {
		struct weft_task *acc = weft_spawn(acceptor, nullptr, nullptr);
		struct weft_group *g = weft_group_new(0);
		for (int i = 0; i < kConns; i++)
			EXPECT_EQ(weft_group_spawn(g, client, (void *)(intptr_t)i, nullptr), 0);
		/* Bounded: a stuck connection fails the test, not the run. */
		struct weft_scope s;
		weft_scope_deadline(&s, 120 * WEFT_SEC);
		EXPECT_EQ(weft_group_wait(g), 0);
		weft_scope_end(&s);
		weft_group_free(g);
		intptr_t r = -1;
		EXPECT_EQ(weft_join(acc, &r), 0);
		EXPECT_EQ(r, 0);
		return (intptr_t)0;
	});
	close(listen_fd);
	EXPECT_EQ(verified.load(), kConns);
	EXPECT_EQ(failed.load(), 0);
	EXPECT_EQ(open_peak.load(), kConns) << "connections open at once";
	rl.rlim_cur = saved;
	setrlimit(RLIMIT_NOFILE, &rl);
}

} // namespace
