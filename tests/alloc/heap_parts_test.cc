// The thread cache's parts one at a time (heap.h): OwnedArenas' counts,
// ClassRuns, ArenaCache, ReleaseBudget, OutgoingBatches, IncomingQueue and
// its drain, SuspectSlots; then whole heaps made in test-owned memory with a
// test HeapEnv (heap_test_peer.h): allocation and frees through the heap's
// own paths, the ENOMEM path, remote frees between two heaps, and the
// heap's clock. No malloc: strata's memory comes from the arena source
// alone, counted by the test env. Single-threaded throughout.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "alloc/arena.h"
#include "alloc/arena_cache.h"
#include "alloc/class_runs.h"
#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/free_link.h"
#include "alloc/free_path.h"
#include "alloc/heap.h"
#include "alloc/heap_counters.h"
#include "alloc/heap_env.h"
#include "alloc/incoming_queue.h"
#include "alloc/misuse.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/outgoing_batches.h"
#include "alloc/owned_arenas.h"
#include "alloc/release_budget.h"
#include "alloc/size_class.h"
#include "gtest/gtest.h"
#include "tests/alloc/heap_test_peer.h"
#include "tests/util/count_mode.h"
#include "tests/util/sanitizer.h"

namespace strata::internal {
namespace {

// One pool, 64 blocks of 64 bytes, carved at once.
const size_t kCls64 = SizeToClass(64);
// Eight pools, 32 blocks of 1 KiB, carved a page (4 blocks) at a time.
const size_t kCls1K = SizeToClass(1024);

// Sets option o for a test; restores the old value after.
class ScopedOption {
 public:
  ScopedOption(Option o, int64_t value) : o_(o), old_(GetOption(o)) { EXPECT_TRUE(SetOption(o, value)); }
  ~ScopedOption() { SetOption(o_, old_); }
  ScopedOption(const ScopedOption&) = delete;
  ScopedOption& operator=(const ScopedOption&) = delete;

 private:
  const Option o_;
  const int64_t old_;
};

// Count mode for a test: reports count instead of abort.
uint64_t Get(const HeapCounters::Counter& c) { return c.Get(); }

uint64_t Batches(const HeapCounters& c) {
  uint64_t n = 0;
  for (const auto& b : c.batch_blocks) n += b.Get();
  return n;
}

uintptr_t WordOf(const void* b) {
  uintptr_t w;
  std::memcpy(&w, b, sizeof(w));
  return w;
}
void SetWord(void* b, uintptr_t w) { std::memcpy(b, &w, sizeof(w)); }

// A word that, stored in block b, decodes to no link a list or a batch may
// hold: not link-shaped and out of b's arena. Tries fixed patterns, one of
// which fits unless the key is astronomically unlucky (each fails with a
// chance of about 2^-20).
uintptr_t GarbageFor(const void* b) {
  const LinkKey key = GetLinkKey();
  for (uintptr_t i = 0; i < 16; ++i) {
    const uintptr_t w = 0x4141414141414141u + i * 0x0101010101010101u;
    const FreeBlock* next = DecodeLink(b, reinterpret_cast<const FreeBlock*>(w), key);
    if ((reinterpret_cast<uintptr_t>(next) & kLinkShapeMask) != 0 && !SameArena(b, next)) return w;
  }
  return 0;
}

// Pops up to n blocks of run d (carving as the heap's PopFrom does).
std::vector<void*> PopBlocks(PoolDesc* d, size_t n, const LinkKey& key) {
  std::vector<void*> got;
  for (size_t i = 0; i < n && i <= d->capacity; ++i) {
    if (IsListEnd(d->run.free_list()) && d->run.carved() < d->capacity) {
      CarveOntoList(d, key);
    }
    void* b = PopOne(d, key);
    if (b == nullptr) break;
    got.push_back(b);
  }
  return got;
}

// Releases every run and arena `arenas` holds (whatever state the runs are
// in: the test is done with them) back to the test env's source. True when
// it owns nothing afterwards.
bool ReleaseEverything(OwnedArenas& arenas, HeapCounters& counters, ArenaCache* cache) {
  const uint64_t now = TestHeapEnv::Now();
  arenas.ReleaseEmptyRuns(now, counters, cache);
  ArenaHeader* owned[256];
  size_t n = 0;
  arenas.ForEachArenaHoldingLock([&](ArenaHeader* a) {
    if (n < 256) owned[n++] = a;
  });
  for (size_t k = 0; k < n; ++k) {
    for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) {
      PoolDesc* d = owned[k]->pool(i);
      if (d->state == PoolState::kHead) arenas.ReleaseRun(d, now, counters, cache);
    }
  }
  arenas.ReleaseEmptyArenas(0, now, cache, *TestHeapEnv::env(), counters);
  return !arenas.OwnsArenas();
}

// Parts standing alone: an OwnedArenas (owner: none), its counters and an
// arena cache, arenas from the test env.
class PartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestHeapEnv::Reset();
    InitLinkKey();
    key_ = GetLinkKey();
  }
  void TearDown() override { EXPECT_TRUE(ReleaseEverything(arenas_, counters_, &cache_)); }

  // An arena from the test env, with every usable pool purged, so that the
  // purge tests know which pools are dirty (an arena from the source may
  // come back dirty from an earlier test).
  ArenaHeader* NewArena() {
    ArenaHeader* a = TestHeapEnv::env()->acquire_arena(nullptr);
    if (a == nullptr) return nullptr;
    os::Purge(a->Base() + kFirstUsablePool * kPoolSize, kUsablePools * kPoolSize, os::PurgeMode::kDontNeed);
    a->dirty_mask = 0;
    return a;
  }

  // A new run of class cls (kHeld): in an owned arena with room, else in a
  // new arena.
  PoolDesc* Claim(size_t cls) {
    ArenaHeader* a = nullptr;
    const int start = arenas_.FindFreeRun(kClasses[cls].run_pools, &a, TestHeapEnv::Now());
    if (start < 0) {
      a = NewArena();
      if (a == nullptr) return nullptr;
    }
    return arenas_.ClaimRun(cls, a, start, counters_);
  }

  // Up to n blocks of run d, handed out.
  std::vector<void*> Take(PoolDesc* d, size_t n) { return PopBlocks(d, n, key_); }

  // Frees `out`, the blocks in use of held run d: empty and kHeld after.
  void Empty(PoolDesc* d, const std::vector<void*>& out) {
    d->run.EnterPartial();
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_EQ(d->run.Push(static_cast<FreeBlock*>(out[i]), key_), i + 1 == out.size()) << i;
    }
    d->run.LeavePartial();
  }

  size_t EmptyRunPools() const { return arenas_.CachedPoolBytes() / kPoolSize - arenas_.counts().free_pools; }

  LinkKey key_;
  OwnedArenas arenas_;
  HeapCounters counters_;
  ArenaCache cache_;
};

// ===========================================================================
// OwnedArenas: the counts

TEST_F(PartsTest, ClaimRunInAFreshArenaJoinsItAndCountsItsPools) {
  ArenaHeader* a = NewArena();
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(arenas_.OwnsArenas());
  PoolDesc* d = arenas_.ClaimRun(kCls1K, a, -1, counters_);
  const uint32_t n = kClasses[kCls1K].run_pools;
  ASSERT_GT(n, 1u);
  EXPECT_EQ(d, a->pool(kFirstUsablePool));
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_EQ(d->run.free_list(), reinterpret_cast<FreeBlock*>(a));
  EXPECT_EQ(arenas_.counts().arenas, 1u);
  EXPECT_EQ(arenas_.counts().empty_arenas, 0u);
  EXPECT_EQ(arenas_.counts().free_pools, kUsablePools - n);
  EXPECT_EQ(a->used_pools, n);
  EXPECT_EQ(a->owner_list, kUsablePools - n >= kMaxRunPools ? kMaxRunPools : kUsablePools - n);
  EXPECT_EQ(Get(counters_.runs_created), 1u);
  EXPECT_EQ(arenas_.CachedPoolBytes(), (kUsablePools - n) * kPoolSize);
  EXPECT_FALSE(arenas_.IsValid(nullptr));  // a held run at rest
  d->run.BecomeCurrent();
  EXPECT_TRUE(arenas_.IsValid(nullptr));
  EXPECT_FALSE(arenas_.IsValid(reinterpret_cast<const Heap*>(&cache_)));  // not that owner's

  ArenaHeader* found = nullptr;
  EXPECT_EQ(arenas_.FindFreeRun(n, &found, TestHeapEnv::Now()), static_cast<int>(kFirstUsablePool + n));
  EXPECT_EQ(found, a);

  const uint64_t now = TestHeapEnv::Now();
  d->run.Demote();
  arenas_.ReleaseRun(d, now, counters_, &cache_);
  EXPECT_EQ(Get(counters_.runs_released), 1u);
  EXPECT_EQ(arenas_.counts().free_pools, kUsablePools);
  EXPECT_EQ(arenas_.counts().empty_arenas, 1u);
  EXPECT_EQ(arenas_.counts().arenas, 1u);
  EXPECT_EQ(a->used_pools, 0u);
  for (uint32_t i = 0; i < n; ++i) {
    EXPECT_EQ(d[i].state, PoolState::kFree);
    EXPECT_EQ(d[i].run.free_since(), static_cast<uint32_t>(now));
    EXPECT_TRUE((a->dirty_mask >> (kFirstUsablePool + i)) & 1) << "a released run's pools may be resident";
  }
  EXPECT_TRUE(arenas_.IsValid(nullptr));
}

// Issue 24, F3: the pools of a released run (here a 20 KiB block's, one
// block a run) are reused last for kQuarantineMs in the checked build, so
// that a double free of its block shortly after finds a free pool instead
// of a new block there; the default build reuses the first fit at once.
// Either way, with no other room the released pools are taken.
TEST_F(PartsTest, ReleasedPoolsAreReusedLastWhileQuarantined) {
  const size_t cls = SizeToClass(20000);
  ASSERT_EQ(kClasses[cls].blocks, 1u);  // one block a run
  const uint32_t n = kClasses[cls].run_pools;
  PoolDesc* first = Claim(cls);
  PoolDesc* second = Claim(cls);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ArenaHeader* a = ArenaOf(first);
  ASSERT_EQ(ArenaOf(second), a);
  const int released = first->index;
  const uint64_t t = TestHeapEnv::Now();
  arenas_.ReleaseRun(first, t, counters_, &cache_);

  ArenaHeader* found = nullptr;
  const int at_once = arenas_.FindFreeRun(n, &found, t + 1);
  ASSERT_GE(at_once, 0);
  EXPECT_EQ(found, a);
  if (kQuarantineReleased) {
    EXPECT_TRUE(at_once >= released + static_cast<int>(n) || at_once + static_cast<int>(n) <= released)
        << "pools released 1 ms ago reused: " << at_once;
  } else {
    EXPECT_EQ(at_once, released);
  }
  EXPECT_EQ(arenas_.FindFreeRun(n, &found, t + kQuarantineMs - 1), kQuarantineReleased ? at_once : released);
  // Past the quarantine: the first fit again.
  EXPECT_EQ(arenas_.FindFreeRun(n, &found, t + kQuarantineMs), released);

  // No other room: the quarantined pools are taken.
  std::vector<PoolDesc*> fill;
  for (;;) {
    const int s1 = arenas_.FindFreeRun(1, &found, t + 1);
    if (s1 < 0 || found != a || (s1 >= released && s1 < released + static_cast<int>(n))) break;
    fill.push_back(arenas_.ClaimRun(1, found, s1, counters_));
  }
  EXPECT_EQ(arenas_.FindFreeRun(n, &found, t + 1), released);
  EXPECT_EQ(found, a);
  for (PoolDesc* d : fill) arenas_.ReleaseRun(d, t, counters_, &cache_);
  arenas_.ReleaseRun(second, t, counters_, &cache_);
}

