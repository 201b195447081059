// Torture: blocks freed twice, crosswise, in every state a free block can be
// in, with the error mode set to count. Checks that each double free is
// counted exactly once, that the process goes on, and that no block is ever
// handed out while it is live.
//
// Each round, in phases separated by barriers (so that no block is handed
// out again between its two frees, and no thread reads a block's words
// while its owner writes them):
//   A  every worker allocates blocks (8 B .. large) and fills them; an
//      "ephemeral owner" thread allocates some and exits (its heap becomes
//      an orphan, which still owns them);
//   B  each block is freed once, by a planned thread: its owner, another
//      worker, or a short-lived thread that exits right after (its batches
//      are flushed at exit);
//   S  each worker settles at random: nothing (blocks wait in its outgoing
//      batches), a flush (they wait in the owners' queues), a drain (the
//      blocks sent to it go back to their runs), or both;
//   C0 the ephemeral owner's planned blocks are freed again, by one thread;
//   C1 a planned subset is freed again by threads that do not own them;
//   C2 another subset is freed again by their owners;
//   D  every worker flushes and drains (owners judge suspect 8 B blocks);
//   E  every worker allocates twice as many blocks again, each checked
//      against the set of live blocks, fills them, checks and frees them.
//
//   bazel run -c opt //stress:double_free_torture -- --threads=8 --rounds=2000
#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/error.h"
#include "alloc/heap.h"
#include "alloc/release.h"
#include "alloc/strata.h"
#include "stress/stress_common.h"
#include "tests/util/sanitizer.h"

namespace strata::stress {
namespace {

// The addresses of live blocks: an insert that finds its address already
// there is a block handed out twice. Open addressing, cleared every round.
class LiveSet {
 public:
  explicit LiveSet(size_t capacity) : slots_(capacity) {}
  void Insert(const void* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    for (size_t i = Hash(a);; i = (i + 1) % slots_.size()) {
      uintptr_t seen = 0;
      // Relaxed: the harness's own bookkeeping; the barriers order rounds.
      if (slots_[i].compare_exchange_strong(seen, a, std::memory_order_relaxed)) return;
      if (seen == a) {
        std::fprintf(stderr, "double_free_torture: %p handed out while live\n", p);
        std::abort();
      }
    }
  }
  void Erase(const void* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    for (size_t i = Hash(a);; i = (i + 1) % slots_.size()) {
      // Relaxed: as Insert. A tombstone keeps later entries reachable.
      uintptr_t seen = slots_[i].load(std::memory_order_relaxed);
      if (seen == a && slots_[i].compare_exchange_strong(seen, kTombstone, std::memory_order_relaxed)) {
        return;
      }
      if (seen == 0) {
        std::fprintf(stderr, "double_free_torture: %p freed but not live\n", p);
        std::abort();
      }
    }
  }
  void Clear() {
    for (auto& s : slots_) s.store(0, std::memory_order_relaxed);
  }

 private:
  static constexpr uintptr_t kTombstone = 1;
  size_t Hash(uintptr_t a) const { return (a >> 3) * 0x9e3779b97f4a7c15ULL % slots_.size(); }
  std::vector<std::atomic<uintptr_t>> slots_;
};

constexpr size_t kSizes[] = {8, 8, 16, 24, 32, 48, 64, 64, 100, 128, 256, 512, 1000, 4000, 20000, 100000};

struct Block {
  void* p = nullptr;
  size_t size = 0;
  int owner = 0;   // worker index, or kEphemeral
  int first = 0;   // worker index, or kExiter
  int second = -1;  // -1: freed once only
};
constexpr int kEphemeral = -2;
constexpr int kExiter = -3;

void Fill(void* p, size_t n, uint8_t tag) { memset(p, tag, n < 256 ? n : 256); }
void Verify(const void* p, size_t n, uint8_t tag) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < (n < 256 ? n : 256); ++i) {
    if (b[i] != tag) {
      std::fprintf(stderr, "double_free_torture: block %p (%zu B) overwritten at %zu\n", p, n, i);
      std::abort();
    }
  }
}
size_t Pick(Rng& rng, size_t n) { return static_cast<size_t>(rng.Range(0, n - 1)); }
uint8_t TagOf(const void* p) { return static_cast<uint8_t>((reinterpret_cast<uintptr_t>(p) >> 4) | 1); }

}  // namespace
}  // namespace strata::stress

