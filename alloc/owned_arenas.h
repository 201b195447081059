// The memory a heap holds: the arenas it owns, their free pools, and the
// empty runs it keeps whole for reuse, with the counts the budget and the
// statistics read, all under one lock (the heap's metadata lock), because
// other threads look at exactly these: the purger purges free pools and
// empty runs in place, the stats reader walks the arenas. One of a heap's
// parts (heap.h).
#ifndef STRATA_ALLOC_OWNED_ARENAS_H_
#define STRATA_ALLOC_OWNED_ARENAS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "alloc/arena.h"
#include "alloc/arena_cache.h"
#include "alloc/config.h"
#include "alloc/heap_counters.h"
#include "alloc/heap_env.h"
#include "alloc/size_class.h"
#include "threading/intrusive_list.h"
#include "threading/spin_lock.h"

namespace strata::internal {

// A heap's arenas sit on one of these lists, by what a run can still get
// from them: none (no free pool), a longest stretch of 1..kMaxRunPools - 1
// consecutive free pools, kMaxRunPools or more (the longest run a class
// needs), or everything (no pool in a run: an empty arena). A run of n
// pools is then found in O(kMaxRunPools) steps, best fit first, whatever
// the number of arenas, and empty arenas are found without a walk.
inline constexpr size_t kFullArenas = 0;
inline constexpr size_t kEmptyArenas = kMaxRunPools + 1;
inline constexpr size_t kArenaLists = kMaxRunPools + 2;

// Free pools and empty-run pools held by all heaps together, in bytes
// (published by each heap in steps of kPublishStep pools; relaxed).
uint64_t CachedPoolBytesAllHeaps();

// Invariants (owner's view, or under the lock; IsValid checks them):
//   arenas_ == the sum of |lists_[i]|, and every arena on them is owned by
//     this heap; an arena is on lists_[ListOf(a)], and a->owner_list says
//     which
//   free_pools_ == sum over the arenas of popcount(free_mask)
//   empty_arenas_ == the arenas with used_pools == 0
//   empty_run_pools_ == sum of run_pools over the runs on empty_[*], each
//     of them kEmpty, of its list's class, with no live block
//
// SYNCHRONIZATION
//  - lock_ guards what other threads may inspect: the arena lists and every
//    ArenaHeader field but owner (free_mask, dirty_mask, used_pools, links),
//    the run-shape fields of PoolDesc, the empty runs and their lists. The
//    owner takes it only on slow paths that change them (claiming or
//    releasing a run, keeping or taking an empty run, moving an arena); the
//    purger (release engine) takes it with TryLock to purge free pools of
//    idle heaps; the stats reader takes it to walk the arenas. No block of
//    an empty run is live, so only the owner taking one back (under the
//    lock) or the purger touches it. Never held while another heap's lock
//    is taken.
//  - The counts (arenas_, empty_arenas_, free_pools_): written by the owner
//    holding the lock, read by the owner (its own writes) without it.
//  - published_pools_: the owner's; g_cached_pools (owned_arenas.cc):
//    relaxed RMW by every heap (a heuristic and a statistic).
class OwnedArenas {
 public:
  constexpr OwnedArenas() = default;

  // ---- Runs (owner) ----

  // Index of a run of n free pools in an owned arena (stored in *arena): in
  // the arena whose longest free stretch fits it most tightly, an empty
  // arena last; -1 when no owned arena has n consecutive free pools. The
  // checked build (kQuarantineReleased) takes pools released in the last
  // kQuarantineMs before `now` only when no other run of n fits in the
  // first kQuarantineSearchArenas arenas that could hold one.
  int FindFreeRun(uint32_t n, ArenaHeader** arena, uint64_t now) const;
  // Claims pools [start, start + run_pools) of `a` for class cls; with
  // start < 0, `a` is an empty arena just taken from the source: it joins
  // the heap first. Returns the run's head, kHeld.
  PoolDesc* ClaimRun(size_t cls, ArenaHeader* a, int start, HeapCounters& counters);
  // Releases run d (kHeld) to free pools of its arena, free since `now`;
  // `cache` (the heap's) forgets its pools.
  void ReleaseRun(PoolDesc* d, uint64_t now, HeapCounters& counters, ArenaCache* cache);

  // ---- Empty runs kept whole (owner) ----

  // Keeps d (kHeld, no live block) on its class's empty list.
  void KeepEmpty(PoolDesc* d, uint64_t now);
  // An empty run of class cls for reuse (kHeld; re-carved if it was
  // purged), or nullptr.
  PoolDesc* TakeEmpty(size_t cls);
  // Releases every empty run (`cache` forgets their pools). Returns the
  // pools freed.
  size_t ReleaseEmptyRuns(uint64_t now, HeapCounters& counters, ArenaCache* cache);

  // ---- Arenas ----

