// Heaps for threads: creating and recycling heaps, the thread-exit hook,
// orphans and free heaps, and the fork locks (heap_registry.h).
#include "alloc/heap_registry.h"

#include <atomic>
#include <new>

#include "alloc/heap.h"
#include "alloc/meta_alloc.h"
#include "alloc/options.h"
#include "threading/owner_lock.h"
#include "threading/tagged_stack.h"
#include "threading/thread_exit.h"

namespace strata::internal {

constinit thread_local Heap* tls_heap ABSL_ATTRIBUTE_INITIAL_EXEC = &g_empty_heap;

namespace {

// SYNCHRONIZATION: see heap_registry.h. g_next_id: relaxed counter (ids
// only spread outgoing slots). g_exit_notice: release store by the release
// layer, acquire load here.
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_orphans;
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_free_heaps;
std::atomic<Heap*> g_all_heaps{nullptr};
std::atomic<uint32_t> g_next_id{1};
std::atomic<ThreadExitNotice> g_exit_notice{nullptr};

constinit threading::ThreadExitHook g_exit_hook(&OnThreadExit);

// Maps, constructs and publishes a new heap; nullptr if the OS refuses.
Heap* Create() {
  void* mem = MetaAllocate(sizeof(Heap));
  if (mem == nullptr) return nullptr;
  // Relaxed: ids only spread outgoing batches over slots. The key is set
  // before the heap is published: other threads read it through any owner
  // pointer they hold, however stale.
  Heap* h = new (mem) Heap(g_next_id.fetch_add(1, std::memory_order_relaxed), GetLinkKey());
  Heap* head = g_all_heaps.load(std::memory_order_relaxed);
  do {
    h->entry().set_all_next(head);
    // Release pairs with the acquire in AllHeaps().
  } while (!g_all_heaps.compare_exchange_weak(head, h, std::memory_order_release,
                                              std::memory_order_relaxed));
  return h;
}

// Pushes h, whose holder is done with it, to the orphan stack if it still
// owns arenas, else to the free stack.
void PushBack(Heap* h) {
  const bool owns = h->arenas().OwnsArenas();
  // The push below is the release that hands the heap over.
  h->entry().set_state(owns ? HeapEntry::State::kOrphan : HeapEntry::State::kFree);
  (owns ? g_orphans : g_free_heaps).Push(h);
}

}  // namespace

Heap* AcquireHeapForThread() {
  options_internal::EnsureInitialized();
  InitLinkKey();
  Heap* h = g_orphans.Pop();
  if (h == nullptr) h = g_free_heaps.Pop();
  if (h == nullptr) h = Create();
  if (h == nullptr) return nullptr;
  // The pop above (acquire) already ordered us after the previous owner.
  h->entry().set_state(HeapEntry::State::kActive);
  // An orphan's arenas may have been absorbed by others meanwhile.
  h->arena_cache().ForgetAll();
  // A thread's first bytes are sampled like any others (heap profiling),
  // and detailed stats count them.
  h->FollowOptions();
  tls_heap = h;
  // If the key cannot be made the heap is simply never abandoned: its
  // blocks stay valid and freeable, only its cache is not recycled.
  g_exit_hook.Arm(h);
  return h;
}

Heap* AllHeaps() {
  // Acquire pairs with the release CAS in Create().
  return g_all_heaps.load(std::memory_order_acquire);
}

Heap* PopOrphan() { return g_orphans.Pop(); }

void RetireAbsorbed(Heap* h) {
  // The push is the release that hands the heap over.
  h->entry().set_state(HeapEntry::State::kFree);
  g_free_heaps.Push(h);
}

void SweepFreeHeaps(size_t limit) {
  constexpr size_t kMaxSweep = 64;
  if (limit > kMaxSweep) limit = kMaxSweep;
  Heap* swept[kMaxSweep];
  size_t n = 0;
  while (n < limit) {
    Heap* h = g_free_heaps.Pop();
    if (h == nullptr) break;
    swept[n++] = h;
    if (!h->incoming().EmptyHint()) {
      threading::OtherLockHolder hold(&h->slow_lock_);  // against a collection (heap.h)
      h->DrainRemote();
      h->FlushOutgoing();
    }
  }
  while (n > 0) g_free_heaps.Push(swept[--n]);
}

size_t ForEachOrphanExclusive(void (*fn)(Heap* orphan, void* arg), void* arg) {
  // Take them all first, so none is visited twice; put them back after.
  Heap* taken = nullptr;
  size_t n = 0;
  while (Heap* h = g_orphans.Pop()) {
    // Relaxed: the chain is private until pushed back.
    h->stack_next_.store(taken, std::memory_order_relaxed);
    taken = h;
    ++n;
  }
  while (taken != nullptr) {
    Heap* next = taken->stack_next_.load(std::memory_order_relaxed);
    fn(taken, arg);
    PushBack(taken);
    taken = next;
  }
  return n;
}

void OnThreadExit(void* value) {
  auto* h = static_cast<Heap*>(value);
  h->Abandon();
  tls_heap = &g_empty_heap;
  PushBack(h);
  // Acquire pairs with the release store in SetThreadExitNotice().
  if (ThreadExitNotice notice = g_exit_notice.load(std::memory_order_acquire)) notice();
}

void SetThreadExitNotice(ThreadExitNotice notice) {
  // Release pairs with the acquire load in OnThreadExit().
  g_exit_notice.store(notice, std::memory_order_release);
}

// Held from fork's prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockAllHeapsForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Heap* h = AllHeaps(); h != nullptr; h = h->entry().all_next()) h->arenas().lock().Lock();
}

void UnlockAllHeapsForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Heap* h = AllHeaps(); h != nullptr; h = h->entry().all_next()) h->arenas().lock().Unlock();
}

}  // namespace strata::internal
