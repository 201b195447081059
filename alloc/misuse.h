// Misuse detection in one module: the table of every misuse strata reports
// (each with its one message), the predicates that tell a free block from
// program data (what a free block's words look like), and the suspect slots
// where a thread parks a block for its owner to judge. The free path
// (free_path.h) and the owner's drain (heap.cc) ask these; error.h prints.
//
// How a second free is recognised wherever the block is (ARCHITECTURE.md,
// "Double frees across threads"): every free block links through its first
// word with the checked build's encoding (free_link.h), so a freed block looks free
// (LooksFree, O(1)) from the moment it is freed. Only a block that looks free
// pays for the costly checks: a walk of its run's list (the owner), a look
// at its words (LooksOnItsList: a list link; LooksCached: a class cache's
// block; LooksTravelling: a batch member), or a parking in its owner's
// suspect slots (an 8-byte block a third thread cannot judge alone). All of
// it is the checked build's (checks.h, kCheckFreedBlock): the default
// build's links are plain pointers, and its free path never reads a freed
// block.
#ifndef STRATA_ALLOC_MISUSE_H_
#define STRATA_ALLOC_MISUSE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "alloc/arena.h"
#include "alloc/checks.h"
#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/free_link.h"
#include "alloc/page_map.h"

namespace strata::internal {

// ---- The table: every misuse, its message ------------------------------

// X(name, message). Invalid frees are reported with the entry point's name
// (ReportMisuse); damage to strata's own lists with the address alone
// (ReportDamage). Tests and README quote these messages.
#define STRATA_MISUSE_LIST(X)                                                                     \
  X(kNotOurs, "pointer was not allocated by strata")                                              \
  X(kNotBlockStart, "pointer is not the start of a block")                                        \
  X(kNotLiveLarge, "pointer is not the start of a live large block")                              \
  X(kDoubleFree, "double free (block already free)")                                              \
  X(kDoubleFreeRemote, "double free (block already freed by another thread)")                     \
  X(kDoubleFreeHere, "double free (block already freed by this thread)")                          \
  X(kDoubleFreeEmptyRun, "double free (its run has no live block)")                               \
  X(kDoubleFreeRace, "double free (block freed by another thread at the same time)")              \
  X(kEmptyArena, "block of an empty arena (double free?)")                                        \
  X(kFreePool, "block of a free pool (double free?)")                                             \
  X(kDoubleFreeLarge, "double free of a large block")                                             \
  X(kDoubleFreeGuarded, "double free of a guarded block")                                         \
  X(kNotGuardedBlock, "pointer is not the start of a guarded block")                              \
  X(kSizeTooLarge, "size is larger than the block")                                               \
  X(kSizeTooSmall, "size is too small for the block")                                             \
  X(kMisaligned, "pointer does not have the stated alignment")                                    \
  X(kBadAlignment, "alignment is not a power of two")                                             \
  X(kNotAlignedBlock, "block was not allocated with this alignment")                              \
  X(kListDamaged,                                                                                 \
    "free list corrupted: the link in this free block was overwritten (a heap overflow or a "     \
    "write after free)")                                                                          \
  X(kBatchDamaged,                                                                                \
    "remote free batch corrupted: the link in this freed block was overwritten (a write after "   \
    "free)")

enum class Misuse : uint8_t {
#define STRATA_MISUSE_ENUM(name, message) name,
  STRATA_MISUSE_LIST(STRATA_MISUSE_ENUM)
#undef STRATA_MISUSE_ENUM
};

// The message of misuse m.
const char* MisuseMessage(Misuse m);

// Reports misuse m of p by entry point `op` (error.h: one line, then
// `detail`'s lines when set, then abort, or in count mode the caller skips
// the call). Returns only in count mode.
ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void ReportMisuse(const void* p, Misuse m, const char* op,
                                                              const ReportDetail* detail = nullptr);

// Reports damage m found at p in strata's own lists (kListDamaged,
// kBatchDamaged). Returns only in count mode, where the caller drops what it
// cannot trust.
ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void ReportDamage(const void* p, Misuse m);

// ---- The predicates ----------------------------------------------------

// True when a travelling block's link may lead to `next`: null (the end of
// a batch) or a block of some arena. Reads the page map only, never the
// target.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool LinkTargetIsStrata(const FreeBlock* next) {
  if (next == nullptr) return true;
  if ((reinterpret_cast<uintptr_t>(next) & kLinkShapeMask) != 0) return false;
  return GetPageMap().InArena(next) && InBlockPool(next);
}

// The link after b on a class list or a chain bound for one, for the slow
// paths' walks: in the checked build a damaged one (a write after free) is
// reported and reads as null, the list's end (what follows is lost: its
// blocks stay counted in use).
inline FreeBlock* WalkNext(const FreeBlock* b, const LinkKey& key) {
  FreeBlock* next = NextOf(b, key);
  if constexpr (kCheckPoppedLinks) {
    if (!IsListEnd(next) && !LinkTargetIsStrata(next)) {
      ReportDamage(b, Misuse::kListDamaged);
      return nullptr;
    }
  }
  return next;
}

