// A heap's per-class lists of free blocks: what malloc pops from and local
// frees push onto, owned by the heap's thread alone (no run descriptor and
// no other thread touches them). Runs are their backing store: a refill
// moves a run's whole free list (or freshly carved blocks) here in one
// step, and an overfull list gives a batch back to its runs. One of a
// heap's parts (heap.h).
//
// Two counters per class make the fast paths' only tests, each one
// `sub $1, mem` whose flags the branch uses:
//  - left_: pops until this class must come to the slow path: the heap
//    profile's countdown, in blocks (each allocation of a class of `size`
//    bytes is sampled with probability 1 - exp(-size/rate): the gaps are
//    geometric, drawn as an exponential number of bytes over the size), and
//    in detailed-stats mode every pop (left_ == 1).
//  - room_: pushes until the slow path looks at the list's length again.
// Between two visits of the slow path the length is
//   length_ + (room_base_ - room_) - (left_base_ - left_)
// (pushes add, pops take away), which is how the slow path knows it without
// a count on the fast paths.
#ifndef STRATA_ALLOC_CLASS_CACHE_H_
#define STRATA_ALLOC_CLASS_CACHE_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena_cache.h"
#include "alloc/checks.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/misuse.h"
#include "alloc/size_class.h"
#include "threading/single_writer.h"

namespace strata::internal {

// The most blocks a class's list keeps (a push beyond it gives half back to
// the runs; a refill brings half of it): about 32 KiB a class, at least 16
// and at most 1024 blocks. A balanced run of frees and allocations comes
// to the slow path once in this many frees.
inline constexpr uint32_t CacheMaxBlocks(size_t size) {
  const size_t n = (size_t{32} << 10) / size;
  return n < 16 ? 16 : n > 1024 ? 1024 : static_cast<uint32_t>(n);
}

// Invariants (the owner's view, at the slow path's visit):
//   Length(c) == the blocks on list c                        (IsValid)
//   every block on list c is a block of class c              (IsValid)
//   0 <= Length(c) <= CacheMaxBlocks(size of c) + (room_base_[c] - 1)
//     (kept by the free slow path's length check, Heap::FreeToCacheSlow)
// Thread-safety: the owner thread only, but the counts have racy readers
// (stats: the blocks cached), through threading::SingleWriter.
class ClassCache {
 public:
  constexpr ClassCache() {
    for (size_t n = 0; n <= kLowTableMax; ++n) class_of_[n] = kLowClassTable[(n + kSmallStep - 1) / kSmallStep];
    for (size_t c = 0; c < kNumClasses; ++c) size_[c] = kClasses[c].size;
  }

  // ---- Fast paths ----

  // A block for a request of n <= kLowTableMax bytes, or nullptr: the list
  // is empty, the class's countdown ran out, or (checked build) its first
  // link leads outside the heap's known arenas. A list ends at null or at
  // an arena's base (a list taken whole from a run): IsListEnd. When the
  // list was not empty the fast path's decrement of left_ stands; the slow
  // path undoes it (UndoPop).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryPop(size_t n, const LinkKey& key, const ArenaCache& arenas) {
    return TryPopClass(class_of_[n], key, arenas);
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* TryPopClass(size_t cls, const LinkKey& key, const ArenaCache& arenas) {
    FreeBlock* b = head_[cls];
#if defined(__x86_64__) && !defined(__clang__)
    // A register hint, no instruction: b is what malloc returns, so it is
    // loaded into the return register (gcc otherwise loads it elsewhere and
    // moves it there at the end: one instruction of the fast path).
    asm("" : "+a"(b));
#endif
    // An empty list first: the empty sentinel heap's lists are all empty,
    // so it is never written.
    if (ABSL_PREDICT_FALSE(IsListEnd(b))) return nullptr;
    if (ABSL_PREDICT_FALSE(left_[cls].DecrementToNonPositive())) return nullptr;
    FreeBlock* next = NextOf(b, key);
    if constexpr (kCheckPoppedLinks) {
      // A link in a class list ends it (null, or b's arena's base: a list
      // taken from a run) or leads to a block of one of the heap's own
      // arenas: b's, or one in the arena cache; any other the slow path
      // checks before it is followed.
      if (ABSL_PREDICT_FALSE(!SameArena(b, next) && next != nullptr && !arenas.Holds(next))) return nullptr;
    } else {
      (void)arenas;
    }
    head_[cls] = next;
    // The next pop of this class reads next's first word: fetched now, it
    // is no cache miss then (a block freed long ago, as larson's are: the
    // load of b's link above was half of its malloc's samples). A prefetch
    // never faults, wherever a list's end points.
    __builtin_prefetch(next);
    ClearFreeWords(cls, b);
    return b;
  }

