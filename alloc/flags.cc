// One Abseil flag per option, generated from STRATA_OPTION_LIST.
#include "alloc/flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "alloc/options.h"

namespace strata {
namespace {

// Returns false when strata refused the value (it printed why).
bool ApplyOne(Option o, const std::string& value) {
  if (value.empty()) return true;  // not set: the flag's default
  return SetOptionByName(GetOptionInfo(o).name, value.c_str(), OptionSource::kFlag);
}

}  // namespace
}  // namespace strata

#define STRATA_DEFINE_FLAG(id, name, type, def, lo, hi, runtime, choices, doc)                  \
  ABSL_FLAG(std::string, strata_##name, "",                                                     \
            "strata option " #name ": " doc " Empty: leave strata's value (the default, or "       \
            "STRATA_<NAME> from the environment).")                                             \
      .OnUpdate([] {                                                                            \
        strata::ApplyOne(strata::Option::id, absl::GetFlag(FLAGS_strata_##name));                \
      });
STRATA_OPTION_LIST(STRATA_DEFINE_FLAG)
#undef STRATA_DEFINE_FLAG

namespace strata {

int ApplyFlags() {
  int refused = 0;
#define STRATA_APPLY_FLAG(id, name, type, def, lo, hi, runtime, choices, doc) \
  refused += ApplyOne(Option::id, absl::GetFlag(FLAGS_strata_##name)) ? 0 : 1;
  STRATA_OPTION_LIST(STRATA_APPLY_FLAG)
#undef STRATA_APPLY_FLAG
  return refused;
}

}  // namespace strata
