// Heap profiling through strata's API: the sampling arithmetic, sampled
// blocks behaving like the blocks they replace, the three views (the peak
// view keeps a site already freed), 8 threads sampling while profiles are
// written, and the knobs refusing bad values.
#include "alloc/profile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "alloc/error.h"
#include "alloc/heap_profile.h"
#include "alloc/options.h"
#include "alloc/sampling.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/capture_write.h"
#include "tests/util/sanitizer.h"

namespace strata {
namespace {

using internal::ProfileRow;
using internal::ProfileTotals;
using internal::ProfileView;

class ProfileTest : public ::testing::Test {
 protected:
  void SetUp() override { options_internal::ResetForTesting(); }
  void TearDown() override { options_internal::ResetForTesting(); }
};

TEST(SamplingMathTest, LogAndExpMatchLibm) {
  for (double u : {1.0, 0.9, 0.5, 0.25, 0.1, 1e-3, 1e-9, 1e-15}) {
    EXPECT_NEAR(internal::LogUnit(u), std::log(u), 1e-6 * std::max(1.0, -std::log(u))) << u;
  }
  for (double x : {0.0, 1e-6, 0.3, 0.69, 1.0, 5.0, 40.0, 300.0}) {
    EXPECT_NEAR(internal::ExpNeg(x) / std::exp(-x), 1.0, 1e-9) << x;
  }
  EXPECT_EQ(internal::ExpNeg(1000), 0.0);
  for (double n : {1.0, 8.0, 4096.0, 2097152.0, 1e8}) {
    const double p = internal::SampleProbability(static_cast<size_t>(n), 2 << 20);
    EXPECT_NEAR(p / -std::expm1(-n / (2 << 20)), 1.0, 1e-6) << n;
  }
}

TEST(SamplingMathTest, IntervalsAreExponentialWithTheRateAsMean) {
  uint64_t state = 12345;  // fixed: the same draws on every run
  constexpr int kDraws = 200000;
  constexpr int64_t kRate = 1 << 20;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < kDraws; ++i) {
    const auto v = static_cast<double>(internal::NextSampleInterval(&state, kRate));
    ASSERT_GE(v, 1);
    sum += v;
    sum_sq += v * v;
  }
  const double mean = sum / kDraws;
  // An exponential's standard deviation equals its mean.
  const double sd = std::sqrt(sum_sq / kDraws - mean * mean);
  EXPECT_NEAR(mean / kRate, 1.0, 0.02);
  EXPECT_NEAR(sd / kRate, 1.0, 0.03);
  EXPECT_EQ(internal::NextSampleInterval(&state, 0), internal::kSampleCheckBytes);
}

// Sampling every allocation: each block is a sampled one.
TEST_F(ProfileTest, ASampledBlockBehavesLikeTheBlockItReplaces) {
  ASSERT_TRUE(SetProfileSampleBytes(1));
  const ProfileTotals before = internal::GetProfileTotals(ProfileView::kLive);
  void* p = Allocate(16);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(UsableSize(p), 16u);  // the class size, not the sampled mapping's
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
  const ProfileTotals during = internal::GetProfileTotals(ProfileView::kLive);
  EXPECT_EQ(during.samples_live, before.samples_live + 1);
  memset(p, 0xab, 16);
  DeallocateSized(p, 16);  // the size it was asked for passes
  EXPECT_EQ(internal::GetProfileTotals(ProfileView::kLive).samples_live, before.samples_live);

  // calloc, aligned, realloc and medium sizes.
  auto* z = static_cast<unsigned char*>(AllocateZeroed(10, 10));
  ASSERT_NE(z, nullptr);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(z[i], 0);
  z = static_cast<unsigned char*>(Reallocate(z, 3000));
  ASSERT_NE(z, nullptr);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(z[i], 0);
  Deallocate(z);
  void* a = AllocateAligned(256, 100);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 256, 0u);
  DeallocateAligned(a, 256);
  void* m = Allocate(20000);
  ASSERT_NE(m, nullptr);
  memset(m, 1, 20000);
  Deallocate(m);
  void* big = Allocate(size_t{1} << 20);
  ASSERT_NE(big, nullptr);
  Deallocate(big);
  EXPECT_EQ(internal::GetProfileTotals(ProfileView::kLive).samples_live, before.samples_live);
}

