// The OS layer: the only place strata talks to the kernel about memory.
//
// Contract:
//  - MapAligned(size, align) returns `size` bytes of zeroed, read-write memory
//    whose address is a multiple of `align`, or nullptr when the OS refuses.
//    REQUIRES: size and align are multiples of the page size; align is a
//    power of two. Never aborts, never allocates, leaves errno as it found it.
//  - Unmap(p, size) returns a range obtained from MapAligned (or a page-
//    aligned part of one) to the OS. Never fails for valid ranges.
//  - Purge(p, size, mode) tells the OS the contents are no longer needed; the
//    range stays mapped and reads back as zero (kDontNeed) or as either the
//    old contents or zero (kFree, which the kernel reclaims lazily and which
//    stays counted in RSS until it does). Returns false if the OS refused.
// Tests may install a Backend to simulate a refusing OS.
#ifndef STRATA_ALLOC_OS_H_
#define STRATA_ALLOC_OS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace strata::internal::os {

enum class PurgeMode { kDontNeed, kFree };

void* MapAligned(size_t size, size_t align);
void Unmap(void* p, size_t size);
bool Purge(void* p, size_t size, PurgeMode mode);
// Makes [p, p + size) read-write (accessible) or inaccessible (PROT_NONE:
// any touch faults). REQUIRES: page-aligned, inside a mapping from
// MapAligned. Returns false when the OS refused. Errno is preserved.
// (Straight to the kernel, as MapScratch: the guarded slots' only use.)
bool Protect(void* p, size_t size, bool accessible);

// Transient memory for one call's output (Scratch, scratch.h): `size`
// bytes (a multiple of the page size) of zeroed read-write memory, or
// nullptr. Straight from the kernel, not through a test's Backend, and not
// counted in GetCounters(): the statistics describe the allocator's memory,
// and this is unmapped before the call that took it returns.
void* MapScratch(size_t size);
void UnmapScratch(void* p, size_t size);

// A coarse monotonic clock in milliseconds (CLOCK_MONOTONIC_COARSE through
// the vDSO: a few ns, no syscall). Metadata that stores a time keeps its low
// 32 bits (a "since" stamp); the elapsed time is then
// static_cast<int32_t>(now - since), exact for spans under 24 days.
uint64_t NowMs();

// Reads up to cap-1 bytes of a small file (a /proc entry) into buf with raw
// syscalls and NUL-terminates them; returns the count, 0 if unreadable.
// Never allocates; errno is preserved.
size_t ReadSmallFile(const char* path, char* buf, size_t cap);

// A stretch of /proc/self/maps: consecutive lines of one kind, merged (the
// kernel splits one mapping into several lines where madvise or mlock
// changed part of it).
struct Mapping {
  enum Kind { kAnonymous, kHeap, kOther };
  uintptr_t start = 0, end = 0;  // [start, end)
  bool writable = false;         // every line of it
  // kAnonymous: no path, or a name given with prctl(PR_SET_VMA) ("[anon:
  // ...]", as glibc's decorated arenas); kHeap: "[heap]", the brk area;
  // kOther: a file, the stack, [vdso], ...
  Kind kind = kOther;
};

enum class FindResult { kFound, kNotMapped, kUnknown };

// Finds the mapping that holds address a, extended over the lines that
// follow it without a gap, of the same kind and writability, until it
// reaches `through` (or they stop). Reads /proc/self/maps with raw syscalls
// into a stack buffer; kUnknown when it cannot be read (no /proc, no file
// descriptor left). Never allocates; errno is preserved. Slow (a syscall
// per 4 KiB of the file): for rare paths only.
FindResult FindMapping(uintptr_t a, uintptr_t through, Mapping* out);

// Copies len bytes at src (in this process) to dst without faulting: false
// when any of them cannot be read (unmapped, PROT_NONE, a file mapping past
// its end). Uses process_vm_readv, or /proc/self/mem where that is refused.
// Never allocates; errno is preserved.
bool ReadMemory(const void* src, void* dst, size_t len);

// Bytes of this process resident in RAM (from /proc/self/statm, read with
// raw syscalls into a stack buffer), or 0 if unknown. Never allocates.
uint64_t ResidentBytes();

// This process's threads, from /proc/self/stat (raw syscalls, a stack
// buffer): how many there are (field 20), and whether the first thread
// has exited and lingers as a zombie (field 3), as it does until the last
// thread ends when it called pthread_exit. False when unreadable. Never
// allocates.
struct ThreadState {
  int threads = 0;
  bool leader_exited = false;
};
bool ReadThreadState(ThreadState* out);

// The calling thread's kernel thread id (gettid). Never fails; errno is
// preserved.
uint32_t CurrentThreadTid();

// True only when no thread of this process has kernel thread id `tid` now:
// the kernel says so (tgkill with signal 0 fails with ESRCH). A thread that
// is still running, or whose exit has not finished, is never reported
// exited; an id the kernel has since given to a new thread of this process
// reads as running (the safe answer). Errno is preserved.
bool ThreadExited(uint32_t tid);

// Writes all of buf to file descriptor fd, retrying on EINTR. Never
// allocates. Returns false when a write failed (errno is preserved).
// Not a cancellation point (a raw write syscall, as glibc's own
// diagnostics): strata's reports from inside malloc and free use it, so a
// cancelled thread never unwinds out of an allocator path. Whatever the
// caller holds stays held while a write blocks (a full pipe): callers hold
// no strata lock.
bool WriteAll(int fd, const char* buf, size_t len);
// The same through write(2), a cancellation point (deferred cancellation
// acts there): for the API's writes to a descriptor the program passes
// (statistics, heap profiles), which the program may cancel as it would
// its own write. REQUIRES: no strata lock held, and anything the caller
// must undo on cancellation registered with OnCancel (cancel.h).
bool WriteAllCancellable(int fd, const char* buf, size_t len);

// Aborts the process without running atexit handlers or allocating.
[[noreturn]] void Abort();

// Cumulative OS call counters (relaxed atomics; these are slow paths).
struct Counters {
  std::atomic<uint64_t> maps{0};
  std::atomic<uint64_t> map_failures{0};
  std::atomic<uint64_t> unmaps{0};
  std::atomic<uint64_t> purges{0};
  std::atomic<uint64_t> purged_bytes{0};  // bytes given back with madvise so far
  std::atomic<uint64_t> mapped_bytes{0};  // currently mapped by strata
};
Counters& GetCounters();

// Raw primitives, replaceable by tests (all-or-nothing).
struct Backend {
  // Page-aligned, zeroed, nullptr on failure; at `hint` if that range is
  // free (a hint, never MAP_FIXED), else anywhere.
  void* (*map)(void* hint, size_t size);
  void (*unmap)(void* p, size_t size);
  bool (*purge)(void* p, size_t size, PurgeMode mode);
};
// Installs `backend` (nullptr restores the real OS). Returns the previous one.
// REQUIRES: no other thread is inside strata while switching.
const Backend* SetBackendForTesting(const Backend* backend);
const Backend* RealBackend();

}  // namespace strata::internal::os

#endif  // STRATA_ALLOC_OS_H_
