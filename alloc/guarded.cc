// The guarded slots: the region, each slot's metadata and its state
// machine (guarded.h), the quarantine, and the free path's judgement of a
// guarded pointer. The fault handler and the stack lines are
// guarded_fault.cc's.
#include "alloc/guarded.h"

#include <cstring>

#include "absl/base/thread_annotations.h"
#include "alloc/arena.h"
#include "alloc/error.h"
#include "alloc/guarded_fault.h"
#include "alloc/heap_profile.h"
#include "alloc/limit.h"
#include "alloc/mapping_moves.h"
#include "alloc/meta_alloc.h"
#include "alloc/misuse.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/page_map.h"
#include "alloc/size_class.h"
#include "alloc/stack_trace.h"
#include "threading/spin_lock.h"

namespace strata::internal {
namespace {

// What the page map holds for every chunk of the region: the free path's
// Resolve tells a guarded pointer by its kind (the prefix every header
// registered there shares), read through an ArenaHeader*, whose alignment
// (a page) it therefore has.
struct alignas(kPoolSize) GuardedRegionHeader {
  uint32_t kind;
};
constinit GuardedRegionHeader g_header{kGuardedKind};

enum SlotState : uint32_t { kUnused = 0, kLive = 1, kFreed = 2 };

// One slot's metadata, in one meta_alloc array for the region (never
// freed). Invariants, for state kLive or kFreed:
//   SlotPage(i) <= block,  block + usable == SlotPage(i) + kPoolSize,
//   size <= usable,  block % alignment == 0;
//   kFreed: free_tid and free_pcs describe the free, sample == nullptr.
// Written only here, under g_lock; `state` is stored with release after
// the rest, for the fault handler's racy acquire read (guarded.h).
struct GuardedSlot {
  std::atomic<uint32_t> state;  // SlotState
  uint32_t alloc_tid;           // the allocating thread's kernel tid
  uint32_t free_tid;            // the freeing thread's (kFreed)
  uint32_t alloc_depth;         // frames in alloc_pcs
  uint32_t free_depth;          // frames in free_pcs
  uintptr_t block;              // the block's address
  size_t size;                  // the size asked for
  size_t usable;                // block to the page's end
  void* sample;                 // the heap profile's record, or nullptr
  uintptr_t alloc_pcs[kGuardedStackFrames];
  uintptr_t free_pcs[kGuardedStackFrames];
};

// SYNCHRONIZATION
//  - g_reserve: kNone -> kReserving (one thread's CAS) -> kReserved or
//    kFailed. The release store of kReserved publishes the region's fixed
//    fields below (g_base, g_end, g_count, g_slots, g_fifo) and pairs with
//    the acquire load in Reserved(); they never change afterwards.
//  - g_lock guards every slot's fields and the allocation state (the
//    unused cursor, the quarantine FIFO, the live count). Under it run only
//    mprotect and madvise of one page (no call that waits on another party,
//    none that allocates): it nests no other lock and is a leaf; fork holds
//    it (LockGuardedForFork).
//  - The fault handler reads slots with no lock (DescribeGuardedFault): a
//    deliberate race, isolated there.
//  - The counters are relaxed statistics.
enum ReserveState : uint32_t { kNone, kReserving, kReserved, kFailed };
std::atomic<uint32_t> g_reserve{kNone};
uintptr_t g_base = 0;              // the region (fixed once reserved)
uintptr_t g_end = 0;
uint32_t g_count = 0;              // slots reserved
GuardedSlot* g_slots = nullptr;    // g_count of them
uint32_t* g_fifo = nullptr;        // the quarantine: g_count entries, a ring

constinit threading::SpinLock g_lock;
uint32_t g_next_unused ABSL_GUARDED_BY(g_lock) = 0;  // slots [g_next_unused, g_count) never used
uint32_t g_fifo_head ABSL_GUARDED_BY(g_lock) = 0;    // the slot freed longest ago
uint32_t g_fifo_len ABSL_GUARDED_BY(g_lock) = 0;     // freed slots waiting
uint32_t g_live ABSL_GUARDED_BY(g_lock) = 0;         // live guarded blocks

std::atomic<uint64_t> g_allocations{0};
std::atomic<uint64_t> g_skipped{0};
std::atomic<uint64_t> g_faults{0};
std::atomic<uint64_t> g_region_bytes{0};

constexpr size_t RoundUp(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

bool Reserved() {
  // Acquire pairs with the release store of kReserved in EnsureRegion():
  // the region's fixed fields are set.
  return g_reserve.load(std::memory_order_acquire) == kReserved;
}

char* SlotPage(uint32_t i) { return reinterpret_cast<char*>(g_base + (2 * size_t{i} + 1) * kPoolSize); }

// The slot whose page holds a, or g_count (a guard, the pad).
uint32_t SlotAt(uintptr_t a) {
  const size_t page = (a - g_base) >> kPoolShift;
  if ((page & 1) == 0 || page / 2 >= g_count) return g_count;
  return static_cast<uint32_t>(page / 2);
}

// The alignment a block of n bytes (at most a page) gets without asking:
// that of the size class it would have had, the largest power of two <= 16
// dividing the class's size (size_class.h's contract).
size_t NaturalAlign(size_t n) {
  const size_t size = kClasses[SizeToClass(n)].size;
  return (size & 15) == 0 ? 16 : 8;
}

// Maps the region (guard pages and slots, all PROT_NONE), registers it in
// the page map, and makes its metadata. False when any of it is refused.
bool Reserve() {
  const auto n = static_cast<uint32_t>(GetOption(Option::kGuardedSlots));
  auto* slots = static_cast<GuardedSlot*>(MetaAllocate(n * sizeof(GuardedSlot)));
  auto* fifo = static_cast<uint32_t*>(MetaAllocate(n * sizeof(uint32_t)));
  if (slots == nullptr || fifo == nullptr) return false;  // (metadata is never given back)
  const size_t bytes = RoundUp((2 * size_t{n} + 1) * kPoolSize, kArenaSize);
  // The OS count and g_region_bytes change together for stats.
  MoveSpan move;
  void* base = os::MapAligned(bytes, kArenaSize);
  if (base == nullptr) return false;
  if (!os::Protect(base, bytes, /*accessible=*/false) ||
      !GetPageMap().Register(base, bytes, &g_header, /*is_arena=*/false)) {
    os::Unmap(base, bytes);
    return false;
  }
  g_base = reinterpret_cast<uintptr_t>(base);
  g_end = g_base + bytes;
  g_count = n;
  g_slots = slots;
  g_fifo = fifo;
  // Relaxed: statistics only.
  g_region_bytes.store(bytes, std::memory_order_relaxed);
  return true;
}

// True once the region is there (reserving it, and installing the fault
// handler, on first need). A thread that finds another reserving it gets
// false: its sample goes unguarded rather than wait.
bool EnsureRegion() {
  if (Reserved()) return true;
  uint32_t expected = kNone;
  // Relaxed: the winner publishes with the release store below; a loser
  // only learns that it is not its work.
  if (!g_reserve.compare_exchange_strong(expected, kReserving, std::memory_order_relaxed,
                                         std::memory_order_relaxed)) {
    return false;
  }
  const bool ok = Reserve();
  // Before the first guarded block exists: a fault in one is always seen.
  if (ok) InstallGuardedFaultHandler();
  // Release pairs with the acquire load in Reserved().
  g_reserve.store(ok ? kReserved : kFailed, std::memory_order_release);
  return ok;
}

// A slot for a new block: one never used, else the one freed longest ago;
// none while `limit` blocks are live. Sets *from_fifo for UndoTake.
bool TakeSlotLocked(uint32_t limit, uint32_t* out, bool* from_fifo) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  if (g_live >= limit) return false;
  if (g_next_unused < g_count) {
    *out = g_next_unused++;
    *from_fifo = false;
    return true;
  }
  if (g_fifo_len == 0) return false;
  *out = g_fifo[g_fifo_head];
  g_fifo_head = (g_fifo_head + 1) % g_count;
  --g_fifo_len;
  *from_fifo = true;
  return true;
}

// Puts back the slot TakeSlotLocked just gave (its page could not be made
// accessible).
void UndoTakeLocked(bool from_fifo) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  if (!from_fifo) {
    --g_next_unused;
    return;
  }
  g_fifo_head = (g_fifo_head + g_count - 1) % g_count;
  ++g_fifo_len;
}

void QuarantineLocked(uint32_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  g_fifo[(g_fifo_head + g_fifo_len) % g_count] = i;
  ++g_fifo_len;
}

// A copy of slot i's story for a report (the fault's fields a report
// prints), taken under the lock.
void CopySlotLocked(uint32_t i, uintptr_t a, GuardedFault* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_lock) {
  const GuardedSlot& s = g_slots[i];
  out->block = s.block;
  out->size = s.size;
  out->offset = static_cast<int64_t>(a - s.block);
  out->alloc_tid = s.alloc_tid;
  out->alloc_depth = s.alloc_depth;
  memcpy(out->alloc_pcs, s.alloc_pcs, sizeof(out->alloc_pcs));
  // Relaxed: under the lock, which orders the slot's fields.
  out->block_freed = s.state.load(std::memory_order_relaxed) == kFreed;
  out->free_tid = out->block_freed ? s.free_tid : 0;
  out->free_depth = out->block_freed ? s.free_depth : 0;
  memcpy(out->free_pcs, s.free_pcs, sizeof(out->free_pcs));
}

// ReportDetail's writer: the stacks of the block a misuse named.
void WriteBlockStacks(int fd, const void* arg) {
  const auto* f = static_cast<const GuardedFault*>(arg);
  if (f->block == 0) return;
  WriteGuardedStack(fd, "allocated", f->alloc_tid, f->alloc_pcs, f->alloc_depth);
  if (f->block_freed) WriteGuardedStack(fd, "freed", f->free_tid, f->free_pcs, f->free_depth);
}

}  // namespace

