#!/usr/bin/env bash
# Builds the Debian packages of strata with the CMake build, into OUT_DIR
# (default: ./packages):
#   libstrata_<version>_amd64.deb      the preloadable libraries in
#                                      /usr/lib/<multiarch>/: libstrata.so.1 and
#                                      the checked build's libstrata-checked.so.1
#                                      (SONAME links to lib*.so.<version>)
#   libstrata-dev_<version>_amd64.deb  headers (/usr/include/strata), the
#                                      libstrata.so and libstrata-checked.so
#                                      links, the static archives of both builds,
#                                      the CMake package, strata.pc and
#                                      strata-checked.pc
# Then: sudo apt install ./packages/libstrata*.deb
#       LD_PRELOAD=libstrata.so.1 python3 -c 'print("hello")'
#       LD_PRELOAD=libstrata-checked.so.1 python3 -c 'print("hello")'
# Needs cmake, ninja, dpkg-deb (tools/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=$(realpath -m "${1:-packages}")
version=$(cat VERSION)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-package.XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR="lib/$multiarch" >/dev/null
cmake --build "$work/build"
DESTDIR="$work/root" cmake --install "$work/build" >/dev/null

lib=usr/lib/$multiarch
runtime=$work/libstrata
dev=$work/libstrata-dev
mkdir -p "$runtime/$lib" "$runtime/DEBIAN" "$runtime/usr/share/doc/libstrata" \
         "$dev/$lib" "$dev/DEBIAN" "$dev/usr/share/doc/libstrata-dev"
# Runtime: each build's library and its SONAME link.
cp -a "$work/root/$lib"/libstrata.so.* "$work/root/$lib"/libstrata-checked.so.* "$runtime/$lib/"
# Development: everything else that was installed.
cp -a "$work/root/usr/include" "$dev/usr/"
cp -a "$work/root/$lib/libstrata.so" "$work/root/$lib/libstrata-checked.so" \
      "$work/root/$lib"/*.a "$work/root/$lib/cmake" "$work/root/$lib/pkgconfig" "$dev/$lib/"
# Nothing installed is left out of both packages, nor shipped twice.
installed=$(cd "$work/root" && find . ! -type d | sort)
packaged=$( (cd "$runtime" && find . ! -type d ! -path './DEBIAN/*' ! -path './usr/share/doc/*';
             cd "$dev" && find . ! -type d ! -path './DEBIAN/*' ! -path './usr/share/doc/*') | sort)
if [ "$installed" != "$packaged" ]; then
  echo "package.sh: the packages do not hold exactly what was installed:" >&2
  diff <(echo "$installed") <(echo "$packaged") >&2 || true
  exit 1
fi
for d in "$runtime/usr/share/doc/libstrata" "$dev/usr/share/doc/libstrata-dev"; do
  cp "$src/README.md" "$d/README.md"
done

size_of() { du -sk --exclude=DEBIAN "$1" | cut -f1; }
cat >"$runtime/DEBIAN/control" <<CONTROL
Package: libstrata
Version: $version
Architecture: $arch
Section: libs
Priority: optional
Multi-Arch: same
Depends: libc6 (>= 2.34)
Installed-Size: $(size_of "$runtime")
Maintainer: strata developers <strata@example.invalid>
Description: lock-free multithreaded memory allocator (preloadable)
 strata replaces malloc, free, new and delete for a whole program, linked or
 preloaded: LD_PRELOAD=libstrata.so.1 PROGRAM. Per-thread caches, cross-thread
 frees in batches, memory returned to the OS, misuse reported, statistics,
 heap profiles that pprof reads, and memory limits.
 .
 libstrata-checked.so.1 is the checked build, which reports every invalid,
 interior and double free: LD_PRELOAD=libstrata-checked.so.1 PROGRAM.
CONTROL
# The dynamic linker's cache learns the new library (dpkg's ldconfig trigger).
printf 'activate-noawait ldconfig\n' >"$runtime/DEBIAN/triggers"
cat >"$dev/DEBIAN/control" <<CONTROL
Package: libstrata-dev
Version: $version
Architecture: $arch
Section: libdevel
Priority: optional
Multi-Arch: same
Depends: libstrata (= $version)
Installed-Size: $(size_of "$dev")
Maintainer: strata developers <strata@example.invalid>
Description: lock-free multithreaded memory allocator (development files)
 Headers (strata/strata.h, stats.h, options.h, profile.h), the static
 libraries, the CMake package (find_package(strata): strata::strata,
 strata::strata_static, strata::override, and the checked build's
 strata::strata_checked, strata::strata_checked_static,
 strata::override_checked) and strata.pc, strata-checked.pc for pkg-config.
CONTROL

mkdir -p "$out"
dpkg-deb --root-owner-group --build "$runtime" "$out/libstrata_${version}_${arch}.deb" >/dev/null
dpkg-deb --root-owner-group --build "$dev" "$out/libstrata-dev_${version}_${arch}.deb" >/dev/null
ls -1 "$out"/libstrata*_"${version}"_"${arch}".deb