  // Gives empty arenas back to the source (forgetting them in `cache`)
  // while the heap keeps more than `budget` bytes (0: all of them).
  void ReleaseEmptyArenas(size_t budget, uint64_t now, ArenaCache* cache, const HeapEnv& env,
                          HeapCounters& counters);
  // Purges (madvise, purge_mode) the empty runs and free pools free for at
  // least delay_ms (all of them when force; none when delay_ms < 0 and not
  // force). Takes the lock (TryLock unless `wait`: 0 when it is busy).
  // Any thread. Returns the bytes purged.
  size_t Purge(uint64_t now, int64_t delay_ms, bool force, bool wait, HeapCounters& counters);

  // ---- Moving an arena to another heap (both held exclusively) ----

  // An arena this heap owns (under the lock), or nullptr.
  ArenaHeader* AnyArena();
  // Takes `a` off this heap's lists and counts (forgetting it in `cache`);
  // its runs stay as they are. Returns its free pools.
  size_t Detach(ArenaHeader* a, ArenaCache* cache);
  // Moves empty run d of a detached arena to `to`'s empty list.
  void MoveEmptyRun(PoolDesc* d, OwnedArenas* to);
  // Takes `a` (detached from another heap, `free_pools` free) onto this
  // heap's lists. REQUIRES: a's owner is this heap already.
  void Attach(ArenaHeader* a, size_t free_pools);

  // ---- Reading ----

  // Calls fn(arena) for every arena owned, holding the lock. fn must not
  // allocate or take another heap's lock.
  template <typename Fn>
  void ForEachArenaHoldingLock(Fn fn) {
    threading::SpinLockHolder hold(&lock_);
    for (const ArenaList& list : lists_) {
      for (ArenaHeader* a = list.front(); a != nullptr; a = a->next) fn(a);
    }
  }
  // Bytes kept in free pools and empty runs (owner's view).
  size_t CachedPoolBytes() const { return (free_pools_ + EmptyRunPoolsOwner()) * kPoolSize; }
  bool OwnsArenas() const { return arenas_ != 0; }
  // The counts (owner's view): arenas owned, those of them that hold no
  // run, and usable pools of owned arenas in no run.
  struct Counts {
    size_t arenas;
    size_t empty_arenas;
    size_t free_pools;
  };
  Counts counts() const { return {arenas_, empty_arenas_, free_pools_}; }
  // Checks the invariants, and every run's, for arenas owned by `owner`.
  // Takes the lock.
  bool IsValid(const Heap* owner) const;
  // fork(): held from prepare to parent/child (fork.h).
  threading::SpinLock& lock() const { return lock_; }

 private:
  using ArenaList = threading::IntrusiveList<ArenaHeader, &ArenaHeader::prev, &ArenaHeader::next>;
  using RunList = threading::IntrusiveList<PoolDesc, &PoolDesc::prev, &PoolDesc::next>;

  void LinkArena(ArenaHeader* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void UnlinkArena(ArenaHeader* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // Moves `a` to the list its masks now call for.
  void Relist(ArenaHeader* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void ReleaseRunLocked(PoolDesc* d, uint64_t now, HeapCounters& counters, ArenaCache* cache)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void LinkEmptyLocked(PoolDesc* d, uint64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // Takes d off the empty list; with `reuse`, a purged run is re-carved.
  void UnlinkEmptyLocked(PoolDesc* d, bool reuse) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  size_t PurgeLocked(uint64_t now, int64_t delay_ms, bool force, HeapCounters& counters)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // Publishes this heap's cached pools to the all-heaps sum, in steps.
  void Publish();

  // The owner's unlocked reads of what lock_ guards. While a heap has an
  // owner, only the owner changes these lists and counts (the purger only
  // purges runs and pools in place, under the lock), so the owner may read
  // them without it: it reads its own writes. A caller that acts on what it
  // read under the lock reads it again there (TakeEmpty). Every unlocked
  // read is one of these three, and the analysis trusts them.
  ArenaHeader* FirstArenaOwner(size_t list) const ABSL_NO_THREAD_SAFETY_ANALYSIS { return lists_[list].front(); }
  bool NoEmptyRunOwner(size_t cls) const ABSL_NO_THREAD_SAFETY_ANALYSIS { return empty_[cls].empty(); }
  size_t EmptyRunPoolsOwner() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return empty_run_pools_; }

  // Touched by the purger and the stats reader: on its own line.
  alignas(kCacheLine) mutable threading::SpinLock lock_;
  ArenaList lists_[kArenaLists] ABSL_GUARDED_BY(lock_);  // the owned arenas (kArenaLists)
  RunList empty_[kNumClasses] ABSL_GUARDED_BY(lock_);  // empty runs kept whole, by class
  size_t empty_run_pools_ ABSL_GUARDED_BY(lock_) = 0;  // pools in empty_ runs
  size_t arenas_ = 0;           // owned arenas
  size_t empty_arenas_ = 0;     // owned arenas with used_pools == 0
  size_t free_pools_ = 0;       // usable pools of owned arenas in no run
  size_t published_pools_ = 0;  // our share of the all-heaps sum
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_OWNED_ARENAS_H_
