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
// reused first; a running thread short of memory absorbs an orphan. A
// thread that exits without the hook (glibc skips it in some exits: see
// RecoverExitedHeaps) leaves its heap bound to its tid until a recovery
// scan sees the tid gone and does the hook's work on its behalf.
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
//  - HeapEntry::owner_ (the owner word): stored by the heap's holder when it
//    takes the heap (BindOwner) and by its thread when it lets go
//    (UnbindOwner), both release; read (acquire) by the recovery scan, whose
//    CAS (ClaimFromExited) makes one scanner the exclusive holder of a heap
//    whose thread exited. One scan at a time (g_scan_lock, TryLock from
//    slow paths; ReleaseMemory waits for it).
#ifndef STRATA_ALLOC_HEAP_REGISTRY_H_
#define STRATA_ALLOC_HEAP_REGISTRY_H_

#include <pthread.h>

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

  // ---- The owner word: which thread serves from the heap ----
  // (generation << 32) | tid: the kernel thread id of the thread the heap
  // serves (0: none, or one that must never be judged by its id), and a
  // generation that every change of hands bumps, so that a claim on a word
  // read before the heap changed hands fails even if the kernel reused the
  // tid meanwhile.

  // The heap now serves thread `tid`. REQUIRES: the caller holds the heap
  // exclusively (popped from a stack, or made).
  void BindOwner(uint32_t tid) { owner_.store(NextOwnerWord(tid), std::memory_order_release); }
  // The heap's thread is done with it (its exit hook), or it must never be
  // judged by the tid it holds (a fork child's copy of another thread's
  // heap). REQUIRES: the heap's thread, or the only thread (fork child).
  void UnbindOwner() { owner_.store(NextOwnerWord(0), std::memory_order_release); }
  // Acquire pairs with the release stores above: a word read here is one
  // a holder published after taking the heap.
  uint64_t owner_word() const { return owner_.load(std::memory_order_acquire); }
  static uint32_t OwnerTid(uint64_t word) { return static_cast<uint32_t>(word); }
  // Claims the heap of an exited thread: true for exactly one caller, and
  // only while the word is still `seen` (the same thread, generation and
  // all). REQUIRES: the kernel said OwnerTid(seen) has exited, after `seen`
  // was read. Acquire pairs with BindOwner's release (the claim comes after
  // the binding it undoes); release orders it before the next BindOwner's
  // readers. What the exited thread wrote to the heap is ordered before
  // the claim by its exit (see RecoverExitedHeaps in heap_registry.cc).
  bool ClaimFromExited(uint64_t seen) {
    return owner_.compare_exchange_strong(seen, (seen & ~uint64_t{0xffffffff}) + (uint64_t{1} << 32),
                                          std::memory_order_acq_rel, std::memory_order_relaxed);
  }

 private:
  // The word that replaces the current one (the caller's writes to the
  // word are ordered by its exclusive hold on the heap, so relaxed).
  uint64_t NextOwnerWord(uint32_t tid) const {
    const uint64_t generation = (owner_.load(std::memory_order_relaxed) >> 32) + 1;
    return (generation << 32) | tid;
  }

  const uint32_t id_;
  std::atomic<State> state_{State::kActive};
  Heap* all_next_ = nullptr;
  std::atomic<uint64_t> owner_{0};
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

// The safety net under the exit hook, which glibc does not always run: a
// key destructor that calls pthread_exit restarts the thread's exit, and
// the restart runs no key destructor whose round had begun; a destructor
// that allocates in the last round re-arms a hook that never runs. Abandons
// every active heap whose thread has exited (the kernel no longer knows its
// tid) as the exit hook would have, and pushes it to the orphan or free
// stack. Never touches a heap whose thread runs. `wait`: wait for a scan
// already running elsewhere (else return 0 at once). Returns the heaps
// recovered. Thread-safety: any thread; takes no lock the caller may hold
// but the heaps' metadata locks, one at a time.
size_t RecoverExitedHeaps(bool wait);
// Heaps recovered by RecoverExitedHeaps so far (relaxed; statistics).
uint64_t HeapsRecovered();
// The pthread key of the exit hook, once some thread armed it (tests check
// the order of their own keys against it); false before.
bool ExitHookKey(pthread_key_t* key);

// Called (from the exiting thread) after a thread that used strata exits:
// the release engine's background thread checks then whether it is the
// last thread left, so that it never keeps a process alive.
using ThreadExitNotice = void (*)();
void SetThreadExitNotice(ThreadExitNotice notice);

// fork(): the recovery scan's lock and every heap's metadata lock are held
// across fork (see fork.h). In the child, the forking thread's heap is
// bound to its new tid, and every other active heap is unbound: its thread
// does not exist in the child, but it may have stopped mid-operation, so
// its heap is never recovered (it stays active, as before).
void LockAllHeapsForFork();
void UnlockAllHeapsForFork(bool in_child);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_HEAP_REGISTRY_H_
