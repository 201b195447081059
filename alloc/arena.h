// Arenas and pools: strata's memory layout for small and medium blocks.
//
// An arena is 256 KiB aligned to 256 KiB. Its first pool holds the
// ArenaHeader (found by masking any interior pointer) with one PoolDesc per
// pool; the other 63 pools hold blocks. A run is 1..16 contiguous pools that
// serve one size class; small classes use one-pool runs (the seed's pools).
//
// Arenas come from the process-wide source below: a lock-free stack of empty
// arenas, else the current OS reservation (16 arenas mapped at once, under a
// spin lock: the only lock, on the rare "map more memory" path).
#ifndef STRATA_ALLOC_ARENA_H_
#define STRATA_ALLOC_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"
#include "alloc/size_class.h"
#include "threading/single_writer.h"

namespace strata::internal {

class Heap;
struct ArenaRecord;

// A free block links to the next through its first word.
struct FreeBlock {
  FreeBlock* next;
};

// Free lists of runs end with this sentinel rather than null, so that a
// block whose first word is null (common in program data) does not look like
// the last block of a free list: frees use that to spot double frees cheaply.
extern FreeBlock g_free_list_end;
inline constexpr FreeBlock* kFreeListEnd = &g_free_list_end;

// The first word of every header registered in the page map.
enum HeaderKind : uint32_t {
  kArenaKind = 0x616e7261,  // "arna"
  kLargeKind = 0x656772a1,
};

enum class PoolState : uint8_t {
  kFree = 0,  // not part of any run
  kHead = 1,  // first pool of a run: its descriptor describes the run
  kTail = 2,  // later pool of a run: head_offset leads back to the head
};

// Where a run head sits in its owning heap's lists.
enum class PoolList : uint8_t {
  kNone = 0,     // full: on no list (a local free brings it back to kPartial)
  kPartial = 1,  // on the heap's partial list for its class
  kCurrent = 2,  // the heap's current run for its class (fast path source)
};

// Describes one pool; for a run, the head's descriptor describes the run.
// Invariants (head, owner's view):
//   used + length(free) + (capacity - carved) == capacity
//   list == kPartial  =>  free != kFreeListEnd || carved < capacity
//   used == 0 && list != kCurrent  =>  the run is released (state == kFree)
// Thread-safety: `free`, `carved`, `list`, `prev`, `next` are the owner's
// alone (the heap that owns the arena). `state`, `size_class`, `capacity`,
// `run_pools`, `head_offset` and `free_since` change only under the owner's
// metadata lock (Heap::meta_lock_), so the purger and the stats reader may
// read them holding it; anyone may also read `state`, `size_class` and
// `head_offset` of a run holding a live block they own, which do not change
// while it lives. `used` has one writer (the owner) and racy readers (stats).
struct PoolDesc {
  FreeBlock* free = kFreeListEnd;  // free blocks already carved, ending in kFreeListEnd
  threading::SingleWriter<uint32_t> used;  // blocks handed out (to the program or in flight back)
  uint32_t carved = 0;       // blocks carved so far, from the run start (lazy)
  uint16_t capacity = 0;     // blocks the run holds
  uint8_t size_class = 0;    // class of the run (0 when free)
  uint8_t run_pools = 0;     // pools in the run (head only)
  uint8_t head_offset = 0;   // kTail: this - head_offset == head; 0 otherwise
  PoolState state = PoolState::kFree;
  PoolList list = PoolList::kNone;
  uint8_t index = 0;         // pool index in its arena
  uint32_t free_since = 0;   // kFree: coarse time (os::NowMs) it became free
  PoolDesc* prev = nullptr;  // owner's partial list
  PoolDesc* next = nullptr;

  constexpr PoolDesc() = default;
  PoolDesc(const PoolDesc&) = delete;
  PoolDesc& operator=(const PoolDesc&) = delete;

  // Back to a free pool (index and free_since are kept).
  void ResetToFree() {
    free = kFreeListEnd;
    used.Set(0);
    carved = 0;
    capacity = 0;
    size_class = 0;
    run_pools = 0;
    head_offset = 0;
    state = PoolState::kFree;
    list = PoolList::kNone;
    prev = next = nullptr;
  }

  char* Start() const;
  bool IsValid() const;
  // True when p is on this run's free list (a walk of at most capacity).
  bool HasFreeBlock(const void* p) const;
};

// True when p's first word looks like a free-list link (the end sentinel or
// a pointer into p's own arena): the only blocks worth checking for a double
// free. Reads program data; never decides alone.
inline bool LooksFree(const void* p) {
  const FreeBlock* w = static_cast<const FreeBlock*>(p)->next;
  return w == kFreeListEnd ||
         (reinterpret_cast<uintptr_t>(w) ^ reinterpret_cast<uintptr_t>(p)) < kArenaSize;
}

// SYNCHRONIZATION
//  - owner: written with release by the heap that takes the arena from the
//    arena source (before any block of it is handed out), by a heap that
//    absorbs or receives it (see heap.h), and set to null when the empty
//    arena goes back; read with acquire by any thread freeing a block of the
//    arena. A thread that read a stale owner sends the block to the old
//    heap, which forwards it.
//  - used_pools, free_mask, dirty_mask, prev, next, on_avail_list: written
//    only by the owner holding its metadata lock; read by the owner, and by
//    the purger and stats reader holding that lock.
//  - kind, record: fixed while the arena is mapped.
struct alignas(kCacheLine) ArenaHeader {
  uint32_t kind;               // kArenaKind (shared prefix with LargeHeader)
  uint32_t used_pools;         // pools that are part of runs
  std::atomic<Heap*> owner;    // heap whose pools these are (null: empty)
  uint64_t free_mask;          // bit i set <=> pool i is free; bit 0 never
  uint64_t dirty_mask;         // free pools whose pages may be resident (not purged)
  ArenaHeader* prev;           // owner's arena lists
  ArenaHeader* next;
  ArenaRecord* record;         // type-stable record (global stacks, stats)
  bool on_avail_list;          // owner's list: avail (free_mask != 0) or full
  PoolDesc pools[kPoolsPerArena];

  char* Base() { return reinterpret_cast<char*>(this); }
  bool IsValid() const;
};
static_assert(sizeof(ArenaHeader) <= kPoolSize * kFirstUsablePool, "header fits pool 0");

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

// The run head describing the block at p. REQUIRES: p lies in a run.
inline PoolDesc* RunOf(ArenaHeader* arena, const void* p) {
  PoolDesc* d = &arena->pools[(reinterpret_cast<uintptr_t>(p) >> kPoolShift) & (kPoolsPerArena - 1)];
  return d - d->head_offset;
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
