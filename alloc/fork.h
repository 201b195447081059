// Fork safety. strata's only locks (the arena reservation lock and the
// metadata lock) are taken before fork() and released after it in both
// parent and child, so a child forked while another thread was mapping
// memory starts with consistent, unlocked structures. Everything else is
// lock-free: a CAS either happened before the fork or did not.
//
// What the child does not get back: heaps of the parent's other threads,
// which do not exist in the child. Their caches may have been mid-update at
// the fork, so the child never touches them; their memory stays mapped (and
// blocks of theirs that the child frees wait in their queues). The forking
// thread's own heap is consistent and keeps serving the child.
#ifndef STRATA_ALLOC_FORK_H_
#define STRATA_ALLOC_FORK_H_

namespace strata::internal {

// Registers the pthread_atfork handlers once per process. Safe to call from
// an allocation slow path (pthread_atfork may allocate: the caller's heap is
// usable by then). Thread-safety: any thread.
void InstallForkHandlers();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FORK_H_
