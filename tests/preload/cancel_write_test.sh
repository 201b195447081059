#!/usr/bin/env bash
# Issue 24, item 1: a thread writing a heap profile or statistics that is
# cancelled in write(2), or blocked on a full pipe, must leave no strata lock
# held: the rest of the program (sampled allocations at 4 KiB, statistics,
# fork, later profiles) goes on. cancel_write cuts a hang itself with
# alarm() and names the step; `timeout` is the backstop.
source "$(dirname "$0")/lib.sh"
DIR="$(dirname "$0")"
run_mode() {
  local mode=$1 round=$2
  local out="$TMP/$mode.$round"
  if ! STRATA_PROFILE_SAMPLE_BYTES=4k strata timeout -s KILL 300 "$DIR/cancel_write" "$mode" \
      >"$out.out" 2>"$out.err"; then
    echo "FAIL: cancel_write $mode (round $round) did not finish:"; cat "$out.out" "$out.err"; exit 1
  fi
  grep -q "cancel_write: ok $mode" "$out.out" || { echo "FAIL: $mode"; cat "$out.out" "$out.err"; exit 1; }
  served "$STATS" 1000000
}
run_mode profile-pipe 1
run_mode stats-pipe 1
# Where the cancel lands is chance: the report hung 6 runs in 10.
for round in 1 2 3 4 5; do run_mode profile-devnull "$round"; done
echo PASS
