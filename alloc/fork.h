// Fork safety. Every lock strata has (the stats reader's lock, the release
// engine's pass lock, the recovery scan's lock, each heap's metadata lock, the arena reservation lock, the metadata allocator's
// lock and the options' text lock) is taken before fork(), in that order,
// and released after it in both parent and child, so a child forked while
// another thread was inside strata starts with consistent, unlocked
// structures. Everything else is lock-free: a CAS either happened before the
// fork or did not.
//
// What the child does not get back: the fast-path state of the parent's
// other threads, which do not exist in the child. Their free lists may have
// been mid-update at the fork, so the child never allocates from their runs;
// their memory stays mapped (blocks of theirs that the child frees wait in
// their queues), though the release engine may still purge their free pools,
// which are guarded by the heap locks; their heaps are never recovered as
// exited threads' (heap_registry.h: their owner words are unbound in the
// child). The forking thread's own heap is consistent and keeps serving the
// child, bound to its tid in the child. The background release thread is
// not running in the child; it starts again when next needed.
#ifndef STRATA_ALLOC_FORK_H_
#define STRATA_ALLOC_FORK_H_

namespace strata::internal {

// Registers the pthread_atfork handlers once per process (pthread_atfork
// may allocate: call it where strata can serve an allocation). Thread-safety:
// any thread.
void InstallForkHandlers();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FORK_H_
