// Thread-exit callbacks that fire for every thread that armed them, including
// threads that never called strata by name (a thread that only reached strata
// through malloc arms the hook on its first slow path). Built on a pthread
// key, which needs no allocation in glibc for the first 32 keys; the key is
// created on first use, so arming works before main() and before any
// constructor has run.
#ifndef STRATA_THREADING_THREAD_EXIT_H_
#define STRATA_THREADING_THREAD_EXIT_H_

#include <pthread.h>

#include <atomic>

#include "threading/spin_lock.h"

namespace strata::threading {

// Thread-safety: Arm() from any thread, for that thread. The callback runs in
// the exiting thread, after its C++ thread_local destructors; if the callback
// (or a later destructor) arms again, it runs again (up to the system's
// PTHREAD_DESTRUCTOR_ITERATIONS rounds).
class ThreadExitHook {
 public:
  using Callback = void (*)(void* value);

  constexpr explicit ThreadExitHook(Callback callback) : callback_(callback) {}
  ThreadExitHook(const ThreadExitHook&) = delete;
  ThreadExitHook& operator=(const ThreadExitHook&) = delete;

  // Arranges for callback(value) to run when the calling thread exits.
  // REQUIRES: value != nullptr. Returns false if no key could be created.
  bool Arm(void* value) {
    // Acquire pairs with the release store below: the key is visible.
    if (!ready_.load(std::memory_order_acquire)) {
      SpinLockHolder hold(&lock_);
      // Relaxed: we hold the lock that guards creation.
      if (!ready_.load(std::memory_order_relaxed)) {
        if (pthread_key_create(&key_, callback_) != 0) return false;
        // Release pairs with the acquire load above.
        ready_.store(true, std::memory_order_release);
      }
    }
    return pthread_setspecific(key_, value) == 0;
  }

  // The key, once some thread armed the hook; false before.
  bool Key(pthread_key_t* key) const {
    // Acquire pairs with the release store in Arm().
    if (!ready_.load(std::memory_order_acquire)) return false;
    *key = key_;
    return true;
  }

 private:
  Callback callback_;
  SpinLock lock_;
  std::atomic<bool> ready_{false};
  pthread_key_t key_{};
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_THREAD_EXIT_H_
