// Cross-thread frees: outgoing batches per owner, the hand-off to the
// owner's MPSC queue, the owner's drain (forwarding blocks whose arena moved
// on), and suspected double frees parked for the owner to check. See heap.h
// ("Life of a block freed remotely" in ARCHITECTURE.md) for the protocol.
//
// A travelling block links like any free block (free_link.h), so it looks
// free to every thread from the moment it is freed: a second free of it,
// by anyone, is caught. Blocks of 16 bytes or more also hold, in their
// second word, the block kSkipAhead places further down the batch, encoded
// as a link of that word: the owner prefetches it, and a block whose two
// words both decode to strata addresses is (all but surely) travelling.
#include <atomic>

#include "alloc/error.h"
#include "alloc/heap.h"
#include "alloc/options.h"
#include "alloc/page_map.h"

namespace strata::internal {

namespace {

// The second word of a block in a remote batch (blocks of 16 bytes or more),
// linked as a block of its own.
FreeBlock* SkipWord(FreeBlock* b) { return b + 1; }

size_t BatchBucket(size_t blocks) {
  size_t b = 0;
  while (b + 1 < kBatchBuckets && (blocks >> (b + 1)) != 0) ++b;
  return b;
}

// True when a travelling block's link may lead to `next`: null (the end of
// a batch) or a block of some arena.
bool LinkTargetIsStrata(const FreeBlock* next) {
  if (next == nullptr) return true;
  if ((reinterpret_cast<uintptr_t>(next) & kLinkShapeMask) != 0) return false;
  // A block of an arena (not its header). The page map is safe to read from
  // any thread; nothing of the target itself is read.
  return GetPageMap().InArena(next) && DescOffset(next) != 0;
}

}  // namespace

void TransitLink::Set(FreeBlock* n, FreeBlock* next) { SetLink(n, next, GetLinkKey()); }

bool LooksTravelling(const void* p, size_t size) {
  const LinkKey key = GetLinkKey();
  auto* b = static_cast<FreeBlock*>(const_cast<void*>(p));
  if (!LinkTargetIsStrata(NextOf(b, key))) return false;
  return size < 2 * sizeof(FreeBlock*) || LinkTargetIsStrata(NextOf(SkipWord(b), key));
}

void Heap::FreeRemoteWithoutHeap(void* p, Heap* owner, size_t bytes) {
  // First call of this thread, or a free after its exit hook ran.
  Heap* h = AcquireHeapForThread();
  if (h == nullptr) {
    // No heap to batch in: a batch of one. Relaxed: statistics.
    auto* b = static_cast<FreeBlock*>(p);
    owner->queued_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    if (bytes >= 2 * sizeof(FreeBlock*)) SetLink(SkipWord(b), nullptr, GetLinkKey());
    owner->remote_.PushBatch(b, b);
  } else if (h == owner) {
    h->FreeLocal(RunOf(ArenaOf(p), p), p);  // we adopted the owner itself
  } else {
    h->FreeRemote(p, owner, bytes);
  }
}

void Heap::RetargetAndFree(Outgoing& o, void* p, Heap* owner, size_t bytes) {
  if (o.head != nullptr) Flush(o);
  o.target = owner;
  FreeRemote(p, owner, bytes);
}

void Heap::FreeRemote(void* p, Heap* owner, size_t bytes) {
  if (ABSL_PREDICT_FALSE(this == &g_empty_heap)) return FreeRemoteWithoutHeap(p, owner, bytes);
  Outgoing& o = outgoing_[owner->id_ % kOutgoingSlots];
  // Only tail calls from here: the common path needs no stack frame.
  if (ABSL_PREDICT_FALSE(o.target != owner)) return RetargetAndFree(o, p, owner, bytes);
  auto* b = static_cast<FreeBlock*>(p);
  SetLink(b, o.head, link_key_);
  FreeBlock*& recent = o.recent[o.Blocks() % kSkipAhead];
  if (bytes >= 2 * sizeof(FreeBlock*)) SetLink(SkipWord(b), recent, link_key_);
  recent = b;
  if (o.head == nullptr) o.tail = b;
  o.head = b;
  const uint64_t count = o.count.Add(Outgoing::kBlock + bytes);
  if (ABSL_PREDICT_FALSE((count & (Outgoing::kBlock - 1)) >=
                         static_cast<uint64_t>(GetOption(Option::kRemoteBatchBytes)))) {
    return Flush(o);
  }
}

void Heap::Flush(Outgoing& o) {
  const uint64_t blocks = o.Blocks();
  const uint64_t bytes = o.Bytes();
  counters_.batch_blocks[BatchBucket(blocks)].Add(1);
  counters_.remote_frees.Add(blocks);
  counters_.remote_bytes.Add(bytes);
  // Relaxed: statistics; counted before the push so the owner's decrement
  // on drain never sees it missing.
  o.target->queued_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  o.target->remote_.PushBatch(o.head, o.tail);
  o.head = o.tail = nullptr;
  o.count.Set(0);
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

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void Heap::FreeLocalOrForward(void* p, ArenaHeader* a, PoolDesc* d, size_t size) {
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

bool Heap::InOutgoing(const Heap* owner, const void* p) const {
  const Outgoing& o = outgoing_[owner->id_ % kOutgoingSlots];
  if (o.target != owner) return false;
  size_t steps = 0;
  const uint64_t blocks = o.Blocks();
  for (const FreeBlock* b = o.head; b != nullptr && steps < blocks; ++steps) {
    if (b == p) return true;
    b = NextOf(b, link_key_);
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
    // The queue was drained just before: a block that came back through it
    // is on its run's list now. One that is neither there nor still
    // travelling (in some thread's batch) was live after all.
    if (!ValidateBlock(d, p, d->carved) || d->HasFreeBlock(p)) {
      ReportInvalidFree(p, "double free (block already free)", "free");
      continue;  // count mode: drop the second free
    }
    if (LooksTravelling(p, d->size)) {
      ReportInvalidFree(p, "double free (block already freed by another thread)", "free");
      continue;
    }
    FreeLocal(d, p);
    ++n;
  }
  return n;
}

size_t Heap::DrainRemote() {
  FreeBlock* b = remote_.TakeAll();
  size_t n = 0;
  if (b != nullptr) {
    // The global key, not link_key_: an orphan's drain may run on any heap
    // object (they all hold the same key, but g_empty_heap holds none).
    const LinkKey key = GetLinkKey();
    int64_t bytes = 0;
    size_t received = 0;
    while (b != nullptr) {
      FreeBlock* next = NextOf(b, key);
      // Checked by its shape only (8-aligned, user space), which costs three
      // instructions: the multiply spreads any damage to the stored word
      // over the decoded address, so a damaged link escapes with a chance
      // of 2^-20; the page map would cost a dozen more per block.
      if (ABSL_PREDICT_FALSE((reinterpret_cast<uintptr_t>(next) & kLinkShapeMask) != 0)) {
        ReportCorruption(b, "remote free batch corrupted: the link in this freed block was "
                            "overwritten (a write after free)");
        next = nullptr;  // count mode: the rest of the batch is lost (stays in use)
      }
      ArenaHeader* a = ArenaOf(b);
      // The block is live (travelling): its run's shape is fixed.
      PoolDesc* d = RunOf(a, b);
      const size_t size = d->size;
      // See Outgoing: start fetching a block further down the batch (for
      // writing: we push it onto its run's list).
      if (size >= 2 * sizeof(FreeBlock*)) __builtin_prefetch(NextOf(SkipWord(b), key), 1);
      FreeLocalOrForward(b, a, d, size);
      bytes += static_cast<int64_t>(size);
      b = next;
      ++received;
    }
    counters_.blocks_received.Add(received);
    // Relaxed: statistics (see Flush()).
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    n = received;
  }
  // After the queue: a suspect that came back through it is on its list.
  return n + DrainSuspects();
}


}  // namespace strata::internal
