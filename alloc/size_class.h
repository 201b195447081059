// Size classes: request size -> class index -> block size, as constexpr
// tables. Class 0 is unused; classes 1..64 are the small classes 8..512 B by
// 8; the medium classes that follow grow eight to a doubling up to
// kMaxMediumSize. Each class has the number of pools in its run (1 for small
// classes) chosen so that the tail of the run wasted is at most 1/16 of it.
#ifndef STRATA_ALLOC_SIZE_CLASS_H_
#define STRATA_ALLOC_SIZE_CLASS_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"

namespace strata::internal {

struct ClassInfo {
  uint32_t size;       // block size in bytes
  uint32_t run_pools;  // pools per run: run_pools * kPoolSize bytes
  uint32_t blocks;     // blocks per run = run_pools * kPoolSize / size
  uint32_t align;      // guaranteed alignment of every block of the class
  uint32_t div_magic;  // ceil(2^32 / size): offset / size == (offset * div_magic) >> 32
                       // exactly for every offset < 2^16 (a run is at most 64 KiB)
};

namespace size_class_internal {

inline constexpr size_t kNumMediumClasses =
    kMediumStepsPerDoubling * (/*log2(64K/512)=*/7);

constexpr uint32_t AlignOf(uint32_t size) {
  // Largest power of two <= 16 that divides size (the C11 rule for an object
  // of that size); blocks sit at multiples of their size from a page start.
  uint32_t a = size & (~size + 1);  // lowest set bit
  return a > kMaxNaturalAlign ? kMaxNaturalAlign : a;
}

constexpr uint32_t RunPoolsFor(uint32_t size) {
  // The smallest run of 4 KiB pools holding at least min_blocks blocks with
  // tail waste <= 1/16: one pool (the seed's pools) up to 128 B, two to four
  // pools for the small classes above, more for medium ones. Enough blocks
  // per run that a refill gets a batch: a sleeping run wakes with a quarter
  // of its blocks free, and one-pool runs of 8..16 blocks woke with 2..4
  // (larson: 15.5M refills, nearly one per wake); 4 blocks per run sent
  // most allocations of 513..1024 B to the slow path.
  const uint32_t min_blocks = size <= 1024 ? 32 : (size <= 4096 ? 16 : (size <= 16384 ? 4 : 1));
  for (uint32_t pools = 1; pools <= kMaxRunPools; ++pools) {
    const uint32_t bytes = pools * kPoolSize;
    const uint32_t blocks = bytes / size;
    if (blocks >= min_blocks && (bytes - blocks * size) * 16 <= bytes) return pools;
  }
  // No run of up to kMaxRunPools holds min_blocks: the largest with low waste.
  for (uint32_t pools = kMaxRunPools; pools >= 1; --pools) {
    const uint32_t bytes = pools * kPoolSize;
    const uint32_t blocks = bytes / size;
    if (blocks >= 1 && (bytes - blocks * size) * 16 <= bytes) return pools;
  }
  return 0;  // caught by static_assert below
}

constexpr auto MakeClasses() {
  std::array<ClassInfo, 1 + kNumSmallClasses + kNumMediumClasses> c{};
  size_t i = 1;
  for (uint32_t s = kSmallStep; s <= kMaxSmallSize; s += kSmallStep) c[i++] = {s, 0, 0, 0, 0};
  for (uint32_t base = kMaxSmallSize; base < kMaxMediumSize; base *= 2) {
    const uint32_t step = base / kMediumStepsPerDoubling;
    for (uint32_t k = 1; k <= kMediumStepsPerDoubling; ++k) c[i++] = {base + k * step, 0, 0, 0, 0};
  }
  for (size_t j = 1; j < c.size(); ++j) {
    c[j].run_pools = RunPoolsFor(c[j].size);
    c[j].blocks = c[j].run_pools ? c[j].run_pools * kPoolSize / c[j].size : 0;
    c[j].align = AlignOf(c[j].size);
    c[j].div_magic = static_cast<uint32_t>(((uint64_t{1} << 32) + c[j].size - 1) / c[j].size);
  }
  return c;
}

}  // namespace size_class_internal

inline constexpr auto kClasses = size_class_internal::MakeClasses();
inline constexpr size_t kNumClasses = kClasses.size();  // including unused class 0
inline constexpr size_t kFirstMediumClass = 1 + kNumSmallClasses;

// Two lookup tables: by 8-byte granule up to 1 KiB (the hot range), then by
// 128-byte granule up to kMaxMediumSize. Medium classes above 1 KiB are
// multiples of 128, so the coarse table is exact.
inline constexpr size_t kLowTableMax = 1024;
inline constexpr size_t kHighGranule = 128;

namespace size_class_internal {

constexpr size_t FirstClassAtLeast(size_t n) {
  size_t c = 1;
  while (c < kNumClasses && kClasses[c].size < n) ++c;
  return c;
}

constexpr auto MakeLowTable() {
  std::array<uint8_t, kLowTableMax / kSmallStep + 1> t{};
  for (size_t g = 0; g < t.size(); ++g) t[g] = static_cast<uint8_t>(FirstClassAtLeast(g * kSmallStep));
  return t;
}

constexpr auto MakeHighTable() {
  std::array<uint8_t, kMaxMediumSize / kHighGranule + 1> t{};
  for (size_t g = 0; g < t.size(); ++g) t[g] = static_cast<uint8_t>(FirstClassAtLeast(g * kHighGranule));
  return t;
}

}  // namespace size_class_internal

inline constexpr auto kLowClassTable = size_class_internal::MakeLowTable();
inline constexpr auto kHighClassTable = size_class_internal::MakeHighTable();

// The slots [first, end) of kLowClassTable holding each class (a class's
// slots are contiguous: the table never decreases); empty above it.
struct LowSlots {
  uint8_t first = 0;
  uint8_t end = 0;
};

namespace size_class_internal {
constexpr auto MakeLowSlots() {
  std::array<LowSlots, kNumClasses> s{};
  for (size_t k = 0; k < kLowClassTable.size(); ++k) {
    LowSlots& c = s[kLowClassTable[k]];
    if (c.end == 0) c.first = static_cast<uint8_t>(k);
    c.end = static_cast<uint8_t>(k + 1);
  }
  return s;
}
constexpr bool LowSlotsAreContiguous() {
  for (size_t k = 1; k < kLowClassTable.size(); ++k) {
    if (kLowClassTable[k] < kLowClassTable[k - 1]) return false;
  }
  return true;
}
}  // namespace size_class_internal

inline constexpr auto kLowSlots = size_class_internal::MakeLowSlots();
static_assert(size_class_internal::LowSlotsAreContiguous());
static_assert(kLowClassTable.size() - 1 <= 255, "slots fit a byte");

// Returns the class serving n bytes. REQUIRES: n <= kMaxMediumSize.
inline size_t SizeToClass(size_t n) {
  if (n <= kLowTableMax) return kLowClassTable[(n + kSmallStep - 1) / kSmallStep];
  return kHighClassTable[(n + kHighGranule - 1) / kHighGranule];
}

inline constexpr size_t ClassSize(size_t cls) { return kClasses[cls].size; }

// Returns offset / ClassSize(cls) without a divide. REQUIRES: offset < 2^16.
inline constexpr uint32_t BlockIndex(size_t cls, uint32_t offset) {
  return static_cast<uint32_t>((uint64_t{offset} * kClasses[cls].div_magic) >> 32);
}

// With magic = ceil(2^32 / size) and offset = q * size + r inside a run of
// at most 64 KiB, offset * magic == q * 2^32 + q * e + r * magic, where
// e = size * magic - 2^32 < size; q * e < 2^16 <= magic, and the low word
// never wraps. So the low word is below magic exactly when r == 0: one
// multiply gives both the block index (high word) and "is a block start"
// (low word), which the free fast path uses. Checked below for every class.
inline constexpr bool IsBlockStart(uint64_t product, uint32_t magic) {
  return static_cast<uint32_t>(product) < magic;
}

// ---- Invariants, checked at compile time --------------------------------
namespace size_class_internal {

constexpr bool ClassesAreValid() {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const ClassInfo& k = kClasses[c];
    if (k.run_pools == 0 || k.run_pools > kMaxRunPools || k.blocks == 0) return false;
    if (c > 1 && k.size <= kClasses[c - 1].size) return false;       // strictly increasing
    if (k.size % kSmallStep != 0) return false;                       // 8-byte granules
    if (c >= kFirstMediumClass && k.size % 64 != 0) return false;     // medium: 64-aligned
    const size_t run = size_t{k.run_pools} * kPoolSize;
    if (c >= kFirstMediumClass && (run - size_t{k.blocks} * k.size) * 16 > run) return false;
    // Rounding waste: the largest request a class serves exclusively is just
    // above the previous class; it wastes < 1/8 of the block (medium only;
    // small classes waste < 8 bytes).
    if (c > kFirstMediumClass) {
      const size_t prev = kClasses[c - 1].size;
      if ((k.size - (prev + 1)) * 8 >= k.size) return false;
    }
  }
  return true;
}

// Every size 0..kMaxMediumSize maps to the smallest class that holds it.
constexpr bool TablesAreExact() {
  size_t expect = 1;
  for (size_t n = 0; n <= kMaxMediumSize; ++n) {
    while (kClasses[expect].size < n) ++expect;
    const size_t c = n <= kLowTableMax ? kLowClassTable[(n + 7) / 8]
                                       : kHighClassTable[(n + kHighGranule - 1) / kHighGranule];
    if (c != expect) return false;
  }
  return true;
}

}  // namespace size_class_internal

