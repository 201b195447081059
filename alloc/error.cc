#include "alloc/error.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "alloc/fd_writer.h"
#include "alloc/options.h"
#include "alloc/os.h"

namespace strata::internal {
namespace {

// Relaxed counters and hook: see error.h.
std::atomic<uint64_t> g_errors{0};
std::atomic<ForeignFreeHook> g_foreign_hook{nullptr};
std::atomic<uint64_t> g_foreign_returned{0};
std::atomic<uint64_t> g_foreign_ignored{0};

}  // namespace

ErrorMode GetErrorMode() {
  // The registry's error_mode: index 0 = abort, 1 = count.
  return GetOption(Option::kErrorMode) == 1 ? ErrorMode::kCount : ErrorMode::kAbort;
}

void SetErrorMode(ErrorMode mode) {
  SetOption(Option::kErrorMode, mode == ErrorMode::kCount ? 1 : 0);
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

void CountForeignFree(bool returned) {
  // Relaxed: statistics only.
  (returned ? g_foreign_returned : g_foreign_ignored).fetch_add(1, std::memory_order_relaxed);
}

uint64_t ForeignFreesReturned() {
  // Relaxed: statistics only.
  return g_foreign_returned.load(std::memory_order_relaxed);
}

uint64_t ForeignFreesIgnored() {
  // Relaxed: statistics only.
  return g_foreign_ignored.load(std::memory_order_relaxed);
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
    w.Str(count ? " (ignored: error_mode=count)\n" : "\n");
  }
  if (!count) os::Abort();
  // Relaxed: statistics only.
  g_errors.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace strata::internal
