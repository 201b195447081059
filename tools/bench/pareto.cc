// pareto: a heavy-tailed size mix, as real programs have: block sizes follow
// a Pareto law from 8 bytes, truncated at 1 KiB (with the default shape 1.1:
// about half the blocks are 8-15 bytes, 1 in 10 is above 64, 1 in 100 above
// 512). Lifetimes are mixed too: half the blocks are temporaries freed at
// once, half replace a random member of a per-thread working set.
#include <cstdlib>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("pareto",
                             "Pareto-distributed sizes from 8 B to 1 KiB, mostly small; "
                             "temporaries and a working set per thread",
                             argc, argv);
  const long threads = flags.Get("threads", 2, "worker threads");
  const long iterations = flags.Get("iterations", 16000000, "blocks allocated in total");
  const long live = flags.Get("live", 4000, "working-set blocks per thread");
  const long min_size = flags.Get("min-size", 8, "smallest block (bytes), the Pareto scale");
  const long max_size = flags.Get("max-size", 1024, "largest block (bytes), the truncation");
  const long alpha_percent = flags.Get("alpha-percent", 110, "Pareto shape alpha, in hundredths");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || live < 1 || min_size < 1 || max_size < min_size || alpha_percent < 1) {
    strata::bench::Fail("need threads, live, min-size, alpha-percent >= 1, max-size >= min-size");
  }
  const double alpha = static_cast<double>(alpha_percent) / 100.0;
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    ThreadResult& out = results[static_cast<size_t>(index)];
    std::vector<void*> block(static_cast<size_t>(live), nullptr);
    std::vector<uint32_t> size(static_cast<size_t>(live), 0);
    std::vector<uint64_t> tag(static_cast<size_t>(live), 0);
    auto release = [&](void* p, size_t n, uint64_t t) {
      strata::bench::Verify(p, n, t);
      out.checksum += Mix(t ^ n);
      std::free(p);
    };
    const uint64_t mine = strata::bench::Share(static_cast<uint64_t>(iterations),
                                               static_cast<uint64_t>(threads),
                                               static_cast<uint64_t>(index));
    for (uint64_t i = 0; i < mine; ++i) {
      const size_t n = rng.Pareto(static_cast<uint64_t>(min_size), static_cast<uint64_t>(max_size), alpha);
      void* p = strata::bench::Checked(std::malloc(n), n);
      const uint64_t t = rng.Next();
      strata::bench::Stamp(p, n, t);
      ++out.ops;
      if (t & 1) {  // a temporary
        release(p, n, t);
        continue;
      }
      const size_t k = (t >> 1) % block.size();
      if (block[k] != nullptr) release(block[k], size[k], tag[k]);
      block[k] = p;
      size[k] = static_cast<uint32_t>(n);
      tag[k] = t;
    }
    for (size_t k = 0; k < block.size(); ++k) {
      if (block[k] != nullptr) release(block[k], size[k], tag[k]);
    }
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
