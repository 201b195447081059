// Hostile probes of the preloaded library, one per command-line case (see
// hostile_test.sh, which checks how each ends):
//   bss, mmap, stack,         free() of memory strata never handed out (also
//   protnone, file_eof        memory that cannot be read): one line and
//                             SIGABRT (count mode: counted, go on)
//   sized_small, sized_medium free_sized() with a size below the request
//   glibc                     glibc's own blocks (from libc's malloc, small
//                             and mmap-backed) pass through realloc and free
//                             intact, and the big one is unmapped, also
//                             when madvise split their mapping
//   huge                      malloc(64 TiB) and new of it fail cleanly
//   idle_large                512 freed 1 MiB blocks leave RSS while the
//                             program sleeps, with no further call
//   xdf_exited, xdf_qpp,      blocks freed twice across threads (issue 10,
//   xdf_batch, xdf_twice,     point 1): after the freer exited, q p p from
//   xdf_two_threads           one thread, while in another thread's batch,
//                             twice by one thread, by two threads
//   xdf_new_thread            a thread frees its last block and exits; a new
//                             thread starts and allocates; the block's
//                             second free (its pools were just released)
//   xdf_medium_exited         a 20 KiB block (one a run) freed by a thread
//                             that exits, then by its owner: the owner's
//                             check brings it back, releasing its run
//   overflow1, overflow8      1 or 8 bytes written past a block into its free
//                             neighbour: reported before the link is followed
//   count                     every misuse above in count mode; the process
//                             goes on and no live block is handed out twice
//   count_default             the same for what the default build reports:
//                             the foreign pointers and the sized frees
// Built against glibc alone; strata arrives by LD_PRELOAD.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <initializer_list>
#include <condition_variable>
#include <mutex>
#include <new>
#include <thread>

