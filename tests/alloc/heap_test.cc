// Thread heaps: blocks freed by other threads come back to their owner, and
// a dead thread's heap is adopted by the next thread.
#include "alloc/heap.h"

#include <atomic>
#include <thread>
#include <vector>

#include "alloc/options.h"
#include "alloc/release.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/alloc/heap_test_peer.h"
#include "tests/util/sanitizer.h"

namespace strata::internal {
namespace {

TEST(HeapTest, FirstAllocationGivesTheThreadAHeap) {
  std::thread t([] {
    EXPECT_EQ(tls_heap, &g_empty_heap);
    void* p = strata::Allocate(32);
    EXPECT_NE(tls_heap, &g_empty_heap);
    EXPECT_TRUE(tls_heap->IsValid());
    strata::Deallocate(p);
  });
  t.join();
}

// Blocks allocated on one thread and freed on another return to the owner
// (through its queue) and are reused rather than leaked.
TEST(HeapTest, RemoteFreesReturnToTheOwner) {
  const size_t n = testing::Scaled<size_t>(200000, 20000);
  std::vector<void*> blocks(n);
  for (size_t i = 0; i < n; ++i) blocks[i] = strata::Allocate(48);
  Heap* owner = tls_heap;
  Stats before;
  GetStats(&before);
  std::thread freer([&] {
    for (void* p : blocks) strata::Deallocate(p);
    // Thread exit flushes the last partial batch.
  });
  freer.join();
  // The owner drains its queue; a release pass may have drained it while
  // the owner slept in join (heap.h): either way every block came back.
  owner->DrainRemote();
  EXPECT_TRUE(owner->IsValid());
  Stats s;
  GetStats(&s);
  EXPECT_GE(s.remote_received - before.remote_received, n);
  EXPECT_EQ(s.queued_bytes, 0u);
  EXPECT_EQ(s.classes[SizeToClass(48)].blocks_in_use, 0u);
}

// A thread exits while its blocks are alive; another thread frees them later
// and a third thread adopts the orphaned heap.
TEST(HeapTest, OrphanedHeapIsAdoptedAndItsBlocksStayFreeable) {
  // The background release pass, which a thread exit wakes, takes every
  // orphan off the stack while it tidies them (and moves one that no longer
  // owns arenas to the free stack): the adopter below could then miss
  // `dead`. Keep it off for this test.
  const bool background = GetOption(Option::kBackgroundRelease) != 0;
  ASSERT_TRUE(SetBackgroundRelease(false));
  std::vector<void*> blocks;
  Heap* dead = nullptr;
  std::thread maker([&] {
    for (int i = 0; i < 1000; ++i) blocks.push_back(strata::Allocate(64 + (i % 4) * 512));
    dead = tls_heap;
  });
  maker.join();
  EXPECT_EQ(dead->entry().state(), HeapEntry::State::kOrphan);
  for (void* p : blocks) strata::Deallocate(p);  // remote frees into the orphan
  tls_heap->FlushOutgoing();
  std::thread adopter([&] {
    void* p = strata::Allocate(64);
    EXPECT_EQ(tls_heap, dead);  // orphans are taken before new heaps
    tls_heap->DrainRemote();
    EXPECT_TRUE(tls_heap->IsValid());
    // Every block the dead thread made came back: only p is in use.
    Stats s;
    GetStats(&s);
    for (size_t size : {64, 576, 1152, 1664}) {
      EXPECT_EQ(s.classes[SizeToClass(size)].blocks_in_use, size == 64 ? 1u : 0u) << size;
    }
    strata::Deallocate(p);
  });
  adopter.join();
  ASSERT_TRUE(SetBackgroundRelease(background));
}

// A thread's exit may allocate while its heap is being given up: what
// Abandon calls can start the release engine's thread, and glibc's
// pthread_create callocs the new thread's TLS vector. Such an allocation
// must come from another heap: from the one being abandoned it made a run
// current again after Abandon had given its runs up, and once another
// thread absorbed the orphan's arenas two heaps allocated from that run
// (larson, 1 run in 2 with refills that gather: "free list corrupted").
// The decay hook, which Abandon runs when it releases a run, stands in for
// the thread's start here.
thread_local bool tls_allocate_in_hook = false;
std::atomic<Heap*> g_hook_heap{nullptr};
std::atomic<void*> g_hook_block{nullptr};

void AllocatingDecayHook(uint64_t, bool) {
  if (!tls_allocate_in_hook) return;
  tls_allocate_in_hook = false;
  g_hook_heap.store(tls_heap, std::memory_order_relaxed);
  g_hook_block.store(strata::Allocate(304), std::memory_order_relaxed);
}

TEST(HeapTest, AnAllocationWhileItsHeapIsAbandonedComesFromAnotherHeap) {
  const bool background = GetOption(Option::kBackgroundRelease) != 0;
  ASSERT_TRUE(SetBackgroundRelease(false));  // no pass takes the orphan meanwhile
  SetGlobalDecayHook(&AllocatingDecayHook);
  Heap* dead = nullptr;
  std::thread t([&] {
    // A current run with no live block: Abandon gives it up (TakeCurrent)
    // and releases it, which runs the hook, whose allocation of the same
    // class then found no current run in the old order and made one.
    strata::Deallocate(strata::Allocate(304));
    dead = tls_heap;
    tls_allocate_in_hook = true;
  });
  t.join();
  InstallReleaseEngine();  // the release engine's hook back
  Heap* hook_heap = g_hook_heap.load(std::memory_order_relaxed);
  ASSERT_NE(hook_heap, nullptr) << "the exit ran no decay hook";
  EXPECT_NE(hook_heap, dead);
  // The abandoned heap holds no current run: the next thread to hold it, or
  // the heap that absorbs its arenas, starts from its lists alone.
  HeapTestPeer peer(dead);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    EXPECT_EQ(peer.runs().current(cls), &g_empty_pool) << "class " << cls;
  }
  strata::Deallocate(g_hook_block.load(std::memory_order_relaxed));
  ASSERT_TRUE(SetBackgroundRelease(background));
}

// Many threads allocate, hand blocks to a neighbour and free what they get.
TEST(HeapTest, RingOfThreadsSwappingBlocks) {
  constexpr int kThreads = 4;
  const int kRounds = testing::Scaled(2000, 200);
  constexpr int kBatch = 64;
  struct Slot {
    std::atomic<void**> batch{nullptr};
  };
  Slot slots[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      void* mine[kBatch];
      void* received[kBatch];
      for (int r = 0; r < kRounds; ++r) {
        for (int i = 0; i < kBatch; ++i) {
          const size_t size = 8 + ((r * kBatch + i) * 37) % 2000;
          mine[i] = strata::Allocate(size);
          *static_cast<int*>(mine[i]) = t;
        }
        // Hand our batch to the next thread, wait until it took it.
        void** expected = nullptr;
        // Release pairs with the acquire exchange by the receiver.
        while (!slots[(t + 1) % kThreads].batch.compare_exchange_weak(
            expected, mine, std::memory_order_release, std::memory_order_relaxed)) {
          expected = nullptr;
          std::this_thread::yield();
        }
        // Take the batch handed to us.
        void** got;
        while ((got = slots[t].batch.load(std::memory_order_acquire)) == nullptr) {
          std::this_thread::yield();
        }
        for (int i = 0; i < kBatch; ++i) received[i] = got[i];
        // Release: the sender may reuse its array once it sees null.
        slots[t].batch.store(nullptr, std::memory_order_release);
        for (int i = 0; i < kBatch; ++i) {
          ASSERT_EQ(*static_cast<int*>(received[i]), (t + kThreads - 1) % kThreads);
          strata::Deallocate(received[i]);
        }
        // Wait until our batch was taken before overwriting `mine`.
        while (slots[(t + 1) % kThreads].batch.load(std::memory_order_acquire) == mine) {
          std::this_thread::yield();
        }
      }
      EXPECT_TRUE(tls_heap->IsValid());
    });
  }
  for (auto& th : threads) th.join();
}