TEST_F(PartsTest, ArenaThatFillsUpMovesToTheFullListAndBack) {
  ArenaHeader* a = NewArena();
  ASSERT_NE(a, nullptr);
  std::vector<PoolDesc*> runs;
  runs.push_back(arenas_.ClaimRun(kCls64, a, -1, counters_));
  for (size_t i = 0; i < kUsablePools; ++i) {
    ArenaHeader* found = nullptr;
    const int start = arenas_.FindFreeRun(1, &found, TestHeapEnv::Now());
    if (start < 0) break;
    ASSERT_EQ(found, a);
    runs.push_back(arenas_.ClaimRun(kCls64, found, start, counters_));
  }
  for (PoolDesc* d : runs) d->run.BecomeCurrent();  // at rest
  ASSERT_EQ(runs.size(), kUsablePools);
  EXPECT_EQ(a->free_mask, 0u);
  EXPECT_EQ(a->owner_list, kFullArenas);
  EXPECT_EQ(arenas_.counts().free_pools, 0u);
  EXPECT_EQ(Get(counters_.runs_created), kUsablePools);
  ArenaHeader* found = nullptr;
  EXPECT_EQ(arenas_.FindFreeRun(1, &found, TestHeapEnv::Now()), -1);  // full arenas are not searched
  EXPECT_TRUE(arenas_.IsValid(nullptr));

  // One run back: the arena has room again.
  PoolDesc* back = runs[10];
  back->run.Demote();
  arenas_.ReleaseRun(back, TestHeapEnv::Now(), counters_, &cache_);
  EXPECT_EQ(a->owner_list, 1u);  // a longest free stretch of one pool
  EXPECT_EQ(arenas_.counts().free_pools, 1u);
  EXPECT_EQ(arenas_.counts().empty_arenas, 0u);
  EXPECT_EQ(arenas_.FindFreeRun(1, &found, TestHeapEnv::Now()), static_cast<int>(back->index));
  EXPECT_EQ(found, a);
  EXPECT_EQ(arenas_.FindFreeRun(2, &found, TestHeapEnv::Now()), -1);  // one pool is no room for two
  EXPECT_TRUE(arenas_.IsValid(nullptr));

  // A run too large for the room: a second, fresh arena.
  PoolDesc* big = Claim(kCls1K);
  ASSERT_NE(big, nullptr);
  EXPECT_NE(ArenaOf(big), a);
  big->run.BecomeCurrent();
  EXPECT_EQ(arenas_.counts().arenas, 2u);
  EXPECT_EQ(arenas_.counts().free_pools, 1 + kUsablePools - kClasses[kCls1K].run_pools);
  EXPECT_TRUE(arenas_.IsValid(nullptr));
}

// However many arenas are fragmented, the one with room for a long run is
// found (a search of the first few arenas once took a fresh arena here and
// a churn of 4-64 KiB blocks grew to twice its live bytes), the tightest
// fit serves a short run, and an empty arena is found to go back.
TEST_F(PartsTest, LongRunFoundBehindManyFragmentedArenas) {
  const size_t big_cls = SizeToClass(kMaxMediumSize);
  ASSERT_EQ(kClasses[big_cls].run_pools, kMaxRunPools);
  std::vector<PoolDesc*> runs;
  ArenaHeader* roomy = NewArena();
  ASSERT_NE(roomy, nullptr);
  runs.push_back(arenas_.ClaimRun(kCls64, roomy, -1, counters_));
  // Newer arenas, every 8th pool in a run: no stretch of 8 free pools.
  constexpr int kFragmented = 3 * 16;
  std::vector<ArenaHeader*> fragmented;
  for (int i = 0; i < kFragmented; ++i) {
    ArenaHeader* a = NewArena();
    ASSERT_NE(a, nullptr);
    fragmented.push_back(a);
    runs.push_back(arenas_.ClaimRun(kCls64, a, -1, counters_));  // pool kFirstUsablePool
    for (size_t p = kFirstUsablePool + 8; p < kPoolsPerArena; p += 8) {
      runs.push_back(arenas_.ClaimRun(kCls64, a, static_cast<int>(p), counters_));
    }
    ASSERT_LT(a->owner_list, 8u);
  }
  for (PoolDesc* d : runs) d->run.BecomeCurrent();  // at rest
  EXPECT_EQ(roomy->owner_list, kMaxRunPools);
  EXPECT_TRUE(arenas_.IsValid(nullptr));

  ArenaHeader* found = nullptr;
  const int start = arenas_.FindFreeRun(kMaxRunPools, &found, TestHeapEnv::Now());
  EXPECT_EQ(found, roomy);
  EXPECT_GE(start, static_cast<int>(kFirstUsablePool + 1));
  EXPECT_EQ(arenas_.FindFreeRun(1, &found, TestHeapEnv::Now()) >= 0, true);
  EXPECT_NE(found, roomy);  // a short run goes where it fits tightest
  EXPECT_NE(std::find(fragmented.begin(), fragmented.end(), found), fragmented.end());

  // roomy's one run back: an empty arena, released without a walk.
  PoolDesc* first = runs.front();
  first->run.Demote();
  arenas_.ReleaseRun(first, TestHeapEnv::Now(), counters_, &cache_);
  runs.erase(runs.begin());
  EXPECT_EQ(roomy->owner_list, kEmptyArenas);
  EXPECT_EQ(arenas_.counts().empty_arenas, 1u);
  const size_t arenas = arenas_.counts().arenas;
  arenas_.ReleaseEmptyArenas(0, TestHeapEnv::Now(), &cache_, *TestHeapEnv::env(), counters_);
  EXPECT_EQ(arenas_.counts().arenas, arenas - 1);
  EXPECT_EQ(arenas_.counts().empty_arenas, 0u);
  EXPECT_TRUE(arenas_.IsValid(nullptr));
}

TEST_F(PartsTest, KeepEmptyAndTakeEmpty) {
  const ScopedOption mode(Option::kPurgeMode, 0);  // MADV_DONTNEED: purged pages read zero
  PoolDesc* d = Claim(kCls1K);
  ASSERT_NE(d, nullptr);
  std::vector<void*> out = Take(d, 6);
  const uint32_t carved = d->run.carved();
  ASSERT_EQ(carved, 8u);
  Empty(d, out);
  const size_t free_pools = arenas_.counts().free_pools;
  const uint64_t t = TestHeapEnv::Now();

  arenas_.KeepEmpty(d, t);
  EXPECT_EQ(d->run.state(), RunState::kEmpty);
  EXPECT_EQ(d->run.free_since(), static_cast<uint32_t>(t));
  EXPECT_EQ(EmptyRunPools(), d->run_pools);
  EXPECT_EQ(arenas_.counts().free_pools, free_pools);  // kept whole: not free pools
  EXPECT_TRUE(arenas_.IsValid(nullptr));
  EXPECT_EQ(arenas_.TakeEmpty(kCls64), nullptr);  // another class's

  EXPECT_EQ(arenas_.TakeEmpty(kCls1K), d);
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_EQ(d->run.carved(), carved);  // list and all
  EXPECT_EQ(EmptyRunPools(), 0u);
  EXPECT_EQ(arenas_.TakeEmpty(kCls1K), nullptr);

  // Kept, purged in place, taken back: re-carved from its first block.
  arenas_.KeepEmpty(d, t);
  const uint64_t purged_before = Get(counters_.pools_purged);
  EXPECT_EQ(arenas_.Purge(t + 100, 100, /*force=*/false, /*wait=*/true, counters_), d->run_pools * kPoolSize);
  EXPECT_EQ(Get(counters_.pools_purged), purged_before + d->run_pools);
  EXPECT_TRUE(d->run.purged());
  EXPECT_EQ(WordOf(d->Start()), 0u);  // its list went with its pages
  EXPECT_TRUE(arenas_.IsValid(nullptr));
  EXPECT_EQ(arenas_.TakeEmpty(kCls1K), d);
  EXPECT_FALSE(d->run.purged());
  EXPECT_EQ(d->run.carved(), 0u);
  EXPECT_EQ(d->run.free_list(), reinterpret_cast<FreeBlock*>(ArenaOf(d)));
  d->run.BecomeCurrent();
  EXPECT_EQ(Take(d, 1).at(0), d->Start());
  EXPECT_TRUE(arenas_.IsValid(nullptr));
}

TEST_F(PartsTest, ReleaseEmptyRunsFreesTheirPools) {
  PoolDesc* kept = Claim(kCls64);
  PoolDesc* purged = Claim(kCls1K);
  ASSERT_NE(kept, nullptr);
  ASSERT_NE(purged, nullptr);
  ASSERT_EQ(ArenaOf(kept), ArenaOf(purged));
  ArenaHeader* a = ArenaOf(kept);
  Empty(kept, Take(kept, 3));
  Empty(purged, Take(purged, 3));
  const uint64_t t = TestHeapEnv::Now();
  arenas_.KeepEmpty(kept, t);
  arenas_.KeepEmpty(purged, t - 5000);
  ASSERT_GT(arenas_.Purge(t, 1000, /*force=*/false, /*wait=*/true, counters_), 0u);
  ASSERT_TRUE(purged->run.purged());
  ASSERT_FALSE(kept->run.purged());
  const size_t free_pools = arenas_.counts().free_pools;
  const uint64_t released = Get(counters_.runs_released);
  const uint32_t n = kept->run_pools + purged->run_pools;
  const uint8_t kept_index = kept->index, purged_index = purged->index;
  const uint32_t purged_pools = purged->run_pools;

  TestHeapEnv::Advance(200);
  EXPECT_EQ(arenas_.ReleaseEmptyRuns(TestHeapEnv::Now(), counters_, &cache_), n);
  EXPECT_EQ(Get(counters_.runs_released), released + 2);
  EXPECT_EQ(arenas_.counts().free_pools, free_pools + n);
  EXPECT_EQ(EmptyRunPools(), 0u);
  EXPECT_EQ(arenas_.counts().empty_arenas, 1u);
  EXPECT_EQ(a->used_pools, 0u);
  // The unpurged run's pool: dirty, free since it went empty (its purge
  // delay is not restarted). The purged run's: clean.
  EXPECT_EQ(a->pool(kept_index)->state, PoolState::kFree);
  EXPECT_EQ(a->pool(kept_index)->run.free_since(), static_cast<uint32_t>(t));
  EXPECT_TRUE((a->dirty_mask >> kept_index) & 1);
  for (uint32_t i = 0; i < purged_pools; ++i) {
    EXPECT_EQ(a->pool(purged_index + i)->state, PoolState::kFree);
    EXPECT_FALSE((a->dirty_mask >> (purged_index + i)) & 1) << i;
  }
  EXPECT_TRUE(arenas_.IsValid(nullptr));
  EXPECT_EQ(arenas_.ReleaseEmptyRuns(TestHeapEnv::Now(), counters_, &cache_), 0u);
}

TEST_F(PartsTest, ReleaseEmptyArenasDownToABudget) {
  PoolDesc* r1 = Claim(kCls64);
  ASSERT_NE(r1, nullptr);
  ArenaHeader* a = ArenaOf(r1);
  ArenaHeader* b = NewArena();
  ASSERT_NE(b, nullptr);
  PoolDesc* r2 = arenas_.ClaimRun(kCls64, b, -1, counters_);
  cache_.Remember(a);
  cache_.Remember(b);
  const uint64_t now = TestHeapEnv::Now();
  arenas_.ReleaseRun(r1, now, counters_, &cache_);
  arenas_.ReleaseRun(r2, now, counters_, &cache_);
  ASSERT_EQ(arenas_.counts().arenas, 2u);
  ASSERT_EQ(arenas_.counts().empty_arenas, 2u);
  ASSERT_EQ(TestHeapEnv::released(), 0u);

  // A budget of one arena's pools: one goes back.
  arenas_.ReleaseEmptyArenas(kUsablePools * kPoolSize, now, &cache_, *TestHeapEnv::env(), counters_);
  EXPECT_EQ(TestHeapEnv::released(), 1u);
  EXPECT_EQ(Get(counters_.arenas_released), 1u);
  EXPECT_EQ(arenas_.counts().arenas, 1u);
  EXPECT_EQ(arenas_.counts().empty_arenas, 1u);
  EXPECT_EQ(arenas_.counts().free_pools, kUsablePools);
  ArenaHeader* gone = TestHeapEnv::last_released();
  ASSERT_TRUE(gone == a || gone == b);
  ArenaHeader* left = gone == a ? b : a;
  EXPECT_FALSE(cache_.Holds(gone));
  EXPECT_TRUE(cache_.Holds(left));
  EXPECT_TRUE(arenas_.IsValid(nullptr));

  // An arena with a run in it stays, whatever the budget.
  PoolDesc* r3 = Claim(kCls64);
  ASSERT_EQ(ArenaOf(r3), left);
  r3->run.BecomeCurrent();
  arenas_.ReleaseEmptyArenas(0, now, &cache_, *TestHeapEnv::env(), counters_);
  EXPECT_EQ(TestHeapEnv::released(), 1u);
  EXPECT_EQ(arenas_.counts().arenas, 1u);
  EXPECT_EQ(arenas_.counts().empty_arenas, 0u);

  r3->run.Demote();
  arenas_.ReleaseRun(r3, now, counters_, &cache_);
  arenas_.ReleaseEmptyArenas(0, now, &cache_, *TestHeapEnv::env(), counters_);
  EXPECT_EQ(TestHeapEnv::released(), 2u);
  EXPECT_EQ(TestHeapEnv::last_released(), left);
  EXPECT_FALSE(cache_.Holds(left));
  EXPECT_FALSE(arenas_.OwnsArenas());
  EXPECT_EQ(arenas_.counts().free_pools, 0u);
  EXPECT_EQ(arenas_.CachedPoolBytes(), 0u);
  EXPECT_TRUE(arenas_.IsValid(nullptr));
}

