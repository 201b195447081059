// large: blocks of 1-32 MiB (log-uniform), a few live per thread. Each new
// block has one byte written every --touch-kib KiB (so some pages become
// resident, as a program filling part of a buffer would), and one in four
// comes from calloc and is checked to read zero where it is touched.
// Measures the allocator's path to the OS (mmap/munmap, page faults, any
// caching of large spans) and the memory it keeps.
#include <cstdlib>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("large", "1-32 MiB blocks, partly touched, a few live per thread", argc,
                             argv);
  const long threads = flags.Get("threads", 2, "worker threads");
  const long iterations = flags.Get("iterations", 3000, "blocks allocated in total");
  const long live = flags.Get("live", 4, "blocks alive at once per thread");
  const long min_mib = flags.Get("min-mib", 1, "smallest block (MiB)");
  const long max_mib = flags.Get("max-mib", 32, "largest block (MiB)");
  const long touch_kib = flags.Get("touch-kib", 64, "one byte written every this many KiB");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || live < 1 || min_mib < 1 || max_mib < min_mib || touch_kib < 1) {
    strata::bench::Fail("need threads, live, min-mib, touch-kib >= 1 and max-mib >= min-mib");
  }
  const size_t stride = static_cast<size_t>(touch_kib) << 10;
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    ThreadResult& out = results[static_cast<size_t>(index)];
    std::vector<unsigned char*> block(static_cast<size_t>(live), nullptr);
    std::vector<size_t> size(static_cast<size_t>(live), 0);
    std::vector<uint64_t> tag(static_cast<size_t>(live), 0);
    auto release = [&](size_t k) {
      unsigned char* p = block[k];
      for (size_t off = stride; off + 8 < size[k]; off += stride) {
        if (p[off] != static_cast<unsigned char>(tag[k] + off / stride)) {
          strata::bench::Fail("large block %p (size %zu) wrong at offset %zu", p, size[k], off);
        }
      }
      strata::bench::Verify(p, size[k], tag[k]);
      out.checksum += Mix(tag[k] ^ size[k]);
      std::free(p);
      block[k] = nullptr;
    };
    const uint64_t mine = strata::bench::Share(static_cast<uint64_t>(iterations),
                                               static_cast<uint64_t>(threads),
                                               static_cast<uint64_t>(index));
    for (uint64_t i = 0; i < mine; ++i) {
      const size_t k = i % block.size();
      if (block[k] != nullptr) release(k);
      const size_t n = rng.LogRange(static_cast<uint64_t>(min_mib) << 20, static_cast<uint64_t>(max_mib) << 20);
      const bool zeroed = rng.Next() % 4 == 0;
      auto* p = static_cast<unsigned char*>(
          strata::bench::Checked(zeroed ? std::calloc(1, n) : std::malloc(n), n));
      tag[k] = rng.Next();
      if (zeroed && (p[0] != 0 || p[n - 1] != 0)) {
        strata::bench::Fail("calloc'd block %p (size %zu) not zero at its ends", p, n);
      }
      // Touches stay clear of Stamp's head and tail words.
      for (size_t off = stride; off + 8 < n; off += stride) {
        if (zeroed && p[off] != 0) {
          strata::bench::Fail("calloc'd block %p (size %zu) not zero at offset %zu", p, n, off);
        }
        p[off] = static_cast<unsigned char>(tag[k] + off / stride);
      }
      block[k] = p;
      size[k] = n;
      strata::bench::Stamp(p, n, tag[k]);
      ++out.ops;
    }
    for (size_t k = 0; k < block.size(); ++k) {
      if (block[k] != nullptr) release(k);
    }
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
