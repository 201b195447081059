// Sampled allocations (heap profiling and guarded sampling): the
// countdown's slow side. A sample for guarded sampling gets a guarded slot
// (guarded.h) when it fits one (at most a page) and one is free; a
// profiled allocation is served as a large block of its own (large.h), or
// by its guarded slot when it is both, its stack
// recorded in the profile (heap_profile.h) and the record's handle kept in
// the block's header, so that its free, which always takes the slow path
// for a large block, takes it out of the profile. No free fast path pays
// for profiling (tcmalloc gives sampled objects spans of their own for the
// same reason). The block the fast path had popped goes back at once.
#ifndef STRATA_ALLOC_SAMPLED_ALLOC_H_
#define STRATA_ALLOC_SAMPLED_ALLOC_H_

#include <cstddef>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/config.h"
#include "alloc/heap.h"

namespace strata::internal {

// Takes the place of block b, just allocated for n bytes with alignment
// `align` (zeroed when `zero`), whose countdown ran out: returns a guarded
// or profiled block (b freed), or b itself when b is large already (then
// only marked), when the sample turns out to be for neither (sampling.h's
// split), or when the block cannot be had (no guarded slot free, memory
// refused: b stays, unsampled). `sampled_size` is the size whose probability drew the
// sample: the class's size for a block of a class, n for a large block.
ABSL_ATTRIBUTE_NOINLINE void* Sample(void* b, size_t n, size_t sampled_size, size_t align,
                                     bool zero) noexcept;

// A large block's countdown ran out (heap h): draws the next one and
// samples p when the profile is on.
ABSL_ATTRIBUTE_NOINLINE void* SampleLarge(Heap* h, void* p, size_t n, size_t align, bool zero) noexcept;

// Heaps come to exist on a thread's first small or medium allocation; a
// thread that has only made large ones gets one here when profiling is on,
// so that its bytes count down too.
ABSL_ATTRIBUTE_NOINLINE Heap* HeapForSampling() noexcept;

// A large allocation's countdown: p (may be nullptr) was allocated for n
// bytes. (Blocks of a class count down in their class cache: the heap's
// slow path says which one is sampled, Heap::Allocation.)
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* MaybeSampleLarge(void* p, size_t n, size_t align,
                                                           bool zero) noexcept {
  if (ABSL_PREDICT_FALSE(p == nullptr)) return p;
  Heap* h = ThreadHeapIfAny();
  if (ABSL_PREDICT_FALSE(h == nullptr)) {
    h = HeapForSampling();
    if (h == nullptr) return p;
  }
  if (h->samples().CountDown(n)) return SampleLarge(h, p, n, align, zero);
  return p;
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_SAMPLED_ALLOC_H_
