// Guarded sampling through strata's own API (issue 25): which allocations
// get a guarded slot, where the block sits, what free, realloc, usable size
// and sized frees do with one, the slots' bound and the quarantine, double
// and invalid frees (count mode: reported and counted in both builds),
// heap profiles of guarded blocks, threads, fork, and the stats. The
// faults themselves (which kill the process) are guarded_fault_test's and
// the preload's (tests/preload:guarded_fault_test).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/error.h"
#include "alloc/guarded.h"
#include "alloc/options.h"
#include "alloc/profile.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata::internal {
namespace {

// A guarded block ends at its page's end (its usable size rounds it to its
// alignment); no block of a class of at most a page does.
bool IsGuarded(const void* p) {
  return InGuardedRegion(p) && (reinterpret_cast<uintptr_t>(p) + strata::UsableSize(p)) % kPoolSize == 0;
}

GuardedStats Now() { return GetGuardedStats(); }

// Every allocation of at most a page guarded (while slots are free), for
// the test's lifetime; options back to their defaults afterwards.
class GuardedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(SetOption(Option::kGuardedSlots, 64));
    ASSERT_TRUE(SetGuardedSampleBytes(1));
  }
  void TearDown() override {
    SetGuardedSampleBytes(0);
    SetOption(Option::kGuardedSlots, 256);
    SetProfileSampleBytes(0);
    SetErrorMode(ErrorMode::kAbort);
  }
  // A guarded block of n bytes (the sampler may pass over a few).
  static void* Guarded(size_t n, size_t align = 0) {
    for (int i = 0; i < 100; ++i) {
      void* p = align != 0 ? strata::AllocateAligned(align, n) : strata::Allocate(n);
      if (IsGuarded(p)) return p;
      strata::Deallocate(p);
    }
    return nullptr;
  }
};

TEST_F(GuardedTest, BlockSitsAgainstTheTrailingGuard) {
  for (size_t n : {size_t{1}, size_t{8}, size_t{24}, size_t{32}, size_t{100}, size_t{4096}}) {
    auto* p = static_cast<char*>(Guarded(n));
    ASSERT_NE(p, nullptr) << n;
    const size_t usable = strata::UsableSize(p);
    EXPECT_GE(usable, n);
    EXPECT_LT(usable, n + 16) << "rounded to its class's alignment only";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (usable % 16 == 0 ? 16 : 8), 0u);
    for (size_t i = 0; i < usable; ++i) EXPECT_EQ(p[i], 0) << "a fresh slot reads as zeros";
    memset(p, 0xab, usable);
    EXPECT_TRUE(strata::Owns(p));
    strata::Deallocate(p);
  }
}

TEST_F(GuardedTest, AlignedRequestsKeepTheirAlignment) {
  for (size_t align : {size_t{32}, size_t{64}, size_t{256}, size_t{4096}}) {
    void* p = Guarded(40, align);
    ASSERT_NE(p, nullptr) << align;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    strata::Deallocate(p);
  }
}

TEST_F(GuardedTest, LargerThanAPageIsNotGuarded) {
  const uint64_t before = Now().allocations;
  void* p = strata::Allocate(8192);
  EXPECT_FALSE(InGuardedRegion(p));
  strata::Deallocate(p);
  EXPECT_EQ(Now().allocations, before);
}

TEST_F(GuardedTest, FreeQuarantinesAndCounts) {
  const GuardedStats before = Now();
  void* p = Guarded(64);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Now().slots_live, before.slots_live + 1);
  EXPECT_GE(Now().allocations, before.allocations + 1);
  strata::Deallocate(p);
  const GuardedStats after = Now();
  EXPECT_EQ(after.slots_live, before.slots_live);
  EXPECT_GE(after.slots_freed, 1u);
  EXPECT_EQ(after.slots_total, 64u);
  Stats s;
  GetStats(&s);
  EXPECT_EQ(s.guarded_slots_total, 64u);
  EXPECT_GE(s.guarded_allocations, 1u);
  EXPECT_EQ(s.retention.guarded, after.region_bytes);
  EXPECT_EQ(s.retention.Total(), s.os_mapped_bytes) << "the region is a row of its own";
}

