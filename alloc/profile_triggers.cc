#include "alloc/profile_triggers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/base/thread_annotations.h"
#include "alloc/fd_writer.h"
#include "alloc/options.h"
#include "alloc/profile.h"
#include "threading/spin_lock.h"

namespace strata::internal {
namespace {

// SYNCHRONIZATION: g_apply_lock serialises ApplyProfileSignal. The handler
// reads g_path without a lock (it may not wait): a change of profile_file
// while a signal is being handled may give it a torn name, which it opens
// or fails to open like any other. g_seq: relaxed counter.
constinit threading::SpinLock g_apply_lock;
int g_installed ABSL_GUARDED_BY(g_apply_lock) = 0;  // the signal our handler is on, or 0
struct sigaction g_previous ABSL_GUARDED_BY(g_apply_lock);
char g_path[kMaxOptionString];
std::atomic<uint64_t> g_seq{0};

// Appends s, or decimal v, to buf at *len (bounded by cap, NUL-terminated).
void Append(char* buf, size_t* len, size_t cap, const char* s) {
  while (*s != '\0' && *len + 1 < cap) buf[(*len)++] = *s++;
  buf[*len] = '\0';
}
void AppendUint(char* buf, size_t* len, size_t cap, uint64_t v) {
  char digits[kMaxDecimal + 1];
  digits[FormatDecimal(v, digits)] = '\0';
  Append(buf, len, cap, digits);
}

void OnProfileSignal(int) {
  const int saved_errno = errno;
  const uint64_t n = g_seq.fetch_add(1, std::memory_order_relaxed) + 1;
  char path[kMaxOptionString + 48];
  size_t len = 0;
  path[0] = '\0';
  if (g_path[0] == '/') {
    Append(path, &len, sizeof(path), g_path);
    Append(path, &len, sizeof(path), ".");
  } else {
    Append(path, &len, sizeof(path), "/tmp/strata.");
    AppendUint(path, &len, sizeof(path), static_cast<uint64_t>(getpid()));
    Append(path, &len, sizeof(path), ".");
  }
  AppendUint(path, &len, sizeof(path), n);
  if (g_path[0] != '/') Append(path, &len, sizeof(path), ".heap");
  const int fd = static_cast<int>(
      syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  FdWriter w(2);
  if (fd < 0) {
    w.Str("strata: heap profile not written: cannot open ").Str(path).Str("\n");
  } else {
    const bool ok = WriteHeapProfileFromSignal(fd);
    syscall(SYS_close, fd);
    if (ok) {
      w.Str("strata: heap profile written to ").Str(path).Str("\n");
    } else {
      w.Str("strata: heap profile ").Str(path).Str(" not complete: the profile stayed busy "
            "(the interrupted thread may hold it) or a write failed; signal again\n");
    }
  }
  errno = saved_errno;
}

// Under g_apply_lock: installs the handler on the signal the option names
// (if it changed). Returns the signal it could not handle, or 0.
int ApplyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_apply_lock) {
  GetStringOption(Option::kProfileFile, g_path, sizeof(g_path));
  const int want = static_cast<int>(GetOption(Option::kProfileSignal));
  if (want == g_installed) return 0;
  if (g_installed != 0) {
    sigaction(g_installed, &g_previous, nullptr);
    g_installed = 0;
  }
  if (want == 0) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &OnProfileSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(want, &sa, &g_previous) != 0) return want;
  g_installed = want;
  return 0;
}

}  // namespace

void ApplyProfileSignal() {
  int refused;
  {
    threading::SpinLockHolder hold(&g_apply_lock);
    refused = ApplyLocked();
  }
  // Written with the lock released (a blocked stderr must not hold it).
  if (refused != 0) {
    FdWriter w(2);
    w.Str("strata: profile_signal=").Uint(static_cast<uint64_t>(refused))
        .Str(": cannot handle that signal; no handler installed\n");
  }
}

void WriteProfilesAtExit() {
  char path[kMaxOptionString + 8];
  GetStringOption(Option::kProfileFile, path, kMaxOptionString);
  if (path[0] != '/') return;
  WriteHeapProfileToFile(path, HeapProfileView::kLive);
  strcat(path, ".peak");
  WriteHeapProfileToFile(path, HeapProfileView::kPeak);
}

}  // namespace strata::internal
