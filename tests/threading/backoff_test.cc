#include "threading/backoff.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace strata::threading {
namespace {

// Backoff must let a waiting thread observe progress by another thread, also
// once it has escalated to yielding (so a preempted holder can run).
TEST(BackoffTest, WaiterSeesProgressAfterEscalating) {
  std::atomic<bool> go{false};
  std::thread setter([&] {
    for (int i = 0; i < 1000; ++i) std::this_thread::yield();
    go.store(true, std::memory_order_release);
  });
  // The loop ends only if the setter got to run: a hang fails the test.
  Backoff backoff;
  while (!go.load(std::memory_order_acquire)) backoff.Pause();
  setter.join();
}

TEST(BackoffTest, DoublesUpToTheCapThenResets) {
  Backoff backoff;
  EXPECT_EQ(backoff.spins(), 1u);
  backoff.Pause();
  EXPECT_EQ(backoff.spins(), 2u);
  backoff.Pause();
  EXPECT_EQ(backoff.spins(), 4u);
  for (int i = 0; i < 20; ++i) backoff.Pause();  // escalated to yielding
  EXPECT_EQ(backoff.spins(), Backoff::kMaxSpins);
  backoff.Reset();
  EXPECT_EQ(backoff.spins(), 1u);
}

}  // namespace
}  // namespace strata::threading
