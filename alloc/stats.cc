// Gathering: GetStats() walks the heaps, arenas and large blocks into one
// snapshot (Stats, stats.h). The outputs are in stats_format.cc. Nothing
// here allocates.
#include "alloc/stats.h"

#include <cstring>
#include <iterator>

#include "alloc/arena.h"
#include "alloc/error.h"
#include "alloc/foreign_hook.h"
#include "alloc/heap.h"
#include "alloc/heap_counters.h"
#include "alloc/guarded.h"
#include "alloc/heap_profile.h"
#include "alloc/large.h"
#include "alloc/limit.h"
#include "alloc/mapping_moves.h"
#include "alloc/meta_alloc.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/page_map.h"
#include "alloc/release.h"
#include "alloc/retention_rows.h"
#include "threading/backoff.h"
#include "threading/spin_lock.h"

namespace strata {

using internal::ArenaHeader;
using internal::ArenaRecord;
using internal::ArenaState;
using internal::Heap;
using HeapState = internal::HeapEntry::State;
using internal::kClasses;
using internal::kPoolSize;
using internal::PoolDesc;
using internal::PoolState;

namespace {

constexpr uint64_t kUsableArenaBytes = internal::kUsablePools * kPoolSize;

size_t PinBucket(uint64_t live) {
  if (live <= 1) return 0;
  if (live <= 3) return 1;
  if (live <= 15) return 2;
  if (live <= 63) return 3;
  return 4;
}

// Tracks the earliest and latest purge deadline of resident free memory.
struct Deadlines {
  uint64_t now;
  int64_t delay;
  bool any = false;
  int64_t first = 0;
  int64_t last = 0;

