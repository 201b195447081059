// The thread cache ("heap"): each thread allocates from and frees into runs
// that its heap owns, with plain loads and stores, no lock and no atomic
// read-modify-write. Blocks freed by a thread that does not own them travel
// back to the owner in batches through the owner's MPSC queue.
//
// Where the definitions live, one concern a file: heap.cc (allocation slow
// paths, refill, runs and their lists, the local free slow path, IsValid),
// remote_free.cc (outgoing batches, queue drain, forwarding, suspects),
// heap_registry.cc (heaps for threads, thread exit, orphans and absorbing
// them, moving arenas, fork locks) and heap_release.cc (cache budget,
// releasing runs and arenas, purging, decay).
//
// SYNCHRONIZATION
//  - current_, runs_, partial_, outgoing_ (but each slot's `count`: one
//    writer, racy stats readers, through threading::SingleWriter), and the
//    free lists, carving and list links of every run of the heap's arenas:
//    owner thread only (empty runs excepted, below).
//  - link_key_: written once in Create(), before the heap is published;
//    then read by any thread holding a pointer to the heap.
//    "Owner thread" is the thread whose tls_heap points here; a heap changes
//    hands only through the orphan/free stacks, whose release push / acquire
//    pop order the old owner's last writes before the new owner's first reads.
//  - meta_lock_ guards what other threads may inspect: the arena lists,
//    every ArenaHeader field but owner (free_mask, dirty_mask, used_pools,
//    links), the run-shape fields of PoolDesc (state, size_class,
//    capacity, run_pools, head_bytes) and its free_since. The owner takes it only
//    on slow paths that change them (claiming or releasing a run, moving an
//    arena); the purger (release engine) takes it with TryLock to purge free
//    pools of idle heaps; the stats reader takes it to walk the arenas.
//    It also guards the empty-run lists (empty_, empty_run_pools_) and the
//    runs on them, whole: no block of an empty run is live, so only the
//    owner taking one back (under the lock) or the purger touches them.
//    Never held while taking another heap's lock.
//  - PoolDesc::used and ::bias, and the counters_: one writer (the owner),
//    racy readers (stats), through threading::SingleWriter.
//  - remote_: any thread pushes batches (release CAS); the owner takes them
//    (acquire exchange). See threading/mpsc_queue.h. queued_bytes_ counts
//    what is in it (relaxed RMW by pushers and the owner; statistics).
//  - stack_next_: link in the orphan/free stacks (tagged, lock-free).
//  - all_next_: immutable after the heap is published to AllHeaps().
//
// Life of a heap: created (or recycled) for a thread on its first slow path;
// on thread exit it flushes outgoing batches, drains its queue, releases
// empty runs and arenas, and is pushed either to the free stack (it owns no
// arena) or to the orphan stack (it still owns arenas with live blocks, which
// anyone may keep freeing into its queue). A new thread takes an orphan
// before a free heap before a fresh one, so abandoned pools are reused first.
// Heaps are type-stable metadata: never unmapped, so a late remote free to a
// dead thread's heap always lands in a live queue.
#ifndef STRATA_ALLOC_HEAP_H_
#define STRATA_ALLOC_HEAP_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/heap_counters.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/sampling.h"
#include "alloc/size_class.h"
#include "threading/intrusive_list.h"
#include "threading/mpsc_queue.h"
#include "threading/single_writer.h"
#include "threading/spin_lock.h"

