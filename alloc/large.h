// Large allocations (above kMaxMediumSize): each is its own OS mapping,
// aligned to kArenaSize so the page map can point each of its chunks at the
// header at its start. The block follows the header (or sits at the requested
// alignment); its usable size is page-granular. Freed mappings up to a
// bounded size are kept in a small lock-free cache so that repeated large
// allocations do not pay for fresh page faults every time.
#ifndef STRATA_ALLOC_LARGE_H_
#define STRATA_ALLOC_LARGE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"

namespace strata::internal {

// SYNCHRONIZATION
//  - kind, reserved, base: immutable while the mapping exists.
//  - state: CAS kLive -> kFreeing by exactly one freeing thread (a second,
//    concurrent free of the same block fails the CAS and is reported);
//    kCached while in the cache.
//  - offset, usable, sample, fit_usable: written by the thread that
//    allocates from the mapping (fresh or taken from the cache) before the
//    block is handed out; read by the thread that frees it (ordered by the
//    program's own hand-off).
//  - committed: written by whoever owns the mapping (the allocating or
//    resizing thread of the live block, the thread that took it from the cache).
struct alignas(kCacheLine) LargeHeader {
  enum State : uint32_t { kLive = 1, kFreeing = 2, kCached = 3 };

  uint32_t kind;               // kLargeKind (shared prefix with ArenaHeader)
  std::atomic<uint32_t> state;
  size_t reserved;             // bytes mapped from the header on (multiple of kArenaSize)
  size_t offset;               // block address - header address
  size_t usable;               // usable bytes of the block (page-granular end)
  size_t committed;            // bytes from the header to the furthest block end served
                               // (what the memory limit counts, limit.h)
  // A sampled allocation (heap profiling, heap_profile.h) is a large block
  // of its own whatever its size: its free then always reaches the slow
  // path, which finds the sample here. fit_usable is the usable size the
  // block would have had unsampled (what UsableSize and sized frees see);
  // 0 for a block that is not sampled.
  void* sample;
  size_t fit_usable;
  uint32_t cached_at;          // kCached: os::NowMs() when it entered the cache

  // The usable size the program sees.
  size_t ProgramUsable() const { return fit_usable != 0 ? fit_usable : usable; }

  char* Base() { return reinterpret_cast<char*>(this); }
  void* Block() { return Base() + offset; }
};
static_assert(sizeof(LargeHeader) <= kLargeHeaderSize);

// Returns a block of at least `size` bytes aligned to `align`, or nullptr
// when the size cannot be served, the OS refuses, or the memory limit does.
// With zero, the block reads as zeros (fresh mappings already do; recycled
// ones are cleared). `for_sample`: a sampled allocation's block
// (sampled_alloc.h), which the memory limit may refuse silently
// (limit.h, optional) and whose mapping is quarantined when freed.
// REQUIRES: align is a power of two.
void* LargeAllocate(size_t size, size_t align, bool zero, bool for_sample = false);

// Frees the block of h: its mapping enters the cache or is unmapped.
// Returns true when it was cached (then the release policy must run later,
// also if the program never calls strata again: the caller's job).
// REQUIRES: IsLargeBlock(h, p) was true and the state CAS succeeded (see
// LargeTryBeginFree).
// `now` is os::NowMs(), read once by the caller for both.
bool LargeFree(LargeHeader* h, uint64_t now);

// True when p is exactly the live block of h (not an interior pointer).
inline bool IsLargeBlock(LargeHeader* h, const void* p) { return h->Block() == p; }

// Claims h for freeing: kLive -> kFreeing. False means double free.
inline bool LargeTryBeginFree(LargeHeader* h) {
  uint32_t expected = LargeHeader::kLive;
  // Acquire/release: pairs with the release store of kLive in
  // LargeAllocate; makes the one winning free the only one to proceed.
  return h->state.compare_exchange_strong(expected, LargeHeader::kFreeing,
                                          std::memory_order_acq_rel,
                                          std::memory_order_relaxed);
}

// Resizes in place when the mapping allows; returns false otherwise.
bool LargeResizeInPlace(LargeHeader* h, size_t new_size);

// Unmaps every cached large mapping. Returns the bytes given back.
size_t LargeReleaseCache();

// The release policy for the cache: unmaps mappings cached for at least
// delay_ms (delay_ms < 0: never). Returns the bytes given back.
// Thread-safety: any thread; lock-free.
size_t LargeDecay(uint64_t now, int64_t delay_ms);

struct LargeStats {
  uint64_t live_count;     // live large blocks
  uint64_t live_bytes;     // their usable bytes
  uint64_t cached_count;   // mappings waiting in the cache
  uint64_t cached_bytes;   // their reserved bytes
  uint64_t cache_hits;     // allocations served from the cache
  uint64_t mapped_bytes;   // reserved bytes of live and cached large mappings
};
LargeStats GetLargeStats();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_LARGE_H_
