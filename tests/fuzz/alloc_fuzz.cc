// libFuzzer harness: the fuzzer's bytes drive a sequence of strata API calls
// (allocate, zeroed, aligned, reallocate, free, sized free, usable size) over
// a small table of live blocks, and the misuse a hostile program commits:
// remote frees through a second thread, double frees of freed blocks (local
// and remote, wherever the block waits: a batch, a queue, its run), writes
// of 1-8 bytes past a block's end into its neighbour, interior and foreign
// frees. Errors are counted (error_mode=count), never fatal.
//
// Every live block is filled with a pattern derived from its slot and
// checked before it is resized or freed, and every new block is checked
// against every live one: an overlap, a lost write, a bad usable size or a
// block handed out twice aborts. Under ASan (the fuzz config)
// out-of-bounds metadata access shows too.
//
//   bazel build --config=fuzz //tests/fuzz:alloc_fuzz
//   bazel-bin/tests/fuzz/alloc_fuzz -max_total_time=60
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "alloc/config.h"
#include "alloc/heap.h"
#include "alloc/options.h"
#include "alloc/strata.h"

namespace {

// A mismatch: names the check, so a long run's failure says what it found.
[[noreturn]] void Mismatch(int line) {
  fprintf(stderr, "alloc_fuzz: check at line %d failed\n", line);
  abort();
}
#define MISMATCH() Mismatch(__LINE__)

constexpr size_t kSlots = 64;

struct Slot {
  unsigned char* p;
  size_t size;
  size_t align;  // AllocateAligned's alignment until realloc'd, else 0
  unsigned char tag;
};

void Fill(Slot& s) { memset(s.p, s.tag, s.size); }

// A second thread that frees what it is handed (remote frees), and flushes
// its outgoing batches when asked. Each request waits for its answer, so a
// run is deterministic.
class Helper {
 public:
  Helper() : thread_([this] { Loop(); }) { thread_.detach(); }
  void Free(void* p) { Ask(p, false); }
  void Flush() { Ask(nullptr, true); }

 private:
  void Ask(void* p, bool flush) {
    std::unique_lock<std::mutex> lock(mu_);
    job_ = p;
    flush_ = flush;
    pending_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !pending_; });
  }
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return pending_; });
      if (flush_) {
        strata::internal::tls_heap->FlushOutgoing();
      } else {
        strata::Deallocate(job_);
      }
      pending_ = false;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  void* job_ = nullptr;
  bool flush_ = false;
  bool pending_ = false;
  std::thread thread_;
};

Helper& TheHelper() {
  static Helper* helper = new Helper;  // never destroyed: its thread lives on
  return *helper;
}

// Recently freed blocks, for double frees.
constexpr size_t kFreed = 16;
void* g_freed[kFreed];
size_t g_freed_next = 0;
void RememberFreed(void* p) { g_freed[g_freed_next++ % kFreed] = p; }

