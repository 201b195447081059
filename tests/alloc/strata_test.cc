// The public API, single-threaded: every size, alignment, realloc, refusals.
#include "alloc/strata.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/heap.h"
#include "alloc/size_class.h"
#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"

namespace strata {
namespace {

using internal::kMaxMediumSize;

// A byte pattern derived from the block's address and size, so that a block
// handed out twice, or overlapping another, shows up as a mismatch.
uint8_t PatternByte(const void* base, size_t size, size_t i) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(base);
  return static_cast<uint8_t>((a >> 4) ^ (size * 131) ^ (i * 7));
}

void Fill(void* p, size_t size) {
  auto* b = static_cast<uint8_t*>(p);
  for (size_t i = 0; i < size; ++i) b[i] = PatternByte(p, size, i);
}

bool Check(const void* p, size_t size) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < size; ++i) {
    if (b[i] != PatternByte(p, size, i)) return false;
  }
  return true;
}

// The alignment C11 requires for an object of n bytes: the largest power of
// two <= 16 that divides n.
size_t NaturalAlign(size_t n) {
  if (n == 0) return 1;
  const size_t a = n & (~n + 1);
  return a > 16 ? 16 : a;
}

TEST(StrataTest, ZeroSizeGivesUniqueBlocks) {
  void* a = Allocate(0);
  void* b = Allocate(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_GE(UsableSize(a), 1u);
  Deallocate(a);
  Deallocate(b);
}

// Every size 0..1 MiB is routed to a block that holds it: a size class up to
// 64 KiB (the smallest fitting one), a page-granular large block above.
TEST(StrataTest, EverySizeUpToOneMiBGetsAFittingBlock) {
  const size_t limit = size_t{1} << 20;
  for (size_t n = 0; n <= limit; ++n) {
    void* p = Allocate(n);
    ASSERT_NE(p, nullptr) << n;
    const size_t usable = UsableSize(p);
    ASSERT_GE(usable, n) << n;
    if (n <= kMaxMediumSize) {
      ASSERT_EQ(usable, internal::ClassSize(internal::SizeToClass(n))) << n;
    } else {
      ASSERT_LT(usable - n, internal::kPoolSize) << n;  // page-granular end
    }
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % NaturalAlign(n), 0u) << n;
    Deallocate(p);
  }
  EXPECT_TRUE(internal::tls_heap->IsValid());
}

// Every size up to 64 KiB allocated, filled, verified and freed, with a
// window of blocks alive at once so that overlaps would corrupt patterns.
TEST(StrataTest, EverySizeUpTo64KiBFilledAndVerified) {
  constexpr size_t kWindow = 128;
  void* live[kWindow] = {};
  size_t sizes[kWindow] = {};
  for (size_t n = 0; n <= kMaxMediumSize; ++n) {
    const size_t slot = n % kWindow;
    if (live[slot] != nullptr) {
      ASSERT_TRUE(Check(live[slot], sizes[slot])) << sizes[slot];
      Deallocate(live[slot]);
    }
    void* p = Allocate(n);
    ASSERT_NE(p, nullptr) << n;
    Fill(p, n);
    live[slot] = p;
    sizes[slot] = n;
  }
  for (size_t i = 0; i < kWindow; ++i) {
    ASSERT_TRUE(Check(live[i], sizes[i]));
    Deallocate(live[i]);
  }
  EXPECT_TRUE(internal::tls_heap->IsValid());
}

TEST(StrataTest, UsableSizeIsWritable) {
  for (size_t n : {1, 7, 100, 513, 4000, 70000, 300000}) {
    auto* p = static_cast<uint8_t*>(Allocate(n));
    ASSERT_NE(p, nullptr);
    const size_t usable = UsableSize(p);
    memset(p, 0xab, usable);
    EXPECT_EQ(p[usable - 1], 0xab);
    Deallocate(p);
  }
}

TEST(StrataTest, AlignedAllocationHonoursEveryPowerOfTwo) {
  for (size_t align = 1; align <= (size_t{1} << 22); align *= 2) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{24}, align / 2 + 1, align, align + 8, size_t{70000}}) {
      void* p = AllocateAligned(align, n);
      ASSERT_NE(p, nullptr) << align << " " << n;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << align << " " << n;
      EXPECT_GE(UsableSize(p), n);
      Fill(p, n);
      EXPECT_TRUE(Check(p, n));
      DeallocateAligned(p, align);
    }
  }
}

