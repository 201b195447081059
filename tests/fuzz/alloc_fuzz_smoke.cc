// Runs the libFuzzer harness (alloc_fuzz.cc) without libFuzzer: a fixed-seed
// generator feeds it inputs, so every build config (default, tsan, asan)
// exercises the harness on each CI run. The harness aborts on any mismatch,
// which fails this test. Real fuzzing still needs --config=fuzz (see BUILD).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// SplitMix64: a fixed stream, so a failure reproduces run after run.
uint64_t Next(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr long kInputs = 200;
constexpr size_t kMaxInput = 256;  // up to 64 operations per input
constexpr size_t kLongestInput = 1 << 16;

}  // namespace

// Optional arguments, for soak runs by hand: INPUTS [MAX_INPUT_BYTES [SEED]].
int main(int argc, char** argv) {
  const long inputs = argc > 1 ? atol(argv[1]) : kInputs;
  size_t max_input = argc > 2 ? static_cast<size_t>(atol(argv[2])) : kMaxInput;
  if (max_input > kLongestInput) max_input = kLongestInput;
  uint64_t state = argc > 3 ? static_cast<uint64_t>(atoll(argv[3])) : 20261125;
  static uint8_t input[kLongestInput];
  size_t bytes = 0;
  for (long i = 0; i < inputs; ++i) {
    const size_t len = Next(state) % (max_input + 1);
    for (size_t k = 0; k < len; ++k) input[k] = static_cast<uint8_t>(Next(state));
    LLVMFuzzerTestOneInput(input, len);
    bytes += len;
  }
  printf("alloc_fuzz_smoke: %ld inputs, %zu bytes (%zu operations), no mismatch\n", inputs, bytes,
         bytes / 4);
  return 0;
}
