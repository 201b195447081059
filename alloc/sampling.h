// The heap profiler's sampling arithmetic, without libm: strata links libc
// alone. Each thread counts down the bytes it allocates; when the count goes
// below zero the allocation is sampled and a new count is drawn. Drawing it
// from an exponential distribution of mean `rate` makes the samples a
// Poisson process over allocated bytes: an allocation of n bytes is sampled
// with probability 1 - exp(-n/rate) whatever came before it, so weighting
// each sample by the inverse of that probability gives unbiased estimates
// of counts and bytes (tcmalloc's and Go's scheme).
#ifndef STRATA_ALLOC_SAMPLING_H_
#define STRATA_ALLOC_SAMPLING_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "alloc/os.h"

namespace strata::internal {

// With profiling off, a thread still comes to the slow path once per this
// many bytes, to see whether profiling has been turned on since.
inline constexpr int64_t kSampleCheckBytes = int64_t{8} << 20;

// The natural logarithm of u in (0, 1]: u = m * 2^e with m in [1, 2), and
// ln(m) = 2 atanh(s) with s = (m - 1) / (m + 1) <= 1/3, whose series to
// s^11 is within 1e-7.
inline double LogUnit(double u) {
  uint64_t bits;
  memcpy(&bits, &u, sizeof(bits));
  const int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52);
  double m;
  memcpy(&m, &bits, sizeof(m));
  const double s = (m - 1) / (m + 1);
  const double s2 = s * s;
  const double series =
      s * (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 / 11)))));
  return e * 0.6931471805599453 + 2 * series;
}

// exp(-x) for x >= 0: x = k ln 2 + r with r in [0, ln 2), exp(-r) by its
// Taylor series to r^13 (within 1e-12), times 2^-k.
inline double ExpNeg(double x) {
  if (!(x < 700)) return 0;
  const auto k = static_cast<int>(x * 1.4426950408889634);
  const double r = x - k * 0.6931471805599453;
  double term = 1, sum = 1;
  for (int i = 1; i <= 13; ++i) {
    term *= -r / i;
    sum += term;
  }
  const uint64_t bits = static_cast<uint64_t>(1023 - k) << 52;
  double scale;
  memcpy(&scale, &bits, sizeof(scale));
  return sum * scale;
}

// One step of a 64-bit generator (splitmix64): state advances, the result
// is well mixed even from a poor seed.
inline uint64_t NextRandom(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

// The bytes until the next sample: exponential with mean `rate` (> 0), at
// least 1. With rate 0 (off): kSampleCheckBytes.
inline int64_t NextSampleInterval(uint64_t* state, int64_t rate) {
  if (rate <= 0) return kSampleCheckBytes;
  // u in (0, 1]: 53 random bits, plus one.
  const double u = static_cast<double>((NextRandom(state) >> 11) + 1) * (1.0 / 9007199254740992.0);
  const double bytes = -LogUnit(u) * static_cast<double>(rate);
  if (bytes >= 9.0e18) return INT64_MAX;
  const auto n = static_cast<int64_t>(bytes);
  return n < 1 ? 1 : n;
}

// The chance that an allocation of n bytes is sampled at `rate`.
inline double SampleProbability(size_t n, int64_t rate) {
  const double x = static_cast<double>(n) / static_cast<double>(rate);
  // For small x, 1 - exp(-x) cancels: its series keeps the precision.
  if (x < 1e-3) return x * (1 - x / 2 * (1 - x / 3));
  return 1 - ExpNeg(x);
}

// A thread's sampling: the rate its countdowns were drawn with, their
// generator, and the countdown of its large allocations, in bytes (every
// large allocation subtracts its size; below zero it is sampled). The
// allocations of a size class count down in blocks instead, in the class
// cache (class_cache.h): NextBlocks draws those. Both make every
// allocation of n bytes sampled with probability 1 - exp(-n/rate) (n the
// class's size for a class), so that the profile's weights are exact.
// Owner thread only (a heap's part, heap.h).
class SampleCountdown {
 public:
  constexpr SampleCountdown() = default;

  // Counts a large allocation of n bytes: true when it is to be sampled.
  bool CountDown(size_t n) {
    left_ -= static_cast<int64_t>(n);
    return ABSL_PREDICT_FALSE(left_ < 0);
  }
  // Draws every countdown afresh for profile_sample_bytes = rate (0: off).
  // The generator is seeded on first use from the countdown's own address
  // (one per heap) and the time.
  void Reset(int64_t rate) {
    if (rng_ == 0) rng_ = (reinterpret_cast<uintptr_t>(this) ^ (os::NowMs() << 32)) | 1;
    rate_ = rate;
    left_ = NextSampleInterval(&rng_, rate);
  }
  // The allocations of a class of `size` bytes until (and with) its next
  // sample: 1 + floor(X / size) for X exponential of mean rate, that is a
  // geometric number of allocations each sampled with probability
  // 1 - exp(-size/rate). With the rate 0 (off): the allocations in
  // kSampleCheckBytes, after which the thread looks at the rate again.
  int32_t NextBlocks(size_t size) {
    const int64_t blocks = NextSampleInterval(&rng_, rate_) / static_cast<int64_t>(size) + (rate_ > 0 ? 1 : 0);
    return blocks < 1 ? 1 : blocks > INT32_MAX ? INT32_MAX : static_cast<int32_t>(blocks);
  }
  // Draws the large allocations' next countdown (at the same rate).
  void RedrawLarge() { left_ = NextSampleInterval(&rng_, rate_); }
  // The rate the countdowns were drawn with.
  int64_t rate() const { return rate_; }

 private:
  int64_t left_ = kSampleCheckBytes;  // bytes until the next large sample
  uint64_t rng_ = 0;                  // the generator's state (0: not seeded)
  int64_t rate_ = 0;                  // profile_sample_bytes when last drawn
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_SAMPLING_H_
