#include "alloc/stack_trace.h"

#include <unwind.h>

#include "alloc/config.h"

// The linker's bounds of the section strata's entry points live in.
extern "C" {
extern const char __start_strata_entry[] __attribute__((weak));
extern const char __stop_strata_entry[] __attribute__((weak));
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
  // A return address may lie just past a function that ends with a call:
  // the call itself is at pc - 1.
  return pc - 1 >= lo && pc - 1 < hi;
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

}  // namespace

STRATA_ENTRY size_t CaptureStack(uintptr_t* pcs, size_t max) {
  if (max == 0) return 0;
  Walk w{pcs, max, 0, false};
  _Unwind_Backtrace(&OnFrame, &w);
  return w.n;
}

}  // namespace strata::internal
