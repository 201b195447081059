// Introspection in the spirit of CPython's sys._debugmallocstats(), and more:
// per size class blocks and runs, arenas, large blocks, OS traffic,
// cross-thread free traffic, the release engine, every option's value and
// origin, and a retention report that says why each mapped byte is held.
// Gathering and printing never allocate.
//
// How the numbers are gathered: per-thread counters (each heap's, written
// only on slow paths) are summed on read; blocks in use come from each
// run's own `used` count, read under each heap's metadata lock. Nothing is
// added to the allocation fast path. Consistency:
//  - Exact in every snapshot, under any load: the retention rows sum to
//    os_mapped_bytes. The snapshot is taken while no mapping is made or
//    undone (alloc/mapping_moves.h), and each arena is read once, by its
//    record, wherever it is (a heap's, under that heap's lock, or empty),
//    so arenas changing hands are counted once.
//  - A moment apart under load (each exact at rest): how a heap's bytes
//    split between the rows in use, in transit, in threads' class caches,
//    free in runs (blocks move between them while the heaps are read one
//    after another; each arena's bytes still add up to its size); the
//    split of the large mapped bytes between in_use_large, large_cached
//    and large_overhead; the summed counters (each never goes backwards).
//  - Totals are computed from the same snapshot as their parts (class sums
//    equal the totals).
//  - The one exception: in a child forked while another thread of the
//    parent was between the OS's count of a mapping and its holder's
//    (a few instructions), that mapping is counted on one side only.
#ifndef STRATA_ALLOC_STATS_H_
#define STRATA_ALLOC_STATS_H_

#include <cstddef>
#include <cstdint>
#include <iterator>

#include "alloc/heap_counter_list.h"
#include "alloc/size_class.h"

namespace strata {

inline constexpr size_t kNumSizeClasses = internal::kNumClasses;  // index 0 unused
// [2^b, 2^(b+1)) blocks per batch, the last bucket everything larger.
inline constexpr size_t kBatchHistogramBuckets = internal::kBatchBuckets;
inline constexpr size_t kPinBuckets = 5;              // 1, 2-3, 4-15, 16-63, 64+ live blocks

struct SizeClassStats {
  uint32_t block_size;      // bytes per block
  uint32_t run_pools;       // 4 KiB pools per run
  uint64_t blocks_in_use;   // handed out and not yet back in their run (includes in transit)
  uint64_t blocks_free;     // free in live runs (carved or not yet carved) and in threads'
                            // class caches
  uint64_t runs_full;       // runs with no free block
  uint64_t runs_partial;    // runs with some blocks in use and some free
  uint64_t runs_empty;      // runs with no block in use (kept as a current run)
  uint64_t allocations;     // detailed stats (option `stats`): calls served since enabled
  uint64_t requested_bytes; // detailed stats: bytes those calls asked for
};

// Every byte strata has mapped from the OS, by the reason it is held. In
// every snapshot, under load too, Total() == Stats::os_mapped_bytes (see
// "Consistency" above for what may be a moment apart).
struct RetentionStats {
  uint64_t in_use;                 // blocks the program holds (small, medium)
  uint64_t in_use_large;           // usable bytes of live large blocks
  uint64_t in_remote_transit;      // freed by another thread, travelling home
                                   // (outgoing batches, owners' queues)
  uint64_t free_in_thread_caches;  // free blocks in threads' class caches
  uint64_t free_in_empty_runs;     // free blocks of runs with no live block
                                   // (a thread's current run, kept for reuse)
  uint64_t free_pinned[kPinBuckets];  // free blocks of runs pinned by N live blocks
  uint64_t run_tails;              // bytes at the end of runs no block fits
  uint64_t free_pools_cached;      // free pools in live threads' heaps, resident
  uint64_t free_pools_orphaned;    // free pools in exited threads' heaps, resident
  uint64_t free_pools_purged;      // free pools in heaps, purged (mapped, not resident)
  uint64_t empty_arenas_resident;  // pools of empty arenas, waiting for purge
  uint64_t empty_arenas_purged;    // pools of empty arenas, purged
  uint64_t arena_headers;          // pools 0 and 1 of every mapped arena (its metadata)
  uint64_t reserve_untouched;      // reserved for arenas, never used yet
  uint64_t large_overhead;         // large mappings: header, alignment, page rounding
  uint64_t large_cached;           // freed large mappings kept for reuse
  uint64_t metadata;               // heaps, arena records, page-map leaves
  uint64_t guarded;                // the guarded slots' region (guarded.h): its
                                   // guard pages and slots, live blocks' pages included
  int64_t next_purge_ms;           // ms until the first resident free memory is purged (-1: none)
  int64_t all_purged_ms;           // ms until all of it is (-1: none; purge_delay_ms < 0: never)

