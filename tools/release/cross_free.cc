// The release experiment in C++: 4 threads allocate 1 GiB in small blocks,
// then each frees another thread's blocks (crosswise), the threads exit, and
// the program idles for a while. It prints its resident memory (RSS) before,
// at the peak, right after the frees and after the idle time, so that the
// allocator under it (strata by LD_PRELOAD, or any other) can be judged on
// whether freed memory goes back to the OS.
//
// Plain malloc/free on purpose: the allocator is chosen by LD_PRELOAD.
//   cross_free [--threads=4] [--total_mib=1024] [--idle_ms=3000] [--seed=1]
#include <pthread.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "tools/util/cli.h"

namespace {

double Mib(uint64_t b) { return static_cast<double>(b) / (1 << 20); }

}  // namespace

int main(int argc, char** argv) {
  const int threads = static_cast<int>(strata::util::IntFlag(argc, argv, "threads", 4));
  const uint64_t total = static_cast<uint64_t>(strata::util::IntFlag(argc, argv, "total_mib", 1024)) << 20;
  const long idle_ms = strata::util::IntFlag(argc, argv, "idle_ms", 3000);
  const uint64_t seed = static_cast<uint64_t>(strata::util::IntFlag(argc, argv, "seed", 1));

  const uint64_t rss_before = strata::util::ResidentBytes();
  std::vector<std::vector<void*>> blocks(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  // Phase 1: every thread allocates its share, writing each block.
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(t) + 1;
      uint64_t bytes = 0;
      auto& mine = blocks[static_cast<size_t>(t)];
      while (bytes < total / static_cast<uint64_t>(threads)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const size_t size = 16 + x % 497;  // 16..512 bytes
        auto* p = static_cast<unsigned char*>(malloc(size));
        if (p == nullptr) abort();
        memset(p, static_cast<int>(x & 0xff), size);
        mine.push_back(p);
        bytes += size;
      }
    });
  }
  for (auto& w : workers) w.join();
  workers.clear();
  const uint64_t rss_peak = strata::util::ResidentBytes();
  // Phase 2: thread t frees thread (t+1)'s blocks, then exits.
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto& theirs = blocks[static_cast<size_t>((t + 1) % threads)];
      for (void* p : theirs) free(p);
      theirs.clear();
      theirs.shrink_to_fit();
    });
  }
  for (auto& w : workers) w.join();
  const uint64_t rss_freed = strata::util::ResidentBytes();
  // Phase 3: idle (nobody allocates), then look again.
  usleep(static_cast<useconds_t>(idle_ms) * 1000);
  const uint64_t rss_idle = strata::util::ResidentBytes();
  std::printf(
      "cross_free: threads=%d total=%.0f MiB rss_before=%.1f MiB rss_peak=%.1f MiB "
      "rss_after_free=%.1f MiB rss_after_idle=%.1f MiB\n",
      threads, Mib(total), Mib(rss_before), Mib(rss_peak), Mib(rss_freed), Mib(rss_idle));
  return 0;
}
