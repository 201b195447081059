// A heap's sending side: blocks this thread freed for other heaps, batched
// per owner and handed over a batch at a time (one CAS on the owner's
// IncomingQueue, incoming_queue.h). Within a batch, consecutive frees of
// one run form a segment (free_link.h, THE SEGMENT WORD) that the owner
// splices onto the run's list whole. One of a heap's parts (heap.h).
#ifndef STRATA_ALLOC_OUTGOING_BATCHES_H_
#define STRATA_ALLOC_OUTGOING_BATCHES_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/heap_counters.h"
#include "alloc/incoming_queue.h"
#include "alloc/options.h"
#include "threading/single_writer.h"

namespace strata::internal {

// Distinct owners a thread batches for at once (direct-mapped by owner id).
inline constexpr size_t kOutgoingSlots = 8;

// Invariants, per slot: blocks == the length of the chain head..tail (tail
// is the first block pushed), bytes == the sum of their run sizes; target
// is null or the queue the chain goes to; an empty chain has head == null
// and count == 0; the chain is a sequence of segments, each the blocks of
// one run, whose first block's segment word names its last block and
// length; the open segment (the one at head) is of run seg_run (null: none
// may grow: the head is an 8-byte block, or nothing was pushed) and
// seg_blocks long, ending at seg_last.
// SYNCHRONIZATION: the owner thread only, but each slot's `count`, which has
// racy readers (stats) through threading::SingleWriter.
class OutgoingBatches {
 public:
  // Batches linked with `key` (the heap's), counted in `counters` (the
  // heap's): both outlive this. Held here rather than passed on every push
  // so that the push's rare branches (Retarget, Flush) take few enough
  // arguments to be tail calls: the remote free then needs no stack frame
  // (8 instructions of ~60 on xmalloc-test's remote free).
  constexpr OutgoingBatches(const LinkKey& key, HeapCounters& counters) : key_(&key), counters_(&counters) {}

  // Links p (a block of `bytes` of run `run`, freed by this thread) into
  // the batch for the heap of id `owner_id` whose queue is `to`; hands the
  // batch over when it reaches remote_batch_bytes. Counts the remote free.
  // `run` is only compared: consecutive blocks of one run share a segment.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Push(void* p, const void* run, IncomingQueue* to, uint32_t owner_id,
                                         size_t bytes) {
    Slot& o = slots_[owner_id % kOutgoingSlots];
    if (ABSL_PREDICT_FALSE(o.target != to)) return Retarget(o, p, run, to, bytes);
    const LinkKey& key = *key_;
    HeapCounters& counters = *counters_;
    auto* b = static_cast<FreeBlock*>(p);
    FreeBlock* const head = o.head;
    if (bytes >= 2 * sizeof(FreeBlock*)) {
      // p joins the open segment, or opens one of its own.
      if (o.seg_run == run && ABSL_PREDICT_TRUE(o.seg_blocks < kSegmentMaxBlocks)) {
        ++o.seg_blocks;
      } else {
        o.seg_run = run;
        o.seg_last = b;
        o.seg_blocks = 1;
      }
      SetSegment(b, o.seg_last, static_cast<uint32_t>(o.seg_blocks), key);
    } else {
      o.seg_run = nullptr;  // a segment of one, without a segment word
    }
    // The link last: a free that finds it finds the segment word with it
    // (ClaimBlock, free_link.h).
    SetLink(b, head, key);
    if (head == nullptr) o.tail = b;
    o.head = b;
    const uint64_t count = o.count.Add(Slot::kBlock + bytes);
    counters.remote_frees.Add(1);
    counters.remote_bytes.Add(bytes);
    if (ABSL_PREDICT_FALSE((count & (Slot::kBlock - 1)) >=
                           static_cast<uint64_t>(GetOption(Option::kRemoteBatchBytes)))) {
      return Flush(o);
    }
  }

  // Hands every batch to its owner.
  void FlushAll();
  // FlushAll, and forgets every target (a heap whose thread exits).
  void FlushAndForget();
  // True when p waits in the batch for the queue `to` (a walk).
  bool Contains(const IncomingQueue* to, uint32_t owner_id, const void* p) const;
  // Bytes waiting in the batches (racy; statistics).
  uint64_t Bytes() const;
  // Checks the invariants (owner, or quiescent).
  bool IsValid() const;

 private:
  // One cache line. `count` packs the batch's bytes (low 32 bits) and its
  // blocks (high 32 bits), so a push counts both with one add.
  struct alignas(kCacheLine) Slot {
    static constexpr uint64_t kBlock = uint64_t{1} << 32;
    IncomingQueue* target;
    FreeBlock* head;
    FreeBlock* tail;
    threading::SingleWriter<uint64_t> count;
    // The open segment (see the invariants).
    const void* seg_run;
    FreeBlock* seg_last;
    uint64_t seg_blocks;
    uint64_t Bytes() const { return count.Get() & (kBlock - 1); }
    uint64_t Blocks() const { return count.Get() >> 32; }
  };
  static_assert(sizeof(Slot) == 64, "one cache line, indexed by a shift");

  // A slot taken by another owner: flushed, retargeted, then p is pushed.
  ABSL_ATTRIBUTE_NOINLINE void Retarget(Slot& o, void* p, const void* run, IncomingQueue* to, size_t bytes);
  ABSL_ATTRIBUTE_NOINLINE void Flush(Slot& o);

  const LinkKey* const key_;
  HeapCounters* const counters_;
  Slot slots_[kOutgoingSlots] = {};
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_OUTGOING_BATCHES_H_
