// false_sharing: does the allocator put small objects of different threads on
// one cache line? (After Hoard's cache-thrash and cache-scratch.)
//   --mode=active:  each thread allocates a small object, writes it many times
//                   in a tight loop, frees it, and repeats. An allocator that
//                   hands neighbouring objects to different threads makes
//                   their writes fight over a cache line.
//   --mode=passive: the main thread allocates one small object per thread,
//                   back to back; each thread frees the one it was given,
//                   then runs the active loop. An allocator that reuses the
//                   freed object in the freeing thread inherits the main
//                   thread's layout, and with it the false sharing.
// The time is the signal: without false sharing both modes scale with cores.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::ThreadResult;

// Writes every byte of `p` `writes` times through a volatile pointer (so the
// stores reach memory each time, as a real shared counter's would), then
// checks the result. Returns the bytes' sum.
uint64_t Hammer(void* p, size_t size, long writes) {
  std::memset(p, 0, size);
  volatile unsigned char* b = static_cast<volatile unsigned char*>(p);
  for (long w = 0; w < writes; ++w) {
    for (size_t k = 0; k < size; ++k) b[k] = static_cast<unsigned char>(b[k] + 1);
  }
  uint64_t sum = 0;
  for (size_t k = 0; k < size; ++k) {
    if (b[k] != static_cast<unsigned char>(writes)) {
      strata::bench::Fail("object %p (size %zu): byte %zu is %u after %ld writes", p, size, k,
                          static_cast<unsigned>(b[k]), writes);
    }
    sum += b[k];
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("false_sharing",
                             "threads write small objects in tight loops; slow times reveal "
                             "objects of different threads sharing a cache line",
                             argc, argv);
  const char* mode = flags.GetChoice("mode", "active|passive",
                                     "active: every object comes from the writing thread; passive: "
                                     "each thread first frees an object the main thread allocated");
  const long threads = flags.Get("threads", 2, "worker threads");
  const long iterations =
      flags.Get("iterations", 600000, "objects allocated, written and freed, in total");
  const long writes = flags.Get("writes", 400, "times each byte of an object is written");
  const long size = flags.Get("size", 8, "object size (bytes)");
  const long seed = flags.Get("seed", 1, "random seed (unused: the workload has no randomness)");
  flags.Done();
  (void)seed;
  if (threads < 1 || size < 1) strata::bench::Fail("need threads and size >= 1");
  const bool passive = std::strcmp(mode, "passive") == 0;
  const size_t bytes = static_cast<size_t>(size);

  // Passive: the objects handed out, allocated back to back by this thread.
  std::vector<void*> given(static_cast<size_t>(threads), nullptr);
  if (passive) {
    for (auto& p : given) {
      p = strata::bench::Checked(std::malloc(bytes), bytes);
      strata::bench::Stamp(p, bytes, 0x5ca7c4);
    }
  }
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    ThreadResult& out = results[static_cast<size_t>(index)];
    if (passive) {
      void* p = given[static_cast<size_t>(index)];
      strata::bench::Verify(p, bytes, 0x5ca7c4);
      std::free(p);
    }
    const uint64_t mine = strata::bench::Share(static_cast<uint64_t>(iterations),
                                               static_cast<uint64_t>(threads),
                                               static_cast<uint64_t>(index));
    for (uint64_t i = 0; i < mine; ++i) {
      void* p = strata::bench::Checked(std::malloc(bytes), bytes);
      out.checksum += Hammer(p, bytes, writes);
      std::free(p);
      ++out.ops;
    }
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
