// The run state machine (run.h) and the checks of a run head
// (PoolDesc::IsValid, arena.h): every transition from a valid state, the
// count the free fast path tests, carving and popping, the corrections after
// misuse, and IsValid on runs that are right and on runs that are not.
//
// A run's free list ends at its arena's base, so its descriptor lives in a
// real arena from the arena source; runs are made with FormatHead and
// FormatTail, as OwnedArenas::ClaimRun makes them (the arena's free masks
// are left alone, and no lock is taken: no heap owns the arena, and the
// tests are single-threaded).
#include "tests/alloc/heap_test_peer.h"
#include "alloc/run.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "alloc/arena.h"
#include "alloc/config.h"
#include "alloc/free_link.h"
#include "alloc/os.h"
#include "alloc/size_class.h"
#include "gtest/gtest.h"

namespace strata::internal {
namespace {

// A one-pool class: 64 blocks of 64 bytes, carved at once.
const size_t kSmall = SizeToClass(64);
// A multi-pool class carved a page at a time: 32 blocks of 1 KiB in 8 pools.
const size_t kMulti = SizeToClass(1024);
// A class whose block is larger than a page (carved one block at a time).
const size_t kLarge = SizeToClass(8192);
// A class of one block per run (wakes on its first free).
const size_t kSingle = SizeToClass(kMaxMediumSize);

// The first word of block b, as memory.
uintptr_t WordOf(const void* b) {
  uintptr_t w;
  std::memcpy(&w, b, sizeof(w));
  return w;
}
void SetWord(void* b, uintptr_t w) { std::memcpy(b, &w, sizeof(w)); }

// A word that, stored in block b, decodes to no link a list or a batch may
// hold: not link-shaped (an address that is not 8-aligned, or above 2^47)
// and out of b's arena. Tries fixed patterns, one of which fits unless the
// key is astronomically unlucky (each fails with a chance of about 2^-20).
uintptr_t GarbageFor(const void* b) {
  const LinkKey key = GetLinkKey();
  for (uintptr_t i = 0; i < 16; ++i) {
    const uintptr_t w = 0x4141414141414141u + i * 0x0101010101010101u;
    const FreeBlock* next = DecodeLink(b, reinterpret_cast<const FreeBlock*>(w), key);
    if ((reinterpret_cast<uintptr_t>(next) & kLinkShapeMask) != 0 && !SameArena(b, next)) return w;
  }
  return 0;
}

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitLinkKey();
    key_ = GetLinkKey();
    arena_ = AcquireArena(nullptr);
    ASSERT_NE(arena_, nullptr);
  }

  void TearDown() override {
    // Every pool back to free, as the source expects an arena back; the
    // pools the test wrote to may be resident.
    for (size_t i = kFirstUsablePool; i < kPoolsPerArena; ++i) arena_->pool(i)->ResetToFree(0);
    arena_->dirty_mask = arena_->free_mask;
    ReleaseArena(arena_, os::NowMs());
  }

  FreeBlock* ListEnd() const { return reinterpret_cast<FreeBlock*>(arena_); }

  // A new run of class cls at pool `index` (kHeld), with its tail pools.
  PoolDesc* MakeRun(size_t cls, size_t index = kFirstUsablePool) {
    PoolDesc* d = arena_->pool(index);
    const uint32_t n = kClasses[cls].run_pools;
    d->FormatHead(cls, n, ListEnd());
    for (uint32_t i = 1; i < n; ++i) d[i].FormatTail(cls, i);
    return d;
  }

  // Block k of run d.
  static void* Block(const PoolDesc* d, uint32_t k) { return d->Start() + size_t{k} * d->size; }

  // Carves the rest of d.
  void CarveAll(PoolDesc* d) {
    for (uint32_t i = 0; i < d->capacity && d->run.carved() < d->capacity; ++i) {
      CarveOntoList(d, key_);
    }
  }

  // Pops every block d has or can carve, as the heap's PopFrom would:
  // carving whenever the list is at its end.
  std::vector<void*> PopAll(PoolDesc* d) {
    std::vector<void*> got;
    for (uint32_t i = 0; i <= d->capacity; ++i) {
      if (IsListEnd(d->run.free_list()) && d->run.carved() < d->capacity) {
        CarveOntoList(d, key_);
      }
      void* b = PopOne(d, key_);
      if (b == nullptr) break;
      got.push_back(b);
    }
    return got;
  }

