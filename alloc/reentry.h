// Re-entry from a signal handler: malloc is not async-signal-safe (in strata
// as in glibc), but strata tells a handler that re-entered it from the
// program's own misuse, and never spins on a lock its own thread holds
// (error.h, ReportReentry). The fast paths carry nothing for it; the slow
// paths that change a thread's own state (a refill, a list overflowing, a
// remote free's batch) hold a SlowPathGuard, which marks the thread as
// inside strata by the frame of the outermost guarded call.
//
// A guard met while another is active on the thread is either a slow path
// nested in another (legal, and rare: a drain forwarding blocks as remote
// frees) or a signal handler that interrupted the outer one: the stack
// says which (a signal frame between the two). Only then, and before a
// report, is the stack walked.
#ifndef STRATA_ALLOC_REENTRY_H_
#define STRATA_ALLOC_REENTRY_H_

#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"

namespace strata::internal {

namespace reentry_internal {
// The frame address of the thread's outermost guarded call, or 0. Written
// by the thread's own guards only (a signal handler's guard nests inside).
inline thread_local uintptr_t tls_outer_frame __attribute__((tls_model("initial-exec"))) = 0;

// A guard met inside another: reports the re-entry (and aborts) when a
// signal frame lies between this call and the outer guard's frame.
ABSL_ATTRIBUTE_NOINLINE void CheckNested(uintptr_t outer_frame);
}  // namespace reentry_internal

// True when the calling thread runs a signal handler that interrupted
// strata: an entry point (stack_trace.h) or a guarded slow path. Slow (it
// walks the stack): for the moment before an error is reported.
bool InterruptedStrataBySignal();

// Thread-safety: a local object of the thread's slow path.
class SlowPathGuard {
 public:
  ABSL_ATTRIBUTE_ALWAYS_INLINE SlowPathGuard() {
    const uintptr_t outer = reentry_internal::tls_outer_frame;
    if (ABSL_PREDICT_FALSE(outer != 0)) {
      reentry_internal::CheckNested(outer);
      return;  // nested: the outer guard keeps the mark
    }
    outermost_ = true;
    reentry_internal::tls_outer_frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE ~SlowPathGuard() {
    if (outermost_) reentry_internal::tls_outer_frame = 0;
  }
  SlowPathGuard(const SlowPathGuard&) = delete;
  SlowPathGuard& operator=(const SlowPathGuard&) = delete;

 private:
  bool outermost_ = false;
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_REENTRY_H_
