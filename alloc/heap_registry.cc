// Heaps for threads: creating and recycling heaps, the thread-exit hook and
// the recovery of heaps whose thread exited without it, orphans and free
// heaps, and the fork locks (heap_registry.h).
#include "alloc/heap_registry.h"

#include <atomic>
#include <new>

#include "alloc/heap.h"
#include "alloc/meta_alloc.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "threading/owner_lock.h"
#include "threading/spin_lock.h"
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

// The recovery scan (RecoverExitedHeaps). g_scan_lock: one scan at a time;
// taken after the release engine's pass lock and before heap locks (fork
// takes it in that order). g_active: heaps bound to a thread (relaxed: a
// count for the rate limit). g_scan_at_active: a heap acquisition that
// finds no spare heap scans when g_active has reached it (relaxed: a rate
// limit only; a scan that runs twice is harmless). g_recovered: relaxed
// statistics.
constinit threading::SpinLock g_scan_lock;
std::atomic<uint32_t> g_active{0};
std::atomic<uint32_t> g_scan_at_active{0};
std::atomic<uint64_t> g_recovered{0};
// The rate limit: after a scan that found R heaps of running threads, the
// next scan comes when max(kMinScanActive, 2R) heaps are bound. So at most
// that many heaps of exited threads wait (bounded memory), and a program
// whose threads all run pays a scan (a syscall per bound heap) only when
// their number has doubled: O(1) syscalls per thread made.
constexpr uint32_t kMinScanActive = 16;

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

// An orphan, else a free heap, popped for the caller to hold; nullptr if none.
Heap* PopSpare() {
  Heap* h = g_orphans.Pop();
  return h != nullptr ? h : g_free_heaps.Pop();
}

}  // namespace

Heap* AcquireHeapForThread() {
  options_internal::EnsureInitialized();
  InitLinkKey();
  Heap* h = PopSpare();
  // Before making a heap, recover those of threads that exited without
  // their exit hook (RecoverExitedHeaps), when enough heaps are bound to
  // threads since the last look. Relaxed: a rate limit.
  if (h == nullptr &&
      g_active.load(std::memory_order_relaxed) >= g_scan_at_active.load(std::memory_order_relaxed)) {
    RecoverExitedHeaps(/*wait=*/false);
    // Recovering may start the release engine's thread, whose creation
    // allocates: that allocation gave this thread its heap.
    if (Heap* mine = ThreadHeapIfAny()) return mine;
    h = PopSpare();
  }
  if (h == nullptr) h = Create();
  if (h == nullptr) return nullptr;
  // The pop above (acquire) already ordered us after the previous owner.
  h->entry().set_state(HeapEntry::State::kActive);
  h->entry().BindOwner(os::CurrentThreadTid());
  // Relaxed: a count for the rate limit.
  g_active.fetch_add(1, std::memory_order_relaxed);
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
  // The thread lets go of its heap before abandoning it: what Abandon
  // calls may allocate (starting the release engine's thread: glibc's
  // pthread_create callocs the new thread's TLS vector). From h, after its
  // current runs were given up, such an allocation made one current again,
  // on a heap then absorbed by another: two heaps allocating from one run.
  // It goes to another heap instead (the thread takes one, armed again,
  // and gives it back in the next round of key destructors).
  tls_heap = &g_empty_heap;
  h->Abandon();
  // Before the push: no scan may claim a heap that is on the stacks.
  h->entry().UnbindOwner();
  // Relaxed: a count for the rate limit.
  g_active.fetch_sub(1, std::memory_order_relaxed);
  PushBack(h);
  // Acquire pairs with the release store in SetThreadExitNotice().
  if (ThreadExitNotice notice = g_exit_notice.load(std::memory_order_acquire)) notice();
}

void SetThreadExitNotice(ThreadExitNotice notice) {
  // Release pairs with the acquire load in OnThreadExit().
  g_exit_notice.store(notice, std::memory_order_release);
}

// How strata learns that a thread exited: the exit hook (a pthread key's
// destructor, OnThreadExit) in the common case, and this scan when glibc
// never runs it. The scan judges a heap by its owner word: the tid of the
// thread it serves. The kernel answers "no such thread" only once that
// thread has finished exiting, and never for a running thread of this
// process; a tid reused by a new thread reads as running, which only
// delays the recovery. Between the read of the word and the claim, the
// heap may have changed hands (its thread exited normally and another took
// it): the generation in the word makes that claim fail. So a claimed heap
// is one whose thread ran no code since before the kernel's answer, and the
// scanner holds it as the exit hook would: it abandons it on the thread's
// behalf (Abandon only touches the heap, its arenas and the queues of
// others, never the calling thread's heap).
//
// Ordering: what the exited thread wrote to its heap (plain, as an owner
// does) is published by its exit, not by an atomic of ours: the kernel
// completes a thread's exit before tgkill stops finding it. ThreadSanitizer
// sees this order only through pthread_join (the tests join their threads).
size_t RecoverExitedHeaps(bool wait) {
  if (wait) {
    g_scan_lock.Lock();
  } else if (!g_scan_lock.TryLock()) {
    return 0;
  }
  const uint32_t self = os::CurrentThreadTid();
  size_t recovered = 0;
  uint32_t running = 0;
  for (Heap* h = AllHeaps(); h != nullptr; h = h->entry().all_next()) {
    if (h->entry().state() != HeapEntry::State::kActive) continue;
    const uint64_t word = h->entry().owner_word();
    const uint32_t tid = HeapEntry::OwnerTid(word);
    if (tid == 0 || tid == self || !os::ThreadExited(tid)) {
      ++running;
      continue;
    }
    if (!h->entry().ClaimFromExited(word)) continue;  // it changed hands meanwhile
    h->Abandon();
    PushBack(h);
    ++recovered;
  }
  // Relaxed: a count and a rate limit (see g_scan_at_active), statistics.
  g_active.fetch_sub(static_cast<uint32_t>(recovered), std::memory_order_relaxed);
  g_scan_at_active.store(2 * running > kMinScanActive ? 2 * running : kMinScanActive,
                         std::memory_order_relaxed);
  if (recovered > 0) g_recovered.fetch_add(recovered, std::memory_order_relaxed);
  g_scan_lock.Unlock();
  return recovered;
}

uint64_t HeapsRecovered() {
  // Relaxed: statistics only.
  return g_recovered.load(std::memory_order_relaxed);
}

bool ExitHookKey(pthread_key_t* key) { return g_exit_hook.Key(key); }

// Held from fork's prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockAllHeapsForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_scan_lock.Lock();
  for (Heap* h = AllHeaps(); h != nullptr; h = h->entry().all_next()) h->arenas().lock().Lock();
}

void UnlockAllHeapsForFork(bool in_child) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Heap* h = AllHeaps(); h != nullptr; h = h->entry().all_next()) {
    // The child's only thread is the forking one, under a new tid.
    if (in_child && h->entry().state() == HeapEntry::State::kActive) {
      if (h == tls_heap) {
        h->entry().BindOwner(os::CurrentThreadTid());
      } else {
        h->entry().UnbindOwner();
      }
    }
    h->arenas().lock().Unlock();
  }
  g_scan_lock.Unlock();
}

}  // namespace strata::internal