  // The blocks on d's list, in list order (at most capacity + 1 of them).
  std::vector<void*> List(const PoolDesc* d) const {
    std::vector<void*> out;
    for (FreeBlock* b = d->run.free_list(); !IsListEnd(b) && out.size() <= d->capacity; b = NextOf(b, key_)) {
      out.push_back(b);
    }
    return out;
  }

  // Current run d, whose blocks in use are `out`, freed: kHeld, empty (the
  // last free says so), as the free slow path takes it off its list.
  void Empty(PoolDesc* d, const std::vector<void*>& out) {
    d->run.Demote();
    d->run.EnterPartial();
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_EQ(d->run.Push(static_cast<FreeBlock*>(out[i]), key_), i + 1 == out.size()) << i;
    }
    d->run.LeavePartial();
  }

  // A current run of class cls with `used` blocks handed out (the rest of
  // the carved ones on its list).
  PoolDesc* CurrentRunWith(size_t cls, uint32_t used, std::vector<void*>* out) {
    PoolDesc* d = MakeRun(cls);
    d->run.BecomeCurrent();
    for (uint32_t i = 0; i < used; ++i) {
      if (IsListEnd(d->run.free_list())) CarveOntoList(d, key_);
      out->push_back(PopOne(d, key_));
    }
    return d;
  }

  LinkKey key_;
  ArenaHeader* arena_ = nullptr;
};

TEST(WakeFreesTest, AQuarterOfTheCapacityAndAtLeastOne) {
  EXPECT_EQ(WakeFrees(64), 16u);
  EXPECT_EQ(WakeFrees(32), 8u);
  EXPECT_EQ(WakeFrees(7), 1u);
  EXPECT_EQ(WakeFrees(1), 1u);
}

// ---- Begin, tails, carving, taking blocks --------------------------------

TEST_F(RunTest, BeginMakesAHeldRunWithAnEmptyList) {
  PoolDesc* d = MakeRun(kMulti, 5);
  ASSERT_GT(d->run_pools, 1u);
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_EQ(d->run.carved(), 0u);
  EXPECT_EQ(d->run.free_list(), ListEnd());
  EXPECT_FALSE(d->run.kept_empty());
  EXPECT_FALSE(d->run.purged());
  EXPECT_EQ(d->Start(), arena_->Base() + 5 * kPoolSize);
  EXPECT_FALSE(d->run.HoldsCarved(d->Start()));  // nothing carved yet
  // kHeld is transient: a head at rest is never held.
  EXPECT_FALSE(d->IsValid());
  for (uint32_t i = 1; i < d->run_pools; ++i) {
    EXPECT_EQ(d[i].state, PoolState::kTail);
    EXPECT_EQ(d[i].Head(), d);
    EXPECT_EQ(d[i].OwnHead(), d);
    EXPECT_EQ(d[i].run.state(), RunState::kNone);
    EXPECT_TRUE(d[i].IsValid()) << i;
  }
  d->run.BecomeCurrent();
  EXPECT_TRUE(d->IsValid());
}

TEST_F(RunTest, CarveLinksAboutAPageOfBlocksInAddressOrder) {
  PoolDesc* d = MakeRun(kMulti);
  d->run.BecomeCurrent();
  const uint32_t per_page = static_cast<uint32_t>(kPoolSize / d->size);
  ASSERT_LT(per_page, d->capacity);
  CarveOntoList(d, key_);
  EXPECT_EQ(d->run.carved(), per_page);
  std::vector<void*> list = List(d);
  ASSERT_EQ(list.size(), per_page);
  for (uint32_t k = 0; k < per_page; ++k) EXPECT_EQ(list[k], Block(d, k)) << k;
  // The list ends at the arena's base.
  EXPECT_EQ(NextOf(static_cast<FreeBlock*>(list.back()), key_), ListEnd());
  EXPECT_TRUE(d->IsValid());

  // Once the list is used up, the next page's blocks, in order.
  for (uint32_t k = 0; k < per_page; ++k) ASSERT_NE(PopOne(d, key_), nullptr);
  CarveOntoList(d, key_);
  EXPECT_EQ(d->run.carved(), 2 * per_page);
  list = List(d);
  ASSERT_EQ(list.size(), per_page);
  for (uint32_t k = 0; k < per_page; ++k) EXPECT_EQ(list[k], Block(d, per_page + k)) << k;
  EXPECT_TRUE(d->IsValid());

  // Carving stops at the capacity.
  CarveAll(d);
  EXPECT_EQ(d->run.carved(), d->capacity);
  EXPECT_EQ(List(d).size(), d->capacity - per_page);
  EXPECT_TRUE(d->IsValid());
}

