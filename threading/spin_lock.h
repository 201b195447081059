// Test-and-test-and-set spin lock for rare slow paths only (mapping memory from
// the OS). Never used on an allocation or free fast path. Does not allocate.
#ifndef STRATA_THREADING_SPIN_LOCK_H_
#define STRATA_THREADING_SPIN_LOCK_H_

#include <atomic>

#include "absl/base/thread_annotations.h"

#include "threading/backoff.h"

namespace strata::threading {

// Constant-initialisable so that it works before any constructor has run.
class ABSL_LOCKABLE SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    Backoff backoff;
    for (;;) {
      // Acquire pairs with the release store in Unlock(): the critical section
      // of the previous holder happens-before ours.
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      // Relaxed: only a hint that it is worth retrying the exchange above.
      while (locked_.load(std::memory_order_relaxed)) backoff.Pause();
    }
  }

  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    // Acquire: pairs with Unlock()'s release, as in Lock().
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void Unlock() ABSL_UNLOCK_FUNCTION() {
    // Release pairs with the acquire exchange in Lock()/TryLock().
    locked_.store(false, std::memory_order_release);
  }

 private:
  std::atomic<bool> locked_{false};
};

// Scoped holder.
class ABSL_SCOPED_LOCKABLE SpinLockHolder {
 public:
  explicit SpinLockHolder(SpinLock* lock) ABSL_EXCLUSIVE_LOCK_FUNCTION(lock) : lock_(lock) {
    lock_->Lock();
  }
  ~SpinLockHolder() ABSL_UNLOCK_FUNCTION() { lock_->Unlock(); }
  SpinLockHolder(const SpinLockHolder&) = delete;
  SpinLockHolder& operator=(const SpinLockHolder&) = delete;

 private:
  SpinLock* lock_;
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_SPIN_LOCK_H_
