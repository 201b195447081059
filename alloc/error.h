// Reports misuse of the allocator (invalid or double free, wrong size).
// Prints one line to stderr naming the operation, the address and the
// error; then aborts (the default) or, in count mode, counts the error and
// lets the caller skip the operation so that nothing is corrupted.
// Never allocates.
#ifndef STRATA_ALLOC_ERROR_H_
#define STRATA_ALLOC_ERROR_H_

#include <cstdint>

#include "absl/base/attributes.h"

namespace strata::internal {

enum class ErrorMode : uint32_t {
  kAbort = 1,  // print and abort (default)
  kCount = 2,  // print, count, ignore the bad call
};

// The mode in force: the error_mode option (STRATA_ERROR_MODE,
// --strata_error_mode, or the API; see options.h). Thread-safety: any thread.
ErrorMode GetErrorMode();
void SetErrorMode(ErrorMode mode);

// Errors reported so far (in count mode; abort mode never returns).
uint64_t ErrorCount();

// More lines a report writes after its one line, before it aborts (the
// stacks of a guarded block, guarded.h): write(fd, arg) writes them with
// no lock held and without allocating.
struct ReportDetail {
  void (*write)(int fd, const void* arg);
  const void* arg;
};

// `what` is a fixed message such as "double free"; `op` the entry point;
// `detail`, when set, adds its lines after the one line.
// Returns only in count mode.
ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void ReportInvalidFree(const void* p, const char* what,
                                                                   const char* op,
                                                                   const ReportDetail* detail = nullptr);

// Damage found in strata's own structures (a free-list link overwritten by
// the program): one line naming the address; returns only in count mode,
// where the caller drops what it cannot trust.
ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void ReportCorruption(const void* p, const char* what);

// A failure the program cannot go on from, whatever the error mode: prints
// "strata: <before><n><after>" as one line and aborts.
[[noreturn]] ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void ReportFatal(const char* before, uint64_t n,
                                                                         const char* after);

// A signal handler re-entered strata: it called malloc, free or another
// entry point while its thread was inside one (neither is async-signal-
// safe, in strata as in glibc). Prints the one line
//   strata: malloc re-entered from a signal handler (...)
// and aborts, whatever the error mode. Called where that is certain: a
// spin lock taken by the thread that holds it (the interrupted code holds
// it; threading::SpinLock's self-deadlock handler), a slow path entered
// by a handler that interrupted another (reentry.h), and misuse.h's reports
// when made inside a handler that interrupted strata (what looked like
// misuse is then the interrupted operation's half-done state, not the
// program's error).
[[noreturn]] ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void ReportReentry();

// Start-up (init.h): makes ReportReentry every spin lock's self-deadlock
// handler.
void InstallReentryReport();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_ERROR_H_