TEST_F(RunTest, CarveTakesOneBlockAtATimeWhenBlocksAreLargerThanAPage) {
  PoolDesc* d = MakeRun(kLarge);
  ASSERT_GT(d->size, kPoolSize);
  ASSERT_GT(d->capacity, 1u);
  d->run.BecomeCurrent();
  for (uint32_t k = 1; k <= d->capacity; ++k) {
    CarveOntoList(d, key_);
    EXPECT_EQ(d->run.carved(), k);
    EXPECT_EQ(PopOne(d, key_), Block(d, k - 1));
  }
  EXPECT_TRUE(d->IsValid());  // current, spent
}

TEST_F(RunTest, BlocksComeOffTheListInAddressOrderUntilItsEnd) {
  PoolDesc* d = MakeRun(kSmall);
  d->run.BecomeCurrent();
  EXPECT_EQ(PopOne(d, key_), nullptr);  // nothing carved: the list's end
  CarveOntoList(d, key_);
  ASSERT_EQ(d->run.carved(), d->capacity);  // a one-page run: carved at once
  for (uint32_t k = 0; k < d->capacity; ++k) {
    void* b = PopOne(d, key_);
    ASSERT_EQ(b, Block(d, k));
    EXPECT_EQ(WordOf(b), 0u) << "a block handed out keeps no link";
    EXPECT_EQ(d->Used(), k + 1);
    EXPECT_TRUE(d->run.HoldsCarved(b));
  }
  EXPECT_EQ(PopOne(d, key_), nullptr);
  EXPECT_EQ(PopOne(d, key_), nullptr);
  EXPECT_EQ(d->Used(), d->capacity);
  EXPECT_EQ(d->run.free_list(), ListEnd());
  EXPECT_TRUE(d->IsValid());
}

TEST_F(RunTest, HasFreeBlockFindsListMembersOnly) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 3, &out);
  for (void* p : out) EXPECT_FALSE(d->HasFreeBlock(p));
  for (uint32_t k = 3; k < d->capacity; ++k) EXPECT_TRUE(d->HasFreeBlock(Block(d, k))) << k;
  EXPECT_FALSE(d->HasFreeBlock(static_cast<char*>(Block(d, 5)) + 8));  // not a block start
  EXPECT_FALSE(d->HasFreeBlock(arena_->Base() + 40 * kPoolSize));       // another pool
  ASSERT_FALSE(d->run.Push(static_cast<FreeBlock*>(out[1]), key_));
  EXPECT_TRUE(d->HasFreeBlock(out[1]));
}

TEST_F(RunTest, HoldsCarvedAcceptsCarvedBlockStartsOnly) {
  PoolDesc* d = MakeRun(kMulti);
  d->run.BecomeCurrent();
  CarveOntoList(d, key_);
  const uint32_t carved = d->run.carved();
  ASSERT_LT(carved, d->capacity);
  for (uint32_t k = 0; k < carved; ++k) EXPECT_TRUE(d->run.HoldsCarved(Block(d, k))) << k;
  EXPECT_FALSE(d->run.HoldsCarved(Block(d, carved)));  // not carved yet
  EXPECT_FALSE(d->run.HoldsCarved(static_cast<char*>(Block(d, 1)) + 16));
  EXPECT_FALSE(d->run.HoldsCarved(d->Start() - kPoolSize));
  // The shape's check covers the whole run.
  EXPECT_TRUE(ValidateBlock(d, Block(d, d->capacity - 1), d->capacity));
  EXPECT_FALSE(ValidateBlock(d, Block(d, d->capacity), d->capacity));
}

// ---- The count the free fast path tests ----------------------------------

// The run a thread allocates from never sends a free to the slow path, not
// even the free of its last live block.
TEST_F(RunTest, CurrentRunNeverNeedsTheSlowPathOnAFree) {
  PoolDesc* d = MakeRun(kMulti);
  d->run.BecomeCurrent();
  std::vector<void*> blocks = PopAll(d);
  ASSERT_EQ(blocks.size(), d->capacity);
  EXPECT_EQ(d->Used(), d->capacity);
  EXPECT_TRUE(d->IsValid());
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_FALSE(d->run.Push(static_cast<FreeBlock*>(blocks[i]), key_)) << i;
    EXPECT_EQ(d->Used(), d->capacity - i - 1);
  }
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_FALSE(d->run.Underflowed());
  EXPECT_EQ(d->run.state(), RunState::kCurrent);
  EXPECT_TRUE(d->IsValid());
  // And the blocks come back in the order they were freed (last first).
  EXPECT_EQ(PopOne(d, key_), blocks.back());
}