TEST_F(GuardedTest, SlotsAreBoundedAndQuarantined) {
  ASSERT_TRUE(SetOption(Option::kGuardedSlots, 8));
  std::vector<void*> live;
  size_t guarded = 0;
  for (int i = 0; i < 40; ++i) {
    void* p = strata::Allocate(48);
    ASSERT_NE(p, nullptr);
    if (IsGuarded(p)) ++guarded;
    live.push_back(p);
  }
  EXPECT_LE(Now().slots_live, 8u) << "no more live guarded blocks than slots";
  EXPECT_GE(Now().skipped, 1u) << "a sample with no slot free is simply not guarded";
  EXPECT_LE(guarded, 8u);
  for (void* p : live) strata::Deallocate(p);
  // The quarantine: a slot just freed waits while any other is free (never
  // used, or freed longer ago), so a use after free of it keeps faulting.
  void* p = Guarded(48);
  ASSERT_NE(p, nullptr);
  const uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~(kPoolSize - 1);
  strata::Deallocate(p);
  std::vector<void*> next;
  for (int i = 0; i < 7; ++i) {
    void* q = Guarded(48);
    ASSERT_NE(q, nullptr);
    EXPECT_NE(reinterpret_cast<uintptr_t>(q) & ~(kPoolSize - 1), page) << i;
    next.push_back(q);
  }
  for (void* q : next) strata::Deallocate(q);
}

TEST_F(GuardedTest, ReallocStaysWhileItFitsAndMovesOut) {
  auto* p = static_cast<char*>(Guarded(100));
  ASSERT_NE(p, nullptr);
  memset(p, 7, 100);
  EXPECT_EQ(strata::Reallocate(p, 90), p) << "fits: in place";
  auto* q = static_cast<char*>(strata::Reallocate(p, 3000));
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  for (int i = 0; i < 90; ++i) EXPECT_EQ(q[i], 7);
  EXPECT_FALSE(GuardedIsLive(p)) << "the old block was freed";
  strata::Deallocate(q);
}

TEST_F(GuardedTest, SizedFreesJudgeTheRequestedSize) {
  void* p = Guarded(200);
  ASSERT_NE(p, nullptr);
  strata::DeallocateSized(p, 200);
  void* a = Guarded(64, 64);
  ASSERT_NE(a, nullptr);
  strata::DeallocateAlignedSized(a, 64, 64);
}

TEST_F(GuardedTest, DoubleAndInvalidFreesAreReportedInCountMode) {
  SetErrorMode(ErrorMode::kCount);
  const uint64_t errors = ErrorCount();
  auto* p = static_cast<char*>(Guarded(32));
  ASSERT_NE(p, nullptr);
  strata::Deallocate(p + 8);  // interior
  EXPECT_EQ(ErrorCount(), errors + 1);
  EXPECT_TRUE(GuardedIsLive(p)) << "an invalid free frees nothing";
  strata::Deallocate(p);
  strata::Deallocate(p);  // double
  EXPECT_EQ(ErrorCount(), errors + 2);
  EXPECT_EQ(strata::Reallocate(p, 10), nullptr);  // realloc of the freed block
  EXPECT_EQ(ErrorCount(), errors + 3);
}

TEST_F(GuardedTest, DoubleFreeAbortsWithTheStacks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* p = Guarded(32);
        strata::Deallocate(p);
        strata::Deallocate(p);
      },
      "double free of a guarded block\n.*allocated by thread [0-9]+:\n.*freed by thread");
}

