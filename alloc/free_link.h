// How a free block links to the next: the one encoding of every free block's
// first word, wherever the block is (a run's free list, a class cache, a
// thread's outgoing batch, an owner's remote queue).
//
// The default build stores the plain address (kEncodedLinks off: no
// multiply on any path, and nothing reads a freed block to judge it). The
// checked build encodes it, and everything below is about that build. A
// link is stored as ((next ^ x) * mul) ^ b, where b is the block holding
// it and (x, mul) is the process's random key; it decodes as
// ((word ^ b) * inv) ^ x, inv being mul's inverse mod 2^64. Three properties
// follow, and the allocator leans on each:
//  - Every free block looks free (LooksFree): its word decodes to null, an
//    arena base or a block address, all 8-aligned user-space addresses
//    (20 fixed bits). Program data almost never does: the decode mixes the
//    word with the block's own address and a random key, so a zeroed block,
//    a self pointer or a copy of another block's link all decode to noise.
//    So a second free of a block is spotted in O(1) whether the block sits
//    on its owner's list or travels back to it from another thread.
//  - A damaged link is caught before it is followed: the multiply spreads
//    any change of the stored word, even of its lowest byte, over the
//    decoded address's high bits, and a run's list links stay in the run's
//    own arena (SameArena), which the pop checks. A heap overflow into a
//    free neighbour cannot forge a link; it is reported.
//  - A link copied from one block to another decodes to noise.
#ifndef STRATA_ALLOC_FREE_LINK_H_
#define STRATA_ALLOC_FREE_LINK_H_

#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/checks.h"
#include "alloc/config.h"

namespace strata::internal {

struct FreeBlock {
  FreeBlock* next;  // through SetLink/NextOf only (encoded in the checked build)
};

// A chain of free blocks, `count` of them, from `first`; `last` (when
// known) is the one whose link ends the chain.
struct BlockChain {
  FreeBlock* first = nullptr;
  FreeBlock* last = nullptr;
  uint32_t count = 0;
};

// The process's link key. x and mul are random (mul odd); inv * mul == 1.
struct LinkKey {
  uintptr_t x = 0;
  uintptr_t mul = 0;
  uintptr_t inv = 0;
};

namespace free_link_internal {
// Written once, before the first run is carved (InitLinkKey), x last; then
// only read, relaxed.
extern std::atomic<uintptr_t> g_x;
extern std::atomic<uintptr_t> g_mul;
extern std::atomic<uintptr_t> g_inv;
}  // namespace free_link_internal

// Chooses the process's link key. Idempotent; call before any run is carved
// (AcquireHeapForThread does). Thread-safety: any thread.
void InitLinkKey();

// The key (heaps hold a copy for their fast paths).
inline LinkKey GetLinkKey() {
  // Relaxed: set once before any list exists; every reader got its block
  // through a hand-off ordered after that.
  return {free_link_internal::g_x.load(std::memory_order_relaxed),
          free_link_internal::g_mul.load(std::memory_order_relaxed),
          free_link_internal::g_inv.load(std::memory_order_relaxed)};
}

// The word block b stores to link to `next` (any address, or null).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FreeBlock* EncodeLink(const void* b, const FreeBlock* next,
                                                          const LinkKey& k) {
  const uintptr_t n = reinterpret_cast<uintptr_t>(next);
  return reinterpret_cast<FreeBlock*>(((n ^ k.x) * k.mul) ^ reinterpret_cast<uintptr_t>(b));
}

// The address that block b's stored word links to.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FreeBlock* DecodeLink(const void* b, const FreeBlock* word,
                                                          const LinkKey& k) {
  const uintptr_t w = reinterpret_cast<uintptr_t>(word);
  return reinterpret_cast<FreeBlock*>(((w ^ reinterpret_cast<uintptr_t>(b)) * k.inv) ^ k.x);
}