// kCurrent -> kAsleep -> (WakeFrees frees) -> kHeld -> kPartial -> (last
// free) -> kHeld.
// Links `blocks` first to last (as a segment arrives from another thread).
void LinkSegment(const std::vector<void*>& blocks, const LinkKey& key) {
  for (size_t i = 0; i + 1 < blocks.size(); ++i) {
    SetLink(static_cast<FreeBlock*>(blocks[i]), static_cast<FreeBlock*>(blocks[i + 1]), key);
  }
}

// A segment splices onto the list in one step and counts every block: a
// sleeping run woken by one that brings back every block is empty.
TEST_F(RunTest, ASegmentSplicesWholeAndCountsEveryBlock) {
  PoolDesc* d = MakeRun(kSmall);
  d->run.BecomeCurrent();
  std::vector<void*> blocks = PopAll(d);
  const uint32_t capacity = d->capacity;
  ASSERT_EQ(blocks.size(), capacity);
  ASSERT_GE(capacity, 8u);
  d->run.FallAsleep(capacity);

  // Two blocks: not yet enough to wake it (WakeFrees > 2 here).
  ASSERT_GT(WakeFrees(capacity), 2u);
  const std::vector<void*> two(blocks.begin(), blocks.begin() + 2);
  LinkSegment(two, key_);
  EXPECT_FALSE(d->run.PushSegment(static_cast<FreeBlock*>(two[0]), static_cast<FreeBlock*>(two[1]), 2, key_));
  EXPECT_EQ(d->Used(), capacity - 2);
  EXPECT_EQ(List(d), two);
  EXPECT_TRUE(d->IsValid());

  // The rest in one segment: past the wake threshold, to no live block.
  const std::vector<void*> rest(blocks.begin() + 2, blocks.end());
  LinkSegment(rest, key_);
  EXPECT_TRUE(d->run.PushSegment(static_cast<FreeBlock*>(rest.front()), static_cast<FreeBlock*>(rest.back()),
                                 static_cast<uint32_t>(rest.size()), key_));
  EXPECT_FALSE(d->run.Underflowed());
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_EQ(d->run.Wake(), 0u);  // woken empty: the owner keeps or releases it
  std::vector<void*> want = rest;
  want.insert(want.end(), two.begin(), two.end());
  EXPECT_EQ(List(d), want);
}

// A segment that counts more blocks than the run has live (a double free
// among them) underflows; UndoPush takes the whole segment back off.
TEST_F(RunTest, ASegmentThatUnderflowsIsUndoneWhole) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 3, &out);
  d->run.Demote();
  d->run.EnterPartial();
  const std::vector<void*> before = List(d);
  // Three blocks come back, counted as four.
  LinkSegment(out, key_);
  EXPECT_TRUE(d->run.PushSegment(static_cast<FreeBlock*>(out.front()), static_cast<FreeBlock*>(out.back()), 4, key_));
  EXPECT_TRUE(d->run.Underflowed());
  EXPECT_EQ(d->run.UndoPush(static_cast<FreeBlock*>(out.back()), 4, key_), out.front());
  EXPECT_FALSE(d->run.Underflowed());
  EXPECT_EQ(d->Used(), 3u);
  EXPECT_EQ(List(d), before);
  EXPECT_TRUE(d->IsValid());
  // Block by block, they land exactly (the last says "empty").
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(d->run.Push(static_cast<FreeBlock*>(out[i]), key_), i + 1 == out.size()) << i;
  }
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_FALSE(d->run.Underflowed());
  d->run.LeavePartial();
}

