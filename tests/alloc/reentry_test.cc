// A signal handler that re-enters strata (issue 24, item 4): malloc is not
// async-signal-safe, in strata as in glibc, but strata must never spin for
// ever on a lock its own interrupted thread holds, nor report a misuse the
// program did not make. Each case raises the signal itself, at the moment
// that matters (a lock held, or inside one of strata's entry points), so the
// outcome is certain: the one line
//   strata: malloc re-entered from a signal handler
// and an abort. (tests/preload's signal_reentry_test does it with a timer.)
// Every wait is bounded by alarm(): a child that spins dies of SIGALRM,
// which the death tests do not accept.
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "absl/base/thread_annotations.h"
#include "alloc/config.h"
#include "alloc/heap.h"
#include "alloc/heap_profile.h"
#include "alloc/heap_registry.h"
#include "alloc/options.h"
#include "alloc/stack_trace.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "threading/spin_lock.h"

namespace strata {
namespace {

constexpr char kReentry[] = "strata: malloc re-entered from a signal handler";

void On(int sig, void (*handler)(int)) {
  struct sigaction sa = {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

// Allocates medium blocks of a run each until a refill has to claim a run
// under the heap's lock.
void AllocateRuns(int) {
  for (int i = 0; i < 64; ++i) Allocate(60000);
}

// A large allocation, sampled (profile_sample_bytes=1), records its sample
// under the profile's lock.
void AllocateSampled(int) { Deallocate(Allocate(1 << 20)); }

class ReentryTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Takes a lock and keeps it (the analysis cannot follow a lock the test
// never releases).
void Hold(threading::SpinLock& lock) ABSL_NO_THREAD_SAFETY_ANALYSIS { lock.Lock(); }

TEST_F(ReentryTest, AHandlerWantingTheHeapLockItsThreadHoldsIsReported) {
  EXPECT_DEATH(
      {
        alarm(20);
        Deallocate(Allocate(64));  // this thread has a heap
        internal::Heap* h = internal::ThreadHeapIfAny();
        On(SIGUSR1, &AllocateRuns);
        // As a refill's slow step (NewRun) holds it when a signal lands.
        Hold(h->arenas().lock());
        raise(SIGUSR1);
      },
      kReentry);
}

TEST_F(ReentryTest, AHandlerWantingTheProfileLockItsThreadHoldsIsReported) {
  EXPECT_DEATH(
      {
        alarm(20);
        ASSERT_TRUE(SetProfileSampleBytes(1));
        On(SIGUSR1, &AllocateSampled);
        // As a sampled allocation holds it when a signal lands.
        internal::LockProfileForFork();
        raise(SIGUSR1);
      },
      kReentry);
}

// ---- A report made inside a handler that interrupted strata ----

std::atomic<int> g_seen{-1};

void Look(int) { g_seen.store(internal::InSignalHandlerThatInterruptedStrata() ? 1 : 0); }

// Stand-ins for strata's entry points: in their section (config.h), as
// malloc and free are.
STRATA_ENTRY __attribute__((noinline)) void RaiseInsideStrata(int sig) {
  raise(sig);
  __asm__ volatile("" ::: "memory");  // no tail call: keep the frame
}
__attribute__((noinline)) void RaiseOutsideStrata(int sig) {
  raise(sig);
  __asm__ volatile("" ::: "memory");
}

TEST_F(ReentryTest, AHandlerKnowsWhetherItInterruptedStrata) {
  On(SIGUSR2, &Look);
  RaiseOutsideStrata(SIGUSR2);
  EXPECT_EQ(g_seen.load(), 0);
  RaiseInsideStrata(SIGUSR2);
  EXPECT_EQ(g_seen.load(), 1);
  // Not in a handler at all.
  EXPECT_FALSE(internal::InSignalHandlerThatInterruptedStrata());
  signal(SIGUSR2, SIG_DFL);
}

// Twice in a row: at the head of its class list, caught by both builds.
// (Small: a large block's free may start strata's background thread, which
// a handler must not do either.)
void FreeTwice(int) {
  void* p = Allocate(64);
  Deallocate(p);
  Deallocate(p);
}

// What looks like misuse inside a handler that interrupted strata may be
// the interrupted operation's half-done state: said as such, even in count
// mode (re-entry is not a counted misuse).
TEST_F(ReentryTest, AMisuseSeenInAHandlerThatInterruptedStrataIsReportedAsReentry) {
  EXPECT_DEATH(
      {
        alarm(20);
        ASSERT_TRUE(SetOptionByName("error_mode", "count"));
        On(SIGUSR1, &FreeTwice);
        RaiseInsideStrata(SIGUSR1);
      },
      kReentry);
}

// The same double free in a handler that interrupted the program's own code
// is the program's misuse, and reported as one.
TEST_F(ReentryTest, AMisuseInAHandlerThatInterruptedTheProgramIsReportedAsMisuse) {
  EXPECT_DEATH(
      {
        alarm(20);
        On(SIGUSR1, &FreeTwice);
        RaiseOutsideStrata(SIGUSR1);
      },
      "double free");
}

}  // namespace
}  // namespace strata
