// A program with three allocation sites of known sizes, for
// profile_pprof_test.sh: it samples at 2 MiB (tcmalloc's rate, the one the
// README recommends), runs each site a known number of times, and writes
// the since-mark and live heap profiles to the folder given as argv[1].
// It prints each site's true byte count, for the test to compare with
// google-pprof's reading of the profiles.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "alloc/options.h"
#include "alloc/profile.h"
#include "alloc/strata.h"

namespace {

constexpr size_t kRate = size_t{2} << 20;

// Each site allocates `count` blocks of `size` bytes, freeing each at once
// but the last `keep` (which stay live until main frees them).
struct Site {
  size_t size;
  size_t count;
};
constexpr Site kA = {32768, 400000};    // 13.1 GB in all
constexpr Site kB = {4096, 1600000};    //  6.6 GB
constexpr Site kC = {256, 12800000};    //  3.3 GB

// noinline and extern "C": each is one plain symbol that google-pprof
// names, and the first frame of its samples.
extern "C" __attribute__((noinline)) void site_a() {
  for (size_t i = 0; i < kA.count; ++i) strata::Deallocate(strata::Allocate(kA.size));
}
extern "C" __attribute__((noinline)) void site_b() {
  for (size_t i = 0; i < kB.count; ++i) strata::Deallocate(strata::Allocate(kB.size));
}
extern "C" __attribute__((noinline)) void site_c() {
  for (size_t i = 0; i < kC.count; ++i) strata::Deallocate(strata::Allocate(kC.size));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  if (!strata::SetProfileSampleBytes(kRate)) return 1;
  strata::MarkHeapProfile();
  site_a();
  site_b();
  site_c();
  const std::string dir = argv[1];
  if (!strata::WriteHeapProfileToFile((dir + "/since.heap").c_str(),
                                      strata::HeapProfileView::kSinceMark) ||
      !strata::WriteHeapProfileToFile((dir + "/live.heap").c_str(),
                                      strata::HeapProfileView::kLive)) {
    fprintf(stderr, "cannot write the profiles\n");
    return 1;
  }
  printf("site_a %zu\nsite_b %zu\nsite_c %zu\n", kA.size * kA.count, kB.size * kB.count,
         kC.size * kC.count);
  return 0;
}
