// A heap's per-class allocation state: the run each class allocates from
// (its current run), the slots the allocation fast path reads to find it,
// and the runs of each class with free blocks waiting their turn (the
// partial lists). One of a heap's parts (heap.h); the runs' own state
// machine is run.h's.
#ifndef STRATA_ALLOC_CLASS_RUNS_H_
#define STRATA_ALLOC_CLASS_RUNS_H_

#include <cstddef>

#include "absl/base/attributes.h"
#include "alloc/arena.h"
#include "alloc/free_link.h"
#include "alloc/size_class.h"
#include "threading/intrusive_list.h"

namespace strata::internal {

// The descriptor every empty slot points at: no free block, no uncarved
// block, so the fast path falls to the slow path without a null test.
extern PoolDesc g_empty_pool;

// Invariants (IsValid):
//   current_[c] == (stats_mode_ ? &g_empty_pool : runs_[c]) for every class
//   by_size_[k] == current_[c] for every slot k of class c (kLowSlots)
//   runs_[c] is &g_empty_pool or a kCurrent run of class c
//   every run on partial_[c] is a kPartial run of class c
// Thread-safety: the owner thread only.
class ClassRuns {
 public:
  constexpr ClassRuns() {
    for (auto& r : by_size_) r = &g_empty_pool;
    for (auto& r : current_) r = &g_empty_pool;
    for (auto& r : runs_) r = &g_empty_pool;
  }

  // ---- Fast paths ----

  // A block for a request of n <= kLowTableMax bytes from its class's
  // current run, or nullptr. One load finds the run: by_size_ is indexed
  // like kLowClassTable.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocateSmall(size_t n, const LinkKey& key) {
    return by_size_[(n + kSmallStep - 1) / kSmallStep]->run.TryPop(key);
  }
  // A block of class cls from its current run, or nullptr.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocate(size_t cls, const LinkKey& key) {
    return current_[cls]->run.TryPop(key);
  }

  // ---- Slow paths ----

  // The current run of class cls (&g_empty_pool when none).
  PoolDesc* current(size_t cls) const { return runs_[cls]; }
  // Makes d (kHeld, of class cls) the current run; the old one, spent (no
  // free block, fully carved), falls asleep.
  void SetCurrent(size_t cls, PoolDesc* d);
  // Takes the current run of class cls out of its slot, demoted (kHeld);
  // nullptr when there is none.
  PoolDesc* TakeCurrent(size_t cls);
  // The first partial run of class cls, taken off the list (kHeld), or
  // nullptr.
  PoolDesc* TakePartial(size_t cls);
  // Puts d (kHeld) on its class's partial list, and takes it off.
  void LinkPartial(PoolDesc* d);
  void UnlinkPartial(PoolDesc* d);

  // Detailed statistics mode: every current_ slot points at g_empty_pool, so
  // that every allocation takes the counting slow path; runs_ keeps the
  // real runs.
  void SetStatsMode(bool on);
  bool stats_mode() const { return stats_mode_; }

  bool IsValid() const;

 private:
  // current_[cls] = d, and the by_size_ slots of cls with it.
  void SetSlots(size_t cls, PoolDesc* d);

  using RunList = threading::IntrusiveList<PoolDesc, &PoolDesc::prev, &PoolDesc::next>;

  // Fast-path data first. by_size_ is current_ by request size (slot k
  // holds current_[kLowClassTable[k]]): malloc's one load, eight sizes a
  // cache line.
  PoolDesc* by_size_[kLowClassTable.size()];
  PoolDesc* current_[kNumClasses];
  PoolDesc* runs_[kNumClasses];
  RunList partial_[kNumClasses];
  bool stats_mode_ = false;
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_CLASS_RUNS_H_
