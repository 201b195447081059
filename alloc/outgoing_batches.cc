// A heap's outgoing batches: flushing, retargeting and the checks
// (outgoing_batches.h).
#include "alloc/outgoing_batches.h"

namespace strata::internal {
namespace {

// Histogram bucket of a batch of `blocks`: [2^b, 2^(b+1)).
size_t BatchBucket(size_t blocks) {
  size_t b = 0;
  while (b + 1 < kBatchBuckets && (blocks >> (b + 1)) != 0) ++b;
  return b;
}

}  // namespace

void OutgoingBatches::Retarget(Slot& o, void* p, const void* run, IncomingQueue* to, size_t bytes) {
  if (o.head != nullptr) Flush(o);
  o.target = to;
  // Retargeted: the push below takes the common path.
  Push(p, run, to, static_cast<uint32_t>(&o - slots_), bytes);
}

void OutgoingBatches::Flush(Slot& o) {
  counters_->batch_blocks[BatchBucket(o.Blocks())].Add(1);
  o.target->Push(o.head, o.tail, o.Bytes());
  o.head = o.tail = nullptr;
  o.count.Set(0);
  o.seg_run = nullptr;
  o.seg_last = nullptr;
  o.seg_blocks = 0;
}

void OutgoingBatches::FlushAll() {
  for (Slot& o : slots_) {
    if (o.head != nullptr) Flush(o);
  }
}

void OutgoingBatches::FlushAndForget() {
  FlushAll();
  for (Slot& o : slots_) o.target = nullptr;
}

bool OutgoingBatches::Contains(const IncomingQueue* to, uint32_t owner_id, const void* p) const {
  const LinkKey& key = *key_;
  const Slot& o = slots_[owner_id % kOutgoingSlots];
  if (o.target != to) return false;
  size_t steps = 0;
  const uint64_t blocks = o.Blocks();
  for (const FreeBlock* b = o.head; b != nullptr && steps < blocks; ++steps) {
    if (b == p) return true;
    b = NextOf(b, key);
    // A link damaged by a write after free is not followed (the owner's
    // drain reports it).
    if (!LinkTargetIsStrata(b)) return false;
  }
  return false;
}

uint64_t OutgoingBatches::Bytes() const {
  uint64_t bytes = 0;
  for (const Slot& o : slots_) bytes += o.Bytes();
  return bytes;
}

bool OutgoingBatches::IsValid() const {
  const LinkKey& key = *key_;
  for (const Slot& o : slots_) {
    if (o.head == nullptr) {
      if (o.count.Get() != 0 || o.tail != nullptr || o.seg_run != nullptr) return false;
      continue;
    }
    if (o.target == nullptr) return false;
    uint64_t blocks = 0, bytes = 0;
    const FreeBlock* last = nullptr;
    // The segment the walk is in: its run, its last block, blocks left.
    const PoolDesc* seg_run = nullptr;
    const FreeBlock* seg_last = nullptr;
    uint32_t seg_left = 0;
    for (const FreeBlock* b = o.head; b != nullptr; b = NextOf(b, key)) {
      if (++blocks > o.Blocks() || !LinkTargetIsStrata(b)) return false;
      const PoolDesc* d = RunOf(ArenaOf(b), b);
      bytes += d->size;
      if (seg_left == 0) {  // b starts a segment
        const Segment seg =
            d->size >= 2 * sizeof(FreeBlock*) ? SegmentOf(b, key) : Segment{const_cast<FreeBlock*>(b), 1};
        if (seg.blocks == 0) return false;
        // The open segment is the slot's.
        if (b == o.head && d->size >= 2 * sizeof(FreeBlock*) &&
            (o.seg_run != d || o.seg_blocks != seg.blocks || o.seg_last != seg.last)) {
          return false;
        }
        seg_run = d;
        seg_last = seg.last;
        seg_left = seg.blocks;
      } else if (d != seg_run) {
        return false;
      }
      if (--seg_left == 0 && b != seg_last) return false;
      last = b;
    }
    if (seg_left != 0) return false;
    if (last != o.tail || blocks != o.Blocks() || bytes != o.Bytes()) return false;
  }
  return true;
}

}  // namespace strata::internal
