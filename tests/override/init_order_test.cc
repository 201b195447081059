// Start-up with the malloc override linked in: the drop-in's step runs
// second, every step once; and a malloc that runs before strata's own
// constructor (from this program's .preinit_array, which the loader runs
// before any constructor, and before libc has set environ up) is served by
// strata with the default options, and the environment still takes effect
// afterwards. BUILD sets STRATA_PURGE_DELAY_MS for it.
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include "alloc/init.h"
#include "alloc/options.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace {

struct Early {
  void* block;
  size_t steps_taken;        // init steps already taken when it ran
  bool environ_set;          // libc had set environ up by then
  int64_t purge_delay_ms;    // the option as the early malloc left it
  bool owned;
};
Early g_early{};

void MallocBeforeConstructors() {
  g_early.steps_taken = strata::internal::GetInitRecord().taken;
  g_early.environ_set = environ != nullptr;
  g_early.block = malloc(100);
  if (g_early.block != nullptr) memset(g_early.block, 0x5a, 100);
  g_early.owned = strata::Owns(g_early.block);
  g_early.purge_delay_ms = strata::GetOption(strata::Option::kPurgeDelayMs);
}

__attribute__((section(".preinit_array"), used)) void (*const g_preinit)() =
    &MallocBeforeConstructors;

TEST(InitOrderTest, AMallocBeforeStrataConstructorIsServed) {
  EXPECT_EQ(g_early.steps_taken, 0u) << "the .preinit_array entry ran after strata's constructor";
  ASSERT_NE(g_early.block, nullptr);
  EXPECT_TRUE(g_early.owned);
  // Before environ is set, the defaults serve; the environment was read
  // later all the same (had the early malloc marked it read, the knob
  // would have been lost for good).
  if (!g_early.environ_set) {
    EXPECT_EQ(g_early.purge_delay_ms, 1000);
  }
  EXPECT_EQ(strata::GetOption(strata::Option::kPurgeDelayMs), 4321)
      << "STRATA_PURGE_DELAY_MS was lost after a malloc from .preinit_array";
  const unsigned char* b = static_cast<const unsigned char*>(g_early.block);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(b[i], 0x5a);
  free(g_early.block);
}

TEST(InitOrderTest, EveryStepRanOnceInOrderWithTheDropIn) {
  using strata::internal::InitStep;
  const strata::internal::InitRecord r = strata::internal::GetInitRecord();
  const InitStep expected[] = {InitStep::kOptions,       InitStep::kReentryReport, InitStep::kDropIn,
                               InitStep::kReleaseEngine, InitStep::kSampler,       InitStep::kProfileSignal,
                               InitStep::kForkHandlers};
  ASSERT_EQ(r.taken, sizeof(expected) / sizeof(expected[0]));
  for (size_t i = 0; i < r.taken; ++i) {
    EXPECT_EQ(static_cast<int>(r.steps[i]), static_cast<int>(expected[i])) << "step " << i;
    EXPECT_EQ(r.count[static_cast<size_t>(expected[i])], 1) << "step " << i;
  }
}

}  // namespace
