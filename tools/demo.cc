// strata's demo: the seed's experiment. 100,000 small records are allocated
// through strata and then freed; a per-size-class table shows blocks, pools
// and arenas in use before, at the peak and after, in the spirit of CPython's
// sys._debugmallocstats(). Then it waits a little longer than strata's purge
// delay (the purge_delay_ms option) and shows the process's RSS at four
// moments, so the memory can be seen going back to the OS.
//
//   bazel run -c opt //tools:demo [-- --records=N --seed=S --full]
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "alloc/options.h"
#include "alloc/stats.h"
#include "alloc/strata.h"

namespace {

// A record in the spirit of a small Python object: a fixed header, a name
// and a variable payload, each its own allocation.
struct Record {
  char* name;
  uint64_t* payload;
  uint32_t payload_len;
  uint32_t id;
};

uint64_t NextRandom(uint64_t* state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

uint64_t Pools(const strata::SizeClassStats& s) {
  return (s.runs_full + s.runs_partial + s.runs_empty) * s.run_pools;
}

void PrintTable(const strata::Stats& before, const strata::Stats& peak, const strata::Stats& after) {
  std::printf("%5s %6s | %22s | %20s\n", "", "", "blocks in use", "pools in use");
  std::printf("%5s %6s | %6s %8s %6s | %6s %6s %6s\n", "class", "size", "before", "peak", "after",
              "before", "peak", "after");
  uint64_t total[6] = {};
  for (size_t c = 1; c < strata::kNumSizeClasses; ++c) {
    const auto &b = before.classes[c], &p = peak.classes[c], &a = after.classes[c];
    if (Pools(b) + Pools(p) + Pools(a) == 0) continue;
    std::printf("%5zu %6u | %6llu %8llu %6llu | %6llu %6llu %6llu\n", c, p.block_size,
                (unsigned long long)b.blocks_in_use, (unsigned long long)p.blocks_in_use,
                (unsigned long long)a.blocks_in_use, (unsigned long long)Pools(b),
                (unsigned long long)Pools(p), (unsigned long long)Pools(a));
    total[0] += b.blocks_in_use;
    total[1] += p.blocks_in_use;
    total[2] += a.blocks_in_use;
    total[3] += Pools(b);
    total[4] += Pools(p);
    total[5] += Pools(a);
  }
  std::printf("%5s %6s | %6llu %8llu %6llu | %6llu %6llu %6llu\n", "total", "",
              (unsigned long long)total[0], (unsigned long long)total[1],
              (unsigned long long)total[2], (unsigned long long)total[3],
              (unsigned long long)total[4], (unsigned long long)total[5]);
  std::printf("\n%-28s %10s %10s %10s\n", "", "before", "peak", "after");
  auto row = [](const char* what, uint64_t b, uint64_t p, uint64_t a) {
    std::printf("%-28s %10llu %10llu %10llu\n", what, (unsigned long long)b, (unsigned long long)p,
                (unsigned long long)a);
  };
  row("arenas owned by threads", before.arenas_owned, peak.arenas_owned, after.arenas_owned);
  row("arenas empty (reusable)", before.arenas_empty, peak.arenas_empty, after.arenas_empty);
  row("arenas mapped", before.arenas_mapped, peak.arenas_mapped, after.arenas_mapped);
  row("bytes in use (small/medium)", before.small_bytes_in_use, peak.small_bytes_in_use,
      after.small_bytes_in_use);
  row("bytes mapped from the OS", before.os_mapped_bytes, peak.os_mapped_bytes,
      after.os_mapped_bytes);
}

// The longest the demo waits for the purge delay: beyond it (a delay set in
// minutes, say) it shows the RSS after this long and says so.
constexpr int64_t kMaxWaitMs = 10000;

// How long to wait for freed memory to be purged: the purge delay, plus
// the time the release pass may take to come round (it looks every half
// delay, at most every second), plus a little slack.
int64_t WaitForPurgeMs(int64_t delay_ms) {
  int64_t pass = delay_ms / 2;
  if (pass < 16) pass = 16;
  if (pass > 1000) pass = 1000;
  return delay_ms + pass + 100;
}

void SleepMs(int64_t ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000;
  while (nanosleep(&ts, &ts) != 0) {
  }
}

double MiB(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// The process's RSS (Stats::resident_bytes, read from /proc/self/statm) and
// strata's mapped bytes at the four moments.
void PrintRssTable(const strata::Stats& before, const strata::Stats& peak,
                   const strata::Stats& after, const strata::Stats& later,
                   const char* later_label) {
  std::printf("\n%-40s %9s %14s\n", "process RSS (MiB)", "RSS", "strata mapped");
  auto row = [](const char* moment, const strata::Stats& s) {
    std::printf("%-40s %9.1f %14.1f\n", moment, MiB(s.resident_bytes), MiB(s.os_mapped_bytes));
  };
  row("before the experiment", before);
  row("at the peak", peak);
  row("right after the del", after);
  row(later_label, later);
}

}  // namespace

int main(int argc, char** argv) {
  long records = 100000;
  uint64_t seed = 42;
  bool full = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--records=", 10) == 0) {
      records = std::strtol(argv[i] + 10, nullptr, 10);
    } else if (std::strncmp(argv[i], "--seed=", 7) == 0) {
      seed = std::strtoull(argv[i] + 7, nullptr, 10);
    } else if (std::strcmp(argv[i], "--full") == 0) {
      full = true;
    } else {
      std::fprintf(stderr, "usage: %s [--records=N] [--seed=S] [--full]\n", argv[0]);
      return 2;
    }
  }
  if (records <= 0) {
    std::fprintf(stderr, "--records must be positive\n");
    return 2;
  }
  std::printf("strata demo: %ld records (header + name + payload), seed %llu\n\n", records,
              (unsigned long long)seed);

