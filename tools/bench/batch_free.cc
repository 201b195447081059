// batch_free: each thread allocates a batch of blocks, then frees the whole
// batch, in one of two orders:
//   --order=lifo  newest first (a stack unwinding, a request's arena),
//   --order=fifo  oldest first, the order of allocation (a queue draining).
// Free lists that are LIFO by nature hand the blocks back in the reverse of
// their address order under fifo, which exposes allocators whose free path
// or locality depends on the order.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("batch_free", "allocate a batch, then free it newest-first or oldest-first",
                             argc, argv);
  const char* order = flags.GetChoice("order", "lifo|fifo", "order in which a batch is freed");
  const long threads = flags.Get("threads", 2, "worker threads");
  const long iterations = flags.Get("iterations", 20000000, "blocks allocated in total");
  const long batch = flags.Get("batch", 10000, "blocks per batch");
  const long min_size = flags.Get("min-size", 16, "smallest block (bytes)");
  const long max_size = flags.Get("max-size", 256, "largest block (bytes)");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || batch < 1 || min_size < 1 || max_size < min_size) {
    strata::bench::Fail("need threads, batch, min-size >= 1 and max-size >= min-size");
  }
  const bool lifo = std::strcmp(order, "lifo") == 0;
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    ThreadResult& out = results[static_cast<size_t>(index)];
    std::vector<void*> block(static_cast<size_t>(batch));
    std::vector<uint32_t> size(static_cast<size_t>(batch));
    std::vector<uint64_t> tag(static_cast<size_t>(batch));
    uint64_t left = strata::bench::Share(static_cast<uint64_t>(iterations),
                                         static_cast<uint64_t>(threads),
                                         static_cast<uint64_t>(index));
    auto release = [&](size_t k) {
      strata::bench::Verify(block[k], size[k], tag[k]);
      out.checksum += Mix(tag[k] ^ size[k]);
      std::free(block[k]);
    };
    while (left > 0) {
      const size_t n = left < block.size() ? static_cast<size_t>(left) : block.size();
      for (size_t k = 0; k < n; ++k) {
        size[k] = static_cast<uint32_t>(rng.Range(static_cast<uint64_t>(min_size), static_cast<uint64_t>(max_size)));
        block[k] = strata::bench::Checked(std::malloc(size[k]), size[k]);
        tag[k] = rng.Next();
        strata::bench::Stamp(block[k], size[k], tag[k]);
      }
      if (lifo) {
        for (size_t k = n; k-- > 0;) release(k);
      } else {
        for (size_t k = 0; k < n; ++k) release(k);
      }
      out.ops += n;
      left -= n;
    }
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
