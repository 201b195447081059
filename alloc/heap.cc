// Slow paths of the thread cache; see heap.h for the protocol.
#include "alloc/heap.h"

#include <errno.h>

#include <new>

#include "alloc/error.h"
#include "alloc/meta_alloc.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "threading/tagged_stack.h"
#include "threading/thread_exit.h"

namespace strata::internal {

constinit PoolDesc g_empty_pool;
constinit Heap g_empty_heap(0);
constinit thread_local Heap* tls_heap ABSL_ATTRIBUTE_INITIAL_EXEC = &g_empty_heap;

namespace {

// SYNCHRONIZATION
//  - g_orphans, g_free_heaps: lock-free tagged stacks of heaps (type-stable).
//    Push is a release and pop an acquire: the previous owner's writes to the
//    heap happen-before the next owner's reads.
//  - g_all_heaps: push-only list (release CAS; readers acquire).
//  - g_next_id: relaxed counter; ids only spread outgoing slots.
//  - g_cached_pools: relaxed sum of the heaps' published free pools (a
//    budget heuristic and a statistic).
//  - g_decay_hook: release store by the release layer, acquire load here.
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_orphans;
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_free_heaps;
std::atomic<Heap*> g_all_heaps{nullptr};
std::atomic<uint32_t> g_next_id{1};
std::atomic<int64_t> g_cached_pools{0};
std::atomic<GlobalDecayHook> g_decay_hook{nullptr};
std::atomic<ThreadExitNotice> g_exit_notice{nullptr};

constinit threading::ThreadExitHook g_exit_hook(&OnThreadExit);

// A heap publishes its free-pool count to g_cached_pools when it has moved
// by this many pools (so the shared counter is not written on every run).
constexpr size_t kPublishStep = 16;

// Index of the lowest pool starting n consecutive free pools, or -1.
int FindRun(uint64_t mask, uint32_t n) {
  uint64_t m = mask;
  for (uint32_t i = 1; i < n && m != 0; ++i) m &= mask >> i;
  return m == 0 ? -1 : __builtin_ctzll(m);
}

// The second word of a block in a remote batch (blocks of 16 bytes or more).
FreeBlock*& SkipLink(FreeBlock* b) { return reinterpret_cast<FreeBlock**>(b)[1]; }

uint64_t RunBits(uint32_t n, uint32_t start) {
  return (n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1) << start;
}

size_t BatchBucket(size_t blocks) {
  size_t b = 0;
  while (b + 1 < kBatchBuckets && (blocks >> (b + 1)) != 0) ++b;
  return b;
}

}  // namespace

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
    PoolDesc* d = runs_[cls];
    if (!IsListEnd(d->free)) return PopFree(d);
  }
  return Refill(cls);
}

void Heap::SyncStatsMode() {
  const bool want = GetOption(Option::kStats) != 0;
  if (want != stats_mode_) SetStatsMode(want);
}

void Heap::SetStatsMode(bool on) {
  stats_mode_ = on;
  for (size_t c = 1; c < kNumClasses; ++c) current_[c] = on ? &g_empty_pool : runs_[c];
}