TEST_F(RunTest, FullRunSleepsWakesOnTheWakeFreesthFreeAndEmpties) {
  PoolDesc* d = MakeRun(kSmall);
  d->run.BecomeCurrent();
  std::vector<void*> blocks = PopAll(d);
  const uint32_t capacity = d->capacity;
  const uint32_t wake = WakeFrees(capacity);
  ASSERT_EQ(blocks.size(), capacity);
  ASSERT_GT(wake, 1u);

  d->run.FallAsleep(capacity);
  EXPECT_EQ(d->run.state(), RunState::kAsleep);
  EXPECT_TRUE(d->Asleep());
  EXPECT_EQ(d->Used(), capacity);
  EXPECT_TRUE(d->IsValid());

  size_t next = 0;
  for (uint32_t i = 1; i < wake; ++i, ++next) {
    EXPECT_FALSE(d->run.Push(static_cast<FreeBlock*>(blocks[next]), key_)) << i;
    EXPECT_EQ(d->Used(), capacity - i);
    EXPECT_TRUE(d->IsValid()) << i;
  }
  EXPECT_TRUE(d->run.Push(static_cast<FreeBlock*>(blocks[next]), key_));
  ++next;
  EXPECT_EQ(d->Used(), capacity - wake);
  EXPECT_EQ(d->run.state(), RunState::kAsleep);  // until its owner wakes it

  EXPECT_EQ(d->run.Wake(), capacity - wake);
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_EQ(d->Used(), capacity - wake);
  EXPECT_FALSE(d->IsValid());  // held: the owner moves it on

  d->run.EnterPartial();
  EXPECT_EQ(d->run.state(), RunState::kPartial);
  EXPECT_EQ(d->Used(), capacity - wake);
  EXPECT_TRUE(d->IsValid());
  EXPECT_EQ(List(d).size(), wake);

  for (; next + 1 < blocks.size(); ++next) {
    EXPECT_FALSE(d->run.Push(static_cast<FreeBlock*>(blocks[next]), key_)) << next;
  }
  EXPECT_TRUE(d->IsValid());
  EXPECT_EQ(d->Used(), 1u);
  // The last live block's free says "empty".
  EXPECT_TRUE(d->run.Push(static_cast<FreeBlock*>(blocks[next]), key_));
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_FALSE(d->run.Underflowed());
  EXPECT_FALSE(d->IsValid());  // a partial run with no live block: moved on at once

  d->run.LeavePartial();
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_EQ(List(d).size(), capacity);
}

// A run of one block wakes on its first free, with no block in use.
TEST_F(RunTest, SingleBlockRunWakesEmpty) {
  PoolDesc* d = MakeRun(kSingle);
  ASSERT_EQ(d->capacity, 1u);
  d->run.BecomeCurrent();
  std::vector<void*> blocks = PopAll(d);
  ASSERT_EQ(blocks.size(), 1u);
  d->run.FallAsleep(1);
  EXPECT_TRUE(d->IsValid());
  EXPECT_TRUE(d->run.Push(static_cast<FreeBlock*>(blocks[0]), key_));
  EXPECT_EQ(d->run.Wake(), 0u);
  EXPECT_EQ(d->run.state(), RunState::kHeld);
}

// kCurrent -> kHeld (Demote) keeps the count; a demoted full run sleeps
// (kHeld -> kAsleep), one with free blocks goes partial or current again.
TEST_F(RunTest, DemoteKeepsTheCount) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 5, &out);
  EXPECT_EQ(d->Used(), 5u);
  d->run.Demote();
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_EQ(d->Used(), 5u);
  d->run.EnterPartial();
  EXPECT_TRUE(d->IsValid());
  // A demoted run's frees count down to "empty", not past it.
  for (size_t i = 0; i + 1 < out.size(); ++i) EXPECT_FALSE(d->run.Push(static_cast<FreeBlock*>(out[i]), key_));
  EXPECT_TRUE(d->run.Push(static_cast<FreeBlock*>(out.back()), key_));
  d->run.LeavePartial();
  d->run.BecomeCurrent();
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_TRUE(d->IsValid());

  // A full run demoted, then put to sleep.
  std::vector<void*> all = PopAll(d);
  ASSERT_EQ(all.size(), d->capacity);
  d->run.Demote();
  EXPECT_EQ(d->Used(), d->capacity);
  d->run.FallAsleep(d->capacity);
  EXPECT_EQ(d->run.state(), RunState::kAsleep);
  EXPECT_EQ(d->Used(), d->capacity);
  EXPECT_TRUE(d->IsValid());
}

// ---- Empty runs: kept, purged, reused ------------------------------------

