// Shared harness of the benchmark workloads: flags, a deterministic RNG,
// light block patterns and the one result line. Workloads call plain
// malloc/free/calloc/realloc/new/delete (never strata's API), so LD_PRELOAD
// decides which allocator they measure. Not a test harness: it checks blocks
// only lightly (both ends), enough to catch a broken allocator loudly.
#ifndef STRATA_TOOLS_BENCH_BENCH_COMMON_H_
#define STRATA_TOOLS_BENCH_BENCH_COMMON_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "tools/util/rng.h"

namespace strata::bench {

// --name=value flags with defaults; unknown flags or bad values exit 2,
// --help prints every declared flag and exits 0.
class Flags {
 public:
  Flags(const char* workload, const char* summary, int argc, char** argv);
  // Declares a non-negative integer flag and returns its value (or the default).
  long Get(const char* name, long default_value, const char* help);
  // Declares a flag whose value is one of `choices` ("a|b|c"); returns it.
  const char* GetChoice(const char* name, const char* choices, const char* help);
  // Call after every Get(): handles --help and rejects unknown flags.
  void Done();

 private:
  const char* FindValue(const char* name);
  void AddHelp(const char* name, const char* default_text, const char* help);

  const char* workload_;
  const char* summary_;
  int argc_;
  char** argv_;
  bool used_[64] = {};
  char help_[4096] = {};
  size_t help_len_ = 0;
};

// Deterministic from the seed (tools/util/rng.h), plus the size laws the
// workloads use.
class Rng : public util::XorShiftRng {
 public:
  using XorShiftRng::XorShiftRng;
  // Log-uniform in [lo, hi]: each doubling of size equally likely.
  uint64_t LogRange(uint64_t lo, uint64_t hi);
  // Pareto with shape `alpha` and scale `lo`, truncated to [lo, hi]: mostly
  // near lo, with a heavy tail up to hi.
  uint64_t Pareto(uint64_t lo, uint64_t hi, double alpha);
};

// Seed of thread `index`'s RNG, decorrelated from the others'.
inline uint64_t ThreadSeed(uint64_t seed, uint64_t index) {
  return seed * 1000003ull + index * 0xD1B54A32D192ED03ull + 1;
}

// A 64-bit mix (splitmix64's finaliser), for tags and checksums.
inline uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Writes a pattern derived from `tag` (not from the address, so checksums
// stay the same under every allocator) into both ends of a block of `size`
// bytes: the first and last 8 bytes, or every byte of a block under 16.
void Stamp(void* p, size_t size, uint64_t tag);
// Checks Stamp's pattern; on a mismatch prints the workload, block, size and
// tag to stderr and aborts.
void Verify(const void* p, size_t size, uint64_t tag);

// Prints "<workload>: <message>" to stderr and aborts.
[[noreturn]] void Fail(const char* format, ...) __attribute__((format(printf, 1, 2)));

// Aborts loudly when an allocation returned null.
inline void* Checked(void* p, size_t size) {
  if (p == nullptr) Fail("allocation of %zu bytes returned null", size);
  return p;
}

// Runs fn(index) on `n` threads (index 0..n-1) and joins them.
template <typename Fn>
void RunThreads(int n, Fn fn) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
  for (auto& t : threads) t.join();
}

// Per-thread counters on their own cache line (threads write them only at
// the end, but keep them apart anyway).
struct alignas(64) ThreadResult {
  uint64_t ops = 0;
  uint64_t checksum = 0;
};

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Prints the result line the runner parses, on stdout:
//   bench=<workload> threads=<n> ops=<n> checksum=<16 hex> time_s=<s>
// where time_s covers the measured part only (the runner times the process).
void PrintResult(int threads, uint64_t ops, uint64_t checksum, double seconds);
// Sums per-thread results and prints them.
void PrintResult(int threads, const std::vector<ThreadResult>& results, double seconds);

// Splits `total` work items over `parts` (the first ones get the remainder).
inline uint64_t Share(uint64_t total, uint64_t parts, uint64_t index) {
  return total / parts + (index < total % parts ? 1 : 0);
}

}  // namespace strata::bench

#endif  // STRATA_TOOLS_BENCH_BENCH_COMMON_H_