static_assert(kNumClasses == 1 + 64 + 56, "64 small + 56 medium classes");
static_assert(kNumClasses <= 255, "class index fits a byte");
static_assert(kClasses[1].size == 8 && kClasses[kNumSmallClasses].size == kMaxSmallSize);
static_assert(kClasses[kNumClasses - 1].size == kMaxMediumSize);
static_assert(size_class_internal::ClassesAreValid());
static_assert(size_class_internal::TablesAreExact());

namespace size_class_internal {
// The magic division is exact for every offset inside a run.
constexpr bool MagicDivisionIsExact() {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const uint32_t size = kClasses[c].size;
    const uint32_t run = kClasses[c].run_pools * static_cast<uint32_t>(kPoolSize);
    for (uint32_t q = 0; q * size < run; ++q) {
      // Check both ends of each quotient's range: q*size and q*size + size-1.
      if (BlockIndex(c, q * size) != q) return false;
      const uint32_t last = q * size + size - 1 < run ? q * size + size - 1 : run - 1;
      if (BlockIndex(c, last) != q) return false;
    }
  }
  return true;
}
}  // namespace size_class_internal
namespace size_class_internal {
// IsBlockStart() is exact: true at every block start, false one byte after
// it (the smallest low word for a non-start) and at the block's last byte
// (the largest, where a wrap would show), for every block of every class.
constexpr bool BlockStartTestIsExact() {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const uint32_t size = kClasses[c].size;
    const uint32_t magic = kClasses[c].div_magic;
    const uint32_t run = kClasses[c].run_pools * static_cast<uint32_t>(kPoolSize);
    for (uint32_t start = 0; start < run; start += size) {
      if (!IsBlockStart(uint64_t{start} * magic, magic)) return false;
      if (IsBlockStart(uint64_t{start + 1} * magic, magic)) return false;
      if (start + size - 1 < run && IsBlockStart(uint64_t{start + size - 1} * magic, magic)) {
        return false;
      }
    }
  }
  return true;
}
}  // namespace size_class_internal
// ---- The sized-free contract ---------------------------------------------
//
// free_sized(p, n) and sized operator delete pass n, the size p was
// requested with (C23), or last resized to by realloc. A block of `usable`
// bytes holds such an n only when usable / 2 - 4 <= n <= usable:
//  - malloc(n) picks the smallest class >= n, and each class is at most
//    twice the one below it (checked below);
//  - realloc keeps a block in place only while the new size is above half
//    of it (strata.cc, large.cc);
//  - the aligned entry points pass n rounded up to the alignment (up to a
//    page), and an aligned class is at most the next power of two, itself a
//    class (checked below);
//  - the 4 bytes of slack let the smallest class (8 B) take every request
//    of 0..8 bytes, and cost one less instruction than an exception for it.
// One unsigned compare: 2n + 8 - usable wraps when 2n + 8 < usable, and
// n > usable makes it exceed usable + 8. (2n wraps only for n >= 2^63, a
// size no request can have.)
inline bool SizedFreeFits(size_t usable, size_t n) { return 2 * n + 8 - usable <= usable + 8; }

namespace size_class_internal {
constexpr bool ClassesAtMostDouble() {
  for (size_t c = 2; c < kNumClasses; ++c) {
    if (kClasses[c].size > 2 * kClasses[c - 1].size) return false;
  }
  for (size_t p = kSmallStep; p <= kMaxMediumSize; p *= 2) {
    if (kClasses[FirstClassAtLeast(p)].size != p) return false;  // powers of two are classes
  }
  return true;
}
}  // namespace size_class_internal
static_assert(size_class_internal::ClassesAtMostDouble());

static_assert(kMaxMediumSize <= (size_t{1} << 16), "magic division covers 64 KiB runs");
static_assert(size_class_internal::MagicDivisionIsExact());
static_assert(size_class_internal::BlockStartTestIsExact());

}  // namespace strata::internal

#endif  // STRATA_ALLOC_SIZE_CLASS_H_
