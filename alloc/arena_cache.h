// The free fast path's memory of the arenas its heap owns: a hit proves that
// a pointer lies in an arena of this heap (so it is strata's, not null, not
// foreign, not large, and local), with no page-map lookup and no owner load.
// One of a heap's parts (heap.h).
#ifndef STRATA_ALLOC_ARENA_CACHE_H_
#define STRATA_ALLOC_ARENA_CACHE_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "alloc/config.h"

namespace strata::internal {

// Arenas a heap remembers owning, direct-mapped by arena address bits: 256
// entries, 2 KiB, cover 64 MiB of consecutive arenas. With 64, a heap of
// 270 arenas took the page map on most frees (st_churn --live=1000000:
// 818.7M instructions, 756.0M with 256).
inline constexpr size_t kArenaCacheEntries = 256;
// A slot holding no arena (no arena lives at address 1).
inline constexpr uintptr_t kNoArena = 1;

// Invariant: every arena in the cache is owned by this cache's heap: an
// entry is added only after the page map and the arena's owner were
// checked (Remember), and removed when the arena leaves the heap (Forget,
// ForgetAll). Thread-safety: the owner thread only.
class ArenaCache {
 public:
  constexpr ArenaCache() {
    for (auto& a : entries_) a = kNoArena;
  }
  ArenaCache(const ArenaCache&) = delete;
  ArenaCache& operator=(const ArenaCache&) = delete;

  // True when p lies in an arena in the cache (the free fast path's test).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Holds(const void* p) const {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    return Slot(a) == (a & ~(kArenaSize - 1));
  }
  // Remembers `arena`. REQUIRES: the heap owns it.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Remember(const void* arena) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(arena);
    Slot(a) = a;
  }
  void Forget(const void* arena) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(arena);
    if (Slot(a) == a) Slot(a) = kNoArena;
  }
  void ForgetAll() {
    for (auto& a : entries_) a = kNoArena;
  }

 private:
  ABSL_ATTRIBUTE_ALWAYS_INLINE uintptr_t& Slot(uintptr_t a) {
    return entries_[(a >> kArenaShift) & (kArenaCacheEntries - 1)];
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE const uintptr_t& Slot(uintptr_t a) const {
    return entries_[(a >> kArenaShift) & (kArenaCacheEntries - 1)];
  }

  uintptr_t entries_[kArenaCacheEntries];
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ARENA_CACHE_H_
