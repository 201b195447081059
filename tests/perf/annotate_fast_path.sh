#!/usr/bin/env bash
# Lists, instruction by instruction, what one case of fast_path_driver
# executes inside strata per pair: callgrind with --dump-instr=yes, joined
# with objdump's disassembly of the driver. For redesigning the fast path.
#
# Usage: tests/perf/annotate_fast_path.sh [CASE] [PAIRS]
#   CASE   a case of fast_path_driver.cc without its strata_perf_case_ prefix
#          (default malloc_free_32); PAIRS default 1000.
#   STRATA_BUILD=_checked in the environment annotates the checked build.
# Builds the driver (default compilation mode, as fast_path_test does).
# Each line: executions per pair, address, instruction. Only instructions
# executed while the case ran are listed, in address order per function; the
# case function itself (the caller's loop) is listed too, last.
set -euo pipefail
cd "$(dirname "$0")/../.."

case_name=${1:-malloc_free_32}
pairs=${2:-1000}
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }

driver_target=fast_path_driver${STRATA_BUILD:-}
bazel build "//tests/perf:$driver_target" >&2
driver=bazel-bin/tests/perf/$driver_target
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" --collect-atstart=no \
  --toggle-collect="strata_perf_case_$case_name" --dump-instr=yes \
  --compress-strings=no --compress-pos=no "$driver" "$pairs" >"$work/log" 2>&1 ||
  { cat "$work/log" >&2; exit 1; }
objdump -d --no-show-raw-insn -C "$driver" >"$work/asm"

# Cost lines inside a function's records are "ADDRESS LINE COST"; the line
# after "calls=" is a call's inclusive cost, skipped here (the call
# instruction's own execution has a cost line of its own).
awk -v pairs="$pairs" '
  FNR == NR {
    if (/^fn=/) { fn = substr($0, 4); next }
    if (/^calls=/) { skip = 1; next }
    if (/^0x/) {
      if (skip) { skip = 0; next }
      addr = tolower(substr($1, 3)); sub(/^0+/, "", addr)
      count[addr] += $NF; owner[addr] = fn; total += $NF
    }
    next
  }
  /^[0-9a-f]+ <.*>:$/ { header = $0; printed = 0; next }
  /^ *[0-9a-f]+:\t/ {
    addr = $1; sub(/:$/, "", addr); sub(/^0+/, "", addr)
    if (!(addr in count)) next
    if (!printed) { print ""; print header; printed = 1 }
    line = $0; sub(/^ *[0-9a-f]+:\t/, "", line)
    printf "%8.2f  %6s  %s\n", count[addr] / pairs, addr, line
    byfn[owner[addr]] += count[addr]
  }
  END {
    print ""
    printf "per pair, by function (self):\n"
    for (f in byfn) printf "%8.2f  %s\n", byfn[f] / pairs, f
    printf "%8.2f  total collected (includes the caller loop)\n", total / pairs
  }
' "$work/cg.out" "$work/asm"
