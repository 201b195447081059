// Runs the libFuzzer harness (alloc_fuzz.cc) without libFuzzer: a fixed-seed
// generator feeds it inputs, so every build config (default, tsan, asan)
// exercises the harness on each CI run. The harness aborts on any mismatch,
// which fails this test. Real fuzzing still needs --config=fuzz (see BUILD).
#include <cstddef>
#include <cstdint>
#include <cstdio>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// SplitMix64: a fixed stream, so a failure reproduces run after run.
uint64_t Next(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr int kInputs = 200;
constexpr size_t kMaxInput = 256;  // up to 64 operations per input

}  // namespace

int main() {
  uint64_t state = 20261125;
  uint8_t input[kMaxInput];
  size_t bytes = 0;
  for (int i = 0; i < kInputs; ++i) {
    const size_t len = Next(state) % (kMaxInput + 1);
    for (size_t k = 0; k < len; ++k) input[k] = static_cast<uint8_t>(Next(state));
    LLVMFuzzerTestOneInput(input, len);
    bytes += len;
  }
  printf("alloc_fuzz_smoke: %d inputs, %zu bytes, no mismatch\n", kInputs, bytes);
  return 0;
}
