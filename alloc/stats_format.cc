// The statistics outputs: a human table, JSON and Prometheus text
// exposition of a snapshot (GetStats, stats.cc), the sampler's lines and
// the report at exit. The retention rows come from retention_rows.h, the
// thread caches' counters from heap_counters.h, the format names from the
// stats_format option (STRATA_STATS_FORMAT_NAMES).
// All of it writes through FdWriter into a stack buffer: nothing here
// allocates, and no lock is held while it writes (what is read under a
// heap's lock is copied first). The API's writes are cancellation points
// (cancel.h); the report at exit and the sampler's are not.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "alloc/arena.h"
#include "alloc/cancel.h"
#include "alloc/fd_writer.h"
#include "alloc/heap.h"
#include "alloc/heap_counters.h"
#include "alloc/options.h"
#include "alloc/retention_rows.h"
#include "alloc/scratch.h"
#include "alloc/stats.h"

namespace strata {

using internal::ArenaHeader;
using internal::CounterSection;
using internal::FdWriter;
using internal::Heap;
using internal::kClasses;
using internal::PoolDesc;
using internal::PoolState;
using internal::WriteKind;

namespace {

using internal::HeapCounterRow;
using internal::kHeapCounterRows;
using internal::kNumHeapCounters;
using internal::kPinBucketNames;
using internal::kRetentionRows;
using internal::kStatsCounterFields;
using internal::RetentionRow;

// The value of counter row i in snapshot s.
uint64_t CounterValue(const Stats& s, size_t i) { return s.*kStatsCounterFields[i]; }

// ---- Options, in each format ----------------------------------------------

void WriteOptionsTable(FdWriter& w) {
  w.Str("# options (value, from):\n");
  for (size_t i = 0; i < kNumOptions; ++i) {
    const auto o = static_cast<Option>(i);
    char value[kMaxOptionString];
    FormatOptionValue(o, value, sizeof(value));
    w.Str("#   ").Pad(GetOptionInfo(o).name, 20).Str(" = ").Pad(value[0] ? value : "''", 12)
        .Str(" (").Str(OptionSourceName(GetOptionSource(o))).Str(")\n");
  }
}

// JSON string body: escapes quotes, backslashes and control characters.
void JsonString(FdWriter& w, const char* s) {
  w.Char('"');
  for (; *s != '\0'; ++s) {
    const char c = *s;
    if (c == '"' || c == '\\') {
      w.Char('\\').Char(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      w.Str("\\u00").Char(kHex[(c >> 4) & 15]).Char(kHex[c & 15]);
    } else {
      w.Char(c);
    }
  }
  w.Char('"');
}

void WriteOptionsJson(FdWriter& w) {
  w.Str("\"options\":{");
  for (size_t i = 0; i < kNumOptions; ++i) {
    const auto o = static_cast<Option>(i);
    char value[kMaxOptionString];
    FormatOptionValue(o, value, sizeof(value));
    if (i > 0) w.Char(',');
    JsonString(w, GetOptionInfo(o).name);
    w.Str(":{\"value\":");
    JsonString(w, value);
    w.Str(",\"source\":\"").Str(OptionSourceName(GetOptionSource(o))).Str("\"}");
  }
  w.Char('}');
}

// ---- Table ----------------------------------------------------------------

void Kib(FdWriter& w, uint64_t bytes, int width) { w.Uint(bytes >> 10, width).Str(" KiB"); }

void WriteTable(int fd, const Stats& s, WriteKind kind) {
  FdWriter w(fd, kind);
  w.Str("class  size  pools/run   in use     free   full partial  empty   bytes in use");
  if (s.detailed) w.Str("     allocs   requested");
  w.Char('\n');
  uint64_t runs = 0;
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    const SizeClassStats& k = s.classes[c];
    const uint64_t class_runs = k.runs_full + k.runs_partial + k.runs_empty;
    if (class_runs == 0 && k.allocations == 0) continue;
    runs += class_runs;
    w.Uint(c, 5).Uint(k.block_size, 6).Uint(k.run_pools, 11).Uint(k.blocks_in_use, 9)
        .Uint(k.blocks_free, 9).Uint(k.runs_full, 7).Uint(k.runs_partial, 8).Uint(k.runs_empty, 7)
        .Uint(k.blocks_in_use * k.block_size, 15);
    if (s.detailed) w.Uint(k.allocations, 11).Uint(k.requested_bytes, 12);
    w.Char('\n');
  }
  if (runs == 0) w.Str("  (no runs in use)\n");
  w.Str("# arenas: ").Uint(s.arenas_mapped).Str(" mapped (")
      .Uint(s.arenas_mapped * internal::kArenaSize >> 10).Str(" KiB), ")
      .Uint(s.arenas_owned).Str(" owned by heaps, ").Uint(s.arenas_empty).Str(" empty (")
      .Uint(s.arenas_empty_purged).Str(" purged), ").Uint(s.arenas_unmapped)
      .Str(" unmapped so far, at most ").Uint(s.arenas_mapped_peak).Str(" at once\n");
  w.Str("# pools: ").Uint(s.pools_in_runs).Str(" in ").Uint(runs).Str(" runs, ")
      .Uint(s.pools_free).Str(" free in owned arenas\n");
  w.Str("# small/medium bytes in use: ").Uint(s.small_bytes_in_use).Str("; live bytes: ")
      .Uint(s.live_bytes).Char('\n');
  if (s.detailed) {
    w.Str("# detailed: ").Uint(s.allocations).Str(" allocations asked for ")
        .Uint(s.requested_bytes).Str(" bytes and were handed ").Uint(s.handed_out_bytes)
        .Str(" (").Fixed1(s.handed_out_bytes > s.requested_bytes
                              ? (s.handed_out_bytes - s.requested_bytes) * 100
                              : 0,
                          s.handed_out_bytes ? s.handed_out_bytes : 1)
        .Str("% lost to rounding)\n");
  }
  w.Str("# large: ").Uint(s.large_blocks).Str(" blocks, ").Uint(s.large_bytes)
      .Str(" bytes; cache ").Uint(s.large_cached).Str(" mappings, ")
      .Uint(s.large_cached_bytes).Str(" bytes, ").Uint(s.large_cache_hits).Str(" hits\n");
  w.Str("# OS: ").Uint(s.os_mapped_bytes).Str(" bytes mapped, ").Uint(s.os_maps)
      .Str(" maps, ").Uint(s.os_unmaps).Str(" unmaps, ").Uint(s.os_purges).Str(" purges (")
      .Uint(s.os_purged_bytes).Str(" bytes); process RSS ").Uint(s.resident_bytes).Char('\n');
  w.Str("# heaps: ").Uint(s.heaps).Str(" created, ").Uint(s.heaps_active).Str(" active, ")
      .Uint(s.heaps_orphaned).Str(" orphaned, ").Uint(s.heaps_recovered)
      .Str(" recovered from threads that exited without the exit hook\n");
  w.Str("# thread caches (counters summed over every heap):\n");
  for (size_t i = 0; i < kNumHeapCounters; ++i) {
    w.Str("#   ").Pad(kHeapCounterRows[i].label, 38).Uint(CounterValue(s, i), 14).Char('\n');
  }
  w.Str("# cross-thread: ").Uint(s.remote_batches).Str(" batches; now ").Uint(s.outgoing_bytes)
      .Str(" bytes outgoing, ").Uint(s.queued_bytes).Str(" queued\n");
  w.Str("# batch sizes (blocks):");
  for (size_t b = 0; b < kBatchHistogramBuckets; ++b) {
    if (s.batch_histogram[b] == 0) continue;
    w.Char(' ').Uint(uint64_t{1} << b);
    if (b + 1 < kBatchHistogramBuckets) {
      w.Char('-').Uint((uint64_t{2} << b) - 1);
    } else {
      w.Char('+');
    }
    w.Char(':').Uint(s.batch_histogram[b]);
  }
  w.Char('\n');
  w.Str("# release: ").Uint(s.released_bytes).Str(" bytes given back so far; background thread ")
      .Str(s.background_running ? "running" : "not running").Str(" (")
      .Uint(s.background_passes).Str(" passes), ").Uint(s.slow_path_passes)
      .Str(" passes from slow paths\n");
  const RetentionStats& r = s.retention;
  w.Str("# retention: why each mapped byte is held (").Uint(r.Total()).Str(" bytes)\n");
  for (const RetentionRow& row : kRetentionRows) {
    if (row.field == nullptr) {  // free_pinned: a line per bucket
      for (size_t b = 0; b < kPinBuckets; ++b) {
        w.Str("#   ").Str(row.label).Char(' ').Pad(kPinBucketNames[b], 5).Pad(" live blocks", 13);
        Kib(w, r.free_pinned[b], 10);
        w.Char('\n');
      }
      continue;
    }
    w.Str("#   ").Pad(row.label, 38);
    Kib(w, r.*row.field, 10);
    w.Char('\n');
  }
  if (r.next_purge_ms >= 0) {
    w.Str("#   resident free memory: first purge in ").Uint(static_cast<uint64_t>(r.next_purge_ms))
        .Str(" ms, all purged in ").Uint(static_cast<uint64_t>(r.all_purged_ms)).Str(" ms\n");
  } else if (r.free_pools_cached + r.free_pools_orphaned + r.empty_arenas_resident > 0) {
    w.Str("#   resident free memory: purge_delay_ms < 0, purged only on ReleaseMemory\n");
  }
  w.Str("# foreign frees: ").Uint(s.foreign_returned).Str(" returned to glibc; errors counted: ")
      .Uint(s.errors).Char('\n');
  w.Str("# memory limit: footprint ").Uint(s.footprint_bytes).Str(" bytes (peak ")
      .Uint(s.footprint_peak).Str("); soft limit met ").Uint(s.limit_soft_events).Str(" times (")
      .Uint(s.limit_soft_over).Str(" still over), hard refusals ").Uint(s.limit_hard_refusals)
      .Char('\n');
  w.Str("# heap profile: ").Uint(s.profile_samples_live).Str(" samples live (estimating ")
      .Uint(s.profile_live_bytes).Str(" bytes), ").Uint(s.profile_samples_taken)
      .Str(" taken, ").Uint(s.profile_stacks).Str(" stacks\n");
  w.Str("# guarded sampling: ").Uint(s.guarded_allocations).Str(" guarded allocations (")
      .Uint(s.guarded_skipped).Str(" skipped), ").Uint(s.guarded_faults).Str(" faults caught; slots: ")
      .Uint(s.guarded_slots_live).Str(" live, ").Uint(s.guarded_slots_freed).Str(" in quarantine, ")
      .Uint(s.guarded_slots_total).Str(" reserved\n");
  WriteOptionsTable(w);
}

// ---- JSON -------------------------------------------------------------------

void Field(FdWriter& w, const char* name, uint64_t v, bool comma = true) {
  if (comma) w.Char(',');
  w.Char('"').Str(name).Str("\":").Uint(v);
}

// Closes the previous object and opens `section`'s, by the name the
// counters' table gives it.
void OpenSection(FdWriter& w, CounterSection section) {
  w.Str("},\"").Str(internal::kCounterSectionKeys[static_cast<size_t>(section)]).Str("\":{");
}

// The counters of `section`, each after a comma (the section's own first
// field is written before them).
void CounterFields(FdWriter& w, const Stats& s, CounterSection section) {
  for (size_t i = 0; i < kNumHeapCounters; ++i) {
    const HeapCounterRow& row = kHeapCounterRows[i];
    if (row.section == section) Field(w, row.json_key, CounterValue(s, i));
  }
}

// One pool of the arena map as read under its heap's lock: 'f' a free
// resident pool, 'p' a purged one, 't' a run's tail, 'h' a run's head.
struct PoolCell {
  uint32_t used, capacity;
  uint8_t kind, size_class, run_pools;
};
struct ArenaCells {
  uintptr_t base;
  PoolCell pools[internal::kUsablePools];
};

void CopyArena(const ArenaHeader* a, ArenaCells* out) {
  out->base = reinterpret_cast<uintptr_t>(a);
  for (size_t i = internal::kFirstUsablePool; i < internal::kPoolsPerArena; ++i) {
    const PoolDesc& d = *a->pool(i);
    PoolCell& c = out->pools[i - internal::kFirstUsablePool];
    c = PoolCell{0, 0, 'h', 0, 0};
    if (d.state == PoolState::kFree) {
      c.kind = (a->dirty_mask >> i) & 1 ? 'f' : 'p';
    } else if (d.state == PoolState::kTail) {
      c.kind = 't';
    } else {
      uint64_t used = d.Used();
      if (used > d.capacity) used = d.capacity;
      c.used = static_cast<uint32_t>(used);
      c.capacity = d.capacity;
      c.size_class = static_cast<uint8_t>(d.size_class);
      c.run_pools = static_cast<uint8_t>(d.run_pools);
    }
  }
}

// Copies heap h's arenas into `cells` under its lock (growing it until they
// fit) and returns how many; 0 when no memory could be mapped for them
// (the map then lacks this heap's arenas).
size_t CopyArenas(Heap* h, internal::Scratch* cells) {
  size_t want = 0;
  h->arenas().ForEachArenaHoldingLock([&](ArenaHeader*) { ++want; });
  for (;;) {
    if (!cells->Reserve(want * sizeof(ArenaCells))) return 0;
    const size_t room = cells->bytes() / sizeof(ArenaCells);
    size_t seen = 0;
    h->arenas().ForEachArenaHoldingLock([&](ArenaHeader* a) {
      if (seen < room) CopyArena(a, &cells->As<ArenaCells>()[seen]);
      ++seen;
    });
    if (seen <= room) return seen;
    want = seen;  // the heap took arenas between the two looks
  }
}

// The arena map. Each heap's arenas are copied under its lock and written
// after it is released: the metadata lock is the heap owner's (its refills
// take it), and a write may block on a full pipe or be cancelled.
void WriteArenaMapJson(FdWriter& w) {
  w.Str(",\"arenas\":[");
  bool first = true;
  internal::Scratch cells;
  for (Heap* h = internal::AllHeaps(); h != nullptr; h = h->entry().all_next()) {
    const bool orphaned = h->entry().state() == internal::HeapEntry::State::kOrphan;
    const size_t n = CopyArenas(h, &cells);
    internal::OnCancel(&internal::Scratch::ReleaseOnCancel, &cells, [&] {
      for (size_t k = 0; k < n; ++k) {
        const ArenaCells& a = cells.As<ArenaCells>()[k];
        if (!first) w.Char(',');
        first = false;
        w.Str("{\"base\":\"").Hex(a.base).Str("\",\"heap\":").Uint(h->entry().id())
            .Str(",\"state\":\"").Str(orphaned ? "orphaned" : "owned").Str("\",\"pools\":[");
        for (size_t i = 0; i < internal::kUsablePools; ++i) {
          const PoolCell& c = a.pools[i];
          if (i > 0) w.Char(',');
          if (c.kind == 'f' || c.kind == 'p' || c.kind == 't') {
            w.Char('"').Char(static_cast<char>(c.kind)).Char('"');
          } else {
            w.Char('[').Uint(c.size_class).Char(',').Uint(kClasses[c.size_class].size).Char(',')
                .Uint(c.used).Char(',').Uint(c.capacity).Char(',').Uint(c.run_pools).Char(']');
          }
        }
        w.Str("]}");
      }
    });
  }
  for (internal::ArenaRecord* rec = internal::AllArenaRecords(); rec != nullptr; rec = rec->all_next) {
    // Relaxed: statistics only; the header of an empty arena is never read.
    if (rec->state.load(std::memory_order_relaxed) != internal::ArenaState::kEmpty) continue;
    if (!first) w.Char(',');
    first = false;
    w.Str("{\"base\":\"").Hex(reinterpret_cast<uintptr_t>(rec->arena.load(std::memory_order_relaxed)))
        .Str("\",\"heap\":0,\"state\":\"")
        .Str(rec->purged.load(std::memory_order_relaxed) ? "empty-purged" : "empty")
        .Str("\",\"pools\":[]}");
  }
  w.Char(']');
}

void WriteJson(int fd, const Stats& s, bool arena_map, WriteKind kind) {
  FdWriter w(fd, kind);
  w.Str("{\"version\":1,\"pid\":").Uint(static_cast<uint64_t>(getpid()));
  Field(w, "live_bytes", s.live_bytes);
  Field(w, "small_bytes_in_use", s.small_bytes_in_use);
  w.Str(",\"detailed\":").Str(s.detailed ? "true" : "false");
  Field(w, "allocations", s.allocations);
  Field(w, "requested_bytes", s.requested_bytes);
  Field(w, "handed_out_bytes", s.handed_out_bytes);
  w.Str(",\"classes\":[");
  bool first = true;
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    const SizeClassStats& k = s.classes[c];
    if (!first) w.Char(',');
    first = false;
    w.Str("{\"class\":").Uint(c);
    Field(w, "size", k.block_size);
    Field(w, "run_pools", k.run_pools);
    Field(w, "blocks_in_use", k.blocks_in_use);
    Field(w, "blocks_free", k.blocks_free);
    Field(w, "runs_full", k.runs_full);
    Field(w, "runs_partial", k.runs_partial);
    Field(w, "runs_empty", k.runs_empty);
    Field(w, "allocations", k.allocations);
    Field(w, "requested_bytes", k.requested_bytes);
    w.Char('}');
  }
  w.Str("],\"arenas_summary\":{");
  Field(w, "mapped", s.arenas_mapped, false);
  Field(w, "mapped_peak", s.arenas_mapped_peak);
  Field(w, "owned", s.arenas_owned);
  Field(w, "empty", s.arenas_empty);
  Field(w, "empty_purged", s.arenas_empty_purged);
  Field(w, "unmapped_so_far", s.arenas_unmapped);
  Field(w, "reservations", s.arena_reservations);
  Field(w, "pools_in_runs", s.pools_in_runs);
  Field(w, "pools_free", s.pools_free);
  w.Str("},\"large\":{");
  Field(w, "blocks", s.large_blocks, false);
  Field(w, "bytes", s.large_bytes);
  Field(w, "cached", s.large_cached);
  Field(w, "cached_bytes", s.large_cached_bytes);
  Field(w, "cache_hits", s.large_cache_hits);
  w.Str("},\"os\":{");
  Field(w, "mapped_bytes", s.os_mapped_bytes, false);
  Field(w, "maps", s.os_maps);
  Field(w, "map_failures", s.os_map_failures);
  Field(w, "unmaps", s.os_unmaps);
  Field(w, "purges", s.os_purges);
  Field(w, "purged_bytes", s.os_purged_bytes);
  Field(w, "resident_bytes", s.resident_bytes);
  OpenSection(w, CounterSection::kHeaps);
  Field(w, "created", s.heaps, false);
  Field(w, "active", s.heaps_active);
  Field(w, "orphaned", s.heaps_orphaned);
  Field(w, "recovered", s.heaps_recovered);
  CounterFields(w, s, CounterSection::kHeaps);
  OpenSection(w, CounterSection::kCrossThread);
  Field(w, "batches", s.remote_batches, false);
  CounterFields(w, s, CounterSection::kCrossThread);
  Field(w, "outgoing_bytes", s.outgoing_bytes);
  Field(w, "queued_bytes", s.queued_bytes);
  w.Str(",\"batch_histogram\":[");
  for (size_t b = 0; b < kBatchHistogramBuckets; ++b) {
    if (b > 0) w.Char(',');
    w.Str("{\"min_blocks\":").Uint(uint64_t{1} << b);
    Field(w, "batches", s.batch_histogram[b]);
    w.Char('}');
  }
  w.Char(']');
  OpenSection(w, CounterSection::kRelease);
  Field(w, "released_bytes", s.released_bytes, false);
  CounterFields(w, s, CounterSection::kRelease);
  w.Str(",\"background_running\":").Str(s.background_running ? "true" : "false");
  Field(w, "background_passes", s.background_passes);
  Field(w, "slow_path_passes", s.slow_path_passes);
  const RetentionStats& r = s.retention;
  w.Str("},\"retention\":{");
  Field(w, "total", r.Total(), false);
  for (const RetentionRow& row : kRetentionRows) {
    if (row.field != nullptr) {
      Field(w, row.key, r.*row.field);
      continue;
    }
    w.Str(",\"").Str(row.key).Str("\":{");  // free_pinned: by bucket
    for (size_t b = 0; b < kPinBuckets; ++b) {
      if (b > 0) w.Char(',');
      w.Char('"').Str(kPinBucketNames[b]).Str("\":").Uint(r.free_pinned[b]);
    }
    w.Char('}');
  }
  w.Str(",\"next_purge_ms\":");
  w.Int(r.next_purge_ms);
  w.Str(",\"all_purged_ms\":");
  w.Int(r.all_purged_ms);
  w.Str("},");
  Field(w, "errors", s.errors, false);
  Field(w, "foreign_returned", s.foreign_returned);
  w.Str(",\"limit\":{");
  Field(w, "footprint_bytes", s.footprint_bytes, false);
  Field(w, "footprint_peak", s.footprint_peak);
  Field(w, "soft_events", s.limit_soft_events);
  Field(w, "soft_over", s.limit_soft_over);
  Field(w, "hard_refusals", s.limit_hard_refusals);
  w.Str("},\"profile\":{");
  Field(w, "samples_live", s.profile_samples_live, false);
  Field(w, "samples_taken", s.profile_samples_taken);
  Field(w, "live_bytes", s.profile_live_bytes);
  Field(w, "stacks", s.profile_stacks);
  w.Str("},\"guarded\":{");
  Field(w, "allocations", s.guarded_allocations, false);
  Field(w, "skipped", s.guarded_skipped);
  Field(w, "faults", s.guarded_faults);
  Field(w, "slots_total", s.guarded_slots_total);
  Field(w, "slots_live", s.guarded_slots_live);
  Field(w, "slots_freed", s.guarded_slots_freed);
  w.Str("},");
  WriteOptionsJson(w);
  if (arena_map) WriteArenaMapJson(w);
  w.Str("}\n");
}

// ---- Prometheus text exposition ---------------------------------------------

void Metric(FdWriter& w, const char* name, const char* type, const char* help, uint64_t v) {
  w.Str("# HELP strata_").Str(name).Char(' ').Str(help).Char('\n');
  w.Str("# TYPE strata_").Str(name).Char(' ').Str(type).Char('\n');
  w.Str("strata_").Str(name).Char(' ').Uint(v).Char('\n');
}

void WritePrometheus(int fd, const Stats& s, WriteKind kind) {
  FdWriter w(fd, kind);
  Metric(w, "live_bytes", "gauge", "Bytes handed to the program and not freed.", s.live_bytes);
  Metric(w, "os_mapped_bytes", "gauge", "Bytes mapped from the OS.", s.os_mapped_bytes);
  Metric(w, "resident_bytes", "gauge", "Resident set size of the process.", s.resident_bytes);
  Metric(w, "arenas_mapped", "gauge", "256 KiB arenas mapped.", s.arenas_mapped);
  Metric(w, "arenas_empty", "gauge", "Empty arenas kept for reuse.", s.arenas_empty);
  Metric(w, "large_blocks", "gauge", "Live large blocks.", s.large_blocks);
  Metric(w, "large_bytes", "gauge", "Usable bytes of live large blocks.", s.large_bytes);
  Metric(w, "os_maps_total", "counter", "Successful mmap calls.", s.os_maps);
  Metric(w, "os_unmaps_total", "counter", "munmap calls.", s.os_unmaps);
  Metric(w, "os_purges_total", "counter", "madvise calls.", s.os_purges);
  Metric(w, "os_purged_bytes_total", "counter", "Bytes given back by madvise.", s.os_purged_bytes);
  Metric(w, "released_bytes_total", "counter", "Bytes purged or unmapped by the release engine.",
         s.released_bytes);
  Metric(w, "heaps", "gauge", "Thread heaps created.", s.heaps);
  Metric(w, "heaps_orphaned", "gauge", "Heaps of exited threads still owning arenas.",
         s.heaps_orphaned);
  Metric(w, "heaps_recovered_total", "counter",
         "Heaps of threads that exited without the exit hook, recovered.", s.heaps_recovered);
  for (size_t i = 0; i < kNumHeapCounters; ++i) {
    const HeapCounterRow& row = kHeapCounterRows[i];
    Metric(w, row.metric, "counter", row.help, CounterValue(s, i));
  }
  Metric(w, "remote_batches_total", "counter", "Batches of remote frees handed to owners.",
         s.remote_batches);
  Metric(w, "remote_queued_bytes", "gauge", "Bytes waiting in owners' queues.", s.queued_bytes);
  Metric(w, "remote_outgoing_bytes", "gauge", "Bytes waiting in outgoing batches.", s.outgoing_bytes);
  Metric(w, "errors_total", "counter", "Invalid frees counted (error_mode=count).", s.errors);
  Metric(w, "footprint_bytes", "gauge", "What memory_limit_bytes counts: arenas and large pages.",
         s.footprint_bytes);
  Metric(w, "limit_soft_events_total", "counter", "Mappings that met the soft memory limit.",
         s.limit_soft_events);
  Metric(w, "limit_hard_refusals_total", "counter", "Mappings the hard memory limit refused.",
         s.limit_hard_refusals);
  Metric(w, "profile_live_bytes", "gauge", "Live heap estimated by the heap profile's samples.",
         s.profile_live_bytes);
  Metric(w, "guarded_allocations_total", "counter", "Guarded blocks handed out (guarded_sample_bytes).",
         s.guarded_allocations);
  Metric(w, "guarded_skipped_total", "counter", "Guarded samples not served: no slot free, or the limit.",
         s.guarded_skipped);
  Metric(w, "guarded_faults_total", "counter", "Faults reported in guarded slots.", s.guarded_faults);
  Metric(w, "guarded_slots", "gauge", "Guarded slots reserved.", s.guarded_slots_total);
  Metric(w, "guarded_slots_live", "gauge", "Guarded slots holding a live block.", s.guarded_slots_live);
  Metric(w, "guarded_slots_freed", "gauge", "Guarded slots freed, in the quarantine.",
         s.guarded_slots_freed);

  w.Str("# HELP strata_class_blocks_in_use Blocks in use per size class.\n");
  w.Str("# TYPE strata_class_blocks_in_use gauge\n");
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    const SizeClassStats& k = s.classes[c];
    if (k.runs_full + k.runs_partial + k.runs_empty == 0) continue;
    w.Str("strata_class_blocks_in_use{class=\"").Uint(c).Str("\",size=\"").Uint(k.block_size)
        .Str("\"} ").Uint(k.blocks_in_use).Char('\n');
  }
  if (s.detailed) {
    w.Str("# HELP strata_class_requested_bytes_total Bytes requested per size class.\n");
    w.Str("# TYPE strata_class_requested_bytes_total counter\n");
    for (size_t c = 1; c < kNumSizeClasses; ++c) {
      if (s.classes[c].allocations == 0) continue;
      w.Str("strata_class_requested_bytes_total{class=\"").Uint(c).Str("\"} ")
          .Uint(s.classes[c].requested_bytes).Char('\n');
    }
  }
  w.Str("# HELP strata_batch_blocks_total Batches of remote frees by blocks per batch.\n");
  w.Str("# TYPE strata_batch_blocks_total counter\n");
  for (size_t b = 0; b < kBatchHistogramBuckets; ++b) {
    w.Str("strata_batch_blocks_total{min_blocks=\"").Uint(uint64_t{1} << b).Str("\"} ")
        .Uint(s.batch_histogram[b]).Char('\n');
  }
  const RetentionStats& r = s.retention;
  w.Str("# HELP strata_retained_bytes Mapped bytes by the reason they are held; the reasons "
        "sum to strata_os_mapped_bytes in every scrape.\n");
  w.Str("# TYPE strata_retained_bytes gauge\n");
  for (const RetentionRow& row : kRetentionRows) {
    w.Str("strata_retained_bytes{reason=\"").Str(row.key).Str("\"} ").Uint(RowBytes(r, row))
        .Char('\n');
  }
  w.Str("# HELP strata_option Value of each numeric option; source in the label.\n");
  w.Str("# TYPE strata_option gauge\n");
  for (size_t i = 0; i < kNumOptions; ++i) {
    const auto o = static_cast<Option>(i);
    if (GetOptionInfo(o).type == OptionType::kString) continue;
    w.Str("strata_option{name=\"").Str(GetOptionInfo(o).name).Str("\",source=\"")
        .Str(OptionSourceName(GetOptionSource(o))).Str("\"} ");
    w.Int(GetOption(o));
    w.Char('\n');
  }
}

}  // namespace

