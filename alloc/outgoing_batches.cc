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

void OutgoingBatches::Retarget(Slot& o, void* p, IncomingQueue* to, size_t bytes, const LinkKey& key,
                               HeapCounters& counters) {
  if (o.head != nullptr) Flush(o, counters);
  o.target = to;
  // Retargeted: the push below takes the common path.
  Push(p, to, static_cast<uint32_t>(&o - slots_), bytes, key, counters);
}

void OutgoingBatches::Flush(Slot& o, HeapCounters& counters) {
  counters.batch_blocks[BatchBucket(o.Blocks())].Add(1);
  o.target->Push(o.head, o.tail, o.Bytes());
  o.head = o.tail = nullptr;
  o.count.Set(0);
  for (FreeBlock*& r : o.recent) r = nullptr;
}

void OutgoingBatches::FlushAll(HeapCounters& counters) {
  for (Slot& o : slots_) {
    if (o.head != nullptr) Flush(o, counters);
  }
}

void OutgoingBatches::FlushAndForget(HeapCounters& counters) {
  FlushAll(counters);
  for (Slot& o : slots_) o.target = nullptr;
}

bool OutgoingBatches::Contains(const IncomingQueue* to, uint32_t owner_id, const void* p,
                               const LinkKey& key) const {
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

bool OutgoingBatches::IsValid(const LinkKey& key) const {
  for (const Slot& o : slots_) {
    if (o.head == nullptr) {
      if (o.count.Get() != 0 || o.tail != nullptr) return false;
      continue;
    }
    if (o.target == nullptr) return false;
    uint64_t blocks = 0, bytes = 0;
    const FreeBlock* last = nullptr;
    for (const FreeBlock* b = o.head; b != nullptr; b = NextOf(b, key)) {
      if (++blocks > o.Blocks() || !LinkTargetIsStrata(b)) return false;
      bytes += RunOf(ArenaOf(b), b)->size;
      last = b;
    }
    if (last != o.tail || blocks != o.Blocks() || bytes != o.Bytes()) return false;
  }
  return true;
}

}  // namespace strata::internal
