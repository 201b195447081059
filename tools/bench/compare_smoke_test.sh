#!/usr/bin/env bash
# Smoke test of the comparison runner: a --quick run of three workloads under
# strata's two builds and glibc must succeed, print each class's tables (the
# default class beside strata, the checked class beside strata-checked) and
# the checked build's cost, and write the Markdown, CSV, JSON and PNG files.
# No timing is asserted.
set -euo pipefail
compare="$TEST_SRCDIR/strata/tools/bench/compare"
out="$TEST_TMPDIR/results"

"$compare" --quick --workloads=larson,xmalloc,records --allocators=strata,strata-checked,glibc \
  --threads=2 --out-dir="$out" >"$TEST_TMPDIR/stdout" 2>"$TEST_TMPDIR/stderr" || {
  echo "FAIL: compare exited $?"; cat "$TEST_TMPDIR/stdout" "$TEST_TMPDIR/stderr"; exit 1; }
cat "$TEST_TMPDIR/stdout"

fail() { echo "FAIL: $*"; cat "$TEST_TMPDIR/stderr"; exit 1; }
for f in compare.md compare.png compare.csv compare.json; do
  [ -s "$out/$f" ] || fail "$out/$f missing or empty"
done
[ "$(head -c 8 "$out/compare.png" | od -An -c | tr -d ' ')" = "211PNG\r\n032\n" ] ||
  fail "compare.png is not a PNG"
for a in strata strata-checked glibc; do
  grep -q "| *$a " "$TEST_TMPDIR/stdout" || fail "the printed table does not name $a"
  grep -q "$a" "$out/compare.md" || fail "compare.md does not name $a"
done
# Each build beside its own kind: the class headings list their allocators.
grep -q "^==== default class (.*): strata, glibc$" "$TEST_TMPDIR/stdout" ||
  fail "no default-class heading listing strata and glibc"
grep -q "^==== checked class (.*): strata-checked$" "$TEST_TMPDIR/stdout" ||
  fail "no checked-class heading listing strata-checked"
grep -q "^## Default class (.*): strata, glibc$" "$out/compare.md" ||
  fail "compare.md has no default-class section"
grep -q "^## Checked class (.*): strata-checked$" "$out/compare.md" ||
  fail "compare.md has no checked-class section"
grep -q "^| workload .*| strata-checked | spread |" "$TEST_TMPDIR/stdout" ||
  fail "no checked-class table with strata-checked as its base"
grep -q "glibc (/strata) " "$TEST_TMPDIR/stdout" || fail "glibc is not divided by strata"
grep -q "^Time, ratio to the best of the default class" "$TEST_TMPDIR/stdout" ||
  fail "no ratio-to-the-best table for the default class"
# The checked build's cost: one line, geomean of the rows' ratios, and the target.
grep -Eq "^strata-checked / strata, the checked build's cost \(geomean of 3 rows' ratios\): time [0-9.]+x \(target <= 1.06x" \
  "$TEST_TMPDIR/stdout" || fail "no line with strata-checked's time over strata's"
grep -q "^## The checked build's cost: strata-checked / strata" "$out/compare.md" ||
  fail "compare.md has no section on the checked build's cost"
for w in larson xmalloc records; do
  grep -q "^| $w " "$TEST_TMPDIR/stdout" || fail "the printed table has no $w row"
done
grep -q "geomean" "$TEST_TMPDIR/stdout" || fail "no geometric-mean row"
grep -q '\[ *9/9\] records t=1' "$TEST_TMPDIR/stderr" || fail "no progress line for the last run"
# 3 rows x 3 allocators x 1 repeat, plus the CSV header.
[ "$(wc -l <"$out/compare.csv")" -eq 10 ] || fail "compare.csv should hold 9 runs"

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
# --suite folds a mimalloc-bench-style folder's rows into the tables, --peer
# adds a column, and --peers adds the standard peer set found in DIR/lib, each
# in its class. Stand-ins for two suite programs: one judged by wall time, one
# by the throughput it prints (the others are missing: skipped); and for two
# peer libraries, one of each class (strata's builds under the peers' names).
suite="$TEST_TMPDIR/suite"
mkdir -p "$suite/bin" "$suite/src/bench" "$suite/lib"
printf '#!/bin/sh\necho "result $1"\n' >"$suite/bin/cfrac"
printf '#!/bin/sh\necho "Throughput =  5000000 operations per second, relative time: 1s."\n' \
  >"$suite/bin/larson"
