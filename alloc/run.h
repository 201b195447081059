// The owner's half of a run head: its free list, the count of its blocks in
// use and its state. The only home of the run state machine: the named
// transitions below are the only writers of the state fields.
//
// THE STATES OF A RUN
//
// A run is 1..16 contiguous pools of an arena serving one size class
// (arena.h). The head pool's descriptor (PoolDesc) holds the run's shape in
// its first cache line, fixed while the run lives and read by every thread
// that frees one of its blocks, and this Run in its second, written by the
// owner when blocks leave the run for its class cache (a refill) or come
// back to it (a drained segment, a class cache giving blocks back). A run
// head is in exactly one state:
//
//   kHeld      In the owner's hands, on no list and in no slot: just made
//              from free pools, just unlinked from a list, just woken or
//              demoted. Transient: the owner's call that put it there also
//              moves it on, so a heap at rest holds no kHeld run.
//   kCurrent   The run its class allocates from (the heap's current slot).
//   kPartial   On its class's partial list: some blocks live, some free
//              (on its list or not yet carved).
//   kAsleep    Full when it stopped being current; on no list, waiting
//              for WakeFrees(capacity) of its blocks to come back.
//   kEmpty     No block live; kept whole, free list and all, on its
//              class's empty list for reuse. It may be purged in place
//              (its pages given back, its list with them).
//   kNone      Not a run head: a free pool (the state of every pool of a
//              released run), or a tail pool of a run.
//
// THE COUNT. `used_` is the one count Push and PushSegment test: it
// subtracts one and branches when the result is <= 0. What that test
// catches depends on the state, through `bias_`; the true count of blocks
// in use (handed out, or travelling back from another thread) is
// Used() = used_ + bias_ (mod 2^32):
//   kCurrent   bias = -kCurrentBias: the count never reaches zero when
//              blocks come back, so the run the class allocates from never
//              takes the slow path for it. An empty current run is kept
//              anyway.
//   kAsleep    bias = capacity - WakeFrees(capacity): used_ counts down the
//              frees still needed, and the one that reaches zero wakes it.
//              So a refill always finds a batch of free blocks in the run it
//              takes, whatever the order of the program's frees (snmalloc's
//              slabs wake at a threshold for the same reason).
//   otherwise  bias = 0: the test catches "the run is now empty".
//
// THE TRANSITIONS, who makes them, and under what:
//   (free pools) -> kHeld     Begin        owner, holding its metadata lock
//   kHeld     -> kCurrent     BecomeCurrent   owner (refill)
//   kCurrent  -> kAsleep      FallAsleep   owner: the current run is spent
//                                          (no free block, fully carved)
//                                          and another takes its place
//   kHeld     -> kAsleep      FallAsleep   owner: a demoted run that is full
//   kCurrent  -> kHeld        Demote       owner: thread exit, an empty
//                                          current run released over budget,
//                                          or one with blocks to give that
//                                          another takes the place of (a
//                                          nested allocation made it current
//                                          during a refill), then kPartial
//   kAsleep   -> kHeld        Wake         owner's free slow path, when the
//                                          blocks back since it slept reach
//                                          WakeFrees (one push or a segment)
//   kHeld     -> kPartial     EnterPartial owner (a woken or demoted run with
//                                          live blocks)
//   kPartial  -> kHeld        LeavePartial owner: refill takes it, it empties,
//                                          or its arena moves to another heap
//   kHeld     -> kEmpty       KeepEmpty    owner, holding the lock
//   kEmpty    -> kEmpty       MarkPurged   purger (any thread), holding the
//                                          owner's lock
//   kEmpty    -> kHeld        LeaveEmpty   owner holding the lock: reuse,
//                                          release, or a move to another heap
//   kHeld     -> kNone        Release      owner holding the lock (and every
//                                          tail pool of the run with it)
//
// OBSCURITIES
//  1. The count moves by the bias while a transition runs (two stores): a
//     racy reader (stats) may see a run mid-transition; the owner, and any
//     reader at quiescence, see the exact count. Stats clamp what they read.
//  2. kEmpty is the only state other threads may look at: the purger and the
//     stats reader read `kept_empty_` and `purged_`, both written only under
//     the owner's lock (the state itself is the owner's plain field).
//  3. A purged empty run's pages read as zero: its free list is gone. It is
//     re-carved from its first block when reused (LeaveEmpty with reuse).
//  4. A double free into a run with no live block (an empty run whose list
//     was purged, so the block did not look free) drives used_ below zero;
//     the free slow path undoes the push (UndoPush) and reports it.
//  5. A run's list leaves the run whole (TakeList) into its heap's class
//     cache: its blocks count in use from then on, and a damaged link among
//     them is found where the cache pops (checked build); a list dropped
//     there in count mode leaves its blocks counted in use (leaked).
//  6. A current run's count passes zero only after 2^24 frees with no
//     allocation between (double frees, all reported): it is left as is.
#ifndef STRATA_ALLOC_RUN_H_
#define STRATA_ALLOC_RUN_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/size_class.h"
#include "threading/single_writer.h"

