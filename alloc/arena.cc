#include "alloc/arena.h"

#include <unistd.h>

#include <cstring>

#include "absl/base/thread_annotations.h"
#include "alloc/limit.h"
#include "alloc/mapping_moves.h"
#include "alloc/meta_alloc.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/page_map.h"
#include "threading/spin_lock.h"
#include "threading/tagged_stack.h"

namespace strata::internal {

namespace {

// SYNCHRONIZATION
//  - g_empty: lock-free tagged stack of records of empty arenas; g_spare:
//    records whose arena was unmapped, for reuse by the next fresh arena.
//  - g_all: push-only list of every record (release CAS push, acquire read);
//    all_next is written before a record is published, never after.
//  - g_reserve_*: the current OS reservation, guarded by g_reserve_lock.
//  - counters: relaxed statistics.
constinit threading::TaggedStack<ArenaRecord, &ArenaRecord::stack_next> g_empty;
constinit threading::TaggedStack<ArenaRecord, &ArenaRecord::stack_next> g_spare;
std::atomic<ArenaRecord*> g_all{nullptr};
constinit threading::SpinLock g_reserve_lock;
char* g_reserve_next ABSL_GUARDED_BY(g_reserve_lock) = nullptr;
char* g_reserve_end ABSL_GUARDED_BY(g_reserve_lock) = nullptr;
std::atomic<uint64_t> g_arenas_mapped{0};
std::atomic<uint64_t> g_arenas_mapped_peak{0};
std::atomic<uint64_t> g_arenas_unmapped{0};
std::atomic<uint64_t> g_reservations{0};
std::atomic<uint64_t> g_reserve_left{0};

// Usable pools of an arena: everything but the header pool.
char* UsablePools(ArenaHeader* a) { return a->Base() + kFirstUsablePool * kPoolSize; }
constexpr size_t kUsableBytes = kUsablePools * kPoolSize;

void ResetHeader(ArenaHeader* a, Heap* owner, bool dirty, uint32_t free_since) {
  a->used_pools = 0;
  a->free_mask = kAllUsablePools;
  a->dirty_mask = dirty ? kAllUsablePools : 0;
  a->prev = a->next = nullptr;
  a->owner_list = 0;
  if constexpr (kQuarantineReleased) {
    a->quarantine_ms = 0;
    a->quarantine_mask = 0;
  }
  for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
    a->pool(i)->FormatFree(static_cast<uint8_t>(i), free_since);
  }
  // Relaxed: the record is ours (popped, or fresh under the reservation lock).
  a->record->state.store(ArenaState::kOwned, std::memory_order_relaxed);
  // Release pairs with the acquire load of owner in the free path: a thread
  // that sees this owner also sees the reset header.
  a->owner.store(owner, std::memory_order_release);
}

// Maps a fresh arena from the current reservation.
ArenaHeader* CarveFreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_reserve_lock) {
  if (g_reserve_next == g_reserve_end) {
    const size_t bytes = kArenasPerReservation * kArenaSize;
    char* base = static_cast<char*>(os::MapAligned(bytes, kArenaSize));
    if (base == nullptr) return nullptr;
    g_reserve_next = base;
    g_reserve_end = base + bytes;
    // Relaxed: statistics only.
    g_reservations.fetch_add(1, std::memory_order_relaxed);
    g_reserve_left.fetch_add(bytes, std::memory_order_relaxed);
  }
  // A record whose arena was unmapped is reused; it is on g_all already.
  ArenaRecord* record = g_spare.Pop();
  const bool reused = record != nullptr;
  if (!reused) record = static_cast<ArenaRecord*>(MetaAllocate(sizeof(ArenaRecord)));
  if (record == nullptr) return nullptr;
  auto* arena = reinterpret_cast<ArenaHeader*>(g_reserve_next);
  arena->kind = kArenaKind;
  arena->record = record;
  // Relaxed: readers of records are statistics (see ArenaRecord).
  record->arena.store(arena, std::memory_order_relaxed);
  record->state.store(ArenaState::kOwned, std::memory_order_relaxed);
  // Registration publishes the header (kind) to lookups with release.
  if (!GetPageMap().Register(arena, kArenaSize, arena, /*is_arena=*/true)) {
    if (reused) {
      record->state.store(ArenaState::kUnmapped, std::memory_order_relaxed);
      g_spare.Push(record);
    }
    return nullptr;
  }
  g_reserve_next += kArenaSize;
  // Relaxed: statistics only.
  g_reserve_left.fetch_sub(kArenaSize, std::memory_order_relaxed);
  if (!reused) {
    // Publish the record to AllArenaRecords(). Release pairs with its
    // acquire load: readers see all_next and the record's fields.
    ArenaRecord* head = g_all.load(std::memory_order_relaxed);
    do {
      record->all_next = head;
    } while (!g_all.compare_exchange_weak(head, record, std::memory_order_release,
                                          std::memory_order_relaxed));
  }
  // Relaxed: statistics only. (Called under the reservation lock, so the
  // peak is exact.)
  const uint64_t mapped = g_arenas_mapped.fetch_add(1, std::memory_order_relaxed) + 1;
  if (mapped > g_arenas_mapped_peak.load(std::memory_order_relaxed)) {
    g_arenas_mapped_peak.store(mapped, std::memory_order_relaxed);
  }
  return arena;
}