// A free block's stored words (its link, and from 16 bytes its second
// word) as they are, read and written through these two alone. In the
// checked build (kClaimFreedBlock) they are atomics, because a thread
// freeing a block a second time reads them while the first free writes
// them (ClaimBlock, below); on x86-64 both are plain moves. A free that
// finds a link reads the words stored before it: the second word is always
// stored before the link that makes the block look linked.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FreeBlock* LoadWord(const FreeBlock* slot) {
  if constexpr (kClaimFreedBlock) {
    // Acquire pairs with the release in StoreWord: the words stored before
    // this one (a block's second word before its link) are seen with it.
    return std::atomic_ref<FreeBlock*>(const_cast<FreeBlock*&>(slot->next)).load(std::memory_order_acquire);
  } else {
    return slot->next;
  }
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StoreWord(FreeBlock* slot, FreeBlock* word) {
  if constexpr (kClaimFreedBlock) {
    // Release pairs with the acquire in LoadWord.
    std::atomic_ref<FreeBlock*>(slot->next).store(word, std::memory_order_release);
  } else {
    slot->next = word;
  }
}

// Stores b's link to next: encoded in the checked build (kEncodedLinks),
// the plain address in the default build.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void SetLink(FreeBlock* b, const FreeBlock* next, const LinkKey& k) {
  if constexpr (kEncodedLinks) {
    StoreWord(b, EncodeLink(b, next, k));
  } else {
    (void)k;
    b->next = const_cast<FreeBlock*>(next);
  }
}
// Reads b's link.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FreeBlock* NextOf(const FreeBlock* b, const LinkKey& k) {
  if constexpr (kEncodedLinks) {
    return DecodeLink(b, LoadWord(b), k);
  } else {
    (void)k;
    return b->next;
  }
}

// A run's free list ends at its arena's base; the empty pool sentinel's
// (g_empty_pool) list is null. Either has zero low bits, unlike any block.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool IsListEnd(const FreeBlock* b) {
  return (reinterpret_cast<uintptr_t>(b) & (kArenaSize - 1)) == 0;
}

// True when a and b lie in one arena: a run's list never leaves its arena.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool SameArena(const void* a, const void* b) {
  return ((reinterpret_cast<uintptr_t>(a) ^ reinterpret_cast<uintptr_t>(b)) >> kArenaShift) == 0;
}

// Bits that are zero in every address a link may hold (null, an arena base,
// a block: 8-aligned, below 2^47).
inline constexpr uintptr_t kLinkShapeMask = ~((uintptr_t{1} << 47) - 1) | 7;

// True when `word`, block p's first word, decodes to a link-shaped
// address: p is (almost surely) free, on a list or travelling back to its
// owner. Reads program data; the slow paths confirm a hit (HasFreeBlock,
// LinkTargetIsStrata).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool WordLooksFree(const void* p, const FreeBlock* word, const LinkKey& k) {
  return (reinterpret_cast<uintptr_t>(DecodeLink(p, word, k)) & kLinkShapeMask) == 0;
}
// The same of p's first word as it is now.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool LooksFree(const void* p, const LinkKey& k) {
  const FreeBlock* next = NextOf(static_cast<const FreeBlock*>(p), k);
  return (reinterpret_cast<uintptr_t>(next) & kLinkShapeMask) == 0;
}

