"""All compiler options for strata's own code live here (style: tcmalloc copts.bzl).

Third-party code (system gtest/absl/benchmark) is not compiled by us, so -Werror
only ever applies to strata's sources.
"""

STRATA_COPTS = [
    # An allocator is always built optimised, whatever the compilation mode:
    # tests then exercise the code that ships, the stress workloads run at
    # speed under `bazel test //...`, and the fast-path instruction count is
    # measured on real code. Sanitizer configs keep this -O2 (it follows their
    # --copt=-O1), which TSan and ASan support.
    "-O2",
    # In libstrata.so, calls between strata's own exported functions (free
    # -> FreeSlow, operator new -> the allocator) bind directly instead of
    # through the PLT: nobody interposes strata's internals.
    "-fno-semantic-interposition",
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
