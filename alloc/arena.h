// Arenas and pools: strata's memory layout for small and medium blocks.
//
// An arena is 256 KiB aligned to 256 KiB. Its first two pools hold the
// ArenaHeader (found by masking any interior pointer) with one PoolDesc per
// pool; the other 62 pools hold blocks. A run is 1..16 contiguous pools that
// serve one size class; small classes use one-pool runs (the seed's pools).
//
// Arenas come from the process-wide source below: a lock-free stack of empty
// arenas, else the current OS reservation (16 arenas mapped at once, under a
// spin lock, on the rare "map more memory" path). The run's owner line and
// its state machine are run.h's.
#ifndef STRATA_ALLOC_ARENA_H_
#define STRATA_ALLOC_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/run.h"
#include "alloc/size_class.h"
#include "threading/single_writer.h"

namespace strata::internal {

class Heap;
struct ArenaRecord;

// The first word of every header registered in the page map.
enum HeaderKind : uint32_t {
  kArenaKind = 0x616e7261,  // "arna"
  kLargeKind = 0x656772a1,
  kGuardedKind = 0x64726167,  // "gard": the guarded slots' region (guarded.h)
};

enum class PoolState : uint8_t {
  kFree = 0,  // not part of any run
  kHead = 1,  // first pool of a run: its descriptor describes the run
  kTail = 2,  // later pool of a run: head_bytes leads back to the head
};

// Describes one pool; for a run, the head's descriptor describes the run.
// 128 bytes, two cache lines: the descriptor of pool i sits at arena base +
// 128 * i (pool 0's slot holds the ArenaHeader's own fields, pool 1's is a
// zero descriptor: pools 0 and 1 hold the descriptors), so the free fast
// path finds it with a shift and a mask.
//  - The first line is the run's shape. Once the run is made it is only
//    read, by the owner and by every thread that frees one of its blocks.
//  - The second line is the owner's (run.h): the free list, the count, the
//    state and the list links, written when blocks leave the run for the
//    owner's class cache or come back to it.
// A remote freer reads only the first line, so the owner's stores to the
// second do not take the line from it (and its reads do not take the line
// from the owner): producer/consumer programs paid a coherence miss on both
// sides per block when the two shared a line.
// Invariants (head): capacity == kClasses[size_class].blocks, size and
// div_magic are the class's, start == index * kPoolSize, the owner line's
// copies agree with the shape, and the Run's own (run.h). A free pool has
// carved == 0, capacity == 0 and magic 0: no block validates against it.
// Thread-safety: the shape changes only under the owner's metadata lock
// (Heap's), so the purger and the stats reader may read it holding that
// lock; anyone may read the shape of a run holding a live block they own,
// which does not change while it lives. The second line: see Run. The list
// links (`prev`, `next`) are the owner's partial list's, or, for kEmpty
// runs, the empty list's (under the lock).
struct alignas(2 * kCacheLine) PoolDesc {
  // ---- The shape (first line); written only by Format* and ResetToFree ----
  uint32_t size = 0;          // block size (head and tail pools)
  uint32_t div_magic = 0;     // ceil(2^32 / size): offset / size without a divide
  uint32_t start = 0;         // offset of the run's first block from the arena base
  uint16_t capacity = 0;      // blocks the run holds
  uint8_t size_class = 0;     // class of the run (0 when free)
  uint8_t run_pools = 0;      // pools in the run (head only)
  PoolState state = PoolState::kFree;
  uint8_t index = 0;          // pool index in its arena
  // kTail: bytes back to the head's descriptor (128 per pool); 0 otherwise.
  // A byte count, so that finding the head is one load and one subtract on
  // the free fast path.
  uint16_t head_bytes = 0;

  // ---- The owner's (second line) ----
  alignas(kCacheLine) Run run;
  PoolDesc* prev = nullptr;   // owner's partial or empty list
  PoolDesc* next = nullptr;

  constexpr PoolDesc() = default;
  PoolDesc(const PoolDesc&) = delete;
  PoolDesc& operator=(const PoolDesc&) = delete;

  // Blocks in use (see Run::Used).
  uint32_t Used() const { return run.Used(); }
  // A full run waiting for WakeFrees(capacity) frees.
  bool Asleep() const { return state == PoolState::kHead && run.state() == RunState::kAsleep; }

  // Pool `i` of its arena, free since `now` (a fresh arena's pools).
  void FormatFree(uint8_t i, uint32_t now) {
    ResetToFree(now);
    index = i;
  }
  // The head of a new run of n pools of class cls at pool `index`: the
  // shape, and the owner line's new run (kHeld). REQUIRES: the owner's lock.
  void FormatHead(size_t cls, uint32_t n, FreeBlock* list_end);
  // Pool `head + i` of that run (its class and block size too).
  void FormatTail(size_t cls, uint32_t i);
  // Back to a free pool, free since `now` (index is kept).
  void ResetToFree(uint32_t now);

