// xorshift64*: a deterministic, cheap random number generator for workloads
// (stress tests, benchmarks): the same seed gives the same run. Programs add
// the size distributions they need on top.
#ifndef STRATA_TOOLS_UTIL_RNG_H_
#define STRATA_TOOLS_UTIL_RNG_H_

#include <cstdint>

namespace strata::util {

class XorShiftRng {
 public:
  explicit XorShiftRng(uint64_t seed)
      : state_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {
    if (state_ == 0) state_ = 1;
  }
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Next() % (hi - lo + 1); }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace strata::util

#endif  // STRATA_TOOLS_UTIL_RNG_H_
