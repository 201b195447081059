// The malloc override linked into a program (cc_test(malloc = "//alloc:malloc")):
// every entry point is served by strata with glibc's semantics.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "alloc/error.h"
#include "alloc/options.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

// C23 functions glibc 2.36 does not declare yet; the override defines them.
extern "C" void free_sized(void* p, size_t size) noexcept;
extern "C" void free_aligned_sized(void* p, size_t alignment, size_t size) noexcept;

namespace {

// Sizes the compiler cannot see (it rejects impossible constant sizes).
volatile size_t g_size_max = SIZE_MAX;
size_t Huge(size_t minus = 0) { return g_size_max - minus; }

// Keeps the compiler from folding malloc/free pairs away.
void* volatile g_sink;
template <typename T>
T* Keep(T* p) {
  g_sink = p;
  return p;
}

TEST(OverrideTest, CFunctionsAreServedByStrata) {
  void* m = Keep(malloc(100));
  void* c = Keep(calloc(10, 10));
  void* a = Keep(aligned_alloc(64, 128));
  void* ma = Keep(memalign(256, 100));
  void* v = Keep(valloc(10));
  void* pv = Keep(pvalloc(10));
  void* pm = nullptr;
  ASSERT_EQ(posix_memalign(&pm, 128, 1000), 0);
  for (void* p : {m, c, a, ma, v, pv, pm}) {
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(strata::Owns(p));
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ma) % 256, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v) % 4096, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pv) % 4096, 0u);
  EXPECT_GE(malloc_usable_size(pv), 4096u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pm) % 128, 0u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(static_cast<char*>(c)[i], 0);
  EXPECT_GE(malloc_usable_size(m), 100u);
  for (void* p : {m, c, a, ma, v, pv, pm}) free(p);
}

TEST(OverrideTest, GlibcCompatibleEdgeCases) {
  // realloc(NULL, n) allocates; realloc(p, 0) frees and returns NULL.
  void* p = realloc(nullptr, 50);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(realloc(p, 0), nullptr);
  // calloc overflow.
  errno = 0;
  EXPECT_EQ(calloc(Huge() / 2, 4), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // reallocarray overflow leaves the block alone.
  void* r = malloc(16);
  errno = 0;
  EXPECT_EQ(reallocarray(r, Huge() / 2, 4), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  r = reallocarray(r, 10, 10);
  ASSERT_NE(r, nullptr);
  EXPECT_GE(malloc_usable_size(r), 100u);
  free(r);
  // posix_memalign reports through its result and leaves errno alone.
  void* out = reinterpret_cast<void*>(1);
  errno = 1234;
  EXPECT_EQ(posix_memalign(&out, 3, 10), EINVAL);
  EXPECT_EQ(posix_memalign(&out, 2, 10), EINVAL);  // below sizeof(void*)
  EXPECT_EQ(posix_memalign(&out, 64, Huge(10)), ENOMEM);
  EXPECT_EQ(errno, 1234);
  EXPECT_EQ(out, reinterpret_cast<void*>(1));  // untouched on failure
  // aligned_alloc with a bad alignment.
  errno = 0;
  EXPECT_EQ(aligned_alloc(24, 48), nullptr);
  EXPECT_EQ(errno, EINVAL);
  // malloc of an impossible size.
  errno = 0;
  EXPECT_EQ(malloc(Huge()), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  free(nullptr);
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
}

TEST(OverrideTest, SizedAndAlignedFrees) {
  void* p = malloc(200);
  free_sized(p, 200);
  void* a = aligned_alloc(512, 1000);
  free_aligned_sized(a, 512, 1000);
}

TEST(OverrideTest, EveryOperatorNewAndDelete) {
  auto* a = new int(7);
  EXPECT_TRUE(strata::Owns(a));
  delete a;
  auto* arr = new int[100];
  EXPECT_TRUE(strata::Owns(arr));
  delete[] arr;
  auto* n = new (std::nothrow) char[33];
  EXPECT_TRUE(strata::Owns(n));
  delete[] n;
  struct alignas(256) Wide {
    char bytes[300];
  };
  auto* w = new Wide;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w) % 256, 0u);
  EXPECT_TRUE(strata::Owns(w));
  delete w;
  auto* wa = new Wide[3];
  EXPECT_EQ(reinterpret_cast<uintptr_t>(wa) % 256, 0u);
  delete[] wa;
  auto* wn = new (std::nothrow) Wide;
  EXPECT_NE(wn, nullptr);
  delete wn;
  void* raw = ::operator new(100, std::align_val_t{1024});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(raw) % 1024, 0u);
  ::operator delete(raw, 100, std::align_val_t{1024});
  void* raw2 = ::operator new[](100, std::align_val_t{64}, std::nothrow);
  ::operator delete[](raw2, std::align_val_t{64}, std::nothrow);
  void* s = ::operator new(40);
  ::operator delete(s, 40);
  std::string big(100000, 'x');
  EXPECT_TRUE(strata::Owns(big.data()));
  std::vector<int> v(1000, 3);
  EXPECT_TRUE(strata::Owns(v.data()));
}

