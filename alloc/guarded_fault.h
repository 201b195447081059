// The guarded region's fault handler and its reports (guarded.h). A SIGSEGV
// whose address lies in the region is strata's: one `strata:` line names
// the kind (use-after-free read or write, overflow, underflow), the address,
// the block's size and the offset, then come the faulting access's stack,
// the allocation's and (after a free) the free's, each frame named by
// dladdr where the binary has a symbol; then the handler the program had
// installed before strata's runs, and the process dies by SIGSEGV. Any
// other fault goes to that handler unchanged (or to the default action).
// Everything here runs in a signal handler: raw writes, no malloc, no lock.
#ifndef STRATA_ALLOC_GUARDED_FAULT_H_
#define STRATA_ALLOC_GUARDED_FAULT_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

// Installs the handler on SIGSEGV, keeping the action in force as the one
// to chain to. Once per process (later calls return at once); called when
// the guarded region is reserved. Thread-safety: any thread.
void InstallGuardedFaultHandler();

// Writes "strata:   <title> by thread <tid>:" and then one line per frame
// ("strata:     #i 0xPC function+0xOFF (object)") to fd. Never allocates.
void WriteGuardedStack(int fd, const char* title, uint32_t tid, const uintptr_t* pcs, size_t depth);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_GUARDED_FAULT_H_
