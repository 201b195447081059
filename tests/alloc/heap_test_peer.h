// Unit tests of the thread cache's parts (heap.h) without malloc:
//  - HeapTestPeer: a heap's private parts (its ClassRuns, OwnedArenas,
//    ReleaseBudget, ...), for tests only (Heap names it a friend).
//  - TestHeapEnv: a HeapEnv (heap_env.h) whose arena source is the real one,
//    counted and able to refuse (the ENOMEM path), and whose clock the test
//    moves by hand.
//  - TestHeap: a heap in memory of its own (os::MapAligned, never strata's
//    allocator), made with a given env, outside the registry of heaps for
//    threads.
// Single-threaded tests: the env's state is process-wide (HeapEnv holds plain
// function pointers, no context), so one test uses it at a time.
#ifndef STRATA_TESTS_ALLOC_HEAP_TEST_PEER_H_
#define STRATA_TESTS_ALLOC_HEAP_TEST_PEER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/heap.h"
#include "alloc/heap_env.h"
#include "alloc/os.h"

namespace strata::internal {

class HeapTestPeer {
 public:
  explicit HeapTestPeer(Heap* h) : h_(h) {}

  ClassRuns& runs() const { return h_->runs_; }
  OwnedArenas& arenas() const { return h_->arenas_; }
  ReleaseBudget& budget() const { return h_->budget_; }
  HeapCounters& counters() const { return h_->counters_; }
  ArenaCache& arena_cache() const { return h_->arena_cache_; }
  OutgoingBatches& outgoing() const { return h_->outgoing_; }
  IncomingQueue& incoming() const { return h_->incoming_; }
  const HeapEnv& env() const { return *h_->env_; }
  // The heap's clock.
  uint64_t Now() const { return h_->env_->now_ms(); }
  ClassCache& cache() const { return h_->cache_; }
  // Gives every block of the heap's class caches back to its run.
  void ReturnCached() const {
    for (size_t cls = 1; cls < kNumClasses; ++cls) h_->ReturnCached(cls, 0);
  }

  // A block of class cls for `size` bytes, as the API's slow half takes
  // one: the class cache's pop, else the heap's slow path (nullptr when
  // the source refuses memory).
  void* Allocate(size_t cls, size_t size) const {
    if (void* b = h_->TryAllocate(cls)) return b;
    return h_->AllocateSlow(cls, size).block;
  }

 private:
  Heap* const h_;
};

// Carves about a page more of d's blocks onto d's own list: a chain carved
// as for a class cache, given back block by block (the list in address
// order, the count as before).
inline void CarveOntoList(PoolDesc* d, const LinkKey& key) {
  const BlockChain c = d->run.CarveChain(d->Start(), d->size, d->capacity, UINT32_MAX, key);
  std::vector<FreeBlock*> blocks;
  FreeBlock* b = c.first;
  for (uint32_t i = 0; i < c.count; ++i, b = NextOf(b, key)) blocks.push_back(b);
  for (size_t i = blocks.size(); i-- > 0;) d->run.Push(blocks[i], key);
}

// Takes d's first free block as an allocation does (through a class cache):
// the list taken whole, every block but the first given back in order.
// nullptr when d's list is empty.
inline void* PopOne(PoolDesc* d, const LinkKey& key) {
  const BlockChain c = d->run.TakeList(reinterpret_cast<FreeBlock*>(ArenaOf(d)));
  if (c.count == 0) return nullptr;
  std::vector<FreeBlock*> blocks;
  FreeBlock* b = c.first;
  for (uint32_t i = 0; i < c.count; ++i, b = NextOf(b, key)) blocks.push_back(b);
  for (size_t i = blocks.size(); i-- > 1;) d->run.Push(blocks[i], key);
  blocks[0]->next = nullptr;  // as a pop clears the link of the block it hands out
  return blocks[0];
}

// The test's arena source and clock. Reset() before use.
class TestHeapEnv {
 public:
  // Where the clock starts: far from 0, so that "free since" stamps and
  // their differences are ordinary numbers.
  static constexpr uint64_t kStartMs = 10'000'000;

