// Heaps for threads: creating and recycling heaps, the thread-exit hook,
// orphans (heaps of exited threads that still own arenas) and their
// adoption, moving arenas between heaps, and the fork locks. See heap.h for
// the protocol.
#include <atomic>
#include <new>

#include "alloc/heap.h"
#include "alloc/meta_alloc.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "threading/tagged_stack.h"
#include "threading/thread_exit.h"

namespace strata::internal {

namespace {

// SYNCHRONIZATION
//  - g_orphans, g_free_heaps: lock-free tagged stacks of heaps (type-stable).
//    Push is a release and pop an acquire: the previous owner's writes to the
//    heap happen-before the next owner's reads.
//  - g_all_heaps: push-only list (release CAS; readers acquire).
//  - g_next_id: relaxed counter; ids only spread outgoing slots.
//  - g_exit_notice: release store by the release layer, acquire load here.
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_orphans;
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_free_heaps;
std::atomic<Heap*> g_all_heaps{nullptr};
std::atomic<uint32_t> g_next_id{1};
std::atomic<ThreadExitNotice> g_exit_notice{nullptr};

constinit threading::ThreadExitHook g_exit_hook(&OnThreadExit);

}  // namespace

void Heap::MoveArenaFrom(Heap* from, ArenaHeader* a) {
  // The two heaps' locks are taken one after the other, never nested (see
  // the SYNCHRONIZATION note): between them the arena is on neither list.
  const size_t free = static_cast<size_t>(__builtin_popcountll(a->free_mask));
  {
    threading::SpinLockHolder hold(&from->meta_lock_);
    from->ForgetArena(a);  // its arena cache holds only arenas it owns
    from->UnlinkArena(a);
    --from->arenas_;
    from->free_pools_ -= free;
    if (a->used_pools == 0) --from->empty_arenas_;
    from->PublishCachedPools();
  }
  // Partial and empty runs move with the arena (partial-list links are
  // owner-only data: the caller holds both heaps exclusively as owner).
  for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
    PoolDesc* d = a->pool(i);
    if (d->state != PoolState::kHead) continue;
    if (d->run.state() == RunState::kPartial) {
      from->UnlinkPartial(d);
      LinkPartial(d);
    } else if (d->run.state() == RunState::kEmpty) {
      uint32_t since;
      {
        threading::SpinLockHolder hold(&from->meta_lock_);
        since = d->run.free_since();
        from->UnlinkEmptyLocked(d, /*reuse=*/false);
      }
      threading::SpinLockHolder hold(&meta_lock_);
      LinkEmptyLocked(d, since);
    }
  }
  // Release pairs with the acquire load of owner by freeing threads: a
  // thread that sees us as owner sends blocks here. Threads that still saw
  // `from` send them to `from`, which forwards them (FreeLocalOrForward).
  a->owner.store(this, std::memory_order_release);
  threading::SpinLockHolder hold(&meta_lock_);
  LinkArena(a, a->free_mask != 0);
  ++arenas_;
  free_pools_ += free;
  if (a->used_pools == 0) ++empty_arenas_;
  PublishCachedPools();
}

void Heap::Abandon() {
  ForgetAllArenas();  // the next thread to hold this heap starts afresh
  DrainRemote();  // may forward blocks: they join outgoing batches
  FlushOutgoing();
  for (Outgoing& o : outgoing_) o.target = nullptr;
  if (stats_mode_) SetStatsMode(false);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = runs_[cls];
    if (d == &g_empty_pool) continue;
    runs_[cls] = &g_empty_pool;
    SetFastRun(cls, &g_empty_pool);
    d->run.Demote();
    if (d->Used() == 0) {
      ReleaseRun(d);
    } else if (!IsListEnd(d->run.free_list()) || d->run.carved() < d->capacity) {
      LinkPartial(d);
    } else {
      d->run.FallAsleep(d->capacity);
    }
  }
  // Return every empty run and empty arena: a dead thread needs no spares.
  ReleaseEmptyRuns(os::NowMs());
  ReleaseEmptyArenas(os::NowMs());
}

void Heap::Absorb(Heap* orphan) {
  // Blocks already queued for the orphan: free them as the orphan, whose
  // metadata we hold exclusively, before its arenas move.
  orphan->DrainRemote();
  orphan->FlushOutgoing();
  for (;;) {
    ArenaHeader* a;
    {
      threading::SpinLockHolder hold(&orphan->meta_lock_);
      a = !orphan->avail_arenas_.empty() ? orphan->avail_arenas_.front() : orphan->full_arenas_.front();
    }
    if (a == nullptr) break;
    MoveArenaFrom(orphan, a);
  }
  counters_.orphans_absorbed.Add(1);
}

