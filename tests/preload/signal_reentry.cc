// Run with libstrata.so (or libstrata_checked.so) preloaded, with
// STRATA_THREAD_CACHE_BYTES=0: a SIGALRM handler, fired by setitimer every
// 100 us, allocates and frees while the main thread is itself inside malloc
// and free nearly all the time, much of it on slow paths that hold its
// heap's lock (every 40 KB block takes a new run and gives it back).
// Calling malloc from a signal handler is undefined (it is not
// async-signal-safe, in glibc as in strata); what strata promises (README,
// "Signal handlers") is never to report a misuse the program did not make
// and never to hang on its own lock: the run either completes or stops
// with the one line
//   strata: malloc re-entered from a signal handler (...)
// The handler frees each block before it allocates the next (as a handler
// that formats one message would): README says why a handler holding
// several blocks at once while it interrupts a fast path is not covered.
// Exits 0 with "signal_reentry: ok" after `seconds` (argv[1], default 2)
// or 20,000 handler runs, whichever comes first.
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <atomic>

namespace {

std::atomic<uint64_t> g_handled{0};
unsigned g_handler_seed = 1;

void OnAlarm(int) {
  // The main thread's sizes: a medium block of a run of its own, small
  // blocks, and now and then a large block.
  g_handler_seed = g_handler_seed * 1103515245u + 12345u;
  const unsigned r = g_handler_seed >> 8;
  for (int i = 0; i < 4; ++i) {
    const size_t n = i == 0 ? 40000 : (r % 16 == 0 && i == 1 ? 70000 + r % 4096 : 8 + (r + i * 77) % 900);
    void* b = malloc(n);
    if (b != nullptr) memset(b, 0x33, n < 32 ? n : 32);
    free(b);
  }
  g_handled.fetch_add(1, std::memory_order_relaxed);
}

uint64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

int main(int argc, char** argv) {
  const long seconds = argc > 1 ? atol(argv[1]) : 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &OnAlarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, nullptr);
  itimerval every{{0, 100}, {0, 100}};
  setitimer(ITIMER_REAL, &every, nullptr);

  // The main thread: 48 blocks of 40 KB at a time, more than a thread
  // keeps cached of one class, so that with no thread cache each takes a
  // run of its own and gives it back, under the heap's lock; between them,
  // blocks of every small and medium class.
  constexpr int kLive = 96;
  static char* live[kLive];
  unsigned seed = 12345;
  const uint64_t end = NowMs() + static_cast<uint64_t>(seconds) * 1000;
  uint64_t rounds = 0;
  while (NowMs() < end && g_handled.load(std::memory_order_relaxed) < 20000) {
    for (int i = 0; i < kLive; ++i) {
      seed = seed * 1103515245u + 12345u;
      const size_t n = i % 2 == 0 ? 40000 : 1 + (seed >> 8) % ((seed & 3) == 0 ? 4000 : 300);
      live[i] = static_cast<char*>(malloc(n));
      if (live[i] == nullptr) abort();
      live[i][0] = static_cast<char>(i);
    }
    for (int i = kLive - 1; i >= 0; --i) {
      free(live[i]);
      live[i] = nullptr;
    }
    // Everything back to the OS: madvise calls under the heap's lock, where
    // the pending signal is delivered, with this thread's class lists
    // emptied (the handler's next malloc refills, and takes that lock).
    malloc_trim(0);
    ++rounds;
  }
  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  for (char*& p : live) free(p);
  printf("signal_reentry: ok (%llu rounds, %llu handler runs)\n", static_cast<unsigned long long>(rounds),
         static_cast<unsigned long long>(g_handled.load()));
  return 0;
}
