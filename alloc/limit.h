// The memory limit (options memory_limit_bytes, memory_limit_mode): a bound
// on strata's footprint, the bytes of its mappings that can hold memory.
//
// What counts: every arena carved from a reservation (256 KiB each, whether
// its pools are resident or purged) until it is unmapped, and each large
// mapping's pages up to the furthest block end it has served. What does not:
// reserved address space never carved, strata's metadata (page map, arena
// records, profile buckets: a few KiB per GiB, listed in the stats), and
// every byte the program maps or allocates other than through strata.
//
// Before a mapping would take the footprint past the limit, the release
// hook gives back what strata's caches hold (empty arenas, the large cache,
// dead threads' memory; near the limit every thread also keeps no spare
// pools, see UnderPressure). Then, if the mapping would still pass it:
//  - soft: the mapping is made anyway; both events are counted;
//  - hard: the mapping is refused, so the allocation fails with ENOMEM
//    (operator new throws std::bad_alloc); the first refusal after each
//    change of the limit prints one line naming it, every one is counted.
// Thread-safety: any thread; the footprint is one atomic counter, charged
// by compare-and-swap before a mapping is made, so concurrent mappings never
// pass a hard limit together, and a charge that does not fit is never seen.
#ifndef STRATA_ALLOC_LIMIT_H_
#define STRATA_ALLOC_LIMIT_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

// Charges `bytes` about to be mapped. False (nothing charged) when a hard
// limit refuses them. May run the release hook: REQUIRES no strata lock held.
// An `optional` mapping (a sampled block's: strata keeps the unsampled
// block instead) is refused silently by any limit it would pass, soft or
// hard: no release, no event, no message.
bool ChargeFootprint(size_t bytes, bool optional = false);
// Takes back a charge: the mapping was unmapped, or could not be made.
void UnchargeFootprint(size_t bytes);
// A charged mapping was made: the peak follows (failed mappings never count).
void NoteMapped();

// True while a limit is set and the footprint is above 7/8 of it: heaps
// then keep no free pools for themselves (CacheBudget).
bool UnderPressure();

// What the soft limit runs before mapping past it; set by the release
// engine (it gives back every cache, as ReleaseNow does, keeping no arenas).
using LimitReleaseFn = void (*)();
void SetLimitReleaseHook(LimitReleaseFn fn);

struct LimitStats {
  uint64_t footprint_bytes;  // charged now
  uint64_t footprint_peak;   // highest charge seen
  uint64_t soft_events;      // mappings that found the soft limit in the way
  uint64_t soft_over;        // of those, mapped although still over after releasing
  uint64_t hard_refusals;    // mappings the hard limit refused
};
LimitStats GetLimitStats();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_LIMIT_H_
