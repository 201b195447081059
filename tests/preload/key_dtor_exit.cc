// Threads that leave through pthread key destructors doing what programs do
// there: call pthread_exit (which restarts the thread's exit: glibc then runs
// no key destructor whose round had begun, strata's among them), allocate
// and free other threads' blocks in every destructor round (the last
// round's allocation arms strata's exit hook too late to run). Run with
// libstrata.so preloaded by thread_exit_test.sh, which checks that every
// such thread's heap was recovered: few heaps, bounded memory.
//
// Usage: key_dtor_exit THREADS. Prints "keys: low=L strata=S high=H" and
// "rss_kib N"; exits 2 when the keys are not in that order (the test would
// not exercise both orders), 1 on a damaged block.
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr size_t kBlock = 1000;
constexpr int kKept = 8;   // blocks each thread leaves for a later one to free
constexpr int kRing = 64;  // blocks in flight between threads

pthread_key_t g_low;   // created before strata's key (.preinit_array)
pthread_key_t g_high;  // created after it
void* g_ring[kRing];   // blocks of earlier threads (only one thread runs at a time)
int g_ring_next = 0;

void Fill(void* p, unsigned char v) { memset(p, v, kBlock); }
bool Check(const void* p, unsigned char v) {
  const auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < kBlock; ++i) {
    if (c[i] != v) return false;
  }
  return true;
}

// Puts p in the ring in place of an earlier thread's block, which is freed
// (a remote free) after its pattern is checked.
void Stash(void* p) {
  void*& slot = g_ring[g_ring_next++ % kRing];
  if (slot != nullptr) {
    if (!Check(slot, 0x5a)) {
      fprintf(stderr, "damaged block %p\n", slot);
      _exit(1);
    }
    free(slot);
  }
  slot = p;
}

// Low key: its destructor runs before strata's and leaves through
// pthread_exit.
void LowDtor(void* v) {
  free(v);
  pthread_exit(nullptr);
}

// High key, kinds 1 and 2 (the value says which): runs after strata's exit
// hook gave the heap back.
void HighDtor(void* v) {
  const auto kind = reinterpret_cast<uintptr_t>(v);
  // A new heap for a thread that already let go of its own; the block
  // stays for a later thread to free, and an earlier thread's is freed.
  void* p = malloc(kBlock);
  Fill(p, 0x5a);
  Stash(p);
  if (kind == 1) {
    // Every round: the last round's allocation re-arms strata's hook when
    // no round is left to run it.
    pthread_setspecific(g_high, v);
    return;
  }
  pthread_exit(nullptr);  // kind 2: the exit restarts after strata's hook ran
}

void* Thread(void* arg) {
  const auto i = reinterpret_cast<uintptr_t>(arg);
  void* blocks[256];
  for (auto& b : blocks) {
    b = malloc(kBlock);
    Fill(b, 0x5a);
  }
  for (int k = kKept; k < 256; ++k) free(blocks[k]);
  for (int k = 0; k < kKept; ++k) Stash(blocks[k]);
  switch (i % 4) {
    case 0:
      pthread_setspecific(g_low, malloc(16));
      break;
    case 1:
    case 2:
      pthread_setspecific(g_high, reinterpret_cast<void*>(i % 4));
      break;
    default:
      break;  // a plain exit
  }
  return nullptr;
}

// strata's key: the one key of ours that holds a value in this thread after
// an allocation (glibc reads a key never created as null).
long FindStrataKey() {
  for (long k = 0; k < 1024; ++k) {
    if (k == static_cast<long>(g_low) || k == static_cast<long>(g_high)) continue;
    if (pthread_getspecific(static_cast<pthread_key_t>(k)) != nullptr) return k;
  }
  return -1;
}

void CreateLowKey(int, char**, char**) { pthread_key_create(&g_low, &LowDtor); }

}  // namespace

// Before any shared object's constructor, strata's included.
__attribute__((section(".preinit_array"), used)) static void (*g_preinit)(int, char**, char**) = &CreateLowKey;

int main(int argc, char** argv) {
  const long threads = argc > 1 ? atol(argv[1]) : 10000;
  void* volatile first = malloc(64);  // this thread's heap: strata's key exists now
  pthread_key_create(&g_high, &HighDtor);
  const long strata_key = FindStrataKey();
  printf("keys: low=%ld strata=%ld high=%ld\n", static_cast<long>(g_low), strata_key,
         static_cast<long>(g_high));
  if (!(static_cast<long>(g_low) < strata_key && strata_key < static_cast<long>(g_high))) {
    fprintf(stderr, "SETUP: keys not in the order low < strata < high\n");
    return 2;
  }
  for (long i = 0; i < threads; ++i) {
    pthread_t t;
    if (pthread_create(&t, nullptr, &Thread, reinterpret_cast<void*>(i)) != 0) return 3;
    pthread_join(t, nullptr);
  }
  for (int k = 0; k < kRing; ++k) Stash(nullptr);
  free(first);
  FILE* f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f == nullptr || fscanf(f, "%ld %ld", &size, &resident) != 2) return 4;
  fclose(f);
  printf("rss_kib %ld\n", resident * 4);
  return 0;
}
