// C++ code a C program loads late (dlopen, RTLD_LOCAL), as python3 loads a
// C++ extension: strata must find this C++ runtime when new fails.
#include <cstddef>
#include <cstdint>
#include <new>

static volatile size_t g_huge = SIZE_MAX - 100;

// 1 when operator new threw std::bad_alloc, as it must.
extern "C" int plugin_huge_new_throws() {
  try {
    void* p = ::operator new(g_huge);
    return p == nullptr ? 2 : 3;
  } catch (const std::bad_alloc&) {
    return 1;
  }
}

static int g_calls = 0;
static void Throws() {
  ++g_calls;
  throw std::bad_alloc();
}

// 1 when nothrow new called the plugin's new-handler once and, the handler
// having thrown, returned null.
extern "C" int plugin_nothrow_calls_handler() {
  g_calls = 0;
  std::set_new_handler(&Throws);
  void* p = ::operator new(g_huge, std::nothrow);
  std::set_new_handler(nullptr);
  return p == nullptr && g_calls == 1 ? 1 : 2 + g_calls;
}

extern "C" int plugin_new_works() {
  int* v = new int[1000];
  v[999] = 7;
  const int r = v[999];
  delete[] v;
  return r;
}
