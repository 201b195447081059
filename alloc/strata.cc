// strata's public entry points (see strata.h). The fast paths live in
// alloc_path.h and free_path.h, shared with the malloc override; this file
// holds the allocation slow halves and everything else: calloc, realloc,
// aligned allocation and frees, usable size, ReleaseMemory.
#include "alloc/strata.h"

#include <errno.h>

#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/alloc_path.h"
#include "alloc/free_path.h"
#include "alloc/heap.h"
#include "alloc/heap_registry.h"
#include "alloc/init.h"
#include "alloc/large.h"
#include "alloc/misuse.h"
#include "alloc/page_map.h"
#include "alloc/release.h"
#include "alloc/sampled_alloc.h"
#include "alloc/size_class.h"
#include "alloc/stats.h"
#include "threading/owner_lock.h"

namespace strata {
namespace {

using internal::ArenaHeader;
using internal::Heap;
using internal::kClasses;
using internal::LargeHeader;
using internal::PoolDesc;
using internal::Resolve;
using internal::Resolved;
using internal::FreeResolved;
using internal::UsableResolved;

// A block of class cls for a request of n bytes (aligned to `align`,
// zeroed when `zero`) from the calling thread's heap, given one on first
// need; errno ENOMEM on failure. `tried`: the inlined fast path already
// tried the thread's class cache for it (its pop was counted then). In the
// entry section (config.h): it calls the sampler, whose stack must start at
// the program's frame.
STRATA_ENTRY void* AllocateInClass(size_t cls, size_t n, size_t align, bool zero, bool tried) {
  Heap* h = internal::ThreadHeap();
  if (ABSL_PREDICT_FALSE(h == nullptr)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (!tried) {
    if (void* b = h->TryAllocate(cls)) {
      if (zero) memset(b, 0, n);
      return b;
    }
  }
  const Heap::Allocation a = h->AllocateSlow(cls, n);
  if (a.block == nullptr) return nullptr;
  if (zero) memset(a.block, 0, n);
  if (ABSL_PREDICT_FALSE(a.sample)) return internal::Sample(a.block, n, kClasses[cls].size, align, zero);
  return a.block;
}

ABSL_ATTRIBUTE_NOINLINE void* AllocateLargeOrFail(size_t size, size_t align, bool zero = false) {
  void* p = internal::LargeAllocate(size, align, zero);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// The smallest class >= size whose blocks are all aligned to `align`, or 0.
size_t AlignedClass(size_t size, size_t align) {
  if (align > internal::kPoolSize || size > internal::kMaxMediumSize) return 0;
  const size_t rounded = (size + align - 1) & ~(align - 1);
  if (rounded > internal::kMaxMediumSize) return 0;
  for (size_t c = internal::SizeToClass(rounded); c < internal::kNumClasses; ++c) {
    // Runs start on a pool boundary, so a class whose size is a multiple of
    // align (<= pool size) places every block on an align boundary.
    if (kClasses[c].size % align == 0) return c;
  }
  return 0;
}

// Start-up lives in init.cc, which nothing calls: its constructor runs it.
// Bazel links it always (alwayslink); from a static archive (CMake's
// libstrata.a, tools' static links) the linker takes only the objects a
// program references, so this reference brings init.o wherever the API
// comes, and with it the release engine and every other start-up step.
[[gnu::used]] void (*const kInitAnchor)() = &internal::Initialize;

}  // namespace

}  // namespace strata

namespace strata::internal {

// The slow halves and the public entry points are in the entry section
// (config.h), so that the heap profiler's stacks start at the program.
STRATA_ENTRY void* AllocateSlowPath(size_t n) noexcept {
  if (n <= kMaxMediumSize) {
    // The fast path (TryAllocateFast) tried the class cache up to kLowTableMax.
    return AllocateInClass(SizeToClass(n), n, kMaxNaturalAlign, /*zero=*/false, n <= kLowTableMax);
  }
  return MaybeSampleLarge(AllocateLargeOrFail(n, kMaxNaturalAlign), n, kMaxNaturalAlign, /*zero=*/false);
}

STRATA_ENTRY void* AllocateZeroedSlowPath(size_t count, size_t size) noexcept {
  size_t bytes;
  if (ABSL_PREDICT_FALSE(__builtin_mul_overflow(count, size, &bytes))) {
    errno = ENOMEM;
    return nullptr;
  }
  if (bytes > kMaxMediumSize) {
    // Fresh mappings are already zero: only recycled ones are cleared, so a
    // huge calloc does not fault in every page.
    return MaybeSampleLarge(AllocateLargeOrFail(bytes, kMaxNaturalAlign, /*zero=*/true), bytes,
                            kMaxNaturalAlign, /*zero=*/true);
  }
  // The fast path (AllocateZeroedFast) tried the class cache up to kZeroedFastMax.
  return AllocateInClass(SizeToClass(bytes), bytes, kMaxNaturalAlign, /*zero=*/true, bytes <= kZeroedFastMax);
}

}  // namespace strata::internal

namespace strata {

STRATA_ENTRY void* Allocate(size_t size) noexcept { return internal::AllocateFast(size); }

STRATA_ENTRY void* AllocateZeroed(size_t count, size_t size) noexcept {
  return internal::AllocateZeroedFast(count, size);
}

STRATA_ENTRY void* AllocateAligned(size_t alignment, size_t size) noexcept {
  if (ABSL_PREDICT_FALSE(alignment == 0 || (alignment & (alignment - 1)) != 0 ||
                         alignment > kMaxAlignment)) {
    errno = EINVAL;
    return nullptr;
  }
  if (alignment <= 8) return internal::AllocateFast(size);
  if (size == 0) size = 1;
  if (const size_t cls = AlignedClass(size, alignment)) {
    return AllocateInClass(cls, size, alignment, /*zero=*/false, /*tried=*/false);
  }
  return internal::MaybeSampleLarge(AllocateLargeOrFail(size, alignment), size, alignment, /*zero=*/false);
}

STRATA_ENTRY void Deallocate(void* p) noexcept { internal::FreeFast(p); }

STRATA_ENTRY void DeallocateSized(void* p, size_t size) noexcept {
  internal::FreeFast(p, size, "free_sized");
}

namespace {

// True (and reported) when p, aligned to `alignment`, cannot have been
// allocated with it: an alignment above a page is served by a large block
// alone (AlignedClass), so a block of a run (whose start may happen to sit
// on such a boundary) was allocated without it. Both builds: a page-map
// lookup on the aligned frees' rare alignments, no load of the block.
bool NotAllocatedWithAlignment(const void* p, size_t alignment, const char* op) {
  if (ABSL_PREDICT_TRUE(alignment <= internal::kPoolSize) || !internal::GetPageMap().InArena(p)) return false;
  internal::ReportMisuse(p, internal::Misuse::kNotAlignedBlock, op);
  return true;
}

}  // namespace

STRATA_ENTRY void DeallocateAligned(void* p, size_t alignment) noexcept {
  if (ABSL_PREDICT_FALSE(reinterpret_cast<uintptr_t>(p) & (alignment - 1))) {
    internal::ReportMisuse(p, internal::Misuse::kMisaligned, "free_aligned");
    return;
  }
  if (ABSL_PREDICT_FALSE(NotAllocatedWithAlignment(p, alignment, "free_aligned"))) return;
  internal::FreeFast(p, SIZE_MAX, "free_aligned");
}

STRATA_ENTRY void DeallocateAlignedSized(void* p, size_t size, size_t alignment) noexcept {
  if (p == nullptr) return;  // as free(NULL), whatever the size and alignment
  if (ABSL_PREDICT_FALSE(alignment == 0 || (alignment & (alignment - 1)) != 0)) {
    internal::ReportMisuse(p, internal::Misuse::kBadAlignment, "free_aligned_sized");
    return;
  }
  if (ABSL_PREDICT_FALSE(reinterpret_cast<uintptr_t>(p) & (alignment - 1))) {
    internal::ReportMisuse(p, internal::Misuse::kMisaligned, "free_aligned_sized");
    return;
  }
  if (ABSL_PREDICT_FALSE(NotAllocatedWithAlignment(p, alignment, "free_aligned_sized"))) return;
  // An aligned request was served rounded up to its alignment (up to a
  // page; see AlignedClass): the size is judged rounded the same way.
  const size_t unit = alignment < internal::kPoolSize ? alignment : internal::kPoolSize;
  const size_t n = size == 0 ? 1 : size;
  const size_t rounded = n + (unit - 1) < n ? size : (n + unit - 1) & ~(unit - 1);
  internal::FreeFast(p, rounded, "free_aligned_sized");
}

STRATA_ENTRY void* Reallocate(void* p, size_t size) noexcept {
  if (p == nullptr) return internal::AllocateFast(size);
  if (size == 0) {
    Deallocate(p);
    return nullptr;
  }
  const Resolved r = Resolve(p, "realloc");
  if (!r.ok()) {
    errno = EINVAL;  // count mode: the bad pointer is left alone
    return nullptr;
  }
  if (ABSL_PREDICT_FALSE(internal::LooksAlreadyFree(r, p))) {
    internal::ReportAlreadyFree(r, p, "realloc");
    errno = EINVAL;  // count mode: the freed block is left alone
    return nullptr;
  }
  const size_t usable = UsableResolved(r);
  if (r.large != nullptr) {
    if (size > internal::kMaxMediumSize && internal::LargeResizeInPlace(r.large, size)) return p;
  } else if (size <= usable && size > usable / 2) {
    return p;  // same block still fits and is not mostly wasted
  }
  void* q = internal::AllocateFast(size);
  if (q == nullptr) return nullptr;  // errno is ENOMEM; p untouched
  memcpy(q, p, size < usable ? size : usable);
  FreeResolved(r, p, "realloc");
  return q;
}

STRATA_ENTRY size_t UsableSize(const void* p) noexcept {
  if (p == nullptr) return 0;
  const Resolved r = Resolve(p, "usable_size");
  return r.ok() ? UsableResolved(r) : 0;
}

STRATA_ENTRY size_t ReleaseMemory() noexcept {
  if (Heap* self = internal::ThreadHeap()) {
    // What we hold for others is handed over (to dead threads' heaps too,
    // which are absorbed next); dead threads' memory becomes ours, and the
    // blocks parked in free heaps' queues are forwarded; then every block
    // sent to us is freed (twice: draining can forward blocks back to us).
    threading::OwnerLockHolder hold(&self->slow_lock_);  // our slow path (heap.h)
    self->FlushOutgoing();
    self->CollectOrphans(~size_t{0});
    for (int round = 0; round < 2; ++round) {
      self->DrainRemote();
      self->FlushOutgoing();
    }
    // Our spare arenas go to the shared stack, to be purged or unmapped.
    self->ReleaseOverBudget(0, internal::os::NowMs());
  }
  return internal::ReleaseNow().Total();
}

bool Owns(const void* p) noexcept {
  void* header = internal::GetPageMap().Lookup(p);
  if (header == nullptr) return false;
  auto* arena = static_cast<ArenaHeader*>(header);
  if (arena->kind == internal::kArenaKind || arena->kind == internal::kGuardedKind) return true;
  auto* large = static_cast<LargeHeader*>(header);
  const uintptr_t base = reinterpret_cast<uintptr_t>(large);
  const uintptr_t q = reinterpret_cast<uintptr_t>(p);
  return q >= base && q - base < large->reserved;
}

}  // namespace strata

extern "C" {

STRATA_ENTRY void* strata_malloc(size_t size) { return strata::Allocate(size); }
STRATA_ENTRY void* strata_calloc(size_t count, size_t size) { return strata::AllocateZeroed(count, size); }
STRATA_ENTRY void* strata_realloc(void* p, size_t size) { return strata::Reallocate(p, size); }
STRATA_ENTRY void* strata_aligned_alloc(size_t alignment, size_t size) {
  return strata::AllocateAligned(alignment, size);
}
void strata_free(void* p) { strata::Deallocate(p); }
void strata_free_sized(void* p, size_t size) { strata::DeallocateSized(p, size); }
void strata_free_aligned_sized(void* p, size_t alignment, size_t size) {
  strata::DeallocateAlignedSized(p, size, alignment);
}
size_t strata_usable_size(const void* p) { return strata::UsableSize(p); }
int strata_owns(const void* p) { return strata::Owns(p) ? 1 : 0; }
size_t strata_release_memory(void) { return strata::ReleaseMemory(); }

}  // extern "C"
