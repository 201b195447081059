// The thread cache ("heap"): each thread allocates from and frees into runs
// that its heap owns, with plain loads and stores, no lock and no atomic
// read-modify-write. Blocks freed by a thread that does not own them travel
// back to the owner in batches through the owner's MPSC queue.
//
// SYNCHRONIZATION
//  - current_, partial_, arena lists, outgoing_, and every PoolDesc and
//    ArenaHeader field of the heap's arenas (but owner): owner thread only.
//    "Owner thread" is the thread whose tls_heap points here; a heap changes
//    hands only through the orphan/free stacks, whose release push / acquire
//    pop order the old owner's last writes before the new owner's first reads.
//  - remote_: any thread pushes batches (release CAS); the owner takes them
//    (acquire exchange). See threading/mpsc_queue.h.
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

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/size_class.h"
#include "threading/mpsc_queue.h"

namespace strata::internal {

// Bytes a thread gathers for one owner before handing the batch over.
inline constexpr size_t kRemoteBatchBytes = size_t{16} << 10;
// Distinct owners a thread batches for at once (direct-mapped by heap id).
inline constexpr size_t kOutgoingSlots = 8;
// The thread cache's byte budget: free pools (in arenas the heap owns, empty
// arenas included) that a heap may keep for itself. Beyond it, empty arenas
// go back to the shared empty-arena stack, and arenas that are mostly free
// but pinned by a few live blocks are donated whole to other threads (see
// Heap::TrimToBudget).
inline constexpr size_t kThreadCacheBytes = size_t{1} << 20;
// Arenas with free pools a heap searches for a run before taking a new one.
inline constexpr size_t kRunSearchLimit = 16;

// The descriptor every empty slot of current_ points at: no free blocks, no
// uncarved blocks, so the fast path falls to the slow path without a null test.
extern PoolDesc g_empty_pool;

class alignas(kCacheLine) Heap {
 public:
  enum class State : uint32_t { kActive, kOrphan, kFree };

  constexpr explicit Heap(uint32_t id) : id_(id) {
    for (auto& c : current_) c = &g_empty_pool;
  }
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  // ---- Fast paths (owner thread only) ----

  // Returns a block of class cls, or nullptr when the OS refuses memory.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Allocate(size_t cls) {
    PoolDesc* d = current_[cls];
    FreeBlock* b = d->free;
    if (ABSL_PREDICT_FALSE(b == kFreeListEnd)) return AllocateSlow(cls);
    d->free = b->next;
    ++d->used;
    return b;
  }

