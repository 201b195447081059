#!/usr/bin/env bash
# Counts the instructions per pair of each case of fast_path_driver with
# callgrind. Used by fast_path_test.sh and update_golden.sh.
#
# Usage: measure_fast_path.sh DRIVER [PAIRS]
# Runs the driver under callgrind once per case (collecting only inside that
# case's function) and prints one line per case:
#   <case> <api> <caller> <libc> <callee breakdown>
# all per pair, exact (callgrind counts executed guest instructions; no
# sampling, no timing):
#   api     instructions executed inside the calls the case makes into
#           strata, from each callee's first instruction through its `ret`,
#           with everything they call: glibc's memset for calloc included.
#           Not included: the caller's `call` instructions, argument set-up,
#           the program's store into the block, and the loop.
#   caller  the case function's own instructions (those just listed, with
#           its prologue and epilogue spread over the pairs).
#   libc    the part of api spent outside the driver binary (in glibc).
# "case" is the function name without its strata_perf_case_ prefix; the
# reference loop strata_perf_ref_empty prints as "ref:empty".
# Exits non-zero, saying why, when valgrind is missing or fails, or when a
# case's callees were not called exactly PAIRS times each.
set -euo pipefail

driver=${1:?usage: measure_fast_path.sh DRIVER [PAIRS]}
pairs=${2:-100000}

if ! command -v valgrind >/dev/null 2>&1; then
  echo "measure_fast_path.sh: valgrind not found; install it (apt-get install valgrind," \
       "or tools/setup.sh). The fast-path count cannot be checked without it." >&2
  exit 1
fi

work=$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/fast_path.XXXXXX")
trap 'rm -rf "$work"' EXIT

functions=$("$driver" --list)
[ -n "$functions" ] || { echo "measure_fast_path.sh: $driver --list printed nothing" >&2; exit 1; }

for function in $functions; do
  out="$work/$function.out"
  # --collect-atstart=no + --toggle-collect: count only while inside the
  # case function (and what it calls). Uncompressed names and positions keep
  # the output parsable line by line.
  if ! valgrind --tool=callgrind --callgrind-out-file="$out" \
      --collect-atstart=no --toggle-collect="$function" \
      --compress-strings=no --compress-pos=no \
      "$driver" "$pairs" "$function" >"$work/log" 2>&1; then
    echo "measure_fast_path.sh: valgrind failed on $function:" >&2
    tail -20 "$work/log" >&2
    exit 1
  fi
  # Callgrind's format: "ob=OBJECT" and "fn=NAME" open a function's records;
  # "cob=OBJECT" (when it differs from ob), "cfn=NAME" then "calls=COUNT
  # TARGET" announce a call, and the next cost line "POSITION COST" is that
  # call's inclusive cost; other cost lines are the function's own. Names
  # repeat across objects, so functions are keyed by object and name. Call
  # counts are kept even while collection is off, so only the case
  # function's own arcs (made while it ran) are checked against PAIRS.
  awk -v pairs="$pairs" -v case_fn="$function" '
    /^ob=/    { ob = substr($0, 4); next }
    /^fn=/    { fn = substr($0, 4); caller = ob SUBSEP fn; if (fn == case_fn) me = caller; next }
    /^cob=/   { cob = substr($0, 5); next }
    /^cfn=/   { cfn = substr($0, 5); callee = (cob != "" ? cob : ob) SUBSEP cfn; cob = ""; next }
    /^calls=/ { split($1, kv, "="); ncalls = kv[2]; in_call = 1; next }
    /^[0-9+-]/ {
      if (in_call) {
        in_call = 0
        if (fn == case_fn) {
          if (!((caller, cfn) in incl)) order[++ncallees] = cfn
          incl[caller, cfn] += $2; calls[caller, cfn] += ncalls
        }
        if ($2 > 0) { ++narcs; arc_from[narcs] = caller; arc_to[narcs] = callee; arc_cost[narcs] = $2 }
      } else if (fn == case_fn) {
        self += $2
      }
      next
    }
    END {
      bad = 0; api = 0; detail = ""
      for (i = 1; i <= ncallees; ++i) {
        c = order[i]
        api += incl[me, c]
        if (calls[me, c] != pairs) {
          printf "measure_fast_path.sh: %s called %s %d times, expected %d\n",
                 case_fn, c, calls[me, c], pairs > "/dev/stderr"
          bad = 1
        }
        detail = detail sprintf("%s%s=%.2f", (i > 1 ? "; " : ""), c, incl[me, c] / pairs)
      }
      # Functions the case reached (its callees, theirs, ...), then the cost
      # of their calls from the driver binary into another object (glibc).
      split(me, parts, SUBSEP); driver_ob = parts[1]
      reached[me] = 1
      for (grew = 1; grew;) {
        grew = 0
        for (i = 1; i <= narcs; ++i) {
          if ((arc_from[i] in reached) && !(arc_to[i] in reached)) { reached[arc_to[i]] = 1; grew = 1 }
        }
      }
      libc = 0
      for (i = 1; i <= narcs; ++i) {
        split(arc_from[i], from, SUBSEP); split(arc_to[i], to, SUBSEP)
        if ((arc_from[i] in reached) && from[1] == driver_ob && to[1] != driver_ob) libc += arc_cost[i]
      }
      name = case_fn
      if (sub(/^strata_perf_case_/, "", name) == 0) sub(/^strata_perf_ref_/, "ref:", name)
      printf "%s %.2f %.2f %.2f %s\n", name, api / pairs, self / pairs, libc / pairs, detail
      exit bad
    }
  ' "$out"
done
