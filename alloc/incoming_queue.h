// A heap's incoming side: the MPSC queue through which other threads hand
// it batches of blocks they freed, the owner's drain of it, and the suspect
// slots where they park blocks for it to judge (misuse.h). One of a heap's
// parts (heap.h); the sending side is outgoing_batches.h.
//
// What a batch looks like when it arrives: a chain of blocks, each linking
// to the next through its first word with the one link of every free
// block (free_link.h), so that a travelling block looks free to every
// thread. The chain is cut into segments: consecutive blocks of one run,
// whose first block's second word (free_link.h, THE SEGMENT WORD) names the
// segment's last block and its length. The drain hands each segment to its
// sink whole, and the heap splices it onto its run's list in O(1): the
// owner touches the first and last block of a segment, not every block
// (snmalloc's BatchIt). Blocks of 8 bytes are segments of one.
#ifndef STRATA_ALLOC_INCOMING_QUEUE_H_
#define STRATA_ALLOC_INCOMING_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/misuse.h"
#include "threading/mpsc_queue.h"

namespace strata::internal {

// How a travelling block links in a queue: as every free block does.
struct TransitLink {
  static void Set(FreeBlock* n, FreeBlock* next);
};

// Invariant (at quiescence): queued_bytes_ == the bytes of the blocks in
// the queue (each block's run size).
// SYNCHRONIZATION
//  - queue_: any thread pushes batches (release CAS); the owner takes them
//    all (acquire exchange). See threading/mpsc_queue.h.
//  - queued_bytes_: relaxed RMW by pushers (before the push) and the owner
//    (after the drain); statistics only.
//  - suspects_: see SuspectSlots.
class IncomingQueue {
 public:
  constexpr IncomingQueue() = default;

  // Hands the chain first..last (`bytes` in all) to the owner. Any thread.
  void Push(FreeBlock* first, FreeBlock* last, uint64_t bytes);
  // Hands over block b alone (a thread that could not get a heap).
  void PushOne(FreeBlock* b, size_t bytes);

  // The owner: takes every block handed over and calls
  // sink.FreeSegment(first, last, blocks, arena, run) for each
  // segment, in the order they come. The link out of each segment is
  // checked before it is followed: a link the sink knows to be safe
  // (sink.Known(b, next): a block of b's arena or of one it owns) or null or
  // a block of some arena by the page map; the checked build also checks
  // the segment word (its last block a block of the same run, its length
  // within the run's). Anything else is damage (a write after free),
  // reported, and in count mode the rest of the batch is dropped (its
  // blocks stay in use). The links inside a segment are checked where they
  // are followed: where the heap's class cache pops them (checked build).
  // Returns the blocks taken.
  template <typename Sink>
  size_t Drain(Sink& sink) {
    FreeBlock* b = queue_.TakeAll();
    if (b == nullptr) return 0;
    // The global key: an orphan's drain may run on any thread.
    const LinkKey key = GetLinkKey();
    int64_t bytes = 0;
    size_t received = 0;
    while (b != nullptr) {
      ArenaHeader* a = ArenaOf(b);
      // The block is live (travelling): its run's shape is fixed.
      PoolDesc* d = RunOf(a, b);
      const size_t size = d->size;
      Segment seg{b, 1};
      if (size >= 2 * sizeof(FreeBlock*)) {
        seg = SegmentOf(b, key);
        if (ABSL_PREDICT_FALSE(kCheckPoppedLinks && !SegmentFits(d, b, seg))) {
          ReportDamage(b, Misuse::kBatchDamaged);
          break;
        }
      }
      FreeBlock* next = NextOf(seg.last, key);
      // The multiply spreads damage to the stored word over the decoded
      // address: checked before it is followed.
      if (ABSL_PREDICT_FALSE(!sink.Known(seg.last, next) && !LinkTargetIsStrata(next))) {
        ReportDamage(seg.last, Misuse::kBatchDamaged);
        next = nullptr;
      }
      sink.FreeSegment(b, seg.last, seg.blocks, a, d);
      bytes += static_cast<int64_t>(size) * seg.blocks;
      received += seg.blocks;
      b = next;
    }
    // Relaxed: statistics (see Push()).
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    return received;
  }

  // True when segment `seg`, read from block `first` of run d, can be
  // trusted: its last block is a block of d's run, and its length fits the
  // run (the checked build's check of a segment word).
  static bool SegmentFits(const PoolDesc* d, const FreeBlock* first, const Segment& seg) {
    return seg.blocks != 0 && seg.blocks <= d->capacity && SameArena(first, seg.last) &&
           InBlockPool(seg.last) && RunOf(ArenaOf(first), seg.last) == d && ValidateBlock(d, seg.last, d->capacity);
  }

  // Racy emptiness hint.
  bool EmptyHint() const { return queue_.EmptyHint(); }
  // Bytes in the queue (racy; statistics).
  int64_t QueuedBytes() const { return queued_bytes_.load(std::memory_order_relaxed); }

  SuspectSlots& suspects() { return suspects_; }
  const SuspectSlots& suspects() const { return suspects_; }

 private:
  // Touched by other threads: on lines of their own.
  alignas(kCacheLine) threading::MpscQueue<FreeBlock, TransitLink> queue_;
  std::atomic<int64_t> queued_bytes_{0};
  alignas(kCacheLine) SuspectSlots suspects_;
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INCOMING_QUEUE_H_
