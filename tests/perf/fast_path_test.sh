#!/usr/bin/env bash
# Fails when one of strata's fast paths executes more instructions per pair
# than its golden value in fast_path_golden.txt.
#
# Args (from BUILD.bazel): MEASURE_SCRIPT DRIVER GOLDEN COMPILATION_MODE.
# The count is exact (callgrind), so the only tolerance is below half an
# instruction per pair: one instruction more fails. (A fraction is a rare
# slow path that the random link key makes vary from run to run: a value the
# driver writes into its block that happens to decode like a free link, about
# one in 2^20, is checked by the slow path and freed in ~100 instructions.) A case that got cheaper by more than 2 instructions passes and
# asks for the golden to be lowered (tests/perf/update_golden.sh), so that
# the gain is locked in. Goldens are per compilation mode and build
# ("opt/NAME", "opt-checked/NAME"),
# because -c opt links strata's non-PIC objects and its code differs by a
# few instructions. Without valgrind the test fails: it never passes
# unchecked.
set -uo pipefail

measure=${1:?} driver=${2:?} golden=${3:?} mode=${4:?}

echo "fast-path instructions per malloc+free pair, compilation mode '$mode'"
echo "measured: instructions executed inside strata's entry points per pair"
echo "(callgrind, exact; callees included, glibc's memset for calloc too;"
echo "the caller's loop, call instructions and argument set-up excluded)."
echo

if ! results=$("$measure" "$driver"); then
  echo "FAIL: could not measure (see the message above)."
  exit 1
fi

awk -v mode="$mode" -v golden_file="$golden" '
  FNR == NR {
    if ($0 ~ /^[ \t]*(#|$)/) next
    key = $1
    if (index(key, mode "/") != 1) next
    name = substr(key, length(mode) + 2)
    want[name] = $2; golden_order[++ngolden] = name
    next
  }
  {
    name = $1; got[name] = $2; caller[name] = $3; libc[name] = $4
    $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); detail[name] = $0
    measured_order[++nmeasured] = name
  }
  END {
    if (ngolden == 0) {
      printf "FAIL: %s has no values for mode %s: run tests/perf/update_golden.sh\n", golden_file, mode
      exit 1
    }
    printf "%-26s %9s %9s %7s   %s\n", "case", "measured", "golden", "delta", "status"
    failed = 0; lower = 0
    for (i = 1; i <= nmeasured; ++i) {
      n = measured_order[i]
      if (n ~ /^ref:/) continue
      if (!(n in want)) {
        printf "%-26s %9.2f %9s %7s   FAIL: no golden value (run tests/perf/update_golden.sh)\n", n, got[n], "-", "-"
        failed = 1
        continue
      }
      d = got[n] - want[n]
      status = "ok"
      if (d >= 0.5) { status = "FAIL: grew"; failed = 1 }
      else if (d < -2) { status = "ok, cheaper: lower the golden"; lower = 1 }
      printf "%-26s %9.2f %9.2f %+7.2f   %s\n", n, got[n], want[n], d, status
    }
    for (i = 1; i <= ngolden; ++i) {
      n = golden_order[i]
      if (!(n in got)) {
        printf "%-26s %9s %9.2f %7s   FAIL: golden case not measured (driver changed?)\n", n, "-", want[n], "-"
        failed = 1
      }
    }
    print ""
    print "per call (api), caller loop overhead per pair, and the part in glibc:"
    for (i = 1; i <= nmeasured; ++i) {
      n = measured_order[i]
      printf "  %-26s caller %.2f, libc %.2f: %s\n", n, caller[n], libc[n], detail[n]
    }
    print ""
    if (lower) print "Some cases got cheaper: run tests/perf/update_golden.sh to lock the gain in."
    if (failed) {
      print "FAIL: a fast path grew. Find where with tests/perf/annotate_fast_path.sh CASE;"
      print "if the growth is intended, run tests/perf/update_golden.sh and say why in the commit."
      exit 1
    }
    print "PASS"
  }
' "$golden" - <<<"$results"