  // Frees block b of run d. REQUIRES: this heap owns d's arena.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void FreeLocal(PoolDesc* d, void* p) {
    auto* b = static_cast<FreeBlock*>(p);
    b->next = d->free;
    d->free = b;
    if (ABSL_PREDICT_FALSE(--d->used == 0 || d->list == PoolList::kNone)) FreeLocalSlow(d);
  }

  // ---- Slow paths ----

  // Frees block p (of `bytes`) owned by heap `owner` != this: batches it.
  ABSL_ATTRIBUTE_NOINLINE void FreeRemote(void* p, Heap* owner, size_t bytes);

  // Hands over block p, whose first word looks like a free-list link, for
  // the owner to check against its free list before freeing it (a remote
  // double free). Writes nothing into p: if p is free, its link is the
  // owner's. Returns false when every suspect slot is taken (the caller then
  // frees p as a plain remote free).
  bool PushSuspect(void* p);

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

  // Free pools this heap holds in its arenas (owner view), in bytes.
  size_t CachedPoolBytes() const { return free_pools_ * kPoolSize; }

  uint32_t id() const { return id_; }
  State state() const { return state_.load(std::memory_order_acquire); }

  // Every heap ever created (stats, tests). all_next() walks them.
  Heap* all_next() const { return all_next_; }

  // Checks the owner-side invariants of every run this heap holds.
  // REQUIRES: owner thread (or quiescent).
  bool IsValid() const;

  // True while the heap owns arenas (so it may hold live blocks).
  bool OwnsArenas() const { return arenas_ != 0; }

  // Link for the orphan and free-heap stacks; touched only by them.
  std::atomic<Heap*> stack_next_{nullptr};

 private:
  friend Heap* AcquireHeapForThread();
  friend void OnThreadExit(void* value);

  struct Outgoing {
    Heap* target;
    FreeBlock* head;
    FreeBlock* tail;
    size_t bytes;
  };

  // Maps, constructs and registers a new heap; nullptr if the OS refuses.
  static Heap* Create();

  ABSL_ATTRIBUTE_NOINLINE void* AllocateSlow(size_t cls);
  ABSL_ATTRIBUTE_NOINLINE void FreeLocalSlow(PoolDesc* d);

  void* PopCarving(PoolDesc* d);
  void SetCurrent(size_t cls, PoolDesc* d);
  // Index of a run of n free pools in an owned arena (stored in *arena),
  // or -1 when the first kRunSearchLimit arenas with free pools have none.
  int FindFreeRun(uint32_t n, ArenaHeader** arena) const;
  // Claims pools [start, start + run_pools) of `a` for class cls, or, when
  // start < 0, takes a new arena from the arena source first.
  PoolDesc* NewRun(size_t cls, ArenaHeader* a, int start);
  void ReleaseRun(PoolDesc* d);
  void LinkPartial(PoolDesc* d);
  void UnlinkPartial(PoolDesc* d);
  void LinkArena(ArenaHeader* a, bool avail);
  void UnlinkArena(ArenaHeader* a);
  void FreeLocalOrForward(void* p);
  size_t DrainSuspects();
  void Flush(Outgoing& o);
  void TrimToBudget();
  void ReleaseEmptyArenasOverBudget();
  void DonateOverBudget();
  void DonateArena(ArenaHeader* a);
  void MoveArenaFrom(Heap* from, ArenaHeader* a);

  // Fast-path data first: one cache line covers eight classes.
  PoolDesc* current_[kNumClasses];
  PoolDesc* partial_[kNumClasses] = {};
  ArenaHeader* avail_arenas_ = nullptr;  // arenas with free pools
  ArenaHeader* full_arenas_ = nullptr;   // arenas without
  size_t empty_arenas_ = 0;              // owned arenas with used_pools == 0
  size_t arenas_ = 0;                    // owned arenas
  size_t free_pools_ = 0;                // usable pools of owned arenas in no run
  Outgoing outgoing_[kOutgoingSlots] = {};
  const uint32_t id_;

  // Written by other threads: on their own cache lines.
  alignas(kCacheLine) threading::MpscQueue<FreeBlock> remote_;
  // Suspected double frees: any thread CASes null -> block into a slot and
  // then raises the flag (release); the owner clears the flag (acquire) and
  // empties the slots with exchanges.
  static constexpr size_t kSuspectSlots = 16;
  alignas(kCacheLine) std::atomic<bool> has_suspects_{false};
  std::atomic<void*> suspects_[kSuspectSlots] = {};
  alignas(kCacheLine) std::atomic<State> state_{State::kActive};
  Heap* all_next_ = nullptr;
};

// The heap of the calling thread, or the empty sentinel before its first slow
// path (whose fast paths always miss). Initial-exec TLS: one %fs-relative load.
extern thread_local Heap* tls_heap ABSL_ATTRIBUTE_INITIAL_EXEC;
extern Heap g_empty_heap;

// Gives the calling thread a heap (orphan, then free, then new), registers
// it for thread-exit cleanup and stores it in tls_heap. Returns nullptr
// only when the OS refuses memory for a new heap.
Heap* AcquireHeapForThread();

// Head of the list of every heap (acquire); follow all_next().
Heap* AllHeaps();

// Arenas donated by heaps over their cache budget (statistics).
uint64_t ArenaDonations();

// The thread-exit hook: abandons the exiting thread's heap.
void OnThreadExit(void* value);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_H_
