// Bad input that both builds report (README, "Contract"): pointers strata
// never handed out, pointers into an arena's header and free pools, the
// immediate double free, large blocks freed or reallocated twice, sized
// frees of the wrong size. Each is reported in one line naming the address,
// then abort; in count mode it is counted and ignored, and the allocator
// stays consistent. Program data that merely resembles a free block is
// never reported. Runs in both builds (error_test, error_test_checked);
// what the checked build alone reports is misuse_test_checked's.
#include "alloc/error.h"

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/heap.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/count_mode.h"

namespace strata::internal {
namespace {

constexpr size_t kSize = 64;

// Takes n blocks of kSize and checks that none is handed out twice or lies
// in `live` (blocks the test still holds); frees them again.
void ExpectDistinctBlocks(size_t n, const std::set<void*>& live) {
  std::set<void*> seen;
  std::vector<void*> got;
  for (size_t i = 0; i < n; ++i) {
    void* p = strata::Allocate(kSize);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(seen.insert(p).second) << "handed out twice: " << p;
    EXPECT_EQ(live.count(p), 0u) << "handed out while live: " << p;
    got.push_back(p);
  }
  for (void* p : got) strata::Deallocate(p);
}

// After a misuse in count mode: once what other threads sent back is in,
// the heap is consistent and hands out distinct blocks, none of them `keep`
// (still live), which is then freed.
void ExpectSoundAfterMisuse(void* keep) {
  tls_heap->DrainRemote();
  EXPECT_TRUE(tls_heap->IsValid());
  ExpectDistinctBlocks(500, {keep});
  strata::Deallocate(keep);
}


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

TEST(ErrorTest, CountModeCountsAndLosesNothing) {
  SetErrorMode(ErrorMode::kCount);
  const uint64_t before = ErrorCount();
  int on_stack = 0;
  strata::Deallocate(&on_stack);                   // not ours
  void* p = strata::Allocate(64);
  strata::Deallocate(p);
  strata::Deallocate(p);                           // double
  void* big = strata::Allocate(1 << 20);
  strata::Deallocate(big);
  strata::Deallocate(big);                         // double (large)
  EXPECT_EQ(ErrorCount(), before + 3);
  EXPECT_TRUE(tls_heap->IsValid());
  // The allocator still works and hands out distinct blocks.
  void* a = strata::Allocate(64);
  void* b = strata::Allocate(64);
  EXPECT_NE(a, b);
  strata::Deallocate(a);
  strata::Deallocate(b);
  SetErrorMode(ErrorMode::kAbort);
}

// free_aligned_sized with an alignment above a page on a block of a run
// (issue 24, F4): only a large block is ever allocated with such an
// alignment, so a block that a plain request got is reported even when its
// address happens to sit on the boundary. Both builds.

// Blocks of 8 KiB from plain requests until one starts on an 8 KiB
// boundary (a run starts on a pool boundary, so about every other one
// does); the others are freed.
void* PlainBlockOnAnAlignedBoundary() {
  std::vector<void*> others;
  void* found = nullptr;
  for (int i = 0; i < 64 && found == nullptr; ++i) {
    void* p = strata::Allocate(8192);
    if ((reinterpret_cast<uintptr_t>(p) & 8191) == 0) {
      found = p;
    } else {
      others.push_back(p);
    }
  }
  for (void* p : others) strata::Deallocate(p);
  return found;
}

TEST_F(ErrorDeathTest, AlignedSizedFreeAboveAPageOfAPlainBlockAborts) {
  EXPECT_DEATH(
      {
        void* p = PlainBlockOnAnAlignedBoundary();
        if (p != nullptr) strata_free_aligned_sized(p, 8192, 8192);
      },
      "strata: free_aligned_sized\\(0x[0-9a-f]+\\): block was not allocated with this alignment");
}

TEST(ErrorTest, AlignedSizedFreeAboveAPageOfAPlainBlockCounted) {
  CountMode count;
  void* p = PlainBlockOnAnAlignedBoundary();
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x3c, 8192);
  strata_free_aligned_sized(p, 8192, 8192);    // ignored: p stays live
  strata::DeallocateAligned(p, 16384);         // ignored: the unsized form (or p is misaligned)
  EXPECT_EQ(count.Errors(), 2u);
  // p was not freed: never handed out again while live, its bytes intact.
  std::vector<void*> got;
  for (int i = 0; i < 64; ++i) {
    got.push_back(strata::Allocate(8192));
    EXPECT_NE(got.back(), p);
  }
  for (void* g : got) strata::Deallocate(g);
  for (size_t i = 0; i < 8192; ++i) ASSERT_EQ(static_cast<unsigned char*>(p)[i], 0x3c) << i;
  strata::Deallocate(p);
  // A block allocated with the alignment passes.
  void* a = strata::AllocateAligned(8192, 8192);
  ASSERT_NE(a, nullptr);
  strata_free_aligned_sized(a, 8192, 8192);
  EXPECT_EQ(count.Errors(), 2u);
  EXPECT_TRUE(tls_heap->IsValid());
}

// A pointer in a run's tail (past its last block, where one more block would
// start but does not fit) is not a block: malloc_usable_size says so in
// both builds (its free is the checked build's, misuse_test).
TEST(ErrorTest, RunTailIsNotABlockForUsableSize) {
  constexpr size_t kSize = 24;  // 170 blocks of a 4 KiB pool, 16 bytes left over
  const ClassInfo& k = kClasses[SizeToClass(kSize)];
  ASSERT_LT(uint64_t{k.blocks} * k.size, k.run_pools * kPoolSize);
  void* p = strata::Allocate(kSize);
  PoolDesc* d = RunOf(ArenaOf(p), p);
  char* tail = d->Start() + size_t{k.blocks} * k.size;
  SetErrorMode(ErrorMode::kCount);
  const uint64_t before = ErrorCount();
  EXPECT_EQ(strata::UsableSize(tail), 0u);
  EXPECT_EQ(ErrorCount(), before + 1);
  SetErrorMode(ErrorMode::kAbort);
  EXPECT_TRUE(tls_heap->IsValid());
  strata::Deallocate(p);
}

// --- Pointers into an arena's header: pool 0 (the header's fields and the
// first descriptors) and pool 1 (the rest of the descriptors; its own slot
// is a zero descriptor that the fast paths rely on to validate nothing). ---

TEST(ErrorTest, PointersIntoTheArenaHeaderAreReportedCounted) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  char* base = reinterpret_cast<char*>(ArenaOf(keep));
  const size_t offsets[] = {0, 8, 64, 128, 256, 4000, kPoolSize, kPoolSize + 128,
                            kPoolSize + 1024, 2 * kPoolSize - 8};
  uint64_t expected = 0;
  for (size_t off : offsets) {
    void* p = base + off;
    strata::Deallocate(p);  // the owner's path (its arena cache holds the arena)
    EXPECT_EQ(count.Errors(), ++expected) << "free at header offset " << off;
    std::thread([p] { strata::Deallocate(p); }).join();  // another heap's path
    EXPECT_EQ(count.Errors(), ++expected) << "remote free at header offset " << off;
    EXPECT_EQ(strata::Reallocate(p, 32), nullptr) << "realloc at header offset " << off;
    EXPECT_EQ(count.Errors(), ++expected) << "realloc at header offset " << off;
  }
  EXPECT_TRUE(ArenaOf(keep)->IsValid());  // pool 1's descriptor is still zero
  ExpectSoundAfterMisuse(keep);
}