namespace {

#define CHECK(c)                                                     \
  do {                                                               \
    if (!(c)) {                                                      \
      fprintf(stderr, "hostile: check failed line %d: %s\n", __LINE__, #c); \
      exit(2);                                                       \
    }                                                                \
  } while (0)

using FreeSizedFn = void (*)(void*, size_t);
using MallocFn = void* (*)(size_t);

FreeSizedFn FreeSized() {
  auto f = reinterpret_cast<FreeSizedFn>(dlsym(RTLD_DEFAULT, "free_sized"));
  CHECK(f != nullptr);  // strata provides it; glibc 2.36 does not
  return f;
}

char g_bss[256];

void FreeBss() { free(g_bss + 64); }

void FreeMmap() {
  void* m = mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  free(static_cast<char*>(m) + 64);
}

// Another thread's stack: a local of a thread that waits while main frees it.
struct StackProbe {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  void* local = nullptr;
  bool done = false;
};

void* HoldStack(void* arg) {
  auto* s = static_cast<StackProbe*>(arg);
  volatile char buf[256];
  memset(const_cast<char*>(buf), 0, sizeof(buf));
  pthread_mutex_lock(&s->mu);
  s->local = const_cast<char*>(buf) + 64;
  pthread_cond_broadcast(&s->cv);
  while (!s->done) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  return nullptr;
}

void FreeStack() {
  StackProbe s;
  pthread_t t;
  CHECK(pthread_create(&t, nullptr, &HoldStack, &s) == 0);
  pthread_mutex_lock(&s.mu);
  while (s.local == nullptr) pthread_cond_wait(&s.cv, &s.mu);
  pthread_mutex_unlock(&s.mu);
  free(s.local);
  pthread_mutex_lock(&s.mu);
  s.done = true;
  pthread_cond_broadcast(&s.cv);
  pthread_mutex_unlock(&s.mu);
  pthread_join(t, nullptr);
}

// A page no one may read, and a file mapping past the file's end (a read
// there is SIGBUS): checking the pointer must not fault.
void FreeProtNone() {
  void* m = mmap(nullptr, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  free(static_cast<char*>(m) + 64);
}

void FreeFileEof() {
  FILE* f = tmpfile();
  CHECK(f != nullptr);
  void* m = mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE, fileno(f), 0);
  CHECK(m != MAP_FAILED);
  free(static_cast<char*>(m) + 64);
}

// ---- Double frees across threads, and overflows into free links --------

template <typename Fn>
void OnThread(Fn fn) {
  std::thread t(fn);
  t.join();
}

// A thread frees p and exits; the owner frees p again while p's run still
// holds another live block.
void DoubleFreeAfterFreerExited() {
  void* keep = malloc(64);
  void* p = malloc(64);
  OnThread([p] { free(p); });
  free(p);
  free(keep);
}

void DoubleFreeQpp() {
  void* q = malloc(64);
  void* p = malloc(64);
  OnThread([p, q] {
    free(q);
    free(p);
    free(p);
  });
}

// p waits in B's outgoing batch while B is alive; the owner frees it too.
void DoubleFreeInABatch() {
  void* p = malloc(64);
  std::mutex mu;
  std::condition_variable cv;
  int stage = 0;
  std::thread b([&] {
    free(p);
    std::unique_lock<std::mutex> lock(mu);
    stage = 1;
    cv.notify_all();
    cv.wait(lock, [&] { return stage == 2; });
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stage == 1; });
  }
  free(p);
  {
    std::lock_guard<std::mutex> lock(mu);
    stage = 2;
  }
  cv.notify_all();
  b.join();
}

void DoubleFreeTwiceByOneThread() {
  void* p = malloc(64);
  OnThread([p] {
    free(p);
    free(p);
  });
}

void DoubleFreeByTwoThreads() {
  void* p = malloc(64);
  OnThread([p] { free(p); });
  OnThread([p] { free(p); });
}

// A thread frees its last block and exits (its pools go back at once); a
// new thread starts (glibc's allocations for it) and takes blocks of the
// same class; then the first block is freed again. It must be reported, not
// free one of the new thread's live blocks (issue 24, F3).
void DoubleFreeAfterPoolsReleased() {
  void* p = nullptr;
  OnThread([&p] {
    p = malloc(64);
    memset(p, 1, 64);
    free(p);
  });
  std::mutex mu;
  std::condition_variable cv;
  int stage = 0;
  static void* blocks[256];
  std::thread t([&] {
    for (void*& b : blocks) {
      b = malloc(64);
      memset(b, 0x5a, 64);
    }
    std::unique_lock<std::mutex> lock(mu);
    stage = 1;
    cv.notify_all();
    cv.wait(lock, [&] { return stage == 2; });
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stage == 1; });
  }
  bool reused = false;
  for (void* b : blocks) reused |= b == p;
  printf("xdf_new_thread: the block was %shanded out again\n", reused ? "" : "not ");
  fflush(stdout);
  free(p);
  {
    std::lock_guard<std::mutex> lock(mu);
    stage = 2;
  }
  cv.notify_all();
  t.join();
  for (void* b : blocks) {
    if (b != p) free(b);
  }
}

// A 20 KiB block (one block a run) freed by a thread that exits, then by
// its owner again: the owner's check drains its queue, which brings the
// block back and empties (releases) its run; the release starts the
// background thread, whose creation allocates. The second free must be
// reported, not free what the released pools served meanwhile (issue 24,
// F3).
void DoubleFreeMediumAfterFreerExited() {
  void* p = malloc(20000);
  void* next = malloc(20000);  // p's run is spent: it falls asleep
  memset(p, 1, 20000);
  OnThread([p] { free(p); });
  free(p);
  free(next);
}

// Two neighbouring 64 B blocks; the second is freed and `len` bytes are
// written past the first, into the second's link. The next allocations of
// the class pop it: the damage must be reported, and no pointer into a live
// block handed out.
void OverflowIntoFreeNeighbour(size_t len) {
  unsigned char* a = nullptr;
  unsigned char* b = nullptr;
  for (int tries = 0; tries < 1000; ++tries) {  // two neighbours of the current run
    a = static_cast<unsigned char*>(malloc(64));
    b = static_cast<unsigned char*>(malloc(64));
    if (b == a + 64) break;
  }
  CHECK(b == a + 64);
  memset(a, 7, 64);
  free(b);  // b heads its run's free list
  // A NUL (the classic off-by-one), unless the byte is NUL already: the
  // stored link is random per process, and the write must change it.
  if (len == 1) {
    a[64] = a[64] == 0 ? 1 : 0;
  } else {
    memset(a + 64, 0x41, len);
  }
  for (int k = 0; k < 4; ++k) {
    auto* n = static_cast<unsigned char*>(malloc(64));
    CHECK(n < a || n >= a + 64);  // never a pointer into the live block
  }
  for (int i = 0; i < 64; ++i) CHECK(a[i] == 7);
}

