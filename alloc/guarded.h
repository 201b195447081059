// Guarded sampling (guarded_sample_bytes), in the manner of GWP-ASan: a
// sampled allocation of at most a page gets a page of its own in the
// guarded region, its block placed against the guard page after it; its
// free makes the page inaccessible and leaves it in a quarantine, so that
// an overflow, an underflow past the page, or a use after free faults at
// the access, where guarded_fault.h reports it. Which allocation is guarded
// is the sampler's decision (sampling.h, sampled_alloc.h); this file holds
// the slots, their protocol and their metadata. Not a general allocator:
// a few hundred blocks at a time, each costing two system calls.
//
// THE REGION (reserved once, at the first guarded allocation, for
// guarded_slots = N then; never unmapped):
//
//   base                                                              end
//   | guard | slot 0 | guard | slot 1 | ... | guard | slot N-1 | guard | pad |
//
// Every page is a page of its own: slot i is the page at base + (2i+1)
// pages; every guard and every slot not live is PROT_NONE. The pad rounds
// the region up to the page map's 256 KiB chunks (all of it is registered,
// with the one GuardedRegionHeader), and faults like a guard. A live
// block of n bytes sits at the end of its slot's page, rounded down to its
// alignment (that of its class for malloc: 8 or 16; more when asked), so
// an access one past its usable end faults.
//
// A SLOT'S STATES (GuardedSlot::state), each change under g_lock:
//   kUnused -> kLive      an allocation takes a slot never used (first)
//   kFreed  -> kLive      ... or, when none is left, the slot freed longest
//                          ago (the quarantine is a FIFO of freed slots)
//   kLive   -> kFreed     its free: page PROT_NONE, purged, free stack kept
// A slot is in the unused stack or the quarantine FIFO exactly when it is
// not live: unused + live + freed == slots reserved.
#ifndef STRATA_ALLOC_GUARDED_H_
#define STRATA_ALLOC_GUARDED_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"

namespace strata::internal {

// The largest request (and alignment) a guarded slot serves.
inline constexpr size_t kGuardedMaxSize = kPoolSize;
// Frames kept of each guarded block's allocation and free.
inline constexpr size_t kGuardedStackFrames = 32;

// True when an allocation of n bytes aligned to `align` can be guarded.
inline bool GuardedFits(size_t n, size_t align) { return n <= kGuardedMaxSize && align <= kPoolSize; }

// Returns a guarded block of n bytes aligned to `align` (reading as zeros),
// or nullptr when none can be had: the region could not be reserved, every
// slot is live, or the memory limit would be passed (guarded blocks are
// optional: no limit is ever run into for one). pcs/depth: the
// allocation's stack. REQUIRES: GuardedFits(n, align); no strata lock held.
// Thread-safety: any thread.
void* GuardedAllocate(size_t n, size_t align, const uintptr_t* pcs, size_t depth);

// Gives guarded block p, just allocated, the heap profile's record of it
// (ProfileFree's handle): its free takes it out of the profile.
void GuardedSetSample(void* p, void* sample);

// True when p lies in the guarded region (its guards and pad included).
// Two relaxed loads; false while no region is reserved.
bool InGuardedRegion(const void* p);

// For the general free path's Resolve (free_path.h), p in the region:
// true, with the block's usable size in *usable, when p is the start of a
// live or freed guarded block; otherwise reports p as an invalid pointer
// for `op` (misuse.h, with the stack of the block p points into, if any)
// and returns false (count mode; abort mode does not return).
bool GuardedResolve(const void* p, const char* op, size_t* usable);

// True when p, which GuardedResolve accepted, is live now.
bool GuardedIsLive(const void* p);

// Frees guarded block p (GuardedResolve accepted it): its page becomes
// inaccessible and waits in the quarantine. A block already freed is
// reported as a double free, with its allocation's and first free's
// stacks. Thread-safety: any thread; REQUIRES: no strata lock held.
void GuardedFree(void* p, const char* op);

// Reports p, a freed guarded block, as freed twice by `op` (realloc of it).
void GuardedReportFreed(const void* p, const char* op);

// What a fault at address a in the region hit, read racily from the slots
// (a signal handler's view: it takes no lock; the program's own hand-offs
// order the slots' last changes before its access).
struct GuardedFault {
  enum Kind : uint8_t { kUseAfterFree, kOverflow, kUnderflow, kUnusedSlot };
  Kind kind;
  bool block_freed;      // kOverflow/kUnderflow: the block was freed already
  uintptr_t block;       // the block (0 for kUnusedSlot)
  size_t size;           // the size it was requested with
  int64_t offset;        // a - block
  uint32_t alloc_tid, free_tid;
  size_t alloc_depth, free_depth;
  uintptr_t alloc_pcs[kGuardedStackFrames];
  uintptr_t free_pcs[kGuardedStackFrames];
};
// Fills *out for a fault at a. REQUIRES: InGuardedRegion(a).
void DescribeGuardedFault(uintptr_t a, GuardedFault* out);

struct GuardedStats {
  uint64_t allocations;   // guarded blocks handed out since the start
  uint64_t skipped;       // guarded samples not served (no slot, or the limit)
  uint64_t faults;        // faults reported (guarded_fault.h)
  uint64_t slots_total;   // slots reserved (0: no region yet)
  uint64_t slots_live;    // guarded blocks live now
  uint64_t slots_freed;   // freed slots waiting in the quarantine
  uint64_t region_bytes;  // bytes mapped for the region (guards included)
};
GuardedStats GetGuardedStats();

// The fault handler counts a reported fault (guarded_fault.cc).
void CountGuardedFault();

// fork(): the slots' lock is held across fork, so that the child's slots,
// stacks and quarantine are each in one state.
void LockGuardedForFork();
void UnlockGuardedForFork();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_GUARDED_H_
