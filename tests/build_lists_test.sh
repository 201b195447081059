#!/usr/bin/env bash
# The CMake build (cmake/sources.cmake) and the Bazel build (the BUILD files)
# list the same sources and the same unit tests, each test in the same builds
# of the allocator (default, checked); every alloc/*.cc on disk is in both.
# Fails naming what one build has and the other lacks.
# Usage: build_lists_test.sh SOURCES_CMAKE ALLOC_BUILD TESTS_ALLOC_BUILD TESTS_THREADING_BUILD
#        TESTS_PROFILE_BUILD ALLOC_FILE...
set -euo pipefail
cmake_list=$1 alloc_build=$2 tests_alloc=$3 tests_threading=$4 tests_profile=$5
shift 5

tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/lists.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Sources: every alloc/*.cc named in CMake's list, in alloc/BUILD.bazel, on disk.
grep -oE '(^|[ (])alloc/[a-z_]+\.cc' "$cmake_list" | sed 's/^[ (]*//' | sort -u >"$tmp/cmake_src"
grep -oE '"[a-z_]+\.cc"' "$alloc_build" | tr -d '"' | sed 's|^|alloc/|' | sort -u >"$tmp/bazel_src"
for f in "$@"; do case "$f" in *.cc) echo "alloc/$(basename "$f")" ;; esac; done | sort -u >"$tmp/disk_src"

# Unit tests: the gtest files of tests/alloc, tests/threading, tests/profile.
grep -oE 'tests/(alloc|threading|profile)/[a-z_]+_test\.cc' "$cmake_list" | sort -u >"$tmp/cmake_tests"
{
  grep -oE '"[a-z_]+_test\.cc"' "$tests_alloc" | tr -d '"' | sed 's|^|tests/alloc/|'
  grep -oE '^ +"[a-z_]+_test",' "$tests_threading" | tr -d ' ",' | sed 's|^|tests/threading/|; s|$|.cc|'
  grep -oE '"[a-z_]+_test\.cc"' "$tests_profile" | tr -d '"' | sed 's|^|tests/profile/|'
} | sort -u >"$tmp/bazel_tests"

# The builds each unit test runs in. Bazel: a strata_cc_test of tests/alloc
# runs in the builds its `builds` names (both when it names none), a cc_test
# in the default build only. CMake: STRATA_TESTS and STRATA_FLAGS_TESTS run
# on the default build, STRATA_CHECKED_TESTS on the checked one.
awk '
  /^(strata_cc_test|cc_test)\(/ { kind = substr($0, 1, index($0, "(") - 1); src = ""; builds = "" }
  kind != "" && match($0, /"[a-z_]+_test\.cc"/) { src = substr($0, RSTART + 1, RLENGTH - 2) }
  kind != "" && /^ +builds = / { builds = $0 }
  kind != "" && /^\)/ {
    if (src != "") {
      if (kind == "cc_test") print "default", src
      else if (builds == "") { print "default", src; print "checked", src }
      else {
        if (builds ~ /""/) print "default", src
        if (builds ~ /"_checked"/) print "checked", src
      }
    }
    kind = ""
  }
' "$tests_alloc" | sed 's| | tests/alloc/|' >"$tmp/bazel_alloc_builds"
awk '$1 == "checked" { print $2 }' "$tmp/bazel_alloc_builds" | sort -u >"$tmp/bazel_checked"
# The default build: tests/alloc's that run on it, and every other folder's.
{ awk '$1 == "default" { print $2 }' "$tmp/bazel_alloc_builds"
  awk '!/^tests\/alloc\//' "$tmp/bazel_tests"; } | sort -u >"$tmp/bazel_default"
cmake_set() {  # NAME: the unit tests of sources.cmake's set(NAME ...)
  awk -v name="$1" '$0 ~ "^set\\(" name "([ )]|$)" { on = 1 } on { print; if (/\)/) on = 0 }' \
    "$cmake_list" | grep -oE 'tests/(alloc|threading|profile)/[a-z_]+_test\.cc' || true
}
{ cmake_set STRATA_TESTS; cmake_set STRATA_FLAGS_TESTS; } | sort -u >"$tmp/cmake_default"
cmake_set STRATA_CHECKED_TESTS | sort -u >"$tmp/cmake_checked"

bad=0
differ() {  # NAME_A FILE_A NAME_B FILE_B
  local only_a only_b
  only_a=$(comm -23 "$2" "$4" | tr '\n' ' ')
  only_b=$(comm -13 "$2" "$4" | tr '\n' ' ')
  if [ -n "$only_a" ]; then echo "FAIL: in $1 but not in $3: $only_a"; bad=1; fi
  if [ -n "$only_b" ]; then echo "FAIL: in $3 but not in $1: $only_b"; bad=1; fi
}
differ "cmake/sources.cmake" "$tmp/cmake_src" "alloc/BUILD.bazel" "$tmp/bazel_src"
differ "alloc/ on disk" "$tmp/disk_src" "cmake/sources.cmake" "$tmp/cmake_src"
differ "cmake/sources.cmake (tests)" "$tmp/cmake_tests" "the tests' BUILD files" "$tmp/bazel_tests"
differ "cmake/sources.cmake (default build's tests)" "$tmp/cmake_default" \
  "the BUILD files (default build's tests)" "$tmp/bazel_default"
differ "cmake/sources.cmake (checked build's tests)" "$tmp/cmake_checked" \
  "the BUILD files (checked build's tests)" "$tmp/bazel_checked"
if [ "$bad" -ne 0 ]; then exit 1; fi
echo "build lists agree: $(wc -l <"$tmp/cmake_src") sources, $(wc -l <"$tmp/cmake_tests") unit tests" \
  "($(wc -l <"$tmp/cmake_default") on the default build, $(wc -l <"$tmp/cmake_checked") on the checked build)"
