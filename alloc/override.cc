// The drop-in malloc: glibc's allocation API, the glibc-internal __libc_*
// entry points and every C++ operator new/delete, all served by strata.
// Linked into a program (Bazel `malloc = "//alloc:malloc"`, the static
// archive) or preloaded (libstrata.so), it replaces glibc's allocator.
//
// Memory strata does not own: only glibc's own blocks are accepted, and go
// back to glibc (foreign.h); any other pointer is reported.
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/alloc_path.h"
#include "alloc/free_path.h"
#include "alloc/foreign.h"
#include "alloc/foreign_hook.h"
#include "alloc/init.h"
#include "alloc/misuse.h"
#include "alloc/new_failure.h"
#include "alloc/page_map.h"
#include "alloc/stats.h"
#include "alloc/strata.h"

namespace strata::internal {
namespace {

bool IsOurs(const void* p) { return GetPageMap().Lookup(p) != nullptr; }

// ---- operator new (its failure protocol: new_failure.h) -----------------

// operator new's slow path: the general allocator, then (on failure) the
// new-handler loop. Out of line so that operator new's fast path is a leaf
// that tail-calls it.
STRATA_ENTRY ABSL_ATTRIBUTE_NOINLINE void* NewSlow(size_t size) {
  void* p = AllocateSlowPath(size);
  return p != nullptr ? p : NewFailed(size, 0, false);
}

STRATA_ENTRY ABSL_ATTRIBUTE_NOINLINE void* NewNothrowSlow(size_t size) noexcept {
  void* p = AllocateSlowPath(size);
  return p != nullptr ? p : NewFailed(size, 0, true);  // never throws when nothrow
}

inline void* New(size_t size) {
  void* p = TryAllocateFast(size);
  return p != nullptr ? p : NewSlow(size);
}
inline void* NewNothrow(size_t size) noexcept {
  void* p = TryAllocateFast(size);
  return p != nullptr ? p : NewNothrowSlow(size);
}
inline void* NewAligned(size_t size, std::align_val_t align) {
  void* p = strata::AllocateAligned(static_cast<size_t>(align), size);
  return p != nullptr ? p : NewFailed(size, static_cast<size_t>(align), false);
}
inline void* NewAlignedNothrow(size_t size, std::align_val_t align) noexcept {
  void* p = strata::AllocateAligned(static_cast<size_t>(align), size);
  return p != nullptr ? p : NewFailed(size, static_cast<size_t>(align), true);
}

}  // namespace

// Start-up step 2 (init.h): glibc's blocks go back to glibc.
void InstallDropIn() { SetForeignFreeHook(&FreeGlibcBlock); }

}  // namespace strata::internal

using strata::internal::GlibcUsableSize;
using strata::internal::IsOurs;

extern "C" {

// ---- C ---------------------------------------------------------------------

STRATA_HOT_ENTRY void* malloc(size_t size) noexcept { return strata::internal::AllocateFast(size); }
STRATA_HOT_ENTRY void free(void* p) noexcept { strata::internal::FreeFast(p); }
STRATA_ENTRY void* calloc(size_t count, size_t size) noexcept {
  return strata::internal::AllocateZeroedFast(count, size);
}

STRATA_ENTRY void* realloc(void* p, size_t size) noexcept {
  if (p != nullptr && !IsOurs(p)) {
    // Only a block of glibc's moves into strata, its contents intact (then
    // glibc frees it, recognised once); anything else is an invalid pointer.
    const size_t old = GlibcUsableSize(p);
    if (old == 0) {
      strata::internal::ReportMisuse(p, strata::internal::Misuse::kNotOurs, "realloc");
      errno = EINVAL;  // count mode: the pointer is left alone
      return nullptr;
    }
    void* q = nullptr;  // realloc(p, 0) frees p
    if (size != 0) {
      q = strata::Allocate(size);
      if (q == nullptr) return nullptr;  // errno is ENOMEM; p untouched
      memcpy(q, p, old < size ? old : size);
    }
    strata::internal::HandBackToGlibc(p);
    return q;
  }
  return strata::Reallocate(p, size);
}

STRATA_ENTRY void* reallocarray(void* p, size_t count, size_t size) noexcept {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, bytes);
}

