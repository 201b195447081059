// Linux implementation of the OS layer (see os.h for the contract).
#include "alloc/os.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

namespace strata::internal::os {
namespace {

// No MAP_NORESERVE: the kernel's overcommit policy (vm.overcommit_memory)
// then judges every mapping as it judges glibc's, so a request the system
// could never back (malloc(64 TiB) on a 24 GiB machine under the default
// heuristic) fails with ENOMEM instead of succeeding and being OOM-killed
// on first touch. Arenas are reserved 4 MiB at a time, so strict
// accounting (mode 2) charges at most that much beyond what is carved.
void* RealMap(void* hint, size_t size) {
  void* p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void RealUnmap(void* p, size_t size) { munmap(p, size); }

bool RealPurge(void* p, size_t size, PurgeMode mode) {
  return madvise(p, size, mode == PurgeMode::kFree ? MADV_FREE : MADV_DONTNEED) == 0;
}

constexpr Backend kRealBackend = {&RealMap, &RealUnmap, &RealPurge};

// Relaxed: switched only by tests while no other thread is inside strata.
std::atomic<const Backend*> g_backend{&kRealBackend};

Counters g_counters;

// Where the next aligned mapping is tried first: just below the last one,
// rounded down to the alignment. Linux places mappings top-down, so that
// range is usually free and the mapping comes back aligned: one mmap
// instead of an over-sized mmap and two trimming munmaps (each munmap of a
// multithreaded process may cost a TLB-shootdown interrupt per CPU).
// Relaxed: a hint only; a wrong one costs one extra syscall.
std::atomic<uintptr_t> g_hint{0};

const Backend& Current() { return *g_backend.load(std::memory_order_relaxed); }

}  // namespace

Counters& GetCounters() { return g_counters; }

const Backend* SetBackendForTesting(const Backend* backend) {
  return g_backend.exchange(backend ? backend : &kRealBackend, std::memory_order_relaxed);
}

const Backend* RealBackend() { return &kRealBackend; }

void* MapScratch(size_t size) {
  const int saved_errno = errno;
  void* p = RealMap(nullptr, size);
  errno = saved_errno;
  return p;
}

void UnmapScratch(void* p, size_t size) { RealUnmap(p, size); }

void* MapAligned(size_t size, size_t align) {
  const int saved_errno = errno;
  // Over-map by `align` and trim both ends: three syscalls in the worst case,
  // which is why arenas are reserved in batches.
  const size_t page = 4096;
  void* result = nullptr;
  const uintptr_t last = g_hint.load(std::memory_order_relaxed);
  if (align > page && last > size + align) {
    const uintptr_t want = (last - size) & ~(uintptr_t{align} - 1);
    char* got = static_cast<char*>(Current().map(reinterpret_cast<void*>(want), size));
    if (got != nullptr && (reinterpret_cast<uintptr_t>(got) & (align - 1)) == 0) {
      result = got;
    } else if (got != nullptr) {
      Current().unmap(got, size);  // placed elsewhere, unaligned: the slow way
    }
  }
  if (result == nullptr && size + align >= size) {  // overflow check
    const size_t span = align > page ? size + align : size;
    char* raw = static_cast<char*>(Current().map(nullptr, span));
    if (raw != nullptr) {
      const uintptr_t start = (reinterpret_cast<uintptr_t>(raw) + align - 1) & ~(uintptr_t{align} - 1);
      char* aligned = reinterpret_cast<char*>(start);
      if (aligned > raw) Current().unmap(raw, static_cast<size_t>(aligned - raw));
      char* end = raw + span;
      if (aligned + size < end) Current().unmap(aligned + size, static_cast<size_t>(end - (aligned + size)));
      result = aligned;
    }
  }
  // Relaxed: statistics only (and the hint, see g_hint).
  if (result != nullptr) {
    g_hint.store(reinterpret_cast<uintptr_t>(result), std::memory_order_relaxed);
    g_counters.maps.fetch_add(1, std::memory_order_relaxed);
    g_counters.mapped_bytes.fetch_add(size, std::memory_order_relaxed);
  } else {
    g_counters.map_failures.fetch_add(1, std::memory_order_relaxed);
  }
  errno = saved_errno;
  return result;
}

void Unmap(void* p, size_t size) {
  const int saved_errno = errno;
  Current().unmap(p, size);
  // Relaxed: statistics only.
  g_counters.unmaps.fetch_add(1, std::memory_order_relaxed);
  g_counters.mapped_bytes.fetch_sub(size, std::memory_order_relaxed);
  errno = saved_errno;
}

bool Purge(void* p, size_t size, PurgeMode mode) {
  const int saved_errno = errno;
  const bool ok = Current().purge(p, size, mode);
  // Relaxed: statistics only.
  g_counters.purges.fetch_add(1, std::memory_order_relaxed);
  if (ok) g_counters.purged_bytes.fetch_add(size, std::memory_order_relaxed);
  errno = saved_errno;
  return ok;
}

bool Protect(void* p, size_t size, bool accessible) {
  const int saved_errno = errno;
  const bool ok = mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
  errno = saved_errno;
  return ok;
}

uint64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

size_t ReadSmallFile(const char* path, char* buf, size_t cap) {
  const int saved_errno = errno;
  size_t len = 0;
  const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
  if (fd >= 0) {
    const ssize_t n = syscall(SYS_read, fd, buf, cap - 1);
    syscall(SYS_close, fd);
    if (n > 0) len = static_cast<size_t>(n);
  }
  buf[len] = '\0';
  errno = saved_errno;
  return len;
}

namespace {

// Parses "start-end perms offset dev inode [path]" (one line, no newline).
bool ParseMapsLine(const char* s, const char* e, Mapping* out) {
  auto hex = [&](uintptr_t* v) {
    *v = 0;
    bool any = false;
    while (s < e) {
      const char c = *s;
      const int d = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
      if (d < 0) break;
      *v = *v * 16 + static_cast<uintptr_t>(d);
      any = true;
      ++s;
    }
    return any;
  };
  if (!hex(&out->start) || s >= e || *s++ != '-' || !hex(&out->end)) return false;
  if (s >= e || *s++ != ' ') return false;
  out->writable = s + 1 < e && s[1] == 'w';
  // Skip perms, offset, dev, inode: four fields.
  for (int field = 0; field < 4 && s < e; ++field) {
    while (s < e && *s != ' ') ++s;
    while (s < e && *s == ' ') ++s;
  }
  if (s == e || (e - s >= 6 && memcmp(s, "[anon:", 6) == 0)) {
    out->kind = Mapping::kAnonymous;
  } else if (e - s >= 6 && memcmp(s, "[heap]", 6) == 0) {
    out->kind = Mapping::kHeap;
  } else {
    out->kind = Mapping::kOther;
  }
  return true;
}

}  // namespace

FindResult FindMapping(uintptr_t a, uintptr_t through, Mapping* out) {
  const int saved_errno = errno;
  const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (fd < 0) {
    errno = saved_errno;
    return FindResult::kUnknown;
  }
  char buf[4096];
  size_t len = 0;
  bool found = false, done = false;
  bool skipping = false;  // inside the tail of a line longer than buf
  while (!done) {
    const ssize_t n = syscall(SYS_read, fd, buf + len, sizeof(buf) - len);
    if (n <= 0) break;
    len += static_cast<size_t>(n);
    size_t consumed = 0;
    for (;;) {
      char* nl = static_cast<char*>(memchr(buf + consumed, '\n', len - consumed));
      // A line that fills the buffer (a very long path): its addresses come
      // first, so its prefix is parsed as the line; the rest is skipped.
      const bool overlong = nl == nullptr && consumed == 0 && len == sizeof(buf);
      if (nl == nullptr && !overlong) break;
      char* line_end = overlong ? buf + len : nl;
      Mapping m;
      if (!skipping && ParseMapsLine(buf + consumed, line_end, &m)) {
        if (!found) {
          // Lines are sorted by address: past a, nothing further can hold it.
          if (a < m.start) {
            done = true;
          } else if (a < m.end) {
            *out = m;
            found = true;
            done = out->end >= through;
          }
        } else if (m.start == out->end && m.kind == out->kind && m.writable == out->writable) {
          out->end = m.end;
          done = out->end >= through;
        } else {
          done = true;
        }
        if (done) break;
      }
      skipping = overlong;
      consumed = overlong ? len : static_cast<size_t>(nl + 1 - buf);
      if (overlong) break;
    }
    memmove(buf, buf + consumed, len - consumed);
    len -= consumed;
  }
  syscall(SYS_close, fd);
  errno = saved_errno;
  return found ? FindResult::kFound : FindResult::kNotMapped;
}

bool ReadMemory(const void* src, void* dst, size_t len) {
  const int saved_errno = errno;
  struct iovec local = {dst, len};
  struct iovec remote = {const_cast<void*>(src), len};
  ssize_t n = syscall(SYS_process_vm_readv, syscall(SYS_getpid), &local, 1UL, &remote, 1UL, 0UL);
  if (n < 0 && errno != EFAULT) {
    // Refused (a seccomp filter, an old kernel): the same read through
    // /proc/self/mem, which fails with EIO where memory cannot be read.
    const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/mem", O_RDONLY | O_CLOEXEC));
    if (fd >= 0) {
      n = syscall(SYS_pread64, fd, dst, len, reinterpret_cast<uintptr_t>(src));
      syscall(SYS_close, fd);
    }
  }
  errno = saved_errno;
  return n == static_cast<ssize_t>(len);
}

bool ReadThreadState(ThreadState* out) {
  char buf[512];
  if (ReadSmallFile("/proc/self/stat", buf, sizeof(buf)) == 0) return false;
  // The command name (field 2) may hold spaces: count fields after its ')'.
  const char* s = buf;
  for (const char* p = buf; *p != '\0'; ++p) {
    if (*p == ')') s = p + 1;
  }
  const char leader_state = s[0] == ' ' ? s[1] : '\0';  // field 3
  int field = 2;
  while (*s != '\0' && field < 20) {
    if (*s == ' ') ++field;
    ++s;
  }
  if (field != 20 || *s < '0' || *s > '9') return false;
  int threads = 0;
  while (*s >= '0' && *s <= '9') threads = threads * 10 + (*s++ - '0');
  out->threads = threads;
  out->leader_exited = leader_state == 'Z';
  return true;
}

uint64_t ResidentBytes() {
  char buf[128];
  if (ReadSmallFile("/proc/self/statm", buf, sizeof(buf)) == 0) return 0;
  // "size resident shared ...": the second field, in pages.
  const char* s = buf;
  while (*s != '\0' && *s != ' ') ++s;
  while (*s == ' ') ++s;
  uint64_t pages = 0;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + static_cast<uint64_t>(*s++ - '0');
  return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint32_t CurrentThreadTid() {
  // gettid cannot fail, so errno is untouched.
  return static_cast<uint32_t>(syscall(SYS_gettid));
}

bool ThreadExited(uint32_t tid) {
  const int saved_errno = errno;
  // Signal 0 sends nothing: only the existence (and permission) check runs.
  const long rc = syscall(SYS_tgkill, syscall(SYS_getpid), static_cast<long>(tid), 0);
  const bool exited = rc != 0 && errno == ESRCH;
  errno = saved_errno;
  return exited;
}

namespace {

// write(2) or the raw syscall (see WriteAll and WriteAllCancellable).
bool WriteAllBy(bool cancellable, int fd, const char* buf, size_t len) {
  const int saved_errno = errno;
  bool ok = true;
  while (len > 0) {
    const ssize_t n = cancellable ? write(fd, buf, len) : syscall(SYS_write, fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      ok = false;
      break;
    }
    buf += n;
    len -= static_cast<size_t>(n);
  }
  errno = saved_errno;
  return ok;
}

}  // namespace

bool WriteAll(int fd, const char* buf, size_t len) { return WriteAllBy(false, fd, buf, len); }

bool WriteAllCancellable(int fd, const char* buf, size_t len) { return WriteAllBy(true, fd, buf, len); }

void Abort() {
  // abort() raises SIGABRT without allocating; restore the default action so
  // a handler cannot bring us back into a corrupted allocator.
  signal(SIGABRT, SIG_DFL);
  abort();
}

}  // namespace strata::internal::os
