// The release engine: strata's policy for giving memory back to the OS.
//
// Policy (every number is an option, see options.h):
//  - A pool that becomes free (its run released) stays resident for
//    purge_delay_ms, so a thread that frees and reallocates does not pay a
//    page fault per pool; then it is purged (madvise, purge_mode).
//  - A heap keeps at most thread_cache_bytes of free pools (and all heaps
//    together total_cache_bytes); beyond that its empty arenas go to the
//    shared empty-arena stack.
//  - An empty arena in the shared stack is purged after purge_delay_ms and,
//    beyond the arenas_retained most recently emptied, unmapped.
//  - A freed large mapping stays in the large cache (large_cache_bytes) for
//    purge_delay_ms, then is unmapped.
//  - Dead threads' heaps (orphans) are tidied: the blocks other threads sent
//    them are freed, their empty arenas returned, their free pools purged.
// The work is done by (a) each heap on its own slow paths (its own pools),
// (b) a global pass that any heap's slow path runs when it is due, and
// (c) when background_release is on, a background thread that runs the
// global pass on schedule even if no thread allocates. ReleaseNow() does
// everything at once, delays ignored.
//
// What is not released: blocks freed by other threads to a live thread that
// has stopped allocating wait in its queue until its next slow path (or its
// exit); free blocks inside runs that still hold live blocks stay (a pool is
// the unit of release).
#ifndef STRATA_ALLOC_RELEASE_H_
#define STRATA_ALLOC_RELEASE_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

struct ReleaseTotals {
  uint64_t pool_bytes_purged;      // free pools of heaps (owned and orphaned)
  uint64_t arena_bytes_purged;     // pools of empty arenas
  uint64_t arena_bytes_unmapped;   // empty arenas given back whole
  uint64_t large_bytes_unmapped;   // cached large mappings given back
  uint64_t Total() const {
    return pool_bytes_purged + arena_bytes_purged + arena_bytes_unmapped + large_bytes_unmapped;
  }
};

// Gives back everything that can be given back, now: adopts dead threads'
// memory, drains the calling thread's queue, purges every free pool and
// empty arena, unmaps empty arenas beyond arenas_retained and the whole
// large cache. Thread-safety: any thread; waits for a running global pass.
ReleaseTotals ReleaseNow();

// Cumulative totals of everything the engine (and ReleaseNow) gave back.
ReleaseTotals ReleasedSoFar();

// State of the background thread, for stats: running, and passes made.
struct BackgroundState {
  bool running;
  uint64_t passes;        // global passes run by the background thread
  uint64_t slow_passes;   // global passes run from heaps' slow paths
  uint64_t last_pass_ms;  // os::NowMs() of the last global pass
};
BackgroundState GetBackgroundState();

// Waits for a global pass in progress to finish, and runs no new ones
// (from slow paths or the background thread) until ResumeRelease(); nests.
// ReleaseNow() still works. For checks that need strata to hold still.
void PauseRelease();
void ResumeRelease();

// Installs the engine: the heaps' global-decay hook, the options change
// hook and the fork handlers. Idempotent; runs from a start-up constructor.
void InstallReleaseEngine();

// The sampler (option sample_interval_ms) is run by the background thread;
// the stats layer provides it. start_ms is when the thread started.
using SampleFn = void (*)(uint64_t start_ms, uint64_t now_ms);
void SetSampler(SampleFn fn);

// fork(): the engine's lock is held across fork; the child starts with no
// background thread (it is started again when next needed).
void LockReleaseForFork();
void UnlockReleaseForFork(bool in_child);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_RELEASE_H_
