#include "threading/spin_lock.h"

#include <atomic>
#include <chrono>
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

// A thread taking a lock it holds (a signal handler coming back for it)
// calls the self-deadlock handler instead of spinning; another thread
// waiting for the lock does not.
std::atomic<int> g_self_deadlocks{0};
SpinLock* g_held = nullptr;
void CountAndRelease() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_self_deadlocks.fetch_add(1);
  g_held->Unlock();  // lets the Lock() that called us take it
}

void LockTwice(SpinLock& lock) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  lock.Lock();
  lock.Lock();
}

// Another thread waits for the lock this thread holds, then gets it.
void OtherThreadWaits(SpinLock& lock) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  lock.Lock();
  std::thread other([&lock] { SpinLockHolder inner(&lock); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  lock.Unlock();
  other.join();
}

// LockTwice's second Lock() holds it again (the handler let it go).
void Release(SpinLock& lock) ABSL_NO_THREAD_SAFETY_ANALYSIS { lock.Unlock(); }

TEST(SpinLockTest, TakingALockItsThreadHoldsCallsTheSelfDeadlockHandler) {
  SpinLock lock;
  g_held = &lock;
  SpinLock::SetSelfDeadlockHandler(&CountAndRelease);
  LockTwice(lock);
  EXPECT_EQ(g_self_deadlocks.load(), 1);
  Release(lock);
  OtherThreadWaits(lock);
  EXPECT_EQ(g_self_deadlocks.load(), 1);
  SpinLock::SetSelfDeadlockHandler(nullptr);
}

}  // namespace
}  // namespace strata::threading
