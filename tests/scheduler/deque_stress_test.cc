// SPDX-License-Identifier: MIT
// Concurrency stress for the work-stealing deque (scheduler/deque.c): one
// owner pushing and popping while three thieves steal. Every item must be
// taken exactly once, which catches lost items (e.g. a push into a retired
// array) and duplicates (e.g. a slot read after the CAS, or the owner and a
// thief both taking the last item).
#include "scheduler/deque.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace {

// Sanitizers slow the race down by 10-50x; keep each test to a few seconds.
// (Nested because gcc 12 has no __has_feature and rejects it even behind &&.)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEFT_DEQUE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEFT_DEQUE_TEST_SANITIZED 1
#endif
#endif
#ifdef WEFT_DEQUE_TEST_SANITIZED
constexpr uintptr_t kScaleDown = 100;
#else
constexpr uintptr_t kScaleDown = 1;
#endif

constexpr int kThieves = 3;

using DequePtr = std::unique_ptr<weft__deque, decltype(&weft__deque_free)>;

// Items must be non-NULL with the low bit clear; encode i as 2 * (i + 1).
void *Item(uintptr_t i) { return reinterpret_cast<void *>((i + 1) << 1); }

// How many times each item was taken, by anyone.
class Tally {
public:
    explicit Tally(uintptr_t items) : counts_(items) {}

    void Take(void *p)
    {
        const uintptr_t v = reinterpret_cast<uintptr_t>(p);
        if (v == 0 || (v & 1) != 0 || (v >> 1) > counts_.size())
            malformed_.fetch_add(1, std::memory_order_relaxed);
        else
            counts_[(v >> 1) - 1].fetch_add(1, std::memory_order_relaxed);
    }

    // Call after joining every taker.
    void ExpectEachTakenOnce() const
    {
        EXPECT_EQ(malformed_.load(), 0u);
        uintptr_t wrong = 0, first_wrong = 0;
        uint32_t first_count = 0;
        for (uintptr_t i = 0; i < counts_.size(); i++) {
            const uint32_t c = counts_[i].load(std::memory_order_relaxed);
            if (c != 1 && wrong++ == 0) {
                first_wrong = i;
                first_count = c;
            }
        }
        EXPECT_EQ(wrong, 0u) << "item " << first_wrong << " was taken " << first_count << " times";
    }

private:
    std::vector<std::atomic<uint32_t>> counts_;
    std::atomic<uint64_t> malformed_{0};
};

// Steals until the owner says it has drained the deque for good. Returns the
// number of items this thief took. With yield_when_empty, an empty deque makes
// the thief give up its core (2 cores, 4 threads) so the owner can push.
uint64_t RunThief(weft__deque *d, Tally &tally, const std::atomic<bool> &owner_done, bool yield_when_empty)
{
    uint64_t taken = 0;
    for (;;) {
        void *p = weft__deque_steal(d);
        if (p == WEFT__DEQUE_ABORT)
            continue; // lost a race: there may be more right away
        if (p != nullptr) {
            tally.Take(p);
            taken++;
            continue;
        }
        // Acquire pairs with the owner's release store: it pushes nothing
        // after its final pop found the deque empty.
        if (owner_done.load(std::memory_order_acquire))
            return taken;
        if (yield_when_empty)
            std::this_thread::yield();
    }
}

TEST(DequeStressTest, OwnerPushPopWithThreeThievesTakesEveryItemExactlyOnce)
{
    const uintptr_t items = 2000000 / kScaleDown;
    DequePtr d(weft__deque_new(1), &weft__deque_free); // capacity 2: grows during the race
    ASSERT_NE(d, nullptr);
    Tally tally(items);
    std::atomic<bool> owner_done{false};
    std::vector<uint64_t> stolen(kThieves);
    std::vector<std::thread> thieves;
    for (int i = 0; i < kThieves; i++)
        thieves.emplace_back([&, i] { stolen[i] = RunThief(d.get(), tally, owner_done, true); });

    // Owner: bursts of 1..64 pushes, each followed by 0..47 pops, so the deque
    // both grows and keeps emptying into the thieves' hands.
    std::mt19937 rng(20240521);
    uintptr_t pushed = 0;
    uint64_t popped = 0;
    int64_t peak = 0;
    bool push_failed = false, check_failed = false;
    while (pushed < items && !push_failed && !check_failed) {
        for (unsigned burst = 1 + rng() % 64; burst > 0 && pushed < items; burst--) {
            if (weft__deque_push(d.get(), Item(pushed)) != 0) {
                push_failed = true;
                break;
            }
            pushed++;
        }
        peak = std::max(peak, weft__deque_size(d.get()));
        for (unsigned pops = rng() % 48; pops > 0; pops--) {
            void *p = weft__deque_pop(d.get());
            if (p == nullptr)
                break;
            tally.Take(p);
            popped++;
        }
        check_failed = !weft__deque_check(d.get());
    }
    for (void *p; (p = weft__deque_pop(d.get())) != nullptr; popped++)
        tally.Take(p);
    owner_done.store(true, std::memory_order_release);
    for (std::thread &t : thieves)
        t.join();

    ASSERT_FALSE(push_failed);
    ASSERT_FALSE(check_failed);
    EXPECT_EQ(pushed, items);
    uint64_t total = popped;
    for (uint64_t s : stolen)
        total += s;
    EXPECT_EQ(total, items);
    tally.ExpectEachTakenOnce();
    EXPECT_EQ(weft__deque_size(d.get()), 0);
    // A 64-item burst against capacity 2 cannot be fully absorbed by thieves
    // push by push, so the array must have grown while they were stealing.
    EXPECT_GT(peak, 2);
    RecordProperty("popped", static_cast<int>(popped));
    RecordProperty("peak_size", static_cast<int>(peak));
}

