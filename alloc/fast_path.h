// The allocation and free fast paths, inlined into both the public API
// (strata.cc) and the malloc override (override.cc), so that malloc/free
// do not pay a call into strata::Allocate/Deallocate.
//
// Allocation code overview (call tree, fast path first):
//
//   AllocateFast(n)
//     n <= 1 KiB:  run = tls_heap->by_size_[(n + 7) / 8] (its class's current run)
//                  TryAllocateSmall                             [heap.h, inline]
//                    run->free pop (decode the link, check
//                    it stays in the arena), clear it, ++used    fast path
//                    Heap::AllocateSlow -> Refill               [heap.cc]
//                      carve more of the current run | drain the remote queue |
//                      a partial run | NewRun -> pools of an owned arena
//                        AcquireArena -> empty-arena stack | OS reservation [arena.cc]
//                          os::MapAligned                       [os.cc]
//     n > 1 KiB:   AllocateSlowPath (strata.cc): medium classes, or
//                  LargeAllocate -> large cache | os::MapAligned [large.cc]
//
//   FreeFast(p)
//     page map: is p in an arena?                               [page_map.h]
//     descriptor of p's pool -> its run head (arena + 128 * pool, own_head_bytes)
//     owner == tls_heap, p is a carved block start, p does not look free
//       -> Heap::FreeLocal: push (encoded link, free_link.h), --used  fast path
//     anything else -> FreeSlow (free_slow.cc): null, foreign memory, large
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

// The slow halves: the frees' in free_slow.cc, the allocations' in strata.cc.
// Frees p by the general path (validation, reporting, remote and large
// frees). `op` names the entry point for messages; a p that does not fit
// `max_size` bytes is reported as a size mismatch.
ABSL_ATTRIBUTE_NOINLINE void FreeSlow(void* p, const char* op, size_t max_size) noexcept;

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
  if (h->CountDownSample(n)) return SampleInstead(b, n);
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
  if (h->CountDownSample(n)) return SampleZeroedInstead(p, n);
  // Small blocks are whole 8-byte words: clear them inline, no memset call.
  auto* w = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < (n + 7) / 8; ++i) w[i] = 0;
  return p;
}

// The local free, once p's arena is known to belong to `self`: p must be a
// carved block start of its run (a free pool has carved == 0: nothing
// passes) that does not look free already; anything else goes to FreeSlow.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeOwned(Heap* self, void* p, size_t max_size,
                                                   const char* op) noexcept {
  const uintptr_t desc_offset = DescOffset(p);
  // Pool 0 is the arena header (and pool 1's zero descriptor validates
  // nothing, see InBlockPool): never a block.
  if (ABSL_PREDICT_FALSE(desc_offset == 0)) return FreeSlow(p, op, max_size);
  PoolDesc* d = reinterpret_cast<PoolDesc*>(ArenaOf(p)->Base() + desc_offset);
  // The owner's line only (see PoolDesc::own_start).
  d = d->OwnHead();
  if (ABSL_PREDICT_FALSE(!d->run.HoldsCarved(p) ||
                         (max_size != SIZE_MAX && !SizedFreeFits(d->size, max_size)))) {
    return FreeSlow(p, op, max_size);
  }
  // A block on a free list, or travelling back from another thread, looks
  // free (free_link.h): the slow path confirms and reports it.
  if (ABSL_PREDICT_FALSE(LooksFree(p, self->link_key()))) return FreeSlow(p, op, max_size);
  self->FreeLocal(d, p);
}

// p's arena is not in self's arena cache: looks it up in the page map; if
// self owns it, remembers it and frees locally, else batches p to its owner
// (free_slow.cc).
ABSL_ATTRIBUTE_NOINLINE void FreeUncached(Heap* self, void* p, size_t max_size, const char* op) noexcept;

// max_size: the size the caller says it allocated (sized free), or
// SIZE_MAX; op: the entry point's name, for the slow path's messages.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void FreeFast(void* p, size_t max_size = SIZE_MAX,
                                                  const char* op = "free") noexcept {
  Heap* self = tls_heap;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  // A hit means p lies in an arena this heap owns (so it is strata's, not
  // null, not foreign, not large): no page-map lookup, no owner load.
  if (ABSL_PREDICT_FALSE(self->ArenaCacheSlot(a) != (a & ~(kArenaSize - 1)))) {
    return FreeUncached(self, p, max_size, op);
  }
  FreeOwned(self, p, max_size, op);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FAST_PATH_H_