namespace {

// True when the n-th "|"-separated name of `list` is `name`.
constexpr bool NthNameIs(const char* list, size_t n, const char* name) {
  for (; n > 0; ++list) {
    if (*list == '\0') return false;
    if (*list == '|') --n;
  }
  for (; *name != '\0'; ++list, ++name) {
    if (*list != *name) return false;
  }
  return *list == '|' || *list == '\0';
}
static_assert(NthNameIs(STRATA_STATS_FORMAT_NAMES, static_cast<size_t>(StatsFormat::kTable), "table"));
static_assert(NthNameIs(STRATA_STATS_FORMAT_NAMES, static_cast<size_t>(StatsFormat::kJson), "json"));
static_assert(NthNameIs(STRATA_STATS_FORMAT_NAMES, static_cast<size_t>(StatsFormat::kJsonArenas),
                        "json-arenas"));
static_assert(NthNameIs(STRATA_STATS_FORMAT_NAMES, static_cast<size_t>(StatsFormat::kPrometheus),
                        "prometheus"));
static_assert(!NthNameIs(STRATA_STATS_FORMAT_NAMES, static_cast<size_t>(StatsFormat::kPrometheus) + 1, ""),
              "a format name without a StatsFormat");

void WriteStatsAs(int fd, StatsFormat format, const Stats* stats, WriteKind kind) {
  Stats local;  // about 9 KiB of stack; no lock, no static state
  if (stats == nullptr) {
    GetStats(&local);
    stats = &local;
  }
  switch (format) {
    case StatsFormat::kTable:
      WriteTable(fd, *stats, kind);
      break;
    case StatsFormat::kJson:
      WriteJson(fd, *stats, /*arena_map=*/false, kind);
      break;
    case StatsFormat::kJsonArenas:
      WriteJson(fd, *stats, /*arena_map=*/true, kind);
      break;
    case StatsFormat::kPrometheus:
      WritePrometheus(fd, *stats, kind);
      break;
  }
}

}  // namespace