// Free pools and empty runs are purged once free for the delay (by the time
// the caller gives), all at once with force, never with a negative delay.
TEST_F(PartsTest, PurgeHonoursTheDelay) {
  const ScopedOption mode(Option::kPurgeMode, 0);
  PoolDesc* r1 = Claim(kCls64);
  PoolDesc* r2 = Claim(kCls64);
  PoolDesc* r3 = Claim(kCls64);
  PoolDesc* e = Claim(kCls1K);
  ASSERT_TRUE(r1 && r2 && r3 && e);
  ArenaHeader* a = ArenaOf(r1);
  ASSERT_EQ(a->dirty_mask, 0u);
  r2->run.BecomeCurrent();
  const uint64_t t = TestHeapEnv::Now();
  constexpr int64_t kDelay = 1000;
  const uint64_t purged = Get(counters_.pools_purged);
  const uint8_t i1 = r1->index, i3 = r3->index;

  arenas_.ReleaseRun(r1, t, counters_, &cache_);
  Empty(e, Take(e, 2));
  arenas_.KeepEmpty(e, t + 100);
  arenas_.ReleaseRun(r3, t + 300, counters_, &cache_);
  const uint64_t dirty = (uint64_t{1} << i1) | (uint64_t{1} << i3);
  ASSERT_EQ(a->dirty_mask, dirty);

  EXPECT_EQ(arenas_.Purge(t + kDelay - 1, kDelay, false, true, counters_), 0u);
  EXPECT_EQ(a->dirty_mask, dirty);
  EXPECT_EQ(Get(counters_.pools_purged), purged);

  EXPECT_EQ(arenas_.Purge(t + kDelay, kDelay, false, true, counters_), kPoolSize);
  EXPECT_EQ(a->dirty_mask, uint64_t{1} << i3);
  EXPECT_FALSE(e->run.purged());
  EXPECT_EQ(Get(counters_.pools_purged), purged + 1);

  EXPECT_EQ(arenas_.Purge(t + 100 + kDelay, kDelay, false, true, counters_), e->run_pools * kPoolSize);
  EXPECT_TRUE(e->run.purged());
  EXPECT_EQ(a->dirty_mask, uint64_t{1} << i3);

  EXPECT_EQ(arenas_.Purge(t + 300 + kDelay, kDelay, false, true, counters_), kPoolSize);
  EXPECT_EQ(a->dirty_mask, 0u);
  EXPECT_EQ(Get(counters_.pools_purged), purged + 2 + e->run_pools);
  EXPECT_EQ(arenas_.Purge(t + 100 * kDelay, kDelay, false, true, counters_), 0u);  // nothing left
  EXPECT_TRUE(arenas_.IsValid(nullptr));

  // A negative delay: never, unless forced; force: everything, at once.
  r2->run.Demote();
  arenas_.ReleaseRun(r2, t + 5000, counters_, &cache_);
  EXPECT_EQ(arenas_.Purge(t + 100 * kDelay, -1, false, true, counters_), 0u);
  EXPECT_EQ(arenas_.Purge(t + 5000, kDelay, /*force=*/true, true, counters_), kPoolSize);
  EXPECT_EQ(a->dirty_mask, 0u);

  // Without waiting, a busy lock means no purge.
  PoolDesc* r4 = Claim(kCls64);
  arenas_.ReleaseRun(r4, t, counters_, &cache_);
  {
    threading::SpinLockHolder busy(&arenas_.lock());
    EXPECT_EQ(arenas_.Purge(t + 5000, kDelay, true, /*wait=*/false, counters_), 0u);
  }
  EXPECT_NE(a->dirty_mask, 0u);
  EXPECT_EQ(arenas_.Purge(t + 5000, kDelay, true, /*wait=*/false, counters_), kPoolSize);
  EXPECT_EQ(a->dirty_mask, 0u);
}

// An arena moves between two heaps (an orphan absorbed): Detach from one,
// its empty runs moved, Attach to the other; counts on both sides.
TEST(OwnedArenasMoveTest, DetachMoveEmptyRunAttach) {
  TestHeapEnv::Reset();
  TestHeap from(2001, TestHeapEnv::env());
  TestHeap to(2002, TestHeapEnv::env());
  ASSERT_NE(from.get(), nullptr);
  ASSERT_NE(to.get(), nullptr);
  HeapTestPeer f(from.get()), t(to.get());
  const LinkKey key = GetLinkKey();
  const uint64_t now = TestHeapEnv::Now();

  // `a`: a current run with a live block and an empty run kept whole.
  ArenaHeader* a = TestHeapEnv::env()->acquire_arena(from.get());
  ASSERT_NE(a, nullptr);
  PoolDesc* live = f.arenas().ClaimRun(kCls64, a, -1, f.counters());
  live->run.BecomeCurrent();
  ASSERT_EQ(PopBlocks(live, 1, key).size(), 1u);
  ArenaHeader* found = nullptr;
  const int start = f.arenas().FindFreeRun(kClasses[kCls1K].run_pools, &found, TestHeapEnv::Now());
  ASSERT_EQ(found, a);
  PoolDesc* empty = f.arenas().ClaimRun(kCls1K, a, start, f.counters());
  f.arenas().KeepEmpty(empty, now);
  // `b`: an empty arena.
  ArenaHeader* b = TestHeapEnv::env()->acquire_arena(from.get());
  ASSERT_NE(b, nullptr);
  f.arenas().ReleaseRun(f.arenas().ClaimRun(kCls64, b, -1, f.counters()), now, f.counters(), &f.arena_cache());
  f.arena_cache().Remember(a);
  f.arena_cache().Remember(b);
  ASSERT_EQ(f.arenas().counts().arenas, 2u);
  ASSERT_EQ(f.arenas().counts().empty_arenas, 1u);
  ASSERT_TRUE(f.arenas().IsValid(from.get()));
  const size_t free_a = kUsablePools - 1 - empty->run_pools;

  EXPECT_EQ(f.arenas().Detach(a, &f.arena_cache()), free_a);
  EXPECT_FALSE(f.arena_cache().Holds(a));
  EXPECT_EQ(f.arenas().counts().arenas, 1u);
  EXPECT_EQ(f.arenas().counts().free_pools, kUsablePools);  // b's
  f.arenas().MoveEmptyRun(empty, &t.arenas());
  EXPECT_EQ(f.arenas().CachedPoolBytes(), kUsablePools * kPoolSize);
  EXPECT_EQ(t.arenas().CachedPoolBytes(), empty->run_pools * kPoolSize);  // the run went first
  EXPECT_EQ(empty->run.state(), RunState::kEmpty);
  EXPECT_EQ(empty->run.free_since(), static_cast<uint32_t>(now));
  a->owner.store(to.get(), std::memory_order_release);
  t.arenas().Attach(a, free_a);
  EXPECT_EQ(t.arenas().counts().arenas, 1u);
  EXPECT_EQ(t.arenas().counts().empty_arenas, 0u);
  EXPECT_EQ(t.arenas().counts().free_pools, free_a);
  EXPECT_EQ(t.arenas().CachedPoolBytes(), (free_a + empty->run_pools) * kPoolSize);

  const size_t free_b = f.arenas().Detach(b, &f.arena_cache());
  EXPECT_EQ(free_b, kUsablePools);
  EXPECT_EQ(f.arenas().counts().empty_arenas, 0u);
  EXPECT_FALSE(f.arenas().OwnsArenas());
  EXPECT_EQ(f.arenas().CachedPoolBytes(), 0u);
  b->owner.store(to.get(), std::memory_order_release);
  t.arenas().Attach(b, free_b);
  EXPECT_EQ(t.arenas().counts().arenas, 2u);
  EXPECT_EQ(t.arenas().counts().empty_arenas, 1u);
  EXPECT_EQ(t.arenas().counts().free_pools, free_a + free_b);

  EXPECT_TRUE(f.arenas().IsValid(from.get()));
  EXPECT_TRUE(t.arenas().IsValid(to.get()));
  EXPECT_FALSE(t.arenas().IsValid(from.get()));
  EXPECT_TRUE(to->IsValid());
  EXPECT_EQ(t.arenas().TakeEmpty(kCls1K), empty);  // the new owner reuses it

  // Tidy: the live block's run and the taken run back, then the arenas.
  t.arenas().ReleaseRun(empty, now, t.counters(), &t.arena_cache());
  live->run.Demote();
  t.arenas().ReleaseRun(live, now, t.counters(), &t.arena_cache());
  EXPECT_TRUE(from.Tidy());
  EXPECT_TRUE(to.Tidy());
  EXPECT_EQ(TestHeapEnv::released(), 2u);
}

// ===========================================================================
// ClassCache: the per-class lists the fast paths pop and push

// Blocks of class cls for the cache tests, carved from a run of their own.
class ClassCacheTest : public PartsTest {
 protected:
  // 8-byte blocks unless a test says otherwise: runs enough for more than
  // a list keeps.
  virtual size_t BlockSize() const { return 8; }
  void SetUp() override {
    PartsTest::SetUp();
    kCls = SizeToClass(BlockSize());
    while (blocks_.size() < CacheMaxBlocks(BlockSize()) + 2u) {
      PoolDesc* run = Claim(kCls);
      ASSERT_NE(run, nullptr);
      run->run.BecomeCurrent();
      runs_.push_back(run);
      while (run->run.carved() < run->capacity) {
        const BlockChain c = run->run.CarveChain(run->Start(), run->size, run->capacity, UINT32_MAX, key_);
        FreeBlock* b = c.first;
        for (uint32_t i = 0; i < c.count; ++i, b = NextOf(b, key_)) blocks_.push_back(b);
      }
    }
  }
  void TearDown() override {
    // Back on their runs, then as PartsTest tidies.
    for (FreeBlock* b : blocks_) RunOf(ArenaOf(b), b)->run.Push(b, key_);
    PartsTest::TearDown();
  }
  void* Pop() { return cache_lists_.TryPopClass(kCls, key_, cache_); }

  size_t kCls = 0;
  std::vector<PoolDesc*> runs_;
  std::vector<FreeBlock*> blocks_;
  ClassCache cache_lists_;
};

// The same with 32-byte blocks, which have a second word.
class ClassCache32Test : public ClassCacheTest {
 protected:
  size_t BlockSize() const override { return 32; }
};

TEST_F(ClassCacheTest, PushesArePoppedLastInFirstOutAndCounted) {
  EXPECT_EQ(Pop(), nullptr);  // empty: nothing counted
  EXPECT_EQ(cache_lists_.countdown(kCls), 0);
  cache_lists_.SetCountdown(kCls, 1000);
  cache_lists_.SetRoom(kCls);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(cache_lists_.TryPush(kCls, blocks_[i], key_));
  EXPECT_EQ(cache_lists_.Length(kCls), 10u);
  EXPECT_EQ(cache_lists_.head(kCls), blocks_[9]);
  for (int i = 9; i >= 5; --i) EXPECT_EQ(Pop(), blocks_[i]);
  EXPECT_EQ(cache_lists_.Length(kCls), 5u);
  EXPECT_EQ(cache_lists_.countdown(kCls), 995);
  // The checked build clears a block's link as it hands it out (so that a
  // live block never looks free); the default build leaves the word alone.
  EXPECT_EQ(WordOf(blocks_[9]), kCheckedBuild ? 0u : reinterpret_cast<uintptr_t>(blocks_[8]));
  EXPECT_TRUE(cache_lists_.IsValid(key_));
  EXPECT_EQ(cache_lists_.CachedBytes(), 5u * 8);
  for (int i = 4; i >= 0; --i) EXPECT_EQ(Pop(), blocks_[i]);
  EXPECT_EQ(Pop(), nullptr);
  EXPECT_EQ(cache_lists_.Length(kCls), 0u);
  EXPECT_TRUE(cache_lists_.IsValid(key_));
}

