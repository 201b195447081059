#include "alloc/foreign_hook.h"

#include <atomic>

namespace strata::internal {
namespace {

std::atomic<ForeignFreeHook> g_foreign_hook{nullptr};
std::atomic<uint64_t> g_foreign_returned{0};

}  // namespace

void SetForeignFreeHook(ForeignFreeHook hook) {
  // Release pairs with the acquire in GetForeignFreeHook(): whatever the
  // hook needs was set up before it is installed.
  g_foreign_hook.store(hook, std::memory_order_release);
}

ForeignFreeHook GetForeignFreeHook() {
  // Acquire pairs with the release in SetForeignFreeHook().
  return g_foreign_hook.load(std::memory_order_acquire);
}

void CountForeignFree() {
  // Relaxed: statistics only.
  g_foreign_returned.fetch_add(1, std::memory_order_relaxed);
}

uint64_t ForeignFreesHandedBack() {
  // Relaxed: statistics only.
  return g_foreign_returned.load(std::memory_order_relaxed);
}

}  // namespace strata::internal