  // The run head this descriptor belongs to (itself for a head or a free
  // pool). Head() reads the shape's line, OwnHead() the owner's (the same
  // value: the owner's free path uses it to stay on one line).
  PoolDesc* Head() { return reinterpret_cast<PoolDesc*>(reinterpret_cast<char*>(this) - head_bytes); }
  PoolDesc* OwnHead() {
    return reinterpret_cast<PoolDesc*>(reinterpret_cast<char*>(this) - run.own_head_bytes());
  }

  char* Start() const;
  bool IsValid() const;
  // True when p is on this run's free list (a walk of at most capacity).
  bool HasFreeBlock(const void* p) const { return run.HasFreeBlock(p, capacity); }
};
static_assert(sizeof(PoolDesc) == 2 * kCacheLine, "descriptor i lives at arena + 128 * i");
static_assert(offsetof(PoolDesc, run) == kCacheLine, "the owner's fields start the second line");
static_assert(offsetof(PoolDesc, head_bytes) + sizeof(uint16_t) <= kCacheLine, "the shape is one line");

// The shape's check of a block start against d's run (see IsBlockOfRun),
// up to `limit` blocks: d->capacity for anyone (fixed while a block of the
// run lives), the carved count for the owner.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool ValidateBlock(const PoolDesc* d, const void* p, uint32_t limit) {
  return IsBlockOfRun(p, d->start, d->div_magic, limit);
}

// SYNCHRONIZATION
//  - owner: written with release by the heap that takes the arena from the
//    arena source (before any block of it is handed out), by a heap that
//    absorbs or receives it (see heap.h), and set to null when the empty
//    arena goes back; read with acquire by any thread freeing a block of the
//    arena. A thread that read a stale owner sends the block to the old
//    heap, which forwards it.
//  - used_pools, free_mask, dirty_mask, prev, next, owner_list: written
//    only by the owner holding its metadata lock; read by the owner, and by
//    the purger and stats reader holding that lock.
//  - kind, record: fixed while the arena is mapped.
struct alignas(kPoolSize) ArenaHeader {
  // ---- The first line: fixed while the arena has an owner, read by every
  // thread that frees into it (the owner writes none of it on its paths) ----
  uint32_t kind;               // kArenaKind (shared prefix with LargeHeader)
  uint32_t zero0 = 0;
  // Always zero: the byte a free reads as pool 0's size class (pool 0's
  // descriptor slot is this header; see kHeaderReadsAsNoClass), so that no
  // pointer into the header is taken for a block.
  uint64_t zero1 = 0;
  std::atomic<Heap*> owner;    // heap whose pools these are (null: empty)
  ArenaRecord* record;         // type-stable record (global stacks, stats)
  // ---- The second line: the owner's, under its metadata lock ----
  alignas(kCacheLine) uint32_t used_pools;  // pools that are part of runs
  uint8_t owner_list;          // which of the owner's arena lists (owned_arenas.h)
  uint32_t quarantine_ms;      // (checked build) when a run of it was last released
  uint64_t quarantine_mask;    // (checked build) free pools released up to kQuarantineMs
                               // before quarantine_ms: reused last (checks.h)
  uint64_t free_mask;          // bit i set <=> pool i is free; bits 0 and 1 never
  uint64_t dirty_mask;         // free pools whose pages may be resident (not purged)
  ArenaHeader* prev;           // owner's arena lists
  ArenaHeader* next;
  // descs[i - 1] describes pool i. Pools 0 and 1 are this header: pool 0
  // has no slot here (these fields take it), and pool 1's, descs[0], stays
  // zero (a free pool with no blocks, so nothing validates against it).
  PoolDesc descs[kPoolsPerArena - 1];

  char* Base() { return reinterpret_cast<char*>(this); }
  // Descriptor of pool i. REQUIRES: 1 <= i < kPoolsPerArena (pool 1's is the
  // zero one; blocks live from kFirstUsablePool).
  PoolDesc* pool(size_t i) { return &descs[i - 1]; }
  const PoolDesc* pool(size_t i) const { return &descs[i - 1]; }
  bool IsValid() const;
};
static_assert(sizeof(ArenaHeader) == kPoolSize * kFirstUsablePool, "the header is pools 0 and 1");
static_assert(offsetof(PoolDesc, size_class) >= offsetof(ArenaHeader, zero1) &&
                  offsetof(PoolDesc, size_class) < offsetof(ArenaHeader, zero1) + sizeof(uint64_t),
              "kHeaderReadsAsNoClass: pool 0's size class reads the header's zero word");
static_assert(offsetof(ArenaHeader, used_pools) == kCacheLine, "the owner's fields on a line of their own");
static_assert(offsetof(ArenaHeader, descs) == sizeof(PoolDesc), "descriptor i at base + 128 * i");
static_assert(kFirstUsablePool * kPoolSize == (kPoolsPerArena * sizeof(PoolDesc)),
              "the descriptors fill the header pools");

// Where an arena's record says the arena is (for stats; relaxed).
enum class ArenaState : uint8_t {
  kOwned = 0,     // owned by a heap
  kEmpty = 1,     // in the empty-arena stack
  kUnmapped = 2,  // given back to the OS; the record waits for reuse
};

