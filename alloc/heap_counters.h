// The thread cache's statistics counters, declared once: every per-heap
// counter is one row of STRATA_HEAP_COUNTER_LIST (heap_counter_list.h), and
// from that row
// come its HeapCounters member (what the heap counts with .Add()), its
// Stats field of the same name (stats.h), the sum in GetStats (stats.cc) and
// its line in the human table, JSON and Prometheus (stats_format.cc).
// A new counter is one row there plus the .Add() where the event happens.
#ifndef STRATA_ALLOC_HEAP_COUNTERS_H_
#define STRATA_ALLOC_HEAP_COUNTERS_H_

#include <cstddef>
#include <cstdint>
#include <iterator>

#include "alloc/config.h"
#include "alloc/heap_counter_list.h"
#include "alloc/size_class.h"
#include "threading/single_writer.h"

namespace strata::internal {

// Per-heap statistics, summed over every heap on read (stats.h). Written by
// the heap's owner only (remote_frees and remote_bytes on every remote free,
// the rest on slow paths; pools_purged by whoever holds the heap's
// metadata lock, OwnedArenas), read by any thread: hence SingleWriter.
struct HeapCounters {
  using Counter = threading::SingleWriter<uint64_t>;
#define STRATA_HEAP_COUNTER_MEMBER(name, help, section, json_key, metric, label) Counter name;
  STRATA_HEAP_COUNTER_LIST(STRATA_HEAP_COUNTER_MEMBER)
#undef STRATA_HEAP_COUNTER_MEMBER
#define STRATA_HEAP_COUNTER_ARRAY_MEMBER(name, extent, help) Counter name[extent];
  STRATA_HEAP_COUNTER_ARRAY_LIST(STRATA_HEAP_COUNTER_ARRAY_MEMBER)
#undef STRATA_HEAP_COUNTER_ARRAY_MEMBER
};

// One row of STRATA_HEAP_COUNTER_LIST, for the code that walks them.
struct HeapCounterRow {
  const char* name;
  const char* help;
  CounterSection section;
  const char* json_key;
  const char* metric;
  const char* label;
  HeapCounters::Counter HeapCounters::*field;
};

inline constexpr HeapCounterRow kHeapCounterRows[] = {
#define STRATA_HEAP_COUNTER_ROW(name, help, section, json_key, metric, label) \
  {#name, help, CounterSection::section, json_key, metric, label, &HeapCounters::name},
    STRATA_HEAP_COUNTER_LIST(STRATA_HEAP_COUNTER_ROW)
#undef STRATA_HEAP_COUNTER_ROW
};
static_assert(std::size(kHeapCounterRows) == kNumHeapCounters);

// Every member comes from the two lists: a counter declared by hand beside
// them would be summed and shown nowhere.
#define STRATA_HEAP_COUNTER_ARRAY_EXTENT(name, extent, help) +(extent)
inline constexpr size_t kHeapCounterWords =
    kNumHeapCounters STRATA_HEAP_COUNTER_ARRAY_LIST(STRATA_HEAP_COUNTER_ARRAY_EXTENT);
#undef STRATA_HEAP_COUNTER_ARRAY_EXTENT
static_assert(sizeof(HeapCounters) == kHeapCounterWords * sizeof(HeapCounters::Counter),
              "a HeapCounters member outside STRATA_HEAP_COUNTER_LIST and its array list");

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_COUNTERS_H_
