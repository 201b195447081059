// realloc_growth: buffers grown step by step with realloc, several at once
// per thread so that neighbours get in the way of growing in place:
//   even buffers are strings: every append reallocs to the exact new length;
//   odd buffers are vectors: capacity grows by half when an append needs it.
// A buffer that reaches its target length is checked in full and freed,
// and a new one starts. Content is a function of position, so a realloc that
// loses or moves bytes wrongly is caught.
#include <cstdlib>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

struct Buffer {
  unsigned char* data = nullptr;
  size_t length = 0;    // bytes written
  size_t capacity = 0;  // bytes allocated
  size_t target = 0;    // length at which it is retired
  uint32_t id = 0;      // varies the content
};

inline unsigned char ByteAt(uint32_t id, size_t i) {
  return static_cast<unsigned char>(i * 131 + id * 7 + (i >> 8));
}

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("realloc_growth",
                             "strings and vectors grown by realloc step by step, several per thread",
                             argc, argv);
  const long threads = flags.Get("threads", 2, "worker threads");
  const long iterations = flags.Get("iterations", 15000000, "appends in total");
  const long buffers = flags.Get("buffers", 16, "buffers growing at once per thread");
  const long max_step = flags.Get("max-step", 64, "largest append (bytes); steps are 1..max-step");
  const long max_size = flags.Get("max-size", 65536, "largest target length (bytes), log-uniform from 64");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || buffers < 1 || max_step < 1 || max_size < 64) {
    strata::bench::Fail("need threads, buffers, max-step >= 1 and max-size >= 64");
  }
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    ThreadResult& out = results[static_cast<size_t>(index)];
    std::vector<Buffer> buf(static_cast<size_t>(buffers));
    auto start = [&](Buffer& b) {
      b = Buffer{};
      b.target = rng.LogRange(64, static_cast<uint64_t>(max_size));
      b.id = static_cast<uint32_t>(rng.Next());
    };
    auto retire = [&](Buffer& b) {
      for (size_t i = 0; i < b.length; ++i) {
        if (b.data[i] != ByteAt(b.id, i)) {
          strata::bench::Fail("buffer %p (length %zu, capacity %zu) wrong at byte %zu", b.data,
                              b.length, b.capacity, i);
        }
      }
      out.checksum += Mix(b.length ^ (uint64_t{b.id} << 32));
      std::free(b.data);
    };
    for (Buffer& b : buf) start(b);

    const uint64_t mine = strata::bench::Share(static_cast<uint64_t>(iterations),
                                               static_cast<uint64_t>(threads),
                                               static_cast<uint64_t>(index));
    for (uint64_t i = 0; i < mine; ++i) {
      const size_t which = rng.Next() % buf.size();
      Buffer& b = buf[which];
      const size_t step = rng.Range(1, static_cast<uint64_t>(max_step));
      const size_t length = b.length + step;
      if (length > b.capacity) {
        const size_t capacity =
            which % 2 == 0 ? length : (length > b.capacity + b.capacity / 2 ? length : b.capacity + b.capacity / 2);
        auto* p = static_cast<unsigned char*>(std::realloc(b.data, capacity));
        strata::bench::Checked(p, capacity);
        // Light check that realloc kept the content: both ends of the old part.
        if (b.length > 0 && (p[0] != ByteAt(b.id, 0) || p[b.length - 1] != ByteAt(b.id, b.length - 1))) {
          strata::bench::Fail("realloc of %zu to %zu bytes lost the content", b.capacity, capacity);
        }
        b.data = p;
        b.capacity = capacity;
        ++out.ops;
      }
      for (size_t k = b.length; k < length; ++k) b.data[k] = ByteAt(b.id, k);
      b.length = length;
      if (b.length >= b.target) {
        retire(b);
        start(b);
      }
    }
    for (Buffer& b : buf) retire(b);
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
