// The allocation and free fast paths, inlined into both the public API
// (strata.cc) and the malloc override (override.cc), so that malloc/free
// do not pay a call into strata::Allocate/Deallocate.
//
// Allocation code overview (call tree, fast path first):
//
//   AllocateFast(n)
//     n <= 1 KiB:  class = kLowClassTable[(n + 7) / 8]
//                  tls_heap->Allocate(class)                    [heap.h, inline]
//                    current_[class]->free pop (decode link),
//                    clear the link, ++used                      fast path
//                    Heap::AllocateSlow -> Refill               [heap.cc]
//                      carve more of the current run | drain the remote queue |
//                      a partial run | NewRun -> pools of an owned arena
//                        AcquireArena -> empty-arena stack | OS reservation [arena.cc]
//                          os::MapAligned                       [os.cc]
//     n > 1 KiB:   AllocateBeyondSmall (strata.cc): medium classes, or
//                  LargeAllocate -> large cache | os::MapAligned [large.cc]
//
//   FreeFast(p)
//     page map: is p in an arena?                               [page_map.h]
//     descriptor of p's pool -> its run head (arena + 64 * pool, head_offset)
//     owner == tls_heap, p is a carved block start, p does not look free
//       -> Heap::FreeLocal: push (encoded link), --used         fast path
//     anything else -> FreeSlow (strata.cc): null, foreign memory, large
//       blocks, remote frees (batched to the owner's MPSC queue), invalid
//       pointers and suspected double frees (checked, reported)
#ifndef STRATA_ALLOC_FAST_PATH_H_
#define STRATA_ALLOC_FAST_PATH_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/heap.h"
#include "alloc/page_map.h"
#include "alloc/size_class.h"

namespace strata::internal {

// The slow halves, in strata.cc.
// Allocates n > kLowTableMax bytes (medium classes or a large mapping).
ABSL_ATTRIBUTE_NOINLINE void* AllocateBeyondSmall(size_t n) noexcept;
// Frees p by the general path (validation, reporting, remote and large
// frees). `op` names the entry point for messages; a p that does not fit
// `max_size` bytes is reported as a size mismatch.
ABSL_ATTRIBUTE_NOINLINE void FreeSlow(void* p, const char* op, size_t max_size) noexcept;

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* AllocateFast(size_t n) noexcept {
  if (ABSL_PREDICT_FALSE(n > kLowTableMax)) return AllocateBeyondSmall(n);
  return tls_heap->Allocate(kLowClassTable[(n + kSmallStep - 1) / kSmallStep], n);
}

// max_size: the size the caller says it allocated (sized free), or
// SIZE_MAX; op: the entry point's name, for the slow path's messages.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeFast(void* p, size_t max_size = SIZE_MAX,
                                                  const char* op = "free") noexcept {
  // Null, foreign memory and large blocks are not in an arena.
  if (ABSL_PREDICT_FALSE(!GetPageMap().InArena(p))) return FreeSlow(p, op, max_size);
  const uintptr_t desc_offset = DescOffset(p);
  // Pool 0 is the arena header: never a block.
  if (ABSL_PREDICT_FALSE(desc_offset == 0)) return FreeSlow(p, op, max_size);
  ArenaHeader* arena = ArenaOf(p);
  PoolDesc* d = reinterpret_cast<PoolDesc*>(arena->Base() + desc_offset);
  d -= d->head_offset;
  Heap* self = tls_heap;
  // Acquire pairs with the release store of owner when the arena changed
  // hands. Another owner: a remote free, batched by the slow path.
  if (ABSL_PREDICT_FALSE(arena->owner.load(std::memory_order_acquire) != self)) {
    return FreeSlow(p, op, max_size);
  }
  // A valid block starts at a multiple of the block size from the run start
  // and has been carved (a free pool has carved == 0: nothing passes); a
  // block whose first word decodes into its own arena may already be free.
  const uint32_t offset =
      static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p) & (kArenaSize - 1)) - d->start;
  const auto block = static_cast<uint32_t>((uint64_t{offset} * d->div_magic) >> 32);
  if (ABSL_PREDICT_FALSE(block * d->size != offset || block >= d->carved ||
                         (max_size != SIZE_MAX && max_size > d->size))) {
    return FreeSlow(p, op, max_size);
  }
  const uintptr_t key = ListKey();
  if (ABSL_PREDICT_FALSE(LooksFree(p, key))) return FreeSlow(p, op, max_size);
  self->FreeLocal(d, p, key);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FAST_PATH_H_