TEST_F(ClassCacheTest, TheCountdownSendsItsLastPopToTheSlowPath) {
  cache_lists_.SetRoom(kCls);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(cache_lists_.TryPush(kCls, blocks_[i], key_));
  cache_lists_.SetCountdown(kCls, 3);
  EXPECT_EQ(Pop(), blocks_[7]);
  EXPECT_EQ(Pop(), blocks_[6]);
  EXPECT_EQ(Pop(), nullptr);  // the third: the slow path's
  EXPECT_EQ(cache_lists_.head(kCls), blocks_[5]);  // nothing popped
  EXPECT_EQ(cache_lists_.UndoPop(kCls), 1);        // this pop was the countdown's
  EXPECT_EQ(cache_lists_.Length(kCls), 6u);
  EXPECT_EQ(cache_lists_.PopSlow(kCls, key_), blocks_[5]);
  EXPECT_EQ(cache_lists_.Length(kCls), 5u);
  cache_lists_.SetCountdown(kCls, 2);
  EXPECT_EQ(Pop(), blocks_[4]);
  EXPECT_EQ(cache_lists_.Length(kCls), 4u);
  EXPECT_TRUE(cache_lists_.IsValid(key_));
}

TEST_F(ClassCacheTest, RoomBoundsTheListAndTheHeadIsNeverPushedTwice) {
  const uint32_t max = CacheMaxBlocks(8);
  ASSERT_GT(blocks_.size(), size_t{max} + 1);
  cache_lists_.SetCountdown(kCls, 100000);
  cache_lists_.SetRoom(kCls);
  uint32_t pushed = 0;
  while (cache_lists_.TryPush(kCls, blocks_[pushed], key_)) ++pushed;
  EXPECT_EQ(pushed, max);  // the next one goes to the slow path
  cache_lists_.UndoPush(kCls);
  EXPECT_EQ(cache_lists_.Length(kCls), max);
  // The slow path gives half back, then there is room again.
  const BlockChain half = cache_lists_.Take(kCls, max / 2, key_);
  EXPECT_EQ(half.count, max / 2);
  EXPECT_EQ(half.first, blocks_[max - 1]);  // the head's side
  EXPECT_EQ(NextOf(half.last, key_), nullptr);
  cache_lists_.SetRoom(kCls);
  EXPECT_EQ(cache_lists_.Length(kCls), max - max / 2);
  // An immediate double free: the block at the head is refused.
  FreeBlock* head = cache_lists_.head(kCls);
  EXPECT_FALSE(cache_lists_.TryPush(kCls, head, key_));
  cache_lists_.UndoPush(kCls);
  EXPECT_EQ(cache_lists_.Length(kCls), max - max / 2);
  EXPECT_TRUE(cache_lists_.IsValid(key_));
  // The half taken comes back as a chain at the head.
  cache_lists_.Add(kCls, half, key_);
  EXPECT_EQ(cache_lists_.head(kCls), blocks_[max - 1]);
  EXPECT_EQ(cache_lists_.Length(kCls), max);
  EXPECT_TRUE(cache_lists_.IsValid(key_));
  EXPECT_EQ(cache_lists_.Drop(kCls), max);
  EXPECT_EQ(cache_lists_.Length(kCls), 0u);
  EXPECT_TRUE(cache_lists_.IsValid(key_));
}

TEST_F(ClassCacheTest, IsValidCatchesAListLongerThanCounted) {
  cache_lists_.SetRoom(kCls);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache_lists_.TryPush(kCls, blocks_[i], key_));
  ASSERT_TRUE(cache_lists_.IsValid(key_));
  SetLink(blocks_[0], blocks_[10], key_);  // the tail now leads on
  EXPECT_FALSE(cache_lists_.IsValid(key_));
  SetLink(blocks_[0], nullptr, key_);
  EXPECT_TRUE(cache_lists_.IsValid(key_));
}

// The checked build never follows a link out of the heap's known arenas
// (kCheckPoppedLinks): the pop goes to the slow path, which checks it. The
// default build follows every link as it is.
TEST_F(ClassCacheTest, APopChecksItsLinkInTheCheckedBuild) {
  cache_lists_.SetCountdown(kCls, 1000);
  cache_lists_.SetRoom(kCls);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache_lists_.TryPush(kCls, blocks_[i], key_));
  if constexpr (kCheckPoppedLinks) {
    // A link overwritten by the program (a write after free): refused
    // before it is followed; nothing moves.
    const uintptr_t saved = WordOf(blocks_[3]);
    const uintptr_t garbage = GarbageFor(blocks_[3]);
    ASSERT_NE(garbage, 0u);
    SetWord(blocks_[3], garbage);
    EXPECT_EQ(Pop(), nullptr);
    EXPECT_EQ(cache_lists_.head(kCls), blocks_[3]);
    cache_lists_.UndoPop(kCls);
    SetWord(blocks_[3], saved);
    EXPECT_EQ(Pop(), blocks_[3]);
    // A well-formed link into an arena the arena cache does not hold: the
    // slow path's to check.
    FreeBlock* elsewhere =
        reinterpret_cast<FreeBlock*>(ArenaOf(blocks_[2])->Base() + kArenaSize + 4 * kPoolSize);
    SetLink(blocks_[2], elsewhere, key_);
    EXPECT_EQ(Pop(), nullptr);
    cache_lists_.UndoPop(kCls);
    // Held by the arena cache: followed.
    cache_.Remember(ArenaOf(elsewhere));
    EXPECT_EQ(Pop(), blocks_[2]);
    EXPECT_EQ(cache_lists_.head(kCls), elsewhere);
    cache_.Forget(ArenaOf(elsewhere));
  } else {
    // Plain links, followed as they are.
    EXPECT_EQ(WordOf(blocks_[3]), reinterpret_cast<uintptr_t>(blocks_[2]));
    EXPECT_EQ(Pop(), blocks_[3]);
    EXPECT_EQ(cache_lists_.head(kCls), blocks_[2]);
  }
  cache_lists_.Drop(kCls);
}

// A block handed out holds none of the words of a free block, whichever
// pop hands it out: a program that frees it untouched from another thread
// must not be told it freed it twice. The checked build clears its link and
// its second word (a cached block's null); the remote free path trusts
// LooksCached and LooksTravelling without a walk (free_path.h). Regression:
// larson-sized under the checked build reported a false double free for a
// zeroed first word that happened to decode to a link's shape (one address
// in 2^20) over a stale cached-block second word.
TEST_F(ClassCache32Test, APoppedBlockHoldsNoFreeBlockWords) {
  cache_lists_.SetCountdown(kCls, 1000);
  cache_lists_.SetRoom(kCls);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(cache_lists_.TryPush(kCls, blocks_[i], key_));
  if constexpr (kCheckFreedBlock) {
    for (int i = 0; i < 8; ++i) EXPECT_TRUE(LooksCached(blocks_[i], 32, key_)) << i;
  }
  std::vector<void*> out;
  for (int i = 0; i < 4; ++i) out.push_back(Pop());
  cache_lists_.SetCountdown(kCls, 1);  // the rest through the slow path's pop
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Pop(), nullptr);
    cache_lists_.UndoPop(kCls);
    out.push_back(cache_lists_.PopSlow(kCls, key_));
  }
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(out[i], blocks_[7 - i]);
    if constexpr (kEncodedLinks) {
      EXPECT_EQ(WordOf(out[i]), 0u) << i;
      EXPECT_EQ(WordOf(static_cast<FreeBlock*>(out[i]) + 1), 0u) << i;
      EXPECT_FALSE(LooksCached(out[i], 32, key_)) << i;
      EXPECT_FALSE(LooksOnItsList(out[i], key_)) << i;
      EXPECT_FALSE(HoldsFreeWords(out[i], 32, key_)) << i;
    }
  }
  EXPECT_EQ(cache_lists_.Length(kCls), 0u);
  EXPECT_TRUE(cache_lists_.IsValid(key_));
}

// ===========================================================================
// ClassRuns

TEST_F(PartsTest, SetCurrentPutsTheSpentRunToSleep) {
  ClassRuns runs;
  EXPECT_EQ(runs.current(kCls64), &g_empty_pool);
  PoolDesc* d1 = Claim(kCls64);
  runs.SetCurrent(kCls64, d1);
  EXPECT_EQ(d1->run.state(), RunState::kCurrent);
  EXPECT_EQ(runs.current(kCls64), d1);
  EXPECT_TRUE(runs.IsValid());
  // Spend it: every block carved and handed out.
  while (d1->run.carved() < d1->capacity) {
    const BlockChain c = d1->run.CarveChain(d1->Start(), d1->size, d1->capacity, 64, key_);
    ASSERT_GT(c.count, 0u);
  }
  EXPECT_EQ(d1->Used(), d1->capacity);

  PoolDesc* d2 = Claim(kCls64);
  runs.SetCurrent(kCls64, d2);
  EXPECT_EQ(d1->run.state(), RunState::kAsleep);
  EXPECT_EQ(d1->Used(), d1->capacity);
  EXPECT_TRUE(d1->IsValid());
  EXPECT_EQ(d2->run.state(), RunState::kCurrent);
  EXPECT_EQ(runs.current(kCls64), d2);
  EXPECT_TRUE(runs.IsValid());
}

TEST_F(PartsTest, TakeCurrentDemotes) {
  ClassRuns runs;
  EXPECT_EQ(runs.TakeCurrent(kCls64), nullptr);
  PoolDesc* d = Claim(kCls64);
  runs.SetCurrent(kCls64, d);
  CarveOntoList(d, key_);
  ASSERT_NE(PopOne(d, key_), nullptr);
  EXPECT_EQ(runs.TakeCurrent(kCls64), d);
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_EQ(d->Used(), 1u);
  EXPECT_EQ(runs.current(kCls64), &g_empty_pool);
  EXPECT_EQ(runs.TakeCurrent(kCls64), nullptr);
  EXPECT_TRUE(runs.IsValid());
  runs.LinkPartial(d);
  EXPECT_EQ(d->run.state(), RunState::kPartial);
  EXPECT_TRUE(runs.IsValid());
}

TEST_F(PartsTest, TakePartialTakesEachPartialRunOnce) {
  ClassRuns runs;
  EXPECT_EQ(runs.TakePartial(kCls64), nullptr);
  PoolDesc* d[3];
  for (PoolDesc*& r : d) {
    r = Claim(kCls64);
    ASSERT_EQ(Take(r, 1).size(), 1u);  // a live block: a partial run's
    runs.LinkPartial(r);
    EXPECT_EQ(r->run.state(), RunState::kPartial);
  }
  EXPECT_TRUE(runs.IsValid());
  EXPECT_EQ(runs.TakePartial(kCls1K), nullptr);  // another class's list

  runs.UnlinkPartial(d[1]);
  EXPECT_EQ(d[1]->run.state(), RunState::kHeld);
  EXPECT_TRUE(runs.IsValid());
  std::set<PoolDesc*> taken;
  for (int i = 0; i < 2; ++i) {
    PoolDesc* r = runs.TakePartial(kCls64);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->run.state(), RunState::kHeld);
    EXPECT_TRUE(taken.insert(r).second);
  }
  EXPECT_EQ(taken, (std::set<PoolDesc*>{d[0], d[2]}));
  EXPECT_EQ(runs.TakePartial(kCls64), nullptr);
  EXPECT_TRUE(runs.IsValid());
}

