// SPDX-License-Identifier: MIT
/*
 * netload - the closed-loop TCP echo load client of the network benchmark.
 *
 *   netload HOST:PORT [-c CONNS] [-s SIZE] [-w WARMUP_S] [-d DURATION_S] [-p PID]
 *
 * One thread drives CONNS connections.  Each sends SIZE bytes, waits for
 * all SIZE bytes to come back, checks every byte and the time it took, and
 * sends the next message (a new sequence number, so a stale echo is caught).
 * After WARMUP_S seconds the counters restart; DURATION_S seconds later the
 * program prints one line (the last on stdout), read by netbench.py:
 *
 *   conns= size= secs= msgs= msgs_per_s= p50_us= p99_us= p999_us= max_us=
 *   errors= server_ticks= client_ticks= clk_tck= conn_min= conn_max=
 *
 * server_ticks is utime+stime of process PID (-p; all its threads) from
 * /proc/PID/stat, read at the first and the last instant of the measured
 * window, in clock ticks; client_ticks is the same for this process.
 * conn_min and conn_max are the fewest and most messages one connection
 * completed in the window: far apart, the server serves connections
 * unfairly (which also shows as a long latency tail).
 *
 * Why io_uring: one core must push as many messages as it can, so nothing
 * here costs a system call per message.  Every send of a loop iteration goes
 * in with one io_uring_submit_and_wait; receives are one multishot recv per
 * connection on a provided-buffer ring; successful sends post no completion
 * (IOSQE_CQE_SKIP_SUCCESS, with MSG_WAITALL so that the kernel finishes a
 * short send itself).  With one connection that is one system call per
 * round trip.  The clock is read twice per loop iteration, not per message:
 * a message's latency runs from just before the submit that carried its send
 * to just after the wait that returned its last echoed byte.
 *
 * Latencies go into a log-linear histogram (128 buckets per power of two,
 * under 1% error).  Exit status: 0, 1 if any connection failed or an echo
 * was wrong (the summary line is printed anyway), 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_SIZE 65536
#define BGID 7

/* --- latency histogram ------------------------------------------------- */

/* Values below 128 ns have a bucket each; above, each power of two
 * [2^e, 2^(e+1)) is split into 64 buckets by the 7 top bits.  Bucket
 * 64*(e-6) + (v >> (e-6)), which continues the linear part at 128. */
#define HIST_BUCKETS (64 * 58)

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_n, hist_max;

static unsigned hist_index(uint64_t v)
{
	if (v < 128)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned s = e - 6;
	return 64 * s + (unsigned)(v >> s);
}

/* The middle of bucket i, in ns. */
static double hist_value(unsigned i)
{
	if (i < 128)
		return i;
	unsigned s = i / 64 - 1;
	uint64_t lo = (uint64_t)(i % 64 + 64) << s;
	return (double)lo + (double)((uint64_t)1 << s) / 2.0;
}

static void hist_add(uint64_t ns)
{
	hist[hist_index(ns)]++;
	hist_n++;
	if (ns > hist_max)
		hist_max = ns;
}

/* The value at percentile p (0-100) in microseconds, or 0 without data. */
static double hist_pct_us(double p)
{
	if (!hist_n)
		return 0;
	uint64_t rank = (uint64_t)((p / 100.0) * (double)hist_n + 0.999999);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= rank)
			return hist_value(i) / 1000.0;
	}
	return (double)hist_max / 1000.0;
}

/* --- connections ------------------------------------------------------- */

struct conn {
	int fd;
	int dead;
	uint32_t got;     /* bytes of the current echo received so far */
	uint64_t seq;     /* sequence number of the message in flight */
	uint64_t sent_ns; /* when its send was submitted */
	uint64_t done;    /* messages completed in the window */
	unsigned char *tx; /* the message in flight: the echo must equal it */
};

static struct conn *conns;
static unsigned nconns, msg_size;
static struct io_uring ring;
static struct nb_bufring bufs;
static uint64_t msgs, errors;
static unsigned alive;

/* Sends queued since the last submit; their sent_ns is set at the submit. */
static struct conn **batch;
static unsigned nbatch;

enum { OP_RECV = 0, OP_SEND = 1 };

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(struct conn *c, const char *what, int err)
{
	if (c->dead)
		return;
	errors++;
	if (errors <= 10)
		fprintf(stderr, "netload: connection %ld: %s%s%s\n", (long)(c - conns), what,
			err ? ": " : "", err ? strerror(err) : "");
	c->dead = 1;
	alive--;
	/* Its multishot recv ends when the server sees the close and
	 * closes too; a late completion for a dead connection is ignored. */
	shutdown(c->fd, SHUT_RDWR);
}

static void arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, (uint64_t)(c - conns) << 1 | OP_RECV);
}

static int skip_send_cqe;

