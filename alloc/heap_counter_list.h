// The table of the thread caches' statistics counters (an X-macro), apart
// from HeapCounters (heap_counters.h) so that the public stats.h can take
// its fields from the same rows without the counters' implementation: one
// row per counter, from which its HeapCounters member, its Stats field, its
// sum and its line in every output come.
#ifndef STRATA_ALLOC_HEAP_COUNTER_LIST_H_
#define STRATA_ALLOC_HEAP_COUNTER_LIST_H_

#include <cstddef>
#include <cstdint>
#include <iterator>

namespace strata::internal {

// The JSON object a counter is a key of, beside the figures it belongs with
// (the heaps' gauges, the cross-thread gauges, the release engine's).
enum class CounterSection : uint8_t { kHeaps, kCrossThread, kRelease };
// The JSON names of the sections, indexed by CounterSection.
inline constexpr const char* kCounterSectionKeys[] = {"heaps", "cross_thread", "release"};

// X(name, help, section, json_key, metric, label)
//   name:     the member of HeapCounters and the field of Stats (stats.h).
//   help:     one sentence saying what is counted: Prometheus's HELP, and
//             the documentation of both fields.
//   section:  the CounterSection whose JSON object holds the counter...
//   json_key: ...under this key (unique within the section).
//   metric:   the Prometheus counter strata_<metric> (ends in _total).
//   label:    the words the human table prints before the value.
// The rows' order is the members' order (remote_frees and remote_bytes, which
// every remote free counts, first, as they always were) and the order of
// every output; the keys of one JSON section keep the order they had before
// the table. Names, keys and metrics already published must not change:
// dashboards and tools/viz read them.
#define STRATA_HEAP_COUNTER_LIST(X)                                                               \
  X(remote_frees, "Blocks freed by a thread that did not own them.", kCrossThread, "frees",       \
    "remote_frees_total", "remote frees (blocks)")                                                \
  X(remote_bytes, "Bytes of the blocks freed by a thread that did not own them.", kCrossThread,   \
    "bytes", "remote_bytes_total", "remote frees (bytes)")                                        \
  X(remote_received, "Remotely freed blocks owners took from their queues.", kCrossThread,        \
    "received", "remote_received_total", "received from queues (blocks)")                         \
  X(remote_forwarded,                                                                             \
    "Blocks taken from a queue and sent on, their arena having moved to another heap.",          \
    kCrossThread, "forwarded", "remote_forwarded_total", "forwarded, arena moved (blocks)")       \
  X(queues_collected,                                                                             \
    "Drains of an owner's queue by the release engine while the owner was in no slow path.",      \
    kCrossThread, "queues_collected", "queues_collected_total", "queues drained for idle owners") \
  X(orphans_absorbed, "Heaps of exited threads whose arenas a live heap took over.", kHeaps,      \
    "orphans_absorbed", "orphans_absorbed_total", "orphan heaps absorbed")                        \
  X(refills, "Refills of an empty class list in a thread cache from its runs.", kHeaps, "refills",    \
    "refills_total", "refills (allocation slow paths)")                                           \
  X(runs_woken, "Sleeping full runs woken by frees.", kHeaps, "runs_woken", "runs_woken_total",   \
    "sleeping full runs woken")                                                                   \
  X(runs_created, "Runs a heap carved for a size class out of free pools.", kHeaps,               \
    "runs_created", "runs_created_total", "runs created")                                         \
  X(runs_released, "Runs whose pools went back to their arena's free pools.", kHeaps,             \
    "runs_released", "runs_released_total", "runs released")                                      \
  X(arenas_acquired, "Arenas heaps took from the arena source.", kHeaps, "arenas_acquired",       \
    "arenas_acquired_total", "arenas acquired")                                                   \
  X(arenas_released, "Empty arenas heaps gave back to the arena source.", kHeaps,                 \
    "arenas_released", "arenas_released_total", "empty arenas released")                          \
  X(pools_purged, "Free pools of heaps given back to the OS (madvise).", kRelease,                \
    "pools_purged", "pools_purged_total", "heap pools purged")

// X(name, extent, help): the counters kept per bucket. Each has outputs of
// its own shape (a histogram, a column per size class), written by hand in
// stats.cc and stats_format.cc, so they are listed apart from the rows above.
#define STRATA_HEAP_COUNTER_ARRAY_LIST(X)                                                         \
  X(batch_blocks, kBatchBuckets,                                                                  \
    "Batches handed to other heaps' queues, by blocks per batch; their sum is the number of "    \
    "batches (one counter, so a snapshot cannot see a batch counted in one and not the other).") \
  X(allocations, kNumClasses, "Detailed statistics (option stats): allocations per size class.") \
  X(requested_bytes, kNumClasses,                                                                 \
    "Detailed statistics (option stats): bytes those allocations asked for, per size class.")

// The rows of STRATA_HEAP_COUNTER_LIST.
#define STRATA_HEAP_COUNTER_ONE(name, help, section, json_key, metric, label) +1
inline constexpr size_t kNumHeapCounters = 0 STRATA_HEAP_COUNTER_LIST(STRATA_HEAP_COUNTER_ONE);
#undef STRATA_HEAP_COUNTER_ONE
static_assert(std::size(kCounterSectionKeys) == static_cast<size_t>(CounterSection::kRelease) + 1,
              "a CounterSection without its JSON name");

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_COUNTER_LIST_H_