TEST_F(ProfileTest, ADoubleFreeOfASampledBlockIsCaught) {
  ASSERT_TRUE(SetProfileSampleBytes(1));
  ASSERT_TRUE(SetOptionByName("error_mode", "count"));
  void* p = Allocate(40);
  ASSERT_NE(p, nullptr);
  const uint64_t errors = internal::ErrorCount();
  const uint64_t live = internal::GetProfileTotals(ProfileView::kLive).samples_live;
  Deallocate(p);
  Deallocate(p);
  EXPECT_EQ(internal::ErrorCount(), errors + 1);
  // Freed once from the profile, not twice.
  EXPECT_EQ(internal::GetProfileTotals(ProfileView::kLive).samples_live, live - 1);

  // With sampled allocations in between: a sampled block's mapping is not
  // handed out again at once, so the second free is still caught, and the
  // blocks allocated meanwhile are left alone.
  void* first = Allocate(40);
  ASSERT_NE(first, nullptr);
  Deallocate(first);
  void* others[4];
  for (auto& o : others) {
    o = Allocate(40);
    ASSERT_NE(o, first);
    memset(o, 0x5a, 40);
  }
  Deallocate(first);
  EXPECT_EQ(internal::ErrorCount(), errors + 2);
  for (void* o : others) {
    EXPECT_EQ(static_cast<unsigned char*>(o)[39], 0x5a);
    Deallocate(o);
  }
}

// Rows whose first frame lies in site function fn, summed: from its start
// to the next site function's (or 4 KiB on).
struct SiteSum {
  uintptr_t lo, hi;
  uint64_t bytes = 0;
};
void AddIfInSite(const ProfileRow& r, void* arg) {
  auto* s = static_cast<SiteSum*>(arg);
  if (r.depth > 0 && r.pcs[0] > s->lo && r.pcs[0] < s->hi) s->bytes += r.bytes;
}
uintptr_t SiteStarts(size_t i);
constexpr size_t kSites = 3;
uint64_t SiteBytes(ProfileView view, uintptr_t lo) {
  SiteSum sum{lo, lo + 4096};
  for (size_t i = 0; i < kSites; ++i) {
    if (SiteStarts(i) > lo && SiteStarts(i) < sum.hi) sum.hi = SiteStarts(i);
  }
  internal::VisitProfile(view, {nullptr, &AddIfInSite, &sum}, /*try_only=*/false);
  return sum.bytes;
}

constexpr size_t kPeakBlocks = 256;
constexpr size_t kPeakBlockSize = 64 << 10;  // 16 MiB in all
void* g_peak_blocks[kPeakBlocks];

__attribute__((noinline)) void PeakSite() {
  for (auto& b : g_peak_blocks) b = Allocate(kPeakBlockSize);
}
__attribute__((noinline)) void LaterSite(std::vector<void*>* out) {
  for (int i = 0; i < 64; ++i) out->push_back(Allocate(8 << 10));
}
__attribute__((noinline)) void MarkedSite() { Deallocate(Allocate(1 << 20)); }

uintptr_t SiteStarts(size_t i) {
  const uintptr_t starts[kSites] = {reinterpret_cast<uintptr_t>(&PeakSite),
                                    reinterpret_cast<uintptr_t>(&LaterSite),
                                    reinterpret_cast<uintptr_t>(&MarkedSite)};
  return starts[i];
}
const uintptr_t kPeak = 0, kLater = 1, kMarked = 2;

