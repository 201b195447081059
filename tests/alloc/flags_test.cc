// The flag path of the options registry: --strata_<name> for every knob,
// applied as Abseil parses the command line, refused values named and the
// old value kept.
#include "alloc/flags.h"

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "alloc/options.h"
#include "gtest/gtest.h"
#include "tests/alloc/option_probes.h"

ABSL_DECLARE_FLAG(std::string, strata_large_cache_bytes);

namespace strata {
namespace {

// Runs Abseil's parser over `args` (after a program name).
void Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "flags_test");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(FlagsTest, EveryKnobHasAFlag) {
  for (size_t i = 0; i < kNumOptions; ++i) {
    const std::string name = std::string("strata_") + GetOptionInfo(static_cast<Option>(i)).name;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    ASSERT_NE(flag, nullptr) << name;
    EXPECT_NE(flag->Help().find(GetOptionInfo(static_cast<Option>(i)).doc), std::string::npos);
  }
}

// Every knob through its flag: a valid value is applied with source
// "flag"; an invalid one is refused, named, and leaves the value alone.
TEST(FlagsTest, EveryKnobThroughItsFlag) {
  absl::FlagSaver restore_flags_at_exit;
  options_internal::ResetForTesting();
  for (size_t i = 0; i < kNumOptions; ++i) {
    const auto o = static_cast<Option>(i);
    const OptionInfo& info = GetOptionInfo(o);
    SCOPED_TRACE(info.name);
    const Probe p = ProbeFor(o);
    const std::string flag = std::string("--strata_") + info.name;
    Parse({flag + "=" + p.valid});
    EXPECT_EQ(GetOptionSource(o), OptionSource::kFlag);
    EXPECT_TRUE(HoldsValidProbe(o, p));
    const std::string before = OptionValue(o);
    ::testing::internal::CaptureStderr();
    Parse({flag + "=" + p.invalid});
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(OptionValue(o), before);
    EXPECT_NE(err.find("from " + flag + " refused"), std::string::npos) << err;
    EXPECT_NE(err.find("keeping '" + before + "'"), std::string::npos) << err;
  }
  options_internal::ResetForTesting();
}

TEST(FlagsTest, CommandLineSetsEveryKindOfKnob) {
  absl::FlagSaver restore_flags_at_exit;
  options_internal::ResetForTesting();
  Parse({"--strata_thread_cache_bytes=2m", "--strata_purge_delay_ms=3s",
         "--strata_background_release=false", "--strata_purge_mode=free",
         "--strata_error_mode=count", "--strata_stats_on_exit=/tmp/strata-flags-test",
         "--strata_arenas_retained=4"});
  EXPECT_EQ(GetOption(Option::kThreadCacheBytes), 2 << 20);
  EXPECT_EQ(GetOption(Option::kPurgeDelayMs), 3000);
  EXPECT_EQ(GetOption(Option::kBackgroundRelease), 0);
  EXPECT_EQ(GetOption(Option::kPurgeMode), 1);
  EXPECT_EQ(GetOption(Option::kErrorMode), 1);
  EXPECT_EQ(GetOption(Option::kArenasRetained), 4);
  EXPECT_EQ(OptionValue(Option::kStatsOnExit), "/tmp/strata-flags-test");
  for (Option o : {Option::kThreadCacheBytes, Option::kPurgeDelayMs, Option::kBackgroundRelease,
                   Option::kPurgeMode, Option::kErrorMode, Option::kStatsOnExit,
                   Option::kArenasRetained}) {
    EXPECT_EQ(GetOptionSource(o), OptionSource::kFlag) << GetOptionInfo(o).name;
  }
  // Untouched knobs keep their default.
  EXPECT_EQ(GetOptionSource(Option::kRemoteBatchBytes), OptionSource::kDefault);
  options_internal::ResetForTesting();
}

TEST(FlagsTest, RefusedFlagValueIsNamedAndTheOldValueStays) {
  absl::FlagSaver restore_flags_at_exit;
  options_internal::ResetForTesting();
  ASSERT_TRUE(SetOption(Option::kRemoteBatchBytes, 8192));
  ::testing::internal::CaptureStderr();
  Parse({"--strata_remote_batch_bytes=5g"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(GetOption(Option::kRemoteBatchBytes), 8192);
  EXPECT_EQ(GetOptionSource(Option::kRemoteBatchBytes), OptionSource::kApi);
  EXPECT_NE(err.find("option remote_batch_bytes: value '5g' from --strata_remote_batch_bytes "
                     "refused: expected a byte count in [0, 1048576] (suffixes k, m, g); "
                     "keeping '8192'"),
            std::string::npos)
      << err;
  options_internal::ResetForTesting();
}

TEST(FlagsTest, SetFlagAndApplyFlags) {
  absl::FlagSaver restore_flags_at_exit;
  options_internal::ResetForTesting();
  absl::SetFlag(&FLAGS_strata_large_cache_bytes, "1m");  // OnUpdate applies it
  EXPECT_EQ(GetOption(Option::kLargeCacheBytes), 1 << 20);
  EXPECT_EQ(GetOptionSource(Option::kLargeCacheBytes), OptionSource::kFlag);
  ASSERT_TRUE(SetOption(Option::kLargeCacheBytes, 0));  // the API changes it...
  EXPECT_EQ(ApplyFlags(), 0);                            // ...the flag wins again
  EXPECT_EQ(GetOption(Option::kLargeCacheBytes), 1 << 20);
  absl::SetFlag(&FLAGS_strata_large_cache_bytes, "");  // empty: not set
  EXPECT_EQ(GetOption(Option::kLargeCacheBytes), 1 << 20);
  options_internal::ResetForTesting();
}

}  // namespace
}  // namespace strata
