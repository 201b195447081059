#!/usr/bin/env bash
# //tools:demo runs the seed's experiment and shows the process's RSS at four
# moments: before, at the peak, right after the del and after strata's purge
# delay, which it reads from the options (here from STRATA_PURGE_DELAY_MS).
# No timing is asserted: on a loaded machine the purge may come late, so the
# test checks only what holds whenever it comes.
set -euo pipefail
demo="$TEST_SRCDIR/strata/tools/demo"
out="$TEST_TMPDIR/demo.out"
fail() { echo "FAIL: $*"; cat "$out"; exit 1; }

STRATA_PURGE_DELAY_MS=300ms "$demo" --records=100000 >"$out" 2>&1 || fail "demo exited $?"
cat "$out"

grep -q "^total " "$out" || fail "no per-class table"
grep -q "^verified 100000 records" "$out" || fail "records not verified"
grep -qF "(purge_delay_ms = 300)" "$out" || fail "the wait does not follow purge_delay_ms"

# The RSS in MiB of one row of the RSS table (its first number).
rss() {
  awk -v label="$1" 'index($0, label) == 1 { print substr($0, length(label) + 1) }' "$out" |
    awk '{ print $1 }'
}
before="$(rss "before the experiment")"
peak="$(rss "at the peak")"
after_del="$(rss "right after the del")"
later="$(rss "after the purge delay (300 ms)")"
for v in "$before" "$peak" "$after_del" "$later"; do
  [[ "$v" =~ ^[0-9]+\.[0-9]$ ]] || fail "an RSS row is missing or not in MiB: '$v'"
done
echo "RSS MiB: before $before, peak $peak, after the del $after_del, after the delay $later"

# 100,000 records hold about 25 MiB: the peak is well above the start.
awk -v b="$before" -v p="$peak" 'BEGIN { exit !(p >= b + 10) }' ||
  fail "the peak ($peak MiB) is not above the start ($before MiB)"
# Waiting never makes the process bigger than at its peak. (1 MiB of slack:
# the release thread, started by the frees, touches its own stack and
# bookkeeping pages after the peak was read.)
awk -v p="$peak" -v l="$later" 'BEGIN { exit !(l <= p + 1.0) }' ||
  fail "RSS after the purge delay ($later MiB) is above the peak ($peak MiB)"
echo "PASS"