// Runs before the 8-thread test (gtest keeps the order): its peak must be
// the highest the process has seen so far.
TEST_F(ProfileTest, ThePeakViewShowsASiteAlreadyFreed) {
  // 4 KiB: thousands of samples for the peak site, so its estimate is tight.
  ASSERT_TRUE(SetProfileSampleBytes(4096));
  PeakSite();
  const uint64_t live_at_peak = SiteBytes(ProfileView::kLive, SiteStarts(kPeak));
  EXPECT_NEAR(static_cast<double>(live_at_peak), double{kPeakBlocks * kPeakBlockSize},
              0.2 * kPeakBlocks * kPeakBlockSize);
  for (void* b : g_peak_blocks) Deallocate(b);
  std::vector<void*> later;
  LaterSite(&later);
  // Live: the peak site is gone, the later one is there.
  EXPECT_EQ(SiteBytes(ProfileView::kLive, SiteStarts(kPeak)), 0u);
  EXPECT_GT(SiteBytes(ProfileView::kLive, SiteStarts(kLater)), 0u);
  // Peak: the peak site holds what it held (the snapshot is at least 15/16 of it).
  const uint64_t peak = SiteBytes(ProfileView::kPeak, SiteStarts(kPeak));
  EXPECT_GE(peak, live_at_peak / 16 * 15);
  EXPECT_LE(peak, live_at_peak);
  for (void* b : later) Deallocate(b);
}

TEST_F(ProfileTest, TheSinceMarkViewStartsAtTheMark) {
  ASSERT_TRUE(SetProfileSampleBytes(4096));
  MarkedSite();
  MarkHeapProfile();
  EXPECT_EQ(SiteBytes(ProfileView::kSinceMark, SiteStarts(kMarked)), 0u);
  for (int i = 0; i < 4; ++i) MarkedSite();
  // Every 1 MiB allocation is sampled at 4 KiB (p = 1 - e^-256): 4 MiB exactly.
  EXPECT_EQ(SiteBytes(ProfileView::kSinceMark, SiteStarts(kMarked)), uint64_t{4} << 20);
}

// A profile written to a temporary file, as text.
std::string WriteToText(HeapProfileView view) {
  std::string text;
  EXPECT_EQ(testing::CaptureWrite([view](int fd) { return WriteHeapProfile(fd, view) ? 0 : -1; },
                                  &text),
            0);
  return text;
}

TEST_F(ProfileTest, TheTextIsTheLegacyHeapProfileFormat) {
  ASSERT_TRUE(SetProfileSampleBytes(4096));
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(Allocate(10000));
  const std::string text = WriteToText(HeapProfileView::kLive);
  EXPECT_EQ(text.rfind("heap profile: ", 0), 0u) << text.substr(0, 200);
  EXPECT_NE(text.find("] @ heapprofile\n"), std::string::npos);
  EXPECT_NE(text.find("] @ 0x"), std::string::npos);
  EXPECT_NE(text.find("\nMAPPED_LIBRARIES:\n"), std::string::npos);
  EXPECT_NE(text.find("r-xp"), std::string::npos);  // the maps copied
  for (void* b : blocks) Deallocate(b);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_EQ(strata_profile_write(fds[1], "nonsense"), -1);
  EXPECT_EQ(strata_profile_write_file("/nonexistent/dir/x.heap", "live"), -1);
  // Failed writes are reported, not passed off as written.
  EXPECT_EQ(strata_profile_write(fds[0], "live"), -1);  // the read end
  EXPECT_EQ(strata_profile_write(-1, "peak"), -1);
  EXPECT_EQ(strata_profile_write_file("/dev/full", "live"), -1);
  close(fds[0]);
  close(fds[1]);
}

