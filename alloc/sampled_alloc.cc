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

// In the entry section (config.h): the stack capture below skips it.
STRATA_ENTRY void* Sample(void* b, size_t n, size_t align, bool zero) noexcept {
  Heap* h = tls_heap;
  const int64_t rate = GetOption(Option::kProfileSampleBytes);
  h->samples().Reset(rate);
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
  large->sample = ProfileRecord(n, rate, pcs, depth);
  large->fit_usable = fit;
  return b;
}

STRATA_ENTRY void* SampleInstead(void* b, size_t n) noexcept {
  return Sample(b, n, kMaxNaturalAlign, /*zero=*/false);
}

STRATA_ENTRY void* SampleZeroedInstead(void* b, size_t n) noexcept {
  void* p = Sample(b, n, kMaxNaturalAlign, /*zero=*/true);
  // b itself (kept) is not cleared yet.
  if (p == b) memset(p, 0, n);
  return p;
}

}  // namespace strata::internal
