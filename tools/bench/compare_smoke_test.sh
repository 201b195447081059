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
# --suite folds a mimalloc-bench-style folder's rows into the tables, and
# --peer adds a column. Stand-ins for two suite programs: one judged by wall
# time, one by the throughput it prints (the others are missing: skipped).
suite="$TEST_TMPDIR/suite"
mkdir -p "$suite/bin" "$suite/src/bench"
printf '#!/bin/sh\necho "result $1"\n' >"$suite/bin/cfrac"
printf '#!/bin/sh\necho "Throughput =  5000000 operations per second, relative time: 1s."\n' \
  >"$suite/bin/larson"
chmod +x "$suite/bin/cfrac" "$suite/bin/larson"
strata_lib="$TEST_SRCDIR/strata/alloc/libstrata.so"
"$compare" --quick --suite="$suite" --suite-only --allocators=strata,glibc,again \
  --peer=again="$strata_lib" --out-dir="$out/suite" >"$TEST_TMPDIR/suite.out" \
  2>"$TEST_TMPDIR/suite.err" || {
  cat "$TEST_TMPDIR/suite.out" "$TEST_TMPDIR/suite.err"; fail "compare --suite exited non-zero"; }
grep -q "suite program espresso is not in" "$TEST_TMPDIR/suite.err" ||
  { cat "$TEST_TMPDIR/suite.err"; fail "no note for a missing suite program"; }
for row in cfrac larsonN; do
  grep -q "^| $row " "$TEST_TMPDIR/suite.out" || { cat "$TEST_TMPDIR/suite.out"; fail "no $row row"; }
done
grep -q "^| larsonN .* 20.000 " "$TEST_TMPDIR/suite.out" ||
  { cat "$TEST_TMPDIR/suite.out"; fail "larson's 5e6 ops/s should read 20.000 s per 1e8 ops"; }
grep -q "ratio to the best allocator" "$TEST_TMPDIR/suite.out" || fail "no ratio-to-best table"
grep -q "again (/strata)" "$TEST_TMPDIR/suite.out" || fail "the --peer column is missing"
# 2 rows x 3 allocators x 1 repeat, plus the CSV header.
[ "$(wc -l <"$out/suite/compare.csv")" -eq 7 ] || fail "compare.csv should hold 6 suite runs"
echo "PASS"