chmod +x "$suite/bin/cfrac" "$suite/bin/larson"
strata_lib="$TEST_SRCDIR/strata/alloc/libstrata.so"
ln -s "$strata_lib" "$suite/lib/librpmalloc.so"
ln -s "$TEST_SRCDIR/strata/alloc/libstrata_checked.so" "$suite/lib/libsnmalloc-checks.so"
"$compare" --quick --suite="$suite" --suite-only --peers="$suite" \
  --allocators=strata,strata-checked,glibc,again,rpmalloc,snmalloc-checks \
  --peer=again="$strata_lib" --out-dir="$out/suite" >"$TEST_TMPDIR/suite.out" \
  2>"$TEST_TMPDIR/suite.err" || {
  cat "$TEST_TMPDIR/suite.out" "$TEST_TMPDIR/suite.err"; fail "compare --suite exited non-zero"; }
grep -q "mimalloc-secure skipped: no libmimalloc-v3-secure.so in" "$TEST_TMPDIR/suite.err" ||
  { cat "$TEST_TMPDIR/suite.err"; fail "no note for a peer missing from --peers"; }
grep -q "^==== default class (.*): strata, glibc, rpmalloc, again$" "$TEST_TMPDIR/suite.out" ||
  { cat "$TEST_TMPDIR/suite.out"; fail "--peers did not put rpmalloc in the default class"; }
grep -q "^==== checked class (.*): strata-checked, snmalloc-checks$" "$TEST_TMPDIR/suite.out" ||
  { cat "$TEST_TMPDIR/suite.out"; fail "--peers did not put snmalloc-checks in the checked class"; }
grep -q "snmalloc-checks (/strata-checked)" "$TEST_TMPDIR/suite.out" ||
  fail "snmalloc-checks is not divided by strata-checked"
grep -q "^Time, ratio to the best of the checked class" "$TEST_TMPDIR/suite.out" ||
  fail "no ratio-to-the-best table for the checked class"
grep -q "suite program espresso is not in" "$TEST_TMPDIR/suite.err" ||
  { cat "$TEST_TMPDIR/suite.err"; fail "no note for a missing suite program"; }
for row in cfrac larsonN; do
  grep -q "^| $row " "$TEST_TMPDIR/suite.out" || { cat "$TEST_TMPDIR/suite.out"; fail "no $row row"; }
done
grep -q "^| larsonN .* 20.000 " "$TEST_TMPDIR/suite.out" ||
  { cat "$TEST_TMPDIR/suite.out"; fail "larson's 5e6 ops/s should read 20.000 s per 1e8 ops"; }
grep -q "again (/strata)" "$TEST_TMPDIR/suite.out" || fail "the --peer column is missing"
# 2 rows x 6 allocators x 1 repeat, plus the CSV header.
[ "$(wc -l <"$out/suite/compare.csv")" -eq 13 ] || fail "compare.csv should hold 12 suite runs"
# A --peers folder with none of the standard set is refused before any run.
mkdir -p "$TEST_TMPDIR/nopeers/lib"
if "$compare" --quick --peers="$TEST_TMPDIR/nopeers" --out-dir="$out/none" \
    >"$TEST_TMPDIR/none" 2>&1; then
  cat "$TEST_TMPDIR/none"; fail "--peers with no peer library should fail"
fi
grep -q -- "--peers: none of" "$TEST_TMPDIR/none" || { cat "$TEST_TMPDIR/none"; fail "no --peers error"; }
echo "PASS"
