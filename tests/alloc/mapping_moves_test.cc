// The moves protocol (alloc/mapping_moves.h): a reader never sees a move
// half done, finishes however busy the movers are, and movers that wait for
// it go on afterwards.
#include "alloc/mapping_moves.h"

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"

namespace strata::internal {
namespace {

// Two holders of the same bytes: a move takes one from `from` and gives it
// to `to` (two stores apart, as a mapping changes the OS count and then
// its holder's).
struct Holders {
  std::atomic<int64_t> from{1000000};
  std::atomic<int64_t> to{0};
};

void Move(Holders* h) {
  MoveSpan move;
  // Relaxed: the span orders them for the reader.
  h->from.fetch_sub(1, std::memory_order_relaxed);
  h->to.fetch_add(1, std::memory_order_relaxed);
}

inline void threading_pause() { __builtin_ia32_pause(); }

struct Read {
  Holders* h;
  int64_t sum = 0;
};

void ReadBoth(void* arg) {
  auto* r = static_cast<Read*>(arg);
  // Relaxed: inside ReadWithoutMoves (see the protocol).
  const int64_t from = r->h->from.load(std::memory_order_relaxed);
  // A reader takes a while (a snapshot walks every arena): movers overlap.
  for (int i = 0; i < 200; ++i) threading_pause();
  r->sum = from + r->h->to.load(std::memory_order_relaxed);
}

TEST(MappingMovesTest, ReadersNeverSeeAMoveHalfDoneAndAlwaysFinish) {
  Holders h;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> moves{0};
  std::vector<std::thread> movers;
  for (int t = 0; t < 3; ++t) {
    movers.emplace_back([&] {
      // Relaxed: a flag polled in a loop; the join orders the rest.
      while (!stop.load(std::memory_order_relaxed)) {
        Move(&h);
        moves.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const int reads = testing::Scaled(20000, 2000);
  int exclusive = 0;
  for (int i = 0; i < reads; ++i) {
    Read r{&h};
    const int calls = ReadWithoutMoves(&ReadBoth, &r);
    ASSERT_EQ(r.sum, 1000000) << "read " << i;
    ASSERT_GE(calls, 1);
    ASSERT_LE(calls, kOptimisticTries + 1);
    if (calls == kOptimisticTries + 1) ++exclusive;
  }
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : movers) t.join();
  EXPECT_GT(moves.load(), 0u);
  EXPECT_EQ(h.from.load() + h.to.load(), 1000000);
  std::printf("%d reads, %d of them with movers waiting; %llu moves\n", reads, exclusive,
              static_cast<unsigned long long>(moves.load()));
}

// A reader that makes movers wait (no optimistic try): it reads only after
// the move in flight ended, and before the mover that came meanwhile. Each
// move writes a flag inside its span: the reader must see the first's (its
// last write) and not the second's (its first).
TEST(MappingMovesTest, AWaitingReaderReadsBetweenMoves) {
  std::atomic<bool> first_in{false}, end_first{false};
  std::atomic<bool> first_last{false}, second_first{false};
  std::atomic<bool> read_ran{false};
  std::thread first([&] {
    MoveSpan move;
    first_in.store(true, std::memory_order_release);
    // Acquire pairs with the release store below. Bounded: the test
    // thread sets it after at most a bounded wait of its own.
    while (!end_first.load(std::memory_order_acquire)) sched_yield();
    // Relaxed: the span's end publishes it to the reader.
    first_last.store(true, std::memory_order_relaxed);
  });
  // Bounded waits: each ends long before the test's timeout; a failed one
  // fails the test and lets the threads finish.
  for (int i = 0; i < 10000000 && !first_in.load(std::memory_order_acquire); ++i) sched_yield();
  EXPECT_TRUE(first_in.load(std::memory_order_acquire));
  struct Seen {
    std::atomic<bool>* first_last;
    std::atomic<bool>* second_first;
    bool first_was_over = false;
    bool second_had_begun = true;
  } seen{&first_last, &second_first};
  std::thread reader([&] {
    ReadWithoutMoves(
        [](void* arg) {
          auto* s = static_cast<Seen*>(arg);
          // Relaxed: ordered by the protocol (the ended count's release,
          // the reader's closing RMW).
          s->first_was_over = s->first_last->load(std::memory_order_relaxed);
          s->second_had_begun = s->second_first->load(std::memory_order_relaxed);
        },
        &seen, /*optimistic_tries=*/0);
    read_ran.store(true, std::memory_order_release);
  });
  // Wait (bounded) until the reader makes movers wait: it is waiting for
  // the first move to end.
  for (int i = 0; i < 10000000 && !ReaderWaitingForTesting(); ++i) sched_yield();
  EXPECT_TRUE(ReaderWaitingForTesting());
  EXPECT_FALSE(read_ran.load(std::memory_order_acquire));
  std::thread second([&] {
    MoveSpan move;  // waits in Begin until the reader is done
    // Relaxed: written inside the span; a reader that saw it overlapped.
    second_first.store(true, std::memory_order_relaxed);
  });
  end_first.store(true, std::memory_order_release);
  reader.join();
  first.join();
  second.join();
  EXPECT_TRUE(seen.first_was_over);     // not while the first move was in flight
  EXPECT_FALSE(seen.second_had_begun);  // the second waited for the reader
}

// Nested spans count once, and a reader between two moves of one thread
// sees each whole.
TEST(MappingMovesTest, NestedSpansAreOneMove) {
  Holders h;
  {
    MoveSpan outer;
    h.from.fetch_sub(1);
    Move(&h);  // nested
    h.to.fetch_add(1);
  }
  std::thread reader([&] {
    Read r{&h};
    EXPECT_EQ(ReadWithoutMoves(&ReadBoth, &r), 1);  // nothing in flight
    EXPECT_EQ(r.sum, 1000000);
  });
  reader.join();
}

}  // namespace
}  // namespace strata::internal
