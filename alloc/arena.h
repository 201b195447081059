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
// Thread-safety: every field is owner-only (the heap that owns the arena),
// except that anyone may read `state`, `size_class` and `head_offset` of a
// run holding a live block they own, which do not change while it lives.
struct PoolDesc {
  FreeBlock* free;     // free blocks already carved, ending in kFreeListEnd
  uint32_t used;       // blocks handed out (to the program or in flight back)
  uint32_t carved;     // blocks carved so far, from the run start (lazy)
  uint16_t capacity;   // blocks the run holds
  uint8_t size_class;  // class of the run (0 when free)
  uint8_t run_pools;   // pools in the run (head only)
  uint8_t head_offset; // kTail: this - head_offset == head; 0 otherwise
  PoolState state;
  PoolList list;
  uint8_t index;       // pool index in its arena
  PoolDesc* prev;      // owner's partial list
  PoolDesc* next;

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
//    arena source (before any block of it is handed out) and set to null
//    when the empty arena goes back; read with acquire by any thread freeing
//    a block of the arena. While a block of the arena is live, owner does
//    not change (a heap that dies keeps its arenas; see heap.h).
//  - every other field: owner-only, plain.
struct alignas(kCacheLine) ArenaHeader {
  uint32_t kind;               // kArenaKind (shared prefix with LargeHeader)
  uint32_t used_pools;         // pools that are part of runs
  std::atomic<Heap*> owner;    // heap whose pools these are (null: empty)
  uint64_t free_mask;          // bit i set <=> pool i is free; bit 0 never
  ArenaHeader* prev;           // owner's arena lists
  ArenaHeader* next;
  ArenaRecord* record;         // type-stable record (global stacks, stats)
  bool on_avail_list;          // owner's list: avail (free_mask != 0) or full
  PoolDesc pools[kPoolsPerArena];

  char* Base() { return reinterpret_cast<char*>(this); }
  bool IsValid() const;
};
static_assert(sizeof(ArenaHeader) <= kPoolSize * kFirstUsablePool, "header fits pool 0");

// Type-stable bookkeeping for an arena; never freed (see meta_alloc.h).
struct alignas(kCacheLine) ArenaRecord {
  std::atomic<ArenaRecord*> stack_next;  // link in the empty-arena stack
  ArenaRecord* all_next;                 // link in the list of all records
  ArenaHeader* arena;                    // the arena (fixed for life)
  bool purged;                           // pools given back to the OS since it was last used
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

// Returns an empty arena owned by `owner` (all usable pools free), or
// nullptr when the OS refuses memory. Thread-safety: any thread; lock-free
// when an empty arena is available, else takes the reservation spin lock.
ArenaHeader* AcquireArena(Heap* owner);

// Returns an empty arena (used_pools == 0) to the source.
// REQUIRES: caller owns it and no block of it is live or in flight.
void ReleaseArena(ArenaHeader* arena);

// Calls fn(arena) for every arena ever mapped (empty ones included).
// Racy snapshot when other threads allocate; exact when quiescent.
template <typename Fn>
void ForEachArena(Fn fn);

// fork(): the reservation lock is held across fork (see fork.h).
void LockArenaSourceForFork();
void UnlockArenaSourceForFork();

// Gives the pool memory of every empty arena back to the OS (madvise; the
// arenas stay mapped and reusable, their headers resident). Returns the bytes
// purged. Thread-safety: any thread; lock-free.
size_t PurgeEmptyArenas();

struct ArenaSourceStats {
  uint64_t arenas_mapped;    // arenas the OS has given strata
  uint64_t arenas_empty;     // of those, waiting in the empty stack
  uint64_t reservations;     // OS mappings made for arenas
};
ArenaSourceStats GetArenaSourceStats();

ArenaRecord* AllArenaRecords();

template <typename Fn>
void ForEachArena(Fn fn) {
  for (ArenaRecord* r = AllArenaRecords(); r != nullptr; r = r->all_next) fn(r->arena);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ARENA_H_