TEST_F(RunTest, EmptyRunIsKeptPurgedAndReCarvedOnReuse) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kMulti, 6, &out);
  Empty(d, out);
  const uint32_t carved = d->run.carved();
  ASSERT_GT(carved, 0u);
  ASSERT_EQ(d->Used(), 0u);

  d->run.KeepEmpty(1234);
  EXPECT_EQ(d->run.state(), RunState::kEmpty);
  EXPECT_TRUE(d->run.kept_empty());
  EXPECT_FALSE(d->run.purged());
  EXPECT_EQ(d->run.free_since(), 1234u);
  EXPECT_TRUE(d->IsValid());

  d->run.MarkPurged();
  EXPECT_EQ(d->run.state(), RunState::kEmpty);
  EXPECT_TRUE(d->run.purged());
  EXPECT_TRUE(d->IsValid());  // its list went with its pages: not walked

  d->run.LeaveEmpty(/*reuse=*/true, ListEnd());
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_FALSE(d->run.kept_empty());
  EXPECT_FALSE(d->run.purged());
  EXPECT_EQ(d->run.carved(), 0u);  // re-carved from the first block
  EXPECT_EQ(d->run.free_list(), ListEnd());
  EXPECT_EQ(d->Used(), 0u);

  d->run.BecomeCurrent();
  EXPECT_TRUE(d->IsValid());
  CarveOntoList(d, key_);
  EXPECT_EQ(PopOne(d, key_), Block(d, 0));
  EXPECT_TRUE(d->IsValid());
}

TEST_F(RunTest, LeaveEmptyKeepsAnUnpurgedListAndAPurgedMarkWithoutReuse) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 4, &out);
  Empty(d, out);
  const uint32_t carved = d->run.carved();
  FreeBlock* head = d->run.free_list();

  // Not purged: reuse keeps the list, carving and all.
  d->run.KeepEmpty(1);
  d->run.LeaveEmpty(/*reuse=*/true, ListEnd());
  EXPECT_EQ(d->run.carved(), carved);
  EXPECT_EQ(d->run.free_list(), head);

  // Purged, then moved (to release it, or to another heap): it stays
  // purged, to be re-carved when reused.
  d->run.KeepEmpty(2);
  d->run.MarkPurged();
  d->run.LeaveEmpty(/*reuse=*/false, ListEnd());
  EXPECT_EQ(d->run.state(), RunState::kHeld);
  EXPECT_TRUE(d->run.purged());
  d->run.KeepEmpty(3);
  EXPECT_TRUE(d->run.purged());
  EXPECT_EQ(d->run.free_since(), 3u);
  EXPECT_TRUE(d->IsValid());
  d->run.LeaveEmpty(/*reuse=*/true, ListEnd());
  EXPECT_FALSE(d->run.purged());
  EXPECT_EQ(d->run.carved(), 0u);
}

TEST_F(RunTest, ReleaseClearsEverything) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kMulti, 3, &out);
  d->run.Demote();
  d->run.Release(777);
  EXPECT_EQ(d->run.state(), RunState::kNone);
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_EQ(d->run.carved(), 0u);
  EXPECT_EQ(d->run.free_list(), nullptr);
  EXPECT_FALSE(d->run.kept_empty());
  EXPECT_FALSE(d->run.purged());
  EXPECT_EQ(d->run.free_since(), 777u);
  EXPECT_EQ(d->run.own_head_bytes(), 0u);
  EXPECT_FALSE(d->run.HoldsCarved(out[0]));

  // Released with its pools: free pools, valid as such, holding no block.
  const uint32_t pools = d->run_pools;
  for (uint32_t i = 0; i < pools; ++i) d[i].ResetToFree(778);
  for (uint32_t i = 0; i < pools; ++i) {
    EXPECT_EQ(d[i].state, PoolState::kFree);
    EXPECT_EQ(d[i].run.state(), RunState::kNone);
    EXPECT_EQ(d[i].run.free_since(), 778u);
    EXPECT_TRUE(d[i].IsValid()) << i;
    EXPECT_FALSE(ValidateBlock(&d[i], out[0], 1000));
  }
  // A released empty run that was kept (and purged) too.
  PoolDesc* e = MakeRun(kSmall, 30);
  e->run.KeepEmpty(5);
  e->run.MarkPurged();
  e->run.LeaveEmpty(/*reuse=*/false, ListEnd());
  e->run.Release(6);
  EXPECT_FALSE(e->run.purged());
  EXPECT_FALSE(e->run.kept_empty());
  EXPECT_EQ(e->run.state(), RunState::kNone);
}

// ---- Corrections after misuse --------------------------------------------

