// The two builds from one source (design.md item 11): which checks the
// allocator's paths make, each behind one named constant.
//
// The default build (//alloc:libstrata.so, //alloc:malloc, CMake's
// strata::strata, the libstrata package) checks only what costs its fast
// paths no load of the freed block and no multiply: ownership through the
// caches and the page map, foreign and wild pointers, frees into free pools
// and headers, the block at the head of its own list (the immediate double
// free), large and sampled blocks, and whatever a slow path sees. The
// checked build (//alloc:libstrata_checked.so, //alloc:malloc_checked,
// CMake's strata::strata_checked, libstrata-checked.so.1) keeps the whole
// contract: every invalid, interior and double free reported wherever the
// block is, damaged links caught before they are followed (README,
// "Contract", says which build detects what). The checked build is
// compiled with STRATA_CHECKED=1; every object of one binary is compiled
// the same way. The Bazel macros (variants.bzl) and the CMake targets see
// to it, and checks.cc makes a binary that mixes the two fail to link.
#ifndef STRATA_ALLOC_CHECKS_H_
#define STRATA_ALLOC_CHECKS_H_

#include <cstddef>
#include <cstdint>

#ifndef STRATA_CHECKED
#define STRATA_CHECKED 0
#endif

// Every object that includes this header refers to its build's tag, which
// only that build's checks.cc defines; both builds' checks.cc also define
// one common symbol. An object of each build in one link pulls in both
// checks.o, whose common symbol is then defined twice: the link fails
// instead of one binary running two policies (two free-list encodings).
extern "C" {
#if STRATA_CHECKED
extern const char strata_build_checked;
[[gnu::used]] static const char* const strata_build_of_this_object = &strata_build_checked;
#else
extern const char strata_build_default;
[[gnu::used]] static const char* const strata_build_of_this_object = &strata_build_default;
#endif
}

namespace strata::internal {

inline constexpr bool kCheckedBuild = STRATA_CHECKED != 0;

// Every free block's first word is its link encoded with the process's
// random key (free_link.h): a multiply on every push and pop. It makes a
// freed block recognisable from program data (LooksFree) and a damaged
// link detectable before it is followed. Off: plain pointers.
inline constexpr bool kEncodedLinks = kCheckedBuild;

// Every free reads the freed block's first word (LooksFree): a second free
// is caught wherever the block is (on a list, in a cache, travelling). The
// load is a cold miss on frees of blocks allocated long ago.
inline constexpr bool kCheckFreedBlock = kCheckedBuild;

// Every free checks that the pointer is the start of a block its run has
// handed out (one multiply against the run's shape): interior pointers and
// blocks never carved are reported.
inline constexpr bool kCheckBlockStart = kCheckedBuild;

// Every pop checks that the link it follows stays where links may go: a
// damaged list (a heap overflow, a write after free) is reported before a
// block inside a live one is handed out.
inline constexpr bool kCheckPoppedLinks = kCheckedBuild;

// Every free claims the freed block with one compare-and-swap on its first
// word (a locked RMW), from the word it judged (program data) to the claim
// mark, before it links the block anywhere (free_link.h, ClaimBlock): of
// two threads freeing one block at the same instant exactly one links it
// and the other is reported (in count mode it does nothing). A free block's
// words are then read and written as atomics (plain moves on x86-64), so
// that the race the claim settles is a defined one.
inline constexpr bool kClaimFreedBlock = kCheckedBuild;

// Memory released in the last kQuarantineMs is not reused while other free
// memory is at hand: a heap's pools freed from a run (OwnedArenas::
// FindFreeRun takes other free pools of its arenas first) and empty arenas
// given back to the source (AcquireArena takes an older one, or fresh
// memory, passing over at most kQuarantineArenas). A double free that comes
// shortly after its block's memory was released (a thread that frees its
// last block and exits, and the next thread's start-up) then finds free
// memory and is reported, instead of freeing a new live block there. The
// memory it costs is bounded by kQuarantineArenas arenas; nothing on a
// fast path. A constant, not an option: it only widens a window the
// checked build's reports already cover. (Blocks reused from a class
// cache or a run's own list are not quarantined: README, "Contract".)
inline constexpr bool kQuarantineReleased = kCheckedBuild;
inline constexpr uint32_t kQuarantineMs = 50;
inline constexpr size_t kQuarantineArenas = 8;

static_assert(!kClaimFreedBlock || kCheckFreedBlock, "a free judges the word it claims from");
static_assert(!kCheckFreedBlock || kEncodedLinks, "a free block is recognised by its encoded link");
static_assert(!kCheckPoppedLinks || kEncodedLinks, "a damaged link shows through the encoding");

}  // namespace strata::internal

#endif  // STRATA_ALLOC_CHECKS_H_
