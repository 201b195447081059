#!/usr/bin/env bash
# Hostile probes (hostile.cc), each run alone with libstrata.so preloaded
# and default options: a misuse ends with one "strata:" line naming the
# address and the error, then SIGABRT; glibc's own blocks go back to glibc
# intact; malloc(64 TiB) fails; freed large blocks leave RSS while the
# program idles; in count mode the process goes on. hostile_test runs what
# the default build reports (foreign pointers, sized frees);
# hostile_test_checked (STRATA_PRELOAD_LIB=libstrata_checked.so) also the
# cross-thread double frees and the overflows into free links.
source "$(dirname "$0")/lib.sh"
PROBE="$(dirname "$0")/hostile"

# dies CASE REGEX: the case aborts (SIGABRT) after exactly one strata line,
# which matches REGEX.
dies() {
  local case=$1 want=$2 rc=0
  # (.death, not .err: served() below fails on any report in $TMP/*.err)
  LD_PRELOAD="$LIB" "$PROBE" "$case" >"$TMP/$case.out" 2>"$TMP/$case.death" || rc=$?
  if [ "$rc" -ne 134 ]; then
    echo "FAIL: $case: exit $rc, expected SIGABRT (134)"; cat "$TMP/$case.out" "$TMP/$case.death"; exit 1
  fi
  local lines
  lines=$(grep -c '^strata: ' "$TMP/$case.death" || true)
  if [ "$lines" -ne 1 ] || ! grep -Eq "$want" "$TMP/$case.death"; then
    echo "FAIL: $case: expected one line matching '$want', got:"; cat "$TMP/$case.death"; exit 1
  fi
  echo "ok: $case: $(grep '^strata: ' "$TMP/$case.death")"
}

# passes NAME CASE [VAR=VALUE...]: the case runs to its end under the preload
# (with the variables set), its output in $TMP/NAME.out and .err.
passes() {
  local name=$1 case=$2; shift 2
  strata env "$@" "$PROBE" "$case" >"$TMP/$name.out" 2>"$TMP/$name.err" || {
    cat "$TMP/$name.out" "$TMP/$name.err"; exit 1; }
}

dies bss 'strata: free\(0x[0-9a-f]+\): pointer was not allocated by strata'
dies mmap 'strata: free\(0x[0-9a-f]+\): pointer was not allocated by strata'
dies stack 'strata: free\(0x[0-9a-f]+\): pointer was not allocated by strata'
dies protnone 'strata: free\(0x[0-9a-f]+\): pointer was not allocated by strata'
dies file_eof 'strata: free\(0x[0-9a-f]+\): pointer was not allocated by strata'
checked=0
case "$LIB" in *_checked.so) checked=1 ;; esac
if [ "$checked" -eq 1 ]; then
  for c in xdf_exited xdf_qpp xdf_batch xdf_twice xdf_two_threads xdf_new_thread xdf_medium_exited; do
    dies $c 'strata: free\(0x[0-9a-f]+\): (double free|block of an empty arena|block of a free pool)'
  done
  dies overflow1 'strata: heap corruption at 0x[0-9a-f]+: free list corrupted'
  dies overflow8 'strata: heap corruption at 0x[0-9a-f]+: free list corrupted'
fi
dies sized_small 'strata: free_sized\(0x[0-9a-f]+\): size is too small for the block'
dies sized_medium 'strata: free_sized\(0x[0-9a-f]+\): size is too small for the block'

passes glibc glibc
grep -q "glibc: ok" "$TMP/glibc.out"
served "$STATS"
grep -q "foreign frees: [1-9][0-9]* returned to glibc" "$STATS" || { echo "FAIL: glibc's blocks were not returned"; cat "$STATS"; exit 1; }
echo "ok: glibc's blocks kept their contents and went back to glibc"

passes huge huge
echo "ok: $(head -1 "$TMP/huge.out")"

passes idle idle_large
echo "ok: $(head -1 "$TMP/idle.out")"
# Also with purge_delay_ms=0: nothing waits in the large cache.
passes idle0 idle_large STRATA_PURGE_DELAY_MS=0
echo "ok (purge_delay_ms=0): $(head -1 "$TMP/idle0.out")"

if [ "$checked" -eq 1 ]; then count_case=count want=11; else count_case=count_default want=6; fi
STRATA_ERROR_MODE=count strata "$PROBE" $count_case >"$TMP/count.out" 2>"$TMP/count.death" || {
  cat "$TMP/count.out" "$TMP/count.death"; exit 1; }
grep -q "count: ok" "$TMP/count.out"
n=$(grep -c '^strata: ' "$TMP/count.death" || true)
[ "$n" -eq "$want" ] || { echo "FAIL: count mode printed $n lines, expected $want"; cat "$TMP/count.death"; exit 1; }
grep -q "errors counted: $want" "$STATS" || { echo "FAIL: count mode did not count $want errors"; cat "$STATS"; exit 1; }
echo "ok: count mode reported $want misuses and went on"
echo PASS
