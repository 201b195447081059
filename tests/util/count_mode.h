// Count mode for the scope of a test (error_mode=count: a misuse is
// reported, counted and ignored), with the errors counted since it began.
// The test's own deps bring alloc/error.h (either build's library).
#ifndef STRATA_TESTS_UTIL_COUNT_MODE_H_
#define STRATA_TESTS_UTIL_COUNT_MODE_H_

#include <cstdint>

#include "alloc/error.h"

namespace strata::internal {

class CountMode {
 public:
  CountMode() : mode_(GetErrorMode()), before_(ErrorCount()) { SetErrorMode(ErrorMode::kCount); }
  ~CountMode() { SetErrorMode(mode_); }
  CountMode(const CountMode&) = delete;
  CountMode& operator=(const CountMode&) = delete;
  // Misuses reported since this scope began.
  uint64_t Errors() const { return ErrorCount() - before_; }

 private:
  const ErrorMode mode_;
  const uint64_t before_;
};

}  // namespace strata::internal

#endif  // STRATA_TESTS_UTIL_COUNT_MODE_H_
