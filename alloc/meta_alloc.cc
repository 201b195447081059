#include "alloc/meta_alloc.h"

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "alloc/config.h"
#include "alloc/mapping_moves.h"
#include "alloc/os.h"
#include "threading/spin_lock.h"

namespace strata::internal {
namespace {

constexpr size_t kMetaChunk = size_t{64} << 10;

// SYNCHRONIZATION: g_cursor and g_end are guarded by g_lock; g_mapped is a
// relaxed statistic.
constinit threading::SpinLock g_lock;
char* g_cursor ABSL_GUARDED_BY(g_lock) = nullptr;
char* g_end ABSL_GUARDED_BY(g_lock) = nullptr;
std::atomic<size_t> g_mapped{0};

}  // namespace

void* MetaAllocate(size_t size) {
  size = (size + kCacheLine - 1) & ~(kCacheLine - 1);
  // A new chunk changes the OS count and g_mapped together for stats.
  // Begun before the lock: a mover waiting in Begin holds none that others
  // need. (Every call pays it: metadata is made rarely.)
  MoveSpan move;
  threading::SpinLockHolder hold(&g_lock);
  if (static_cast<size_t>(g_end - g_cursor) < size) {
    const size_t chunk = size > kMetaChunk ? (size + 4095) & ~size_t{4095} : kMetaChunk;
    char* fresh = static_cast<char*>(os::MapAligned(chunk, 4096));
    if (fresh == nullptr) return nullptr;
    // The tail of the previous chunk is abandoned: a few bytes at most.
    g_cursor = fresh;
    g_end = fresh + chunk;
    // Relaxed: statistics only.
    g_mapped.fetch_add(chunk, std::memory_order_relaxed);
  }
  void* result = g_cursor;
  g_cursor += size;
  return result;
}

// Held from fork's prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockMetaForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Lock(); }
void UnlockMetaForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_lock.Unlock(); }

size_t MetaBytesMapped() {
  // Relaxed: statistics only.
  return g_mapped.load(std::memory_order_relaxed);
}

}  // namespace strata::internal
