// A heap's statistics counters, summed over every heap on read (stats.h).
// Written only on slow paths, by the heap's owner (or, for pools_purged, by
// whoever holds the heap's metadata lock): one writer each, racy readers,
// through threading::SingleWriter.
#ifndef STRATA_ALLOC_HEAP_COUNTERS_H_
#define STRATA_ALLOC_HEAP_COUNTERS_H_

#include <cstdint>

#include "alloc/config.h"
#include "alloc/size_class.h"
#include "threading/single_writer.h"

namespace strata::internal {

struct HeapCounters {
  using Counter = threading::SingleWriter<uint64_t>;
  Counter remote_frees;       // blocks this heap sent to other heaps
  Counter remote_bytes;       // their bytes
  // Batches handed to other heaps' queues, by blocks per batch; their sum
  // is the number of batches (one counter, so a snapshot cannot see a batch
  // counted in one and not yet in the other).
  Counter batch_blocks[kBatchBuckets];
  Counter remote_received;    // blocks taken from this heap's queue
  Counter remote_forwarded;   // of those, sent on (the arena had moved)
  Counter refills;            // allocations the current run could not serve (slow path)
  Counter runs_woken;         // sleeping full runs back on the partial list
  Counter runs_created;
  Counter runs_released;
  Counter arenas_acquired;    // arenas taken from the arena source
  Counter arenas_released;    // empty arenas given back to it
  Counter orphans_absorbed;
  Counter pools_purged;       // free pools given back to the OS (madvise)
  // Detailed statistics (option `stats`): calls and requested bytes per class.
  Counter allocations[kNumClasses];
  Counter requested_bytes[kNumClasses];
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_COUNTERS_H_
