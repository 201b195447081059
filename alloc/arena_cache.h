// The free fast path's memory of the heap's own memory: the arenas it owns,
// and the size class of the pools of their runs it met lately. A pool hit
// gives the class of a pointer's block and proves that it lies in a run of
// this heap (so it is strata's, not null, not foreign, not large, not in a
// free pool or a header, and local), in one load and a compare; an arena
// hit proves all but the run, with no page-map lookup and no owner load.
// One of a heap's parts (heap.h).
#ifndef STRATA_ALLOC_ARENA_CACHE_H_
#define STRATA_ALLOC_ARENA_CACHE_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/config.h"

namespace strata::internal {

// Arenas a heap remembers owning, direct-mapped by a fold of the arena
// number: 1024 entries, 8 KiB. With 64, a heap of 270 arenas took the page
// map on most frees (st_churn --live=1000000: 818.7M instructions, 756.0M
// with 256). The fold (the arena number's bits xor those 10 above) keeps
// arenas a power-of-two stride apart in different slots: reservations
// (4 MiB) lie between other mappings, and larson's threads' 8 MiB stacks
// put a heap's arenas 64 MiB apart, which the plain low bits of 256 slots
// sent to one slot: its checked build left the pop's fast path on up to 6 %
// of pops, each a refused link into the other arena.
inline constexpr size_t kArenaCacheEntries = 1024;
inline constexpr int kArenaCacheShift = 10;  // log2(kArenaCacheEntries)
static_assert(size_t{1} << kArenaCacheShift == kArenaCacheEntries);
// A slot holding no arena (no arena lives at address 1).
inline constexpr uintptr_t kNoArena = 1;
// Pools whose class the cache keeps, direct-mapped by pool number: 256
// entries (2.3 KiB), 1 MiB of consecutive pools; the slot is the pool
// number's low byte, one instruction on the free fast path.
inline constexpr size_t kPoolCacheEntries = 256;
// A slot holding no pool (no pool number is all ones).
inline constexpr uintptr_t kNoPool = ~uintptr_t{0};
// Behind it, for FreeUncached, a larger level: 4096 entries of 4 bytes
// (16 KiB, touched as used), indexed by the pool number's low 12 bits xor
// the 12 above (16 MiB of consecutive pools, and pools a power-of-two
// stride apart, as larson's arenas are, in different slots). A miss in both
// loads the pool's descriptor, a line of the arena header that a
// random-order free rarely finds cached. With the first level alone,
// larson's threads (5000 live blocks of 8..1000 bytes each, ~600 pools)
// missed on most frees: under cachegrind, 234K last-level misses in
// FreeUncached per 4M frees; see BENCHMARKS.md for the second level's.
// The first level stays small: its slot is one instruction (a byte), a
// larger one's two, on every free.
inline constexpr size_t kPoolCache2Entries = 4096;
inline constexpr int kPoolCache2Shift = 12;  // log2(kPoolCache2Entries)
static_assert(size_t{1} << kPoolCache2Shift == kPoolCache2Entries);

// Invariants: every arena in the cache is owned by this cache's heap: an
// entry is added only after the page map and the arena's owner were
// checked, or as the arena of a run the heap's refill takes blocks from
// (Remember), and removed when the arena leaves the heap (Forget,
// ForgetAll). Every pool in the cache is a pool of a run of such an arena,
// of the class the cache gives (RememberPool), and leaves the cache when
// its run is released (ForgetPools) or its arena leaves. Thread-safety: the
// owner thread only.
class ArenaCache {
 public:
  constexpr ArenaCache() {
    for (auto& a : entries_) a = kNoArena;
    for (auto& k : pool_keys_) k = kNoPool;
    for (auto& c : pool_classes_) c = 0;
    for (auto& e : pool2_) e = 0;
  }
  ArenaCache(const ArenaCache&) = delete;
  ArenaCache& operator=(const ArenaCache&) = delete;