// A run that fills up sleeps: the frees that reach it first do not put it
// back in use (a refill would find one or two blocks there); it wakes, on
// the partial list, once WakeFrees(capacity) of its blocks are back. The
// owner's own frees go to its class cache, so the blocks come back here
// from another thread (through the owner's queue, onto their runs).
TEST(HeapTest, FullRunSleepsUntilAShareOfItsBlocksIsFree) {
  std::thread t([] {
    constexpr size_t kSize = 64;
    const uint32_t capacity = kClasses[SizeToClass(kSize)].blocks;
    const uint32_t wake = WakeFrees(capacity);
    ASSERT_GT(wake, 1u);
    std::vector<void*> blocks;
    for (uint32_t i = 0; i < 4 * capacity; ++i) blocks.push_back(strata::Allocate(kSize));
    // A run that filled up while we allocated, and the blocks of it we hold.
    PoolDesc* asleep = nullptr;
    std::vector<void*> mine;
    for (void* p : blocks) {
      PoolDesc* d = RunOf(ArenaOf(p), p);
      if (asleep == nullptr && d->Asleep()) asleep = d;
      if (d == asleep) mine.push_back(p);
    }
    ASSERT_NE(asleep, nullptr);
    ASSERT_EQ(mine.size(), capacity);
    EXPECT_EQ(asleep->run.state(), RunState::kAsleep);
    EXPECT_EQ(asleep->Used(), capacity);
    // wake - 1 of its blocks freed by another thread, then drained here.
    auto free_remotely = [](const std::vector<void*>& ps) {
      std::thread([&ps] {
        for (void* p : ps) strata::Deallocate(p);
      }).join();  // its exit hands the batch over
    };
    free_remotely(std::vector<void*>(mine.begin(), mine.begin() + (wake - 1)));
    tls_heap->DrainRemote();
    EXPECT_TRUE(asleep->Asleep());
    EXPECT_EQ(asleep->Used(), capacity - (wake - 1));
    EXPECT_TRUE(tls_heap->IsValid());
    const uint64_t woken = tls_heap->counters().runs_woken.Get();
    free_remotely({mine[wake - 1]});
    tls_heap->DrainRemote();
    EXPECT_FALSE(asleep->Asleep());
    EXPECT_EQ(asleep->run.state(), RunState::kPartial);
    EXPECT_EQ(asleep->Used(), capacity - wake);
    EXPECT_EQ(tls_heap->counters().runs_woken.Get(), woken + 1);
    EXPECT_TRUE(tls_heap->IsValid());
    for (uint32_t i = wake; i < capacity; ++i) strata::Deallocate(mine[i]);
    for (void* p : blocks) {
      if (RunOf(ArenaOf(p), p) != asleep) strata::Deallocate(p);
    }
    EXPECT_TRUE(tls_heap->IsValid());
  });
  t.join();
}

