// A program whose memory has a story, for record_timeline's test and
// example: it grows in steps, frees every other block (live bytes halve but
// the half-empty runs stay resident), frees the rest from another thread,
// then idles while the release engine gives the free memory back.
//
//   phases [--mib=128] [--threads=2] [--step_ms=60] [--idle_ms=1500]
//
// Plain malloc/free: the allocator is whatever LD_PRELOAD names.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "tools/util/cli.h"

namespace {

using strata::util::IntFlag;

void SleepMs(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

int main(int argc, char** argv) {
  const uint64_t total = static_cast<uint64_t>(IntFlag(argc, argv, "mib", 128)) << 20;
  const int threads = static_cast<int>(IntFlag(argc, argv, "threads", 2));
  const long step_ms = IntFlag(argc, argv, "step_ms", 60);
  const long idle_ms = IntFlag(argc, argv, "idle_ms", 1500);
  if (total == 0 || threads < 1 || threads > 64 || step_ms < 0 || idle_ms < 0) {
    std::fprintf(stderr, "phases: want --mib > 0, 1 <= --threads <= 64, --step_ms and "
                         "--idle_ms >= 0\n");
    return 2;
  }
  // strata's sampler starts on the first free: start it now, so the
  // timeline shows the growth too.
  free(malloc(16));
  SleepMs(step_ms);

  constexpr int kSteps = 8;
  std::vector<std::vector<void*>> blocks(static_cast<size_t>(threads));
  for (int step = 0; step < kSteps; ++step) {
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t, step] {
        uint64_t x = static_cast<uint64_t>(t * kSteps + step) * 0x9E3779B97F4A7C15ull + 1;
        uint64_t bytes = 0;
        while (bytes < total / kSteps / static_cast<uint64_t>(threads)) {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          const size_t size = 16 + x % 1009;
          void* p = malloc(size);
          if (p == nullptr) abort();
          memset(p, 0x5a, size);
          blocks[static_cast<size_t>(t)].push_back(p);
          bytes += size;
        }
      });
    }
    for (auto& w : workers) w.join();
    SleepMs(step_ms);
  }
  SleepMs(3 * step_ms);
  // Every other block: live bytes halve, but each run keeps live blocks.
  for (auto& mine : blocks) {
    for (size_t i = 0; i < mine.size(); i += 2) {
      free(mine[i]);
      mine[i] = nullptr;
    }
  }
  SleepMs(6 * step_ms);
  // The rest, freed by one thread that allocated none of them.
  std::thread([&] {
    for (auto& mine : blocks) {
      for (void* p : mine) free(p);
    }
  }).join();
  SleepMs(idle_ms);
  std::printf("phases: done (%d threads, %llu MiB)\n", threads,
              static_cast<unsigned long long>(total >> 20));
  return 0;
}