TEST_F(ProfileTest, TheProfileSignalWritesTheLiveView) {
  const char* dir = getenv("TEST_TMPDIR");
  const std::string base = std::string(dir != nullptr ? dir : "/tmp") + "/signal.heap";
  ASSERT_TRUE(SetProfileSampleBytes(4096));
  ASSERT_TRUE(SetOptionByName("profile_file", base.c_str()));
  ASSERT_TRUE(SetOptionByName("profile_signal", "12"));  // SIGUSR2: the handler goes on
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(Allocate(20000));
  // The handler numbers its files from 1 in this process; find the next.
  std::string path;
  for (int n = 1; n < 100; ++n) {
    path = base + "." + std::to_string(n);
    if (access(path.c_str(), F_OK) != 0) break;
  }
  ASSERT_EQ(raise(SIGUSR2), 0);
  FILE* f = fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr) << path;
  char head[32] = {};
  ASSERT_NE(fgets(head, sizeof(head), f), nullptr);
  fclose(f);
  EXPECT_EQ(std::string(head).rfind("heap profile: ", 0), 0u) << head;
  ASSERT_TRUE(SetOptionByName("profile_signal", "0"));  // the handler goes off
  for (void* b : blocks) Deallocate(b);
  unlink(path.c_str());
}

TEST_F(ProfileTest, EightThreadsSampleWhileProfilesAreWritten) {
  ASSERT_TRUE(SetProfileSampleBytes(8192));
  const uint64_t live_before = internal::GetProfileTotals(ProfileView::kLive).samples_live;
  constexpr int kPerThread = testing::kUnderSanitizer ? 20000 : 200000;
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  // Shared slots: a block is often freed by another thread than its own.
  static std::atomic<void*> slots[1024];
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t] {
      SetProfileSampleBytes(8192);  // this thread's countdown follows at once
      for (int i = 0; i < kPerThread; ++i) {
        const size_t k = static_cast<size_t>(i * 7 + t * 131) % 1024;
        void* p = Allocate(static_cast<size_t>(16 + (i * 37 + t * 11) % 3000));
        // Acquire/release: the block passes from one thread to another
        // through the slot (pairs with the other threads' exchanges).
        Deallocate(slots[k].exchange(p, std::memory_order_acq_rel));
      }
    });
  }
  std::thread writer([&done] {
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    while (!done.load(std::memory_order_relaxed)) {
      WriteHeapProfile(fd, HeapProfileView::kLive);
      WriteHeapProfile(fd, HeapProfileView::kPeak);
      const ProfileTotals t = internal::GetProfileTotals(ProfileView::kLive);
      EXPECT_GE(t.samples_taken, t.samples_live);
    }
    close(fd);
  });
  for (auto& th : threads) th.join();
  done.store(true);
  writer.join();
  for (auto& slot : slots) Deallocate(slot.exchange(nullptr, std::memory_order_acq_rel));
  const ProfileTotals after = internal::GetProfileTotals(ProfileView::kLive);
  EXPECT_EQ(after.samples_live, live_before);  // every sampled block freed left it
  EXPECT_GT(after.samples_taken, 100u);
}

TEST_F(ProfileTest, BadKnobValuesAreRefusedAndTheOldValueKept) {
  ASSERT_TRUE(SetOptionByName("profile_sample_bytes", "2m"));
  EXPECT_FALSE(SetOptionByName("profile_sample_bytes", "-1"));
  EXPECT_FALSE(SetOptionByName("profile_sample_bytes", "lots"));
  EXPECT_FALSE(SetOptionByName("profile_sample_bytes", "2t"));
  EXPECT_EQ(GetOption(Option::kProfileSampleBytes), 2 << 20);
  EXPECT_FALSE(SetOptionByName("profile_signal", "65"));
  EXPECT_FALSE(SetOptionByName("profile_file", "relative/path"));
  EXPECT_FALSE(SetOptionByName("memory_limit_mode", "medium"));
  EXPECT_FALSE(SetOptionByName("memory_limit_bytes", "-5"));
  EXPECT_EQ(GetOption(Option::kMemoryLimitBytes), 0);
}

}  // namespace
}  // namespace strata
