# Shared by the preload tests: runs real programs with libstrata.so preloaded
# and checks, from strata's own statistics printed at exit, that strata (not
# glibc) served their allocations.
set -euo pipefail

# STRATA_PRELOAD_LIB (a test's env) picks the build: libstrata.so (default)
# or libstrata_checked.so.
LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../alloc" && pwd)/${STRATA_PRELOAD_LIB:-libstrata.so}"
[ -f "$LIB" ] || { echo "${STRATA_PRELOAD_LIB:-libstrata.so} not found at $LIB"; exit 1; }
TMP="${TEST_TMPDIR:-$(mktemp -d)}"

# strata CMD... : runs CMD preloaded; every process of it appends strata's
# exit statistics to $TMP/stats.N, whose name is in $STATS afterwards.
# (A file, not stderr: some programs check that their children print nothing.)
n_runs=0
strata() {
  n_runs=$((n_runs + 1))
  STATS="$TMP/stats.$n_runs"
  : >"$STATS"
  LD_PRELOAD="$LIB" STRATA_STATS_ON_EXIT="$STATS" "$@"
}

# served FILE [MIN_BYTES]: strata printed its statistics at exit, had mapped
# memory from the OS (at least MIN_BYTES) and counted no errors.
served() {
  local f=$1 min=${2:-1}
  grep -q "strata: statistics at exit" "$f" || { echo "FAIL: no strata statistics in $f:"; head -20 "$f"; exit 1; }
  local mapped  # the largest figure over every process that ran
  mapped=$(grep "^# OS:" "$f" | awk '{print $3}' | sort -n | tail -1)
  if [ -z "$mapped" ] || [ "$mapped" -lt "$min" ]; then
    echo "FAIL: strata mapped ${mapped:-nothing} bytes (expected >= $min)"; cat "$f"; exit 1
  fi
  if grep -q "errors counted: [1-9]" "$f"; then echo "FAIL: strata counted errors"; cat "$f"; exit 1; fi
  if grep -q "^strata: .*(0x" "$f" "$TMP"/*.err 2>/dev/null; then echo "FAIL: strata reported an invalid free"; exit 1; fi
  echo "ok: strata served it ($mapped bytes mapped at exit)"
}
