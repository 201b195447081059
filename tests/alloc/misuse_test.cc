// The checked build's whole contract (misuse_test_checked), beyond what
// both builds report (error_test): double frees wherever the block is (deep
// in a list, in the freeing thread's outgoing batch, in the owner's queue,
// crossing threads), interior pointers and run tails, and free-list links
// damaged by a heap overflow. Each is reported in one line before any block
// can be handed out twice; in count mode the bad call is ignored and the
// heap stays consistent.
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "alloc/checks.h"
#include "alloc/error.h"
#include "alloc/heap.h"
#include "alloc/size_class.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/count_mode.h"

namespace strata::internal {
namespace {

static_assert(kCheckedBuild, "the checked build's contract: built as misuse_test_checked");

constexpr size_t kSize = 64;

// Takes n blocks of kSize and checks that none is handed out twice or lies
// in `live` (blocks the test still holds); frees them again.
void ExpectDistinctBlocks(size_t n, const std::set<void*>& live) {
  std::set<void*> seen;
  std::vector<void*> got;
  for (size_t i = 0; i < n; ++i) {
    void* p = strata::Allocate(kSize);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(seen.insert(p).second) << "handed out twice: " << p;
    EXPECT_EQ(live.count(p), 0u) << "handed out while live: " << p;
    got.push_back(p);
  }
  for (void* p : got) strata::Deallocate(p);
}

// After a misuse in count mode: once what other threads sent back is in,
// the heap is consistent and hands out distinct blocks, none of them `keep`
// (still live), which is then freed.
void ExpectSoundAfterMisuse(void* keep) {
  tls_heap->DrainRemote();
  EXPECT_TRUE(tls_heap->IsValid());
  ExpectDistinctBlocks(500, {keep});
  strata::Deallocate(keep);
}

// --- A thread frees p and exits; the owner frees p again. ---

void FreeAfterRemoteFreeAndExit() {
  void* keep = strata::Allocate(kSize);  // p's run keeps a live block
  void* p = strata::Allocate(kSize);
  std::thread([p] { strata::Deallocate(p); }).join();  // p waits in our queue
  strata::Deallocate(p);
  strata::Deallocate(keep);
}

TEST(MisuseDeathTest, OwnerFreesWhatAnExitedThreadFreed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(FreeAfterRemoteFreeAndExit(), "strata: free\\(0x[0-9a-f]+\\): double free");
}

TEST(MisuseTest, OwnerFreesWhatAnExitedThreadFreedCounted) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  void* p = strata::Allocate(kSize);
  std::thread([p] { strata::Deallocate(p); }).join();
  strata::Deallocate(p);
  EXPECT_EQ(count.Errors(), 1u);
  ExpectSoundAfterMisuse(keep);
}

// --- A thread frees q, p, p: p twice in its own batch. ---

void SameThreadFreesTwiceRemotely() {
  void* q = strata::Allocate(kSize);
  void* p = strata::Allocate(kSize);
  std::thread([p, q] {
    strata::Deallocate(q);
    strata::Deallocate(p);
    strata::Deallocate(p);
  }).join();
  tls_heap->DrainRemote();
}

TEST(MisuseDeathTest, RemoteThreadFreesTwice) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(SameThreadFreesTwiceRemotely(),
               "strata: free\\(0x[0-9a-f]+\\): double free \\(block already freed by this thread\\)");
}

TEST(MisuseTest, RemoteThreadFreesTwiceCounted) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  void* q = strata::Allocate(kSize);
  void* p = strata::Allocate(kSize);
  std::thread([p, q] {
    strata::Deallocate(q);
    strata::Deallocate(p);
    strata::Deallocate(p);
  }).join();
  EXPECT_EQ(count.Errors(), 1u);
  ExpectSoundAfterMisuse(keep);  // its drain used to loop on a cycle in the batch, or crash
}

// --- p waits in a live thread's outgoing batch; then the owner frees it. ---

// Runs `owner_side` while another thread, alive, holds p in its batch.
template <typename Fn>
void WhileInLiveBatch(void* p, Fn owner_side) {
  std::promise<void> freed, done;
  std::future<void> freed_f = freed.get_future();
  std::future<void> done_f = done.get_future();
  std::thread t([&] {
    strata::Deallocate(p);
    freed.set_value();
    done_f.wait();  // alive: the batch is not flushed before owner_side ran
  });
  freed_f.wait();
  owner_side();
  done.set_value();
  t.join();
}

TEST(MisuseDeathTest, OwnerFreesABlockWaitingInAnotherThreadsBatch) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* keep = strata::Allocate(kSize);
        void* p = strata::Allocate(kSize);
        WhileInLiveBatch(p, [p] { strata::Deallocate(p); });
        strata::Deallocate(keep);
      },
      "strata: free\\(0x[0-9a-f]+\\): double free \\(block already freed by another thread\\)");
}

