#!/usr/bin/env bash
# google-pprof reads strata's heap profiles: for a program with three
# allocation sites of known sizes, sampled at 2 MiB, `google-pprof --text`
# ranks the sites in the right order with bytes within 10 % of the truth,
# in the since-mark profile (in-use columns) and in the live profile's
# alloc columns. At about 1,500 samples or more per site, the estimate's
# standard deviation is under 2.6 %, so 10 % is four of them.
set -euo pipefail
BIN=$1
command -v google-pprof >/dev/null || {
  echo "FAIL: google-pprof missing: tools/setup.sh installs it (google-perftools)"; exit 1; }
OUT=$(mktemp -d "${TEST_TMPDIR:-/tmp}/pprof.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

# STRATA_PROFILE_FILE: the live and peak views are written at exit too.
STRATA_PROFILE_FILE="$OUT/exit.heap" "$BIN" "$OUT" >"$OUT/truth.txt"
cat "$OUT/truth.txt"
for f in exit.heap exit.heap.peak; do
  head -c 14 "$OUT/$f" 2>/dev/null | grep -q "^heap profile: " || {
    echo "FAIL: STRATA_PROFILE_FILE did not write $f at exit"; exit 1; }
done

check() {  # PROFILE [pprof options]
  local profile=$1; shift
  # --text lines: flat flat% sum% cum cum% name, flat in MB (2^20 bytes).
  google-pprof --text "$@" "$BIN" "$OUT/$profile" 2>/dev/null >"$OUT/text.txt"
  echo "--- google-pprof --text $* $profile"
  head -8 "$OUT/text.txt"
  local order
  order=$(awk '$6 ~ /^site_[abc]$/ {print $6}' "$OUT/text.txt" | tr '\n' ' ')
  if [ "$order" != "site_a site_b site_c " ]; then
    echo "FAIL: $profile ranks the sites as '$order', expected 'site_a site_b site_c'"; exit 1
  fi
  while read -r site bytes; do
    local mb
    mb=$(awk -v s="$site" '$6 == s {print $1}' "$OUT/text.txt")
    awk -v got="$mb" -v want="$bytes" -v s="$site" -v p="$profile" 'BEGIN {
      truth = want / 1048576; err = (got - truth) / truth; if (err < 0) err = -err
      printf "%s %s: %.1f MB against %.1f MB (%.1f %%)\n", p, s, got, truth, err * 100
      exit err <= 0.10 ? 0 : 1 }' || { echo "FAIL: $site is off by more than 10 %"; exit 1; }
  done <"$OUT/truth.txt"
}

check since.heap
check live.heap --alloc_space
echo PASS
