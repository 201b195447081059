// A workload that leaves strata's heap in an interesting state and dumps it:
// the input of stats_viewer's tests and example picture. Several threads
// allocate a mix of small, medium and large blocks through strata's own API,
// then free them unevenly (sparse, all, dense by allocation order, some
// freed by another thread), so that runs are left at every fill and free
// pools are cached; a scratch batch freed whole sends arenas back to the
// shared stack. With --idle_ms, what is free then gets purged and a second
// scratch batch leaves resident free memory beside it; some threads exit with blocks still live (orphaned
// heaps). Then the JSON dump with the arena map is written, while the other
// threads still own their heaps.
//
//   fragment [--threads=4] [--mib=32] [--orphans=1] [--idle_ms=0] [--seed=1]
//            [--arenas=1 (0: the plain JSON dump, without the arena map)]
//            [--out=PATH (default: stdout)]
//
// Not a benchmark; bookkeeping (std::vector) goes to glibc's malloc, so only
// the workload's own blocks are in strata.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <thread>
#include <vector>

#include "tools/util/cli.h"

#include "alloc/stats.h"
#include "alloc/strata.h"

namespace {

using strata::util::IntFlag;

const char* StringFlag(int argc, char** argv, const char* name) {
  const size_t n = strlen(name);
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 &&
        argv[i][2 + n] == '=') {
      return argv[i] + 3 + n;
    }
  }
  return nullptr;
}

uint64_t NextRandom(uint64_t* state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

// Mostly small blocks, as real programs allocate; a tail of medium blocks
// (multi-pool runs) and a few large ones.
size_t PickSize(uint64_t* state) {
  const uint64_t r = NextRandom(state);
  const uint64_t x = r >> 8;
  const uint64_t band = r % 1000;
  if (band < 550) return 8 + x % 120;             // 8..127 B
  if (band < 900) return 128 + x % 385;           // 128..512 B
  if (band < 980) return 513 + x % 1536;          // medium: one-pool runs
  if (band < 997) return 2049 + x % (14 << 10);   // medium: multi-pool runs
  return (65 << 10) + x % (192 << 10);            // large
}

// Allocates about `bytes` in blocks of every size, then frees them all.
void Scratch(uint64_t* state, uint64_t bytes) {
  std::vector<void*> blocks;
  for (uint64_t done = 0; done < bytes;) {
    const size_t size = PickSize(state);
    void* p = strata::Allocate(size);
    if (p == nullptr) abort();
    blocks.push_back(p);
    done += size;
  }
  for (void* p : blocks) strata::Deallocate(p);
}

struct Block {
  void* p;
  size_t size;
};

struct Shared {
  std::vector<std::vector<Block>> remote;  // remote[t]: blocks thread t frees for t-1
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = static_cast<int>(IntFlag(argc, argv, "threads", 4));
  const uint64_t total = static_cast<uint64_t>(IntFlag(argc, argv, "mib", 32)) << 20;
  const int orphans = static_cast<int>(IntFlag(argc, argv, "orphans", 1));
  const long idle_ms = IntFlag(argc, argv, "idle_ms", 0);
  const uint64_t seed = static_cast<uint64_t>(IntFlag(argc, argv, "seed", 1));
  const bool arena_map = IntFlag(argc, argv, "arenas", 1) != 0;
  const char* out = StringFlag(argc, argv, "out");
  if (threads < 1 || threads > 256 || orphans < 0 || orphans > threads || total == 0) {
    std::fprintf(stderr, "fragment: want 1 <= --threads <= 256, 0 <= --orphans <= --threads, "
                         "--mib > 0\n");
    return 2;
  }

  std::vector<std::vector<Block>> handoff(static_cast<size_t>(threads));
  std::latch allocated(threads);  // every thread has allocated its share
  std::latch freed(threads);      // every thread has done its frees
  std::latch dumped(1);           // main has written the dump
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(t) * 7919 + 1;
      std::vector<Block> mine;
      uint64_t bytes = 0;
      while (bytes < total / static_cast<uint64_t>(threads)) {
        const size_t size = PickSize(&x);
        auto* p = static_cast<unsigned char*>(strata::Allocate(size));
        if (p == nullptr) abort();
        memset(p, static_cast<int>(t + 1), size < 64 ? size : 64);
        mine.push_back({p, size});
        bytes += size;
      }
      // A scratch batch allocated and freed at once: whole arenas go empty,
      // beyond what the heap caches, back to the shared stack.
      Scratch(&x, total / static_cast<uint64_t>(threads) / 2);
      // By allocation order: the first 40% keep one block in ten (sparse
      // runs, pinned by a few live blocks), the next 25% are all freed (free
      // pools), the rest keep nine in ten (dense runs). One freed block in
      // four is handed to the next thread to free (remote).
      const size_t n = mine.size();
      std::vector<Block> kept, to_hand;
      for (size_t i = 0; i < n; ++i) {
        const uint64_t r = NextRandom(&x) % 100;
        const bool keep = i < n * 40 / 100 ? r < 10 : i < n * 65 / 100 ? false : r < 90;
        if (keep) {
          kept.push_back(mine[i]);
        } else if (r % 4 == 0) {
          to_hand.push_back(mine[i]);
        } else {
          strata::Deallocate(mine[i].p);
        }
      }
      handoff[static_cast<size_t>(t)] = std::move(to_hand);
      allocated.arrive_and_wait();
      for (const Block& b : handoff[static_cast<size_t>((t + 1) % threads)]) {
        strata::Deallocate(b.p);
      }
      if (idle_ms > 0) {
        // Long enough for the release engine to purge what is free now;
        // then another scratch batch leaves fresh (resident) free pools and
        // empty arenas beside the purged ones.
        std::this_thread::sleep_for(std::chrono::milliseconds(idle_ms));
        Scratch(&x, total / static_cast<uint64_t>(threads) / 16);
      }
      freed.count_down();
      // The last `orphans` threads exit now, their kept blocks still live.
      if (t >= threads - orphans) return;
      dumped.wait();
      for (const Block& b : kept) strata::Deallocate(b.p);
    });
  }
  freed.wait();
  // Let exiting threads finish exiting, so their heaps show as orphaned.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  int fd = 1;
  if (out != nullptr) {
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::perror(out);
      return 1;
    }
  }
  strata::WriteStats(fd, arena_map ? strata::StatsFormat::kJsonArenas : strata::StatsFormat::kJson);
  if (fd != 1) close(fd);
  dumped.count_down();
  for (auto& w : workers) w.join();
  return 0;
}
