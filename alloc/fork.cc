#include "alloc/fork.h"

#include <pthread.h>

#include "alloc/arena.h"
#include "alloc/guarded.h"
#include "alloc/heap.h"
#include "alloc/heap_profile.h"
#include "alloc/mapping_moves.h"
#include "alloc/meta_alloc.h"
#include "alloc/options.h"
#include "alloc/release.h"

namespace strata::internal {
namespace {

// Lock order (see fork.h): the order in which strata's paths nest them.
// The stats reader's lock is taken before any other (GetStats takes heap
// locks inside it).
// The pass lock is taken before heap locks by the release engine; a heap
// lock is never held while the reservation lock is taken (NewRun maps
// memory first), and the reservation path nests the metadata lock. The heap
// profile's lock is taken with no other strata lock held, and nests the
// metadata lock (new buckets). The guarded slots' lock is a leaf (only
// mprotect and madvise run under it).
void Prepare() {
  // First: a stats reader holds it while it waits for moves to end, and a
  // move may wait for the reservation or metadata lock (mapping_moves.h).
  LockMovesForFork();
  LockReleaseForFork();
  LockAllHeapsForFork();
  LockArenaSourceForFork();
  LockProfileForFork();
  LockGuardedForFork();
  LockMetaForFork();
  options_internal::LockForFork();
}

void Unlock(bool in_child) {
  options_internal::UnlockForFork();
  UnlockMetaForFork();
  UnlockGuardedForFork();
  UnlockProfileForFork();
  UnlockArenaSourceForFork();
  UnlockAllHeapsForFork(in_child);
  UnlockReleaseForFork(in_child);
  UnlockMovesForFork(in_child);
}

void Parent() { Unlock(/*in_child=*/false); }
void Child() { Unlock(/*in_child=*/true); }

}  // namespace

void InstallForkHandlers() {
  pthread_atfork(&Prepare, &Parent, &Child);
}

}  // namespace strata::internal
