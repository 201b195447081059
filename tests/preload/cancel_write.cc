// Run with libstrata.so preloaded and STRATA_PROFILE_SAMPLE_BYTES=4k: a
// thread writing a heap profile or statistics is cancelled, or blocked on a
// full pipe, while other threads keep allocating (every one of them samples
// into the profile), take statistics and fork. Nothing may wait behind the
// writer: the program must finish. Modes (argv[1]):
//   profile-devnull  a monitor writes the live profile to /dev/null in a
//                    loop and is cancelled after 50 ms (issue 24's report)
//   profile-pipe     the writer blocks on a full pipe inside the profile's
//                    rows; the others go on, then it is cancelled
//   stats-pipe       the writer blocks on a full pipe inside json-arenas'
//                    arena map; the others go on, then it is cancelled
// Exits 0 with "cancel_write: ok MODE"; a hang is cut by alarm() (exit 99,
// naming the step that did not finish). The strata_* entry points are found
// with dlsym: the program links glibc's malloc and gets strata by preload.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "tests/util/step_watchdog.h"
#include "tests/util/thread_in_write.h"

namespace {

using WriteFn = int (*)(int, const char*);
WriteFn g_profile_write = nullptr;
WriteFn g_stats_write = nullptr;

using strata::testing::SleepMs;
using strata::testing::WaitInWrite;
using strata::testing::Step;

// ---- Allocating threads ------------------------------------------------

std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_rounds[4];

// Allocates at `depth` frames below the caller, so that the profile holds
// several stacks (and its rows fill more than a writer's buffer).
__attribute__((noinline)) void* AllocAt(int depth, size_t n) {
  if (depth > 0) {
    void* p = AllocAt(depth - 1, n);
    __asm__ volatile("" ::: "memory");  // no tail call: keep the frame
    return p;
  }
  return malloc(n);
}

void* Churn(void* arg) {
  const auto id = static_cast<unsigned>(reinterpret_cast<uintptr_t>(arg));
  unsigned seed = id * 7919 + 1;
  void* live[256] = {};
  while (!g_stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 256; ++i) {
      seed = seed * 1103515245u + 12345u;
      const size_t n = 8 + (seed >> 8) % (seed % 64 == 0 ? 100000 : 3000);
      free(live[i]);
      live[i] = AllocAt(static_cast<int>(seed % 12), n);
      if (live[i] == nullptr) abort();
      memset(live[i], 0x5a, n < 64 ? n : 64);
    }
    g_rounds[id].fetch_add(1, std::memory_order_relaxed);
  }
  for (void* p : live) free(p);
  return nullptr;
}

// Waits until every allocating thread has finished two more rounds.
void WorkersProgress() {
  uint64_t start[4];
  for (int i = 0; i < 4; ++i) start[i] = g_rounds[i].load(std::memory_order_relaxed);
  for (int i = 0; i < 4; ++i) {
    while (g_rounds[i].load(std::memory_order_relaxed) < start[i] + 2) SleepMs(1);
  }
}

// ---- Writers ----------------------------------------------------------

std::atomic<pid_t> g_writer_tid{0};
int g_out_fd = -1;

void* ProfileLoop(void*) {
  g_writer_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  for (;;) g_profile_write(g_out_fd, "live");
  return nullptr;
}

void* ProfileOnce(void*) {
  g_writer_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  g_profile_write(g_out_fd, "live");
  return nullptr;
}

void* StatsOnce(void*) {
  g_writer_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  g_stats_write(g_out_fd, "json-arenas");
  return nullptr;
}

// Reads the stats pipe until the arena map has begun, then stops reading:
// the writer blocks inside the map.
std::atomic<bool> g_reader_done{false};
void* ReadUntilArenas(void* arg) {
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  const char key[] = "\"arenas\":[";
  size_t matched = 0;
  char c;
  while (matched < sizeof(key) - 1 && read(fd, &c, 1) == 1) {
    matched = c == key[matched] ? matched + 1 : (c == key[0] ? 1 : 0);
  }
  g_reader_done.store(true);
  return nullptr;
}

