// The retention report's rows, once: every reason a mapped byte is held
// (RetentionStats, stats.h), with the names each output gives it. The table,
// JSON and Prometheus writers (stats_format.cc), RetentionStats::Total() and
// the sampler's free_resident_bytes all walk this one list, so a new field
// is one new row here (and tests/alloc/stats_test checks that the rows add
// up to Total()).
#ifndef STRATA_ALLOC_RETENTION_ROWS_H_
#define STRATA_ALLOC_RETENTION_ROWS_H_

#include <cstddef>
#include <cstdint>

#include "alloc/stats.h"

namespace strata::internal {

// The live-block counts of the pinned buckets (RetentionStats::free_pinned).
inline constexpr const char* kPinBucketNames[kPinBuckets] = {"1", "2-3", "4-15", "16-63", "64+"};

struct RetentionRow {
  const char* key;    // JSON field and Prometheus reason label
  const char* label;  // the human table's words
  // The row's bytes, or nullptr for free_pinned (an array: one table line
  // per bucket, a JSON object, one Prometheus reason for the sum).
  uint64_t RetentionStats::*field;
  // Free memory that is still resident (the sampler's free_resident_bytes).
  bool resident_free;
};

inline constexpr RetentionRow kRetentionRows[] = {
    {"in_use", "in use by the program", &RetentionStats::in_use, false},
    {"in_use_large", "in use: large blocks", &RetentionStats::in_use_large, false},
    {"in_remote_transit", "freed remotely, travelling home", &RetentionStats::in_remote_transit,
     false},
    {"free_in_thread_caches", "free in threads' class caches",
     &RetentionStats::free_in_thread_caches, true},
    {"free_in_empty_runs", "free in runs with no live block", &RetentionStats::free_in_empty_runs,
     true},
    {"free_pinned", "free in runs pinned by", nullptr, true},
    {"run_tails", "run tails (rounding)", &RetentionStats::run_tails, false},
    {"free_pools_cached", "free pools cached by live threads", &RetentionStats::free_pools_cached,
     true},
    {"free_pools_orphaned", "free pools of exited threads", &RetentionStats::free_pools_orphaned,
     true},
    {"free_pools_purged", "free pools, purged (not resident)", &RetentionStats::free_pools_purged,
     false},
    {"empty_arenas_resident", "empty arenas, waiting for purge",
     &RetentionStats::empty_arenas_resident, true},
    {"empty_arenas_purged", "empty arenas, purged (not resident)",
     &RetentionStats::empty_arenas_purged, false},
    {"arena_headers", "arena headers (metadata)", &RetentionStats::arena_headers, false},
    {"reserve_untouched", "reserved, never touched", &RetentionStats::reserve_untouched, false},
    {"large_overhead", "large: header and rounding", &RetentionStats::large_overhead, false},
    {"large_cached", "large: cached for reuse", &RetentionStats::large_cached, false},
    {"metadata", "strata metadata", &RetentionStats::metadata, false},
    {"guarded", "guarded slots and guard pages", &RetentionStats::guarded, false},
};

// The bytes of one row (free_pinned: all its buckets).
inline uint64_t RowBytes(const RetentionStats& r, const RetentionRow& row) {
  if (row.field != nullptr) return r.*row.field;
  uint64_t sum = 0;
  for (uint64_t b : r.free_pinned) sum += b;
  return sum;
}

// Free memory still resident: the rows marked resident_free.
inline uint64_t ResidentFreeBytes(const RetentionStats& r) {
  uint64_t sum = 0;
  for (const RetentionRow& row : kRetentionRows) {
    if (row.resident_free) sum += RowBytes(r, row);
  }
  return sum;
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_RETENTION_ROWS_H_