void SizedSmall() { FreeSized()(malloc(100), 8); }
void SizedMedium() { FreeSized()(malloc(4000), 1); }

void Fill(unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(i * 31 + seed);
}
bool Holds(const unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != static_cast<unsigned char>(i * 31 + seed)) return false;
  }
  return true;
}

bool Mapped(void* p) {
  unsigned char v;
  const uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095};
  return mincore(reinterpret_cast<void*>(page), 4096, &v) == 0;
}

void Glibc() {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  CHECK(libc != nullptr);
  auto glibc_malloc = reinterpret_cast<MallocFn>(dlsym(libc, "malloc"));
  CHECK(glibc_malloc != nullptr && reinterpret_cast<void*>(glibc_malloc) != reinterpret_cast<void*>(&malloc));
  // Small (main arena) and mmap-backed blocks keep their contents through
  // realloc into strata.
  const size_t sizes[] = {200, 5000, size_t{1} << 20, size_t{3} << 20};
  for (size_t n : sizes) {
    auto* g = static_cast<unsigned char*>(glibc_malloc(n));
    CHECK(g != nullptr);
    Fill(g, n, static_cast<unsigned>(n));
    CHECK(malloc_usable_size(g) >= n);
    auto* q = static_cast<unsigned char*>(realloc(g, 2 * n));
    CHECK(q != nullptr && q != g);
    CHECK(Holds(q, n, static_cast<unsigned>(n)));
    free(q);
  }
  // An 8 MiB glibc block given to free() goes back to glibc, which unmaps it.
  auto* big = static_cast<unsigned char*>(glibc_malloc(size_t{8} << 20));
  CHECK(big != nullptr);
  memset(big, 1, size_t{8} << 20);
  unsigned char* middle = big + (size_t{4} << 20);
  CHECK(Mapped(middle));
  free(big);
  CHECK(!Mapped(middle));
  // A small one too (glibc keeps it; it must not be reported).
  free(glibc_malloc(64));
  // madvise on a page inside a block splits its mapping in /proc/self/maps.
  for (size_t n : {size_t{200000}, size_t{2} << 20}) {
    auto* g = static_cast<unsigned char*>(glibc_malloc(n));
    CHECK(g != nullptr);
    Fill(g, n, 5);
    auto page = (reinterpret_cast<uintptr_t>(g) + n / 2) & ~uintptr_t{4095};
    CHECK(madvise(reinterpret_cast<void*>(page), 4096, MADV_DONTDUMP) == 0);
    auto* q = static_cast<unsigned char*>(realloc(g, n + 1));
    CHECK(q != nullptr && Holds(q, n, 5));
    free(q);
  }
  puts("glibc: ok");
}

void Huge() {
  FILE* f = fopen("/proc/sys/vm/overcommit_memory", "r");
  CHECK(f != nullptr);
  const int mode = fgetc(f);
  fclose(f);
  const size_t huge = size_t{64} << 40;
  errno = 0;
  void* p = malloc(huge);
  if (mode == '1') {
    CHECK(p != nullptr);  // "always overcommit": the kernel grants it, as to glibc
    free(p);
    puts("huge: granted (overcommit_memory=1)");
    return;
  }
  CHECK(p == nullptr && errno == ENOMEM);
  errno = 0;
  CHECK(calloc(1, huge) == nullptr && errno == ENOMEM);
  bool threw = false;
  try {
    volatile char* v = new char[huge];
    v[0] = 1;
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw);
  puts("huge: ENOMEM");
}

size_t ResidentKib() {
  FILE* f = fopen("/proc/self/statm", "r");
  CHECK(f != nullptr);
  unsigned long size = 0, resident = 0;
  CHECK(fscanf(f, "%lu %lu", &size, &resident) == 2);
  fclose(f);
  return resident * 4;
}