TEST_F(PartsTest, ClassRunsIsValidCatchesRunsChangedBehindItsBack) {
  ClassRuns runs;
  PoolDesc* d = Claim(kCls64);
  runs.SetCurrent(kCls64, d);
  CarveOntoList(d, key_);
  PoolDesc* p = Claim(kCls64);
  ASSERT_EQ(Take(p, 1).size(), 1u);
  runs.LinkPartial(p);
  ASSERT_TRUE(runs.IsValid());

  d->run.Demote();  // the current slot holds a run that is not current
  EXPECT_FALSE(runs.IsValid());
  d->run.BecomeCurrent();
  EXPECT_TRUE(runs.IsValid());

  p->run.LeavePartial();  // the partial list holds a run that is not partial
  EXPECT_FALSE(runs.IsValid());
  p->run.EnterPartial();
  EXPECT_TRUE(runs.IsValid());

  void* b = d->Start() + 5 * 64;  // a damaged list in the current run
  const uintptr_t saved = WordOf(b);
  const uintptr_t garbage = GarbageFor(b);
  ASSERT_NE(garbage, 0u);
  SetWord(b, garbage);
  EXPECT_FALSE(runs.IsValid());
  SetWord(b, saved);
  EXPECT_TRUE(runs.IsValid());
}

// ===========================================================================
// ArenaCache

TEST(ArenaCacheTest, RemembersAndForgets) {
  ArenaCache cache;
  const uintptr_t base = uintptr_t{0x7e00} << 32;  // never dereferenced
  auto* a = reinterpret_cast<char*>(base);
  auto* next = a + kArenaSize;  // the next slot
  // Arenas a power-of-two stride apart (reservations between thread
  // stacks) take different slots: the fold.
  EXPECT_NE(ArenaCache::ArenaSlot(a), ArenaCache::ArenaSlot(next));
  EXPECT_NE(ArenaCache::ArenaSlot(a), ArenaCache::ArenaSlot(a + (size_t{64} << 20)));
  EXPECT_NE(ArenaCache::ArenaSlot(a), ArenaCache::ArenaSlot(a + kArenaCacheEntries * kArenaSize));
  // Another arena in a's slot.
  char* same_slot = a + kArenaSize;
  while (ArenaCache::ArenaSlot(same_slot) != ArenaCache::ArenaSlot(a)) same_slot += kArenaSize;
  EXPECT_FALSE(cache.Holds(nullptr));
  EXPECT_FALSE(cache.Holds(a));

  cache.Remember(a);
  EXPECT_TRUE(cache.Holds(a));
  EXPECT_TRUE(cache.Holds(a + 100));
  EXPECT_TRUE(cache.Holds(a + kArenaSize - 1));
  EXPECT_FALSE(cache.Holds(a + kArenaSize));
  EXPECT_FALSE(cache.Holds(a - 1));
  EXPECT_FALSE(cache.Holds(same_slot));
  EXPECT_FALSE(cache.Holds(nullptr));

  cache.Forget(same_slot);  // not the one in a's slot: a stays
  EXPECT_TRUE(cache.Holds(a));
  cache.Remember(same_slot);  // direct-mapped: replaces a
  EXPECT_TRUE(cache.Holds(same_slot + 8));
  EXPECT_FALSE(cache.Holds(a));
  cache.Forget(same_slot);
  EXPECT_FALSE(cache.Holds(same_slot));

  cache.Remember(a);
  cache.Remember(next);
  EXPECT_TRUE(cache.Holds(a));
  EXPECT_TRUE(cache.Holds(next));
  cache.Forget(a);
  EXPECT_FALSE(cache.Holds(a));
  EXPECT_TRUE(cache.Holds(next));
  cache.Remember(a);
  cache.ForgetAll();
  EXPECT_FALSE(cache.Holds(a));
  EXPECT_FALSE(cache.Holds(next));
}

// The pool cache's two levels: a pool the first level lost to another of
// its slot is found in the second, which teaches the first again; a
// released run's pools leave both; no pointer matches a pool it is not in.
TEST(ArenaCacheTest, PoolsFallBackToTheSecondLevel) {
  ArenaCache cache;
  const uintptr_t base = uintptr_t{0x7e00} << 32;  // never dereferenced
  auto* a = reinterpret_cast<char*>(base) + 5 * kPoolSize;
  auto* rival = a + kPoolCacheEntries * kPoolSize;   // a's first-level slot
  // Another pool in a's second-level slot (the fold puts a + 4096 pools
  // in another).
  EXPECT_NE(ArenaCache::Pool2Slot(a), ArenaCache::Pool2Slot(a + kPoolCache2Entries * kPoolSize));
  char* far = a + kPoolSize;
  while (ArenaCache::Pool2Slot(far) != ArenaCache::Pool2Slot(a)) far += kPoolSize;
  size_t cls = 0;
  EXPECT_FALSE(cache.PoolClass(a, &cls));
  EXPECT_FALSE(cache.PoolClassSlow(a, &cls));
  EXPECT_FALSE(cache.PoolClassSlow(nullptr, &cls));

  cache.RememberPool(a, 7);
  ASSERT_TRUE(cache.PoolClass(a + 100, &cls));
  EXPECT_EQ(cls, 7u);
  cache.RememberPool(rival, 9);  // takes a's first-level slot only
  EXPECT_FALSE(cache.PoolClass(a, &cls));
  cls = 0;
  ASSERT_TRUE(cache.PoolClassSlow(a + 8, &cls));
  EXPECT_EQ(cls, 7u);
  ASSERT_TRUE(cache.PoolClass(a, &cls));  // learnt again
  EXPECT_EQ(cls, 7u);
  ASSERT_TRUE(cache.PoolClassSlow(rival, &cls));
  EXPECT_EQ(cls, 9u);

  // Pointers that share a's slots but not its pool: never a hit.
  EXPECT_FALSE(cache.PoolClassSlow(far, &cls));
  EXPECT_FALSE(cache.PoolClassSlow(a + (uintptr_t{1} << 56), &cls));  // a wild pointer's high bits
  EXPECT_FALSE(cache.PoolClassSlow(a + (uintptr_t{1} << 47), &cls));
  EXPECT_FALSE(cache.PoolClass(a + (uintptr_t{1} << 56), &cls));

  cache.ForgetPools(a, 1);  // a's run released
  EXPECT_FALSE(cache.PoolClass(a, &cls));
  EXPECT_FALSE(cache.PoolClassSlow(a, &cls));
  ASSERT_TRUE(cache.PoolClassSlow(rival, &cls));  // other pools stay
  cache.ForgetPools(far, 1);  // not in the cache: nothing of rival's goes
  ASSERT_TRUE(cache.PoolClassSlow(rival, &cls));
  cache.ForgetAll();
  EXPECT_FALSE(cache.PoolClass(rival, &cls));
  EXPECT_FALSE(cache.PoolClassSlow(rival, &cls));
}

// ===========================================================================
// ReleaseBudget

TEST(ReleaseBudgetTest, DecayIntervalFollowsTheDelay) {
  EXPECT_EQ(DecayIntervalMs(-1), 16u);
  EXPECT_EQ(DecayIntervalMs(0), 16u);
  EXPECT_EQ(DecayIntervalMs(32), 16u);
  EXPECT_EQ(DecayIntervalMs(100), 50u);
  EXPECT_EQ(DecayIntervalMs(1999), 999u);
  EXPECT_EQ(DecayIntervalMs(2000), 1000u);
  EXPECT_EQ(DecayIntervalMs(3600000), 1000u);
}

TEST(ReleaseBudgetTest, DecayIsDueOncePerInterval) {
  ReleaseBudget b;
  uint64_t now = TestHeapEnv::kStartMs;
  EXPECT_TRUE(b.DecayDue(now, 1000));  // the first look
  EXPECT_FALSE(b.DecayDue(now, 1000));
  EXPECT_FALSE(b.DecayDue(now + 499, 1000));
  EXPECT_TRUE(b.DecayDue(now + 500, 1000));  // half the delay later
  now += 500;
  EXPECT_FALSE(b.DecayDue(now + 499, 10));  // the next time was set by the last
  EXPECT_TRUE(b.DecayDue(now + 500, 10));
  now += 500;
  EXPECT_FALSE(b.DecayDue(now + 15, 10));  // a short delay: every 16 ms
  EXPECT_TRUE(b.DecayDue(now + 16, 10));
  now += 16;
  EXPECT_FALSE(b.DecayDue(now + 15, 5000));
  EXPECT_TRUE(b.DecayDue(now + 16, 5000));
  now += 16;
  EXPECT_FALSE(b.DecayDue(now + 999, 5000));  // a long one: every second
  EXPECT_TRUE(b.DecayDue(now + 1000, 5000));
  // A clock far ahead: due at once, then not again within the interval.
  EXPECT_TRUE(b.DecayDue(now + 1000000, 5000));
  EXPECT_FALSE(b.DecayDue(now + 1000999, 5000));
}

TEST(ReleaseBudgetTest, OverBudgetWaitsForAQuarterOfTheBudgetAfterAcheck) {
  const ScopedOption bytes(Option::kThreadCacheBytes, int64_t{1} << 20);
  ASSERT_EQ(ReleaseBudget::Bytes(), size_t{1} << 20);  // no limit, all heaps under the total
  ReleaseBudget b;
  constexpr size_t kMiB = size_t{1} << 20;
  EXPECT_FALSE(b.OverBudget(0, kMiB));
  EXPECT_TRUE(b.OverBudget(0, kMiB + 1));

  b.Checked(10, kMiB);  // a quarter of 1 MiB: 64 pools more
  EXPECT_FALSE(b.OverBudget(73, 2 * kMiB));
  EXPECT_TRUE(b.OverBudget(74, 2 * kMiB));
  EXPECT_FALSE(b.OverBudget(1000, kMiB));  // within the budget

  b.Checked(10, 0);  // at least 16 pools
  EXPECT_FALSE(b.OverBudget(25, 2 * kMiB));
  EXPECT_TRUE(b.OverBudget(26, 2 * kMiB));
  b.Checked(0, 16 * kPoolSize);
  EXPECT_FALSE(b.OverBudget(15, 2 * kMiB));
  EXPECT_TRUE(b.OverBudget(16, 2 * kMiB));
}

// When all heaps together keep more than total_cache_bytes, none keeps any.
TEST_F(PartsTest, BudgetIsZeroWhenAllHeapsKeepMoreThanTheTotal) {
  PoolDesc* d = Claim(kCls64);  // an arena of free pools, published
  ASSERT_NE(d, nullptr);
  d->run.BecomeCurrent();
  ASSERT_GT(CachedPoolBytesAllHeaps(), 0u);
  const ScopedOption bytes(Option::kThreadCacheBytes, int64_t{1} << 20);
  {
    const ScopedOption total(Option::kTotalCacheBytes, 0);
    EXPECT_EQ(ReleaseBudget::Bytes(), 0u);
  }
  EXPECT_EQ(ReleaseBudget::Bytes(), size_t{1} << 20);
}

// ===========================================================================
// OutgoingBatches

class OutgoingTest : public PartsTest {
 protected:
  void SetUp() override {
    PartsTest::SetUp();
    PoolDesc* d = Claim(kCls64);
    ASSERT_NE(d, nullptr);
    d->run.BecomeCurrent();
    run_ = d;
    blocks_ = Take(d, d->capacity);
    ASSERT_EQ(blocks_.size(), d->capacity);
  }

  // Pushes blocks_[from, to) for owner `id`, queue q.
  void PushRange(size_t from, size_t to, IncomingQueue* q, uint32_t id) {
    for (size_t i = from; i < to; ++i) out_.Push(blocks_[i], run_, q, id, 64);
  }

  // Drains q, returning the blocks in the order they came (and the length
  // of each segment the drain handed over, in `segments`).
  std::vector<void*> DrainAll(IncomingQueue* q, std::vector<uint32_t>* segments = nullptr) {
    struct Sink {
      std::vector<void*>* got;
      std::vector<uint32_t>* segments;
      bool Known(const FreeBlock*, const FreeBlock*) const { return false; }
      void FreeSegment(FreeBlock* first, FreeBlock* last, uint32_t blocks, ArenaHeader*, PoolDesc*) {
        FreeBlock* b = first;
        for (uint32_t i = 0; i < blocks; ++i) {
          got->push_back(b);
          if (i + 1 < blocks) b = NextOf(b, GetLinkKey());
        }
        EXPECT_EQ(b, last);
        if (segments != nullptr) segments->push_back(blocks);
      }
    };
    std::vector<void*> got;
    Sink sink{&got, segments};
    const size_t taken = q->Drain(sink);
    EXPECT_EQ(taken, got.size());
    return got;
  }

