// Memory back to the OS: what each knob of the release policy does, seen in
// strata's statistics and in the process's resident memory.
#include "alloc/release.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "alloc/heap.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"

namespace strata {
namespace {

using internal::tls_heap;

// Every test starts from the defaults with the background thread off (so
// that only what the test does happens), and a clean slate of free memory.
class ReleaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_internal::ResetForTesting();
    SetBackgroundRelease(false);
    ReleaseMemory();
  }
  void TearDown() override {
    options_internal::ResetForTesting();
    SetBackgroundRelease(false);
    ReleaseMemory();
  }

  static Stats Snapshot() {
    Stats s;
    GetStats(&s);
    return s;
  }
};

// Allocates `bytes` in blocks of `size`, writing every page.
std::vector<void*> Fill(size_t bytes, size_t size) {
  std::vector<void*> blocks;
  blocks.reserve(bytes / size);
  for (size_t done = 0; done < bytes; done += size) {
    void* p = Allocate(size);
    memset(p, 0xab, size);
    blocks.push_back(p);
  }
  return blocks;
}

void FreeAll(std::vector<void*>& blocks) {
  for (void* p : blocks) Deallocate(p);
  blocks.clear();
}

// Polls cond every 10 ms for up to 20 s (a wait for an event, not a timing
// measurement: it only fails if the event never comes).
template <typename Cond>
bool Eventually(Cond cond) {
  for (int i = 0; i < 2000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

TEST_F(ReleaseTest, ReleaseMemoryGivesFreedPagesBackAndRssFalls) {
  SetPurgeDelayMs(-1);  // nothing automatic: only ReleaseMemory purges
  SetOption(Option::kThreadCacheBytes, int64_t{1} << 30);  // keep every pool in this heap
  SetOption(Option::kTotalCacheBytes, int64_t{1} << 30);
  const size_t bytes = testing::Scaled<size_t>(64 << 20, 32 << 20);
  std::vector<void*> blocks = Fill(bytes, 256);
  const uint64_t rss_full = internal::os::ResidentBytes();
  FreeAll(blocks);
  const Stats held = Snapshot();
  // Freed but still resident: cached by this thread's heap (as empty runs
  // kept whole, or free pools), with no deadline.
  EXPECT_GE(held.retention.free_pools_cached + held.retention.free_in_empty_runs, bytes * 8 / 10);
  EXPECT_EQ(held.retention.next_purge_ms, -1);
  const uint64_t rss_held = internal::os::ResidentBytes();
  EXPECT_GT(rss_held + bytes / 4, rss_full) << "free pools stay resident until purged";

  const size_t released = ReleaseMemory();
  EXPECT_GE(released, bytes * 9 / 10);
  const Stats after = Snapshot();
  EXPECT_LT(after.retention.free_pools_cached + after.retention.free_in_empty_runs, bytes / 20);
  EXPECT_GE(after.retention.free_pools_purged + after.retention.empty_arenas_purged +
                after.arenas_unmapped * internal::kArenaSize,
            bytes * 9 / 10);
  const uint64_t rss_after = internal::os::ResidentBytes();
  EXPECT_LT(rss_after + bytes / 2, rss_held) << "RSS must fall by most of what was freed";
}

TEST_F(ReleaseTest, PurgeDelayPurgesFromTheSlowPathOnceDue) {
  SetPurgeDelayMs(30);
  SetOption(Option::kThreadCacheBytes, int64_t{1} << 30);
  std::vector<void*> blocks = Fill(8 << 20, 1024);
  FreeAll(blocks);
  auto resident_free = [] {
    const Stats s = Snapshot();
    return s.retention.free_pools_cached + s.retention.free_in_empty_runs;
  };
  EXPECT_GT(resident_free(), size_t{4} << 20);
  // Once the delay has passed, this thread's next slow paths purge (runs
  // of 4 KiB blocks are claimed and released on every round).
  std::vector<void*> churn;
  ASSERT_TRUE(Eventually([&] {
    churn = Fill(256 << 10, 4096);
    FreeAll(churn);
    return resident_free() < (size_t{1} << 20);
  }));
  EXPECT_GT(Snapshot().pools_purged, 0u);
}

TEST_F(ReleaseTest, BackgroundThreadPurgesWhileNobodyAllocates) {
  SetPurgeDelayMs(20);
  SetOption(Option::kThreadCacheBytes, int64_t{1} << 30);
  ASSERT_TRUE(SetBackgroundRelease(true));  // starts the thread
  ASSERT_TRUE(Eventually([] { return internal::GetBackgroundState().running; }));
  std::vector<void*> blocks = Fill(8 << 20, 512);
  FreeAll(blocks);
  // This thread now sleeps: only the background thread can purge.
  EXPECT_TRUE(Eventually([] {
    const Stats s = Snapshot();
    return s.retention.free_pools_cached + s.retention.free_in_empty_runs < (size_t{1} << 20);
  }));
  EXPECT_GT(internal::GetBackgroundState().passes, 0u);
  ASSERT_TRUE(SetBackgroundRelease(false));
  EXPECT_TRUE(Eventually([] { return !internal::GetBackgroundState().running; }));
}

TEST_F(ReleaseTest, ThreadCacheBudgetBoundsWhatAHeapKeeps) {
  SetPurgeDelayMs(-1);
  SetOption(Option::kThreadCacheBytes, 256 << 10);
  std::vector<void*> blocks = Fill(16 << 20, 128);
  FreeAll(blocks);
  // Empty arenas beyond the budget went back to the shared stack.
  EXPECT_LE(tls_heap->arenas().CachedPoolBytes(), size_t{256 << 10} + internal::kArenaSize);
  EXPECT_GT(Snapshot().arenas_empty, 0u);

  SetOption(Option::kThreadCacheBytes, int64_t{1} << 30);
  blocks = Fill(16 << 20, 128);
  FreeAll(blocks);
  EXPECT_GE(tls_heap->arenas().CachedPoolBytes(), size_t{15} << 20);
}

TEST_F(ReleaseTest, TotalCacheBudgetOverridesThePerThreadOne) {
  SetPurgeDelayMs(-1);
  SetOption(Option::kThreadCacheBytes, int64_t{1} << 30);
  SetOption(Option::kTotalCacheBytes, 0);
  std::vector<void*> blocks = Fill(16 << 20, 128);
  FreeAll(blocks);
  EXPECT_LE(tls_heap->arenas().CachedPoolBytes(), size_t{1} << 20);
}

TEST_F(ReleaseTest, ArenasBeyondTheRetainedCountAreUnmapped) {
  SetPurgeDelayMs(-1);
  SetOption(Option::kThreadCacheBytes, 0);  // every empty arena goes to the shared stack
  SetOption(Option::kArenasRetained, 2);
  std::vector<void*> blocks = Fill(16 << 20, 2048);
  FreeAll(blocks);
  const Stats before = Snapshot();
  ASSERT_GT(before.arenas_empty, 2u);
  ReleaseMemory();
  const Stats after = Snapshot();
  EXPECT_EQ(after.arenas_empty, 2u);
  EXPECT_EQ(after.arenas_empty_purged, 2u);
  EXPECT_GE(after.arenas_unmapped, before.arenas_unmapped + before.arenas_empty - 2);
  EXPECT_LT(after.os_mapped_bytes, before.os_mapped_bytes);
  // The unmapped arenas' addresses are no longer strata's.
  blocks = Fill(1 << 20, 2048);  // and new memory still comes
  FreeAll(blocks);
}

TEST_F(ReleaseTest, PurgeModeFreeStillGivesPagesBack) {
  SetPurgeDelayMs(-1);
  SetOption(Option::kThreadCacheBytes, int64_t{1} << 30);
  ASSERT_TRUE(SetOptionByName("purge_mode", "free"));
  std::vector<void*> blocks = Fill(4 << 20, 256);
  FreeAll(blocks);
  const uint64_t purged_before = Snapshot().os_purged_bytes;
  EXPECT_GE(ReleaseMemory(), size_t{3} << 20);
  EXPECT_GE(Snapshot().os_purged_bytes, purged_before + (size_t{3} << 20));
}

TEST_F(ReleaseTest, LargeCacheKeepsMappingsOnlyWithinItsBudget) {
  SetPurgeDelayMs(-1);
  void* p = Allocate(1 << 20);
  Deallocate(p);
  EXPECT_EQ(Snapshot().large_cached, 1u);
  ReleaseMemory();
  EXPECT_EQ(Snapshot().large_cached, 0u);
  SetOption(Option::kLargeCacheBytes, 0);
  p = Allocate(1 << 20);
  Deallocate(p);
  EXPECT_EQ(Snapshot().large_cached, 0u);
}

TEST_F(ReleaseTest, LargeCacheDecays) {
  SetPurgeDelayMs(20);
  void* p = Allocate(2 << 20);
  Deallocate(p);
  EXPECT_EQ(Snapshot().large_cached, 1u);
  std::vector<void*> churn;
  EXPECT_TRUE(Eventually([&] {
    churn = Fill(512 << 10, 4096);  // slow paths run the global pass when due
    FreeAll(churn);
    return Snapshot().large_cached == 0;
  }));
}

TEST_F(ReleaseTest, RemoteBatchBytesSetsTheBatchSize) {
  auto batches_of_one = [] { return ReleaseTest::Snapshot().batch_histogram[0]; };
  auto free_elsewhere = [](size_t n) {
    std::vector<void*> blocks(n);
    for (auto& p : blocks) {
      p = Allocate(64);
      memset(p, 1, 64);  // an untouched block looks free: it would be checked, not batched
    }
    std::thread([&] {
      for (void* p : blocks) Deallocate(p);
    }).join();
    tls_heap->DrainRemote();
  };
  const uint64_t before = batches_of_one();
  SetRemoteBatchBytes(0);  // every remote free is handed over alone
  free_elsewhere(100);
  EXPECT_GE(batches_of_one(), before + 100);
  const Stats mid = Snapshot();
  SetRemoteBatchBytes(64 << 10);  // 1024 blocks of 64 B per batch
  free_elsewhere(4096);
  const Stats end = Snapshot();
  EXPECT_GE(end.remote_batches - mid.remote_batches, 4u);
  EXPECT_LE(end.remote_batches - mid.remote_batches, 5u);
  // Four full batches of 1024 blocks, in the last bucket (512 and more).
  EXPECT_GE(end.batch_histogram[kBatchHistogramBuckets - 1] -
                mid.batch_histogram[kBatchHistogramBuckets - 1],
            4u);
}

TEST_F(ReleaseTest, DetailedStatsCountRequestedBytes) {
  const size_t cls = internal::SizeToClass(100);
  const Stats off = Snapshot();
  void* p = Allocate(100);
  Deallocate(p);
  EXPECT_EQ(Snapshot().classes[cls].allocations, off.classes[cls].allocations);
  ASSERT_TRUE(SetOptionByName("stats", "1"));
  for (int i = 0; i < 10; ++i) Deallocate(Allocate(100));
  const Stats on = Snapshot();
  EXPECT_TRUE(on.detailed);
  EXPECT_EQ(on.classes[cls].allocations, off.classes[cls].allocations + 10);
  EXPECT_EQ(on.classes[cls].requested_bytes, off.classes[cls].requested_bytes + 1000);
  EXPECT_GE(on.handed_out_bytes, on.requested_bytes);
  ASSERT_TRUE(SetOptionByName("stats", "0"));
  for (int i = 0; i < 10; ++i) Deallocate(Allocate(100));
  EXPECT_EQ(Snapshot().classes[cls].allocations, on.classes[cls].allocations);
  EXPECT_TRUE(tls_heap->IsValid());
}

// A thread whose blocks others free, and that sleeps (a main thread that
// hands its work out and joins): the release engine frees what waits in its
// queue, keeping the runs that empty and purging them, while the thread
// lives; the thread then goes on with a heap that holds together.
TEST_F(ReleaseTest, ASleepingOwnersQueueIsCollected) {
  SetPurgeDelayMs(10000);  // only the collection purges
  std::vector<void*> blocks;
  std::atomic<int> step{0};
  bool valid_after = false;
  std::thread owner([&] {
    blocks = Fill(4 << 20, 256);
    step.store(1, std::memory_order_release);
    // Sleeps in no strata path until told (bounded: 60 s).
    for (int i = 0; i < 6000 && step.load(std::memory_order_acquire) < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::vector<void*> again = Fill(1 << 20, 256);
    FreeAll(again);
    valid_after = tls_heap->IsValid();
  });
  ASSERT_TRUE(Eventually([&] { return step.load(std::memory_order_acquire) == 1; }));
  FreeAll(blocks);  // remote frees, batched to the owner's queue
  tls_heap->FlushOutgoing();
  const Stats before = Snapshot();
  EXPECT_GE(before.queued_bytes, size_t{1} << 20);
  ReleaseMemory();  // the pass collects the sleeping owner's queue
  const Stats after = Snapshot();
  EXPECT_LT(after.queued_bytes, size_t{64} << 10);
  EXPECT_GT(after.queues_collected, before.queues_collected);
  // What emptied was purged at once: no resident empty run waits for the
  // 10-second delay.
  EXPECT_LT(after.retention.free_in_empty_runs, size_t{1} << 20);
  step.store(2, std::memory_order_release);
  owner.join();
  EXPECT_TRUE(valid_after);
}

// The same while the owner allocates and frees without pause: its fast and
// slow paths race the collections (TSan checks the protocol: heap.h).
TEST_F(ReleaseTest, CollectionsRaceABusyOwner) {
  std::atomic<bool> stop{false};
  std::atomic<int> handed{0};
  std::vector<std::vector<void*>> rounds(8);
  bool valid = false;
  std::thread owner([&] {
    for (size_t r = 0; r < rounds.size(); ++r) {
      rounds[r] = Fill(2 << 20, 64 + 32 * (r % 4));
      handed.store(static_cast<int>(r + 1), std::memory_order_release);
      for (int i = 0; i < 2000; ++i) Deallocate(Allocate(16 + (i % 200) * 8));
    }
    while (!stop.load(std::memory_order_acquire)) {
      for (int i = 0; i < 1000; ++i) Deallocate(Allocate(16 + (i % 200) * 8));
    }
    valid = tls_heap->IsValid();
  });
  for (size_t r = 0; r < rounds.size(); ++r) {
    ASSERT_TRUE(Eventually([&] { return handed.load(std::memory_order_acquire) > static_cast<int>(r); }));
    FreeAll(rounds[r]);
    tls_heap->FlushOutgoing();
    ReleaseMemory();
  }
  stop.store(true, std::memory_order_release);
  owner.join();
  EXPECT_TRUE(valid);
  ReleaseMemory();
  EXPECT_EQ(Snapshot().queued_bytes, 0u);
}

TEST_F(ReleaseTest, DeadThreadsMemoryIsReleased) {
  SetPurgeDelayMs(-1);
  SetOption(Option::kThreadCacheBytes, int64_t{1} << 30);
  SetOption(Option::kTotalCacheBytes, int64_t{1} << 30);
  std::vector<void*> keep;
  std::thread([&] {
    std::vector<void*> blocks = Fill(8 << 20, 192);
    // One live block per 16 pins most pools of the dead thread's arenas...
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (i % 64 == 0) {
        keep.push_back(blocks[i]);
      } else {
        Deallocate(blocks[i]);
      }
    }
  }).join();
  // ...which the dead thread's heap (an orphan now) still owns; their free
  // blocks are held, and freeing the rest from here sends them to its queue.
  FreeAll(keep);
  const Stats before = Snapshot();
  EXPECT_GT(before.queued_bytes + before.outgoing_bytes, 0u);
  ReleaseMemory();
  const Stats after = Snapshot();
  EXPECT_EQ(after.queued_bytes + after.outgoing_bytes, 0u);
  EXPECT_EQ(after.retention.free_pools_orphaned, 0u);
  EXPECT_LT(after.retention.free_pools_cached + after.retention.free_in_empty_runs, size_t{1} << 20);
}

TEST_F(ReleaseTest, SamplerWritesOneJsonLinePerInterval) {
  const char* dir = getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/samples.jsonl";
  unlink(path.c_str());
  ASSERT_TRUE(SetOptionByName("sample_file", path.c_str()));
  ASSERT_TRUE(SetOptionByName("sample_interval_ms", "10"));  // starts the thread
  auto lines = [&] {
    std::ifstream in(path);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      if (line.find("\"rss_bytes\":") != std::string::npos &&
          line.find("\"live_bytes\":") != std::string::npos && line.front() == '{' &&
          line.back() == '}') {
        ++n;
      }
    }
    return n;
  };
  EXPECT_TRUE(Eventually([&] { return lines() >= 3; }));
  ASSERT_TRUE(SetOptionByName("sample_interval_ms", "0"));
  EXPECT_TRUE(Eventually([] { return !internal::GetBackgroundState().running; }));
}

}  // namespace
}  // namespace strata