double NowS() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// 512 x 1 MiB, touched and freed; then no allocator call while RSS is
// polled (the polling itself uses only syscalls and stdio on a buffer made
// before). Bounded: gives up after 60 s.
void IdleLarge() {
  char line[160];
  const size_t before = ResidentKib();
  static void* blocks[512];
  for (void*& b : blocks) {
    b = malloc(size_t{1} << 20);
    CHECK(b != nullptr);
    memset(b, 7, size_t{1} << 20);
  }
  const size_t peak = ResidentKib();
  for (void* b : blocks) free(b);
  const double start = NowS();
  size_t now = ResidentKib();
  while (now > before + 5 * 1024 && NowS() - start < 60) {
    usleep(50 * 1000);
    now = ResidentKib();
  }
  snprintf(line, sizeof(line), "idle_large: before=%zu KiB peak=%zu KiB after=%zu KiB in %.1f s\n",
           before, peak, now, NowS() - start);
  fputs(line, stdout);
  CHECK(peak > before + 400 * 1024);
  CHECK(now <= before + 5 * 1024);
}

// In count mode every misuse is one line and a count; the process goes on,
// and a block whose wrong free was ignored is never handed out again while
// it is live. CountEveryBuild: what both builds report (6 lines); Count:
// the checked build's, those and the cross-thread double frees (11).
void CountEveryBuild() {
  FreeBss();
  FreeMmap();
  FreeStack();
  FreeProtNone();
  auto* p = static_cast<unsigned char*>(malloc(100));
  Fill(p, 100, 9);
  FreeSized()(p, 8);  // ignored: p stays live
  auto* m = static_cast<unsigned char*>(malloc(4000));
  Fill(m, 4000, 11);
  FreeSized()(m, 1);
  void* others[256];
  for (void*& o : others) {
    o = malloc(100);
    CHECK(o != p && o != m);
  }
  CHECK(Holds(p, 100, 9) && Holds(m, 4000, 11));
  for (void* o : others) free(o);
  FreeSized()(p, 100);
  FreeSized()(m, 4000);
}

// No live block handed out twice.
void ExpectDistinctBlocks() {
  static void* live[2048];
  for (void*& l : live) l = malloc(64);
  for (size_t i = 0; i < 2048; ++i) {
    for (size_t j = i + 1; j < 2048; ++j) CHECK(live[i] != live[j]);
  }
  for (void* l : live) free(l);
}

void CountDefault() {
  CountEveryBuild();
  ExpectDistinctBlocks();
  puts("count: ok");
}

void Count() {
  CountEveryBuild();
  // The cross-thread double frees: each counted, none handed out twice.
  DoubleFreeAfterFreerExited();
  DoubleFreeQpp();
  DoubleFreeInABatch();
  DoubleFreeTwiceByOneThread();
  DoubleFreeByTwoThreads();
  ExpectDistinctBlocks();
  puts("count: ok");
}

void OverflowByOne() { OverflowIntoFreeNeighbour(1); }
void OverflowByEight() { OverflowIntoFreeNeighbour(8); }

struct Case {
  const char* name;
  void (*run)();
};

constexpr Case kCases[] = {
    {"bss", &FreeBss},
    {"mmap", &FreeMmap},
    {"stack", &FreeStack},
    {"protnone", &FreeProtNone},
    {"file_eof", &FreeFileEof},
    {"xdf_exited", &DoubleFreeAfterFreerExited},
    {"xdf_qpp", &DoubleFreeQpp},
    {"xdf_batch", &DoubleFreeInABatch},
    {"xdf_twice", &DoubleFreeTwiceByOneThread},
    {"xdf_two_threads", &DoubleFreeByTwoThreads},
    {"xdf_new_thread", &DoubleFreeAfterPoolsReleased},
    {"xdf_medium_exited", &DoubleFreeMediumAfterFreerExited},
    {"overflow1", &OverflowByOne},
    {"overflow8", &OverflowByEight},
    {"sized_small", &SizedSmall},
    {"sized_medium", &SizedMedium},
    {"glibc", &Glibc},
    {"huge", &Huge},
    {"idle_large", &IdleLarge},
    {"count", &Count},
    {"count_default", &CountDefault},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  for (const Case& c : kCases) {
    if (strcmp(argv[1], c.name) == 0) {
      c.run();
      printf("%s: returned\n", c.name);
      return 0;
    }
  }
  return 2;
}
