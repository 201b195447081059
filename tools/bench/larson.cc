// larson: server churn in the manner of Larson & Krishnan's benchmark. Each
// thread owns an array of slots and repeatedly frees a random slot and fills
// it with a new block of random size. Every round the arrays rotate one
// thread along (thread i takes array i+r), so most frees hit blocks that a
// different thread allocated. Rounds are separated by a barrier, which keeps
// the run deterministic for a given seed.
#include <barrier>
#include <cstdlib>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

struct SlotArray {
  std::vector<void*> block;
  std::vector<uint32_t> size;
  std::vector<uint64_t> tag;
};

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("larson",
                             "random-slot free/malloc churn; slot arrays rotate between threads "
                             "every round so blocks are freed by threads that did not allocate them",
                             argc, argv);
  const long threads = flags.Get("threads", 2, "worker threads");
  const long iterations =
      flags.Get("iterations", 25000000, "free+malloc pairs in total, split over the threads");
  const long slots = flags.Get("slots", 1000, "slots per thread");
  const long rounds = flags.Get("rounds", 20, "rounds; arrays change hands after each");
  const long min_size = flags.Get("min-size", 8, "smallest block (bytes)");
  const long max_size = flags.Get("max-size", 1000, "largest block (bytes)");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || slots < 1 || rounds < 1 || min_size < 1 || max_size < min_size) {
    strata::bench::Fail("need threads, slots, rounds, min-size >= 1 and max-size >= min-size");
  }

  std::vector<SlotArray> arrays(static_cast<size_t>(threads));
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  std::barrier sync(threads);
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    ThreadResult& out = results[static_cast<size_t>(index)];
    auto allocate = [&](SlotArray& a, size_t k) {
      const size_t size = rng.Range(static_cast<uint64_t>(min_size), static_cast<uint64_t>(max_size));
      void* p = strata::bench::Checked(std::malloc(size), size);
      const uint64_t tag = rng.Next();
      strata::bench::Stamp(p, size, tag);
      a.block[k] = p;
      a.size[k] = static_cast<uint32_t>(size);
      a.tag[k] = tag;
      ++out.ops;
    };
    auto release = [&](SlotArray& a, size_t k) {
      strata::bench::Verify(a.block[k], a.size[k], a.tag[k]);
      out.checksum += Mix(a.tag[k] ^ a.size[k]);
      std::free(a.block[k]);
    };

    SlotArray& own = arrays[static_cast<size_t>(index)];
    own.block.resize(static_cast<size_t>(slots));
    own.size.resize(static_cast<size_t>(slots));
    own.tag.resize(static_cast<size_t>(slots));
    for (size_t k = 0; k < own.block.size(); ++k) allocate(own, k);
    const uint64_t mine = strata::bench::Share(static_cast<uint64_t>(iterations),
                                               static_cast<uint64_t>(threads),
                                               static_cast<uint64_t>(index));
    sync.arrive_and_wait();

    for (long r = 0; r < rounds; ++r) {
      SlotArray& a = arrays[static_cast<size_t>((index + r) % threads)];
      const uint64_t ops = strata::bench::Share(mine, static_cast<uint64_t>(rounds),
                                                static_cast<uint64_t>(r));
      for (uint64_t i = 0; i < ops; ++i) {
        const size_t k = rng.Next() % a.block.size();
        release(a, k);
        allocate(a, k);
      }
      sync.arrive_and_wait();  // the arrays change hands
    }
    SlotArray& last = arrays[static_cast<size_t>((index + rounds) % threads)];
    for (size_t k = 0; k < last.block.size(); ++k) release(last, k);
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
