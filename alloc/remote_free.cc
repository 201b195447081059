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

size_t BatchBucket(size_t blocks) {
  size_t b = 0;
  while (b + 1 < kBatchBuckets && (blocks >> (b + 1)) != 0) ++b;
  return b;
}

// True when a travelling block's link may lead to `next`: null (the end of
// a batch) or a block of some arena.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool LinkTargetIsStrata(const FreeBlock* next) {
  if (next == nullptr) return true;
  if ((reinterpret_cast<uintptr_t>(next) & kLinkShapeMask) != 0) return false;
  // A block of an arena (not its header). The page map is safe to read from
  // any thread; nothing of the target itself is read.
  return GetPageMap().InArena(next) && InBlockPool(next);
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
  // A thread that could not get a heap (SendToOwner tried): p is a batch of
  // one. Relaxed: statistics.
  auto* b = static_cast<FreeBlock*>(p);
  owner->queued_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  if (bytes >= 2 * sizeof(FreeBlock*)) SetLink(SkipWord(b), nullptr, GetLinkKey());
  owner->remote_.PushBatch(b, b);
}

void Heap::RetargetAndFree(Outgoing& o, void* p, Heap* owner, size_t bytes) {
  if (o.head != nullptr) Flush(o);
  o.target = owner;
  FreeRemote(p, owner, bytes);
}

void Heap::FreeRemote(void* p, Heap* owner, size_t bytes) {
  if (ABSL_PREDICT_FALSE(this == &g_empty_heap)) return FreeRemoteWithoutHeap(p, owner, bytes);
  BatchRemote(p, owner, bytes);
}

void Heap::Flush(Outgoing& o) {
  const uint64_t blocks = o.Blocks();
  const uint64_t bytes = o.Bytes();
  counters_.batch_blocks[BatchBucket(blocks)].Add(1);
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
    // Remembered only by the heap's own thread: a heap drained by another
    // (an orphan, tidied or absorbed) must not keep entries for arenas that
    // then leave it.
    if (this == tls_heap) ArenaCacheSlot(reinterpret_cast<uintptr_t>(p)) = reinterpret_cast<uintptr_t>(a);
    FreeLocal(d, p);
  } else {
    counters_.remote_forwarded.Add(1);
    FreeRemote(p, owner, size);
  }
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool Heap::InKnownArena(const FreeBlock* b, const FreeBlock* next) {
  const uintptr_t n = reinterpret_cast<uintptr_t>(next);
  if (!SameArena(b, next) && ArenaCacheSlot(n) != (n & ~(kArenaSize - 1))) return false;
  return InBlockPool(next);  // a header (or null) is never a block
}

bool Heap::InOutgoing(const Heap* owner, const void* p) const {
  const Outgoing& o = outgoing_[owner->id_ % kOutgoingSlots];
  if (o.target != owner) return false;
  size_t steps = 0;
  const uint64_t blocks = o.Blocks();
  for (const FreeBlock* b = o.head; b != nullptr && steps < blocks; ++steps) {
    if (b == p) return true;
    b = NextOf(b, link_key_);
    // A link damaged by a write after free is not followed (the owner's
    // drain reports it).
    if (!LinkTargetIsStrata(b)) return false;
  }
  return false;
}

bool Heap::PushSuspect(void* p, uintptr_t word) {
  for (size_t i = 0; i < kSuspectSlots; ++i) {
    void* empty = nullptr;
    // Acquire pairs with the owner's release store of null in
    // DrainSuspects(): its read of the slot's previous word is done before
    // we overwrite it.
    if (!suspects_[i].compare_exchange_strong(empty, kSuspectClaimed, std::memory_order_acquire,
                                              std::memory_order_relaxed)) {
      continue;
    }
    suspect_words_[i].store(word, std::memory_order_relaxed);  // published by the store below
    // Relaxed: statistics only.
    suspect_bytes_.fetch_add(static_cast<int64_t>(kClasses[RunOf(ArenaOf(p), p)->size_class].size),
                             std::memory_order_relaxed);
    // Release pairs with the owner's acquire load of the slot: it sees the
    // word (and the program's writes before the free).
    suspects_[i].store(p, std::memory_order_release);
    // Release pairs with the acquire exchange in DrainSuspects(): the owner
    // looks at the slots again.
    has_suspects_.store(true, std::memory_order_release);
    return true;
  }
  return false;
}

size_t Heap::DrainSuspects() {
  // Relaxed pre-check: a flag raised just after is seen on the next drain.
  if (!has_suspects_.load(std::memory_order_relaxed)) return 0;
  // Acquire pairs with the release store in PushSuspect().
  if (!has_suspects_.exchange(false, std::memory_order_acquire)) return 0;
  size_t n = 0;
  for (size_t i = 0; i < kSuspectSlots; ++i) {
    // Acquire pairs with the pusher's release store of the block.
    void* p = suspects_[i].load(std::memory_order_acquire);
    // A slot still being filled: its pusher raises the flag again after.
    if (p == nullptr || p == kSuspectClaimed) continue;
    const uintptr_t word = suspect_words_[i].load(std::memory_order_relaxed);
    // Release pairs with the next pusher's acquire CAS (the word is read).
    suspects_[i].store(nullptr, std::memory_order_release);
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
      } else if (!owner->PushSuspect(p, word)) {
        FreeLookingFree(p, owner, d->size, "free");  // every slot taken
      }
      continue;
    }
    // The queue was drained just before: a block that came back through it
    // is on its run's list now. A block whose first word changed since the
    // free was seen was not the freeing thread's to free: it was free here
    // then, and handed out (or taken apart) since. One that is on no list,
    // unchanged and not travelling was live: its data only looked free.
    if (!ValidateBlock(d, p, d->carved) || d->HasFreeBlock(p) ||
        *static_cast<const uintptr_t*>(p) != word) {
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

void Heap::FreeLookingFree(void* p, Heap* owner, size_t size, const char* op) {
  if (LooksTravelling(p, size)) {
    ReportInvalidFree(p, "double free (block already freed by another thread)", op);
    return;
  }
  if (LooksOnItsList(p, owner->link_key())) {
    ReportInvalidFree(p, "double free (block already free)", op);
    return;
  }
  FreeRemote(p, owner, size);
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
      // Checked before it is followed: the multiply spreads damage to the
      // stored word over the decoded address.
      if (ABSL_PREDICT_FALSE(!InKnownArena(b, next) && !LinkTargetIsStrata(next))) {
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
    counters_.remote_received.Add(received);
    // Relaxed: statistics (see Flush()).
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    n = received;
  }
  // After the queue: a suspect that came back through it is on its list.
  return n + DrainSuspects();
}

}  // namespace strata::internal
