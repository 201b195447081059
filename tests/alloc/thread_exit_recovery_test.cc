// Heaps of threads that leave through pthread key destructors are recovered
// whatever the destructors do (heap_registry.h, RecoverExitedHeaps): call
// pthread_exit (glibc then skips strata's exit hook when its key comes
// later), allocate and free other threads' blocks in every round (the last
// round re-arms the hook too late), or clear strata's key. And a heap whose
// thread still runs is never taken. Through strata's own API, so it runs
// under TSan and ASan too (tests/preload/thread_exit_test.sh does the same
// through malloc).
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "alloc/heap_registry.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"

namespace strata {
namespace {

constexpr size_t kBlock = 1000;
constexpr int kKept = 8;   // blocks each thread leaves for a later one to free
constexpr int kRing = 64;  // blocks in flight between threads

void LowDtor(void* v);
void HighDtor(void* v);

// Created before strata's key: this binary's first strata call comes after
// static initialisation (checked by the test).
pthread_key_t MakeKey(void (*dtor)(void*)) {
  pthread_key_t k;
  if (pthread_key_create(&k, dtor) != 0) abort();
  return k;
}
const pthread_key_t g_low = MakeKey(&LowDtor);
pthread_key_t g_high;  // created after strata's

// Blocks of earlier threads. Only one worker runs at a time; each thread's
// start and join order its accesses.
void* g_ring[kRing];
int g_ring_next = 0;
std::atomic<int> g_damaged{0};

void Fill(void* p) { memset(p, 0x5a, kBlock); }
bool Intact(const void* p) {
  const auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < kBlock; ++i) {
    if (c[i] != 0x5a) return false;
  }
  return true;
}

// Puts p in the ring in place of an earlier thread's block, which is
// checked and freed (a remote free).
void Stash(void* p) {
  void*& slot = g_ring[g_ring_next++ % kRing];
  if (slot != nullptr) {
    // Relaxed: read after every thread was joined.
    if (!Intact(slot)) g_damaged.fetch_add(1, std::memory_order_relaxed);
    Deallocate(slot);
  }
  slot = p;
}

// strata's key (read by the test before any worker starts).
pthread_key_t g_strata_key;

// What each worker does last, round-robin. ThreadSanitizer finalises a
// thread in its own key destructor's last round, and any instrumented code
// that a later destructor runs then crashes in its runtime (seen: a SEGV in
// __tsan::TraceSwitchPart from OnThreadExit); under TSan no worker asks for
// every round (kind 1), and TSan's own re-armed key makes glibc run
// strata's hook after a pthread_exit (kinds 0 and 2 need no recovery
// there), so kind 4 is what exercises the recovery under TSan.
enum Kind : uintptr_t {
  kLowExit = 0,       // a destructor before strata's calls pthread_exit
  kEveryRound = 1,    // one after it allocates and frees remotely, every round
  kAllocExit = 2,     // one after it allocates, then calls pthread_exit
  kPlain = 3,         // a plain exit
  kHookCleared = 4,   // strata's key value cleared: glibc never runs the hook
};
constexpr Kind kAllKinds[] = {kLowExit, kEveryRound, kAllocExit, kPlain, kHookCleared};
constexpr Kind kTsanKinds[] = {kLowExit, kAllocExit, kPlain, kHookCleared};

// Runs before strata's exit hook, and leaves through pthread_exit.
void LowDtor(void* v) {
  Deallocate(v);
  pthread_exit(nullptr);
}

// Runs after strata's exit hook gave the heap back: allocates (a new heap)
// and frees an earlier thread's block, then either asks for another round
// (kind 1: every round, so the last one's allocation re-arms the hook when
// no round is left) or leaves through pthread_exit (kind 2).
void HighDtor(void* v) {
  void* p = Allocate(kBlock);
  Fill(p);
  Stash(p);
  if (reinterpret_cast<uintptr_t>(v) == kEveryRound) {
    pthread_setspecific(g_high, v);
    return;
  }
  pthread_exit(nullptr);
}

void* Worker(void* arg) {
  const auto kind = static_cast<Kind>(reinterpret_cast<uintptr_t>(arg));
  void* blocks[256];
  for (auto& b : blocks) {
    b = Allocate(kBlock);
    Fill(b);
  }
  for (int k = kKept; k < 256; ++k) Deallocate(blocks[k]);
  for (int k = 0; k < kKept; ++k) Stash(blocks[k]);
  switch (kind) {
    case kLowExit:
      pthread_setspecific(g_low, Allocate(16));
      break;
    case kEveryRound:
    case kAllocExit:
      pthread_setspecific(g_high, reinterpret_cast<void*>(kind));
      break;
    case kPlain:
      break;
    case kHookCleared:
      pthread_setspecific(g_strata_key, nullptr);
      break;
  }
  return nullptr;
}

Stats Snapshot() {
  static Stats s;  // large: off the stack
  GetStats(&s);
  return s;
}

TEST(ThreadExitRecoveryTest, HeapsOfThreadsLeavingThroughKeyDestructorsAreRecovered) {
  void* first = Allocate(64);  // this thread's heap: strata's key exists now
  ASSERT_EQ(pthread_key_create(&g_high, &HighDtor), 0);
  ASSERT_TRUE(internal::ExitHookKey(&g_strata_key));
  // Both orders are exercised: a key destructor before strata's and one after.
  ASSERT_LT(g_low, g_strata_key);
  ASSERT_LT(g_strata_key, g_high);

  const Kind* kinds = testing::kUnderTsan ? kTsanKinds : kAllKinds;
  const size_t num_kinds = testing::kUnderTsan ? std::size(kTsanKinds) : std::size(kAllKinds);
  if (testing::kUnderTsan) {
    std::printf("under TSan: no worker of kind %d (every destructor round; see Kind)\n",
                static_cast<int>(kEveryRound));
  }
  const int threads = testing::Scaled(10000, 1000);
  for (int i = 0; i < threads; ++i) {
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, &Worker, reinterpret_cast<void*>(kinds[i % num_kinds])), 0);
    ASSERT_EQ(pthread_join(t, nullptr), 0);
  }
  for (int k = 0; k < kRing; ++k) Stash(nullptr);
  EXPECT_EQ(g_damaged.load(std::memory_order_relaxed), 0);

  // Bounded as it runs: most threads of kinds 0, 1 and 4 never ran strata's
  // exit hook, yet a handful of heaps served them all (before, one heap and
  // its arenas stayed with each: 6,000 heaps and 2.4 GB mapped for 10,000).
  Stats s = Snapshot();
  EXPECT_GT(s.heaps_recovered, 0u);
  EXPECT_LE(s.heaps, 64u);
  EXPECT_LE(s.heaps_active, 40u);
  EXPECT_LE(s.os_mapped_bytes, uint64_t{64} << 20);

  // ReleaseMemory recovers every one left: the active heaps are this
  // thread's and, if it took one, the release engine's thread's.
  ReleaseMemory();
  s = Snapshot();
  EXPECT_LE(s.heaps_active, 2u);
  Deallocate(first);
}

