// The microbenchmarks of micro_benchmarks.h through the C/C++ allocation
// functions (malloc, calloc, realloc, posix_memalign, free, operator new and
// sized operator delete). Links no strata: it measures whatever allocator
// the process has, glibc's or one preloaded:
//   LD_PRELOAD=bazel-bin/alloc/libstrata.so bazel-bin/tools/micro/malloc_benchmark
// tools/micro/compare_micro.sh runs it under each allocator side by side.
#include <stdlib.h>

#include <cstddef>
#include <new>

#include "tools/micro/micro_benchmarks.h"

namespace {

struct MallocApi {
  static void* Malloc(size_t size) { return malloc(size); }
  static void Free(void* p) { free(p); }
  static void* Calloc(size_t n, size_t size) { return calloc(n, size); }
  static void* Realloc(void* p, size_t size) { return realloc(p, size); }
  // posix_memalign rather than aligned_alloc: no "size is a multiple of the
  // alignment" rule for any allocator to enforce.
  static void* AllocAligned(size_t align, size_t size) {
    void* p = nullptr;
    return posix_memalign(&p, align, size) == 0 ? p : nullptr;
  }
  static void FreeAligned(void* p, size_t /*align*/) { free(p); }
  static void* New(size_t size) { return ::operator new(size); }
  static void DeleteSized(void* p, size_t size) { ::operator delete(p, size); }
};

const bool registered = strata::micro::RegisterAll<MallocApi>();

}  // namespace
