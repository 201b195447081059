// A heap's runs by class: the run each class carves from and takes blocks
// from first (its current run), and the runs with free blocks waiting their
// turn (the partial lists). The blocks a thread allocates come from its
// class cache (class_cache.h), which refills from these runs. One of a
// heap's parts (heap.h); the runs' own state machine is run.h's.
#ifndef STRATA_ALLOC_CLASS_RUNS_H_
#define STRATA_ALLOC_CLASS_RUNS_H_

#include <cstddef>

#include "alloc/arena.h"
#include "alloc/size_class.h"
#include "threading/intrusive_list.h"

namespace strata::internal {

// The descriptor of no run: a class without a current run points here (no
// free block, nothing to carve), so a refill needs no null test.
extern PoolDesc g_empty_pool;

// Invariants (IsValid):
//   runs_[c] is &g_empty_pool or a kCurrent run of class c
//   every run on partial_[c] is a kPartial run of class c
// Thread-safety: the owner thread only.
class ClassRuns {
 public:
  constexpr ClassRuns() {
    for (auto& r : runs_) r = &g_empty_pool;
  }

  // The current run of class cls (&g_empty_pool when none).
  PoolDesc* current(size_t cls) const { return runs_[cls]; }
  // Makes d (kHeld, of class cls) the current run; the old one, spent (no
  // free block, fully carved), falls asleep, or else (a nested allocation
  // made it current while a refill ran: Heap::TakeFromRuns) goes partial.
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

  bool IsValid() const;

 private:
  using RunList = threading::IntrusiveList<PoolDesc, &PoolDesc::prev, &PoolDesc::next>;

  PoolDesc* runs_[kNumClasses];
  RunList partial_[kNumClasses];
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_CLASS_RUNS_H_
