// SPDX-License-Identifier: MIT
// Single-threaded semantics of the work-stealing deque (scheduler/deque.c):
// ordering, emptiness, growth, and the owner-side invariant checker after
// every step. Concurrency is covered by deque_stress_test.cc.
#include "scheduler/deque.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <random>

namespace {

using DequePtr = std::unique_ptr<weft__deque, decltype(&weft__deque_free)>;

DequePtr MakeDeque(unsigned log2_capacity)
{
    return DequePtr(weft__deque_new(log2_capacity), &weft__deque_free);
}

// Items must be non-NULL with the low bit clear; encode i as 2 * (i + 1).
void *Item(uintptr_t i) { return reinterpret_cast<void *>((i + 1) << 1); }

// Pushes must succeed and leave the invariants intact.
void PushOk(weft__deque *d, uintptr_t i)
{
    ASSERT_EQ(weft__deque_push(d, Item(i)), 0);
    ASSERT_TRUE(weft__deque_check(d));
}

TEST(DequeTest, PopOnEmptyNeverWraps)
{
    // On a never-used deque pop computes bottom - 1 == -1; with unsigned
    // indices that wraps and "finds" an item.
    DequePtr d = MakeDeque(1);
    ASSERT_NE(d, nullptr);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(weft__deque_pop(d.get()), nullptr);
        EXPECT_EQ(weft__deque_size(d.get()), 0);
        EXPECT_TRUE(weft__deque_check(d.get()));
    }
    PushOk(d.get(), 7);
    EXPECT_EQ(weft__deque_pop(d.get()), Item(7));
    EXPECT_EQ(weft__deque_pop(d.get()), nullptr);
    EXPECT_TRUE(weft__deque_check(d.get()));
}

TEST(DequeTest, StealOnEmptyReturnsNullNotAbort)
{
    DequePtr d = MakeDeque(1);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(weft__deque_steal(d.get()), nullptr);
    PushOk(d.get(), 1);
    EXPECT_EQ(weft__deque_pop(d.get()), Item(1));
    EXPECT_EQ(weft__deque_steal(d.get()), nullptr);
    PushOk(d.get(), 2);
    EXPECT_EQ(weft__deque_steal(d.get()), Item(2));
    EXPECT_EQ(weft__deque_steal(d.get()), nullptr);
    EXPECT_EQ(weft__deque_pop(d.get()), nullptr);
    EXPECT_TRUE(weft__deque_check(d.get()));
}

TEST(DequeTest, PopTakesNewestFirst)
{
    DequePtr d = MakeDeque(3);
    ASSERT_NE(d, nullptr);
    for (uintptr_t i = 0; i < 5; i++)
        PushOk(d.get(), i);
    for (uintptr_t i = 5; i-- > 0;) {
        EXPECT_EQ(weft__deque_pop(d.get()), Item(i));
        EXPECT_TRUE(weft__deque_check(d.get()));
    }
    EXPECT_EQ(weft__deque_pop(d.get()), nullptr);
}

TEST(DequeTest, StealTakesOldestFirst)
{
    DequePtr d = MakeDeque(3);
    ASSERT_NE(d, nullptr);
    for (uintptr_t i = 0; i < 5; i++)
        PushOk(d.get(), i);
    for (uintptr_t i = 0; i < 5; i++) {
        EXPECT_EQ(weft__deque_steal(d.get()), Item(i));
        EXPECT_TRUE(weft__deque_check(d.get()));
    }
    EXPECT_EQ(weft__deque_steal(d.get()), nullptr);
}

TEST(DequeTest, PopAndStealMeetInTheMiddleTakingEachItemOnce)
{
    DequePtr d = MakeDeque(4);
    ASSERT_NE(d, nullptr);
    for (uintptr_t i = 0; i < 9; i++)
        PushOk(d.get(), i);
    uintptr_t oldest = 0, newest = 8;
    for (int k = 0; k < 9; k++) {
        if (k % 2 == 0)
            EXPECT_EQ(weft__deque_steal(d.get()), Item(oldest++));
        else
            EXPECT_EQ(weft__deque_pop(d.get()), Item(newest--));
        EXPECT_TRUE(weft__deque_check(d.get()));
        EXPECT_EQ(weft__deque_size(d.get()), 8 - k);
    }
    EXPECT_EQ(weft__deque_pop(d.get()), nullptr);
    EXPECT_EQ(weft__deque_steal(d.get()), nullptr);
}