TEST(StrataTest, BadAlignmentsAreEinval) {
  for (size_t align : {size_t{0}, size_t{3}, size_t{24}, size_t{100}, kMaxAlignment * 2,
                       ~size_t{0}}) {
    errno = 0;
    EXPECT_EQ(AllocateAligned(align, 64), nullptr) << align;
    EXPECT_EQ(errno, EINVAL) << align;
  }
}

TEST(StrataTest, ImpossibleSizesAreEnomem) {
  const size_t impossible[] = {~size_t{0}, ~size_t{0} - 4096, size_t{PTRDIFF_MAX},
                               size_t{PTRDIFF_MAX} + 1, size_t{1} << 62};
  for (size_t n : impossible) {
    errno = 0;
    EXPECT_EQ(Allocate(n), nullptr) << n;
    EXPECT_EQ(errno, ENOMEM) << n;
    errno = 0;
    EXPECT_EQ(AllocateAligned(4096, n), nullptr) << n;
    EXPECT_EQ(errno, ENOMEM) << n;
  }
  errno = 0;
  EXPECT_EQ(AllocateZeroed(~size_t{0} / 2, 3), nullptr);  // count * size overflows
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(AllocateZeroed(size_t{1} << 32, size_t{1} << 32), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

// A size the system's overcommit policy refuses: 64 TiB, more than the RAM
// and swap of any machine this runs on. Under the kernel's heuristic (mode
// 0) and strict (2) policies the mapping is refused, as glibc's would be;
// only mode 1 ("always overcommit") grants it.
TEST(StrataTest, SizesTheSystemCannotBackAreEnomem) {
  char mode = '0';
  if (FILE* f = fopen("/proc/sys/vm/overcommit_memory", "r")) {
    mode = static_cast<char>(fgetc(f));
    fclose(f);
  }
  const size_t huge = size_t{64} << 40;
  for (int zeroed = 0; zeroed < 2; ++zeroed) {
    errno = 0;
    void* p = zeroed ? AllocateZeroed(1, huge) : Allocate(huge);
    if (mode == '1') {
      // The kernel promises it: strata must not refuse more than glibc.
      ASSERT_NE(p, nullptr) << "overcommit_memory=1";
      Deallocate(p);
    } else {
      EXPECT_EQ(p, nullptr) << "overcommit_memory=" << mode;
      EXPECT_EQ(errno, ENOMEM);
    }
  }
  if (mode != '1') {
    auto* p = static_cast<char*>(Allocate(1000));
    Fill(p, 1000);
    errno = 0;
    EXPECT_EQ(Reallocate(p, huge), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    EXPECT_TRUE(Check(p, 1000));  // the block stays, intact
    Deallocate(p);
  }
}

TEST(StrataTest, FailedReallocKeepsTheBlock) {
  auto* p = static_cast<char*>(Allocate(100));
  Fill(p, 100);
  errno = 0;
  EXPECT_EQ(Reallocate(p, ~size_t{0} - 10), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_TRUE(Check(p, 100));
  Deallocate(p);
}

TEST(StrataTest, CallocZeroesEvenRecycledMemory) {
  for (size_t n : {size_t{8}, size_t{500}, size_t{5000}, size_t{60000}, size_t{200000},
                   size_t{3} << 20}) {
    // Dirty a block of the same size first so calloc may get it back.
    void* dirty = Allocate(n);
    memset(dirty, 0xff, n);
    Deallocate(dirty);
    auto* z = static_cast<uint8_t*>(AllocateZeroed(1, n));
    ASSERT_NE(z, nullptr);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(z[i], 0) << n << " " << i;
    Deallocate(z);
  }
}

// Contents survive growth through small -> medium -> large and back.
TEST(StrataTest, ReallocKeepsContentsAcrossClassesBothWays) {
  const size_t steps[] = {1,      8,      24,     512,   513,   4096,   65536, 65537,
                          300000, 4 << 20, 300000, 65537, 65536, 4096,   513,   512,
                          24,     8,      1};
  auto* p = static_cast<uint8_t*>(Reallocate(nullptr, steps[0]));
  ASSERT_NE(p, nullptr);
  p[0] = 0x5a;
  size_t valid = 1;  // bytes known to hold the pattern
  for (size_t i = 0; i < valid; ++i) p[i] = static_cast<uint8_t>(i * 13 + 1);
  for (size_t s : steps) {
    p = static_cast<uint8_t*>(Reallocate(p, s));
    ASSERT_NE(p, nullptr) << s;
    const size_t keep = valid < s ? valid : s;
    for (size_t i = 0; i < keep; ++i) ASSERT_EQ(p[i], static_cast<uint8_t>(i * 13 + 1)) << s << " " << i;
    for (size_t i = keep; i < s; ++i) p[i] = static_cast<uint8_t>(i * 13 + 1);
    valid = s;
  }
  Deallocate(p);
}

TEST(StrataTest, ReallocNullAndZeroBehaveAsGlibc) {
  void* p = Reallocate(nullptr, 40);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(UsableSize(p), 40u);
  EXPECT_EQ(Reallocate(p, 0), nullptr);  // frees p
}

int g_global_object;

TEST(StrataTest, ForeignPointersAreNotOurs) {
  int on_stack = 0;
  void* from_glibc = malloc(64);
  EXPECT_FALSE(Owns(&on_stack));
  EXPECT_FALSE(Owns(&g_global_object));
  EXPECT_FALSE(Owns(from_glibc));
  EXPECT_FALSE(Owns(nullptr));
  EXPECT_FALSE(Owns(reinterpret_cast<void*>(uintptr_t{1} << 60)));
  free(from_glibc);
  void* mine = Allocate(64);
  void* big = Allocate(1 << 20);
  EXPECT_TRUE(Owns(mine));
  EXPECT_TRUE(Owns(static_cast<char*>(mine) + 10));
  EXPECT_TRUE(Owns(big));
  Deallocate(mine);
  Deallocate(big);
}

TEST(StrataTest, CApiMirrorsTheCppApi) {
  void* p = strata_malloc(100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(strata_usable_size(p), 100u);
  EXPECT_EQ(strata_owns(p), 1);
  p = strata_realloc(p, 1000);
  ASSERT_NE(p, nullptr);
  strata_free_sized(p, 1000);
  auto* z = static_cast<uint8_t*>(strata_calloc(10, 10));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(z[i], 0);
  strata_free(z);
  void* a = strata_aligned_alloc(256, 300);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 256, 0u);
  strata_free_aligned_sized(a, 256, 300);
  errno = 0;
  EXPECT_EQ(strata_aligned_alloc(48, 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

// >= 1 GiB in small blocks at once (smaller under sanitizers, whose shadow
// memory would multiply it), then freed; the heap stays consistent and a
// second round reuses the arenas instead of mapping more.
TEST(StrataTest, ManyArenasAtOnceStayConsistent) {
  const size_t total = testing::Scaled<size_t>(size_t{1} << 30, size_t{256} << 20);
  const size_t block = 256;
  const size_t count = total / block;
  std::vector<void*> blocks(count);  // from glibc: keeps the test's own data off strata
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < count; ++i) {
      blocks[i] = Allocate(block);
      ASSERT_NE(blocks[i], nullptr);
      *static_cast<size_t*>(blocks[i]) = i;
    }
    ASSERT_TRUE(internal::tls_heap->IsValid());
    for (size_t i = 0; i < count; ++i) {
      ASSERT_EQ(*static_cast<size_t*>(blocks[i]), i);
      Deallocate(blocks[i]);
    }
    ASSERT_TRUE(internal::tls_heap->IsValid());
  }
}

using StrataDeathTest = ::testing::Test;

// (Interior pointers of small blocks: the checked build, misuse_test.)
TEST(StrataDeathTest, FreeingForeignPointersAndLargeInteriorsAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  int on_stack = 0;
  EXPECT_DEATH(Deallocate(&on_stack), "strata: free\\(0x[0-9a-f]+\\): pointer was not allocated by strata");
  char* p = static_cast<char*>(Allocate(64));
  char* big = static_cast<char*>(Allocate(1 << 20));
  EXPECT_DEATH(Deallocate(big + 4096), "not the start of a live large block");
  Deallocate(big);
  // The freed mapping sits in the large cache (double free) or is gone.
  EXPECT_DEATH(Deallocate(big), "double free of a large block|not allocated by strata");
  EXPECT_DEATH(DeallocateSized(p, 4096), "size is larger than the block");
  Deallocate(p);
}

// C23's sized free: the size must be the one requested (or last given to
// realloc). Too large and too small are both reported, on every path: the
// local fast path, a remote free, medium and large blocks.
TEST(StrataDeathTest, SizedFreeWithAWrongSizeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void* small = Allocate(100);
  EXPECT_DEATH(DeallocateSized(small, 8), "free_sized\\(0x[0-9a-f]+\\): size is too small for the block");
  EXPECT_DEATH(DeallocateSized(small, 200), "size is larger than the block");
  void* medium = Allocate(4000);
  EXPECT_DEATH(DeallocateSized(medium, 1), "size is too small for the block");
  void* large = Allocate(1 << 20);
  EXPECT_DEATH(DeallocateSized(large, 4096), "size is too small for the block");
  void* aligned = AllocateAligned(64, 3000);
  EXPECT_DEATH(DeallocateAlignedSized(aligned, 100, 64), "size is too small for the block");
  EXPECT_DEATH(DeallocateAlignedSized(aligned, 3000, 24), "alignment is not a power of two");
  // A block another thread frees goes through the remote path's check.
  EXPECT_DEATH(
      {
        std::thread t([small] { DeallocateSized(small, 8); });
        t.join();
      },
      "size is too small for the block");
  DeallocateSized(small, 100);
  DeallocateSized(medium, 4000);
  DeallocateSized(large, 1 << 20);
  DeallocateAlignedSized(aligned, 3000, 64);
}

// Every size that a correct program passes is accepted: each request size,
// the sizes realloc leaves a block in place with, malloc(0), and aligned
// requests rounded up to their alignment.
TEST(StrataTest, SizedFreeAcceptsEveryRequestedSize) {
  for (size_t n = 0; n <= 70000; n += (n < 1100 ? 1 : 61)) {
    void* p = Allocate(n);
    ASSERT_NE(p, nullptr);
    DeallocateSized(p, n);
  }
  for (size_t n : {size_t{70000}, size_t{1} << 20, (size_t{3} << 20) + 5}) {
    void* p = Allocate(n);
    DeallocateSized(p, n);
  }
  // realloc in place: a shrink to just above half keeps the block.
  for (size_t n : {size_t{104}, size_t{4096}, size_t{1} << 20}) {
    void* p = Allocate(n);
    const size_t half = UsableSize(p) / 2 + 1;
    void* q = Reallocate(p, half);
    ASSERT_EQ(q, p) << n;
    DeallocateSized(q, half);
  }
  for (size_t align : {size_t{16}, size_t{64}, size_t{256}, size_t{4096}, size_t{1} << 20}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{8}, size_t{300}, size_t{5000}, size_t{70000}}) {
      void* p = AllocateAligned(align, n);
      ASSERT_NE(p, nullptr);
      DeallocateAlignedSized(p, n, align);
    }
  }
  EXPECT_TRUE(internal::tls_heap->IsValid());
}

TEST(StrataTest, SizedFreeWithAWrongSizeCountedLeavesTheBlockLive) {
  internal::SetErrorMode(internal::ErrorMode::kCount);
  const uint64_t before = internal::ErrorCount();
  auto* p = static_cast<char*>(Allocate(100));
  memset(p, 0x5a, 100);
  DeallocateSized(p, 8);  // ignored: p stays live
  EXPECT_EQ(internal::ErrorCount(), before + 1);
  void* others[64];
  for (void*& o : others) {
    o = Allocate(100);
    EXPECT_NE(o, p);  // never handed out while live
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p[i], 0x5a);
  for (void* o : others) Deallocate(o);
  DeallocateSized(p, 100);
  internal::SetErrorMode(internal::ErrorMode::kAbort);
}

}  // namespace
}  // namespace strata
