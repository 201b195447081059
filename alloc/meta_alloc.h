// Type-stable metadata memory for strata's own bookkeeping objects (heaps,
// arena records). Memory handed out here is never returned to the OS: its
// owners recycle objects through their own free stacks, which is what makes
// lock-free traversal of those stacks safe (see threading/tagged_stack.h).
#ifndef STRATA_ALLOC_META_ALLOC_H_
#define STRATA_ALLOC_META_ALLOC_H_

#include <cstddef>

namespace strata::internal {

// Returns zeroed memory of `size` bytes aligned to 64, or nullptr if the OS
// refuses. Thread-safety: any thread; takes a spin lock (rare slow path: new
// threads and new arenas only).
void* MetaAllocate(size_t size);

// fork(): held across fork so the child never inherits a half-done refill.
void LockMetaForFork();
void UnlockMetaForFork();

// Bytes of metadata mapped so far (statistics).
size_t MetaBytesMapped();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_META_ALLOC_H_
