// libFuzzer harness: the fuzzer's bytes drive a sequence of strata API calls
// (allocate, zeroed, aligned, reallocate, free, sized free, usable size)
// over a small table of live blocks. Every block is filled with a pattern
// derived from its slot and checked before it is resized or freed, so any
// overlap, lost write or bad usable size shows as a crash. Under ASan
// (the fuzz config) out-of-bounds metadata access shows too.
//
//   bazel build --config=fuzz //tests/fuzz:alloc_fuzz
//   bazel-bin/tests/fuzz/alloc_fuzz -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "alloc/strata.h"

namespace {

constexpr size_t kSlots = 64;

struct Slot {
  unsigned char* p;
  size_t size;
  size_t align;  // AllocateAligned's alignment until realloc'd, else 0
  unsigned char tag;
};

void Fill(Slot& s) { memset(s.p, s.tag, s.size); }

void Check(const Slot& s) {
  for (size_t i = 0; i < s.size; ++i) {
    if (s.p[i] != s.tag) abort();
  }
  if (strata::UsableSize(s.p) < s.size) abort();
}

size_t SizeFrom(const uint8_t* d) {
  // Mostly small, sometimes medium, now and then large.
  const uint32_t v = d[0] | (d[1] << 8) | (d[2] << 16);
  switch (v & 3) {
    case 0:
    case 1:
      return (v >> 2) % 600;
    case 2:
      return (v >> 2) % 70000;
    default:
      return (v >> 2) % (1 << 21);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Slot slots[kSlots] = {};
  for (size_t i = 0; i + 4 <= size; i += 4) {
    const uint8_t op = data[i] % 7;
    Slot& s = slots[data[i] / 7 % kSlots];
    const size_t n = SizeFrom(data + i + 1);
    switch (op) {
      case 0:
      case 1:
      case 2: {  // allocate (plain, zeroed, aligned) into an empty slot
        if (s.p != nullptr) break;
        if (op == 0) {
          s.p = static_cast<unsigned char*>(strata::Allocate(n));
        } else if (op == 1) {
          s.p = static_cast<unsigned char*>(strata::AllocateZeroed(1, n));
          for (size_t k = 0; s.p != nullptr && k < n; ++k) {
            if (s.p[k] != 0) abort();
          }
        } else {
          const size_t align = size_t{16} << (data[i + 3] % 9);  // 16..4096
          s.p = static_cast<unsigned char*>(strata::AllocateAligned(align, n));
          if (s.p != nullptr && reinterpret_cast<uintptr_t>(s.p) % align != 0) abort();
        }
        s.align = op == 2 ? size_t{16} << (data[i + 3] % 9) : 0;
        if (s.p == nullptr) abort();  // every size here is servable
        s.size = n;
        s.tag = static_cast<unsigned char>(data[i + 3] | 1);
        Fill(s);
        break;
      }
      case 3: {  // reallocate: the common prefix survives
        if (s.p == nullptr) break;
        Check(s);
        auto* q = static_cast<unsigned char*>(strata::Reallocate(s.p, n == 0 ? 1 : n));
        if (q == nullptr) abort();
        const size_t keep = s.size < n ? s.size : n;
        for (size_t k = 0; k < keep; ++k) {
          if (q[k] != s.tag) abort();
        }
        s.p = q;
        s.size = n == 0 ? 1 : n;
        s.align = 0;  // a realloc result: freed as malloc's
        Fill(s);
        break;
      }
      case 4:
      case 5:  // free, plain or sized
        if (s.p == nullptr) break;
        Check(s);
        if (op == 4) {
          strata::Deallocate(s.p);
        } else if (s.align != 0) {
          strata::DeallocateAlignedSized(s.p, s.size, s.align);  // C23: aligned_alloc's
        } else {
          strata::DeallocateSized(s.p, s.size);
        }
        s.p = nullptr;
        break;
      default:  // check every live block
        for (const Slot& t : slots) {
          if (t.p != nullptr) Check(t);
        }
        break;
    }
  }
  for (Slot& s : slots) {
    if (s.p != nullptr) {
      Check(s);
      strata::Deallocate(s.p);
    }
  }
  return 0;
}
