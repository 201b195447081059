// Introspection in the spirit of CPython's sys._debugmallocstats(): per size
// class blocks and runs, arenas, large blocks and OS traffic. Gathering and
// printing never allocate.
//
// Consistency: the numbers are read from the allocator's own metadata. They
// are exact while no other thread allocates or frees; under concurrent load
// they are a best-effort snapshot (per-thread counters summed on read come
// with the statistics work tracked in the issues).
#ifndef STRATA_ALLOC_STATS_H_
#define STRATA_ALLOC_STATS_H_

#include <cstddef>
#include <cstdint>

#include "alloc/size_class.h"

namespace strata {

inline constexpr size_t kNumSizeClasses = internal::kNumClasses;  // index 0 unused

struct SizeClassStats {
  uint32_t block_size;      // bytes per block
  uint32_t run_pools;       // 4 KiB pools per run
  uint64_t blocks_in_use;   // handed out and not yet freed back to their run
  uint64_t blocks_free;     // free in live runs (carved or not yet carved)
  uint64_t runs_full;       // runs with no free block
  uint64_t runs_partial;    // runs with some blocks in use and some free
  uint64_t runs_empty;      // runs with no block in use (kept as a current run)
};

struct Stats {
  SizeClassStats classes[kNumSizeClasses];
  uint64_t arenas_mapped;      // 256 KiB arenas the OS has given strata
  uint64_t arenas_owned;       // of those, owned by a thread's heap
  uint64_t arenas_empty;       // of those, empty and waiting for reuse
  uint64_t pools_in_runs;      // pools serving some size class
  uint64_t pools_free;         // usable pools of owned arenas not in any run
  uint64_t small_bytes_in_use; // blocks_in_use * block_size over all classes
  uint64_t large_blocks;       // live large blocks
  uint64_t large_bytes;        // their usable bytes
  uint64_t large_cached;       // large mappings kept for reuse
  uint64_t large_cached_bytes;
  uint64_t os_mapped_bytes;    // bytes currently mapped from the OS
  uint64_t os_maps;            // mmap calls that succeeded
  uint64_t os_unmaps;          // munmap calls
  uint64_t heaps;              // thread heaps ever created
  uint64_t heaps_orphaned;     // heaps of exited threads still owning arenas
};

// Fills *out. Never allocates.
void GetStats(Stats* out);

// Writes a human-readable table of *stats (or a fresh snapshot when null).
void WriteStatsTable(int fd, const Stats* stats = nullptr);

}  // namespace strata

#endif  // STRATA_ALLOC_STATS_H_