// A free into a run with no live block (a double free the purged list could
// not show) drives the count below zero; UndoPush takes the block back.
TEST_F(RunTest, UndoPushTakesBackAFreeIntoARunWithNoLiveBlock) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 2, &out);
  Empty(d, out);
  d->run.KeepEmpty(1);
  d->run.MarkPurged();
  ASSERT_TRUE(d->IsValid());
  FreeBlock* head = d->run.free_list();

  auto* again = static_cast<FreeBlock*>(out[0]);
  EXPECT_TRUE(d->run.Push(again, key_));
  EXPECT_TRUE(d->run.Underflowed());
  EXPECT_EQ(d->run.UndoPush(again, 1, key_), again);
  EXPECT_FALSE(d->run.Underflowed());
  EXPECT_EQ(d->run.free_list(), head);
  EXPECT_EQ(d->Used(), 0u);
  EXPECT_EQ(d->run.state(), RunState::kEmpty);
  EXPECT_TRUE(d->IsValid());
}

// A run's list leaves it whole for a class cache: its blocks count in use.
TEST_F(RunTest, TakeListCountsTheListInUse) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kMulti, 6, &out);
  d->run.Demote();
  d->run.EnterPartial();
  ASSERT_FALSE(d->run.Push(static_cast<FreeBlock*>(out[0]), key_));
  const uint32_t carved = d->run.carved();
  ASSERT_LT(carved, d->capacity);
  const size_t listed = List(d).size();
  ASSERT_GT(listed, 0u);

  const BlockChain c = d->run.TakeList(ListEnd());
  EXPECT_EQ(c.count, listed);
  EXPECT_EQ(c.first, out[0]);  // the list's head: the last block freed
  EXPECT_EQ(d->run.free_list(), ListEnd());
  EXPECT_EQ(d->Used(), carved);
  EXPECT_EQ(d->run.state(), RunState::kPartial);
  EXPECT_TRUE(d->IsValid());  // uncarved blocks are left
  EXPECT_EQ(d->run.TakeList(ListEnd()).count, 0u);  // nothing more

  // Fully carved and taken: a partial run with nothing to give.
  PoolDesc* e = MakeRun(kSmall, 40);
  e->run.BecomeCurrent();
  CarveOntoList(e, key_);
  ASSERT_NE(PopOne(e, key_), nullptr);
  e->run.Demote();
  e->run.EnterPartial();
  ASSERT_TRUE(e->IsValid());
  e->run.TakeList(ListEnd());
  EXPECT_EQ(e->Used(), e->capacity);
  EXPECT_FALSE(e->IsValid());
}

// Carving for a class cache: a chain of its own, counted in use.
TEST_F(RunTest, CarveChainCarvesAChainCountedInUse) {
  PoolDesc* d = MakeRun(kSmall);
  d->run.BecomeCurrent();
  const BlockChain c = d->run.CarveChain(d->Start(), d->size, d->capacity, 5, key_);
  EXPECT_EQ(c.count, 5u);
  EXPECT_EQ(c.first, Block(d, 0));
  EXPECT_EQ(c.last, Block(d, 4));
  EXPECT_EQ(NextOf(c.last, key_), nullptr);
  FreeBlock* b = c.first;
  for (uint32_t k = 0; k < 5; ++k, b = NextOf(b, key_)) EXPECT_EQ(b, Block(d, k));
  EXPECT_EQ(d->run.carved(), 5u);
  EXPECT_EQ(d->Used(), 5u);
  EXPECT_EQ(d->run.free_list(), ListEnd());  // the run's own list stays empty
  EXPECT_TRUE(d->IsValid());
  // At most about a page at once.
  const BlockChain more = d->run.CarveChain(d->Start(), d->size, d->capacity, UINT32_MAX, key_);
  EXPECT_EQ(more.count, std::min<uint32_t>(d->capacity - 5, static_cast<uint32_t>(kPoolSize) / d->size));
  EXPECT_EQ(more.first, Block(d, 5));
}

// ---- IsValid on runs that are not right ----------------------------------

TEST_F(RunTest, IsValidRejectsAHeldHeadAtRest) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 1, &out);
  ASSERT_TRUE(d->IsValid());
  d->run.Demote();
  EXPECT_FALSE(d->IsValid());
}

