// operator new's failure protocol under LD_PRELOAD=libstrata.so, in a C++
// program (its C++ runtime loaded with it): std::bad_alloc is thrown and
// caught, the new-handler is called, and the nothrow forms return null,
// also when the handler throws. Prints "new_protocol: ok" or the failed
// checks as bits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>

static volatile size_t g_huge = SIZE_MAX - 100;
static int g_calls = 0;
static void GiveUp() {
  ++g_calls;
  std::set_new_handler(nullptr);  // the next failure throws
}
static void Throws() {
  ++g_calls;
  throw std::bad_alloc();
}

int main() {
  int bad = 0;
  try {
    std::printf("%p\n", ::operator new(g_huge));
    bad |= 1;
  } catch (const std::bad_alloc&) {
  }
  try {
    std::printf("%p\n", ::operator new(g_huge, std::align_val_t{64}));
    bad |= 2;
  } catch (const std::bad_alloc&) {
  }
  std::set_new_handler(&GiveUp);
  try {
    std::printf("%p\n", ::operator new(g_huge));
    bad |= 4;
  } catch (const std::bad_alloc&) {
  }
  if (g_calls != 1) bad |= 8;
  if (::operator new(g_huge, std::nothrow) != nullptr) bad |= 16;
  std::set_new_handler(&Throws);
  g_calls = 0;
  if (::operator new(g_huge, std::nothrow) != nullptr) bad |= 32;
  if (::operator new[](g_huge, std::align_val_t{128}, std::nothrow) != nullptr) bad |= 64;
  if (g_calls != 2) bad |= 128;
  std::set_new_handler(nullptr);
  int* v = new int[1000];  // and the ordinary path still works
  v[999] = 7;
  if (v[999] != 7) bad |= 256;
  delete[] v;
  std::printf(bad ? "new_protocol: FAIL %d\n" : "new_protocol: ok\n", bad);
  return bad;
}
