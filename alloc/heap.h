// The thread cache ("heap"): each thread allocates from and frees into runs
// that its heap owns, with plain loads and stores, no lock and no atomic
// read-modify-write. A heap is assembled from parts, each a type in its own
// file whose fields only it writes:
//
//   ClassCache       class_cache.h       per class: the free blocks malloc pops
//                                        and local frees push (the fast paths')
//   ClassRuns        class_runs.h        per class: the current run and the
//                                        partial runs a refill takes from
//   SampleCountdown  sampling.h          the heap profile's rate and draws
//   ArenaCache       arena_cache.h       arenas the free fast path knows as ours
//   ReleaseBudget    release_budget.h    what it may keep, when it purges
//   OutgoingBatches  outgoing_batches.h  blocks freed for other heaps, batched
//   HeapCounters     heap_counters.h     statistics
//   OwnedArenas      owned_arenas.h      arenas, free pools, empty runs (locked)
//   IncomingQueue    incoming_queue.h    blocks other threads hand back, and
//                                        the suspects they park
//   HeapEntry        heap_registry.h     its record in the registry
//
// Heap itself holds the slow paths that make the parts work together:
// refill (the current run's list or fresh blocks -> queue -> partial ->
// empty -> new run), the local free's rare case (run.h's state machine),
// the drain, thread exit and the absorbing of orphans. The free path is free_path.h, in call order; heaps
// for threads are heap_registry.h's.
//
// SYNCHRONIZATION (each part's header says its own)
//  - The fast-path parts (cache_, arena_cache_), samples_, stats_mode_,
//    options_seen_ and
//    outgoing_ (but each slot's count): the owner thread only. "Owner
//    thread" is the thread whose tls_heap points here; a heap changes hands
//    only through the registry's stacks, whose release push / acquire pop
//    order the old owner's last writes before the new owner's first reads.
//  - runs_, budget_, the consumer side of incoming_, the counters the
//    drain and the run transitions write, and the free lists, carving and
//    list links of every run of the heap's arenas (empty runs excepted:
//    OwnedArenas): the holder of slow_lock_. The owner takes it on every
//    slow path that touches them (AllocateSlow, a class cache giving blocks
//    back, the general free path's checks, thread exit, ReleaseMemory); an
//    exclusive holder of an orphan or free heap takes it to drain it; and
//    the release engine tries it (never waits) to drain the queue of an
//    owner that left blocks sent to it waiting (Decay: a main thread that
//    hands work out and sleeps in join). Nothing on a fast path takes it:
//    they touch only the class cache and the arena cache, which a collector
//    leaves alone: the runs it empties it keeps (collecting_), for the
//    purge to give their pages back and the owner to release.
//  - link_key_: written once when the heap is made, before it is
//    published; then read by any thread holding a pointer to the heap.
//  - arenas_: its lock (owned_arenas.h). incoming_: lock-free MPSC.
//  - counters_: one writer each (the owner; pools_purged: whoever holds the
//    arenas' lock), racy readers (stats).
//  - stack_next_: the registry's stacks' link (tagged, lock-free).
#ifndef STRATA_ALLOC_HEAP_H_
#define STRATA_ALLOC_HEAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/arena_cache.h"
#include "alloc/class_cache.h"
#include "alloc/class_runs.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/heap_counters.h"
#include "alloc/heap_env.h"
#include "alloc/heap_registry.h"
#include "alloc/incoming_queue.h"
#include "alloc/outgoing_batches.h"
#include "alloc/owned_arenas.h"
#include "alloc/release_budget.h"
#include "alloc/sampling.h"
#include "alloc/size_class.h"
#include "threading/owner_lock.h"

namespace strata::internal {

// Bytes waiting in a heap's queue from which the release engine frees them
// itself when the owner is not in a slow path (Heap::Decay). An owner that
// allocates drains its queue on its refills; one that sleeps would keep
// the blocks, and the runs and arenas they pin, for as long as it sleeps.
inline constexpr int64_t kCollectQueuedBytes = int64_t{1} << 20;

class alignas(kCacheLine) Heap {
 public:
  // A heap of registry id `id` whose free lists link with `key`
  // (GetLinkKey(); g_empty_heap's is zero), taking arenas and the time from
  // `env`.
  constexpr Heap(uint32_t id, const LinkKey& key, const HeapEnv* env = &kProcessHeapEnv)
      : link_key_(key), entry_(id), env_(env), outgoing_(link_key_, counters_) {}

  // ---- Fast paths (owner thread only) ----

