// Run with libstrata.so preloaded: mixes every allocation entry point,
// including posix_memalign memory passed to realloc and free, and memory
// glibc handed out itself (from libc's own malloc, as memory from before the
// preload would be). Exits 0 only if every block kept its contents.
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>
#include <string>
#include <thread>
#include <vector>

// C23's sized frees: glibc 2.36 lacks them, strata provides them; looked up
// at run time so the program links against glibc alone.
using FreeSizedFn = void (*)(void*, size_t);
using FreeAlignedSizedFn = void (*)(void*, size_t, size_t);
static FreeSizedFn free_sized;
static FreeAlignedSizedFn free_aligned_sized;

#define CHECK(c)                                              \
  do {                                                        \
    if (!(c)) {                                               \
      fprintf(stderr, "mix: check failed: %s (line %d)\n", #c, __LINE__); \
      exit(1);                                                \
    }                                                         \
  } while (0)

static void Fill(void* p, size_t n, int seed) { memset(p, seed & 0xff, n); }
static bool Same(const void* p, size_t n, int seed) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<unsigned char>(seed & 0xff)) return false;
  }
  return true;
}

static void Round(int seed) {
  void* pm = nullptr;
  CHECK(posix_memalign(&pm, 256, 100) == 0);
  CHECK(reinterpret_cast<uintptr_t>(pm) % 256 == 0);
  Fill(pm, 100, seed);
  pm = realloc(pm, 5000);  // posix_memalign memory through realloc
  CHECK(pm != nullptr && Same(pm, 100, seed));
  free(pm);
  void* m = malloc(33);
  Fill(m, 33, seed + 1);
  void* c = calloc(7, 9);
  CHECK(Same(c, 63, 0));
  void* a = aligned_alloc(4096, 8192);
  CHECK(reinterpret_cast<uintptr_t>(a) % 4096 == 0);
  void* ma = memalign(64, 10);
  void* v = valloc(100);
  void* pv = pvalloc(100);
  void* ra = reallocarray(nullptr, 10, 10);
  CHECK(malloc_usable_size(m) >= 33);
  m = realloc(m, 100000);
  CHECK(Same(m, 33, seed + 1));
  m = realloc(m, 10);
  CHECK(Same(m, 10, seed + 1));
  free(m);
  free(c);
  free_aligned_sized(a, 4096, 8192);
  free(ma);
  free(v);
  free(pv);
  free_sized(ra, 100);
  int* one = new int(seed);
  int* many = new int[1000];
  char* nt = new (std::nothrow) char[10];
  struct alignas(128) W {
    char b[200];
  };
  W* w = new W;
  CHECK(reinterpret_cast<uintptr_t>(w) % 128 == 0);
  delete w;
  delete[] nt;
  delete[] many;
  delete one;
  std::string s(10000, 'q');
  std::vector<std::string> vs(100, s);
  CHECK(vs[99][9999] == 'q');
}

int main() {
  free_sized = reinterpret_cast<FreeSizedFn>(dlsym(RTLD_DEFAULT, "free_sized"));
  free_aligned_sized = reinterpret_cast<FreeAlignedSizedFn>(dlsym(RTLD_DEFAULT, "free_aligned_sized"));
  CHECK(free_sized != nullptr && free_aligned_sized != nullptr);  // strata is preloaded
  // glibc's own allocator, reached directly in libc.
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  CHECK(libc != nullptr);
  using MallocFn = void* (*)(size_t);
  MallocFn glibc_malloc = reinterpret_cast<MallocFn>(dlsym(libc, "malloc"));
  CHECK(glibc_malloc != nullptr && reinterpret_cast<void*>(glibc_malloc) != reinterpret_cast<void*>(&malloc));
  char* old1 = static_cast<char*>(glibc_malloc(200));
  char* old2 = static_cast<char*>(glibc_malloc(300));
  char* old3 = static_cast<char*>(glibc_malloc(400));
  strcpy(old1, "before the preload");
  strcpy(old3, "kept");
  CHECK(malloc_usable_size(old1) >= 200);
  old1 = static_cast<char*>(realloc(old1, 1000));  // moves it into strata
  CHECK(strcmp(old1, "before the preload") == 0);
  free(old1);
  free(old2);  // handed back to glibc untouched

  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 2000; ++i) Round(t * 10000 + i);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(strcmp(old3, "kept") == 0);
  free(old3);
  malloc_trim(0);
  struct mallinfo2 mi = mallinfo2();
  CHECK(mi.arena > 0);
  printf("mix: ok\n");
  return 0;
}
