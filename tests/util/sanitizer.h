// Lets tests scale their workloads down under sanitizers, whose shadow memory
// and instrumentation multiply the cost of every byte touched.
#ifndef STRATA_TESTS_UTIL_SANITIZER_H_
#define STRATA_TESTS_UTIL_SANITIZER_H_

namespace strata::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kUnderSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kUnderSanitizer = true;
#else
inline constexpr bool kUnderSanitizer = false;
#endif
#else
inline constexpr bool kUnderSanitizer = false;
#endif

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kUnderTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kUnderTsan = true;
#else
inline constexpr bool kUnderTsan = false;
#endif
#else
inline constexpr bool kUnderTsan = false;
#endif

// Picks `normal` in plain builds and `sanitized` under ASan/TSan.
template <typename T>
constexpr T Scaled(T normal, T sanitized) {
  return kUnderSanitizer ? sanitized : normal;
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_UTIL_SANITIZER_H_