  static strata::Stats before, peak, after;  // large: keep them off the stack
  strata::GetStats(&before);

  auto** table = static_cast<Record**>(strata::Allocate(sizeof(Record*) * records));
  uint64_t rng = seed | 1;
  for (long i = 0; i < records; ++i) {
    auto* r = static_cast<Record*>(strata::Allocate(sizeof(Record)));
    const size_t name_len = 8 + NextRandom(&rng) % 56;      // 8..63 bytes
    r->name = static_cast<char*>(strata::Allocate(name_len + 1));
    std::memset(r->name, 'a' + i % 26, name_len);
    r->name[name_len] = 0;
    r->payload_len = 1 + NextRandom(&rng) % 48;             // 8..384 bytes
    r->payload = static_cast<uint64_t*>(strata::Allocate(r->payload_len * sizeof(uint64_t)));
    for (uint32_t k = 0; k < r->payload_len; ++k) r->payload[k] = i * 1000 + k;
    r->id = static_cast<uint32_t>(i);
    table[i] = r;
  }
  strata::GetStats(&peak);

  uint64_t checksum = 0;
  for (long i = 0; i < records; ++i) {
    Record* r = table[i];
    if (r->id != static_cast<uint32_t>(i) || r->payload[0] != static_cast<uint64_t>(i) * 1000) {
      std::fprintf(stderr, "record %ld corrupted\n", i);
      return 1;
    }
    checksum += r->payload_len + std::strlen(r->name);
    strata::Deallocate(r->payload);
    strata::Deallocate(r->name);
    strata::Deallocate(r);
  }
  strata::Deallocate(table);
  strata::GetStats(&after);

  // Wait for the purge delay to pass, then look again. The delay is
  // whatever strata runs with (STRATA_PURGE_DELAY_MS, a flag or the API).
  static strata::Stats later;
  const int64_t delay = strata::GetOption(strata::Option::kPurgeDelayMs);
  char later_label[64];
  char wait_note[160] = "";
  int64_t wait_ms;
  if (delay < 0) {
    // Never purged by delay: show a short wait, and say why nothing moves.
    wait_ms = 500;
    std::snprintf(later_label, sizeof(later_label), "after %.1f s (no purge delay)",
                  wait_ms / 1000.0);
    std::snprintf(wait_note, sizeof(wait_note),
                  "purge_delay_ms is -1: strata purges only on ReleaseMemory()/malloc_trim()");
  } else {
    wait_ms = WaitForPurgeMs(delay);
    std::snprintf(later_label, sizeof(later_label), "after the purge delay (%lld ms)",
                  (long long)delay);
    if (wait_ms > kMaxWaitMs) {
      wait_ms = kMaxWaitMs;
      std::snprintf(later_label, sizeof(later_label), "after %.1f s (purge delay not passed)",
                    wait_ms / 1000.0);
      std::snprintf(wait_note, sizeof(wait_note),
                    "purge_delay_ms is %lld ms: the demo waits at most %.1f s",
                    (long long)delay, wait_ms / 1000.0);
    }
  }
  std::printf("freed everything; waiting %.1f s for strata's purge delay (purge_delay_ms = %lld)\n",
              wait_ms / 1000.0, (long long)delay);
  std::fflush(stdout);
  SleepMs(wait_ms);
  strata::GetStats(&later);

  std::printf("\n");
  PrintTable(before, peak, after);
  PrintRssTable(before, peak, after, later, later_label);
  if (wait_note[0] != 0) std::printf("note: %s\n", wait_note);
  if (strata::GetOption(strata::Option::kBackgroundRelease) == 0) {
    std::printf("note: background_release is off: with no allocation after the del, nothing "
                "runs the purge\n");
  }
  if (strata::GetOption(strata::Option::kPurgeMode) == 1) {
    std::printf("note: purge_mode is free (MADV_FREE): purged pages stay counted in RSS until "
                "the kernel needs them\n");
  }
  std::printf("\nverified %ld records (checksum %llu)\n", records, (unsigned long long)checksum);
  if (full) {
    std::printf("\nstrata's own table, after:\n");
    std::fflush(stdout);
    strata::WriteStatsTable(1, &after);
  }
  return 0;
}