void Check(const Slot& s) {
  // Every byte up to 64 KiB; beyond (large blocks), both ends and a byte of
  // every page, so that long runs stay affordable.
  constexpr size_t kWhole = size_t{1} << 16, kPage = 4096;
  for (size_t i = 0; i < s.size; ++i) {
    if (s.p[i] != s.tag) MISMATCH();
    if (s.size > kWhole && i == kPage && s.size - kPage > i) i = s.size - kPage - 1;
  }
  for (size_t i = kPage; s.size > kWhole && i < s.size; i += kPage) {
    if (s.p[i] != s.tag) MISMATCH();
  }
  if (strata::UsableSize(s.p) < s.size) MISMATCH();
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

// The live block holding address a (start or inside), or null.
const Slot* LiveAt(const Slot* slots, uintptr_t a) {
  for (size_t k = 0; k < kSlots; ++k) {
    const auto start = reinterpret_cast<uintptr_t>(slots[k].p);
    if (slots[k].p != nullptr && a >= start && a < start + (slots[k].size ? slots[k].size : 1)) {
      return &slots[k];
    }
  }
  return nullptr;
}

// A new block must not overlap any live one: nothing is handed out twice,
// and no pointer into a live block comes out of a damaged list.
void CheckFresh(const Slot* slots, const Slot& s) {
  const auto start = reinterpret_cast<uintptr_t>(s.p);
  const uintptr_t end = start + (s.size ? s.size : 1);
  for (size_t k = 0; k < kSlots; ++k) {
    const Slot& t = slots[k];
    if (&t == &s || t.p == nullptr) continue;
    const auto ts = reinterpret_cast<uintptr_t>(t.p);
    if (start < ts + (t.size ? t.size : 1) && ts < end) MISMATCH();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Misuse is part of the input: counted and ignored, never fatal.
  static const bool count_mode = strata_option_set("error_mode", "count") == 0;
  if (!count_mode) MISMATCH();
  Slot slots[kSlots] = {};
  for (size_t i = 0; i + 4 <= size; i += 4) {
    const uint8_t op = data[i] % 13;
    Slot& s = slots[data[i] / 13 % kSlots];
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
            if (s.p[k] != 0) MISMATCH();
          }
        } else {
          const size_t align = size_t{16} << (data[i + 3] % 9);  // 16..4096
          s.p = static_cast<unsigned char*>(strata::AllocateAligned(align, n));
          if (s.p != nullptr && reinterpret_cast<uintptr_t>(s.p) % align != 0) MISMATCH();
        }
        s.align = op == 2 ? size_t{16} << (data[i + 3] % 9) : 0;
        if (s.p == nullptr) MISMATCH();  // every size here is servable
        s.size = n;
        s.tag = static_cast<unsigned char>(data[i + 3] | 1);
        CheckFresh(slots, s);
        Fill(s);
        break;
      }
      case 3: {  // reallocate: the common prefix survives
        if (s.p == nullptr) break;
        Check(s);
        auto* q = static_cast<unsigned char*>(strata::Reallocate(s.p, n == 0 ? 1 : n));
        if (q == nullptr) MISMATCH();
        const size_t keep = s.size < n ? s.size : n;
        for (size_t k = 0; k < keep; ++k) {
          if (q[k] != s.tag) MISMATCH();
        }
        if (q != s.p) RememberFreed(s.p);
        s.p = q;
        s.size = n == 0 ? 1 : n;
        s.align = 0;  // a realloc result: freed as malloc's
        CheckFresh(slots, s);
        Fill(s);
        break;
      }
      case 4:
      case 5:
      case 6:  // free: plain, sized, or by the other thread (a remote free)
        if (s.p == nullptr) break;
        Check(s);
        if (op == 6) {
          TheHelper().Free(s.p);
        } else if (op == 4) {
          strata::Deallocate(s.p);
        } else if (s.align != 0) {
          strata::DeallocateAlignedSized(s.p, s.size, s.align);  // C23: aligned_alloc's
        } else {
          strata::DeallocateSized(s.p, s.size);
        }
        RememberFreed(s.p);
        s.p = nullptr;
        break;
      case 7:
      case 8: {  // a double free, here or by the other thread, of a block not live now
        void* p = g_freed[data[i + 1] % kFreed];
        if (p == nullptr || LiveAt(slots, reinterpret_cast<uintptr_t>(p)) != nullptr) break;
        if (op == 7) {
          strata::Deallocate(p);
        } else {
          TheHelper().Free(p);
        }
        break;
      }
      case 9:  // the other thread hands its batches over
        TheHelper().Flush();
        break;
      case 10: {  // 1-8 bytes written past a small block's usable end
        if (s.p == nullptr || s.size > strata::internal::kMaxMediumSize) break;
        const size_t usable = strata::UsableSize(s.p);
        const auto at = reinterpret_cast<uintptr_t>(s.p) + usable;
        const size_t len = 1 + data[i + 1] % 8;
        // Only into memory no live block holds, inside the same arena (the
        // next arena's header is not a neighbour a test may damage).
        if (at % strata::internal::kArenaSize == 0 ||
            (at + len - 1) / strata::internal::kArenaSize != at / strata::internal::kArenaSize) {
          break;
        }
        bool touches_live = false;
        for (size_t k = 0; k < len; ++k) touches_live |= LiveAt(slots, at + k) != nullptr;
        if (touches_live) break;
        memset(reinterpret_cast<void*>(at), data[i + 2], len);
        // A block both overwritten and freed twice is beyond what can be
        // detected (README, the contract): its damaged link no longer looks
        // free, so the second free is taken for a first one. Each misuse is
        // tried alone: an overwritten block is not freed again.
        for (void*& f : g_freed) {
          const auto fa = reinterpret_cast<uintptr_t>(f);
          if (f != nullptr && fa < at + len && at < fa + sizeof(void*)) f = nullptr;
        }
        break;
      }
      case 11:  // an interior pointer, or memory strata never handed out
        if (s.p != nullptr && s.size > 8) {
          strata::Deallocate(s.p + 8);
        } else {
          static unsigned char not_ours[64];
          strata::Deallocate(not_ours + 16);
        }
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
      RememberFreed(s.p);
    }
  }
  return 0;
}
