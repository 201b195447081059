#!/usr/bin/env bash
# The CMake build end to end, as .ci/run runs it: configure and build both
# builds (the default libstrata.so, libstrata.a, libstrata_override.a and
# flags library; the checked libstrata-checked.so and the rest) and the unit
# tests, ctest, install to a prefix, then three consumers of that prefix or
# of the source tree:
#   find_package(strata CONFIG REQUIRED)  one program per exported target;
#   pkg-config --cflags --libs strata     a plain g++ command line (and
#                                         strata-checked);
#   FetchContent from the source folder   (what add_subdirectory does), offline.
# Each consumer checks whose malloc it got (tests/cmake/consumer.cc). The
# installed libraries are preloaded into a plain C program
# (tests/cmake/preload_probe.c), whose double free the checked one must
# report. Last, the Debian packages (tools/package.sh): what they hold, and
# their libraries preloaded into python3 (and the probe) from the unpacked .debs.
# .ci/run counts ctest's results and the "Passed: ..." lines.
# Usage: tests/cmake/run.sh [WORK_DIR]   (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/strata-cmake.XXXXXX")}
mkdir -p "$work"
jobs=$(nproc 2>/dev/null || echo 2)
step() { echo "=== cmake: $*"; }

step "configure and build"
cmake -S "$src" -B "$work/build" -G Ninja -DSTRATA_BUILD_TESTS=ON -DSTRATA_BUILD_FLAGS=ON \
  -DSTRATA_WERROR=ON >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j "$jobs"

step "unit tests (ctest)"
ctest --test-dir "$work/build" -j "$jobs" --output-on-failure

step "install"
prefix=$work/prefix
cmake --install "$work/build" --prefix "$prefix" >"$work/install.log"
for f in include/strata/strata.h include/strata/stats.h include/strata/profile.h \
         include/strata/options.h lib/cmake/strata/strataConfig.cmake \
         lib/cmake/strata/strataConfigVersion.cmake; do
  [ -e "$prefix/$f" ] || { echo "FAIL: install lacks $f"; exit 1; }
