// Workload (c): thread churn. Threads are created and joined continuously;
// each allocates blocks that outlive it (parked in shared slots) and frees
// blocks that other, already dead threads made. Dead threads' heaps must be
// adopted, so the number of arenas stays bounded by the live data, not by
// the number of threads ever created; the run fails if it does not.
//
//   bazel run -c opt //stress:thread_churn -- --total_threads=10000 --threads=8 --blocks=1000
#include <atomic>
#include <thread>
#include <vector>

#include "alloc/config.h"
#include "stress/stress_common.h"
#include "tests/util/sanitizer.h"

int main(int argc, char** argv) {
  using namespace strata::stress;
  Flags flags(argc, argv);
  const long total = flags.Get("total_threads", strata::testing::Scaled(400L, 100L),
                               "threads created over the run");
  const long concurrent = flags.Get("threads", 4, "threads alive at once");
  const long blocks = flags.Get("blocks", 200, "blocks each thread allocates");
  const long slots_n = flags.Get("slots", 4096, "shared slots (blocks outliving threads)");
  const long max_size = flags.Get("max_size", 1024, "largest block (bytes)");
  const long seed = flags.Get("seed", 3, "RNG seed");
  flags.Done();
  Begin("thread_churn");

  std::vector<std::atomic<void*>> slots(static_cast<size_t>(slots_n));
  for (auto& s : slots) s.store(nullptr, std::memory_order_relaxed);
  std::atomic<long> next_id{0};
  std::vector<std::thread> live;
  while (next_id.load() < total) {
    // Keep `concurrent` threads running; join them as a wave.
    for (long k = 0; k < concurrent && next_id.load() < total; ++k) {
      const long id = next_id.fetch_add(1);
      live.emplace_back([&, id] {
        Rng rng(seed * 104729 + id);
        for (long i = 0; i < blocks; ++i) {
          void* p = NewBlock(rng.LogRange(16, static_cast<uint64_t>(max_size)));
          // acq_rel: publish ours, take a dead (or live) thread's block.
          void* old = slots[rng.Next() % slots.size()].exchange(p, std::memory_order_acq_rel);
          if (old != nullptr) CheckAndFree(old);
        }
        CountOps(blocks);
      });
    }
    for (auto& t : live) t.join();
    live.clear();
  }
  for (auto& s : slots) {
    void* p = s.exchange(nullptr, std::memory_order_acquire);
    if (p != nullptr) CheckAndFree(p);
  }
  // Bound: the live data (every slot full of the largest block, twice for
  // fragmentation) plus a few arenas per thread alive at once.
  const uint64_t live_bytes = static_cast<uint64_t>(slots_n) * static_cast<uint64_t>(max_size);
  const uint64_t bound = 2 * live_bytes / strata::internal::kArenaSize + 16 * concurrent + 16;
  return Finish(bound);
}