TEST(MisuseTest, OwnerFreesABlockWaitingInAnotherThreadsBatchCounted) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  void* p = strata::Allocate(kSize);
  WhileInLiveBatch(p, [p] { strata::Deallocate(p); });
  EXPECT_EQ(count.Errors(), 1u);
  ExpectSoundAfterMisuse(keep);
}

// --- Two other threads each free p. ---

TEST(MisuseDeathTest, TwoThreadsFreeOneBlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* p = strata::Allocate(kSize);
        WhileInLiveBatch(p, [p] {
          std::thread([p] { strata::Deallocate(p); }).join();
          tls_heap->DrainRemote();  // the owner checks what the second thread handed over
        });
      },
      "strata: free\\(0x[0-9a-f]+\\): double free");
}

TEST(MisuseTest, TwoThreadsFreeOneBlockCounted) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  void* p = strata::Allocate(kSize);
  WhileInLiveBatch(p, [p] {
    std::thread([p] { strata::Deallocate(p); }).join();
    tls_heap->DrainRemote();
  });
  EXPECT_EQ(count.Errors(), 1u);
  ExpectSoundAfterMisuse(keep);
}

// --- A heap overflow into a free neighbour's link. ---

// Two neighbours a, b of one run: b is freed, then `damage` bytes of zero
// are written just past a, into b's link.
void OverflowIntoFreeNeighbour(size_t damage, std::set<void*>* live) {
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(strata::Allocate(kSize));
  // Find two neighbours in address order.
  char* a = nullptr;
  char* b = nullptr;
  for (void* x : blocks) {
    for (void* y : blocks) {
      if (static_cast<char*>(y) == static_cast<char*>(x) + kSize) {
        a = static_cast<char*>(x);
        b = static_cast<char*>(y);
      }
    }
  }
  ASSERT_NE(a, nullptr);
  for (void* x : blocks) {
    if (x != a && x != b) strata::Deallocate(x);
  }
  strata::Deallocate(b);  // b heads the list now
  std::memset(a + kSize, 0, damage);
  live->insert(a);
}

TEST(MisuseDeathTest, OneByteOverflowIntoAFreeLinkIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::set<void*> live;
        OverflowIntoFreeNeighbour(1, &live);
        for (int i = 0; i < 4; ++i) strata::Allocate(kSize);
      },
      "strata: heap corruption at 0x[0-9a-f]+: free list corrupted");
}

TEST(MisuseDeathTest, EightByteOverflowIntoAFreeLinkIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::set<void*> live;
        OverflowIntoFreeNeighbour(8, &live);
        for (int i = 0; i < 4; ++i) strata::Allocate(kSize);
      },
      "strata: heap corruption at 0x[0-9a-f]+: free list corrupted");
}

TEST(MisuseTest, OverflowIntoAFreeLinkCountedHandsOutNoLiveBlock) {
  for (size_t damage : {size_t{1}, size_t{2}, size_t{8}}) {
    CountMode count;
    std::set<void*> live;
    OverflowIntoFreeNeighbour(damage, &live);
    ExpectDistinctBlocks(500, live);
    EXPECT_EQ(count.Errors(), 1u) << damage << " bytes";
    for (void* p : live) strata::Deallocate(p);
  }
}

// --- The owner frees p, another thread frees p again, the owner reallocates
// p before it looks at what the other thread handed over. ---

void FreeHereThenThereThenReuse(void** reused) {
  void* p = strata::Allocate(kSize);
  strata::Deallocate(p);
  std::thread([p] { strata::Deallocate(p); }).join();  // parked for the owner to check
  // Take blocks until p comes back: it is live again, the parked free stale.
  void* q = nullptr;
  std::vector<void*> taken;
  for (int i = 0; i < 5000 && q != p; ++i) taken.push_back(q = strata::Allocate(kSize));
  ASSERT_EQ(q, p);
  taken.pop_back();
  for (void* t : taken) strata::Deallocate(t);
  tls_heap->DrainRemote();  // the check: p's first word changed since
  *reused = p;
}

TEST(MisuseDeathTest, StaleRemoteDoubleFreeOfAReusedBlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* p;
        FreeHereThenThereThenReuse(&p);
      },
      "strata: free\\(0x[0-9a-f]+\\): double free \\(block already free\\)");
}

TEST(MisuseTest, StaleRemoteDoubleFreeOfAReusedBlockCounted) {
  CountMode count;
  void* p = nullptr;
  FreeHereThenThereThenReuse(&p);
  EXPECT_EQ(count.Errors(), 1u);
  EXPECT_TRUE(tls_heap->IsValid());
  ExpectDistinctBlocks(500, {p});  // p, live, is not handed out again
  strata::Deallocate(p);
}

// --- More remote double frees at once than the owner has suspect slots. ---

