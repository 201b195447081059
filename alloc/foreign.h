// Memory strata did not hand out, met by the drop-in's free, realloc and
// malloc_usable_size: only glibc's own blocks are accepted.
//
// glibc may have handed out blocks that reach strata: a program or library
// that calls glibc's malloc directly (dlsym(RTLD_NEXT, "malloc"), a static
// copy), or blocks from before strata took over. Such a pointer is glibc's
// when its chunk header and its mapping agree (foreign.cc says how); then
// glibc's own free, realloc and malloc_usable_size handle it, and nothing of
// its contents is lost. Every other pointer (the stack, .bss, a region the
// program mapped itself, an unmapped address) is an invalid free, reported
// like any other.
//
// These are slow paths (a read of /proc/self/maps each): a pointer gets here
// only when strata's page map does not know it.
#ifndef STRATA_ALLOC_FOREIGN_H_
#define STRATA_ALLOC_FOREIGN_H_

#include <cstddef>
#include <cstdint>

namespace strata::internal {

// True when p is the start of a block glibc's allocator handed out and has
// not freed: a chunk of the main arena in [heap], a chunk of a thread
// arena's heap, or a chunk glibc mapped on its own. Never allocates.
bool IsGlibcBlock(const void* p);

// The foreign-free hook of the drop-in (foreign_hook.h): frees p with glibc's free
// when it is glibc's (HandBackToGlibc), and returns whether it was.
bool FreeGlibcBlock(void* p);

// Usable bytes of glibc block p, or 0 when p is not one.
size_t GlibcUsableSize(void* p);

// Frees p with glibc's own free and counts it (stats' foreign frees);
// false when there is no glibc allocator to give it to.
// REQUIRES: IsGlibcBlock(p) (or GlibcUsableSize(p) != 0) just said so.
bool HandBackToGlibc(void* p);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_FOREIGN_H_
