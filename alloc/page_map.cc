#include "alloc/page_map.h"

#include "alloc/mapping_moves.h"
#include "alloc/os.h"

namespace strata::internal {

constinit PageMap g_page_map;

PageMap::Entry* PageMap::EnsureLeaf(size_t root_index) {
  // Acquire pairs with the release CAS below (by this or another thread).
  Entry* leaf = root_[root_index].load(std::memory_order_acquire);
  if (leaf != nullptr) return leaf;
  const size_t bytes = kLeafEntries * sizeof(Entry);
  // The OS count and leaf_bytes_ change together for stats (nested in the
  // caller's move: an arena carved, a large block mapped).
  MoveSpan move;
  auto* fresh = static_cast<Entry*>(os::MapAligned(bytes, 4096));
  if (fresh == nullptr) return nullptr;
  // Zero-filled memory is a valid array of zero atomics (std::atomic of an
  // integer is a plain integer-sized object with no other state).
  // Release publishes the zeroed leaf to lookups; acquire on failure pairs
  // with the winner's release so we may use its leaf.
  if (root_[root_index].compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
    // Relaxed: statistics only.
    leaf_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return fresh;
  }
  os::Unmap(fresh, bytes);  // lost the race
  return leaf;
}

bool PageMap::Register(const void* start, size_t bytes, void* header, bool is_arena) {
  const uintptr_t entry = reinterpret_cast<uintptr_t>(header) | (is_arena ? kArenaTag : 0);
  const uintptr_t first = reinterpret_cast<uintptr_t>(start) >> kArenaShift;
  const uintptr_t end = first + (bytes >> kArenaShift);
  if ((end - 1) >> kChunkBits) return false;
  // Make every leaf exist first, so failure registers nothing.
  for (uintptr_t c = first; c < end; c = ((c >> kLeafBits) + 1) << kLeafBits) {
    if (EnsureLeaf(c >> kLeafBits) == nullptr) return false;
  }
  for (uintptr_t c = first; c < end; ++c) {
    // Relaxed load: the leaf exists (created above by this thread or seen
    // through an acquire in EnsureLeaf).
    Entry* leaf = root_[c >> kLeafBits].load(std::memory_order_relaxed);
    // Release pairs with the acquire in Lookup(): the header is initialised
    // before anyone can find it.
    leaf[c & (kLeafEntries - 1)].store(entry, std::memory_order_release);
  }
  return true;
}

void PageMap::Unregister(const void* start, size_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(start) >> kArenaShift;
  const uintptr_t end = first + (bytes >> kArenaShift);
  for (uintptr_t c = first; c < end; ++c) {
    // Relaxed: the leaf was installed before this range was registered.
    Entry* leaf = root_[c >> kLeafBits].load(std::memory_order_relaxed);
    // Release: orders our last uses of the mapping before the entry vanishes.
    leaf[c & (kLeafEntries - 1)].store(0, std::memory_order_release);
  }
}

}  // namespace strata::internal