  // True when p lies in an arena in the cache (the free fast path's test).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool Holds(const void* p) const {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    return Slot(a) == (a & ~(kArenaSize - 1));
  }
  // The slot an arena's address p takes, and the second pool level's slot
  // p's pool takes (tests check the folds).
  static size_t ArenaSlot(const void* p) { return SlotOf(reinterpret_cast<uintptr_t>(p)); }
  static size_t Pool2Slot(const void* p) { return Pool2Index(reinterpret_cast<uintptr_t>(p) >> kPoolShift); }
  // Remembers `arena`. REQUIRES: the heap owns it.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Remember(const void* arena) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(arena);
    Slot(a) = a;
  }
  // Forgets `arena` and its pools (it leaves the heap).
  void Forget(const void* arena) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(arena);
    if (Slot(a) == a) Slot(a) = kNoArena;
    ForgetPools(arena, kPoolsPerArena);
  }
  void ForgetAll() {
    for (auto& a : entries_) a = kNoArena;
    for (auto& k : pool_keys_) k = kNoPool;
    for (auto& e : pool2_) e = 0;
  }

  // True (and *cls set) when p lies in a pool the cache knows: a pool of a
  // run of class *cls of an arena the heap owns (the free fast path's test).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool PoolClass(const void* p, size_t* cls) const {
    const uintptr_t pool = reinterpret_cast<uintptr_t>(p) >> kPoolShift;
    const size_t slot = pool & (kPoolCacheEntries - 1);
    if (ABSL_PREDICT_FALSE(pool_keys_[slot] != pool)) return false;
    *cls = pool_classes_[slot];
    return true;
  }
  // The second level's PoolClass (FreeUncached): on a hit, the first level
  // learns the pool too.
  bool PoolClassSlow(const void* p, size_t* cls) {
    const uintptr_t pool = reinterpret_cast<uintptr_t>(p) >> kPoolShift;
    const uint32_t e = Pool2(pool);
    if (uintptr_t{e >> 8} != pool >> kPoolCache2Shift || (e & 0xff) == 0) return false;
    *cls = e & 0xff;
    Learn1(pool, *cls);
    return true;
  }
  // Remembers that p's pool is in a run of class cls (1..255), in the
  // first level, and in the second too unless told not to.
  // REQUIRES: the run's arena is the heap's (and in this cache).
  void RememberPool(const void* p, size_t cls, bool second_level = true) {
    const uintptr_t pool = reinterpret_cast<uintptr_t>(p) >> kPoolShift;
    Learn1(pool, cls);
    if (!second_level) return;
    Pool2(pool) = static_cast<uint32_t>(pool >> kPoolCache2Shift) << 8 | static_cast<uint32_t>(cls);
  }
  // Forgets the n pools from `first` (a run released, an arena leaving).
  void ForgetPools(const void* first, size_t n) {
    const uintptr_t pool = reinterpret_cast<uintptr_t>(first) >> kPoolShift;
    for (size_t i = 0; i < n; ++i) {
      const size_t slot = (pool + i) & (kPoolCacheEntries - 1);
      if (pool_keys_[slot] == pool + i) pool_keys_[slot] = kNoPool;
      uint32_t& e = Pool2(pool + i);
      if (uintptr_t{e >> 8} == (pool + i) >> kPoolCache2Shift) e = 0;
    }
  }

 private:
  ABSL_ATTRIBUTE_ALWAYS_INLINE static size_t SlotOf(uintptr_t a) {
    const uintptr_t arena = a >> kArenaShift;
    return (arena ^ (arena >> kArenaCacheShift)) & (kArenaCacheEntries - 1);
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE uintptr_t& Slot(uintptr_t a) { return entries_[SlotOf(a)]; }
  ABSL_ATTRIBUTE_ALWAYS_INLINE const uintptr_t& Slot(uintptr_t a) const { return entries_[SlotOf(a)]; }
  // The second level's entry of pool number `pool`: slot and tag (the bits
  // above the slot's) still make the whole pool number, as the fold is
  // undone by the tag.
  static size_t Pool2Index(uintptr_t pool) { return (pool ^ (pool >> kPoolCache2Shift)) & (kPoolCache2Entries - 1); }
  uint32_t& Pool2(uintptr_t pool) { return pool2_[Pool2Index(pool)]; }

  // The second level's entry holds the pool number's bits above the slot's
  // (its tag) and the class. A pool of an arena has a 47-bit address: the
  // tag has 23 bits, and with the class fits 32; slot and tag together are
  // the whole pool number, and lookups compare the tag with every bit of a
  // pointer's (a wild pointer's high bits never match).
  static_assert(kAddressBits - kPoolShift - kPoolCache2Shift + 8 <= 32, "tag and class fit 32 bits");
  void Learn1(uintptr_t pool, size_t cls) {
    const size_t slot = pool & (kPoolCacheEntries - 1);
    pool_keys_[slot] = pool;
    pool_classes_[slot] = static_cast<uint8_t>(cls);
  }

  uintptr_t entries_[kArenaCacheEntries];
  uintptr_t pool_keys_[kPoolCacheEntries];
  uint8_t pool_classes_[kPoolCacheEntries];
  // Second level: (tag << 8) | class; 0 is empty (no class is 0).
  uint32_t pool2_[kPoolCache2Entries];
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ARENA_CACHE_H_