void WriteStats(int fd, StatsFormat format, const Stats* stats) {
  WriteStatsAs(fd, format, stats, WriteKind::kCancellable);
}

void WriteStatsTable(int fd, const Stats* stats) { WriteStats(fd, StatsFormat::kTable, stats); }

namespace internal {

void WriteStatsInConfiguredFormat(int fd) {
  // The option's values index STRATA_STATS_FORMAT_NAMES, as StatsFormat does.
  WriteStatsAs(fd, static_cast<StatsFormat>(GetOption(Option::kStatsFormat)), nullptr,
               WriteKind::kDiagnostic);
}

void WriteSample(uint64_t start_ms, uint64_t now_ms) {
  static Stats stats;  // only the background thread samples
  GetStats(&stats);
  char path[kMaxOptionString];
  GetStringOption(Option::kSampleFile, path, sizeof(path));
  int fd = 2;
  if (path[0] == '/') {
    fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path,
                                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd < 0) return;
  }
  {
    const RetentionStats& r = stats.retention;
    FdWriter w(fd);
    w.Str("{\"t_ms\":").Uint(now_ms - start_ms)
        .Str(",\"rss_bytes\":").Uint(stats.resident_bytes)
        .Str(",\"live_bytes\":").Uint(stats.live_bytes)
        .Str(",\"mapped_bytes\":").Uint(stats.os_mapped_bytes)
        .Str(",\"free_resident_bytes\":").Uint(internal::ResidentFreeBytes(r))
        .Str(",\"released_bytes\":").Uint(stats.released_bytes)
        .Str("}\n");
  }
  if (fd != 2) syscall(SYS_close, fd);
}

void WriteStatsOnExit() {
  char where[kMaxOptionString];
  GetStringOption(Option::kStatsOnExit, where, sizeof(where));
  if (where[0] == '\0' || strcmp(where, "0") == 0) return;
  int fd = 2;
  if (where[0] == '/') {
    fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, where,
                                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd < 0) return;
  }
  if (static_cast<StatsFormat>(GetOption(Option::kStatsFormat)) == StatsFormat::kTable) {
    FdWriter w(fd);
    w.Str("strata: statistics at exit (pid ").Uint(static_cast<uint64_t>(getpid())).Str(")\n");
  }
  WriteStatsInConfiguredFormat(fd);
  if (fd != 2) syscall(SYS_close, fd);
}

}  // namespace internal

}  // namespace strata

extern "C" int strata_stats_write(int fd, const char* format) {
  // The stats_format option's names and parser (STRATA_STATS_FORMAT_NAMES).
  int64_t f;
  if (format == nullptr || !strata::ParseOptionValue(strata::Option::kStatsFormat, format, &f)) {
    return -1;
  }
  strata::WriteStats(fd, static_cast<strata::StatsFormat>(f));
  return 0;
}
