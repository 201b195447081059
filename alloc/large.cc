#include "alloc/large.h"

#include <cstdint>
#include <cstring>

#include "alloc/arena.h"
#include "alloc/limit.h"
#include "alloc/mapping_moves.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/page_map.h"

namespace strata::internal {
namespace {

// SYNCHRONIZATION: g_cache slots are exchanged lock-free (a mapping is in at
// most one slot; whoever swaps it out owns it). A slot holds the header
// address with the mapping's size in arenas packed into its low bits (the
// address is arena-aligned), so a thread scanning the cache never touches a
// header it does not own: another thread may take, free and unmap it at any
// moment. Counters are relaxed stats, except g_cached_bytes, whose
// fetch_add reserves room in the cache.
std::atomic<uintptr_t> g_cache[kLargeCacheSlots] = {};
std::atomic<uint64_t> g_cached_bytes{0};
std::atomic<uint64_t> g_cached_count{0};
std::atomic<uint64_t> g_live_count{0};
std::atomic<uint64_t> g_live_bytes{0};
std::atomic<uint64_t> g_cache_hits{0};
std::atomic<uint64_t> g_mapped_bytes{0};

constexpr size_t RoundUp(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

// A cached mapping's slot word: its arena-aligned address, its size in
// arenas in the low bits (mappings of 2^18 arenas, 64 GiB, or more are
// never cached), and the pages it has committed in the top bits (above the
// 47-bit address space; saturated), so that a taker picks the best fit
// without touching a header another thread may be unmapping.
constexpr uintptr_t kSizeBits = kArenaShift;
constexpr size_t kMaxCachedArenas = (size_t{1} << kSizeBits) - 1;
constexpr int kCommittedShift = 48;
constexpr uintptr_t kMaxCommittedPages = (uintptr_t{1} << (64 - kCommittedShift)) - 1;
static_assert(kAddressBits < kCommittedShift, "the committed pages sit above every address");

uintptr_t Pack(LargeHeader* h, size_t reserved, size_t committed) {
  uintptr_t pages = committed >> kPoolShift;
  if (pages > kMaxCommittedPages) pages = kMaxCommittedPages;
  return reinterpret_cast<uintptr_t>(h) | (reserved >> kArenaShift) | (pages << kCommittedShift);
}
LargeHeader* UnpackHeader(uintptr_t word) {
  const uintptr_t address = word & ((uintptr_t{1} << kCommittedShift) - 1);
  return reinterpret_cast<LargeHeader*>(address & ~((uintptr_t{1} << kSizeBits) - 1));
}
size_t UnpackReserved(uintptr_t word) {
  return (word & ((uintptr_t{1} << kSizeBits) - 1)) << kArenaShift;
}
size_t UnpackCommitted(uintptr_t word) { return (word >> kCommittedShift) << kPoolShift; }

// A cached mapping of `reserved` bytes aligned to `align` for a block that
// commits `commit` bytes: the one whose committed pages are nearest (fewest
// resident pages left past the block's end, or fewest to fault in), or
// nullptr.
LargeHeader* TakeFromCache(size_t reserved, size_t align, size_t commit) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::atomic<uintptr_t>* best = nullptr;
    uintptr_t best_word = 0;
    size_t best_gap = SIZE_MAX;
    for (auto& slot : g_cache) {
      // Relaxed: a hint; the CAS below is what claims the mapping.
      const uintptr_t word = slot.load(std::memory_order_relaxed);
      if (word == 0) continue;
      const size_t have = UnpackReserved(word);
      if (have < reserved || have / 2 > reserved) continue;
      if (reinterpret_cast<uintptr_t>(UnpackHeader(word)) % align != 0) continue;
      const size_t committed = UnpackCommitted(word);
      const size_t gap = committed > commit ? committed - commit : commit - committed;
      if (gap < best_gap) {
        best = &slot;
        best_word = word;
        best_gap = gap;
      }
    }
    if (best == nullptr) return nullptr;
    // Acquire pairs with the release CAS in InsertInSlot(): the header is ours.
    uintptr_t word = best_word;
    if (best->compare_exchange_strong(word, 0, std::memory_order_acquire, std::memory_order_relaxed)) {
      // Relaxed: accounting; the mapping is exclusively ours now.
      g_cached_bytes.fetch_sub(UnpackReserved(best_word), std::memory_order_relaxed);
      g_cached_count.fetch_sub(1, std::memory_order_relaxed);
      g_cache_hits.fetch_add(1, std::memory_order_relaxed);
      return UnpackHeader(best_word);
    }
  }
  return nullptr;  // every pick taken by another thread first: map anew
}

// Puts an owned mapping in a free slot. Returns false when none is free.
bool InsertInSlot(LargeHeader* h) {
  // Relaxed: the release CAS below publishes it.
  h->state.store(LargeHeader::kCached, std::memory_order_relaxed);
  const uintptr_t word = Pack(h, h->reserved, h->committed);
  for (auto& slot : g_cache) {
    uintptr_t empty = 0;
    // Release pairs with the acquire CAS in TakeFromCache().
    if (slot.compare_exchange_strong(empty, word, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      return true;
    }
  }
  // Relaxed: the mapping stays ours.
  h->state.store(LargeHeader::kFreeing, std::memory_order_relaxed);
  return false;
}

void UnmapLarge(LargeHeader* h, size_t reserved) {
  // The OS count and g_mapped_bytes change together for stats.
  MoveSpan move;
  const size_t committed = h->committed;
  GetPageMap().Unregister(h, reserved);
  os::Unmap(h, reserved);
  UnchargeFootprint(committed);
  // Relaxed: statistics only.
  g_mapped_bytes.fetch_sub(reserved, std::memory_order_relaxed);
}

bool PutInCache(LargeHeader* h, uint64_t now) {
  // purge_delay_ms 0 means "at once": nothing waits in the cache.
  if (GetOption(Option::kPurgeDelayMs) == 0) return false;
  const auto limit = static_cast<uint64_t>(GetOption(Option::kLargeCacheBytes));
  if (h->reserved > limit / 2 || (h->reserved >> kArenaShift) > kMaxCachedArenas) return false;
  h->cached_at = static_cast<uint32_t>(now);
  // Relaxed: reserving room; the slot CAS publishes the mapping.
  if (g_cached_bytes.fetch_add(h->reserved, std::memory_order_relaxed) + h->reserved > limit) {
    g_cached_bytes.fetch_sub(h->reserved, std::memory_order_relaxed);
    return false;
  }
  if (InsertInSlot(h)) {
    // Relaxed: statistics only.
    g_cached_count.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  g_cached_bytes.fetch_sub(h->reserved, std::memory_order_relaxed);
  return false;
}

// Freed mappings of sampled small blocks (fit_usable != 0) wait here, in
// the order they were freed, before they are unmapped. They are all alike
// (one arena of reservation, which any sampled size fits), so the large
// cache would hand the one just freed to the very next sampled allocation,
// at the same address, and a second free of the first block would free
// the second. Here a mapping stays registered and not live for the next
// kQuarantineSlots sampled frees (or purge_delay_ms), so such a double
// free is reported. A slot is claimed by exchange: whoever swaps a mapping
// out owns it.
constexpr size_t kQuarantineSlots = 16;
std::atomic<LargeHeader*> g_quarantine[kQuarantineSlots] = {};
std::atomic<uint32_t> g_quarantine_next{0};

void Quarantine(LargeHeader* h, uint64_t now) {
  h->cached_at = static_cast<uint32_t>(now);
  // Relaxed: the exchange below publishes it; a second free of the block
  // fails its CAS on this state (LargeTryBeginFree) and is reported.
  h->state.store(LargeHeader::kCached, std::memory_order_relaxed);
  // Relaxed: accounting (the quarantine's mappings count as cached).
  g_cached_bytes.fetch_add(h->reserved, std::memory_order_relaxed);
  g_cached_count.fetch_add(1, std::memory_order_relaxed);
  // Relaxed: picks a slot; the exchange decides ownership.
  const uint32_t i = g_quarantine_next.fetch_add(1, std::memory_order_relaxed) % kQuarantineSlots;
  // Acquire/release: publishes h's header to the thread that will displace
  // it, and makes the displaced mapping (published the same way) ours.
  LargeHeader* old = g_quarantine[i].exchange(h, std::memory_order_acq_rel);
  if (old != nullptr) {
    g_cached_bytes.fetch_sub(old->reserved, std::memory_order_relaxed);
    g_cached_count.fetch_sub(1, std::memory_order_relaxed);
    UnmapLarge(old, old->reserved);
  }
}

// Unmaps the quarantined mappings freed at least delay_ms ago (all when
// delay_ms is 0). Returns the bytes given back.
size_t DrainQuarantine(uint64_t now, int64_t delay_ms) {
  size_t released = 0;
  for (auto& slot : g_quarantine) {
    // Acquire pairs with the exchange in Quarantine(): the mapping is ours.
    LargeHeader* h = slot.exchange(nullptr, std::memory_order_acquire);
    if (h == nullptr) continue;
    if (delay_ms > 0 && static_cast<int32_t>(now - h->cached_at) < delay_ms) {
      LargeHeader* empty = nullptr;
      // Release pairs with the next owner's acquire, as in Quarantine().
      if (slot.compare_exchange_strong(empty, h, std::memory_order_release,
                                       std::memory_order_relaxed)) {
        continue;
      }
    }
    const size_t reserved = h->reserved;
    g_cached_bytes.fetch_sub(reserved, std::memory_order_relaxed);
    g_cached_count.fetch_sub(1, std::memory_order_relaxed);
    UnmapLarge(h, reserved);
    released += reserved;
  }
  return released;
}

}  // namespace

void* LargeAllocate(size_t size, size_t align, bool zero, bool for_sample) {
  if (align < kMaxNaturalAlign) align = kMaxNaturalAlign;
  const size_t offset = align > kLargeHeaderSize ? align : kLargeHeaderSize;
  if (size > kMaxRequest || offset > kMaxRequest - size) return nullptr;
  const size_t end = offset + size;
  const size_t reserved = RoundUp(end, kArenaSize);
  if (reserved < end) return nullptr;  // overflow
  // Beyond the 47-bit user address space no mapping can succeed: refuse it
  // before it is charged to the memory limit or counted anywhere.
  if (reserved > kMaxMapping) return nullptr;
  const size_t map_align = align > kLargeAlignment ? align : kLargeAlignment;

  // What the memory limit counts: the pages up to the block's end.
  const size_t commit = RoundUp(end, kPoolSize) < reserved ? RoundUp(end, kPoolSize) : reserved;
  LargeHeader* h = TakeFromCache(reserved, map_align, commit);
  if (h != nullptr && commit > h->committed) {
    if (!ChargeFootprint(commit - h->committed, for_sample)) {
      UnmapLarge(h, h->reserved);  // refused by the limit: give the mapping back, fail
      return nullptr;
    }
    h->committed = commit;
    NoteMapped();
  }
  if (h != nullptr && h->committed - commit > commit / 4) {
    // A mapping of the same reserved size that held a larger block: the
    // pages past this block's end are dropped, else they stay resident for
    // as long as the block lives (mappings are reserved in whole arenas:
    // random-order churn of 64-256 KiB blocks held 2.5 GB for 1.6 GB live).
    if (os::Purge(h->Base() + commit, h->committed - commit, os::PurgeMode::kDontNeed)) {
      UnchargeFootprint(h->committed - commit);
      h->committed = commit;
    }
  }
  if (h != nullptr && zero) {
    // Everything past the header may hold old data, up to the block's end.
    // Up to 1 MiB it is cleared by hand. Beyond, only the first page is
    // (it holds the header); the rest is dropped (MADV_DONTNEED reads back
    // as zero), so a big calloc that touches little of its block neither
    // pays for clearing it all nor faults every page in.
    constexpr size_t kClearLimit = size_t{1} << 20;
    char* from = h->Base() + sizeof(LargeHeader);
    char* to = h->Base() + offset + size;
    char* page = static_cast<size_t>(to - from) <= kClearLimit ? to : h->Base() + kPoolSize;
    memset(from, 0, static_cast<size_t>((to < page ? to : page) - from));
    if (to > page) {
      const size_t len = RoundUp(static_cast<size_t>(to - page), kPoolSize);
      if (!os::Purge(page, len, os::PurgeMode::kDontNeed)) memset(page, 0, static_cast<size_t>(to - page));
    }
  }
  if (h == nullptr) {
    if (!ChargeFootprint(commit, for_sample)) return nullptr;
    // The OS count and g_mapped_bytes change together for stats (after the
    // charge, which may run the release engine's pass).
    MoveSpan move;
    void* base = os::MapAligned(reserved, map_align);
    if (base == nullptr) {
      UnchargeFootprint(commit);
      return nullptr;
    }
    h = static_cast<LargeHeader*>(base);
    h->kind = kLargeKind;
    h->reserved = reserved;
    h->committed = commit;
    if (!GetPageMap().Register(base, reserved, h, /*is_arena=*/false)) {
      os::Unmap(base, reserved);
      UnchargeFootprint(commit);
      return nullptr;
    }
    NoteMapped();
    // Relaxed: statistics only.
    g_mapped_bytes.fetch_add(reserved, std::memory_order_relaxed);
  }
  h->offset = offset;
  h->sample = nullptr;
  h->fit_usable = 0;
  size_t usable = RoundUp(end, kPoolSize) - offset;
  if (usable > reserved - offset) usable = reserved - offset;
  h->usable = usable;
  // Release pairs with the acquire in LargeTryBeginFree().
  h->state.store(LargeHeader::kLive, std::memory_order_release);
  // Relaxed: statistics only.
  g_live_count.fetch_add(1, std::memory_order_relaxed);
  g_live_bytes.fetch_add(usable, std::memory_order_relaxed);
  return h->Block();
}

bool LargeFree(LargeHeader* h, uint64_t now) {
  // Relaxed: statistics only.
  g_live_count.fetch_sub(1, std::memory_order_relaxed);
  g_live_bytes.fetch_sub(h->usable, std::memory_order_relaxed);
  if (h->fit_usable != 0) {
    Quarantine(h, now);
    return true;  // the release policy unmaps it in time (LargeDecay)
  }
  if (PutInCache(h, now)) return true;
  UnmapLarge(h, h->reserved);
  return false;
}

size_t LargeReleaseCache() {
  size_t released = DrainQuarantine(0, 0);
  for (auto& slot : g_cache) {
    // Acquire pairs with the release CAS in PutInCache(): the mapping is ours.
    const uintptr_t word = slot.exchange(0, std::memory_order_acquire);
    if (word == 0) continue;
    LargeHeader* h = UnpackHeader(word);
    const size_t reserved = UnpackReserved(word);
    // Relaxed: accounting.
    g_cached_bytes.fetch_sub(reserved, std::memory_order_relaxed);
    g_cached_count.fetch_sub(1, std::memory_order_relaxed);
    UnmapLarge(h, reserved);
    released += reserved;
  }
  return released;
}

size_t LargeDecay(uint64_t now, int64_t delay_ms) {
  if (delay_ms < 0) return 0;
  size_t released = DrainQuarantine(now, delay_ms);
  for (auto& slot : g_cache) {
    // Relaxed: a hint; the CAS below claims the mapping.
    uintptr_t word = slot.load(std::memory_order_relaxed);
    if (word == 0) continue;
    // Acquire pairs with the release CAS in InsertInSlot(): the header is ours.
    if (!slot.compare_exchange_strong(word, 0, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      continue;
    }
    LargeHeader* h = UnpackHeader(word);
    const size_t reserved = UnpackReserved(word);
    if (static_cast<int32_t>(now - h->cached_at) < delay_ms && InsertInSlot(h)) continue;
    // Relaxed: accounting.
    g_cached_bytes.fetch_sub(reserved, std::memory_order_relaxed);
    g_cached_count.fetch_sub(1, std::memory_order_relaxed);
    UnmapLarge(h, reserved);
    released += reserved;
  }
  return released;
}

bool LargeResizeInPlace(LargeHeader* h, size_t new_size) {
  const size_t room = h->reserved - h->offset;
  if (new_size > room) return false;
  // Shrinking to half or less: let the caller move it so the tail can be
  // freed (the same rule as small blocks; sized frees rely on it).
  if (new_size <= h->usable / 2) return false;
  size_t usable = RoundUp(h->offset + new_size, kPoolSize) - h->offset;
  if (usable > room) usable = room;
  if (usable < h->usable) usable = h->usable;  // never shrink the usable size
  if (h->offset + usable > h->committed) {
    if (!ChargeFootprint(h->offset + usable - h->committed)) return false;
    h->committed = h->offset + usable;
    NoteMapped();
  }
  // Relaxed: statistics only.
  g_live_bytes.fetch_add(usable - h->usable, std::memory_order_relaxed);
  h->usable = usable;
  // A sampled block that grew in place is a large block of its own now:
  // the program sees its real size (its sample keeps the size it had).
  h->fit_usable = 0;
  return true;
}

LargeStats GetLargeStats() {
  // Relaxed: statistics only.
  return {g_live_count.load(std::memory_order_relaxed), g_live_bytes.load(std::memory_order_relaxed),
          g_cached_count.load(std::memory_order_relaxed),
          g_cached_bytes.load(std::memory_order_relaxed),
          g_cache_hits.load(std::memory_order_relaxed),
          g_mapped_bytes.load(std::memory_order_relaxed)};
}

}  // namespace strata::internal
