// The microbenchmarks of micro_benchmarks.h through strata's own API
// (strata::Allocate & co., called by name; no malloc override linked).
//   bazel run -c opt //tools/micro:alloc_benchmark -- --benchmark_filter=MallocFree
#include <cstddef>

#include "alloc/strata.h"
#include "tools/micro/micro_benchmarks.h"

namespace {

struct StrataApi {
  static void* Malloc(size_t size) { return strata::Allocate(size); }
  static void Free(void* p) { strata::Deallocate(p); }
  static void* Calloc(size_t n, size_t size) { return strata::AllocateZeroed(n, size); }
  static void* Realloc(void* p, size_t size) { return strata::Reallocate(p, size); }
  static void* AllocAligned(size_t align, size_t size) {
    return strata::AllocateAligned(align, size);
  }
  static void FreeAligned(void* p, size_t align) { strata::DeallocateAligned(p, align); }
  static void* New(size_t size) { return strata::Allocate(size); }
  static void DeleteSized(void* p, size_t size) { strata::DeallocateSized(p, size); }
};

const bool registered = strata::micro::RegisterAll<StrataApi>();

}  // namespace
