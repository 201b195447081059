// The memory limit through strata's API: a hard limit fails allocations
// past it with ENOMEM, prints one line, and the process goes on after frees;
// a soft limit gives the caches back and maps anyway; bad values are
// refused. (What a soft limit does to RSS: limit_rss_test.)
#include <errno.h>

#include <atomic>
#include <thread>
#include <vector>

#include "alloc/limit.h"
#include "alloc/options.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

class LimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_internal::ResetForTesting();
    ReleaseMemory();
  }
  void TearDown() override { options_internal::ResetForTesting(); }
};

uint64_t Footprint() { return internal::GetLimitStats().footprint_bytes; }

// Allocates blocks of `size` until one fails (at most `max`).
std::vector<void*> FillUntilRefused(size_t size, size_t max, int* err) {
  std::vector<void*> blocks;
  *err = 0;
  for (size_t i = 0; i < max; ++i) {
    errno = 0;
    void* p = Allocate(size);
    if (p == nullptr) {
      *err = errno;
      break;
    }
    blocks.push_back(p);
  }
  return blocks;
}

TEST_F(LimitTest, AHardLimitFailsPastItAndTheProcessGoesOnAfterFrees) {
  const uint64_t base = Footprint();
  const uint64_t limit = base + (16 << 20);
  ASSERT_TRUE(SetMemoryLimit(limit, /*hard=*/true));
  const uint64_t refusals = internal::GetLimitStats().hard_refusals;

  // Large blocks: 1 MiB each, 16 MiB of room.
  int err;
  std::vector<void*> large = FillUntilRefused(1 << 20, 64, &err);
  EXPECT_EQ(err, ENOMEM);
  EXPECT_GE(large.size(), 8u);
  EXPECT_LE(large.size(), 16u);
  EXPECT_LE(Footprint(), limit);
  EXPECT_GT(internal::GetLimitStats().hard_refusals, refusals);
  for (void* p : large) Deallocate(p);

  // Small blocks: the cached large mappings are given back to make room.
  std::vector<void*> small = FillUntilRefused(1000, 1 << 20, &err);
  EXPECT_EQ(err, ENOMEM);
  EXPECT_GE(small.size(), 8000u);  // at least half the room went to them
  EXPECT_LE(Footprint(), limit);
  for (void* p : small) Deallocate(p);

  // The process goes on: freed memory serves again under the limit.
  void* again = Allocate(1 << 20);
  ASSERT_NE(again, nullptr);
  Deallocate(again);
  std::vector<void*> refill = FillUntilRefused(1000, 4000, &err);
  EXPECT_EQ(refill.size(), 4000u);
  for (void* p : refill) Deallocate(p);

  // Lifting the limit lets the burst through.
  ASSERT_TRUE(SetMemoryLimit(0, /*hard=*/true));
  std::vector<void*> free_run = FillUntilRefused(1 << 20, 32, &err);
  EXPECT_EQ(free_run.size(), 32u);
  for (void* p : free_run) Deallocate(p);
}

TEST_F(LimitTest, ASoftLimitReleasesTheCachesAndMapsAnyway) {
  // Fill the large cache, then set a soft limit right above the footprint.
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(Allocate(2 << 20));
  for (void* p : blocks) Deallocate(p);
  const internal::LimitStats before = internal::GetLimitStats();
  ASSERT_TRUE(SetMemoryLimit(before.footprint_bytes + (1 << 20), /*hard=*/false));
  // 3 MiB blocks cannot reuse the cached 2 MiB mappings: the first mapping
  // meets the limit, the cache goes back, and every allocation succeeds.
  blocks.clear();
  for (int i = 0; i < 8; ++i) {
    void* p = Allocate(3 << 20);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
  }
  const internal::LimitStats after = internal::GetLimitStats();
  EXPECT_GT(after.soft_events, before.soft_events);
  EXPECT_GT(after.soft_over, before.soft_over);  // 24 MiB live is over the limit
  EXPECT_EQ(after.hard_refusals, before.hard_refusals);
  for (void* p : blocks) Deallocate(p);
}

TEST_F(LimitTest, TheStatsReportTheFootprint) {
  void* p = Allocate(1 << 20);
  ASSERT_NE(p, nullptr);
  Stats s;
  GetStats(&s);
  EXPECT_GE(s.footprint_bytes, uint64_t{1} << 20);
  EXPECT_GE(s.footprint_peak, s.footprint_bytes);
  Deallocate(p);
}

TEST_F(LimitTest, AnImpossibleRequestIsNeitherChargedNorCounted) {
  ASSERT_TRUE(SetMemoryLimit(Footprint() + (64 << 20), /*hard=*/false));
  const internal::LimitStats before = internal::GetLimitStats();
  errno = 0;
  EXPECT_EQ(Allocate(size_t{1} << 62), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  const internal::LimitStats after = internal::GetLimitStats();
  EXPECT_EQ(after.footprint_peak, before.footprint_peak);
  EXPECT_EQ(after.soft_events, before.soft_events);
  EXPECT_EQ(after.footprint_bytes, before.footprint_bytes);
}

// One thread asks again and again for more than the limit; another's small
// allocations fit, and must never be refused because of the first's.
TEST_F(LimitTest, ARefusedChargeIsNeverSeenByOtherThreads) {
  // No large cache: every allocation below maps, and is charged.
  ASSERT_TRUE(SetOptionByName("large_cache_bytes", "0"));
  ASSERT_TRUE(SetMemoryLimit(Footprint() + (32 << 20), /*hard=*/true));
  std::atomic<bool> stop{false};
  std::thread greedy([&stop] {
    while (!stop.load(std::memory_order_relaxed)) {
      void* p = Allocate(size_t{1} << 30);
      if (p != nullptr) Deallocate(p);
    }
  });
  int refused = 0;
  for (int i = 0; i < 5000; ++i) {
    void* p = Allocate(300000);  // large: a mapping charged each time
    if (p == nullptr) {
      ++refused;
    } else {
      Deallocate(p);
    }
  }
  stop.store(true);
  greedy.join();
  EXPECT_EQ(refused, 0);
}

TEST_F(LimitTest, BadValuesAreRefusedAndTheOldOnesKept) {
  ASSERT_TRUE(SetOptionByName("memory_limit_bytes", "1g"));
  ASSERT_TRUE(SetOptionByName("memory_limit_mode", "hard"));
  EXPECT_FALSE(SetOptionByName("memory_limit_bytes", "-1"));
  EXPECT_FALSE(SetOptionByName("memory_limit_bytes", "1000t"));
  EXPECT_FALSE(SetOptionByName("memory_limit_bytes", "ten"));
  EXPECT_FALSE(SetOptionByName("memory_limit_mode", "strict"));
  EXPECT_EQ(GetOption(Option::kMemoryLimitBytes), int64_t{1} << 30);
  EXPECT_EQ(GetOption(Option::kMemoryLimitMode), 1);
}

}  // namespace
}  // namespace strata
