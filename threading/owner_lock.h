// A lock with an owner thread that may take it again while it holds it, and
// that any other thread takes exclusively: a heap's slow-path lock
// (alloc/heap.h). The owner re-enters when one of its slow paths calls out
// to code that allocates (pthread_create, starting the background thread):
// that allocation's own slow path runs inside the first, as it always
// could. Other threads never re-enter. Never used on a fast path. Does not
// allocate.
#ifndef STRATA_THREADING_OWNER_LOCK_H_
#define STRATA_THREADING_OWNER_LOCK_H_

#include <atomic>
#include <cstdint>

#include "threading/backoff.h"

namespace strata::threading {

// Invariant: depth_ > 0 only while state_ == kOwner. depth_ is written only
// by the owner thread while it holds the lock.
class OwnerLock {
 public:
  constexpr OwnerLock() = default;
  OwnerLock(const OwnerLock&) = delete;
  OwnerLock& operator=(const OwnerLock&) = delete;

  // The owner thread (the caller knows it is).
  void LockAsOwner() {
    if (depth_ > 0) {  // ours already (only we write it, only while held)
      ++depth_;
      return;
    }
    Acquire(kOwner);
    depth_ = 1;
  }
  void UnlockAsOwner() {
    if (--depth_ == 0) Release();
  }
  // Any other thread: waits, or tries.
  void Lock() { Acquire(kOther); }
  bool TryLock() {
    uint32_t expected = kFree;
    // Acquire pairs with the release store in Release(): the previous
    // holder's writes happen-before ours.
    return state_.load(std::memory_order_relaxed) == kFree &&
           state_.compare_exchange_strong(expected, kOther, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void Unlock() { Release(); }

 private:
  static constexpr uint32_t kFree = 0;
  static constexpr uint32_t kOwner = 1;
  static constexpr uint32_t kOther = 2;

  void Acquire(uint32_t who) {
    Backoff backoff;
    for (;;) {
      uint32_t expected = kFree;
      // Acquire pairs with the release store in Release().
      if (state_.compare_exchange_weak(expected, who, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return;
      }
      // Relaxed: only a hint that it is worth retrying.
      while (state_.load(std::memory_order_relaxed) != kFree) backoff.Pause();
    }
  }
  void Release() {
    // Release pairs with the acquire CAS in Acquire()/TryLock().
    state_.store(kFree, std::memory_order_release);
  }

  std::atomic<uint32_t> state_{kFree};
  uint32_t depth_ = 0;
};

// Scoped holders.
class OwnerLockHolder {
 public:
  explicit OwnerLockHolder(OwnerLock* lock) : lock_(lock) { lock_->LockAsOwner(); }
  ~OwnerLockHolder() { lock_->UnlockAsOwner(); }
  OwnerLockHolder(const OwnerLockHolder&) = delete;
  OwnerLockHolder& operator=(const OwnerLockHolder&) = delete;

 private:
  OwnerLock* lock_;
};

class OtherLockHolder {
 public:
  explicit OtherLockHolder(OwnerLock* lock) : lock_(lock) { lock_->Lock(); }
  ~OtherLockHolder() { lock_->Unlock(); }
  OtherLockHolder(const OtherLockHolder&) = delete;
  OtherLockHolder& operator=(const OtherLockHolder&) = delete;

 private:
  OwnerLock* lock_;
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_OWNER_LOCK_H_