// Random-order churn (frees scattered over every run of a class) is served
// by the fast path: the runs a refill takes hold batches of free blocks.
// Before runs slept, 40% of these allocations took the slow path.
TEST(HeapTest, RandomOrderChurnRarelyRefills) {
  // Issue 23's bound: refills under 2 % of allocations on random-order
  // churn of any size range (large classes gather from several runs).
  struct Range {
    size_t min, max, live;
  };
  for (const Range r : {Range{8, 128, 10000}, Range{8, 1024, 10000}, Range{256, 4096, 2000},
                        Range{1024, 16384, 1000}, Range{4096, 65536, 1000}, Range{8, 65536, 1000}}) {
    std::thread t([r] {
      const size_t steps = testing::Scaled<size_t>(400000, 100000);
      uint64_t x = 0x9e3779b97f4a7c15;  // xorshift64: the same sequence on every run
      auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
      };
      const size_t span = r.max - r.min + 1;
      std::vector<void*> live(r.live);
      for (void*& p : live) p = strata::Allocate(r.min + next() % span);
      const uint64_t refills = tls_heap->counters().refills.Get();
      for (size_t i = 0; i < steps; ++i) {
        void*& p = live[next() % r.live];
        strata::Deallocate(p);
        p = strata::Allocate(r.min + next() % span);
      }
      const uint64_t slow = tls_heap->counters().refills.Get() - refills;
      EXPECT_LT(slow * 100, steps * 2) << slow << " refills in " << steps << " allocations of " << r.min << ".."
                                       << r.max;
      EXPECT_TRUE(tls_heap->IsValid());
      for (void* p : live) strata::Deallocate(p);
    });
    t.join();
  }
}

// Gathering takes new runs only for a class that refills often: the first
// refill of a large class takes one run (its blocks), a second soon after
// takes more runs up to the refill's want (8 blocks).
TEST(HeapTest, OnlyAClassThatRefillsOftenGathersNewRuns) {
  std::thread t([] {
    const size_t cls = SizeToClass(16384);
    ASSERT_LT(kClasses[cls].blocks, 8u);  // runs of fewer blocks than a refill wants
    const uint32_t per_run = kClasses[cls].blocks;
    void* first = strata::Allocate(64);  // the thread takes its heap
    HeapTestPeer peer(tls_heap);
    ASSERT_EQ(peer.cache().Length(cls), 0u);
    std::vector<void*> held;
    held.push_back(strata::Allocate(16384));
    // The first refill: one run, no more (a partial run a reused heap kept
    // gives fewer).
    EXPECT_LE(peer.cache().Length(cls), per_run - 1);
    while (peer.cache().Length(cls) != 0) held.push_back(strata::Allocate(16384));
    // Refilled again within a few pops: runs up to 8 blocks.
    held.push_back(strata::Allocate(16384));
    EXPECT_GE(peer.cache().Length(cls), 8u - 1);

    // A class of one block a run, refilled back to back (each refill's
    // block taken by its own allocation, as while a program grows): no
    // gathering, no block carved before it is asked for; once a free has
    // put a block on its list between two refills, it gathers.
    const size_t one = SizeToClass(40960);
    ASSERT_EQ(kClasses[one].blocks, 1u);
    for (int i = 0; i < 3; ++i) {
      held.push_back(strata::Allocate(40960));
      EXPECT_EQ(peer.cache().Length(one), 0u);
    }
    strata::Deallocate(held.back());
    held.pop_back();
    held.push_back(strata::Allocate(40960));  // the freed block, a pop
    held.push_back(strata::Allocate(40960));  // a refill one pop after the last
    EXPECT_GE(peer.cache().Length(one), 8u - 1);
    for (void* p : held) strata::Deallocate(p);
    strata::Deallocate(first);
    EXPECT_TRUE(tls_heap->IsValid());
  });
  t.join();
}

}  // namespace
}  // namespace strata::internal
