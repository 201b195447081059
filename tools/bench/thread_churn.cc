// thread_churn: threads are created and joined continuously, in generations
// of --threads at a time. Each thread allocates blocks that outlive it and
// leaves them in a hand-off slot; a thread of the next generation frees them.
// Measures the cost of thread start-up and tear-down inside the allocator
// (heap creation, caches flushed or orphaned at exit) and of freeing blocks
// whose owner is gone.
#include <cstdlib>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;

// What one thread leaves behind; every array is malloc'd by that thread too.
struct Handoff {
  size_t count = 0;
  void** block = nullptr;
  uint32_t* size = nullptr;
  uint64_t* tag = nullptr;
};

uint64_t FreeHandoff(Handoff& h) {
  uint64_t checksum = 0;
  for (size_t k = 0; k < h.count; ++k) {
    strata::bench::Verify(h.block[k], h.size[k], h.tag[k]);
    checksum += Mix(h.tag[k] ^ h.size[k]);
    std::free(h.block[k]);
  }
  std::free(h.block);
  std::free(h.size);
  std::free(h.tag);
  h = Handoff{};
  return checksum;
}

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("thread_churn",
                             "generations of short-lived threads; each allocates blocks that a "
                             "thread of the next generation frees",
                             argc, argv);
  const long threads = flags.Get("threads", 2, "threads alive at once (one generation)");
  const long iterations =
      flags.Get("iterations", 10000, "threads created in total (rounded down to whole generations)");
  const long objects = flags.Get("objects", 400, "blocks each thread leaves behind");
  const long min_size = flags.Get("min-size", 8, "smallest block (bytes)");
  const long max_size = flags.Get("max-size", 2048, "largest block (bytes), sizes log-uniform");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || min_size < 1 || max_size < min_size) {
    strata::bench::Fail("need threads, min-size >= 1 and max-size >= min-size");
  }
  const long generations = iterations / threads > 0 ? iterations / threads : 1;

  // Two generations of slots: generation g reads prev and fills cur.
  std::vector<Handoff> prev(static_cast<size_t>(threads)), cur(static_cast<size_t>(threads));
  std::vector<uint64_t> checksums(static_cast<size_t>(threads), 0);
  uint64_t checksum = 0, ops = 0;
  strata::bench::Stopwatch watch;

  for (long g = 0; g < generations; ++g) {
    strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
      Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed),
                                        static_cast<uint64_t>(g * threads + index)));
      // Free what a thread of the previous generation (a neighbour) left.
      checksums[static_cast<size_t>(index)] +=
          FreeHandoff(prev[static_cast<size_t>((index + 1) % threads)]);
      Handoff& h = cur[static_cast<size_t>(index)];
      h.count = static_cast<size_t>(objects);
      h.block = static_cast<void**>(
          strata::bench::Checked(std::malloc(h.count * sizeof(void*) + 1), h.count * sizeof(void*)));
      h.size = static_cast<uint32_t*>(
          strata::bench::Checked(std::malloc(h.count * sizeof(uint32_t) + 1), h.count * 4));
      h.tag = static_cast<uint64_t*>(
          strata::bench::Checked(std::malloc(h.count * sizeof(uint64_t) + 1), h.count * 8));
      for (size_t k = 0; k < h.count; ++k) {
        const size_t size = rng.LogRange(static_cast<uint64_t>(min_size), static_cast<uint64_t>(max_size));
        h.block[k] = strata::bench::Checked(std::malloc(size), size);
        h.size[k] = static_cast<uint32_t>(size);
        h.tag[k] = rng.Next();
        strata::bench::Stamp(h.block[k], size, h.tag[k]);
      }
    });
    ops += static_cast<uint64_t>(threads * objects);
    prev.swap(cur);
  }
  for (Handoff& h : prev) checksum += FreeHandoff(h);
  for (uint64_t c : checksums) checksum += c;

  strata::bench::PrintResult(static_cast<int>(threads), ops, checksum, watch.Seconds());
  return 0;
}