namespace strata::internal {

// Distinct owners a thread batches for at once (direct-mapped by heap id).
inline constexpr size_t kOutgoingSlots = 8;
// Arenas with free pools a heap searches for a run before taking a new one.
inline constexpr size_t kRunSearchLimit = 16;
// Arenas a heap remembers owning, for the free fast path (direct-mapped by
// arena address bits: 256 entries, 2 KiB, cover 64 MiB of consecutive
// arenas). With 64, a heap of 270 arenas took the page map on most frees
// (st_churn --live=1000000: 818.7M instructions, 756.0M with 256).
inline constexpr size_t kArenaCacheEntries = 256;
// An arena cache slot holding no arena (no arena lives at address 1).
inline constexpr uintptr_t kNoArena = 1;

// The second word of a block in a remote batch (blocks of 16 bytes or
// more): the skip link (see Heap::kSkipAhead), linked as a block of its own.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FreeBlock* SkipWord(FreeBlock* b) { return b + 1; }


// How often (ms) purge work is looked at for a given purge delay: half the
// delay, kept within [16, 1000] ms. Shared by a heap's own decay and the
// process-wide release pass, so both follow the delay at the same rate.
inline uint32_t DecayIntervalMs(int64_t delay_ms) {
  if (delay_ms <= 32) return 16;
  return delay_ms >= 2000 ? 1000 : static_cast<uint32_t>(delay_ms / 2);
}

// How a travelling block links in an owner's queue: as every free block
// does (free_link.h), so that it looks free while it travels.
struct TransitLink {
  static void Set(FreeBlock* n, FreeBlock* next);
};

// True when p (a block of `size` bytes that looks free) holds the links of
// a block travelling back to its owner, in some thread's outgoing batch or
// an owner's queue: its first word (and, from 16 bytes, its second) decodes
// to null or a block of an arena. Program data passes with a chance of
// about 2^-40 a word. Reads only p and the page map (remote_free.cc).
bool LooksTravelling(const void* p, size_t size);

// The descriptor every empty slot of current_ points at: no free blocks, no
// uncarved blocks, so the fast path falls to the slow path without a null test.
extern PoolDesc g_empty_pool;

class alignas(kCacheLine) Heap {
 public:
  enum class State : uint32_t { kActive, kOrphan, kFree };

  constexpr explicit Heap(uint32_t id) : id_(id) {
    for (auto& c : by_size_) c = &g_empty_pool;
    for (auto& c : current_) c = &g_empty_pool;
    for (auto& r : runs_) r = &g_empty_pool;
    for (auto& a : arena_cache_) a = kNoArena;
  }
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  // ---- Fast paths (owner thread only) ----

  // Returns a block for a request of n <= kLowTableMax bytes, or nullptr
  // when its class's current run has none ready. One load finds the run:
  // by_size_ is indexed like kLowClassTable.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocateSmall(size_t n) noexcept {
    return TryAllocateFrom(by_size_[(n + kSmallStep - 1) / kSmallStep]);
  }