namespace strata::internal {

enum class RunState : uint8_t {
  kNone = 0,  // not a run head (a free pool, or a tail pool)
  kHeld,      // in the owner's hands, on no list (transient)
  kCurrent,   // its class's current run
  kPartial,   // on its class's partial list
  kAsleep,    // full, waiting for WakeFrees frees
  kEmpty,     // no live block, kept whole on its class's empty list
};

inline constexpr uint32_t kCurrentBias = uint32_t{1} << 24;
inline constexpr uint32_t kWakeShare = 4;  // wake at capacity / 4 free
inline constexpr uint32_t WakeFrees(uint32_t capacity) {
  return capacity / kWakeShare > 1 ? capacity / kWakeShare : 1;
}

// True when p is the start of block k < limit of a run starting at offset
// `start` of its arena, with blocks of ceil(2^32/magic) bytes: one multiply
// (see IsBlockStart). A free pool's start and magic are 0: nothing passes.
// The one block-start check of every free path.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool IsBlockOfRun(const void* p, uint32_t start, uint32_t magic,
                                                      uint32_t limit) {
  const uint32_t offset = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p) & (kArenaSize - 1)) - start;
  const uint64_t product = uint64_t{offset} * magic;
  return IsBlockStart(product, magic) && static_cast<uint32_t>(product >> 32) < limit;
}

// Invariants (a run head, owner's view; see PoolDesc::IsValid for the
// shape's):
//   Used() + length(free list) + (capacity - carved) == capacity
//   every block on the list is carved: at offset k * size, k < carved
//   state == kCurrent  <=>  bias == -kCurrentBias
//   state == kAsleep   =>  bias == capacity - WakeFrees(capacity) and
//                          0 < used <= WakeFrees(capacity)
//   any other state    =>  bias == 0
//   state == kPartial  =>  the list is not empty or carved < capacity
//   Used() == 0        =>  state is kCurrent, kEmpty or kHeld
//   kept_empty  <=>  state == kEmpty;   purged  =>  state == kEmpty
//   not a head (kNone) =>  carved == 0, used == 0, the list is empty
//
// Thread-safety: the owner's alone (the heap owning the arena), but for
// kEmpty runs, which change only under the owner's metadata lock (the purger
// purges them in place), and `used_`, which has one writer and racy readers
// (stats, through threading::SingleWriter).
// The shape a run's owner line is checked against (PoolDesc's first line).
struct RunShape {
  bool head;              // a run head (else a free or tail pool)
  uint32_t capacity;      // blocks
  uint32_t size;          // bytes a block
  uint32_t start;         // the run's offset in its arena
  uint32_t div_magic;     // ceil(2^32 / size)
  uint16_t head_bytes;    // a tail's way back to its head
  const char* run_start;  // the run's first block
};

class Run {
 public:
  // ---- Fast paths (owner) ----

  // The head of the free list (decoded): a block, or the list's end (the
  // arena's base; null for the empty sentinel's run), see IsListEnd.
  FreeBlock* free_list() const { return free_; }

