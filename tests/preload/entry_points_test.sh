#!/usr/bin/env bash
# Two programs of our own, run with libstrata.so preloaded: one mixing every
# entry point (and memory glibc handed out), one forking under load.
source "$(dirname "$0")/lib.sh"
DIR="$(dirname "$0")"
strata "$DIR/mix" >"$TMP/mix.out" 2>"$TMP/mix.err" || { cat "$TMP/mix.err"; exit 1; }
grep -q "mix: ok" "$TMP/mix.out"
served "$STATS" 100000
grep -q "foreign frees: [1-9][0-9]* returned to glibc" "$STATS" || { echo "FAIL: glibc memory was not returned to glibc"; cat "$STATS"; exit 1; }
strata "$DIR/fork_load" >"$TMP/fork.out" 2>"$TMP/fork.err" || { cat "$TMP/fork.out" "$TMP/fork.err"; exit 1; }
cat "$TMP/fork.out"
served "$STATS" 100000
echo PASS
