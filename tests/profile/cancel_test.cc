// Writers that block or are cancelled (issue 24): a thread writing a heap
// profile or the statistics' arena map to a full pipe, or cancelled in
// write(2) (a cancellation point), must leave no strata lock held. While it
// is stuck, and after it is cancelled, other threads sample into the
// profile, read the statistics (which take every heap's lock and the
// profile's) and write profiles again. Through strata's API, so that it
// runs in every config, TSan and ASan included; tests/preload's
// cancel_write_test does the same through the preloaded malloc. A hang is
// cut by alarm(): the test then fails naming the step.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "alloc/options.h"
#include "alloc/profile.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/sanitizer.h"
#include "tests/util/step_watchdog.h"
#include "tests/util/thread_in_write.h"

namespace strata {
namespace {

using testing::SleepMs;
using testing::WaitInWrite;
using testing::Step;

// Allocates at `depth` frames below the caller: several stacks, so that a
// profile's rows fill more than a writer's buffer.
__attribute__((noinline)) void* AllocateAt(int depth, size_t n) {
  if (depth > 0) {
    void* p = AllocateAt(depth - 1, n);
    __asm__ volatile("" ::: "memory");  // no tail call: keep the frame
    return p;
  }
  return Allocate(n);
}

// Sampled allocations from this thread (sampling at 4 KiB).
void Churn(int rounds) {
  for (int i = 0; i < rounds; ++i) Deallocate(AllocateAt(i % 12, 64 + static_cast<size_t>(i % 3000)));
}

struct Writer {
  int fd;
  bool stats;  // json-arenas; else the live profile
  std::atomic<pid_t> tid{0};
};

void* WriteOnce(void* arg) {
  auto* w = static_cast<Writer*>(arg);
  w->tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  if (w->stats) {
    WriteStats(w->fd, StatsFormat::kJsonArenas);
  } else {
    WriteHeapProfile(w->fd, HeapProfileView::kLive);
  }
  return nullptr;
}

void* ChurnThread(void*) {
  Churn(2000);
  return nullptr;
}

// What must work while a writer is stuck in, or was cancelled in, a write:
// samples from this thread and a new one (its own heap and arenas), the
// statistics (every heap's lock, the profile's), a profile.
void OthersGoOn(const char* when) {
  Step(when);
  Churn(2000);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, &ChurnThread, nullptr), 0);
  ASSERT_EQ(pthread_join(t, nullptr), 0);
  Stats s;
  GetStats(&s);
  EXPECT_GT(s.profile_samples_taken, 0u);
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  WriteStats(null_fd, StatsFormat::kTable);
  close(null_fd);
}

class CancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_internal::ResetForTesting();
    ASSERT_TRUE(SetProfileSampleBytes(4096));
    testing::ArmWatchdog("cancel_test: hung (a lock left held?) at: ", 120);
    Churn(4000);  // a dozen stacks in the profile
  }
  void TearDown() override {
    testing::DisarmWatchdog();
    options_internal::ResetForTesting();
  }
};

// A pipe whose buffer is full: the next write to it blocks.
void FullPipe(int fds[2]) {
  ASSERT_EQ(pipe(fds), 0);
  fcntl(fds[1], F_SETPIPE_SZ, 4096);
  fcntl(fds[1], F_SETFL, O_NONBLOCK);
  char junk[512];
  memset(junk, '#', sizeof(junk));
  while (write(fds[1], junk, sizeof(junk)) > 0) {
  }
  fcntl(fds[1], F_SETFL, 0);
}