/* Writes message seq of connection c into c->tx and queues its send. */
static void send_next(struct conn *c)
{
	c->seq++;
	/* Bytes 0-7: sequence number; 8-11: connection; the rest a pattern
	 * that differs per connection and per message. */
	uint32_t id = (uint32_t)(c - conns);
	memcpy(c->tx, &c->seq, 8);
	memcpy(c->tx + 8, &id, 4);
	for (unsigned i = 12; i < msg_size; i++)
		c->tx[i] = (unsigned char)(i * 31u + id * 7u + (unsigned)c->seq);
	c->got = 0;
	struct io_uring_sqe *sqe = nb_get_sqe(&ring);
	io_uring_prep_send(sqe, c->fd, c->tx, msg_size, MSG_NOSIGNAL | MSG_WAITALL);
	if (skip_send_cqe)
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, (uint64_t)id << 1 | OP_SEND);
	batch[nbatch++] = c;
}

/* A completion; now is the time the wait returned. */
static void complete(struct io_uring_cqe *cqe, uint64_t now)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct conn *c = &conns[ud >> 1];
	int res = cqe->res;
	if ((ud & 1) == OP_SEND) {
		if (res < 0)
			fail(c, "send", -res);
		else if ((unsigned)res != msg_size)
			fail(c, "short send", 0);
		return;
	}
	if (res > 0) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		const unsigned char *data = nb_buf(&bufs, bid);
		if (!c->dead) {
			if (c->got + (unsigned)res > msg_size)
				fail(c, "more bytes echoed than sent", 0);
			else if (memcmp(c->tx + c->got, data, (size_t)res) != 0)
				fail(c, "echoed bytes differ from those sent", 0);
			else if ((c->got += (unsigned)res) == msg_size) {
				hist_add(now - c->sent_ns);
				msgs++;
				c->done++;
				send_next(c);
			}
		}
		nb_bufring_put(&bufs, bid);
	} else if (res == 0) {
		fail(c, "server closed the connection", 0);
		return;
	} else if (res != -ENOBUFS) {
		fail(c, "recv", -res);
		return;
	}
	/* Out of buffers, or the kernel ended the multishot: re-arm. */
	if (!(cqe->flags & IORING_CQE_F_MORE) && !c->dead)
		arm_recv(c);
}

/* utime+stime of pid (0: this process) in clock ticks, or -1. */
static long long cpu_ticks(long pid)
{
	char path[64], buf[1024];
	if (pid)
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* The command name may hold spaces and parentheses: fields restart
	 * after the last ')'.  utime and stime are fields 14 and 15. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	long long v[2] = {0, 0};
	for (int field = 3; field <= 15; field++) {
		while (*p == ' ')
			p++;
		if (field >= 14)
			v[field - 14] = strtoll(p, NULL, 10);
		while (*p && *p != ' ')
			p++;
	}
	return v[0] + v[1];
}

