#include "alloc/error.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "alloc/fd_writer.h"
#include "alloc/os.h"

namespace strata::internal {
namespace {

// 0 = not read from the environment yet. Relaxed: a mode switch needs no
// ordering with other memory; getenv does not allocate.
std::atomic<uint32_t> g_mode{0};
std::atomic<uint64_t> g_errors{0};
std::atomic<ForeignFreeHook> g_foreign_hook{nullptr};

}  // namespace

ErrorMode GetErrorMode() {
  uint32_t mode = g_mode.load(std::memory_order_relaxed);
  if (mode != 0) return static_cast<ErrorMode>(mode);
  mode = static_cast<uint32_t>(ErrorMode::kAbort);
  if (const char* env = getenv("STRATA_ERROR_MODE")) {
    if (strcmp(env, "count") == 0) {
      mode = static_cast<uint32_t>(ErrorMode::kCount);
    } else if (strcmp(env, "abort") != 0) {
      FdWriter w(2);
      w.Str("strata: STRATA_ERROR_MODE='").Str(env).Str(
          "' is not one of: abort, count; keeping abort\n");
    }
  }
  uint32_t expected = 0;
  // Relaxed: whoever wins, every reader then sees a valid mode.
  g_mode.compare_exchange_strong(expected, mode, std::memory_order_relaxed);
  return static_cast<ErrorMode>(g_mode.load(std::memory_order_relaxed));
}

void SetErrorMode(ErrorMode mode) {
  // Relaxed: see g_mode.
  g_mode.store(static_cast<uint32_t>(mode), std::memory_order_relaxed);
}

void SetForeignFreeHook(ForeignFreeHook hook) {
  // Release pairs with the acquire in GetForeignFreeHook(): whatever the
  // hook needs was set up before it is installed.
  g_foreign_hook.store(hook, std::memory_order_release);
}

ForeignFreeHook GetForeignFreeHook() {
  // Acquire pairs with the release in SetForeignFreeHook().
  return g_foreign_hook.load(std::memory_order_acquire);
}

uint64_t ErrorCount() {
  // Relaxed: statistics only.
  return g_errors.load(std::memory_order_relaxed);
}

void ReportInvalidFree(const void* p, const char* what, const char* op) {
  const bool count = GetErrorMode() == ErrorMode::kCount;
  {
    FdWriter w(2);
    w.Str("strata: ").Str(op).Str("(").Hex(reinterpret_cast<uintptr_t>(p)).Str("): ").Str(what);
    w.Str(count ? " (ignored; STRATA_ERROR_MODE=count)\n" : "\n");
  }
  if (!count) os::Abort();
  // Relaxed: statistics only.
  g_errors.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace strata::internal