STRATA_ENTRY void* aligned_alloc(size_t alignment, size_t size) noexcept { return strata::AllocateAligned(alignment, size); }
STRATA_ENTRY void* memalign(size_t alignment, size_t size) noexcept {
  // glibc's memalign rounds a non-power-of-two alignment up instead of failing.
  if (alignment != 0 && (alignment & (alignment - 1)) != 0 && alignment <= strata::kMaxAlignment) {
    alignment = size_t{1} << (64 - __builtin_clzll(alignment));
  }
  return strata::AllocateAligned(alignment < 8 ? 8 : alignment, size);
}

STRATA_ENTRY int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0 ||
      alignment > strata::kMaxAlignment) {
    return EINVAL;
  }
  const int saved = errno;
  void* p = strata::AllocateAligned(alignment, size);
  errno = saved;  // posix_memalign reports through its result, not errno
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

STRATA_ENTRY void* valloc(size_t size) noexcept { return strata::AllocateAligned(4096, size); }

STRATA_ENTRY void* pvalloc(size_t size) noexcept {
  if (size > SIZE_MAX - 4095) {
    errno = ENOMEM;
    return nullptr;
  }
  return strata::AllocateAligned(4096, size == 0 ? 4096 : (size + 4095) & ~size_t{4095});
}

STRATA_ENTRY size_t malloc_usable_size(void* p) noexcept {
  if (p == nullptr) return 0;
  if (!IsOurs(p)) return GlibcUsableSize(p);
  return strata::UsableSize(p);
}

STRATA_ENTRY void free_sized(void* p, size_t size) noexcept { strata::DeallocateSized(p, size); }
STRATA_ENTRY void free_aligned_sized(void* p, size_t alignment, size_t size) noexcept {
  strata::DeallocateAlignedSized(p, size, alignment);
}
STRATA_ENTRY void cfree(void* p) noexcept { strata::Deallocate(p); }

// glibc-internal names some programs and libraries call directly.
STRATA_ENTRY void* __libc_malloc(size_t size) noexcept { return malloc(size); }
STRATA_ENTRY void __libc_free(void* p) noexcept { free(p); }
STRATA_ENTRY void* __libc_calloc(size_t count, size_t size) noexcept { return calloc(count, size); }
STRATA_ENTRY void* __libc_realloc(void* p, size_t size) noexcept { return realloc(p, size); }
STRATA_ENTRY void* __libc_memalign(size_t alignment, size_t size) noexcept { return memalign(alignment, size); }
STRATA_ENTRY void* __libc_valloc(size_t size) noexcept { return valloc(size); }
STRATA_ENTRY void* __libc_pvalloc(size_t size) noexcept { return pvalloc(size); }
STRATA_ENTRY int __posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  return posix_memalign(out, alignment, size);
}

// ---- glibc's malloc introspection, answered with strata's numbers --------

STRATA_ENTRY int malloc_trim(size_t /*pad*/) noexcept { return strata::ReleaseMemory() > 0 ? 1 : 0; }

// Statistics to stderr, in the stats_format option's format.
void malloc_stats(void) noexcept { strata::internal::WriteStatsInConfiguredFormat(2); }

int mallopt(int /*param*/, int /*value*/) noexcept {
  return 1;  // glibc's knobs do not apply; accepted and ignored (strata has its own)
}