  void Add(uint32_t since) {
    const int64_t left = delay - static_cast<int32_t>(now - since);
    const int64_t d = left < 0 ? 0 : left;
    if (!any || d < first) first = d;
    if (!any || d > last) last = d;
    any = true;
  }
};

// Adds one arena (held under its heap's lock) to the snapshot.
void AddArena(Stats* out, const ArenaHeader* a, bool orphaned, Deadlines* deadlines) {
  ++out->arenas_owned;
  RetentionStats& r = out->retention;
  r.arena_headers += internal::kFirstUsablePool * kPoolSize;
  for (size_t i = internal::kFirstUsablePool; i < internal::kPoolsPerArena; ++i) {
    const PoolDesc& d = *a->pool(i);
    if (d.state == PoolState::kFree) {
      ++out->pools_free;
      if ((a->dirty_mask >> i) & 1) {
        (orphaned ? r.free_pools_orphaned : r.free_pools_cached) += kPoolSize;
        deadlines->Add(d.run.free_since());
      } else {
        r.free_pools_purged += kPoolSize;
      }
      continue;
    }
    ++out->pools_in_runs;
    if (d.state != PoolState::kHead) continue;
    SizeClassStats& s = out->classes[d.size_class];
    if (d.run.kept_empty()) {
      // An empty run kept whole (read under the heap lock, like its list).
      s.blocks_free += d.capacity;
      ++s.runs_empty;
      const uint64_t run_bytes = uint64_t{d.run_pools} * kPoolSize;
      if (d.run.purged()) {
        r.free_pools_purged += run_bytes;
      } else {
        r.free_in_empty_runs += uint64_t{d.capacity} * s.block_size;
        r.run_tails += run_bytes - uint64_t{d.capacity} * s.block_size;
        deadlines->Add(d.run.free_since());
      }
      continue;
    }
    const uint64_t size = s.block_size;
    uint64_t used = d.Used();
    if (used > d.capacity) used = d.capacity;  // a racy read mid-update
    s.blocks_in_use += used;
    s.blocks_free += d.capacity - used;
    if (used == d.capacity) {
      ++s.runs_full;
    } else if (used == 0) {
      ++s.runs_empty;
    } else {
      ++s.runs_partial;
    }
    const uint64_t free_bytes = (d.capacity - used) * size;
    if (used == 0) {
      r.free_in_empty_runs += free_bytes;
    } else {
      r.free_pinned[PinBucket(used)] += free_bytes;
    }
    r.run_tails += uint64_t{d.run_pools} * kPoolSize - uint64_t{d.capacity} * size;
  }
}

}  // namespace

// Every field of RetentionStats but the two deadlines has a row.
static_assert(sizeof(RetentionStats) ==
                  (std::size(internal::kRetentionRows) - 1 + kPinBuckets + 2) * sizeof(uint64_t),
              "a RetentionStats field without a row in retention_rows.h");

uint64_t RetentionStats::Total() const {
  uint64_t t = 0;
  for (const internal::RetentionRow& row : internal::kRetentionRows) t += RowBytes(*this, row);
  return t;
}

namespace {

// Adds every mapped arena to the snapshot, each once: walked by its record
// (type-stable, never unlinked), not by its holder, so an arena that
// changes hands meanwhile (a heap taking an empty one, releasing one,
// absorbing an orphan's) is counted once, where it was when its record was
// read. An owned arena is read under its owner's lock, after checking that
// the owner still holds it (then none can take it from it meanwhile).
// Adds an arena that holds no block: in the empty stack, or between a
// heap and the stack (see AddArenas).
void AddEmptyArena(Stats* out, const ArenaRecord* rec, Deadlines* deadlines) {
  RetentionStats& r = out->retention;
  ++out->arenas_empty;
  r.arena_headers += internal::kFirstUsablePool * kPoolSize;
  // Relaxed: records are read racily (ArenaRecord).
  if (rec->purged.load(std::memory_order_relaxed)) {
    ++out->arenas_empty_purged;
    r.empty_arenas_purged += kUsableArenaBytes;
  } else {
    r.empty_arenas_resident += kUsableArenaBytes;
    deadlines->Add(rec->empty_since.load(std::memory_order_relaxed));
  }
}

void AddArenas(Stats* out, Deadlines* deadlines) {
  threading::Backoff backoff;
  for (ArenaRecord* rec = internal::AllArenaRecords(); rec != nullptr; rec = rec->all_next) {
    for (;;) {
      // Relaxed: records are read racily (ArenaRecord); an owned arena's
      // owner is then read with acquire and checked under its lock.
      const ArenaState state = rec->state.load(std::memory_order_relaxed);
      if (state == ArenaState::kUnmapped) break;
      ArenaHeader* a = rec->arena.load(std::memory_order_relaxed);
      // Acquire pairs with the release store of owner when a heap took the
      // arena: its reset header is visible.
      Heap* owner = state == ArenaState::kOwned ? a->owner.load(std::memory_order_acquire) : nullptr;
      if (owner == nullptr) {
        // In the empty stack, or between a heap and it (a taker's reset
        // before its owner store, a release after it): no block either
        // way. (No wait for it: in a fork child it may stay so.)
        AddEmptyArena(out, rec, deadlines);
        break;
      }
      threading::SpinLockHolder hold(&owner->arenas().lock());
      // Relaxed: under the owner's lock, which every release of the arena
      // holds.
      if (a->owner.load(std::memory_order_relaxed) == owner &&
          rec->state.load(std::memory_order_relaxed) == ArenaState::kOwned) {
        AddArena(out, a, owner->entry().state() == HeapState::kOrphan, deadlines);
        break;
      }
      // It changed hands after we read its owner: look again.
      backoff.Pause();
    }
  }
}

struct Gather {
  Stats* out;
  uint64_t now;
  int64_t delay;
};

// Everything the retention report sums, read while no mapping is made or
// undone (mapping_moves.h): the rows then sum to the bytes mapped. May run
// more than once: it starts afresh each time.
void GatherMapped(void* arg) {
  const Gather& g = *static_cast<const Gather*>(arg);
  Stats* out = g.out;
  memset(out, 0, sizeof(*out));
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    out->classes[c].block_size = kClasses[c].size;
    out->classes[c].run_pools = kClasses[c].run_pools;
  }
  Deadlines deadlines{g.now, g.delay < 0 ? 0 : g.delay};
  RetentionStats& r = out->retention;
  AddArenas(out, &deadlines);
  uint64_t transit = 0;
  uint64_t cached[kNumSizeClasses] = {};
  for (Heap* h = internal::AllHeaps(); h != nullptr; h = h->entry().all_next()) {
    ++out->heaps;
    const HeapState state = h->entry().state();
    if (state == HeapState::kActive) ++out->heaps_active;
    if (state == HeapState::kOrphan) ++out->heaps_orphaned;
    const internal::HeapCounters& k = h->counters();
    for (size_t i = 0; i < internal::kNumHeapCounters; ++i) {
      out->*internal::kStatsCounterFields[i] += (k.*internal::kHeapCounterRows[i].field).Get();
    }
    const uint64_t outgoing = h->outgoing().Bytes();
    for (size_t b = 0; b < kBatchHistogramBuckets; ++b) {
      const uint64_t batches = k.batch_blocks[b].Get();
      out->batch_histogram[b] += batches;
      out->remote_batches += batches;
    }
    const int64_t queued = h->incoming().QueuedBytes();
    const int64_t suspects = h->incoming().suspects().Bytes();
    out->outgoing_bytes += outgoing;
    out->queued_bytes += queued > 0 ? static_cast<uint64_t>(queued) : 0;
    transit += outgoing + (queued > 0 ? static_cast<uint64_t>(queued) : 0) +
               (suspects > 0 ? static_cast<uint64_t>(suspects) : 0);
    for (size_t c = 1; c < kNumSizeClasses; ++c) {
      out->classes[c].allocations += k.allocations[c].Get();
      out->classes[c].requested_bytes += k.requested_bytes[c].Get();
      // Free blocks in the thread's class cache: counted in use by their
      // runs, free for the program (racy: a moving thread's lists).
      cached[c] += h->cache().Length(c);
    }
  }
  // Blocks cached or travelling are moved from "in use" to their rows, at
  // most what the runs counted in use: the sum stays the runs' bytes.
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    SizeClassStats& k = out->classes[c];
    const uint64_t n = cached[c] < k.blocks_in_use ? cached[c] : k.blocks_in_use;
    k.blocks_in_use -= n;
    k.blocks_free += n;
    r.free_in_thread_caches += n * k.block_size;
  }
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    const SizeClassStats& k = out->classes[c];
    out->small_bytes_in_use += k.blocks_in_use * k.block_size;
    out->allocations += k.allocations;
    out->requested_bytes += k.requested_bytes;
    out->handed_out_bytes += k.allocations * k.block_size;
  }
  r.in_remote_transit = transit < out->small_bytes_in_use ? transit : out->small_bytes_in_use;
  r.in_use = out->small_bytes_in_use - r.in_remote_transit;

  const internal::ArenaSourceStats src = internal::GetArenaSourceStats();
  out->arenas_mapped = src.arenas_mapped;
  out->arenas_mapped_peak = src.arenas_mapped_peak;
  out->arenas_unmapped = src.arenas_unmapped;
  out->arena_reservations = src.reservations;
  r.reserve_untouched = src.reserve_bytes_left;
  if (deadlines.any && g.delay >= 0) {
    r.next_purge_ms = deadlines.first;
    r.all_purged_ms = deadlines.last;
  } else {
    r.next_purge_ms = r.all_purged_ms = -1;
  }

  const internal::LargeStats large = internal::GetLargeStats();
  out->large_blocks = large.live_count;
  out->large_bytes = large.live_bytes;
  out->large_cached = large.cached_count;
  out->large_cached_bytes = large.cached_bytes;
  out->large_cache_hits = large.cache_hits;
  // The large mapped bytes, split: a block moving between live and the
  // cache is read on one side or the other (or both, racily), so the
  // split is clamped to what is mapped and the rest is header and rounding.
  r.in_use_large = large.live_bytes < large.mapped_bytes ? large.live_bytes : large.mapped_bytes;
  const uint64_t large_left = large.mapped_bytes - r.in_use_large;
  r.large_cached = large.cached_bytes < large_left ? large.cached_bytes : large_left;
  r.large_overhead = large_left - r.large_cached;
  r.metadata = internal::MetaBytesMapped() + internal::GetPageMap().LeafBytes();
  r.guarded = internal::GetGuardedStats().region_bytes;
  out->live_bytes = r.in_use + r.in_use_large;

  internal::os::Counters& os = internal::os::GetCounters();
  // Relaxed: statistics only (and inside the moves' protocol: no mapping
  // changes this count while it runs).
  out->os_mapped_bytes = os.mapped_bytes.load(std::memory_order_relaxed);
}

}  // namespace