static void usage(void)
{
	fprintf(stderr, "usage: netload HOST:PORT [-c CONNS] [-s SIZE] [-w WARMUP_S] "
			"[-d DURATION_S] [-p SERVER_PID]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long c_opt = 50, s_opt = 64, pid = 0;
	double warm_s = 2, dur_s = 5;
	int opt;
	while ((opt = getopt(argc, argv, "c:s:w:d:p:")) != -1) {
		char *end = NULL;
		switch (opt) {
		case 'c': c_opt = strtol(optarg, &end, 10); break;
		case 's': s_opt = strtol(optarg, &end, 10); break;
		case 'p': pid = strtol(optarg, &end, 10); break;
		case 'w': warm_s = strtod(optarg, &end); break;
		case 'd': dur_s = strtod(optarg, &end); break;
		default: usage(); return 2;
		}
		if (*end)
			usage();
	}
	if (optind != argc - 1 || c_opt < 1 || c_opt > 1000000 || s_opt < 12 ||
	    s_opt > MAX_SIZE || warm_s < 0 || dur_s <= 0 || pid < 0)
		usage();
	nconns = (unsigned)c_opt;
	msg_size = (unsigned)s_opt;
	nb_raise_nofile();

	struct sockaddr_storage ss;
	socklen_t sl;
	if (nb_resolve("netload", argv[optind], 0, &ss, &sl) < 0)
		return 2;

	conns = calloc(nconns, sizeof(*conns));
	batch = calloc(nconns, sizeof(*batch));
	unsigned char *txmem = malloc((size_t)nconns * msg_size);
	if (!conns || !batch || !txmem) {
		fprintf(stderr, "netload: out of memory\n");
		return 1;
	}
	for (unsigned i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		c->tx = txmem + (size_t)i * msg_size;
		c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&ss, sl) < 0) {
			fprintf(stderr, "netload: connection %u of %u: %s\n", i, nconns,
				strerror(errno));
			return 1;
		}
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	alive = nconns;

	/* One SQE per connection per loop at most (its next send), plus
	 * re-armed recvs: nb_get_sqe submits early if that overflows. */
	unsigned sq = nb_pow2(nconns < 64 ? 64 : nconns);
	if (sq > 4096)
		sq = 4096;
	const char *mode = "";
	int rc = nb_ring_init(&ring, sq, 4 * nb_pow2(nconns < 256 ? 256 : nconns), &mode);
	if (rc < 0) {
		fprintf(stderr, "netload: io_uring setup: %s\n", strerror(-rc));
		return 1;
	}
	skip_send_cqe = (ring.features & IORING_FEAT_CQE_SKIP) != 0;
	/* Two buffers per connection is plenty in a closed loop (one echo
	 * outstanding each); ENOBUFS would only cost a re-arm. */
	unsigned nbuf = nb_pow2(2 * nconns < 256 ? 256 : 2 * nconns);
	if (nbuf > 32768)
		nbuf = 32768;
	rc = nb_bufring_init(&ring, &bufs, BGID, nbuf, (msg_size + 63) & ~63u);
	if (rc < 0) {
		fprintf(stderr, "netload: provided-buffer ring: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "netload: %u connections to %s, %u-byte messages, ring %s%s\n",
		nconns, argv[optind], msg_size, mode,
		skip_send_cqe ? ", send completions skipped" : "");

	for (unsigned i = 0; i < nconns; i++) {
		arm_recv(&conns[i]);
		send_next(&conns[i]);
	}

	uint64_t start = now_ns();
	uint64_t warm_end = start + (uint64_t)(warm_s * 1e9);
	uint64_t t0 = 0, t1 = 0;
	long long srv0 = 0, srv1 = 0, cli0 = 0, cli1 = 0;
	int measuring = 0;
	if (warm_s == 0) {
		measuring = 1;
		t0 = start;
		srv0 = pid ? cpu_ticks(pid) : 0;
		cli0 = cpu_ticks(0);
	}
	uint64_t end = (measuring ? t0 : warm_end) + (uint64_t)(dur_s * 1e9);

	for (;;) {
		uint64_t t = now_ns();
		for (unsigned i = 0; i < nbatch; i++)
			batch[i]->sent_ns = t;
		nbatch = 0;
		nb_bufring_publish(&bufs);
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY &&
		    rc != -ETIME) {
			fprintf(stderr, "netload: io_uring_submit_and_wait: %s\n", strerror(-rc));
			return 1;
		}
		uint64_t now = now_ns();
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			complete(cqe, now);
			seen++;
		}
		io_uring_cq_advance(&ring, seen);

		if (!measuring && now >= warm_end) {
			/* Restart the counters; messages in flight now count
			 * in the window, with their true latency. */
			memset(hist, 0, sizeof(hist));
			hist_n = hist_max = 0;
			msgs = 0;
			for (unsigned i = 0; i < nconns; i++)
				conns[i].done = 0;
			srv0 = pid ? cpu_ticks(pid) : 0;
			cli0 = cpu_ticks(0);
			t0 = now_ns();
			end = t0 + (uint64_t)(dur_s * 1e9);
			measuring = 1;
		} else if (measuring && now >= end) {
			srv1 = pid ? cpu_ticks(pid) : 0;
			cli1 = cpu_ticks(0);
			t1 = now_ns();
			break;
		}
		if (!alive) {
			fprintf(stderr, "netload: every connection failed\n");
			t1 = now_ns();
			if (!measuring)
				t0 = start;
			break;
		}
	}

	double secs = (double)(t1 - t0) / 1e9;
	uint64_t cmin = UINT64_MAX, cmax = 0;
	for (unsigned i = 0; i < nconns; i++) {
		cmin = conns[i].done < cmin ? conns[i].done : cmin;
		cmax = conns[i].done > cmax ? conns[i].done : cmax;
	}
	long long server_ticks = pid && srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1;
	printf("conns=%u size=%u secs=%.3f msgs=%llu msgs_per_s=%.1f p50_us=%.2f "
	       "p99_us=%.2f p999_us=%.2f max_us=%.2f errors=%llu server_ticks=%lld "
	       "client_ticks=%lld clk_tck=%ld conn_min=%llu conn_max=%llu\n",
	       nconns, msg_size, secs, (unsigned long long)msgs,
	       secs > 0 ? (double)msgs / secs : 0.0, hist_pct_us(50), hist_pct_us(99),
	       hist_pct_us(99.9), (double)hist_max / 1000.0, (unsigned long long)errors,
	       server_ticks, cli1 - cli0, sysconf(_SC_CLK_TCK), (unsigned long long)cmin,
	       (unsigned long long)cmax);
	fflush(stdout);
	return errors ? 1 : 0;
}
