#include "threading/spin_lock.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"

namespace strata::threading {
namespace {

TEST(SpinLockTest, MutualExclusion) {
  SpinLock lock;
  long counter = 0;  // plain: TSan reports a race if the lock fails
  const int kIterations = testing::Scaled(100000, 10000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        SpinLockHolder hold(&lock);
        ++counter;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter, 4L * kIterations);
}

TEST(SpinLockTest, TryLockFailsWhileHeld) {
  SpinLock lock;
  lock.Lock();
  EXPECT_FALSE(lock.TryLock());
  lock.Unlock();
  // (Branching on TryLock itself lets -Wthread-safety follow the lock.)
  if (lock.TryLock()) {
    lock.Unlock();
  } else {
    ADD_FAILURE() << "TryLock failed on a free lock";
  }
}

}  // namespace
}  // namespace strata::threading
