// The free slow path: everything the inlined fast path (fast_path.h) does
// not finish. Null and foreign pointers, large blocks, remote frees, blocks
// of arenas not in the heap's cache, sized-free mismatches, and suspected
// double frees are resolved, validated (ValidateBlock, arena.h) and either
// freed or reported here. realloc and malloc_usable_size share Resolve.
#ifndef STRATA_ALLOC_FREE_SLOW_H_
#define STRATA_ALLOC_FREE_SLOW_H_

#include <cstddef>

#include "alloc/arena.h"
#include "alloc/large.h"

namespace strata::internal {

// What a pointer resolves to, after validation.
struct Resolved {
  ArenaHeader* arena;  // null for a large block (or when invalid)
  PoolDesc* run;       // arena only
  LargeHeader* large;  // large only
  bool ok() const { return arena != nullptr || large != nullptr; }
};

// Resolves p (non-null). An invalid pointer is reported (abort, or in count
// mode a result with ok() false, and the caller does nothing). `op` names
// the caller.
Resolved Resolve(const void* p, const char* op);

// Frees p, which Resolve() accepted, locally or to its owner.
void FreeResolved(const Resolved& r, void* p, const char* op);

// The usable size of a block Resolve() accepted.
size_t UsableResolved(const Resolved& r);

// True when block p, which Resolve() accepted, is free: a small block that
// holds the words of a free block (on a list or travelling; chance for
// program data: 2^-40 or less), or a large block that is not live (in the
// large cache). realloc's in-place paths, which free nothing, check it.
bool LooksAlreadyFree(const Resolved& r, const void* p);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FREE_SLOW_H_