TEST(MisuseTest, ManyRemoteDoubleFreesAtOnceCounted) {
  for (size_t size : {size_t{8}, size_t{64}}) {
    CountMode count;
    std::vector<void*> keep, blocks;
    for (int i = 0; i < 64; ++i) keep.push_back(strata::Allocate(size));
    for (int i = 0; i < 40; ++i) blocks.push_back(strata::Allocate(size));
    for (void* b : blocks) strata::Deallocate(b);
    std::thread([&] {
      for (void* b : blocks) strata::Deallocate(b);  // every one a double free
    }).join();
    tls_heap->DrainRemote();
    EXPECT_EQ(count.Errors(), blocks.size()) << size << " bytes";
    EXPECT_TRUE(tls_heap->IsValid());
    std::set<void*> seen;
    std::vector<void*> got;
    for (int i = 0; i < 2000; ++i) {
      void* p = strata::Allocate(size);
      EXPECT_TRUE(seen.insert(p).second) << "handed out twice: " << p;
      got.push_back(p);
    }
    for (void* p : keep) EXPECT_EQ(seen.count(p), 0u);
    for (void* p : got) strata::Deallocate(p);
    for (void* p : keep) strata::Deallocate(p);
  }
}

// --- A write after free hides a double free: the list then holds p twice. ---

TEST(MisuseTest, DoubleFreeHiddenByAWriteAfterFreeNeverHandsOutALiveBlock) {
  CountMode count;
  std::vector<void*> keep;
  for (int i = 0; i < 8; ++i) keep.push_back(strata::Allocate(kSize));
  void* p = strata::Allocate(kSize);
  strata::Deallocate(p);
  std::memset(p, 0, sizeof(uintptr_t));  // the write after free clears the link
  strata::Deallocate(p);                 // no longer recognisable as a double free
  // The second free is reported (p heads its class's list: the immediate
  // double free), and so is the damage when an allocation meets p's
  // cleared link: the list is dropped, p with it, never handed out.
  std::set<void*> live(keep.begin(), keep.end());
  ExpectDistinctBlocks(500, live);
  EXPECT_EQ(count.Errors(), 2u);
  EXPECT_TRUE(tls_heap->IsValid());
  for (void* k : live) strata::Deallocate(k);
}

// --- A travelling block's link damaged, then a double free makes its
// freeing thread walk the batch. ---

TEST(MisuseTest, DamagedTravellingLinkIsNotFollowed) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  void* y = strata::Allocate(kSize);
  void* x = strata::Allocate(kSize);
  std::promise<void> freed, damaged;
  std::future<void> freed_f = freed.get_future();
  std::future<void> damaged_f = damaged.get_future();
  std::thread t([&] {
    strata::Deallocate(y);
    strata::Deallocate(x);  // the batch: x -> y
    freed.set_value();
    damaged_f.wait();
    strata::Deallocate(y);  // a double free: the walk of the batch meets x's link
  });
  freed_f.wait();
  std::memset(x, 0xab, sizeof(uintptr_t));  // write after free into x's link
  damaged.set_value();
  t.join();  // the batch goes to our queue
  // x and y are one segment of one run: the drain splices it onto the
  // run's list whole, and the damage is reported where x's link is
  // followed, at the pop, before anything past it is handed out.
  tls_heap->DrainRemote();
  EXPECT_GE(count.Errors(), 1u);
  ExpectDistinctBlocks(500, {keep});
  EXPECT_GE(count.Errors(), 2u);
  EXPECT_TRUE(tls_heap->IsValid());
  strata::Deallocate(keep);
}

// --- Another thread frees a block that sits on its owner's free list: it
// is reported by that thread, without waiting for the owner's next drain. ---

TEST(MisuseDeathTest, RemoteFreeOfABlockOnItsOwnersListIsReportedAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* keep = strata::Allocate(kSize);
        void* p = strata::Allocate(kSize);
        strata::Deallocate(p);
        std::thread([p] { strata::Deallocate(p); }).join();
        strata::Deallocate(keep);  // the owner never refills
      },
      "strata: free\\(0x[0-9a-f]+\\): double free \\(block already free\\)");
}

// --- realloc of a freed block that would fit in place. ---

TEST(MisuseDeathTest, ReallocOfAFreedBlockInPlaceIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* keep = strata::Allocate(kSize);
        void* p = strata::Allocate(kSize);
        strata::Deallocate(p);
        strata::Reallocate(p, kSize - 4);
        strata::Deallocate(keep);
      },
      "strata: realloc\\(0x[0-9a-f]+\\): double free \\(block already free\\)");
}

TEST(MisuseTest, ReallocOfAFreedBlockCounted) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  void* p = strata::Allocate(kSize);
  strata::Deallocate(p);
  errno = 0;
  EXPECT_EQ(strata::Reallocate(p, kSize - 4), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(count.Errors(), 1u);
  ExpectDistinctBlocks(500, {keep});  // p went back to the list once
  strata::Deallocate(keep);
}

