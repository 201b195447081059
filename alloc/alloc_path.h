// The allocation fast paths, inlined into both the public API (strata.cc)
// and the malloc override (override.cc), so that malloc does not pay a call
// into strata::Allocate. The free path is free_path.h.
//
// Allocation code overview (call tree, fast path first):
//
//   AllocateFast(n)
//     n <= 1 KiB:  run = tls_heap's slot for (n + 7) / 8 (its class's current run)
//                  Heap::TryAllocateSmall -> ClassRuns -> Run::TryPop
//                    pop (decode the link, check it stays in the arena),
//                    clear it, ++used; the sampling countdown    fast path
//     else, or nothing ready: AllocateSlowPath (strata.cc)
//       ThreadHeap() (heap_registry.h: the thread's first allocation gets it a heap)
//       small/medium: Heap::AllocateSlow -> Refill             [heap.cc]
//         carve more of the current run | drain the remote queue |
//         a partial run | an empty run kept whole | NewRun
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
// slow path must serve n (too large for the small table, or the current run
// has nothing ready). Callers pick their slow path (malloc's, or operator
// new's with its new-handler loop) and tail-call it.
//
// Every allocation counts its bytes down towards the next heap-profile
// sample (sampling.h), here once a block is in hand: two instructions
// (subtract from memory, branch on the sign), whether profiling is on or
// off. The empty sentinel heap never gets here (its pops always miss), so
// it is never written. SampleInstead never returns null (it keeps b when
// it cannot do better), which lets every caller tail-call it.
ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_RETURNS_NONNULL void* SampleInstead(void* b,
                                                                           size_t n) noexcept;
// The same for calloc: the block returned is zeroed.
ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_RETURNS_NONNULL void* SampleZeroedInstead(void* b,
                                                                                 size_t n) noexcept;
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* TryAllocateFast(size_t n) noexcept {
  if (ABSL_PREDICT_FALSE(n > kLowTableMax)) return nullptr;
  Heap* h = tls_heap;
  void* b = h->TryAllocateSmall(n);
  if (ABSL_PREDICT_FALSE(b == nullptr)) return nullptr;
  if (h->samples().CountDown(n)) return SampleInstead(b, n);
  return b;
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

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* AllocateZeroedFast(size_t count, size_t size) noexcept {
  size_t n;
  if (ABSL_PREDICT_FALSE(__builtin_mul_overflow(count, size, &n) || n > 256)) {
    return AllocateZeroedSlowPath(count, size);
  }
  Heap* h = tls_heap;
  void* p = h->TryAllocateSmall(n);
  if (ABSL_PREDICT_FALSE(p == nullptr)) return AllocateZeroedSlowPath(count, size);
  if (h->samples().CountDown(n)) return SampleZeroedInstead(p, n);
  // Small blocks are whole 8-byte words: clear them inline, no memset call.
  auto* w = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < (n + 7) / 8; ++i) w[i] = 0;
  return p;
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ALLOC_PATH_H_
