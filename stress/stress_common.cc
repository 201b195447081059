#include "stress/stress_common.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "alloc/heap.h"
#include "alloc/release.h"
#include "alloc/stats.h"
#include "alloc/strata.h"

namespace strata::stress {
namespace {

constexpr size_t kDenseLimit = size_t{64} << 10;
constexpr size_t kSparseStride = 512;

std::atomic<uint64_t> g_ops{0};
const char* g_workload = "stress";
std::chrono::steady_clock::time_point g_start;

inline uint64_t Word(uintptr_t base, size_t size, size_t i) {
  uint64_t h = (base * 0x9E3779B97F4A7C15ull) ^ (size << 17) ^ (i * 0xBF58476D1CE4E5B9ull);
  return h ^ (h >> 29);
}

// Calls fn(index) for every patterned word index of a block of `size`.
template <typename Fn>
void ForEachWord(size_t size, Fn fn) {
  const size_t words = size / 8;
  if (size <= kDenseLimit) {
    for (size_t i = 1; i < words; ++i) fn(i);
    return;
  }
  const size_t edge = 128;  // words at each end
  for (size_t i = 1; i < edge; ++i) fn(i);
  for (size_t i = edge; i + edge < words; i += kSparseStride / 8) fn(i);
  for (size_t i = words - edge; i < words; ++i) fn(i);
}

[[noreturn]] void Corrupt(const void* p, size_t size, size_t word, const char* what) {
  std::fprintf(stderr, "%s: block %p (size %zu) corrupt at word %zu: %s\n", g_workload, p, size,
               word, what);
  std::abort();
}

}  // namespace

Flags::Flags(int argc, char** argv) : argc_(argc), argv_(argv) {
  if (argc_ > 64) argc_ = 64;
}

long Flags::Get(const char* name, long default_value, const char* help) {
  help_len_ += static_cast<size_t>(std::snprintf(help_ + help_len_, sizeof(help_) - help_len_,
                                                 "  --%s=%ld\t%s\n", name, default_value, help));
  if (help_len_ >= sizeof(help_)) help_len_ = sizeof(help_) - 1;
  const size_t n = std::strlen(name);
  for (int i = 1; i < argc_; ++i) {
    const char* a = argv_[i];
    if (std::strncmp(a, "--", 2) == 0 && std::strncmp(a + 2, name, n) == 0 && a[2 + n] == '=') {
      used_[i] = true;
      char* end = nullptr;
      const long v = std::strtol(a + 3 + n, &end, 10);
      if (*end != 0 || v < 0) {
        std::fprintf(stderr, "bad value for --%s: '%s' (a non-negative integer)\n", name, a + 3 + n);
        std::exit(2);
      }
      return v;
    }
  }
  return default_value;
}

void Flags::Done() {
  for (int i = 1; i < argc_; ++i) {
    if (used_[i]) continue;
    const bool help = std::strcmp(argv_[i], "--help") == 0;
    if (!help) std::fprintf(stderr, "unknown flag: %s\n", argv_[i]);
    std::fprintf(stderr, "flags:\n%s", help_);
    std::exit(help ? 0 : 2);
  }
}

uint64_t Rng::LogRange(uint64_t lo, uint64_t hi) {
  // Pick a power-of-two bucket uniformly, then a size inside it.
  int lo_bit = 63 - __builtin_clzll(lo | 1);
  int hi_bit = 63 - __builtin_clzll(hi | 1);
  const int bit = static_cast<int>(Range(static_cast<uint64_t>(lo_bit), static_cast<uint64_t>(hi_bit)));
  uint64_t a = uint64_t{1} << bit;
  uint64_t b = (a << 1) - 1;
  if (a < lo) a = lo;
  if (b > hi) b = hi;
  return Range(a, b);
}

void* NewBlock(size_t size) {
  if (size < 16) size = 16;
  auto* w = static_cast<uint64_t*>(strata::Allocate(size));
  if (w == nullptr) {
    std::fprintf(stderr, "%s: allocation of %zu bytes failed\n", g_workload, size);
    std::abort();
  }
  w[0] = size;
  const uintptr_t base = reinterpret_cast<uintptr_t>(w);
  ForEachWord(size, [&](size_t i) { w[i] = Word(base, size, i); });
  return w;
}

size_t BlockSize(const void* p) { return static_cast<const uint64_t*>(p)[0]; }

void Check(const void* p) {
  const auto* w = static_cast<const uint64_t*>(p);
  const size_t size = w[0];
  if (size < 16 || size > strata::UsableSize(p)) Corrupt(p, size, 0, "size word");
  const uintptr_t base = reinterpret_cast<uintptr_t>(p);
  ForEachWord(size, [&](size_t i) {
    if (w[i] != Word(base, size, i)) Corrupt(p, size, i, "pattern mismatch");
  });
}

void CheckAndFree(void* p) {
  Check(p);
  strata::Deallocate(p);
}

void* ResizeBlock(void* p, size_t new_size) {
  if (new_size < 16) new_size = 16;
  Check(p);
  const size_t old_size = BlockSize(p);
  const uintptr_t old_base = reinterpret_cast<uintptr_t>(p);
  auto* w = static_cast<uint64_t*>(strata::Reallocate(p, new_size));
  if (w == nullptr) {
    std::fprintf(stderr, "%s: realloc to %zu bytes failed\n", g_workload, new_size);
    std::abort();
  }
  // The prefix must still hold the old block's pattern.
  const size_t keep = old_size < new_size ? old_size : new_size;
  ForEachWord(old_size, [&](size_t i) {
    if (i < keep / 8 && w[i] != Word(old_base, old_size, i)) Corrupt(w, old_size, i, "realloc lost data");
  });
  w[0] = new_size;
  const uintptr_t base = reinterpret_cast<uintptr_t>(w);
  ForEachWord(new_size, [&](size_t i) { w[i] = Word(base, new_size, i); });
  return w;
}

void CountOps(uint64_t n) {
  // Relaxed: a statistic read after every thread was joined.
  g_ops.fetch_add(n, std::memory_order_relaxed);
}

void Begin(const char* workload) {
  g_workload = workload;
  g_start = std::chrono::steady_clock::now();
}

int Finish(uint64_t max_arenas) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  // Every worker has exited; hold the release engine still (its background
  // thread would otherwise be tidying orphans while we count), then adopt
  // their heaps and drain every queue, thrice, since draining one heap can
  // forward blocks into another's queue.
  internal::PauseRelease();
  strata::Deallocate(strata::Allocate(8));  // make sure this thread has a heap
  internal::Heap* self = internal::tls_heap;
  for (int round = 0; round < 3; ++round) {
    self->CollectOrphans(~size_t{0});
    self->DrainRemote();
    self->FlushOutgoing();
  }
  static Stats stats;
  GetStats(&stats);
  uint64_t in_use = 0;
  for (size_t c = 1; c < kNumSizeClasses; ++c) in_use += stats.classes[c].blocks_in_use;
  int rc = 0;
  if (in_use != 0 || stats.large_blocks != 0) {
    std::fprintf(stderr, "%s: LEAK: %llu blocks and %llu large blocks still in use\n", g_workload,
                 (unsigned long long)in_use, (unsigned long long)stats.large_blocks);
    WriteStatsTable(2, &stats);
    rc = 1;
  }
  if (!self->IsValid()) {
    std::fprintf(stderr, "%s: heap invariants broken after the run\n", g_workload);
    rc = 1;
  }
  if (max_arenas != 0 && stats.arenas_mapped > max_arenas) {
    std::fprintf(stderr, "%s: %llu arenas mapped, bound was %llu\n", g_workload,
                 (unsigned long long)stats.arenas_mapped, (unsigned long long)max_arenas);
    rc = 1;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "%s: %s in %.2f s, %llu ops, peak RSS %ld MiB, arenas mapped at peak %llu, at end %llu "
      "(%llu empty), heaps %llu\n",
      g_workload, rc == 0 ? "OK" : "FAILED", seconds,
      (unsigned long long)g_ops.load(std::memory_order_relaxed), ru.ru_maxrss / 1024,
      (unsigned long long)stats.arenas_mapped_peak, (unsigned long long)stats.arenas_mapped,
      (unsigned long long)stats.arenas_empty, (unsigned long long)stats.heaps);
  return rc;
}

}  // namespace strata::stress
