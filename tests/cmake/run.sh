#!/usr/bin/env bash
# The CMake build end to end, as .ci/run runs it: configure and build
# (libstrata.so, libstrata.a, libstrata_override.a, the flags library and the
# unit tests), ctest, install to a prefix, then three consumers of that
# prefix or of the source tree:
#   find_package(strata CONFIG REQUIRED)  one program per exported target;
#   pkg-config --cflags --libs strata     a plain g++ command line;
#   FetchContent from the source folder   (what add_subdirectory does), offline.
# Each consumer checks whose malloc it got (tests/cmake/consumer.cc). Last,
# the Debian packages (tools/package.sh), whose library is preloaded into
# python3 from the unpacked .deb.
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
         include/strata/options.h lib/libstrata.so.1 lib/libstrata.a lib/libstrata_override.a \
         lib/cmake/strata/strataConfig.cmake lib/cmake/strata/strataConfigVersion.cmake \
         lib/pkgconfig/strata.pc; do
  [ -e "$prefix/$f" ] || { echo "FAIL: install lacks $f"; exit 1; }
done
soname=$(readelf -d "$prefix/lib/libstrata.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libstrata.so.1 ] || { echo "FAIL: SONAME is '$soname'"; exit 1; }
needed=$(readelf -d "$prefix/lib/libstrata.so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[ "$needed" = "libc.so.6 " ] || { echo "FAIL: libstrata.so needs '$needed' (libc alone expected)"; exit 1; }

step "consumer: find_package"
cmake -S "$src/tests/cmake/find_package" -B "$work/find_package" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/find_package.log" || { cat "$work/find_package.log"; exit 1; }
cmake --build "$work/find_package"
ctest --test-dir "$work/find_package" --output-on-failure

step "consumer: pkg-config"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
echo "pkg-config --cflags --libs strata: $(pkg-config --cflags --libs strata)"
[ "$(pkg-config --modversion strata)" = "$(cat "$src/VERSION")" ] || { echo "FAIL: pkg-config version"; exit 1; }
# shellcheck disable=SC2046
g++ -std=c++17 -O1 "$src/tests/cmake/consumer.cc" -o "$work/pkg_config_consumer" \
  $(pkg-config --cflags --libs strata)
LD_LIBRARY_PATH=$prefix/lib "$work/pkg_config_consumer" strata
echo "Passed: pkg-config consumer"

step "consumer: FetchContent / add_subdirectory, offline"
cmake -S "$src/tests/cmake/subdirectory" -B "$work/subdirectory" -G Ninja \
  -DSTRATA_SOURCE="$src" -DFETCHCONTENT_FULLY_DISCONNECTED=ON >"$work/subdirectory.log" \
  || { cat "$work/subdirectory.log"; exit 1; }
cmake --build "$work/subdirectory" -j "$jobs"
ctest --test-dir "$work/subdirectory" --output-on-failure

step "package: tools/package.sh, then its library preloaded from the unpacked .deb"
"$src/tools/package.sh" "$work/packages"
version=$(cat "$src/VERSION")
deb=$work/packages/libstrata_${version}_$(dpkg --print-architecture).deb
dpkg-deb -x "$deb" "$work/unpacked"
libdir=$(dirname "$(find "$work/unpacked" -name libstrata.so.1)")
[ -n "$libdir" ] || { echo "FAIL: $deb has no libstrata.so.1"; exit 1; }
out=$(LD_LIBRARY_PATH=$libdir LD_PRELOAD=libstrata.so.1 STRATA_STATS_ON_EXIT=1 \
      python3 -c 'print(sum(len(str(i)) for i in range(100000)))' 2>&1)
head -n 2 <<<"$out"
grep -q "^488890$" <<<"$out" || { echo "FAIL: python3 under the packaged library"; exit 1; }
grep -q "strata: statistics at exit" <<<"$out" || { echo "FAIL: strata did not serve python3"; exit 1; }
echo "Passed: package preload"

echo "=== cmake: all passed"