TEST_F(RunTest, IsValidRejectsADamagedList) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 1, &out);
  void* b = Block(d, 10);
  ASSERT_TRUE(d->HasFreeBlock(b));
  const uintptr_t saved = WordOf(b);
  const uintptr_t garbage = GarbageFor(b);
  ASSERT_NE(garbage, 0u);
  SetWord(b, garbage);
  EXPECT_FALSE(d->IsValid());
  SetWord(b, saved);
  EXPECT_TRUE(d->IsValid());
}

TEST_F(RunTest, IsValidRejectsAnUncarvedBlockOnTheList) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kMulti, 1, &out);
  const uint32_t carved = d->run.carved();
  ASSERT_LT(carved, d->capacity);
  // "Freed" without ever being carved (handed out): the count balances, the
  // list does not.
  ASSERT_FALSE(d->run.Push(static_cast<FreeBlock*>(Block(d, carved)), key_));
  EXPECT_FALSE(d->IsValid());
}

TEST_F(RunTest, IsValidRejectsAnInteriorPointerOnTheList) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 1, &out);
  ASSERT_FALSE(d->run.Push(reinterpret_cast<FreeBlock*>(static_cast<char*>(out[0]) + 8), key_));
  EXPECT_FALSE(d->IsValid());
}

TEST_F(RunTest, IsValidRejectsACycle) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kSmall, 0, &out);
  CarveOntoList(d, key_);
  auto* b = static_cast<FreeBlock*>(Block(d, 3));
  SetLink(b, static_cast<FreeBlock*>(Block(d, 1)), key_);  // 1 -> 2 -> 3 -> 1
  EXPECT_FALSE(d->IsValid());
}

TEST_F(RunTest, IsValidRejectsAListEndingInAnotherArena) {
  std::vector<void*> out;
  PoolDesc* d = CurrentRunWith(kMulti, 2, &out);
  d->run.Demote();
  d->run.EnterPartial();
  ASSERT_TRUE(d->IsValid());
  d->run.TakeList(reinterpret_cast<FreeBlock*>(arena_->Base() + kArenaSize));  // ends in the next arena
  EXPECT_FALSE(d->IsValid());
}

TEST_F(RunTest, IsValidRejectsCountsThatDisagreeWithTheState) {
  // Asleep with too few blocks in use to ever wake.
  PoolDesc* d = MakeRun(kSmall);
  d->run.FallAsleep(d->capacity);
  EXPECT_FALSE(d->IsValid());

  // Partial with no block in use.
  PoolDesc* e = MakeRun(kSmall, 20);
  e->run.EnterPartial();
  EXPECT_FALSE(e->IsValid());

  // Partial with nothing left to give.
  std::vector<void*> out;
  PoolDesc* f = MakeRun(kSmall, 21);
  f->run.BecomeCurrent();
  out = PopAll(f);
  ASSERT_EQ(out.size(), f->capacity);
  f->run.Demote();
  f->run.EnterPartial();
  EXPECT_FALSE(f->IsValid());
  f->run.LeavePartial();
  f->run.FallAsleep(f->capacity);
  EXPECT_TRUE(f->IsValid());
}

TEST_F(RunTest, IsValidRejectsAShapeItsOwnerLineDisagreesWith) {
  PoolDesc* d = MakeRun(kMulti);
  d->run.BecomeCurrent();
  ASSERT_TRUE(d->IsValid());
  ASSERT_TRUE(d[1].IsValid());

  // A tail whose way back to the head differs from its owner's copy.
  const uint16_t head_bytes = d[1].head_bytes;
  d[1].head_bytes = static_cast<uint16_t>(2 * sizeof(PoolDesc));
  EXPECT_FALSE(d[1].IsValid());
  d[1].head_bytes = head_bytes;
  EXPECT_TRUE(d[1].IsValid());

  // A head whose class is not the shape's.
  const uint8_t cls = d->size_class;
  d->size_class = static_cast<uint8_t>(kSmall);
  EXPECT_FALSE(d->IsValid());
  d->size_class = cls;

  // A head whose start (the shape's) is not its owner line's copy.
  const uint32_t start = d->start;
  d->start += kPoolSize;
  EXPECT_FALSE(d->IsValid());
  d->start = start;
  EXPECT_TRUE(d->IsValid());

  // A free pool whose owner line was left as a run's.
  PoolDesc* f = arena_->pool(50);
  ASSERT_TRUE(f->IsValid());
  f->run.Begin(ListEnd(), 50 * kPoolSize, kClasses[kSmall].div_magic);
  EXPECT_FALSE(f->IsValid());
}

}  // namespace
}  // namespace strata::internal