// A pipe whose buffer is full: the next write to it blocks.
void FullPipe(int fds[2]) {
  if (pipe(fds) != 0) abort();
  fcntl(fds[1], F_SETPIPE_SZ, 4096);
  fcntl(fds[1], F_SETFL, O_NONBLOCK);
  char junk[512];
  memset(junk, '#', sizeof(junk));
  while (write(fds[1], junk, sizeof(junk)) > 0) {
  }
  fcntl(fds[1], F_SETFL, 0);
}

// What must still work while, or after, a writer is stuck or cancelled.
void EverythingElseGoesOn(const char* when) {
  Step(when);  // the allocating threads progress
  WorkersProgress();
  // This thread samples too (4 KiB of allocation each).
  Step("sampled allocations on the main thread");
  for (int i = 0; i < 2000; ++i) free(AllocAt(i % 5, 100 + i));
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  Step("strata_stats_write");
  g_stats_write(null_fd, "table");
  Step("fork");
  const pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < 1000; ++i) free(malloc(16 + i));
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "cancel_write: the fork child failed\n");
    exit(1);
  }
  close(null_fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: cancel_write profile-devnull|profile-pipe|stats-pipe\n");
    return 2;
  }
  const char* mode = argv[1];
  strata::testing::ArmWatchdog("cancel_write: hung at step: ", 120);
  g_profile_write = reinterpret_cast<WriteFn>(dlsym(RTLD_DEFAULT, "strata_profile_write"));
  g_stats_write = reinterpret_cast<WriteFn>(dlsym(RTLD_DEFAULT, "strata_stats_write"));
  if (g_profile_write == nullptr || g_stats_write == nullptr) {
    fprintf(stderr, "cancel_write: run me with libstrata.so preloaded\n");
    return 2;
  }
  pthread_t workers[4];
  for (uintptr_t i = 0; i < 4; ++i) {
    pthread_create(&workers[i], nullptr, &Churn, reinterpret_cast<void*>(i));
  }
  Step("allocating threads start");
  WorkersProgress();

  pthread_t writer;
  int fds[2] = {-1, -1};
  pthread_t reader;
  bool have_reader = false;
  if (strcmp(mode, "profile-devnull") == 0) {
    g_out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pthread_create(&writer, nullptr, &ProfileLoop, nullptr);
    SleepMs(50);
  } else if (strcmp(mode, "profile-pipe") == 0) {
    FullPipe(fds);
    g_out_fd = fds[1];
    pthread_create(&writer, nullptr, &ProfileOnce, nullptr);
    Step("the profile writer blocks on the pipe");
    WaitInWrite(g_writer_tid);
    EverythingElseGoesOn("while the profile writer is blocked");
  } else if (strcmp(mode, "stats-pipe") == 0) {
    if (pipe(fds) != 0) abort();
    fcntl(fds[1], F_SETPIPE_SZ, 4096);
    g_out_fd = fds[1];
    pthread_create(&reader, nullptr, &ReadUntilArenas, reinterpret_cast<void*>(intptr_t{fds[0]}));
    have_reader = true;
    pthread_create(&writer, nullptr, &StatsOnce, nullptr);
    Step("the stats writer blocks on the pipe inside the arena map");
    while (!g_reader_done.load()) SleepMs(1);
    WaitInWrite(g_writer_tid);
    EverythingElseGoesOn("while the stats writer is blocked");
  } else {
    fprintf(stderr, "cancel_write: unknown mode '%s'\n", mode);
    return 2;
  }
  Step("cancel and join the writer");
  pthread_cancel(writer);
  pthread_join(writer, nullptr);
  if (have_reader) pthread_join(reader, nullptr);
  EverythingElseGoesOn("after the writer was cancelled");
  Step("a profile written after the cancel");
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (g_profile_write(null_fd, "live") != 0) {
    fprintf(stderr, "cancel_write: the profile could not be written afterwards\n");
    return 1;
  }
  Step("stop the allocating threads");
  g_stop.store(true);
  for (pthread_t t : workers) pthread_join(t, nullptr);
  printf("cancel_write: ok %s\n", mode);
  return 0;
}
