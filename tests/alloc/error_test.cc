// Bad input: invalid and double frees are reported in one line naming the
// address, then abort; in count mode they are counted and ignored, and the
// allocator stays consistent.
#include "alloc/error.h"

#include <cstdint>
#include <thread>
#include <vector>

#include "alloc/heap.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata::internal {
namespace {

class ErrorDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(ErrorDeathTest, ImmediateDoubleFreeAborts) {
  EXPECT_DEATH(
      {
        void* p = strata::Allocate(40);
        strata::Deallocate(p);
        strata::Deallocate(p);
      },
      "strata: free\\(0x[0-9a-f]+\\): double free \\(block already free\\)");
}

// The block is deep in its run's free list, not at its head.
TEST_F(ErrorDeathTest, DoubleFreeOfABlockBuriedInTheFreeListAborts) {
  EXPECT_DEATH(
      {
        void* blocks[20];
        for (auto& b : blocks) b = strata::Allocate(40);
        strata::Deallocate(blocks[3]);
        for (int i = 4; i < 20; ++i) strata::Deallocate(blocks[i]);
        strata::Deallocate(blocks[3]);
      },
      "double free \\(block already free\\)");
}

// Another thread frees a block twice: the owner catches it when draining.
TEST_F(ErrorDeathTest, RemoteDoubleFreeAborts) {
  EXPECT_DEATH(
      {
        void* blocks[64];
        for (auto& b : blocks) b = strata::Allocate(24);
        std::thread([&] {
          for (void* b : blocks) strata::Deallocate(b);
        }).join();
        tls_heap->DrainRemote();  // blocks are back on their free lists
        std::thread([&] { strata::Deallocate(blocks[10]); }).join();
        tls_heap->DrainRemote();
      },
      "double free");
}

TEST(ErrorTest, CountModeCountsAndLosesNothing) {
  SetErrorMode(ErrorMode::kCount);
  const uint64_t before = ErrorCount();
  int on_stack = 0;
  strata::Deallocate(&on_stack);                   // not ours
  void* p = strata::Allocate(64);
  strata::Deallocate(static_cast<char*>(p) + 8);  // interior
  strata::Deallocate(p);
  strata::Deallocate(p);                           // double
  void* big = strata::Allocate(1 << 20);
  strata::Deallocate(big);
  strata::Deallocate(big);                         // double (large)
  EXPECT_EQ(ErrorCount(), before + 4);
  EXPECT_TRUE(tls_heap->IsValid());
  // The allocator still works and hands out distinct blocks.
  void* a = strata::Allocate(64);
  void* b = strata::Allocate(64);
  EXPECT_NE(a, b);
  strata::Deallocate(a);
  strata::Deallocate(b);
  SetErrorMode(ErrorMode::kAbort);
}

// A pointer in a run's tail (past its last block, where one more block would
// start but does not fit) is not a block, for any path that validates it.
TEST(ErrorTest, RunTailIsNotABlock) {
  constexpr size_t kSize = 24;  // 170 blocks of a 4 KiB pool, 16 bytes left over
  const ClassInfo& k = kClasses[SizeToClass(kSize)];
  ASSERT_LT(uint64_t{k.blocks} * k.size, k.run_pools * kPoolSize);
  void* p = strata::Allocate(kSize);
  PoolDesc* d = RunOf(ArenaOf(p), p);
  char* tail = d->Start() + size_t{k.blocks} * k.size;
  SetErrorMode(ErrorMode::kCount);
  const uint64_t before = ErrorCount();
  EXPECT_EQ(strata::UsableSize(tail), 0u);
  strata::Deallocate(tail);
  EXPECT_EQ(ErrorCount(), before + 2);
  SetErrorMode(ErrorMode::kAbort);
  EXPECT_TRUE(tls_heap->IsValid());
  strata::Deallocate(p);
}

}  // namespace
}  // namespace strata::internal
