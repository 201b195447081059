// The options registry: every knob through the environment and the API
// (the flag path is in flags_test), valid and invalid values, messages that
// name the knob, the value and the accepted range, and the old value kept.
#include "alloc/options.h"

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "tests/alloc/option_probes.h"

namespace strata {
namespace {

std::string EnvName(Option o) {
  std::string n = "STRATA_";
  for (const char* c = GetOptionInfo(o).name; *c; ++c) n += static_cast<char>(toupper(*c));
  return n;
}

class OptionsTest : public ::testing::Test {
 protected:
  void SetUp() override { options_internal::ResetForTesting(); }
  void TearDown() override { options_internal::ResetForTesting(); }
};

TEST_F(OptionsTest, EveryKnobIsDeclaredWithADefaultInRangeAndDocumented) {
  for (size_t i = 0; i < kNumOptions; ++i) {
    const auto o = static_cast<Option>(i);
    const OptionInfo& info = GetOptionInfo(o);
    SCOPED_TRACE(info.name);
    EXPECT_GT(strlen(info.doc), 20u);
    Option found;
    ASSERT_TRUE(FindOption(info.name, &found));
    EXPECT_EQ(found, o);
    ASSERT_TRUE(FindOption((std::string("strata_") + info.name).c_str(), &found));
    EXPECT_EQ(found, o);
    EXPECT_EQ(GetOptionSource(o), OptionSource::kDefault);
    if (info.type != OptionType::kString) {
      EXPECT_EQ(GetOption(o), info.default_value);
      EXPECT_LE(info.min, info.default_value);
      EXPECT_GE(info.max, info.default_value);
    }
  }
  Option unused;
  EXPECT_FALSE(FindOption("no_such_option", &unused));
}

TEST_F(OptionsTest, EveryKnobThroughTheApi) {
  for (size_t i = 0; i < kNumOptions; ++i) {
    const auto o = static_cast<Option>(i);
    const OptionInfo& info = GetOptionInfo(o);
    SCOPED_TRACE(info.name);
    const Probe p = ProbeFor(o);
    ASSERT_TRUE(SetOptionByName(info.name, p.valid.c_str()));
    EXPECT_EQ(GetOptionSource(o), OptionSource::kApi);
    EXPECT_TRUE(HoldsValidProbe(o, p));
    const std::string before = OptionValue(o);
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(SetOptionByName(info.name, p.invalid.c_str()));
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(OptionValue(o), before) << "a refused value must leave the old one";
    EXPECT_NE(err.find(std::string("option ") + info.name), std::string::npos) << err;
    EXPECT_NE(err.find("'" + p.invalid + "'"), std::string::npos) << err;
    EXPECT_NE(err.find("expected"), std::string::npos) << err;
    EXPECT_NE(err.find("keeping '" + before + "'"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
  }
}

TEST_F(OptionsTest, EveryKnobThroughTheEnvironment) {
  for (size_t i = 0; i < kNumOptions; ++i) {
    const auto o = static_cast<Option>(i);
    const OptionInfo& info = GetOptionInfo(o);
    SCOPED_TRACE(info.name);
    const Probe p = ProbeFor(o);
    const std::string env = EnvName(o);
    setenv(env.c_str(), p.valid.c_str(), 1);
    options_internal::ReadEnvironmentForTesting();
    EXPECT_EQ(GetOptionSource(o), OptionSource::kEnv);
    EXPECT_TRUE(HoldsValidProbe(o, p));
    const std::string before = OptionValue(o);
    setenv(env.c_str(), p.invalid.c_str(), 1);
    ::testing::internal::CaptureStderr();
    options_internal::ReadEnvironmentForTesting();
    const std::string err = ::testing::internal::GetCapturedStderr();
    unsetenv(env.c_str());
    EXPECT_EQ(OptionValue(o), before);
    EXPECT_NE(err.find("from " + env), std::string::npos) << err;
    EXPECT_NE(err.find("'" + p.invalid + "'"), std::string::npos) << err;
    EXPECT_NE(err.find("keeping"), std::string::npos) << err;
  }
}

TEST_F(OptionsTest, RangesAreNamedInTheMessage) {
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(SetOption(Option::kPurgeDelayMs, -2));
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("option purge_delay_ms: value '-2' from the API refused: expected "
                     "milliseconds in [-1, 3600000] (suffixes ms, s); keeping '1000'"),
            std::string::npos)
      << err;
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(SetOptionByName("thread_cache_bytes", "2t"));
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("expected a byte count in [0, 1073741824]"), std::string::npos) << err;
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(SetOptionByName("purge_mode", "sometimes"));
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("expected one of: dontneed, free"), std::string::npos) << err;
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(SetOptionByName("no_such_knob", "1"));
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("unknown option 'no_such_knob'"), std::string::npos) << err;
}

