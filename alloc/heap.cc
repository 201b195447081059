// The thread cache's slow paths, which make its parts work together (see
// heap.h): the refill, the local free's rare case, the drain of blocks
// other threads handed back, thread exit, absorbing orphans, and the
// heap's share of giving memory back.
#include "alloc/heap.h"

#include <errno.h>

#include "alloc/free_path.h"
#include "alloc/misuse.h"
#include "alloc/options.h"

namespace strata::internal {

constinit Heap g_empty_heap(0, LinkKey{});

namespace {

// SYNCHRONIZATION: release store by the release layer, acquire load here.
std::atomic<GlobalDecayHook> g_decay_hook{nullptr};

// The owner's judgement of the blocks other threads parked in its suspect
// slots (misuse.h), after its queue was drained. Returns the blocks freed.
size_t DrainSuspects(Heap* h) {
  size_t freed = 0;
  h->incoming().suspects().TakeEach([&](void* p, uintptr_t word) {
    ArenaHeader* a = ArenaOf(p);
    PoolDesc* d = RunOf(a, p);
    // Acquire pairs with the release store of owner on arena hand-over.
    Heap* owner = a->owner.load(std::memory_order_acquire);
    if (owner != h) {
      // The arena moved on: the new owner checks it.
      if (owner == nullptr) {
        ReportMisuse(p, Misuse::kEmptyArena, "free");
      } else if (!owner->incoming().suspects().Push(p, word)) {
        FreeRemoteUnjudged(h, owner, p, d->size, "free");  // every slot taken
      }
      return;
    }
    switch (JudgeParked(d, p, word)) {
      case ParkedVerdict::kDoubleFree:
        ReportMisuse(p, Misuse::kDoubleFree, "free");  // count mode: drop the second free
        return;
      case ParkedVerdict::kDoubleFreeRemote:
        ReportMisuse(p, Misuse::kDoubleFreeRemote, "free");
        return;
      case ParkedVerdict::kLive:
        FreeToRun(h, d, p);
        ++freed;
        return;
    }
  });
  return freed;
}

}  // namespace

// ---------------------------------------------------------------------------
// Allocation

void* Heap::AllocateSlow(size_t cls, size_t size) noexcept {
  SyncStatsMode();
  if (runs_.stats_mode()) {
    counters_.allocations[cls].Add(1);
    counters_.requested_bytes[cls].Add(size);
  }
  // In stats mode every allocation comes here; otherwise a current run with
  // free blocks means the fast path met a damaged link, which PopFrom
  // reports before following it.
  PoolDesc* d = runs_.current(cls);
  if (!IsListEnd(d->run.free_list())) return PopFrom(d);
  return Refill(cls);
}

void Heap::SyncStatsMode() {
  const bool want = GetOption(Option::kStats) != 0;
  if (want != runs_.stats_mode()) runs_.SetStatsMode(want);
}

void* Heap::Refill(size_t cls) {
  counters_.refills.Add(1);
  PoolDesc* d = runs_.current(cls);
  // 1. The current run still has uncarved blocks.
  if (d->run.carved() < d->capacity) return PopFrom(d);
  // 2. Blocks other threads gave back (may refill the current run).
  if (DrainRemote() > 0) {
    d = runs_.current(cls);
    if (!IsListEnd(d->run.free_list())) return PopFrom(d);
  }
  // 3. A partial run of this class, then an empty one kept whole.
  PoolDesc* p = runs_.TakePartial(cls);
  if (p == nullptr) p = arenas_.TakeEmpty(cls);
  if (p != nullptr) {
    runs_.SetCurrent(cls, p);
    return PopFrom(p);
  }
  // 4. A new run. Hand over what we hold for others first: they may be
  // waiting for memory as we are.
  FlushOutgoing();
  const uint64_t now = env_->now_ms();
  const uint32_t pools = kClasses[cls].run_pools;
  ArenaHeader* arena = nullptr;
  int start = arenas_.FindFreeRun(pools, &arena);
  // Empty runs of other classes give their pools back before we take more.
  if (start < 0 && arenas_.ReleaseEmptyRuns(now, counters_) != 0) {
    start = arenas_.FindFreeRun(pools, &arena);
  }
  if (start < 0 && CollectOrphans(1) > 0) {
    // A dead thread's memory is ours now: its partial runs come first.
    if (PoolDesc* q = runs_.TakePartial(cls)) {
      runs_.SetCurrent(cls, q);
      return PopFrom(q);
    }
    start = arenas_.FindFreeRun(pools, &arena);
  }
  PoolDesc* run = NewRun(cls, arena, start);
  if (run == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  runs_.SetCurrent(cls, run);
  void* block = PopFrom(run);
  MaybeDecay(now, /*released=*/false);
  return block;
}

PoolDesc* Heap::NewRun(size_t cls, ArenaHeader* a, int start) {
  if (start < 0) {
    // Outside the lock: may map memory (and takes the arena source's locks).
    a = env_->acquire_arena(this);
    if (a == nullptr) return nullptr;
    counters_.arenas_acquired.Add(1);
  }
  return arenas_.ClaimRun(cls, a, start, counters_);
}

void* Heap::PopFrom(PoolDesc* d) {
  if (IsListEnd(d->run.free_list())) d->run.Carve(d->Start(), d->size, d->capacity, link_key_);
  // The fast path's pop; the list is not empty, so a refusal is damage.
  if (void* b = d->run.TryPop(link_key_)) return b;
  ReportDamage(d->run.free_list(), Misuse::kListDamaged);
  // Count mode: neither that block (a write after free may have put it on
  // the list twice, and it may be live) nor anything after it can be
  // trusted. The whole list is dropped: those blocks stay counted in use
  // (leaked, never handed out), and the allocation is served as if the run
  // were spent.
  d->run.DropFreeList(reinterpret_cast<FreeBlock*>(ArenaOf(d)));
  return Refill(d->size_class);
}

// ---------------------------------------------------------------------------
// The local free's rare case

void Heap::FreeLocalSlow(PoolDesc* d) noexcept {
  if (ABSL_PREDICT_FALSE(d->run.Underflowed())) {
    // The count went below zero: the block's run had no live block (an
    // empty run whose list was purged, so the double free did not show).
    // Undo the push and report.
    ReportMisuse(d->run.UndoPush(link_key_), Misuse::kDoubleFreeEmptyRun, "free");
    return;
  }
  switch (d->run.state()) {
    case RunState::kCurrent:
      // Its count carries kCurrentBias and does not get here (but after
      // 2^24 double frees); it is kept for the next allocation anyway.
      return;
    case RunState::kAsleep:
      // Enough blocks came back to wake it.
      counters_.runs_woken.Add(1);
      if (d->run.Wake() == 0) {
        ReleaseRun(d);  // a run of one block
      } else {
        runs_.LinkPartial(d);
      }
      return;
    case RunState::kPartial: {
      // Its last live block came back. Empty runs are kept whole, free list
      // and all, up to the thread cache budget: a thread that frees a batch
      // and allocates the next one reuses them without claiming pools or
      // carving again. The release policy purges them in place when they
      // stay unused for purge_delay_ms.
      runs_.UnlinkPartial(d);
      if (arenas_.CachedPoolBytes() + size_t{d->run_pools} * kPoolSize <= ReleaseBudget::Bytes()) {
        const uint64_t now = env_->now_ms();
        arenas_.KeepEmpty(d, now);
        MaybeDecay(now, /*released=*/true);
      } else {
        ReleaseRun(d);
      }
      return;
    }
    case RunState::kHeld:
    case RunState::kEmpty:
    case RunState::kNone:
      return;  // not reached: no block of such a run is freed
  }
}

// ---------------------------------------------------------------------------
// Blocks other threads handed back

size_t Heap::DrainRemote() {
  // Frees each block locally if its arena is still ours, else on to its
  // owner (the arena moved while the block travelled).
  struct Sink {
    Heap* h;
    // True when `next`, a link decoded from travelling block b, is a block
    // (not a header) of b's arena or of an arena in our cache (ours, so
    // mapped): safe to follow without the page map.
    bool Known(const FreeBlock* b, const FreeBlock* next) const {
      if (!SameArena(b, next) && !h->arena_cache_.Holds(next)) return false;
      return InBlockPool(next);  // a header (or null) is never a block
    }
    void Free(FreeBlock* b, ArenaHeader* a, PoolDesc* d, size_t size) {
      // An arena in our cache is ours (see ArenaCache) without a look at
      // its owner.
      if (h->arena_cache_.Holds(b)) return FreeToRun(h, d, b);
      // Acquire pairs with the release store of owner when the arena
      // changed hands.
      Heap* owner = a->owner.load(std::memory_order_acquire);
      if (owner == h) {
        // Remembered only by the heap's own thread: a heap drained by
        // another (an orphan, tidied or absorbed) must not keep entries for
        // arenas that then leave it.
        if (h == tls_heap) h->arena_cache_.Remember(a);
        return FreeToRun(h, d, b);
      }
      h->counters_.remote_forwarded.Add(1);
      BatchRemote(h, owner, b, size);
    }
  };
  Sink sink{this};
  const size_t received = incoming_.Drain(sink);
  if (received > 0) counters_.remote_received.Add(received);
  // After the queue: a suspect that came back through it is on its list.
  return received + DrainSuspects(this);
}

// ---------------------------------------------------------------------------
// Thread exit and orphans

void Heap::Abandon() {
  arena_cache_.ForgetAll();  // the next thread to hold this heap starts afresh
  DrainRemote();             // may forward blocks: they join outgoing batches
  outgoing_.FlushAndForget(counters_);
  if (runs_.stats_mode()) runs_.SetStatsMode(false);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = runs_.TakeCurrent(cls);
    if (d == nullptr) continue;
    if (d->Used() == 0) {
      ReleaseRun(d);
    } else if (!IsListEnd(d->run.free_list()) || d->run.carved() < d->capacity) {
      runs_.LinkPartial(d);
    } else {
      d->run.FallAsleep(d->capacity);
    }
  }
  // Return every empty run and empty arena: a dead thread needs no spares.
  const uint64_t now = env_->now_ms();
  arenas_.ReleaseEmptyRuns(now, counters_);
  arenas_.ReleaseEmptyArenas(0, now, &arena_cache_, *env_, counters_);
}

size_t Heap::CollectOrphans(size_t max_orphans) {
  size_t absorbed = 0;
  while (absorbed < max_orphans) {
    Heap* orphan = PopOrphan();
    if (orphan == nullptr) break;
    // Blocks already queued for the orphan: freed as the orphan, whose
    // metadata we hold exclusively, before its arenas move. Blocks still
    // addressed to it afterwards reach it through its queue and are
    // forwarded by its next holder.
    orphan->DrainRemote();
    orphan->FlushOutgoing();
    while (ArenaHeader* a = orphan->arenas_.AnyArena()) MoveArenaFrom(orphan, a);
    counters_.orphans_absorbed.Add(1);
    RetireAbsorbed(orphan);
    ++absorbed;
  }
  // Keep what we absorbed within budget, but donate nothing back: we are
  // absorbing because we need memory.
  if (absorbed > 0) {
    arenas_.ReleaseEmptyArenas(ReleaseBudget::Bytes(), env_->now_ms(), &arena_cache_, *env_, counters_);
  }
  SweepFreeHeaps(max_orphans > 1 ? 64 : 4);
  return absorbed;
}

void Heap::MoveArenaFrom(Heap* from, ArenaHeader* a) {
  // The two heaps' locks are taken one after the other, never nested:
  // between them the arena is on neither heap's lists.
  const size_t free_pools = from->arenas_.Detach(a, &from->arena_cache_);
  // Partial and empty runs move with the arena (partial-list links are
  // owner-only data: the caller holds both heaps exclusively as owner).
  for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
    PoolDesc* d = a->pool(i);
    if (d->state != PoolState::kHead) continue;
    if (d->run.state() == RunState::kPartial) {
      from->runs_.UnlinkPartial(d);
      runs_.LinkPartial(d);
    } else if (d->run.state() == RunState::kEmpty) {
      from->arenas_.MoveEmptyRun(d, &arenas_);
    }
  }
  // Release pairs with the acquire load of owner by freeing threads: a
  // thread that sees us as owner sends blocks here. Threads that still saw
  // `from` send them to `from`, which forwards them (DrainRemote).
  a->owner.store(this, std::memory_order_release);
  arenas_.Attach(a, free_pools);
}

