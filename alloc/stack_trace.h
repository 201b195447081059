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

// In a signal handler: fills pcs with the frames the signal interrupted,
// the interrupted instruction's first (the frames of the handler and the
// kernel's signal frame are left out). Returns how many (at most max; 0
// when no signal frame is found). Never allocates.
size_t CaptureInterruptedStack(uintptr_t* pcs, size_t max);

// True when the calling thread runs a signal handler that interrupted one
// of strata's entry points (or a slow path below one): below the kernel's
// signal frame, the interrupted frames include one in section
// strata_entry. Slow (it unwinds the whole stack): for the rare moment
// strata is about to report an error. Never allocates.
bool InSignalHandlerThatInterruptedStrata();

// True when, walking from the caller outward, a frame interrupted by a
// signal comes before the walk passes `frame` (a frame address of an outer
// call, __builtin_frame_address): that call was interrupted by the signal
// whose handler runs now. Slow, never allocates.
bool SignalFrameWithin(uintptr_t frame);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_STACK_TRACE_H_