// --- realloc of a freed large block (its mapping kept in the large cache,
// where realloc could resize it in place and the next malloc take it
// again: one block handed out twice). ---

TEST_F(ErrorDeathTest, ReallocOfAFreedLargeBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* p = strata::Allocate(200000);
        strata::Deallocate(p);
        strata::Reallocate(p, 200000);
      },
      "strata: realloc\\(0x[0-9a-f]+\\): double free \\(block already free\\)");
}

TEST(ErrorTest, ReallocOfAFreedLargeBlockCountedAndNotHandedOutTwice) {
  CountMode count;
  for (size_t size : {size_t{70000}, size_t{200000}, size_t{1} << 20}) {
    void* p = strata::Allocate(size);
    ASSERT_NE(p, nullptr);
    strata::Deallocate(p);
    errno = 0;
    EXPECT_EQ(strata::Reallocate(p, size), nullptr) << size;
    EXPECT_EQ(errno, EINVAL) << size;
    // Another thread's realloc of it, too.
    void* r = &r;
    std::thread([&] { r = strata::Reallocate(p, size + 1); }).join();
    EXPECT_EQ(r, nullptr) << size;
    // The cached mapping serves one block, once.
    void* a = strata::Allocate(size);
    void* b = strata::Allocate(size);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a, b);
    strata::Deallocate(a);
    strata::Deallocate(b);
  }
  EXPECT_EQ(count.Errors(), 6u);
}

// --- Program data that resembles links is not a free block. ---

TEST(ErrorTest, DataLikeLinksIsNotMistakenForAFreeBlock) {
  // Abort mode: a false report would kill the test.
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(strata::Allocate(8 + 8 * (i % 16)));
  void* freed = strata::Allocate(kSize);
  strata::Deallocate(freed);
  uintptr_t stale_link;
  std::memcpy(&stale_link, freed, sizeof(stale_link));  // a real encoded link
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto* w = static_cast<uintptr_t*>(blocks[i]);
    switch (i % 5) {
      case 0: w[0] = 0; break;
      case 1: w[0] = reinterpret_cast<uintptr_t>(w); break;  // an empty intrusive list
      case 2: w[0] = reinterpret_cast<uintptr_t>(blocks[(i + 1) % blocks.size()]); break;
      case 3: w[0] = stale_link; break;  // a link copied from another block
      default: w[0] = ~uintptr_t{0}; break;
    }
  }
  // Half are freed here, half by another thread.
  for (size_t i = 0; i < blocks.size(); i += 2) strata::Deallocate(blocks[i]);
  std::thread([&] {
    for (size_t i = 1; i < blocks.size(); i += 2) strata::Deallocate(blocks[i]);
  }).join();
  tls_heap->DrainRemote();
  EXPECT_TRUE(tls_heap->IsValid());
}

}  // namespace
}  // namespace strata::internal
