#include "alloc/fork.h"

#include <pthread.h>

#include <atomic>

#include "alloc/arena.h"
#include "alloc/meta_alloc.h"

namespace strata::internal {
namespace {

// Relaxed: only decides who registers; registration itself is idempotent in
// effect because exactly one caller wins the exchange.
std::atomic<bool> g_installed{false};

// Lock order: reservation, then metadata, as the reservation path nests them
// (CarveFreshLocked calls MetaAllocate while holding the reservation lock).
void Prepare() {
  LockArenaSourceForFork();
  LockMetaForFork();
}

void Release() {
  UnlockMetaForFork();
  UnlockArenaSourceForFork();
}

}  // namespace

void InstallForkHandlers() {
  if (g_installed.exchange(true, std::memory_order_relaxed)) return;
  pthread_atfork(&Prepare, &Release, &Release);
}

}  // namespace strata::internal