// Gives an empty arena back to the OS. REQUIRES: r was popped from g_empty.
void UnmapEmpty(ArenaRecord* r) {
  // The OS count and the record's state change together for stats.
  MoveSpan move;
  // Relaxed: the record is ours until pushed to g_spare (release).
  ArenaHeader* a = r->arena.load(std::memory_order_relaxed);
  GetPageMap().Unregister(a, kArenaSize);
  os::Unmap(a, kArenaSize);
  UnchargeFootprint(kArenaSize);
  r->state.store(ArenaState::kUnmapped, std::memory_order_relaxed);
  // Relaxed: statistics only.
  g_arenas_mapped.fetch_sub(1, std::memory_order_relaxed);
  g_arenas_unmapped.fetch_add(1, std::memory_order_relaxed);
  g_spare.Push(r);
}

bool PurgePools(ArenaHeader* a) {
  const auto mode = GetOption(Option::kPurgeMode) == 1 ? os::PurgeMode::kFree : os::PurgeMode::kDontNeed;
  return os::Purge(UsablePools(a), kUsableBytes, mode);
}

}  // namespace

bool ArenaHeader::IsValid() const {
  if (kind != kArenaKind) return false;
  if (free_mask & ~kAllUsablePools) return false;
  if (dirty_mask & ~free_mask) return false;  // only free pools are dirty
  // Pool 1's descriptor (the header's second page) stays zero: the fast
  // paths rely on it validating no pointer (see InBlockPool).
  static_assert(kFirstUsablePool == 2, "one zero descriptor, for pool 1");
  const auto* zero = reinterpret_cast<const unsigned char*>(pool(1));
  for (size_t i = 0; i < sizeof(PoolDesc); ++i) {
    if (zero[i] != 0) return false;
  }
  uint32_t in_runs = 0;
  for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
    const bool free_bit = (free_mask >> i) & 1;
    if (free_bit != (pool(i)->state == PoolState::kFree)) return false;
    if (!free_bit) ++in_runs;
  }
  return in_runs == used_pools;
}

void PoolDesc::FormatHead(size_t cls, uint32_t n, FreeBlock* list_end) {
  const ClassInfo& k = kClasses[cls];
  size = k.size;
  start = uint32_t{index} * static_cast<uint32_t>(kPoolSize);
  div_magic = k.div_magic;
  capacity = static_cast<uint16_t>(k.blocks);
  size_class = static_cast<uint8_t>(cls);
  run_pools = static_cast<uint8_t>(n);
  head_bytes = 0;
  state = PoolState::kHead;
  prev = next = nullptr;
  run.Begin(list_end, start, div_magic);
}

