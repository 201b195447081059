// st_churn: single-threaded small-object churn, the fast path in isolation.
// A small working set of blocks (8-128 bytes) is churned: each step frees a
// random member and replaces it, from malloc (1/2), new[] (3/8) or calloc
// (1/8, checked to read zero). With --threads=N, N independent threads share
// the work (the runner measures it with one thread).
#include <cstdlib>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

enum class Kind : uint8_t { kMalloc, kNew, kCalloc };

struct Slot {
  void* block = nullptr;
  uint64_t tag = 0;
  uint32_t size = 0;
  Kind kind = Kind::kMalloc;
};

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("st_churn", "single-threaded small-object churn in a small working set",
                             argc, argv);
  const long threads = flags.Get("threads", 1, "independent threads sharing the work");
  const long iterations = flags.Get("iterations", 25000000, "blocks allocated in total");
  const long live = flags.Get("live", 256, "working-set blocks per thread");
  const long min_size = flags.Get("min-size", 8, "smallest block (bytes)");
  const long max_size = flags.Get("max-size", 128, "largest block (bytes)");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || live < 1 || min_size < 1 || max_size < min_size) {
    strata::bench::Fail("need threads, live, min-size >= 1 and max-size >= min-size");
  }
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    ThreadResult& out = results[static_cast<size_t>(index)];
    std::vector<Slot> slots(static_cast<size_t>(live));
    auto release = [&](Slot& s) {
      strata::bench::Verify(s.block, s.size, s.tag);
      out.checksum += Mix(s.tag ^ s.size);
      if (s.kind == Kind::kNew) {
        delete[] static_cast<char*>(s.block);
      } else {
        std::free(s.block);
      }
      s.block = nullptr;
    };
    const uint64_t mine = strata::bench::Share(static_cast<uint64_t>(iterations),
                                               static_cast<uint64_t>(threads),
                                               static_cast<uint64_t>(index));
    for (uint64_t i = 0; i < mine; ++i) {
      const uint64_t r = rng.Next();
      Slot& s = slots[r % slots.size()];
      if (s.block != nullptr) release(s);
      s.size = static_cast<uint32_t>(rng.Range(static_cast<uint64_t>(min_size), static_cast<uint64_t>(max_size)));
      s.tag = r;
      switch ((r >> 32) & 7) {
        case 0: {
          s.kind = Kind::kCalloc;
          auto* p = static_cast<unsigned char*>(strata::bench::Checked(std::calloc(1, s.size), s.size));
          if (p[0] != 0 || p[s.size - 1] != 0) {
            strata::bench::Fail("calloc'd block %p (size %u) not zero", static_cast<void*>(p), s.size);
          }
          s.block = p;
          break;
        }
        case 1:
        case 2:
        case 3:
          s.kind = Kind::kNew;
          s.block = new char[s.size];
          break;
        default:
          s.kind = Kind::kMalloc;
          s.block = strata::bench::Checked(std::malloc(s.size), s.size);
          break;
      }
      strata::bench::Stamp(s.block, s.size, s.tag);
      ++out.ops;
    }
    for (Slot& s : slots) {
      if (s.block != nullptr) release(s);
    }
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