TEST_F(CancelTest, AProfileWriterBlockedOnAFullPipeHoldsNoLock) {
  int fds[2];
  FullPipe(fds);
  Writer w{fds[1], /*stats=*/false};
  pthread_t writer;
  ASSERT_EQ(pthread_create(&writer, nullptr, &WriteOnce, &w), 0);
  Step("the profile writer reaches the full pipe");
  WaitInWrite(w.tid);
  OthersGoOn("samples and stats while the profile writer is blocked");
  Step("cancel the blocked profile writer");
  ASSERT_EQ(pthread_cancel(writer), 0);
  void* result = nullptr;
  ASSERT_EQ(pthread_join(writer, &result), 0);
  EXPECT_EQ(result, PTHREAD_CANCELED);
  OthersGoOn("samples and stats after the profile writer was cancelled");
  Step("a profile after the cancel");
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  EXPECT_TRUE(WriteHeapProfile(null_fd, HeapProfileView::kLive));
  close(null_fd);
  close(fds[0]);
  close(fds[1]);
}

// Reads the pipe until the arena map begins, then stops reading.
void* ReadUntilArenas(void* arg) {
  const int fd = *static_cast<int*>(arg);
  const char key[] = "\"arenas\":[";
  size_t matched = 0;
  char c;
  while (matched < sizeof(key) - 1 && read(fd, &c, 1) == 1) {
    matched = c == key[matched] ? matched + 1 : (c == key[0] ? 1 : 0);
  }
  return nullptr;
}

TEST_F(CancelTest, AStatsWriterBlockedInTheArenaMapHoldsNoHeapLock) {
  // Enough arenas that the map outgrows the pipe and the writer's buffer.
  constexpr int kBlocks = 4000;
  static void* blocks[kBlocks];
  for (int i = 0; i < kBlocks; ++i) blocks[i] = Allocate(2000 + static_cast<size_t>(i % 1000));
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  fcntl(fds[1], F_SETPIPE_SZ, 4096);
  pthread_t reader;
  ASSERT_EQ(pthread_create(&reader, nullptr, &ReadUntilArenas, &fds[0]), 0);
  Writer w{fds[1], /*stats=*/true};
  pthread_t writer;
  ASSERT_EQ(pthread_create(&writer, nullptr, &WriteOnce, &w), 0);
  Step("the stats writer reaches the arena map");
  ASSERT_EQ(pthread_join(reader, nullptr), 0);
  WaitInWrite(w.tid);
  // This thread's own heap's lock: its refills take it.
  Step("this thread's heap refills while the stats writer is blocked");
  for (int i = 0; i < kBlocks; ++i) {
    Deallocate(blocks[i]);
    blocks[i] = Allocate(3000 + static_cast<size_t>(i % 1000));
  }
  OthersGoOn("samples and stats while the stats writer is blocked");
  Step("cancel the blocked stats writer");
  ASSERT_EQ(pthread_cancel(writer), 0);
  ASSERT_EQ(pthread_join(writer, nullptr), 0);
  OthersGoOn("samples and stats after the stats writer was cancelled");
  for (void* b : blocks) Deallocate(b);
  close(fds[0]);
  close(fds[1]);
}

void* ProfileLoop(void* arg) {
  const int fd = *static_cast<int*>(arg);
  for (;;) WriteHeapProfile(fd, HeapProfileView::kLive);
  return nullptr;
}

// Issue 24's report: a monitor writing the live profile to /dev/null in a
// loop, cancelled after 50 ms while the program allocates. Repeated, since
// where the cancel lands is chance.
TEST_F(CancelTest, AMonitorCancelledWhileWritingProfilesLeavesThemWorking) {
  int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  for (int round = 0; round < 5; ++round) {
    pthread_t monitor;
    ASSERT_EQ(pthread_create(&monitor, nullptr, &ProfileLoop, &null_fd), 0);
    Step("the program allocates while the monitor writes");
    Churn(testing::kUnderSanitizer ? 500 : 3000);
    SleepMs(50);
    Step("cancel the monitor");
    ASSERT_EQ(pthread_cancel(monitor), 0);
    ASSERT_EQ(pthread_join(monitor, nullptr), 0);
    OthersGoOn("samples and stats after the monitor was cancelled");
  }
  EXPECT_TRUE(WriteHeapProfile(null_fd, HeapProfileView::kPeak));
  close(null_fd);
}

}  // namespace
}  // namespace strata