void* Heap::Refill(size_t cls) {
  counters_.refills.Add(1);
  PoolDesc* d = runs_[cls];
  // 1. The current run still has uncarved blocks.
  if (d->carved < d->capacity) return PopCarving(d);
  // 2. Blocks other threads gave back (may refill the current run).
  if (DrainRemote() > 0) {
    d = runs_[cls];
    if (!IsListEnd(d->free)) return PopFree(d);
  }
  // 3. A partial run of this class, then an empty one kept whole.
  PoolDesc* p = partial_[cls];
  if (p != nullptr) {
    UnlinkPartial(p);
  } else {
    p = TakeEmpty(cls);
  }
  if (p != nullptr) {
    SetCurrent(cls, p);
    return !IsListEnd(p->free) ? PopFree(p) : PopCarving(p);
  }
  // 4. A new run. Hand over what we hold for others first: they may be
  // waiting for memory as we are.
  FlushOutgoing();
  const uint32_t pools = kClasses[cls].run_pools;
  ArenaHeader* arena = nullptr;
  int start = FindFreeRun(pools, &arena);
  // Empty runs of other classes give their pools back before we take more.
  if (start < 0 && empty_run_pools_ != 0 && ReleaseEmptyRuns(os::NowMs()) != 0) {
    start = FindFreeRun(pools, &arena);
  }
  if (start < 0 && CollectOrphans(1) > 0) {
    // A dead thread's memory is ours now: its partial runs come first.
    if (PoolDesc* q = partial_[cls]) {
      UnlinkPartial(q);
      SetCurrent(cls, q);
      return !IsListEnd(q->free) ? PopFree(q) : PopCarving(q);
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
  FreeBlock* b = d->free;
  d->free = DecodeLink(b->next, ListKey());
  b->next = nullptr;
  d->used.Add(1);
  return b;
}

void Heap::MarkFull(PoolDesc* d) {
  // Exhausted (no free block, fully carved): every block is in use. The run
  // sleeps until WakeFrees(capacity) of them come back (see kWakeShare).
  d->list = PoolList::kNone;
  d->SetBias(d->capacity - WakeFrees(d->capacity));
}

void* Heap::PopCarving(PoolDesc* d) {
  const uint32_t size = kClasses[d->size_class].size;
  uint32_t n = static_cast<uint32_t>(kPoolSize) / size;  // about a page at a time
  if (n == 0) n = 1;
  if (n > d->capacity - d->carved) n = d->capacity - d->carved;
  char* first = d->Start() + size_t{d->carved} * size;
  // Link first .. first + (n-1)*size in address order, onto the free list.
  const uintptr_t key = ListKey();
  char* p = first + size_t{n - 1} * size;
  FreeBlock* head = d->free;
  for (uint32_t i = 0; i < n; ++i, p -= size) {
    auto* b = reinterpret_cast<FreeBlock*>(p);
    b->next = EncodeLink(head, key);
    head = b;
  }
  d->free = head;
  d->carved += n;
  return PopFree(d);
}

void Heap::SetCurrent(size_t cls, PoolDesc* d) {
  PoolDesc* old = runs_[cls];
  // The old current run is exhausted (no free, fully carved): it is full.
  if (old != &g_empty_pool) MarkFull(old);
  d->list = PoolList::kCurrent;
  d->SetBias(0u - kCurrentBias);
  runs_[cls] = d;
  current_[cls] = stats_mode_ ? &g_empty_pool : d;
}

int Heap::FindFreeRun(uint32_t n, ArenaHeader** arena) const {
  ArenaHeader* a = avail_arenas_;
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
  head->free = reinterpret_cast<FreeBlock*>(a);  // the list's end
  head->used.Set(0);
  head->bias.Set(0);
  head->carved = 0;
  head->size = kClasses[cls].size;
  head->div_magic = kClasses[cls].div_magic;
  head->start = static_cast<uint32_t>(start) * static_cast<uint32_t>(kPoolSize);
  head->capacity = static_cast<uint16_t>(kClasses[cls].blocks);
  head->size_class = static_cast<uint8_t>(cls);
  head->run_pools = static_cast<uint8_t>(n);
  head->head_offset = 0;
  head->state = PoolState::kHead;
  head->list = PoolList::kNone;
  head->prev = head->next = nullptr;
  for (uint32_t i = 1; i < n; ++i) {
    PoolDesc* t = head + i;
    t->state = PoolState::kTail;
    t->head_offset = static_cast<uint8_t>(i);
    t->size_class = static_cast<uint8_t>(cls);
  }
  counters_.runs_created.Add(1);
  PublishCachedPools();
  return head;
}

// ---------------------------------------------------------------------------
// Local free

void Heap::FreeLocalSlow(PoolDesc* d) noexcept {
  const uint32_t used = d->used.Get();
  if (ABSL_PREDICT_FALSE(used == ~uint32_t{0})) {
    // The count went below zero: the block's run had no live block (an
    // empty run whose list was purged, so the double free did not show).
    // Undo the push and report.
    FreeBlock* b = d->free;
    d->free = DecodeLink(b->next, ListKey());
    d->used.Set(0);
    ReportInvalidFree(b, "double free (its run has no live block)", "free");
    return;
  }
  const PoolList list = d->list;
  // A current run's count carries kCurrentBias and does not get here (but
  // after 2^24 double frees); it is kept for the next allocation anyway.
  if (list == PoolList::kCurrent) return;
  if (list == PoolList::kNone) {
    // Asleep, and enough blocks came back to wake it (used counted down to
    // zero): the true count is the bias.
    const uint32_t in_use = d->Used();
    d->SetBias(0);
    counters_.runs_woken.Add(1);
    if (in_use == 0) {
      ReleaseRun(d);  // a run of one block
    } else {
      LinkPartial(d);
    }
    return;
  }
  // used == 0 on a partial run.
  if (list == PoolList::kPartial) {
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
  d->list = PoolList::kEmpty;
  d->cached_empty = true;
  d->free_since = static_cast<uint32_t>(now);
  d->prev = nullptr;
  d->next = empty_[cls];
  if (d->next != nullptr) d->next->prev = d;
  empty_[cls] = d;
  empty_run_pools_ += d->run_pools;
  PublishCachedPools();
}

void Heap::UnlinkEmptyLocked(PoolDesc* d) {
  if (d->prev != nullptr) {
    d->prev->next = d->next;
  } else {
    empty_[d->size_class] = d->next;
  }
  if (d->next != nullptr) d->next->prev = d->prev;
  d->prev = d->next = nullptr;
  d->list = PoolList::kNone;
  d->cached_empty = false;
  empty_run_pools_ -= d->run_pools;
  PublishCachedPools();
}

PoolDesc* Heap::TakeEmpty(size_t cls) {
  if (empty_[cls] == nullptr) return nullptr;  // owner's racy peek; checked below
  threading::SpinLockHolder hold(&meta_lock_);
  PoolDesc* d = empty_[cls];
  if (d == nullptr) return nullptr;
  UnlinkEmptyLocked(d);
  if (d->purged) {
    // Its pages were given back: they read as zero, the list is gone.
    d->purged = false;
    d->carved = 0;
    d->free = reinterpret_cast<FreeBlock*>(ArenaOf(d));
  }
  return d;
}

size_t Heap::ReleaseEmptyRuns(uint64_t now) {
  size_t pools = 0;
  threading::SpinLockHolder hold(&meta_lock_);
  for (size_t cls = 1; cls < kNumClasses && empty_run_pools_ != 0; ++cls) {
    while (PoolDesc* d = empty_[cls]) {
      const bool purged = d->purged;
      const uint32_t since = d->free_since;
      const uint32_t n = d->run_pools;
      const uint8_t index = d->index;
      UnlinkEmptyLocked(d);
      pools += n;
      ReleaseRunLocked(d, now);
      if (purged) {
        // Its pages are already given back: free, not dirty.
        ArenaOf(d)->dirty_mask &= ~RunBits(n, index);
      } else {
        // Free since it went empty: due for purging as it would have been.
        for (uint32_t i = 0; i < n; ++i) d[i].free_since = since;
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
  if (free_pools_ >= next_trim_pools_ && CachedPoolBytes() > CacheBudget()) TrimToBudget(now);
  MaybeDecay(now, /*released=*/true);
}

void Heap::ReleaseRunLocked(PoolDesc* d, uint64_t now) {
  ArenaHeader* a = ArenaOf(d);
  const uint32_t n = d->run_pools;
  const uint8_t start = d->index;
  for (uint32_t i = 0; i < n; ++i) {
    d[i].ResetToFree();
    d[i].free_since = static_cast<uint32_t>(now);
  }
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
  const size_t now = free_pools_ + empty_run_pools_;
  const size_t was = published_free_pools_;
  if (now >= was + kPublishStep || was >= now + kPublishStep || (now == 0 && was != 0)) {
    // Relaxed: a budget heuristic and a statistic.
    g_cached_pools.fetch_add(static_cast<int64_t>(now) - static_cast<int64_t>(was),
                             std::memory_order_relaxed);
    published_free_pools_ = now;
  }
}

size_t Heap::CacheBudget() const {
  const auto total = static_cast<uint64_t>(GetOption(Option::kTotalCacheBytes));
  // Relaxed: a heuristic.
  const int64_t all = g_cached_pools.load(std::memory_order_relaxed);
  if (all > 0 && static_cast<uint64_t>(all) * kPoolSize > total) return 0;
  return static_cast<size_t>(GetOption(Option::kThreadCacheBytes));
}

void Heap::ReleaseIdleOverBudget(size_t budget, uint64_t now) {
  ReleaseEmptyRuns(now);
  RetireEmptyCurrentRuns(now);
  ReleaseEmptyArenasOverBudget(budget, now);
}

void Heap::TrimToBudget(uint64_t now) {
  const size_t budget = CacheBudget();
  ReleaseIdleOverBudget(budget, now);
  // Retry only after another quarter of the budget (or 16 pools) is freed:
  // arenas pinned by live blocks are not rescanned on every free. (Their
  // free pools stay with this heap, purged by the release policy; handing
  // such arenas to other threads was tried and measured: a thread still
  // freeing its blocks turned its own frees into remote ones and the
  // carriers multiplied, see ARCHITECTURE.md.)
  const size_t step = budget / kPoolSize / 4 > 16 ? budget / kPoolSize / 4 : 16;
  next_trim_pools_ = free_pools_ + step;
}

void Heap::RetireEmptyCurrentRuns(uint64_t now) {
  // A current run with no live block is kept for the class's next
  // allocation; over budget, it must not pin an otherwise free arena.
  threading::SpinLockHolder hold(&meta_lock_);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = runs_[cls];
    if (d == &g_empty_pool || d->Used() != 0) continue;
    runs_[cls] = &g_empty_pool;
    current_[cls] = &g_empty_pool;
    d->list = PoolList::kNone;
    d->SetBias(0);
    ReleaseRunLocked(d, now);
  }
}

void Heap::ReleaseEmptyArenasOverBudget(size_t budget, uint64_t now) {
  // Empty arenas first: nothing pins them.
  if (empty_arenas_ == 0) return;
  threading::SpinLockHolder hold(&meta_lock_);
  for (ArenaHeader* a = avail_arenas_; a != nullptr && CachedPoolBytes() > budget;) {
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

void Heap::ReturnEmptyArenas() { ReleaseIdleOverBudget(0, os::NowMs()); }

void Heap::MoveArenaFrom(Heap* from, ArenaHeader* a) {
  // The two heaps' locks are taken one after the other, never nested (see
  // the SYNCHRONIZATION note): between them the arena is on neither list.
  const size_t free = static_cast<size_t>(__builtin_popcountll(a->free_mask));
  {
    threading::SpinLockHolder hold(&from->meta_lock_);
    from->UnlinkArena(a);
    --from->arenas_;
    from->free_pools_ -= free;
    if (a->used_pools == 0) --from->empty_arenas_;
    from->PublishCachedPools();
  }
  // Partial and empty runs move with the arena (partial-list links are
  // owner-only data: the caller holds both heaps exclusively as owner).
  for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
    PoolDesc* d = a->pool(i);
    if (d->state != PoolState::kHead) continue;
    if (d->list == PoolList::kPartial) {
      from->UnlinkPartial(d);
      LinkPartial(d);
    } else if (d->list == PoolList::kEmpty) {
      uint32_t since;
      {
        threading::SpinLockHolder hold(&from->meta_lock_);
        since = d->free_since;
        from->UnlinkEmptyLocked(d);
      }
      threading::SpinLockHolder hold(&meta_lock_);
      LinkEmptyLocked(d, since);
    }
  }
  // Release pairs with the acquire load of owner by freeing threads: a
  // thread that sees us as owner sends blocks here. Threads that still saw
  // `from` send them to `from`, which forwards them (FreeLocalOrForward).
  a->owner.store(this, std::memory_order_release);
  threading::SpinLockHolder hold(&meta_lock_);
  LinkArena(a, a->free_mask != 0);
  ++arenas_;
  free_pools_ += free;
  if (a->used_pools == 0) ++empty_arenas_;
  PublishCachedPools();
}

void Heap::LinkPartial(PoolDesc* d) {
  const size_t cls = d->size_class;
  d->list = PoolList::kPartial;
  d->prev = nullptr;
  d->next = partial_[cls];
  if (d->next != nullptr) d->next->prev = d;
  partial_[cls] = d;
}

void Heap::UnlinkPartial(PoolDesc* d) {
  if (d->prev != nullptr) {
    d->prev->next = d->next;
  } else {
    partial_[d->size_class] = d->next;
  }
  if (d->next != nullptr) d->next->prev = d->prev;
  d->prev = d->next = nullptr;
  d->list = PoolList::kNone;
}

void Heap::LinkArena(ArenaHeader* a, bool avail) {
  ArenaHeader*& head = avail ? avail_arenas_ : full_arenas_;
  a->on_avail_list = avail;
  a->prev = nullptr;
  a->next = head;
  if (head != nullptr) head->prev = a;
  head = a;
}

void Heap::UnlinkArena(ArenaHeader* a) {
  if (a->prev != nullptr) {
    a->prev->next = a->next;
  } else {
    (a->on_avail_list ? avail_arenas_ : full_arenas_) = a->next;
  }
  if (a->next != nullptr) a->next->prev = a->prev;
  a->prev = a->next = nullptr;
}

// ---------------------------------------------------------------------------
// Purging

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
    for (PoolDesc* d = empty_[cls]; d != nullptr; d = d->next) {
      if (d->purged) continue;
      if (!force && static_cast<int32_t>(now - d->free_since) < delay_ms) continue;
      const size_t run_bytes = size_t{d->run_pools} * kPoolSize;
      if (os::Purge(d->Start(), run_bytes, mode)) {
        d->purged = true;
        counters_.pools_purged.Add(d->run_pools);
        bytes += run_bytes;
      }
    }
  }
  // Full arenas have no free pools: only the avail list matters.
  for (ArenaHeader* a = avail_arenas_; a != nullptr; a = a->next) {
    uint64_t due = 0;
    for (uint64_t m = a->dirty_mask; m != 0; m &= m - 1) {
      const int i = __builtin_ctzll(m);
      if (force || static_cast<int32_t>(now - a->pool(static_cast<size_t>(i))->free_since) >= delay_ms) {
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
  // Acquire pairs with the release store in SetGlobalDecayHook().
  if (GlobalDecayHook hook = g_decay_hook.load(std::memory_order_acquire)) hook(now, released);
}

size_t Heap::TidyOrphan(uint64_t now, int64_t delay_ms, bool force) {
  DrainRemote();
  FlushOutgoing();
  ReleaseEmptyArenas(now);
  return PurgeFreePools(now, delay_ms, force, /*wait=*/true);
}

// ---------------------------------------------------------------------------
// Remote free

void Heap::FreeRemote(void* p, Heap* owner, size_t bytes) {
  auto* b = static_cast<FreeBlock*>(p);
  if (this == &g_empty_heap) {
    // First call of this thread, or a free after its exit hook ran.
    Heap* h = AcquireHeapForThread();
    if (h == nullptr) {
      // No heap to batch in: a batch of one. Relaxed: statistics.
      owner->queued_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
      owner->remote_.PushBatch(b, b);
    } else if (h == owner) {
      h->FreeLocal(RunOf(ArenaOf(p), p), p);  // we adopted the owner itself
    } else {
      h->FreeRemote(p, owner, bytes);
    }
    return;
  }
  Outgoing& o = outgoing_[owner->id_ % kOutgoingSlots];
  if (o.target != owner) {
    if (o.head != nullptr) Flush(o);
    o.target = owner;
  }
  b->next = o.head;
  if (bytes >= 2 * sizeof(FreeBlock*)) SkipLink(b) = o.recent[kSkipAhead - 1];
  for (size_t i = kSkipAhead - 1; i > 0; --i) o.recent[i] = o.recent[i - 1];
  o.recent[0] = b;
  if (o.head == nullptr) o.tail = b;
  o.head = b;
  o.bytes += bytes;
  ++o.blocks;
  counters_.remote_frees.Add(1);
  counters_.remote_bytes.Add(bytes);
  counters_.outgoing_bytes.Add(bytes);
  if (o.bytes >= static_cast<uint64_t>(GetOption(Option::kRemoteBatchBytes))) Flush(o);
}

void Heap::Flush(Outgoing& o) {
  counters_.batch_blocks[BatchBucket(o.blocks)].Add(1);
  counters_.outgoing_bytes.Sub(o.bytes);
  // Relaxed: statistics; counted before the push so the owner's decrement
  // on drain never sees it missing.
  o.target->queued_bytes_.fetch_add(static_cast<int64_t>(o.bytes), std::memory_order_relaxed);
  o.target->remote_.PushBatch(o.head, o.tail);
  o.head = o.tail = nullptr;
  o.bytes = 0;
  o.blocks = 0;
  for (FreeBlock*& r : o.recent) r = nullptr;
}

void Heap::FlushOutgoing() {
  for (Outgoing& o : outgoing_) {
    if (o.head != nullptr) Flush(o);
  }
}

bool Heap::PushSuspect(void* p) {
  for (auto& slot : suspects_) {
    void* empty = nullptr;
    // Relaxed: the flag store below publishes the slot.
    if (slot.compare_exchange_strong(empty, p, std::memory_order_relaxed)) {
      // Relaxed: statistics only.
      suspect_bytes_.fetch_add(static_cast<int64_t>(kClasses[RunOf(ArenaOf(p), p)->size_class].size),
                               std::memory_order_relaxed);
      // Release pairs with the acquire exchange in DrainSuspects(): the owner
      // sees the slot (and the program's writes before the free).
      has_suspects_.store(true, std::memory_order_release);
      return true;
    }
  }
  return false;
}

size_t Heap::DrainSuspects() {
  // Relaxed pre-check: a flag raised just after is seen on the next drain.
  if (!has_suspects_.load(std::memory_order_relaxed)) return 0;
  // Acquire pairs with the release store in PushSuspect().
  if (!has_suspects_.exchange(false, std::memory_order_acquire)) return 0;
  size_t n = 0;
  for (auto& slot : suspects_) {
    // Acquire: pairs with the pusher's flag release (via the exchange above);
    // the exchange claims the slot's block.
    void* p = slot.exchange(nullptr, std::memory_order_acquire);
    if (p == nullptr) continue;
    ArenaHeader* a = ArenaOf(p);
    PoolDesc* d = RunOf(a, p);
    // Relaxed: statistics only.
    suspect_bytes_.fetch_sub(static_cast<int64_t>(kClasses[d->size_class].size),
                             std::memory_order_relaxed);
    // Acquire pairs with the release store of owner on arena hand-over.
    Heap* owner = a->owner.load(std::memory_order_acquire);
    if (owner != this) {
      // The arena moved on: the new owner checks it.
      if (owner == nullptr) {
        ReportInvalidFree(p, "block of an empty arena (double free?)", "free");
      } else if (!owner->PushSuspect(p)) {
        FreeLocalOrForward(p, a, d, d->size);  // every slot taken: a plain remote free
      }
      continue;
    }
    if (d->HasFreeBlock(p)) {
      ReportInvalidFree(p, "double free (block already free)", "free");
      continue;  // count mode: drop the second free
    }
    FreeLocal(d, p);
    ++n;
  }
  return n;
}

size_t Heap::DrainRemote() {
  FreeBlock* b = remote_.TakeAll();
  size_t n = DrainSuspects();
  if (b == nullptr) return n;
  int64_t bytes = 0;
  size_t received = 0;
  while (b != nullptr) {
    FreeBlock* next = b->next;
    ArenaHeader* a = ArenaOf(b);
    // The block is live (travelling): its run's shape is fixed.
    PoolDesc* d = RunOf(a, b);
    const size_t size = d->size;
    // See Outgoing: start fetching a block further down the batch (for
    // writing: we push it onto its run's list).
    if (size >= 2 * sizeof(FreeBlock*)) __builtin_prefetch(SkipLink(b), 1);
    FreeLocalOrForward(b, a, d, size);
    bytes += static_cast<int64_t>(size);
    b = next;
    ++received;
  }
  counters_.blocks_received.Add(received);
  // Relaxed: statistics (see Flush()).
  queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  return n + received;
}

void Heap::FreeLocalOrForward(void* p, ArenaHeader* a, PoolDesc* d, size_t size) {
  // An arena in our cache is ours (see ArenaCacheSlot) without a look at its
  // owner. Acquire pairs with the release store of owner when the arena
  // changed hands.
  if (ArenaCacheSlot(reinterpret_cast<uintptr_t>(p)) == reinterpret_cast<uintptr_t>(a)) {
    FreeLocal(d, p);
    return;
  }
  Heap* owner = a->owner.load(std::memory_order_acquire);
  if (owner == this) {
    FreeLocal(d, p);
  } else {
    counters_.blocks_forwarded.Add(1);
    FreeRemote(p, owner, size);
  }
}

// ---------------------------------------------------------------------------
// Thread life

void Heap::Abandon() {
  ForgetAllArenas();  // the next thread to hold this heap starts afresh
  DrainRemote();  // may forward blocks: they join outgoing batches
  FlushOutgoing();
  for (Outgoing& o : outgoing_) o.target = nullptr;
  if (stats_mode_) SetStatsMode(false);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = runs_[cls];
    if (d == &g_empty_pool) continue;
    current_[cls] = runs_[cls] = &g_empty_pool;
    d->list = PoolList::kNone;
    d->SetBias(0);
    if (d->used.Get() == 0) {
      ReleaseRun(d);
    } else if (!IsListEnd(d->free) || d->carved < d->capacity) {
      LinkPartial(d);
    } else {
      MarkFull(d);
    }
  }
  // Return every empty run and empty arena: a dead thread needs no spares.
  ReleaseEmptyRuns(os::NowMs());
  ReleaseEmptyArenas(os::NowMs());
}

void Heap::Absorb(Heap* orphan) {
  // Blocks already queued for the orphan: free them as the orphan, whose
  // metadata we hold exclusively, before its arenas move.
  orphan->DrainRemote();
  orphan->FlushOutgoing();
  for (;;) {
    ArenaHeader* a;
    {
      threading::SpinLockHolder hold(&orphan->meta_lock_);
      a = orphan->avail_arenas_ != nullptr ? orphan->avail_arenas_ : orphan->full_arenas_;
    }
    if (a == nullptr) break;
    MoveArenaFrom(orphan, a);
  }
  counters_.orphans_absorbed.Add(1);
}

size_t Heap::CollectOrphans(size_t max_orphans) {
  size_t absorbed = 0;
  while (absorbed < max_orphans) {
    Heap* orphan = g_orphans.Pop();
    if (orphan == nullptr) break;
    Absorb(orphan);
    // Relaxed: the push is the release that hands the heap over.
    orphan->state_.store(State::kFree, std::memory_order_relaxed);
    g_free_heaps.Push(orphan);
    ++absorbed;
  }
  // Keep what we absorbed within budget, but donate nothing back: we are
  // absorbing because we need memory.
  if (absorbed > 0) ReleaseEmptyArenasOverBudget(CacheBudget(), os::NowMs());
  // Blocks that reached heaps after they gave their arenas away sit in
  // free heaps' queues: forward them to their arenas' owners now.
  constexpr size_t kSweep = 64;
  Heap* swept[kSweep];
  size_t n = 0;
  while (n < kSweep && (max_orphans > 1 || n < 4)) {
    Heap* h = g_free_heaps.Pop();
    if (h == nullptr) break;
    swept[n++] = h;
    if (!h->remote_.EmptyHint()) {
      h->DrainRemote();
      h->FlushOutgoing();
    }
  }
  while (n > 0) g_free_heaps.Push(swept[--n]);
  return absorbed;
}

size_t ForEachOrphanExclusive(void (*fn)(Heap* orphan, void* arg), void* arg) {
  // Take them all first, so none is visited twice; put them back after.
  Heap* taken = nullptr;
  size_t n = 0;
  while (Heap* h = g_orphans.Pop()) {
    // Relaxed: the chain is private until pushed back.
    h->stack_next_.store(taken, std::memory_order_relaxed);
    taken = h;
    ++n;
  }
  while (taken != nullptr) {
    Heap* next = taken->stack_next_.load(std::memory_order_relaxed);
    fn(taken, arg);
    const bool owns = taken->OwnsArenas();
    // Relaxed: the push below is the release that hands the heap over.
    taken->state_.store(owns ? Heap::State::kOrphan : Heap::State::kFree, std::memory_order_relaxed);
    (owns ? g_orphans : g_free_heaps).Push(taken);
    taken = next;
  }
  return n;
}

bool Heap::IsValid() const {
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const PoolDesc* c = runs_[cls];
    if (current_[cls] != (stats_mode_ ? &g_empty_pool : c)) return false;
    if (c != &g_empty_pool && (c->list != PoolList::kCurrent || c->size_class != cls || !c->IsValid())) {
      return false;
    }
    for (const PoolDesc* d = partial_[cls]; d != nullptr; d = d->next) {
      if (d->list != PoolList::kPartial || d->size_class != cls || !d->IsValid()) return false;
      if (IsListEnd(d->free) && d->carved == d->capacity) return false;
    }
    threading::SpinLockHolder hold(&meta_lock_);
    for (const PoolDesc* d = empty_[cls]; d != nullptr; d = d->next) {
      if (d->list != PoolList::kEmpty || d->size_class != cls || d->Used() != 0) return false;
      if (!d->purged && !d->IsValid()) return false;
    }
  }
  // The purger may be updating dirty masks: read the arenas under the lock.
  threading::SpinLockHolder hold(&meta_lock_);
  size_t arenas = 0, empty = 0, free_pools = 0;
  for (const ArenaHeader* list : {avail_arenas_, full_arenas_}) {
    for (const ArenaHeader* a = list; a != nullptr; a = a->next) {
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

// ---------------------------------------------------------------------------
// Heaps for threads

Heap* Heap::Create() {
  void* mem = MetaAllocate(sizeof(Heap));
  if (mem == nullptr) return nullptr;
  // Relaxed: ids only spread outgoing batches over slots.
  Heap* h = new (mem) Heap(g_next_id.fetch_add(1, std::memory_order_relaxed));
  Heap* head = g_all_heaps.load(std::memory_order_relaxed);
  do {
    h->all_next_ = head;
    // Release pairs with the acquire in AllHeaps().
  } while (!g_all_heaps.compare_exchange_weak(head, h, std::memory_order_release,
                                              std::memory_order_relaxed));
  return h;
}

uint64_t CachedPoolBytesAllHeaps() {
  // Relaxed: statistics only.
  const int64_t pools = g_cached_pools.load(std::memory_order_relaxed);
  return pools > 0 ? static_cast<uint64_t>(pools) * kPoolSize : 0;
}

void SetGlobalDecayHook(GlobalDecayHook hook) {
  // Release pairs with the acquire load in MaybeDecay().
  g_decay_hook.store(hook, std::memory_order_release);
}

Heap* AcquireHeapForThread() {
  options_internal::EnsureInitialized();
  InitListKey();
  Heap* h = g_orphans.Pop();
  if (h == nullptr) h = g_free_heaps.Pop();
  if (h == nullptr) h = Heap::Create();
  if (h == nullptr) return nullptr;
  // Relaxed: the pop above (acquire) already ordered us after the previous
  // owner; readers of state_ only want a hint.
  h->state_.store(Heap::State::kActive, std::memory_order_relaxed);
  // An orphan's arenas may have been absorbed by others meanwhile.
  h->ForgetAllArenas();
  h->list_key_ = ListKey();
  tls_heap = h;
  // If the key cannot be made the heap is simply never abandoned: its
  // blocks stay valid and freeable, only its cache is not recycled.
  g_exit_hook.Arm(h);
  return h;
}

Heap* AllHeaps() {
  // Acquire pairs with the release CAS in Heap::Create().
  return g_all_heaps.load(std::memory_order_acquire);
}

void OnThreadExit(void* value) {
  auto* h = static_cast<Heap*>(value);
  h->Abandon();
  tls_heap = &g_empty_heap;
  const bool owns_arenas = h->OwnsArenas();
  // Relaxed: the stack push below is the release that hands the heap over.
  h->state_.store(owns_arenas ? Heap::State::kOrphan : Heap::State::kFree,
                  std::memory_order_relaxed);
  (owns_arenas ? g_orphans : g_free_heaps).Push(h);
  // Acquire pairs with the release store in SetThreadExitNotice().
  if (ThreadExitNotice notice = g_exit_notice.load(std::memory_order_acquire)) notice();
}

void SetThreadExitNotice(ThreadExitNotice notice) {
  // Release pairs with the acquire load in OnThreadExit().
  g_exit_notice.store(notice, std::memory_order_release);
}

void LockAllHeapsForFork() {
  for (Heap* h = AllHeaps(); h != nullptr; h = h->all_next()) h->meta_lock_.Lock();
}

void UnlockAllHeapsForFork() {
  for (Heap* h = AllHeaps(); h != nullptr; h = h->all_next()) h->meta_lock_.Unlock();
}

}  // namespace strata::internal