TEST(OverrideTest, NewThrowsBadAllocAndNothrowReturnsNull) {
  EXPECT_THROW(
      {
        void* p = ::operator new(Huge(100));
        g_sink = p;
      },
      std::bad_alloc);
  EXPECT_EQ(::operator new(Huge(100), std::nothrow), nullptr);
  EXPECT_THROW(
      {
        void* p = ::operator new(Huge(100), std::align_val_t{64});
        g_sink = p;
      },
      std::bad_alloc);
}

// A hard memory limit: operator new throws past it, malloc returns NULL
// with ENOMEM, and both work again once memory is freed.
TEST(OverrideTest, NewThrowsPastAHardMemoryLimit) {
  strata::ReleaseMemory();
  strata::Stats s;
  strata::GetStats(&s);
  // Nothing below allocates but the calls tested (gtest's checks come after
  // the limit is lifted: it allocates through strata too).
  ASSERT_TRUE(strata::SetMemoryLimit(s.footprint_bytes + (4 << 20), /*hard=*/true));
  void* held[64] = {};
  int n = 0;
  bool threw = false;
  while (n < 64 && !threw) {
    try {
      held[n] = ::operator new(1 << 20);
      ++n;
    } catch (const std::bad_alloc&) {
      threw = true;
    }
  }
  errno = 0;
  void* refused = malloc(8 << 20);
  const int refused_errno = errno;
  for (int i = 0; i < n; ++i) ::operator delete(held[i]);
  void* again = ::operator new(1 << 20);
  ::operator delete(again);
  ASSERT_TRUE(strata::SetMemoryLimit(0, /*hard=*/false));
  EXPECT_TRUE(threw);
  EXPECT_GE(n, 1);
  EXPECT_LE(n, 4);
  EXPECT_EQ(refused, nullptr);
  EXPECT_EQ(refused_errno, ENOMEM);
  EXPECT_NE(again, nullptr);
}

int g_handler_calls = 0;
void GiveUp() {
  ++g_handler_calls;
  std::set_new_handler(nullptr);  // next failure throws
}

TEST(OverrideTest, NewCallsTheNewHandler) {
  g_handler_calls = 0;
  std::set_new_handler(&GiveUp);
  EXPECT_THROW(
      {
        void* p = ::operator new(Huge(100));
        g_sink = p;
      },
      std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 1);
  std::set_new_handler(nullptr);
}

// Memory glibc handed out (here: glibc's own malloc reached through dlsym, as
// memory from before strata took over would be) passes through strata's
// free, realloc and malloc_usable_size unharmed.
TEST(OverrideTest, MemoryFromGlibcIsHandledWithoutTouchingIt) {
  using MallocFn = void* (*)(size_t);
  auto glibc_malloc = reinterpret_cast<MallocFn>(dlsym(RTLD_NEXT, "malloc"));
  ASSERT_NE(glibc_malloc, nullptr);
  ASSERT_NE(reinterpret_cast<void*>(glibc_malloc), reinterpret_cast<void*>(&malloc));
  char* g = static_cast<char*>(glibc_malloc(64));
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(strata::Owns(g));
  strcpy(g, "from glibc");
  EXPECT_GE(malloc_usable_size(g), 64u);
  char* moved = static_cast<char*>(realloc(g, 5000));  // moves into strata
  ASSERT_NE(moved, nullptr);
  EXPECT_TRUE(strata::Owns(moved));
  EXPECT_STREQ(moved, "from glibc");
  free(moved);
  void* g2 = glibc_malloc(100);
  free(g2);  // back to glibc, no error
  EXPECT_EQ(strata::internal::ErrorCount(), 0u);
}

TEST(OverrideTest, IntrospectionUsesStrataNumbers) {
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(malloc(128));
  const struct mallinfo2 m = mallinfo2();
  EXPECT_GE(m.uordblks, 1000u * 128);
  EXPECT_GE(m.arena, m.uordblks);
  for (void* p : blocks) free(p);
  EXPECT_EQ(mallopt(M_ARENA_MAX, 2), 1);
  malloc_trim(0);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_LT(after.uordblks, m.uordblks);
}

using OverrideDeathTest = ::testing::Test;

TEST(OverrideDeathTest, FreeingAStackPointerIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        int x = 0;
        void* volatile p = &x;
        free(p);
      },
      "strata: free\\(0x[0-9a-f]+\\): pointer was not allocated by strata");
}

}  // namespace
