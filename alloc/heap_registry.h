// The registry of heaps for threads: which heap the calling thread uses (and
// the one place that decides whether it has one yet), heaps created and
// recycled, the thread-exit hook, orphans (heaps of exited threads that
// still own arenas) and free heaps, the list of every heap, and the fork
// locks. Heaps are type-stable metadata: never unmapped, so a late remote
// free to a dead thread's heap always lands in a live queue.
//
// Life of a heap: created (or recycled) for a thread on its first slow
// path; on thread exit it drains its queue, flushes its outgoing batches,
// releases empty runs and arenas, and is pushed either to the free stack
// (it owns no arena) or to the orphan stack (it still owns arenas with live
// blocks, which anyone may keep freeing into its queue). A new thread takes
// an orphan before a free heap before a fresh one, so abandoned pools are
// reused first; a running thread short of memory absorbs an orphan.
//
// SYNCHRONIZATION
//  - tls_heap: the calling thread's own.
//  - The orphan and free stacks: lock-free tagged stacks of heaps. Push is a
//    release and pop an acquire: the previous holder's writes to the heap
//    (and to its arenas' metadata) happen-before the next holder's reads. A
//    heap popped from them is its holder's exclusively (an adopting thread,
//    an absorber, the release engine decaying an orphan).
//  - The list of every heap: push-only (release CAS; readers acquire);
//    HeapEntry::all_next is written before a heap is published, never after.
//  - HeapEntry::state_: a hint for stats (relaxed); the stacks' push/pop
//    order the hand-over, the state publishes nothing.
#ifndef STRATA_ALLOC_HEAP_REGISTRY_H_
#define STRATA_ALLOC_HEAP_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"

namespace strata::internal {

class Heap;

// A heap's record in the registry (a field of every heap, heap.h): its id,
// what it serves, and its link in the list of every heap.
class HeapEntry {
 public:
  enum class State : uint32_t {
    kActive,  // serving a thread
    kOrphan,  // its thread exited; it still owns arenas
    kFree,    // owns nothing, waiting for a thread
  };

  constexpr explicit HeapEntry(uint32_t id) : id_(id) {}
  HeapEntry(const HeapEntry&) = delete;
  HeapEntry& operator=(const HeapEntry&) = delete;

  // Fixed; read by every thread that frees to this heap (outgoing slots).
  uint32_t id() const { return id_; }
  // Relaxed: a hint for stats and tests (see SYNCHRONIZATION).
  State state() const { return state_.load(std::memory_order_relaxed); }
  Heap* all_next() const { return all_next_; }

  // The registry's writes: a heap's new state when it changes hands, and
  // its link before it is published.
  void set_state(State s) { state_.store(s, std::memory_order_relaxed); }
  void set_all_next(Heap* next) { all_next_ = next; }

 private:
  const uint32_t id_;
  std::atomic<State> state_{State::kActive};
  Heap* all_next_ = nullptr;
};

// The heap of the calling thread, or the empty sentinel before its first
// slow path (whose fast paths always miss). Initial-exec TLS: one
// %fs-relative load; constinit, so no per-access initialisation guard.
extern constinit thread_local Heap* tls_heap ABSL_ATTRIBUTE_INITIAL_EXEC;
extern Heap g_empty_heap;

// Gives the calling thread a heap (orphan, then free, then new), registers
// it for thread-exit cleanup and stores it in tls_heap. Returns nullptr
// only when the OS refuses memory for a new heap.
Heap* AcquireHeapForThread();

// The one place that decides whether the calling thread has a heap yet:
// its heap, or nullptr before its first slow path.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Heap* ThreadHeapIfAny() {
  Heap* h = tls_heap;
  return ABSL_PREDICT_FALSE(h == &g_empty_heap) ? nullptr : h;
}

// The calling thread's heap, given one on first need; nullptr only when the
// OS refuses memory for one.
inline Heap* ThreadHeap() {
  if (Heap* h = ThreadHeapIfAny()) return h;
  return AcquireHeapForThread();
}

// Head of the list of every heap (acquire); follow entry().all_next().
Heap* AllHeaps();

// Pops an orphan for the caller to absorb, exclusively; nullptr if none.
Heap* PopOrphan();
// Pushes a heap the caller absorbed (it owns nothing now) to the free stack.
void RetireAbsorbed(Heap* h);
// Blocks that reached heaps after they gave their arenas away sit in free
// heaps' queues: pops up to `limit` free heaps, forwards what waits in
// their queues to the arenas' owners, and pushes them back.
void SweepFreeHeaps(size_t limit);

// Pops every orphaned heap, lets fn(heap) work on it as its exclusive
// holder, and pushes each back (to the free stack if it no longer owns
// arenas). Returns the number of orphans visited.
size_t ForEachOrphanExclusive(void (*fn)(Heap* orphan, void* arg), void* arg);

// The thread-exit hook: abandons the exiting thread's heap.
void OnThreadExit(void* value);

// Called (from the exiting thread) after a thread that used strata exits:
// the release engine's background thread checks then whether it is the
// last thread left, so that it never keeps a process alive.
using ThreadExitNotice = void (*)();
void SetThreadExitNotice(ThreadExitNotice notice);

// fork(): every heap's metadata lock is held across fork (see fork.h).
void LockAllHeapsForFork();
void UnlockAllHeapsForFork();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_REGISTRY_H_