done
# Each build: its shared library (SONAME lib<name>.so.1, libc alone needed),
# its archives and its .pc.
for name in strata strata-checked; do
  for f in lib/lib$name.so lib/lib$name.so.1 lib/lib$name.a lib/lib${name}_override.a \
           lib/pkgconfig/$name.pc; do
    [ -e "$prefix/$f" ] || { echo "FAIL: install lacks $f"; exit 1; }
  done
  soname=$(readelf -d "$prefix/lib/lib$name.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  [ "$soname" = "lib$name.so.1" ] || { echo "FAIL: lib$name.so's SONAME is '$soname'"; exit 1; }
  needed=$(readelf -d "$prefix/lib/lib$name.so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  [ "$needed" = "libc.so.6 " ] || { echo "FAIL: lib$name.so needs '$needed' (libc alone expected)"; exit 1; }
  echo "Passed: install lib$name.so.1 (SONAME, libc alone), lib$name.a, lib${name}_override.a, $name.pc"
done

step "consumer: find_package"
cmake -S "$src/tests/cmake/find_package" -B "$work/find_package" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/find_package.log" || { cat "$work/find_package.log"; exit 1; }
cmake --build "$work/find_package"
ctest --test-dir "$work/find_package" --output-on-failure
# The checked targets gave the checked build: its shared library, or its
# objects (each build's checks.o defines its own tag, alloc/checks.cc).
needed=$(readelf -d "$work/find_package/with_checked" | grep -o 'libstrata[^]]*' | tr '\n' ' ')
[ "$needed" = "libstrata-checked.so.1 " ] || { echo "FAIL: strata::strata_checked linked '$needed'"; exit 1; }
# (grep reads all of nm's output: with -q it would stop at the match, nm
# would die of SIGPIPE, and pipefail would fail the pipeline.)
for t in with_checked_static with_override_checked; do
  nm "$work/find_package/$t" | grep ' strata_build_checked$' >/dev/null \
    || { echo "FAIL: $t does not hold the checked build"; exit 1; }
  if nm "$work/find_package/$t" | grep ' strata_build_default$' >/dev/null; then
    echo "FAIL: $t holds the default build"; exit 1
  fi
done
echo "Passed: find_package's checked targets link the checked build"

step "consumer: pkg-config"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
echo "pkg-config --cflags --libs strata: $(pkg-config --cflags --libs strata)"
[ "$(pkg-config --modversion strata)" = "$(cat "$src/VERSION")" ] || { echo "FAIL: pkg-config version"; exit 1; }
# shellcheck disable=SC2046
g++ -std=c++17 -O1 "$src/tests/cmake/consumer.cc" -o "$work/pkg_config_consumer" \
  $(pkg-config --cflags --libs strata)
LD_LIBRARY_PATH=$prefix/lib "$work/pkg_config_consumer" strata
echo "Passed: pkg-config consumer"
echo "pkg-config --libs strata-checked: $(pkg-config --libs strata-checked)"
# shellcheck disable=SC2046
g++ -std=c++17 -O1 "$src/tests/cmake/consumer.cc" -o "$work/pkg_config_checked_consumer" \
  $(pkg-config --cflags --libs strata-checked)
needed=$(readelf -d "$work/pkg_config_checked_consumer" | grep -o 'libstrata[^]]*' | tr '\n' ' ')
[ "$needed" = "libstrata-checked.so.1 " ] || { echo "FAIL: strata-checked.pc linked '$needed'"; exit 1; }
LD_LIBRARY_PATH=$prefix/lib "$work/pkg_config_checked_consumer" strata
echo "Passed: pkg-config consumer (strata-checked)"

step "preload: the installed libraries into a plain C program"
# -O0 -fno-builtin: every malloc and free reaches the preloaded library.
gcc -std=c11 -O0 -fno-builtin -Wall -Wextra -Werror "$src/tests/cmake/preload_probe.c" \
  -o "$work/preload_probe"
# The probe frees its blocks cleanly under LIB (a path), served by strata.
preload_clean() {  # LIB WHERE
  local out
  out=$(LD_PRELOAD=$1 STRATA_STATS_ON_EXIT=1 "$work/preload_probe" clean 2>&1)
  grep -q "^freed 20 blocks$" <<<"$out" || { echo "FAIL: the probe under $1:"; echo "$out"; exit 1; }
  grep -q "strata: statistics at exit" <<<"$out" || { echo "FAIL: $1 did not serve the probe"; exit 1; }
  echo "Passed: preload $(basename "$1") from $2 (clean)"
}
# The probe's double free under LIB, a checked build: reported, then SIGABRT.
# (The braces keep bash's own "Aborted" notice out of the log.)
preload_double_free() {  # LIB WHERE
  local rc=0 err=$work/double_free.err
  { ( ulimit -c 0; LD_PRELOAD=$1 exec "$work/preload_probe" double-free ) >"$work/double_free.out" \
      2>"$err"; } 2>/dev/null || rc=$?
  cat "$work/double_free.out" "$err"
  [ "$rc" -eq $((128 + 6)) ] || { echo "FAIL: the double free under $1 exited $rc, not by SIGABRT"; exit 1; }
  grep -qE 'strata: free\(0x[0-9a-f]+\): double free' "$err" \
    || { echo "FAIL: $1 did not report the double free"; exit 1; }
  echo "Passed: preload $(basename "$1") from $2 reports a double free (the checked build)"
}
preload_clean "$prefix/lib/libstrata.so.1" "the install"
preload_clean "$prefix/lib/libstrata-checked.so.1" "the install"
preload_double_free "$prefix/lib/libstrata-checked.so.1" "the install"

step "consumer: FetchContent / add_subdirectory, offline"
cmake -S "$src/tests/cmake/subdirectory" -B "$work/subdirectory" -G Ninja \
  -DSTRATA_SOURCE="$src" -DFETCHCONTENT_FULLY_DISCONNECTED=ON >"$work/subdirectory.log" \
  || { cat "$work/subdirectory.log"; exit 1; }
cmake --build "$work/subdirectory" -j "$jobs"
ctest --test-dir "$work/subdirectory" --output-on-failure

step "package: tools/package.sh, then its libraries preloaded from the unpacked .deb"
"$src/tools/package.sh" "$work/packages"
version=$(cat "$src/VERSION")
arch=$(dpkg --print-architecture)
deb=$work/packages/libstrata_${version}_${arch}.deb
dev_deb=$work/packages/libstrata-dev_${version}_${arch}.deb
# What each package holds, by file name: each build's library, SONAME link,
# development link, archives and .pc.
holds() {  # DEB NAME...
  local deb=$1 listing name
  shift
  listing=$(dpkg-deb -c "$deb")
  for name in "$@"; do
    grep -qE "/$name( -> .*)?\$" <<<"$listing" || { echo "FAIL: $(basename "$deb") lacks $name"; exit 1; }
  done
}
holds "$deb" libstrata.so.1 "libstrata.so.$version" libstrata-checked.so.1 \
  "libstrata-checked.so.$version"
holds "$dev_deb" libstrata.so libstrata.a libstrata_override.a strata.pc \
  libstrata-checked.so libstrata-checked.a libstrata-checked_override.a strata-checked.pc \
  strataConfig.cmake strataTargets.cmake
echo "Passed: package contents (libstrata.so.1, libstrata-checked.so.1 and their dev files)"
dpkg-deb -x "$deb" "$work/unpacked"
libdir=$(dirname "$(find "$work/unpacked" -name libstrata.so.1)")
[ -n "$libdir" ] || { echo "FAIL: $deb has no libstrata.so.1"; exit 1; }
for lib in libstrata.so.1 libstrata-checked.so.1; do
  out=$(LD_LIBRARY_PATH=$libdir LD_PRELOAD=$lib STRATA_STATS_ON_EXIT=1 \
        python3 -c 'print(sum(len(str(i)) for i in range(100000)))' 2>&1)
  head -n 2 <<<"$out"
  grep -q "^488890$" <<<"$out" || { echo "FAIL: python3 under the packaged $lib"; exit 1; }
  grep -q "strata: statistics at exit" <<<"$out" || { echo "FAIL: $lib did not serve python3"; exit 1; }
  echo "Passed: package preload $lib"
done
preload_double_free "$libdir/libstrata-checked.so.1" "the .deb"

echo "=== cmake: all passed"
