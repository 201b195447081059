#include "alloc/arena.h"

#include <cstring>

#include "alloc/meta_alloc.h"
#include "alloc/os.h"
#include "alloc/page_map.h"
#include "threading/spin_lock.h"
#include "threading/tagged_stack.h"

namespace strata::internal {

FreeBlock g_free_list_end{nullptr};

namespace {

// SYNCHRONIZATION
//  - g_empty: lock-free tagged stack of records of empty arenas.
//  - g_all: push-only list of every record (release CAS push, acquire read);
//    all_next and arena are written before a record is published, never after.
//  - g_reserve_*: the current OS reservation, guarded by g_reserve_lock.
//  - counters: relaxed statistics.
constinit threading::TaggedStack<ArenaRecord, &ArenaRecord::stack_next> g_empty;
std::atomic<ArenaRecord*> g_all{nullptr};
constinit threading::SpinLock g_reserve_lock;
char* g_reserve_next = nullptr;
char* g_reserve_end = nullptr;
std::atomic<uint64_t> g_arenas_mapped{0};
std::atomic<uint64_t> g_arenas_empty{0};
std::atomic<uint64_t> g_reservations{0};

void ResetHeader(ArenaHeader* a, Heap* owner) {
  a->used_pools = 0;
  a->free_mask = kAllUsablePools;
  a->prev = a->next = nullptr;
  a->on_avail_list = false;
  for (size_t i = 0; i < kPoolsPerArena; ++i) {
    a->pools[i] = PoolDesc{};
    a->pools[i].index = static_cast<uint8_t>(i);
  }
  // Release pairs with the acquire load of owner in the free path: a thread
  // that sees this owner also sees the reset header.
  a->owner.store(owner, std::memory_order_release);
}

// Maps a fresh arena from the current reservation. Called with the lock held.
ArenaHeader* CarveFreshLocked() {
  if (g_reserve_next == g_reserve_end) {
    const size_t bytes = kArenasPerReservation * kArenaSize;
    char* base = static_cast<char*>(os::MapAligned(bytes, kArenaSize));
    if (base == nullptr) return nullptr;
    g_reserve_next = base;
    g_reserve_end = base + bytes;
    // Relaxed: statistics only.
    g_reservations.fetch_add(1, std::memory_order_relaxed);
  }
  auto* record = static_cast<ArenaRecord*>(MetaAllocate(sizeof(ArenaRecord)));
  if (record == nullptr) return nullptr;
  auto* arena = reinterpret_cast<ArenaHeader*>(g_reserve_next);
  arena->kind = kArenaKind;
  arena->record = record;
  record->arena = arena;
  // Registration publishes the header (kind) to lookups with release.
  if (!GetPageMap().Register(arena, kArenaSize, arena)) return nullptr;
  g_reserve_next += kArenaSize;
  // Publish the record to ForEachArena. Release pairs with the acquire load
  // in AllArenaRecords(): readers see record->arena and the header.
  ArenaRecord* head = g_all.load(std::memory_order_relaxed);
  do {
    record->all_next = head;
  } while (!g_all.compare_exchange_weak(head, record, std::memory_order_release,
                                        std::memory_order_relaxed));
  // Relaxed: statistics only.
  g_arenas_mapped.fetch_add(1, std::memory_order_relaxed);
  return arena;
}

}  // namespace

bool ArenaHeader::IsValid() const {
  if (kind != kArenaKind) return false;
  if (free_mask & ~kAllUsablePools) return false;
  uint32_t in_runs = 0;
  for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
    const bool free_bit = (free_mask >> i) & 1;
    if (free_bit != (pools[i].state == PoolState::kFree)) return false;
    if (!free_bit) ++in_runs;
  }
  return in_runs == used_pools;
}

bool PoolDesc::IsValid() const {
  if (state != PoolState::kHead) return state == PoolState::kFree || head_offset != 0;
  const ClassInfo& k = kClasses[size_class];
  if (size_class == 0 || size_class >= kNumClasses) return false;
  if (run_pools != k.run_pools || capacity != k.blocks || carved > capacity) return false;
  uint32_t free_count = 0;
  for (FreeBlock* b = free; b != kFreeListEnd; b = b->next) {
    if (b == nullptr) return false;  // lists end with the sentinel
    if (++free_count > capacity) return false;  // cycle
    const uintptr_t off = reinterpret_cast<uintptr_t>(b) - reinterpret_cast<uintptr_t>(Start());
    if (off % k.size != 0 || off / k.size >= carved) return false;
  }
  return used + free_count + (capacity - carved) == capacity;
}

bool PoolDesc::HasFreeBlock(const void* p) const {
  uint32_t steps = 0;
  for (const FreeBlock* b = free; b != kFreeListEnd && b != nullptr && steps <= capacity;
       b = b->next, ++steps) {
    if (b == p) return true;
  }
  return false;
}

void LockArenaSourceForFork() { g_reserve_lock.Lock(); }
void UnlockArenaSourceForFork() { g_reserve_lock.Unlock(); }

size_t PurgeEmptyArenas() {
  // Take the whole stack, purge, put it back. Arenas popped meanwhile by
  // others are simply not in our batch.
  ArenaRecord* taken = nullptr;
  size_t purged = 0;
  while (ArenaRecord* r = g_empty.Pop()) {
    if (!r->purged) {
      char* pools = r->arena->Base() + kFirstUsablePool * kPoolSize;
      if (os::Purge(pools, kUsablePools * kPoolSize, os::PurgeMode::kDontNeed)) {
        r->purged = true;
        purged += kUsablePools * kPoolSize;
      }
    }
    // Relaxed: the chain is private until pushed back.
    r->stack_next.store(taken, std::memory_order_relaxed);
    taken = r;
  }
  while (taken != nullptr) {
    ArenaRecord* next = taken->stack_next.load(std::memory_order_relaxed);
    g_empty.Push(taken);
    taken = next;
  }
  return purged;
}

ArenaHeader* AcquireArena(Heap* owner) {
  if (ArenaRecord* r = g_empty.Pop()) {
    r->purged = false;
    // Relaxed: statistics only.
    g_arenas_empty.fetch_sub(1, std::memory_order_relaxed);
    ResetHeader(r->arena, owner);
    return r->arena;
  }
  ArenaHeader* arena;
  {
    threading::SpinLockHolder hold(&g_reserve_lock);
    arena = CarveFreshLocked();
  }
  if (arena != nullptr) ResetHeader(arena, owner);
  return arena;
}

void ReleaseArena(ArenaHeader* arena) {
  // Relaxed: the release in the stack push below orders this store (and the
  // whole header) before any later acquirer pops the record.
  arena->owner.store(nullptr, std::memory_order_relaxed);
  // Relaxed: statistics only.
  g_arenas_empty.fetch_add(1, std::memory_order_relaxed);
  g_empty.Push(arena->record);
}

ArenaRecord* AllArenaRecords() {
  // Acquire pairs with the release CAS in CarveFreshLocked().
  return g_all.load(std::memory_order_acquire);
}

ArenaSourceStats GetArenaSourceStats() {
  // Relaxed: statistics only.
  return {g_arenas_mapped.load(std::memory_order_relaxed),
          g_arenas_empty.load(std::memory_order_relaxed),
          g_reservations.load(std::memory_order_relaxed)};
}

}  // namespace strata::internal
