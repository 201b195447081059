// The process-wide map that answers "is this pointer one of strata's?" in
// O(1): a two-level radix tree over the 47-bit user address space at arena
// (256 KiB chunk) granularity. Each entry is the header of the mapping that
// covers the chunk (an arena header or a large-allocation header), or null.
#ifndef STRATA_ALLOC_PAGE_MAP_H_
#define STRATA_ALLOC_PAGE_MAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/optimization.h"
#include "alloc/config.h"

namespace strata::internal {

// SYNCHRONIZATION
//  - root_[i]: written once (CAS null -> leaf, release) by any thread that
//    registers memory; read lock-free with acquire by every lookup.
//  - leaf entries: written (release) when a mapping is registered, before the
//    mapping's memory is handed to anyone, and cleared before it is unmapped;
//    read with acquire by lookups. A lookup racing with registration of an
//    unrelated chunk is harmless: nobody can hold a pointer into a chunk
//    before its registration happens-before the pointer was handed out.
class PageMap {
 public:
  static constexpr int kAddressBits = 47;
  static constexpr int kChunkBits = kAddressBits - static_cast<int>(kArenaShift);  // 29
  static constexpr int kLeafBits = 15;
  static constexpr int kRootBits = kChunkBits - kLeafBits;  // 14
  static constexpr size_t kLeafEntries = size_t{1} << kLeafBits;
  static constexpr size_t kRootEntries = size_t{1} << kRootBits;

  using Entry = std::atomic<uintptr_t>;

  constexpr PageMap() = default;
  PageMap(const PageMap&) = delete;
  PageMap& operator=(const PageMap&) = delete;

  // An entry is the header's address, with kArenaTag set when the header is
  // an arena's (whose chunk is then the arena itself).
  static constexpr uintptr_t kArenaTag = 1;

  // Returns the entry for the chunk holding p, or 0.
  // Thread-safety: any thread, lock-free, wait-free.
  uintptr_t LookupEntry(const void* p) const {
    const uintptr_t chunk = reinterpret_cast<uintptr_t>(p) >> kArenaShift;
    if (ABSL_PREDICT_FALSE(chunk >> kChunkBits)) return 0;  // kernel or non-canonical
    // Acquire pairs with the release CAS that installed the leaf.
    const Entry* leaf = root_[chunk >> kLeafBits].load(std::memory_order_acquire);
    if (ABSL_PREDICT_FALSE(leaf == nullptr)) return 0;
    // Acquire pairs with the release store in Register().
    return leaf[chunk & (kLeafEntries - 1)].load(std::memory_order_acquire);
  }

  // Returns the header registered for the chunk holding p, or nullptr.
  void* Lookup(const void* p) const {
    return reinterpret_cast<void*>(LookupEntry(p) & ~kArenaTag);
  }

  // True when p lies in an arena (false for null, foreign memory and large
  // blocks).
  bool InArena(const void* p) const { return (LookupEntry(p) & kArenaTag) != 0; }

  // Points every chunk of [start, start + bytes) at header (tagged when
  // is_arena). Returns false (registering nothing) when a leaf could not be
  // mapped. REQUIRES: start and bytes are multiples of kArenaSize.
  bool Register(const void* start, size_t bytes, void* header, bool is_arena);

  // Clears every chunk of [start, start + bytes). REQUIRES: registered.
  void Unregister(const void* start, size_t bytes);

  // Bytes mapped for leaves so far (statistics; leaves are never unmapped).
  size_t LeafBytes() const { return leaf_bytes_.load(std::memory_order_relaxed); }

 private:
  Entry* EnsureLeaf(size_t root_index);

  std::atomic<Entry*> root_[kRootEntries] = {};
  std::atomic<size_t> leaf_bytes_{0};  // relaxed statistic
};

// The single process-wide map; constant-initialised (usable before main).
extern PageMap g_page_map;
inline PageMap& GetPageMap() { return g_page_map; }

}  // namespace strata::internal

#endif  // STRATA_ALLOC_PAGE_MAP_H_
