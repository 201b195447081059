// What a heap takes from outside the thread cache: arenas from the arena
// source and the time. The process's heaps use the real ones; a unit test
// gives a heap its own (tests/alloc/heap_parts_test.cc), so that the thread
// cache's parts can be tested without malloc and with a clock it moves.
#ifndef STRATA_ALLOC_HEAP_ENV_H_
#define STRATA_ALLOC_HEAP_ENV_H_

#include <cstdint>

#include "alloc/arena.h"
#include "alloc/os.h"

namespace strata::internal {

struct HeapEnv {
  // An empty arena owned by `owner` (arena.h, AcquireArena), or nullptr.
  ArenaHeader* (*acquire_arena)(Heap* owner);
  // Gives an empty arena back (arena.h, ReleaseArena).
  void (*release_arena)(ArenaHeader* arena, uint64_t now);
  // Milliseconds on a monotonic clock (os.h, NowMs).
  uint64_t (*now_ms)();
};

// The process's: the arena source and the OS clock.
inline constexpr HeapEnv kProcessHeapEnv{&AcquireArena, &ReleaseArena, &os::NowMs};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_ENV_H_
