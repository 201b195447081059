// strata's public allocation API, in C++ (namespace strata) and C (strata_*).
// These entry points never replace malloc: programs call them by name. The
// drop-in malloc/new override is a separate library built on top of them.
//
// Contracts shared by every function below:
//  - Thread-safety: any thread, any time, concurrently; no global lock.
//  - A request that cannot be served (size above PTRDIFF_MAX, overflowing
//    count * size, or the OS refusing memory) returns nullptr with errno set
//    to ENOMEM and changes nothing else.
//  - A plain allocation of n bytes is aligned to the largest power of two
//    <= 16 that divides its block size (at least 8, and 16 for n >= 16 that
//    land in a 16-multiple class); the aligned entry points give any power
//    of two up to 1 GiB. An alignment that is not a power of two fails with
//    errno EINVAL.
//  - Freeing a pointer strata did not hand out (or an interior pointer)
//    prints one line naming the address and the error, then aborts.
#ifndef STRATA_ALLOC_STRATA_H_
#define STRATA_ALLOC_STRATA_H_

#include <stddef.h>

#ifdef __cplusplus
namespace strata {

// Largest alignment the aligned entry points accept.
inline constexpr size_t kMaxAlignment = size_t{1} << 30;

// Returns a block of at least `size` bytes (size 0 gives a unique block).
void* Allocate(size_t size) noexcept;

// calloc semantics: count * size zeroed bytes; overflow gives ENOMEM.
void* AllocateZeroed(size_t count, size_t size) noexcept;

// Resizes p, keeping min(old, new) bytes of content. glibc semantics:
// p == nullptr behaves as Allocate(size); size == 0 frees p and returns
// nullptr. On failure returns nullptr with ENOMEM and p is untouched.
void* Reallocate(void* p, size_t size) noexcept;

// A block of at least `size` bytes aligned to `alignment` (a power of two
// <= kMaxAlignment, else nullptr with EINVAL).
void* AllocateAligned(size_t alignment, size_t size) noexcept;

// Frees p (nullptr is ignored).
void Deallocate(void* p) noexcept;
// Frees p, which the caller allocated with this `size` (checked).
void DeallocateSized(void* p, size_t size) noexcept;
// Frees p allocated by AllocateAligned(alignment, ...).
void DeallocateAligned(void* p, size_t alignment) noexcept;
// Frees p allocated by AllocateAligned(alignment, size).
//
// Argument order: allocation takes (alignment, size) in both languages, as
// aligned_alloc does. The sized aligned free follows each language's own
// standard form, so the two differ: C++ takes (p, size, alignment), as
// operator delete(void*, size_t, std::align_val_t) does; C takes
// (p, alignment, size), as C23's free_aligned_sized does. Both are size_t,
// so a swap compiles; at run time strata reports the size that does not fit
// the block, or the alignment that is not a power of two, unless the two
// values happen to fit the block either way.
void DeallocateAlignedSized(void* p, size_t size, size_t alignment) noexcept;

// Bytes usable at p (>= the size asked for); 0 for nullptr.
size_t UsableSize(const void* p) noexcept;

// Returns free memory to the OS now: adopts the memory of exited threads,
// takes back blocks freed to this thread from elsewhere, purges the pools of
// every empty arena (madvise) and unmaps cached large mappings. Returns the
// bytes given back. Thread-safety: any thread; no global lock.
size_t ReleaseMemory() noexcept;

// True when p points into memory strata manages (a block, or inside one).
// False for the stack, globals, and other allocators' memory. O(1), lock-free.
bool Owns(const void* p) noexcept;

}  // namespace strata
#endif  // __cplusplus

#ifdef __cplusplus
extern "C" {
#endif

void* strata_malloc(size_t size);
void* strata_calloc(size_t count, size_t size);
void* strata_realloc(void* p, size_t size);
void* strata_aligned_alloc(size_t alignment, size_t size);
void strata_free(void* p);
void strata_free_sized(void* p, size_t size);
void strata_free_aligned_sized(void* p, size_t alignment, size_t size);
size_t strata_usable_size(const void* p);
size_t strata_release_memory(void);
int strata_owns(const void* p);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // STRATA_ALLOC_STRATA_H_
