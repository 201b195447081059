// Shared harness for the stress workloads: flags, a deterministic RNG, blocks
// patterned from their address and size, and the end-of-run accounting that
// proves nothing leaked. Workloads call strata's API by name (never malloc),
// so they run unchanged under TSan and ASan.
#ifndef STRATA_STRESS_STRESS_COMMON_H_
#define STRATA_STRESS_STRESS_COMMON_H_

#include <cstddef>
#include <cstdint>

#include "tools/util/rng.h"

namespace strata::stress {

// --name=value flags with defaults; unknown flags are an error (exit 2).
class Flags {
 public:
  Flags(int argc, char** argv);
  // Declares a flag and returns its value (or the default).
  long Get(const char* name, long default_value, const char* help);
  // Call after every Get(): reports unknown flags and --help.
  void Done();

 private:
  int argc_;
  char** argv_;
  bool used_[64] = {};
  char help_[4096] = {};
  size_t help_len_ = 0;
};

// Deterministic from the seed (tools/util/rng.h), plus the size law the
// stress workloads use.
class Rng : public util::XorShiftRng {
 public:
  using XorShiftRng::XorShiftRng;
  // Log-uniform in [lo, hi]: small sizes common, large ones present.
  uint64_t LogRange(uint64_t lo, uint64_t hi);
};

// Allocates a block of `size` bytes (at least 16) through strata, records the
// size in its first word and fills the rest with a pattern derived from the
// block's address and size. Blocks above 64 KiB are patterned sparsely (both
// ends and a word every 512 bytes) to keep soak runs affordable.
void* NewBlock(size_t size);
// Resizes with strata::Reallocate, checking that the surviving prefix kept
// the old block's pattern, then re-patterns the whole block.
void* ResizeBlock(void* p, size_t new_size);
// Verifies the pattern (aborting with a message naming the block on a
// mismatch) and frees the block.
void CheckAndFree(void* p);
// Verifies without freeing.
void Check(const void* p);
size_t BlockSize(const void* p);

// Process-wide counters of what the workload did (relaxed atomics).
void CountOps(uint64_t n);

// Call at the start of main: records the starting point.
void Begin(const char* workload);
// Call after every worker thread has been joined and every block freed.
// Adopts orphaned heaps, drains every queue, then checks that no block is
// left in use and that every heap is consistent; prints one summary line
// (time, ops, peak RSS, arenas mapped). Returns main's exit code.
int Finish(uint64_t max_arenas = 0);

}  // namespace strata::stress

#endif  // STRATA_STRESS_STRESS_COMMON_H_
