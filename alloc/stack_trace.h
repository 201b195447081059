// Stack capture for the heap profiler, without malloc and without locks of
// strata's: libgcc's unwinder walks the .eh_frame tables (every x86-64 object
// has them unless built with -fno-asynchronous-unwind-tables), finding each
// object's tables through dl_iterate_phdr. Frame pointers are not needed.
#ifndef STRATA_ALLOC_STACK_TRACE_H_
#define STRATA_ALLOC_STACK_TRACE_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

inline constexpr size_t kMaxStackFrames = 48;

// Fills pcs with the return addresses of the calling thread's frames, the
// innermost program frame first: the frames of strata's entry points and of
// its sampler (section strata_entry, config.h; this function is one of them)
// are left out. Returns how many were written (at most max).
size_t CaptureStack(uintptr_t* pcs, size_t max);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_STACK_TRACE_H_
