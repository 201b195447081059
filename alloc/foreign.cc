// Recognising glibc's blocks (see foreign.h).
//
// glibc (x86-64) puts a 16-byte header before each block: the previous
// chunk's size (or, for a chunk it mapped alone, the chunk's offset in its
// mapping), then the chunk's size with three flags in its low bits:
// PREV_INUSE (1), IS_MMAPPED (2), NON_MAIN_ARENA (4). A block is accepted as
// glibc's only when its header, its neighbour and its mapping agree:
//  - mapped alone (flags exactly IS_MMAPPED): the mapping starts at a page
//    boundary `prev_size` before the chunk, spans whole pages, and lies in
//    anonymous writable memory;
//  - main arena (no flag but PREV_INUSE): the chunk lies in [heap], and the
//    next chunk's header says this one is in use;
//  - a thread arena (NON_MAIN_ARENA): as the main arena, in anonymous memory
//    whose 64 MiB-aligned start holds the heap's header (heap_info: arena,
//    previous heap, size) that covers the chunk.
// Every word is read with os::ReadMemory, which cannot fault: a pointer into
// a guard page, a PROT_NONE or pkey-protected region, or a file mapping past
// its end is simply not glibc's. The maps lines are merged where the kernel
// split one mapping (madvise, mlock). Where /proc/self/maps cannot be read,
// the headers alone decide.
//
// What this cannot tell (foreign.h's callers document it): a glibc block
// that glibc itself already freed (its tcache and fastbins keep the header
// of a block in use; glibc's own free then judges the double free), a
// pointer inside a glibc block preceded by words that happen to form a
// chunk header, and a main arena that glibc had to place outside [heap]
// (when brk is refused), whose blocks are reported as not glibc's.
#include "alloc/foreign.h"

#include <dlfcn.h>

#include <atomic>

#include "alloc/error.h"
#include "alloc/foreign_hook.h"
#include "alloc/os.h"

namespace strata::internal {
namespace {

constexpr uintptr_t kPrevInUse = 1, kIsMmapped = 2, kNonMainArena = 4;
constexpr uintptr_t kFlags = kPrevInUse | kIsMmapped | kNonMainArena;
constexpr size_t kChunkHeader = 2 * sizeof(size_t);
constexpr size_t kMinChunk = 4 * sizeof(size_t);
constexpr uintptr_t kChunkAlign = 16;
constexpr uintptr_t kPage = 4096;
constexpr uintptr_t kThreadHeapMax = uintptr_t{64} << 20;  // glibc's HEAP_MAX_SIZE

bool ReadWords(uintptr_t a, uintptr_t* words, size_t n) {
  return os::ReadMemory(reinterpret_cast<const void*>(a), words, n * sizeof(uintptr_t));
}

// Finds the memory [chunk, through) lies in; false when it is not one
// writable stretch of `kind`. Unknown (no /proc) passes: headers decide.
bool InMemoryOf(uintptr_t chunk, uintptr_t through, os::Mapping::Kind kind) {
  os::Mapping m;
  switch (os::FindMapping(chunk, through, &m)) {
    case os::FindResult::kUnknown:
      return true;
    case os::FindResult::kNotMapped:
      return false;
    case os::FindResult::kFound:
      break;
  }
  return m.kind == kind && m.writable && m.end >= through;
}

bool IsMappedChunk(uintptr_t chunk, uintptr_t offset, uintptr_t size) {
  // prev_size is the chunk's offset in its own mapping.
  if (size < kPage || offset > chunk || (chunk - offset) % kPage != 0 || (offset + size) % kPage != 0) {
    return false;
  }
  if (size > ~uintptr_t{0} - chunk) return false;
  return InMemoryOf(chunk - offset, chunk + size, os::Mapping::kAnonymous);
}

bool IsArenaChunk(uintptr_t chunk, uintptr_t size, bool main_arena) {
  if (size < kMinChunk || size % kChunkAlign != 0 || size > ~uintptr_t{0} - chunk - kChunkHeader) {
    return false;
  }
  // The next chunk's header records that this one is in use.
  uintptr_t next_size;
  if (!ReadWords(chunk + size + sizeof(size_t), &next_size, 1) || (next_size & kPrevInUse) == 0) {
    return false;
  }
  const uintptr_t through = chunk + size + kChunkHeader;
  if (main_arena) return InMemoryOf(chunk, through, os::Mapping::kHeap);
  // heap_info, at the heap's 64 MiB-aligned start: arena, previous heap,
  // size (bytes of the heap in use).
  const uintptr_t heap = chunk & ~(kThreadHeapMax - 1);
  uintptr_t info[3];
  if (!ReadWords(heap, info, 3)) return false;
  const uintptr_t arena = info[0], heap_size = info[2];
  if (arena == 0 || heap_size > kThreadHeapMax || heap_size % kPage != 0 || through > heap + heap_size) {
    return false;
  }
  return InMemoryOf(heap, through, os::Mapping::kAnonymous);
}

// glibc's own entry points: looked up in libc itself (RTLD_NEXT could find
// another allocator preloaded after strata).
void* GlibcSymbol(const char* name) {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == nullptr) return nullptr;  // a static program: no glibc allocator
  void* f = dlsym(libc, name);
  dlclose(libc);  // RTLD_NOLOAD took a reference; libc stays loaded
  return f;
}

template <typename Fn>
Fn GlibcFunction(std::atomic<Fn>& cache, const char* name) {
  // Relaxed: a function pointer; dlsym gives every thread the same one.
  Fn f = cache.load(std::memory_order_relaxed);
  if (f == nullptr) {
    // (dlsym may call our malloc; that is fine, it never reaches foreign
    // memory.)
    f = reinterpret_cast<Fn>(GlibcSymbol(name));
    cache.store(f, std::memory_order_relaxed);
  }
  return f;
}

using FreeFn = void (*)(void*);
using UsableFn = size_t (*)(void*);
std::atomic<FreeFn> g_glibc_free{nullptr};
std::atomic<UsableFn> g_glibc_usable{nullptr};

}  // namespace

bool IsGlibcBlock(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (a % kChunkAlign != 0 || a < kChunkHeader) return false;
  const uintptr_t chunk = a - kChunkHeader;
  uintptr_t header[2];  // prev_size, size | flags
  if (!ReadWords(chunk, header, 2)) return false;
  const uintptr_t size = header[1] & ~kFlags;
  if ((header[1] & kFlags) == kIsMmapped) return IsMappedChunk(chunk, header[0], size);
  if ((header[1] & kIsMmapped) != 0) return false;
  return IsArenaChunk(chunk, size, (header[1] & kNonMainArena) == 0);
}

bool HandBackToGlibc(void* p) {
  FreeFn f = GlibcFunction(g_glibc_free, "free");
  if (f == nullptr) return false;  // no glibc allocator to give it to
  f(p);
  CountForeignFree();
  return true;
}

bool FreeGlibcBlock(void* p) { return IsGlibcBlock(p) && HandBackToGlibc(p); }

size_t GlibcUsableSize(void* p) {
  if (!IsGlibcBlock(p)) return 0;
  UsableFn f = GlibcFunction(g_glibc_usable, "malloc_usable_size");
  return f != nullptr ? f(p) : 0;
}

}  // namespace strata::internal