// ---------------------------------------------------------------------------
// Giving memory back (the policy: release.h)

void Heap::ReleaseRun(PoolDesc* d) {
  const uint64_t now = env_->now_ms();
  arenas_.ReleaseRun(d, now, counters_);
  if (budget_.OverBudget(arenas_.counts().free_pools, arenas_.CachedPoolBytes())) {
    const size_t budget = ReleaseBudget::Bytes();
    ReleaseOverBudget(budget, now);
    budget_.Checked(arenas_.counts().free_pools, budget);
  }
  MaybeDecay(now, /*released=*/true);
}

void Heap::ReleaseOverBudget(size_t budget, uint64_t now) {
  arenas_.ReleaseEmptyRuns(now, counters_);
  // A current run with no live block is kept for the class's next
  // allocation; over budget, it must not pin an otherwise free arena.
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = runs_.current(cls);
    if (d == &g_empty_pool || d->Used() != 0) continue;
    runs_.TakeCurrent(cls);
    arenas_.ReleaseRun(d, now, counters_);
  }
  arenas_.ReleaseEmptyArenas(budget, now, &arena_cache_, *env_, counters_);
}

void Heap::MaybeDecay(uint64_t now, bool released) {
  const int64_t delay = GetOption(Option::kPurgeDelayMs);
  if (budget_.DecayDue(now, delay) && delay >= 0) {
    arenas_.Purge(now, delay, /*force=*/false, /*wait=*/true, counters_);
  }
  // Every time: the hook rate-limits its own work with one relaxed load, and
  // must see each release (it starts the background thread on the first).
  RunGlobalDecay(now, released);
}

size_t Heap::Decay(uint64_t now, int64_t delay_ms, bool force, bool exclusive) {
  if (!exclusive) return arenas_.Purge(now, delay_ms, force, /*wait=*/force, counters_);
  DrainRemote();
  FlushOutgoing();
  arenas_.ReleaseEmptyArenas(0, now, &arena_cache_, *env_, counters_);
  return arenas_.Purge(now, delay_ms, force, /*wait=*/true, counters_);
}

void RunGlobalDecay(uint64_t now, bool released) {
  // Acquire pairs with the release store in SetGlobalDecayHook().
  if (GlobalDecayHook hook = g_decay_hook.load(std::memory_order_acquire)) hook(now, released);
}

void SetGlobalDecayHook(GlobalDecayHook hook) {
  // Release pairs with the acquire load in RunGlobalDecay().
  g_decay_hook.store(hook, std::memory_order_release);
}

// ---------------------------------------------------------------------------

bool Heap::IsValid() const { return runs_.IsValid() && arenas_.IsValid(this) && outgoing_.IsValid(link_key_); }

}  // namespace strata::internal
