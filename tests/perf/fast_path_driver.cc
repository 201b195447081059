// Driver for the fast-path instruction count (tests/perf/fast_path_test.sh).
//
// Each case is one extern "C" noinline function, strata_perf_case_<name>(n),
// that runs n malloc+free pairs through strata's API by name. The measuring
// script runs this program under callgrind with collection on only inside
// strata_perf_* functions, and divides by n the instructions executed inside
// the strata calls those functions make (callee inclusive cost: from the
// first instruction of strata::Allocate to its `ret`, likewise for the free,
// and everything they call). The loop, the `call` instructions and argument
// set-up are the caller's, reported apart. strata_perf_ref_empty is the same
// loop calling two empty functions: a reference for that overhead.
//
// main() warms every case up first, outside the measured functions (callgrind
// does not collect there), so the thread's heap, the runs and any lazy PLT
// binding exist before counting: the count is the steady-state fast path.
//
// Usage: fast_path_driver [PAIRS [FUNCTION]]   PAIRS pairs (default 100000) of
//        every case, or only of FUNCTION; --list prints the functions.
// Not a benchmark: run it under callgrind (see measure_fast_path.sh).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "alloc/strata.h"

// noinline keeps every case a function of its own for callgrind to find;
// n comes from the command line, so no constant-propagated clone replaces it.
#define STRATA_PERF_CASE extern "C" __attribute__((noinline)) void

namespace {

// What a program does with a block: writes its first word (program data, not
// a pointer into the arena), as any real use would. See the untouched case.
inline void Use(void* p, long i) { *static_cast<long*>(p) = i; }

}  // namespace

// The headline: one small block allocated and freed, the same block each
// time (a LIFO of one). Another block of the class stays live (main), so the
// run's used count never drops to zero.
STRATA_PERF_CASE strata_perf_case_malloc_free_32(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata::Allocate(32);
    Use(p, i);
    strata::Deallocate(p);
  }
}

// Sized delete: DeallocateSized checks the size against the block.
STRATA_PERF_CASE strata_perf_case_malloc_free_sized_32(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata::Allocate(32);
    Use(p, i);
    strata::DeallocateSized(p, 32);
  }
}

// The largest small class.
STRATA_PERF_CASE strata_perf_case_malloc_free_512(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata::Allocate(512);
    Use(p, i);
    strata::Deallocate(p);
  }
}

// calloc(1, 32): includes glibc's memset (reported apart by the script).
// The block is zeroed, so the program need not write it.
STRATA_PERF_CASE strata_perf_case_calloc_free_32(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata::AllocateZeroed(1, 32);
    strata::Deallocate(p);
  }
}

// The only live block of its class: every free takes the run's used count to
// zero (the "run may be empty" check). Nothing else of 48 bytes is allocated
// in this program.
STRATA_PERF_CASE strata_perf_case_malloc_free_48_sole(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata::Allocate(48);
    Use(p, i);
    strata::Deallocate(p);
  }
}

// A block the program never writes still holds its free-list link when it is
// freed, so the double-free heuristic sends the free to the checked path (a
// walk of the run's free list). Class 24 here holds one live block besides
// this one, so the walk covers the rest of a freshly carved pool: 168 blocks.
STRATA_PERF_CASE strata_perf_case_malloc_free_24_untouched(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata::Allocate(24);
    __asm__ volatile("" : : "r"(p) : "memory");  // p escapes, nothing written
    strata::Deallocate(p);
  }
}

namespace {

long g_sink_block[4];

}  // namespace

// The asm makes the empty functions opaque: no const/pure attribute inferred,
// so the compiler keeps one call per iteration, as for strata's.
extern "C" __attribute__((noinline)) void* strata_perf_empty_allocate(size_t size) {
  void* p = g_sink_block;
  __asm__ volatile("" : "+r"(p) : "r"(size));
  return p;
}
extern "C" __attribute__((noinline)) void strata_perf_empty_deallocate(void* p) {
  __asm__ volatile("" : : "r"(p));
}

// Reference: the loop of malloc_free_32 with empty functions in place of
// strata's. Its callee cost is the two empty bodies; its own cost is the loop.
STRATA_PERF_CASE strata_perf_ref_empty(long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata_perf_empty_allocate(32);
    Use(p, i);
    strata_perf_empty_deallocate(p);
  }
}

namespace {

struct Case {
  const char* function;  // the symbol callgrind is told to collect in
  void (*run)(long);
};

constexpr Case kCases[] = {
    {"strata_perf_case_malloc_free_32", strata_perf_case_malloc_free_32},
    {"strata_perf_case_malloc_free_sized_32", strata_perf_case_malloc_free_sized_32},
    {"strata_perf_case_malloc_free_512", strata_perf_case_malloc_free_512},
    {"strata_perf_case_calloc_free_32", strata_perf_case_calloc_free_32},
    {"strata_perf_case_malloc_free_48_sole", strata_perf_case_malloc_free_48_sole},
    {"strata_perf_case_malloc_free_24_untouched", strata_perf_case_malloc_free_24_untouched},
    {"strata_perf_ref_empty", strata_perf_ref_empty},
};

// Outside the measured functions (callgrind does not collect here): the
// operations of every case, so that the heap, each class's run and lazy
// bindings (memset's PLT slot) exist before counting.
void WarmUp() {
  for (long i = 0; i < 1000; ++i) {
    void* a = strata::Allocate(32);
    Use(a, i);
    strata::Deallocate(a);
    void* b = strata::Allocate(32);
    Use(b, i);
    strata::DeallocateSized(b, 32);
    void* c = strata::Allocate(512);
    Use(c, i);
    strata::Deallocate(c);
    strata::Deallocate(strata::AllocateZeroed(1, 32));
    void* d = strata::Allocate(48);
    Use(d, i);
    strata::Deallocate(d);
    strata::Deallocate(strata::Allocate(24));
    strata_perf_empty_deallocate(strata_perf_empty_allocate(32));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--list") == 0) {
    for (const Case& c : kCases) std::printf("%s\n", c.function);
    return 0;
  }
  const long pairs = argc > 1 ? std::atol(argv[1]) : 100000;
  const char* only = argc > 2 ? argv[2] : nullptr;
  if (pairs <= 0 || argc > 3) {
    std::fprintf(stderr, "usage: %s [PAIRS [FUNCTION]] | --list\n", argv[0]);
    return 2;
  }
  // Blocks that stay live while the cases run, so that (but for the "sole"
  // case) a free never empties its run.
  void* keep[] = {strata::Allocate(32), strata::Allocate(512), strata::Allocate(24)};
  WarmUp();
  int ran = 0;
  for (const Case& c : kCases) {
    if (only != nullptr && std::strcmp(only, c.function) != 0) continue;
    c.run(pairs);
    ++ran;
  }
  for (void* p : keep) strata::Deallocate(p);
  if (ran == 0) {
    std::fprintf(stderr, "no case named %s (see --list)\n", only);
    return 2;
  }
  std::printf("fast_path_driver: %d case(s), %ld pairs each\n", ran, pairs);
  return 0;
}
