// SPDX-License-Identifier: MIT
/*
 * select_test.cc - weft_chan_select and weft_chan_tryselect (runtime/chan.c)
 * inside two-worker runtimes:
 *  - bad arguments are refused before anything is done; NULL channels never
 *    go; the try twin says -EAGAIN when nothing can go;
 *  - a select takes whichever case goes first, receive or send, buffered or
 *    rendezvous, and a close wakes it with that case and -EPIPE;
 *  - a select that times out or is cancelled took nothing, and leaves no
 *    record of its own on any channel, even after its stack is reused; a
 *    record left behind for a moment is no peer to anyone;
 *  - of cases that can all go, each is chosen about as often;
 *  - selecting senders and receivers, plain ones beside them, on channels
 *    shared across workers, with deadlines cutting waits short: every
 *    message that a send reported sent is received exactly once, and no
 *    other.
 */
#include <atomic>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "common.h"

namespace {

using Chan = std::unique_ptr<weft_chan, decltype(&weft_chan_free)>;

Chan make_chan(size_t capacity)
{
	return Chan(weft_chan_new(sizeof(long), capacity), &weft_chan_free);
}

weft_chan_case recv_case(weft_chan *ch, long *v)
{
	return {ch, v, WEFT_CHAN_RECV, 1};
}

weft_chan_case send_case(weft_chan *ch, long *v)
{
	return {ch, v, WEFT_CHAN_SEND, 1};
}

TEST(SelectTest, BadArgumentsAreRefusedBeforeAnythingIsDone)
{
	run_in_weft(2, [] {
		Chan a = make_chan(1), b = make_chan(1);
		long v = 7, w = 0;
		weft_chan_case cs[WEFT_CHAN_SELECT_MAX + 1];
		for (auto &c : cs)
			c = send_case(b.get(), &v);
		EXPECT_EQ(weft_chan_select(cs, 0), -EINVAL);
		EXPECT_EQ(weft_chan_tryselect(cs, WEFT_CHAN_SELECT_MAX + 1), -EINVAL);
		weft_chan_case bad_op[] = {send_case(a.get(), &v), {b.get(), &w, 3, 1}};
		EXPECT_EQ(weft_chan_select(bad_op, 2), -EINVAL);
		/* One channel both sent on and received from. */
		weft_chan_case both[] = {send_case(a.get(), &v), recv_case(b.get(), &w),
					 recv_case(a.get(), &w)};
		EXPECT_EQ(weft_chan_select(both, 3), -EINVAL);
		EXPECT_EQ(weft_chan_tryrecv(a.get(), &w), -EAGAIN) << "a refused select sent";
		/* The same channel in two cases of one kind is fine. */
		weft_chan_case twice[] = {send_case(a.get(), &v), send_case(a.get(), &v)};
		EXPECT_GE(weft_chan_select(twice, 2), 0);
		EXPECT_EQ(weft_chan_tryrecv(a.get(), &w), 0);
		EXPECT_EQ(weft_chan_tryrecv(a.get(), &w), -EAGAIN) << "both cases went";
		return (intptr_t)0;
	});
}

TEST(SelectTest, TrySelectTakesTheCaseThatCanGoAndSkipsNullChannels)
{
	run_in_weft(2, [] {
		Chan a = make_chan(2), b = make_chan(2);
		long va = -1, vb = -1;
		weft_chan_case cs[] = {recv_case(a.get(), &va), {nullptr, &va, WEFT_CHAN_RECV, 1},
				       recv_case(b.get(), &vb)};
		EXPECT_EQ(weft_chan_tryselect(cs, 3), -EAGAIN);
		long m = 42;
		EXPECT_EQ(weft_chan_trysend(b.get(), &m), 0);
		EXPECT_EQ(weft_chan_tryselect(cs, 3), 2);
		EXPECT_EQ(cs[2].result, 0);
		EXPECT_EQ(vb, 42);
		EXPECT_EQ(va, -1);
		EXPECT_EQ(weft_chan_tryselect(cs, 3), -EAGAIN);
		/* A send case on a channel with room. */
		weft_chan_case sc[] = {send_case(a.get(), &m)};
		EXPECT_EQ(weft_chan_tryselect(sc, 1), 0);
		EXPECT_EQ(weft_chan_tryrecv(a.get(), &va), 0);
		EXPECT_EQ(va, 42);
		return (intptr_t)0;
	});
}

TEST(SelectTest, WaitsForWhicheverCaseGoesFirst)
{
	for (size_t cap : {0, 1}) {
		run_in_weft(2, [&] {
			Chan a = make_chan(cap), b = make_chan(cap), full = make_chan(1);
			long x = 100;
			/* full has no room, so its send case waits like the receives. */
			EXPECT_EQ(weft_chan_trysend(full.get(), &x), 0);
			for (int which = 0; which < 3; which++) {
				long va = -1, vb = -1, out = 50 + which;
				weft_chan_case cs[] = {recv_case(a.get(), &va), recv_case(b.get(), &vb),
						       send_case(full.get(), &out)};
				std::atomic<int> arrived{0};
				struct weft_task *t = go_and_let_park(arrived, [&] {
					arrived++;
					return (intptr_t)weft_chan_select(cs, 3);
				});
				long m = 10 + which, got = -1;
				if (which == 0)
					EXPECT_EQ(weft_chan_send(a.get(), &m), 0);
				else if (which == 1)
					EXPECT_EQ(weft_chan_send(b.get(), &m), 0);
				else
					EXPECT_EQ(weft_chan_recv(full.get(), &got), 0);
				EXPECT_EQ(join(t), which) << "capacity " << cap;
				EXPECT_EQ(cs[which].result, 0);
				EXPECT_EQ(va, which == 0 ? m : -1);
				EXPECT_EQ(vb, which == 1 ? m : -1);
				if (which == 2) {
					/* The old message came out, the select's went in. */
					EXPECT_EQ(got, 100);
					EXPECT_EQ(weft_chan_tryrecv(full.get(), &x), 0);
					EXPECT_EQ(x, 52);
					x = 100;
					EXPECT_EQ(weft_chan_trysend(full.get(), &x), 0);
				}
				/* Exactly one case went: nothing else moved. */
				EXPECT_EQ(weft_chan_trysend(a.get(), &m), cap ? 0 : -EAGAIN);
				EXPECT_EQ(weft_chan_trysend(b.get(), &m), cap ? 0 : -EAGAIN);
				if (cap) {
					EXPECT_EQ(weft_chan_tryrecv(a.get(), &m), 0);
					EXPECT_EQ(weft_chan_tryrecv(b.get(), &m), 0);
				}
			}
			return (intptr_t)0;
		});
	}
}

TEST(SelectTest, CloseWakesTheSelectWithThatCaseAndEPIPE)
{
	run_in_weft(2, [] {
		Chan a = make_chan(0), b = make_chan(0);
		long va = -1, vb = -1;
		weft_chan_case cs[] = {recv_case(a.get(), &va), send_case(b.get(), &vb)};
		std::atomic<int> arrived{0};
		struct weft_task *t = go_and_let_park(arrived, [&] {
			arrived++;
			return (intptr_t)weft_chan_select(cs, 2);
		});
		EXPECT_EQ(weft_chan_close(b.get()), 0);
		EXPECT_EQ(join(t), 1);
		EXPECT_EQ(cs[1].result, -EPIPE);
		/* A closed channel can go at once: the select does not park. */
		cs[1].result = 1;
		EXPECT_EQ(weft_chan_select(cs, 2), 1);
		EXPECT_EQ(cs[1].result, -EPIPE);
		EXPECT_EQ(weft_chan_close(a.get()), 0);
		weft_chan_case r[] = {recv_case(a.get(), &va)};
		EXPECT_EQ(weft_chan_select(r, 1), 0);
		EXPECT_EQ(r[0].result, -EPIPE);
		return (intptr_t)0;
	});
}

/* Overwrites the stack below the caller's frame, where a returned select's
 * records were. */
__attribute__((noinline)) void scribble(void)
{
	volatile unsigned char junk[16384];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = 0xa5;
}

TEST(SelectTest, ATimedOutOrCancelledSelectTookNothingAndLeftNothingQueued)
{
	run_in_weft(2, [] {
		Chan a = make_chan(0), b = make_chan(0);
		long va = -1, vb = -1;
		weft_chan_case cs[] = {recv_case(a.get(), &va), recv_case(b.get(), &vb)};
		struct weft_scope s;
		weft_scope_deadline(&s, 10 * WEFT_MSEC);
		EXPECT_EQ(weft_chan_select(cs, 2), -ETIMEDOUT);
		weft_scope_end(&s);
		scribble();
		/* A record left on a or b would be claimed here, through the
		 * junk now where it was. */
		long m = 1;
		EXPECT_EQ(weft_chan_trysend(a.get(), &m), -EAGAIN);
		EXPECT_EQ(weft_chan_trysend(b.get(), &m), -EAGAIN);
		EXPECT_EQ(va, -1);
		EXPECT_EQ(vb, -1);

		std::atomic<int> arrived{0};
		struct weft_task *t = go_and_let_park(arrived, [&] {
			arrived++;
			int rc = weft_chan_select(cs, 2);
			scribble();
			return (intptr_t)rc;
		});
		weft_cancel(t);
		EXPECT_EQ(join(t), -ECANCELED);
		EXPECT_EQ(weft_chan_trysend(a.get(), &m), -EAGAIN);
		EXPECT_EQ(weft_chan_trysend(b.get(), &m), -EAGAIN);
		return (intptr_t)0;
	});
}

/* A select's record left on a channel after another of its cases won, until
 * the select runs again to take it off, is a stale waiter: it must not
 * count as a peer.  One worker, so the woken select waits for us. */
TEST(SelectTest, AQueueOfOnlyStaleWaitersIsNoPeer)
{
	run_in_weft(1, [] {
		Chan a = make_chan(0), b = make_chan(0);
		long va = -1, vb = -1;
		weft_chan_case cs[] = {recv_case(a.get(), &va), recv_case(b.get(), &vb)};
		std::atomic<int> arrived{0};
		struct weft_task *t = go_and_let_park(arrived, [&] {
			arrived++;
			return (intptr_t)weft_chan_select(cs, 2);
		});
		long m = 5;
		EXPECT_EQ(weft_chan_trysend(b.get(), &m), 0);
		/* t is readied but has not run: its record on a is stale. */
		weft_chan_case mine[] = {send_case(a.get(), &m)};
		struct weft_scope s;
		weft_scope_deadline(&s, 5 * WEFT_MSEC);
		EXPECT_EQ(weft_chan_select(mine, 1), -ETIMEDOUT);
		weft_scope_end(&s);
		EXPECT_EQ(join(t), 1);
		EXPECT_EQ(vb, 5);
		EXPECT_EQ(va, -1);
		return (intptr_t)0;
	});
}

TEST(SelectTest, CasesThatCanAllGoAreChosenAboutEquallyOften)
{
	run_in_weft(2, [] {
		const int rounds = 4000;
		Chan a = make_chan(1), b = make_chan(1), c = make_chan(1);
		weft_chan *chans[] = {a.get(), b.get(), c.get()};
		long v = 0;
		int won[3] = {};
		for (int i = 0; i < rounds; i++) {
			for (weft_chan *ch : chans)
				(void)weft_chan_trysend(ch, &v); /* refill: full again */
			weft_chan_case cs[] = {recv_case(a.get(), &v), recv_case(b.get(), &v),
					       recv_case(c.get(), &v)};
			int k = weft_chan_select(cs, 3);
			EXPECT_GE(k, 0);
			if (k < 0)
				return (intptr_t)k;
			won[k]++;
		}
		for (int k = 0; k < 3; k++)
			EXPECT_GT(won[k], rounds / 5) << "case " << k << " starved";
		return (intptr_t)0;
	});
}

/*
 * The exactly-once property under contention.  Messages are numbered; each
 * producer sends its own range, each through a select over every channel
 * (or a plain send to one, or a select cut short by a deadline), and counts
 * what was reported sent; consumers do the same with receives.  At the end
 * every number sent was received once and nothing else was.
 */
TEST(SelectTest, SelectingSendersAndReceiversAcrossWorkersMoveEachMessageOnce)
{
	const long per_producer = WEFT_TEST_SCALE(100000);
	const int producers = 3, consumers = 3, nchans = 3;
	for (size_t cap : {0, 2}) {
		run_in_weft(2, [&] {
			std::vector<Chan> chans;
			for (int i = 0; i < nchans; i++)
				chans.push_back(make_chan(cap));
			std::vector<std::vector<long>> sent(producers), got(consumers);
			std::atomic<int> producing{producers};
			std::vector<struct weft_task *> ts;
			for (int p = 0; p < producers; p++)
				ts.push_back(go([&, p] {
					std::mt19937 rng(p);
					for (long n = 0; n < per_producer; n++) {
						long m = p * per_producer + n;
						int rc;
						unsigned how = rng() % 8;
						if (how == 0) {
							rc = weft_chan_send(chans[rng() % nchans].get(), &m);
						} else {
							weft_chan_case cs[nchans];
							for (int i = 0; i < nchans; i++)
								cs[i] = send_case(chans[i].get(), &m);
							struct weft_scope s;
							weft_scope_deadline(&s, how < 3 ? rng() % (4 * WEFT_USEC)
											: WEFT_NEVER);
							rc = weft_chan_select(cs, nchans);
							weft_scope_end(&s);
							if (rc >= 0)
								rc = cs[rc].result;
						}
						if (rc == 0)
							sent[p].push_back(m);
						else if (rc != -ETIMEDOUT)
							return (intptr_t)rc;
					}
					if (--producing == 0)
						for (auto &ch : chans)
							weft_chan_close(ch.get());
					return (intptr_t)0;
				}));
			for (int c = 0; c < consumers; c++)
				ts.push_back(go([&, c] {
					std::mt19937 rng(100 + c);
					int open = nchans;
					std::vector<bool> closed(nchans);
					while (open) {
						long m = -1;
						weft_chan_case cs[nchans];
						for (int i = 0; i < nchans; i++)
							cs[i] = recv_case(closed[i] ? nullptr : chans[i].get(),
									  &m);
						struct weft_scope s;
						weft_scope_deadline(&s, rng() % 4 == 0 ? rng() % (4 * WEFT_USEC)
										       : WEFT_NEVER);
						int k = weft_chan_select(cs, nchans);
						weft_scope_end(&s);
						if (k == -ETIMEDOUT)
							continue;
						if (k < 0)
							return (intptr_t)k;
						if (cs[k].result == -EPIPE) {
							closed[k] = true;
							open--;
						} else {
							got[c].push_back(m);
						}
					}
					return (intptr_t)0;
				}));
			for (auto *t : ts)
				EXPECT_EQ(join(t), 0);
			std::vector<int> seen(producers * per_producer);
			long sent_n = 0, extra = 0, twice = 0, missing = 0;
			for (auto &v : got)
				for (long m : v) {
					if (m < 0 || m >= (long)seen.size())
						extra++;
					else
						twice += seen[m]++ > 0;
				}
			for (auto &v : sent)
				for (long m : v) {
					sent_n++;
					missing += seen[m] == 0;
					seen[m] = -1; /* accounted for */
				}
			for (int s : seen)
				extra += s > 0;
			EXPECT_GT(sent_n, per_producer) << "capacity " << cap;
			EXPECT_EQ(missing, 0) << "capacity " << cap;
			EXPECT_EQ(twice, 0) << "capacity " << cap;
			EXPECT_EQ(extra, 0) << "capacity " << cap << ": received, never reported sent";
			return (intptr_t)0;
		});
	}
}

} // namespace
