#include "alloc/sampled_alloc.h"

#include <cstring>

#include "alloc/arena.h"
#include "alloc/free_path.h"
#include "alloc/guarded.h"
#include "alloc/heap_registry.h"
#include "alloc/heap_profile.h"
#include "alloc/large.h"
#include "alloc/options.h"
#include "alloc/page_map.h"
#include "alloc/stack_trace.h"

namespace strata::internal {

Heap* HeapForSampling() noexcept {
  // (Guarded sampling serves blocks of at most a page: large ones are the
  // profile's alone.)
  if (GetOption(Option::kProfileSampleBytes) == 0) return nullptr;
  return ThreadHeap();
}

// In the entry section (config.h), as Sample: the stack capture skips it.
STRATA_ENTRY void* SampleLarge(Heap* h, void* p, size_t n, size_t align, bool zero) noexcept {
  // A countdown drawn at other rates is not a sample: every countdown is
  // drawn afresh at the new ones.
  if (!h->samples().Follows(GetOption(Option::kProfileSampleBytes), GetOption(Option::kGuardedSampleBytes))) {
    h->FollowOptions();
    return p;
  }
  h->samples().RedrawLarge();
  if (h->samples().rate() == 0) return p;
  return Sample(p, n, n, align, zero);
}

// In the entry section (config.h): the stack capture below skips it.
STRATA_ENTRY void* Sample(void* b, size_t n, size_t sampled_size, size_t align, bool zero) noexcept {
  SampleCountdown& samples = tls_heap->samples();
  if (samples.rate() == 0) return b;
  // The countdown serves the heap profile and guarded sampling together:
  // which of them (or both) this sample is for (sampling.h).
  const SampleChoice choice = samples.Choose(sampled_size);
  if (!choice.profile && !choice.guard) return b;
  auto* header = static_cast<ArenaHeader*>(GetPageMap().Lookup(b));
  // Only a block of at most a page (never a large one) can be guarded.
  const bool guard = choice.guard && header->kind == kArenaKind && GuardedFits(n, align);
  if (!choice.profile && !guard) return b;
  uintptr_t pcs[kMaxStackFrames];
  const size_t depth = CaptureStack(pcs, kMaxStackFrames);
  if (guard) {
    // A page of its own between guards (guarded.h): b goes back. Its page
    // reads as zeros, as a zeroed allocation must.
    if (void* g = GuardedAllocate(n, align, pcs, depth)) {
      if (choice.profile) {
        GuardedSetSample(g, ProfileRecord(n, sampled_size, samples.profile_rate(), pcs, depth));
      }
      FreeFast(b);
      return g;
    }
  }
  if (!choice.profile) return b;  // no slot free: the block is simply not guarded
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
  large->sample = ProfileRecord(n, sampled_size, samples.profile_rate(), pcs, depth);
  large->fit_usable = fit;
  return b;
}

}  // namespace strata::internal
