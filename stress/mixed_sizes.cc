// Workload (d): mixed sizes across small, medium and large, with realloc
// chains (a block grows and shrinks through classes, its contents checked at
// every step) and blocks handed across threads to be freed elsewhere.
//
//   bazel run -c opt //stress:mixed_sizes -- --threads=8 --iterations=1000000 --max_large=33554432
#include <atomic>
#include <thread>
#include <vector>

#include "stress/stress_common.h"
#include "tests/util/sanitizer.h"

int main(int argc, char** argv) {
  using namespace strata::stress;
  Flags flags(argc, argv);
  const long threads_n = flags.Get("threads", 4, "worker threads");
  const long iterations =
      flags.Get("iterations", strata::testing::Scaled(40000L, 8000L), "operations per thread");
  const long max_large = flags.Get("max_large", 4L << 20, "largest block (bytes)");
  const long large_permille = flags.Get("large_permille", 5, "share of large requests (per mille)");
  const long seed = flags.Get("seed", 4, "RNG seed");
  flags.Done();
  Begin("mixed_sizes");

  constexpr size_t kLocal = 64;
  std::vector<std::atomic<void*>> shared(256);
  for (auto& s : shared) s.store(nullptr, std::memory_order_relaxed);
  std::vector<std::thread> threads;
  for (long t = 0; t < threads_n; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(seed * 65537 + t);
      void* local[kLocal] = {};
      auto pick_size = [&]() -> size_t {
        const uint64_t r = rng.Next() % 1000;
        if (r < static_cast<uint64_t>(large_permille)) {
          return rng.LogRange(64 << 10, static_cast<uint64_t>(max_large));
        }
        if (r < 300) return rng.LogRange(513, 64 << 10);  // medium
        return rng.LogRange(16, 512);                     // small
      };
      for (long i = 0; i < iterations; ++i) {
        void*& slot = local[rng.Next() % kLocal];
        const uint64_t op = rng.Next() % 10;
        if (slot == nullptr) {
          slot = NewBlock(pick_size());
        } else if (op < 6) {
          slot = ResizeBlock(slot, pick_size());  // the realloc chain goes on
        } else if (op < 8) {
          CheckAndFree(slot);
          slot = nullptr;
        } else {
          // acq_rel: hand the block to whichever thread takes this slot.
          void* old = shared[rng.Next() % shared.size()].exchange(slot, std::memory_order_acq_rel);
          slot = nullptr;
          if (old != nullptr) CheckAndFree(old);
        }
      }
      for (void* p : local) {
        if (p != nullptr) CheckAndFree(p);
      }
      CountOps(iterations);
    });
  }
  for (auto& th : threads) th.join();
  for (auto& s : shared) {
    void* p = s.exchange(nullptr, std::memory_order_acquire);
    if (p != nullptr) CheckAndFree(p);
  }
  return Finish();
}
