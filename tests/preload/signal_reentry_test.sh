#!/usr/bin/env bash
# Issue 24, item 4: a SIGALRM handler that allocates and frees while its
# thread is inside malloc (signal_reentry.cc). Undefined for any malloc;
# strata's promise (README, "Signal handlers"): the run completes, or stops
# with exactly one line, "strata: malloc re-entered from a signal handler
# (...)", and an abort -- never another report (a misuse the program did not
# make) and never a hang. STRATA_PRELOAD_LIB picks the build.
source "$(dirname "$0")/lib.sh"
DIR="$(dirname "$0")"
for round in 1 2 3; do
  out="$TMP/reentry.$round"
  set +e
  STRATA_THREAD_CACHE_BYTES=0 strata timeout -s KILL 120 "$DIR/signal_reentry" 2 >"$out.out" 2>"$out.err"
  rc=$?
  set -e
  others=$(grep '^strata: ' "$out.err" | grep -v '^strata: malloc re-entered from a signal handler (' || true)
  if [ -n "$others" ]; then
    echo "FAIL: round $round: strata reported something else than the re-entry:"; cat "$out.err"; exit 1
  fi
  if [ "$rc" -eq 0 ] && grep -q "signal_reentry: ok" "$out.out"; then
    cat "$out.out"
    served "$STATS"
  elif [ "$rc" -eq 134 ] && [ "$(grep -c '^strata: malloc re-entered from a signal handler (' "$out.err")" -eq 1 ]; then
    echo "round $round: stopped with the re-entry report"
  else
    echo "FAIL: round $round: exit $rc (137: hung and killed)"; cat "$out.out" "$out.err"; exit 1
  fi
done
echo PASS
