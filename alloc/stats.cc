#include "alloc/stats.h"

#include <cstring>

#include "alloc/arena.h"
#include "alloc/fd_writer.h"
#include "alloc/heap.h"
#include "alloc/large.h"
#include "alloc/os.h"

namespace strata {

using internal::ArenaHeader;
using internal::kClasses;
using internal::PoolDesc;
using internal::PoolState;

void GetStats(Stats* out) {
  memset(out, 0, sizeof(*out));
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    out->classes[c].block_size = kClasses[c].size;
    out->classes[c].run_pools = kClasses[c].run_pools;
  }
  // Racy reads of other threads' metadata: see the header's consistency note.
  internal::ForEachArena([out](ArenaHeader* a) {
    ++out->arenas_mapped;
    // Relaxed: a snapshot.
    if (a->owner.load(std::memory_order_relaxed) == nullptr) {
      ++out->arenas_empty;
      return;
    }
    ++out->arenas_owned;
    for (size_t i = internal::kFirstUsablePool; i < internal::kPoolsPerArena; ++i) {
      const PoolDesc& d = a->pools[i];
      if (d.state == PoolState::kFree) {
        ++out->pools_free;
        continue;
      }
      ++out->pools_in_runs;
      if (d.state != PoolState::kHead) continue;
      SizeClassStats& s = out->classes[d.size_class];
      s.blocks_in_use += d.used;
      s.blocks_free += d.capacity - d.used;
      if (d.used == d.capacity) {
        ++s.runs_full;
      } else if (d.used == 0) {
        ++s.runs_empty;
      } else {
        ++s.runs_partial;
      }
    }
  });
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    out->small_bytes_in_use += out->classes[c].blocks_in_use * out->classes[c].block_size;
  }
  const internal::LargeStats large = internal::GetLargeStats();
  out->large_blocks = large.live_count;
  out->large_bytes = large.live_bytes;
  out->large_cached = large.cached_count;
  out->large_cached_bytes = large.cached_bytes;
  internal::os::Counters& os = internal::os::GetCounters();
  // Relaxed: statistics only.
  out->os_mapped_bytes = os.mapped_bytes.load(std::memory_order_relaxed);
  out->os_maps = os.maps.load(std::memory_order_relaxed);
  out->os_unmaps = os.unmaps.load(std::memory_order_relaxed);
  for (internal::Heap* h = internal::AllHeaps(); h != nullptr; h = h->all_next()) {
    ++out->heaps;
    if (h->state() == internal::Heap::State::kOrphan) ++out->heaps_orphaned;
  }
}

void WriteStatsTable(int fd, const Stats* stats) {
  Stats local;
  if (stats == nullptr) {
    GetStats(&local);
    stats = &local;
  }
  internal::FdWriter w(fd);
  w.Str("class  size  pools/run   in use     free   full partial  empty   bytes in use\n");
  uint64_t runs = 0;
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    const SizeClassStats& s = stats->classes[c];
    const uint64_t class_runs = s.runs_full + s.runs_partial + s.runs_empty;
    if (class_runs == 0) continue;
    runs += class_runs;
    w.Uint(c, 5).Uint(s.block_size, 6).Uint(s.run_pools, 11).Uint(s.blocks_in_use, 9)
        .Uint(s.blocks_free, 9).Uint(s.runs_full, 7).Uint(s.runs_partial, 8).Uint(s.runs_empty, 7)
        .Uint(s.blocks_in_use * s.block_size, 15).Char('\n');
  }
  if (runs == 0) w.Str("  (no runs in use)\n");
  w.Str("# arenas: ").Uint(stats->arenas_mapped).Str(" mapped (")
      .Uint(stats->arenas_mapped * internal::kArenaSize >> 10).Str(" KiB), ")
      .Uint(stats->arenas_owned).Str(" owned by heaps, ").Uint(stats->arenas_empty)
      .Str(" empty\n");
  w.Str("# pools: ").Uint(stats->pools_in_runs).Str(" in ").Uint(runs).Str(" runs, ")
      .Uint(stats->pools_free).Str(" free in owned arenas\n");
  w.Str("# small/medium bytes in use: ").Uint(stats->small_bytes_in_use).Char('\n');
  w.Str("# large: ").Uint(stats->large_blocks).Str(" blocks, ").Uint(stats->large_bytes)
      .Str(" bytes; cache ").Uint(stats->large_cached).Str(" mappings, ")
      .Uint(stats->large_cached_bytes).Str(" bytes\n");
  w.Str("# OS: ").Uint(stats->os_mapped_bytes).Str(" bytes mapped, ").Uint(stats->os_maps)
      .Str(" maps, ").Uint(stats->os_unmaps).Str(" unmaps\n");
  w.Str("# heaps: ").Uint(stats->heaps).Str(" created, ").Uint(stats->heaps_orphaned)
      .Str(" orphaned\n");
}

}  // namespace strata
