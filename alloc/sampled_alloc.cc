#include "alloc/sampled_alloc.h"

#include <cstring>

#include "alloc/arena.h"
#include "alloc/free_path.h"
#include "alloc/heap_registry.h"
#include "alloc/heap_profile.h"
#include "alloc/large.h"
#include "alloc/options.h"
#include "alloc/page_map.h"
#include "alloc/stack_trace.h"

namespace strata::internal {

Heap* HeapForSampling() noexcept {
  if (GetOption(Option::kProfileSampleBytes) == 0) return nullptr;
  return ThreadHeap();
}

// In the entry section (config.h), as Sample: the stack capture skips it.
STRATA_ENTRY void* SampleLarge(Heap* h, void* p, size_t n, size_t align, bool zero) noexcept {
  // A countdown drawn at another rate is not a sample: every countdown is
  // drawn afresh at the new one.
  if (GetOption(Option::kProfileSampleBytes) != h->samples().rate()) {
    h->FollowOptions();
    return p;
  }
  h->samples().RedrawLarge();
  if (h->samples().rate() == 0) return p;
  return Sample(p, n, n, align, zero);
}

// In the entry section (config.h): the stack capture below skips it.
STRATA_ENTRY void* Sample(void* b, size_t n, size_t sampled_size, size_t align, bool zero) noexcept {
  const int64_t rate = tls_heap->samples().rate();
  if (rate == 0) return b;
  auto* header = static_cast<ArenaHeader*>(GetPageMap().Lookup(b));
  LargeHeader* large = nullptr;
  size_t fit = 0;
  if (header->kind == kLargeKind) {
    large = reinterpret_cast<LargeHeader*>(header);
  } else {
    fit = RunOf(header, b)->size;
    void* q = LargeAllocate(n, align, zero, /*for_sample=*/true);
    if (q == nullptr) return b;  // no memory (or no room under the limit): b stays, unsampled
    large = static_cast<LargeHeader*>(GetPageMap().Lookup(q));
    FreeFast(b);
    b = q;
  }
  uintptr_t pcs[kMaxStackFrames];
  const size_t depth = CaptureStack(pcs, kMaxStackFrames);
  large->sample = ProfileRecord(n, sampled_size, rate, pcs, depth);
  large->fit_usable = fit;
  return b;
}

}  // namespace strata::internal