  // Large enough that nothing is flushed for its size unless a test says so.
  const ScopedOption batch_bytes_{Option::kRemoteBatchBytes, int64_t{1} << 20};
  PoolDesc* run_ = nullptr;
  std::vector<void*> blocks_;
  HeapCounters sent_;
  OutgoingBatches out_{key_, sent_};
};

TEST_F(OutgoingTest, BlocksForOneOwnerGoToOneBatch) {
  IncomingQueue q3, q4, other;
  PushRange(0, 10, &q3, 3);
  PushRange(10, 15, &q4, 4);
  EXPECT_EQ(out_.Bytes(), 15u * 64);
  EXPECT_EQ(Get(sent_.remote_frees), 15u);
  EXPECT_EQ(Get(sent_.remote_bytes), 15u * 64);
  EXPECT_EQ(Batches(sent_), 0u);
  EXPECT_TRUE(q3.EmptyHint());
  EXPECT_TRUE(out_.IsValid());
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_TRUE(out_.Contains(&q3, 3, blocks_[i])) << i;
    EXPECT_FALSE(out_.Contains(&q4, 4, blocks_[i])) << i;
    EXPECT_FALSE(out_.Contains(&other, 3, blocks_[i])) << i;  // that slot goes to q3
  }
  EXPECT_FALSE(out_.Contains(&q3, 3, blocks_[12]));
  EXPECT_FALSE(out_.Contains(&q3, 3, blocks_[20]));  // never batched
  EXPECT_TRUE(out_.Contains(&q4, 4, blocks_[12]));

  out_.FlushAll();
  EXPECT_EQ(out_.Bytes(), 0u);
  EXPECT_TRUE(out_.IsValid());
  EXPECT_EQ(q3.QueuedBytes(), 10 * 64);
  EXPECT_EQ(q4.QueuedBytes(), 5 * 64);
  EXPECT_EQ(Get(sent_.batch_blocks[3]), 1u);  // 10 blocks: [8, 16)
  EXPECT_EQ(Get(sent_.batch_blocks[2]), 1u);  // 5 blocks: [4, 8)
  EXPECT_EQ(Batches(sent_), 2u);
  EXPECT_FALSE(out_.Contains(&q3, 3, blocks_[0]));
  // A batch arrives newest block first.
  const std::vector<void*> got = DrainAll(&q3);
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(got[i], blocks_[9 - i]) << i;
  EXPECT_EQ(q3.QueuedBytes(), 0);
  EXPECT_EQ(DrainAll(&q4).size(), 5u);
  out_.FlushAll();  // nothing to flush
  EXPECT_EQ(Batches(sent_), 2u);
}

TEST_F(OutgoingTest, ASecondOwnerOnTheSameSlotFlushesTheFirstBatch) {
  IncomingQueue q1, q2;
  const uint32_t id1 = 3, id2 = 3 + kOutgoingSlots;
  PushRange(0, 5, &q1, id1);
  EXPECT_TRUE(q1.EmptyHint());
  PushRange(5, 6, &q2, id2);
  EXPECT_EQ(q1.QueuedBytes(), 5 * 64);  // handed over
  EXPECT_EQ(Get(sent_.batch_blocks[2]), 1u);
  EXPECT_EQ(Batches(sent_), 1u);
  EXPECT_EQ(out_.Bytes(), 64u);
  EXPECT_TRUE(out_.Contains(&q2, id2, blocks_[5]));
  EXPECT_FALSE(out_.Contains(&q1, id1, blocks_[0]));
  EXPECT_EQ(Get(sent_.remote_frees), 6u);
  EXPECT_TRUE(out_.IsValid());
  EXPECT_EQ(DrainAll(&q1), (std::vector<void*>{blocks_[4], blocks_[3], blocks_[2], blocks_[1], blocks_[0]}));
  EXPECT_TRUE(q2.EmptyHint());
  out_.FlushAll();
  EXPECT_EQ(DrainAll(&q2), std::vector<void*>{blocks_[5]});
  EXPECT_EQ(Get(sent_.batch_blocks[0]), 1u);
}

TEST_F(OutgoingTest, BatchIsHandedOverAtRemoteBatchBytes) {
  IncomingQueue q;
  {
    const ScopedOption five(Option::kRemoteBatchBytes, 5 * 64);
    PushRange(0, 4, &q, 1);
    EXPECT_TRUE(q.EmptyHint());
    EXPECT_EQ(out_.Bytes(), 4u * 64);
    PushRange(4, 5, &q, 1);  // the fifth reaches 320 bytes
    EXPECT_EQ(q.QueuedBytes(), 5 * 64);
    EXPECT_EQ(out_.Bytes(), 0u);
    EXPECT_EQ(Get(sent_.batch_blocks[2]), 1u);
    PushRange(5, 6, &q, 1);  // a new batch
    EXPECT_EQ(out_.Bytes(), 64u);
    EXPECT_EQ(q.QueuedBytes(), 5 * 64);
    EXPECT_TRUE(out_.IsValid());
  }
  {
    const ScopedOption every(Option::kRemoteBatchBytes, 0);  // every free at once
    PushRange(6, 7, &q, 1);
    EXPECT_EQ(out_.Bytes(), 0u);
    EXPECT_EQ(q.QueuedBytes(), 7 * 64);
    EXPECT_EQ(Get(sent_.batch_blocks[1]), 1u);  // the pending one and this: 2 blocks
    PushRange(7, 8, &q, 1);
    EXPECT_EQ(Get(sent_.batch_blocks[0]), 1u);
    EXPECT_EQ(q.QueuedBytes(), 8 * 64);
  }
  EXPECT_EQ(Batches(sent_), 3u);
  const std::vector<void*> got = DrainAll(&q);
  EXPECT_EQ(std::set<void*>(got.begin(), got.end()), std::set<void*>(blocks_.begin(), blocks_.begin() + 8));
  EXPECT_EQ(got.size(), 8u);
  EXPECT_EQ(q.QueuedBytes(), 0);
}

TEST_F(OutgoingTest, FlushAndForgetHandsEverythingOver) {
  IncomingQueue q1, q2;
  PushRange(0, 3, &q1, 1);
  PushRange(3, 7, &q2, 2);
  out_.FlushAndForget();
  EXPECT_EQ(out_.Bytes(), 0u);
  EXPECT_EQ(q1.QueuedBytes(), 3 * 64);
  EXPECT_EQ(q2.QueuedBytes(), 4 * 64);
  EXPECT_EQ(Batches(sent_), 2u);
  EXPECT_TRUE(out_.IsValid());
  // Batching starts afresh (the next thread to hold the heap).
  PushRange(7, 9, &q1, 1);
  EXPECT_EQ(out_.Bytes(), 2u * 64);
  EXPECT_EQ(Batches(sent_), 2u);
  EXPECT_TRUE(out_.Contains(&q1, 1, blocks_[8]));
  EXPECT_TRUE(out_.IsValid());
  out_.FlushAll();
  EXPECT_EQ(DrainAll(&q1).size(), 5u);
  EXPECT_EQ(DrainAll(&q2).size(), 4u);
}

TEST_F(OutgoingTest, IsValidCatchesADamagedBatch) {
  IncomingQueue q;
  PushRange(0, 6, &q, 1);  // the chain: 5 -> 4 -> 3 -> 2 -> 1 -> 0
  ASSERT_TRUE(out_.IsValid());
  void* b = blocks_[3];
  const uintptr_t saved = WordOf(b);
  const uintptr_t garbage = GarbageFor(b);
  ASSERT_NE(garbage, 0u);
  SetWord(b, garbage);
  EXPECT_FALSE(out_.IsValid());
  EXPECT_TRUE(out_.Contains(&q, 1, blocks_[4]));   // before the damage
  EXPECT_FALSE(out_.Contains(&q, 1, blocks_[0]));  // after it: not followed
  SetWord(b, saved);
  EXPECT_TRUE(out_.IsValid());
  EXPECT_TRUE(out_.Contains(&q, 1, blocks_[0]));
  out_.FlushAll();
  EXPECT_EQ(DrainAll(&q).size(), 6u);
}

// Consecutive frees of one run form one segment; another run's block, or
// an 8-byte block, starts a new one; the drain hands each segment over
// whole, with its last block and length.
TEST_F(OutgoingTest, ConsecutiveBlocksOfOneRunTravelAsOneSegment) {
  PoolDesc* other = Claim(kCls64);
  ASSERT_NE(other, nullptr);
  other->run.BecomeCurrent();
  std::vector<void*> others = Take(other, 4);
  PoolDesc* tiny = Claim(SizeToClass(8));
  ASSERT_NE(tiny, nullptr);
  tiny->run.BecomeCurrent();
  std::vector<void*> tinies = Take(tiny, 2);
  IncomingQueue q;
  // Pushed: 6 of run_, 2 of other, 1 tiny, 3 of run_, 2 tiny, 2 of other.
  PushRange(0, 6, &q, 1);
  for (int i = 0; i < 2; ++i) out_.Push(others[i], other, &q, 1, 64);
  out_.Push(tinies[0], tiny, &q, 1, 8);
  PushRange(6, 9, &q, 1);
  out_.Push(tinies[1], tiny, &q, 1, 8);
  for (int i = 2; i < 4; ++i) out_.Push(others[i], other, &q, 1, 64);
  EXPECT_TRUE(out_.IsValid());
  EXPECT_EQ(out_.Bytes(), 13u * 64 + 2 * 8);
  // The open segment (at the head) is the last two of other: its words.
  const Segment open = SegmentOf(static_cast<FreeBlock*>(others[3]), key_);
  EXPECT_EQ(open.last, others[2]);
  EXPECT_EQ(open.blocks, 2u);
  out_.FlushAll();
  std::vector<uint32_t> segments;
  const std::vector<void*> got = DrainAll(&q, &segments);
  // Newest first: [others 3, 2] [tiny 1] [blocks 8, 7, 6] [tiny 0]
  // [others 1, 0] [blocks 5 .. 0].
  EXPECT_EQ(segments, (std::vector<uint32_t>{2, 1, 3, 1, 2, 6}));
  const std::vector<void*> order = {others[3], others[2], tinies[1], blocks_[8], blocks_[7], blocks_[6], tinies[0],
                                    others[1], others[0], blocks_[5], blocks_[4], blocks_[3], blocks_[2], blocks_[1],
                                    blocks_[0]};
  EXPECT_EQ(got, order);
}

// A segment's word is checked: a damaged one is never followed.
TEST_F(OutgoingTest, IsValidCatchesADamagedSegmentWord) {
  IncomingQueue q;
  PushRange(0, 4, &q, 1);
  ASSERT_TRUE(out_.IsValid());
  auto* head = static_cast<FreeBlock*>(blocks_[3]);
  const Segment seg = SegmentOf(head, key_);
  ASSERT_EQ(seg.last, blocks_[0]);
  ASSERT_EQ(seg.blocks, 4u);
  SetSegment(head, static_cast<FreeBlock*>(blocks_[1]), 4, key_);  // names the wrong last block
  EXPECT_FALSE(out_.IsValid());
  SetSegment(head, seg.last, seg.blocks, key_);
  EXPECT_TRUE(out_.IsValid());
  out_.FlushAll();
  EXPECT_EQ(DrainAll(&q).size(), 4u);
}

// ===========================================================================
// IncomingQueue and the drain

// What a drain handed its sink.
struct Received {
  FreeBlock* b;
  ArenaHeader* arena;
  PoolDesc* run;
  size_t size;
};

// A sink as the heap's: links within the block's arena are known; the
// rest is looked up in the page map.
struct RecordingSink {
  std::vector<Received> got;
  bool Known(const FreeBlock* b, const FreeBlock* next) const { return SameArena(b, next) && InBlockPool(next); }
  void FreeSegment(FreeBlock* first, FreeBlock* /*last*/, uint32_t blocks, ArenaHeader* a, PoolDesc* d) {
    FreeBlock* b = first;
    for (uint32_t i = 0; i < blocks; ++i) {
      got.push_back({b, a, d, d->size});
      if (i + 1 < blocks) b = NextOf(b, GetLinkKey());
    }
  }
};

