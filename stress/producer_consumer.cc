// Workload (a): producers allocate, consumers free. Thread counts and size
// ranges are asymmetric: every block dies on a thread that did not make it,
// so all frees are remote and travel back in batches.
//
//   bazel run -c opt //stress:producer_consumer -- --producers=6 --consumers=2 --iterations=1000000
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "stress/stress_common.h"
#include "tests/util/sanitizer.h"

namespace strata::stress {
namespace {

constexpr int kBatch = 64;

struct Batch {
  void* blocks[kBatch];
  int n = 0;
};

// The harness's channel: a mutex is fine here, it is not the allocator.
class Channel {
 public:
  void Put(Batch* b) {
    std::lock_guard<std::mutex> hold(mu_);
    q_.push_back(b);
  }
  Batch* Take() {
    std::lock_guard<std::mutex> hold(mu_);
    if (q_.empty()) return nullptr;
    Batch* b = q_.back();
    q_.pop_back();
    return b;
  }
  size_t Size() {
    std::lock_guard<std::mutex> hold(mu_);
    return q_.size();
  }

 private:
  std::mutex mu_;
  std::vector<Batch*> q_;
};

}  // namespace
}  // namespace strata::stress

int main(int argc, char** argv) {
  using namespace strata::stress;
  Flags flags(argc, argv);
  const long producers = flags.Get("producers", 3, "threads that allocate");
  const long consumers = flags.Get("consumers", 1, "threads that free");
  const long iterations =
      flags.Get("iterations", strata::testing::Scaled(100000L, 20000L), "blocks per producer");
  const long max_size = flags.Get("max_size", 2048, "largest block (bytes)");
  const long max_backlog = flags.Get("max_backlog", 256, "batches in flight before producers wait");
  const long seed = flags.Get("seed", 1, "RNG seed");
  flags.Done();
  Begin("producer_consumer");

  Channel channel;
  std::atomic<long> producers_left{producers};
  std::vector<std::thread> threads;
  for (long p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      Rng rng(seed * 1000 + p);
      // Asymmetric sizes: producer p favours its own part of the range.
      const uint64_t lo = 16 + (p % 4) * 8;
      const uint64_t hi = p % 2 == 0 ? static_cast<uint64_t>(max_size) : 256;
      Batch* b = new Batch;
      for (long i = 0; i < iterations; ++i) {
        b->blocks[b->n++] = NewBlock(rng.LogRange(lo, hi));
        if (b->n == kBatch) {
          while (channel.Size() > static_cast<size_t>(max_backlog)) std::this_thread::yield();
          channel.Put(b);
          b = new Batch;
        }
      }
      if (b->n > 0) {
        channel.Put(b);
      } else {
        delete b;
      }
      CountOps(iterations);
      producers_left.fetch_sub(1, std::memory_order_release);
    });
  }
  for (long c = 0; c < consumers; ++c) {
    threads.emplace_back([&] {
      uint64_t freed = 0;
      for (;;) {
        const bool done = producers_left.load(std::memory_order_acquire) == 0;
        Batch* b = channel.Take();
        if (b == nullptr) {
          if (done) break;
          std::this_thread::yield();
          continue;
        }
        for (int i = 0; i < b->n; ++i) CheckAndFree(b->blocks[i]);
        freed += b->n;
        delete b;
      }
      CountOps(freed);
    });
  }
  for (auto& t : threads) t.join();
  return Finish();
}
