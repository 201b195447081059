#include "alloc/stack_trace.h"

#include <unwind.h>

#include "alloc/config.h"

// The linker's bounds of the section strata's entry points live in.
extern "C" {
extern const char __start_strata_entry[] __attribute__((weak));
extern const char __stop_strata_entry[] __attribute__((weak));
extern const char __start_strata_entry_inline[] __attribute__((weak));
extern const char __stop_strata_entry_inline[] __attribute__((weak));
}

namespace strata::internal {
namespace {

struct Walk {
  uintptr_t* pcs;
  size_t max;
  size_t n;
  bool in_program;  // past strata's frames
};

bool InEntrySection(uintptr_t pc) {
  const auto lo = reinterpret_cast<uintptr_t>(__start_strata_entry);
  const auto hi = reinterpret_cast<uintptr_t>(__stop_strata_entry);
  const auto inline_lo = reinterpret_cast<uintptr_t>(__start_strata_entry_inline);
  const auto inline_hi = reinterpret_cast<uintptr_t>(__stop_strata_entry_inline);
  // A return address may lie just past a function that ends with a call:
  // the call itself is at pc - 1. (Both sections: config.h.)
  return (pc - 1 >= lo && pc - 1 < hi) || (pc - 1 >= inline_lo && pc - 1 < inline_hi);
}

_Unwind_Reason_Code OnFrame(struct _Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  const auto pc = static_cast<uintptr_t>(_Unwind_GetIP(ctx));
  if (pc == 0) return _URC_END_OF_STACK;
  // CaptureStack, the sampler and the entry points are all in the section
  // and come first: the program starts at the first frame outside it.
  if (!w->in_program) {
    if (InEntrySection(pc)) return _URC_NO_REASON;
    w->in_program = true;
  }
  w->pcs[w->n++] = pc;
  return w->n == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// Looks for a frame interrupted by a signal (libgcc marks the frame it
// restores from the kernel's signal frame: ip_before_insn, its pc is the
// interrupted instruction itself), then for an entry point's frame from
// there outward.
struct SignalWalk {
  bool past_signal;
  bool found;
};

_Unwind_Reason_Code OnFrameForSignal(struct _Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<SignalWalk*>(arg);
  int before_insn = 0;
  const auto pc = static_cast<uintptr_t>(_Unwind_GetIPInfo(ctx, &before_insn));
  if (pc == 0) return _URC_END_OF_STACK;
  if (before_insn != 0) w->past_signal = true;
  // InEntrySection looks at pc - 1 (a return address); an interrupted
  // instruction is at pc itself.
  if (w->past_signal && InEntrySection(before_insn != 0 ? pc + 1 : pc)) {
    w->found = true;
    return _URC_END_OF_STACK;
  }
  return _URC_NO_REASON;
}

struct WithinWalk {
  uintptr_t frame;
  bool found;
};

_Unwind_Reason_Code OnFrameWithin(struct _Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<WithinWalk*>(arg);
  int before_insn = 0;
  if (_Unwind_GetIPInfo(ctx, &before_insn) == 0) return _URC_END_OF_STACK;
  if (before_insn != 0) {
    w->found = true;
    return _URC_END_OF_STACK;
  }
  // Past the outer call's frame (its CFA lies above its frame address).
  return _Unwind_GetCFA(ctx) > w->frame ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// Records the frames from the one a signal interrupted outward.
_Unwind_Reason_Code OnFrameInterrupted(struct _Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  int before_insn = 0;
  const auto pc = static_cast<uintptr_t>(_Unwind_GetIPInfo(ctx, &before_insn));
  if (pc == 0) return _URC_END_OF_STACK;
  if (!w->in_program) {
    if (before_insn == 0) return _URC_NO_REASON;
    w->in_program = true;
  }
  // (The interrupted instruction is at pc itself, the rest are return
  // addresses: a name looked up at pc - 1 is right for both, but for a
  // fault on a function's very first instruction.)
  w->pcs[w->n++] = pc;
  return w->n == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

}  // namespace

size_t CaptureInterruptedStack(uintptr_t* pcs, size_t max) {
  if (max == 0) return 0;
  Walk w{pcs, max, 0, false};
  _Unwind_Backtrace(&OnFrameInterrupted, &w);
  return w.n;
}

bool SignalFrameWithin(uintptr_t frame) {
  WithinWalk w{frame, false};
  _Unwind_Backtrace(&OnFrameWithin, &w);
  return w.found;
}

bool InSignalHandlerThatInterruptedStrata() {
  SignalWalk w{false, false};
  _Unwind_Backtrace(&OnFrameForSignal, &w);
  return w.found;
}

STRATA_ENTRY size_t CaptureStack(uintptr_t* pcs, size_t max) {
  if (max == 0) return 0;
  Walk w{pcs, max, 0, false};
  _Unwind_Backtrace(&OnFrame, &w);
  return w.n;
}

}  // namespace strata::internal
