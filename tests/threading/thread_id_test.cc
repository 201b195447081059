#include "threading/thread_id.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace strata::threading {
namespace {

TEST(ThreadIdTest, StableWithinAThreadAndNonZero) {
  const uintptr_t id = CurrentThreadId();
  EXPECT_NE(id, 0u);
  EXPECT_EQ(CurrentThreadId(), id);
}

// Threads alive at the same time all have different ids.
TEST(ThreadIdTest, DistinctAcrossLiveThreads) {
  constexpr int kThreads = 16;
  std::vector<uintptr_t> ids(kThreads);
  std::atomic<int> arrived{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ids[t] = CurrentThreadId();
      arrived.fetch_add(1);
      while (arrived.load() < kThreads) std::this_thread::yield();  // all alive at once
    });
  }
  for (auto& th : threads) th.join();
  ids.push_back(CurrentThreadId());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

}  // namespace
}  // namespace strata::threading
