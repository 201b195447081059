"""All compiler options for strata's own code live here (style: tcmalloc copts.bzl).

Third-party code (system gtest/absl/benchmark) is not compiled by us, so -Werror
only ever applies to strata's sources.
"""

STRATA_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wnon-virtual-dtor",
    # Allocator code must not depend on exceptions or RTTI on its paths; the
    # operator new shims throw std::bad_alloc explicitly where the contract says so.
    "-fno-exceptions",
]

# Tests and tools use gtest/benchmark headers, which need exceptions on and
# trip -Wshadow in their macros.
STRATA_TEST_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    # gtest's TEST macros compare signed and unsigned in EXPECT_EQ on sizes.
    "-Wno-sign-compare",
]
