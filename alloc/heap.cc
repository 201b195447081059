// Slow paths of the thread cache; see heap.h for the protocol.
#include "alloc/heap.h"

#include <errno.h>

#include <new>

#include "alloc/error.h"
#include "alloc/fork.h"
#include "alloc/meta_alloc.h"
#include "threading/tagged_stack.h"
#include "threading/thread_exit.h"

namespace strata::internal {

constinit PoolDesc g_empty_pool{kFreeListEnd, 0, 0, 0, 0, 0, 0, PoolState::kFree, PoolList::kNone, 0, nullptr, nullptr};
constinit Heap g_empty_heap(0);
ABSL_CONST_INIT thread_local Heap* tls_heap ABSL_ATTRIBUTE_INITIAL_EXEC = &g_empty_heap;

namespace {

// SYNCHRONIZATION
//  - g_orphans, g_free_heaps: lock-free tagged stacks of heaps (type-stable).
//    Push is a release and pop an acquire: the previous owner's writes to the
//    heap happen-before the next owner's reads.
//  - g_all_heaps: push-only list (release CAS; readers acquire).
//  - g_next_id: relaxed counter; ids only spread outgoing slots.
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_orphans;
constinit threading::TaggedStack<Heap, &Heap::stack_next_> g_free_heaps;
std::atomic<Heap*> g_all_heaps{nullptr};
std::atomic<uint32_t> g_next_id{1};

constinit threading::ThreadExitHook g_exit_hook(&OnThreadExit);
std::atomic<uint64_t> g_donations_counter{0};

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void* PopFree(PoolDesc* d) {
  FreeBlock* b = d->free;
  d->free = b->next;
  ++d->used;
  return b;
}

// Index of the lowest pool starting n consecutive free pools, or -1.
int FindRun(uint64_t mask, uint32_t n) {
  uint64_t m = mask;
  for (uint32_t i = 1; i < n && m != 0; ++i) m &= mask >> i;
  return m == 0 ? -1 : __builtin_ctzll(m);
}

}  // namespace

// ---------------------------------------------------------------------------
// Allocation

void* Heap::AllocateSlow(size_t cls) {
  if (this == &g_empty_heap) {
    Heap* h = AcquireHeapForThread();
    if (h == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    return h->Allocate(cls);
  }
  PoolDesc* d = current_[cls];
  // 1. The current run still has uncarved blocks.
  if (d->carved < d->capacity) return PopCarving(d);
  // 2. Blocks other threads gave back (may refill the current run).
  if (DrainRemote() > 0) {
    d = current_[cls];
    if (d->free != kFreeListEnd) return PopFree(d);
  }
  // 3. A partial run of this class.
  if (PoolDesc* p = partial_[cls]) {
    UnlinkPartial(p);
    SetCurrent(cls, p);
    return p->free != kFreeListEnd ? PopFree(p) : PopCarving(p);
  }
  // 4. A new run. Hand over what we hold for others first: they may be
  // waiting for memory as we are.
  FlushOutgoing();
  const uint32_t pools = kClasses[cls].run_pools;
  ArenaHeader* arena = nullptr;
  int start = FindFreeRun(pools, &arena);
  if (start < 0 && CollectOrphans(1) > 0) {
    // A dead thread's memory is ours now: its partial runs come first.
    if (PoolDesc* p = partial_[cls]) {
      UnlinkPartial(p);
      SetCurrent(cls, p);
      return p->free != kFreeListEnd ? PopFree(p) : PopCarving(p);
    }
    start = FindFreeRun(pools, &arena);
  }
  PoolDesc* run = NewRun(cls, arena, start);
  if (run == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  SetCurrent(cls, run);
  return PopCarving(run);
}

void* Heap::PopCarving(PoolDesc* d) {
  const uint32_t size = kClasses[d->size_class].size;
  uint32_t n = static_cast<uint32_t>(kPoolSize) / size;  // about a page at a time
  if (n == 0) n = 1;
  if (n > d->capacity - d->carved) n = d->capacity - d->carved;
  char* first = d->Start() + size_t{d->carved} * size;
  // Link first .. first + (n-1)*size in address order, onto the free list.
  char* p = first + size_t{n - 1} * size;
  FreeBlock* head = d->free;
  for (uint32_t i = 0; i < n; ++i, p -= size) {
    auto* b = reinterpret_cast<FreeBlock*>(p);
    b->next = head;
    head = b;
  }
  d->free = head;
  d->carved += n;
  return PopFree(d);
}

void Heap::SetCurrent(size_t cls, PoolDesc* d) {
  PoolDesc* old = current_[cls];
  // The old current run is exhausted (no free, fully carved): it is full.
  if (old != &g_empty_pool) old->list = PoolList::kNone;
  d->list = PoolList::kCurrent;
  current_[cls] = d;
}

int Heap::FindFreeRun(uint32_t n, ArenaHeader** arena) const {
  ArenaHeader* a = avail_arenas_;
  for (size_t tries = 0; a != nullptr && tries < kRunSearchLimit; a = a->next, ++tries) {
    const int start = FindRun(a->free_mask, n);
    if (start >= 0) {
      *arena = a;
      return start;
    }
  }
  return -1;
}

PoolDesc* Heap::NewRun(size_t cls, ArenaHeader* a, int start) {
  const uint32_t n = kClasses[cls].run_pools;
  if (start < 0) {
    a = AcquireArena(this);
    if (a == nullptr) return nullptr;
    ++arenas_;
    ++empty_arenas_;
    free_pools_ += kUsablePools;
    LinkArena(a, /*avail=*/true);
    start = FindRun(a->free_mask, n);
  }
  if (a->used_pools == 0) --empty_arenas_;
  const uint64_t bits = ((n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1)) << start;
  a->free_mask &= ~bits;
  a->used_pools += n;
  free_pools_ -= n;
  if (a->free_mask == 0) {
    UnlinkArena(a);
    LinkArena(a, /*avail=*/false);
  }
  PoolDesc* head = &a->pools[start];
  head->free = kFreeListEnd;
  head->used = 0;
  head->carved = 0;
  head->capacity = static_cast<uint16_t>(kClasses[cls].blocks);
  head->size_class = static_cast<uint8_t>(cls);
  head->run_pools = static_cast<uint8_t>(n);
  head->head_offset = 0;
  head->state = PoolState::kHead;
  head->list = PoolList::kNone;
  head->prev = head->next = nullptr;
  for (uint32_t i = 1; i < n; ++i) {
    PoolDesc* t = head + i;
    t->state = PoolState::kTail;
    t->head_offset = static_cast<uint8_t>(i);
    t->size_class = static_cast<uint8_t>(cls);
  }
  return head;
}

// ---------------------------------------------------------------------------
// Local free

void Heap::FreeLocalSlow(PoolDesc* d) {
  if (d->list == PoolList::kNone) {
    // The run was full; now it has a free block.
    if (d->used == 0) {
      ReleaseRun(d);  // a one-block run
    } else {
      LinkPartial(d);
    }
    return;
  }
  if (d->used == 0 && d->list == PoolList::kPartial) {
    UnlinkPartial(d);
    ReleaseRun(d);
  }
  // used == 0 on the current run: keep it, the next allocation reuses it.
}

void Heap::ReleaseRun(PoolDesc* d) {
  ArenaHeader* a = ArenaOf(d);
  const uint32_t n = d->run_pools;
  const uint32_t start = d->index;
  for (uint32_t i = 0; i < n; ++i) {
    PoolDesc* p = d + i;
    const uint8_t index = p->index;
    *p = PoolDesc{};
    p->index = index;
  }
  a->free_mask |= ((n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1)) << start;
  a->used_pools -= n;
  free_pools_ += n;
  if (!a->on_avail_list) {
    UnlinkArena(a);
    LinkArena(a, /*avail=*/true);
  }
  if (a->used_pools == 0) ++empty_arenas_;
  if (CachedPoolBytes() > kThreadCacheBytes) TrimToBudget();
}

void Heap::TrimToBudget() {
  ReleaseEmptyArenasOverBudget();
  DonateOverBudget();
}

void Heap::ReleaseEmptyArenasOverBudget() {
  // Empty arenas first: nothing pins them.
  for (ArenaHeader* a = avail_arenas_; a != nullptr && CachedPoolBytes() > kThreadCacheBytes;) {
    ArenaHeader* next = a->next;
    if (a->used_pools == 0) {
      UnlinkArena(a);
      --arenas_;
      --empty_arenas_;
      free_pools_ -= kUsablePools;
      ReleaseArena(a);
    }
    a = next;
  }
}

void Heap::DonateOverBudget() {
  // With hysteresis (only when twice over budget): arenas that are
  // mostly free but pinned by a few live blocks: donated whole, so other
  // threads can use their free pools. Arenas holding a current run stay.
  if (CachedPoolBytes() <= 2 * kThreadCacheBytes) return;
  size_t scanned = 0;
  for (ArenaHeader* a = avail_arenas_;
       a != nullptr && scanned < kRunSearchLimit && CachedPoolBytes() > kThreadCacheBytes;
       ++scanned) {
    ArenaHeader* next = a->next;
    if (__builtin_popcountll(a->free_mask) * 2 >= static_cast<int>(kUsablePools)) {
      bool has_current = false;
      for (size_t i = kFirstUsablePool; i < kPoolsPerArena && !has_current; ++i) {
        has_current = a->pools[i].state == PoolState::kHead && a->pools[i].list == PoolList::kCurrent;
      }
      if (!has_current) DonateArena(a);
    }
    a = next;
  }
}

void Heap::DonateArena(ArenaHeader* a) {
  // A carrier heap takes the arena to the orphan stack, where any thread
  // about to map memory absorbs it. If no carrier can be had, keep it.
  Heap* carrier = g_free_heaps.Pop();
  if (carrier == nullptr) carrier = Create();
  if (carrier == nullptr) return;
  carrier->MoveArenaFrom(this, a);
  // Relaxed: the push below is the release that hands the carrier over.
  carrier->state_.store(State::kOrphan, std::memory_order_relaxed);
  // Relaxed: statistics only.
  g_donations_counter.fetch_add(1, std::memory_order_relaxed);
  g_orphans.Push(carrier);
}

void Heap::MoveArenaFrom(Heap* from, ArenaHeader* a) {
  const size_t free = static_cast<size_t>(__builtin_popcountll(a->free_mask));
  from->UnlinkArena(a);
  --from->arenas_;
  from->free_pools_ -= free;
  if (a->used_pools == 0) --from->empty_arenas_;
  for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
    PoolDesc* d = &a->pools[i];
    if (d->state == PoolState::kHead && d->list == PoolList::kPartial) {
      from->UnlinkPartial(d);
      LinkPartial(d);
    }
  }
  // Release pairs with the acquire load of owner by freeing threads: a
  // thread that sees us as owner sends blocks here. Threads that still saw
  // `from` send them to `from`, which forwards them (FreeLocalOrForward).
  a->owner.store(this, std::memory_order_release);
  LinkArena(a, a->free_mask != 0);
  ++arenas_;
  free_pools_ += free;
  if (a->used_pools == 0) ++empty_arenas_;
}

void Heap::LinkPartial(PoolDesc* d) {
  const size_t cls = d->size_class;
  d->list = PoolList::kPartial;
  d->prev = nullptr;
  d->next = partial_[cls];
  if (d->next != nullptr) d->next->prev = d;
  partial_[cls] = d;
}

void Heap::UnlinkPartial(PoolDesc* d) {
  if (d->prev != nullptr) {
    d->prev->next = d->next;
  } else {
    partial_[d->size_class] = d->next;
  }
  if (d->next != nullptr) d->next->prev = d->prev;
  d->prev = d->next = nullptr;
  d->list = PoolList::kNone;
}

void Heap::LinkArena(ArenaHeader* a, bool avail) {
  ArenaHeader*& head = avail ? avail_arenas_ : full_arenas_;
  a->on_avail_list = avail;
  a->prev = nullptr;
  a->next = head;
  if (head != nullptr) head->prev = a;
  head = a;
}

void Heap::UnlinkArena(ArenaHeader* a) {
  if (a->prev != nullptr) {
    a->prev->next = a->next;
  } else {
    (a->on_avail_list ? avail_arenas_ : full_arenas_) = a->next;
  }
  if (a->next != nullptr) a->next->prev = a->prev;
  a->prev = a->next = nullptr;
}

// ---------------------------------------------------------------------------
// Remote free

void Heap::FreeRemote(void* p, Heap* owner, size_t bytes) {
  auto* b = static_cast<FreeBlock*>(p);
  if (this == &g_empty_heap) {
    // First call of this thread, or a free after its exit hook ran.
    Heap* h = AcquireHeapForThread();
    if (h == nullptr) {
      owner->remote_.PushBatch(b, b);  // no heap to batch in: a batch of one
    } else if (h == owner) {
      h->FreeLocal(RunOf(ArenaOf(p), p), p);  // we adopted the owner itself
    } else {
      h->FreeRemote(p, owner, bytes);
    }
    return;
  }
  Outgoing& o = outgoing_[owner->id_ % kOutgoingSlots];
  if (o.target != owner) {
    if (o.head != nullptr) Flush(o);
    o.target = owner;
  }
  b->next = o.head;
  if (o.head == nullptr) o.tail = b;
  o.head = b;
  o.bytes += bytes;
  if (o.bytes >= kRemoteBatchBytes) Flush(o);
}

void Heap::Flush(Outgoing& o) {
  o.target->remote_.PushBatch(o.head, o.tail);
  o.head = o.tail = nullptr;
  o.bytes = 0;
}

void Heap::FlushOutgoing() {
  for (Outgoing& o : outgoing_) {
    if (o.head != nullptr) Flush(o);
  }
}

bool Heap::PushSuspect(void* p) {
  for (auto& slot : suspects_) {
    void* empty = nullptr;
    // Relaxed: the flag store below publishes the slot.
    if (slot.compare_exchange_strong(empty, p, std::memory_order_relaxed)) {
      // Release pairs with the acquire exchange in DrainSuspects(): the owner
      // sees the slot (and the program's writes before the free).
      has_suspects_.store(true, std::memory_order_release);
      return true;
    }
  }
  return false;
}

size_t Heap::DrainSuspects() {
  // Relaxed pre-check: a flag raised just after is seen on the next drain.
  if (!has_suspects_.load(std::memory_order_relaxed)) return 0;
  // Acquire pairs with the release store in PushSuspect().
  if (!has_suspects_.exchange(false, std::memory_order_acquire)) return 0;
  size_t n = 0;
  for (auto& slot : suspects_) {
    // Acquire: pairs with the pusher's flag release (via the exchange above);
    // the exchange claims the slot's block.
    void* p = slot.exchange(nullptr, std::memory_order_acquire);
    if (p == nullptr) continue;
    ArenaHeader* a = ArenaOf(p);
    // Acquire pairs with the release store of owner on arena hand-over.
    Heap* owner = a->owner.load(std::memory_order_acquire);
    if (owner != this) {
      // The arena moved on: the new owner checks it.
      if (owner == nullptr) {
        ReportInvalidFree(p, "block of an empty arena (double free?)", "free");
      } else if (!owner->PushSuspect(p)) {
        FreeLocalOrForward(p);  // every slot taken: a plain remote free
      }
      continue;
    }
    PoolDesc* d = RunOf(a, p);
    if (d->HasFreeBlock(p)) {
      ReportInvalidFree(p, "double free (block already free)", "free");
      continue;  // count mode: drop the second free
    }
    FreeLocal(d, p);
    ++n;
  }
  return n;
}

size_t Heap::DrainRemote() {
  FreeBlock* b = remote_.TakeAll();
  size_t n = DrainSuspects();
  while (b != nullptr) {
    FreeBlock* next = b->next;
    FreeLocalOrForward(b);
    b = next;
    ++n;
  }
  return n;
}

void Heap::FreeLocalOrForward(void* p) {
  ArenaHeader* a = ArenaOf(p);
  // Acquire pairs with the release store of owner in the arena source.
  Heap* owner = a->owner.load(std::memory_order_acquire);
  PoolDesc* d = RunOf(a, p);
  if (owner == this) {
    FreeLocal(d, p);
  } else {
    FreeRemote(p, owner, kClasses[d->size_class].size);
  }
}

// ---------------------------------------------------------------------------
// Thread life

void Heap::Abandon() {
  DrainRemote();  // may forward blocks: they join outgoing batches
  FlushOutgoing();
  for (Outgoing& o : outgoing_) o.target = nullptr;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    PoolDesc* d = current_[cls];
    if (d == &g_empty_pool) continue;
    current_[cls] = &g_empty_pool;
    d->list = PoolList::kNone;
    if (d->used == 0) {
      ReleaseRun(d);
    } else if (d->free != kFreeListEnd || d->carved < d->capacity) {
      LinkPartial(d);
    }
  }
  // Return every empty arena: a dead thread needs no spares.
  for (ArenaHeader* a = avail_arenas_; a != nullptr;) {
    ArenaHeader* next = a->next;
    if (a->used_pools == 0) {
      UnlinkArena(a);
      --arenas_;
      --empty_arenas_;
      free_pools_ -= kUsablePools;
      ReleaseArena(a);
    }
    a = next;
  }
}

void Heap::Absorb(Heap* orphan) {
  // Blocks already queued for the orphan: free them as the orphan, whose
  // metadata we hold exclusively, before its arenas move.
  orphan->DrainRemote();
  orphan->FlushOutgoing();
  while (orphan->avail_arenas_ != nullptr) MoveArenaFrom(orphan, orphan->avail_arenas_);
  while (orphan->full_arenas_ != nullptr) MoveArenaFrom(orphan, orphan->full_arenas_);
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
  if (absorbed > 0) ReleaseEmptyArenasOverBudget();
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

bool Heap::IsValid() const {
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const PoolDesc* c = current_[cls];
    if (c != &g_empty_pool && (c->list != PoolList::kCurrent || c->size_class != cls || !c->IsValid())) {
      return false;
    }
    for (const PoolDesc* d = partial_[cls]; d != nullptr; d = d->next) {
      if (d->list != PoolList::kPartial || d->size_class != cls || !d->IsValid()) return false;
      if (d->free == kFreeListEnd && d->carved == d->capacity) return false;
    }
  }
  size_t arenas = 0, empty = 0;
  for (const ArenaHeader* list : {avail_arenas_, full_arenas_}) {
    for (const ArenaHeader* a = list; a != nullptr; a = a->next) {
      ++arenas;
      if (a->used_pools == 0) ++empty;
      // Relaxed: we own the arena; only we write its owner.
      if (!a->IsValid() || a->owner.load(std::memory_order_relaxed) != this) return false;
      if (a->on_avail_list != (a->free_mask != 0)) return false;
      for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
        if (a->pools[i].state == PoolState::kHead && !a->pools[i].IsValid()) return false;
      }
    }
  }
  size_t free_pools = 0;
  for (const ArenaHeader* list : {avail_arenas_, full_arenas_}) {
    for (const ArenaHeader* a = list; a != nullptr; a = a->next) {
      free_pools += static_cast<size_t>(__builtin_popcountll(a->free_mask));
    }
  }
  return arenas == arenas_ && empty == empty_arenas_ && free_pools == free_pools_;
}