class IncomingTest : public PartsTest {
 protected:
  void SetUp() override {
    PartsTest::SetUp();
    small_run_ = Claim(kCls64);
    large_run_ = Claim(kCls1K);
    ASSERT_TRUE(small_run_ && large_run_);
    small_ = Take(small_run_, 16);
    large_ = Take(large_run_, 16);  // 4 pools' worth: blocks in tail pools
    ASSERT_EQ(small_.size(), 16u);
    ASSERT_EQ(large_.size(), 16u);
  }

  // Links `blocks` into a batch (first to last; the queue links the last),
  // each a segment of its own, and hands it to q.
  void PushBatch(IncomingQueue* q, const std::vector<void*>& blocks) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      auto* b = static_cast<FreeBlock*>(blocks[i]);
      if (i + 1 < blocks.size()) SetLink(b, static_cast<FreeBlock*>(blocks[i + 1]), key_);
      SetSegment(b, b, 1, key_);
      bytes += RunOf(ArenaOf(b), b)->size;
    }
    q->Push(static_cast<FreeBlock*>(blocks.front()), static_cast<FreeBlock*>(blocks.back()), bytes);
  }

  PoolDesc* small_run_ = nullptr;
  PoolDesc* large_run_ = nullptr;
  std::vector<void*> small_, large_;
};

TEST_F(IncomingTest, DrainSeesEveryBlockOnceInOrderWithItsRunAndSize) {
  IncomingQueue q;
  EXPECT_EQ(q.QueuedBytes(), 0);
  EXPECT_TRUE(q.EmptyHint());
  const std::vector<void*> first = {small_[0], small_[1], large_[5]};
  const std::vector<void*> third = {large_[9], small_[2], large_[14]};
  PushBatch(&q, first);
  q.PushOne(static_cast<FreeBlock*>(small_[3]), 64);
  PushBatch(&q, third);
  EXPECT_EQ(q.QueuedBytes(), 4 * 64 + 3 * 1024);
  EXPECT_FALSE(q.EmptyHint());

  RecordingSink sink;
  EXPECT_EQ(q.Drain(sink), 7u);
  // The newest batch first, each batch in its own order.
  const std::vector<void*> order = {large_[9], small_[2], large_[14], small_[3], small_[0], small_[1], large_[5]};
  ASSERT_EQ(sink.got.size(), order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const Received& r = sink.got[i];
    EXPECT_EQ(r.b, order[i]) << i;
    EXPECT_EQ(r.arena, ArenaOf(order[i])) << i;
    const bool large = std::find(large_.begin(), large_.end(), order[i]) != large_.end();
    EXPECT_EQ(r.run, large ? large_run_ : small_run_) << i;
    EXPECT_EQ(r.size, large ? 1024u : 64u) << i;
    EXPECT_EQ(r.run->run.HoldsCarved(r.b), true) << i;
  }
  // large_[14] lies in a tail pool of its run: the drain found the head.
  EXPECT_EQ(reinterpret_cast<PoolDesc*>(ArenaOf(large_[14])->Base() + DescOffset(large_[14]))->state,
            PoolState::kTail);
  EXPECT_EQ(q.QueuedBytes(), 0);
  EXPECT_TRUE(q.EmptyHint());
  EXPECT_EQ(q.Drain(sink), 0u);
  EXPECT_EQ(sink.got.size(), order.size());
}

TEST_F(IncomingTest, ADamagedBatchIsReportedOnceAndTheRestDropped) {
  IncomingQueue q;
  const std::vector<void*> batch = {small_[0], small_[1], small_[2], small_[3], small_[4]};
  PushBatch(&q, batch);
  void* damaged = small_[2];  // its link leads to small_[3]
  const uintptr_t garbage = GarbageFor(damaged);
  ASSERT_NE(garbage, 0u);
  SetWord(damaged, garbage);

  CountMode count;
  RecordingSink sink;
  EXPECT_EQ(q.Drain(sink), 3u);
  EXPECT_EQ(count.Errors(), 1u);
  ASSERT_EQ(sink.got.size(), 3u);
  EXPECT_EQ(sink.got[0].b, small_[0]);
  EXPECT_EQ(sink.got[1].b, small_[1]);
  EXPECT_EQ(sink.got[2].b, damaged);  // itself freed; what it linked to is not followed
  EXPECT_EQ(q.Drain(sink), 0u);
  EXPECT_EQ(count.Errors(), 1u);
  EXPECT_EQ(sink.got.size(), 3u);
}

// ===========================================================================
// SuspectSlots

TEST_F(IncomingTest, SuspectSlotsHoldSixteenBlocksEachTakenOnce) {
  SuspectSlots s;
  EXPECT_EQ(s.Bytes(), 0);
  ASSERT_EQ(SuspectSlots::kSlots, 16u);
  for (size_t i = 0; i < SuspectSlots::kSlots; ++i) {
    EXPECT_TRUE(s.Push(small_[i], 0x1000 + i)) << i;
  }
  EXPECT_EQ(s.Bytes(), 16 * 64);
  EXPECT_FALSE(s.Push(large_[0], 0x2000));  // full
  EXPECT_EQ(s.Bytes(), 16 * 64);

  std::vector<std::pair<void*, uintptr_t>> taken;
  s.TakeEach([&](void* p, uintptr_t word) { taken.emplace_back(p, word); });
  ASSERT_EQ(taken.size(), SuspectSlots::kSlots);
  std::set<void*> seen;
  for (const auto& [p, word] : taken) {
    EXPECT_TRUE(seen.insert(p).second);
    size_t i = 0;
    while (i < 16 && small_[i] != p) ++i;
    ASSERT_LT(i, 16u);
    EXPECT_EQ(word, 0x1000 + i);
  }
  EXPECT_EQ(s.Bytes(), 0);
  s.TakeEach([&](void*, uintptr_t) { ADD_FAILURE() << "taken twice"; });

  // Room again; a block's bytes are its class's.
  EXPECT_TRUE(s.Push(large_[0], 0x2000));
  EXPECT_EQ(s.Bytes(), 1024);
  taken.clear();
  s.TakeEach([&](void* p, uintptr_t word) { taken.emplace_back(p, word); });
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].first, large_[0]);
  EXPECT_EQ(taken[0].second, 0x2000u);
  EXPECT_EQ(s.Bytes(), 0);
}

// ===========================================================================
// Whole heaps in test-owned memory, with the test env

class HeapPartsTest : public ::testing::Test {
 protected:
  void SetUp() override { TestHeapEnv::Reset(); }

  // Keep empty runs (the default budget, set here so that the environment
  // cannot change it) and a known batch size.
  const ScopedOption cache_bytes_{Option::kThreadCacheBytes, int64_t{4} << 20};
  const ScopedOption batch_bytes_{Option::kRemoteBatchBytes, int64_t{16} << 10};
};

// Frees p, a block of h's, by the owner's local path.
void FreeLocal(Heap* h, void* p) { FreeToRun(h, RunOf(ArenaOf(p), p), p); }

TEST_F(HeapPartsTest, AllocatesAndFreesThroughItsParts) {
  TestHeap t(1001, TestHeapEnv::env());
  ASSERT_NE(t.get(), nullptr);
  Heap* h = t.get();
  const HeapCounters& c = h->counters();
  const size_t n = testing::Scaled<size_t>(600, 150);
  const size_t sizes[] = {16, 64, 1024, 8192};
  std::vector<void*> blocks;
  std::set<void*> distinct;
  std::set<PoolDesc*> runs;
  std::set<ArenaHeader*> arenas;
  for (size_t i = 0; i < n; ++i) {
    for (size_t size : sizes) {
      const size_t cls = SizeToClass(size);
      void* p = HeapTestPeer(h).Allocate(cls, size);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(distinct.insert(p).second) << "handed out twice: " << p;
      ArenaHeader* a = ArenaOf(p);
      PoolDesc* d = RunOf(a, p);
      EXPECT_EQ(a->owner.load(std::memory_order_relaxed), h);
      EXPECT_EQ(d->size_class, cls);
      EXPECT_TRUE(d->run.HoldsCarved(p));
      blocks.push_back(p);
      runs.insert(d);
      arenas.insert(a);
    }
  }
  // Runs whose blocks a refill gathered and all still wait on the class
  // lists count too (a class that refills often gathers new runs).
  for (size_t size : sizes) {
    const size_t cls = SizeToClass(size);
    for (FreeBlock* b = HeapTestPeer(h).cache().head(cls); !IsListEnd(b); b = NextOf(b, h->link_key())) {
      runs.insert(RunOf(ArenaOf(b), b));
      arenas.insert(ArenaOf(b));
    }
  }
  EXPECT_TRUE(h->IsValid());
  EXPECT_EQ(Get(c.runs_created), runs.size());
  EXPECT_EQ(Get(c.arenas_acquired), arenas.size());
  EXPECT_EQ(TestHeapEnv::acquired(), arenas.size());
  EXPECT_EQ(TestHeapEnv::acquire_calls(), arenas.size());
  // One refill may gather blocks from several runs (large classes).
  EXPECT_GT(Get(c.refills), 0u);
  EXPECT_LT(Get(c.refills), blocks.size());
  EXPECT_EQ(Get(c.runs_released), 0u);
  EXPECT_EQ(Get(c.remote_frees), 0u);

  // Free every other block, then the rest: runs sleep, wake, go partial,
  // empty, and are kept or released.
  for (size_t i = 0; i < blocks.size(); i += 2) FreeLocal(h, blocks[i]);
  EXPECT_TRUE(h->IsValid());
  for (size_t i = 1; i < blocks.size(); i += 2) FreeLocal(h, blocks[i]);
  EXPECT_TRUE(h->IsValid());
  EXPECT_GT(Get(c.runs_woken), 0u);
  HeapTestPeer(h).ReturnCached();  // the blocks refills brought but nobody took
  EXPECT_TRUE(h->IsValid());
  for (PoolDesc* d : runs) {
    if (d->state == PoolState::kHead) {
      EXPECT_EQ(d->Used(), 0u);
    }
  }
  EXPECT_EQ(TestHeapEnv::acquire_calls(), arenas.size());  // frees take no arena

  // Allocate again: served from what the heap keeps, no new arena.
  const size_t acquired = TestHeapEnv::acquired();
  void* again = HeapTestPeer(h).Allocate(SizeToClass(64), 64);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(TestHeapEnv::acquired(), acquired);
  FreeLocal(h, again);

  EXPECT_TRUE(t.Tidy());
  EXPECT_EQ(TestHeapEnv::released(), TestHeapEnv::acquired());
  EXPECT_EQ(Get(c.arenas_released), Get(c.arenas_acquired));
  EXPECT_EQ(Get(c.runs_released), Get(c.runs_created));
  EXPECT_TRUE(h->IsValid());
}