void PoolDesc::FormatTail(size_t cls, uint32_t i) {
  state = PoolState::kTail;
  head_bytes = static_cast<uint16_t>(i * sizeof(PoolDesc));
  // The class and block size on every pool of the run: the free fast path
  // reads them from the pool it frees into.
  size_class = static_cast<uint8_t>(cls);
  size = kClasses[cls].size;
  run.BeginTail(head_bytes);
}

void PoolDesc::ResetToFree(uint32_t now) {
  size = 0;
  div_magic = 0;
  start = 0;
  capacity = 0;
  size_class = 0;
  run_pools = 0;
  head_bytes = 0;
  state = PoolState::kFree;
  prev = next = nullptr;
  run.Release(now);
}

bool PoolDesc::IsValid() const {
  const bool head = state == PoolState::kHead;
  if (!run.IsValid({head, capacity, size, start, div_magic, head_bytes, head ? Start() : nullptr})) return false;
  if (!head) {
    if (state == PoolState::kFree) return head_bytes == 0 && size_class == 0 && size == 0;
    return state == PoolState::kTail && head_bytes != 0 && size_class != 0 && size == kClasses[size_class].size;
  }
  const ClassInfo& k = kClasses[size_class];
  if (size_class == 0 || size_class >= kNumClasses) return false;
  if (run_pools != k.run_pools || capacity != k.blocks) return false;
  return size == k.size && div_magic == k.div_magic && start == uint32_t{index} * kPoolSize;
}

// Held from the prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockArenaSourceForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_reserve_lock.Lock(); }
void UnlockArenaSourceForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_reserve_lock.Unlock(); }

ArenaDecayResult DecayEmptyArenas(uint64_t now, int64_t delay_ms, size_t retained, bool force) {
  ArenaDecayResult result{0, 0};
  if (delay_ms < 0 && !force) return result;
  // Take the whole stack, newest first; keep the newest `retained`, purge
  // what is due, unmap what is due beyond `retained`, put the rest back.
  ArenaRecord* keep = nullptr;
  size_t kept = 0;
  while (ArenaRecord* r = g_empty.Pop()) {
    // Relaxed: the record is ours until pushed back (the push releases).
    const uint32_t since = r->empty_since.load(std::memory_order_relaxed);
    const bool due = force || static_cast<int32_t>(now - since) >= delay_ms;
    if (kept >= retained && due) {
      UnmapEmpty(r);
      result.unmapped_bytes += kArenaSize;
      continue;
    }
    if (due && !r->purged.load(std::memory_order_relaxed) &&
        PurgePools(r->arena.load(std::memory_order_relaxed))) {
      r->purged.store(true, std::memory_order_relaxed);
      result.purged_bytes += kUsableBytes;
    }
    r->stack_next.store(keep, std::memory_order_relaxed);
    keep = r;
    ++kept;
  }
  // Back in the original order (oldest pushed first).
  while (keep != nullptr) {
    ArenaRecord* next = keep->stack_next.load(std::memory_order_relaxed);
    g_empty.Push(keep);
    keep = next;
  }
  return result;
}

namespace {

// The empty arena to reuse, or null (fresh memory). The checked build
// (kQuarantineReleased, checks.h) passes over arenas emptied in the last
// kQuarantineMs, at most kQuarantineArenas of them (the oldest beyond is
// taken, quarantined or not), and puts them back as they were. Records
// popped and pushed back meanwhile are simply missed by other poppers.
ArenaRecord* PopReusable() {
  if constexpr (!kQuarantineReleased) {
    return g_empty.Pop();
  } else {
    const uint32_t now = static_cast<uint32_t>(os::NowMs());
    ArenaRecord* passed[kQuarantineArenas];
    size_t n = 0;
    ArenaRecord* found = nullptr;
    while (ArenaRecord* r = g_empty.Pop()) {
      // Relaxed: the record is ours (the pop acquired it).
      const uint32_t since = r->empty_since.load(std::memory_order_relaxed);
      if (static_cast<int32_t>(now - since) >= static_cast<int32_t>(kQuarantineMs) || n == kQuarantineArenas) {
        found = r;
        break;
      }
      passed[n++] = r;
    }
    while (n > 0) g_empty.Push(passed[--n]);  // the newest back on top
    return found;
  }
}

// Takes empty arena record r (popped) for `owner`.
ArenaHeader* ReuseEmpty(ArenaRecord* r, Heap* owner) {
  // Relaxed: the record is ours (the pop acquired it).
  const bool dirty = !r->purged.load(std::memory_order_relaxed);
  const uint32_t since = r->empty_since.load(std::memory_order_relaxed);
  r->purged.store(false, std::memory_order_relaxed);
  ArenaHeader* a = r->arena.load(std::memory_order_relaxed);
  ResetHeader(a, owner, dirty, since);
  return a;
}

}  // namespace

