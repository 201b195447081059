#include "alloc/size_class.h"

#include <cstddef>
#include <cstdint>

#include "gtest/gtest.h"

namespace strata::internal {
namespace {

// 8-byte classes in 4 KiB pools; a run is one pool up to 128 B, and the
// fewest pools holding at least 32 blocks above (so that a refill gets a
// batch), with at most 1/16 of the run left over.
TEST(SizeClassTest, SmallClassesAreThePymallocClasses) {
  for (size_t c = 1; c <= kNumSmallClasses; ++c) {
    const size_t size = c * 8;
    EXPECT_EQ(kClasses[c].size, size);
    const size_t pools = kClasses[c].run_pools;
    EXPECT_EQ(kClasses[c].blocks, pools * kPoolSize / size);
    if (size <= 128) {
      EXPECT_EQ(pools, 1u) << size;
    } else {
      EXPECT_GE(kClasses[c].blocks, 32u) << size;
      EXPECT_LE(pools, 4u) << size;
      EXPECT_LT((pools - 1) * kPoolSize / size, 32u) << size;  // the fewest pools
    }
    EXPECT_LE((pools * kPoolSize - kClasses[c].blocks * size) * 16, pools * kPoolSize) << size;
  }
}

// Every size 0..kMaxMediumSize maps to the smallest class that holds it.
TEST(SizeClassTest, EverySizeMapsToTheSmallestFittingClass) {
  for (size_t n = 0; n <= kMaxMediumSize; ++n) {
    const size_t c = SizeToClass(n);
    ASSERT_GE(c, 1u) << n;
    ASSERT_LT(c, kNumClasses) << n;
    ASSERT_GE(ClassSize(c), n) << n;
    if (c > 1) {
      ASSERT_LT(ClassSize(c - 1), n) << n;
    }
  }
}

TEST(SizeClassTest, MediumRoundingWasteIsBounded) {
  for (size_t n = kMaxSmallSize + 1; n <= kMaxMediumSize; ++n) {
    const size_t block = ClassSize(SizeToClass(n));
    // Rounding wastes less than 1/8 of the block (the design allows 12.5%).
    ASSERT_LT((block - n) * 8, block) << n;
  }
}

TEST(SizeClassTest, RunsWasteAtMostASixteenth) {
  for (size_t c = kFirstMediumClass; c < kNumClasses; ++c) {
    const size_t run = size_t{kClasses[c].run_pools} * kPoolSize;
    const size_t tail = run - size_t{kClasses[c].blocks} * kClasses[c].size;
    EXPECT_LE(tail * 16, run) << "class " << c;
  }
}

TEST(SizeClassTest, AlignmentFollowsTheC11Rule) {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const uint32_t size = kClasses[c].size;
    const uint32_t align = kClasses[c].align;
    EXPECT_EQ(size % align, 0u);
    EXPECT_TRUE(align == 16 || (size % (align * 2)) != 0) << size;
  }
}

TEST(SizeClassTest, BlockIndexDividesExactly) {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const uint32_t run = kClasses[c].run_pools * static_cast<uint32_t>(kPoolSize);
    for (uint32_t off = 0; off < run; ++off) {
      ASSERT_EQ(BlockIndex(c, off), off / kClasses[c].size) << c << " " << off;
    }
  }
}

}  // namespace
}  // namespace strata::internal

namespace strata::internal {
namespace {

// The one-multiply block-start test of the free fast path, checked at every
// byte offset of every run of every class (the compile-time check samples
// the extremes).
TEST(SizeClassTest, BlockStartTestIsExactAtEveryOffset) {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const uint32_t size = kClasses[c].size;
    const uint32_t magic = kClasses[c].div_magic;
    const uint32_t run = kClasses[c].run_pools * static_cast<uint32_t>(kPoolSize);
    for (uint32_t off = 0; off < run; ++off) {
      const uint64_t product = uint64_t{off} * magic;
      ASSERT_EQ(IsBlockStart(product, magic), off % size == 0) << "class " << c << " offset " << off;
      ASSERT_EQ(product >> 32, off / size) << "class " << c << " offset " << off;
    }
  }
}

}  // namespace
}  // namespace strata::internal

namespace strata::internal {
namespace {

// The sized-free contract (size_class.h): every size malloc maps to a class
// fits it; the window is usable / 2 - 4 <= n <= usable; absurd sizes fail.
TEST(SizeClassTest, SizedFreeContractHoldsForEveryClass) {
  for (size_t n = 0; n <= kMaxMediumSize; ++n) {
    const size_t usable = ClassSize(SizeToClass(n));
    ASSERT_TRUE(SizedFreeFits(usable, n)) << n;
  }
  for (size_t c = 1; c < kNumClasses; ++c) {
    const size_t s = ClassSize(c);
    for (size_t n = 0; n <= 2 * s + 8; ++n) {
      ASSERT_EQ(SizedFreeFits(s, n), n <= s && 2 * n + 8 >= s) << s << " " << n;
    }
    for (size_t n : {SIZE_MAX, SIZE_MAX - 7, size_t{PTRDIFF_MAX}, size_t{1} << 62}) {
      EXPECT_FALSE(SizedFreeFits(s, n)) << s << " " << n;
    }
  }
  // Large blocks: page-granular usable sizes.
  EXPECT_TRUE(SizedFreeFits((size_t{1} << 20) + 4032, size_t{1} << 20));
  EXPECT_FALSE(SizedFreeFits((size_t{1} << 20) + 4032, 4096));
}

}  // namespace
}  // namespace strata::internal
