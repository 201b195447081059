// Two or more threads freeing one block at the same instant, in count mode
// (issue 24, F2; the checked build's claim, free_link.h): exactly one free
// links the block, every other is reported as one error and does nothing.
// Checked by what follows: no block is ever handed out twice (every thread
// then takes blocks of the class, fills them with its own pattern, and
// finds it intact after all have filled theirs), and the errors counted
// equal the losing frees. Through strata's own API, so that it runs under
// TSan and ASan too. Every wait is bounded; nothing is timed.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "alloc/checks.h"
#include "alloc/error.h"
#include "alloc/heap.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/count_mode.h"
#include "tests/util/sanitizer.h"

namespace strata::internal {
namespace {

static_assert(kCheckedBuild, "the checked build's contract: built as concurrent_free_test_checked");

// A reusable barrier for n threads whose every wait is bounded: a thread
// that waits longer than a minute breaks it, and every wait then returns
// false (the test fails instead of hanging). Spins (the racers must leave
// it together), yielding now and then (there may be fewer cores).
class Rendezvous {
 public:
  explicit Rendezvous(int n) : n_(n) {}

  bool Wait() {
    // Acquire pairs with the release store of the generation by the last
    // arrival: what the others did before arriving is seen after.
    const uint32_t gen = gen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      arrived_.store(0, std::memory_order_relaxed);  // published by the release below
      gen_.store(gen + 1, std::memory_order_release);
      return !broken_.load(std::memory_order_relaxed);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (uint32_t spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
      if (broken_.load(std::memory_order_relaxed)) return false;  // relaxed: a flag, nothing to order
      if ((spins & 255) == 255) {
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() > deadline) {
          broken_.store(true, std::memory_order_relaxed);
          return false;
        }
      }
    }
    return !broken_.load(std::memory_order_relaxed);
  }

 private:
  const int n_;
  std::atomic<int> arrived_{0};
  std::atomic<uint32_t> gen_{0};
  std::atomic<bool> broken_{false};
};

// `racers` threads; in each round thread 0 (the owner: its free is local,
// the others' remote) allocates a block of `size`, all free it at once.
// Then each takes `keep` blocks, fills them with its pattern, and checks it
// once every thread has filled its own. Returns the addresses taken.
void Race(size_t size, int racers, int rounds, std::vector<std::set<void*>>* taken) {
  constexpr int kKeep = 200;
  Rendezvous meet(racers);
  std::atomic<void*> block{nullptr};
  std::vector<std::thread> threads;
  taken->assign(static_cast<size_t>(racers), {});
  for (int t = 0; t < racers; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r) {
        if (t == 0) {
          void* p = strata::Allocate(size);
          std::memset(p, 0x11, size);
          // Release pairs with the others' acquire load below (with the
          // barrier's own order): they free a block whose bytes are written.
          block.store(p, std::memory_order_release);
        }
        if (!meet.Wait()) return;
        strata::Deallocate(block.load(std::memory_order_acquire));
        // Every free of this round is done before the next block is
        // allocated (which may be this very block again).
        if (!meet.Wait()) return;
      }
      // No block handed out twice: each thread's pattern survives the
      // others' filling theirs.
      std::vector<unsigned char*> mine;
      const auto pattern = static_cast<unsigned char>(0x40 + t);
      for (int i = 0; i < kKeep; ++i) {
        auto* q = static_cast<unsigned char*>(strata::Allocate(size));
        std::memset(q, pattern, size);
        mine.push_back(q);
      }
      if (!meet.Wait()) return;
      for (unsigned char* q : mine) {
        for (size_t i = 0; i < size; ++i) {
          if (q[i] != pattern) {
            ADD_FAILURE() << "thread " << t << ": block " << static_cast<void*>(q) << " byte " << i
                          << " overwritten: handed out twice";
            break;
          }
        }
        (*taken)[static_cast<size_t>(t)].insert(q);
      }
      if (!meet.Wait()) return;
      for (unsigned char* q : mine) strata::Deallocate(q);
    });
  }
  for (std::thread& th : threads) th.join();
}

TEST(ConcurrentFreeTest, OneFreeWinsEveryOtherIsCounted) {
  const int racers = 4;
  const int rounds = testing::Scaled(5000, 500);
  // Small (one pool a run), larger small and medium blocks; 8-byte blocks
  // freed by a third thread are judged at the owner's next drain, later
  // than this test counts (misuse_test covers them).
  for (size_t size : {size_t{16}, size_t{64}, size_t{384}, size_t{3000}}) {
    CountMode count;
    std::vector<std::set<void*>> taken;
    Race(size, racers, rounds, &taken);
    EXPECT_EQ(count.Errors(), uint64_t(rounds) * (racers - 1)) << size << " bytes";
    std::set<void*> all;
    for (const std::set<void*>& s : taken) {
      for (void* q : s) EXPECT_TRUE(all.insert(q).second) << q << " handed out to two threads";
    }
    EXPECT_EQ(all.size(), size_t{200} * racers) << size << " bytes";
    // This thread's heap (it freed nothing here) is sound, and so are the
    // blocks it takes now that the racers' heaps went back.
    tls_heap->DrainRemote();
    EXPECT_TRUE(tls_heap->IsValid());
    std::set<void*> mine;
    std::vector<void*> got;
    for (int i = 0; i < 2000; ++i) {
      void* q = strata::Allocate(size);
      EXPECT_TRUE(mine.insert(q).second) << "handed out twice: " << q;
      got.push_back(q);
    }
    for (void* q : got) strata::Deallocate(q);
  }
}

}  // namespace
}  // namespace strata::internal
