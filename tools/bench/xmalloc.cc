// xmalloc: asymmetric producer/consumer in the manner of xmalloc-test.
// Producer threads only allocate, consumer threads only free: blocks travel
// in batches through a small bounded queue (one mutex, held only to push or
// pop a pointer), so nearly every free is remote and the freeing threads
// never allocate small blocks to reuse what they free.
// With --threads=1 the only thread produces a batch and consumes it itself.
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

// A batch of blocks, itself heap-allocated by the producer and freed by the
// consumer.
struct Batch {
  uint32_t count = 0;
  std::vector<void*> block;
  std::vector<uint32_t> size;
  std::vector<uint64_t> tag;
};

// Bounded FIFO of batches. SYNCHRONIZATION: every field under mu_.
class BatchQueue {
 public:
  BatchQueue(size_t capacity, int producers) : ring_(capacity), producers_(producers) {}

  void Push(Batch* b) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return count_ < ring_.size(); });
    ring_[(head_ + count_) % ring_.size()] = b;
    ++count_;
    not_empty_.notify_one();
  }
  // Returns the next batch, or null once every producer has closed and the
  // queue is empty.
  Batch* Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return count_ > 0 || producers_ == 0; });
    if (count_ == 0) return nullptr;
    Batch* b = ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    --count_;
    not_full_.notify_one();
    return b;
  }
  void CloseProducer() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--producers_ == 0) not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::vector<Batch*> ring_;
  size_t head_ = 0, count_ = 0;
  int producers_;
};

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("xmalloc",
                             "producer threads allocate, consumer threads free, batches of blocks "
                             "passing through a bounded queue",
                             argc, argv);
  const long threads = flags.Get("threads", 2, "threads in all (half producers, at least one each)");
  const long iterations = flags.Get("iterations", 6000000, "blocks in total");
  const long batch = flags.Get("batch", 256, "blocks per batch");
  const long depth = flags.Get("depth", 64, "queue capacity (batches)");
  const long min_size = flags.Get("min-size", 8, "smallest block (bytes)");
  const long max_size = flags.Get("max-size", 512, "largest block (bytes)");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || batch < 1 || depth < 1 || min_size < 1 || max_size < min_size) {
    strata::bench::Fail("need threads, batch, depth, min-size >= 1 and max-size >= min-size");
  }

  const int producers = threads == 1 ? 1 : static_cast<int>(threads / 2);
  const int consumers = threads == 1 ? 0 : static_cast<int>(threads) - producers;
  const uint64_t batches = (static_cast<uint64_t>(iterations) + static_cast<uint64_t>(batch) - 1) /
                           static_cast<uint64_t>(batch);
  BatchQueue queue(static_cast<size_t>(depth), producers);
  std::vector<ThreadResult> results(static_cast<size_t>(producers + consumers));
  strata::bench::Stopwatch watch;

  auto make_batch = [&](Rng& rng, ThreadResult& out) {
    Batch* b = new Batch;
    b->count = static_cast<uint32_t>(batch);
    b->block.resize(b->count);
    b->size.resize(b->count);
    b->tag.resize(b->count);
    for (uint32_t k = 0; k < b->count; ++k) {
      const size_t size = rng.Range(static_cast<uint64_t>(min_size), static_cast<uint64_t>(max_size));
      void* p = strata::bench::Checked(std::malloc(size), size);
      b->tag[k] = rng.Next();
      strata::bench::Stamp(p, size, b->tag[k]);
      b->block[k] = p;
      b->size[k] = static_cast<uint32_t>(size);
    }
    out.ops += b->count;
    return b;
  };
  auto consume = [](Batch* b, ThreadResult& out) {
    for (uint32_t k = 0; k < b->count; ++k) {
      strata::bench::Verify(b->block[k], b->size[k], b->tag[k]);
      out.checksum += Mix(b->tag[k] ^ b->size[k]);
      std::free(b->block[k]);
    }
    delete b;
  };

  strata::bench::RunThreads(producers + consumers, [&](int index) {
    ThreadResult& out = results[static_cast<size_t>(index)];
    if (index >= producers) {  // a consumer
      while (Batch* b = queue.Pop()) consume(b, out);
      return;
    }
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    const uint64_t mine = strata::bench::Share(batches, static_cast<uint64_t>(producers),
                                               static_cast<uint64_t>(index));
    for (uint64_t i = 0; i < mine; ++i) {
      Batch* b = make_batch(rng, out);
      if (consumers == 0) {
        consume(b, out);
      } else {
        queue.Push(b);
      }
    }
    queue.CloseProducer();
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
