#include "alloc/reentry.h"

#include "alloc/error.h"
#include "alloc/stack_trace.h"

namespace strata::internal {

namespace reentry_internal {

void CheckNested(uintptr_t outer_frame) {
  if (SignalFrameWithin(outer_frame)) ReportReentry();
}

}  // namespace reentry_internal

bool InterruptedStrataBySignal() {
  const uintptr_t outer = reentry_internal::tls_outer_frame;
  return (outer != 0 && SignalFrameWithin(outer)) || InSignalHandlerThatInterruptedStrata();
}

}  // namespace strata::internal
