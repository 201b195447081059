// The hook for memory strata did not hand out. Frees of pointers strata's
// page map does not know go first to this hook when one is installed: the
// malloc override installs one (start-up step 2, init.h) that hands glibc's
// own blocks back to glibc (foreign.h holds that policy). The hook returns
// true when it took care of p; false lets the free be reported as invalid
// (error.h). Without the override there is no hook: every such free is
// invalid. Here, below the free path, so that the free path (free_path.h) can call what a
// higher layer installs.
#ifndef STRATA_ALLOC_FOREIGN_HOOK_H_
#define STRATA_ALLOC_FOREIGN_HOOK_H_

#include <cstdint>

namespace strata::internal {

using ForeignFreeHook = bool (*)(void* p);
void SetForeignFreeHook(ForeignFreeHook hook);
ForeignFreeHook GetForeignFreeHook();

// Counts a free the hook returned to glibc. Statistics.
void CountForeignFree();
uint64_t ForeignFreesHandedBack();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FOREIGN_HOOK_H_
