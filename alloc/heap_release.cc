// The thread cache's part in giving memory back: releasing empty runs and
// arenas over the cache budget, purging free pools after the purge delay,
// and the hook into the release engine's global pass. See heap.h for the
// protocol and release.h for the policy.
#include <atomic>

#include "alloc/heap.h"
#include "alloc/heap_internal.h"
#include "alloc/limit.h"
#include "alloc/options.h"
#include "alloc/os.h"

namespace strata::internal {

using heap_internal::RunBits;

namespace {

// SYNCHRONIZATION
//  - g_cached_pools: relaxed sum of the heaps' published free pools (a
//    budget heuristic and a statistic).
//  - g_decay_hook: release store by the release layer, acquire load here.
std::atomic<int64_t> g_cached_pools{0};
std::atomic<GlobalDecayHook> g_decay_hook{nullptr};

// A heap publishes its free-pool count to g_cached_pools when it has moved
// by this many pools (so the shared counter is not written on every run).
constexpr size_t kPublishStep = 16;

}  // namespace

size_t Heap::ReleaseEmptyRuns(uint64_t now) {
  size_t pools = 0;
  threading::SpinLockHolder hold(&meta_lock_);
  for (size_t cls = 1; cls < kNumClasses && empty_run_pools_ != 0; ++cls) {
    while (PoolDesc* d = empty_[cls].front()) {
      const bool purged = d->run.purged();
      const uint32_t since = d->run.free_since();
      const uint32_t n = d->run_pools;
      const uint8_t index = d->index;
      UnlinkEmptyLocked(d, /*reuse=*/false);
      pools += n;
      ReleaseRunLocked(d, now);
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

void Heap::ReleaseRun(PoolDesc* d) {
  const uint64_t now = os::NowMs();
  {
    threading::SpinLockHolder hold(&meta_lock_);
    ReleaseRunLocked(d, now);
  }
  if (free_pools_ >= next_budget_check_pools_ && CachedPoolBytes() > CacheBudget()) ReleaseToBudget(now);
  MaybeDecay(now, /*released=*/true);
}

void Heap::ReleaseRunLocked(PoolDesc* d, uint64_t now) {
  ArenaHeader* a = ArenaOf(d);
  const uint32_t n = d->run_pools;
  const uint8_t start = d->index;
  for (uint32_t i = 0; i < n; ++i) d[i].ResetToFree(static_cast<uint32_t>(now));
  const uint64_t bits = RunBits(n, start);
  a->free_mask |= bits;
  a->dirty_mask |= bits;
  a->used_pools -= n;
  free_pools_ += n;
  if (!a->on_avail_list) {
    UnlinkArena(a);
    LinkArena(a, /*avail=*/true);
  }
  if (a->used_pools == 0) ++empty_arenas_;
  counters_.runs_released.Add(1);
  PublishCachedPools();
}

void Heap::PublishCachedPools() {
  const size_t now = free_pools_ + EmptyRunPoolsOwner();
  const size_t was = published_free_pools_;
  if (now >= was + kPublishStep || was >= now + kPublishStep || (now == 0 && was != 0)) {
    // Relaxed: a budget heuristic and a statistic.
    g_cached_pools.fetch_add(static_cast<int64_t>(now) - static_cast<int64_t>(was),
                             std::memory_order_relaxed);
    published_free_pools_ = now;
  }
}

size_t Heap::CacheBudget() const {
  // Near a soft memory limit, no thread keeps spare pools (limit.h).
  if (ABSL_PREDICT_FALSE(UnderPressure())) return 0;
  const auto total = static_cast<uint64_t>(GetOption(Option::kTotalCacheBytes));
  // Relaxed: a heuristic.
  const int64_t all = g_cached_pools.load(std::memory_order_relaxed);
  if (all > 0 && static_cast<uint64_t>(all) * kPoolSize > total) return 0;
  return static_cast<size_t>(GetOption(Option::kThreadCacheBytes));
}

void Heap::ReleaseIdleOverBudget(size_t budget, uint64_t now) {
  ReleaseEmptyRuns(now);
  ReleaseEmptyCurrentRuns(now);
  ReleaseEmptyArenasOverBudget(budget, now);
}

void Heap::ReleaseToBudget(uint64_t now) {
  const size_t budget = CacheBudget();
  ReleaseIdleOverBudget(budget, now);
  // Retry only after another quarter of the budget (or 16 pools) is freed:
  // arenas pinned by live blocks are not rescanned on every free. (Their
  // free pools stay with this heap, purged by the release policy; handing
  // such arenas to other threads was tried and measured: a thread still
  // freeing its blocks turned its own frees into remote ones and the
  // carriers multiplied, see ARCHITECTURE.md.)
  const size_t step = budget / kPoolSize / 4 > 16 ? budget / kPoolSize / 4 : 16;
  next_budget_check_pools_ = free_pools_ + step;
}

void Heap::ReleaseEmptyCurrentRuns(uint64_t now) {
  // A current run with no live block is kept for the class's next
  // allocation; over budget, it must not pin an otherwise free arena.
  threading::SpinLockHolder hold(&meta_lock_);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = runs_[cls];
    if (d == &g_empty_pool || d->Used() != 0) continue;
    runs_[cls] = &g_empty_pool;
    SetFastRun(cls, &g_empty_pool);
    d->run.Demote();
    ReleaseRunLocked(d, now);
  }
}

void Heap::ReleaseEmptyArenasOverBudget(size_t budget, uint64_t now) {
  // Empty arenas first: nothing pins them.
  if (empty_arenas_ == 0) return;
  threading::SpinLockHolder hold(&meta_lock_);
  for (ArenaHeader* a = avail_arenas_.front(); a != nullptr && CachedPoolBytes() > budget;) {
    ArenaHeader* next = a->next;
    if (a->used_pools == 0) {
      UnlinkArena(a);
      --arenas_;
      --empty_arenas_;
      free_pools_ -= kUsablePools;
      counters_.arenas_released.Add(1);
      ForgetArena(a);
      ReleaseArena(a, now);
    }
    a = next;
  }
  PublishCachedPools();
}

void Heap::ReleaseEmptyArenas(uint64_t now) { ReleaseEmptyArenasOverBudget(0, now); }

void Heap::ReleaseIdle() { ReleaseIdleOverBudget(0, os::NowMs()); }

size_t Heap::PurgeFreePools(uint64_t now, int64_t delay_ms, bool force, bool wait) {
  if (wait) {
    meta_lock_.Lock();
  } else if (!meta_lock_.TryLock()) {
    return 0;
  }
  const size_t bytes = PurgeLocked(now, delay_ms, force);
  meta_lock_.Unlock();
  return bytes;
}

size_t Heap::PurgeLocked(uint64_t now, int64_t delay_ms, bool force) {
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
        counters_.pools_purged.Add(d->run_pools);
        bytes += run_bytes;
      }
    }
  }
  // Full arenas have no free pools: only the avail list matters.
  for (ArenaHeader* a = avail_arenas_.front(); a != nullptr; a = a->next) {
    uint64_t due = 0;
    for (uint64_t m = a->dirty_mask; m != 0; m &= m - 1) {
      const int i = __builtin_ctzll(m);
      if (force || static_cast<int32_t>(now - a->pool(static_cast<size_t>(i))->run.free_since()) >= delay_ms) {
        due |= uint64_t{1} << i;
      }
    }
    // One madvise per stretch of consecutive due pools.
    while (due != 0) {
      const int start = __builtin_ctzll(due);
      const uint64_t from_start = due >> start;
      const int len = from_start == ~uint64_t{0} ? 64 : __builtin_ctzll(~from_start);
      const uint64_t bits = RunBits(static_cast<uint32_t>(len), static_cast<uint32_t>(start));
      if (os::Purge(a->Base() + size_t(start) * kPoolSize, size_t(len) * kPoolSize, mode)) {
        a->dirty_mask &= ~bits;
        counters_.pools_purged.Add(static_cast<uint64_t>(len));
        bytes += size_t(len) * kPoolSize;
      }
      due &= ~bits;
    }
  }
  return bytes;
}