TEST(DequeStressTest, OwnerPopOfLastItemRacesThievesTakenExactlyOnce)
{
    // Every round leaves a single item (t == b), so the owner's pop and the
    // thieves' steals meet at the CAS on top for the last element.
    const uintptr_t rounds = 1000000 / kScaleDown;
    DequePtr d(weft__deque_new(1), &weft__deque_free);
    ASSERT_NE(d, nullptr);
    Tally tally(rounds);
    std::atomic<bool> owner_done{false};
    std::vector<uint64_t> stolen(kThieves);
    std::vector<std::thread> thieves;
    for (int i = 0; i < kThieves; i++)
        thieves.emplace_back([&, i] { stolen[i] = RunThief(d.get(), tally, owner_done, false); });

    // Thieves spin rather than yield here, and the owner waits a random short
    // while between push and pop, so steals land in every phase of the pop.
    std::mt19937 rng(7);
    uint64_t popped = 0;
    uintptr_t bad_round = rounds; // first round that broke an invariant
    for (uintptr_t r = 0; r < rounds; r++) {
        if (weft__deque_push(d.get(), Item(r)) != 0) {
            bad_round = r;
            break;
        }
        for (volatile unsigned spin = rng() % 64; spin > 0; spin = spin - 1) {
        }
        if (void *p = weft__deque_pop(d.get())) {
            tally.Take(p);
            popped++;
        }
        // Whoever won, the item is gone: nothing can be left or pending.
        if (weft__deque_size(d.get()) != 0 || !weft__deque_check(d.get())) {
            bad_round = r;
            break;
        }
    }
    owner_done.store(true, std::memory_order_release);
    for (std::thread &t : thieves)
        t.join();

    EXPECT_EQ(bad_round, rounds);
    uint64_t total = popped;
    for (uint64_t s : stolen)
        total += s;
    EXPECT_EQ(total, rounds);
    tally.ExpectEachTakenOnce();
    RecordProperty("popped_by_owner", static_cast<int>(popped));
    RecordProperty("stolen", static_cast<int>(total - popped));
}

TEST(DequeStressTest, RepeatedGrowthWhileThievesStealTakesEveryItemExactlyOnce)
{
    // A thief that loaded the array pointer just before a grow reads the old
    // array afterwards, so grown-out-of arrays must outlive every steal. One
    // deque grows only log2(peak) times; many short-lived deques growing from
    // capacity 1 under steals open that window thousands of times (ASan then
    // reports an array freed too early).
    const uint64_t rounds = 50000 / kScaleDown;
    const uintptr_t per_round = 64; // capacity 1 -> 64: six grows per round
    Tally tally(rounds * per_round);
    // Round r's deque is handed over by the release store of round = r and
    // freed only after every thief has acknowledged that it is done with it.
    weft__deque *current = nullptr;
    std::atomic<uint64_t> round{0};
    std::atomic<bool> round_drained{false};
    std::atomic<uint64_t> acks{0};
    std::atomic<bool> stop{false};
    std::vector<uint64_t> stolen(kThieves);
    std::vector<std::thread> thieves;
    for (int i = 0; i < kThieves; i++) {
        thieves.emplace_back([&, i] {
            for (uint64_t done = 0;;) {
                const uint64_t r = round.load(std::memory_order_acquire);
                if (r == done) {
                    if (stop.load(std::memory_order_acquire))
                        return;
                    std::this_thread::yield();
                    continue;
                }
                for (;;) {
                    void *p = weft__deque_steal(current);
                    if (p == WEFT__DEQUE_ABORT)
                        continue;
                    if (p != nullptr) {
                        tally.Take(p);
                        stolen[i]++;
                    } else if (round_drained.load(std::memory_order_acquire)) {
                        break;
                    }
                }
                done = r;
                // Release: our last steal happens-before the owner frees it.
                acks.fetch_add(1, std::memory_order_release);
            }
        });
    }

    uint64_t popped = 0;
    bool failed = false;
    for (uint64_t r = 1; r <= rounds && !failed; r++) {
        weft__deque *d = weft__deque_new(0);
        if (d == nullptr) {
            failed = true;
            break;
        }
        current = d;
        round_drained.store(false, std::memory_order_relaxed); // published by the next line
        round.store(r, std::memory_order_release);
        for (uintptr_t i = 0; i < per_round; i++) {
            if (weft__deque_push(d, Item((r - 1) * per_round + i)) != 0)
                failed = true;
        }
        for (void *p; (p = weft__deque_pop(d)) != nullptr; popped++)
            tally.Take(p);
        failed = failed || !weft__deque_check(d);
        round_drained.store(true, std::memory_order_release);
        while (acks.load(std::memory_order_acquire) < r * kThieves)
            std::this_thread::yield();
        weft__deque_free(d);
    }
    stop.store(true, std::memory_order_release);
    for (std::thread &t : thieves)
        t.join();

    ASSERT_FALSE(failed);
    uint64_t total = popped;
    for (uint64_t s : stolen)
        total += s;
    EXPECT_EQ(total, rounds * per_round);
    tally.ExpectEachTakenOnce();
    RecordProperty("stolen", static_cast<int>(total - popped));
}

} // namespace