  // A block for a request of n <= kLowTableMax bytes from its class's
  // cache, or nullptr (the caller then takes AllocateSlow).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocateSmall(size_t n) noexcept {
    return cache_.TryPop(n, link_key_, arena_cache_);
  }
  // A block of class cls from its cache, or nullptr.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocate(size_t cls) noexcept {
    return cache_.TryPopClass(cls, link_key_, arena_cache_);
  }
  // The heap profile's sampling (large allocations count down here; the
  // classes' countdowns are the class cache's).
  SampleCountdown& samples() { return samples_; }
  // The link key, held by the heap: the fast paths load it off the heap
  // pointer they hold (the globals cost more from a shared object). Zero in
  // g_empty_heap, whose fast paths never reach a list.
  ABSL_ATTRIBUTE_ALWAYS_INLINE const LinkKey& link_key() const { return link_key_; }
  ABSL_ATTRIBUTE_ALWAYS_INLINE ArenaCache& arena_cache() { return arena_cache_; }

  // The class cache, whose lists the free fast path pushes onto.
  ABSL_ATTRIBUTE_ALWAYS_INLINE ClassCache& cache() { return cache_; }
  // A local free the class cache refused (free_path.h): block p of class
  // cls is the head of its list already (a double free: reported), or the
  // list is due for a look at its length (past its bound, its older half
  // goes back to the runs). `op` names the entry point.
  // (Static, p first: the free fast path tail-calls it with p still in the
  // register it arrived in.)
  ABSL_ATTRIBUTE_NOINLINE static void FreeToCacheSlow(void* p, Heap* self, size_t cls, const char* op) noexcept;
  // Blocks back on their run, after Run::Push or Run::PushSegment said so
  // (free_path.h's FreeToRun and FreeSegmentToRun: the drain, a cache
  // giving blocks back): the run is now empty, or asleep and due to wake,
  // or it had no live block. `last` and `blocks`: the segment just spliced
  // (null and 1: one block pushed).
  ABSL_ATTRIBUTE_NOINLINE void FreeLocalSlow(PoolDesc* d, FreeBlock* last = nullptr, uint32_t blocks = 1) noexcept;

  // ---- Slow paths (owner thread, or the heap's exclusive holder) ----

  // An allocation by the slow path: its block (nullptr: the OS refused
  // memory, errno ENOMEM) and whether it is the one the heap profile
  // samples (the class's countdown ran out).
  struct Allocation {
    void* block;
    bool sample;
  };
  // A block of class cls for a request of `size` bytes, after TryAllocate
  // (or TryAllocateSmall) returned nullptr for it: refills the class's
  // cache when it is empty, and draws the class's next countdown when this
  // allocation ended it.
  ABSL_ATTRIBUTE_NOINLINE Allocation AllocateSlow(size_t cls, size_t size) noexcept;
  // Takes every block other threads handed over and frees each locally (or
  // forwards it, when its arena moved on), then judges the suspects parked
  // here. Returns the blocks freed.
  size_t DrainRemote();
  // Hands every outgoing batch to its owner.
  void FlushOutgoing() { outgoing_.FlushAll(); }
  // On thread exit: drains, flushes, demotes the current runs and releases
  // every empty run and arena (a dead thread needs no spares).
  void Abandon();
  // Absorbs up to max_orphans orphans (their arenas, runs and queued blocks
  // become ours), then forwards blocks waiting in free heaps' queues.
  // Returns the orphans absorbed.
  size_t CollectOrphans(size_t max_orphans);
  // Releases the empty runs, the current runs with no live block, and empty
  // arenas while the heap keeps more than `budget` bytes (0: everything
  // idle; the arenas go to the shared stack, where the release engine
  // purges and unmaps them).
  void ReleaseOverBudget(size_t budget, uint64_t now);
  // The release engine's pass on this heap: purges its free pools and empty
  // runs due after delay_ms (all when force). As an orphan's exclusive
  // holder (`exclusive`) it first frees what its queue holds, hands on its
  // batches and releases its empty arenas; otherwise, when at least
  // kCollectQueuedBytes wait in the queue and the slow lock is free (the
  // owner is not in a slow path), it frees them as the owner would, keeping
  // every run that empties (the purge then gives its pages back), then
  // purges, with TryLock unless force (a busy owner purges its own).
  // Returns the bytes purged.
  size_t Decay(uint64_t now, int64_t delay_ms, bool force, bool exclusive);
  // Follows the options the fast paths depend on: `stats` (detailed mode:
  // every allocation takes the counting slow path) and
  // profile_sample_bytes or guarded_sample_bytes (the countdowns are drawn afresh). Each heap
  // follows them on its next slow path that looks; this makes the calling
  // thread's heap follow now.
  void FollowOptions();
  // Checks every part's invariants. REQUIRES: owner thread (or quiescent).
  bool IsValid() const;

  // ---- Parts, for the free path, the registry, stats and tests ----
  const ClassCache& cache() const { return cache_; }
  const HeapCounters& counters() const { return counters_; }
  ABSL_ATTRIBUTE_ALWAYS_INLINE HeapCounters& counters() { return counters_; }
  IncomingQueue& incoming() { return incoming_; }
  ABSL_ATTRIBUTE_ALWAYS_INLINE OutgoingBatches& outgoing() { return outgoing_; }
  const OutgoingBatches& outgoing() const { return outgoing_; }
  OwnedArenas& arenas() { return arenas_; }
  HeapEntry& entry() { return entry_; }
  const HeapEntry& entry() const { return entry_; }

  // The link in the registry's stacks; touched only by them.
  std::atomic<Heap*> stack_next_{nullptr};
  // The slow-path lock (see SYNCHRONIZATION above): the owner re-enters it
  // (a slow path that starts the background thread allocates). Lock order: an active
  // heap's own, then an orphan's it absorbs; then the release engine's pass
  // lock (taken by a slow path with TryLock, or by the memory limit's hook);
  // then arenas_' lock. The release engine, holding the pass lock, only
  // ever tries it.
  threading::OwnerLock slow_lock_;

 private:
  // Blocks of class cls for its (empty) cache, from the first that has some of:
  // the current run's list, its uncarved blocks, the queue (drained), a
  // partial run, an empty run kept whole, a new run. Empty when the OS
  // refuses memory. Unless `grow`, no new run: the lists of the current
  // and partial runs, the queue's, an empty run kept whole, the current
  // run's uncarved blocks (empty when none).
  BlockChain TakeFromRuns(size_t cls, bool grow);
  // Claims a run of class cls: in `arena` at `start`, or (start < 0) in a
  // new arena from the source. nullptr when the OS refuses memory.
  PoolDesc* NewRun(size_t cls, ArenaHeader* arena, int start);
  // Gives the blocks of class cls's cache after its first `keep` (the
  // older ones) back to their runs.
  void ReturnCached(size_t cls, uint32_t keep);
  // Releases run d (kHeld) to its arena's free pools, then keeps the heap
  // within its budget and lets the release engine run.
  void ReleaseRun(PoolDesc* d);
  // Moves arena a from `from` (an orphan we hold exclusively) to us, with
  // its partial and empty runs.
  void MoveArenaFrom(Heap* from, ArenaHeader* a);
  // The owner's periodic release work, from its slow paths: purges its own
  // due pools and lets the release engine run its global pass.
  void MaybeDecay(uint64_t now, bool released);

  // Fast-path data first, on lines no other thread reads: the allocation
  // fast path writes the class cache on every call, and beside the heap's
  // id, which every remote freer reads, a word it wrote cost xmalloc-test
  // 20 % (a coherence miss per remote free).
  ClassCache cache_;
  ArenaCache arena_cache_;
  // Read by other threads (every remote freer: the key and the id), written
  // once: a line the owner does not write.
  alignas(kCacheLine) const LinkKey link_key_;
  HeapEntry entry_;
  alignas(kCacheLine) ClassRuns runs_;
  SampleCountdown samples_;
  RefillMarks refill_marks_;
  bool stats_mode_ = false;  // detailed stats: every allocation takes AllocateSlow
  uint64_t options_seen_ = 0;  // OptionChanges() when FollowOptions last looked
  // Set while a thread other than the owner drains the queue (Decay): runs
  // that empty are kept, never released, so that nothing the owner's fast
  // paths read (the arena cache) changes under them.
  bool collecting_ = false;
  ReleaseBudget budget_;
  const HeapEnv* const env_;
  OutgoingBatches outgoing_;
  HeapCounters counters_;
  OwnedArenas arenas_;
  IncomingQueue incoming_;

  // Unit tests reach the parts above through a peer
  // (tests/alloc/heap_test_peer.h); nothing else does.
  friend class HeapTestPeer;
};

// The release engine's global pass, run from heaps' slow paths when due
// (set by the release layer; the heap knows nothing of it but this hook).
// `released`: the caller has just freed memory (a run or an arena).
using GlobalDecayHook = void (*)(uint64_t now, bool released);
// Returns the hook it replaces.
GlobalDecayHook SetGlobalDecayHook(GlobalDecayHook hook);

// Runs the hook (if set): for frees outside a heap, such as a large block
// entering the large cache, whose release must not wait for the next
// allocation (the hook starts the background thread on the first).
void RunGlobalDecay(uint64_t now, bool released);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_H_