// THE CLAIM (the checked build's, kClaimFreedBlock). A free turns a live
// block into a free one in one step that no other free can also make: a
// compare-and-swap of the block's first word from the word the free judged
// (program data: the block is live) to the claim mark, b's link to itself
// (no list ever holds it: it looks free, and on b's own list, to every
// check). Only then does the free store the block's words where it links
// it (the second word first, the link last: StoreWord). Of two threads
// freeing one block at once, one claims it and links it; the other's CAS
// fails, or it finds the block already looking free: it reports a double
// free and, in count mode, does nothing. Every path that frees a live block
// claims it: the local free (FreeInClass, FreeLocalChecked), the remote free
// (FreeRemote, SendRemote) and the owner's verdict on a parked suspect
// (DrainSuspects); blocks already free (a drain, a class list giving blocks
// back, a forwarded block) move from one free state to another unclaimed.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FreeBlock* ClaimMark(const void* b, const LinkKey& k) {
  return EncodeLink(b, static_cast<const FreeBlock*>(b), k);
}
// Claims live block b, whose first word the free read as `seen` and judged
// program data. True when it is this free's to link; false when the word
// changed since (another free claimed it first). The default build claims
// nothing (true). REQUIRES: `seen` does not look free (WordLooksFree), so
// it is no claim mark; a word that does goes to ClaimJudgedBlock.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool ClaimBlock(void* b, FreeBlock* seen, const LinkKey& k) {
  if constexpr (kClaimFreedBlock) {
    FreeBlock* const mark = ClaimMark(b, k);
    // Relaxed: the claim orders nothing. The loser reads nothing more of
    // the block (it reports and returns); the winner's words are published
    // by its release store of the link (StoreWord) and, beyond, by the
    // hand-offs that move the block (the queue, the stacks).
    return std::atomic_ref<FreeBlock*>(static_cast<FreeBlock*>(b)->next)
        .compare_exchange_strong(seen, mark, std::memory_order_relaxed, std::memory_order_relaxed);
  } else {
    (void)b, (void)seen, (void)k;
    return true;
  }
}
// ClaimBlock for a word the slow paths judged program data although it may
// look free: false also when `seen` is a claim mark (another free is
// linking the block).
inline bool ClaimJudgedBlock(void* b, FreeBlock* seen, const LinkKey& k) {
  if (kClaimFreedBlock && seen == ClaimMark(b, k)) return false;
  return ClaimBlock(b, seen, k);
}

// True when p's first word is a link a run's list could hold: it decodes to
// an address in p's own arena (a block, or the arena base ending the list).
// Program data passes with a chance of about 2^-46.
inline bool LooksOnItsList(const void* p, const LinkKey& k) {
  return SameArena(p, NextOf(static_cast<const FreeBlock*>(p), k));
}

// THE SEGMENT WORD. A block travelling back to its owner (a thread's
// outgoing batch, then the owner's queue) that has a second word (a block of
// 16 bytes or more) holds there the segment it starts: the blocks of its own
// run that follow it in the batch, consecutively, itself first. The word
// names the segment's last block and its length, so that the owner splices
// the whole segment onto the run's list in O(1), with one count update
// (snmalloc's BatchIt). An 8-byte block is a segment of one. The word is
// stored like a link (encoded in the checked build), its length in the
// high bits no address uses.
inline constexpr uint32_t kSegmentMaxBlocks = 0xFFFF;
inline constexpr int kSegmentLengthShift = 48;

struct Segment {
  FreeBlock* last;
  uint32_t blocks;
};

// Block b's second word.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FreeBlock* SegmentWord(FreeBlock* b) { return b + 1; }
ABSL_ATTRIBUTE_ALWAYS_INLINE inline const FreeBlock* SegmentWord(const FreeBlock* b) { return b + 1; }

// Writes b's segment word: the segment from b to `last`, `blocks` long
// (1..kSegmentMaxBlocks). REQUIRES: b has a second word.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void SetSegment(FreeBlock* b, const FreeBlock* last, uint32_t blocks,
                                                    const LinkKey& k) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(last) | (uintptr_t{blocks} << kSegmentLengthShift);
  SetLink(SegmentWord(b), reinterpret_cast<const FreeBlock*>(v), k);
}

// Reads b's segment word (unchecked: the checked build validates what it
// reads before following it).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Segment SegmentOf(const FreeBlock* b, const LinkKey& k) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(NextOf(SegmentWord(b), k));
  return {reinterpret_cast<FreeBlock*>(v & ((uintptr_t{1} << kSegmentLengthShift) - 1)),
          static_cast<uint32_t>(v >> kSegmentLengthShift)};
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FREE_LINK_H_