TEST_F(GuardedTest, AGuardedBlockCanBeAProfileSample) {
  const uint64_t taken = GetHeapProfileSummary().samples_taken;
  ASSERT_TRUE(SetProfileSampleBytes(1));  // both rates 1: every sample is for both
  void* p = Guarded(256);
  ASSERT_NE(p, nullptr);
  const HeapProfileSummary during = GetHeapProfileSummary();
  EXPECT_GT(during.samples_taken, taken);
  const uint64_t live = during.samples_live;
  strata::Deallocate(p);
  EXPECT_LT(GetHeapProfileSummary().samples_live, live) << "its free leaves the profile";
}

TEST_F(GuardedTest, ThreadsAllocateAndFreeGuardedBlocks) {
  std::atomic<uint64_t> guarded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&guarded, t] {
      std::vector<char*> mine;
      for (int i = 0; i < 300; ++i) {
        auto* p = static_cast<char*>(strata::Allocate(16 + 8 * (i % 20)));
        memset(p, t, 16);
        if (IsGuarded(p)) guarded.fetch_add(1, std::memory_order_relaxed);
        mine.push_back(p);
        if (mine.size() > 10) {
          for (int k = 0; k < 16; ++k) EXPECT_EQ(mine.front()[k], static_cast<char>(t));
          strata::Deallocate(mine.front());
          mine.erase(mine.begin());
        }
      }
      for (char* p : mine) strata::Deallocate(p);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(guarded.load(), 0u);
  EXPECT_LE(Now().slots_live, Now().slots_total);
}

// A guarded block is optional for the memory limit: at the limit the
// allocation is served, simply not guarded (and nothing is given back).
TEST_F(GuardedTest, AtTheMemoryLimitTheSampleIsNotGuarded) {
  void* warm = strata::Allocate(64);  // the class has blocks at hand
  const uint64_t skipped = Now().skipped;
  ASSERT_TRUE(SetMemoryLimit(1, /*hard=*/false));
  void* p = strata::Allocate(64);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(InGuardedRegion(p));
  EXPECT_GT(Now().skipped, skipped);
  ASSERT_TRUE(SetMemoryLimit(0, /*hard=*/false));
  strata::Deallocate(p);
  strata::Deallocate(warm);
  void* q = Guarded(64);
  EXPECT_NE(q, nullptr) << "guarded again below the limit";
  strata::Deallocate(q);
}

TEST_F(GuardedTest, TurnedOffNoMoreGuarded) {
  ASSERT_TRUE(SetGuardedSampleBytes(0));
  const uint64_t before = Now().allocations;
  for (int i = 0; i < 1000; ++i) strata::Deallocate(strata::Allocate(64));
  EXPECT_EQ(Now().allocations, before);
}

// A bad value names the knob and its range and keeps the previous value.
TEST(GuardedOptionsTest, RangesAreChecked) {
  EXPECT_FALSE(SetOption(Option::kGuardedSlots, 0));
  EXPECT_FALSE(SetOption(Option::kGuardedSlots, 16385));
  EXPECT_EQ(GetOption(Option::kGuardedSlots), 256);
  EXPECT_FALSE(SetOptionByName("guarded_sample_bytes", "-1"));
  EXPECT_EQ(GetOption(Option::kGuardedSampleBytes), 0);
  EXPECT_TRUE(SetOptionByName("guarded_sample_bytes", "16m"));
  EXPECT_EQ(GetOption(Option::kGuardedSampleBytes), int64_t{16} << 20);
  EXPECT_TRUE(SetGuardedSampleBytes(0));
}

// fork: the child's slots are consistent; its guarded blocks live and free
// as the parent's (the slots' lock is held across fork).
TEST_F(GuardedTest, ForkChildUsesItsSlots) {
  void* p = Guarded(64);
  ASSERT_NE(p, nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    bool ok = GuardedIsLive(p);
    strata::Deallocate(p);
    ok = ok && !GuardedIsLive(p);
    void* q = strata::Allocate(64);
    ok = ok && q != nullptr;
    strata::Deallocate(q);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(GuardedIsLive(p)) << "the parent's block is the parent's";
  strata::Deallocate(p);
}

}  // namespace
}  // namespace strata::internal