ArenaHeader* AcquireArena(Heap* owner) {
  if (ArenaRecord* r = PopReusable()) return ReuseEmpty(r, owner);
  // The memory limit counts an arena from its carving (limit.h); charged
  // before the reservation lock, since a soft limit may release memory.
  ArenaHeader* arena = nullptr;
  if (ChargeFootprint(kArenaSize)) {
    {
      // A reservation mapped and an arena carved from it change the OS
      // count, the reservation and the records together for stats. (Begun
      // before the lock: a mover waiting in Begin holds none that others
      // need.)
      MoveSpan move;
      threading::SpinLockHolder hold(&g_reserve_lock);
      arena = CarveFreshLocked();
    }
    if (arena == nullptr) UnchargeFootprint(kArenaSize);
  }
  if (arena == nullptr) {
    // No fresh memory (the OS or the memory limit refused): an arena the
    // checked build's quarantine passed over is better than none.
    if (kQuarantineReleased) {
      if (ArenaRecord* r = g_empty.Pop()) return ReuseEmpty(r, owner);
    }
    return nullptr;
  }
  NoteMapped();
  // Fresh pools were never touched: not resident, so not dirty.
  ResetHeader(arena, owner, /*dirty=*/false, 0);
  return arena;
}

void ReleaseArena(ArenaHeader* arena, uint64_t now) {
  ArenaRecord* r = arena->record;
  // Relaxed: the release in the stack push below orders these stores (and
  // the whole header) before any later acquirer pops the record.
  arena->owner.store(nullptr, std::memory_order_relaxed);
  r->purged.store(arena->dirty_mask == 0, std::memory_order_relaxed);
  r->empty_since.store(static_cast<uint32_t>(now), std::memory_order_relaxed);
  r->state.store(ArenaState::kEmpty, std::memory_order_relaxed);
  g_empty.Push(r);
}

ArenaRecord* AllArenaRecords() {
  // Acquire pairs with the release CAS in CarveFreshLocked().
  return g_all.load(std::memory_order_acquire);
}

ArenaSourceStats GetArenaSourceStats() {
  ArenaSourceStats s{};
  // Relaxed: statistics only.
  s.arenas_mapped = g_arenas_mapped.load(std::memory_order_relaxed);
  s.arenas_mapped_peak = g_arenas_mapped_peak.load(std::memory_order_relaxed);
  s.arenas_unmapped = g_arenas_unmapped.load(std::memory_order_relaxed);
  s.reservations = g_reservations.load(std::memory_order_relaxed);
  s.reserve_bytes_left = g_reserve_left.load(std::memory_order_relaxed);
  bool any_resident = false;
  for (ArenaRecord* r = AllArenaRecords(); r != nullptr; r = r->all_next) {
    if (r->state.load(std::memory_order_relaxed) != ArenaState::kEmpty) continue;
    ++s.empty;
    if (r->purged.load(std::memory_order_relaxed)) {
      ++s.empty_purged;
      continue;
    }
    const uint32_t since = r->empty_since.load(std::memory_order_relaxed);
    if (!any_resident || static_cast<int32_t>(since - s.oldest_resident_since) < 0) {
      s.oldest_resident_since = since;
    }
    if (!any_resident || static_cast<int32_t>(since - s.newest_resident_since) > 0) {
      s.newest_resident_since = since;
    }
    any_resident = true;
  }
  return s;
}

}  // namespace strata::internal