// Threads that hold live blocks and keep allocating while others scan for
// exited threads' heaps: none of theirs is taken.
struct Holder {
  pthread_barrier_t* ready;
  std::atomic<bool>* stop;
  int damaged = 0;
};

void* Hold(void* arg) {
  auto* h = static_cast<Holder*>(arg);
  void* blocks[64];
  for (auto& b : blocks) {
    b = Allocate(kBlock);
    Fill(b);
  }
  pthread_barrier_wait(h->ready);
  // Relaxed: a flag polled in a loop; the join orders what matters.
  for (int round = 0; !h->stop->load(std::memory_order_relaxed) || round < 4; ++round) {
    for (auto& b : blocks) {
      if (!Intact(b)) ++h->damaged;
      Deallocate(b);
      b = Allocate(kBlock);
      Fill(b);
    }
  }
  for (auto& b : blocks) Deallocate(b);
  return nullptr;
}

TEST(ThreadExitRecoveryTest, NoHeapOfARunningThreadIsTaken) {
  constexpr int kHolders = 4;
  pthread_barrier_t ready;
  ASSERT_EQ(pthread_barrier_init(&ready, nullptr, kHolders + 1), 0);
  std::atomic<bool> stop{false};
  Holder holders[kHolders];
  pthread_t threads[kHolders];
  for (int i = 0; i < kHolders; ++i) {
    holders[i].ready = &ready;
    holders[i].stop = &stop;
    ASSERT_EQ(pthread_create(&threads[i], nullptr, &Hold, &holders[i]), 0);
  }
  pthread_barrier_wait(&ready);
  const uint64_t recovered_before = Snapshot().heaps_recovered;
  for (int i = 0; i < 20; ++i) ReleaseMemory();  // each scans every heap
  EXPECT_GE(Snapshot().heaps_active, static_cast<uint64_t>(kHolders));
  EXPECT_EQ(Snapshot().heaps_recovered, recovered_before);
  stop.store(true, std::memory_order_relaxed);
  for (int i = 0; i < kHolders; ++i) {
    ASSERT_EQ(pthread_join(threads[i], nullptr), 0);
    EXPECT_EQ(holders[i].damaged, 0);
  }
  pthread_barrier_destroy(&ready);
}

}  // namespace
}  // namespace strata