void* GuardedAllocate(size_t n, size_t align, const uintptr_t* pcs, size_t depth) {
  if (!EnsureRegion() || !ChargeFootprint(kPoolSize, /*optional=*/true)) {
    // Relaxed: statistics only.
    g_skipped.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  const size_t want = n == 0 ? 1 : n;
  const size_t a = align > NaturalAlign(want) ? align : NaturalAlign(want);
  const uint32_t tid = os::CurrentThreadTid();
  const auto limit = static_cast<uint32_t>(GetOption(Option::kGuardedSlots));
  uintptr_t block = 0;
  {
    threading::SpinLockHolder hold(&g_lock);
    uint32_t i;
    bool from_fifo;
    if (TakeSlotLocked(limit, &i, &from_fifo)) {
      char* page = SlotPage(i);
      if (os::Protect(page, kPoolSize, /*accessible=*/true)) {
        GuardedSlot& s = g_slots[i];
        block = (reinterpret_cast<uintptr_t>(page) + kPoolSize - want) & ~(a - 1);
        s.block = block;
        s.size = n;
        s.usable = reinterpret_cast<uintptr_t>(page) + kPoolSize - block;
        s.sample = nullptr;
        s.alloc_tid = tid;
        s.alloc_depth = static_cast<uint32_t>(depth < kGuardedStackFrames ? depth : kGuardedStackFrames);
        memcpy(s.alloc_pcs, pcs, s.alloc_depth * sizeof(uintptr_t));
        s.free_depth = 0;
        // Release pairs with the fault handler's acquire load
        // (DescribeGuardedFault): the fields above are this block's.
        s.state.store(kLive, std::memory_order_release);
        ++g_live;
      } else {
        UndoTakeLocked(from_fifo);
      }
    }
  }
  // Relaxed: statistics only.
  if (block == 0) {
    UnchargeFootprint(kPoolSize);
    g_skipped.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  NoteMapped();
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<void*>(block);
}

void GuardedSetSample(void* p, void* sample) {
  threading::SpinLockHolder hold(&g_lock);
  g_slots[SlotAt(reinterpret_cast<uintptr_t>(p))].sample = sample;
}

bool InGuardedRegion(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  return Reserved() && a >= g_base && a < g_end;
}

bool GuardedResolve(const void* p, const char* op, size_t* usable) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  GuardedFault f{};
  {
    threading::SpinLockHolder hold(&g_lock);
    const uint32_t i = SlotAt(a);
    if (i < g_count) {
      const GuardedSlot& s = g_slots[i];
      // Relaxed: under the lock.
      const uint32_t state = s.state.load(std::memory_order_relaxed);
      if (state != kUnused && s.block == a) {
        *usable = s.usable;
        return true;
      }
      // Inside a slot's page: its block's stacks go with the report.
      if (state != kUnused) CopySlotLocked(i, a, &f);
    }
  }
  const ReportDetail detail{&WriteBlockStacks, &f};
  ReportMisuse(p, Misuse::kNotGuardedBlock, op, &detail);
  return false;
}

bool GuardedIsLive(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  threading::SpinLockHolder hold(&g_lock);
  const uint32_t i = SlotAt(a);
  // Relaxed: under the lock.
  return i < g_count && g_slots[i].block == a && g_slots[i].state.load(std::memory_order_relaxed) == kLive;
}

// In the entry section (config.h): the free's stack starts at the program.
STRATA_ENTRY void GuardedFree(void* p, const char* op) {
  uintptr_t pcs[kGuardedStackFrames];
  const size_t depth = CaptureStack(pcs, kGuardedStackFrames);
  const uint32_t tid = os::CurrentThreadTid();
  const auto a = reinterpret_cast<uintptr_t>(p);
  void* sample = nullptr;
  bool freed = false;
  GuardedFault f{};
  {
    threading::SpinLockHolder hold(&g_lock);
    // GuardedResolve found p at the start of a slot's block (the slot
    // cannot change: it is p's page).
    const uint32_t i = SlotAt(a);
    GuardedSlot& s = g_slots[i < g_count ? i : 0];
    // Relaxed: under the lock.
    if (i < g_count && s.block == a && s.state.load(std::memory_order_relaxed) == kLive) {
      char* page = SlotPage(i);
      // Inaccessible first, then its pages dropped: a later touch faults,
      // and the slot reads as zeros when it serves again.
      os::Protect(page, kPoolSize, /*accessible=*/false);
      os::Purge(page, kPoolSize, os::PurgeMode::kDontNeed);
      s.free_tid = tid;
      s.free_depth = static_cast<uint32_t>(depth);
      memcpy(s.free_pcs, pcs, depth * sizeof(uintptr_t));
      sample = s.sample;
      s.sample = nullptr;
      // Release pairs with the fault handler's acquire load.
      s.state.store(kFreed, std::memory_order_release);
      QuarantineLocked(i);
      --g_live;
      freed = true;
    } else if (i < g_count && s.block == a) {
      CopySlotLocked(i, a, &f);  // freed already: both stacks for the report
    }
  }
  if (!freed) {
    // Freed before (its slot still holds it), or freed and its slot given
    // to another block since (then only the line).
    const ReportDetail detail{&WriteBlockStacks, &f};
    ReportMisuse(p, Misuse::kDoubleFreeGuarded, op, &detail);
    return;
  }
  UnchargeFootprint(kPoolSize);
  if (sample != nullptr) ProfileFree(sample);
}

void GuardedReportFreed(const void* p, const char* op) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  GuardedFault f{};
  {
    threading::SpinLockHolder hold(&g_lock);
    const uint32_t i = SlotAt(a);
    if (i < g_count && g_slots[i].block == a) CopySlotLocked(i, a, &f);
  }
  const ReportDetail detail{&WriteBlockStacks, &f};
  ReportMisuse(p, Misuse::kDoubleFreeGuarded, op, &detail);
}

