// Allocator microbenchmarks, written once and instantiated per allocation API.
//
// Every benchmark is a template on an `Api` struct of static functions (see
// the concept below). alloc_benchmark.cc instantiates it with strata's own
// entry points; malloc_benchmark.cc with plain malloc/free/new/delete, so the
// same bodies run against glibc or any allocator preloaded with LD_PRELOAD.
// Benchmark names carry no API name: the runs of both binaries line up by
// name (tools/micro/compare_micro.sh relies on that).
//
// Each benchmark reports items_per_second, one item per malloc+free pair
// (per malloc+realloc+free for the realloc ones), so that 1e9 /
// items_per_second is the CPU nanoseconds per pair. For the threaded
// cross-thread benchmark both rates are summed over threads and CPU time,
// so it is the CPU cost of one pair on one thread.
//
// Not for correctness testing: blocks are not checked, only timed.
#ifndef STRATA_TOOLS_MICRO_MICRO_BENCHMARKS_H_
#define STRATA_TOOLS_MICRO_MICRO_BENCHMARKS_H_

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"

namespace strata::micro {

// What an Api provides (all static, all noexcept-ish, none may return null
// for the sizes used here):
//   void* Malloc(size_t size);          void Free(void* p);
//   void* Calloc(size_t n, size_t size);
//   void* Realloc(void* p, size_t size);
//   void* AllocAligned(size_t align, size_t size);
//   void FreeAligned(void* p, size_t align);
//   void* New(size_t size);             void DeleteSized(void* p, size_t size);
template <class Api>
concept AllocApi = requires(void* p, size_t n) {
  { Api::Malloc(n) } -> std::same_as<void*>;
  { Api::Free(p) };
  { Api::Calloc(n, n) } -> std::same_as<void*>;
  { Api::Realloc(p, n) } -> std::same_as<void*>;
  { Api::AllocAligned(n, n) } -> std::same_as<void*>;
  { Api::FreeAligned(p, n) };
  { Api::New(n) } -> std::same_as<void*>;
  { Api::DeleteSized(p, n) };
};

// What a program does with a block it allocated: writes its first word.
// This matters for allocators that inspect the first word on free (strata's
// double-free heuristic treats a block still holding a free-list link as
// suspect, and checks it on a slower path); BM_MallocFreeUntouched measures
// the pair without it. ClobberMemory keeps the compiler from dropping the
// store as dead before free.
inline void Touch(void* p, uintptr_t value) {
  *static_cast<uintptr_t*>(p) = value;
  benchmark::ClobberMemory();
}

// ---- Single pairs --------------------------------------------------------

// malloc(size) + free, the same block over and over (the fast path).
template <AllocApi Api>
void BM_MallocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  uintptr_t i = 0;
  for (auto _ : state) {
    void* p = Api::Malloc(size);
    Touch(p, ++i);
    Api::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// As BM_MallocFree, but the program never writes the block.
template <AllocApi Api>
void BM_MallocFreeUntouched(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = Api::Malloc(size);
    benchmark::DoNotOptimize(p);
    Api::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// calloc(1, size) + free. The block is zeroed: no touch needed.
template <AllocApi Api>
void BM_Calloc(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = Api::Calloc(1, size);
    benchmark::DoNotOptimize(p);
    Api::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// new(size) + sized delete (strata: Allocate + DeallocateSized).
template <AllocApi Api>
void BM_SizedDelete(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  uintptr_t i = 0;
  for (auto _ : state) {
    void* p = Api::New(size);
    Touch(p, ++i);
    Api::DeleteSized(p, size);
  }
  state.SetItemsProcessed(state.iterations());
}

// Aligned allocation of range(1) bytes at alignment range(0), then free.
template <AllocApi Api>
void BM_Aligned(benchmark::State& state) {
  const size_t align = static_cast<size_t>(state.range(0));
  const size_t size = static_cast<size_t>(state.range(1));
  uintptr_t i = 0;
  for (auto _ : state) {
    void* p = Api::AllocAligned(align, size);
    Touch(p, ++i);
    Api::FreeAligned(p, align);
  }
  state.SetItemsProcessed(state.iterations());
}

// malloc(range(0)), realloc to range(1), free: one item per iteration.
// Used for both growing and shrinking.
template <AllocApi Api>
void BM_Realloc(benchmark::State& state) {
  const size_t from = static_cast<size_t>(state.range(0));
  const size_t to = static_cast<size_t>(state.range(1));
  uintptr_t i = 0;
  for (auto _ : state) {
    void* p = Api::Malloc(from);
    Touch(p, ++i);
    p = Api::Realloc(p, to);
    benchmark::DoNotOptimize(p);
    Api::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- Batches -------------------------------------------------------------

// Allocates range(1) blocks of range(0) bytes, then frees them newest first
// (LIFO) or oldest first (FIFO). One item per block.
template <AllocApi Api, bool kLifo>
void BM_Batch(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const size_t count = static_cast<size_t>(state.range(1));
  // Sized once, outside the timed loop, so the benchmark's own vector does
  // not allocate while timing (it comes from the allocator under test too).
  std::vector<void*> blocks(count);
  for (auto _ : state) {
    for (size_t k = 0; k < count; ++k) {
      void* p = Api::Malloc(size);
      Touch(p, k + 1);
      blocks[k] = p;
    }
    if constexpr (kLifo) {
      for (size_t k = count; k-- > 0;) Api::Free(blocks[k]);
    } else {
      for (size_t k = 0; k < count; ++k) Api::Free(blocks[k]);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(count));
}

// ---- Cross-thread free ---------------------------------------------------

// A single-producer single-consumer ring of blocks in flight between two
// benchmark threads. The producer owns tail_, the consumer head_.
// SYNCHRONIZATION: Push stores a slot, then publishes it with a release
// store of tail_; Pop's acquire load of tail_ pairs with it, so the block's
// contents (and the allocator's writes to it) are visible to the freeing
// thread. Pop releases head_ after reading the slot; Push's acquire load of
// head_ pairs with it before the slot is reused.
class BlockRing {
 public:
  // Deep enough (about a millisecond of traffic) to ride out a short
  // preemption of the consumer on a loaded machine.
  static constexpr size_t kCapacity = 16384;

  // Producer only. False when full.
  bool Push(void* p) {
    const size_t tail = tail_.load(std::memory_order_relaxed);  // own index
    if (tail - head_.load(std::memory_order_acquire) == kCapacity) return false;
    slots_[tail % kCapacity] = p;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer only. nullptr when empty.
  void* Pop() {
    const size_t head = head_.load(std::memory_order_relaxed);  // own index
    if (head == tail_.load(std::memory_order_acquire)) return nullptr;
    void* p = slots_[head % kCapacity];
    head_.store(head + 1, std::memory_order_release);
    return p;
  }

 private:
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) void* slots_[kCapacity] = {};
};

// One ring per benchmark thread (at most two threads use them), and a flag
// per thread raised on its last iteration.
template <AllocApi Api>
struct CrossState {
  static inline BlockRing rings[2];
  static inline std::atomic<bool> done[2];
};

// Runs single-threaded before every run of BM_CrossThreadFree.
template <AllocApi Api>
void ResetCross(const benchmark::State&) {
  // Relaxed: the benchmark threads start after this returns (thread creation
  // orders it).
  for (auto& d : CrossState<Api>::done) d.store(false, std::memory_order_relaxed);
}

// Runs single-threaded after every run: frees what is still in flight, so
// no run leaks into the next.
template <AllocApi Api>
void DrainCross(const benchmark::State&) {
  for (BlockRing& ring : CrossState<Api>::rings) {
    while (void* p = ring.Pop()) Api::Free(p);
  }
}

// Thread t allocates range(0)-byte blocks and sends them through ring t; it
// frees what arrives on ring (t + 1) % threads. With two threads every free
// is of a block the other thread allocated; with one thread the ring loops
// back (the baseline: same work, all frees local). A thread whose ring is
// full frees incoming blocks while it waits for room, so a thread that runs
// ahead cannot turn the benchmark into local frees; it stops waiting only
// once the other thread has finished its iterations (after which nothing
// would drain its ring), frees the block itself and counts it in
// "local_frees" (per iteration; near zero unless the threads barely
// overlapped, e.g. on a loaded machine).
template <AllocApi Api>
void BM_CrossThreadFree(benchmark::State& state) {
  using S = CrossState<Api>;
  const size_t size = static_cast<size_t>(state.range(0));
  const int self = state.thread_index();
  const int peer = (self + 1) % state.threads();
  BlockRing& out = S::rings[self];
  BlockRing& in = S::rings[peer];
  const auto FreeIncoming = [&in](int most) {
    int freed = 0;
    for (; freed < most; ++freed) {
      void* q = in.Pop();
      if (q == nullptr) break;
      Api::Free(q);
    }
    return freed;
  };
  int64_t local_frees = 0;
  uintptr_t i = 0;
  const auto last = static_cast<uintptr_t>(state.max_iterations);
  for (auto _ : state) {
    void* p = Api::Malloc(size);
    Touch(p, ++i);
    // Acquire pairs with the peer's release of done: its frees are over.
    while (!out.Push(p)) {
      if (S::done[peer].load(std::memory_order_acquire)) {
        Api::Free(p);
        ++local_frees;
        break;
      }
      // Nothing to do but wait: let the peer have the CPU if it shares ours.
      if (FreeIncoming(1) == 0) std::this_thread::yield();
    }
    // Up to two per iteration, so a consumer that fell behind catches up.
    FreeIncoming(2);
    // Release: published after this thread's last Pop, for the peer above.
    if (i == last) S::done[self].store(true, std::memory_order_release);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["local_frees"] =
      benchmark::Counter(static_cast<double>(local_frees), benchmark::Counter::kAvgIterations);
}

// ---- Registration --------------------------------------------------------

// Registers every benchmark for Api. Call once, before RunSpecifiedBenchmarks
// (a namespace-scope initializer does: see the two binaries).
template <AllocApi Api>
bool RegisterAll() {
  // Small classes (8..512), medium (to 64 KiB), and one large size.
  auto* pairs = benchmark::RegisterBenchmark("BM_MallocFree", BM_MallocFree<Api>);
  for (int64_t size : {8, 16, 24, 32, 48, 64, 96, 128, 256, 384, 512,  // small
                       640, 1024, 2048, 4096, 8192, 16384, 32768, 65536,  // medium
                       256 << 10}) {                                      // large
    pairs->Arg(size);
  }
  benchmark::RegisterBenchmark("BM_MallocFreeUntouched", BM_MallocFreeUntouched<Api>)
      ->Arg(32)
      ->Arg(512);
  benchmark::RegisterBenchmark("BM_Calloc", BM_Calloc<Api>)->Arg(16)->Arg(64)->Arg(512)->Arg(4096);
  benchmark::RegisterBenchmark("BM_SizedDelete", BM_SizedDelete<Api>)
      ->Arg(16)
      ->Arg(64)
      ->Arg(512)
      ->Arg(4096);
  auto* aligned = benchmark::RegisterBenchmark("BM_Aligned", BM_Aligned<Api>);
  for (int64_t align : {16, 32, 64, 128, 256, 512, 1024, 2048, 4096}) aligned->Args({align, 64});
  benchmark::RegisterBenchmark("BM_ReallocGrow", BM_Realloc<Api>)
      ->Args({16, 32})
      ->Args({64, 128})
      ->Args({128, 512})
      ->Args({512, 2048})
      ->Args({4096, 16384})
      ->Args({16384, 131072});
  benchmark::RegisterBenchmark("BM_ReallocShrink", BM_Realloc<Api>)
      ->Args({128, 100})  // fits the same block
      ->Args({512, 64})
      ->Args({4096, 512})
      ->Args({65536, 4096});
  for (auto* batch : {benchmark::RegisterBenchmark("BM_BatchLifo", BM_Batch<Api, true>),
                      benchmark::RegisterBenchmark("BM_BatchFifo", BM_Batch<Api, false>)}) {
    for (int64_t size : {16, 64, 512, 4096}) batch->Args({size, 1000});
    batch->Args({64, 100})->Args({64, 10000});
  }
  benchmark::RegisterBenchmark("BM_CrossThreadFree", BM_CrossThreadFree<Api>)
      ->Arg(32)
      ->Arg(512)
      ->Threads(1)
      ->Threads(2)
      ->Setup(ResetCross<Api>)
      ->Teardown(DrainCross<Api>);
  return true;
}

}  // namespace strata::micro

#endif  // STRATA_TOOLS_MICRO_MICRO_BENCHMARKS_H_