  // Returns a block of class cls from the current run, or nullptr when the
  // current run has none ready (the caller then takes a slow path).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocate(size_t cls) noexcept {
    return TryAllocateFrom(current_[cls]);
  }

  // Pops a block of run d (a current_ entry), or returns nullptr.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocateFrom(PoolDesc* d) noexcept {
    FreeBlock* b = d->free;
    if (ABSL_PREDICT_FALSE(IsListEnd(b))) return nullptr;
    FreeBlock* next = NextOf(b, link_key_);
    // A run's list stays in its arena: anything else is a damaged link (a
    // heap overflow, a write after free). The slow path reports it (PopFree)
    // before it is followed; a plain return keeps the fast path free of calls.
    if (ABSL_PREDICT_FALSE(!SameArena(b, next))) return nullptr;
    d->free = next;
    // The next pop reads next's link: start that load now, so that a list
    // whose blocks are cold (freed in random order, long ago) costs the
    // program's time between two allocations instead of a stall in the
    // next one. A prefetch never faults, so the list end (an arena's base)
    // needs no test.
    __builtin_prefetch(next);
    // The link must not survive in a block handed out: if the program frees
    // it untouched, it must not look like a block already on a free list.
    b->next = nullptr;
    d->used.Add(1);
    return b;
  }

  // Counts an allocation of n bytes against the sampling countdown: true
  // when it is to be sampled (then ResetSampleCountdown draws a new count).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool CountDownSample(size_t n) noexcept {
    sample_left_ -= static_cast<int64_t>(n);
    return ABSL_PREDICT_FALSE(sample_left_ < 0);
  }
  // A new countdown for profile_sample_bytes = rate (0: off, see
  // kSampleCheckBytes). Owner thread only.
  void ResetSampleCountdown(int64_t rate) {
    if (sample_rng_ == 0) sample_rng_ = (uint64_t{id_} << 32) ^ reinterpret_cast<uintptr_t>(this) ^ os::NowMs();
    sample_left_ = NextSampleInterval(&sample_rng_, rate);
  }

  // Returns a block of class cls for a request of `size` bytes, or nullptr
  // when the OS refuses memory.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Allocate(size_t cls, size_t size) noexcept {
    void* b = TryAllocate(cls);
    if (ABSL_PREDICT_FALSE(b == nullptr)) return AllocateSlow(cls, size);
    return b;
  }

  // Frees block p of run d (its head). REQUIRES: this heap owns d's arena.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void FreeLocal(PoolDesc* d, void* p) noexcept {
    auto* b = static_cast<FreeBlock*>(p);
    SetLink(b, d->free, link_key_);
    d->free = b;
    // One signed test for both rare cases: the run is now empty, or it is
    // asleep (full) and this free wakes it (see kWakeShare in arena.h).
    if (ABSL_PREDICT_FALSE(d->used.DecrementToNonPositive())) FreeLocalSlow(d);
  }

  // The link key, held by the heap: the fast paths load it off the heap
  // pointer they hold (the globals cost more from a shared object). Zero in
  // g_empty_heap, whose fast paths never reach a list.
  ABSL_ATTRIBUTE_ALWAYS_INLINE const LinkKey& link_key() const { return link_key_; }

  // The arena-cache slot for address a: it holds a's arena base when this
  // heap owns that arena and has freed into it lately (owner thread only).
  // Every arena in the cache is owned by this heap: entries are only added
  // after checking the owner, and cleared when an arena leaves the heap.
  ABSL_ATTRIBUTE_ALWAYS_INLINE uintptr_t& ArenaCacheSlot(uintptr_t a) {
    return arena_cache_[(a >> kArenaShift) & (kArenaCacheEntries - 1)];
  }
  void ForgetArena(const ArenaHeader* a) {
    uintptr_t& slot = ArenaCacheSlot(reinterpret_cast<uintptr_t>(a));
    if (slot == reinterpret_cast<uintptr_t>(a)) slot = kNoArena;
  }
  void ForgetAllArenas() {
    for (auto& a : arena_cache_) a = kNoArena;
  }

  // ---- Slow paths ----

  // Allocate() when the current run has no block ready.
  ABSL_ATTRIBUTE_NOINLINE void* AllocateSlow(size_t cls, size_t size) noexcept;

  // Frees block p (of `bytes`) owned by heap `owner` != this: batches it.
  // Any heap, g_empty_heap included (p then travels alone).
  ABSL_ATTRIBUTE_NOINLINE void FreeRemote(void* p, Heap* owner, size_t bytes);

  // FreeRemote inlined: the remote free's common path, with no call.
  // REQUIRES: this != &g_empty_heap, owner != this.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void BatchRemote(void* p, Heap* owner, size_t bytes) {
    Outgoing& o = outgoing_[owner->id_ % kOutgoingSlots];
    if (ABSL_PREDICT_FALSE(o.target != owner)) return RetargetAndFree(o, p, owner, bytes);
    auto* b = static_cast<FreeBlock*>(p);
    FreeBlock* const head = o.head;
    SetLink(b, head, link_key_);
    FreeBlock*& recent = o.recent[o.Blocks() % kSkipAhead];
    if (bytes >= 2 * sizeof(FreeBlock*)) SetLink(SkipWord(b), recent, link_key_);
    recent = b;
    if (head == nullptr) o.tail = b;
    o.head = b;
    const uint64_t count = o.count.Add(Outgoing::kBlock + bytes);
    counters_.remote_frees.Add(1);
    counters_.remote_bytes.Add(bytes);
    if (ABSL_PREDICT_FALSE((count & (Outgoing::kBlock - 1)) >=
                           static_cast<uint64_t>(GetOption(Option::kRemoteBatchBytes)))) {
      return Flush(o);
    }
  }

  // Hands over block p, whose first word (`word`) looks like a free-list
  // link, for the owner to check against its free list before freeing it (a
  // remote double free). Writes nothing into p: if p is free, its link is
  // the owner's. Returns false when every suspect slot is taken.
  bool PushSuspect(void* p, uintptr_t word);

  // A remote free of p (of `size` bytes), owned by `owner`, that looks free
  // and that the owner cannot check (every suspect slot taken): reported
  // when p's words are those of a travelling block or of a block on its
  // run's list (LooksOnItsList), else batched to the owner.
  void FreeLookingFree(void* p, Heap* owner, size_t size, const char* op);

  // True when p waits in this heap's outgoing batch for `owner` (a walk of
  // the batch). Owner thread only.
  bool InOutgoing(const Heap* owner, const void* p) const;

  // Takes every block other threads handed over and frees each locally.
  // Returns the number of blocks drained.
  size_t DrainRemote();

  // Hands every outgoing batch to its owner.
  void FlushOutgoing();

  // Called on thread exit: see the class comment.
  void Abandon();

  // Takes over the arenas, runs and queued blocks of `orphan`, which the
  // caller popped from the orphan stack (so nobody else touches it); leaves
  // it owning nothing. Blocks still addressed to `orphan` afterwards reach
  // it through its queue and are forwarded by its next holder.
  void Absorb(Heap* orphan);

  // Adopts every orphaned heap's memory and forwards the blocks waiting in
  // free heaps' queues. Used before mapping new arenas (one orphan at a time
  // there) and by tests and ReleaseMemory-style calls (all of them).
  // Returns the number of orphans absorbed.
  size_t CollectOrphans(size_t max_orphans);

  // Purges (madvise) the free pools of this heap's arenas that have been
  // free for at least delay_ms (every dirty free pool when force). Any
  // thread: takes meta_lock_ (with TryLock unless `wait`; returns 0 when it
  // is busy). Returns the bytes purged.
  size_t PurgeFreePools(uint64_t now, int64_t delay_ms, bool force, bool wait);

  // The global decay pass's work on an orphan, as its exclusive holder (see
  // ForEachOrphanExclusive): frees what its queue holds, hands on its
  // outgoing batches, releases its empty arenas and purges its due free
  // pools (all of them when force). Returns the bytes purged.
  size_t DecayOrphan(uint64_t now, int64_t delay_ms, bool force);

  // The owner's periodic release work, called from its slow paths: purges
  // its own due pools and lets the release engine run its global pass.
  void MaybeDecay(uint64_t now, bool released);

  // Calls fn(arena) for every arena the heap owns, holding meta_lock_.
  // fn must not allocate or take another heap's lock.
  template <typename Fn>
  void ForEachArenaHoldingLock(Fn fn) {
    threading::SpinLockHolder hold(&meta_lock_);
    for (const ArenaList* list : {&avail_arenas_, &full_arenas_}) {
      for (ArenaHeader* a = list->front(); a != nullptr; a = a->next) fn(a);
    }
  }

  // Releases everything idle the heap holds: cached empty runs, current runs
  // with no live block, and every empty arena (to the shared stack, where
  // the release engine purges and unmaps them). Owner thread only.
  void ReleaseIdle();

  // Follows the `stats` option: in detailed mode every allocation takes the
  // counting slow path. Each heap follows it on its next slow path; this
  // makes the calling thread's heap follow now. Owner thread only.
  void SyncStatsMode();

  // Bytes this heap keeps for itself (owner view): free pools in its arenas
  // and empty runs kept whole. Bounded by the thread cache budget.
  size_t CachedPoolBytes() const { return (free_pools_ + EmptyRunPoolsOwner()) * kPoolSize; }

  uint32_t id() const { return id_; }
  // Relaxed: a hint for stats and tests (the stacks' push/pop order the
  // heap's hand-over; state_ itself publishes nothing).
  State state() const { return state_.load(std::memory_order_relaxed); }
  const HeapCounters& counters() const { return counters_; }
  // Bytes waiting in this heap's outgoing batches (racy; statistics).
  uint64_t OutgoingBytes() const {
    uint64_t bytes = 0;
    for (const Outgoing& o : outgoing_) bytes += o.Bytes();
    return bytes;
  }
  // Bytes in this heap's queue (racy; statistics).
  int64_t QueuedBytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  // Bytes of blocks parked in suspect slots (racy; statistics).
  int64_t SuspectBytes() const { return suspect_bytes_.load(std::memory_order_relaxed); }

  // Every heap ever created (stats, tests). all_next() walks them.
  Heap* all_next() const { return all_next_; }

  // Checks the owner-side invariants of every run this heap holds.
  // REQUIRES: owner thread (or quiescent).
  // Takes meta_lock_.
  bool IsValid() const;

  // True while the heap owns arenas (so it may hold live blocks).
  bool OwnsArenas() const { return arenas_ != 0; }

  // Link for the orphan and free-heap stacks; touched only by them.
  std::atomic<Heap*> stack_next_{nullptr};

 private:
  friend Heap* AcquireHeapForThread();
  friend void OnThreadExit(void* value);
  friend void LockAllHeapsForFork();
  friend void UnlockAllHeapsForFork();
  friend size_t ForEachOrphanExclusive(void (*fn)(Heap* orphan, void* arg), void* arg);

  // Blocks of a batch link through their first word; blocks of 16 bytes
  // or more also hold, in their second word, the block kSkipAhead places
  // further down the batch, which the owner prefetches while it frees the
  // current one: walking a batch is a chase of cache lines last written by
  // another core, and this keeps several of those misses in flight.
  static constexpr size_t kSkipAhead = 4;
  // One cache line. `count` packs the batch's bytes (low 32 bits) and its
  // blocks (high 32 bits), so a push counts both with one add; it has one
  // writer (the heap's thread) and racy readers (stats).
  struct Outgoing {
    static constexpr uint64_t kBlock = uint64_t{1} << 32;
    Heap* target;
    FreeBlock* head;
    FreeBlock* tail;
    threading::SingleWriter<uint64_t> count;
    // Push k of the batch writes recent[k % kSkipAhead], which until then
    // holds push k - kSkipAhead (or null): the skip target.
    FreeBlock* recent[kSkipAhead];
    uint64_t Bytes() const { return count.Get() & (kBlock - 1); }
    uint64_t Blocks() const { return count.Get() >> 32; }
  };
  static_assert(sizeof(Outgoing) == 64, "one cache line, indexed by a shift");

  // FreeRemote's rare halves: a thread that could not get a heap (p goes
  // alone), and a slot taken by another owner (flushed, retargeted, then p
  // is batched).
  ABSL_ATTRIBUTE_NOINLINE static void FreeRemoteWithoutHeap(void* p, Heap* owner, size_t bytes);
  ABSL_ATTRIBUTE_NOINLINE void RetargetAndFree(Outgoing& o, void* p, Heap* owner, size_t bytes);

  // Maps, constructs and registers a new heap; nullptr if the OS refuses.
  static Heap* Create();

  ABSL_ATTRIBUTE_NOINLINE void FreeLocalSlow(PoolDesc* d) noexcept;
  // Run d (the current run) has a head block that links out of its arena
  // (PopFree): reports the damage; in count mode drops the whole list and
  // refills.
  ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void* DamagedFreeList(PoolDesc* d) noexcept;

  void* Refill(size_t cls);
  void* PopFree(PoolDesc* d);
  void* PopCarving(PoolDesc* d);
  static void MarkFull(PoolDesc* d);
  void SetCurrent(size_t cls, PoolDesc* d);
  // current_[cls] = d, and the by_size_ slots of cls with it.
  void SetFastRun(size_t cls, PoolDesc* d) {
    current_[cls] = d;
    for (size_t k = kLowSlots[cls].first; k < kLowSlots[cls].end; ++k) by_size_[k] = d;
  }
  void SetStatsMode(bool on);
  void ReleaseEmptyCurrentRuns(uint64_t now);
  // Index of a run of n free pools in an owned arena (stored in *arena),
  // or -1 when the first kRunSearchLimit arenas with free pools have none.
  int FindFreeRun(uint32_t n, ArenaHeader** arena) const;
  // Claims pools [start, start + run_pools) of `a` for class cls, or, when
  // start < 0, takes a new arena from the arena source first.
  PoolDesc* NewRun(size_t cls, ArenaHeader* a, int start);
  void ReleaseRun(PoolDesc* d);
  void ReleaseRunLocked(PoolDesc* d, uint64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(meta_lock_);
  void LinkPartial(PoolDesc* d);
  void UnlinkPartial(PoolDesc* d);
  // Keeps an empty run (just unlinked from the partial list) on the empty
  // list, or releases it when the cache of empty runs is full.
  void KeepOrRelease(PoolDesc* d);
  void LinkEmptyLocked(PoolDesc* d, uint64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(meta_lock_);
  void UnlinkEmptyLocked(PoolDesc* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(meta_lock_);
  // Takes an empty run of class cls for reuse (re-carving it if purged).
  PoolDesc* TakeEmpty(size_t cls);
  // Releases every cached empty run. Returns the pools freed.
  size_t ReleaseEmptyRuns(uint64_t now);
  void LinkArena(ArenaHeader* a, bool avail) ABSL_EXCLUSIVE_LOCKS_REQUIRED(meta_lock_);
  void UnlinkArena(ArenaHeader* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(meta_lock_);
  // Frees block p (of `size` bytes, in run d of arena a) that was sent to
  // this heap: locally if the arena is still ours, else on to its owner.
  void FreeLocalOrForward(void* p, ArenaHeader* a, PoolDesc* d, size_t size);
  // True when `next`, a link decoded from travelling block b, is a block
  // (not a header) of b's arena or of an arena in our cache (ours, so
  // mapped): safe to follow without the page map.
  bool InKnownArena(const FreeBlock* b, const FreeBlock* next);
  size_t DrainSuspects();
  ABSL_ATTRIBUTE_NOINLINE void Flush(Outgoing& o);
  size_t CacheBudget() const;
  // Releases the cached empty runs, the empty current runs, then empty
  // arenas while this heap caches more than `budget` bytes.
  void ReleaseIdleOverBudget(size_t budget, uint64_t now);
  void ReleaseToBudget(uint64_t now);
  void ReleaseEmptyArenasOverBudget(size_t budget, uint64_t now);
  void ReleaseEmptyArenas(uint64_t now);
  void MoveArenaFrom(Heap* from, ArenaHeader* a);
  void PublishCachedPools();
  size_t PurgeLocked(uint64_t now, int64_t delay_ms, bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(meta_lock_);

  // The owner's unlocked reads of what meta_lock_ guards. While a heap has
  // an owner, only the owner changes these lists and counts (the purger
  // only purges runs and pools in place, under the lock), so the owner may
  // read them without it: it reads its own writes. A caller that acts on
  // what it read under the lock reads it again there (TakeEmpty). Every
  // unlocked read is one of these three, and the analysis trusts them.
  ArenaHeader* FirstAvailArenaOwner() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return avail_arenas_.front();
  }
  bool NoEmptyRunOwner(size_t cls) const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return empty_[cls].empty();
  }
  size_t EmptyRunPoolsOwner() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return empty_run_pools_; }

  // Fast-path data first. by_size_ is current_ by request size (slot k
  // holds current_[kLowClassTable[k]]; see TryAllocateSmall): malloc's one
  // load, eight sizes a cache line. In detailed stats mode every current_
  // slot is &g_empty_pool (so each allocation takes the counting slow path)
  // and runs_ holds the real current runs; otherwise current_[c] ==
  // runs_[c]. Both are written only through SetFastRun.
  //
  // sample_left_: bytes this thread may still allocate before the next
  // heap-profile sample (sampling.h); every allocation subtracts its size,
  // below zero it is sampled. The only heap word the allocation fast path
  // writes, so it shares a line with by_size_'s smallest sizes (which that
  // path reads) and never one that other threads read: beside id_, which
  // every remote freer reads, it cost xmalloc-test 20 % (producer/consumer
  // threads, a coherence miss per remote free).
  int64_t sample_left_ = kSampleCheckBytes;
  PoolDesc* by_size_[kLowClassTable.size()];
  uintptr_t arena_cache_[kArenaCacheEntries];
  LinkKey link_key_;  // GetLinkKey(), set once in Create() (before publication)
  // Fixed; read by every thread that frees to this heap (BatchRemote): kept
  // off the lines the owner writes often (counters_, outgoing_).
  const uint32_t id_;
  PoolDesc* current_[kNumClasses];
  PoolDesc* runs_[kNumClasses];
  using RunList = threading::IntrusiveList<PoolDesc, &PoolDesc::prev, &PoolDesc::next>;
  using ArenaList = threading::IntrusiveList<ArenaHeader, &ArenaHeader::prev, &ArenaHeader::next>;
  RunList partial_[kNumClasses];
  RunList empty_[kNumClasses] ABSL_GUARDED_BY(meta_lock_);  // see PoolDesc
  size_t empty_run_pools_ ABSL_GUARDED_BY(meta_lock_) = 0;  // pools in empty_ runs
  ArenaList avail_arenas_ ABSL_GUARDED_BY(meta_lock_);      // arenas with free pools
  ArenaList full_arenas_ ABSL_GUARDED_BY(meta_lock_);       // arenas without
  size_t empty_arenas_ = 0;              // owned arenas with used_pools == 0
  size_t arenas_ = 0;                    // owned arenas
  size_t free_pools_ = 0;                // usable pools of owned arenas in no run
  size_t published_free_pools_ = 0;      // our share of g_cached_pools
  size_t next_budget_check_pools_ = 0;   // free_pools_ at which ReleaseToBudget is retried
  uint64_t next_decay_ms_ = 0;           // when MaybeDecay next does its own purge
  bool stats_mode_ = false;
  uint64_t sample_rng_ = 0;              // the sampling countdown's generator (sampling.h)
  Outgoing outgoing_[kOutgoingSlots] = {};
  HeapCounters counters_;

  // Touched by other threads: on their own cache lines.
  alignas(kCacheLine) mutable threading::SpinLock meta_lock_;
  alignas(kCacheLine) threading::MpscQueue<FreeBlock, TransitLink> remote_;
  std::atomic<int64_t> queued_bytes_{0};
  // Suspected double frees: any thread claims a slot (CAS null -> claimed),
  // writes the block's first word beside it, stores the block (release) and
  // raises the flag (release); the owner clears the flag (acquire), reads
  // each filled slot (acquire) and its word, then empties it (release).
  static constexpr size_t kSuspectSlots = 16;
  // A slot claimed by a pusher that has not stored its block yet.
  static inline void* const kSuspectClaimed = reinterpret_cast<void*>(uintptr_t{1});
  alignas(kCacheLine) std::atomic<bool> has_suspects_{false};
  std::atomic<void*> suspects_[kSuspectSlots] = {};
  // The block's first word when its free was seen: a change proves that the
  // block was free on our list then, and has been handed out since.
  std::atomic<uintptr_t> suspect_words_[kSuspectSlots] = {};
  std::atomic<int64_t> suspect_bytes_{0};
  alignas(kCacheLine) std::atomic<State> state_{State::kActive};
  Heap* all_next_ = nullptr;
};

// The heap of the calling thread, or the empty sentinel before its first slow
// path (whose fast paths always miss). Initial-exec TLS: one %fs-relative
// load; constinit, so no per-access initialisation guard.
extern constinit thread_local Heap* tls_heap ABSL_ATTRIBUTE_INITIAL_EXEC;
extern Heap g_empty_heap;

// Gives the calling thread a heap (orphan, then free, then new), registers
// it for thread-exit cleanup and stores it in tls_heap. Returns nullptr
// only when the OS refuses memory for a new heap.
Heap* AcquireHeapForThread();

// Head of the list of every heap (acquire); follow all_next().
Heap* AllHeaps();

// Pops every orphaned heap, lets fn(heap) work on it as its exclusive
// holder, and pushes each back (to the free stack if it no longer owns
// arenas). Returns the number of orphans visited.
size_t ForEachOrphanExclusive(void (*fn)(Heap* orphan, void* arg), void* arg);

// Free pools held by all heaps together (published in steps), in bytes.
uint64_t CachedPoolBytesAllHeaps();

// The release engine's global pass, run from heaps' slow paths when due
// (set by the release layer; heap.cc knows nothing of it but this hook).
// `released`: the caller has just freed memory (a run or an arena).
using GlobalDecayHook = void (*)(uint64_t now, bool released);
void SetGlobalDecayHook(GlobalDecayHook hook);

// Runs the hook (if set): for frees outside a heap, such as a large block
// entering the large cache, whose release must not wait for the next
// allocation (the hook starts the background thread on the first).
void RunGlobalDecay(uint64_t now, bool released);

// The thread-exit hook: abandons the exiting thread's heap.
void OnThreadExit(void* value);

// Called (from the exiting thread) after a thread that used strata exits:
// the release engine's background thread checks then whether it is the
// last thread left, so that it never keeps a process alive.
using ThreadExitNotice = void (*)();
void SetThreadExitNotice(ThreadExitNotice notice);

// fork(): every heap's metadata lock is held across fork (see fork.h).
void LockAllHeapsForFork();
void UnlockAllHeapsForFork();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_H_
