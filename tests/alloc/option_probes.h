// For tests of the options registry: a valid non-default value and an
// invalid value for any option, derived from its declaration, so that every
// knob can be driven through every path (environment, API, flag).
#ifndef STRATA_TESTS_ALLOC_OPTION_PROBES_H_
#define STRATA_TESTS_ALLOC_OPTION_PROBES_H_

#include <cstdint>
#include <string>

#include "alloc/options.h"
#include "gtest/gtest.h"

namespace strata {

// A valid value for option o other than its default, and an invalid one.
struct Probe {
  std::string valid;
  int64_t valid_value;  // what GetOption() must then return (numeric kinds)
  std::string invalid;
};

inline Probe ProbeFor(Option o) {
  const OptionInfo& info = GetOptionInfo(o);
  switch (info.type) {
    case OptionType::kBool:
      return {info.default_value ? "off" : "yes", info.default_value ? 0 : 1, "maybe"};
    case OptionType::kEnum: {
      // The last choice name if the default is the first, else the first.
      std::string choices = info.choices;
      const size_t bar = choices.find('|');
      if (info.default_value == 0) {
        const size_t last = choices.rfind('|');
        int64_t index = 0;
        for (char c : choices) index += c == '|';
        return {choices.substr(last + 1), index, "no-such-choice"};
      }
      return {choices.substr(0, bar), 0, "no-such-choice"};
    }
    case OptionType::kInt:
    case OptionType::kBytes:
    case OptionType::kMillis: {
      const int64_t v = info.max != info.default_value ? info.max : info.min;
      return {std::to_string(v), v, std::to_string(info.max + 1)};
    }
    case OptionType::kString:
      return {"/tmp/strata-options-test", 0, "relative/path"};
  }
  return {};
}

// Option o's current value as strata prints it.
inline std::string OptionValue(Option o) {
  char buf[kMaxOptionString];
  FormatOptionValue(o, buf, sizeof(buf));
  return buf;
}

// Whether o now holds p's valid value: its text for string knobs, the number
// it parses to for the others.
inline ::testing::AssertionResult HoldsValidProbe(Option o, const Probe& p) {
  if (GetOptionInfo(o).type == OptionType::kString) {
    const std::string now = OptionValue(o);
    if (now == p.valid) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "holds '" << now << "', expected '" << p.valid << "'";
  }
  const int64_t now = GetOption(o);
  if (now == p.valid_value) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "holds " << now << ", expected " << p.valid_value;
}

}  // namespace strata

#endif  // STRATA_TESTS_ALLOC_OPTION_PROBES_H_
