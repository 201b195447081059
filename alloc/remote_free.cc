// Cross-thread frees: outgoing batches per owner, the hand-off to the
// owner's MPSC queue, the owner's drain (forwarding blocks whose arena moved
// on), and suspected double frees parked for the owner to check. See heap.h
// ("Life of a block freed remotely" in ARCHITECTURE.md) for the protocol.
#include <atomic>

#include "alloc/error.h"
#include "alloc/heap.h"
#include "alloc/options.h"

namespace strata::internal {

namespace {

// The second word of a block in a remote batch (blocks of 16 bytes or more).
FreeBlock*& SkipLink(FreeBlock* b) { return reinterpret_cast<FreeBlock**>(b)[1]; }

size_t BatchBucket(size_t blocks) {
  size_t b = 0;
  while (b + 1 < kBatchBuckets && (blocks >> (b + 1)) != 0) ++b;
  return b;
}

}  // namespace

void Heap::FreeRemote(void* p, Heap* owner, size_t bytes) {
  auto* b = static_cast<FreeBlock*>(p);
  if (this == &g_empty_heap) {
    // First call of this thread, or a free after its exit hook ran.
    Heap* h = AcquireHeapForThread();
    if (h == nullptr) {
      // No heap to batch in: a batch of one. Relaxed: statistics.
      owner->queued_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
      owner->remote_.PushBatch(b, b);
    } else if (h == owner) {
      h->FreeLocal(RunOf(ArenaOf(p), p), p);  // we adopted the owner itself
    } else {
      h->FreeRemote(p, owner, bytes);
    }
    return;
  }
  Outgoing& o = outgoing_[owner->id_ % kOutgoingSlots];
  if (o.target != owner) {
    if (o.head != nullptr) Flush(o);
    o.target = owner;
  }
  b->next = o.head;
  if (bytes >= 2 * sizeof(FreeBlock*)) SkipLink(b) = o.recent[kSkipAhead - 1];
  for (size_t i = kSkipAhead - 1; i > 0; --i) o.recent[i] = o.recent[i - 1];
  o.recent[0] = b;
  if (o.head == nullptr) o.tail = b;
  o.head = b;
  o.bytes += bytes;
  ++o.blocks;
  counters_.remote_frees.Add(1);
  counters_.remote_bytes.Add(bytes);
  counters_.outgoing_bytes.Add(bytes);
  if (o.bytes >= static_cast<uint64_t>(GetOption(Option::kRemoteBatchBytes))) Flush(o);
}

void Heap::Flush(Outgoing& o) {
  counters_.batch_blocks[BatchBucket(o.blocks)].Add(1);
  counters_.outgoing_bytes.Sub(o.bytes);
  // Relaxed: statistics; counted before the push so the owner's decrement
  // on drain never sees it missing.
  o.target->queued_bytes_.fetch_add(static_cast<int64_t>(o.bytes), std::memory_order_relaxed);
  o.target->remote_.PushBatch(o.head, o.tail);
  o.head = o.tail = nullptr;
  o.bytes = 0;
  o.blocks = 0;
  for (FreeBlock*& r : o.recent) r = nullptr;
}

void Heap::FlushOutgoing() {
  for (Outgoing& o : outgoing_) {
    if (o.head != nullptr) Flush(o);
  }
}

bool Heap::PushSuspect(void* p) {
  for (auto& slot : suspects_) {
    void* empty = nullptr;
    // Relaxed: the flag store below publishes the slot.
    if (slot.compare_exchange_strong(empty, p, std::memory_order_relaxed)) {
      // Relaxed: statistics only.
      suspect_bytes_.fetch_add(static_cast<int64_t>(kClasses[RunOf(ArenaOf(p), p)->size_class].size),
                               std::memory_order_relaxed);
      // Release pairs with the acquire exchange in DrainSuspects(): the owner
      // sees the slot (and the program's writes before the free).
      has_suspects_.store(true, std::memory_order_release);
      return true;
    }
  }
  return false;
}

size_t Heap::DrainSuspects() {
  // Relaxed pre-check: a flag raised just after is seen on the next drain.
  if (!has_suspects_.load(std::memory_order_relaxed)) return 0;
  // Acquire pairs with the release store in PushSuspect().
  if (!has_suspects_.exchange(false, std::memory_order_acquire)) return 0;
  size_t n = 0;
  for (auto& slot : suspects_) {
    // Acquire: pairs with the pusher's flag release (via the exchange above);
    // the exchange claims the slot's block.
    void* p = slot.exchange(nullptr, std::memory_order_acquire);
    if (p == nullptr) continue;
    ArenaHeader* a = ArenaOf(p);
    PoolDesc* d = RunOf(a, p);
    // Relaxed: statistics only.
    suspect_bytes_.fetch_sub(static_cast<int64_t>(kClasses[d->size_class].size),
                             std::memory_order_relaxed);
    // Acquire pairs with the release store of owner on arena hand-over.
    Heap* owner = a->owner.load(std::memory_order_acquire);
    if (owner != this) {
      // The arena moved on: the new owner checks it.
      if (owner == nullptr) {
        ReportInvalidFree(p, "block of an empty arena (double free?)", "free");
      } else if (!owner->PushSuspect(p)) {
        FreeLocalOrForward(p, a, d, d->size);  // every slot taken: a plain remote free
      }
      continue;
    }
    if (d->HasFreeBlock(p)) {
      ReportInvalidFree(p, "double free (block already free)", "free");
      continue;  // count mode: drop the second free
    }
    FreeLocal(d, p);
    ++n;
  }
  return n;
}

size_t Heap::DrainRemote() {
  FreeBlock* b = remote_.TakeAll();
  size_t n = DrainSuspects();
  if (b == nullptr) return n;
  int64_t bytes = 0;
  size_t received = 0;
  while (b != nullptr) {
    FreeBlock* next = b->next;
    ArenaHeader* a = ArenaOf(b);
    // The block is live (travelling): its run's shape is fixed.
    PoolDesc* d = RunOf(a, b);
    const size_t size = d->size;
    // See Outgoing: start fetching a block further down the batch (for
    // writing: we push it onto its run's list).
    if (size >= 2 * sizeof(FreeBlock*)) __builtin_prefetch(SkipLink(b), 1);
    FreeLocalOrForward(b, a, d, size);
    bytes += static_cast<int64_t>(size);
    b = next;
    ++received;
  }
  counters_.blocks_received.Add(received);
  // Relaxed: statistics (see Flush()).
  queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  return n + received;
}

void Heap::FreeLocalOrForward(void* p, ArenaHeader* a, PoolDesc* d, size_t size) {
  // An arena in our cache is ours (see ArenaCacheSlot) without a look at its
  // owner. Acquire pairs with the release store of owner when the arena
  // changed hands.
  if (ArenaCacheSlot(reinterpret_cast<uintptr_t>(p)) == reinterpret_cast<uintptr_t>(a)) {
    FreeLocal(d, p);
    return;
  }
  Heap* owner = a->owner.load(std::memory_order_acquire);
  if (owner == this) {
    FreeLocal(d, p);
  } else {
    counters_.blocks_forwarded.Add(1);
    FreeRemote(p, owner, size);
  }
}

}  // namespace strata::internal
