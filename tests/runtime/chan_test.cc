// SPDX-License-Identifier: MIT
/*
 * chan_test.cc - the bounded MPMC channel (runtime/chan.c) inside two-worker
 * runtimes:
 *  - messages keep FIFO order; capacity 0 is a rendezvous; a buffered
 *    channel takes `capacity` messages without a receiver; the try twins
 *    say -EAGAIN instead of parking;
 *  - close: sends fail, receivers drain then get -EPIPE, parked tasks wake;
 *  - many producers and consumers across workers: every message is received
 *    exactly once;
 *  - cancellation and deadlines of blocked operations, and the guarantee
 *    that a completed hand-off is never reported as cancelled;
 *  - a cross-worker ping-pong of a million messages finishes, with workers
 *    sleeping and being woken all along (no lost wake-up).
 */
#include <pthread.h>

#include <atomic>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "common.h"

namespace {

using Chan = std::unique_ptr<weft_chan, decltype(&weft_chan_free)>;

Chan make_chan(size_t capacity, size_t elem = sizeof(long))
{
	return Chan(weft_chan_new(elem, capacity), &weft_chan_free);
}


TEST(ChanTest, NewRejectsZeroElemSize)
{
	EXPECT_EQ(weft_chan_new(0, 4), nullptr);
}

TEST(ChanTest, KeepsFifoOrderBufferedAndRendezvous)
{
	const long n = WEFT_TEST_SCALE(100000);
	for (size_t cap : {0, 1, 7}) {
		run_in_weft(2, [&] {
			Chan ch = make_chan(cap);
			struct weft_task *p = go([&] {
				for (long i = 0; i < n; i++)
					EXPECT_EQ(weft_chan_send(ch.get(), &i), 0);
				return (intptr_t)0;
			});
			long bad = 0;
			for (long i = 0; i < n; i++) {
				long v = -1;
				EXPECT_EQ(weft_chan_recv(ch.get(), &v), 0);
				bad += v != i;
			}
			EXPECT_EQ(bad, 0) << "capacity " << cap;
			join(p);
			return (intptr_t)0;
		});
	}
}

TEST(ChanTest, RendezvousSendWaitsForReceiver)
{
	run_in_weft(2, [] {
		Chan ch = make_chan(0);
		long v = 5;
		EXPECT_EQ(weft_chan_trysend(ch.get(), &v), -EAGAIN); /* nobody receives */
		std::atomic<bool> sent{false};
		struct weft_task *s = go([&] {
			long x = 11;
			int rc = weft_chan_send(ch.get(), &x);
			sent = true;
			return (intptr_t)rc;
		});
		weft_sleep(20 * WEFT_MSEC);
		EXPECT_FALSE(sent.load()) << "send returned with no receiver";
		EXPECT_EQ(weft_chan_recv(ch.get(), &v), 0);
		EXPECT_EQ(v, 11);
		EXPECT_EQ(join(s), 0);
		EXPECT_TRUE(sent.load());
		/* And a parked receiver takes a trysend. */
		std::atomic<int> arrived{0};
		struct weft_task *r = go_and_let_park(arrived, [&] {
			long x = 0;
			arrived++;
			EXPECT_EQ(weft_chan_recv(ch.get(), &x), 0);
			return (intptr_t)x;
		});
		v = 12;
		EXPECT_EQ(weft_chan_trysend(ch.get(), &v), 0);
		EXPECT_EQ(join(r), 12);
		return (intptr_t)0;
	});
}

TEST(ChanTest, BufferedTakesCapacityThenBlocksSenderBehindBuffer)
{
	run_in_weft(2, [] {
		Chan ch = make_chan(3);
		long v;
		EXPECT_EQ(weft_chan_tryrecv(ch.get(), &v), -EAGAIN);
		for (v = 0; v < 3; v++)
			EXPECT_EQ(weft_chan_trysend(ch.get(), &v), 0);
		EXPECT_EQ(weft_chan_trysend(ch.get(), &v), -EAGAIN);
		std::atomic<bool> sent{false};
		struct weft_task *s = go([&] {
			long x = 3;
			int rc = weft_chan_send(ch.get(), &x);
			sent = true;
			return (intptr_t)rc;
		});
		weft_sleep(10 * WEFT_MSEC);
		EXPECT_FALSE(sent.load()) << "send returned on a full channel";
		/* Making room moves the parked sender's message in, at the tail. */
		for (long i = 0; i < 4; i++) {
			EXPECT_EQ(weft_chan_recv(ch.get(), &v), 0);
			EXPECT_EQ(v, i);
		}
		EXPECT_EQ(join(s), 0);
		EXPECT_EQ(weft_chan_tryrecv(ch.get(), &v), -EAGAIN);
		return (intptr_t)0;
	});
}

TEST(ChanTest, CloseFailsSendsDrainsThenReportsEPIPE)
{
	run_in_weft(2, [] {
		Chan ch = make_chan(4);
		long v = 1;
		EXPECT_EQ(weft_chan_send(ch.get(), &v), 0);
		v = 2;
		EXPECT_EQ(weft_chan_send(ch.get(), &v), 0);
		EXPECT_EQ(weft_chan_close(ch.get()), 0);
		EXPECT_EQ(weft_chan_close(ch.get()), -EPIPE);
		EXPECT_EQ(weft_chan_send(ch.get(), &v), -EPIPE);
		EXPECT_EQ(weft_chan_trysend(ch.get(), &v), -EPIPE);
		EXPECT_EQ(weft_chan_recv(ch.get(), &v), 0);
		EXPECT_EQ(v, 1);
		EXPECT_EQ(weft_chan_tryrecv(ch.get(), &v), 0);
		EXPECT_EQ(v, 2);
		EXPECT_EQ(weft_chan_recv(ch.get(), &v), -EPIPE);
		EXPECT_EQ(weft_chan_tryrecv(ch.get(), &v), -EPIPE);
		return (intptr_t)0;
	});
}

TEST(ChanTest, CloseWakesParkedReceiversAndSendersWithEPIPE)
{
	run_in_weft(2, [] {
		std::atomic<int> arrived{0};
		Chan empty = make_chan(0);
		std::vector<struct weft_task *> rs;
		for (int i = 0; i < 3; i++)
			rs.push_back(go_and_let_park(arrived, [&] {
				long x;
				arrived++;
				return (intptr_t)weft_chan_recv(empty.get(), &x);
			}));
		EXPECT_EQ(weft_chan_close(empty.get()), 0);
		for (auto *t : rs)
			EXPECT_EQ(join(t), -EPIPE);

		Chan full = make_chan(1);
		long v = 0;
		EXPECT_EQ(weft_chan_send(full.get(), &v), 0);
		std::vector<struct weft_task *> ss;
		for (int i = 0; i < 3; i++)
			ss.push_back(go_and_let_park(arrived, [&] {
				long x = 9;
				arrived++;
				return (intptr_t)weft_chan_send(full.get(), &x);
			}));
		EXPECT_EQ(weft_chan_close(full.get()), 0);
		for (auto *t : ss)
			EXPECT_EQ(join(t), -EPIPE);
		/* The buffered message survives the close; the refused ones
		 * were never sent. */
		EXPECT_EQ(weft_chan_recv(full.get(), &v), 0);
		EXPECT_EQ(v, 0);
		EXPECT_EQ(weft_chan_recv(full.get(), &v), -EPIPE);
		return (intptr_t)0;
	});
}

TEST(ChanTest, ManyProducersConsumersAcrossWorkersDeliverEachMessageOnce)
{
	const int producers = 4, consumers = 4;
	const long per = WEFT_TEST_SCALE(50000), total = producers * per;
	for (size_t cap : {0, 16}) {
		run_in_weft(2, [&] {
			Chan ch = make_chan(cap);
			std::vector<std::atomic<uint8_t>> seen(total);
			std::atomic<long> count{0}, sum{0};
			std::vector<struct weft_task *> ps, cs;
			for (int c = 0; c < consumers; c++)
				cs.push_back(go([&] {
					long v;
					while (weft_chan_recv(ch.get(), &v) == 0) {
						seen[v]++;
						count++;
						sum += v;
					}
					return (intptr_t)0;
				}));
			for (int p = 0; p < producers; p++)
				ps.push_back(go([&, p] {
					for (long i = p * per; i < (p + 1) * per; i++)
						EXPECT_EQ(weft_chan_send(ch.get(), &i), 0);
					return (intptr_t)0;
				}));
			for (auto *t : ps)
				join(t);
			EXPECT_EQ(weft_chan_close(ch.get()), 0);
			for (auto *t : cs)
				join(t);
			EXPECT_EQ(count.load(), total) << "capacity " << cap;
			EXPECT_EQ(sum.load(), total * (total - 1) / 2);
			long wrong = 0;
			for (auto &s : seen)
				wrong += s.load() != 1;
			EXPECT_EQ(wrong, 0);
			return (intptr_t)0;
		});
	}
}

TEST(ChanTest, CancelledRecvAndSendReturnECANCELEDAndChannelStaysUsable)
{
	run_in_weft(2, [] {
		Chan ch = make_chan(0);
		std::atomic<int> arrived{0};
		struct weft_task *r = go_and_let_park(arrived, [&] {
			long x;
			arrived++;
			return (intptr_t)weft_chan_recv(ch.get(), &x);
		});
		weft_cancel(r);
		EXPECT_EQ(join(r), -ECANCELED);
		long v = 1;
		/* The cancelled receiver is gone: nobody to take a trysend. */
		EXPECT_EQ(weft_chan_trysend(ch.get(), &v), -EAGAIN);

		struct weft_task *s = go_and_let_park(arrived, [&] {
			long x = 77;
			arrived++;
			return (intptr_t)weft_chan_send(ch.get(), &x);
		});
		weft_cancel(s);
		EXPECT_EQ(join(s), -ECANCELED);
		EXPECT_EQ(weft_chan_tryrecv(ch.get(), &v), -EAGAIN) << "cancelled send delivered";

		/* Still a working rendezvous in both directions. */
		s = go([&] {
			long x = 78;
			return (intptr_t)weft_chan_send(ch.get(), &x);
		});
		EXPECT_EQ(weft_chan_recv(ch.get(), &v), 0);
		EXPECT_EQ(v, 78);
		EXPECT_EQ(join(s), 0);
		return (intptr_t)0;
	});
}

TEST(ChanTest, DeadlineMakesBlockedRecvTimeOut)
{
	run_in_weft(2, [] {
		Chan ch = make_chan(2);
		struct weft_scope s;
		long v;
		uint64_t t0 = weft_now();
		weft_scope_deadline(&s, 20 * WEFT_MSEC);
		EXPECT_EQ(weft_chan_recv(ch.get(), &v), -ETIMEDOUT);
		EXPECT_EQ(weft_scope_end(&s), 1);
		EXPECT_GE(weft_now() - t0, 20 * WEFT_MSEC);
		/* The timed-out receiver left the queue: a send buffers. */
		v = 3;
		EXPECT_EQ(weft_chan_trysend(ch.get(), &v), 0);
		EXPECT_EQ(weft_chan_recv(ch.get(), &v), 0);
		EXPECT_EQ(v, 3);
		return (intptr_t)0;
	});
}

/*
 * Rounds of one sender and one receiver, cancelled at a random moment while
 * hand-offs are in flight.  The main task spins (so the other worker steals
 * both and runs them while we cancel from here, truly in parallel), waits
 * until messages flow, then cancels both in a random order.  The sender
 * sends base, base + 1, ... until a send fails, so exactly [base, base + k)
 * were sent (rc 0); what was received, plus whatever is left buffered, must
 * be exactly that, in order: nothing reported sent is lost, nothing reported
 * cancelled arrives, nothing arrives twice.
 */
TEST(ChanTest, CompletedHandOffIsNeverReportedCancelled)
{
	const int rounds = WEFT_TEST_SCALE(20000);
	for (size_t cap : {0, 1}) {
		run_in_weft(2, [&] {
			Chan ch = make_chan(cap);
			std::mt19937 rng(1234);
			long base = 0, lost = 0, mismatches = 0;
			for (int round = 0; round < rounds; round++) {
				std::atomic<long> sent{0}, received{0};
				std::vector<long> got;
				struct weft_task *s = go([&] {
					for (long v = base;; v++) {
						int rc = weft_chan_send(ch.get(), &v);
						if (rc != 0)
							return (intptr_t)rc;
						sent++;
					}
				});
				struct weft_task *r = go([&] {
					for (;;) {
						long v;
						int rc = weft_chan_recv(ch.get(), &v);
						if (rc != 0)
							return (intptr_t)rc;
						got.push_back(v);
						received++;
					}
				});
				long flowing = 1 + (long)(rng() % 16);
				uint64_t give_up = weft_now() + 20 * WEFT_MSEC;
				while (received.load() < flowing && weft_now() < give_up)
					;
				uint64_t until = weft_now() + rng() % (2 * WEFT_USEC);
				while (weft_now() < until)
					;
				bool sender_first = rng() & 1;
				weft_cancel(sender_first ? s : r);
				weft_cancel(sender_first ? r : s);
				EXPECT_EQ(join(s), -ECANCELED);
				EXPECT_EQ(join(r), -ECANCELED);
				long v;
				while (weft_chan_tryrecv(ch.get(), &v) == 0)
					got.push_back(v);
				lost += (long)got.size() != sent.load();
				for (size_t i = 0; i < got.size(); i++)
					mismatches += got[i] != base + (long)i;
				base += sent.load() + 1; /* skip the value that failed */
			}
			EXPECT_EQ(lost, 0) << "capacity " << cap;
			EXPECT_EQ(mismatches, 0) << "capacity " << cap;
			return (intptr_t)0;
		});
	}
}

/*
 * Two pinned tasks on different workers bounce a message back and forth.
 * Mostly the idle worker is still polling when the next message comes; but
 * every PAUSE_EVERY round trips the pinger sleeps for longer than the
 * polling lasts, so both workers go to sleep in their rings and the next
 * send must wake the receiver's worker.  A lost wake-up hangs the test; the
 * park count shows the sleeping path was taken thousands of times.
 */
TEST(ChanTest, CrossWorkerPingPongOfAMillionMessagesFinishes)
{
	struct State {
		Chan ping = make_chan(0), pong = make_chan(0);
		long round_trips = WEFT_TEST_SCALE(1000000) / 2;
		pthread_t threads[2];
	} st;
	const long PAUSE_EVERY = 64;
	const uint64_t SPIN = 20 * WEFT_USEC, PAUSE = 3 * SPIN;
	struct weft_opts o = {};
	o.workers = 2;
	o.idle_spin_ns = SPIN;
	struct weft_rt *rt = nullptr;
	ASSERT_EQ(weft_rt_new(&rt, &o), 0);
	struct weft_rt_stats before, after;
	weft_rt_stats(rt, &before);
	intptr_t res = -1;
	ASSERT_EQ(weft_rt_run(
			  rt,
			  [](void *a) -> intptr_t {
				  State &st = *static_cast<State *>(a);
				  /* The main task spins, so the other worker must steal
				   * the launcher: the two sides end up on different
				   * workers, each pinned to its own. */
				  std::atomic<bool> started{false};
				  struct weft_task *l = go([&] {
					  started = true;
					  st.threads[1] = pthread_self();
					  return join(go(
						  [&] {
							  long v;
							  for (long i = 0; i < st.round_trips; i++)
								  if (weft_chan_recv(st.ping.get(), &v) ||
								      weft_chan_send(st.pong.get(), &v))
									  return (intptr_t)-1;
							  return (intptr_t)0;
						  },
						  WEFT_SPAWN_PINNED));
				  });
				  while (!started.load())
					  ;
				  st.threads[0] = pthread_self();
				  struct weft_task *p = go(
					  [&] {
						  for (long i = 0; i < st.round_trips; i++) {
							  long v = i;
							  if (i % PAUSE_EVERY == 0)
								  weft_sleep(PAUSE);
							  if (weft_chan_send(st.ping.get(), &v) ||
							      weft_chan_recv(st.pong.get(), &v) || v != i)
								  return (intptr_t)-1;
						  }
						  return (intptr_t)0;
					  },
					  WEFT_SPAWN_PINNED);
				  EXPECT_EQ(join(p), 0);
				  EXPECT_EQ(join(l), 0);
				  return (intptr_t)0;
			  },
			  &st, &res),
		  0);
	EXPECT_EQ(res, 0);
	EXPECT_FALSE(pthread_equal(st.threads[0], st.threads[1])) << "both sides on one worker";
	weft_rt_stats(rt, &after);
	EXPECT_GE(after.parks - before.parks, (uint64_t)WEFT_TEST_SCALE(10000));
	EXPECT_EQ(weft_rt_shutdown(rt, 2 * WEFT_SEC), 0);
}

} // namespace