struct mallinfo2 mallinfo2(void) noexcept {
  static strata::Stats s;  // large; mallinfo2 is not reentrant in glibc either
  strata::GetStats(&s);
  struct mallinfo2 m;
  memset(&m, 0, sizeof(m));
  const size_t arena_bytes = s.arenas_mapped * strata::internal::kArenaSize;
  m.arena = arena_bytes;                     // bytes in arenas
  m.ordblks = s.arenas_empty;                // free chunks: empty arenas
  m.hblks = s.large_blocks;                  // large blocks (own mappings)
  m.hblkhd = s.large_bytes;
  m.uordblks = s.small_bytes_in_use;         // bytes in use in arenas
  m.fordblks = arena_bytes > s.small_bytes_in_use ? arena_bytes - s.small_bytes_in_use : 0;
  m.keepcost = s.large_cached_bytes;         // releasable by malloc_trim
  return m;
}

struct mallinfo mallinfo(void) noexcept {
  const struct mallinfo2 m2 = mallinfo2();
  struct mallinfo m;
  memset(&m, 0, sizeof(m));
  m.arena = static_cast<int>(m2.arena);
  m.ordblks = static_cast<int>(m2.ordblks);
  m.hblks = static_cast<int>(m2.hblks);
  m.hblkhd = static_cast<int>(m2.hblkhd);
  m.uordblks = static_cast<int>(m2.uordblks);
  m.fordblks = static_cast<int>(m2.fordblks);
  m.keepcost = static_cast<int>(m2.keepcost);
  return m;
}

}  // extern "C"

// ---- C++ ---------------------------------------------------------------------

using strata::internal::New;
using strata::internal::NewAligned;
using strata::internal::NewAlignedNothrow;
using strata::internal::NewNothrow;

STRATA_HOT_ENTRY void* operator new(size_t size) { return New(size); }
STRATA_HOT_ENTRY void* operator new[](size_t size) { return New(size); }
STRATA_ENTRY void* operator new(size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }
STRATA_ENTRY void* operator new[](size_t size, const std::nothrow_t&) noexcept { return NewNothrow(size); }
STRATA_ENTRY void* operator new(size_t size, std::align_val_t align) { return NewAligned(size, align); }
STRATA_ENTRY void* operator new[](size_t size, std::align_val_t align) { return NewAligned(size, align); }
STRATA_ENTRY void* operator new(size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return NewAlignedNothrow(size, align);
}
STRATA_ENTRY void* operator new[](size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return NewAlignedNothrow(size, align);
}

STRATA_HOT_ENTRY void operator delete(void* p) noexcept { strata::internal::FreeFast(p); }
STRATA_HOT_ENTRY void operator delete[](void* p) noexcept { strata::internal::FreeFast(p); }
STRATA_ENTRY void operator delete(void* p, const std::nothrow_t&) noexcept { strata::Deallocate(p); }
STRATA_ENTRY void operator delete[](void* p, const std::nothrow_t&) noexcept { strata::Deallocate(p); }
STRATA_HOT_ENTRY void operator delete(void* p, size_t size) noexcept {
  strata::internal::FreeFast(p, size, "free_sized");
}
STRATA_HOT_ENTRY void operator delete[](void* p, size_t size) noexcept {
  strata::internal::FreeFast(p, size, "free_sized");
}
STRATA_ENTRY void operator delete(void* p, std::align_val_t align) noexcept {
  strata::DeallocateAligned(p, static_cast<size_t>(align));
}
STRATA_ENTRY void operator delete[](void* p, std::align_val_t align) noexcept {
  strata::DeallocateAligned(p, static_cast<size_t>(align));
}
STRATA_ENTRY void operator delete(void* p, size_t size, std::align_val_t align) noexcept {
  strata::DeallocateAlignedSized(p, size, static_cast<size_t>(align));
}
STRATA_ENTRY void operator delete[](void* p, size_t size, std::align_val_t align) noexcept {
  strata::DeallocateAlignedSized(p, size, static_cast<size_t>(align));
}
STRATA_ENTRY void operator delete(void* p, std::align_val_t align, const std::nothrow_t&) noexcept {
  strata::DeallocateAligned(p, static_cast<size_t>(align));
}
STRATA_ENTRY void operator delete[](void* p, std::align_val_t align, const std::nothrow_t&) noexcept {
  strata::DeallocateAligned(p, static_cast<size_t>(align));
}