void Heap::MaybeDecay(uint64_t now, bool released) {
  if (now >= next_decay_ms_) {
    const int64_t delay = GetOption(Option::kPurgeDelayMs);
    next_decay_ms_ = now + DecayIntervalMs(delay);
    if (delay >= 0) PurgeFreePools(now, delay, /*force=*/false, /*wait=*/true);
  }
  // Every time: the hook rate-limits its own work with one relaxed load, and
  // must see each release (it starts the background thread on the first).
  RunGlobalDecay(now, released);
}

void RunGlobalDecay(uint64_t now, bool released) {
  // Acquire pairs with the release store in SetGlobalDecayHook().
  if (GlobalDecayHook hook = g_decay_hook.load(std::memory_order_acquire)) hook(now, released);
}

size_t Heap::DecayOrphan(uint64_t now, int64_t delay_ms, bool force) {
  DrainRemote();
  FlushOutgoing();
  ReleaseEmptyArenas(now);
  return PurgeFreePools(now, delay_ms, force, /*wait=*/true);
}

uint64_t CachedPoolBytesAllHeaps() {
  // Relaxed: statistics only.
  const int64_t pools = g_cached_pools.load(std::memory_order_relaxed);
  return pools > 0 ? static_cast<uint64_t>(pools) * kPoolSize : 0;
}

void SetGlobalDecayHook(GlobalDecayHook hook) {
  // Release pairs with the acquire load in RunGlobalDecay().
  g_decay_hook.store(hook, std::memory_order_release);
}

}  // namespace strata::internal