// --- Double frees the default build does not see: a block deep in its
// list, a block freed twice by another thread. ---

// The block is deep in its run's free list, not at its head.
TEST(MisuseDeathTest, DoubleFreeOfABlockBuriedInTheFreeListAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* blocks[20];
        for (auto& b : blocks) b = strata::Allocate(40);
        strata::Deallocate(blocks[3]);
        for (int i = 4; i < 20; ++i) strata::Deallocate(blocks[i]);
        strata::Deallocate(blocks[3]);
      },
      "double free \\(block already free\\)");
}

// Another thread frees a block twice: the owner catches it when draining.
TEST(MisuseDeathTest, RemoteDoubleFreeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        void* blocks[64];
        for (auto& b : blocks) b = strata::Allocate(24);
        std::thread([&] {
          for (void* b : blocks) strata::Deallocate(b);
        }).join();
        tls_heap->DrainRemote();  // blocks are back on their free lists
        std::thread([&] { strata::Deallocate(blocks[10]); }).join();
        tls_heap->DrainRemote();
      },
      "double free");
}


// A free of a pointer in a run's tail (past its last block) is reported,
// and nothing is handed out from there.
TEST(MisuseTest, FreeOfARunTailIsReportedCounted) {
  constexpr size_t kTailSize = 24;  // 170 blocks of a 4 KiB pool, 16 bytes left over
  const ClassInfo& k = kClasses[SizeToClass(kTailSize)];
  ASSERT_LT(uint64_t{k.blocks} * k.size, k.run_pools * kPoolSize);
  void* p = strata::Allocate(kTailSize);
  PoolDesc* d = RunOf(ArenaOf(p), p);
  char* tail = d->Start() + size_t{k.blocks} * k.size;
  {
    CountMode count;
    strata::Deallocate(tail);
    EXPECT_EQ(count.Errors(), 1u);
  }
  EXPECT_TRUE(tls_heap->IsValid());
  strata::Deallocate(p);
}

// --- A double free after the block's pools were released and a new thread
// started (issue 24, F3). ---

// A thread frees its last block and exits: its heap gives its pools (its
// arena) back at once. A new thread starts and takes blocks of the class.
// The block's second free must be reported (its arena is empty, in
// quarantine: checks.h, kQuarantineReleased), not free one of them.
TEST(MisuseTest, DoubleFreeAfterItsThreadExitedAndANewOneStartedCounted) {
  CountMode count;
  void* p = nullptr;
  std::thread([&p] {
    p = strata::Allocate(kSize);
    strata::Deallocate(p);
  }).join();
  std::vector<void*> blocks;
  std::mutex mu;
  std::condition_variable cv;
  int stage = 0;
  std::thread holder([&] {
    for (int i = 0; i < 256; ++i) {
      void* b = strata::Allocate(kSize);
      std::memset(b, 0x5a, kSize);
      blocks.push_back(b);
    }
    std::unique_lock<std::mutex> lock(mu);
    stage = 1;
    cv.notify_all();
    // Bounded: the main thread sets stage 2 right after its free.
    cv.wait_for(lock, std::chrono::seconds(60), [&] { return stage == 2; });
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return stage == 1; }));
  }
  strata::Deallocate(p);  // the second free
  EXPECT_EQ(count.Errors(), 1u);
  {
    std::lock_guard<std::mutex> lock(mu);
    stage = 2;
  }
  cv.notify_all();
  holder.join();
  // None of the new thread's blocks was freed: their bytes are intact and
  // none is handed out again while they live.
  for (void* b : blocks) {
    for (size_t i = 0; i < kSize; ++i) ASSERT_EQ(static_cast<unsigned char*>(b)[i], 0x5a) << b;
  }
  ExpectDistinctBlocks(2000, std::set<void*>(blocks.begin(), blocks.end()));
  for (void* b : blocks) strata::Deallocate(b);
}

// --- Interior pointers: the checked build checks every free's block start. ---

TEST(MisuseDeathTest, FreeOfAnInteriorPointerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  char* p = static_cast<char*>(strata::Allocate(64));
  EXPECT_DEATH(strata::Deallocate(p + 8), "strata: free\\(0x[0-9a-f]+\\): pointer is not the start of a block");
  strata::Deallocate(p);
}

TEST(MisuseTest, FreeOfAnInteriorPointerCounted) {
  CountMode count;
  void* keep = strata::Allocate(kSize);
  strata::Deallocate(static_cast<char*>(keep) + 8);
  EXPECT_EQ(count.Errors(), 1u);
  ExpectSoundAfterMisuse(keep);
}

}  // namespace
}  // namespace strata::internal