// The deliberate race of this file: a signal handler cannot take g_lock
// (the thread it interrupted may hold it), so it reads the slots as they
// are. A slot's state is read with acquire (pairs with its release stores
// under the lock); its other fields may be changing when another thread
// reuses the slot at that moment, which only the program's own race can
// cause (it touched a block it no longer owned): the report is then best
// effort.
void DescribeGuardedFault(uintptr_t a, GuardedFault* out) {
  memset(out, 0, sizeof(*out));
  auto state_of = [](uint32_t i) { return g_slots[i].state.load(std::memory_order_acquire); };
  uint32_t i = SlotAt(a);
  if (i < g_count) {
    // A slot's own page faults only when it holds no live block: freed (a
    // use after free), or never used (a wild access).
    if (state_of(i) != kFreed) {
      out->kind = GuardedFault::kUnusedSlot;
      return;
    }
    out->kind = GuardedFault::kUseAfterFree;
    out->block_freed = true;
  } else {
    // A guard page (or the pad): an overflow of the block before it or an
    // underflow of the one after it, whichever is nearer, live ones first.
    const size_t page = (a - g_base) >> kPoolShift;
    const uint32_t before = page >= 1 && (page - 1) / 2 < g_count ? static_cast<uint32_t>((page - 1) / 2) : g_count;
    const uint32_t after = (page & 1) == 0 && page / 2 < g_count ? static_cast<uint32_t>(page / 2) : g_count;
    auto distance = [&](uint32_t j, bool want_live) -> uint64_t {
      if (j >= g_count) return UINT64_MAX;
      const uint32_t state = state_of(j);
      if (state == kUnused || (state == kLive) != want_live) return UINT64_MAX;
      const uintptr_t b = g_slots[j].block;
      return a >= b ? a - (b + g_slots[j].usable) : b - a;
    };
    for (const bool want_live : {true, false}) {
      const uint64_t d_before = distance(before, want_live);
      const uint64_t d_after = distance(after, want_live);
      if (d_before == UINT64_MAX && d_after == UINT64_MAX) continue;
      i = d_before <= d_after ? before : after;
      out->block_freed = !want_live;
      break;
    }
    if (i >= g_count) {
      out->kind = GuardedFault::kUnusedSlot;
      return;
    }
    out->kind = i == before ? GuardedFault::kOverflow : GuardedFault::kUnderflow;
  }
  const GuardedSlot& s = g_slots[i];
  out->block = s.block;
  out->size = s.size;
  out->offset = static_cast<int64_t>(a - s.block);
  out->alloc_tid = s.alloc_tid;
  out->alloc_depth = s.alloc_depth < kGuardedStackFrames ? s.alloc_depth : kGuardedStackFrames;
  memcpy(out->alloc_pcs, s.alloc_pcs, sizeof(out->alloc_pcs));
  if (out->block_freed) {
    out->free_tid = s.free_tid;
    out->free_depth = s.free_depth < kGuardedStackFrames ? s.free_depth : kGuardedStackFrames;
    memcpy(out->free_pcs, s.free_pcs, sizeof(out->free_pcs));
  }
}

GuardedStats GetGuardedStats() {
  GuardedStats out{};
  // Relaxed: statistics only.
  out.allocations = g_allocations.load(std::memory_order_relaxed);
  out.skipped = g_skipped.load(std::memory_order_relaxed);
  out.faults = g_faults.load(std::memory_order_relaxed);
  out.region_bytes = g_region_bytes.load(std::memory_order_relaxed);
  if (Reserved()) {
    threading::SpinLockHolder hold(&g_lock);
    out.slots_total = g_count;
    out.slots_live = g_live;
    out.slots_freed = g_fifo_len;
  }
  return out;
}

void CountGuardedFault() {
  // Relaxed: statistics only.
  g_faults.fetch_add(1, std::memory_order_relaxed);
}

// Held from fork's prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockGuardedForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Lock(); }
void UnlockGuardedForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Unlock(); }

}  // namespace strata::internal