// True when p (a block of `size` bytes that looks free) holds the words of
// a block travelling back to its owner, in some thread's outgoing batch or
// an owner's queue: its first word decodes to null or a block of an arena,
// and from 16 bytes its second to a segment of p's own run (free_link.h: a
// last block in p's arena, and a length no run of p's size exceeds).
// Program data passes with a chance of about 2^-40 for the first word and
// 2^-40 for the second. Reads only p and the page map.
bool LooksTravelling(const void* p, size_t size);

// True when p (a block of `size` bytes that looks free) holds the words of
// a block in a thread's class cache (class_cache.h): from 16 bytes its
// second word decodes to null, which no segment word is (program data:
// 2^-64; a block handed out has both words cleared, ClearFreeWords). The
// checked build only (kCheckFreedBlock), which writes it.
inline bool LooksCached(const void* p, size_t size, const LinkKey& key) {
  return size >= 2 * sizeof(FreeBlock*) && NextOf(SegmentWord(static_cast<const FreeBlock*>(p)), key) == nullptr;
}

// True when block p (of `size` bytes) holds the words of a free block, on a
// run's list, in a class cache or travelling (2^-46, 2^-64 and 2^-80 for
// program data of 16 bytes or more): the costly checks are for those only.
inline bool HoldsFreeWords(const void* p, size_t size, const LinkKey& key) {
  return LooksFree(p, key) && (LooksOnItsList(p, key) || LooksCached(p, size, key) || LooksTravelling(p, size));
}

// ---- Suspect slots -----------------------------------------------------

// Blocks of one heap parked by other threads for the owner to judge: an
// 8-byte block that looks free has one word to judge by (2^-40), which a
// third thread cannot tell from a list link it may not walk. The owner,
// after draining its queue, decides (JudgeParked).
//
// SYNCHRONIZATION: any thread claims a slot (CAS null -> claimed), writes
// the block's first word beside it, stores the block (release) and raises
// the flag (release); the owner clears the flag (acquire), reads each filled
// slot (acquire) and its word, then empties it (release).
class SuspectSlots {
 public:
  static constexpr size_t kSlots = 16;

  constexpr SuspectSlots() = default;
  SuspectSlots(const SuspectSlots&) = delete;
  SuspectSlots& operator=(const SuspectSlots&) = delete;

  // Parks block p, whose first word (`word`) looks like a free-list link.
  // Writes nothing into p: if p is free, its link is the owner's. Returns
  // false when every slot is taken. Any thread.
  bool Push(void* p, uintptr_t word);

  // The owner: calls fn(p, word) for every parked block, emptying its slot.
  template <typename Fn>
  void TakeEach(Fn fn) {
    // Relaxed pre-check: a flag raised just after is seen on the next drain.
    if (!has_.load(std::memory_order_relaxed)) return;
    // Acquire pairs with the release store in Push().
    if (!has_.exchange(false, std::memory_order_acquire)) return;
    for (size_t i = 0; i < kSlots; ++i) {
      // Acquire pairs with the pusher's release store of the block.
      void* p = slots_[i].load(std::memory_order_acquire);
      // A slot still being filled: its pusher raises the flag again after.
      if (p == nullptr || p == kClaimed) continue;
      const uintptr_t word = words_[i].load(std::memory_order_relaxed);
      // Release pairs with the next pusher's acquire CAS (the word is read).
      slots_[i].store(nullptr, std::memory_order_release);
      // Relaxed: statistics only.
      bytes_.fetch_sub(static_cast<int64_t>(BlockSize(p)), std::memory_order_relaxed);
      fn(p, word);
    }
  }

  // Bytes of the blocks parked now (racy; statistics).
  int64_t Bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  // A slot claimed by a pusher that has not stored its block yet.
  static inline void* const kClaimed = reinterpret_cast<void*>(uintptr_t{1});
  static size_t BlockSize(const void* p);

  std::atomic<bool> has_{false};
  std::atomic<void*> slots_[kSlots] = {};
  // The block's first word when its free was seen: a change proves that the
  // block was free on its list then, and has been handed out since.
  std::atomic<uintptr_t> words_[kSlots] = {};
  std::atomic<int64_t> bytes_{0};
};

// The owner's verdict on block p of its run `run`, parked with first word
// `word`, after draining its queue (a block that came back through it is on
// its list now): kDoubleFree when p is on the run's list, is not a carved
// block, or its first word changed since it was parked (p was free then and
// has been handed out since); kDoubleFreeRemote when it is still
// travelling; kLive when its data only looked free (the owner frees it).
enum class ParkedVerdict : uint8_t { kLive, kDoubleFree, kDoubleFreeRemote };
ParkedVerdict JudgeParked(const PoolDesc* run, const void* p, uintptr_t word);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_MISUSE_H_
