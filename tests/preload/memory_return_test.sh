#!/usr/bin/env bash
# Memory goes back to the OS, with strata's default settings: after the
# program frees what it made and idles for a few seconds, its resident
# memory is back within 10% (or 5 MiB) of what it was before.
#  - python3, PYTHONMALLOC=malloc: the seed's 100,000 records, then del;
#  - C++: 4 threads allocate 1 GiB in small blocks and free them crosswise.
source "$(dirname "$0")/lib.sh"
CROSS="$(cd "$(dirname "$0")/../../tools/release" && pwd)/cross_free"
RECORDS="$(cd "$(dirname "$0")/../../tools/release" && pwd)/records.py"

check_back() {  # label, output line of the experiment
  local label=$1 line=$2
  echo "$label: $line"
  awk -v l="$line" 'BEGIN {
    match(l, /rss_before=[0-9.]+/); b = substr(l, RSTART + 11, RLENGTH - 11) + 0
    match(l, /rss_peak=[0-9.]+/); p = substr(l, RSTART + 9, RLENGTH - 9) + 0
    match(l, /rss_after_idle=[0-9.]+/); i = substr(l, RSTART + 15, RLENGTH - 15) + 0
    if (p < b + 40) { print "FAIL: the experiment did not allocate (peak " p " MiB)"; exit 1 }
    if (!(i <= b * 1.10 || i - b <= 5)) { print "FAIL: RSS after idling " i " MiB, before " b " MiB"; exit 1 }
    print "ok: RSS back to " i " MiB (before " b ", peak " p ")"
  }'
}

PYTHONMALLOC=malloc strata /usr/bin/python3 "$RECORDS" --idle_ms=3000 >"$TMP/records.out"
served "$STATS" 1000000
check_back "python3 records" "$(cat "$TMP/records.out")"

strata "$CROSS" --total_mib=1024 --idle_ms=3000 >"$TMP/cross.out"
served "$STATS" 1000000
check_back "cross_free" "$(cat "$TMP/cross.out")"
echo PASS
