// Start-up through strata's API alone (no malloc override): every step of
// init.h ran once, in the documented order, and the drop-in's step did not.
#include "alloc/init.h"

#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata::internal {
namespace {

TEST(InitTest, EveryStepRanOnceInOrderWithoutTheDropIn) {
  const InitRecord r = GetInitRecord();
  const InitStep expected[] = {InitStep::kOptions, InitStep::kReentryReport, InitStep::kReleaseEngine,
                               InitStep::kSampler, InitStep::kProfileSignal, InitStep::kForkHandlers};
  ASSERT_EQ(r.taken, sizeof(expected) / sizeof(expected[0]));
  for (size_t i = 0; i < r.taken; ++i) {
    EXPECT_EQ(static_cast<int>(r.steps[i]), static_cast<int>(expected[i])) << "step " << i;
  }
  EXPECT_EQ(r.count[static_cast<size_t>(InitStep::kDropIn)], 0);
  for (InitStep s : expected) EXPECT_EQ(r.count[static_cast<size_t>(s)], 1);
}

TEST(InitTest, ASecondInitializeTakesNoStep) {
  const InitRecord before = GetInitRecord();
  Initialize();
  const InitRecord after = GetInitRecord();
  EXPECT_EQ(after.taken, before.taken);
  for (size_t s = 0; s < kNumInitSteps; ++s) EXPECT_EQ(after.count[s], before.count[s]);
  void* p = Allocate(40);
  ASSERT_NE(p, nullptr);
  Deallocate(p);
}

}  // namespace
}  // namespace strata::internal
