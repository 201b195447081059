// Compile-time constants of strata's memory layout, in one place. Derived
// values are computed here and tied together by static_assert
// (style: snmalloc sizeclassconfig.h, tcmalloc common.h).
#ifndef STRATA_ALLOC_CONFIG_H_
#define STRATA_ALLOC_CONFIG_H_

#include <cstddef>
#include <cstdint>

// Every function between a program's call and the heap profiler's stack
// capture (malloc, operator new, strata::Allocate, their slow halves) lives
// in one section, so that a captured stack starts at the program's frame:
// stack_trace.cc skips the frames whose address lies in it (the way
// gperftools strips its "google_malloc" section). A function with a section
// of its own is never split into hot and cold parts, so all of it is there.
// The free side's entry points (free, delete, strata::Deallocate, ...) are
// there too: a signal handler's report looks for the section among the
// frames it interrupted (reentry.h).
#define STRATA_ENTRY __attribute__((section("strata_entry")))
// The same for an inline function of a header (one copy per link, in a
// COMDAT group): GCC refuses to put COMDAT and plain functions of one
// object in one section, so they have a section of their own, which
// stack_trace.cc treats as the entry section. The free path's uncommon
// steps (free_path.h) are there, so that a guarded block's free captures
// its stack from the program's frame on (guarded.h).
#define STRATA_ENTRY_INLINE __attribute__((section("strata_entry_inline")))
// A fast path's entry point (malloc, free, operator new and delete): in the
// entry section, starting a cache line, so that where the linker puts it
// does not decide how many lines (and decoded-instruction windows) its
// dozen instructions span.
#define STRATA_HOT_ENTRY STRATA_ENTRY __attribute__((aligned(64)))

namespace strata::internal {

// A pool: one OS page holding blocks of a single size class.
inline constexpr size_t kPoolShift = 12;
inline constexpr size_t kPoolSize = size_t{1} << kPoolShift;  // 4 KiB

// An arena: 64 pools, aligned to its size so that masking a pointer finds the
// arena header. Pools 0 and 1 hold the header and the pool descriptors
// (128 bytes each, arena.h), pools 2..63 hold blocks.
inline constexpr size_t kArenaShift = 18;
inline constexpr size_t kArenaSize = size_t{1} << kArenaShift;  // 256 KiB
inline constexpr size_t kPoolsPerArena = kArenaSize / kPoolSize;
inline constexpr size_t kFirstUsablePool = 2;
inline constexpr size_t kUsablePools = kPoolsPerArena - kFirstUsablePool;

// Small classes: 8..512 bytes in steps of 8 (the seed's pymalloc classes).
inline constexpr size_t kSmallStep = 8;
inline constexpr size_t kMaxSmallSize = 512;
inline constexpr size_t kNumSmallClasses = kMaxSmallSize / kSmallStep;  // 64

// Medium classes: above 512 B up to kMaxMediumSize, eight classes per
// doubling (so a request wastes at most 1/9 of its block to rounding), each
// carved from a run of 1..kMaxRunPools contiguous pools inside an arena.
inline constexpr size_t kMediumStepsPerDoubling = 8;
inline constexpr size_t kMaxMediumSize = size_t{64} << 10;  // 64 KiB
inline constexpr size_t kMaxRunPools = kMaxMediumSize / kPoolSize;  // 16

// Everything above kMaxMediumSize is "large": mapped directly from the OS,
// aligned to kArenaSize, with a header in front of the block.
inline constexpr size_t kLargeAlignment = kArenaSize;
inline constexpr size_t kLargeHeaderSize = 64;

// Arenas are reserved from the OS this many at a time to save syscalls.
inline constexpr size_t kArenasPerReservation = 16;  // 4 MiB

// Large mappings kept for reuse after free (so repeated large allocations do
// not fault in fresh pages every time); the bytes they may hold in all are
// the large_cache_bytes option.
inline constexpr size_t kLargeCacheSlots = 16;

// Strictest alignment a plain allocation of at least 16 bytes guarantees.
inline constexpr size_t kMaxNaturalAlign = 16;

// The largest request that is ever served. PTRDIFF_MAX bounds every object in
// C; anything above, or whose page rounding would overflow, is refused.
inline constexpr size_t kMaxRequest = static_cast<size_t>(PTRDIFF_MAX) - kLargeAlignment;
// x86-64's user address space (4-level paging; strata never asks for more).
inline constexpr int kAddressBits = 47;
// No mapping larger than x86-64's 47-bit user address space can be made.
inline constexpr size_t kMaxMapping = size_t{1} << kAddressBits;

inline constexpr size_t kCacheLine = 64;

static_assert(kPoolsPerArena == 64, "arena bitmap is one 64-bit word");
static_assert(kMaxSmallSize % kSmallStep == 0);
static_assert(kMaxMediumSize % kPoolSize == 0);
static_assert(kMaxRunPools <= kUsablePools);
static_assert(kLargeHeaderSize >= kMaxNaturalAlign && kLargeHeaderSize % kMaxNaturalAlign == 0);

// Remote-free batch-size histogram (heap counters, and the public
// Stats::batch_histogram, which takes its size from here): bucket b counts
// batches of [2^b, 2^(b+1)) blocks, the last bucket everything larger.
inline constexpr size_t kBatchBuckets = 10;

}  // namespace strata::internal

#endif  // STRATA_ALLOC_CONFIG_H_