TEST(DequeTest, GrowthFromCapacityTwoKeepsStealOrder)
{
    DequePtr d = MakeDeque(1);
    ASSERT_NE(d, nullptr);
    const uintptr_t n = 1000;
    for (uintptr_t i = 0; i < n; i++)
        PushOk(d.get(), i);
    EXPECT_EQ(weft__deque_size(d.get()), static_cast<int64_t>(n));
    for (uintptr_t i = 0; i < n; i++)
        ASSERT_EQ(weft__deque_steal(d.get()), Item(i));
    EXPECT_EQ(weft__deque_steal(d.get()), nullptr);
}

TEST(DequeTest, GrowthFromCapacityTwoKeepsPopOrder)
{
    DequePtr d = MakeDeque(1);
    ASSERT_NE(d, nullptr);
    const uintptr_t n = 1000;
    for (uintptr_t i = 0; i < n; i++)
        PushOk(d.get(), i);
    for (uintptr_t i = n; i-- > 0;)
        ASSERT_EQ(weft__deque_pop(d.get()), Item(i));
    EXPECT_EQ(weft__deque_pop(d.get()), nullptr);
}

TEST(DequeTest, GrowthFromCapacityOneWorks)
{
    DequePtr d = MakeDeque(0);
    ASSERT_NE(d, nullptr);
    for (uintptr_t i = 0; i < 100; i++)
        PushOk(d.get(), i);
    for (uintptr_t i = 0; i < 100; i++)
        ASSERT_EQ(weft__deque_steal(d.get()), Item(i));
    EXPECT_EQ(weft__deque_pop(d.get()), nullptr);
}

TEST(DequeTest, GrowthWhileIndicesWrapKeepsEveryItemInOrder)
{
    // Stealing one item before each pair of pushes moves top off zero, so the
    // live range wraps around the end of the array when it grows and the copy
    // must map each logical index to its new slot.
    DequePtr d = MakeDeque(1);
    ASSERT_NE(d, nullptr);
    std::deque<uintptr_t> model;
    uintptr_t next = 0;
    for (int round = 0; round < 300; round++) {
        PushOk(d.get(), next);
        model.push_back(next++);
        PushOk(d.get(), next);
        model.push_back(next++);
        ASSERT_EQ(weft__deque_steal(d.get()), Item(model.front()));
        model.pop_front();
        ASSERT_TRUE(weft__deque_check(d.get()));
    }
    for (uintptr_t want : model)
        ASSERT_EQ(weft__deque_steal(d.get()), Item(want));
    EXPECT_EQ(weft__deque_steal(d.get()), nullptr);
}

TEST(DequeTest, InterleavedPushPopStealAcrossGrowthMatchesModel)
{
    DequePtr d = MakeDeque(1);
    ASSERT_NE(d, nullptr);
    std::deque<uintptr_t> model; // front = top (steal end), back = bottom
    std::mt19937 rng(12345);
    uintptr_t next = 0;
    for (int step = 0; step < 200000; step++) {
        // 9 pushes in 16 steps: the deque drifts upwards, growing many times,
        // but is often empty early on.
        const unsigned r = rng() % 16;
        if (r < 9) {
            ASSERT_EQ(weft__deque_push(d.get(), Item(next)), 0);
            model.push_back(next++);
        } else if (r < 13) {
            void *got = weft__deque_pop(d.get());
            if (model.empty()) {
                ASSERT_EQ(got, nullptr);
            } else {
                ASSERT_EQ(got, Item(model.back()));
                model.pop_back();
            }
        } else {
            void *got = weft__deque_steal(d.get());
            if (model.empty()) {
                ASSERT_EQ(got, nullptr);
            } else {
                ASSERT_EQ(got, Item(model.front()));
                model.pop_front();
            }
        }
        ASSERT_TRUE(weft__deque_check(d.get()));
        ASSERT_EQ(weft__deque_size(d.get()), static_cast<int64_t>(model.size()));
    }
}

TEST(DequeTest, NewRejectsCapacityBeyondAddressSpace)
{
    // Refused before any allocation (and without undefined shifts).
    for (unsigned log2 : {60u, 62u, 63u, 64u, 1000u})
        EXPECT_EQ(weft__deque_new(log2), nullptr) << "log2=" << log2;
}

TEST(DequeTest, FreeAfterManyGrowthsReleasesRetiredArrays)
{
    // Grown-out-of arrays stay on the retired list until free; under ASan,
    // LeakSanitizer fails this test if any of them is not released.
    DequePtr d = MakeDeque(0);
    ASSERT_NE(d, nullptr);
    for (uintptr_t i = 0; i < 5000; i++)
        PushOk(d.get(), i);
    for (uintptr_t i = 0; i < 2500; i++)
        ASSERT_EQ(weft__deque_steal(d.get()), Item(i));
    EXPECT_EQ(weft__deque_size(d.get()), 2500);
}

} // namespace
