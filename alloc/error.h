// Reports misuse of the allocator (invalid or double free, wrong size).
// Prints one line to stderr naming the address and the error, then aborts.
// Never allocates. (A count-instead-of-abort mode arrives with the options
// registry; the single entry point here is where it will be decided.)
#ifndef STRATA_ALLOC_ERROR_H_
#define STRATA_ALLOC_ERROR_H_

#include "absl/base/attributes.h"

namespace strata::internal {

// `what` is a fixed message such as "double free".
ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void ReportInvalidFree(const void* p, const char* what,
                                                                   const char* op);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ERROR_H_