// ---------------------------------------------------------------------------
// Heaps for threads

Heap* Heap::Create() {
  void* mem = MetaAllocate(sizeof(Heap));
  if (mem == nullptr) return nullptr;
  // Relaxed: ids only spread outgoing batches over slots.
  Heap* h = new (mem) Heap(g_next_id.fetch_add(1, std::memory_order_relaxed));
  Heap* head = g_all_heaps.load(std::memory_order_relaxed);
  do {
    h->all_next_ = head;
    // Release pairs with the acquire in AllHeaps().
  } while (!g_all_heaps.compare_exchange_weak(head, h, std::memory_order_release,
                                              std::memory_order_relaxed));
  return h;
}

uint64_t ArenaDonations() {
  // Relaxed: statistics only.
  return g_donations_counter.load(std::memory_order_relaxed);
}

Heap* AcquireHeapForThread() {
  Heap* h = g_orphans.Pop();
  if (h == nullptr) h = g_free_heaps.Pop();
  if (h == nullptr) h = Heap::Create();
  if (h == nullptr) return nullptr;
  // Relaxed: the pop above (acquire) already ordered us after the previous
  // owner; readers of state_ only want a hint.
  h->state_.store(Heap::State::kActive, std::memory_order_relaxed);
  tls_heap = h;
  // If the key cannot be made the heap is simply never abandoned: its
  // blocks stay valid and freeable, only its cache is not recycled.
  g_exit_hook.Arm(h);
  // Once per process; pthread_atfork may allocate, which this heap serves.
  InstallForkHandlers();
  return h;
}

Heap* AllHeaps() {
  // Acquire pairs with the release CAS in AcquireHeapForThread().
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
}

}  // namespace strata::internal
