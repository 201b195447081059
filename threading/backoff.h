// Bounded exponential backoff for contended CAS loops and spin locks.
// Not a sleep: it only spins with PAUSE, so it is for short waits on slow paths.
#ifndef STRATA_THREADING_BACKOFF_H_
#define STRATA_THREADING_BACKOFF_H_

#include <sched.h>

#include <cstdint>

namespace strata::threading {

// Hints the CPU that this is a spin-wait loop (x86 PAUSE).
inline void CpuRelax() { __builtin_ia32_pause(); }

// Backoff doubles the number of PAUSEs on each Pause() up to kMaxSpins, after
// which it yields the CPU so that a preempted lock holder can run.
// Thread-safety: one Backoff object per waiting thread (it is a local variable).
class Backoff {
 public:
  static constexpr uint32_t kMaxSpins = 1024;

  void Pause() {
    if (spins_ < kMaxSpins) {
      for (uint32_t i = 0; i < spins_; ++i) CpuRelax();
      spins_ *= 2;
    } else {
      sched_yield();
    }
  }

  void Reset() { spins_ = 1; }

  // PAUSEs the next Pause() will spin (kMaxSpins: it will yield instead).
  uint32_t spins() const { return spins_; }

 private:
  uint32_t spins_ = 1;
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_BACKOFF_H_
