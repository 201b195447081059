// Workload (e): every thread hammers one size class: runs of local
// allocate/free, with a share of the blocks handed to other threads through
// shared slots so that the class's runs also receive remote frees.
//
//   bazel run -c opt //stress:one_class -- --threads=8 --iterations=1000000 --size=48
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
      flags.Get("iterations", strata::testing::Scaled(200000L, 40000L), "allocations per thread");
  const long size = flags.Get("size", 48, "the one block size (bytes)");
  const long batch = flags.Get("batch", 256, "blocks held before freeing");
  const long share = flags.Get("share_percent", 25, "blocks handed to other threads (%)");
  const long seed = flags.Get("seed", 5, "RNG seed");
  flags.Done();
  Begin("one_class");

  std::vector<std::atomic<void*>> slots(1024);
  for (auto& s : slots) s.store(nullptr, std::memory_order_relaxed);
  std::vector<std::thread> threads;
  for (long t = 0; t < threads_n; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(seed * 31 + t);
      std::vector<void*> held;
      held.reserve(static_cast<size_t>(batch));
      for (long i = 0; i < iterations; ++i) {
        held.push_back(NewBlock(static_cast<size_t>(size)));
        if (static_cast<long>(held.size()) < batch) continue;
        for (void* p : held) {
          if (static_cast<long>(rng.Next() % 100) < share) {
            // acq_rel: hand our block over, take someone else's.
            void* old = slots[rng.Next() % slots.size()].exchange(p, std::memory_order_acq_rel);
            if (old != nullptr) CheckAndFree(old);
          } else {
            CheckAndFree(p);
          }
        }
        held.clear();
      }
      for (void* p : held) CheckAndFree(p);
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