  // Pushes block p of class cls; false when the slow path must take it: the
  // list is due for a look at its length, or p is the block at its head (an
  // immediate double free). The fast path's decrement of room_ then stands;
  // the slow path undoes it (UndoPush).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool TryPush(size_t cls, void* p, const LinkKey& key) {
    if (ABSL_PREDICT_FALSE(room_[cls].DecrementToNonPositive())) return false;
    FreeBlock* head = head_[cls];
    if (ABSL_PREDICT_FALSE(head == p)) return false;
    Link(cls, static_cast<FreeBlock*>(p), head, key);
    head_[cls] = static_cast<FreeBlock*>(p);
    return true;
  }

  // ---- Slow paths (owner) ----

  // The class of a request of n <= kLowTableMax bytes.
  size_t ClassOf(size_t n) const { return class_of_[n]; }
  // The block size of class cls (a copy of the class table's, one load off
  // the heap pointer: a sized free checks its size against it).
  ABSL_ATTRIBUTE_ALWAYS_INLINE uint32_t ClassSize(size_t cls) const { return size_[cls]; }
  // Blocks on list cls now (see the file comment).
  uint32_t Length(size_t cls) const {
    return length_[cls].Get() + static_cast<uint32_t>(room_base_[cls].Get() - room_[cls].Get()) -
           static_cast<uint32_t>(left_base_[cls].Get() - left_[cls].Get());
  }
  // The first block of list cls (IsListEnd when empty).
  FreeBlock* head(size_t cls) const { return head_[cls]; }

  // Undoes the decrement of a pop (push) the fast path refused; UndoPop
  // returns the countdown as it was before it: 1 or less means this pop
  // is the one the countdown was for.
  int32_t UndoPop(size_t cls);
  void UndoPush(size_t cls);
  // Pops the first block of list cls for the slow path, or nullptr when the
  // list is empty. REQUIRES: its first link checked (FirstLink).
  void* PopSlow(size_t cls, const LinkKey& key);
  // The link of list cls's first block (decoded). REQUIRES: not empty.
  FreeBlock* FirstLink(size_t cls, const LinkKey& key) const { return NextOf(head_[cls], key); }
  // Drops list cls whole (its first link is damaged): its blocks are lost
  // (they stay counted in use by their runs). Returns the blocks dropped.
  uint32_t Drop(size_t cls);
  // Pushes p (of class cls) for the slow path.
  void PushSlow(size_t cls, void* p, const LinkKey& key);
  // PushSlow, then SetRoom (one settling of the counts for both).
  void PushAndSetRoom(size_t cls, void* p, const LinkKey& key);
  // Puts chain c (blocks of class cls) at the head of list cls.
  // REQUIRES: c.last known, or list cls empty.
  void Add(size_t cls, const BlockChain& c, const LinkKey& key);
  // Takes up to n blocks off the head of list cls.
  BlockChain Take(size_t cls, uint32_t n, const LinkKey& key);
  // Takes the blocks of list cls after its first `keep` (the older ones).
  BlockChain TakeAfter(size_t cls, uint32_t keep, const LinkKey& key);
  // True when p is on list cls (a walk of the list).
  bool Contains(size_t cls, const void* p, const LinkKey& key) const;

