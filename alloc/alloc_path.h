// The allocation fast paths, inlined into both the public API (strata.cc)
// and the malloc override (override.cc), so that malloc does not pay a call
// into strata::Allocate. The free path is free_path.h.
//
// Allocation code overview (call tree, fast path first):
//
//   AllocateFast(n)
//     n <= 1 KiB:  run = tls_heap's slot for (n + 7) / 8 (its class's current run)
//                  Heap::TryAllocateSmall -> ClassCache::TryPop
//                    its class's list: pop, count the class's countdown
//                    down (checked build: decode the link, check where
//                    it leads, clear it)                        fast path
//     else, or nothing ready: AllocateSlowPath (strata.cc)
//       ThreadHeap() (heap_registry.h: the thread's first allocation gets it a heap)
//       small/medium: Heap::AllocateSlow (the sample when the countdown
//         ran out); an empty list refilled -> TakeFromRuns    [heap.cc]
//         the current run's list | carve more of it | drain the remote
//         queue | a partial run | an empty run kept whole | NewRun
//           OwnedArenas::ClaimRun: pools of an owned arena     [owned_arenas.cc]
//           or AcquireArena -> empty-arena stack | OS reservation [arena.cc]
//             os::MapAligned                                  [os.cc]
//       large: LargeAllocate -> large cache | os::MapAligned  [large.cc]
#ifndef STRATA_ALLOC_ALLOC_PATH_H_
#define STRATA_ALLOC_ALLOC_PATH_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/heap.h"
#include "alloc/heap_registry.h"
#include "alloc/size_class.h"

namespace strata::internal {

// The allocation fast path alone: a block for n bytes, or nullptr when the
// slow path must serve n (too large for the class table, or its class's
// cache has nothing ready or its countdown ran out: the heap profile's
// sampling is the slow path's, see ClassCache). Callers pick their slow
// path (malloc's, or operator new's with its new-handler loop) and
// tail-call it. The empty sentinel heap's lists are all empty: its pops
// miss without writing anything.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* TryAllocateFast(size_t n) noexcept {
  if (ABSL_PREDICT_FALSE(n > kLowTableMax)) return nullptr;
  return tls_heap->TryAllocateSmall(n);
}

// Allocates n bytes by the general path (any size; errno ENOMEM on failure).
ABSL_ATTRIBUTE_NOINLINE void* AllocateSlowPath(size_t n) noexcept;

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* AllocateFast(size_t n) noexcept {
  void* p = TryAllocateFast(n);
  if (ABSL_PREDICT_FALSE(p == nullptr)) return AllocateSlowPath(n);
  return p;
}

// calloc: count * size zeroed bytes (overflow: ENOMEM).
ABSL_ATTRIBUTE_NOINLINE void* AllocateZeroedSlowPath(size_t count, size_t size) noexcept;

// The largest calloc the fast path serves (and clears inline).
inline constexpr size_t kZeroedFastMax = 256;

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* AllocateZeroedFast(size_t count, size_t size) noexcept {
  size_t n;
  if (ABSL_PREDICT_FALSE(__builtin_mul_overflow(count, size, &n) || n > kZeroedFastMax)) {
    return AllocateZeroedSlowPath(count, size);
  }
  void* p = tls_heap->TryAllocateSmall(n);
  if (ABSL_PREDICT_FALSE(p == nullptr)) return AllocateZeroedSlowPath(count, size);
  // Small blocks are whole 8-byte words: clear them inline, no memset call.
  auto* w = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < (n + 7) / 8; ++i) w[i] = 0;
  return p;
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ALLOC_PATH_H_
