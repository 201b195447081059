// strata and POSIX thread cancellation. Deferred cancellation (the
// default) acts at cancellation points; the one strata's code reaches is
// write(2) in the API's output to a descriptor the program passes
// (os::WriteAllCancellable: statistics, heap profiles). Everything else
// strata calls is no cancellation point (raw syscall(2)s, mmap, madvise,
// sched_yield), so no allocation or free is ever cancelled half-way. A
// thread cancelled in such a write unwinds without running C++ destructors
// (strata is compiled without exceptions): what the writer must undo (a
// scratch mapping, a file it opened) is registered with OnCancel. No strata
// lock is held there (ARCHITECTURE.md, "Locks, blocking calls and
// cancellation").
#ifndef STRATA_ALLOC_CANCEL_H_
#define STRATA_ALLOC_CANCEL_H_

#include <pthread.h>

namespace strata::internal {

// Runs fn(); if the thread is cancelled inside it, cleanup(arg) runs while
// the thread unwinds. Never allocates: glibc keeps the registration in
// this frame. (Without exceptions, pthread_cleanup_push is glibc's setjmp
// form: fn must not return through a longjmp.)
template <typename Fn>
void OnCancel(void (*cleanup)(void*), void* arg, Fn&& fn) {
  pthread_cleanup_push(cleanup, arg);
  fn();
  pthread_cleanup_pop(0);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_CANCEL_H_