  // The countdown of class cls: `blocks` pops before the slow path comes
  // again (the next sample, or a look at the options). 1 in detailed-stats
  // mode: every pop comes.
  void SetCountdown(size_t cls, int32_t blocks);
  // Pushes allowed before the slow path looks at list cls again: what
  // CacheMaxBlocks leaves above its length (at least one).
  void SetRoom(size_t cls);
  // The countdown's value (blocks left before it runs out).
  int32_t countdown(size_t cls) const { return left_[cls].Get(); }

  // Bytes of the blocks cached in every list (racy; statistics).
  uint64_t CachedBytes() const;
  bool IsValid(const LinkKey& key) const;

 private:
  // Folds the counts the fast paths moved into length_, as at a visit.
  void Settle(size_t cls);
  // SetRoom's work, the counts settled.
  void ArmRoom(size_t cls);
  // Links b (of class cls) to `next` as a block of a class list: its first
  // word, and in the checked build (kCheckFreedBlock) also its second (for
  // blocks of 16 bytes or more), which then reads as a link to null: a
  // cached block's words are those of a travelling one, so that a thread
  // that cannot see this list still knows it free (misuse.h).
  // The second word is stored first: a free that finds the link (ClaimBlock,
  // free_link.h) finds the second word with it.
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void Link(size_t cls, FreeBlock* b, const FreeBlock* next,
                                                const LinkKey& key) {
    if constexpr (kCheckFreedBlock) {
      if (cls > 1) SetLink(b + 1, nullptr, key);  // class 1's 8-byte blocks have one word
    }
    SetLink(b, next, key);
  }

  // Clears the words that made b (of class cls) a free block, as it is
  // handed out (checked build): its link, and from 16 bytes its second word
  // (a cached block's null, or a segment word from its travel home). A block
  // the program frees untouched must not hold the words of a free one: the
  // remote free path trusts LooksCached and LooksTravelling on their own.
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void ClearFreeWords(size_t cls, FreeBlock* b) {
    if constexpr (kEncodedLinks) {
      StoreWord(b, nullptr);
      if (cls > 1) StoreWord(SegmentWord(b), nullptr);  // class 1's 8-byte blocks have one word
    }
  }

  // Fast-path data first: the lists' heads and the two counters, indexed by
  // class; the class of each request size up to kLowTableMax.
  FreeBlock* head_[kNumClasses] = {};
  threading::SingleWriter<int32_t> left_[kNumClasses];
  threading::SingleWriter<int32_t> room_[kNumClasses];
  uint8_t class_of_[kLowTableMax + 1] = {};
  uint32_t size_[kNumClasses] = {};
  // The slow path's bookkeeping (see the file comment): one writer, racy
  // readers (stats, through Length).
  threading::SingleWriter<uint32_t> length_[kNumClasses];
  threading::SingleWriter<int32_t> left_base_[kNumClasses];
  threading::SingleWriter<int32_t> room_base_[kNumClasses];
};

// When each class was last refilled, in its countdown (ClassCache::
// countdown), which every pop counts down: the refill's gathering takes new
// runs only for a class that refills often (Heap::AllocateSlow). The owner
// thread only.
class RefillMarks {
 public:
  // Class cls was refilled; `countdown` its countdown after the refill.
  void Mark(size_t cls, int32_t countdown) { mark_[cls] = countdown; }
  // Pops of class cls since its last refill, its countdown now being
  // `countdown` (the refill's own pop not counted: 0 for refills back to
  // back): meaningless (often negative) when a sample or a change of
  // options set the countdown anew, and negative before any refill (the
  // countdown is at least 1 at rest).
  int64_t PopsSince(size_t cls, int32_t countdown) const { return int64_t{mark_[cls]} - countdown; }
  // No class refilled lately (a heap a new thread takes).
  void Forget() {
    for (int32_t& m : mark_) m = 0;
  }

 private:
  int32_t mark_[kNumClasses] = {};
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_CLASS_CACHE_H_