  static const HeapEnv* env() { return &kEnv; }

  // Counts back to zero, the source willing, the clock at `now`.
  static void Reset(uint64_t now = kStartMs) {
    acquire_calls_.store(0);
    acquired_.store(0);
    released_.store(0);
    last_released_.store(nullptr);
    fail_.store(false);
    now_.store(now);
  }

  // The clock: only these move it.
  static uint64_t Now() { return now_.load(); }
  static void SetNow(uint64_t now) { now_.store(now); }
  static void Advance(uint64_t ms) { now_.fetch_add(ms); }

  // While on, acquire_arena returns nullptr (as when the OS refuses memory).
  static void FailAcquire(bool fail) { fail_.store(fail); }

  // acquire_arena calls, arenas it handed out, release_arena calls.
  static uint64_t acquire_calls() { return acquire_calls_.load(); }
  static uint64_t acquired() { return acquired_.load(); }
  static uint64_t released() { return released_.load(); }
  static ArenaHeader* last_released() { return last_released_.load(); }

 private:
  static ArenaHeader* Acquire(Heap* owner) {
    acquire_calls_.fetch_add(1);
    if (fail_.load()) return nullptr;
    ArenaHeader* a = AcquireArena(owner);
    if (a != nullptr) acquired_.fetch_add(1);
    return a;
  }
  static void Release(ArenaHeader* arena, uint64_t now) {
    released_.fetch_add(1);
    last_released_.store(arena);
    ReleaseArena(arena, now);
  }
  static uint64_t Clock() { return now_.load(); }

  static constexpr HeapEnv kEnv{&Acquire, &Release, &Clock};

  static inline std::atomic<uint64_t> acquire_calls_{0};
  static inline std::atomic<uint64_t> acquired_{0};
  static inline std::atomic<uint64_t> released_{0};
  static inline std::atomic<ArenaHeader*> last_released_{nullptr};
  static inline std::atomic<bool> fail_{false};
  static inline std::atomic<uint64_t> now_{kStartMs};
};

// A heap of id `id` taking arenas and the time from `env`, in a mapping of
// its own. Not in the registry: no thread's tls_heap, never an orphan.
class TestHeap {
 public:
  TestHeap(uint32_t id, const HeapEnv* env) {
    InitLinkKey();
    mem_ = os::MapAligned(kBytes, kPoolSize);
    if (mem_ != nullptr) heap_ = new (mem_) Heap(id, GetLinkKey(), env);
  }
  TestHeap(const TestHeap&) = delete;
  TestHeap& operator=(const TestHeap&) = delete;
  ~TestHeap() {
    if (heap_ == nullptr) return;
    // A heap that still owns arenas is their owner (ArenaHeader::owner):
    // its memory stays mapped rather than leave them a dangling owner.
    if (heap_->arenas().OwnsArenas()) return;
    heap_->~Heap();
    os::Unmap(mem_, kBytes);
  }

  Heap* get() const { return heap_; }
  Heap* operator->() const { return heap_; }

  // Takes in what other heaps sent, hands on what it batched, then releases
  // every empty run, idle current run and empty arena (ReleaseOverBudget(0)
  // at the env's time). True when the heap owns no arena afterwards (every
  // block it handed out came back).
  bool Tidy() {
    heap_->DrainRemote();
    heap_->FlushOutgoing();
    HeapTestPeer peer(heap_);
    heap_->ReleaseOverBudget(0, peer.Now());
    return !heap_->arenas().OwnsArenas();
  }

 private:
  static constexpr size_t kBytes = (sizeof(Heap) + kPoolSize - 1) & ~(kPoolSize - 1);

  void* mem_ = nullptr;
  Heap* heap_ = nullptr;
};

}  // namespace strata::internal

#endif  // STRATA_TESTS_ALLOC_HEAP_TEST_PEER_H_
