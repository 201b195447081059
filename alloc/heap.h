// The thread cache ("heap"): each thread allocates from and frees into runs
// that its heap owns, with plain loads and stores, no lock and no atomic
// read-modify-write. A heap is assembled from parts, each a type in its own
// file whose fields only it writes:
//
//   SampleCountdown  sampling.h          bytes until the next profile sample
//   ClassRuns        class_runs.h        per class: the current run (the
//                                        fast path's slots) and partial runs
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
// refill (current run -> queue -> partial -> empty -> new run), the local
// free's rare case (run.h's state machine), the drain, thread exit and the
// absorbing of orphans. The free path is free_path.h, in call order; heaps
// for threads are heap_registry.h's.
//
// SYNCHRONIZATION (each part's header says its own)
//  - The fast-path parts (samples_, runs_, arena_cache_), budget_,
//    outgoing_ (but each slot's count), and the free lists, carving and list
//    links of every run of the heap's arenas: the owner thread only (empty
//    runs excepted: OwnedArenas). "Owner thread" is the thread whose tls_heap
//    points here; a heap changes hands only through the registry's stacks,
//    whose release push / acquire pop order the old owner's last writes
//    before the new owner's first reads.
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

namespace strata::internal {

class alignas(kCacheLine) Heap {
 public:
  // A heap of registry id `id` whose free lists link with `key`
  // (GetLinkKey(); g_empty_heap's is zero), taking arenas and the time from
  // `env`.
  constexpr Heap(uint32_t id, const LinkKey& key, const HeapEnv* env = &kProcessHeapEnv)
      : link_key_(key), entry_(id), env_(env) {}

  // ---- Fast paths (owner thread only) ----

  // A block for a request of n <= kLowTableMax bytes from its class's
  // current run, or nullptr (the caller then takes a slow path).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocateSmall(size_t n) noexcept {
    return runs_.TryAllocateSmall(n, link_key_);
  }
  // A block of class cls from its current run, or nullptr.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryAllocate(size_t cls) noexcept {
    return runs_.TryAllocate(cls, link_key_);
  }
  // A block of class cls for a request of `size` bytes, or nullptr when the
  // OS refuses memory.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Allocate(size_t cls, size_t size) noexcept {
    void* b = TryAllocate(cls);
    if (ABSL_PREDICT_FALSE(b == nullptr)) return AllocateSlow(cls, size);
    return b;
  }
  // The sampling countdown (every allocation subtracts its size).
  ABSL_ATTRIBUTE_ALWAYS_INLINE SampleCountdown& samples() { return samples_; }
  // The link key, held by the heap: the fast paths load it off the heap
  // pointer they hold (the globals cost more from a shared object). Zero in
  // g_empty_heap, whose fast paths never reach a list.
  ABSL_ATTRIBUTE_ALWAYS_INLINE const LinkKey& link_key() const { return link_key_; }
  ABSL_ATTRIBUTE_ALWAYS_INLINE ArenaCache& arena_cache() { return arena_cache_; }

  // The local free's rare case, after Run::Push said so (free_path.h): the
  // run is now empty, or asleep and due to wake, or it had no live block.
  ABSL_ATTRIBUTE_NOINLINE void FreeLocalSlow(PoolDesc* d) noexcept;

  // ---- Slow paths (owner thread, or the heap's exclusive holder) ----

  // Allocate() when the current run has no block ready.
  ABSL_ATTRIBUTE_NOINLINE void* AllocateSlow(size_t cls, size_t size) noexcept;
  // Takes every block other threads handed over and frees each locally (or
  // forwards it, when its arena moved on), then judges the suspects parked
  // here. Returns the blocks freed.
  size_t DrainRemote();
  // Hands every outgoing batch to its owner.
  void FlushOutgoing() { outgoing_.FlushAll(counters_); }
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
  // batches and releases its empty arenas; otherwise it only purges, with
  // TryLock unless force (a busy owner purges its own). Returns the bytes
  // purged.
  size_t Decay(uint64_t now, int64_t delay_ms, bool force, bool exclusive);
  // Follows the `stats` option (detailed mode: every allocation takes the
  // counting slow path). Each heap follows it on its next slow path; this
  // makes the calling thread's heap follow now.
  void SyncStatsMode();
  // Checks every part's invariants. REQUIRES: owner thread (or quiescent).
  bool IsValid() const;

  // ---- Parts, for the free path, the registry, stats and tests ----
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

 private:
  // The allocation slow path's steps: carve more of the current run | drain
  // the queue | a partial run | an empty run kept whole | a new run.
  void* Refill(size_t cls);
  // Claims a run of class cls: in `arena` at `start`, or (start < 0) in a
  // new arena from the source. nullptr when the OS refuses memory.
  PoolDesc* NewRun(size_t cls, ArenaHeader* arena, int start);
  // A block of run d, which has free or uncarved blocks (carving first when
  // its list is empty). A damaged list is reported and, in count mode,
  // dropped; the allocation is then refilled.
  void* PopFrom(PoolDesc* d);
  // Releases run d (kHeld) to its arena's free pools, then keeps the heap
  // within its budget and lets the release engine run.
  void ReleaseRun(PoolDesc* d);
  // Moves arena a from `from` (an orphan we hold exclusively) to us, with
  // its partial and empty runs.
  void MoveArenaFrom(Heap* from, ArenaHeader* a);
  // The owner's periodic release work, from its slow paths: purges its own
  // due pools and lets the release engine run its global pass.
  void MaybeDecay(uint64_t now, bool released);

  // Fast-path data first. samples_ is the only heap word the allocation
  // fast path writes, so it shares a line with runs_'s by-size slots for the
  // smallest sizes (which that path reads) and never one that other threads
  // read: beside the heap's id, which every remote freer reads, it cost
  // xmalloc-test 20 % (a coherence miss per remote free).
  SampleCountdown samples_;
  ClassRuns runs_;
  ArenaCache arena_cache_;
  // Read by other threads (every remote freer: the key and the id), written
  // once: a line the owner does not write.
  alignas(kCacheLine) const LinkKey link_key_;
  HeapEntry entry_;
  alignas(kCacheLine) ReleaseBudget budget_;
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
void SetGlobalDecayHook(GlobalDecayHook hook);

// Runs the hook (if set): for frees outside a heap, such as a large block
// entering the large cache, whose release must not wait for the next
// allocation (the hook starts the background thread on the first).
void RunGlobalDecay(uint64_t now, bool released);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_H_
