// A heap's release budget: how many bytes of free pools and empty runs it
// may keep (thread_cache_bytes, less near a memory limit or when all heaps
// together keep total_cache_bytes), when it next checks that budget, and
// when it next does its own purge work. One of a heap's parts (heap.h); the
// policy itself is release.h's.
#ifndef STRATA_ALLOC_RELEASE_BUDGET_H_
#define STRATA_ALLOC_RELEASE_BUDGET_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

// How often (ms) purge work is looked at for a given purge delay: half the
// delay, kept within [16, 1000] ms. Shared by a heap's own decay and the
// process-wide release pass, so both follow the delay at the same rate.
inline uint32_t DecayIntervalMs(int64_t delay_ms) {
  if (delay_ms <= 32) return 16;
  return delay_ms >= 2000 ? 1000 : static_cast<uint32_t>(delay_ms / 2);
}

// Invariant: next_check_pools_ > the free pools at the last check, unless
// no check has run yet (0). The owner thread only.
class ReleaseBudget {
 public:
  constexpr ReleaseBudget() = default;

  // The bytes a heap may keep now: 0 near a soft memory limit (limit.h) or
  // when all heaps together keep more than total_cache_bytes, else
  // thread_cache_bytes.
  static size_t Bytes();

  // True when a heap with `free_pools` free pools keeping `cached_bytes`
  // should release down to its budget now: over it, and it has freed
  // enough pools since the last time it tried.
  bool OverBudget(size_t free_pools, size_t cached_bytes) const {
    return free_pools >= next_check_pools_ && cached_bytes > Bytes();
  }
  // After a release down to `budget`, with `free_pools` left: retry only
  // after another quarter of the budget (or 16 pools) is freed, so that
  // arenas pinned by live blocks are not rescanned on every free.
  void Checked(size_t free_pools, size_t budget);

  // True (and the next time set) when the heap's own purge work is due at
  // `now` for a purge delay of delay_ms.
  bool DecayDue(uint64_t now, int64_t delay_ms);

 private:
  size_t next_check_pools_ = 0;  // free pools at which OverBudget may be true again
  uint64_t next_decay_ms_ = 0;   // when DecayDue next returns true
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_RELEASE_BUDGET_H_