  uint64_t Total() const;
};

struct Stats {
  SizeClassStats classes[kNumSizeClasses];
  RetentionStats retention;

  // Totals (from the same snapshot as the classes).
  uint64_t live_bytes;           // retention.in_use + retention.in_use_large
  uint64_t small_bytes_in_use;   // blocks_in_use * block_size over all classes (with transit)
  uint64_t allocations;          // detailed stats: sum over classes
  uint64_t requested_bytes;      // detailed stats: sum over classes
  uint64_t handed_out_bytes;     // detailed stats: allocations * block size
  bool detailed;                 // option `stats` is on

  // Arenas and pools.
  uint64_t arenas_mapped;        // 256 KiB arenas mapped now
  uint64_t arenas_mapped_peak;   // the most mapped at once so far
  uint64_t arenas_owned;         // of those, owned by a heap
  uint64_t arenas_empty;         // of those, empty in the shared stack
  uint64_t arenas_empty_purged;  // of those, purged
  uint64_t arenas_unmapped;      // arenas given back to the OS so far
  uint64_t arena_reservations;   // OS mappings made for arenas
  uint64_t pools_in_runs;        // pools serving some size class
  uint64_t pools_free;           // usable pools of owned arenas in no run

  // Large blocks.
  uint64_t large_blocks;         // live
  uint64_t large_bytes;          // their usable bytes
  uint64_t large_cached;         // mappings kept for reuse
  uint64_t large_cached_bytes;
  uint64_t large_cache_hits;

  // OS traffic.
  uint64_t os_mapped_bytes;      // bytes mapped from the OS now
  uint64_t os_maps;              // mmap calls that succeeded
  uint64_t os_map_failures;
  uint64_t os_unmaps;            // munmap calls
  uint64_t os_purges;            // madvise calls
  uint64_t os_purged_bytes;      // bytes given back by madvise so far
  uint64_t resident_bytes;       // the process's RSS (all of it, not only strata's)

  // Heaps (thread caches).
  uint64_t heaps;                // created
  uint64_t heaps_active;         // serving a thread
  uint64_t heaps_orphaned;       // of exited threads, still owning arenas
  uint64_t heaps_recovered;      // of threads that exited without strata's exit hook
                                 // (a key destructor's pthread_exit), recovered so far

  // The thread caches' counters, summed over every heap: one field per row
  // of STRATA_HEAP_COUNTER_LIST (alloc/heap_counter_list.h), named as the row
  // is and documented by its help text (refills, runs_woken, remote_frees,
  // remote_bytes, remote_received, remote_forwarded, orphans_absorbed,
  // pools_purged, ...).
#define STRATA_STATS_COUNTER_FIELD(name, help, section, json_key, metric, label) uint64_t name;
  STRATA_HEAP_COUNTER_LIST(STRATA_STATS_COUNTER_FIELD)
#undef STRATA_STATS_COUNTER_FIELD

  // Cross-thread frees: batches (the histogram's sum) and what waits now.
  uint64_t remote_batches;       // batches handed to owners' queues
  uint64_t batch_histogram[kBatchHistogramBuckets];
  uint64_t outgoing_bytes;       // waiting in outgoing batches now
  uint64_t queued_bytes;         // waiting in owners' queues now

