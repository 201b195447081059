// The thread cache's slow paths, which make its parts work together (see
// heap.h): the refill, the local free's rare case, the drain of blocks
// other threads handed back, thread exit, absorbing orphans, and the
// heap's share of giving memory back.
#include "alloc/heap.h"

#include <errno.h>

#include <algorithm>
#include <optional>

#include "alloc/free_path.h"
#include "alloc/misuse.h"
#include "alloc/options.h"
#include "alloc/page_map.h"
#include "alloc/reentry.h"

namespace strata::internal {

constinit Heap g_empty_heap(0, LinkKey{});

namespace {

// A refill that got fewer blocks than this from one run (a large class:
// its runs hold few, and carving gives a page's worth) gathers up to this
// many from more runs (fewer where the class cache's bound is lower), for
// a class whose runs hold at most kGatherRunBlocks blocks: the walks that
// find a taken list's last block stay that short. (Random-order churn of
// 4-64 KiB blocks: a refill every 4 allocations without it, 1 in 80 with.)
constexpr uint32_t kRefillBlocks = 8;
constexpr uint32_t kGatherRunBlocks = 64;
// A class refilled again within this many pops of its last refill refills
// often: gathering may take new runs for it (RefillMarks).
constexpr int64_t kOftenRefillPops = 128;

// Completes a chain whose last block is unknown (Run::TakeList's): walks
// it. In the checked build a damaged link is reported and ends the chain
// there (what follows stays counted in use, never handed out).
void FindLast(BlockChain& c, const LinkKey& key) {
  FreeBlock* b = c.first;
  for (uint32_t i = 1; i < c.count; ++i) {
    FreeBlock* next = WalkNext(b, key);
    if (next == nullptr) {  // damaged (checked build): the chain ends at b
      c.count = i;
      break;
    }
    b = next;
  }
  c.last = b;
}

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
        FreeRemoteUnjudged(h, owner, d, p, reinterpret_cast<FreeBlock*>(word), "free");  // every slot taken
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
        // Its free claims it now (free_link.h), from the word it was
        // parked with: a free of it since was another's.
        if (!ClaimJudgedBlock(p, reinterpret_cast<FreeBlock*>(word), h->link_key())) {
          ReportMisuse(p, Misuse::kDoubleFreeRace, "free");
          return;
        }
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

Heap::Allocation Heap::AllocateSlow(size_t cls, size_t size) noexcept {
  const SlowPathGuard guard;  // a signal handler re-entering here is told
  threading::OwnerLockHolder hold(&slow_lock_);  // after the guard: a re-entry is told, not re-entered
  // The fast path counted this allocation down when the list had a block
  // (it refused it then for the countdown, or for a link to check): the
  // slow path counts it itself.
  const int32_t countdown = IsListEnd(cache_.head(cls)) ? cache_.countdown(cls) : cache_.UndoPop(cls);
  FollowOptions();
  if (stats_mode_) {
    counters_.allocations[cls].Add(1);
    counters_.requested_bytes[cls].Add(size);
  }
  // An empty list is refilled from the class's runs: from several when one
  // gives few blocks (a run of a large class holds 1 to 4, and carving
  // gives a page's worth at a time), so that random-order churn of large
  // blocks comes here once in kRefillBlocks pops or so, not at every other.
  // Each chain's arena enters the arena cache: a chain comes from one run
  // of an arena the heap owns, and the checked build's pop follows a link
  // into another arena on the fast path only when the cache holds it (a
  // heap whose thread frees little locally, larson's, learned its arenas
  // only from its queue, and sent up to 6 % of its pops here for the owner
  // check). After the first chain, gathering takes only blocks that exist
  // (the lists of the current and partial runs, the queue, an empty run
  // kept whole, the current run's uncarved ones), unless the class's runs
  // hold fewer than `want` blocks and it refills often: new
  // runs for one or two blocks asked for pinned memory no allocation used
  // (espresso's peak RSS: 3.7-3.9 MiB without them, 4.5 with them always,
  // 4.0-4.1 for classes that refill often), but random-order churn of 4-64
  // KiB blocks finds its runs full (its frees wait in the class list), and
  // without them refilled on 6 % of allocations instead of 1.3-1.8 %.
  bool refilled = false;
  auto refill = [this, cls, &refilled] {
    refilled = true;
    counters_.refills.Add(1);
    BlockChain chain = TakeFromRuns(cls, /*grow=*/true);
    if (chain.count == 0) return false;  // the OS refused memory (errno ENOMEM)
    arena_cache_.Remember(ArenaOf(chain.first));
    // The list was empty, and Add needs no `last` then; unless TakeFromRuns
    // let an allocation of this class in: a drain that empties a run may
    // start the release thread, and pthread_create allocates (the owner
    // re-enters its lock), which may refill this list.
    if (chain.last == nullptr && !IsListEnd(cache_.head(cls))) FindLast(chain, link_key_);
    cache_.Add(cls, chain, link_key_);
    if (kClasses[cls].blocks <= kGatherRunBlocks) {
      const uint32_t want = std::min(CacheMaxBlocks(kClasses[cls].size) / 2, kRefillBlocks);
      // Often: within kOftenRefillPops pops of the class's last refill
      // (detailed-stats mode, every pop a slow path, counts none: it
      // gathers as when it is off).
      // Not 0: refills back to back, the last one's blocks all taken by its
      // own allocation, are a class of one block a run while the program
      // grows; gathering new runs then carves (touches) blocks nobody asked
      // for yet (espresso's peak RSS: 4.55 MiB when 0 counted, 4.1-4.2
      // without), and a refill costs little beside the first touch of a
      // block of 16 KiB or more. Churn, whose frees refill the list too,
      // reads above 0.
      const int64_t pops = refill_marks_.PopsSince(cls, cache_.countdown(cls));
      const bool often = stats_mode_ || (pops > 0 && pops <= kOftenRefillPops);
      const bool grow = kClasses[cls].blocks < want && often;
      const int saved_errno = errno;  // a refusal below is not this call's failure
      for (uint32_t got = chain.count; got < want; got += chain.count) {
        chain = TakeFromRuns(cls, /*grow=*/grow);
        if (chain.count == 0) break;
        if (chain.last == nullptr) FindLast(chain, link_key_);
        arena_cache_.Remember(ArenaOf(chain.first));
        cache_.Add(cls, chain, link_key_);
      }
      errno = saved_errno;
    }
    cache_.SetRoom(cls);
    return true;
  };
  if (IsListEnd(cache_.head(cls)) && !refill()) return {nullptr, false};
  if constexpr (kCheckPoppedLinks) {
    // The fast path follows a link within the block's arena or into one
    // in the arena cache; any other must lead to a block of an arena this
    // heap owns, or the list was damaged (a heap overflow, a write after
    // free) and is not followed.
    FreeBlock* first = cache_.head(cls);
    FreeBlock* next = cache_.FirstLink(cls, link_key_);
    if (!IsListEnd(next) && !SameArena(first, next) && !arena_cache_.Holds(next) &&
        !(GetPageMap().InArena(next) && InBlockPool(next) &&
          ArenaOf(next)->owner.load(std::memory_order_acquire) == this)) {
      ReportDamage(first, Misuse::kListDamaged);
      // Count mode: neither that block (a write after free may have put
      // it on the list twice, and it may be live) nor anything after it
      // can be trusted: the list is dropped (its blocks stay counted in use
      // by their runs, never handed out), and refilled.
      cache_.Drop(cls);
      if (!refill()) return {nullptr, false};
    }
  }
  void* b = cache_.PopSlow(cls, link_key_);
  bool sample = false;
  if (stats_mode_) {
    cache_.SetCountdown(cls, 1);  // the next allocation comes here too
  } else if (countdown <= 1) {
    // This allocation ended the countdown: it is sampled when the heap
    // profile or guarded sampling is on (the countdown was drawn at their
    // combined rate; Sample decides which, sampling.h).
    sample = samples_.rate() > 0;
    cache_.SetCountdown(cls, samples_.NextBlocks(kClasses[cls].size));
  } else {
    cache_.SetCountdown(cls, countdown - 1);
  }
  if (refilled) refill_marks_.Mark(cls, cache_.countdown(cls));
  return {b, sample};
}

void Heap::FollowOptions() {
  // Every slow path comes here: one load while no option changed.
  const uint64_t changes = OptionChanges();
  if (changes == options_seen_) return;
  options_seen_ = changes;
  const bool stats = GetOption(Option::kStats) != 0;
  const int64_t profile = GetOption(Option::kProfileSampleBytes);
  const int64_t guarded = GetOption(Option::kGuardedSampleBytes);
  if (stats == stats_mode_ && samples_.Follows(profile, guarded)) return;
  stats_mode_ = stats;
  samples_.Reset(profile, guarded);
  for (size_t c = 1; c < kNumClasses; ++c) {
    cache_.SetCountdown(c, stats ? 1 : samples_.NextBlocks(kClasses[c].size));
  }
}

BlockChain Heap::TakeFromRuns(size_t cls, bool grow) {
  auto list_end = [](PoolDesc* d) { return reinterpret_cast<FreeBlock*>(ArenaOf(d)); };
  const uint32_t batch = CacheMaxBlocks(kClasses[cls].size) / 2;
  PoolDesc* d = runs_.current(cls);
  // 1. The current run: its free list, or its uncarved blocks.
  if (!IsListEnd(d->run.free_list())) return d->run.TakeList(list_end(d));
  if (d->run.carved() < d->capacity) return d->run.CarveChain(d->Start(), d->size, d->capacity, batch, link_key_);
  // 2. Blocks other threads gave back (may give the current run a list).
  // The drain may also let in an allocation of this class that made
  // another run current (a run it empties runs the decay hook, which may
  // start the release thread, which allocates): step 1 again, on whichever
  // run is current now.
  if (DrainRemote() > 0) {
    d = runs_.current(cls);
    if (!IsListEnd(d->run.free_list())) return d->run.TakeList(list_end(d));
    if (d->run.carved() < d->capacity) return d->run.CarveChain(d->Start(), d->size, d->capacity, batch, link_key_);
  }
  // 3. A partial run of this class, then an empty one kept whole.
  PoolDesc* p = runs_.TakePartial(cls);
  if (p == nullptr) p = arenas_.TakeEmpty(cls);
  if (p == nullptr && !grow) return {};
  if (p != nullptr) {
    runs_.SetCurrent(cls, p);
    if (!IsListEnd(p->run.free_list())) return p->run.TakeList(list_end(p));
    return p->run.CarveChain(p->Start(), p->size, p->capacity, batch, link_key_);
  }
  // 4. A new run. Hand over what we hold for others first: they may be
  // waiting for memory as we are.
  FlushOutgoing();
  const uint64_t now = env_->now_ms();
  const uint32_t pools = kClasses[cls].run_pools;
  ArenaHeader* arena = nullptr;
  int start = arenas_.FindFreeRun(pools, &arena, now);
  // Empty runs of other classes give their pools back before we take more.
  if (start < 0 && arenas_.ReleaseEmptyRuns(now, counters_, &arena_cache_) != 0) {
    start = arenas_.FindFreeRun(pools, &arena, now);
  }
  if (start < 0 && CollectOrphans(1) > 0) {
    // A dead thread's memory is ours now: its partial runs come first.
    if (PoolDesc* q = runs_.TakePartial(cls)) {
      runs_.SetCurrent(cls, q);
      if (!IsListEnd(q->run.free_list())) return q->run.TakeList(list_end(q));
      return q->run.CarveChain(q->Start(), q->size, q->capacity, batch, link_key_);
    }
    start = arenas_.FindFreeRun(pools, &arena, now);
  }
  PoolDesc* run = NewRun(cls, arena, start);
  if (run == nullptr) {
    errno = ENOMEM;
    return {};
  }
  runs_.SetCurrent(cls, run);
  const BlockChain chain = run->run.CarveChain(run->Start(), run->size, run->capacity, batch, link_key_);
  MaybeDecay(now, /*released=*/false);
  return chain;
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

void Heap::ReturnCached(size_t cls, uint32_t keep) {
  const BlockChain chain = cache_.TakeAfter(cls, keep, link_key_);
  FreeBlock* b = chain.first;
  for (uint32_t i = 0; i < chain.count; ++i) {
    FreeBlock* next = NextOf(b, link_key_);
    FreeToRun(this, RunOf(ArenaOf(b), b), b);
    b = next;
  }
  cache_.SetRoom(cls);
}

// ---------------------------------------------------------------------------
// The local free's rare cases

void Heap::FreeToCacheSlow(void* p, Heap* self, size_t cls, const char* op) noexcept {
  const SlowPathGuard guard;  // a signal handler re-entering here is told
  ClassCache& cache = self->cache_;
  cache.UndoPush(cls);
  if (p == cache.head(cls)) {
    ReportMisuse(p, Misuse::kDoubleFree, op);  // count mode: the second free is dropped
    return;
  }
  // Past its bound the list gives its older half back to the runs.
  const uint32_t max = CacheMaxBlocks(kClasses[cls].size);
  if (cache.Length(cls) >= max) {
    threading::OwnerLockHolder hold(&self->slow_lock_);
    self->ReturnCached(cls, max / 2);
  }
  cache.PushAndSetRoom(cls, p, self->link_key_);
}

void Heap::FreeLocalSlow(PoolDesc* d, FreeBlock* last, uint32_t blocks) noexcept {
  if (ABSL_PREDICT_FALSE(d->run.Underflowed())) {
    // The count went below zero: the run had fewer live blocks than came
    // back (a double free into an empty run whose list was purged, so it
    // did not show). Undo the push and report; a segment is undone whole
    // and pushed again block by block, so that the report names the block
    // and the others land as they would have.
    if (last == nullptr) {
      ReportMisuse(d->run.UndoPush(d->run.free_list(), 1, link_key_), Misuse::kDoubleFreeEmptyRun, "free");
      return;
    }
    FreeBlock* b = d->run.UndoPush(last, blocks, link_key_);
    for (uint32_t i = 0; i < blocks; ++i) {
      FreeBlock* next = NextOf(b, link_key_);
      FreeToRun(this, d, b);
      b = next;
    }
    return;
  }
  switch (d->run.state()) {
    case RunState::kCurrent:
      // Its count carries kCurrentBias and does not get here (but after
      // 2^24 double frees); it is kept for the next allocation anyway.
      return;
    case RunState::kAsleep:
      // Enough blocks came back to wake it; a segment may have brought
      // back every one (or a run of one block its one).
      counters_.runs_woken.Add(1);
      if (d->run.Wake() != 0) {
        runs_.LinkPartial(d);
        return;
      }
      break;
    case RunState::kPartial:
      // Its last live block came back.
      runs_.UnlinkPartial(d);
      break;
    case RunState::kHeld:
    case RunState::kEmpty:
    case RunState::kNone:
      return;  // not reached: no block of such a run is freed
  }
  // The run is empty. Empty runs are kept whole, free list and all, up to
  // the thread cache budget: a thread that frees a batch and allocates the
  // next one reuses them without claiming pools or carving again. The
  // release policy purges them in place when they stay unused for
  // purge_delay_ms.
  // (A collector keeps every one: see collecting_.)
  if (collecting_ || arenas_.CachedPoolBytes() + size_t{d->run_pools} * kPoolSize <= ReleaseBudget::Bytes()) {
    const uint64_t now = env_->now_ms();
    // A collected run is due for the purge at once: an owner that left a
    // megabyte waiting is not about to allocate it back.
    const int64_t delay = GetOption(Option::kPurgeDelayMs);
    arenas_.KeepEmpty(d, collecting_ && delay > 0 && now > uint64_t(delay) ? now - uint64_t(delay) : now);
    MaybeDecay(now, /*released=*/true);
  } else {
    ReleaseRun(d);
  }
}

// ---------------------------------------------------------------------------
// Blocks other threads handed back

size_t Heap::DrainRemote() {
  // The owner thread holds the slow lock for this (again, when a slow path
  // of its holds it already: it re-enters); any other drainer holds it
  // already (heap.h).
  const bool owner_thread = this == tls_heap;
  std::optional<threading::OwnerLockHolder> hold;
  if (owner_thread) hold.emplace(&slow_lock_);
  // Frees each block locally if its arena is still ours, else on to its
  // owner (the arena moved while the block travelled).
  struct Sink {
    Heap* h;
    // True when `next`, a link decoded from travelling block b, is a block
    // (not a header) of b's arena or of an arena in our cache (ours, so
    // mapped): safe to follow without the page map.
    // The arena cache is the owner thread's alone: another drainer (a
    // collector, an orphan's holder) does without it.
    bool mine;
    bool Known(const FreeBlock* b, const FreeBlock* next) const {
      if (!SameArena(b, next) && !(mine && h->arena_cache_.Holds(next))) return false;
      return InBlockPool(next);  // a header (or null) is never a block
    }
    void FreeSegment(FreeBlock* first, FreeBlock* last, uint32_t blocks, ArenaHeader* a, PoolDesc* d) {
      // An arena in our cache is ours (see ArenaCache) without a look at
      // its owner.
      if (mine && h->arena_cache_.Holds(first)) return FreeSegmentToRun(h, d, first, last, blocks);
      // Acquire pairs with the release store of owner when the arena
      // changed hands.
      Heap* owner = a->owner.load(std::memory_order_acquire);
      if (owner == h) {
        // Remembered only by the heap's own thread: a heap drained by
        // another (an orphan, tidied or absorbed) must not keep entries for
        // arenas that then leave it.
        if (mine) h->arena_cache_.Remember(a);
        return FreeSegmentToRun(h, d, first, last, blocks);
      }
      // The arena moved while the blocks travelled: on to its owner, block
      // by block (each read before its push rewrites its link): through our
      // outgoing batches on the owner's thread, else (a collector or an
      // exclusive holder, which must not touch them) straight to its queue.
      h->counters_.remote_forwarded.Add(blocks);
      FreeBlock* b = first;
      for (uint32_t i = 0; i < blocks; ++i) {
        FreeBlock* next = i + 1 < blocks ? NextOf(b, h->link_key_) : nullptr;
        // The checked build follows no link it has not checked: a segment's
        // links stay in its run.
        const bool damaged = kCheckPoppedLinks && next != nullptr &&
                             !(SameArena(b, next) && InBlockPool(next) && RunOf(a, next) == d);
        if (mine) {
          BatchRemote(h, owner, b, d);
        } else {
          owner->incoming().PushOne(b, d->size);
        }
        if (ABSL_PREDICT_FALSE(damaged)) return ReportDamage(b, Misuse::kBatchDamaged);
        b = next;
      }
    }
  };
  Sink sink{this, owner_thread};
  const size_t received = incoming_.Drain(sink);
  if (received > 0) counters_.remote_received.Add(received);
  // After the queue: a suspect that came back through it is on its list.
  // (A collector leaves them to the owner: a judgement may send a block on
  // through the owner's outgoing batches.)
  return received + (collecting_ ? 0 : DrainSuspects(this));
}

// ---------------------------------------------------------------------------
// Thread exit and orphans

void Heap::Abandon() {
  threading::OwnerLockHolder hold(&slow_lock_);
  // The cached blocks go back to their runs first: the runs below are
  // judged by what they hold.
  for (size_t cls = 1; cls < kNumClasses; ++cls) ReturnCached(cls, 0);
  arena_cache_.ForgetAll();  // the next thread to hold this heap starts afresh
  refill_marks_.Forget();  // and has refilled nothing lately
  DrainRemote();             // may forward blocks: they join outgoing batches
  outgoing_.FlushAndForget();
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
  arenas_.ReleaseEmptyRuns(now, counters_, &arena_cache_);
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
    {
      // (Against the release engine's collection: heap.h.)
      threading::OtherLockHolder hold(&orphan->slow_lock_);
      orphan->DrainRemote();
      orphan->FlushOutgoing();
      while (ArenaHeader* a = orphan->arenas_.AnyArena()) MoveArenaFrom(orphan, a);
    }
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
  arenas_.ReleaseRun(d, now, counters_, &arena_cache_);
  if (budget_.OverBudget(arenas_.counts().free_pools, arenas_.CachedPoolBytes())) {
    const size_t budget = ReleaseBudget::Bytes();
    ReleaseOverBudget(budget, now);
    budget_.Checked(arenas_.counts().free_pools, budget);
  }
  MaybeDecay(now, /*released=*/true);
}

void Heap::ReleaseOverBudget(size_t budget, uint64_t now) {
  // With nothing kept (ReleaseMemory), the cached blocks go back too, so
  // that runs they alone kept alive can go.
  if (budget == 0) {
    for (size_t cls = 1; cls < kNumClasses; ++cls) ReturnCached(cls, 0);
  }
  arenas_.ReleaseEmptyRuns(now, counters_, &arena_cache_);
  // A current run with no live block is kept for the class's next
  // allocation; over budget, it must not pin an otherwise free arena.
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = runs_.current(cls);
    if (d == &g_empty_pool || d->Used() != 0) continue;
    runs_.TakeCurrent(cls);
    arenas_.ReleaseRun(d, now, counters_, &arena_cache_);
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
  if (!exclusive) {
    bool collected = false;
    // Blocks sent here that the owner leaves waiting (it sleeps, or
    // allocates from what it holds): freed as it would free them, so that
    // the runs and arenas they pin go back. Only when the owner is in no
    // slow path; its fast paths touch nothing this does (heap.h).
    // (Not by the owner itself, which drains its own on its slow paths.)
    if (incoming_.QueuedBytes() >= kCollectQueuedBytes && this != tls_heap && slow_lock_.TryLock()) {
      collecting_ = true;
      collected = DrainRemote() > 0;
      collecting_ = false;
      slow_lock_.Unlock();
      if (collected) counters_.queues_collected.Add(1);
    }
    // The runs a collection emptied are due already (FreeLocalSlow): their
    // purge waits for the lock.
    return arenas_.Purge(now, delay_ms, force, /*wait=*/force || collected, counters_);
  }
  {
    threading::OtherLockHolder hold(&slow_lock_);  // against a collection
    DrainRemote();
    FlushOutgoing();
    arenas_.ReleaseEmptyArenas(0, now, &arena_cache_, *env_, counters_);
  }
  return arenas_.Purge(now, delay_ms, force, /*wait=*/true, counters_);
}

void RunGlobalDecay(uint64_t now, bool released) {
  // Acquire pairs with the release store in SetGlobalDecayHook().
  if (GlobalDecayHook hook = g_decay_hook.load(std::memory_order_acquire)) hook(now, released);
}

GlobalDecayHook SetGlobalDecayHook(GlobalDecayHook hook) {
  // Release pairs with the acquire load in RunGlobalDecay(); acquire (the
  // hook returned may be called) pairs with the previous setter's release.
  return g_decay_hook.exchange(hook, std::memory_order_acq_rel);
}

// ---------------------------------------------------------------------------

bool Heap::IsValid() const {
  // Against a collection of the queue (heap.h), on the owner's thread.
  std::optional<threading::OwnerLockHolder> hold;
  if (this == tls_heap) hold.emplace(const_cast<threading::OwnerLock*>(&slow_lock_));
  return cache_.IsValid(link_key_) && runs_.IsValid() && arenas_.IsValid(this) && outgoing_.IsValid();
}

}  // namespace strata::internal
