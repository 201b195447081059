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

// The mean of the union of two sampling processes of means a and b (0:
// off): each is a Poisson process over allocated bytes, so their union is
// one of rate 1/a + 1/b. Rounded down, so that the union's probability is
// never below the sum of the two it serves (SampleCountdown::Choose).
inline int64_t CombinedRate(int64_t a, int64_t b) {
  if (a <= 0) return b > 0 ? b : 0;
  if (b <= 0) return a;
  const auto r = static_cast<int64_t>(static_cast<double>(a) * static_cast<double>(b) /
                                      (static_cast<double>(a) + static_cast<double>(b)));
  return r < 1 ? 1 : r;
}

// What a sample that the countdown drew is for: the heap profile, guarded
// sampling (guarded.h), both, or (rarely, see Choose) neither.
struct SampleChoice {
  bool profile;
  bool guard;
};

// A thread's sampling: the rates its countdowns were drawn with, their
// generator, and the countdown of its large allocations, in bytes (every
// large allocation subtracts its size; below zero it is sampled). The
// allocations of a size class count down in blocks instead, in the class
// cache (class_cache.h): NextBlocks draws those. Two users share the one
// countdown, so that the fast paths count down once: the heap profile
// (profile_sample_bytes, P) and guarded sampling (guarded_sample_bytes, G).
// The countdowns are drawn at the mean R = CombinedRate(P, G), so that
// every allocation of n bytes is drawn with probability
// pR = 1 - exp(-n/R) whatever came before it (n the class's size for a
// class); Choose then splits a drawn allocation between the two so that
// each sees exactly its own probability, pP = 1 - exp(-n/P) and pG, as
// two independent processes would: the profile's weights stay exact.
// Owner thread only (a heap's part, heap.h).
class SampleCountdown {
 public:
  constexpr SampleCountdown() = default;

  // Counts a large allocation of n bytes: true when it is to be sampled.
  bool CountDown(size_t n) {
    left_ -= static_cast<int64_t>(n);
    return ABSL_PREDICT_FALSE(left_ < 0);
  }
  // Draws every countdown afresh for profile_sample_bytes = profile and
  // guarded_sample_bytes = guarded (0: off). The generator is seeded on
  // first use from the countdown's own address (one per heap) and the time.
  void Reset(int64_t profile, int64_t guarded) {
    if (rng_ == 0) rng_ = (reinterpret_cast<uintptr_t>(this) ^ (os::NowMs() << 32)) | 1;
    profile_rate_ = profile;
    guarded_rate_ = guarded;
    rate_ = CombinedRate(profile, guarded);
    left_ = NextSampleInterval(&rng_, rate_);
  }
  // True when the countdowns were drawn for these two rates.
  bool Follows(int64_t profile, int64_t guarded) const {
    return profile == profile_rate_ && guarded == guarded_rate_;
  }
  // The allocations of a class of `size` bytes until (and with) its next
  // sample: 1 + floor(X / size) for X exponential of mean rate, that is a
  // geometric number of allocations each sampled with probability
  // 1 - exp(-size/rate). With the rate 0 (off): the allocations in
  // kSampleCheckBytes, after which the thread looks at the rates again.
  int32_t NextBlocks(size_t size) {
    const int64_t blocks = NextSampleInterval(&rng_, rate_) / static_cast<int64_t>(size) + (rate_ > 0 ? 1 : 0);
    return blocks < 1 ? 1 : blocks > INT32_MAX ? INT32_MAX : static_cast<int32_t>(blocks);
  }
  // Draws the large allocations' next countdown (at the same rate).
  void RedrawLarge() { left_ = NextSampleInterval(&rng_, rate_); }
  // What an allocation of `size` bytes that the countdown drew is for. A
  // uniform u in [0, pR) picks: the profile when u < pP, guarding when
  // pP(1 - pG) <= u < pP + pG(1 - pP); the two overlap by pP pG (both),
  // and [pP + pG - pP pG, pR) (empty but for R's rounding) is neither.
  SampleChoice Choose(size_t size) {
    if (guarded_rate_ <= 0) return {profile_rate_ > 0, false};
    if (profile_rate_ <= 0) return {false, true};
    const double p_r = SampleProbability(size, rate_);
    const double p_p = SampleProbability(size, profile_rate_);
    const double p_g = SampleProbability(size, guarded_rate_);
    const double u = static_cast<double>(NextRandom(&rng_) >> 11) * (1.0 / 9007199254740992.0) * p_r;
    return {u < p_p, u >= p_p * (1 - p_g) && u < p_p + p_g * (1 - p_p)};
  }
  // The mean the countdowns were drawn with (0: both off).
  int64_t rate() const { return rate_; }
  // profile_sample_bytes when last drawn: the profile's weights use it.
  int64_t profile_rate() const { return profile_rate_; }

 private:
  int64_t left_ = kSampleCheckBytes;  // bytes until the next large sample
  uint64_t rng_ = 0;                  // the generator's state (0: not seeded)
  int64_t rate_ = 0;                  // CombinedRate(profile_rate_, guarded_rate_)
  int64_t profile_rate_ = 0;          // profile_sample_bytes when last drawn
  int64_t guarded_rate_ = 0;          // guarded_sample_bytes when last drawn
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_SAMPLING_H_
