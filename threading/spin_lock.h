// Test-and-test-and-set spin lock for rare slow paths only (mapping memory from
// the OS). Never used on an allocation or free fast path. Does not allocate.
// The lock word holds its holder's thread id, so that a thread trying to take
// a lock it already holds -- which correct code never does, so a signal
// handler must have interrupted it inside its critical section and come back
// for the lock -- is told (SetSelfDeadlockHandler) instead of spinning for
// ever.
#ifndef STRATA_THREADING_SPIN_LOCK_H_
#define STRATA_THREADING_SPIN_LOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"

#include "threading/backoff.h"
#include "threading/thread_id.h"

namespace strata::threading {

// Called by Lock() when the calling thread holds the lock already; it must
// not return (an allocator reports and aborts). Without one, Lock() waits.
using SelfDeadlockHandler = void (*)();

// Constant-initialisable so that it works before any constructor has run.
class ABSL_LOCKABLE SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    const uintptr_t self = CurrentThreadId();
    Backoff backoff;
    for (;;) {
      uintptr_t seen = 0;
      // Acquire pairs with the release store in Unlock(): the critical section
      // of the previous holder happens-before ours. Relaxed on failure: we
      // only look at who holds it.
      if (holder_.compare_exchange_strong(seen, self, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
        return;
      }
      if (seen == self) OnSelfDeadlock();
      // Relaxed: only a hint that it is worth retrying the CAS above.
      while (holder_.load(std::memory_order_relaxed) != 0) backoff.Pause();
    }
  }

  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    uintptr_t seen = 0;
    // Acquire: pairs with Unlock()'s release, as in Lock().
    return holder_.load(std::memory_order_relaxed) == 0 &&
           holder_.compare_exchange_strong(seen, CurrentThreadId(), std::memory_order_acquire,
                                           std::memory_order_relaxed);
  }

  void Unlock() ABSL_UNLOCK_FUNCTION() {
    // Release pairs with the acquire CAS in Lock()/TryLock().
    holder_.store(0, std::memory_order_release);
  }

  // Installs the handler for every SpinLock (at start-up, before threads).
  static void SetSelfDeadlockHandler(SelfDeadlockHandler handler) {
    // Release pairs with the acquire load in OnSelfDeadlock().
    handler_.store(handler, std::memory_order_release);
  }

 private:
  static void OnSelfDeadlock() {
    // Acquire pairs with the release store in SetSelfDeadlockHandler().
    if (SelfDeadlockHandler h = handler_.load(std::memory_order_acquire)) h();
  }

  // The holder's CurrentThreadId() (never 0), or 0 when free. A thread reads
  // its own id here only while it holds the lock: it clears the word itself
  // before any other thread can store there.
  std::atomic<uintptr_t> holder_{0};
  static inline std::atomic<SelfDeadlockHandler> handler_{nullptr};
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