TEST_F(HeapPartsTest, AllocateFailsWithEnomemWhenTheSourceRefuses) {
  TestHeap t(1002, TestHeapEnv::env());
  ASSERT_NE(t.get(), nullptr);
  Heap* h = t.get();
  TestHeapEnv::FailAcquire(true);
  errno = 0;
  EXPECT_EQ(HeapTestPeer(h).Allocate(kCls64, 64), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(TestHeapEnv::acquire_calls(), 1u);
  EXPECT_EQ(TestHeapEnv::acquired(), 0u);
  EXPECT_EQ(Get(h->counters().arenas_acquired), 0u);
  EXPECT_EQ(Get(h->counters().runs_created), 0u);
  EXPECT_FALSE(h->arenas().OwnsArenas());
  EXPECT_TRUE(h->IsValid());

  // The source willing again: an arena.
  TestHeapEnv::FailAcquire(false);
  void* p = HeapTestPeer(h).Allocate(kCls64, 64);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(TestHeapEnv::acquired(), 1u);
  // Refusing again: another class still finds room in the arena it holds.
  TestHeapEnv::FailAcquire(true);
  void* q = HeapTestPeer(h).Allocate(kCls1K, 1024);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(ArenaOf(q), ArenaOf(p));
  EXPECT_EQ(TestHeapEnv::acquire_calls(), 2u);
  EXPECT_TRUE(h->IsValid());
  TestHeapEnv::FailAcquire(false);

  FreeLocal(h, p);
  FreeLocal(h, q);
  EXPECT_TRUE(t.Tidy());
  EXPECT_EQ(TestHeapEnv::released(), 1u);
}

// Heap B frees heap A's blocks: batched by B, handed to A's queue, freed by
// A's drain onto their runs.
TEST_F(HeapPartsTest, RemoteFreesReturnToTheirOwner) {
  TestHeap owner(1003, TestHeapEnv::env());
  TestHeap freer(1004, TestHeapEnv::env());
  ASSERT_TRUE(owner.get() && freer.get());
  Heap* a = owner.get();
  Heap* b = freer.get();
  constexpr size_t kN = 500;  // 31.25 KiB of 64-byte blocks: two batches of 16 KiB
  std::vector<void*> blocks;
  for (size_t i = 0; i < kN; ++i) {
    blocks.push_back(HeapTestPeer(a).Allocate(kCls64, 64));
    ASSERT_NE(blocks.back(), nullptr);
  }
  for (void* p : blocks) BatchRemote(b, a, p, RunOf(ArenaOf(p), p));
  EXPECT_EQ(Get(b->counters().remote_frees), kN);
  EXPECT_EQ(Get(b->counters().remote_bytes), kN * 64);
  EXPECT_EQ(Batches(b->counters()), 1u);  // at 256 blocks
  EXPECT_EQ(Get(b->counters().batch_blocks[8]), 1u);
  EXPECT_EQ(a->incoming().QueuedBytes(), 256 * 64);
  EXPECT_EQ(b->outgoing().Bytes(), (kN - 256) * 64);
  EXPECT_TRUE(b->outgoing().Contains(&a->incoming(), a->entry().id(), blocks.back()));
  EXPECT_TRUE(b->IsValid());
  b->FlushOutgoing();
  EXPECT_EQ(Get(b->counters().batch_blocks[7]), 1u);  // the other 244
  EXPECT_EQ(a->incoming().QueuedBytes(), static_cast<int64_t>(kN * 64));
  EXPECT_EQ(b->outgoing().Bytes(), 0u);

  EXPECT_EQ(a->DrainRemote(), kN);
  EXPECT_EQ(Get(a->counters().remote_received), kN);
  EXPECT_EQ(Get(a->counters().remote_forwarded), 0u);
  EXPECT_EQ(a->incoming().QueuedBytes(), 0);
  EXPECT_TRUE(a->IsValid());
  HeapTestPeer(a).ReturnCached();  // the blocks refills brought but nobody took
  for (void* p : blocks) {
    PoolDesc* d = RunOf(ArenaOf(p), p);
    ASSERT_EQ(d->state, PoolState::kHead);
    EXPECT_EQ(d->Used(), 0u);
    EXPECT_TRUE(d->HasFreeBlock(p)) << p;
  }
  EXPECT_EQ(a->DrainRemote(), 0u);
  EXPECT_TRUE(owner.Tidy());
  EXPECT_TRUE(freer.Tidy());
  EXPECT_EQ(TestHeapEnv::released(), TestHeapEnv::acquired());
}

// A refill's drain that empties a run runs the decay hook, which may start
// the release thread, whose pthread_create allocates on the same heap (the
// owner re-enters its lock) and may refill the very class list being
// refilled. The outer refill must then link its chain (a run's list, whose
// last block it does not know) in front of what the nested one left: it
// wrote through a null `last` before.
Heap* g_nested_heap = nullptr;
size_t g_nested_cls = 0;
void* g_nested_block = nullptr;
void AllocatingHook(uint64_t, bool released) {
  if (!released || g_nested_heap == nullptr) return;
  Heap* h = g_nested_heap;
  g_nested_heap = nullptr;  // once
  g_nested_block = HeapTestPeer(h).Allocate(g_nested_cls, kClasses[g_nested_cls].size);
}

TEST_F(HeapPartsTest, ARefillSurvivesAnAllocationItsDrainLetsIn) {
  TestHeap owner(1005, TestHeapEnv::env());
  TestHeap freer(1006, TestHeapEnv::env());
  ASSERT_TRUE(owner.get() && freer.get());
  Heap* h = owner.get();
  HeapTestPeer peer(h);
  const size_t c = SizeToClass(304);  // the class refilled, and the nested allocation's
  const size_t d = kCls64;            // the class whose run the drain empties
  // Class d: one run full (not current), its blocks all handed out.
  std::vector<void*> d_blocks;
  PoolDesc* d_run = nullptr;
  for (;;) {
    void* p = peer.Allocate(d, 64);
    ASSERT_NE(p, nullptr);
    if (d_run == nullptr) d_run = RunOf(ArenaOf(p), p);
    if (RunOf(ArenaOf(p), p) != d_run) {
      FreeLocal(h, p);  // the next run's: back on its run
      break;
    }
    d_blocks.push_back(p);
  }
  ASSERT_EQ(d_blocks.size(), d_run->capacity);
  // Class c: its list empty and its current run spent (every block out).
  std::vector<void*> c_blocks;
  c_blocks.push_back(peer.Allocate(c, 304));
  PoolDesc* c_run = RunOf(ArenaOf(c_blocks[0]), c_blocks[0]);
  while (c_blocks.size() < c_run->capacity) {
    c_blocks.push_back(peer.Allocate(c, 304));
    ASSERT_EQ(RunOf(ArenaOf(c_blocks.back()), c_blocks.back()), c_run);
  }
  ASSERT_TRUE(IsListEnd(peer.cache().head(c)));
  // Remote frees: twelve of c's first (drained last: the queue is a stack;
  // enough to wake c's spent run onto the partial list), then all of d's
  // run (drained first: it empties, is kept, and the kept run's decay hook
  // allocates from class c, whose refill makes a new run current).
  constexpr size_t kBack = 12;
  for (size_t i = 0; i < kBack; ++i) BatchRemote(freer.get(), h, c_blocks[i], c_run);
  freer.get()->FlushOutgoing();
  for (void* p : d_blocks) BatchRemote(freer.get(), h, p, d_run);
  freer.get()->FlushOutgoing();
  g_nested_heap = h;
  g_nested_cls = c;
  g_nested_block = nullptr;
  const GlobalDecayHook previous = SetGlobalDecayHook(&AllocatingHook);
  void* p = peer.Allocate(c, 304);
  SetGlobalDecayHook(previous);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(g_nested_block, nullptr) << "the drain ran no hook that allocated";
  EXPECT_NE(p, g_nested_block);
  // Before, the refill made the woken run current again over the nested
  // refill's run, which fell asleep with blocks never carved (IsValid),
  // and linked the woken run's list in front of the nested refill's
  // leftovers through a null `last`.
  EXPECT_TRUE(h->IsValid());
  // Every block handed out once: the rest of class c's blocks too.
  std::set<void*> live(c_blocks.begin() + kBack, c_blocks.end());
  ASSERT_TRUE(live.insert(p).second);
  ASSERT_TRUE(live.insert(g_nested_block).second);
  for (size_t i = 0; i < 3 * c_run->capacity; ++i) {
    void* q = peer.Allocate(c, 304);
    ASSERT_NE(q, nullptr);
    ASSERT_TRUE(live.insert(q).second) << "handed out twice: " << q;
  }
  EXPECT_TRUE(h->IsValid());
  for (void* q : live) FreeLocal(h, q);
  HeapTestPeer(h).ReturnCached();
  EXPECT_TRUE(h->IsValid());
  EXPECT_TRUE(owner.Tidy());
  EXPECT_TRUE(freer.Tidy());
}

// A block sent to a heap that does not own its arena (the arena moved while
// the block travelled) is forwarded to the owner.
TEST_F(HeapPartsTest, BlocksSentToTheWrongHeapAreForwarded) {
  TestHeap owner(1005, TestHeapEnv::env());
  TestHeap stale(1006, TestHeapEnv::env());
  ASSERT_TRUE(owner.get() && stale.get());
  Heap* a = owner.get();
  Heap* s = stale.get();
  constexpr size_t kN = 100;
  std::vector<void*> blocks;
  for (size_t i = 0; i < kN; ++i) {
    blocks.push_back(HeapTestPeer(a).Allocate(kCls1K, 1024));
    ASSERT_NE(blocks.back(), nullptr);
  }
  // As if a freeing thread had read a stale owner: the blocks go to s.
  for (void* p : blocks) BatchRemote(a, s, p, RunOf(ArenaOf(p), p));
  a->FlushOutgoing();
  EXPECT_EQ(s->incoming().QueuedBytes(), static_cast<int64_t>(kN * 1024));

  EXPECT_EQ(s->DrainRemote(), kN);
  EXPECT_EQ(Get(s->counters().remote_received), kN);
  EXPECT_EQ(Get(s->counters().remote_forwarded), kN);
  EXPECT_FALSE(s->arenas().OwnsArenas());
  s->FlushOutgoing();
  EXPECT_EQ(a->DrainRemote(), kN);
  EXPECT_EQ(Get(a->counters().remote_received), kN);
  EXPECT_TRUE(a->IsValid());
  EXPECT_TRUE(s->IsValid());
  for (void* p : blocks) EXPECT_TRUE(RunOf(ArenaOf(p), p)->HasFreeBlock(p)) << p;
  EXPECT_TRUE(owner.Tidy());
  EXPECT_TRUE(stale.Tidy());
}

// The heap stamps an emptied run with its env's clock, and purges it once
// that clock has moved on by the delay.
TEST_F(HeapPartsTest, EmptyRunsAreStampedAndPurgedByTheHeapsClock) {
  const ScopedOption delay(Option::kPurgeDelayMs, 1000);
  const ScopedOption mode(Option::kPurgeMode, 0);
  TestHeap t(1007, TestHeapEnv::env());
  ASSERT_NE(t.get(), nullptr);
  Heap* h = t.get();
  HeapTestPeer peer(h);
  // A run filled (asleep once the next takes over), and one block of the next.
  const uint32_t capacity = kClasses[kCls64].blocks;
  std::vector<void*> blocks;
  for (uint32_t i = 0; i <= capacity; ++i) {
    blocks.push_back(HeapTestPeer(h).Allocate(kCls64, 64));
    ASSERT_NE(blocks.back(), nullptr);
  }
  PoolDesc* full = RunOf(ArenaOf(blocks[0]), blocks[0]);
  ASSERT_EQ(full->run.state(), RunState::kAsleep);
  ASSERT_EQ(peer.runs().current(kCls64), RunOf(ArenaOf(blocks.back()), blocks.back()));
  // The refill took the heap's turn at purging at the env's time.
  EXPECT_FALSE(peer.budget().DecayDue(TestHeapEnv::Now(), 1000));
  // Every pool clean: what is dirty from here on is this test's.
  h->Decay(TestHeapEnv::Now(), 0, /*force=*/true, /*exclusive=*/false);

  TestHeapEnv::Advance(5000);
  const uint64_t emptied = TestHeapEnv::Now();
  for (uint32_t i = 0; i < capacity; ++i) FreeLocal(h, blocks[i]);
  EXPECT_EQ(full->run.state(), RunState::kEmpty);  // woke, went partial, emptied: kept whole
  EXPECT_EQ(full->run.free_since(), static_cast<uint32_t>(emptied));
  EXPECT_EQ(Get(h->counters().runs_woken), 1u);
  EXPECT_FALSE(peer.budget().DecayDue(emptied, 1000));  // the free's turn
  EXPECT_TRUE(h->IsValid());

  const uint64_t purged = Get(h->counters().pools_purged);
  TestHeapEnv::Advance(999);
  EXPECT_EQ(h->Decay(TestHeapEnv::Now(), 1000, false, false), 0u);
  EXPECT_FALSE(full->run.purged());
  TestHeapEnv::Advance(1);
  EXPECT_EQ(h->Decay(TestHeapEnv::Now(), 1000, false, false), kPoolSize);
  EXPECT_TRUE(full->run.purged());
  EXPECT_EQ(Get(h->counters().pools_purged), purged + 1);
  EXPECT_TRUE(h->IsValid());

  // Taken for reuse: the purged run is re-carved.
  EXPECT_EQ(peer.arenas().TakeEmpty(kCls64), full);
  EXPECT_EQ(full->run.carved(), 0u);
  EXPECT_EQ(full->run.free_list(), reinterpret_cast<FreeBlock*>(ArenaOf(full)));
  peer.arenas().KeepEmpty(full, TestHeapEnv::Now());
  FreeLocal(h, blocks.back());
  EXPECT_TRUE(t.Tidy());
}

}  // namespace
}  // namespace strata::internal
