#!/usr/bin/env bash
# Guarded sampling through the preload (issue 25): with
# STRATA_GUARDED_SAMPLE_BYTES=1 every allocation of at most a page is
# guarded while slots are free; guarded_fault.cc makes one mistake per mode.
# Each fault is reported in one strata: line (kind, address, block, size,
# offset), then the access's, allocation's and (after a free) the free's
# stacks naming the program's functions, and the process dies by SIGSEGV.
# Double and invalid frees of guarded blocks are reported (abort; count
# mode goes on). A program's own SIGSEGV handler, installed before guarding
# is turned on (through the API), gets its own faults unchanged and sees
# strata's too. A forked child's use after free is reported by the child.
# STRATA_PRELOAD_LIB picks the build (both report the same).
source "$(dirname "$0")/lib.sh"
PROG="$(dirname "$0")/guarded_fault"

fail() { echo "FAIL: $mode: $*"; echo "--- stdout"; cat "$out"; echo "--- stderr"; cat "$err"; exit 1; }

# run MODE [ENV...]: runs the program preloaded (each mode in a directory of
# its own), leaving its exit status in $rc and its output in $out, $err.
run() {
  mode=$1; shift
  local dir="$TMP/$mode${ERRMODE:+.$ERRMODE}"
  mkdir -p "$dir"
  out="$dir/out"; err="$dir/err"
  set +e
  (cd "$dir" && env "$@" LD_PRELOAD="$LIB" "$PROG" "$mode" >"$out" 2>"$err")
  rc=$?
  set -e
}

# block: the guarded block's address the program printed.
block() { sed -n 's/^block \(0x[0-9a-f]*\) size .*/\1/p' "$out" | head -1; }

# expect_fault KIND ACCESS SIZE OFFSET [FREED]: the report line and stacks.
expect_fault() {
  local kind=$1 access=$2 size=$3 offset=$4 freed=${5:-}
  [ "$rc" -eq 139 ] || fail "exit $rc, expected death by SIGSEGV (139)"
  local b; b=$(block)
  [ -n "$b" ] || fail "no block printed"
  local addr; addr=$(printf '0x%x' $((b + offset)))
  local line="strata: guarded allocation: $kind $access at $addr: block $b of $size bytes, offset $offset"
  grep -qxF "$line" "$err" || fail "no line: $line"
  [ "$(grep -c '^strata: guarded allocation: ' "$err")" -eq 1 ] || fail "not exactly one report"
  local touch=TouchRead; [ "$access" = write ] && touch=TouchWrite
  sed -n '/^strata:   accessed by thread/,/^strata:   allocated by/p' "$err" | grep -q " $touch+0x" ||
    fail "the access's stack does not name $touch"
  sed -n '/^strata:   allocated by thread/,/^strata:   freed by/p' "$err" | grep -q " AllocateVictim+0x" ||
    fail "the allocation's stack does not name AllocateVictim"
  if [ -n "$freed" ]; then
    sed -n '/^strata:   freed by thread/,$p' "$err" | grep -q " FreeVictim+0x" ||
      fail "the free's stack does not name FreeVictim"
  elif grep -q '^strata:   freed by' "$err"; then
    fail "a free's stack for a live block"
  fi
  echo "ok: $mode"
}

run uaf-read STRATA_GUARDED_SAMPLE_BYTES=1
expect_fault use-after-free read 32 8 freed
run uaf-write STRATA_GUARDED_SAMPLE_BYTES=1
expect_fault use-after-free write 48 40 freed
run overflow STRATA_GUARDED_SAMPLE_BYTES=1
expect_fault "buffer overflow" write 64 64
run underflow STRATA_GUARDED_SAMPLE_BYTES=1
expect_fault "buffer underflow" read 4096 -16

# Double and invalid frees: abort by default, counted and ignored in count mode.
for ERRMODE in abort count; do
  run double-free STRATA_GUARDED_SAMPLE_BYTES=1 STRATA_ERROR_MODE=$ERRMODE
  b=$(block)
  grep -q "^strata: free($b): double free of a guarded block" "$err" || fail "no double-free line"
  sed -n '/^strata:   allocated by/,$p' "$err" | grep -q " AllocateVictim+0x" || fail "no allocation stack"
  sed -n '/^strata:   freed by/,$p' "$err" | grep -q " FreeVictim+0x" || fail "no first free's stack"
  if [ $ERRMODE = abort ]; then [ "$rc" -eq 134 ] || fail "exit $rc, expected abort (134)"; fi
  if [ $ERRMODE = count ]; then
    [ "$rc" -eq 0 ] && grep -q "second free returned" "$out" || fail "exit $rc in count mode"
  fi
  run invalid-free STRATA_GUARDED_SAMPLE_BYTES=1 STRATA_ERROR_MODE=$ERRMODE
  b=$(block)
  inner=$(printf '0x%x' $((b + 16)))
  grep -q "^strata: free($inner): pointer is not the start of a guarded block" "$err" || fail "no invalid-free line"
  sed -n '/^strata:   allocated by/,$p' "$err" | grep -q " AllocateVictim+0x" || fail "no allocation stack"
  if [ $ERRMODE = abort ]; then [ "$rc" -eq 134 ] || fail "exit $rc, expected abort (134)"; fi
  if [ $ERRMODE = count ]; then
    [ "$rc" -eq 0 ] && grep -q "invalid free returned" "$out" || fail "exit $rc in count mode"
  fi
  echo "ok: double and invalid free ($ERRMODE)"
done
ERRMODE=

# Chaining: the program's handler first, guarding turned on by the API.
run chain
[ "$rc" -eq 139 ] || fail "exit $rc, expected death by SIGSEGV (139)"
grep -q "recovered from own fault (1 handler calls)" "$out" || fail "the program's own fault did not reach its handler"
grep -q "^strata: guarded allocation: buffer overflow write at " "$err" || fail "no report"
[ "$(grep -c '^guarded_fault: program handler called' "$err")" -eq 2 ] ||
  fail "the program's handler should run for its own fault and after strata's report"
echo "ok: chain"

# fork: the child's use after free, reported by the child.
run fork STRATA_GUARDED_SAMPLE_BYTES=1
[ "$rc" -eq 0 ] && grep -q "child died by SIGSEGV" "$out" || fail "exit $rc"
grep -q "^strata: guarded allocation: use-after-free read at $(block): block $(block) of 40 bytes, offset 0" "$err" ||
  fail "no report from the child"
echo "ok: fork"
echo PASS