  // Pushes b onto the list and counts it freed. Returns true when the run
  // needs the free slow path: it is now empty, or asleep and due to wake,
  // or its count went below zero (see obscurity 4).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Push(FreeBlock* b, const LinkKey& key) {
    SetLink(b, free_, key);
    free_ = b;
    // One signed test for every rare case (see THE COUNT above).
    return ABSL_PREDICT_FALSE(used_.DecrementToNonPositive());
  }
  // Splices the segment first..last (`blocks` blocks already linked in
  // order, last's link to be written) onto the list and counts them freed:
  // Push for many blocks, one count update (another thread's frees, drained
  // by the owner: free_link.h, THE SEGMENT WORD). Returns what Push does.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool PushSegment(FreeBlock* first, FreeBlock* last, uint32_t blocks,
                                                const LinkKey& key) {
    SetLink(last, free_, key);
    free_ = first;
    return ABSL_PREDICT_FALSE(static_cast<int32_t>(used_.Sub(blocks)) <= 0);
  }

  // True when p is the start of a block carved so far: the owner's check,
  // from this line alone (the shape's copies below).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool HoldsCarved(const void* p) const {
    return IsBlockOfRun(p, own_start_, own_div_magic_, carved_);
  }

  // Bytes from this pool's descriptor back to its run head's (a copy of the
  // shape's head_bytes, so that the owner's free stays on this line).
  ABSL_ATTRIBUTE_ALWAYS_INLINE uint16_t own_head_bytes() const { return own_head_bytes_; }

  // ---- Reading ----

  // Blocks in use (handed out, or travelling back).
  uint32_t Used() const { return used_.Get() + bias_.Get(); }
  // True when the tested count (see THE COUNT) went below zero: a push into
  // a run with no live block (obscurity 4).
  bool Underflowed() const { return static_cast<int32_t>(Used()) < 0; }
  uint32_t carved() const { return carved_; }
  RunState state() const { return state_; }
  // kEmpty only, read under the owner's lock (obscurity 2).
  bool kept_empty() const { return kept_empty_; }
  bool purged() const { return purged_; }
  // A free pool, or an empty run: the low 32 bits of os::NowMs() when it
  // became free (the purge delay runs from there).
  uint32_t free_since() const { return free_since_; }
  // True when p is on the free list (a walk of at most `capacity` steps that
  // stops at a link leaving the arena).
  bool HasFreeBlock(const void* p, uint32_t capacity) const;

  // ---- Lists for a thread's class cache ----

  // Carves up to n more blocks (about a page at most) as a chain of their
  // own, in address order, counted in use: they go to a class cache.
  // REQUIRES: carved < capacity.
  BlockChain CarveChain(char* run_start, uint32_t size, uint32_t capacity, uint32_t n, const LinkKey& key);
  // Takes the whole free list (to a class cache): its blocks count as in
  // use, the list is left empty. The chain ends at the list's end (the
  // arena base); `last` is not known.
  BlockChain TakeList(FreeBlock* list_end);

  // ---- Transitions (see the file comment) ----

  // Free pools -> kHeld: a new run whose shape starts at arena offset
  // `start` with `magic` = ceil(2^32/size); its list ends at `list_end`
  // (the arena's base). REQUIRES: the owner's metadata lock.
  void Begin(FreeBlock* list_end, uint32_t start, uint32_t magic);
  // A tail pool of a run: only the way back to the head (owner's copy).
  void BeginTail(uint16_t head_bytes);
  void BecomeCurrent();
  void FallAsleep(uint32_t capacity);
  void Demote();
  // kAsleep -> kHeld; returns the blocks in use.
  uint32_t Wake();
  void EnterPartial();
  void LeavePartial();
  // REQUIRES (these three): the owner's metadata lock.
  void KeepEmpty(uint32_t now);
  void MarkPurged();
  // kEmpty -> kHeld. With `reuse`, a purged run's list (gone with its
  // pages) starts again from the first block, at `list_end`.
  void LeaveEmpty(bool reuse, FreeBlock* list_end);
  // kHeld (or a tail, or a free pool) -> kNone, free since `now`.
  // REQUIRES: the owner's metadata lock.
  void Release(uint32_t now);

  // ---- Corrections after misuse (the count, never the state) ----

  // Undoes the last push (or segment splice), whose last block is `last`
  // and which counted `blocks`, after the count went below zero (obscurity
  // 4); returns the block (or the segment's first) it had put at the head.
  FreeBlock* UndoPush(const FreeBlock* last, uint32_t blocks, const LinkKey& key);
  // Checks the invariants above, and that the copies agree with `shape`.
  bool IsValid(const RunShape& shape) const;

 private:
  // Sets bias_ to b, keeping Used(): the one writer of bias_.
  void SetBias(uint32_t b);

  FreeBlock* free_ = nullptr;  // head of the free list (decoded), ending at the arena base
  // Blocks handed out (or in flight back), less bias_ (see THE COUNT).
  threading::SingleWriter<uint32_t> used_;
  uint32_t carved_ = 0;  // blocks carved so far, from the run start (lazily)
  // What used_ leaves out of the count. One writer (the owner), racy
  // readers (stats).
  threading::SingleWriter<uint32_t> bias_;
  // Copies of the shape's start, div_magic and head_bytes, for the owner's
  // free path: with them a local free reads and writes this line alone (a
  // cold descriptor costs one miss, not two). Written with the shape.
  uint32_t own_start_ = 0;
  uint32_t own_div_magic_ = 0;
  uint16_t own_head_bytes_ = 0;
  RunState state_ = RunState::kNone;
  bool kept_empty_ = false;  // state_ == kEmpty, written under the owner's lock
  bool purged_ = false;      // kEmpty: its pages were given back (re-carve on reuse)
  uint32_t free_since_ = 0;
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_RUN_H_
