// The heap profile's public API and its one output format: the legacy
// heap-profile text that google-pprof and Go's pprof read.
//
//   heap profile:   <n>: <bytes> [  <n>: <bytes>] @ heapprofile
//   <n>: <bytes> [<n>: <bytes>] @ <pc> <pc> ...        one line per stack
//   ...
//
//   MAPPED_LIBRARIES:
//   <a copy of /proc/self/maps, for symbolisation>
//
// The first pair of each line is pprof's in-use columns, the bracketed
// pair its alloc columns (heap_profile.h says what each view puts there).
// pprof takes every address but the first as a return address and
// subtracts 1 to find the call; strata writes the first as its call too.
#include "alloc/profile.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "alloc/cancel.h"
#include "alloc/config.h"
#include "alloc/fd_writer.h"
#include "alloc/heap_profile.h"
#include "alloc/os.h"
#include "alloc/profile_triggers.h"

namespace strata {
namespace {

using internal::FdWriter;
using internal::ProfileRow;
using internal::ProfileTotals;
using internal::ProfileView;
using internal::WriteKind;

// OnCancel's cleanup for a descriptor strata opened (arg: the int).
void CloseOnCancel(void* arg) { syscall(SYS_close, *static_cast<int*>(arg)); }

void WriteHead(const ProfileTotals& t, void* arg) {
  auto* w = static_cast<FdWriter*>(arg);
  w->Str("heap profile: ").Uint(t.count, 6).Str(": ").Uint(t.bytes, 8).Str(" [")
      .Uint(t.total_count, 6).Str(": ").Uint(t.total_bytes, 8).Str("] @ heapprofile\n");
}

void WriteRow(const ProfileRow& r, void* arg) {
  auto* w = static_cast<FdWriter*>(arg);
  w->Uint(r.count, 6).Str(": ").Uint(r.bytes, 8).Str(" [").Uint(r.total_count, 6).Str(": ")
      .Uint(r.total_bytes, 8).Str("] @");
  for (size_t i = 0; i < r.depth; ++i) w->Char(' ').Hex(i == 0 ? r.pcs[i] - 1 : r.pcs[i]);
  w->Char('\n');
}

// Copies /proc/self/maps to fd, a page at a time (no allocation). False
// when it could not be read or written. A cancellable write (kind) may be
// where the thread is cancelled: the maps' descriptor is closed then too.
bool CopyMaps(int fd, WriteKind kind) {
  int in = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (in < 0) return false;
  char buf[4096];
  bool ok = true;
  internal::OnCancel(&CloseOnCancel, &in, [&] {
    for (;;) {
      const ssize_t n = syscall(SYS_read, in, buf, sizeof(buf));
      if (n < 0) ok = false;
      if (n <= 0) break;
      const auto len = static_cast<size_t>(n);
      if (!(kind == WriteKind::kCancellable ? internal::os::WriteAllCancellable(fd, buf, len)
                                            : internal::os::WriteAll(fd, buf, len))) {
        ok = false;
        break;
      }
    }
  });
  syscall(SYS_close, in);
  return ok;
}

// The whole profile: the view's rows, then the maps. False when a write
// failed or (try_only) the profile stayed busy. No lock is held while it
// writes (VisitProfile).
bool WriteAllOf(int fd, ProfileView view, bool try_only, WriteKind kind) {
  FdWriter w(fd, kind);
  if (!internal::VisitProfile(view, {&WriteHead, &WriteRow, &w}, try_only)) return false;
  w.Str("\nMAPPED_LIBRARIES:\n");
  if (!w.FlushOk()) return false;
  return CopyMaps(fd, kind);
}

bool ParseView(const char* name, HeapProfileView* out) {
  if (name == nullptr) return false;
  if (strcmp(name, "live") == 0) {
    *out = HeapProfileView::kLive;
  } else if (strcmp(name, "peak") == 0) {
    *out = HeapProfileView::kPeak;
  } else if (strcmp(name, "since-mark") == 0) {
    *out = HeapProfileView::kSinceMark;
  } else {
    return false;
  }
  return true;
}

}  // namespace

namespace internal {
bool WriteHeapProfileFromSignal(int fd) {
  // Not cancellable: the handler has a file of its own open.
  return WriteAllOf(fd, ProfileView::kLive, /*try_only=*/true, WriteKind::kDiagnostic);
}
}  // namespace internal

bool WriteHeapProfile(int fd, HeapProfileView view) noexcept {
  return WriteAllOf(fd, static_cast<ProfileView>(view), /*try_only=*/false, WriteKind::kCancellable);
}

bool WriteHeapProfileToFile(const char* path, HeapProfileView view) noexcept {
  if (path == nullptr) return false;
  int fd = static_cast<int>(
      syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd < 0) return false;
  bool ok = false;
  internal::OnCancel(&CloseOnCancel, &fd, [&] { ok = WriteHeapProfile(fd, view); });
  return syscall(SYS_close, fd) == 0 && ok;
}

void MarkHeapProfile() noexcept { internal::ProfileMark(); }

HeapProfileSummary GetHeapProfileSummary() noexcept {
  const ProfileTotals live = internal::GetProfileTotals(ProfileView::kLive);
  const ProfileTotals peak = internal::GetProfileTotals(ProfileView::kPeak);
  return {live.bytes, live.count, peak.bytes, live.samples_live, live.samples_taken,
          live.samples_dropped, live.buckets};
}

}  // namespace strata

extern "C" {

int strata_profile_write(int fd, const char* view) {
  strata::HeapProfileView v;
  if (!strata::ParseView(view, &v)) return -1;
  return strata::WriteHeapProfile(fd, v) ? 0 : -1;
}

int strata_profile_write_file(const char* path, const char* view) {
  strata::HeapProfileView v;
  if (!strata::ParseView(view, &v)) return -1;
  return strata::WriteHeapProfileToFile(path, v) ? 0 : -1;
}

void strata_profile_mark(void) { strata::MarkHeapProfile(); }

}  // extern "C"
