// Cheap thread identity: the address of a thread-local byte. One
// %fs-relative LEA with the initial-exec TLS model, no syscall, no
// allocation; unique among live threads (an exited thread's id may be reused
// by a later thread, like a pthread_t). Never zero.
#ifndef STRATA_THREADING_THREAD_ID_H_
#define STRATA_THREADING_THREAD_ID_H_

#include <cstdint>

namespace strata::threading {

namespace thread_id_internal {
inline thread_local char tls_anchor __attribute__((tls_model("initial-exec")));
}  // namespace thread_id_internal

inline uintptr_t CurrentThreadId() {
  return reinterpret_cast<uintptr_t>(&thread_id_internal::tls_anchor);
}

}  // namespace strata::threading

#endif  // STRATA_THREADING_THREAD_ID_H_