  // The release engine.
  uint64_t released_bytes;       // purged + unmapped so far by the engine and ReleaseMemory
  bool background_running;
  uint64_t background_passes;
  uint64_t slow_path_passes;

  uint64_t errors;               // invalid frees counted (error_mode=count)
  uint64_t foreign_returned;     // frees of glibc's own blocks given back to it (foreign.h)

  // The memory limit (limit.h): what it counts, and what it did.
  uint64_t footprint_bytes;      // arenas carved + large mappings' pages, now
  uint64_t footprint_peak;
  uint64_t limit_soft_events;    // mappings that met the soft limit (caches given back)
  uint64_t limit_soft_over;      // of those, mapped while still over the limit
  uint64_t limit_hard_refusals;  // mappings the hard limit refused (allocations failed)

  // Heap profiling (profile.h).
  uint64_t profile_samples_live;   // sampled blocks not freed yet
  uint64_t profile_samples_taken;  // since the start
  uint64_t profile_live_bytes;     // the live heap the samples estimate
  uint64_t profile_stacks;         // distinct stacks seen

  // Guarded sampling (guarded_sample_bytes; guarded.h).
  uint64_t guarded_allocations;    // guarded blocks handed out since the start
  uint64_t guarded_skipped;        // guarded samples not served (no slot free, or the limit)
  uint64_t guarded_faults;         // faults reported in guarded slots
  uint64_t guarded_slots_total;    // slots reserved (0 until the first guarded allocation)
  uint64_t guarded_slots_live;     // guarded blocks live now
  uint64_t guarded_slots_freed;    // freed slots waiting in the quarantine
};

// Fills *out. Never allocates. Thread-safety: any thread.
void GetStats(Stats* out);

// In the order of STRATA_STATS_FORMAT_NAMES (options.h), which names them:
// "table", "json", "json-arenas", "prometheus".
enum class StatsFormat { kTable, kJson, kJsonArenas, kPrometheus };

// Writes *stats (or a fresh snapshot when null) to fd, with every option's
// value and origin. kJsonArenas is kJson that also lists every arena's pools
// (class, use, purge state): the input of tools/stats_viewer. Never allocates.
// Holds no lock while it writes (each heap's arenas are copied under its
// lock first), so a write blocked on a full pipe stalls no other thread;
// its writes are write(2), cancellation points like the program's own.
void WriteStats(int fd, StatsFormat format, const Stats* stats = nullptr);

// The human table (WriteStats with kTable).
void WriteStatsTable(int fd, const Stats* stats = nullptr);

namespace internal {
// The Stats field of each row of kHeapCounterRows (heap_counters.h), in the
// same order: what GetStats sums into and what the outputs print.
inline constexpr uint64_t Stats::*kStatsCounterFields[] = {
#define STRATA_STATS_COUNTER_POINTER(name, help, section, json_key, metric, label) &Stats::name,
    STRATA_HEAP_COUNTER_LIST(STRATA_STATS_COUNTER_POINTER)
#undef STRATA_STATS_COUNTER_POINTER
};
static_assert(std::size(kStatsCounterFields) == kNumHeapCounters);

// Writes statistics in the format the stats_format option names (malloc_stats
// and the report at exit: not cancellation points).
void WriteStatsInConfiguredFormat(int fd);
// The stats_on_exit option's work (called by a destructor in strata.cc).
void WriteStatsOnExit();
// The sampler: appends one JSON line (time, RSS, live, mapped, cached and
// released bytes) to the sample_file option's path (stderr when empty).
// Called by the background thread only.
void WriteSample(uint64_t start_ms, uint64_t now_ms);
}  // namespace internal

}  // namespace strata

extern "C" {
// Writes statistics to fd in "table", "json", "json-arenas" or "prometheus"
// (STRATA_STATS_FORMAT_NAMES, the stats_format option's names).
// Returns 0, or -1 for an unknown format.
int strata_stats_write(int fd, const char* format);
}

#endif  // STRATA_ALLOC_STATS_H_
