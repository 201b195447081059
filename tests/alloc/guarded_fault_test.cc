// The faults guarded sampling catches, through strata's API (issue 25):
// each kind of report (use after free read and write, overflow, underflow)
// names the kind, the address, the block's size and the offset, then the
// stacks; the process dies by SIGSEGV. A fault outside the guarded region
// goes to the handler the program had installed before. Plain builds only
// (tag plain_build): ASan and TSan install SIGSEGV handlers of their own.
#include <signal.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "alloc/guarded.h"
#include "alloc/options.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata::internal {
namespace {

// A guarded block of n bytes: the first allocation after guarding turns on
// (rate 1: every allocation of at most a page is sampled).
char* GuardedBlock(size_t n) {
  SetGuardedSampleBytes(1);
  for (int i = 0; i < 100; ++i) {
    auto* p = static_cast<char*>(strata::Allocate(n));
    if (InGuardedRegion(p)) return p;
  }
  return nullptr;
}

std::string Hex(const void* p) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%p", p);
  return buf;
}

__attribute__((noinline)) int Read(volatile char* p) { return *p; }
__attribute__((noinline)) void Write(volatile char* p) { *p = 1; }

class GuardedFaultDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(GuardedFaultDeathTest, UseAfterFreeRead) {
  EXPECT_EXIT(
      {
        char* p = GuardedBlock(32);
        fprintf(stderr, "block=%s\n", Hex(p).c_str());
        strata::Deallocate(p);
        Read(p + 8);
      },
      ::testing::KilledBySignal(SIGSEGV),
      "block=(0x[0-9a-f]+)\nstrata: guarded allocation: use-after-free read at 0x[0-9a-f]+: block "
      "0x[0-9a-f]+ of 32 bytes, offset 8\nstrata:   accessed by thread [0-9]+:\n(.*\n)*strata:   "
      "allocated by thread [0-9]+:\n(.*\n)*strata:   freed by thread [0-9]+:");
}

TEST_F(GuardedFaultDeathTest, UseAfterFreeWrite) {
  EXPECT_EXIT(
      {
        char* p = GuardedBlock(48);
        strata::Deallocate(p);
        Write(p + 47);
      },
      ::testing::KilledBySignal(SIGSEGV), "use-after-free write at 0x[0-9a-f]+: block 0x[0-9a-f]+ of 48 bytes, offset 47");
}

TEST_F(GuardedFaultDeathTest, Overflow) {
  EXPECT_EXIT(
      {
        char* p = GuardedBlock(64);
        Write(p + 64);
      },
      ::testing::KilledBySignal(SIGSEGV), "buffer overflow write at 0x[0-9a-f]+: block 0x[0-9a-f]+ of 64 bytes, offset 64\n");
}

TEST_F(GuardedFaultDeathTest, Underflow) {
  EXPECT_EXIT(
      {
        char* p = GuardedBlock(4096);
        Read(p - 1);
      },
      ::testing::KilledBySignal(SIGSEGV), "buffer underflow read at 0x[0-9a-f]+: block 0x[0-9a-f]+ of 4096 bytes, offset -1\n");
}

volatile sig_atomic_t g_calls = 0;
char* g_page = nullptr;

void OwnHandler(int, siginfo_t* info, void*) {
  g_calls = g_calls + 1;
  if (static_cast<char*>(info->si_addr) >= g_page && static_cast<char*>(info->si_addr) < g_page + 4096) {
    mprotect(g_page, 4096, PROT_READ | PROT_WRITE);
  }
}

// The program's handler, installed before guarding turns on, still gets
// its own faults (and recovers from them), and sees strata's too.
TEST_F(GuardedFaultDeathTest, ChainsToTheProgramsHandler) {
  EXPECT_EXIT(
      {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = &OwnHandler;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, nullptr);
        char* p = GuardedBlock(16);  // strata's handler goes in now, chained
        g_page = static_cast<char*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        Write(g_page);
        fprintf(stderr, "own fault handled: %d\n", static_cast<int>(g_calls));
        Write(p + 16);
        fprintf(stderr, "not reached\n");
      },
      ::testing::KilledBySignal(SIGSEGV), "own fault handled: 1\nstrata: guarded allocation: buffer overflow write");
}

}  // namespace
}  // namespace strata::internal
