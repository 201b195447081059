// The memory a heap holds: runs claimed and released, empty runs kept and
// taken back, arenas released, moved and purged (owned_arenas.h).
#include "alloc/owned_arenas.h"

#include "alloc/options.h"
#include "alloc/os.h"

namespace strata::internal {
namespace {

// Index of the lowest pool starting n consecutive free pools, or -1.
int FindRun(uint64_t mask, uint32_t n) {
  uint64_t m = mask;
  for (uint32_t i = 1; i < n && m != 0; ++i) m &= mask >> i;
  return m == 0 ? -1 : __builtin_ctzll(m);
}

// The longest stretch of consecutive free pools in mask, up to
// kMaxRunPools (each step keeps the bits that start one more free pool).
size_t LongestRun(uint64_t mask) {
  uint64_t m = mask;
  size_t n = 0;
  while (m != 0 && n < kMaxRunPools) {
    m &= m >> 1;
    ++n;
  }
  return n;
}

// The list arena `a` belongs on, from its masks (see kArenaLists).
size_t ListOf(const ArenaHeader* a) {
  if (a->used_pools == 0) return kEmptyArenas;
  return LongestRun(a->free_mask);  // 0 (kFullArenas) when none is free
}

// The mask of pools [start, start + n).
uint64_t RunBits(uint32_t n, uint32_t start) {
  return (n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1) << start;
}

// Purges a's free pools free for at least delay_ms (all when force), one
// madvise per stretch of consecutive due pools. Returns the bytes purged.
// REQUIRES: a's owner's metadata lock.
size_t PurgeFreePools(ArenaHeader* a, uint64_t now, int64_t delay_ms, bool force, os::PurgeMode mode,
                      HeapCounters& counters) {
  uint64_t due = 0;
  for (uint64_t m = a->dirty_mask; m != 0; m &= m - 1) {
    const int i = __builtin_ctzll(m);
    if (force || static_cast<int32_t>(now - a->pool(static_cast<size_t>(i))->run.free_since()) >= delay_ms) {
      due |= uint64_t{1} << i;
    }
  }
  size_t bytes = 0;
  while (due != 0) {
    const int start = __builtin_ctzll(due);
    const uint64_t from_start = due >> start;
    const int len = from_start == ~uint64_t{0} ? 64 : __builtin_ctzll(~from_start);
    const uint64_t bits = RunBits(static_cast<uint32_t>(len), static_cast<uint32_t>(start));
    if (os::Purge(a->Base() + size_t(start) * kPoolSize, size_t(len) * kPoolSize, mode)) {
      a->dirty_mask &= ~bits;
      counters.pools_purged.Add(static_cast<uint64_t>(len));
      bytes += size_t(len) * kPoolSize;
    }
    due &= ~bits;
  }
  return bytes;
}

// SYNCHRONIZATION: relaxed sum of the heaps' published free pools (a budget
// heuristic and a statistic).
std::atomic<int64_t> g_cached_pools{0};

// A heap publishes its cached-pool count when it has moved by this many
// pools (so the shared counter is not written on every run).
constexpr size_t kPublishStep = 16;

// Arenas the checked build's FindFreeRun looks at for a run outside the
// quarantined pools before it takes them (checks.h, kQuarantineReleased).
constexpr size_t kQuarantineSearchArenas = 16;

// The pools of `a` released too lately to be reused while others fit
// (checks.h, kQuarantineReleased): the set grows with each release and
// ends kQuarantineMs after the last.
uint64_t Quarantined(const ArenaHeader* a, uint64_t now) {
  if (!kQuarantineReleased || a->quarantine_mask == 0) return 0;
  const bool over = static_cast<int32_t>(static_cast<uint32_t>(now) - a->quarantine_ms) >=
                    static_cast<int32_t>(kQuarantineMs);
  return over ? 0 : a->quarantine_mask & a->free_mask;
}

}  // namespace

uint64_t CachedPoolBytesAllHeaps() {
  // Relaxed: a heuristic and a statistic.
  const int64_t pools = g_cached_pools.load(std::memory_order_relaxed);
  return pools > 0 ? static_cast<uint64_t>(pools) * kPoolSize : 0;
}

void OwnedArenas::Publish() {
  const size_t now = free_pools_ + EmptyRunPoolsOwner();
  const size_t was = published_pools_;
  if (now >= was + kPublishStep || was >= now + kPublishStep || (now == 0 && was != 0)) {
    // Relaxed: a budget heuristic and a statistic.
    g_cached_pools.fetch_add(static_cast<int64_t>(now) - static_cast<int64_t>(was),
                             std::memory_order_relaxed);
    published_pools_ = now;
  }
}

// ---- Runs ------------------------------------------------------------------

int OwnedArenas::FindFreeRun(uint32_t n, ArenaHeader** arena, uint64_t now) const {
  // (A plain if: the default build compiles the walk and drops it.)
  if (kQuarantineReleased) {
    // The checked build looks past the pools released lately first
    // (checks.h): the same best fit, among arenas with n consecutive free
    // pools besides those, in a bounded walk.
    size_t looked = 0;
    for (size_t list = n; list <= kEmptyArenas && looked < kQuarantineSearchArenas; ++list) {
      for (ArenaHeader* a = FirstArenaOwner(list); a != nullptr && looked < kQuarantineSearchArenas;
           a = a->next, ++looked) {
        const int start = FindRun(a->free_mask & ~Quarantined(a, now), n);
        if (start >= 0) {
          *arena = a;
          return start;
        }
      }
    }
  }
  // Best fit: partly used arenas first, the tightest first, so that empty
  // arenas stay empty (and can go back) and long stretches stay long.
  for (size_t list = n; list <= kEmptyArenas; ++list) {
    if (ArenaHeader* a = FirstArenaOwner(list)) {
      *arena = a;
      return FindRun(a->free_mask, n);  // the list guarantees one
    }
  }
  return -1;
}

PoolDesc* OwnedArenas::ClaimRun(size_t cls, ArenaHeader* a, int start, HeapCounters& counters) {
  const uint32_t n = kClasses[cls].run_pools;
  threading::SpinLockHolder hold(&lock_);
  if (start < 0) {
    ++arenas_;
    ++empty_arenas_;
    free_pools_ += kUsablePools;
    LinkArena(a);
    start = FindRun(a->free_mask, n);
  }
  if (a->used_pools == 0) --empty_arenas_;
  const uint64_t bits = RunBits(n, static_cast<uint32_t>(start));
  a->free_mask &= ~bits;
  if constexpr (kQuarantineReleased) a->quarantine_mask &= ~bits;  // in a run now
  a->dirty_mask &= ~bits;  // in a run now: the run's pages are in use
  a->used_pools += n;
  free_pools_ -= n;
  Relist(a);
  PoolDesc* head = a->pool(static_cast<size_t>(start));
  head->FormatHead(cls, n, reinterpret_cast<FreeBlock*>(a));  // the list ends at the arena base
  for (uint32_t i = 1; i < n; ++i) head[i].FormatTail(cls, i);
  counters.runs_created.Add(1);
  Publish();
  return head;
}

void OwnedArenas::ReleaseRun(PoolDesc* d, uint64_t now, HeapCounters& counters, ArenaCache* cache) {
  threading::SpinLockHolder hold(&lock_);
  ReleaseRunLocked(d, now, counters, cache);
}

void OwnedArenas::ReleaseRunLocked(PoolDesc* d, uint64_t now, HeapCounters& counters, ArenaCache* cache) {
  ArenaHeader* a = ArenaOf(d);
  const uint32_t n = d->run_pools;
  const uint8_t start = d->index;
  cache->ForgetPools(d->Start(), n);  // free pools now: the free fast path must not know them
  for (uint32_t i = 0; i < n; ++i) d[i].ResetToFree(static_cast<uint32_t>(now));
  const uint64_t bits = RunBits(n, start);
  a->free_mask |= bits;
  a->dirty_mask |= bits;
  if constexpr (kQuarantineReleased) {
    // Reused last for kQuarantineMs (FindFreeRun); an expired set starts over.
    if (Quarantined(a, now) == 0) a->quarantine_mask = 0;
    a->quarantine_mask |= bits;
    a->quarantine_ms = static_cast<uint32_t>(now);
  }
  a->used_pools -= n;
  free_pools_ += n;
  if (a->used_pools == 0) ++empty_arenas_;
  Relist(a);
  counters.runs_released.Add(1);
  Publish();
}

// ---- Empty runs ------------------------------------------------------------

void OwnedArenas::KeepEmpty(PoolDesc* d, uint64_t now) {
  threading::SpinLockHolder hold(&lock_);
  LinkEmptyLocked(d, now);
}

void OwnedArenas::LinkEmptyLocked(PoolDesc* d, uint64_t now) {
  d->run.KeepEmpty(static_cast<uint32_t>(now));
  empty_[d->size_class].PushFront(d);
  empty_run_pools_ += d->run_pools;
  Publish();
}

void OwnedArenas::UnlinkEmptyLocked(PoolDesc* d, bool reuse) {
  empty_[d->size_class].Remove(d);
  d->run.LeaveEmpty(reuse, reinterpret_cast<FreeBlock*>(ArenaOf(d)));
  empty_run_pools_ -= d->run_pools;
  Publish();
}

PoolDesc* OwnedArenas::TakeEmpty(size_t cls) {
  // The owner's peek: only the owner adds to its empty lists (the purger
  // may only purge runs in place), so an empty list stays empty unlocked.
  if (NoEmptyRunOwner(cls)) return nullptr;
  threading::SpinLockHolder hold(&lock_);
  PoolDesc* d = empty_[cls].front();
  if (d == nullptr) return nullptr;
  UnlinkEmptyLocked(d, /*reuse=*/true);  // re-carved if it was purged
  return d;
}

size_t OwnedArenas::ReleaseEmptyRuns(uint64_t now, HeapCounters& counters, ArenaCache* cache) {
  // The owner's peek (see EmptyRunPoolsOwner): no lock when there are none.
  if (EmptyRunPoolsOwner() == 0) return 0;
  size_t pools = 0;
  threading::SpinLockHolder hold(&lock_);
  for (size_t cls = 1; cls < kNumClasses && empty_run_pools_ != 0; ++cls) {
    while (PoolDesc* d = empty_[cls].front()) {
      const bool purged = d->run.purged();
      const uint32_t since = d->run.free_since();
      const uint32_t n = d->run_pools;
      const uint8_t index = d->index;
      UnlinkEmptyLocked(d, /*reuse=*/false);
      pools += n;
      ReleaseRunLocked(d, now, counters, cache);
      if (purged) {
        // Its pages are already given back: free, not dirty.
        ArenaOf(d)->dirty_mask &= ~RunBits(n, index);
      } else {
        // Free since it went empty: due for purging as it would have been.
        for (uint32_t i = 0; i < n; ++i) d[i].ResetToFree(since);
      }
    }
  }
  return pools;
}

// ---- Arenas ----------------------------------------------------------------

void OwnedArenas::LinkArena(ArenaHeader* a) {
  const size_t list = ListOf(a);
  a->owner_list = static_cast<uint8_t>(list);
  lists_[list].PushFront(a);
}

void OwnedArenas::UnlinkArena(ArenaHeader* a) { lists_[a->owner_list].Remove(a); }

void OwnedArenas::Relist(ArenaHeader* a) {
  if (ListOf(a) == a->owner_list) return;
  UnlinkArena(a);
  LinkArena(a);
}

void OwnedArenas::ReleaseEmptyArenas(size_t budget, uint64_t now, ArenaCache* cache, const HeapEnv& env,
                                     HeapCounters& counters) {
  // Empty arenas first: nothing pins them.
  if (empty_arenas_ == 0) return;
  threading::SpinLockHolder hold(&lock_);
  for (ArenaHeader* a = lists_[kEmptyArenas].front(); a != nullptr && CachedPoolBytes() > budget;) {
    ArenaHeader* next = a->next;
    UnlinkArena(a);
    --arenas_;
    --empty_arenas_;
    free_pools_ -= kUsablePools;
    counters.arenas_released.Add(1);
    cache->Forget(a);
    env.release_arena(a, now);
    a = next;
  }
  Publish();
}

size_t OwnedArenas::Purge(uint64_t now, int64_t delay_ms, bool force, bool wait, HeapCounters& counters) {
  if (wait) {
    lock_.Lock();
  } else if (!lock_.TryLock()) {
    return 0;
  }
  const size_t bytes = PurgeLocked(now, delay_ms, force, counters);
  lock_.Unlock();
  return bytes;
}

size_t OwnedArenas::PurgeLocked(uint64_t now, int64_t delay_ms, bool force, HeapCounters& counters) {
  if (delay_ms < 0 && !force) return 0;
  const auto mode =
      GetOption(Option::kPurgeMode) == 1 ? os::PurgeMode::kFree : os::PurgeMode::kDontNeed;
  size_t bytes = 0;
  // Empty runs kept whole: purged in place (their list is rebuilt on reuse).
  for (size_t cls = 1; cls < kNumClasses && empty_run_pools_ != 0; ++cls) {
    for (PoolDesc* d = empty_[cls].front(); d != nullptr; d = d->next) {
      if (d->run.purged()) continue;
      if (!force && static_cast<int32_t>(now - d->run.free_since()) < delay_ms) continue;
      const size_t run_bytes = size_t{d->run_pools} * kPoolSize;
      if (os::Purge(d->Start(), run_bytes, mode)) {
        d->run.MarkPurged();
        counters.pools_purged.Add(d->run_pools);
        bytes += run_bytes;
      }
    }
  }
  // Full arenas have no free pools: the other lists only.
  for (size_t list = kFullArenas + 1; list < kArenaLists; ++list) {
    for (ArenaHeader* a = lists_[list].front(); a != nullptr; a = a->next) {
      bytes += PurgeFreePools(a, now, delay_ms, force, mode, counters);
    }
  }
  return bytes;
}

// ---- Moving arenas ---------------------------------------------------------

ArenaHeader* OwnedArenas::AnyArena() {
  threading::SpinLockHolder hold(&lock_);
  for (const ArenaList& list : lists_) {
    if (!list.empty()) return list.front();
  }
  return nullptr;
}

size_t OwnedArenas::Detach(ArenaHeader* a, ArenaCache* cache) {
  const size_t free = static_cast<size_t>(__builtin_popcountll(a->free_mask));
  threading::SpinLockHolder hold(&lock_);
  cache->Forget(a);  // the cache holds only arenas the heap owns
  UnlinkArena(a);
  --arenas_;
  free_pools_ -= free;
  if (a->used_pools == 0) --empty_arenas_;
  Publish();
  return free;
}

void OwnedArenas::MoveEmptyRun(PoolDesc* d, OwnedArenas* to) {
  // The two heaps' locks one after the other, never nested.
  uint32_t since;
  {
    threading::SpinLockHolder hold(&lock_);
    since = d->run.free_since();
    UnlinkEmptyLocked(d, /*reuse=*/false);
  }
  threading::SpinLockHolder hold(&to->lock_);
  to->LinkEmptyLocked(d, since);
}

void OwnedArenas::Attach(ArenaHeader* a, size_t free_pools) {
  threading::SpinLockHolder hold(&lock_);
  LinkArena(a);
  ++arenas_;
  free_pools_ += free_pools;
  if (a->used_pools == 0) ++empty_arenas_;
  Publish();
}

// ---- Checks ----------------------------------------------------------------

bool OwnedArenas::IsValid(const Heap* owner) const {
  // The purger may be updating dirty masks: read under the lock.
  threading::SpinLockHolder hold(&lock_);
  size_t empty_pools = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    for (const PoolDesc* d = empty_[cls].front(); d != nullptr; d = d->next) {
      if (d->run.state() != RunState::kEmpty || d->size_class != cls || d->Used() != 0) return false;
      if (!d->IsValid()) return false;
      empty_pools += d->run_pools;
    }
  }
  if (empty_pools != empty_run_pools_) return false;
  size_t arenas = 0, empty = 0, free_pools = 0;
  for (size_t list = 0; list < kArenaLists; ++list) {
    for (const ArenaHeader* a = lists_[list].front(); a != nullptr; a = a->next) {
      ++arenas;
      if (a->used_pools == 0) ++empty;
      free_pools += static_cast<size_t>(__builtin_popcountll(a->free_mask));
      // Relaxed: the owner writes the owner field only when the arena moves.
      if (!a->IsValid() || a->owner.load(std::memory_order_relaxed) != owner) return false;
      if (a->owner_list != list || ListOf(a) != list) return false;
      for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
        if (a->pool(i)->state == PoolState::kHead && !a->pool(i)->IsValid()) return false;
      }
    }
  }
  return arenas == arenas_ && empty == empty_arenas_ && free_pools == free_pools_;
}

}  // namespace strata::internal
