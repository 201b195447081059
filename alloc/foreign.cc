// Recognising glibc's blocks (see foreign.h).
//
// glibc (x86-64) puts a 16-byte header before each block: the previous
// chunk's size (or, for a chunk it mapped alone, the chunk's offset in its
// mapping), then the chunk's size with three flags in its low bits:
// PREV_INUSE (1), IS_MMAPPED (2), NON_MAIN_ARENA (4). A block is accepted as
// glibc's only when its header, its neighbour and its mapping agree:
//  - mapped alone (flags exactly IS_MMAPPED): the mapping starts at a page
//    boundary `prev_size` before the chunk, spans whole pages, and lies in
//    one anonymous writable region of /proc/self/maps;
//  - main arena (no flag but PREV_INUSE): the chunk lies in [heap], and the
//    next chunk's header says this one is in use;
//  - a thread arena (NON_MAIN_ARENA): as the main arena, in an anonymous
//    region whose 64 MiB-aligned start holds the heap's header (heap_info:
//    arena, previous heap, size) that covers the chunk.
// Program data that passes all of this by chance is then judged by glibc's
// own free, which checks its chunks again.
#include "alloc/foreign.h"

#include <dlfcn.h>

#include <atomic>

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

uintptr_t Word(uintptr_t a) { return *reinterpret_cast<const uintptr_t*>(a); }

bool IsMappedChunk(uintptr_t chunk, uintptr_t size, const os::Mapping& m) {
  if (m.has_path || !m.writable) return false;
  const uintptr_t offset = Word(chunk);  // prev_size: the chunk's offset in its mapping
  if (offset > chunk - m.start || size < kPage) return false;
  const uintptr_t base = chunk - offset;
  return base % kPage == 0 && (offset + size) % kPage == 0 && size <= m.end - chunk;
}

bool IsArenaChunk(uintptr_t chunk, uintptr_t size, bool main_arena, const os::Mapping& m) {
  if (size < kMinChunk || size % kChunkAlign != 0) return false;
  if (size > m.end - chunk || m.end - chunk - size < kChunkHeader) return false;
  // The next chunk's header records that this one is in use.
  if ((Word(chunk + size + sizeof(size_t)) & kPrevInUse) == 0) return false;
  if (main_arena) return m.is_heap;
  if (m.has_path || !m.writable) return false;
  const uintptr_t heap = chunk & ~(kThreadHeapMax - 1);
  if (heap < m.start) return false;
  // heap_info: arena, previous heap, size (bytes of the heap in use).
  const uintptr_t arena = Word(heap), heap_size = Word(heap + 2 * sizeof(size_t));
  return arena != 0 && heap_size <= kThreadHeapMax && heap_size % kPage == 0 &&
         chunk + size <= heap + heap_size;
}

template <typename Fn>
Fn GlibcFunction(std::atomic<Fn>& cache, const char* name) {
  // Relaxed: a function pointer; dlsym gives every thread the same one.
  Fn f = cache.load(std::memory_order_relaxed);
  if (f == nullptr) {
    // The next definition after ours: libc's. (dlsym may call our malloc;
    // that is fine, it never reaches foreign memory.)
    f = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
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
  os::Mapping m;
  if (!os::FindMapping(chunk, &m) || a >= m.end) return false;
  const uintptr_t word = Word(chunk + sizeof(size_t));
  const uintptr_t size = word & ~kFlags;
  if ((word & kFlags) == kIsMmapped) return IsMappedChunk(chunk, size, m);
  if ((word & kIsMmapped) != 0) return false;
  return IsArenaChunk(chunk, size, (word & kNonMainArena) == 0, m);
}

bool FreeGlibcBlock(void* p) {
  if (!IsGlibcBlock(p)) return false;
  FreeFn f = GlibcFunction(g_glibc_free, "free");
  if (f == nullptr) return false;  // no glibc allocator to give it to
  f(p);
  return true;
}

size_t GlibcUsableSize(void* p) {
  if (!IsGlibcBlock(p)) return 0;
  UsableFn f = GlibcFunction(g_glibc_usable, "malloc_usable_size");
  return f != nullptr ? f(p) : 0;
}

}  // namespace strata::internal
