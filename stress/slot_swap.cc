// Workload (b): every thread swaps blocks through one shared array of slots
// with atomic exchanges, freeing whatever it takes out: blocks die on random
// threads, locally or remotely.
//
//   bazel run -c opt //stress:slot_swap -- --threads=8 --iterations=1000000
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
      flags.Get("iterations", strata::testing::Scaled(100000L, 20000L), "swaps per thread");
  const long slots_n = flags.Get("slots", 4096, "shared slots");
  const long max_size = flags.Get("max_size", 4096, "largest block (bytes)");
  const long seed = flags.Get("seed", 2, "RNG seed");
  flags.Done();
  Begin("slot_swap");

  std::vector<std::atomic<void*>> slots(static_cast<size_t>(slots_n));
  for (auto& s : slots) s.store(nullptr, std::memory_order_relaxed);
  std::vector<std::thread> threads;
  for (long t = 0; t < threads_n; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(seed * 7919 + t);
      for (long i = 0; i < iterations; ++i) {
        void* mine = NewBlock(rng.LogRange(16, static_cast<uint64_t>(max_size)));
        // acq_rel: release publishes our block's contents to whoever takes
        // it; acquire makes the previous owner's writes visible to us.
        void* old = slots[rng.Next() % slots.size()].exchange(mine, std::memory_order_acq_rel);
        if (old != nullptr) CheckAndFree(old);
      }
      CountOps(iterations);
    });
  }
  for (auto& th : threads) th.join();
  for (auto& s : slots) {
    void* p = s.exchange(nullptr, std::memory_order_acquire);
    if (p != nullptr) CheckAndFree(p);
  }
  return Finish();
}