// Type-stable bookkeeping for an arena; never freed (see meta_alloc.h).
// Fields other than the links are written by whoever holds the record (its
// arena's owner, or the thread that popped it from a stack) and read racily
// by stats, hence relaxed atomics.
struct alignas(kCacheLine) ArenaRecord {
  std::atomic<ArenaRecord*> stack_next;  // link in the empty / spare stacks
  ArenaRecord* all_next;                 // link in the list of all records (fixed)
  std::atomic<ArenaHeader*> arena;       // the arena (changes only while unmapped)
  std::atomic<ArenaState> state;
  std::atomic<bool> purged;              // kEmpty: pools given back to the OS
  std::atomic<uint32_t> empty_since;     // kEmpty: os::NowMs() when it went empty
};

inline constexpr uint64_t kAllUsablePools = ~uint64_t{0} << kFirstUsablePool;

inline ArenaHeader* ArenaOf(const void* p) {
  return reinterpret_cast<ArenaHeader*>(reinterpret_cast<uintptr_t>(p) & ~(kArenaSize - 1));
}

// Byte offset of the descriptor of p's pool from its arena base: 128 * pool
// index (0 for pool 0; pool 1's descriptor is a zero one: neither holds
// blocks).
inline uintptr_t DescOffset(const void* p) {
  constexpr int kDescShift = 7;  // log2(sizeof(PoolDesc))
  static_assert(sizeof(PoolDesc) == size_t{1} << kDescShift);
  return (reinterpret_cast<uintptr_t>(p) >> (kPoolShift - kDescShift)) &
         ((kPoolsPerArena - 1) << kDescShift);
}

// True when p lies in a pool that may hold blocks (not in the header's two).
// The fast paths test DescOffset(p) == 0 alone, one instruction less: pool
// 1's descriptor is zero, so no pointer into it validates as a block.
inline bool InBlockPool(const void* p) { return DescOffset(p) >= kFirstUsablePool * sizeof(PoolDesc); }

// The run head describing the block at p. REQUIRES: p lies in a usable pool.
inline PoolDesc* RunOf(ArenaHeader* arena, const void* p) {
  PoolDesc* d = reinterpret_cast<PoolDesc*>(arena->Base() + DescOffset(p));
  return d->Head();
}

inline char* PoolDesc::Start() const {
  return ArenaOf(this)->Base() + size_t{index} * kPoolSize;
}

// ---- The process-wide arena source -------------------------------------

// Returns an empty arena owned by `owner` (all usable pools free; dirty_mask
// tells which may still be resident), or nullptr when the OS refuses memory. Thread-safety: any thread; lock-free
// when an empty arena is available, else takes the reservation spin lock.
ArenaHeader* AcquireArena(Heap* owner);

// Returns an empty arena (used_pools == 0) to the source. Its pools stay
// as they are (resident or purged, per dirty_mask) until the release policy
// purges or unmaps it. REQUIRES: caller owns it and no block of it is live
// or in flight.
void ReleaseArena(ArenaHeader* arena, uint64_t now);

// fork(): the reservation lock is held across fork (see fork.h).
void LockArenaSourceForFork();
void UnlockArenaSourceForFork();

// The release policy for empty arenas, run by the release engine: purges
// (madvise) the pools of empty arenas empty for at least delay_ms (all of
// them when force), and unmaps the ones beyond the `retained` most recently
// emptied once their delay is over (all beyond `retained` when force).
// delay_ms < 0 means never, unless force. Returns the bytes purged plus
// unmapped. Thread-safety: any thread; lock-free (arenas taken out of the
// stack meanwhile are simply skipped).
struct ArenaDecayResult {
  uint64_t purged_bytes;
  uint64_t unmapped_bytes;
};
ArenaDecayResult DecayEmptyArenas(uint64_t now, int64_t delay_ms, size_t retained, bool force);

struct ArenaSourceStats {
  uint64_t arenas_mapped;         // arenas currently mapped from the OS (counter)
  uint64_t arenas_mapped_peak;    // the most ever mapped at once
  uint64_t arenas_unmapped;       // arenas given back to the OS so far
  uint64_t reservations;          // OS mappings made for arenas
  uint64_t reserve_bytes_left;    // reserved from the OS but not yet carved into arenas
  // From one walk over the records:
  uint64_t empty;                 // arenas in the empty stack
  uint64_t empty_purged;          // of those, with their pools purged
  uint32_t oldest_resident_since; // os::NowMs() the oldest unpurged empty arena went empty
  uint32_t newest_resident_since; // ... and the newest
};
ArenaSourceStats GetArenaSourceStats();

ArenaRecord* AllArenaRecords();

// Calls fn(arena) for every mapped arena (empty ones included). Only for
// quiescent use (tests): another thread may unmap an empty arena meanwhile.
template <typename Fn>
void ForEachArena(Fn fn) {
  for (ArenaRecord* r = AllArenaRecords(); r != nullptr; r = r->all_next) {
    // Relaxed: quiescent use only (see above).
    if (r->state.load(std::memory_order_relaxed) == ArenaState::kUnmapped) continue;
    fn(r->arena.load(std::memory_order_relaxed));
  }
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ARENA_H_