void GetStats(Stats* out) {
  const int64_t delay = GetOption(Option::kPurgeDelayMs);
  Gather gather{out, internal::os::NowMs(), delay};
  internal::ReadWithoutMoves(&GatherMapped, &gather);
  out->detailed = GetOption(Option::kStats) != 0;
  out->heaps_recovered = internal::HeapsRecovered();

  internal::os::Counters& os = internal::os::GetCounters();
  // Relaxed: statistics only.
  out->os_maps = os.maps.load(std::memory_order_relaxed);
  out->os_map_failures = os.map_failures.load(std::memory_order_relaxed);
  out->os_unmaps = os.unmaps.load(std::memory_order_relaxed);
  out->os_purges = os.purges.load(std::memory_order_relaxed);
  out->os_purged_bytes = os.purged_bytes.load(std::memory_order_relaxed);
  out->resident_bytes = internal::os::ResidentBytes();

  out->released_bytes = internal::ReleasedSoFar().Total();
  const internal::BackgroundState bg = internal::GetBackgroundState();
  out->background_running = bg.running;
  out->background_passes = bg.passes;
  out->slow_path_passes = bg.slow_passes;
  out->errors = internal::ErrorCount();
  out->foreign_returned = internal::ForeignFreesHandedBack();
  const internal::LimitStats limit = internal::GetLimitStats();
  out->footprint_bytes = limit.footprint_bytes;
  out->footprint_peak = limit.footprint_peak;
  out->limit_soft_events = limit.soft_events;
  out->limit_soft_over = limit.soft_over;
  out->limit_hard_refusals = limit.hard_refusals;
  const internal::ProfileTotals profile = internal::GetProfileTotals(internal::ProfileView::kLive);
  out->profile_samples_live = profile.samples_live;
  out->profile_samples_taken = profile.samples_taken;
  out->profile_live_bytes = profile.bytes;
  out->profile_stacks = profile.buckets;
  const internal::GuardedStats guarded = internal::GetGuardedStats();
  out->guarded_allocations = guarded.allocations;
  out->guarded_skipped = guarded.skipped;
  out->guarded_faults = guarded.faults;
  out->guarded_slots_total = guarded.slots_total;
  out->guarded_slots_live = guarded.slots_live;
  out->guarded_slots_freed = guarded.slots_freed;
}

}  // namespace strata
