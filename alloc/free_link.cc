#include "alloc/free_link.h"

#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "threading/spin_lock.h"

namespace strata::internal {

namespace free_link_internal {
constinit std::atomic<uintptr_t> g_x{0};
constinit std::atomic<uintptr_t> g_mul{0};
constinit std::atomic<uintptr_t> g_inv{0};
}  // namespace free_link_internal

namespace {

constinit threading::SpinLock g_init_lock;

// Random bits from the kernel (no allocation); if refused, mixes the clock
// and an address. Any key is correct; randomness only makes program data
// unlikely to look like a free block and links hard to forge.
uintptr_t RandomWord(uintptr_t salt) {
  uintptr_t w = 0;
  if (syscall(SYS_getrandom, &w, sizeof(w), GRND_NONBLOCK) != sizeof(w)) {
    w = (static_cast<uintptr_t>(__builtin_ia32_rdtsc()) ^ salt) * 0x9E3779B97F4A7C15ull;
    w ^= w >> 29;
  }
  return w;
}

// The inverse of odd m mod 2^64 (Newton: each step doubles the correct bits,
// and m * m == 1 mod 8 gives the first three).
uintptr_t Inverse(uintptr_t m) {
  uintptr_t inv = m;
  for (int i = 0; i < 5; ++i) inv *= 2 - m * inv;
  return inv;
}

}  // namespace

void InitLinkKey() {
  using namespace free_link_internal;
  // Acquire pairs with the release store of x below: a caller that sees
  // the key set also sees mul and inv.
  if (g_x.load(std::memory_order_acquire) != 0) return;
  threading::SpinLockHolder hold(&g_init_lock);
  if (g_x.load(std::memory_order_relaxed) != 0) return;  // relaxed: under the lock
  // x's top bit is set: a block holding its own address (an empty intrusive
  // list, say) decodes to x, never link-shaped. mul is odd (invertible) and
  // has high bits (it must spread a changed low byte upward).
  const uintptr_t x = RandomWord(reinterpret_cast<uintptr_t>(&hold)) | uintptr_t{1} << 63;
  const uintptr_t mul = RandomWord(x) | uintptr_t{1} << 62 | 1;
  g_mul.store(mul, std::memory_order_relaxed);
  g_inv.store(Inverse(mul), std::memory_order_relaxed);
  // Release pairs with the acquire load above (mul and inv before x).
  g_x.store(x, std::memory_order_release);
}

}  // namespace strata::internal