TEST_F(OptionsTest, ValuesParseWithUnits) {
  struct Case {
    const char* name;
    const char* text;
    int64_t want;
  } cases[] = {
      {"thread_cache_bytes", "512k", 512 << 10},  {"thread_cache_bytes", "2M", 2 << 20},
      {"thread_cache_bytes", "1GiB", 1 << 30},    {"thread_cache_bytes", "4096", 4096},
      {"remote_batch_bytes", "0", 0},             {"purge_delay_ms", "2s", 2000},
      {"purge_delay_ms", "250ms", 250},           {"purge_delay_ms", "-1", -1},
      {"background_release", "false", 0},         {"background_release", "ON", 1},
      {"purge_mode", "free", 1},                  {"error_mode", "count", 1},
      {"stats_format", "prometheus", 3},          {"arenas_retained", "0", 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + "=" + c.text);
    Option o;
    ASSERT_TRUE(FindOption(c.name, &o));
    ASSERT_TRUE(SetOptionByName(c.name, c.text));
    EXPECT_EQ(GetOption(o), c.want);
  }
  for (const char* bad : {"", "k", "12x", "1.5m", "99999999999999999999", "- 1"}) {
    SCOPED_TRACE(bad);
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(SetOptionByName("thread_cache_bytes", bad));
    ::testing::internal::GetCapturedStderr();
  }
}

TEST_F(OptionsTest, TypedSettersAndTheCApi) {
  EXPECT_TRUE(SetThreadCacheBytes(256 << 10));
  EXPECT_EQ(GetOption(Option::kThreadCacheBytes), 256 << 10);
  EXPECT_TRUE(SetRemoteBatchBytes(4096));
  EXPECT_EQ(GetOption(Option::kRemoteBatchBytes), 4096);
  EXPECT_TRUE(SetPurgeDelayMs(0));
  EXPECT_EQ(GetOption(Option::kPurgeDelayMs), 0);
  EXPECT_TRUE(SetBackgroundRelease(false));
  EXPECT_EQ(GetOption(Option::kBackgroundRelease), 0);

  EXPECT_EQ(strata_option_set("arenas_retained", "3"), 0);
  EXPECT_EQ(GetOption(Option::kArenasRetained), 3);
  EXPECT_EQ(strata_option_set_int("large_cache_bytes", 1 << 20), 0);
  EXPECT_EQ(GetOption(Option::kLargeCacheBytes), 1 << 20);
  char buf[64];
  EXPECT_EQ(strata_option_get("large_cache_bytes", buf, sizeof(buf)), 0);
  EXPECT_STREQ(buf, "1048576");
  EXPECT_EQ(strata_option_get("purge_mode", buf, sizeof(buf)), 0);
  EXPECT_STREQ(buf, "dontneed");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(strata_option_set_int("arenas_retained", -1), -1);
  EXPECT_EQ(strata_option_set("nope", "1"), -1);
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(strata_option_get("nope", buf, sizeof(buf)), -1);
  EXPECT_EQ(GetOption(Option::kArenasRetained), 3);

  // Text options go by name only.
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(SetOption(Option::kSampleFile, 1));
  ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(SetOptionByName("stats_on_exit", "stderr"));
  EXPECT_EQ(OptionValue(Option::kStatsOnExit), "stderr");
}

TEST_F(OptionsTest, ChangeHookSeesEveryChange) {
  static int calls;
  static Option last;
  calls = 0;
  options_internal::SetChangeHook([](Option o) {
    ++calls;
    last = o;
  });
  EXPECT_TRUE(SetPurgeDelayMs(5));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(last, Option::kPurgeDelayMs);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(SetPurgeDelayMs(-7));  // refused: no change, no call
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls, 1);
  options_internal::SetChangeHook(nullptr);
}

}  // namespace
}  // namespace strata