int main(int argc, char** argv) {
  using namespace strata::stress;
  namespace internal = strata::internal;
  Flags flags(argc, argv);
  const int threads = static_cast<int>(flags.Get("threads", 4, "worker threads (>= 3)"));
  const long rounds = flags.Get("rounds", strata::testing::Scaled(20L, 6L), "rounds");
  const int per_thread = static_cast<int>(flags.Get("blocks", 128, "blocks each worker allocates per round"));
  const long seed = flags.Get("seed", 1, "RNG seed");
  flags.Done();
  if (threads < 3) {
    std::fprintf(stderr, "double_free_torture: --threads must be at least 3\n");
    return 2;
  }
  Begin("double_free_torture");
  internal::SetErrorMode(internal::ErrorMode::kCount);
  // The global pass would tidy orphans (and drain their queues) at any
  // moment; the phases must decide who touches which block when.
  internal::PauseRelease();

  const int ephemeral_blocks = per_thread / 2;
  const size_t total = static_cast<size_t>(threads) * per_thread + ephemeral_blocks;
  std::vector<Block> blocks(total);
  LiveSet live(8 * (total + 2 * static_cast<size_t>(threads) * per_thread) + 1);
  std::barrier sync(threads);
  std::atomic<uint64_t> planned{0};
  const uint64_t errors_before = internal::ErrorCount();
  Rng plan_rng(static_cast<uint64_t>(seed));
  std::vector<int> settle(static_cast<size_t>(threads));

  // The plan of each round is made by worker 0 between barriers.
  auto make_plan = [&] {
    live.Clear();
    for (size_t i = 0; i < total; ++i) {
      Block& b = blocks[i];
      b.p = nullptr;
      b.size = kSizes[Pick(plan_rng, sizeof(kSizes) / sizeof(kSizes[0]))];
      b.owner = i < static_cast<size_t>(threads) * per_thread ? static_cast<int>(i / per_thread) : kEphemeral;
      b.first = Pick(plan_rng, 8) == 0 ? kExiter : static_cast<int>(Pick(plan_rng, threads));
      b.second = -1;
      if (Pick(plan_rng, 2) == 0) {
        const int kind = static_cast<int>(Pick(plan_rng, 3));
        if (kind == 0 && b.owner >= 0) {
          b.second = b.owner;  // the owner (C2)
        } else if (kind == 1 && b.first >= 0 && b.first != b.owner) {
          b.second = b.first;  // the thread that freed it first (C1)
        } else {
          // A third thread (C1): neither its owner nor its first freer.
          for (int t = static_cast<int>(Pick(plan_rng, threads));; t = (t + 1) % threads) {
            if (t != b.owner && t != b.first) {
              b.second = t;
              break;
            }
          }
        }
      }
      if (b.second >= 0) planned.fetch_add(1, std::memory_order_relaxed);
    }
    for (int& s : settle) s = static_cast<int>(Pick(plan_rng, 4));
  };

  auto allocate = [&](Block& b) {
    b.p = strata::Allocate(b.size);
    if (b.p == nullptr) {
      std::fprintf(stderr, "double_free_torture: allocation of %zu failed\n", b.size);
      std::abort();
    }
    live.Insert(b.p);
    Fill(b.p, b.size, TagOf(b.p));
  };
  auto free_first = [&](Block& b) {
    Verify(b.p, b.size, TagOf(b.p));
    live.Erase(b.p);
    strata::Deallocate(b.p);
  };

  auto worker = [&](int self) {
    std::vector<Block> again(2 * static_cast<size_t>(per_thread));
    Rng rng(static_cast<uint64_t>(seed) * 7919 + self);
    for (long r = 0; r < rounds; ++r) {
      if (self == 0) make_plan();
      sync.arrive_and_wait();
      // A: allocate.
      for (size_t i = 0; i < total; ++i) {
        if (blocks[i].owner == self) allocate(blocks[i]);
      }
      if (self == 0) {
        std::thread ephemeral([&] {
          for (Block& b : blocks) {
            if (b.owner == kEphemeral) allocate(b);
          }
        });
        ephemeral.join();  // its heap is an orphan now, owning its blocks
      }
      sync.arrive_and_wait();
      // B: the first frees.
      for (Block& b : blocks) {
        if (b.first == self) free_first(b);
      }
      if (self == 0) {
        std::thread exiter([&] {
          for (Block& b : blocks) {
            if (b.first == kExiter) free_first(b);
          }
        });
        exiter.join();
      }
      sync.arrive_and_wait();
      // S: settle.
      internal::Heap* heap = internal::tls_heap;
      if (settle[self] & 1) heap->FlushOutgoing();
      if (settle[self] & 2) heap->DrainRemote();
      sync.arrive_and_wait();
      // C0: the ephemeral owner's blocks, freed again by one thread alone.
      // Their heap is an orphan that any worker may have absorbed by now,
      // so their second free may be local and drain the absorber's queue:
      // in C1, beside other threads' second frees of that worker's own
      // blocks, it would write the words those frees read.
      if (self == 0) {
        for (Block& b : blocks) {
          if (b.second >= 0 && b.owner == kEphemeral) strata::Deallocate(b.p);
        }
      }
      sync.arrive_and_wait();
      // C1: second frees by threads that do not own the block.
      for (Block& b : blocks) {
        if (b.second == self && b.owner != self && b.owner != kEphemeral) strata::Deallocate(b.p);
      }
      sync.arrive_and_wait();
      // C2: second frees by the owners.
      for (Block& b : blocks) {
        if (b.second == self && b.owner == self) strata::Deallocate(b.p);
      }
      sync.arrive_and_wait();
      // D: everything sent is delivered and judged.
      for (int k = 0; k < 2; ++k) {
        heap->FlushOutgoing();
        sync.arrive_and_wait();
        heap->DrainRemote();
        sync.arrive_and_wait();
      }
      // E: allocate again; nothing live may come back.
      for (Block& b : again) {
        b.size = kSizes[Pick(rng, sizeof(kSizes) / sizeof(kSizes[0]))];
        allocate(b);
      }
      sync.arrive_and_wait();
      for (Block& b : again) free_first(b);
      CountOps(static_cast<uint64_t>(per_thread) * 4);
      sync.arrive_and_wait();
    }
    // Whatever this worker still batches goes home before it exits.
    internal::tls_heap->FlushOutgoing();
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  for (auto& t : pool) t.join();
  internal::ResumeRelease();

  // Finish() adopts the orphans and drains every queue: the last suspects
  // are judged there, still in count mode.
  int rc = Finish();
  const uint64_t counted = internal::ErrorCount() - errors_before;
  const uint64_t want = planned.load(std::memory_order_relaxed);
  internal::SetErrorMode(internal::ErrorMode::kAbort);
  std::printf("double_free_torture: %llu double frees, %llu counted\n", (unsigned long long)want,
              (unsigned long long)counted);
  if (counted != want) {
    std::fprintf(stderr, "double_free_torture: %llu double frees but %llu counted\n",
                 (unsigned long long)want, (unsigned long long)counted);
    rc = 1;
  }
  return rc;
}