size_t Heap::CollectOrphans(size_t max_orphans) {
  size_t absorbed = 0;
  while (absorbed < max_orphans) {
    Heap* orphan = g_orphans.Pop();
    if (orphan == nullptr) break;
    Absorb(orphan);
    // Relaxed: the push is the release that hands the heap over.
    orphan->state_.store(State::kFree, std::memory_order_relaxed);
    g_free_heaps.Push(orphan);
    ++absorbed;
  }
  // Keep what we absorbed within budget, but donate nothing back: we are
  // absorbing because we need memory.
  if (absorbed > 0) ReleaseEmptyArenasOverBudget(CacheBudget(), os::NowMs());
  // Blocks that reached heaps after they gave their arenas away sit in
  // free heaps' queues: forward them to their arenas' owners now.
  constexpr size_t kSweep = 64;
  Heap* swept[kSweep];
  size_t n = 0;
  while (n < kSweep && (max_orphans > 1 || n < 4)) {
    Heap* h = g_free_heaps.Pop();
    if (h == nullptr) break;
    swept[n++] = h;
    if (!h->remote_.EmptyHint()) {
      h->DrainRemote();
      h->FlushOutgoing();
    }
  }
  while (n > 0) g_free_heaps.Push(swept[--n]);
  return absorbed;
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
    const bool owns = taken->OwnsArenas();
    // Relaxed: the push below is the release that hands the heap over.
    taken->state_.store(owns ? Heap::State::kOrphan : Heap::State::kFree, std::memory_order_relaxed);
    (owns ? g_orphans : g_free_heaps).Push(taken);
    taken = next;
  }
  return n;
}

Heap* Heap::Create() {
  void* mem = MetaAllocate(sizeof(Heap));
  if (mem == nullptr) return nullptr;
  // Relaxed: ids only spread outgoing batches over slots.
  Heap* h = new (mem) Heap(g_next_id.fetch_add(1, std::memory_order_relaxed));
  // Set once, before the heap is published: other threads read it through
  // any owner pointer they hold (SendLookingFree), however stale.
  h->link_key_ = GetLinkKey();
  Heap* head = g_all_heaps.load(std::memory_order_relaxed);
  do {
    h->all_next_ = head;
    // Release pairs with the acquire in AllHeaps().
  } while (!g_all_heaps.compare_exchange_weak(head, h, std::memory_order_release,
                                              std::memory_order_relaxed));
  return h;
}

Heap* AcquireHeapForThread() {
  options_internal::EnsureInitialized();
  InitLinkKey();
  Heap* h = g_orphans.Pop();
  if (h == nullptr) h = g_free_heaps.Pop();
  if (h == nullptr) h = Heap::Create();
  if (h == nullptr) return nullptr;
  // Relaxed: the pop above (acquire) already ordered us after the previous
  // owner; readers of state_ only want a hint.
  h->state_.store(Heap::State::kActive, std::memory_order_relaxed);
  // An orphan's arenas may have been absorbed by others meanwhile.
  h->ForgetAllArenas();
  // A thread's first bytes are sampled like any others (heap profiling).
  h->ResetSampleCountdown(GetOption(Option::kProfileSampleBytes));
  tls_heap = h;
  // If the key cannot be made the heap is simply never abandoned: its
  // blocks stay valid and freeable, only its cache is not recycled.
  g_exit_hook.Arm(h);
  return h;
}

Heap* AllHeaps() {
  // Acquire pairs with the release CAS in Heap::Create().
  return g_all_heaps.load(std::memory_order_acquire);
}

void OnThreadExit(void* value) {
  auto* h = static_cast<Heap*>(value);
  h->Abandon();
  tls_heap = &g_empty_heap;
  const bool owns_arenas = h->OwnsArenas();
  // Relaxed: the stack push below is the release that hands the heap over.
  h->state_.store(owns_arenas ? Heap::State::kOrphan : Heap::State::kFree,
                  std::memory_order_relaxed);
  (owns_arenas ? g_orphans : g_free_heaps).Push(h);
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
  for (Heap* h = AllHeaps(); h != nullptr; h = h->all_next()) h->meta_lock_.Lock();
}

void UnlockAllHeapsForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (Heap* h = AllHeaps(); h != nullptr; h = h->all_next()) h->meta_lock_.Unlock();
}

}  // namespace strata::internal
