// operator new's failure protocol ([new.delete.single]): when an allocation
// fails, call the program's new-handler and retry, until it succeeds or no
// handler is installed; then throw std::bad_alloc, or return null for the
// nothrow forms.
//
// The C++ runtime this needs (std::get_new_handler, throwing
// std::bad_alloc, catching a handler's exception) is the program's:
// libstrata.so does not link libstdc++, so that a C program preloading it
// does not load libstdc++ (about 1 MiB of resident memory) for a protocol
// only C++ code uses. A C++ program has its runtime loaded with it, and
// libstrata.so reaches it through weak references. In a C program that
// loaded C++ code later (a shared libstdc++, or a plugin with its own
// static one), the failure is handed to that runtime's own operator new,
// found by name: its new-handler runs and its std::bad_alloc is thrown.
// Linked into a program (the static archive), the references are strong.
#ifndef STRATA_ALLOC_NEW_FAILURE_H_
#define STRATA_ALLOC_NEW_FAILURE_H_

#include <cstddef>

#include "absl/base/attributes.h"

namespace strata::internal {

// An allocation of `size` bytes (aligned to `align`, or the default when 0)
// failed: runs the new-handler loop. Returns the block once a retry
// succeeds. Otherwise throws std::bad_alloc, or returns nullptr when
// `nothrow` (also when the handler throws: the nothrow forms never throw).
// With no C++ runtime in the process at all (nothing could catch the
// exception), a throwing form prints one line and aborts.
ABSL_ATTRIBUTE_NOINLINE void* NewFailed(size_t size, size_t align, bool nothrow);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_NEW_FAILURE_H_
