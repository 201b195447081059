// The guarded region's SIGSEGV handler, chained to the program's, and the
// report it prints (guarded_fault.h). Everything here may run in a signal
// handler: raw writes through FdWriter, dladdr for names (glibc's takes the
// loader's lock: best effort, README says so), no malloc, no strata lock.
#include "alloc/guarded_fault.h"

#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <ucontext.h>

#include <atomic>
#include <cstring>

#include "alloc/fd_writer.h"
#include "alloc/guarded.h"
#include "alloc/os.h"
#include "alloc/stack_trace.h"

namespace strata::internal {
namespace {

// SYNCHRONIZATION
//  - g_installed: the one installer's exchange (relaxed: sigaction itself
//    is the hand-over to the handler).
//  - g_previous: written once by the installer, before the sigaction call
//    that installs the handler reading it (the system call orders them).
//  - g_reporting: the first thread to report a fault claims it; any other
//    that faults meanwhile waits for the process to die (one report).
std::atomic<bool> g_installed{false};
struct sigaction g_previous;
std::atomic<bool> g_reporting{false};

const char* KindName(GuardedFault::Kind kind) {
  switch (kind) {
    case GuardedFault::kUseAfterFree:
      return "use-after-free";
    case GuardedFault::kOverflow:
      return "buffer overflow";
    case GuardedFault::kUnderflow:
      return "buffer underflow";
    case GuardedFault::kUnusedSlot:
      return "wild access";
  }
  return "fault";
}

// x86-64: the page fault's error code, bit 1, says the access was a write.
bool FaultWasWrite(const void* ctx) {
  const auto* uc = static_cast<const ucontext_t*>(ctx);
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
}

void WriteReport(uintptr_t a, bool write, const GuardedFault& f) {
  {
    FdWriter w(2);
    w.Str("strata: guarded allocation: ").Str(KindName(f.kind)).Str(write ? " write" : " read");
    w.Str(" at ").Hex(a);
    if (f.kind == GuardedFault::kUnusedSlot) {
      w.Str(" (a guarded page that holds no block)\n");
    } else {
      w.Str(": block ").Hex(f.block).Str(" of ").Uint(f.size).Str(" bytes, offset ").Int(f.offset);
      if (f.kind != GuardedFault::kUseAfterFree && f.block_freed) w.Str(" (the block was freed)");
      w.Char('\n');
    }
  }
  // The faulting access: the frames below the kernel's signal frame.
  uintptr_t pcs[kMaxStackFrames];
  const size_t depth = CaptureInterruptedStack(pcs, kMaxStackFrames);
  WriteGuardedStack(2, "accessed", os::CurrentThreadTid(), pcs, depth);
  if (f.kind == GuardedFault::kUnusedSlot) return;
  WriteGuardedStack(2, "allocated", f.alloc_tid, f.alloc_pcs, f.alloc_depth);
  if (f.block_freed) WriteGuardedStack(2, "freed", f.free_tid, f.free_pcs, f.free_depth);
}

// Hands the signal to the action in force before strata's, as if strata's
// had never been there: its handler (with siginfo or without), or the
// default action, or nothing (ignored).
void Forward(int sig, siginfo_t* info, void* ctx) {
  const struct sigaction& prev = g_previous;
  if ((prev.sa_flags & SA_SIGINFO) != 0) {
    prev.sa_sigaction(sig, info, ctx);
    return;
  }
  if (prev.sa_handler == SIG_IGN && info->si_code <= 0) return;  // a kill() of an ignored signal
  if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN) {
    // The default action: the kernel's, not ours. A fault repeats when the
    // handler returns and then kills (a fault cannot be ignored); a signal
    // sent by a process is sent again.
    signal(sig, SIG_DFL);
    if (info->si_code <= 0) raise(sig);
    return;
  }
  prev.sa_handler(sig);
}

void OnFault(int sig, siginfo_t* info, void* ctx) {
  const auto a = reinterpret_cast<uintptr_t>(info->si_addr);
  if (info->si_code <= 0 || !InGuardedRegion(info->si_addr)) return Forward(sig, info, ctx);
  // Relaxed: the flag orders nothing else.
  if (g_reporting.exchange(true, std::memory_order_relaxed)) {
    for (;;) sched_yield();  // another thread's report ends the process
  }
  const int saved_errno = errno;
  CountGuardedFault();
  GuardedFault f;
  DescribeGuardedFault(a, &f);
  WriteReport(a, FaultWasWrite(ctx), f);
  errno = saved_errno;
  // The program's handler sees the fault too (a crash reporter), then the
  // process dies by the signal: the access repeats under the default action.
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 ||
      (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN)) {
    Forward(sig, info, ctx);
  }
  signal(sig, SIG_DFL);
}

// "function+0xOFF (object)" for pc, as far as dladdr knows.
void WriteFrameName(FdWriter& w, uintptr_t pc) {
  Dl_info info;
  memset(&info, 0, sizeof(info));
  // A return address may lie past a function that ends with a call: the
  // call is at pc - 1.
  if (dladdr(reinterpret_cast<void*>(pc - 1), &info) == 0) return;
  if (info.dli_sname != nullptr) {
    w.Char(' ').Str(info.dli_sname).Str("+").Hex(pc - reinterpret_cast<uintptr_t>(info.dli_saddr));
  }
  if (info.dli_fname != nullptr && info.dli_fname[0] != '\0') w.Str(" (").Str(info.dli_fname).Char(')');
}

}  // namespace

void WriteGuardedStack(int fd, const char* title, uint32_t tid, const uintptr_t* pcs, size_t depth) {
  FdWriter w(fd);
  w.Str("strata:   ").Str(title).Str(" by thread ").Uint(tid).Str(":\n");
  if (depth == 0) w.Str("strata:     (no frames)\n");
  for (size_t i = 0; i < depth; ++i) {
    w.Str("strata:     #").Uint(i).Char(' ').Hex(pcs[i]);
    WriteFrameName(w, pcs[i]);
    w.Char('\n');
  }
}

void InstallGuardedFaultHandler() {
  // Relaxed: see g_installed.
  if (g_installed.exchange(true, std::memory_order_relaxed)) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = &OnFault;
  // SA_ONSTACK: on the program's alternate stack when it has one (a stack
  // overflow's fault then still reaches its own handler through ours).
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  // The action in force is read before ours replaces it, so that the
  // handler never finds g_previous unwritten.
  sigaction(SIGSEGV, nullptr, &g_previous);
  sigaction(SIGSEGV, &sa, nullptr);
}

}  // namespace strata::internal
