#!/usr/bin/env bash
# Smoke test of the comparison runner: a --quick run of three workloads under
# strata and glibc must succeed, print a table naming both, and write the
# Markdown, CSV, JSON and PNG files.
set -euo pipefail
compare="$TEST_SRCDIR/strata/tools/bench/compare"
out="$TEST_TMPDIR/results"

"$compare" --quick --workloads=larson,xmalloc,records --allocators=strata,glibc \
  --threads=2 --out-dir="$out" >"$TEST_TMPDIR/stdout" 2>"$TEST_TMPDIR/stderr" || {
  echo "FAIL: compare exited $?"; cat "$TEST_TMPDIR/stdout" "$TEST_TMPDIR/stderr"; exit 1; }
cat "$TEST_TMPDIR/stdout"

fail() { echo "FAIL: $*"; cat "$TEST_TMPDIR/stderr"; exit 1; }
for f in compare.md compare.png compare.csv compare.json; do
  [ -s "$out/$f" ] || fail "$out/$f missing or empty"
done
[ "$(head -c 8 "$out/compare.png" | od -An -c | tr -d ' ')" = "211PNG\r\n032\n" ] ||
  fail "compare.png is not a PNG"
for a in strata glibc; do
  grep -q "| *$a" "$TEST_TMPDIR/stdout" || fail "the printed table does not name $a"
  grep -q "$a" "$out/compare.md" || fail "compare.md does not name $a"
done
for w in larson xmalloc records; do
  grep -q "^| $w " "$TEST_TMPDIR/stdout" || fail "the printed table has no $w row"
done
grep -q "geomean" "$TEST_TMPDIR/stdout" || fail "no geometric-mean row"
grep -q '\[ *6/6\] records t=1' "$TEST_TMPDIR/stderr" || fail "no progress line for the last run"
# 3 rows x 2 allocators x 1 repeat, plus the CSV header.
[ "$(wc -l <"$out/compare.csv")" -eq 7 ] || fail "compare.csv should hold 6 runs"

# A missing peer is skipped with a note; a library the loader refuses fails
# the run, naming the workload and the allocator.
echo "not an ELF file" >"$TEST_TMPDIR/libbroken.so"
if "$compare" --quick --workloads=larson --allocators=glibc,missing,broken --threads=2 \
    --out-dir="$out" --lib=missing=/nonexistent/libnothing.so \
    --lib=broken="$TEST_TMPDIR/libbroken.so" >"$TEST_TMPDIR/bad" 2>&1; then
  cat "$TEST_TMPDIR/bad"; fail "a library the loader cannot preload should fail the run"
fi
grep -q "missing skipped" "$TEST_TMPDIR/bad" || { cat "$TEST_TMPDIR/bad"; fail "no skip note"; }
grep -q "FAILED: workload larson (t=2) under broken" "$TEST_TMPDIR/bad" ||
  { cat "$TEST_TMPDIR/bad"; fail "the failure does not name workload and allocator"; }
echo "PASS"
