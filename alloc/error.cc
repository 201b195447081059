#include "alloc/error.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <sched.h>

#include "alloc/fd_writer.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "threading/spin_lock.h"

namespace strata::internal {
namespace {

// Relaxed counter: see error.h.
std::atomic<uint64_t> g_errors{0};
std::atomic<bool> g_aborting{false};  // abort mode: a report is being written

// Called before a report that aborts: the first one prints its line; any
// other thread that meets an error meanwhile waits for the abort to end
// the process, so that the process prints one line.
void ClaimTheAbortingReport() {
  // Relaxed: the flag orders nothing else.
  if (g_aborting.exchange(true, std::memory_order_relaxed)) {
    for (;;) sched_yield();
  }
}

}  // namespace

ErrorMode GetErrorMode() {
  // The registry's error_mode: index 0 = abort, 1 = count.
  return GetOption(Option::kErrorMode) == 1 ? ErrorMode::kCount : ErrorMode::kAbort;
}

void SetErrorMode(ErrorMode mode) {
  SetOption(Option::kErrorMode, mode == ErrorMode::kCount ? 1 : 0);
}


uint64_t ErrorCount() {
  // Relaxed: statistics only.
  return g_errors.load(std::memory_order_relaxed);
}

namespace {

// One line, "strata: <op>(<p>): <what>" (or "strata: heap corruption at
// <p>: <what>" without an op), then abort or count.
void Report(const char* op, const void* p, const char* what, const ReportDetail* detail = nullptr) {
  const bool count = GetErrorMode() == ErrorMode::kCount;
  if (!count) ClaimTheAbortingReport();
  {
    FdWriter w(2);
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (op != nullptr) {
      w.Str("strata: ").Str(op).Str("(").Hex(a).Str("): ").Str(what);
    } else {
      w.Str("strata: heap corruption at ").Hex(a).Str(": ").Str(what);
    }
    w.Str(count ? " (ignored: error_mode=count)\n" : "\n");
  }
  if (detail != nullptr) detail->write(2, detail->arg);
  if (!count) os::Abort();
  // Relaxed: statistics only.
  g_errors.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void ReportInvalidFree(const void* p, const char* what, const char* op, const ReportDetail* detail) {
  Report(op, p, what, detail);
}

void ReportCorruption(const void* p, const char* what) { Report(nullptr, p, what); }

void ReportReentry() {
  ClaimTheAbortingReport();
  {
    FdWriter w(2);
    w.Str("strata: malloc re-entered from a signal handler (a handler called malloc or free "
          "while its thread was inside one; neither is async-signal-safe)\n");
  }
  os::Abort();
}

void InstallReentryReport() { threading::SpinLock::SetSelfDeadlockHandler(&ReportReentry); }

void ReportFatal(const char* before, uint64_t n, const char* after) {
  ClaimTheAbortingReport();
  {
    FdWriter w(2);
    w.Str("strata: ").Str(before).Uint(n).Str(after).Str("\n");
  }
  os::Abort();
}

}  // namespace strata::internal
