// Private to the files of the thread cache (heap.cc, heap_release.cc,
// remote_free.cc, heap_registry.cc): the bit helpers they share. Not a
// public header of the heap target.
#ifndef STRATA_ALLOC_HEAP_INTERNAL_H_
#define STRATA_ALLOC_HEAP_INTERNAL_H_

#include <cstdint>

namespace strata::internal::heap_internal {

// Index of the lowest pool starting n consecutive free pools, or -1.
inline int FindRun(uint64_t mask, uint32_t n) {
  uint64_t m = mask;
  for (uint32_t i = 1; i < n && m != 0; ++i) m &= mask >> i;
  return m == 0 ? -1 : __builtin_ctzll(m);
}

// The mask of pools [start, start + n).
inline uint64_t RunBits(uint32_t n, uint32_t start) {
  return (n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1) << start;
}

}  // namespace strata::internal::heap_internal

#endif  // STRATA_ALLOC_HEAP_INTERNAL_H_
