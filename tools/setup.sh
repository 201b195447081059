#!/usr/bin/env bash
# Installs every Debian package strata needs to build, test and compare itself.
# Idempotent: packages already present are left alone and apt is not asked twice.
# Works as root or through sudo. Needs only Debian's package archive.
set -euo pipefail

PACKAGES=(
  # Build: Debian's Bazel 4.2.3 and the offline rule stand-ins it reads; the
  # CMake build beside it, pkg-config for its consumers, dpkg-dev for the .deb.
  bazel-bootstrap bazel-platforms cmake ninja-build pkg-config dpkg-dev
  # Toolchains: g++ 12 for the default build, clang 14 + runtimes for TSan/ASan/UBSan/fuzz.
  g++ clang-14 libclang-rt-14-dev
  # Libraries used as system dependencies.
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  # Peers for side-by-side comparison through LD_PRELOAD.
  libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0
  # Measurement, and the charts drawn from it (Debian's python3, /usr/bin/python3).
  valgrind time python3-matplotlib
  # The class-shape check (tests/class_shape_test.sh) counts members with ctags.
  universal-ctags
  # Reading strata's heap profiles (google-pprof, the legacy heap-profile format).
  google-perftools
  # The model checker that verifies the lock-free protocols' Promela models
  # (tests/model/check.sh, run by //tests/model:check_test).
  spin
  # Real programs the preload tests run under strata: python3 and its stdlib
  # test suite, memcached with its conformance/load tools, sqlite3, git, sort.
  python3 libpython3.11-testsuite memcached libmemcached-tools sqlite3 git coreutils
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1
  fi
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
