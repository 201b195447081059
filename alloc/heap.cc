// The thread cache proper: allocation slow paths (refill from the current,
// partial and empty runs, new runs from owned arenas), the local free slow
// path (waking sleeping runs, emptied runs), the per-class run lists, and
// the owner-side invariant check. See heap.h for the protocol. The rest of
// Heap lives by concern in heap_release.cc (giving memory back),
// remote_free.cc (cross-thread frees) and heap_registry.cc (heaps for
// threads, thread exit, orphans, fork).
#include "alloc/heap.h"

#include <errno.h>

#include "alloc/error.h"
#include "alloc/heap_internal.h"
#include "alloc/options.h"
#include "alloc/os.h"

namespace strata::internal {

using heap_internal::FindRun;
using heap_internal::RunBits;

constinit PoolDesc g_empty_pool;
constinit Heap g_empty_heap(0);
constinit thread_local Heap* tls_heap ABSL_ATTRIBUTE_INITIAL_EXEC = &g_empty_heap;

// ---------------------------------------------------------------------------
// Allocation

void* Heap::AllocateSlow(size_t cls, size_t size) noexcept {
  if (this == &g_empty_heap) {
    Heap* h = AcquireHeapForThread();
    if (h == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    return h->Allocate(cls, size);
  }
  SyncStatsMode();
  if (stats_mode_) {
    counters_.allocations[cls].Add(1);
    counters_.requested_bytes[cls].Add(size);
  }
  // In stats mode every allocation comes here; otherwise a current run with
  // free blocks means the fast path met a damaged link, which PopFree
  // reports before following it.
  PoolDesc* d = runs_[cls];
  if (!IsListEnd(d->run.free_list())) return PopFree(d);
  return Refill(cls);
}

void Heap::SyncStatsMode() {
  const bool want = GetOption(Option::kStats) != 0;
  if (want != stats_mode_) SetStatsMode(want);
}

void Heap::SetStatsMode(bool on) {
  stats_mode_ = on;
  for (size_t c = 1; c < kNumClasses; ++c) SetFastRun(c, on ? &g_empty_pool : runs_[c]);
}

void* Heap::Refill(size_t cls) {
  counters_.refills.Add(1);
  PoolDesc* d = runs_[cls];
  // 1. The current run still has uncarved blocks.
  if (d->run.carved() < d->capacity) return PopCarving(d);
  // 2. Blocks other threads gave back (may refill the current run).
  if (DrainRemote() > 0) {
    d = runs_[cls];
    if (!IsListEnd(d->run.free_list())) return PopFree(d);
  }
  // 3. A partial run of this class, then an empty one kept whole.
  PoolDesc* p = partial_[cls].front();
  if (p != nullptr) {
    UnlinkPartial(p);
  } else {
    p = TakeEmpty(cls);
  }
  if (p != nullptr) {
    SetCurrent(cls, p);
    return !IsListEnd(p->run.free_list()) ? PopFree(p) : PopCarving(p);
  }
  // 4. A new run. Hand over what we hold for others first: they may be
  // waiting for memory as we are.
  FlushOutgoing();
  const uint32_t pools = kClasses[cls].run_pools;
  ArenaHeader* arena = nullptr;
  int start = FindFreeRun(pools, &arena);
  // Empty runs of other classes give their pools back before we take more.
  if (start < 0 && EmptyRunPoolsOwner() != 0 && ReleaseEmptyRuns(os::NowMs()) != 0) {
    start = FindFreeRun(pools, &arena);
  }
  if (start < 0 && CollectOrphans(1) > 0) {
    // A dead thread's memory is ours now: its partial runs come first.
    if (PoolDesc* q = partial_[cls].front()) {
      UnlinkPartial(q);
      SetCurrent(cls, q);
      return !IsListEnd(q->run.free_list()) ? PopFree(q) : PopCarving(q);
    }
    start = FindFreeRun(pools, &arena);
  }
  PoolDesc* run = NewRun(cls, arena, start);
  if (run == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  SetCurrent(cls, run);
  void* block = PopCarving(run);
  MaybeDecay(os::NowMs(), /*released=*/false);
  return block;
}

void* Heap::PopFree(PoolDesc* d) {
  // The fast path's pop; d's list is not empty, so a refusal is damage.
  if (void* b = TryAllocateFrom(d)) return b;
  return DamagedFreeList(d);
}

void* Heap::DamagedFreeList(PoolDesc* d) noexcept {
  FreeBlock* b = d->run.free_list();
  ReportCorruption(b, "free list corrupted: the link in this free block was overwritten "
                      "(a heap overflow or a write after free)");
  // Count mode: neither b (a write after free may have put it on the list
  // twice, and it may be live) nor anything after it can be trusted. Drop
  // the whole list: those blocks stay counted as in use (leaked, never
  // handed out), and the allocation is served as if the run were spent.
  d->run.DropFreeList(reinterpret_cast<FreeBlock*>(ArenaOf(d)));
  return Refill(d->size_class);
}

void* Heap::PopCarving(PoolDesc* d) {
  d->run.Carve(d->Start(), d->size, d->capacity, link_key_);
  return PopFree(d);
}

void Heap::SetCurrent(size_t cls, PoolDesc* d) {
  PoolDesc* old = runs_[cls];
  // The old current run is exhausted (no free, fully carved): it is full.
  // The old current run is spent (no free block, fully carved): it sleeps.
  if (old != &g_empty_pool) old->run.FallAsleep(old->capacity);
  d->run.BecomeCurrent();
  runs_[cls] = d;
  SetFastRun(cls, stats_mode_ ? &g_empty_pool : d);
}

int Heap::FindFreeRun(uint32_t n, ArenaHeader** arena) const {
  ArenaHeader* a = FirstAvailArenaOwner();
  for (size_t tries = 0; a != nullptr && tries < kRunSearchLimit; a = a->next, ++tries) {
    const int start = FindRun(a->free_mask, n);
    if (start >= 0) {
      *arena = a;
      return start;
    }
  }
  return -1;
}

PoolDesc* Heap::NewRun(size_t cls, ArenaHeader* a, int start) {
  const uint32_t n = kClasses[cls].run_pools;
  if (start < 0) {
    // Outside the lock: may map memory (and takes the arena source's locks).
    a = AcquireArena(this);
    if (a == nullptr) return nullptr;
    counters_.arenas_acquired.Add(1);
  }
  threading::SpinLockHolder hold(&meta_lock_);
  if (start < 0) {
    ++arenas_;
    ++empty_arenas_;
    free_pools_ += kUsablePools;
    LinkArena(a, /*avail=*/true);
    start = FindRun(a->free_mask, n);
  }
  if (a->used_pools == 0) --empty_arenas_;
  const uint64_t bits = RunBits(n, static_cast<uint32_t>(start));
  a->free_mask &= ~bits;
  a->dirty_mask &= ~bits;  // in a run now: the run's pages are in use
  a->used_pools += n;
  free_pools_ -= n;
  if (a->free_mask == 0) {
    UnlinkArena(a);
    LinkArena(a, /*avail=*/false);
  }
  PoolDesc* head = a->pool(static_cast<size_t>(start));
  head->FormatHead(cls, n, reinterpret_cast<FreeBlock*>(a));  // the list ends at the arena base
  for (uint32_t i = 1; i < n; ++i) head[i].FormatTail(cls, i);
  counters_.runs_created.Add(1);
  PublishCachedPools();
  return head;
}

void Heap::FreeLocalSlow(PoolDesc* d) noexcept {
  if (ABSL_PREDICT_FALSE(d->run.TestedCount() == ~uint32_t{0})) {
    // The count went below zero: the block's run had no live block (an
    // empty run whose list was purged, so the double free did not show).
    // Undo the push and report.
    FreeBlock* b = d->run.UndoPush(link_key_);
    ReportInvalidFree(b, "double free (its run has no live block)", "free");
    return;
  }
  const RunState state = d->run.state();
  // A current run's count carries kCurrentBias and does not get here (but
  // after 2^24 double frees); it is kept for the next allocation anyway.
  if (state == RunState::kCurrent) return;
  if (state == RunState::kAsleep) {
    // Enough blocks came back to wake it.
    const uint32_t in_use = d->run.Wake();
    counters_.runs_woken.Add(1);
    if (in_use == 0) {
      ReleaseRun(d);  // a run of one block
    } else {
      LinkPartial(d);
    }
    return;
  }
  // used == 0 on a partial run.
  if (state == RunState::kPartial) {
    UnlinkPartial(d);
    KeepOrRelease(d);
  }
}

void Heap::KeepOrRelease(PoolDesc* d) {
  // Empty runs are kept whole, free list and all, up to the thread cache
  // budget: a thread that frees a batch and allocates the next one reuses
  // them without claiming pools or carving again. The release policy purges
  // them in place when they stay unused for purge_delay_ms.
  if (CachedPoolBytes() + size_t{d->run_pools} * kPoolSize <= CacheBudget()) {
    const uint64_t now = os::NowMs();
    {
      threading::SpinLockHolder hold(&meta_lock_);
      LinkEmptyLocked(d, now);
    }
    MaybeDecay(now, /*released=*/true);
    return;
  }
  ReleaseRun(d);
}

void Heap::LinkEmptyLocked(PoolDesc* d, uint64_t now) {
  const size_t cls = d->size_class;
  d->run.KeepEmpty(static_cast<uint32_t>(now));
  empty_[cls].PushFront(d);
  empty_run_pools_ += d->run_pools;
  PublishCachedPools();
}

void Heap::UnlinkEmptyLocked(PoolDesc* d, bool reuse) {
  empty_[d->size_class].Remove(d);
  d->run.LeaveEmpty(reuse, reinterpret_cast<FreeBlock*>(ArenaOf(d)));
  empty_run_pools_ -= d->run_pools;
  PublishCachedPools();
}

PoolDesc* Heap::TakeEmpty(size_t cls) {
  // The owner's peek: only the owner adds to its empty lists (the purger
  // may only take runs off), so an empty list stays empty unlocked.
  if (NoEmptyRunOwner(cls)) return nullptr;
  threading::SpinLockHolder hold(&meta_lock_);
  PoolDesc* d = empty_[cls].front();
  if (d == nullptr) return nullptr;
  UnlinkEmptyLocked(d, /*reuse=*/true);  // re-carved if it was purged
  return d;
}

void Heap::LinkPartial(PoolDesc* d) {
  const size_t cls = d->size_class;
  d->run.EnterPartial();
  partial_[cls].PushFront(d);
}

void Heap::UnlinkPartial(PoolDesc* d) {
  partial_[d->size_class].Remove(d);
  d->run.LeavePartial();
}

void Heap::LinkArena(ArenaHeader* a, bool avail) {
  a->on_avail_list = avail;
  (avail ? avail_arenas_ : full_arenas_).PushFront(a);
}

void Heap::UnlinkArena(ArenaHeader* a) {
  (a->on_avail_list ? avail_arenas_ : full_arenas_).Remove(a);
}

bool Heap::IsValid() const {
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const PoolDesc* c = runs_[cls];
    if (current_[cls] != (stats_mode_ ? &g_empty_pool : c)) return false;
    for (size_t k = kLowSlots[cls].first; k < kLowSlots[cls].end; ++k) {
      if (by_size_[k] != current_[cls]) return false;
    }
    if (c != &g_empty_pool && (c->run.state() != RunState::kCurrent || c->size_class != cls || !c->IsValid())) {
      return false;
    }
    for (const PoolDesc* d = partial_[cls].front(); d != nullptr; d = d->next) {
      if (d->run.state() != RunState::kPartial || d->size_class != cls || !d->IsValid()) return false;
    }
    threading::SpinLockHolder hold(&meta_lock_);
    for (const PoolDesc* d = empty_[cls].front(); d != nullptr; d = d->next) {
      if (d->run.state() != RunState::kEmpty || d->size_class != cls || d->Used() != 0) return false;
      if (!d->IsValid()) return false;
    }
  }
  // The purger may be updating dirty masks: read the arenas under the lock.
  threading::SpinLockHolder hold(&meta_lock_);
  size_t arenas = 0, empty = 0, free_pools = 0;
  for (const ArenaList* list : {&avail_arenas_, &full_arenas_}) {
    for (const ArenaHeader* a = list->front(); a != nullptr; a = a->next) {
      ++arenas;
      if (a->used_pools == 0) ++empty;
      free_pools += static_cast<size_t>(__builtin_popcountll(a->free_mask));
      // Relaxed: we own the arena; only we write its owner.
      if (!a->IsValid() || a->owner.load(std::memory_order_relaxed) != this) return false;
      if (a->on_avail_list != (a->free_mask != 0)) return false;
      for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
        if (a->pool(i)->state == PoolState::kHead && !a->pool(i)->IsValid()) return false;
      }
    }
  }
  return arenas == arenas_ && empty == empty_arenas_ && free_pools == free_pools_;
}

}  // namespace strata::internal
